//! The gateway against a certified OpenID provider nobody here wrote: panva's
//! `oidc-provider` (npm), unmodified, mounted at OneAccess's paths. The code flow
//! with PKCE, claims from userinfo (a conforming provider keeps them out of the
//! ID token), refresh with rotated refresh tokens, a key rotation, RP-initiated
//! logout with its fixed return URL, and back-channel logout.

mod common;

use std::time::Duration;

use common::interop::{form_action, oidc_provider_login, OidcProvider};
use common::*;

const ALICE: &str = "20240001";

struct Stack {
    op: OidcProvider,
    echo: oneaccess_sim::echo::Echo,
    gw: oneaccess_gateway::proxy::server::RunningGateway,
    port: u16,
    text: String,
}

impl Stack {
    fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }
}

/// The gateway in front of the echo app, logged in through oidc-provider.
async fn stack(access_ttl: u64, provider_extra: &str) -> Stack {
    let echo = oneaccess_sim::echo::Echo::start().await.expect("echo");
    let port = free_port();
    let op = tokio::task::spawn_blocking(move || {
        OidcProvider::start(&format!("http://localhost:{port}"), access_ttl, 0)
    })
    .await
    .expect("join");
    let text = format!(
        r#"{head}

[provider]
issuer = "{issuer}"
client_id = "demo-client"
client_secret = {{ value = "demo-secret", dev = true }}
scopes = ["openid", "profile", "email", "offline_access"]
{provider_extra}

[[route]]
path = "/"
upstream = "{up}"
protocol = "oidc"

[[route]]
path = "/token"
upstream = "{up}"
protocol = "oidc"
pass_token = "access"

[[route]]
path = "/public"
upstream = "{up}"
protocol = "public"
"#,
        head = config_head(port),
        issuer = op.issuer(),
        up = echo.base_url(),
    );
    let gw = start_gateway(&text).await;
    Stack {
        op,
        echo,
        gw,
        port,
        text,
    }
}

async fn login(s: &Stack, b: &Browser, path: &str) -> Resp {
    let first = b.get(&s.url(path)).await;
    assert_eq!(first.status, 302, "{}", first.body);
    let page = oidc_provider_login(b, first, ALICE).await;
    assert_eq!(page.status, 200, "{}\n{}", page.body, s.op.logs());
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_flow_with_claims_from_userinfo() {
    let s = stack(3600, "").await;
    let b = Browser::new();
    let page = login(&s, &b, "/x?q=1").await;
    assert_eq!(page.url, s.url("/x?q=1"));
    // The ID token has only `sub`: email and the login name come from userinfo.
    assert_eq!(page.upstream_header("x-forwarded-user"), [ALICE]);
    assert_eq!(
        page.upstream_header("x-forwarded-email"),
        ["alice@example.com"]
    );
    assert_eq!(
        page.upstream_header("x-forwarded-preferred-username"),
        ["alice"]
    );
    // Logged in: more requests ask the provider nothing.
    assert_eq!(b.get(&s.url("/y")).await.status, 200);
    let _ = &s.echo;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_with_rotated_refresh_tokens_passes_fresh_access_tokens() {
    // Access tokens of 62 s, refreshed in their last 60: due 2 s after login.
    let s = stack(62, "refresh_margin_seconds = 60").await;
    let b = Browser::new();
    let first = login(&s, &b, "/token/a").await;
    let token0 = first.upstream_header("authorization").concat();
    assert!(token0.starts_with("Bearer "), "{token0}");
    let mut seen = vec![token0];
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let r = b.get(&s.url("/token/b")).await;
        assert_eq!(r.status, 200, "round {round}: {}\n{}", r.body, s.op.logs());
        let t = r.upstream_header("authorization").concat();
        assert!(
            !seen.contains(&t),
            "round {round}: an old access token went upstream"
        );
        seen.push(t);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_is_picked_up_at_the_next_login() {
    let mut s = stack(3600, "").await;
    let b = Browser::new();
    login(&s, &b, "/x").await;
    // The provider restarts with a new signing key (a new kid).
    let port = s.op.port;
    s.op.stop();
    let gateway = s.url("");
    s.op = tokio::task::spawn_blocking(move || OidcProvider::start(&gateway, 3600, port))
        .await
        .expect("join");
    // The signed-in user is not affected; a new login verifies the new key.
    assert_eq!(b.get(&s.url("/y")).await.status, 200);
    let other = Browser::new();
    login(&s, &other, "/x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp_initiated_logout_ends_the_provider_session_and_returns_to_rd() {
    let s = stack(3600, r#"logout = "end_session""#).await;
    let b = Browser::new();
    login(&s, &b, "/x").await;
    let out = b.log_out(&s.url("/_sso/logout?rd=/public/bye")).await;
    assert_eq!(out.status, 302);
    // The provider takes the registered post-logout URI and asks to confirm.
    let hops = b.follow(out).await;
    let confirm = hops.last().expect("a page");
    assert_eq!(confirm.status, 200, "{}\n{}", confirm.body, s.op.logs());
    assert!(confirm.body.contains("op.logoutForm"), "{}", confirm.body);
    let xsrf = extract_hidden(&confirm.body, "xsrf").expect("xsrf");
    let done = b
        .post_form(
            &form_action(confirm),
            &[("xsrf", xsrf.as_str()), ("logout", "yes")],
        )
        .await;
    let hops = b.follow(done).await;
    let last = hops.last().expect("a page");
    assert_eq!(
        last.url,
        s.url("/public/bye"),
        "{:?}",
        hops.iter().map(|h| &h.url).collect::<Vec<_>>()
    );
    assert_eq!(last.status, 200);
    // The provider's session is over: the next login shows its form again.
    let first = b.get(&s.url("/x")).await;
    let hops = b.follow(first).await;
    assert!(
        hops.last()
            .is_some_and(|h| h.body.contains("name=\"login\"")),
        "a silent login after logout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_from_the_provider_ends_the_session() {
    let s = stack(3600, "").await;
    let b = Browser::new();
    login(&s, &b, "/x").await;
    let copy = Browser::new();
    copy.set_cookie(
        "localhost",
        "oag_session",
        &b.cookie("localhost", "oag_session").expect("session"),
    );
    // The user signs out at the provider itself, not through the gateway: only
    // the provider's back-channel logout can tell the gateway.
    let page = b.get(&format!("{}/logout", s.op.issuer())).await;
    let page = b.follow(page).await.into_iter().last().expect("page");
    let xsrf = extract_hidden(&page.body, "xsrf").expect("xsrf");
    let done = b
        .post_form(
            &form_action(&page),
            &[("xsrf", xsrf.as_str()), ("logout", "yes")],
        )
        .await;
    b.follow(done).await;
    let mut ended = false;
    for _ in 0..20 {
        if copy.get(&s.url("/x")).await.status == 302 {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ended,
        "the session outlived the provider's logout\n{}",
        s.op.logs()
    );
    let _ = (&s.gw, &s.text);
}
