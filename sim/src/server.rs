//! The listener and connection bookkeeping behind `Sim` and `Echo`: HTTP/1.1 (keep-alive)
//! serving with hyper, and the "down" switch that refuses connections and later listens
//! again on the same port.
//!
//! Every accepted connection's socket is duplicated into a registry so that going down
//! (or stopping) can shut the listener and all live connections synchronously: once
//! [`Server::set_down`]`(true)` returns, new connections are refused and pooled
//! keep-alive connections are closed.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use socket2::{SockRef, Socket};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;

/// A running HTTP server; dropping it stops it.
pub(crate) struct Server {
    shared: Arc<Shared>,
}

struct Shared {
    addr: SocketAddr,
    keep_alive: bool,
    router: Router,
    runtime: Handle,
    /// Bumped on every down/stop; tasks of an older epoch end themselves.
    epoch_tx: watch::Sender<u64>,
    ctl: Mutex<Ctl>,
}

#[derive(Default)]
struct Ctl {
    epoch: u64,
    down: bool,
    stopped: bool,
    /// A duplicate of the listening socket, to shut it down from any thread.
    listener: Option<Socket>,
    /// Duplicates of the live connections' sockets.
    conns: HashMap<u64, Socket>,
    next_conn: u64,
}

impl Server {
    /// Binds `addr` and starts serving the router that `make_router` builds for the
    /// bound address, on the current Tokio runtime.
    pub(crate) fn bind(
        addr: SocketAddr,
        keep_alive: bool,
        make_router: impl FnOnce(SocketAddr) -> Router,
    ) -> io::Result<Server> {
        let runtime = Handle::try_current().map_err(io::Error::other)?;
        // std sets SO_REUSEADDR on Unix, so the port can be bound again after going down.
        let listener = std::net::TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let router = make_router(addr);
        let shared = Arc::new(Shared {
            addr,
            keep_alive,
            router,
            runtime,
            epoch_tx: watch::Sender::new(0),
            ctl: Mutex::new(Ctl::default()),
        });
        {
            let mut ctl = shared.lock();
            shared.spawn_accept(&mut ctl, listener, 0)?;
        }
        Ok(Server { shared })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `true`: close the listener and every open connection (clients get "connection
    /// refused"). `false`: listen again on the same address.
    pub(crate) fn set_down(&self, down: bool) {
        let shared = &self.shared;
        let mut ctl = shared.lock();
        if ctl.stopped || ctl.down == down {
            return;
        }
        ctl.down = down;
        if down {
            tracing::info!(addr = %shared.addr, "going down: refusing connections");
            shared.close_all(&mut ctl);
            return;
        }
        tracing::info!(addr = %shared.addr, "coming back up");
        let epoch = ctl.epoch;
        match std::net::TcpListener::bind(shared.addr) {
            Ok(listener) => {
                if let Err(e) = shared.spawn_accept(&mut ctl, listener, epoch) {
                    tracing::error!(error = %e, "cannot listen again");
                }
            }
            Err(e) => {
                // The port may still be held for a moment; keep trying in the background.
                tracing::warn!(addr = %shared.addr, error = %e, "re-bind failed, retrying");
                let shared2 = Arc::clone(shared);
                shared
                    .runtime
                    .spawn(async move { shared2.rebind_loop(epoch).await });
            }
        }
    }

    /// Stops serving for good (the same as going down, without a way back).
    pub(crate) fn stop(&self) {
        let mut ctl = self.shared.lock();
        if ctl.stopped {
            return;
        }
        ctl.stopped = true;
        ctl.down = true;
        self.shared.close_all(&mut ctl);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ctl> {
        self.ctl
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn close_all(&self, ctl: &mut Ctl) {
        ctl.epoch += 1;
        self.epoch_tx.send_replace(ctl.epoch);
        if let Some(listener) = ctl.listener.take() {
            // On Linux this takes the socket out of the LISTEN state right away, so
            // new connections are refused even before the accept task notices.
            let _ = listener.shutdown(Shutdown::Both);
        }
        for (_, conn) in ctl.conns.drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    async fn rebind_loop(self: Arc<Self>, epoch: u64) {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut ctl = self.lock();
            if ctl.epoch != epoch || ctl.stopped {
                return;
            }
            if let Ok(listener) = std::net::TcpListener::bind(self.addr) {
                if let Err(e) = self.spawn_accept(&mut ctl, listener, epoch) {
                    tracing::error!(error = %e, "cannot listen again");
                }
                return;
            }
        }
    }

    fn spawn_accept(
        self: &Arc<Self>,
        ctl: &mut Ctl,
        listener: std::net::TcpListener,
        epoch: u64,
    ) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        ctl.listener = Some(Socket::from(listener.try_clone()?));
        let shared = Arc::clone(self);
        self.runtime.spawn(async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "cannot register listener");
                    return;
                }
            };
            let mut epoch_rx = shared.epoch_tx.subscribe();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _peer)) => shared.serve(stream, epoch),
                        Err(e) => {
                            if shared.lock().epoch != epoch {
                                break;
                            }
                            tracing::debug!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    },
                    _ = epoch_changed(&mut epoch_rx, epoch) => break,
                }
            }
        });
        Ok(())
    }

    fn serve(self: &Arc<Self>, stream: TcpStream, epoch: u64) {
        let Ok(dup) = SockRef::from(&stream).try_clone() else {
            return;
        };
        let id = {
            let mut ctl = self.lock();
            if ctl.epoch != epoch {
                let _ = dup.shutdown(Shutdown::Both);
                return;
            }
            let id = ctl.next_conn;
            ctl.next_conn += 1;
            ctl.conns.insert(id, dup);
            id
        };
        let shared = Arc::clone(self);
        self.runtime.spawn(async move {
            let mut epoch_rx = shared.epoch_tx.subscribe();
            let service = TowerToHyperService::new(shared.router.clone());
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .keep_alive(shared.keep_alive)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                res = conn => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                _ = epoch_changed(&mut epoch_rx, epoch) => {}
            }
            shared.lock().conns.remove(&id);
        });
    }
}

/// Resolves once the epoch moves past `epoch` (down or stopped).
async fn epoch_changed(rx: &mut watch::Receiver<u64>, epoch: u64) {
    let _ = rx.wait_for(|e| *e != epoch).await;
}
