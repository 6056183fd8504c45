//! The command line: the flags as clap reads them ([`Args`]), then the
//! [`Options`] of a run, with the defaults and `--quick` applied.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use crate::Options;

/// The modes of `--mode`.
const MODES: [&str; 6] = ["all", "proxy", "logins", "capacity", "serve", "soak"];

/// The flags as given. Those that `--quick` shortens are `None` when absent, so
/// that [`Options::parse_from`] can tell a flag given from a default.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "oneaccess-loadbench",
    about,
    after_help = "\
Needs wrk, nginx, apache2 with mod_auth_openidc and mod_auth_cas, redis-server
and openssl (./scripts/setup.sh installs them), and the release binaries
oneaccess-gateway, oneaccess-sim and pingora-floor beside this one
(./scripts/loadbench.sh builds them all, then runs this). --render needs none of them.",
    // As before clap: a flag given twice is no error, the last one counts.
    args_override_self = true
)]
pub struct Args {
    /// What to measure; `serve` starts the servers, logs in, prints wrk commands
    /// for each target and waits for Enter (to profile one with perf under a load
    /// of your own); `soak` holds the gateways at half their peak for
    /// --soak-minutes with logins, logouts, refreshes, back-channel logouts and
    /// reloads mixed in, and reports errors, RSS over time and open files (not
    /// part of `all`)
    #[arg(long, value_name = "MODE", default_value = "all", value_parser = MODES)]
    pub mode: String,

    /// Seconds per round [default: 10; --quick: 2]
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,

    /// Seconds of warm-up per target [default: 3; --quick: 1]
    #[arg(long, value_name = "SECS")]
    pub warmup: Option<u64>,

    /// Interleaved rounds [default: 3; --quick: 1]
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,

    /// Open connections of the throughput rounds
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub connections: u32,

    /// Worker threads/processes of each proxy [default: the CPU count; --pin: 1]
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,

    /// Distinct sessions of the capacity mode [default: 10000; --quick: 300]
    #[arg(long, value_name = "N")]
    pub sessions: Option<usize>,

    /// Open connections of the capacity mode [default: 1000; --quick: 100]
    #[arg(long, value_name = "N")]
    pub capacity_connections: Option<u32>,

    /// Minutes of the soak mode [default: 10; --quick: 25 s]
    #[arg(long, value_name = "MIN")]
    pub soak_minutes: Option<u64>,

    /// Pinned mode: each proxy under test (all its processes and threads) on one
    /// CPU, wrk, the upstream app, the simulator and Redis on another. Needs 2 CPUs
    #[arg(long)]
    pub pin: bool,

    /// The report
    #[arg(
        long,
        value_name = "FILE",
        default_value = "bench-results/latest.md",
        allow_hyphen_values = true
    )]
    pub out: PathBuf,

    /// A short run that checks the harness: 2 s rounds, 1 round, 300 sessions,
    /// 100 connections (its figures mean little). It sets those flags where it
    /// stands: one given before it is overridden, one given after it counts
    #[arg(long)]
    pub quick: bool,

    /// Runs nothing: draws the charts of an earlier report (its Markdown tables)
    /// beside it as SVG, and links them from its end
    #[arg(long, value_name = "REPORT")]
    pub render: Option<PathBuf>,
}

impl Options {
    /// The options of a run from the command line (`argv[0]` first), or clap's
    /// error (`--help` included) to `exit` with.
    pub fn parse_from<I, T>(argv: I) -> Result<Options, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Args::command().try_get_matches_from(argv)?;
        let args = Args::from_arg_matches(&matches)?;
        let quick = Quick::new(&args, &matches);
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        let o = Options {
            mode: args.mode,
            duration: Duration::from_secs(quick.pick("duration", args.duration, 2, 10)),
            warmup: Duration::from_secs(quick.pick("warmup", args.warmup, 1, 3)),
            rounds: quick.pick("rounds", args.rounds, 1, 3),
            connections: args.connections,
            // Pinned, a proxy has one CPU: one worker unless told otherwise.
            workers: args.workers.unwrap_or(if args.pin { 1 } else { cpus }),
            sessions: quick.pick("sessions", args.sessions, 300, 10_000),
            capacity_connections: quick.pick(
                "capacity_connections",
                args.capacity_connections,
                100,
                1000,
            ),
            soak: Duration::from_secs(quick.pick(
                "soak_minutes",
                args.soak_minutes.map(|m| m * 60),
                25,
                600,
            )),
            out: args.out,
            quick: args.quick,
            pin: args.pin,
            render: args.render,
        };
        // Checked once `--quick` has had its say, as before clap.
        for (flag, count) in [
            ("--rounds", o.rounds as usize),
            ("--connections", o.connections as usize),
            ("--workers", o.workers as usize),
            ("--sessions", o.sessions),
            ("--soak-minutes", o.soak.as_secs() as usize),
        ] {
            if count == 0 {
                return Err(Args::command().error(
                    ErrorKind::ValueValidation,
                    format!("invalid value '0' for '{flag} <N>': counts must be at least 1"),
                ));
            }
        }
        // The soak compares no proxies: there is nothing to pin apart.
        if o.pin && o.mode == "soak" {
            return Err(Args::command().error(
                ErrorKind::ArgumentConflict,
                "--pin measures the proxies side by side; it does not apply to --mode soak",
            ));
        }
        Ok(o)
    }
}

