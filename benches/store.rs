//! Criterion benches of the session stores' writes on the login path: each login
//! marks its state used (`first_use`) and indexes its session under its user,
//! session id and login name (`index_all`). The embedded store runs them on its
//! writer thread, a transaction per batch; one login at a time here, so each is a
//! batch of its own, as at a moderate login rate. Compare figures within one run.
//!
//! `cargo bench -p oneaccess-gateway --bench store`

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use oneaccess_gateway::session::store::{EmbeddedStore, Store};

const HOUR: Duration = Duration::from_secs(3600);

fn login_writes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("oag-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = EmbeddedStore::open(&dir, HOUR).expect("store");
    let n = AtomicU64::new(0);
    // A few thousand users logging in again and again, each login with a new
    // state and session id: the tables grow as a busy day's do.
    c.bench_function("store/login_writes (embedded)", |b| {
        b.iter(|| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            let user = i % 5000;
            rt.block_on(async {
                let state = format!("use:state-{i:016x}-Zm9vYmFyYmF6");
                assert!(store.first_use(&state, HOUR).await.expect("first use"));
                let keys = [
                    format!("idx:sub:{user:08}-c7a1-4e2b"),
                    format!("idx:sid:{i:016x}-5f0d"),
                    format!("idx:name:user{user}"),
                ];
                let member = format!("{i:024x}");
                store.index_all(&keys, &member, HOUR).await.expect("index");
            })
        })
    });
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, login_writes);
criterion_main!(benches);
