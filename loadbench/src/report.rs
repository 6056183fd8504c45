//! The report: Markdown tables with the machine they were measured on, the
//! targets met or missed, and the problems that make a run fail.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::charts;

#[derive(Default)]
pub struct Report {
    /// Paragraphs after the machine's: how the run was made (pinned or not).
    preamble: Vec<String>,
    /// The CPUs the run may use, counted before `--pin` narrowed the harness's
    /// own (0: count them when writing).
    pub cpus: usize,
    sections: Vec<String>,
    /// Lines of the "targets" section: (met, text).
    targets: Vec<(bool, String)>,
    /// What makes the run fail: errors, logins that failed, JWKS fetches.
    pub problems: Vec<String>,
}

impl Report {
    pub fn preamble(&mut self, text: String) {
        println!("{text}");
        self.preamble.push(text);
    }

    pub fn section(&mut self, title: &str, body: String) {
        println!("\n## {title}\n\n{body}");
        self.sections.push(format!("## {title}\n\n{body}"));
    }

    pub fn target(&mut self, met: bool, text: String) {
        println!("{} {text}", if met { "met:   " } else { "MISSED:" });
        self.targets.push((met, text));
    }

    pub fn problem(&mut self, text: String) {
        eprintln!("problem: {text}");
        self.problems.push(text);
    }

    /// Writes the whole report to `path`, and its charts beside it (see
    /// [`charts`]), linked from its end.
    pub fn write(&self, path: &Path, command: &str) -> Result<(), String> {
        let mut out = String::new();
        let _ = writeln!(out, "# Load benchmark\n");
        let _ = writeln!(out, "Command: `{command}`\n");
        let _ = writeln!(out, "{}\n", machine(self.cpus));
        for p in &self.preamble {
            let _ = writeln!(out, "{p}\n");
        }
        if !self.targets.is_empty() {
            let _ = writeln!(out, "## Targets\n");
            for (met, t) in &self.targets {
                let _ = writeln!(out, "- {} {t}", if *met { "met:" } else { "**missed:**" });
            }
            out.push('\n');
        }
        for s in &self.sections {
            let _ = writeln!(out, "{s}");
        }
        if !self.problems.is_empty() {
            let _ = writeln!(out, "## Problems\n");
            for p in &self.problems {
                let _ = writeln!(out, "- {p}");
            }
        }
        let charts = charts::charts(&out);
        if !charts.is_empty() {
            if !out.ends_with("\n\n") {
                out.push('\n');
            }
            let _ = writeln!(out, "{}", charts::section(path, &charts).trim_end());
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(path, out).map_err(|e| format!("{}: {e}", path.display()))?;
        charts::write_beside(path, &charts).map(|_| ())
    }
}

/// A Markdown table.
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", head.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        head.iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out
}

/// Where and with what the figures were measured.
fn machine(cpus: usize) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = if cpus > 0 {
        cpus
    } else {
        std::thread::available_parallelism().map_or(0, |n| n.get())
    };
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or("?".into(), |kib| {
            format!("{:.0} GiB", kib as f64 / 1048576.0)
        });
    let kernel = run(&["uname", "-r"]);
    let date = run(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]);
    let versions = [
        ("wrk", run(&["wrk", "-v"])),
        ("nginx", run(&["nginx", "-v"])),
        ("apache2", run(&["apache2", "-v"])),
        (
            "mod_auth_openidc",
            run(&[
                "dpkg-query",
                "-W",
                "-f",
                "${Version}",
                "libapache2-mod-auth-openidc",
            ]),
        ),
        (
            "mod_auth_cas",
            run(&[
                "dpkg-query",
                "-W",
                "-f",
                "${Version}",
                "libapache2-mod-auth-cas",
            ]),
        ),
        ("redis", run(&["redis-server", "--version"])),
    ];
    let mut out = format!(
        "Machine: {cpus} CPUs ({model}), {mem}, Linux {kernel}, {date}. Everything (load \
         generator, proxies, upstream, simulator) shares these CPUs, so compare the ratios \
         within a run, not absolute figures across runs.\n\nVersions:"
    );
    for (name, v) in versions {
        let _ = write!(out, " {name} `{v}`;");
    }
    out.pop();
    out.push('.');
    out
}

/// The first line a command prints (stdout, else stderr), or `?`.
fn run(cmd: &[&str]) -> String {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .ok()
        .and_then(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_table() {
        let t = table(&["a", "b"], &[vec!["x".into(), "1".into()]]);
        assert_eq!(t, "| a | b |\n|---|---:|\n| x | 1 |\n");
    }

    #[test]
    fn writes_the_charts_beside_the_report_and_links_them() {
        let dir = std::env::temp_dir().join(format!("loadbench-report-{}", std::process::id()));
        let path = dir.join("run.md");
        let mut r = Report::default();
        let head = [
            "target",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "CPU µs/req",
        ];
        let row = |name: &str, rps: &str| {
            [name, rps, "2.50", "8.05", "18.50", "50.5"]
                .map(String::from)
                .to_vec()
        };
        r.section(
            "Throughput",
            format!(
                "wrk.\n\n{}",
                table(&head, &[row("nginx", "37353"), row("gateway", "23171")])
            ),
        );
        r.problem("one".into());
        r.write(&path, "oneaccess-loadbench").unwrap();

        let md = std::fs::read_to_string(&path).unwrap();
        assert!(
            md.ends_with(
                "- one\n\n## Charts\n\n\
                 ![Throughput: requests per second (higher is better)](run-throughput-rps.svg)\n\n\
                 ![Throughput: the proxy's CPU per request (lower is better)](run-throughput-cpu.svg)\n\n\
                 ![Throughput: latency at full load (lower is better)](run-throughput-latency.svg)\n"
            ),
            "{md}"
        );
        for name in ["throughput-rps", "throughput-cpu", "throughput-latency"] {
            let svg = std::fs::read_to_string(dir.join(format!("run-{name}.svg"))).unwrap();
            assert!(svg.starts_with("<svg "), "{svg:.100}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
