//! The benchmark itself, run briefly (`--quick`) on the debug binaries: every
//! server starts, every login works, every target's requests reach the app, the
//! gateway fetches no JWKS after its warm-up, and the report has every table and
//! its charts.
//! Its figures are not checked: a debug build on a shared machine says nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

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

#[test]
fn a_quick_run_measures_every_target_and_writes_the_report() {
    let harness = PathBuf::from(env!("CARGO_BIN_EXE_oneaccess-loadbench"));
    sibling_binaries(harness.parent().expect("bin dir"));
    let out = std::env::temp_dir().join(format!("loadbench-smoke-{}.md", std::process::id()));
    let run = Command::new(&harness)
        .arg("--quick")
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run oneaccess-loadbench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    // The charts beside the report (their drawing is tested in the harness's own
    // unit tests): one file per chart, linked from the report.
    let stem = out.file_stem().unwrap().to_string_lossy().into_owned();
    let mut charts = Vec::new();
    for name in [
        "throughput-rps",
        "throughput-cpu",
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
    for row in [
        "upstream app, direct",
        "nginx proxy_pass",
        "Apache + mod_auth_openidc",
        "gateway, public route",
        "gateway, OIDC session cookie",
        "gateway, Redis session",
        "gateway, cookie sessions",
        "gateway, Redis sessions",
    ] {
        assert!(report.contains(row), "no row {row:?} in:\n{report}");
    }
    assert!(
        report.contains("JWKS fetches by the gateway after the warm-up: 0."),
        "{report}"
    );
    assert!(!report.contains("## Problems"), "{report}");
    for (file, svg) in charts {
        assert!(svg.starts_with("<svg "), "{file}: {svg:.200}");
        assert!(svg.trim_end().ends_with("</svg>"), "{file}");
        assert!(
            report.contains(&format!("]({file})")),
            "{file} not linked: {report}"
        );
    }
}
