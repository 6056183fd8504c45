//! The soak mode (`--mode soak`): both gateways (cookie sessions, Redis
//! sessions) held at half their peak rate for minutes, with fresh logins,
//! logouts, token refreshes, back-channel logouts and configuration reloads
//! mixed in all the time; then the errors, each gateway's RSS over time, its open
//! file descriptors and the count of each operation, as a section of the report.

use std::collections::{HashMap, VecDeque};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use oneaccess_sim::{Sim, SimConfig, SSO_COOKIE};
use reqwest::header::{COOKIE, LOCATION};
use reqwest::{Client, Response, StatusCode};
use tokio::runtime::Runtime;

use crate::login::{self, Jar, ALICE_ID};
use crate::procs::{open_fds, rss_kib};
use crate::report::{table, Report};
use crate::targets::{metric, Gateway, Harness};
use crate::wrk::{Load, Sample, Wrk};
use crate::Options;

/// The gateway's default `refresh_margin_seconds`: it refreshes a session this
/// long before its access token ends.
const REFRESH_MARGIN: u64 = 60;

/// The pause of the paced load between a connection's requests (as the rounds'
/// half load): the rate is set by the number of connections.
const DELAY_MS: u32 = 10;

/// The soak's figures that depend on `--quick`.
struct Plan {
    soak: Duration,
    /// How long the peak is measured: never longer than a stretch, so that the
    /// load's session is never refreshed under wrk.
    peak: Duration,
    /// Seconds from a login to its refresh: the simulator's access tokens live
    /// this long plus the refresh margin.
    refresh_after: u64,
    /// wrk runs in stretches this long, each with a fresh session. wrk sends one
    /// cookie for a whole run and cannot take up a refreshed one, so each
    /// stretch ends before its session's refresh point.
    stretch: Duration,
    reload_every: Duration,
    sample_every: Duration,
    /// RSS growth is counted from the sample taken here (the first minute, or the
    /// first third of a shorter soak, is the warm-up of caches and pools).
    baseline_at: Duration,
    /// Between two rounds of the mixed-in operations, per gateway.
    churn_pause: Duration,
}

impl Plan {
    fn new(o: &Options) -> Plan {
        let (refresh_after, stretch, reload_every, sample_every) = if o.quick {
            (6, 4, 5, 1)
        } else {
            (30, 20, 60, 5)
        };
        let stretch = Duration::from_secs(stretch);
        Plan {
            soak: o.soak,
            peak: o.duration.min(stretch).max(Duration::from_secs(1)),
            refresh_after,
            stretch,
            reload_every: Duration::from_secs(reload_every),
            sample_every: Duration::from_secs(sample_every),
            baseline_at: Duration::from_secs(60).min(o.soak / 3),
            churn_pause: Duration::from_millis(100),
        }
    }
}

/// Counts of what was done to one gateway, and what went wrong.
#[derive(Default)]
struct Ops {
    /// Whole logins of the mixed-in operations, each from an SSO session of its own.
    logins: AtomicU64,
    /// Sessions made for the load's stretches.
    load_sessions: AtomicU64,
    /// Requests sent past a session's refresh point, served as Alice.
    refreshes: AtomicU64,
    logouts: AtomicU64,
    /// Logout tokens the harness had the simulator sign and post.
    backchannel: AtomicU64,
    /// Ended sessions checked afterwards and refused.
    refused_after_end: AtomicU64,
    /// The harness's own requests that reached the app as Alice (beside wrk's).
    authenticated: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Ops {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Relaxed);
        if let Ok(mut e) = self.first_errors.lock() {
            if e.len() < 5 {
                e.push(what);
            }
        }
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}

/// One gateway under soak.
struct Soaked<'a> {
    name: &'static str,
    gw: &'a Gateway,
    ops: Arc<Ops>,
}

/// What the load of one gateway did over all its stretches.
#[derive(Default)]
struct Loaded {
    /// The paced rate and its connections.
    rate: f64,
    connections: u32,
    samples: Vec<Sample>,
    secs: f64,
}

impl Loaded {
    fn requests(&self) -> u64 {
        self.samples.iter().map(|s| s.requests).sum()
    }
    fn errors(&self) -> u64 {
        self.samples.iter().map(|s| s.errors).sum()
    }
    fn worst_p99(&self) -> f64 {
        self.samples.iter().map(|s| s.p99_ms).fold(0.0, f64::max)
    }
}

