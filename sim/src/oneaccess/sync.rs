//! OneAccess's side of synchronization events: directory changes (create, disable,
//! enable, delete a user) and pushing them to the one configured application, with the
//! `CHECK_URL` probe when the settings are saved and a full sync on demand.
//!
//! Every push goes through one queue and one worker task, so events reach the
//! application in the order the directory changed, whether they came from the [`Sim`]
//! handle (which awaits its delivery) or from the management API (which answers at once,
//! as OneAccess's own queue does).
//!
//! Retry: an attempt that gets no answer, a 5xx, or a body whose `code` is `"500"` is
//! tried again after 500 ms, up to 3 attempts in all, each sealed afresh (new nonce and
//! timestamp). A 4xx or any other answer is final. One attempt may take 5 s.
//!
//! The application names users by the `id` it answered to `CREATE_USER`; that id is
//! remembered per user. An update or deletion of a user with no id yet first provisions
//! them with `CREATE_USER` (as OneAccess provisions an account before changing it).
//!
//! Disabling or deleting a user ends their SSO sessions and revokes their codes, tokens
//! and tickets silently: no back-channel or CAS logout is sent (OneAccess documents none),
//! so what a gateway does with the event is what its tests see.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::http::header;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::events::{decrypt_data, random_letters, random_nonce, try_seal, Delivery};
use super::state::{lock, State};
use super::users::Entry;
use super::{slo, EventSettings, Sim, User};

/// Attempts per event, the first included.
const MAX_ATTEMPTS: usize = 3;

/// Pause before another attempt.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// How long one attempt may take (connect, send, answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `organizationId` every pushed user belongs to (the simulator has one organization).
const ORGANIZATION_ID: &str = "org-1";

/// Synchronization settings and what was pushed so far.
#[derive(Default)]
pub(crate) struct Events {
    /// `None`: events are off (not configured, or disabled).
    settings: Option<EventSettings>,
    /// The application's id of each user it has an account for, by OneAccess user id.
    ids: HashMap<String, String>,
    /// Every delivery, in order.
    log: Vec<Delivery>,
}

/// One job for the worker, and where to send its deliveries (if anyone waits).
pub(crate) struct Queued {
    job: Job,
    reply: Option<oneshot::Sender<Vec<Delivery>>>,
}

enum Job {
    /// Save the settings and send `CHECK_URL`.
    Configure(EventSettings),
    /// Stop pushing.
    Disable,
    /// `CREATE_USER` for each user, in order.
    Create(Vec<Entry>),
    /// `UPDATE_USER` with the user's `disabled` flag.
    Update(Entry),
    /// `DELETE_USER`.
    Delete(Entry),
}

/// Starts the worker that delivers queued jobs one at a time, on the current runtime.
/// It holds the state weakly and ends when the state (and so the queue's sender) goes.
pub(crate) fn start_worker(state: &Arc<State>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
    if state.event_queue.set(tx).is_err() {
        return;
    }
    let weak: Weak<State> = Arc::downgrade(state);
    tokio::spawn(async move {
        while let Some(queued) = rx.recv().await {
            let Some(state) = weak.upgrade() else { break };
            let deliveries = run(&state, queued.job).await;
            drop(state);
            if let Some(reply) = queued.reply {
                // The waiter may have given up; the delivery is logged anyway.
                let _ = reply.send(deliveries);
            }
        }
    });
}

/// Queues a job; `false` if the worker is gone.
fn enqueue(state: &State, job: Job, reply: Option<oneshot::Sender<Vec<Delivery>>>) -> bool {
    match state.event_queue.get() {
        Some(tx) => tx.send(Queued { job, reply }).is_ok(),
        None => false,
    }
}

/// Queues a job and waits for its deliveries (none if the worker is gone).
async fn submit(state: &State, job: Job) -> Vec<Delivery> {
    let (tx, rx) = oneshot::channel();
    if !enqueue(state, job, Some(tx)) {
        tracing::warn!("the event worker is gone; nothing was pushed");
        return Vec::new();
    }
    rx.await.unwrap_or_default()
}

// ---- directory changes -------------------------------------------------------------

/// Sets the user's `disabled` flag; disabling also ends their sessions and revokes
/// their grants (silently). The user as they are now, or `None` if there is no such user.
pub(crate) fn set_disabled(state: &State, user_id: &str, disabled: bool) -> Option<Entry> {
    let entry = {
        let mut dir = lock(&state.directory);
        let entry = dir.by_id_mut(user_id)?;
        entry.disabled = disabled;
        entry.clone()
    };
    if disabled {
        lock(&state.store).forget_user(user_id);
    }
    tracing::info!(user = %entry.user.user_name, disabled, "user status changed");
    Some(entry)
}

