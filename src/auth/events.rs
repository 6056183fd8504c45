//! OneAccess's user-change events (synchronization, API mode) as the receiving
//! application checks and reads them: the Bearer token, the envelope's shape,
//! its timestamp window, its HMAC-SHA256 signature, AES-GCM decryption, and the
//! event inside; and the answer, encrypted like the requests. Pure: the nonce
//! check (in the shared store) and what an event does are `gateway::events`'s.
//! The wire format and what OneAccess leaves open: `shared/oneaccess/EVENTS.md`.

use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes128;
use aes_gcm::AesGcm;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::config::{EventSettings, IvAt};

/// The AES-GCM tag: 16 bytes, Java's default for `AES/GCM/NoPadding`.
const TAG: usize = 16;

/// The random prefix OneAccess puts before the message (16 letters, then `&`).
const PREFIX_LETTERS: usize = 16;

/// The longest nonce taken: it becomes a store key.
const MAX_NONCE: usize = 128;

/// The longest id OneAccess keeps for an application's user.
pub(crate) const MAX_ID: usize = 50;

/// Why an event is refused: the HTTP status (also OneAccess's `code`), a fixed
/// outcome for metrics and logs, and the message sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub outcome: &'static str,
    pub message: &'static str,
}

const fn refused(status: u16, outcome: &'static str, message: &'static str) -> Refusal {
    Refusal {
        status,
        outcome,
        message,
    }
}

pub(crate) const TOO_LARGE: Refusal = refused(413, "too_large", "request body too large");
pub(crate) const BAD_TOKEN: Refusal = refused(401, "bad_token", "authentication failed");
pub(crate) const BAD_SHAPE: Refusal = refused(400, "bad_request", "bad parameter");
pub(crate) const STALE: Refusal = refused(401, "stale", "timestamp outside the accepted window");
pub(crate) const BAD_SIGNATURE: Refusal =
    refused(401, "bad_signature", "signature verification failed");
pub(crate) const REPLAYED: Refusal = refused(401, "replayed", "nonce already used");
pub(crate) const UNDECRYPTABLE: Refusal =
    refused(400, "bad_ciphertext", "data cannot be decrypted");
pub(crate) const UNKNOWN_EVENT: Refusal = refused(400, "unknown_event", "unknown eventType");
pub(crate) const BAD_EVENT: Refusal =
    refused(400, "bad_event", "missing or invalid fields in data");
pub(crate) const BUSY: Refusal = refused(500, "unavailable", "busy, try again later");

/// The event types OneAccess documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    CheckUrl,
    CreateUser,
    UpdateUser,
    DeleteUser,
    CreateOrganization,
    UpdateOrganization,
    DeleteOrganization,
}

impl EventType {
    const ALL: [EventType; 7] = [
        EventType::CheckUrl,
        EventType::CreateUser,
        EventType::UpdateUser,
        EventType::DeleteUser,
        EventType::CreateOrganization,
        EventType::UpdateOrganization,
        EventType::DeleteOrganization,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CheckUrl => "CHECK_URL",
            EventType::CreateUser => "CREATE_USER",
            EventType::UpdateUser => "UPDATE_USER",
            EventType::DeleteUser => "DELETE_USER",
            EventType::CreateOrganization => "CREATE_ORGANIZATION",
            EventType::UpdateOrganization => "UPDATE_ORGANIZATION",
            EventType::DeleteOrganization => "DELETE_ORGANIZATION",
        }
    }

    fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A request whose token, shape, timestamp and signature are good.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub nonce: String,
    /// The event type as sent (a known one, or `None`: refused after the nonce).
    pub event_type: Option<EventType>,
    data: String,
}

/// What an event says, once decrypted and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Answer with the same string.
    CheckUrl(String),
    /// Answer with the id later events will name the user by.
    CreateUser {
        username: String,
    },
    /// `disabled` is `None` when the event leaves it unchanged.
    UpdateUser {
        id: String,
        username: Option<String>,
        disabled: Option<bool>,
    },
    DeleteUser {
        id: String,
    },
    /// Organizations: nothing to do; a created one is answered with its code.
    Organization {
        answer_id: Option<String>,
    },
}

/// Checks and reads events for one `[provider.events]`.
pub(crate) struct Receiver<'s> {
    settings: &'s EventSettings,
}

