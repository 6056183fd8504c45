//! Single logout sent by the simulator: OIDC Back-Channel Logout 1.0 logout tokens and
//! CAS protocol 3.0 SLO requests, posted to the registered receivers when an SSO session
//! ends (and on demand through the [`super::Sim`] handle).

use std::io;
use std::time::Duration;

use axum::http::HeaderMap;

use super::http::sso_cookie;
use super::state::{lock, SsoSession, State};
use crate::util::{escape_html, now_secs, random_token, rfc3339};

/// How long one logout POST may take (connect, send, answer) before it is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Ends the browser's SSO session server-side (the caller clears the cookie) and, before
/// returning, notifies every registered logout receiver.
pub(crate) async fn end_sso_session(state: &State, headers: &HeaderMap) {
    let Some(id) = sso_cookie(headers) else {
        return;
    };
    let ended = lock(&state.store).sessions.remove(&id);
    if let Some(session) = ended {
        tracing::info!(user = %session.user_id, "SSO session ended");
        fan_out(state, &session).await;
    }
}

/// Ends every SSO session of `user_id` (oldest first), notifying the receivers of each.
pub(crate) async fn end_sessions_of(state: &State, user_id: &str) {
    let mut ended: Vec<SsoSession> = {
        let mut store = lock(&state.store);
        let ids: Vec<String> = store
            .sessions
            .iter()
            .filter(|(_, s)| s.user_id == user_id)
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| store.sessions.remove(id))
            .collect()
    };
    ended.sort_by(|a, b| (a.auth_millis, &a.sid).cmp(&(b.auth_millis, &b.sid)));
    for session in &ended {
        tracing::info!(user = %session.user_id, "SSO session ended by an administrator");
        fan_out(state, session).await;
    }
}

/// Sends, one after the other: a logout token (`sub` and `sid` of the session) to every
/// registered back-channel URI, then one SLO request per service ticket of the session
/// to every registered CAS logout URL. Failures are recorded, never returned.
async fn fan_out(state: &State, session: &SsoSession) {
    let (uris, cas_urls) = {
        let reg = lock(&state.logout);
        (reg.backchannel_uris.clone(), reg.cas_logout_urls.clone())
    };
    for uri in &uris {
        match state.logout_token(Some(&session.user_id), Some(&session.sid)) {
            Ok(token) => {
                let _ = send_backchannel(state, uri, &token).await;
            }
            Err(e) => tracing::error!(error = %e, "cannot sign a logout token"),
        }
    }
    for url in &cas_urls {
        for ticket in &session.tickets {
            let _ = send_cas_slo(state, url, ticket).await;
        }
    }
}

/// POSTs `logout_token=<token>`; counted and recorded.
pub(crate) async fn send_backchannel(
    state: &State,
    url: &str,
    token: &str,
) -> io::Result<(u16, String)> {
    lock(&state.counters).backchannel_sent += 1;
    let result = post_form(state, url, "logout_token", token).await;
    record(state, "back-channel logout", url, &result);
    result
}

/// POSTs `logoutRequest=<samlp:LogoutRequest ..>` for `session_index`; counted and recorded.
pub(crate) async fn send_cas_slo(
    state: &State,
    url: &str,
    session_index: &str,
) -> io::Result<(u16, String)> {
    lock(&state.counters).cas_slo_sent += 1;
    let xml = logout_request_xml(session_index);
    let result = post_form(state, url, "logoutRequest", &xml).await;
    record(state, "CAS single logout", url, &result);
    result
}

/// The CAS protocol 3.0 SLO message (a SAML 2.0 `LogoutRequest`).
pub(crate) fn logout_request_xml(session_index: &str) -> String {
    format!(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"LR-{}\" Version=\"2.0\" \
         IssueInstant=\"{}\"><saml:NameID>@NOT_USED@</saml:NameID>\
         <samlp:SessionIndex>{}</samlp:SessionIndex></samlp:LogoutRequest>",
        random_token(16),
        rfc3339(now_secs()),
        escape_html(session_index)
    )
}

fn record(state: &State, what: &str, url: &str, result: &io::Result<(u16, String)>) {
    let status = match result {
        Ok((status, _)) => {
            tracing::info!(url, status, "sent {what}");
            *status
        }
        Err(e) => {
            tracing::info!(url, error = %e, "{what} got no answer");
            0
        }
    };
    lock(&state.logout).log.push((url.to_string(), status));
}

/// POSTs one form field to `url`; the answer's status and body. Redirects are not
/// followed, no proxy is used, and every POST opens a fresh connection.
async fn post_form(state: &State, url: &str, name: &str, value: &str) -> io::Result<(u16, String)> {
    let resp = client(state)?
        .post(url)
        .form(&[(name, value)])
        .send()
        .await
        .map_err(io_error)?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(io_error)?;
    Ok((status, body))
}

/// The shared HTTP client (also for synchronization events), built on first use.
pub(crate) fn client(state: &State) -> io::Result<reqwest::Client> {
    if let Some(c) = state.http.get() {
        return Ok(c.clone());
    }
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(SEND_TIMEOUT)
        .user_agent("oneaccess-sim")
        .build()
        .map_err(io::Error::other)?;
    Ok(state.http.get_or_init(|| c).clone())
}

/// Keeps the kind of the underlying I/O error (e.g. `ConnectionRefused`) when there is one.
pub(crate) fn io_error(e: reqwest::Error) -> io::Error {
    let mut kind = if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else {
        io::ErrorKind::Other
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            kind = io.kind();
            break;
        }
        source = s.source();
    }
    io::Error::new(kind, e)
}

#[cfg(test)]
mod tests {
    use super::logout_request_xml;

    #[test]
    fn logout_request_shape() {
        let xml = logout_request_xml("ST-a<b");
        assert!(xml.starts_with(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"LR-"
        ));
        assert!(xml.contains("\" Version=\"2.0\" IssueInstant=\""));
        assert!(xml.ends_with(
            "Z\"><saml:NameID>@NOT_USED@</saml:NameID>\
             <samlp:SessionIndex>ST-a&lt;b</samlp:SessionIndex></samlp:LogoutRequest>"
        ));
    }
}
