//! Criterion benches of the hot path (a request with a valid session cookie) and of
//! the login path's most expensive step. Compare figures within one run: these
//! machines are shared.
//!
//! `cargo bench -p oneaccess-gateway --bench hot_path`

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderName, Request};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use oneaccess_gateway::auth::oidc::verify_claims;
use oneaccess_gateway::config;
use oneaccess_gateway::gateway::Gateway;
use oneaccess_gateway::identity::{header_values, Identity};
use oneaccess_gateway::session::{self, now_secs, Sealer, SessionData};
use serde_json::json;

const CONFIG: &str = r#"
[server]
public_url = "https://app.example.com"
[session]
keys = [{ value = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=", dev = true }]
[provider]
issuer = "http://127.0.0.1:9/api/v1/oauth2"
client_id = "demo-client"
client_secret = { value = "demo-secret", dev = true }
[[route]]
upstream = "http://127.0.0.1:3000"
protocol = "oidc"
"#;

fn hot_path(c: &mut Criterion) {
    let cfg = config::parse(CONFIG, Path::new("."), &|_| None).expect("config");
    let sealer = Sealer::new(&cfg.session.keys);
    let name = cfg.session.cookie_name.clone();
    let rules = cfg.routes[0].headers.clone();
    let now = now_secs();
    let data = SessionData {
        identity: Identity {
            sub: "20240001".into(),
            claims: vec![
                ("email".into(), "alice@example.com".into()),
                ("preferred_username".into(), "alice".into()),
                ("name".into(), "Alice Zhang".into()),
            ],
        },
        issued_at: now,
        expires_at: now + 3600,
        realm: "oidc:demo-client".into(),
        id_token: None,
    };
    let sealed = session::seal(&sealer, &name, &data).expect("seal");
    let gateway = Gateway::with_http(cfg, None);

    // A typical browser request: a dozen headers, the session among other cookies.
    let parts = Request::builder()
        .uri("/app/page?x=1")
        .header("host", "app.example.com")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
        )
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .header("accept-language", "en-US,en;q=0.9,zh-CN;q=0.8")
        .header("accept-encoding", "gzip, deflate, br")
        .header(
            "cookie",
            format!("_ga=GA1.2.123456789.1700000000; theme=dark; {name}={sealed}; lang=en"),
        )
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-site", "same-origin")
        .header("x-forwarded-user", "spoofed")
        .header("referer", "https://app.example.com/")
        .header("connection", "keep-alive")
        .body(())
        .expect("request")
        .into_parts()
        .0;

    c.bench_function("session/open_cookie", |b| {
        b.iter(|| session::open(&sealer, &name, std::hint::black_box(&sealed), now).expect("open"))
    });
    c.bench_function("gateway/session_of_request (Cookie parse + open)", |b| {
        b.iter(|| {
            gateway
                .session_of(std::hint::black_box(&parts), now)
                .expect("session")
        })
    });
    c.bench_function("identity/upstream_header_set (strip + set)", |b| {
        b.iter(|| {
            let strip: Vec<HeaderName> = gateway.managed.to_strip(parts.headers.keys());
            let set: Vec<_> = header_values(&rules, &data.identity).collect();
            (strip, set)
        })
    });
}

fn id_token(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = rt
        .block_on(oneaccess_sim::Sim::start(Default::default()))
        .expect("simulator");
    let issuer = sim.issuer();
    let text = CONFIG.replace("http://127.0.0.1:9/api/v1/oauth2", &issuer);
    let cfg = config::parse(&text, Path::new("."), &|_| None).expect("config");
    let settings = cfg.provider.expect("provider");
    let now = now_secs();
    let claims = json!({
        "iss": issuer, "aud": "demo-client", "azp": "demo-client", "sub": "20240001",
        "iat": now, "exp": now + 3600, "nonce": "n-0S6_WzA2Mj", "email": "alice@example.com",
        "preferred_username": "alice", "name": "Alice Zhang"
    });
    let token = sim.mint_id_token(claims.as_object().expect("object").clone());
    let jwk: Jwk = serde_json::from_value(sim.jwks_json()["keys"][0].clone()).expect("jwk");
    let key = DecodingKey::from_jwk(&jwk).expect("key");

    c.bench_function("oidc/verify_id_token_cached_key (RS256)", |b| {
        b.iter(|| {
            verify_claims(
                std::hint::black_box(&token),
                &key,
                Algorithm::RS256,
                &settings,
                "demo-client",
                &issuer,
            )
            .expect("valid")
        })
    });
}

criterion_group!(benches, hot_path, id_token);
criterion_main!(benches);
