//! Real Redis deployments for the store and session tests, on free loopback
//! ports, killed (and their directories removed) when dropped: a server with TLS
//! (a throw-away CA, server and client certificates), a master with a replica and
//! three sentinels (Debian's `redis-sentinel`), and a three-master cluster made
//! by `redis-cli --cluster create`. Every data node also has the ACL user
//! [`ACL_USER`], which the stores log in as.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rcgen::ExtendedKeyUsagePurpose;

use super::free_port;
use super::tls::{new_ca, signed_cert, write};

/// The ACL user every data node here has, and its password.
pub const ACL_USER: (&str, &str) = ("gateway", "gw-secret-1");
/// The name the sentinels monitor the master by.
pub const MASTER_NAME: &str = "mymaster";

/// The `redis-server` arguments that give a node the ACL user: every key and
/// command, as a gateway needs. The default user stays (no password), so that
/// replication, sentinels and `redis-cli --cluster` need no credentials.
fn acl_args() -> Vec<String> {
    let (user, password) = ACL_USER;
    [
        "--user",
        user,
        "on",
        &format!(">{password}"),
        "~*",
        "&*",
        "+@all",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A fresh directory for one deployment's files.
pub fn scratch(name: &str) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "oag-redis-{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// One Redis process (server or sentinel) on `port`; killed when dropped.
pub struct Node {
    child: Option<Child>,
    pub port: u16,
    /// A directory of its own, removed with it.
    own_dir: Option<PathBuf>,
}

impl Node {
    /// Starts `program` with `args` (logging to `log`) and waits until `port`
    /// accepts connections.
    pub fn start(program: &str, args: &[String], port: u16, log: &Path) -> Node {
        let log_file = std::fs::File::create(log).expect("log file");
        let mut child = Command::new(program)
            .args(args)
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program} (installed by scripts/setup.sh, which .ci/run calls): {e}")
            });
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Node {
                    child: Some(child),
                    port,
                    own_dir: None,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{program} exited ({status}): {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("{program} did not listen on {port}");
    }

    /// Kills the process (SIGKILL: no goodbye to replicas or clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.own_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A data node's common arguments: loopback, no persistence, the ACL user.
fn server_args(port: u16, dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        "--dir",
        &dir.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(acl_args());
    args
}

/// A synchronous connection for the test's own checks, as the default user.
pub fn admin(port: u16) -> redis::Connection {
    try_admin(port, None).expect("admin connection")
}

/// As `admin`, over TLS when given the CA (PEM), and without panicking: for
/// checks polled while a node may drop its clients (a failover).
pub fn try_admin(port: u16, ca: Option<&[u8]>) -> redis::RedisResult<redis::Connection> {
    let client = match ca {
        None => redis::Client::open(format!("redis://127.0.0.1:{port}/"))?,
        Some(ca) => {
            // The test's own rustls client needs a provider, as the store's does.
            let _ = rustls::crypto::ring::default_provider().install_default();
            redis::Client::build_with_tls(
                format!("rediss://127.0.0.1:{port}/"),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.to_vec()),
                },
            )?
        }
    };
    client.get_connection_with_timeout(Duration::from_secs(2))
}

/// Polls `check` every 100 ms until it holds, for at most `limit`.
pub fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A master, its replica and three sentinels (quorum 2) that declare the master
/// down after a second of silence.
pub struct SentinelGroup {
    pub master: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
    pub dir: PathBuf,
    /// The CA (PEM) when everything speaks TLS only.
    ca: Option<Vec<u8>>,
}

impl SentinelGroup {
    pub fn start() -> SentinelGroup {
        SentinelGroup::start_with(None)
    }

