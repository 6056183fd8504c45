//! The canonical path: the one reading of a request path that routing and policy
//! judge, the other readings an app behind the gateway could make of the same
//! bytes, and the paths refused because those readings could disagree.
//!
//! The readings, from the bytes the client sent:
//! - **judged**: percent-escapes decoded once, `;params` removed from every
//!   segment, runs of `/` collapsed. What a servlet container (Tomcat, Jetty,
//!   Spring) resolves, and what routing and policy match.
//! - **literal**: decoded once, `;params` kept: what an app that has no path
//!   parameters (Node, Go, Python, nginx) reads.
//! - **folded**: the judged reading after the mappings a lenient app may apply:
//!   overlong UTF-8 forms of ASCII read as that ASCII, fullwidth and small forms
//!   (`．`, `／`, `；`, `ａ`) read as ASCII (Unicode NFKC), and, when routes are
//!   matched, ASCII case ignored (IIS, Windows file systems).
//!
//! A path is refused when any reading has a dot segment, a backslash or a control
//! byte, or is still percent-encoded after one decoding. The caller
//! (`front_door::admit`) then refuses a path whose readings reach different routes.

use std::borrow::Cow;

/// Why a path is refused (always 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    /// Not an origin-form path: empty, `*`, or not starting with `/`.
    NotAPath,
    /// A `.` or `..` segment in some reading (`%2e`, `..;x`, `．．`).
    DotSegment,
    /// A backslash, raw, encoded (`%5C`) or fullwidth.
    Backslash,
    /// A control byte or a space, raw or encoded (`%00`, `%0a`).
    ControlByte,
    /// Still percent-encoded after one decoding (`%252e`, `%2561`): an app that
    /// decodes twice reads another path.
    DoubleEncoded,
}

impl PathRefusal {
    /// A short, stable name for logs and JSON answers.
    pub fn code(self) -> &'static str {
        match self {
            PathRefusal::NotAPath => "not_a_path",
            PathRefusal::DotSegment => "dot_segment",
            PathRefusal::Backslash => "backslash",
            PathRefusal::ControlByte => "control_byte",
            PathRefusal::DoubleEncoded => "double_encoded",
        }
    }

    /// What the refusal page says.
    pub fn message(self) -> &'static str {
        match self {
            PathRefusal::NotAPath => "The request target is not a path.",
            PathRefusal::DotSegment => "The address contains `.` or `..` segments.",
            PathRefusal::Backslash => "The address contains a backslash.",
            PathRefusal::ControlByte => "The address contains a control character.",
            PathRefusal::DoubleEncoded => "The address is percent-encoded more than once.",
        }
    }
}

/// A request path that passed the rules, with its readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath<'a> {
    judged: Cow<'a, str>,
    /// The literal reading, when it differs from the judged one.
    pub(super) literal: Option<String>,
    /// The folded reading, when it differs from the judged one beyond ASCII case.
    pub(super) folded: Option<String>,
    /// A `;` (raw or `%3B`) was in the path.
    params: bool,
}

impl<'a> RequestPath<'a> {
    /// The path routing and policy judge.
    pub fn judged(&self) -> &str {
        &self.judged
    }

    /// What an app without path parameters reads.
    pub(crate) fn literal(&self) -> &str {
        self.literal.as_deref().unwrap_or(&self.judged)
    }

    /// What a lenient app reads; compare it ignoring ASCII case.
    pub fn folded(&self) -> &str {
        self.folded.as_deref().unwrap_or(&self.judged)
    }

    /// Whether the path had `;` parameters.
    pub(crate) fn has_params(&self) -> bool {
        self.params
    }

    /// Whether some reading differs from the judged one (beyond case).
    pub(crate) fn has_other_readings(&self) -> bool {
        self.literal.is_some() || self.folded.is_some()
    }
}

