//! Configuration files, good and bad: every problem listed with its TOML path.

use std::path::Path;

use super::*;

const KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="; // 32 bytes

fn env(k: &str) -> Option<String> {
    match k {
        "SECRET" => Some("s3cret".into()),
        "KEY" => Some(KEY.into()),
        _ => None,
    }
}

fn parse_ok(text: &str) -> Config {
    match parse(text, Path::new("."), &env) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn problems(text: &str) -> Vec<String> {
    match parse(text, Path::new("."), &env) {
        Ok(_) => panic!("expected problems"),
        Err(e) => e.0.iter().map(|p| p.to_string()).collect(),
    }
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "https://gw.example.com"

[session]
keys = [{ env = "KEY" }]

[provider]
domain = "tenant.example.com"
client_id = "app"
client_secret = { env = "SECRET" }

[[route]]
path = "/"
upstream = "http://127.0.0.1:3000"
protocol = "oidc"

[[route]]
host = "Static.Example.com"
path = "/assets"
upstream = "http://127.0.0.1:3001"
protocol = "public"
headers = { "X-User" = "sub" }
"#;

#[test]
fn a_good_file_gives_ready_values() {
    let c = parse_ok(GOOD);
    let p = c.provider.as_ref().expect("provider");
    assert_eq!(p.issuer, "https://tenant.example.com/api/v1/oauth2");
    assert_eq!(p.logout_url, "https://tenant.example.com/api/v1/logout");
    let client = p.client.as_ref().expect("client");
    assert_eq!(client.client_secret.expose(), "s3cret");
    assert_eq!(client.token_auth, TokenAuth::ClientSecretPost);
    assert_eq!(p.base_url, "https://tenant.example.com");
    assert_eq!(p.logout, LogoutMode::Global);
    assert_eq!(p.oauth2_scopes, ["get_user_info"]);
    assert_eq!(c.routes[0].realm, "oidc:app");
    assert_eq!(c.routes[1].realm, "public");
    assert!(c.routes[1].client().is_none());
    assert!(c.server.tls);
    assert_eq!(c.session.cookie_name, "__Host-oag_session");
    assert_eq!(c.session.keys.len(), 1);
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.routes[0].headers.len(), 3);
    assert_eq!(c.routes[1].host.as_deref(), Some("static.example.com"));
    assert_eq!(c.routes[1].origin, "https://static.example.com");
    assert_eq!(c.routes[1].headers[0].name.as_str(), "x-user");
    assert_eq!(c.server.paths.callback, "/_sso/callback");
}

#[test]
fn plain_http_public_url_means_no_secure_prefix() {
    let text = GOOD.replace("https://gw.example.com", "http://localhost:8080");
    let c = parse_ok(&text);
    assert!(!c.session.secure);
    assert_eq!(c.session.cookie_name, "oag_session");
    assert_eq!(c.routes[0].origin, "http://localhost:8080");
    assert_eq!(c.routes[1].origin, "http://static.example.com:8080");
}

#[test]
fn every_problem_is_listed_with_its_path() {
    let text = r#"
[server]
listen = "nowhere"
public_url = "ftp://x"
threads = 0

[session]
keys = [{ value = "abc" }, { env = "MISSING" }, { env = "SECRET" }]

[provider]
issuer = "http://idp.example.com/api/v1/oauth2"
client_secret = { value = "x", dev = true }
token_endpoint_auth = "private_key_jwt"
id_token_algorithms = ["none", "HS256"]

[[route]]
path = "app"
upstream = "http://127.0.0.1:3000/base"
protocol = "saml"

[[route]]
upstream = "http://127.0.0.1:3000"
protocol = "oidc"
colour = "blue"
headers = { "Host" = "sub", "X-Ok" = "" }

[bogus]
"#;
    let got = problems(text);
    let joined = got.join("\n");
    for want in [
        "server.listen:",
        "server.public_url:",
        "server.threads:",
        "session.keys[0].value:",
        "session.keys[1].env:",
        "session.keys[2]: must be 32 bytes",
        "provider.issuer: must be https",
        "provider.client_id: is required",
        "provider.token_endpoint_auth:",
        "provider.id_token_algorithms[0]:",
        "provider.id_token_algorithms[1]:",
        "route[0].path:",
        "route[0].upstream:",
        "route[0].protocol:",
        "route[1]: unknown field `colour`",
        "bogus: unknown section",
    ] {
        assert!(
            got.iter().any(|p| p.starts_with(want)),
            "missing `{want}` in:\n{joined}"
        );
    }
}

#[test]
fn header_rules_are_checked_in_a_valid_route() {
    let text = GOOD.replace(
        r#"headers = { "X-User" = "sub" }"#,
        r#"headers = { "Host" = "sub", "X-Ok" = " ", "Bad Name" = "sub" }"#,
    );
    let got = problems(&text).join("\n");
    assert!(
        got.contains("route[1].headers.Host: this header cannot carry identity"),
        "{got}"
    );
    assert!(
        got.contains("route[1].headers.X-Ok: needs a claim name"),
        "{got}"
    );
    assert!(
        got.contains("route[1].headers.Bad Name: is not a valid header name"),
        "{got}"
    );
}

#[test]
fn a_toml_syntax_error_names_its_line() {
    let got = problems("[server]\nlisten = \n");
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with("line 2: not valid TOML"), "{got:?}");
}

