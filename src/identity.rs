//! Who the user is, and how that reaches the app: the identity headers are stripped
//! from what the client sent (every case, `_` and `.` spelling) and then set from the
//! session, never from the request.

use std::borrow::Cow;

use http::{HeaderName, HeaderValue};

use crate::config::{HeaderEncoding, HeaderRule, HeaderSource, Missing, TemplatePart};

pub mod claims;
mod encoding;

pub(crate) use claims::{list_items, LIST_SEP};
pub use claims::{lookup, Identity};

/// Every header name the gateway manages, on any route: the set that is stripped
/// from client requests everywhere, public routes included.
#[derive(Debug, Clone, Default)]
pub struct ManagedHeaders {
    names: Vec<HeaderName>,
}

impl ManagedHeaders {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a HeaderName>) -> ManagedHeaders {
        let mut v: Vec<HeaderName> = Vec::new();
        for n in names {
            if !v.iter().any(|m| loosely_equal(m.as_str(), n.as_str())) {
                v.push(n.clone());
            }
        }
        ManagedHeaders { names: v }
    }

    /// Whether a client-sent header is a spelling of a managed one. Proxies and
    /// frameworks fold `_` and `.` into `-` (CGI, WSGI, Rack...), so
    /// `X_Forwarded_Email` reaches the app as `X-Forwarded-Email`
    /// (oauth2-proxy CVE-2025-64484).
    pub fn matches(&self, client_name: &str) -> bool {
        self.names
            .iter()
            .any(|m| loosely_equal(m.as_str(), client_name))
    }

    /// The names in `present` that must be removed before proxying.
    pub fn to_strip<'a>(&self, present: impl Iterator<Item = &'a HeaderName>) -> Vec<HeaderName> {
        present
            .filter(|n| self.matches(n.as_str()))
            .cloned()
            .collect()
    }
}

/// ASCII case-insensitive equality that also treats `_` and `.` as `-`.
fn loosely_equal(a: &str, b: &str) -> bool {
    fn fold(c: u8) -> u8 {
        match c {
            b'_' | b'.' => b'-',
            c => c.to_ascii_lowercase(),
        }
    }
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// A header rule with `missing = "reject"` found nothing to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingValue(pub HeaderName);

/// The identity headers for one route, in rule order. A value the user does not
/// have gives no header, or `MissingValue` when the rule rejects such requests.
/// Values are sanitised (`sanitized_value`), so no claim can split or forge a
/// header, and written in the rule's encoding.
pub fn header_values(
    rules: &[HeaderRule],
    identity: &Identity,
) -> Result<Vec<(HeaderName, HeaderValue)>, MissingValue> {
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        match render(r, identity) {
            Some(text) => out.push((r.name.clone(), value_in(r.encoding, &text))),
            None if r.missing == Missing::Reject => return Err(MissingValue(r.name.clone())),
            None => {}
        }
    }
    Ok(out)
}

/// One rule's value for this user, `None` when a claim it needs is missing.
/// Borrowed where it can be: most values are one claim with no list in it, and
/// copying each only to copy it again into the header cost an allocation more.
fn render<'a>(rule: &'a HeaderRule, identity: &'a Identity) -> Option<Cow<'a, str>> {
    let claim = |name: &str| -> Option<Cow<'a, str>> {
        let v = identity.claim(name)?;
        Some(if v.contains(LIST_SEP) {
            Cow::Owned(v.replace(LIST_SEP, &rule.separator))
        } else {
            Cow::Borrowed(v)
        })
    };
    match &rule.source {
        HeaderSource::Claim(name) => claim(name),
        HeaderSource::Value(v) => Some(Cow::Borrowed(v)),
        HeaderSource::Template(parts) => {
            let mut out = String::new();
            for p in parts {
                match p {
                    TemplatePart::Text(t) => out.push_str(t),
                    TemplatePart::Claim(name) => out.push_str(&claim(name)?),
                }
            }
            Some(Cow::Owned(out))
        }
    }
}

/// The header value of `text` in `how`. The default, UTF-8, is `sanitized_value`
/// as it always was: no other work, and no copy, on the hot path.
fn value_in(how: HeaderEncoding, text: &str) -> HeaderValue {
    match how {
        HeaderEncoding::Utf8 => sanitized_value(text),
        other => encoding::encoded_value(other, text),
    }
}

