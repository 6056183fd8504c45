//! OneAccess events checked and read: vectors from Python's hmac and cryptography, every refusal in order.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::config::EventAction;
use crate::secret::Secret;

const NOW: u64 = 1_700_000_000_000;

fn settings(
    sign: Option<&str>,
    encrypt: Option<&str>,
    iv_bytes: usize,
    iv_at: IvAt,
) -> EventSettings {
    EventSettings {
        path: "/_sso/oneaccess/events".into(),
        token: Secret::new("the-token".into()),
        signature_key: sign.map(|k| Secret::new(k.into())),
        encryption_key: encrypt.map(|k| Secret::new(k.into())),
        iv_bytes,
        iv_at,
        window: Duration::from_secs(300),
        max_body: 4096,
        on_disable: EventAction::Revoke,
        on_delete: EventAction::Revoke,
    }
}

fn body(nonce: &str, ts: Value, kind: &str, data: &str, signature: &str) -> Vec<u8> {
    json!({"nonce": nonce, "timestamp": ts, "eventType": kind, "data": data, "signature": signature})
        .to_string()
        .into_bytes()
}

#[test]
fn the_signature_matches_an_independent_hmac() {
    // Computed with Python's hmac module over `n1&1700000000000&CHECK_URL&hello`.
    let sig = "n8M4eUBlllF1Tja3SSeWrvpEKN3z5WLq0rea2VW0OCQ=";
    let s = settings(Some("0123456789abcdef"), None, 12, IvAt::Start);
    let r = Receiver::new(&s);
    for ts in [json!(NOW), json!(NOW.to_string())] {
        let b = body("n1", ts, "CHECK_URL", "hello", sig);
        let e = r.check(Some("the-token"), Some(&b), NOW).expect("good");
        assert_eq!(e.event_type, Some(EventType::CheckUrl));
        assert_eq!(r.message(&e).expect("plain"), "hello");
    }
    let b = body("n1", json!(NOW), "CHECK_URL", "hellO", sig);
    assert_eq!(
        r.check(Some("the-token"), Some(&b), NOW).unwrap_err(),
        BAD_SIGNATURE
    );
    let b = body("n1", json!(NOW), "CHECK_URL", "hello", "");
    assert_eq!(
        r.check(Some("the-token"), Some(&b), NOW).unwrap_err(),
        BAD_SIGNATURE
    );
}

#[test]
fn decrypts_what_openssl_encrypted_in_both_layouts() {
    // From Python's `cryptography` (OpenSSL): prefix `abcdefghijklmnop&`.
    let s = settings(None, Some("fedcba9876543210"), 12, IvAt::Start);
    let r = Receiver::new(&s);
    let data = "AAECAwQFBgcICQoLRwgqgkdX+rwrWR+XWJE3b8Gg3FwbEVnYSDvfgEYOUcQBTEYmMXhSle6ZKX3Q93frF51pZcCElNaf";
    let b = body("n", json!(NOW), "UPDATE_USER", data, "");
    let e = r.check(Some("the-token"), Some(&b), NOW).expect("good");
    // Only the prefix up to the first `&` goes: the message keeps its own.
    assert_eq!(
        r.message(&e).expect("decrypts"),
        r#"{"id":"alice","x":"a&b"}"#
    );

    let s = settings(None, Some("fedcba9876543210"), 16, IvAt::End);
    let r = Receiver::new(&s);
    let data = "XQLXWg+p9tzzZNgEp0s479zQnexlCQToF7YY9Ls11LKAxajoXjwAAQIDBAUGBwgJCgsMDQ4P";
    let b = body("n", json!(NOW), "CHECK_URL", data, "");
    let e = r.check(Some("the-token"), Some(&b), NOW).expect("good");
    assert_eq!(r.message(&e).expect("decrypts"), "hello");

    // The same bytes read with the other layout, or another key, do not open.
    let s = settings(None, Some("fedcba9876543210"), 12, IvAt::Start);
    assert_eq!(Receiver::new(&s).message(&e).unwrap_err(), UNDECRYPTABLE);
    let s = settings(None, Some("0000000000000000"), 16, IvAt::End);
    assert_eq!(Receiver::new(&s).message(&e).unwrap_err(), UNDECRYPTABLE);
}

