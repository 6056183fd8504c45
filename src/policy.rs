//! Per-route authorization as pure functions. The identity lists are alternatives:
//! a user in `users`, or with an email in `emails`, or a domain in
//! `email_domains`, or a group in `groups`. Every other kind of rule must also
//! hold: required claims, HTTP methods, path prefixes, client networks, time
//! windows.

pub mod schedule;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::identity::claims::{list_items, Identity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDeny {
    /// 403 with a page (JSON for API clients).
    Forbid,
    /// Send a browser through a fresh login (maybe as another user); API clients
    /// get 403.
    Reauthenticate,
}

#[derive(Debug, Clone)]
pub struct Policy {
    /// `sub` or `preferred_username` values.
    pub users: Vec<String>,
    /// Whole addresses, lower case.
    pub(crate) emails: Vec<String>,
    /// `example.com` (exactly) or `.example.com` (its subdomains), lower case.
    pub email_domains: Vec<String>,
    pub groups: Vec<String>,
    /// The claim that lists the user's groups or roles.
    pub(crate) groups_claim: String,
    /// Claim name -> a value it must equal (or, for a list, contain).
    pub claims: Vec<(String, String)>,
    pub methods: Vec<http::Method>,
    /// Allowed path prefixes, on segment boundaries, matched on the normalized path.
    pub paths: Vec<String>,
    /// The client must be in one of these (when any are given)...
    pub networks: Vec<IpNet>,
    /// ...and in none of these.
    pub deny_networks: Vec<IpNet>,
    /// When the route may be used; `None`: always.
    pub(crate) schedule: Option<schedule::Schedule>,
    /// Asked of OneAccess after every other rule holds (see `auth::management`).
    pub oneaccess: Option<OneAccessRule>,
    pub on_deny: OnDeny,
}

impl Policy {
    /// Claims the session must keep for this policy to decide.
    pub(crate) fn claims_used(&self) -> impl Iterator<Item = &str> {
        let identity = !(self.emails.is_empty() && self.email_domains.is_empty());
        identity
            .then_some("email")
            .into_iter()
            .chain((!self.groups.is_empty()).then_some(self.groups_claim.as_str()))
            .chain((!self.users.is_empty()).then_some("preferred_username"))
            .chain(self.claims.iter().map(|(k, _)| k.as_str()))
            .chain(self.oneaccess.iter().map(|o| o.user_id_claim.as_str()))
    }

