//! The log subscriber: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//! Pingora's own `log` records are bridged in. No token, code, ticket or cookie
//! value is ever passed to a log macro: grep for `expose()` to audit.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber once; later calls (tests) are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(std::io::stderr)
        .try_init();
}
