//! A whole run: starts the servers, logs in to each site as Alice, then the
//! throughput rounds (all targets in turn, several times), the same at half the
//! gateway's peak rate for latency, the logins, and the capacity mode.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Client;
use tokio::runtime::Runtime;

use crate::login::{self, ALICE_ID, ALICE_LOGIN};
use crate::logins;
use crate::pin::{self, Pinning};
use crate::procs::{cpu_ticks, tree, usage_of, PeakSampler, Proc, Usage};
use crate::report::{table, Report};
use crate::targets::{metric, upstream_requests, Gateway, Harness};
use crate::wrk::{Load, Sample, Wrk};
use crate::Options;

/// The rows that the others are compared with.
const DIRECT: &str = "upstream app, direct (the ceiling)";
const NGINX: &str = "nginx proxy_pass, no auth";
const FLOOR: &str = "Pingora floor: one ProxyHttp, peer only";
const GATEWAY_PUBLIC: &str = "gateway, public route";
const GATEWAY_COOKIE: &str = "gateway, OIDC session cookie, 3 headers";
const GATEWAY_CAS: &str = "gateway, CAS session cookie, 3 headers";
const GATEWAY_REDIS: &str = "gateway, Redis session, 3 headers";
const APACHE_OPENIDC: &str = "Apache + mod_auth_openidc, session cookie";
const APACHE_CAS: &str = "Apache + mod_auth_cas, session cookie";

/// The figures of the target named `name`.
fn of<'f>(targets: &[Target], figures: &'f [Figures], name: &str) -> Result<&'f Figures, String> {
    targets
        .iter()
        .position(|t| t.name == name)
        .and_then(|i| figures.get(i))
        .ok_or_else(|| format!("no target {name:?} in this run"))
}

/// One row of the throughput table: a URL, whether it needs a session, and the server
/// whose memory and CPU are reported for it.
struct Target<'a> {
    name: &'static str,
    url: String,
    /// Needs a session, with which the app must see Alice as this user: she logs
    /// in anew before each load (mod_auth_openidc re-issues a session cookie
    /// older than 60 s on every request, which wrk would never take up).
    login: Option<&'static str>,
    server: &'a Proc,
}

/// A target's figures over all rounds.
#[derive(Default)]
struct Figures {
    samples: Vec<Sample>,
    /// Requests that wrk counted as answered but the app never saw.
    not_forwarded: u64,
    cpu_us_per_request: Vec<f64>,
    /// The same split: in user space, in the kernel; and context switches.
    user_us_per_request: Vec<f64>,
    sys_us_per_request: Vec<f64>,
    switches_per_request: Vec<f64>,
    peak_pss_kib: u64,
}

impl Figures {
    fn median(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        median(self.samples.iter().map(f).collect())
    }

    /// The median over the rounds of a per-request series.
    fn median_of(v: &[f64]) -> f64 {
        median(v.to_vec())
    }

    fn errors(&self) -> u64 {
        self.samples.iter().map(|s| s.errors).sum::<u64>() + self.not_forwarded
    }
}

