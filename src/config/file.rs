//! The serde mirror of the TOML file. Unknown keys are errors; almost every field is
//! optional here so that `validate` can report all missing ones at once, with paths.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerFile {
    /// `host:port` to listen on: plain HTTP, or TLS when `[server.tls]` is set.
    pub listen: Option<String>,
    /// The URL users reach the gateway at. Its scheme decides `Secure` cookies and
    /// the `__Host-` prefix; its host and port build redirect URIs.
    pub public_url: Option<String>,
    pub threads: Option<usize>,
    /// How long SIGTERM lets in-flight requests finish. Pingora's default is 300 s.
    pub grace_period_seconds: Option<u64>,
    pub shutdown_timeout_seconds: Option<u64>,
    /// Where the gateway's own endpoints live (`{prefix}/callback`, `{prefix}/logout`).
    pub(crate) sso_path_prefix: Option<String>,
    /// Hosts, besides the gateway's own, that a return URL may point to.
    #[serde(default)]
    pub(crate) allowed_redirect_hosts: Vec<String>,
    /// Where users land after logout when they did not ask for a place.
    pub(crate) post_logout_redirect: Option<String>,
    /// Proxies (CIDR) whose `X-Forwarded-For` is believed for the client address.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// PKCS#8 PEM of the P-256 key that signs identity assertions. Gateways behind
    /// one load balancer share it; without it each process makes its own.
    pub(crate) assertion_key: Option<SecretFile>,
    /// `host:port` of the admin listener (`/healthz`, `/readyz`, `/metrics`).
    pub admin_listen: Option<String>,
    /// The Unix socket a new process takes the listeners from (`--upgrade`).
    pub upgrade_socket: Option<String>,
    pub tls: Option<TlsFile>,
    pub limits: Option<LimitsFile>,
    pub upstream: Option<UpstreamDefaultsFile>,
}

/// TLS on the listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFile {
    /// PEM certificate chain, leaf first.
    pub(crate) cert_file: Option<String>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub(crate) key_file: Option<String>,
    /// Offer HTTP/2 through ALPN (default true).
    pub(crate) http2: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsFile {
    pub(crate) max_request_header_bytes: Option<usize>,
    pub(crate) max_endpoint_body_bytes: Option<usize>,
    pub(crate) max_connections: Option<usize>,
}

/// Defaults for every route's upstream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamDefaultsFile {
    pub(crate) connect_timeout_seconds: Option<u64>,
    pub read_timeout_seconds: Option<u64>,
    pub(crate) idle_timeout_seconds: Option<u64>,
    /// Idle upstream connections each worker keeps for reuse.
    pub(crate) max_idle_connections: Option<usize>,
    /// How long an upgraded connection (WebSocket) may stay silent both ways.
    pub(crate) websocket_idle_timeout_seconds: Option<u64>,
    /// PEM CA certificates that https upstreams are checked against, instead of
    /// the system's roots.
    pub(crate) ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogFile {
    /// `text` (default) or `json`.
    pub format: Option<String>,
    /// A `RUST_LOG`-style filter (default `info`); `RUST_LOG` wins when set.
    pub level: Option<String>,
    /// One line per request (default true).
    pub access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionFile {
    pub cookie_name: Option<String>,
    pub(crate) lifetime_seconds: Option<u64>,
    /// 32-byte AES keys, base64. The first seals new cookies; all of them open.
    #[serde(default)]
    pub keys: Vec<SecretFile>,
    pub(crate) pending_login_ttl_seconds: Option<u64>,
    pub(crate) max_pending_logins: Option<usize>,
    /// `cookie` (everything sealed in the cookie) or `server` (the cookie holds a
    /// sealed id; the session lives in the store).
    pub mode: Option<String>,
    /// Ends a session unused for this long; 0 or absent: no idle timeout.
    pub(crate) idle_timeout_seconds: Option<u64>,
    /// `embedded` (the default: a file in `state_dir`, one gateway), `memory`
    /// (lost on restart) or `redis` (several gateways sharing sessions and
    /// revocations).
    pub store: Option<String>,
    /// Where the embedded store keeps its file; default `$STATE_DIRECTORY`
    /// (systemd's `StateDirectory=`), else `state` in the working directory.
    pub state_dir: Option<String>,
    /// One Redis server: `redis://host:port/db` or `rediss://…` (TLS).
    pub redis_url: Option<String>,
    /// Redis behind Sentinel, instead of `redis_url`.
    pub(crate) redis_sentinel: Option<RedisSentinelFile>,
    /// A Redis Cluster's seed nodes, `host:port`, instead of `redis_url`.
    pub(crate) redis_cluster: Option<Vec<String>>,
    /// The ACL user of every Redis mode (`AUTH username password`).
    pub(crate) redis_username: Option<String>,
    pub(crate) redis_password: Option<SecretFile>,
    /// TLS to Redis: turns it on for Sentinel and Cluster (a `rediss://` URL does
    /// for one server), with a CA and a client certificate.
    pub(crate) redis_tls: Option<RedisTlsFile>,
    pub(crate) redis_key_prefix: Option<String>,
    /// Keep no tokens in the session, and only the claims routes map into headers:
    /// the smallest cookie, for apps that need nothing more.
    #[serde(default)]
    pub minimal: bool,
    /// How new session records are written: `binary` (the default) or `json`
    /// (what gateways before the binary record read; for a rolling upgrade).
    pub(crate) record_format: Option<String>,
    /// Server mode: how many sessions each worker thread keeps a copy of, so
    /// that their next requests skip the store; 0: none.
    pub(crate) cache_entries: Option<usize>,
}

/// `redis_sentinel = { master = "mymaster", nodes = ["host:port", …] }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisSentinelFile {
    /// The name the sentinels monitor the master by.
    pub(crate) master: Option<String>,
    /// The sentinels, `host:port`.
    #[serde(default)]
    pub(crate) nodes: Vec<String>,
    /// The database number on the master (default 0).
    pub(crate) db: Option<i64>,
    /// The sentinels' own credentials, when they ask for them (`requirepass`,
    /// or an ACL user); the master's are `redis_username`/`redis_password`.
    pub(crate) username: Option<String>,
    pub(crate) password: Option<SecretFile>,
}

