//! `[provider]`: the OneAccess tenant, the gateway's client, ID token and userinfo
//! handling, logout, and `[provider.management]`; also the client credentials a
//! route may give instead of the provider's.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use super::{events, read_secret, Collector, EnvLookup};
use crate::config::file::{ManagementFile, ProviderFile, SecretFile};
use crate::config::runtime::{
    ClientCredentials, LogoutMode, ManagementSettings, ProviderSettings, SsoPaths, TokenAuth,
    UserinfoMode,
};

/// OneAccess's userinfo shape (`id`, `userName`, `name`, `email`, `mobile`; no
/// `sub`) mapped to the claim names identity headers use.
pub(crate) const DEFAULT_USERINFO_CLAIMS: [(&str, &str); 5] = [
    ("id", "sub"),
    ("userName", "preferred_username"),
    ("name", "name"),
    ("email", "email"),
    ("mobile", "phone_number"),
];

pub(super) fn provider_settings(
    c: &mut Collector,
    f: ProviderFile,
    sso_paths: &SsoPaths,
    base_dir: &Path,
    env: EnvLookup,
) -> ProviderSettings {
    let issuer = match (&f.domain, &f.issuer) {
        (Some(d), None) => {
            let d = d.trim().trim_end_matches('/');
            if d.is_empty() || d.contains(['/', ':', '@', ' ']) {
                c.add(
                    "provider.domain",
                    "must be a bare domain such as `example.myhuaweicloud.com`",
                );
            }
            format!("https://{d}/api/v1/oauth2")
        }
        (None, Some(i)) => {
            match Url::parse(i) {
                Ok(u) => {
                    let loopback =
                        matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
                    if u.scheme() == "http" && !loopback && !f.allow_insecure_http {
                        c.add(
                            "provider.issuer",
                            "must be https (or set allow_insecure_http = true for development)",
                        );
                    } else if u.scheme() != "http" && u.scheme() != "https" {
                        c.add("provider.issuer", "must be an http(s) URL");
                    }
                    if u.query().is_some() || u.fragment().is_some() {
                        c.add("provider.issuer", "must have no query or fragment");
                    }
                }
                Err(e) => c.add("provider.issuer", format!("not a URL: {e}")),
            }
            // Kept exactly as written: ID tokens are compared against it byte for byte.
            i.clone()
        }
        _ => {
            c.add("provider", "give exactly one of `domain` or `issuer`");
            String::new()
        }
    };

    let client = client_credentials(
        c,
        "provider",
        f.client_id.as_deref(),
        f.client_secret.as_ref(),
        f.token_endpoint_auth.as_deref(),
        base_dir,
        env,
    );

    let scopes = f
        .scopes
        .clone()
        .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        c.add("provider.scopes", "must include `openid`");
    }
    if scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
        c.add(
            "provider.scopes",
            "scopes must be non-empty and contain no spaces",
        );
    }

    let mut algorithms = Vec::new();
    for (i, a) in f
        .id_token_algorithms
        .clone()
        .unwrap_or_else(|| vec!["RS256".into()])
        .iter()
        .enumerate()
    {
        match a.as_str() {
            "RS256" => algorithms.push(Algorithm::RS256),
            "RS384" => algorithms.push(Algorithm::RS384),
            "RS512" => algorithms.push(Algorithm::RS512),
            "PS256" => algorithms.push(Algorithm::PS256),
            "PS384" => algorithms.push(Algorithm::PS384),
            "PS512" => algorithms.push(Algorithm::PS512),
            "ES256" => algorithms.push(Algorithm::ES256),
            "ES384" => algorithms.push(Algorithm::ES384),
            other => c.add(
                format!("provider.id_token_algorithms[{i}]"),
                format!(
                    "`{other}` is not allowed (asymmetric algorithms only; never `none` or HS*)"
                ),
            ),
        }
    }
    if algorithms.is_empty() {
        c.add(
            "provider.id_token_algorithms",
            "must list at least one algorithm",
        );
    }

    let clock_skew = f.clock_skew_seconds.unwrap_or(60);
    if clock_skew > 300 {
        c.add("provider.clock_skew_seconds", "must be at most 300");
    }
    let http_timeout = f.http_timeout_seconds.unwrap_or(5);
    if !(1..=60).contains(&http_timeout) {
        c.add("provider.http_timeout_seconds", "must be between 1 and 60");
    }

    // OneAccess's OAuth2, CAS and logout endpoints live beside the OIDC ones on the
    // tenant's root: `https://{domain}/api/v1/...`.
    let base_url = issuer
        .strip_suffix("/api/v1/oauth2")
        .map(str::to_string)
        .or_else(|| {
            Url::parse(&issuer)
                .ok()
                .map(|u| u.origin().ascii_serialization())
        })
        .unwrap_or_default();
    let logout_url = match &f.logout_url {
        Some(u) => {
            if Url::parse(u).is_err() {
                c.add("provider.logout_url", "must be an absolute URL");
            }
            u.clone()
        }
        None => format!("{base_url}/api/v1/logout"),
    };
    let logout = match f.logout.as_deref() {
        None | Some("global") => LogoutMode::Global,
        Some("end_session") => LogoutMode::EndSession,
        Some(other) => {
            c.add(
                "provider.logout",
                format!("`{other}` is not `global` or `end_session`"),
            );
            LogoutMode::Global
        }
    };

    let oauth2_scopes = f
        .oauth2_scopes
        .clone()
        .unwrap_or_else(|| vec!["get_user_info".into()]);
    if oauth2_scopes
        .iter()
        .any(|s| s.is_empty() || s.contains(' '))
    {
        c.add(
            "provider.oauth2_scopes",
            "scopes must be non-empty and contain no spaces",
        );
    }
    let userinfo_claims: Vec<(String, String)> = match &f.userinfo_claims {
        Some(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.trim().to_string()))
            .collect(),
        None => DEFAULT_USERINFO_CLAIMS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    if userinfo_claims.iter().filter(|(_, v)| v == "sub").count() != 1 {
        c.add(
            "provider.userinfo_claims",
            "exactly one userinfo field must map to `sub` (OneAccess: id = \"sub\")",
        );
    }
    if userinfo_claims
        .iter()
        .any(|(k, v)| k.is_empty() || v.is_empty())
    {
        c.add("provider.userinfo_claims", "names must not be empty");
    }

    let userinfo = match f.userinfo.as_deref() {
        None | Some("auto") => UserinfoMode::Auto,
        Some("always") => UserinfoMode::Always,
        Some("never") => UserinfoMode::Never,
        Some(other) => {
            c.add(
                "provider.userinfo",
                format!("`{other}` is not `auto`, `always` or `never`"),
            );
            UserinfoMode::Auto
        }
    };

    ProviderSettings {
        userinfo,
        issuer,
        base_url,
        client,
        scopes,
        oauth2_scopes,
        userinfo_claims,
        algorithms,
        clock_skew: Duration::from_secs(clock_skew),
        jwks_min_refetch: Duration::from_secs(f.jwks_min_refetch_seconds.unwrap_or(10)),
        jwks_cache: Duration::from_secs(f.jwks_cache_seconds.unwrap_or(3600)),
        http_timeout: Duration::from_secs(http_timeout),
        logout_url,
        logout,
        refresh_margin: Duration::from_secs(f.refresh_margin_seconds.unwrap_or(60)),
        management: f
            .management
            .as_ref()
            .and_then(|m| management_settings(c, m, base_dir, env)),
        login_name_claims: events::login_name_claims(c, f.login_name_claims.as_ref()),
        events: f
            .events
            .as_ref()
            .and_then(|e| events::event_settings(c, e, sso_paths, base_dir, env)),
    }
}

