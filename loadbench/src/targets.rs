//! The servers under test and their configuration files: the upstream app (a
//! one-worker nginx that answers a fixed page), nginx as a plain proxy, Apache
//! with mod_auth_openidc and Apache with mod_auth_cas, the engine's floor (a
//! minimal Pingora proxy, built as the gateway is), the gateway (cookie sessions,
//! and Redis sessions), Redis, the OneAccess simulator and the TLS front that
//! mod_auth_cas validates its tickets through. Everything listens on loopback
//! ports of its own and writes only under the run's directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Client;
use tokio::runtime::Runtime;

use crate::login;
use crate::pin::Pinning;
use crate::procs::{find_binary, free_port, Proc};
use crate::wrk::Wrk;
use crate::Options;

/// The cookie key of the benchmark's gateways (a development value).
const COOKIE_KEY: &str = "bG9hZGJlbmNoLWNvb2tpZS1rZXktbm90LTQtcHJvZCE=";

/// Where the run writes, and how many worker threads each proxy gets.
pub struct Setup {
    pub dir: PathBuf,
    pub workers: u32,
    /// The directory of the gateway's and simulator's binaries.
    pub bin_dir: PathBuf,
    /// `--pin`: where the proxies under test run.
    pub pin: Option<Pinning>,
}

