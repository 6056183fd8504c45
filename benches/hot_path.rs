//! Criterion benches of the hot path (a request with a valid session cookie) in each
//! session mode, and of the login path's most expensive step. Compare figures
//! within one run: these machines are shared.
//!
//! `cargo bench -p oneaccess-gateway --bench hot_path`
//! (the server/Redis case starts `redis-server` on a free loopback port; it is
//! skipped, with a note, when the binary is missing).

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::request::Parts;
use http::{HeaderName, Request};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use oneaccess_gateway::auth::oidc::verify_claims;
use oneaccess_gateway::config::{self, HeaderEncoding, HeaderRule, HeaderSource, Missing, Realm};
use oneaccess_gateway::gateway::{Gateway, NewSession};
use oneaccess_gateway::identity::{header_values, Identity};
use oneaccess_gateway::session::record::RecordFormat;
use oneaccess_gateway::session::{self, now_secs, Sealer, SessionData};
use serde_json::json;

const CONFIG: &str = r#"
[server]
public_url = "https://app.example.com"
[session]
keys = [{ value = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=", dev = true }]
SESSION
[provider]
issuer = "http://127.0.0.1:9/api/v1/oauth2"
client_id = "demo-client"
client_secret = { value = "demo-secret", dev = true }
[[route]]
upstream = "http://127.0.0.1:3000"
protocol = "oidc"
"#;

fn gateway(session_lines: &str) -> Gateway {
    // Memory unless the case names its store: the benches write no file.
    let lines = if session_lines.contains("store") {
        session_lines.to_string()
    } else {
        format!("store = \"memory\"\n{session_lines}")
    };
    let text = CONFIG.replace("SESSION", &lines);
    let cfg = config::parse(&text, Path::new("."), &|_| None).expect("config");
    Gateway::with_http(
        cfg,
        std::sync::Arc::new(oneaccess_gateway::auth::http::Offline),
    )
    .expect("gateway")
}

fn alice() -> Identity {
    Identity {
        sub: "20240001".into(),
        claims: vec![
            ("email".into(), "alice@example.com".into()),
            ("preferred_username".into(), "alice".into()),
            ("name".into(), "Alice Zhang".into()),
        ],
    }
}

/// A typical browser request: a dozen headers, the session among other cookies.
fn request(cookie_name: &str, value: &str) -> Parts {
    Request::builder()
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
            format!("_ga=GA1.2.123456789.1700000000; theme=dark; {cookie_name}={value}; lang=en"),
        )
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-site", "same-origin")
        .header("x-forwarded-user", "spoofed")
        .header("referer", "https://app.example.com/")
        .header("connection", "keep-alive")
        .body(())
        .expect("request")
        .into_parts()
        .0
}

fn hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let now = now_secs();

    // The pieces, alone.
    let g = gateway("");
    let sealer = Sealer::new(&g.config.session.keys);
    let name = g.config.session.cookie_name.clone();
    let data = SessionData {
        identity: alice(),
        issued_at: now,
        issued_ms: 0,
        expires_at: now + 3600,
        realm: Realm::Oidc("demo-client".into()),
        id_token: None,
        id: "k".repeat(43),
        sid: Some("s".repeat(22)),
        ticket_hash: None,
        last_seen: now,
        access_expires: None,
        refresh_token: None,
        access_token: None,
        generation: 0,
        renewed: false,
    };
    let sealed = session::seal(&sealer, &name, &data, RecordFormat::Binary).expect("seal");
    c.bench_function("session/open_cookie", |b| {
        b.iter(|| session::open(&sealer, &name, std::hint::black_box(&sealed), now).expect("open"))
    });
    // The same session as gateways before the binary record sealed it (still opened).
    let sealed_json = session::seal(&sealer, &name, &data, RecordFormat::Json).expect("seal");
    c.bench_function("session/open_cookie (JSON record)", |b| {
        b.iter(|| {
            session::open(&sealer, &name, std::hint::black_box(&sealed_json), now).expect("open")
        })
    });
    let rules = g.config.routes[0].headers.clone();
    let parts = request(&name, &sealed);
    c.bench_function("identity/upstream_header_set (strip + set)", |b| {
        b.iter(|| {
            let strip: Vec<HeaderName> = g.managed.to_strip(parts.headers.keys());
            let set = header_values(&rules, &data.identity).expect("values");
            (strip, set)
        })
    });
    // The header values alone, in each encoding, for a user named 张三: what a
    // route's `encoding` or `header_encoding` adds to the default's cost.
    let zhang = Identity {
        sub: "20240101".into(),
        claims: vec![
            ("email".into(), "zhangsan@example.com".into()),
            ("preferred_username".into(), "zhangsan".into()),
            ("name".into(), "张三".into()),
        ],
    };
    for encoding in HeaderEncoding::ALL {
        let mut named = rules.clone();
        named.push(HeaderRule {
            name: HeaderName::from_static("x-forwarded-name"),
            source: HeaderSource::Claim("name".into()),
            missing: Missing::Omit,
            separator: ",".into(),
            encoding,
        });
        for r in &mut named {
            r.encoding = encoding;
        }
        c.bench_function(
            &format!("identity/header_values ({}, 4 headers)", encoding.as_str()),
            |b| b.iter(|| header_values(&named, std::hint::black_box(&zhang)).expect("values")),
        );
    }
    // A route with `assertion = true` signs one per request.
    let signer = oneaccess_gateway::assertion::Signer::new(None).expect("signer");
    c.bench_function("identity/assertion (ES256 sign)", |b| {
        b.iter(|| {
            signer
                .assert(
                    "https://gw.example",
                    "https://app.example",
                    std::hint::black_box(&data.identity),
                    now,
                )
                .expect("jwt")
        })
    });

    // The front door of every request: size, Host, canonical path, route lookup.
    // A plain path borrows and looks up once; `/Admin` also looks up ignoring
    // case; an encoded path with parameters takes the slow path.
    let door = g.front_door();
    for (label, target) in [
        ("plain", "/app/page?x=1"),
        ("upper case", "/App/Page?x=1"),
        ("encoded, ;params", "/app/%E5%BC%A0;jsessionid=ABC/page?x=1"),
    ] {
        c.bench_function(&format!("front_door/admit ({label})"), |b| {
            b.iter(|| {
                let req = oneaccess_gateway::front_door::Request {
                    target: std::hint::black_box(target.as_bytes()),
                    host: Some("app.example.com"),
                    host_required: true,
                };
                assert!(door.admit(req).is_ok());
            })
        });
    }
    // The strict HTTP/1 read of that typical request's bytes, head to end.
    let wire = wire_request(&parts);
    c.bench_function(
        &format!("front_door/http1 guard ({} byte head)", wire.len()),
        |b| {
            b.iter(|| {
                let mut guard = oneaccess_gateway::front_door::http1::Guard::new();
                assert_eq!(
                    guard.read(std::hint::black_box(&wire)),
                    oneaccess_gateway::front_door::http1::Scan::Pass
                );
            })
        },
    );

    // The whole session step of a request (parse Cookie, open, check), per mode.
    let mut modes: Vec<(&str, Gateway)> = vec![
        ("cookie", gateway("")),
        ("cookie + revocation check", gateway("")),
        ("server/memory", gateway(r#"mode = "server""#)),
    ];
    let redis = redis_server();
    if let Some((_, port)) = &redis {
        let lines = format!(
            "mode = \"server\"\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}/0\""
        );
        // The worker's copy answers (after the first read), and without copies:
        // a Redis round trip per request.
        modes.push(("server/redis", gateway(&lines)));
        modes.push((
            "server/redis, cache_entries = 0",
            gateway(&format!("{lines}\ncache_entries = 0")),
        ));
        let lines = format!("store = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}/0\"");
        modes.push(("cookie + revocation check in redis", gateway(&lines)));
    } else {
        eprintln!("redis-server not found: the Redis cases are skipped");
    }
    for (label, g) in &modes {
        let value = rt
            .block_on(g.sessions().issue(
                NewSession::of(alice()),
                &Realm::Oidc("demo-client".into()),
                now,
            ))
            .expect("session");
        if label.contains("revocation") {
            // Something revoked (another user), so the check really runs.
            rt.block_on(g.store().revoke(
                "rev:sub:someone-else",
                now * 1000,
                Duration::from_secs(3600),
            ))
            .expect("revoke");
        }
        let parts = request(&g.config.session.cookie_name, &value);
        c.bench_function(&format!("session_of_request/{label}"), |b| {
            b.to_async(&rt).iter(|| async {
                g.sessions()
                    .of(std::hint::black_box(&parts), now)
                    .await
                    .expect("store")
                    .expect("session")
            })
        });
    }
    if let Some((mut child, _)) = redis {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A request as a client writes it on the wire.
fn wire_request(parts: &Parts) -> Vec<u8> {
    let mut out = format!("GET {} HTTP/1.1\r\n", parts.uri).into_bytes();
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `redis-server` on a free port, if installed.
fn redis_server() -> Option<(std::process::Child, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let mut child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, port));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn id_token(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = rt
        .block_on(oneaccess_sim::Sim::start(Default::default()))
        .expect("simulator");
    let issuer = sim.issuer();
    let text = CONFIG
        .replace("SESSION", "")
        .replace("http://127.0.0.1:9/api/v1/oauth2", &issuer);
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
                &["demo-client"],
                &issuer,
            )
            .expect("valid")
        })
    });
}

criterion_group!(benches, hot_path, id_token);
criterion_main!(benches);
