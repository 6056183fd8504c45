//! OAuth 2.0 / OpenID Connect endpoints: discovery, JWKS, authorize, token (code and
//! refresh grants, client_secret_post/basic, PKCE S256), userinfo, and global logout.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{digest, SHA256};
use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxState};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::http::{
    bearer_token, clear_sso_cookie, error_page, injected, json, json_no_store, oauth_error, param,
    query, redirect, sso_cookie, with_cookie,
};
use super::slo::end_sso_session;
use super::state::{lock, AccessGrant, CodeGrant, RefreshGrant, State, CODE_TTL_SECS};
use super::{ExpiresInStyle, User};
use crate::util::{
    append_query, b64url, form_decode, form_encode, now_secs, parse_form, random_token,
};

type Shared = AxState<Arc<State>>;

pub(crate) async fn discovery(AxState(state): Shared) -> Response {
    let b = &state.base_url;
    let mut doc = json!({
        "issuer": state.issuer,
        "authorization_endpoint": format!("{b}/api/v1/oauth2/authorize"),
        "token_endpoint": format!("{b}/api/v1/oauth2/token"),
        "userinfo_endpoint": format!("{b}/api/v1/oauth2/userinfo"),
        "jwks_uri": format!("{b}/api/v1/oauth2/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "get_user_info", "profile", "email"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "claims_supported": [
            "iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "sid",
            "name", "email", "preferred_username", "phone_number"
        ],
    });
    if state.cfg.end_session_endpoint {
        doc["end_session_endpoint"] = format!("{b}/api/v1/logout").into();
    }
    json(StatusCode::OK, &doc)
}

pub(crate) async fn jwks(AxState(state): Shared) -> Response {
    json(StatusCode::OK, &state.jwks())
}

// ---- authorize -------------------------------------------------------------------

pub(crate) async fn authorize(
    AxState(state): Shared,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = match query(raw.as_deref()) {
        Ok(q) => q,
        Err(name) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &format!("Parameter {name} is repeated."),
            )
        }
    };
    if param(&q, "client_id") != Some(state.cfg.client_id.as_str()) {
        return error_page(StatusCode::BAD_REQUEST, "Unknown or missing client_id.");
    }
    let Some(redirect_uri) = param(&q, "redirect_uri") else {
        return error_page(StatusCode::BAD_REQUEST, "Missing redirect_uri.");
    };
    if !redirect_uri_ok(&state, redirect_uri) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri does not match the application's callback URL.",
        );
    }
    let st = param(&q, "state");
    let fail = |error: &str, description: &str| {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(st) = st {
            params.push(("state", st));
        }
        match append_query(redirect_uri, &params) {
            Some(location) => redirect(&location),
            None => error_page(StatusCode::BAD_REQUEST, "Invalid redirect_uri."),
        }
    };

    if param(&q, "response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "Only response_type=code is supported",
        );
    }
    let Some(scope) = param(&q, "scope") else {
        return fail("invalid_request", "scope is required");
    };
    let code_challenge = match (
        param(&q, "code_challenge"),
        param(&q, "code_challenge_method"),
    ) {
        (None, None) => None,
        (Some(c), Some("S256")) if pkce_value_ok(c) => Some(c.to_string()),
        (Some(_), Some("S256")) => return fail("invalid_request", "Invalid code_challenge"),
        (Some(_), _) => return fail("invalid_request", "code_challenge_method must be S256"),
        (None, Some(_)) => return fail("invalid_request", "code_challenge is required"),
    };

    let Some((_, session)) = state.session(sso_cookie(&headers).as_deref()) else {
        if param(&q, "prompt") == Some("none") {
            return fail("login_required", "The user is not logged in");
        }
        let back = uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/api/v1/oauth2/authorize");
        return redirect(&format!("/api/v1/login?redirect={}", form_encode(back)));
    };

    let code = random_token(32);
    {
        let mut store = lock(&state.store);
        store.purge();
        store.codes.insert(
            code.clone(),
            CodeGrant {
                client_id: state.cfg.client_id.clone(),
                redirect_uri: redirect_uri.to_string(),
                user_id: session.user_id.clone(),
                scope: scope.to_string(),
                nonce: param(&q, "nonce").map(str::to_string),
                code_challenge,
                auth_time: session.auth_time,
                sid: Some(session.sid.clone()),
                expires: now_secs() + CODE_TTL_SECS,
            },
        );
    }
    tracing::debug!(user = %session.user_id, "issued authorization code");
    let mut params = vec![("code", code.as_str())];
    if let Some(st) = st {
        params.push(("state", st));
    }
    match append_query(redirect_uri, &params) {
        Some(location) => redirect(&location),
        None => error_page(StatusCode::BAD_REQUEST, "Invalid redirect_uri."),
    }
}

