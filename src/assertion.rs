//! The signed identity assertion: a short-lived ES256 JWT the gateway adds to a
//! route's upstream requests, so the app can prove the identity came from the
//! gateway (as Pomerium's `X-Pomerium-Jwt-Assertion`). Its public key is published
//! as a JWKS on the gateway's own path.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::identity::{list_items, Identity, LIST_SEP};

/// The upstream header that carries the assertion; stripped from every client
/// request, on every route.
pub(crate) const HEADER: &str = "x-gateway-assertion";

/// How long an assertion is valid: it is made per request, so a minute covers a
/// slow upstream and clock skew without making a leaked one useful for long.
pub(crate) const LIFETIME_SECS: u64 = 60;

pub struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// Base64url of the protected header, the same for every assertion.
    header_b64: String,
    /// The JWKS document, rendered once.
    jwks: String,
}

impl Signer {
    /// From a PKCS#8 P-256 private key (DER), or a fresh key for this process when
    /// none is configured.
    pub fn new(pkcs8: Option<&[u8]>) -> Result<Signer, String> {
        let key = match pkcs8 {
            Some(der) => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map_err(|_| "the assertion key is not a PKCS#8 P-256 (ES256) key".to_string())?,
            None => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|_| "cannot generate an assertion key".to_string())?,
        };
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = key.public_key().as_ref();
        if point.len() != 65 {
            return Err("unexpected P-256 public key encoding".into());
        }
        let (x, y) = (&point[1..33], &point[33..65]);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, point);
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }]});
        Ok(Signer {
            key,
            rng: SystemRandom::new(),
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            jwks: jwks.to_string(),
        })
    }

    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The assertion for `identity` on a route reached at `audience`: `iss` is the
    /// gateway, `aud` the route's origin, and the kept claims (lists as arrays).
    pub fn assert(
        &self,
        issuer: &str,
        audience: &str,
        identity: &Identity,
        now: u64,
    ) -> Option<String> {
        let mut claims = Map::new();
        for (name, value) in &identity.claims {
            let v = if value.contains(LIST_SEP) {
                Value::from(list_items(value).collect::<Vec<_>>())
            } else {
                Value::from(value.as_str())
            };
            claims.insert(name.clone(), v);
        }
        claims.insert("iss".into(), issuer.into());
        claims.insert("aud".into(), audience.into());
        claims.insert("sub".into(), identity.sub.as_str().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + LIFETIME_SECS).into());
        self.sign(&Value::Object(claims))
    }

    fn sign(&self, claims: &Value) -> Option<String> {
        let mut jwt = String::with_capacity(512);
        jwt.push_str(&self.header_b64);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut jwt);
        // FIXED signing gives r || s, the JWS form of an ES256 signature.
        let sig = self.key.sign(&self.rng, jwt.as_bytes()).ok()?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut jwt);
        Some(jwt)
    }
}

/// The DER of the first PEM `PRIVATE KEY` block (PKCS#8) in `text`; other blocks,
/// such as the `EC PARAMETERS` some tools write first, are passed over.
pub(crate) fn pem_to_der(text: &str) -> Option<Vec<u8>> {
    pem::parse_many(text)
        .ok()?
        .into_iter()
        .find(|block| block.tag() == "PRIVATE KEY")
        .map(pem::Pem::into_contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};

    #[test]
    fn an_assertion_verifies_with_the_published_key_and_no_other() {
        let s = Signer::new(None).expect("signer");
        let id = Identity {
            sub: "u1".into(),
            claims: vec![
                ("email".into(), "a@example.com".into()),
                ("groups".into(), format!("staff{LIST_SEP}dev")),
            ],
        };
        let now = crate::session::now_secs();
        let jwt = s
            .assert("https://gw.example", "https://app.example", &id, now)
            .expect("jwt");
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(s.jwks()).expect("jwks");
        let key = DecodingKey::from_jwk(&jwks.keys[0]).expect("key");
        let mut v = Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_issuer(&["https://gw.example"]);
        v.set_audience(&["https://app.example"]);
        let claims: Value = decode(&jwt, &key, &v).expect("verifies").claims;
        assert_eq!(claims["sub"], "u1");
        assert_eq!(claims["groups"], json!(["staff", "dev"]));
        assert_eq!(claims["exp"], now + LIFETIME_SECS);

        let other = Signer::new(None).expect("signer");
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(other.jwks()).expect("jwks");
        let wrong = DecodingKey::from_jwk(&jwks.keys[0]).expect("key");
        assert!(decode::<Value>(&jwt, &wrong, &v).is_err());
    }

    #[test]
    fn a_configured_key_is_used_and_a_bad_one_refused() {
        let rng = SystemRandom::new();
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("pkcs8");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(doc.as_ref())
        );
        let der = pem_to_der(&pem).expect("der");
        let a = Signer::new(Some(&der)).expect("signer");
        let b = Signer::new(Some(&der)).expect("signer");
        assert_eq!(
            a.jwks(),
            b.jwks(),
            "one key, one JWKS: gateways can share it"
        );
        assert!(Signer::new(Some(b"not a key")).is_err());

        // As files hold it: lines of 64, CRLF, another block first.
        let b64 = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        let file = format!(
            "-----BEGIN EC PARAMETERS-----\r\nBggqhkjOPQMBBw==\r\n-----END EC PARAMETERS-----\r\n-----BEGIN PRIVATE KEY-----\r\n{}\r\n-----END PRIVATE KEY-----\r\n",
            lines.join("\r\n")
        );
        assert_eq!(pem_to_der(&file), Some(der));
        assert_eq!(pem_to_der("no PEM here"), None);
        let sec1 = pem.replace("PRIVATE KEY", "EC PRIVATE KEY");
        assert_eq!(pem_to_der(&sec1), None, "only PKCS#8 is taken");
    }
}
