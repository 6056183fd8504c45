//! What reaches the app: identity headers only from the session, every client-sent
//! spelling stripped (protected and public routes), the gateway's cookies kept
//! away from the app and safe from it, and requests that could mean two things refused.

mod common;

use common::*;

const SPOOFS: [(&str, &str); 6] = [
    ("X-Forwarded-User", "admin"),
    ("x_forwarded_user", "admin"),
    ("X.Forwarded.Email", "admin@example.com"),
    ("X_FORWARDED_EMAIL", "admin@example.com"),
    ("x-forwarded-preferred-username", "root"),
    ("X-Forwarded_Preferred.Username", "root"),
];

fn normalised(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_never_reach_the_app() {
    let env = start().await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/"), USER).await.status, 200);

    // Protected route: only the session's values, once each.
    let r = b.get_with(&env.url("/x"), &SPOOFS).await;
    assert_eq!(r.status, 200);
    assert_alice_headers(&r);
    let names = r.upstream_header_names();
    for n in &names {
        if normalised(n).starts_with("x-forwarded-user")
            || normalised(n).starts_with("x-forwarded-email")
            || normalised(n).starts_with("x-forwarded-preferred")
        {
            assert!(
                !n.contains(['_', '.']),
                "a spoofed spelling `{n}` reached the app"
            );
        }
    }

    // Public route, logged in or not: none at all.
    for browser in [b.clone(), Browser::new()] {
        let r = browser.get_with(&env.url("/public/page"), &SPOOFS).await;
        assert_eq!(r.status, 200);
        for n in r.upstream_header_names() {
            let n = normalised(&n);
            assert!(
                !(n == "x-forwarded-user"
                    || n == "x-forwarded-email"
                    || n == "x-forwarded-preferred-username"),
                "`{n}` reached a public app"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_sees_its_cookies_but_not_the_gateways() {
    let env = start().await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/"), USER).await.status, 200);
    b.set_cookie("localhost", "app_pref", "dark");
    b.set_cookie("localhost", "oag_session_login_zzz", "leftover");
    let r = b.get(&env.url("/x")).await;
    let cookie = r.upstream_header("cookie").join("; ");
    assert!(cookie.contains("app_pref=dark"), "{cookie}");
    assert!(!cookie.contains("oag_session"), "{cookie}");
    // Public routes too.
    let r = b.get(&env.url("/public/x")).await;
    let cookie = r.upstream_header("cookie").join("; ");
    assert!(
        cookie.contains("app_pref=dark") && !cookie.contains("oag_session"),
        "{cookie}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_cannot_overwrite_the_session_cookie() {
    let env = start().await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/"), USER).await.status, 200);
    let session = b.cookie("localhost", "oag_session").expect("session");
    let r = b
        .get(&env.url("/set-cookie?name=oag_session&value=evil"))
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.set_cookies()
            .iter()
            .all(|c| !c.starts_with("oag_session=")),
        "{:?}",
        r.set_cookies()
    );
    assert_eq!(b.cookie("localhost", "oag_session"), Some(session));
    // Its own cookies pass.
    let r = b.get(&env.url("/set-cookie?name=theme&value=dark")).await;
    assert!(r.set_cookies().iter().any(|c| c.starts_with("theme=dark")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_cannot_slip_past_routing() {
    let env = start().await;
    for target in [
        "/public/../secret",
        "/public/%2e%2e/secret",
        "/public/%2E%2E%2Fsecret",
        "/public%2f..%2fsecret",
        "/public/./x",
    ] {
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            env.port
        );
        assert_eq!(raw_status(env.port, &req).await, 400, "{target}");
    }
    assert_eq!(env.echo.requests(), 0, "nothing reached the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_no_route_get_404() {
    let sim = oneaccess_sim::Sim::start(Default::default())
        .await
        .expect("sim");
    let echo = oneaccess_sim::echo::Echo::start().await.expect("echo");
    let port = free_port();
    // Only a host-specific route: other hosts match nothing.
    let text = config_text(port, &sim, &echo, "", "")
        .replace(
            "[[route]]\npath = \"/\"\n",
            "[[route]]\nhost = \"app.localhost\"\npath = \"/\"\n",
        )
        .replace(
            "[[route]]\npath = \"/public\"\n",
            "[[route]]\nhost = \"app.localhost\"\npath = \"/public\"\n",
        );
    let _gw = start_gateway(&text).await;
    let b = Browser::new();
    let r = b.get(&format!("http://localhost:{port}/")).await;
    assert_eq!(r.status, 404);
    let req = format!(
        "GET /public/x HTTP/1.1\r\nHost: app.localhost:{port}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw_status(port, &req).await, 200);
}
