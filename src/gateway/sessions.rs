//! Sessions: reading one from a request (cookie or server mode, chunked cookies,
//! idle timeout, revocations), making one, and ending one or many.

use super::*;

impl Gateway {
    /// The session, if the request carries a valid one, and a refreshed cookie when
    /// the idle timeout needs its last-seen time moved. The hot path: cookie mode
    /// with the memory store does no I/O and takes no lock; server mode or Redis
    /// costs one store round trip.
    pub async fn session_of(
        &self,
        parts: &Parts,
        now: u64,
    ) -> Result<Option<(SessionData, Vec<String>)>, StoreError> {
        let name = self.config.session.cookie_name.as_str();
        for h in parts.headers.get_all(http::header::COOKIE) {
            for (n, main) in cookie::pairs(h.as_bytes()) {
                if n != name {
                    continue;
                }
                // A large session spans chunk cookies; a bad count or a missing
                // chunk is no session.
                let Some(v) = cookie::assemble(name, main, |c| cookie_value(parts, c)) else {
                    tracing::debug!("session cookie chunks refused");
                    continue;
                };
                let found = match self.config.session.mode {
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

    pub(super) async fn cookie_session(
        &self,
        parts: &Parts,
        name: &str,
        value: &str,
        now: u64,
    ) -> Result<Option<(SessionData, Vec<String>)>, StoreError> {
        let mut data = match session::open(&self.sealer, name, value, now) {
            Ok(d) => d,
            // Debug only: a stale cookie after a key rotation or expiry is normal.
            Err(e) => {
                tracing::debug!(reason = %e, "session cookie refused");
                return Ok(None);
            }
        };
        let idle = self.config.session.idle_timeout.map(|d| d.as_secs());
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
                self.session_cookie(&data)
                    .and_then(|v| self.session_set_cookies(parts, &v, left))
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        Ok(Some((data, refresh)))
    }

    /// Whether a logout, back-channel or CAS single logout revoked this session
    /// (or the tokens of its user). Free while nothing was ever revoked.
    pub(super) async fn is_revoked(&self, data: &SessionData) -> Result<bool, StoreError> {
        if !self.store.may_have_revocations() {
            return Ok(false);
        }
        let keys = revocation_keys(data);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.store.is_revoked(&keys, data.issued_at).await
    }

    pub(super) async fn server_session(
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
        let Some(record) = self
            .store
            .load(&format!("ses:{id}"), self.config.session.idle_timeout)
            .await?
        else {
            return Ok(None);
        };
        match serde_json::from_slice::<SessionData>(&record) {
            Ok(data) if now < data.expires_at && data.id == id => Ok(Some((data, Vec::new()))),
            _ => Ok(None),
        }
    }

    /// Writes a changed server-mode session back, keeping its absolute end.
    pub(super) async fn save_session(
        &self,
        data: &SessionData,
        now: u64,
    ) -> Result<(), StoreError> {
        let record = serde_json::to_vec(data).unwrap_or_default();
        let left = std::time::Duration::from_secs(data.expires_at.saturating_sub(now).max(1));
        let ttl = self
            .config
            .session
            .idle_timeout
            .map_or(left, |i| i.min(left));
        self.store
            .save(&format!("ses:{}", data.id), &record, ttl)
            .await
    }

    /// The cookies that carry a changed session: the re-sealed session in cookie
    /// mode; none in server mode (the id did not change).
    pub(super) fn renewed_cookies(
        &self,
        parts: &Parts,
        data: &SessionData,
        now: u64,
    ) -> Vec<String> {
        match self.config.session.mode {
            SessionMode::Cookie => self
                .session_cookie(data)
                .and_then(|v| {
                    self.session_set_cookies(parts, &v, data.expires_at.saturating_sub(now))
                })
                .unwrap_or_default(),
            SessionMode::Server => Vec::new(),
        }
    }

    /// Ends one session server-side: deleted in server mode, revoked in cookie mode,
    /// so a copy of its cookie dies with it.
    pub(super) async fn end_session(&self, data: &SessionData, now: u64) -> Result<(), StoreError> {
        match self.config.session.mode {
            SessionMode::Server => self.store.remove(&format!("ses:{}", data.id)).await,
            SessionMode::Cookie => {
                self.store
                    .revoke(
                        &format!("rev:ses:{}", data.id),
                        now,
                        self.config.session.lifetime,
                    )
                    .await
            }
        }
    }

    /// The `Set-Cookie` values that store a session cookie value: one cookie, or a
    /// `~N` main cookie and `N` chunks, each line under 4096 bytes; and the clearing
    /// of chunks the request still has that the new value no longer uses.
    pub(super) fn session_set_cookies(
        &self,
        parts: &Parts,
        value: &str,
        max_age: u64,
    ) -> Result<Vec<String>, AuthError> {
        let s = &self.config.session;
        let pieces = cookie::split(&s.cookie_name, value)
            .ok_or_else(|| AuthError::Internal("the session is too large for cookies".into()))?;
        let mut out: Vec<String> = pieces
            .iter()
            .map(|(n, v)| cookie::set_cookie(n, v, Some(max_age), s.secure))
            .collect();
        let used = pieces.len().saturating_sub(1);
        for i in used..cookie::MAX_CHUNKS {
            let stale = cookie::chunk_name(&s.cookie_name, i);
            if cookie_value(parts, &stale).is_some() {
                out.push(cookie::clear_cookie(&stale, s.secure));
            }
        }
        Ok(out)
    }

    /// Makes a session (in the store too, in server mode), indexes it for
    /// back-channel and single logout, and returns the session cookie's value.
    pub async fn issue_session(
        &self,
        login: NewSession,
        realm: &str,
        now: u64,
    ) -> Result<String, AuthError> {
        let s = &self.config.session;
        let data = SessionData {
            identity: login.identity,
            issued_at: now,
            expires_at: now + s.lifetime.as_secs(),
            realm: realm.to_string(),
            id_token: login.id_token,
            id: random_id().map_err(AuthError::Internal)?,
            sid: login.sid,
            ticket_hash: login.ticket_hash,
            last_seen: now,
            access_expires: login.grant.expires_in.map(|e| now + e),
            refresh_token: login.grant.refresh_token.filter(|_| !s.minimal),
            access_token: login.grant.access_token.filter(|_| self.keep_access_token),
            generation: 0,
            renewed: login.renewed,
        };
        if s.mode == SessionMode::Server {
            let record = serde_json::to_vec(&data).unwrap_or_default();
            let ttl = s.idle_timeout.unwrap_or(s.lifetime).min(s.lifetime);
            self.store
                .save(&format!("ses:{}", data.id), &record, ttl)
                .await?;
        }
        // Server mode: the sessions a back-channel or CAS logout must delete. Cookie
        // mode keeps only the CAS ticket mark: SLO acts only on tickets it issued a
        // session for.
        for key in index_keys(&data) {
            if s.mode == SessionMode::Server || key.starts_with("st:") {
                self.store
                    .index(&format!("idx:{key}"), &data.id, s.lifetime)
                    .await?;
            }
        }
        self.session_cookie(&data)
    }

    /// The session cookie's value: the whole sealed session in cookie mode, the
    /// sealed id in server mode.
    pub(super) fn session_cookie(&self, data: &SessionData) -> Result<String, AuthError> {
        let name = &self.config.session.cookie_name;
        let sealed = match self.config.session.mode {
            SessionMode::Cookie => session::seal(&self.sealer, name, data),
            SessionMode::Server => self.sealer.seal(name, data.id.as_bytes()),
        };
        sealed.map_err(|e| AuthError::Internal(e.to_string()))
    }

    /// Ends every session that `key` (`sid:…`, `sub:…`, `st:…`) names, in both modes:
    /// server-mode records are deleted, cookie-mode sessions issued until now are
    /// revoked. Returns how many server-mode sessions ended.
    pub(super) async fn end_sessions(&self, key: &str, now: u64) -> Result<usize, StoreError> {
        let ids = self.store.take_index(&format!("idx:{key}")).await?;
        for id in &ids {
            self.store.remove(&format!("ses:{id}")).await?;
        }
        self.store
            .revoke(&format!("rev:{key}"), now, self.config.session.lifetime)
            .await?;
        Ok(ids.len())
    }
}

/// What a finished login brings to a new session.
pub struct NewSession {
    pub identity: Identity,
    pub id_token: Option<Secret<String>>,
    pub sid: Option<String>,
    pub ticket_hash: Option<String>,
    pub grant: Grant,
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
            grant: Grant::default(),
            renewed: false,
        }
    }
}

/// A session id: 32 random bytes, base64url.
pub(super) fn random_id() -> Result<String, String> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| "the system random generator failed".to_string())?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// A CAS ticket as the store knows it: hashed, so a store dump holds no live
/// ticket.
pub(super) fn ticket_hash(ticket: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ticket.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..24])
}

/// The index keys a session is found by: its IdP session, its user (OIDC and
/// OAuth2 carry OneAccess's user id; a CAS `sub` is a login name and stays out),
/// its CAS ticket.
pub(super) fn index_keys(data: &SessionData) -> Vec<String> {
    let mut keys = Vec::with_capacity(3);
    if let Some(sid) = &data.sid {
        keys.push(format!("sid:{sid}"));
    }
    if data.realm != "cas" {
        keys.push(format!("sub:{}", data.identity.sub));
    }
    if let Some(h) = &data.ticket_hash {
        keys.push(format!("st:{h}"));
    }
    keys
}

/// The revocation keys that can end a cookie-mode session: its own id (a logout),
/// and its index keys (back-channel and CAS single logout).
pub(super) fn revocation_keys(data: &SessionData) -> Vec<String> {
    let mut keys = vec![format!("rev:ses:{}", data.id)];
    keys.extend(index_keys(data).into_iter().map(|k| format!("rev:{k}")));
    keys
}
