//! The simulated directory: user accounts, the demo fixture, loading users from a file,
//! and the live directory the simulator serves (users can be created, disabled,
//! enabled and deleted while it runs).

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

/// One account of the live directory and whether it is disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub user: User,
    /// A disabled user exists (the management API still knows them) but cannot log in
    /// and gets no tokens.
    pub disabled: bool,
}

/// The live directory, in creation order (the order a full sync pushes). Starts as
/// [`crate::SimConfig::users`], all enabled; a deleted user is gone from it.
#[derive(Debug, Default)]
pub(crate) struct UserDirectory {
    entries: Vec<Entry>,
}

impl UserDirectory {
    pub fn new(users: &[User]) -> UserDirectory {
        UserDirectory {
            entries: users
                .iter()
                .map(|u| Entry {
                    user: u.clone(),
                    disabled: false,
                })
                .collect(),
        }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn by_id(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.user.id == id)
    }

    pub fn by_id_mut(&mut self, id: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.user.id == id)
    }

    pub fn by_name(&self, user_name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.user.user_name == user_name)
    }

    /// The user who logs in as `login`: the user name, or a non-empty email address.
    pub fn by_login(&self, login: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| {
            e.user.user_name == login || (!e.user.email.is_empty() && e.user.email == login)
        })
    }

    /// Adds an enabled user; `Err` says why not (the id or the user name is taken).
    pub fn insert(&mut self, user: User) -> Result<(), String> {
        if self.by_id(&user.id).is_some() {
            return Err(format!("a user with id {:?} already exists", user.id));
        }
        if self.by_name(&user.user_name).is_some() {
            return Err(format!("a user named {:?} already exists", user.user_name));
        }
        self.entries.push(Entry {
            user,
            disabled: false,
        });
        Ok(())
    }

    /// Removes the user with this id; what was removed.
    pub fn remove(&mut self, id: &str) -> Option<Entry> {
        let at = self.entries.iter().position(|e| e.user.id == id)?;
        Some(self.entries.remove(at))
    }
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

    #[test]
    fn directory_changes() {
        let mut dir = UserDirectory::new(&User::demo_users());
        let alice = dir.by_name("alice").unwrap().user.clone();
        assert_eq!(dir.by_login("alice@example.com").unwrap().user, alice);
        assert!(dir.insert(alice.clone()).is_err(), "same id");
        let mut other = alice.clone();
        other.id = "1".into();
        assert!(dir.insert(other).is_err(), "same user name");
        assert_eq!(dir.remove(&alice.id).unwrap().user, alice);
        assert!(dir.by_id(&alice.id).is_none());
        dir.insert(alice.clone()).unwrap();
        assert_eq!(dir.entries().last().unwrap().user, alice);
    }
}
