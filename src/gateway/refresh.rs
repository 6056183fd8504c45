//! Token refresh before proxying: once per session and token generation for all
//! its concurrent requests, the route's policy when the IdP refuses, and never
//! an expired access token passed to the app.

use super::*;

/// How long an attempt that could not refresh (the IdP unreachable, another
/// gateway refreshing) stands before a request tries again: a down IdP gets one
/// attempt per session this often, not one per request.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// The outcome of one refresh attempt, shared by every request that waited on it.
#[derive(Clone)]
pub(super) enum Refresh {
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
    pub(super) fn needs_refresh(&self, s: &SessionData, now: u64) -> bool {
        let margin = self
            .config
            .provider
            .as_ref()
            .map_or(60, |p| p.refresh_margin.as_secs());
        s.refresh_token.is_some() && s.access_expires.is_some_and(|x| now + margin >= x)
    }

    /// Refreshes a session's tokens before proxying, once for all its concurrent
    /// requests, and applies the route's policy when the IdP refuses.
    pub(super) async fn refreshed(
        &self,
        route: &Route,
        parts: &Parts,
        s: SessionData,
        cookies: Vec<String>,
        now: u64,
    ) -> Access {
        // One attempt per token generation: a request still carrying the old
        // cookie gets the session the attempt made; one with the new cookie, due
        // again, makes the next attempt.
        let generation = format!("{}:{}", s.id, s.generation);
        let mut outcome = self.attempt(&generation, route, &s, now).await;
        if matches!(outcome, (Refresh::NotNow, at) if at.elapsed() >= RETRY_AFTER) {
            self.refreshing.invalidate(&generation);
            outcome = self.attempt(&generation, route, &s, now).await;
        }
        match outcome.0 {
            Refresh::Renewed(new) => {
                let new = (*new).clone();
                let cookies = self.renewed_cookies(parts, &new, now);
                Access::Granted(new, cookies)
            }
            Refresh::NotNow if self.passes_expired_token(route, &s, now) => {
                // The app would get an access token past its end: not that.
                tracing::info!(user = %s.identity.sub, "access token expired and not refreshed yet");
                Access::Unavailable
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

    /// The outcome of this generation's attempt (made now, or shared with the
    /// requests that came first), and when it was made.
    async fn attempt(
        &self,
        generation: &str,
        route: &Route,
        s: &SessionData,
        now: u64,
    ) -> (Refresh, std::time::Instant) {
        let cell = self.refreshing.get_with(generation.to_string(), || {
            Arc::new(tokio::sync::OnceCell::new())
        });
        cell.get_or_init(|| async {
            (
                self.refresh_once(&route.spec, s, now).await,
                std::time::Instant::now(),
            )
        })
        .await
        .clone()
    }

    /// Whether serving `s` as it is would hand the app an access token past its
    /// end (a route that passes it, and no refresh made).
    pub(super) fn passes_expired_token(&self, route: &Route, s: &SessionData, now: u64) -> bool {
        route.spec.pass_token == Some(PassToken::Access)
            && s.access_expires.is_some_and(|end| end <= now)
    }

    pub(super) async fn refresh_once(
        &self,
        route: &RouteSpec,
        s: &SessionData,
        now: u64,
    ) -> Refresh {
        // Behind a load balancer, one gateway refreshes; the others serve the
        // still-valid session meanwhile, and the browser gets the new cookie from
        // the winner.
        let key = format!("use:refresh:{}:{}", s.id, s.generation);
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
                if let Some(mut identity) = identity {
                    identity.keep_missing_from(&s.identity);
                    new.identity = identity;
                }
                new.access_expires = grant.expires_in.map(|e| now + e);
                new.generation = s.generation.wrapping_add(1);
                if grant.refresh_token.is_some() {
                    new.refresh_token = grant.refresh_token;
                }
                if self.keep_access_token {
                    new.access_token = grant.access_token;
                }
                if new.id_token.is_some() && grant.id_token.is_some() {
                    new.id_token = grant.id_token;
                }
                tracing::info!(user = %new.identity.sub, "tokens refreshed");
            }
            Err(e @ (AuthError::IdpUnavailable(_) | AuthError::Store(_))) => {
                tracing::warn!(error = %e, "refresh postponed: the identity provider is unavailable");
                // The refresh token was not spent: the next attempt, here or on
                // another gateway, may use it.
                if let Err(e) = self.store.release(&key).await {
                    tracing::warn!(error = %e, "could not release a refresh mark");
                }
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
}
