//! CAS 1.0/2.0/3.0 against OneAccess (section 3.2.2). The login URL's `service` is
//! built from config, never from the request's Host (phpCAS CVE-2022-39369).
//! Tickets are checked before any call. Answers are parsed as JSON (OneAccess's
//! default) or XML (the CAS spec's). The XML parser refuses any DTD and expands
//! no entity: it fetches nothing and cannot be made to blow up.

use std::sync::Arc;

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{Map, Value};
use url::Url;

use super::code_flow::sanitize_code;
use super::http::{call, HttpClient, OutboundRequest};
use crate::config::{CasFormat, CasSettings, CasVersion};
use crate::error::AuthError;
use crate::identity::Identity;
use crate::secret::Secret;

/// Longest ticket accepted (OneAccess's are up to 128 characters).
pub(crate) const MAX_TICKET: usize = 256;
/// Most attributes kept from one answer.
const MAX_ATTRIBUTES: usize = 200;

pub struct CasClient {
    http: Arc<dyn HttpClient>,
    base_url: String,
}

/// What the CAS server said about a ticket.
#[derive(Debug, PartialEq)]
pub enum CasAnswer {
    Success {
        user: String,
        attributes: Map<String, Value>,
    },
    Failure {
        code: String,
    },
}

impl CasClient {
    pub fn new(base_url: &str, http: Arc<dyn HttpClient>) -> CasClient {
        CasClient {
            http,
            base_url: base_url.to_string(),
        }
    }

    /// `/api/v1/cas/login?service=…[&renew=true|&gateway=true]`.
    pub(crate) fn login_url(
        &self,
        service: &str,
        settings: &CasSettings,
    ) -> Result<String, AuthError> {
        let mut url = self.endpoint("/api/v1/cas/login")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("service", service);
            if settings.renew {
                q.append_pair("renew", "true");
            }
            if settings.gateway {
                q.append_pair("gateway", "true");
            }
        }
        Ok(url.into())
    }

    /// `/api/v1/cas/logout?service=…`: ends the CAS SSO session.
    pub(crate) fn logout_url(&self, service: &str) -> Result<String, AuthError> {
        let mut url = self.endpoint("/api/v1/cas/logout")?;
        url.query_pairs_mut().append_pair("service", service);
        Ok(url.into())
    }

    fn endpoint(&self, path: &str) -> Result<Url, AuthError> {
        Url::parse(&format!("{}{path}", self.base_url))
            .map_err(|_| AuthError::Internal("the CAS base URL is not a URL".into()))
    }

    /// Validates a ticket for `service` and returns the identity. The ticket is moved
    /// in: it is sent once.
    pub(crate) async fn validate(
        &self,
        settings: &CasSettings,
        service: &str,
        ticket: Secret<String>,
        keep_claims: &[String],
    ) -> Result<Identity, AuthError> {
        check_ticket(ticket.expose())?;
        let path = match settings.version {
            CasVersion::V1 => "/api/v1/cas/validate",
            CasVersion::V2 => "/api/v1/cas/serviceValidate",
            CasVersion::V3 => "/api/v1/cas/p3/serviceValidate",
        };
        let mut url = self.endpoint(path)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("service", service)
                .append_pair("ticket", ticket.expose());
            // CAS 2.5.1: a login that asked for `renew` accepts only a ticket
            // issued from a fresh sign-in, which only the server can tell.
            if settings.renew {
                q.append_pair("renew", "true");
            }
            if settings.version != CasVersion::V1 {
                q.append_pair(
                    "format",
                    match settings.format {
                        CasFormat::Json => "JSON",
                        CasFormat::Xml => "XML",
                    },
                );
            }
        }
        let mut req = OutboundRequest::get("CAS validation", url.as_str());
        req.headers.clear();
        let resp = call(self.http.as_ref(), req).await?;
        if resp.status != 200 {
            return Err(AuthError::Cas(format!(
                "validation answered {}",
                resp.status
            )));
        }
        let body = std::str::from_utf8(&resp.body)
            .map_err(|_| AuthError::Cas("the answer is not UTF-8".into()))?;
        let answer = match settings.version {
            CasVersion::V1 => parse_v1(body)?,
            // Sniffed rather than trusted to the request: a server may ignore `format`.
            _ if body.trim_start().starts_with('<') => parse_xml(body)?,
            _ => parse_json(body)?,
        };
        match answer {
            CasAnswer::Success { user, attributes } => {
                if user.trim().is_empty() || user.len() > 255 || user.contains(char::is_control) {
                    return Err(AuthError::Cas(
                        "empty, oversized or unprintable user".into(),
                    ));
                }
                let mut claims = attributes;
                // CAS's user is the login name: the claim OIDC calls preferred_username.
                claims
                    .entry("preferred_username")
                    .or_insert_with(|| Value::String(user.clone()));
                Ok(Identity::from_claims(user, &claims, keep_claims))
            }
            CasAnswer::Failure { code } => Err(AuthError::CasRejected { code }),
        }
    }
}

