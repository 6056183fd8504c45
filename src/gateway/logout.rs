//! Logging out: the user's logout (guarded against cross-site requests), OIDC
//! back-channel logout, and CAS single logout.

use http::request::Parts;

use super::authorize::client_address;
use super::idp::Idp;
use super::{cookie_value, Gateway, Query};
use crate::auth::logout::global_logout_url;
use crate::auth::redirect::{absolute, safe_return_url};
use crate::config::{
    LogoutMode, ProviderSettings, Realm, RouteAuth, ServerSettings, SessionSettings,
};
use crate::error::AuthError;
use crate::metrics::{Metrics, Revocation};
use crate::reply::{Answer, Reply};
use crate::route::Router;
use crate::secret::ct_eq;
use crate::session::{cookie, ticket_hash, SessionData, Sessions};

/// How long a logout token's `jti` is remembered: longer than any logout token
/// lives (OneAccess's last two minutes).
const JTI_MEMORY: std::time::Duration = std::time::Duration::from_secs(900);

/// The sealing name (AAD) of the end-session `state`: a value sealed for any
/// other use does not open as one.
const LOGOUT_STATE: &str = "oag-logout-state";

/// Logging out, and what it may touch.
#[derive(Clone, Copy)]
pub(crate) struct Logouts<'g> {
    server: &'g ServerSettings,
    session: &'g SessionSettings,
    provider: Option<&'g ProviderSettings>,
    /// The OIDC routes' applications are the logout tokens' audiences.
    router: &'g Router,
    /// `cas.slo_networks`.
    cas_slo_networks: Option<&'g [ipnet::IpNet]>,
    idp: &'g Idp,
    sessions: &'g Sessions,
    metrics: &'g Metrics,
}

impl Gateway {
    pub(crate) fn logouts(&self) -> Logouts<'_> {
        Logouts {
            server: &self.config.server,
            session: &self.config.session,
            provider: self.config.provider.as_ref(),
            router: &self.router,
            cas_slo_networks: self.config.cas_slo_networks.as_deref(),
            idp: &self.idp,
            sessions: &self.sessions,
            metrics: &self.metrics,
        }
    }
}

