//! The OneAccess login page and form: checks credentials, starts the SSO session
//! (cookie `oa_sso`) and sends the browser back, but only to the simulator's own paths.
//! A disabled user is refused with an error page and gets no session.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::http::{html, param, query, redirect, set_sso_cookie, sso_cookie, with_cookie, STYLE};
use super::state::{lock, State};
use crate::util::{escape_html, parse_form};

pub(crate) async fn page(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query(raw.as_deref()).unwrap_or_default();
    let redirect_to = param(&q, "redirect").unwrap_or("");
    let signed_in = state
        .session(sso_cookie(&headers).as_deref())
        .and_then(|(_, s)| state.user_by_id(&s.user_id).map(|u| u.name.clone()));
    html(
        StatusCode::OK,
        render(&state, redirect_to, "", None, signed_in.as_deref()),
    )
}

pub(crate) async fn submit(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&body).unwrap_or_default();
    let username = param(&form, "username").unwrap_or("");
    let password = param(&form, "password").unwrap_or("");
    let redirect_to = param(&form, "redirect").unwrap_or("");

    let entry = state
        .entry_by_login(username)
        .filter(|e| !password.is_empty() && e.user.password == password);
    let refuse = |message| {
        html(
            StatusCode::UNAUTHORIZED,
            render(&state, redirect_to, username, Some(message), None),
        )
    };
    // Only the right password learns that the account is disabled (as OneAccess's
    // USER.0004 "User disabled."); a wrong one gets the usual message.
    if entry.as_ref().is_some_and(|e| e.disabled) {
        tracing::info!(username, "login refused: the user is disabled");
        return refuse("User disabled. Contact the administrator.");
    }
    let Some(user) = entry.map(|e| e.user) else {
        tracing::info!(username, "login failed");
        return refuse("Invalid username or password.");
    };

    let sid = {
        let mut store = lock(&state.store);
        if let Some(old) = sso_cookie(&headers) {
            store.sessions.remove(&old);
        }
        store.new_session(&user.id)
    };
    tracing::info!(user = %user.user_name, "login succeeded, SSO session started");
    let target = if is_local_redirect(redirect_to) {
        redirect_to
    } else {
        "/api/v1/login"
    };
    with_cookie(redirect(target), &set_sso_cookie(&sid))
}

/// Only the simulator's own API paths; never another origin (no open redirect).
fn is_local_redirect(target: &str) -> bool {
    target.starts_with("/api/v1/")
        && !target.contains('\\')
        && !target.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn render(
    state: &State,
    redirect_to: &str,
    username: &str,
    error: Option<&str>,
    signed_in: Option<&str>,
) -> String {
    let error = error
        .map(|e| {
            format!(
                "<p class=\"error\" id=\"login-error\">{}</p>",
                escape_html(e)
            )
        })
        .unwrap_or_default();
    let signed_in = signed_in
        .map(|n| format!("<p class=\"hint\">Signed in as {}.</p>", escape_html(n)))
        .unwrap_or_default();
    let hint = if state.cfg.login_hint {
        let accounts: Vec<String> = state
            .enabled_users()
            .iter()
            .take(5)
            .map(|u| {
                format!(
                    "<code>{}</code> / <code>{}</code>",
                    escape_html(&u.user_name),
                    escape_html(&u.password)
                )
            })
            .collect();
        format!(
            "<p class=\"hint\" id=\"login-hint\">Demo accounts: {}</p>",
            accounts.join(", ")
        )
    } else {
        String::new()
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OneAccess</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>OneAccess</h1>
<p>Sign in to continue.</p>
{signed_in}{error}<form id="login-form" method="post" action="/api/v1/login/form">
<input type="hidden" name="redirect" value="{redirect}">
<label for="username">Username</label>
<input type="text" name="username" id="username" value="{username}" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input type="password" name="password" id="password" autocomplete="current-password" required>
<button type="submit" id="login-submit">Sign in</button>
</form>
{hint}
</main>
</body>
</html>
"#,
        redirect = escape_html(redirect_to),
        username = escape_html(username),
    )
}

#[cfg(test)]
mod tests {
    use super::is_local_redirect;

    #[test]
    fn redirects() {
        assert!(is_local_redirect("/api/v1/oauth2/authorize?x=1"));
        assert!(!is_local_redirect("https://evil.example/api/v1/"));
        assert!(!is_local_redirect("//evil.example/api/v1/"));
        assert!(!is_local_redirect("/api/v1/\r\nSet-Cookie: x"));
        assert!(!is_local_redirect("/other"));
    }
}