/// Refuses, before any call, a ticket that could change the validation request
/// (`&`, `%`, `#`), smuggle markup (`<`, quotes) or headers (CR, LF), or is absurd.
pub(crate) fn check_ticket(t: &str) -> Result<(), AuthError> {
    let ok = !t.is_empty()
        && t.len() <= MAX_TICKET
        && t.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'&' | b'<' | b'>' | b'%' | b'"' | b'\'' | b'#' | b'?' | b'\\'
                )
        });
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadCallback("malformed ticket"))
    }
}

/// CAS 1.0: `yes\n{user}\n` or `no\n\n`, and nothing else: a cut answer
/// (`yes` alone) is no answer.
pub fn parse_v1(body: &str) -> Result<CasAnswer, AuthError> {
    let bad = || AuthError::Cas("not a CAS 1.0 answer".into());
    let mut lines = body.lines();
    let (first, second) = (lines.next(), lines.next());
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(bad());
    }
    match (first.map(str::trim), second.map(str::trim)) {
        // A lone CR inside the line (`str::lines` takes only CRLF) or any other
        // control character is no user name.
        (Some("yes"), Some(user))
            if !user.is_empty() && !user.contains(char::is_control) && body.ends_with('\n') =>
        {
            Ok(CasAnswer::Success {
                user: user.to_string(),
                attributes: Map::new(),
            })
        }
        (Some("no"), None | Some("")) => Ok(CasAnswer::Failure {
            code: "INVALID_TICKET".into(),
        }),
        _ => Err(bad()),
    }
}

/// CAS 2.0/3.0 JSON: `{"serviceResponse":{"authenticationSuccess":{...}}}`.
pub fn parse_json(body: &str) -> Result<CasAnswer, AuthError> {
    let v: Value =
        serde_json::from_str(body).map_err(|_| AuthError::Cas("not a JSON answer".into()))?;
    let resp = v
        .get("serviceResponse")
        .ok_or_else(|| AuthError::Cas("no serviceResponse".into()))?;
    if let Some(f) = resp.get("authenticationFailure") {
        let code = f.get("code").and_then(Value::as_str).unwrap_or("UNKNOWN");
        return Ok(CasAnswer::Failure {
            code: sanitize_code(code),
        });
    }
    let s = resp
        .get("authenticationSuccess")
        .ok_or_else(|| AuthError::Cas("neither success nor failure".into()))?;
    let user = match s.get("user") {
        Some(Value::String(u)) => u.clone(),
        _ => return Err(AuthError::Cas("no user".into())),
    };
    let mut attributes = Map::new();
    if let Some(Value::Object(attrs)) = s.get("attributes") {
        for (k, v) in attrs.iter().take(MAX_ATTRIBUTES) {
            attributes.insert(k.clone(), v.clone());
        }
    }
    Ok(CasAnswer::Success { user, attributes })
}

