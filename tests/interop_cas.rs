//! The gateway against a real CAS server nobody here wrote: `django-mama-cas`
//! (PyPI), unmodified, at OneAccess's CAS paths. CAS 1.0, 2.0 and 3.0 in XML
//! with the user's attributes, `renew` (a ticket from an SSO session is refused
//! where a fresh sign-in was asked for), and single logout.

mod common;

use std::time::Duration;

use common::interop::{mama_cas_login, MamaCas};
use common::*;

const ALICE: (&str, &str) = ("alice", "alice-password");

struct Stack {
    cas: MamaCas,
    _echo: oneaccess_sim::echo::Echo,
    _gw: oneaccess_gateway::proxy::server::RunningGateway,
    port: u16,
}

impl Stack {
    fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }
}

async fn stack() -> Stack {
    let cas = tokio::task::spawn_blocking(MamaCas::start)
        .await
        .expect("join");
    let echo = oneaccess_sim::echo::Echo::start().await.expect("echo");
    let port = free_port();
    let headers = r#"headers = { "X-Forwarded-User" = "sub", "X-Forwarded-Email" = "email", "X-Forwarded-Name" = "first_name" }"#;
    let text = format!(
        r#"{head}

[provider]
issuer = "{base}/api/v1/oauth2"

[[route]]
path = "/cas3"
upstream = "{up}"
protocol = "cas"
cas = {{ version = "3.0", format = "xml" }}
{headers}

[[route]]
path = "/cas2"
upstream = "{up}"
protocol = "cas"
cas = {{ version = "2.0", format = "xml" }}

[[route]]
path = "/cas1"
upstream = "{up}"
protocol = "cas"
cas = {{ version = "1.0" }}

[[route]]
path = "/renew"
upstream = "{up}"
protocol = "cas"
cas = {{ version = "3.0", format = "xml", renew = true }}
"#,
        head = config_head(port),
        base = cas.base_url(),
        up = echo.base_url(),
    );
    let gw = start_gateway(&text).await;
    Stack {
        cas,
        _echo: echo,
        _gw: gw,
        port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_1_2_and_3_in_xml() {
    let s = stack().await;
    let b = Browser::new();
    let first = b.get(&s.url("/cas3/x")).await;
    let page = mama_cas_login(&b, first, ALICE).await;
    assert_eq!(page.status, 200, "{}\n{}", page.body, s.cas.logs());
    assert_eq!(page.url, s.url("/cas3/x"));
    assert_eq!(page.upstream_header("x-forwarded-user"), ["alice"]);
    assert_eq!(
        page.upstream_header("x-forwarded-email"),
        ["alice@example.com"]
    );
    assert_eq!(page.upstream_header("x-forwarded-name"), ["Alice"]);
    // CAS 2.0 and 1.0 routes: the server's SSO session signs in silently, and
    // each validation endpoint names the same user.
    for path in ["/cas2/y", "/cas1/z"] {
        b.remove_cookie("localhost", "oag_session");
        let hops = b.visit(&s.url(path)).await;
        let last = hops.last().expect("page");
        assert_eq!(last.status, 200, "{path}: {}\n{}", last.body, s.cas.logs());
        assert_eq!(
            last.upstream_header("x-forwarded-user"),
            ["alice"],
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_takes_only_a_fresh_sign_in() {
    let s = stack().await;
    let b = Browser::new();
    let first = b.get(&s.url("/cas3/x")).await;
    assert_eq!(mama_cas_login(&b, first, ALICE).await.status, 200);
    // The renew route: not with the SSO session's sign-in.
    let r = b.get(&s.url("/renew/x")).await;
    assert_eq!(r.status, 302);
    let to_cas = r.location().expect("location");
    assert_eq!(query(&to_cas, "renew").as_deref(), Some("true"));
    // A ticket from the SSO session, asked for without renew, is refused by the
    // server when the gateway validates it with renew.
    let service = query(&to_cas, "service").expect("service");
    let sso = format!(
        "{}/api/v1/cas/login?service={}",
        s.cas.base_url(),
        url::form_urlencoded::byte_serialize(service.as_bytes()).collect::<String>()
    );
    let back = b.get(&sso).await;
    let callback = back.location().expect("a ticket");
    let r = b.get(&callback).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("INVALID_TICKET"), "{}", r.body);
    // The server asks for credentials again under renew; then the route opens.
    let first = b.get(&s.url("/renew/x")).await;
    let page = mama_cas_login(&b, first, ALICE).await;
    assert_eq!(page.status, 200, "{}\n{}", page.body, s.cas.logs());
    assert_eq!(page.upstream_header("x-forwarded-user"), ["alice"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_logout_from_the_server_ends_the_session() {
    let s = stack().await;
    let b = Browser::new();
    let first = b.get(&s.url("/cas3/x")).await;
    assert_eq!(mama_cas_login(&b, first, ALICE).await.status, 200);
    assert_eq!(b.get(&s.url("/cas3/y")).await.status, 200);
    // The user signs out at the CAS server: it posts a logoutRequest to the
    // gateway's service URL. The browser still holds its gateway cookie.
    let out = b
        .visit(&format!("{}/api/v1/cas/logout", s.cas.base_url()))
        .await;
    assert!(out.iter().all(|h| h.status < 500));
    let mut ended = false;
    for _ in 0..30 {
        if b.get(&s.url("/cas3/y")).await.status == 302 {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ended,
        "the session outlived single logout\n{}",
        s.cas.logs()
    );
}
