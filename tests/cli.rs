//! The `oneaccess-gateway` binary as an operator uses it: `check` lists every
//! problem with its TOML path and exits non-zero; `run` serves, and stops promptly
//! on SIGTERM (not after Pingora's default 300 s grace period).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_oneaccess-gateway");

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("oag-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write");
    path
}

#[test]
fn check_lists_every_problem_and_fails() {
    let path = write_config(
        "bad.toml",
        r#"
[server]
listen = "not an address"
[session]
keys = [{ value = "short", dev = true }]
[provider]
domain = "tenant.example.com"
client_id = "app"
client_secret = { value = "inline" }
[[route]]
upstream = "http://127.0.0.1:1"
protocol = "magic"
"#,
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    for want in [
        "4 configuration problems",
        "server.listen:",
        "session.keys[0]: must be 32 bytes",
        "provider.client_secret.value:",
        "route[0].protocol:",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
}

#[test]
fn check_accepts_the_shipped_demo_config() {
    let out = Command::new(BIN)
        .args([
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml"),
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (4 routes"));
}

#[test]
fn run_serves_and_stops_promptly_on_sigterm() {
    let port = common::free_port();
    // The IdP is unreachable (port 9 on loopback): start-up must go on, because
    // logged-in users do not need it.
    let path = write_config(
        "run.toml",
        &format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
grace_period_seconds = 1
shutdown_timeout_seconds = 1
[session]
keys = [{{ value = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=", dev = true }}]
state_dir = "state-{port}"
[provider]
issuer = "http://127.0.0.1:9/api/v1/oauth2"
client_id = "app"
client_secret = {{ value = "s", dev = true }}
http_timeout_seconds = 1
[[route]]
path = "/public"
upstream = "http://127.0.0.1:9"
protocol = "public"
[[route]]
upstream = "http://127.0.0.1:9"
protocol = "oidc"
"#
        ),
    );
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    let mut up = false;
    while started.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "the gateway did not listen");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let stopping = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(15),
            "still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
