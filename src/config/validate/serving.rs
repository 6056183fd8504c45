//! Validation of how the gateway serves: the listener's TLS, the admin listener,
//! limits, upstream addresses, timeouts and CA, and the log settings.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use url::Url;

use super::Collector;
use crate::config::file::{LimitsFile, LogFile, TlsFile, UpstreamDefaultsFile};
use crate::config::{
    Limits, ListenerTls, LogFormat, LogSettings, Upstream, UpstreamDefaults, UpstreamTls,
};

/// Pingora reads request headers into a buffer of this size at most.
const MAX_HEADER_LIMIT: usize = 1 << 20;

pub(super) fn admin_listen(c: &mut Collector, text: Option<&str>) -> Option<SocketAddr> {
    let text = text?;
    match text.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => Some(a),
        _ => {
            c.add(
                "server.admin_listen",
                format!("`{text}` is not a host:port to listen on"),
            );
            None
        }
    }
}

pub(super) fn listener_tls(
    c: &mut Collector,
    f: Option<TlsFile>,
    base_dir: &Path,
) -> Option<ListenerTls> {
    let f = f?;
    let (Some(cert), Some(key)) = (&f.cert_file, &f.key_file) else {
        if f.cert_file.is_none() {
            c.add("server.tls.cert_file", "is required with [server.tls]");
        }
        if f.key_file.is_none() {
            c.add("server.tls.key_file", "is required with [server.tls]");
        }
        return None;
    };
    let (cert_file, key_file) = (base_dir.join(cert), base_dir.join(key));
    match load_certified_key(&cert_file, &key_file) {
        Ok(certified) => Some(ListenerTls {
            certified: Arc::new(certified),
            http2: f.http2.unwrap_or(true),
        }),
        Err((field, e)) => {
            c.add(format!("server.tls.{field}"), e);
            None
        }
    }
}

