//! The gateway's state and its decisions about one request, without Pingora: who
//! the user is, whether to log them in (OIDC, OAuth2 or CAS, per route), and the
//! callback and logout endpoints. Each takes the request's `http::request::Parts`
//! and answers with data, so tests drive it without a server.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::request::Parts;

use crate::auth::code_flow::Grant;
use crate::auth::http::{HttpClient, ReqwestClient};
use crate::auth::logout::global_logout_url;
use crate::auth::pending::{cookie_id, PendingLogin};
use crate::auth::redirect::{absolute, safe_return_url};
use crate::auth::{CasClient, OAuth2Client, OidcClient};
use crate::config::{
    Config, LogoutMode, Protocol, RefreshFailure, RouteSpec, SessionMode, DEFAULT_HEADER_CLAIMS,
};
use crate::error::{AuthError, StartupError};
use crate::identity::{Identity, ManagedHeaders};
use crate::reply::Reply;
use crate::route::{Route, Router};
use crate::secret::{ct_eq, Secret};
use crate::session::store::{self, Store, StoreError};
use crate::session::{self, cookie, Sealer, SessionData};

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
}

pub struct Gateway {
    pub config: Config,
    pub router: Router,
    pub managed: ManagedHeaders,
    oidc: Option<OidcClient>,
    oauth2: Option<OAuth2Client>,
    cas: Option<CasClient>,
    sealer: Sealer,
    /// Claims kept in the session: every claim some route maps, and a few common ones.
    keep_claims: Vec<String>,
    /// Server-mode sessions, revocations, and single-use states, tickets and
    /// logout-token ids: shared by every gateway when it is Redis.
    store: Arc<dyn Store>,
    /// Token refreshes under way or just done, per session id: concurrent requests
    /// of one user share one refresh (rotated refresh tokens break otherwise:
    /// oauth2-proxy #1992, mod_auth_openidc #204), and a request that still carries
    /// the old cookie gets the new session.
    refreshing: moka::sync::Cache<String, Arc<tokio::sync::OnceCell<Refresh>>>,
}

/// The outcome of one refresh attempt, shared by every request that waited on it.
#[derive(Clone)]
enum Refresh {
    /// New tokens (or, under `serve`, the refused refresh token dropped): the
    /// session to use from now on.
    Renewed(Arc<SessionData>),
    /// The IdP refused the refresh token: the route's policy decides.
    Refused,
    /// The IdP is unreachable or another gateway is refreshing: serve as is, try
    /// again later.
    NotNow,
    /// The refreshed ID token names another user: the session ends.
    Ended,
}

impl Gateway {
    /// Builds everything a request needs. Does no network I/O; see `warm_up`.
    pub fn new(config: Config) -> Result<Gateway, StartupError> {
        let http: Option<Arc<dyn HttpClient>> = match &config.provider {
            Some(p) => Some(Arc::new(
                ReqwestClient::new(p.http_timeout).map_err(StartupError::Server)?,
            )),
            None => None,
        };
        Gateway::with_http(config, http)
    }