#[test]
fn answers_open_with_the_same_settings() {
    for (iv, at) in [(12, IvAt::Start), (16, IvAt::End), (12, IvAt::End)] {
        let s = settings(None, Some("fedcba9876543210"), iv, at);
        let r = Receiver::new(&s);
        let Some(Value::String(sealed)) = r.answer_data(json!({"id": "a&b"})) else {
            panic!("sealed to a string");
        };
        let b = body("n", json!(NOW), "CHECK_URL", &sealed, "");
        let e = r.check(Some("the-token"), Some(&b), NOW).expect("good");
        assert_eq!(r.message(&e).expect("opens"), r#"{"id":"a&b"}"#);
        // A fresh IV and prefix each time.
        assert_ne!(r.answer_data(json!("x")), r.answer_data(json!("x")));
    }
    let plain = settings(None, None, 12, IvAt::Start);
    assert_eq!(
        Receiver::new(&plain).answer_data(json!({"id": "x"})),
        Some(json!({"id": "x"}))
    );
}

#[test]
fn token_size_shape_and_window_are_checked_in_order() {
    let s = settings(None, None, 12, IvAt::Start);
    let r = Receiver::new(&s);
    let good = body("n", json!(NOW), "CHECK_URL", "x", "");
    assert!(r.check(Some("the-token"), Some(&good), NOW).is_ok());
    assert_eq!(
        r.check(Some("the-token"), None, NOW).unwrap_err(),
        TOO_LARGE
    );
    let huge = vec![b' '; 5000];
    assert_eq!(r.check(None, Some(&huge), NOW).unwrap_err(), TOO_LARGE);
    for bad in [None, Some("the-tokeN"), Some("the-token "), Some("")] {
        assert_eq!(r.check(bad, Some(&good), NOW).unwrap_err(), BAD_TOKEN);
    }
    for shape in [
        b"not json".to_vec(),
        b"[]".to_vec(),
        body("", json!(NOW), "CHECK_URL", "x", ""),
        json!({"nonce": "n", "timestamp": NOW, "eventType": "CHECK_URL", "signature": ""})
            .to_string()
            .into_bytes(),
        json!({"nonce": "n", "eventType": "CHECK_URL", "data": "x", "signature": ""})
            .to_string()
            .into_bytes(),
        body("n", json!(1.7e12), "CHECK_URL", "x", ""),
        body("n", json!("17000000000001"), "CHECK_URL", "x", ""),
        body("n", json!("-1700000000"), "CHECK_URL", "x", ""),
        body("n", json!(true), "CHECK_URL", "x", ""),
        body(&"n".repeat(129), json!(NOW), "CHECK_URL", "x", ""),
    ] {
        assert_eq!(
            r.check(Some("the-token"), Some(&shape), NOW).unwrap_err(),
            BAD_SHAPE,
            "{}",
            String::from_utf8_lossy(&shape)
        );
    }
    // Seconds and milliseconds, as numbers or strings; five minutes either way.
    let secs = NOW / 1000;
    for (ts, ok) in [
        (json!(secs), true),
        (json!(secs.to_string()), true),
        (json!(NOW + 299_000), true),
        (json!(NOW - 301_000), false),
        (json!(secs + 301), false),
    ] {
        let b = body("n", ts.clone(), "CHECK_URL", "x", "");
        let got = r.check(Some("the-token"), Some(&b), NOW);
        assert_eq!(got.is_ok(), ok, "{ts}");
        if !ok {
            assert_eq!(got.unwrap_err(), STALE);
        }
    }
}

#[test]
fn events_are_read_with_their_fields() {
    let ev = |t, m: &str| read_event(t, m);
    assert_eq!(
        ev(
            EventType::CreateUser,
            r#"{"username":"alice","password":"p","disabled":false}"#
        ),
        Ok(Event::CreateUser {
            username: "alice".into()
        })
    );
    assert_eq!(
        ev(EventType::UpdateUser, r#"{"id":"alice","disabled":true}"#),
        Ok(Event::UpdateUser {
            id: "alice".into(),
            username: None,
            disabled: Some(true)
        })
    );
    assert_eq!(
        ev(
            EventType::UpdateUser,
            r#"{"id":"alice","username":"al","disabled":"false"}"#
        ),
        Ok(Event::UpdateUser {
            id: "alice".into(),
            username: Some("al".into()),
            disabled: Some(false)
        })
    );
    assert_eq!(
        ev(EventType::DeleteUser, r#"{"id":"alice"}"#),
        Ok(Event::DeleteUser { id: "alice".into() })
    );
    for (t, bad) in [
        (EventType::CreateUser, r#"{"name":"Alice"}"#),
        (
            EventType::CreateUser,
            &format!(r#"{{"username":"{}"}}"#, "a".repeat(51)),
        ),
        (EventType::UpdateUser, r#"{"disabled":true}"#),
        (EventType::UpdateUser, r#"{"id":"alice","disabled":1}"#),
        (EventType::UpdateUser, r#"{"id":" "}"#),
        (EventType::DeleteUser, r#"{}"#),
        (EventType::DeleteUser, r#"{"id":["alice"]}"#),
        (EventType::DeleteUser, "alice"),
    ] {
        assert_eq!(ev(t, bad), Err(BAD_EVENT), "{bad}");
    }
    assert_eq!(
        ev(EventType::CheckUrl, "any & thing"),
        Ok(Event::CheckUrl("any & thing".into()))
    );
    assert_eq!(
        ev(
            EventType::CreateOrganization,
            r#"{"code":"rd","name":"R&D"}"#
        ),
        Ok(Event::Organization {
            answer_id: Some("rd".into())
        })
    );
}
