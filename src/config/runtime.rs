//! Validated, ready-to-use configuration. Built only by `validate`, never
//! deserialized, so nothing on the request path can meet a config error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;

pub(crate) use crate::policy::OneAccessRule;
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    pub session: SessionSettings,
    pub provider: Option<ProviderSettings>,
    pub routes: Vec<RouteSpec>,
    pub log: LogSettings,
    /// Who may post CAS single-logout requests (`cas.slo_networks`, the same on
    /// every cas route, since they all share one service URL); `None`: anyone,
    /// as the CAS protocol has no signature.
    pub(crate) cas_slo_networks: Option<Vec<ipnet::IpNet>>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub threads: usize,
    pub(crate) grace_period: Duration,
    pub(crate) shutdown_timeout: Duration,
    /// `scheme://host[:port]` of `public_url`, without a trailing slash.
    pub public_origin: String,
    pub tls: bool,
    pub paths: SsoPaths,
    pub(crate) allowed_redirect_hosts: Vec<String>,
    pub(crate) post_logout_redirect: String,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// PKCS#8 DER of the assertion signing key, if configured.
    pub(crate) assertion_key: Option<Secret<Vec<u8>>>,
    /// `/healthz`, `/readyz` and `/metrics`, on their own listener.
    pub admin_listen: Option<SocketAddr>,
    /// Where a process started with `--upgrade` takes the listeners from.
    pub upgrade_socket: String,
    /// TLS on the listener.
    pub listener_tls: Option<ListenerTls>,
    pub limits: Limits,
    pub upstream: UpstreamDefaults,
}

/// The listener's certificate, loaded and checked when the config is: `check`
/// finds a bad one, and a reload picks up a renewed one.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub certified: Arc<rustls::sign::CertifiedKey>,
    pub(crate) http2: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The request line and headers together; more gets a 431.
    pub(crate) max_request_header_bytes: usize,
    /// Bodies the gateway reads itself (logout tokens, CAS logout requests).
    pub(crate) max_endpoint_body_bytes: usize,
    /// Open client connections per process; more are closed at once.
    pub(crate) max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct UpstreamDefaults {
    pub(crate) connect_timeout: Duration,
    /// Between two reads of an answer; a long poll needs more than its wait.
    pub(crate) read_timeout: Duration,
    /// How long an idle connection stays in the keep-alive pool.
    pub(crate) idle_timeout: Duration,
    /// Idle connections each worker keeps (all upstreams together); one put
    /// back into a full pool is closed, and a later request connects again.
    pub(crate) max_idle_connections: usize,
    /// Silence allowed on an upgraded connection (WebSocket), each way.
    pub(crate) websocket_idle_timeout: Duration,
    /// DER certificates https upstreams are checked against; `None`: the system's.
    pub ca: Option<Arc<[Vec<u8>]>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `RUST_LOG`-style filter; `RUST_LOG` wins when set.
    pub level: String,
    pub access_log: bool,
}

