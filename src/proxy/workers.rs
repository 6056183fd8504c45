//! The proxy's workers: one single-threaded Pingora service per worker thread,
//! each accepting on a socket of its own, under one cap on open connections.
//!
//! Why not one service of N threads: Pingora hands every upstream connection it
//! puts back in its keepalive pool to a task spawned on a *random* thread of the
//! service, and wakes that task again when the connection is reused. With two
//! threads, half the requests woke the other thread (strace: 2.35 eventfd writes
//! per request), and a one-thread service spent 41 µs of CPU per request where
//! the two-thread one spent 46 (README, "How fast"). A one-thread service keeps
//! the request, its pooled connection and the pool's idle watch on one thread, as
//! nginx's workers do.
//!
//! The listening sockets: one per worker, all bound to the address with
//! `SO_REUSEPORT`, so that the kernel spreads new connections over the workers.
//! On one shared socket the worker that happened to be awake accepted a whole
//! burst: in one of six load-benchmark rounds all 64 of wrk's connections landed
//! on one worker and the gateway served 9.4k requests/s instead of 23k (README,
//! "How fast"). The first worker binds through Pingora, which records the socket
//! in its table of listeners under the address; worker `i` binds its own and
//! records it under `address#i`. `--upgrade` hands the whole table over, so the
//! next process takes over every socket, with the connections waiting in each,
//! and none is reset. Each worker listens on a `dup` in a table of its own, so
//! that every file descriptor has exactly one owner and is closed once.

use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig, TcpSocketOptions};
use pingora::protocols::Stream;
use pingora::server::{Fds, ListenFds, ShutdownWatch};
use pingora::services::listening::Service;
use pingora::services::{ServiceReadyNotifier, ServiceWithDependents};

use super::live::Live;

/// One worker: a one-thread proxy service on the shared listening address.
pub(crate) struct Worker<A: ServerApp + Send + Sync + 'static> {
    inner: Service<Limited<A>>,
    /// The first worker's socket is bound by Pingora; the others bind their own.
    index: usize,
    /// The listening address, as Pingora's table of listeners names it.
    listen: String,
}

impl<A: ServerApp + Send + Sync + 'static> Worker<A> {
    /// Listens on `listen` with TLS when `tls` is given, in plain TCP otherwise.
    pub(crate) fn new(
        index: usize,
        app: A,
        limit: Arc<ConnectionLimit>,
        live: Arc<Live>,
        listen: &str,
        tls: Option<TlsSettings>,
    ) -> Worker<A> {
        let app = Limited {
            inner: Arc::new(app),
            limit,
            worker: index,
            live,
        };
        let mut inner = Service::new(format!("oneaccess-gateway {index}"), app);
        inner.threads = Some(1);
        let mut options = TcpSocketOptions::default();
        options.so_reuseport = Some(true);
        let listener = ListenerConfig::tcp(listen).tcp_socket_options(options);
        inner.add_listener(match tls {
            // TLS reads one record (up to 16 KiB) at a time: a buffer of one record
            // saves it system calls, where Pingora's default holds 64 KiB.
            Some(settings) => listener
                .tls(settings)
                .l4_buffer(L4BufferSettings::default().read(16 * 1024)),
            // In plain HTTP the request's head and body are read into buffers of
            // their own: a read buffer in front only held 64 KiB per open
            // connection (64 MiB at 1,000 connections; README, "How fast").
            // Pingora's upstream connections have none either.
            None => listener.l4_buffer(L4BufferSettings::default().read(0)),
        });
        Worker {
            inner,
            index,
            listen: listen.to_string(),
        }
    }

    /// This worker's socket in the table of listeners that an upgrade hands over.
    fn key(&self) -> String {
        format!("{}#{}", self.listen, self.index)
    }

    /// The listening socket of a worker after the first: the one the previous
    /// process handed over under `key`, else a new one, recorded there for the
    /// next upgrade. `first` is the first worker's socket, shared as before when
    /// a new one cannot join its group (after an upgrade from a gateway that
    /// bound it without SO_REUSEPORT).
    fn own_socket(&self, shared: &ListenFds, first: RawFd) -> RawFd {
        let key = self.key();
        let inherited = shared.lock().get(&key).copied();
        if let Some(fd) = inherited {
            tracing::info!(
                worker = self.index,
                "a worker took over its socket from the previous process"
            );
            return fd;
        }
        match bind_reuse_port(&self.listen) {
            Ok(fd) => {
                shared.lock().add(key, fd);
                fd
            }
            Err(e) => {
                tracing::warn!(error = %e, worker = self.index, "a worker shares the first worker's listening socket");
                first
            }
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServiceWithDependents for Worker<A> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        mut shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        ready_notifier.notify_ready();
        let fds = match (self.index, fds) {
            (1.., Some(shared)) => {
                // The first worker binds first, so that an address already taken
                // is Pingora's error as it always was.
                let Some(first) = wait_for_listener(&shared, &self.listen, &mut shutdown).await
                else {
                    return;
                };
                let fd = self.own_socket(&shared, first);
                match dup(fd) {
                    Ok(copy) => {
                        let mut own = Fds::new();
                        own.add(self.listen.clone(), copy);
                        Some(Arc::new(parking_lot::Mutex::new(own)))
                    }
                    Err(e) => {
                        // The other workers still serve; this one sits out.
                        tracing::error!(error = %e, worker = self.index, "a worker could not copy its listening socket");
                        return;
                    }
                }
            }
            (_, fds) => fds,
        };
        pingora::services::Service::start_service(&mut self.inner, fds, shutdown, listeners_per_fd)
            .await
    }

    fn name(&self) -> &str {
        pingora::services::Service::name(&self.inner)
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }

    /// The keys of the sockets this worker claims in the table that an upgrade
    /// hands over: Pingora closes an inherited socket that no service claims.
    fn listen_addresses(&self) -> Option<Vec<String>> {
        if self.index == 0 {
            pingora::services::Service::listen_addresses(&self.inner)
        } else {
            Some(vec![self.key()])
        }
    }
}

