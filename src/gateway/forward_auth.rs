//! Forward auth: nginx `auth_request`, Traefik `forwardAuth` and Caddy
//! `forward_auth` ask the gateway about a request they are about to serve. The
//! original method and URL come from forwarding headers, believed only from a
//! configured trusted proxy (oauth2-proxy GHSA-7x63: a client-set
//! `X-Forwarded-Uri` must not pick the rules it is judged by). Each endpoint
//! reads one family of headers and no other, because a proxy passes on the
//! client's headers that it does not set itself: `auth` reads nginx's
//! `X-Original-URL` and `X-Original-Method`; `verify` reads Traefik's and Caddy's
//! `X-Forwarded-Method`, `-Host` and `-Uri`. The request is then judged exactly
//! as the proxy judges one (`judge`).

use std::sync::Arc;

use http::request::Parts;

use super::login::Logins;
use super::verdict::{Judge, Verdict};
use super::{Gateway, Query};
use crate::auth::redirect::safe_return_url;
use crate::config::ServerSettings;
use crate::front_door::{Entry, FrontDoor, Refusal, Request};
use crate::metrics::Outcome;
use crate::reply::{Answer, Reply};
use crate::route::Route;

/// Forward auth, and what it may touch.
#[derive(Clone, Copy)]
pub(crate) struct ForwardAuth<'g> {
    server: &'g ServerSettings,
    /// The original request is admitted as a proxied one is,
    front_door: FrontDoor<'g>,
    /// and judged as one is.
    judge: Judge<'g>,
    /// `start` begins a login.
    logins: Logins<'g>,
}

impl Gateway {
    pub(crate) fn forward_auth(&self) -> ForwardAuth<'_> {
        ForwardAuth {
            server: &self.config.server,
            front_door: self.front_door(),
            judge: self.judge(),
            logins: self.logins(),
        }
    }
}

