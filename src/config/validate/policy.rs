//! `[route.policy]`: who may use a route, from where, when, and how.

use super::Collector;
use crate::config::file::{OneAccessFile, PolicyFile};
use crate::config::runtime::{OneAccessRule, Protocol};
use crate::policy::schedule::{parse_clock, parse_days, Schedule, Window, EVERY_DAY};

/// A CIDR (`10.0.0.0/8`), or one address taken as a /32 or /128.
pub(super) fn cidr(c: &mut Collector, at: &str, text: &str) -> Option<ipnet::IpNet> {
    let t = text.trim();
    let parsed = t
        .parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| t.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from));
    if parsed.is_none() {
        c.add(at, format!("`{text}` is not an address or CIDR range"));
    }
    parsed
}

pub(super) fn policy(
    c: &mut Collector,
    i: usize,
    f: &PolicyFile,
    protocol: Protocol,
    management: bool,
) -> crate::policy::Policy {
    use crate::policy::{parse_email, OnDeny, Policy};
    let at = |field: &str| format!("route[{i}].policy.{field}");
    let mut emails = Vec::new();
    for (k, e) in f.emails.iter().enumerate() {
        match parse_email(e) {
            Some((whole, _)) => emails.push(whole),
            None => c.add(
                at(&format!("emails[{k}]")),
                format!("`{e}` is not a plain address"),
            ),
        }
    }
    let mut email_domains = Vec::new();
    for (k, d) in f.email_domains.iter().enumerate() {
        let d = d.trim().to_ascii_lowercase();
        let bare = d.strip_prefix('.').unwrap_or(&d);
        if bare.is_empty() || bare.contains(['@', '/', ' ', '*']) || bare.contains("..") {
            c.add(
                at(&format!("email_domains[{k}]")),
                "must be a domain (`example.com`) or `.example.com` for its subdomains",
            );
        } else {
            email_domains.push(d);
        }
    }
    let mut methods = Vec::new();
    for (k, m) in f.methods.iter().enumerate() {
        match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
            Ok(m) => methods.push(m),
            Err(_) => c.add(
                at(&format!("methods[{k}]")),
                format!("`{m}` is not a method"),
            ),
        }
    }
    for (k, p) in f.paths.iter().enumerate() {
        if !crate::front_door::path::is_canonical_prefix(p) {
            c.add(
                at(&format!("paths[{k}]")),
                crate::front_door::path::CANONICAL_PREFIX_RULE,
            );
        }
    }
    let networks = f
        .networks
        .iter()
        .enumerate()
        .filter_map(|(k, n)| cidr(c, &at(&format!("networks[{k}]")), n))
        .collect();
    let deny_networks = f
        .deny_networks
        .iter()
        .enumerate()
        .filter_map(|(k, n)| cidr(c, &at(&format!("deny_networks[{k}]")), n))
        .collect();
    let on_deny = match f.on_deny.as_deref() {
        None | Some("forbid") => OnDeny::Forbid,
        Some("reauthenticate") => OnDeny::Reauthenticate,
        Some(other) => {
            c.add(
                at("on_deny"),
                format!("`{other}` is not forbid or reauthenticate"),
            );
            OnDeny::Forbid
        }
    };
    let schedule = schedule(c, i, f);
    let oneaccess = f
        .oneaccess
        .as_ref()
        .and_then(|o| oneaccess_rule(c, i, o, protocol, management));
    let identity_rules = !(f.users.is_empty()
        && f.emails.is_empty()
        && f.email_domains.is_empty()
        && f.groups.is_empty()
        && f.claims.is_empty()
        && f.oneaccess.is_none());
    if identity_rules && protocol == Protocol::Public {
        c.add(
            format!("route[{i}].policy"),
            "a public route has no user: rules on users, emails, groups, claims or OneAccess accounts need a login protocol",
        );
    }
    Policy {
        users: f.users.clone(),
        emails,
        email_domains,
        groups: f.groups.clone(),
        groups_claim: f.groups_claim.clone().unwrap_or_else(|| "groups".into()),
        claims: f
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        methods,
        paths: f
            .paths
            .iter()
            .map(|p| p.trim_end_matches('/').to_string())
            .map(|p| if p.is_empty() { "/".into() } else { p })
            .collect(),
        networks,
        deny_networks,
        schedule,
        oneaccess,
        on_deny,
    }
}

