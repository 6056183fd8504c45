//! `echo-upstream`: a tiny upstream application that echoes every request it receives.

use std::net::SocketAddr;
use std::process::ExitCode;

use oneaccess_sim::echo::Echo;

const USAGE: &str = "usage: echo-upstream [--listen ADDR]   (default 127.0.0.1:9001)";

fn main() -> ExitCode {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9001));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(v)) => match v.parse() {
                Ok(a) => listen = a,
                Err(e) => {
                    eprintln!("echo-upstream: bad --listen {v:?}: {e}");
                    return ExitCode::from(2);
                }
            },
            ("-h" | "--help", _) => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("echo-upstream: unexpected argument {arg:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echo-upstream: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match Echo::start_on(listen).await {
            Ok(echo) => {
                println!("Echo upstream: {}", echo.base_url());
                let _ = tokio::signal::ctrl_c().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("echo-upstream: cannot listen on {listen}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
