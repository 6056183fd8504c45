//! The connection under the Redis store, by mode: one server (a connection
//! manager that reconnects to it), a Cluster (the cluster client sends each key
//! to its slot's node, follows MOVED and ASK, and splits a multi-key MGET by
//! slot), or the master that Sentinel names (found again after a failover). The
//! store's commands go through `Conn` whatever the mode: only the connection
//! differs. Every mode has the same bounded timeouts, the same ACL user and
//! password, and the same TLS certificates.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, TlsCertificates, TlsMode,
    Value,
};

use super::sentinel::{Master, MasterConn};
use crate::config::{RedisSettings, RedisTarget};
use crate::session::store::StoreError;

/// A connection attempt gives up after this; so does a command waiting for its
/// answer. A Redis outage then costs a request about a second, never a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The whole first connection to a cluster (every seed node, the slot map).
const CLUSTER_SETUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the store's connection comes from.
pub(super) enum Link {
    Single {
        client: Client,
        config: ConnectionManagerConfig,
        /// Made by the first command, on the runtime that serves requests (the
        /// manager runs its own tasks there); a failed connect leaves it empty
        /// to try again.
        conn: tokio::sync::OnceCell<ConnectionManager>,
    },
    Cluster {
        client: ClusterClient,
        /// As for one server; the cluster connection then reconnects to nodes
        /// and refreshes the slot map by itself.
        conn: tokio::sync::OnceCell<ClusterConnection>,
    },
    Sentinel(Arc<Master>),
}

/// A connection of any mode, cheap to clone (each is a handle to a shared,
/// multiplexed connection).
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(MasterConn),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}

impl Link {
    /// Checks the settings and builds the clients; connects to nothing yet.
    pub(super) fn new(settings: &RedisSettings) -> Result<Link, StoreError> {
        let bad = |e: RedisError| StoreError::Unavailable(format!("bad Redis settings: {e}"));
        let certs = settings.tls.as_ref().map(|t| TlsCertificates {
            client_tls: t.client.as_ref().map(|(cert, key)| ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.expose().clone(),
            }),
            root_cert: t.ca.clone(),
        });
        let tls = settings.tls.is_some()
            || matches!(&settings.target, RedisTarget::Single { url } if url.starts_with("rediss:"));
        if tls {
            // Redis's rustls client takes the process's default provider, and
            // both of rustls's providers are linked in (ours is ring, as
            // Pingora's): name one, or the first handshake would panic. A second
            // install (another store, a reload) changes nothing.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let username = settings.username.as_deref();
        let password = settings.password.as_ref().map(|p| p.expose().as_str());
        Ok(match &settings.target {
            RedisTarget::Single { url } => {
                let mut info: ConnectionInfo = url.as_str().into_connection_info().map_err(bad)?;
                let mut auth = info.redis_settings().clone();
                if let Some(u) = username {
                    auth = auth.set_username(u);
                }
                if let Some(p) = password {
                    auth = auth.set_password(p);
                }
                info = info.set_redis_settings(auth);
                let client = match certs {
                    Some(certs) => Client::build_with_tls(info, certs),
                    None => Client::open(info),
                }
                .map_err(bad)?;
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500))
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                Link::Single {
                    client,
                    config,
                    conn: tokio::sync::OnceCell::new(),
                }
            }
            RedisTarget::Cluster { nodes } => {
                let seeds = nodes.iter().map(|(host, port)| address(host, *port, tls));
                let mut b = ClusterClientBuilder::new(seeds)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(2)
                    .min_retry_wait(50)
                    .max_retry_wait(500);
                if let Some(u) = username {
                    b = b.username(u);
                }
                if let Some(p) = password {
                    b = b.password(p);
                }
                if let Some(certs) = certs {
                    b = b.certs(certs);
                }
                Link::Cluster {
                    client: b.build().map_err(bad)?,
                    conn: tokio::sync::OnceCell::new(),
                }
            }
            RedisTarget::Sentinel {
                master,
                nodes,
                db,
                username: sentinel_user,
                password: sentinel_password,
            } => {
                let sentinels = nodes.iter().map(|(host, port)| address(host, *port, tls));
                let mut b =
                    SentinelClientBuilder::new(sentinels, master, SentinelServerType::Master)
                        .map_err(bad)?
                        .set_client_to_redis_db(*db);
                if let Some(u) = username {
                    b = b.set_client_to_redis_username(u);
                }
                if let Some(p) = password {
                    b = b.set_client_to_redis_password(p);
                }
                if let Some(u) = sentinel_user {
                    b = b.set_client_to_sentinel_username(u);
                }
                if let Some(p) = sentinel_password {
                    b = b.set_client_to_sentinel_password(p.expose());
                }
                if tls {
                    b = b
                        .set_client_to_redis_tls_mode(TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                }
                if let Some(certs) = certs {
                    b = b
                        .set_client_to_redis_certificates(certs.clone())
                        .set_client_to_sentinel_certificates(certs);
                }
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                Link::Sentinel(Arc::new(Master::new(
                    b.build().map_err(bad)?,
                    config,
                    master.clone(),
                )))
            }
        })
    }

    /// The connection, made on first use.
    pub(super) async fn conn(&self) -> RedisResult<Conn> {
        match self {
            Link::Single {
                client,
                config,
                conn,
            } => conn
                .get_or_try_init(|| {
                    ConnectionManager::new_with_config(client.clone(), config.clone())
                })
                .await
                .cloned()
                .map(Conn::Single),
            Link::Cluster { client, conn } => conn
                .get_or_try_init(|| async {
                    tokio::time::timeout(CLUSTER_SETUP_TIMEOUT, client.get_async_connection())
                        .await
                        .map_err(|_| timed_out("connecting to the cluster"))?
                })
                .await
                .cloned()
                .map(Conn::Cluster),
            Link::Sentinel(master) => master.conn().await.map(Conn::Sentinel),
        }
    }
}

/// A node's address, TLS or not.
fn address(host: &str, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_string(), port)
    }
}

/// An I/O timeout, as the client's own timeouts report it.
pub(super) fn timed_out(what: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}
