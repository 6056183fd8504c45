//! Turns the TOML text into a runtime `Config`, collecting EVERY problem with its
//! TOML path instead of stopping at the first. Reads secrets and resolves upstream
//! addresses, so that the request path never meets a config error.

use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;
use url::Url;

use super::file::{
    CasFile, LogFile, ManagementFile, ProviderFile, RouteFile, SecretFile, ServerFile, SessionFile,
};
use super::runtime::*;
use crate::error::{ConfigErrors, ConfigProblem};
use crate::secret::Secret;

/// Reads an environment variable. A parameter, so tests need not touch the process
/// environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The headers every protected route sets unless it lists its own.
pub const DEFAULT_HEADERS: [(&str, &str); 3] = [
    ("x-forwarded-user", "sub"),
    ("x-forwarded-email", "email"),
    ("x-forwarded-preferred-username", "preferred_username"),
];

/// Headers an identity mapping may never set: they frame or route the request, or
/// carry the client's own credentials.
const FORBIDDEN_HEADERS: [&str; 9] = [
    "host",
    "cookie",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
];

struct Collector {
    problems: Vec<ConfigProblem>,
}

impl Collector {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Deserializes one section on its own, so that a typo in one route does not
    /// hide the problems of the others.
    fn section<T: DeserializeOwned + Default>(&mut self, path: &str, v: Option<toml::Value>) -> T {
        match v {
            None => T::default(),
            Some(v) => match v.try_into::<T>() {
                Ok(t) => t,
                Err(e) => {
                    self.add(path, e.message().trim().to_string());
                    T::default()
                }
            },
        }
    }
}

/// Parses and validates a whole configuration file. `base_dir` anchors relative
/// secret-file paths.
pub fn parse(text: &str, base_dir: &Path, env: EnvLookup) -> Result<Config, ConfigErrors> {
    let mut c = Collector {
        problems: Vec::new(),
    };
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let msg = e.message().trim().to_string();
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!("line {line}")
                })
                .unwrap_or_else(|| "(file)".into());
            return Err(ConfigErrors(vec![ConfigProblem {
                path: at,
                message: format!("not valid TOML: {msg}"),
            }]));
        }
    };

    let server_file: ServerFile = c.section("server", table.remove("server"));
    let session_file: SessionFile = c.section("session", table.remove("session"));
    let provider_file: Option<ProviderFile> = table
        .remove("provider")
        .map(|v| c.section("provider", Some(v)));
    let route_files: Vec<(usize, RouteFile)> = match table.remove("route") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i, c.section(&format!("route[{i}]"), Some(v))))
            .collect(),
        Some(_) => {
            c.add("route", "must be an array of tables: write [[route]]");
            Vec::new()
        }
    };
    let log_file: Option<LogFile> = table.remove("log").map(|v| c.section("log", Some(v)));
    for key in table.keys() {
        c.add(
            key.clone(),
            "unknown section (expected server, session, provider, route, log)",
        );
    }
    let log = serving::log_settings(&mut c, log_file);

    let server = server_settings(&mut c, server_file, base_dir, env);
    let session = session_settings(&mut c, session_file, server.tls, base_dir, env);
    let provider =
        provider_file.map(|p| provider_settings(&mut c, p, &server.paths, base_dir, env));
    let route_files_cas: Vec<(usize, Option<Vec<String>>)> = route_files
        .iter()
        .filter(|(_, f)| f.protocol.as_deref() == Some("cas"))
        .map(|(i, f)| (*i, f.cas.as_ref().and_then(|c| c.slo_networks.clone())))
        .collect();
    let routes = route_specs(
        &mut c,
        route_files,
        &server,
        provider.as_ref(),
        base_dir,
        env,
    );

    if routes.is_empty() {
        c.add("route", "at least one [[route]] is needed");
    }
    if session.minimal {
        for r in routes.iter().filter(|r| r.pass_token.is_some()) {
            c.add(
                format!("route[{}].pass_token", r.index),
                "session.minimal keeps no tokens to pass",
            );
        }
    }
    let cas_slo_networks = cas_slo_networks(&mut c, &route_files_cas);
    if provider.is_none() && routes.iter().any(|r| r.protocol != Protocol::Public) {
        c.add(
            "provider",
            "a [provider] section is needed by the routes that are not public",
        );
    }

    if !c.problems.is_empty() {
        return Err(ConfigErrors(c.problems));
    }
    Ok(Config {
        server,
        session,
        provider,
        routes,
        log,
        cas_slo_networks,
    })
}