/// Deletes the user, ends their sessions and revokes their grants (silently). The user
/// as they were, or `None` if there is no such user.
pub(crate) fn delete(state: &State, user_id: &str) -> Option<Entry> {
    let entry = lock(&state.directory).remove(user_id)?;
    lock(&state.store).forget_user(user_id);
    tracing::info!(user = %entry.user.user_name, "user deleted");
    Some(entry)
}

/// Queues `UPDATE_USER` for the user without waiting (the management API's way).
pub(crate) fn push_update(state: &State, entry: Entry) {
    if !enqueue(state, Job::Update(entry), None) {
        tracing::warn!("the event worker is gone; UPDATE_USER not pushed");
    }
}

/// Queues `DELETE_USER` for the user without waiting (the management API's way).
pub(crate) fn push_delete(state: &State, entry: Entry) {
    if !enqueue(state, Job::Delete(entry), None) {
        tracing::warn!("the event worker is gone; DELETE_USER not pushed");
    }
}

// ---- the worker's side ---------------------------------------------------------------

/// Runs one job; the deliveries it made (none when events are off).
async fn run(state: &State, job: Job) -> Vec<Delivery> {
    let settings = match job {
        Job::Configure(settings) => {
            lock(&state.events).settings = Some(settings.clone());
            let probe = random_letters(16);
            let delivery = deliver(state, &settings, "CHECK_URL", None, &probe).await;
            return vec![delivery];
        }
        Job::Disable => {
            lock(&state.events).settings = None;
            return Vec::new();
        }
        _ => match lock(&state.events).settings.clone() {
            Some(settings) => settings,
            None => return Vec::new(),
        },
    };
    match job {
        Job::Create(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for entry in &entries {
                out.push(create(state, &settings, entry).await);
            }
            out
        }
        Job::Update(entry) => {
            let (mut out, id) = match provisioned_id(state, &settings, &entry).await {
                Ok(found) => found,
                Err(failed) => return vec![failed],
            };
            let message = json!({
                "id": id,
                "username": entry.user.user_name,
                "disabled": entry.disabled,
            });
            out.push(deliver_user(state, &settings, "UPDATE_USER", &entry, &message).await);
            out
        }
        Job::Delete(entry) => {
            let (mut out, id) = match provisioned_id(state, &settings, &entry).await {
                Ok(found) => found,
                Err(failed) => return vec![failed],
            };
            let message = json!({ "id": id });
            let delivery = deliver_user(state, &settings, "DELETE_USER", &entry, &message).await;
            if delivery.ok {
                // The application's account is gone; a re-created user is provisioned anew.
                lock(&state.events).ids.remove(&entry.user.id);
            }
            out.push(delivery);
            out
        }
        Job::Configure(_) | Job::Disable => Vec::new(),
    }
}

/// The application's id of the user: the remembered one, or the one a `CREATE_USER`
/// pushed now answered (then with that delivery). `Err` is the failed `CREATE_USER`.
async fn provisioned_id(
    state: &State,
    settings: &EventSettings,
    entry: &Entry,
) -> Result<(Vec<Delivery>, String), Delivery> {
    let known = lock(&state.events).ids.get(&entry.user.id).cloned();
    if let Some(id) = known {
        return Ok((Vec::new(), id));
    }
    let created = create(state, settings, entry).await;
    match answered_id(&created).filter(|_| created.ok) {
        Some(id) => Ok((vec![created], id)),
        None => Err(created),
    }
}

/// Pushes `CREATE_USER` and remembers the id the application answered.
async fn create(state: &State, settings: &EventSettings, entry: &Entry) -> Delivery {
    let u = &entry.user;
    let message = json!({
        "username": u.user_name,
        "name": u.name,
        "organizationId": ORGANIZATION_ID,
        "password": u.password,
        "disabled": entry.disabled,
        "email": u.email,
        "mobile": u.mobile,
    });
    let delivery = deliver_user(state, settings, "CREATE_USER", entry, &message).await;
    if let Some(id) = answered_id(&delivery).filter(|_| delivery.ok) {
        lock(&state.events).ids.insert(u.id.clone(), id);
    }
    delivery
}

async fn deliver_user(
    state: &State,
    settings: &EventSettings,
    event_type: &str,
    entry: &Entry,
    message: &Value,
) -> Delivery {
    deliver(
        state,
        settings,
        event_type,
        Some(&entry.user.user_name),
        &message.to_string(),
    )
    .await
}

