//! Cookie text: reading pairs out of `Cookie` headers and building `Set-Cookie`
//! values with the gateway's attribute rules (HttpOnly, SameSite=Lax, Path=/,
//! Secure under TLS, host-only so the `__Host-` prefix holds).

use cookie::SameSite;

/// The first value of the cookie `name` in a request.
pub(crate) fn request_cookie<'p>(parts: &'p http::request::Parts, name: &str) -> Option<&'p str> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|h| pairs(h.as_bytes()))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The `name=value` pairs of one `Cookie` header value, in order. Malformed pieces
/// are skipped, never an error.
pub fn pairs(header: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    pieces(header).filter_map(|piece| {
        let piece = std::str::from_utf8(piece).ok()?.trim();
        let (name, value) = piece.split_once('=')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        Some((name, value.trim().trim_matches('"')))
    })
}

/// Builds a `Set-Cookie` value. `max_age` of `None` makes a browser-session cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> String {
    build(name, value, max_age, secure, SameSite::Lax)
}

/// As `set_cookie`, with `SameSite=Strict`: for the logout form's CSRF token, which
/// must never ride along on a request another site starts.
pub(crate) fn set_strict_cookie(
    name: &str,
    value: &str,
    max_age: Option<u64>,
    secure: bool,
) -> String {
    build(name, value, max_age, secure, SameSite::Strict)
}

/// Every cookie of the gateway: the whole site (`Path=/`), never readable by
/// scripts, `Secure` where TLS is used.
fn build(
    name: &str,
    value: &str,
    max_age: Option<u64>,
    secure: bool,
    same_site: SameSite,
) -> String {
    let mut c = cookie::Cookie::new(name, value);
    c.set_path("/");
    c.set_http_only(true);
    c.set_same_site(same_site);
    if secure {
        c.set_secure(true);
    }
    if let Some(age) = max_age {
        let age = i64::try_from(age).unwrap_or(i64::MAX);
        c.set_max_age(cookie::time::Duration::seconds(age));
    }
    c.to_string()
}

/// A `Set-Cookie` value that makes the browser drop the cookie at once.
pub(crate) fn clear_cookie(name: &str, secure: bool) -> String {
    set_cookie(name, "", Some(0), secure)
}

/// Largest cookie value the gateway writes in one piece: with the name and the
/// attributes, a whole `Set-Cookie` line stays under browsers' 4096 bytes.
pub(crate) const MAX_VALUE: usize = 3800;
/// Most chunks a session may span (30 KiB); a count above it is refused, not
/// allocated (mod_auth_openidc CVE-2024-24814).
pub(crate) const MAX_CHUNKS: usize = 8;

/// The name of chunk `i` of the cookie `base`.
pub(crate) fn chunk_name(base: &str, i: usize) -> String {
    format!("{base}_c{i}")
}

/// The chunk numbers of the cookie `base` that a request carries, each once, in
/// order. One pass over its cookies (looking each chunk name up instead took
/// `MAX_CHUNKS` passes, a quarter of a login's cookie work).
pub(crate) fn chunks_sent(parts: &http::request::Parts, base: &str) -> Vec<usize> {
    let mut seen = [false; MAX_CHUNKS];
    for h in parts.headers.get_all(http::header::COOKIE) {
        for (name, _) in pairs(h.as_bytes()) {
            let index = name
                .strip_prefix(base)
                .and_then(|n| n.strip_prefix("_c"))
                .filter(|n| n.len() == 1)
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(slot) = index.and_then(|i| seen.get_mut(i)) {
                *slot = true;
            }
        }
    }
    (0..MAX_CHUNKS).filter(|&i| seen[i]).collect()
}

/// Splits a value for the cookie `base`: one `(name, value)` when it fits, else a
/// main cookie `~N` and `N` chunks. `None` when even `MAX_CHUNKS` cannot hold it.
pub fn split(base: &str, value: &str) -> Option<Vec<(String, String)>> {
    if value.len() <= MAX_VALUE {
        return Some(vec![(base.to_string(), value.to_string())]);
    }
    let n = value.len().div_ceil(MAX_VALUE);
    if n > MAX_CHUNKS || !value.is_ascii() {
        return None;
    }
    let mut out = vec![(base.to_string(), format!("~{n}"))];
    for (i, piece) in value.as_bytes().chunks(MAX_VALUE).enumerate() {
        // ASCII (checked above), so every byte boundary is a char boundary.
        out.push((
            chunk_name(base, i),
            String::from_utf8_lossy(piece).into_owned(),
        ));
    }
    Some(out)
}