pub fn run(o: &Options) -> Result<(), String> {
    let mut report = Report::default();
    // The machine's, before pinning leaves this thread one.
    report.cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    // First, before any thread or child is made: they inherit the harness's CPU.
    let pinning = if o.pin {
        let p = pin::plan(&pin::allowed_cpus()?)?;
        p.pin_harness()?;
        Some(p)
    } else {
        None
    };
    let Harness {
        dir,
        setup,
        wrk,
        rt,
        client,
    } = Harness::start(o, pinning)?;
    report.preamble(match &pinning {
        Some(p) => format!("Mode: {p} (`--pin`)."),
        None => "Mode: not pinned: every process may run on every CPU.".to_string(),
    });

    println!("starting the servers in {}", dir.display());
    let result = (|| {
        let upstream = setup.upstream()?;
        let sim = setup.sim()?;
        let sim_url = format!("http://127.0.0.1:{}", sim.port);
        let redis = setup.redis()?;
        let gateway = setup.gateway("gateway", &sim_url, upstream.port, None)?;
        let gateway_redis =
            setup.gateway("gateway-redis", &sim_url, upstream.port, Some(redis.port))?;
        let nginx = setup.nginx_proxy(upstream.port)?;
        let floor = setup.floor(upstream.port)?;
        let apache = setup.apache(&sim_url, upstream.port)?;
        let cas_front = setup.cas_front(sim.port)?;
        let apache_cas = setup.apache_cas(&sim_url, &cas_front, upstream.port)?;
        if let Some(p) = &pinning {
            check_pinned(
                p,
                &[
                    &nginx,
                    &floor,
                    &apache.proc,
                    &apache_cas.proc,
                    &gateway.proc,
                    &gateway_redis.proc,
                ],
            )?;
        }
        let sso = rt.block_on(login::sso_session(&client, &sim_url))?;
        let site = Sites {
            rt: &rt,
            client: &client,
            sim: &sim,
            sim_url: &sim_url,
            sso: &sso,
            upstream: &upstream,
            wrk_threads: if pinning.is_some() { 1 } else { 2 },
            pinning,
        };
        let targets = vec![
            Target {
                name: DIRECT,
                url: format!("http://127.0.0.1:{}/", upstream.port),
                login: None,
                server: &upstream,
            },
            Target {
                name: NGINX,
                url: format!("http://127.0.0.1:{}/", nginx.port),
                login: None,
                server: &nginx,
            },
            Target {
                name: FLOOR,
                url: format!("http://127.0.0.1:{}/", floor.port),
                login: None,
                server: &floor,
            },
            Target {
                name: APACHE_OPENIDC,
                url: apache.url("/"),
                login: Some(ALICE_ID),
                server: &apache.proc,
            },
            Target {
                name: APACHE_CAS,
                url: apache_cas.url("/"),
                login: Some(ALICE_LOGIN),
                server: &apache_cas.proc,
            },
            Target {
                name: GATEWAY_PUBLIC,
                url: gateway.url("/public/"),
                login: None,
                server: &gateway.proc,
            },
            Target {
                name: GATEWAY_COOKIE,
                url: gateway.url("/"),
                login: Some(ALICE_ID),
                server: &gateway.proc,
            },
            Target {
                name: GATEWAY_CAS,
                url: gateway.url("/cas/"),
                login: Some(ALICE_LOGIN),
                server: &gateway.proc,
            },
            Target {
                name: GATEWAY_REDIS,
                url: gateway_redis.url("/"),
                login: Some(ALICE_ID),
                server: &gateway_redis.proc,
            },
        ];
        if o.mode == "serve" {
            return serve(&site, &targets, &dir);
        }
        if o.mode == "all" || o.mode == "proxy" {
            throughput(o, &wrk, &site, &targets, &mut report)?;
        }
        if o.mode == "all" || o.mode == "logins" {
            logins_mode(o, &site, &gateway, &mut report)?;
        }
        if o.mode == "all" || o.mode == "capacity" {
            capacity(
                o,
                &wrk,
                &site,
                &[&gateway, &gateway_redis],
                &redis,
                &mut report,
            )?;
        }
        Ok::<(), String>(())
    })();
    // `serve` measures nothing: the last report stays where it is.
    if o.mode == "serve" {
        return match result {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(&dir);
                Ok(())
            }
            Err(e) => Err(format!("{e}; the servers' logs are in {}", dir.display())),
        };
    }
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

/// Checks that every process and thread of each pinned server is on the proxy's
/// CPU alone: a server that set its own affinity would measure something else.
fn check_pinned(p: &Pinning, servers: &[&Proc]) -> Result<(), String> {
    let want = p.proxy.to_string();
    for server in servers {
        let lists = pin::cpus_of_tree(&tree(server.pid()));
        if lists != [want.as_str()] {
            return Err(format!(
                "pid {} is not on CPU {want} alone: its threads may use CPUs {lists:?}",
                server.pid()
            ));
        }
    }
    Ok(())
}

