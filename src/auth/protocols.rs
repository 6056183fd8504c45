//! The protocol clients of one gateway, built once for the protocols its routes
//! use, and each protected route's `Login`: its protocol's client with the
//! route's own application (OIDC, OAuth2) or settings (CAS). A route gets its
//! `Login` when the gateway is built, so no request can meet a route without one.

use std::sync::Arc;

use super::http::HttpClient;
use super::{CasClient, OAuth2Client, OidcClient};
use crate::config::{CasSettings, ClientCredentials, Config, Protocol, RouteAuth};

/// How a protected route logs its users in.
#[derive(Clone)]
pub enum Login {
    Oidc(Arc<OidcClient>, ClientCredentials),
    OAuth2(Arc<OAuth2Client>, ClientCredentials),
    Cas(Arc<CasClient>, CasSettings),
}

impl std::fmt::Debug for Login {
    /// The protocol and the application: the clients hold caches, not settings.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::Oidc(_, app) => write!(f, "Oidc({})", app.client_id),
            Login::OAuth2(_, app) => write!(f, "OAuth2({})", app.client_id),
            Login::Cas(_, settings) => write!(f, "Cas({settings:?})"),
        }
    }
}

/// One client per protocol some route uses; shared by those routes, so that
/// discovery, keys and caches are fetched once.
#[derive(Default)]
pub(crate) struct Protocols {
    pub oidc: Option<Arc<OidcClient>>,
    pub oauth2: Option<Arc<OAuth2Client>>,
    pub cas: Option<Arc<CasClient>>,
}

impl Protocols {
    /// The clients of the protocols `config`'s routes use. Does no network I/O.
    pub(crate) fn new(config: &Config, http: &Arc<dyn HttpClient>) -> Protocols {
        let Some(p) = &config.provider else {
            return Protocols::default();
        };
        let uses = |wanted: Protocol| config.routes.iter().any(|r| r.protocol() == wanted);
        Protocols {
            oidc: uses(Protocol::Oidc).then(|| Arc::new(OidcClient::new(p.clone(), http.clone()))),
            oauth2: uses(Protocol::OAuth2).then(|| Arc::new(OAuth2Client::new(p, http.clone()))),
            cas: uses(Protocol::Cas).then(|| Arc::new(CasClient::new(&p.base_url, http.clone()))),
        }
    }

    /// The login of a route with `auth`: `Ok(None)` for a public route, an
    /// error for a protocol without a client (a config without a provider,
    /// which validation refuses before this).
    pub(crate) fn login(&self, auth: &RouteAuth) -> Result<Option<Login>, String> {
        let missing = |p: &str| format!("a {p} route and no [provider]");
        Ok(Some(match auth {
            RouteAuth::Public => return Ok(None),
            RouteAuth::Oidc(app) => Login::Oidc(
                self.oidc.clone().ok_or_else(|| missing("oidc"))?,
                app.clone(),
            ),
            RouteAuth::OAuth2(app) => Login::OAuth2(
                self.oauth2.clone().ok_or_else(|| missing("oauth2"))?,
                app.clone(),
            ),
            RouteAuth::Cas(settings) => {
                Login::Cas(self.cas.clone().ok_or_else(|| missing("cas"))?, *settings)
            }
        }))
    }
}
