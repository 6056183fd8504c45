//! The Redis store's revocations, mirrored in this process, so that the check a
//! cookie-mode session makes on every request asks no network. Every revocation
//! is appended to one stream (`{prefix}revocations`) before its key is set. A
//! thread of the store's own reads that stream from its start (what was revoked
//! before this gateway started: entries are kept for their revocation's time)
//! and then waits on it (`XREAD BLOCK`), so a revocation any gateway makes
//! reaches this one as soon as Redis passes it on.
//!
//! The copy answers only while the reader is caught up and in touch with Redis
//! (a read ends at least every `BLOCK`): starting, after losing Redis, during a
//! failover, the check asks Redis's keys per request as before, and fails (503)
//! while Redis cannot answer. So a gateway cut off from Redis trusts its copy for
//! at most `FRESH_FOR` after its last contact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::streams::{StreamId, StreamReadReply};
use redis::RedisResult;

use super::connect::Link;
use crate::session::store::memory::{deadline, now_millis};
use crate::session::store::{MemoryStore, Store};

/// The stream's name after the key prefix.
pub(super) const STREAM: &str = "revocations";
/// How long one read waits for a new entry: under the connection's one-second
/// answer timeout.
const BLOCK: Duration = Duration::from_millis(500);
/// How long after its last read that caught up the copy still answers: two
/// reads' worth, so a reader that lost Redis is noticed within this.
const FRESH_FOR: Duration = Duration::from_millis(1500);
/// Entries per read; a read that brings fewer has caught up.
const COUNT: usize = 1000;
/// The reader's pause after a failed read, doubled up to the second.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// The fields of a stream entry: the revocation key (without the prefix), its
/// time (unix milliseconds, or seconds from an older gateway), and until when
/// it stands (unix milliseconds).
const KEY: &str = "k";
const AT: &str = "at";
const UNTIL: &str = "until";

pub(super) struct Mirror {
    revoked: MemoryStore,
    /// Unix milliseconds until which the copy answers; 0 until the reader
    /// first caught up.
    fresh_until: AtomicU64,
}

impl Mirror {
    /// `max_ttl` bounds how long a revocation is kept (the session lifetime).
    pub(super) fn new(max_ttl: Duration) -> Mirror {
        Mirror {
            revoked: MemoryStore::new(max_ttl),
            fresh_until: AtomicU64::new(0),
        }
    }

    /// Whether the copy is complete enough to answer the per-request check.
    pub(super) fn fresh(&self) -> bool {
        now_millis() < self.fresh_until.load(Ordering::Acquire)
    }

    /// The copy, while it is up to date; `None` when it may be behind and
    /// Redis must be asked.
    pub(super) fn if_fresh(&self) -> Option<&MemoryStore> {
        self.fresh().then_some(&self.revoked)
    }

    /// `false` only while the copy is fresh and holds nothing: the per-request
    /// check is then skipped without building keys.
    pub(super) fn may_have_revocations(&self) -> bool {
        !self.fresh() || self.revoked.may_have_revocations()
    }

    /// A revocation this gateway just appended: its own next request must see
    /// it, whenever the reader does.
    pub(super) fn add(&self, key: &str, at: u64, until: u64) {
        if until > now_millis() {
            self.revoked.mirror_revocation(key, at, until);
        }
    }

    fn add_entry(&self, entry: &StreamId) {
        let (Some(key), Some(at), Some(until)) = (
            entry.get::<String>(KEY),
            entry.get::<u64>(AT),
            entry.get::<u64>(UNTIL),
        ) else {
            // Not written by a gateway: nothing to mirror (and nothing revoked
            // that the keys, asked when the copy is not fresh, would show).
            tracing::warn!(id = %entry.id, "revocation stream entry without key, time or end: skipped");
            return;
        };
        self.add(&key, at, until);
    }
}

/// The stream entry's fields for a revocation of `key` at `at`, standing for
/// `ttl`: what `XADD` appends, and the end (unix milliseconds) it records.
pub(super) fn entry(key: &str, at: u64, ttl: Duration) -> ([(&'static str, String); 3], u64) {
    let until = deadline(now_millis(), ttl);
    (
        [
            (KEY, key.to_string()),
            (AT, at.to_string()),
            (UNTIL, until.to_string()),
        ],
        until,
    )
}

/// The oldest entry id an append keeps: older entries' revocations have ended
/// (`MINID`, trimmed approximately, so some linger a little longer).
pub(super) fn keep_from(ttl: Duration) -> String {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    format!("{}-0", now_millis().saturating_sub(ms))
}

/// Starts the reader of `stream` (the full key) on a thread of its own, with a
/// connection of its own (`link`: a blocked read would hold up the store's
/// multiplexed one). It ends when the store is dropped.
pub(super) fn follow(mirror: &Arc<Mirror>, link: Link, stream: String) -> std::io::Result<()> {
    let mirror = Arc::downgrade(mirror);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("oag-redis-revocations".into())
        .spawn(move || runtime.block_on(read_on(mirror, link, stream)))?;
    Ok(())
}

async fn read_on(mirror: Weak<Mirror>, link: Link, stream: String) {
    // From the start: every revocation still standing.
    let mut last = String::from("0-0");
    let mut pause = RETRY_MIN;
    let mut failing = false;
    // Caught up: the next read waits for a new entry. Until then (at the start,
    // after a failure) reads return at once, so the copy is fresh as soon as
    // Redis answers.
    let mut caught_up = false;
    loop {
        let read = read_after(&link, &stream, &last, caught_up).await;
        let Some(m) = mirror.upgrade() else {
            return;
        };
        match read {
            Ok(entries) => {
                for e in &entries {
                    m.add_entry(e);
                }
                if let Some(e) = entries.last() {
                    last.clone_from(&e.id);
                }
                caught_up = entries.len() < COUNT;
                if caught_up {
                    m.fresh_until
                        .store(deadline(now_millis(), FRESH_FOR), Ordering::Release);
                    if failing {
                        tracing::info!("revocations: the copy is up to date with Redis again");
                        failing = false;
                    }
                }
                pause = RETRY_MIN;
            }
            Err(e) => {
                drop(m);
                caught_up = false;
                if !failing {
                    tracing::warn!(error = %e, "revocations: cannot read Redis's stream; each request asks Redis until it can");
                    failing = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

/// The entries after `last`; with `wait`, waiting up to `BLOCK` for one.
async fn read_after(
    link: &Link,
    stream: &str,
    last: &str,
    wait: bool,
) -> RedisResult<Vec<StreamId>> {
    let mut c = link.conn().await?;
    let mut read = redis::cmd("XREAD");
    read.arg("COUNT").arg(COUNT);
    if wait {
        read.arg("BLOCK")
            .arg(u64::try_from(BLOCK.as_millis()).unwrap_or(500));
    }
    let reply: Option<StreamReadReply> = read
        .arg("STREAMS")
        .arg(stream)
        .arg(last)
        .query_async(&mut c)
        .await?;
    Ok(reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .collect())
}
