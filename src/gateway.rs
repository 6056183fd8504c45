//! The gateway's state and its decisions about one request, without Pingora: who
//! the user is, whether to log them in (OIDC, OAuth2 or CAS, per route), and the
//! callback and logout endpoints. Each takes the request's `http::request::Parts`
//! and answers with data, so tests drive it without a server.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::request::Parts;
use moka::sync::Cache;

use crate::auth::http::{HttpClient, ReqwestClient};
use crate::auth::logout::global_logout_url;
use crate::auth::pending::{cookie_id, PendingLogin};
use crate::auth::redirect::{absolute, safe_return_url};
use crate::auth::{CasClient, OAuth2Client, OidcClient};
use crate::config::{Config, LogoutMode, Protocol, RouteSpec, DEFAULT_HEADER_CLAIMS};
use crate::error::{AuthError, StartupError};
use crate::identity::{Identity, ManagedHeaders};
use crate::reply::Reply;
use crate::route::{Route, Router};
use crate::secret::{ct_eq, Secret};
use crate::session::{self, cookie, Sealer, SessionData};

/// The longest return URL kept in a pending-login cookie: a browser drops a cookie
/// over 4 KiB, and with it the login.
const MAX_PENDING_RETURN: usize = 1536;

/// The one pending-login cookie id of CAS: its `service` URL is fixed (OneAccess
/// wants it equal to the registered one), so no state comes back to tell logins
/// apart; the latest CAS login of a browser wins.
const CAS_PENDING_ID: &str = "cas";

/// What a request to a route may do.
#[derive(Debug)]
pub enum Access {
    /// A public route: no identity, served as is.
    Public,
    /// A valid session of this route's realm.
    Granted(SessionData),
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
    /// States and CAS tickets already used on this instance, so a replayed callback
    /// fails here, before the IdP is asked.
    used: Cache<String, ()>,
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

    /// As `new`, with the outbound HTTP client given (tests pass fakes or none).
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
        Gateway {
            sealer: Sealer::new(&config.session.keys),
            used: Cache::builder()
                .max_capacity(200_000)
                .time_to_live(config.session.pending_ttl)
                .build(),
            router,
            managed,
            oidc,
            oauth2,
            cas,
            keep_claims,
            config,
        }
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

    pub fn is_sso_path(&self, path: &str) -> bool {
        let p = &self.config.server.paths.prefix;
        path.starts_with(p.as_str()) && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
    }

    /// Is this cookie name one of the gateway's own?
    pub fn is_gateway_cookie(&self, name: &str) -> bool {
        let s = &self.config.session;
        name == s.cookie_name || name.starts_with(s.family_prefix.as_str())
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
        if route.spec.protocol == Protocol::Public {
            return Access::Public;
        }
        match self.session_of(parts, now) {
            Some(s) if s.realm == route.spec.realm => Access::Granted(s),
            _ if route.spec.cas.is_some_and(|c| c.gateway)
                && cookie_value(parts, &self.config.session.cas_gateway_cookie).is_some() =>
            {
                Access::Anonymous
            }
            _ => Access::LoginRequired,
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

    /// Marks a state or ticket used; `false` if it already was. moka's entry API
    /// makes check-and-insert one step, so two concurrent replays cannot both pass.
    fn first_use(&self, key: String) -> bool {
        self.used.entry(key).or_insert(()).is_fresh()
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
        if !self.first_use(format!("state:{state}")) {
            return Err(AuthError::StateReplayed);
        }
        let client = client_of(route)?;
        let redirect_uri = self.redirect_uri(&pending.origin);
        let return_to = pending.return_to.clone();
        let code = Secret::new(code.to_string());
        let (identity, id_token) = match route.protocol {
            Protocol::Oidc => {
                let (identity, id_token) = self
                    .oidc()?
                    .finish(client, code, pending, &redirect_uri, &self.keep_claims)
                    .await?;
                let keep = self
                    .config
                    .provider
                    .as_ref()
                    .is_some_and(|p| p.logout == LogoutMode::EndSession);
                (identity, keep.then_some(id_token))
            }
            Protocol::OAuth2 => {
                let identity = self
                    .oauth2()?
                    .finish(client, code, pending, &redirect_uri, &self.keep_claims)
                    .await?;
                (identity, None)
            }
            Protocol::Cas | Protocol::Public => return Err(AuthError::UnknownState),
        };
        self.establish(identity, route, id_token, return_to, now)
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
        if !self.first_use(format!("ticket:{ticket}")) {
            return Err(AuthError::StateReplayed);
        }
        let identity = self
            .cas()?
            .validate(
                &settings,
                &self.cas_service(&pending.origin),
                Secret::new(ticket.to_string()),
                &self.keep_claims,
            )
            .await?;
        self.establish(identity, route, None, pending.return_to, now)
    }

    /// Seals the new session and sends the user where they were going.
    fn establish(
        &self,
        identity: Identity,
        route: &RouteSpec,
        id_token: Option<Secret<String>>,
        return_to: String,
        now: u64,
    ) -> Result<Reply, AuthError> {
        tracing::info!(user = %identity.sub, realm = %route.realm, "login completed");
        let s = &self.config.session;
        let data = SessionData {
            identity,
            issued_at: now,
            expires_at: now + s.lifetime.as_secs(),
            realm: route.realm.clone(),
            id_token,
        };
        let sealed = session::seal(&self.sealer, &s.cookie_name, &data)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        let mut reply = Reply::redirect(return_to).with_cookie(cookie::set_cookie(
            &s.cookie_name,
            &sealed,
            Some(s.lifetime.as_secs()),
            s.secure,
        ));
        // A real login ends any anonymous passive-login pass.
        reply = reply.with_cookie(cookie::clear_cookie(&s.cas_gateway_cookie, s.secure));
        Ok(reply)
    }

    /// `{prefix}/logout[?rd=/where]`: clear the gateway's cookies and end the IdP's
    /// SSO session too (OneAccess global logout, OIDC end-session, or CAS logout, by
    /// the protocol of the session), then come back to `rd` or the configured page.
    ///
    /// Cross-site requests cannot log a user out silently: a GET counts only when
    /// `Sec-Fetch-Site` is `same-origin` or `none` (typed, bookmarked), or, without
    /// fetch metadata, when `Origin`/`Referer` is this origin. Anything else gets a
    /// confirmation page whose POST carries a double-submit token.
    pub fn logout(&self, parts: &Parts, now: u64) -> Reply {
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
        let session = self.session_of(parts, now);
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
