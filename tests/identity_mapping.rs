//! What the app is told, end to end: header mapping from claims (dotted paths,
//! list separators), fixed values and templates, with hostile claim values; a
//! rule that rejects users without a value; the user's token as
//! `Authorization: Bearer`; the signed identity assertion, checked against the
//! gateway's published JWKS; bearer-JWT API clients; and time windows.

mod common;

use std::sync::Arc;

use common::*;
use jsonwebtoken::{decode, jwk::JwkSet, Algorithm, DecodingKey, Validation};
use oneaccess_sim::SimConfig;
use serde_json::{json, Map, Value};

const ROUTES: &str = r#"
[[route]]
path = "/mapped"
upstream = "{upstream}"
protocol = "oidc"
pass_token = "access"
assertion = true
[route.headers]
X-User = "sub"
X-Login = { template = "{preferred_username}@corp" }
X-Tenant = { value = "acme" }
X-Groups = { claim = "groups", separator = ";" }
X-Country = "address.country"
X-Name = "name"

[[route]]
path = "/strict"
upstream = "{upstream}"
protocol = "oidc"
[route.headers]
X-User = "sub"
X-Employee = { claim = "employee_id", missing = "reject" }

[[route]]
path = "/idtoken"
upstream = "{upstream}"
protocol = "oidc"
pass_token = "id"

[[route]]
path = "/api"
upstream = "{upstream}"
protocol = "oidc"
bearer_tokens = true
policy = { users = ["alice"] }
"#;

/// Alice's ID token carries hostile and structured claims.
fn hostile_claims(_: &mut Map<String, Value>, c: &mut Map<String, Value>) {
    c.insert("name".into(), json!("Eve\r\nX-Forwarded-User: admin"));
    c.insert("groups".into(), json!(["staff", "dev;ops", "x\u{1f}admin"]));
    c.insert("address".into(), json!({"country": "CN", "city": "Xi'an"}));
}

async fn env_with(extra: &str) -> Env {
    let env = start_with(SimConfig::default(), "", &format!("{ROUTES}{extra}")).await;
    env.sim.set_token_hook(Some(Arc::new(hostile_claims)));
    env
}

