//! `oneaccess-sim`: runs the OneAccess simulator as a standalone server (for the demo),
//! optionally pushing synchronization events to an application's callback URL.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use oneaccess_sim::{load_users, EventSettings, Sim, SimConfig};

/// Pause between `CHECK_URL` tries while the application is not up yet.
const CHECK_URL_RETRY: Duration = Duration::from_secs(2);

const USAGE: &str = "\
usage: oneaccess-sim [--listen ADDR] [--client-id ID] [--client-secret-env VAR]
                     [--users FILE.json] [--issuer URL]
                     [--events-url URL --events-token-env VAR
                      [--events-signature-key-env VAR] [--events-encryption-key-env VAR]]

  --listen ADDR             address to listen on (default 127.0.0.1:9000)
  --client-id ID            the registered application's client id (default demo-client)
  --client-secret-env VAR   read the client secret from environment variable VAR
                            (default: the secret is \"demo-secret\")
  --users FILE.json         users to serve instead of the built-in demo users
  --issuer URL              issuer to advertise and put in ID tokens
                            (default http://ADDR/api/v1/oauth2)
  --events-url URL          push synchronization events (user changes) to URL; after
                            start, CHECK_URL is sent every 2 s until it succeeds
  --events-token-env VAR    the Security Token (Authorization: Bearer) from variable VAR
                            (required with --events-url)
  --events-signature-key-env VAR
                            sign events with the key in VAR (default: unsigned)
  --events-encryption-key-env VAR
                            encrypt event data (AES/GCM/NoPadding) with the 16-character
                            key in VAR (default: plain text)";

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
    let mut events_url: Option<String> = None;
    let mut events_token: Option<String> = None;
    let mut signature_key: Option<String> = None;
    let mut encryption_key: Option<String> = None;
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
            "--events-url" => events_url = Some(value("--events-url")?),
            "--events-token-env" => events_token = Some(env(&value("--events-token-env")?)?),
            "--events-signature-key-env" => {
                signature_key = Some(env(&value("--events-signature-key-env")?)?);
            }
            "--events-encryption-key-env" => {
                let key = env(&value("--events-encryption-key-env")?)?;
                // AES-128: the console takes exactly 16 characters, and the key is their
                // UTF-8 bytes, so 16 bytes.
                if key.len() != 16 {
                    return Err("the events encryption key must be 16 bytes".into());
                }
                encryption_key = Some(key);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let events = match (events_url, events_token) {
        (Some(url), Some(token)) => Some(EventSettings {
            signature_key,
            encryption_key,
            ..EventSettings::new(url, token)
        }),
        (Some(_), None) => return Err(format!("--events-url needs --events-token-env\n{USAGE}")),
        (None, _) if signature_key.is_some() || encryption_key.is_some() => {
            return Err(format!("events settings need --events-url\n{USAGE}"))
        }
        (None, _) => None,
    };

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
        if let Some(settings) = events {
            println!("  events:    {}", settings.callback_url);
            tokio::spawn(configure_events(sim.clone(), settings));
        }
        let _ = tokio::signal::ctrl_c().await;
        sim.stop().await;
        Ok(())
    })
}

/// The value of environment variable `var`.
fn env(var: &str) -> Result<String, String> {
    std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
}

/// Saves the events settings, sending `CHECK_URL` every 2 s until the application
/// answers it correctly (it may start after the simulator).
async fn configure_events(sim: Sim, settings: EventSettings) {
    loop {
        let delivery = sim.configure_events(settings.clone()).await;
        if delivery.ok {
            tracing::info!(url = %settings.callback_url, "CHECK_URL succeeded: events are on");
            return;
        }
        tracing::warn!(
            url = %settings.callback_url,
            attempts = ?delivery.attempts,
            answer = ?delivery.answer,
            "CHECK_URL failed; trying again in 2 s"
        );
        tokio::time::sleep(CHECK_URL_RETRY).await;
    }
}
