//! Single logout sent by the simulator: `sid` in ID tokens, back-channel logout tokens,
//! CAS SLO requests, and the fan-out to registered receivers when an SSO session ends
//! (global logout, CAS logout, or an administrator ending a user's sessions).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use common::*;
use oneaccess_sim::{Signing, Sim, SimConfig, TokenHook, SSO_COOKIE};
use reqwest::header::COOKIE;
use serde_json::{json, Map, Value};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: String,
    form: HashMap<String, String>,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// A relying party that records every request; paths ending in `/fail` answer 500.
async fn start_receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let app = axum::Router::new()
        .fallback(
            |State(inbox): State<Inbox>, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let form = url::form_urlencoded::parse(&body).into_owned().collect();
                let path = uri.path().to_string();
                let fail = path.ends_with("/fail");
                inbox.lock().unwrap().push(Received {
                    path,
                    content_type,
                    form,
                });
                if fail {
                    (StatusCode::INTERNAL_SERVER_ERROR, "boom")
                } else {
                    (StatusCode::OK, "ok")
                }
            },
        )
        .with_state(Arc::clone(&inbox));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), inbox)
}

fn taken(inbox: &Inbox) -> Vec<Received> {
    std::mem::take(&mut *inbox.lock().unwrap())
}

/// A URL on which nothing listens.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/backchannel")
}

fn user_id(sim: &Sim, user_name: &str) -> String {
    sim.config()
        .users
        .iter()
        .find(|u| u.user_name == user_name)
        .unwrap()
        .id
        .clone()
}

fn cookie_value(cookie: &str) -> &str {
    cookie
        .strip_prefix(&format!("{SSO_COOKIE}="))
        .expect("an oa_sso cookie")
}

async fn token_request(c: &reqwest::Client, base: &str, form: &[(&str, &str)]) -> Value {
    let (status, body) = token_call(c, base, form).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The code flow through the login form (alice): returns (cookie, token response).
async fn oidc_login(c: &reqwest::Client, base: &str) -> (String, Value) {
    let (code, cookie) = get_code(c, base, &[]).await;
    let tokens = token_request(
        c,
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    (cookie, tokens)
}

/// A CAS service ticket for `service` from the session behind `cookie`.
async fn cas_ticket(c: &reqwest::Client, base: &str, cookie: &str, service: &str) -> String {
    let resp = c
        .get(format!("{base}/api/v1/cas/login"))
        .query(&[("service", service)])
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    query_param(&location(&resp), "ticket").expect("a ticket")
}

/// Checks a logout token as an RP would (signature against the JWKS, header, events,
/// lifetime) and returns its claims.
fn check_logout_token(sim: &Sim, token: &str) -> Value {
    let claims = verify_rs256(token, &sim.jwks_json()).expect("a valid signature");
    let (header, ..) = decode_jwt(token);
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], sim.jwks_json()["keys"][0]["kid"]);
    assert_eq!(claims["iss"], sim.issuer());
    assert_eq!(claims["aud"], "demo-client");
    assert_eq!(claims["events"], json!({ EVENT: {} }));
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 120);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(iat.abs_diff(now) <= 5, "iat is now");
    assert!(claims["jti"].as_str().unwrap().len() >= 16);
    assert!(claims.get("nonce").is_none(), "a logout token has no nonce");
    claims
}

/// The SessionIndex of a CAS SLO form, after checking the message's shape.
fn session_index(r: &Received) -> String {
    assert_eq!(r.content_type, "application/x-www-form-urlencoded");
    let xml = &r.form["logoutRequest"];
    assert!(
        xml.starts_with(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"LR-"
        ),
        "{xml}"
    );
    assert!(
        xml.contains("\" Version=\"2.0\" IssueInstant=\"20"),
        "{xml}"
    );
    assert!(
        xml.contains("Z\"><saml:NameID>@NOT_USED@</saml:NameID><samlp:SessionIndex>"),
        "{xml}"
    );
    let rest = xml.split("<samlp:SessionIndex>").nth(1).unwrap();
    let (index, tail) = rest.split_once("</samlp:SessionIndex>").unwrap();
    assert_eq!(tail, "</samlp:LogoutRequest>");
    index.to_string()
}

