//! The test knobs: key rotation, signing modes, token hook, latency, injected failures,
//! going down (connections refused) and back up on the same port, overridden userinfo
//! and CAS validation answers, and what the last userinfo / CAS validation request carried.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use oneaccess_sim::{Signing, Sim, SimConfig, TokenHook};
use serde_json::{json, Map, Value};

fn claims() -> Map<String, Value> {
    json!({"sub": "20240001", "iss": "x"})
        .as_object()
        .unwrap()
        .clone()
}

async fn jwks(base: &str) -> Value {
    client()
        .get(format!("{base}/api/v1/oauth2/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn key_rotation_is_visible_in_jwks() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let before = jwks(&base).await;
    let keys = before["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(
        (k["kty"].as_str(), k["use"].as_str(), k["alg"].as_str()),
        (Some("RSA"), Some("sig"), Some("RS256"))
    );
    assert_eq!(k["e"], "AQAB");
    let old_kid = k["kid"].as_str().unwrap().to_string();
    let old_token = sim.mint_id_token(claims());

    sim.rotate_key();
    let after = jwks(&base).await;
    let kids: Vec<&str> = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2);
    assert!(kids.contains(&old_kid.as_str()));
    let new_token = sim.mint_id_token(claims());
    let (header, ..) = decode_jwt(&new_token);
    assert_ne!(header["kid"], old_kid.as_str());
    verify_rs256(&new_token, &after).unwrap();
    verify_rs256(&old_token, &after).unwrap();

    sim.drop_old_keys();
    let last = jwks(&base).await;
    assert_eq!(last["keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        verify_rs256(&old_token, &last),
        Err("unknown kid".to_string())
    );
    verify_rs256(&new_token, &last).unwrap();
    assert_eq!(sim.counters().jwks, 3);
}

#[tokio::test]
async fn signing_modes_and_token_hook() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let keys = sim.jwks_json();

    sim.set_signing(Signing::CorruptSignature);
    assert_eq!(
        verify_rs256(&sim.mint_id_token(claims()), &keys),
        Err("bad signature".into())
    );

    sim.set_signing(Signing::UnknownKid);
    assert_eq!(
        verify_rs256(&sim.mint_id_token(claims()), &keys),
        Err("unknown kid".into())
    );

    sim.set_signing(Signing::AlgNone);
    let t = sim.mint_id_token(claims());
    assert!(t.ends_with('.'));
    assert_eq!(decode_jwt(&t).0["alg"], "none");

    sim.set_signing(Signing::Hs256WithClientSecret);
    let t = sim.mint_id_token(claims());
    let (header, _, input, sig) = decode_jwt(&t);
    assert_eq!(header["alg"], "HS256");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"demo-secret");
    aws_lc_rs::hmac::verify(&key, input.as_bytes(), &sig).unwrap();

    // The hook edits issued ID tokens (not mint_id_token's).
    sim.set_signing(Signing::Normal);
    let hook: TokenHook = Arc::new(|header, claims| {
        header.insert("x-test".into(), true.into());
        claims.insert("aud".into(), "someone-else".into());
    });
    sim.set_token_hook(Some(hook));
    let c = client();
    let base = sim.base_url();
    let (code, _) = get_code(&c, &base, &[]).await;
    let tokens: Value = redeem(&c, &base, &code).await;
    let t = tokens["id_token"].as_str().unwrap();
    let claims = verify_rs256(t, &keys).unwrap();
    assert_eq!(claims["aud"], "someone-else");
    assert_eq!(decode_jwt(t).0["x-test"], true);
}

#[tokio::test]
async fn latency_and_fail_status() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let url = format!(
        "{}/api/v1/oauth2/.well-known/openid-configuration",
        sim.base_url()
    );
    let c = client();

    sim.set_fail_status(Some(503));
    let resp = c.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "server_error");
    let resp = c
        .get(format!("{}/api/v1/oauth2/jwks", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);

    sim.set_fail_status(None);
    sim.set_latency(Duration::from_millis(300));
    let start = Instant::now();
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    sim.set_latency(Duration::ZERO);
    assert_eq!(
        sim.counters().discovery,
        2,
        "failed requests are counted too"
    );
}

