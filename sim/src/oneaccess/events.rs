//! OneAccess synchronization events on the wire (`/work/shared/oneaccess/EVENTS.md`): the
//! console settings of the receiving application, sealing a request body (nonce,
//! timestamp, optional AES-128-GCM encryption of `data`, optional HMAC-SHA256 signature),
//! and what one delivery looked like. Public so that the gateway's tests can build valid
//! and tampered requests with the same code the simulator sends with.
//!
//! A request is `POST {callback_url}` with `Content-Type: application/json;charset=UTF-8`,
//! `Authorization: Bearer {token}` and the body [`seal_event`] builds:
//! `{"nonce", "timestamp", "eventType", "data", "signature"}`.
//!
//! - Encryption (when a key is set): the plaintext is 16 random ASCII letters, `&`, then
//!   the message; AES-128-GCM keyed with the key's 16 UTF-8 bytes, a random 12-byte IV,
//!   no AAD; `data` is standard Base64 of `IV (12) || ciphertext || tag (16)`.
//! - Signature (when a key is set, else `""`): standard Base64 of HMAC-SHA256 keyed with
//!   the key's UTF-8 bytes over `nonce & timestamp & eventType & data`, `data` as sent.
//!
//! Delivery, as the simulator does it (`sync.rs`): an attempt that gets no answer, a
//! 5xx, or a body whose `code` is `"500"` is tried again after 500 ms, up to 3 attempts
//! in all, each sealed afresh (new nonce and timestamp); any other answer is final.
//! One attempt may take 5 s.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, NONCE_LEN};
use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::util::{now_millis, now_secs, random_bytes};

/// Length of the random ASCII-letter prefix of an encrypted plaintext.
const PREFIX_LEN: usize = 16;

/// Length of the GCM tag at the end of the decoded `data`.
const TAG_LEN: usize = 16;

/// Length of a request's `nonce`.
const NONCE_CHARS: usize = 32;

/// What an administrator sets for the application in the OneAccess console
/// (synchronization integration, API mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    /// Where events are POSTed, e.g. `https://gateway.example.com/_sso/oneaccess/events`.
    pub callback_url: String,
    /// The Security Token, sent as `Authorization: Bearer {token}`.
    pub token: String,
    /// The signature key; `None` sends `"signature": ""`.
    pub signature_key: Option<String>,
    /// The encryption key (16 ASCII characters, AES-128); `None` sends `data` in plain text
    /// (the console's `NULL` algorithm).
    pub encryption_key: Option<String>,
    /// How `timestamp` is written.
    pub timestamp: TimestampStyle,
}

impl EventSettings {
    /// Plain text, unsigned, millisecond timestamps.
    pub fn new(callback_url: impl Into<String>, token: impl Into<String>) -> EventSettings {
        EventSettings {
            callback_url: callback_url.into(),
            token: token.into(),
            signature_key: None,
            encryption_key: None,
            timestamp: TimestampStyle::Millis,
        }
    }
}

/// How a request's `timestamp` is written (the documentation's examples show all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampStyle {
    /// A JSON number of milliseconds since the epoch (13 digits). The default.
    #[default]
    Millis,
    /// A JSON number of seconds since the epoch (10 digits).
    Seconds,
    /// A JSON string of the 13 digits of milliseconds.
    MillisString,
}

impl TimestampStyle {
    /// The current time written in this style.
    pub fn now(self) -> Value {
        // u64 holds milliseconds until the year 584 million; the fallback never happens.
        let millis = u64::try_from(now_millis()).unwrap_or(u64::MAX);
        match self {
            TimestampStyle::Millis => json!(millis),
            TimestampStyle::Seconds => json!(now_secs()),
            TimestampStyle::MillisString => json!(millis.to_string()),
        }
    }
}

/// One event as the simulator delivered it (every attempt of it), for
/// [`crate::Sim::event_log`] and the pushing methods of [`crate::Sim`].
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// `CHECK_URL`, `CREATE_USER`, `UPDATE_USER` or `DELETE_USER`.
    pub event_type: String,
    /// The OneAccess user name the event is about (`None` for `CHECK_URL`).
    pub user_name: Option<String>,
    /// The HTTP status of each attempt, in order; 0 when no answer arrived (refused,
    /// timed out, ..). Empty when nothing could be sent.
    pub attempts: Vec<u16>,
    /// The last answer's body, if it was JSON.
    pub answer: Option<Value>,
    /// The last answer's `data`: decrypted (the text after the first `&`) when encryption
    /// is on, else as sent (a JSON string as is; an object or other value as JSON text).
    /// `None` when there was none or it did not decrypt.
    pub data: Option<String>,
    /// HTTP 200 with `code` `"200"`; for `CHECK_URL` also the echoed string matched, and
    /// for `CREATE_USER` the answer carried the application's `id`.
    pub ok: bool,
}

