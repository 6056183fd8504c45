//! The management API over HTTP: client-credentials tokens (success, failures, expiry),
//! bearer checks, a user's application accounts, paginated roles and role members
//! (numbers or numeric strings in the body), and the failure knobs (global and
//! management-only).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use oneaccess_sim::{Sim, SimConfig};
use reqwest::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use reqwest::RequestBuilder;
use serde_json::{json, Value};

const ALICE: &str = "20240001";
const BOB: &str = "20240002";
const APP: &str = "20240101000000000-APP1-000000001";
const OTHER_APP: &str = "20240101000000000-APP2-000000002";

/// Sends the request; returns the status and the JSON body.
async fn call(req: RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn token_request(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    call(
        client()
            .post(format!("{base}/api/v2/tenant/token"))
            .form(form),
    )
    .await
}

/// A fresh management token with the default credentials.
async fn mgmt_token(base: &str) -> String {
    let (status, body) = token_request(
        base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "mgmt-client"),
            ("client_secret", "mgmt-secret"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

fn accounts_url(base: &str, user_id: &str) -> String {
    format!("{base}/api/v2/tenant/users/{user_id}/accounts")
}

fn roles_url(base: &str, app: &str) -> String {
    format!("{base}/api/v2/tenant/applications/{app}/role-list")
}

fn members_url(base: &str, app: &str, role: &str) -> String {
    format!("{base}/api/v2/tenant/applications/{app}/role-member-list/{role}")
}

async fn roles_page(base: &str, token: &str, query: &[(&str, &str)]) -> (u16, Value) {
    call(
        client()
            .get(roles_url(base, APP))
            .bearer_auth(token)
            .query(query),
    )
    .await
}

async fn members_page(base: &str, token: &str, role: &str, body: Value) -> (u16, Value) {
    call(
        client()
            .get(members_url(base, APP, role))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error_code"], want_code, "{body}");
    assert!(
        !body["error_msg"].as_str().unwrap().is_empty(),
        "an error message: {body}"
    );
}

#[tokio::test]
async fn token_success_and_failures() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();

    let resp = client()
        .post(format!("{base}/api/v2/tenant/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "mgmt-client"),
            ("client_secret", "mgmt-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 1800, "a JSON number of seconds");
    assert_eq!(body["scope"], "all");
    let first = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(first.len(), 36, "UUID-shaped: {first}");
    assert_eq!(first.matches('-').count(), 4);

    // A second token does not invalidate the first.
    let second = mgmt_token(&base).await;
    assert_ne!(first, second);
    for t in [&first, &second] {
        let (status, _) = call(client().get(accounts_url(&base, ALICE)).bearer_auth(t)).await;
        assert_eq!(status, 200);
    }

    let ok = [
        ("grant_type", "client_credentials"),
        ("client_id", "mgmt-client"),
        ("client_secret", "mgmt-secret"),
    ];
    let with = |i: usize, v: &'static str| {
        let mut f = ok.to_vec();
        f[i].1 = v;
        f
    };
    let (status, body) = token_request(&base, &with(2, "wrong")).await;
    assert_error(status, &body, 400, "invalid_client");
    assert_eq!(body["error_msg"], "Bad client credentials");
    let (status, body) = token_request(&base, &with(1, "someone-else")).await;
    assert_error(status, &body, 400, "invalid_client");
    // The OIDC application's credentials are not management credentials.
    let (status, body) = token_request(
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-client"),
            ("client_secret", "demo-secret"),
        ],
    )
    .await;
    assert_error(status, &body, 400, "invalid_client");
    let (status, body) = token_request(&base, &with(0, "authorization_code")).await;
    assert_error(status, &body, 400, "unsupported_grant_type");
    let (status, body) = token_request(&base, &ok[1..]).await;
    assert_error(status, &body, 400, "unsupported_grant_type");
    let (status, body) = token_request(&base, &[ok[0], ok[2]]).await;
    assert_error(status, &body, 400, "PARAM.0002");
    assert!(body.get("access_token").is_none());

    assert_eq!(sim.counters().management_token, 8);
    assert_eq!(sim.counters().management_accounts, 2);
    assert_eq!(
        sim.counters().token,
        0,
        "the OIDC token endpoint is separate"
    );
}

#[tokio::test]
async fn configured_credentials_and_lifetime() {
    let sim = Sim::start(SimConfig {
        management_client_id: "ops".into(),
        management_client_secret: "s3cret".into(),
        management_token_ttl: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let base = sim.base_url();
    let (status, body) = token_request(
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "mgmt-client"),
            ("client_secret", "mgmt-secret"),
        ],
    )
    .await;
    assert_error(status, &body, 400, "invalid_client");
    let (status, body) = token_request(
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "ops"),
            ("client_secret", "s3cret"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap();
    let url = accounts_url(&base, ALICE);
    assert_eq!(
        call(client().get(&url).bearer_auth(token)).await.0,
        200,
        "valid at first"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = call(client().get(&url).bearer_auth(token)).await;
    assert_eq!(status, 401, "expired after its lifetime: {body}");
    assert_eq!(body["error"], "invalid_token");
}

#[tokio::test]
async fn bearer_token_is_required_and_checked() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let role = sim.add_role(APP, "admin", "Administrators");
    let c = client();

    // No token, on every protected endpoint.
    for req in [
        c.get(accounts_url(&base, ALICE)),
        c.get(roles_url(&base, APP)).query(&[("limit", "10")]),
        c.get(members_url(&base, APP, &role))
            .json(&json!({"offset": 0, "limit": 10})),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert!(resp.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(
            body["error_description"],
            "Full authentication is required to access this resource"
        );
    }

    // Unknown token, wrong scheme, and a user's OIDC access token.
    let (status, body) = call(c.get(accounts_url(&base, ALICE)).bearer_auth("nope")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    let token = mgmt_token(&base).await;
    let (status, _) = call(
        c.get(accounts_url(&base, ALICE))
            .basic_auth("mgmt-client", Some(&token)),
    )
    .await;
    assert_eq!(status, 401);
    let (code, _) = get_code(&c, &base, &[]).await;
    let oidc = redeem(&c, &base, &code).await;
    let user_token = oidc["access_token"].as_str().unwrap();
    let (status, _) = call(c.get(accounts_url(&base, ALICE)).bearer_auth(user_token)).await;
    assert_eq!(
        status, 401,
        "a user's access token is not a management token"
    );

    // Expired by the knob: the old token fails, a new one works.
    assert_eq!(
        call(c.get(accounts_url(&base, ALICE)).bearer_auth(&token))
            .await
            .0,
        200
    );
    sim.expire_management_tokens();
    let (status, body) = call(c.get(accounts_url(&base, ALICE)).bearer_auth(&token)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    let (status, _) = roles_page(&base, &token, &[("limit", "10")]).await;
    assert_eq!(status, 401);
    let fresh = mgmt_token(&base).await;
    let (status, body) = roles_page(&base, &fresh, &[("limit", "10")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1);
}

#[tokio::test]
async fn user_accounts_listing() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let token = mgmt_token(&base).await;
    let list = |user: &'static str| {
        let (base, token) = (base.clone(), token.clone());
        async move { call(client().get(accounts_url(&base, user)).bearer_auth(&token)).await }
    };

    let (status, body) = list(BOB).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"total": 0, "accounts": []}));

    let a1 = sim.grant_account(ALICE, APP, "alice.app1");
    let a2 = sim.grant_account(ALICE, OTHER_APP, "alice.app2");
    let b1 = sim.grant_account(BOB, APP, "bob.app1");
    assert_ne!(a1, a2);
    // OneAccess-style ids: yyyyMMddHHmmssSSS-XXXX-XXXXXXXXX.
    let parts: Vec<&str> = a1.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [17, 4, 9],
        "{a1}"
    );
    assert!(parts[0].bytes().all(|b| b.is_ascii_digit()));

    let (status, body) = list(ALICE).await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 2);
    assert_eq!(ids(&body["accounts"]), [a1.clone(), a2.clone()]);
    assert_eq!(
        body["accounts"][0],
        json!({
            "id": a1,
            "application_id": APP,
            "account_name": "alice.app1",
            "account_type": "BASIC_ACCOUNT",
            "name": "Alice Zhang",
            "extension": {},
        })
    );
    assert_eq!(body["accounts"][1]["application_id"], OTHER_APP);
    let (_, body) = list(BOB).await;
    assert_eq!(ids(&body["accounts"]), [b1]);

    sim.remove_account(&a1);
    let (_, body) = list(ALICE).await;
    assert_eq!(body["total"], 1);
    assert_eq!(ids(&body["accounts"]), [a2]);

    let (status, body) = list("no-such-user").await;
    assert_error(status, &body, 400, "USER.0001");
    assert_eq!(body["error_msg"], "User does not exist.");
    assert_eq!(sim.counters().management_accounts, 5);
}

#[tokio::test]
async fn role_list_is_paginated() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let token = mgmt_token(&base).await;
    let made: Vec<String> = (0..25)
        .map(|i| sim.add_role(APP, &format!("role{i:02}"), &format!("Role {i}")))
        .collect();
    sim.add_role(OTHER_APP, "elsewhere", "Not in APP");

    let mut seen = Vec::new();
    for (page, size) in [(0, 10), (1, 10), (2, 5)] {
        let offset = page.to_string();
        let (status, body) =
            roles_page(&base, &token, &[("offset", &offset), ("limit", "10")]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 25);
        assert_eq!(body["offset"], page);
        assert_eq!(body["limit"], 10);
        assert_eq!(body["roles"].as_array().unwrap().len(), size);
        seen.extend(ids(&body["roles"]));
    }
    assert_eq!(seen, made, "every role once, in creation order");
    let (_, body) = roles_page(&base, &token, &[("offset", "3"), ("limit", "10")]).await;
    assert_eq!(body["roles"], json!([]), "past the last page");
    assert_eq!(body["total"], 25);

    // offset is optional (page 0); a bigger page holds everything.
    let (_, body) = roles_page(&base, &token, &[("limit", "100")]).await;
    assert_eq!(
        (body["offset"].as_u64(), body["limit"].as_u64()),
        (Some(0), Some(100))
    );
    assert_eq!(ids(&body["roles"]), made);
    let role = &body["roles"][7];
    assert_eq!(role["code"], "role07");
    assert_eq!(role["name"], "Role 7");
    assert!(role["updatedAt"].is_null());
    let created = role["createdAt"].as_str().unwrap();
    // `2022-04-15 17:03:05.200`
    assert_eq!(created.len(), 23, "{created}");
    assert_eq!(
        (&created[4..5], &created[10..11], &created[19..20]),
        ("-", " ", ".")
    );

    for bad in [
        vec![("limit", "9")],
        vec![("limit", "101")],
        vec![("limit", "ten")],
        vec![("offset", "0")],
        vec![("offset", "-1"), ("limit", "10")],
    ] {
        let (status, body) = roles_page(&base, &token, &bad).await;
        assert_error(status, &body, 400, "PAGE.0001");
    }
    let (status, _) = roles_page(&base, &token, &[("limit", "10")]).await;
    assert_eq!(status, 200, "10 is the smallest page size");

    let (status, body) = call(
        client()
            .get(roles_url(&base, "no-such-app"))
            .bearer_auth(&token)
            .query(&[("limit", "10")]),
    )
    .await;
    assert_error(status, &body, 400, "APP.0001");
    let (_, body) = call(
        client()
            .get(roles_url(&base, OTHER_APP))
            .bearer_auth(&token)
            .query(&[("limit", "10")]),
    )
    .await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["roles"][0]["code"], "elsewhere");
    assert_eq!(sim.counters().management_roles, 13);
}