/// The whole value of the cookie `base` from a request's cookies, joining chunks
/// when the main cookie says `~N`. A count that is not a number from 2 to
/// `MAX_CHUNKS`, or a missing chunk, is `None`: no session, never a panic.
pub fn assemble<'a>(
    base: &str,
    main: &'a str,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Option<std::borrow::Cow<'a, str>> {
    let Some(count) = main.strip_prefix('~') else {
        return Some(std::borrow::Cow::Borrowed(main));
    };
    if count.is_empty() || count.len() > 2 || !count.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: usize = count.parse().ok()?;
    if !(2..=MAX_CHUNKS).contains(&n) {
        return None;
    }
    let mut joined = String::with_capacity(n * MAX_VALUE);
    for i in 0..n {
        joined.push_str(lookup(&chunk_name(base, i))?);
    }
    Some(std::borrow::Cow::Owned(joined))
}

/// Rebuilds one `Cookie` header value without the pairs `drop` selects, so the app
/// behind the gateway never sees the gateway's own cookies. `None`: nothing left.
/// Returns the input unchanged (no allocation) when nothing is dropped.
pub fn without<'a>(
    header: &'a [u8],
    drop: impl Fn(&str) -> bool,
) -> Option<std::borrow::Cow<'a, [u8]>> {
    if !pairs(header).any(|(n, _)| drop(n)) {
        return Some(std::borrow::Cow::Borrowed(header));
    }
    let mut out = Vec::with_capacity(header.len());
    for piece in pieces(header) {
        let trimmed = trim_ascii(piece);
        if trimmed.is_empty() {
            continue;
        }
        let name = trimmed
            .split(|b| *b == b'=')
            .next()
            .map(trim_ascii)
            .unwrap_or_default();
        if std::str::from_utf8(name).map(&drop).unwrap_or(false) {
            continue;
        }
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(trimmed);
    }
    if out.is_empty() {
        None
    } else {
        Some(std::borrow::Cow::Owned(out))
    }
}

/// What becomes of a request's `Cookie` headers on their way upstream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CookieRewrite {
    /// None of them names a cookie to drop, and there is one header: as it is.
    Unchanged,
    /// Nothing is left: no `Cookie` header.
    Remove,
    /// One header with what is left, merged as HTTP/1.1 upstreams expect.
    Replace(http::HeaderValue),
}

/// The request's `Cookie` headers without the cookies `drop` names (the
/// gateway's own), each kept pair byte for byte.
pub(crate) fn request_without(
    headers: &http::HeaderMap,
    drop: impl Fn(&str) -> bool,
) -> CookieRewrite {
    let values: Vec<&http::HeaderValue> = headers.get_all(http::header::COOKIE).iter().collect();
    if values.is_empty() {
        return CookieRewrite::Unchanged;
    }
    let mut merged: Vec<u8> = Vec::new();
    let mut changed = values.len() > 1;
    for v in values {
        match without(v.as_bytes(), &drop) {
            Some(kept) => {
                changed |= matches!(kept, std::borrow::Cow::Owned(_));
                if !merged.is_empty() {
                    merged.extend_from_slice(b"; ");
                }
                merged.extend_from_slice(&kept);
            }
            None => changed = true,
        }
    }
    match (changed, merged.is_empty()) {
        (false, _) => CookieRewrite::Unchanged,
        (true, true) => CookieRewrite::Remove,
        // Kept pairs came from header values: the merge is one as well.
        (true, false) => http::HeaderValue::from_bytes(&merged)
            .map_or(CookieRewrite::Remove, CookieRewrite::Replace),
    }
}

