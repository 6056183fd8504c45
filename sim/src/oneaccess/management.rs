//! The management API (API reference section 3.1), the part a gateway uses for
//! authorization decisions: client-credentials tokens, a user's application accounts,
//! an application's roles and a role's members. The application directory behind it is
//! shaped by the knobs on [`Sim`]. The only write endpoints are the user-status ones
//! (3.1.3.3 to 3.1.3.5: disable, enable, delete a user), which change the user directory
//! and push the synchronization event in the background (`sync.rs`), answering at once.
//!
//! Errors follow the reference: 400 `{"error_code", "error_msg"}` with codes from its
//! error table (appendix 4.1). A missing, unknown or expired bearer token is a 401 in
//! the Spring Security shape `{"error", "error_description"}` the reference shows for
//! userinfo (the management sections document no 401 body of their own).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State as AxState};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Value};

use super::http::{bearer_token, json_no_store, oauth_error, param, query};
use super::state::{lock, State};
use super::{sync, Sim};
use crate::util::{iso8601_millis, now_millis, parse_form, random_hex};

type Shared = AxState<Arc<State>>;

/// The one account type the simulator grants (the value of the reference's example).
const ACCOUNT_TYPE: &str = "BASIC_ACCOUNT";

/// Page sizes the listing endpoints accept (reference: minimum 10, maximum 100).
const LIMITS: std::ops::RangeInclusive<u64> = 10..=100;

/// The management endpoints, for counting and for the failure knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token,
    Accounts,
    Roles,
    Members,
    Disable,
    Enable,
    Delete,
}

/// The management endpoint `path` is routed to, if any. Same shapes as the router's:
/// every `{param}` is exactly one non-empty segment.
pub(crate) fn endpoint(path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix("/api/v2/tenant/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["token"] => Some(Endpoint::Token),
        ["users", user, "accounts"] if !user.is_empty() => Some(Endpoint::Accounts),
        ["users", user, "disable"] if !user.is_empty() => Some(Endpoint::Disable),
        ["users", user, "enable"] if !user.is_empty() => Some(Endpoint::Enable),
        ["users", user] if !user.is_empty() => Some(Endpoint::Delete),
        ["applications", app, "role-list"] if !app.is_empty() => Some(Endpoint::Roles),
        ["applications", app, "role-member-list", role] if !app.is_empty() && !role.is_empty() => {
            Some(Endpoint::Members)
        }
        _ => None,
    }
}

/// The management routes, with [`Sim::set_management_fail_status`] applied to them only.
pub(crate) fn routes(state: Arc<State>) -> Router<Arc<State>> {
    Router::new()
        .route("/api/v2/tenant/token", post(token))
        .route("/api/v2/tenant/users/{user_id}/accounts", get(accounts))
        .route("/api/v2/tenant/users/{user_id}/disable", put(disable))
        .route("/api/v2/tenant/users/{user_id}/enable", put(enable))
        .route(
            "/api/v2/tenant/users/{user_id}",
            axum::routing::delete(delete_user),
        )
        .route(
            "/api/v2/tenant/applications/{application_id}/role-list",
            get(roles),
        )
        .route(
            "/api/v2/tenant/applications/{application_id}/role-member-list/{role_id}",
            get(members),
        )
        .route_layer(middleware::from_fn_with_state(state, fail_knob))
}

/// Runs after the global knobs (count, latency, `fail_status`), so a global failure wins.
async fn fail_knob(AxState(state): Shared, req: Request, next: Next) -> Response {
    let fail = lock(&state.knobs).management_fail_status;
    match fail {
        Some(code) => busy(code),
        None => next.run(req).await,
    }
}

/// An injected failure of a management endpoint: `status` (500 if it is not a valid
/// HTTP status) with the reference's "system busy" error.
pub(crate) fn busy(status: u16) -> Response {
    Refusal::Error {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        code: "COM.0002",
        msg: "System busy. Please try again later.".into(),
    }
    .into_response()
}