/// Reads a PEM chain and key and checks that they go together. The error names
/// the field at fault.
fn load_certified_key(
    cert_file: &Path,
    key_file: &Path,
) -> Result<rustls::sign::CertifiedKey, (&'static str, String)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            (
                "cert_file",
                format!("cannot read `{}`: {e}", cert_file.display()),
            )
        })?;
    if chain.is_empty() {
        return Err((
            "cert_file",
            format!("`{}` holds no PEM CERTIFICATE", cert_file.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        (
            "key_file",
            format!(
                "cannot read a PEM private key from `{}`: {e}",
                key_file.display()
            ),
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = rustls::sign::CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| ("key_file", format!("does not fit the certificate: {e}")))?;
    Ok(certified)
}

pub(super) fn limits(c: &mut Collector, f: Option<LimitsFile>) -> Limits {
    let f = f.unwrap_or_default();
    let headers = f.max_request_header_bytes.unwrap_or(32 * 1024);
    if !(1024..=MAX_HEADER_LIMIT).contains(&headers) {
        c.add(
            "server.limits.max_request_header_bytes",
            format!("must be between 1024 and {MAX_HEADER_LIMIT}"),
        );
    }
    let body = f.max_endpoint_body_bytes.unwrap_or(64 * 1024);
    if !(1024..=16 << 20).contains(&body) {
        c.add(
            "server.limits.max_endpoint_body_bytes",
            "must be between 1024 and 16777216",
        );
    }
    let connections = f.max_connections.unwrap_or(10_000);
    if connections == 0 {
        c.add("server.limits.max_connections", "must be at least 1");
    }
    Limits {
        max_request_header_bytes: headers,
        max_endpoint_body_bytes: body,
        max_connections: connections,
    }
}

/// The most idle upstream connections a worker may keep: a bound on a typo.
/// Idle connections exist only after that many were in use at once.
const MAX_IDLE_CONNECTIONS: usize = 65_536;

pub(super) fn upstream_defaults(
    c: &mut Collector,
    f: Option<UpstreamDefaultsFile>,
    base_dir: &Path,
) -> UpstreamDefaults {
    let f = f.unwrap_or_default();
    let seconds = |c: &mut Collector, field: &str, v: Option<u64>, default: u64| {
        let v = v.unwrap_or(default);
        if v == 0 || v > 86_400 {
            c.add(
                format!("server.upstream.{field}"),
                "must be between 1 and 86400",
            );
        }
        Duration::from_secs(v)
    };
    let connect_timeout = seconds(c, "connect_timeout_seconds", f.connect_timeout_seconds, 5);
    let read_timeout = seconds(c, "read_timeout_seconds", f.read_timeout_seconds, 60);
    let idle_timeout = seconds(c, "idle_timeout_seconds", f.idle_timeout_seconds, 60);
    // Enough for every request in flight at a busy moment: with Pingora's
    // default (128 a thread) a pinned worker at 1,000 clients closed most
    // connections as their requests ended and connected anew ~1,500 times a
    // second (README, "How fast").
    let max_idle_connections = f.max_idle_connections.unwrap_or(1024);
    if !(1..=MAX_IDLE_CONNECTIONS).contains(&max_idle_connections) {
        c.add(
            "server.upstream.max_idle_connections",
            format!("must be between 1 and {MAX_IDLE_CONNECTIONS}"),
        );
    }
    let websocket_idle_timeout = seconds(
        c,
        "websocket_idle_timeout_seconds",
        f.websocket_idle_timeout_seconds,
        3600,
    );
    let ca = f
        .ca_file
        .as_ref()
        .and_then(|file| match load_ca(&base_dir.join(file)) {
            Ok(certs) => Some(certs),
            Err(e) => {
                c.add("server.upstream.ca_file", e);
                None
            }
        });
    UpstreamDefaults {
        connect_timeout,
        read_timeout,
        idle_timeout,
        max_idle_connections,
        websocket_idle_timeout,
        ca,
    }
}

/// CA certificates from a PEM file, each checked the way the TLS client will use
/// it (a bad one would otherwise fail every connection, or panic in Pingora).
pub(super) fn load_ca(path: &Path) -> Result<Arc<[Vec<u8>]>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("`{}` holds no PEM CERTIFICATE", path.display()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|e| format!("certificate {i} of `{}`: {e}", path.display()))?;
    }
    Ok(certs.into_iter().map(|c| c.to_vec()).collect())
}

/// An upstream URL, resolved now: `http://host:port` or `https://host:port`.
pub(super) fn resolve_upstream(
    text: &str,
    tls_verify: Option<bool>,
    read_timeout: Option<u64>,
) -> Result<Upstream, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        s => return Err(format!("scheme `{s}` is not http or https")),
    };
    if url.path() != "/" || url.query().is_some() {
        return Err("must be scheme://host:port with no path or query".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("`{text}` has no host"))?;
    let port = url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{host}` resolves to no address"))?;
    if tls_verify.is_some() && !https {
        return Err("`upstream_tls_verify` is for https upstreams".into());
    }
    if read_timeout.is_some_and(|s| s == 0 || s > 86_400) {
        return Err("`read_timeout_seconds` must be between 1 and 86400".into());
    }
    Ok(Upstream {
        addr,
        url: text.to_string(),
        // The host, IP or name, is the SNI: Pingora skips every check when the
        // SNI is empty, so it never is.
        tls: https.then(|| UpstreamTls {
            server_name: host.to_string(),
            verify: tls_verify.unwrap_or(true),
        }),
        read_timeout: read_timeout.map(Duration::from_secs),
    })
}

pub(super) fn log_settings(c: &mut Collector, f: Option<LogFile>) -> LogSettings {
    let f = f.unwrap_or_default();
    let format = match f.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            c.add("log.format", format!("`{other}` is not `text` or `json`"));
            LogFormat::Text
        }
    };
    let level = f.level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        c.add(
            "log.level",
            format!("`{level}` is not a filter such as `info` or `info,access=warn`"),
        );
    }
    LogSettings {
        format,
        level,
        access_log: f.access_log.unwrap_or(true),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;

    const BASE: &str = r#"
[session]
keys = [{ value = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=", dev = true }]
[[route]]
upstream = "http://127.0.0.1:9"
protocol = "public"
"#;

    #[test]
    fn every_serving_problem_is_listed_with_its_path() {
        let text = format!(
            r#"
[server]
public_url = "http://localhost:8080"
admin_listen = "nowhere"
[server.tls]
cert_file = "/nonexistent/cert.pem"
[server.limits]
max_request_header_bytes = 10
max_connections = 0
[server.upstream]
read_timeout_seconds = 0
max_idle_connections = 0
ca_file = "/nonexistent/ca.pem"
[log]
format = "xml"
level = "info,[="
{BASE}
[[route]]
path = "/x"
upstream = "http://127.0.0.1:9"
upstream_tls_verify = false
protocol = "public"
"#
        );
        let err = parse(&text, Path::new("."), &|_| None)
            .expect_err("bad config")
            .to_string();
        for path in [
            "server.admin_listen:",
            "server.tls.key_file: is required",
            "server.limits.max_request_header_bytes:",
            "server.limits.max_connections:",
            "server.upstream.read_timeout_seconds:",
            "server.upstream.max_idle_connections: must be between 1 and 65536",
            "server.upstream.ca_file: cannot read",
            "log.format:",
            "log.level:",
            "route[1].upstream: `upstream_tls_verify` is for https upstreams",
        ] {
            assert!(err.contains(path), "missing `{path}` in:\n{err}");
        }
    }

    #[test]
    fn a_tls_listener_refuses_a_file_that_is_not_a_certificate() {
        let dir = std::env::temp_dir().join(format!("oag-tls-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("cert.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let text = format!(
            "[server]\npublic_url = \"http://localhost:8080\"\n[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n{BASE}",
            not_pem.display(),
            not_pem.display()
        );
        let err = parse(&text, Path::new("."), &|_| None)
            .expect_err("bad tls")
            .to_string();
        assert!(err.contains("server.tls.cert_file:"), "{err}");
    }

    #[test]
    fn good_serving_settings_come_through() {
        let text = format!(
            "[server]\nadmin_listen = \"127.0.0.1:9090\"\n[server.upstream]\nread_timeout_seconds = 5\n[log]\nformat = \"json\"\naccess_log = false\n{BASE}"
        );
        let c = parse(&text, Path::new("."), &|_| None).expect("good config");
        assert_eq!(c.server.admin_listen.map(|a| a.port()), Some(9090));
        assert_eq!(c.server.upstream.read_timeout.as_secs(), 5);
        assert_eq!(c.server.limits.max_connections, 10_000);
        assert_eq!(c.log.format, crate::config::LogFormat::Json);
        assert!(!c.log.access_log);
        assert!(c.server.listener_tls.is_none());
    }
}
