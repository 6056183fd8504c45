//! The OneAccess identity-provider simulator: configuration, the [`Sim`] handle with its
//! test knobs, and the HTTP router (OIDC/OAuth 2.0, login, global logout, CAS, and the
//! management API in `management.rs`). Synchronization events (the wire format in
//! `events.rs`, pushing them in `sync.rs`) go to an application's callback URL.

mod cas;
pub mod events;
mod http;
mod login;
mod management;
mod oidc;
mod slo;
mod state;
mod sync;
mod users;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

pub use events::{Delivery, EventSettings, TimestampStyle};
pub use http::SSO_COOKIE;
pub use users::{load_users, User};

use crate::keys::SigningKey;
use crate::server::Server;
use crate::util::advertised;
use state::{lock, State};

/// Simulator configuration. Use `..SimConfig::default()` for fields you do not set.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The one registered application's client id (default `demo-client`).
    pub client_id: String,
    /// Its client secret (default `demo-secret`).
    pub client_secret: String,
    /// The directory at start (default [`User::demo_users`]), all enabled. It changes
    /// with [`Sim::create_user`], [`Sim::disable_user`] and the like (and the management
    /// API's write endpoints); this field keeps the starting list.
    pub users: Vec<User>,
    /// If set, discovery and ID tokens use this issuer instead of `{base}/api/v1/oauth2`.
    pub issuer_override: Option<String>,
    /// How `expires_in` is typed in token responses (default: a JSON string, `"7200"`).
    pub expires_in: ExpiresInStyle,
    /// Advertise `end_session_endpoint` (`{base}/api/v1/logout`) in discovery (default true).
    pub end_session_endpoint: bool,
    /// Show the demo credentials on the login page (default false; the binary turns it on).
    pub login_hint: bool,
    /// Registered OAuth callback URLs; empty (the default) accepts any absolute http(s) URL.
    pub redirect_uris: Vec<String>,
    /// Registered CAS service URLs; empty (the default) accepts any absolute URL.
    pub cas_services: Vec<String>,
    /// Access-token lifetime, also the `expires_in` value (default 7200 s).
    pub access_token_ttl: Duration,
    /// ID-token lifetime (`exp - iat`, default 3600 s).
    pub id_token_ttl: Duration,
    /// HTTP/1.1 keep-alive (default true). With `false` every response closes its
    /// connection, so after [`Sim::set_down`]`(true)` every request is refused at
    /// connect time (no pooled connection can be caught half-open).
    pub keep_alive: bool,
    /// Client id of the management API's credentials (`POST /api/v2/tenant/token`,
    /// default `mgmt-client`).
    pub management_client_id: String,
    /// Their client secret (default `mgmt-secret`).
    pub management_client_secret: String,
    /// Management-token lifetime, also its `expires_in` (whole seconds; default 1800 s,
    /// OneAccess's default).
    pub management_token_ttl: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            client_id: "demo-client".into(),
            client_secret: "demo-secret".into(),
            users: User::demo_users(),
            issuer_override: None,
            expires_in: ExpiresInStyle::String,
            end_session_endpoint: true,
            login_hint: false,
            redirect_uris: Vec::new(),
            cas_services: Vec::new(),
            access_token_ttl: Duration::from_secs(7200),
            id_token_ttl: Duration::from_secs(3600),
            keep_alive: true,
            management_client_id: "mgmt-client".into(),
            management_client_secret: "mgmt-secret".into(),
            management_token_ttl: Duration::from_secs(1800),
        }
    }
}

/// The JSON type of `expires_in` (OneAccess documents both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpiresInStyle {
    /// `"expires_in": 7200`
    Number,
    /// `"expires_in": "7200"` (the OneAccess quirk; default)
    #[default]
    String,
}