#[tokio::test]
async fn id_tokens_carry_the_sso_session_sid() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let c = client();
    assert!(sim.sids_of("alice").is_empty());

    let (cookie, tokens) = oidc_login(&c, &base).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let claims = verify_rs256(id_token, &sim.jwks_json()).unwrap();
    let sid = claims["sid"].as_str().expect("a sid claim").to_string();
    assert!(sid.len() >= 22, "{sid}");
    assert!(sid
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(sim.sids_of("alice"), vec![sid.clone()]);
    assert_eq!(
        sim.sso_session_sid(cookie_value(&cookie)),
        Some(sid.clone())
    );
    assert_ne!(sid, cookie_value(&cookie), "the sid is not the cookie");
    assert_eq!(sim.sso_session_sid("no-such-session"), None);

    // A refreshed ID token keeps the sid.
    let refreshed = token_request(
        &c,
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    let claims = verify_rs256(refreshed["id_token"].as_str().unwrap(), &sim.jwks_json()).unwrap();
    assert_eq!(claims["sid"], sid.as_str());

    // A second session of the same user (made by the test) has its own sid.
    let second = sim.create_sso_session("alice");
    let second_sid = sim.sso_session_sid(&second).unwrap();
    assert_ne!(second_sid, sid);
    let mut sids = sim.sids_of("alice");
    sids.sort();
    let mut expected = vec![sid.clone(), second_sid.clone()];
    expected.sort();
    assert_eq!(sids, expected);
    assert!(sim.sids_of("bob").is_empty());
    let second_cookie = format!("{SSO_COOKIE}={second}");
    let resp = authorize_with(&c, &base, &second_cookie, "openid", &[]).await;
    let code = query_param(&location(&resp), "code").unwrap();
    let tokens = token_request(
        &c,
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    let claims = verify_rs256(tokens["id_token"].as_str().unwrap(), &sim.jwks_json()).unwrap();
    assert_eq!(claims["sid"], second_sid.as_str());

    // Ended sessions have no sid any more.
    sim.clear_sso_sessions();
    assert!(sim.sids_of("alice").is_empty());
    assert_eq!(sim.sso_session_sid(&second), None);
}

#[tokio::test]
async fn minted_logout_tokens() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();

    let t = sim.mint_logout_token(Some("20240001"), Some("the-sid"));
    let claims = check_logout_token(&sim, &t);
    assert_eq!(claims["sub"], "20240001");
    assert_eq!(claims["sid"], "the-sid");
    let mut names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["aud", "events", "exp", "iat", "iss", "jti", "sid", "sub"]
    );

    let only_sid = check_logout_token(&sim, &sim.mint_logout_token(None, Some("s2")));
    assert!(only_sid.get("sub").is_none());
    assert_eq!(only_sid["sid"], "s2");
    let only_sub = check_logout_token(&sim, &sim.mint_logout_token(Some("u"), None));
    assert!(only_sub.get("sid").is_none());
    assert_ne!(only_sid["jti"], only_sub["jti"], "a fresh jti every time");

    // The token hook is for ID tokens only; the signing mode applies.
    let hook: TokenHook = Arc::new(|_, claims| {
        claims.insert("aud".into(), "someone-else".into());
    });
    sim.set_token_hook(Some(hook));
    let claims = check_logout_token(&sim, &sim.mint_logout_token(Some("u"), None));
    assert_eq!(claims["aud"], "demo-client");
    sim.set_signing(Signing::CorruptSignature);
    let t = sim.mint_logout_token(Some("u"), None);
    assert_eq!(
        verify_rs256(&t, &sim.jwks_json()),
        Err("bad signature".into())
    );
    sim.set_signing(Signing::AlgNone);
    let t = sim.mint_logout_token(Some("u"), None);
    assert!(t.ends_with('.'));
    assert_eq!(decode_jwt(&t).0["typ"], "logout+jwt");
    sim.set_signing(Signing::Normal);

    // Arbitrary claims, exactly as given.
    let custom: Map<String, Value> = json!({ "sub": "u", "nonce": "n", "events": {} })
        .as_object()
        .unwrap()
        .clone();
    let t = sim.mint_logout_token_with(custom.clone());
    let claims = verify_rs256(&t, &sim.jwks_json()).unwrap();
    assert_eq!(claims, Value::Object(custom));
    assert_eq!(decode_jwt(&t).0["typ"], "logout+jwt");

    // After a key rotation, logout tokens use the new key, like ID tokens.
    sim.rotate_key();
    let t = sim.mint_logout_token(Some("u"), None);
    check_logout_token(&sim, &t);
    assert!(sim.backchannel_log().is_empty(), "minting sends nothing");
}

