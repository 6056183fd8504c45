//! `[session]`: the session cookie, its keys and lifetimes, the session mode and
//! where sessions are stored.

use std::path::Path;
use std::time::Duration;

use base64::Engine;

use super::{read_secret, Collector, EnvLookup};
use crate::config::file::SessionFile;
use crate::config::runtime::{SessionMode, SessionSettings, StoreSettings};
use crate::secret::Secret;
use crate::session::record::RecordFormat;

/// Server-mode sessions each worker thread keeps a copy of, by default: the
/// users active within half a minute on one worker of a busy gateway, at a few
/// hundred bytes to a few KiB each (the tokens make the most of it).
const DEFAULT_CACHE_ENTRIES: usize = 1024;
const MAX_CACHE_ENTRIES: usize = 1_000_000;

pub(super) fn session_settings(
    c: &mut Collector,
    f: SessionFile,
    tls: bool,
    base_dir: &Path,
    env: EnvLookup,
) -> SessionSettings {
    let base_name = f
        .cookie_name
        .clone()
        .unwrap_or_else(|| "oag_session".into());
    if base_name.is_empty()
        || base_name.len() > 48
        || !base_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        c.add(
            "session.cookie_name",
            "must be 1 to 48 letters, digits, `_` and `-`",
        );
    }
    // `__Host-` makes the browser refuse the cookie unless it is Secure, host-only
    // and Path=/, so a sibling subdomain cannot plant or shadow it.
    let host_prefix = if tls { "__Host-" } else { "" };
    let keys = {
        let mut keys = Vec::new();
        if f.keys.is_empty() {
            c.add(
                "session.keys",
                "at least one 32-byte key is needed (e.g. keys = [{ env = \"GATEWAY_COOKIE_KEY\" }]; make one with `openssl rand -base64 32`)",
            );
        }
        for (i, k) in f.keys.iter().enumerate() {
            let path = format!("session.keys[{i}]");
            if let Some(text) = read_secret(c, &path, k, base_dir, env) {
                match decode_key(text.expose().trim()) {
                    Some(key) => keys.push(Secret::new(key)),
                    None => c.add(path, "must be 32 bytes, base64-encoded"),
                }
            }
        }
        keys
    };
    let lifetime = f.lifetime_seconds.unwrap_or(8 * 3600);
    if lifetime < 60 {
        c.add("session.lifetime_seconds", "must be at least 60");
    }
    let pending_ttl = f.pending_login_ttl_seconds.unwrap_or(600);
    if !(30..=3600).contains(&pending_ttl) {
        c.add(
            "session.pending_login_ttl_seconds",
            "must be between 30 and 3600",
        );
    }
    let max_pending = f.max_pending_logins.unwrap_or(3);
    if !(1..=10).contains(&max_pending) {
        c.add("session.max_pending_logins", "must be between 1 and 10");
    }
    let mode = match f.mode.as_deref() {
        None | Some("cookie") => SessionMode::Cookie,
        Some("server") => SessionMode::Server,
        Some(other) => {
            c.add(
                "session.mode",
                format!("`{other}` is not `cookie` or `server`"),
            );
            SessionMode::Cookie
        }
    };
    let idle_timeout = match f.idle_timeout_seconds {
        None | Some(0) => None,
        Some(s) if s < 60 => {
            c.add(
                "session.idle_timeout_seconds",
                "must be 0 (off) or at least 60",
            );
            None
        }
        Some(s) => Some(Duration::from_secs(s)),
    };
    if idle_timeout.is_some_and(|i| i.as_secs() >= lifetime) {
        c.add(
            "session.idle_timeout_seconds",
            "must be shorter than lifetime_seconds",
        );
    }
    let record_format = match f.record_format.as_deref() {
        None | Some("binary") => RecordFormat::Binary,
        Some("json") => RecordFormat::Json,
        Some(other) => {
            c.add(
                "session.record_format",
                format!("`{other}` is not `binary` or `json`"),
            );
            RecordFormat::Binary
        }
    };
    let cache_entries = f.cache_entries.unwrap_or(DEFAULT_CACHE_ENTRIES);
    if cache_entries > MAX_CACHE_ENTRIES {
        c.add(
            "session.cache_entries",
            format!("must be between 0 and {MAX_CACHE_ENTRIES}"),
        );
    }
    if f.cache_entries.is_some() && mode != SessionMode::Server {
        c.add(
            "session.cache_entries",
            "is for mode = \"server\" only (a cookie-mode session is read from its cookie)",
        );
    }
    let store = match f.store.as_deref() {
        None | Some("embedded" | "memory") => {
            super::redis::unused_redis_settings(c, &f);
            if f.store.as_deref() == Some("memory") {
                StoreSettings::Memory
            } else {
                StoreSettings::Embedded {
                    dir: state_dir(f.state_dir.as_deref(), base_dir, env),
                }
            }
        }
        Some("redis") => {
            StoreSettings::Redis(Box::new(super::redis::redis_settings(c, &f, base_dir, env)))
        }
        Some(other) => {
            c.add(
                "session.store",
                format!("`{other}` is not `embedded`, `memory` or `redis`"),
            );
            StoreSettings::Memory
        }
    };
    SessionSettings {
        minimal: f.minimal,
        record_format,
        cache_entries,
        mode,
        idle_timeout,
        store,
        cookie_name: format!("{host_prefix}{base_name}"),
        family_prefix: format!("{host_prefix}{base_name}_"),
        pending_prefix: format!("{host_prefix}{base_name}_login_"),
        csrf_cookie: format!("{host_prefix}{base_name}_csrf"),
        cas_gateway_cookie: format!("{host_prefix}{base_name}_casgw"),
        secure: tls,
        lifetime: Duration::from_secs(lifetime),
        keys,
        pending_ttl: Duration::from_secs(pending_ttl),
        max_pending,
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(text).ok())
        .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
}

/// The embedded store's directory: `state_dir` (relative to the config file),
/// else systemd's `$STATE_DIRECTORY` (its first entry), else `state` in the
/// working directory.
fn state_dir(given: Option<&str>, base_dir: &Path, env: EnvLookup) -> std::path::PathBuf {
    if let Some(d) = given {
        return base_dir.join(d);
    }
    match env("STATE_DIRECTORY") {
        Some(dirs) if !dirs.is_empty() => {
            std::path::PathBuf::from(dirs.split(':').next().unwrap_or(&dirs))
        }
        _ => std::path::PathBuf::from("state"),
    }
}