impl Setup {
    fn write(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        let path = self.dir.join(name);
        fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Puts a proxy under test on its CPU in the pinned mode (its workers and
    /// threads inherit it); the upstream, simulator and Redis stay with the
    /// harness.
    fn under_test(&self, cmd: &mut Command) {
        if let Some(pin) = &self.pin {
            pin.apply_to(cmd);
        }
    }

    fn own_binary(&self, name: &str) -> Result<PathBuf, String> {
        let path = self.bin_dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{} is missing: build it first (scripts/loadbench.sh does)",
                path.display()
            ))
        }
    }

    /// The app behind every proxy: one nginx worker answering a short page. It
    /// repeats the user header it received as `X-Seen-User` (so a run can prove
    /// the identity arrived) and counts requests at `/_bench/status`.
    pub fn upstream(&self) -> Result<Proc, String> {
        let port = free_port()?;
        let body = format!(
            "server {{\n\
             listen 127.0.0.1:{port} backlog=4096;\n\
             location = /_bench/status {{ stub_status; }}\n\
             location / {{\n\
             add_header X-Seen-User \"$http_x_forwarded_user$http_oidc_claim_sub\" always;\n\
             return 200 \"hello from the upstream app\\n\";\n\
             }}\n\
             }}"
        );
        self.nginx("upstream", port, 1, &body, false)
    }

    /// nginx as a plain reverse proxy (no authentication), configured as its
    /// documentation advises for speed: keep-alive connections to the upstream.
    pub fn nginx_proxy(&self, upstream: u16) -> Result<Proc, String> {
        let port = free_port()?;
        let body = format!(
            "upstream app {{ server 127.0.0.1:{upstream}; keepalive 256; }}\n\
             server {{\n\
             listen 127.0.0.1:{port} backlog=4096;\n\
             location / {{\n\
             proxy_pass http://app;\n\
             proxy_http_version 1.1;\n\
             proxy_set_header Connection \"\";\n\
             proxy_set_header Host $host;\n\
             }}\n\
             }}"
        );
        self.nginx("nginx", port, self.workers, &body, true)
    }

    fn nginx(
        &self,
        name: &str,
        port: u16,
        workers: u32,
        server: &str,
        under_test: bool,
    ) -> Result<Proc, String> {
        let bin = find_binary("nginx", &["/usr/sbin/nginx"])?;
        let d = self.dir.join(name);
        fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        let d = d.display();
        // One worker runs without a master; more need one (the master stays in
        // the foreground with `daemon off`).
        let master = if workers > 1 { "on" } else { "off" };
        let conf = format!(
            "daemon off;\n\
             master_process {master};\n\
             worker_processes {workers};\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n\
             access_log off;\n\
             keepalive_requests 1000000;\n\
             underscores_in_headers on;\n\
             client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             {server}\n\
             }}\n"
        );
        let conf_path = self.write(&format!("{name}.nginx.conf"), &conf)?;
        let mut cmd = Command::new(bin);
        cmd.arg("-p")
            .arg(self.dir.join(name))
            .arg("-e")
            .arg(self.dir.join(name).join("error.log"))
            .arg("-c")
            .arg(conf_path);
        if under_test {
            self.under_test(&mut cmd);
        }
        Proc::start(name, cmd, port, &self.log(name))
    }

    /// The engine's floor: `pingora-floor` (loadbench/src/bin), the smallest
    /// Pingora proxy, with as many threads as the gateway gets.
    pub fn floor(&self, upstream: u16) -> Result<Proc, String> {
        let port = free_port()?;
        let mut cmd = Command::new(self.own_binary("pingora-floor")?);
        cmd.arg(format!("127.0.0.1:{port}"))
            .arg(format!("127.0.0.1:{upstream}"))
            .arg(self.workers.to_string());
        self.under_test(&mut cmd);
        Proc::start("pingora-floor", cmd, port, &self.log("pingora-floor"))
    }

    /// The OneAccess simulator, in its own process so that its CPU is its own.
    pub fn sim(&self) -> Result<Proc, String> {
        let port = free_port()?;
        let mut cmd = Command::new(self.own_binary("oneaccess-sim")?);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn");
        Proc::start("oneaccess-sim", cmd, port, &self.log("sim"))
    }

    /// A Redis server for the gateway's server-side sessions.
    pub fn redis(&self) -> Result<Proc, String> {
        let bin = find_binary("redis-server", &["/usr/bin/redis-server"])?;
        let port = free_port()?;
        let mut cmd = Command::new(bin);
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(&self.dir);
        Proc::start("redis", cmd, port, &self.log("redis"))
    }

    /// The gateway: `/` behind OIDC and `/cas` behind CAS 3.0 (each with the
    /// default three identity headers), `/public` public. `redis` makes sessions server-side in that Redis. No
    /// access log, as nginx's and Apache's have none here.
    pub fn gateway(
        &self,
        name: &str,
        sim: &str,
        upstream: u16,
        redis: Option<u16>,
    ) -> Result<Gateway, String> {
        let port = free_port()?;
        let admin = free_port()?;
        let session = match redis {
            Some(r) => format!(
                "mode = \"server\"\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{r}\"\n"
            ),
            None => String::new(),
        };
        let d = self.dir.display();
        let text = format!(
            r#"# Written by oneaccess-loadbench for one run.
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
threads = {workers}
grace_period_seconds = 1
shutdown_timeout_seconds = 1
admin_listen = "127.0.0.1:{admin}"
upgrade_socket = "{d}/{name}-upgrade.sock"

[log]
access_log = false

[session]
keys = [{{ value = "{COOKIE_KEY}", dev = true }}]
state_dir = "{d}/{name}-state"
{session}
[provider]
issuer = "{sim}/api/v1/oauth2"
client_id = "demo-client"
client_secret = {{ value = "demo-secret", dev = true }}

[[route]]
path = "/"
upstream = "http://127.0.0.1:{upstream}"
protocol = "oidc"

# CAS 3.0 in OneAccess's default format (JSON): the gateway asks for it.
[[route]]
path = "/cas"
upstream = "http://127.0.0.1:{upstream}"
protocol = "cas"
cas = {{ version = "3.0", format = "json" }}

[[route]]
path = "/public"
upstream = "http://127.0.0.1:{upstream}"
protocol = "public"
"#,
            workers = self.workers,
        );
        let config = self.write(&format!("{name}.toml"), &text)?;
        let mut cmd = Command::new(self.own_binary("oneaccess-gateway")?);
        cmd.arg("--config").arg(&config).arg("run");
        self.under_test(&mut cmd);
        let proc = Proc::start(name, cmd, port, &self.log(name))?;
        Ok(Gateway { proc, admin })
    }
}

