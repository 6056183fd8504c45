//! `store = "redis"`: one server (`redis_url`), Sentinel (`redis_sentinel`) or
//! Cluster (`redis_cluster`), with the ACL user, password and TLS that all three
//! share. Every problem is reported with its TOML path.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use url::Url;

use super::{read_secret, Collector, EnvLookup};
use crate::config::file::{RedisTlsFile, SessionFile};
use crate::config::runtime::{RedisSettings, RedisTarget, RedisTls};
use crate::secret::Secret;

/// The Redis settings of a `[session]` with `store = "redis"`.
pub(super) fn redis_settings(
    c: &mut Collector,
    f: &SessionFile,
    base_dir: &Path,
    env: EnvLookup,
) -> RedisSettings {
    let given: Vec<&str> = [
        ("redis_url", f.redis_url.is_some()),
        ("redis_sentinel", f.redis_sentinel.is_some()),
        ("redis_cluster", f.redis_cluster.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| *name)
    .collect();
    if given.len() > 1 {
        for name in &given[1..] {
            c.add(
                format!("session.{name}"),
                format!(
                    "give one of redis_url, redis_sentinel or redis_cluster, not both `{}` and `{name}`",
                    given[0]
                ),
            );
        }
    }
    let username = f.redis_username.clone();
    if username
        .as_deref()
        .is_some_and(|u| u.is_empty() || u.contains(char::is_whitespace))
    {
        c.add(
            "session.redis_username",
            "must be a non-empty name without spaces",
        );
    }
    let tls = f.redis_tls.as_ref().map(|t| tls_settings(c, t, base_dir));
    // Each one given is checked, so that every problem is listed; the first is
    // used (and naming two is itself a problem).
    let sentinel = f.redis_sentinel.as_ref().map(|s| {
        let path = "session.redis_sentinel";
        let master = s.master.clone().unwrap_or_default();
        if master.is_empty() || master.contains(char::is_whitespace) {
            c.add(
                format!("{path}.master"),
                "is required: the name the sentinels monitor the master by (e.g. \"mymaster\")",
            );
        }
        let nodes = nodes(c, &format!("{path}.nodes"), &s.nodes, "sentinel");
        let db = s.db.unwrap_or(0);
        if db < 0 {
            c.add(format!("{path}.db"), "must be 0 or more");
        }
        if s.username.as_deref().is_some_and(|u| u.is_empty()) {
            c.add(format!("{path}.username"), "must not be empty");
        }
        let password = s
            .password
            .as_ref()
            .and_then(|p| read_secret(c, &format!("{path}.password"), p, base_dir, env));
        RedisTarget::Sentinel {
            master,
            nodes,
            db,
            username: s.username.clone(),
            password,
        }
    });
    let cluster = f.redis_cluster.as_ref().map(|list| RedisTarget::Cluster {
        nodes: nodes(c, "session.redis_cluster", list, "cluster node"),
    });
    let single = (f.redis_url.is_some() || given.is_empty()).then(|| {
        let url = f.redis_url.clone().unwrap_or_default();
        match Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "redis" | "rediss") => {
                if u.password().is_some() {
                    c.add(
                        "session.redis_url",
                        "must not contain a password: use redis_password = { env = \"REDIS_PASSWORD\" }",
                    );
                }
                if !u.username().is_empty() && username.is_some() {
                    c.add(
                        "session.redis_url",
                        "names a user, and so does redis_username: give it once",
                    );
                }
                if tls.is_some() && u.scheme() != "rediss" {
                    c.add(
                        "session.redis_tls",
                        "needs a `rediss://` redis_url (TLS); `redis://` is plain TCP",
                    );
                }
            }
            _ => c.add(
                "session.redis_url",
                "is required with store = \"redis\", e.g. \"redis://127.0.0.1:6379/0\" \
                 (or redis_sentinel, or redis_cluster)",
            ),
        }
        RedisTarget::Single { url }
    });
    let target = single
        .or(sentinel)
        .or(cluster)
        .unwrap_or(RedisTarget::Single { url: String::new() });
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
    if matches!(target, RedisTarget::Cluster { .. }) && prefix.contains(['{', '}']) {
        c.add(
            "session.redis_key_prefix",
            "must not contain `{` or `}` with redis_cluster: a hash tag would put every key in one slot, on one node",
        );
    }
    RedisSettings {
        target,
        username,
        password,
        tls,
        prefix,
    }
}

