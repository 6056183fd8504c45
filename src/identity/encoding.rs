//! How an identity header's text becomes bytes on the wire: UTF-8 as it is (the
//! default), or percent, base64, Latin-1 or RFC 2047 encoded, for apps that read
//! header values as ISO-8859-1 (Java servlets) and would garble a Chinese name.
//!
//! Every encoding writes the same text the default sends: control characters are
//! spaces before encoding, so no encoding can smuggle one to the app, and decoding
//! gives back exactly what `utf8` would have sent.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::HeaderValue;
use percent_encoding::{percent_encode_byte, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::HeaderEncoding;

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// RFC 2047 §2: an encoded-word is at most 75 characters. `=?UTF-8?B?` and `?=`
/// take 12, leaving 63 for base64, so 60 (whole quads), which carry 45 bytes.
const MIME_PREFIX: &str = "=?UTF-8?B?";
const MIME_SUFFIX: &str = "?=";
const MIME_WORD_BYTES: usize = 45;

/// The header value of `text` in `encoding`. Header rules in `Utf8` never come
/// here: `identity` sends them through `sanitized_value` as it always did, which
/// gives the same bytes without this function's copies.
pub(crate) fn encoded_value(encoding: HeaderEncoding, text: &str) -> HeaderValue {
    let text = without_controls(text);
    let bytes: Vec<u8> = match encoding {
        HeaderEncoding::Utf8 => text.into_owned().into_bytes(),
        HeaderEncoding::Percent => percent(&text).into_bytes(),
        HeaderEncoding::Base64 => STANDARD.encode(text.as_bytes()).into_bytes(),
        HeaderEncoding::Latin1 => latin1(&text),
        HeaderEncoding::Mime => mime(&text).into_bytes(),
    };
    // Cannot fail: every byte is printable ASCII or (Latin-1) 0xA0..=0xFF.
    HeaderValue::from_maybe_shared(Bytes::from(bytes))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The text with every C0 control character and DEL as a space, as the default
/// encoding sends it.
fn without_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if text.bytes().all(|b| b >= 0x20 && b != 0x7f) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| if c.is_ascii_control() { ' ' } else { c })
        .collect::<String>()
        .into()
}

/// RFC 3986: unreserved characters as they are, every other byte of the UTF-8 as
/// `%XX` (upper-case hex).
fn percent(text: &str) -> String {
    utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

/// ISO-8859-1 where it can: printable characters up to U+00FF are their one
/// Latin-1 byte (obs-text in HTTP above 0x7F). Anything else, and `%` itself, is
/// its UTF-8 as `%XX`, so a percent-decoder gives the text back. C1 controls
/// (U+0080..U+009F) are encoded too: as Latin-1 bytes they would be control
/// characters.
fn latin1(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let code = u32::from(c);
        match u8::try_from(code) {
            Ok(b) if ((b' '..=b'~').contains(&b) && b != b'%') || b >= 0xa0 => out.push(b),
            _ => {
                let mut utf8 = [0u8; 4];
                for b in c.encode_utf8(&mut utf8).bytes() {
                    out.extend_from_slice(percent_encode_byte(b).as_bytes());
                }
            }
        }
    }
    out
}

