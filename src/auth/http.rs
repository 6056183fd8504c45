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
pub(crate) const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One request. Its headers, form and query may carry credentials (a client
/// secret, a code, a CAS ticket): `Debug` shows only their names.
pub struct OutboundRequest {
    /// Which endpoint it is for: the metrics label and the error text.
    pub endpoint: &'static str,
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    /// Sent as `application/x-www-form-urlencoded` when not empty.
    pub form: Vec<(&'static str, String)>,
    /// A JSON body (OneAccess's role-member listing wants one, even on a GET).
    pub json: Option<String>,
}

impl std::fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |v: &[(&'static str, String)]| v.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        // The URL without its query: CAS validation carries the ticket there.
        let url = self.url.split(['?', '#']).next().unwrap_or_default();
        f.debug_struct("OutboundRequest")
            .field("endpoint", &self.endpoint)
            .field("method", &self.method)
            .field("url", &url)
            .field("headers", &names(&self.headers))
            .field("form", &names(&self.form))
            .field("json", &self.json.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl OutboundRequest {
    pub fn get(endpoint: &'static str, url: impl Into<String>) -> OutboundRequest {
        OutboundRequest {
            endpoint,
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
/// unavailable (the request's endpoint names it in the error). Other statuses are
/// the caller's to judge.
pub async fn call(
    http: &dyn HttpClient,
    req: OutboundRequest,
) -> Result<OutboundResponse, AuthError> {
    let what = req.endpoint;
    let sent = http.send(req).await;
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
}

/// A client that counts each call's latency and failure (no answer, or a 5xx)
/// in `metrics` by its endpoint, and tells `health` whether the provider is up.
pub(crate) struct Metered {
    inner: Arc<dyn HttpClient>,
    metrics: Arc<Metrics>,
    health: Arc<super::health::IdpHealth>,
}

impl Metered {
    pub(crate) fn new(
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
        let (endpoint, started) = (req.endpoint, std::time::Instant::now());
        let sent = self.inner.send(req).await;
        let answered = sent.as_ref().is_ok_and(|r| r.status < 500);
        self.metrics
            .idp_call(endpoint, started.elapsed(), !answered);
        self.health.record(answered);
        sent
    }
}

/// The client of a gateway that talks to no identity provider (no `[provider]`,
/// or a test that must never reach one): every call fails, as with the network
/// down. So a gateway always has a client, and a route's login always a
/// protocol client; whether the network answers is a runtime matter.
pub struct Offline;

#[async_trait]
impl HttpClient for Offline {
    async fn send(&self, _req: OutboundRequest) -> Result<OutboundResponse, String> {
        Err("this gateway has no connection to an identity provider".into())
    }
}

/// reqwest, one client (so one connection pool) per thread. A pooled
/// connection's task runs on the runtime that opened it, so a shared pool made
/// a worker thread's token request wake the other worker, whose runtime drove
/// that connection, and be woken back: each worker keeping its own connections
/// to the IdP keeps a login's outbound calls on its thread, as its requests are.
pub(crate) struct ReqwestClient {
    timeout: Duration,
    clients: thread_local::ThreadLocal<reqwest::Client>,
}

impl ReqwestClient {
    /// Builds the first client now, so that a setting reqwest refuses stops
    /// start-up; the other threads' are built alike on their first call.
    pub(crate) fn new(timeout: Duration) -> Result<ReqwestClient, String> {
        let c = ReqwestClient {
            timeout,
            clients: thread_local::ThreadLocal::new(),
        };
        c.client()?;
        Ok(c)
    }

    /// This thread's client.
    fn client(&self) -> Result<&reqwest::Client, String> {
        self.clients.get_or_try(|| {
            reqwest::Client::builder()
                .timeout(self.timeout)
                .connect_timeout(self.timeout)
                // The token endpoint answering with a redirect is an error, not a hop.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("oneaccess-gateway/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())
        })
    }
}

#[async_trait]
impl HttpClient for ReqwestClient {
    async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse, String> {
        let client = self.client()?;
        let mut rb = match req.method {
            Method::Get => client.get(&req.url),
            Method::Post => client.post(&req.url),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_not_values() {
        let req = OutboundRequest {
            endpoint: "token endpoint",
            method: Method::Post,
            url: "https://idp.example.com/validate?ticket=ST-secret-ticket".into(),
            headers: vec![("authorization", "Basic c2VjcmV0".into())],
            form: vec![
                ("code", "the-code".into()),
                ("client_secret", "hunter2".into()),
            ],
            json: Some("{\"k\":\"json-secret\"}".into()),
        };
        let text = format!("{req:?}");
        for secret in [
            "ST-secret-ticket",
            "c2VjcmV0",
            "the-code",
            "hunter2",
            "json-secret",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for name in [
            "authorization",
            "client_secret",
            "https://idp.example.com/validate",
        ] {
            assert!(text.contains(name), "{name} not in {text}");
        }
    }

    #[test]
    fn each_thread_calls_out_through_a_client_of_its_own() {
        let c = ReqwestClient::new(Duration::from_secs(1)).expect("client");
        let here = |c: &ReqwestClient| c.client().expect("client") as *const _ as usize;
        let first = here(&c);
        assert_eq!(here(&c), first, "one client per thread, kept");
        let other = std::thread::scope(|s| s.spawn(|| here(&c)).join().expect("thread"));
        assert_ne!(other, first, "another thread shares this one's pool");
    }
}
