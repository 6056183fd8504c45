//! Configuration in three types: `file` (the TOML as written), `validate` (every
//! problem with its path), `runtime` (ready to use).

pub mod file;
pub mod runtime;
pub mod validate;

use std::path::Path;

pub use runtime::*;
pub use validate::parse;

/// Claims every session keeps, whether or not a route maps them today, so that a
/// mapping added later works for users already logged in.
pub(crate) const DEFAULT_HEADER_CLAIMS: &[&str] = &["email", "preferred_username", "name"];

use crate::error::StartupError;

/// Reads, parses and validates a configuration file, with secrets from the process
/// environment.
pub fn load(path: &Path) -> Result<Config, StartupError> {
    let text = std::fs::read_to_string(path).map_err(|source| StartupError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    Ok(parse(&text, base, &|k| std::env::var(k).ok())?)
}