/// `cas.slo_networks` of the cas routes: single logout comes to one service URL
/// for all of them, so every cas route that names networks must name the same
/// ones, and then every cas route must name them.
fn cas_slo_networks(
    c: &mut Collector,
    routes: &[(usize, Option<Vec<String>>)],
) -> Option<Vec<ipnet::IpNet>> {
    let mut first: Option<(usize, Vec<ipnet::IpNet>)> = None;
    for (i, nets) in routes {
        let Some(nets) = nets else { continue };
        let parsed: Vec<ipnet::IpNet> = nets
            .iter()
            .enumerate()
            .filter_map(|(k, n)| policy::cidr(c, &format!("route[{i}].cas.slo_networks[{k}]"), n))
            .collect();
        match &first {
            None => first = Some((*i, parsed)),
            Some((j, want)) if *want != parsed => c.add(
                format!("route[{i}].cas.slo_networks"),
                format!("differs from route[{j}].cas.slo_networks: single logout comes to one address for every cas route"),
            ),
            Some(_) => {}
        }
    }
    let (j, nets) = first?;
    for (i, nets) in routes {
        if nets.is_none() {
            c.add(
                format!("route[{i}].cas.slo_networks"),
                format!("is needed, as route[{j}] limits single logout to its networks"),
            );
        }
    }
    Some(nets)
}

fn server_settings(
    c: &mut Collector,
    f: ServerFile,
    base_dir: &Path,
    env: EnvLookup,
) -> ServerSettings {
    let listen_text = f.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen = match listen_text.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        _ => {
            c.add(
                "server.listen",
                format!("`{listen_text}` is not a host:port to listen on"),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }
    };

    let public_text = f
        .public_url
        .unwrap_or_else(|| format!("http://localhost:{}", listen.port()));
    let (public_origin, tls) = match origin_of(&public_text) {
        Ok(o) => o,
        Err(e) => {
            c.add("server.public_url", e);
            ("http://localhost".into(), false)
        }
    };

    let threads = f.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if threads == 0 || threads > 1024 {
        c.add("server.threads", "must be between 1 and 1024");
    }

    let prefix = f.sso_path_prefix.unwrap_or_else(|| "/_sso".into());
    if !prefix.starts_with('/')
        || prefix.ends_with('/')
        || prefix.len() < 2
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b))
    {
        c.add(
            "server.sso_path_prefix",
            "must look like `/_sso`: a leading `/`, no trailing `/`, letters, digits, `_-./`",
        );
    }

    let mut allowed = Vec::new();
    for (i, h) in f.allowed_redirect_hosts.iter().enumerate() {
        let h = h.trim().to_ascii_lowercase();
        if h.is_empty() || h.contains(['/', '@', ' ', '\\']) {
            c.add(
                format!("server.allowed_redirect_hosts[{i}]"),
                "must be a bare host name such as `portal.example.com`",
            );
        } else {
            allowed.push(h);
        }
    }

    let post_logout_redirect = f.post_logout_redirect.unwrap_or_else(|| "/".into());
    let is_path = post_logout_redirect.starts_with('/') && !post_logout_redirect.starts_with("//");
    let is_url = Url::parse(&post_logout_redirect)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if !is_path && !is_url {
        c.add(
            "server.post_logout_redirect",
            "must be a path starting with `/` or an absolute URL",
        );
    }

    let trusted_proxies = f
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, t)| policy::cidr(c, &format!("server.trusted_proxies[{i}]"), t))
        .collect();

    let assertion_key = f.assertion_key.as_ref().and_then(|k| {
        let pem = read_secret(c, "server.assertion_key", k, base_dir, env)?;
        let der = crate::assertion::pem_to_der(pem.expose())
            .filter(|der| crate::assertion::Signer::new(Some(der)).is_ok());
        if der.is_none() {
            c.add(
                "server.assertion_key",
                "must be a PEM `PRIVATE KEY` (PKCS#8) on the P-256 curve, e.g. from `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`",
            );
        }
        der.map(Secret::new)
    });

    let listener_tls = serving::listener_tls(c, f.tls, base_dir);
    if listener_tls.is_some() && !tls {
        c.add(
            "server.public_url",
            "must be https when the listener serves TLS ([server.tls])",
        );
    }
    let admin_listen = serving::admin_listen(c, f.admin_listen.as_deref());
    if admin_listen.is_some_and(|a| a.port() == listen.port() && a.ip() == listen.ip()) {
        c.add("server.admin_listen", "must differ from server.listen");
    }

    ServerSettings {
        admin_listen,
        upgrade_socket: f
            .upgrade_socket
            .unwrap_or_else(|| "/tmp/oneaccess-gateway-upgrade.sock".into()),
        listener_tls,
        limits: serving::limits(c, f.limits),
        upstream: serving::upstream_defaults(c, f.upstream, base_dir),
        trusted_proxies,
        assertion_key,
        listen,
        threads,
        grace_period: Duration::from_secs(f.grace_period_seconds.unwrap_or(5)),
        shutdown_timeout: Duration::from_secs(f.shutdown_timeout_seconds.unwrap_or(5)),
        public_origin,
        tls,
        paths: SsoPaths {
            callback: format!("{prefix}/callback"),
            cas_callback: format!("{prefix}/cas/callback"),
            backchannel_logout: format!("{prefix}/backchannel-logout"),
            logout: format!("{prefix}/logout"),
            logged_out: format!("{prefix}/logged-out"),
            jwks: format!("{prefix}/jwks.json"),
            forward_auth: format!("{prefix}/auth"),
            forward_auth_redirect: format!("{prefix}/verify"),
            start: format!("{prefix}/start"),
            prefix,
        },
        allowed_redirect_hosts: allowed,
        post_logout_redirect,
    }
}

