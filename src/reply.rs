//! An answer the gateway gives itself (redirects, error pages, JSON), as plain data,
//! and the one place where errors become status codes and pages. `proxy/respond.rs`
//! only writes a `Reply` to the wire.

use bytes::Bytes;

use crate::error::AuthError;

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
    pub fn json_error(status: u16, code: &str, message: &str) -> Reply {
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
    pub fn confirm_logout(action: &str) -> Reply {
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

    pub fn with_cookies(mut self, set_cookies: impl IntoIterator<Item = String>) -> Reply {
        for c in set_cookies {
            self.headers.push(("set-cookie", c));
        }
        self
    }

    /// The answer to a request the front door refuses: a page, or JSON for an
    /// API client.
    pub fn for_refusal(refusal: crate::front_door::Refusal, api: bool) -> Reply {
        if api {
            Reply::json_error(refusal.status(), refusal.code(), refusal.message())
        } else {
            Reply::page(refusal.status(), refusal.title(), refusal.message())
        }
    }

    /// As `for_auth_error`, as JSON for an API client when `api`: the same status,
    /// with a code a script can act on, for the errors a request (not a login)
    /// meets.
    pub fn for_auth_error_to(err: &AuthError, api: bool) -> Reply {
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
    pub fn for_auth_error(err: &AuthError) -> Reply {
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
pub fn escape_html(s: &str) -> String {
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