/// The gateway's own endpoints, answered before any route.
#[derive(Debug, Clone)]
pub struct SsoPaths {
    pub prefix: String,
    /// OIDC and OAuth2 redirect URI path.
    pub callback: String,
    /// CAS service URL path; CAS Single Logout POSTs arrive there too.
    pub(crate) cas_callback: String,
    /// OIDC Back-Channel Logout endpoint (register it at OneAccess).
    pub(crate) backchannel_logout: String,
    pub logout: String,
    /// Where OIDC RP-initiated logout comes back (`post_logout_redirect_uri`,
    /// under `public_url`: the one URL to register at OneAccess for it).
    pub(crate) logged_out: String,
    /// The JWKS of the identity assertions.
    pub jwks: String,
    /// Forward auth for nginx `auth_request`: 2xx or 401.
    pub forward_auth: String,
    /// Forward auth for Traefik and Caddy: 2xx, or a redirect to log in.
    pub(crate) forward_auth_redirect: String,
    /// Starts a login for a URL (`?rd=`): where nginx sends a 401.
    pub start: String,
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Final cookie name, `__Host-` prefixed when served over TLS.
    pub cookie_name: String,
    /// `{cookie_name}_`: every other cookie of the gateway starts with it, so one
    /// test tells the gateway's cookies from the app's.
    pub(crate) family_prefix: String,
    /// Prefix of the per-login pending cookies (`{prefix}{state-id}`).
    pub(crate) pending_prefix: String,
    /// Double-submit token of the logout confirmation form.
    pub(crate) csrf_cookie: String,
    /// Marks a passive CAS login (`gateway=true`) that found no SSO session, so the
    /// route serves the user anonymously instead of looping back to CAS.
    pub(crate) cas_gateway_cookie: String,
    pub secure: bool,
    pub(crate) lifetime: Duration,
    pub keys: Vec<Secret<[u8; 32]>>,
    pub(crate) pending_ttl: Duration,
    pub(crate) max_pending: usize,
    pub mode: SessionMode,
    pub(crate) idle_timeout: Option<Duration>,
    /// No tokens and only mapped claims in the session.
    pub minimal: bool,
    /// How new session records (cookies, store entries) are written; both are read.
    pub record_format: crate::session::record::RecordFormat,
    /// Server mode: sessions each worker thread keeps a copy of (0: none).
    pub(crate) cache_entries: usize,
    pub store: StoreSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    /// The whole session sealed in the cookie: no lookup per request.
    Cookie,
    /// The cookie carries a sealed random id; the session lives in the store.
    Server,
}

#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// A SQLite file in this directory (the default): survives restarts.
    Embedded { dir: std::path::PathBuf },
    /// This process's memory: lost on restart (tests, or a deliberate choice).
    Memory,
    /// Boxed: far larger than the other variants.
    Redis(Box<RedisSettings>),
}

/// Redis, one server or several: where, as whom, over what.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisSettings {
    pub target: RedisTarget,
    /// The ACL user (`AUTH username password`); none: the default user.
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
    /// TLS, with these certificates; `None`: plain TCP (or, for one server, the
    /// `rediss://` URL's TLS with the system's roots).
    pub tls: Option<RedisTls>,
    /// Prefix of every key, so gateways of different deployments can share a
    /// Redis.
    pub prefix: String,
}

impl RedisSettings {
    /// One server at `url`, no credentials, no CA of its own.
    pub fn single(url: &str, prefix: &str) -> RedisSettings {
        RedisSettings {
            target: RedisTarget::Single {
                url: url.to_string(),
            },
            username: None,
            password: None,
            tls: None,
            prefix: prefix.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RedisTarget {
    /// `redis://host:port/db` or `rediss://…`, without credentials.
    Single { url: String },
    /// The master the sentinels name `master`, found again after a failover.
    Sentinel {
        master: String,
        /// The sentinels' hosts and ports.
        nodes: Vec<(String, u16)>,
        db: i64,
        /// The sentinels' own credentials.
        username: Option<String>,
        password: Option<Secret<String>>,
    },
    /// A Redis Cluster, found from these seed nodes (hosts and ports).
    Cluster { nodes: Vec<(String, u16)> },
}

/// Certificates for TLS to Redis, read and checked at start-up (PEM bytes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedisTls {
    /// CA certificates; `None`: the system's roots.
    pub ca: Option<Vec<u8>>,
    /// A client certificate chain and its key.
    pub client: Option<(Vec<u8>, Secret<Vec<u8>>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenAuth {
    ClientSecretPost,
    ClientSecretBasic,
}

/// How a route's application authenticates at the token endpoint. OneAccess gives
/// each application (OIDC, OAuth2) its own id and secret.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: Secret<String>,
    pub(crate) token_auth: TokenAuth,
}

/// Where logout sends an OIDC or OAuth2 user after clearing the gateway's cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutMode {
    /// OneAccess global logout, `/api/v1/logout?redirect_url=…`.
    Global,
    /// The discovered OIDC `end_session_endpoint` with `id_token_hint` (falls back
    /// to global logout when the provider advertises none).
    EndSession,
}

/// Whether an OIDC login also asks the userinfo endpoint (OIDC Core 5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserinfoMode {
    /// When discovery names an endpoint; a failure fails the login only when the
    /// route uses a claim the ID token lacks.
    Auto,
    /// Always; any failure fails the login.
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub issuer: String,
    /// `scheme://host[:port]` of the tenant: OAuth2, CAS and logout endpoints hang
    /// off it (`{base}/api/v1/...`).
    pub base_url: String,
    /// The provider-wide client; a route may bring its own.
    pub client: Option<ClientCredentials>,
    pub scopes: Vec<String>,
    pub(crate) oauth2_scopes: Vec<String>,
    /// OAuth2 userinfo field -> identity claim (`id` -> `sub`, `userName` ->
    /// `preferred_username`, ...). One entry maps to `sub`.
    pub(crate) userinfo_claims: Vec<(String, String)>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) clock_skew: Duration,
    pub(crate) jwks_min_refetch: Duration,
    pub(crate) jwks_cache: Duration,
    pub(crate) http_timeout: Duration,
    pub(crate) logout_url: String,
    pub logout: LogoutMode,
    pub userinfo: UserinfoMode,
    pub(crate) refresh_margin: Duration,
    /// OneAccess's management API, for policies that ask about accounts and roles.
    pub management: Option<ManagementSettings>,
    /// The session claim that holds the user's OneAccess login name, per protocol.
    pub(crate) login_name_claims: LoginNameClaims,
    /// The receiver of OneAccess's user-change events, when enabled.
    pub events: Option<EventSettings>,
}

