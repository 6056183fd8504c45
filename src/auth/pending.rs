//! A login in flight: state, nonce, PKCE verifier and where to return, sealed into a
//! short-lived cookie named after its state. Each tab's login has its own cookie, so
//! two tabs logging in at once do not clobber each other.

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::session::SealError;

/// Length of the state prefix that names the cookie. 16 base64url characters are
/// 96 random bits: enough to tell a user's few pending logins apart.
pub(crate) const COOKIE_ID_LEN: usize = 16;

#[derive(Debug, Serialize, Deserialize)]
pub struct PendingLogin {
    #[serde(rename = "s")]
    state: Secret<String>,
    #[serde(rename = "n")]
    nonce: Secret<String>,
    #[serde(rename = "v")]
    verifier: Secret<String>,
    /// Where to send the user afterwards: a path, or an allowed absolute URL.
    #[serde(rename = "r")]
    pub(crate) return_to: String,
    /// The route origin the login started on; the redirect URI is built from it.
    #[serde(rename = "o")]
    pub origin: String,
    /// Unix seconds; the cookie is refused after the pending-login TTL.
    #[serde(rename = "t")]
    pub created: u64,
    /// The route the login started on (its index in the config) and that route's
    /// realm: the callback finishes with that route's protocol and client, and
    /// refuses if the route no longer has that realm.
    #[serde(rename = "i")]
    pub route: usize,
    #[serde(rename = "m")]
    pub realm: crate::config::Realm,
    /// The login asked the IdP for a fresh sign-in (CAS `renew`, OIDC
    /// `prompt=login`): the callback checks the IdP did (CAS validates with
    /// `renew=true`), and the session is marked as made so.
    #[serde(rename = "w", default)]
    pub renew: bool,
}

impl PendingLogin {
    pub fn new(
        return_to: String,
        origin: String,
        route: usize,
        realm: crate::config::Realm,
        now: u64,
    ) -> Result<PendingLogin, SealError> {
        Ok(PendingLogin {
            state: Secret::new(random_token()?),
            nonce: Secret::new(random_token()?),
            verifier: Secret::new(random_token()?),
            return_to,
            origin,
            created: now,
            route,
            realm,
            renew: false,
        })
    }

    pub fn state(&self) -> &str {
        self.state.expose()
    }

    pub fn nonce(&self) -> &str {
        self.nonce.expose()
    }

    pub fn verifier(&self) -> &str {
        self.verifier.expose()
    }

    /// The part of the state that names this login's cookie.
    pub(crate) fn cookie_id(&self) -> &str {
        cookie_id(self.state.expose())
    }

    /// PKCE S256: BASE64URL(SHA256(verifier)).
    pub(crate) fn code_challenge(&self) -> String {
        let d = digest::digest(&digest::SHA256, self.verifier.expose().as_bytes());
        URL_SAFE_NO_PAD.encode(d.as_ref())
    }
}

/// The cookie id of a state value, or the whole value when it is shorter (such a
/// state matches no cookie the gateway made).
pub(crate) fn cookie_id(state: &str) -> &str {
    state.get(..COOKIE_ID_LEN).unwrap_or(state)
}

/// A random token: 43 characters, within what RFC 7636 allows a verifier.
fn random_token() -> Result<String, SealError> {
    crate::secret::random_token().map_err(|_| SealError::Random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_values_and_rfc7636_challenge() {
        let a = PendingLogin::new(
            "/x".into(),
            "http://h".into(),
            0,
            "oidc:c".parse().expect("realm"),
            1,
        )
        .expect("new");
        let b = PendingLogin::new(
            "/x".into(),
            "http://h".into(),
            0,
            "oidc:c".parse().expect("realm"),
            1,
        )
        .expect("new");
        assert_ne!(a.state(), b.state());
        assert_ne!(a.nonce(), a.state());
        assert_eq!(a.verifier().len(), 43);
        assert_eq!(a.cookie_id().len(), COOKIE_ID_LEN);
        // RFC 7636 appendix B.
        let rfc = PendingLogin {
            verifier: Secret::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into()),
            ..a
        };
        assert_eq!(
            rfc.code_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn debug_hides_the_secrets() {
        let a = PendingLogin::new(
            "/x".into(),
            "http://h".into(),
            0,
            "oidc:c".parse().expect("realm"),
            1,
        )
        .expect("new");
        let dump = format!("{a:?}");
        assert!(!dump.contains(a.state()));
        assert!(!dump.contains(a.nonce()));
    }
}
