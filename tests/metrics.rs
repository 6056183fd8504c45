//! The admin listener's `/metrics` as a real Prometheus reads it: after a login
//! with a token refresh, a policy denial, a failed callback, a hostile event and
//! a logout, `promtool check metrics` (Debian's `prometheus` package, installed
//! by `scripts/setup.sh`) finds nothing to complain about, and the Grafana
//! dashboard in `deploy/grafana/` asks only for metrics and labels that this
//! output has, so neither can drift from the code.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use oneaccess_sim::SimConfig;

const ROUTES: &str = r#"
[[route]]
path = "/bob-only"
upstream = "{upstream}"
protocol = "oidc"
policy = { users = ["bob"] }
"#;

/// The samples of an exposition: metric name -> the label names seen on it.
fn samples(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).expect("a sample line");
        let labels = out.entry(line[..name_end].to_string()).or_default();
        if let Some(body) = line[name_end..].strip_prefix('{') {
            let body = &body[..body.rfind('}').expect("closing brace")];
            for pair in body.split("\",") {
                labels.insert(pair.split('=').next().expect("label").to_string());
            }
        }
    }
    out
}

/// What a dashboard query asks of one metric: its name and the labels it
/// selects on or groups by.
fn queried(expr: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("oneaccess_gateway_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_string();
        let mut labels = BTreeSet::new();
        if let Some(sel) = tail[end..].strip_prefix('{') {
            let sel = &sel[..sel.find('}').expect("selector end")];
            for m in sel.split(',') {
                let label = m.split(['=', '!', '~']).next().expect("label").trim();
                labels.insert(label.to_string());
            }
        }
        out.push((name, labels));
        rest = &tail[end..];
    }
    // `by (a, b)` groups on labels of every metric of the query.
    let mut grouped = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("by (") {
        let list = &rest[at + 4..];
        let list = &list[..list.find(')').expect("by list end")];
        grouped.extend(list.split(',').map(|l| l.trim().to_string()));
        rest = &rest[at + 4..];
    }
    for (_, labels) in &mut out {
        labels.extend(grouped.iter().cloned());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn promtool_accepts_the_metrics_and_the_dashboard_matches_them() {
    // Tokens due at once: the landing request after the login refreshes them.
    let sim = oneaccess_sim::Sim::start(SimConfig {
        access_token_ttl: Duration::from_secs(100),
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let echo = oneaccess_sim::echo::Echo::start().await.expect("echo");
    let (port, admin) = (free_port(), free_port());
    let provider = "refresh_margin_seconds = 100\n\
        [provider.events]\n\
        token = { value = \"events-token\", dev = true }";
    let text = config_text_with(
        port,
        &sim,
        &echo,
        "mode = \"server\"\nstore = \"memory\"",
        provider,
        ROUTES,
    )
    .replacen(
        "threads = 2",
        &format!("threads = 2\nadmin_listen = \"127.0.0.1:{admin}\""),
        1,
    );
    let _gw = start_gateway(&text).await;
    let url = |p: &str| format!("http://localhost:{port}{p}");
    let b = Browser::new();

    // A login; its landing request refreshes the tokens.
    assert_eq!(b.login(&url("/app"), USER).await.status, 200);
    // Denied by the route's policy.
    assert_eq!(
        b.get_with(&url("/bob-only/x"), &[("accept", "application/json")])
            .await
            .status,
        403
    );
    // A callback that names no login.
    assert_eq!(
        b.get(&url("/_sso/callback?code=x&state=y")).await.status,
        400
    );
    // An event without the token.
    let hostile = Browser::new()
        .request(
            reqwest::Method::POST,
            &url("/_sso/oneaccess/events"),
            &[("content-type", "application/json")],
            None,
        )
        .await;
    assert_eq!(hostile.status, 401);
    // The logout.
    let out = b.log_out(&url("/_sso/logout")).await;
    assert_eq!(out.status, 302);

    let wanted = [
        "oneaccess_gateway_logins_completed_total{protocol=\"oidc\"} 1",
        "oneaccess_gateway_logins_failed_total{protocol=\"unknown\",reason=\"unknown_state\"} 1",
        "oneaccess_gateway_revocations_total{cause=\"logout\"} 1",
        "oneaccess_gateway_events_total{type=\"unknown\",outcome=\"bad_token\"} 1",
        "oneaccess_gateway_requests_total{route=\"/bob-only\",status=\"403\",outcome=\"denied\"} 1",
        "oneaccess_gateway_requests_total{route=\"none\",status=\"302\",outcome=\"logout\"} 1",
        "oneaccess_gateway_idp_reachable 1",
        "oneaccess_gateway_revocations_in_memory 1",
        "oneaccess_gateway_build_info{version=\"0.1.0\"} 1",
    ];
    let body = metrics_with(admin, &wanted).await;
    let got = samples(&body);
    // The refresh went to the token endpoint a second time; the store and the
    // gateway's own time were measured.
    let count = |line_start: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        count("oneaccess_gateway_idp_request_duration_seconds_count{endpoint=\"token endpoint\"}")
            >= 2.0,
        "{body}"
    );
    assert!(count("oneaccess_gateway_added_latency_seconds_count{route=\"/\"}") >= 2.0);
    assert!(
        count("oneaccess_gateway_session_store_duration_seconds_count{operation=\"load\"}") >= 1.0
    );
    // Server mode keeps copies: every session read here went to the store,
    // each token being due for refresh (a copy never answers one).
    assert!(
        count("oneaccess_gateway_session_copies_total{result=\"miss\"}") >= 1.0,
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l == "oneaccess_gateway_session_copies_total{result=\"hit\"} 0"),
        "{body}"
    );

    // promtool reads it as Prometheus would, and lints it.
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package, installed by scripts/setup.sh)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let verdict = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&verdict.stdout),
        String::from_utf8_lossy(&verdict.stderr)
    );
    assert!(
        verdict.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{body}"
    );

    // Every metric and label the dashboard asks for is in this output. Prometheus
    // adds `instance` and `job` when it scrapes; `le` is on every bucket.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/oneaccess-gateway.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    let mut exprs: Vec<String> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(q) = var["query"]["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    let mut problems = Vec::new();
    for expr in &exprs {
        let asked = queried(expr);
        assert!(!asked.is_empty(), "no gateway metric in `{expr}`");
        for (name, labels) in asked {
            let Some(has) = got.get(&name) else {
                problems.push(format!("{name} is not in /metrics (`{expr}`)"));
                continue;
            };
            for label in labels {
                if !["instance", "job"].contains(&label.as_str()) && !has.contains(&label) {
                    problems.push(format!("{name} has no label {label} (`{expr}`)"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
