//! Builds the Pingora server around a `Gateway` and runs it: in the foreground with
//! Unix signals (the `run` command), or on a thread with a channel to stop it (tests,
//! the demo).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use tokio::sync::oneshot;

use super::admin::Admin;
use super::live::Live;
use super::workers::{self, ConnectionLimit, Worker};
use super::GatewayProxy;
use crate::error::StartupError;
use crate::gateway::Gateway;

/// How the process was started.
#[derive(Debug, Default, Clone)]
pub struct Launch {
    /// The configuration file, read again on SIGHUP.
    pub config_path: Option<PathBuf>,
    /// Take the listeners from a running gateway (`--upgrade`), which is then sent
    /// SIGQUIT and finishes its requests.
    pub upgrade: bool,
}

/// How the workers' runtimes schedule their tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtimes {
    /// Pingora's "no-steal" runtime: measured a sixth less CPU per request than
    /// the work-stealing one, even with one thread a worker (README, "How fast").
    /// Only for a process that runs one server in its life: Pingora finds these
    /// runtimes through a thread-local table whose thread ids are reused, so a
    /// server started after another stopped in the same process would be handed
    /// the dead one's runtime and serve nothing.
    NoSteal,
    /// Tokio's work-stealing runtime, safe to start and stop many times in one
    /// process (the tests).
    Stealing,
}

/// A Pingora server with the gateway's proxy workers on its listener, the admin
/// service on its own, and the SIGHUP reloader.
fn build(
    gateway: Arc<Gateway>,
    launch: Launch,
    runtimes: Runtimes,
) -> Result<(Server, Arc<Live>), StartupError> {
    let s = gateway.config.server.clone();
    let live = Arc::new(Live::new(gateway, launch.config_path.clone()));
    let conf = ServerConf {
        threads: s.threads,
        // Pingora waits 300 s after SIGTERM by default; an operator's `systemctl
        // stop` should not.
        grace_period_seconds: Some(s.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(s.shutdown_timeout.as_secs()),
        upgrade_sock: s.upgrade_socket.clone(),
        work_stealing: runtimes == Runtimes::Stealing,
        // Pingora gives each proxy (here: each worker) this many times `threads`.
        upstream_keepalive_pool_size: s.upstream.max_idle_connections.div_ceil(s.threads.max(1)),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: launch.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();
    let conf = server.configuration.clone();

    // One one-thread service per worker thread, each on a listening socket of its
    // own in one SO_REUSEPORT group (see `workers` for why).
    let listen = s.listen.to_string();
    if !launch.upgrade {
        workers::wait_until_free(&listen, 30).map_err(StartupError::Server)?;
    }
    let workers = s.threads.max(1);
    let limit = Arc::new(ConnectionLimit::new(s.limits.max_connections, workers));
    let tls = match (&s.listener_tls, live.certificate()) {
        (Some(tls), Some(cert)) => Some((tls.http2, cert)),
        _ => None,
    };
    for index in 0..workers {
        let proxy = pingora::proxy::http_proxy(&conf, GatewayProxy::new(live.clone()));
        let settings = match &tls {
            Some((http2, cert)) => {
                let mut settings = TlsSettings::intermediate("", "")
                    .map_err(|e| StartupError::Server(e.to_string()))?;
                settings.set_cert_resolver(cert.clone());
                if *http2 {
                    settings.enable_h2();
                }
                Some(settings)
            }
            None => None,
        };
        server.add_service(Worker::new(
            index,
            proxy,
            limit.clone(),
            live.clone(),
            &listen,
            settings,
        ));
    }

    if let Some(admin) = s.admin_listen {
        let mut service = Service::new(
            "oneaccess-gateway admin".to_string(),
            HttpServer::new_app(Admin::new(live.clone(), limit.clone())),
        );
        service.add_tcp(&admin.to_string());
        server.add_service(service);
    }
    if launch.config_path.is_some() {
        server.add_service(background_service(
            "config reload",
            Reloader { live: live.clone() },
        ));
    }
    Ok((server, live))
}

/// Runs until SIGTERM (graceful), SIGINT (fast) or SIGQUIT (hand the listeners to
/// an upgrading process); SIGHUP reloads the configuration.
pub fn run_forever(gateway: Arc<Gateway>, launch: Launch) -> Result<(), StartupError> {
    let (server, _live) = build(gateway, launch, Runtimes::NoSteal)?;
    server.run(RunArgs::default());
    Ok(())
}

/// Reloads the configuration on SIGHUP.
struct Reloader {
    live: Arc<Live>,
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reloading is off");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {}
                _ = shutdown.changed() => return,
            }
            tracing::info!("SIGHUP: reloading the configuration");
            match self.live.reload().await {
                Ok(()) => tracing::info!("configuration reloaded"),
                Err(e) => tracing::error!(
                    "configuration NOT reloaded; the previous one keeps serving: {e}"
                ),
            }
        }
    }
}

/// Stops a gateway started by `spawn` when told, or when dropped.
struct ChannelSignal(Mutex<Option<oneshot::Receiver<()>>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelSignal {
    async fn recv(&self) -> ShutdownSignal {
        let rx = self.0.lock().ok().and_then(|mut g| g.take());
        if let Some(rx) = rx {
            // A dropped sender also means stop.
            let _ = rx.await;
        }
        ShutdownSignal::FastShutdown
    }
}

/// A gateway running on its own thread.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    /// The running configuration (to reload it in tests).
    pub live: Arc<Live>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningGateway {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the gateway on a thread and waits until its listener accepts.
pub fn spawn(gateway: Arc<Gateway>) -> std::io::Result<RunningGateway> {
    spawn_with(gateway, Launch::default())
}

/// As `spawn`, started as `launch` says (a config file to reload from).
pub(crate) fn spawn_with(gateway: Arc<Gateway>, launch: Launch) -> std::io::Result<RunningGateway> {
    let addr = gateway.config.server.listen;
    let (tx, rx) = oneshot::channel();
    let (server, live) =
        build(gateway.clone(), launch, Runtimes::Stealing).map_err(std::io::Error::other)?;
    let thread = std::thread::Builder::new()
        .name("gateway".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(ChannelSignal(Mutex::new(Some(rx)))),
            })
        })?;
    let running = RunningGateway {
        addr,
        gateway,
        live,
        stop: Some(tx),
        thread: Some(thread),
    };
    // Wait for the listener, up to 10 s.
    for _ in 0..1000 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(running);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("gateway did not listen on {addr}"),
    ))
}
