//! The gateway of one configuration and its decisions about one request, without
//! Pingora: who the user is, whether to log them in (OIDC, OAuth2 or CAS, per
//! route), and the callback, logout and event endpoints. Each concern is a small
//! type in its own file (`login.rs`: `Logins`, …) that borrows only the parts
//! it needs; each takes the request's `http::request::Parts` and answers with
//! data, so tests drive it without a server.

use std::sync::Arc;

use http::request::Parts;
use http::HeaderName;

use crate::auth::http::{HttpClient, Metered, Offline, ReqwestClient};
use crate::config::{Config, StoreSettings};
use crate::error::{AuthError, StartupError};
use crate::front_door::FrontDoor;
use crate::identity::ManagedHeaders;
use crate::metrics::{Gauges, Metrics};
use crate::route::Router;
use crate::session::store::{self, Store};
use crate::session::{cookie, Sessions};

mod authorize;
mod bearer;
mod events;
mod forward_auth;
mod idp;
mod keep;
mod login;
mod logout;
mod refresh;
mod upstream;
mod verdict;

pub(crate) use bearer::bearer_token;
pub use events::Events;
pub use upstream::Tokens;
pub(crate) use verdict::Verdict;
pub use verdict::{Access, Pass};

pub use crate::session::NewSession;
use idp::Idp;
use keep::Keep;

/// The client that talks to the identity provider; `Offline` without one.
fn provider_client(config: &Config) -> Result<Arc<dyn HttpClient>, StartupError> {
    Ok(match &config.provider {
        Some(p) => Arc::new(ReqwestClient::new(p.http_timeout).map_err(StartupError::Server)?),
        None => Arc::new(Offline),
    })
}

/// Whether two store settings name the same store (a reload then keeps it).
fn same_store(a: &StoreSettings, b: &StoreSettings) -> bool {
    match (a, b) {
        (StoreSettings::Memory, StoreSettings::Memory) => true,
        (StoreSettings::Embedded { dir: d1 }, StoreSettings::Embedded { dir: d2 }) => d1 == d2,
        // The same servers, credentials, certificates and prefix: a changed
        // password or CA makes a new store, which connects with it.
        (StoreSettings::Redis(r1), StoreSettings::Redis(r2)) => r1 == r2,
        _ => false,
    }
}

/// One configuration's gateway: its routes, sessions and identity provider. The
/// work on a request is done by a small type per concern (`Logins`, `Logouts`,
/// `Events`, `Judge`, `ForwardAuth`, `Upstream`, and inside the judge
/// `Refresher`, `Bearers`, `Authorizer`), each borrowing only the parts it
/// needs: its constructor here shows what its file may touch.
pub struct Gateway {
    pub config: Config,
    pub router: Router,
    pub managed: ManagedHeaders,
    /// The protocol clients, the management API and the provider's health.
    idp: Idp,
    /// What a new session keeps of a login.
    keep: Keep,
    /// Signs identity assertions, when a route sends them.
    signer: Option<Arc<crate::assertion::Signer>>,
    /// Sessions: read, issued, renewed and ended, in the store (server-mode
    /// records, revocations), which also keeps the single-use states, tickets and
    /// logout-token ids: shared by every gateway when it is Redis.
    sessions: Sessions,
    /// Counters; shared with the gateway a reload replaces this one with.
    pub metrics: Arc<Metrics>,
}

/// What a reloaded gateway takes over from the one it replaces, so that a reload
/// loses no session, no count and no signing key.
#[derive(Default)]
struct Carried {
    metrics: Option<Arc<Metrics>>,
    /// The store, when the new config asks for the same one.
    store: Option<Arc<dyn Store>>,
    /// A per-process assertion key, when neither config names one.
    signer: Option<Arc<crate::assertion::Signer>>,
}

impl Gateway {
    /// Builds everything a request needs. Does no network I/O; see `warm_up`.
    pub fn new(config: Config) -> Result<Gateway, StartupError> {
        let http = provider_client(&config)?;
        Gateway::with_http(config, http)
    }

    /// As `new`, with the outbound HTTP client given (tests pass a fake, or
    /// `auth::http::Offline`).
    pub fn with_http(config: Config, http: Arc<dyn HttpClient>) -> Result<Gateway, StartupError> {
        Gateway::assemble(config, http, Carried::default())
    }

    /// A gateway for a new configuration that carries over this one's sessions
    /// (the same store), metrics and per-process assertion key. Does no network
    /// I/O; `warm_up` it before it serves.
    pub fn reloaded(&self, config: Config) -> Result<Gateway, StartupError> {
        let http = provider_client(&config)?;
        let carried = Carried {
            metrics: Some(self.metrics.clone()),
            store: same_store(&self.config.session.store, &config.session.store)
                .then(|| self.sessions.store().clone()),
            signer: self
                .signer
                .clone()
                .filter(|_| config.server.assertion_key.is_none())
                .filter(|_| self.config.server.assertion_key.is_none()),
        };
        Gateway::assemble(config, http, carried)
    }

