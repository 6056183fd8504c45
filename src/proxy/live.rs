//! The running gateway, swapped whole when the configuration is reloaded. A
//! request takes the gateway of the moment it arrives and keeps it to its end, so
//! no request ever sees half of one configuration and half of another.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::peers::Peers;
use crate::config::{self, Config};
use crate::error::StartupError;
use crate::gateway::Gateway;

/// A gateway and the upstream peers of its routes: swapped as one.
pub struct Served {
    pub gateway: Arc<Gateway>,
    pub(crate) peers: Peers,
}

impl Served {
    fn new(gateway: Arc<Gateway>) -> Served {
        let peers = Peers::new(&gateway.config);
        Served { gateway, peers }
    }
}

pub struct Live {
    current: ArcSwap<Served>,
    /// Where a reload reads the configuration; `None` for a gateway built in code.
    config_path: Option<PathBuf>,
    /// The listener's certificate, renewed by a reload.
    certificate: Option<Arc<Certificate>>,
}

impl Live {
    pub fn new(gateway: Arc<Gateway>, config_path: Option<PathBuf>) -> Live {
        let certificate = gateway
            .config
            .server
            .listener_tls
            .as_ref()
            .map(|t| Arc::new(Certificate(ArcSwap::new(t.certified.clone()))));
        Live {
            current: ArcSwap::new(Arc::new(Served::new(gateway))),
            config_path,
            certificate,
        }
    }

    /// The gateway requests are served by now.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.current.load().gateway.clone()
    }

    /// The gateway requests are served by now, with its routes' peers.
    pub fn served(&self) -> Arc<Served> {
        self.current.load_full()
    }

    pub fn certificate(&self) -> Option<Arc<Certificate>> {
        self.certificate.clone()
    }

    /// Reads the configuration file again and, if it is good, serves by it from
    /// now on. A bad one changes nothing: the errors come back, the old gateway
    /// keeps serving. Sessions survive (same keys, same store).
    pub async fn reload(&self) -> Result<(), StartupError> {
        let Some(path) = self.config_path.clone() else {
            return Err(StartupError::Server(
                "this gateway was not started from a file".into(),
            ));
        };
        // Reading secrets and resolving upstream names block.
        let loaded = tokio::task::spawn_blocking(move || config::load(&path))
            .await
            .map_err(|e| StartupError::Server(e.to_string()))?;
        self.reload_with(loaded).await
    }

    /// A reload with a configuration already read (or the errors reading it).
    pub async fn reload_with(
        &self,
        loaded: Result<Config, StartupError>,
    ) -> Result<(), StartupError> {
        let old = self.gateway();
        let result = match loaded {
            Ok(cfg) => self.replace(&old, cfg).await,
            Err(e) => Err(e),
        };
        old.metrics
            .reload(if result.is_ok() { "ok" } else { "rejected" });
        result
    }

    async fn replace(&self, old: &Gateway, cfg: Config) -> Result<(), StartupError> {
        for what in needs_restart(&old.config, &cfg) {
            tracing::warn!(
                setting = what,
                "changed in the file, but takes effect only at a restart"
            );
        }
        let new = old.reloaded(cfg)?;
        // A provider whose metadata is now wrong is refused; one that is down is not.
        new.warm_up().await?;
        if let (Some(cert), Some(tls)) = (&self.certificate, &new.config.server.listener_tls) {
            cert.0.store(tls.certified.clone());
        }
        self.current.store(Arc::new(Served::new(Arc::new(new))));
        Ok(())
    }
}

/// Settings a running process cannot take up: its sockets, threads and logger
/// were made from the first configuration.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (&old.server, &new.server);
    let mut changed = Vec::new();
    if o.listen != n.listen {
        changed.push("server.listen");
    }
    if o.admin_listen != n.admin_listen {
        changed.push("server.admin_listen");
    }
    if o.threads != n.threads {
        changed.push("server.threads");
    }
    if o.listener_tls.is_some() != n.listener_tls.is_some() {
        changed.push("server.tls");
    }
    if o.listener_tls.as_ref().map(|t| t.http2) != n.listener_tls.as_ref().map(|t| t.http2) {
        changed.push("server.tls.http2");
    }
    if o.upgrade_socket != n.upgrade_socket {
        changed.push("server.upgrade_socket");
    }
    if o.limits.max_connections != n.limits.max_connections {
        changed.push("server.limits.max_connections");
    }
    if o.upstream.max_idle_connections != n.upstream.max_idle_connections {
        changed.push("server.upstream.max_idle_connections");
    }
    if old.log.format != new.log.format || old.log.level != new.log.level {
        changed.push("log");
    }
    changed
}

/// The listener's certificate, which a reload may replace: every new TLS
/// handshake takes the current one.
#[derive(Debug)]
pub struct Certificate(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::needs_restart;
    use crate::config::{parse, Config};

    fn config(server: &str) -> Config {
        let text = format!(
            r#"
[server]
public_url = "http://localhost:8080"
{server}
[session]
keys = [{{ value = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=", dev = true }}]
[[route]]
upstream = "http://127.0.0.1:9"
protocol = "public"
"#
        );
        parse(&text, Path::new("."), &|_| None).expect("config")
    }

    #[test]
    fn a_reload_names_what_only_a_restart_changes() {
        let old = config("");
        assert!(needs_restart(&old, &config("")).is_empty());
        let new = config(
            "[server.limits]\nmax_connections = 5\n[server.upstream]\nmax_idle_connections = 64\nread_timeout_seconds = 5",
        );
        // The read timeout applies at once; the pool's size was fixed at start.
        assert_eq!(
            needs_restart(&old, &new),
            [
                "server.limits.max_connections",
                "server.upstream.max_idle_connections"
            ]
        );
    }
}