#[tokio::test]
async fn role_members_are_paginated() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let token = mgmt_token(&base).await;
    let role = sim.add_role(APP, "reader", "Readers");
    let empty_role = sim.add_role(APP, "writer", "Writers");
    let accounts: Vec<String> = (0..23)
        .map(|i| {
            let user = if i % 2 == 0 { ALICE } else { BOB };
            let acc = sim.grant_account(user, APP, &format!("acc{i:02}"));
            sim.add_role_member(APP, &role, &acc);
            acc
        })
        .collect();
    sim.add_role_member(APP, &role, &accounts[0]); // twice: no further effect

    // Numbers, and the reference's numeric strings, page through all members.
    let mut seen = Vec::new();
    for (body, size) in [
        (json!({"offset": 0, "limit": 10}), 10),
        (json!({"offset": "1", "limit": "10"}), 10),
        (json!({"offset": 2, "limit": "10"}), 3),
    ] {
        let (status, page) = members_page(&base, &token, &role, body.clone()).await;
        assert_eq!(status, 200, "{body} -> {page}");
        assert_eq!(page["total"], 23);
        assert_eq!(page["limit"], 10, "echoed as a number");
        assert!(page["offset"].is_u64());
        assert_eq!(page["role_members"].as_array().unwrap().len(), size);
        seen.extend(ids(&page["role_members"]));
    }
    assert_eq!(seen, accounts);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 23);

    sim.set_account_disabled(&accounts[1], true);
    let (_, page) =
        members_page(&base, &token, &role, json!({"offset": "0", "limit": "100"})).await;
    assert_eq!(
        page["role_members"][1],
        json!({
            "id": accounts[1],
            "account_name": "acc01",
            "name": "Bob Li",
            "org_id": null,
            "disabled": true,
            "account_type": "BASIC_ACCOUNT",
            "extension": null,
        })
    );
    assert_eq!(page["role_members"][0]["disabled"], false);
    assert_eq!(page["role_members"][0]["name"], "Alice Zhang");
    sim.set_account_disabled(&accounts[1], false);

    // Members leave by removal from the role or deletion of the account.
    sim.remove_role_member(APP, &role, &accounts[0]);
    sim.remove_account(&accounts[22]);
    let (_, page) = members_page(&base, &token, &role, json!({"offset": 0, "limit": 100})).await;
    assert_eq!(page["total"], 21);
    assert_eq!(ids(&page["role_members"]), accounts[1..22].to_vec());
    assert_eq!(page["role_members"][0]["disabled"], false);

    let (status, page) = members_page(
        &base,
        &token,
        &empty_role,
        json!({"offset": 0, "limit": 10}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            page["total"].as_u64(),
            page["role_members"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );

    for bad in [
        json!({"offset": 0, "limit": 9}),
        json!({"offset": "0", "limit": "101"}),
        json!({"offset": 0}),
        json!({"limit": 10}),
        json!({"offset": -1, "limit": 10}),
        json!({"offset": "x", "limit": "10"}),
        json!({"offset": 0.5, "limit": 10}),
        json!([0, 10]),
    ] {
        let (status, body) = members_page(&base, &token, &role, bad.clone()).await;
        assert_error(status, &body, 400, "PAGE.0001");
    }
    let (status, body) = call(
        client()
            .get(members_url(&base, APP, &role))
            .bearer_auth(&token),
    )
    .await;
    assert_error(status, &body, 400, "PAGE.0001");

    let (status, body) = members_page(
        &base,
        &token,
        "no-such-role",
        json!({"offset": 0, "limit": 10}),
    )
    .await;
    assert_error(status, &body, 400, "APP_ROLE.0001");
    let other_role = sim.add_role(OTHER_APP, "reader", "Readers elsewhere");
    let (status, body) = members_page(
        &base,
        &token,
        &other_role,
        json!({"offset": 0, "limit": 10}),
    )
    .await;
    assert_error(status, &body, 400, "APP_ROLE.0001");
    let (status, body) = call(
        client()
            .get(members_url(&base, "no-such-app", &role))
            .bearer_auth(&token)
            .json(&json!({"offset": 0, "limit": 10})),
    )
    .await;
    assert_error(status, &body, 400, "APP.0001");
    assert_eq!(sim.counters().management_members, 18);
}

#[tokio::test]
async fn management_fail_knob_leaves_logins_working() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let token = mgmt_token(&base).await;
    let role = sim.add_role(APP, "r", "R");
    let c = client();
    let busy =
        json!({"error_code": "COM.0002", "error_msg": "System busy. Please try again later."});

    sim.set_management_fail_status(Some(503));
    let requests = [
        c.post(format!("{base}/api/v2/tenant/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "mgmt-client"),
            ("client_secret", "mgmt-secret"),
        ]),
        c.get(accounts_url(&base, ALICE)).bearer_auth(&token),
        c.get(roles_url(&base, APP))
            .bearer_auth(&token)
            .query(&[("limit", "10")]),
        c.get(members_url(&base, APP, &role))
            .bearer_auth(&token)
            .json(&json!({"offset": 0, "limit": 10})),
    ];
    for req in requests {
        let (status, body) = call(req).await;
        assert_eq!(status, 503);
        assert_eq!(body, busy);
    }
    // Also before authentication: the outage hides the token check.
    let (status, _) = call(c.get(accounts_url(&base, ALICE))).await;
    assert_eq!(status, 503);

    // Logins and the OIDC endpoints keep working meanwhile.
    let (code, _) = get_code(&c, &base, &[]).await;
    let tokens = redeem(&c, &base, &code).await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
    let jwks = c
        .get(format!("{base}/api/v1/oauth2/jwks"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);

    sim.set_management_fail_status(None);
    let (status, _) = call(c.get(accounts_url(&base, ALICE)).bearer_auth(&token)).await;
    assert_eq!(
        status, 200,
        "the token issued before the outage still works"
    );
    let counters = sim.counters();
    assert_eq!(
        (
            counters.management_token,
            counters.management_accounts,
            counters.management_roles,
            counters.management_members
        ),
        (2, 3, 1, 1),
        "injected failures are counted too"
    );
}

#[tokio::test]
async fn global_knobs_apply_to_management_endpoints() {
    let sim = Sim::start(SimConfig {
        keep_alive: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let base = sim.base_url();
    let token = mgmt_token(&base).await;
    let url = accounts_url(&base, ALICE);
    let c = client();

    // set_fail_status: the management endpoints answer in their own error shape, the
    // others keep theirs.
    sim.set_fail_status(Some(500));
    let (status, body) = call(c.get(&url).bearer_auth(&token)).await;
    assert_error(status, &body, 500, "COM.0002");
    assert_eq!(body["error_msg"], "System busy. Please try again later.");
    let (status, body) = call(c.get(format!("{base}/api/v1/oauth2/jwks"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (500, Some("server_error"))
    );
    // The global failure wins over the management one.
    sim.set_management_fail_status(Some(503));
    assert_eq!(call(c.get(&url).bearer_auth(&token)).await.0, 500);
    sim.set_management_fail_status(None);
    sim.set_fail_status(None);

    sim.set_latency(Duration::from_millis(300));
    let start = Instant::now();
    assert_eq!(call(c.get(&url).bearer_auth(&token)).await.0, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    sim.set_latency(Duration::ZERO);

    sim.set_down(true);
    let err = c.get(&url).bearer_auth(&token).send().await.unwrap_err();
    assert!(err.is_connect(), "refused while down: {err:?}");
    sim.set_down(false);
    assert_eq!(call(c.get(&url).bearer_auth(&token)).await.0, 200);
    assert_eq!(
        sim.counters().management_accounts,
        4,
        "refused requests are not counted"
    );
}
