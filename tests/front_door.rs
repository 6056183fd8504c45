//! The front door, end to end: one table of request paths, each sent through the
//! three entrances (the proxy, nginx's `/_sso/auth` with `X-Original-URL`, and
//! Traefik's `/_sso/verify` with `X-Forwarded-Uri`), without a session and with
//! the session of a user whom the restricted route refuses. Every row is either
//! refused or judged as the route it really is, the same way at every entrance,
//! and the app sees only the requests it should, with the path as sent.

mod common;

use common::*;

/// Where a path must land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `/public`: no login.
    Public,
    /// `/`: any signed-in user.
    Protected,
    /// `/admin`: alice only.
    Admin,
    /// 400 at the proxy, 403 (not `forbidden`) through forward auth.
    Refused,
}

use Class::*;

const ROWS: &[(&str, Class)] = &[
    // Plain paths and segment boundaries.
    ("/public/x", Public),
    ("/public", Public),
    ("/x", Protected),
    ("/admin", Admin),
    ("/admin/x", Admin),
    ("/admin-old/x", Protected),
    ("/administrator", Protected),
    ("/publicity", Protected),
    ("/a..b", Protected),
    ("/.well-known/x", Protected),
    ("/public/.hidden", Public),
    // Path parameters: judged without them, and every reading on one route.
    ("/public/..;/admin/x", Refused),
    ("/public/..;x/admin", Refused),
    ("/public/.;/x", Refused),
    ("/public/..%3B/admin", Refused),
    ("/admin;x/y", Refused),
    ("/admin;jsessionid=A1B2", Refused),
    ("/public;x/y", Refused),
    ("/;x/admin", Refused),
    ("/admin%3Bx/y", Refused),
    ("/admin/;jsessionid=A1B2", Admin),
    ("/admin/page;jsessionid=A1B2", Admin),
    ("/x/page;jsessionid=A1B2", Protected),
    ("/public/page;jsessionid=A1B2", Public),
    ("/public/a;b=c/d", Public),
    ("/public/a%3Bb", Public),
    // Percent-encoding: once, and never twice.
    ("/%61dmin/x", Admin),
    ("/%2Fadmin/x", Admin),
    ("/admin%2fx", Admin),
    ("/%70ublic/x", Public),
    ("/public%2Fx", Public),
    ("/public/%25", Public),
    ("/public/100%25done", Public),
    ("/public/%zz", Public),
    ("/%2561dmin/x", Refused),
    ("/public/%252e%252e/admin", Refused),
    ("/public/%25252e", Refused),
    ("/public%2F..%2Fadmin", Refused),
    ("/x%00", Refused),
    ("/x%0d%0aSet-Cookie:a=b", Refused),
    ("/public/%09", Refused),
    // Dot segments, raw and encoded.
    ("/public/../admin", Refused),
    ("/public/./x", Refused),
    ("/admin/..", Refused),
    ("/..", Refused),
    ("/public/%2e%2e/admin", Refused),
    ("/public/%2E%2E/admin", Refused),
    ("/public/.%2e/admin", Refused),
    ("/public/%2e./admin", Refused),
    // Backslashes.
    ("/public\\..\\admin", Refused),
    ("/public%5C..%5Cadmin", Refused),
    ("/admin%5cx", Refused),
    ("/public\\x", Refused),
    // Case: an app that ignores it must not find another route.
    ("/ADMIN/x", Refused),
    ("/Admin", Refused),
    ("/PUBLIC/x", Refused),
    ("/%41dmin/x", Refused),
    ("/X/y", Protected),
    ("/admin/X", Admin),
    // Unicode: compatibility forms and overlong UTF-8.
    ("/%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E/x", Refused),
    ("/public/%EF%BC%8E%EF%BC%8E/admin", Refused),
    ("/public/%E2%80%A5/admin", Refused),
    ("/public/%C0%AE%C0%AE/admin", Refused),
    ("/public/%C0%AF..%C0%AFadmin", Refused),
    ("/%C1%A1dmin/x", Refused),
    ("/public/%C1%9C", Refused),
    ("/public/%C0%80", Refused),
    ("/%E5%BC%A0%E4%B8%89/x", Protected),
    ("/public/%E5%BC%A0%E4%B8%89", Public),
    ("/public/%D5%C5%C8%FD", Public),
    ("/public/%EF%BC%9B", Public),
    ("/admin/%EF%BC%8Fx", Admin),
    // Slashes.
    ("//admin/x", Admin),
    ("/public//x", Public),
    ("///public", Public),
];

/// A gateway with a public prefix, a protected `/` and an `/admin` route only
/// alice may use; the test client is a trusted proxy (forward auth).
async fn env() -> (Env, String) {
    let env = start_trusting_localhost(
        r#"
[[route]]
path = "/admin"
upstream = "{upstream}"
protocol = "oidc"
policy = { users = ["20240001"] }
"#,
    )
    .await;
    let bob = Browser::new();
    let r = bob.login(&env.url("/x"), ("bob", "bob-password")).await;
    assert_eq!(r.status, 200, "bob logs in");
    let cookie = format!(
        "oag_session={}",
        bob.cookie("localhost", "oag_session").expect("session")
    );
    (env, cookie)
}

