//! Per-route authorization end to end, with browsers and API clients: who (users,
//! email domains, claims), how (methods, path prefixes, with encoded and
//! doubled-slash tricks), and from where (client networks, believing
//! X-Forwarded-For only from a trusted proxy).

mod common;

use common::*;

const ROUTES: &str = r#"
[[route]]
path = "/admins"
upstream = "{upstream}"
protocol = "oidc"
policy = { users = ["bob"] }

[[route]]
path = "/example-staff"
upstream = "{upstream}"
protocol = "oidc"
policy = { email_domains = ["example.com"], claims = { preferred_username = "alice" } }

[[route]]
path = "/partners"
upstream = "{upstream}"
protocol = "oidc"
policy = { email_domains = ["partner.example.net"] }

[[route]]
path = "/readonly"
upstream = "{upstream}"
protocol = "oidc"
policy = { methods = ["GET", "HEAD"] }

[[route]]
path = "/reports"
upstream = "{upstream}"
protocol = "oidc"
policy = { paths = ["/reports/public"] }

[[route]]
path = "/internal"
upstream = "{upstream}"
protocol = "oidc"
policy = { networks = ["10.0.0.0/8"] }

[[route]]
path = "/lan-only"
upstream = "{upstream}"
protocol = "public"
policy = { networks = ["10.0.0.0/8"], deny_networks = ["10.66.0.0/16"] }

[[route]]
path = "/fresh"
upstream = "{upstream}"
protocol = "oidc"
policy = { users = ["bob"], on_deny = "reauthenticate" }
"#;

async fn env() -> (Env, Browser) {
    // The test client connects from 127.0.0.1: it plays the trusted proxy.
    let env = start_trusting_localhost(ROUTES).await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/"), USER).await.status, 200);
    (env, b)
}

const API: &[(&str, &str)] = &[("accept", "application/json")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_pass() {
    let (env, alice) = env().await;
    // users: alice is not bob.
    let r = alice.get(&env.url("/admins/x")).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Access denied"));
    let r = alice.get_with(&env.url("/admins/x"), API).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "forbidden");
    let bob = Browser::new();
    assert_eq!(
        bob.login(&env.url("/admins/x"), ("bob", "bob-password"))
            .await
            .status,
        200
    );
    // email domain AND a claim.
    assert_eq!(alice.get(&env.url("/example-staff/x")).await.status, 200);
    assert_eq!(
        bob.get(&env.url("/example-staff/x")).await.status,
        403,
        "bob has the domain, not the claim"
    );
    assert_eq!(alice.get(&env.url("/partners/x")).await.status, 403);
    // Encoded or doubled-slash spellings of /admins route to /admins, not to the
    // unrestricted `/` (the upstream would serve them as /admins).
    let cookie = format!(
        "oag_session={}",
        alice.cookie("localhost", "oag_session").expect("session")
    );
    for target in ["/%61dmins/x", "//admins/x", "/%2Fadmins/x"] {
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost:{}\r\nCookie: {cookie}\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
            env.port
        );
        assert_eq!(raw_status(env.port, &req).await, 403, "{target}");
    }
    // Nothing reached the app for the denied requests.
    let seen = env.echo.requests();
    assert_eq!(alice.get(&env.url("/admins/y")).await.status, 403);
    assert_eq!(env.echo.requests(), seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn how_methods_and_paths() {
    let (env, alice) = env().await;
    assert_eq!(alice.get(&env.url("/readonly/x")).await.status, 200);
    let r = alice
        .request(reqwest::Method::POST, &env.url("/readonly/x"), API, None)
        .await;
    assert_eq!(r.status, 403);
    let r = alice
        .request(reqwest::Method::DELETE, &env.url("/readonly/x"), API, None)
        .await;
    assert_eq!(r.status, 403);

    assert_eq!(alice.get(&env.url("/reports/public/q1")).await.status, 200);
    assert_eq!(alice.get(&env.url("/reports/secret")).await.status, 403);
    // Spellings an upstream reads as /reports/secret, or as leaving /reports/public.
    let cookie = format!(
        "oag_session={}",
        alice.cookie("localhost", "oag_session").expect("session")
    );
    for target in [
        "/reports/%73ecret",
        "/reports//secret",
        "/reports%2Fsecret",
        "/reports/public%2F..%2Fsecret",
        "/reports/public/../secret",
        "/%72eports/secret",
    ] {
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost:{}\r\nCookie: {cookie}\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
            env.port
        );
        let status = raw_status(env.port, &req).await;
        assert!(status == 403 || status == 400, "{target} gave {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_where_networks_and_trusted_proxies() {
    let (env, alice) = env().await;
    // The socket (127.0.0.1) is a trusted proxy without X-Forwarded-For: not in 10/8.
    assert_eq!(alice.get(&env.url("/internal/x")).await.status, 403);
    // The trusted proxy says the client is in 10/8.
    let r = alice
        .get_with(&env.url("/internal/x"), &[("x-forwarded-for", "10.1.2.3")])
        .await;
    assert_eq!(r.status, 200);
    // A client-written entry on the left does not count: the proxy appended the real one.
    let r = alice
        .get_with(
            &env.url("/internal/x"),
            &[("x-forwarded-for", "10.1.2.3, 203.0.113.5")],
        )
        .await;
    assert_eq!(r.status, 403);
    // Public routes too, with a denied sub-range.
    let anon = Browser::new();
    assert_eq!(
        anon.get_with(&env.url("/lan-only/x"), &[("x-forwarded-for", "10.9.9.9")])
            .await
            .status,
        200
    );
    assert_eq!(
        anon.get_with(&env.url("/lan-only/x"), &[("x-forwarded-for", "10.66.1.1")])
            .await
            .status,
        403
    );
    assert_eq!(
        anon.get_with(&env.url("/lan-only/x"), API).await.status,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthenticate_never_loops() {
    let (env, alice) = env().await;
    // A session a few seconds old that is still denied gets 403, not another
    // trip to the IdP (the unit test covers the fresh-login redirect itself).
    let r = alice.get(&env.url("/fresh/x")).await;
    assert_eq!(r.status, 403);
}
