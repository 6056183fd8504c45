//! The proxy's workers: one single-threaded Pingora service per worker thread,
//! all accepting on one listening socket, under one cap on open connections.
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
//! The listening socket: the first worker binds it through Pingora, which records
//! it in its table of listeners (what `--upgrade` hands to the next process). The
//! other workers each get a `dup` of it in a table of their own, so that every
//! file descriptor has exactly one owner and is closed once.

use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::protocols::Stream;
use pingora::server::{Fds, ListenFds, ShutdownWatch};
use pingora::services::listening::Service;
use pingora::services::{ServiceReadyNotifier, ServiceWithDependents};

/// One worker: a one-thread proxy service on the shared listening address.
pub struct Worker<A: ServerApp + Send + Sync + 'static> {
    inner: Service<Limited<A>>,
    /// The first worker binds; the others take a copy of its socket.
    first: bool,
    /// The listening address, as Pingora's table of listeners names it.
    listen: String,
}

impl<A: ServerApp + Send + Sync + 'static> Worker<A> {
    /// Listens on `listen` with TLS when `tls` is given, in plain TCP otherwise.
    pub fn new(
        index: usize,
        app: A,
        limit: Arc<ConnectionLimit>,
        listen: &str,
        tls: Option<TlsSettings>,
    ) -> Worker<A> {
        let app = Limited {
            inner: Arc::new(app),
            limit,
        };
        let mut inner = Service::new(format!("oneaccess-gateway {index}"), app);
        inner.threads = Some(1);
        let listener = ListenerConfig::tcp(listen);
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
            first: index == 0,
            listen: listen.to_string(),
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
        let fds = match (self.first, fds) {
            (false, Some(shared)) => {
                let Some(fd) = wait_for_listener(&shared, &self.listen, &mut shutdown).await else {
                    return;
                };
                match dup(fd) {
                    Ok(copy) => {
                        let mut own = Fds::new();
                        own.add(self.listen.clone(), copy);
                        Some(Arc::new(parking_lot::Mutex::new(own)))
                    }
                    Err(e) => {
                        // The other workers still serve; this one sits out.
                        tracing::error!(error = %e, "a worker could not share the listening socket");
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

    /// Only the first worker claims the address in the table that an upgrade
    /// hands over: the others' copies are theirs alone.
    fn listen_addresses(&self) -> Option<Vec<String>> {
        if self.first {
            pingora::services::Service::listen_addresses(&self.inner)
        } else {
            None
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

/// A new descriptor for the same socket (close-on-exec, as Rust opens them).
fn dup(fd: RawFd) -> std::io::Result<RawFd> {
    // SAFETY: `fd` is the first worker's listening socket, open for as long as the
    // server runs; it is only borrowed here, for the `dup`.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let copy = borrowed.try_clone_to_owned()?;
    debug_assert_ne!(copy.as_raw_fd(), fd);
    Ok(copy.into_raw_fd())
}

/// The cap on client connections served at once, shared by the workers: it is
/// the gateway's, not a worker's.
pub struct ConnectionLimit {
    open: AtomicUsize,
    /// Connections closed for the cap, for a log line that a flood cannot flood.
    refused: AtomicUsize,
    max: usize,
}

impl ConnectionLimit {
    pub fn new(max: usize) -> ConnectionLimit {
        ConnectionLimit {
            open: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            max,
        }
    }
}

/// The proxy, with the cap on open connections. A connection over the cap is
/// closed at once, before anything is read: cheaper for a gateway under a flood
/// than answering it.
pub struct Limited<A> {
    inner: Arc<A>,
    limit: Arc<ConnectionLimit>,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Limited<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Pingora calls this once per HTTP/2 connection, and once per request of an
        // HTTP/1 connection (waiting for the next request included): between two
        // calls a kept-alive connection is uncounted only for an instant.
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
