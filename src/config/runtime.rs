//! Validated, ready-to-use configuration. Built only by `validate`, never
//! deserialized, so nothing on the request path can meet a config error.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;

use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    pub session: SessionSettings,
    pub provider: Option<ProviderSettings>,
    pub routes: Vec<RouteSpec>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub threads: usize,
    pub grace_period: Duration,
    pub shutdown_timeout: Duration,
    /// `scheme://host[:port]` of `public_url`, without a trailing slash.
    pub public_origin: String,
    pub tls: bool,
    pub paths: SsoPaths,
    pub allowed_redirect_hosts: Vec<String>,
    pub post_logout_redirect: String,
}

/// The gateway's own endpoints, answered before any route.
#[derive(Debug, Clone)]
pub struct SsoPaths {
    pub prefix: String,
    pub callback: String,
    pub logout: String,
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Final cookie name, `__Host-` prefixed when served over TLS.
    pub cookie_name: String,
    /// Prefix of the per-login pending cookies (`{prefix}{state-id}`).
    pub pending_prefix: String,
    pub secure: bool,
    pub lifetime: Duration,
    pub keys: Vec<Secret<[u8; 32]>>,
    pub pending_ttl: Duration,
    pub max_pending: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAuth {
    ClientSecretPost,
    ClientSecretBasic,
}

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret<String>,
    pub token_auth: TokenAuth,
    pub scopes: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub clock_skew: Duration,
    pub jwks_min_refetch: Duration,
    pub jwks_cache: Duration,
    pub http_timeout: Duration,
    pub logout_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Public,
    Oidc,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// Resolved at start-up: Pingora's `HttpPeer::new("host:port")` would do
    /// blocking DNS on the request path and panic on failure.
    pub addr: SocketAddr,
    /// The URL as written, for logs.
    pub url: String,
}

/// One identity header: its name and the claim that fills it.
#[derive(Debug, Clone)]
pub struct HeaderRule {
    pub name: HeaderName,
    pub claim: String,
}

#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Index in the file, for messages and logs (`route[2]`).
    pub index: usize,
    /// Lower-case host without port, or `None` for any host.
    pub host: Option<String>,
    pub path: String,
    pub upstream: Upstream,
    pub protocol: Protocol,
    pub headers: Vec<HeaderRule>,
    /// `scheme://host[:port]` that users reach this route at: redirect URIs and
    /// same-origin checks are built from it, never from the request's Host header.
    pub origin: String,
}
