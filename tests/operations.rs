//! The gateway binary as an operator runs it: JSON logs that never carry a token,
//! code, state or cookie value (a whole login's logs are grepped for the values it
//! used), and SIGHUP reloads that take a good file, refuse a bad one and keep every
//! session.

mod common;

use std::time::{Duration, Instant};

use common::process::{start_upgradable, wait_until, write, Process};
use common::*;
use oneaccess_sim::echo::Echo;
use oneaccess_sim::{Sim, SimConfig};

/// Routes that pass the user's tokens upstream, so the test learns their values.
const TOKEN_ROUTES: &str = r#"
[[route]]
path = "/with-access"
upstream = "{upstream}"
protocol = "oidc"
pass_token = "access"

[[route]]
path = "/with-id"
upstream = "{upstream}"
protocol = "oidc"
pass_token = "id"

[log]
format = "json"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn logs_carry_no_secret_and_sighup_reloads_keeping_sessions() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("oag-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("gateway.toml");
    let good = config_text(port, &sim, &echo, "", TOKEN_ROUTES);
    write(&config, &good);
    let gw = Process::start(&config, dir.join("gateway.log"));
    let b = Browser::new();
    let url = |p: &str| format!("http://localhost:{port}{p}");
    wait_until("the gateway to listen", || async {
        reqwest::get(url("/public/")).await.is_ok()
    })
    .await;

    // A whole OIDC login, keeping every secret value it shows.
    let mut secrets: Vec<(String, String)> = Vec::new();
    let hops = b.visit(&url("/with-access/page")).await;
    let posted = b.submit_login(hops.last().expect("form"), USER).await;
    let mut callback = posted.location().expect("redirect");
    for _ in 0..5 {
        if callback.starts_with(&url("/_sso/")) {
            break;
        }
        callback = b.get(&callback).await.location().expect("redirect");
    }
    for name in ["code", "state"] {
        secrets.push((name.into(), query(&callback, name).expect(name)));
    }
    for (name, value) in b.cookies("localhost") {
        secrets.push((format!("cookie {name}"), value));
    }
    let done = b.get(&callback).await;
    assert_eq!(done.status, 302, "{}", done.body);
    for (name, value) in b.cookies("localhost") {
        secrets.push((format!("cookie {name}"), value));
    }
    let page = b.get(&url("/with-access/page")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let bearer = |r: &Resp| {
        r.upstream_header("authorization")
            .first()
            .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string))
            .expect("a bearer token upstream")
    };
    secrets.push(("access token".into(), bearer(&page)));
    let page = b.get(&url("/with-id/page")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    secrets.push(("ID token".into(), bearer(&page)));

    // The logs are JSON lines, with the request id and the user. The access line
    // is written after the answer, so it may come a moment after the page.
    wait_until("the access line of the last request", || async {
        gw.logs()
            .lines()
            .any(|l| l.contains("\"target\":\"access\"") && l.contains("/with-id/page"))
    })
    .await;
    let logs = gw.logs();
    let access: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "access")
        .collect();
    let served = access
        .iter()
        .find(|v| v["path"] == "/with-id/page")
        .unwrap_or_else(|| panic!("no access line for /with-id/page in:\n{logs}"));
    assert_eq!(served["user"], ALICE_ID);
    assert_eq!(
        served["request_id"],
        page.headers["x-request-id"].to_str().unwrap()
    );
    assert!(logs.contains("login completed"), "{logs}");

    for (what, value) in &secrets {
        assert!(value.len() >= 8, "{what} is too short to grep for: {value}");
        // A token's signature or a cookie's tail, too: no part of one may leak.
        let tail = &value[value.len() - 16.min(value.len())..];
        assert!(!logs.contains(value.as_str()), "the {what} is in the logs");
        assert!(!logs.contains(tail), "part of the {what} is in the logs");
    }

    // SIGHUP with a new mapping: the same session, new headers, and a new route.
    let reloaded = good.replacen(
        "[[route]]\npath = \"/\"\nupstream",
        "[[route]]\npath = \"/\"\nheaders = { \"X-Reloaded-User\" = \"sub\" }\nupstream",
        1,
    ) + &format!(
        "\n[[route]]\npath = \"/added\"\nupstream = \"{}\"\nprotocol = \"public\"\n",
        echo.base_url()
    );
    // `[log]` must stay the last table for the route to land in `route`.
    let reloaded =
        reloaded.replace("[log]\nformat = \"json\"\n", "") + "\n[log]\nformat = \"json\"\n";
    write(&config, &reloaded);
    gw.signal("HUP");
    wait_until("the reload", || async {
        b.get(&url("/app")).await.upstream_header("x-reloaded-user") == [ALICE_ID]
    })
    .await;
    assert_eq!(b.get(&url("/added/x")).await.status, 200);
    wait_until("the reload's log line", || async {
        gw.logs().contains("configuration reloaded")
    })
    .await;

    // A bad file is refused with its errors, and the running config keeps serving.
    write(
        &config,
        &reloaded.replace("protocol = \"public\"", "protocol = \"magic\""),
    );
    gw.signal("HUP");
    wait_until("the refusal", || async {
        gw.logs().contains("configuration NOT reloaded")
    })
    .await;
    let logs = gw.logs();
    assert!(
        logs.contains("protocol"),
        "the refusal names no field:\n{logs}"
    );
    let r = b.get(&url("/app")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream_header("x-reloaded-user"), [ALICE_ID]);
    assert_eq!(b.get(&url("/added/x")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_hands_the_listener_over_without_refusing_a_request() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("oag-upgrade-{}", std::process::id()));
    let text = config_text(port, &sim, &echo, "", "");
    let (config, mut old) = start_upgradable(&dir, port, &text).await;
    let url = format!("http://127.0.0.1:{port}/public/x");

    // Clients keep coming, each on a new connection, all through the switch.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, url) = (stop.clone(), url.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let client = reqwest::Client::new();
                match client.get(&url).header("connection", "close").send().await {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        })
    };

    let new = Process::start_with(&config, dir.join("new.log"), &["--upgrade"]);
    // The new process waits on the socket until the old one is told to hand over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    old.signal("QUIT");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = old.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the old gateway never exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Served by the new process alone for a while.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.await.expect("load");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        ok as usize + failed.len()
    );
    assert!(ok > 20, "only {ok} requests went through");
    assert!(
        status.success() || status.code().is_none(),
        "old exited with {status}"
    );
    assert_eq!(reqwest::get(&url).await.expect("new").status(), 200);
    // The second worker's socket came with the first's: nothing waiting in it
    // was reset when the old process closed its copy.
    assert!(
        new.logs()
            .contains("a worker took over its socket from the previous process"),
        "{}",
        new.logs()
    );
    drop(new);
}

