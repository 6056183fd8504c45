//! Outbound HTTP to the identity provider, behind one small trait so that tests can
//! put a fake in its place. The real one is reqwest with rustls.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::AuthError;
use crate::metrics::Metrics;

/// Largest body the gateway reads from the identity provider. Discovery documents,
/// JWKS and token responses are a few KiB; anything bigger is refused, not buffered.
pub const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One request. `headers` may carry credentials (`Authorization`): never log it.
#[derive(Debug)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    /// Sent as `application/x-www-form-urlencoded` when not empty.
    pub form: Vec<(&'static str, String)>,
    /// A JSON body (OneAccess's role-member listing wants one, even on a GET).
    pub json: Option<String>,
}

impl OutboundRequest {
    pub fn get(url: impl Into<String>) -> OutboundRequest {
        OutboundRequest {
            method: Method::Get,
            url: url.into(),
            headers: vec![("accept", "application/json".into())],
            form: Vec::new(),
            json: None,
        }
    }
}

#[derive(Debug)]
pub struct OutboundResponse {
    pub status: u16,
    pub body: Bytes,
}

/// Sends `req` to the identity provider: no answer, or a 5xx, is the provider being
/// unavailable (`what` names the endpoint in the error). Other statuses are the
/// caller's to judge.
pub async fn call(
    http: &dyn HttpClient,
    req: OutboundRequest,
    what: &'static str,
) -> Result<OutboundResponse, AuthError> {
    let started = std::time::Instant::now();
    let sent = http.send(req).await;
    if let Some(m) = http.metrics() {
        let failed = sent.as_ref().map_or(true, |r| r.status >= 500);
        m.idp_call(what, started.elapsed(), failed);
    }
    let resp = sent.map_err(|e| AuthError::IdpUnavailable(format!("{what}: {e}")))?;
    if resp.status >= 500 {
        return Err(AuthError::IdpUnavailable(format!(
            "{what} answered {}",
            resp.status
        )));
    }
    Ok(resp)
}

#[async_trait]
pub trait HttpClient: Send + Sync {
    /// Sends the request; `Err` only when no HTTP answer came (refused, timed out,
    /// too large). Any status is an `Ok`.
    async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse, String>;

    /// Where `call` records each call's latency and failure, if anywhere.
    fn metrics(&self) -> Option<&Metrics> {
        None
    }
}

/// The endpoint name the JWKS is fetched under (the JWKS-refresh metric).
pub const JWKS_ENDPOINT: &str = "JWKS";

/// A client whose calls are counted in `metrics` (by `call`), and whose answers
/// and failures tell `health` whether the provider is up.
pub struct Metered {
    inner: Arc<dyn HttpClient>,
    metrics: Arc<Metrics>,
    health: Arc<super::health::IdpHealth>,
}

impl Metered {
    pub fn new(
        inner: Arc<dyn HttpClient>,
        metrics: Arc<Metrics>,
        health: Arc<super::health::IdpHealth>,
    ) -> Metered {
        Metered {
            inner,
            metrics,
            health,
        }
    }
}

#[async_trait]
impl HttpClient for Metered {
    async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse, String> {
        let sent = self.inner.send(req).await;
        self.health
            .record(sent.as_ref().is_ok_and(|r| r.status < 500));
        sent
    }

    fn metrics(&self) -> Option<&Metrics> {
        Some(&self.metrics)
    }
}

pub struct ReqwestClient {
    client: reqwest::Client,
}

impl ReqwestClient {
    pub fn new(timeout: Duration) -> Result<ReqwestClient, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // The token endpoint answering with a redirect is an error, not a hop.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("oneaccess-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ReqwestClient { client })
    }
}

#[async_trait]
impl HttpClient for ReqwestClient {
    async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse, String> {
        let mut rb = match req.method {
            Method::Get => self.client.get(&req.url),
            Method::Post => self.client.post(&req.url),
        };
        for (k, v) in &req.headers {
            rb = rb.header(*k, v);
        }
        if !req.form.is_empty() {
            rb = rb.form(&req.form);
        }
        if let Some(json) = req.json {
            rb = rb
                .header("content-type", "application/json;charset=utf8")
                .body(json);
        }
        // reqwest's error text names the URL, which carries no secret here (codes
        // and secrets travel in the form body).
        let mut resp = rb.send().await.map_err(|e| without_url(&e))?;
        let status = resp.status().as_u16();
        if resp.content_length().is_some_and(|n| n as usize > MAX_BODY) {
            return Err("response body too large".into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| without_url(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err("response body too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(OutboundResponse {
            status,
            body: Bytes::from(body),
        })
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    match e.url() {
        Some(u) => format!("{kind}: {}{}", u.origin().ascii_serialization(), u.path()),
        None => kind.to_string(),
    }
}