/// The canonical path of a raw origin-form path (no query), or why it is refused.
/// Borrows when the path is plain ASCII with nothing to decode, which is nearly
/// every request.
pub fn canonical(raw: &[u8]) -> Result<RequestPath<'_>, PathRefusal> {
    if raw.first() != Some(&b'/') {
        return Err(PathRefusal::NotAPath);
    }
    if is_plain(raw) {
        if let Ok(s) = std::str::from_utf8(raw) {
            return Ok(RequestPath {
                judged: Cow::Borrowed(s),
                literal: None,
                folded: None,
                params: false,
            });
        }
    }
    for &b in raw {
        match b {
            b'\\' => return Err(PathRefusal::Backslash),
            b' ' => return Err(PathRefusal::ControlByte),
            _ if is_control(b) => return Err(PathRefusal::ControlByte),
            _ => {}
        }
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(raw).collect();
    check_bytes(&decoded)?;
    let params = decoded.contains(&b';');
    let text = String::from_utf8_lossy(&decoded);
    let judged = collapse(&text, true);
    let literal = collapse(&text, false);
    let lenient = lenient_utf8(&decoded);
    let lenient = fold(&lenient);
    check_bytes(lenient.as_bytes())?;
    let folded = collapse(&lenient, true);
    if has_dot_segment(folded.as_bytes()) {
        return Err(PathRefusal::DotSegment);
    }
    Ok(RequestPath {
        literal: (literal != judged).then_some(literal),
        folded: (folded != judged).then_some(folded),
        judged: Cow::Owned(judged),
        params,
    })
}

/// What `is_canonical_prefix` asks of a route's or a policy's path prefix.
pub(crate) const CANONICAL_PREFIX_RULE: &str =
    "must be a canonical path: starting with `/`, without `?`, `#`, `%`, `;`, `\\`, `//`, dot segments or control characters";

/// Whether a configured path prefix is its own canonical form, so that requests
/// are matched against exactly what the file says.
pub(crate) fn is_canonical_prefix(p: &str) -> bool {
    !p.contains(['?', '#'])
        && canonical(p.as_bytes())
            .is_ok_and(|c| c.judged() == p && !c.has_params() && !c.has_other_readings())
}

/// Bytes a path may hold with no decoding and no other reading: RFC 3986 `pchar`
/// without `%` and `;`. Everything else takes the slow path.
const PLAIN: [bool; 256] = super::byte_set(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/",
);

/// Plain bytes only, no empty segment inside (`//`) and no dot segment: the path
/// is its own canonical form.
fn is_plain(b: &[u8]) -> bool {
    let mut start = 1;
    for i in 1..=b.len() {
        match b.get(i) {
            Some(&c) if c != b'/' => {
                if !PLAIN[c as usize] {
                    return false;
                }
            }
            end => {
                let seg = &b[start..i];
                if (seg.is_empty() && end.is_some()) || seg == b"." || seg == b".." {
                    return false;
                }
                start = i + 1;
            }
        }
    }
    true
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// The checks every decoded reading must pass: no backslash, no control byte, no
/// escape left for a second decoding.
fn check_bytes(b: &[u8]) -> Result<(), PathRefusal> {
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\\' => return Err(PathRefusal::Backslash),
            _ if is_control(c) => return Err(PathRefusal::ControlByte),
            b'%' if b.len() > i + 2
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit() =>
            {
                return Err(PathRefusal::DoubleEncoded)
            }
            _ => {}
        }
    }
    Ok(())
}

