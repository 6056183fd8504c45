//! A session's life: read from a request (cookie or server mode, chunked
//! cookies, idle timeout, revocations), issued after a login, written back when
//! it changes, renewed once per token generation for all its concurrent requests,
//! and ended, one or many at a time. `Sessions` is the one type the gateway asks;
//! it knows no protocol (a renewal's attempt is the caller's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::request::Parts;

use super::cache::{Kept, SessionCache};
use super::store::{Store, StoreError};
use super::{cookie, Sealer, SessionData};
use crate::config::{LoginNameClaims, SessionMode, SessionSettings};
use crate::error::AuthError;
use crate::identity::Identity;
use crate::secret::Secret;

/// How long an attempt that could not renew (the IdP unreachable, another
/// gateway renewing) stands before a request tries again: a down IdP gets one
/// attempt per session this often, not one per request.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The longest a worker answers from its copy of a server-mode session without
/// reading the store again (seconds). Every way the gateway ends or changes a
/// session reaches the copies sooner (see `server_session`); this bounds what
/// it cannot see, such as an operator deleting a record in Redis by hand.
const MAX_COPY_AGE: u64 = 30;

/// What a finished login brings to a new session.
pub struct NewSession {
    pub identity: Identity,
    /// Kept only when something needs it (logout's `id_token_hint`, a route
    /// that passes it).
    pub id_token: Option<Secret<String>>,
    pub sid: Option<String>,
    pub ticket_hash: Option<String>,
    /// Kept only when a route passes it upstream.
    pub access_token: Option<Secret<String>>,
    pub refresh_token: Option<Secret<String>>,
    /// The access token's lifetime (seconds), when the IdP said.
    pub expires_in: Option<u64>,
    /// The IdP confirmed a fresh sign-in (CAS `renew`).
    pub renewed: bool,
}

impl NewSession {
    pub fn of(identity: Identity) -> NewSession {
        NewSession {
            identity,
            id_token: None,
            sid: None,
            ticket_hash: None,
            access_token: None,
            refresh_token: None,
            expires_in: None,
            renewed: false,
        }
    }
}

/// The outcome of one renewal attempt, shared by every request that waited on it.
#[derive(Clone)]
pub(crate) enum Renewal {
    /// New tokens (or the refused refresh token dropped): the session to use
    /// from now on.
    Renewed(Arc<SessionData>),
    /// The IdP refused: the route's policy decides.
    Refused,
    /// The IdP is unreachable, or another gateway is renewing: serve as is, try
    /// again later.
    NotNow,
    /// The renewed tokens name another user: the session ends.
    Ended,
}

pub struct Sessions {
    settings: SessionSettings,
    sealer: Sealer,
    store: Arc<dyn Store>,
    /// Renewals under way or just done, per session and token generation
    /// (`id:generation`): concurrent requests of one user share one (rotated
    /// refresh tokens break otherwise: oauth2-proxy #1992, mod_auth_openidc
    /// #204), a request still carrying the old cookie gets the new session, and
    /// one with the new cookie renews again when due.
    renewals: moka::sync::Cache<String, Arc<tokio::sync::OnceCell<(Renewal, Instant)>>>,
    /// Which claim holds the user's login name, per realm: the `name:` index that
    /// user events and the admin listener end a user's sessions by.
    login_names: LoginNameClaims,
    /// How long before the access token's end a session's tokens are refreshed
    /// (seconds).
    refresh_margin: u64,
    /// Each worker's copies of the server-mode sessions it read lately.
    copies: SessionCache,
}

impl Sessions {
    pub fn new(
        settings: SessionSettings,
        store: Arc<dyn Store>,
        login_names: LoginNameClaims,
        refresh_margin: u64,
    ) -> Sessions {
        let copies = match settings.mode {
            SessionMode::Server => settings.cache_entries,
            SessionMode::Cookie => 0,
        };
        Sessions {
            copies: SessionCache::new(copies),
            refresh_margin,
            sealer: Sealer::new(&settings.keys),
            settings,
            store,
            login_names,
            renewals: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
        }
    }

    /// The sealer of session cookies, which also seals the gateway's other
    /// cookies and values (pending logins, the end-session state): one key ring.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// How long before the access token's end a session's tokens are refreshed
    /// (seconds).
    pub(crate) fn refresh_margin(&self) -> u64 {
        self.refresh_margin
    }