/// An upstream answer's `Set-Cookie` values without those that set a cookie
/// `ours` names (an app must not fixate or clear the gateway's session); `None`
/// when there is none such, which is the usual case and costs no allocation.
pub(crate) fn set_cookies_without(
    headers: &http::HeaderMap,
    ours: impl Fn(&str) -> bool,
) -> Option<Vec<http::HeaderValue>> {
    let all = headers.get_all(http::header::SET_COOKIE);
    let hostile = |v: &http::HeaderValue| set_cookie_name(v.as_bytes()).is_some_and(&ours);
    if !all.iter().any(hostile) {
        return None;
    }
    Some(all.iter().filter(|v| !hostile(v)).cloned().collect())
}

/// The cookie name a `Set-Cookie` value sets.
fn set_cookie_name(v: &[u8]) -> Option<&str> {
    let end = v
        .iter()
        .position(|b| *b == b'=' || *b == b';')
        .unwrap_or(v.len());
    std::str::from_utf8(&v[..end]).ok().map(str::trim)
}

/// The `;`-separated pieces of a `Cookie` header value, as `split` would give
/// them, found with `memchr`: a session cookie makes the header hundreds of
/// bytes long, and `split`'s closure, called on each byte, cost ~1,000
/// instructions per pass over it on every request (callgrind).
fn pieces(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b';', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_what_split_gives() {
        for h in [&b""[..], b";", b"a", b"a;", b";a", b"a=1; b=2;;c", b";;;"] {
            let want: Vec<&[u8]> = h.split(|b| *b == b';').collect();
            assert_eq!(pieces(h).collect::<Vec<_>>(), want, "{h:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn pieces_are_what_split_gives_for_any_bytes(h in proptest::collection::vec(
            proptest::prop_oneof![proptest::prelude::Just(b';'), proptest::prelude::any::<u8>()],
            0..64,
        )) {
            let want: Vec<&[u8]> = h.split(|b| *b == b';').collect();
            proptest::prop_assert_eq!(pieces(&h).collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn chunks_sent_are_the_chunk_names_present_once_each() {
        let mut req = http::Request::new(());
        for h in [
            "oag_session_c2=x; a=b; oag_session_c0=y; oag_session_c0=z",
            "oag_session_c8=q; oag_session_c01=r; other_c1=s; oag_session_cx=t; oag_session_c7=u",
        ] {
            req.headers_mut()
                .append(http::header::COOKIE, http::HeaderValue::from_static(h));
        }
        let (parts, ()) = req.into_parts();
        assert_eq!(chunks_sent(&parts, "oag_session"), vec![0, 2, 7]);
        // Each of them is what chunk_name names.
        for i in chunks_sent(&parts, "oag_session") {
            assert!(request_cookie(&parts, &chunk_name("oag_session", i)).is_some());
        }
        assert_eq!(chunks_sent(&parts, "other"), vec![1]);
        assert!(chunks_sent(&parts, "oag").is_empty());
    }

    #[test]
    fn pairs_tolerate_junk() {
        let got: Vec<_> = pairs(b"a=1; b = \"2\";;junk; =x; c=").collect();
        assert_eq!(got, vec![("a", "1"), ("b", "2"), ("c", "")]);
        assert_eq!(pairs(&[0xff, b'=', b'1']).count(), 0);
    }

    /// The pair first, then the attributes in any order.
    fn parts_of(set_cookie: &str) -> (&str, Vec<&str>) {
        let mut it = set_cookie.split("; ");
        let pair = it.next().unwrap_or_default();
        let mut attributes: Vec<&str> = it.collect();
        attributes.sort_unstable();
        (pair, attributes)
    }

    #[test]
    fn set_cookie_attributes() {
        assert_eq!(
            parts_of(&set_cookie("s", "v", Some(60), true)),
            (
                "s=v",
                vec!["HttpOnly", "Max-Age=60", "Path=/", "SameSite=Lax", "Secure"]
            )
        );
        assert_eq!(
            parts_of(&set_cookie("s", "v", None, false)),
            ("s=v", vec!["HttpOnly", "Path=/", "SameSite=Lax"])
        );
        assert_eq!(
            parts_of(&clear_cookie("s", false)),
            (
                "s=",
                vec!["HttpOnly", "Max-Age=0", "Path=/", "SameSite=Lax"]
            )
        );
        assert_eq!(
            parts_of(&set_strict_cookie("c", "t", Some(600), true)),
            (
                "c=t",
                vec![
                    "HttpOnly",
                    "Max-Age=600",
                    "Path=/",
                    "SameSite=Strict",
                    "Secure"
                ]
            )
        );
    }

    #[test]
    fn large_values_split_into_chunks_that_fit_a_set_cookie_line() {
        let small = split("s", "abc").expect("fits");
        assert_eq!(small, vec![("s".to_string(), "abc".to_string())]);
        let big = "x".repeat(MAX_VALUE * 2 + 10);
        let parts = split("__Host-oag_session", &big).expect("fits in chunks");
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].1, "~3");
        for (name, value) in &parts {
            let line = set_cookie(name, value, Some(28800), true);
            assert!(line.len() <= 4096, "{} bytes", line.len());
        }
        let lookup = |n: &str| parts.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(
            assemble("__Host-oag_session", &parts[0].1, lookup).as_deref(),
            Some(big.as_str())
        );
        assert!(split("s", &"x".repeat(MAX_VALUE * MAX_CHUNKS + 1)).is_none());
    }

    #[test]
    fn hostile_chunk_counts_and_missing_chunks_are_no_session() {
        let have = |n: &str| match n {
            "s_c0" => Some("a"),
            "s_c1" => Some("b"),
            _ => None,
        };
        assert_eq!(assemble("s", "~2", have).as_deref(), Some("ab"));
        for count in [
            "~",
            "~0",
            "~1",
            "~3",
            "~-1",
            "~9",
            "~99",
            "~999999999999",
            "~2x",
            "~ 2",
            "~+2",
        ] {
            assert!(assemble("s", count, have).is_none(), "{count}");
        }
        assert_eq!(assemble("s", "plain", have).as_deref(), Some("plain"));
    }

    #[test]
    fn without_drops_only_selected() {
        let keep_all = without(b"a=1; b=2", |n| n == "z").expect("some");
        assert!(matches!(keep_all, std::borrow::Cow::Borrowed(_)));
        let got = without(b"a=1; gw=secret;b=2 ; gw_login_x=y", |n| {
            n.starts_with("gw")
        })
        .expect("some");
        assert_eq!(&*got, b"a=1; b=2");
        assert!(without(b"gw=1", |n| n == "gw").is_none());
    }

    fn headers(name: http::HeaderName, values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(name.clone(), http::HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn request_cookies_lose_the_gateways_and_are_merged() {
        let ours = |n: &str| n.starts_with("oag_");
        let c = http::header::COOKIE;
        assert_eq!(
            request_without(&http::HeaderMap::new(), ours),
            CookieRewrite::Unchanged
        );
        assert_eq!(
            request_without(&headers(c.clone(), &["a=1; b=2"]), ours),
            CookieRewrite::Unchanged
        );
        assert_eq!(
            request_without(&headers(c.clone(), &["oag_session=x"]), ours),
            CookieRewrite::Remove
        );
        assert_eq!(
            request_without(
                &headers(c.clone(), &["a=1; oag_session=x; b=\"q r\"", "c=3"]),
                ours
            ),
            CookieRewrite::Replace(http::HeaderValue::from_static("a=1; b=\"q r\"; c=3"))
        );
        // Two headers, none of ours: merged into one all the same.
        assert_eq!(
            request_without(&headers(c, &["a=1", "b=2"]), ours),
            CookieRewrite::Replace(http::HeaderValue::from_static("a=1; b=2"))
        );
    }

    #[test]
    fn an_app_cannot_set_the_gateways_cookies() {
        let ours = |n: &str| n == "oag_session";
        let sc = http::header::SET_COOKIE;
        assert_eq!(
            set_cookies_without(&headers(sc.clone(), &["app=1; Path=/"]), ours),
            None
        );
        let kept = set_cookies_without(
            &headers(
                sc,
                &["app=1", " oag_session=evil; Path=/", "oag_session", "x=2"],
            ),
            ours,
        )
        .expect("some dropped");
        assert_eq!(kept, ["app=1", "x=2"]);
    }
}