/// The listening TCP sockets on `port`, from /proc/net/tcp (IPv4).
fn listening_sockets(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1).is_some_and(|a| a.ends_with(&local)) && f.get(3) == Some(&"0A")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_opened_at_once_are_spread_over_the_workers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let (port, admin) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("oag-spread-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("gateway.toml");
    let text = config_text(port, &sim, &echo, "", "").replacen(
        "threads = 2",
        &format!("threads = 2\nadmin_listen = \"127.0.0.1:{admin}\""),
        1,
    );
    write(&config, &text);
    let _gw = Process::start(&config, dir.join("gateway.log"));
    let metrics = format!("http://127.0.0.1:{admin}/metrics");
    wait_until("the gateway", || async {
        reqwest::get(&metrics).await.is_ok()
    })
    .await;
    // One listening socket per worker, in one SO_REUSEPORT group: the kernel, not
    // whichever worker wakes first, picks the worker of each new connection.
    assert_eq!(listening_sockets(port), 2);

    // A burst of connections, as a load balancer's pool or wrk opens them; each
    // then makes a request and stays open.
    const N: usize = 32;
    let mut conns = Vec::new();
    for _ in 0..N {
        let c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        conns.push(c.expect("connect"));
    }
    for c in &mut conns {
        let request = format!("GET /public/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        c.write_all(request.as_bytes()).await.expect("send");
    }
    for c in &mut conns {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            c.read_exact(&mut byte).await.expect("response head");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("content-length");
        let mut body = vec![0u8; length];
        c.read_exact(&mut body).await.expect("body");
    }

    let text = reqwest::get(&metrics)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let open: Vec<usize> = (0..2)
        .map(|w| {
            let prefix = format!("oneaccess_gateway_worker_connections{{worker=\"{w}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no gauge for worker {w}:\n{text}"))
        })
        .collect();
    assert_eq!(open.iter().sum::<usize>(), N, "{open:?}");
    // The kernel hashes each connection to a worker's socket: all 32 on one
    // worker has a chance of 2 in 2^32.
    assert!(
        open.iter().all(|&n| n > 0),
        "one worker got them all: {open:?}"
    );
    drop(conns);
}