/// How the next ID tokens are signed (for negative tests of a verifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Signing {
    /// RS256 with the current key, `kid` of the current key.
    #[default]
    Normal,
    /// As `Normal`, then one signature byte is flipped.
    CorruptSignature,
    /// Header `alg: none` (the `kid` is kept), empty signature: `header.payload.`
    AlgNone,
    /// Header `alg: HS256`, HMAC-SHA256 keyed with the client secret (key confusion).
    Hs256WithClientSecret,
    /// RS256 with the current key, but a `kid` that is not in the JWKS.
    UnknownKid,
}

/// Edits the JWT header and claims of an issued ID token just before it is signed.
pub type TokenHook = Arc<dyn Fn(&mut Map<String, Value>, &mut Map<String, Value>) + Send + Sync>;

/// Requests seen per endpoint, counted on arrival (so also those answered by an
/// injected `fail_status`; never those refused while down), and logout requests the
/// simulator sent.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct SimCounters {
    /// `GET /api/v1/oauth2/.well-known/openid-configuration`
    pub discovery: u64,
    /// `GET /api/v1/oauth2/jwks`
    pub jwks: u64,
    /// `POST /api/v1/oauth2/token`
    pub token: u64,
    /// `GET /api/v1/oauth2/userinfo`
    pub userinfo: u64,
    /// `GET /api/v1/oauth2/authorize`
    pub authorize: u64,
    /// `GET /api/v1/logout` (global logout)
    pub logout: u64,
    /// `/api/v1/cas/validate`, `/serviceValidate` and `/p3/serviceValidate`
    pub cas_validate: u64,
    /// `POST /api/v1/login/form`
    pub login: u64,
    /// `GET /api/v1/cas/login`
    pub cas_login: u64,
    /// `GET /api/v1/cas/logout`
    pub cas_logout: u64,
    /// Back-channel logout POSTs sent (fan-out and [`Sim::send_backchannel_logout`]),
    /// including those that got no answer.
    pub backchannel_sent: u64,
    /// CAS single-logout POSTs sent (fan-out and [`Sim::send_cas_logout`]), including
    /// those that got no answer.
    pub cas_slo_sent: u64,
    /// `POST /api/v2/tenant/token` (management API)
    pub management_token: u64,
    /// `GET /api/v2/tenant/users/{user_id}/accounts`
    pub management_accounts: u64,
    /// `GET /api/v2/tenant/applications/{application_id}/role-list`
    pub management_roles: u64,
    /// `GET /api/v2/tenant/applications/{application_id}/role-member-list/{role_id}`
    pub management_members: u64,
    /// `PUT /api/v2/tenant/users/{user_id}/disable`
    pub management_disable: u64,
    /// `PUT /api/v2/tenant/users/{user_id}/enable`
    pub management_enable: u64,
    /// `DELETE /api/v2/tenant/users/{user_id}`
    pub management_delete: u64,
}

/// A running OneAccess simulator. Cheap to clone; the server stops when the last clone
/// is dropped, or at once on [`Sim::stop`].
///
/// It serves on the Tokio runtime that called [`Sim::start`]: on a current-thread
/// runtime (plain `#[tokio::test]`) it only makes progress while the test awaits.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<SimInner>,
}

struct SimInner {
    state: Arc<State>,
    server: Server,
}

