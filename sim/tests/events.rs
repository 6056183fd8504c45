//! Synchronization events: a tiny receiver (an axum app verifying signatures and
//! decrypting with the public helpers) gets `CHECK_URL` and user events from the
//! simulator, in plain and encrypted mode, with retries and the ids it answered; a
//! disabled or deleted user cannot log in nor refresh; the management API's user-status
//! endpoints; the crypto helpers on their own.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use oneaccess_sim::events::{decrypt_data, encrypt_data, seal_event, seal_event_with, sign};
use oneaccess_sim::{Delivery, EventSettings, Sim, SimConfig, TimestampStyle, User};
use serde_json::{json, Value};

const TOKEN: &str = "security-token-1";
const SIG_KEY: &str = "sig-key-12345678";
const ENC_KEY: &str = "enc-key-abcdefgh";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    body: Value,
    content_type: String,
    /// The message: `data` decrypted (encrypted mode) or as sent.
    message: String,
}

/// How the receiver answers.
#[derive(Default)]
struct Behaviour {
    /// Answered first, one per request, before answering normally.
    canned: VecDeque<(u16, Value)>,
    /// Answered to every request instead of the normal answer.
    always: Option<(u16, Value)>,
    /// Echo something else to `CHECK_URL`.
    wrong_echo: bool,
    /// Answer `CREATE_USER` without an id.
    no_id: bool,
    /// In encrypted mode, echo `CHECK_URL` in plain text.
    plain_echo: bool,
}

struct Inner {
    settings: EventSettings,
    behaviour: Behaviour,
    got: Vec<Got>,
    /// Requests refused because they did not verify (should stay empty).
    rejected: Vec<String>,
}

#[derive(Clone)]
struct Receiver {
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// Starts a receiver expecting `settings`' token and keys (its URL is filled in).
    async fn start(mut settings: EventSettings) -> (Receiver, EventSettings) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        settings.callback_url = url;
        let receiver = Receiver {
            inner: Arc::new(Mutex::new(Inner {
                settings: settings.clone(),
                behaviour: Behaviour::default(),
                got: Vec::new(),
                rejected: Vec::new(),
            })),
        };
        let app = Router::new()
            .route("/events", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, settings)
    }

    fn behave(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.inner.lock().unwrap().behaviour);
    }

    fn got(&self) -> Vec<Got> {
        let inner = self.inner.lock().unwrap();
        assert!(inner.rejected.is_empty(), "{:?}", inner.rejected);
        inner.got.clone()
    }

    fn clear(&self) {
        self.inner.lock().unwrap().got.clear();
    }

    /// (eventType, message as JSON) of each request so far.
    fn events(&self) -> Vec<(String, Value)> {
        self.got()
            .iter()
            .map(|g| {
                (
                    g.body["eventType"].as_str().unwrap().to_string(),
                    serde_json::from_str(&g.message).unwrap_or(Value::Null),
                )
            })
            .collect()
    }
}

/// Verifies a request as a gateway would: bearer token, signature over the data as sent,
/// then decryption.
fn verify(settings: &EventSettings, headers: &HeaderMap, body: &Value) -> Result<String, String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", settings.token) {
        return Err(format!("bad authorization {auth:?}"));
    }
    let field = |name: &str| body[name].as_str().ok_or(format!("no {name}"));
    let (nonce, event_type, data, signature) = (
        field("nonce")?,
        field("eventType")?,
        field("data")?,
        field("signature")?,
    );
    if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("bad nonce {nonce:?}"));
    }
    let timestamp = match &body["timestamp"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("bad timestamp {other}")),
    };
    match &settings.signature_key {
        Some(key) if signature != sign(key, nonce, &timestamp, event_type, data) => {
            return Err("bad signature".into())
        }
        None if !signature.is_empty() => return Err("unexpected signature".into()),
        _ => {}
    }
    match &settings.encryption_key {
        Some(key) => decrypt_data(key, data).ok_or_else(|| "does not decrypt".to_string()),
        None => Ok(data.to_string()),
    }
}

