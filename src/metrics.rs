//! The gateway's Prometheus metrics. A request is counted, and its time
//! observed, by atomic adds on counters its route already holds: no map, no lock
//! on the request path; so are session store commands. Rarer events (logins,
//! calls to the identity provider) go through a mutex. The admin listener renders
//! it all in the text exposition format, which `promtool check metrics` accepts
//! (`tests/metrics.rs`). Every label takes values from a fixed set or from the
//! configuration (routes), never from a request.

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

/// The request counters of one route, by outcome and status, and the
/// gateway's own time on its requests.
pub struct RouteCounters {
    counts: Box<[AtomicU64]>,
    added: Histogram,
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
            added: Histogram::new(&ADDED_BUCKETS),
        }
    }

    pub fn record(&self, outcome: Outcome, status: u16) {
        if let Some(c) = self.counts.get(outcome as usize * SLOTS + slot(status)) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// The gateway's own time on one request: until it left for the app, or until
    /// the gateway's own answer was written.
    pub fn added_latency(&self, took: Duration) {
        self.added.observe(took);
    }
}

/// Upper bounds (seconds) of the added-latency histogram: a request with a
/// session takes microseconds; a login, the IdP's time.
const ADDED_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Upper bounds (seconds) of the session-store histogram: in-process stores take
/// microseconds, Redis a round trip.
const STORE_BUCKETS: [f64; 12] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
];

