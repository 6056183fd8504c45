//! Forward auth end to end with a real nginx in front: nginx serves the echo app
//! and asks the gateway (`auth_request /_sso/auth`) about every request, with the
//! configuration of `deploy/nginx/oneaccess-gateway.conf` (only its addresses
//! changed). Login through `/_sso/start`, identity headers at the app and no
//! client-sent ones, per-route policy, who forward auth answers, and logout.
//!
//! nginx connects to the gateway from 127.0.0.2 (`proxy_bind`), the only trusted
//! proxy; the test's own client connects from 127.0.0.1, so asking the gateway
//! directly is asking as an untrusted peer.
//!
//! Needs nginx (`/usr/sbin/nginx`, installed by scripts/setup.sh): without it
//! these tests fail, they do not skip.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use common::*;
use oneaccess_sim::echo::Echo;
use oneaccess_sim::{Sim, SimConfig};

/// The example shipped to users; the tests run exactly its directives.
const EXAMPLE: &str = include_str!("../deploy/nginx/oneaccess-gateway.conf");

/// The address nginx connects to the gateway from; the only trusted proxy.
const NGINX_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Routes on nginx's host. None has an upstream: nginx serves the app.
const ROUTES: &str = r#"
[[route]]
host = "localhost"
path = "/"
protocol = "oidc"

[[route]]
host = "localhost"
path = "/public"
protocol = "public"

[[route]]
host = "localhost"
path = "/admin"
protocol = "oidc"
policy = { users = ["nobody"] }

[[route]]
host = "localhost"
path = "/readonly"
protocol = "oidc"
policy = { methods = ["GET", "HEAD"] }

[[route]]
host = "localhost"
path = "/reports"
protocol = "oidc"
policy = { paths = ["/reports/public"] }

[[route]]
host = "localhost"
path = "/office"
protocol = "oidc"
policy = { networks = ["10.0.0.0/8"] }

[[route]]
host = "localhost"
path = "/this-machine"
protocol = "oidc"
policy = { networks = ["127.0.0.1/32"] }
"#;

/// The simulator, the echo app, the gateway, and nginx in front of the two.
struct Stack {
    nginx: NginxServer,
    env: Env,
}

impl Stack {
    /// A URL on nginx, as users reach it.
    fn url(&self, path: &str) -> String {
        self.nginx.url(path)
    }

    /// A URL on the gateway itself, which users should not reach.
    fn gateway_url(&self, path: &str) -> String {
        self.env.url(path)
    }

    fn sim(&self) -> &Sim {
        &self.env.sim
    }

    fn echo(&self) -> &Echo {
        &self.env.echo
    }
}

/// The example nginx configuration with this test's addresses: nginx on
/// `nginx_port`, the gateway and the app where they listen, and nginx's
/// connections made from 127.0.0.2.
fn nginx_conf(nginx_port: u16, gateway_port: u16, app: std::net::SocketAddr) -> String {
    let mut conf = EXAMPLE.to_string();
    for (from, to) in [
        ("listen 80;", format!("listen 127.0.0.1:{nginx_port};")),
        (
            "server 127.0.0.1:8080;",
            format!("server 127.0.0.1:{gateway_port};"),
        ),
        ("server 127.0.0.1:3000;", format!("server {app};")),
    ] {
        assert_eq!(
            conf.matches(from).count(),
            1,
            "the example nginx config should contain `{from}` once"
        );
        conf = conf.replace(from, &to);
    }
    format!("proxy_bind {NGINX_SOURCE};\n{conf}")
}

fn gateway_conf(
    gateway_port: u16,
    nginx_port: u16,
    sim: &Sim,
    session_extra: &str,
    provider_extra: &str,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{gateway_port}"
public_url = "http://localhost:{nginx_port}"
threads = 2
trusted_proxies = ["{NGINX_SOURCE}/32"]

[session]
keys = [{{ value = "{COOKIE_KEY}", dev = true }}]
{state_dir}
{session_extra}

[provider]
issuer = "{issuer}"
client_id = "demo-client"
client_secret = {{ value = "demo-secret", dev = true }}
{provider_extra}
{ROUTES}
"#,
        issuer = sim.issuer(),
        state_dir = state_dir_line(gateway_port),
    )
}

