//! The gateway's state and its decisions about one request, without Pingora: who
//! the user is, whether to log them in (OIDC, OAuth2 or CAS, per route), and the
//! callback and logout endpoints. Each takes the request's `http::request::Parts`
//! and answers with data, so tests drive it without a server.

use std::sync::Arc;

use http::request::Parts;
use http::HeaderName;

use crate::auth::code_flow::Grant;
use crate::auth::http::{HttpClient, Metered, Offline, ReqwestClient};
use crate::auth::logout::global_logout_url;
use crate::auth::pending::{cookie_id, PendingLogin};
use crate::auth::redirect::{absolute, safe_return_url};
use crate::auth::{CasClient, OAuth2Client, OidcClient};
use crate::config::{
    Config, LogoutMode, PassToken, Protocol, RefreshFailure, RouteAuth, RouteSpec, StoreSettings,
    DEFAULT_HEADER_CLAIMS,
};
use crate::error::{AuthError, StartupError};
use crate::front_door::{FrontDoor, RequestPath};
use crate::identity::{Identity, ManagedHeaders};
use crate::metrics::{Gauges, Metrics, Outcome};
use crate::reply::{Answer, Reply};
use crate::route::{Route, Router};
use crate::secret::{ct_eq, Secret};
use crate::session::store::{self, Store, StoreError};
use crate::session::{cookie, SessionData};

mod authorize;
mod bearer;
mod events;
mod forward_auth;
mod login;
mod logout;
mod refresh;
mod upstream;
mod verdict;

pub use bearer::bearer_token;
pub use events::UserKey;
pub use upstream::Tokens;
pub use verdict::{Pass, Verdict};

pub use crate::session::NewSession;
use crate::session::{ticket_hash, Sessions};

/// The longest return URL kept in a pending-login cookie: a browser drops a cookie
/// over 4 KiB, and with it the login.
const MAX_PENDING_RETURN: usize = 1536;

/// How long a logout token's `jti` is remembered: longer than any logout token
/// lives (OneAccess's last two minutes).
const JTI_MEMORY: std::time::Duration = std::time::Duration::from_secs(900);

/// The one pending-login cookie id of CAS: its `service` URL is fixed (OneAccess
/// wants it equal to the registered one), so no state comes back to tell logins
/// apart; the latest CAS login of a browser wins.
const CAS_PENDING_ID: &str = "cas";

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
        (
            StoreSettings::Redis {
                url: u1,
                password: p1,
                prefix: x1,
            },
            StoreSettings::Redis {
                url: u2,
                password: p2,
                prefix: x2,
            },
        ) => {
            let pw = |p: &Option<Secret<String>>| p.as_ref().map(|s| s.expose().clone());
            u1 == u2 && x1 == x2 && pw(p1) == pw(p2)
        }
        _ => false,
    }
}

/// What a request to a route may do.
// Returned once per request and moved, not stored: boxing the session would add an
// allocation to the hot path for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Access {
    /// A public route: no identity, served as is.
    Public,
    /// A valid session of this route's realm, and the `Set-Cookie` values to send
    /// when the idle timeout needs the cookie's last-seen time moved.
    Granted(SessionData, Vec<String>),
    /// A CAS `gateway` route whose passive login found no SSO session: served
    /// without identity rather than sent round again.
    Anonymous,
    /// A protected route and no valid session.
    LoginRequired,
    /// A bearer token that is not accepted: answered with this, never a redirect.
    Refused(Reply),
    /// The route would pass an access token past its end, and no refresh could
    /// be made right now: a 503, never the stale token.
    Unavailable,
}

