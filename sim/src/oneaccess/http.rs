//! Response helpers shared by the OneAccess handlers: JSON, no-store, OAuth errors,
//! HTML pages, redirects, query parsing, bearer tokens and the SSO cookie.

use std::collections::HashMap;

use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::util::{escape_html, parse_form};

/// Name of the simulator's SSO session cookie (HttpOnly, `Path=/`).
pub const SSO_COOKIE: &str = "oa_sso";

pub(crate) const JSON_UTF8: &str = "application/json;charset=UTF-8";

pub(crate) fn json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, JSON_UTF8)],
        body.to_string(),
    )
        .into_response()
}

/// JSON that must never be cached (anything carrying tokens or personal data).
pub(crate) fn json_no_store(status: StatusCode, body: &Value) -> Response {
    let mut resp = json(status, body);
    no_store(&mut resp);
    resp
}

pub(crate) fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// `{"error": .., "error_description": ..}` with `Cache-Control: no-store`.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_no_store(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

/// A test-injected answer: `status` (a code that is not a valid HTTP status answers 500)
/// with `body` verbatim as `content_type`, `Cache-Control: no-store`.
pub(crate) fn injected(status: u16, body: String, content_type: &'static str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    no_store(&mut resp);
    resp
}

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f2f4f7;margin:0}\
main{max-width:380px;margin:8vh auto;background:#fff;padding:2em;border-radius:8px;\
box-shadow:0 2px 12px rgba(0,0,0,.12)}h1{color:#c7000b;margin-top:0}\
label{display:block;margin-top:1em}input{width:100%;padding:.5em;box-sizing:border-box}\
button{margin-top:1.5em;width:100%;padding:.6em;background:#c7000b;color:#fff;border:0;\
border-radius:4px;font-size:1em}.error{color:#c7000b}.hint{color:#555;font-size:.9em}";

/// A small OneAccess-styled error page.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    html(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>OneAccess</title>\
             <style>{STYLE}</style></head><body><main><h1>OneAccess</h1>\
             <p class=\"error\">{}</p></main></body></html>",
            escape_html(message)
        ),
    )
}

/// 302 to `location`; a location that is not a valid header value gives a 400 page.
pub(crate) fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => error_page(StatusCode::BAD_REQUEST, "Invalid redirect URL."),
    }
}

/// Adds a `Set-Cookie` header (the value is built from safe characters only).
pub(crate) fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub(crate) fn set_sso_cookie(sid: &str) -> String {
    format!("{SSO_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax")
}

pub(crate) fn clear_sso_cookie() -> String {
    format!("{SSO_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
}

/// The SSO session id from the request's `Cookie` header(s), if any.
pub(crate) fn sso_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SSO_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
}

/// Parses a raw query string; `Err` names a repeated parameter.
pub(crate) fn query(raw: Option<&str>) -> Result<HashMap<String, String>, String> {
    parse_form(raw.unwrap_or("").as_bytes())
}

/// A non-empty parameter.
pub(crate) fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(String::as_str).filter(|v| !v.is_empty())
}
