//! The gateway's decisions without a server: logins, callbacks, logout, sessions, policy, with the simulator or no IdP at all.

use std::path::Path;

use http::Request;

use super::*;
use crate::auth::pending::PendingLogin;
use crate::config::Realm;
use crate::reply::Reply;
use crate::session::cookie::pairs;
use crate::session::SessionData;

const KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

fn gateway(extra_server: &str) -> Gateway {
    gateway_with(extra_server, "")
}

/// `gateway`, with more `[session]` lines.
fn gateway_with(extra_server: &str, extra_session: &str) -> Gateway {
    let text = format!(
        r#"
[server]
public_url = "https://app.example.com"
allowed_redirect_hosts = ["portal.example.com"]
{extra_server}
[session]
store = "memory"
keys = [{{ value = "{KEY}", dev = true }}]
max_pending_logins = 2
{extra_session}
[provider]
domain = "tenant.example.com"
client_id = "app"
client_secret = {{ value = "s", dev = true }}
[[route]]
upstream = "http://127.0.0.1:3000"
protocol = "oidc"
[[route]]
path = "/pub"
upstream = "http://127.0.0.1:3000"
protocol = "public"
"#
    );
    let cfg = crate::config::parse(&text, Path::new("."), &|_| None).expect("config");
    // Offline: these tests never reach the IdP.
    Gateway::with_http(cfg, std::sync::Arc::new(crate::auth::http::Offline)).expect("gateway")
}

fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("request").into_parts().0
}

fn header<'r>(r: &'r Reply, name: &str) -> Vec<&'r str> {
    r.headers
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A new OIDC session of user `sub` made at `now`: its cookie's value.
async fn issue(g: &Gateway, sub: &str, now: u64) -> String {
    let identity = crate::identity::Identity {
        sub: sub.into(),
        claims: vec![],
    };
    let realm = Realm::Oidc("app".into());
    g.sessions()
        .issue(NewSession::of(identity), &realm, now)
        .await
        .expect("session")
}

/// A request carrying session cookie `value`.
fn with_session(g: &Gateway, value: &str) -> Parts {
    let cookie = format!("{}={value}", g.config.session.cookie_name);
    parts("GET", "/", &[("cookie", &cookie)])
}

#[test]
fn api_requests_are_told_apart_from_navigations() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let cases: &[Case] = &[
        (
            "GET",
            &[("accept", "text/html,application/xhtml+xml")],
            false,
        ),
        ("GET", &[], false),
        ("GET", &[("accept", "application/json")], true),
        ("GET", &[("accept", "*/*")], false),
        (
            "GET",
            &[
                ("x-requested-with", "XMLHttpRequest"),
                ("accept", "text/html"),
            ],
            true,
        ),
        (
            "GET",
            &[("sec-fetch-mode", "cors"), ("accept", "text/html")],
            true,
        ),
        (
            "GET",
            &[
                ("sec-fetch-mode", "navigate"),
                ("accept", "application/json"),
            ],
            false,
        ),
        ("POST", &[("accept", "text/html")], true),
        ("HEAD", &[], false),
    ];
    for (method, headers, api) in cases {
        assert_eq!(
            is_api_request(&parts(method, "/", headers)),
            *api,
            "{method} {headers:?}"
        );
    }
}

#[tokio::test]
async fn api_clients_get_401_json_not_a_redirect() {
    let g = gateway("");
    let route = g
        .router
        .find(Some("app.example.com"), "/x", false)
        .expect("route")
        .clone();
    let p = parts("GET", "/x", &[("accept", "application/json")]);
    let r = g.logins().login_required(&route, &p, 1000).await;
    assert_eq!(r.status, 401);
    assert!(header(&r, "location").is_empty());
    assert_eq!(header(&r, "content-type"), ["application/json"]);
}

