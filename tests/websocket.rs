//! WebSockets and long polling end to end through the gateway: the upgrade request
//! is authenticated like any other, carries the user's identity (never the
//! client's own claim) to the app, and a slow answer is not cut short.

mod common;

use std::time::{Duration, Instant};

use common::tls::TestPki;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// How long any single WebSocket step may take before the test fails (rather
/// than hangs).
const STEP: Duration = Duration::from_secs(10);

/// The WebSocket handshake request for `path` on the gateway, with `headers`.
/// The TCP connection goes to 127.0.0.1 (what the gateway listens on), the Host
/// header says `localhost:PORT`, as a browser at the public URL would.
fn handshake(
    env: &Env,
    path: &str,
    headers: &[(&str, &str)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://localhost:{}{path}", env.port)
        .into_client_request()
        .expect("a WebSocket request");
    for (name, value) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName =
            name.parse().expect("a header name");
        req.headers_mut()
            .append(name, HeaderValue::from_str(value).expect("a header value"));
    }
    req
}

/// Opens a WebSocket through the gateway: `Ok` with the socket after a 101, or
/// the handshake error (an HTTP answer other than 101 among them).
async fn ws_open(env: &Env, path: &str, headers: &[(&str, &str)]) -> Result<Ws, WsError> {
    let tcp = TcpStream::connect(("127.0.0.1", env.port))
        .await
        .expect("connect to the gateway");
    let req = handshake(env, path, headers);
    let (ws, resp) = tokio::time::timeout(STEP, tokio_tungstenite::client_async(req, tcp))
        .await
        .expect("the handshake answered in time")?;
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    Ok(ws)
}

