//! Logging in the way a browser does, by hand: a client that follows redirects
//! itself and keeps one cookie jar for the simulator and one for the site (the
//! gateway or Apache). Used to get the session cookies the load runs send, and to
//! drive the logins-per-second mode.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode};

pub const USER: (&str, &str) = ("alice", "alice-password");
/// Alice's user id at the simulator: the `sub` the app must see through OIDC.
pub const ALICE_ID: &str = "20240001";
/// Alice's login name: the user CAS names, which the app sees through CAS.
pub const ALICE_LOGIN: &str = USER.0;

/// Cookies by name, as a browser keeps them for one site.
#[derive(Default, Clone, Debug)]
pub struct Jar(BTreeMap<String, String>);

impl Jar {
    /// Takes in every `Set-Cookie` of an answer; an expired or emptied one is removed.
    pub fn absorb(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let Ok(text) = v.to_str() else { continue };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.trim().split_once('=')) else {
                continue;
            };
            let expired = parts.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("max-age=-") || a.contains("1970")
            });
            if expired || value.is_empty() {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_string(), value.to_string());
            }
        }
    }

    /// The `Cookie` header value.
    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A client for logins: no automatic redirects, no automatic cookies.
pub fn client() -> Result<Client, String> {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| e.to_string())
}

/// Signs Alice in at the simulator's form: the SSO session cookie (`oa_sso=…`)
/// with which OneAccess's authorize endpoint answers at once, as it does for a
/// user already signed in.
pub async fn sso_session(client: &Client, sim: &str) -> Result<String, String> {
    let resp = client
        .post(format!("{sim}/api/v1/login/form"))
        .form(&[("username", USER.0), ("password", USER.1), ("redirect", "")])
        .send()
        .await
        .map_err(|e| format!("simulator login: {e}"))?;
    let mut jar = Jar::default();
    jar.absorb(resp.headers());
    if jar.is_empty() {
        return Err(format!(
            "the simulator's login form set no cookie ({})",
            resp.status()
        ));
    }
    Ok(jar.header())
}

/// The first steps of a login: opens `url` on the site and follows the redirects
/// through the simulator (signed in with `sso`) until the site's own callback URL,
/// which is returned unvisited with the site's cookies so far (the pending login).
pub async fn to_callback(
    client: &Client,
    url: &str,
    sim: &str,
    sso: &str,
) -> Result<(String, Jar), String> {
    let mut site = Jar::default();
    let mut next = url.to_string();
    for _ in 0..6 {
        let on_sim = next.starts_with(sim);
        if !on_sim && next != url {
            return Ok((next, site));
        }
        let cookie = if on_sim {
            sso.to_string()
        } else {
            site.header()
        };
        let resp = get(client, &next, &cookie).await?;
        if !on_sim {
            site.absorb(resp.headers());
        }
        next = location(&resp, &next)?;
    }
    Err(format!("too many redirects from {url}"))
}

/// The callback: the site exchanges the code, checks the ID token and answers
/// with its session cookie. Returns the `Cookie` header to send from then on.
pub async fn callback(client: &Client, url: &str, mut site: Jar) -> Result<String, String> {
    let resp = get(client, url, &site.header()).await?;
    if !resp.status().is_redirection() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("callback answered {status}: {}", clip(&body)));
    }
    site.absorb(resp.headers());
    Ok(site.header())
}

/// A whole login: the session cookie for `url`.
pub async fn login(client: &Client, url: &str, sim: &str, sso: &str) -> Result<String, String> {
    let (cb, jar) = to_callback(client, url, sim, sso).await?;
    callback(client, &cb, jar).await
}

/// Checks that `cookie` opens `url` and that the app behind saw Alice as `user`
/// (her id, or her login name through CAS): the upstream repeats the user header
/// it received as `X-Seen-User`.
pub async fn check_session(
    client: &Client,
    url: &str,
    cookie: &str,
    user: &str,
) -> Result<(), String> {
    let resp = get(client, url, cookie).await?;
    let seen = resp
        .headers()
        .get("x-seen-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if resp.status() != StatusCode::OK || seen != user {
        return Err(format!(
            "{url} with the session answered {} and the app saw user {seen:?}, not {user}",
            resp.status()
        ));
    }
    // And without the session, the app is not reached.
    let anonymous = get(client, url, "").await?;
    if anonymous.status() == StatusCode::OK {
        return Err(format!("{url} answered 200 without a session"));
    }
    Ok(())
}

async fn get(client: &Client, url: &str, cookie: &str) -> Result<reqwest::Response, String> {
    let mut req = client
        .get(url)
        .header("Accept", "text/html,application/xhtml+xml");
    if !cookie.is_empty() {
        req = req.header(COOKIE, cookie);
    }
    req.send().await.map_err(|e| format!("GET {url}: {e}"))
}

fn location(resp: &reqwest::Response, from: &str) -> Result<String, String> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("{from} answered {} without a redirect", resp.status()))?;
    url::Url::parse(from)
        .and_then(|base| base.join(loc))
        .map(|u| u.to_string())
        .map_err(|e| format!("bad Location {loc:?}: {e}"))
}

fn clip(s: &str) -> &str {
    let end = s.char_indices().nth(300).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn the_jar_keeps_set_cookies_and_drops_cleared_ones() {
        let mut h = HeaderMap::new();
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("a=1; Path=/; HttpOnly"),
        );
        h.append(SET_COOKIE, HeaderValue::from_static("b=2"));
        let mut jar = Jar::default();
        jar.absorb(&h);
        assert_eq!(jar.header(), "a=1; b=2");
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("a=; Max-Age=0"));
        jar.absorb(&h);
        assert_eq!(jar.header(), "b=2");
    }
}
