//! The dependency rules of `src/`, checked on the source text so that a change
//! that breaks them fails here: only `proxy/` (and `main.rs`) speaks Pingora;
//! `auth`, `session`, `front_door`, `config`, `policy` and `identity` know
//! nothing of the gateway or the proxy above them; `error.rs` imports nothing
//! of the crate.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `src/` file (relative path, text) whose path starts with one of
/// `under` and that mentions one of `names` in code (not in a comment).
fn offenders(under: &[&str], names: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut found = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root)
            .expect("under root")
            .display()
            .to_string();
        if !under.iter().any(|u| rel.starts_with(u)) {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if names.iter().any(|name| code.contains(name)) {
                found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn only_the_proxy_speaks_pingora() {
    let all_but_proxy = [
        "src/assertion.rs",
        "src/auth",
        "src/config",
        "src/error.rs",
        "src/front_door",
        "src/gateway",
        "src/identity",
        "src/lib.rs",
        "src/metrics.rs",
        "src/policy",
        "src/reply.rs",
        "src/route.rs",
        "src/secret.rs",
        "src/session",
        "src/telemetry.rs",
    ];
    let found = offenders(&all_but_proxy, &["pingora::", "use pingora"]);
    assert!(
        found.is_empty(),
        "Pingora outside src/proxy:\n{}",
        found.join("\n")
    );
}

#[test]
fn lower_layers_do_not_reach_up() {
    let lower = [
        "src/auth",
        "src/session",
        "src/front_door",
        "src/config",
        "src/policy",
        "src/identity",
        "src/route.rs",
        "src/metrics.rs",
        "src/secret.rs",
    ];
    let found = offenders(&lower, &["crate::gateway", "crate::proxy"]);
    assert!(
        found.is_empty(),
        "a lower layer imports the gateway or the proxy:\n{}",
        found.join("\n")
    );
    let found = offenders(
        &[
            "src/session",
            "src/front_door",
            "src/policy",
            "src/identity",
        ],
        &["crate::auth"],
    );
    assert!(
        found.is_empty(),
        "a protocol-free layer imports auth:\n{}",
        found.join("\n")
    );
    let found = offenders(&["src/error.rs"], &["crate::"]);
    assert!(
        found.is_empty(),
        "error.rs imports the crate:\n{}",
        found.join("\n")
    );
    let found = offenders(
        &["src/policy", "src/identity/claims.rs"],
        &["crate::config"],
    );
    assert!(
        found.is_empty(),
        "policy or the claim model imports config:\n{}",
        found.join("\n")
    );
}