impl ForwardAuth<'_> {
    /// The forward-auth answer: 200 with the identity headers, or the refusal.
    /// `redirect` (Traefik, Caddy) sends a browser without a session to log in;
    /// without it (nginx) the answer is 401 and nginx sends the browser to the
    /// `start` endpoint. Returns the reply, the user, an outcome for the log, and
    /// the route judged.
    pub(crate) async fn answer(
        &self,
        parts: &Parts,
        socket: Option<std::net::IpAddr>,
        redirect: bool,
        now: u64,
    ) -> (Reply, Option<String>, Outcome, Option<Arc<Route>>) {
        let trusted = socket
            .is_some_and(|ip| crate::policy::is_trusted_proxy(ip, &self.server.trusted_proxies));
        if !trusted {
            tracing::warn!(peer = ?socket, "forward auth asked by a peer that is not a trusted proxy");
            let reply = Answer::UntrustedProxy.reply(true);
            return (reply, None, Outcome::UntrustedProxy, None);
        }
        let family = if redirect {
            Family::Forwarded
        } else {
            Family::Original
        };
        let Some(original) = original_request(parts, family) else {
            let reply = Answer::NoOriginalUrl {
                forwarded: redirect,
            }
            .reply(true);
            return (reply, None, Outcome::NoOriginalUrl, None);
        };
        // The front door, as for a proxied request. nginx treats any status but
        // 2xx, 401 and 403 as an error: its refusals are 403.
        let entry = self.front_door.admit(Request {
            target: original.target.as_bytes(),
            host: original.host.as_deref(),
            host_required: true,
        });
        let (route, path) = match entry {
            Ok(Entry::Route { route, path }) => (route, path),
            Ok(Entry::Endpoint(_)) => {
                let reply = Answer::GatewayEndpoint.reply(true);
                return (reply, None, Outcome::NoRoute, None);
            }
            Err(refusal) => {
                if refusal == Refusal::NoRoute {
                    tracing::warn!(
                        host = original.host.as_deref().unwrap_or("-"),
                        "forward auth for an address no route covers"
                    );
                }
                let reply = Reply::for_forward_auth_refusal(refusal);
                return (reply, None, refusal.outcome(), None);
            }
        };
        match self
            .judge
            .verdict(route, &original.parts, &path, socket, redirect, now)
            .await
        {
            Verdict::Pass(pass) => {
                let mut reply = Reply::empty(200).with_cookies(pass.set_cookies);
                reply.identity = pass.headers;
                let user = pass.identity.map(|i| i.sub);
                (reply, user, pass.outcome, Some(route.clone()))
            }
            Verdict::Answer {
                mut reply,
                user,
                outcome,
            } => {
                // nginx cannot URL-encode the address it wants to come back to,
                // so the 401 carries the login start address, encoded.
                if reply.status == 401 && !redirect {
                    if let Some(url) = parts
                        .headers
                        .get("x-original-url")
                        .and_then(|v| v.to_str().ok())
                    {
                        let rd: String =
                            url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
                        reply.headers.push((
                            "x-auth-start",
                            format!("{}?rd={rd}", self.server.paths.start),
                        ));
                    }
                }
                (reply, user, outcome, Some(route.clone()))
            }
        }
    }

    /// `{prefix}/start?rd=URL`: starts a login for the route that serves `rd`, and
    /// comes back there. Where nginx sends a browser its forward auth refused with
    /// 401. `rd` must be on the route's origin or an allowed host.
    pub(crate) async fn start_for(&self, parts: &Parts, now: u64) -> Reply {
        let bad = || Answer::BadReturnUrl.reply(false);
        let q = Query::parse(parts.uri.query());
        let Some(rd) = q.get("rd") else {
            return bad();
        };
        let relative = rd.starts_with('/') && !rd.starts_with("//");
        let public = &self.server.public_origin;
        let target = if relative {
            url::Url::parse(public).and_then(|b| b.join(rd))
        } else {
            url::Url::parse(rd)
        };
        let Ok(target) = target else {
            return bad();
        };
        // The route is found as the front door finds it for `rd` itself.
        let public_host = public.split_once("://").map(|(_, h)| h);
        let entry = self.front_door.admit(Request {
            target: rd.as_bytes(),
            host: if relative { public_host } else { None },
            host_required: false,
        });
        let Ok(Entry::Route { route, .. }) = entry else {
            return bad();
        };
        if route.login.is_none()
            || safe_return_url(
                target.as_str(),
                &route.spec.origin,
                &self.server.allowed_redirect_hosts,
            )
            .is_none()
        {
            return bad();
        }
        // The login returns to `rd`: judge it as a request for that address, with
        // this request's cookies (pending logins are counted from them).
        let mut wanted = Parts::clone(parts);
        match path_and_query(&target).parse() {
            Ok(uri) => wanted.uri = uri,
            Err(_) => return bad(),
        }
        self.logins.login_redirect(route, &wanted, now, false).await
    }
}

/// `/path?query` of a URL, as a request line carries it.
fn path_and_query(url: &url::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Which forwarding headers an endpoint reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    /// nginx: `X-Original-URL` (absolute) and `X-Original-Method`.
    Original,
    /// Traefik and Caddy: `X-Forwarded-Method`, `X-Forwarded-Host` (else `Host`)
    /// and `X-Forwarded-Uri`.
    Forwarded,
}

/// The request a proxy asks about.
struct Original {
    /// Its method, path-and-query and the asking request's other headers (its
    /// cookies, `Accept`, `Authorization`), with `Host` set to the host asked about.
    parts: Parts,
    /// The target as forwarded, for the front door: nginx's absolute URL, or
    /// Traefik's and Caddy's path-and-query.
    target: String,
    /// The host asked about (Traefik, Caddy); nginx's is in its URL.
    host: Option<String>,
}

