//! Every ID-token check, end to end: the simulator issues a token with one defect,
//! and the login must fail with no session, never pass with a forged identity.

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use oneaccess_sim::{Signing, TokenHook};
use serde_json::{json, Map, Value};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

fn hook(
    f: impl Fn(&mut Map<String, Value>, &mut Map<String, Value>) + Send + Sync + 'static,
) -> Option<TokenHook> {
    Some(Arc::new(f))
}

/// Logs in with a fresh browser; returns the final status and whether a session
/// cookie was set.
async fn login(env: &Env) -> (u16, bool) {
    let b = Browser::new();
    let last = b.login(&env.url("/"), USER).await;
    (last.status, b.cookie("localhost", "oag_session").is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_id_token_is_refused() {
    let env = start().await;
    let iss = env.sim.issuer();
    let cases: Vec<(&str, Option<TokenHook>, Signing)> = vec![
        (
            "issuer with one extra character",
            hook(move |_, c| {
                c.insert("iss".into(), json!(format!("{iss}x")));
            }),
            Signing::Normal,
        ),
        (
            "wrong audience",
            hook(|_, c| {
                c.insert("aud".into(), json!("another-client"));
            }),
            Signing::Normal,
        ),
        (
            "several audiences, no azp",
            hook(|_, c| {
                c.insert("aud".into(), json!(["demo-client", "other"]));
                c.remove("azp");
            }),
            Signing::Normal,
        ),
        (
            "azp of another client",
            hook(|_, c| {
                c.insert("azp".into(), json!("other"));
            }),
            Signing::Normal,
        ),
        ("bad signature", None, Signing::CorruptSignature),
        ("alg none", None, Signing::AlgNone),
        (
            "HS256 keyed with the client secret",
            None,
            Signing::Hs256WithClientSecret,
        ),
        ("unknown kid", None, Signing::UnknownKid),
        (
            "missing iat",
            hook(|_, c| {
                c.remove("iat");
            }),
            Signing::Normal,
        ),
        (
            "iat in the future",
            hook(|_, c| {
                c.insert("iat".into(), json!(now() + 3600));
            }),
            Signing::Normal,
        ),
        (
            "missing sub",
            hook(|_, c| {
                c.remove("sub");
            }),
            Signing::Normal,
        ),
        (
            "empty sub",
            hook(|_, c| {
                c.insert("sub".into(), json!(""));
            }),
            Signing::Normal,
        ),
        (
            "wrong nonce",
            hook(|_, c| {
                c.insert("nonce".into(), json!("not-the-nonce"));
            }),
            Signing::Normal,
        ),
        (
            "missing nonce",
            hook(|_, c| {
                c.remove("nonce");
            }),
            Signing::Normal,
        ),
        (
            "expired",
            hook(|_, c| {
                c.insert("exp".into(), json!(now() - 3600));
            }),
            Signing::Normal,
        ),
        (
            "missing exp",
            hook(|_, c| {
                c.remove("exp");
            }),
            Signing::Normal,
        ),
        (
            "not yet valid",
            hook(|_, c| {
                c.insert("nbf".into(), json!(now() + 3600));
            }),
            Signing::Normal,
        ),
        (
            "alg RS512 not allowed",
            hook(|h, _| {
                h.insert("alg".into(), json!("RS512"));
            }),
            Signing::Normal,
        ),
    ];
    for (name, h, signing) in cases {
        env.sim.set_token_hook(h);
        env.sim.set_signing(signing);
        let (status, session) = login(&env).await;
        assert!(!session, "{name}: a session was created");
        assert_eq!(status, 502, "{name}");
    }
    // Control: the same environment with a clean token logs in.
    env.sim.set_token_hook(None);
    env.sim.set_signing(Signing::Normal);
    assert_eq!(login(&env).await, (200, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tolerated_variations_pass() {
    let env = start().await;
    let cases: Vec<(&str, Option<TokenHook>)> = vec![
        (
            "several audiences with azp = us",
            hook(|_, c| {
                c.insert("aud".into(), json!(["other", "demo-client"]));
                c.insert("azp".into(), json!("demo-client"));
            }),
        ),
        (
            "expired within the clock-skew leeway",
            hook(|_, c| {
                c.insert("exp".into(), json!(now() - 20));
            }),
        ),
        (
            "iat slightly ahead, within leeway",
            hook(|_, c| {
                c.insert("iat".into(), json!(now() + 20));
            }),
        ),
        (
            "unknown extra claims",
            hook(|_, c| {
                c.insert("x-custom".into(), json!({"a": [1, 2]}));
            }),
        ),
    ];
    for (name, h) in cases {
        env.sim.set_token_hook(h);
        assert_eq!(login(&env).await, (200, true), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_once_and_works() {
    let env = start().await;
    assert_eq!(login(&env).await, (200, true));
    let fetched = env.sim.counters().jwks;
    env.sim.rotate_key();
    // Past the refetch throttle of the test config (2 s), the new kid is looked up.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(login(&env).await, (200, true));
    assert_eq!(env.sim.counters().jwks, fetched + 1);
    // Cached now: more logins, no more fetches.
    assert_eq!(login(&env).await, (200, true));
    assert_eq!(env.sim.counters().jwks, fetched + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_right_after_start_or_reload_is_fetched_at_once() {
    // The default throttle (10 s), not the test config's 2 s.
    let sim = oneaccess_sim::Sim::start(Default::default())
        .await
        .expect("sim");
    let echo = oneaccess_sim::echo::Echo::start().await.expect("echo");
    let port = free_port();
    let text = config_text(port, &sim, &echo, "", "").replace("jwks_min_refetch_seconds = 2\n", "");
    let gw = start_gateway(&text).await;
    let env = Env {
        sim,
        echo,
        gw,
        port,
    };
    // Start-up fetched the keys a moment ago; the IdP rotates now.
    env.sim.rotate_key();
    assert_eq!(login(&env).await, (200, true), "a new kid after start-up");
    // A reload fetches the set again; the IdP rotates right after.
    let cfg = oneaccess_gateway::config::parse(&text, std::path::Path::new("."), &|_| None)
        .expect("config");
    env.gw.live.reload_with(Ok(cfg)).await.expect("reload");
    env.sim.rotate_key();
    assert_eq!(login(&env).await, (200, true), "a new kid after a reload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_costs_at_most_one_fetch_per_interval() {
    let env = start().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let before = env.sim.counters().jwks;
    env.sim.set_signing(Signing::UnknownKid);
    for _ in 0..5 {
        assert_eq!(login(&env).await, (502, false));
    }
    let fetched = env.sim.counters().jwks - before;
    assert!(
        fetched <= 1,
        "{fetched} JWKS fetches for 5 unknown kids within the throttle"
    );
}