/// Makes a header value from arbitrary text. UTF-8 is passed as bytes (OneAccess
/// names are often Chinese); control bytes become spaces.
pub(crate) fn sanitized_value(v: &str) -> HeaderValue {
    let bytes = v.as_bytes();
    let clean = bytes.iter().all(|b| *b >= 0x20 && *b != 0x7f);
    let result = if clean {
        HeaderValue::from_bytes(bytes)
    } else {
        let fixed: Vec<u8> = bytes
            .iter()
            .map(|b| if *b < 0x20 || *b == 0x7f { b' ' } else { *b })
            .collect();
        HeaderValue::from_bytes(&fixed)
    };
    // Cannot fail once control bytes are gone; an empty value is the safe fallback.
    result.unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(name: &'static str, source: HeaderSource) -> HeaderRule {
        HeaderRule {
            name: HeaderName::from_static(name),
            source,
            missing: Missing::Omit,
            separator: ",".into(),
            encoding: HeaderEncoding::Utf8,
        }
    }

    fn claim(name: &str) -> HeaderSource {
        HeaderSource::Claim(name.into())
    }

    fn render_all(
        rules: &[HeaderRule],
        id: &Identity,
    ) -> Result<Vec<(String, Vec<u8>)>, MissingValue> {
        Ok(header_values(rules, id)?
            .into_iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect())
    }

    #[test]
    fn every_spelling_of_a_managed_header_matches() {
        let m = ManagedHeaders::new(&[HeaderName::from_static("x-forwarded-email")]);
        for spelled in [
            "x-forwarded-email",
            "X-Forwarded-Email",
            "X_Forwarded_Email",
            "x.forwarded.email",
            "X-FORWARDED_EMAIL",
        ] {
            assert!(m.matches(spelled), "{spelled}");
        }
        assert!(!m.matches("x-forwarded-emails"));
        assert!(!m.matches("x-forwarded-for"));
    }

    #[test]
    fn claims_are_flattened_and_filtered() {
        let c = json!({"email": "a@x", "age": 42, "admin": true, "groups": ["a", "b", {"x":1}],
                       "addr": {"c": 1}, "n": null});
        let want: Vec<String> = ["email", "age", "admin", "groups", "addr", "n", "missing"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let id = Identity::from_claims("u1".into(), c.as_object().expect("obj"), &want);
        assert_eq!(id.claim("sub"), Some("u1"));
        assert_eq!(id.claim("email"), Some("a@x"));
        assert_eq!(id.claim("age"), Some("42"));
        assert_eq!(id.claim("admin"), Some("true"));
        let groups = id
            .claim("groups")
            .map(|g| list_items(g).collect::<Vec<_>>());
        assert_eq!(groups.unwrap_or_default(), ["a", "b"]);
        assert_eq!(id.claim("addr"), None);
        assert_eq!(id.claim("n"), None);
    }

    #[test]
    fn header_values_skip_missing_and_sanitize() {
        let id = Identity {
            sub: "u1".into(),
            claims: vec![("name".into(), "Eve\r\nX-Admin: yes".into())],
        };
        let rules = [
            rule("x-user", claim("sub")),
            rule("x-name", claim("name")),
            rule("x-mail", claim("email")),
        ];
        assert_eq!(
            render_all(&rules, &id).expect("values"),
            vec![
                ("x-user".into(), b"u1".to_vec()),
                ("x-name".into(), b"Eve  X-Admin: yes".to_vec())
            ]
        );
    }

    /// One row per mapping case: the rule, the user's claims (as the IdP sent
    /// them), and the header value expected (`None`: no header).
    #[test]
    fn mapping_table() {
        use TemplatePart::{Claim as C, Text as T};
        let tpl = |parts: Vec<TemplatePart>| HeaderSource::Template(parts);
        let rows: Vec<(&str, HeaderRule, serde_json::Value, Option<&[u8]>)> = vec![
            (
                "a claim",
                rule("x-a", claim("email")),
                json!({"email": "a@x"}),
                Some(b"a@x"),
            ),
            (
                "a list, default separator",
                rule("x-a", claim("groups")),
                json!({"groups": ["a", "b c"]}),
                Some(b"a,b c"),
            ),
            (
                "a list, own separator",
                HeaderRule {
                    separator: "; ".into(),
                    ..rule("x-a", claim("groups"))
                },
                json!({"groups": ["a", "b,c"]}),
                Some(b"a; b,c"),
            ),
            (
                "a dotted path",
                rule("x-a", claim("address.country")),
                json!({"address": {"country": "CN"}}),
                Some(b"CN"),
            ),
            (
                "a dotted name that exists as such wins",
                rule("x-a", claim("a.b")),
                json!({"a.b": "flat", "a": {"b": "nested"}}),
                Some(b"flat"),
            ),
            (
                "a fixed value",
                rule("x-a", HeaderSource::Value("acme".into())),
                json!({}),
                Some(b"acme"),
            ),
            (
                "a template",
                rule("x-a", tpl(vec![C("userName".into()), T("@corp".into())])),
                json!({"userName": "zhang.wei"}),
                Some(b"zhang.wei@corp"),
            ),
            (
                "a template with a missing claim sends nothing",
                rule("x-a", tpl(vec![C("userName".into()), T("@corp".into())])),
                json!({}),
                None,
            ),
            (
                "CR LF in a claim",
                rule("x-a", claim("name")),
                json!({"name": "x\r\nX-Forwarded-User: admin"}),
                Some(b"x  X-Forwarded-User: admin"),
            ),
            (
                "NUL and DEL in a claim",
                rule("x-a", claim("name")),
                json!({"name": "a\u{0}b\u{7f}c"}),
                Some(b"a b c"),
            ),
            (
                "a list item with a control char cannot split the list",
                rule("x-a", claim("groups")),
                json!({"groups": ["a\u{1f}admin"]}),
                Some(b"a admin"),
            ),
            (
                "CR LF through a template",
                rule("x-a", tpl(vec![T("u=".into()), C("name".into())])),
                json!({"name": "e\nvil"}),
                Some(b"u=e vil"),
            ),
            (
                "UTF-8 as bytes",
                rule("x-a", claim("name")),
                json!({"name": "张伟"}),
                Some("张伟".as_bytes()),
            ),
            (
                "an object claim is no value",
                rule("x-a", claim("address")),
                json!({"address": {"c": 1}}),
                None,
            ),
            (
                "a list is joined, then encoded",
                HeaderRule {
                    encoding: HeaderEncoding::Percent,
                    separator: ";".into(),
                    ..rule("x-a", claim("groups"))
                },
                json!({"groups": ["研发", "a b"]}),
                Some(b"%E7%A0%94%E5%8F%91%3Ba%20b"),
            ),
            (
                "a template in base64",
                HeaderRule {
                    encoding: HeaderEncoding::Base64,
                    ..rule("x-a", tpl(vec![C("name".into()), T("@corp".into())]))
                },
                json!({"name": "张三"}),
                Some(b"5byg5LiJQGNvcnA="),
            ),
            (
                "a Latin-1 name as its bytes",
                HeaderRule {
                    encoding: HeaderEncoding::Latin1,
                    ..rule("x-a", claim("name"))
                },
                json!({"name": "José"}),
                Some(b"Jos\xe9"),
            ),
            (
                "MIME, with CR LF in the claim",
                HeaderRule {
                    encoding: HeaderEncoding::Mime,
                    ..rule("x-a", claim("name"))
                },
                json!({"name": "张\r\n三"}),
                Some(b"=?UTF-8?B?5bygICDkuIk=?="),
            ),
        ];
        for (name, r, claims, want) in rows {
            let wanted: Vec<String> = r.claims_used().map(str::to_string).collect();
            let id = Identity::from_claims("u1".into(), claims.as_object().expect("obj"), &wanted);
            let got = render_all(std::slice::from_ref(&r), &id).expect("values");
            let got = got.first().map(|(_, v)| v.as_slice());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_rejecting_rule_refuses_a_user_without_the_value() {
        let rules = [
            rule("x-user", claim("sub")),
            HeaderRule {
                missing: Missing::Reject,
                ..rule("x-employee", claim("employee_id"))
            },
        ];
        let without = Identity {
            sub: "u1".into(),
            claims: vec![],
        };
        assert_eq!(
            render_all(&rules, &without),
            Err(MissingValue(HeaderName::from_static("x-employee")))
        );
        let with = Identity {
            sub: "u1".into(),
            claims: vec![("employee_id".into(), "E7".into())],
        };
        assert_eq!(render_all(&rules, &with).expect("values").len(), 2);
    }

    #[test]
    fn utf8_names_pass_as_bytes() {
        let v = sanitized_value("张伟");
        assert_eq!(v.as_bytes(), "张伟".as_bytes());
    }
}