/// Leaves the servers running, with a session for each target that needs one,
/// until Enter: for profiling one of them under a load of one's own.
fn serve(site: &Sites, targets: &[Target], dir: &std::path::Path) -> Result<(), String> {
    println!("\nThe servers run until you press Enter. Load one with, for example:\n");
    for (i, t) in targets.iter().enumerate() {
        let cookie = if let Some(user) = t.login {
            let file = dir.join(format!("cookie-{i}.txt"));
            let value = site.session(&t.url, user)?;
            std::fs::write(&file, &value).map_err(|e| format!("{}: {e}", file.display()))?;
            format!(" -H \"Cookie: $(cat {})\"", file.display())
        } else {
            String::new()
        };
        println!("# {} (pid {})", t.name, t.server.pid());
        // Pinned, the load stays off the proxy's CPU, as in the measured rounds.
        let taskset = site
            .pinning
            .map(|p| format!("taskset -c {} ", p.rest))
            .unwrap_or_default();
        println!(
            "{taskset}wrk -t{} -c64 -d10s{cookie} {}\n",
            site.wrk_threads, t.url
        );
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// What the modes share: the runtime, the client, the simulator and Alice's SSO
/// session there.
struct Sites<'a> {
    rt: &'a Runtime,
    client: &'a Client,
    sim: &'a Proc,
    sim_url: &'a str,
    sso: &'a str,
    upstream: &'a Proc,
    /// wrk's threads: 2, or 1 when pinned (it has one CPU, shared).
    wrk_threads: u32,
    pinning: Option<Pinning>,
}

impl Sites<'_> {
    /// Logs Alice in to `url` and checks that the session reaches the app as her
    /// (as `user`).
    fn session(&self, url: &str, user: &str) -> Result<String, String> {
        self.rt.block_on(async {
            let cookie = login::login(self.client, url, self.sim_url, self.sso).await?;
            login::check_session(self.client, url, &cookie, user).await?;
            Ok(cookie)
        })
    }

    fn upstream_requests(&self) -> Result<u64, String> {
        self.rt
            .block_on(upstream_requests(self.client, self.upstream.port))
    }
}

/// One load of one target: wrk's figures, plus the app's own count (a proxy that
/// answered by itself, with a redirect to log in say, would look fast to wrk).
fn measure(
    wrk: &Wrk,
    site: &Sites,
    t: &Target,
    load: &Load,
    figures: &mut Figures,
) -> Result<(), String> {
    let load = with_session(site, load, t)?;
    let before_app = site.upstream_requests()?;
    let before: Usage = t.server.usage();
    let sampler = PeakSampler::start(t.server.pid());
    let sample = wrk.run(&t.url, &load)?;
    let peak = sampler.finish();
    let after = t.server.usage();
    let seen = site.upstream_requests()?.saturating_sub(before_app + 1);
    figures.not_forwarded += sample.requests.saturating_sub(seen);
    figures.peak_pss_kib = figures.peak_pss_kib.max(peak);
    if sample.requests > 0 {
        let d = after.since(&before);
        let n = sample.requests as f64;
        // A clock tick is 10 ms.
        let per_request = |ticks: u64| ticks as f64 * 10_000.0 / n;
        figures.cpu_us_per_request.push(per_request(d.cpu_ticks));
        figures.user_us_per_request.push(per_request(d.user_ticks));
        figures.sys_us_per_request.push(per_request(d.sys_ticks));
        figures.switches_per_request.push(d.switches() as f64 / n);
    }
    figures.samples.push(sample);
    Ok(())
}

/// Every target under `load`, in turn, `o.rounds` times: each target's figures.
fn interleaved(
    o: &Options,
    wrk: &Wrk,
    site: &Sites,
    targets: &[Target],
    load: &Load,
    label: &str,
) -> Result<Vec<Figures>, String> {
    let mut figures: Vec<Figures> = targets.iter().map(|_| Figures::default()).collect();
    for round in 1..=o.rounds {
        for (t, f) in targets.iter().zip(figures.iter_mut()) {
            println!("{label} {round}/{}: {}", o.rounds, t.name);
            measure(wrk, site, t, load, f)?;
        }
    }
    Ok(figures)
}

