//! The admin listener: `/healthz` (the process answers), `/readyz` (the config
//! is loaded, OIDC discovery is done, the session store answers) and `/metrics`
//! (Prometheus), and `POST /sessions/revoke` (end all sessions of a user). Keep
//! it off the public network: it needs no login.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use super::live::Live;
use super::workers::ConnectionLimit;

pub struct Admin {
    live: Arc<Live>,
    /// The workers' connection counts, for the metrics.
    connections: Arc<ConnectionLimit>,
}

impl Admin {
    pub fn new(live: Arc<Live>, connections: Arc<ConnectionLimit>) -> Admin {
        Admin { live, connections }
    }

    fn metrics(&self) -> String {
        let mut text = self.live.gateway().render_metrics();
        crate::metrics::worker_connections(&mut text, self.connections.open_by_worker());
        text
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let post = session.req_header().method == http::Method::POST;
        match path.as_str() {
            "/sessions/revoke" if post => {
                let content_type = session
                    .req_header()
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                // Up to 4 KiB; larger or unreadable is refused alike.
                let Ok(Some(body)) = super::read_body(session, 4096).await else {
                    return answer(
                        413,
                        "application/json",
                        b"{\"error\":\"body too large\"}".to_vec(),
                    );
                };
                let (status, body) = self
                    .live
                    .gateway()
                    .events()
                    .admin_revoke(content_type.as_deref(), &body, crate::session::now_secs())
                    .await;
                answer(status, "application/json", body.into_bytes())
            }
            "/sessions/revoke" => answer(405, "text/plain", b"POST only\n".to_vec()),
            "/healthz" => answer(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let problems = self.live.gateway().readiness().await;
                let body = serde_json::json!({
                    "ready": problems.is_empty(),
                    "problems": problems,
                });
                let status = if problems.is_empty() { 200 } else { 503 };
                answer(status, "application/json", body.to_string().into_bytes())
            }
            "/metrics" => answer(
                200,
                "text/plain; version=0.0.4",
                self.metrics().into_bytes(),
            ),
            _ => answer(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}

fn answer(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut r = Response::new(body);
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    let len = r.body().len();
    let h = r.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    h.insert(http::header::CONTENT_LENGTH, len.into());
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}