fn redirect_uri_ok(state: &State, redirect_uri: &str) -> bool {
    if !state.cfg.redirect_uris.is_empty() {
        return state.cfg.redirect_uris.iter().any(|r| r == redirect_uri);
    }
    match url::Url::parse(redirect_uri) {
        Ok(u) => matches!(u.scheme(), "http" | "https") && u.fragment().is_none() && u.has_host(),
        Err(_) => false,
    }
}

/// RFC 7636: 43..=128 characters from the unreserved set.
fn pkce_value_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

// ---- token -----------------------------------------------------------------------

pub(crate) async fn token(AxState(state): Shared, headers: HeaderMap, body: Bytes) -> Response {
    token_inner(&state, &headers, &body).unwrap_or_else(TokenError::into_response)
}

/// An error answer of the token endpoint (`{"error", "error_description"}`, no-store).
struct TokenError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// `WWW-Authenticate` challenge for 401s.
    challenge: Option<&'static str>,
}

impl TokenError {
    fn new(status: StatusCode, error: &'static str, description: &str) -> TokenError {
        TokenError {
            status,
            error,
            description: description.to_string(),
            challenge: None,
        }
    }

    fn into_response(self) -> Response {
        let mut resp = oauth_error(self.status, self.error, &self.description);
        if let Some(challenge) = self.challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        resp
    }
}

fn invalid_grant(description: &str) -> TokenError {
    TokenError::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn invalid_request(description: &str) -> TokenError {
    TokenError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_client(description: &str) -> TokenError {
    TokenError {
        challenge: Some("Basic realm=\"OneAccess\""),
        ..TokenError::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }
}

fn token_inner(state: &State, headers: &HeaderMap, body: &[u8]) -> Result<Response, TokenError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(invalid_request(
                "Content-Type must be application/x-www-form-urlencoded",
            ));
        }
    }
    let form = parse_form(body)
        .map_err(|name| invalid_request(&format!("Parameter {name} is repeated")))?;
    authenticate_client(state, headers, &form)?;
    match param(&form, "grant_type") {
        Some("authorization_code") => code_grant(state, &form),
        Some("refresh_token") => refresh_grant(state, &form),
        Some(_) => Err(TokenError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant_type",
        )),
        None => Err(invalid_request("grant_type is required")),
    }
}

/// client_secret_basic or client_secret_post (not both).
fn authenticate_client(
    state: &State,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(), TokenError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| rest.trim().to_string())
        });
    let (id, secret) = match (basic, form.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(invalid_request("Use only one client authentication method"));
        }
        (Some(b64), None) => {
            let decoded = STANDARD
                .decode(b64.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| invalid_client("Malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| invalid_client("Malformed Basic credentials"))?;
            let (id, secret) = (form_decode(id), form_decode(secret));
            if form.get("client_id").is_some_and(|body_id| *body_id != id) {
                return Err(invalid_request(
                    "client_id does not match the Basic credentials",
                ));
            }
            (id, secret)
        }
        (None, Some(secret)) => {
            let id = form
                .get("client_id")
                .ok_or_else(|| invalid_client("client_id is required"))?;
            (id.clone(), secret.clone())
        }
        (None, None) => return Err(invalid_client("Client authentication is required")),
    };
    let id_ok = id == state.cfg.client_id;
    let secret_ok =
        verify_slices_are_equal(secret.as_bytes(), state.cfg.client_secret.as_bytes()).is_ok();
    if id_ok && secret_ok {
        Ok(())
    } else {
        tracing::info!(client_id = %id, "client authentication failed");
        Err(invalid_client("Client authentication failed"))
    }
}

fn code_grant(state: &State, form: &HashMap<String, String>) -> Result<Response, TokenError> {
    let code = param(form, "code").ok_or_else(|| invalid_request("code is required"))?;
    let redirect_uri =
        param(form, "redirect_uri").ok_or_else(|| invalid_request("redirect_uri is required"))?;
    // Single use: the code is gone after the first attempt, successful or not.
    let grant = lock(&state.store)
        .codes
        .remove(code)
        .ok_or_else(|| invalid_grant("Invalid authorization code"))?;
    if grant.expires <= now_secs()
        || grant.client_id != state.cfg.client_id
        || grant.redirect_uri != redirect_uri
    {
        return Err(invalid_grant("Invalid authorization code"));
    }
    let verifier = param(form, "code_verifier");
    match (&grant.code_challenge, verifier) {
        (None, None) => {}
        (Some(challenge), Some(verifier)) => {
            let computed = b64url(digest(&SHA256, verifier.as_bytes()).as_ref());
            if !pkce_value_ok(verifier) || computed != *challenge {
                return Err(invalid_grant("PKCE verification failed"));
            }
        }
        (Some(_), None) => return Err(invalid_grant("code_verifier is required")),
        (None, Some(_)) => {
            return Err(invalid_grant(
                "code_verifier sent but no code_challenge was",
            ));
        }
    }
    let user = state
        .user_by_id(&grant.user_id)
        .ok_or_else(|| invalid_grant("Invalid authorization code"))?;
    issue_tokens(
        state,
        &user,
        &grant.scope,
        grant.nonce.as_deref(),
        grant.auth_time,
        grant.sid,
    )
}

