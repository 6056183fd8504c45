//! Host + longest path prefix -> `Arc<Route>`. Built once from the config, with the
//! upstream peers already made, so matching a request allocates nothing.

use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, WrappedX509};
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, RouteSpec, Upstream, UpstreamDefaults};
use crate::metrics::{Metrics, RouteCounters};

/// A route ready to serve: its spec and a pre-built upstream peer.
#[derive(Debug)]
pub struct Route {
    pub spec: RouteSpec,
    /// `None` for a route judged only through forward auth.
    pub peer: Option<HttpPeer>,
    /// `route[N]`, for logs.
    pub label: String,
    /// Its request counters (labelled `host/path`).
    pub counters: Arc<RouteCounters>,
}

#[derive(Debug, Default)]
pub struct Router {
    /// Host-specific routes, longest path first.
    by_host: HashMap<String, Vec<Arc<Route>>>,
    /// Routes without a host, longest path first.
    any_host: Vec<Arc<Route>>,
}

impl Router {
    pub fn new(config: &Config, metrics: &Metrics) -> Router {
        let mut r = Router::default();
        for spec in &config.routes {
            let peer = spec
                .upstream
                .as_ref()
                .map(|u| upstream_peer(u, &config.server.upstream));
            let name = format!("{}{}", spec.host.as_deref().unwrap_or(""), spec.path);
            let route = Arc::new(Route {
                label: format!("route[{}]", spec.index),
                counters: metrics.route(&name),
                spec: spec.clone(),
                peer,
            });
            match &spec.host {
                Some(h) => r.by_host.entry(h.clone()).or_default().push(route),
                None => r.any_host.push(route),
            }
        }
        let by_len = |a: &Arc<Route>, b: &Arc<Route>| b.spec.path.len().cmp(&a.spec.path.len());
        for list in r.by_host.values_mut() {
            list.sort_by(by_len);
        }
        r.any_host.sort_by(by_len);
        r
    }

    /// The route for a request. `host` is the Host header (port and case are
    /// ignored); host-specific routes win over host-less ones.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let host_routes = host
            .map(host_only)
            .and_then(|h| self.lookup_host(h))
            .and_then(|list| list.iter().find(|r| prefix_matches(&r.spec.path, path)));
        host_routes.or_else(|| {
            self.any_host
                .iter()
                .find(|r| prefix_matches(&r.spec.path, path))
        })
    }

    /// The origin users reach `host` at, from the config (never from the header
    /// itself): the first route for that host, else a host-less route's.
    pub fn origin_for_host(&self, host: Option<&str>) -> Option<&str> {
        host.map(host_only)
            .and_then(|h| self.lookup_host(h))
            .and_then(|l| l.first())
            .or_else(|| self.any_host.first())
            .map(|r| r.spec.origin.as_str())
    }

    fn lookup_host(&self, host: &str) -> Option<&Vec<Arc<Route>>> {
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_host.get(&host.to_ascii_lowercase())
        } else {
            self.by_host.get(host)
        }
    }
}

/// The peer of an upstream, with its timeouts and TLS settings. A `SocketAddr`:
/// no DNS here or later (`HttpPeer::new("host:port")` resolves on every call and
/// panics when that fails).
fn upstream_peer(u: &Upstream, defaults: &UpstreamDefaults) -> HttpPeer {
    let (tls, sni) = match &u.tls {
        Some(t) => (true, t.server_name.clone()),
        None => (false, String::new()),
    };
    let mut peer = HttpPeer::new(u.addr, tls, sni);
    let o = &mut peer.options;
    o.connection_timeout = Some(defaults.connect_timeout);
    o.read_timeout = Some(u.read_timeout.unwrap_or(defaults.read_timeout));
    o.write_timeout = Some(defaults.read_timeout);
    o.idle_timeout = Some(defaults.idle_timeout);
    if let Some(t) = &u.tls {
        o.verify_cert = t.verify;
        o.verify_hostname = t.verify;
        if let Some(ca) = &defaults.ca {
            let certs: Vec<WrappedX509> = ca
                .iter()
                .map(|der| WrappedX509::new(der.clone(), parse_x509))
                .collect();
            o.ca = Some(Arc::from(certs));
        }
    }
    peer
}