#[tokio::test]
async fn down_refuses_connections_then_recovers() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let addr = sim.addr();
    let url = format!("{}/api/v1/oauth2/jwks", sim.base_url());
    // One client for all requests, so its pooled keep-alive connection is reused.
    let c = client();
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);

    sim.set_down(true);
    // The pooled connection was closed: the request fails (refused, or "connection
    // closed" if the client had not noticed the close yet).
    assert!(c.get(&url).send().await.is_err());
    let raw = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(raw.kind(), std::io::ErrorKind::ConnectionRefused);
    let err = client().get(&url).send().await.unwrap_err();
    assert!(
        err.is_connect(),
        "expected a refused connection, got {err:?}"
    );
    assert!(c.get(&url).send().await.unwrap_err().is_connect());

    sim.set_down(false);
    assert_eq!(sim.addr(), addr);
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);

    // Down again while a request is waiting on latency: that request fails too.
    sim.set_latency(Duration::from_millis(500));
    let pending = tokio::spawn({
        let c = c.clone();
        let url = url.clone();
        async move { c.get(&url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    sim.set_down(true);
    assert!(pending.await.unwrap().is_err());
    sim.set_latency(Duration::ZERO);
    sim.set_down(false);
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);

    sim.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn without_keep_alive_down_is_always_refused() {
    let sim = Sim::start(SimConfig {
        keep_alive: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/api/v1/oauth2/jwks", sim.base_url());
    let c = client();
    for _ in 0..5 {
        assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
        sim.set_down(true);
        let err = c.get(&url).send().await.unwrap_err();
        assert!(
            err.is_connect(),
            "expected a refused connection, got {err:?}"
        );
        sim.set_down(false);
    }
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_and_up_on_a_multi_thread_runtime() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let url = format!("{}/api/v1/oauth2/jwks", sim.base_url());
    let c = client();
    for _ in 0..5 {
        assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
        sim.set_down(true);
        assert!(c.get(&url).send().await.is_err());
        assert!(client().get(&url).send().await.unwrap_err().is_connect());
        sim.set_down(false);
    }
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn sessions_and_tokens_can_be_ended_by_the_test() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let c = client();
    let cookie = format!(
        "{}={}",
        oneaccess_sim::SSO_COOKIE,
        sim.create_sso_session("bob")
    );
    let authorize = format!(
        "{base}/api/v1/oauth2/authorize?response_type=code&client_id=demo-client\
         &redirect_uri=http%3A%2F%2Fapp.example%2Fcb&scope=openid"
    );
    let resp = c
        .get(&authorize)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let code = query_param(&location(&resp), "code").expect("a code, no login page");
    let tokens: Value = c
        .post(format!("{base}/api/v1/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", "demo-client"),
            ("client_secret", "demo-secret"),
            ("redirect_uri", "http://app.example/cb"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let info = c
        .get(format!("{base}/api/v1/oauth2/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(info.json::<Value>().await.unwrap()["userName"], "bob");

    sim.revoke_tokens();
    let info = c
        .get(format!("{base}/api/v1/oauth2/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 401);

    sim.clear_sso_sessions();
    let resp = c
        .get(&authorize)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(location(&resp).starts_with("/api/v1/login?redirect="));
}

/// Code flow for alice; returns the access token.
async fn access_token(c: &reqwest::Client, base: &str) -> String {
    let (code, _) = get_code(c, base, &[]).await;
    let tokens: Value = redeem(c, base, &code).await;
    tokens["access_token"].as_str().unwrap().to_string()
}

/// (status, content type, body)
async fn answer(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    (status, ct, resp.text().await.unwrap())
}

#[tokio::test]
async fn userinfo_override_answers_every_request() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let url = format!("{base}/api/v1/oauth2/userinfo");
    let c = client();
    let token = access_token(&c, &base).await;
    assert_eq!(sim.last_userinfo_authorization(), None);
    assert_eq!(sim.last_userinfo_query(), None);

    let garbage = "<html>not json at all".to_string();
    sim.set_userinfo_override(Some((200, garbage.clone())));
    // A valid token, no token, an invalid token and a token in the query: all overridden.
    let valid = c.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(
        answer(valid).await,
        (200, "application/json".into(), garbage.clone())
    );
    assert_eq!(
        sim.last_userinfo_authorization(),
        Some(format!("Bearer {token}"))
    );
    assert_eq!(sim.last_userinfo_query(), None);
    let none = c.get(&url).send().await.unwrap();
    assert_eq!(
        answer(none).await,
        (200, "application/json".into(), garbage.clone())
    );
    assert_eq!(sim.last_userinfo_authorization(), None);
    let bad = c.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(answer(bad).await.2, garbage);
    let in_query = c
        .get(format!("{url}?access_token={token}&x=a%20b"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer(in_query).await.2, garbage);
    assert_eq!(
        sim.last_userinfo_query(),
        Some(format!("access_token={token}&x=a%20b"))
    );
    assert_eq!(sim.last_userinfo_authorization(), None);

    // Any status, any body; a JSON user of the wrong shape is passed through verbatim.
    let body = r#"{"id":"x","userName":"mallory"}"#.to_string();
    sim.set_userinfo_override(Some((502, body.clone())));
    let resp = c.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(answer(resp).await, (502, "application/json".into(), body));
    sim.set_userinfo_override(Some((200, String::new())));
    let resp = c.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(
        answer(resp).await,
        (200, "application/json".into(), "".into())
    );

    // fail_status still wins.
    sim.set_fail_status(Some(503));
    let resp = c.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    sim.set_fail_status(None);

    // None: the real user again, and the token check is back.
    sim.set_userinfo_override(None);
    let resp = c
        .get(&url)
        .header("authorization", format!("bearer  {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["userName"], "alice");
    assert_eq!(
        sim.last_userinfo_authorization(),
        Some(format!("bearer  {token}")),
        "raw, as sent"
    );
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        sim.counters().userinfo,
        9,
        "overridden requests are counted"
    );
}

#[tokio::test]
async fn cas_validate_override_still_consumes_the_ticket() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let c = client();
    let service_enc = "http%3A%2F%2Fapp.example%2Fcas%2Fcallback";
    assert_eq!(sim.last_cas_validate_query(), None);

    // XML-looking body (leading whitespace), any status, on CAS 3.0.
    let t = sim.mint_cas_ticket("alice", SERVICE);
    let xml = "\n  <cas:serviceResponse><cas:authenticationSuccess><cas:user>mallory".to_string();
    sim.set_cas_validate_override(Some((200, xml.clone())));
    let query = format!("service={service_enc}&ticket={t}");
    let resp = c
        .get(format!("{base}/api/v1/cas/p3/serviceValidate?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer(resp).await,
        (200, "application/xml;charset=UTF-8".into(), xml)
    );
    assert_eq!(sim.last_cas_validate_query(), Some(query.clone()));

    // Cleared: replaying the same ticket fails normally (it was consumed).
    sim.set_cas_validate_override(None);
    let resp = c
        .get(format!("{base}/api/v1/cas/p3/serviceValidate?{query}"))
        .send()
        .await
        .unwrap();
    let (status, ct, body) = answer(resp).await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/json;charset=UTF-8")
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["serviceResponse"]["authenticationFailure"]["code"],
        "INVALID_TICKET"
    );

    // CAS 1.0 style body on /validate: text/plain; the ticket is spent there too.
    let t = sim.mint_cas_ticket("bob", SERVICE);
    sim.set_cas_validate_override(Some((200, "yes\nmallory\n".into())));
    let resp = c
        .get(format!("{base}/api/v1/cas/validate"))
        .query(&[("service", SERVICE), ("ticket", &t)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer(resp).await,
        (200, "text/plain".into(), "yes\nmallory\n".into())
    );
    assert_eq!(
        sim.last_cas_validate_query(),
        Some(format!("service={service_enc}&ticket={t}"))
    );
    sim.set_cas_validate_override(Some((200, "no\r\n\r\n".into())));
    let resp = c
        .get(format!("{base}/api/v1/cas/validate"))
        .query(&[("service", SERVICE), ("ticket", &t)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer(resp).await.1, "text/plain");
    sim.set_cas_validate_override(None);
    let resp = c
        .get(format!("{base}/api/v1/cas/validate"))
        .query(&[("service", SERVICE), ("ticket", &t)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer(resp).await.2, "no\n\n");

    // Anything else is JSON, even when it is not; a wrong service still spends the
    // ticket (as on the normal path), a missing service does not.
    let t = sim.mint_cas_ticket("bob", SERVICE);
    sim.set_cas_validate_override(Some((502, "{truncated".into())));
    let resp = c
        .get(format!("{base}/api/v1/cas/serviceValidate"))
        .query(&[("ticket", &t)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer(resp).await,
        (502, "application/json".into(), "{truncated".into())
    );
    assert_eq!(sim.last_cas_validate_query(), Some(format!("ticket={t}")));
    sim.set_cas_validate_override(None);
    let resp = c
        .get(format!("{base}/api/v1/cas/serviceValidate"))
        .query(&[("service", SERVICE), ("ticket", &t)])
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&answer(resp).await.2).unwrap();
    assert_eq!(
        v["serviceResponse"]["authenticationSuccess"]["user"], "bob",
        "a request without service consumed nothing"
    );

    let t = sim.mint_cas_ticket("bob", SERVICE);
    sim.set_cas_validate_override(Some((200, "whatever".into())));
    let resp = c
        .get(format!("{base}/api/v1/cas/serviceValidate"))
        .query(&[("service", "http://other.example/"), ("ticket", &t)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer(resp).await,
        (200, "application/json".into(), "whatever".into())
    );
    sim.set_cas_validate_override(None);
    let resp = c
        .get(format!("{base}/api/v1/cas/serviceValidate"))
        .query(&[("service", SERVICE), ("ticket", &t)])
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&answer(resp).await.2).unwrap();
    assert_eq!(
        v["serviceResponse"]["authenticationFailure"]["code"],
        "INVALID_TICKET"
    );

    // fail_status wins over the override and consumes nothing.
    let t = sim.mint_cas_ticket("bob", SERVICE);
    sim.set_cas_validate_override(Some((200, "whatever".into())));
    sim.set_fail_status(Some(500));
    let resp = c
        .get(format!("{base}/api/v1/cas/serviceValidate"))
        .query(&[("service", SERVICE), ("ticket", &t)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    sim.set_fail_status(None);
    sim.set_cas_validate_override(None);
    let resp = c
        .get(format!("{base}/api/v1/cas/serviceValidate"))
        .query(&[("service", SERVICE), ("ticket", &t)])
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&answer(resp).await.2).unwrap();
    assert_eq!(v["serviceResponse"]["authenticationSuccess"]["user"], "bob");

    // A request without a query string.
    let resp = c
        .get(format!("{base}/api/v1/cas/serviceValidate"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sim.last_cas_validate_query(), None);
    assert_eq!(sim.counters().cas_validate, 12, "every request is counted");
}
