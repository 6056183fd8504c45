//! What ends a session stays ended across a restart and an `--upgrade`, with the
//! default settings (cookie sessions, the embedded store): a logout with a copied
//! cookie, OIDC back-channel logout, CAS single logout (the browser still holds
//! its cookie), and single-use marks (a logout token's `jti`).

mod common;

use std::time::Duration;

use common::process::{start_upgradable, wait_until, Process};
use common::*;

const CAS: &str = "[[route]]\npath = \"/cas\"\nupstream = \"{upstream}\"\nprotocol = \"cas\"\n";

fn backchannel(env: &Env) -> String {
    env.url("/_sso/backchannel-logout")
}

/// A browser signed in at `path` as `user`.
async fn signed_in(env: &Env, path: &str, user: (&str, &str)) -> Browser {
    let b = Browser::new();
    let page = b.login(&env.url(path), user).await;
    assert_eq!(page.status, 200, "{}", page.body);
    b
}

/// A browser holding only `from`'s session cookie: a copy.
fn copy_of(from: &Browser) -> Browser {
    let copy = Browser::new();
    let cookie = from.cookie("localhost", "oag_session").expect("session");
    copy.set_cookie("localhost", "oag_session", &cookie);
    copy
}

/// The user clicks "Sign out" in an app.
async fn log_out(b: &Browser, env: &Env) {
    let out = b.log_out(&env.url("/_sso/logout")).await;
    assert_eq!(out.status, 302);
}

async fn served(b: &Browser, url: &str) -> bool {
    match b.get(url).await.status {
        200 => true,
        302 => false,
        s => panic!("{url}: unexpected {s}"),
    }
}

/// What ends sessions before the restart, and the checks that they stay ended.
struct Ended {
    logged_out_copy: Browser,
    backchannel: Browser,
    single_logout: Browser,
    untouched: Browser,
    replayed_token: String,
}

async fn end_sessions(env: &Env) -> Ended {
    env.sim
        .register_cas_logout_url(&env.url("/_sso/cas/callback"));
    // CAS single logout: the browser keeps its cookie.
    let single_logout = signed_in(env, "/cas/x", USER).await;
    let hops = single_logout
        .visit(&format!("{}/api/v1/cas/logout", env.sim.base_url()))
        .await;
    assert!(hops.iter().all(|h| h.status < 500));
    single_logout.remove_cookie("127.0.0.1", "oa_sso");
    assert!(!served(&single_logout, &env.url("/cas/y")).await);

    // A logout at the gateway, and a copy of the cookie kept.
    let alice = signed_in(env, "/", USER).await;
    let logged_out_copy = copy_of(&alice);
    log_out(&alice, env).await;
    assert!(!served(&logged_out_copy, &env.url("/x")).await);

    // Back-channel logout of bob, by sid; its token once.
    let backchannel_browser = signed_in(env, "/", ("bob", "bob-password")).await;
    let sid = env.sim.sids_of("bob").pop().expect("bob's sid");
    let token = env.sim.mint_logout_token(None, Some(&sid));
    let (status, _) = env
        .sim
        .send_backchannel_logout(&backchannel(env), &token)
        .await
        .expect("post");
    assert_eq!(status, 200);
    assert!(!served(&backchannel_browser, &env.url("/x")).await);

    // Someone who did nothing: still signed in afterwards.
    let untouched = signed_in(env, "/", USER).await;
    Ended {
        logged_out_copy,
        backchannel: backchannel_browser,
        single_logout,
        untouched,
        replayed_token: token,
    }
}

/// After the restart or upgrade: ended stays ended, the rest goes on.
async fn still_ended(env: &Env, e: &Ended) {
    assert!(
        !served(&e.logged_out_copy, &env.url("/x")).await,
        "a copied cookie came back after its logout"
    );
    assert!(
        !served(&e.backchannel, &env.url("/x")).await,
        "a back-channel logout was undone"
    );
    assert!(
        !served(&e.single_logout, &env.url("/cas/y")).await,
        "a CAS single logout was undone"
    );
    let (status, _) = env
        .sim
        .send_backchannel_logout(&backchannel(env), &e.replayed_token)
        .await
        .expect("post");
    assert_eq!(status, 400, "a logout token's jti was usable again");
    assert!(
        served(&e.untouched, &env.url("/x")).await,
        "a live session was lost"
    );
}

/// The gateway of `env` stopped and started again with the same configuration
/// (`session_extra`, `extra`) and state directory. On another port: a server
/// stopped inside the test process keeps its listening sockets. The browsers
/// keep their cookies per host, as browsers do.
async fn restarted(env: Env, session_extra: &str, extra: &str) -> Env {
    let Env {
        sim,
        echo,
        gw,
        port,
    } = env;
    tokio::task::spawn_blocking(move || gw.stop())
        .await
        .expect("stop");
    let new_port = free_port();
    let text = config_text_with(new_port, &sim, &echo, session_extra, "", extra)
        .replace(&state_dir_line(new_port), &state_dir_line(port));
    let gw = start_gateway(&text).await;
    Env {
        sim,
        echo,
        gw,
        port: new_port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_sessions_stay_ended_after_a_restart() {
    let env = start_with(Default::default(), "", CAS).await;
    let ended = end_sessions(&env).await;
    let env = restarted(env, "", CAS).await;
    still_ended(&env, &ended).await;
    // And a new login works.
    signed_in(&env, "/", USER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_sessions_survive_a_restart() {
    let server = r#"mode = "server""#;
    let env = start_full(Default::default(), server, "", "").await;
    let b = signed_in(&env, "/", USER).await;
    let leaving = signed_in(&env, "/", USER).await;
    let ended = copy_of(&leaving);
    log_out(&leaving, &env).await;
    let env = restarted(env, server, "").await;
    assert!(
        served(&b, &env.url("/x")).await,
        "the session record was lost"
    );
    assert!(
        !served(&ended, &env.url("/x")).await,
        "a logged-out session came back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ended_sessions_stay_ended_after_an_upgrade() {
    let env = start_with(Default::default(), "", CAS).await;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("oag-restart-{}", std::process::id()));
    // The same simulator and app; a gateway process of its own, with the
    // default store in its own directory.
    let text = config_text(port, &env.sim, &env.echo, "", CAS);
    let (config, mut old) = start_upgradable(&dir, port, &text).await;
    let process_env = Env {
        sim: env.sim,
        echo: env.echo,
        gw: env.gw,
        port,
    };
    // Part of it before the new process starts, part while both run.
    let first = signed_in(&process_env, "/", USER).await;
    let first_copy = copy_of(&first);
    let new = Process::start_with(&config, dir.join("new.log"), &["--upgrade"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    log_out(&first, &process_env).await;
    let ended = end_sessions(&process_env).await;
    old.signal("QUIT");
    wait_until("the old gateway to exit", || {
        let exited = old.child.try_wait().expect("wait").is_some();
        async move { exited }
    })
    .await;
    // Served by the new process alone now.
    assert!(
        !served(&first_copy, &process_env.url("/x")).await,
        "a logout the old process took while the new one started was undone:\n{}",
        new.logs()
    );
    still_ended(&process_env, &ended).await;
}
