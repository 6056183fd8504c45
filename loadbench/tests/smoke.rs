//! The benchmark itself, run briefly (`--quick`) on the debug binaries: every
//! server starts, every login works (OIDC and CAS, the gateway's and Apache's),
//! every target's requests reach the app, the gateway fetches no JWKS after its
//! warm-up, and the report has every table and its charts, the Pingora floor's
//! row, each gateway row's ratio to it, and every target's CPU split and context
//! switches. Then the throughput rounds again pinned (`--pin`), and `--pin` on one
//! CPU refused; and a short soak (`--mode soak --quick`): no error, every
//! mixed-in operation done, the RSS table and its chart.
//! Its figures are not checked: a debug build on a shared machine says nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// One run at a time: two benchmarks at once would share the CPUs, and pinned
/// runs move processes.
static ONE_RUN: Mutex<()> = Mutex::new(());

/// The throughput table's rows, in order.
const THROUGHPUT_ROWS: [&str; 9] = [
    "upstream app, direct",
    "nginx proxy_pass",
    "Pingora floor",
    "Apache + mod_auth_openidc",
    "Apache + mod_auth_cas",
    "gateway, public route",
    "gateway, OIDC session cookie",
    "gateway, CAS session cookie",
    "gateway, Redis session",
];

/// The gateway's and the simulator's debug binaries, beside the harness's: built
/// here if `cargo test` did not build them (it does with `--workspace`).
fn sibling_binaries(bin_dir: &Path) {
    let missing = ["oneaccess-gateway", "oneaccess-sim"]
        .iter()
        .any(|b| !bin_dir.join(b).is_file());
    if missing {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "-p",
                "oneaccess-gateway",
                "-p",
                "oneaccess-sim",
                "--bins",
            ])
            .status()
            .expect("cargo build");
        assert!(
            status.success(),
            "cannot build the gateway and the simulator"
        );
    }
}

/// Runs the harness (`prefix` first, as `taskset`) with `args` and `--out` a
/// report of its own: its output, and the report's text (the file removed).
fn run_harness(prefix: &[&str], args: &[&str], name: &str) -> (Output, PathBuf, String) {
    let harness = PathBuf::from(env!("CARGO_BIN_EXE_oneaccess-loadbench"));
    sibling_binaries(harness.parent().expect("bin dir"));
    let out = std::env::temp_dir().join(format!("loadbench-{name}-{}.md", std::process::id()));
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&harness);
            c
        }
        None => Command::new(&harness),
    };
    let run = cmd
        .args(args)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run oneaccess-loadbench");
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    (run, out, report)
}

#[test]
fn serve_mode_prints_a_load_for_each_target_and_leaves_the_last_report_alone() {
    let harness = PathBuf::from(env!("CARGO_BIN_EXE_oneaccess-loadbench"));
    sibling_binaries(harness.parent().expect("bin dir"));
    let out = std::env::temp_dir().join(format!("loadbench-serve-{}.md", std::process::id()));
    std::fs::write(&out, "an earlier report\n").expect("write");
    // Standard input is closed: the Enter that stops the servers comes at once.
    let run = Command::new(&harness)
        .args(["--mode", "serve", "--quick", "--out"])
        .arg(&out)
        .output()
        .expect("run oneaccess-loadbench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for target in [
        "# nginx proxy_pass, no auth",
        "# Pingora floor",
        "# gateway, OIDC session cookie, 3 headers",
        "# gateway, Redis session, 3 headers",
    ] {
        assert!(stdout.contains(target), "{target} missing:\n{stdout}");
    }
    assert!(
        stdout.contains("wrk -t2 -c64 -d10s -H \"Cookie: $(cat "),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("report"),
        "an earlier report\n",
        "serve wrote over the report"
    );
    let _ = std::fs::remove_file(&out);
}

