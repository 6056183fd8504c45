//! The OAuth 2.0 authorization-code flow that `oidc` and `oauth2` share: the
//! authorize URL (state, PKCE S256, and a nonce for OIDC) and the code exchange at
//! the token endpoint (`client_secret_post` or `client_secret_basic`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::http::{call, HttpClient, Method, OutboundRequest};
use super::pending::PendingLogin;
use crate::config::{ClientCredentials, TokenAuth};
use crate::error::AuthError;
use crate::secret::Secret;

/// The token endpoint's answer. `expires_in` comes as a number or, from OneAccess,
/// as a string.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: Secret<String>,
    #[serde(default)]
    pub id_token: Option<Secret<String>>,
    #[serde(default)]
    pub refresh_token: Option<Secret<String>>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub expires_in: Option<u64>,
}

/// What a token response leaves for later: the tokens a session may keep, and
/// how long the access token lives.
#[derive(Debug, Default)]
pub struct Grant {
    pub access_token: Option<Secret<String>>,
    /// A refreshed, verified ID token (the login's own is in `OidcLogin`).
    pub id_token: Option<Secret<String>>,
    pub refresh_token: Option<Secret<String>>,
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub(crate) fn grant(&mut self) -> Grant {
        Grant {
            access_token: Some(self.access_token.clone()),
            id_token: None,
            refresh_token: self.refresh_token.take(),
            expires_in: self.expires_in,
        }
    }
}

fn lenient_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

#[derive(Debug, Deserialize)]
struct TokenError {
    #[serde(default)]
    error: String,
}

/// The URL that starts a login at `endpoint`. `with_nonce` for OpenID Connect.
pub(crate) fn authorize_url(
    endpoint: &str,
    client: &ClientCredentials,
    scopes: &[String],
    pending: &PendingLogin,
    redirect_uri: &str,
    with_nonce: bool,
) -> Result<String, AuthError> {
    let mut url = Url::parse(endpoint)
        .map_err(|_| AuthError::Discovery("the authorization endpoint is not a URL".into()))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", pending.state());
        if with_nonce {
            q.append_pair("nonce", pending.nonce());
        }
        q.append_pair("code_challenge", &pending.code_challenge())
            .append_pair("code_challenge_method", "S256");
    }
    Ok(url.into())
}

/// Exchanges a code for tokens. The code is moved in: it cannot be sent twice.
pub async fn exchange(
    http: &dyn HttpClient,
    token_endpoint: &str,
    client: &ClientCredentials,
    code: Secret<String>,
    pending: &PendingLogin,
    redirect_uri: &str,
) -> Result<TokenResponse, AuthError> {
    let form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.into_inner()),
        ("redirect_uri", redirect_uri.to_string()),
        ("code_verifier", pending.verifier().to_string()),
    ];
    token_request(http, token_endpoint, client, form).await
}

/// A POST to the token endpoint with the client's authentication added.
async fn token_request(
    http: &dyn HttpClient,
    token_endpoint: &str,
    client: &ClientCredentials,
    mut form: Vec<(&'static str, String)>,
) -> Result<TokenResponse, AuthError> {
    form.push(("client_id", client.client_id.clone()));
    let mut headers = vec![("accept", "application/json".to_string())];
    match client.token_auth {
        TokenAuth::ClientSecretPost => {
            form.push(("client_secret", client.client_secret.expose().clone()))
        }
        TokenAuth::ClientSecretBasic => {
            // RFC 6749 2.3.1: both parts form-urlencoded before base64.
            let enc =
                |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let pair = format!(
                "{}:{}",
                enc(&client.client_id),
                enc(client.client_secret.expose())
            );
            headers.push(("authorization", format!("Basic {}", STANDARD.encode(pair))));
        }
    }
    let req = OutboundRequest {
        endpoint: "token endpoint",
        method: Method::Post,
        url: token_endpoint.to_string(),
        headers,
        form,
        json: None,
    };
    let resp = call(http, req).await?;
    if resp.status != 200 {
        // Only the error code is kept: descriptions may echo what was sent.
        let code = serde_json::from_slice::<TokenError>(&resp.body)
            .map(|e| e.error)
            .unwrap_or_default();
        // RFC 6749 5.2: the grant is expired, used, or not this client's or this
        // verifier's. Any other refusal is the gateway's setup or the IdP's fault.
        if resp.status == 400 && code == "invalid_grant" {
            return Err(AuthError::GrantRejected);
        }
        return Err(AuthError::TokenRejected(format!(
            "status {} {}",
            resp.status,
            sanitize_code(&code)
        )));
    }
    serde_json::from_slice(&resp.body)
        .map_err(|e| AuthError::TokenRejected(format!("unreadable token response: {e}")))
}

/// Uses a refresh token at the token endpoint (`grant_type=refresh_token`).
pub async fn refresh(
    http: &dyn HttpClient,
    token_endpoint: &str,
    client: &ClientCredentials,
    refresh_token: &Secret<String>,
) -> Result<TokenResponse, AuthError> {
    let form = vec![
        ("grant_type", "refresh_token".to_string()),
        ("refresh_token", refresh_token.expose().clone()),
    ];
    token_request(http, token_endpoint, client, form).await
}

/// Keeps an IdP error code printable and short for logs and pages.
pub(crate) fn sanitize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_as_number_or_string() {
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","expires_in":"7200"}"#).expect("parse");
        assert_eq!(t.expires_in, Some(7200));
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","expires_in":60}"#).expect("parse");
        assert_eq!(t.expires_in, Some(60));
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","expires_in":null}"#).expect("parse");
        assert_eq!(t.expires_in, None);
        assert_eq!(format!("{:?}", t.access_token), "[redacted]");
    }

    #[test]
    fn error_codes_are_sanitized() {
        assert_eq!(sanitize_code("invalid_grant"), "invalid_grant");
        assert_eq!(sanitize_code("x\r\n<script>"), "xscript");
    }
}
