//! API clients that bring `Authorization: Bearer <JWT>` instead of a session
//! cookie. The token is verified like an ID token (minus the nonce) and then
//! stands in for a session for one request: the route's policy and headers apply
//! as to a browser user. Never a redirect: a bad token is a 401.

use http::request::Parts;

use super::keep::Keep;
use super::verdict::Access;
use super::Gateway;
use crate::auth::OidcClient;
use crate::error::{AuthError, StoreError};
use crate::identity::Identity;
use crate::reply::Reply;
use crate::route::Route;
use crate::secret::Secret;
use crate::session::{SessionData, Sessions};

/// Bearer tokens, and what they may touch.
#[derive(Clone, Copy)]
pub(super) struct Bearers<'g> {
    keep: &'g Keep,
    /// A revoked user's tokens are refused too.
    sessions: &'g Sessions,
}

impl Gateway {
    pub(super) fn bearers(&self) -> Bearers<'_> {
        Bearers {
            keep: &self.keep,
            sessions: &self.sessions,
        }
    }
}

impl Bearers<'_> {
    /// The verdict on a request that carries a bearer token, on an OIDC route
    /// that takes them (only those may: `config::validate`).
    pub(super) async fn access(
        &self,
        oidc: &OidcClient,
        route: &Route,
        token: &str,
        now: u64,
    ) -> Result<Access, StoreError> {
        let audiences: Vec<&str> = route
            .spec
            .bearer_audiences
            .iter()
            .map(String::as_str)
            .collect();
        let claims = match oidc.verify_bearer(token, &audiences).await {
            Ok(c) => c,
            Err(e @ AuthError::IdpUnavailable(_)) => {
                tracing::warn!(route = %route.label, error = %e, "bearer token not checked: the identity provider is unavailable");
                return Ok(Access::Refused(Reply::for_auth_error_to(&e, true)));
            }
            Err(e) => {
                tracing::info!(route = %route.label, error = %e, "bearer token refused");
                return Ok(Access::Refused(Reply::bearer_challenge(
                    "invalid_token",
                    "The bearer token is not valid for this resource.",
                )));
            }
        };
        let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
        let int = |name: &str| claims.get(name).and_then(serde_json::Value::as_u64);
        let sub = text("sub").unwrap_or_default().to_string();
        let token = Secret::new(token.to_string());
        let data = SessionData {
            identity: Identity::from_claims(sub, &claims, &self.keep.claims),
            issued_at: int("iat").unwrap_or(now),
            issued_ms: 0,
            expires_at: int("exp").unwrap_or(now),
            realm: route.spec.realm.clone(),
            id_token: Some(token.clone()),
            id: String::new(),
            sid: text("sid").map(str::to_string),
            ticket_hash: None,
            last_seen: now,
            access_expires: None,
            refresh_token: None,
            access_token: Some(token),
            generation: 0,
            renewed: false,
        };
        // A global logout revokes the user's tokens too, as it does cookie sessions.
        if self.sessions.is_revoked(&data).await? {
            tracing::info!(route = %route.label, user = %data.identity.sub, "bearer token of a logged-out session");
            return Ok(Access::Refused(Reply::bearer_challenge(
                "invalid_token",
                "The bearer token belongs to a session that has ended.",
            )));
        }
        Ok(Access::Granted(data, Vec::new()))
    }
}

/// The bearer token of a request, if it has one (`Bearer`, any case).
pub(crate) fn bearer_token(parts: &Parts) -> Option<&str> {
    let v = parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