#[tokio::test]
async fn logout_clears_cookies_and_goes_to_global_logout() {
    let g = gateway("");
    let p = parts(
        "GET",
        "/_sso/logout?rd=/bye",
        &[
            ("host", "app.example.com"),
            ("sec-fetch-site", "same-origin"),
            (
                "cookie",
                "__Host-oag_session=x; __Host-oag_session_login_abc=y; other=1",
            ),
        ],
    );
    let r = g.logouts().logout(&p, 1000).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        header(&r, "location"),
        ["https://tenant.example.com/api/v1/logout?redirect_url=https%3A%2F%2Fapp.example.com%2Fbye"]
    );
    let cleared: Vec<&str> = header(&r, "set-cookie")
        .iter()
        .filter_map(|c| pairs(c.as_bytes()).next().map(|(n, _)| n))
        .collect();
    assert_eq!(
        cleared,
        ["__Host-oag_session", "__Host-oag_session_login_abc"]
    );
    assert!(header(&r, "set-cookie")
        .iter()
        .all(|c| c.contains("Max-Age=0") && c.contains("Secure")));
}

#[tokio::test]
async fn logout_refuses_hostile_targets() {
    let g = gateway(r#"post_logout_redirect = "/signed-out""#);
    for rd in [
        "//evil.com",
        "https://evil.com/",
        "/%09/evil.com",
        "https:evil.com",
        "/\\evil.com",
    ] {
        let q: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let p = parts(
            "GET",
            &format!("/_sso/logout?rd={q}"),
            &[("host", "app.example.com"), ("sec-fetch-site", "none")],
        );
        let loc = header(&g.logouts().logout(&p, 1000).await, "location")[0].to_string();
        assert!(
            loc.ends_with("redirect_url=https%3A%2F%2Fapp.example.com%2Fsigned-out"),
            "{rd} -> {loc}"
        );
    }
    let p = parts(
        "GET",
        "/_sso/logout?rd=https%3A%2F%2Fportal.example.com%2Fhome",
        &[("referer", "https://app.example.com/some/page")],
    );
    let loc = header(&g.logouts().logout(&p, 1000).await, "location")[0].to_string();
    assert!(
        loc.ends_with("redirect_url=https%3A%2F%2Fportal.example.com%2Fhome"),
        "{loc}"
    );
}

#[test]
fn pending_logins_are_bounded_oldest_first() {
    let g = gateway("");
    let mut cookies = Vec::new();
    for (i, created) in [(0, 500u64), (1, 300), (2, 400)] {
        let p = PendingLogin::new(
            "/".into(),
            "https://app.example.com".into(),
            0,
            Realm::Oidc("app".into()),
            created,
        )
        .expect("pending");
        let name = format!("{}{}", g.config.session.pending_prefix, p.cookie_id());
        let v = g
            .sessions()
            .sealer()
            .seal(&name, &serde_json::to_vec(&p).expect("json"))
            .expect("seal");
        cookies.push((i, created, name, v));
    }
    let header_value = cookies
        .iter()
        .map(|(_, _, n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
        + "; __Host-oag_session_login_garbage=zzz";
    let p = parts("GET", "/", &[("cookie", &header_value)]);
    let cleared: Vec<String> = g
        .logins()
        .evict_pending(&p, "__Host-oag_session_login_new", 600)
        .iter()
        .filter_map(|c| pairs(c.as_bytes()).next().map(|(n, _)| n.to_string()))
        .collect();
    // Limit 2, three live + one new: the two oldest (300, 400) go, and the garbage.
    let mut want = vec![
        "__Host-oag_session_login_garbage".to_string(),
        cookies[1].2.clone(),
        cookies[2].2.clone(),
    ];
    want.sort();
    let mut got = cleared;
    got.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn tampered_and_foreign_session_cookies_are_no_session() {
    let g = gateway("");
    let data = SessionData {
        identity: crate::identity::Identity {
            sub: "u".into(),
            claims: vec![],
        },
        issued_at: 0,
        issued_ms: 0,
        expires_at: 2000,
        realm: Realm::Oidc("app".into()),
        id_token: None,
        id: "session-1".into(),
        sid: None,
        ticket_hash: None,
        last_seen: 0,
        access_expires: None,
        refresh_token: None,
        access_token: None,
        generation: 0,
        renewed: false,
    };
    let name = g.config.session.cookie_name.clone();
    let good = crate::session::seal(g.sessions().sealer(), &name, &data, Default::default())
        .expect("seal");
    let ok = parts("GET", "/", &[("cookie", &format!("{name}={good}"))]);
    assert_eq!(
        g.sessions()
            .of(&ok, 1000)
            .await
            .expect("store")
            .map(|(d, _)| d),
        Some(data.clone())
    );
    assert_eq!(
        g.sessions()
            .of(&ok, 2000)
            .await
            .expect("store")
            .map(|(d, _)| d),
        None,
        "expired"
    );
    let mut bad = good.clone().into_bytes();
    let i = bad.len() / 2;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).expect("utf8");
    for v in [bad.as_str(), "", "x", &good[..good.len() - 4]] {
        let p = parts("GET", "/", &[("cookie", &format!("{name}={v}"))]);
        assert_eq!(
            g.sessions()
                .of(&p, 1000)
                .await
                .expect("store")
                .map(|(d, _)| d),
            None,
            "{v}"
        );
    }
    // A value sealed for another cookie name is not a session.
    let other = crate::session::seal(
        g.sessions().sealer(),
        "__Host-oag_session_login_x",
        &data,
        Default::default(),
    )
    .expect("seal");
    let p = parts("GET", "/", &[("cookie", &format!("{name}={other}"))]);
    assert_eq!(
        g.sessions()
            .of(&p, 1000)
            .await
            .expect("store")
            .map(|(d, _)| d),
        None
    );
}

#[tokio::test]
async fn callback_without_pending_cookie_is_an_expired_login() {
    let g = gateway("");
    let p = parts(
        "GET",
        "/_sso/callback?code=abc&state=0123456789abcdefXYZ",
        &[],
    );
    let r = g.logins().callback(&p, 1000).await;
    assert_eq!(r.status, 400);
    let p = parts("GET", "/_sso/callback?error=access_denied&state=x", &[]);
    assert_eq!(g.logins().callback(&p, 1000).await.status, 403);
    let p = parts("GET", "/_sso/callback", &[]);
    assert_eq!(g.logins().callback(&p, 1000).await.status, 400);
}

#[tokio::test]
async fn cross_site_logout_needs_a_confirmation_with_a_token() {
    let g = gateway("");
    let session = "__Host-oag_session=x";
    // A cross-site GET (an <img> or link on another site): no logout, a page.
    for headers in [
        vec![("sec-fetch-site", "cross-site"), ("cookie", session)],
        vec![("sec-fetch-site", "same-site"), ("cookie", session)],
        vec![
            ("referer", "https://evil.example.net/"),
            ("cookie", session),
        ],
        vec![("cookie", session)],
    ] {
        let r = g
            .logouts()
            .logout(&parts("GET", "/_sso/logout?rd=/bye", &headers), 1000)
            .await;
        assert_eq!(r.status, 200, "{headers:?}");
        assert!(header(&r, "location").is_empty());
        assert!(header(&r, "set-cookie")
            .iter()
            .all(|c| !c.starts_with("__Host-oag_session=")));
        let csrf = header(&r, "set-cookie")
            .iter()
            .find(|c| c.starts_with("__Host-oag_session_csrf="))
            .map(|c| c.to_string())
            .expect("csrf cookie");
        assert!(csrf.contains("SameSite=Strict"), "{csrf}");
    }
    // The page's form: POST with the token from the cookie logs out.
    let page = g
        .logouts()
        .logout(
            &parts("GET", "/_sso/logout?rd=/bye", &[("cookie", session)]),
            1000,
        )
        .await;
    let token = header(&page, "set-cookie")
        .iter()
        .find_map(|c| {
            pairs(c.as_bytes())
                .next()
                .filter(|(n, _)| *n == "__Host-oag_session_csrf")
                .map(|(_, v)| v.to_string())
        })
        .expect("token");
    let body = std::str::from_utf8(&page.body).expect("utf8").to_string();
    assert!(
        body.contains(&format!(
            "action=\"/_sso/logout?csrf={token}&amp;rd=%2Fbye\""
        )),
        "{body}"
    );
    let cookies = format!("{session}; __Host-oag_session_csrf={token}");
    let r = g
        .logouts()
        .logout(
            &parts(
                "POST",
                &format!("/_sso/logout?csrf={token}&rd=%2Fbye"),
                &[("cookie", &cookies)],
            ),
            1000,
        )
        .await;
    assert_eq!(r.status, 302);
    assert!(header(&r, "location")[0].ends_with("redirect_url=https%3A%2F%2Fapp.example.com%2Fbye"));
    // A forged POST: a token without the cookie, or the wrong one.
    for (query, cookie) in [
        (format!("csrf={token}"), session.to_string()),
        ("csrf=forged".to_string(), cookies.clone()),
        (String::new(), cookies.clone()),
    ] {
        let r = g
            .logouts()
            .logout(
                &parts(
                    "POST",
                    &format!("/_sso/logout?{query}"),
                    &[("cookie", &cookie)],
                ),
                1000,
            )
            .await;
        assert_eq!(r.status, 200, "{query} / {cookie}");
    }
}

#[tokio::test]
async fn cookie_sessions_idle_out_and_active_ones_slide() {
    let g = gateway_with("", "lifetime_seconds = 36000\nidle_timeout_seconds = 600");
    let t0 = 1_000_000;
    let value = issue(&g, "u", t0).await;
    let req = |v: &str| with_session(&g, v);

    // Used within a quarter of the idle timeout: valid, no new cookie.
    let (_, refresh) = g
        .sessions()
        .of(&req(&value), t0 + 100)
        .await
        .expect("store")
        .expect("valid");
    assert!(refresh.is_empty());
    // Later: valid, and a re-sealed cookie moves last-seen forward.
    let (_, refresh) = g
        .sessions()
        .of(&req(&value), t0 + 400)
        .await
        .expect("store")
        .expect("valid");
    let refreshed = refresh.first().expect("a refreshed cookie").clone();
    assert!(refreshed.contains("Max-Age=35600"), "{refreshed}");
    let new_value = pairs(refreshed.as_bytes())
        .next()
        .expect("pair")
        .1
        .to_string();
    // Idle past the timeout: the old cookie is dead, the refreshed one lives.
    assert!(g
        .sessions()
        .of(&req(&value), t0 + 700)
        .await
        .expect("store")
        .is_none());
    assert!(g
        .sessions()
        .of(&req(&new_value), t0 + 700)
        .await
        .expect("store")
        .is_some());
    assert!(g
        .sessions()
        .of(&req(&new_value), t0 + 400 + 600)
        .await
        .expect("store")
        .is_none());
}

#[tokio::test]
async fn a_denied_older_session_is_sent_to_a_fresh_login_once() {
    let text = format!(
        r#"
[server]
public_url = "https://app.example.com"
[session]
store = "memory"
keys = [{{ value = "{KEY}", dev = true }}]
[provider]
domain = "tenant.example.com"
[[route]]
upstream = "http://127.0.0.1:3000"
protocol = "cas"
policy = {{ users = ["bob"], on_deny = "reauthenticate" }}
"#
    );
    let cfg = crate::config::parse(&text, Path::new("."), &|_| None).expect("config");
    let g = Gateway::with_http(cfg, std::sync::Arc::new(NoHttp)).expect("gateway");
    let route = g
        .router
        .find(Some("app.example.com"), "/x", false)
        .expect("route")
        .clone();
    let alice = SessionData {
        identity: crate::identity::Identity {
            sub: "alice".into(),
            claims: vec![],
        },
        issued_at: 1000,
        issued_ms: 0,
        expires_at: 9000,
        realm: Realm::Cas,
        id_token: None,
        id: "s".into(),
        sid: None,
        ticket_hash: None,
        last_seen: 1000,
        access_expires: None,
        refresh_token: None,
        access_token: None,
        generation: 0,
        renewed: false,
    };
    let p = parts("GET", "/x", &[("accept", "text/html")]);
    // An hour after login: a fresh login, asking CAS not to reuse the SSO session.
    let r = g
        .authorizer()
        .authorize(&route, &p, &x_path(), Some(&alice), None, 4600)
        .await
        .expect("denied");
    assert_eq!(r.status, 302);
    let loc = header(&r, "location")[0].to_string();
    assert!(
        loc.contains("/api/v1/cas/login?") && loc.contains("renew=true"),
        "{loc}"
    );
    // Seconds after a login: 403, no loop.
    let r = g
        .authorizer()
        .authorize(&route, &p, &x_path(), Some(&alice), None, 1010)
        .await
        .expect("denied");
    assert_eq!(r.status, 403);
    // Allowed users pass.
    let mut bob = alice.clone();
    bob.identity.sub = "bob".into();
    assert!(g
        .authorizer()
        .authorize(&route, &p, &x_path(), Some(&bob), None, 4600)
        .await
        .is_none());
}

/// A provider that answers only its discovery document (the health probe a
/// login asks first); the CAS login URL needs no network.
struct NoHttp;

#[async_trait::async_trait]
impl crate::auth::http::HttpClient for NoHttp {
    async fn send(
        &self,
        req: crate::auth::http::OutboundRequest,
    ) -> Result<crate::auth::http::OutboundResponse, String> {
        if req.url.ends_with("/.well-known/openid-configuration") {
            return Ok(crate::auth::http::OutboundResponse {
                status: 200,
                body: bytes::Bytes::from_static(b"{}"),
            });
        }
        Err("no network in unit tests".into())
    }
}

/// The front door's reading of `/x`.
fn x_path() -> crate::front_door::RequestPath<'static> {
    crate::front_door::canonical(b"/x").expect("a path")
}

/// A callback reads the clock when it begins and makes the session after the
/// code exchange, which can end in the next second. Such a session still comes
/// after every revocation made before the callback began (a user disabled,
/// enabled again and logged in within one second is served), and before every
/// revocation of that second's last millisecond or later.
#[tokio::test]
async fn a_session_made_in_the_next_second_comes_after_that_second_s_revocations() {
    let g = gateway("");
    let begun = crate::session::now_secs() - 1;
    async fn revoke(g: &Gateway, sub: &str, at: u64) {
        let ttl = std::time::Duration::from_secs(3600);
        let key = format!("rev:sub:{sub}");
        g.sessions()
            .store()
            .revoke(&key, at, ttl)
            .await
            .expect("revoke");
    }
    async fn served(g: &Gateway, value: &str, now: u64) -> bool {
        let p = with_session(g, value);
        g.sessions().of(&p, now).await.expect("store").is_some()
    }

    revoke(&g, "before", begun * 1000 + 500).await;
    let value = issue(&g, "before", begun).await;
    assert!(
        served(&g, &value, begun).await,
        "refused by an earlier revocation"
    );

    let value = issue(&g, "after", begun).await;
    revoke(&g, "after", begun * 1000 + 999).await;
    assert!(
        !served(&g, &value, begun).await,
        "served after its revocation"
    );
}

/// A server-mode session whose record outlived its end (the store took the
/// revocation, then failed to delete the record) is refused from its first
/// request on, whether a worker keeps copies or not: the store's record is
/// checked against the revocations as a copy is.
#[tokio::test]
async fn a_revoked_server_session_is_refused_though_its_record_remains() {
    for entries in [0, 1024] {
        let g = gateway_with("", &format!("mode = \"server\"\ncache_entries = {entries}"));
        let now = crate::session::now_secs();
        let req = with_session(&g, &issue(&g, "u", now).await);
        let s = g.sessions();
        let (data, _) = s.of(&req, now).await.expect("store").expect("served");
        // The revocation `end` writes first, without the delete after it.
        let ttl = std::time::Duration::from_secs(3600);
        let key = format!("rev:ses:{}", data.id);
        s.store()
            .revoke(&key, crate::session::now_millis(), ttl)
            .await
            .expect("revoke");
        assert!(
            s.store()
                .load(&format!("ses:{}", data.id), None)
                .await
                .expect("store")
                .is_some(),
            "the record remains"
        );
        assert!(
            s.of(&req, now).await.expect("store").is_none(),
            "cache_entries = {entries}: served a revoked session"
        );
    }
}