/// The first worker's socket, once it is bound (at once after an upgrade, which
/// brings it; a moment after start-up otherwise). `None` if the server stops first.
async fn wait_for_listener(
    shared: &ListenFds,
    listen: &str,
    shutdown: &mut ShutdownWatch,
) -> Option<RawFd> {
    loop {
        if let Some(fd) = shared.lock().get(listen) {
            return Some(*fd);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            _ = shutdown.changed() => return None,
        }
    }
}

/// Waits until no other process listens on `listen`, trying `tries` times a
/// second apart (Pingora's own bind tries 30 times). Sockets with `SO_REUSEPORT`
/// would otherwise join the group of a gateway already running there and take
/// half of its connections; a plain bind, without that option, fails instead.
/// Not for an upgrade, whose old process holds the address by design.
pub(crate) fn wait_until_free(listen: &str, tries: u32) -> Result<(), String> {
    for attempt in 1..=tries {
        match std::net::TcpListener::bind(listen) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < tries => {
                tracing::warn!(listen, "the listen address is in use; trying again in 1 s");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(format!("cannot listen on {listen}: {e}")),
        }
    }
    Err(format!("cannot listen on {listen}: in use"))
}

/// A listening socket of its own for a worker, in the first worker's
/// `SO_REUSEPORT` group: the options and backlog Pingora binds with.
fn bind_reuse_port(listen: &str) -> std::io::Result<RawFd> {
    use std::net::ToSocketAddrs;
    let addr = listen.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
    })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    // Tokio's listener expects it: a blocking accept would stall the worker.
    socket.set_nonblocking(true)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(65535)?;
    Ok(socket.into_raw_fd())
}

/// A new descriptor for the same socket (close-on-exec, as Rust opens them).
#[allow(unsafe_code)]
fn dup(fd: RawFd) -> std::io::Result<RawFd> {
    // SAFETY: `fd` is a listening socket of the table that an upgrade hands over,
    // open for as long as the server runs; it is only borrowed here, for the `dup`.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let copy = borrowed.try_clone_to_owned()?;
    debug_assert_ne!(copy.as_raw_fd(), fd);
    Ok(copy.into_raw_fd())
}

/// The cap on client connections served at once, shared by the workers: it is
/// the gateway's, not a worker's.
pub struct ConnectionLimit {
    open: AtomicUsize,
    /// Each worker's share of `open`, for the metrics: how evenly the kernel
    /// spreads the connections.
    by_worker: Box<[WorkerCount]>,
    /// Connections closed for the cap, for a log line that a flood cannot flood.
    refused: AtomicUsize,
    max: usize,
}

impl ConnectionLimit {
    pub fn new(max: usize, workers: usize) -> ConnectionLimit {
        ConnectionLimit {
            open: AtomicUsize::new(0),
            by_worker: (0..workers)
                .map(|_| WorkerCount(AtomicUsize::new(0)))
                .collect(),
            refused: AtomicUsize::new(0),
            max,
        }
    }

    /// The connections each worker serves now.
    pub(crate) fn open_by_worker(&self) -> impl Iterator<Item = usize> + '_ {
        self.by_worker.iter().map(|n| n.0.load(Ordering::Relaxed))
    }
}

/// One worker's count, alone on its cache line: each worker changes its own on
/// every request, and two counts on one line would bounce it between the cores.
#[repr(align(128))]
struct WorkerCount(AtomicUsize);

/// The proxy, with the cap on open connections, reading HTTP/1 through the
/// strict guard (`strict_h1`). A connection over the cap is closed at once,
/// before anything is read: cheaper for a gateway under a flood than answering it.
pub(crate) struct Limited<A> {
    inner: Arc<A>,
    limit: Arc<ConnectionLimit>,
    /// Which worker this is, for its count in `limit`.
    worker: usize,
    /// For the guard's log lines and counts.
    live: Arc<Live>,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Limited<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Pingora calls this once per connection: its HTTP/1 app serves every
        // kept-alive request, and waits for the next, inside this one call.
        let limit = &self.limit;
        if limit.open.fetch_add(1, Ordering::Relaxed) >= limit.max {
            limit.open.fetch_sub(1, Ordering::Relaxed);
            let refused = limit.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if refused % 1000 == 1 {
                tracing::warn!(
                    max = limit.max,
                    refused,
                    "connection limit reached; closing new connections"
                );
            }
            return None;
        }
        let _open = Opened(&limit.open);
        let _mine = limit.by_worker.get(self.worker).map(|n| {
            n.0.fetch_add(1, Ordering::Relaxed);
            Opened(&n.0)
        });
        let stream = super::strict_h1::wrap(stream, &self.live);
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// Counts a connection out when its handling ends, however it ends.
struct Opened<'a>(&'a AtomicUsize);

impl Drop for Opened<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    #[test]
    #[allow(unsafe_code)]
    fn an_address_another_gateway_listens_on_is_not_free() {
        let fd = bind_reuse_port("127.0.0.1:0").expect("bind");
        // SAFETY: `fd` was just opened by `bind_reuse_port` and is owned here.
        let running = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        let addr = running.local_addr().expect("address").to_string();
        let refused = wait_until_free(&addr, 1).expect_err("in use");
        assert!(refused.contains(&addr), "{refused}");
        drop(running);
        assert_eq!(wait_until_free(&addr, 1), Ok(()));
    }
}
