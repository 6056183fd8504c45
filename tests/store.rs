//! One suite, every store: the same checks run against the embedded store (a
//! SQLite file), the in-memory store and real Redis deployments: one server, one
//! over TLS with a client certificate, a master with a replica behind three
//! sentinels and a three-master cluster (each plain, and over TLS), each logged
//! in to as an ACL user. Then what only each has to show: the embedded store keeps
//! everything across a reopen, shares its file with a second process's store,
//! and makes the tables earlier gateways open (a rollback); Redis fails fast
//! when down and recovers when it is back; a wrong password or an unknown CA is
//! refused with a clear error.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_nodes::{self, Cluster, RedisPki, SentinelGroup, ACL_USER};
use common::{redis_calls, RedisServer};
use oneaccess_gateway::config::{RedisSettings, RedisTarget, RedisTls};
use oneaccess_gateway::secret::Secret;
use oneaccess_gateway::session::store::{EmbeddedStore, MemoryStore, RedisStore, Store};

const HOUR: Duration = Duration::from_secs(3600);
/// A revocation time in unix milliseconds, as sessions use them.
const T: u64 = 1_700_000_000_000;

async fn suite(store: Arc<dyn Store>) {
    // Records.
    assert_eq!(store.load("ses:none", None).await.expect("load"), None);
    store.save("ses:a", b"record-a", HOUR).await.expect("save");
    assert_eq!(
        store.load("ses:a", None).await.expect("load"),
        Some(b"record-a".to_vec())
    );
    store.remove("ses:a").await.expect("remove");
    assert_eq!(store.load("ses:a", None).await.expect("load"), None);

    // Expiry, and the idle timeout sliding it.
    store
        .save("ses:short", b"x", Duration::from_secs(1))
        .await
        .expect("save");
    store
        .save("ses:slide", b"y", Duration::from_secs(2))
        .await
        .expect("save");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        store
            .load("ses:slide", Some(Duration::from_secs(4)))
            .await
            .expect("load"),
        Some(b"y".to_vec())
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        store.load("ses:short", None).await.expect("load"),
        None,
        "expired"
    );
    assert_eq!(
        store.load("ses:slide", None).await.expect("load"),
        Some(b"y".to_vec()),
        "the idle load pushed the expiry out"
    );

    // Indexes.
    store.index("sub:u1", "s1", HOUR).await.expect("index");
    store.index("sub:u1", "s2", HOUR).await.expect("index");
    store.index("sub:u1", "s2", HOUR).await.expect("index");
    assert!(store.has_index("sub:u1").await.expect("has"));
    assert!(!store.has_index("sub:u2").await.expect("has"));
    let mut members = store.take_index("sub:u1").await.expect("take");
    members.sort();
    assert_eq!(members, ["s1", "s2"]);
    assert!(store.take_index("sub:u1").await.expect("take").is_empty());
    assert!(!store.has_index("sub:u1").await.expect("has"));
    // A session that ends by itself leaves its indexes; the last one out
    // leaves no set behind.
    store.index("sub:u3", "s1", HOUR).await.expect("index");
    store.index("sub:u3", "s2", HOUR).await.expect("index");
    store.unindex("sub:u3", "s1").await.expect("unindex");
    store.unindex("sub:u3", "nobody").await.expect("unindex");
    store.unindex("sub:none", "s1").await.expect("unindex");
    assert_eq!(store.take_index("sub:u3").await.expect("take"), ["s2"]);
    store.index("sub:u4", "s1", HOUR).await.expect("index");
    store.unindex("sub:u4", "s1").await.expect("unindex");
    assert!(!store.has_index("sub:u4").await.expect("has"));
    // A new session's indexes, all at once; each set keeps its other members.
    store.index("sid:x", "s0", HOUR).await.expect("index");
    let keys = ["sid:x", "sub:u5", "name:u5"].map(String::from);
    store.index_all(&keys, "s9", HOUR).await.expect("index all");
    store
        .index_all(&keys, "s9", HOUR)
        .await
        .expect("index all again");
    for key in &keys {
        let mut members = store.take_index(key).await.expect("take");
        members.sort();
        let want: &[&str] = if key == "sid:x" {
            &["s0", "s9"]
        } else {
            &["s9"]
        };
        assert_eq!(members, want, "{key}");
    }

    // Revocations: sessions issued at or before the mark, not after.
    assert!(!store
        .is_revoked(&["sid:a", "sub:b"], T + 100)
        .await
        .expect("check"));
    store.revoke("sid:a", T + 100, HOUR).await.expect("revoke");
    assert!(store
        .is_revoked(&["sid:a", "sub:b"], T + 100)
        .await
        .expect("check"));
    assert!(store
        .is_revoked(&["sub:b", "sid:a"], T + 50)
        .await
        .expect("check"));
    assert!(
        !store.is_revoked(&["sid:a"], T + 101).await.expect("check"),
        "a later login stays"
    );
    assert!(!store
        .is_revoked(&["sid:other"], T + 10)
        .await
        .expect("check"));
    assert!(!store.is_revoked(&[], T + 10).await.expect("check"));
    store.revoke("sid:a", T + 200, HOUR).await.expect("revoke");
    assert!(store.is_revoked(&["sid:a"], T + 150).await.expect("check"));

    // A revocation an older gateway wrote in seconds covers its whole second.
    let second = T / 1000 + 5;
    store.revoke("sid:old", second, HOUR).await.expect("revoke");
    assert!(store
        .is_revoked(&["sid:old"], second * 1000 + 999)
        .await
        .expect("check"));
    assert!(!store
        .is_revoked(&["sid:old"], second * 1000 + 1000)
        .await
        .expect("check"));

    // Single use, atomic under concurrency.
    assert!(store.first_use("use:j1", HOUR).await.expect("use"));
    assert!(!store.first_use("use:j1", HOUR).await.expect("use"));
    // A mark taken back wins again, once.
    store.release("use:j1").await.expect("release");
    assert!(store.first_use("use:j1", HOUR).await.expect("use"));
    assert!(!store.first_use("use:j1", HOUR).await.expect("use"));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.first_use("use:race", HOUR).await.expect("use") })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.expect("join"));
    }
    assert_eq!(winners, 1, "exactly one concurrent first use wins");
}