    /// As `new`, with the outbound HTTP client given (tests pass fakes or none).
    pub fn with_http(
        config: Config,
        http: Option<Arc<dyn HttpClient>>,
    ) -> Result<Gateway, StartupError> {
        let store = store::build(&config.session.store, config.session.lifetime)
            .map_err(|e| StartupError::Server(e.to_string()))?;
        let router = Router::new(&config);
        let managed = ManagedHeaders::new(
            config
                .routes
                .iter()
                .flat_map(|r| r.headers.iter().map(|h| &h.name)),
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
        for r in &config.routes {
            for h in &r.headers {
                if !keep_claims.contains(&h.claim) {
                    keep_claims.push(h.claim.clone());
                }
            }
        }
        let uses = |p: Protocol| config.routes.iter().any(|r| r.protocol == p);
        let (mut oidc, mut oauth2, mut cas) = (None, None, None);
        if let (Some(p), Some(h)) = (&config.provider, http) {
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
            sealer: Sealer::new(&config.session.keys),
            store,
            refreshing: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(30))
                .build(),
            router,
            managed,
            oidc,
            oauth2,
            cas,
            keep_claims,
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

    /// The session store (for tests and benches; requests go through the methods).
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn is_sso_path(&self, path: &str) -> bool {
        let p = &self.config.server.paths.prefix;
        path.starts_with(p.as_str()) && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
    }

    /// Is this cookie name one of the gateway's own?
    pub fn is_gateway_cookie(&self, name: &str) -> bool {
        let s = &self.config.session;
        name == s.cookie_name || name.starts_with(s.family_prefix.as_str())
    }

    /// The session, if the request carries a valid one, and a refreshed cookie when
    /// the idle timeout needs its last-seen time moved. The hot path: cookie mode
    /// with the memory store does no I/O and takes no lock; server mode or Redis
    /// costs one store round trip.
    pub async fn session_of(
        &self,
        parts: &Parts,
        now: u64,
    ) -> Result<Option<(SessionData, Vec<String>)>, StoreError> {
        let name = self.config.session.cookie_name.as_str();
        for h in parts.headers.get_all(http::header::COOKIE) {
            for (n, main) in cookie::pairs(h.as_bytes()) {
                if n != name {
                    continue;
                }
                // A large session spans chunk cookies; a bad count or a missing
                // chunk is no session.
                let Some(v) = cookie::assemble(name, main, |c| cookie_value(parts, c)) else {
                    tracing::debug!("session cookie chunks refused");
                    continue;
                };
                let found = match self.config.session.mode {
                    SessionMode::Cookie => self.cookie_session(parts, name, &v, now).await?,
                    SessionMode::Server => self.server_session(name, &v, now).await?,
                };
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        Ok(None)
    }

    async fn cookie_session(
        &self,
        parts: &Parts,
        name: &str,
        value: &str,
        now: u64,
    ) -> Result<Option<(SessionData, Vec<String>)>, StoreError> {
        let mut data = match session::open(&self.sealer, name, value, now) {
            Ok(d) => d,
            // Debug only: a stale cookie after a key rotation or expiry is normal.
            Err(e) => {
                tracing::debug!(reason = %e, "session cookie refused");
                return Ok(None);
            }
        };
        let idle = self.config.session.idle_timeout.map(|d| d.as_secs());
        if idle.is_some_and(|idle| now >= data.last_seen + idle) {
            tracing::debug!("session idle for too long");
            return Ok(None);
        }
        if self.store.may_have_revocations() {
            let keys = revocation_keys(&data);
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            if self.store.is_revoked(&keys, data.issued_at).await? {
                tracing::debug!(user = %data.identity.sub, "session revoked");
                return Ok(None);
            }
        }
        // Move last-seen forward at most every quarter of the idle timeout, so an
        // active user is not cut off and a cookie is not re-sealed on every request.
        let refresh = match idle {
            Some(idle) if now >= data.last_seen + (idle / 4).max(1) => {
                data.last_seen = now;
                let left = data.expires_at.saturating_sub(now);
                self.session_cookie(&data)
                    .and_then(|v| self.session_set_cookies(parts, &v, left))
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        Ok(Some((data, refresh)))
    }

    async fn server_session(
        &self,
        name: &str,
        value: &str,
        now: u64,
    ) -> Result<Option<(SessionData, Vec<String>)>, StoreError> {
        let Some(id) = self
            .sealer
            .open(name, value)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        else {
            tracing::debug!("session cookie refused");
            return Ok(None);
        };
        let Some(record) = self
            .store
            .load(&format!("ses:{id}"), self.config.session.idle_timeout)
            .await?
        else {
            return Ok(None);
        };
        match serde_json::from_slice::<SessionData>(&record) {
            Ok(data) if now < data.expires_at && data.id == id => Ok(Some((data, Vec::new()))),
            _ => Ok(None),
        }
    }

    pub async fn access(
        &self,
        route: &Route,
        parts: &Parts,
        now: u64,
    ) -> Result<Access, StoreError> {
        if route.spec.protocol == Protocol::Public {
            return Ok(Access::Public);
        }
        Ok(match self.session_of(parts, now).await? {
            Some((s, cookies)) if s.realm == route.spec.realm => {
                if self.needs_refresh(&s, now) {
                    return Ok(self.refreshed(route, parts, s, cookies, now).await);
                }
                Access::Granted(s, cookies)
            }
            _ if route.spec.cas.is_some_and(|c| c.gateway)
                && cookie_value(parts, &self.config.session.cas_gateway_cookie).is_some() =>
            {
                Access::Anonymous
            }
            _ => Access::LoginRequired,
        })
    }

    fn needs_refresh(&self, s: &SessionData, now: u64) -> bool {
        let margin = self
            .config
            .provider
            .as_ref()
            .map_or(60, |p| p.refresh_margin.as_secs());
        s.refresh_token.is_some() && s.access_expires.is_some_and(|x| now + margin >= x)
    }

    /// Refreshes a session's tokens before proxying, once for all its concurrent
    /// requests, and applies the route's policy when the IdP refuses.
    async fn refreshed(
        &self,
        route: &Route,
        parts: &Parts,
        s: SessionData,
        cookies: Vec<String>,
        now: u64,
    ) -> Access {
        let cell = self
            .refreshing
            .get_with(s.id.clone(), || Arc::new(tokio::sync::OnceCell::new()));
        let outcome = cell
            .get_or_init(|| self.refresh_once(&route.spec, &s, now))
            .await
            .clone();
        match outcome {
            Refresh::Renewed(new) => {
                let new = (*new).clone();
                let cookies = self.renewed_cookies(parts, &new, now);
                Access::Granted(new, cookies)
            }
            Refresh::NotNow => Access::Granted(s, cookies),
            Refresh::Refused if route.spec.refresh_failure == RefreshFailure::Serve => {
                // Serve until the session's own end, and stop asking the IdP.
                let mut kept = s;
                kept.refresh_token = None;
                if self.config.session.mode == SessionMode::Server {
                    if let Err(e) = self.save_session(&kept, now).await {
                        tracing::warn!(error = %e, "could not drop a refused refresh token");
                    }
                }
                let cookies = self.renewed_cookies(parts, &kept, now);
                Access::Granted(kept, cookies)
            }
            Refresh::Refused if route.spec.refresh_failure == RefreshFailure::Reauthenticate => {
                Access::LoginRequired
            }
            Refresh::Refused | Refresh::Ended => {
                if let Err(e) = self.end_session(&s, now).await {
                    tracing::warn!(error = %e, "could not end a session after a failed refresh");
                }
                Access::LoginRequired
            }
        }
    }

    async fn refresh_once(&self, route: &RouteSpec, s: &SessionData, now: u64) -> Refresh {
        // Behind a load balancer, one gateway refreshes; the others serve the
        // still-valid session meanwhile, and the browser gets the new cookie from
        // the winner.
        let key = format!("use:refresh:{}:{}", s.id, s.access_expires.unwrap_or(0));
        match self
            .store
            .first_use(&key, std::time::Duration::from_secs(60))
            .await
        {
            Ok(true) => {}
            Ok(false) => return Refresh::NotNow,
            Err(e) => {
                tracing::warn!(error = %e, "refresh postponed: the session store is unavailable");
                return Refresh::NotNow;
            }
        }
        let (Some(refresh_token), Ok(client)) = (&s.refresh_token, client_of(route)) else {
            return Refresh::NotNow;
        };
        let result = match route.protocol {
            Protocol::Oidc => match self.oidc() {
                Ok(o) => {
                    o.refresh(client, refresh_token, &s.identity.sub, &self.keep_claims)
                        .await
                }
                Err(e) => Err(e),
            },
            Protocol::OAuth2 => match self.oauth2() {
                Ok(o) => o.refresh(client, refresh_token).await.map(|g| (None, g)),
                Err(e) => Err(e),
            },
            Protocol::Cas | Protocol::Public => return Refresh::NotNow,
        };
        let mut new = s.clone();
        match result {
            Ok((identity, grant)) => {
                if let Some(identity) = identity {
                    new.identity = identity;
                }
                new.access_expires = grant.expires_in.map(|e| now + e);
                if grant.refresh_token.is_some() {
                    new.refresh_token = grant.refresh_token;
                }
                tracing::info!(user = %new.identity.sub, "tokens refreshed");
            }
            Err(e @ (AuthError::IdpUnavailable(_) | AuthError::Store(_))) => {
                tracing::warn!(error = %e, "refresh postponed: the identity provider is unavailable");
                return Refresh::NotNow;
            }
            Err(e @ AuthError::InvalidIdToken(_)) => {
                tracing::warn!(user = %s.identity.sub, error = %e, "refresh ended the session");
                return Refresh::Ended;
            }
            Err(e) => {
                tracing::info!(user = %s.identity.sub, error = %e, "refresh refused");
                return Refresh::Refused;
            }
        }
        if self.config.session.mode == SessionMode::Server {
            if let Err(e) = self.save_session(&new, now).await {
                tracing::warn!(error = %e, "refresh not saved: the session store is unavailable");
                return Refresh::NotNow;
            }
        }
        Refresh::Renewed(Arc::new(new))
    }

    /// Writes a changed server-mode session back, keeping its absolute end.
    async fn save_session(&self, data: &SessionData, now: u64) -> Result<(), StoreError> {
        let record = serde_json::to_vec(data).unwrap_or_default();
        let left = std::time::Duration::from_secs(data.expires_at.saturating_sub(now).max(1));
        let ttl = self
            .config
            .session
            .idle_timeout
            .map_or(left, |i| i.min(left));
        self.store
            .save(&format!("ses:{}", data.id), &record, ttl)
            .await
    }

    /// The cookies that carry a changed session: the re-sealed session in cookie
    /// mode; none in server mode (the id did not change).
    fn renewed_cookies(&self, parts: &Parts, data: &SessionData, now: u64) -> Vec<String> {
        match self.config.session.mode {
            SessionMode::Cookie => self
                .session_cookie(data)
                .and_then(|v| {
                    self.session_set_cookies(parts, &v, data.expires_at.saturating_sub(now))
                })
                .unwrap_or_default(),
            SessionMode::Server => Vec::new(),
        }
    }

    /// Ends one session server-side: deleted in server mode, revoked in cookie mode,
    /// so a copy of its cookie dies with it.
    async fn end_session(&self, data: &SessionData, now: u64) -> Result<(), StoreError> {
        match self.config.session.mode {
            SessionMode::Server => self.store.remove(&format!("ses:{}", data.id)).await,
            SessionMode::Cookie => {
                self.store
                    .revoke(
                        &format!("rev:ses:{}", data.id),
                        now,
                        self.config.session.lifetime,
                    )
                    .await
            }
        }
    }

    /// The answer to a protected request without a session: a login redirect for a
    /// browser navigation, 401 JSON for everything else.
    pub async fn login_required(&self, route: &Route, parts: &Parts, now: u64) -> Reply {
        if is_api_request(parts) {
            return Reply::json_error(
                401,
                "unauthenticated",
                "This resource needs a signed-in session.",
            );
        }
        match self.start_login(&route.spec, parts, now).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(route = %route.label, error = %e, "cannot start login");
                Reply::for_auth_error(&e)
            }
        }
    }

    async fn start_login(
        &self,
        route: &RouteSpec,
        parts: &Parts,
        now: u64,
    ) -> Result<Reply, AuthError> {
        let wanted = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let return_to = safe_return_url(
            wanted,
            &route.origin,
            &self.config.server.allowed_redirect_hosts,
        )
        .filter(|r| r.len() <= MAX_PENDING_RETURN)
        .unwrap_or_else(|| "/".to_string());
        let pending = PendingLogin::new(
            return_to,
            route.origin.clone(),
            route.index,
            route.realm.clone(),
            now,
        )
        .map_err(|e| AuthError::Internal(e.to_string()))?;
        let redirect_uri = self.redirect_uri(&route.origin);
        let (id, location) = match route.protocol {
            Protocol::Oidc => {
                let (oidc, client) = (self.oidc()?, client_of(route)?);
                let url = oidc.authorize_url(client, &pending, &redirect_uri).await?;
                (pending.cookie_id().to_string(), url)
            }
            Protocol::OAuth2 => {
                let (oauth2, client) = (self.oauth2()?, client_of(route)?);
                let url = oauth2.authorize_url(client, &pending, &redirect_uri)?;
                (pending.cookie_id().to_string(), url)
            }
            Protocol::Cas => {
                let settings = route
                    .cas
                    .ok_or_else(|| AuthError::Internal("a cas route without settings".into()))?;
                let url = self
                    .cas()?
                    .login_url(&self.cas_service(&route.origin), &settings)?;
                (CAS_PENDING_ID.to_string(), url)
            }
            Protocol::Public => return Err(AuthError::Internal("login on a public route".into())),
        };

        let s = &self.config.session;
        let name = format!("{}{id}", s.pending_prefix);
        let plain = serde_json::to_vec(&pending).unwrap_or_default();
        let sealed = self
            .sealer
            .seal(&name, &plain)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        let mut reply = Reply::redirect(location).with_cookie(cookie::set_cookie(
            &name,
            &sealed,
            Some(s.pending_ttl.as_secs()),
            s.secure,
        ));
        reply = reply.with_cookies(self.evict_pending(parts, &name, now));
        reply.headers.push(("cache-control", "no-store".into()));
        Ok(reply)
    }

    /// Clears pending-login cookies beyond the limit (oldest first) and any that are
    /// unreadable or expired, so abandoned logins cannot pile up into a
    /// "431 Request Header Fields Too Large". `new` is the one being set now.
    fn evict_pending(&self, parts: &Parts, new: &str, now: u64) -> Vec<String> {
        let s = &self.config.session;
        let mut live: Vec<(u64, String)> = Vec::new();
        let mut clear = Vec::new();
        for h in parts.headers.get_all(http::header::COOKIE) {
            for (n, v) in cookie::pairs(h.as_bytes()) {
                if !n.starts_with(s.pending_prefix.as_str()) || n == new {
                    continue;
                }
                match self.open_pending(n, v, now) {
                    Some(p) => live.push((p.created, n.to_string())),
                    None => clear.push(n.to_string()),
                }
            }
        }
        // The new login takes one place.
        if live.len() >= s.max_pending {
            live.sort();
            let excess = live.len() + 1 - s.max_pending;
            clear.extend(live.into_iter().take(excess).map(|(_, n)| n));
        }
        clear
            .into_iter()
            .map(|n| cookie::clear_cookie(&n, s.secure))
            .collect()
    }

    fn open_pending(&self, name: &str, value: &str, now: u64) -> Option<PendingLogin> {
        let plain = self.sealer.open(name, value).ok()?;
        let p: PendingLogin = serde_json::from_slice(&plain).ok()?;
        let ttl = self.config.session.pending_ttl.as_secs();
        // A minute of grace for another instance's clock running ahead.
        (p.created <= now + 60 && now < p.created + ttl).then_some(p)
    }

    fn redirect_uri(&self, origin: &str) -> String {
        format!("{origin}{}", self.config.server.paths.callback)
    }

    /// CAS's `service`: from the route's configured origin, never the Host header.
    fn cas_service(&self, origin: &str) -> String {
        format!("{origin}{}", self.config.server.paths.cas_callback)
    }

    /// `GET {prefix}/callback?code&state`: finish an OIDC or OAuth2 login.
    pub async fn callback(&self, parts: &Parts, now: u64) -> Reply {
        let q = Query::parse(parts.uri.query());
        let pending_name = q
            .get("state")
            .map(|st| format!("{}{}", self.config.session.pending_prefix, cookie_id(st)));
        let outcome = self
            .finish_code_login(parts, &q, pending_name.as_deref(), now)
            .await;
        self.after_callback(parts, outcome, pending_name.as_deref())
    }

    /// `GET {prefix}/cas/callback?ticket=ST-…`: finish a CAS login.
    pub async fn cas_callback(&self, parts: &Parts, now: u64) -> Reply {
        let q = Query::parse(parts.uri.query());
        let pending_name = format!("{}{CAS_PENDING_ID}", self.config.session.pending_prefix);
        let outcome = self.finish_cas_login(parts, &q, &pending_name, now).await;
        self.after_callback(parts, outcome, Some(&pending_name))
    }

    /// The pending login is spent, whatever the outcome.
    fn after_callback(
        &self,
        parts: &Parts,
        outcome: Result<Reply, AuthError>,
        pending_name: Option<&str>,
    ) -> Reply {
        let reply = outcome.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "login failed at the callback");
            Reply::for_auth_error(&e)
        });
        let mut reply = match pending_name {
            Some(n) if cookie_value(parts, n).is_some() => {
                reply.with_cookie(cookie::clear_cookie(n, self.config.session.secure))
            }
            _ => reply,
        };
        reply.headers.push(("cache-control", "no-store".into()));
        reply
    }

    /// The pending login named `name`, still fresh, and the route it started on,
    /// which must still have the realm it had then.
    fn pending_of(
        &self,
        parts: &Parts,
        name: &str,
        now: u64,
    ) -> Result<(PendingLogin, &RouteSpec), AuthError> {
        let pending = cookie_value(parts, name)
            .and_then(|v| self.open_pending(name, v, now))
            .ok_or(AuthError::UnknownState)?;
        let route = self
            .config
            .routes
            .iter()
            .find(|r| r.index == pending.route && r.realm == pending.realm)
            .ok_or(AuthError::UnknownState)?;
        Ok((pending, route))
    }

    /// Marks a state, ticket or logout-token id used; `false` if it already was. The
    /// store makes check-and-insert one step, across every gateway sharing it, so two
    /// concurrent replays cannot both pass.
    async fn first_use(&self, key: &str) -> Result<bool, AuthError> {
        Ok(self
            .store
            .first_use(&format!("use:{key}"), self.config.session.pending_ttl)
            .await?)
    }

    async fn finish_code_login(
        &self,
        parts: &Parts,
        q: &Query,
        pending_name: Option<&str>,
        now: u64,
    ) -> Result<Reply, AuthError> {
        if let Some(err) = q.get("error") {
            let error: String = err
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(AuthError::IdpDenied { error });
        }
        let state = q.get("state").ok_or(AuthError::BadCallback("no state"))?;
        let code = q
            .get("code")
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or(AuthError::BadCallback("no code"))?;
        let pending_name = pending_name.ok_or(AuthError::UnknownState)?;
        let (pending, route) = self.pending_of(parts, pending_name, now)?;
        if !ct_eq(pending.state().as_bytes(), state.as_bytes()) {
            return Err(AuthError::UnknownState);
        }
        if !self.first_use(&format!("state:{state}")).await? {
            return Err(AuthError::StateReplayed);
        }
        let client = client_of(route)?;
        let redirect_uri = self.redirect_uri(&pending.origin);
        let return_to = pending.return_to.clone();
        let code = Secret::new(code.to_string());
        let login = match route.protocol {
            Protocol::Oidc => {
                let login = self
                    .oidc()?
                    .finish(client, code, pending, &redirect_uri, &self.keep_claims)
                    .await?;
                let keep = !self.config.session.minimal
                    && self
                        .config
                        .provider
                        .as_ref()
                        .is_some_and(|p| p.logout == LogoutMode::EndSession);
                NewSession {
                    identity: login.identity,
                    id_token: keep.then_some(login.id_token),
                    sid: login.sid,
                    ticket_hash: None,
                    grant: login.grant,
                }
            }
            Protocol::OAuth2 => {
                let (identity, grant) = self
                    .oauth2()?
                    .finish(client, code, pending, &redirect_uri, &self.keep_claims)
                    .await?;
                NewSession {
                    grant,
                    ..NewSession::of(identity)
                }
            }
            Protocol::Cas | Protocol::Public => return Err(AuthError::UnknownState),
        };
        self.establish(parts, login, route, return_to, now).await
    }

    async fn finish_cas_login(
        &self,
        parts: &Parts,
        q: &Query,
        pending_name: &str,
        now: u64,
    ) -> Result<Reply, AuthError> {
        let ticket = q.get("ticket");
        // Checked before anything else: a hostile ticket never reaches a log line,
        // a cache or the CAS server.
        if let Some(t) = ticket {
            crate::auth::cas::check_ticket(t)?;
        }
        let (pending, route) = self.pending_of(parts, pending_name, now)?;
        let settings = route.cas.ok_or(AuthError::UnknownState)?;
        let Some(ticket) = ticket else {
            if settings.gateway {
                // Passive login found no SSO session: let this browser through
                // anonymously for a while instead of looping back to CAS.
                let s = &self.config.session;
                return Ok(
                    Reply::redirect(pending.return_to).with_cookie(cookie::set_cookie(
                        &s.cas_gateway_cookie,
                        "1",
                        Some(s.pending_ttl.as_secs()),
                        s.secure,
                    )),
                );
            }
            return Err(AuthError::BadCallback("no ticket"));
        };
        if !self
            .first_use(&format!("ticket:{}", ticket_hash(ticket)))
            .await?
        {
            return Err(AuthError::StateReplayed);
        }
        let hash = ticket_hash(ticket);
        let identity = self
            .cas()?
            .validate(
                &settings,
                &self.cas_service(&pending.origin),
                Secret::new(ticket.to_string()),
                &self.keep_claims,
            )
            .await?;
        let login = NewSession {
            ticket_hash: Some(hash),
            ..NewSession::of(identity)
        };
        self.establish(parts, login, route, pending.return_to, now)
            .await
    }

    /// Makes the new session and sends the user where they were going.
    async fn establish(
        &self,
        parts: &Parts,
        login: NewSession,
        route: &RouteSpec,
        return_to: String,
        now: u64,
    ) -> Result<Reply, AuthError> {
        tracing::info!(user = %login.identity.sub, realm = %route.realm, "login completed");
        let value = self.issue_session(login, &route.realm, now).await?;
        let s = &self.config.session;
        let cookies = self.session_set_cookies(parts, &value, s.lifetime.as_secs())?;
        let reply = Reply::redirect(return_to)
            .with_cookies(cookies)
            // A real login ends any anonymous passive-login pass.
            .with_cookie(cookie::clear_cookie(&s.cas_gateway_cookie, s.secure));
        Ok(reply)
    }

    /// The `Set-Cookie` values that store a session cookie value: one cookie, or a
    /// `~N` main cookie and `N` chunks, each line under 4096 bytes; and the clearing
    /// of chunks the request still has that the new value no longer uses.
    fn session_set_cookies(
        &self,
        parts: &Parts,
        value: &str,
        max_age: u64,
    ) -> Result<Vec<String>, AuthError> {
        let s = &self.config.session;
        let pieces = cookie::split(&s.cookie_name, value)
            .ok_or_else(|| AuthError::Internal("the session is too large for cookies".into()))?;
        let mut out: Vec<String> = pieces
            .iter()
            .map(|(n, v)| cookie::set_cookie(n, v, Some(max_age), s.secure))
            .collect();
        let used = pieces.len().saturating_sub(1);
        for i in used..cookie::MAX_CHUNKS {
            let stale = cookie::chunk_name(&s.cookie_name, i);
            if cookie_value(parts, &stale).is_some() {
                out.push(cookie::clear_cookie(&stale, s.secure));
            }
        }
        Ok(out)
    }

    /// Makes a session (in the store too, in server mode), indexes it for
    /// back-channel and single logout, and returns the session cookie's value.
    pub async fn issue_session(
        &self,
        login: NewSession,
        realm: &str,
        now: u64,
    ) -> Result<String, AuthError> {
        let s = &self.config.session;
        let data = SessionData {
            identity: login.identity,
            issued_at: now,
            expires_at: now + s.lifetime.as_secs(),
            realm: realm.to_string(),
            id_token: login.id_token,
            id: random_id().map_err(AuthError::Internal)?,
            sid: login.sid,
            ticket_hash: login.ticket_hash,
            last_seen: now,
            access_expires: login.grant.expires_in.map(|e| now + e),
            refresh_token: login.grant.refresh_token.filter(|_| !s.minimal),
        };
        if s.mode == SessionMode::Server {
            let record = serde_json::to_vec(&data).unwrap_or_default();
            let ttl = s.idle_timeout.unwrap_or(s.lifetime).min(s.lifetime);
            self.store
                .save(&format!("ses:{}", data.id), &record, ttl)
                .await?;
        }
        // Server mode: the sessions a back-channel or CAS logout must delete. Cookie
        // mode keeps only the CAS ticket mark: SLO acts only on tickets it issued a
        // session for.
        for key in index_keys(&data) {
            if s.mode == SessionMode::Server || key.starts_with("st:") {
                self.store
                    .index(&format!("idx:{key}"), &data.id, s.lifetime)
                    .await?;
            }
        }
        self.session_cookie(&data)
    }

    /// The session cookie's value: the whole sealed session in cookie mode, the
    /// sealed id in server mode.
    fn session_cookie(&self, data: &SessionData) -> Result<String, AuthError> {
        let name = &self.config.session.cookie_name;
        let sealed = match self.config.session.mode {
            SessionMode::Cookie => session::seal(&self.sealer, name, data),
            SessionMode::Server => self.sealer.seal(name, data.id.as_bytes()),
        };
        sealed.map_err(|e| AuthError::Internal(e.to_string()))
    }

    /// Ends every session that `key` (`sid:…`, `sub:…`, `st:…`) names, in both modes:
    /// server-mode records are deleted, cookie-mode sessions issued until now are
    /// revoked. Returns how many server-mode sessions ended.
    async fn end_sessions(&self, key: &str, now: u64) -> Result<usize, StoreError> {
        let ids = self.store.take_index(&format!("idx:{key}")).await?;
        for id in &ids {
            self.store.remove(&format!("ses:{id}")).await?;
        }
        self.store
            .revoke(&format!("rev:{key}"), now, self.config.session.lifetime)
            .await?;
        Ok(ids.len())
    }

    /// `{prefix}/logout[?rd=/where]`: clear the gateway's cookies and end the IdP's
    /// SSO session too (OneAccess global logout, OIDC end-session, or CAS logout, by
    /// the protocol of the session), then come back to `rd` or the configured page.
    ///
    /// Cross-site requests cannot log a user out silently: a GET counts only when
    /// `Sec-Fetch-Site` is `same-origin` or `none` (typed, bookmarked), or, without
    /// fetch metadata, when `Origin`/`Referer` is this origin. Anything else gets a
    /// confirmation page whose POST carries a double-submit token.
    pub async fn logout(&self, parts: &Parts, now: u64) -> Reply {
        let server = &self.config.server;
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok());
        let origin = self
            .router
            .origin_for_host(host)
            .unwrap_or(server.public_origin.as_str());
        let q = Query::parse(parts.uri.query());
        let rd = q
            .get("rd")
            .and_then(|rd| safe_return_url(rd, origin, &server.allowed_redirect_hosts));

        if !self.logout_allowed(parts, origin, &q) {
            return self.confirm_logout(rd.as_deref());
        }

        let target = absolute(
            rd.as_deref()
                .unwrap_or(server.post_logout_redirect.as_str()),
            origin,
        );
        // The user must be able to log out even when the store is down: then only
        // the cookie goes, and the error is logged.
        let session = match self.session_of(parts, now).await {
            Ok(found) => found.map(|(data, _)| data),
            Err(e) => {
                tracing::warn!(error = %e, "logout without the session store");
                None
            }
        };
        if let Some(data) = &session {
            // A copy of the cookie must not outlive the logout.
            if let Err(e) = self.end_session(data, now).await {
                tracing::warn!(error = %e, "logout could not end the session in the store");
            }
        }
        let location = self.idp_logout_url(session.as_ref(), &target);
        let s = &self.config.session;
        let mut clear = vec![cookie::clear_cookie(&s.cookie_name, s.secure)];
        for h in parts.headers.get_all(http::header::COOKIE) {
            for (n, _) in cookie::pairs(h.as_bytes()) {
                if n.starts_with(s.family_prefix.as_str()) {
                    clear.push(cookie::clear_cookie(n, s.secure));
                }
            }
        }
        let mut reply = Reply::redirect(location).with_cookies(clear);
        reply.headers.push(("cache-control", "no-store".into()));
        reply
    }

