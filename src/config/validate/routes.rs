//! `[[route]]`: each route's host, path, upstream, protocol, client and options,
//! its `[route.cas]`, and the single-logout networks all cas routes share.

use std::collections::BTreeSet;
use std::path::Path;

use url::Url;

use super::provider::client_credentials;
use super::{headers, policy, serving, tokens, Collector, EnvLookup};
use crate::config::file::{CasFile, RouteFile};
use crate::config::runtime::{
    CasFormat, CasSettings, CasVersion, PathParams, Protocol, ProviderSettings, Realm,
    RefreshFailure, RouteAuth, RouteSpec, ServerSettings,
};

pub(super) fn route_specs(
    c: &mut Collector,
    files: Vec<(usize, RouteFile)>,
    server: &ServerSettings,
    provider: Option<&ProviderSettings>,
    base_dir: &Path,
    env: EnvLookup,
) -> Vec<RouteSpec> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, f) in files {
        let at = |field: &str| format!("route[{i}].{field}");

        let host = f.host.as_ref().map(|h| h.trim().to_ascii_lowercase());
        if let Some(h) = &host {
            if h.is_empty() || h.contains(['/', ':', '@', ' ', '\\']) {
                c.add(
                    at("host"),
                    "must be a bare host name, without scheme or port",
                );
            }
        }
        let path = f.path.clone().unwrap_or_else(|| "/".into());
        if !crate::front_door::path::is_canonical_prefix(&path) {
            c.add(at("path"), crate::front_door::path::CANONICAL_PREFIX_RULE);
        }
        if path.starts_with(&server.paths.prefix) {
            c.add(
                at("path"),
                format!("overlaps the gateway's own `{}`", server.paths.prefix),
            );
        }
        // Compared ignoring case: an app may read `/Admin` as `/admin`, and the front
        // door refuses what two routes could both claim.
        if !seen.insert((
            host.clone(),
            path.trim_end_matches('/').to_ascii_lowercase(),
        )) {
            c.add(
                at("path"),
                "another route already has this host and path (paths are compared ignoring case)",
            );
        }

        // No upstream: the route exists for forward auth only.
        let upstream = f.upstream.as_ref().and_then(|u| {
            match serving::resolve_upstream(u, f.upstream_tls_verify, f.read_timeout_seconds) {
                Ok(up) => Some(up),
                Err(e) => {
                    c.add(at("upstream"), e);
                    None
                }
            }
        });

        let protocol = match f.protocol.as_deref() {
            Some("oidc") => Protocol::Oidc,
            Some("oauth2") => Protocol::OAuth2,
            Some("cas") => Protocol::Cas,
            Some("public") => Protocol::Public,
            Some(p) => {
                c.add(
                    at("protocol"),
                    format!("`{p}` is not one of oidc, oauth2, cas, public"),
                );
                Protocol::Public
            }
            None => {
                c.add(
                    at("protocol"),
                    "is required: `oidc`, `oauth2`, `cas` or `public`",
                );
                Protocol::Public
            }
        };

        let own_client = client_credentials(
            c,
            &format!("route[{i}]"),
            f.client_id.as_deref(),
            f.client_secret.as_ref(),
            f.token_endpoint_auth.as_deref(),
            base_dir,
            env,
        );
        let client = match protocol {
            Protocol::Oidc | Protocol::OAuth2 => {
                let client = own_client.or_else(|| provider.and_then(|p| p.client.clone()));
                if client.is_none() && provider.is_some() {
                    c.add(
                        at("client_id"),
                        "an oidc or oauth2 route needs a client: client_id and client_secret here or in [provider]",
                    );
                }
                client
            }
            Protocol::Cas | Protocol::Public => {
                if own_client.is_some() {
                    c.add(at("client_id"), "only oidc and oauth2 routes use a client");
                }
                None
            }
        };
        let path_params = match f.path_params.as_deref() {
            None | Some("allow") => PathParams::Allow,
            Some("refuse") => PathParams::Refuse,
            Some(other) => {
                c.add(
                    at("path_params"),
                    format!("`{other}` is not allow or refuse"),
                );
                PathParams::Allow
            }
        };
        let cas = match (protocol, f.cas.as_ref()) {
            (Protocol::Cas, cf) => Some(cas_settings(c, i, cf)),
            (_, Some(_)) => {
                c.add(at("cas"), "only cas routes take cas options");
                None
            }
            (_, None) => None,
        };
        let refresh_failure = match f.on_refresh_failure.as_deref() {
            None | Some("reauthenticate") => RefreshFailure::Reauthenticate,
            Some("logout") => RefreshFailure::Logout,
            Some("serve") => RefreshFailure::Serve,
            Some(other) => {
                c.add(
                    at("on_refresh_failure"),
                    format!("`{other}` is not logout, reauthenticate or serve"),
                );
                RefreshFailure::Reauthenticate
            }
        };
        let management = provider.is_some_and(|p| p.management.is_some());
        let policy = f
            .policy
            .as_ref()
            .map(|p| policy::policy(c, i, p, protocol, management));
        let client_id = client.as_ref().map_or("", |cl| cl.client_id.as_str());
        let realm = Realm::of(protocol, client_id);

        let headers = headers::header_rules(c, i, f.headers.as_ref(), f.header_encoding.as_deref());

        let origin = match &host {
            None => server.public_origin.clone(),
            Some(h) => match Url::parse(&server.public_origin) {
                Ok(mut u) => {
                    if u.set_host(Some(h)).is_err() {
                        c.add(at("host"), "is not a valid host name");
                    }
                    u.origin().ascii_serialization()
                }
                Err(_) => server.public_origin.clone(),
            },
        };

        let tokens = tokens::route_tokens(c, i, &f, protocol, client.as_ref());
        let auth = match (protocol, client, cas) {
            (Protocol::Public, _, _) => Some(RouteAuth::Public),
            (Protocol::Oidc, Some(cl), _) => Some(RouteAuth::Oidc(cl)),
            (Protocol::OAuth2, Some(cl), _) => Some(RouteAuth::OAuth2(cl)),
            (Protocol::Cas, _, Some(cas)) => Some(RouteAuth::Cas(cas)),
            // Without its client the route is not made; the problem is reported.
            _ => None,
        };
        if let (Some(auth), true) = (auth, f.upstream.is_none() || upstream.is_some()) {
            out.push(RouteSpec {
                index: i,
                host,
                path,
                upstream,
                auth,
                headers,
                origin,
                realm,
                refresh_failure,
                policy,
                pass_token: tokens.pass_token,
                assertion: f.assertion,
                bearer_audiences: tokens.bearer_audiences,
                path_params,
            });
        }
    }
    out
}