/// Why a management request is refused; it becomes the error answer.
enum Refusal {
    /// `{"error_code", "error_msg"}`, the management API's error shape.
    Error {
        status: StatusCode,
        code: &'static str,
        msg: String,
    },
    /// 401 `{"error", "error_description"}` with a Bearer challenge.
    Unauthorized {
        error: &'static str,
        description: &'static str,
    },
}

fn bad_request(code: &'static str, msg: impl Into<String>) -> Refusal {
    Refusal::Error {
        status: StatusCode::BAD_REQUEST,
        code,
        msg: msg.into(),
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Error { status, code, msg } => {
                json_no_store(status, &json!({ "error_code": code, "error_msg": msg }))
            }
            Refusal::Unauthorized { error, description } => {
                let mut resp = oauth_error(StatusCode::UNAUTHORIZED, error, description);
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"OneAccess\""),
                );
                resp
            }
        }
    }
}

// ---- the directory ---------------------------------------------------------------

/// Management tokens and the application-side directory.
#[derive(Default)]
pub(crate) struct Directory {
    /// Issued management tokens and when they expire (milliseconds since the epoch).
    /// A new token does not invalidate the older ones (reference 3.1.2.1).
    tokens: HashMap<String, u128>,
    /// Every application an account or role was ever created for. Only these exist;
    /// the others are answered `APP.0001`.
    applications: HashSet<String>,
    /// Application accounts in grant order, the order listings use.
    accounts: Vec<Account>,
    /// Application roles in creation order, the order listings use.
    roles: Vec<Role>,
}

struct Account {
    id: String,
    user_id: String,
    application_id: String,
    account_name: String,
    /// The account's display name: the user's name when granted.
    name: String,
    disabled: bool,
}

struct Role {
    id: String,
    application_id: String,
    code: String,
    name: String,
    created_millis: u128,
    /// Member account ids in the order they were added.
    members: Vec<String>,
}

impl Directory {
    /// A new OneAccess-style id, `yyyyMMddHHmmssSSS-XXXX-XXXXXXXXX` (UTC), unique
    /// among accounts and roles.
    fn new_id(&self) -> String {
        loop {
            let stamp: String = iso8601_millis(now_millis())
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            let id = format!(
                "{stamp}-{}-{}",
                random_hex(4).to_uppercase(),
                random_hex(9).to_uppercase()
            );
            let taken =
                self.accounts.iter().any(|a| a.id == id) || self.roles.iter().any(|r| r.id == id);
            if !taken {
                return id;
            }
        }
    }

    fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    fn role(&self, application_id: &str, role_id: &str) -> Option<&Role> {
        self.roles
            .iter()
            .find(|r| r.id == role_id && r.application_id == application_id)
    }

    fn role_mut(&mut self, application_id: &str, role_id: &str) -> &mut Role {
        self.roles
            .iter_mut()
            .find(|r| r.id == role_id && r.application_id == application_id)
            .unwrap_or_else(|| panic!("application {application_id:?} has no role {role_id:?}"))
    }

    fn account_mut(&mut self, id: &str) -> &mut Account {
        self.accounts
            .iter_mut()
            .find(|a| a.id == id)
            .unwrap_or_else(|| panic!("no application account {id:?}"))
    }

    /// Whether `token` was issued and has not expired (nor been expired by the knob).
    fn token_valid(&self, token: &str) -> bool {
        self.tokens
            .get(token)
            .is_some_and(|expires| *expires > now_millis())
    }
}

// ---- knobs -----------------------------------------------------------------------

impl Sim {
    /// Authorizes the user with id `user_id` (the OIDC `sub`) for `application_id` by
    /// creating an application account named `account_name`, as
    /// `POST /api/v2/tenant/users/{user_id}/applications/{application_id}/accounts` does
    /// at OneAccess; returns the new account's id. The account is enabled, in no role,
    /// of type `BASIC_ACCOUNT`, and its `name` is the user's display name. The
    /// application exists from now on. Panics if there is no user with that id.
    pub fn grant_account(&self, user_id: &str, application_id: &str, account_name: &str) -> String {
        let name = self
            .state()
            .entry_by_id(user_id)
            .unwrap_or_else(|| panic!("no user with id {user_id:?}"))
            .user
            .name;
        let mut dir = lock(&self.state().management);
        let id = dir.new_id();
        dir.applications.insert(application_id.to_string());
        dir.accounts.push(Account {
            id: id.clone(),
            user_id: user_id.to_string(),
            application_id: application_id.to_string(),
            account_name: account_name.to_string(),
            name,
            disabled: false,
        });
        id
    }

