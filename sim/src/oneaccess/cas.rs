//! CAS endpoints (API.md section 3): login (service tickets), validation in CAS 1.0,
//! 2.0 and 3.0 forms (JSON by default, the OneAccess quirk, or XML), and logout.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State as AxState};
use axum::http::header::{self, HeaderMap};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::http::{
    clear_sso_cookie, error_page, html, injected, param, query, redirect, sso_cookie, with_cookie,
    STYLE,
};
use super::slo::end_sso_session;
use super::state::{lock, State};
use super::User;
use crate::util::{append_query, escape_html, form_encode, iso8601_millis, now_secs};

type Shared = AxState<Arc<State>>;

fn service_allowed(state: &State, service: &str) -> bool {
    if state.cfg.cas_services.is_empty() {
        url::Url::parse(service).is_ok()
    } else {
        state.cfg.cas_services.iter().any(|s| s == service)
    }
}

pub(crate) async fn login(
    AxState(state): Shared,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = match query(raw.as_deref()) {
        Ok(q) => q,
        Err(name) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &format!("Parameter {name} is repeated."),
            )
        }
    };
    let service = param(&q, "service");
    if let Some(service) = service {
        if !service_allowed(&state, service) {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The service is not authorized to use OneAccess CAS.",
            );
        }
    }
    let renew = param(&q, "renew") == Some("true");
    let gateway = param(&q, "gateway") == Some("true");
    let session = state
        .session(sso_cookie(&headers).as_deref())
        .filter(|_| !renew);

    match (session, service) {
        (Some((session_id, session)), Some(service)) => {
            let ticket = {
                let mut store = lock(&state.store);
                let fresh = store
                    .sessions
                    .get_mut(&session_id)
                    .map(|s| std::mem::replace(&mut s.fresh, false))
                    .unwrap_or(false);
                let ticket =
                    store.new_ticket(&session.user_id, service, fresh, session.auth_millis);
                // Remembered for single logout (even after the ticket is validated).
                if let Some(s) = store.sessions.get_mut(&session_id) {
                    s.tickets.push(ticket.clone());
                }
                ticket
            };
            tracing::debug!(user = %session.user_id, "issued CAS service ticket");
            match append_query(service, &[("ticket", &ticket)]) {
                Some(location) => redirect(&location),
                None => error_page(StatusCode::BAD_REQUEST, "Invalid service URL."),
            }
        }
        (Some((_, session)), None) => {
            let name = state
                .user_by_id(&session.user_id)
                .map(|u| u.name.clone())
                .unwrap_or_default();
            html(
                StatusCode::OK,
                format!(
                    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>OneAccess</title>\
                     <style>{STYLE}</style></head><body><main><h1>OneAccess</h1>\
                     <p>Signed in as {}.</p></main></body></html>",
                    escape_html(&name)
                ),
            )
        }
        (None, Some(service)) if gateway && !renew => redirect(service),
        (None, service) => {
            // Come back here after the login form; `renew` is dropped so the fresh
            // session is used instead of sending the browser to the form again.
            let back = match service {
                Some(s) => format!("/api/v1/cas/login?service={}", form_encode(s)),
                None => "/api/v1/cas/login".to_string(),
            };
            redirect(&format!("/api/v1/login?redirect={}", form_encode(&back)))
        }
    }
}

pub(crate) async fn logout(
    AxState(state): Shared,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    end_sso_session(&state, &headers).await;
    let q = query(raw.as_deref()).unwrap_or_default();
    let target = param(&q, "service")
        .filter(|s| service_allowed(&state, s))
        .unwrap_or("/api/v1/login");
    with_cookie(redirect(target), &clear_sso_cookie())
}

// ---- validation ------------------------------------------------------------------

struct Failure {
    code: &'static str,
    json: String,
    xml: String,
}

impl Failure {
    fn same(code: &'static str, text: String) -> Failure {
        Failure {
            code,
            json: text.clone(),
            xml: text,
        }
    }
}

struct Success {
    user: User,
    from_new_login: bool,
    auth_millis: u128,
}

/// Consumes the ticket (single use, even when the service does not match).
fn check(state: &State, q: &HashMap<String, String>) -> Result<Success, Failure> {
    let (Some(service), Some(ticket)) = (param(q, "service"), param(q, "ticket")) else {
        return Err(Failure::same(
            "INVALID_REQUEST",
            "service and ticket parameters are both required".into(),
        ));
    };
    let invalid = || Failure {
        code: "INVALID_TICKET",
        json: format!("the ticket provided was not valid, ticket is {ticket}"),
        xml: format!("Ticket {ticket} not recognized"),
    };
    let issued = lock(&state.store)
        .tickets
        .remove(ticket)
        .ok_or_else(invalid)?;
    if issued.expires <= now_secs() {
        return Err(invalid());
    }
    if issued.service != service {
        return Err(Failure::same(
            "INVALID_SERVICE",
            format!(
                "Ticket {ticket} does not match supplied service. The original service was \
                 {} and the supplied service was {service}",
                issued.service
            ),
        ));
    }
    if param(q, "renew") == Some("true") && !issued.from_new_login {
        return Err(Failure::same(
            "INVALID_TICKET",
            format!("Ticket {ticket} was not issued from a new login"),
        ));
    }
    let user = state.user_by_id(&issued.user_id).ok_or_else(invalid)?;
    Ok(Success {
        user,
        from_new_login: issued.from_new_login,
        auth_millis: issued.auth_millis,
    })
}

