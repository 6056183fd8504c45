//! The simulator's server-side state: signing keys, SSO sessions, authorization codes,
//! tokens, CAS tickets, the live user directory, the management directory, the
//! synchronization-event settings, test knobs and counters, plus ID-token minting.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use axum::http::header::{self, HeaderMap};
use axum::http::Method;
use serde_json::{Map, Value};

use super::management::{self, Directory, Endpoint};
use super::sync::{Events, Queued};
use super::users::{Entry, UserDirectory};
use super::{Signing, SimConfig, SimCounters, TokenHook, User};
use crate::keys::{hs256, signing_input, SigningKey};
use crate::util::{b64url, now_millis, now_secs, random_alnum, random_token};

/// How long authorization codes and CAS tickets live.
pub(crate) const CODE_TTL_SECS: u64 = 300;

/// Lifetime of a logout token (`exp - iat`).
pub(crate) const LOGOUT_TOKEN_TTL_SECS: u64 = 120;

/// The JOSE `typ` of logout tokens (OIDC Back-Channel Logout 1.0, section 2.4).
pub(crate) const LOGOUT_TOKEN_TYP: &str = "logout+jwt";

/// The `events` member that marks a JWT as a logout token.
pub(crate) const BACKCHANNEL_LOGOUT_EVENT: &str =
    "http://schemas.openid.net/event/backchannel-logout";

/// Locks a mutex, shrugging off poisoning (a panicking test hook must not wedge the sim).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) struct State {
    pub cfg: SimConfig,
    pub base_url: String,
    pub issuer: String,
    /// Published keys, the current (signing) key first.
    keys: Mutex<Vec<Arc<SigningKey>>>,
    pub knobs: Mutex<Knobs>,
    pub counters: Mutex<SimCounters>,
    /// What the most recent requests to some endpoints carried (see [`Seen`]).
    pub seen: Mutex<Seen>,
    pub store: Mutex<Store>,
    /// The users as they are now (`cfg.users` is only where they started).
    pub directory: Mutex<UserDirectory>,
    /// Management tokens and application accounts, roles and members.
    pub management: Mutex<Directory>,
    /// Registered logout receivers and what was sent to them.
    pub logout: Mutex<LogoutRegistry>,
    /// The HTTP client for logout POSTs and synchronization events, built on first use.
    pub http: OnceLock<reqwest::Client>,
    /// Synchronization-event settings, the application's ids of users, and the log.
    pub events: Mutex<Events>,
    /// Where event jobs go: the one worker that delivers them in order (set at start).
    pub event_queue: OnceLock<tokio::sync::mpsc::UnboundedSender<Queued>>,
}

/// Where IdP-initiated logout notifications go, and what was sent so far.
#[derive(Default)]
pub(crate) struct LogoutRegistry {
    /// OIDC back-channel logout URIs (registration order, no duplicates).
    pub backchannel_uris: Vec<String>,
    /// CAS single-logout URLs (registration order, no duplicates).
    pub cas_logout_urls: Vec<String>,
    /// OIDC RP-initiated logout: the `post_logout_redirect_uri`s accepted.
    pub post_logout_uris: Vec<String>,
    /// Every logout POST sent: `(url, status)`, status 0 when no answer arrived.
    pub log: Vec<(String, u16)>,
}

#[derive(Default)]
pub(crate) struct Knobs {
    pub latency: Duration,
    pub fail_status: Option<u16>,
    pub signing: Signing,
    pub hook: Option<TokenHook>,
    /// `(status, body)` answered by userinfo instead of the real user.
    pub userinfo_override: Option<(u16, String)>,
    /// `(status, body)` answered by every CAS validation endpoint (ticket still consumed).
    pub cas_validate_override: Option<(u16, String)>,
    /// Status answered by the management endpoints only (after `fail_status`).
    pub management_fail_status: Option<u16>,
}

/// Raw parts of the most recent request to some endpoints, recorded on arrival.
#[derive(Default)]
pub(crate) struct Seen {
    /// Query string of the last CAS validation request (any of the three endpoints).
    pub cas_validate_query: Option<String>,
    /// `Authorization` header of the last userinfo request.
    pub userinfo_authorization: Option<String>,
    /// Query string of the last userinfo request.
    pub userinfo_query: Option<String>,
}