/// The `id` in a `CREATE_USER` answer's data (`{"id": "..."}`; a number is taken as its
/// digits), if it is there and not empty.
fn answered_id(delivery: &Delivery) -> Option<String> {
    let data: Value = serde_json::from_str(delivery.data.as_deref()?).ok()?;
    let id = match data.get("id")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!id.is_empty()).then_some(id)
}

/// Sends one event with retries, logs and records the delivery.
async fn deliver(
    state: &State,
    settings: &EventSettings,
    event_type: &str,
    user_name: Option<&str>,
    message: &str,
) -> Delivery {
    let mut delivery = Delivery::not_sent(event_type, user_name);
    for attempt in 1..=MAX_ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(RETRY_DELAY).await;
        }
        let nonce = random_nonce();
        let Some(body) = try_seal(
            settings,
            event_type,
            message,
            &nonce,
            settings.timestamp.now(),
        ) else {
            tracing::error!(
                event_type,
                "cannot encrypt: the encryption key is not 16 bytes"
            );
            break;
        };
        let answer = post(state, settings, &body).await;
        let (status, text) = match answer {
            Ok(answer) => answer,
            Err(e) => {
                tracing::info!(event_type, attempt, error = %e, "event got no answer");
                delivery.attempts.push(0);
                delivery.answer = None;
                delivery.data = None;
                continue;
            }
        };
        delivery.attempts.push(status);
        delivery.answer = serde_json::from_str::<Value>(&text).ok();
        delivery.data = answer_data(settings, delivery.answer.as_ref());
        let code = delivery.answer.as_ref().and_then(code_of);
        tracing::info!(event_type, attempt, status, code = ?code, "event delivered");
        let busy = status >= 500 || code.as_deref() == Some("500");
        if busy {
            continue;
        }
        delivery.ok = status == 200
            && code.as_deref() == Some("200")
            && match event_type {
                "CHECK_URL" => delivery.data.as_deref() == Some(message),
                "CREATE_USER" => answered_id(&delivery).is_some(),
                _ => true,
            };
        break;
    }
    tracing::info!(
        event_type,
        user = user_name.unwrap_or(""),
        attempts = ?delivery.attempts,
        ok = delivery.ok,
        "event finished"
    );
    lock(&state.events).log.push(delivery.clone());
    delivery
}

