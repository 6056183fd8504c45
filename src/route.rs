//! Host + longest path prefix -> `Arc<Route>`. Built once from the config, so
//! matching a request allocates nothing. Each protected route carries its
//! `Login` from then on. (The upstream peers are the proxy's: `proxy::peers`.)

use std::collections::HashMap;
use std::sync::Arc;

use crate::auth::Login;
use crate::config::{Config, RouteAuth, RouteSpec};
use crate::front_door::path::{prefix_matches, prefix_matches_ignore_case};
use crate::metrics::{Metrics, RouteCounters};

/// A route ready to serve: its spec, its login, its label and its counters.
#[derive(Debug)]
pub struct Route {
    pub spec: RouteSpec,
    /// How its users log in; `None` exactly when the route is public.
    pub login: Option<Login>,
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
    /// Every route, in the config's order (`RouteSpec::index`).
    by_index: Vec<Arc<Route>>,
    /// Some route's path has an upper-case letter: a lookup that ignores case
    /// cannot be skipped for a lower-case request path.
    upper_case_paths: bool,
}

impl Router {
    /// The routes of `config`, each given its login by `login` (which fails for
    /// a protocol it has no client for).
    pub fn new(
        config: &Config,
        metrics: &Metrics,
        login: &dyn Fn(&RouteAuth) -> Result<Option<Login>, String>,
    ) -> Result<Router, String> {
        let mut r = Router::default();
        for spec in &config.routes {
            let name = format!("{}{}", spec.host.as_deref().unwrap_or(""), spec.path);
            let label = format!("route[{}]", spec.index);
            let route = Arc::new(Route {
                login: login(&spec.auth).map_err(|e| format!("{label}: {e}"))?,
                label,
                counters: metrics.route(&name),
                spec: spec.clone(),
            });
            r.by_index.push(route.clone());
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
        Ok(r)
    }

    /// The route at `index` in the config (a pending login names its route so).
    pub(crate) fn by_index(&self, index: usize) -> Option<&Arc<Route>> {
        self.by_index.iter().find(|r| r.spec.index == index)
    }

    /// Every route, in the config's order.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.by_index.iter()
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
    pub(crate) fn case_matters(&self, path: &str) -> bool {
        self.upper_case_paths || path.bytes().any(|b| b.is_ascii_uppercase())
    }

    /// The origin users reach `host` (canonical, as for `find`) at, from the
    /// config (never from the header itself): the first route for that host,
    /// else a host-less route's.
    pub(crate) fn origin_for_host(&self, host: Option<&str>) -> Option<&str> {
        host.and_then(|h| self.by_host.get(h))
            .and_then(|l| l.first())
            .or_else(|| self.any_host.first())
            .map(|r| r.spec.origin.as_str())
    }
}