fn throughput(
    o: &Options,
    wrk: &Wrk,
    site: &Sites,
    targets: &[Target],
    report: &mut Report,
) -> Result<(), String> {
    let peak_load = Load {
        connections: o.connections,
        threads: site.wrk_threads,
        duration: o.duration,
        headers: Vec::new(),
        delay_ms: 0,
        cookies: None,
    };
    let warm = Load {
        duration: o.warmup,
        ..peak_load.clone()
    };
    println!("warming up each target for {:?}", o.warmup);
    for t in targets {
        wrk.run(&t.url, &with_session(site, &warm, t)?)?;
    }
    let peak = interleaved(o, wrk, site, targets, &peak_load, "round")?;
    let nginx_rps = of(targets, &peak, NGINX)?.median(|s| s.rps);
    let floor_rps = of(targets, &peak, FLOOR)?.median(|s| s.rps);
    let rows: Vec<Vec<String>> = targets
        .iter()
        .zip(&peak)
        .map(|(t, f)| throughput_row(t.name, f, nginx_rps, floor_rps))
        .collect();
    report.section(
        "Throughput",
        format!(
            "wrk, {} connections, {} thread(s), {} s per round, {} interleaved round(s) after a \
             {} s warm-up of each; medians over the rounds. Proxies get {} worker \
             thread(s)/process(es){}; the Pingora floor is the smallest Pingora proxy, built as the \
             gateway is (same Pingora, features, allocator, release profile, threads), and \
             \"× floor\" is each gateway row's requests/s over its. CPU is the proxy's own \
             (user + system) per request, then split into user and system time; context \
             switches are its threads' (voluntary and not) per request; memory is the peak \
             proportional set size of the proxy's processes.\n\n{}",
            o.connections,
            site.wrk_threads,
            o.duration.as_secs(),
            o.rounds,
            o.warmup.as_secs(),
            o.workers,
            match &site.pinning {
                Some(p) => format!(
                    ", each on CPU {} alone, and wrk, the upstream and the simulator share CPU {} \
                     (`--pin`)",
                    p.proxy, p.rest
                ),
                None => ", not pinned: every process may run on every CPU".to_string(),
            },
            table(&THROUGHPUT_HEAD, &rows)
        ),
    );
    for (t, f) in targets.iter().zip(&peak) {
        if f.errors() > 0 {
            report.problem(format!(
                "{}: {} errors ({} answered without reaching the app)",
                t.name,
                f.errors(),
                f.not_forwarded
            ));
        }
    }
    // nginx is the limit, reported, not a target: the targets measure what is the
    // gateway's own, against Pingora's floor and its own public route.
    let auth = of(targets, &peak, GATEWAY_COOKIE)?.median(|s| s.rps);
    for (gateway, what, floor) in [
        (GATEWAY_COOKIE, "OIDC session cookie", 1.0),
        (GATEWAY_REDIS, "Redis session", 0.9),
    ] {
        let ratio = of(targets, &peak, gateway)?.median(|s| s.rps) / floor_rps.max(1e-9);
        report.target(
            ratio >= floor,
            format!("{what} rps ≥ {floor:.1}× the Pingora floor: {ratio:.2}×"),
        );
    }
    let cpu =
        |name: &str| of(targets, &peak, name).map(|f| Figures::median_of(&f.cpu_us_per_request));
    let (auth_cpu, public_cpu) = (cpu(GATEWAY_COOKIE)?, cpu(GATEWAY_PUBLIC)?);
    report.target(
        auth_cpu <= 1.10 * public_cpu,
        format!(
            "authenticated CPU per request ≤ 1.10× the public route's: {:.2}× ({auth_cpu:.1} \
             against {public_cpu:.1} µs)",
            auth_cpu / public_cpu.max(1e-9)
        ),
    );
    // Against the peers doing the same work, each with a session of its protocol.
    for (gateway, peer, what) in [
        (GATEWAY_COOKIE, APACHE_OPENIDC, "OIDC"),
        (GATEWAY_CAS, APACHE_CAS, "CAS"),
    ] {
        let ratio = of(targets, &peak, gateway)?.median(|s| s.rps)
            / of(targets, &peak, peer)?.median(|s| s.rps).max(1e-9);
        report.target(
            ratio >= 5.0,
            format!(
                "{what} session rps ≥ 5× {}: {ratio:.2}×",
                peer.trim_end_matches(", session cookie")
            ),
        );
    }

    // The same targets at a fixed rate: half the gateway's authenticated peak.
    let rate = (auth / 2.0).max(1.0);
    let delay_ms = 10;
    let paced = Load {
        connections: ((rate * delay_ms as f64 / 1000.0).round() as u32).max(1),
        delay_ms,
        ..peak_load.clone()
    };
    let half = interleaved(o, wrk, site, targets, &paced, "half load, round")?;
    let direct_p99 = of(targets, &half, DIRECT)?.median(|s| s.p99_ms);
    let rows: Vec<Vec<String>> = targets
        .iter()
        .zip(&half)
        .map(|(t, f)| {
            let p99 = f.median(|s| s.p99_ms);
            vec![
                t.name.to_string(),
                format!("{:.0}", f.median(|s| s.rps)),
                format!("{:.2}", f.median(|s| s.p50_ms)),
                format!("{p99:.2}"),
                format!("{:.2}", f.median(|s| s.p999_ms)),
                format!("{:+.2}", p99 - direct_p99),
                f.errors().to_string(),
            ]
        })
        .collect();
    report.section(
        "Latency at half load",
        format!(
            "Each target paced at about {rate:.0} requests/s (half the gateway's authenticated \
             peak): {} connections, each waiting {delay_ms} ms between requests. \
             \"p99 added\" is over the upstream app reached directly.\n\n{}",
            paced.connections,
            table(
                &[
                    "target",
                    "requests/s",
                    "p50 ms",
                    "p99 ms",
                    "p99.9 ms",
                    "p99 added ms",
                    "errors"
                ],
                &rows
            )
        ),
    );
    for (t, f) in targets.iter().zip(&half) {
        if f.errors() > 0 {
            report.problem(format!("{} at half load: {} errors", t.name, f.errors()));
        }
    }
    let added = of(targets, &half, GATEWAY_COOKIE)?.median(|s| s.p99_ms) - direct_p99;
    let nginx_added = of(targets, &half, NGINX)?.median(|s| s.p99_ms) - direct_p99;
    report.target(
        added <= nginx_added + 1.0,
        format!(
            "authenticated p99 added at half load ≤ nginx's + 1 ms: {added:+.2} ms \
             (nginx {nginx_added:+.2} ms)"
        ),
    );
    Ok(())
}

