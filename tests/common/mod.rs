//! Test harness: a OneAccess simulator, an echo upstream and a gateway on ephemeral
//! ports, in-process; and `Browser`, an HTTP client that keeps cookies per host (not
//! per port, as browsers do) and follows redirects by hand.
#![allow(dead_code)]

pub mod interop;
pub mod process;
pub mod redis_nodes;
pub mod tls;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use oneaccess_gateway::config;
use oneaccess_gateway::gateway::Gateway;
use oneaccess_gateway::proxy::server::{self, RunningGateway};
use oneaccess_sim::echo::Echo;
use oneaccess_sim::{Sim, SimConfig};
use serde_json::Value;

pub const COOKIE_KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
pub const USER: (&str, &str) = ("alice", "alice-password");
pub const ALICE_ID: &str = "20240001";

pub struct Env {
    pub sim: Sim,
    pub echo: Echo,
    pub gw: RunningGateway,
    pub port: u16,
}

impl Env {
    /// The gateway URL for a path, as users reach it.
    pub fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gw.gateway
    }
}

/// A port for a gateway (or another server a test starts by port) to listen
/// on: free now, below the kernel's ephemeral range, and never handed out twice
/// by this test process.
///
/// Why not a port the kernel picks (`bind` to port 0): it is released before
/// the gateway binds it, and the kernel may hand it meanwhile to any socket
/// bound to port 0 or connecting out, such as another test's simulator; the
/// gateway then waited for the port while the test talked to that simulator
/// (`tests/http1.rs` once got the simulator's 404 so). Below the ephemeral
/// range the kernel hands out nothing by itself.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = below_ephemeral_ports();
    let span = u32::from(high - low);
    // Each test process starts at its own place in the range, so that test
    // binaries run one after another do not wait on each other's lingering
    // sockets.
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + ((start + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {low} and {high}");
}

/// The ports below the kernel's ephemeral range (`ip_local_port_range`), from
/// 10000 up.
pub fn below_ephemeral_ports() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    assert!(
        ephemeral_low > 11_000,
        "the ephemeral range starts at {ephemeral_low}: no room below it for test ports"
    );
    (10_000, ephemeral_low)
}

/// The `[server]` and `[session]` tables every test gateway on `port` starts
/// with (lines may follow in `[session]`): localhost, two threads, the test
/// cookie key and a state directory of its own.
pub fn config_head(port: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://localhost:{port}"
threads = 2

[session]
keys = [{{ value = "{COOKIE_KEY}", dev = true }}]
{}"#,
        state_dir_line(port)
    )
}

/// The standard test config: `/` protected by OIDC, `/public` public. `provider_extra`
/// lines go into `[provider]`, `extra` at the end of the file, with `{upstream}` in
/// it standing for the echo app's URL.
pub fn config_text(port: u16, sim: &Sim, echo: &Echo, provider_extra: &str, extra: &str) -> String {
    config_text_with(port, sim, echo, "", provider_extra, extra)
}

/// As `config_text`, with `session_extra` lines in `[session]`.
pub fn config_text_with(
    port: u16,
    sim: &Sim,
    echo: &Echo,
    session_extra: &str,
    provider_extra: &str,
    extra: &str,
) -> String {
    format!(
        r#"{head}
{session_extra}

[provider]
issuer = "{issuer}"
client_id = "demo-client"
client_secret = {{ value = "demo-secret", dev = true }}
jwks_min_refetch_seconds = 2
{provider_extra}

[[route]]
path = "/"
upstream = "{up}"
protocol = "oidc"

[[route]]
path = "/public"
upstream = "{up}"
protocol = "public"
{extra}
"#,
        head = config_head(port),
        issuer = sim.issuer(),
        up = echo.base_url(),
        extra = extra.replace("{upstream}", &echo.base_url()),
    )
}

/// The embedded store's directory of the gateway on `port`: its own, in the
/// temporary directory, so that test gateways never share sessions or
/// revocations (and a restarted one, on the same port, finds its own again).
pub fn state_dir(port: u16) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("oag-state-{}-{port}", std::process::id()))
}

/// `state_dir = "…"` for a `[session]` table.
pub fn state_dir_line(port: u16) -> String {
    format!("state_dir = {:?}", state_dir(port).display().to_string())
}

pub async fn start() -> Env {
    start_with(SimConfig::default(), "", "").await
}

pub async fn start_with(sim_cfg: SimConfig, provider_extra: &str, extra: &str) -> Env {
    start_full(sim_cfg, "", provider_extra, extra).await
}

