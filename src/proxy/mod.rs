//! The only module that speaks Pingora's proxy API: one `ProxyHttp` whose phases
//! are short and hand the decisions to `gateway`, `identity` and `route`.

pub mod admin;
pub mod live;
mod peers;
pub mod request_id;
pub mod respond;
pub mod server;
pub mod strict_h1;
pub mod workers;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use tracing::Instrument;

use crate::front_door::{self, Entry, Refusal};
use crate::gateway::{is_api_request, Gateway, Verdict};
use crate::identity::Identity;
use crate::metrics::Outcome;
use crate::reply::{Answer, Reply};
use crate::route::Route;
use crate::session::cookie::{self, CookieRewrite};
use crate::session::now_secs;
use live::Live;

pub(crate) struct GatewayProxy {
    live: Arc<Live>,
}

impl GatewayProxy {
    pub(crate) fn new(live: Arc<Live>) -> GatewayProxy {
        GatewayProxy { live }
    }
}

/// What a request learned on its way, for later phases and the access log.
pub(crate) struct RequestCtx {
    started: Instant,
    /// The gateway's own time on the request, taken when it leaves for the app
    /// (`added_latency`); an answer of the gateway's own takes it at the end.
    gateway_time: Option<std::time::Duration>,
    /// The gateway of the moment the request arrived, with its routes' peers (a
    /// reload does not change them).
    served: Arc<live::Served>,
    route: Option<Arc<Route>>,
    identity: Option<Identity>,
    /// The user of a refused request (an allowed one is in `identity`).
    user: Option<String>,
    outcome: Outcome,
    request_id: http::HeaderValue,
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
            gateway_time: None,
            served: self.live.served(),
            route: None,
            identity: None,
            user: None,
            outcome: Outcome::Unknown,
            request_id: http::HeaderValue::from_static("-"),
            upstream_headers: Vec::new(),
            set_cookies: Vec::new(),
        }
    }

    /// No downstream modules. Pingora's default adds its response-compression
    /// module, switched off, to every request: the gateway compresses nothing,
    /// and building that module's context and running its hooks cost about 930
    /// instructions per request (callgrind, README "How fast").
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let g = &ctx.served.gateway;
        let now = now_secs();
        let socket = peer_ip(session);
        let req = session.req_header();
        let trusted = || {
            socket.is_some_and(|ip| {
                crate::policy::is_trusted_proxy(ip, &g.config.server.trusted_proxies)
            })
        };
        ctx.request_id = request_id::for_request(req.headers.get(request_id::HEADER), trusted);

        // The front door (size, Host, target, canonical path, route), then the
        // judgement, all on the request as Pingora read it; answers come after.
        let next = match admit(g, req) {
            Err(refusal) => Next::Refused(refusal),
            Ok(Entry::Endpoint(path)) => Next::Endpoint(path.judged().to_string()),
            Ok(Entry::Route { route, .. }) if route.spec.upstream.is_none() => {
                Next::ForwardAuthOnly(route.clone())
            }
            Ok(Entry::Route { route, path }) => {
                let verdict = g
                    .judge()
                    .verdict(route, req, &path, socket, true, now)
                    .await;
                Next::Judged(route.clone(), verdict)
            }
        };
        let (route, verdict) = match next {
            Next::Judged(route, verdict) => (route, verdict),
            Next::Endpoint(path) => {
                let span = tracing::info_span!("sso", request_id = ?ctx.request_id);
                let (reply, outcome, user, route) = endpoint(g, session, &path, socket, now)
                    .instrument(span)
                    .await?;
                ctx.outcome = outcome;
                ctx.user = user;
                ctx.route = route;
                respond::send(session, reply, &ctx.request_id).await?;
                return Ok(true);
            }
            Next::Refused(refusal) => {
                ctx.outcome = refusal.outcome();
                if matches!(refusal, Refusal::Host(_)) {
                    // A request that names no valid host is not one to keep a
                    // connection open for (RFC 9112 3.2).
                    session.set_keepalive(None);
                }
                let reply = Reply::for_refusal(refusal, is_api_request(session.req_header()));
                respond::send(session, reply, &ctx.request_id).await?;
                return Ok(true);
            }
            Next::ForwardAuthOnly(route) => {
                ctx.outcome = Outcome::ForwardAuthOnly;
                ctx.route = Some(route);
                let reply = Answer::ForwardAuthOnly.reply(false);
                respond::send(session, reply, &ctx.request_id).await?;
                return Ok(true);
            }
        };
        ctx.route = Some(route);
        match verdict {
            Verdict::Pass(pass) => {
                if session.is_upgrade_req() {
                    // A WebSocket may be quiet for long: the usual 60 s between
                    // reads would cut it.
                    let idle = Some(g.config.server.upstream.websocket_idle_timeout);
                    session.set_read_timeout(idle);
                    session.set_write_timeout(idle);
                }
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
                respond::send(session, reply, &ctx.request_id).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let peer = ctx
            .route
            .as_ref()
            .and_then(|r| ctx.served.peers.of(r.spec.index));
        match peer {
            Some(peer) => {
                let mut peer = Box::new(peer.clone());
                if session.is_upgrade_req() {
                    let idle = Some(
                        ctx.served
                            .gateway
                            .config
                            .server
                            .upstream
                            .websocket_idle_timeout,
                    );
                    peer.options.read_timeout = idle;
                    peer.options.write_timeout = idle;
                }
                Ok(peer)
            }
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
        let g = &ctx.served.gateway;
        // Strip, then set: every client-sent spelling of a managed header goes, on
        // public routes too, before ours are added.
        for name in g.managed.to_strip(upstream.headers.keys()) {
            upstream.remove_header(&name);
        }
        match cookie::request_without(&upstream.headers, |n| g.is_gateway_cookie(n)) {
            CookieRewrite::Unchanged => {}
            CookieRewrite::Remove => {
                upstream.remove_header(&http::header::COOKIE);
            }
            CookieRewrite::Replace(v) => {
                upstream.remove_header(&http::header::COOKIE);
                upstream.insert_header(http::header::COOKIE, v)?;
            }
        }
        if ctx
            .route
            .as_ref()
            .is_some_and(|r| r.spec.replaces_client_authorization())
        {
            upstream.remove_header(&http::header::AUTHORIZATION);
        }
        for (name, value) in ctx.upstream_headers.drain(..) {
            upstream.insert_header(name, value)?;
        }
        upstream.insert_header(request_id::HEADER, ctx.request_id.clone())?;
        ctx.gateway_time = Some(ctx.started.elapsed());
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
        let g = &ctx.served.gateway;
        let kept =
            cookie::set_cookies_without(&upstream_response.headers, |n| g.is_gateway_cookie(n));
        if let Some(keep) = kept {
            upstream_response.remove_header(&http::header::SET_COOKIE);
            for v in keep {
                upstream_response.append_header(http::header::SET_COOKIE, v)?;
            }
            tracing::warn!(request_id = ?ctx.request_id, "dropped an upstream Set-Cookie for a gateway cookie");
        }
        for c in ctx.set_cookies.drain(..) {
            if let Ok(v) = http::HeaderValue::from_str(&c) {
                upstream_response.append_header(http::header::SET_COOKIE, v)?;
            }
        }
        upstream_response.insert_header(request_id::HEADER, ctx.request_id.clone())?;
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = error_status(e);
        if matches!(code, 502 | 504) {
            ctx.outcome = if code == 504 {
                Outcome::UpstreamTimeout
            } else {
                Outcome::UpstreamError
            };
            let upstream = ctx
                .route
                .as_ref()
                .and_then(|r| r.spec.upstream.as_ref())
                .map_or("-", |u| u.url.as_str());
            tracing::warn!(request_id = ?ctx.request_id, upstream, error = e.etype().as_str(), "upstream failed");
        }
        // Past the response header there is nothing left to tell the client.
        if code > 0 && session.response_written().is_none() {
            // The connection is closed after this answer (below): say so, or a
            // client could send its next request on it as it closes.
            session.set_keepalive(None);
            let api = is_api_request(session.req_header());
            let reply = Reply::upstream_failure(code, api);
            if let Err(e) = respond::send(session, reply, &ctx.request_id).await {
                tracing::debug!(error = %e, "could not send the error page");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// What Pingora writes about a failed request: the path only, since a query
    /// may carry a code, a state or a ticket.
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!(
            "{} {} request_id={:?}",
            req.method,
            req.uri.path(),
            ctx.request_id
        )
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let g = &ctx.served.gateway;
        let counters = match &ctx.route {
            Some(r) => &r.counters,
            None => g.metrics.unrouted(),
        };
        counters.record(ctx.outcome, status);
        counters.added_latency(ctx.gateway_time.unwrap_or_else(|| ctx.started.elapsed()));
        if !g.config.log.access_log {
            return;
        }
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
            request_id = ctx.request_id.to_str().unwrap_or("-"),
            method = %session.req_header().method,
            path = %session.req_header().uri.path(),
            status,
            route,
            user,
            outcome = ctx.outcome.as_str(),
            error = e.map(|e| e.etype().as_str()),
            micros = ctx.started.elapsed().as_micros() as u64,
        );
    }
}

/// The gateway's own endpoints (`{prefix}/…`): the reply, the outcome, the user
/// and the route judged, if any.
async fn endpoint(
    g: &Gateway,
    session: &mut Session,
    path: &str,
    socket: Option<std::net::IpAddr>,
    now: u64,
) -> Result<(Reply, Outcome, Option<String>, Option<Arc<Route>>)> {
    let paths = &g.config.server.paths;
    let max_body = g.config.server.limits.max_endpoint_body_bytes;
    let req = session.req_header();
    let post = req.method == http::Method::POST;
    let too_large = || Answer::BodyTooLarge.reply(true);
    let answer = |reply, outcome| (reply, outcome, None, None);
    Ok(if path == paths.callback {
        answer(g.logins().callback(req, now).await, Outcome::Callback)
    } else if path == paths.cas_callback && post {
        // CAS Single Logout: the CAS server POSTs to the service URL.
        let reply = match read_body(session, max_body).await? {
            Some(body) => {
                g.logouts()
                    .cas_single_logout(session.req_header(), socket, &body, now)
                    .await
            }
            None => too_large(),
        };
        answer(reply, Outcome::CasSingleLogout)
    } else if path == paths.cas_callback {
        answer(
            g.logins().cas_callback(req, now).await,
            Outcome::CasCallback,
        )
    } else if path == paths.backchannel_logout && post {
        let reply = match read_body(session, max_body).await? {
            Some(body) => g.logouts().backchannel_logout(&body, now).await,
            None => too_large(),
        };
        answer(reply, Outcome::BackchannelLogout)
    } else if let Some(events) = g.events().settings.filter(|e| e.path == path && post) {
        let body = read_body(session, events.max_body).await?;
        let now_millis = crate::session::now_millis();
        let reply = g
            .events()
            .oneaccess_event(session.req_header(), body.as_deref(), now_millis)
            .await;
        answer(reply, Outcome::OneAccessEvent)
    } else if path == paths.logout {
        answer(g.logouts().logout(req, now).await, Outcome::Logout)
    } else if path == paths.logged_out {
        answer(g.logouts().logged_out(req, now), Outcome::Logout)
    } else if path == paths.forward_auth || path == paths.forward_auth_redirect {
        let redirect = path == paths.forward_auth_redirect;
        let (reply, user, outcome, route) =
            g.forward_auth().answer(req, socket, redirect, now).await;
        (reply, outcome, user, route)
    } else if path == paths.start {
        answer(
            g.forward_auth().start_for(req, now).await,
            Outcome::StartLogin,
        )
    } else if let (true, Some(jwks)) = (path == paths.jwks, g.upstream().assertion_jwks()) {
        let mut r = Reply::json(200, jwks);
        r.headers
            .push(("cache-control", "public, max-age=300".into()));
        answer(r, Outcome::Jwks)
    } else {
        answer(Answer::NotFound.reply(false), Outcome::NotFound)
    })
}

/// The status a failed request is answered with: 504 when the upstream timed out,
/// 502 when it failed otherwise, 0 when the client is gone.
fn error_status(e: &Error) -> u16 {
    use pingora::ErrorSource;
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            504
        }
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// Reads a request body for an endpoint the gateway answers itself; `None` when it
/// is larger than `max`.
/// Shared with the admin listener: a proxy `Session` derefs to the same
/// `ServerSession`.
pub(super) async fn read_body(
    session: &mut pingora::protocols::http::ServerSession,
    max: usize,
) -> Result<Option<Vec<u8>>> {
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

/// What `request_filter` does with a request, once the front door has read it.
// Made once per request and matched at once: boxing the verdict would cost an
// allocation for nothing.
#[allow(clippy::large_enum_variant)]
enum Next {
    Refused(Refusal),
    Endpoint(String),
    ForwardAuthOnly(Arc<Route>),
    Judged(Arc<Route>, Verdict),
}

/// The front door's reading of a request Pingora parsed: its raw target, and its
/// Host (or HTTP/2 `:authority`). A Host that is not text is no host.
fn admit<'g, 'r>(g: &'g Gateway, req: &'r RequestHeader) -> Result<Entry<'g, 'r>, Refusal> {
    let limit = g.config.server.limits.max_request_header_bytes;
    if front_door::headers_too_large(req.raw_path(), &req.headers, limit) {
        return Err(Refusal::HeadersTooLarge);
    }
    let host = match req.headers.get(http::header::HOST) {
        Some(h) => Some(
            h.to_str()
                .map_err(|_| Refusal::Host(front_door::HostRefusal::Invalid))?,
        ),
        None => req.uri.authority().map(|a| a.as_str()),
    };
    g.front_door().admit(front_door::Request {
        target: req.raw_path(),
        host,
        host_required: req.version == http::Version::HTTP_11,
    })
}
