//! Logging in: the redirect to the IdP with a pending-login cookie, and the
//! OIDC/OAuth2 and CAS callbacks that turn it into a session.

use std::sync::Arc;

use http::request::Parts;

use super::idp::Idp;
use super::keep::Keep;
use super::{cookie_value, is_api_request, Gateway, Query};
use crate::auth::pending::{cookie_id, PendingLogin};
use crate::auth::redirect::safe_return_url;
use crate::auth::Login;
use crate::config::{ServerSettings, SessionSettings};
use crate::error::AuthError;
use crate::metrics::Metrics;
use crate::reply::{Answer, Reply};
use crate::route::{Route, Router};
use crate::secret::{ct_eq, Secret};
use crate::session::{cookie, ticket_hash, NewSession, Sessions};

/// The longest return URL kept in a pending-login cookie: a browser drops a cookie
/// over 4 KiB, and with it the login.
const MAX_PENDING_RETURN: usize = 1536;

/// The one pending-login cookie id of CAS: its `service` URL is fixed (OneAccess
/// wants it equal to the registered one), so no state comes back to tell logins
/// apart; the latest CAS login of a browser wins.
const CAS_PENDING_ID: &str = "cas";

/// Logging in, and what it may touch.
#[derive(Clone, Copy)]
pub(crate) struct Logins<'g> {
    server: &'g ServerSettings,
    session: &'g SessionSettings,
    /// A pending login names its route by index.
    router: &'g Router,
    idp: &'g Idp,
    keep: &'g Keep,
    sessions: &'g Sessions,
    metrics: &'g Metrics,
}

impl Gateway {
    pub(crate) fn logins(&self) -> Logins<'_> {
        Logins {
            server: &self.config.server,
            session: &self.config.session,
            router: &self.router,
            idp: &self.idp,
            keep: &self.keep,
            sessions: &self.sessions,
            metrics: &self.metrics,
        }
    }
}

impl<'g> Logins<'g> {
    /// The answer to a protected request without a session: a login redirect for a
    /// browser navigation, 401 JSON for everything else.
    pub(crate) async fn login_required(&self, route: &Route, parts: &Parts, now: u64) -> Reply {
        if is_api_request(parts) {
            return Answer::Unauthenticated.reply(true);
        }
        self.login_redirect(route, parts, now, false).await
    }