/// Which claim of a session holds the user's OneAccess login name (the
/// `username` of user events), per protocol: every session is indexed by it, so
/// an event or an operator can end all of a user's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginNameClaims {
    /// Default `preferred_username` (the ID token's or userinfo's).
    pub oidc: String,
    /// Default `preferred_username` (userinfo's `userName`, mapped by
    /// `userinfo_claims`).
    pub oauth2: String,
    /// Default `sub`: the CAS `user`, which is the login name.
    pub cas: String,
}

impl Default for LoginNameClaims {
    fn default() -> LoginNameClaims {
        LoginNameClaims {
            oidc: "preferred_username".into(),
            oauth2: "preferred_username".into(),
            cas: "sub".into(),
        }
    }
}

impl LoginNameClaims {
    /// The claim for sessions of `realm`.
    pub(crate) fn for_realm(&self, realm: &Realm) -> Option<&str> {
        match realm {
            Realm::Oidc(_) => Some(&self.oidc),
            Realm::OAuth2(_) => Some(&self.oauth2),
            Realm::Cas => Some(&self.cas),
            Realm::Public => None,
        }
    }
}

/// What a user event does to the user's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventAction {
    /// End every session of the user, on every gateway sharing the store.
    Revoke,
    /// Acknowledge and log only.
    Ignore,
}

/// Where the IV sits in an encrypted `data` (OneAccess does not document it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IvAt {
    /// `IV || ciphertext || tag`
    Start,
    /// `ciphertext || tag || IV`
    End,
}

/// The receiver of OneAccess's synchronization events (`[provider.events]`).
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// Under the SSO prefix.
    pub path: String,
    pub token: Secret<String>,
    pub signature_key: Option<Secret<String>>,
    pub encryption_key: Option<Secret<String>>,
    pub(crate) iv_bytes: usize,
    pub(crate) iv_at: IvAt,
    /// How far a timestamp may be from now, either way; nonces are kept twice as long.
    pub(crate) window: Duration,
    pub(crate) max_body: usize,
    pub(crate) on_disable: EventAction,
    pub(crate) on_delete: EventAction,
}

/// The gateway's API credential at OneAccess (an "API" application with the
/// rights to read users' accounts and application roles).
#[derive(Debug, Clone)]
pub struct ManagementSettings {
    pub client_id: String,
    pub client_secret: Secret<String>,
    /// How long an answer is trusted, including while the API is down.
    pub(crate) cache_ttl: Duration,
}