/// `scheme://host[:port]` of a URL with no path, query, user or fragment, and
/// whether it is https.
fn origin_of(text: &str) -> Result<(String, bool), String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        s => return Err(format!("scheme `{s}` is not http or https")),
    };
    if url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}` needs a host and no user name"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{text}` must have no path, query or fragment"));
    }
    Ok((url.origin().ascii_serialization(), tls))
}

fn session_settings(
    c: &mut Collector,
    f: SessionFile,
    tls: bool,
    base_dir: &Path,
    env: EnvLookup,
) -> SessionSettings {
    let base_name = f.cookie_name.unwrap_or_else(|| "oag_session".into());
    if base_name.is_empty()
        || base_name.len() > 48
        || !base_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        c.add(
            "session.cookie_name",
            "must be 1 to 48 letters, digits, `_` and `-`",
        );
    }
    // `__Host-` makes the browser refuse the cookie unless it is Secure, host-only
    // and Path=/, so a sibling subdomain cannot plant or shadow it.
    let host_prefix = if tls { "__Host-" } else { "" };
    let keys = {
        let mut keys = Vec::new();
        if f.keys.is_empty() {
            c.add(
                "session.keys",
                "at least one 32-byte key is needed (e.g. keys = [{ env = \"GATEWAY_COOKIE_KEY\" }]; make one with `openssl rand -base64 32`)",
            );
        }
        for (i, k) in f.keys.iter().enumerate() {
            let path = format!("session.keys[{i}]");
            if let Some(text) = read_secret(c, &path, k, base_dir, env) {
                match decode_key(text.expose().trim()) {
                    Some(key) => keys.push(Secret::new(key)),
                    None => c.add(path, "must be 32 bytes, base64-encoded"),
                }
            }
        }
        keys
    };
    let lifetime = f.lifetime_seconds.unwrap_or(8 * 3600);
    if lifetime < 60 {
        c.add("session.lifetime_seconds", "must be at least 60");
    }
    let pending_ttl = f.pending_login_ttl_seconds.unwrap_or(600);
    if !(30..=3600).contains(&pending_ttl) {
        c.add(
            "session.pending_login_ttl_seconds",
            "must be between 30 and 3600",
        );
    }
    let max_pending = f.max_pending_logins.unwrap_or(3);
    if !(1..=10).contains(&max_pending) {
        c.add("session.max_pending_logins", "must be between 1 and 10");
    }
    let mode = match f.mode.as_deref() {
        None | Some("cookie") => SessionMode::Cookie,
        Some("server") => SessionMode::Server,
        Some(other) => {
            c.add(
                "session.mode",
                format!("`{other}` is not `cookie` or `server`"),
            );
            SessionMode::Cookie
        }
    };
    let idle_timeout = match f.idle_timeout_seconds {
        None | Some(0) => None,
        Some(s) if s < 60 => {
            c.add(
                "session.idle_timeout_seconds",
                "must be 0 (off) or at least 60",
            );
            None
        }
        Some(s) => Some(Duration::from_secs(s)),
    };
    if idle_timeout.is_some_and(|i| i.as_secs() >= lifetime) {
        c.add(
            "session.idle_timeout_seconds",
            "must be shorter than lifetime_seconds",
        );
    }
    let store = match f.store.as_deref() {
        None | Some("embedded" | "memory") => {
            if f.redis_url.is_some() {
                c.add("session.redis_url", "is only used with store = \"redis\"");
            }
            if f.store.as_deref() == Some("memory") {
                StoreSettings::Memory
            } else {
                StoreSettings::Embedded {
                    dir: state_dir(f.state_dir.as_deref(), base_dir, env),
                }
            }
        }
        Some("redis") => {
            let url = f.redis_url.clone().unwrap_or_default();
            match Url::parse(&url) {
                Ok(u) if matches!(u.scheme(), "redis" | "rediss") => {
                    if u.password().is_some() {
                        c.add(
                            "session.redis_url",
                            "must not contain a password: use redis_password = { env = \"REDIS_PASSWORD\" }",
                        );
                    }
                }
                _ => c.add(
                    "session.redis_url",
                    "is required with store = \"redis\", e.g. \"redis://127.0.0.1:6379/0\"",
                ),
            }
            let password = f
                .redis_password
                .as_ref()
                .and_then(|p| read_secret(c, "session.redis_password", p, base_dir, env));
            let prefix = f.redis_key_prefix.clone().unwrap_or_else(|| "oag:".into());
            if prefix.contains([' ', '\n', '\r']) {
                c.add(
                    "session.redis_key_prefix",
                    "must not contain spaces or newlines",
                );
            }
            StoreSettings::Redis {
                url,
                password,
                prefix,
            }
        }
        Some(other) => {
            c.add(
                "session.store",
                format!("`{other}` is not `embedded`, `memory` or `redis`"),
            );
            StoreSettings::Memory
        }
    };
    SessionSettings {
        minimal: f.minimal,
        mode,
        idle_timeout,
        store,
        cookie_name: format!("{host_prefix}{base_name}"),
        family_prefix: format!("{host_prefix}{base_name}_"),
        pending_prefix: format!("{host_prefix}{base_name}_login_"),
        csrf_cookie: format!("{host_prefix}{base_name}_csrf"),
        cas_gateway_cookie: format!("{host_prefix}{base_name}_casgw"),
        secure: tls,
        lifetime: Duration::from_secs(lifetime),
        keys,
        pending_ttl: Duration::from_secs(pending_ttl),
        max_pending,
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(text).ok())
        .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
}