#[derive(Default)]
pub(crate) struct Store {
    pub sessions: HashMap<String, SsoSession>,
    pub codes: HashMap<String, CodeGrant>,
    pub access: HashMap<String, AccessGrant>,
    pub refresh: HashMap<String, RefreshGrant>,
    pub tickets: HashMap<String, CasTicket>,
}

#[derive(Clone)]
pub(crate) struct SsoSession {
    pub user_id: String,
    /// The OIDC session id (`sid` claim of ID and logout tokens).
    pub sid: String,
    /// Every CAS service ticket issued from this session (kept after validation),
    /// for CAS single logout.
    pub tickets: Vec<String>,
    /// Login time, seconds since the epoch (the `auth_time` claim).
    pub auth_time: u64,
    /// Login time in milliseconds (the CAS `authenticationDate`).
    pub auth_millis: u128,
    /// No CAS ticket has been issued from this session yet (`isFromNewLogin`).
    pub fresh: bool,
}

pub(crate) struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: u64,
    /// `sid` of the SSO session the code was issued from.
    pub sid: Option<String>,
    pub expires: u64,
}

pub(crate) struct AccessGrant {
    pub user_id: String,
    pub expires: u64,
}

pub(crate) struct RefreshGrant {
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub auth_time: u64,
    /// `sid` of the SSO session the tokens were first issued from.
    pub sid: Option<String>,
}

pub(crate) struct CasTicket {
    pub user_id: String,
    pub service: String,
    pub from_new_login: bool,
    pub auth_millis: u128,
    pub expires: u64,
}

impl Store {
    /// Ends every SSO session of `user_id` and revokes everything issued to them (codes,
    /// access and refresh tokens, CAS tickets), silently: no logout notifications.
    pub fn forget_user(&mut self, user_id: &str) {
        self.sessions.retain(|_, s| s.user_id != user_id);
        self.codes.retain(|_, c| c.user_id != user_id);
        self.access.retain(|_, a| a.user_id != user_id);
        self.refresh.retain(|_, r| r.user_id != user_id);
        self.tickets.retain(|_, t| t.user_id != user_id);
    }

    /// Drops expired codes, tickets and access tokens.
    pub fn purge(&mut self) {
        let now = now_secs();
        self.codes.retain(|_, c| c.expires > now);
        self.tickets.retain(|_, t| t.expires > now);
        self.access.retain(|_, a| a.expires > now);
    }

    /// Starts a new SSO session for `user_id` and returns its id (the cookie value).
    /// The session also gets its own random OIDC `sid`.
    pub fn new_session(&mut self, user_id: &str) -> String {
        let id = random_token(32);
        self.sessions.insert(
            id.clone(),
            SsoSession {
                user_id: user_id.to_string(),
                sid: random_token(16),
                tickets: Vec::new(),
                auth_time: now_secs(),
                auth_millis: now_millis(),
                fresh: true,
            },
        );
        id
    }

    /// Issues a single-use CAS service ticket bound to `service`.
    pub fn new_ticket(
        &mut self,
        user_id: &str,
        service: &str,
        from_new_login: bool,
        auth_millis: u128,
    ) -> String {
        self.purge();
        let ticket = format!("ST-{}", random_alnum(40));
        self.tickets.insert(
            ticket.clone(),
            CasTicket {
                user_id: user_id.to_string(),
                service: service.to_string(),
                from_new_login,
                auth_millis,
                expires: now_secs() + CODE_TTL_SECS,
            },
        );
        ticket
    }
}

impl State {
    pub fn new(cfg: SimConfig, base_url: String, key: SigningKey) -> State {
        let issuer = cfg
            .issuer_override
            .clone()
            .unwrap_or_else(|| format!("{base_url}/api/v1/oauth2"));
        let directory = UserDirectory::new(&cfg.users);
        State {
            cfg,
            base_url,
            issuer,
            keys: Mutex::new(vec![Arc::new(key)]),
            knobs: Mutex::new(Knobs::default()),
            counters: Mutex::new(SimCounters::default()),
            seen: Mutex::new(Seen::default()),
            store: Mutex::new(Store::default()),
            directory: Mutex::new(directory),
            management: Mutex::new(Directory::default()),
            logout: Mutex::new(LogoutRegistry::default()),
            http: OnceLock::new(),
            events: Mutex::new(Events::default()),
            event_queue: OnceLock::new(),
        }
    }

