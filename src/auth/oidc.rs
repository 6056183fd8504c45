//! The OpenID Connect relying party: authorize URL, code exchange, and the ID-token
//! checks of OIDC Core 3.1.3.7 (signature by a published key, allow-listed `alg`,
//! exact `iss`, `aud`/`azp`, `exp`/`iat` with leeway, `nonce`, `sub`).

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use url::Url;

use super::code_flow::{self, Grant};
use super::discovery::{discover, ProviderMetadata};
use super::http::HttpClient;
use super::jwks::{JwksCache, VerifyKey};
use super::pending::PendingLogin;
use super::userinfo;
use crate::config::{ClientCredentials, ProviderSettings, UserinfoMode};
use crate::error::AuthError;
use crate::identity::Identity;
use crate::secret::{ct_eq, Secret};

/// What an OIDC login yields.
pub(crate) struct OidcLogin {
    pub identity: Identity,
    /// The raw ID token, kept only when logout needs it as `id_token_hint`.
    pub id_token: Secret<String>,
    /// The IdP's session id, when the ID token has one (back-channel logout).
    pub sid: Option<String>,
    pub(crate) grant: Grant,
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
    pub(crate) async fn metadata(&self) -> Result<Arc<ProviderMetadata>, AuthError> {
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
    /// Whether discovery has succeeded (it is then never redone).
    pub(crate) fn is_discovered(&self) -> bool {
        self.metadata.initialized()
    }

    pub async fn warm_up(&self) -> Result<(), AuthError> {
        let meta = self.metadata().await?;
        self.jwks.refetch(self.http.as_ref(), &meta.jwks_uri).await
    }

    /// The URL that starts a login at the IdP for this pending login.
    pub(crate) async fn authorize_url(
        &self,
        client: &ClientCredentials,
        pending: &PendingLogin,
        redirect_uri: &str,
    ) -> Result<String, AuthError> {
        let meta = self.metadata().await?;
        code_flow::authorize_url(
            &meta.authorization_endpoint,
            client,
            &self.settings.scopes,
            pending,
            redirect_uri,
            true,
        )
    }

    /// Exchanges the code, verifies the ID token, and adds what userinfo says
    /// (`provider.userinfo`). `needed` are the claims the route uses: when the ID
    /// token lacks one, userinfo must answer. Consumes the pending login: it
    /// cannot be used twice.
    pub(crate) async fn finish(
        &self,
        client: &ClientCredentials,
        code: Secret<String>,
        pending: PendingLogin,
        redirect_uri: &str,
        keep_claims: &[String],
        needed: &[&str],
    ) -> Result<OidcLogin, AuthError> {
        let meta = self.metadata().await?;
        let mut tokens = code_flow::exchange(
            self.http.as_ref(),
            &meta.token_endpoint,
            client,
            code,
            &pending,
            redirect_uri,
        )
        .await?;
        let grant = tokens.grant();
        let id_token = tokens
            .id_token
            .ok_or_else(|| AuthError::TokenRejected("no id_token in the token response".into()))?;
        let mut claims = self
            .verify_id_token(&meta, id_token.expose(), pending.nonce(), &client.client_id)
            .await?;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        self.add_userinfo(&meta, &tokens.access_token, &sub, &mut claims, needed)
            .await?;
        let sid = claims
            .get("sid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .map(str::to_string);
        Ok(OidcLogin {
            identity: Identity::from_claims(sub, &claims, keep_claims),
            id_token,
            sid,
            grant,
        })
    }

    /// Merges userinfo's claims under the ID token's (the ID token's win). A
    /// `sub` other than the ID token's fails the login (OIDC Core 5.3.2). Under
    /// `auto`, userinfo failing fails the login only when the route needs a
    /// claim the ID token lacks; otherwise the login goes on without it.
    async fn add_userinfo(
        &self,
        meta: &ProviderMetadata,
        access_token: &Secret<String>,
        sub: &str,
        claims: &mut Map<String, Value>,
        needed: &[&str],
    ) -> Result<(), AuthError> {
        let mode = self.settings.userinfo;
        let endpoint = match (mode, meta.userinfo_endpoint.as_deref()) {
            (UserinfoMode::Never, _) | (UserinfoMode::Auto, None) => return Ok(()),
            (UserinfoMode::Always, None) => {
                return Err(AuthError::Discovery(
                    "provider.userinfo = \"always\", but discovery names no userinfo_endpoint"
                        .into(),
                ))
            }
            (_, Some(e)) => e,
        };
        let answer = userinfo::fetch(self.http.as_ref(), endpoint, access_token)
            .await
            .map(|info| userinfo::claims(&info, &self.settings.userinfo_claims))
            .and_then(|info| match userinfo::subject(&info) {
                Some(s) if s == sub => Ok(info),
                Some(_) => Err(AuthError::InvalidIdToken(
                    "userinfo names another user than the ID token".into(),
                )),
                None => Err(AuthError::Userinfo("userinfo has no sub".into())),
            });
        let info = match answer {
            Ok(info) => info,
            Err(e @ AuthError::InvalidIdToken(_)) => return Err(e),
            Err(e) => {
                let lacking = needed
                    .iter()
                    .any(|c| *c != "sub" && crate::identity::lookup(claims, c).is_none());
                if mode == UserinfoMode::Always || lacking {
                    return Err(e);
                }
                tracing::warn!(error = %e, "userinfo failed; the ID token has every claim the route uses");
                return Ok(());
            }
        };
        for (k, v) in info {
            claims.entry(k).or_insert(v);
        }
        Ok(())
    }

    /// Uses a refresh token. A new ID token in the answer is verified like one from
    /// a login (no nonce), and must name the same user: same issuer (checked
    /// exactly) and same `sub`, or the refresh is refused. Returns the new identity
    /// (if there was an ID token) and the grant.
    pub async fn refresh(
        &self,
        client: &ClientCredentials,
        refresh_token: &Secret<String>,
        expected_sub: &str,
        keep_claims: &[String],
    ) -> Result<(Option<Identity>, Grant), AuthError> {
        let meta = self.metadata().await?;
        let mut tokens = code_flow::refresh(
            self.http.as_ref(),
            &meta.token_endpoint,
            client,
            refresh_token,
        )
        .await?;
        let mut grant = tokens.grant();
        let Some(id_token) = tokens.id_token else {
            return Ok((None, grant));
        };
        let bad = |m: &str| AuthError::InvalidIdToken(m.to_string());
        let (alg, key) = self.signing_key(&meta, id_token.expose()).await?;
        let claims = verify_claims(
            id_token.expose(),
            &key.key,
            alg,
            &self.settings,
            &[&client.client_id],
            &meta.issuer,
        )?;
        match claims.get("sub").and_then(Value::as_str) {
            Some(sub) if sub == expected_sub => {}
            _ => return Err(bad("the refreshed ID token names another user")),
        }
        grant.id_token = Some(id_token);
        Ok((
            Some(Identity::from_claims(
                expected_sub.to_string(),
                &claims,
                keep_claims,
            )),
            grant,
        ))
    }

    /// Checks a back-channel logout token (OIDC Back-Channel Logout 1.0 section
    /// 2.6): signature by a published key, allow-listed `alg`, exact `iss`, `aud`
    /// one of `audiences`, `iat`/`exp`, the logout event, `sub` or `sid`, and no
    /// `nonce`. Returns `(sub, sid, jti)`.
    pub(crate) async fn verify_logout_token(
        &self,
        token: &str,
        audiences: &[&str],
    ) -> Result<(Option<String>, Option<String>, String), AuthError> {
        let bad = |m: &str| AuthError::InvalidLogoutToken(m.to_string());
        let meta = self.metadata().await?;
        let (alg, key) = self.signing_key(&meta, token).await.map_err(|e| match e {
            AuthError::InvalidIdToken(m) => AuthError::InvalidLogoutToken(m),
            other => other,
        })?;
        let mut v = Validation::new(alg);
        v.leeway = self.settings.clock_skew.as_secs();
        v.set_issuer(&[&meta.issuer]);
        v.set_audience(audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v)
            .map_err(|e| bad(&format!("{:?}", e.kind())))?
            .claims;
        if claims.get("iat").and_then(Value::as_u64).is_none() {
            return Err(bad("iat missing"));
        }
        let event = claims
            .get("events")
            .and_then(Value::as_object)
            .and_then(|e| e.get("http://schemas.openid.net/event/backchannel-logout"));
        if !matches!(event, Some(Value::Object(_))) {
            return Err(bad("no back-channel logout event"));
        }
        if claims.contains_key("nonce") {
            return Err(bad("a logout token must not have a nonce"));
        }
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= 255)
                .map(str::to_string)
        };
        let (sub, sid) = (text("sub"), text("sid"));
        if sub.is_none() && sid.is_none() {
            return Err(bad("neither sub nor sid"));
        }
        let jti = text("jti").ok_or_else(|| bad("jti missing"))?;
        Ok((sub, sid, jti))
    }