/// Reads a secret from the place its table names, reporting problems under `path`.
fn read_secret(
    c: &mut Collector,
    path: &str,
    s: &SecretFile,
    base_dir: &Path,
    env: EnvLookup,
) -> Option<Secret<String>> {
    let given = [s.env.is_some(), s.file.is_some(), s.value.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given != 1 {
        c.add(path, "give exactly one of `env`, `file` or `value`");
        return None;
    }
    if let Some(var) = &s.env {
        return match env(var) {
            Some(v) if !v.trim().is_empty() => Some(Secret::new(v)),
            _ => {
                c.add(
                    format!("{path}.env"),
                    format!("environment variable `{var}` is not set or empty"),
                );
                None
            }
        };
    }
    if let Some(file) = &s.file {
        let p = base_dir.join(file);
        return match std::fs::read_to_string(&p) {
            Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim_end().to_string())),
            Ok(_) => {
                c.add(
                    format!("{path}.file"),
                    format!("`{}` is empty", p.display()),
                );
                None
            }
            Err(e) => {
                c.add(
                    format!("{path}.file"),
                    format!("cannot read `{}`: {e}", p.display()),
                );
                None
            }
        };
    }
    let value = s.value.clone().unwrap_or_default();
    if !s.dev {
        c.add(
            format!("{path}.value"),
            "a secret written in the TOML needs `dev = true`; use `env` or `file` in production",
        );
        return None;
    }
    Some(Secret::new(value))
}