impl Setup {
    /// Apache with mod_auth_openidc in front of the same app: the peer doing the
    /// gateway's work (an OIDC login, a client-cookie session, claims passed to
    /// the app as headers).
    pub fn apache(&self, sim: &str, upstream: u16) -> Result<Apache, String> {
        let auth = APACHE_OPENIDC
            .replace("{SIM}", sim)
            .replace("{PASSPHRASE}", "loadbench-passphrase-not-a-secret");
        self.apache_with(
            "apache",
            ("mod_auth_openidc.so", "libapache2-mod-auth-openidc"),
            &auth,
            upstream,
        )
    }

    /// Apache with mod_auth_cas in front of the same app: the peer of the
    /// gateway's CAS route (a CAS 3.0 login at the simulator, a session kept by
    /// Apache, the user and attributes passed to the app as headers). It
    /// validates tickets through `front` ([`Setup::cas_front`]): mod_auth_cas
    /// sends no `format`, and OneAccess answers JSON unless asked for XML.
    pub fn apache_cas(&self, sim: &str, front: &CasFront, upstream: u16) -> Result<Apache, String> {
        let sessions = self.dir.join("apache-cas").join("sessions");
        fs::create_dir_all(&sessions).map_err(|e| format!("{}: {e}", sessions.display()))?;
        // Apache started as root serves as www-data, which must write the sessions.
        if is_root(&self.dir) {
            let (uid, gid) = user_ids("www-data")?;
            std::os::unix::fs::chown(&sessions, Some(uid), Some(gid))
                .map_err(|e| format!("{}: {e}", sessions.display()))?;
        }
        let auth = APACHE_CAS
            .replace("{SIM}", sim)
            .replace("{VALIDATE}", &front.url("/api/v1/cas/p3/serviceValidate"))
            .replace("{CA}", &front.certificate.display().to_string())
            // mod_auth_cas insists on the trailing slash.
            .replace("{SESSIONS}", &format!("{}/", sessions.display()));
        self.apache_with(
            "apache-cas",
            ("mod_auth_cas.so", "libapache2-mod-auth-cas"),
            &auth,
            upstream,
        )
    }

    /// Apache with one authentication module (`auth`: its directives and its
    /// `<Location>`) in front of the app. Its event MPM gets as many processes as
    /// the proxies get workers.
    fn apache_with(
        &self,
        name: &str,
        (module, package): (&str, &str),
        auth: &str,
        upstream: u16,
    ) -> Result<Apache, String> {
        let bin = find_binary("apache2", &["/usr/sbin/apache2"])?;
        let modules = Path::new("/usr/lib/apache2/modules");
        if !modules.join(module).is_file() {
            return Err(format!(
                "{module} is not installed (apt-get install {package}; ./scripts/setup.sh does)"
            ));
        }
        let port = free_port()?;
        let d = self.dir.join(name);
        fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        let text = APACHE_CONF
            .replace("{AUTH}", auth)
            .replace("{DIR}", &d.display().to_string())
            .replace("{MODULES}", &modules.display().to_string())
            .replace("{PORT}", &port.to_string())
            .replace("{UPSTREAM}", &format!("http://127.0.0.1:{upstream}"))
            .replace("{WORKERS}", &self.workers.to_string())
            .replace("{MAX_WORKERS}", &(self.workers * 192).to_string());
        let conf = self.write(&format!("{name}.conf"), &text)?;
        let mut cmd = Command::new(bin);
        cmd.arg("-f").arg(&conf).arg("-DFOREGROUND");
        self.under_test(&mut cmd);
        let proc = Proc::start(name, cmd, port, &self.log(name))?;
        Ok(Apache { proc })
    }