    fn has_identity_rules(&self) -> bool {
        !(self.users.is_empty()
            && self.emails.is_empty()
            && self.email_domains.is_empty()
            && self.groups.is_empty()
            && self.claims.is_empty()
            && self.oneaccess.is_none())
    }
}

/// A policy rule answered by OneAccess: the user holds an account in the
/// application, and one of `roles` (role codes) when any are given.
#[derive(Debug, Clone)]
pub struct OneAccessRule {
    pub application_id: String,
    pub roles: Vec<String>,
    /// The claim that carries the OneAccess user id (`sub` for OIDC and OAuth2).
    pub(crate) user_id_claim: String,
}

/// What a request brings to a decision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFacts<'a> {
    pub method: &'a http::Method,
    /// The request's path, as the front door read it: `paths` rules must hold
    /// for its judged and its folded reading alike.
    pub path: &'a crate::front_door::path::RequestPath<'a>,
    pub(crate) client_ip: Option<IpAddr>,
    /// The clock, unix seconds.
    pub now: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    /// Denied, and why (for the log line, not the user).
    Deny(&'static str),
}

/// Whether an allowed prefix covers the path in every reading an app could make
/// of it: the judged one, and the folded one with case ignored (an app that reads
/// `/Reports/Secret` as `/reports/secret` must not find it allowed by `/Reports`).
fn paths_allow(allowed: &[String], path: &crate::front_door::path::RequestPath) -> bool {
    use crate::front_door::path::{prefix_matches, prefix_matches_ignore_case};
    allowed.iter().any(|pre| prefix_matches(pre, path.judged()))
        && allowed
            .iter()
            .any(|pre| prefix_matches_ignore_case(pre, path.folded()))
}

pub(crate) fn decide(p: &Policy, req: &RequestFacts, identity: Option<&Identity>) -> Decision {
    if !p.deny_networks.is_empty() || !p.networks.is_empty() {
        let Some(ip) = req.client_ip else {
            return Decision::Deny("client address unknown");
        };
        if p.deny_networks.iter().any(|n| n.contains(&ip)) {
            return Decision::Deny("client network denied");
        }
        if !p.networks.is_empty() && !p.networks.iter().any(|n| n.contains(&ip)) {
            return Decision::Deny("client network not allowed");
        }
    }
    if !p.methods.is_empty() && !p.methods.contains(req.method) {
        return Decision::Deny("method not allowed");
    }
    if !p.paths.is_empty() && !paths_allow(&p.paths, req.path) {
        return Decision::Deny("path not allowed");
    }
    if p.schedule.as_ref().is_some_and(|s| !s.contains(req.now)) {
        return Decision::Deny("outside the allowed hours");
    }
    if !p.has_identity_rules() {
        return Decision::Allow;
    }
    let Some(id) = identity else {
        return Decision::Deny("no identity");
    };
    for (claim, want) in &p.claims {
        if !id
            .claim(claim)
            .is_some_and(|v| v == want || list_items(v).any(|x| x == want))
        {
            return Decision::Deny("required claim missing");
        }
    }
    let who_rules = !(p.users.is_empty()
        && p.emails.is_empty()
        && p.email_domains.is_empty()
        && p.groups.is_empty());
    if !who_rules {
        return Decision::Allow;
    }
    let by_user = p.users.iter().any(|u| {
        Some(u.as_str()) == id.claim("sub") || Some(u.as_str()) == id.claim("preferred_username")
    });
    let email = id.claim("email").and_then(parse_email);
    let by_email = email
        .as_ref()
        .is_some_and(|(whole, _)| p.emails.iter().any(|e| e == whole));
    let by_domain = email
        .as_ref()
        .is_some_and(|(_, domain)| p.email_domains.iter().any(|d| domain_matches(d, domain)));
    let by_group = id
        .claim(&p.groups_claim)
        .is_some_and(|v| list_items(v).any(|g| p.groups.iter().any(|want| want == g)));
    if by_user || by_email || by_domain || by_group {
        Decision::Allow
    } else {
        Decision::Deny("user not allowed")
    }
}

/// `(address, domain)`, both lower case, for a plain `local@domain` address.
/// Anything with a second `@`, quotes, spaces or control characters is no
/// address at all, so `attacker@evil.com@company.com` matches no `company.com`
/// rule (oauth2-proxy GHSA-c5c4).
pub(crate) fn parse_email(raw: &str) -> Option<(String, String)> {
    let e = raw.to_ascii_lowercase();
    if e.bytes()
        .any(|b| b <= b' ' || b == 0x7f || b == b'"' || b == b'\\' || b == b'(' || b == b'<')
    {
        return None;
    }
    let (local, domain) = e.split_once('@')?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return None;
    }
    let domain = domain.to_string();
    Some((e, domain))
}

/// `example.com` matches exactly; `.example.com` matches its subdomains only.
fn domain_matches(rule: &str, domain: &str) -> bool {
    match rule.strip_prefix('.') {
        Some(parent) => domain.len() > parent.len() + 1 && domain.ends_with(rule),
        None => domain == rule,
    }
}

/// Whether `ip` is one of the configured trusted proxies.
pub(crate) fn is_trusted_proxy(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// The client's address: the socket's, unless the socket is a trusted proxy; then
/// the rightmost `X-Forwarded-For` address that is not itself a trusted proxy
/// (the leftmost entries are whatever the client wrote).
pub(crate) fn client_ip(
    socket: Option<IpAddr>,
    xff: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let socket = socket?;
    let is_trusted = |ip: &IpAddr| is_trusted_proxy(*ip, trusted);
    if !is_trusted(&socket) {
        return Some(socket);
    }
    let Some(xff) = xff else {
        return Some(socket);
    };
    let mut last = socket;
    for hop in xff.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => last = ip,
            Ok(ip) => return Some(ip),
            // A malformed hop: trust nothing to its left.
            Err(_) => return Some(last),
        }
    }
    Some(last)
}

#[cfg(test)]
mod tests;