impl<'s> Receiver<'s> {
    pub(crate) fn new(settings: &'s EventSettings) -> Receiver<'s> {
        Receiver { settings }
    }

    /// Everything that needs no store, in OneAccess's order: body size, Bearer
    /// token, JSON shape, timestamp window, signature (over `data` as sent).
    /// `body` is `None` when it was larger than the limit.
    pub(crate) fn check(
        &self,
        bearer: Option<&str>,
        body: Option<&[u8]>,
        now_millis: u64,
    ) -> Result<Envelope, Refusal> {
        let body = body.ok_or(TOO_LARGE)?;
        if body.len() > self.settings.max_body {
            return Err(TOO_LARGE);
        }
        let token = bearer.ok_or(BAD_TOKEN)?;
        if !same_secret(token.as_bytes(), self.settings.token.expose().as_bytes()) {
            return Err(BAD_TOKEN);
        }
        let v: Map<String, Value> = serde_json::from_slice(body).map_err(|_| BAD_SHAPE)?;
        let text = |name: &str| v.get(name).and_then(Value::as_str).ok_or(BAD_SHAPE);
        let nonce = text("nonce")?;
        let event_type = text("eventType")?;
        let data = text("data")?;
        let signature = text("signature")?;
        if nonce.is_empty() || nonce.len() > MAX_NONCE || nonce.chars().any(char::is_control) {
            return Err(BAD_SHAPE);
        }
        let timestamp = timestamp_text(v.get("timestamp")).ok_or(BAD_SHAPE)?;
        let millis = timestamp_millis(&timestamp).ok_or(BAD_SHAPE)?;
        let window = self.settings.window.as_millis() as u64;
        if millis.abs_diff(now_millis) > window {
            return Err(STALE);
        }
        match &self.settings.signature_key {
            Some(key) => {
                let tag = STANDARD.decode(signature).map_err(|_| BAD_SIGNATURE)?;
                let message = format!("{nonce}&{timestamp}&{event_type}&{data}");
                let key = aws_lc_rs::hmac::Key::new(
                    aws_lc_rs::hmac::HMAC_SHA256,
                    key.expose().as_bytes(),
                );
                aws_lc_rs::hmac::verify(&key, message.as_bytes(), &tag)
                    .map_err(|_| BAD_SIGNATURE)?;
            }
            // OneAccess signs nothing without a key; a signature then means the
            // console and this gateway disagree, and nothing could check it.
            None if !signature.is_empty() => return Err(BAD_SIGNATURE),
            None => {}
        }
        Ok(Envelope {
            nonce: nonce.to_string(),
            event_type: EventType::parse(event_type),
            data: data.to_string(),
        })
    }

    /// The message in `data`: decrypted, without its random prefix, when
    /// encryption is on.
    pub(crate) fn message(&self, envelope: &Envelope) -> Result<String, Refusal> {
        let Some(key) = &self.settings.encryption_key else {
            return Ok(envelope.data.clone());
        };
        let raw = STANDARD
            .decode(envelope.data.trim_end_matches('='))
            .or_else(|_| STANDARD_NO_PAD.decode(envelope.data.trim_end_matches('=')))
            .map_err(|_| UNDECRYPTABLE)?;
        let iv = self.settings.iv_bytes;
        if raw.len() < iv + TAG {
            return Err(UNDECRYPTABLE);
        }
        let (nonce, sealed) = match self.settings.iv_at {
            IvAt::Start => (&raw[..iv], &raw[iv..]),
            IvAt::End => (&raw[raw.len() - iv..], &raw[..raw.len() - iv]),
        };
        let plain =
            aead(key.expose().as_bytes(), iv, |c| c.decrypt(nonce, sealed)).ok_or(UNDECRYPTABLE)?;
        let plain = String::from_utf8(plain).map_err(|_| UNDECRYPTABLE)?;
        // Everything up to the first `&` is the random prefix; the message may
        // itself hold `&`.
        plain
            .split_once('&')
            .map(|(_, m)| m.to_string())
            .ok_or(UNDECRYPTABLE)
    }

    /// An answer's `data`: as is in plain mode (a string or an object); when
    /// encryption is on, its text encrypted with a fresh prefix and IV. `None`
    /// only when the system's random generator fails.
    pub(crate) fn answer_data(&self, data: Value) -> Option<Value> {
        if self.settings.encryption_key.is_none() {
            return Some(data);
        }
        let text = match data {
            Value::String(s) => s,
            other => other.to_string(),
        };
        self.seal(&text).map(Value::String)
    }

    fn seal(&self, message: &str) -> Option<String> {
        let key = self.settings.encryption_key.as_ref()?;
        let mut letters = [0u8; PREFIX_LETTERS];
        crate::secret::random_bytes(&mut letters).ok()?;
        let mut plain: String = letters.iter().map(|b| char::from(b'a' + b % 26)).collect();
        plain.push('&');
        plain.push_str(message);
        let iv_len = self.settings.iv_bytes;
        let mut iv = vec![0u8; iv_len];
        crate::secret::random_bytes(&mut iv).ok()?;
        let sealed = aead(key.expose().as_bytes(), iv_len, |c| {
            c.encrypt(&iv, plain.as_bytes())
        })?;
        let out = match self.settings.iv_at {
            IvAt::Start => [iv.as_slice(), &sealed].concat(),
            IvAt::End => [sealed.as_slice(), &iv].concat(),
        };
        Some(STANDARD.encode(out))
    }
}

/// Runs `op` with AES-128-GCM under `key` for an IV of `iv_len` bytes (12 or 16;
/// a 16-byte IV is hashed into the counter as GCM specifies).
fn aead(
    key: &[u8],
    iv_len: usize,
    op: impl FnOnce(&dyn Cipher) -> Result<Vec<u8>, aes_gcm::Error>,
) -> Option<Vec<u8>> {
    let key = GenericArray::from_exact_iter(key.iter().copied())?;
    match iv_len {
        12 => op(&AesGcm::<Aes128, U12>::new(&key)).ok(),
        16 => op(&AesGcm::<Aes128, U16>::new(&key)).ok(),
        _ => None,
    }
}

/// AES-GCM with either IV length, behind one face.
trait Cipher {
    fn encrypt(&self, iv: &[u8], plain: &[u8]) -> Result<Vec<u8>, aes_gcm::Error>;
    fn decrypt(&self, iv: &[u8], sealed: &[u8]) -> Result<Vec<u8>, aes_gcm::Error>;
}

macro_rules! cipher_for {
    ($n:ty) => {
        impl Cipher for AesGcm<Aes128, $n> {
            fn encrypt(&self, iv: &[u8], plain: &[u8]) -> Result<Vec<u8>, aes_gcm::Error> {
                let iv = GenericArray::from_exact_iter(iv.iter().copied()).ok_or(aes_gcm::Error)?;
                Aead::encrypt(self, &iv, plain)
            }
            fn decrypt(&self, iv: &[u8], sealed: &[u8]) -> Result<Vec<u8>, aes_gcm::Error> {
                let iv = GenericArray::from_exact_iter(iv.iter().copied()).ok_or(aes_gcm::Error)?;
                Aead::decrypt(self, &iv, sealed)
            }
        }
    };
}
cipher_for!(U12);
cipher_for!(U16);

/// Compares two secrets in constant time, their lengths included (both hashed
/// first).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let h = |x: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, x);
    crate::secret::ct_eq(h(a).as_ref(), h(b).as_ref())
}