/// Where `--quick` stands on the command line, to weigh the flags it sets.
struct Quick<'a> {
    matches: &'a ArgMatches,
    /// The position of the last `--quick`, if given.
    at: Option<usize>,
}

impl<'a> Quick<'a> {
    fn new(args: &Args, matches: &'a ArgMatches) -> Self {
        let at = if args.quick {
            last_index(matches, "quick")
        } else {
            None
        };
        Quick { matches, at }
    }

    /// The value of flag `id`: the one given after the last `--quick`, else
    /// `--quick`'s, else the one given, else the default.
    fn pick<T>(&self, id: &str, given: Option<T>, quick: T, default: T) -> T {
        match (given, self.at) {
            (Some(v), Some(q)) if last_index(self.matches, id) > Some(q) => v,
            (_, Some(_)) => quick,
            (given, None) => given.unwrap_or(default),
        }
    }
}

/// The position on the command line of the last occurrence of flag `id`.
fn last_index(matches: &ArgMatches, id: &str) -> Option<usize> {
    matches.indices_of(id).and_then(Iterator::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["oneaccess-loadbench"];
        v.extend_from_slice(args);
        v
    }

    #[test]
    fn clap_accepts_the_definition() {
        Args::command().debug_assert();
    }

    #[test]
    fn the_scripts_and_readmes_command_lines_parse() {
        // scripts/loadbench.sh passes its own arguments; the README gives none,
        // `--quick` and `--mode serve`; loadbench/tests/smoke.rs `--quick --out F`.
        let a = Args::try_parse_from(argv(&["--quick", "--out", "/tmp/smoke.md"])).unwrap();
        assert!(a.quick);
        assert_eq!(a.mode, "all");
        assert_eq!(a.out, PathBuf::from("/tmp/smoke.md"));
        assert_eq!(a.duration, None);
        assert_eq!(a.rounds, None);
        assert_eq!(a.connections, 64);

        let o = Options::parse_from(argv(&["--quick", "--out", "/tmp/smoke.md"])).unwrap();
        assert!(o.quick);
        assert_eq!(o.mode, "all");
        assert_eq!(o.duration, Duration::from_secs(2));
        assert_eq!(o.warmup, Duration::from_secs(1));
        assert_eq!(o.rounds, 1);
        assert_eq!(o.connections, 64);
        assert_eq!(o.sessions, 300);
        assert_eq!(o.capacity_connections, 100);
        assert_eq!(o.out, PathBuf::from("/tmp/smoke.md"));

        let o = Options::parse_from(argv(&[])).unwrap();
        assert!(!o.quick);
        assert_eq!(o.mode, "all");
        assert_eq!(o.duration, Duration::from_secs(10));
        assert_eq!(o.warmup, Duration::from_secs(3));
        assert_eq!(o.rounds, 3);
        assert_eq!(o.connections, 64);
        assert!(o.workers >= 1);
        assert_eq!(o.sessions, 10_000);
        assert_eq!(o.capacity_connections, 1000);
        assert_eq!(o.out, PathBuf::from("bench-results/latest.md"));

        let a = Args::try_parse_from(argv(&["--mode", "serve"])).unwrap();
        assert_eq!(a.mode, "serve");
        assert!(!a.quick);
        assert_eq!(a.render, None);

        // README: charts drawn again from a saved report.
        let o = Options::parse_from(argv(&["--render", "bench-results/latest.md"])).unwrap();
        assert_eq!(o.render, Some(PathBuf::from("bench-results/latest.md")));
    }

    #[test]
    fn every_flag_takes_its_value() {
        let o = Options::parse_from(argv(&[
            "--mode",
            "capacity",
            "--duration",
            "7",
            "--warmup",
            "0",
            "--rounds",
            "5",
            "--connections",
            "32",
            "--workers",
            "4",
            "--sessions",
            "20",
            "--capacity-connections",
            "9",
            "--out",
            "r.md",
        ]))
        .unwrap();
        assert_eq!(o.mode, "capacity");
        assert_eq!(o.duration, Duration::from_secs(7));
        assert_eq!(o.warmup, Duration::ZERO);
        assert_eq!(o.rounds, 5);
        assert_eq!(o.connections, 32);
        assert_eq!(o.workers, 4);
        assert_eq!(o.sessions, 20);
        assert_eq!(o.capacity_connections, 9);
        assert_eq!(o.out, PathBuf::from("r.md"));
        assert!(!o.quick);
        assert!(!o.pin);
    }

    #[test]
    fn pin_gives_each_proxy_one_worker_unless_told() {
        let o = Options::parse_from(argv(&["--pin", "--quick"])).unwrap();
        assert!(o.pin);
        assert_eq!(o.workers, 1);
        let o = Options::parse_from(argv(&["--workers", "3", "--pin"])).unwrap();
        assert!(o.pin);
        assert_eq!(o.workers, 3);
        let err = Options::parse_from(argv(&["--pin", "--mode", "soak"])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn quick_overrides_the_flags_before_it_not_those_after() {
        let o =
            Options::parse_from(argv(&["--rounds", "5", "--quick", "--sessions", "50"])).unwrap();
        assert_eq!(o.rounds, 1);
        assert_eq!(o.sessions, 50);
        assert_eq!(o.duration, Duration::from_secs(2));
        // The count check comes after `--quick`, as it always did.
        let o = Options::parse_from(argv(&["--rounds", "0", "--quick"])).unwrap();
        assert_eq!(o.rounds, 1);
        // A flag given twice: the last one counts.
        let o = Options::parse_from(argv(&["--rounds", "2", "--rounds", "4", "--quick"])).unwrap();
        assert_eq!(o.rounds, 1);
        let o = Options::parse_from(argv(&["--quick", "--rounds", "2", "--quick"])).unwrap();
        assert_eq!(o.rounds, 1);
        let o = Options::parse_from(argv(&["--quick", "--rounds", "2", "--rounds", "6"])).unwrap();
        assert_eq!(o.rounds, 6);
    }

    #[test]
    fn the_soak_lasts_its_minutes_or_25_s_when_quick() {
        let soak = |args: &[&str]| Options::parse_from(argv(args)).unwrap().soak;
        assert_eq!(soak(&["--mode", "soak"]), Duration::from_secs(600));
        assert_eq!(
            soak(&["--mode", "soak", "--soak-minutes", "3"]),
            Duration::from_secs(180)
        );
        assert_eq!(
            soak(&["--mode", "soak", "--quick"]),
            Duration::from_secs(25)
        );
        assert_eq!(
            soak(&["--quick", "--mode", "soak", "--soak-minutes", "1"]),
            Duration::from_secs(60)
        );
        let err = Options::parse_from(argv(&["--soak-minutes", "0"])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn bad_values_are_refused() {
        let kind = |args: &[&str]| Args::try_parse_from(argv(args)).unwrap_err().kind();
        assert_eq!(kind(&["--rounds", "three"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["--duration", "1.5"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["--sessions", "-1"]), ErrorKind::UnknownArgument);
        assert_eq!(kind(&["--mode", "fast"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["--rounds"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["--bogus"]), ErrorKind::UnknownArgument);
        let err = Args::try_parse_from(argv(&["--rounds", "three"])).unwrap_err();
        assert!(err.to_string().contains("--rounds"), "{err}");

        let kind = |args: &[&str]| Options::parse_from(argv(args)).unwrap_err().kind();
        assert_eq!(kind(&["--rounds", "0"]), ErrorKind::ValueValidation);
        assert_eq!(
            kind(&["--connections", "0", "--quick"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(kind(&["--workers", "0"]), ErrorKind::ValueValidation);
        assert_eq!(
            kind(&["--quick", "--sessions", "0"]),
            ErrorKind::ValueValidation
        );
    }
}