/// An answer's `code` as text (a string, or a number's digits).
fn code_of(answer: &Value) -> Option<String> {
    match answer.get("code")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An answer's `data`: decrypted when encryption is on (it must then be a string), else
/// a string as is and any other value as JSON text.
fn answer_data(settings: &EventSettings, answer: Option<&Value>) -> Option<String> {
    let data = answer?.get("data")?;
    match (&settings.encryption_key, data) {
        (_, Value::Null) => None,
        (Some(key), Value::String(s)) => decrypt_data(key, s),
        (Some(_), _) => None,
        (None, Value::String(s)) => Some(s.clone()),
        (None, other) => Some(other.to_string()),
    }
}

/// POSTs the sealed body; the answer's status and body text.
async fn post(
    state: &State,
    settings: &EventSettings,
    body: &Value,
) -> std::io::Result<(u16, String)> {
    let resp = slo::client(state)?
        .post(&settings.callback_url)
        .header(header::CONTENT_TYPE, "application/json;charset=UTF-8")
        .header(header::AUTHORIZATION, format!("Bearer {}", settings.token))
        .timeout(ATTEMPT_TIMEOUT)
        .body(body.to_string())
        .send()
        .await
        .map_err(slo::io_error)?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(slo::io_error)?;
    Ok((status, text))
}

// ---- the Sim handle ------------------------------------------------------------------

impl Sim {
    /// Saves the application's synchronization settings (one application; this replaces
    /// any earlier ones) and sends `CHECK_URL`, as the OneAccess console does when an
    /// administrator saves them; returns that delivery. The settings stay saved even when
    /// the check fails (see [`crate::Delivery::ok`]), so a test can point events at a
    /// receiver that refuses them.
    ///
    /// Every event (this one included) is retried: an attempt with no answer, a 5xx, or a
    /// body `code` `"500"` is tried again after 500 ms, up to 3 attempts in all, each
    /// sealed afresh (new nonce and timestamp); a 4xx or any other answer is final. One
    /// attempt may take 5 s. The ids the application answered for users are kept.
    ///
    /// Panics if `encryption_key` is set and is not 16 bytes long (AES-128).
    pub async fn configure_events(&self, settings: EventSettings) -> Delivery {
        if let Some(key) = &settings.encryption_key {
            assert_eq!(
                key.len(),
                16,
                "the encryption key must be 16 bytes (AES-128)"
            );
        }
        submit(self.state(), Job::Configure(settings))
            .await
            .pop()
            .unwrap_or_else(|| Delivery::not_sent("CHECK_URL", None))
    }

    /// Stops pushing events (after those already queued); the pushing methods return
    /// `None` from now on, until [`Sim::configure_events`] again.
    pub fn disable_events(&self) {
        if !enqueue(self.state(), Job::Disable, None) {
            lock(&self.state().events).settings = None;
        }
    }

    /// Disables the user named `user_name`: they can no longer log in, their SSO
    /// sessions end and their codes, tokens and CAS tickets stop working, all without
    /// logout notifications. Then pushes `UPDATE_USER` `{"id", "username", "disabled":
    /// true}` and returns its delivery once done (with retries); first `CREATE_USER` if
    /// the application has no id for the user yet (if that fails, its delivery is
    /// returned and no update is sent). `None` when events are not configured.
    /// Panics if there is no such user.
    pub async fn disable_user(&self, user_name: &str) -> Option<Delivery> {
        self.set_user_disabled(user_name, true).await
    }

    /// Enables the user named `user_name` again (they can log in); pushes `UPDATE_USER`
    /// with `"disabled": false` as [`Sim::disable_user`] does. Panics if there is no such
    /// user.
    pub async fn enable_user(&self, user_name: &str) -> Option<Delivery> {
        self.set_user_disabled(user_name, false).await
    }

    async fn set_user_disabled(&self, user_name: &str, disabled: bool) -> Option<Delivery> {
        let user_id = self.user_id_of(user_name);
        let entry = set_disabled(self.state(), &user_id, disabled)
            .unwrap_or_else(|| panic!("no user named {user_name:?}"));
        submit(self.state(), Job::Update(entry)).await.pop()
    }

    /// Deletes the user named `user_name` from the directory (their sessions end and their
    /// grants are revoked, silently), then pushes `DELETE_USER` `{"id"}` and returns its
    /// delivery once done; first `CREATE_USER` if the application has no id for the user
    /// yet, as for [`Sim::disable_user`]. After a successful deletion the id is forgotten.
    /// `None` when events are not configured. Panics if there is no such user.
    pub async fn delete_user(&self, user_name: &str) -> Option<Delivery> {
        let user_id = self.user_id_of(user_name);
        let entry =
            delete(self.state(), &user_id).unwrap_or_else(|| panic!("no user named {user_name:?}"));
        submit(self.state(), Job::Delete(entry)).await.pop()
    }

    /// Adds an enabled user to the directory (they can log in at once), then pushes
    /// `CREATE_USER` `{"username", "name", "organizationId": "org-1", "password",
    /// "disabled": false, "email", "mobile"}` and returns its delivery once done; the `id`
    /// the application answers is remembered. `None` when events are not configured.
    /// Panics if a user with the same id or user name exists.
    pub async fn create_user(&self, user: User) -> Option<Delivery> {
        let entry = Entry {
            user: user.clone(),
            disabled: false,
        };
        if let Err(why) = lock(&self.state().directory).insert(user) {
            panic!("cannot create the user: {why}");
        }
        submit(self.state(), Job::Create(vec![entry])).await.pop()
    }

    /// Pushes `CREATE_USER` for every user in the directory, in directory order (a
    /// disabled user with `"disabled": true`), as an administrator's full sync does;
    /// returns the deliveries. Empty when events are not configured.
    pub async fn full_sync(&self) -> Vec<Delivery> {
        let entries = lock(&self.state().directory).entries().to_vec();
        submit(self.state(), Job::Create(entries)).await
    }

    /// Every event delivery so far, in order (`CHECK_URL` included).
    pub fn event_log(&self) -> Vec<Delivery> {
        lock(&self.state().events).log.clone()
    }

    /// The id the application answered to `CREATE_USER` for the user named `user_name`,
    /// if it has one (what `UPDATE_USER` and `DELETE_USER` carry).
    pub fn event_user_id(&self, user_name: &str) -> Option<String> {
        let user_id = lock(&self.state().directory)
            .by_name(user_name)
            .map(|e| e.user.id.clone())?;
        lock(&self.state().events).ids.get(&user_id).cloned()
    }

    /// Whether the user named `user_name` exists and is disabled (`None`: no such user).
    pub fn user_disabled(&self, user_name: &str) -> Option<bool> {
        lock(&self.state().directory)
            .by_name(user_name)
            .map(|e| e.disabled)
    }
}
