//! The session: who the user is and until when, sealed into a cookie. Knows no
//! protocol; `auth` hands it an `Identity`.

mod cache;
pub mod cookie;
pub mod lifecycle;
pub mod record;
pub mod seal;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::identity::Identity;
pub(crate) use lifecycle::Renewal;
pub use lifecycle::{ticket_hash, NewSession, Sessions};
pub(crate) use seal::SealError;
pub use seal::Sealer;

/// What the session cookie carries. Short field names keep the cookie small.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionData {
    #[serde(rename = "u")]
    pub identity: Identity,
    /// Issued at (unix seconds).
    #[serde(rename = "i")]
    pub issued_at: u64,
    /// The milliseconds within `issued_at`'s second, so that a revocation made
    /// earlier in the same second as a login leaves that login alone. Three
    /// digits at most in the cookie; absent (0: the second's start, where every
    /// revocation of that second reaches) in older sessions.
    #[serde(rename = "m", default, skip_serializing_if = "is_zero_u16")]
    pub issued_ms: u16,
    /// Absolute end (unix seconds): the session is over then, whatever happens.
    #[serde(rename = "e")]
    pub expires_at: u64,
    /// The realm of the route that made it (`oidc:client`, `oauth2:client`, `cas`):
    /// only routes of the same realm accept it, and logout follows its protocol.
    #[serde(rename = "r")]
    pub realm: crate::config::Realm,
    /// The raw ID token, kept only when logout sends it as `id_token_hint`.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<crate::secret::Secret<String>>,
    /// This session's own random id: the server-mode store key, and what a logout
    /// revokes in cookie mode so a copied cookie dies with it.
    #[serde(rename = "k", default)]
    pub id: String,
    /// The IdP's session id (`sid` of the ID token), for back-channel logout.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Hash of the CAS service ticket that made it, for CAS single logout.
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub ticket_hash: Option<String>,
    /// Last use (unix seconds), for the idle timeout of cookie-mode sessions.
    #[serde(rename = "l", default)]
    pub last_seen: u64,
    /// When the access token ends (unix seconds), if the IdP said.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub access_expires: Option<u64>,
    /// The refresh token, when there is one and the session is not minimal.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<crate::secret::Secret<String>>,
    /// The access token, kept only when a route passes it upstream.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<crate::secret::Secret<String>>,
    /// How many times its tokens were refreshed: each generation is refreshed
    /// once, by one request for all (the expiry alone repeats within a second).
    #[serde(rename = "g", default, skip_serializing_if = "is_zero")]
    pub generation: u32,
    /// Made by a fresh sign-in that the IdP confirmed (CAS `renew`): only such a
    /// session opens a route with `renew = true`.
    #[serde(rename = "w", default, skip_serializing_if = "std::ops::Not::not")]
    pub renewed: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}

impl SessionData {
    /// Whether its tokens are due for refresh: it has a refresh token, and the
    /// access token ends within `margin` seconds of `now`.
    pub(crate) fn refresh_due(&self, now: u64, margin: u64) -> bool {
        self.refresh_token.is_some() && self.access_expires.is_some_and(|x| now + margin >= x)
    }

    /// When it was issued, in unix milliseconds.
    pub(crate) fn issued_millis(&self) -> u64 {
        self.issued_at
            .saturating_mul(1000)
            .saturating_add(u64::from(self.issued_ms.min(999)))
    }
}

/// `now` (unix seconds, as the request path read the clock) in milliseconds:
/// the clock's own while it is still in that second, else the second's end.
/// A revocation then covers all of that second. A session made after its
/// request's second ended (a callback's code exchange can outlast it) comes
/// after every revocation made before the request began; stamping it with the
/// second's start instead put it before them, and refused a user who logged in
/// again within the second of a revocation.
pub(crate) fn millis_of(now: u64) -> u64 {
    let ms = now_millis();
    if ms / 1000 == now {
        ms
    } else {
        now.saturating_mul(1000).saturating_add(999)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("cannot open: {0}")]
    Seal(#[from] SealError),
    #[error("not a session record")]
    Format,
    #[error("expired")]
    Expired,
}

/// Seals a session for the cookie `name`, its record written in `format`.
pub fn seal(
    sealer: &Sealer,
    name: &str,
    data: &SessionData,
    format: record::RecordFormat,
) -> Result<String, SealError> {
    sealer.seal(name, &record::encode(data, format))
}

/// Opens and checks a session cookie value. Authenticates before parsing: a value
/// that fails the AEAD tag is never handed to the record's reader.
pub fn open(
    sealer: &Sealer,
    name: &str,
    value: &str,
    now: u64,
) -> Result<SessionData, SessionError> {
    let plain = sealer.open(name, value)?;
    let data = record::decode(&plain).map_err(|_| SessionError::Format)?;
    if now >= data.expires_at {
        return Err(SessionError::Expired);
    }
    Ok(data)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A small session for unit tests: user `u1` with an e-mail claim, issued at
/// 100, with the id `id`, ending at `expires_at`.
#[cfg(test)]
pub(crate) fn test_session(id: &str, expires_at: u64) -> SessionData {
    SessionData {
        identity: Identity {
            sub: "u1".into(),
            claims: vec![("email".into(), "a@example.com".into())],
        },
        issued_at: 100,
        issued_ms: 0,
        expires_at,
        realm: crate::config::Realm::Oidc("c".into()),
        id_token: None,
        id: id.into(),
        sid: None,
        ticket_hash: None,
        last_seen: 100,
        access_expires: None,
        refresh_token: None,
        access_token: None,
        generation: 0,
        renewed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn data(exp: u64) -> SessionData {
        test_session("k1", exp)
    }

    #[test]
    fn round_trip_and_expiry() {
        let s = Sealer::new(&[Secret::new([7; 32])]);
        let v = seal(&s, "sess", &data(200), record::RecordFormat::Binary).expect("seal");
        assert_eq!(open(&s, "sess", &v, 150).expect("open"), data(200));
        assert_eq!(open(&s, "sess", &v, 200), Err(SessionError::Expired));
        assert!(matches!(
            open(&s, "other", &v, 150),
            Err(SessionError::Seal(_))
        ));
    }

    #[test]
    fn sealed_garbage_is_a_format_error() {
        let s = Sealer::new(&[Secret::new([7; 32])]);
        let v = s.seal("sess", b"{not json").expect("seal");
        assert_eq!(open(&s, "sess", &v, 0), Err(SessionError::Format));
    }
}