/// The throughput table's columns.
const THROUGHPUT_HEAD: [&str; 13] = [
    "target",
    "requests/s",
    "× nginx",
    "× floor",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "errors",
    "CPU µs/req",
    "user µs/req",
    "sys µs/req",
    "ctx switches/req",
    "peak MiB",
];

/// A target's row of the throughput table: "× floor" for the gateway's rows only.
fn throughput_row(name: &str, f: &Figures, nginx_rps: f64, floor_rps: f64) -> Vec<String> {
    let rps = f.median(|s| s.rps);
    let over_floor = if name.starts_with("gateway") {
        format!("{:.2}×", rps / floor_rps)
    } else {
        "—".to_string()
    };
    vec![
        name.to_string(),
        format!("{rps:.0}"),
        format!("{:.2}×", rps / nginx_rps),
        over_floor,
        format!("{:.2}", f.median(|s| s.p50_ms)),
        format!("{:.2}", f.median(|s| s.p99_ms)),
        format!("{:.2}", f.median(|s| s.p999_ms)),
        f.errors().to_string(),
        format!("{:.1}", Figures::median_of(&f.cpu_us_per_request)),
        format!("{:.1}", Figures::median_of(&f.user_us_per_request)),
        format!("{:.1}", Figures::median_of(&f.sys_us_per_request)),
        format!("{:.2}", Figures::median_of(&f.switches_per_request)),
        format!("{:.1}", f.peak_pss_kib as f64 / 1024.0),
    ]
}