async fn stack_with(sim_cfg: SimConfig, session_extra: &str, provider_extra: &str) -> Stack {
    let sim = Sim::start(sim_cfg).await.expect("simulator");
    let echo = Echo::start().await.expect("echo upstream");
    let (gateway_port, nginx_port) = (free_port(), free_port());
    let text = gateway_conf(
        gateway_port,
        nginx_port,
        &sim,
        session_extra,
        provider_extra,
    );
    let gw = start_gateway(&text).await;
    let conf = nginx_conf(nginx_port, gateway_port, echo.addr());
    let nginx = tokio::task::spawn_blocking(move || NginxServer::start(nginx_port, &conf))
        .await
        .expect("join");
    Stack {
        nginx,
        env: Env {
            sim,
            echo,
            gw,
            port: gateway_port,
        },
    }
}

async fn stack() -> Stack {
    stack_with(SimConfig::default(), "", "").await
}

/// A browser logged in as alice through nginx.
async fn alice(s: &Stack) -> Browser {
    let b = Browser::new();
    let page = b.login(&s.url("/app/x"), USER).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-forwarded-user"), [ALICE_ID]);
    b
}

fn session_cookie(b: &Browser) -> String {
    format!(
        "oag_session={}",
        b.cookie("localhost", "oag_session").expect("a session")
    )
}

/// A client that connects from nginx's address, the trusted proxy.
fn as_trusted_proxy() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(NGINX_SOURCE))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