async fn logged_in(env: &Env) -> Browser {
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/"), USER).await.status, 200);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_values_and_templates_reach_the_app_sanitised() {
    let env = env_with("").await;
    let b = logged_in(&env).await;
    let r = b
        .get_with(
            &env.url("/mapped/x"),
            &[("x-tenant", "evil"), ("x_user", "admin")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.upstream_header("x-user"), [ALICE_ID]);
    assert_eq!(r.upstream_header("x-login"), ["alice@corp"]);
    assert_eq!(
        r.upstream_header("x-tenant"),
        ["acme"],
        "the client's own is gone"
    );
    assert_eq!(r.upstream_header("x-groups"), ["staff;dev;ops;x admin"]);
    assert_eq!(r.upstream_header("x-country"), ["CN"]);
    assert_eq!(
        r.upstream_header("x-name"),
        ["Eve  X-Forwarded-User: admin"]
    );
    assert!(r.upstream_header("x-forwarded-user").is_empty());
    assert!(
        !r.upstream_header_names().iter().any(|n| n == "x_user"),
        "a client spelling of a managed header passed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejecting_rule_refuses_users_without_the_value() {
    let env = env_with("").await;
    let b = logged_in(&env).await;
    let r = b.get(&env.url("/strict/x")).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("lacks information"), "{}", r.body);
    let r = b
        .get_with(&env.url("/strict/x"), &[("accept", "application/json")])
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("missing_attribute"))
    );

    // With the claim, the same route serves.
    env.sim.set_token_hook(Some(Arc::new(|_, c| {
        c.insert("employee_id".into(), json!("E-7"));
    })));
    let b = logged_in(&env).await;
    let r = b.get(&env.url("/strict/x")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.upstream_header("x-employee"), ["E-7"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_tokens_go_upstream_and_never_the_clients() {
    let env = env_with("").await;
    let b = logged_in(&env).await;
    let r = b
        .get_with(&env.url("/mapped/x"), &[("authorization", "Bearer forged")])
        .await;
    let auth = r.upstream_header("authorization");
    assert_eq!(auth.len(), 1);
    let token = auth[0].strip_prefix("Bearer ").expect("bearer");
    assert_ne!(token, "forged");
    // It is the user's real access token: OneAccess's userinfo accepts it.
    let info = reqwest::Client::new()
        .get(format!("{}/api/v1/oauth2/userinfo", env.sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(info.status(), 200);

    let r = b.get(&env.url("/idtoken/x")).await;
    let auth = r.upstream_header("authorization");
    let jwt = auth[0].strip_prefix("Bearer ").expect("bearer");
    let header = jsonwebtoken::decode_header(jwt).expect("an ID token");
    assert_eq!(header.alg, Algorithm::RS256);

    // A route that passes no token passes the client's Authorization untouched.
    let r = b
        .get_with(&env.url("/x"), &[("authorization", "Basic YTpi")])
        .await;
    assert_eq!(r.upstream_header("authorization"), ["Basic YTpi"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assertion_verifies_with_the_published_jwks_and_cannot_be_forged() {
    let env = env_with("").await;
    let b = logged_in(&env).await;
    let r = b.get(&env.url("/mapped/x")).await;
    let jwt = r.upstream_header("x-gateway-assertion");
    assert_eq!(jwt.len(), 1);

    let jwks = b.get(&env.url("/_sso/jwks.json")).await;
    assert_eq!(jwks.status, 200);
    let set: JwkSet = serde_json::from_str(&jwks.body).expect("jwks");
    let key = DecodingKey::from_jwk(&set.keys[0]).expect("key");
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[env.url("")]);
    v.set_audience(&[env.url("")]);
    let claims: Value = decode(&jwt[0], &key, &v).expect("verifies").claims;
    assert_eq!(claims["sub"], ALICE_ID);
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["groups"], json!(["staff", "dev;ops", "x admin"]));
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    assert_eq!(exp.zip(iat).map(|(e, i)| e - i), Some(60));

    // A client's own assertion never reaches an app, on any route.
    for path in ["/public/x", "/x"] {
        let r = b
            .get_with(&env.url(path), &[("x-gateway-assertion", &jwt[0])])
            .await;
        assert_eq!(r.status, 200);
        assert!(
            r.upstream_header("x-gateway-assertion").is_empty(),
            "{path}"
        );
    }
}

fn token_for(env: &Env, sub: &str, tweak: impl FnOnce(&mut Map<String, Value>)) -> String {
    let now = oneaccess_gateway::session::now_secs();
    let mut claims = json!({
        "iss": env.sim.issuer(), "aud": "demo-client", "sub": sub,
        "iat": now, "exp": now + 300, "preferred_username": if sub == ALICE_ID { "alice" } else { "bob" },
    })
    .as_object()
    .cloned()
    .expect("object");
    tweak(&mut claims);
    env.sim.mint_id_token(claims)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_clients_bring_bearer_tokens_and_never_get_a_redirect() {
    let env = env_with("").await;
    let api = Browser::new();
    let call = |token: String| {
        let api = &api;
        let url = env.url("/api/items");
        async move {
            api.get_with(&url, &[("authorization", &format!("Bearer {token}"))])
                .await
        }
    };

    let r = call(token_for(&env, ALICE_ID, |_| {})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.upstream_header("x-forwarded-user"), [ALICE_ID]);
    assert!(r.set_cookies().is_empty(), "a bearer call makes no session");

    // Bob is a valid user, but the route's policy allows only alice.
    let r = call(token_for(&env, "20240002", |_| {})).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("forbidden"))
    );

    let refused: Vec<(&str, String)> = vec![
        ("another audience", token_for(&env, ALICE_ID, |c| {
            c.insert("aud".into(), json!("other-app"));
        })),
        ("expired", token_for(&env, ALICE_ID, |c| {
            c.insert("exp".into(), json!(1_000_000));
        })),
        ("another issuer", token_for(&env, ALICE_ID, |c| {
            c.insert("iss".into(), json!("https://evil.example/api/v1/oauth2"));
        })),
        ("no sub", token_for(&env, ALICE_ID, |c| {
            c.remove("sub");
        })),
        ("not a JWT", "opaque-token".to_string()),
        (
            "alg none",
            format!(
                "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
                base64_url(&json!({"iss": env.sim.issuer(), "aud": "demo-client", "sub": ALICE_ID, "exp": 4_000_000_000u64}).to_string())
            ),
        ),
    ];
    for (name, token) in refused {
        let r = call(token).await;
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        let challenge = r
            .headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or(""));
        assert_eq!(challenge, Some("Bearer error=\"invalid_token\""), "{name}");
    }

    // No token: an API client gets the challenge, not a login redirect.
    let r = api
        .get_with(&env.url("/api/items"), &[("accept", "application/json")])
        .await;
    assert_eq!(r.status, 401);
    assert!(r.headers.get("www-authenticate").is_some());
    // A browser on the same route without a token still logs in as usual, and
    // its session serves it there.
    let b = logged_in(&env).await;
    assert_eq!(b.get(&env.url("/api/items")).await.status, 200);
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_windows_open_and_close_a_route() {
    // Windows two hours away from now (UTC) are closed; all day is open.
    let hour = (oneaccess_gateway::session::now_secs() / 3600) % 24;
    let later = |h: u64| format!("{:02}:00", (hour + h) % 24);
    let extra = format!(
        r#"
[[route]]
path = "/closed"
upstream = "{{upstream}}"
protocol = "oidc"
[route.policy]
time_zone = "UTC"
windows = [{{ from = "{}", to = "{}" }}]

[[route]]
path = "/open"
upstream = "{{upstream}}"
protocol = "oidc"
[route.policy]
time_zone = "Asia/Shanghai"
windows = [{{ days = ["mon-sun"], from = "00:00", to = "24:00" }}]
"#,
        later(2),
        later(3)
    );
    let env = env_with(&extra).await;
    let b = logged_in(&env).await;
    let r = b.get(&env.url("/closed/x")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(b.get(&env.url("/open/x")).await.status, 200);
}
