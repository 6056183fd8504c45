//! Turns the TOML text into a runtime `Config`, collecting EVERY problem with its
//! TOML path instead of stopping at the first. Reads secrets and resolves upstream
//! addresses, so that the request path never meets a config error.

use std::path::Path;
#[cfg(test)]
use std::time::Duration; // for `tests`, which takes its names from `super::*`

use serde::de::DeserializeOwned;

use super::file::{LogFile, ProviderFile, RouteFile, SecretFile, ServerFile, SessionFile};
use super::runtime::*;
use crate::error::{ConfigErrors, ConfigProblem};
use crate::secret::Secret;

#[cfg(test)]
pub(crate) use provider::DEFAULT_USERINFO_CLAIMS;

/// Reads an environment variable. A parameter, so tests need not touch the process
/// environment.
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

struct Collector {
    problems: Vec<ConfigProblem>,
}

impl Collector {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Deserializes one section on its own, so that a typo in one route does not
    /// hide the problems of the others.
    fn section<T: DeserializeOwned + Default>(&mut self, path: &str, v: Option<toml::Value>) -> T {
        match v {
            None => T::default(),
            Some(v) => match v.try_into::<T>() {
                Ok(t) => t,
                Err(e) => {
                    self.add(path, e.message().trim().to_string());
                    T::default()
                }
            },
        }
    }
}

/// Parses and validates a whole configuration file. `base_dir` anchors relative
/// secret-file paths.
pub fn parse(text: &str, base_dir: &Path, env: EnvLookup) -> Result<Config, ConfigErrors> {
    let mut c = Collector {
        problems: Vec::new(),
    };
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let msg = e.message().trim().to_string();
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!("line {line}")
                })
                .unwrap_or_else(|| "(file)".into());
            return Err(ConfigErrors(vec![ConfigProblem {
                path: at,
                message: format!("not valid TOML: {msg}"),
            }]));
        }
    };

    let server_file: ServerFile = c.section("server", table.remove("server"));
    let session_file: SessionFile = c.section("session", table.remove("session"));
    let provider_file: Option<ProviderFile> = table
        .remove("provider")
        .map(|v| c.section("provider", Some(v)));
    let route_files: Vec<(usize, RouteFile)> = match table.remove("route") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i, c.section(&format!("route[{i}]"), Some(v))))
            .collect(),
        Some(_) => {
            c.add("route", "must be an array of tables: write [[route]]");
            Vec::new()
        }
    };
    let log_file: Option<LogFile> = table.remove("log").map(|v| c.section("log", Some(v)));
    for key in table.keys() {
        c.add(
            key.clone(),
            "unknown section (expected server, session, provider, route, log)",
        );
    }
    let log = serving::log_settings(&mut c, log_file);

    let server = server::server_settings(&mut c, server_file, base_dir, env);
    let session = session::session_settings(&mut c, session_file, server.tls, base_dir, env);
    let provider =
        provider_file.map(|p| provider::provider_settings(&mut c, p, &server.paths, base_dir, env));
    let route_files_cas: Vec<(usize, Option<Vec<String>>)> = route_files
        .iter()
        .filter(|(_, f)| f.protocol.as_deref() == Some("cas"))
        .map(|(i, f)| (*i, f.cas.as_ref().and_then(|c| c.slo_networks.clone())))
        .collect();
    // Read from the files: a route whose client is missing is not built, but
    // still needs a provider.
    let any_protected = route_files
        .iter()
        .any(|(_, f)| matches!(f.protocol.as_deref(), Some("oidc" | "oauth2" | "cas")));
    let no_routes = route_files.is_empty();
    let routes = routes::route_specs(
        &mut c,
        route_files,
        &server,
        provider.as_ref(),
        base_dir,
        env,
    );

    if no_routes {
        c.add("route", "at least one [[route]] is needed");
    }
    if session.minimal {
        for r in routes.iter().filter(|r| r.pass_token.is_some()) {
            c.add(
                format!("route[{}].pass_token", r.index),
                "session.minimal keeps no tokens to pass",
            );
        }
    }
    let cas_slo_networks = routes::cas_slo_networks(&mut c, &route_files_cas);
    if provider.is_none() && any_protected {
        c.add(
            "provider",
            "a [provider] section is needed by the routes that are not public",
        );
    }

    if !c.problems.is_empty() {
        return Err(ConfigErrors(c.problems));
    }
    Ok(Config {
        server,
        session,
        provider,
        routes,
        log,
        cas_slo_networks,
    })
}

/// Reads a secret from the place its table names, reporting problems under `path`.
fn read_secret(
    c: &mut Collector,
    path: &str,
    s: &SecretFile,
    base_dir: &Path,
    env: EnvLookup,
) -> Option<Secret<String>> {
    let given = [s.env.is_some(), s.file.is_some(), s.value.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given != 1 {
        c.add(path, "give exactly one of `env`, `file` or `value`");
        return None;
    }
    if let Some(var) = &s.env {
        return match env(var) {
            Some(v) if !v.trim().is_empty() => Some(Secret::new(v)),
            _ => {
                c.add(
                    format!("{path}.env"),
                    format!("environment variable `{var}` is not set or empty"),
                );
                None
            }
        };
    }
    if let Some(file) = &s.file {
        let p = base_dir.join(file);
        return match std::fs::read_to_string(&p) {
            Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim_end().to_string())),
            Ok(_) => {
                c.add(
                    format!("{path}.file"),
                    format!("`{}` is empty", p.display()),
                );
                None
            }
            Err(e) => {
                c.add(
                    format!("{path}.file"),
                    format!("cannot read `{}`: {e}", p.display()),
                );
                None
            }
        };
    }
    let value = s.value.clone().unwrap_or_default();
    if !s.dev {
        c.add(
            format!("{path}.value"),
            "a secret written in the TOML needs `dev = true`; use `env` or `file` in production",
        );
        return None;
    }
    Some(Secret::new(value))
}

mod events;
mod headers;
mod policy;
mod provider;
mod redis;
mod routes;
mod server;
mod serving;
mod session;
#[cfg(test)]
mod tests;
mod tokens;
