//! Whether the identity provider answers, as the gateway last saw it: every call
//! to it counts, and when none was seen lately (or the last one failed), a login
//! asks its discovery document first. So a new user meets a 503 "sign-in is
//! unavailable" page during an outage, instead of a redirect to a provider that
//! does not answer; the gateway notices by itself when it is back.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// An answer this recent, with no failure after it, spares a login the probe:
/// an outage sends new users to a dead end for at most this long.
const FRESH: Duration = Duration::from_secs(2);
/// How long a probe that found no answer stands: during an outage, one probe
/// per this interval whatever the number of logins, and logins resume at most
/// this long after the provider is back.
const DOWN_FOR: Duration = Duration::from_secs(5);
/// The longest a login waits for the probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub(crate) struct IdpHealth {
    /// Unix milliseconds of the last answer (below 500) and the last failure.
    last_ok: AtomicU64,
    last_failure: AtomicU64,
    /// The last probe: when, and whether the provider answered. The async
    /// mutex makes probes single-flight.
    probe: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl IdpHealth {
    /// One call to the provider: answered (a status below 500) or not.
    pub(crate) fn record(&self, answered: bool) {
        let slot = if answered {
            &self.last_ok
        } else {
            &self.last_failure
        };
        slot.store(now_millis(), Ordering::Relaxed);
    }

    /// Whether the last call (or probe) was answered; `true` before any call.
    pub(crate) fn last_call_answered(&self) -> bool {
        self.last_ok.load(Ordering::Relaxed) >= self.last_failure.load(Ordering::Relaxed)
    }

    /// Whether a login should be sent to the provider now: yes after a recent
    /// answer with no failure since; otherwise as `probe` (a cheap request)
    /// finds, asked at most once per `FRESH` while it answers and per `DOWN_FOR`
    /// while it does not.
    pub(crate) async fn reachable<F: Future<Output = bool>>(
        &self,
        probe: impl FnOnce() -> F,
    ) -> bool {
        let ok = self.last_ok.load(Ordering::Relaxed);
        let failed = self.last_failure.load(Ordering::Relaxed);
        // Within one millisecond, the answer wins: a failure is followed by one.
        if ok != 0 && ok >= failed && now_millis().saturating_sub(ok) < millis(FRESH) {
            return true;
        }
        let mut last = self.probe.lock().await;
        if let Some((at, answered)) = *last {
            let stands = if answered { FRESH } else { DOWN_FOR };
            if at.elapsed() < stands {
                return answered;
            }
        }
        let answered = tokio::time::timeout(PROBE_TIMEOUT, probe())
            .await
            .unwrap_or(false);
        self.record(answered);
        *last = Some((Instant::now(), answered));
        answered
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_recent_answer_spares_the_probe_and_a_failure_asks_it() {
        let h = IdpHealth::default();
        // Nothing seen yet: the probe decides.
        assert!(!h.reachable(|| async { false }).await);
        // Its answer stands for a while: no second probe.
        assert!(!h.reachable(|| async { panic!("probed again") }).await);
        h.record(true);
        assert!(
            h.reachable(|| async { panic!("probed despite an answer") })
                .await
        );
        std::thread::sleep(Duration::from_millis(2));
        h.record(false);
        // A failure after the answer: the cached probe (false) still stands.
        assert!(!h.reachable(|| async { true }).await);
    }

    #[tokio::test]
    async fn a_probe_that_hangs_counts_as_no_answer() {
        let h = IdpHealth::default();
        let hang = || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            true
        };
        let started = Instant::now();
        assert!(!h.reachable(hang).await);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
