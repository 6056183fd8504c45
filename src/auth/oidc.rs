//! The OpenID Connect relying party: authorize URL, code exchange, and the ID-token
//! checks of OIDC Core 3.1.3.7 (signature by a published key, allow-listed `alg`,
//! exact `iss`, `aud`/`azp`, `exp`/`iat` with leeway, `nonce`, `sub`).

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use url::Url;

use super::discovery::{discover, ProviderMetadata};
use super::http::{HttpClient, Method, OutboundRequest};
use super::jwks::JwksCache;
use super::pending::PendingLogin;
use crate::config::{ProviderSettings, TokenAuth};
use crate::error::AuthError;
use crate::identity::Identity;
use crate::secret::{ct_eq, Secret};

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
    #[serde(default)]
    pub token_type: Option<String>,
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

pub struct OidcClient {
    settings: ProviderSettings,
    http: Arc<dyn HttpClient>,
    /// Discovered once, on the first success: a gateway that starts while the IdP is
    /// down still serves logged-in users, and discovers on the first login.
    metadata: OnceCell<Arc<ProviderMetadata>>,
    jwks: JwksCache,
}

impl OidcClient {
    pub fn new(settings: ProviderSettings, http: Arc<dyn HttpClient>) -> OidcClient {
        let jwks = JwksCache::new(settings.jwks_cache, settings.jwks_min_refetch);
        OidcClient {
            settings,
            http,
            metadata: OnceCell::new(),
            jwks,
        }
    }

    /// The provider metadata, discovering it if this is the first call to succeed.
    pub async fn metadata(&self) -> Result<Arc<ProviderMetadata>, AuthError> {
        self.metadata
            .get_or_try_init(|| async {
                discover(self.http.as_ref(), &self.settings.issuer)
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// Discovery and a first JWKS fetch at start-up. A wrong issuer is an error the
    /// caller must treat as fatal; an unreachable IdP is reported and may be waited out.
    pub async fn warm_up(&self) -> Result<(), AuthError> {
        let meta = self.metadata().await?;
        self.jwks.refetch(self.http.as_ref(), &meta.jwks_uri).await
    }

    /// The URL that starts a login at the IdP for this pending login.
    pub async fn authorize_url(
        &self,
        pending: &PendingLogin,
        redirect_uri: &str,
    ) -> Result<String, AuthError> {
        let meta = self.metadata().await?;
        let mut url = Url::parse(&meta.authorization_endpoint)
            .map_err(|_| AuthError::Discovery("authorization_endpoint is not a URL".into()))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.settings.scopes.join(" "))
            .append_pair("state", pending.state())
            .append_pair("nonce", pending.nonce())
            .append_pair("code_challenge", &pending.code_challenge())
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchanges the code and verifies the ID token. Consumes the pending login: it
    /// cannot be used twice.
    pub async fn finish(
        &self,
        code: Secret<String>,
        pending: PendingLogin,
        redirect_uri: &str,
        keep_claims: &[String],
    ) -> Result<Identity, AuthError> {
        let meta = self.metadata().await?;
        let tokens = self.exchange(&meta, code, &pending, redirect_uri).await?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| AuthError::TokenRejected("no id_token in the token response".into()))?;
        let claims = self
            .verify_id_token(&meta, id_token.expose(), pending.nonce())
            .await?;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(Identity::from_claims(sub, &claims, keep_claims))
    }

    async fn exchange(
        &self,
        meta: &ProviderMetadata,
        code: Secret<String>,
        pending: &PendingLogin,
        redirect_uri: &str,
    ) -> Result<TokenResponse, AuthError> {
        let s = &self.settings;
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.into_inner()),
            ("redirect_uri", redirect_uri.to_string()),
            ("client_id", s.client_id.clone()),
            ("code_verifier", pending.verifier().to_string()),
        ];
        let mut headers = vec![("accept", "application/json".to_string())];
        match s.token_auth {
            TokenAuth::ClientSecretPost => {
                form.push(("client_secret", s.client_secret.expose().clone()))
            }
            TokenAuth::ClientSecretBasic => {
                // RFC 6749 2.3.1: both parts form-urlencoded before base64.
                let enc = |v: &str| {
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                };
                let pair = format!("{}:{}", enc(&s.client_id), enc(s.client_secret.expose()));
                headers.push(("authorization", format!("Basic {}", STANDARD.encode(pair))));
            }
        }
        let resp = self
            .http
            .send(OutboundRequest {
                method: Method::Post,
                url: meta.token_endpoint.clone(),
                headers,
                form,
            })
            .await
            .map_err(AuthError::IdpUnavailable)?;
        if resp.status >= 500 {
            return Err(AuthError::IdpUnavailable(format!(
                "token endpoint answered {}",
                resp.status
            )));
        }
        if resp.status != 200 {
            // Only the error code is kept: descriptions may echo what was sent.
            let code = serde_json::from_slice::<TokenError>(&resp.body)
                .map(|e| e.error)
                .unwrap_or_default();
            return Err(AuthError::TokenRejected(format!(
                "status {} {}",
                resp.status,
                sanitize_code(&code)
            )));
        }
        serde_json::from_slice(&resp.body)
            .map_err(|e| AuthError::TokenRejected(format!("unreadable token response: {e}")))
    }

