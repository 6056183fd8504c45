//! Writes a `Reply` to the client, with the headers every gateway-made answer
//! carries.

use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use crate::reply::Reply;

/// Headers on every answer the gateway writes itself. `no-referrer` keeps the
/// callback's code out of Referer headers; the CSP forbids scripts on our pages.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    ),
];

/// Writes `reply`, with the request's id.
pub async fn send(
    session: &mut Session,
    reply: Reply,
    request_id: &http::HeaderValue,
) -> Result<()> {
    let Reply {
        status,
        headers,
        identity,
        body,
    } = reply;
    let mut resp = ResponseHeader::build(status, Some(headers.len() + identity.len() + 7))?;
    for (name, value) in &headers {
        // Every value was built from validated parts; a bad one is dropped rather
        // than allowed to fail the answer.
        if let Ok(v) = http::HeaderValue::from_str(value) {
            resp.append_header(*name, v)?;
        }
    }
    for (name, value) in identity {
        resp.append_header(name, value)?;
    }
    for (name, value) in SECURITY_HEADERS {
        resp.insert_header(name, value)?;
    }
    resp.insert_header(super::request_id::HEADER, request_id.clone())?;
    if !headers.iter().any(|(n, _)| *n == "cache-control") {
        resp.insert_header("cache-control", "no-store")?;
    }
    resp.set_content_length(body.len())?;
    let empty = body.is_empty() || session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), empty).await?;
    if !empty {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
