//! The policy decision table: who, how, from where and when.

use super::*;

fn policy() -> Policy {
    Policy {
        users: vec![],
        emails: vec![],
        email_domains: vec![],
        groups: vec![],
        groups_claim: "groups".into(),
        claims: vec![],
        methods: vec![],
        paths: vec![],
        networks: vec![],
        deny_networks: vec![],
        schedule: None,
        oneaccess: None,
        on_deny: OnDeny::Forbid,
    }
}

fn id(sub: &str, claims: &[(&str, &str)]) -> Identity {
    Identity {
        sub: sub.into(),
        claims: claims
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// 2026-11-23 12:00 UTC, a Monday.
const MONDAY_NOON_UTC: u64 = 1_795_435_200;

fn net(s: &str) -> IpNet {
    s.parse().expect("cidr")
}

/// One row: a name, how the policy differs from empty, the request, the identity,
/// and the expected decision.
struct Row {
    name: &'static str,
    policy: fn(&mut Policy),
    method: &'static str,
    path: &'static str,
    ip: &'static str,
    identity: Option<Identity>,
    allow: bool,
}

#[test]
fn decision_table() {
    let alice = || {
        Some(id(
            "20240001",
            &[
                ("preferred_username", "alice"),
                ("email", "alice@example.com"),
                ("groups", "staff\u{1f}dev"),
                ("department", "eng"),
            ],
        ))
    };
    let mallory = || {
        Some(id(
            "666",
            &[
                ("email", "attacker@evil.com@example.com"),
                ("groups", "staff-ish"),
            ],
        ))
    };
    let rows = vec![
        Row {
            name: "empty policy allows",
            policy: |_| {},
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: true,
        },
        Row {
            name: "user by sub",
            policy: |p| p.users = vec!["20240001".into()],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: true,
        },
        Row {
            name: "user by login name",
            policy: |p| p.users = vec!["alice".into()],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: true,
        },
        Row {
            name: "other user",
            policy: |p| p.users = vec!["bob".into()],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: false,
        },
        Row {
            name: "email exact",
            policy: |p| p.emails = vec!["alice@example.com".into()],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: true,
        },
        Row {
            name: "email domain",
            policy: |p| p.email_domains = vec!["example.com".into()],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: true,
        },
        Row {
            name: "two @ never match a domain",
            policy: |p| p.email_domains = vec!["example.com".into()],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: mallory(),
            allow: false,
        },
        Row {
            name: "subdomain rule needs a subdomain",
            policy: |p| p.email_domains = vec![".example.com".into()],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: false,
        },
        Row {
            name: "group from the list",
            policy: |p| p.groups = vec!["dev".into()],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: true,
        },
        Row {
            name: "group names match whole",
            policy: |p| p.groups = vec!["staff".into()],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: mallory(),
            allow: false,
        },
        Row {
            name: "identity lists are alternatives",
            policy: |p| {
                p.users = vec!["bob".into()];
                p.groups = vec!["staff".into()];
            },
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: true,
        },
        Row {
            name: "claim equals",
            policy: |p| p.claims = vec![("department".into(), "eng".into())],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: true,
        },
        Row {
            name: "claim list contains",
            policy: |p| p.claims = vec![("groups".into(), "dev".into())],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: true,
        },
        Row {
            name: "claim differs",
            policy: |p| p.claims = vec![("department".into(), "sales".into())],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: false,
        },
        Row {
            name: "claims AND users",
            policy: |p| {
                p.users = vec!["alice".into()];
                p.claims = vec![("department".into(), "sales".into())];
            },
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: false,
        },
        Row {
            name: "identity rules without identity",
            policy: |p| p.users = vec!["alice".into()],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: None,
            allow: false,
        },
        Row {
            name: "method allowed",
            policy: |p| p.methods = vec![http::Method::GET],
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: None,
            allow: true,
        },
        Row {
            name: "method not allowed",
            policy: |p| p.methods = vec![http::Method::GET],
            method: "DELETE",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: false,
        },
        Row {
            name: "path prefix",
            policy: |p| p.paths = vec!["/reports".into()],
            method: "GET",
            path: "/reports/q1",
            ip: "10.0.0.1",
            identity: alice(),
            allow: true,
        },
        Row {
            name: "path prefix on segments",
            policy: |p| p.paths = vec!["/reports".into()],
            method: "GET",
            path: "/reportsx",
            ip: "10.0.0.1",
            identity: alice(),
            allow: false,
        },
        Row {
            name: "network in",
            policy: |p| p.networks = vec![net("10.0.0.0/8")],
            method: "GET",
            path: "/",
            ip: "10.1.2.3",
            identity: None,
            allow: true,
        },
        Row {
            name: "network out",
            policy: |p| p.networks = vec![net("10.0.0.0/8")],
            method: "GET",
            path: "/",
            ip: "192.168.1.1",
            identity: alice(),
            allow: false,
        },
        Row {
            name: "network denied",
            policy: |p| {
                p.networks = vec![net("10.0.0.0/8")];
                p.deny_networks = vec![net("10.9.0.0/16")];
            },
            method: "GET",
            path: "/",
            ip: "10.9.1.1",
            identity: alice(),
            allow: false,
        },
        Row {
            name: "inside a weekday window",
            policy: |p| p.schedule = Some(weekdays(chrono_tz::UTC, 9, 17)),
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: true,
        },
        Row {
            name: "the same instant is evening in Shanghai",
            policy: |p| p.schedule = Some(weekdays(chrono_tz::Asia::Shanghai, 9, 17)),
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: false,
        },
        Row {
            name: "07:00 in New York is inside 06-17, and the user is allowed",
            policy: |p| {
                p.users = vec!["alice".into()];
                p.schedule = Some(weekdays(chrono_tz::America::New_York, 6, 17));
            },
            method: "GET",
            path: "/",
            ip: "10.0.0.1",
            identity: alice(),
            allow: true,
        },
        Row {
            name: "ipv6",
            policy: |p| p.networks = vec![net("fd00::/8")],
            method: "GET",
            path: "/",
            ip: "fd12::1",
            identity: None,
            allow: true,
        },
    ];
    for row in rows {
        let mut p = policy();
        (row.policy)(&mut p);
        let method: http::Method = row.method.parse().expect("method");
        let path = crate::front_door::canonical(row.path.as_bytes()).expect("path");
        let facts = RequestFacts {
            method: &method,
            path: &path,
            client_ip: row.ip.parse().ok(),
            now: MONDAY_NOON_UTC,
        };
        let got = decide(&p, &facts, row.identity.as_ref());
        assert_eq!(got == Decision::Allow, row.allow, "{}: {got:?}", row.name);
    }
}

fn weekdays(zone: chrono_tz::Tz, from_hour: u16, to_hour: u16) -> schedule::Schedule {
    schedule::Schedule {
        zone,
        windows: vec![schedule::Window {
            days: schedule::parse_days("mon-fri").expect("days"),
            from: from_hour * 60,
            to: to_hour * 60,
        }],
    }
}

#[test]
fn emails_are_parsed_strictly() {
    assert_eq!(
        parse_email("Alice@Example.COM"),
        Some(("alice@example.com".into(), "example.com".into()))
    );
    for bad in [
        "attacker@evil.com@example.com",
        "@example.com",
        "alice@",
        "a b@example.com",
        "\"a@b\"@example.com",
        "alice@example..com",
        "alice@.example.com",
        "alice",
        "alice@example.com\r\n",
    ] {
        assert_eq!(parse_email(bad), None, "{bad:?}");
    }
}

#[test]
fn the_client_address_trusts_only_configured_proxies() {
    let trusted = [net("127.0.0.1/32"), net("10.0.0.0/8")];
    let ip = |s: &str| s.parse::<IpAddr>().ok();
    // A direct client's X-Forwarded-For is ignored.
    assert_eq!(
        client_ip(ip("203.0.113.9"), Some("10.1.1.1"), &trusted),
        ip("203.0.113.9")
    );
    // Behind a trusted proxy: the rightmost untrusted hop.
    assert_eq!(
        client_ip(
            ip("127.0.0.1"),
            Some("1.2.3.4, 198.51.100.7, 10.0.0.5"),
            &trusted
        ),
        ip("198.51.100.7")
    );
    // Spoofed leftmost entries do not count.
    assert_eq!(
        client_ip(ip("127.0.0.1"), Some("10.0.0.1, 198.51.100.7"), &trusted),
        ip("198.51.100.7")
    );
    // Garbage stops the walk.
    assert_eq!(
        client_ip(ip("127.0.0.1"), Some("1.2.3.4, junk, 10.0.0.5"), &trusted),
        ip("10.0.0.5")
    );
    assert_eq!(client_ip(ip("127.0.0.1"), None, &trusted), ip("127.0.0.1"));
    assert_eq!(client_ip(None, Some("1.2.3.4"), &trusted), None);
}
