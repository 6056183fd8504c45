//! The host a request names (its `Host` header, or the authority of an
//! absolute-form target or of a forwarded URL): checked to be a host and an
//! optional port and nothing else, and reduced to the name routing matches.

use std::borrow::Cow;

/// Why a host is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRefusal {
    /// An HTTP/1.1 request without `Host` (RFC 9112 3.2).
    Missing,
    /// Not `host[:port]`: a path, user info, spaces, an empty label, a bad port.
    Invalid,
}

impl HostRefusal {
    pub fn code(self) -> &'static str {
        match self {
            HostRefusal::Missing => "missing_host",
            HostRefusal::Invalid => "invalid_host",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            HostRefusal::Missing => "An HTTP/1.1 request needs a Host header.",
            HostRefusal::Invalid => "The Host header is not a host name and port.",
        }
    }
}

/// The host of an authority `host[:port]`, lower case and without a trailing dot
/// (`Example.COM.:8080` is `example.com`), or why it is no authority. A name is
/// letters, digits, `-` and `_` in dot-separated labels; an address is IPv4 or a
/// bracketed IPv6. A port is 1 to 5 digits, at most 65535.
pub(crate) fn canonical_host(authority: &str) -> Result<Cow<'_, str>, HostRefusal> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or(HostRefusal::Invalid)?;
        let inner = &authority[1..end];
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(HostRefusal::Invalid);
        }
        (&authority[..=end], &authority[end + 1..])
    } else {
        match authority.find(':') {
            Some(i) => (&authority[..i], &authority[i..]),
            None => (authority, ""),
        }
    };
    if !port.is_empty() {
        let digits = port.strip_prefix(':').ok_or(HostRefusal::Invalid)?;
        let valid = (1..=5).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.parse::<u32>().is_ok_and(|p| p <= 65535);
        if !valid {
            return Err(HostRefusal::Invalid);
        }
    }
    if host.starts_with('[') {
        return Ok(lower(host));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !labels_ok {
        return Err(HostRefusal::Invalid);
    }
    Ok(lower(name))
}

fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports() {
        for (raw, want) in [
            ("localhost", "localhost"),
            ("localhost:8080", "localhost"),
            ("Example.COM", "example.com"),
            ("example.com.", "example.com"),
            ("example.com.:443", "example.com"),
            ("app_1.internal", "app_1.internal"),
            ("10.0.0.1:80", "10.0.0.1"),
            ("[::1]", "[::1]"),
            ("[::1]:8080", "[::1]"),
            ("[2001:DB8::1]", "[2001:db8::1]"),
        ] {
            assert_eq!(canonical_host(raw).as_deref(), Ok(want), "{raw}");
        }
        assert!(matches!(
            canonical_host("localhost:8080"),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn what_is_not_a_host_and_port() {
        for raw in [
            "",
            ":80",
            "localhost:8080/evil",
            "localhost/evil",
            "user@localhost",
            "local host",
            "localhost:",
            "localhost:0x50",
            "localhost:65536",
            "localhost:123456",
            "localhost:80:80",
            "a..b",
            ".example.com",
            "example.com..",
            "[::1",
            "[::1]x",
            "[not-v6]",
            "exa%6Dple.com",
            "例子.com",
            "localhost\t",
        ] {
            assert_eq!(canonical_host(raw), Err(HostRefusal::Invalid), "{raw:?}");
        }
    }
}
