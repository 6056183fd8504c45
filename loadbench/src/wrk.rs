//! Load from `wrk`: one Lua script (written next to the run) reports the
//! percentiles as one JSON line, and can pace each connection (for a fixed rate)
//! or give each request the next session cookie of a file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

const SCRIPT: &str = r#"
-- Written by oneaccess-loadbench.
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if delay_ms > 0 then
  function delay() return delay_ms end
end

local cookies_file = os.getenv("BENCH_COOKIES") or ""
if cookies_file ~= "" then
  local cookies = {}
  for line in io.lines(cookies_file) do cookies[#cookies + 1] = line end
  local threads = 0
  function setup(thread)
    threads = threads + 1
    thread:set("offset", threads * 7919)
  end
  local i = 0
  function request()
    i = i + 1
    wrk.headers["Cookie"] = cookies[((offset or 0) + i) % #cookies + 1]
    return wrk.format()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"#;

/// How to load a URL.
#[derive(Clone)]
pub struct Load {
    pub connections: u32,
    pub threads: u32,
    pub duration: Duration,
    pub headers: Vec<String>,
    /// Wait this long before each request of a connection (a paced, lower load).
    pub delay_ms: u32,
    /// A file of `Cookie` header values, one per line, used in turn.
    pub cookies: Option<PathBuf>,
}

/// What one `wrk` run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub requests: u64,
    pub rps: f64,
    /// Socket errors, timeouts and answers that were not 2xx or 3xx.
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

pub struct Wrk {
    bin: PathBuf,
    script: PathBuf,
}

impl Wrk {
    pub fn new(bin: PathBuf, dir: &Path) -> Result<Wrk, String> {
        let script = dir.join("bench.lua");
        std::fs::write(&script, SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
        Ok(Wrk { bin, script })
    }

    pub fn run(&self, url: &str, load: &Load) -> Result<Sample, String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-t")
            .arg(load.threads.min(load.connections).to_string())
            .arg("-c")
            .arg(load.connections.to_string())
            .arg("-d")
            .arg(format!("{}s", load.duration.as_secs().max(1)))
            .arg("--timeout")
            .arg("5s")
            .arg("-s")
            .arg(&self.script);
        for h in &load.headers {
            cmd.arg("-H").arg(h);
        }
        cmd.arg(url)
            .env("BENCH_DELAY_MS", load.delay_ms.to_string())
            .env(
                "BENCH_COOKIES",
                load.cookies.as_deref().unwrap_or(Path::new("")),
            );
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("BENCH_JSON "))
            .ok_or_else(|| {
                format!(
                    "wrk gave no result ({}):\n{stdout}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        parse(line)
    }
}

fn parse(line: &str) -> Result<Sample, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("wrk's result {line}: {e}"))?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let secs = n("duration_us") as f64 / 1e6;
    Ok(Sample {
        requests: n("requests"),
        rps: if secs > 0.0 {
            n("requests") as f64 / secs
        } else {
            0.0
        },
        errors: n("connect") + n("read") + n("write") + n("status") + n("timeout"),
        p50_ms: n("p50_us") as f64 / 1000.0,
        p99_ms: n("p99_us") as f64 / 1000.0,
        p999_ms: n("p999_us") as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_script_line() {
        let s = parse(r#"{"requests":2000,"duration_us":2000000,"connect":1,"read":0,"write":0,"status":3,"timeout":0,"p50_us":250,"p99_us":1200,"p999_us":4000,"max_us":9000}"#).unwrap();
        assert_eq!(s.requests, 2000);
        assert!((s.rps - 1000.0).abs() < 1e-9);
        assert_eq!(s.errors, 4);
        assert!((s.p99_ms - 1.2).abs() < 1e-9);
    }
}