    fn assemble(
        config: Config,
        http: Arc<dyn HttpClient>,
        carried: Carried,
    ) -> Result<Gateway, StartupError> {
        let metrics = carried.metrics.unwrap_or_default();
        let idp_health = Arc::new(crate::auth::health::IdpHealth::default());
        let http: Arc<dyn HttpClient> =
            Arc::new(Metered::new(http, metrics.clone(), idp_health.clone()));
        let store = match carried.store {
            Some(s) => s,
            None => Arc::new(store::Metered::new(
                store::build(&config.session.store, config.session.lifetime)
                    .map_err(|e| StartupError::Server(e.to_string()))?,
                metrics.clone(),
            )),
        };
        let idp = Idp::new(&config, http, idp_health);
        let router = Router::new(&config, &metrics, &|auth| idp.protocols.login(auth))
            .map_err(StartupError::Server)?;
        // The assertion header is managed on every route: no client may bring one.
        let assertion = HeaderName::from_static(crate::assertion::HEADER);
        let managed = ManagedHeaders::new(
            config
                .routes
                .iter()
                .flat_map(|r| r.headers.iter().map(|h| &h.name))
                .chain(std::iter::once(&assertion)),
        );
        let signer = if let Some(s) = carried.signer {
            Some(s)
        } else if config.routes.iter().any(|r| r.assertion) {
            let key = config
                .server
                .assertion_key
                .as_ref()
                .map(|k| k.expose().as_slice());
            if key.is_none() {
                tracing::warn!("no server.assertion_key: identity assertions are signed with a key of this process only; gateways behind one load balancer need a shared key");
            }
            Some(Arc::new(
                crate::assertion::Signer::new(key).map_err(StartupError::Server)?,
            ))
        } else {
            None
        };
        Ok(Gateway {
            keep: Keep::new(&config),
            idp,
            sessions: Sessions::new(
                config.session.clone(),
                store,
                config
                    .provider
                    .as_ref()
                    .map(|p| p.login_name_claims.clone())
                    .unwrap_or_default(),
                config
                    .provider
                    .as_ref()
                    .map_or(60, |p| p.refresh_margin.as_secs()),
            ),
            router,
            managed,
            signer,
            metrics,
            config,
        })
    }

    /// OIDC discovery and JWKS at start-up. `Err` only for a provider whose metadata
    /// is wrong (fatal). An unreachable IdP is logged: logged-in users keep working
    /// and the first login discovers again.
    pub async fn warm_up(&self) -> Result<(), AuthError> {
        self.idp.warm_up().await
    }

    /// What keeps this gateway from serving logins, for the admin listener's
    /// `/readyz`: empty when ready. Discovery is tried again here, so a gateway
    /// that started while the IdP was down turns ready when it is back.
    pub async fn readiness(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.idp.problems().await.into_iter().collect();
        if let Err(e) = self.sessions.store().ping().await {
            problems.push(format!("session store: {e}"));
        }
        problems
    }

    /// The metrics exposition, with this gateway's gauges.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(&Gauges {
            store_errors: self.sessions.store().errors(),
            active_sessions: self.sessions.store().active_sessions(),
            revocations_in_memory: self.sessions.store().revocations_in_memory().is_some(),
            session_copies: self.sessions.copy_counts(),
            ready: self.idp.is_ready(),
            idp_reachable: self.idp.reachable(),
        })
    }

    /// The session store (for tests and benches; requests go through the methods).
    pub fn store(&self) -> &dyn Store {
        self.sessions.store().as_ref()
    }

    /// The sessions' life: read, issued, renewed, ended.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The front door of this gateway's routes and endpoints.
    pub fn front_door(&self) -> FrontDoor<'_> {
        FrontDoor {
            router: &self.router,
            sso_prefix: &self.config.server.paths.prefix,
        }
    }

    /// Is this cookie name one of the gateway's own?
    pub(crate) fn is_gateway_cookie(&self, name: &str) -> bool {
        let s = &self.config.session;
        name == s.cookie_name || name.starts_with(s.family_prefix.as_str())
    }
}

/// The first value of the cookie `name` in the request.
fn cookie_value<'p>(parts: &'p Parts, name: &str) -> Option<&'p str> {
    cookie::request_cookie(parts, name)
}

/// Whether a request is from a script or API client rather than a page navigation
/// (the rule mod_auth_openidc uses, and a bearer token): such clients get 401 and
/// JSON, not a redirect they cannot follow through a login form.
pub(crate) fn is_api_request(parts: &Parts) -> bool {
    let h = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
    if parts.method != http::Method::GET && parts.method != http::Method::HEAD {
        return true;
    }
    if bearer_token(parts).is_some() {
        return true;
    }
    // A WebSocket client cannot follow a redirect through a login form.
    if h("x-requested-with").is_some() || parts.headers.contains_key(http::header::UPGRADE) {
        return true;
    }
    if let Some(mode) = h("sec-fetch-mode") {
        return !mode.eq_ignore_ascii_case("navigate");
    }
    match h("accept") {
        Some(a) if a.contains("text/html") => false,
        Some(a) => a.contains("application/json"),
        None => false,
    }
}

/// A parsed query string: first value of each name, percent-decoded.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(q: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests;