#[tokio::test]
async fn explicit_sends_post_forms_and_report_the_answer() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (rp, inbox) = start_receiver().await;

    let token = sim.mint_logout_token(Some("20240001"), Some("s"));
    let ok = format!("{rp}/backchannel");
    let answer = sim.send_backchannel_logout(&ok, &token).await.unwrap();
    assert_eq!(answer, (200, "ok".to_string()));
    let got = taken(&inbox);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/backchannel");
    assert_eq!(got[0].content_type, "application/x-www-form-urlencoded");
    assert_eq!(got[0].form.len(), 1);
    assert_eq!(got[0].form["logout_token"], token);

    let fail = format!("{rp}/cas/fail");
    let answer = sim.send_cas_logout(&fail, "ST-1&<x>").await.unwrap();
    assert_eq!(answer, (500, "boom".to_string()));
    let got = taken(&inbox);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].form.len(), 1);
    assert_eq!(session_index(&got[0]), "ST-1&amp;&lt;x&gt;", "XML-escaped");

    let dead = dead_url().await;
    let err = sim
        .send_backchannel_logout(&dead, &token)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(sim.send_cas_logout("not a url", "ST-2").await.is_err());

    assert_eq!(
        sim.backchannel_log(),
        vec![
            (ok, 200),
            (fail, 500),
            (dead, 0),
            ("not a url".to_string(), 0)
        ]
    );
    let counters = sim.counters();
    assert_eq!((counters.backchannel_sent, counters.cas_slo_sent), (2, 2));
}

#[tokio::test]
async fn global_logout_sends_logout_tokens_before_answering() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let (rp, inbox) = start_receiver().await;
    let c = client();
    let ok = format!("{rp}/rp1/backchannel");
    let fail = format!("{rp}/rp2/fail");
    let dead = dead_url().await;
    for url in [&ok, &fail, &dead, &ok] {
        sim.register_backchannel_logout_uri(url);
    }
    // A CAS receiver too, but this session has no CAS tickets: nothing goes there.
    sim.register_cas_logout_url(&format!("{rp}/cas"));

    let (cookie, tokens) = oidc_login(&c, &base).await;
    let id_claims = verify_rs256(tokens["id_token"].as_str().unwrap(), &sim.jwks_json()).unwrap();
    let bob = sim.create_sso_session("bob");

    // No session cookie: nothing ends, nothing is sent.
    let resp = c.get(format!("{base}/api/v1/logout")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert!(taken(&inbox).is_empty());

    let resp = c
        .get(format!("{base}/api/v1/logout"))
        .query(&[("redirect_url", "http://app.example/bye")])
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(location(&resp), "http://app.example/bye");
    // Already delivered when the browser gets its answer.
    let got = taken(&inbox);
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/rp1/backchannel", "/rp2/fail"]);
    let mut jtis = Vec::new();
    for r in &got {
        assert_eq!(r.content_type, "application/x-www-form-urlencoded");
        let claims = check_logout_token(&sim, &r.form["logout_token"]);
        assert_eq!(claims["sub"], user_id(&sim, "alice"));
        assert_eq!(claims["sub"], id_claims["sub"]);
        assert_eq!(claims["sid"], id_claims["sid"]);
        jtis.push(claims["jti"].clone());
    }
    assert_ne!(jtis[0], jtis[1]);
    assert_eq!(
        sim.backchannel_log(),
        vec![(ok, 200), (fail, 500), (dead, 0)]
    );
    let counters = sim.counters();
    assert_eq!((counters.backchannel_sent, counters.cas_slo_sent), (3, 0));
    assert_eq!(counters.logout, 2);

    // Alice's session is gone, Bob's is not; logging out again sends nothing.
    assert!(sim.sids_of("alice").is_empty());
    assert!(sim.sso_session_sid(&bob).is_some());
    c.get(format!("{base}/api/v1/logout"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert!(taken(&inbox).is_empty());
    assert_eq!(sim.backchannel_log().len(), 3);
}

#[tokio::test]
async fn cas_logout_sends_one_slo_request_per_ticket_of_the_session() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let (rp, inbox) = start_receiver().await;
    let c = client();
    let cas_url = format!("{rp}/cas/slo");
    let bc_url = format!("{rp}/oidc/backchannel");
    sim.register_cas_logout_url(&cas_url);
    sim.register_backchannel_logout_uri(&bc_url);

    let alice = format!("{SSO_COOKIE}={}", sim.create_sso_session("alice"));
    let alice_sid = sim.sids_of("alice").remove(0);
    let t1 = cas_ticket(&c, &base, &alice, SERVICE).await;
    let t2 = cas_ticket(&c, &base, &alice, "http://other.example/cas").await;
    // Validated tickets still count for single logout.
    let resp = c
        .get(format!("{base}/api/v1/cas/p3/serviceValidate"))
        .query(&[("service", SERVICE), ("ticket", &t1)])
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["serviceResponse"]["authenticationSuccess"]["user"],
        "alice"
    );
    // Minted tickets and other sessions' tickets are not part of this session.
    sim.mint_cas_ticket("alice", SERVICE);
    let bob = format!("{SSO_COOKIE}={}", sim.create_sso_session("bob"));
    let bob_ticket = cas_ticket(&c, &base, &bob, SERVICE).await;

    let resp = c
        .get(format!("{base}/api/v1/cas/logout"))
        .query(&[("service", SERVICE)])
        .header(COOKIE, &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), SERVICE);
    let got = taken(&inbox);
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/oidc/backchannel", "/cas/slo", "/cas/slo"]);
    let claims = check_logout_token(&sim, &got[0].form["logout_token"]);
    assert_eq!(claims["sid"], alice_sid.as_str());
    assert_eq!(claims["sub"], user_id(&sim, "alice"));
    assert_eq!(session_index(&got[1]), t1);
    assert_eq!(session_index(&got[2]), t2);
    assert_eq!(
        sim.backchannel_log(),
        vec![
            (bc_url, 200),
            (cas_url.clone(), 200),
            (cas_url.clone(), 200)
        ]
    );
    let counters = sim.counters();
    assert_eq!((counters.backchannel_sent, counters.cas_slo_sent), (1, 2));

    // Bob's session (and its ticket) ends through the global logout endpoint.
    c.get(format!("{base}/api/v1/logout"))
        .header(COOKIE, &bob)
        .send()
        .await
        .unwrap();
    let got = taken(&inbox);
    assert_eq!(got.len(), 2);
    assert_eq!(session_index(&got[1]), bob_ticket);
}