fn management_settings(
    c: &mut Collector,
    f: &ManagementFile,
    base_dir: &Path,
    env: EnvLookup,
) -> Option<ManagementSettings> {
    let client_id = f.client_id.as_deref().map(str::trim).unwrap_or_default();
    if client_id.is_empty() {
        c.add(
            "provider.management.client_id",
            "is required: the API credential's client id",
        );
    }
    let secret = match &f.client_secret {
        Some(s) => read_secret(c, "provider.management.client_secret", s, base_dir, env),
        None => {
            c.add("provider.management.client_secret", "is required");
            None
        }
    };
    let cache_seconds = f.cache_seconds.unwrap_or(300);
    if cache_seconds == 0 || cache_seconds > 86_400 {
        c.add(
            "provider.management.cache_seconds",
            "must be between 1 and 86400",
        );
    }
    Some(ManagementSettings {
        client_id: client_id.to_string(),
        client_secret: secret?,
        cache_ttl: Duration::from_secs(cache_seconds),
    })
    .filter(|_| !client_id.is_empty())
}

/// A client id with its secret and token-endpoint method, from `provider` or a
/// route. `None` when no `client_id` is given; a half-given pair is a problem.
pub(super) fn client_credentials(
    c: &mut Collector,
    at: &str,
    client_id: Option<&str>,
    secret: Option<&SecretFile>,
    token_auth: Option<&str>,
    base_dir: &Path,
    env: EnvLookup,
) -> Option<ClientCredentials> {
    let token_auth = match token_auth {
        None | Some("client_secret_post") => TokenAuth::ClientSecretPost,
        Some("client_secret_basic") => TokenAuth::ClientSecretBasic,
        Some(other) => {
            c.add(
                format!("{at}.token_endpoint_auth"),
                format!("`{other}` is not client_secret_post or client_secret_basic"),
            );
            TokenAuth::ClientSecretPost
        }
    };
    match (client_id.map(str::trim), secret) {
        (None, None) => None,
        (Some(""), _) => {
            c.add(format!("{at}.client_id"), "must not be empty");
            None
        }
        (Some(_), None) => {
            c.add(
                format!("{at}.client_secret"),
                "is required with client_id, e.g. client_secret = { env = \"ONEACCESS_CLIENT_SECRET\" }",
            );
            None
        }
        (None, Some(_)) => {
            c.add(format!("{at}.client_id"), "is required with client_secret");
            None
        }
        (Some(id), Some(sf)) => {
            let secret = read_secret(c, &format!("{at}.client_secret"), sf, base_dir, env)?;
            Some(ClientCredentials {
                client_id: id.to_string(),
                client_secret: secret,
                token_auth,
            })
        }
    }
}