impl Delivery {
    /// A delivery that never went out (no attempts, not ok).
    pub(crate) fn not_sent(event_type: &str, user_name: Option<&str>) -> Delivery {
        Delivery {
            event_type: event_type.to_string(),
            user_name: user_name.map(str::to_string),
            attempts: Vec::new(),
            answer: None,
            data: None,
            ok: false,
        }
    }
}

/// The request body for `event_type` carrying `message` (the JSON text of a user event,
/// or the `CHECK_URL` string): a fresh nonce and the current timestamp in the settings'
/// style; `data` encrypted if an encryption key is set; signed if a signature key is set.
///
/// Panics if the encryption key is not 16 bytes long.
pub fn seal_event(settings: &EventSettings, event_type: &str, message: &str) -> Value {
    seal_event_with(
        settings,
        event_type,
        message,
        &random_nonce(),
        settings.timestamp.now(),
    )
}

/// As [`seal_event`] with the given `nonce` and `timestamp` (any JSON value, sent as is;
/// the signature covers its digits: a string's content, else its JSON text), for replay
/// and staleness tests.
///
/// Panics if the encryption key is not 16 bytes long.
pub fn seal_event_with(
    settings: &EventSettings,
    event_type: &str,
    message: &str,
    nonce: &str,
    timestamp: Value,
) -> Value {
    try_seal(settings, event_type, message, nonce, timestamp)
        .expect("the encryption key must be 16 bytes (AES-128)")
}

/// The sealing behind [`seal_event_with`]; `None` when the encryption key is unusable
/// (the delivery path must not panic).
pub(crate) fn try_seal(
    settings: &EventSettings,
    event_type: &str,
    message: &str,
    nonce: &str,
    timestamp: Value,
) -> Option<Value> {
    let data = match &settings.encryption_key {
        Some(key) => try_encrypt(key, message)?,
        None => message.to_string(),
    };
    let signature = match &settings.signature_key {
        Some(key) => sign(key, nonce, &timestamp_text(&timestamp), event_type, &data),
        None => String::new(),
    };
    Some(json!({
        "nonce": nonce,
        "timestamp": timestamp,
        "eventType": event_type,
        "data": data,
        "signature": signature,
    }))
}

/// The timestamp as it enters the signature: a string's content, a number's digits.
fn timestamp_text(timestamp: &Value) -> String {
    match timestamp {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Encrypts `message` as OneAccess does: 16 random letters, `&`, the message; AES-128-GCM
/// with the 16 UTF-8 bytes of `key`, a random 12-byte IV, no AAD; standard Base64 of
/// `IV || ciphertext || tag`.
///
/// Panics if `key` is not 16 bytes long.
pub fn encrypt_data(key: &str, message: &str) -> String {
    try_encrypt(key, message).expect("the encryption key must be 16 bytes (AES-128)")
}

/// [`encrypt_data`] without the panic: `None` if `key` is not 16 bytes long.
pub(crate) fn try_encrypt(key: &str, message: &str) -> Option<String> {
    let key = aes_key(key)?;
    let mut iv = [0u8; NONCE_LEN];
    iv.copy_from_slice(&random_bytes(NONCE_LEN));
    let mut buf = random_letters(PREFIX_LEN).into_bytes();
    buf.push(b'&');
    buf.extend_from_slice(message.as_bytes());
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut buf)
        .ok()?;
    let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(&buf);
    Some(STANDARD.encode(out))
}

/// Decrypts `data` made by [`encrypt_data`] (or by an application answering in
/// encrypted mode) and returns the message: the plaintext after its first `&`. `None`
/// if `key` is not 16 bytes, `data` is not Base64, too short, fails authentication
/// (tampered, other key), is not UTF-8, or has no `&`.
pub fn decrypt_data(key: &str, data: &str) -> Option<String> {
    let key = aes_key(key)?;
    let raw = STANDARD.decode(data.trim()).ok()?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (iv, sealed) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(iv).ok()?;
    let mut sealed = sealed.to_vec();
    let plain = key.open_in_place(nonce, Aad::empty(), &mut sealed).ok()?;
    let text = std::str::from_utf8(plain).ok()?;
    // Everything up to the first '&' is the random prefix; the message may contain '&'.
    text.split_once('&').map(|(_, message)| message.to_string())
}

/// `Base64(HMAC-SHA256(key, nonce & timestamp & eventType & data))`, standard Base64,
/// keyed with the UTF-8 bytes of `key`; `timestamp` as its digits, `data` as sent.
pub fn sign(key: &str, nonce: &str, timestamp: &str, event_type: &str, data: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let message = format!("{nonce}&{timestamp}&{event_type}&{data}");
    STANDARD.encode(hmac::sign(&key, message.as_bytes()).as_ref())
}

/// An AES-128-GCM key from the UTF-8 bytes of `key`, if there are exactly 16.
fn aes_key(key: &str) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_128_GCM, key.as_bytes())
        .ok()
        .map(LessSafeKey::new)
}