    /// The simulator's CAS validation as mod_auth_cas can use it: over HTTPS
    /// (as OneAccess serves it, and as mod_auth_cas's documentation requires;
    /// a certificate made for the run, which mod_auth_cas verifies), with
    /// `format=XML` added (mod_auth_cas replaces the validate URL's query with
    /// its own `service` and `ticket`, and OneAccess answers JSON by default).
    /// One nginx worker: it is used at logins only, not under load.
    pub fn cas_front(&self, sim_port: u16) -> Result<CasFront, String> {
        let (certificate, key) = self.certificate("cas-front")?;
        let port = free_port()?;
        let body = format!(
            "server {{\n\
             listen 127.0.0.1:{port} ssl;\n\
             ssl_certificate {cert};\n\
             ssl_certificate_key {key};\n\
             location = /api/v1/cas/p3/serviceValidate {{\n\
             proxy_pass http://127.0.0.1:{sim_port}/api/v1/cas/p3/serviceValidate?$args&format=XML;\n\
             }}\n\
             }}",
            cert = certificate.display(),
            key = key.display(),
        );
        let proc = self.nginx("cas-front", port, 1, &body, false)?;
        Ok(CasFront { proc, certificate })
    }

    /// A self-signed certificate for 127.0.0.1 and its key (openssl), valid
    /// for a day.
    fn certificate(&self, name: &str) -> Result<(PathBuf, PathBuf), String> {
        let bin = find_binary("openssl", &["/usr/bin/openssl"])?;
        let (cert, key) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        );
        let out = Command::new(bin)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:prime256v1")
            .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl could not make a certificate: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok((cert, key))
    }
}

/// Whether this process runs as root (it owns the directory it made).
fn is_root(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(dir).is_ok_and(|m| m.uid() == 0)
}

/// A user's uid and gid, from /etc/passwd.
fn user_ids(user: &str) -> Result<(u32, u32), String> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&user) && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| format!("no user {user} in /etc/passwd"))
}

/// Apache's configuration: self-contained (not Debian's apache2.conf). `{AUTH}`
/// is the authentication module's part.
const APACHE_CONF: &str = r#"# Written by oneaccess-loadbench for one run.
ServerRoot "{DIR}"
DefaultRuntimeDir "{DIR}"
PidFile "{DIR}/httpd.pid"
ServerName 127.0.0.1:{PORT}
Listen 127.0.0.1:{PORT}
ListenBacklog 4096
ErrorLog "{DIR}/error.log"
LogLevel warn
# mod_unixd and mod_so are built into Debian's apache2.
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authn_core_module {MODULES}/mod_authn_core.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule authz_user_module {MODULES}/mod_authz_user.so
LoadModule proxy_module {MODULES}/mod_proxy.so
LoadModule proxy_http_module {MODULES}/mod_proxy_http.so
User www-data
Group www-data
Mutex pthread default

# One process per proxy worker, all threads started up front. A proxied request
# holds its thread while the upstream answers, so there are threads to spare for
# every connection (with exactly 2 x 128 a 256-connection load was refused).
StartServers {WORKERS}
ServerLimit {WORKERS}
ThreadsPerChild 192
ThreadLimit 192
MaxRequestWorkers {MAX_WORKERS}
MinSpareThreads 64
MaxSpareThreads {MAX_WORKERS}
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
Timeout 30
ServerTokens Prod
TraceEnable Off
DocumentRoot "{DIR}"
<Directory />
    AllowOverride None
</Directory>

{AUTH}
ProxyRequests Off
ProxyPreserveHost On
# Pooled, kept-alive connections to the app.
ProxyPass / {UPSTREAM}/ keepalive=On max=192 ttl=60 retry=0 timeout=30
"#;

/// mod_auth_openidc's part of Apache's configuration.
const APACHE_OPENIDC: &str = r#"LoadModule auth_openidc_module {MODULES}/mod_auth_openidc.so
OIDCProviderMetadataURL {SIM}/api/v1/oauth2/.well-known/openid-configuration
OIDCClientID demo-client
OIDCClientSecret demo-secret
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCScope "openid profile email"
OIDCResponseType code
OIDCPKCEMethod S256
OIDCRedirectURI http://127.0.0.1:{PORT}/oidc/callback
OIDCCryptoPassphrase "{PASSPHRASE}"
# The whole session in an encrypted cookie, as the gateway's default.
OIDCSessionType client-cookie
OIDCSessionInactivityTimeout 86400
OIDCSessionMaxDuration 86400
OIDCCookieSameSite Off
OIDCPassClaimsAs headers
OIDCRemoteUserClaim sub
# The app does not get the session cookie (the gateway strips its own too).
OIDCStripCookies mod_auth_openidc_session
OIDCCacheType shm
ProxyPass /oidc/callback !