/// Sends `text` and returns the text message that comes back.
async fn round_trip(ws: &mut Ws, text: &str) -> String {
    ws.send(Message::text(text)).await.expect("send");
    let msg = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("an answer in time")
        .expect("the socket is still open")
        .expect("a message, not an error");
    match msg {
        Message::Text(t) => t.as_str().to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The `Cookie` header a browser would send to the gateway after logging in.
fn session_cookie(b: &Browser) -> String {
    let jar = b.cookies("localhost");
    assert!(
        jar.contains_key("oag_session"),
        "logged in, so there is a session cookie: {jar:?}"
    );
    jar.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A gateway and a browser logged in as Alice; returns her `Cookie` header too.
async fn logged_in() -> (Env, Browser, String) {
    let env = start().await;
    let b = Browser::new();
    let page = b.login(&env.url("/"), USER).await;
    assert_eq!(page.status, 200, "login ends on the app: {}", page.body);
    let cookie = session_cookie(&b);
    (env, b, cookie)
}

/// The status of a refused handshake (panics on a 101).
fn refused_status(result: Result<Ws, WsError>) -> u16 {
    match result {
        Ok(_) => panic!("the upgrade was accepted (101) without a session"),
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP answer to the handshake, got {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_in_user_gets_a_websocket_that_carries_her_identity() {
    let (env, _b, cookie) = logged_in().await;
    let before = env.echo.requests();

    let mut ws = ws_open(&env, "/app/ws", &[("cookie", &cookie)])
        .await
        .expect("a logged-in upgrade is switched (101)");
    assert_eq!(
        round_trip(&mut ws, "hello").await,
        format!("{ALICE_ID}: hello"),
        "the app saw Alice's id in X-Forwarded-User on the upgrade request"
    );
    // The connection stays a WebSocket: more messages, text and binary, both ways.
    assert_eq!(
        round_trip(&mut ws, "again").await,
        format!("{ALICE_ID}: again")
    );
    let big = vec![0xA5u8; 256 * 1024];
    ws.send(Message::binary(big.clone())).await.expect("send");
    let back = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("an answer in time")
        .expect("open")
        .expect("a message");
    let mut want = format!("{ALICE_ID}: ").into_bytes();
    want.extend_from_slice(&big);
    assert!(
        back == Message::binary(want),
        "a 256 KiB binary message comes back whole"
    );

    ws.close(None).await.expect("close");
    let end = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("the close is answered in time");
    assert!(
        matches!(end, None | Some(Ok(Message::Close(_)))),
        "the close handshake completes: {end:?}"
    );
    assert_eq!(
        env.echo.requests(),
        before + 1,
        "one upgrade request reached the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_without_a_session_never_reaches_the_app() {
    let env = start().await;

    // A browser's WebSocket says `Sec-Fetch-Mode: websocket`: a script, not a
    // navigation, so it gets the API answer, 401.
    let browser_like = ws_open(
        &env,
        "/app/ws",
        &[
            ("sec-fetch-mode", "websocket"),
            ("origin", &format!("http://localhost:{}", env.port)),
        ],
    )
    .await;
    assert_eq!(
        refused_status(browser_like),
        401,
        "a browser's WebSocket without a session gets 401"
    );

    // A bare client sends none of the hints: refused too (whatever the form of
    // the refusal, never 101).
    let bare = refused_status(ws_open(&env, "/app/ws", &[]).await);
    assert!(
        bare == 401 || bare == 302,
        "a bare WebSocket client without a session is refused with 401 or a redirect, got {bare}"
    );

    // A forged or stale cookie is no session.
    let forged = refused_status(
        ws_open(
            &env,
            "/app/ws",
            &[
                ("sec-fetch-mode", "websocket"),
                ("cookie", "oag_session=AAAAforged"),
            ],
        )
        .await,
    );
    assert_eq!(forged, 401, "a forged session cookie gets 401");

    assert_eq!(env.echo.requests(), 0, "no refused upgrade reached the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_identity_on_the_upgrade_is_replaced() {
    let (env, _b, cookie) = logged_in().await;
    let mut ws = ws_open(
        &env,
        "/app/ws",
        &[
            ("cookie", &cookie),
            ("x-forwarded-user", "mallory"),
            ("X-Forwarded-User", "root"),
            ("x_forwarded_user", "admin"),
        ],
    )
    .await
    .expect("a logged-in upgrade is switched (101)");
    // The echo prefixes every X-Forwarded-User value it got, so a value left
    // beside the real one would show here.
    assert_eq!(
        round_trip(&mut ws, "who am i").await,
        format!("{ALICE_ID}: who am i"),
        "only the gateway's X-Forwarded-User reached the app"
    );

    // On a public route the gateway sets no identity, and still strips the
    // client's: the app sees none at all (`-`).
    let mut ws = ws_open(&env, "/public/ws", &[("x-forwarded-user", "mallory")])
        .await
        .expect("a public route upgrades without a session");
    assert_eq!(
        round_trip(&mut ws, "hi").await,
        "-: hi",
        "a client's X-Forwarded-User never reaches the app on a public route"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_is_answered_after_its_delay() {
    let (env, b, _cookie) = logged_in().await;
    let started = Instant::now();
    let r = b.get(&env.url("/events/poll?delay_ms=3000")).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "the long poll is answered: {}", r.body);
    assert!(
        took >= Duration::from_millis(3000),
        "the echo waited 3 s, yet the answer came after {took:?}"
    );
    assert_eq!(r.json()["path"], "/events/poll");
    assert_alice_headers(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_pki_is_trusted_through_its_ca_only() {
    // The harness itself: the echo over HTTPS with the test CA's certificate is
    // verified by a client trusting that CA, and one from the other CA is not.
    let pki = TestPki::new();
    for path in [&pki.ca_pem_path, &pki.cert_path, &pki.key_path] {
        assert!(path.is_file(), "{} was written", path.display());
    }
    let echo = pki.echo().await;
    let client = pki.client();
    for base in [
        echo.base_url(),
        format!("https://localhost:{}", echo.addr().port()),
    ] {
        let r = client
            .get(format!("{base}/tls/ws"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{base} over TLS: {e:?}"));
        assert_eq!(r.status(), 200, "{base}");
    }
    let untrusted = pki.untrusted_echo().await;
    let err = client
        .get(untrusted.base_url())
        .send()
        .await
        .expect_err("a certificate from the untrusted CA must fail verification");
    assert!(err.is_connect(), "a TLS verification failure: {err:?}");
}