/// The load, with a fresh session of Alice's when the target needs one (checked
/// to reach the app as her).
fn with_session(site: &Sites, load: &Load, t: &Target) -> Result<Load, String> {
    let mut load = load.clone();
    if let Some(user) = t.login {
        load.headers
            .push(format!("Cookie: {}", site.session(&t.url, user)?));
    }
    Ok(load)
}

/// Logins per second against the gateway: whole logins, then callbacks alone.
fn logins_mode(
    o: &Options,
    site: &Sites,
    gateway: &Gateway,
    report: &mut Report,
) -> Result<(), String> {
    let url = gateway.url("/");
    let concurrency = 32;
    // Warm-up: discovery and the JWKS are fetched here, once.
    let warm = site.rt.block_on(logins::whole(
        site.client,
        &url,
        site.sim_url,
        site.sso,
        4,
        o.warmup,
    ));
    if warm.ok == 0 {
        return Err(format!(
            "no login succeeded in the warm-up: {}",
            warm.first_error.unwrap_or_default()
        ));
    }
    let jwks_before = jwks_fetches(site, gateway)?;

    println!("logins: whole logins for {:?}", o.duration);
    let cpu = Cpu::start(&gateway.proc, site.sim);
    let whole = site.rt.block_on(logins::whole(
        site.client,
        &url,
        site.sim_url,
        site.sso,
        concurrency,
        o.duration,
    ));
    let whole_cpu = cpu.finish(whole.elapsed);

    // As many pending logins as the whole logins managed in the same time.
    let n = ((whole.rate() * o.duration.as_secs_f64()) as usize).clamp(200, 20_000);
    println!("logins: {n} callbacks");
    let pending = site.rt.block_on(logins::pending(
        site.client,
        &url,
        site.sim_url,
        site.sso,
        n,
        concurrency,
    ))?;
    let cpu = Cpu::start(&gateway.proc, site.sim);
    let callbacks = site
        .rt
        .block_on(logins::callbacks(site.client, pending, concurrency));
    let callback_cpu = cpu.finish(callbacks.elapsed);
    let jwks_after = jwks_fetches(site, gateway)?;

    let rows = [
        ("whole logins", &whole, &whole_cpu),
        ("callbacks only", &callbacks, &callback_cpu),
    ]
    .iter()
    .map(|(name, b, cpu)| {
        vec![
            name.to_string(),
            format!("{:.0}", b.rate()),
            b.ok.to_string(),
            b.failed.to_string(),
            format!("{:.0}%", cpu[0]),
            format!("{:.0}%", cpu[1]),
            format!("{:.0}%", cpu[2]),
            format!("{:.0}", cpu[0] / 100.0 * 1e6 / b.rate().max(1e-9)),
        ]
    })
    .collect::<Vec<_>>();
    report.section(
        "Logins",
        format!(
            "{concurrency} concurrent users, against the gateway's OIDC route. A whole login is \
             three requests (the gateway's redirect, the simulator's authorize with an SSO \
             session, the callback); the callback exchanges the code at the simulator's token \
             endpoint (an RS256 ID token signed there) and checks the ID token. \"Callbacks \
             only\" makes the pending logins first and times the callbacks. CPU is in % of one \
             core, per process, during the timed part.\n\n{}\n\
             JWKS fetches by the gateway after the warm-up: {}.\n",
            table(
                &[
                    "mode",
                    "logins/s",
                    "ok",
                    "failed",
                    "gateway CPU",
                    "simulator CPU",
                    "client CPU",
                    "gateway CPU µs/login",
                ],
                &rows
            ),
            jwks_after - jwks_before
        ),
    );
    for (name, b) in [("whole logins", &whole), ("callbacks", &callbacks)] {
        if b.failed > 0 {
            report.problem(format!(
                "{name}: {} failed, the first: {}",
                b.failed,
                b.first_error.clone().unwrap_or_default()
            ));
        }
    }
    if jwks_after != jwks_before {
        report.problem(format!(
            "the gateway fetched the JWKS {} time(s) after the warm-up",
            jwks_after - jwks_before
        ));
    }
    let sim_share = whole_cpu[1] / (whole_cpu[0] + whole_cpu[1] + whole_cpu[2]).max(1e-9);
    let per_login = whole_cpu[0] / 100.0 * 1e6 / whole.rate().max(1e-9);
    report.target(
        per_login <= 250.0,
        format!(
            "gateway CPU per whole login ≤ 250 µs: {per_login:.0} µs (≈ {:.0} logins/s per \
             core; {:.0}/s here, where the simulator used {:.0}% of the CPU the three processes \
             used)",
            whole.rate() / (whole_cpu[0] / 100.0).max(1e-9),
            whole.rate(),
            sim_share * 100.0,
        ),
    );
    Ok(())
}