/// Which of the user's tokens a route passes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassToken {
    Access,
    Id,
}

/// What a route does when the IdP refuses a session's refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshFailure {
    /// End the session everywhere: the next request logs in again.
    Logout,
    /// Log in again now, without revoking (the default).
    Reauthenticate,
    /// Keep serving until the session's own end; stop trying to refresh.
    Serve,
}

/// What a route makes of `;params` in a path segment (`/app/page;jsessionid=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathParams {
    /// Judged without them, as a servlet container reads them (the default).
    #[default]
    Allow,
    /// Any `;` (or `%3B`) is refused with 400: for apps that never use them.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Public,
    Oidc,
    OAuth2,
    Cas,
}

/// Which sessions a route accepts, and which protocol logs them out: the
/// protocol, and for OIDC and OAuth2 the application (client id). Kept in the
/// session and the pending login as its text (`oidc:{client}`, `oauth2:{client}`,
/// `cas`, `public`), so existing cookies read the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Realm {
    Public,
    Oidc(String),
    OAuth2(String),
    Cas,
}

impl Realm {
    /// The realm of a route of `protocol` with `client_id` (OIDC and OAuth2).
    pub fn of(protocol: Protocol, client_id: &str) -> Realm {
        match protocol {
            Protocol::Public => Realm::Public,
            Protocol::Oidc => Realm::Oidc(client_id.to_string()),
            Protocol::OAuth2 => Realm::OAuth2(client_id.to_string()),
            Protocol::Cas => Realm::Cas,
        }
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            Realm::Public => Protocol::Public,
            Realm::Oidc(_) => Protocol::Oidc,
            Realm::OAuth2(_) => Protocol::OAuth2,
            Realm::Cas => Protocol::Cas,
        }
    }

    /// The OIDC application's client id, for an OIDC realm.
    pub(crate) fn oidc_client(&self) -> Option<&str> {
        match self {
            Realm::Oidc(c) => Some(c),
            _ => None,
        }
    }
}

impl std::fmt::Display for Realm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Realm::Public => f.write_str("public"),
            Realm::Oidc(c) => write!(f, "oidc:{c}"),
            Realm::OAuth2(c) => write!(f, "oauth2:{c}"),
            Realm::Cas => f.write_str("cas"),
        }
    }
}

impl std::str::FromStr for Realm {
    type Err = String;

    fn from_str(s: &str) -> Result<Realm, String> {
        match s.split_once(':') {
            Some(("oidc", c)) => Ok(Realm::Oidc(c.to_string())),
            Some(("oauth2", c)) => Ok(Realm::OAuth2(c.to_string())),
            None if s == "cas" => Ok(Realm::Cas),
            None if s == "public" => Ok(Realm::Public),
            _ => Err(format!("not a realm: {s:?}")),
        }
    }
}

impl PartialEq<&str> for Realm {
    fn eq(&self, other: &&str) -> bool {
        other.parse::<Realm>().is_ok_and(|r| r == *self)
    }
}

impl serde::Serialize for Realm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Realm {
    /// Parsed from the text as the deserializer lends it: every session cookie
    /// carries a realm, and a `String` (or serde's always-owned `Cow`) in between
    /// would cost each request one more allocation.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Realm, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Realm;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a realm: public, cas, oidc:{client} or oauth2:{client}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Realm, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Public => "public",
            Protocol::Oidc => "oidc",
            Protocol::OAuth2 => "oauth2",
            Protocol::Cas => "cas",
        }
    }
}