/// Status, body and the whole answer of a raw request.
async fn send(port: u16, request: String) -> (u16, String) {
    let text = raw_response(port, &request).await;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn cookie_line(cookie: Option<&str>) -> String {
    cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"))
}

/// Sends a row through the proxy; checks the answer and what the app saw.
async fn through_proxy(
    env: &Env,
    target: &str,
    class: Class,
    cookie: Option<&str>,
) -> Result<(), String> {
    let seen = env.echo.requests();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: localhost:{}\r\nAccept: text/html;q=0.9,application/json\r\n{}Connection: close\r\n\r\n",
        env.port,
        cookie_line(cookie)
    );
    let (status, text) = send(env.port, request).await;
    let signed_in = cookie.is_some();
    let want = match class {
        Public => 200,
        Protected | Admin if !signed_in => 302,
        Protected => 200,
        Admin => 403,
        Refused => 400,
    };
    if status != want {
        return Err(format!(
            "proxy {target} ({class:?}, signed in: {signed_in}) got {status}, not {want}"
        ));
    }
    let served = u64::from(status == 200);
    if env.echo.requests() != seen + served {
        return Err(format!(
            "proxy {target}: the app saw a request it should not, or missed one"
        ));
    }
    // The app gets the path as the client sent it.
    let json = serde_json::to_string(target).expect("json");
    if status == 200 && !text.contains(&format!("\"path\":{json}")) {
        return Err(format!("proxy {target}: the app saw another path:\n{text}"));
    }
    Ok(())
}

/// Sends a row through one of the forward-auth endpoints.
async fn through_forward_auth(
    env: &Env,
    nginx: bool,
    target: &str,
    class: Class,
    cookie: Option<&str>,
) -> Result<(), String> {
    let port = env.port;
    let (endpoint, forwarded) = if nginx {
        (
            "/_sso/auth",
            format!(
                "X-Original-URL: http://localhost:{port}{target}\r\nX-Original-Method: GET\r\n"
            ),
        )
    } else {
        (
            "/_sso/verify",
            format!("X-Forwarded-Host: localhost:{port}\r\nX-Forwarded-Uri: {target}\r\nX-Forwarded-Method: GET\r\n"),
        )
    };
    let request = format!(
        "GET {endpoint} HTTP/1.1\r\nHost: localhost:{port}\r\nAccept: application/json\r\n{forwarded}{}Connection: close\r\n\r\n",
        cookie_line(cookie)
    );
    let seen = env.echo.requests();
    let (status, text) = send(port, request).await;
    let signed_in = cookie.is_some();
    let forbidden = text.contains("\"error\":\"forbidden\"");
    let ok = match class {
        Public => status == 200,
        Protected | Admin if !signed_in => status == 401,
        Protected => status == 200,
        Admin => status == 403 && forbidden,
        Refused => status == 403 && !forbidden,
    };
    if !ok {
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        return Err(format!(
            "{endpoint} {target} ({class:?}, signed in: {signed_in}) got {status} {body}"
        ));
    }
    if env.echo.requests() != seen {
        return Err(format!("{endpoint} {target}: forward auth proxied it"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entrance_reads_every_path_the_same_way() {
    assert!(ROWS.len() >= 60, "the table has {} rows", ROWS.len());
    let (env, bob) = env().await;
    let mut wrong = Vec::new();
    for &(target, class) in ROWS {
        for cookie in [None, Some(bob.as_str())] {
            let results = [
                through_proxy(&env, target, class, cookie).await,
                through_forward_auth(&env, true, target, class, cookie).await,
                through_forward_auth(&env, false, target, class, cookie).await,
            ];
            wrong.extend(results.into_iter().filter_map(Result::err));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} answers were wrong:\n{}",
        wrong.len(),
        ROWS.len() * 6,
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_may_refuse_path_parameters() {
    let extra = r#"
[[route]]
path = "/strict"
upstream = "{upstream}"
protocol = "public"
path_params = "refuse"
"#;
    let env = start_with(Default::default(), "", extra).await;
    let port = env.port;
    let get = |target: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: localhost:{port}\r\nAccept: application/json\r\nConnection: close\r\n\r\n")
    };
    assert_eq!(raw_status(port, &get("/strict/a")).await, 200);
    for target in ["/strict/a;x", "/strict/a%3Bx", "/strict/;jsessionid=1"] {
        let text = raw_response(port, &get(target)).await;
        assert!(text.starts_with("HTTP/1.1 400"), "{target}:\n{text}");
        assert!(text.contains("\"error\":\"path_parameters\""), "{text}");
    }
    // Other routes keep taking them.
    assert_eq!(
        raw_status(port, &get("/public/page;jsessionid=1")).await,
        200
    );
    assert_eq!(env.echo.requests(), 2);
}
