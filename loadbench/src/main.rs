//! `oneaccess-loadbench`: the gateway side by side with nginx, Apache
//! mod_auth_openidc, Apache mod_auth_cas and the engine's floor (`pingora-floor`)
//! on loopback, under the same load from `wrk`, against the same upstream app, in
//! interleaved rounds, unpinned or each proxy on a CPU of its own (`--pin`); then
//! logins per second, then 1,000 connections over 10,000 sessions. Apart from
//! those, a soak (`--mode soak`): the gateways held at half their peak for minutes
//! with logins, logouts, refreshes and reloads mixed in.
//! Writes a Markdown report (see README) and its charts in SVG.

mod charts;
mod cli;
mod login;
mod logins;
mod pin;
mod procs;
mod report;
mod rounds;
mod soak;
mod targets;
mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    /// How long the soak mode runs.
    pub soak: Duration,
    pub out: PathBuf,
    pub quick: bool,
    /// Each proxy on one CPU, the load generator and the rest on another.
    pub pin: bool,
    /// Draws the charts of this earlier report instead of running.
    pub render: Option<PathBuf>,
}

fn main() -> ExitCode {
    // clap's messages: usage errors exit with 2, `--help` prints and exits with 0.
    let opts = Options::parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
    if let Some(report) = &opts.render {
        return match charts::render(report) {
            Ok(written) => {
                for p in written {
                    println!("{}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(msg) => {
                eprintln!("oneaccess-loadbench: {msg}");
                ExitCode::FAILURE
            }
        };
    }
    procs::stop_all_on_signal();
    // The soak starts only the servers it needs: no peer is compared there.
    let result = if opts.mode == "soak" {
        soak::run(&opts)
    } else {
        rounds::run(&opts)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("oneaccess-loadbench: {msg}");
            ExitCode::FAILURE
        }
    }
}
