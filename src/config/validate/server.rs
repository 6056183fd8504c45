//! `[server]`: where the gateway listens and how it is reached, its SSO paths, where
//! it may send the browser, which proxies it trusts, and its assertion key (the
//! serving details, TLS, limits and upstream defaults, are checked in `serving`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use url::Url;

use super::{policy, read_secret, serving, Collector, EnvLookup};
use crate::config::file::ServerFile;
use crate::config::runtime::{ServerSettings, SsoPaths};
use crate::secret::Secret;

pub(super) fn server_settings(
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