fn cas_settings(c: &mut Collector, i: usize, f: Option<&CasFile>) -> CasSettings {
    let version = match f.and_then(|f| f.version.as_deref()) {
        None | Some("3.0" | "3") => CasVersion::V3,
        Some("2.0" | "2") => CasVersion::V2,
        Some("1.0" | "1") => CasVersion::V1,
        Some(v) => {
            c.add(
                format!("route[{i}].cas.version"),
                format!("`{v}` is not 1.0, 2.0 or 3.0"),
            );
            CasVersion::V3
        }
    };
    let format = match f.and_then(|f| f.format.as_deref()) {
        // OneAccess answers JSON unless told otherwise (the CAS spec says XML).
        None | Some("json" | "JSON") => CasFormat::Json,
        Some("xml" | "XML") => CasFormat::Xml,
        Some(v) => {
            c.add(
                format!("route[{i}].cas.format"),
                format!("`{v}` is not json or xml"),
            );
            CasFormat::Json
        }
    };
    let renew = f.is_some_and(|f| f.renew);
    let gateway = f.is_some_and(|f| f.gateway);
    if renew && gateway {
        c.add(
            format!("route[{i}].cas"),
            "renew and gateway cannot both be set (CAS protocol 2.1)",
        );
    }
    CasSettings {
        version,
        format,
        renew,
        gateway,
    }
}

/// `cas.slo_networks` of the cas routes: single logout comes to one service URL
/// for all of them, so every cas route that names networks must name the same
/// ones, and then every cas route must name them.
pub(super) fn cas_slo_networks(
    c: &mut Collector,
    routes: &[(usize, Option<Vec<String>>)],
) -> Option<Vec<ipnet::IpNet>> {
    let mut first: Option<(usize, Vec<ipnet::IpNet>)> = None;
    for (i, nets) in routes {
        let Some(nets) = nets else { continue };
        let parsed: Vec<ipnet::IpNet> = nets
            .iter()
            .enumerate()
            .filter_map(|(k, n)| policy::cidr(c, &format!("route[{i}].cas.slo_networks[{k}]"), n))
            .collect();
        match &first {
            None => first = Some((*i, parsed)),
            Some((j, want)) if *want != parsed => c.add(
                format!("route[{i}].cas.slo_networks"),
                format!("differs from route[{j}].cas.slo_networks: single logout comes to one address for every cas route"),
            ),
            Some(_) => {}
        }
    }
    let (j, nets) = first?;
    for (i, nets) in routes {
        if nets.is_none() {
            c.add(
                format!("route[{i}].cas.slo_networks"),
                format!("is needed, as route[{j}] limits single logout to its networks"),
            );
        }
    }
    Some(nets)
}
