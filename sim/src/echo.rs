//! The echo upstream: answers any method on any path with a description of the request
//! it received (JSON, or an HTML page for browsers), plus a few special paths for tests.
//! It serves plain HTTP ([`Echo::start`]) or HTTPS ([`Echo::start_tls`]).
//!
//! Special paths and parameters:
//! - `/set-cookie?name=X&value=Y` also sends `Set-Cookie: X=Y; Path=/`;
//! - `/status/{code}` answers with that status (200..=599);
//! - `/delay/{ms}` waits that long (at most 60 s) before answering;
//! - `?delay_ms=N` on any path waits N ms (at most 30 000, else 400) before
//!   answering as usual (long polling);
//! - `?raw_headers` on any path adds `raw_headers` to the JSON: each header with
//!   its value's bytes in hex, as received (`headers` shows values as UTF-8, with
//!   any other byte replaced);
//! - a WebSocket upgrade on any path ending in `/ws` is accepted; every text or
//!   binary message comes back prefixed with the `X-Forwarded-User` values the
//!   upgrade request carried, joined with `, ` (`-` when none): `alice: hello`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use crate::util::{advertised, escape_html, parse_form};

mod serve;

const MAX_BODY: usize = 64 * 1024 * 1024;

/// The longest `delay_ms` the echo accepts: long enough for long-polling tests,
/// short enough that a typo cannot hang a test run.
const MAX_DELAY_MS: u64 = 30_000;

/// A running echo upstream; dropping it stops the server.
pub struct Echo {
    server: serve::Listener,
    requests: Arc<AtomicU64>,
    tls: bool,
}

impl Echo {
    /// Starts on `127.0.0.1` with an ephemeral port.
    pub async fn start() -> io::Result<Echo> {
        Echo::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts on `addr` (port 0 picks a free port).
    pub async fn start_on(addr: SocketAddr) -> io::Result<Echo> {
        Echo::bind(addr, None)
    }

    /// Starts the same app over HTTPS on `addr` (port 0 picks a free port), with a
    /// PEM certificate chain (leaf first, then intermediates) and its PEM private
    /// key. HTTP/1.1 only (ALPN `http/1.1`). A malformed chain or key, or a key that
    /// does not match the leaf, is an `InvalidInput` error.
    pub async fn start_tls(
        addr: SocketAddr,
        cert_chain_pem: &str,
        key_pem: &str,
    ) -> io::Result<Echo> {
        let acceptor = serve::tls_acceptor(cert_chain_pem, key_pem)?;
        Echo::bind(addr, Some(acceptor))
    }

    fn bind(addr: SocketAddr, tls: Option<tokio_rustls::TlsAcceptor>) -> io::Result<Echo> {
        let requests = Arc::new(AtomicU64::new(0));
        let router = Router::new()
            .fallback(echo)
            .with_state(Arc::clone(&requests));
        let https = tls.is_some();
        let server = serve::Listener::bind(addr, router, tls)?;
        tracing::info!(addr = %server.addr(), tls = https, "echo upstream listening");
        Ok(Echo {
            server,
            requests,
            tls: https,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT`, or `https://` when started with [`Echo::start_tls`]
    /// (an unspecified bind address is shown as loopback).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", advertised(self.addr()))
    }

    /// Stops the server now (dropping the handle does the same).
    pub async fn stop(self) {
        self.server.stop();
        tokio::task::yield_now().await;
    }

    /// How many requests it has answered (or started to answer).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// How many connections it has accepted (a proxy's keep-alive reuse shows
    /// as requests without new connections).
    pub fn connections(&self) -> u64 {
        self.server.connections()
    }
}

async fn echo(State(counter): State<Arc<AtomicU64>>, req: Request) -> Response {
    counter.fetch_add(1, Ordering::Relaxed);
    let (mut parts, body) = req.into_parts();
    if parts.uri.path().ends_with("/ws") && is_websocket_upgrade(&parts.headers) {
        // The identity is read from the upgrade request: the messages that follow
        // carry no headers, so this is what proves the gateway injected it there.
        let user = forwarded_user(&parts.headers);
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade.on_upgrade(move |socket| echo_socket(socket, user)),
            Err(rejection) => rejection.into_response(),
        };
    }
    if let Some(delay) = delay_ms(parts.uri.query()) {
        match delay {
            Ok(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Err(msg) => return (StatusCode::BAD_REQUEST, msg).into_response(),
        }
    }
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::BAD_REQUEST, "unreadable request body\n").into_response(),
    };
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();

    let mut status = StatusCode::OK;
    let mut set_cookie = None;
    if path == "/set-cookie" {
        let q = parse_form(query.as_bytes()).unwrap_or_default();
        match (q.get("name"), q.get("value")) {
            (Some(n), Some(v)) if !n.is_empty() => {
                match HeaderValue::from_str(&format!("{n}={v}; Path=/")) {
                    Ok(h) => set_cookie = Some(h),
                    Err(_) => status = StatusCode::BAD_REQUEST,
                }
            }
            _ => status = StatusCode::BAD_REQUEST,
        }
    } else if let Some(code) = path.strip_prefix("/status/") {
        match code.parse::<u16>().ok().filter(|c| (200..=599).contains(c)) {
            Some(c) => status = StatusCode::from_u16(c).unwrap_or(StatusCode::BAD_REQUEST),
            None => status = StatusCode::BAD_REQUEST,
        }
    } else if let Some(ms) = path.strip_prefix("/delay/") {
        match ms.parse::<u64>() {
            Ok(ms) => tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await,
            Err(_) => status = StatusCode::BAD_REQUEST,
        }
    }

    let mut description = json!({
        "method": parts.method.as_str(),
        "path": path,
        "query": query,
        "headers": headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<Value>>(),
        "body_len": body.len(),
        "body": String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]),
    });
    if url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "raw_headers") {
        description["raw_headers"] = parts
            .headers
            .iter()
            .map(|(n, v)| json!([n.as_str(), hex(v.as_bytes())]))
            .collect();
    }

    let mut resp = if matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) {
        status.into_response()
    } else if prefers_html(&parts.headers) {
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            render_html(&description, &headers),
        )
            .into_response()
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            description.to_string(),
        )
            .into_response()
    };
    if let Some(cookie) = set_cookie {
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
    resp
}