#[test]
fn inline_secret_needs_dev_flag() {
    let text = GOOD.replace(
        r#"client_secret = { env = "SECRET" }"#,
        r#"client_secret = { value = "plain" }"#,
    );
    let got = problems(&text).join("\n");
    assert!(
        got.contains(
            "provider.client_secret.value: a secret written in the TOML needs `dev = true`"
        ),
        "{got}"
    );
    let text = GOOD.replace(
        r#"client_secret = { env = "SECRET" }"#,
        r#"client_secret = { value = "plain", dev = true }"#,
    );
    assert_eq!(
        parse_ok(&text)
            .provider
            .and_then(|p| p.client)
            .expect("client")
            .client_secret
            .expose(),
        "plain"
    );
}

#[test]
fn secret_files_are_read_relative_to_the_config() {
    let dir = std::env::temp_dir().join(format!("oag-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("client.secret"), "from-file\n").expect("write");
    let text = GOOD.replace(
        r#"client_secret = { env = "SECRET" }"#,
        r#"client_secret = { file = "client.secret" }"#,
    );
    let c = parse(&text, &dir, &env).expect("valid");
    assert_eq!(
        c.provider
            .and_then(|p| p.client)
            .expect("client")
            .client_secret
            .expose(),
        "from-file"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn protected_routes_need_a_provider_and_routes_are_required() {
    let text = r#"
[session]
keys = [{ env = "KEY" }]
[[route]]
upstream = "http://127.0.0.1:3000"
protocol = "oidc"
"#;
    let got = problems(text).join("\n");
    assert!(
        got.contains("provider: a [provider] section is needed"),
        "{got}"
    );
    let got = problems("[session]\nkeys = [{ env = \"KEY\" }]\n").join("\n");
    assert!(
        got.contains("route: at least one [[route]] is needed"),
        "{got}"
    );
}

#[test]
fn duplicate_routes_and_reserved_paths_are_rejected() {
    let text = format!(
        "{GOOD}\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:3000\"\nprotocol = \"public\"\n[[route]]\npath = \"/_sso/x\"\nupstream = \"http://127.0.0.1:3000\"\nprotocol = \"public\"\n"
    );
    let got = problems(&text).join("\n");
    assert!(
        got.contains("route[2].path: another route already has this host and path"),
        "{got}"
    );
    assert!(
        got.contains("route[3].path: overlaps the gateway's own `/_sso`"),
        "{got}"
    );
}

#[test]
fn debug_output_never_shows_secrets() {
    let c = parse_ok(GOOD);
    let dump = format!("{c:?}");
    assert!(!dump.contains("s3cret"));
    assert!(dump.contains("[redacted]"));
}

#[test]
fn routes_of_every_protocol_with_their_options() {
    let text = format!(
        r#"{GOOD}
[[route]]
path = "/reports"
upstream = "http://127.0.0.1:3002"
protocol = "oauth2"
client_id = "reports-app"
client_secret = {{ env = "SECRET" }}
token_endpoint_auth = "client_secret_basic"

[[route]]
path = "/legacy"
upstream = "http://127.0.0.1:3003"
protocol = "cas"
cas = {{ version = "2.0", format = "xml", gateway = true }}
"#
    );
    let c = parse_ok(&text);
    let oauth2 = &c.routes[2];
    assert_eq!(oauth2.protocol(), Protocol::OAuth2);
    assert_eq!(oauth2.realm, "oauth2:reports-app");
    let client = oauth2.client().expect("own client");
    assert_eq!(client.client_id, "reports-app");
    assert_eq!(client.token_auth, TokenAuth::ClientSecretBasic);
    let cas = &c.routes[3];
    assert_eq!(cas.realm, "cas");
    assert!(cas.client().is_none());
    assert_eq!(
        cas.cas(),
        Some(CasSettings {
            version: CasVersion::V2,
            format: CasFormat::Xml,
            renew: false,
            gateway: true
        })
    );
    assert_eq!(c.server.paths.cas_callback, "/_sso/cas/callback");
}

#[test]
fn protocol_options_are_checked() {
    let text = format!(
        r#"{GOOD}
[[route]]
path = "/a"
upstream = "http://127.0.0.1:3002"
protocol = "cas"
cas = {{ version = "4.0", format = "yaml", renew = true, gateway = true }}

[[route]]
path = "/b"
upstream = "http://127.0.0.1:3002"
protocol = "public"
cas = {{ version = "3.0" }}
client_id = "x"
client_secret = {{ env = "SECRET" }}

[[route]]
path = "/c"
upstream = "http://127.0.0.1:3002"
protocol = "oauth2"
client_id = "half"
"#
    );
    let text = text.replace(
        "[provider]",
        "[provider]\nuserinfo_claims = { userName = \"preferred_username\" }\nlogout = \"sometimes\"",
    );
    let got = problems(&text).join("\n");
    for want in [
        "route[2].cas.version: `4.0` is not 1.0, 2.0 or 3.0",
        "route[2].cas.format: `yaml` is not json or xml",
        "route[2].cas: renew and gateway cannot both be set",
        "route[3].cas: only cas routes take cas options",
        "route[3].client_id: only oidc and oauth2 routes use a client",
        "route[4].client_secret: is required with client_id",
        "provider.userinfo_claims: exactly one userinfo field must map to `sub`",
        "provider.logout: `sometimes` is not `global` or `end_session`",
    ] {
        assert!(got.contains(want), "missing `{want}` in:\n{got}");
    }
}

#[test]
fn a_cas_only_gateway_needs_no_client() {
    let text = r#"
[session]
keys = [{ env = "KEY" }]
[provider]
domain = "tenant.example.com"
[[route]]
upstream = "http://127.0.0.1:3000"
protocol = "cas"
"#;
    let c = parse_ok(text);
    assert!(c.provider.expect("provider").client.is_none());
    let oidc_without_client = text.replace("protocol = \"cas\"", "protocol = \"oidc\"");
    let got = problems(&oidc_without_client).join("\n");
    assert!(
        got.contains("route[0].client_id: an oidc or oauth2 route needs a client"),
        "{got}"
    );
}

#[test]
fn identity_mapping_tokens_and_windows_are_checked_with_paths() {
    let text = format!(
        "{GOOD}{}",
        r#"
[[route]]
path = "/mapped"
upstream = "http://127.0.0.1:3000"
protocol = "oauth2"
pass_token = "id"
bearer_tokens = true
[route.headers]
X-A = { claim = "a", value = "b" }
X-B = { template = "{a" }
X-C = { template = "no claims" }
X-D = { claim = "a", missing = "maybe" }
X-E = { value = "line\nbreak" }
X-F = { claim = "a", colour = "red" }
X-G = 42
X-H = { claim = "a", separator = "\u0000" }
[route.policy]
time_zone = "Mars/Olympus"
windows = [{ days = ["mon-fri", "someday"], from = "25:00", to = "18:00" }, { from = "09:00", to = "09:00" }, { to = "10:00" }]

[[route]]
path = "/pub"
upstream = "http://127.0.0.1:3000"
protocol = "public"
pass_token = "access"
assertion = true
bearer_audiences = ["x"]
"#
    );
    let got = problems(&text);
    let joined = got.join("\n");
    for want in [
        "route[2].pass_token: an oauth2 login has no ID token",
        "route[2].bearer_tokens: bearer JWTs are verified",
        "route[2].headers.X-A: needs exactly one of claim, value, template",
        "route[2].headers.X-B.template: `{a` is not closed",
        "route[2].headers.X-C.template: uses no claim",
        "route[2].headers.X-D.missing: `maybe` is not omit or reject",
        "route[2].headers.X-E.value: contains control characters",
        "route[2].headers.X-F.colour: unknown key",
        "route[2].headers.X-G: must be a claim name or a table",
        "route[2].headers.X-H.separator: contains control characters",
        "route[2].policy.time_zone: `Mars/Olympus` is not a time zone",
        "route[2].policy.windows[0].days[1]: `someday` is not a day",
        "route[2].policy.windows[0].from: must be a time of day",
        "route[2].policy.windows[1].to: the window is empty",
        "route[2].policy.windows[2].from: is required",
        "route[3].pass_token: only oidc and oauth2 routes have tokens",
        "route[3].assertion: a public route has no user",
        "route[3].bearer_audiences: is only used with bearer_tokens",
    ] {
        assert!(
            got.iter().any(|p| p.starts_with(want)),
            "missing `{want}` in:\n{joined}"
        );
    }
}

#[test]
fn a_minimal_session_keeps_no_tokens_to_pass_and_keys_must_be_p256() {
    let text = GOOD
        .replace(
            "keys = [{ env = \"KEY\" }]",
            "keys = [{ env = \"KEY\" }]\nminimal = true",
        )
        .replace(
            "public_url = \"https://gw.example.com\"",
            "public_url = \"https://gw.example.com\"\nassertion_key = { value = \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\", dev = true }",
        )
        .replace("protocol = \"oidc\"", "protocol = \"oidc\"\npass_token = \"access\"");
    let got = problems(&text).join("\n");
    assert!(
        got.contains("route[0].pass_token: session.minimal keeps no tokens"),
        "{got}"
    );
    assert!(got.contains("server.assertion_key: must be a PEM"), "{got}");
}

#[test]
fn mapping_kinds_and_windows_parse_into_ready_values() {
    let text = GOOD.replace(
        r#"protocol = "oidc""#,
        r#"protocol = "oidc"
pass_token = "id"
assertion = true
bearer_tokens = true
headers = { "X-Login" = { template = "{userName}@corp", missing = "reject" }, "X-Groups" = { claim = "groups", separator = ";" } }
policy = { time_zone = "Asia/Shanghai", windows = [{ days = ["fri"], from = "22:00", to = "06:00" }] }"#,
    );
    let c = parse_ok(&text);
    let r = &c.routes[0];
    assert_eq!(r.pass_token, Some(PassToken::Id));
    assert!(r.assertion);
    assert_eq!(r.bearer_audiences, ["app"]);
    let login = r
        .headers
        .iter()
        .find(|h| h.name == "x-login")
        .expect("x-login");
    assert_eq!(login.missing, Missing::Reject);
    assert_eq!(login.claims_used().collect::<Vec<_>>(), ["userName"]);
    let groups = r
        .headers
        .iter()
        .find(|h| h.name == "x-groups")
        .expect("x-groups");
    assert_eq!(groups.separator, ";");
    let s = r
        .policy
        .as_ref()
        .and_then(|p| p.schedule.as_ref())
        .expect("schedule");
    assert_eq!(s.zone, chrono_tz::Asia::Shanghai);
    assert_eq!((s.windows[0].from, s.windows[0].to), (22 * 60, 6 * 60));
}

#[test]
fn route_and_policy_paths_must_be_canonical_and_distinct_ignoring_case() {
    let route = |path: &str, extra: &str| {
        format!("[[route]]\npath = \"{path}\"\nupstream = \"http://127.0.0.1:3000\"\nprotocol = \"public\"\n{extra}\n")
    };
    let mut text = GOOD.to_string();
    for p in ["/a;b", "/a//b", "/a/./b", "/%61", "/a\\\\b", "/a?b"] {
        text.push_str(&route(p, ""));
    }
    text.push_str(&route("/ASSETS", "host = \"static.example.com\""));
    text.push_str(&route("/p", "path_params = \"strip\""));
    text.push_str(
        "[[route]]\npath = \"/q\"\nupstream = \"http://127.0.0.1:3000\"\nprotocol = \"oidc\"\npolicy = { paths = [\"/q/a;b\", \"/q/ok\"] }\n",
    );
    let got = problems(&text).join("\n");
    for i in 2..=7 {
        assert!(
            got.contains(&format!("route[{i}].path: must be a canonical path")),
            "route[{i}] in:\n{got}"
        );
    }
    for want in [
        "route[8].path: another route already has this host and path (paths are compared ignoring case)",
        "route[9].path_params: `strip` is not allow or refuse",
        "route[10].policy.paths[0]: must be a canonical path",
    ] {
        assert!(got.contains(want), "missing `{want}` in:\n{got}");
    }
    assert!(!got.contains("paths[1]"), "{got}");
    let c = parse_ok(&format!(
        "{GOOD}{}",
        route("/p", "path_params = \"refuse\"")
    ));
    assert_eq!(c.routes[2].path_params, PathParams::Refuse);
    assert_eq!(c.routes[0].path_params, PathParams::Allow);
}

#[test]
fn cas_slo_networks_are_one_list_for_every_cas_route() {
    let cas = |path: &str, nets: Option<&str>| {
        let opts = nets.map_or(String::new(), |n| {
            format!("cas = {{ slo_networks = [{n}] }}")
        });
        format!("[[route]]\npath = \"{path}\"\nupstream = \"http://127.0.0.1:3000\"\nprotocol = \"cas\"\n{opts}\n")
    };
    let c = parse_ok(&format!(
        "{GOOD}{}{}",
        cas("/a", Some("\"10.0.0.0/8\", \"192.0.2.7\"")),
        cas("/b", Some("\"10.0.0.0/8\", \"192.0.2.7\""))
    ));
    let nets = c.cas_slo_networks.expect("networks");
    assert_eq!(nets.len(), 2);
    assert!(nets[1].contains(&"192.0.2.7".parse::<std::net::IpAddr>().expect("ip")));
    assert!(parse_ok(&format!("{GOOD}{}", cas("/a", None)))
        .cas_slo_networks
        .is_none());
    let got = problems(&format!(
        "{GOOD}{}{}{}",
        cas("/a", Some("\"10.0.0.0/8\"")),
        cas("/b", Some("\"10.0.0.0/9\", \"nonsense\"")),
        cas("/c", None)
    ))
    .join("\n");
    for want in [
        "route[3].cas.slo_networks[1]: `nonsense` is not an address or CIDR range",
        "route[3].cas.slo_networks: differs from route[2].cas.slo_networks",
        "route[4].cas.slo_networks: is needed, as route[2] limits single logout to its networks",
    ] {
        assert!(got.contains(want), "missing `{want}` in:\n{got}");
    }
}

#[test]
fn the_embedded_store_is_the_default_and_finds_its_directory() {
    let dir = |c: &Config| match &c.session.store {
        StoreSettings::Embedded { dir } => dir.clone(),
        other => panic!("not embedded: {other:?}"),
    };
    assert_eq!(dir(&parse_ok(GOOD)), std::path::PathBuf::from("state"));
    let systemd = |k: &str| match k {
        "STATE_DIRECTORY" => Some("/var/lib/oneaccess-gateway:/var/lib/other".to_string()),
        other => env(other),
    };
    let c = parse(GOOD, Path::new("."), &systemd).expect("config");
    assert_eq!(
        dir(&c),
        std::path::PathBuf::from("/var/lib/oneaccess-gateway")
    );
    let given = GOOD.replace("[session]\n", "[session]\nstate_dir = \"data\"\n");
    let c = parse(&given, Path::new("/etc/gw"), &systemd).expect("config");
    assert_eq!(dir(&c), std::path::PathBuf::from("/etc/gw/data"));
    let memory = GOOD.replace("[session]\n", "[session]\nstore = \"memory\"\n");
    assert!(matches!(
        parse_ok(&memory).session.store,
        StoreSettings::Memory
    ));
    let got = problems(&GOOD.replace("[session]\n", "[session]\nstore = \"disk\"\n")).join("\n");
    assert!(
        got.contains("session.store: `disk` is not `embedded`, `memory` or `redis`"),
        "{got}"
    );
}

#[test]
fn session_records_are_binary_unless_json_is_asked_for() {
    use crate::session::record::RecordFormat;
    let with = |v: &str| GOOD.replace("[session]\n", &format!("[session]\nrecord_format = {v}\n"));
    assert_eq!(parse_ok(GOOD).session.record_format, RecordFormat::Binary);
    assert_eq!(
        parse_ok(&with("\"binary\"")).session.record_format,
        RecordFormat::Binary
    );
    assert_eq!(
        parse_ok(&with("\"json\"")).session.record_format,
        RecordFormat::Json
    );
    let got = problems(&with("\"cbor\"")).join("\n");
    assert!(
        got.contains("session.record_format: `cbor` is not `binary` or `json`"),
        "{got}"
    );
}

#[test]
fn workers_keep_copies_of_server_sessions_unless_told_not_to() {
    let with = |lines: &str| GOOD.replace("[session]\n", &format!("[session]\n{lines}\n"));
    let server = |lines: &str| with(&format!("mode = \"server\"\n{lines}"));
    assert_eq!(parse_ok(&server("")).session.cache_entries, 1024);
    assert_eq!(
        parse_ok(&server("cache_entries = 0")).session.cache_entries,
        0
    );
    assert_eq!(
        parse_ok(&server("cache_entries = 50000"))
            .session
            .cache_entries,
        50000
    );
    // Every problem, with its path: too many, and a cookie-mode gateway (it
    // reads each session from its cookie; the setting would do nothing).
    let got = problems(&server("cache_entries = 1000001")).join("\n");
    assert!(
        got.contains("session.cache_entries: must be between 0 and 1000000"),
        "{got}"
    );
    let got = problems(&with("cache_entries = 10")).join("\n");
    assert!(
        got.contains("session.cache_entries: is for mode = \"server\" only"),
        "{got}"
    );
}

#[test]
fn the_event_receiver_is_checked_with_every_problem_listed() {
    let with = |events: &str| GOOD.replacen("[[route]]", &format!("{events}\n\n[[route]]"), 1);
    // Off unless asked for; the login names have their defaults.
    let p = parse_ok(GOOD).provider.expect("provider");
    assert!(p.events.is_none());
    assert_eq!(p.login_name_claims, LoginNameClaims::default());

    let c = parse_ok(&with(
        "[provider.events]\ntoken = { env = \"SECRET\" }\nsignature_key = { value = \"0123456789abcdef\", dev = true }\nencryption = { iv_bytes = 16, iv_at = \"end\" }\non_delete = \"ignore\"\n\n[provider.login_name_claims]\noauth2 = \"userName\"",
    ));
    let p = c.provider.expect("provider");
    let e = p.events.expect("events");
    assert_eq!(e.path, "/_sso/oneaccess/events");
    assert_eq!((e.iv_bytes, e.iv_at), (16, IvAt::End));
    assert_eq!(
        (e.on_disable, e.on_delete),
        (EventAction::Revoke, EventAction::Ignore)
    );
    assert!(e.encryption_key.is_none() && e.signature_key.is_some());
    assert_eq!(e.window, Duration::from_secs(300));
    assert_eq!(p.login_name_claims.oauth2, "userName");
    assert_eq!(p.login_name_claims.for_realm(&Realm::Cas), Some("sub"));
    assert_eq!(
        p.login_name_claims.for_realm(&Realm::Oidc("app".into())),
        Some("preferred_username")
    );

    let got = problems(&with(
        "[provider.events]\npath = \"/events\"\nsignature_key = { value = \"short\", dev = true }\nencryption_key = { value = \"0123456789abcdef0\", dev = true }\nencryption = { iv_bytes = 8, iv_at = \"middle\" }\nwindow_seconds = 5\nmax_body_bytes = 10\non_disable = \"delete\"\n\n[provider.login_name_claims]\ncas = \" \"",
    ));
    for want in [
        "provider.events.path",
        "provider.events.token: is required",
        "provider.events.signature_key: must be exactly 16 characters",
        "provider.events.encryption_key: must be exactly 16 characters",
        "provider.events.encryption.iv_bytes",
        "provider.events.encryption.iv_at",
        "provider.events.window_seconds",
        "provider.events.max_body_bytes",
        "provider.events.on_disable",
        "provider.login_name_claims.cas",
    ] {
        assert!(
            got.iter().any(|p| p.starts_with(want)),
            "no {want} in {got:#?}"
        );
    }
    let got = problems(&with(
        "[provider.events]\npath = \"/_sso/callback\"\ntoken = { value = \"t\" }",
    ));
    assert!(
        got.iter()
            .any(|p| p.contains("provider.events.path") && p.contains("other endpoints")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|p| p.starts_with("provider.events.token.value")),
        "{got:#?}"
    );
}

#[test]
fn header_encodings_are_inherited_and_unknown_ones_listed_with_paths() {
    let text = format!(
        "{GOOD}{}",
        r#"
[[route]]
path = "/servlet"
upstream = "http://127.0.0.1:3000"
protocol = "oidc"
header_encoding = "latin1"
[route.headers]
X-User = "sub"
X-Name = { claim = "name", encoding = "mime" }
X-Card = { template = "{name} <{email}>" }
X-Raw = { claim = "name", encoding = "utf8" }

[[route]]
path = "/b64"
upstream = "http://127.0.0.1:3000"
protocol = "oidc"
header_encoding = "base64"
"#
    );
    let c = parse_ok(&text);
    let enc = |route: usize, name: &str| {
        c.routes[route]
            .headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.encoding)
    };
    assert_eq!(enc(0, "x-forwarded-user"), Some(HeaderEncoding::Utf8));
    assert_eq!(enc(2, "x-user"), Some(HeaderEncoding::Latin1));
    assert_eq!(enc(2, "x-name"), Some(HeaderEncoding::Mime));
    assert_eq!(enc(2, "x-card"), Some(HeaderEncoding::Latin1));
    assert_eq!(enc(2, "x-raw"), Some(HeaderEncoding::Utf8));
    // The default set follows the route's encoding too.
    assert!(c.routes[3]
        .headers
        .iter()
        .all(|h| h.encoding == HeaderEncoding::Base64));

    let bad = format!(
        "{GOOD}{}",
        r#"
[[route]]
path = "/bad"
upstream = "http://127.0.0.1:3000"
protocol = "oidc"
header_encoding = "UTF-8"
[route.headers]
X-A = { claim = "name", encoding = "gbk" }
X-B = { claim = "name", encoding = 1 }
X-C = { claim = "name", encoding = "latin1" }

[[route]]
path = "/bad2"
upstream = "http://127.0.0.1:3000"
protocol = "oidc"
header_encoding = "base64url"
"#
    );
    let got = problems(&bad);
    let joined = got.join("\n");
    for want in [
        "route[2].header_encoding: `UTF-8` is not one of utf8, percent, base64, latin1, mime",
        "route[2].headers.X-A.encoding: `gbk` is not one of utf8, percent, base64, latin1, mime",
        "route[2].headers.X-B.encoding: must be a string",
        "route[3].header_encoding: `base64url` is not one of",
    ] {
        assert!(
            got.iter().any(|p| p.starts_with(want)),
            "missing `{want}` in:\n{joined}"
        );
    }
    assert_eq!(got.len(), 4, "{joined}");
}

#[test]
fn redis_sentinel_cluster_tls_and_acl_are_read_with_every_problem_listed() {
    let with = |lines: &str| {
        GOOD.replace(
            "[session]\n",
            &format!("[session]\nstore = \"redis\"\n{lines}\n"),
        )
    };
    let redis = |c: Config| match c.session.store {
        StoreSettings::Redis(r) => r,
        other => panic!("not redis: {other:?}"),
    };
    let r = redis(parse_ok(&with(
        "redis_sentinel = { master = \"mymaster\", nodes = [\"10.0.0.1:26379\", \"[::1]:26380\"], db = 2, password = { env = \"SECRET\" } }\nredis_username = \"gateway\"\nredis_password = { env = \"SECRET\" }",
    )));
    assert_eq!(
        r.target,
        RedisTarget::Sentinel {
            master: "mymaster".into(),
            nodes: vec![("10.0.0.1".into(), 26379), ("::1".into(), 26380)],
            db: 2,
            username: None,
            password: Some(Secret::new("s3cret".into())),
        }
    );
    assert_eq!(r.username.as_deref(), Some("gateway"));
    assert!(r.password.is_some() && r.tls.is_none());
    let r = redis(parse_ok(&with(
        "redis_cluster = [\"redis-1.internal:6379\", \"redis-2.internal:6379\"]\nredis_tls = {}",
    )));
    assert_eq!(
        r.target,
        RedisTarget::Cluster {
            nodes: vec![
                ("redis-1.internal".into(), 6379),
                ("redis-2.internal".into(), 6379)
            ],
        }
    );
    assert_eq!(r.tls, Some(RedisTls::default()));

    let got = problems(&with(
        "redis_url = \"redis://127.0.0.1:6379/0\"\nredis_cluster = []\nredis_sentinel = { nodes = [\"sentinel-1\", \"a:1\"] }\nredis_tls = { ca_file = \"/nonexistent/ca.pem\", cert_file = \"c.pem\" }\nredis_username = \"\"",
    ))
    .join("\n");
    for want in [
        "session.redis_sentinel: give one of redis_url, redis_sentinel or redis_cluster, not both `redis_url` and `redis_sentinel`",
        "session.redis_cluster: give one of redis_url, redis_sentinel or redis_cluster, not both `redis_url` and `redis_cluster`",
        "session.redis_cluster: needs at least one cluster node",
        "session.redis_sentinel.master: is required",
        "session.redis_sentinel.nodes[0]: `sentinel-1` is not host:port",
        "session.redis_tls.ca_file: cannot read `/nonexistent/ca.pem`",
        "session.redis_tls.key_file: is required with cert_file",
        "session.redis_tls: needs a `rediss://` redis_url",
        "session.redis_username: must be a non-empty name",
    ] {
        assert!(got.contains(want), "missing `{want}` in:\n{got}");
    }
    assert!(!got.contains("nodes[1]"), "a:1 is host:port: {got}");
    let got = problems(&with(
        "redis_sentinel = { master = \"m\", nodes = [] }\nredis_key_prefix = \"oag:\"",
    ))
    .join("\n");
    assert!(
        got.contains("session.redis_sentinel.nodes: needs at least one sentinel"),
        "{got}"
    );
    let got = problems(&with(
        "redis_cluster = [\"10.0.0.1:6379\", \"redis://10.0.0.2:6379\"]\nredis_key_prefix = \"{oag}:\"",
    ))
    .join("\n");
    assert!(
        got.contains("session.redis_cluster[1]: `redis://10.0.0.2:6379` is not host:port"),
        "{got}"
    );
    assert!(
        got.contains("session.redis_key_prefix: must not contain `{` or `}` with redis_cluster"),
        "{got}"
    );
    let got = problems(&with("")).join("\n");
    assert!(got.contains("session.redis_url: is required"), "{got}");
    // Only the Redis store reads them.
    let got = problems(&GOOD.replace(
        "[session]\n",
        "[session]\nredis_cluster = [\"10.0.0.1:6379\"]\nredis_username = \"u\"\n",
    ))
    .join("\n");
    for want in [
        "session.redis_cluster: is only used with store = \"redis\"",
        "session.redis_username: is only used with store = \"redis\"",
    ] {
        assert!(got.contains(want), "missing `{want}` in:\n{got}");
    }
}