/// CAS 2.0/3.0 XML. Namespace prefixes are ignored (`cas:user` is `user`);
/// repeated attribute elements become a list; an empty one is `null`.
pub fn parse_xml(body: &str) -> Result<CasAnswer, AuthError> {
    let bad = |m: &str| AuthError::Cas(format!("XML answer: {m}"));
    // Text is trimmed per element at its end tag, not per event: whitespace
    // between two entity references is part of the value.
    let mut reader = Reader::from_str(body);
    // Element path from the root, local names only.
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut user: Option<String> = None;
    let mut failure: Option<String> = None;
    let mut success = false;
    let mut attributes = Map::new();
    let mut roots = 0;
    loop {
        let event = reader.read_event().map_err(|_| bad("malformed"))?;
        match event {
            Event::DocType(_) => return Err(bad("a DTD is not allowed")),
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                // One root, and it is the answer.
                if path.is_empty() {
                    roots += 1;
                    if roots > 1 || name != "serviceResponse" {
                        return Err(bad("not one serviceResponse"));
                    }
                }
                let top = path.len() == 1;
                if top && name == "authenticationFailure" {
                    let code = e
                        .try_get_attribute("code")
                        .ok()
                        .flatten()
                        .and_then(|a| {
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .ok()
                                .map(|v| v.into_owned())
                        })
                        .unwrap_or_else(|| "UNKNOWN".into());
                    failure = Some(sanitize_code(&code));
                }
                if top && name == "authenticationSuccess" {
                    success = true;
                }
                path.push(name);
                text.clear();
                if path.len() > 16 {
                    return Err(bad("nested too deep"));
                }
            }
            Event::Empty(e) => {
                if path.is_empty() {
                    return Err(bad("not one serviceResponse"));
                }
                let name = e.local_name().as_ref().to_string();
                if in_attributes(&path) {
                    add_attribute(&mut attributes, name, Value::Null);
                }
            }
            Event::Text(t) if path.is_empty() && !t.xml10_content().trim().is_empty() => {
                return Err(bad("text outside the answer"))
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::CData(t) => text.push_str(t.as_ref()),
            Event::GeneralRef(r) => {
                text.push(resolve_entity(&r).ok_or_else(|| bad("unknown entity"))?)
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let value = std::mem::take(&mut text);
                let value = value.trim();
                if name == "user" && path.last().is_some_and(|p| p == "authenticationSuccess") {
                    user = Some(value.to_string());
                } else if in_attributes(&path) {
                    add_attribute(&mut attributes, name, Value::String(value.to_string()));
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
        if attributes.len() > MAX_ATTRIBUTES {
            return Err(bad("too many attributes"));
        }
    }
    if !path.is_empty() {
        return Err(bad("unclosed elements"));
    }
    if let Some(code) = failure {
        return Ok(CasAnswer::Failure { code });
    }
    match (success, user) {
        (true, Some(user)) => Ok(CasAnswer::Success { user, attributes }),
        _ => Err(bad("neither success with a user nor failure")),
    }
}

/// Directly inside `serviceResponse/authenticationSuccess/attributes`.
/// Only the five predefined entities and character references; any other entity
/// would need a DTD, which is refused.
fn resolve_entity(r: &quick_xml::events::BytesRef) -> Option<char> {
    match r.resolve_char_ref() {
        Ok(Some(c)) => Some(c),
        _ => match r.as_ref() {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "apos" => Some('\''),
            "quot" => Some('"'),
            _ => None,
        },
    }
}

/// The `SessionIndex` (the service ticket) of a CAS Single Logout request
/// (`<samlp:LogoutRequest …><samlp:SessionIndex>ST-…</samlp:SessionIndex>`), read
/// with the same rules as validation answers: no DTD, no entity expansion, one
/// `LogoutRequest` root with its `SessionIndex` directly inside, every element
/// closed, nothing outside.
pub fn parse_logout_request(xml: &str) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut text = String::new();
    let mut ticket = None;
    loop {
        match reader.read_event().ok()? {
            Event::DocType(_) => return None,
            Event::Eof => break,
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                if path.is_empty() {
                    roots += 1;
                    if roots > 1 || name != "LogoutRequest" {
                        return None;
                    }
                }
                if path.len() > 16 {
                    return None;
                }
                path.push(name);
                text.clear();
            }
            Event::Empty(_) if path.is_empty() => return None,
            Event::Text(t) if path.is_empty() && !t.xml10_content().trim().is_empty() => {
                return None
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if !path.is_empty() => text.push(resolve_entity(&r)?),
            Event::GeneralRef(_) => return None,
            Event::End(_) => {
                let name = path.pop()?;
                if name == "SessionIndex" && path.len() == 1 {
                    if ticket.is_some() {
                        return None;
                    }
                    let t = std::mem::take(&mut text);
                    let t = t.trim();
                    check_ticket(t).ok()?;
                    ticket = Some(t.to_string());
                }
            }
            _ => {}
        }
    }
    (path.is_empty() && roots == 1).then_some(ticket).flatten()
}

fn in_attributes(path: &[String]) -> bool {
    path.len() == 3 && path[1] == "authenticationSuccess" && path[2] == "attributes"
}

fn add_attribute(attrs: &mut Map<String, Value>, name: String, value: Value) {
    match attrs.get_mut(&name) {
        None => {
            attrs.insert(name, value);
        }
        Some(Value::Array(list)) => list.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

#[cfg(test)]
mod tests;
