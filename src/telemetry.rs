//! The log subscriber: `tracing` to stderr, as text or one JSON object a line,
//! filtered by `RUST_LOG` or else `[log] level` (default `info`). Pingora's own
//! `log` records are bridged in. No token, code, ticket or cookie value is ever
//! passed to a log macro: grep for `expose()` to audit, and `tests/logs.rs` greps
//! a whole login's logs for the values it used.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the subscriber with the defaults (text, `info`); later calls (tests)
/// are no-ops.
pub fn init() {
    init_with(&LogSettings {
        format: LogFormat::Text,
        level: "info".into(),
        access_log: true,
    });
}

/// Pingora's debug records print request headers and response body bytes (an
/// app's answer may hold a token): its crates stay at `info` unless the filter
/// names them itself.
fn filter_text(wanted: &str) -> String {
    if wanted.contains("pingora") {
        wanted.to_string()
    } else {
        format!("{wanted},pingora_core=info,pingora_proxy=info,pingora_http=info")
    }
}

/// Installs the subscriber the configuration asks for.
pub fn init_with(log: &LogSettings) {
    let wanted = std::env::var("RUST_LOG").unwrap_or_else(|_| log.level.clone());
    let filter = EnvFilter::try_new(filter_text(&wanted))
        .unwrap_or_else(|_| EnvFilter::new(filter_text("info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        // Colour only for a person at a terminal, not in journald or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        // Span fields (the request id of an SSO endpoint) go into each line.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
