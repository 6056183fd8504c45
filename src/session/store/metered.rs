//! The session store as the gateway uses it: every command timed into the
//! metrics (`oneaccess_gateway_session_store_duration_seconds{operation}`),
//! whichever store is behind. Errors are the stores' own count.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Store, StoreError};
use crate::metrics::{Metrics, StoreOp};

pub(crate) struct Metered {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl Metered {
    pub(crate) fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Metered {
        Metered { inner, metrics }
    }

    async fn timed<T>(&self, op: StoreOp, command: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = command.await;
        self.metrics.store_op(op, started.elapsed());
        result
    }
}

type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
impl Store for Metered {
    async fn load(&self, key: &str, idle: Option<Duration>) -> Result<Option<Vec<u8>>> {
        self.timed(StoreOp::Load, self.inner.load(key, idle)).await
    }

    async fn save(&self, key: &str, record: &[u8], ttl: Duration) -> Result<()> {
        self.timed(StoreOp::Save, self.inner.save(key, record, ttl))
            .await
    }

    async fn remove(&self, key: &str) -> Result<()> {
        self.timed(StoreOp::Remove, self.inner.remove(key)).await
    }

    async fn index(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        self.timed(StoreOp::Index, self.inner.index(key, member, ttl))
            .await
    }

    async fn index_all(&self, keys: &[String], member: &str, ttl: Duration) -> Result<()> {
        self.timed(StoreOp::Index, self.inner.index_all(keys, member, ttl))
            .await
    }

    async fn take_index(&self, key: &str) -> Result<Vec<String>> {
        self.timed(StoreOp::TakeIndex, self.inner.take_index(key))
            .await
    }

    async fn unindex(&self, key: &str, member: &str) -> Result<()> {
        self.timed(StoreOp::Unindex, self.inner.unindex(key, member))
            .await
    }

    async fn has_index(&self, key: &str) -> Result<bool> {
        self.timed(StoreOp::HasIndex, self.inner.has_index(key))
            .await
    }

    async fn revoke(&self, key: &str, at: u64, ttl: Duration) -> Result<()> {
        self.timed(StoreOp::Revoke, self.inner.revoke(key, at, ttl))
            .await
    }

    async fn is_revoked(&self, keys: &[&str], issued_at: u64) -> Result<bool> {
        self.timed(StoreOp::IsRevoked, self.inner.is_revoked(keys, issued_at))
            .await
    }

    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.timed(StoreOp::FirstUse, self.inner.first_use(key, ttl))
            .await
    }

    async fn release(&self, key: &str) -> Result<()> {
        self.timed(StoreOp::Release, self.inner.release(key)).await
    }

    fn may_have_revocations(&self) -> bool {
        self.inner.may_have_revocations()
    }

    fn revocations_in_memory(&self) -> Option<&super::MemoryStore> {
        self.inner.revocations_in_memory()
    }

    async fn ping(&self) -> Result<()> {
        self.timed(StoreOp::Ping, self.inner.ping()).await
    }

    fn errors(&self) -> u64 {
        self.inner.errors()
    }

    fn active_sessions(&self) -> Option<u64> {
        self.inner.active_sessions()
    }
}
