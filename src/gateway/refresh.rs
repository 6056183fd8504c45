//! Token refresh before proxying: the protocol's refresh call, made once per
//! session and token generation (`session::Sessions::renewal`), the route's
//! policy when the IdP refuses, and never an expired access token passed to the
//! app.

use std::sync::Arc;

use http::request::Parts;

use super::keep::Keep;
use super::verdict::Access;
use super::Gateway;
use crate::auth::Login;
use crate::config::{PassToken, RefreshFailure};
use crate::error::AuthError;
use crate::metrics::{Metrics, Revocation};
use crate::route::Route;
use crate::session::{Renewal, SessionData, Sessions};

/// Refreshing a session's tokens, and what it may touch.
#[derive(Clone, Copy)]
pub(super) struct Refresher<'g> {
    keep: &'g Keep,
    sessions: &'g Sessions,
    metrics: &'g Metrics,
}

impl Gateway {
    pub(super) fn refresher(&self) -> Refresher<'_> {
        Refresher {
            keep: &self.keep,
            sessions: &self.sessions,
            metrics: &self.metrics,
        }
    }
}

impl Refresher<'_> {
    pub(super) fn needs_refresh(&self, s: &SessionData, now: u64) -> bool {
        s.refresh_due(now, self.sessions.refresh_margin())
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
        let outcome = self
            .sessions
            .renewal(&s, || self.refresh_once(route, &s, now))
            .await;
        match outcome {
            Renewal::Renewed(new) => {
                let new = (*new).clone();
                let cookies = self.sessions.renewed_cookies(parts, &new, now);
                Access::Granted(new, cookies)
            }
            Renewal::NotNow if passes_expired_token(route, &s, now) => {
                // The app would get an access token past its end: not that.
                tracing::info!(user = %s.identity.sub, "access token expired and not refreshed yet");
                Access::Unavailable
            }
            Renewal::NotNow => Access::Granted(s, cookies),
            Renewal::Refused if route.spec.refresh_failure == RefreshFailure::Serve => {
                // Serve until the session's own end, and stop asking the IdP.
                let mut kept = s;
                kept.refresh_token = None;
                if let Err(e) = self.sessions.save(&kept, now).await {
                    tracing::warn!(error = %e, "could not drop a refused refresh token");
                }
                let cookies = self.sessions.renewed_cookies(parts, &kept, now);
                Access::Granted(kept, cookies)
            }
            Renewal::Refused if route.spec.refresh_failure == RefreshFailure::Reauthenticate => {
                Access::LoginRequired
            }
            Renewal::Refused | Renewal::Ended => {
                match self.sessions.end(&s, now).await {
                    Ok(()) => self.metrics.revocation(Revocation::Refresh),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not end a session after a failed refresh")
                    }
                }
                Access::LoginRequired
            }
        }
    }

    async fn refresh_once(&self, route: &Route, s: &SessionData, now: u64) -> Renewal {
        // Behind a load balancer, one gateway refreshes; the others serve the
        // still-valid session meanwhile, and the browser gets the new cookie from
        // the winner.
        let key = format!("use:refresh:{}:{}", s.id, s.generation);
        match self
            .sessions
            .store()
            .first_use(&key, std::time::Duration::from_secs(60))
            .await
        {
            Ok(true) => {}
            Ok(false) => return Renewal::NotNow,
            Err(e) => {
                tracing::warn!(error = %e, "refresh postponed: the session store is unavailable");
                return Renewal::NotNow;
            }
        }
        let Some(refresh_token) = &s.refresh_token else {
            return Renewal::NotNow;
        };
        let result = match &route.login {
            Some(Login::Oidc(oidc, app)) => {
                oidc.refresh(app, refresh_token, &s.identity.sub, &self.keep.claims)
                    .await
            }
            Some(Login::OAuth2(oauth2, app)) => {
                oauth2.refresh(app, refresh_token).await.map(|g| (None, g))
            }
            Some(Login::Cas(..)) | None => return Renewal::NotNow,
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
                if self.keep.access_token {
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
                if let Err(e) = self.sessions.store().release(&key).await {
                    tracing::warn!(error = %e, "could not release a refresh mark");
                }
                return Renewal::NotNow;
            }
            Err(e @ AuthError::InvalidIdToken(_)) => {
                tracing::warn!(user = %s.identity.sub, error = %e, "refresh ended the session");
                return Renewal::Ended;
            }
            Err(e) => {
                tracing::info!(user = %s.identity.sub, error = %e, "refresh refused");
                return Renewal::Refused;
            }
        }
        if let Err(e) = self.sessions.save(&new, now).await {
            tracing::warn!(error = %e, "refresh not saved: the session store is unavailable");
            return Renewal::NotNow;
        }
        Renewal::Renewed(Arc::new(new))
    }
}

/// Whether serving `s` as it is would hand the app an access token past its
/// end (a route that passes it, and no refresh made).
pub(super) fn passes_expired_token(route: &Route, s: &SessionData, now: u64) -> bool {
    route.spec.pass_token == Some(PassToken::Access)
        && s.access_expires.is_some_and(|end| end <= now)
}