/// The request the proxy asks about, from the forwarding headers of `family`.
/// Their values are taken as sent, never normalised (a URL parser would resolve
/// `..` and hide what the app will read): the front door reads them.
fn original_request(parts: &Parts, family: Family) -> Option<Original> {
    let h = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let (method, target, host) = match family {
        // `proxy_set_header X-Original-URL $scheme://$http_host$request_uri;`
        Family::Original => (h("x-original-method"), h("x-original-url")?, None),
        Family::Forwarded => (
            h("x-forwarded-method"),
            h("x-forwarded-uri")?,
            Some(h("x-forwarded-host").or_else(|| h("host"))?),
        ),
    };
    let (authority, rest) = crate::front_door::split_target(target.as_bytes()).ok()?;
    if family == Family::Original && authority.is_none() {
        return None;
    }
    if family == Family::Forwarded && authority.is_some() {
        return None;
    }
    let host_value = host.or(authority)?;
    // The path-and-query, as the request line carries it (`rest` is the suffix
    // of `target` after its authority).
    let rest = target.get(target.len() - rest.len()..)?;
    let path_query: std::borrow::Cow<str> = if rest.starts_with('/') {
        rest.into()
    } else {
        format!("/{rest}").into()
    };
    let path_query = path_query.split('#').next().unwrap_or("/");
    let mut req = http::Request::builder()
        .method(method.unwrap_or("GET"))
        .uri(path_query)
        .body(())
        .ok()?
        .into_parts()
        .0;
    req.headers = parts.headers.clone();
    req.headers.insert(
        http::header::HOST,
        http::HeaderValue::from_str(host_value).ok()?,
    );
    Some(Original {
        parts: req,
        target: target.to_string(),
        host: host.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri("/_sso/auth");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn the_original_request_comes_from_the_forwarding_headers() {
        let o = original_request(
            &parts(&[
                ("host", "gateway:8080"),
                ("x-original-url", "https://app.example.com:8443/a/b?x=1"),
                ("x-original-method", "POST"),
                ("cookie", "oag_session=v"),
            ]),
            Family::Original,
        )
        .expect("original");
        assert_eq!(o.parts.method, http::Method::POST);
        assert_eq!(o.parts.uri, "/a/b?x=1");
        assert_eq!(o.parts.headers["host"], "app.example.com:8443");
        assert_eq!(o.parts.headers["cookie"], "oag_session=v");
        assert_eq!(o.target, "https://app.example.com:8443/a/b?x=1");
        assert_eq!(o.host, None);

        let o = original_request(
            &parts(&[
                ("host", "gateway:8080"),
                ("x-forwarded-host", "app.example.com"),
                ("x-forwarded-uri", "/admin"),
                ("x-forwarded-method", "DELETE"),
            ]),
            Family::Forwarded,
        )
        .expect("original");
        assert_eq!(o.parts.method, http::Method::DELETE);
        assert_eq!(o.parts.uri, "/admin");
        assert_eq!(o.parts.headers["host"], "app.example.com");
        assert_eq!(o.host.as_deref(), Some("app.example.com"));
    }

    #[test]
    fn each_endpoint_reads_its_own_family_and_no_other() {
        // A client's Traefik-style headers passed on by nginx change nothing.
        let o = original_request(
            &parts(&[
                ("x-original-url", "http://app/readonly/x"),
                ("x-original-method", "POST"),
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/public"),
            ]),
            Family::Original,
        )
        .expect("original");
        assert_eq!(
            (o.parts.method.as_str(), o.parts.uri.path()),
            ("POST", "/readonly/x")
        );
        // And nginx-style headers mean nothing to the Traefik endpoint.
        let o = original_request(
            &parts(&[
                ("host", "app"),
                ("x-forwarded-uri", "/admin"),
                ("x-original-url", "http://app/public"),
                ("x-original-method", "GET"),
            ]),
            Family::Forwarded,
        )
        .expect("original");
        assert_eq!(o.parts.uri.path(), "/admin");
        // nginx's endpoint wants the absolute URL, not a loose X-Original-URI.
        assert!(original_request(
            &parts(&[("host", "app"), ("x-original-uri", "/admin")]),
            Family::Original
        )
        .is_none());
    }

    #[test]
    fn a_request_without_an_original_url_or_with_a_bad_one_is_none() {
        let none = |h: &[(&str, &str)], f| original_request(&parts(h), f).is_none();
        assert!(none(&[("host", "gw")], Family::Original));
        assert!(none(&[("host", "gw")], Family::Forwarded));
        assert!(none(&[("x-original-url", "/relative")], Family::Original));
        assert!(none(&[("x-original-url", "not a url")], Family::Original));
        assert!(none(
            &[("host", "gw"), ("x-forwarded-uri", "admin")],
            Family::Forwarded
        ));
        assert!(none(
            &[
                ("host", "gw"),
                ("x-forwarded-uri", "/x"),
                ("x-forwarded-method", "BAD METHOD")
            ],
            Family::Forwarded
        ));
    }
}