impl Sim {
    /// Starts on `127.0.0.1` with an ephemeral port.
    pub async fn start(cfg: SimConfig) -> io::Result<Sim> {
        Sim::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), cfg).await
    }

    /// Starts on `addr` (port 0 picks a free port). Generates the first RSA key.
    /// An unspecified address (`0.0.0.0`, `::`) is advertised as the loopback address.
    pub async fn start_on(addr: SocketAddr, cfg: SimConfig) -> io::Result<Sim> {
        // Key generation takes a moment; do it before the port starts accepting.
        let key = SigningKey::generate()?;
        let mut state_slot: Option<Arc<State>> = None;
        let server = Server::bind(addr, cfg.keep_alive, |bound| {
            let base_url = format!("http://{}", advertised(bound));
            let state = Arc::new(State::new(cfg, base_url, key));
            state_slot = Some(Arc::clone(&state));
            router(state)
        })?;
        let state = state_slot.ok_or_else(|| io::Error::other("simulator state missing"))?;
        sync::start_worker(&state);
        tracing::info!(base_url = %state.base_url, "OneAccess simulator listening");
        Ok(Sim {
            inner: Arc::new(SimInner { state, server }),
        })
    }

    fn state(&self) -> &State {
        &self.inner.state
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.state().base_url.clone()
    }

    /// The issuer: `issuer_override` or `{base_url}/api/v1/oauth2`.
    pub fn issuer(&self) -> String {
        self.state().issuer.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.server.addr()
    }

    /// The configuration the simulator runs with.
    pub fn config(&self) -> &SimConfig {
        &self.state().cfg
    }

    /// Generates a new RSA-2048 key with a new `kid` that signs from now on; the JWKS
    /// serves the new key and the one before it (older ones are dropped).
    /// Blocks for the key generation (tens of milliseconds). Panics if aws-lc fails.
    pub fn rotate_key(&self) {
        self.state()
            .rotate_key()
            .expect("RSA key generation failed");
    }

    /// The JWKS keeps only the current key.
    pub fn drop_old_keys(&self) {
        self.state().drop_old_keys();
    }

    /// Delay added before every response (including injected failures).
    pub fn set_latency(&self, d: Duration) {
        lock(&self.state().knobs).latency = d;
    }

    /// `Some(code)`: every endpoint answers `code` with a small JSON error body
    /// (`{"error", "error_description"}`; the management endpoints answer theirs,
    /// `{"error_code":"COM.0002","error_msg":"System busy. Please try again later."}`).
    pub fn set_fail_status(&self, s: Option<u16>) {
        lock(&self.state().knobs).fail_status = s;
    }

    /// `true`: close the listener and all open connections; new connections are refused
    /// from the moment this returns. A client that still holds a pooled keep-alive
    /// connection may see its next request on it fail as "connection closed" rather than
    /// "refused" (as with a real outage); set [`SimConfig::keep_alive`] to `false` for
    /// refusals only. `false`: listen again on the same port (same [`Sim::addr`]).
    pub fn set_down(&self, down: bool) {
        self.inner.server.set_down(down);
    }

    /// How the next ID tokens (and [`Sim::mint_id_token`]) are signed.
    pub fn set_signing(&self, s: Signing) {
        lock(&self.state().knobs).signing = s;
    }

    /// Edits header and claims of ID tokens issued by the token endpoint before signing.
    pub fn set_token_hook(&self, h: Option<TokenHook>) {
        lock(&self.state().knobs).hook = h;
    }

    /// `Some((status, body))`: every `GET /api/v1/oauth2/userinfo` answers exactly
    /// `status` with `body` (`Content-Type: application/json`, even when `body` is not
    /// JSON) instead of the user, whatever bearer token it carries (none, invalid or
    /// valid). The request is still counted and recorded ([`Sim::last_userinfo_authorization`]);
    /// latency and [`Sim::set_fail_status`] still apply first. A `status` that is not a
    /// valid HTTP status code is answered as 500. `None` restores normal behaviour.
    pub fn set_userinfo_override(&self, o: Option<(u16, String)>) {
        lock(&self.state().knobs).userinfo_override = o;
    }

    /// `Some((status, body))`: every CAS validation endpoint (`/api/v1/cas/validate`,
    /// `/api/v1/cas/serviceValidate`, `/api/v1/cas/p3/serviceValidate`) answers exactly
    /// `status` with `body`, whatever the request. `Content-Type` is
    /// `application/xml;charset=UTF-8` when `body` starts with `<` (after leading
    /// whitespace), `text/plain` for a CAS 1.0 style body (its first line is `yes` or `no`),
    /// else `application/json`. The request's ticket is still consumed exactly as
    /// on the normal path, so replaying it after `None` fails as usual; the request is
    /// still counted and recorded ([`Sim::last_cas_validate_query`]); latency and
    /// [`Sim::set_fail_status`] still apply first (an injected failure consumes nothing).
    /// A `status` that is not a valid HTTP status code is answered as 500. `None` restores
    /// normal behaviour.
    pub fn set_cas_validate_override(&self, o: Option<(u16, String)>) {
        lock(&self.state().knobs).cas_validate_override = o;
    }

    /// The raw query string (undecoded, without `?`) of the most recent request to any CAS
    /// validation endpoint; `None` before the first one or when it had no query.
    /// Recorded on arrival, so also for requests answered by an injected failure.
    pub fn last_cas_validate_query(&self) -> Option<String> {
        lock(&self.state().seen).cas_validate_query.clone()
    }

    /// The raw `Authorization` header of the most recent `GET /api/v1/oauth2/userinfo`;
    /// `None` before the first one or when it had none. Recorded on arrival.
    pub fn last_userinfo_authorization(&self) -> Option<String> {
        lock(&self.state().seen).userinfo_authorization.clone()
    }

    /// The raw query string (undecoded, without `?`) of the most recent
    /// `GET /api/v1/oauth2/userinfo`; `None` before the first one or when it had no query.
    /// Recorded on arrival.
    pub fn last_userinfo_query(&self) -> Option<String> {
        lock(&self.state().seen).userinfo_query.clone()
    }

    /// A snapshot of the request counters.
    pub fn counters(&self) -> SimCounters {
        lock(&self.state().counters).clone()
    }

    /// Signs exactly `claims` with the current key (header `kid, alg: RS256, typ: JWT`).
    /// The [`Signing`] mode applies; the token hook does not. Panics if aws-lc fails.
    pub fn mint_id_token(&self, claims: Map<String, Value>) -> String {
        self.state()
            .sign_jwt(claims, false)
            .expect("JWT signing failed")
    }

    /// The JWKS document currently served at `/api/v1/oauth2/jwks`.
    pub fn jwks_json(&self) -> Value {
        self.state().jwks()
    }

    /// Issues a CAS service ticket for `user_name` bound to `service`, as if the user had
    /// just logged in (`isFromNewLogin: true`). Panics if there is no such user.
    pub fn mint_cas_ticket(&self, user_name: &str, service: &str) -> String {
        let user_id = self.user_id_of(user_name);
        lock(&self.state().store).new_ticket(&user_id, service, true, crate::util::now_millis())
    }

    /// Creates an SSO session for `user_name` (as the login form would) and returns the
    /// session id: send it as the cookie [`SSO_COOKIE`]`=<id>`. Panics if there is no such user.
    pub fn create_sso_session(&self, user_name: &str) -> String {
        let user_id = self.user_id_of(user_name);
        lock(&self.state().store).new_session(&user_id)
    }

    /// The OIDC `sid` of a live SSO session (the value of its [`SSO_COOKIE`]); ID tokens
    /// issued from that session, and the logout tokens sent when it ends, carry it.
    /// `None` for an unknown or ended session.
    pub fn sso_session_sid(&self, sso_session_id: &str) -> Option<String> {
        lock(&self.state().store)
            .sessions
            .get(sso_session_id)
            .map(|s| s.sid.clone())
    }

    /// The `sid`s of `user_name`'s live SSO sessions, oldest session first.
    /// Panics if there is no such user.
    pub fn sids_of(&self, user_name: &str) -> Vec<String> {
        let user_id = self.user_id_of(user_name);
        let store = lock(&self.state().store);
        let mut sessions: Vec<_> = store
            .sessions
            .values()
            .filter(|s| s.user_id == user_id)
            .map(|s| (s.auth_millis, s.sid.clone()))
            .collect();
        sessions.sort();
        sessions.into_iter().map(|(_, sid)| sid).collect()
    }

    /// A back-channel logout token (OIDC Back-Channel Logout 1.0): header
    /// `kid, alg: RS256, typ: logout+jwt`; claims `iss`, `aud` (the client id), `iat`,
    /// `exp` (`iat + 120`), a random `jti`, `events` with the back-channel logout event,
    /// and `sub` and/or `sid` when given. Signed like ID tokens: the [`Signing`] mode
    /// applies, the token hook does not. Panics if aws-lc fails.
    pub fn mint_logout_token(&self, sub: Option<&str>, sid: Option<&str>) -> String {
        self.state()
            .logout_token(sub, sid)
            .expect("JWT signing failed")
    }

    /// Signs exactly `claims` with header `typ: logout+jwt` (for negative tests of a
    /// logout-token verifier). The [`Signing`] mode applies; the token hook does not.
    /// Panics if aws-lc fails.
    pub fn mint_logout_token_with(&self, claims: Map<String, Value>) -> String {
        self.state()
            .sign_jwt_typed(claims, false, state::LOGOUT_TOKEN_TYP)
            .expect("JWT signing failed")
    }

    /// POSTs `logout_token=<logout_token>` (`application/x-www-form-urlencoded`) to `url`
    /// and returns the answer's status and body. Redirects are not followed; the request
    /// times out after 10 s. Counted ([`SimCounters::backchannel_sent`]) and recorded
    /// ([`Sim::backchannel_log`]) like the logout fan-out.
    pub async fn send_backchannel_logout(
        &self,
        url: &str,
        logout_token: &str,
    ) -> io::Result<(u16, String)> {
        slo::send_backchannel(self.state(), url, logout_token).await
    }

    /// POSTs a CAS single-logout request for `session_index` (a service ticket) to `url`:
    /// the form field `logoutRequest` carries
    /// `<samlp:LogoutRequest .. ID="LR-.." Version="2.0" IssueInstant="<RFC 3339 now>">`
    /// `<saml:NameID>@NOT_USED@</saml:NameID><samlp:SessionIndex>{session_index}</samlp:SessionIndex>`
    /// `</samlp:LogoutRequest>` (CAS protocol 3.0). Returns the answer's status and body.
    /// Counted ([`SimCounters::cas_slo_sent`]) and recorded ([`Sim::backchannel_log`]).
    pub async fn send_cas_logout(
        &self,
        url: &str,
        session_index: &str,
    ) -> io::Result<(u16, String)> {
        slo::send_cas_slo(self.state(), url, session_index).await
    }

    /// Registers an OIDC back-channel logout URI: whenever an SSO session ends through
    /// `GET /api/v1/logout`, `GET /api/v1/cas/logout` or [`Sim::end_sso_sessions_of`], it
    /// receives a logout token with the session's `sub` (the user's id) and `sid`, before
    /// the ending request is answered. Registering a URI twice has no further effect.
    pub fn register_backchannel_logout_uri(&self, url: &str) {
        let mut reg = lock(&self.state().logout);
        if !reg.backchannel_uris.iter().any(|u| u == url) {
            reg.backchannel_uris.push(url.to_string());
        }
    }

    /// Registers a `post_logout_redirect_uri` for OIDC RP-initiated logout at
    /// `GET /api/v1/logout`: one that is not registered gets a 400 error page and
    /// ends no session, as a conforming provider answers (RP-Initiated Logout 1.0,
    /// section 3.1). Registering one twice has no further effect.
    pub fn register_post_logout_redirect_uri(&self, url: &str) {
        let mut reg = lock(&self.state().logout);
        if !reg.post_logout_uris.iter().any(|u| u == url) {
            reg.post_logout_uris.push(url.to_string());
        }
    }

    /// Registers a CAS single-logout URL: whenever an SSO session ends (as for
    /// [`Sim::register_backchannel_logout_uri`]), it receives one SLO request
    /// ([`Sim::send_cas_logout`]) per CAS service ticket issued from that session by
    /// `GET /api/v1/cas/login` (validated or not). Registering a URL twice has no
    /// further effect.
    pub fn register_cas_logout_url(&self, url: &str) {
        let mut reg = lock(&self.state().logout);
        if !reg.cas_logout_urls.iter().any(|u| u == url) {
            reg.cas_logout_urls.push(url.to_string());
        }
    }

    /// Ends every SSO session of `user_name`, as an administrator would at OneAccess:
    /// the registered back-channel and CAS logout receivers are notified for each session
    /// (oldest first) before this returns. Panics if there is no such user.
    pub async fn end_sso_sessions_of(&self, user_name: &str) {
        let user_id = self.user_id_of(user_name);
        slo::end_sessions_of(self.state(), &user_id).await;
    }

    /// Every logout POST the simulator sent, in order: `(url, status)`, status 0 when no
    /// answer arrived (connection refused, timeout, ..). Includes the logout fan-out (the
    /// back-channel URIs, in registration order, then the CAS logout URLs, each with every
    /// ticket of the session) and [`Sim::send_backchannel_logout`] / [`Sim::send_cas_logout`].
    pub fn backchannel_log(&self) -> Vec<(String, u16)> {
        lock(&self.state().logout).log.clone()
    }

    /// The id of the user named `user_name` (enabled or not). Panics if there is none.
    fn user_id_of(&self, user_name: &str) -> String {
        lock(&self.state().directory)
            .by_name(user_name)
            .unwrap_or_else(|| panic!("no user named {user_name:?}"))
            .user
            .id
            .clone()
    }

    /// Ends every SSO session (as if each had expired at OneAccess); no logout
    /// notifications are sent.
    pub fn clear_sso_sessions(&self) {
        lock(&self.state().store).sessions.clear();
    }

    /// Invalidates every access and refresh token issued so far.
    pub fn revoke_tokens(&self) {
        let mut store = lock(&self.state().store);
        store.access.clear();
        store.refresh.clear();
    }

    /// Stops the server now (even if clones of this handle exist): the listener and
    /// all connections are closed.
    pub async fn stop(self) {
        self.inner.server.stop();
        tokio::task::yield_now().await;
    }
}

fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/", get(|| async { http::redirect("/api/v1/login") }))
        .route(
            "/api/v1/oauth2/.well-known/openid-configuration",
            get(oidc::discovery),
        )
        .route("/api/v1/oauth2/jwks", get(oidc::jwks))
        .route("/api/v1/oauth2/authorize", get(oidc::authorize))
        .route("/api/v1/oauth2/token", post(oidc::token))
        .route("/api/v1/oauth2/userinfo", get(oidc::userinfo))
        .route("/api/v1/logout", get(oidc::logout))
        .route("/api/v1/login", get(login::page))
        .route("/api/v1/login/form", post(login::submit))
        .route("/api/v1/cas/login", get(cas::login))
        .route("/api/v1/cas/validate", get(cas::validate_v1))
        .route("/api/v1/cas/serviceValidate", get(cas::validate_v2))
        .route("/api/v1/cas/p3/serviceValidate", get(cas::validate_v3))
        .route("/api/v1/cas/logout", get(cas::logout))
        .merge(management::routes(Arc::clone(&state)))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), knobs))
        .with_state(state)
}

/// Applies the test knobs to every request: count (and record what the `last_*`
/// accessors report), then latency, then `fail_status`.
async fn knobs(AxState(state): AxState<Arc<State>>, req: Request, next: Next) -> Response {
    state.count(req.method(), req.uri().path());
    state.observe(req.uri().path(), req.uri().query(), req.headers());
    let latency = lock(&state.knobs).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fail = lock(&state.knobs).fail_status;
    if let Some(code) = fail {
        if management::endpoint(req.uri().path()).is_some() {
            return management::busy(code);
        }
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return http::json_no_store(
            status,
            &json!({
                "error": "server_error",
                "error_description": format!("OneAccess simulator: injected HTTP {}", status.as_u16()),
            }),
        );
    }
    next.run(req).await
}

async fn not_found() -> Response {
    http::json(
        StatusCode::NOT_FOUND,
        &json!({ "error": "not_found", "error_description": "No such OneAccess endpoint" }),
    )
}
