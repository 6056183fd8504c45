//! Helpers shared by the integration tests: an HTTP client that does not follow
//! redirects, the browser login dance, PKCE and JWT checks.
#![allow(dead_code)]

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, Response};
use serde_json::Value;

pub const REDIRECT_URI: &str = "http://app.example/callback?from=test";
pub const SERVICE: &str = "http://app.example/cas/callback";

pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn location(resp: &Response) -> String {
    resp.headers()
        .get(LOCATION)
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string()
}

/// The `oa_sso=...` pair from a Set-Cookie response header.
pub fn sso_cookie(resp: &Response) -> String {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("oa_sso="))
        .expect("an oa_sso cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// Query parameter `name` of an absolute or relative URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url)
        .or_else(|_| url::Url::parse("http://x").unwrap().join(url))
        .unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Posts the login form, returns (the `oa_sso=..` cookie, the redirect target).
pub async fn login(
    client: &Client,
    base: &str,
    user: &str,
    password: &str,
    redirect: &str,
) -> (String, String) {
    let resp = client
        .post(format!("{base}/api/v1/login/form"))
        .form(&[
            ("username", user),
            ("password", password),
            ("redirect", redirect),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "login should succeed");
    (sso_cookie(&resp), location(&resp))
}

pub fn pkce_pair() -> (String, String) {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-pkce-test".to_string();
    let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()).as_ref());
    (verifier, challenge)
}

/// Runs authorize -> login form -> authorize -> code and returns (code, cookie).
pub async fn get_code(client: &Client, base: &str, extra: &[(&str, &str)]) -> (String, String) {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", "demo-client"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid profile"),
        ("state", "st 1&x=y"),
    ];
    params.extend_from_slice(extra);
    let resp = client
        .get(format!("{base}/api/v1/oauth2/authorize"))
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let to_login = location(&resp);
    assert!(
        to_login.starts_with("/api/v1/login?redirect="),
        "{to_login}"
    );
    let back = query_param(&to_login, "redirect").unwrap();
    assert!(back.starts_with("/api/v1/oauth2/authorize?"));

    let page = client
        .get(format!("{base}{to_login}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for needle in [
        "<title>OneAccess</title>",
        "id=\"login-form\"",
        "name=\"username\" id=\"username\"",
        "name=\"password\" id=\"password\"",
        "id=\"login-submit\"",
        "action=\"/api/v1/login/form\"",
    ] {
        assert!(html.contains(needle), "login page lacks {needle}");
    }
    assert!(!html.contains("alice-password"), "no hint by default");

    let (cookie, next) = login(client, base, "alice", "alice-password", &back).await;
    assert_eq!(next, back);
    let resp = client
        .get(format!("{base}{next}"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let cb = location(&resp);
    assert!(
        cb.starts_with("http://app.example/callback?from=test&code="),
        "{cb}"
    );
    assert_eq!(query_param(&cb, "state").as_deref(), Some("st 1&x=y"));
    (query_param(&cb, "code").unwrap(), cookie)
}

/// Redeems a code from `get_code` (no PKCE) with the demo client's secret in the
/// form; returns the token response.
pub async fn redeem(client: &Client, base: &str, code: &str) -> Value {
    client
        .post(format!("{base}/api/v1/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", "demo-client"),
            ("client_secret", "demo-secret"),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// Splits a JWT into (header, claims, signing input, signature).
pub fn decode_jwt(jwt: &str) -> (Value, Value, String, Vec<u8>) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS");
    (
        serde_json::from_slice(&b64(parts[0])).unwrap(),
        serde_json::from_slice(&b64(parts[1])).unwrap(),
        format!("{}.{}", parts[0], parts[1]),
        b64(parts[2]),
    )
}

/// Verifies an RS256 JWT against a JWKS document; returns the claims.
pub fn verify_rs256(jwt: &str, jwks: &Value) -> Result<Value, String> {
    let (header, claims, input, sig) = decode_jwt(jwt);
    if header["alg"] != "RS256" {
        return Err("alg".into());
    }
    let kid = header["kid"].as_str().ok_or("kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or("unknown kid")?;
    let n = b64(jwk["n"].as_str().unwrap());
    let e = b64(jwk["e"].as_str().unwrap());
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &sig)
        .map_err(|_| "bad signature".to_string())?;
    Ok(claims)
}

/// POSTs `form` to the token endpoint with the demo client's credentials;
/// the status and the JSON answer.
pub async fn token_call(c: &Client, base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let mut form = form.to_vec();
    form.extend([
        ("client_id", "demo-client"),
        ("client_secret", "demo-secret"),
    ]);
    let resp = c
        .post(format!("{base}/api/v1/oauth2/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// `GET /api/v1/oauth2/authorize` for the demo client with `scope`, `extra`
/// parameters and the SSO `cookie` header value; the answer, not followed.
pub async fn authorize_with(
    c: &Client,
    base: &str,
    cookie: &str,
    scope: &str,
    extra: &[(&str, &str)],
) -> Response {
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", "demo-client"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", scope),
    ];
    q.extend_from_slice(extra);
    c.get(format!("{base}/api/v1/oauth2/authorize"))
        .query(&q)
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
}
