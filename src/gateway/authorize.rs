//! A route's policy on a request that passed authentication: the pure decision
//! (`policy::decide`), then OneAccess's own answer for `policy.oneaccess`, and
//! the refusal (403, JSON for API clients, or a fresh login).

use http::request::Parts;

use super::login::Logins;
use super::{is_api_request, Gateway};
use crate::auth::management::ManagementClient;
use crate::error::AuthError;
use crate::front_door::RequestPath;
use crate::identity::Identity;
use crate::policy::{client_ip, decide, Decision, OnDeny, RequestFacts};
use crate::reply::{Answer, Reply};
use crate::route::Route;
use crate::session::SessionData;

/// A route's policy, and what it may touch.
#[derive(Clone, Copy)]
pub(super) struct Authorizer<'g> {
    trusted_proxies: &'g [ipnet::IpNet],
    management: Option<&'g ManagementClient>,
    /// A denied browser on a `reauthenticate` route is sent to log in afresh.
    logins: Logins<'g>,
}

impl Gateway {
    pub(super) fn authorizer(&self) -> Authorizer<'_> {
        Authorizer {
            trusted_proxies: &self.config.server.trusted_proxies,
            management: self.idp.management.as_ref(),
            logins: self.logins(),
        }
    }
}

impl Authorizer<'_> {
    /// The route's policy on a request that passed authentication: `None` to let it
    /// through, or the answer that refuses it. A browser on a `reauthenticate`
    /// route is sent to a fresh login, unless its session is a few seconds old
    /// (it just did that), so a denied user cannot loop.
    pub(super) async fn authorize(
        &self,
        route: &Route,
        parts: &Parts,
        path: &RequestPath<'_>,
        session: Option<&SessionData>,
        socket: Option<std::net::IpAddr>,
        now: u64,
    ) -> Option<Reply> {
        let policy = route.spec.policy.as_ref()?;
        // The client address matters only to network rules; the headers are joined
        // only for them.
        let client = if policy.networks.is_empty() && policy.deny_networks.is_empty() {
            None
        } else {
            client_address(parts, socket, self.trusted_proxies)
        };
        let facts = RequestFacts {
            method: &parts.method,
            path,
            client_ip: client,
            now,
        };
        let identity = session.map(|s| &s.identity);
        let reason = match decide(policy, &facts, identity) {
            Decision::Deny(reason) => reason,
            Decision::Allow => match (&policy.oneaccess, identity) {
                (Some(rule), Some(id)) => match self.oneaccess_allows(rule, id).await {
                    Ok(true) => return None,
                    Ok(false) => "no account or role in the OneAccess application",
                    Err(e) => {
                        // Fail closed: no fresh answer, no access.
                        tracing::warn!(route = %route.label, error = %e, "OneAccess authorization unavailable");
                        let e = AuthError::Management(e.to_string());
                        return Some(Reply::for_auth_error_to(&e, is_api_request(parts)));
                    }
                },
                _ => return None,
            },
        };
        tracing::info!(route = %route.label, reason, user = identity.map_or("-", |i| i.sub.as_str()), "denied by policy");
        if is_api_request(parts) {
            return Some(Answer::PolicyDenied.reply(true));
        }
        let just_logged_in = session.is_some_and(|s| now < s.issued_at + 30);
        if policy.on_deny == OnDeny::Reauthenticate && session.is_some() && !just_logged_in {
            return Some(self.logins.login_redirect(route, parts, now, true).await);
        }
        Some(Answer::PolicyDenied.reply(false))
    }

    /// Asks OneAccess (through the answer cache) whether the user passes `rule`.
    async fn oneaccess_allows(
        &self,
        rule: &crate::config::OneAccessRule,
        identity: &Identity,
    ) -> Result<bool, AuthError> {
        let Some(m) = self.management else {
            return Err(AuthError::Internal("no management client".into()));
        };
        match identity.claim(&rule.user_id_claim) {
            Some(user_id) if !user_id.is_empty() => m.allows(user_id, rule).await,
            _ => Ok(false),
        }
    }
}

/// The client's address: the socket's, or what `X-Forwarded-For` says when the
/// socket is a trusted proxy (read from the right).
pub(super) fn client_address(
    parts: &Parts,
    socket: Option<std::net::IpAddr>,
    trusted_proxies: &[ipnet::IpNet],
) -> Option<std::net::IpAddr> {
    let xff = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let xff = (!xff.is_empty()).then_some(xff.as_str());
    client_ip(socket, xff, trusted_proxies)
}
