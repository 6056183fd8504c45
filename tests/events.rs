//! OneAccess user events end to end: the simulator disables or deletes a user
//! and pushes the signed, encrypted event; every gateway sharing the store ends
//! that user's sessions (OIDC, OAuth2 and CAS; cookie and server mode), others
//! keep theirs, and a re-enabled user logs in again. Every malformed or hostile
//! event gets its answer and changes nothing. `CHECK_URL` in plain and encrypted
//! mode. The admin listener's `POST /sessions/revoke` takes the same path.

mod common;

use common::*;
use oneaccess_sim::events::{self, EventSettings, TimestampStyle};
use serde_json::{json, Value};

const TOKEN: &str = "events-token-0123";
const SIGN_KEY: &str = "sign-key-16chars";
const CRYPT_KEY: &str = "crypt-key-16char";
const BOB: (&str, &str) = ("bob", "bob-password");

/// `[provider]` lines: the event receiver with every secret set.
fn receiver_lines(sign: bool, encrypt: bool) -> String {
    let mut lines =
        format!("events = {{ token = {{ value = \"{TOKEN}\", dev = true }}, max_body_bytes = 4096");
    if sign {
        lines += &format!(", signature_key = {{ value = \"{SIGN_KEY}\", dev = true }}");
    }
    if encrypt {
        lines += &format!(", encryption_key = {{ value = \"{CRYPT_KEY}\", dev = true }}");
    }
    lines + " }"
}

/// The console's settings matching `receiver_lines(true, true)`, for `url`.
fn console(url: String) -> EventSettings {
    EventSettings {
        signature_key: Some(SIGN_KEY.into()),
        encryption_key: Some(CRYPT_KEY.into()),
        ..EventSettings::new(url, TOKEN)
    }
}

/// A CAS route and an OAuth2 route beside the standard OIDC one.
const MORE_ROUTES: &str = r#"
[[route]]
path = "/cas"
upstream = "{upstream}"
protocol = "cas"

[[route]]
path = "/oauth"
upstream = "{upstream}"
protocol = "oauth2"
"#;

/// How a request of `b` to `url` is answered: as a page (a browser) and as an
/// API call.
async fn answers(b: &Browser, url: &str) -> (u16, u16) {
    let page = b.get(url).await.status;
    let api = b
        .get_with(url, &[("accept", "application/json")])
        .await
        .status;
    (page, api)
}