    /// `POST {prefix}/backchannel-logout` (OIDC Back-Channel Logout 1.0): ends the
    /// sessions of the logout token's `sid`, or of its `sub` when it has no `sid`.
    /// 200 when done (or nothing to do), 400 for any invalid token; never cached.
    pub async fn backchannel_logout(&self, body: &[u8], now: u64) -> Reply {
        let mut reply = match self.try_backchannel_logout(body, now).await {
            Ok(ended) => {
                tracing::info!(sessions = ended, "back-channel logout");
                Reply::empty(200)
            }
            Err(e @ (AuthError::Store(_) | AuthError::IdpUnavailable(_))) => {
                tracing::warn!(error = %e, "back-channel logout could not be done now");
                Reply::json_error(503, "temporarily_unavailable", "Try again later.")
            }
            Err(e) => {
                tracing::warn!(error = %e, "back-channel logout refused");
                Reply::json_error(400, "invalid_request", "The logout token is not valid.")
            }
        };
        reply.headers.push(("cache-control", "no-store".into()));
        reply
    }

    async fn try_backchannel_logout(&self, body: &[u8], now: u64) -> Result<usize, AuthError> {
        let bad = |m: &str| AuthError::InvalidLogoutToken(m.to_string());
        // Unknown form fields are ignored, as the spec asks.
        let token = url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| bad("no logout_token"))?;
        let mut audiences: Vec<&str> = self
            .config
            .routes
            .iter()
            .filter(|r| r.protocol == Protocol::Oidc)
            .filter_map(|r| r.client.as_ref().map(|c| c.client_id.as_str()))
            .collect();
        audiences.dedup();
        let (sub, sid, jti) = self.oidc()?.verify_logout_token(&token, &audiences).await?;
        if !self
            .store
            .first_use(&format!("use:jti:{jti}"), JTI_MEMORY)
            .await?
        {
            return Err(bad("jti already used"));
        }
        let key = match (sid, sub) {
            (Some(sid), _) => format!("sid:{sid}"),
            (None, Some(sub)) => format!("sub:{sub}"),
            (None, None) => return Err(bad("neither sub nor sid")),
        };
        Ok(self.end_sessions(&key, now).await?)
    }

    /// A CAS Single Logout request (POSTed to the service URL): ends the session
    /// made with that ticket, if this gateway made one; otherwise nothing happens.
    pub async fn cas_single_logout(&self, body: &[u8], now: u64) -> Reply {
        let index = url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "logoutRequest")
            .and_then(|(_, v)| crate::auth::cas::parse_logout_request(&v));
        let Some(ticket) = index else {
            return Reply::json_error(400, "invalid_request", "No valid logoutRequest.");
        };
        let key = format!("st:{}", ticket_hash(&ticket));
        let outcome = match self.store.has_index(&format!("idx:{key}")).await {
            Ok(true) => self.end_sessions(&key, now).await.map(Some),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Some(_)) => tracing::info!("CAS single logout"),
            Ok(None) => tracing::debug!("CAS single logout for a ticket this gateway did not use"),
            Err(e) => {
                tracing::warn!(error = %e, "CAS single logout could not be done now");
                return Reply::json_error(503, "temporarily_unavailable", "Try again later.");
            }
        }
        Reply::empty(200)
    }

    fn logout_allowed(&self, parts: &Parts, origin: &str, q: &Query) -> bool {
        let h = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
        if parts.method == http::Method::POST {
            let token_ok = match (
                q.get("csrf"),
                cookie_value(parts, &self.config.session.csrf_cookie),
            ) {
                (Some(form), Some(cookie)) => {
                    !form.is_empty() && ct_eq(form.as_bytes(), cookie.as_bytes())
                }
                _ => false,
            };
            if token_ok {
                return true;
            }
        }
        match h("sec-fetch-site") {
            Some(site) => site == "same-origin" || site == "none",
            None => match h("origin").or_else(|| h("referer")) {
                Some(from) => {
                    url::Url::parse(from).is_ok_and(|u| u.origin().ascii_serialization() == origin)
                }
                None => false,
            },
        }
    }

    fn confirm_logout(&self, rd: Option<&str>) -> Reply {
        let mut token = [0u8; 32];
        if aws_lc_rs::rand::fill(&mut token).is_err() {
            return Reply::for_auth_error(&AuthError::Internal("no randomness".into()));
        }
        let token = URL_SAFE_NO_PAD.encode(token);
        let mut action = self.config.server.paths.logout.clone();
        action.push('?');
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("csrf", &token);
        if let Some(rd) = rd {
            q.append_pair("rd", rd);
        }
        action.push_str(&q.finish());
        let s = &self.config.session;
        Reply::confirm_logout(&action).with_cookie(cookie::set_strict_cookie(
            &s.csrf_cookie,
            &token,
            Some(600),
            s.secure,
        ))
    }

    fn idp_logout_url(&self, session: Option<&SessionData>, target: &str) -> String {
        let Some(provider) = &self.config.provider else {
            return target.to_string();
        };
        let realm = session.map(|s| s.realm.as_str()).unwrap_or("");
        if realm == "cas" {
            if let Some(Ok(url)) = self.cas.as_ref().map(|c| c.logout_url(target)) {
                return url;
            }
        }
        if provider.logout == LogoutMode::EndSession {
            if let (Some(oidc), Some(client_id)) = (&self.oidc, realm.strip_prefix("oidc:")) {
                let hint = session
                    .and_then(|s| s.id_token.as_ref())
                    .map(|t| t.expose().as_str());
                let mut state = [0u8; 16];
                let _ = aws_lc_rs::rand::fill(&mut state);
                if let Some(url) =
                    oidc.end_session_url(client_id, hint, target, &URL_SAFE_NO_PAD.encode(state))
                {
                    return url;
                }
            }
        }
        global_logout_url(&provider.logout_url, target)
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

/// What a finished login brings to a new session.
pub struct NewSession {
    pub identity: Identity,
    pub id_token: Option<Secret<String>>,
    pub sid: Option<String>,
    pub ticket_hash: Option<String>,
    pub grant: Grant,
}

impl NewSession {
    pub fn of(identity: Identity) -> NewSession {
        NewSession {
            identity,
            id_token: None,
            sid: None,
            ticket_hash: None,
            grant: Grant::default(),
        }
    }
}

/// A session id: 32 random bytes, base64url.
fn random_id() -> Result<String, String> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| "the system random generator failed".to_string())?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// A CAS ticket as the store knows it: hashed, so a store dump holds no live
/// ticket.
fn ticket_hash(ticket: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ticket.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..24])
}