/// OneAccess's userinfo shape (`id`, `userName`, `name`, `email`, `mobile`; no
/// `sub`) mapped to the claim names identity headers use.
pub const DEFAULT_USERINFO_CLAIMS: [(&str, &str); 5] = [
    ("id", "sub"),
    ("userName", "preferred_username"),
    ("name", "name"),
    ("email", "email"),
    ("mobile", "phone_number"),
];

/// A client id with its secret and token-endpoint method, from `provider` or a
/// route. `None` when no `client_id` is given; a half-given pair is a problem.
fn client_credentials(
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

/// The embedded store's directory: `state_dir` (relative to the config file),
/// else systemd's `$STATE_DIRECTORY` (its first entry), else `state` in the
/// working directory.
fn state_dir(given: Option<&str>, base_dir: &Path, env: EnvLookup) -> std::path::PathBuf {
    if let Some(d) = given {
        return base_dir.join(d);
    }
    match env("STATE_DIRECTORY") {
        Some(dirs) if !dirs.is_empty() => {
            std::path::PathBuf::from(dirs.split(':').next().unwrap_or(&dirs))
        }
        _ => std::path::PathBuf::from("state"),
    }
}

fn provider_settings(
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

fn route_specs(
    c: &mut Collector,
    files: Vec<(usize, RouteFile)>,
    server: &ServerSettings,
    provider: Option<&ProviderSettings>,
    base_dir: &Path,
    env: EnvLookup,
) -> Vec<RouteSpec> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, f) in files {
        let at = |field: &str| format!("route[{i}].{field}");

        let host = f.host.as_ref().map(|h| h.trim().to_ascii_lowercase());
        if let Some(h) = &host {
            if h.is_empty() || h.contains(['/', ':', '@', ' ', '\\']) {
                c.add(
                    at("host"),
                    "must be a bare host name, without scheme or port",
                );
            }
        }
        let path = f.path.clone().unwrap_or_else(|| "/".into());
        if !crate::front_door::path::is_canonical_prefix(&path) {
            c.add(at("path"), crate::front_door::path::CANONICAL_PREFIX_RULE);
        }
        if path.starts_with(&server.paths.prefix) {
            c.add(
                at("path"),
                format!("overlaps the gateway's own `{}`", server.paths.prefix),
            );
        }
        // Compared ignoring case: an app may read `/Admin` as `/admin`, and the front
        // door refuses what two routes could both claim.
        if !seen.insert((
            host.clone(),
            path.trim_end_matches('/').to_ascii_lowercase(),
        )) {
            c.add(
                at("path"),
                "another route already has this host and path (paths are compared ignoring case)",
            );
        }

        // No upstream: the route exists for forward auth only.
        let upstream = f.upstream.as_ref().and_then(|u| {
            match serving::resolve_upstream(u, f.upstream_tls_verify, f.read_timeout_seconds) {
                Ok(up) => Some(up),
                Err(e) => {
                    c.add(at("upstream"), e);
                    None
                }
            }
        });

        let protocol = match f.protocol.as_deref() {
            Some("oidc") => Protocol::Oidc,
            Some("oauth2") => Protocol::OAuth2,
            Some("cas") => Protocol::Cas,
            Some("public") => Protocol::Public,
            Some(p) => {
                c.add(
                    at("protocol"),
                    format!("`{p}` is not one of oidc, oauth2, cas, public"),
                );
                Protocol::Public
            }
            None => {
                c.add(
                    at("protocol"),
                    "is required: `oidc`, `oauth2`, `cas` or `public`",
                );
                Protocol::Public
            }
        };

        let own_client = client_credentials(
            c,
            &format!("route[{i}]"),
            f.client_id.as_deref(),
            f.client_secret.as_ref(),
            f.token_endpoint_auth.as_deref(),
            base_dir,
            env,
        );
        let client = match protocol {
            Protocol::Oidc | Protocol::OAuth2 => {
                let client = own_client.or_else(|| provider.and_then(|p| p.client.clone()));
                if client.is_none() && provider.is_some() {
                    c.add(
                        at("client_id"),
                        "an oidc or oauth2 route needs a client: client_id and client_secret here or in [provider]",
                    );
                }
                client
            }
            Protocol::Cas | Protocol::Public => {
                if own_client.is_some() {
                    c.add(at("client_id"), "only oidc and oauth2 routes use a client");
                }
                None
            }
        };
        let path_params = match f.path_params.as_deref() {
            None | Some("allow") => PathParams::Allow,
            Some("refuse") => PathParams::Refuse,
            Some(other) => {
                c.add(
                    at("path_params"),
                    format!("`{other}` is not allow or refuse"),
                );
                PathParams::Allow
            }
        };
        let cas = match (protocol, f.cas.as_ref()) {
            (Protocol::Cas, cf) => Some(cas_settings(c, i, cf)),
            (_, Some(_)) => {
                c.add(at("cas"), "only cas routes take cas options");
                None
            }
            (_, None) => None,
        };
        let refresh_failure = match f.on_refresh_failure.as_deref() {
            None | Some("reauthenticate") => RefreshFailure::Reauthenticate,
            Some("logout") => RefreshFailure::Logout,
            Some("serve") => RefreshFailure::Serve,
            Some(other) => {
                c.add(
                    at("on_refresh_failure"),
                    format!("`{other}` is not logout, reauthenticate or serve"),
                );
                RefreshFailure::Reauthenticate
            }
        };
        let management = provider.is_some_and(|p| p.management.is_some());
        let policy = f
            .policy
            .as_ref()
            .map(|p| policy::policy(c, i, p, protocol, management));
        let client_id = client.as_ref().map_or("", |cl| cl.client_id.as_str());
        let realm = match protocol {
            Protocol::Oidc | Protocol::OAuth2 => format!("{}:{client_id}", protocol.as_str()),
            Protocol::Cas | Protocol::Public => protocol.as_str().to_string(),
        };

        let headers = headers::header_rules(c, i, f.headers.as_ref());

        let origin = match &host {
            None => server.public_origin.clone(),
            Some(h) => match Url::parse(&server.public_origin) {
                Ok(mut u) => {
                    if u.set_host(Some(h)).is_err() {
                        c.add(at("host"), "is not a valid host name");
                    }
                    u.origin().ascii_serialization()
                }
                Err(_) => server.public_origin.clone(),
            },
        };

        let tokens = tokens::route_tokens(c, i, &f, protocol, client.as_ref());
        if f.upstream.is_none() || upstream.is_some() {
            out.push(RouteSpec {
                index: i,
                host,
                path,
                upstream,
                protocol,
                headers,
                origin,
                client,
                cas,
                realm,
                refresh_failure,
                policy,
                pass_token: tokens.pass_token,
                assertion: f.assertion,
                bearer_audiences: tokens.bearer_audiences,
                path_params,
            });
        }
    }
    out
}

