//! The echo upstream: JSON and HTML descriptions, Set-Cookie and status paths, keep-alive.

use oneaccess_sim::echo::Echo;
use serde_json::Value;

#[tokio::test]
async fn echoes_requests() {
    let echo = Echo::start().await.unwrap();
    let base = echo.base_url();
    let c = reqwest::Client::new();

    let resp = c
        .post(format!("{base}/some/path?a=1&b=two"))
        .header("X-Forwarded-For", "10.0.0.1")
        .header("Cookie", "a=b")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["query"], "a=1&b=two");
    assert_eq!(v["body_len"], 5);
    let headers = v["headers"].as_array().unwrap();
    assert!(headers.contains(&serde_json::json!(["x-forwarded-for", "10.0.0.1"])));
    assert!(headers.contains(&serde_json::json!(["cookie", "a=b"])));

    let resp = c
        .get(format!("{base}/set-cookie?name=session&value=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["set-cookie"], "session=abc; Path=/");

    for code in [201u16, 204, 404, 502] {
        let resp = c.get(format!("{base}/status/{code}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), code);
    }
    assert_eq!(
        c.get(format!("{base}/status/99"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    let resp = c
        .get(format!("{base}/page"))
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("<title>Echo upstream</title>"));
    assert!(html.contains("<tr class=\"fwd\"><td>x-forwarded-proto</td><td>https</td></tr>"));

    assert_eq!(echo.requests(), 8);
}

#[tokio::test]
async fn raw_headers_shows_the_bytes_received() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let echo = Echo::start().await.unwrap();
    let mut conn = tokio::net::TcpStream::connect(echo.addr()).await.unwrap();
    // `é` as the one ISO-8859-1 byte 0xE9 (obs-text), and UTF-8 `张`.
    let mut req = b"GET /x?raw_headers HTTP/1.1\r\nHost: echo\r\nConnection: close\r\nX-Latin: Jos\xe9\r\nX-Utf8: ".to_vec();
    req.extend_from_slice("张\r\n\r\n".as_bytes());
    conn.write_all(&req).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8(answer).unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let v: Value = serde_json::from_str(body).unwrap();
    let raw = v["raw_headers"].as_array().unwrap();
    assert!(
        raw.contains(&serde_json::json!(["x-latin", "4a6f73e9"])),
        "{raw:?}"
    );
    assert!(
        raw.contains(&serde_json::json!(["x-utf8", "e5bca0"])),
        "{raw:?}"
    );
    // Without the parameter, no such field.
    let plain: Value = reqwest::get(format!("{}/x", echo.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(plain.get("raw_headers").is_none());
}
