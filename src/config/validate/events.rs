//! `[provider.events]` (the receiver of OneAccess's user-change events) and
//! `provider.login_name_claims` (how a session is found by the login name those
//! events name).

use std::path::Path;
use std::time::Duration;

use super::{read_secret, Collector, EnvLookup};
use crate::config::file::{EventsFile, LoginNameClaimsFile, SecretFile};
use crate::config::runtime::{EventAction, EventSettings, IvAt, LoginNameClaims, SsoPaths};
use crate::secret::Secret;

/// OneAccess's console takes signature and encryption keys of exactly this many
/// characters (AES-128 for encryption).
const KEY_CHARS: usize = 16;

pub(super) fn login_name_claims(
    c: &mut Collector,
    f: Option<&LoginNameClaimsFile>,
) -> LoginNameClaims {
    let mut claims = LoginNameClaims::default();
    let Some(f) = f else { return claims };
    for (name, given, slot) in [
        ("oidc", &f.oidc, &mut claims.oidc),
        ("oauth2", &f.oauth2, &mut claims.oauth2),
        ("cas", &f.cas, &mut claims.cas),
    ] {
        if let Some(v) = given {
            if v.trim().is_empty() {
                c.add(
                    format!("provider.login_name_claims.{name}"),
                    "must name a claim",
                );
            } else {
                *slot = v.trim().to_string();
            }
        }
    }
    claims
}

pub(super) fn event_settings(
    c: &mut Collector,
    f: &EventsFile,
    paths: &SsoPaths,
    base_dir: &Path,
    env: EnvLookup,
) -> Option<EventSettings> {
    let at = |field: &str| format!("provider.events.{field}");
    let sso_prefix = paths.prefix.as_str();
    let path = f
        .path
        .clone()
        .unwrap_or_else(|| format!("{sso_prefix}/oneaccess/events"));
    let under = path
        .strip_prefix(sso_prefix)
        .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1);
    if !under || path.contains(['?', '#', '%', ';', ' ']) || path.contains("/.") {
        c.add(
            at("path"),
            format!("must be a plain path under server.sso_path_prefix (`{sso_prefix}/…`)"),
        );
    }
    let taken = [
        &paths.callback,
        &paths.cas_callback,
        &paths.backchannel_logout,
        &paths.logout,
        &paths.logged_out,
        &paths.jwks,
        &paths.forward_auth,
        &paths.forward_auth_redirect,
        &paths.start,
    ];
    if taken.contains(&&path) {
        c.add(at("path"), "is one of the gateway's other endpoints");
    }
    let token = match &f.token {
        Some(s) => read_secret(c, &at("token"), s, base_dir, env),
        None => {
            c.add(
                at("token"),
                "is required: the Security Token set in the OneAccess console",
            );
            None
        }
    };
    let key = |c: &mut Collector, name: &str, s: &Option<SecretFile>| -> Option<Secret<String>> {
        let k = read_secret(c, &at(name), s.as_ref()?, base_dir, env)?;
        if k.expose().chars().count() != KEY_CHARS {
            c.add(
                at(name),
                format!("must be exactly {KEY_CHARS} characters, as the OneAccess console sets it"),
            );
        }
        Some(k)
    };
    let signature_key = key(c, "signature_key", &f.signature_key);
    let encryption_key = key(c, "encryption_key", &f.encryption_key);
    let layout = f.encryption.as_ref();
    let iv_bytes = layout.and_then(|l| l.iv_bytes).unwrap_or(12);
    if iv_bytes != 12 && iv_bytes != 16 {
        c.add(at("encryption.iv_bytes"), "must be 12 or 16");
    }
    let iv_at = match layout.and_then(|l| l.iv_at.as_deref()) {
        None | Some("start") => IvAt::Start,
        Some("end") => IvAt::End,
        Some(other) => {
            c.add(
                at("encryption.iv_at"),
                format!("`{other}` is not `start` or `end`"),
            );
            IvAt::Start
        }
    };
    let window = f.window_seconds.unwrap_or(300);
    if !(10..=3600).contains(&window) {
        c.add(at("window_seconds"), "must be between 10 and 3600");
    }
    let max_body = f.max_body_bytes.unwrap_or(65_536);
    if !(1024..=1 << 20).contains(&max_body) {
        c.add(at("max_body_bytes"), "must be between 1024 and 1048576");
    }
    let on_disable = action(c, &at("on_disable"), f.on_disable.as_deref());
    let on_delete = action(c, &at("on_delete"), f.on_delete.as_deref());
    Some(EventSettings {
        path,
        token: token?,
        signature_key,
        encryption_key,
        iv_bytes,
        iv_at,
        window: Duration::from_secs(window),
        max_body,
        on_disable,
        on_delete,
    })
}

fn action(c: &mut Collector, path: &str, given: Option<&str>) -> EventAction {
    match given {
        None | Some("revoke") => EventAction::Revoke,
        Some("ignore") => EventAction::Ignore,
        Some(other) => {
            c.add(path, format!("`{other}` is not `revoke` or `ignore`"));
            EventAction::Revoke
        }
    }
}
