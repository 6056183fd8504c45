//! Identity header encodings end to end: users named 张三 and José Müller log in
//! through the simulator, and the bytes the echo app received in each header
//! decode, by the rule of its encoding, back to the name.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use oneaccess_sim::{SimConfig, User};
use percent_encoding::percent_decode;

const ZHANG: (&str, &str) = ("zhangsan", "zhangsan-password");
const JOSE: (&str, &str) = ("jose", "jose-password");

const ROUTES: &str = r#"
[[route]]
path = "/encoded"
upstream = "{upstream}"
protocol = "oidc"
[route.headers]
X-Name-Utf8 = { claim = "name", encoding = "utf8" }
X-Name-Percent = { claim = "name", encoding = "percent" }
X-Name-Base64 = { claim = "name", encoding = "base64" }
X-Name-Latin1 = { claim = "name", encoding = "latin1" }
X-Name-Mime = { claim = "name", encoding = "mime" }
X-Name-Default = "name"

[[route]]
path = "/servlet"
upstream = "{upstream}"
protocol = "oidc"
header_encoding = "latin1"
[route.headers]
X-User = "preferred_username"
X-Name = "name"
X-Card = { template = "{name} <{email}> 100%" }
X-Name-Utf8 = { claim = "name", encoding = "utf8" }
"#;

fn user(id: &str, login: (&str, &str), name: &str) -> User {
    User {
        id: id.into(),
        user_name: login.0.into(),
        name: name.into(),
        email: format!("{}@example.com", login.0),
        mobile: String::new(),
        password: login.1.into(),
    }
}

async fn env() -> Env {
    let mut users = User::demo_users();
    users.push(user("20240101", ZHANG, "张三"));
    users.push(user("20240102", JOSE, "José Müller"));
    let sim = SimConfig {
        users,
        ..SimConfig::default()
    };
    start_with(sim, "", ROUTES).await
}

/// The one value of `name` the app received, as bytes.
fn received(r: &Resp, name: &str) -> Vec<u8> {
    let mut values = r.upstream_header_bytes(name);
    assert_eq!(values.len(), 1, "{name}: {values:?}");
    values.remove(0)
}

fn percent_decoded(v: &[u8]) -> String {
    percent_decode(v)
        .decode_utf8()
        .expect("UTF-8 once decoded")
        .into_owned()
}

/// As a servlet gets it (each byte the ISO-8859-1 character), then `%XX` decoded
/// as UTF-8.
fn latin1_decoded(v: &[u8]) -> String {
    let as_servlet_reads_it: String = v.iter().map(|b| char::from(*b)).collect();
    percent_decoded(as_servlet_reads_it.as_bytes())
}

/// RFC 2047 §6.2: each `=?UTF-8?B?…?=` word decoded, the spaces between words
/// dropped; a value with no word is plain text.
fn mime_decoded(v: &[u8]) -> String {
    let text = std::str::from_utf8(v).expect("ASCII");
    if !text.starts_with("=?") {
        return text.to_string();
    }
    let mut bytes = Vec::new();
    for word in text.split(' ') {
        let data = word
            .strip_prefix("=?UTF-8?B?")
            .and_then(|w| w.strip_suffix("?="))
            .unwrap_or_else(|| panic!("not an encoded-word: {word}"));
        assert!(word.len() <= 75, "{word}");
        bytes.extend(STANDARD.decode(data).expect("base64"));
    }
    String::from_utf8(bytes).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_encoding_reaches_the_app_and_decodes_to_the_name() {
    let env = env().await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/"), ZHANG).await.status, 200);

    let r = b.get(&env.url("/encoded/x?raw_headers")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let utf8 = received(&r, "x-name-utf8");
    let percent = received(&r, "x-name-percent");
    let base64 = received(&r, "x-name-base64");
    let latin1 = received(&r, "x-name-latin1");
    let mime = received(&r, "x-name-mime");
    // What the README shows for 张三.
    assert_eq!(utf8, "张三".as_bytes());
    assert_eq!(percent, b"%E5%BC%A0%E4%B8%89");
    assert_eq!(base64, b"5byg5LiJ");
    assert_eq!(latin1, b"%E5%BC%A0%E4%B8%89");
    assert_eq!(mime, b"=?UTF-8?B?5byg5LiJ?=");
    // And each decodes back.
    assert_eq!(String::from_utf8(utf8.clone()).expect("UTF-8"), "张三");
    assert_eq!(percent_decoded(&percent), "张三");
    assert_eq!(
        String::from_utf8(STANDARD.decode(&base64).expect("base64")).expect("UTF-8"),
        "张三"
    );
    assert_eq!(latin1_decoded(&latin1), "张三");
    assert_eq!(mime_decoded(&mime), "张三");
    // A rule without an encoding sends today's bytes.
    assert_eq!(received(&r, "x-name-default"), utf8);

    // A route whose rules inherit `header_encoding = "latin1"`: ASCII unchanged,
    // `%` encoded, and a rule of its own kept.
    let r = b.get(&env.url("/servlet/x?raw_headers")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(received(&r, "x-user"), b"zhangsan");
    assert_eq!(received(&r, "x-name"), b"%E5%BC%A0%E4%B8%89");
    let card = received(&r, "x-card");
    assert_eq!(card, b"%E5%BC%A0%E4%B8%89 <zhangsan@example.com> 100%25");
    assert_eq!(latin1_decoded(&card), "张三 <zhangsan@example.com> 100%");
    assert_eq!(received(&r, "x-name-utf8"), "张三".as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latin1_name_reaches_a_servlet_as_its_own_bytes() {
    let env = env().await;
    let b = Browser::new();
    assert_eq!(b.login(&env.url("/"), JOSE).await.status, 200);
    let r = b.get(&env.url("/servlet/x?raw_headers")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // é and ü as the one ISO-8859-1 byte each (obs-text), through the gateway.
    let name = received(&r, "x-name");
    assert_eq!(name, b"Jos\xe9 M\xfcller");
    assert_eq!(latin1_decoded(&name), "José Müller");
    assert_eq!(received(&r, "x-name-utf8"), "José Müller".as_bytes());

    let r = b.get(&env.url("/encoded/x?raw_headers")).await;
    assert_eq!(received(&r, "x-name-percent"), b"Jos%C3%A9%20M%C3%BCller");
    let mime = received(&r, "x-name-mime");
    assert_eq!(mime_decoded(&mime), "José Müller");
    let base64 = received(&r, "x-name-base64");
    assert_eq!(
        String::from_utf8(STANDARD.decode(&base64).expect("base64")).expect("UTF-8"),
        "José Müller"
    );
}
