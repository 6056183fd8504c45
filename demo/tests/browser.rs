//! End to end with a real browser: the `oneaccess-demo` binary, driven by headless
//! Chromium through chromedriver, as README's "Two commands" tells a person to use
//! it: open the protected OIDC route, log in as alice on the simulator's form, land
//! on the echo app with alice's identity headers, log out, and be asked to log in
//! again.
//!
//! Skipped (with "SKIPPED: <reason>" on stderr) when Chromium or chromedriver is not
//! installed or cannot start a session, unless `ONEACCESS_BROWSER_REQUIRED=1`
//! (set by `.ci/run`), which turns the skip into a failure.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// Where Debian's `chromium` and `chromium-driver` packages put them
/// (`scripts/setup.sh` installs both).
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The demo's fixed addresses (demo/src/main.rs and config/demo.toml).
const GATEWAY: &str = "http://localhost:8080/";
const LOGOUT: &str = "http://localhost:8080/_sso/logout";
const SIMULATOR_ORIGIN: &str = "http://127.0.0.1:9000";
const DEMO_PORTS: [u16; 3] = [8080, 9000, 9001];

/// alice in sim/fixtures/users.json: the OIDC `sub` is her OneAccess user id.
const ALICE_ID: &str = "20240001";
const ALICE_EMAIL: &str = "alice@example.com";

