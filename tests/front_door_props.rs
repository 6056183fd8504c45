//! A property of the front door: a random path built from segments, `;params`,
//! percent-escapes (single and double), dots, backslashes, case changes,
//! fullwidth forms and overlong UTF-8 is either refused, or reaches a route at
//! least as restricted as the one its fully decoded, parameter-free reading
//! reaches: the reading of the most lenient app. The oracle below is written
//! apart from the code under test.

use std::path::Path;

use oneaccess_gateway::config;
use oneaccess_gateway::front_door::{Entry, FrontDoor, Request};
use oneaccess_gateway::metrics::Metrics;
use oneaccess_gateway::route::Router;
use proptest::prelude::*;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "http://localhost:8080"

[session]
keys = [{ value = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=", dev = true }]

[provider]
issuer = "http://127.0.0.1:9/api/v1/oauth2"
client_id = "c"
client_secret = { value = "s", dev = true }

[[route]]
path = "/"
upstream = "http://127.0.0.1:9"
protocol = "oidc"

[[route]]
path = "/public"
upstream = "http://127.0.0.1:9"
protocol = "public"

[[route]]
path = "/admin"
upstream = "http://127.0.0.1:9"
protocol = "oidc"
policy = { users = ["root"] }

[[route]]
path = "/public/admin"
upstream = "http://127.0.0.1:9"
protocol = "oidc"
policy = { users = ["root"] }
"#;

static ROUTER: std::sync::LazyLock<Router> = std::sync::LazyLock::new(|| {
    let cfg = config::parse(CONFIG, Path::new("."), &|_| None).expect("config");
    Router::new(&cfg, &Metrics::default(), &|_| Ok(None)).expect("router")
});

/// How restricted a route is: public 0, signed-in 1, a policy 2.
fn rank(path: &str) -> u8 {
    match path {
        "/public" => 0,
        "/" => 1,
        _ => 2,
    }
}

/// The route an app reading `path` the most lenient way serves it by: the
/// longest prefix, compared ignoring case, of the fully decoded reading.
fn lenient_route(raw: &str) -> &'static str {
    let mut s: Vec<u8> = raw.as_bytes().to_vec();
    // Decode percent-escapes, compatibility forms and overlong UTF-8 until
    // nothing changes.
    for _ in 0..8 {
        let decoded: Vec<u8> = percent_encoding::percent_decode(&s).collect();
        let folded = fold(&decoded);
        if folded == s {
            break;
        }
        s = folded;
    }
    let text = String::from_utf8_lossy(&s)
        .replace('\\', "/")
        .to_lowercase();
    // Parameters off every segment, then dot segments resolved.
    let mut out: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let path = format!("/{}", out.join("/"));
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if under("/public/admin") {
        "/public/admin"
    } else if under("/public") {
        "/public"
    } else if under("/admin") {
        "/admin"
    } else {
        "/"
    }
}

/// The generator's non-ASCII forms, read as ASCII; overlong UTF-8 of ASCII too.
fn fold(b: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(b);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (0xc0 | 0xc1, Some(&c)) if (0x80..=0xbf).contains(&c) => {
                out.push(((b[i] & 0x1f) << 6) | (c & 0x3f));
                i += 2;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    if out.as_slice() != b {
        return out;
    }
    let mut s = String::new();
    for c in text.chars() {
        match c {
            '\u{ff01}'..='\u{ff5e}' => s.push(char::from_u32(c as u32 - 0xfee0).unwrap_or(c)),
            '\u{2025}' => s.push_str(".."),
            '\u{fe54}' => s.push(';'),
            c => s.push(c),
        }
    }
    s.into_bytes()
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("public".to_string()),
        Just("admin".to_string()),
        Just("Admin".to_string()),
        Just("PUBLIC".to_string()),
        Just("x".to_string()),
        Just("".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("%2e%2e".to_string()),
        Just(".%2E".to_string()),
        Just("%252e%252e".to_string()),
        Just("%2561dmin".to_string()),
        Just("%61dmin".to_string()),
        Just("%2f".to_string()),
        Just("%252f".to_string()),
        Just("%5c".to_string()),
        Just("\\".to_string()),
        Just("..;".to_string()),
        Just(";x".to_string()),
        Just("admin;v=1".to_string()),
        Just("public%3Bx".to_string()),
        Just("%3B".to_string()),
        Just("%25".to_string()),
        Just("%EF%BD%81dmin".to_string()),
        Just("ａｄｍｉｎ".to_string()),
        Just("%EF%BC%8E%EF%BC%8E".to_string()),
        Just("%E2%80%A5".to_string()),
        Just("%EF%B9%94".to_string()),
        Just("%C0%AE%C0%AE".to_string()),
        Just("%C1%A1dmin".to_string()),
        Just("%C0%AF".to_string()),
        "[a-z]{1,3}".prop_map(|s| s),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec((segment(), segment()), 1..6).prop_map(|pairs| {
        let mut p = String::new();
        for (a, b) in pairs {
            // Two pieces per segment: `admin` + `;x`, `..` + `;`, `%2e` + `%2e`.
            p.push('/');
            p.push_str(&a);
            p.push_str(&b);
        }
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn no_path_reaches_a_less_restricted_route_than_its_lenient_reading(raw in path()) {
        let door = FrontDoor { router: &ROUTER, sso_prefix: "/_sso" };
        let admitted = door.admit(Request {
            target: raw.as_bytes(),
            host: Some("localhost:8080"),
            host_required: true,
        });
        if let Ok(Entry::Route { route, path }) = admitted {
            let lenient = lenient_route(&raw);
            prop_assert!(
                rank(&route.spec.path) >= rank(lenient),
                "{raw} reached {} (judged as {}), a lenient app reads it as {lenient}",
                route.spec.path,
                path.judged()
            );
            // And on the same route when both are restricted by their own rules.
            if rank(lenient) == 2 {
                prop_assert_eq!(route.spec.path.as_str(), lenient, "{}", raw);
            }
        }
    }
}
