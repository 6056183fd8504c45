//! One request to a route, judged from start to end: who it is (session cookie
//! or bearer token), whether the route's policy lets it through, and what the app
//! is then told. The proxy and the forward-auth endpoint both ask this, so the
//! two can never judge a request differently.

use http::request::Parts;
use http::{HeaderName, HeaderValue};

use super::authorize::Authorizer;
use super::bearer::{bearer_token, Bearers};
use super::login::Logins;
use super::refresh::{passes_expired_token, Refresher};
use super::upstream::{Tokens, Upstream};
use super::{cookie_value, is_api_request, Gateway};
use crate::auth::Login;
use crate::error::{AuthError, StoreError};
use crate::front_door::RequestPath;
use crate::identity::Identity;
use crate::metrics::Outcome;
use crate::reply::{Answer, Reply};
use crate::route::Route;
use crate::session::{SessionData, Sessions};

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

/// What to do with a request to a route.
pub(crate) enum Verdict {
    /// Serve it.
    Pass(Pass),
    /// Answer it here: a login redirect, a 401, 403 or 503.
    Answer {
        reply: Reply,
        /// The user, when the request had one (for the access log).
        user: Option<String>,
        outcome: Outcome,
    },
}

pub struct Pass {
    pub identity: Option<Identity>,
    /// Identity headers to set upstream (after stripping the client's).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `Set-Cookie` values for the response (a moved idle timeout, a refresh).
    pub set_cookies: Vec<String>,
    pub outcome: Outcome,
}

/// The judge of requests to routes, and what it may touch: the concerns it
/// asks in turn.
#[derive(Clone, Copy)]
pub(crate) struct Judge<'g> {
    sessions: &'g Sessions,
    /// The passive-login pass of CAS `gateway` routes.
    cas_gateway_cookie: &'g str,
    logins: Logins<'g>,
    refresher: Refresher<'g>,
    bearers: Bearers<'g>,
    authorizer: Authorizer<'g>,
    upstream: Upstream<'g>,
}

impl Gateway {
    pub(crate) fn judge(&self) -> Judge<'_> {
        Judge {
            sessions: &self.sessions,
            cas_gateway_cookie: &self.config.session.cas_gateway_cookie,
            logins: self.logins(),
            refresher: self.refresher(),
            bearers: self.bearers(),
            authorizer: self.authorizer(),
            upstream: self.upstream(),
        }
    }
}

impl Judge<'_> {
    /// What a request to `route` may do: who it is, by bearer token or session.
    pub(crate) async fn access(
        &self,
        route: &Route,
        parts: &Parts,
        now: u64,
    ) -> Result<Access, StoreError> {
        let Some(login) = &route.login else {
            return Ok(Access::Public);
        };
        if let Login::Oidc(oidc, _) = login {
            let token = bearer_token(parts).filter(|_| !route.spec.bearer_audiences.is_empty());
            if let Some(token) = token {
                return self.bearers.access(oidc, route, token, now).await;
            }
        }
        let cas = match login {
            Login::Cas(_, settings) => Some(settings),
            _ => None,
        };
        Ok(match self.sessions.of(parts, now).await? {
            // A `renew` route takes only a session made by a fresh sign-in.
            Some((s, _)) if cas.is_some_and(|c| c.renew) && !s.renewed => Access::LoginRequired,
            Some((s, cookies)) if s.realm == route.spec.realm => {
                if self.refresher.needs_refresh(&s, now) {
                    return Ok(self
                        .refresher
                        .refreshed(route, parts, s, cookies, now)
                        .await);
                }
                if passes_expired_token(route, &s, now) {
                    // No refresh token to renew it with: a fresh login gets one.
                    return Ok(Access::LoginRequired);
                }
                Access::Granted(s, cookies)
            }
            _ if cas.is_some_and(|c| c.gateway)
                && cookie_value(parts, self.cas_gateway_cookie).is_some() =>
            {
                Access::Anonymous
            }
            _ => Access::LoginRequired,
        })
    }

    /// Judges a request to `route`. `path` is the front door's reading of it;
    /// `socket` the peer's address. `redirect` lets a browser without a session be
    /// sent to log in; without it (nginx forward auth) the answer is a 401.
    pub(crate) async fn verdict(
        &self,
        route: &Route,
        parts: &Parts,
        path: &RequestPath<'_>,
        socket: Option<std::net::IpAddr>,
        redirect: bool,
        now: u64,
    ) -> Verdict {
        // Asked only where an answer depends on it: most requests pass, and its
        // header lookups cost about as much as the rest of the verdict's own work
        // (callgrind: ~1,300 instructions).
        let api = || is_api_request(parts);
        let access = match self.access(route, parts, now).await {
            Ok(a) => a,
            Err(e) => {
                // Never a silent login loop: a clear 503 until the store is back.
                let reply = Reply::for_auth_error_to(&AuthError::Store(e), api());
                return answer(reply, None, Outcome::StoreUnavailable);
            }
        };
        let (session, set_cookies, outcome) = match access {
            Access::Public => (None, Vec::new(), Outcome::Public),
            Access::Anonymous => (None, Vec::new(), Outcome::Anonymous),
            Access::Granted(s, cookies) => (Some(s), cookies, Outcome::Authenticated),
            Access::Refused(reply) => return answer(reply, None, Outcome::BearerRefused),
            Access::Unavailable => {
                let e = AuthError::IdpUnavailable("the access token is being refreshed".into());
                let mut reply = Reply::for_auth_error_to(&e, api());
                reply.headers.push(("retry-after", "2".into()));
                return answer(reply, None, Outcome::RefreshPending);
            }
            Access::LoginRequired => {
                let reply = if (!redirect || api()) && !route.spec.bearer_audiences.is_empty() {
                    Reply::bearer_challenge(
                        "invalid_request",
                        "This resource needs a bearer token or a signed-in session.",
                    )
                } else if !redirect {
                    Answer::Unauthenticated.reply(true)
                } else {
                    self.logins.login_required(route, parts, now).await
                };
                return answer(reply, None, Outcome::LoginRequired);
            }
        };
        if let Some(reply) = self
            .authorizer
            .authorize(route, parts, path, session.as_ref(), socket, now)
            .await
        {
            let user = session.map(|s| s.identity.sub);
            return answer(reply, user, Outcome::Denied);
        }
        let Some(s) = session else {
            return Verdict::Pass(Pass {
                identity: None,
                headers: Vec::new(),
                set_cookies,
                outcome,
            });
        };
        let tokens = Tokens {
            access: s.access_token.as_ref(),
            id: s.id_token.as_ref(),
        };
        match self
            .upstream
            .upstream_headers(route, &s.identity, tokens, api, now)
        {
            Ok(headers) => Verdict::Pass(Pass {
                identity: Some(s.identity),
                headers,
                set_cookies,
                outcome,
            }),
            Err(reply) => answer(reply, Some(s.identity.sub), Outcome::MissingAttribute),
        }
    }
}

fn answer(reply: Reply, user: Option<String>, outcome: Outcome) -> Verdict {
    Verdict::Answer {
        reply,
        user,
        outcome,
    }
}