pub fn run(o: &Options) -> Result<(), String> {
    let plan = Plan::new(o);
    // `--pin` is refused with `--mode soak` (cli.rs): no peer is compared here.
    let Harness {
        dir,
        setup,
        wrk,
        rt,
        client,
    } = Harness::start(o, None)?;
    let mut report = Report::default();

    println!("starting the servers in {}", dir.display());
    let result = (|| {
        let upstream = setup.upstream()?;
        // In this process, unlike the other modes: the back-channel logout URLs
        // are registered once the gateways listen, and logout tokens are signed
        // with its key. Short-lived access tokens make every session due for a
        // refresh `refresh_after` seconds after its login.
        let sim = rt
            .block_on(Sim::start(SimConfig {
                access_token_ttl: Duration::from_secs(REFRESH_MARGIN + plan.refresh_after),
                ..SimConfig::default()
            }))
            .map_err(|e| format!("cannot start the simulator: {e}"))?;
        let redis = setup.redis()?;
        let cookie = setup.gateway("gateway", &sim.base_url(), upstream.port, None)?;
        let server = setup.gateway(
            "gateway-redis",
            &sim.base_url(),
            upstream.port,
            Some(redis.port),
        )?;
        let gateways = [
            Soaked {
                name: "gateway, cookie sessions",
                gw: &cookie,
                ops: Arc::default(),
            },
            Soaked {
                name: "gateway, Redis sessions",
                gw: &server,
                ops: Arc::default(),
            },
        ];
        for g in &gateways {
            sim.register_backchannel_logout_uri(&g.gw.url("/_sso/backchannel-logout"));
        }
        let ctx = Ctx {
            o,
            plan: &plan,
            rt: &rt,
            client: &client,
            wrk: &wrk,
            sim: &sim,
        };
        soak(&ctx, &gateways, &mut report)
    })();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    if let Err(e) = &result {
        report.problem(format!("the run stopped: {e}"));
    }
    report.write(&o.out, &command)?;
    println!("\nreport: {}", o.out.display());
    if report.problems.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    } else {
        Err(format!(
            "{} problem(s), listed in {}; the servers' logs are in {}",
            report.problems.len(),
            o.out.display(),
            dir.display()
        ))
    }
}

/// What the soak's parts share.
struct Ctx<'a> {
    o: &'a Options,
    plan: &'a Plan,
    rt: &'a Runtime,
    client: &'a Client,
    wrk: &'a Wrk,
    sim: &'a Sim,
}

impl Ctx<'_> {
    /// A fresh session of Alice's at `url` (from the load's SSO session),
    /// checked to reach the app as her.
    fn load_session(&self, url: &str, sso: &str, ops: &Ops) -> Result<String, String> {
        let sim_url = self.sim.base_url();
        self.rt
            .block_on(async {
                let cookie = login::login(self.client, url, &sim_url, sso).await?;
                login::check_session(self.client, url, &cookie, ALICE_ID).await?;
                Ok::<_, String>(cookie)
            })
            .inspect(|_| {
                ops.load_sessions.fetch_add(1, Relaxed);
                ops.authenticated.fetch_add(1, Relaxed);
            })
    }

    fn metrics(&self, gw: &Gateway) -> Result<Metrics, String> {
        self.rt
            .block_on(gw.metrics(self.client))
            .map(|p| Metrics::of(&p))
    }
}