/// `/`-separated segments without empty ones, with `;params` cut from each when
/// `strip`; a trailing `/` is kept.
fn collapse(text: &str, strip: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut trailing = false;
    for seg in text.split('/').skip(1) {
        let seg = if strip {
            seg.split_once(';').map_or(seg, |(s, _)| s)
        } else {
            seg
        };
        trailing = seg.is_empty();
        if !trailing {
            out.push('/');
            out.push_str(seg);
        }
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    out
}

fn has_dot_segment(b: &[u8]) -> bool {
    b.split(|c| *c == b'/')
        .any(|seg| seg == b"." || seg == b"..")
}

/// Decoded bytes as a lenient decoder reads them: valid UTF-8 as it is, an overlong
/// form of an ASCII character (`C0 AE` for `.`) as that character, any other
/// invalid byte as U+FFFD.
fn lenient_utf8(d: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(d) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(d.len());
    let mut i = 0;
    while i < d.len() {
        if let Some((c, len)) = overlong_ascii(&d[i..]) {
            out.push(c);
            i += len;
            continue;
        }
        let width = match d[i] {
            0x00..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        match d
            .get(i..i + width.max(1))
            .and_then(|s| std::str::from_utf8(s).ok())
        {
            Some(s) if width > 0 => {
                out.push_str(s);
                i += width;
            }
            _ => {
                out.push('\u{fffd}');
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// An overlong UTF-8 encoding of an ASCII character at the start of `b`, and its
/// length: `C0|C1 xx`, `E0 80|81 xx` or `F0 80 80|81 xx`.
fn overlong_ascii(b: &[u8]) -> Option<(char, usize)> {
    let cont = |i: usize| {
        b.get(i)
            .filter(|c| (0x80..=0xbf).contains(*c))
            .map(|c| u32::from(c & 0x3f))
    };
    let lead = *b.first()?;
    let (value, len) = match lead {
        0xc0 | 0xc1 => ((u32::from(lead & 0x1f) << 6) | cont(1)?, 2),
        0xe0 => ((cont(1)? << 6) | cont(2)?, 3),
        0xf0 => ((cont(1)? << 12) | (cont(2)? << 6) | cont(3)?, 4),
        _ => return None,
    };
    char::from_u32(value)
        .filter(char::is_ascii)
        .map(|c| (c, len))
}

/// The compatibility forms (Unicode NFKC) of the characters that matter to a path,
/// read as ASCII: fullwidth ASCII (`／`, `．`, `ａ`), the small forms of `.`,
/// `;`, `\` and `%`, the dot leaders, and the Greek question mark (`;`).
fn fold(text: &str) -> Cow<'_, str> {
    let folds = |c: char| matches!(c, '\u{ff01}'..='\u{ff5e}' | '\u{fe52}' | '\u{fe54}' | '\u{fe68}' | '\u{fe6a}' | '\u{2024}'..='\u{2026}' | '\u{037e}');
    if !text.chars().any(folds) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{ff01}'..='\u{ff5e}' => {
                out.push(char::from_u32(u32::from(c) - 0xfee0).unwrap_or(c));
            }
            '\u{fe52}' | '\u{2024}' => out.push('.'),
            '\u{2025}' => out.push_str(".."),
            '\u{2026}' => out.push_str("..."),
            '\u{fe54}' | '\u{037e}' => out.push(';'),
            '\u{fe68}' => out.push('\\'),
            '\u{fe6a}' => out.push('%'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Prefix match on segment boundaries: `/app` matches `/app`, `/app/` and `/app/x`,
/// not `/application`.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    path.starts_with(prefix) && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
}

/// `prefix_matches`, with ASCII letters matched regardless of case.
pub(crate) fn prefix_matches_ignore_case(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/').as_bytes();
    let path = path.as_bytes();
    path.len() >= prefix.len()
        && path[..prefix.len()].eq_ignore_ascii_case(prefix)
        && matches!(path.get(prefix.len()), None | Some(b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(raw: &str) -> String {
        canonical(raw.as_bytes())
            .unwrap_or_else(|e| panic!("{raw}: {e:?}"))
            .judged()
            .to_string()
    }

    #[test]
    fn plain_paths_are_borrowed_and_unchanged() {
        for p in [
            "/",
            "/app",
            "/app/",
            "/a.b/c-d_e~f",
            "/.well-known/x",
            "/a..b",
        ] {
            let c = canonical(p.as_bytes()).expect(p);
            assert!(matches!(c.judged, Cow::Borrowed(_)), "{p}");
            assert_eq!(c.judged(), p);
            assert!(!c.has_other_readings() && !c.has_params());
        }
    }

    #[test]
    fn the_judged_reading_decodes_once_and_drops_params() {
        for (raw, want) in [
            ("/%61dmin", "/admin"),
            ("//admin///x", "/admin/x"),
            ("/admin%2Fsecret", "/admin/secret"),
            ("/a%20b", "/a b"),
            ("/app/page;jsessionid=ABC", "/app/page"),
            ("/app;v=1/page", "/app/page"),
            ("/app/;jsessionid=ABC", "/app/"),
            ("/app%3Bx/y", "/app/y"),
            ("/100%25", "/100%"),
            ("/%E5%BC%A0%E4%B8%89", "/张三"),
            ("/%C0%B4", "/\u{fffd}\u{fffd}"),
        ] {
            assert_eq!(judged(raw), want, "{raw}");
        }
    }

    #[test]
    fn other_readings_are_kept_for_routing_to_compare() {
        let c = canonical(b"/admin;x/y").expect("ok");
        assert_eq!((c.judged(), c.literal()), ("/admin/y", "/admin;x/y"));
        assert!(c.has_params());
        let c = canonical("/ａｄｍｉｎ/x".as_bytes()).expect("ok");
        assert_eq!(c.folded(), "/admin/x");
        let c = canonical(b"/%C1%A1dmin").expect("ok");
        assert_eq!(c.folded(), "/admin");
        // GBK's 来 (C0 B4) is an overlong '4' to a lenient UTF-8 decoder: kept.
        assert_eq!(canonical(b"/%C0%B4").expect("ok").folded(), "/4");
    }

    #[test]
    fn refusals() {
        for (raw, want) in [
            ("", PathRefusal::NotAPath),
            ("*", PathRefusal::NotAPath),
            ("/public/../admin", PathRefusal::DotSegment),
            ("/public/..;/admin", PathRefusal::DotSegment),
            ("/public/.;x/admin", PathRefusal::DotSegment),
            ("/public/%2e%2e/admin", PathRefusal::DotSegment),
            ("/public/.%2E/admin", PathRefusal::DotSegment),
            ("/public/..%3B/admin", PathRefusal::DotSegment),
            ("/public%2f..%2fadmin", PathRefusal::DotSegment),
            ("/public/%C0%AE%C0%AE/admin", PathRefusal::DotSegment),
            ("/public/．．/admin", PathRefusal::DotSegment),
            ("/public/‥/admin", PathRefusal::DotSegment),
            ("/public/..", PathRefusal::DotSegment),
            ("/public\\..\\admin", PathRefusal::Backslash),
            ("/a%5cb", PathRefusal::Backslash),
            ("/a＼b", PathRefusal::Backslash),
            ("/x/%00", PathRefusal::ControlByte),
            ("/x/%0d%0a", PathRefusal::ControlByte),
            ("/a b", PathRefusal::ControlByte),
            ("/public/%252e%252e/admin", PathRefusal::DoubleEncoded),
            ("/%2561dmin", PathRefusal::DoubleEncoded),
            ("/a/％２ｅ", PathRefusal::DoubleEncoded),
        ] {
            assert_eq!(canonical(raw.as_bytes()), Err(want), "{raw}");
        }
    }

    #[test]
    fn segment_prefixes() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/app", "/app"));
        assert!(prefix_matches("/app", "/app/x"));
        assert!(prefix_matches("/app/", "/app/x"));
        assert!(!prefix_matches("/app", "/application"));
        assert!(!prefix_matches("/app", "/ap"));
        assert!(!prefix_matches("/app", "/APP"));
        assert!(prefix_matches_ignore_case("/app", "/APP/x"));
        assert!(prefix_matches_ignore_case("/App/", "/aPp"));
        assert!(!prefix_matches_ignore_case("/app", "/APPlication"));
    }
}
