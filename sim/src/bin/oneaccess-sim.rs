//! `oneaccess-sim`: runs the OneAccess simulator as a standalone server (for the demo).

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use oneaccess_sim::{load_users, Sim, SimConfig};

const USAGE: &str = "\
usage: oneaccess-sim [--listen ADDR] [--client-id ID] [--client-secret-env VAR]
                     [--users FILE.json] [--issuer URL]

  --listen ADDR             address to listen on (default 127.0.0.1:9000)
  --client-id ID            the registered application's client id (default demo-client)
  --client-secret-env VAR   read the client secret from environment variable VAR
                            (default: the secret is \"demo-secret\")
  --users FILE.json         users to serve instead of the built-in demo users
  --issuer URL              issuer to advertise and put in ID tokens
                            (default http://ADDR/api/v1/oauth2)";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("oneaccess-sim: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut listen: SocketAddr = "127.0.0.1:9000".parse().map_err(|e| format!("{e}"))?;
    let mut cfg = SimConfig {
        login_hint: true,
        ..SimConfig::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                listen = v.parse().map_err(|e| format!("bad --listen {v:?}: {e}"))?;
            }
            "--client-id" => cfg.client_id = value("--client-id")?,
            "--client-secret-env" => {
                let var = value("--client-secret-env")?;
                cfg.client_secret = std::env::var(&var)
                    .map_err(|_| format!("environment variable {var} is not set"))?;
            }
            "--users" => {
                let path = value("--users")?;
                cfg.users =
                    load_users(Path::new(&path)).map_err(|e| format!("cannot read {path}: {e}"))?;
            }
            "--issuer" => cfg.issuer_override = Some(value("--issuer")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let users: Vec<(String, String)> = cfg
            .users
            .iter()
            .map(|u| (u.user_name.clone(), u.password.clone()))
            .collect();
        let client_id = cfg.client_id.clone();
        let sim = Sim::start_on(listen, cfg)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        println!("OneAccess simulator: {}", sim.base_url());
        println!("  issuer:    {}", sim.issuer());
        println!(
            "  discovery: {}/api/v1/oauth2/.well-known/openid-configuration",
            sim.base_url()
        );
        println!("  client_id: {client_id}");
        for (name, password) in users {
            println!("  user:      {name} / {password}");
        }
        let _ = tokio::signal::ctrl_c().await;
        sim.stop().await;
        Ok(())
    })
}