/// `[route.policy.oneaccess]`.
fn oneaccess_rule(
    c: &mut Collector,
    i: usize,
    f: &OneAccessFile,
    protocol: Protocol,
    management: bool,
) -> Option<OneAccessRule> {
    let at = |field: &str| format!("route[{i}].policy.oneaccess{field}");
    let mut ok = true;
    if !management {
        c.add(
            at(""),
            "asks OneAccess's management API: configure [provider.management]",
        );
        ok = false;
    }
    let application_id = f
        .application_id
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    if application_id.is_empty() {
        c.add(
            at(".application_id"),
            "is required: the application's id in the OneAccess console",
        );
        ok = false;
    }
    for (k, r) in f.roles.iter().enumerate() {
        if r.trim().is_empty() {
            c.add(at(&format!(".roles[{k}]")), "must be a role code");
            ok = false;
        }
    }
    let user_id_claim = match (f.user_id_claim.as_deref(), protocol) {
        (Some(claim), _) if !claim.trim().is_empty() => claim.trim().to_string(),
        (Some(_), _) => {
            c.add(at(".user_id_claim"), "must be a claim name");
            ok = false;
            String::new()
        }
        // A CAS `user` is a login name, not OneAccess's user id.
        (None, Protocol::Cas) => {
            c.add(
                at(".user_id_claim"),
                "a CAS route must name the attribute that carries the OneAccess user id",
            );
            ok = false;
            String::new()
        }
        (None, _) => "sub".into(),
    };
    ok.then(|| OneAccessRule {
        application_id: application_id.to_string(),
        roles: f.roles.iter().map(|r| r.trim().to_string()).collect(),
        user_id_claim,
    })
}

/// `time_zone` and `[[route.policy.windows]]`.
fn schedule(c: &mut Collector, i: usize, f: &PolicyFile) -> Option<Schedule> {
    let at = |field: &str| format!("route[{i}].policy.{field}");
    let zone = match f.time_zone.as_deref() {
        None => chrono_tz::UTC,
        Some(z) => match z.parse::<chrono_tz::Tz>() {
            Ok(z) => z,
            Err(_) => {
                c.add(
                    at("time_zone"),
                    format!("`{z}` is not a time zone name such as `Asia/Shanghai` or `UTC`"),
                );
                chrono_tz::UTC
            }
        },
    };
    if f.windows.is_empty() {
        if f.time_zone.is_some() {
            c.add(
                at("time_zone"),
                "is only used with [[route.policy.windows]]",
            );
        }
        return None;
    }
    let mut windows = Vec::new();
    for (k, w) in f.windows.iter().enumerate() {
        let at = |field: &str| at(&format!("windows[{k}].{field}"));
        let mut days = if w.days.is_empty() { EVERY_DAY } else { 0 };
        for (d, text) in w.days.iter().enumerate() {
            match parse_days(text) {
                Some(mask) => days |= mask,
                None => c.add(
                    at(&format!("days[{d}]")),
                    format!("`{text}` is not a day (`mon`..`sun`) or a range such as `mon-fri`"),
                ),
            }
        }
        let clock = |c: &mut Collector, field: &str, v: Option<&str>| match v.map(parse_clock) {
            Some(Some(m)) => Some(m),
            Some(None) => {
                c.add(
                    at(field),
                    "must be a time of day, `HH:MM` (`24:00` for midnight)",
                );
                None
            }
            None => {
                c.add(at(field), "is required, `HH:MM`");
                None
            }
        };
        let from = clock(c, "from", w.from.as_deref());
        let to = clock(c, "to", w.to.as_deref());
        if let (Some(from), Some(to)) = (from, to) {
            if from == to || from == 1440 {
                c.add(
                    at("to"),
                    "the window is empty (for all day, write from = \"00:00\", to = \"24:00\")",
                );
            } else {
                windows.push(Window { days, from, to });
            }
        }
    }
    Some(Schedule { zone, windows })
}
