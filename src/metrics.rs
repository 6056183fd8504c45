//! The gateway's Prometheus metrics. A request is counted by one atomic add on a
//! counter its route already holds: no map, no lock on the request path. Rarer
//! events (logins, calls to the identity provider) go through a mutex. The admin
//! listener renders it all in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

macro_rules! outcomes {
    ($($variant:ident => $name:literal,)*) => {
        /// What became of a request: the access log's `outcome` and a metrics label.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Outcome { $($variant,)* }

        impl Outcome {
            pub(crate) const ALL: &'static [Outcome] = &[$(Outcome::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Outcome::$variant => $name,)* }
            }
        }
    };
}

outcomes! {
    Unknown => "unknown",
    Authenticated => "authenticated",
    Public => "public",
    Anonymous => "anonymous",
    LoginRequired => "login_required",
    Denied => "denied",
    BearerRefused => "bearer_refused",
    MissingAttribute => "missing_attribute",
    StoreUnavailable => "store_unavailable",
    RefreshPending => "refresh_pending",
    Callback => "callback",
    CasCallback => "cas_callback",
    CasSingleLogout => "cas_single_logout",
    BackchannelLogout => "backchannel_logout",
    OneAccessEvent => "oneaccess_event",
    Logout => "logout",
    StartLogin => "start_login",
    Jwks => "jwks",
    NotFound => "not_found",
    BadPath => "bad_path",
    BadHost => "bad_host",
    MalformedRequest => "malformed_request",
    NoRoute => "no_route",
    ForwardAuthOnly => "forward_auth_only",
    UntrustedProxy => "untrusted_proxy",
    NoOriginalUrl => "no_original_url",
    HeadersTooLarge => "headers_too_large",
    UpstreamError => "upstream_error",
    UpstreamTimeout => "upstream_timeout",
}

/// The endpoint name the JWKS is fetched under (the JWKS-refresh metric).
pub(crate) const JWKS_ENDPOINT: &str = "JWKS";

/// Status codes counted on their own; any other is counted by its class.
const CODES: [u16; 24] = [
    200, 201, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 413, 429,
    431, 500, 502, 503, 504,
];
const CLASSES: [&str; 6] = ["0", "1xx", "2xx", "3xx", "4xx", "5xx"];
const SLOTS: usize = CODES.len() + CLASSES.len();

/// Status -> slot, for every status below 600: a table, so counting is one load.
const SLOT_OF: [u8; 600] = {
    let mut t = [0u8; 600];
    let mut s = 0;
    while s < 600 {
        t[s] = (CODES.len() + s / 100) as u8;
        s += 1;
    }
    let mut i = 0;
    while i < CODES.len() {
        t[CODES[i] as usize] = i as u8;
        i += 1;
    }
    t
};

fn slot(status: u16) -> usize {
    SLOT_OF
        .get(usize::from(status))
        .map_or(CODES.len() + 5, |s| usize::from(*s))
}

fn slot_label(slot: usize) -> String {
    match CODES.get(slot) {
        Some(code) => code.to_string(),
        None => CLASSES[slot - CODES.len()].to_string(),
    }
}

/// The request counters of one route, by outcome and status.
pub struct RouteCounters {
    counts: Box<[AtomicU64]>,
}

impl std::fmt::Debug for RouteCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteCounters")
    }
}

