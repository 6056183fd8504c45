//! Many logins at once: whole logins for a while, pending logins made ahead, and
//! their callbacks (code exchange at the simulator, ID token checked) as fast as
//! they go. The callbacks' session cookies are the capacity mode's sessions.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Client;

use crate::login::{self, Jar};

/// A login taken as far as the site's callback: its URL and the site's cookies.
pub type Pending = (String, Jar);

/// How a batch of logins went.
#[derive(Debug, Default)]
pub struct Batch {
    pub ok: usize,
    pub failed: usize,
    pub elapsed: Duration,
    pub first_error: Option<String>,
    /// The session cookies made (callbacks only).
    pub cookies: Vec<String>,
}

impl Batch {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn record(&mut self, r: Result<Option<String>, String>) {
        match r {
            Ok(cookie) => {
                self.ok += 1;
                self.cookies.extend(cookie);
            }
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// Whole logins (site → simulator → callback) from `concurrency` users in a loop,
/// for `duration`.
pub async fn whole(
    client: &Client,
    url: &str,
    sim: &str,
    sso: &str,
    concurrency: usize,
    duration: Duration,
) -> Batch {
    let batch = Arc::new(Mutex::new(Batch::default()));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, sim, sso, batch) = (
            client.clone(),
            url.to_string(),
            sim.to_string(),
            sso.to_string(),
            batch.clone(),
        );
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let r = login::login(&client, &url, &sim, &sso).await.map(|_| None);
                if let Ok(mut b) = batch.lock() {
                    b.record(r);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let mut b = take(batch);
    b.elapsed = started.elapsed();
    b
}

/// `n` logins taken as far as the site's callback URL, not further.
pub async fn pending(
    client: &Client,
    url: &str,
    sim: &str,
    sso: &str,
    n: usize,
    concurrency: usize,
) -> Result<Vec<Pending>, String> {
    let (client, url) = (client.clone(), url.to_string());
    let (sim, sso) = (sim.to_string(), sso.to_string());
    let made = each(n, concurrency, move |_| {
        let (client, url, sim, sso) = (client.clone(), url.clone(), sim.clone(), sso.clone());
        async move { login::to_callback(&client, &url, &sim, &sso).await }
    })
    .await;
    made.into_iter().collect()
}

/// The callbacks of `pending` logins, `concurrency` at a time: each one a code
/// exchange at the simulator and an ID token checked by the site.
pub async fn callbacks(client: &Client, pending: Vec<Pending>, concurrency: usize) -> Batch {
    let (client, n) = (client.clone(), pending.len());
    let items: Arc<Vec<Mutex<Option<Pending>>>> =
        Arc::new(pending.into_iter().map(|p| Mutex::new(Some(p))).collect());
    let started = Instant::now();
    let results = each(n, concurrency, move |i| {
        let client = client.clone();
        let item = items[i].lock().ok().and_then(|mut g| g.take());
        async move {
            let (url, jar) = item.ok_or("a pending login was taken twice")?;
            login::callback(&client, &url, jar).await.map(Some)
        }
    })
    .await;
    let mut b = Batch {
        elapsed: started.elapsed(),
        ..Batch::default()
    };
    for r in results {
        b.record(r);
    }
    b
}

/// Runs `job(0..n)` with at most `concurrency` at a time; the results in order.
async fn each<T, F, Fut>(n: usize, concurrency: usize, job: F) -> Vec<Result<T, String>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (next, job) = (next.clone(), job.clone());
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return done;
                }
                done.push((i, job(i).await));
            }
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(part) = tasks.join_next().await {
        match part {
            Ok(p) => all.extend(p),
            Err(e) => all.push((usize::MAX, Err(format!("a login task failed: {e}")))),
        }
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

fn take(batch: Arc<Mutex<Batch>>) -> Batch {
    match Arc::try_unwrap(batch) {
        Ok(m) => m.into_inner().unwrap_or_default(),
        Err(shared) => shared
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default(),
    }
}
