//! What a new session keeps of a login: the claims some route maps or a policy
//! reads (and the login name, for user events), and the tokens that a route
//! passes on or the logout needs. Decided once per configuration.

use crate::auth::code_flow::Grant;
use crate::config::{Config, LogoutMode, PassToken, DEFAULT_HEADER_CLAIMS};
use crate::identity::Identity;
use crate::session::NewSession;

pub(crate) struct Keep {
    /// Claims kept in the session: every claim some route maps, and a few common ones.
    pub(crate) claims: Vec<String>,
    /// The ID token, for `end_session` logout or a route that passes it.
    pub(crate) id_token: bool,
    /// The access token, for a route that passes it.
    pub(crate) access_token: bool,
}

impl Keep {
    pub(crate) fn new(config: &Config) -> Keep {
        // Minimal sessions keep only what some route maps into a header.
        let mut claims: Vec<String> = if config.session.minimal {
            Vec::new()
        } else {
            DEFAULT_HEADER_CLAIMS
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        // Even a minimal session keeps the login name: user events and the admin
        // listener find a user's sessions by it.
        let login_names = config.provider.as_ref().map(|p| &p.login_name_claims);
        let login_claims = login_names
            .into_iter()
            .flat_map(|l| [l.oidc.as_str(), l.oauth2.as_str(), l.cas.as_str()]);
        let route_claims = config.routes.iter().flat_map(|r| r.claims_used());
        for claim in route_claims.chain(login_claims) {
            if !claims.iter().any(|k| k == claim) {
                claims.push(claim.to_string());
            }
        }
        let passes = |t: PassToken| config.routes.iter().any(|r| r.pass_token == Some(t));
        let end_session = config
            .provider
            .as_ref()
            .is_some_and(|p| p.logout == LogoutMode::EndSession);
        Keep {
            claims,
            id_token: !config.session.minimal && (end_session || passes(PassToken::Id)),
            access_token: passes(PassToken::Access),
        }
    }

    /// A new session of a code-flow login: the tokens this gateway keeps.
    pub(crate) fn session(&self, identity: Identity, grant: Grant) -> NewSession {
        NewSession {
            access_token: grant.access_token.filter(|_| self.access_token),
            refresh_token: grant.refresh_token,
            expires_in: grant.expires_in,
            ..NewSession::of(identity)
        }
    }
}