    /// The RP-initiated logout URL (OIDC RP-Initiated Logout 1.0), if the provider
    /// was discovered and advertises an `end_session_endpoint`.
    pub(crate) fn end_session_url(
        &self,
        client_id: &str,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: &str,
        state: &str,
    ) -> Option<String> {
        let endpoint = self.metadata.get()?.end_session_endpoint.as_deref()?;
        let mut url = Url::parse(endpoint).ok()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("client_id", client_id)
                .append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
                .append_pair("state", state);
        }
        Some(url.into())
    }

    /// The key that signed `token`, after the checks every JWT from the IdP gets:
    /// a readable header (`alg: none` and unknown algorithms are no `Algorithm`), an
    /// allow-listed `alg`, a published key, and that key's own `alg` if it names one.
    async fn signing_key(
        &self,
        meta: &ProviderMetadata,
        token: &str,
    ) -> Result<(Algorithm, Arc<VerifyKey>), AuthError> {
        let bad = |m: &str| AuthError::InvalidIdToken(m.to_string());
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
        Ok((header.alg, key))
    }

    /// Verifies an ID token's signature and claims; returns the claims.
    pub(crate) async fn verify_id_token(
        &self,
        meta: &ProviderMetadata,
        token: &str,
        expected_nonce: &str,
        client_id: &str,
    ) -> Result<Map<String, Value>, AuthError> {
        let (alg, key) = self.signing_key(meta, token).await?;
        let claims = verify_claims(
            token,
            &key.key,
            alg,
            &self.settings,
            &[client_id],
            &meta.issuer,
        )?;
        check_nonce_sub_iat(&claims, expected_nonce, &self.settings)?;
        Ok(claims)
    }

    /// Verifies an API client's bearer JWT: signature by a published key,
    /// allow-listed `alg`, exact `iss`, `aud` one of `audiences`, `exp`/`nbf`, a
    /// `sub`. No nonce: the gateway did not ask for this token.
    pub(crate) async fn verify_bearer(
        &self,
        token: &str,
        audiences: &[&str],
    ) -> Result<Map<String, Value>, AuthError> {
        let meta = self.metadata().await?;
        let (alg, key) = self.signing_key(&meta, token).await?;
        let claims = verify_claims(
            token,
            &key.key,
            alg,
            &self.settings,
            audiences,
            &meta.issuer,
        )?;
        match claims.get("sub").and_then(Value::as_str) {
            Some(s) if !s.is_empty() && s.len() <= 255 => Ok(claims),
            _ => Err(AuthError::InvalidIdToken("sub missing or empty".into())),
        }
    }
}

/// Signature, `iss`, `aud` (one of `audiences`), `exp`, `nbf`, plus `azp`. Split
/// out so benches and tests can call it with a key in hand.
pub fn verify_claims(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    alg: Algorithm,
    settings: &ProviderSettings,
    audiences: &[&str],
    issuer: &str,
) -> Result<Map<String, Value>, AuthError> {
    let mut v = Validation::new(alg);
    v.leeway = settings.clock_skew.as_secs();
    v.set_issuer(&[issuer]);
    v.set_audience(audiences);
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
        Some(Value::String(azp)) if audiences.contains(&azp.as_str()) => {}
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
