//! The identity provider as one gateway sees it: the protocol clients its
//! routes use, OneAccess's management API, whether the provider answers, and
//! the discovery made at start-up and asked again by `/readyz`.

use std::sync::Arc;

use crate::auth::health::IdpHealth;
use crate::auth::http::{HttpClient, OutboundRequest};
use crate::auth::management::ManagementClient;
use crate::auth::Protocols;
use crate::config::Config;
use crate::error::AuthError;

pub(crate) struct Idp {
    pub(crate) protocols: Protocols,
    /// For `policy.oneaccess` rules.
    pub(crate) management: Option<ManagementClient>,
    /// Whether the provider answers, as its last calls (or a probe) said.
    health: Arc<IdpHealth>,
    /// The client every call to the provider goes through (metered).
    http: Arc<dyn HttpClient>,
    /// What a probe asks when recent calls say nothing; `None` without a provider.
    discovery_url: Option<String>,
}

impl Idp {
    /// The clients of the protocols `config`'s routes use. Does no network I/O.
    pub(crate) fn new(config: &Config, http: Arc<dyn HttpClient>, health: Arc<IdpHealth>) -> Idp {
        let provider = config.provider.as_ref();
        Idp {
            protocols: Protocols::new(config, &http),
            management: provider.and_then(|p| {
                let m = p.management.clone()?;
                Some(ManagementClient::new(&p.base_url, m, http.clone()))
            }),
            discovery_url: provider.map(|p| crate::auth::discovery::discovery_url(&p.issuer)),
            health,
            http,
        }
    }

    /// Whether the identity provider answers: as its recent calls said, else as
    /// a request for its discovery document (any status below 500) says. Always
    /// without a provider.
    pub(crate) async fn answers(&self) -> bool {
        let Some(url) = &self.discovery_url else {
            return true;
        };
        let http = &self.http;
        self.health
            .reachable(|| async move {
                let req = OutboundRequest::get("discovery", url);
                http.send(req).await.is_ok_and(|r| r.status < 500)
            })
            .await
    }

    /// OIDC discovery and JWKS at start-up. `Err` only for a provider whose
    /// metadata is wrong (fatal). An unreachable IdP is logged: logged-in users
    /// keep working and the first login discovers again.
    pub(crate) async fn warm_up(&self) -> Result<(), AuthError> {
        let Some(oidc) = &self.protocols.oidc else {
            return Ok(());
        };
        match oidc.warm_up().await {
            Ok(()) => Ok(()),
            Err(e @ AuthError::Discovery(_)) => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "identity provider not reachable at start-up; logged-in users are served, logins wait for it");
                Ok(())
            }
        }
    }

    /// What keeps logins from working, for `/readyz`: discovery is tried again
    /// here, so a gateway that started while the IdP was down turns ready.
    pub(crate) async fn problems(&self) -> Option<String> {
        let oidc = self.protocols.oidc.as_ref()?;
        let e = oidc.metadata().await.err()?;
        Some(format!("OIDC discovery: {e}"))
    }

    /// Whether the provider answered its last calls; `None` without a provider.
    pub(crate) fn reachable(&self) -> Option<bool> {
        self.discovery_url
            .as_ref()
            .map(|_| self.health.last_call_answered())
    }

    /// Whether logins can start without first discovering the provider.
    pub(crate) fn is_ready(&self) -> bool {
        self.protocols
            .oidc
            .as_ref()
            .is_none_or(|o| o.is_discovered())
    }
}