impl Logouts<'_> {
    /// `{prefix}/logout[?rd=/where]`: clear the gateway's cookies and end the IdP's
    /// SSO session too (OneAccess global logout, OIDC end-session, or CAS logout, by
    /// the protocol of the session), then come back to `rd` or the configured page.
    ///
    /// Cross-site requests cannot log a user out silently: a GET counts only when
    /// `Sec-Fetch-Site` is `same-origin` or `none` (typed, bookmarked), or, without
    /// fetch metadata, when `Origin`/`Referer` is this origin. Anything else gets a
    /// confirmation page whose POST carries a double-submit token.
    pub(crate) async fn logout(&self, parts: &Parts, now: u64) -> Reply {
        let server = self.server;
        // The front door checked the Host; routing's reading of it picks the origin.
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| crate::front_door::canonical_host(h).ok());
        let origin = self
            .router
            .origin_for_host(host.as_deref())
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
        let session = match self.sessions.of(parts, now).await {
            Ok(found) => found.map(|(data, _)| data),
            Err(e) => {
                tracing::warn!(error = %e, "logout without the session store");
                None
            }
        };
        if let Some(data) = &session {
            // A copy of the cookie must not outlive the logout.
            match self.sessions.end(data, now).await {
                Ok(()) => self.metrics.revocation(Revocation::Logout),
                Err(e) => {
                    tracing::warn!(error = %e, "logout could not end the session in the store")
                }
            }
        }
        let location = self.idp_logout_url(session.as_ref(), &target, now);
        let s = self.session;
        let mut clear = vec![cookie::clear_cookie(&s.cookie_name, s.secure)];
        for h in parts.headers.get_all(http::header::COOKIE) {
            for (n, _) in cookie::pairs(h.as_bytes()) {
                if n.starts_with(s.family_prefix.as_str()) {
                    clear.push(cookie::clear_cookie(n, s.secure));
                }
            }
        }

        Reply::redirect(location).with_cookies(clear)
    }

    /// `POST {prefix}/backchannel-logout` (OIDC Back-Channel Logout 1.0): ends the
    /// sessions of the logout token's `sid`, or of its `sub` when it has no `sid`.
    /// 200 when done (or nothing to do), 400 for any invalid token; never cached.
    pub(crate) async fn backchannel_logout(&self, body: &[u8], now: u64) -> Reply {
        let reply = match self.try_backchannel_logout(body, now).await {
            Ok(ended) => {
                tracing::info!(sessions = ended, "back-channel logout");
                Reply::empty(200)
            }
            Err(e @ (AuthError::Store(_) | AuthError::IdpUnavailable(_))) => {
                tracing::warn!(error = %e, "back-channel logout could not be done now");
                Answer::TryLater.reply(true)
            }
            Err(e) => {
                tracing::warn!(error = %e, "back-channel logout refused");
                Answer::InvalidLogoutToken.reply(true)
            }
        };
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
            .router
            .routes()
            .filter_map(|r| match &r.spec.auth {
                RouteAuth::Oidc(c) => Some(c.client_id.as_str()),
                _ => None,
            })
            .collect();
        audiences.dedup();
        // No OIDC route: no token can be for this gateway.
        let oidc = self
            .idp
            .protocols
            .oidc
            .as_ref()
            .ok_or_else(|| bad("no OIDC route"))?;
        let (sub, sid, jti) = oidc.verify_logout_token(&token, &audiences).await?;
        if !self
            .sessions
            .store()
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
        let ended = self.sessions.end_all(&key, now).await?;
        self.metrics.revocation(Revocation::Backchannel);
        Ok(ended)
    }

    /// A CAS Single Logout request (POSTed to the service URL): ends the session
    /// made with that ticket, if this gateway made one; otherwise nothing happens.
    /// The CAS protocol signs nothing: `cas.slo_networks`, when set, names the
    /// only addresses it is taken from.
    pub(crate) async fn cas_single_logout(
        &self,
        parts: &Parts,
        socket: Option<std::net::IpAddr>,
        body: &[u8],
        now: u64,
    ) -> Reply {
        if let Some(networks) = self.cas_slo_networks {
            let client = client_address(parts, socket, &self.server.trusted_proxies);
            if !client.is_some_and(|ip| networks.iter().any(|n| n.contains(&ip))) {
                tracing::warn!(client = ?client, "CAS single logout from outside cas.slo_networks refused");
                return Answer::SingleLogoutForbidden.reply(true);
            }
        }
        let index = url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "logoutRequest")
            .and_then(|(_, v)| crate::auth::cas::parse_logout_request(&v));
        let Some(ticket) = index else {
            return Answer::NoLogoutRequest.reply(true);
        };
        let key = format!("st:{}", ticket_hash(&ticket));
        let outcome = match self.sessions.store().has_index(&format!("idx:{key}")).await {
            Ok(true) => self.sessions.end_all(&key, now).await.map(Some),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Some(_)) => {
                self.metrics.revocation(Revocation::SingleLogout);
                tracing::info!("CAS single logout")
            }
            Ok(None) => tracing::debug!("CAS single logout for a ticket this gateway did not use"),
            Err(e) => {
                tracing::warn!(error = %e, "CAS single logout could not be done now");
                return Answer::TryLater.reply(true);
            }
        }
        Reply::empty(200)
    }

    /// `GET {prefix}/logged-out?state=…`: where the provider's end-session
    /// endpoint returns; on to the place the logout asked for, which `state`
    /// carries sealed, else the configured page.
    pub(crate) fn logged_out(&self, parts: &Parts, now: u64) -> Reply {
        let server = self.server;
        let target = Query::parse(parts.uri.query())
            .get("state")
            .and_then(|st| self.open_logout_state(st, now))
            .unwrap_or_else(|| absolute(&server.post_logout_redirect, &server.public_origin));

        Reply::redirect(target)
    }

    /// The end-session `state`: the return target (validated before), and until
    /// when it counts, sealed.
    fn seal_logout_state(&self, target: &str, now: u64) -> Option<String> {
        let until = now + self.session.pending_ttl.as_secs();
        let plain = serde_json::to_vec(&(target, until)).ok()?;
        self.sessions.sealer().seal(LOGOUT_STATE, &plain).ok()
    }

    fn open_logout_state(&self, state: &str, now: u64) -> Option<String> {
        let plain = self.sessions.sealer().open(LOGOUT_STATE, state).ok()?;
        let (target, until): (String, u64) = serde_json::from_slice(&plain).ok()?;
        (now < until).then_some(target)
    }

    fn logout_allowed(&self, parts: &Parts, origin: &str, q: &Query) -> bool {
        let h = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
        if parts.method == http::Method::POST {
            let token_ok = match (
                q.get("csrf"),
                cookie_value(parts, &self.session.csrf_cookie),
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
        let Ok(token) = crate::secret::random_token() else {
            return Reply::for_auth_error(&AuthError::Internal("no randomness".into()));
        };
        let mut action = self.server.paths.logout.clone();
        action.push('?');
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("csrf", &token);
        if let Some(rd) = rd {
            q.append_pair("rd", rd);
        }
        action.push_str(&q.finish());
        let s = self.session;
        Reply::confirm_logout(&action).with_cookie(cookie::set_strict_cookie(
            &s.csrf_cookie,
            &token,
            Some(600),
            s.secure,
        ))
    }

    fn idp_logout_url(&self, session: Option<&SessionData>, target: &str, now: u64) -> String {
        let Some(provider) = self.provider else {
            return target.to_string();
        };
        let realm = session.map(|s| &s.realm);
        if realm == Some(&Realm::Cas) {
            if let Some(Ok(url)) = self
                .idp
                .protocols
                .cas
                .as_ref()
                .map(|c| c.logout_url(target))
            {
                return url;
            }
        }
        if provider.logout == LogoutMode::EndSession {
            if let (Some(oidc), Some(client_id)) =
                (&self.idp.protocols.oidc, realm.and_then(Realm::oidc_client))
            {
                let hint = session
                    .and_then(|s| s.id_token.as_ref())
                    .map(|t| t.expose().as_str());
                // One fixed, registered return URL; where to go from there rides
                // in `state`, sealed so that nobody else can choose it.
                let back = format!(
                    "{}{}",
                    self.server.public_origin, self.server.paths.logged_out
                );
                let state = self.seal_logout_state(target, now);
                if let Some(url) =
                    state.and_then(|st| oidc.end_session_url(client_id, hint, &back, &st))
                {
                    return url;
                }
            }
        }
        global_logout_url(&provider.logout_url, target)
    }
}