<Location />
    AuthType openid-connect
    Require valid-user
</Location>
"#;

/// mod_auth_cas's part of Apache's configuration. Its sessions are files in
/// `CASCookiePath` (mod_auth_cas has no other store), read on every request.
const APACHE_CAS: &str = r#"LoadModule auth_cas_module {MODULES}/mod_auth_cas.so
CASLoginURL {SIM}/api/v1/cas/login
CASValidateURL {VALIDATE}
CASCertificatePath {CA}
CASCookiePath {SESSIONS}
# CAS 2.0's XML answer, here from the CAS 3.0 endpoint: the user and attributes.
CASVersion 2
CASTimeout 86400
CASIdleTimeout 86400

<Location />
    AuthType CAS
    # The user as X-Forwarded-User, each attribute as a CAS-{name} header.
    CASAuthNHeader X-Forwarded-User
    # Client-sent copies of those headers are removed first.
    CASScrubRequestHeaders On
    Require valid-user
</Location>
"#;

/// The simulator's CAS validation behind TLS, for mod_auth_cas.
pub struct CasFront {
    pub proc: Proc,
    /// Its certificate, which mod_auth_cas trusts.
    pub certificate: PathBuf,
}

impl CasFront {
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.proc.port)
    }
}

/// Apache, running.
pub struct Apache {
    pub proc: Proc,
}

impl Apache {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.proc.port)
    }
}

/// A running gateway and its admin port.
pub struct Gateway {
    pub proc: Proc,
    pub admin: u16,
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.proc.port)
    }

    /// Its `/metrics` page.
    pub async fn metrics(&self, client: &reqwest::Client) -> Result<String, String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.admin);
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        resp.text().await.map_err(|e| format!("{url}: {e}"))
    }
}

/// The value of an unlabelled metric (or one line's, given with its labels).
pub fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Requests the upstream app has answered so far (nginx's `stub_status`).
pub async fn upstream_requests(client: &reqwest::Client, upstream: u16) -> Result<u64, String> {
    let url = format!("http://127.0.0.1:{upstream}/_bench/status");
    let text = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    // "Active connections: 1\nserver accepts handled requests\n 5 5 9\n..."
    text.lines()
        .nth(2)
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("cannot read the request count from {url}: {text}"))
}

/// What every mode starts from: the run's scratch directory (named for this
/// process), the servers' setup, wrk, a runtime and the harness's HTTP client.
pub struct Harness {
    pub dir: PathBuf,
    pub setup: Setup,
    pub wrk: Wrk,
    pub rt: Runtime,
    pub client: Client,
}

impl Harness {
    /// `pin`: where the proxies under test run (`--pin`), if anywhere.
    pub fn start(o: &Options, pin: Option<Pinning>) -> Result<Harness, String> {
        let wrk = find_binary("wrk", &["/usr/bin/wrk"])?;
        let dir = std::env::temp_dir().join(format!("oneaccess-loadbench-{}", std::process::id()));
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let setup = Setup {
            dir: dir.clone(),
            workers: o.workers,
            bin_dir: bin_dir()?,
            pin,
        };
        let wrk = Wrk::new(wrk, &dir)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let client = login::client()?;
        Ok(Harness {
            dir,
            setup,
            wrk,
            rt,
            client,
        })
    }
}

/// Where this process's sibling binaries are (`target/release` when run from there).
pub fn bin_dir() -> Result<PathBuf, String> {
    std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "no directory for the running binary".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_metric_line() {
        let page = "# HELP x\noneaccess_gateway_jwks_refreshes_total 3\nother 1\n";
        assert_eq!(
            metric(page, "oneaccess_gateway_jwks_refreshes_total"),
            Some(3.0)
        );
        assert_eq!(metric(page, "oneaccess_gateway_jwks"), None);
    }
}