/// The timestamp as its digits: a JSON integer, or a string of digits.
fn timestamp_text(v: Option<&Value>) -> Option<String> {
    let text = match v? {
        Value::Number(n) => n.as_u64()?.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

/// Unix milliseconds of a timestamp: 13 digits are milliseconds, 10 seconds.
fn timestamp_millis(digits: &str) -> Option<u64> {
    let n: u64 = digits.parse().ok()?;
    match digits.len() {
        13 => Some(n),
        10 => n.checked_mul(1000),
        _ => None,
    }
}

/// Reads the decrypted message of an event.
pub fn read_event(event_type: EventType, message: &str) -> Result<Event, Refusal> {
    if event_type == EventType::CheckUrl {
        return Ok(Event::CheckUrl(message.to_string()));
    }
    let v: Map<String, Value> = serde_json::from_str(message).map_err(|_| BAD_EVENT)?;
    let text = |name: &str| -> Result<Option<String>, Refusal> {
        match v.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Err(BAD_EVENT),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(BAD_EVENT),
        }
    };
    let id = |name: &str| -> Result<String, Refusal> {
        let id = text(name)?.ok_or(BAD_EVENT)?;
        if id.chars().count() > MAX_ID || id.chars().any(char::is_control) {
            return Err(BAD_EVENT);
        }
        Ok(id)
    };
    Ok(match event_type {
        EventType::CheckUrl => Event::CheckUrl(message.to_string()),
        // The username is the id this gateway answers: later events then name
        // the user by what sessions know them by, with no mapping to keep.
        EventType::CreateUser => Event::CreateUser {
            username: id("username")?,
        },
        EventType::UpdateUser => Event::UpdateUser {
            id: id("id")?,
            username: text("username")?,
            disabled: match v.get("disabled") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(Value::String(s)) if s == "true" => Some(true),
                Some(Value::String(s)) if s == "false" => Some(false),
                Some(_) => return Err(BAD_EVENT),
            },
        },
        EventType::DeleteUser => Event::DeleteUser { id: id("id")? },
        EventType::CreateOrganization => Event::Organization {
            answer_id: text("code")?,
        },
        EventType::UpdateOrganization | EventType::DeleteOrganization => {
            Event::Organization { answer_id: None }
        }
    })
}

/// An answer body in OneAccess's shape: `{"code", "message", "data"?}`, the code
/// being the HTTP status as a string.
pub(crate) fn answer_body(status: u16, message: &str, data: Option<Value>) -> Vec<u8> {
    let mut body = json!({"code": status.to_string(), "message": message});
    if let Some(d) = data {
        body["data"] = d;
    }
    body.to_string().into_bytes()
}

#[cfg(test)]
mod tests;
