//! The identity provider's signing keys: `kid` -> key in a moka cache. An unknown
//! `kid` triggers one refetch of the JWKS, throttled, so a rotated key is picked up
//! at once while a flood of made-up kids costs the IdP at most one fetch per
//! interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use moka::sync::Cache;

use super::http::{call, HttpClient, OutboundRequest, JWKS_ENDPOINT};
use crate::error::AuthError;

/// A verification key and the algorithm its JWK is pinned to, if any.
pub struct VerifyKey {
    pub key: DecodingKey,
    pub alg: Option<Algorithm>,
}

/// Cache entry name for the key of a JWKS that has exactly one key and the token
/// names none.
const ONLY_KEY: &str = "\0only";

pub struct JwksCache {
    keys: Cache<String, Arc<VerifyKey>>,
    /// When the JWKS was last fetched. The async mutex also makes refetches
    /// single-flight: callers that queued behind a fetch see it is fresh and skip.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_refetch: Duration,
}

impl JwksCache {
    pub fn new(ttl: Duration, min_refetch: Duration) -> JwksCache {
        JwksCache {
            keys: Cache::builder().max_capacity(64).time_to_live(ttl).build(),
            last_fetch: tokio::sync::Mutex::new(None),
            min_refetch,
        }
    }

    /// The key for `kid`, fetching the JWKS once if it is not known.
    pub async fn key(
        &self,
        http: &dyn HttpClient,
        jwks_uri: &str,
        kid: Option<&str>,
    ) -> Result<Arc<VerifyKey>, AuthError> {
        let name = kid.unwrap_or(ONLY_KEY);
        if let Some(k) = self.keys.get(name) {
            return Ok(k);
        }
        self.refetch(http, jwks_uri).await?;
        self.keys.get(name).ok_or_else(|| {
            AuthError::InvalidIdToken(match kid {
                Some(_) => "signed with a key the identity provider does not publish".into(),
                None => "no `kid` and the JWKS has more than one key".into(),
            })
        })
    }

    /// Fetches the JWKS unless it was fetched within `min_refetch`.
    pub async fn refetch(&self, http: &dyn HttpClient, jwks_uri: &str) -> Result<(), AuthError> {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.min_refetch) {
            return Ok(());
        }
        // Counted before the outcome is known, so a failing IdP is throttled too.
        *last = Some(Instant::now());
        let resp = call(http, OutboundRequest::get(jwks_uri), JWKS_ENDPOINT).await?;
        if resp.status != 200 {
            return Err(AuthError::IdpUnavailable(format!(
                "JWKS answered {}",
                resp.status
            )));
        }
        let set: JwkSet = serde_json::from_slice(&resp.body)
            .map_err(|e| AuthError::IdpUnavailable(format!("JWKS is not a key set: {e}")))?;
        let mut usable = Vec::new();
        for jwk in &set.keys {
            if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let alg = jwk.common.key_algorithm.and_then(signing_alg);
            usable.push((jwk.common.key_id.clone(), Arc::new(VerifyKey { key, alg })));
        }
        // Keys that left the set stop verifying now, not at the TTL.
        self.keys.invalidate_all();
        if usable.len() == 1 {
            self.keys.insert(ONLY_KEY.into(), usable[0].1.clone());
        }
        for (kid, key) in usable {
            if let Some(kid) = kid {
                self.keys.insert(kid, key);
            }
        }
        Ok(())
    }
}

fn signing_alg(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
