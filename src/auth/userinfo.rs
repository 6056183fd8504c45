//! The userinfo endpoint, asked with the access token of a fresh login: the
//! identity of an OAuth2 route (OneAccess's shape, `id`, `userName`, … with no
//! `sub`, renamed by `userinfo_claims`), and the claims an OIDC route's ID token
//! lacks (OIDC Core 5.3: standard claims with a `sub`).

use serde_json::{Map, Value};

use super::http::{call, HttpClient, OutboundRequest};
use crate::error::AuthError;
use crate::secret::Secret;

/// `GET endpoint` with `Authorization: Bearer`; the answer must be a JSON object.
pub async fn fetch(
    http: &dyn HttpClient,
    endpoint: &str,
    access_token: &Secret<String>,
) -> Result<Map<String, Value>, AuthError> {
    let mut req = OutboundRequest::get("userinfo", endpoint);
    // Never as a query parameter: URLs end up in logs (RFC 6750 section 5.3).
    req.headers
        .push(("authorization", format!("Bearer {}", access_token.expose())));
    let resp = call(http, req).await?;
    if resp.status != 200 {
        return Err(AuthError::Userinfo(format!(
            "userinfo refused the token ({})",
            resp.status
        )));
    }
    match serde_json::from_slice::<Value>(&resp.body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(AuthError::Userinfo("userinfo is not a JSON object".into())),
    }
}

/// The claims of an answer: as they are when it has a `sub` (a standard
/// answer), else renamed by `mapping` (OneAccess's).
pub fn claims(info: &Map<String, Value>, mapping: &[(String, String)]) -> Map<String, Value> {
    if info.contains_key("sub") {
        return info.clone();
    }
    mapped(info, mapping)
}

/// The answer's fields renamed by `mapping` (field -> claim); others dropped.
pub fn mapped(info: &Map<String, Value>, mapping: &[(String, String)]) -> Map<String, Value> {
    let mut claims = Map::new();
    for (field, claim) in mapping {
        if let Some(v) = info.get(field) {
            claims.insert(claim.clone(), v.clone());
        }
    }
    claims
}

/// The user id in `claims`: a non-empty string (at most 255 bytes) or a number.
pub(crate) fn subject(claims: &Map<String, Value>) -> Option<String> {
    match claims.get("sub") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 255 => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn standard_answers_stay_and_oneaccess_ones_are_renamed() {
        let mapping = vec![
            ("id".to_string(), "sub".to_string()),
            ("userName".to_string(), "preferred_username".to_string()),
        ];
        let std = json!({"sub": "u1", "email": "a@example.com"});
        let c = claims(std.as_object().expect("obj"), &mapping);
        assert_eq!(c.get("email"), Some(&json!("a@example.com")));
        assert_eq!(subject(&c).as_deref(), Some("u1"));
        let oa = json!({"id": 42, "userName": "alice", "mobile": "1"});
        let c = claims(oa.as_object().expect("obj"), &mapping);
        assert_eq!(subject(&c).as_deref(), Some("42"));
        assert_eq!(c.get("preferred_username"), Some(&json!("alice")));
        assert!(c.get("mobile").is_none());
        assert_eq!(subject(json!({"sub": " "}).as_object().expect("obj")), None);
    }
}