    /// Deletes an application account; it also leaves every role it was a member of.
    /// Panics if there is no such account.
    pub fn remove_account(&self, account_id: &str) {
        let mut dir = lock(&self.state().management);
        let before = dir.accounts.len();
        dir.accounts.retain(|a| a.id != account_id);
        if dir.accounts.len() == before {
            panic!("no application account {account_id:?}");
        }
        for role in &mut dir.roles {
            role.members.retain(|m| m != account_id);
        }
    }

    /// Disables (`true`) or enables an application account: role-member listings show
    /// it as `disabled`; it is still listed everywhere. Panics if there is no such account.
    pub fn set_account_disabled(&self, account_id: &str, disabled: bool) {
        lock(&self.state().management)
            .account_mut(account_id)
            .disabled = disabled;
    }

    /// Creates an application-side role and returns its id; `createdAt` is now,
    /// `updatedAt` stays null. The application exists from now on. Panics if the
    /// application already has a role with this `code` (OneAccess: `APP_ROLE.0003`).
    pub fn add_role(&self, application_id: &str, code: &str, name: &str) -> String {
        let mut dir = lock(&self.state().management);
        if dir
            .roles
            .iter()
            .any(|r| r.application_id == application_id && r.code == code)
        {
            panic!("application {application_id:?} already has a role with code {code:?}");
        }
        let id = dir.new_id();
        dir.applications.insert(application_id.to_string());
        dir.roles.push(Role {
            id: id.clone(),
            application_id: application_id.to_string(),
            code: code.to_string(),
            name: name.to_string(),
            created_millis: now_millis(),
            members: Vec::new(),
        });
        id
    }

    /// Makes an account of the same application a member of the role; adding a member
    /// twice has no further effect. Panics if the application has no such role, or the
    /// account does not exist or belongs to another application.
    pub fn add_role_member(&self, application_id: &str, role_id: &str, account_id: &str) {
        let mut dir = lock(&self.state().management);
        let same_app = dir
            .account(account_id)
            .map(|a| a.application_id == application_id);
        if same_app != Some(true) {
            panic!("application {application_id:?} has no account {account_id:?}");
        }
        let role = dir.role_mut(application_id, role_id);
        if !role.members.iter().any(|m| m == account_id) {
            role.members.push(account_id.to_string());
        }
    }

    /// Takes an account out of the role; no effect if it is not a member.
    /// Panics if the application has no such role.
    pub fn remove_role_member(&self, application_id: &str, role_id: &str, account_id: &str) {
        lock(&self.state().management)
            .role_mut(application_id, role_id)
            .members
            .retain(|m| m != account_id);
    }

    /// Invalidates every management token issued so far (as if all had expired):
    /// clients must fetch a new one from `POST /api/v2/tenant/token`.
    pub fn expire_management_tokens(&self) {
        lock(&self.state().management).tokens.clear();
    }

    /// `Some(code)`: the management endpoints (`/api/v2/tenant/...`) answer `code`
    /// (500 if it is not a valid HTTP status) with
    /// `{"error_code":"COM.0002","error_msg":"System busy. Please try again later."}`;
    /// every other endpoint keeps working. Requests are still counted; latency and
    /// [`Sim::set_fail_status`] apply first. `None` restores normal behaviour.
    pub fn set_management_fail_status(&self, s: Option<u16>) {
        lock(&self.state().knobs).management_fail_status = s;
    }
}

// ---- token -----------------------------------------------------------------------

