//! What the app behind a route is told about the user: the mapped identity
//! headers, the user's token as `Authorization: Bearer`, and the signed identity
//! assertion. One place, for the proxy and for forward auth alike.

use http::{HeaderName, HeaderValue};

use super::Gateway;
use crate::assertion::Signer;
use crate::config::PassToken;
use crate::identity::{header_values, Identity, MissingValue};
use crate::reply::{Answer, Reply};
use crate::route::Route;
use crate::secret::Secret;

/// The tokens a request can pass on: a session's, or an API client's own bearer.
#[derive(Clone, Copy, Default)]
pub struct Tokens<'a> {
    pub access: Option<&'a Secret<String>>,
    pub id: Option<&'a Secret<String>>,
}

/// What the app is told, and what that may touch.
#[derive(Clone, Copy)]
pub(crate) struct Upstream<'g> {
    /// The assertion's issuer.
    public_origin: &'g str,
    signer: Option<&'g Signer>,
}

impl Gateway {
    pub(crate) fn upstream(&self) -> Upstream<'_> {
        Upstream {
            public_origin: &self.config.server.public_origin,
            signer: self.signer.as_deref(),
        }
    }
}

impl<'g> Upstream<'g> {
    /// The headers to set upstream for `identity` on `route`, or the 403 that
    /// refuses the request when a `missing = "reject"` rule finds nothing (as
    /// JSON when `api` says the client is no browser).
    pub(crate) fn upstream_headers(
        &self,
        route: &Route,
        identity: &Identity,
        tokens: Tokens<'_>,
        api: impl FnOnce() -> bool,
        now: u64,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, Reply> {
        let mut out = header_values(&route.spec.headers, identity).map_err(|MissingValue(h)| {
            tracing::info!(route = %route.label, header = %h, user = %identity.sub, "refused: a required identity value is missing");
            Answer::MissingAttribute.reply(api())
        })?;
        if let Some(kind) = route.spec.pass_token {
            let token = match kind {
                PassToken::Access => tokens.access,
                PassToken::Id => tokens.id,
            };
            // A session from before the route asked for tokens has none: the app
            // then gets no Authorization header rather than the client's own.
            if let Some(v) = token.and_then(|t| bearer_value(t.expose())) {
                out.push((http::header::AUTHORIZATION, v));
            }
        }
        if route.spec.assertion {
            let jwt = self
                .signer
                .and_then(|s| s.assert(self.public_origin, &route.spec.origin, identity, now));
            if let Some(v) = jwt.and_then(|j| HeaderValue::try_from(j).ok()) {
                out.push((HeaderName::from_static(crate::assertion::HEADER), v));
            }
        }
        Ok(out)
    }

    /// The JWKS that verifies identity assertions, when some route sends them.
    pub(crate) fn assertion_jwks(&self) -> Option<&'g str> {
        self.signer.map(|s| s.jwks())
    }
}

fn bearer_value(token: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::try_from(format!("Bearer {token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}