/// A histogram of durations updated with atomic adds only: the bucket the value
/// falls in, the count and the sum (nanoseconds). Buckets are cumulated when
/// rendered.
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// The bounds in nanoseconds, compared with each observation.
    bounds_ns: Box<[u64]>,
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            bounds_ns: bounds.iter().map(|b| (b * 1e9) as u64).collect(),
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        if let Some(b) = self
            .bounds_ns
            .iter()
            .position(|bound| ns <= *bound)
            .and_then(|i| self.buckets.get(i))
        {
            b.fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` samples of `name` with `labels`
    /// (`key="value"` pairs, comma-separated, or empty).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Relaxed);
        let sum = self.sum_ns.load(Relaxed) as f64 / 1e9;
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}\n{name}_sum{} {sum}\n{name}_count{} {count}",
            braces(labels),
            braces(labels)
        );
    }
}

/// The session store's commands, the `operation` label of its histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Load,
    Save,
    Remove,
    Index,
    TakeIndex,
    Unindex,
    HasIndex,
    Revoke,
    IsRevoked,
    FirstUse,
    Release,
    Ping,
}

impl StoreOp {
    const ALL: [StoreOp; 12] = [
        StoreOp::Load,
        StoreOp::Save,
        StoreOp::Remove,
        StoreOp::Index,
        StoreOp::TakeIndex,
        StoreOp::Unindex,
        StoreOp::HasIndex,
        StoreOp::Revoke,
        StoreOp::IsRevoked,
        StoreOp::FirstUse,
        StoreOp::Release,
        StoreOp::Ping,
    ];

    fn as_str(self) -> &'static str {
        match self {
            StoreOp::Load => "load",
            StoreOp::Save => "save",
            StoreOp::Remove => "remove",
            StoreOp::Index => "index",
            StoreOp::TakeIndex => "take_index",
            StoreOp::Unindex => "unindex",
            StoreOp::HasIndex => "has_index",
            StoreOp::Revoke => "revoke",
            StoreOp::IsRevoked => "is_revoked",
            StoreOp::FirstUse => "first_use",
            StoreOp::Release => "release",
            StoreOp::Ping => "ping",
        }
    }
}

/// Upper bounds (seconds) of the identity-provider latency histogram.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Calls to one endpoint of the identity provider.
struct Endpoint {
    latency: Histogram,
    errors: u64,
}

#[derive(Default)]
struct Rare {
    idp: BTreeMap<&'static str, Endpoint>,
    logins_started: BTreeMap<&'static str, u64>,
    logins_completed: BTreeMap<&'static str, u64>,
    /// By protocol (`unknown` when the callback named no known login) and reason.
    logins_failed: BTreeMap<(&'static str, &'static str), u64>,
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
    const ALL: [Revocation; 6] = [
        Revocation::Logout,
        Revocation::Backchannel,
        Revocation::SingleLogout,
        Revocation::Refresh,
        Revocation::Event,
        Revocation::Admin,
    ];

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
    /// Session store commands, by `StoreOp`.
    store: Box<[Histogram]>,
    rare: Mutex<Rare>,
}

/// Values read from the live gateway when rendering.
pub(crate) struct Gauges {
    pub(crate) store_errors: u64,
    pub(crate) active_sessions: Option<u64>,
    /// Whether the per-request revocation check reads memory (always, but with
    /// Redis while its copy is up to date), not the store.
    pub(crate) revocations_in_memory: bool,
    /// Server-mode session reads answered by a worker's copy, and reads that
    /// went to the store; `None` without copies.
    pub(crate) session_copies: Option<(u64, u64)>,
    pub ready: bool,
    /// Whether the identity provider answers, as its last calls said; `None`
    /// without a provider.
    pub(crate) idp_reachable: Option<bool>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            routes: Mutex::new(BTreeMap::new()),
            unrouted: Arc::new(RouteCounters::new()),
            store: StoreOp::ALL
                .iter()
                .map(|_| Histogram::new(&STORE_BUCKETS))
                .collect(),
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
        let mut rare = lock(&self.rare);
        let e = rare.idp.entry(endpoint).or_insert_with(|| Endpoint {
            latency: Histogram::new(&BUCKETS),
            errors: 0,
        });
        e.latency.observe(took);
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

    pub(crate) fn login_failed(&self, protocol: &'static str, reason: &'static str) {
        *lock(&self.rare)
            .logins_failed
            .entry((protocol, reason))
            .or_default() += 1;
    }

    /// One session store command and how long it took.
    pub(crate) fn store_op(&self, op: StoreOp, took: Duration) {
        if let Some(h) = self.store.get(op as usize) {
            h.observe(took);
        }
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
            &[],
        );
        labelled(
            &mut out,
            "oneaccess_gateway_logins_completed_total",
            "Logins that made a session, by protocol.",
            "protocol",
            &rare.logins_completed,
            &[],
        );
        family(
            &mut out,
            "oneaccess_gateway_logins_failed_total",
            "counter",
            "Callbacks that made no session, by protocol and reason.",
        );
        for ((protocol, reason), n) in &rare.logins_failed {
            let _ = writeln!(
                out,
                "oneaccess_gateway_logins_failed_total{{protocol=\"{protocol}\",reason=\"{reason}\"}} {n}"
            );
        }
        family(
            &mut out,
            "oneaccess_gateway_idp_request_duration_seconds",
            "histogram",
            "Calls to the identity provider, by endpoint.",
        );
        for (name, e) in &rare.idp {
            e.latency.render(
                &mut out,
                "oneaccess_gateway_idp_request_duration_seconds",
                &format!("endpoint=\"{name}\""),
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
        let jwks = rare
            .idp
            .get(JWKS_ENDPOINT)
            .map_or(0, |e| e.latency.count.load(Relaxed));
        let _ = writeln!(out, "oneaccess_gateway_jwks_refreshes_total {jwks}");
        labelled(
            &mut out,
            "oneaccess_gateway_config_reloads_total",
            "Configuration reloads, by result.",
            "result",
            &rare.reloads,
            &["ok", "rejected"],
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
            &Revocation::ALL.map(Revocation::as_str),
        );
        drop(rare);
        family(
            &mut out,
            "oneaccess_gateway_session_store_duration_seconds",
            "histogram",
            "Session store commands, by operation.",
        );
        for (op, h) in StoreOp::ALL.iter().zip(self.store.iter()) {
            if h.count.load(Relaxed) > 0 {
                h.render(
                    &mut out,
                    "oneaccess_gateway_session_store_duration_seconds",
                    &format!("operation=\"{}\"", op.as_str()),
                );
            }
        }
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
        if let Some((hits, misses)) = gauges.session_copies {
            family(
                &mut out,
                "oneaccess_gateway_session_copies_total",
                "counter",
                "Server-mode session reads answered by a worker's copy (hit) or by the store (miss).",
            );
            for (result, n) in [("hit", hits), ("miss", misses)] {
                let _ = writeln!(
                    out,
                    "oneaccess_gateway_session_copies_total{{result=\"{result}\"}} {n}"
                );
            }
        }
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
            "oneaccess_gateway_revocations_in_memory",
            "gauge",
            "1 when requests check revocations in memory; 0 when each asks the store (Redis, its copy not up to date).",
        );
        let _ = writeln!(
            out,
            "oneaccess_gateway_revocations_in_memory {}",
            u8::from(gauges.revocations_in_memory)
        );
        family(
            &mut out,
            "oneaccess_gateway_ready",
            "gauge",
            "1 when the gateway is ready to serve logins (see /readyz).",
        );
        let _ = writeln!(out, "oneaccess_gateway_ready {}", u8::from(gauges.ready));
        if let Some(up) = gauges.idp_reachable {
            family(
                &mut out,
                "oneaccess_gateway_idp_reachable",
                "gauge",
                "1 when the identity provider answered its last calls (or a probe).",
            );
            let _ = writeln!(out, "oneaccess_gateway_idp_reachable {}", u8::from(up));
        }
        family(
            &mut out,
            "oneaccess_gateway_build_info",
            "gauge",
            "Always 1; the labels say which build runs.",
        );
        let _ = writeln!(
            out,
            "oneaccess_gateway_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
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
        // Every route's counters, and those of requests no route owns.
        let all = || {
            routes
                .iter()
                .map(|(n, c)| (n.as_str(), c.as_ref()))
                .chain(std::iter::once(("none", self.unrouted.as_ref())))
        };
        for (name, counters) in all() {
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
        family(
            out,
            "oneaccess_gateway_added_latency_seconds",
            "histogram",
            "The gateway's own time on a request, by route: from its arrival until it left for the app, or until the gateway's own answer was written.",
        );
        for (name, counters) in all() {
            if counters.added.count.load(Relaxed) > 0 {
                counters.added.render(
                    out,
                    "oneaccess_gateway_added_latency_seconds",
                    &format!("route=\"{}\"", escape(name)),
                );
            }
        }
    }
}

/// A counter family with one label, from its counts; each of `always` is
/// rendered even before it is first counted (at 0), so rates and alerts work
/// from the start.
fn labelled(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    counts: &BTreeMap<&'static str, u64>,
    always: &[&str],
) {
    family(out, name, "counter", help);
    let unseen = always.iter().filter(|v| !counts.contains_key(*v));
    let mut all: Vec<(&str, u64)> = counts.iter().map(|(v, n)| (*v, *n)).collect();
    all.extend(unseen.map(|v| (*v, 0)));
    all.sort_unstable();
    for (value, n) in all {
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
        m.login_failed("oidc", "invalid_id_token");
        r.added_latency(Duration::from_micros(40));
        r.added_latency(Duration::from_millis(3));
        m.store_op(StoreOp::FirstUse, Duration::from_micros(70));
        let text = m.render(&Gauges {
            store_errors: 2,
            active_sessions: Some(5),
            revocations_in_memory: false,
            session_copies: Some((7, 3)),
            ready: true,
            idp_reachable: Some(false),
        });
        for line in [
            "oneaccess_gateway_requests_total{route=\"app.example.com/wiki\",status=\"200\",outcome=\"authenticated\"} 2",
            "oneaccess_gateway_requests_total{route=\"app.example.com/wiki\",status=\"302\",outcome=\"login_required\"} 1",
            "oneaccess_gateway_requests_total{route=\"none\",status=\"404\",outcome=\"no_route\"} 1",
            "oneaccess_gateway_idp_request_duration_seconds_bucket{endpoint=\"token endpoint\",le=\"0.05\"} 1",
            "oneaccess_gateway_idp_request_duration_seconds_bucket{endpoint=\"token endpoint\",le=\"10\"} 1",
            "oneaccess_gateway_idp_request_duration_seconds_bucket{endpoint=\"token endpoint\",le=\"+Inf\"} 2",
            "oneaccess_gateway_idp_errors_total{endpoint=\"token endpoint\"} 1",
            "oneaccess_gateway_logins_failed_total{protocol=\"oidc\",reason=\"invalid_id_token\"} 1",
            "oneaccess_gateway_session_store_errors_total 2",
            "oneaccess_gateway_active_sessions 5",
            "oneaccess_gateway_revocations_in_memory 0",
            "oneaccess_gateway_session_copies_total{result=\"hit\"} 7",
            "oneaccess_gateway_session_copies_total{result=\"miss\"} 3",
            "oneaccess_gateway_ready 1",
            "oneaccess_gateway_idp_reachable 0",
            "oneaccess_gateway_idp_request_duration_seconds_sum{endpoint=\"token endpoint\"} 20.03",
            "oneaccess_gateway_added_latency_seconds_bucket{route=\"app.example.com/wiki\",le=\"0.0001\"} 1",
            "oneaccess_gateway_added_latency_seconds_bucket{route=\"app.example.com/wiki\",le=\"0.0025\"} 1",
            "oneaccess_gateway_added_latency_seconds_bucket{route=\"app.example.com/wiki\",le=\"0.005\"} 2",
            "oneaccess_gateway_added_latency_seconds_count{route=\"app.example.com/wiki\"} 2",
            "oneaccess_gateway_session_store_duration_seconds_bucket{operation=\"first_use\",le=\"0.00005\"} 0",
            "oneaccess_gateway_session_store_duration_seconds_bucket{operation=\"first_use\",le=\"0.0001\"} 1",
            "oneaccess_gateway_session_store_duration_seconds_count{operation=\"first_use\"} 1",
            "oneaccess_gateway_revocations_total{cause=\"admin\"} 0",
            "oneaccess_gateway_config_reloads_total{result=\"rejected\"} 0",
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
            revocations_in_memory: true,
            session_copies: None,
            ready: false,
            idp_reachable: None,
        });
        assert!(text.contains("route=\"/app\",status=\"200\",outcome=\"public\"} 2"));
        assert!(!text.contains("oneaccess_gateway_active_sessions"));
        assert!(!text.contains("oneaccess_gateway_session_copies_total"));
        assert!(!text.contains("oneaccess_gateway_idp_reachable"));
        // No store command yet: no store samples, only the family.
        assert!(!text.contains("oneaccess_gateway_session_store_duration_seconds_count"));
    }
}