#[test]
fn a_quick_run_measures_every_target_and_writes_the_report() {
    let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let (run, out, report) = run_harness(&[], &["--quick"], "smoke");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    // The charts beside the report (their drawing is tested in the harness's own
    // unit tests): one file per chart, linked from the report.
    let stem = out.file_stem().unwrap().to_string_lossy().into_owned();
    let mut charts = Vec::new();
    for name in [
        "throughput-rps",
        "throughput-cpu",
        "throughput-cpu-split",
        "throughput-latency",
        "half-load-latency",
        "logins-rate",
        "logins-cpu",
        "capacity-rps",
        "capacity-latency",
        "capacity-memory",
    ] {
        let file = format!("{stem}-{name}.svg");
        let svg = std::fs::read_to_string(out.with_file_name(&file)).unwrap_or_default();
        let _ = std::fs::remove_file(out.with_file_name(&file));
        charts.push((file, svg));
    }
    assert!(
        run.status.success(),
        "the benchmark failed ({}):\n{stdout}\n{stderr}\n{report}",
        run.status
    );
    for section in [
        "## Throughput",
        "## Latency at half load",
        "## Logins",
        "## Capacity",
    ] {
        assert!(report.contains(section), "no {section} in:\n{report}");
    }
    for row in THROUGHPUT_ROWS
        .iter()
        .chain(&["gateway, cookie sessions", "gateway, Redis sessions"])
    {
        assert!(report.contains(row), "no row {row:?} in:\n{report}");
    }
    assert!(
        report.contains("JWKS fetches by the gateway after the warm-up: 0."),
        "{report}"
    );
    assert!(!report.contains("## Problems"), "{report}");
    assert!(report.contains("Mode: not pinned"), "{report}");
    for ratio in [
        "OIDC session rps ≥ 5× Apache + mod_auth_openidc: ",
        "CAS session rps ≥ 5× Apache + mod_auth_cas: ",
        "OIDC session cookie rps ≥ 1.0× the Pingora floor: ",
        "Redis session rps ≥ 0.9× the Pingora floor: ",
        "authenticated CPU per request ≤ 1.10× the public route's: ",
        "authenticated p99 added at half load ≤ nginx's + 1 ms: ",
        "gateway CPU per whole login ≤ 250 µs: ",
        "peak RSS ≤ 64 MiB with ",
    ] {
        assert!(report.contains(ratio), "no {ratio:?} in:\n{report}");
    }
    throughput_columns(&report);
    for (file, svg) in charts {
        assert!(svg.starts_with("<svg "), "{file}: {svg:.200}");
        assert!(svg.trim_end().ends_with("</svg>"), "{file}");
        assert!(
            report.contains(&format!("]({file})")),
            "{file} not linked: {report}"
        );
    }
}

/// The throughput table's new columns: "× floor" a ratio on the gateway's rows
/// and "—" on the others; the CPU split and the context switches numbers on
/// every row, user + system within rounding of the CPU column.
fn throughput_columns(report: &str) {
    let section = report
        .split("## Throughput")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a throughput section");
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut lines = section.lines().filter(|l| l.starts_with('|'));
    let head = cells(lines.next().expect("a table"));
    let col = |name: &str| {
        head.iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name:?} in {head:?}"))
    };
    let (floor, cpu, user, sys, switches) = (
        col("× floor"),
        col("CPU µs/req"),
        col("user µs/req"),
        col("sys µs/req"),
        col("ctx switches/req"),
    );
    let rows: Vec<Vec<String>> = lines.skip(1).map(cells).collect();
    assert_eq!(rows.len(), THROUGHPUT_ROWS.len(), "{section}");
    for (row, name) in rows.iter().zip(THROUGHPUT_ROWS) {
        assert!(row[0].starts_with(name), "{row:?} is not {name:?}");
    }
    let num = |row: &[String], i: usize| -> f64 {
        row[i]
            .trim_end_matches('×')
            .parse()
            .unwrap_or_else(|_| panic!("{:?} is not a number in {row:?}", row[i]))
    };
    for row in &rows {
        if row[0].starts_with("gateway") {
            assert!(num(row, floor) > 0.0, "{row:?}");
        } else {
            assert_eq!(row[floor], "—", "{row:?}");
        }
        let (c, u, s) = (num(row, cpu), num(row, user), num(row, sys));
        // One round (`--quick`): the medians are that round's figures, each
        // rounded to 0.1 on its own.
        assert!((u + s - c).abs() <= 0.15 + 1e-9, "{row:?}");
        assert!(c > 0.0, "no CPU read: {row:?}");
        assert!(num(row, switches) >= 0.0, "{row:?}");
    }
}

