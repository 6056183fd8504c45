//! A route's token options: which token goes upstream (`pass_token`), and which
//! bearer JWTs API clients may bring (`bearer_tokens`, `bearer_audiences`).

use super::Collector;
use crate::config::file::RouteFile;
use crate::config::runtime::{ClientCredentials, PassToken, Protocol};

pub(super) struct RouteTokens {
    pub pass_token: Option<PassToken>,
    pub(crate) bearer_audiences: Vec<String>,
}

pub(super) fn route_tokens(
    c: &mut Collector,
    i: usize,
    f: &RouteFile,
    protocol: Protocol,
    client: Option<&ClientCredentials>,
) -> RouteTokens {
    let at = |field: &str| format!("route[{i}].{field}");
    let pass_token = match (f.pass_token.as_deref(), protocol) {
        (None, _) => None,
        (Some("access"), Protocol::Oidc | Protocol::OAuth2) => Some(PassToken::Access),
        (Some("id"), Protocol::Oidc) => Some(PassToken::Id),
        (Some("id"), Protocol::OAuth2) => {
            c.add(
                at("pass_token"),
                "an oauth2 login has no ID token; use `access`",
            );
            None
        }
        (Some("access" | "id"), _) => {
            c.add(
                at("pass_token"),
                "only oidc and oauth2 routes have tokens to pass",
            );
            None
        }
        (Some(other), _) => {
            c.add(at("pass_token"), format!("`{other}` is not access or id"));
            None
        }
    };
    if f.assertion && protocol == Protocol::Public {
        c.add(at("assertion"), "a public route has no user to assert");
    }
    let mut bearer_audiences = Vec::new();
    if f.bearer_tokens {
        if protocol != Protocol::Oidc {
            c.add(
                at("bearer_tokens"),
                "bearer JWTs are verified with the OIDC provider's keys: only oidc routes take them",
            );
        }
        bearer_audiences = match (&f.bearer_audiences, client) {
            (Some(list), _) if !list.is_empty() => list.clone(),
            (Some(_), _) => {
                c.add(at("bearer_audiences"), "must list at least one audience");
                Vec::new()
            }
            (None, Some(cl)) => vec![cl.client_id.clone()],
            (None, None) => Vec::new(),
        };
    } else if f.bearer_audiences.is_some() {
        c.add(
            at("bearer_audiences"),
            "is only used with bearer_tokens = true",
        );
    }
    RouteTokens {
        pass_token,
        bearer_audiences,
    }
}
