//! How the gateway serves, end to end: TLS on the listener with HTTP/2 through
//! ALPN, https upstreams checked against a configured CA, clear 502 and 504 pages,
//! the header-size and connection limits, the request id, and the admin
//! listener's health, readiness and metrics.

mod common;

use std::time::Duration;

use common::tls::TestPki;
use common::*;
use oneaccess_sim::echo::Echo;
use oneaccess_sim::{Sim, SimConfig};

/// The standard config with `server_tables` (e.g. `[server.tls]`) added to the
/// server section and the public URL's scheme set to `scheme`.
fn config(
    port: u16,
    sim: &Sim,
    echo: &Echo,
    scheme: &str,
    server_tables: &str,
    extra: &str,
) -> String {
    let text = config_text(port, sim, echo, "", extra).replacen(
        &format!("public_url = \"http://localhost:{port}\""),
        &format!("public_url = \"{scheme}://localhost:{port}\""),
        1,
    );
    text.replacen("\n[session]", &format!("\n{server_tables}\n[session]"), 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_listener_speaks_http2_and_logs_a_user_in() {
    let pki = TestPki::new();
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let port = free_port();
    let tls = format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.cert_path.display(),
        pki.key_path.display()
    );
    let _gw = start_gateway(&config(port, &sim, &echo, "https", &tls, "")).await;
    let url = |p: &str| format!("https://localhost:{port}{p}");

    // ALPN picks HTTP/2 for a client that offers it.
    let r = pki
        .client()
        .get(url("/public/x"))
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    // And HTTP/1.1 still works for one that does not.
    let h1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("CA")])
        .http1_only()
        .build()
        .expect("client");
    let r = h1.get(url("/public/x")).send().await.expect("https/1.1");
    assert_eq!(
        (r.status().as_u16(), r.version()),
        (200, reqwest::Version::HTTP_11)
    );

    // A whole login over TLS: the session cookie is `__Host-`, `Secure`.
    let browser = Browser::with_client(pki.client());
    let hops = browser.visit(&url("/app")).await;
    let posted = browser.submit_login(hops.last().expect("form"), USER).await;
    let last = browser.follow(posted).await.pop().expect("final");
    assert_eq!(last.status, 200, "{}", last.body);
    assert_alice_headers(&last);
    let session = browser.cookie("localhost", "__Host-oag_session");
    assert!(
        session.is_some(),
        "cookies: {:?}",
        browser.cookies("localhost")
    );

    // A client that does not trust the certificate gets no page.
    let stranger = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(pki.untrusted_ca_pem.as_bytes()).expect("CA"),
        ])
        .build()
        .expect("client");
    assert!(stranger.get(url("/public/x")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn https_upstreams_are_checked_against_the_configured_ca() {
    let pki = TestPki::new();
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let trusted = pki.echo().await;
    let untrusted = pki.untrusted_echo().await;
    let port = free_port();
    let upstream = format!(
        "[server.upstream]\nca_file = \"{}\"\n",
        pki.ca_pem_path.display()
    );
    let routes = format!(
        r#"
[[route]]
path = "/secure"
upstream = "{trusted}"
protocol = "public"

[[route]]
path = "/forged"
upstream = "{untrusted}"
protocol = "public"

[[route]]
path = "/unchecked"
upstream = "{untrusted}"
upstream_tls_verify = false
protocol = "public"
"#,
        trusted = trusted.base_url(),
        untrusted = untrusted.base_url(),
    );
    let _gw = start_gateway(&config(port, &sim, &echo, "http", &upstream, &routes)).await;
    let b = Browser::new();
    let url = |p: &str| format!("http://localhost:{port}{p}");

    let r = b.get(&url("/secure/page")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(trusted.requests(), 1);

    // A certificate from another CA: the request never reaches the app.
    let r = b.get(&url("/forged/page")).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("not answering"), "{}", r.body);
    // The gateway closes the connection after a failure, and says so: a client
    // must not send its next request down it.
    assert_eq!(r.headers["connection"], "close");
    assert_eq!(untrusted.requests(), 0);

    // Unless the route says not to check (development only).
    let r = b.get(&url("/unchecked/page")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(untrusted.requests(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_down_or_slow_upstream_gets_a_clear_answer_not_a_hang() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let port = free_port();
    let routes = format!(
        r#"
[[route]]
path = "/down"
upstream = "http://127.0.0.1:{closed}"
protocol = "public"

[[route]]
path = "/slow"
upstream = "{{upstream}}"
protocol = "public"
read_timeout_seconds = 1
"#,
        closed = free_port(),
    );
    let _gw = start_gateway(&config(port, &sim, &echo, "http", "", &routes)).await;
    let b = Browser::new();
    let url = |p: &str| format!("http://localhost:{port}{p}");

    let r = b.get(&url("/down/x")).await;
    assert_eq!(r.status, 502);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.body.contains("not answering"), "{}", r.body);
    // An API client gets the same news as JSON.
    let r = b
        .get_with(&url("/down/x"), &[("accept", "application/json")])
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "upstream_unavailable");

    let started = std::time::Instant::now();
    let r = b.get(&url("/slow/x?delay_ms=3000")).await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(started.elapsed() < Duration::from_millis(2900));
    // The route's own timeout only: a quick answer still passes.
    assert_eq!(b.get(&url("/slow/x?delay_ms=100")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_get_431_and_the_limit_is_configurable() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let port = free_port();
    let limits = "[server.limits]\nmax_request_header_bytes = 4096\n";
    let _gw = start_gateway(&config(port, &sim, &echo, "http", limits, "")).await;
    let b = Browser::new();
    let url = format!("http://localhost:{port}/public/x");
    let small = "a".repeat(1000);
    assert_eq!(b.get_with(&url, &[("x-filler", &small)]).await.status, 200);
    let big = "a".repeat(5000);
    let r = b.get_with(&url, &[("x-filler", &big)]).await;
    assert_eq!(r.status, 431);
    assert_eq!(echo.requests(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_limit_are_closed_and_the_others_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let port = free_port();
    let limits = "[server.limits]\nmax_connections = 2\n";
    let _gw = start_gateway(&config(port, &sim, &echo, "http", limits, "")).await;
    let request = "GET /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n";

    // Two kept-alive connections, each served once and left open.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(request.as_bytes()).await.expect("write");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.expect("read");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        held.push(s);
    }
    // The third is closed without an answer.
    let answer = raw_response(port, request).await;
    assert_eq!(answer, "", "a third connection was served");

    // Once one closes, a new connection is served again.
    drop(held.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let answer = raw_response(
            port,
            "GET /public/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_request_has_an_id_upstream_and_in_the_answer() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let port = free_port();
    let _gw = start_gateway(&config(port, &sim, &echo, "http", "", "")).await;
    let b = Browser::new();
    let url = format!("http://localhost:{port}/public/x");

    let r = b.get(&url).await;
    let id = r.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(r.upstream_header("x-request-id"), std::slice::from_ref(&id));
    let again = b.get(&url).await;
    assert_ne!(again.headers["x-request-id"].to_str().unwrap(), id);

    // A client that is not a trusted proxy cannot choose the id.
    let r = b
        .get_with(&url, &[("x-request-id", "chosen-by-client")])
        .await;
    assert_ne!(r.headers["x-request-id"], "chosen-by-client");
    assert_eq!(r.upstream_header("x-request-id").len(), 1);
    // The gateway's own answers carry one too.
    let r = b
        .get(&format!("http://localhost:{port}/nowhere-routed"))
        .await;
    assert!(r.headers.contains_key("x-request-id"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxys_request_id_is_kept() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let port = free_port();
    let text = config(port, &sim, &echo, "http", "", "").replacen(
        "threads = 2",
        "threads = 2\ntrusted_proxies = [\"127.0.0.0/8\"]",
        1,
    );
    let _gw = start_gateway(&text).await;
    let r = Browser::new()
        .get_with(
            &format!("http://localhost:{port}/public/x"),
            &[("x-request-id", "edge-42:abc")],
        )
        .await;
    assert_eq!(r.headers["x-request-id"], "edge-42:abc");
    assert_eq!(r.upstream_header("x-request-id"), ["edge-42:abc"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_listener_reports_health_readiness_and_metrics() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let (port, admin) = (free_port(), free_port());
    let server = format!("admin_listen = \"127.0.0.1:{admin}\"\n");
    let text = config(port, &sim, &echo, "http", "", "").replacen(
        "threads = 2",
        &format!("threads = 2\n{server}"),
        1,
    );
    let _gw = start_gateway(&text).await;
    let b = Browser::new();
    let admin_url = |p: &str| format!("http://127.0.0.1:{admin}{p}");

    let r = b.get(&admin_url("/healthz")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = b.get(&admin_url("/readyz")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ready"], true);
    // The admin endpoints are not on the proxy's listener.
    assert_eq!(
        b.get(&format!("http://localhost:{port}/metrics"))
            .await
            .status,
        302
    );

    let page = b.login(&format!("http://localhost:{port}/app"), USER).await;
    assert_eq!(page.status, 200);
    b.get(&format!("http://localhost:{port}/public/x")).await;

    let expected = [
        "oneaccess_gateway_requests_total{route=\"/\",status=\"200\",outcome=\"authenticated\"} 1",
        // The probe of /metrics on the proxy's listener, and the login.
        "oneaccess_gateway_requests_total{route=\"/\",status=\"302\",outcome=\"login_required\"} 2",
        "oneaccess_gateway_requests_total{route=\"/public\",status=\"200\",outcome=\"public\"} 1",
        "oneaccess_gateway_requests_total{route=\"none\",status=\"302\",outcome=\"callback\"} 1",
        "oneaccess_gateway_logins_started_total{protocol=\"oidc\"} 2",
        "oneaccess_gateway_logins_completed_total{protocol=\"oidc\"} 1",
        "oneaccess_gateway_idp_request_duration_seconds_count{endpoint=\"token endpoint\"} 1",
        "oneaccess_gateway_idp_request_duration_seconds_count{endpoint=\"discovery\"} 1",
        "oneaccess_gateway_jwks_refreshes_total 1",
        "oneaccess_gateway_idp_errors_total{endpoint=\"token endpoint\"} 0",
        "oneaccess_gateway_ready 1",
    ];
    metrics_with(admin, &expected).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn not_ready_while_the_session_store_is_unreachable() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let (port, admin) = (free_port(), free_port());
    let session = format!(
        "mode = \"server\"\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{}/0\"",
        free_port()
    );
    let text = config_text_with(port, &sim, &echo, &session, "", "").replacen(
        "threads = 2",
        &format!("threads = 2\nadmin_listen = \"127.0.0.1:{admin}\""),
        1,
    );
    let _gw = start_gateway(&text).await;
    let r = Browser::new()
        .get(&format!("http://127.0.0.1:{admin}/readyz"))
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["ready"], false);
    assert!(
        r.json()["problems"][0]
            .as_str()
            .unwrap()
            .contains("session store"),
        "{}",
        r.body
    );
    let m = Browser::new()
        .get(&format!("http://127.0.0.1:{admin}/metrics"))
        .await;
    let errors = m
        .body
        .lines()
        .find_map(|l| l.strip_prefix("oneaccess_gateway_session_store_errors_total "))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("store errors metric");
    assert!(errors >= 1, "{}", m.body);
}

/// Requests in flight together each hold an upstream connection. When they end,
/// the worker keeps them all (up to `server.upstream.max_idle_connections`) for
/// the next wave, instead of closing all but Pingora's default 128 and making the
/// next requests connect again: a pinned worker at 1,000 clients connected anew
/// ~1,500 times a second, and served cookie sessions at 8,250–8,429 requests/s
/// against 12,223–14,080 with the pool sized (README, "How fast").
#[tokio::test(flavor = "multi_thread")]
async fn a_wave_of_concurrent_requests_reuses_the_last_wave_s_upstream_connections() {
    const WAVE: usize = 200;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let echo = Echo::start().await.expect("echo");
    let port = free_port();
    // One worker: one pool, so every connection of one wave is there for the next.
    let text = config(port, &sim, &echo, "http", "", "").replacen("threads = 2", "threads = 1", 1);
    let _gw = start_gateway(&text).await;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/public/wave?delay_ms=300");
    let wave = || async {
        let requests: Vec<_> = (0..WAVE)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move { client.get(&url).send().await.map(|r| r.status()) })
            })
            .collect();
        for r in requests {
            assert_eq!(r.await.expect("join").expect("request"), 200);
        }
    };
    wave().await;
    let first = echo.connections();
    assert!(
        first >= WAVE as u64,
        "the first wave was not in flight at once: {first} connections"
    );
    wave().await;
    assert_eq!(
        echo.connections() - first,
        0,
        "the second wave connected to the upstream again"
    );
    assert_eq!(echo.requests(), 2 * WAVE as u64);
}