async fn receive(
    State(rx): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let mut inner = rx.inner.lock().unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let message = match verify(&inner.settings, &headers, &body) {
        Ok(m) => m,
        Err(why) => {
            inner.rejected.push(why);
            return answer(
                401,
                json!({"code": "401", "message": "authentication failed"}),
            );
        }
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    inner.got.push(Got {
        body: body.clone(),
        content_type,
        message: message.clone(),
    });
    if let Some((status, body)) = inner.behaviour.canned.pop_front() {
        return answer(status, body);
    }
    if let Some((status, body)) = inner.behaviour.always.clone() {
        return answer(status, body);
    }
    let key = inner.settings.encryption_key.clone();
    let seal = |text: &str| -> Value {
        match &key {
            Some(k) => encrypt_data(k, text).into(),
            None => text.into(),
        }
    };
    let b = &inner.behaviour;
    let data = match body["eventType"].as_str().unwrap_or("") {
        "CHECK_URL" if b.wrong_echo => seal("something else"),
        "CHECK_URL" if b.plain_echo => message.clone().into(),
        "CHECK_URL" => seal(&message),
        "CREATE_USER" if b.no_id => Value::Null,
        "CREATE_USER" => {
            let user: Value = serde_json::from_str(&message).unwrap();
            let id = format!("app-{}", user["username"].as_str().unwrap());
            match &key {
                Some(_) => seal(&json!({ "id": id }).to_string()),
                // Plain mode: the data as a JSON object.
                None => json!({ "id": id }),
            }
        }
        _ => Value::Null,
    };
    let mut out = json!({"code": "200", "message": "success"});
    if !data.is_null() {
        out["data"] = data;
    }
    answer(200, out)
}

fn answer(status: u16, body: Value) -> (StatusCode, String) {
    (StatusCode::from_u16(status).unwrap(), body.to_string())
}

fn carol() -> User {
    User {
        id: "20240003".into(),
        user_name: "carol".into(),
        name: "Carol Wang".into(),
        email: "carol@example.com".into(),
        mobile: "+86-13800000003".into(),
        password: "carol-password".into(),
    }
}

fn encrypted_settings() -> EventSettings {
    EventSettings {
        signature_key: Some(SIG_KEY.into()),
        encryption_key: Some(ENC_KEY.into()),
        ..EventSettings::new("", TOKEN)
    }
}

async fn sim_with(settings: EventSettings) -> (Sim, Receiver) {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (rx, settings) = Receiver::start(settings).await;
    let d = sim.configure_events(settings).await;
    assert!(d.ok, "{d:?}");
    (sim, rx)
}

#[tokio::test]
async fn check_url_plain() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (rx, settings) = Receiver::start(EventSettings::new("", TOKEN)).await;

    let d = sim.configure_events(settings.clone()).await;
    assert_eq!(d.event_type, "CHECK_URL");
    assert_eq!(d.user_name, None);
    assert_eq!(d.attempts, vec![200]);
    assert!(d.ok, "{d:?}");
    let got = rx.got();
    assert_eq!(got.len(), 1);
    let body = &got[0].body;
    assert_eq!(got[0].content_type, "application/json;charset=UTF-8");
    assert_eq!(body["eventType"], "CHECK_URL");
    assert_eq!(body["signature"], "");
    assert!(!got[0].message.is_empty());
    assert_eq!(d.data.as_deref(), Some(got[0].message.as_str()));
    assert_eq!(d.answer.as_ref().unwrap()["data"], got[0].message.as_str());
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5, "{body}");

    rx.behave(|b| b.wrong_echo = true);
    let d = sim.configure_events(settings).await;
    assert!(!d.ok, "a wrong echo is a failure: {d:?}");
    assert_eq!(d.attempts, vec![200], "and final");
    assert_eq!(d.data.as_deref(), Some("something else"));
    assert_eq!(sim.event_log().len(), 2);
    assert!(sim.event_log()[0].ok && !sim.event_log()[1].ok);
}