const SERVED: (u16, u16) = (200, 200);
const REFUSED: (u16, u16) = (302, 401);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_loses_every_session_on_every_gateway_sharing_redis() {
    for mode in ["cookie", "server"] {
        let redis = RedisServer::start();
        let env = start().await;
        let (pa, pb) = (free_port(), free_port());
        let session = process::redis_session_lines(&redis.url(), mode);
        let receiver = receiver_lines(true, true);
        let _a = process::behind_one_origin(&env, pa, &session, &receiver, MORE_ROUTES).await;
        let _b = process::behind_one_origin(&env, pb, &session, &receiver, MORE_ROUTES).await;
        let at = |port: u16, path: &str| format!("http://localhost:{port}{path}");

        // Alice on OIDC through A and on CAS through B; Bob on both.
        let (alice_oidc, alice_cas) = (Browser::new(), Browser::new());
        process::login_through(&alice_oidc, &env, pa, "/x").await;
        process::login_through(&alice_cas, &env, pb, "/cas/x").await;
        let (bob_oidc, bob_cas) = (Browser::new(), Browser::new());
        process::login_as(&bob_oidc, &env, pb, "/x", BOB).await;
        process::login_as(&bob_cas, &env, pa, "/cas/x", BOB).await;
        for port in [pa, pb] {
            assert_eq!(
                answers(&alice_oidc, &at(port, "/x")).await,
                SERVED,
                "{mode}"
            );
            assert_eq!(
                answers(&alice_cas, &at(port, "/cas/x")).await,
                SERVED,
                "{mode}"
            );
        }

        // The console's settings point at A; saving them checks the URL.
        let check = env
            .sim
            .configure_events(console(at(pa, "/_sso/oneaccess/events")))
            .await;
        assert!(check.ok, "{mode}: CHECK_URL {check:?}");

        let d = env.sim.disable_user("alice").await.expect("events on");
        assert!(d.ok, "{mode}: {d:?}");
        assert_eq!(d.attempts, [200], "{mode}");
        // The revocation is in the shared store before the event is answered:
        // the very next request on A is refused, on B as soon as the revocation
        // reaches it through Redis's stream; then every one.
        assert_eq!(answers(&alice_oidc, &at(pa, "/x")).await, REFUSED, "{mode}");
        assert_eq!(
            answers(&alice_cas, &at(pa, "/cas/x")).await,
            REFUSED,
            "{mode}"
        );
        for (b, path) in [(&alice_oidc, "/x"), (&alice_cas, "/cas/x")] {
            assert!(
                process::holds_within(process::PROPAGATION, || async {
                    b.get(&at(pb, path)).await.status == 302
                })
                .await,
                "{mode}: B served {path} after the event"
            );
        }
        for port in [pa, pb] {
            assert_eq!(
                answers(&alice_oidc, &at(port, "/x")).await,
                REFUSED,
                "{mode} on {port}"
            );
            assert_eq!(
                answers(&alice_cas, &at(port, "/cas/x")).await,
                REFUSED,
                "{mode} on {port}"
            );
            assert_eq!(
                answers(&bob_oidc, &at(port, "/x")).await,
                SERVED,
                "{mode}: bob on {port}"
            );
            assert_eq!(
                answers(&bob_cas, &at(port, "/cas/x")).await,
                SERVED,
                "{mode}: bob on {port}"
            );
        }

        // The same sealed event replayed to B: its nonce is in the shared store.
        let replay = events::seal_event(
            &console(String::new()),
            "UPDATE_USER",
            r#"{"id":"bob","disabled":true}"#,
        );
        let first = post_event(&at(pa, "/_sso/oneaccess/events"), &replay).await;
        assert_eq!(first.0, 200, "{mode}: {}", first.1);
        let again = post_event(&at(pb, "/_sso/oneaccess/events"), &replay).await;
        assert_eq!(again.0, 401, "{mode}: {}", again.1);
        assert_eq!(again.1["code"], "401");

        // Enabled again, she logs in again and is served.
        let d = env.sim.enable_user("alice").await.expect("events on");
        assert!(d.ok, "{mode}: {d:?}");
        let fresh = Browser::new();
        process::login_through(&fresh, &env, pb, "/x").await;
        assert_eq!(
            answers(&fresh, &at(pa, "/x")).await,
            SERVED,
            "{mode}: re-enabled"
        );
    }
}

/// POSTs an event body as OneAccess does; the status and the JSON answer.
async fn post_event(url: &str, body: &Value) -> (u16, Value) {
    post_raw(url, Some(TOKEN), body.to_string().into_bytes()).await
}

