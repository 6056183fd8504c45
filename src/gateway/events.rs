//! OneAccess's user events at `[provider.events].path`, and ending all of a
//! user's sessions: the one path that a disabled or deleted user's event and an
//! operator on the admin listener both take.

use serde_json::{json, Value};

use http::request::Parts;

use super::bearer::bearer_token;
use super::Gateway;
use crate::auth::events::{self, Event, EventType, Receiver, Refusal};
use crate::config::{EventAction, EventSettings};
use crate::error::StoreError;
use crate::metrics::{Metrics, Revocation};
use crate::reply::{Answer, Reply};
use crate::session::Sessions;

/// Whom to end the sessions of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserKey {
    /// The OneAccess login name, in every realm (`provider.login_name_claims`).
    LoginName(String),
    /// The session's `sub` in the OIDC and OAuth2 realms: OneAccess's user id.
    Sub(String),
}

impl UserKey {
    fn index_key(&self) -> String {
        match self {
            UserKey::LoginName(n) => format!("name:{n}"),
            UserKey::Sub(s) => format!("sub:{s}"),
        }
    }
}

/// What one event did: its outcome (metrics, log) and the answer's `data`.
struct Done {
    outcome: &'static str,
    user: Option<String>,
    sessions: usize,
    data: Option<Value>,
}

/// User events and ending a user's sessions, and what they may touch.
#[derive(Clone, Copy)]
pub struct Events<'g> {
    /// `[provider.events]`, when the receiver is on.
    pub settings: Option<&'g EventSettings>,
    sessions: &'g Sessions,
    metrics: &'g Metrics,
}

impl Gateway {
    pub fn events(&self) -> Events<'_> {
        Events {
            settings: self
                .config
                .provider
                .as_ref()
                .and_then(|p| p.events.as_ref()),
            sessions: &self.sessions,
            metrics: &self.metrics,
        }
    }
}