fn jwks_fetches(site: &Sites, gateway: &Gateway) -> Result<u64, String> {
    let page = site.rt.block_on(gateway.metrics(site.client))?;
    metric(&page, "oneaccess_gateway_jwks_refreshes_total")
        .map(|v| v as u64)
        .ok_or_else(|| "the gateway's /metrics has no JWKS count".to_string())
}

/// CPU used over a stretch of time by the gateway, the simulator and this
/// process (without its children, which are the servers), in % of one core each.
struct Cpu {
    gateway: u32,
    sim: u32,
    before: [u64; 3],
}

impl Cpu {
    fn start(gateway: &Proc, sim: &Proc) -> Cpu {
        let (gateway, sim) = (gateway.pid(), sim.pid());
        Cpu {
            gateway,
            sim,
            before: Self::ticks(gateway, sim),
        }
    }

    fn ticks(gateway: u32, sim: u32) -> [u64; 3] {
        [
            usage_of(gateway).cpu_ticks,
            usage_of(sim).cpu_ticks,
            cpu_ticks(std::process::id()),
        ]
    }

    fn finish(self, elapsed: Duration) -> Vec<f64> {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let after = Self::ticks(self.gateway, self.sim);
        after
            .iter()
            .zip(self.before)
            .map(|(a, b)| a.saturating_sub(b) as f64 / 100.0 / secs * 100.0)
            .collect()
    }
}

