//! The in-memory store (moka): sessions, indexes, revocations and single-use marks
//! of one gateway process. Lost on restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;

use super::{Store, StoreError};

/// A value with its own deadline (unix milliseconds): moka's TTL is per cache,
/// entries here each have theirs. Milliseconds, not seconds: a whole-second clock
/// would cut a 2 s lifetime to anything above 1 s, depending on when in the second
/// the entry was written.
#[derive(Clone)]
struct Timed<T> {
    value: T,
    until: u64,
}

pub(crate) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(super) fn deadline(now: u64, ttl: Duration) -> u64 {
    now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

pub struct MemoryStore {
    records: Cache<String, Timed<Arc<[u8]>>>,
    indexes: Cache<String, Timed<Vec<String>>>,
    revoked: Cache<String, Timed<u64>>,
    used: Cache<String, Timed<()>>,
    /// Nothing was ever revoked: the per-request check is then free.
    any_revoked: AtomicBool,
}

impl MemoryStore {
    /// `max_ttl` bounds how long anything is kept (the session lifetime).
    pub fn new(max_ttl: Duration) -> MemoryStore {
        MemoryStore {
            records: timed_cache(max_ttl),
            indexes: timed_cache(max_ttl),
            revoked: timed_cache(max_ttl),
            used: timed_cache(max_ttl),
            any_revoked: AtomicBool::new(false),
        }
    }
}

impl MemoryStore {
    /// Whether the revocation at `key`, if one stands at `now` (unix
    /// milliseconds), covers a session issued at `issued_at`.
    pub(crate) fn revokes(&self, key: &str, issued_at: u64, now: u64) -> bool {
        live(&self.revoked, key, now).is_some_and(|at| issued_at <= super::revoked_until(at))
    }

    /// Records a revocation standing until `until` (unix milliseconds): the
    /// embedded store mirrors its file's here, the Redis store its stream's.
    pub(super) fn mirror_revocation(&self, key: &str, at: u64, until: u64) {
        self.any_revoked.store(true, Ordering::Release);
        self.revoked.entry(key.to_string()).and_upsert_with(|old| {
            match old.map(|e| e.into_value()) {
                Some(t) => Timed {
                    value: t.value.max(at),
                    until: t.until.max(until),
                },
                None => Timed { value: at, until },
            }
        });
    }
}

fn timed_cache<T: Clone + Send + Sync + 'static>(max_ttl: Duration) -> Cache<String, Timed<T>> {
    Cache::builder()
        .max_capacity(1_000_000)
        .time_to_live(max_ttl)
        .build()
}

fn live<T: Clone + Send + Sync + 'static>(
    c: &Cache<String, Timed<T>>,
    key: &str,
    now: u64,
) -> Option<T> {
    match c.get(key) {
        Some(t) if t.until > now => Some(t.value),
        Some(_) => {
            c.invalidate(key);
            None
        }
        None => None,
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn load(&self, key: &str, idle: Option<Duration>) -> Result<Option<Vec<u8>>, StoreError> {
        let now = now_millis();
        let Some(value) = live(&self.records, key, now) else {
            return Ok(None);
        };
        if let Some(idle) = idle {
            self.records.insert(
                key.to_string(),
                Timed {
                    value: value.clone(),
                    until: deadline(now, idle),
                },
            );
        }
        Ok(Some(value.to_vec()))
    }

    async fn save(&self, key: &str, record: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.records.insert(
            key.to_string(),
            Timed {
                value: Arc::from(record),
                until: deadline(now_millis(), ttl),
            },
        );
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.records.invalidate(key);
        Ok(())
    }

    async fn index(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let now = now_millis();
        let until = deadline(now, ttl);
        self.indexes.entry(key.to_string()).and_upsert_with(|old| {
            let mut t = match old.map(|e| e.into_value()) {
                Some(t) if t.until > now => t,
                _ => Timed {
                    value: Vec::new(),
                    until,
                },
            };
            if !t.value.iter().any(|m| m == member) {
                t.value.push(member.to_string());
            }
            t.until = t.until.max(until);
            t
        });
        Ok(())
    }

    async fn take_index(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let now = now_millis();
        Ok(self
            .indexes
            .remove(key)
            .filter(|t| t.until > now)
            .map(|t| t.value)
            .unwrap_or_default())
    }

    async fn unindex(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.indexes.entry(key.to_string()).and_compute_with(|old| {
            use moka::ops::compute::Op;
            match old.map(|e| e.into_value()) {
                Some(mut t) => {
                    t.value.retain(|m| m != member);
                    if t.value.is_empty() {
                        Op::Remove
                    } else {
                        Op::Put(t)
                    }
                }
                None => Op::Nop,
            }
        });
        Ok(())
    }

    async fn has_index(&self, key: &str) -> Result<bool, StoreError> {
        Ok(live(&self.indexes, key, now_millis()).is_some())
    }

    async fn revoke(&self, key: &str, at: u64, ttl: Duration) -> Result<(), StoreError> {
        self.mirror_revocation(key, at, deadline(now_millis(), ttl));
        Ok(())
    }

    async fn is_revoked(&self, keys: &[&str], issued_at: u64) -> Result<bool, StoreError> {
        let now = now_millis();
        Ok(keys.iter().any(|k| self.revokes(k, issued_at, now)))
    }

    fn revocations_in_memory(&self) -> Option<&MemoryStore> {
        Some(self)
    }

    fn active_sessions(&self) -> Option<u64> {
        // Moka's count is approximate (pending evictions), which a gauge can be.
        Some(self.records.entry_count())
    }

    fn may_have_revocations(&self) -> bool {
        self.any_revoked.load(Ordering::Acquire)
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.used.invalidate(key);
        Ok(())
    }

    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = now_millis();
        let until = deadline(now, ttl);
        let mut fresh = false;
        self.used
            .entry(key.to_string())
            .and_upsert_with(|old| match old.map(|e| e.into_value()) {
                Some(t) if t.until > now => t,
                _ => {
                    fresh = true;
                    Timed { value: (), until }
                }
            });
        Ok(fresh)
    }
}
