//! One login → request → logout body, run for every protocol and CAS variant, then
//! each protocol's own unhappy paths: OAuth2 userinfo failures, CAS failure codes,
//! replays, hostile tickets, an XML entity bomb, passive (gateway) login, and
//! logout that a cross-site request cannot trigger silently.

mod common;

use common::*;
use oneaccess_sim::SimConfig;

/// Routes for every protocol beside the standard `/` (oidc) and `/public`.
const ROUTES: &str = r#"
[[route]]
path = "/oauth2"
upstream = "{upstream}"
protocol = "oauth2"

[[route]]
path = "/cas"
upstream = "{upstream}"
protocol = "cas"
headers = { "X-Forwarded-User" = "sub", "X-Forwarded-Email" = "email", "X-Groups" = "memberOf" }

[[route]]
path = "/cas-xml"
upstream = "{upstream}"
protocol = "cas"
cas = { format = "xml" }
headers = { "X-Forwarded-User" = "sub", "X-Forwarded-Email" = "email", "X-Groups" = "memberOf" }

[[route]]
path = "/cas2"
upstream = "{upstream}"
protocol = "cas"
cas = { version = "2.0" }

[[route]]
path = "/cas1"
upstream = "{upstream}"
protocol = "cas"
cas = { version = "1.0" }

[[route]]
path = "/cas-passive"
upstream = "{upstream}"
protocol = "cas"
cas = { gateway = true }

[[route]]
path = "/cas-renew"
upstream = "{upstream}"
protocol = "cas"
cas = { renew = true }
"#;

async fn start_all() -> Env {
    start_with(SimConfig::default(), "", ROUTES).await
}

