//! `pingora-floor`: the engine's floor in the load benchmark. The smallest Pingora
//! proxy there is, one `ProxyHttp` that only picks the peer, built as the gateway
//! is built (the same Pingora version and features, through the workspace's
//! dependencies; mimalloc with transparent huge pages off; the workspace's release
//! profile) and given as many threads. What the gateway spends above it is the
//! gateway's; what it spends itself is Pingora's.
//!
//! `pingora-floor LISTEN UPSTREAM THREADS`, e.g.
//! `pingora-floor 127.0.0.1:8080 127.0.0.1:9000 2`. SIGTERM stops it at once.

use std::net::SocketAddr;
use std::process::ExitCode;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

/// The same allocator as the gateway's (src/main.rs, `alloc/`).
#[global_allocator]
static ALLOCATOR: oneaccess_alloc::Mimalloc = oneaccess_alloc::Mimalloc;

/// The proxy: every request to the one upstream, over Pingora's pooled
/// keep-alive connections, unchanged.
struct Floor {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

/// As the gateway does (src/main.rs): mimalloc would otherwise take huge pages.
#[allow(unsafe_code)]
fn no_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integers only and touches no memory.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// The three arguments: where to listen, the upstream, the thread count.
fn parse(args: &[String]) -> Result<(SocketAddr, SocketAddr, usize), String> {
    let [listen, upstream, threads] = args else {
        return Err("usage: pingora-floor LISTEN UPSTREAM THREADS".into());
    };
    let addr = |s: &str| {
        s.parse::<SocketAddr>()
            .map_err(|e| format!("{s:?} is not an address: {e}"))
    };
    let threads = threads
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{threads:?} is not a thread count"))?;
    Ok((addr(listen)?, addr(upstream)?, threads))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, upstream, threads) = match parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pingora-floor: {e}");
            return ExitCode::from(2);
        }
    };
    no_huge_pages();
    // The gateway's settings of the benchmark: its thread count, and no wait
    // after SIGTERM (Pingora's default grace period is 300 s).
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(Opt::default()), conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Floor { upstream });
    proxy.add_tcp(&listen.to_string());
    server.add_service(proxy);
    server.run_forever()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_its_three_arguments() {
        let (l, u, t) = parse(&args(&["127.0.0.1:8080", "127.0.0.1:9000", "2"])).unwrap();
        assert_eq!(l.port(), 8080);
        assert_eq!(u.port(), 9000);
        assert_eq!(t, 2);
        assert!(parse(&args(&["127.0.0.1:8080", "127.0.0.1:9000"])).is_err());
        assert!(parse(&args(&["localhost:8080", "127.0.0.1:9000", "2"])).is_err());
        assert!(parse(&args(&["127.0.0.1:8080", "127.0.0.1:9000", "0"])).is_err());
    }
}