/// `POST /api/v2/tenant/token` (client credentials in the form, reference 3.1.2.1).
async fn token(AxState(state): Shared, body: Bytes) -> Result<Response, Refusal> {
    let form = parse_form(&body)
        .map_err(|name| bad_request("invalid_request", format!("Parameter {name} is repeated.")))?;
    // Codes: PARAM.0002 is the reference's own; for the other two failures it lists no
    // code, so they carry the OAuth error names (its generic token-error example reads
    // `invalid_client` / "Bad client credentials").
    let Some(client_id) = param(&form, "client_id") else {
        return Err(bad_request("PARAM.0002", "clientId required."));
    };
    let secret = param(&form, "client_secret").unwrap_or("");
    let cfg = &state.cfg;
    let id_ok = client_id == cfg.management_client_id;
    let secret_ok =
        verify_slices_are_equal(secret.as_bytes(), cfg.management_client_secret.as_bytes()).is_ok();
    if !(id_ok && secret_ok) {
        tracing::info!(client_id, "management client authentication failed");
        return Err(bad_request("invalid_client", "Bad client credentials"));
    }
    if param(&form, "grant_type") != Some("client_credentials") {
        return Err(bad_request(
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        ));
    }
    let ttl = cfg.management_token_ttl;
    // UUID-shaped, like the reference's example tokens.
    let hex = random_hex(32);
    let access_token = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    {
        let mut dir = lock(&state.management);
        let now = now_millis();
        dir.tokens.retain(|_, expires| *expires > now);
        dir.tokens
            .insert(access_token.clone(), now.saturating_add(ttl.as_millis()));
    }
    tracing::debug!("issued a management token");
    Ok(json_no_store(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ttl.as_secs(),
            "scope": "all",
        }),
    ))
}

/// Checks the request's management token.
fn authenticate(state: &State, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = bearer_token(headers) else {
        return Err(Refusal::Unauthorized {
            error: "unauthorized",
            description: "Full authentication is required to access this resource",
        });
    };
    if lock(&state.management).token_valid(&token) {
        Ok(())
    } else {
        Err(Refusal::Unauthorized {
            error: "invalid_token",
            description: "Invalid or expired access token",
        })
    }
}

// ---- user status -----------------------------------------------------------------

/// An unknown user id (the reference's error table: USER.0001).
fn no_such_user() -> Refusal {
    bad_request("USER.0001", "User does not exist.")
}

/// `PUT /api/v2/tenant/users/{user_id}/disable` (reference 3.1.3.5): 200 `{"user_id"}`;
/// `UPDATE_USER` is pushed in the background.
async fn disable(
    AxState(state): Shared,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    set_disabled(&state, &user_id, &headers, true)
}

/// `PUT /api/v2/tenant/users/{user_id}/enable` (reference 3.1.3.4): as [`disable`].
async fn enable(
    AxState(state): Shared,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    set_disabled(&state, &user_id, &headers, false)
}

fn set_disabled(
    state: &State,
    user_id: &str,
    headers: &HeaderMap,
    disabled: bool,
) -> Result<Response, Refusal> {
    authenticate(state, headers)?;
    let entry = sync::set_disabled(state, user_id, disabled).ok_or_else(no_such_user)?;
    sync::push_update(state, entry);
    Ok(json_no_store(
        StatusCode::OK,
        &json!({ "user_id": user_id }),
    ))
}

/// `DELETE /api/v2/tenant/users/{user_id}` (reference 3.1.3.3): 204 with no body, the
/// reference's status table and "响应示例: 无" (the enable/disable siblings answer 200
/// `{"user_id"}`); `DELETE_USER` is pushed in the background.
async fn delete_user(
    AxState(state): Shared,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    authenticate(&state, &headers)?;
    let entry = sync::delete(&state, &user_id).ok_or_else(no_such_user)?;
    sync::push_delete(&state, entry);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    super::http::no_store(&mut resp);
    Ok(resp)
}

// ---- listings --------------------------------------------------------------------

