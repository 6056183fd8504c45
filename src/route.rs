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
    /// Some route's path has an upper-case letter: a lookup that ignores case
    /// cannot be skipped for a lower-case request path.
    upper_case_paths: bool,
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
        r.upper_case_paths = config
            .routes
            .iter()
            .any(|s| s.path.bytes().any(|b| b.is_ascii_uppercase()));
        r
    }

    /// The route for a host and path, both canonical (`front_door`): the host in
    /// lower case without port, the path decoded. Host-specific routes win over
    /// host-less ones; the longest matching prefix wins. `ignore_case` matches
    /// the path's ASCII letters regardless of case.
    pub fn find(&self, host: Option<&str>, path: &str, ignore_case: bool) -> Option<&Arc<Route>> {
        let matches = |r: &&Arc<Route>| {
            if ignore_case {
                prefix_matches_ignore_case(&r.spec.path, path)
            } else {
                prefix_matches(&r.spec.path, path)
            }
        };
        let host_routes = host
            .and_then(|h| self.by_host.get(h))
            .and_then(|list| list.iter().find(matches));
        host_routes.or_else(|| self.any_host.iter().find(matches))
    }

    /// Whether a lookup of `path` that ignores case could differ from one that
    /// does not.
    pub fn case_matters(&self, path: &str) -> bool {
        self.upper_case_paths || path.bytes().any(|b| b.is_ascii_uppercase())
    }

    /// The origin users reach `host` (canonical, as for `find`) at, from the
    /// config (never from the header itself): the first route for that host,
    /// else a host-less route's.
    pub fn origin_for_host(&self, host: Option<&str>) -> Option<&str> {
        host.and_then(|h| self.by_host.get(h))
            .and_then(|l| l.first())
            .or_else(|| self.any_host.first())
            .map(|r| r.spec.origin.as_str())
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

/// Prefix match on segment boundaries: `/app` matches `/app`, `/app/` and `/app/x`,
/// not `/application`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    path.starts_with(prefix) && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
}

/// `prefix_matches`, with ASCII letters matched regardless of case.
pub fn prefix_matches_ignore_case(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/').as_bytes();
    let path = path.as_bytes();
    path.len() >= prefix.len()
        && path[..prefix.len()].eq_ignore_ascii_case(prefix)
        && matches!(path.get(prefix.len()), None | Some(b'/'))
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
        assert!(!prefix_matches("/app", "/APP"));
        assert!(prefix_matches_ignore_case("/app", "/APP/x"));
        assert!(prefix_matches_ignore_case("/App/", "/aPp"));
        assert!(!prefix_matches_ignore_case("/app", "/APPlication"));
    }
}