impl RouteCounters {
    fn new() -> RouteCounters {
        RouteCounters {
            counts: (0..Outcome::ALL.len() * SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    pub fn record(&self, outcome: Outcome, status: u16) {
        if let Some(c) = self.counts.get(outcome as usize * SLOTS + slot(status)) {
            c.fetch_add(1, Relaxed);
        }
    }
}

/// Upper bounds (seconds) of the identity-provider latency histogram.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Endpoint {
    /// Cumulative per bucket is computed when rendering; these are per bucket.
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
    errors: u64,
}

#[derive(Default)]
struct Rare {
    idp: BTreeMap<&'static str, Endpoint>,
    logins_started: BTreeMap<&'static str, u64>,
    logins_completed: BTreeMap<&'static str, u64>,
    logins_failed: BTreeMap<&'static str, u64>,
    reloads: BTreeMap<&'static str, u64>,
    /// OneAccess user events, by event type and outcome.
    events: BTreeMap<(&'static str, &'static str), u64>,
    revocations: BTreeMap<&'static str, u64>,
}

/// Why sessions were ended server-side (the `cause` label of revocations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The user logged out here.
    Logout,
    /// OIDC back-channel logout.
    Backchannel,
    /// CAS single logout.
    SingleLogout,
    /// A refused refresh token on a `logout` route.
    Refresh,
    /// A OneAccess user event (disabled, deleted).
    Event,
    /// An operator on the admin listener.
    Admin,
}

impl Revocation {
    pub fn as_str(self) -> &'static str {
        match self {
            Revocation::Logout => "logout",
            Revocation::Backchannel => "backchannel",
            Revocation::SingleLogout => "single_logout",
            Revocation::Refresh => "refresh",
            Revocation::Event => "event",
            Revocation::Admin => "admin",
        }
    }
}

/// Every metric of one gateway process; it outlives configuration reloads.
pub struct Metrics {
    /// Route name -> counters. A reloaded route of the same name keeps counting
    /// where the old one stopped.
    routes: Mutex<BTreeMap<String, Arc<RouteCounters>>>,
    /// Requests no route owns: the gateway's own endpoints, unknown addresses.
    unrouted: Arc<RouteCounters>,
    rare: Mutex<Rare>,
}

/// Values read from the live gateway when rendering.
pub(crate) struct Gauges {
    pub(crate) store_errors: u64,
    pub(crate) active_sessions: Option<u64>,
    pub ready: bool,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            routes: Mutex::new(BTreeMap::new()),
            unrouted: Arc::new(RouteCounters::new()),
            rare: Mutex::new(Rare::default()),
        }
    }
}

