//! The simulated directory: user accounts, the demo fixture and loading users from a file.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A OneAccess account. JSON shape (fixtures, `--users`): camelCase, e.g. `userName`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// OneAccess user id; the OIDC `sub` and the userinfo `id`.
    pub id: String,
    /// Login name; the CAS `user` and the OIDC `preferred_username`.
    pub user_name: String,
    /// Display name.
    pub name: String,
    pub email: String,
    pub mobile: String,
    /// Clear-text password (this is a simulator).
    pub password: String,
}

const DEMO_USERS: &str = include_str!("../../fixtures/users.json");

impl User {
    /// The built-in demo accounts from `sim/fixtures/users.json`
    /// (`alice` / `alice-password`, `bob` / `bob-password`).
    pub fn demo_users() -> Vec<User> {
        serde_json::from_str(DEMO_USERS).expect("sim/fixtures/users.json is valid")
    }
}

/// Reads users from a JSON file shaped like `sim/fixtures/users.json` (an array of users).
pub fn load_users(path: &Path) -> io::Result<Vec<User>> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_fixture() {
        let users = User::demo_users();
        let alice = users.iter().find(|u| u.user_name == "alice").unwrap();
        assert_eq!(alice.id, "20240001");
        assert_eq!(alice.name, "Alice Zhang");
        assert_eq!(alice.mobile, "+86-13800000001");
        assert_eq!(alice.password, "alice-password");
        let bob = users.iter().find(|u| u.user_name == "bob").unwrap();
        assert_eq!(bob.email, "bob@example.com");
        assert_eq!(bob.password, "bob-password");
    }
}