/// The whole user journey on one protocol's route. `user` is what the app must
/// see in X-Forwarded-User; `idp_logout` the IdP path logout must go through.
async fn full_flow(path: &str, user: &str, idp_logout: &str) -> (Env, Browser) {
    let env = start_all().await;
    let b = Browser::new();
    let page = b.login(&env.url(&format!("{path}/page?q=1")), USER).await;
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    assert_eq!(page.url, env.url(&format!("{path}/page?q=1")), "{path}");
    assert_eq!(page.upstream_header("x-forwarded-user"), [user], "{path}");
    assert_eq!(page.json()["path"], format!("{path}/page"));
    assert!(!page
        .upstream_header("cookie")
        .join(";")
        .contains("oag_session"));

    // Logged in: no IdP call for more requests.
    let before = env.sim.counters();
    for _ in 0..3 {
        let r = b.get(&env.url(&format!("{path}/more"))).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.upstream_header("x-forwarded-user"), [user]);
    }
    assert_eq!(
        before,
        env.sim.counters(),
        "{path}: the IdP was called for a logged-in request"
    );

    // Logout ends the IdP session by this protocol's way.
    let out = b.log_out(&env.url("/_sso/logout")).await;
    assert_eq!(out.status, 302, "{path}");
    let to = out.location().expect("location");
    assert!(
        to.starts_with(&format!("{}{idp_logout}?", env.sim.base_url())),
        "{path}: logout went to {to}"
    );
    assert!(b.cookie("localhost", "oag_session").is_none());
    let hops = b.follow(out).await;
    let last = hops.last().expect("last");
    assert!(
        last.body.contains("login-form"),
        "{path}: after logout the IdP must ask for a login again, got {} {}",
        last.status,
        last.url
    );
    (env, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_login_request_logout() {
    full_flow("/app", ALICE_ID, "/api/v1/logout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_login_request_logout() {
    let (env, _) = full_flow("/oauth2", ALICE_ID, "/api/v1/logout").await;
    // The access token went as a Bearer header, never in the URL.
    let auth = env
        .sim
        .last_userinfo_authorization()
        .expect("userinfo was called");
    assert!(auth.starts_with("Bearer "), "{auth}");
    assert_eq!(env.sim.last_userinfo_query(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas3_json_login_request_logout() {
    let (env, _) = full_flow("/cas", "alice", "/api/v1/cas/logout").await;
    let q = env.sim.last_cas_validate_query().expect("validated");
    assert!(q.contains("format=JSON"), "{q}");
    assert!(
        q.contains(&format!(
            "service={}",
            url::form_urlencoded::byte_serialize(env.url("/_sso/cas/callback").as_bytes())
                .collect::<String>()
        )),
        "{q}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas3_xml_login_with_list_attributes() {
    let (env, b) = full_flow("/cas-xml", "alice", "/api/v1/cas/logout").await;
    assert!(env
        .sim
        .last_cas_validate_query()
        .expect("validated")
        .contains("format=XML"));
    // Attributes arrive, a list joined: log in again and look.
    let page = b.login(&env.url("/cas-xml/x"), USER).await;
    assert_eq!(page.upstream_header("x-groups"), ["staff,dev"]);
    assert_eq!(
        page.upstream_header("x-forwarded-email"),
        ["alice@example.com"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas2_login_request_logout() {
    let (env, _) = full_flow("/cas2", "alice", "/api/v1/cas/logout").await;
    assert!(env.sim.last_cas_validate_query().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas1_login_request_logout() {
    full_flow("/cas1", "alice", "/api/v1/cas/logout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_userinfo_failures_make_no_session() {
    let env = start_all().await;
    let cases: [(&str, u16, &str, u16); 5] = [
        (
            "401",
            401,
            r#"{"error":"unauthorized","error_description":"token expired"}"#,
            502,
        ),
        ("500", 500, r#"{"error":"server_error"}"#, 503),
        ("garbage", 200, "<html>not json", 502),
        ("a JSON list", 200, r#"["id","20240001"]"#, 502),
        (
            "no id",
            200,
            r#"{"userName":"alice","email":"alice@example.com"}"#,
            502,
        ),
    ];
    for (name, status, body, want) in cases {
        let b = Browser::new();
        let cb = b.to_callback(&env, "/oauth2/x").await;
        env.sim
            .set_userinfo_override(Some((status, body.to_string())));
        let r = b.get(&cb).await;
        assert_eq!(r.status, want, "{name}: {}", r.body);
        assert!(
            b.cookie("localhost", "oag_session").is_none(),
            "{name}: a session was made"
        );
        assert!(r.body.contains("Sign-in"), "{name}: not a clear page");
        env.sim.set_userinfo_override(None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_failure_codes_end_in_a_page() {
    let env = start_all().await;
    // A ticket the server never issued.
    let b = Browser::new();
    let cb = b.to_callback(&env, "/cas/x").await;
    let forged = cb.replace(
        &query(&cb, "ticket").expect("ticket"),
        "ST-not-issued-by-anyone",
    );
    let r = b.get(&forged).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("INVALID_TICKET"), "{}", r.body);
    assert!(b.cookie("localhost", "oag_session").is_none());

    // A ticket issued for another service.
    let b = Browser::new();
    let cb = b.to_callback(&env, "/cas/x").await;
    let other = env
        .sim
        .mint_cas_ticket("alice", "http://other.example.com/cas");
    let r = b
        .get(&cb.replace(&query(&cb, "ticket").expect("ticket"), &other))
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("INVALID_SERVICE"), "{}", r.body);

    // CAS 1.0's `no`.
    let b = Browser::new();
    let cb = b.to_callback(&env, "/cas1/x").await;
    env.sim
        .set_cas_validate_override(Some((200, "no\n\n".into())));
    let r = b.get(&cb).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(b.cookie("localhost", "oag_session").is_none());
    env.sim.set_cas_validate_override(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xml_entity_bomb_is_refused_not_expanded() {
    let env = start_all().await;
    // The classic "billion laughs": ten levels, each ten references to the last.
    let mut entities = String::from(r#"<!ENTITY lol0 "lol">"#);
    for i in 1..10 {
        let refs = format!("&lol{};", i - 1).repeat(10);
        entities.push_str(&format!(r#"<!ENTITY lol{i} "{refs}">"#));
    }
    let bomb = format!(
        r#"<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>&lol9;</cas:user></cas:authenticationSuccess></cas:serviceResponse>"#
    );
    let b = Browser::new();
    let cb = b.to_callback(&env, "/cas-xml/x").await;
    env.sim.set_cas_validate_override(Some((200, bomb)));
    let r = b.get(&cb).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(b.cookie("localhost", "oag_session").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_ticket_is_refused() {
    let env = start_all().await;
    let b = Browser::new();
    let cb = b.to_callback(&env, "/cas/x").await;
    let pending = b.cookies("localhost");
    assert_eq!(b.get(&cb).await.status, 302);
    assert!(b.cookie("localhost", "oag_session").is_some());
    let thief = Browser::new();
    for (k, v) in &pending {
        thief.set_cookie("localhost", k, v);
    }
    let validations = env.sim.counters().cas_validate;
    let r = thief.get(&cb).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(thief.cookie("localhost", "oag_session").is_none());
    assert_eq!(
        env.sim.counters().cas_validate,
        validations,
        "a replay reached the CAS server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tickets_are_refused_before_any_call() {
    let env = start_all().await;
    let b = Browser::new();
    let _ = b.to_callback(&env, "/cas/x").await;
    let validations = env.sim.counters().cas_validate;
    for t in [
        "ST-1%26service%3Dhttp%3A%2F%2Fevil.example",
        "ST-1%3Cscript%3E",
        "ST-1%2525",
        "ST-1%0D%0ASet-Cookie%3A%20x%3D1",
        &"A".repeat(300),
    ] {
        let r = b
            .get(&env.url(&format!("/_sso/cas/callback?ticket={t}")))
            .await;
        assert_eq!(r.status, 400, "{t}: {}", r.body);
    }
    assert_eq!(env.sim.counters().cas_validate, validations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cas_service_comes_from_config_not_the_host_header() {
    let env = start_all().await;
    let b = Browser::new();
    let r = b
        .get_with(
            &env.url("/cas/x"),
            &[
                ("x-forwarded-host", "evil.example"),
                ("x-original-url", "http://evil.example/"),
            ],
        )
        .await;
    assert_eq!(r.status, 302);
    let service = query(&r.location().expect("location"), "service").expect("service");
    assert_eq!(service, env.url("/_sso/cas/callback"));
    // Even with a Host header naming another site (any-host route).
    let req = "GET /cas/x HTTP/1.1\r\nHost: evil.example\r\nAccept: text/html\r\nConnection: close\r\n\r\n";
    let raw = raw_response(env.port, req).await;
    let loc = raw
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .expect("location")
        .to_string();
    assert_eq!(query(&loc, "service"), Some(env.url("/_sso/cas/callback")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_cas_login_without_sso_serves_anonymously_without_looping() {
    let env = start_all().await;
    let b = Browser::new();
    let first = b.get(&env.url("/cas-passive/page")).await;
    assert_eq!(first.status, 302);
    assert_eq!(
        query(&first.location().expect("location"), "gateway").as_deref(),
        Some("true")
    );
    let hops = b.follow(first).await;
    let last = hops.last().expect("last");
    assert_eq!(last.status, 200, "{}", last.body);
    assert_eq!(last.url, env.url("/cas-passive/page"));
    assert!(last.upstream_header("x-forwarded-user").is_empty());
    assert!(
        hops.len() <= 4,
        "looped: {:?}",
        hops.iter().map(|h| &h.url).collect::<Vec<_>>()
    );
    // The next visit does not go round again.
    assert_eq!(b.get(&env.url("/cas-passive/other")).await.status, 200);
    // With an SSO session the passive login does log the user in.
    let b2 = Browser::new();
    assert_eq!(b2.login(&env.url("/cas/x"), USER).await.status, 200);
    b2.remove_cookie("localhost", "oag_session");
    let page = b2.visit(&env.url("/cas-passive/page")).await;
    assert_eq!(
        page.last()
            .expect("page")
            .upstream_header("x-forwarded-user"),
        ["alice"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_asks_for_a_fresh_login() {
    let env = start_all().await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/cas/x"), USER).await.status, 200);
    b.remove_cookie("localhost", "oag_session");
    let r = b.get(&env.url("/cas-renew/x")).await;
    assert_eq!(
        query(&r.location().expect("location"), "renew").as_deref(),
        Some("true")
    );
    // Despite the SSO session, the IdP shows its form again.
    let hops = b.follow(r).await;
    assert!(hops.last().expect("last").body.contains("login-form"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renew_route_takes_only_a_fresh_sign_in() {
    let env = start_all().await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/cas/x"), USER).await.status, 200);
    // A session from an SSO sign-in does not open the renew route: a fresh
    // sign-in is asked for.
    let r = b.get(&env.url("/cas-renew/x")).await;
    assert_eq!(r.status, 302, "the renew route took an SSO session");
    let to_cas = r.location().expect("location");
    assert_eq!(query(&to_cas, "renew").as_deref(), Some("true"));
    // Skip the form: a ticket from the SSO session, asked for without renew,
    // comes back to the gateway's service URL. The validation (with renew)
    // refuses it.
    let service = query(&to_cas, "service").expect("service");
    let sso_ticket_url = format!(
        "{}/api/v1/cas/login?service={}",
        env.sim.base_url(),
        url::form_urlencoded::byte_serialize(service.as_bytes()).collect::<String>()
    );
    let back = b.get(&sso_ticket_url).await;
    let callback = back.location().expect("a ticket for the service");
    assert!(callback.contains("ticket="), "{callback}");
    let r = b.get(&callback).await;
    assert_eq!(
        r.status, 403,
        "a ticket from an SSO session passed: {}",
        r.body
    );
    assert!(r.body.contains("INVALID_TICKET"), "{}", r.body);
    // The fresh sign-in passes, and then opens the renew route.
    let page = b.login(&env.url("/cas-renew/x"), USER).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-forwarded-user"), ["alice"]);
    assert_eq!(b.get(&env.url("/cas-renew/y")).await.status, 200);
    // And the other CAS routes still take it.
    assert_eq!(b.get(&env.url("/cas/y")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_one_protocol_is_not_accepted_by_another() {
    let env = start_all().await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/cas/x"), USER).await.status, 200);
    // The CAS user name must never reach an OIDC app as its user id: the OIDC
    // route logs in by OIDC (silently, the IdP session is there).
    let hops = b.visit(&env.url("/app")).await;
    assert!(
        hops[0].status == 302
            && hops[0]
                .location()
                .expect("loc")
                .contains("/oauth2/authorize")
    );
    let last = hops.last().expect("last");
    assert_eq!(last.upstream_header("x-forwarded-user"), [ALICE_ID]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_logout_needs_confirmation() {
    let env = start_all().await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/app"), USER).await.status, 200);
    // Another site links or embeds the logout URL.
    let r = b
        .get_with(
            &env.url("/_sso/logout"),
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("logout-form"));
    assert!(
        b.cookie("localhost", "oag_session").is_some(),
        "logged out by a cross-site GET"
    );
    assert_eq!(env.sim.counters().logout, 0);
    assert_eq!(b.get(&env.url("/app")).await.status, 200);
    // The user confirms: the form POSTs with its token.
    let action = r
        .body
        .split("action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("action");
    let action = action.replace("&amp;", "&");
    let posted = b
        .request(
            reqwest::Method::POST,
            &env.url(&action),
            &[("sec-fetch-site", "same-origin")],
            None,
        )
        .await;
    assert_eq!(posted.status, 302);
    assert!(b.cookie("localhost", "oag_session").is_none());
    assert!(posted.location().expect("loc").contains("/api/v1/logout?"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_session_logout_sends_the_id_token_hint() {
    let env = start_with(SimConfig::default(), r#"logout = "end_session""#, "").await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/x"), USER).await.status, 200);
    let cookie = b.cookie("localhost", "oag_session").expect("session");
    assert!(
        cookie.len() + "oag_session=".len() < 4096,
        "the session with its ID token is {} bytes: over the browser limit",
        cookie.len()
    );
    let out = b.log_out(&env.url("/_sso/logout?rd=/bye")).await;
    let to = out.location().expect("location");
    let end_session = format!("{}/api/v1/logout?", env.sim.base_url());
    assert!(to.starts_with(&end_session), "{to}");
    // One fixed return URL, the one registered at the provider; `rd` rides in
    // the state.
    assert_eq!(
        query(&to, "post_logout_redirect_uri"),
        Some(env.url("/_sso/logged-out"))
    );
    assert_eq!(query(&to, "client_id").as_deref(), Some("demo-client"));
    assert!(query(&to, "state").is_some_and(|s| s.len() >= 16));
    // The hint is the ID token the user logged in with: its `sub` is theirs.
    let hint = query(&to, "id_token_hint").expect("id_token_hint");
    let payload = hint.split('.').nth(1).expect("a JWT");
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64"),
    )
    .expect("json");
    assert_eq!(claims["sub"], ALICE_ID);
    assert!(b.cookie("localhost", "oag_session").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_session_logout_ends_the_provider_session_and_comes_back_to_rd() {
    let env = start_with(SimConfig::default(), r#"logout = "end_session""#, "").await;
    env.sim
        .register_post_logout_redirect_uri(&env.url("/_sso/logged-out"));
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/x"), USER).await.status, 200);
    let out = b.log_out(&env.url("/_sso/logout?rd=/public/bye?a=1")).await;
    let hops = b.follow(out).await;
    let statuses: Vec<u16> = hops.iter().map(|h| h.status).collect();
    // The provider took the registered URI, and the gateway went on to `rd`.
    assert!(
        hops.iter()
            .any(|h| h.url.starts_with(&env.url("/_sso/logged-out?state="))),
        "{statuses:?}"
    );
    assert_eq!(
        hops.last().map(|h| h.url.as_str()),
        Some(env.url("/public/bye?a=1").as_str())
    );
    // The provider's session is over: the next visit shows its login form.
    let hops = b.visit(&env.url("/x")).await;
    assert!(
        hops.last().is_some_and(|h| h.body.contains("login-form")),
        "a silent login after logout"
    );
    // A state nobody sealed goes to the configured page, never elsewhere.
    let r = b
        .get(&env.url("/_sso/logged-out?state=https%3A%2F%2Fevil.example"))
        .await;
    assert_eq!(r.location(), Some(env.url("/")));
}