/// A random nonce: 32 ASCII letters and digits.
pub(crate) fn random_nonce() -> String {
    random_from(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        NONCE_CHARS,
    )
}

/// `n` random ASCII letters.
pub(crate) fn random_letters(n: usize) -> String {
    random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", n)
}

/// `n` characters drawn uniformly from `alphabet` (at most 256 symbols): bytes at or
/// above the largest multiple of its length are dropped, so no symbol is favoured.
fn random_from(alphabet: &[u8], n: usize) -> String {
    let len = alphabet.len();
    let limit = 256 - 256 % len;
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in random_bytes(n) {
            if usize::from(b) < limit && out.len() < n {
                out.push(char::from(alphabet[usize::from(b) % len]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef";

    #[test]
    fn round_trip_and_tampering() {
        let data = encrypt_data(KEY, "{\"a\":\"x&y\"}");
        assert_eq!(decrypt_data(KEY, &data).as_deref(), Some("{\"a\":\"x&y\"}"));
        let raw = STANDARD.decode(&data).unwrap();
        assert_eq!(raw.len(), 12 + 16 + 1 + 11 + 16);
        for i in [0, 12, raw.len() - 1] {
            let mut bad = raw.clone();
            bad[i] ^= 1;
            assert_eq!(decrypt_data(KEY, &STANDARD.encode(bad)), None, "byte {i}");
        }
        assert_eq!(decrypt_data("fedcba9876543210", &data), None);
        assert_eq!(decrypt_data("short", &data), None);
        assert_eq!(decrypt_data(KEY, "not base64!"), None);
        assert_eq!(decrypt_data(KEY, "AAAA"), None);
        assert!(try_encrypt("short", "x").is_none());
    }

    #[test]
    fn signature_vector() {
        // Computed independently (Python's hmac and base64 modules).
        assert_eq!(
            sign(
                "sigkey0123456789",
                "nonce1",
                "1700000000000",
                "CHECK_URL",
                "hello"
            ),
            "Sp0SVZEdZgmDXF5CLMSqUKWLar6F72M2D19NLH0m4HI="
        );
    }

    #[test]
    fn sealing() {
        let mut settings = EventSettings::new("http://x/cb", "t");
        let plain = seal_event_with(&settings, "CHECK_URL", "abc", "n1", json!(1700000000000u64));
        assert_eq!(
            plain,
            json!({"nonce": "n1", "timestamp": 1700000000000u64, "eventType": "CHECK_URL",
                   "data": "abc", "signature": ""})
        );
        settings.signature_key = Some("sigkey-0123456789".into());
        settings.encryption_key = Some(KEY.into());
        let sealed = seal_event_with(&settings, "CHECK_URL", "abc", "n1", json!("1700000000000"));
        let data = sealed["data"].as_str().unwrap();
        assert_eq!(decrypt_data(KEY, data).as_deref(), Some("abc"));
        assert_eq!(
            sealed["signature"],
            sign(
                "sigkey-0123456789",
                "n1",
                "1700000000000",
                "CHECK_URL",
                data
            )
        );
        let fresh = seal_event(&settings, "CHECK_URL", "abc");
        let nonce = fresh["nonce"].as_str().unwrap();
        assert_eq!(nonce.len(), 32);
        assert!(nonce.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(fresh["timestamp"].as_u64().unwrap().to_string().len(), 13);
    }

    #[test]
    fn timestamp_styles() {
        assert_eq!(TimestampStyle::Seconds.now().to_string().len(), 10);
        assert_eq!(TimestampStyle::Millis.now().to_string().len(), 13);
        let s = TimestampStyle::MillisString.now();
        assert_eq!(s.as_str().unwrap().len(), 13);
    }

    #[test]
    fn letters() {
        let s = random_letters(16);
        assert_eq!(s.len(), 16);
        assert!(s.bytes().all(|b| b.is_ascii_alphabetic()));
    }
}
