//! An answer the gateway gives itself (redirects, error pages, JSON), as plain data,
//! and the one place where errors become status codes and pages. `proxy/respond.rs`
//! only writes a `Reply` to the wire.

use bytes::Bytes;

use crate::error::AuthError;

/// Every answer the gateway makes of its own outside a login step's errors
/// (those are `Reply::for_auth_error`): one variant, one status and one text,
/// as a page for a browser or JSON for an API client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 404: no gateway endpoint at this path.
    NotFound,
    /// 404: a route judged only through forward auth, asked directly.
    ForwardAuthOnly,
    /// 413: an endpoint's body over its limit.
    BodyTooLarge,
    /// 401: a protected resource and no session (API clients; browsers log in).
    Unauthenticated,
    /// 403: the route's policy refuses this user or request.
    PolicyDenied,
    /// 403: a header rule with `missing = "reject"` found no value.
    MissingAttribute,
    /// 400: `{prefix}/start` with a return address that is not allowed.
    BadReturnUrl,
    /// 403: forward auth asked by a peer not in `trusted_proxies`.
    UntrustedProxy,
    /// 403: forward auth without the original address (`X-Forwarded-Uri` for
    /// the redirecting endpoint, else `X-Original-URL`).
    NoOriginalUrl { forwarded: bool },
    /// 403: forward auth asked about one of the gateway's own addresses.
    GatewayEndpoint,
    /// 503: the store did not answer a logout request; the IdP retries.
    TryLater,
    /// 400: an invalid back-channel logout token.
    InvalidLogoutToken,
    /// 403: CAS single logout from outside `cas.slo_networks`.
    SingleLogoutForbidden,
    /// 400: a CAS single-logout POST without a valid `logoutRequest`.
    NoLogoutRequest,
}