#[tokio::test]
async fn check_url_encrypted_and_signed() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (rx, settings) = Receiver::start(encrypted_settings()).await;

    let d = sim.configure_events(settings.clone()).await;
    assert!(d.ok, "{d:?}");
    let got = rx.got();
    let body = &got[0].body;
    let data = body["data"].as_str().unwrap();
    assert_ne!(data, got[0].message, "data is a ciphertext");
    assert_eq!(
        decrypt_data(ENC_KEY, data).as_deref(),
        Some(got[0].message.as_str())
    );
    // The answer's data is a ciphertext too; the delivery shows it decrypted.
    let answered = d.answer.as_ref().unwrap()["data"].as_str().unwrap();
    assert_ne!(answered, got[0].message);
    assert_eq!(d.data.as_deref(), Some(got[0].message.as_str()));

    rx.behave(|b| b.wrong_echo = true);
    assert!(!sim.configure_events(settings.clone()).await.ok);
    rx.behave(|b| {
        b.wrong_echo = false;
        b.plain_echo = true;
    });
    let d = sim.configure_events(settings).await;
    assert!(!d.ok, "a plain-text echo in encrypted mode: {d:?}");
    assert_eq!(d.data, None);
}

#[tokio::test]
async fn user_events_carry_the_applications_id() {
    let (sim, rx) = sim_with(EventSettings::new("", TOKEN)).await;
    rx.clear();

    let d = sim.create_user(carol()).await.unwrap();
    assert!(d.ok, "{d:?}");
    assert_eq!(
        (d.event_type.as_str(), d.user_name.as_deref()),
        ("CREATE_USER", Some("carol"))
    );
    assert_eq!(d.data.as_deref(), Some(r#"{"id":"app-carol"}"#));
    assert_eq!(sim.event_user_id("carol").as_deref(), Some("app-carol"));
    let (kind, msg) = rx.events().pop().unwrap();
    assert_eq!(kind, "CREATE_USER");
    assert_eq!(
        msg,
        json!({"username": "carol", "name": "Carol Wang", "organizationId": "org-1",
               "password": "carol-password", "disabled": false,
               "email": "carol@example.com", "mobile": "+86-13800000003"})
    );

    let d = sim.disable_user("carol").await.unwrap();
    assert!(d.ok && d.event_type == "UPDATE_USER", "{d:?}");
    assert_eq!(sim.user_disabled("carol"), Some(true));
    let d = sim.enable_user("carol").await.unwrap();
    assert!(d.ok, "{d:?}");
    let d = sim.delete_user("carol").await.unwrap();
    assert!(d.ok && d.event_type == "DELETE_USER", "{d:?}");
    assert_eq!(sim.user_disabled("carol"), None);
    let events = rx.events();
    assert_eq!(
        events[1..],
        [
            (
                "UPDATE_USER".to_string(),
                json!({"id": "app-carol", "username": "carol", "disabled": true})
            ),
            (
                "UPDATE_USER".to_string(),
                json!({"id": "app-carol", "username": "carol", "disabled": false})
            ),
            ("DELETE_USER".to_string(), json!({"id": "app-carol"})),
        ]
    );

    // No id yet: CREATE_USER first, then the update with the id it answered.
    rx.clear();
    let d = sim.disable_user("alice").await.unwrap();
    assert!(d.ok && d.event_type == "UPDATE_USER", "{d:?}");
    let kinds: Vec<String> = rx.events().into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["CREATE_USER", "UPDATE_USER"]);
    assert_eq!(
        rx.events()[0].1["disabled"],
        true,
        "as the directory is now"
    );
    assert_eq!(rx.events()[1].1["id"], "app-alice");

    // A CREATE_USER without an id: the update is not sent.
    rx.clear();
    rx.behave(|b| b.no_id = true);
    let d = sim.disable_user("bob").await.unwrap();
    assert_eq!(d.event_type, "CREATE_USER");
    assert!(!d.ok, "{d:?}");
    let kinds: Vec<String> = rx.events().into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["CREATE_USER"]);
    assert_eq!(sim.event_user_id("bob"), None);

    // A full sync pushes every user, the disabled ones as disabled.
    rx.behave(|b| b.no_id = false);
    rx.clear();
    let all = sim.full_sync().await;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|d| d.ok), "{all:?}");
    let msgs: Vec<(String, bool)> = rx
        .events()
        .into_iter()
        .map(|(_, m)| {
            (
                m["username"].as_str().unwrap().to_string(),
                m["disabled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        msgs,
        [("alice".to_string(), true), ("bob".to_string(), true)]
    );
    assert_eq!(sim.event_user_id("bob").as_deref(), Some("app-bob"));

    // Everything is in the log, in order.
    let log: Vec<String> = sim.event_log().into_iter().map(|d| d.event_type).collect();
    assert_eq!(
        log,
        [
            "CHECK_URL",
            "CREATE_USER",
            "UPDATE_USER",
            "UPDATE_USER",
            "DELETE_USER",
            "CREATE_USER",
            "UPDATE_USER",
            "CREATE_USER",
            "CREATE_USER",
            "CREATE_USER"
        ]
    );

    sim.disable_events();
    assert_eq!(sim.enable_user("alice").await, None);
    assert!(sim.full_sync().await.is_empty());
    assert_eq!(
        sim.user_disabled("alice"),
        Some(false),
        "the change still happens"
    );
}

#[tokio::test]
async fn encrypted_user_events() {
    let (sim, rx) = sim_with(encrypted_settings()).await;
    let d = sim.create_user(carol()).await.unwrap();
    assert!(d.ok, "{d:?}");
    assert_eq!(sim.event_user_id("carol").as_deref(), Some("app-carol"));
    let d = sim.delete_user("carol").await.unwrap();
    assert!(d.ok, "{d:?}");
    assert_eq!(
        rx.events().last().unwrap(),
        &("DELETE_USER".to_string(), json!({"id": "app-carol"}))
    );
}

#[tokio::test]
async fn retries() {
    let (sim, rx) = sim_with(EventSettings::new("", TOKEN)).await;
    assert!(sim.full_sync().await.iter().all(|d| d.ok));
    rx.clear();

    let busy = json!({"code": "500", "message": "busy"});
    rx.behave(|b| b.canned = [(500, busy.clone()), (500, busy.clone())].into());
    let started = Instant::now();
    let d = sim.disable_user("alice").await.unwrap();
    assert_eq!(d.attempts, vec![500, 500, 200]);
    assert!(d.ok, "{d:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "500 ms apart"
    );
    let got = rx.got();
    assert_eq!(got.len(), 3);
    assert_ne!(got[0].body["nonce"], got[1].body["nonce"], "sealed afresh");
    assert_ne!(got[1].body["nonce"], got[2].body["nonce"]);

    // A body code "500" under HTTP 200 is retried too; three failures are final.
    rx.behave(|b| b.canned = vec![(200, busy.clone()); 3].into());
    let d = sim.enable_user("alice").await.unwrap();
    assert_eq!(d.attempts, vec![200, 200, 200]);
    assert!(!d.ok);
    assert_eq!(d.answer, Some(busy));

    // A 4xx is final at once.
    rx.behave(|b| b.always = Some((401, json!({"code": "401", "message": "no"}))));
    let d = sim.disable_user("bob").await.unwrap();
    assert_eq!(d.attempts, vec![401]);
    assert!(!d.ok);
    assert_eq!(d.answer.unwrap()["code"], "401");

    // No answer at all: 0 per attempt.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let d = sim
        .configure_events(EventSettings::new(format!("http://{closed}/events"), TOKEN))
        .await;
    assert_eq!(d.attempts, vec![0, 0, 0]);
    assert!(!d.ok && d.answer.is_none());
}

#[tokio::test]
async fn timestamp_styles() {
    for (style, digits, string) in [
        (TimestampStyle::Millis, 13, false),
        (TimestampStyle::Seconds, 10, false),
        (TimestampStyle::MillisString, 13, true),
    ] {
        let (_sim, rx) = sim_with(EventSettings {
            timestamp: style,
            signature_key: Some(SIG_KEY.into()),
            ..EventSettings::new("", TOKEN)
        })
        .await;
        let ts = rx.got()[0].body["timestamp"].clone();
        assert_eq!(ts.is_string(), string, "{style:?}: {ts}");
        let text = ts.as_str().map_or_else(|| ts.to_string(), str::to_string);
        assert_eq!(text.len(), digits, "{style:?}: {ts}");
        assert!(text.bytes().all(|b| b.is_ascii_digit()));
    }
}

#[tokio::test]
async fn disabled_or_deleted_user_gets_nothing() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let c = client();
    // A receiver that is not there: nothing may be sent to it.
    sim.register_backchannel_logout_uri("http://127.0.0.1:9/backchannel");
    sim.register_cas_logout_url("http://127.0.0.1:9/cas");

    let (code, cookie) = get_code(&c, &base, &[]).await;
    let tokens = redeem(&c, &base, &code).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let (code2, _) = get_code(&c, &base, &[]).await;
    let ticket = sim.mint_cas_ticket("alice", SERVICE);

    assert_eq!(sim.disable_user("alice").await, None, "events are off");
    assert!(sim.sids_of("alice").is_empty(), "sessions ended");
    let counters = sim.counters();
    assert_eq!((counters.backchannel_sent, counters.cas_slo_sent), (0, 0));
    assert!(sim.backchannel_log().is_empty());

    let resp = c
        .post(format!("{base}/api/v1/login/form"))
        .form(&[("username", "alice"), ("password", "alice-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("set-cookie").is_none(), "no session");
    assert!(resp.text().await.unwrap().contains("User disabled"));

    let refreshed: (u16, Value) = token_call(
        &c,
        &base,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(refreshed.0, 400);
    assert_eq!(refreshed.1["error"], "invalid_grant");
    let redeemed = token_call(
        &c,
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code2),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    assert_eq!(redeemed.1["error"], "invalid_grant");
    let info = c
        .get(format!("{base}/api/v1/oauth2/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 401);
    let cas: Value = c
        .get(format!("{base}/api/v1/cas/p3/serviceValidate"))
        .query(&[("service", SERVICE), ("ticket", &ticket)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        cas["serviceResponse"]["authenticationFailure"]["code"],
        "INVALID_TICKET"
    );
    // The old SSO cookie no longer signs in.
    let resp = authorize_with(&c, &base, &cookie, "openid", &[]).await;
    assert!(location(&resp).starts_with("/api/v1/login?"));

    // Enabled again: the whole flow works, refresh included.
    assert_eq!(sim.enable_user("alice").await, None);
    let (code, _) = get_code(&c, &base, &[]).await;
    let tokens = redeem(&c, &base, &code).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let refreshed = token_call(
        &c,
        &base,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(refreshed.0, 200, "{}", refreshed.1);

    // Deleted: gone for good (the login form cannot tell it from a wrong password).
    assert_eq!(sim.delete_user("bob").await, None);
    let resp = c
        .post(format!("{base}/api/v1/login/form"))
        .form(&[("username", "bob"), ("password", "bob-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(sim.user_disabled("bob"), None);
    assert_eq!(sim.counters().backchannel_sent, 0);
}

/// Waits (up to 5 s) until the event log has `n` deliveries.
async fn log_reaches(sim: &Sim, n: usize) -> Vec<Delivery> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = sim.event_log();
        if log.len() >= n || Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn management_user_status_endpoints() {
    let (sim, rx) = sim_with(EventSettings::new("", TOKEN)).await;
    let base = sim.base_url();
    let c = client();
    let token: Value = c
        .post(format!("{base}/api/v2/tenant/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "mgmt-client"),
            ("client_secret", "mgmt-secret"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let url = |tail: &str| format!("{base}/api/v2/tenant/users/{tail}");

    // Without a valid token nothing changes.
    for req in [
        c.put(url("20240001/disable")),
        c.put(url("20240001/disable")).bearer_auth("not-a-token"),
        c.put(url("20240001/enable")).bearer_auth("not-a-token"),
        c.delete(url("20240001")),
        c.delete(url("20240001")).bearer_auth("not-a-token"),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
    }
    assert_eq!(sim.user_disabled("alice"), Some(false));

    let resp = c
        .put(url("20240001/disable"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"user_id": "20240001"})
    );
    assert_eq!(sim.user_disabled("alice"), Some(true), "at once");
    let log = log_reaches(&sim, 3).await;
    assert_eq!(log[1].event_type, "CREATE_USER");
    assert_eq!(log[2].event_type, "UPDATE_USER");
    assert!(log[2].ok);

    let resp = c
        .put(url("20240001/enable"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sim.user_disabled("alice"), Some(false));

    let resp = c
        .delete(url("20240001"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(sim.user_disabled("alice"), None);
    let log = log_reaches(&sim, 5).await;
    let kinds: Vec<&str> = log.iter().map(|d| d.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "CHECK_URL",
            "CREATE_USER",
            "UPDATE_USER",
            "UPDATE_USER",
            "DELETE_USER"
        ]
    );
    assert_eq!(
        rx.events().last().unwrap(),
        &("DELETE_USER".to_string(), json!({"id": "app-alice"}))
    );

    // Unknown (or already deleted) users.
    for req in [
        c.put(url("20240001/disable")),
        c.put(url("nobody/enable")),
        c.delete(url("20240001")),
    ] {
        let resp = req.bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error_code"], "USER.0001", "{body}");
        assert!(body["error_msg"].is_string());
    }

    let n = sim.counters();
    assert_eq!(
        (
            n.management_disable,
            n.management_enable,
            n.management_delete
        ),
        (4, 3, 4)
    );
}

#[test]
fn crypto_helpers() {
    let message = r#"{"id":"a&b","username":"x"}"#;
    let data = encrypt_data(ENC_KEY, message);
    assert_ne!(encrypt_data(ENC_KEY, message), data, "random IV and prefix");
    assert_eq!(decrypt_data(ENC_KEY, &data).as_deref(), Some(message));
    let raw = STANDARD.decode(&data).unwrap();
    // IV (12) + prefix (16) + '&' + message + tag (16).
    assert_eq!(raw.len(), 12 + 16 + 1 + message.len() + 16);
    for at in [0, 11, 12, 30, raw.len() - 16, raw.len() - 1] {
        let mut bad = raw.clone();
        bad[at] ^= 0x01;
        assert_eq!(decrypt_data(ENC_KEY, &STANDARD.encode(&bad)), None, "{at}");
    }
    assert_eq!(
        decrypt_data(ENC_KEY, &STANDARD.encode(&raw[..raw.len() - 1])),
        None
    );
    assert_eq!(decrypt_data("another-key-1234", &data), None);
    assert_eq!(decrypt_data(ENC_KEY, "%%%"), None);

    // Sealing with a given nonce and timestamp is deterministic in all but the
    // ciphertext; the signature covers the data as sent.
    let settings = encrypted_settings();
    let sealed = seal_event_with(
        &settings,
        "UPDATE_USER",
        message,
        "n0nce",
        json!("1700000000000"),
    );
    assert_eq!(sealed["nonce"], "n0nce");
    assert_eq!(sealed["timestamp"], "1700000000000");
    let data = sealed["data"].as_str().unwrap();
    assert_eq!(
        sealed["signature"],
        sign(SIG_KEY, "n0nce", "1700000000000", "UPDATE_USER", data)
    );
    assert_eq!(decrypt_data(ENC_KEY, data).as_deref(), Some(message));
    let fresh = seal_event(&settings, "UPDATE_USER", message);
    assert_ne!(fresh["nonce"], sealed["nonce"]);
}
