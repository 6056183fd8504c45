//! The session: who the user is and until when, sealed into a cookie. Knows no
//! protocol; `auth` hands it an `Identity`.

pub mod cookie;
pub mod seal;

use serde::{Deserialize, Serialize};

use crate::identity::Identity;
pub use seal::{SealError, Sealer};

/// What the session cookie carries. Short field names keep the cookie small.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionData {
    #[serde(rename = "u")]
    pub identity: Identity,
    /// Issued at (unix seconds).
    #[serde(rename = "i")]
    pub issued_at: u64,
    /// Absolute end (unix seconds): the session is over then, whatever happens.
    #[serde(rename = "e")]
    pub expires_at: u64,
    /// The realm of the route that made it (`oidc:client`, `oauth2:client`, `cas`):
    /// only routes of the same realm accept it, and logout follows its protocol.
    #[serde(rename = "r")]
    pub realm: String,
    /// The raw ID token, kept only when logout sends it as `id_token_hint`.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<crate::secret::Secret<String>>,
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

/// Seals a session for the cookie `name`.
pub fn seal(sealer: &Sealer, name: &str, data: &SessionData) -> Result<String, SealError> {
    // Serializing a struct of strings and integers cannot fail.
    let plain = serde_json::to_vec(data).unwrap_or_default();
    sealer.seal(name, &plain)
}

/// Opens and checks a session cookie value. Authenticates before parsing: a value
/// that fails the AEAD tag is never handed to the JSON parser.
pub fn open(
    sealer: &Sealer,
    name: &str,
    value: &str,
    now: u64,
) -> Result<SessionData, SessionError> {
    let plain = sealer.open(name, value)?;
    let data: SessionData = serde_json::from_slice(&plain).map_err(|_| SessionError::Format)?;
    if now >= data.expires_at {
        return Err(SessionError::Expired);
    }
    Ok(data)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn data(exp: u64) -> SessionData {
        SessionData {
            identity: Identity {
                sub: "u1".into(),
                claims: vec![("email".into(), "a@example.com".into())],
            },
            issued_at: 100,
            expires_at: exp,
            realm: "oidc:c".into(),
            id_token: None,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let s = Sealer::new(&[Secret::new([7; 32])]);
        let v = seal(&s, "sess", &data(200)).expect("seal");
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