/// The index keys a session is found by: its IdP session, its user (OIDC and
/// OAuth2 carry OneAccess's user id; a CAS `sub` is a login name and stays out),
/// its CAS ticket.
fn index_keys(data: &SessionData) -> Vec<String> {
    let mut keys = Vec::with_capacity(3);
    if let Some(sid) = &data.sid {
        keys.push(format!("sid:{sid}"));
    }
    if data.realm != "cas" {
        keys.push(format!("sub:{}", data.identity.sub));
    }
    if let Some(h) = &data.ticket_hash {
        keys.push(format!("st:{h}"));
    }
    keys
}

/// The revocation keys that can end a cookie-mode session: its own id (a logout),
/// and its index keys (back-channel and CAS single logout).
fn revocation_keys(data: &SessionData) -> Vec<String> {
    let mut keys = vec![format!("rev:ses:{}", data.id)];
    keys.extend(index_keys(data).into_iter().map(|k| format!("rev:{k}")));
    keys
}

fn client_of(route: &RouteSpec) -> Result<&crate::config::ClientCredentials, AuthError> {
    route
        .client
        .as_ref()
        .ok_or_else(|| AuthError::Internal("a route without a client".into()))
}

/// The first value of the cookie `name` in the request.
fn cookie_value<'p>(parts: &'p Parts, name: &str) -> Option<&'p str> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|h| cookie::pairs(h.as_bytes()))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Whether a request is from a script or API client rather than a page navigation
/// (the rule mod_auth_openidc uses): such clients get 401, not a redirect they
/// cannot follow through a login form.
pub fn is_api_request(parts: &Parts) -> bool {
    let h = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
    if parts.method != http::Method::GET && parts.method != http::Method::HEAD {
        return true;
    }
    if h("x-requested-with").is_some() {
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
