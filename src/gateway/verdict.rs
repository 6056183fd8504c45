//! One request to a route, judged from start to end: who it is (session cookie
//! or bearer token), whether the route's policy lets it through, and what the app
//! is then told. The proxy and the forward-auth endpoint both ask this, so the
//! two can never judge a request differently.

use http::{HeaderName, HeaderValue};

use super::upstream::Tokens;
use super::*;

/// What to do with a request to a route.
pub enum Verdict {
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

impl Gateway {
    /// Judges a request to `route`. `path` is the front door's reading of it;
    /// `socket` the peer's address. `redirect` lets a browser without a session be
    /// sent to log in; without it (nginx forward auth) the answer is a 401.
    pub async fn judge(
        &self,
        route: &Route,
        parts: &Parts,
        path: &RequestPath<'_>,
        socket: Option<std::net::IpAddr>,
        redirect: bool,
        now: u64,
    ) -> Verdict {
        let api = is_api_request(parts);
        let access = match self.access(route, parts, now).await {
            Ok(a) => a,
            Err(e) => {
                // Never a silent login loop: a clear 503 until the store is back.
                let reply = Reply::for_auth_error_to(&AuthError::Store(e), api);
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
                let mut reply = Reply::for_auth_error_to(&e, api);
                reply.headers.push(("retry-after", "2".into()));
                return answer(reply, None, Outcome::RefreshPending);
            }
            Access::LoginRequired => {
                let reply = if (api || !redirect) && !route.spec.bearer_audiences.is_empty() {
                    Reply::bearer_challenge(
                        "invalid_request",
                        "This resource needs a bearer token or a signed-in session.",
                    )
                } else if !redirect {
                    Answer::Unauthenticated.reply(true)
                } else {
                    self.login_required(route, parts, now).await
                };
                return answer(reply, None, Outcome::LoginRequired);
            }
        };
        if let Some(reply) = self
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
        match self.upstream_headers(route, &s.identity, tokens, api, now) {
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
