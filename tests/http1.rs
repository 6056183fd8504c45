//! HTTP/1 strictness, on raw sockets: each request a legacy app behind the
//! gateway could read differently from the gateway is answered 400, its
//! connection is closed, nothing of it reaches the app, and the gateway goes on
//! serving the next connection.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Writes `parts` (each its own write, a moment apart, as separate packets) and
/// reads the answer: its text, and whether the gateway closed the connection.
async fn exchange(port: u16, parts: &[&[u8]]) -> (String, bool) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    for (k, p) in parts.iter().enumerate() {
        if k > 0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        if s.write_all(p).await.is_err() {
            break;
        }
    }
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .is_ok();
    (String::from_utf8_lossy(&buf).into_owned(), closed)
}

/// The number of requests counted with `outcome`.
fn counted(env: &Env, outcome: &str) -> u64 {
    env.gateway()
        .render_metrics()
        .lines()
        .filter(|l| l.contains(&format!("outcome=\"{outcome}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The gateway still serves a plain request on a new connection.
async fn still_serving(env: &Env) {
    let req = format!(
        "GET /public/ok HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
        env.port
    );
    assert_eq!(raw_status(env.port, &req).await, 200, "the next connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_requests_get_400_and_a_closed_connection() {
    let env = start().await;
    let host = format!("Host: localhost:{}\r\n", env.port);
    let post = |headers: &str, body: &str| {
        format!("POST /public/upload HTTP/1.1\r\n{host}{headers}\r\n{body}")
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "Content-Length and Transfer-Encoding",
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "Transfer-Encoding and Content-Length",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "two Transfer-Encoding lines",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "Transfer-Encoding not exactly chunked",
            post(
                "Transfer-Encoding: gzip, chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "chunked twice in one line",
            post(
                "Transfer-Encoding: chunked, chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "a NUL in a chunk extension",
            post(
                "Transfer-Encoding: chunked\r\n",
                "5;ext=\0\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "a bare LF in a chunk extension",
            post(
                "Transfer-Encoding: chunked\r\n",
                "5;a\nb\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "a chunk size that is not hex",
            post("Transfer-Encoding: chunked\r\n", "5g\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "chunk data longer than its size",
            post("Transfer-Encoding: chunked\r\n", "5\r\nhello!\r\n0\r\n\r\n"),
        ),
        (
            "two Content-Length lines",
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
        ),
        (
            "a signed Content-Length",
            post("Content-Length: +5\r\n", "hello"),
        ),
        (
            "HTTP/1.1 without Host",
            "GET /public/x HTTP/1.1\r\nAccept: */*\r\n\r\n".to_string(),
        ),
        (
            "a Host with a path",
            "GET /public/x HTTP/1.1\r\nHost: localhost:8080/evil\r\n\r\n".to_string(),
        ),
        (
            "a Host with user info",
            "GET /public/x HTTP/1.1\r\nHost: evil@localhost\r\n\r\n".to_string(),
        ),
        (
            "a Host with a bad port",
            "GET /public/x HTTP/1.1\r\nHost: localhost:80x\r\n\r\n".to_string(),
        ),
        (
            "two Host lines",
            format!("GET /public/x HTTP/1.1\r\n{host}{host}\r\n"),
        ),
        (
            "an absolute-form target with another host",
            format!("GET http://other.example/public/x HTTP/1.1\r\n{host}\r\n"),
        ),
        (
            "an absolute-form target with a bad authority",
            "GET http://localhost:8080%2Fevil/public/x HTTP/1.1\r\n\r\n".to_string(),
        ),
        (
            "a space in the target",
            format!("GET /public/a b HTTP/1.1\r\n{host}\r\n"),
        ),
        (
            "a second request line in the target",
            format!("GET /public/a HTTP/1.1 /admin HTTP/1.1\r\n{host}\r\n"),
        ),
        (
            "a tab in the target",
            format!("GET /public/a\tb HTTP/1.1\r\n{host}\r\n"),
        ),
        (
            "a folded header line",
            format!("GET /public/x HTTP/1.1\r\n{host}X-A: 1\r\n  folded\r\n\r\n"),
        ),
        (
            "a bare LF line ending",
            format!("GET /public/x HTTP/1.1\n{host}\r\n"),
        ),
        (
            "a space before the colon",
            format!("GET /public/x HTTP/1.1\r\n{host}Transfer-Encoding : chunked\r\n\r\n"),
        ),
    ];
    let mut wrong = Vec::new();
    for (name, request) in &cases {
        let seen = env.echo.requests();
        let (answer, closed) = exchange(env.port, &[request.as_bytes()]).await;
        let status = answer.lines().next().unwrap_or("(no answer)");
        if !answer.starts_with("HTTP/1.1 400") {
            wrong.push(format!("{name}: {status}"));
        } else if !closed {
            wrong.push(format!("{name}: the connection stayed open"));
        }
        if env.echo.requests() != seen {
            wrong.push(format!("{name}: the app saw it"));
        }
        still_serving(&env).await;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        counted(&env, "malformed_request") >= 15,
        "the guard's refusals are counted:\n{}",
        env.gateway().render_metrics()
    );
}

/// The harness gives each gateway a port the kernel never hands out by itself
/// (below its ephemeral range) and never the same one twice: a port the kernel
/// picked could go, before the gateway bound it, to another test's simulator,
/// and this file's tests once talked to that simulator instead.
#[test]
fn the_harness_gives_gateways_ports_no_one_else_is_handed() {
    let (low, high) = below_ephemeral_ports();
    let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
    assert!(ports.iter().all(|p| (low..high).contains(p)), "{ports:?}");
    let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), ports.len(), "{ports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_on_a_kept_alive_connection_comes_after_the_answers_before_it() {
    let env = start().await;
    let host = format!("Host: localhost:{}\r\n", env.port);
    let good = format!("GET /public/first HTTP/1.1\r\n{host}Accept: application/json\r\n\r\n");
    let bad = format!("POST /public/x HTTP/1.1\r\n{host}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");

    // A good request, its answer read, then a bad one on the same connection.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", env.port))
        .await
        .expect("connect");
    s.write_all(good.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&buf).contains("\"query\":\"\"}") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("the first answer in time")
            .expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(buf.starts_with(b"HTTP/1.1 200"));
    s.write_all(bad.as_bytes()).await.expect("write");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("closed")
        .expect("read");
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 400"), "{rest}");
    assert_eq!(env.echo.requests(), 1, "only the first reached the app");

    // Pipelined in one packet: Pingora serves the first and closes (it does not
    // serve pipelined requests); the bad one reaches nobody.
    let (answer, closed) = exchange(env.port, &[format!("{good}{bad}").as_bytes()]).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("/public/first"), "{answer}");
    assert!(closed);
    assert_eq!(
        env.echo.requests(),
        2,
        "the bad request never reached the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_framed_requests_pass_in_any_packets() {
    let env = start().await;
    let host = format!("Host: localhost:{}\r\n", env.port);
    // A chunked upload with an extension and trailers, split mid-line, then a
    // second request on the same connection.
    let head = format!("POST /public/upload HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\nAccept: application/json\r\n\r\n");
    let parts: [&[u8]; 5] = [
        head.as_bytes(),
        b"5;name=\"v\"\r\nhel",
        b"lo\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
        b"GET /public/second HTTP/1.1\r\n",
        format!("{host}Connection: close\r\n\r\n").leak().as_bytes(),
    ];
    let (answer, closed) = exchange(env.port, &parts).await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    assert!(answer.contains("\"body\":\"hello world\""), "{answer}");
    assert!(answer.contains("/public/second"), "{answer}");
    assert!(closed);
    assert_eq!(env.echo.requests(), 2);
    // HTTP/1.0 needs no Host, and absolute-form names its own.
    let (answer, _) = exchange(env.port, &[b"GET /public/x HTTP/1.0\r\n\r\n"]).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let req = format!(
        "GET http://localhost:{}/public/x HTTP/1.1\r\nConnection: close\r\n\r\n",
        env.port
    );
    let (answer, _) = exchange(env.port, &[req.as_bytes()]).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_chunk_after_the_head_was_passed_on_ends_the_connection() {
    let env = start().await;
    let head = format!(
        "POST /public/upload HTTP/1.1\r\nHost: localhost:{}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        env.port
    );
    // The head and a first chunk go through; the next chunk line has a NUL.
    let (answer, closed) =
        exchange(env.port, &[head.as_bytes(), b"3;\0\r\nabc\r\n0\r\n\r\n"]).await;
    assert!(!answer.contains("HTTP/1.1 200"), "{answer}");
    assert!(closed, "the connection is closed");
    still_serving(&env).await;
}