/// Which CAS validation endpoint, and so which answer shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasVersion {
    /// `/validate`: `yes\n{user}\n`, no attributes.
    V1,
    /// `/serviceValidate`: user only.
    V2,
    /// `/p3/serviceValidate`: user and attributes.
    V3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasFormat {
    Json,
    Xml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasSettings {
    pub version: CasVersion,
    pub format: CasFormat,
    /// Ask for a fresh login even with an SSO session (`renew=true`).
    pub renew: bool,
    /// Passive login (`gateway=true`): without an SSO session the user is let
    /// through anonymously instead of being shown a login form.
    pub gateway: bool,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// Resolved at start-up: Pingora's `HttpPeer::new("host:port")` would do
    /// blocking DNS on the request path and panic on failure.
    pub addr: SocketAddr,
    /// The URL as written, for logs.
    pub url: String,
    /// Set for an https upstream.
    pub tls: Option<UpstreamTls>,
    /// The route's own read timeout, over `server.upstream`'s.
    pub(crate) read_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// The URL's host: sent as SNI and checked against the certificate.
    pub(crate) server_name: String,
    pub verify: bool,
}

/// One identity header, as OneAccess's attribute mapping has them: from a claim,
/// a fixed value, or a template over claims.
#[derive(Debug, Clone)]
pub struct HeaderRule {
    pub name: HeaderName,
    pub source: HeaderSource,
    pub missing: Missing,
    /// Joins the items of a list claim (groups, roles).
    pub separator: String,
    /// How the text is written as bytes (`encoding`, else the route's
    /// `header_encoding`, else UTF-8 as it is).
    pub encoding: HeaderEncoding,
}

/// How an identity header's text is written, for apps that cannot read UTF-8
/// bytes in a header (a Java servlet reads them as ISO-8859-1). Every encoding
/// writes the text after control characters became spaces; the exact rules are
/// in `identity::encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderEncoding {
    /// The UTF-8 bytes as they are: what the gateway has always sent.
    #[default]
    Utf8,
    /// RFC 3986: unreserved characters kept, every other UTF-8 byte as `%XX`.
    Percent,
    /// RFC 4648 §4 base64 of the UTF-8: standard alphabet, `=` padding.
    Base64,
    /// One ISO-8859-1 byte for each printable character up to U+00FF; any other
    /// character, and `%`, as its UTF-8 in `%XX`.
    Latin1,
    /// RFC 2047 `=?UTF-8?B?…?=` words, when the text is not plain ASCII.
    Mime,
}

impl HeaderEncoding {
    pub const ALL: [HeaderEncoding; 5] = [
        HeaderEncoding::Utf8,
        HeaderEncoding::Percent,
        HeaderEncoding::Base64,
        HeaderEncoding::Latin1,
        HeaderEncoding::Mime,
    ];

    /// The name in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderEncoding::Utf8 => "utf8",
            HeaderEncoding::Percent => "percent",
            HeaderEncoding::Base64 => "base64",
            HeaderEncoding::Latin1 => "latin1",
            HeaderEncoding::Mime => "mime",
        }
    }

    /// The encoding of that name in the configuration file.
    pub fn named(name: &str) -> Option<HeaderEncoding> {
        HeaderEncoding::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSource {
    /// A claim by name or dotted path (`address.country`).
    Claim(String),
    /// The same text for every user (a tenant name, a flag for the app).
    Value(String),
    /// Text with `{claim}` placeholders, e.g. `{preferred_username}@corp`.
    Template(Vec<TemplatePart>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Text(String),
    Claim(String),
}

/// What a rule does when the user lacks a claim it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Send no such header (the default).
    Omit,
    /// Refuse the request with 403: the app cannot work without it.
    Reject,
}

impl HeaderRule {
    /// The claims this rule reads, which the session must keep.
    pub(crate) fn claims_used(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&str>, &[TemplatePart]) = match &self.source {
            HeaderSource::Claim(c) => (Some(c.as_str()), &[]),
            HeaderSource::Value(_) => (None, &[]),
            HeaderSource::Template(parts) => (None, parts.as_slice()),
        };
        one.into_iter().chain(many.iter().filter_map(|p| match p {
            TemplatePart::Claim(c) => Some(c.as_str()),
            TemplatePart::Text(_) => None,
        }))
    }
}

/// How a route's users log in.
#[derive(Debug, Clone)]
pub enum RouteAuth {
    Public,
    /// The route's own application at OneAccess, or the provider's.
    Oidc(ClientCredentials),
    OAuth2(ClientCredentials),
    Cas(CasSettings),
}

