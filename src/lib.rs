//! oneaccess-gateway: a reverse-proxy SSO gateway for Huawei Cloud OneAccess.
//! Dependencies point one way: `error`/`secret` -> `config` -> `route`, `session`,
//! `auth`, `identity` -> `gateway` -> `proxy` -> `main`.

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
