//! The gateway binary as a process of its own, as an operator runs it: started
//! with a config file (and `--upgrade`), signalled, its logs read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_oneaccess-gateway");

/// The gateway process; killed when dropped.
pub struct Process {
    pub child: Child,
    log: PathBuf,
}

impl Process {
    pub fn start(config: &Path, log: PathBuf) -> Process {
        Process::start_with(config, log, &[])
    }

    pub fn start_with(config: &Path, log: PathBuf, args: &[&str]) -> Process {
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .args(args)
            // As verbose as an operator would go while debugging a login.
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the gateway");
        Process { child, log }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write(path: &Path, text: &str) {
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write config");
}

pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let within = Duration::from_secs(20);
    assert!(
        polls_true(within, Duration::from_millis(100), check).await,
        "timed out waiting for {what}"
    );
}

/// How long the tests give a revocation made on one gateway to reach another
/// through Redis's stream: milliseconds in practice, and far below what a
/// missed revocation shows (a server-mode copy answers for 30 s, a cookie for
/// the session's lifetime).
pub const PROPAGATION: Duration = Duration::from_secs(1);

/// Whether `check` holds within `within`, asked every 5 ms. For what reaches a
/// gateway through Redis's revocation stream when another gateway made it: in
/// milliseconds (README), but not necessarily before the answer to the request
/// that made it is back.
pub async fn holds_within<F, Fut>(within: Duration, check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    polls_true(within, Duration::from_millis(5), check).await
}

/// Whether `check` holds within `within`, asked every `every`.
async fn polls_true<F, Fut>(within: Duration, every: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// A gateway process that can be upgraded: `text` (a test config for `port`)
/// with a short grace period and an upgrade socket, written to `dir`, started,
/// and waited for. Returns the config's path (a new process started with
/// `--upgrade` reads it) and the process.
pub async fn start_upgradable(dir: &Path, port: u16, text: &str) -> (PathBuf, Process) {
    std::fs::create_dir_all(dir).expect("dir");
    let config = dir.join("gateway.toml");
    let text = text.replacen(
        "threads = 2",
        &format!(
            "threads = 2\ngrace_period_seconds = 1\nupgrade_socket = \"{}\"",
            dir.join("upgrade.sock").display()
        ),
        1,
    );
    write(&config, &text);
    let old = Process::start(&config, dir.join("old.log"));
    let url = format!("http://127.0.0.1:{port}/public/x");
    wait_until("the gateway", || async { reqwest::get(&url).await.is_ok() }).await;
    (config, old)
}

/// The `[session]` lines of a gateway sharing `redis`, in `mode`.
pub fn redis_session_lines(redis_url: &str, mode: &str) -> String {
    format!("mode = \"{mode}\"\nstore = \"redis\"\nredis_url = \"{redis_url}\"")
}

/// A gateway process (the real binary) on `port`, with the standard test config
/// (`session_extra`, `provider_extra` and `extra` as in `config_text_with`),
/// answering for `env`'s public origin: the browser's cookies for `localhost` go
/// to it and to any other such process, as behind a load balancer. Waited for.
pub async fn behind_one_origin(
    env: &super::Env,
    port: u16,
    session_extra: &str,
    provider_extra: &str,
    extra: &str,
) -> Process {
    let text = super::config_text_with(
        port,
        &env.sim,
        &env.echo,
        session_extra,
        provider_extra,
        extra,
    )
    .replace(
        &format!("public_url = \"http://localhost:{port}\""),
        &format!("public_url = \"http://localhost:{}\"", env.port),
    );
    let dir = std::env::temp_dir().join(format!("oag-one-origin-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("gateway.toml");
    write(&config, &text);
    let p = Process::start(&config, dir.join("gateway.log"));
    wait_until("the gateway process to listen", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    p
}

/// Logs `b` in as alice on the gateway process at `port` (one of those behind
/// `env`'s origin) at `path`: the IdP sends the browser back to the shared
/// origin, and the callback (OIDC, OAuth2 or CAS) goes to this process.
pub async fn login_through(b: &super::Browser, env: &super::Env, port: u16, path: &str) {
    login_as(b, env, port, path, super::USER).await
}

/// As `login_through`, as `user`.
pub async fn login_as(
    b: &super::Browser,
    env: &super::Env,
    port: u16,
    path: &str,
    user: (&str, &str),
) {
    let hops = b.visit(&format!("http://localhost:{port}{path}")).await;
    let posted = b.submit_login(hops.last().expect("form"), user).await;
    let mut next = posted.location().expect("redirect");
    for _ in 0..5 {
        if next.contains("/_sso/") {
            break;
        }
        next = b.get(&next).await.location().expect("redirect");
    }
    let cb = next.replace(
        &format!("localhost:{}", env.port),
        &format!("localhost:{port}"),
    );
    let r = b.get(&cb).await;
    assert_eq!(r.status, 302, "login through {port}: {}", r.body);
}
