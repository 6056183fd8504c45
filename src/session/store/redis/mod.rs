//! The Redis store, for several gateways behind a load balancer: a logout or a
//! revocation on one is honoured by all. One server, a Sentinel-watched master
//! or a Cluster (`connect`); the commands here are the same for all three. Every
//! connection is multiplexed, with bounded reconnect retries and timeouts: a
//! Redis outage makes requests fail fast with a clear log line (and 503), never
//! hang.
//!
//! A revocation is both a key (`rev:…`, asked per request while the copy in
//! memory may be behind) and an entry of one stream that every gateway follows
//! into that copy (`mirror`), so that the per-request check asks no network.
//!
//! In a Cluster every command here touches one key, so one slot, except the
//! revocation check's MGET, which the cluster client splits by slot and sends
//! to the nodes at once. No hash tags are needed, and none are used: a tag
//! shared by the revocation keys would put every user's revocations, and every
//! request's check, on one node.

mod connect;
mod mirror;
mod sentinel;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use self::connect::{Conn, Link};
use self::mirror::Mirror;
use super::{Store, StoreError};
use crate::config::RedisSettings;

pub struct RedisStore {
    link: Link,
    prefix: String,
    /// The revocations, in memory, kept up by a reader of their stream.
    mirror: Arc<Mirror>,
    /// The stream's full key.
    stream: String,
    /// Failed commands, for metrics.
    errors: AtomicU64,
}

impl RedisStore {
    /// Does not connect: the first command does, and the connection reconnects
    /// after a loss (to the new master, after a Sentinel failover). The reader
    /// of the revocation stream starts on its own thread and connection, and
    /// keeps trying while Redis is down. `max_ttl` bounds how long a revocation
    /// is kept in memory (the session lifetime).
    pub fn new(settings: &RedisSettings, max_ttl: Duration) -> Result<RedisStore, StoreError> {
        let mirror = Arc::new(Mirror::new(max_ttl));
        let stream = format!("{}{}", settings.prefix, mirror::STREAM);
        mirror::follow(&mirror, Link::new(settings)?, stream.clone()).map_err(|e| {
            StoreError::Unavailable(format!("cannot start the revocation reader: {e}"))
        })?;
        Ok(RedisStore {
            link: Link::new(settings)?,
            prefix: settings.prefix.clone(),
            mirror,
            stream,
            errors: AtomicU64::new(0),
        })
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        self.link.conn().await.map_err(|e| self.fail(e))
    }

    fn fail(&self, e: redis::RedisError) -> StoreError {
        self.errors.fetch_add(1, Ordering::Relaxed);
        // The error names the failing step (connect, timeout, ...), never a value.
        tracing::warn!(error = %e, "session store (redis) error");
        StoreError::Unavailable(e.to_string())
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        redis::cmd("PING")
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| self.fail(e))
    }

    fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    async fn load(&self, key: &str, idle: Option<Duration>) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn().await?;
        let key = self.key(key);
        let v: Option<Vec<u8>> = match idle {
            // GETEX: read and slide the expiry in one round trip.
            Some(idle) => c
                .get_ex(&key, redis::Expiry::EX(idle.as_secs().max(1)))
                .await
                .map_err(|e| self.fail(e))?,
            None => c.get(&key).await.map_err(|e| self.fail(e))?,
        };
        Ok(v)
    }

    async fn save(&self, key: &str, record: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        c.set_ex::<_, _, ()>(self.key(key), record, ttl.as_secs().max(1))
            .await
            .map_err(|e| self.fail(e))
    }

    async fn remove(&self, key: &str) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        c.del::<_, ()>(self.key(key))
            .await
            .map_err(|e| self.fail(e))
    }

    async fn index(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let key = self.key(key);
        redis::pipe()
            .atomic()
            .sadd(&key, member)
            .ignore()
            .expire(&key, ttl.as_secs().max(1) as i64)
            .ignore()
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn take_index(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn().await?;
        let key = self.key(key);
        let (members,): (Vec<String>,) = redis::pipe()
            .atomic()
            .smembers(&key)
            .del(&key)
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(members)
    }

    async fn unindex(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        redis::cmd("SREM")
            .arg(self.key(key))
            .arg(member)
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn has_index(&self, key: &str) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        c.exists(self.key(key)).await.map_err(|e| self.fail(e))
    }

    async fn revoke(&self, key: &str, at: u64, ttl: Duration) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        // The stream first: should the key's SET then fail, every copy still
        // has the revocation (and the caller its error); the other way round, a
        // revocation could stand in Redis that no fresh copy knows of.
        let (fields, until) = mirror::entry(key, at, ttl);
        redis::cmd("XADD")
            .arg(&self.stream)
            .arg("MINID")
            .arg("~")
            .arg(mirror::keep_from(ttl))
            .arg("*")
            .arg(&fields[..])
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| self.fail(e))?;
        self.mirror.add(key, at, until);
        // Revocation times only grow, so a plain SET keeps the latest.
        c.set_ex::<_, _, ()>(self.key(key), at, ttl.as_secs().max(1))
            .await
            .map_err(|e| self.fail(e))
    }

    async fn is_revoked(&self, keys: &[&str], issued_at: u64) -> Result<bool, StoreError> {
        if keys.is_empty() {
            return Ok(false);
        }
        if let Some(copy) = self.mirror.if_fresh() {
            return copy.is_revoked(keys, issued_at).await;
        }
        let mut c = self.conn().await?;
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        // One round trip for all keys.
        let values: Vec<Option<u64>> = redis::cmd("MGET")
            .arg(&full)
            .query_async(&mut c)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(values
            .into_iter()
            .flatten()
            .any(|at| issued_at <= super::revoked_until(at)))
    }

    fn may_have_revocations(&self) -> bool {
        self.mirror.may_have_revocations()
    }

    fn revocations_in_memory(&self) -> Option<&super::MemoryStore> {
        self.mirror.if_fresh()
    }

    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        // SET NX: atomic across every gateway sharing this Redis.
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut c)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(set.is_some())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        c.del::<_, ()>(self.key(key))
            .await
            .map_err(|e| self.fail(e))
    }
}
