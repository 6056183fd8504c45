//! The `oneaccess-gateway` command: `run` (the default) serves, `check` validates a
//! configuration file and lists every problem with its TOML path.

#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use oneaccess_gateway::config;
use oneaccess_gateway::error::StartupError;
use oneaccess_gateway::gateway::Gateway;
use oneaccess_gateway::proxy::server;
use oneaccess_gateway::telemetry;

/// mimalloc instead of glibc's malloc: Pingora allocates and frees buffers on
/// every request, and with mimalloc the gateway spent 14% less CPU per request
/// (README, "How fast"); asked as malloc is (`alloc/`), not always through its
/// aligned path.
#[global_allocator]
static ALLOCATOR: oneaccess_alloc::Mimalloc = oneaccess_alloc::Mimalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Reverse-proxy SSO gateway for Huawei Cloud OneAccess"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The TOML configuration file.
    #[arg(long, short, global = true, default_value = "gateway.toml")]
    config: PathBuf,
    /// Take the listening sockets over from a running gateway (through
    /// `server.upgrade_socket`), then send that one SIGQUIT: no connection is
    /// refused during the switch.
    #[arg(long, global = true)]
    upgrade: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Run,
    /// Validate the configuration (secrets and upstream names included) and exit.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => check(&cli.config),
        Command::Run => match run(&cli.config, cli.upgrade) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("oneaccess-gateway: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// No transparent huge pages for this process: mimalloc asks for them for its
/// memory, and with 1,000 open connections they raised the peak RSS from 72–74
/// to 75–80 MiB, with no speed to show for it (README, "How fast").
#[allow(unsafe_code)]
fn no_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integers only and touches no memory.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(c) => {
            println!(
                "{}: OK ({} route{}, listening on {})",
                path.display(),
                c.routes.len(),
                if c.routes.len() == 1 { "" } else { "s" },
                c.server.listen
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path, upgrade: bool) -> Result<(), StartupError> {
    no_huge_pages();
    let cfg = config::load(path)?;
    telemetry::init_with(&cfg.log);
    let gateway = Arc::new(Gateway::new(cfg)?);
    // Discovery before serving: a wrong issuer stops start-up here. A short-lived
    // runtime, because Pingora builds its own for the service.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartupError::Server(e.to_string()))?;
    rt.block_on(gateway.warm_up())?;
    drop(rt);
    let s = &gateway.config.server;
    tracing::info!(
        listen = %s.listen,
        tls = s.listener_tls.is_some(),
        admin = ?s.admin_listen,
        routes = gateway.config.routes.len(),
        "serving"
    );
    for r in &gateway.config.routes {
        if r.upstream
            .as_ref()
            .and_then(|u| u.tls.as_ref())
            .is_some_and(|t| !t.verify)
        {
            tracing::warn!(
                route = r.index,
                "upstream_tls_verify = false: this upstream's certificate is not checked"
            );
        }
    }
    let launch = server::Launch {
        config_path: Some(path.to_path_buf()),
        upgrade,
    };
    server::run_forever(gateway, launch)
}
