//! Which URLs the gateway will send a browser to after login or logout: paths on the
//! same origin, or absolute URLs on the gateway's own or allow-listed hosts. Anything
//! a browser could read as another host (`//evil`, `/\evil`, `/%09/evil`,
//! `https:evil`, user info, control characters) is refused.

use url::Url;

/// The longest return URL kept; a longer one would bloat the pending cookie.
pub(crate) const MAX_RETURN_URL: usize = 2048;

/// `Some(url to redirect to)` if `raw` is a safe target for `origin`
/// (`scheme://host[:port]`) and the allow-listed hosts, else `None`.
pub fn safe_return_url(raw: &str, origin: &str, allowed_hosts: &[String]) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_RETURN_URL {
        return None;
    }
    // Control characters, spaces and backslashes: browsers strip or reinterpret them
    // (`/\evil.com` is `//evil.com` to most), so no legitimate target has them.
    if raw.bytes().any(|b| b < 0x21 || b == 0x7f || b == b'\\') {
        return None;
    }
    // The same check (spaces aside: `%20` is ordinary) on the percent-decoded form, for `/%09/evil.com`, `/%5Cevil`,
    // `/%2F%2Fevil.com` and friends that an upstream or a browser may decode.
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    if decoded
        .iter()
        .any(|b| *b < 0x20 || *b == 0x7f || *b == b'\\')
        || decoded.starts_with(b"//")
    {
        return None;
    }
    if raw.starts_with('/') {
        if raw.starts_with("//") {
            return None;
        }
        return Some(raw.to_string());
    }
    let url = Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let target = url.origin().ascii_serialization();
    let host = url.host_str()?;
    let same_origin = target == origin;
    let allowed = allowed_hosts.iter().any(|h| h == host);
    // `https:evil.com` parses as `https://evil.com/`; it passes only if that host is
    // allowed, and what is returned is the normalised URL that was checked.
    (same_origin || allowed).then(|| url.to_string())
}

/// Makes a safe target absolute, for IdP parameters such as `redirect_url`.
pub fn absolute(target: &str, origin: &str) -> String {
    if target.starts_with('/') {
        format!("{origin}{target}")
    } else {
        target.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "https://app.example.com";

    fn ok(raw: &str) -> Option<String> {
        safe_return_url(raw, O, &["portal.example.com".to_string()])
    }

    #[test]
    fn hostile_targets_are_refused() {
        for raw in [
            "//evil.com",
            "//evil.com/path",
            "/\\evil.com",
            "\\\\evil.com",
            "/%09/evil.com",
            "/%2F%2Fevil.com",
            "/%2f/evil.com",
            "/%5Cevil.com",
            "https:evil.com",
            "https://evil.com",
            "https://app.example.com@evil.com",
            "https://evil.com#@app.example.com",
            "http://app.example.com",
            "javascript:alert(1)",
            "data:text/html,x",
            "/ok\r\nSet-Cookie: x=1",
            "/a\tb",
            " /x",
            "evil.com",
            "",
            "https://app.example.com.evil.com/",
            "https://user:pw@app.example.com/",
        ] {
            assert_eq!(ok(raw), None, "{raw:?} must be refused");
        }
        assert_eq!(ok(&format!("/{}", "a".repeat(MAX_RETURN_URL))), None);
    }

    #[test]
    fn friendly_targets_pass() {
        assert_eq!(ok("/"), Some("/".into()));
        assert_eq!(
            ok("/app/page?x=1&y=%20#frag"),
            Some("/app/page?x=1&y=%20#frag".into())
        );
        assert_eq!(
            ok("https://app.example.com/x"),
            Some("https://app.example.com/x".into())
        );
        assert_eq!(
            ok("https://portal.example.com/"),
            Some("https://portal.example.com/".into())
        );
        assert_eq!(
            ok("HTTPS://APP.example.com/x"),
            Some("https://app.example.com/x".into())
        );
    }

    #[test]
    fn absolute_joins_paths_only() {
        assert_eq!(absolute("/x", O), "https://app.example.com/x");
        assert_eq!(
            absolute("https://p.example.com/", O),
            "https://p.example.com/"
        );
    }
}
