//! End to end through the gateway, as a browser: OIDC login against the OneAccess
//! simulator, identity headers at the app, global logout, and the ways it must fail.

mod common;

use common::*;
use oneaccess_sim::{ExpiresInStyle, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_login_lands_on_the_asked_url_with_identity_then_global_logout() {
    let env = start().await;
    let b = Browser::new();

    // 1. A protected URL sends the browser to OneAccess with state, nonce and PKCE.
    let probe = Browser::new();
    let first = probe.get(&env.url("/app/page?x=1&y=two")).await;
    assert_eq!(first.status, 302);
    let authorize = first.location().expect("location");
    assert!(
        authorize.starts_with(&format!("{}/authorize?", env.sim.issuer())),
        "{authorize}"
    );
    assert_eq!(query(&authorize, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query(&authorize, "client_id").as_deref(),
        Some("demo-client")
    );
    assert_eq!(
        query(&authorize, "redirect_uri"),
        Some(env.url("/_sso/callback"))
    );
    assert_eq!(
        query(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query(&authorize, "state").is_some_and(|s| s.len() >= 43));
    assert!(query(&authorize, "nonce").is_some_and(|s| s.len() >= 43));
    assert!(query(&authorize, "scope").is_some_and(|s| s.split(' ').any(|x| x == "openid")));
    let pending: Vec<_> = first.set_cookies();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].starts_with("oag_session_login_"));
    assert!(pending[0].contains("HttpOnly") && pending[0].contains("SameSite=Lax"));

    // 2. Log in at the simulator's form; land on the exact URL asked for.
    let page = b.login(&env.url("/app/page?x=1&y=two"), USER).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url, env.url("/app/page?x=1&y=two"));
    let seen = page.json();
    assert_eq!(seen["path"], "/app/page");
    assert_alice_headers(&page);
    // The app never sees the gateway's cookies.
    let cookie_seen = page.upstream_header("cookie").join("; ");
    assert!(!cookie_seen.contains("oag_session"), "{cookie_seen}");
    // The session cookie is set, the pending one is gone.
    let jar = b.cookies("localhost");
    assert!(jar.contains_key("oag_session"));
    assert!(
        !jar.keys().any(|k| k.starts_with("oag_session_login_")),
        "{jar:?}"
    );

    // 3. Logged in: no IdP traffic for further requests.
    let before = env.sim.counters();
    for _ in 0..5 {
        assert_eq!(b.get(&env.url("/other")).await.status, 200);
    }
    let after = env.sim.counters();
    assert_eq!(
        (before.token, before.jwks, before.discovery),
        (after.token, after.jwks, after.discovery)
    );

    // 4. Logout clears the cookie and ends the OneAccess session (global logout).
    let out = b.log_out(&env.url("/_sso/logout")).await;
    assert_eq!(out.status, 302);
    let to = out.location().expect("location");
    assert!(
        to.starts_with(&format!(
            "{}/api/v1/logout?redirect_url=",
            env.sim.base_url()
        )),
        "{to}"
    );
    assert_eq!(query(&to, "redirect_url"), Some(env.url("/")));
    assert!(b.cookie("localhost", "oag_session").is_none());
    let hops = b.follow(out).await;
    assert_eq!(env.sim.counters().logout, 1);
    // Back at the gateway's `/`, protected again: the IdP shows its login form, it
    // does not silently log the user back in.
    let last = hops.last().expect("last");
    assert_eq!(last.status, 200);
    assert!(
        last.body.contains("login-form"),
        "expected the login form again, got {}",
        last.url
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic_and_numeric_expires_in_work() {
    let sim_cfg = SimConfig {
        expires_in: ExpiresInStyle::Number,
        ..SimConfig::default()
    };
    let env = start_with(
        sim_cfg,
        r#"token_endpoint_auth = "client_secret_basic""#,
        "",
    )
    .await;
    let b = Browser::new();
    let page = b.login(&env.url("/"), USER).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-forwarded-user"), [ALICE_ID]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_get_401_json() {
    let env = start().await;
    let b = Browser::new();
    for headers in [
        vec![("accept", "application/json")],
        vec![("x-requested-with", "XMLHttpRequest")],
        vec![("sec-fetch-mode", "cors")],
    ] {
        let r = b.get_with(&env.url("/api/data"), &headers).await;
        assert_eq!(r.status, 401, "{headers:?}");
        assert!(r.location().is_none());
        assert_eq!(r.json()["error"], "unauthenticated");
    }
    let r = b
        .request(reqwest::Method::POST, &env.url("/api/data"), &[], None)
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_callback_is_refused() {
    let env = start().await;
    let b = Browser::new();
    let hops = b.visit(&env.url("/")).await;
    let pending_cookies = b.cookies("localhost");
    let posted = b.submit_login(hops.last().expect("form"), USER).await;
    let hops = b.follow(posted).await;
    let callback = hops
        .iter()
        .find(|r| r.url.contains("/_sso/callback"))
        .expect("callback")
        .url
        .clone();
    assert_eq!(hops.last().expect("page").status, 200);

    // An attacker (or a double submit) replays the same callback with the same
    // pending cookie: the state is spent.
    let thief = Browser::new();
    for (k, v) in &pending_cookies {
        thief.set_cookie("localhost", k, v);
    }
    let r = thief.get(&callback).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(thief.cookie("localhost", "oag_session").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_can_log_in_at_once() {
    let env = start().await;
    let b = Browser::new();
    // Both tabs reach the login form before either finishes.
    let tab1 = b.visit(&env.url("/one")).await;
    let tab2 = b.visit(&env.url("/two")).await;
    let pending = b
        .cookies("localhost")
        .keys()
        .filter(|k| k.starts_with("oag_session_login_"))
        .count();
    assert_eq!(pending, 2);
    for (tab, want) in [(tab2, "/two"), (tab1, "/one")] {
        let posted = b.submit_login(tab.last().expect("form"), USER).await;
        let last = b.follow(posted).await.into_iter().last().expect("page");
        assert_eq!(last.status, 200, "{want}: {}", last.body);
        assert_eq!(last.json()["path"], want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_login_cookies_stay_bounded() {
    let env = start().await;
    let b = Browser::new();
    for _ in 0..8 {
        let r = b.get(&env.url("/")).await;
        assert_eq!(r.status, 302);
    }
    let pending = b
        .cookies("localhost")
        .keys()
        .filter(|k| k.starts_with("oag_session_login_"))
        .count();
    assert!(pending <= 3, "{pending} pending-login cookies piled up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_session_cookie_means_login_again_not_500() {
    let env = start().await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/"), USER).await.status, 200);
    let v = b.cookie("localhost", "oag_session").expect("session");
    let mut bytes = v.into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'x' { b'y' } else { b'x' };
    b.set_cookie(
        "localhost",
        "oag_session",
        &String::from_utf8(bytes).expect("utf8"),
    );
    let r = b.get(&env.url("/")).await;
    assert_eq!(r.status, 302);
    assert!(r.location().expect("location").contains("/authorize?"));
    // Garbage of every shape, too.
    for junk in ["", "x", "%%%", "a.b.c", &"A".repeat(5000)] {
        b.set_cookie("localhost", "oag_session", junk);
        assert_eq!(b.get(&env.url("/")).await.status, 302, "{junk:.20}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_in_users_keep_working_while_the_idp_is_down() {
    let env = start().await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/"), USER).await.status, 200);
    env.sim.set_down(true);
    let r = b.get(&env.url("/still/here")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream_header("x-forwarded-user"), [ALICE_ID]);
    // A new user cannot log in, and is told so rather than left hanging.
    let other = Browser::new();
    let r = other.get(&env.url("/")).await;
    assert_eq!(r.status, 302, "the authorize URL is known from discovery");
    // The callback needs the token endpoint: a clear 503 page.
    env.sim.set_down(false);
    let hops = other.follow(r).await;
    let posted = other.submit_login(hops.last().expect("form"), USER).await;
    let callback = posted.location().expect("to authorize");
    let to_gateway = other.get(&callback).await.location().expect("to callback");
    env.sim.set_down(true);
    let r = other.get(&to_gateway).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(other.cookie("localhost", "oag_session").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_with_another_issuer_stops_start_up() {
    let sim = oneaccess_sim::Sim::start(SimConfig::default())
        .await
        .expect("sim");
    let echo = oneaccess_sim::echo::Echo::start().await.expect("echo");
    // One character more than what the provider says it is.
    let text = config_text(free_port(), &sim, &echo, "", "").replace(
        &format!("issuer = \"{}\"", sim.issuer()),
        &format!("issuer = \"{}/\"", sim.issuer()),
    );
    let cfg = oneaccess_gateway::config::parse(&text, std::path::Path::new("."), &|_| None)
        .expect("config");
    let g = oneaccess_gateway::gateway::Gateway::new(cfg).expect("gateway");
    let err = g.warm_up().await.expect_err("must refuse");
    assert!(err.to_string().contains("must be equal"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_error_at_callback_is_a_clear_page() {
    let env = start().await;
    let b = Browser::new();
    let r = b
        .get(&env.url("/_sso/callback?error=access_denied&state=abc"))
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("not completed"));
    let r = b.get(&env.url("/_sso/callback?code=x&state=unknown")).await;
    assert_eq!(r.status, 400);
    assert_eq!(b.get(&env.url("/_sso/nothing")).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_code_is_useless_with_another_login_state() {
    let env = start().await;
    let victim = Browser::new();
    let victim_cb = victim.to_callback(&env, "/").await;
    let code = query(&victim_cb, "code").expect("code");
    // The thief starts a login of their own, then swaps in the victim's code: the
    // PKCE verifier in the thief's pending login does not match the code.
    let thief = Browser::new();
    let thief_cb = thief.to_callback(&env, "/").await;
    let thief_state = query(&thief_cb, "state").expect("state");
    let forged = env.url(&format!("/_sso/callback?code={code}&state={thief_state}"));
    let r = thief.get(&forged).await;
    // The IdP's invalid_grant is the browser's doing: a 400 that says to try
    // again, not a 502 that blames the IdP.
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("Sign-in expired"), "{}", r.body);
    assert!(thief.cookie("localhost", "oag_session").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_already_spent_is_a_400_not_a_502() {
    let env = start().await;
    let b = Browser::new();
    let cb = b.to_callback(&env, "/").await;
    let code = query(&cb, "code").expect("code");
    assert_eq!(
        b.follow(b.get(&cb).await)
            .await
            .last()
            .expect("page")
            .status,
        200
    );
    // A new login of the same browser, finished with the code already spent.
    let other = Browser::new();
    let other_cb = other.to_callback(&env, "/").await;
    let state = query(&other_cb, "state").expect("state");
    let r = other
        .get(&env.url(&format!("/_sso/callback?code={code}&state={state}")))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("Sign-in expired"), "{}", r.body);
    // The IdP itself failing stays a gateway error.
    let third = Browser::new();
    let cb = third.to_callback(&env, "/").await;
    env.sim.set_fail_status(Some(500));
    assert_eq!(third.get(&cb).await.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_endpoint_gives_a_clear_503() {
    let env = start().await;
    let b = Browser::new();
    let cb = b.to_callback(&env, "/").await;
    env.sim.set_fail_status(Some(500));
    let r = b.get(&cb).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("unavailable"));
    assert!(b.cookie("localhost", "oag_session").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_idp_times_out_instead_of_hanging() {
    let env = start_with(SimConfig::default(), "http_timeout_seconds = 1", "").await;
    let b = Browser::new();
    let cb = b.to_callback(&env, "/").await;
    env.sim.set_latency(std::time::Duration::from_secs(3));
    let started = std::time::Instant::now();
    let r = b.get(&cb).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2900),
        "waited for the slow IdP"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_request_target_never_becomes_the_return_url() {
    let env = start().await;
    let b = Browser::new();
    // `//evil.com/x` as a path: after login the browser must stay on the gateway.
    let page = b.login(&env.url("//evil.com/x"), USER).await;
    assert_eq!(page.url, env.url("/"));
    // And logout's `rd` is held to the same rule.
    let r = b.log_out(&env.url("/_sso/logout?rd=%2F%2Fevil.com")).await;
    assert_eq!(
        query(&r.location().expect("location"), "redirect_url"),
        Some(env.url("/"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_during_an_outage_gets_503_not_a_dead_end() {
    let env = start().await;
    // Discovery is cached and a user is signed in.
    let alice = Browser::new();
    assert_eq!(alice.login(&env.url("/x"), USER).await.status, 200);
    env.sim.set_down(true);
    // Past the 2 s that its last answer stands for.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // A newcomer: a clear page, not a redirect to a provider that does not answer.
    let r = Browser::new().get(&env.url("/x")).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("Sign-in is unavailable"), "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    // The signed-in user keeps working.
    assert_eq!(alice.get(&env.url("/y")).await.status, 200);
    // Back: within the probe's interval, newcomers are sent to log in again.
    env.sim.set_down(false);
    let mut redirected = false;
    for _ in 0..40 {
        if Browser::new().get(&env.url("/x")).await.status == 302 {
            redirected = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(redirected, "logins never resumed");
    assert_eq!(Browser::new().login(&env.url("/x"), USER).await.status, 200);
}