/// A fresh directory for an embedded store.
fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("oag-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The embedded store's file in `dir`.
fn store_file(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("oneaccess-gateway.db")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_the_suite() {
    let dir = fresh_dir("suite");
    suite(Arc::new(EmbeddedStore::open(&dir, HOUR).expect("store"))).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_keeps_everything_across_a_reopen() {
    let dir = fresh_dir("reopen");
    {
        let store = EmbeddedStore::open(&dir, HOUR).expect("store");
        assert!(!store.may_have_revocations());
        store.save("ses:a", b"record", HOUR).await.expect("save");
        store.index("sub:u", "a", HOUR).await.expect("index");
        store.revoke("sid:s1", T + 100, HOUR).await.expect("revoke");
        assert!(store.first_use("use:state", HOUR).await.expect("use"));
        store
            .save("ses:gone", b"x", Duration::from_millis(10))
            .await
            .expect("save");
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let store = EmbeddedStore::open(&dir, HOUR).expect("reopened");
    assert_eq!(
        store.load("ses:a", None).await.expect("load"),
        Some(b"record".to_vec())
    );
    assert_eq!(store.load("ses:gone", None).await.expect("load"), None);
    assert!(store.has_index("sub:u").await.expect("has"));
    // The revocation is back in memory before any request asks.
    assert!(store.may_have_revocations());
    assert!(store.is_revoked(&["sid:s1"], T + 100).await.expect("check"));
    assert!(!store.is_revoked(&["sid:s1"], T + 101).await.expect("check"));
    assert!(!store.first_use("use:state", HOUR).await.expect("use"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The schema earlier gateways made, and open.
const SCHEMA_BEFORE: &str = "
CREATE TABLE records (key TEXT PRIMARY KEY, value BLOB NOT NULL, until INTEGER NOT NULL);
CREATE TABLE members (key TEXT NOT NULL, member TEXT NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (key, member));
CREATE TABLE revoked (key TEXT PRIMARY KEY, at INTEGER NOT NULL, until INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX revoked_seq ON revoked (seq);
CREATE TABLE used (key TEXT PRIMARY KEY, until INTEGER NOT NULL);
";

fn schema(conn: &rusqlite::Connection) -> Vec<(String, String)> {
    conn.prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        .expect("select")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("schema")
}

/// A rollback: an earlier gateway must start on the file this one made. Its
/// start-up sweeps expired entries by rowid, so a table without one (tried
/// for speed on 2026-12-01) made it refuse to start: "no such column: rowid".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_file_keeps_the_tables_earlier_gateways_open() {
    let dir = fresh_dir("rollback");
    let store = EmbeddedStore::open(&dir, HOUR).expect("store");
    assert!(store.first_use("use:s", HOUR).await.expect("use"));
    store.index("idx:sub:u", "m", HOUR).await.expect("index");
    drop(store);
    let made = rusqlite::Connection::open(store_file(&dir)).expect("file");
    let before = rusqlite::Connection::open_in_memory().expect("memory");
    before.execute_batch(SCHEMA_BEFORE).expect("earlier schema");
    let strip = |v: Vec<(String, String)>| -> Vec<(String, String)> {
        v.into_iter()
            .map(|(n, sql)| (n, sql.replace(" IF NOT EXISTS", "")))
            .collect()
    };
    assert_eq!(strip(schema(&made)), strip(schema(&before)));
    // What an earlier gateway's sweep runs, on every table.
    for table in ["records", "members", "revoked", "used"] {
        made.execute(
            &format!(
                "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE until <= ?1 LIMIT ?2)"
            ),
            rusqlite::params![0, 1000],
        )
        .unwrap_or_else(|e| panic!("{table}: {e}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_embedded_stores_share_one_file_as_an_upgrade_does() {
    let dir = fresh_dir("shared");
    let old = Arc::new(EmbeddedStore::open(&dir, HOUR).expect("old"));
    let new = Arc::new(EmbeddedStore::open(&dir, HOUR).expect("new"));
    // Single use holds across both.
    assert!(old.first_use("use:t", HOUR).await.expect("use"));
    assert!(!new.first_use("use:t", HOUR).await.expect("use"));
    // A revocation written by one reaches the other's memory within a second or two.
    old.revoke("sub:alice", T + 500, HOUR)
        .await
        .expect("revoke");
    let mut seen = false;
    for _ in 0..30 {
        if new
            .is_revoked(&["sub:alice"], T + 400)
            .await
            .expect("check")
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the other store never saw the revocation");
    // Concurrent first uses from both: one winner.
    let tasks: Vec<_> = (0..20)
        .map(|k| {
            let s = if k % 2 == 0 { old.clone() } else { new.clone() };
            tokio::spawn(async move { s.first_use("use:both", HOUR).await.expect("use") })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.expect("join"));
    }
    assert_eq!(winners, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Resident memory of this process mapped from `file` (kB, from /proc/self/smaps).
fn resident_kb_mapped_from(file: &std::path::Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
    let name = file.to_str().expect("utf-8 path");
    let mut ours = false;
    let mut kb = 0;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            // A mapping's first line: its address range, then its file last.
            Some(range) if range.contains('-') && !range.ends_with(':') => {
                ours = line.ends_with(name);
            }
            Some("Rss:") if ours => {
                kb += words
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            _ => {}
        }
    }
    kb
}

/// The store's file is read through SQLite's page cache, not mapped in: a
/// mapped file's pages count in the gateway's resident memory for as long as
/// it runs, and the file grows with every login's single-use mark and indexes
/// (26 MiB of a gateway's 106 MiB peak after 27,000 logins in the load
/// benchmark). Filled here with 4 MiB of sessions, 4,000 indexes and 2,000
/// single-use marks; every session and one index of each pair read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_s_file_is_not_mapped_into_the_gateway_s_memory() {
    let dir = fresh_dir("unmapped");
    let store = Arc::new(EmbeddedStore::open(&dir, HOUR).expect("store"));
    let record = vec![b'r'; 2048];
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let (s, record) = (store.clone(), record.clone());
        tasks.push(tokio::spawn(async move {
            s.save(&format!("ses:{i:06}"), &record, HOUR).await?;
            let keys = [format!("idx:sub:{i:06}"), format!("idx:sid:{i:06}")];
            s.index_all(&keys, &format!("{i:024}"), HOUR).await?;
            s.first_use(&format!("use:state:{i:043}"), HOUR).await
        }));
    }
    for t in tasks {
        assert!(t.await.expect("join").expect("write"));
    }
    for i in 0..2000 {
        assert_eq!(
            store
                .load(&format!("ses:{i:06}"), None)
                .await
                .expect("load"),
            Some(record.clone())
        );
        assert!(store
            .has_index(&format!("idx:sid:{i:06}"))
            .await
            .expect("has"));
    }
    let file = store_file(&dir);
    let size = std::fs::metadata(&file).expect("file").len();
    assert!(
        size > 4 << 20,
        "the file holds what was written: {size} bytes"
    );
    assert_eq!(
        resident_kb_mapped_from(&file),
        0,
        "kB of the store's file resident in this process"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes that arrive together share one commit on the writer thread: each
/// still gets its own answer, and all of them are in the file after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writes_at_once_each_get_their_answer_and_all_are_kept() {
    let dir = fresh_dir("batched");
    {
        let store = Arc::new(EmbeddedStore::open(&dir, HOUR).expect("store"));
        let mut tasks = Vec::new();
        for i in 0..300 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                match i % 3 {
                    // One key for a hundred first uses: one of them wins.
                    0 => usize::from(s.first_use("use:shared", HOUR).await.expect("use")),
                    1 => {
                        s.save(&format!("ses:{i}"), format!("r{i}").as_bytes(), HOUR)
                            .await
                            .expect("save");
                        0
                    }
                    _ => {
                        let keys = [format!("sub:{i}"), format!("sid:{i}")];
                        s.index_all(&keys, &format!("m{i}"), HOUR)
                            .await
                            .expect("index");
                        0
                    }
                }
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += t.await.expect("join");
        }
        assert_eq!(winners, 1, "exactly one of the concurrent first uses wins");
    }
    let store = EmbeddedStore::open(&dir, HOUR).expect("reopened");
    for i in (1..300).step_by(3) {
        assert_eq!(
            store.load(&format!("ses:{i}"), None).await.expect("load"),
            Some(format!("r{i}").into_bytes()),
            "session {i} was not kept"
        );
    }
    for i in (2..300).step_by(3) {
        assert_eq!(
            store.take_index(&format!("sid:{i}")).await.expect("take"),
            vec![format!("m{i}")]
        );
        assert!(store.has_index(&format!("sub:{i}")).await.expect("has"));
    }
    assert!(!store.first_use("use:shared", HOUR).await.expect("use"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_of_a_failed_batch_counts_one_store_error() {
    let dir = fresh_dir("locked");
    let store = Arc::new(EmbeddedStore::open(&dir, HOUR).expect("store"));
    let before = store.errors();
    // Another process holds the file's write lock: the writer's BEGIN
    // IMMEDIATE waits out its busy timeout (5 s), then fails the whole batch.
    let other = rusqlite::Connection::open(store_file(&dir)).expect("open");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let save = |i: usize| {
        let s = store.clone();
        tokio::spawn(async move { s.save(&format!("ses:w{i}"), b"r", HOUR).await })
    };
    // The first write waits alone in its batch; the next three arrive while
    // it waits, and the writer takes them together as the next batch.
    let first = save(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rest: Vec<_> = (1..=3).map(save).collect();
    assert!(first.await.expect("join").is_err());
    for t in rest {
        assert!(t.await.expect("join").is_err());
    }
    assert_eq!(
        store.errors() - before,
        4,
        "one error per failed write, whichever batch it was in"
    );
    other.execute_batch("ROLLBACK").expect("unlock");
    store
        .save("ses:after", b"r", HOUR)
        .await
        .expect("the store writes again");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_suite() {
    suite(Arc::new(MemoryStore::new(HOUR))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_the_suite() {
    let redis = RedisServer::start();
    let store =
        RedisStore::new(&RedisSettings::single(&redis.url(), "test:"), HOUR).expect("store");
    suite(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_fast_and_recovers() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let store =
        RedisStore::new(&RedisSettings::single(&redis.url(), "test:"), HOUR).expect("store");
    store.save("ses:k", b"v", HOUR).await.expect("save");
    redis.stop();
    let started = Instant::now();
    let err = store.load("ses:k", None).await.expect_err("Redis is down");
    assert!(err.to_string().contains("unavailable"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Back (empty: no persistence), and the same store object works again.
    let _redis = RedisServer::start_on(port);
    let mut ok = false;
    for _ in 0..40 {
        if store.save("ses:k2", b"v2", HOUR).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ok, "the store did not reconnect");
    assert_eq!(
        store.load("ses:k2", None).await.expect("load"),
        Some(b"v2".to_vec())
    );
}

/// Polls `check` every 10 ms until it holds, for at most `limit`; how long it took.
async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// A Redis store whose copy of the revocations has caught up with the stream.
async fn up_to_date(settings: &RedisSettings) -> RedisStore {
    let store = RedisStore::new(settings, HOUR).expect("store");
    until(
        "the store's copy is up to date",
        Duration::from_secs(5),
        async || store.revocations_in_memory().is_some(),
    )
    .await;
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_revocations_reach_every_gateway_s_copy_and_checks_ask_no_network() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let settings = RedisSettings::single(&redis.url(), "test:");
    let a = RedisStore::new(&settings, HOUR).expect("store");
    // B's copy catches up with the (empty) stream: nothing to check then.
    let b = up_to_date(&settings).await;
    assert!(!b.may_have_revocations(), "nothing revoked yet");

    // A revocation made on A reaches B without B asking for it.
    a.revoke("sub:u1", T + 100, HOUR).await.expect("revoke");
    assert!(a.is_revoked(&["sub:u1"], T + 100).await.expect("check"));
    let took = until(
        "b sees a's revocation",
        Duration::from_secs(2),
        async || b.is_revoked(&["sub:u1"], T + 100).await.expect("check"),
    )
    .await;
    eprintln!("a revocation made on one store reached the other's copy {took:?} after the call that made it returned");
    assert!(b.may_have_revocations());
    assert!(!b.is_revoked(&["sub:u1"], T + 101).await.expect("check"));

    // The per-request check asks Redis nothing while the copy is fresh.
    let mgets = redis_calls(port, "mget");
    for i in 0..200 {
        let key = format!("sub:u{i}");
        let revoked = b.is_revoked(&[&key, "sid:s"], T + 50).await.expect("check");
        assert_eq!(revoked, i == 1, "{key}");
    }
    assert_eq!(redis_calls(port, "mget"), mgets, "the checks went to Redis");

    // A gateway that starts later reads what was revoked before, from the
    // stream: the key itself gone, its copy still refuses.
    redis::cmd("DEL")
        .arg("test:rev:sub:u1")
        .exec(&mut redis_nodes::admin(port))
        .expect("DEL");
    let c = up_to_date(&settings).await;
    assert!(c.is_revoked(&["sub:u1"], T + 100).await.expect("check"));
    assert!(!c.is_revoked(&["sub:u1"], T + 101).await.expect("check"));
    assert_eq!(redis_calls(port, "mget"), mgets, "c's check went to Redis");

    // Cut off from Redis, a copy stops answering within its freshness (1.5 s),
    // then every check fails (503), as without the copy.
    redis.stop();
    let took = until("b's check fails", Duration::from_secs(5), async || {
        b.is_revoked(&["sub:u1"], T + 100).await.is_err()
    })
    .await;
    eprintln!("with Redis down, the copy stopped answering after {took:?}");
    // Back (empty, no persistence): the copy is fresh again and answers, with
    // what it knew (the key and the entry are gone from this Redis).
    let _redis = RedisServer::start_on(port);
    until(
        "b's copy is fresh again",
        Duration::from_secs(10),
        async || b.is_revoked(&["sub:u1"], T + 100).await.unwrap_or(false),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_prefixed_so_deployments_can_share_a_redis() {
    let redis = RedisServer::start();
    let a = RedisStore::new(&RedisSettings::single(&redis.url(), "a:"), HOUR).expect("store");
    let b = RedisStore::new(&RedisSettings::single(&redis.url(), "b:"), HOUR).expect("store");
    a.save("ses:x", b"from-a", HOUR).await.expect("save");
    assert_eq!(b.load("ses:x", None).await.expect("load"), None);
    assert!(a.first_use("use:j", HOUR).await.expect("use"));
    assert!(b.first_use("use:j", HOUR).await.expect("use"));
}

/// `settings` logged in as the nodes' ACL user.
fn as_acl_user(settings: RedisSettings) -> RedisSettings {
    RedisSettings {
        username: Some(ACL_USER.0.into()),
        password: Some(Secret::new(ACL_USER.1.into())),
        ..settings
    }
}

fn target(target: RedisTarget) -> RedisSettings {
    RedisSettings {
        target,
        ..RedisSettings::single("", "test:")
    }
}

/// The ACL user's settings for `group`'s master, found through its sentinels.
fn sentinel_settings(group: &SentinelGroup) -> RedisSettings {
    as_acl_user(target(RedisTarget::Sentinel {
        master: redis_nodes::MASTER_NAME.into(),
        nodes: group.nodes(),
        db: 0,
        username: None,
        password: None,
    }))
}

/// `pki`'s CA, and its client certificate when `client` is set.
fn tls(pki: &RedisPki, client: bool) -> Option<RedisTls> {
    let read = |p: &std::path::Path| std::fs::read(p).expect("PEM");
    Some(RedisTls {
        ca: Some(read(&pki.ca)),
        client: client.then(|| (read(&pki.client_cert), Secret::new(read(&pki.client_key)))),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_passes_the_suite_with_keys_on_every_node() {
    let cluster = Cluster::start(None);
    let settings = as_acl_user(target(RedisTarget::Cluster {
        nodes: cluster.node_list(),
    }));
    let store = Arc::new(RedisStore::new(&settings, HOUR).expect("store"));
    suite(store.clone()).await;
    // Sharded for real: 40 records land on all three masters (each misses
    // them all with a chance of (2/3)^40, about 1e-7).
    for i in 0..40 {
        let key = format!("ses:spread-{i}");
        store.save(&key, b"r", HOUR).await.expect("save");
    }
    for n in &cluster.nodes {
        let keys: u64 = redis::cmd("DBSIZE")
            .query(&mut redis_nodes::admin(n.port))
            .expect("DBSIZE");
        assert!(keys > 0, "node {} holds no key", n.port);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_over_tls_passes_the_suite() {
    let pki = RedisPki::new();
    let cluster = Cluster::start(Some(&pki));
    let settings = RedisSettings {
        tls: tls(&pki, false),
        ..as_acl_user(target(RedisTarget::Cluster {
            nodes: cluster.node_list(),
        }))
    };
    suite(Arc::new(RedisStore::new(&settings, HOUR).expect("store"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_store_passes_the_suite() {
    let group = SentinelGroup::start();
    let settings = sentinel_settings(&group);
    suite(Arc::new(RedisStore::new(&settings, HOUR).expect("store"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_over_tls_passes_the_suite() {
    let pki = RedisPki::new();
    let group = SentinelGroup::start_with(Some(&pki));
    let settings = RedisSettings {
        tls: tls(&pki, false),
        ..sentinel_settings(&group)
    };
    suite(Arc::new(RedisStore::new(&settings, HOUR).expect("store"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_with_a_client_certificate_passes_the_suite() {
    let pki = RedisPki::new();
    let server = redis_nodes::tls_server(&pki, true);
    let url = format!("rediss://127.0.0.1:{}/0", server.port);
    let settings = RedisSettings {
        tls: tls(&pki, true),
        ..as_acl_user(RedisSettings::single(&url, "test:"))
    };
    suite(Arc::new(RedisStore::new(&settings, HOUR).expect("store"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tls_refuses_an_unknown_ca_and_a_missing_client_certificate() {
    let pki = RedisPki::new();
    let server = redis_nodes::tls_server(&pki, true);
    let url = format!("rediss://127.0.0.1:{}/0", server.port);
    let read = |p: &std::path::Path| std::fs::read(p).expect("PEM");
    let other_ca = RedisSettings {
        tls: Some(RedisTls {
            ca: Some(read(&pki.other_ca)),
            client: tls(&pki, true).and_then(|t| t.client),
        }),
        ..as_acl_user(RedisSettings::single(&url, "test:"))
    };
    let store = RedisStore::new(&other_ca, HOUR).expect("store");
    let err = store
        .ping()
        .await
        .expect_err("a server no trusted CA signed");
    assert!(err.to_string().contains("certificate"), "{err}");
    let no_client_cert = RedisSettings {
        tls: tls(&pki, false),
        ..as_acl_user(RedisSettings::single(&url, "test:"))
    };
    let store = RedisStore::new(&no_client_cert, HOUR).expect("store");
    store
        .ping()
        .await
        .expect_err("the server asks for a client certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_redis_password_is_refused_with_a_clear_error() {
    let pki = RedisPki::new();
    let server = redis_nodes::tls_server(&pki, false);
    let url = format!("rediss://127.0.0.1:{}/0", server.port);
    let good = RedisSettings {
        tls: tls(&pki, false),
        ..as_acl_user(RedisSettings::single(&url, "test:"))
    };
    RedisStore::new(&good, HOUR)
        .expect("store")
        .ping()
        .await
        .expect("the ACL user logs in");
    let wrong = RedisSettings {
        password: Some(Secret::new("not-the-password".into())),
        ..good.clone()
    };
    let err = RedisStore::new(&wrong, HOUR)
        .expect("store")
        .ping()
        .await
        .expect_err("a wrong password");
    let text = err.to_string();
    assert!(
        text.contains("WRONGPASS") || text.to_lowercase().contains("auth"),
        "{text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_switchover_is_followed_when_the_old_master_answers_readonly() {
    let group = SentinelGroup::start();
    let settings = sentinel_settings(&group);
    let store = RedisStore::new(&settings, HOUR).expect("store");
    store.save("ses:before", b"v", HOUR).await.expect("save");
    group.sync_replica();
    // A switchover: the old master stays up, demoted to a replica of the new
    // one, so the store's open connection to it still answers, but writes get
    // READONLY.
    let old = group.master.port;
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(redis_nodes::MASTER_NAME)
        .query(&mut redis_nodes::admin(group.sentinels[0].port))
        .expect("SENTINEL FAILOVER");
    redis_nodes::wait_for("the switchover", Duration::from_secs(30), || {
        group.master_port().is_some_and(|p| p != old)
    });
    redis_nodes::wait_for(
        "the old master to be a replica",
        Duration::from_secs(30),
        || {
            // It drops its clients as it turns into a replica: a connection
            // refused or reset then is "not yet".
            let Ok(mut c) = redis_nodes::try_admin(old, None) else {
                return false;
            };
            let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).unwrap_or_default();
            matches!(role.first(), Some(redis::Value::BulkString(r)) if r.as_slice() == b"slave")
        },
    );
    let started = Instant::now();
    let mut failures = 0;
    while store.save("ses:after", b"w", HOUR).await.is_err() {
        failures += 1;
        assert!(started.elapsed() < Duration::from_secs(10), "never wrote");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failures <= 2, "{failures} failed writes");
    let new = group.master_port().expect("master");
    let written: Option<Vec<u8>> = redis::cmd("GET")
        .arg("test:ses:after")
        .query(&mut redis_nodes::admin(new))
        .expect("GET");
    assert_eq!(
        written.as_deref(),
        Some(&b"w"[..]),
        "written to the new master"
    );
    assert_eq!(
        store.load("ses:before", None).await.expect("load"),
        Some(b"v".to_vec())
    );
}