    /// Server-mode session reads answered by a worker's copy, and reads that
    /// went to the store; `None` when no copies are kept.
    pub(crate) fn copy_counts(&self) -> Option<(u64, u64)> {
        self.copies.counts()
    }

    /// The store the sessions live in (also the gateway's single-use marks).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The session, if the request carries a valid one, and a refreshed cookie when
    /// the idle timeout needs its last-seen time moved. The hot path: cookie mode
    /// with nothing revoked does no I/O and takes no lock; server mode costs one
    /// store lookup, or none while the worker's copy answers.
    pub async fn of(
        &self,
        parts: &Parts,
        now: u64,
    ) -> Result<Option<(SessionData, Vec<String>)>, StoreError> {
        let name = self.settings.cookie_name.as_str();
        for h in parts.headers.get_all(http::header::COOKIE) {
            for (n, main) in cookie::pairs(h.as_bytes()) {
                if n != name {
                    continue;
                }
                // A large session spans chunk cookies; a bad count or a missing
                // chunk is no session.
                let Some(v) = cookie::assemble(name, main, |c| cookie::request_cookie(parts, c))
                else {
                    tracing::debug!("session cookie chunks refused");
                    continue;
                };
                let found = match self.settings.mode {
                    SessionMode::Cookie => self.cookie_session(parts, name, &v, now).await?,
                    SessionMode::Server => self.server_session(name, &v, now).await?,
                };
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        Ok(None)
    }

    async fn cookie_session(
        &self,
        parts: &Parts,
        name: &str,
        value: &str,
        now: u64,
    ) -> Result<Option<(SessionData, Vec<String>)>, StoreError> {
        let mut data = match super::open(&self.sealer, name, value, now) {
            Ok(d) => d,
            // Debug only: a stale cookie after a key rotation or expiry is normal.
            Err(e) => {
                tracing::debug!(reason = %e, "session cookie refused");
                return Ok(None);
            }
        };
        let idle = self.settings.idle_timeout.map(|d| d.as_secs());
        if idle.is_some_and(|idle| now >= data.last_seen + idle) {
            tracing::debug!("session idle for too long");
            return Ok(None);
        }
        if self.is_revoked(&data).await? {
            tracing::debug!(user = %data.identity.sub, "session revoked");
            return Ok(None);
        }
        // Move last-seen forward at most every quarter of the idle timeout, so an
        // active user is not cut off and a cookie is not re-sealed on every request.
        let refresh = match idle {
            Some(idle) if now >= data.last_seen + (idle / 4).max(1) => {
                data.last_seen = now;
                let left = data.expires_at.saturating_sub(now);
                self.cookie_value(&data)
                    .and_then(|v| self.set_cookies(parts, &v, left))
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        Ok(Some((data, refresh)))
    }

    async fn server_session(
        &self,
        name: &str,
        value: &str,
        now: u64,
    ) -> Result<Option<(SessionData, Vec<String>)>, StoreError> {
        let Some(id) = self
            .sealer
            .open(name, value)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        else {
            tracing::debug!("session cookie refused");
            return Ok(None);
        };
        let copy = self.copies.get(&id, |kept| self.copy_answers(kept, now));
        self.copies.count(copy.is_some());
        let read = copy.is_none();
        let data = match copy {
            Some(data) => data,
            None => {
                let record = self
                    .store
                    .load(&format!("ses:{id}"), self.settings.idle_timeout)
                    .await?;
                match record.map(|r| super::record::decode(&r)) {
                    Some(Ok(data)) if now < data.expires_at && data.id == id => data,
                    _ => {
                        self.copies.forget(&id);
                        return Ok(None);
                    }
                }
            }
        };
        // Checked on both paths, as a cookie-mode session is: every end of a
        // session writes a revocation before it deletes the record (`end`,
        // `end_all`), so a record that outlived its delete (the store failed
        // between the two) is refused too, not only once a copy of it is taken.
        if self.is_revoked(&data).await? {
            tracing::debug!(user = %data.identity.sub, "session revoked");
            self.copies.forget(&id);
            return Ok(None);
        }
        if read {
            self.copies.put(&data, now);
        }
        Ok(Some((data, Vec::new())))
    }

    /// Whether this worker's copy of a server-mode session may answer instead of
    /// the store, revocations aside (the caller checks those next, in memory).
    /// Only while nothing could have changed the record unseen:
    /// - the revocations are all in memory (Redis: its copy is up to date), for
    ///   every end of a session on any gateway is a revocation there: a logout
    ///   (`end`), a back-channel or single logout, a user event, `/sessions/revoke`
    ///   (`end_all`);
    /// - no refresh is due: only a refresh rewrites a record, and it comes only
    ///   when due, so a copy older than a refresh elsewhere goes to the store;
    /// - the store slid the idle expiry less than a quarter of the idle timeout
    ///   ago (a read slides it; an active user's record must not expire);
    /// - it is younger than `MAX_COPY_AGE`, and the session has not ended.
    fn copy_answers(&self, kept: &Kept, now: u64) -> bool {
        let d = &kept.data;
        let slide = self.settings.idle_timeout.map(|i| (i.as_secs() / 4).max(1));
        now < d.expires_at
            && now < kept.read_at.saturating_add(MAX_COPY_AGE)
            && slide.is_none_or(|s| now < kept.read_at.saturating_add(s))
            && !d.refresh_due(now, self.refresh_margin)
            && self.store.revocations_in_memory().is_some()
    }

    /// Whether a logout, back-channel or CAS single logout revoked this session
    /// (or the tokens of its user). Free while nothing was ever revoked.
    pub async fn is_revoked(&self, data: &SessionData) -> Result<bool, StoreError> {
        if !self.store.may_have_revocations() {
            return Ok(false);
        }
        let issued = data.issued_millis();
        if let Some(memory) = self.store.revocations_in_memory() {
            // Every store but Redis with its copy behind: each key built in
            // one buffer and looked up in place.
            let now = super::store::now_millis();
            let mut revoked = false;
            self.visit_revocation_keys(data, &mut |key| {
                revoked = memory.revokes(key, issued, now);
                !revoked
            });
            return Ok(revoked);
        }
        let mut keys = Vec::with_capacity(5);
        self.visit_revocation_keys(data, &mut |key| {
            keys.push(key.to_string());
            true
        });
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.store.is_revoked(&keys, issued).await
    }

    /// Makes a session (in the store too, in server mode), indexes it for
    /// back-channel and single logout, and returns the session cookie's value.
    pub async fn issue(
        &self,
        login: NewSession,
        realm: &crate::config::Realm,
        now: u64,
    ) -> Result<String, AuthError> {
        let s = &self.settings;
        let data = SessionData {
            identity: login.identity,
            issued_at: now,
            issued_ms: (super::millis_of(now) % 1000) as u16,
            expires_at: now + s.lifetime.as_secs(),
            realm: realm.clone(),
            id_token: login.id_token,
            id: crate::secret::random_token().map_err(|e| AuthError::Internal(e.to_string()))?,
            sid: login.sid,
            ticket_hash: login.ticket_hash,
            last_seen: now,
            access_expires: login.expires_in.map(|e| now + e),
            refresh_token: login.refresh_token.filter(|_| !s.minimal),
            access_token: login.access_token,
            generation: 0,
            renewed: login.renewed,
        };
        if s.mode == SessionMode::Server {
            let record = super::record::encode(&data, s.record_format);
            let ttl = s.idle_timeout.unwrap_or(s.lifetime).min(s.lifetime);
            self.store
                .save(&format!("ses:{}", data.id), &record, ttl)
                .await?;
            self.copies.put(&data, now);
        }
        // In both modes: a back-channel, single logout or user event tells how many
        // sessions it ended (and deletes server-mode records); CAS single logout
        // acts only on tickets this gateway issued a session for.
        let member = index_member(&data);
        self.store
            .index_all(&self.index_keys(&data), &member, s.lifetime)
            .await?;
        if self.login_name(&data).is_none() {
            tracing::warn!(user = %data.identity.sub, realm = %data.realm, "the session has no login name claim: user events and the admin listener can end it only by sub");
        }
        self.cookie_value(&data)
    }

    /// The session cookie's value: the whole sealed session in cookie mode, the
    /// sealed id in server mode.
    pub(crate) fn cookie_value(&self, data: &SessionData) -> Result<String, AuthError> {
        let name = &self.settings.cookie_name;
        let sealed = match self.settings.mode {
            SessionMode::Cookie => {
                super::seal(&self.sealer, name, data, self.settings.record_format)
            }
            SessionMode::Server => self.sealer.seal(name, data.id.as_bytes()),
        };
        sealed.map_err(|e| AuthError::Internal(e.to_string()))
    }

    /// The `Set-Cookie` values that store a session cookie value: one cookie, or a
    /// `~N` main cookie and `N` chunks, each line under 4096 bytes; and the clearing
    /// of chunks the request still has that the new value no longer uses.
    pub fn set_cookies(
        &self,
        parts: &Parts,
        value: &str,
        max_age: u64,
    ) -> Result<Vec<String>, AuthError> {
        let s = &self.settings;
        let pieces = cookie::split(&s.cookie_name, value)
            .ok_or_else(|| AuthError::Internal("the session is too large for cookies".into()))?;
        let mut out: Vec<String> = pieces
            .iter()
            .map(|(n, v)| cookie::set_cookie(n, v, Some(max_age), s.secure))
            .collect();
        let used = pieces.len().saturating_sub(1);
        for i in cookie::chunks_sent(parts, &s.cookie_name) {
            if i >= used {
                out.push(cookie::clear_cookie(
                    &cookie::chunk_name(&s.cookie_name, i),
                    s.secure,
                ));
            }
        }
        Ok(out)
    }

    /// The cookies that carry a changed session: the re-sealed session in cookie
    /// mode; none in server mode (the id did not change).
    pub(crate) fn renewed_cookies(
        &self,
        parts: &Parts,
        data: &SessionData,
        now: u64,
    ) -> Vec<String> {
        match self.settings.mode {
            SessionMode::Cookie => self
                .cookie_value(data)
                .and_then(|v| self.set_cookies(parts, &v, data.expires_at.saturating_sub(now)))
                .unwrap_or_default(),
            SessionMode::Server => Vec::new(),
        }
    }

    /// Writes a changed server-mode session back, keeping its absolute end.
    pub async fn save(&self, data: &SessionData, now: u64) -> Result<(), StoreError> {
        if self.settings.mode != SessionMode::Server {
            return Ok(());
        }
        let record = super::record::encode(data, self.settings.record_format);
        let left = Duration::from_secs(data.expires_at.saturating_sub(now).max(1));
        let ttl = self.settings.idle_timeout.map_or(left, |i| i.min(left));
        self.store
            .save(&format!("ses:{}", data.id), &record, ttl)
            .await?;
        self.copies.put(data, now);
        Ok(())
    }

    /// Ends one session server-side: revoked in both modes and deleted in server
    /// mode, so a copy of its cookie dies with it; and no longer counted in its
    /// indexes.
    pub async fn end(&self, data: &SessionData, now: u64) -> Result<(), StoreError> {
        // In server mode too: the revocation is what reaches the copies of other
        // workers and gateways. First, so that should the delete fail, the
        // record is refused all the same.
        let at = super::millis_of(now);
        self.store
            .revoke(&format!("rev:ses:{}", data.id), at, self.settings.lifetime)
            .await?;
        if self.settings.mode == SessionMode::Server {
            self.copies.forget(&data.id);
            self.store.remove(&format!("ses:{}", data.id)).await?;
        }
        let member = index_member(data);
        for key in self.index_keys(data) {
            self.store.unindex(&key, &member).await?;
        }
        Ok(())
    }

    /// Ends every session that `key` (`sid:…`, `sub:…`, `name:…`, `st:…`) names,
    /// in both modes: server-mode records are deleted, cookie-mode sessions issued
    /// until now are revoked. Returns how many live sessions it ended: each is
    /// also marked ended by its own id, so that ending them again by another key
    /// (the user's id after their login name) does not count them twice.
    pub(crate) async fn end_all(&self, key: &str, now: u64) -> Result<usize, StoreError> {
        let at = super::millis_of(now);
        // The key first: a session made after this moment is not affected, and
        // one made before is refused from now on, whatever follows.
        self.store
            .revoke(&format!("rev:{key}"), at, self.settings.lifetime)
            .await?;
        let members = self.store.take_index(&format!("idx:{key}")).await?;
        let mut live = 0;
        for m in &members {
            let (ends, id) = parse_member(m);
            let own = format!("rev:ses:{id}");
            if ends.is_some_and(|e| e <= now) || self.store.is_revoked(&[&own], 0).await? {
                continue;
            }
            live += 1;
            if self.settings.mode == SessionMode::Server {
                self.store.remove(&format!("ses:{id}")).await?;
            }
            self.store.revoke(&own, at, self.settings.lifetime).await?;
        }
        Ok(live)
    }

    /// The user's OneAccess login name in this session, by the claim its realm
    /// takes it from.
    pub fn login_name<'d>(&self, data: &'d SessionData) -> Option<&'d str> {
        let claim = self.login_names.for_realm(&data.realm)?;
        data.identity.claim(claim).filter(|n| !n.is_empty())
    }

    /// The index keys a session is found by: its IdP session, its user (OIDC and
    /// OAuth2 carry OneAccess's user id; a CAS `sub` is a login name and stays
    /// out), its login name (every realm), its CAS ticket; as the store keys
    /// them (`idx:…`).
    fn index_keys(&self, data: &SessionData) -> Vec<String> {
        let mut keys = Vec::with_capacity(4);
        self.visit_keys(data, "idx:", &mut String::new(), &mut |key| {
            keys.push(key.to_string());
            true
        });
        keys
    }

    /// The revocation keys that can end a cookie-mode session, each given to
    /// `f` until it answers `false`: its own id (a logout), and its index keys
    /// with `rev:` (back-channel and single logout, user events). Built in one
    /// buffer: the check runs on every request once anything was revoked.
    fn visit_revocation_keys(&self, data: &SessionData, f: &mut dyn FnMut(&str) -> bool) {
        let mut key = String::with_capacity(96);
        key.push_str("rev:ses:");
        key.push_str(&data.id);
        if f(&key) {
            self.visit_keys(data, "rev:", &mut key, f);
        }
    }

    /// The keys of `index_keys` with `prefix`, each written into `key` and given
    /// to `f` until it answers `false`.
    fn visit_keys(
        &self,
        data: &SessionData,
        prefix: &str,
        key: &mut String,
        f: &mut dyn FnMut(&str) -> bool,
    ) {
        let realm_has_user_id = data.realm != crate::config::Realm::Cas;
        let parts = [
            ("sid:", data.sid.as_deref()),
            (
                "sub:",
                realm_has_user_id.then_some(data.identity.sub.as_str()),
            ),
            ("name:", self.login_name(data)),
            ("st:", data.ticket_hash.as_deref()),
        ];
        for (kind, value) in parts {
            let Some(value) = value else { continue };
            key.clear();
            key.push_str(prefix);
            key.push_str(kind);
            key.push_str(value);
            if !f(key) {
                return;
            }
        }
    }

    /// Renews `s` once for its token generation, however many requests ask at
    /// once: the first runs `attempt`, the others share its outcome. An attempt
    /// that could not renew stands for `RETRY_AFTER`, then the next request tries
    /// again.
    pub(crate) async fn renewal<F, Fut>(&self, s: &SessionData, attempt: F) -> Renewal
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Renewal>,
    {
        let generation = format!("{}:{}", s.id, s.generation);
        for tries in 0..2 {
            let cell = self.renewals.get_with(generation.clone(), || {
                Arc::new(tokio::sync::OnceCell::new())
            });
            let (outcome, at) = cell
                .get_or_init(|| async { (attempt().await, Instant::now()) })
                .await
                .clone();
            match outcome {
                Renewal::NotNow if tries == 0 && at.elapsed() >= RETRY_AFTER => {
                    self.renewals.invalidate(&generation);
                }
                outcome => return outcome,
            }
        }
        Renewal::NotNow
    }
}

/// A CAS ticket as the store knows it: hashed, so a store dump holds no live
/// ticket.
pub fn ticket_hash(ticket: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ticket.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..24])
}

/// A session as its indexes hold it: `{end}.{id}`, so a count leaves out the
/// sessions that ended by themselves (ids are base64url: no `.`).
fn index_member(data: &SessionData) -> String {
    format!("{}.{}", data.expires_at, data.id)
}

/// The end and id of an index member; a bare id (an older gateway's) has no end.
fn parse_member(m: &str) -> (Option<u64>, &str) {
    match m.split_once('.') {
        Some((end, id)) => match end.parse() {
            Ok(end) => (Some(end), id),
            Err(_) => (None, m),
        },
        None => (None, m),
    }
}