const API: &[(&str, &str)] = &[("accept", "application/json")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_through_nginx_and_the_app_sees_who_it_is() {
    let s = stack().await;
    let b = Browser::new();
    let asked = s.url("/app/x?q=1");

    // 1. No session: the auth subrequest gets 401, nginx sends the browser to the
    //    gateway's start endpoint with the page to come back to.
    let first = b.get(&asked).await;
    assert_eq!(first.status, 302, "{}", first.body);
    let start = first.location().expect("location");
    assert!(start.starts_with(&s.url("/_sso/start?")), "{start}");
    assert_eq!(query(&start, "rd"), Some(asked.clone()));
    assert_eq!(s.echo().requests(), 0, "nothing reached the app");

    // 2. The start endpoint (through nginx) sends it to OneAccess, with the
    //    callback on nginx's origin.
    let to_idp = b.get(&start).await;
    assert_eq!(to_idp.status, 302, "{}", to_idp.body);
    let authorize = to_idp.location().expect("location");
    assert!(
        authorize.starts_with(&format!("{}/authorize?", s.sim().issuer())),
        "{authorize}"
    );
    assert_eq!(
        query(&authorize, "redirect_uri"),
        Some(s.url("/_sso/callback"))
    );
    assert!(
        to_idp
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("oag_session_login_")),
        "a pending login cookie: {:?}",
        to_idp.set_cookies()
    );

    // 3. Log in at the simulator; the callback (through nginx) lands on the page.
    let hops = b.follow(to_idp).await;
    let form = hops.last().expect("the login form");
    let posted = b.submit_login(form, USER).await;
    let hops = b.follow(posted).await;
    let callback = hops
        .iter()
        .find(|r| r.url.starts_with(&s.url("/_sso/callback?")))
        .unwrap_or_else(|| panic!("no callback through nginx: {hops:#?}"));
    assert_eq!(callback.status, 302);
    assert_eq!(callback.location(), Some(asked.clone()));
    let page = hops.last().expect("the page");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url, asked);
    let seen = page.json();
    assert_eq!(seen["path"], "/app/x");
    assert_eq!(seen["query"], "q=1");
    assert_alice_headers(page);
    let jar = b.cookies("localhost");
    assert!(jar.contains_key("oag_session"), "{jar:?}");
    assert!(!jar.keys().any(|k| k.starts_with("oag_session_login_")));

    // 4. Logged in: more pages, no IdP traffic (forward auth reads the cookie).
    let before = s.sim().counters();
    for i in 0..3 {
        let r = b.get(&s.url(&format!("/app/page/{i}"))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.upstream_header("x-forwarded-user"), [ALICE_ID]);
    }
    let after = s.sim().counters();
    assert_eq!(
        (before.token, before.jwks, before.discovery),
        (after.token, after.jwks, after.discovery)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sent_identity_headers_never_reach_the_app() {
    let s = stack().await;
    let forged: &[(&str, &str)] = &[
        ("X-Forwarded-User", "admin"),
        ("X_Forwarded_User", "admin"),
        ("x-forwarded-email", "admin@example.com"),
        ("X-Forwarded-Preferred-Username", "admin"),
        ("X_Forwarded_Preferred_Username", "admin"),
    ];
    let no_forged = |r: &Resp| {
        let names = r.upstream_header_names();
        assert!(
            !names.iter().any(|n| n.contains('_')),
            "an underscore spelling reached the app: {names:?}"
        );
        let values: Vec<String> = names.iter().flat_map(|n| r.upstream_header(n)).collect();
        for (_, v) in forged {
            assert!(
                !values.iter().any(|seen| seen == v),
                "a forged value reached the app: {}",
                r.body
            );
        }
    };

    // Without a session, on a public route: served, with no identity at all.
    let anon = Browser::new();
    let r = anon.get_with(&s.url("/public/x"), forged).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.upstream_header("x-forwarded-user").is_empty(),
        "{}",
        r.body
    );
    assert!(r.upstream_header("x-forwarded-email").is_empty());
    assert!(r
        .upstream_header("x-forwarded-preferred-username")
        .is_empty());
    no_forged(&r);

    // Without a session, on a protected route: off to log in, nothing served.
    let served = s.echo().requests();
    let r = anon.get_with(&s.url("/app/x"), forged).await;
    assert_eq!(r.status, 302);
    assert!(r
        .location()
        .expect("location")
        .starts_with(&s.url("/_sso/start?")));
    assert_eq!(s.echo().requests(), served);

    // With alice's session: her identity, once, whatever the client claimed.
    let b = alice(&s).await;
    let r = b.get_with(&s.url("/app/x"), forged).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_alice_headers(&r);
    no_forged(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_choose_the_request_forward_auth_judges() {
    let s = stack().await;
    // nginx sets X-Original-URL and X-Original-Method itself, and the gateway's
    // /_sso/auth reads no other forwarding header, so these name a public page
    // and a harmless method in vain.
    let forged_public: Vec<(&str, String)> = vec![
        ("x-original-url", s.url("/public/x")),
        ("x-original-uri", "/public/x".into()),
        ("x-forwarded-uri", "/public/x".into()),
        ("x-forwarded-host", "localhost".into()),
        ("x-forwarded-method", "GET".into()),
        ("x-original-method", "GET".into()),
    ];
    let forged: Vec<(&str, &str)> = forged_public
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();

    let anon = Browser::new();
    let r = anon.get_with(&s.url("/app/x"), &forged).await;
    assert_eq!(r.status, 302, "judged as the public page: {}", r.body);
    assert_eq!(s.echo().requests(), 0);

    let b = alice(&s).await;
    let served = s.echo().requests();
    let r = b.get_with(&s.url("/admin/x"), &forged).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = b
        .request(reqwest::Method::POST, &s.url("/readonly/x"), &forged, None)
        .await;
    assert_eq!(r.status, 403, "a POST judged as a GET: {}", r.body);
    assert_eq!(s.echo().requests(), served, "nothing reached the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_policies_deny_through_nginx() {
    let s = stack().await;
    let b = alice(&s).await;
    let served = s.echo().requests();

    // Who: alice is not "nobody". nginx shows its own 403 page.
    let r = b.get(&s.url("/admin/x")).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("403 Forbidden"), "{}", r.body);
    assert_eq!(s.echo().requests(), served, "the app saw nothing");

    // How: methods and path prefixes.
    assert_eq!(b.get(&s.url("/readonly/x")).await.status, 200);
    for method in [reqwest::Method::POST, reqwest::Method::DELETE] {
        let r = b
            .request(method.clone(), &s.url("/readonly/x"), API, None)
            .await;
        assert_eq!(r.status, 403, "{method}");
    }
    assert_eq!(b.get(&s.url("/reports/public/q1")).await.status, 200);
    assert_eq!(b.get(&s.url("/reports/secret")).await.status, 403);
    // Spellings of /reports/secret: nginx passes the raw URL to the app, and the
    // gateway judges that same raw URL (it decodes, or refuses dot segments).
    let served = s.echo().requests();
    let cookie = session_cookie(&b);
    for target in [
        "/reports/%73ecret",
        "/reports//secret",
        "/reports%2Fsecret",
        "/reports/public/../secret",
        "/reports/public/%2E%2E/secret",
        "/%61dmin/x",
    ] {
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost:{}\r\nCookie: {cookie}\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
            s.nginx.port
        );
        let status = raw_status(s.nginx.port, &req).await;
        assert!(status == 403 || status == 400, "{target} gave {status}");
    }
    assert_eq!(s.echo().requests(), served, "the app saw none of them");

    // From where: nginx passes the client's address (X-Forwarded-For, believed
    // from the trusted nginx, read from the right), not its own.
    assert_eq!(b.get(&s.url("/this-machine/x")).await.status, 200);
    assert_eq!(b.get(&s.url("/office/x")).await.status, 403);
    let r = b
        .get_with(&s.url("/office/x"), &[("x-forwarded-for", "10.1.2.3")])
        .await;
    assert_eq!(r.status, 403, "a client-written X-Forwarded-For counted");

    // An address no route covers (another host) is refused, not let through.
    let r = b
        .get(&format!("http://127.0.0.1:{}/app/x", s.nginx.port))
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_answers_only_the_trusted_proxy() {
    let s = stack().await;
    let b = alice(&s).await;
    let cookie = session_cookie(&b);
    let app = s.url("/app/x");

    // The test client (127.0.0.1) is not a trusted proxy: whatever it says, with
    // a valid session or without, it learns nothing.
    for endpoint in ["/_sso/auth", "/_sso/verify"] {
        for headers in [
            vec![("x-original-url", app.as_str())],
            vec![
                ("x-original-url", app.as_str()),
                ("cookie", cookie.as_str()),
            ],
            vec![
                ("x-forwarded-host", "localhost"),
                ("x-forwarded-uri", "/public/x"),
            ],
        ] {
            let r = Browser::new()
                .get_with(&s.gateway_url(endpoint), &headers)
                .await;
            assert_eq!(r.status, 403, "{endpoint} {headers:?}: {}", r.body);
            assert_eq!(r.json()["error"], "untrusted_proxy");
            assert!(r.headers.get("x-forwarded-user").is_none());
            assert!(r.set_cookies().is_empty());
        }
    }

    // The same questions from nginx's address are answered: the refusal above is
    // about the peer, not the question.
    let proxy = as_trusted_proxy();
    let ask = |headers: Vec<(&'static str, String)>| {
        let mut rb = proxy.get(s.gateway_url("/_sso/auth"));
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        rb.send()
    };
    let r = ask(vec![
        ("x-original-url", app.clone()),
        ("cookie", cookie.clone()),
    ])
    .await
    .expect("auth");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-forwarded-user"], ALICE_ID);
    let r = ask(vec![("x-original-url", app.clone())])
        .await
        .expect("auth");
    assert_eq!(r.status(), 401, "no session: 401, never a redirect");
    let r = ask(vec![("cookie", cookie.clone())]).await.expect("auth");
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "no_original_url");

    // Through nginx, /_sso/auth is an internal location: 404 from nginx itself,
    // which never asks the gateway. The redirecting variant is closed too.
    for endpoint in ["/_sso/auth", "/_sso/verify"] {
        let r = b
            .get_with(&s.url(endpoint), &[("x-original-url", app.as_str())])
            .await;
        assert_eq!(r.status, 404, "{endpoint}: {}", r.body);
        assert!(r.body.contains("nginx"), "nginx's page: {}", r.body);
        assert!(r.headers.get("x-forwarded-user").is_none());
    }

    // A route without an upstream is not served by the gateway directly.
    let r = b.get(&s.gateway_url("/app/x")).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        s.echo().requests(),
        1,
        "only alice's landing page was served"
    );
}

