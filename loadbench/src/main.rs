//! `oneaccess-loadbench`: the gateway side by side with nginx and Apache
//! mod_auth_openidc on loopback, under the same load from `wrk`, against the same
//! upstream app, in interleaved rounds; then logins per second, then 1,000
//! connections over 10,000 sessions. Writes a Markdown report (see README).

mod login;
mod logins;
mod procs;
mod report;
mod rounds;
mod targets;
mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: oneaccess-loadbench [--mode all|proxy|logins|capacity|serve] [--duration SECS]
                           [--warmup SECS] [--rounds N] [--connections N]
                           [--workers N] [--sessions N] [--out FILE] [--quick]

  --mode         what to measure (default all); `serve` starts the servers,
                 logs in, prints wrk commands for each target and waits for
                 Enter (to profile one with perf under a load of your own)
  --duration     seconds per round (default 10)
  --warmup       seconds of warm-up per target (default 3)
  --rounds       interleaved rounds (default 3)
  --connections  open connections of the throughput rounds (default 64)
  --workers      worker threads/processes of each proxy (default: the CPU count)
  --sessions     distinct sessions of the capacity mode (default 10000)
  --capacity-connections  its open connections (default 1000)
  --out          the report (default bench-results/latest.md)
  --quick        a short run that checks the harness: 2 s rounds, 1 round,
                 300 sessions, 100 connections (its figures mean little)

Needs wrk, nginx, apache2 with mod_auth_openidc and redis-server
(./scripts/setup.sh installs them), and the release binaries
oneaccess-gateway and oneaccess-sim beside this one (./scripts/loadbench.sh
builds all three, then runs this).";

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: String,
    pub duration: Duration,
    pub warmup: Duration,
    pub rounds: u32,
    pub connections: u32,
    pub workers: u32,
    pub sessions: usize,
    pub capacity_connections: u32,
    pub out: PathBuf,
    pub quick: bool,
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    procs::stop_all_on_signal();
    match rounds::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("oneaccess-loadbench: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    let mut o = Options {
        mode: "all".into(),
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(3),
        rounds: 3,
        connections: 64,
        workers: cpus,
        sessions: 10_000,
        capacity_connections: 1000,
        out: PathBuf::from("bench-results/latest.md"),
        quick: false,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{name}: {v:?} is not a number\n{USAGE}"))
        }
        match arg.as_str() {
            "--mode" => {
                o.mode = value("--mode")?;
                if !["all", "proxy", "logins", "capacity", "serve"].contains(&o.mode.as_str()) {
                    return Err(format!("--mode: unknown mode {:?}\n{USAGE}", o.mode));
                }
            }
            "--duration" => {
                o.duration = Duration::from_secs(num("--duration", value("--duration")?)?)
            }
            "--warmup" => o.warmup = Duration::from_secs(num("--warmup", value("--warmup")?)?),
            "--rounds" => o.rounds = num("--rounds", value("--rounds")?)?,
            "--connections" => o.connections = num("--connections", value("--connections")?)?,
            "--workers" => o.workers = num("--workers", value("--workers")?)?,
            "--sessions" => o.sessions = num("--sessions", value("--sessions")?)?,
            "--capacity-connections" => {
                o.capacity_connections =
                    num("--capacity-connections", value("--capacity-connections")?)?
            }
            "--out" => o.out = PathBuf::from(value("--out")?),
            "--quick" => {
                o.quick = true;
                o.duration = Duration::from_secs(2);
                o.warmup = Duration::from_secs(1);
                o.rounds = 1;
                o.sessions = 300;
                o.capacity_connections = 100;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if o.rounds == 0 || o.connections == 0 || o.workers == 0 || o.sessions == 0 {
        return Err(format!("counts must be at least 1\n{USAGE}"));
    }
    Ok(o)
}