    /// The user with this id if they exist and are enabled: everything that logs in,
    /// issues or honours tokens and tickets goes through here, so a disabled or
    /// deleted user gets nothing.
    pub fn user_by_id(&self, id: &str) -> Option<User> {
        lock(&self.directory)
            .by_id(id)
            .filter(|e| !e.disabled)
            .map(|e| e.user.clone())
    }

    /// The user with this id, enabled or not (the management API's view).
    pub fn entry_by_id(&self, id: &str) -> Option<Entry> {
        lock(&self.directory).by_id(id).cloned()
    }

    /// The user who logs in as `login` (user name or email), enabled or not.
    pub fn entry_by_login(&self, login: &str) -> Option<Entry> {
        lock(&self.directory).by_login(login).cloned()
    }

    /// The enabled users, in directory order (for the login page's hint).
    pub fn enabled_users(&self) -> Vec<User> {
        lock(&self.directory)
            .entries()
            .iter()
            .filter(|e| !e.disabled)
            .map(|e| e.user.clone())
            .collect()
    }

    /// The user of the browser's SSO session, with the session id and a copy of it.
    pub fn session(&self, sid: Option<&str>) -> Option<(String, SsoSession)> {
        let sid = sid?;
        let store = lock(&self.store);
        let session = store.sessions.get(sid)?;
        self.user_by_id(&session.user_id)?;
        Some((sid.to_string(), session.clone()))
    }

    // ---- keys --------------------------------------------------------------------

    pub fn current_key(&self) -> Arc<SigningKey> {
        Arc::clone(&lock(&self.keys)[0])
    }

    pub fn rotate_key(&self) -> io::Result<()> {
        let key = Arc::new(SigningKey::generate()?);
        tracing::info!(kid = key.kid(), "rotated signing key");
        let mut keys = lock(&self.keys);
        keys.insert(0, key);
        keys.truncate(2);
        Ok(())
    }