/// `/_sso/verify`, as Traefik `forwardAuth` and Caddy `forward_auth` call it:
/// the request in `X-Forwarded-Method`, `-Host` and `-Uri`, and a browser
/// without a session sent straight to log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traefik_and_caddy_endpoint_redirects_to_log_in() {
    let s = stack().await;
    let b = alice(&s).await;
    let cookie = session_cookie(&b);
    let proxy = as_trusted_proxy();
    let ask = |headers: Vec<(&'static str, String)>| {
        let mut rb = proxy
            .get(s.gateway_url("/_sso/verify"))
            .header("accept", "text/html");
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        rb.send()
    };
    let forwarded = |method: &str, uri: &str| {
        vec![
            ("x-forwarded-method", method.to_string()),
            ("x-forwarded-host", "localhost".to_string()),
            ("x-forwarded-uri", uri.to_string()),
        ]
    };

    // No session: a login redirect with its pending-login cookie, passed on by
    // the proxy to the browser.
    let r = ask(forwarded("GET", "/app/x")).await.expect("verify");
    assert_eq!(r.status(), 302);
    let to = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        to.starts_with(&format!("{}/api/v1/oauth2/authorize?", s.sim().base_url())),
        "{to}"
    );
    assert!(r.headers().get_all("set-cookie").iter().any(|c| c
        .to_str()
        .is_ok_and(|c| c.starts_with("oag_session_login_"))));

    // With a session: 200 and the identity; the policy applies as when proxying.
    let mut with_cookie = forwarded("GET", "/app/x");
    with_cookie.push(("cookie", cookie.clone()));
    let r = ask(with_cookie).await.expect("verify");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-forwarded-user"], ALICE_ID);
    let mut post = forwarded("POST", "/readonly/x");
    post.push(("cookie", cookie.clone()));
    assert_eq!(ask(post).await.expect("verify").status(), 403);

    // nginx's headers mean nothing here: they cannot turn /admin into /public.
    let mut mixed = forwarded("GET", "/admin/x");
    mixed.push(("x-original-url", s.url("/public/x")));
    mixed.push(("cookie", cookie));
    assert_eq!(ask(mixed).await.expect("verify").status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_through_nginx_ends_the_session() {
    let s = stack().await;
    let b = alice(&s).await;
    let copied = b.cookie("localhost", "oag_session").expect("session");

    let out = b.log_out(&s.url("/_sso/logout")).await;
    assert_eq!(out.status, 302, "{}", out.body);
    let to = out.location().expect("location");
    assert!(
        to.starts_with(&format!(
            "{}/api/v1/logout?redirect_url=",
            s.sim().base_url()
        )),
        "{to}"
    );
    assert_eq!(query(&to, "redirect_url"), Some(s.url("/")));
    assert!(b.cookie("localhost", "oag_session").is_none());

    // The next page sends the browser to log in again.
    let served = s.echo().requests();
    let r = b.get(&s.url("/app/x")).await;
    assert_eq!(r.status, 302);
    assert!(r
        .location()
        .expect("location")
        .starts_with(&s.url("/_sso/start?")));
    // So does a copy of the old cookie.
    let thief = Browser::new();
    thief.set_cookie("localhost", "oag_session", &copied);
    let r = thief.get(&s.url("/app/x")).await;
    assert_eq!(r.status, 302, "a copied cookie outlived the logout");
    assert_eq!(s.echo().requests(), served);

    // Following the logout: OneAccess's session is over too, so the way back to
    // `/` ends at the login form, not silently logged in.
    let hops = b.follow(out).await;
    let last = hops.last().expect("last");
    assert_eq!(last.status, 200);
    assert!(last.body.contains("login-form"), "{}", last.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_gateway_refreshes_reaches_the_browser_through_nginx() {
    // Access tokens live 62 s and are refreshed in their last 60: the first
    // request 2 s after login refreshes (the simulator rotates refresh tokens),
    // and the renewed token is not due for 2 s more. Both session modes
    // (deploy/nginx/gateway.toml uses `server`).
    for mode in ["cookie", "server"] {
        let sim_cfg = SimConfig {
            access_token_ttl: Duration::from_secs(62),
            ..SimConfig::default()
        };
        let session = format!("mode = \"{mode}\"");
        let s = stack_with(sim_cfg, &session, "refresh_margin_seconds = 60").await;
        // Log in, stopping at the callback: the landing page would refresh.
        let b = Browser::new();
        let hops = b.visit(&s.url("/app/x")).await;
        let posted = b.submit_login(hops.last().expect("form"), USER).await;
        let mut next = posted.location().expect("redirect");
        while !next.starts_with(&s.url("/_sso/callback?")) {
            next = b.get(&next).await.location().expect("redirect");
        }
        assert_eq!(b.get(&next).await.status, 302);
        let first = b.cookie("localhost", "oag_session").expect("session");
        tokio::time::sleep(Duration::from_millis(2100)).await;

        // The next request's forward auth refreshes the tokens. A cookie session
        // answers with its new cookie, which nginx hands on with the page.
        let tokens = s.sim().counters().token;
        let r = b.get(&s.url("/app/x")).await;
        assert_eq!(r.status, 200, "{mode}: {}", r.body);
        assert_eq!(r.upstream_header("x-forwarded-user"), [ALICE_ID]);
        assert_eq!(s.sim().counters().token, tokens + 1, "{mode}: one refresh");
        let set = r.set_cookies();
        let now = b.cookie("localhost", "oag_session").expect("session");
        if mode == "cookie" {
            assert!(
                set.iter().any(|c| c.starts_with("oag_session=")),
                "the refreshed session cookie: {set:?}"
            );
            assert_ne!(now, first);
        } else {
            assert_eq!(now, first, "a server session keeps its id cookie");
        }

        // The browser goes on with the refreshed session.
        let r = b.get(&s.url("/app/y")).await;
        assert_eq!(r.status, 200, "{mode}: {}", r.body);
        assert_eq!(r.upstream_header("x-forwarded-user"), [ALICE_ID]);
        assert_eq!(
            s.sim().counters().token,
            tokens + 1,
            "{mode}: no second refresh"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_returns_to_the_exact_address_asked_for() {
    let s = stack().await;
    for asked in ["/app/x?a=1&b=2", "/app/x?a=b+c", "/app/a%2Fb?x=%26y"] {
        let b = Browser::new();
        let page = b.login(&s.url(asked), USER).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.url, s.url(asked));
    }
}

/// What nginx sends with a config that sets only its own `X-Original-*` headers
/// (the usual `auth_request` recipes) while the client's other headers pass
/// through: the client's `X-Forwarded-Method` / `X-Forwarded-Uri` must not
/// override what the proxy said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_own_headers_win_over_client_passed_ones() {
    let s = stack().await;
    let b = alice(&s).await;
    let cookie = session_cookie(&b);
    let proxy = as_trusted_proxy();
    let cases: [&[(&str, String)]; 2] = [
        // A POST to a read-only route, called a GET by the client.
        &[
            ("x-original-url", s.url("/readonly/x")),
            ("x-original-method", "POST".into()),
            ("x-forwarded-method", "GET".into()),
        ],
        // /admin/x (denied), called /app/x by the client.
        &[
            ("host", "localhost".into()),
            ("x-original-uri", "/admin/x".into()),
            ("x-forwarded-uri", "/app/x".into()),
        ],
    ];
    for headers in cases {
        let mut rb = proxy
            .get(s.gateway_url("/_sso/auth"))
            .header("cookie", &cookie);
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        let r = rb.send().await.expect("auth");
        assert_eq!(r.status(), 403, "{headers:?}");
    }
}

#[test]
fn the_deploy_gateway_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx");
    let text = std::fs::read_to_string(dir.join("gateway.toml")).expect("gateway.toml");
    let env = |k: &str| match k {
        "ONEACCESS_CLIENT_SECRET" => Some("placeholder".to_string()),
        "GATEWAY_COOKIE_KEY" => Some(COOKIE_KEY.to_string()),
        _ => None,
    };
    let cfg = oneaccess_gateway::config::parse(&text, &dir, &env)
        .unwrap_or_else(|e| panic!("deploy/nginx/gateway.toml: {e}"));
    assert!(!cfg.server.trusted_proxies.is_empty());
}
