//! The gateway's state and its decisions about one request, without Pingora: who
//! the user is, whether to log them in, and the callback and logout endpoints. Each
//! takes the request's `http::request::Parts` and answers with data, so tests drive
//! it without a server.

use std::sync::Arc;

use http::request::Parts;
use moka::sync::Cache;

use crate::auth::http::{HttpClient, ReqwestClient};
use crate::auth::logout::global_logout_url;
use crate::auth::pending::{cookie_id, PendingLogin};
use crate::auth::redirect::{absolute, safe_return_url};
use crate::auth::OidcClient;
use crate::config::{Config, Protocol, DEFAULT_HEADER_CLAIMS};
use crate::error::{AuthError, StartupError};
use crate::identity::ManagedHeaders;
use crate::reply::Reply;
use crate::route::{Route, Router};
use crate::secret::{ct_eq, Secret};
use crate::session::{self, cookie, Sealer, SessionData};

/// The longest return URL kept in a pending-login cookie: a browser drops a cookie
/// over 4 KiB, and with it the login.
const MAX_PENDING_RETURN: usize = 1536;

/// What a request to a route may do.
#[derive(Debug)]
pub enum Access {
    /// A public route: no identity, served as is.
    Public,
    /// A valid session.
    Granted(SessionData),
    /// A protected route and no valid session.
    LoginRequired,
}

