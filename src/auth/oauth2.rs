//! Plain OAuth 2.0 against OneAccess (section 3.2.4): the code flow with
//! `scope=get_user_info`, then the identity from `GET /api/v1/oauth2/userinfo`
//! with a Bearer header, once at login. OneAccess's userinfo has no `sub`
//! (`id`, `userName`, `name`, `email`, `mobile`): a per-provider mapping names
//! the claims.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::code_flow::{self, Grant};
use super::http::HttpClient;
use super::pending::PendingLogin;
use super::userinfo;
use crate::config::{ClientCredentials, ProviderSettings};
use crate::error::AuthError;
use crate::identity::Identity;
use crate::secret::Secret;

pub struct OAuth2Client {
    http: Arc<dyn HttpClient>,
    authorize_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    scopes: Vec<String>,
    /// Userinfo field -> claim.
    claims: Vec<(String, String)>,
}

impl OAuth2Client {
    pub fn new(settings: &ProviderSettings, http: Arc<dyn HttpClient>) -> OAuth2Client {
        let base = &settings.base_url;
        OAuth2Client {
            http,
            authorize_endpoint: format!("{base}/api/v1/oauth2/authorize"),
            token_endpoint: format!("{base}/api/v1/oauth2/token"),
            userinfo_endpoint: format!("{base}/api/v1/oauth2/userinfo"),
            scopes: settings.oauth2_scopes.clone(),
            claims: settings.userinfo_claims.clone(),
        }
    }

    pub(crate) fn authorize_url(
        &self,
        client: &ClientCredentials,
        pending: &PendingLogin,
        redirect_uri: &str,
    ) -> Result<String, AuthError> {
        // PKCE goes along: harmless where the provider ignores it, a guard where not.
        code_flow::authorize_url(
            &self.authorize_endpoint,
            client,
            &self.scopes,
            pending,
            redirect_uri,
            false,
        )
    }

    /// Exchanges the code, then asks userinfo who the user is. Nothing is kept of a
    /// login whose userinfo fails: no half-made session.
    pub(crate) async fn finish(
        &self,
        client: &ClientCredentials,
        code: Secret<String>,
        pending: PendingLogin,
        redirect_uri: &str,
        keep_claims: &[String],
    ) -> Result<(Identity, Grant), AuthError> {
        let mut tokens = code_flow::exchange(
            self.http.as_ref(),
            &self.token_endpoint,
            client,
            code,
            &pending,
            redirect_uri,
        )
        .await?;
        let info = userinfo::fetch(
            self.http.as_ref(),
            &self.userinfo_endpoint,
            &tokens.access_token,
        )
        .await?;
        let identity = identity_from_userinfo(&info, &self.claims, keep_claims)?;
        Ok((identity, tokens.grant()))
    }

    /// Uses a refresh token; the identity stays the one userinfo gave at login.
    pub async fn refresh(
        &self,
        client: &ClientCredentials,
        refresh_token: &Secret<String>,
    ) -> Result<Grant, AuthError> {
        let mut tokens = code_flow::refresh(
            self.http.as_ref(),
            &self.token_endpoint,
            client,
            refresh_token,
        )
        .await?;
        Ok(tokens.grant())
    }
}

/// Renames userinfo fields to claims and builds the identity. The field mapped to
/// `sub` must be a non-empty string or number.
pub(crate) fn identity_from_userinfo(
    info: &Map<String, Value>,
    mapping: &[(String, String)],
    keep_claims: &[String],
) -> Result<Identity, AuthError> {
    let claims = userinfo::mapped(info, mapping);
    let sub = userinfo::subject(&claims).ok_or_else(|| {
        AuthError::Userinfo("userinfo has no user id (the field mapped to `sub`)".into())
    })?;
    Ok(Identity::from_claims(sub, &claims, keep_claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::DEFAULT_USERINFO_CLAIMS;
    use serde_json::json;

    fn mapping() -> Vec<(String, String)> {
        DEFAULT_USERINFO_CLAIMS
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn keep() -> Vec<String> {
        ["email", "preferred_username", "name", "phone_number"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn oneaccess_userinfo_maps_to_claims() {
        let info = json!({"id": "20240001", "userName": "alice", "name": "Alice Zhang",
                          "email": "alice@example.com", "mobile": "+86-1"});
        let id = identity_from_userinfo(info.as_object().expect("obj"), &mapping(), &keep())
            .expect("identity");
        assert_eq!(id.sub, "20240001");
        assert_eq!(id.claim("preferred_username"), Some("alice"));
        assert_eq!(id.claim("phone_number"), Some("+86-1"));
        let numeric = json!({"id": 42});
        let id = identity_from_userinfo(numeric.as_object().expect("obj"), &mapping(), &keep())
            .expect("identity");
        assert_eq!(id.sub, "42");
    }

    #[test]
    fn a_missing_or_empty_id_is_an_error() {
        for info in [
            json!({"userName": "alice"}),
            json!({"id": ""}),
            json!({"id": null}),
            json!({"id": ["x"]}),
        ] {
            assert!(
                identity_from_userinfo(info.as_object().expect("obj"), &mapping(), &keep())
                    .is_err(),
                "{info}"
            );
        }
    }
}