/// CAS 1.0: `yes\n{user}\n` or `no\n\n`.
pub(crate) async fn validate_v1(AxState(state): Shared, RawQuery(raw): RawQuery) -> Response {
    overridable(&state, |state| {
        let body = match query(raw.as_deref()) {
            Ok(q) => match check(state, &q) {
                Ok(ok) => format!("yes\n{}\n", ok.user.user_name),
                Err(_) => "no\n\n".to_string(),
            },
            Err(_) => "no\n\n".to_string(),
        };
        text(body, "text/plain;charset=UTF-8")
    })
}

/// CAS 2.0: the user only.
pub(crate) async fn validate_v2(AxState(state): Shared, RawQuery(raw): RawQuery) -> Response {
    overridable(&state, |state| {
        service_validate(state, raw.as_deref(), false)
    })
}

/// CAS 3.0: the user and attributes.
pub(crate) async fn validate_v3(AxState(state): Shared, RawQuery(raw): RawQuery) -> Response {
    overridable(&state, |state| {
        service_validate(state, raw.as_deref(), true)
    })
}

/// Runs the normal validation (so the ticket is consumed exactly as without a test
/// override), then answers the `cas_validate_override`, if one is set, instead.
fn overridable(state: &State, normal: impl FnOnce(&State) -> Response) -> Response {
    let injected_answer = lock(&state.knobs).cas_validate_override.clone();
    let resp = normal(state);
    match injected_answer {
        Some((status, body)) => {
            let content_type = override_content_type(&body);
            injected(status, body, content_type)
        }
        None => resp,
    }
}

/// XML if it looks like XML, plain text if it looks like a CAS 1.0 answer, else JSON.
fn override_content_type(body: &str) -> &'static str {
    let first_line = body.split('\n').next().unwrap_or("").trim_end_matches('\r');
    if body.trim_start().starts_with('<') {
        "application/xml;charset=UTF-8"
    } else if matches!(first_line, "yes" | "no") {
        "text/plain"
    } else {
        "application/json"
    }
}

fn service_validate(state: &State, raw: Option<&str>, with_attributes: bool) -> Response {
    let (q, repeated) = match query(raw) {
        Ok(q) => (q, None),
        Err(name) => (HashMap::new(), Some(name)),
    };
    let xml = param(&q, "format").is_some_and(|f| f.eq_ignore_ascii_case("xml"));
    let result = match repeated {
        Some(name) => Err(Failure::same(
            "INVALID_REQUEST",
            format!("Parameter {name} is repeated"),
        )),
        None => check(state, &q),
    };
    match (result, xml) {
        (Ok(ok), false) => {
            let mut success = Map::new();
            success.insert("user".into(), ok.user.user_name.clone().into());
            if with_attributes {
                success.insert(
                    "attributes".into(),
                    Value::Object(attributes(&ok).into_iter().collect()),
                );
            }
            let body = json!({ "serviceResponse": { "authenticationSuccess": success } });
            text(body.to_string(), super::http::JSON_UTF8)
        }
        (Ok(ok), true) => {
            let mut out = String::from(
                "<cas:serviceResponse xmlns:cas=\"http://www.yale.edu/tp/cas\">\n    \
                 <cas:authenticationSuccess>\n",
            );
            out.push_str(&format!(
                "        <cas:user>{}</cas:user>\n",
                escape_html(&ok.user.user_name)
            ));
            if with_attributes {
                out.push_str("        <cas:attributes>\n");
                for (name, value) in attributes(&ok) {
                    xml_attribute(&mut out, &name, &value);
                }
                out.push_str("        </cas:attributes>\n");
            }
            out.push_str("    </cas:authenticationSuccess>\n</cas:serviceResponse>\n");
            text(out, "application/xml;charset=UTF-8")
        }
        (Err(f), false) => {
            let body = json!({ "serviceResponse": { "authenticationFailure": {
                "code": f.code, "description": f.json,
            } } });
            text(body.to_string(), super::http::JSON_UTF8)
        }
        (Err(f), true) => text(
            format!(
                "<cas:serviceResponse xmlns:cas=\"http://www.yale.edu/tp/cas\">\
                 <cas:authenticationFailure code=\"{}\">{}</cas:authenticationFailure>\
                 </cas:serviceResponse>\n",
                f.code,
                escape_html(&f.xml)
            ),
            "application/xml;charset=UTF-8",
        ),
    }
}

/// The CAS 3.0 attributes, in a fixed order: strings, booleans, a null and a list.
fn attributes(ok: &Success) -> Vec<(String, Value)> {
    let u = &ok.user;
    vec![
        (
            "authenticationDate".into(),
            iso8601_millis(ok.auth_millis).into(),
        ),
        ("isFromNewLogin".into(), ok.from_new_login.into()),
        (
            "longTermAuthenticationRequestTokenUsed".into(),
            false.into(),
        ),
        ("id".into(), u.id.clone().into()),
        ("userName".into(), u.user_name.clone().into()),
        ("name".into(), u.name.clone().into()),
        ("email".into(), u.email.clone().into()),
        ("mobile".into(), u.mobile.clone().into()),
        ("birthday".into(), Value::Null),
        ("disabled".into(), false.into()),
        ("memberOf".into(), json!(["staff", "dev"])),
    ]
}

/// One attribute as XML: lists become repeated elements, `null` an empty element.
fn xml_attribute(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                xml_attribute(out, name, item);
            }
        }
        Value::Null => out.push_str(&format!("            <cas:{name}/>\n")),
        Value::String(s) => out.push_str(&format!(
            "            <cas:{name}>{}</cas:{name}>\n",
            escape_html(s)
        )),
        other => out.push_str(&format!("            <cas:{name}>{other}</cas:{name}>\n")),
    }
}

fn text(body: String, content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
    super::http::no_store(&mut resp);
    resp
}