/// Many connections over many sessions: the gateways' memory.
fn capacity(
    o: &Options,
    wrk: &Wrk,
    site: &Sites,
    gateways: &[&Gateway],
    redis: &Proc,
    report: &mut Report,
) -> Result<(), String> {
    let mut rows = Vec::new();
    for (gw, name) in gateways.iter().zip(["cookie sessions", "Redis sessions"]) {
        println!(
            "capacity: {} sessions on the gateway with {name}",
            o.sessions
        );
        let url = gw.url("/");
        // The peak counts from here: the 10,000 logins and the load, not the
        // earlier modes.
        gw.proc.reset_peak()?;
        let pending = site.rt.block_on(logins::pending(
            site.client,
            &url,
            site.sim_url,
            site.sso,
            o.sessions,
            64,
        ))?;
        let made = site
            .rt
            .block_on(logins::callbacks(site.client, pending, 64));
        if made.failed > 0 || made.cookies.len() != o.sessions {
            report.problem(format!(
                "capacity ({name}): {} of {} logins failed: {}",
                made.failed,
                o.sessions,
                made.first_error.clone().unwrap_or_default()
            ));
            continue;
        }
        let file: PathBuf = std::env::temp_dir().join(format!(
            "oneaccess-loadbench-{}-sessions-{}.txt",
            std::process::id(),
            gw.proc.port
        ));
        std::fs::write(&file, made.cookies.join("\n") + "\n")
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let load = Load {
            connections: o.capacity_connections,
            threads: site.wrk_threads,
            duration: o.duration,
            headers: Vec::new(),
            delay_ms: 0,
            cookies: Some(file.clone()),
        };
        let target = Target {
            name: "capacity",
            url,
            login: None,
            server: &gw.proc,
        };
        let mut f = Figures::default();
        measure(wrk, site, &target, &load, &mut f)?;
        let _ = std::fs::remove_file(&file);
        let usage = gw.proc.usage();
        let s = f.samples.first().copied().unwrap_or_default();
        if f.errors() > 0 {
            report.problem(format!("capacity ({name}): {} errors", f.errors()));
        }
        let hwm_mib = usage.root_hwm_kib as f64 / 1024.0;
        report.target(
            hwm_mib <= 64.0,
            format!(
                "gateway ({name}) peak RSS ≤ 64 MiB with {} connections and {} sessions: \
                 {hwm_mib:.1} MiB",
                o.capacity_connections, o.sessions
            ),
        );
        rows.push(vec![
            format!("gateway, {name}"),
            format!("{:.0}", s.rps),
            format!("{:.2}", s.p99_ms),
            f.errors().to_string(),
            format!("{hwm_mib:.1}"),
            format!("{:.1}", usage.pss_kib as f64 / 1024.0),
        ]);
    }
    report.section(
        "Capacity",
        format!(
            "{} open connections (wrk), each request with the next of {} distinct session \
             cookies, {} s. Peak RSS is the gateway process's VmHWM from the start of its \
             logins (reset through /proc/PID/clear_refs) to the end of the load. Redis held \
             the server-side sessions: {:.1} MiB (PSS) at the end.\n\n{}",
            o.capacity_connections,
            o.sessions,
            o.duration.as_secs(),
            redis.usage().pss_kib as f64 / 1024.0,
            table(
                &[
                    "target",
                    "requests/s",
                    "p99 ms",
                    "errors",
                    "peak RSS MiB",
                    "memory now MiB (PSS)"
                ],
                &rows
            )
        ),
    );
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(rps: &[f64], cpu: &[f64], user: &[f64], sys: &[f64], sw: &[f64]) -> Figures {
        Figures {
            samples: rps
                .iter()
                .map(|&r| Sample {
                    rps: r,
                    ..Sample::default()
                })
                .collect(),
            cpu_us_per_request: cpu.to_vec(),
            user_us_per_request: user.to_vec(),
            sys_us_per_request: sys.to_vec(),
            switches_per_request: sw.to_vec(),
            peak_pss_kib: 2048,
            ..Figures::default()
        }
    }

    #[test]
    fn a_gateway_row_has_its_ratio_to_the_floor_and_its_cpu_split() {
        let f = figures(
            &[9000.0, 10000.0, 11000.0],
            &[50.0, 60.0, 70.0],
            &[30.0, 35.0, 40.0],
            &[20.0, 25.0, 30.0],
            &[0.5, 0.25, 0.75],
        );
        let row = throughput_row(GATEWAY_COOKIE, &f, 20000.0, 12500.0);
        assert_eq!(row.len(), THROUGHPUT_HEAD.len());
        let cell = |head: &str| {
            let i = THROUGHPUT_HEAD.iter().position(|h| *h == head).unwrap();
            row[i].as_str()
        };
        assert_eq!(cell("target"), GATEWAY_COOKIE);
        assert_eq!(cell("requests/s"), "10000");
        assert_eq!(cell("× nginx"), "0.50×");
        assert_eq!(cell("× floor"), "0.80×");
        assert_eq!(cell("CPU µs/req"), "60.0");
        assert_eq!(cell("user µs/req"), "35.0");
        assert_eq!(cell("sys µs/req"), "25.0");
        assert_eq!(cell("ctx switches/req"), "0.50");
        assert_eq!(cell("peak MiB"), "2.0");
    }

    #[test]
    fn only_the_gateways_rows_have_a_ratio_to_the_floor() {
        let f = figures(&[12500.0], &[40.0], &[20.0], &[20.0], &[0.1]);
        for name in [
            DIRECT,
            NGINX,
            FLOOR,
            "Apache + mod_auth_openidc, session cookie",
        ] {
            assert_eq!(throughput_row(name, &f, 20000.0, 12500.0)[3], "—", "{name}");
        }
        assert_eq!(
            throughput_row(GATEWAY_PUBLIC, &f, 20000.0, 12500.0)[3],
            "1.00×"
        );
    }
}