/// A gateway with `session_extra` lines in `[session]` (mode, store, ...).
pub async fn start_sessions(session_extra: &str) -> Env {
    start_full(SimConfig::default(), session_extra, "", "").await
}

pub async fn start_full(
    sim_cfg: SimConfig,
    session_extra: &str,
    provider_extra: &str,
    extra: &str,
) -> Env {
    start_from(sim_cfg, |port, sim, echo| {
        config_text_with(port, sim, echo, session_extra, provider_extra, extra)
    })
    .await
}

/// A simulator, an echo app and a gateway on a free port, whose config `text`
/// makes from the port and the two.
async fn start_from(sim_cfg: SimConfig, text: impl FnOnce(u16, &Sim, &Echo) -> String) -> Env {
    let sim = Sim::start(sim_cfg).await.expect("simulator");
    let echo = Echo::start().await.expect("echo upstream");
    let port = free_port();
    let gw = start_gateway(&text(port, &sim, &echo)).await;
    Env {
        sim,
        echo,
        gw,
        port,
    }
}

/// The standard gateway with `extra` routes, where the test client (127.0.0.1)
/// is a trusted proxy: it may ask forward auth, and its `X-Forwarded-For` counts.
pub async fn start_trusting_localhost(extra: &str) -> Env {
    start_from(SimConfig::default(), |port, sim, echo| {
        config_text(port, sim, echo, "", extra).replace(
            "threads = 2\n",
            "threads = 2\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        )
    })
    .await
}

pub async fn start_gateway(text: &str) -> RunningGateway {
    let cfg = config::parse(text, Path::new("."), &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let gateway = Arc::new(Gateway::new(cfg).expect("gateway"));
    gateway.warm_up().await.expect("warm up");
    tokio::task::spawn_blocking(move || server::spawn(gateway))
        .await
        .expect("join")
        .expect("gateway listens")
}

#[derive(Debug)]
pub struct Resp {
    pub url: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| resolve(&self.url, l))
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    /// Values the echo upstream saw for a header (lower-case name).
    pub fn upstream_header(&self, name: &str) -> Vec<String> {
        let v = self.json();
        v["headers"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .filter(|h| h[0].as_str() == Some(name))
                    .filter_map(|h| h[1].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The bytes of each value of a header (lower-case name) as the echo upstream
    /// received them: the request must have asked with `?raw_headers`.
    pub fn upstream_header_bytes(&self, name: &str) -> Vec<Vec<u8>> {
        let v = self.json();
        let raw = v["raw_headers"]
            .as_array()
            .unwrap_or_else(|| panic!("no raw_headers (ask with ?raw_headers): {}", self.body));
        raw.iter()
            .filter(|h| h[0].as_str() == Some(name))
            .filter_map(|h| h[1].as_str())
            .map(|hex| {
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect()
            })
            .collect()
    }

    /// Every header name the echo upstream saw.
    pub fn upstream_header_names(&self) -> Vec<String> {
        self.json()["headers"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .filter_map(|h| h[0].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The app saw Alice's default identity headers, once each.
pub fn assert_alice_headers(r: &Resp) {
    assert_eq!(r.upstream_header("x-forwarded-user"), [ALICE_ID]);
    assert_eq!(
        r.upstream_header("x-forwarded-email"),
        ["alice@example.com"]
    );
    assert_eq!(
        r.upstream_header("x-forwarded-preferred-username"),
        ["alice"]
    );
}

/// The first value of the query parameter `name` in `url`.
pub fn query(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub fn resolve(base: &str, location: &str) -> String {
    url::Url::parse(base)
        .and_then(|b| b.join(location))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| location.to_string())
}

/// A browser: cookies per host, redirects followed by hand.
#[derive(Clone)]
pub struct Browser {
    client: reqwest::Client,
    jar: Arc<Mutex<HashMap<String, BTreeMap<String, String>>>>,
    pub accept: &'static str,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser::with_client(
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        )
    }

    /// A browser on `client` (one that trusts a test CA, say); it must not follow
    /// redirects.
    pub fn with_client(client: reqwest::Client) -> Browser {
        Browser {
            client,
            jar: Arc::default(),
            // A navigation to the gateway (it contains text/html), and JSON from the
            // echo app, which ranks by q-value: the tests read what the app saw.
            accept: "text/html;q=0.9,application/json",
        }
    }

    fn host(url: &str) -> String {
        url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar
            .lock()
            .expect("jar")
            .get(host)
            .and_then(|c| c.get(name).cloned())
    }

    pub fn cookies(&self, host: &str) -> BTreeMap<String, String> {
        self.jar
            .lock()
            .expect("jar")
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    pub fn set_cookie(&self, host: &str, name: &str, value: &str) {
        self.jar
            .lock()
            .expect("jar")
            .entry(host.to_string())
            .or_default()
            .insert(name.to_string(), value.to_string());
    }

    pub fn remove_cookie(&self, host: &str, name: &str) {
        if let Some(c) = self.jar.lock().expect("jar").get_mut(host) {
            c.remove(name);
        }
    }

    fn cookie_header(&self, url: &str) -> Option<String> {
        let jar = self.jar.lock().expect("jar");
        let c = jar.get(&Self::host(url))?;
        (!c.is_empty()).then(|| {
            c.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn store(&self, url: &str, resp: &reqwest::Response) {
        let host = Self::host(url);
        let mut jar = self.jar.lock().expect("jar");
        let cookies = jar.entry(host).or_default();
        for v in resp.headers().get_all("set-cookie") {
            let Ok(text) = v.to_str() else { continue };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let expired = parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            if expired {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        form: Option<&[(&str, &str)]>,
    ) -> Resp {
        let mut rb = self.client.request(method, url);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            rb = rb.header("accept", self.accept);
        }
        if let Some(c) = self.cookie_header(url) {
            rb = rb.header("cookie", c);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(f) = form {
            rb = rb.form(f);
        }
        let resp = rb.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        self.store(url, &resp);
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Resp {
            url: url.to_string(),
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, url: &str) -> Resp {
        self.request(reqwest::Method::GET, url, &[], None).await
    }

    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Resp {
        self.request(reqwest::Method::GET, url, headers, None).await
    }

    /// The user clicks "Sign out" on the site: a same-origin navigation to the
    /// gateway's logout `url` (a browser says so in `Sec-Fetch-Site`; without it
    /// the gateway asks to confirm).
    pub async fn log_out(&self, url: &str) -> Resp {
        self.get_with(url, &[("sec-fetch-site", "same-origin")])
            .await
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Resp {
        self.request(reqwest::Method::POST, url, &[], Some(form))
            .await
    }

    /// Follows redirects from `resp` (at most 10 hops); returns every response seen.
    pub async fn follow(&self, first: Resp) -> Vec<Resp> {
        let mut seen = vec![first];
        for _ in 0..10 {
            let last = seen.last().expect("one");
            if !(300..400).contains(&last.status) {
                break;
            }
            let Some(next) = last.location() else { break };
            let r = self.get(&next).await;
            seen.push(r);
        }
        seen
    }

    /// GET `url` and follow redirects.
    pub async fn visit(&self, url: &str) -> Vec<Resp> {
        let first = self.get(url).await;
        self.follow(first).await
    }

    /// Opens a protected URL, logs in at the simulator's form, and returns the final
    /// response (the app's page).
    pub async fn login(&self, url: &str, user: (&str, &str)) -> Resp {
        let hops = self.visit(url).await;
        let posted = self.submit_login(hops.last().expect("a page"), user).await;
        let hops = self.follow(posted).await;
        hops.into_iter().last().expect("final")
    }

    /// Opens `path` on the gateway, logs in at the simulator's form, and stops at
    /// the gateway's callback URL (OIDC, OAuth2 or CAS) without following it.
    pub async fn to_callback(&self, env: &Env, path: &str) -> String {
        let hops = self.visit(&env.url(path)).await;
        let posted = self.submit_login(hops.last().expect("form"), USER).await;
        let mut next = posted.location().expect("redirect");
        for _ in 0..5 {
            if next.starts_with(&env.url("/_sso/")) {
                return next;
            }
            next = self.get(&next).await.location().expect("redirect");
        }
        panic!("never reached the gateway's callback: {next}");
    }

    /// Fills in and posts the simulator's login form shown in `form_page`; returns
    /// the answer (a redirect back to the authorize endpoint), not followed.
    pub async fn submit_login(&self, form_page: &Resp, user: (&str, &str)) -> Resp {
        assert_eq!(
            form_page.status, 200,
            "expected the login form at {}",
            form_page.url
        );
        assert!(
            form_page.body.contains("login-form"),
            "not the login form: {}",
            form_page.body
        );
        let redirect = extract_hidden(&form_page.body, "redirect").expect("hidden redirect field");
        let action = resolve(&form_page.url, "/api/v1/login/form");
        let form = [
            ("username", user.0),
            ("password", user.1),
            ("redirect", redirect.as_str()),
        ];
        self.post_form(&action, &form).await
    }
}

/// The value of `<input type="hidden" name="NAME" value="...">` in a page.
pub fn extract_hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\"");
    let at = html.find(&marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    let end = tag[v..].find('"')? + v;
    Some(
        tag[v..end]
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">"),
    )
}

/// Sends raw bytes to the gateway and returns the whole answer as text (for
/// request targets and Host headers a URL library would not let through).
pub async fn raw_response(port: u16, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The status code of a raw request's answer.
pub async fn raw_status(port: u16, request: &str) -> u16 {
    let text = raw_response(port, request).await;
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A real `redis-server` on an ephemeral loopback port, with no persistence;
/// killed when dropped.
pub struct RedisServer {
    child: std::process::Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_on(free_port())
    }

    /// Starts (or restarts) a server on a given port.
    pub fn start_on(port: u16) -> RedisServer {
        let mut child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (installed by .ci/run and scripts/setup.sh)");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return RedisServer { child, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not listen on {port}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How many times the Redis server on `port` ran `command` (its `INFO
/// commandstats`), e.g. `mget`.
pub fn redis_calls(port: u16, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis_nodes::admin(port))
        .expect("INFO");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A real nginx (the Debian package's `/usr/sbin/nginx`) on a loopback port, as one
/// process (`daemon off; master_process off;`) whose pid file, logs and temp
/// directories all live in its own directory: it needs no privileges, and tests
/// run several at once. Killed, and its directory removed, when dropped.
pub struct NginxServer {
    child: std::process::Child,
    pub port: u16,
    pub dir: std::path::PathBuf,
}

impl NginxServer {
    /// The nginx binary: `/usr/sbin/nginx`, else `nginx` on the PATH. Panics with
    /// a clear message when there is none (the tests need it; CI installs it).
    pub fn binary() -> std::path::PathBuf {
        let debian = Path::new("/usr/sbin/nginx");
        if debian.exists() {
            return debian.to_path_buf();
        }
        let on_path = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nginx"))
                .find(|f| f.is_file())
        });
        on_path.unwrap_or_else(|| {
            panic!(
                "nginx is not installed: these tests run a real nginx. Install it with \
                 `apt-get install nginx` (./scripts/setup.sh does)"
            )
        })
    }

    /// Starts nginx with `http_conf` as the inside of its `http { }` block; it
    /// must listen on `127.0.0.1:{port}`. Returns once that port accepts.
    pub fn start(port: u16, http_conf: &str) -> NginxServer {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let bin = Self::binary();
        let dir = std::env::temp_dir().join(format!(
            "oag-nginx-{}-{}-{}",
            std::process::id(),
            port,
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("nginx directory");
        let d = dir.display();
        let conf = format!(
            "daemon off;\n\
             master_process off;\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log notice;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             access_log {d}/access.log;\n\
             client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             default_type application/octet-stream;\n\
             {http_conf}\n\
             }}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let stderr = std::fs::File::create(dir.join("stderr.log")).expect("stderr.log");
        let mut child = std::process::Command::new(&bin)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        for _ in 0..400 {
            if let Ok(Some(status)) = child.try_wait() {
                let log = Self::logs_in(&dir);
                let _ = std::fs::remove_dir_all(&dir);
                panic!("nginx exited at start ({status}):\n{log}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return NginxServer { child, port, dir };
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = Self::logs_in(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        panic!("nginx did not listen on {port}:\n{log}");
    }

    /// `http://localhost:{port}{path}`: nginx as users reach it.
    pub fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }

    /// nginx's error log and stderr so far.
    pub fn logs(&self) -> String {
        Self::logs_in(&self.dir)
    }

    fn logs_in(dir: &Path) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for NginxServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let logs = self.logs();
            let lines: Vec<&str> = logs.lines().collect();
            let tail = lines[lines.len().saturating_sub(60)..].join("\n");
            eprintln!("nginx logs ({}), the end:\n{tail}", self.dir.display());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The admin listener's `/metrics` on `admin` once it has every line of
/// `wanted`: a request is counted when its answer is written, so the last one
/// may take a moment. Fails after five seconds, naming what is missing.
pub async fn metrics_with(admin: u16, wanted: &[&str]) -> String {
    let b = Browser::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let m = b.get(&format!("http://127.0.0.1:{admin}/metrics")).await;
        assert_eq!(m.status, 200);
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|w| !m.body.lines().any(|l| l == *w))
            .collect();
        if missing.is_empty() {
            return m.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing {missing:?} in:\n{}",
            m.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
