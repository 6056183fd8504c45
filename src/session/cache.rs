//! Each worker thread's copies of the server-mode sessions it opened lately, so
//! that a user's next requests skip the store's round trip (Redis, or the
//! embedded file).
//!
//! A copy is only an answer while nothing could have changed it unseen; the
//! rules are `Sessions::server_session`'s, which asks here first. This type only
//! keeps the copies: bounded per thread (least recently used go first), and
//! lock-free, since each thread has its own map (`ThreadLocal`) and no borrow
//! is held across an `.await`.

use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use lru::LruCache;
use thread_local::ThreadLocal;

use super::SessionData;

/// A copy, and when the store gave it.
pub(crate) struct Kept {
    pub(crate) data: SessionData,
    /// When the store last read it (unix seconds), which also slid its idle
    /// expiry to then.
    pub(crate) read_at: u64,
}

pub(crate) struct SessionCache {
    /// Copies per thread; 0: none kept.
    entries: Option<NonZeroUsize>,
    per_thread: ThreadLocal<RefCell<LruCache<String, Kept>>>,
    /// Reads answered by a copy and reads that went to the store, per thread,
    /// so that counting shares no cache line between workers.
    counts: ThreadLocal<[AtomicU64; 2]>,
}

impl SessionCache {
    pub(crate) fn new(entries: usize) -> SessionCache {
        SessionCache {
            entries: NonZeroUsize::new(entries),
            per_thread: ThreadLocal::new(),
            counts: ThreadLocal::new(),
        }
    }

    /// Counts a read of a session: answered by this thread's copy, or by the
    /// store.
    pub(crate) fn count(&self, answered: bool) {
        if self.entries.is_some() {
            self.counts.get_or_default()[usize::from(!answered)].fetch_add(1, Relaxed);
        }
    }

    /// Reads answered by copies and reads that went to the store, over every
    /// thread; `None` when no copies are kept.
    pub(crate) fn counts(&self) -> Option<(u64, u64)> {
        self.entries?;
        Some(self.counts.iter().fold((0, 0), |(a, s), c| {
            (a + c[0].load(Relaxed), s + c[1].load(Relaxed))
        }))
    }

    /// This thread's copy of session `id`, when it has one and `answers` says
    /// the copy may stand in for the store; cloned only then.
    pub(crate) fn get(&self, id: &str, answers: impl FnOnce(&Kept) -> bool) -> Option<SessionData> {
        let mut map = self.per_thread.get()?.borrow_mut();
        let kept = map.get(id)?;
        answers(kept).then(|| kept.data.clone())
    }

    /// Keeps a copy of `data`, read from the store at `read_at`.
    pub(crate) fn put(&self, data: &SessionData, read_at: u64) {
        let Some(entries) = self.entries else { return };
        let map = self
            .per_thread
            .get_or(|| RefCell::new(LruCache::new(entries)));
        map.borrow_mut().put(
            data.id.clone(),
            Kept {
                data: data.clone(),
                read_at,
            },
        );
    }

    /// Drops this thread's copy of session `id` (it changed or ended here; other
    /// threads and gateways learn it from the revocation).
    pub(crate) fn forget(&self, id: &str) {
        if let Some(map) = self.per_thread.get() {
            map.borrow_mut().pop(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(id: &str) -> SessionData {
        super::super::test_session(id, 10_000)
    }

    #[test]
    fn keeps_at_most_its_bound_per_thread_and_drops_the_least_recently_used() {
        let cache = SessionCache::new(2);
        cache.put(&data("a"), 1);
        cache.put(&data("b"), 2);
        let any = |_: &Kept| true;
        assert!(cache.get("a", any).is_some(), "a is now the most recent");
        cache.put(&data("c"), 3);
        assert!(
            cache.get("b", any).is_none(),
            "b was the least recently used"
        );
        assert!(cache.get("a", |k| k.read_at == 1).is_some());
        assert!(
            cache.get("a", |k| k.read_at == 2).is_none(),
            "not answering"
        );
        assert_eq!(cache.get("c", any).map(|d| d.id), Some("c".into()));
        cache.forget("c");
        assert!(cache.get("c", any).is_none());
        cache.count(true);
        cache.count(true);
        cache.count(false);
        assert_eq!(cache.counts(), Some((2, 1)));
        // Another thread has its own copies.
        std::thread::scope(|s| {
            s.spawn(|| assert!(cache.get("a", any).is_none()))
                .join()
                .expect("thread");
        });
    }

    #[test]
    fn a_cache_of_no_entries_keeps_nothing() {
        let cache = SessionCache::new(0);
        cache.put(&data("a"), 1);
        assert!(cache.get("a", |_| true).is_none());
        cache.count(true);
        assert_eq!(cache.counts(), None);
    }
}