/// Generous, because a CI machine may be slow to start a browser; a healthy run
/// spends well under a second on each step.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How often to look again while polling for a state.
const POLL: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_logs_in_and_out_of_the_demo_in_a_real_browser() {
    let started = Instant::now();
    let artifacts = artifacts_dir();

    for tool in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(tool).exists() {
            return skip(format!(
                "{tool} is not installed (Debian packages `chromium chromium-driver`; \
                 ./scripts/setup.sh installs them)"
            ));
        }
    }
    // The demo listens on fixed ports; if something else holds one, the test would
    // talk to that instead (a `./scripts/demo.sh` left running, say).
    for port in DEMO_PORTS {
        if let Err(e) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            panic!(
                "port {port} is taken ({e}): the demo needs 8080, 9000 and 9001; \
                 is ./scripts/demo.sh still running?"
            );
        }
    }

    // Declared in this order so that they drop in reverse: the browser quits before
    // its profile directory is removed.
    let profile = TempDir::new("oneaccess-browser-profile");
    let mut driver = match ChromeDriver::start(&artifacts.join("chromedriver.log")) {
        Ok(d) => d,
        Err(reason) => return skip(reason),
    };
    let client = match driver.session(&profile.0).await {
        Ok(c) => c,
        Err(reason) => return skip(reason),
    };

    let mut demo = Demo::start(&artifacts.join("demo.log"));
    demo.wait_until_answering();

    // 1. The protected route sends the browser to the simulator's login form.
    client.goto(GATEWAY).await.expect("open the demo");
    wait_for_page(&client, Page::Login, "the OneAccess login form").await;
    let at = client.current_url().await.expect("current URL");
    assert!(
        at.as_str().starts_with(SIMULATOR_ORIGIN),
        "the login form should be the simulator's ({SIMULATOR_ORIGIN}), not at {at}"
    );

    // 2. Log in the way a person does: type into the fields, press the button.
    type_into(&client, "username", "alice").await;
    type_into(&client, "password", "alice-password").await;
    client
        .find(Locator::Id("login-submit"))
        .await
        .expect("the login form's submit button")
        .click()
        .await
        .expect("click Sign in");

    // 3. Back on the page first asked for, served by the echo app with alice's
    // identity in the headers the gateway added.
    wait_for_page(&client, Page::Echo, "the echo app after logging in").await;
    let landed = client.current_url().await.expect("current URL");
    assert_eq!(
        landed.as_str(),
        GATEWAY,
        "after logging in the browser should be back where it started"
    );
    let headers = forwarded_headers(&client).await;
    // The identity rows are below the fold of a usual window: make the window as
    // tall as the page, so the screenshot shows every header the app received.
    // The window's own frame (outer minus inner height) counts against its size.
    let height = client
        .execute(
            "return document.documentElement.scrollHeight \
                    + (window.outerHeight - window.innerHeight);",
            vec![],
        )
        .await
        .ok()
        .and_then(|h| h.as_u64())
        .and_then(|h| u32::try_from(h).ok())
        .unwrap_or(900);
    client
        .set_window_size(1280, height.clamp(900, 4000))
        .await
        .expect("resize the window to the page");
    let shot = artifacts.join("browser-landed.png");
    let png = client.screenshot().await.expect("take a screenshot");
    fs::write(&shot, png).unwrap_or_else(|e| panic!("write {}: {e}", shot.display()));
    println!("screenshot of the landed page: {}", shot.display());
    for (name, want) in [
        ("x-forwarded-user", ALICE_ID),
        ("x-forwarded-email", ALICE_EMAIL),
        ("x-forwarded-preferred-username", "alice"),
    ] {
        assert_eq!(
            headers.get(name).map(String::as_str),
            Some(want),
            "the echo app should have received {name}: {want}; it shows {headers:?}"
        );
    }

    // 4. Log out. A typed address counts as the user's own request
    // (Sec-Fetch-Site: none), so the gateway may log out at once; if it asks for
    // confirmation instead, press its button as a person would.
    client.goto(LOGOUT).await.expect("open the logout address");
    let page = wait_for_any_page(
        &client,
        &[Page::ConfirmLogout, Page::Login],
        "the logout confirmation or the login form",
    )
    .await;
    if page == Page::ConfirmLogout {
        println!("logout asked for confirmation: pressing Sign out");
        client
            .find(Locator::Id("logout-confirm"))
            .await
            .expect("the confirmation's Sign out button")
            .click()
            .await
            .expect("click Sign out");
    } else {
        println!("logout needed no confirmation (a typed address)");
    }
    // The gateway sends the browser to OneAccess's logout, which returns to the
    // gateway's `/`, which, with no session, asks for a login.
    wait_for_page(&client, Page::Login, "the login form after logging out").await;

    // 5. Opening the app again asks for a login: neither the gateway's session nor
    // the OneAccess SSO session survived (with the latter alive, the simulator
    // would have sent the browser straight back to the app).
    client.goto(GATEWAY).await.expect("open the demo again");
    wait_for_page(&client, Page::Login, "the login form on a second visit").await;
    let signed_in = client
        .find_all(Locator::Css(".hint"))
        .await
        .expect("look for the simulator's hints");
    for hint in signed_in {
        let text = hint.text().await.unwrap_or_default();
        assert!(
            !text.starts_with("Signed in as"),
            "the simulator still has an SSO session after logout: {text:?}"
        );
    }

    client.close().await.expect("end the browser session");
    println!(
        "browser test passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Skips, or, when `ONEACCESS_BROWSER_REQUIRED=1`, fails: in CI a missing browser
/// must not pass silently.
fn skip(reason: String) {
    if std::env::var("ONEACCESS_BROWSER_REQUIRED").as_deref() == Ok("1") {
        panic!("ONEACCESS_BROWSER_REQUIRED=1, but {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// `target/test-artifacts` of the workspace (or of `CARGO_TARGET_DIR`), created.
fn artifacts_dir() -> PathBuf {
    let demo_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = demo_dir.parent().unwrap_or(demo_dir);
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        // A relative CARGO_TARGET_DIR is relative to where cargo ran: the workspace
        // for `.ci/run` and the scripts; tests themselves run in demo/.
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    let dir = target.join("test-artifacts");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// The pages the scenario goes through, told apart by what is on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    /// The simulator's login form (sim/src/oneaccess/login.rs).
    Login,
    /// The same form, saying the credentials were refused.
    LoginRefused,
    /// The gateway's "Sign out?" page (Reply::confirm_logout).
    ConfirmLogout,
    /// The echo app (sim/src/echo.rs).
    Echo,
    /// Anything else, or a page still loading.
    Other,
}

async fn current_page(client: &Client) -> Result<Page, CmdError> {
    let has = |id: &'static str| async move {
        Ok::<_, CmdError>(!client.find_all(Locator::Id(id)).await?.is_empty())
    };
    Ok(if has("login-error").await? {
        Page::LoginRefused
    } else if has("login-form").await? {
        Page::Login
    } else if has("logout-confirm").await? {
        Page::ConfirmLogout
    } else if client.title().await? == "Echo upstream" {
        Page::Echo
    } else {
        Page::Other
    })
}

async fn wait_for_page(client: &Client, want: Page, what: &str) {
    wait_for_any_page(client, &[want], what).await;
}

/// Polls until the browser shows one of `want`, failing after `STEP_TIMEOUT`
/// (or at once on a refused login) with where the browser is and what it shows.
async fn wait_for_any_page(client: &Client, want: &[Page], what: &str) -> Page {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut last_error = None;
    loop {
        match current_page(client).await {
            Ok(page) if want.contains(&page) => return page,
            Ok(Page::LoginRefused) => {
                panic!(
                    "waiting for {what}: the login was refused\n{}",
                    describe(client).await
                )
            }
            Ok(_) => {}
            // A page being replaced mid-look (a navigation) is not a failure yet.
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            panic!(
                "waiting for {what}: not there after {STEP_TIMEOUT:?} (last error: {last_error:?})\n{}",
                describe(client).await
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Where the browser is and the start of the page's text, for failure messages.
async fn describe(client: &Client) -> String {
    let url = match client.current_url().await {
        Ok(u) => u.to_string(),
        Err(e) => format!("(unknown: {e})"),
    };
    let text = match client.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_else(|e| format!("({e})")),
        Err(e) => format!("(no body: {e})"),
    };
    let text: String = text.chars().take(2000).collect();
    format!("browser at: {url}\npage text:\n{text}")
}

async fn type_into(client: &Client, id: &str, text: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("the login form has no #{id}: {e}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into #{id}: {e}"));
}

/// The echo page's highlighted rows: the `x-forwarded-*` headers it received,
/// as shown to the user.
async fn forwarded_headers(client: &Client) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    let rows = client
        .find_all(Locator::Css("tr.fwd"))
        .await
        .expect("the echo page's header rows");
    for row in rows {
        let cells = row.find_all(Locator::Css("td")).await.expect("row cells");
        let [name, value] = cells.as_slice() else {
            panic!(
                "an echo header row should have two cells, not {}",
                cells.len()
            );
        };
        headers.insert(
            name.text().await.expect("header name"),
            value.text().await.expect("header value"),
        );
    }
    headers
}

/// The demo binary, killed when dropped (also when the test fails).
struct Demo {
    child: Child,
    log: PathBuf,
}

impl Demo {
    fn start(log: &Path) -> Demo {
        let out = File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone the log file handle");
        let child = Command::new(env!("CARGO_BIN_EXE_oneaccess-demo"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start oneaccess-demo");
        Demo {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Polls until the gateway answers an HTTP request on :8080.
    fn wait_until_answering(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !http_answers(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)), "GET", "/") {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "oneaccess-demo exited ({status}) before answering on :8080\n{}",
                    tail(&self.log)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "oneaccess-demo did not answer on http://127.0.0.1:8080/ within {START_TIMEOUT:?}\n{}",
                    tail(&self.log)
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("oneaccess-demo output:\n{}", tail(&self.log));
        }
    }
}

/// chromedriver in a process group of its own, so that dropping it also ends the
/// Chromium processes it started, even when the test fails before closing the
/// session.
struct ChromeDriver {
    child: Child,
    port: u16,
    log: PathBuf,
    /// The browser session, once there is one, to end it properly when dropped.
    session: Option<String>,
}

impl ChromeDriver {
    fn start(log: &Path) -> Result<ChromeDriver, String> {
        let port = free_port();
        let out = File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("clone the log file handle: {e}"))?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {CHROMEDRIVER}: {e}"))?;
        let mut driver = ChromeDriver {
            child,
            port,
            log: log.to_path_buf(),
            session: None,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !http_answers(driver.addr(), "GET", "/status") {
            if let Ok(Some(status)) = driver.child.try_wait() {
                return Err(format!(
                    "chromedriver exited ({status}) before listening\n{}",
                    tail(&driver.log)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "chromedriver did not listen on port {port} within {START_TIMEOUT:?}\n{}",
                    tail(&driver.log)
                ));
            }
            std::thread::sleep(POLL);
        }
        Ok(driver)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// A new headless Chromium session with a fresh profile in `profile`.
    async fn session(&mut self, profile: &Path) -> Result<Client, String> {
        // The machine's network may be closed: everything that would call out in the
        // background (updates, sync, QUIC probes) is off. --disable-dev-shm-usage
        // because a container's /dev/shm is often too small for Chromium (Debian's
        // launcher adds it only when it can measure /dev/shm).
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps);
        let connect = builder.connect(&url);
        match tokio::time::timeout(START_TIMEOUT, connect).await {
            Ok(Ok(client)) => {
                self.session = client.session_id().await.ok().flatten();
                Ok(client)
            }
            Ok(Err(e)) => Err(format!(
                "chromedriver could not start Chromium: {e}\n{}",
                tail(&self.log)
            )),
            Err(_) => Err(format!(
                "chromedriver did not start Chromium within {START_TIMEOUT:?}\n{}",
                tail(&self.log)
            )),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // Ending the session first lets Chromium shut down in order, its crash
        // handler (a daemon outside the group) with it. After `client.close()`
        // this only gets a quick "invalid session id".
        if let Some(id) = self.session.take() {
            http_answers(self.addr(), "DELETE", &format!("/session/{id}"));
        }
        let Ok(group) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) with a negative pid signals the process group that
        // `process_group(0)` made for chromedriver: only chromedriver and the
        // browser it started.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("chromedriver output:\n{}", tail(&self.log));
        }
    }
}

/// A directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on now (the OS picks it; chromedriver takes it next).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port()
}

/// Whether something at `addr` answers `method path` with an HTTP status line
/// (any status) within a few seconds.
fn http_answers(addr: SocketAddr, method: &str, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    // Ending a browser session takes chromedriver a moment: allow for it.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut start = [0u8; 5];
    stream.read_exact(&mut start).is_ok() && &start == b"HTTP/"
}

/// The last lines of a log file, for failure messages.
fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    format!(
        "--- {} (last lines)\n{}",
        path.display(),
        lines[from..].join("\n")
    )
}
