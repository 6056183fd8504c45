//! The front door's decisions without a server; the table of paths through every
//! entrance of a running gateway is `tests/front_door.rs`.

use std::path::Path;

use super::*;
use crate::metrics::Metrics;

const CONFIG: &str = r#"
[server]
public_url = "http://localhost:8080"
[session]
keys = [{ value = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=", dev = true }]
[[route]]
path = "/"
upstream = "http://127.0.0.1:9"
protocol = "public"
[[route]]
path = "/Admin"
upstream = "http://127.0.0.1:9"
protocol = "public"
[[route]]
host = "app.example.com"
path = "/strict"
upstream = "http://127.0.0.1:9"
protocol = "public"
path_params = "refuse"
"#;

fn router() -> Router {
    let cfg = crate::config::parse(CONFIG, Path::new("."), &|_| None).expect("config");
    Router::new(&cfg, &Metrics::default(), &|_| Ok(None)).expect("router")
}

/// Where a request lands: the route's path, `endpoint`, or the refusal.
fn admit(router: &Router, target: &str, host: Option<&str>) -> Result<String, Refusal> {
    let door = FrontDoor {
        router,
        sso_prefix: "/_sso",
    };
    door.admit(Request {
        target: target.as_bytes(),
        host,
        host_required: true,
    })
    .map(|e| match e {
        Entry::Endpoint(p) => format!("endpoint {}", p.judged()),
        Entry::Route { route, path } => format!("{} {}", route.spec.path, path.judged()),
    })
}

#[test]
fn routes_endpoints_and_refusals() {
    let r = router();
    let local = Some("localhost:8080");
    let app = Some("App.Example.com.");
    for (target, host, want) in [
        ("/x", local, Ok("/ /x")),
        ("/Admin/x", local, Ok("/Admin /Admin/x")),
        // Upper-case route paths: the lower-case spelling is ambiguous.
        ("/admin/x", local, Err(Refusal::Ambiguous)),
        (
            "/_sso/callback?code=1",
            local,
            Ok("endpoint /_sso/callback"),
        ),
        ("/_sso/callback;x", local, Ok("endpoint /_sso/callback")),
        ("/_SSO/logout", local, Err(Refusal::Ambiguous)),
        ("/%5Fsso/logout", local, Ok("endpoint /_sso/logout")),
        ("/strict/a", app, Ok("/strict /strict/a")),
        ("/strict/a;b", app, Err(Refusal::PathParams)),
        ("/strict/a;b", local, Ok("/ /strict/a")),
        ("http://localhost:8080/x?y", None, Ok("/ /x")),
        ("http://app.example.com", None, Ok("/ /")),
        (
            "HTTPS://app.example.com/strict/x",
            None,
            Ok("/strict /strict/x"),
        ),
        (
            "http://other/x",
            local,
            Err(Refusal::Host(HostRefusal::Invalid)),
        ),
        (
            "ftp://localhost/x",
            local,
            Err(Refusal::Path(PathRefusal::NotAPath)),
        ),
        ("*", local, Err(Refusal::Path(PathRefusal::NotAPath))),
        ("/x", None, Err(Refusal::Host(HostRefusal::Missing))),
        (
            "/x",
            Some("localhost:8080/evil"),
            Err(Refusal::Host(HostRefusal::Invalid)),
        ),
        (
            "/a/../b",
            local,
            Err(Refusal::Path(PathRefusal::DotSegment)),
        ),
    ] {
        assert_eq!(
            admit(&r, target, host),
            want.map(str::to_string),
            "{target} at {host:?}"
        );
    }
}

#[test]
fn no_route_and_refusal_answers() {
    let cfg = crate::config::parse(
        &CONFIG.replace("path = \"/\"\nupstream", "path = \"/only\"\nupstream"),
        Path::new("."),
        &|_| None,
    )
    .expect("config");
    let r = Router::new(&cfg, &Metrics::default(), &|_| Ok(None)).expect("router");
    assert_eq!(admit(&r, "/x", Some("localhost")), Err(Refusal::NoRoute));
    assert_eq!(Refusal::NoRoute.status(), 404);
    assert_eq!(Refusal::HeadersTooLarge.status(), 431);
    assert_eq!(Refusal::Ambiguous.status(), 400);
    assert_eq!(
        Refusal::Path(PathRefusal::DoubleEncoded).code(),
        "double_encoded"
    );
    assert_eq!(
        Refusal::Host(HostRefusal::Missing).outcome(),
        Outcome::BadHost
    );
}

#[test]
fn the_size_counts_target_and_headers() {
    let mut h = http::HeaderMap::new();
    h.insert("cookie", http::HeaderValue::from_static("a=0123456789"));
    // 6 + 12 + 4 for the header, 10 for the target.
    assert!(!headers_too_large(b"/123456789", &h, 32));
    assert!(headers_too_large(b"/123456789", &h, 31));
}
