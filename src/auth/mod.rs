//! Logging users in and out at the identity provider. Returns an `Identity`; never
//! touches cookies or Pingora. Outbound HTTP goes through `http::HttpClient`.

pub mod discovery;
pub mod http;
pub mod jwks;
pub mod logout;
pub mod oidc;
pub mod pending;
pub mod redirect;

pub use oidc::OidcClient;
pub use pending::PendingLogin;
