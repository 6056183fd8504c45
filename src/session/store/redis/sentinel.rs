//! Redis behind Sentinel: the master's address is asked of the sentinels, and
//! asked again when the master stops answering or answers as a replica
//! (`READONLY`), so the store follows a failover without a restart. One lookup
//! at a time; while the sentinels still name a master that is gone, requests
//! fail at once (503) instead of queueing, and no request waits longer than a
//! lookup's bound.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::SentinelClient;
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, Value,
};

use super::connect::timed_out;

/// The longest one lookup may take: the sentinels asked (a few at once), the
/// master they name connected to and its role checked.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed lookup, requests fail with its error for this long instead of
/// asking again: a failover takes seconds, and a request a few milliseconds.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// The master of one Sentinel-monitored group, and the connection to it.
pub(crate) struct Master {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    config: AsyncConnectionConfig,
    /// The name the sentinels know the master by, for logs.
    name: String,
    current: ArcSwapOption<Current>,
    /// The last failed lookup, so that others do not repeat it at once.
    failed: Mutex<Option<(Instant, RedisError)>>,
}

struct Current {
    conn: MultiplexedConnection,
    /// `host:port`, for logs.
    addr: String,
}

/// A connection to the master as last found. A failure that means the master
/// is gone or demoted makes the next command ask the sentinels again.
#[derive(Clone)]
pub(crate) struct MasterConn {
    conn: MultiplexedConnection,
    current: Arc<Current>,
    master: Arc<Master>,
}

impl Master {
    pub(super) fn new(
        sentinels: SentinelClient,
        config: AsyncConnectionConfig,
        name: String,
    ) -> Master {
        Master {
            sentinels: tokio::sync::Mutex::new(sentinels),
            config,
            name,
            current: ArcSwapOption::empty(),
            failed: Mutex::new(None),
        }
    }

    /// The connection to the current master, found through the sentinels when
    /// there is none.
    pub(super) async fn conn(self: &Arc<Self>) -> RedisResult<MasterConn> {
        if let Some(c) = self.current.load_full() {
            return Ok(self.handle(c));
        }
        self.recent_failure()?;
        // One lookup at a time; the others wait for it (bounded), then use its
        // connection or its error.
        let mut sentinels = tokio::time::timeout(LOOKUP_TIMEOUT, self.sentinels.lock())
            .await
            .map_err(|_| timed_out("waiting for the sentinels"))?;
        if let Some(c) = self.current.load_full() {
            return Ok(self.handle(c));
        }
        self.recent_failure()?;
        let found = tokio::time::timeout(LOOKUP_TIMEOUT, async {
            let client = sentinels.async_get_client().await?;
            let addr = client.get_connection_info().addr().to_string();
            let conn = client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await?;
            Ok::<_, RedisError>(Current { conn, addr })
        })
        .await
        .unwrap_or_else(|_| Err(timed_out("asking the sentinels for the master")));
        match found {
            Ok(current) => {
                tracing::info!(master = %self.name, address = %current.addr, "session store (redis sentinel): connected to the master");
                let current = Arc::new(current);
                self.current.store(Some(current.clone()));
                if let Ok(mut f) = self.failed.lock() {
                    *f = None;
                }
                Ok(self.handle(current))
            }
            Err(e) => {
                if let Ok(mut f) = self.failed.lock() {
                    *f = Some((Instant::now(), e.clone()));
                }
                Err(e)
            }
        }
    }

    fn handle(self: &Arc<Self>, current: Arc<Current>) -> MasterConn {
        MasterConn {
            conn: current.conn.clone(),
            current,
            master: self.clone(),
        }
    }

    /// The error of a lookup that failed within `RETRY_AFTER`.
    fn recent_failure(&self) -> RedisResult<()> {
        match self.failed.lock().ok().and_then(|f| f.clone()) {
            Some((at, e)) if at.elapsed() < RETRY_AFTER => Err(e),
            _ => Ok(()),
        }
    }

    /// Drops `current` (if it still is the connection in use) after `e`, when
    /// `e` means the master is gone or no longer master.
    fn after_error(&self, current: &Arc<Current>, e: &RedisError) {
        if !needs_new_master(e) {
            return;
        }
        let expected = Some(current.clone());
        let was = self.current.compare_and_swap(&expected, None);
        if was.as_ref().is_some_and(|w| Arc::ptr_eq(w, current)) {
            tracing::warn!(master = %self.name, address = %current.addr, error = %e, "session store (redis sentinel): the master failed; asking the sentinels again");
        }
    }
}

/// Whether an error means the connection is to a master that is gone (closed,
/// refused, silent) or demoted to a replica by a failover.
fn needs_new_master(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

impl ConnectionLike for MasterConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let r = self.conn.req_packed_command(cmd).await;
            if let Err(e) = &r {
                self.master.after_error(&self.current, e);
            }
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let r = self.conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &r {
                self.master.after_error(&self.current, e);
            }
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_demoted_or_lost_master_is_looked_up_again_and_a_plain_error_is_not() {
        let readonly = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "You can't write against a read only replica.",
        ));
        assert!(needs_new_master(&readonly));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(needs_new_master(&refused));
        assert!(needs_new_master(&timed_out("test")));
        let wrong_type = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "WRONGTYPE",
        ));
        assert!(!needs_new_master(&wrong_type));
    }
}
