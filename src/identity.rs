//! Who the user is, and how that reaches the app: the identity headers are stripped
//! from what the client sent (every case, `_` and `.` spelling) and then set from the
//! session, never from the request.

use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::config::HeaderRule;

/// A logged-in user as the gateway keeps it: the subject and the claims that some
/// route maps into a header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    #[serde(rename = "s")]
    pub sub: String,
    #[serde(rename = "c", default)]
    pub claims: Vec<(String, String)>,
}

impl Identity {
    /// The value of a claim; `sub` is always there.
    pub fn claim(&self, name: &str) -> Option<&str> {
        if name == "sub" {
            return Some(&self.sub);
        }
        self.claims
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Keeps from a JSON claim set the claims in `wanted`, flattened to text:
    /// strings as they are, numbers and booleans printed, lists of scalars joined with
    /// `,`. Objects and nulls are left out.
    pub fn from_claims(
        sub: String,
        claims: &serde_json::Map<String, serde_json::Value>,
        wanted: &[String],
    ) -> Identity {
        let mut kept = Vec::new();
        for name in wanted {
            if name == "sub" {
                continue;
            }
            if let Some(text) = claims.get(name).and_then(claim_text) {
                kept.push((name.clone(), text));
            }
        }
        Identity { sub, claims: kept }
    }
}

fn claim_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Value::Array(_) | Value::Object(_) => None,
                    other => claim_text(other),
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
        Value::Null | Value::Object(_) => None,
    }
}

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

/// The identity headers for one route, in rule order. A claim the user does not
/// have gives no header. Control characters a claim may carry (CR, LF, NUL...)
/// are replaced by spaces, so no claim can split or forge a header.
pub fn header_values<'a>(
    rules: &'a [HeaderRule],
    identity: &'a Identity,
) -> impl Iterator<Item = (&'a HeaderName, HeaderValue)> + 'a {
    rules.iter().filter_map(move |r| {
        let v = identity.claim(&r.claim)?;
        Some((&r.name, sanitized_value(v)))
    })
}

/// Makes a header value from arbitrary text. UTF-8 is passed as bytes (OneAccess
/// names are often Chinese); control bytes become spaces.
pub fn sanitized_value(v: &str) -> HeaderValue {
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

    fn rule(name: &'static str, claim: &str) -> HeaderRule {
        HeaderRule {
            name: HeaderName::from_static(name),
            claim: claim.into(),
        }
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
        assert_eq!(id.claim("groups"), Some("a,b"));
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
            rule("x-user", "sub"),
            rule("x-name", "name"),
            rule("x-mail", "email"),
        ];
        let got: Vec<_> = header_values(&rules, &id)
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("x-user".into(), b"u1".to_vec()),
                ("x-name".into(), b"Eve  X-Admin: yes".to_vec())
            ]
        );
    }

    #[test]
    fn utf8_names_pass_as_bytes() {
        let v = sanitized_value("张伟");
        assert_eq!(v.as_bytes(), "张伟".as_bytes());
    }
}
