//! The servers under test and their configuration files: the upstream app (a
//! one-worker nginx that answers a fixed page), nginx as a plain proxy, Apache
//! with mod_auth_openidc, the engine's floor (a minimal Pingora proxy, built as the
//! gateway is), the gateway (cookie sessions, and Redis sessions), Redis and the
//! OneAccess simulator. Everything listens on loopback ports of its own
//! and writes only under the run's directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::procs::{find_binary, free_port, Proc};

/// The cookie key of the benchmark's gateways (a development value).
const COOKIE_KEY: &str = "bG9hZGJlbmNoLWNvb2tpZS1rZXktbm90LTQtcHJvZCE=";

/// Where the run writes, and how many worker threads each proxy gets.
pub struct Setup {
    pub dir: PathBuf,
    pub workers: u32,
    /// The directory of the gateway's and simulator's binaries.
    pub bin_dir: PathBuf,
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
        self.nginx("upstream", port, 1, &body)
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
        self.nginx("nginx", port, self.workers, &body)
    }

    fn nginx(&self, name: &str, port: u16, workers: u32, server: &str) -> Result<Proc, String> {
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

    /// The gateway: `/` behind OIDC (with its default three identity headers),
    /// `/public` public. `redis` makes sessions server-side in that Redis. No
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
        let proc = Proc::start(name, cmd, port, &self.log(name))?;
        Ok(Gateway { proc, admin })
    }
}

impl Setup {
    /// Apache with mod_auth_openidc in front of the same app: the peer doing the
    /// gateway's work (an OIDC login, a client-cookie session, claims passed to
    /// the app as headers). Its event MPM gets as many processes as the proxies
    /// get workers.
    pub fn apache(&self, sim: &str, upstream: u16) -> Result<Apache, String> {
        let bin = find_binary("apache2", &["/usr/sbin/apache2"])?;
        let modules = Path::new("/usr/lib/apache2/modules");
        if !modules.join("mod_auth_openidc.so").is_file() {
            return Err(
                "mod_auth_openidc is not installed (apt-get install libapache2-mod-auth-openidc)"
                    .into(),
            );
        }
        let port = free_port()?;
        let d = self.dir.join("apache");
        fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        let text = APACHE_CONF
            .replace("{DIR}", &d.display().to_string())
            .replace("{MODULES}", &modules.display().to_string())
            .replace("{PORT}", &port.to_string())
            .replace("{SIM}", sim)
            .replace("{UPSTREAM}", &format!("http://127.0.0.1:{upstream}"))
            .replace("{WORKERS}", &self.workers.to_string())
            .replace("{MAX_WORKERS}", &(self.workers * 192).to_string())
            .replace("{PASSPHRASE}", "loadbench-passphrase-not-a-secret");
        let conf = self.write("apache.conf", &text)?;
        let mut cmd = Command::new(bin);
        cmd.arg("-f").arg(&conf).arg("-DFOREGROUND");
        let proc = Proc::start("apache", cmd, port, &self.log("apache"))?;
        Ok(Apache { proc })
    }
}

/// Apache's configuration: self-contained (not Debian's apache2.conf).
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
LoadModule auth_openidc_module {MODULES}/mod_auth_openidc.so
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

ProxyRequests Off
ProxyPreserveHost On
ProxyPass /oidc/callback !
# Pooled, kept-alive connections to the app.
ProxyPass / {UPSTREAM}/ keepalive=On max=192 ttl=60 retry=0 timeout=30

<Location />
    AuthType openid-connect
    Require valid-user
</Location>
"#;

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
