//! The embedded store, the default: one SQLite file in `session.state_dir`, so
//! server-side sessions, revocations and single-use marks survive a restart.
//! SQLite in WAL mode lets two processes share the file: a gateway started with
//! `--upgrade` opens it while the old one finishes its requests.
//!
//! The per-request revocation check reads no disk: revocations are mirrored in
//! memory, loaded at start and kept up by a thread that reads the file's new
//! revocations every second (the other process of an upgrade writes some). The
//! same thread sweeps expired entries. Writes go to one writer thread, never run
//! on a worker, and those that arrive together share one commit; a server-mode
//! session is read on one of a few reader connections (a primary-key lookup
//! through SQLite's page cache).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::memory::{deadline, now_millis};
use super::{MemoryStore, Store, StoreError};

/// The file in `state_dir`.
pub(super) const FILE_NAME: &str = "oneaccess-gateway.db";

/// How often the mirror reads the file's new revocations.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// How often expired entries are swept, and how many go per statement (a short
/// write lock each).
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const SWEEP_BATCH: usize = 1000;

/// Readers in place: a request takes a free one, so two workers rarely wait.
const READERS: usize = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value BLOB NOT NULL, until INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS members (key TEXT NOT NULL, member TEXT NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (key, member));
CREATE TABLE IF NOT EXISTS revoked (key TEXT PRIMARY KEY, at INTEGER NOT NULL, until INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS revoked_seq ON revoked (seq);
CREATE TABLE IF NOT EXISTS used (key TEXT PRIMARY KEY, until INTEGER NOT NULL);
";

pub struct EmbeddedStore {
    inner: Arc<Inner>,
    /// To the writer thread (`write_batches`).
    writes: std::sync::mpsc::Sender<Box<dyn Pending>>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    /// The revocations, in memory: the per-request check.
    mirror: MemoryStore,
    /// The newest revocation (`seq`) the mirror has.
    seen: AtomicI64,
    errors: AtomicU64,
    /// Server-mode sessions at the last sweep (a gauge; counting on every
    /// scrape would scan the table).
    records: AtomicU64,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, making the directory if needed.
    /// `max_ttl` bounds the mirror's memory (the session lifetime).
    pub fn open(dir: &Path, max_ttl: Duration) -> Result<EmbeddedStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        let path = dir.join(FILE_NAME);
        let writer = connect(&path)?;
        writer
            .execute_batch(SCHEMA)
            .map_err(|e| unavailable(&path, e))?;
        let readers = (0..READERS)
            .map(|_| connect(&path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let inner = Arc::new(Inner {
            path,
            writer: Mutex::new(writer),
            readers,
            mirror: MemoryStore::new(max_ttl),
            seen: AtomicI64::new(0),
            errors: AtomicU64::new(0),
            records: AtomicU64::new(0),
        });
        inner.follow()?;
        inner.sweep().map_err(|e| inner.failed(e))?;
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("oag-store".into())
            .spawn(move || keep_up(weak))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the store's thread: {e}"))
            })?;
        let (writes, waiting) = std::sync::mpsc::channel();
        let writer = inner.clone();
        std::thread::Builder::new()
            .name("oag-store-write".into())
            .spawn(move || write_batches(writer, waiting))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the store's writer: {e}"))
            })?;
        Ok(EmbeddedStore { inner, writes })
    }

    /// Runs `f` on the writer thread, in the next batch's transaction (every
    /// write, and the reads that are not on the request path). Its answer comes
    /// once the batch is committed, so what it wrote is in the file, and seen by
    /// the readers, when the caller goes on.
    async fn on_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, u64) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let write = Write {
            f: Some(f),
            out: None,
            tx,
        };
        let stopped = || StoreError::Unavailable("the store's writer has stopped".into());
        self.writes.send(Box::new(write)).map_err(|_| stopped())?;
        match rx.await.map_err(|_| stopped())? {
            Ok(v) => Ok(v),
            Err(Failed::Write(e)) => Err(self.inner.failed(e)),
            Err(Failed::Batch(e)) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

/// Why a write failed: its own statement (rolled back alone), or the batch's
/// transaction (nothing of the batch was written).
enum Failed {
    Write(rusqlite::Error),
    Batch(StoreError),
}

/// A write waiting for the writer thread, with the caller's answer.
trait Pending: Send {
    /// Runs it; false when it failed (its statements are then rolled back).
    fn run(&mut self, conn: &Connection, now: u64) -> bool;
    /// Answers the caller with the batch's outcome.
    fn answer(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Write<T, F> {
    f: Option<F>,
    out: Option<rusqlite::Result<T>>,
    tx: tokio::sync::oneshot::Sender<Result<T, Failed>>,
}

impl<T, F> Pending for Write<T, F>
where
    T: Send,
    F: FnOnce(&Connection, u64) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, conn: &Connection, now: u64) -> bool {
        let out = self.f.take().map(|f| f(conn, now));
        let ok = matches!(out, Some(Ok(_)));
        self.out = out;
        ok
    }

    fn answer(self: Box<Self>, committed: Result<(), StoreError>) {
        let answer = match (committed, self.out) {
            (Err(e), _) => Err(Failed::Batch(e)),
            (Ok(()), Some(Ok(v))) => Ok(v),
            (Ok(()), Some(Err(e))) => Err(Failed::Write(e)),
            (Ok(()), None) => Err(Failed::Batch(StoreError::Unavailable(
                "the write was not run".into(),
            ))),
        };
        // The caller may have gone (its request ended): nobody to tell.
        let _ = self.tx.send(answer);
    }
}

/// The most writes one transaction takes.
const MAX_BATCH: usize = 64;

/// The writer thread: takes the writes waiting, runs each in a savepoint of one
/// transaction, commits, then answers them all. It ends when the store is
/// dropped (its channel closes).
///
/// Why one thread and a transaction for many writes: each write used to be a
/// trip to Tokio's blocking pool and a commit of its own. A login writes three
/// or four times; at 2,000 logins a second that was about 17 page writes, 12
/// file-lock calls and 12 futex calls per login (strace), and dozens of blocking
/// threads. Writes that arrive together now share one commit and one thread.
fn write_batches(inner: Arc<Inner>, writes: std::sync::mpsc::Receiver<Box<dyn Pending>>) {
    while let Ok(first) = writes.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match writes.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let committed = {
            let conn = lock(&inner.writer);
            // Counted by each caller (`on_writer`), as one failed write each.
            run_batch(&conn, &mut batch, now_millis()).map_err(|e| unavailable(&inner.path, e))
        };
        for w in batch {
            w.answer(committed.clone());
        }
    }
}

