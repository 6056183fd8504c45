//! The only module that speaks Pingora's proxy API: one `ProxyHttp` whose phases
//! are short and hand the decisions to `gateway`, `identity` and `route`.

pub mod respond;
pub mod server;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};

use crate::gateway::{Gateway, Verdict};
use crate::identity::Identity;
use crate::reply::Reply;
use crate::route::{is_ambiguous_path, normalize_for_matching, Route};
use crate::session::{cookie, now_secs};

pub struct GatewayProxy {
    gateway: Arc<Gateway>,
}

impl GatewayProxy {
    pub fn new(gateway: Arc<Gateway>) -> GatewayProxy {
        GatewayProxy { gateway }
    }
}

/// What a request learned on its way, for later phases and the access log.
pub struct RequestCtx {
    started: Instant,
    route: Option<Arc<Route>>,
    identity: Option<Identity>,
    /// The user of a refused request (an allowed one is in `identity`).
    user: Option<String>,
    outcome: &'static str,
    /// Identity headers to set upstream.
    upstream_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `Set-Cookie` values for the upstream's response (a refreshed session).
    set_cookies: Vec<String>,
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            route: None,
            identity: None,
            user: None,
            outcome: "",
            upstream_headers: Vec::new(),
            set_cookies: Vec::new(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let g = &self.gateway;
        let now = now_secs();
        let req = session.req_header();
        let path = req.uri.path();

        if g.is_sso_path(path) {
            let paths = &g.config.server.paths;
            let post = req.method == http::Method::POST;
            let reply = if path == paths.callback {
                ctx.outcome = "callback";
                g.callback(req, now).await
            } else if path == paths.cas_callback && post {
                // CAS Single Logout: the CAS server POSTs to the service URL.
                ctx.outcome = "cas_single_logout";
                match read_body(session, MAX_ENDPOINT_BODY).await? {
                    Some(body) => g.cas_single_logout(&body, now).await,
                    None => Reply::json_error(413, "too_large", "The request body is too large."),
                }
            } else if path == paths.cas_callback {
                ctx.outcome = "cas_callback";
                g.cas_callback(req, now).await
            } else if path == paths.backchannel_logout && post {
                ctx.outcome = "backchannel_logout";
                match read_body(session, MAX_ENDPOINT_BODY).await? {
                    Some(body) => g.backchannel_logout(&body, now).await,
                    None => Reply::json_error(413, "too_large", "The request body is too large."),
                }
            } else if path == paths.logout {
                ctx.outcome = "logout";
                g.logout(session.req_header(), now).await
            } else if path == paths.forward_auth || path == paths.forward_auth_redirect {
                let redirect = path == paths.forward_auth_redirect;
                let (reply, user, outcome) =
                    g.forward_auth(req, peer_ip(session), redirect, now).await;
                ctx.user = user;
                ctx.outcome = outcome;
                reply
            } else if path == paths.start {
                ctx.outcome = "start_login";
                g.start_for(req, now).await
            } else if let (true, Some(jwks)) = (path == paths.jwks, g.assertion_jwks()) {
                ctx.outcome = "jwks";
                let mut r = Reply::json(200, jwks);
                r.headers
                    .push(("cache-control", "public, max-age=300".into()));
                r
            } else {
                ctx.outcome = "not_found";
                Reply::page(404, "Not found", "There is nothing at this address.")
            };
            respond::send(session, reply).await?;
            return Ok(true);
        }

        if is_ambiguous_path(path) {
            ctx.outcome = "bad_path";
            let reply = Reply::page(
                400,
                "Bad request",
                "The address contains `.` or `..` segments.",
            );
            respond::send(session, reply).await?;
            return Ok(true);
        }

        let host = host_of(req);
        // Routing and policy see one normalized path (`%61dmin` is `/admin`).
        let norm = normalize_for_matching(path);
        let Some(route) = g.router.find(host, &norm).cloned() else {
            ctx.outcome = "no_route";
            let reply = Reply::page(
                404,
                "Not found",
                "No application is served at this address.",
            );
            respond::send(session, reply).await?;
            return Ok(true);
        };

        if route.peer.is_none() {
            ctx.outcome = "forward_auth_only";
            let reply = Reply::page(
                404,
                "Not found",
                "This application is reached through its own proxy, not this gateway.",
            );
            respond::send(session, reply).await?;
            return Ok(true);
        }
        let socket = peer_ip(session);
        let verdict = g.judge(&route, req, &norm, socket, true, now).await;
        ctx.route = Some(route);
        match verdict {
            Verdict::Pass(pass) => {
                ctx.outcome = pass.outcome;
                ctx.identity = pass.identity;
                ctx.upstream_headers = pass.headers;
                ctx.set_cookies = pass.set_cookies;
                Ok(false)
            }
            Verdict::Answer {
                reply,
                user,
                outcome,
            } => {
                ctx.outcome = outcome;
                ctx.user = user;
                respond::send(session, reply).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        match ctx.route.as_deref() {
            Some(Route {
                peer: Some(peer), ..
            }) => Ok(Box::new(peer.clone())),
            // request_filter answers every request without a route or a peer.
            _ => Err(Error::explain(
                ErrorType::InternalError,
                "no upstream chosen",
            )),
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let g = &self.gateway;
        // Strip, then set: every client-sent spelling of a managed header goes, on
        // public routes too, before ours are added.
        for name in g.managed.to_strip(upstream.headers.keys()) {
            upstream.remove_header(&name);
        }
        strip_gateway_cookies(g, upstream)?;
        // A route that passes the user's token never passes the client's own.
        if ctx
            .route
            .as_ref()
            .is_some_and(|r| r.spec.pass_token.is_some())
        {
            upstream.remove_header(&http::header::AUTHORIZATION);
        }
        for (name, value) in ctx.upstream_headers.drain(..) {
            upstream.insert_header(name, value)?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // An app must not overwrite or clear the gateway's cookies (that would be a
        // way to fixate or drop a user's session).
        let g = &self.gateway;
        let hostile = upstream_response
            .headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .any(|v| set_cookie_name(v.as_bytes()).is_some_and(|n| g.is_gateway_cookie(n)));
        if hostile {
            let keep: Vec<http::HeaderValue> = upstream_response
                .headers
                .get_all(http::header::SET_COOKIE)
                .iter()
                .filter(|v| !set_cookie_name(v.as_bytes()).is_some_and(|n| g.is_gateway_cookie(n)))
                .cloned()
                .collect();
            upstream_response.remove_header(&http::header::SET_COOKIE);
            for v in keep {
                upstream_response.append_header(http::header::SET_COOKIE, v)?;
            }
            tracing::warn!("dropped an upstream Set-Cookie for a gateway cookie");
        }
        for c in ctx.set_cookies.drain(..) {
            if let Ok(v) = http::HeaderValue::from_str(&c) {
                upstream_response.append_header(http::header::SET_COOKIE, v)?;
            }
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = ctx.route.as_ref().map_or("-", |r| r.label.as_str());
        let user = ctx
            .identity
            .as_ref()
            .map(|i| i.sub.as_str())
            .or(ctx.user.as_deref())
            .unwrap_or("-");
        // The path only: a query may carry a code, a state or a ticket.
        tracing::info!(
            target: "access",
            method = %session.req_header().method,
            path = %session.req_header().uri.path(),
            status,
            route,
            user,
            outcome = ctx.outcome,
            error = e.map(|e| e.etype().as_str()),
            micros = ctx.started.elapsed().as_micros() as u64,
        );
    }
}

/// Largest body the gateway's own POST endpoints read (logout tokens, CAS logout
/// requests are a few KiB).
const MAX_ENDPOINT_BODY: usize = 64 * 1024;

/// Reads a request body for an endpoint the gateway answers itself; `None` when it
/// is larger than `max`.
async fn read_body(session: &mut Session, max: usize) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

fn peer_ip(session: &Session) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

fn host_of(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())
}

/// Rewrites the `Cookie` headers without the gateway's cookies, merged into one
/// header as HTTP/1.1 upstreams expect.
fn strip_gateway_cookies(g: &Gateway, upstream: &mut RequestHeader) -> Result<()> {
    let values: Vec<&http::HeaderValue> = upstream
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .collect();
    if values.is_empty() {
        return Ok(());
    }
    let mut merged: Vec<u8> = Vec::new();
    let mut changed = values.len() > 1;
    for v in values {
        match cookie::without(v.as_bytes(), |n| g.is_gateway_cookie(n)) {
            Some(kept) => {
                changed |= matches!(kept, std::borrow::Cow::Owned(_));
                if !merged.is_empty() {
                    merged.extend_from_slice(b"; ");
                }
                merged.extend_from_slice(&kept);
            }
            None => changed = true,
        }
    }
    if !changed {
        return Ok(());
    }
    upstream.remove_header(&http::header::COOKIE);
    if !merged.is_empty() {
        let v = http::HeaderValue::from_bytes(&merged)
            .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "cookie header"))?;
        upstream.insert_header(http::header::COOKIE, v)?;
    }
    Ok(())
}

/// The cookie name a `Set-Cookie` value sets.
fn set_cookie_name(v: &[u8]) -> Option<&str> {
    let end = v
        .iter()
        .position(|b| *b == b'=' || *b == b';')
        .unwrap_or(v.len());
    std::str::from_utf8(&v[..end]).ok().map(str::trim)
}
