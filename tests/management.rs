//! OneAccess-native authorization end to end: a route that needs an account in a
//! OneAccess application, or one of its roles, asked of the simulator's
//! management API through a client-credentials token. Answers are cached; the
//! token is reused and renewed when refused; when the API is down, a fresh
//! cached answer still serves and anything else fails closed with a 503.

mod common;

use std::time::Duration;

use common::*;
use oneaccess_sim::SimConfig;

const APP: &str = "20210621095843929-CC99-9E7B3BC1F";
const BOB: (&str, &str) = ("bob", "bob-password");
const BOB_ID: &str = "20240002";

fn routes() -> String {
    format!(
        r#"
[[route]]
path = "/crm"
upstream = "{{upstream}}"
protocol = "oidc"
policy = {{ oneaccess = {{ application_id = "{APP}" }} }}

[[route]]
path = "/crm-admin"
upstream = "{{upstream}}"
protocol = "oidc"
policy = {{ oneaccess = {{ application_id = "{APP}", roles = ["auditor", "admin"] }} }}
"#
    )
}

/// A gateway whose answers live `cache` seconds.
async fn env(cache: u64) -> Env {
    let provider = format!(
        r#"
[provider.management]
client_id = "mgmt-client"
client_secret = {{ value = "mgmt-secret", dev = true }}
cache_seconds = {cache}
"#
    );
    start_with(SimConfig::default(), &provider, &routes()).await
}

async fn as_user(env: &Env, user: (&str, &str)) -> Browser {
    let b = Browser::new();
    let r = b.login(&env.url("/x"), user).await;
    assert_eq!(r.status, 200, "{}", r.body);
    b
}

fn past_the_cache() -> Duration {
    Duration::from_millis(1300)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_in_the_application_is_needed() {
    let env = env(300).await;
    env.sim.grant_account(ALICE_ID, APP, "alice.crm");
    let (alice, bob) = (as_user(&env, USER).await, as_user(&env, BOB).await);

    assert_eq!(alice.get(&env.url("/crm/x")).await.status, 200);
    let r = bob.get(&env.url("/crm/x")).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Access denied"), "{}", r.body);
    let r = bob
        .get_with(&env.url("/crm/x"), &[("accept", "application/json")])
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("forbidden"))
    );

    // An account in another application is not one in this.
    env.sim.grant_account(BOB_ID, "some-other-app", "bob.other");
    assert_eq!(bob.get(&env.url("/crm/x")).await.status, 403);

    // Answers are cached: more requests, no more calls; one token for all.
    let before = env.sim.counters();
    for _ in 0..5 {
        assert_eq!(alice.get(&env.url("/crm/y")).await.status, 200);
    }
    let after = env.sim.counters();
    assert_eq!(after.management_accounts, before.management_accounts);
    assert_eq!(after.management_token, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_the_roles_is_needed_and_changes_show_after_the_cache() {
    let env = env(1).await;
    let account = env.sim.grant_account(ALICE_ID, APP, "alice.crm");
    // More roles than one page holds, the wanted one last.
    for n in 0..130 {
        env.sim
            .add_role(APP, &format!("r{n}"), &format!("Role {n}"));
    }
    let admin = env.sim.add_role(APP, "admin", "管理员");
    let alice = as_user(&env, USER).await;

    assert_eq!(alice.get(&env.url("/crm-admin/x")).await.status, 403);
    assert_eq!(
        alice.get(&env.url("/crm/x")).await.status,
        200,
        "an account is enough there"
    );

    env.sim.add_role_member(APP, &admin, &account);
    tokio::time::sleep(past_the_cache()).await;
    assert_eq!(alice.get(&env.url("/crm-admin/x")).await.status, 200);
    assert!(
        env.sim.counters().management_roles >= 2,
        "the role list was read page by page"
    );

    // A disabled account holds no role.
    env.sim.set_account_disabled(&account, true);
    tokio::time::sleep(past_the_cache()).await;
    assert_eq!(alice.get(&env.url("/crm-admin/x")).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_renewed_once() {
    let env = env(1).await;
    env.sim.grant_account(ALICE_ID, APP, "alice.crm");
    let alice = as_user(&env, USER).await;
    assert_eq!(alice.get(&env.url("/crm/x")).await.status, 200);
    assert_eq!(env.sim.counters().management_token, 1);

    env.sim.expire_management_tokens();
    tokio::time::sleep(past_the_cache()).await;
    assert_eq!(alice.get(&env.url("/crm/x")).await.status, 200);
    assert_eq!(env.sim.counters().management_token, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_serves_fresh_answers_and_fails_closed_after() {
    let env = env(1).await;
    env.sim.grant_account(ALICE_ID, APP, "alice.crm");
    let alice = as_user(&env, USER).await;
    let bob = as_user(&env, BOB).await;
    assert_eq!(alice.get(&env.url("/crm/x")).await.status, 200);

    for status in [500, 503] {
        env.sim.set_management_fail_status(Some(status));
        // Fresh: still served.
        assert_eq!(alice.get(&env.url("/crm/x")).await.status, 200);
        // Never asked before: fails closed, clearly.
        let r = bob.get(&env.url("/crm/x")).await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(
            r.body.contains("Authorization is unavailable"),
            "{}",
            r.body
        );
        let r = bob
            .get_with(&env.url("/crm/x"), &[("accept", "application/json")])
            .await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (503, Some("authorization_unavailable"))
        );
        // Stale: fails closed too.
        tokio::time::sleep(past_the_cache()).await;
        assert_eq!(alice.get(&env.url("/crm/x")).await.status, 503);
        env.sim.set_management_fail_status(None);
        assert_eq!(alice.get(&env.url("/crm/x")).await.status, 200);
    }

    // Unreachable altogether: the same.
    env.sim.set_down(true);
    tokio::time::sleep(past_the_cache()).await;
    assert_eq!(alice.get(&env.url("/crm/x")).await.status, 503);
    env.sim.set_down(false);
    assert_eq!(alice.get(&env.url("/crm/x")).await.status, 200);
    // Routes without the rule never asked and never failed.
    assert_eq!(alice.get(&env.url("/x")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_closed() {
    let provider = r#"
[provider.management]
client_id = "mgmt-client"
client_secret = { value = "wrong", dev = true }
"#;
    let env = start_with(SimConfig::default(), provider, &routes()).await;
    env.sim.grant_account(ALICE_ID, APP, "alice.crm");
    let alice = as_user(&env, USER).await;
    assert_eq!(alice.get(&env.url("/crm/x")).await.status, 503);
    assert_eq!(alice.get(&env.url("/x")).await.status, 200);
}