    /// A login redirect; `fresh` asks the IdP for a new login even with an SSO
    /// session (`prompt=login`, CAS `renew`), so the user can be someone else.
    pub(super) async fn login_redirect(
        &self,
        route: &Route,
        parts: &Parts,
        now: u64,
        fresh: bool,
    ) -> Reply {
        if !self.idp.answers().await {
            // A redirect to a provider that does not answer is a dead end.
            tracing::warn!(route = %route.label, "no login started: the identity provider does not answer");
            let e = AuthError::IdpUnavailable("no answer to a probe".into());
            let mut reply = Reply::for_auth_error(&e);
            reply.headers.push(("retry-after", "5".into()));
            return reply;
        }
        match self.start_login(route, parts, now, fresh).await {
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
        fresh: bool,
    ) -> Result<Reply, AuthError> {
        let (login, route) = match &route.login {
            Some(login) => (login, &route.spec),
            None => return Err(AuthError::Internal("login on a public route".into())),
        };
        let wanted = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let return_to = safe_return_url(wanted, &route.origin, &self.server.allowed_redirect_hosts)
            .filter(|r| r.len() <= MAX_PENDING_RETURN)
            .unwrap_or_else(|| "/".to_string());
        let mut pending = PendingLogin::new(
            return_to,
            route.origin.clone(),
            route.index,
            route.realm.clone(),
            now,
        )
        .map_err(|e| AuthError::Internal(e.to_string()))?;
        pending.renew = fresh || route.cas().is_some_and(|c| c.renew);
        let redirect_uri = self.redirect_uri(&route.origin);
        let (id, location) = match login {
            Login::Oidc(oidc, app) => {
                let url = oidc.authorize_url(app, &pending, &redirect_uri).await?;
                (pending.cookie_id().to_string(), prompt_login(url, fresh))
            }
            Login::OAuth2(oauth2, app) => {
                let url = oauth2.authorize_url(app, &pending, &redirect_uri)?;
                (pending.cookie_id().to_string(), prompt_login(url, fresh))
            }
            Login::Cas(cas, settings) => {
                let mut settings = *settings;
                if fresh {
                    settings.renew = true;
                    settings.gateway = false;
                }
                let url = cas.login_url(&self.cas_service(&route.origin), &settings)?;
                (CAS_PENDING_ID.to_string(), url)
            }
        };

        let s = self.session;
        let name = format!("{}{id}", s.pending_prefix);
        let plain = serde_json::to_vec(&pending).unwrap_or_default();
        let sealed = self
            .sessions
            .sealer()
            .seal(&name, &plain)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        let mut reply = Reply::redirect(location).with_cookie(cookie::set_cookie(
            &name,
            &sealed,
            Some(s.pending_ttl.as_secs()),
            s.secure,
        ));
        reply = reply.with_cookies(self.evict_pending(parts, &name, now));
        self.metrics.login_started(route.protocol().as_str());
        Ok(reply)
    }

    /// Clears pending-login cookies beyond the limit (oldest first) and any that are
    /// unreadable or expired, so abandoned logins cannot pile up into a
    /// "431 Request Header Fields Too Large". `new` is the one being set now.
    pub(super) fn evict_pending(&self, parts: &Parts, new: &str, now: u64) -> Vec<String> {
        let s = self.session;
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
        let plain = self.sessions.sealer().open(name, value).ok()?;
        let p: PendingLogin = serde_json::from_slice(&plain).ok()?;
        let ttl = self.session.pending_ttl.as_secs();
        // A minute of grace for another instance's clock running ahead.
        (p.created <= now + 60 && now < p.created + ttl).then_some(p)
    }

    fn redirect_uri(&self, origin: &str) -> String {
        format!("{origin}{}", self.server.paths.callback)
    }

    /// CAS's `service`: from the route's configured origin, never the Host header.
    fn cas_service(&self, origin: &str) -> String {
        format!("{origin}{}", self.server.paths.cas_callback)
    }

    /// `GET {prefix}/callback?code&state`: finish an OIDC or OAuth2 login.
    pub(crate) async fn callback(&self, parts: &Parts, now: u64) -> Reply {
        let q = Query::parse(parts.uri.query());
        let pending_name = q
            .get("state")
            .map(|st| format!("{}{}", self.session.pending_prefix, cookie_id(st)));
        let outcome = self
            .finish_code_login(parts, &q, pending_name.as_deref(), now)
            .await;
        // For the failure metric: the protocol of the route the login started
        // on, as far as its pending cookie can still be read.
        let protocol = || {
            pending_name
                .as_deref()
                .and_then(|n| self.pending_of(parts, n, now).ok())
                .map_or("unknown", |(_, route)| route.spec.protocol().as_str())
        };
        self.after_callback(parts, outcome, pending_name.as_deref(), protocol)
    }

    /// `GET {prefix}/cas/callback?ticket=ST-…`: finish a CAS login.
    pub(crate) async fn cas_callback(&self, parts: &Parts, now: u64) -> Reply {
        let q = Query::parse(parts.uri.query());
        let pending_name = format!("{}{CAS_PENDING_ID}", self.session.pending_prefix);
        let outcome = self.finish_cas_login(parts, &q, &pending_name, now).await;
        self.after_callback(parts, outcome, Some(&pending_name), || "cas")
    }

    /// The pending login is spent, whatever the outcome.
    fn after_callback(
        &self,
        parts: &Parts,
        outcome: Result<Reply, AuthError>,
        pending_name: Option<&str>,
        protocol: impl FnOnce() -> &'static str,
    ) -> Reply {
        let reply = outcome.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "login failed at the callback");
            self.metrics.login_failed(protocol(), e.reason());
            Reply::for_auth_error(&e)
        });
        let reply = match pending_name {
            Some(n) if cookie_value(parts, n).is_some() => {
                reply.with_cookie(cookie::clear_cookie(n, self.session.secure))
            }
            _ => reply,
        };
        reply
    }

    /// The pending login named `name`, still fresh, and the route it started on,
    /// which must still have the realm it had then.
    fn pending_of(
        &self,
        parts: &Parts,
        name: &str,
        now: u64,
    ) -> Result<(PendingLogin, &'g Arc<Route>), AuthError> {
        let pending = cookie_value(parts, name)
            .and_then(|v| self.open_pending(name, v, now))
            .ok_or(AuthError::UnknownState)?;
        let route = self
            .router
            .by_index(pending.route)
            .filter(|r| r.spec.realm == pending.realm)
            .ok_or(AuthError::UnknownState)?;
        Ok((pending, route))
    }

    /// Marks a state, ticket or logout-token id used; `false` if it already was. The
    /// store makes check-and-insert one step, across every gateway sharing it, so two
    /// concurrent replays cannot both pass.
    async fn first_use(&self, key: &str) -> Result<bool, AuthError> {
        Ok(self
            .sessions
            .store()
            .first_use(&format!("use:{key}"), self.session.pending_ttl)
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
        let redirect_uri = self.redirect_uri(&pending.origin);
        let return_to = pending.return_to.clone();
        let code = Secret::new(code.to_string());
        let login = match &route.login {
            Some(Login::Oidc(oidc, app)) => {
                let claims_used: Vec<&str> = route.spec.claims_used().collect();
                let login = oidc
                    .finish(
                        app,
                        code,
                        pending,
                        &redirect_uri,
                        &self.keep.claims,
                        &claims_used,
                    )
                    .await?;
                NewSession {
                    id_token: self.keep.id_token.then_some(login.id_token),
                    sid: login.sid,
                    ..self.keep.session(login.identity, login.grant)
                }
            }
            Some(Login::OAuth2(oauth2, app)) => {
                let (identity, grant) = oauth2
                    .finish(app, code, pending, &redirect_uri, &self.keep.claims)
                    .await?;
                self.keep.session(identity, grant)
            }
            Some(Login::Cas(..)) | None => return Err(AuthError::UnknownState),
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
        let Some(Login::Cas(cas, settings)) = &route.login else {
            return Err(AuthError::UnknownState);
        };
        let mut settings = *settings;
        // The login asked for a fresh sign-in: so must the validation.
        settings.renew = pending.renew;
        let Some(ticket) = ticket else {
            if settings.gateway {
                // Passive login found no SSO session: let this browser through
                // anonymously for a while instead of looping back to CAS.
                let s = self.session;
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
        let identity = cas
            .validate(
                &settings,
                &self.cas_service(&pending.origin),
                Secret::new(ticket.to_string()),
                &self.keep.claims,
            )
            .await?;
        let login = NewSession {
            ticket_hash: Some(hash),
            renewed: settings.renew,
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
        route: &Route,
        return_to: String,
        now: u64,
    ) -> Result<Reply, AuthError> {
        let route = &route.spec;
        tracing::info!(user = %login.identity.sub, realm = %route.realm, "login completed");
        let value = self.sessions.issue(login, &route.realm, now).await?;
        self.metrics.login_completed(route.protocol().as_str());
        let s = self.session;
        let cookies = self
            .sessions
            .set_cookies(parts, &value, s.lifetime.as_secs())?;
        let reply = Reply::redirect(return_to)
            .with_cookies(cookies)
            // A real login ends any anonymous passive-login pass.
            .with_cookie(cookie::clear_cookie(&s.cas_gateway_cookie, s.secure));
        Ok(reply)
    }
}

/// Adds `prompt=login` (OIDC Core 3.1.2.1) to an authorize URL when a fresh login
/// is wanted.
fn prompt_login(url: String, fresh: bool) -> String {
    if !fresh {
        return url;
    }
    match url::Url::parse(&url) {
        Ok(mut u) => {
            u.query_pairs_mut().append_pair("prompt", "login");
            u.into()
        }
        Err(_) => url,
    }
}
