//! Who the user is, as the session keeps it: the subject and the claims some
//! route or policy reads, flattened to text. Knows no configuration, so policy
//! and sessions can use it without reaching the header rules.

use serde::{Deserialize, Serialize};

/// Joins the items of a list claim inside the session. A control character, so no
/// claim value can contain it (they are replaced at ingest): a group named `a,b`
/// stays one group.
pub(crate) const LIST_SEP: char = '\u{1f}';

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
    /// Takes from `earlier` the claims this one lacks: a refreshed ID token does
    /// not repeat what userinfo added at login.
    pub(crate) fn keep_missing_from(&mut self, earlier: &Identity) {
        for (name, value) in &earlier.claims {
            if self.claim(name).is_none() {
                self.claims.push((name.clone(), value.clone()));
            }
        }
    }

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
    /// strings (control characters made spaces), numbers and booleans printed,
    /// lists of scalars joined with `LIST_SEP`. A dotted name (`address.country`)
    /// walks into objects when no claim has that exact name. Objects and nulls
    /// are left out.
    pub(crate) fn from_claims(
        sub: String,
        claims: &serde_json::Map<String, serde_json::Value>,
        wanted: &[String],
    ) -> Identity {
        let mut kept = Vec::new();
        for name in wanted {
            if name == "sub" {
                continue;
            }
            if let Some(text) = lookup(claims, name).and_then(claim_text) {
                kept.push((name.clone(), text));
            }
        }
        Identity { sub, claims: kept }
    }
}

/// The items of a claim value as the session keeps it: one for a scalar, each
/// item for a list.
pub(crate) fn list_items(v: &str) -> impl Iterator<Item = &str> {
    v.split(LIST_SEP)
}

/// A claim by exact name, else by a dotted path into nested objects.
pub fn lookup<'a>(
    claims: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

fn claim_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) if s.chars().any(char::is_control) => Some(
            s.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        ),
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
            (!parts.is_empty()).then(|| parts.join(&LIST_SEP.to_string()))
        }
        Value::Null | Value::Object(_) => None,
    }
}