/// RFC 2047: plain ASCII as it is, unless it contains `=?` (a decoder would take
/// it for an encoded-word: a user named `=?UTF-8?B?YWRtaW4=?=` must not reach the
/// app as `admin`). Anything else as `=?UTF-8?B?…?=` words of at most 75
/// characters, each holding whole characters (§5), separated by one space, which
/// decoders drop between adjacent encoded-words (§6.2).
fn mime(text: &str) -> String {
    if text.is_ascii() && !text.contains("=?") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() * 2 + MIME_PREFIX.len() + 4);
    let mut start = 0;
    while start < text.len() {
        let mut end = start;
        for (i, c) in text[start..].char_indices() {
            if i + c.len_utf8() > MIME_WORD_BYTES {
                break;
            }
            end = start + i + c.len_utf8();
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(MIME_PREFIX);
        STANDARD.encode_string(&text.as_bytes()[start..end], &mut out);
        out.push_str(MIME_SUFFIX);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::percent_decode;
    use proptest::prelude::*;
    use HeaderEncoding::{Base64, Latin1, Mime, Percent, Utf8};

    const ALL: [HeaderEncoding; 5] = HeaderEncoding::ALL;

    fn enc(e: HeaderEncoding, text: &str) -> Vec<u8> {
        encoded_value(e, text).as_bytes().to_vec()
    }

    // Decoders written from the RFCs, as an app would use them: the test is that
    // each encoding gives the text back.

    fn percent_decoded(v: &[u8]) -> String {
        percent_decode(v)
            .decode_utf8()
            .expect("UTF-8 after decoding")
            .into_owned()
    }

    /// Each byte is the Latin-1 character of that code (what a servlet's
    /// `getHeader` gives), then `%XX` runs are UTF-8.
    fn latin1_decoded(v: &[u8]) -> String {
        let read_as_latin1: String = v.iter().map(|b| char::from(*b)).collect();
        percent_decoded(read_as_latin1.as_bytes())
    }

    fn base64_decoded(v: &[u8]) -> String {
        String::from_utf8(STANDARD.decode(v).expect("base64")).expect("UTF-8")
    }

    /// RFC 2047 §6: encoded-words decoded, the space between two adjacent ones
    /// dropped, other text as it is.
    fn mime_decoded(v: &[u8]) -> String {
        let text = std::str::from_utf8(v).expect("ASCII");
        let mut out = Vec::new();
        let mut after_word = false;
        for (i, token) in text.split(' ').enumerate() {
            let word = encoded_word(token);
            if i > 0 && !(after_word && word.is_some()) {
                out.push(b' ');
            }
            match &word {
                Some(bytes) => out.extend_from_slice(bytes),
                None => out.extend_from_slice(token.as_bytes()),
            }
            after_word = word.is_some();
        }
        String::from_utf8(out).expect("UTF-8")
    }

    /// The bytes of `=?UTF-8?B?…?=`, any case.
    fn encoded_word(token: &str) -> Option<Vec<u8>> {
        let inner = token.strip_prefix("=?")?.strip_suffix("?=")?;
        let mut parts = inner.splitn(3, '?');
        let (charset, kind, data) = (parts.next()?, parts.next()?, parts.next()?);
        if !charset.eq_ignore_ascii_case("utf-8") || !kind.eq_ignore_ascii_case("b") {
            return None;
        }
        STANDARD.decode(data).ok()
    }

    fn decoded(e: HeaderEncoding, v: &[u8]) -> String {
        match e {
            Utf8 => String::from_utf8(v.to_vec()).expect("UTF-8"),
            Percent => percent_decoded(v),
            Base64 => base64_decoded(v),
            Latin1 => latin1_decoded(v),
            Mime => mime_decoded(v),
        }
    }

    #[test]
    fn zhang_san_in_each_encoding() {
        let want: [(HeaderEncoding, &[u8]); 5] = [
            (Utf8, "张三".as_bytes()),
            (Percent, b"%E5%BC%A0%E4%B8%89"),
            (Base64, b"5byg5LiJ"),
            (Latin1, b"%E5%BC%A0%E4%B8%89"),
            (Mime, b"=?UTF-8?B?5byg5LiJ?="),
        ];
        for (e, bytes) in want {
            assert_eq!(enc(e, "张三"), bytes, "{e:?}");
            assert_eq!(decoded(e, bytes), "张三", "{e:?}");
        }
    }

    /// README's table, "Header value encodings", cell by cell.
    #[test]
    fn the_readme_table() {
        let rows: [(HeaderEncoding, [&[u8]; 3]); 5] = [
            (Utf8, ["张三".as_bytes(), b"Jos\xc3\xa9", b"100% =?x?="]),
            (
                Percent,
                [
                    b"%E5%BC%A0%E4%B8%89",
                    b"Jos%C3%A9",
                    b"100%25%20%3D%3Fx%3F%3D",
                ],
            ),
            (Base64, [b"5byg5LiJ", b"Sm9zw6k=", b"MTAwJSA9P3g/PQ=="]),
            (Latin1, [b"%E5%BC%A0%E4%B8%89", b"Jos\xe9", b"100%25 =?x?="]),
            (
                Mime,
                [
                    b"=?UTF-8?B?5byg5LiJ?=",
                    b"=?UTF-8?B?Sm9zw6k=?=",
                    b"=?UTF-8?B?MTAwJSA9P3g/PQ==?=",
                ],
            ),
        ];
        for (e, cells) in rows {
            for (text, want) in ["张三", "José", "100% =?x?="].into_iter().zip(cells) {
                assert_eq!(enc(e, text), want, "{e:?} {text}");
                assert_eq!(decoded(e, want), text, "{e:?} {text}");
            }
        }
    }

    #[test]
    fn plain_ascii_passes_unchanged_where_the_encoding_allows() {
        for e in [Utf8, Latin1, Mime] {
            assert_eq!(enc(e, "alice@example.com"), b"alice@example.com", "{e:?}");
        }
        assert_eq!(enc(Percent, "alice@example.com"), b"alice%40example.com");
        assert_eq!(enc(Percent, "A-z0.9_~"), b"A-z0.9_~", "unreserved");
        assert_eq!(enc(Base64, "alice"), b"YWxpY2U=", "padded");
    }

    #[test]
    fn latin1_sends_its_own_characters_as_single_bytes() {
        // é is 0xE9 in ISO-8859-1: a servlet reading the header sees "José".
        assert_eq!(enc(Latin1, "José"), b"Jos\xe9");
        assert_eq!(enc(Latin1, "Müller ÿ\u{a0}"), b"M\xfcller \xff\xa0");
        // Mixed: the Latin-1 characters as bytes, the rest as UTF-8 %XX.
        assert_eq!(enc(Latin1, "é张"), b"\xe9%E5%BC%A0");
        // `%` itself is encoded, or `100%41` could not be told from `100A`.
        assert_eq!(enc(Latin1, "100%41"), b"100%2541");
        assert_eq!(latin1_decoded(b"100%2541"), "100%41");
        // C1 controls would be control characters as Latin-1 bytes.
        assert_eq!(enc(Latin1, "a\u{85}b"), b"a%C2%85b");
    }

    #[test]
    fn mime_encodes_what_a_decoder_would_misread() {
        assert_eq!(enc(Mime, "Zhang San"), b"Zhang San");
        // ASCII that looks like an encoded-word is encoded, so it decodes to itself.
        let spoof = "=?UTF-8?B?YWRtaW4=?=";
        let v = enc(Mime, spoof);
        assert!(
            v.starts_with(b"=?UTF-8?B?") && v != spoof.as_bytes(),
            "{v:?}"
        );
        assert_eq!(mime_decoded(&v), spoof);
        assert_eq!(
            mime_decoded(spoof.as_bytes()),
            "admin",
            "what it would have been"
        );
        // `?=` alone starts no word.
        assert_eq!(enc(Mime, "why?=because"), b"why?=because");
    }

    #[test]
    fn long_mime_values_split_into_words_of_whole_characters() {
        // 40 × 3-byte characters = 120 bytes: 15 characters (45 bytes) per word.
        let long = "张".repeat(40);
        let v = enc(Mime, &long);
        let words: Vec<&[u8]> = v.split(|b| *b == b' ').collect();
        assert_eq!(words.len(), 3, "{}", String::from_utf8_lossy(&v));
        for w in &words {
            assert!(w.len() <= 75, "{} > 75", w.len());
            let b64 = &w[10..w.len() - 2];
            let chars = STANDARD.decode(b64).expect("base64");
            assert!(std::str::from_utf8(&chars).is_ok(), "a character was split");
        }
        assert_eq!(words[0].len(), 72);
        assert_eq!(mime_decoded(&v), long);
        // 4-byte characters around the 45-byte edge: 11 fit (44 bytes).
        let emoji = format!("a{}", "😀".repeat(12));
        let v = enc(Mime, &emoji);
        assert_eq!(mime_decoded(&v), emoji);
        assert!(v.split(|b| *b == b' ').all(|w| w.len() <= 75));
    }

    #[test]
    fn empty_and_mixed_values() {
        for e in ALL {
            assert_eq!(enc(e, ""), b"", "{e:?}");
        }
        let mixed = "Zhang San 张三 <zs@example.cn> 100% =?x?=";
        for e in ALL {
            assert_eq!(decoded(e, &enc(e, mixed)), mixed, "{e:?}");
        }
    }

    #[test]
    fn control_characters_are_spaces_in_every_encoding() {
        let hostile = "Eve\r\nX-Admin: yes\u{0}\u{7f}\t";
        for e in ALL {
            let v = enc(e, hostile);
            assert!(v.iter().all(|b| *b >= 0x20 && *b != 0x7f), "{e:?}: {v:?}");
            assert_eq!(decoded(e, &v), "Eve  X-Admin: yes   ", "{e:?}");
        }
    }

    /// Text made of the characters each encoding treats specially.
    fn tricky_text() -> impl Strategy<Value = String> {
        let chars = vec![
            'a', 'Z', '~', '+', '%', '=', '?', ' ', '\r', '\n', '\t', '\u{0}', '\u{7f}', '\u{85}',
            '\u{a0}', 'é', 'ÿ', 'Ā', '张', '三', '😀',
        ];
        prop::collection::vec(prop::sample::select(chars), 0..120)
            .prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        /// Any text: each encoding gives the header value that decodes to the text
        /// the default would send (controls as spaces), with no control byte, and
        /// MIME words within 75 characters.
        #[test]
        fn every_encoding_is_reversible(
            text in prop_oneof![any::<String>(), tricky_text()]
        ) {
            let sent = without_controls(&text).into_owned();
            // The default path's bytes, which `Utf8` here must equal.
            let default = crate::identity::sanitized_value(&text);
            prop_assert_eq!(default.as_bytes(), sent.as_bytes());
            for e in ALL {
                let v = enc(e, &text);
                prop_assert!(v.iter().all(|b| *b >= 0x20 && *b != 0x7f), "{:?}: {:?}", e, v);
                prop_assert_eq!(&decoded(e, &v), &sent, "{:?}", e);
                if e == Latin1 {
                    prop_assert!(!v.iter().any(|b| (0x80..0xa0).contains(b)), "a C1 byte");
                }
                if e == Mime && v.starts_with(b"=?") {
                    prop_assert!(v.split(|b| *b == b' ').all(|w| w.len() <= 75));
                }
            }
        }
    }
}
