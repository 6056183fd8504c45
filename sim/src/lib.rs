//! `oneaccess-sim`: a faithful simulator of the Huawei OneAccess identity provider
//! (OIDC / OAuth 2.0, CAS, global logout, the management API, synchronization events)
//! and a tiny echo upstream, for the gateway's integration tests and the demo.
//! [`events`] has the events' wire format, for building valid and tampered requests.
//!
//! Both servers run in-process on the caller's Tokio runtime; see [`Sim`] and [`echo::Echo`].

pub mod echo;
pub mod keys;
pub mod oneaccess;
mod server;
mod util;

pub use oneaccess::events;
pub use oneaccess::{
    load_users, Delivery, EventSettings, ExpiresInStyle, Signing, Sim, SimConfig, SimCounters,
    TimestampStyle, TokenHook, User, SSO_COOKIE,
};