fn refresh_grant(state: &State, form: &HashMap<String, String>) -> Result<Response, TokenError> {
    let token =
        param(form, "refresh_token").ok_or_else(|| invalid_request("refresh_token is required"))?;
    let grant = {
        let mut store = lock(&state.store);
        match store.refresh.get(token) {
            Some(g) if g.client_id == state.cfg.client_id => store.refresh.remove(token),
            _ => None,
        }
    }
    .ok_or_else(|| invalid_grant("Invalid refresh token"))?;
    let user = state
        .user_by_id(&grant.user_id)
        .ok_or_else(|| invalid_grant("Invalid refresh token"))?;
    issue_tokens(state, &user, &grant.scope, None, grant.auth_time, grant.sid)
}

fn issue_tokens(
    state: &State,
    user: &User,
    scope: &str,
    nonce: Option<&str>,
    auth_time: u64,
    sid: Option<String>,
) -> Result<Response, TokenError> {
    let ttl = state.cfg.access_token_ttl.as_secs();
    let access_token = random_token(32);
    let refresh_token = random_token(32);
    let client_id = state.cfg.client_id.clone();
    let id_token = if scope.split_whitespace().any(|s| s == "openid") {
        let t = state
            .id_token(user, &client_id, nonce, auth_time, sid.as_deref())
            .map_err(|e| {
                tracing::error!(error = %e, "cannot sign an ID token");
                TokenError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "Signing failed",
                )
            })?;
        Some(t)
    } else {
        None
    };
    {
        let mut store = lock(&state.store);
        store.purge();
        store.access.insert(
            access_token.clone(),
            AccessGrant {
                user_id: user.id.clone(),
                expires: now_secs() + ttl,
            },
        );
        store.refresh.insert(
            refresh_token.clone(),
            RefreshGrant {
                user_id: user.id.clone(),
                client_id,
                scope: scope.to_string(),
                auth_time,
                sid,
            },
        );
    }
    let expires_in: Value = match state.cfg.expires_in {
        ExpiresInStyle::Number => ttl.into(),
        ExpiresInStyle::String => ttl.to_string().into(),
    };
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scope,
        "refresh_token": refresh_token,
    });
    if let Some(t) = id_token {
        body["id_token"] = t.into();
    }
    tracing::info!(user = %user.user_name, "issued tokens");
    Ok(json_no_store(StatusCode::OK, &body))
}

// ---- userinfo --------------------------------------------------------------------

fn unauthorized(description: &str) -> Response {
    let mut resp = oauth_error(StatusCode::UNAUTHORIZED, "unauthorized", description);
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    resp
}

pub(crate) async fn userinfo(
    AxState(state): Shared,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let injected_answer = lock(&state.knobs).userinfo_override.clone();
    if let Some((status, body)) = injected_answer {
        return injected(status, body, "application/json");
    }
    let q = query(raw.as_deref()).unwrap_or_default();
    if q.contains_key("access_token") {
        return unauthorized("access_token must be sent in the Authorization header");
    }
    let Some(token) = bearer_token(&headers) else {
        return unauthorized("Missing bearer token");
    };
    let user_id = {
        let store = lock(&state.store);
        store
            .access
            .get(&token)
            .filter(|g| g.expires > now_secs())
            .map(|g| g.user_id.clone())
    };
    let Some(user) = user_id.as_deref().and_then(|id| state.user_by_id(id)) else {
        return unauthorized("Invalid or expired access token");
    };
    json_no_store(
        StatusCode::OK,
        &json!({
            "id": user.id,
            "userName": user.user_name,
            "name": user.name,
            "email": user.email,
            "mobile": user.mobile,
        }),
    )
}

// ---- global logout ---------------------------------------------------------------

/// OneAccess's global logout (`redirect_url`), which is also the advertised
/// `end_session_endpoint`: with `post_logout_redirect_uri` it acts as OIDC
/// RP-initiated logout, which takes only a registered URI and hands `state` back.
pub(crate) async fn logout(
    AxState(state): Shared,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query(raw.as_deref()).unwrap_or_default();
    let target = match param(&q, "post_logout_redirect_uri") {
        Some(uri) => {
            let registered = lock(&state.logout)
                .post_logout_uris
                .iter()
                .any(|u| u == uri);
            if !registered {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "post_logout_redirect_uri is not registered for this client.",
                );
            }
            let mut url = match url::Url::parse(uri) {
                Ok(u) => u,
                Err(_) => {
                    return error_page(StatusCode::BAD_REQUEST, "Invalid post_logout_redirect_uri.")
                }
            };
            if let Some(st) = param(&q, "state") {
                url.query_pairs_mut().append_pair("state", st);
            }
            url.to_string()
        }
        None => param(&q, "redirect_url")
            .unwrap_or("/api/v1/login")
            .to_string(),
    };
    end_sso_session(&state, &headers).await;
    with_cookie(redirect(&target), &clear_sso_cookie())
}