/// `GET /api/v2/tenant/users/{user_id}/accounts` (reference 3.1.3.12).
async fn accounts(
    AxState(state): Shared,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    authenticate(&state, &headers)?;
    // An unknown user is USER.0001 (the reference's error table); a known user without
    // accounts is an empty list.
    if state.entry_by_id(&user_id).is_none() {
        return Err(bad_request("USER.0001", "User does not exist."));
    }
    let dir = lock(&state.management);
    let accounts: Vec<Value> = dir
        .accounts
        .iter()
        .filter(|a| a.user_id == user_id)
        .map(|a| {
            json!({
                "id": a.id,
                "application_id": a.application_id,
                "account_name": a.account_name,
                "account_type": ACCOUNT_TYPE,
                "name": a.name,
                "extension": {},
            })
        })
        .collect();
    Ok(json_no_store(
        StatusCode::OK,
        &json!({ "total": accounts.len(), "accounts": accounts }),
    ))
}

/// `GET /api/v2/tenant/applications/{application_id}/role-list?offset=&limit=`
/// (reference 3.1.7.5).
async fn roles(
    AxState(state): Shared,
    Path(application_id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, Refusal> {
    authenticate(&state, &headers)?;
    let page = Page::from_query(raw.as_deref())?;
    let dir = lock(&state.management);
    if !dir.applications.contains(&application_id) {
        return Err(bad_request("APP.0001", "Application does not exist."));
    }
    let all: Vec<&Role> = dir
        .roles
        .iter()
        .filter(|r| r.application_id == application_id)
        .collect();
    let roles: Vec<Value> = page
        .of(&all)
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "code": r.code,
                "name": r.name,
                "createdAt": timestamp(r.created_millis),
                "updatedAt": null,
            })
        })
        .collect();
    Ok(json_no_store(
        StatusCode::OK,
        &json!({
            "total": all.len(),
            "offset": page.offset,
            "limit": page.limit,
            "roles": roles,
        }),
    ))
}

/// `GET /api/v2/tenant/applications/{application_id}/role-member-list/{role_id}` with a
/// JSON body `{"offset", "limit"}` (reference 3.1.7.8).
async fn members(
    AxState(state): Shared,
    Path((application_id, role_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    authenticate(&state, &headers)?;
    let page = Page::from_body(&body)?;
    let dir = lock(&state.management);
    if !dir.applications.contains(&application_id) {
        return Err(bad_request("APP.0001", "Application does not exist."));
    }
    let Some(role) = dir.role(&application_id, &role_id) else {
        return Err(bad_request(
            "APP_ROLE.0001",
            "Application role does not exist.",
        ));
    };
    // The reference documents `org_id` (the account's application organization); the
    // simulator has no application organizations, so it is null.
    let members: Vec<Value> = page
        .of(&role.members)
        .iter()
        .filter_map(|id| dir.account(id))
        .map(|a| {
            json!({
                "id": a.id,
                "account_name": a.account_name,
                "name": a.name,
                "org_id": null,
                "disabled": a.disabled,
                "account_type": ACCOUNT_TYPE,
                "extension": null,
            })
        })
        .collect();
    Ok(json_no_store(
        StatusCode::OK,
        &json!({
            "total": role.members.len(),
            "offset": page.offset,
            "limit": page.limit,
            "role_members": members,
        }),
    ))
}

/// `2022-04-15 17:03:05.200`, the reference's timestamp format (here in UTC).
fn timestamp(unix_millis: u128) -> String {
    iso8601_millis(unix_millis)
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_string()
}

// ---- paging ----------------------------------------------------------------------

/// One page of a listing: `offset` is the page index ("第几页", from 0), `limit` the
/// page size (10..=100). The reference's error table has one paging code, PAGE.0001,
/// so every paging error uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    offset: u64,
    limit: u64,
}

impl Page {
    /// Validates the two fields: the outer `None` is a missing field, the inner one a
    /// value that is not a non-negative integer.
    fn new(offset: Option<Option<u64>>, limit: Option<Option<u64>>) -> Result<Page, Refusal> {
        let limit = match limit {
            None => return Err(bad_request("PAGE.0001", "limit is required.")),
            Some(Some(l)) if LIMITS.contains(&l) => l,
            Some(_) => {
                return Err(bad_request(
                    "PAGE.0001",
                    "Number of records per page is invalid.",
                ))
            }
        };
        let offset = match offset {
            None => return Err(bad_request("PAGE.0001", "offset is required.")),
            Some(Some(o)) => o,
            Some(None) => return Err(bad_request("PAGE.0001", "Page number is invalid.")),
        };
        Ok(Page { offset, limit })
    }

    /// From the query string; `offset` is optional there (default 0), `limit` required.
    fn from_query(raw: Option<&str>) -> Result<Page, Refusal> {
        let q = query(raw)
            .map_err(|name| bad_request("PAGE.0001", format!("Parameter {name} is repeated.")))?;
        let offset = param(&q, "offset").map_or(Some(Some(0)), |o| Some(whole_number(o)));
        Page::new(offset, param(&q, "limit").map(whole_number))
    }

    /// From a JSON object body where both are required; each may be a number or a
    /// string of digits (the reference's example sends `"offset": "0"`).
    fn from_body(body: &[u8]) -> Result<Page, Refusal> {
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
            return Err(bad_request(
                "PAGE.0001",
                "The body must be a JSON object with offset and limit.",
            ));
        };
        let field = |name: &str| {
            obj.get(name).map(|v| match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => whole_number(s),
                _ => None,
            })
        };
        Page::new(field("offset"), field("limit"))
    }

    /// The items on this page (empty past the last page).
    fn of<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = self
            .offset
            .checked_mul(self.limit)
            .and_then(|s| usize::try_from(s).ok())
            .unwrap_or(usize::MAX)
            .min(items.len());
        let end = start
            .saturating_add(usize::try_from(self.limit).unwrap_or(usize::MAX))
            .min(items.len());
        &items[start..end]
    }
}

