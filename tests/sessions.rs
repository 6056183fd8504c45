//! Sessions that can be ended before they expire, in both modes:
//! - logout kills a copied cookie too;
//! - OIDC back-channel logout, by `sid` or by `sub`, straight from the simulator
//!   or fanned out when the user logs out at OneAccess;
//! - CAS single logout;
//! - every malformed logout token refused;
//! - a Redis outage answered with 503, not a login loop;
//! - a Redis Sentinel failover under a logged-in user's steady requests: at most
//!   a short window of 503s, never a login loop, and afterwards the session,
//!   the revocations and the single-use marks are all still there;
//! - two gateway processes sharing Redis, where what happens on one holds on the
//!   other;
//! - server mode's per-worker copies of sessions: Redis read once per worker,
//!   and a logout or a refresh on another gateway still reaching the copy.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis_nodes::{SentinelGroup, ACL_USER};
use common::*;
use serde_json::{json, Map, Value};

const MODES: [(&str, &str); 2] = [
    ("cookie", r#"mode = "cookie""#),
    ("server", r#"mode = "server""#),
];

fn backchannel(env: &Env) -> String {
    env.url("/_sso/backchannel-logout")
}

/// Logs a fresh browser in at `/`; returns it and its session cookie.
async fn logged_in(env: &Env) -> (Browser, String) {
    let b = Browser::new();
    let page = b.login(&env.url("/"), USER).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cookie = b.cookie("localhost", "oag_session").expect("session");
    (b, cookie)
}

async fn is_logged_in(b: &Browser, env: &Env) -> bool {
    let r = b.get(&env.url("/check")).await;
    match r.status {
        200 => true,
        302 => false,
        s => panic!("unexpected {s}: {}", r.body),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_also_kills_a_copied_cookie_in_both_modes() {
    for (mode, lines) in MODES {
        let env = start_sessions(lines).await;
        let (b, cookie) = logged_in(&env).await;
        if mode == "server" {
            assert!(
                cookie.len() < 120,
                "server mode keeps only an id in the cookie: {}",
                cookie.len()
            );
        }
        let copy = Browser::new();
        copy.set_cookie("localhost", "oag_session", &cookie);
        assert!(is_logged_in(&copy, &env).await, "{mode}");
        let out = b.log_out(&env.url("/_sso/logout")).await;
        assert_eq!(out.status, 302);
        assert!(
            !is_logged_in(&copy, &env).await,
            "{mode}: the copied cookie outlived the logout"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_logout_by_sid_ends_that_session_only() {
    for (mode, lines) in MODES {
        let env = start_sessions(lines).await;
        let (alice1, _) = logged_in(&env).await;
        let (alice2, _) = logged_in(&env).await;
        let sids = env.sim.sids_of("alice");
        assert_eq!(sids.len(), 2, "two SSO sessions at the IdP");
        let token = env.sim.mint_logout_token(None, Some(&sids[0]));
        let (status, _) = env
            .sim
            .send_backchannel_logout(&backchannel(&env), &token)
            .await
            .expect("post");
        assert_eq!(status, 200, "{mode}");
        assert!(
            !is_logged_in(&alice1, &env).await,
            "{mode}: the sid's session lives on"
        );
        assert!(
            is_logged_in(&alice2, &env).await,
            "{mode}: another session was ended"
        );
        // A later login is not affected by the old revocation.
        let (alice3, _) = logged_in(&env).await;
        assert!(is_logged_in(&alice3, &env).await, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_logout_by_sub_ends_every_session_of_the_user() {
    for (mode, lines) in MODES {
        let env = start_sessions(lines).await;
        let (a1, _) = logged_in(&env).await;
        let (a2, _) = logged_in(&env).await;
        let bob = Browser::new();
        assert_eq!(
            bob.login(&env.url("/"), ("bob", "bob-password"))
                .await
                .status,
            200
        );
        let token = env.sim.mint_logout_token(Some(ALICE_ID), None);
        let (status, _) = env
            .sim
            .send_backchannel_logout(&backchannel(&env), &token)
            .await
            .expect("post");
        assert_eq!(status, 200);
        assert!(!is_logged_in(&a1, &env).await, "{mode}");
        assert!(!is_logged_in(&a2, &env).await, "{mode}");
        assert!(
            is_logged_in(&bob, &env).await,
            "{mode}: another user was logged out"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_at_oneaccess_reaches_the_gateway() {
    let env = start_sessions(r#"mode = "server""#).await;
    env.sim.register_backchannel_logout_uri(&backchannel(&env));
    let (b, _) = logged_in(&env).await;
    // The user logs out at OneAccess from another application.
    env.sim.end_sso_sessions_of("alice").await;
    assert_eq!(env.sim.backchannel_log().last().map(|(_, s)| *s), Some(200));
    assert!(!is_logged_in(&b, &env).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_logout_tokens_get_400_and_end_nothing() {
    let env = start().await;
    let (b, _) = logged_in(&env).await;
    let sid = env.sim.sids_of("alice")[0].clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let base = || -> Map<String, Value> {
        json!({
            "iss": env.sim.issuer(), "aud": "demo-client", "iat": now, "exp": now + 120,
            "jti": format!("j-{}", rand_suffix()), "sid": sid,
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}
        })
        .as_object()
        .expect("object")
        .clone()
    };
    let with = |f: &dyn Fn(&mut Map<String, Value>)| {
        let mut c = base();
        f(&mut c);
        env.sim.mint_logout_token_with(c)
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong issuer",
            with(&|c| {
                c.insert("iss".into(), json!(format!("{}x", env.sim.issuer())));
            }),
        ),
        (
            "wrong audience",
            with(&|c| {
                c.insert("aud".into(), json!("other"));
            }),
        ),
        (
            "expired",
            with(&|c| {
                c.insert("exp".into(), json!(now - 3600));
            }),
        ),
        (
            "no iat",
            with(&|c| {
                c.remove("iat");
            }),
        ),
        (
            "no events",
            with(&|c| {
                c.remove("events");
            }),
        ),
        (
            "another event",
            with(&|c| {
                c.insert("events".into(), json!({"urn:other": {}}));
            }),
        ),
        (
            "a nonce",
            with(&|c| {
                c.insert("nonce".into(), json!("n"));
            }),
        ),
        (
            "neither sub nor sid",
            with(&|c| {
                c.remove("sid");
            }),
        ),
        (
            "no jti",
            with(&|c| {
                c.remove("jti");
            }),
        ),
        ("not a JWT", "abc.def".to_string()),
    ];
    for (name, token) in cases {
        let (status, body) = env
            .sim
            .send_backchannel_logout(&backchannel(&env), &token)
            .await
            .expect("post");
        assert_eq!(status, 400, "{name}: {body}");
        assert!(is_logged_in(&b, &env).await, "{name} ended the session");
    }
    // Bad signatures: alg none and a forged signature.
    for signing in [
        oneaccess_sim::Signing::AlgNone,
        oneaccess_sim::Signing::CorruptSignature,
    ] {
        env.sim.set_signing(signing);
        let token = env.sim.mint_logout_token(None, Some(&sid));
        let (status, _) = env
            .sim
            .send_backchannel_logout(&backchannel(&env), &token)
            .await
            .expect("post");
        assert_eq!(status, 400, "{signing:?}");
    }
    env.sim.set_signing(oneaccess_sim::Signing::Normal);
    assert!(is_logged_in(&b, &env).await);

    // A good token works once; its replay is refused.
    let token = env.sim.mint_logout_token(None, Some(&sid));
    let (status, _) = env
        .sim
        .send_backchannel_logout(&backchannel(&env), &token)
        .await
        .expect("post");
    assert_eq!(status, 200);
    let (status, _) = env
        .sim
        .send_backchannel_logout(&backchannel(&env), &token)
        .await
        .expect("post");
    assert_eq!(status, 400, "a replayed jti");
    assert!(!is_logged_in(&b, &env).await);
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backchannel_endpoint_answers_like_the_spec() {
    let env = start().await;
    let c = reqwest::Client::new();
    // Unknown form fields are ignored; the answer is never cached.
    let token = env.sim.mint_logout_token(Some("nobody"), None);
    let r = c
        .post(backchannel(&env))
        .form(&[("logout_token", token.as_str()), ("extra", "ignored")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    // No token, and a body over the cap.
    let r = c
        .post(backchannel(&env))
        .form(&[("x", "y")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let big = "a".repeat(100 * 1024);
    let r = c
        .post(backchannel(&env))
        .form(&[("logout_token", big.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_single_logout_ends_the_ticket_s_session_only() {
    for (mode, lines) in MODES {
        let env = start_full(
            Default::default(),
            lines,
            "",
            "[[route]]\npath = \"/cas\"\nupstream = \"{upstream}\"\nprotocol = \"cas\"\n",
        )
        .await;
        env.sim
            .register_cas_logout_url(&env.url("/_sso/cas/callback"));
        let b = Browser::new();
        assert_eq!(b.login(&env.url("/cas/x"), USER).await.status, 200);
        let other = Browser::new();
        assert_eq!(
            other
                .login(&env.url("/cas/x"), ("bob", "bob-password"))
                .await
                .status,
            200
        );
        // A ticket this gateway never used: nothing happens.
        let (status, _) = env
            .sim
            .send_cas_logout(&env.url("/_sso/cas/callback"), "ST-never-seen")
            .await
            .expect("post");
        assert_eq!(status, 200);
        assert_eq!(b.get(&env.url("/cas/y")).await.status, 200, "{mode}");
        // Alice logs out at OneAccess's CAS: the server sends SLO for her ticket.
        logout_at_cas(&env, &b).await;
        let r = b.get(&env.url("/cas/y")).await;
        assert_eq!(r.status, 302, "{mode}: the CAS session lives on after SLO");
        assert_eq!(
            other.get(&env.url("/cas/y")).await.status,
            200,
            "{mode}: bob was logged out"
        );
        // Malformed logout requests are refused.
        let r = reqwest::Client::new()
            .post(env.url("/_sso/cas/callback"))
            .form(&[(
                "logoutRequest",
                "<!DOCTYPE x [<!ENTITY e \"ST-1\">]><a>&e;</a>",
            )])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 400);
    }
}

/// The browser logs out at OneAccess's CAS, which posts single logout for its
/// ticket to the gateway; the browser's SSO cookie at the CAS server goes too.
async fn logout_at_cas(env: &Env, b: &Browser) {
    let hops = b
        .visit(&format!("{}/api/v1/cas/logout", env.sim.base_url()))
        .await;
    assert!(hops.iter().all(|h| h.status < 500));
    assert!(env.sim.counters().cas_slo_sent >= 1);
    b.remove_cookie("127.0.0.1", "oa_sso");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_single_logout_is_taken_only_from_slo_networks() {
    let route = |nets: &str| {
        format!("[[route]]\npath = \"/cas\"\nupstream = \"{{upstream}}\"\nprotocol = \"cas\"\ncas = {{ slo_networks = [{nets}] }}\n")
    };
    for (nets, allowed) in [
        ("\"10.0.0.0/8\"", false),
        ("\"127.0.0.0/8\", \"::1\"", true),
    ] {
        let env = start_full(Default::default(), "", "", &route(nets)).await;
        env.sim
            .register_cas_logout_url(&env.url("/_sso/cas/callback"));
        let b = Browser::new();
        assert_eq!(b.login(&env.url("/cas/x"), USER).await.status, 200);
        logout_at_cas(&env, &b).await;
        let status = b.get(&env.url("/cas/y")).await.status;
        if allowed {
            assert_eq!(
                status, 302,
                "{nets}: SLO from the CAS server's network ends the session"
            );
        } else {
            assert_eq!(status, 200, "{nets}: SLO from elsewhere changes nothing");
            let (status, _) = env
                .sim
                .send_cas_logout(&env.url("/_sso/cas/callback"), "ST-any")
                .await
                .expect("post");
            assert_eq!(status, 403);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_gives_503_not_a_login_loop() {
    let mut redis = RedisServer::start();
    let lines = format!(
        "mode = \"server\"\nstore = \"redis\"\nredis_url = \"{}\"",
        redis.url()
    );
    let env = start_sessions(&lines).await;
    let (b, _) = logged_in(&env).await;
    redis.stop();
    // A worker's copy of the session may answer while the gateway's copy of the
    // revocations still counts as current (1.5 s after its last read of Redis);
    // then every request gets 503. Never a login.
    let stopped = Instant::now();
    let r = loop {
        let r = b.get(&env.url("/check")).await;
        match r.status {
            200 if stopped.elapsed() < Duration::from_secs(3) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            _ => break r,
        }
    };
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("session store"), "{}", r.body);
    let r = b
        .get_with(&env.url("/check"), &[("accept", "application/json")])
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "store_unavailable");
}

/// What one steady request saw: when it was sent (from the master's kill), and
/// its status or transport error.
type Probe = (f64, Result<u16, String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_keeps_sessions_revocations_and_single_use_marks() {
    let mut group = tokio::task::spawn_blocking(SentinelGroup::start)
        .await
        .expect("sentinel group");
    // The in-process gateway of `env` is not used here; its sim and echo are.
    let env = start().await;
    let port = free_port();
    let session = format!(
        "mode = \"server\"\nstore = \"redis\"\n{}\nredis_username = \"{}\"\n\
         redis_password = {{ value = \"{}\", dev = true }}",
        group.toml(),
        ACL_USER.0,
        ACL_USER.1
    );
    let gw = process::behind_one_origin(&env, port, &session, "", "").await;
    let at = |path: &str| format!("http://localhost:{port}{path}");
    let logout = |b: &Browser| {
        let b = b.clone();
        let url = at("/_sso/logout");
        async move { b.log_out(&url).await.status }
    };
    let copy_of = |b: &Browser| {
        let copy = Browser::new();
        copy.set_cookie(
            "localhost",
            "oag_session",
            &b.cookie("localhost", "oag_session").expect("cookie"),
        );
        copy
    };

    // Before: alice's session; a second session logged out, whose copied cookie
    // is refused; a logout token's jti spent.
    let alice = Browser::new();
    process::login_through(&alice, &env, port, "/x").await;
    assert_eq!(alice.get(&at("/x")).await.status, 200);
    let ended = Browser::new();
    process::login_through(&ended, &env, port, "/y").await;
    let ended_copy = copy_of(&ended);
    assert_eq!(logout(&ended).await, 302);
    assert_eq!(ended_copy.get(&at("/y")).await.status, 302);
    let token = env
        .sim
        .mint_logout_token(Some("someone-without-sessions"), None);
    let (status, _) = env
        .sim
        .send_backchannel_logout(&at("/_sso/backchannel-logout"), &token)
        .await
        .expect("post");
    assert_eq!(status, 200);
    group.sync_replica();
    let old_master = group.master.port;

    // Steady requests with alice's cookie, every 50 ms, each given 5 s: a hang
    // would show as an error.
    let probes: Arc<Mutex<Vec<Probe>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let killed_at = Instant::now() + Duration::from_millis(500);
    let prober = {
        let (probes, stop) = (probes.clone(), stop.clone());
        let cookie = format!(
            "oag_session={}",
            alice.cookie("localhost", "oag_session").expect("cookie")
        );
        let url = at("/check");
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let r = client
                    .get(&url)
                    .header("cookie", &cookie)
                    .header("accept", "text/html")
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.to_string());
                let t = if sent >= killed_at {
                    (sent - killed_at).as_secs_f64()
                } else {
                    -(killed_at - sent).as_secs_f64()
                };
                probes.lock().expect("probes").push((t, r));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep_until(killed_at.into()).await;
    group.master.kill();
    let mut switched = None;
    let deadline = killed_at + Duration::from_secs(30);
    while Instant::now() < deadline {
        if group.master_port().is_some_and(|p| p != old_master) {
            switched = Some(killed_at.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let switched = switched.expect("the sentinels never named a new master");
    // Then until 20 requests in a row got 200 (or 30 s).
    loop {
        let ok_run = probes
            .lock()
            .expect("probes")
            .iter()
            .rev()
            .take_while(|(_, r)| matches!(r, Ok(200)))
            .count();
        if ok_run >= 20 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    prober.await.expect("prober");
    let probes = probes.lock().expect("probes").clone();

    let odd: Vec<&Probe> = probes
        .iter()
        .filter(|(_, r)| !matches!(r, Ok(200 | 503)))
        .collect();
    assert!(
        odd.is_empty(),
        "only 200 or 503 while failing over (a 302 is a login loop, an error a hang): {odd:?}\n{}",
        gw.logs()
    );
    let unavailable: Vec<f64> = probes
        .iter()
        .filter(|(_, r)| matches!(r, Ok(503)))
        .map(|(t, _)| *t)
        .collect();
    let first = unavailable.first().copied().unwrap_or(0.0);
    let last = unavailable.last().copied().unwrap_or(0.0);
    let back = probes
        .iter()
        .find(|(t, r)| *t > last && matches!(r, Ok(200)))
        .map(|(t, _)| *t)
        .expect("served again");
    eprintln!(
        "sentinel failover: {} requests, {} answered 503, from {first:.2} s to {last:.2} s \
         after the kill; served again at {back:.2} s; the sentinels named the new master \
         at {switched:.2} s",
        probes.len(),
        unavailable.len()
    );
    assert!(
        matches!(probes.last(), Some((_, Ok(200)))),
        "not served after the failover:\n{}",
        gw.logs()
    );
    assert!(back < 20.0, "503 for {back:.1} s");
    assert!(
        gw.logs().contains("asking the sentinels again"),
        "{}",
        gw.logs()
    );

    // After: the same cookie works; the ended session's copy is still refused;
    // the spent jti is still spent.
    assert_eq!(alice.get(&at("/after")).await.status, 200);
    assert_eq!(ended_copy.get(&at("/y")).await.status, 302);
    let (status, _) = env
        .sim
        .send_backchannel_logout(&at("/_sso/backchannel-logout"), &token)
        .await
        .expect("post");
    assert_eq!(status, 400, "a jti spent before the failover");
    // New ones work on the new master: a login (its state spent once), a
    // logout that kills a copy.
    let bob = Browser::new();
    process::login_through(&bob, &env, port, "/z").await;
    assert_eq!(bob.get(&at("/z")).await.status, 200);
    let bob_copy = copy_of(&bob);
    assert_eq!(logout(&bob).await, 302);
    assert_eq!(bob_copy.get(&at("/z")).await.status, 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_share_sessions_and_logouts_through_redis() {
    for mode in ["server", "cookie"] {
        let redis = RedisServer::start();
        // The in-process gateway of `env` is not used here; its sim and echo are.
        let env = start().await;
        let (pa, pb) = (free_port(), free_port());
        let session = process::redis_session_lines(&redis.url(), mode);
        // A writes session records as JSON, as gateways before the binary record
        // did (a fleet in the middle of an upgrade); B the binary default.
        let json = format!("{session}\nrecord_format = \"json\"");
        let _a = process::behind_one_origin(&env, pa, &json, "", "").await;
        let _b = process::behind_one_origin(&env, pb, &session, "", "").await;
        let at = |port: u16, path: &str| format!("http://localhost:{port}{path}");

        // Log in through A; B knows the session.
        let browser = Browser::new();
        process::login_through(&browser, &env, pa, "/x").await;
        let r = browser.get(&at(pb, "/seen-by-b")).await;
        assert_eq!(r.status, 200, "{mode}: B does not know A's session");
        assert_eq!(r.upstream_header("x-forwarded-user"), [ALICE_ID]);
        let cookie = browser.cookie("localhost", "oag_session").expect("cookie");
        assert_eq!(
            record_tag(&cookie, mode, &redis),
            b'{',
            "{mode}: A wrote JSON"
        );

        // A copy of the cookie, then logout on B: A refuses the copy.
        let copy = Browser::new();
        copy.set_cookie(
            "localhost",
            "oag_session",
            &browser.cookie("localhost", "oag_session").expect("cookie"),
        );
        assert_eq!(copy.get(&at(pa, "/y")).await.status, 200);
        let out = browser.log_out(&at(pb, "/_sso/logout")).await;
        assert_eq!(out.status, 302);
        // B's revocation reaches A through Redis's stream.
        assert!(
            process::holds_within(process::PROPAGATION, || async {
                copy.get(&at(pa, "/y")).await.status == 302
            })
            .await,
            "{mode}: A honoured no logout from B"
        );

        // A back-channel logout received by A ends a session used on B.
        let again = Browser::new();
        process::login_through(&again, &env, pb, "/z").await;
        assert_eq!(again.get(&at(pb, "/z")).await.status, 200);
        let cookie = again.cookie("localhost", "oag_session").expect("cookie");
        assert_eq!(
            record_tag(&cookie, mode, &redis),
            2,
            "{mode}: B wrote binary"
        );
        let r = again.get(&at(pa, "/seen-by-a")).await;
        assert_eq!(r.status, 200, "{mode}: A does not read B's record");
        assert_eq!(r.upstream_header("x-forwarded-user"), [ALICE_ID]);
        let token = env.sim.mint_logout_token(Some(ALICE_ID), None);
        let (status, _) = env
            .sim
            .send_backchannel_logout(&at(pa, "/_sso/backchannel-logout"), &token)
            .await
            .expect("post");
        assert_eq!(status, 200);
        assert!(
            process::holds_within(process::PROPAGATION, || async {
                again.get(&at(pb, "/z")).await.status == 302
            })
            .await,
            "{mode}: B honoured no back-channel logout sent to A"
        );
        // Every revocation above reached the other gateway through its copy in
        // memory: no request asked Redis for the revocation keys.
        assert_eq!(
            redis_calls(redis.port, "mget"),
            0,
            "{mode}: requests checked revocations in Redis"
        );
    }
}

/// Server mode: a gateway's worker answers a user's next requests from its copy
/// of the session, so they do not each read Redis; and a logout on another
/// gateway still ends the session there, copy or not, as soon as the
/// revocation reaches it through Redis's stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sessions_are_read_from_redis_once_per_worker_and_still_end_everywhere() {
    let redis = RedisServer::start();
    let env = start().await;
    let (pa, pb) = (free_port(), free_port());
    let session = process::redis_session_lines(&redis.url(), "server");
    let _a = process::behind_one_origin(&env, pa, &session, "", "").await;
    let _b = process::behind_one_origin(&env, pb, &session, "", "").await;
    let at = |port: u16, path: &str| format!("http://localhost:{port}{path}");
    let reads = || redis_calls(redis.port, "get") + redis_calls(redis.port, "getex");

    let browser = Browser::new();
    process::login_through(&browser, &env, pa, "/x").await;
    let before = reads();
    for i in 0..20 {
        let r = browser.get(&at(pb, &format!("/n{i}"))).await;
        assert_eq!(r.status, 200, "request {i} on B");
        assert_eq!(r.upstream_header("x-forwarded-user"), [ALICE_ID]);
    }
    // B runs two worker threads: each reads the record once at most.
    let read = reads() - before;
    assert!(
        (1..=2).contains(&read),
        "B read the session {read} times for 20 requests"
    );

    // Logout on A, then the same cookie again on B, on the connection (so the
    // worker) that holds the copy: refused as soon as A's revocation reaches
    // B through Redis's stream (a copy would otherwise answer for 30 s), and
    // from then on.
    let cookie = browser.cookie("localhost", "oag_session").expect("cookie");
    let out = browser.log_out(&at(pa, "/_sso/logout")).await;
    assert_eq!(out.status, 302);
    browser.set_cookie("localhost", "oag_session", &cookie);
    assert!(
        process::holds_within(process::PROPAGATION, || async {
            browser.get(&at(pb, "/after")).await.status == 302
        })
        .await,
        "B served its copy after the logout on A"
    );
    for i in 0..4 {
        let r = browser.get(&at(pb, &format!("/after{i}"))).await;
        assert_eq!(r.status, 302, "request {i} on B after the logout on A");
    }
}

/// Server mode across two gateways: a refresh on one rewrites the record, and
/// the other's copy, older than the refresh, gives way to it: the app behind
/// the second gets the new access token, and nobody refreshes twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_on_one_gateway_reaches_the_other_s_copy() {
    let redis = RedisServer::start();
    // Tokens of 62 s refreshed in their last 60: due 2 s after login.
    let env = start_full(
        oneaccess_sim::SimConfig {
            access_token_ttl: Duration::from_secs(62),
            ..oneaccess_sim::SimConfig::default()
        },
        "",
        "",
        "",
    )
    .await;
    let (pa, pb) = (free_port(), free_port());
    let session = process::redis_session_lines(&redis.url(), "server");
    let margin = "refresh_margin_seconds = 60";
    let token_route = "[[route]]\npath = \"/token\"\nupstream = \"{upstream}\"\nprotocol = \"oidc\"\npass_token = \"access\"";
    let _a = process::behind_one_origin(&env, pa, &session, margin, token_route).await;
    let _b = process::behind_one_origin(&env, pb, &session, margin, token_route).await;
    let at = |port: u16, path: &str| format!("http://localhost:{port}{path}");
    let token_at = |r: &Resp| r.upstream_header("authorization").concat();

    let browser = Browser::new();
    process::login_through(&browser, &env, pa, "/token/x").await;
    let first = browser.get(&at(pb, "/token/b1")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let old = token_at(&first);
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // Due now: A refreshes and rewrites the record.
    let tokens = env.sim.counters().token;
    let on_a = browser.get(&at(pa, "/token/a1")).await;
    assert_eq!(on_a.status, 200, "{}", on_a.body);
    let new = token_at(&on_a);
    assert_ne!(new, old, "A did not refresh");
    assert_eq!(env.sim.counters().token - tokens, 1);

    // B held a copy from before: the app behind B gets the refreshed token.
    let on_b = browser.get(&at(pb, "/token/b2")).await;
    assert_eq!(on_b.status, 200, "{}", on_b.body);
    assert_eq!(token_at(&on_b), new, "B passed its copy's old access token");
    assert_eq!(env.sim.counters().token - tokens, 1, "B refreshed again");
}

/// The first byte of the session record behind a session cookie: `{` for JSON,
/// 2 for binary. In cookie mode the record is the cookie's sealed content; in
/// server mode the cookie seals the id of the record kept in Redis.
fn record_tag(cookie: &str, mode: &str, redis: &RedisServer) -> u8 {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(COOKIE_KEY)
        .expect("key");
    let key: [u8; 32] = key.try_into().expect("32 bytes");
    let sealer =
        oneaccess_gateway::session::Sealer::new(&[oneaccess_gateway::secret::Secret::new(key)]);
    let plain = sealer
        .open("oag_session", cookie)
        .expect("the gateway's cookie");
    if mode == "cookie" {
        return plain[0];
    }
    let id = String::from_utf8(plain).expect("an id");
    let out = std::process::Command::new("redis-cli")
        .args([
            "-u",
            &redis.url(),
            "--raw",
            "GETRANGE",
            &format!("oag:ses:{id}"),
            "0",
            "0",
        ])
        .output()
        .expect("redis-cli (redis-tools, installed by scripts/setup.sh)");
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "no record {id}: {out:?}"
    );
    out.stdout[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_session_is_chunked_and_broken_chunks_mean_no_session() {
    let env = start_full(
        Default::default(),
        "",
        r#"logout = "end_session""#,
        "[[route]]\npath = \"/bio\"\nupstream = \"{upstream}\"\nprotocol = \"oidc\"\nheaders = { \"X-Bio\" = \"bio\" }\n",
    )
    .await;
    let bio = "a".repeat(6000);
    let claim = bio.clone();
    env.sim
        .set_token_hook(Some(std::sync::Arc::new(move |_, c| {
            c.insert("bio".into(), json!(claim.clone()));
        })));
    let b = Browser::new();
    let page = b.login(&env.url("/bio/x"), USER).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-bio"), [bio.as_str()]);
    let jar = b.cookies("localhost");
    let main = jar.get("oag_session").expect("main cookie").clone();
    assert!(main.starts_with('~'), "not chunked: {} bytes", main.len());
    let n: usize = main[1..].parse().expect("count");
    assert!(n >= 2 && jar.contains_key(&format!("oag_session_c{}", n - 1)));
    // The app sees none of the chunks.
    assert!(!page
        .upstream_header("cookie")
        .join(";")
        .contains("oag_session"));

    // Every Set-Cookie line of a fresh login fits a browser's 4096 bytes.
    let fresh = Browser::new();
    let hops = fresh.visit(&env.url("/bio/x")).await;
    let posted = fresh.submit_login(hops.last().expect("form"), USER).await;
    let mut seen_chunk = false;
    for hop in fresh.follow(posted).await {
        for line in hop.set_cookies() {
            assert!(line.len() <= 4096, "{} bytes", line.len());
            seen_chunk |= line.starts_with("oag_session_c1=");
        }
    }
    assert!(seen_chunk);

    // A missing chunk, or a hostile count: no session, never a 500.
    let broken = Browser::new();
    for (k, v) in &jar {
        broken.set_cookie("localhost", k, v);
    }
    broken.remove_cookie("localhost", "oag_session_c1");
    assert_eq!(broken.get(&env.url("/bio/x")).await.status, 302);
    for count in ["~0", "~1", "~-3", "~99", "~99999999999999999999", "~x"] {
        let c = Browser::new();
        for (k, v) in &jar {
            c.set_cookie("localhost", k, v);
        }
        c.set_cookie("localhost", "oag_session", count);
        assert_eq!(c.get(&env.url("/bio/x")).await.status, 302, "{count}");
    }

    // The session shrinks: the stale chunks are cleared.
    env.sim.set_token_hook(None);
    let out = b.log_out(&env.url("/_sso/logout")).await;
    assert!(
        !b.cookies("localhost")
            .keys()
            .any(|k| k.starts_with("oag_session")),
        "{:?}",
        out.set_cookies()
    );
    let small = Browser::new();
    for (k, v) in &jar {
        if k.starts_with("oag_session_c") {
            small.set_cookie("localhost", k, v);
        }
    }
    assert_eq!(small.login(&env.url("/"), USER).await.status, 200);
    let left: Vec<String> = small
        .cookies("localhost")
        .keys()
        .filter(|k| k.starts_with("oag_session"))
        .cloned()
        .collect();
    assert_eq!(
        left,
        ["oag_session"],
        "stale chunks survived a smaller session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_sessions_keep_no_tokens() {
    let full = start_full(Default::default(), "", r#"logout = "end_session""#, "").await;
    let minimal = start_full(
        Default::default(),
        "minimal = true",
        r#"logout = "end_session""#,
        "",
    )
    .await;
    let (_, full_cookie) = logged_in(&full).await;
    let (b, minimal_cookie) = logged_in(&minimal).await;
    assert!(
        minimal_cookie.len() * 2 < full_cookie.len(),
        "minimal {} vs full {} bytes",
        minimal_cookie.len(),
        full_cookie.len()
    );
    // Still a working session with the mapped headers; logout has no hint to send.
    let r = b.get(&minimal.url("/x")).await;
    assert_eq!(
        r.upstream_header("x-forwarded-email"),
        ["alice@example.com"]
    );
    let out = b.log_out(&minimal.url("/_sso/logout")).await;
    assert!(!out.location().expect("location").contains("id_token_hint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_logout_tokens_are_never_accepted() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let env = start().await;
    let (b, _) = logged_in(&env).await;
    let sid = env.sim.sids_of("alice").pop().expect("sid");
    let token = env.sim.mint_logout_token(None, Some(&sid));
    // Flips, cuts and insertions anywhere in a valid token, a thousand of them,
    // each posted: none ends the session, none is a 5xx.
    let len = token.len();
    let strategy = proptest::prop_oneof![
        (0..len, 1..=255u8).prop_map(|(i, x)| (0, i, x)),
        (0..len).prop_map(|i| (1, i, 0)),
        (0..len, proptest::sample::select(b".-_=A/+".to_vec())).prop_map(|(i, c)| (2, i, c)),
    ];
    let mut runner = TestRunner::deterministic();
    let c = reqwest::Client::new();
    for _ in 0..1000 {
        let (kind, i, x) = strategy.new_tree(&mut runner).expect("case").current();
        let mut t = token.clone().into_bytes();
        match kind {
            0 => t[i] ^= x,
            1 => t.truncate(i),
            _ => t.insert(i, x),
        }
        let t = String::from_utf8_lossy(&t).into_owned();
        if t == token {
            continue;
        }
        let r = c
            .post(backchannel(&env))
            .form(&[("logout_token", t.as_str())])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 400, "a mutated token: {t}");
    }
    assert!(
        is_logged_in(&b, &env).await,
        "a mutated token ended the session"
    );
    // The token itself still works.
    let (status, _) = env
        .sim
        .send_backchannel_logout(&backchannel(&env), &token)
        .await
        .expect("post");
    assert_eq!(status, 200);
    assert!(!is_logged_in(&b, &env).await);
}
