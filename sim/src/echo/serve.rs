//! The echo upstream's listener: HTTP/1.1 over plain TCP or TLS, with connection
//! upgrades (WebSocket), and a synchronous stop that closes every live connection.
//!
//! It is apart from `crate::server` (the simulator's) because the echo needs two
//! things that one does not do: TLS, and upgraded connections that stay tracked
//! after hyper hands them off, so that stopping the echo also ends its WebSockets.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use socket2::{SockRef, Socket};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A TLS handshake that has not finished by then is dropped (a stuck client must
/// not hold a connection slot until the test ends).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running listener; dropping it stops it.
pub(super) struct Listener {
    shared: Arc<Shared>,
}

struct Shared {
    addr: SocketAddr,
    ctl: Mutex<Ctl>,
}

#[derive(Default)]
struct Ctl {
    stopped: bool,
    /// A duplicate of the listening socket, to shut it down from any thread.
    listener: Option<Socket>,
    /// Duplicates of the live connections' sockets, upgraded ones included.
    conns: HashMap<u64, Socket>,
    next_conn: u64,
}

impl Listener {
    /// Binds `addr` and serves `router` on the current Tokio runtime, over TLS when
    /// `tls` is given.
    pub(super) fn bind(
        addr: SocketAddr,
        router: Router,
        tls: Option<TlsAcceptor>,
    ) -> io::Result<Listener> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            addr: std_listener.local_addr()?,
            ctl: Mutex::new(Ctl {
                listener: Some(Socket::from(std_listener.try_clone()?)),
                ..Ctl::default()
            }),
        });
        let listener = TcpListener::from_std(std_listener)?;
        let accept_shared = Arc::clone(&shared);
        runtime.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _peer)) => {
                        Arc::clone(&accept_shared).serve(stream, router.clone(), tls.clone());
                    }
                    Err(e) => {
                        if accept_shared.lock().stopped {
                            break;
                        }
                        tracing::debug!(error = %e, "echo accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
        Ok(Listener { shared })
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// How many connections it has accepted.
    pub(super) fn connections(&self) -> u64 {
        self.shared.lock().next_conn
    }

    /// Closes the listener and every open connection, WebSockets included. Once
    /// this returns, new connections are refused.
    pub(super) fn stop(&self) {
        let mut ctl = self.shared.lock();
        if ctl.stopped {
            return;
        }
        ctl.stopped = true;
        if let Some(listener) = ctl.listener.take() {
            // On Linux this takes the socket out of LISTEN at once, and wakes the
            // accept task with an error, which then sees `stopped` and ends.
            let _ = listener.shutdown(Shutdown::Both);
        }
        for (_, conn) in ctl.conns.drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Listener {
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

    fn serve(self: Arc<Self>, stream: TcpStream, router: Router, tls: Option<TlsAcceptor>) {
        let Ok(dup) = SockRef::from(&stream).try_clone() else {
            return;
        };
        let id = {
            let mut ctl = self.lock();
            if ctl.stopped {
                let _ = dup.shutdown(Shutdown::Both);
                return;
            }
            let id = ctl.next_conn;
            ctl.next_conn += 1;
            ctl.conns.insert(id, dup);
            id
        };
        // The guard travels with the stream, into hyper's upgraded connection too,
        // so the socket stays registered until whoever holds it last drops it.
        let stream = Tracked {
            io: stream,
            _guard: ConnGuard {
                shared: Arc::clone(&self),
                id,
            },
        };
        tokio::spawn(async move {
            match tls {
                None => serve_http(stream, router).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => serve_http(tls_stream, router).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "echo TLS handshake failed"),
                        Err(_) => tracing::debug!("echo TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_http<IO>(io: IO, router: Router)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "echo connection ended with an error");
    }
}

/// Unregisters a connection's socket duplicate when the connection is gone.
struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.lock().conns.remove(&self.id);
    }
}

/// A stream that carries its registration with it.
struct Tracked<IO> {
    io: IO,
    _guard: ConnGuard,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A TLS acceptor for a PEM certificate chain (leaf first) and its PEM private key
/// (PKCS#8, PKCS#1 or SEC1), speaking HTTP/1.1 only.
pub(super) fn tls_acceptor(cert_chain_pem: &str, key_pem: &str) -> io::Result<TlsAcceptor> {
    use tokio_rustls::rustls::crypto::aws_lc_rs;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::ServerConfig;

    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let chain = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("certificate chain PEM", &e))?;
    if chain.is_empty() {
        return Err(invalid("certificate chain PEM", &"no CERTIFICATE block"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| invalid("private key PEM", &e))?;
    // rustls is built with both ring (Pingora's) and aws-lc-rs (reqwest's) in this
    // workspace, so there is no process default provider: name one.
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS versions", &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid("certificate and key", &e))?;
    // The server speaks HTTP/1.1 only; a client offering h2 first must not pick it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