pub struct Gateway {
    pub config: Config,
    pub router: Router,
    pub managed: ManagedHeaders,
    oidc: Option<OidcClient>,
    oauth2: Option<OAuth2Client>,
    cas: Option<CasClient>,
    /// Claims kept in the session: every claim some route maps, and a few common ones.
    keep_claims: Vec<String>,
    /// Tokens kept in the session: the ID token for `end_session` logout or a
    /// route that passes it, the access token for a route that passes it.
    keep_id_token: bool,
    keep_access_token: bool,
    /// Signs identity assertions, when a route sends them.
    signer: Option<Arc<crate::assertion::Signer>>,
    /// OneAccess's management API, for `policy.oneaccess` rules.
    management: Option<crate::auth::management::ManagementClient>,
    /// Sessions: read, issued, renewed and ended, in the store (server-mode
    /// records, revocations), which also keeps the single-use states, tickets and
    /// logout-token ids: shared by every gateway when it is Redis.
    sessions: Sessions,
    /// Counters; shared with the gateway a reload replaces this one with.
    pub metrics: Arc<Metrics>,
    /// Whether the identity provider answers, as its last calls (or a probe) said.
    idp_health: Arc<crate::auth::health::IdpHealth>,
    /// The client to the identity provider (for the health probe).
    http: Arc<dyn HttpClient>,
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
            None => store::build(&config.session.store, config.session.lifetime)
                .map_err(|e| StartupError::Server(e.to_string()))?,
        };
        let router = Router::new(&config, &metrics);
        // The assertion header is managed on every route: no client may bring one.
        let assertion = HeaderName::from_static(crate::assertion::HEADER);
        let managed = ManagedHeaders::new(
            config
                .routes
                .iter()
                .flat_map(|r| r.headers.iter().map(|h| &h.name))
                .chain(std::iter::once(&assertion)),
        );
        // Minimal sessions keep only what some route maps into a header.
        let mut keep_claims: Vec<String> = if config.session.minimal {
            Vec::new()
        } else {
            DEFAULT_HEADER_CLAIMS
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        // Even a minimal session keeps the login name: user events and the admin
        // listener find a user's sessions by it.
        let login_names = config.provider.as_ref().map(|p| &p.login_name_claims);
        let login_claims = login_names
            .into_iter()
            .flat_map(|l| [l.oidc.as_str(), l.oauth2.as_str(), l.cas.as_str()]);
        let route_claims = config.routes.iter().flat_map(|r| r.claims_used());
        for claim in route_claims.chain(login_claims) {
            if !keep_claims.iter().any(|k| k == claim) {
                keep_claims.push(claim.to_string());
            }
        }
        let passes = |t: PassToken| config.routes.iter().any(|r| r.pass_token == Some(t));
        let end_session = config
            .provider
            .as_ref()
            .is_some_and(|p| p.logout == LogoutMode::EndSession);
        let keep_id_token = !config.session.minimal && (end_session || passes(PassToken::Id));
        let keep_access_token = passes(PassToken::Access);
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
        let uses = |p: Protocol| config.routes.iter().any(|r| r.protocol() == p);
        let (mut oidc, mut oauth2, mut cas, mut management) = (None, None, None, None);
        if let Some(p) = &config.provider {
            let h = http.clone();
            if let Some(m) = &p.management {
                management = Some(crate::auth::management::ManagementClient::new(
                    &p.base_url,
                    m.clone(),
                    h.clone(),
                ));
            }
            if uses(Protocol::Oidc) {
                oidc = Some(OidcClient::new(p.clone(), h.clone()));
            }
            if uses(Protocol::OAuth2) {
                oauth2 = Some(OAuth2Client::new(p, h.clone()));
            }
            if uses(Protocol::Cas) {
                cas = Some(CasClient::new(&p.base_url, h));
            }
        }
        Ok(Gateway {
            idp_health,
            http,
            sessions: Sessions::new(
                config.session.clone(),
                store,
                config
                    .provider
                    .as_ref()
                    .map(|p| p.login_name_claims.clone())
                    .unwrap_or_default(),
            ),
            router,
            managed,
            oidc,
            oauth2,
            cas,
            keep_claims,
            keep_id_token,
            keep_access_token,
            signer,
            management,
            metrics,
            config,
        })
    }

    /// OIDC discovery and JWKS at start-up. `Err` only for a provider whose metadata
    /// is wrong (fatal). An unreachable IdP is logged: logged-in users keep working
    /// and the first login discovers again.
    pub async fn warm_up(&self) -> Result<(), AuthError> {
        let Some(oidc) = &self.oidc else {
            return Ok(());
        };
        match oidc.warm_up().await {
            Ok(()) => Ok(()),
            Err(e @ AuthError::Discovery(_)) => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "identity provider not reachable at start-up; logged-in users are served, logins wait for it");
                Ok(())
            }
        }
    }

    /// What keeps this gateway from serving logins, for the admin listener's
    /// `/readyz`: empty when ready. Discovery is tried again here, so a gateway
    /// that started while the IdP was down turns ready when it is back.
    pub async fn readiness(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(oidc) = &self.oidc {
            if let Err(e) = oidc.metadata().await {
                problems.push(format!("OIDC discovery: {e}"));
            }
        }
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
            ready: self.oidc.as_ref().is_none_or(|o| o.is_discovered()),
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
    pub fn is_gateway_cookie(&self, name: &str) -> bool {
        let s = &self.config.session;
        name == s.cookie_name || name.starts_with(s.family_prefix.as_str())
    }

    pub async fn access(
        &self,
        route: &Route,
        parts: &Parts,
        now: u64,
    ) -> Result<Access, StoreError> {
        if matches!(route.spec.auth, RouteAuth::Public) {
            return Ok(Access::Public);
        }
        if !route.spec.bearer_audiences.is_empty() {
            if let Some(token) = bearer_token(parts) {
                return self.bearer_access(route, token, now).await;
            }
        }
        Ok(match self.sessions.of(parts, now).await? {
            // A `renew` route takes only a session made by a fresh sign-in.
            Some((s, _)) if route.spec.cas().is_some_and(|c| c.renew) && !s.renewed => {
                Access::LoginRequired
            }
            Some((s, cookies)) if s.realm == route.spec.realm => {
                if self.needs_refresh(&s, now) {
                    return Ok(self.refreshed(route, parts, s, cookies, now).await);
                }
                if self.passes_expired_token(route, &s, now) {
                    // No refresh token to renew it with: a fresh login gets one.
                    return Ok(Access::LoginRequired);
                }
                Access::Granted(s, cookies)
            }
            _ if route.spec.cas().is_some_and(|c| c.gateway)
                && cookie_value(parts, &self.config.session.cas_gateway_cookie).is_some() =>
            {
                Access::Anonymous
            }
            _ => Access::LoginRequired,
        })
    }

    fn oidc(&self) -> Result<&OidcClient, AuthError> {
        self.oidc
            .as_ref()
            .ok_or_else(|| AuthError::Internal("no OIDC client".into()))
    }

    fn oauth2(&self) -> Result<&OAuth2Client, AuthError> {
        self.oauth2
            .as_ref()
            .ok_or_else(|| AuthError::Internal("no OAuth2 client".into()))
    }

    fn cas(&self) -> Result<&CasClient, AuthError> {
        self.cas
            .as_ref()
            .ok_or_else(|| AuthError::Internal("no CAS client".into()))
    }
}

/// The first value of the cookie `name` in the request.
fn cookie_value<'p>(parts: &'p Parts, name: &str) -> Option<&'p str> {
    cookie::request_cookie(parts, name)
}

/// Whether a request is from a script or API client rather than a page navigation
/// (the rule mod_auth_openidc uses, and a bearer token): such clients get 401 and
/// JSON, not a redirect they cannot follow through a login form.
pub fn is_api_request(parts: &Parts) -> bool {
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
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests;