#[tokio::test]
async fn ending_a_users_sessions_fans_out_for_each() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let (rp, inbox) = start_receiver().await;
    let c = client();
    let cas_url = format!("{rp}/cas");
    sim.register_backchannel_logout_uri(&format!("{rp}/bc"));
    sim.register_cas_logout_url(&cas_url);

    // Two sessions of Alice (one through the login form), one of Bob.
    let (form_cookie, _) = login(&c, &base, "alice", "alice-password", "").await;
    let other = format!("{SSO_COOKIE}={}", sim.create_sso_session("alice"));
    let bob = format!("{SSO_COOKIE}={}", sim.create_sso_session("bob"));
    let ticket = cas_ticket(&c, &base, &other, SERVICE).await;
    cas_ticket(&c, &base, &bob, SERVICE).await;
    let sids = sim.sids_of("alice");
    assert_eq!(sids.len(), 2);
    let bob_sids = sim.sids_of("bob");

    sim.end_sso_sessions_of("alice").await;
    let got = taken(&inbox);
    let tokens: Vec<Value> = got
        .iter()
        .filter(|r| r.path == "/bc")
        .map(|r| check_logout_token(&sim, &r.form["logout_token"]))
        .collect();
    let sent_sids: Vec<&str> = tokens.iter().map(|c| c["sid"].as_str().unwrap()).collect();
    assert_eq!(sent_sids, sids, "one token per session, oldest first");
    assert!(tokens.iter().all(|c| c["sub"] == user_id(&sim, "alice")));
    let slo: Vec<String> = got
        .iter()
        .filter(|r| r.path == "/cas")
        .map(session_index)
        .collect();
    assert_eq!(slo, vec![ticket]);
    assert_eq!(got.len(), 3);
    let counters = sim.counters();
    assert_eq!((counters.backchannel_sent, counters.cas_slo_sent), (2, 1));
    assert_eq!(sim.backchannel_log().len(), 3);

    // Alice's cookies no longer log in; Bob is untouched.
    assert!(sim.sids_of("alice").is_empty());
    assert_eq!(sim.sids_of("bob"), bob_sids);
    for cookie in [&form_cookie, &other] {
        let resp = c
            .get(format!("{base}/api/v1/cas/login"))
            .query(&[("service", SERVICE)])
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap();
        assert!(location(&resp).starts_with("/api/v1/login?redirect="));
    }

    // Nothing left to end: nothing is sent.
    sim.end_sso_sessions_of("alice").await;
    assert!(taken(&inbox).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_on_a_multi_thread_runtime_with_latency_at_the_receiver() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let inbox: Inbox = Arc::default();
    // A slow RP: the browser's logout waits for it.
    let app = axum::Router::new()
        .fallback(|State(inbox): State<Inbox>, body: Bytes| async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let form = url::form_urlencoded::parse(&body).into_owned().collect();
            inbox.lock().unwrap().push(Received {
                path: String::new(),
                content_type: String::new(),
                form,
            });
            StatusCode::NO_CONTENT
        })
        .with_state(Arc::clone(&inbox));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}/bc");
    sim.register_backchannel_logout_uri(&url);

    let cookie = format!("{SSO_COOKIE}={}", sim.create_sso_session("bob"));
    let sid = sim.sids_of("bob").remove(0);
    let start = std::time::Instant::now();
    let resp = client()
        .get(format!("{base}/api/v1/logout"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert!(start.elapsed() >= std::time::Duration::from_millis(200));
    let got = taken(&inbox);
    assert_eq!(got.len(), 1);
    let claims = check_logout_token(&sim, &got[0].form["logout_token"]);
    assert_eq!(claims["sid"], sid.as_str());
    assert_eq!(sim.backchannel_log(), vec![(url, 204)]);
}