async fn post_raw(url: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json;charset=UTF-8")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("answer");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_ends_the_sessions_and_remembers_it_across_a_restart() {
    let env = start().await;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("oag-events-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let text = config_text_with(
        port,
        &env.sim,
        &env.echo,
        "",
        &receiver_lines(true, true),
        MORE_ROUTES,
    );
    let config = dir.join("gateway.toml");
    process::write(&config, &text);
    let start = |log: &str| {
        let p = process::Process::start(&config, dir.join(log));
        async move {
            process::wait_until("the gateway", || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            })
            .await;
            p
        }
    };
    let gw = start("first.log").await;
    let url = |path: &str| format!("http://localhost:{port}{path}");

    let (alice_oidc, alice_cas, alice_oauth, bob) = (
        Browser::new(),
        Browser::new(),
        Browser::new(),
        Browser::new(),
    );
    assert_eq!(alice_oidc.login(&url("/x"), USER).await.status, 200);
    assert_eq!(alice_cas.login(&url("/cas/x"), USER).await.status, 200);
    assert_eq!(alice_oauth.login(&url("/oauth/x"), USER).await.status, 200);
    assert_eq!(bob.login(&url("/x"), BOB).await.status, 200);

    // Through the management API, as an administrator's tool would: the
    // simulator pushes the event in the background, as OneAccess's queue does.
    let check = env
        .sim
        .configure_events(console(url("/_sso/oneaccess/events")))
        .await;
    assert!(check.ok, "{check:?}");
    let token = management_token(&env).await;
    let r = reqwest::Client::new()
        .put(format!(
            "{}/api/v2/tenant/users/{ALICE_ID}/disable",
            env.sim.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("disable");
    assert_eq!(r.status(), 200);
    process::wait_until("the event to arrive", || async {
        env.sim
            .event_log()
            .iter()
            .any(|d| d.event_type == "UPDATE_USER" && d.ok)
    })
    .await;
    for b in [&alice_oidc, &alice_oauth] {
        assert_eq!(answers(b, &url("/x")).await.0, 302);
    }
    assert_eq!(answers(&alice_oidc, &url("/x")).await, REFUSED);
    assert_eq!(answers(&alice_oauth, &url("/oauth/x")).await, REFUSED);
    assert_eq!(answers(&alice_cas, &url("/cas/x")).await, REFUSED);
    assert_eq!(answers(&bob, &url("/x")).await, SERVED);

    // A restart reads the revocations back from the state directory.
    drop(gw);
    let gw = start("second.log").await;
    assert_eq!(
        answers(&alice_oidc, &url("/x")).await,
        REFUSED,
        "after a restart"
    );
    assert_eq!(
        answers(&alice_cas, &url("/cas/x")).await,
        REFUSED,
        "after a restart"
    );
    assert_eq!(
        answers(&alice_oauth, &url("/oauth/x")).await,
        REFUSED,
        "after a restart"
    );
    assert_eq!(answers(&bob, &url("/x")).await, SERVED, "after a restart");

    // Deleting Bob ends his session; the event log line names him and no secret.
    let d = env.sim.delete_user("bob").await.expect("events on");
    assert!(d.ok, "{d:?}");
    assert_eq!(answers(&bob, &url("/x")).await, REFUSED);
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("OneAccess event") && l.contains("DELETE_USER"))
        .unwrap_or_else(|| panic!("no event line in {logs}"));
    assert!(line.contains("bob") && line.contains("revoked"), "{line}");
    for secret in [TOKEN, SIGN_KEY, CRYPT_KEY, "bob-password", "alice-password"] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}