/// `redis_tls = { ca_file = "…", cert_file = "…", key_file = "…" }`, every
/// field optional: without `ca_file`, the system's roots.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisTlsFile {
    /// PEM CA certificates the servers are checked against.
    pub(crate) ca_file: Option<String>,
    /// A client certificate chain (PEM) and its key, for servers that ask for
    /// one (`tls-auth-clients yes`).
    pub(crate) cert_file: Option<String>,
    pub(crate) key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderFile {
    /// The OneAccess tenant's access domain; the issuer is then
    /// `https://{domain}/api/v1/oauth2`.
    pub domain: Option<String>,
    /// An explicit issuer, instead of `domain` (a simulator, a proxy in between).
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretFile>,
    /// `client_secret_post` (OneAccess's way) or `client_secret_basic`.
    pub token_endpoint_auth: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// Scopes of `oauth2` routes; OneAccess's is `get_user_info`.
    pub(crate) oauth2_scopes: Option<Vec<String>>,
    /// OAuth2 userinfo field -> identity claim. Default: OneAccess's shape.
    pub(crate) userinfo_claims: Option<BTreeMap<String, String>>,
    /// `global` (OneAccess global logout) or `end_session` (OIDC RP-initiated).
    pub logout: Option<String>,
    /// Refresh the access token this long before it ends (default 60).
    pub refresh_margin_seconds: Option<u64>,
    /// OIDC routes: `auto` (default), `always` or `never` ask userinfo at login.
    pub userinfo: Option<String>,
    pub(crate) id_token_algorithms: Option<Vec<String>>,
    pub(crate) clock_skew_seconds: Option<u64>,
    pub jwks_min_refetch_seconds: Option<u64>,
    pub(crate) jwks_cache_seconds: Option<u64>,
    pub http_timeout_seconds: Option<u64>,
    /// Lets `issuer` be plain `http://` on a non-loopback host. Development only.
    #[serde(default)]
    pub(crate) allow_insecure_http: bool,
    /// OneAccess's global logout; defaults to `{base}/api/v1/logout`.
    pub(crate) logout_url: Option<String>,
    /// OneAccess's management API, for `policy.oneaccess` rules.
    pub management: Option<ManagementFile>,
    /// Which claim of a session holds the user's OneAccess login name, per
    /// protocol: what user events and the admin listener name users by.
    pub(crate) login_name_claims: Option<LoginNameClaimsFile>,
    /// OneAccess's user-change events (synchronization, API mode).
    pub events: Option<EventsFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginNameClaimsFile {
    pub oidc: Option<String>,
    pub oauth2: Option<String>,
    pub cas: Option<String>,
}

/// The receiver of OneAccess's synchronization events.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsFile {
    /// Default `{sso_path_prefix}/oneaccess/events`; must be under the prefix.
    pub path: Option<String>,
    /// The console's Security Token (`Authorization: Bearer`).
    pub token: Option<SecretFile>,
    /// The console's signature key (16 characters); absent: events are unsigned.
    pub signature_key: Option<SecretFile>,
    /// The console's encryption key (16 characters); absent: algorithm `NULL`.
    pub encryption_key: Option<SecretFile>,
    /// Where the IV sits in `data` and how long it is (not documented by OneAccess).
    pub encryption: Option<EncryptionLayoutFile>,
    /// How far an event's timestamp may be from now (default 300).
    pub(crate) window_seconds: Option<u64>,
    /// The largest body taken (default 65536).
    pub max_body_bytes: Option<usize>,
    /// `UPDATE_USER` with `disabled = true`: `revoke` (default) or `ignore`.
    pub(crate) on_disable: Option<String>,
    /// `DELETE_USER`: `revoke` (default) or `ignore`.
    pub(crate) on_delete: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EncryptionLayoutFile {
    /// 12 (default) or 16.
    pub(crate) iv_bytes: Option<usize>,
    /// `start` (default: IV, ciphertext, tag) or `end` (ciphertext, tag, IV).
    pub(crate) iv_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ManagementFile {
    pub client_id: Option<String>,
    pub client_secret: Option<SecretFile>,
    /// How long answers are cached (default 300), and so how long an outage of the
    /// API goes unnoticed by users it already knows.
    pub cache_seconds: Option<u64>,
}

/// Where a secret comes from. Exactly one of `env`, `file`, `value`; `value` only
/// with `dev = true`, so a plain-text secret in TOML is always a visible choice.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretFile {
    pub env: Option<String>,
    pub file: Option<String>,
    pub value: Option<String>,
    #[serde(default)]
    pub dev: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    pub host: Option<String>,
    pub path: Option<String>,
    pub upstream: Option<String>,
    /// Check an https upstream's certificate (default true).
    pub upstream_tls_verify: Option<bool>,
    /// This route's read timeout, over `server.upstream` (long polling).
    pub read_timeout_seconds: Option<u64>,
    pub protocol: Option<String>,
    /// Upstream header name -> a claim name, or a table `{ claim | value |
    /// template, missing, separator, encoding }`. Replaces the default set when given.
    /// Checked by `validate::headers`, which gives better messages than serde
    /// could for the two shapes.
    pub headers: Option<BTreeMap<String, toml::Value>>,
    /// The `encoding` of this route's header rules that name none: `utf8` (the
    /// default), `percent`, `base64`, `latin1` or `mime`.
    pub header_encoding: Option<String>,
    /// This route's own application at OneAccess (`oidc`, `oauth2`).
    pub client_id: Option<String>,
    pub client_secret: Option<SecretFile>,
    pub token_endpoint_auth: Option<String>,
    /// Options of a `cas` route.
    pub cas: Option<CasFile>,
    /// When a token refresh is refused: `logout`, `reauthenticate` (default) or
    /// `serve` (until the session ends).
    pub on_refresh_failure: Option<String>,
    /// Who may use this route, and how.
    pub policy: Option<PolicyFile>,
    /// `access` or `id`: the user's token goes upstream as `Authorization: Bearer`.
    pub pass_token: Option<String>,
    /// Send a signed identity assertion (`X-Gateway-Assertion`) upstream.
    #[serde(default)]
    pub assertion: bool,
    /// Accept `Authorization: Bearer <JWT>` from API clients, verified against
    /// the provider's keys.
    #[serde(default)]
    pub bearer_tokens: bool,
    /// Audiences a bearer token may carry; default: the route's client id.
    pub(crate) bearer_audiences: Option<Vec<String>>,
    /// `allow` (default: judged without them) or `refuse` (400 for any `;`).
    pub path_params: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyFile {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub(crate) emails: Vec<String>,
    #[serde(default)]
    pub email_domains: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub(crate) groups_claim: Option<String>,
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(default)]
    pub deny_networks: Vec<String>,
    /// `forbid` (403, the default) or `reauthenticate` (log in again).
    pub on_deny: Option<String>,
    /// The zone `windows` are read in, e.g. `Asia/Shanghai`; default UTC.
    pub time_zone: Option<String>,
    /// When the route may be used: any one window is enough.
    #[serde(default)]
    pub windows: Vec<WindowFile>,
    /// Ask OneAccess: an account in the application, and maybe one of its roles.
    pub oneaccess: Option<OneAccessFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OneAccessFile {
    pub application_id: Option<String>,
    /// Role codes; any one is enough. None: an account is enough.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Default `sub`; CAS routes must name the attribute with the user id.
    pub(crate) user_id_claim: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowFile {
    /// `mon`..`sun` or ranges such as `mon-fri`; none: every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// `HH:MM`; a `to` before `from` runs past midnight.
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CasFile {
    /// `1.0`, `2.0` or `3.0` (default).
    pub version: Option<String>,
    /// `json` (OneAccess's default) or `xml`.
    pub format: Option<String>,
    #[serde(default)]
    pub renew: bool,
    #[serde(default)]
    pub gateway: bool,
    /// CIDRs the CAS server posts single-logout requests from.
    pub slo_networks: Option<Vec<String>>,
}