impl Events<'_> {
    /// Ends every session of `user`, in every mode, on every gateway sharing the
    /// store; sessions made later are not affected. Returns how many live
    /// sessions it ended.
    pub(crate) async fn end_user_sessions(
        &self,
        user: &UserKey,
        cause: Revocation,
        now: u64,
    ) -> Result<usize, StoreError> {
        let ended = self.sessions.end_all(&user.index_key(), now).await?;
        self.metrics.revocation(cause);
        Ok(ended)
    }

    /// `POST [provider.events].path`: checks the event (token, shape, window,
    /// signature, nonce, decryption), does what it asks, and answers in
    /// OneAccess's `{"code","message","data"}` shape with the same HTTP status.
    /// Bad input gets a 4xx; only a store that does not answer gets a 500,
    /// which OneAccess retries.
    pub(crate) async fn oneaccess_event(
        &self,
        parts: &Parts,
        body: Option<&[u8]>,
        now_millis: u64,
    ) -> Reply {
        let Some(settings) = self.settings else {
            return Answer::NotFound.reply(false);
        };
        let receiver = Receiver::new(settings);
        let checked = receiver.check(bearer_token(parts), body, now_millis);
        let kind = checked
            .as_ref()
            .ok()
            .and_then(|e| e.event_type)
            .map_or("unknown", EventType::as_str);
        let result = match checked {
            Ok(envelope) => {
                self.take_event(settings, &receiver, envelope, now_millis / 1000)
                    .await
            }
            Err(r) => Err((r, None)),
        };
        let (status, message, data) = match result {
            Ok(done) => {
                tracing::info!(
                    target: "events",
                    event = kind,
                    user = done.user.as_deref().unwrap_or("-"),
                    outcome = done.outcome,
                    sessions = done.sessions,
                    "OneAccess event"
                );
                self.metrics.event(kind, done.outcome);
                (200, "success", done.data)
            }
            Err((r, user)) => {
                tracing::warn!(
                    target: "events",
                    event = kind,
                    user = user.as_deref().unwrap_or("-"),
                    outcome = r.outcome,
                    "OneAccess event refused"
                );
                self.metrics.event(kind, r.outcome);
                (r.status, r.message, None)
            }
        };
        let body = events::answer_body(status, message, data);
        let reply = Reply::json(status, &String::from_utf8_lossy(&body));
        reply
    }

    /// The checks that need the store or the message, then the event's effect.
    async fn take_event(
        &self,
        settings: &EventSettings,
        receiver: &Receiver<'_>,
        envelope: events::Envelope,
        now: u64,
    ) -> Result<Done, (Refusal, Option<String>)> {
        // The nonce is remembered in the shared store for twice the window: a
        // replay to this or any other gateway within the window is refused, and
        // one after it is stale.
        let fresh = self
            .sessions
            .store()
            .first_use(&format!("use:evn:{}", envelope.nonce), settings.window * 2)
            .await
            .map_err(|_| (events::BUSY, None))?;
        if !fresh {
            return Err((events::REPLAYED, None));
        }
        let kind = envelope.event_type.ok_or((events::UNKNOWN_EVENT, None))?;
        let message = receiver.message(&envelope).map_err(|r| (r, None))?;
        let event = events::read_event(kind, &message).map_err(|r| (r, None))?;
        let sealed = |data: Value| {
            receiver
                .answer_data(data)
                .ok_or((events::BUSY, None))
                .map(Some)
        };
        let done = |outcome, user: Option<String>, sessions, data| Done {
            outcome,
            user,
            sessions,
            data,
        };
        Ok(match event {
            Event::CheckUrl(echo) => done("ok", None, 0, sealed(Value::String(echo))?),
            Event::CreateUser { username } => {
                let data = sealed(json!({ "id": username }))?;
                done("ok", Some(username), 0, data)
            }
            Event::UpdateUser {
                id,
                username,
                disabled,
            } => {
                let data = sealed(json!({ "id": id }))?;
                if disabled == Some(true) && settings.on_disable == EventAction::Revoke {
                    let ended = self.end_named(&id, username.as_deref(), now).await?;
                    done("revoked", Some(id), ended, data)
                } else {
                    done("ignored", Some(id), 0, data)
                }
            }
            Event::DeleteUser { id } => {
                if settings.on_delete == EventAction::Revoke {
                    let ended = self.end_named(&id, None, now).await?;
                    done("revoked", Some(id), ended, None)
                } else {
                    done("ignored", Some(id), 0, None)
                }
            }
            Event::Organization { answer_id } => {
                let data = match answer_id {
                    Some(id) => sealed(json!({ "id": id }))?,
                    None => None,
                };
                done("ignored", None, 0, data)
            }
        })
    }

    /// Ends the sessions of the user an event names: by the id this gateway
    /// answered (the login name), and by a changed `username` too, so a user
    /// renamed and disabled at once loses the sessions of both names.
    async fn end_named(
        &self,
        id: &str,
        username: Option<&str>,
        now: u64,
    ) -> Result<usize, (Refusal, Option<String>)> {
        let busy = |_| (events::BUSY, Some(id.to_string()));
        let mut ended = self
            .end_user_sessions(&UserKey::LoginName(id.to_string()), Revocation::Event, now)
            .await
            .map_err(busy)?;
        if let Some(name) = username.filter(|n| *n != id) {
            ended += self
                .end_user_sessions(
                    &UserKey::LoginName(name.to_string()),
                    Revocation::Event,
                    now,
                )
                .await
                .map_err(busy)?;
        }
        Ok(ended)
    }

    /// The admin listener's `POST /sessions/revoke`, body `{"login_name": …}`,
    /// `{"sub": …}` or `{"user_id": …}` (the last two are one thing: OneAccess's
    /// user id, the `sub` of OIDC and OAuth2 sessions). JSON only, so no form on
    /// another site can post it. Answers the status and a JSON body.
    pub(crate) async fn admin_revoke(
        &self,
        content_type: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> (u16, String) {
        let fail = |status: u16, message: &str| (status, json!({ "error": message }).to_string());
        let json_type = content_type.is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json_type {
            return fail(415, "send Content-Type: application/json");
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Map<String, Value>>(body) else {
            return fail(400, "the body is not a JSON object");
        };
        let given: Vec<(&str, &str)> = ["login_name", "sub", "user_id"]
            .iter()
            .filter_map(|k| Some((*k, v.get(*k)?.as_str()?)))
            .collect();
        let [(by, who)] = given.as_slice() else {
            return fail(
                400,
                "give exactly one of login_name, sub or user_id, as a string",
            );
        };
        if who.is_empty() || who.len() > 255 || who.chars().any(char::is_control) {
            return fail(400, "not a user name or id");
        }
        let user = match *by {
            "login_name" => UserKey::LoginName(who.to_string()),
            _ => UserKey::Sub(who.to_string()),
        };
        match self.end_user_sessions(&user, Revocation::Admin, now).await {
            Ok(n) => {
                tracing::info!(target: "events", by = *by, user = *who, sessions = n, "sessions revoked by an operator");
                (
                    200,
                    json!({ "revoked": n, *by: who, "issued_until": now }).to_string(),
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin revoke could not reach the session store");
                fail(503, "the session store is unavailable; nothing was revoked")
            }
        }
    }
}
