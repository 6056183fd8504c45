//! RSA-2048 signing keys (aws-lc-rs), their JWK form, and JWS compact serialization helpers.

use std::fmt;
use std::io;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _};
use serde_json::{json, Map, Value};

use crate::util::{b64url, random_token};

/// One RSA key pair with its key id, as published in the JWKS.
pub struct SigningKey {
    kid: String,
    pair: KeyPair,
    jwk: Value,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key with a new random `kid` (takes tens of milliseconds).
    pub fn generate() -> io::Result<SigningKey> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| io::Error::other("RSA key generation failed"))?;
        let kid = format!("oa-{}", random_token(12));
        let public = pair.public_key();
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": b64url(public.modulus().big_endian_without_leading_zero()),
            "e": b64url(public.exponent().big_endian_without_leading_zero()),
        });
        Ok(SigningKey { kid, pair, jwk })
    }

    /// The key id (`kid`) this key is published under.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK object (`kty, use, alg, kid, n, e`).
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `msg`.
    pub fn sign_rs256(&self, msg: &[u8]) -> io::Result<Vec<u8>> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                msg,
                &mut sig,
            )
            .map_err(|_| io::Error::other("RSA signing failed"))?;
        Ok(sig)
    }
}

/// HMAC-SHA256 of `msg` under `secret` (for the HS256 key-confusion test mode).
pub fn hs256(secret: &[u8], msg: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::sign(&key, msg).as_ref().to_vec()
}

/// Serializes a JOSE header with `kid` first, then `alg`, `typ`, then any other members,
/// so that ID tokens start with `eyJraWQiOi` like OneAccess's do.
pub fn header_json(header: &Map<String, Value>) -> String {
    const FIRST: [&str; 3] = ["kid", "alg", "typ"];
    let mut parts = Vec::with_capacity(header.len());
    let ordered = FIRST
        .iter()
        .filter_map(|k| header.get_key_value(*k))
        .chain(header.iter().filter(|(k, _)| !FIRST.contains(&k.as_str())));
    for (k, v) in ordered {
        parts.push(format!("{}:{}", Value::String(k.clone()), v));
    }
    format!("{{{}}}", parts.join(","))
}

/// `BASE64URL(header) . BASE64URL(claims)`, the JWS signing input.
pub fn signing_input(header: &Map<String, Value>, claims: &Map<String, Value>) -> String {
    format!(
        "{}.{}",
        b64url(header_json(header).as_bytes()),
        b64url(Value::Object(claims.clone()).to_string().as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_starts_with_kid() {
        let mut h = Map::new();
        h.insert("typ".into(), "JWT".into());
        h.insert("x".into(), 1.into());
        h.insert("alg".into(), "RS256".into());
        h.insert("kid".into(), "k1".into());
        assert_eq!(
            header_json(&h),
            r#"{"kid":"k1","alg":"RS256","typ":"JWT","x":1}"#
        );
        assert!(b64url(header_json(&h).as_bytes()).starts_with("eyJraWQiOi"));
    }

    #[test]
    fn sign_and_verify() {
        let k = SigningKey::generate().unwrap();
        let sig = k.sign_rs256(b"hello").unwrap();
        let pk = k.pair.public_key();
        let comps = signature::RsaPublicKeyComponents {
            n: pk.modulus().big_endian_without_leading_zero(),
            e: pk.exponent().big_endian_without_leading_zero(),
        };
        comps
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, b"hello", &sig)
            .unwrap();
        assert_eq!(k.jwk()["kid"], k.kid());
    }
}