    /// With `tls`, every node and sentinel serves TLS only, and replication
    /// and the sentinels' own connections use it too.
    pub fn start_with(tls: Option<&RedisPki>) -> SentinelGroup {
        let dir = scratch("sentinel");
        let data_node = |port: u16, extra: &[String], name: &str| {
            let mut args = server_args(port, &dir);
            if let Some(pki) = tls {
                tls_only(&mut args, port, pki);
                args.extend(["--tls-replication", "yes"].map(String::from));
            }
            args.extend(extra.iter().cloned());
            Node::start("redis-server", &args, port, &dir.join(name))
        };
        let mp = free_port();
        let master = data_node(mp, &[], "master.log");
        let rp = free_port();
        let replica = data_node(
            rp,
            &["--replicaof", "127.0.0.1", &mp.to_string()].map(String::from),
            "replica.log",
        );
        let sentinels = (0..3)
            .map(|i| {
                let sp = free_port();
                let conf = dir.join(format!("sentinel-{i}.conf"));
                let listen = match tls {
                    None => format!("port {sp}\n"),
                    Some(pki) => format!(
                        "port 0\ntls-port {sp}\ntls-cert-file {}\ntls-key-file {}\n\
                         tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
                        pki.server_cert.display(),
                        pki.server_key.display(),
                        pki.ca.display()
                    ),
                };
                // Sentinel rewrites its file (what it learns), so each has its own.
                std::fs::write(
                    &conf,
                    format!(
                        "{listen}bind 127.0.0.1\nprotected-mode no\ndaemonize no\n\
                         dir {}\n\
                         sentinel monitor {MASTER_NAME} 127.0.0.1 {mp} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                         sentinel failover-timeout {MASTER_NAME} 10000\n\
                         sentinel parallel-syncs {MASTER_NAME} 1\n",
                        dir.display()
                    ),
                )
                .expect("sentinel conf");
                Node::start(
                    "redis-sentinel",
                    &[conf.display().to_string()],
                    sp,
                    &dir.join(format!("sentinel-{i}.log")),
                )
            })
            .collect();
        let group = SentinelGroup {
            master,
            replica,
            sentinels,
            dir,
            ca: tls.map(|pki| std::fs::read(&pki.ca).expect("CA")),
        };
        group.wait_ready();
        group
    }

    /// Waits until the replica is in sync and every sentinel knows the replica
    /// and the two other sentinels: only then can a failover happen.
    fn wait_ready(&self) {
        let replica = self.replica.port;
        wait_for("the replica to sync", Duration::from_secs(20), || {
            let Ok(mut c) = self.admin(replica) else {
                return false;
            };
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut c)
                .unwrap_or_default();
            info.contains("master_link_status:up")
        });
        for s in &self.sentinels {
            wait_for(
                "the sentinels to find the replica and each other",
                Duration::from_secs(30),
                || {
                    let Ok(mut c) = self.admin(s.port) else {
                        return false;
                    };
                    let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                        .arg("replicas")
                        .arg(MASTER_NAME)
                        .query(&mut c)
                        .unwrap_or_default();
                    let others: Vec<redis::Value> = redis::cmd("SENTINEL")
                        .arg("sentinels")
                        .arg(MASTER_NAME)
                        .query(&mut c)
                        .unwrap_or_default();
                    replicas.len() == 1 && others.len() == 2
                },
            );
        }
    }

    /// `redis_sentinel = { … }` for a gateway config.
    pub fn toml(&self) -> String {
        let nodes: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("\"127.0.0.1:{}\"", s.port))
            .collect();
        format!(
            "redis_sentinel = {{ master = \"{MASTER_NAME}\", nodes = [{}] }}",
            nodes.join(", ")
        )
    }

    /// A connection to one of this group's nodes or sentinels.
    fn admin(&self, port: u16) -> redis::RedisResult<redis::Connection> {
        try_admin(port, self.ca.as_deref())
    }

    /// The sentinels' `(host, port)`, as `RedisTarget::Sentinel` takes them.
    pub fn nodes(&self) -> Vec<(String, u16)> {
        self.sentinels
            .iter()
            .map(|s| ("127.0.0.1".to_string(), s.port))
            .collect()
    }

    /// The master's port as the first sentinel that answers names it.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let mut c = self.admin(s.port).ok()?;
            let (_, port): (String, u16) = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER_NAME)
                .query(&mut c)
                .ok()?;
            Some(port)
        })
    }

    /// Waits until the master's writes so far reached the replica.
    pub fn sync_replica(&self) {
        let mut c = self.admin(self.master.port).expect("master");
        let _: () = redis::cmd("SET")
            .arg("oag-test:sync")
            .arg(1)
            .query(&mut c)
            .expect("write");
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query(&mut c)
            .expect("WAIT");
        assert_eq!(acked, 1, "the replica did not acknowledge the writes");
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        for s in &mut self.sentinels {
            s.kill();
        }
        self.master.kill();
        self.replica.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three masters sharing the 16384 slots, no replicas.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub dir: PathBuf,
}