impl RouteSpec {
    pub fn protocol(&self) -> Protocol {
        match self.auth {
            RouteAuth::Public => Protocol::Public,
            RouteAuth::Oidc(_) => Protocol::Oidc,
            RouteAuth::OAuth2(_) => Protocol::OAuth2,
            RouteAuth::Cas(_) => Protocol::Cas,
        }
    }

    /// The client of an `oidc` or `oauth2` route.
    pub fn client(&self) -> Option<&ClientCredentials> {
        match &self.auth {
            RouteAuth::Oidc(c) | RouteAuth::OAuth2(c) => Some(c),
            RouteAuth::Public | RouteAuth::Cas(_) => None,
        }
    }

    /// The settings of a `cas` route.
    pub fn cas(&self) -> Option<CasSettings> {
        match self.auth {
            RouteAuth::Cas(c) => Some(c),
            _ => None,
        }
    }

    /// Whether the client's own `Authorization` must not reach the app: a route
    /// that passes the user's token never passes the client's.
    pub(crate) fn replaces_client_authorization(&self) -> bool {
        self.pass_token.is_some()
    }

    /// The claims this route reads: in its header rules and in its policy.
    pub(crate) fn claims_used(&self) -> impl Iterator<Item = &str> {
        let mapped = self.headers.iter().flat_map(|h| h.claims_used());
        mapped.chain(self.policy.iter().flat_map(|p| p.claims_used()))
    }
}

#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Index in the file, for messages and logs (`route[2]`).
    pub index: usize,
    /// Lower-case host without port, or `None` for any host.
    pub host: Option<String>,
    pub path: String,
    /// `None`: the route is only judged through forward auth, never proxied.
    pub upstream: Option<Upstream>,
    /// How users of this route log in: its protocol with what that protocol
    /// needs (a client, CAS settings), so no route lacks what its login uses.
    pub auth: RouteAuth,
    pub headers: Vec<HeaderRule>,
    /// `scheme://host[:port]` that users reach this route at: redirect URIs and
    /// same-origin checks are built from it, never from the request's Host header.
    pub origin: String,
    pub(crate) refresh_failure: RefreshFailure,
    pub policy: Option<crate::policy::Policy>,
    pub pass_token: Option<PassToken>,
    pub assertion: bool,
    /// Audiences accepted in API clients' bearer JWTs; empty: bearer tokens are
    /// not accepted.
    pub(crate) bearer_audiences: Vec<String>,
    pub path_params: PathParams,
    /// Which logins this route accepts: a session made by one protocol and client
    /// is not accepted by a route of another (`sub` means different things to
    /// each), e.g. `oidc:client-id`, `oauth2:client-id`, `cas`.
    pub realm: Realm,
}

#[cfg(test)]
mod tests {
    use super::Realm;

    #[test]
    fn realms_keep_the_text_older_sessions_carry() {
        for (text, realm) in [
            ("oidc:app", Realm::Oidc("app".into())),
            ("oauth2:a:b", Realm::OAuth2("a:b".into())),
            ("cas", Realm::Cas),
            ("public", Realm::Public),
        ] {
            assert_eq!(realm.to_string(), text);
            assert_eq!(text.parse::<Realm>(), Ok(realm.clone()));
            let json = serde_json::to_string(&realm).expect("serialize");
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Realm>(&json).expect("read"), realm);
        }
        for bad in ["", "saml", "oidc", "cas:x"] {
            assert!(bad.parse::<Realm>().is_err(), "{bad}");
            assert!(serde_json::from_str::<Realm>(&format!("\"{bad}\"")).is_err());
        }
        // An escaped string (which the parser cannot lend) reads the same; a
        // value that is not a string is refused.
        let escaped = serde_json::from_str::<Realm>(r#""oidc:a\u0070p""#).expect("escaped");
        assert_eq!(escaped, Realm::Oidc("app".into()));
        assert!(serde_json::from_str::<Realm>("7").is_err());
    }
}
