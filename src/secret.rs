//! `Secret<T>`: a value that must never reach a log, with a redacted `Debug` and a
//! constant-time comparison; and the random tokens secrets are made of.

use std::fmt;

use subtle::ConstantTimeEq;

/// Holds a token, key, nonce or client secret. `Debug` prints `[redacted]`, so a
/// `{:?}` of any struct that carries one cannot leak it.
/// Two secrets compare in constant time (`ct_eq`), never byte by byte.
#[derive(Clone, Default)]
pub struct Secret<T>(T);

impl<T: AsRef<[u8]>> PartialEq for Secret<T> {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.0.as_ref(), other.0.as_ref())
    }
}

impl<T: AsRef<[u8]>> Eq for Secret<T> {}

/// The system's random generator failed. Nothing is then made of zeros instead:
/// the caller fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random generator failed")]
pub(crate) struct RandomFailed;

/// Fills `buf` from the system's random generator.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), RandomFailed> {
    aws_lc_rs::rand::fill(buf).map_err(|_| RandomFailed)
}

/// 32 random bytes, base64url: 256 bits in 43 characters. Session ids, states,
/// PKCE verifiers, nonces and CSRF tokens are all made by it.
pub(crate) fn random_token() -> Result<String, RandomFailed> {
    use base64::Engine;
    let mut b = [0u8; 32];
    random_bytes(&mut b)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The only way to read the value: grep for `expose` to audit every use.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

// Transparent serde, so a sealed record can hold secrets without exposing them in
// its `Debug`. Serializing is how a secret is deliberately written into a sealed
// cookie or a form body; it never goes to a log.
impl<T: serde::Serialize> serde::Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

/// Compares two byte strings in time that depends only on their lengths, so a
/// state or nonce check does not leak how many leading bytes matched.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }

    #[test]
    fn secrets_compare_by_content_and_random_tokens_differ() {
        let s = |v: &str| Secret::new(v.to_string());
        assert_eq!(s("abc"), s("abc"));
        assert_ne!(s("abc"), s("abd"));
        assert_ne!(s("abc"), s("ab"));
        assert_eq!(Secret::new([1u8; 32]), Secret::new([1u8; 32]));
        let (a, b) = (
            random_token().expect("random"),
            random_token().expect("random"),
        );
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
