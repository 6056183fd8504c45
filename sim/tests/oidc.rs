//! OIDC / OAuth 2.0 flows against the simulator: code + PKCE, replay, client auth,
//! userinfo, refresh, logout.

mod common;

use common::*;
use oneaccess_sim::{ExpiresInStyle, Sim, SimConfig};
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE};
use serde_json::Value;

#[tokio::test]
async fn discovery_document() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    assert_eq!(sim.issuer(), format!("{base}/api/v1/oauth2"));
    let doc: Value = client()
        .get(format!(
            "{base}/api/v1/oauth2/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], sim.issuer());
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/api/v1/oauth2/authorize")
    );
    assert_eq!(doc["token_endpoint"], format!("{base}/api/v1/oauth2/token"));
    assert_eq!(
        doc["userinfo_endpoint"],
        format!("{base}/api/v1/oauth2/userinfo")
    );
    assert_eq!(doc["jwks_uri"], format!("{base}/api/v1/oauth2/jwks"));
    assert_eq!(doc["end_session_endpoint"], format!("{base}/api/v1/logout"));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(sim.counters().discovery, 1);

    let sim2 = Sim::start(SimConfig {
        issuer_override: Some("https://idp.example/api/v1/oauth2".into()),
        end_session_endpoint: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let doc: Value = client()
        .get(format!(
            "{}/api/v1/oauth2/.well-known/openid-configuration",
            sim2.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], "https://idp.example/api/v1/oauth2");
    assert!(doc.get("end_session_endpoint").is_none());
}

#[tokio::test]
async fn code_flow_with_pkce_refresh_and_userinfo() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let c = client();
    let (verifier, challenge) = pkce_pair();
    let (code, _cookie) = get_code(
        &c,
        &base,
        &[
            ("nonce", "n-0S6_WzA2Mj"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;

    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", "demo-client"),
        ("client_secret", "demo-secret"),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
    ];
    let resp = c
        .post(format!("{base}/api/v1/oauth2/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(
        tokens["expires_in"], "7200",
        "OneAccess types expires_in as a string"
    );
    assert_eq!(tokens["scope"], "openid profile");
    let id_token = tokens["id_token"].as_str().unwrap();
    assert!(id_token.starts_with("eyJraWQiOi"), "header starts with kid");
    let claims = verify_rs256(id_token, &sim.jwks_json()).unwrap();
    assert_eq!(claims["iss"], sim.issuer());
    assert_eq!(claims["sub"], "20240001");
    assert_eq!(claims["aud"], "demo-client");
    assert_eq!(claims["azp"], "demo-client");
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["name"], "Alice Zhang");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["phone_number"], "+86-13800000001");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);
    assert!(claims["auth_time"].as_u64().unwrap() <= iat);

    // A code works once.
    let replay = c
        .post(format!("{base}/api/v1/oauth2/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    let err: Value = replay.json().await.unwrap();
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(err["error_description"], "Invalid authorization code");

    // userinfo: bearer header only, no `sub`.
    let access = tokens["access_token"].as_str().unwrap();
    let resp = c
        .get(format!("{base}/api/v1/oauth2/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let info: Value = resp.json().await.unwrap();
    assert_eq!(
        info,
        serde_json::json!({"id":"20240001","userName":"alice","name":"Alice Zhang",
                           "email":"alice@example.com","mobile":"+86-13800000001"})
    );
    let resp = c
        .get(format!("{base}/api/v1/oauth2/userinfo"))
        .query(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"], "unauthorized");
    let resp = c
        .get(format!("{base}/api/v1/oauth2/userinfo"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Refresh: new tokens, no nonce, the old refresh token is spent.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (status, refreshed) = token_call(&c, &base, &form).await;
    assert_eq!(status, 200);
    assert_ne!(refreshed["access_token"], tokens["access_token"]);
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"]);
    let claims = verify_rs256(refreshed["id_token"].as_str().unwrap(), &sim.jwks_json()).unwrap();
    assert_eq!(claims["sub"], "20240001");
    assert!(claims.get("nonce").is_none());
    let (status, again) = token_call(&c, &base, &form).await;
    assert_eq!(status, 400);
    assert_eq!(again["error"], "invalid_grant");

    let n = sim.counters();
    assert_eq!((n.authorize, n.token, n.userinfo, n.login), (2, 4, 3, 1));
}

#[tokio::test]
async fn pkce_and_client_authentication_failures() {
    let sim = Sim::start(SimConfig {
        expires_in: ExpiresInStyle::Number,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let base = sim.base_url();
    let c = client();
    let (_, challenge) = pkce_pair();
    let pkce = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];

    // Wrong verifier.
    let (code, _) = get_code(&c, &base, &pkce).await;
    let resp = c
        .post(format!("{base}/api/v1/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", "demo-client"),
            ("client_secret", "demo-secret"),
            ("redirect_uri", REDIRECT_URI),
            (
                "code_verifier",
                "wrong-verifier-wrong-verifier-wrong-verifier-123",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // Wrong secret (post) and wrong secret (basic).
    let (code, _) = get_code(&c, &base, &[]).await;
    let resp = c
        .post(format!("{base}/api/v1/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", "demo-client"),
            ("client_secret", "wrong"),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let resp = c
        .post(format!("{base}/api/v1/oauth2/token"))
        .basic_auth("demo-client", Some("wrong"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // The code was not consumed by failed client authentication: Basic works, but a
    // different redirect_uri does not.
    let resp = c
        .post(format!("{base}/api/v1/oauth2/token"))
        .basic_auth("demo-client", Some("demo-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["expires_in"], 7200);

    let (code, _) = get_code(&c, &base, &[]).await;
    let resp = c
        .post(format!("{base}/api/v1/oauth2/token"))
        .header(AUTHORIZATION, "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=")
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://app.example/other"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn authorize_errors_login_and_logout() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let c = client();

    let resp = c
        .get(format!("{base}/api/v1/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "nobody"),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Bad credentials: 401 with the form again.
    let resp = c
        .post(format!("{base}/api/v1/login/form"))
        .form(&[
            ("username", "alice"),
            ("password", "nope"),
            ("redirect", "/api/v1/x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"login-form\"") && html.contains("Invalid username or password"));

    // Not an open redirect.
    let (cookie, next) = login(&c, &base, "bob", "bob-password", "https://evil.example/").await;
    assert_eq!(next, "/api/v1/login");

    // With a session, authorize answers at once; prompt=none without one fails.
    let resp = authorize_with(&c, &base, &cookie, "get_user_info", &[]).await;
    assert_eq!(resp.status(), 302);
    let code = query_param(&location(&resp), "code").unwrap();
    let tokens: Value = redeem(&c, &base, &code).await;
    assert!(
        tokens.get("id_token").is_none(),
        "plain OAuth 2.0: no ID token"
    );

    // Global logout ends the session.
    let resp = c
        .get(format!("{base}/api/v1/logout"))
        .query(&[("redirect_url", "http://app.example/bye")])
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(location(&resp), "http://app.example/bye");
    assert!(resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let extra = [("prompt", "none"), ("state", "s")];
    let resp = authorize_with(&c, &base, &cookie, "openid", &extra).await;
    assert_eq!(resp.status(), 302);
    let loc = location(&resp);
    assert_eq!(
        query_param(&loc, "error").as_deref(),
        Some("login_required")
    );
    assert_eq!(query_param(&loc, "state").as_deref(), Some("s"));
    assert_eq!(sim.counters().logout, 1);
}
