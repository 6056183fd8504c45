//! `oneaccess-demo`: one command that starts the OneAccess simulator (port 9000), an
//! echo upstream that shows the headers it receives (port 9001) and the gateway
//! with `config/demo.toml` (port 8080), then prints where to log in.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use oneaccess_gateway::config;
use oneaccess_gateway::gateway::Gateway;
use oneaccess_gateway::proxy::server;
use oneaccess_gateway::telemetry;
use oneaccess_sim::echo::Echo;
use oneaccess_sim::{EventSettings, Sim, SimConfig, User};

fn main() -> ExitCode {
    telemetry::init();
    let config_path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml"))
        });
    let cfg = match config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", config_path.display());
            return ExitCode::FAILURE;
        }
    };

    // The simulator's console settings for user events: those the gateway's
    // `[provider.events]` expects.
    let console = cfg
        .provider
        .as_ref()
        .and_then(|p| p.events.as_ref())
        .map(|e| EventSettings {
            signature_key: e.signature_key.as_ref().map(|k| k.expose().clone()),
            encryption_key: e.encryption_key.as_ref().map(|k| k.expose().clone()),
            ..EventSettings::new(
                format!("{}{}", cfg.server.public_origin, e.path),
                e.token.expose().clone(),
            )
        });

    // The simulator and the echo app live on their own runtime thread for the
    // life of the process; Pingora runs the gateway on the main thread.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            let sim_cfg = SimConfig {
                login_hint: true,
                ..SimConfig::default()
            };
            let started = async {
                let sim = Sim::start_on(([127, 0, 0, 1], 9000).into(), sim_cfg).await?;
                let echo = Echo::start_on(([127, 0, 0, 1], 9001).into()).await?;
                Ok::<_, std::io::Error>((sim, echo))
            };
            match started.await {
                Ok(servers) => {
                    let _ = ready_tx.send(Ok(()));
                    if let Some(console) = console {
                        // As an administrator saving the console's settings: the
                        // URL check succeeds once the gateway listens.
                        let sim = servers.0.clone();
                        tokio::spawn(async move {
                            while !sim.configure_events(console.clone()).await.ok {
                                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                            }
                        });
                    }
                    let _keep = servers;
                    std::future::pending::<()>().await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot listen on 9000/9001: {e}")));
                }
            }
        });
    });
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("oneaccess-demo: {e}");
            return ExitCode::FAILURE;
        }
        Err(_) => return ExitCode::FAILURE,
    }

    let gateway = match Gateway::new(cfg) {
        Ok(g) => Arc::new(g),
        Err(e) => {
            eprintln!("oneaccess-demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let warmed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(gateway.warm_up()).map_err(|e| e.to_string()));
    if let Err(e) = warmed {
        eprintln!("oneaccess-demo: {e}");
        return ExitCode::FAILURE;
    }

    let users = User::demo_users();
    let origin = gateway.config.server.public_origin.clone();
    println!();
    println!("  oneaccess-gateway demo");
    println!("  ----------------------");
    println!("  OIDC            {origin}/            (protected: you will be sent to OneAccess)");
    println!("  OAuth2          {origin}/oauth2/     (identity from OneAccess userinfo)");
    println!("  CAS 3.0         {origin}/cas/");
    println!("  Public page     {origin}/public/");
    println!(
        "  Log out         {origin}{}",
        gateway.config.server.paths.logout
    );
    for u in users.iter().take(2) {
        println!("  User            {} / {}", u.user_name, u.password);
    }
    println!("  OneAccess sim   http://127.0.0.1:9000   echo app   http://127.0.0.1:9001");
    if let Some(admin) = gateway.config.server.admin_listen {
        println!("  Metrics         http://{admin}/metrics   (and /healthz, /readyz)");
        println!(
            "  Revoke a user   curl -H 'content-type: application/json' -d '{{\"login_name\":\"alice\"}}' http://{admin}/sessions/revoke"
        );
    }
    if gateway.events().settings.is_some() {
        println!(
            r#"  Disable alice   T=$(curl -s -d grant_type=client_credentials -d client_id=mgmt-client -d client_secret=mgmt-secret http://127.0.0.1:9000/api/v2/tenant/token | grep -o '"access_token":"[^"]*"' | cut -d'"' -f4)"#
        );
        println!("                  curl -X PUT -H \"Authorization: Bearer $T\" http://127.0.0.1:9000/api/v2/tenant/users/20240001/disable");
        println!("                  (OneAccess posts the event; her sessions end at once. .../enable undoes it.)");
    }
    println!(
        "  Ctrl-C stops everything; SIGHUP reloads {}.",
        config_path.display()
    );
    println!();
    let launch = server::Launch {
        config_path: Some(config_path),
        upgrade: false,
    };
    match server::run_forever(gateway, launch) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oneaccess-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