/// One transaction for `batch`, each write in a savepoint of its own, so that a
/// failed one takes back its statements and no other's. A write alone (the
/// batch whenever writes do not overlap) needs no savepoint: when it fails,
/// the whole transaction, which holds nothing else, is rolled back. The
/// transaction's statements come from the connection's cache, not parsed each
/// time. Together: bench `store` 172 → 165 µs per login's writes.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Pending>], now: u64) -> rusqlite::Result<()> {
    run(conn, "BEGIN IMMEDIATE", [])?;
    let ran = match batch {
        [alone] => {
            if !alone.run(conn, now) {
                // Its own failure is its answer; nothing else was to commit.
                return run(conn, "ROLLBACK", []).map(drop);
            }
            Ok(())
        }
        _ => batch.iter_mut().try_for_each(|w| {
            run(conn, "SAVEPOINT write", [])?;
            if !w.run(conn, now) {
                run(conn, "ROLLBACK TO write", [])?;
            }
            run(conn, "RELEASE write", []).map(drop)
        }),
    };
    match ran.and_then(|()| run(conn, "COMMIT", []).map(drop)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = run(conn, "ROLLBACK", []);
            Err(e)
        }
    }
}

/// One connection to the file: WAL, so readers never wait for the writer and
/// two processes share it; `synchronous = NORMAL`, durable when the process
/// dies (a power loss may take the last transactions); a wait, not an error,
/// when the other process of an upgrade holds the write lock.
///
/// The file is read through SQLite's page cache (2 MB at most per
/// connection), not mapped in: every page of a mapped file that SQLite touched
/// stayed in the gateway's resident memory, and the file grows with each
/// login's single-use mark and indexes. In the load benchmark, after 27,000
/// logins, 26 MiB of the cookie-session gateway's 106 MiB peak was the file.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| unavailable(path, e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .and_then(|_| {
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA mmap_size = 0;",
            )
        })
        .map_err(|e| unavailable(path, e))?;
    // Room for every statement the store runs (`run`), so none is parsed twice.
    conn.set_prepared_statement_cache_capacity(48);
    Ok(conn)
}