async fn management_token(env: &Env) -> String {
    let cfg = env.sim.config();
    let r: Value = reqwest::Client::new()
        .post(format!("{}/api/v2/tenant/token", env.sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", cfg.management_client_id.as_str()),
            ("client_secret", cfg.management_client_secret.as_str()),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    r["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_event_gets_its_answer_and_changes_nothing() {
    let env = start_with(Default::default(), &receiver_lines(true, true), MORE_ROUTES).await;
    let alice = Browser::new();
    assert_eq!(alice.login(&env.url("/x"), USER).await.status, 200);
    let url = env.url("/_sso/oneaccess/events");
    let good = console(url.clone());
    // Each of these would end Alice's sessions, were it taken.
    let disable = r#"{"id":"alice","username":"alice","disabled":true}"#;
    let sealed = |s: &EventSettings| events::seal_event(s, "UPDATE_USER", disable);
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64
    };
    let resign = |v: &mut serde_json::Map<String, Value>| {
        let ts = match &v["timestamp"] {
            Value::String(s) => s.clone(),
            n => n.to_string(),
        };
        let sig = events::sign(
            SIGN_KEY,
            v["nonce"].as_str().expect("nonce"),
            &ts,
            v["eventType"].as_str().expect("type"),
            v["data"].as_str().expect("data"),
        );
        v.insert("signature".into(), json!(sig));
    };
    // The good event with one field taken out, or set (and signed again, so
    // that the check after the signature is the one tried).
    let without = |name: &str| {
        let mut v = sealed(&good);
        v.as_object_mut().expect("object").remove(name);
        v.to_string().into_bytes()
    };
    let set = |name: &str, value: Value, sign_again: bool| {
        let mut v = sealed(&good);
        let m = v.as_object_mut().expect("object");
        m.insert(name.into(), value);
        if sign_again {
            resign(m);
        }
        v.to_string().into_bytes()
    };
    let data = |message: &str| json!(events::encrypt_data(CRYPT_KEY, message));
    let stale = events::seal_event_with(
        &good,
        "UPDATE_USER",
        disable,
        "stale-nonce",
        json!(now_ms() - 330_000),
    );
    let future = events::seal_event_with(
        &good,
        "UPDATE_USER",
        disable,
        "future-nonce",
        json!(now_ms() / 1000 + 330),
    );
    let wrong_sign_key = sealed(&EventSettings {
        signature_key: Some("another-key-16ch".into()),
        ..good.clone()
    });
    let wrong_crypt_key = sealed(&EventSettings {
        encryption_key: Some("another-key-16ch".into()),
        ..good.clone()
    });
    let unsigned = sealed(&EventSettings {
        signature_key: None,
        ..good.clone()
    });
    let plain = sealed(&EventSettings {
        encryption_key: None,
        ..good.clone()
    });
    let full = sealed(&good).to_string().into_bytes();
    let bytes = |v: &Value| v.to_string().into_bytes();
    let cases: Vec<(&str, Option<&str>, Vec<u8>, u16)> = vec![
        ("no token", None, full.clone(), 401),
        ("wrong token", Some("events-token-0124"), full.clone(), 401),
        ("token prefix", Some("events-token"), full.clone(), 401),
        ("not JSON", Some(TOKEN), b"{\"nonce\":".to_vec(), 400),
        (
            "truncated",
            Some(TOKEN),
            full[..full.len() / 2].to_vec(),
            400,
        ),
        ("oversized", Some(TOKEN), vec![b' '; 5000], 413),
        ("no data", Some(TOKEN), without("data"), 400),
        ("no nonce", Some(TOKEN), without("nonce"), 400),
        ("no timestamp", Some(TOKEN), without("timestamp"), 400),
        (
            "12 digits",
            Some(TOKEN),
            set("timestamp", json!(170000000000u64), true),
            400,
        ),
        ("stale", Some(TOKEN), bytes(&stale), 401),
        ("from the future", Some(TOKEN), bytes(&future), 401),
        (
            "bad signature",
            Some(TOKEN),
            set("signature", json!("AAAA"), false),
            401,
        ),
        (
            "signed other data",
            Some(TOKEN),
            set("data", data(r#"{"id":"bob","disabled":true}"#), false),
            401,
        ),
        (
            "wrong signature key",
            Some(TOKEN),
            bytes(&wrong_sign_key),
            401,
        ),
        ("unsigned", Some(TOKEN), bytes(&unsigned), 401),
        (
            "wrong encryption key",
            Some(TOKEN),
            bytes(&wrong_crypt_key),
            400,
        ),
        ("not encrypted", Some(TOKEN), bytes(&plain), 400),
        (
            "bad ciphertext",
            Some(TOKEN),
            set("data", json!("bm90IGEgY2lwaGVydGV4dA=="), true),
            400,
        ),
        (
            "unknown event type",
            Some(TOKEN),
            set("eventType", json!("DISABLE_EVERYONE"), true),
            400,
        ),
        (
            "missing id",
            Some(TOKEN),
            set("data", data(r#"{"disabled":true}"#), true),
            400,
        ),
        (
            "disabled not a boolean",
            Some(TOKEN),
            set("data", data(r#"{"id":"alice","disabled":[1]}"#), true),
            400,
        ),
    ];
    for (what, token, body, status) in cases {
        let (got, answer) = post_raw(&url, token, body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(answer["code"], status.to_string(), "{what}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert_eq!(
            answers(&alice, &env.url("/x")).await,
            SERVED,
            "{what} changed something"
        );
    }

    // A good event, then the same again: the replay is refused.
    let once = sealed(&good);
    assert_eq!(post_event(&url, &once).await.0, 200);
    assert_eq!(answers(&alice, &env.url("/x")).await, REFUSED);
    let (status, answer) = post_event(&url, &once).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("401")));

    // Organization events are acknowledged and change nothing; the metrics
    // count every event by type and outcome.
    let bob = Browser::new();
    assert_eq!(bob.login(&env.url("/x"), BOB).await.status, 200);
    let org = events::seal_event(
        &good,
        "CREATE_ORGANIZATION",
        r#"{"code":"rd","name":"R&D","parentId":"root"}"#,
    );
    let (status, answer) = post_event(&url, &org).await;
    assert_eq!(status, 200, "{answer}");
    let id = events::decrypt_data(CRYPT_KEY, answer["data"].as_str().expect("sealed data"))
        .expect("opens");
    assert_eq!(
        serde_json::from_str::<Value>(&id).expect("json"),
        json!({"id": "rd"})
    );
    assert_eq!(answers(&bob, &env.url("/x")).await, SERVED);
    let metrics = env.gateway().render_metrics();
    for line in [
        r#"oneaccess_gateway_events_total{type="UPDATE_USER",outcome="revoked"} 1"#,
        r#"oneaccess_gateway_events_total{type="UPDATE_USER",outcome="replayed"} 1"#,
        r#"oneaccess_gateway_events_total{type="unknown",outcome="bad_signature"} 4"#,
        r#"oneaccess_gateway_events_total{type="UPDATE_USER",outcome="bad_ciphertext"} 3"#,
        r#"oneaccess_gateway_events_total{type="unknown",outcome="bad_token"} 3"#,
        r#"oneaccess_gateway_events_total{type="CREATE_ORGANIZATION",outcome="ignored"} 1"#,
        r#"oneaccess_gateway_revocations_total{cause="event"} 1"#,
    ] {
        assert!(metrics.contains(line), "no `{line}` in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_url_is_answered_in_plain_and_encrypted_mode() {
    for (sign, encrypt) in [(false, false), (true, false), (false, true), (true, true)] {
        let env = start_with(Default::default(), &receiver_lines(sign, encrypt), "").await;
        let mut console = EventSettings::new(env.url("/_sso/oneaccess/events"), TOKEN);
        console.signature_key = sign.then(|| SIGN_KEY.to_string());
        console.encryption_key = encrypt.then(|| CRYPT_KEY.to_string());
        for style in [
            TimestampStyle::Millis,
            TimestampStyle::Seconds,
            TimestampStyle::MillisString,
        ] {
            console.timestamp = style;
            let d = env.sim.configure_events(console.clone()).await;
            assert!(d.ok, "sign {sign}, encrypt {encrypt}, {style:?}: {d:?}");
        }
        // What the answer carries, read by hand: the same string, sealed anew.
        let body = events::seal_event(&console, "CHECK_URL", "echo&me");
        let (status, answer) = post_event(&console.callback_url, &body).await;
        assert_eq!((status, answer["code"].as_str()), (200, Some("200")));
        let data = answer["data"].as_str().expect("data");
        if encrypt {
            assert_ne!(
                data,
                body["data"].as_str().expect("sent"),
                "not sealed anew"
            );
            assert_eq!(
                events::decrypt_data(CRYPT_KEY, data).as_deref(),
                Some("echo&me")
            );
        } else {
            assert_eq!(data, "echo&me");
        }
        // A user created in OneAccess gets its login name as the id.
        let d = env
            .sim
            .create_user(oneaccess_sim::User {
                id: "20240009".into(),
                user_name: "carol".into(),
                name: "Carol".into(),
                email: "carol@example.com".into(),
                mobile: String::new(),
                password: "carol-password".into(),
            })
            .await
            .expect("events on");
        assert!(d.ok, "{d:?}");
        assert_eq!(env.sim.event_user_id("carol").as_deref(), Some("carol"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_name_reaches_each_realm_by_its_own_claim() {
    // OIDC sessions named by `email` instead: an event naming the login name
    // `alice` ends her CAS and OAuth2 sessions, not her OIDC one; her email
    // ends that.
    let env = start_with(
        Default::default(),
        &format!(
            "{}\nlogin_name_claims = {{ oidc = \"email\" }}",
            receiver_lines(false, false)
        ),
        MORE_ROUTES,
    )
    .await;
    let (oidc, cas, oauth) = (Browser::new(), Browser::new(), Browser::new());
    assert_eq!(oidc.login(&env.url("/x"), USER).await.status, 200);
    assert_eq!(cas.login(&env.url("/cas/x"), USER).await.status, 200);
    assert_eq!(oauth.login(&env.url("/oauth/x"), USER).await.status, 200);
    let console = EventSettings::new(env.url("/_sso/oneaccess/events"), TOKEN);
    let delete =
        |id: &str| events::seal_event(&console, "DELETE_USER", &json!({ "id": id }).to_string());
    assert_eq!(
        post_event(&console.callback_url, &delete("alice")).await.0,
        200
    );
    assert_eq!(answers(&cas, &env.url("/cas/x")).await, REFUSED);
    assert_eq!(answers(&oauth, &env.url("/oauth/x")).await, REFUSED);
    assert_eq!(answers(&oidc, &env.url("/x")).await, SERVED);
    assert_eq!(
        post_event(&console.callback_url, &delete("alice@example.com"))
            .await
            .0,
        200
    );
    assert_eq!(answers(&oidc, &env.url("/x")).await, REFUSED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_revokes_a_user_on_the_admin_listener() {
    for mode in ["cookie", "server"] {
        let sim = oneaccess_sim::Sim::start(Default::default())
            .await
            .expect("sim");
        let echo = oneaccess_sim::echo::Echo::start().await.expect("echo");
        let (port, admin) = (free_port(), free_port());
        let text = config_text_with(
            port,
            &sim,
            &echo,
            &format!("mode = \"{mode}\""),
            "",
            MORE_ROUTES,
        )
        .replacen(
            "threads = 2",
            &format!("threads = 2\nadmin_listen = \"127.0.0.1:{admin}\""),
            1,
        );
        let gw = start_gateway(&text).await;
        let url = |p: &str| format!("http://localhost:{port}{p}");
        let revoke = |body: String, content_type: &'static str| {
            let url = format!("http://127.0.0.1:{admin}/sessions/revoke");
            async move {
                let r = reqwest::Client::new()
                    .post(url)
                    .header("content-type", content_type)
                    .body(body)
                    .send()
                    .await
                    .expect("admin");
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.expect("json"))
            }
        };
        let (a1, a2, a3, bob) = (
            Browser::new(),
            Browser::new(),
            Browser::new(),
            Browser::new(),
        );
        assert_eq!(a1.login(&url("/x"), USER).await.status, 200);
        assert_eq!(a2.login(&url("/cas/x"), USER).await.status, 200);
        assert_eq!(a3.login(&url("/x"), USER).await.status, 200);
        assert_eq!(bob.login(&url("/cas/x"), BOB).await.status, 200);
        // One of hers ended by logging out is not counted again.
        let out = a3.log_out(&url("/_sso/logout")).await;
        assert_eq!(out.status, 302);

        // Refused: not JSON (a form from another site cannot send JSON), two
        // names at once, a name that is not text.
        let form = revoke(
            "login_name=alice".into(),
            "application/x-www-form-urlencoded",
        )
        .await;
        assert_eq!(form.0, 415);
        let two = revoke(
            json!({"login_name": "alice", "sub": ALICE_ID}).to_string(),
            "application/json",
        )
        .await;
        assert_eq!(two.0, 400);
        let num = revoke(json!({"login_name": 7}).to_string(), "application/json").await;
        assert_eq!(num.0, 400);
        assert_eq!(answers(&a1, &url("/x")).await, SERVED, "{mode}");

        let (status, body) = revoke(
            json!({"login_name": "alice"}).to_string(),
            "application/json",
        )
        .await;
        assert_eq!(status, 200, "{mode}: {body}");
        assert_eq!(body["revoked"], 2, "{mode}: {body}");
        assert_eq!(answers(&a1, &url("/x")).await, REFUSED, "{mode}");
        assert_eq!(answers(&a2, &url("/cas/x")).await, REFUSED, "{mode}");
        assert_eq!(answers(&bob, &url("/cas/x")).await, SERVED, "{mode}");

        // By OneAccess user id: her OIDC sessions.
        let again = Browser::new();
        assert_eq!(again.login(&url("/x"), USER).await.status, 200);
        let (status, body) =
            revoke(json!({"user_id": ALICE_ID}).to_string(), "application/json").await;
        assert_eq!(
            (status, body["revoked"].as_u64()),
            (200, Some(1)),
            "{mode}: {body}"
        );
        assert_eq!(answers(&again, &url("/x")).await, REFUSED, "{mode}");

        let metrics = gw.gateway.render_metrics();
        for line in [
            r#"oneaccess_gateway_revocations_total{cause="admin"} 2"#,
            r#"oneaccess_gateway_revocations_total{cause="logout"} 1"#,
        ] {
            assert!(metrics.contains(line), "{mode}: no `{line}` in\n{metrics}");
        }
    }
}