fn soak(ctx: &Ctx, gateways: &[Soaked], report: &mut Report) -> Result<(), String> {
    let (o, plan) = (ctx.o, ctx.plan);
    let sim_url = ctx.sim.base_url();
    // The load's SSO session: never ended, so the load's sessions never are.
    let sso = ctx.rt.block_on(login::sso_session(ctx.client, &sim_url))?;

    // Half of the peak, measured with both gateways loaded at once, as they
    // are during the soak.
    println!("soak: warming up, then the peak of both gateways at once");
    let warm = o.warmup.min(plan.stretch);
    if !warm.is_zero() {
        full_load(ctx, gateways, &sso, warm)?;
    }
    let peak = full_load(ctx, gateways, &sso, plan.peak)?;
    let mut loads: Vec<Loaded> = peak
        .iter()
        .map(|s| {
            let rate = (s.rps / 2.0).max(1.0);
            Loaded {
                rate,
                connections: ((rate * f64::from(DELAY_MS) / 1000.0).round() as u32).max(1),
                ..Loaded::default()
            }
        })
        .collect();

    let before: Vec<Metrics> = gateways
        .iter()
        .map(|g| ctx.metrics(g.gw))
        .collect::<Result<_, _>>()?;
    let fds_start: Vec<usize> = gateways
        .iter()
        .map(|g| open_fds(g.gw.proc.pid()))
        .collect::<Result<_, _>>()?;
    let pids: Vec<u32> = gateways.iter().map(|g| g.gw.proc.pid()).collect();

    println!(
        "soak: {} s at {} requests/s on the gateways, with logins, logouts, refreshes, \
         back-channel logouts and a reload every {} s",
        plan.soak.as_secs(),
        loads
            .iter()
            .map(|l| format!("{:.0}", l.rate))
            .collect::<Vec<_>>()
            .join(" and "),
        plan.reload_every.as_secs()
    );
    let started = Instant::now();
    let deadline = started + plan.soak;
    let stop = AtomicBool::new(false);
    let churn: Vec<_> = gateways
        .iter()
        .map(|g| {
            ctx.rt.spawn(churn(
                ctx.client.clone(),
                ctx.sim.clone(),
                g.gw.url("/"),
                g.ops.clone(),
                Duration::from_secs(plan.refresh_after),
                plan.churn_pause,
                deadline,
            ))
        })
        .collect();
    let (samples, reloads) = thread::scope(|s| {
        let sampler = s.spawn(|| sample_rss(&pids, plan.sample_every, started, &stop));
        let reloader = s.spawn(|| reload(&pids, plan.reload_every, deadline, &stop));
        let loaders: Vec<_> = gateways
            .iter()
            .zip(loads.iter_mut())
            .map(|(g, l)| s.spawn(|| paced(ctx, g, l, &sso, deadline)))
            .collect();
        for l in loaders {
            let _ = l.join();
        }
        stop.store(true, Relaxed);
        let samples = sampler.join().unwrap_or_default();
        let reloads = reloader.join().unwrap_or(0);
        (samples, reloads)
    });
    for c in churn {
        if let Err(e) = ctx.rt.block_on(c) {
            report.problem(format!("soak: the mixed-in operations stopped: {e}"));
        }
    }
    let elapsed = started.elapsed();
    // The last reload and the connections of the last stretch settle.
    thread::sleep(Duration::from_secs(1));
    let fds_end: Vec<usize> = gateways
        .iter()
        .map(|g| open_fds(g.gw.proc.pid()))
        .collect::<Result<_, _>>()?;
    let after: Vec<Metrics> = gateways
        .iter()
        .map(|g| ctx.metrics(g.gw))
        .collect::<Result<_, _>>()?;
    let fan_out = ctx.sim.backchannel_log();

    let mut memory_rows = Vec::new();
    let mut ops_columns: Vec<Vec<String>> = Vec::new();
    let mut load_rows = Vec::new();
    for (i, g) in gateways.iter().enumerate() {
        let ops = &g.ops;
        let l = &loads[i];
        let d = after[i].since(&before[i]);
        let url = g.gw.url("/_sso/backchannel-logout");
        let sent: Vec<u16> = fan_out
            .iter()
            .filter(|(u, _)| *u == url)
            .map(|(_, s)| *s)
            .collect();
        let refused_posts = sent.iter().filter(|s| **s != 200).count() as u64;
        let from_idp = (sent.len() as u64).saturating_sub(Ops::get(&ops.backchannel));
        // Every request wrk counted, and every one of the harness's own that
        // reached the app, must have been served as authenticated.
        let expected = l.requests() + Ops::get(&ops.authenticated);
        let not_forwarded = expected.saturating_sub(d.authenticated);
        let refreshed = d.refreshes();
        let errors =
            l.errors() + not_forwarded + Ops::get(&ops.errors) + refused_posts + d.reloads_rejected;
        load_rows.push(vec![
            g.name.to_string(),
            format!("{:.0}", l.rate),
            l.connections.to_string(),
            format!("{:.0}", l.requests() as f64 / l.secs.max(1e-9)),
            l.requests().to_string(),
            format!("{:.2}", l.worst_p99()),
            l.errors().to_string(),
            not_forwarded.to_string(),
            d.server_errors.to_string(),
        ]);

        let growth = Growth::of(&samples, i, plan.baseline_at);
        memory_rows.push(vec![
            g.name.to_string(),
            mib(growth.start),
            mib(growth.base),
            mib(growth.end),
            mib(growth.peak),
            format!("{:+.1}%", growth.percent()),
            fds_start[i].to_string(),
            fds_end[i].to_string(),
        ]);
        report.target(
            growth.percent() < 5.0,
            format!(
                "soak, {}: RSS growth after the first {} s < 5%: {:+.1}% ({} → {} MiB)",
                g.name,
                plan.baseline_at.as_secs(),
                growth.percent(),
                mib(growth.base),
                mib(growth.end)
            ),
        );

        ops_columns.push(vec![
            Ops::get(&ops.logins).to_string(),
            Ops::get(&ops.load_sessions).to_string(),
            Ops::get(&ops.refreshes).to_string(),
            refreshed.to_string(),
            Ops::get(&ops.logouts).to_string(),
            Ops::get(&ops.backchannel).to_string(),
            from_idp.to_string(),
            Ops::get(&ops.refused_after_end).to_string(),
            format!("{reloads} / {}", d.reloads_ok),
            errors.to_string(),
        ]);

        if errors > 0 {
            let first = ops
                .first_errors
                .lock()
                .map(|e| e.join("; "))
                .unwrap_or_default();
            report.problem(format!(
                "soak, {}: {errors} error(s): wrk {}, answered without reaching the app \
                 {not_forwarded}, mixed-in operations {}{}, back-channel POSTs refused \
                 {refused_posts}, reloads rejected {}",
                g.name,
                l.errors(),
                Ops::get(&ops.errors),
                if first.is_empty() {
                    String::new()
                } else {
                    format!(" (the first: {first})")
                },
                d.reloads_rejected
            ));
        }
        if d.server_errors > 0 {
            report.problem(format!(
                "soak, {}: the gateway answered {} request(s) with a 5xx",
                g.name, d.server_errors
            ));
        }
        if d.reloads_ok < reloads {
            report.problem(format!(
                "soak, {}: {reloads} SIGHUP sent, {} reload(s) done",
                g.name, d.reloads_ok
            ));
        }
        if refreshed < Ops::get(&ops.refreshes) {
            report.problem(format!(
                "soak, {}: {} request(s) past a session's refresh point, {refreshed} \
                 refresh(es) made",
                g.name,
                Ops::get(&ops.refreshes)
            ));
        }
        // Each of the paced load's connections may leave an upstream connection
        // in the workers' pools (the start was counted after the peak's 64): beyond
        // those, a descriptor more at the end than at the start, both idle, is one
        // the gateway kept.
        let allowed = fds_start[i] + l.connections as usize + FD_SLACK;
        if fds_end[i] > allowed {
            report.problem(format!(
                "soak, {}: {} open descriptors at the end against {} at the start (up to \
                 {allowed} expected)",
                g.name, fds_end[i], fds_start[i]
            ));
        }
    }

    let op_names = [
        "fresh logins (each from its own SSO session)",
        "logins for the load's stretches",
        "requests past a session's refresh point",
        "refreshes made by the gateway (token calls − logins)",
        "logouts (the gateway's, then OneAccess's global logout)",
        "back-channel logouts posted by the harness",
        "back-channel logouts from OneAccess's global logout",
        "ended sessions refused afterwards",
        "reloads: SIGHUP sent / done",
        "errors",
    ];
    let op_rows: Vec<Vec<String>> = op_names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            std::iter::once(name.to_string())
                .chain(ops_columns.iter().map(|c| c[k].clone()))
                .collect()
        })
        .collect();
    let mut op_head = vec!["operation"];
    op_head.extend(gateways.iter().map(|g| g.name));

    let mut rss_head = vec!["s"];
    rss_head.extend(RSS_COLUMNS);
    let stride = samples.len().div_ceil(MAX_RSS_ROWS).max(1);
    let rss_rows: Vec<Vec<String>> = samples
        .iter()
        .enumerate()
        .filter(|(k, _)| k % stride == 0 || *k + 1 == samples.len())
        .map(|(_, (t, kib))| {
            std::iter::once(format!("{t:.0}"))
                .chain(kib.iter().map(|k| mib(*k)))
                .collect()
        })
        .collect();

    report.section(
        "Soak",
        format!(
            "{:.0} s on both gateways at once (the throughput rounds' two OIDC gateways: cookie \
             sessions, and sessions in Redis), each paced by wrk at half the requests/s it \
             reached when both were loaded at full speed together ({} s, {} connections): \
             connections waiting {DELAY_MS} ms between requests. wrk runs in stretches of {} s, \
             each with a session logged in for it, because it cannot take up a refreshed \
             cookie and every session is refreshed {} s after its login (the simulator's \
             access tokens live {} s; the gateway refreshes {REFRESH_MARGIN} s before the end). \
             Mixed in all the time, on each gateway in turn: a whole login from an SSO session \
             of its own; {} s later a request that makes the gateway refresh the session, and \
             another with the refreshed cookie; then the session ended, alternately by the \
             gateway's logout (which goes on to OneAccess's global logout, which posts a logout \
             token to both gateways) and by a logout token posted to the gateway, and checked \
             refused. Each gateway gets a SIGHUP every {} s. Errors: wrk's (sockets, timeouts, \
             answers ≥ 400), requests that did not reach the app as Alice, any step of the \
             mixed-in operations that failed (an ended session still served among them), \
             logout tokens not answered 200, and rejected reloads.\n\n{}\n{}\n\
             RSS is the gateway process's VmRSS, every {} s from the start of the soak; growth \
             is from the sample at {} s to the last. Open descriptors are counted in \
             /proc/PID/fd, idle, before and after the soak; pooled connections to the app \
             may add up to one per paced connection.\n\n{}\n{}",
            elapsed.as_secs_f64(),
            plan.peak.as_secs(),
            o.connections,
            plan.stretch.as_secs(),
            plan.refresh_after,
            REFRESH_MARGIN + plan.refresh_after,
            plan.refresh_after,
            plan.reload_every.as_secs(),
            table(
                &[
                    "target",
                    "paced requests/s",
                    "connections",
                    "requests/s",
                    "requests",
                    "worst p99 ms",
                    "wrk errors",
                    "not reaching the app",
                    "5xx",
                ],
                &load_rows
            ),
            table(&op_head, &op_rows),
            plan.sample_every.as_secs(),
            plan.baseline_at.as_secs(),
            table(
                &[
                    "target",
                    "RSS at start MiB",
                    "RSS at baseline MiB",
                    "RSS at end MiB",
                    "peak RSS MiB",
                    "growth",
                    "open fds at start",
                    "open fds at end",
                ],
                &memory_rows
            ),
            table(&rss_head, &rss_rows),
        ),
    );
    Ok(())
}

