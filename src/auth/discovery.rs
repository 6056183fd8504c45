//! OpenID Provider metadata from `{issuer}/.well-known/openid-configuration`, with
//! the exact-issuer rule of OpenID Connect Discovery 1.0 section 4.3.

use serde::Deserialize;

use super::http::{call, HttpClient, OutboundRequest};
use crate::error::AuthError;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProviderMetadata {
    pub issuer: String,
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    pub(crate) jwks_uri: String,
    #[serde(default)]
    pub(crate) userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) end_session_endpoint: Option<String>,
}

/// Where the discovery document of `issuer` lives. OneAccess's issuer has a path
/// (`/api/v1/oauth2`), so this appends rather than replacing the path.
pub(crate) fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Fetches and checks the metadata. `Discovery` errors (a wrong issuer, a broken
/// document) are configuration faults; `IdpUnavailable` may pass.
pub(crate) async fn discover(
    http: &dyn HttpClient,
    issuer: &str,
) -> Result<ProviderMetadata, AuthError> {
    let url = discovery_url(issuer);
    let resp = call(http, OutboundRequest::get("discovery", &url)).await?;
    if resp.status != 200 {
        return Err(AuthError::Discovery(format!(
            "{url} answered {}",
            resp.status
        )));
    }
    let meta: ProviderMetadata = serde_json::from_slice(&resp.body)
        .map_err(|e| AuthError::Discovery(format!("{url} is not a discovery document: {e}")))?;
    if meta.issuer != issuer {
        return Err(AuthError::Discovery(format!(
            "the discovered issuer `{}` is not the configured issuer `{issuer}`; they must be equal, character for character",
            meta.issuer
        )));
    }
    Ok(meta)
}