/// A non-negative integer written with ASCII digits only (no sign, no spaces).
fn whole_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_by_path() {
        assert_eq!(endpoint("/api/v2/tenant/token"), Some(Endpoint::Token));
        assert_eq!(
            endpoint("/api/v2/tenant/users/42/accounts"),
            Some(Endpoint::Accounts)
        );
        assert_eq!(
            endpoint("/api/v2/tenant/applications/a/role-list"),
            Some(Endpoint::Roles)
        );
        assert_eq!(
            endpoint("/api/v2/tenant/applications/a/role-member-list/r"),
            Some(Endpoint::Members)
        );
        assert_eq!(
            endpoint("/api/v2/tenant/users/42/disable"),
            Some(Endpoint::Disable)
        );
        assert_eq!(
            endpoint("/api/v2/tenant/users/42/enable"),
            Some(Endpoint::Enable)
        );
        assert_eq!(endpoint("/api/v2/tenant/users/42"), Some(Endpoint::Delete));
        assert_eq!(endpoint("/api/v2/tenant/users/"), None);
        assert_eq!(endpoint("/api/v2/tenant/users//disable"), None);
        assert_eq!(endpoint("/api/v2/tenant/users//accounts"), None);
        assert_eq!(endpoint("/api/v2/tenant/token/"), None);
        assert_eq!(endpoint("/api/v1/oauth2/token"), None);
    }

    #[test]
    fn pages() {
        let items: Vec<u32> = (0..25).collect();
        let page = |offset| Page { offset, limit: 10 };
        assert_eq!(page(0).of(&items), &items[..10]);
        assert_eq!(page(2).of(&items), &items[20..]);
        assert!(page(3).of(&items).is_empty());
        assert!(page(u64::MAX).of(&items).is_empty());
    }

    #[test]
    fn numbers() {
        assert_eq!(whole_number("0"), Some(0));
        assert_eq!(whole_number("100"), Some(100));
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1.0",
            "1e2",
            "99999999999999999999999",
        ] {
            assert_eq!(whole_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(1_650_013_385_200), "2022-04-15 09:03:05.200");
    }
}