/// The Redis settings that only `store = "redis"` reads, named when given to
/// another store.
pub(super) fn unused_redis_settings(c: &mut Collector, f: &SessionFile) {
    for (name, set) in [
        ("redis_url", f.redis_url.is_some()),
        ("redis_sentinel", f.redis_sentinel.is_some()),
        ("redis_cluster", f.redis_cluster.is_some()),
        ("redis_username", f.redis_username.is_some()),
        ("redis_tls", f.redis_tls.is_some()),
    ] {
        if set {
            c.add(
                format!("session.{name}"),
                "is only used with store = \"redis\"",
            );
        }
    }
}

/// A list of `host:port` nodes, at least one.
fn nodes(c: &mut Collector, path: &str, list: &[String], what: &str) -> Vec<(String, u16)> {
    if list.is_empty() {
        c.add(path, format!("needs at least one {what}, as \"host:port\""));
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let node = host_port(text);
            if node.is_none() {
                c.add(
                    format!("{path}[{i}]"),
                    format!("`{text}` is not host:port (e.g. \"10.0.0.5:6379\" or \"[::1]:6379\")"),
                );
            }
            node
        })
        .collect()
}

/// `host:port`, `[v6]:port`: the host (without brackets) and a non-zero port.
fn host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .filter(|h| h.parse::<std::net::Ipv6Addr>().is_ok())?,
        None => host,
    };
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':');
    if host.is_empty() || !host.bytes().all(plain) || (host.contains(':') && !text.starts_with('['))
    {
        return None;
    }
    Some((host.to_string(), port))
}

/// The CA and client certificate files, read and parsed now: a bad file is a
/// start-up error, not a failure of every connection later.
fn tls_settings(c: &mut Collector, f: &RedisTlsFile, base_dir: &Path) -> RedisTls {
    let path = "session.redis_tls";
    let ca = f.ca_file.as_ref().and_then(|file| {
        let p = base_dir.join(file);
        match super::serving::load_ca(&p).and_then(|_| {
            std::fs::read(&p).map_err(|e| format!("cannot read `{}`: {e}", p.display()))
        }) {
            Ok(pem) => Some(pem),
            Err(e) => {
                c.add(format!("{path}.ca_file"), e);
                None
            }
        }
    });
    let client = match (&f.cert_file, &f.key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let cert_path = base_dir.join(cert);
            let key_path = base_dir.join(key);
            let cert = match CertificateDer::pem_file_iter(&cert_path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            {
                Ok(certs) if !certs.is_empty() => std::fs::read(&cert_path).ok(),
                Ok(_) => {
                    c.add(
                        format!("{path}.cert_file"),
                        format!("`{}` holds no PEM CERTIFICATE", cert_path.display()),
                    );
                    None
                }
                Err(e) => {
                    c.add(
                        format!("{path}.cert_file"),
                        format!("cannot read `{}`: {e}", cert_path.display()),
                    );
                    None
                }
            };
            let key = match PrivateKeyDer::from_pem_file(&key_path) {
                Ok(_) => std::fs::read(&key_path).ok(),
                Err(e) => {
                    c.add(
                        format!("{path}.key_file"),
                        format!(
                            "cannot read a PEM private key from `{}`: {e}",
                            key_path.display()
                        ),
                    );
                    None
                }
            };
            cert.zip(key).map(|(cert, key)| (cert, Secret::new(key)))
        }
        (Some(_), None) => {
            c.add(format!("{path}.key_file"), "is required with cert_file");
            None
        }
        (None, Some(_)) => {
            c.add(format!("{path}.cert_file"), "is required with key_file");
            None
        }
    };
    RedisTls { ca, client }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn nodes_are_host_and_port() {
        assert_eq!(
            host_port("redis-1.internal:6379"),
            Some(("redis-1.internal".into(), 6379))
        );
        assert_eq!(
            host_port("10.0.0.5:26379"),
            Some(("10.0.0.5".into(), 26379))
        );
        assert_eq!(host_port("[::1]:7000"), Some(("::1".into(), 7000)));
        for bad in [
            "redis-1",
            "redis-1:",
            ":6379",
            "host:0",
            "host:70000",
            "redis://host:6379",
            "::1:6379",
            "[::1:6379",
            "[nothost]:1",
            "a b:1",
        ] {
            assert_eq!(host_port(bad), None, "{bad}");
        }
    }
}