    pub fn drop_old_keys(&self) {
        lock(&self.keys).truncate(1);
    }

    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = lock(&self.keys).iter().map(|k| k.jwk()).collect();
        serde_json::json!({ "keys": keys })
    }

    // ---- tokens ------------------------------------------------------------------

    /// Signs `claims` as a JWT (`typ: JWT`) with the current key and the current
    /// [`Signing`] mode; the token hook (if any and if `hook` is true) may edit header
    /// and claims first.
    pub fn sign_jwt(&self, claims: Map<String, Value>, hook: bool) -> io::Result<String> {
        self.sign_jwt_typed(claims, hook, "JWT")
    }

    /// As [`State::sign_jwt`], with header `typ` set to `typ`.
    pub fn sign_jwt_typed(
        &self,
        mut claims: Map<String, Value>,
        hook: bool,
        typ: &str,
    ) -> io::Result<String> {
        let (signing, token_hook) = {
            let knobs = lock(&self.knobs);
            (knobs.signing, knobs.hook.clone())
        };
        let key = self.current_key();
        let mut header = Map::new();
        header.insert("kid".into(), key.kid().into());
        header.insert("alg".into(), "RS256".into());
        header.insert("typ".into(), typ.into());
        match signing {
            Signing::Normal | Signing::CorruptSignature => {}
            Signing::AlgNone => {
                header.insert("alg".into(), "none".into());
            }
            Signing::Hs256WithClientSecret => {
                header.insert("alg".into(), "HS256".into());
            }
            Signing::UnknownKid => {
                header.insert("kid".into(), format!("unknown-{}", random_token(9)).into());
            }
        }
        if let Some(h) = token_hook.filter(|_| hook) {
            h(&mut header, &mut claims);
        }
        let input = signing_input(&header, &claims);
        let signature = match signing {
            Signing::Normal | Signing::UnknownKid => key.sign_rs256(input.as_bytes())?,
            Signing::CorruptSignature => {
                let mut sig = key.sign_rs256(input.as_bytes())?;
                let mid = sig.len() / 2;
                sig[mid] ^= 0x5a;
                sig
            }
            Signing::AlgNone => Vec::new(),
            Signing::Hs256WithClientSecret => {
                hs256(self.cfg.client_secret.as_bytes(), input.as_bytes())
            }
        };
        Ok(format!("{input}.{}", b64url(&signature)))
    }

    /// An ID token for `user`, as the token endpoint issues it (with the SSO session's
    /// `sid` when there is one).
    pub fn id_token(
        &self,
        user: &User,
        client_id: &str,
        nonce: Option<&str>,
        auth_time: u64,
        sid: Option<&str>,
    ) -> io::Result<String> {
        let now = now_secs();
        let mut claims = Map::new();
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("sub".into(), user.id.clone().into());
        claims.insert("aud".into(), client_id.into());
        claims.insert("azp".into(), client_id.into());
        claims.insert("exp".into(), (now + self.cfg.id_token_ttl.as_secs()).into());
        claims.insert("iat".into(), now.into());
        claims.insert("auth_time".into(), auth_time.into());
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), nonce.into());
        }
        if let Some(sid) = sid {
            claims.insert("sid".into(), sid.into());
        }
        claims.insert("name".into(), user.name.clone().into());
        claims.insert("email".into(), user.email.clone().into());
        claims.insert("preferred_username".into(), user.user_name.clone().into());
        claims.insert("phone_number".into(), user.mobile.clone().into());
        self.sign_jwt(claims, true)
    }

    /// An OIDC back-channel logout token (header `typ: logout+jwt`) for `sub` and/or
    /// `sid`, audience the registered client. Signed like ID tokens; no token hook.
    pub fn logout_token(&self, sub: Option<&str>, sid: Option<&str>) -> io::Result<String> {
        let now = now_secs();
        let mut claims = Map::new();
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("aud".into(), self.cfg.client_id.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + LOGOUT_TOKEN_TTL_SECS).into());
        claims.insert("jti".into(), random_token(16).into());
        let mut events = Map::new();
        events.insert(BACKCHANNEL_LOGOUT_EVENT.into(), Value::Object(Map::new()));
        claims.insert("events".into(), Value::Object(events));
        if let Some(sub) = sub {
            claims.insert("sub".into(), sub.into());
        }
        if let Some(sid) = sid {
            claims.insert("sid".into(), sid.into());
        }
        self.sign_jwt_typed(claims, false, LOGOUT_TOKEN_TYP)
    }

    // ---- counters ----------------------------------------------------------------

    /// Counts a request by path (before latency and injected failures apply); the user
    /// status endpoints only with their own method, as a path alone is ambiguous there.
    pub fn count(&self, method: &Method, path: &str) {
        let mut c = lock(&self.counters);
        match path {
            "/api/v1/oauth2/.well-known/openid-configuration" => c.discovery += 1,
            "/api/v1/oauth2/jwks" => c.jwks += 1,
            "/api/v1/oauth2/token" => c.token += 1,
            "/api/v1/oauth2/userinfo" => c.userinfo += 1,
            "/api/v1/oauth2/authorize" => c.authorize += 1,
            "/api/v1/logout" => c.logout += 1,
            "/api/v1/login/form" => c.login += 1,
            "/api/v1/cas/login" => c.cas_login += 1,
            "/api/v1/cas/logout" => c.cas_logout += 1,
            "/api/v1/cas/validate"
            | "/api/v1/cas/serviceValidate"
            | "/api/v1/cas/p3/serviceValidate" => c.cas_validate += 1,
            _ => match management::endpoint(path) {
                Some(Endpoint::Token) => c.management_token += 1,
                Some(Endpoint::Accounts) => c.management_accounts += 1,
                Some(Endpoint::Roles) => c.management_roles += 1,
                Some(Endpoint::Members) => c.management_members += 1,
                Some(Endpoint::Disable) if method == Method::PUT => c.management_disable += 1,
                Some(Endpoint::Enable) if method == Method::PUT => c.management_enable += 1,
                Some(Endpoint::Delete) if method == Method::DELETE => c.management_delete += 1,
                Some(Endpoint::Disable | Endpoint::Enable | Endpoint::Delete) => {}
                None => {}
            },
        }
    }

    /// Records the raw query (and for userinfo the `Authorization` header) of a request
    /// to userinfo or a CAS validation endpoint; other paths are ignored.
    pub fn observe(&self, path: &str, query: Option<&str>, headers: &HeaderMap) {
        let query = query.map(str::to_string);
        match path {
            "/api/v1/oauth2/userinfo" => {
                let authorization = headers
                    .get(header::AUTHORIZATION)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                let mut seen = lock(&self.seen);
                seen.userinfo_authorization = authorization;
                seen.userinfo_query = query;
            }
            "/api/v1/cas/validate"
            | "/api/v1/cas/serviceValidate"
            | "/api/v1/cas/p3/serviceValidate" => lock(&self.seen).cas_validate_query = query,
            _ => {}
        }
    }
}
