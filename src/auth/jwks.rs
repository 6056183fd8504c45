//! The identity provider's signing keys: `kid` -> key in a moka cache. An unknown
//! `kid` triggers one refetch of the JWKS, so a rotated key is picked up at once,
//! even a second after start-up or a reload fetched the set. A flood of made-up
//! kids costs the IdP at most one fetch a second, and a kid a refetch did not
//! find is not looked for again for `jwks_min_refetch_seconds`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use moka::sync::Cache;

use super::http::{call, HttpClient, OutboundRequest};
use crate::error::AuthError;
use crate::metrics::JWKS_ENDPOINT;

/// A verification key and the algorithm its JWK is pinned to, if any.
pub(crate) struct VerifyKey {
    pub key: DecodingKey,
    pub alg: Option<Algorithm>,
}

/// Cache entry name for the key of a JWKS that has exactly one key and the token
/// names none.
const ONLY_KEY: &str = "\0only";

/// The least time between two fetches for unknown kids: a flood of them costs
/// the IdP one fetch a second.
const UNKNOWN_KID_FLOOR: Duration = Duration::from_secs(1);

pub(crate) struct JwksCache {
    keys: Cache<String, Arc<VerifyKey>>,
    /// Kids a refetch did not find, not looked for again while they are here.
    missing: Cache<String, ()>,
    /// When an unknown kid last made a fetch (start-up and reload fetches do not
    /// count). The async mutex makes such fetches single-flight: callers that
    /// queued behind one find their kid, or skip the fetch.
    last_unknown: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksCache {
    /// `ttl`: how long keys are kept; `missing_for`: how long a kid the IdP does
    /// not publish is not asked for again.
    pub(crate) fn new(ttl: Duration, missing_for: Duration) -> JwksCache {
        JwksCache {
            keys: Cache::builder().max_capacity(64).time_to_live(ttl).build(),
            missing: Cache::builder()
                .max_capacity(1024)
                .time_to_live(missing_for)
                .build(),
            last_unknown: tokio::sync::Mutex::new(None),
        }
    }

    /// The key for `kid`, fetching the JWKS once if it is not known.
    pub(crate) async fn key(
        &self,
        http: &dyn HttpClient,
        jwks_uri: &str,
        kid: Option<&str>,
    ) -> Result<Arc<VerifyKey>, AuthError> {
        let name = kid.unwrap_or(ONLY_KEY);
        if let Some(k) = self.keys.get(name) {
            return Ok(k);
        }
        if !self.missing.contains_key(name) {
            let mut last = self.last_unknown.lock().await;
            // Another caller may have fetched it while this one queued.
            if let Some(k) = self.keys.get(name) {
                return Ok(k);
            }
            if last.is_none_or(|t| t.elapsed() >= UNKNOWN_KID_FLOOR) {
                // Counted before the outcome is known: a failing IdP is throttled too.
                *last = Some(Instant::now());
                self.refetch(http, jwks_uri).await?;
                if self.keys.get(name).is_none() {
                    self.missing.insert(name.to_string(), ());
                }
            }
        }
        self.keys.get(name).ok_or_else(|| {
            AuthError::InvalidIdToken(match kid {
                Some(_) => "signed with a key the identity provider does not publish".into(),
                None => "no `kid` and the JWKS has more than one key".into(),
            })
        })
    }

    /// Fetches the JWKS (at start-up, a reload, or for an unknown kid).
    pub(crate) async fn refetch(
        &self,
        http: &dyn HttpClient,
        jwks_uri: &str,
    ) -> Result<(), AuthError> {
        let resp = call(http, OutboundRequest::get(JWKS_ENDPOINT, jwks_uri)).await?;
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
        // Keys that left the set stop verifying now, not at the TTL; kids it now
        // has are no longer missing.
        self.keys.invalidate_all();
        self.missing.invalidate_all();
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