impl Metrics {
    /// The counters of the route named `name`, made on first use.
    pub fn route(&self, name: &str) -> Arc<RouteCounters> {
        let mut routes = lock(&self.routes);
        routes
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(RouteCounters::new()))
            .clone()
    }

    pub(crate) fn unrouted(&self) -> &RouteCounters {
        &self.unrouted
    }

    /// One call to the identity provider: how long it took and whether it failed
    /// (no answer, or a 5xx).
    pub(crate) fn idp_call(&self, endpoint: &'static str, took: Duration, failed: bool) {
        let secs = took.as_secs_f64();
        let mut rare = lock(&self.rare);
        let e = rare.idp.entry(endpoint).or_default();
        e.count += 1;
        e.sum += secs;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            e.buckets[i] += 1;
        }
        if failed {
            e.errors += 1;
        }
    }

    pub(crate) fn login_started(&self, protocol: &'static str) {
        *lock(&self.rare).logins_started.entry(protocol).or_default() += 1;
    }

    pub(crate) fn login_completed(&self, protocol: &'static str) {
        *lock(&self.rare)
            .logins_completed
            .entry(protocol)
            .or_default() += 1;
    }

    pub(crate) fn login_failed(&self, reason: &'static str) {
        *lock(&self.rare).logins_failed.entry(reason).or_default() += 1;
    }

    /// A configuration reload: `ok` or `rejected`.
    pub fn reload(&self, result: &'static str) {
        *lock(&self.rare).reloads.entry(result).or_default() += 1;
    }

    /// A OneAccess user event and what became of it (both fixed strings: an
    /// unknown event type is counted as `unknown`, never by its name).
    pub fn event(&self, event_type: &'static str, outcome: &'static str) {
        *lock(&self.rare)
            .events
            .entry((event_type, outcome))
            .or_default() += 1;
    }

    /// Sessions ended server-side once (one logout, one event), by cause.
    pub fn revocation(&self, cause: Revocation) {
        *lock(&self.rare)
            .revocations
            .entry(cause.as_str())
            .or_default() += 1;
    }

    /// The Prometheus text exposition of everything.
    pub(crate) fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        self.render_requests(&mut out);
        let rare = lock(&self.rare);
        labelled(
            &mut out,
            "oneaccess_gateway_logins_started_total",
            "Logins sent to the identity provider, by protocol.",
            "protocol",
            &rare.logins_started,
        );
        labelled(
            &mut out,
            "oneaccess_gateway_logins_completed_total",
            "Logins that made a session, by protocol.",
            "protocol",
            &rare.logins_completed,
        );
        labelled(
            &mut out,
            "oneaccess_gateway_logins_failed_total",
            "Callbacks that made no session, by reason.",
            "reason",
            &rare.logins_failed,
        );
        family(
            &mut out,
            "oneaccess_gateway_idp_request_duration_seconds",
            "histogram",
            "Calls to the identity provider, by endpoint.",
        );
        for (name, e) in &rare.idp {
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(e.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "oneaccess_gateway_idp_request_duration_seconds_bucket{{endpoint=\"{name}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "oneaccess_gateway_idp_request_duration_seconds_bucket{{endpoint=\"{name}\",le=\"+Inf\"}} {}\n\
                 oneaccess_gateway_idp_request_duration_seconds_sum{{endpoint=\"{name}\"}} {}\n\
                 oneaccess_gateway_idp_request_duration_seconds_count{{endpoint=\"{name}\"}} {}",
                e.count, e.sum, e.count
            );
        }
        family(
            &mut out,
            "oneaccess_gateway_idp_errors_total",
            "counter",
            "Calls to the identity provider that got no answer or a 5xx, by endpoint.",
        );
        for (name, e) in &rare.idp {
            let _ = writeln!(
                out,
                "oneaccess_gateway_idp_errors_total{{endpoint=\"{name}\"}} {}",
                e.errors
            );
        }
        family(
            &mut out,
            "oneaccess_gateway_jwks_refreshes_total",
            "counter",
            "Fetches of the identity provider's signing keys.",
        );
        let jwks = rare.idp.get(JWKS_ENDPOINT).map_or(0, |e| e.count);
        let _ = writeln!(out, "oneaccess_gateway_jwks_refreshes_total {jwks}");
        labelled(
            &mut out,
            "oneaccess_gateway_config_reloads_total",
            "Configuration reloads, by result.",
            "result",
            &rare.reloads,
        );
        family(
            &mut out,
            "oneaccess_gateway_events_total",
            "counter",
            "OneAccess user events received, by event type (`unknown` until the request is authenticated) and outcome.",
        );
        for ((kind, outcome), n) in &rare.events {
            let _ = writeln!(
                out,
                "oneaccess_gateway_events_total{{type=\"{kind}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        labelled(
            &mut out,
            "oneaccess_gateway_revocations_total",
            "Server-side session endings (one logout, one event...), by cause.",
            "cause",
            &rare.revocations,
        );
        drop(rare);
        family(
            &mut out,
            "oneaccess_gateway_session_store_errors_total",
            "counter",
            "Session store commands that failed.",
        );
        let _ = writeln!(
            out,
            "oneaccess_gateway_session_store_errors_total {}",
            gauges.store_errors
        );
        if let Some(n) = gauges.active_sessions {
            family(
                &mut out,
                "oneaccess_gateway_active_sessions",
                "gauge",
                "Server-mode sessions held by this gateway's memory store.",
            );
            let _ = writeln!(out, "oneaccess_gateway_active_sessions {n}");
        }
        family(
            &mut out,
            "oneaccess_gateway_ready",
            "gauge",
            "1 when the gateway is ready to serve logins (see /readyz).",
        );
        let _ = writeln!(out, "oneaccess_gateway_ready {}", u8::from(gauges.ready));
        out
    }

    fn render_requests(&self, out: &mut String) {
        family(
            out,
            "oneaccess_gateway_requests_total",
            "counter",
            "Requests, by route, status and outcome.",
        );
        let routes = lock(&self.routes);
        let all = routes
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_ref()))
            .chain(std::iter::once(("none", self.unrouted.as_ref())));
        for (name, counters) in all {
            for (i, n) in counters.counts.iter().enumerate() {
                let n = n.load(Relaxed);
                if n == 0 {
                    continue;
                }
                let (outcome, slot) = (Outcome::ALL[i / SLOTS], i % SLOTS);
                let _ = writeln!(
                    out,
                    "oneaccess_gateway_requests_total{{route=\"{}\",status=\"{}\",outcome=\"{}\"}} {n}",
                    escape(name),
                    slot_label(slot),
                    outcome.as_str()
                );
            }
        }
    }
}