/// The host part of a Host header: `Example.com:8080` -> `Example.com`,
/// `[::1]:80` -> `[::1]`.
pub fn host_only(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Prefix match on segment boundaries: `/app` matches `/app`, `/app/` and `/app/x`,
/// not `/application`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    path.starts_with(prefix) && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
}

/// The path routing and policy match on, so that they agree with what an upstream
/// may make of it: percent-escapes decoded once (`%61dmin` is `admin`, `%2F` a
/// `/`), `\` taken as `/`, and runs of `/` collapsed (`//admin` is `/admin`).
/// Borrowed when there is nothing to change (the common case). The request is
/// forwarded as it came; dot segments were refused before.
pub fn normalize_for_matching(path: &str) -> std::borrow::Cow<'_, str> {
    let b = path.as_bytes();
    let plain = !b.contains(&b'%') && !b.contains(&b'\\') && !b.windows(2).any(|w| w == b"//");
    if plain {
        return std::borrow::Cow::Borrowed(path);
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(b).collect();
    let mut out = String::with_capacity(decoded.len());
    for c in String::from_utf8_lossy(&decoded).chars() {
        let c = if c == '\\' { '/' } else { c };
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    std::borrow::Cow::Owned(out)
}

/// Whether a request path could mean something else to the upstream than to the
/// router: a `.` or `..` segment, raw or percent-encoded (`%2e`), split by `/`,
/// `\` or an encoded `%2f`/`%5c`. Browsers never send these (they resolve dot
/// segments first), so such a request is refused rather than guessed at.
pub fn is_ambiguous_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    if !bytes.contains(&b'.') && !bytes.contains(&b'%') && !bytes.contains(&b'\\') {
        return false;
    }
    if !bytes.contains(&b'%') {
        return has_dot_segment(bytes);
    }
    // Decode percent-escapes repeatedly (double encoding: %252e -> %2e -> .).
    let mut cur = bytes.to_vec();
    for _ in 0..3 {
        let next: Vec<u8> = percent_encoding::percent_decode(&cur).collect();
        if next == cur {
            break;
        }
        cur = next;
    }
    has_dot_segment(&cur) || cur.iter().any(|b| *b < 0x20)
}

fn has_dot_segment(bytes: &[u8]) -> bool {
    bytes
        .split(|b| *b == b'/' || *b == b'\\')
        .any(|seg| seg == b"." || seg == b"..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_prefixes() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/app", "/app"));
        assert!(prefix_matches("/app", "/app/x"));
        assert!(prefix_matches("/app/", "/app/x"));
        assert!(!prefix_matches("/app", "/application"));
        assert!(!prefix_matches("/app", "/ap"));
    }

    #[test]
    fn host_ports_are_ignored() {
        assert_eq!(host_only("example.com:8080"), "example.com");
        assert_eq!(host_only("example.com"), "example.com");
        assert_eq!(host_only("[::1]:8080"), "[::1]");
    }

    #[test]
    fn matching_paths_are_normalized() {
        for (raw, want) in [
            ("/plain/path", "/plain/path"),
            ("/%61dmin", "/admin"),
            ("//admin///x", "/admin/x"),
            ("/admin%2Fsecret", "/admin/secret"),
            ("/admin%2fsecret", "/admin/secret"),
            ("/admin\\secret", "/admin/secret"),
            ("/a%20b", "/a b"),
        ] {
            assert_eq!(normalize_for_matching(raw), want, "{raw}");
        }
        assert!(matches!(
            normalize_for_matching("/plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn ambiguous_paths_are_caught() {
        for p in [
            "/public/../admin",
            "/public/./x",
            "/public/%2e%2e/admin",
            "/public/%2E%2e/admin",
            "/public%2f..%2fadmin",
            "/public\\..\\admin",
            "/public/%252e%252e/admin",
            "/x/%00",
            "/..",
        ] {
            assert!(is_ambiguous_path(p), "{p}");
        }
        for p in [
            "/",
            "/app/file.txt",
            "/a..b/c",
            "/.well-known/x",
            "/100%25",
            "/a%20b",
        ] {
            assert!(!is_ambiguous_path(p), "{p}");
        }
    }
}