impl Cluster {
    /// Starts three cluster-enabled servers (with `tls`: TLS only, the cluster
    /// bus too) and joins them with `redis-cli --cluster create`.
    pub fn start(tls: Option<&RedisPki>) -> Cluster {
        let dir = scratch("cluster");
        let nodes: Vec<Node> = (0..3)
            .map(|i| {
                let port = free_port();
                let mut args = server_args(port, &dir);
                args.extend(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &dir.join(format!("nodes-{i}.conf")).display().to_string(),
                        "--cluster-node-timeout",
                        "5000",
                        // The bus port, else port + 10000, which may be taken
                        // or past 65535.
                        "--cluster-port",
                        &free_port().to_string(),
                    ]
                    .map(String::from),
                );
                if let Some(pki) = tls {
                    tls_only(&mut args, port, pki);
                    args.extend(["--tls-cluster", "yes"].map(String::from));
                }
                Node::start(
                    "redis-server",
                    &args,
                    port,
                    &dir.join(format!("node-{i}.log")),
                )
            })
            .collect();
        // Bounded: a node that cannot reach the others over the bus would keep
        // `--cluster create` waiting for the join forever.
        let mut create = Command::new("timeout");
        create.args(["60", "redis-cli"]);
        if let Some(pki) = tls {
            create.args(pki.cli_args());
        }
        create.args(["--cluster", "create"]);
        create.args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli (redis-tools, installed by scripts/setup.sh)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for n in &nodes {
            wait_for("the cluster to be ok", Duration::from_secs(30), || {
                let mut info = Command::new("redis-cli");
                if let Some(pki) = tls {
                    info.args(pki.cli_args());
                }
                info.args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
                    .unwrap_or(false)
            });
        }
        Cluster { nodes, dir }
    }

    /// The nodes as `redis_cluster` lists them.
    pub fn node_list(&self) -> Vec<(String, u16)> {
        self.nodes
            .iter()
            .map(|n| ("127.0.0.1".to_string(), n.port))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes `args` serve TLS only on `port`, with `pki`'s server certificate.
/// Clients need not show a certificate unless `--tls-auth-clients yes` follows.
fn tls_only(args: &mut Vec<String>, port: u16, pki: &RedisPki) {
    let at = args.iter().position(|a| a == "--port").expect("--port") + 1;
    args[at] = "0".into();
    args.extend(
        [
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &pki.server_cert.display().to_string(),
            "--tls-key-file",
            &pki.server_key.display().to_string(),
            "--tls-ca-cert-file",
            &pki.ca.display().to_string(),
            "--tls-auth-clients",
            "no",
        ]
        .map(String::from),
    );
}

/// One Redis server serving TLS only, with the ACL user; with
/// `require_client_cert`, it refuses clients without a certificate `pki`'s CA
/// signed.
pub fn tls_server(pki: &RedisPki, require_client_cert: bool) -> Node {
    let dir = scratch("tls");
    let port = free_port();
    let mut args = server_args(port, &dir);
    tls_only(&mut args, port, pki);
    if require_client_cert {
        let last = args.len() - 1;
        args[last] = "yes".into();
    }
    let mut node = Node::start("redis-server", &args, port, &dir.join("redis.log"));
    node.own_dir = Some(dir);
    node
}

/// A throw-away CA, a server certificate for 127.0.0.1 and localhost, and a
/// client certificate, as PEM files in a scratch directory.
pub struct RedisPki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed none of these.
    pub other_ca: PathBuf,
}

impl RedisPki {
    pub fn new() -> RedisPki {
        let dir = scratch("pki");
        let (ca_pem, ca) = new_ca("redis test CA");
        let (other_pem, _) = new_ca("a CA nobody used");
        // A cluster node shows its server certificate as a client too, on the
        // cluster bus, where the other node checks it: it needs both uses.
        let (server_cert, server_key) = signed_cert(
            &ca,
            "redis test",
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        let (client_cert, client_key) =
            signed_cert(&ca, "redis test", vec![ExtendedKeyUsagePurpose::ClientAuth]);
        RedisPki {
            ca: write(&dir, "ca.pem", &ca_pem),
            other_ca: write(&dir, "other-ca.pem", &other_pem),
            server_cert: write(&dir, "server.pem", &server_cert),
            server_key: write(&dir, "server.key", &server_key),
            client_cert: write(&dir, "client.pem", &client_cert),
            client_key: write(&dir, "client.key", &client_key),
            dir,
        }
    }

    /// `redis-cli`'s TLS arguments.
    fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".into(),
            "--cacert".into(),
            self.ca.display().to_string(),
        ]
    }
}

impl Default for RedisPki {
    fn default() -> Self {
        RedisPki::new()
    }
}

impl Drop for RedisPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
