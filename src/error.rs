//! The crate's error types. Each module reports in its own `thiserror` enum; they
//! become HTTP answers only in `reply.rs` (`proxy/respond.rs` writes them).

use std::fmt;

/// The session store (Redis, the embedded file) could not do what was asked.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("the session store is unavailable: {0}")]
    Unavailable(String),
}

/// One problem in the configuration, with the TOML path it is about
/// (`route[2].upstream`), so `check` can list every problem at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Everything wrong with a configuration file. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} configuration problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Why a login or a call to the identity provider failed. Each variant maps to one
/// status and page in `reply.rs`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the identity provider could not be reached or answered badly: {0}")]
    IdpUnavailable(String),
    #[error("the identity provider's discovery document is wrong: {0}")]
    Discovery(String),
    #[error("the login request is missing or has expired")]
    UnknownState,
    #[error("the login state was already used")]
    StateReplayed,
    #[error("the callback is malformed: {0}")]
    BadCallback(&'static str),
    #[error("the identity provider refused the login: {error}")]
    IdpDenied { error: String },
    #[error("the token endpoint refused the code: {0}")]
    TokenRejected(String),
    /// The token endpoint's `invalid_grant`: the code or refresh token is expired,
    /// used, or belongs to another login. The browser's doing, not the IdP's.
    #[error("the identity provider no longer accepts this grant")]
    GrantRejected,
    #[error("the ID token is invalid: {0}")]
    InvalidIdToken(String),
    #[error("userinfo failed: {0}")]
    Userinfo(String),
    #[error("CAS validation failed: {0}")]
    Cas(String),
    #[error("the CAS server refused the ticket: {code}")]
    CasRejected { code: String },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the logout token is invalid: {0}")]
    InvalidLogoutToken(String),
    #[error("the OneAccess management API failed: {0}")]
    Management(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    /// A short, stable name for metrics (`logins_failed_total{reason}`).
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            AuthError::IdpUnavailable(_) => "idp_unavailable",
            AuthError::Discovery(_) => "discovery",
            AuthError::UnknownState => "unknown_state",
            AuthError::StateReplayed => "state_replayed",
            AuthError::BadCallback(_) => "bad_callback",
            AuthError::IdpDenied { .. } => "idp_denied",
            AuthError::TokenRejected(_) => "token_rejected",
            AuthError::GrantRejected => "grant_rejected",
            AuthError::InvalidIdToken(_) => "invalid_id_token",
            AuthError::Userinfo(_) => "userinfo",
            AuthError::Cas(_) => "cas",
            AuthError::CasRejected { .. } => "cas_rejected",
            AuthError::Store(_) => "store_unavailable",
            AuthError::InvalidLogoutToken(_) => "invalid_logout_token",
            AuthError::Management(_) => "management",
            AuthError::Internal(_) => "internal",
        }
    }
}

/// Errors of a start-up step (reading secrets, resolving upstreams, discovery).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("cannot start the server: {0}")]
    Server(String),
}
