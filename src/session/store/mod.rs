//! Where sessions live when they do not live in the cookie, and the shared
//! revocation and single-use sets, behind one trait: `embedded` (a file, the
//! default) for one gateway, `memory` for tests, `redis` for several behind a
//! load balancer (one server, Sentinel or Cluster). The same test suite
//! (`tests/store.rs`) runs against all of them.

mod embedded;
mod memory;
mod metered;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use self::redis::RedisStore;
pub use embedded::EmbeddedStore;
pub(crate) use memory::now_millis;
pub use memory::MemoryStore;
pub(crate) use metered::Metered;

use crate::config::StoreSettings;

pub(crate) use crate::error::StoreError;

/// Keys are namespaced by the caller: `ses:{id}` records, `sid:…`/`sub:…`/`st:…`
/// indexes and revocations, `use:…` single-use marks.
#[async_trait]
pub trait Store: Send + Sync {
    /// A session record. With `idle`, its expiry slides to now + idle.
    async fn load(&self, key: &str, idle: Option<Duration>) -> Result<Option<Vec<u8>>, StoreError>;
    async fn save(&self, key: &str, record: &[u8], ttl: Duration) -> Result<(), StoreError>;
    async fn remove(&self, key: &str) -> Result<(), StoreError>;
    /// Adds `member` to the set at `key`, kept for `ttl`.
    async fn index(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError>;
    /// `index` at each of `keys` (a new session's indexes): one write where the
    /// store can make it one, since a login makes several.
    async fn index_all(
        &self,
        keys: &[String],
        member: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        for key in keys {
            self.index(key, member, ttl).await?;
        }
        Ok(())
    }
    /// Removes the set at `key` and returns its members.
    async fn take_index(&self, key: &str) -> Result<Vec<String>, StoreError>;
    /// Removes `member` from the set at `key` (a session that ended by itself).
    async fn unindex(&self, key: &str, member: &str) -> Result<(), StoreError>;
    /// Whether a set exists at `key` (a CAS ticket this gateway made a session for).
    async fn has_index(&self, key: &str) -> Result<bool, StoreError>;
    /// Revokes every session matching `key` issued at or before `at` (unix
    /// milliseconds), for `ttl`. Sessions made later, even within the same
    /// second, are not affected.
    async fn revoke(&self, key: &str, at: u64, ttl: Duration) -> Result<(), StoreError>;
    /// Whether any of `keys` revokes a session issued at `issued_at` (unix
    /// milliseconds); compare with `revoked_until`.
    async fn is_revoked(&self, keys: &[&str], issued_at: u64) -> Result<bool, StoreError>;
    /// `true` the first time `key` is used within `ttl` (a `jti`, a state, a ticket);
    /// atomic across every gateway sharing the store.
    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Takes a single-use mark back (an attempt that spent nothing), so the next
    /// `first_use` of `key` wins again.
    async fn release(&self, key: &str) -> Result<(), StoreError>;
    /// `false` only when nothing was ever revoked, so the per-request check can be
    /// skipped without building keys (the memory store knows; Redis must be asked).
    fn may_have_revocations(&self) -> bool {
        true
    }
    /// The revocations, when this store holds every one of them in memory (the
    /// memory and embedded stores; Redis while its copy is up to date): the
    /// per-request check then reads them there, with no future to box and no
    /// key to allocate, and is not timed as a store command.
    fn revocations_in_memory(&self) -> Option<&MemoryStore> {
        None
    }
    /// Answers when the store is reachable (the admin listener's `/readyz`).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Errors met so far (for metrics).
    fn errors(&self) -> u64 {
        0
    }
    /// Server-mode session records held, where the store can tell cheaply.
    fn active_sessions(&self) -> Option<u64> {
        None
    }
}

/// The last instant (unix milliseconds) a stored revocation time `at` covers.
/// A gateway before 0.1's user events wrote seconds: such a value (below 10^11,
/// the year 5138 in seconds, 1973 in milliseconds) covers its whole second, so a
/// rolling upgrade honours every revocation the older gateways made.
pub(crate) fn revoked_until(at: u64) -> u64 {
    if at < 100_000_000_000 {
        at.saturating_mul(1000).saturating_add(999)
    } else {
        at
    }
}

/// The store the settings ask for. Redis connects lazily: a gateway starts while
/// Redis is down, and answers 503 until it is back.
pub fn build(settings: &StoreSettings, max_ttl: Duration) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match settings {
        StoreSettings::Embedded { dir } => Arc::new(EmbeddedStore::open(dir, max_ttl)?),
        StoreSettings::Memory => Arc::new(MemoryStore::new(max_ttl)),
        StoreSettings::Redis(redis) => Arc::new(RedisStore::new(redis, max_ttl)?),
    })
}
