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

use super::*;
use crate::route::{is_ambiguous_path, normalize_for_matching};

impl Gateway {
    /// The forward-auth answer: 200 with the identity headers, or the refusal.
    /// `redirect` (Traefik, Caddy) sends a browser without a session to log in;
    /// without it (nginx) the answer is 401 and nginx sends the browser to the
    /// `start` endpoint. Returns the reply, the user, an outcome for the log, and
    /// the route judged.
    pub async fn forward_auth(
        &self,
        parts: &Parts,
        socket: Option<std::net::IpAddr>,
        redirect: bool,
        now: u64,
    ) -> (Reply, Option<String>, Outcome, Option<Arc<Route>>) {
        let trusted = socket.is_some_and(|ip| {
            crate::policy::is_trusted_proxy(ip, &self.config.server.trusted_proxies)
        });
        if !trusted {
            tracing::warn!(peer = ?socket, "forward auth asked by a peer that is not a trusted proxy");
            let reply = Reply::json_error(
                403,
                "untrusted_proxy",
                "Forward auth answers only the proxies listed in server.trusted_proxies.",
            );
            return (reply, None, Outcome::UntrustedProxy, None);
        }
        let family = if redirect {
            Family::Forwarded
        } else {
            Family::Original
        };
        let Some(original) = original_request(parts, family) else {
            let reply = Reply::json_error(
                403,
                "no_original_url",
                if redirect {
                    "The proxy sent no X-Forwarded-Uri."
                } else {
                    "The proxy sent no absolute X-Original-URL."
                },
            );
            return (reply, None, Outcome::NoOriginalUrl, None);
        };
        let path = original.uri.path();
        // nginx treats any status but 2xx, 401 and 403 as an error: refusals are 403.
        if is_ambiguous_path(path) {
            let reply = Reply::json_error(403, "bad_path", "The address is ambiguous.");
            return (reply, None, Outcome::BadPath, None);
        }
        let norm = normalize_for_matching(path);
        let host = original
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok());
        let Some(route) = self.router.find(host, &norm).cloned() else {
            tracing::warn!(host = host.unwrap_or("-"), path = %norm, "forward auth for an address no route covers");
            let reply = Reply::json_error(403, "no_route", "No route covers this address.");
            return (reply, None, Outcome::NoRoute, None);
        };
        match self
            .judge(&route, &original, &norm, socket, redirect, now)
            .await
        {
            Verdict::Pass(pass) => {
                let mut reply = Reply::empty(200).with_cookies(pass.set_cookies);
                reply.identity = pass.headers;
                let user = pass.identity.map(|i| i.sub);
                (reply, user, pass.outcome, Some(route))
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
                            format!("{}?rd={rd}", self.config.server.paths.start),
                        ));
                    }
                }
                (reply, user, outcome, Some(route))
            }
        }
    }

    /// `{prefix}/start?rd=URL`: starts a login for the route that serves `rd`, and
    /// comes back there. Where nginx sends a browser its forward auth refused with
    /// 401. `rd` must be on the route's origin or an allowed host.
    pub async fn start_for(&self, parts: &Parts, now: u64) -> Reply {
        let bad = || {
            Reply::page(
                400,
                "Bad request",
                "The address to return to is not allowed.",
            )
        };
        let q = Query::parse(parts.uri.query());
        let Some(rd) = q.get("rd") else {
            return bad();
        };
        let target = if rd.starts_with('/') && !rd.starts_with("//") {
            url::Url::parse(&self.config.server.public_origin).and_then(|b| b.join(rd))
        } else {
            url::Url::parse(rd)
        };
        let Ok(target) = target else {
            return bad();
        };
        let host = target.host_str().map(str::to_string);
        if is_ambiguous_path(target.path()) {
            return bad();
        }
        let norm = normalize_for_matching(target.path());
        let Some(route) = self.router.find(host.as_deref(), &norm).cloned() else {
            return bad();
        };
        if route.spec.protocol == Protocol::Public
            || safe_return_url(
                target.as_str(),
                &route.spec.origin,
                &self.config.server.allowed_redirect_hosts,
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
        self.login_redirect(&route, &wanted, now, false).await
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
#[derive(Clone, Copy)]
enum Family {
    /// nginx: `X-Original-URL` (absolute) and `X-Original-Method`.
    Original,
    /// Traefik and Caddy: `X-Forwarded-Method`, `X-Forwarded-Host` (else `Host`)
    /// and `X-Forwarded-Uri`.
    Forwarded,
}

/// The request the proxy asks about: method, host and path-and-query from the
/// forwarding headers of `family`, with the asking request's other headers (its
/// cookies, `Accept`, `Authorization`).
fn original_request(parts: &Parts, family: Family) -> Option<Parts> {
    let h = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let (method, host, path_query) = match family {
        Family::Original => {
            // `proxy_set_header X-Original-URL $scheme://$http_host$request_uri;`
            let url = url::Url::parse(h("x-original-url")?).ok()?;
            let host = match url.port() {
                Some(p) => format!("{}:{p}", url.host_str()?),
                None => url.host_str()?.to_string(),
            };
            (h("x-original-method"), host, path_and_query(&url))
        }
        Family::Forwarded => {
            let host = h("x-forwarded-host").or_else(|| h("host"))?;
            let pq = h("x-forwarded-uri")?;
            (h("x-forwarded-method"), host.to_string(), pq.to_string())
        }
    };
    if !path_query.starts_with('/') {
        return None;
    }
    let mut req = http::Request::builder()
        .method(method.unwrap_or("GET"))
        .uri(path_query.as_str())
        .body(())
        .ok()?
        .into_parts()
        .0;
    req.headers = parts.headers.clone();
    req.headers
        .insert(http::header::HOST, http::HeaderValue::from_str(&host).ok()?);
    Some(req)
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
        assert_eq!(o.method, http::Method::POST);
        assert_eq!(o.uri, "/a/b?x=1");
        assert_eq!(o.headers["host"], "app.example.com:8443");
        assert_eq!(o.headers["cookie"], "oag_session=v");

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
        assert_eq!(o.method, http::Method::DELETE);
        assert_eq!(o.uri, "/admin");
        assert_eq!(o.headers["host"], "app.example.com");
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
        assert_eq!((o.method.as_str(), o.uri.path()), ("POST", "/readonly/x"));
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
        assert_eq!(o.uri.path(), "/admin");
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