/// A counter family with one label, from its counts.
fn labelled(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    counts: &BTreeMap<&'static str, u64>,
) {
    family(out, name, "counter", help);
    for (value, n) in counts {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

/// The gauge of the connections each worker serves now, appended to `out`.
pub fn worker_connections(out: &mut String, open: impl Iterator<Item = usize>) {
    family(
        out,
        "oneaccess_gateway_worker_connections",
        "gauge",
        "Client connections open now, by worker thread.",
    );
    for (worker, n) in open.enumerate() {
        let _ = writeln!(
            out,
            "oneaccess_gateway_worker_connections{{worker=\"{worker}\"}} {n}"
        );
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the exposition format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A poisoned lock still holds good counts: a panic elsewhere must not stop metrics.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_land_in_their_slot_or_class() {
        assert_eq!(slot_label(slot(200)), "200");
        assert_eq!(slot_label(slot(302)), "302");
        assert_eq!(slot_label(slot(418)), "4xx");
        assert_eq!(slot_label(slot(599)), "5xx");
        assert_eq!(slot_label(slot(0)), "0");
        assert_eq!(slot_label(slot(9999)), "5xx");
    }

    #[test]
    fn renders_counts_by_route_status_and_outcome() {
        let m = Metrics::default();
        let r = m.route("app.example.com/wiki");
        r.record(Outcome::Authenticated, 200);
        r.record(Outcome::Authenticated, 200);
        r.record(Outcome::LoginRequired, 302);
        m.unrouted().record(Outcome::NoRoute, 404);
        m.idp_call("token endpoint", Duration::from_millis(30), false);
        m.idp_call("token endpoint", Duration::from_secs(20), true);
        m.login_failed("invalid_id_token");
        let text = m.render(&Gauges {
            store_errors: 2,
            active_sessions: Some(5),
            ready: true,
        });
        for line in [
            "oneaccess_gateway_requests_total{route=\"app.example.com/wiki\",status=\"200\",outcome=\"authenticated\"} 2",
            "oneaccess_gateway_requests_total{route=\"app.example.com/wiki\",status=\"302\",outcome=\"login_required\"} 1",
            "oneaccess_gateway_requests_total{route=\"none\",status=\"404\",outcome=\"no_route\"} 1",
            "oneaccess_gateway_idp_request_duration_seconds_bucket{endpoint=\"token endpoint\",le=\"0.05\"} 1",
            "oneaccess_gateway_idp_request_duration_seconds_bucket{endpoint=\"token endpoint\",le=\"10\"} 1",
            "oneaccess_gateway_idp_request_duration_seconds_bucket{endpoint=\"token endpoint\",le=\"+Inf\"} 2",
            "oneaccess_gateway_idp_errors_total{endpoint=\"token endpoint\"} 1",
            "oneaccess_gateway_logins_failed_total{reason=\"invalid_id_token\"} 1",
            "oneaccess_gateway_session_store_errors_total 2",
            "oneaccess_gateway_active_sessions 5",
            "oneaccess_gateway_ready 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        // Counters that never moved are not rendered.
        assert!(!text.contains("outcome=\"denied\""));
    }

    #[test]
    fn a_route_of_the_same_name_keeps_its_counts() {
        let m = Metrics::default();
        m.route("/app").record(Outcome::Public, 200);
        m.route("/app").record(Outcome::Public, 200);
        let text = m.render(&Gauges {
            store_errors: 0,
            active_sessions: None,
            ready: false,
        });
        assert!(text.contains("route=\"/app\",status=\"200\",outcome=\"public\"} 2"));
        assert!(!text.contains("oneaccess_gateway_active_sessions"));
    }
}
