//! oneaccess-gateway: a reverse-proxy SSO gateway for Huawei Cloud OneAccess.
//! Dependencies point one way: `error`/`secret` -> `config` -> `route`, `session`,
//! `auth`, `identity` -> `gateway` -> `proxy` -> `main` (`tests/layering.rs`).
//!
//! Items that the binary, the demo, the integration tests and the benches do not
//! name are `pub(crate)` or narrower, so the compiler reports what nothing uses
//! (`unreachable_pub` is denied).
//!
//! No `unwrap`/`expect` outside tests: a request never panics on a value it did
//! not check. `unsafe` only where a raw socket descriptor is borrowed
//! (`proxy::workers::dup`), each block with its SAFETY note.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_code, unreachable_pub)]

pub mod assertion;
pub mod auth;
pub mod config;
pub mod error;
pub mod front_door;
pub mod gateway;
pub mod identity;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod reply;
pub mod route;
pub mod secret;
pub mod session;
pub mod telemetry;
