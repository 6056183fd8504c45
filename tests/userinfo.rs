//! OIDC routes ask userinfo at login (OIDC Core 5.3), as a conforming provider
//! expects: its claims fill what the ID token lacks (email, the login name), a
//! `sub` other than the ID token's fails the login, and userinfo being down fails
//! a login only when the route needs a claim the ID token does not have.

mod common;

use std::sync::Arc;

use common::*;
use oneaccess_sim::SimConfig;

const ROUTES: &str = r#"
[[route]]
path = "/staff"
upstream = "{upstream}"
protocol = "oidc"
policy = { email_domains = ["example.com"] }
"#;

/// ID tokens with only the claims a conforming provider puts there by default:
/// no email, no login name.
fn lean_id_tokens(env: &Env) {
    env.sim.set_token_hook(Some(Arc::new(|_, c| {
        c.remove("email");
        c.remove("preferred_username");
        c.remove("name");
    })));
}

async fn env(provider_extra: &str) -> Env {
    start_with(SimConfig::default(), provider_extra, ROUTES).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_fills_what_the_id_token_lacks() {
    let env = env("").await;
    lean_id_tokens(&env);
    let before = env.sim.counters().userinfo;
    let b = Browser::new();
    let page = b.login(&env.url("/x"), USER).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_alice_headers(&page);
    assert_eq!(
        env.sim.counters().userinfo - before,
        1,
        "one call, at login"
    );
    // Its email is what an email_domains rule reads.
    assert_eq!(b.get(&env.url("/staff/report")).await.status, 200);
    // Logged-in requests ask nothing.
    assert_eq!(b.get(&env.url("/y")).await.status, 200);
    assert_eq!(env.sim.counters().userinfo - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_for_another_user_fails_the_login() {
    let env = env("").await;
    env.sim.set_userinfo_override(Some((
        200,
        r#"{"id":"20249999","userName":"mallory","email":"mallory@example.com"}"#.into(),
    )));
    let b = Browser::new();
    let page = b.login(&env.url("/x"), USER).await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(b.cookie("localhost", "oag_session").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_down_fails_only_the_logins_that_need_it() {
    let env = env("").await;
    env.sim
        .set_userinfo_override(Some((500, r#"{"error":"server_error"}"#.into())));
    // The ID token has every claim the routes use: the login goes on.
    let b = Browser::new();
    let page = b.login(&env.url("/x"), USER).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_alice_headers(&page);
    // It lacks the email the headers and the staff policy read: no half session.
    lean_id_tokens(&env);
    let b = Browser::new();
    let page = b.login(&env.url("/x"), USER).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(b.cookie("localhost", "oag_session").is_none());
    // With `always`, any failure fails the login.
    let strict = start_with(SimConfig::default(), r#"userinfo = "always""#, ROUTES).await;
    strict
        .sim
        .set_userinfo_override(Some((500, r#"{"error":"server_error"}"#.into())));
    let page = Browser::new().login(&strict.url("/x"), USER).await;
    assert_eq!(page.status, 503, "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_never_is_not_asked() {
    let env = env(r#"userinfo = "never""#).await;
    lean_id_tokens(&env);
    let before = env.sim.counters().userinfo;
    let page = Browser::new().login(&env.url("/x"), USER).await;
    assert_eq!(page.status, 200);
    assert_eq!(env.sim.counters().userinfo, before);
    assert_eq!(page.upstream_header("x-forwarded-user"), [ALICE_ID]);
    assert!(page.upstream_header("x-forwarded-email").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_keeps_the_claims_userinfo_gave() {
    let env = start_full(
        SimConfig {
            access_token_ttl: std::time::Duration::from_secs(100),
            ..SimConfig::default()
        },
        "",
        "refresh_margin_seconds = 100",
        "",
    )
    .await;
    lean_id_tokens(&env);
    let b = Browser::new();
    let tokens = env.sim.counters().token;
    let page = b.login(&env.url("/x"), USER).await;
    assert_eq!(page.status, 200);
    // The landing request refreshed (tokens are due at once); the new ID token
    // is as lean, and the email stays.
    let r = b.get(&env.url("/again")).await;
    assert!(
        env.sim.counters().token - tokens >= 2,
        "no refresh happened"
    );
    assert_alice_headers(&r);
}
