//! OneAccess's management API (API.md section 6), asked for authorization: does
//! a user hold an account in an application, and does that account hold one of
//! the application's roles. A client-credentials token is cached and renewed
//! before it ends (or when refused). Answers are cached in moka for the
//! configured time: a known user costs no call, concurrent misses share one, and
//! an outage is survived for as long as the answers are fresh. Past that the
//! caller fails closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::http::{call, HttpClient, Method, OutboundRequest};
use crate::config::{ManagementSettings, OneAccessRule};
use crate::error::AuthError;
use crate::secret::Secret;

/// Renew the token this long before OneAccess says it ends.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// The largest page OneAccess serves (`limit` is 10..=100).
const PAGE: usize = 100;

/// At most this many pages of one listing: 10 000 roles or members is beyond any
/// real application, and a bound keeps a misbehaving server from looping us.
const MAX_PAGES: usize = 100;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Account {
    pub id: String,
    pub application_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Role {
    pub id: String,
    pub code: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Member {
    pub id: String,
    #[serde(default)]
    pub disabled: bool,
}

struct Token {
    value: Secret<String>,
    renew_at: Instant,
}

pub(crate) struct ManagementClient {
    http: Arc<dyn HttpClient>,
    base: String,
    settings: ManagementSettings,
    token: std::sync::Mutex<Option<Arc<Token>>>,
    /// One token request at a time; the others wait for its answer.
    token_fetch: tokio::sync::Mutex<()>,
    accounts: moka::future::Cache<String, Arc<Vec<Account>>>,
    roles: moka::future::Cache<String, Arc<Vec<Role>>>,
    members: moka::future::Cache<(String, String), Arc<Vec<Member>>>,
}

impl ManagementClient {
    pub(crate) fn new(
        base_url: &str,
        settings: ManagementSettings,
        http: Arc<dyn HttpClient>,
    ) -> Self {
        fn cache<K, V>(ttl: Duration) -> moka::future::Cache<K, V>
        where
            K: std::hash::Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build()
        }
        ManagementClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            accounts: cache(settings.cache_ttl),
            roles: cache(settings.cache_ttl),
            members: cache(settings.cache_ttl),
            settings,
            token: std::sync::Mutex::new(None),
            token_fetch: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether the user `user_id` passes `rule`: an account in the application,
    /// and, when the rule lists roles, an enabled account in one of them.
    pub(crate) async fn allows(
        &self,
        user_id: &str,
        rule: &OneAccessRule,
    ) -> Result<bool, AuthError> {
        let accounts = self.accounts_of(user_id).await?;
        let mine: Vec<&str> = accounts
            .iter()
            .filter(|a| a.application_id == rule.application_id)
            .map(|a| a.id.as_str())
            .collect();
        if mine.is_empty() || rule.roles.is_empty() {
            return Ok(!mine.is_empty());
        }
        let roles = self.roles_of(&rule.application_id).await?;
        for code in &rule.roles {
            let Some(role) = roles.iter().find(|r| &r.code == code) else {
                tracing::warn!(application = %rule.application_id, role = %code, "a role the policy names does not exist at OneAccess");
                continue;
            };
            let members = self.members_of(&rule.application_id, &role.id).await?;
            if members
                .iter()
                .any(|m| !m.disabled && mine.contains(&m.id.as_str()))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn accounts_of(&self, user_id: &str) -> Result<Arc<Vec<Account>>, AuthError> {
        self.accounts
            .try_get_with(user_id.to_string(), async {
                #[derive(Deserialize)]
                struct Page {
                    #[serde(default)]
                    accounts: Vec<Account>,
                }
                let path = format!("/api/v2/tenant/users/{}/accounts", urlencoding(user_id));
                match self.get(&path, None).await? {
                    Answer::Ok(v) => Ok(Arc::new(parse::<Page>(v)?.accounts)),
                    // OneAccess answers USER.0001 for a user it does not know:
                    // such a user holds no account.
                    Answer::Refused(code) if code == "USER.0001" => Ok(Arc::new(Vec::new())),
                    Answer::Refused(code) => Err(AuthError::Management(format!(
                        "user accounts refused: {code}"
                    ))),
                }
            })
            .await
            .map_err(unshare)
    }

    async fn roles_of(&self, app: &str) -> Result<Arc<Vec<Role>>, AuthError> {
        self.roles
            .try_get_with(app.to_string(), async {
                let app = urlencoding(app);
                let page = |n: usize| {
                    let path = format!(
                        "/api/v2/tenant/applications/{app}/role-list?offset={n}&limit={PAGE}"
                    );
                    (path, None)
                };
                self.all_pages("roles", page).await.map(Arc::new)
            })
            .await
            .map_err(unshare)
    }

    async fn members_of(&self, app: &str, role_id: &str) -> Result<Arc<Vec<Member>>, AuthError> {
        self.members
            .try_get_with((app.to_string(), role_id.to_string()), async {
                let path = format!(
                    "/api/v2/tenant/applications/{}/role-member-list/{}",
                    urlencoding(app),
                    urlencoding(role_id)
                );
                // The page goes in a JSON body, even on this GET.
                let page = |n: usize| {
                    let body = serde_json::json!({"offset": n, "limit": PAGE}).to_string();
                    (path.clone(), Some(body))
                };
                self.all_pages("role_members", page).await.map(Arc::new)
            })
            .await
            .map_err(unshare)
    }

    /// Every item of a paged listing: `page(n)` is the request for page `n`,
    /// `field` the answer's list. Stops at a short page or at `total`.
    async fn all_pages<T: for<'de> Deserialize<'de>>(
        &self,
        field: &str,
        page: impl Fn(usize) -> (String, Option<String>),
    ) -> Result<Vec<T>, AuthError> {
        let mut all = Vec::new();
        for n in 0..MAX_PAGES {
            let (path, body) = page(n);
            let mut answer: Value = self.listing(&path, body).await?;
            let total = match answer.get("total") {
                None => 0,
                Some(t) => t.as_u64().ok_or_else(|| {
                    AuthError::Management("a listing whose total is not a number".into())
                })? as usize,
            };
            let items: Vec<T> = match answer.get_mut(field).map(Value::take) {
                None => Vec::new(),
                Some(list) => parse(list)?,
            };
            let last = items.len() < PAGE || all.len() + items.len() >= total;
            all.extend(items);
            if last {
                break;
            }
        }
        Ok(all)
    }

    /// A listing that must succeed.
    async fn listing<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: Option<String>,
    ) -> Result<T, AuthError> {
        match self.get(path, body).await? {
            Answer::Ok(v) => parse(v),
            Answer::Refused(code) => Err(AuthError::Management(format!("{path} refused: {code}"))),
        }
    }

    /// A GET with the token; a 401 renews the token and tries once more.
    async fn get(&self, path: &str, body: Option<String>) -> Result<Answer, AuthError> {
        let mut renewed = false;
        loop {
            let token = self.token(renewed).await?;
            let mut req = OutboundRequest::get("management API", format!("{}{path}", self.base));
            req.headers
                .push(("authorization", format!("Bearer {}", token.value.expose())));
            req.json = body.clone();
            let resp = call(self.http.as_ref(), req).await?;
            match resp.status {
                200 => {
                    return serde_json::from_slice(&resp.body)
                        .map(Answer::Ok)
                        .map_err(|_| AuthError::Management("an answer that is not JSON".into()))
                }
                401 if !renewed => renewed = true,
                400 => {
                    let code = serde_json::from_slice::<Value>(&resp.body)
                        .ok()
                        .and_then(|v| v["error_code"].as_str().map(str::to_string))
                        .unwrap_or_else(|| "400".into());
                    return Ok(Answer::Refused(code));
                }
                s => return Err(AuthError::Management(format!("answered {s}"))),
            }
        }
    }

    /// The cached token, or a new one when it is near its end or `renew` says the
    /// API refused it.
    async fn token(&self, renew: bool) -> Result<Arc<Token>, AuthError> {
        let current = || self.token.lock().ok().and_then(|t| t.clone());
        let fresh = |t: &Arc<Token>| Instant::now() < t.renew_at;
        let stale = current();
        if let Some(t) = stale.as_ref().filter(|t| !renew && fresh(t)) {
            return Ok(t.clone());
        }
        let _one = self.token_fetch.lock().await;
        // Another request may have renewed it while this one waited.
        if let Some(t) = current() {
            let same = stale.as_ref().is_some_and(|s| Arc::ptr_eq(s, &t));
            if fresh(&t) && !same {
                return Ok(t);
            }
        }
        let t = Arc::new(self.fetch_token().await?);
        if let Ok(mut slot) = self.token.lock() {
            *slot = Some(t.clone());
        }
        Ok(t)
    }

    async fn fetch_token(&self) -> Result<Token, AuthError> {
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: Secret<String>,
            #[serde(default)]
            expires_in: Option<Value>,
        }
        let req = OutboundRequest {
            endpoint: "management token",
            method: Method::Post,
            url: format!("{}/api/v2/tenant/token", self.base),
            headers: vec![("accept", "application/json".into())],
            form: vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", self.settings.client_id.clone()),
                (
                    "client_secret",
                    self.settings.client_secret.expose().clone(),
                ),
            ],
            json: None,
        };
        let resp = call(self.http.as_ref(), req).await?;
        if resp.status != 200 {
            return Err(AuthError::Management(format!(
                "the token endpoint refused the gateway's credentials ({})",
                resp.status
            )));
        }
        let answer: TokenAnswer = serde_json::from_slice(&resp.body)
            .map_err(|_| AuthError::Management("a token answer without access_token".into()))?;
        // OneAccess's default is 30 minutes; a number or a numeric string.
        let lifetime = match &answer.expires_in {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .map_or(Duration::from_secs(1800), Duration::from_secs);
        Ok(Token {
            value: answer.access_token,
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        })
    }
}

enum Answer {
    Ok(Value),
    /// A 400 with OneAccess's `error_code`.
    Refused(String),
}

fn parse<T: for<'de> Deserialize<'de>>(v: Value) -> Result<T, AuthError> {
    serde_json::from_value(v).map_err(|e| AuthError::Management(format!("unexpected answer: {e}")))
}

/// moka shares one error among the waiters of a failed load.
fn unshare(e: Arc<AuthError>) -> AuthError {
    match e.as_ref() {
        AuthError::IdpUnavailable(m) => AuthError::IdpUnavailable(m.clone()),
        other => AuthError::Management(other.to_string()),
    }
}

/// A path segment: ids are OneAccess-made, but a claim is user data.
fn urlencoding(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