    /// Verifies an ID token's signature and claims; returns the claims.
    pub async fn verify_id_token(
        &self,
        meta: &ProviderMetadata,
        token: &str,
        expected_nonce: &str,
    ) -> Result<Map<String, Value>, AuthError> {
        let bad = |m: &str| AuthError::InvalidIdToken(m.to_string());
        // `alg: none` and unknown algorithms fail here: they are no `Algorithm`.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| bad("unreadable header or unsupported alg"))?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(bad("alg not allowed"));
        }
        let key = self
            .jwks
            .key(self.http.as_ref(), &meta.jwks_uri, header.kid.as_deref())
            .await?;
        if key.alg.is_some_and(|a| a != header.alg) {
            return Err(bad("alg does not match the key's alg"));
        }
        let claims = verify_claims(token, &key.key, header.alg, &self.settings, &meta.issuer)?;
        check_nonce_sub_iat(&claims, expected_nonce, &self.settings)?;
        Ok(claims)
    }
}

/// Signature, `iss`, `aud`, `exp`, plus `azp`. Split out so benches and tests can
/// call it with a key in hand.
pub fn verify_claims(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    alg: Algorithm,
    settings: &ProviderSettings,
    issuer: &str,
) -> Result<Map<String, Value>, AuthError> {
    let mut v = Validation::new(alg);
    v.leeway = settings.clock_skew.as_secs();
    v.set_issuer(&[issuer]);
    v.set_audience(&[&settings.client_id]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.validate_nbf = true;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        AuthError::InvalidIdToken(
            match e.kind() {
                K::InvalidSignature => "bad signature",
                K::ExpiredSignature => "expired",
                K::InvalidIssuer => "wrong issuer",
                K::InvalidAudience => "wrong audience",
                K::ImmatureSignature => "not valid yet",
                K::MissingRequiredClaim(_) => "a required claim is missing",
                K::InvalidAlgorithm => "alg not allowed",
                _ => "malformed",
            }
            .into(),
        )
    })?;
    let claims = data.claims;
    // OIDC Core 3.1.3.7 steps 4-5: with several audiences, `azp` must be there and
    // be us; when present at all, it must be us.
    let several = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1);
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == &settings.client_id => {}
        None if !several => {}
        _ => {
            return Err(AuthError::InvalidIdToken(
                "azp is missing or not this client".into(),
            ))
        }
    }
    Ok(claims)
}

fn check_nonce_sub_iat(
    claims: &Map<String, Value>,
    expected_nonce: &str,
    settings: &ProviderSettings,
) -> Result<(), AuthError> {
    let bad = |m: &str| Err(AuthError::InvalidIdToken(m.to_string()));
    match claims.get("nonce").and_then(Value::as_str) {
        Some(n) if ct_eq(n.as_bytes(), expected_nonce.as_bytes()) => {}
        _ => return bad("nonce missing or not the one sent"),
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(s) if !s.is_empty() && s.len() <= 255 => {}
        _ => return bad("sub missing or empty"),
    }
    let now = crate::session::now_secs();
    match claims.get("iat").and_then(Value::as_u64) {
        Some(iat) if iat <= now + settings.clock_skew.as_secs() => {}
        Some(_) => return bad("issued in the future"),
        None => return bad("iat missing"),
    }
    Ok(())
}

/// Keeps an IdP error code printable and short for logs and pages.
fn sanitize_code(code: &str) -> String {
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