impl Answer {
    /// The reply: a page, or JSON when `api` (answers only machines get are
    /// JSON whatever `api` says, and pages only browsers get are pages).
    pub(crate) fn reply(self, api: bool) -> Reply {
        let denied = "You are signed in, but this application does not allow you this request. Ask its administrator for access.";
        let lacking =
            "Your account lacks information this application requires. Ask its administrator.";
        let (status, code, title, message, page) = match self {
            Answer::NotFound => (
                404,
                "not_found",
                "Not found",
                "There is nothing at this address.",
                true,
            ),
            Answer::ForwardAuthOnly => (
                404,
                "not_found",
                "Not found",
                "This application is reached through its own proxy, not this gateway.",
                true,
            ),
            Answer::BodyTooLarge => (
                413,
                "too_large",
                "",
                "The request body is too large.",
                false,
            ),
            Answer::Unauthenticated => (
                401,
                "unauthenticated",
                "",
                "This resource needs a signed-in session.",
                false,
            ),
            Answer::PolicyDenied if api => (
                403,
                "forbidden",
                "",
                "This request is not allowed for this user.",
                false,
            ),
            Answer::PolicyDenied => (403, "forbidden", "Access denied", denied, true),
            Answer::MissingAttribute => (403, "missing_attribute", "Access denied", lacking, !api),
            Answer::BadReturnUrl => (
                400,
                "bad_request",
                "Bad request",
                "The address to return to is not allowed.",
                true,
            ),
            Answer::UntrustedProxy => (
                403,
                "untrusted_proxy",
                "",
                "Forward auth answers only the proxies listed in server.trusted_proxies.",
                false,
            ),
            Answer::NoOriginalUrl { forwarded: true } => (
                403,
                "no_original_url",
                "",
                "The proxy sent no X-Forwarded-Uri.",
                false,
            ),
            Answer::NoOriginalUrl { forwarded: false } => (
                403,
                "no_original_url",
                "",
                "The proxy sent no absolute X-Original-URL.",
                false,
            ),
            Answer::GatewayEndpoint => (
                403,
                "gateway_endpoint",
                "",
                "The gateway's own addresses are not judged by forward auth.",
                false,
            ),
            Answer::TryLater => (
                503,
                "temporarily_unavailable",
                "",
                "Try again later.",
                false,
            ),
            Answer::InvalidLogoutToken => (
                400,
                "invalid_request",
                "",
                "The logout token is not valid.",
                false,
            ),
            Answer::SingleLogoutForbidden => (
                403,
                "forbidden",
                "",
                "Single logout is taken only from the CAS server's networks.",
                false,
            ),
            Answer::NoLogoutRequest => {
                (400, "invalid_request", "", "No valid logoutRequest.", false)
            }
        };
        if page {
            Reply::page(status, title, message)
        } else {
            Reply::json_error(status, code, message)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Header name (lower case) and value. Values are built by the gateway from
    /// validated parts; `respond` drops any that is still not a valid header value.
    pub headers: Vec<(&'static str, String)>,
    /// Identity headers of a forward-auth answer, already sanitised (their names
    /// come from the config, their values may be UTF-8).
    pub identity: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: Bytes,
}

impl Reply {
    /// A 302 to `location`, which the caller has validated.
    pub fn redirect(location: impl Into<String>) -> Reply {
        Reply {
            status: 302,
            headers: vec![("location", location.into())],
            identity: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// An answer with no body (a back-channel acknowledgement).
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            identity: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A small HTML page. `title` and `message` are escaped.
    pub fn page(status: u16, title: &str, message: &str) -> Reply {
        let inner = format!(
            "<p>{}</p><p><a href=\"/\">Home</a></p>",
            escape_html(message)
        );
        Reply::html(status, title, &inner)
    }

    /// The one page shell of the gateway: `title` is escaped, `inner` is markup the
    /// caller built from escaped parts.
    fn html(status: u16, title: &str, inner: &str) -> Reply {
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
             <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}\
             h1{{font-size:1.4rem}}p{{line-height:1.5}}button{{font-size:1rem;padding:.5rem 1.2rem}}</style></head>\
             <body><h1>{t}</h1>{inner}</body></html>",
            t = escape_html(title),
        );
        Reply {
            status,
            headers: vec![("content-type", "text/html; charset=utf-8".into())],
            identity: Vec::new(),
            body: Bytes::from(body),
        }
    }

    /// A JSON body `{"error": code, "message": message}` for API clients.
    pub(crate) fn json_error(status: u16, code: &str, message: &str) -> Reply {
        let body = serde_json::json!({ "error": code, "message": message }).to_string();
        Reply::json(status, &body)
    }

    /// A JSON document the gateway made.
    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            identity: Vec::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    /// The page that asks before logging out, for requests that may come from
    /// another site. Its form POSTs to `action` (a path with the CSRF token).
    pub(crate) fn confirm_logout(action: &str) -> Reply {
        let inner = format!(
            "<p>Do you want to sign out of all applications?</p>\
             <form id=\"logout-form\" method=\"post\" action=\"{a}\"><button id=\"logout-confirm\" type=\"submit\">Sign out</button></form>\
             <p><a href=\"/\">Stay signed in</a></p>",
            a = escape_html(action)
        );
        Reply::html(200, "Sign out?", &inner)
    }

    pub fn with_cookie(mut self, set_cookie: String) -> Reply {
        self.headers.push(("set-cookie", set_cookie));
        self
    }

    pub(crate) fn with_cookies(mut self, set_cookies: impl IntoIterator<Item = String>) -> Reply {
        for c in set_cookies {
            self.headers.push(("set-cookie", c));
        }
        self
    }

    /// A 401 with the RFC 6750 challenge, for a bearer token that is missing
    /// or not accepted.
    pub(crate) fn bearer_challenge(error: &str, message: &str) -> Reply {
        let mut r = Reply::json_error(401, error, message);
        r.headers
            .push(("www-authenticate", format!("Bearer error=\"{error}\"")));
        r
    }

    /// A clear page (or JSON for API clients) instead of an empty error when the
    /// upstream fails: 502 (no answer), 504 (too slow), 400 (an unreadable
    /// request), anything else 500-like.
    pub(crate) fn upstream_failure(code: u16, api: bool) -> Reply {
        let (title, text, error) = match code {
            502 => (
                "Bad gateway",
                "The application behind this address is not answering. Try again in a moment.",
                "upstream_unavailable",
            ),
            504 => (
                "Gateway timeout",
                "The application behind this address took too long to answer.",
                "upstream_timeout",
            ),
            400 => (
                "Bad request",
                "The request could not be read.",
                "bad_request",
            ),
            _ => (
                "Error",
                "The gateway could not complete this request.",
                "internal_error",
            ),
        };
        if api {
            Reply::json_error(code, error, text)
        } else {
            Reply::page(code, title, text)
        }
    }

    /// A front-door refusal as forward auth gives it: 403 (nginx takes no 400),
    /// with the refusal's code.
    pub(crate) fn for_forward_auth_refusal(refusal: crate::front_door::Refusal) -> Reply {
        Reply::json_error(403, refusal.code(), refusal.message())
    }

    /// The answer to a request the front door refuses: a page, or JSON for an
    /// API client.
    pub(crate) fn for_refusal(refusal: crate::front_door::Refusal, api: bool) -> Reply {
        if api {
            Reply::json_error(refusal.status(), refusal.code(), refusal.message())
        } else {
            Reply::page(refusal.status(), refusal.title(), refusal.message())
        }
    }

    /// As `for_auth_error`, as JSON for an API client when `api`: the same status,
    /// with a code a script can act on, for the errors a request (not a login)
    /// meets.
    pub(crate) fn for_auth_error_to(err: &AuthError, api: bool) -> Reply {
        let (code, message) = match err {
            _ if !api => return Reply::for_auth_error(err),
            AuthError::Store(_) => (
                "store_unavailable",
                "Sessions are unavailable; try again shortly.",
            ),
            AuthError::Management(_) => (
                "authorization_unavailable",
                "Authorization cannot be checked right now; try again shortly.",
            ),
            AuthError::IdpUnavailable(_) => (
                "idp_unavailable",
                "The sign-in service is unavailable; try again shortly.",
            ),
            other => return Reply::for_auth_error(other),
        };
        Reply::json_error(503, code, message)
    }

    /// The reply for a failed login step. Messages say what happened and what to do,
    /// never a token or an IdP description.
    pub(crate) fn for_auth_error(err: &AuthError) -> Reply {
        match err {
            AuthError::IdpUnavailable(_) => Reply::page(
                503,
                "Sign-in is unavailable",
                "The identity provider cannot be reached right now. Please try again in a minute.",
            ),
            AuthError::Discovery(_) => Reply::page(
                503,
                "Sign-in is misconfigured",
                "The identity provider's configuration does not match this gateway's. Please tell the administrator.",
            ),
            AuthError::UnknownState | AuthError::StateReplayed | AuthError::GrantRejected => {
                Reply::page(
                    400,
                    "Sign-in expired",
                    "This sign-in link has expired or was already used. Go back to the page you wanted and try again.",
                )
            }
            AuthError::BadCallback(_) => Reply::page(
                400,
                "Bad sign-in response",
                "The sign-in response is incomplete. Go back to the page you wanted and try again.",
            ),
            AuthError::IdpDenied { .. } => Reply::page(
                403,
                "Sign-in was not completed",
                "The identity provider did not sign you in. Go back to the page you wanted to try again.",
            ),
            AuthError::Management(_) => Reply::page(
                503,
                "Authorization is unavailable",
                "The gateway cannot ask OneAccess whether you may use this application right now. Please try again in a minute.",
            ),
            AuthError::Store(_) => Reply::page(
                503,
                "Sessions are unavailable",
                "The gateway cannot reach its session store right now. Please try again in a minute.",
            ),
            AuthError::InvalidLogoutToken(_) => Reply::json_error(
                400,
                "invalid_request",
                "The logout token is not valid.",
            ),
            AuthError::Internal(_) => Reply::page(
                500,
                "Sign-in failed",
                "Something went wrong inside the gateway. Please try again.",
            ),
            AuthError::CasRejected { code } => Reply::page(
                403,
                "Sign-in was not accepted",
                &format!(
                    "The identity provider did not accept this sign-in ({code}). Go back to the page you wanted and try again."
                ),
            ),
            AuthError::TokenRejected(_)
            | AuthError::InvalidIdToken(_)
            | AuthError::Userinfo(_)
            | AuthError::Cas(_) => Reply::page(
                502,
                "Sign-in failed",
                "The identity provider's answer could not be verified. Please try again; if it keeps failing, tell the administrator.",
            ),
        }
    }
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_has_its_status_and_shape() {
        use Answer::*;
        let all = [
            (NotFound, 404, true),
            (ForwardAuthOnly, 404, true),
            (BodyTooLarge, 413, false),
            (Unauthenticated, 401, false),
            (MissingAttribute, 403, true),
            (BadReturnUrl, 400, true),
            (UntrustedProxy, 403, false),
            (NoOriginalUrl { forwarded: true }, 403, false),
            (NoOriginalUrl { forwarded: false }, 403, false),
            (GatewayEndpoint, 403, false),
            (TryLater, 503, false),
            (InvalidLogoutToken, 400, false),
            (SingleLogoutForbidden, 403, false),
            (NoLogoutRequest, 400, false),
        ];
        let is_page = |r: &Reply| {
            r.headers
                .iter()
                .any(|(n, v)| *n == "content-type" && v.starts_with("text/html"))
        };
        for (answer, status, page_for_browser) in all {
            let browser = answer.reply(false);
            assert_eq!(browser.status, status, "{answer:?}");
            assert_eq!(is_page(&browser), page_for_browser, "{answer:?}");
        }
        // Policy: a page for a browser, JSON for a script, with other words.
        let (page, json) = (PolicyDenied.reply(false), PolicyDenied.reply(true));
        assert_eq!((page.status, json.status), (403, 403));
        assert!(is_page(&page) && !is_page(&json));
        assert!(!is_page(&MissingAttribute.reply(true)));
    }

    #[test]
    fn pages_escape_their_text() {
        let r = Reply::page(400, "<b>", "a&b\"");
        let body = std::str::from_utf8(&r.body).expect("utf8");
        assert!(body.contains("&lt;b&gt;"));
        assert!(body.contains("a&amp;b&quot;"));
        assert!(!body.contains("<b>"));
    }

    #[test]
    fn every_auth_error_has_a_client_or_gateway_status() {
        let errs = [
            AuthError::IdpUnavailable("x".into()),
            AuthError::Discovery("x".into()),
            AuthError::UnknownState,
            AuthError::StateReplayed,
            AuthError::BadCallback("x"),
            AuthError::IdpDenied { error: "x".into() },
            AuthError::TokenRejected("x".into()),
            AuthError::GrantRejected,
            AuthError::InvalidIdToken("x".into()),
            AuthError::Internal("x".into()),
            AuthError::InvalidLogoutToken("x".into()),
            AuthError::Store(crate::session::store::StoreError::Unavailable("x".into())),
            AuthError::Userinfo("x".into()),
            AuthError::Cas("x".into()),
            AuthError::CasRejected { code: "x".into() },
        ];
        for e in errs {
            let r = Reply::for_auth_error(&e);
            assert!((400..600).contains(&r.status), "{e:?}");
            assert!(!std::str::from_utf8(&r.body).expect("utf8").contains("x<"));
        }
    }
}