pub struct Gateway {
    pub config: Config,
    pub router: Router,
    pub managed: ManagedHeaders,
    pub oidc: Option<OidcClient>,
    sealer: Sealer,
    /// Claims kept in the session: every claim some route maps, and a few common ones.
    keep_claims: Vec<String>,
    /// States already used at the callback on this instance, so a replayed callback
    /// fails even before the IdP refuses the code.
    used_states: Cache<String, ()>,
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
        Ok(Gateway::with_http(config, http))
    }

    /// As `new`, with the outbound HTTP client given (tests pass fakes).
    pub fn with_http(config: Config, http: Option<Arc<dyn HttpClient>>) -> Gateway {
        let router = Router::new(&config);
        let managed = ManagedHeaders::new(
            config
                .routes
                .iter()
                .flat_map(|r| r.headers.iter().map(|h| &h.name)),
        );
        let mut keep_claims: Vec<String> = DEFAULT_HEADER_CLAIMS
            .iter()
            .map(|s| s.to_string())
            .collect();
        for r in &config.routes {
            for h in &r.headers {
                if !keep_claims.contains(&h.claim) {
                    keep_claims.push(h.claim.clone());
                }
            }
        }
        let oidc = match (&config.provider, http) {
            (Some(p), Some(h)) => Some(OidcClient::new(p.clone(), h)),
            _ => None,
        };
        Gateway {
            sealer: Sealer::new(&config.session.keys),
            used_states: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(config.session.pending_ttl)
                .build(),
            router,
            managed,
            oidc,
            keep_claims,
            config,
        }
    }

    /// Discovery and JWKS at start-up. `Err` only for a provider whose metadata is
    /// wrong (fatal). An unreachable IdP is logged: logged-in users keep working and
    /// the first login discovers again.
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

    pub fn is_sso_path(&self, path: &str) -> bool {
        let p = &self.config.server.paths.prefix;
        path.starts_with(p.as_str()) && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
    }

    /// Is this cookie name one of the gateway's own (session or pending login)?
    pub fn is_gateway_cookie(&self, name: &str) -> bool {
        let s = &self.config.session;
        name == s.cookie_name || name.starts_with(s.pending_prefix.as_str())
    }

    /// The session, if the request carries a valid one. The hot path: no I/O, no lock.
    pub fn session_of(&self, parts: &Parts, now: u64) -> Option<SessionData> {
        let name = self.config.session.cookie_name.as_str();
        for h in parts.headers.get_all(http::header::COOKIE) {
            for (n, v) in cookie::pairs(h.as_bytes()) {
                if n != name {
                    continue;
                }
                match session::open(&self.sealer, name, v, now) {
                    Ok(s) => return Some(s),
                    // Debug only: a stale cookie after a key rotation or expiry is normal.
                    Err(e) => tracing::debug!(reason = %e, "session cookie refused"),
                }
            }
        }
        None
    }

    pub fn access(&self, route: &Route, parts: &Parts, now: u64) -> Access {
        match route.spec.protocol {
            Protocol::Public => Access::Public,
            Protocol::Oidc => match self.session_of(parts, now) {
                Some(s) => Access::Granted(s),
                None => Access::LoginRequired,
            },
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
        match self.start_login(route, parts, now).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(route = %route.label, error = %e, "cannot start login");
                Reply::for_auth_error(&e)
            }
        }
    }

    async fn start_login(
        &self,
        route: &Route,
        parts: &Parts,
        now: u64,
    ) -> Result<Reply, AuthError> {
        let oidc = self
            .oidc
            .as_ref()
            .ok_or_else(|| AuthError::Internal("a protected route without a provider".into()))?;
        let wanted = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let return_to = safe_return_url(
            wanted,
            &route.spec.origin,
            &self.config.server.allowed_redirect_hosts,
        )
        .filter(|r| r.len() <= MAX_PENDING_RETURN)
        .unwrap_or_else(|| "/".to_string());
        let pending = PendingLogin::new(return_to, route.spec.origin.clone(), now)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        let redirect_uri = self.redirect_uri(&route.spec.origin);
        let location = oidc.authorize_url(&pending, &redirect_uri).await?;

        let s = &self.config.session;
        let name = format!("{}{}", s.pending_prefix, pending.cookie_id());
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
        reply = reply.with_cookies(self.evict_pending(parts, now));
        reply.headers.push(("cache-control", "no-store".into()));
        Ok(reply)
    }

    /// Clears pending-login cookies beyond the limit (oldest first) and any that are
    /// unreadable or expired, so abandoned logins cannot pile up into a
    /// "431 Request Header Fields Too Large".
    fn evict_pending(&self, parts: &Parts, now: u64) -> Vec<String> {
        let s = &self.config.session;
        let mut live: Vec<(u64, String)> = Vec::new();
        let mut clear = Vec::new();
        for h in parts.headers.get_all(http::header::COOKIE) {
            for (n, v) in cookie::pairs(h.as_bytes()) {
                if !n.starts_with(s.pending_prefix.as_str()) {
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

    /// `GET {prefix}/callback?code&state`: finish the login and set the session.
    pub async fn callback(&self, parts: &Parts, now: u64) -> Reply {
        let q = Query::parse(parts.uri.query());
        let pending_name = q
            .get("state")
            .map(|st| format!("{}{}", self.config.session.pending_prefix, cookie_id(st)));
        let reply = match self
            .finish_login(parts, &q, pending_name.as_deref(), now)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "login failed at the callback");
                Reply::for_auth_error(&e)
            }
        };
        // The pending login is spent, whatever the outcome.
        let mut reply = match pending_name {
            Some(n) if self.has_cookie(parts, &n) => {
                reply.with_cookie(cookie::clear_cookie(&n, self.config.session.secure))
            }
            _ => reply,
        };
        reply.headers.push(("cache-control", "no-store".into()));
        reply
    }

    async fn finish_login(
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
        let pending = self
            .cookie_value(parts, pending_name)
            .and_then(|v| self.open_pending(pending_name, v, now))
            .ok_or(AuthError::UnknownState)?;
        if !ct_eq(pending.state().as_bytes(), state.as_bytes()) {
            return Err(AuthError::UnknownState);
        }
        // Single use: the entry API makes check-and-insert one step, so two
        // concurrent replays cannot both pass.
        let fresh = self
            .used_states
            .entry(state.to_string())
            .or_insert(())
            .is_fresh();
        if !fresh {
            return Err(AuthError::StateReplayed);
        }
        let oidc = self
            .oidc
            .as_ref()
            .ok_or_else(|| AuthError::Internal("a protected route without a provider".into()))?;
        let redirect_uri = self.redirect_uri(&pending.origin);
        let return_to = pending.return_to.clone();
        let identity = oidc
            .finish(
                Secret::new(code.to_string()),
                pending,
                &redirect_uri,
                &self.keep_claims,
            )
            .await?;
        tracing::info!(user = %identity.sub, "login completed");
        let s = &self.config.session;
        let data = SessionData {
            identity,
            issued_at: now,
            expires_at: now + s.lifetime.as_secs(),
        };
        let sealed = session::seal(&self.sealer, &s.cookie_name, &data)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        Ok(Reply::redirect(return_to).with_cookie(cookie::set_cookie(
            &s.cookie_name,
            &sealed,
            Some(s.lifetime.as_secs()),
            s.secure,
        )))
    }

    /// `{prefix}/logout[?rd=/where]`: clear the gateway's cookies and end the IdP's
    /// SSO session too, then come back to `rd` (validated) or the configured page.
    pub fn logout(&self, parts: &Parts) -> Reply {
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
        let target = q
            .get("rd")
            .and_then(|rd| safe_return_url(rd, origin, &server.allowed_redirect_hosts))
            .unwrap_or_else(|| server.post_logout_redirect.clone());
        let target = absolute(&target, origin);
        let location = match &self.config.provider {
            Some(p) => global_logout_url(&p.logout_url, &target),
            None => target,
        };
        let s = &self.config.session;
        let mut clear = vec![cookie::clear_cookie(&s.cookie_name, s.secure)];
        for h in parts.headers.get_all(http::header::COOKIE) {
            for (n, _) in cookie::pairs(h.as_bytes()) {
                if n.starts_with(s.pending_prefix.as_str()) {
                    clear.push(cookie::clear_cookie(n, s.secure));
                }
            }
        }
        let mut reply = Reply::redirect(location).with_cookies(clear);
        reply.headers.push(("cache-control", "no-store".into()));
        reply
    }

    fn cookie_value<'p>(&self, parts: &'p Parts, name: &str) -> Option<&'p str> {
        parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .flat_map(|h| cookie::pairs(h.as_bytes()))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    fn has_cookie(&self, parts: &Parts, name: &str) -> bool {
        self.cookie_value(parts, name).is_some()
    }
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
