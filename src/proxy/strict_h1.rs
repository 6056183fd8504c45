//! A client connection read through `front_door::http1::Guard` before Pingora
//! parses it. A request the guard refuses never reaches Pingora's parser whole:
//! its bytes are replaced by a head Pingora itself refuses with 400, so the
//! refusal keeps its place after any request pipelined before it, and the
//! connection closes. A violation in a body whose head Pingora already has ends
//! the connection with a read error (Pingora then drops the upstream request).
//! HTTP/2 connections (ALPN `h2`) are not wrapped.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora::protocols::{Stream, ALPN};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::live::Live;
use crate::front_door::http1::{Guard, Scan, Violation, POISON};
use crate::metrics::Outcome;

/// Wraps an accepted connection in the guard, unless it speaks HTTP/2.
pub(crate) fn wrap(stream: Stream, live: &Arc<Live>) -> Stream {
    if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
        return stream;
    }
    Box::new(StrictH1 {
        inner: stream,
        guard: Guard::new(),
        held: Vec::new(),
        poison: &[],
        waiting: None,
        live: live.clone(),
    })
}

pub(crate) struct StrictH1 {
    inner: Stream,
    guard: Guard,
    /// Bytes read after an upgrade request, waiting for its answer.
    held: Vec<u8>,
    /// What is left to hand Pingora of the refusing head.
    poison: &'static [u8],
    /// The reader waiting for the answer to an upgrade request.
    waiting: Option<Waker>,
    live: Arc<Live>,
}

impl std::fmt::Debug for StrictH1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrictH1")
            .field("inner", &self.inner)
            .finish()
    }
}

impl StrictH1 {
    /// Counts and logs a refused request (the access log's line for it: Pingora's
    /// own 400 answer passes no phase of ours).
    fn refused(&self, violation: Violation) {
        let g = self.live.gateway();
        g.metrics.unrouted().record(Outcome::MalformedRequest, 400);
        if g.config.log.access_log {
            let peer = self
                .inner
                .get_socket_digest()
                .and_then(|d| d.peer_addr().cloned());
            tracing::info!(
                target: "access",
                status = 400,
                outcome = Outcome::MalformedRequest.as_str(),
                violation = violation.code(),
                peer = ?peer,
                "refused a request framed ambiguously"
            );
        }
    }

    /// Reads and drops the client's bytes after a refusal: ready only when the
    /// client closes (or the read fails), pending otherwise.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut scratch = [0u8; 1024];
        loop {
            let mut dropped = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut dropped) {
                Poll::Ready(Ok(())) if dropped.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                other => return other,
            }
        }
    }

    /// Hands Pingora what is left of the refusing head.
    fn give_poison(&mut self, buf: &mut ReadBuf<'_>) {
        let n = self.poison.len().min(buf.remaining());
        buf.put_slice(&self.poison[..n]);
        self.poison = &self.poison[n..];
    }
}

impl AsyncRead for StrictH1 {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.poison.is_empty() {
            this.give_poison(buf);
            return Poll::Ready(Ok(()));
        }
        if this.guard.refused().is_some() {
            // Pingora has the refusing head and closes once it has answered the
            // requests before it. Until then the client's further bytes are
            // dropped, but not its leaving: an end of stream here would read as
            // the client gone, and Pingora would drop those answers.
            return this.drain(cx);
        }
        if this.guard.deciding() && !this.held.is_empty() {
            this.waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let before = buf.filled().len();
        if this.held.is_empty() {
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        } else {
            let n = this.held.len().min(buf.remaining());
            buf.put_slice(&this.held[..n]);
            this.held.drain(..n);
        }
        let new = &buf.filled()[before..];
        if new.is_empty() {
            return Poll::Ready(Ok(()));
        }
        match this.guard.read(new) {
            Scan::Pass => Poll::Ready(Ok(())),
            Scan::Hold { at } => {
                this.held.extend_from_slice(&new[at..]);
                buf.set_filled(before + at);
                if at == 0 {
                    this.waiting = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Poll::Ready(Ok(()))
            }
            Scan::Refuse {
                cut: Some(cut),
                violation,
            } => {
                this.refused(violation);
                buf.set_filled(before + cut);
                this.held.clear();
                this.poison = POISON;
                this.give_poison(buf);
                Poll::Ready(Ok(()))
            }
            Scan::Refuse {
                cut: None,
                violation,
            } => {
                this.refused(violation);
                buf.set_filled(before);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("malformed request body ({})", violation.code()),
                )))
            }
        }
    }
}

impl AsyncWrite for StrictH1 {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r {
            this.wrote(&data[..n]);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let (Poll::Ready(Ok(n)), Some(first)) = (&r, bufs.iter().find(|b| !b.is_empty())) {
            // A status line is in the first slice of a response head.
            this.wrote(&first[..(*n).min(first.len())]);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl StrictH1 {
    /// The server wrote `bytes`: an answer to an upgrade request decides, and
    /// wakes the reader waiting for it.
    fn wrote(&mut self, bytes: &[u8]) {
        if self.guard.deciding() && !bytes.is_empty() {
            self.guard.wrote(bytes);
            if !self.guard.deciding() {
                if let Some(w) = self.waiting.take() {
                    w.wake();
                }
            }
        }
    }
}

#[async_trait]
impl Shutdown for StrictH1 {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for StrictH1 {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for StrictH1 {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for StrictH1 {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for StrictH1 {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for StrictH1 {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for StrictH1 {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