/// Lower-case hex, two digits a byte.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the request asks to become a WebSocket (`Upgrade: websocket`).
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
}

/// Every `X-Forwarded-User` value, joined with `, ` (a duplicate would show), or
/// `-` when there is none.
fn forwarded_user(headers: &HeaderMap) -> String {
    let values: Vec<String> = headers
        .get_all("x-forwarded-user")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if values.is_empty() {
        "-".to_string()
    } else {
        values.join(", ")
    }
}

/// Echoes each text or binary message prefixed with `{user}: ` until the client
/// closes (pings are answered by the WebSocket layer itself).
async fn echo_socket(mut socket: WebSocket, user: String) {
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            Message::Text(t) => Message::Text(format!("{user}: {}", t.as_str()).into()),
            Message::Binary(b) => {
                let mut out = Vec::with_capacity(user.len() + 2 + b.len());
                out.extend_from_slice(user.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(&b);
                Message::Binary(out.into())
            }
            // The WebSocket layer has queued the answering Close; reading on sends
            // it and then ends the loop (breaking here would drop the connection
            // without completing the closing handshake).
            Message::Close(_) | Message::Ping(_) | Message::Pong(_) => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}

/// The `delay_ms` query parameter: `None` when absent, else the delay or why it is
/// refused.
fn delay_ms(query: Option<&str>) -> Option<Result<u64, String>> {
    let value = url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "delay_ms")
        .map(|(_, v)| v.into_owned())?;
    Some(match value.parse::<u64>() {
        Ok(ms) if ms <= MAX_DELAY_MS => Ok(ms),
        _ => Err(format!(
            "delay_ms must be a whole number of milliseconds, at most {MAX_DELAY_MS}\n"
        )),
    })
}

/// Whether the `Accept` header ranks `text/html` at least as high as JSON (a browser).
fn prefers_html(headers: &HeaderMap) -> bool {
    let mut html_q = 0.0f32;
    let mut json_q = 0.0f32;
    for value in headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "text/html" | "application/xhtml+xml" => html_q = html_q.max(q),
                "application/json" => json_q = json_q.max(q),
                _ => {}
            }
        }
    }
    html_q > 0.0 && html_q >= json_q
}

fn render_html(description: &Value, headers: &[(String, String)]) -> String {
    let rows: String = headers
        .iter()
        .map(|(n, v)| {
            let class = if n.starts_with("x-forwarded-") {
                " class=\"fwd\""
            } else {
                ""
            };
            format!(
                "<tr{class}><td>{}</td><td>{}</td></tr>\n",
                escape_html(n),
                escape_html(v)
            )
        })
        .collect();
    let field = |k: &str| match &description[k] {
        Value::String(s) => escape_html(s),
        other => escape_html(&other.to_string()),
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Echo upstream</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}
td:first-child{{font-family:monospace}}tr.fwd{{background:#fff3b0;font-weight:bold}}
</style>
</head>
<body>
<h1>Echo upstream</h1>
<p><b>{method}</b> <code>{path}</code>{query}</p>
<p>Body: {body_len} bytes</p>
<h2>Request headers</h2>
<table>
<tr><th>Name</th><th>Value</th></tr>
{rows}</table>
<p>Highlighted rows are <code>x-forwarded-*</code> headers added by the gateway.</p>
</body>
</html>
"#,
        method = field("method"),
        path = field("path"),
        query = if field("query").is_empty() {
            String::new()
        } else {
            format!(" <code>?{}</code>", field("query"))
        },
        body_len = field("body_len"),
    )
}

#[cfg(test)]
mod tests;