/// Runs one statement, prepared once per connection and then taken from its
/// cache: parsing the SQL again each time was a tenth of a login's CPU
/// (callgrind: ~100,000 instructions of a login's ~1,000,000).
fn run(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

fn unavailable(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {e}", path.display()))
}

/// A poisoned lock only means a panic elsewhere; the connection is still usable.
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Inner {
    fn failed(&self, e: rusqlite::Error) -> StoreError {
        self.errors.fetch_add(1, Ordering::Relaxed);
        unavailable(&self.path, e)
    }

    /// A free reader, else the first one.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        for r in &self.readers {
            if let Ok(g) = r.try_lock() {
                return g;
            }
        }
        lock(&self.readers[0])
    }

    /// Brings the mirror up to the file's newest revocation.
    fn follow(&self) -> Result<(), StoreError> {
        let now = now_millis();
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, at, until, seq FROM revoked WHERE seq > ?1 AND until > ?2 ORDER BY seq",
            )
            .map_err(|e| self.failed(e))?;
        let rows = stmt
            .query_map(
                params![self.seen.load(Ordering::Acquire), signed(now)],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .map_err(|e| self.failed(e))?;
        for row in rows {
            let (key, at, until, seq) = row.map_err(|e| self.failed(e))?;
            self.mirror.mirror_revocation(
                &key,
                u64::try_from(at).unwrap_or(0),
                u64::try_from(until).unwrap_or(0),
            );
            self.seen.fetch_max(seq, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Deletes expired entries, a batch at a time.
    fn sweep(&self) -> rusqlite::Result<()> {
        let now = signed(now_millis());
        let conn = lock(&self.writer);
        for table in ["records", "members", "revoked", "used"] {
            let sql = format!(
                "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE until <= ?1 LIMIT ?2)"
            );
            while conn.execute(&sql, params![now, SWEEP_BATCH as i64])? == SWEEP_BATCH {}
        }
        let live = conn.query_row(
            "SELECT count(*) FROM records WHERE until > ?1",
            params![now],
            |r| r.get::<_, i64>(0),
        )?;
        self.records
            .store(u64::try_from(live).unwrap_or(0), Ordering::Relaxed);
        Ok(())
    }
}

/// The store's thread: follows new revocations every second and sweeps (and
/// counts the sessions) every minute, for as long as the store lives.
fn keep_up(weak: Weak<Inner>) {
    let mut since_sweep = Duration::ZERO;
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if let Err(e) = inner.follow() {
            tracing::warn!(error = %e, "could not read new revocations from the store");
        }
        since_sweep += FOLLOW_EVERY;
        if since_sweep >= SWEEP_EVERY {
            since_sweep = Duration::ZERO;
            if let Err(e) = inner.sweep() {
                tracing::warn!(error = %e, "could not sweep expired entries from the store");
            }
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn load(&self, key: &str, idle: Option<Duration>) -> Result<Option<Vec<u8>>, StoreError> {
        let now = now_millis();
        let found = {
            let conn = self.inner.reader();
            conn.prepare_cached("SELECT value, until FROM records WHERE key = ?1")
                .and_then(|mut s| {
                    s.query_row(params![key], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
                    })
                    .optional()
                })
                .map_err(|e| self.inner.failed(e))?
        };
        let Some((value, until)) = found.filter(|(_, until)| *until > signed(now)) else {
            return Ok(None);
        };
        if let Some(idle) = idle {
            // Moved at most every quarter of the idle timeout: not a write per
            // request.
            let slid = signed(deadline(now, idle));
            if slid - until > ms(idle) / 4 {
                let key = key.to_string();
                self.on_writer(move |c, _| {
                    run(
                        c,
                        "UPDATE records SET until = max(until, ?2) WHERE key = ?1",
                        params![key, slid],
                    )
                })
                .await?;
            }
        }
        Ok(Some(value))
    }

    async fn save(&self, key: &str, record: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let (key, record) = (key.to_string(), record.to_vec());
        self.on_writer(move |c, now| {
            run(
                c,
                "INSERT INTO records (key, value, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, until = excluded.until",
                params![key, record, signed(deadline(now, ttl))],
            )
        })
        .await
        .map(drop)
    }

    async fn remove(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.on_writer(move |c, _| run(c, "DELETE FROM records WHERE key = ?1", params![key]))
            .await
            .map(drop)
    }

    async fn index(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        self.index_all(&[key.to_string()], member, ttl).await
    }

    /// One write for all of them: a login's three or four indexes were as many
    /// commits and thread hand-offs.
    async fn index_all(
        &self,
        keys: &[String],
        member: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (keys, member) = (keys.to_vec(), member.to_string());
        // Its savepoint makes the indexes all or none.
        self.on_writer(move |c, now| {
            let until = signed(deadline(now, ttl));
            for key in &keys {
                run(
                    c,
                    "INSERT INTO members (key, member, until) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key, member) DO UPDATE SET until = max(until, excluded.until)",
                    params![key, member, until],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn take_index(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let key = key.to_string();
        self.on_writer(move |c, now| {
            let members = {
                let mut s =
                    c.prepare_cached("SELECT member FROM members WHERE key = ?1 AND until > ?2")?;
                let rows = s.query_map(params![key, signed(now)], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()?
            };
            run(c, "DELETE FROM members WHERE key = ?1", params![key])?;
            Ok(members)
        })
        .await
    }

    async fn unindex(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let (key, member) = (key.to_string(), member.to_string());
        self.on_writer(move |c, _| {
            run(
                c,
                "DELETE FROM members WHERE key = ?1 AND member = ?2",
                params![key, member],
            )
        })
        .await
        .map(drop)
    }

    async fn has_index(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.on_writer(move |c, now| {
            c.prepare_cached("SELECT EXISTS (SELECT 1 FROM members WHERE key = ?1 AND until > ?2)")?
                .query_row(params![key, signed(now)], |r| r.get::<_, bool>(0))
        })
        .await
    }

    async fn revoke(&self, key: &str, at: u64, ttl: Duration) -> Result<(), StoreError> {
        // In memory first: this process refuses the session at once, whatever the
        // disk does.
        self.inner
            .mirror
            .mirror_revocation(key, at, deadline(now_millis(), ttl));
        // A new `seq` each time: the other process's follower picks it up.
        let key = key.to_string();
        self.on_writer(move |c, now| {
            run(
                c,
                "INSERT INTO revoked (key, at, until, seq)
                 VALUES (?1, ?2, ?3, (SELECT ifnull(max(seq), 0) + 1 FROM revoked))
                 ON CONFLICT (key) DO UPDATE SET at = max(at, excluded.at),
                     until = max(until, excluded.until), seq = excluded.seq",
                params![key, signed(at), signed(deadline(now, ttl))],
            )
        })
        .await
        .map(drop)
    }

    async fn is_revoked(&self, keys: &[&str], issued_at: u64) -> Result<bool, StoreError> {
        self.inner.mirror.is_revoked(keys, issued_at).await
    }

    fn may_have_revocations(&self) -> bool {
        self.inner.mirror.may_have_revocations()
    }

    fn revocations_in_memory(&self) -> Option<&MemoryStore> {
        Some(&self.inner.mirror)
    }

    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.on_writer(move |c, now| {
            // A mark that has expired is taken over; a live one is not.
            let changed = run(
                c,
                "INSERT INTO used (key, until) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET until = excluded.until WHERE until <= ?3",
                params![key, signed(deadline(now, ttl)), signed(now)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.on_writer(move |c, _| run(c, "DELETE FROM used WHERE key = ?1", params![key]))
            .await
            .map(drop)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let conn = self.inner.reader();
        conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .map(drop)
            .map_err(|e| self.inner.failed(e))
    }

    fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    fn active_sessions(&self) -> Option<u64> {
        Some(self.inner.records.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Connection {
        let conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .expect("schema");
        conn
    }

    fn insert(
        k: &'static str,
        then_fail: bool,
    ) -> (
        Box<dyn Pending>,
        tokio::sync::oneshot::Receiver<Result<(), Failed>>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let f = move |c: &Connection, _now: u64| {
            c.execute("INSERT INTO t (k) VALUES (?1)", [k])?;
            if then_fail {
                c.execute("INSERT INTO no_such_table VALUES (1)", [])?;
            }
            Ok(())
        };
        let w = Write {
            f: Some(f),
            out: None,
            tx,
        };
        (Box::new(w), rx)
    }

    fn keys(c: &Connection) -> Vec<String> {
        let mut s = c.prepare("SELECT k FROM t ORDER BY k").expect("select");
        s.query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("keys")
    }

    #[test]
    fn a_failed_write_takes_back_its_own_statements_and_no_others() {
        let conn = table();
        let (a, ra) = insert("a", false);
        let (b, rb) = insert("b", true);
        let (c, rc) = insert("c", false);
        let mut batch = vec![a, b, c];
        let committed =
            run_batch(&conn, &mut batch, 0).map_err(|e| StoreError::Unavailable(e.to_string()));
        assert!(committed.is_ok());
        for w in batch {
            w.answer(committed.clone());
        }
        assert_eq!(keys(&conn), ["a", "c"], "b's first insert was rolled back");
        assert!(matches!(ra.blocking_recv(), Ok(Ok(()))));
        assert!(matches!(rb.blocking_recv(), Ok(Err(Failed::Write(_)))));
        assert!(matches!(rc.blocking_recv(), Ok(Ok(()))));
    }

    #[test]
    fn a_lone_failed_write_takes_back_its_statements_and_the_next_batch_commits() {
        let conn = table();
        let (a, ra) = insert("a", true);
        let mut batch = vec![a];
        let committed =
            run_batch(&conn, &mut batch, 0).map_err(|e| StoreError::Unavailable(e.to_string()));
        assert!(committed.is_ok(), "its failure is its own, not the batch's");
        for w in batch {
            w.answer(committed.clone());
        }
        assert!(keys(&conn).is_empty(), "a's first insert was rolled back");
        assert!(matches!(ra.blocking_recv(), Ok(Err(Failed::Write(_)))));
        // The transaction was ended: the next batch begins and commits.
        let (b, rb) = insert("b", false);
        let mut batch = vec![b];
        let committed =
            run_batch(&conn, &mut batch, 0).map_err(|e| StoreError::Unavailable(e.to_string()));
        for w in batch {
            w.answer(committed.clone());
        }
        assert!(matches!(rb.blocking_recv(), Ok(Ok(()))));
        assert_eq!(keys(&conn), ["b"]);
    }

    #[test]
    fn a_batch_that_cannot_begin_answers_every_write_with_its_failure() {
        let conn = table();
        // A transaction already open: BEGIN IMMEDIATE fails, nothing runs.
        conn.execute_batch("BEGIN").expect("begin");
        let (a, ra) = insert("a", false);
        let mut batch = vec![a];
        let committed =
            run_batch(&conn, &mut batch, 0).map_err(|e| StoreError::Unavailable(e.to_string()));
        assert!(committed.is_err());
        for w in batch {
            w.answer(committed.clone());
        }
        assert!(matches!(ra.blocking_recv(), Ok(Err(Failed::Batch(_)))));
    }
}
