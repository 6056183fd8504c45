//! Builds the Pingora server around a `Gateway` and runs it: in the foreground with
//! Unix signals (the `run` command), or on a thread with a channel to stop it (tests,
//! the demo).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use tokio::sync::oneshot;

use super::GatewayProxy;
use crate::gateway::Gateway;

/// A Pingora server with the gateway's proxy service on its listener.
pub fn build(gateway: Arc<Gateway>) -> Server {
    let s = &gateway.config.server;
    let conf = ServerConf {
        threads: s.threads,
        // Pingora waits 300 s after SIGTERM by default; an operator's `systemctl
        // stop` should not.
        grace_period_seconds: Some(s.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(s.shutdown_timeout.as_secs()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let conf = server.configuration.clone();
    let mut service = pingora::proxy::http_proxy_service_with_name(
        &conf,
        GatewayProxy::new(gateway.clone()),
        "oneaccess-gateway",
    );
    service.add_tcp(&s.listen.to_string());
    server.add_service(service);
    server
}

/// Runs until SIGTERM (graceful), SIGINT (fast) or SIGQUIT (upgrade).
pub fn run_forever(gateway: Arc<Gateway>) {
    build(gateway).run(RunArgs::default());
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
    let addr = gateway.config.server.listen;
    let (tx, rx) = oneshot::channel();
    let server = build(gateway.clone());
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