fn cas_settings(c: &mut Collector, i: usize, f: Option<&CasFile>) -> CasSettings {
    let version = match f.and_then(|f| f.version.as_deref()) {
        None | Some("3.0" | "3") => CasVersion::V3,
        Some("2.0" | "2") => CasVersion::V2,
        Some("1.0" | "1") => CasVersion::V1,
        Some(v) => {
            c.add(
                format!("route[{i}].cas.version"),
                format!("`{v}` is not 1.0, 2.0 or 3.0"),
            );
            CasVersion::V3
        }
    };
    let format = match f.and_then(|f| f.format.as_deref()) {
        // OneAccess answers JSON unless told otherwise (the CAS spec says XML).
        None | Some("json" | "JSON") => CasFormat::Json,
        Some("xml" | "XML") => CasFormat::Xml,
        Some(v) => {
            c.add(
                format!("route[{i}].cas.format"),
                format!("`{v}` is not json or xml"),
            );
            CasFormat::Json
        }
    };
    let renew = f.is_some_and(|f| f.renew);
    let gateway = f.is_some_and(|f| f.gateway);
    if renew && gateway {
        c.add(
            format!("route[{i}].cas"),
            "renew and gateway cannot both be set (CAS protocol 2.1)",
        );
    }
    CasSettings {
        version,
        format,
        renew,
        gateway,
    }
}

mod events;
mod headers;
mod policy;
mod serving;
#[cfg(test)]
mod tests;
mod tokens;
