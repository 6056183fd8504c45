//! Independent servers the gateway is tried against, each installed by
//! `scripts/setup.sh` and run as its own process for one test: panva's
//! `oidc-provider` (npm) at OneAccess's OIDC paths, and `django-mama-cas` (PyPI)
//! at OneAccess's CAS paths. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, resolve, Browser, Resp};

fn interop_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("interop")
        .join(name)
}

/// Starts `cmd` (a server that listens on `port`) with its output in a log
/// file of its own, and waits until the port accepts; panics with the output
/// when it does not.
fn spawn(mut cmd: Command, port: u16, what: &str) -> (Child, PathBuf) {
    let log = std::env::temp_dir().join(format!("oag-{what}-{}-{port}.log", std::process::id()));
    let out = std::fs::File::create(&log).expect("log");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e} (./scripts/setup.sh installs it)"));
    wait_for(&mut child, port, &log, what);
    (child, log)
}

/// Waits until `port` accepts, or panics with the server's output.
fn wait_for(child: &mut Child, port: u16, log: &Path, what: &str) {
    for _ in 0..600 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited at start ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!(
        "{what} did not listen on {port}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// panva's `oidc-provider` (`interop/oidc-provider/server.mjs`).
pub struct OidcProvider {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl OidcProvider {
    /// Starts it for a gateway reached at `gateway` (its public origin), with
    /// access tokens of `access_ttl` seconds, on `port` (0: a free one). Each
    /// start signs with a new key.
    pub fn start(gateway: &str, access_ttl: u64, port: u16) -> OidcProvider {
        let dir = interop_dir("oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "oidc-provider is not installed: run ./scripts/setup.sh"
        );
        let port = if port == 0 { free_port() } else { port };
        let mut cmd = Command::new("node");
        cmd.arg("server.mjs")
            .current_dir(&dir)
            .env("PORT", port.to_string())
            .env("GATEWAY", gateway)
            .env("ACCESS_TTL", access_ttl.to_string());
        let (child, log) = spawn(cmd, port, "oidc-provider");
        OidcProvider { child, port, log }
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/oauth2", self.port)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `action` of the first form in `page`, absolute (the page itself when the
/// form names none).
pub fn form_action(page: &Resp) -> String {
    let at = page.body.find("<form").expect("a form");
    let tag = &page.body[at..at + page.body[at..].find('>').expect("tag end")];
    let Some(a) = tag.find("action=\"").map(|a| a + 8) else {
        return page.url.clone();
    };
    let action = &tag[a..a + tag[a..].find('"').expect("quote")];
    resolve(&page.url, &action.replace("&amp;", "&"))
}

/// Signs in at oidc-provider's development login form (any password) from the
/// first hop of a login, and follows on to where it leads.
pub async fn oidc_provider_login(b: &Browser, first: Resp, user_id: &str) -> Resp {
    let hops = b.follow(first).await;
    let form = hops.last().expect("the login form");
    assert!(
        form.body.contains("name=\"login\""),
        "not oidc-provider's login form ({}): {}",
        form.url,
        form.body
    );
    let posted = b
        .post_form(
            &form_action(form),
            &[("prompt", "login"), ("login", user_id), ("password", "any")],
        )
        .await;
    b.follow(posted).await.into_iter().last().expect("a page")
}

/// `django-mama-cas` (`interop/mama-cas`), a CAS 1.0/2.0/3.0 server at
/// OneAccess's paths (`/api/v1/cas/…`). Users alice and bob, passwords
/// `alice-password` and `bob-password`.
pub struct MamaCas {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl MamaCas {
    pub fn start() -> MamaCas {
        let dir = interop_dir("mama-cas");
        let python = dir.join(".venv/bin/python");
        assert!(
            python.exists(),
            "django-mama-cas is not installed: run ./scripts/setup.sh"
        );
        let port = free_port();
        let db =
            std::env::temp_dir().join(format!("oag-cas-{}-{port}.sqlite3", std::process::id()));
        let mut cmd = Command::new(&python);
        cmd.arg("server.py")
            .arg(port.to_string())
            .current_dir(&dir)
            .env("CAS_DB", &db);
        let (child, log) = spawn(cmd, port, "mama-cas");
        MamaCas { child, port, log }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MamaCas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signs in at Django's login form (with its CSRF token) from the first hop of
/// a login, and follows on to where it leads.
pub async fn mama_cas_login(b: &Browser, first: Resp, user: (&str, &str)) -> Resp {
    let hops = b.follow(first).await;
    let form = hops.last().expect("the login form");
    let csrf = super::extract_hidden(&form.body, "csrfmiddlewaretoken")
        .unwrap_or_else(|| panic!("not mama-cas's login form ({}): {}", form.url, form.body));
    let posted = b
        .request(
            reqwest::Method::POST,
            &form_action(form),
            &[("referer", &form.url)],
            Some(&[
                ("csrfmiddlewaretoken", csrf.as_str()),
                ("username", user.0),
                ("password", user.1),
            ]),
        )
        .await;
    b.follow(posted).await.into_iter().last().expect("a page")
}
