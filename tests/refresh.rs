//! Token refresh before proxying: once per session however many requests arrive
//! together (the simulator rotates refresh tokens, so a second refresh would fail),
//! each route's failure policy, an IdP that is down (users keep working), and a
//! refreshed ID token that names another user (the session ends).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use oneaccess_sim::SimConfig;
use serde_json::json;

/// Access tokens live 100 s and the gateway refreshes 100 s before the end: every
/// request after login finds its token due.
fn due_at_once() -> SimConfig {
    SimConfig {
        access_token_ttl: Duration::from_secs(100),
        ..SimConfig::default()
    }
}

const ROUTES: &str = r#"
[[route]]
path = "/token"
upstream = "{upstream}"
protocol = "oidc"
pass_token = "access"

[[route]]
path = "/strict"
upstream = "{upstream}"
protocol = "oidc"
on_refresh_failure = "logout"

[[route]]
path = "/lenient"
upstream = "{upstream}"
protocol = "oidc"
on_refresh_failure = "serve"

[[route]]
path = "/oauth2"
upstream = "{upstream}"
protocol = "oauth2"
"#;

async fn env(session: &str) -> Env {
    start_full(
        due_at_once(),
        session,
        "refresh_margin_seconds = 100",
        ROUTES,
    )
    .await
}

/// A browser logged in at `path`, stopped at the callback so the landing request
/// (which would refresh) has not happened yet.
async fn logged_in_at(env: &Env, path: &str) -> Browser {
    let b = Browser::new();
    let cb = b.to_callback(env, path).await;
    assert_eq!(b.get(&cb).await.status, 302);
    assert!(b.cookie("localhost", "oag_session").is_some());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_refresh() {
    for mode in [r#"mode = "cookie""#, r#"mode = "server""#] {
        // Tokens of 62 s refreshed in their last 60: due 2 s after login, and
        // the renewed one not for 2 s more (in server mode, requests that read
        // the renewed session must not find it due).
        let env = start_full(
            SimConfig {
                access_token_ttl: Duration::from_secs(62),
                ..SimConfig::default()
            },
            mode,
            "refresh_margin_seconds = 60",
            ROUTES,
        )
        .await;
        let b = logged_in_at(&env, "/x").await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let tokens_before = env.sim.counters().token;
        let requests: Vec<_> = (0..20)
            .map(|i| {
                let b = b.clone();
                let url = env.url(&format!("/parallel/{i}"));
                tokio::spawn(async move {
                    b.get_with(&url, &[("x-requested-with", "XMLHttpRequest")])
                        .await
                })
            })
            .collect();
        for r in requests {
            let r = r.await.expect("join");
            assert_eq!(r.status, 200, "{mode}: {}", r.body);
            assert_eq!(r.upstream_header("x-forwarded-user"), [ALICE_ID]);
        }
        assert_eq!(
            env.sim.counters().token - tokens_before,
            1,
            "{mode}: one refresh for all"
        );
        // Later requests (new cookie or old) still work and refresh no more for now.
        assert_eq!(b.get(&env.url("/after")).await.status, 200);
        assert_eq!(env.sim.counters().token - tokens_before, 1, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_sessions_refresh_too() {
    let env = env("").await;
    let b = logged_in_at(&env, "/oauth2/x").await;
    let before = env.sim.counters().token;
    let r = b.get(&env.url("/oauth2/y")).await;
    assert_eq!(r.status, 200);
    assert_eq!(env.sim.counters().token - before, 1);
    assert!(
        r.set_cookies()
            .iter()
            .any(|c| c.starts_with("oag_session=")),
        "the refreshed session was not sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_follows_the_route_policy() {
    // reauthenticate (the default): log in again now.
    let e = env("").await;
    let b = logged_in_at(&e, "/x").await;
    e.sim.revoke_tokens();
    let r = b.get(&e.url("/x")).await;
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(r.location().expect("location").contains("/authorize?"));
    let r = b
        .get_with(&e.url("/x"), &[("accept", "application/json")])
        .await;
    assert_eq!(r.status, 401);

    // serve: the user keeps working until the session ends, and the IdP is not
    // asked again.
    let e = env("").await;
    let b = logged_in_at(&e, "/lenient/x").await;
    e.sim.revoke_tokens();
    let r = b.get(&e.url("/lenient/x")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream_header("x-forwarded-user"), [ALICE_ID]);
    let tokens = e.sim.counters().token;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(b.get(&e.url("/lenient/y")).await.status, 200);
    assert_eq!(
        e.sim.counters().token,
        tokens,
        "a refused refresh token was tried again"
    );

    // logout: the session ends everywhere, a copied cookie included.
    let e = env(r#"mode = "server""#).await;
    let b = logged_in_at(&e, "/strict/x").await;
    let copy = Browser::new();
    copy.set_cookie(
        "localhost",
        "oag_session",
        &b.cookie("localhost", "oag_session").expect("cookie"),
    );
    e.sim.revoke_tokens();
    assert_eq!(b.get(&e.url("/strict/x")).await.status, 302);
    assert_eq!(
        copy.get(&e.url("/lenient/x")).await.status,
        302,
        "the session outlived a logout policy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_keep_working_while_the_idp_is_down() {
    let env = env("").await;
    let b = logged_in_at(&env, "/x").await;
    env.sim.set_down(true);
    let r = b.get(&env.url("/x")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.upstream_header("x-forwarded-user"), [ALICE_ID]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_id_token_for_another_user_ends_the_session() {
    let env = env("").await;
    let b = logged_in_at(&env, "/x").await;
    env.sim.set_token_hook(Some(Arc::new(|_, c| {
        c.insert("sub".into(), json!("20249999"));
    })));
    let r = b.get(&env.url("/x")).await;
    assert_eq!(
        r.status, 302,
        "served with a refreshed token for another user"
    );
    env.sim.set_token_hook(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_session_refreshes_again_when_its_new_token_is_due() {
    // Every token is due at once (100 s tokens, refreshed 100 s early): each
    // request with the latest cookie must refresh, and the app must get each
    // new access token, not a stale one.
    let env = env("").await;
    let b = logged_in_at(&env, "/token/x").await;
    let before = env.sim.counters().token;
    let mut seen = Vec::new();
    for i in 0..3 {
        let r = b.get(&env.url(&format!("/token/{i}"))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        seen.push(r.upstream_header("authorization").concat());
    }
    assert_eq!(
        env.sim.counters().token - before,
        3,
        "a refresh was skipped while its token was due"
    );
    seen.dedup();
    assert_eq!(seen.len(), 3, "the app got the same token twice: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_never_gets_an_access_token_past_its_end() {
    // Tokens of 2 s, refreshed in their last second.
    let env = start_full(
        SimConfig {
            access_token_ttl: Duration::from_secs(2),
            ..SimConfig::default()
        },
        "",
        "refresh_margin_seconds = 1",
        ROUTES,
    )
    .await;
    let b = logged_in_at(&env, "/token/x").await;
    env.sim.set_down(true);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The token is past its end and the IdP is down: no stale token upstream.
    let seen = env.echo.requests();
    let r = b
        .get_with(&env.url("/token/y"), &[("accept", "application/json")])
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "idp_unavailable");
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(env.echo.requests(), seen, "the app got the request");
    // A route that passes no token serves the user as before.
    assert_eq!(b.get(&env.url("/x")).await.status, 200);
    // The IdP back: the next attempt (a moment later) refreshes, and serves.
    env.sim.set_down(false);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = b.get(&env.url("/token/z")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.upstream_header("authorization")[0].starts_with("Bearer "));
}
