//! The echo upstream: answers any method on any path with a description of the request
//! it received (JSON, or an HTML page for browsers), plus a few special paths for tests.
//!
//! Special paths:
//! - `/set-cookie?name=X&value=Y` also sends `Set-Cookie: X=Y; Path=/`;
//! - `/status/{code}` answers with that status (200..=599);
//! - `/delay/{ms}` waits that long (at most 60 s) before answering.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use crate::server::Server;
use crate::util::{advertised, escape_html, parse_form};

const MAX_BODY: usize = 64 * 1024 * 1024;

/// A running echo upstream; dropping it stops the server.
pub struct Echo {
    server: Server,
    requests: Arc<AtomicU64>,
}

impl Echo {
    /// Starts on `127.0.0.1` with an ephemeral port.
    pub async fn start() -> io::Result<Echo> {
        Echo::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts on `addr` (port 0 picks a free port).
    pub async fn start_on(addr: SocketAddr) -> io::Result<Echo> {
        let requests = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&requests);
        let server = Server::bind(addr, true, move |_| {
            Router::new().fallback(echo).with_state(counter)
        })?;
        tracing::info!(addr = %server.addr(), "echo upstream listening");
        Ok(Echo { server, requests })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT` (an unspecified bind address is shown as loopback).
    pub fn base_url(&self) -> String {
        format!("http://{}", advertised(self.addr()))
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
}

async fn echo(State(counter): State<Arc<AtomicU64>>, req: Request) -> Response {
    counter.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
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

    let description = json!({
        "method": parts.method.as_str(),
        "path": path,
        "query": query,
        "headers": headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<Value>>(),
        "body_len": body.len(),
        "body": String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]),
    });

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
mod tests {
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
}