/// The throughput rounds again, pinned: each proxy on one CPU with one worker,
/// the rest on another; the report says so. With fewer than 2 CPUs, the clear
/// refusal instead.
#[test]
fn a_pinned_run_puts_each_proxy_on_a_cpu_of_its_own() {
    let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Shorter than `--quick`: the throughput rounds only, 1 s each.
    let args = [
        "--quick",
        "--pin",
        "--mode",
        "proxy",
        "--duration",
        "1",
        "--warmup",
        "1",
    ];
    let (run, _, report) = run_harness(&[], &args, "pinned");
    let stderr = String::from_utf8_lossy(&run.stderr);
    if cpus < 2 {
        assert!(!run.status.success());
        assert!(stderr.contains("--pin needs at least 2 CPUs"), "{stderr}");
        return;
    }
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the pinned run failed ({}):\n{stdout}\n{stderr}\n{report}",
        run.status
    );
    assert!(report.contains("Mode: pinned: each proxy"), "{report}");
    // The machine's CPUs, not the one the pinned harness keeps for itself.
    assert!(!report.contains("Machine: 1 CPUs"), "{report}");
    assert!(
        report.contains("1 worker thread(s)/process(es), each on CPU"),
        "{report}"
    );
    assert!(!report.contains("## Problems"), "{report}");
    throughput_columns(&report);
}

/// `--pin` where this process may use one CPU only (`taskset`): refused at once,
/// saying why, before any server starts.
#[test]
fn pin_on_one_cpu_is_a_clear_error() {
    let Some(taskset) = ["/usr/bin/taskset", "/bin/taskset"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        eprintln!("no taskset: skipped");
        return;
    };
    // The first CPU this test may use ("0-1", "2,5": the number before any - or ,).
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let first: String = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let (run, _, _) = run_harness(&[taskset, "-c", &first], &["--pin", "--quick"], "one-cpu");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--pin needs at least 2 CPUs"), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(!stdout.contains("starting the servers"), "{stdout}");
}

#[test]
fn a_quick_soak_mixes_every_operation_in_without_an_error() {
    let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let harness = PathBuf::from(env!("CARGO_BIN_EXE_oneaccess-loadbench"));
    sibling_binaries(harness.parent().expect("bin dir"));
    let out = std::env::temp_dir().join(format!("loadbench-soak-{}.md", std::process::id()));
    let run = Command::new(&harness)
        .args(["--mode", "soak", "--quick", "--out"])
        .arg(&out)
        .output()
        .expect("run oneaccess-loadbench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let chart = out.with_file_name(format!(
        "{}-soak-rss.svg",
        out.file_stem().unwrap().to_string_lossy()
    ));
    let svg = std::fs::read_to_string(&chart).unwrap_or_default();
    let _ = std::fs::remove_file(&chart);
    assert!(
        run.status.success(),
        "the soak failed ({}):\n{stdout}\n{stderr}\n{report}",
        run.status
    );
    assert!(report.contains("## Soak"), "{report}");
    assert!(!report.contains("## Problems"), "{report}");
    // Each operation was done at least once on each gateway.
    for op in [
        "fresh logins",
        "logins for the load's stretches",
        "requests past a session's refresh point",
        "refreshes made by the gateway",
        "logouts (",
        "back-channel logouts posted",
        "back-channel logouts from OneAccess",
        "ended sessions refused",
    ] {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {op}")))
            .unwrap_or_else(|| panic!("no row {op:?} in {report}"));
        let counts: Vec<u64> = row
            .trim_matches('|')
            .split('|')
            .skip(1)
            .map(|c| c.trim().parse().unwrap_or(0))
            .collect();
        assert!(counts.len() == 2 && counts.iter().all(|n| *n > 0), "{row}");
    }
    let reloads = report
        .lines()
        .find(|l| l.starts_with("| reloads"))
        .expect("a reloads row");
    assert!(!reloads.contains("| 0 /"), "{reloads}");
    assert!(
        svg.starts_with("<svg ") && svg.contains("<polyline"),
        "{svg:.200}"
    );
    assert!(report.contains("-soak-rss.svg)"), "{report}");
}