/// Descriptors an idle gateway may hold at the end beyond those it held at the
/// start and one per paced connection: connections to the simulator and Redis.
const FD_SLACK: usize = 32;

/// The columns of the RSS table (its chart's series), in the gateways' order.
pub const RSS_COLUMNS: [&str; 2] = [
    "gateway, cookie sessions MiB",
    "gateway, Redis sessions MiB",
];

/// The RSS table is thinned to about this many rows (every sample counts for
/// the figures).
const MAX_RSS_ROWS: usize = 60;

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Full-speed load on every gateway at once, for `duration`, each with a fresh
/// session: each gateway's figures.
fn full_load(
    ctx: &Ctx,
    gateways: &[Soaked],
    sso: &str,
    duration: Duration,
) -> Result<Vec<Sample>, String> {
    let loads = gateways
        .iter()
        .map(|g| {
            let url = g.gw.url("/");
            // Not the soak's operations: those are counted from the soak's start.
            let cookie = ctx.load_session(&url, sso, &Ops::default())?;
            Ok((
                url,
                Load {
                    connections: ctx.o.connections,
                    threads: 2,
                    duration,
                    headers: vec![format!("Cookie: {cookie}")],
                    delay_ms: 0,
                    cookies: None,
                },
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let samples = thread::scope(|s| {
        let runs: Vec<_> = loads
            .iter()
            .map(|(url, load)| s.spawn(move || ctx.wrk.run(url, load)))
            .collect();
        runs.into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| Err("a wrk thread failed".into()))
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(samples)
}

/// The paced load of one gateway until `deadline`, in stretches.
fn paced(ctx: &Ctx, g: &Soaked, l: &mut Loaded, sso: &str, deadline: Instant) {
    let url = g.gw.url("/");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_secs(1) {
            return;
        }
        let stretch = Duration::from_secs(left.min(ctx.plan.stretch).as_secs());
        let cookie = match ctx.load_session(&url, sso, &g.ops) {
            Ok(c) => c,
            Err(e) => {
                g.ops.error(format!("a session for the load: {e}"));
                thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let load = Load {
            connections: l.connections,
            threads: 2,
            duration: stretch,
            headers: vec![format!("Cookie: {cookie}")],
            delay_ms: DELAY_MS,
            cookies: None,
        };
        let began = Instant::now();
        match ctx.wrk.run(&url, &load) {
            Ok(s) => {
                l.secs += began.elapsed().as_secs_f64();
                l.samples.push(s);
            }
            Err(e) => g.ops.error(format!("wrk: {e}")),
        }
    }
}

/// RSS of each of `pids` every `every` until `stop`: (seconds since `started`,
/// KiB per pid).
fn sample_rss(
    pids: &[u32],
    every: Duration,
    started: Instant,
    stop: &AtomicBool,
) -> Vec<(f64, Vec<u64>)> {
    let mut out = Vec::new();
    let mut next = started;
    loop {
        out.push((
            started.elapsed().as_secs_f64(),
            pids.iter().map(|p| rss_kib(*p)).collect(),
        ));
        next += every;
        while Instant::now() < next {
            if stop.load(Relaxed) {
                return out;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A SIGHUP to each of `pids` every `every`, the last one at least 2 s before
/// `deadline` (so it is done when the soak ends): how many each got.
fn reload(pids: &[u32], every: Duration, deadline: Instant, stop: &AtomicBool) -> u64 {
    let mut sent = 0;
    let mut next = Instant::now() + every;
    while next + Duration::from_secs(2) <= deadline {
        while Instant::now() < next {
            if stop.load(Relaxed) {
                return sent;
            }
            thread::sleep(Duration::from_millis(50));
        }
        for pid in pids {
            // kill(1) as the harness stops its servers: no unsafe libc call.
            let _ = Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        sent += 1;
        next += every;
    }
    sent
}

/// A session of the mixed-in operations, waiting for its refresh point.
struct Live {
    /// Its own SSO session at the simulator (`oa_sso=…`).
    sso: String,
    jar: Jar,
    since: Instant,
}

/// The mixed-in operations on the gateway at `url` until `deadline`: a login
/// per round; the oldest session, once due, refreshed and then ended.
async fn churn(
    client: Client,
    sim: Sim,
    url: String,
    ops: Arc<Ops>,
    refresh_after: Duration,
    pause: Duration,
    deadline: Instant,
) {
    let sim_url = sim.base_url();
    let mut waiting: VecDeque<Live> = VecDeque::new();
    let mut ended = 0_u64;
    while Instant::now() < deadline {
        match fresh_login(&client, &sim_url, &url).await {
            Ok(live) => {
                ops.logins.fetch_add(1, Relaxed);
                match serves_alice(&client, &url, &live.jar).await {
                    Ok(_) => {
                        ops.authenticated.fetch_add(1, Relaxed);
                        waiting.push_back(live);
                    }
                    Err(e) => ops.error(format!("a fresh session: {e}")),
                }
            }
            Err(e) => ops.error(format!("login: {e}")),
        }
        // A second past the refresh point: the gateway counts whole seconds.
        let due = waiting
            .front()
            .is_some_and(|l| l.since.elapsed() >= refresh_after + Duration::from_secs(1));
        if due {
            if let Some(live) = waiting.pop_front() {
                ended += 1;
                refresh_and_end(&client, &sim, &url, &ops, live, ended.is_multiple_of(2)).await;
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// A whole login from an SSO session of its own (so that its `sid` is its own).
async fn fresh_login(client: &Client, sim_url: &str, url: &str) -> Result<Live, String> {
    let sso = login::sso_session(client, sim_url).await?;
    let (callback, mut jar) = login::to_callback(client, url, sim_url, &sso).await?;
    let resp = get(client, &callback, &jar.header(), None).await?;
    if !resp.status().is_redirection() {
        return Err(format!("the callback answered {}", resp.status()));
    }
    jar.absorb(resp.headers());
    Ok(Live {
        sso,
        jar,
        since: Instant::now(),
    })
}

/// The session's refresh (a request past its refresh point, then one with the
/// cookie it got), then its end by logout or back-channel logout, then a check
/// that it is refused.
async fn refresh_and_end(
    client: &Client,
    sim: &Sim,
    url: &str,
    ops: &Ops,
    mut live: Live,
    by_logout: bool,
) {
    for step in ["the refresh", "after the refresh"] {
        match serves_alice(client, url, &live.jar).await {
            Ok(resp) => {
                ops.authenticated.fetch_add(1, Relaxed);
                if step == "the refresh" {
                    ops.refreshes.fetch_add(1, Relaxed);
                }
                live.jar.absorb(resp.headers());
            }
            Err(e) => {
                ops.error(format!("{step}: {e}"));
                return;
            }
        }
    }
    let ended = if by_logout {
        logout(client, sim, url, &live)
            .await
            .map(|()| ops.logouts.fetch_add(1, Relaxed))
            .map_err(|e| format!("logout: {e}"))
    } else {
        backchannel(sim, url, &live)
            .await
            .map(|()| ops.backchannel.fetch_add(1, Relaxed))
            .map_err(|e| format!("back-channel logout: {e}"))
    };
    if let Err(e) = ended {
        ops.error(e);
        return;
    }
    match get(client, url, &live.jar.header(), None).await {
        Ok(r) if r.status() == StatusCode::OK => ops.error(format!(
            "a session ended by {} was still served",
            if by_logout {
                "logout"
            } else {
                "back-channel logout"
            }
        )),
        Ok(r) if r.status().is_redirection() || r.status() == StatusCode::UNAUTHORIZED => {
            ops.refused_after_end.fetch_add(1, Relaxed);
        }
        Ok(r) => ops.error(format!("an ended session got {}", r.status())),
        Err(e) => ops.error(e),
    }
}

/// The user's logout: the gateway's (same-origin, so no confirmation page), then
/// OneAccess's global logout it redirects to, which ends the SSO session and posts
/// a logout token to every gateway before it answers.
async fn logout(client: &Client, sim: &Sim, url: &str, live: &Live) -> Result<(), String> {
    let at = format!("{}_sso/logout", url);
    let resp = get(client, &at, &live.jar.header(), Some("same-origin")).await?;
    let to = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !resp.status().is_redirection() || !to.starts_with(&sim.base_url()) {
        return Err(format!(
            "{at} answered {} to {to:?}, not a redirect to OneAccess",
            resp.status()
        ));
    }
    let resp = get(client, &to, &live.sso, None).await?;
    if !resp.status().is_redirection() {
        return Err(format!("OneAccess's logout answered {}", resp.status()));
    }
    Ok(())
}

/// A logout token for the session's `sid` (and Alice's `sub`), as OneAccess
/// signs them, posted to the gateway's back-channel logout URL.
async fn backchannel(sim: &Sim, url: &str, live: &Live) -> Result<(), String> {
    let id = live
        .sso
        .strip_prefix(SSO_COOKIE)
        .and_then(|v| v.strip_prefix('='))
        .unwrap_or("");
    let sid = sim
        .sso_session_sid(id)
        .ok_or("the simulator knows no such SSO session")?;
    let token = sim.mint_logout_token(Some(ALICE_ID), Some(&sid));
    let (status, body) = sim
        .send_backchannel_logout(&format!("{url}_sso/backchannel-logout"), &token)
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("answered {status}: {body}"));
    }
    Ok(())
}

/// Requests `url` with the session: it must reach the app as Alice.
async fn serves_alice(client: &Client, url: &str, jar: &Jar) -> Result<Response, String> {
    let resp = get(client, url, &jar.header(), None).await?;
    let seen = resp
        .headers()
        .get("x-seen-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if resp.status() != StatusCode::OK || seen != ALICE_ID {
        return Err(format!(
            "{url} answered {} and the app saw {seen:?}",
            resp.status()
        ));
    }
    Ok(resp)
}

/// A browser's navigation to `url`, with `cookie` and, when given, its
/// `Sec-Fetch-Site`.
async fn get(
    client: &Client,
    url: &str,
    cookie: &str,
    fetch_site: Option<&str>,
) -> Result<Response, String> {
    let mut req = client
        .get(url)
        .header("Accept", "text/html,application/xhtml+xml");
    if !cookie.is_empty() {
        req = req.header(COOKIE, cookie);
    }
    if let Some(site) = fetch_site {
        req = req.header("Sec-Fetch-Site", site);
    }
    req.send().await.map_err(|e| format!("GET {url}: {e}"))
}

/// RSS figures of one gateway over the soak, in KiB.
struct Growth {
    start: u64,
    /// The sample at the baseline (the end of the first minute).
    base: u64,
    end: u64,
    peak: u64,
}

impl Growth {
    fn of(samples: &[(f64, Vec<u64>)], i: usize, baseline_at: Duration) -> Growth {
        let at = |k: usize| samples.get(k).and_then(|(_, v)| v.get(i).copied());
        let base_k = samples
            .iter()
            .position(|(t, _)| *t >= baseline_at.as_secs_f64())
            .unwrap_or(0);
        Growth {
            start: at(0).unwrap_or(0),
            base: at(base_k).unwrap_or(0),
            end: samples.len().checked_sub(1).and_then(at).unwrap_or(0),
            peak: samples
                .iter()
                .skip(base_k)
                .filter_map(|(_, v)| v.get(i).copied())
                .max()
                .unwrap_or(0),
        }
    }

    fn percent(&self) -> f64 {
        if self.base == 0 {
            return 0.0;
        }
        (self.end as f64 - self.base as f64) / self.base as f64 * 100.0
    }
}

/// What a gateway's `/metrics` counts, summed over its routes.
#[derive(Debug, Default, Clone, PartialEq)]
struct Metrics {
    /// Requests by outcome.
    outcomes: HashMap<String, u64>,
    server_errors: u64,
    token_calls: u64,
    logins: u64,
    reloads_ok: u64,
    reloads_rejected: u64,
}

/// The difference of two readings.
struct Delta {
    authenticated: u64,
    server_errors: u64,
    token_calls: u64,
    logins: u64,
    reloads_ok: u64,
    reloads_rejected: u64,
}

impl Delta {
    /// The token endpoint is called once per login and once per refresh.
    fn refreshes(&self) -> u64 {
        self.token_calls.saturating_sub(self.logins)
    }
}

impl Metrics {
    fn of(page: &str) -> Metrics {
        let mut m = Metrics::default();
        for line in page.lines() {
            let Some(labels) = line.strip_prefix("oneaccess_gateway_requests_total{") else {
                continue;
            };
            let Some((labels, value)) = labels.rsplit_once("} ") else {
                continue;
            };
            let n: u64 = value.trim().parse().unwrap_or(0);
            if let Some(outcome) = label(labels, "outcome") {
                *m.outcomes.entry(outcome.to_string()).or_default() += n;
            }
            if label(labels, "status").is_some_and(|s| s.starts_with('5')) {
                m.server_errors += n;
            }
        }
        let value = |name: &str| metric(page, name).map_or(0, |v| v as u64);
        m.token_calls = value(
            "oneaccess_gateway_idp_request_duration_seconds_count{endpoint=\"token endpoint\"}",
        );
        m.logins = value("oneaccess_gateway_logins_completed_total{protocol=\"oidc\"}")
            + page
                .lines()
                .filter(|l| l.starts_with("oneaccess_gateway_logins_failed_total{"))
                .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<u64>().ok())
                .sum::<u64>();
        m.reloads_ok = value("oneaccess_gateway_config_reloads_total{result=\"ok\"}");
        m.reloads_rejected = value("oneaccess_gateway_config_reloads_total{result=\"rejected\"}");
        m
    }

    fn since(&self, before: &Metrics) -> Delta {
        let outcome = |m: &Metrics, k: &str| m.outcomes.get(k).copied().unwrap_or(0);
        Delta {
            authenticated: outcome(self, "authenticated")
                .saturating_sub(outcome(before, "authenticated")),
            server_errors: self.server_errors.saturating_sub(before.server_errors),
            token_calls: self.token_calls.saturating_sub(before.token_calls),
            logins: self.logins.saturating_sub(before.logins),
            reloads_ok: self.reloads_ok.saturating_sub(before.reloads_ok),
            reloads_rejected: self
                .reloads_rejected
                .saturating_sub(before.reloads_rejected),
        }
    }
}

/// The value of label `name` in `a="x",b="y"` (values hold no quotes here).
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_gateways_counters() {
        let page = "\
oneaccess_gateway_requests_total{route=\"r0\",status=\"200\",outcome=\"authenticated\"} 10
oneaccess_gateway_requests_total{route=\"r1\",status=\"200\",outcome=\"authenticated\"} 5
oneaccess_gateway_requests_total{route=\"r0\",status=\"302\",outcome=\"login_required\"} 3
oneaccess_gateway_requests_total{route=\"r0\",status=\"502\",outcome=\"upstream_error\"} 2
oneaccess_gateway_idp_request_duration_seconds_count{endpoint=\"token endpoint\"} 9
oneaccess_gateway_logins_completed_total{protocol=\"oidc\"} 6
oneaccess_gateway_logins_failed_total{protocol=\"oidc\",reason=\"unknown_state\"} 1
oneaccess_gateway_config_reloads_total{result=\"ok\"} 4
oneaccess_gateway_config_reloads_total{result=\"rejected\"} 0
";
        let m = Metrics::of(page);
        assert_eq!(m.outcomes.get("authenticated"), Some(&15));
        assert_eq!(m.outcomes.get("login_required"), Some(&3));
        assert_eq!(m.server_errors, 2);
        assert_eq!(m.token_calls, 9);
        assert_eq!(m.logins, 7);
        assert_eq!(m.reloads_ok, 4);
        let d = m.since(&Metrics::default());
        assert_eq!(d.refreshes(), 2);
        assert_eq!(d.authenticated, 15);
        let back = Metrics::default().since(&m);
        assert_eq!(back.authenticated, 0);
    }

    #[test]
    fn growth_counts_from_the_baseline_to_the_end() {
        let samples: Vec<(f64, Vec<u64>)> = vec![
            (0.0, vec![1000, 10]),
            (30.0, vec![2000, 20]),
            (60.0, vec![4000, 40]),
            (90.0, vec![4400, 40]),
            (120.0, vec![4100, 41]),
        ];
        let g = Growth::of(&samples, 0, Duration::from_secs(60));
        assert_eq!((g.start, g.base, g.end, g.peak), (1000, 4000, 4100, 4400));
        assert!((g.percent() - 2.5).abs() < 1e-9);
        let g = Growth::of(&samples, 1, Duration::from_secs(60));
        assert!((g.percent() - 2.5).abs() < 1e-9);
        assert_eq!(Growth::of(&[], 0, Duration::ZERO).percent(), 0.0);
    }

    #[test]
    fn the_plan_keeps_each_stretch_before_its_refresh() {
        for quick in [true, false] {
            let o = crate::Options::parse_from(if quick {
                vec!["x", "--mode", "soak", "--quick"]
            } else {
                vec!["x", "--mode", "soak"]
            })
            .unwrap();
            let p = Plan::new(&o);
            assert!(p.stretch.as_secs() + 2 <= p.refresh_after, "{quick}");
            assert!(p.peak <= p.stretch);
            assert!(p.baseline_at <= p.soak);
        }
    }
}
