//! The upstream peers of a configuration's routes, built once with their
//! timeouts and TLS settings, so the proxy only clones one per request. Pingora's
//! type, so it lives here: the routes themselves know no Pingora.

use std::sync::Arc;

use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, WrappedX509};

use crate::config::{Config, Upstream, UpstreamDefaults};

/// One peer per route, by the route's index in the file; `None` for a route
/// judged only through forward auth.
pub(crate) struct Peers(Vec<Option<HttpPeer>>);

impl Peers {
    pub(crate) fn new(config: &Config) -> Peers {
        let mut peers = vec![None; config.routes.len()];
        for spec in &config.routes {
            if let (Some(u), Some(slot)) = (&spec.upstream, peers.get_mut(spec.index)) {
                *slot = Some(upstream_peer(u, &config.server.upstream));
            }
        }
        Peers(peers)
    }

    /// The peer of the route at `index`.
    pub(crate) fn of(&self, index: usize) -> Option<&HttpPeer> {
        self.0.get(index).and_then(Option::as_ref)
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
