//! Logging users in and out at the identity provider: OIDC, OAuth2 with userinfo,
//! and CAS. Returns an `Identity`; never
//! touches cookies or Pingora. Outbound HTTP goes through `http::HttpClient`.

pub mod cas;
pub mod code_flow;
pub mod discovery;
pub mod events;
pub mod health;
pub mod http;
pub mod jwks;
pub mod logout;
pub mod management;
pub mod oauth2;
pub mod oidc;
pub mod pending;
pub mod protocols;
pub mod redirect;
pub mod userinfo;

pub(crate) use cas::CasClient;
pub(crate) use oauth2::OAuth2Client;
pub(crate) use oidc::OidcClient;
pub use protocols::Login;
pub(crate) use protocols::Protocols;
