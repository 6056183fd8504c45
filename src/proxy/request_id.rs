//! The request id: made here for each request, or kept from a trusted proxy that
//! already set one, then sent upstream and back to the client as `X-Request-Id`
//! and written in every log line about the request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::HeaderValue;

pub(crate) const HEADER: &str = "x-request-id";

/// The longest id taken from a proxy; longer ones are replaced.
const MAX_LEN: usize = 128;

/// The id of a request: the proxy's when `trusted` and well-formed, else a new one.
/// `trusted` is asked only when an id came, so most requests skip the CIDR walk.
pub(crate) fn for_request(
    given: Option<&HeaderValue>,
    trusted: impl FnOnce() -> bool,
) -> HeaderValue {
    match given {
        Some(v) if is_well_formed(v.as_bytes()) && trusted() => v.clone(),
        _ => fresh(),
    }
}

/// Letters, digits and `-_.:/+=` only: an id goes into logs and headers, so it
/// can carry no spaces, quotes or control characters.
fn is_well_formed(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_LEN
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

/// 32 hex digits: a random per-process half, so ids of gateways behind one load
/// balancer do not collide, and a counter, so making one costs an atomic add.
fn fresh() -> HeaderValue {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| {
        let mut b = [0u8; 8];
        match crate::secret::random_bytes(&mut b) {
            Ok(()) => u64::from_le_bytes(b),
            // Not a secret: without randomness, the process id and start time
            // still keep gateways' ids apart.
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                (u64::from(std::process::id()) << 32) | u64::from(nanos)
            }
        }
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_bytes(&hex_pair(process, n)).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// `format!("{a:016x}{b:016x}")` without the formatting machinery, which cost
/// more than the rest of making the id (~1,400 instructions per request).
fn hex_pair(a: u64, b: u64) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    let bytes = a.to_be_bytes().into_iter().chain(b.to_be_bytes());
    for (pair, byte) in text.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_differ_and_are_hex() {
        let (a, b) = (fresh(), fresh());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
    }

    #[test]
    fn ids_are_the_two_numbers_in_hex() {
        for (a, b) in [
            (0, 0),
            (1, 0xff),
            (u64::MAX, 0x0123_4567_89ab_cdef),
            (0xdead_beef, 42),
        ] {
            assert_eq!(
                hex_pair(a, b),
                format!("{a:016x}{b:016x}").as_bytes(),
                "{a} {b}"
            );
        }
    }

    #[test]
    fn a_trusted_proxys_id_is_kept_and_anyone_elses_replaced() {
        let given = HeaderValue::from_static("edge-7f3a:42");
        assert_eq!(for_request(Some(&given), || true), given);
        assert_ne!(for_request(Some(&given), || false), given);
        let hostile = HeaderValue::from_static("a\"b c");
        assert_ne!(for_request(Some(&hostile), || true), hostile);
        let long = HeaderValue::from_str(&"a".repeat(MAX_LEN + 1)).unwrap();
        assert_eq!(for_request(Some(&long), || true).len(), 32);
        assert_eq!(for_request(None, || true).len(), 32);
    }
}
