//! Small shared helpers: randomness, base64url, time, HTML/XML escaping and URL building.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The address to put in URLs: an unspecified bind address (`0.0.0.0`, `::`) is
/// advertised as the loopback address of the same family.
pub(crate) fn advertised(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, bound.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, bound.port()))
        }
        _ => bound,
    }
}

/// Base64url without padding, as JOSE and PKCE use it.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `n` cryptographically random bytes, base64url-encoded (an opaque token).
pub(crate) fn random_token(n: usize) -> String {
    b64url(&random_bytes(n))
}

/// `n` random letters and digits: the alphabet of OneAccess's service tickets
/// (`ST-eYlKs8FrLCltwRwfm8AiwCxmQ8gALNSK` in its documentation) and the one the
/// CAS specification recommends; clients such as mod_auth_cas refuse a ticket
/// with `_` in it.
pub(crate) fn random_alnum(n: usize) -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        // Bytes of 248 and above are dropped so that every character is as likely
        // (248 = 4 x 62).
        for b in random_bytes(n) {
            if b < 248 && out.len() < n {
                out.push(char::from(ALPHABET[usize::from(b) % 62]));
            }
        }
    }
    out
}

/// `n` cryptographically random bytes.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // The system RNG failing is not recoverable; fall back to a time-derived value
    // only so that a handler never panics (this never happens in practice).
    if aws_lc_rs::rand::fill(&mut buf).is_err() {
        let t = now_nanos().to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = t[i % t.len()] ^ (i as u8);
        }
    }
    buf
}

/// `n` random lowercase hexadecimal digits.
pub(crate) fn random_hex(n: usize) -> String {
    let mut hex: String = random_bytes(n.div_ceil(2))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex.truncate(n);
    hex
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// `2024-04-30T06:43:30.588Z` style timestamp (UTC, millisecond precision).
pub(crate) fn iso8601_millis(unix_millis: u128) -> String {
    let secs = (unix_millis / 1000) as i64;
    let millis = (unix_millis % 1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// `2024-04-30T06:43:30Z` style timestamp (RFC 3339, UTC, whole seconds).
pub(crate) fn rfc3339(unix_secs: u64) -> String {
    let millis = iso8601_millis(u128::from(unix_secs) * 1000);
    match millis.strip_suffix(".000Z") {
        Some(whole) => format!("{whole}Z"),
        None => millis,
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> u128 {
    now_nanos() / 1_000_000
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Escapes text for HTML element content and double-quoted attributes (also fine for XML).
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// application/x-www-form-urlencoded encoding of one component.
pub(crate) fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Parses an application/x-www-form-urlencoded string (a query or a form body).
/// Returns `Err(name)` when a parameter occurs more than once (RFC 6749 section 3.1).
pub(crate) fn parse_form(
    input: &[u8],
) -> Result<std::collections::HashMap<String, String>, String> {
    let mut map = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(input) {
        if map.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(k.into_owned());
        }
    }
    Ok(map)
}

/// Percent-decodes `s` the way application/x-www-form-urlencoded does (`+` is a space).
/// Used for the two halves of an HTTP Basic client credential (RFC 6749 section 2.3.1).
pub(crate) fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends query parameters to an absolute URL, keeping its existing query
/// (joined with `&`). Returns `None` when `base` is not an absolute URL.
pub(crate) fn append_query(base: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut url = url::Url::parse(base).ok()?;
    if !params.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Some(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601_millis(1_581_403_410_588),
            "2020-02-11T06:43:30.588Z"
        );
        assert_eq!(rfc3339(1_581_403_410), "2020-02-11T06:43:30Z");
    }

    #[test]
    fn alphanumeric_tokens() {
        for n in [0, 1, 40, 300] {
            let t = random_alnum(n);
            assert_eq!(t.len(), n);
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()), "{t}");
        }
        assert_ne!(random_alnum(40), random_alnum(40));
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a%20b+c%3A%"), "a b c:%");
        assert_eq!(form_decode("%4"), "%4");
        assert_eq!(form_decode("x%zz"), "x%zz");
    }

    #[test]
    fn appending() {
        assert_eq!(
            append_query(
                "https://a.example/cb?x=1",
                &[("code", "c"), ("state", "a b&")]
            )
            .unwrap(),
            "https://a.example/cb?x=1&code=c&state=a+b%26"
        );
        assert_eq!(
            append_query("https://a.example/cb", &[("ticket", "ST-1")]).unwrap(),
            "https://a.example/cb?ticket=ST-1"
        );
        assert!(append_query("/relative", &[]).is_none());
    }
}
