//! The echo upstream's own tests: content negotiation, `delay_ms`, the WebSocket
//! endpoint, stopping, and HTTPS (with a throw-away CA made by rcgen).

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::*;

fn accept(v: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
    h
}

#[test]
fn accept_negotiation() {
    assert!(prefers_html(&accept(
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    )));
    assert!(!prefers_html(&accept("*/*")));
    assert!(!prefers_html(&accept("application/json, text/html;q=0.5")));
    assert!(!prefers_html(&HeaderMap::new()));
}

#[test]
fn delay_ms_is_parsed_and_bounded() {
    assert_eq!(delay_ms(None), None);
    assert_eq!(delay_ms(Some("a=1")), None);
    assert_eq!(delay_ms(Some("a=1&delay_ms=250")), Some(Ok(250)));
    assert_eq!(delay_ms(Some("delay_ms=30000")), Some(Ok(30_000)));
    assert!(matches!(delay_ms(Some("delay_ms=30001")), Some(Err(_))));
    assert!(matches!(delay_ms(Some("delay_ms=-1")), Some(Err(_))));
    assert!(matches!(delay_ms(Some("delay_ms=soon")), Some(Err(_))));
}

#[tokio::test]
async fn delay_ms_waits_then_answers_as_usual() {
    let echo = Echo::start().await.unwrap();
    let c = reqwest::Client::new();
    let started = Instant::now();
    let resp = c
        .get(format!("{}/poll?delay_ms=300", echo.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered after {:?}, before the asked delay",
        started.elapsed()
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["path"], "/poll");
    assert_eq!(v["query"], "delay_ms=300");

    let resp = c
        .get(format!("{}/poll?delay_ms=30001", echo.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "a delay over the cap is refused");
}

/// Opens a WebSocket to the echo at `path`, with extra handshake headers.
async fn ws_connect(
    echo: &Echo,
    path: &str,
    headers: &[(&'static str, &str)],
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{}{path}", echo.addr())
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut()
            .append(*k, HeaderValue::from_str(v).unwrap());
    }
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws
}

async fn next_text<S>(ws: &mut S) -> String
where
    S: StreamExt<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("an answer within 5 s")
        .expect("the socket is open")
        .expect("a message");
    match msg {
        WsMessage::Text(t) => t.as_str().to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[tokio::test]
async fn websocket_echoes_with_the_forwarded_user_prefix() {
    let echo = Echo::start().await.unwrap();
    let mut ws = ws_connect(&echo, "/app/ws", &[("x-forwarded-user", "alice")]).await;
    ws.send(WsMessage::text("hello")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "alice: hello");
    ws.send(WsMessage::binary(&b"\x00\x01"[..])).await.unwrap();
    let bin = ws.next().await.unwrap().unwrap();
    assert_eq!(bin, WsMessage::binary(&b"alice: \x00\x01"[..]));
    ws.close(None).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the close is answered within 5 s");
    assert!(
        matches!(end, None | Some(Ok(WsMessage::Close(_)))),
        "the closing handshake completes: {end:?}"
    );
    assert_eq!(echo.requests(), 1, "the upgrade is one request");

    // No header: `-`; two headers: both show, so a duplicate cannot hide.
    let mut ws = ws_connect(&echo, "/ws", &[]).await;
    ws.send(WsMessage::text("hi")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "-: hi");
    let mut ws = ws_connect(
        &echo,
        "/ws",
        &[("x-forwarded-user", "evil"), ("x-forwarded-user", "alice")],
    )
    .await;
    ws.send(WsMessage::text("hi")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "evil, alice: hi");
}

#[tokio::test]
async fn a_plain_get_on_ws_is_echoed_and_other_paths_do_not_upgrade() {
    let echo = Echo::start().await.unwrap();
    let c = reqwest::Client::new();
    let v: Value = c
        .get(format!("{}/ws", echo.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["path"], "/ws");

    let req = format!("ws://{}/not-a-socket", echo.addr())
        .into_client_request()
        .unwrap();
    let err = tokio_tungstenite::connect_async(req)
        .await
        .expect_err("only paths ending in /ws upgrade");
    assert!(
        matches!(err, tokio_tungstenite::tungstenite::Error::Http(ref r) if r.status() == 200),
        "{err:?}"
    );
}

#[tokio::test]
async fn stopping_the_echo_ends_its_websockets() {
    let echo = Echo::start().await.unwrap();
    let mut ws = ws_connect(&echo, "/ws", &[]).await;
    ws.send(WsMessage::text("ping")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "-: ping");
    echo.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the socket ends within 5 s of stop");
    assert!(
        !matches!(end, Some(Ok(WsMessage::Text(_)))),
        "no message after stop: {end:?}"
    );
}

/// A CA and a leaf for `localhost` and `127.0.0.1` that it signed: (CA PEM, leaf
/// PEM, leaf key PEM).
fn test_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    (ca_cert.pem(), leaf.pem(), leaf_key.serialize_pem())
}

#[tokio::test]
async fn https_serves_the_same_app_to_a_client_that_trusts_the_ca() {
    let (ca, leaf, key) = test_pki();
    let echo = Echo::start_tls(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &leaf, &key)
        .await
        .unwrap();
    assert!(echo.base_url().starts_with("https://127.0.0.1:"));

    let trusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    for base in [
        echo.base_url(),
        format!("https://localhost:{}", echo.addr().port()),
    ] {
        let resp = trusting
            .get(format!("{base}/over/tls?delay_ms=10"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{base}: {e:?}"));
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["path"], "/over/tls");
    }

    // A client trusting another CA refuses the certificate.
    let (other_ca, _, _) = test_pki();
    let distrusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(other_ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let err = distrusting
        .get(echo.base_url())
        .send()
        .await
        .expect_err("an untrusted CA must fail verification");
    assert!(err.is_connect(), "{err:?}");
}

#[tokio::test]
async fn websockets_work_over_https() {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{crypto::aws_lc_rs, ClientConfig, RootCertStore};

    let (ca, leaf, key) = test_pki();
    let echo = Echo::start_tls(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &leaf, &key)
        .await
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(echo.addr()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut req = "wss://localhost/ws".into_client_request().unwrap();
    req.headers_mut()
        .insert("x-forwarded-user", HeaderValue::from_static("bob"));
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.send(WsMessage::text("over tls")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "bob: over tls");
}

#[tokio::test]
async fn start_tls_rejects_bad_pem() {
    let (_, leaf, key) = test_pki();
    let (_, _, other_key) = test_pki();
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    for (chain, key, why) in [
        ("", key.as_str(), "no certificate"),
        (leaf.as_str(), "not a key", "no key"),
        (
            leaf.as_str(),
            other_key.as_str(),
            "a key that is not the leaf's",
        ),
    ] {
        match Echo::start_tls(any, chain, key).await {
            Ok(_) => panic!("{why}: started"),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{why}: {e}"),
        }
    }
}
