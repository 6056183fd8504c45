//! Property tests of every parser of untrusted input: the session cookie (sealed,
//! and split into chunks), CAS validation answers (XML, JSON, CAS 1.0), CAS
//! single-logout requests and return URLs. Random and mutated inputs
//! (truncations, bit flips, huge, nested, entity-laden) never panic, and are never
//! accepted unless well formed. Logout tokens, which need the provider's keys,
//! are in `tests/sessions.rs`.

use oneaccess_gateway::auth::cas::{
    parse_json, parse_logout_request, parse_v1, parse_xml, CasAnswer,
};
use oneaccess_gateway::auth::redirect::safe_return_url;
use oneaccess_gateway::identity::Identity;
use oneaccess_gateway::secret::Secret;
use oneaccess_gateway::session::record::RecordFormat;
use oneaccess_gateway::session::{self, cookie, Sealer, SessionData};
use proptest::prelude::*;

const CASES: u32 = 2_000;

const XML_SUCCESS: &str = r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
  <cas:authenticationSuccess>
    <cas:user>alice</cas:user>
    <cas:attributes>
      <cas:email>alice@example.com</cas:email>
      <cas:memberOf>staff</cas:memberOf>
      <cas:memberOf>admins</cas:memberOf>
    </cas:attributes>
  </cas:authenticationSuccess>
</cas:serviceResponse>"#;

const JSON_SUCCESS: &str = r#"{"serviceResponse":{"authenticationSuccess":{"user":"alice","attributes":{"email":"alice@example.com","memberOf":["staff","admins"]}}}}"#;

const SLO: &str = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="LR-1" Version="2.0" IssueInstant="2026-11-30T12:00:00Z"><saml:NameID xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">@NOT_USED@</saml:NameID><samlp:SessionIndex>ST-1-abcdefghijklmnop</samlp:SessionIndex></samlp:LogoutRequest>"#;

fn is_success(a: &Result<CasAnswer, oneaccess_gateway::error::AuthError>) -> bool {
    matches!(a, Ok(CasAnswer::Success { .. }))
}

/// Well-formed XML, read apart from the code under test: every element closed in
/// order, no DTD, something at the root.
fn well_formed_xml(s: &str) -> bool {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(s);
    let mut open: Vec<String> = Vec::new();
    let mut roots = 0;
    loop {
        match reader.read_event() {
            Err(_) | Ok(Event::DocType(_)) => return false,
            Ok(Event::Start(e)) => {
                if open.is_empty() {
                    roots += 1;
                }
                open.push(e.name().as_ref().to_string());
            }
            Ok(Event::Empty(_)) if open.is_empty() => roots += 1,
            Ok(Event::End(e)) => {
                if open.pop().as_deref() != Some(e.name().as_ref()) {
                    return false;
                }
            }
            Ok(Event::Eof) => return open.is_empty() && roots == 1,
            Ok(_) => {}
        }
    }
}

/// Byte-level mutations of a valid input: flips, deletions, insertions, cuts.
fn mutated(valid: &'static str) -> impl Strategy<Value = String> {
    let len = valid.len();
    prop_oneof![
        (0..len, any::<u8>()).prop_map(move |(i, b)| {
            let mut v = valid.as_bytes().to_vec();
            v[i] ^= b | 1;
            String::from_utf8_lossy(&v).into_owned()
        }),
        (0..len, 1..8usize).prop_map(move |(i, n)| {
            let mut v = valid.as_bytes().to_vec();
            v.drain(i..(i + n).min(len));
            String::from_utf8_lossy(&v).into_owned()
        }),
        (0..len, "[<>&;/\"'=a-z!\\[\\]]{1,6}").prop_map(move |(i, ins)| {
            let mut v = valid.to_string();
            let i = (0..=i).rev().find(|k| v.is_char_boundary(*k)).unwrap_or(0);
            v.insert_str(i, &ins);
            v
        }),
        (0..len).prop_map(move |i| {
            let i = (0..=i)
                .rev()
                .find(|k| valid.is_char_boundary(*k))
                .unwrap_or(0);
            valid[..i].to_string()
        }),
    ]
}

/// Entity-laden and deeply nested documents.
fn hostile_xml() -> impl Strategy<Value = String> {
    prop_oneof![
        (1..12usize).prop_map(|n| {
            let mut ents = String::from("<!ENTITY e0 \"lol\">");
            for i in 1..n {
                ents.push_str(&format!("<!ENTITY e{i} \"{}\">", format!("&e{};", i - 1).repeat(10)));
            }
            format!("<?xml version=\"1.0\"?><!DOCTYPE x [{ents}]><cas:serviceResponse xmlns:cas=\"http://www.yale.edu/tp/cas\"><cas:authenticationSuccess><cas:user>&e{};</cas:user></cas:authenticationSuccess></cas:serviceResponse>", n - 1)
        }),
        (1..20_000usize).prop_map(|depth| format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth))),
        (1..200_000usize).prop_map(|n| format!("<cas:serviceResponse><cas:authenticationSuccess><cas:user>{}</cas:user></cas:authenticationSuccess></cas:serviceResponse>", "a".repeat(n))),
        ".{0,300}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn cas_xml_answers(s in prop_oneof![mutated(XML_SUCCESS), hostile_xml()]) {
        let answer = parse_xml(&s);
        if is_success(&answer) {
            prop_assert!(well_formed_xml(&s), "accepted malformed XML: {s:?}");
        }
    }

    #[test]
    fn cas_json_answers(s in prop_oneof![mutated(JSON_SUCCESS), ".{0,300}", (1..5000usize).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d)))]) {
        let answer = parse_json(&s);
        if is_success(&answer) {
            prop_assert!(serde_json::from_str::<serde_json::Value>(&s).is_ok(), "accepted malformed JSON: {s:?}");
        }
    }

    #[test]
    fn cas_1_answers(s in prop_oneof![mutated("yes\nalice\n"), ".{0,100}"]) {
        if let Ok(CasAnswer::Success { user, .. }) = parse_v1(&s) {
            prop_assert!(s.starts_with("yes\n"), "{s:?}");
            prop_assert!(!user.is_empty() && !user.contains(['\n', '\r']), "{user:?}");
        }
    }

    #[test]
    fn single_logout_requests(s in prop_oneof![mutated(SLO), hostile_xml()]) {
        if let Some(ticket) = parse_logout_request(&s) {
            prop_assert!(well_formed_xml(&s), "accepted malformed XML: {s:?}");
            prop_assert!(!ticket.is_empty() && !ticket.contains(['<', '&', '\n']), "{ticket:?}");
        }
    }

    #[test]
    fn return_urls(raw in return_url()) {
        let origin = "https://app.example.com";
        let allowed = vec!["portal.example.com".to_string()];
        if let Some(url) = safe_return_url(&raw, origin, &allowed) {
            if url.starts_with('/') {
                prop_assert!(!url.starts_with("//"), "{raw:?} -> {url:?}");
                // Resolved against the origin, it stays there.
                let resolved = url::Url::parse(origin).and_then(|o| o.join(&url)).expect("joins");
                prop_assert_eq!(resolved.host_str(), Some("app.example.com"), "{:?}", raw);
            } else {
                let u = url::Url::parse(&url).expect("an absolute URL");
                prop_assert!(matches!(u.host_str(), Some("app.example.com" | "portal.example.com")), "{raw:?} -> {url:?}");
                prop_assert!(u.username().is_empty() && u.password().is_none());
            }
        }
    }
}

fn return_url() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("//".to_string()),
        Just("\\".to_string()),
        Just("%2f".to_string()),
        Just("%5c".to_string()),
        Just("%09".to_string()),
        Just("%00".to_string()),
        Just("@".to_string()),
        Just(":".to_string()),
        Just("evil.com".to_string()),
        Just("app.example.com".to_string()),
        Just("portal.example.com".to_string()),
        Just("https:".to_string()),
        Just("http:".to_string()),
        Just("javascript:".to_string()),
        Just("?".to_string()),
        Just("#".to_string()),
        Just(".".to_string()),
        Just("user:pw@".to_string()),
        Just("\t".to_string()),
        "[a-z]{1,4}",
    ];
    prop::collection::vec(piece, 1..8).prop_map(|p| p.concat())
}

const KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

fn sealed_session(claims: usize) -> String {
    let sealer = Sealer::new(&[Secret::new(KEY)]);
    let data = SessionData {
        identity: Identity {
            sub: "20240001".into(),
            claims: (0..claims)
                .map(|i| (format!("claim{i}"), "v".repeat(40)))
                .collect(),
        },
        issued_at: 100,
        issued_ms: 0,
        expires_at: u64::MAX / 2,
        realm: oneaccess_gateway::config::Realm::Oidc("c".into()),
        id_token: None,
        id: "k".repeat(43),
        sid: None,
        ticket_hash: None,
        last_seen: 100,
        access_expires: None,
        refresh_token: None,
        access_token: None,
        generation: 0,
        renewed: false,
    };
    session::seal(&sealer, "oag_session", &data, RecordFormat::Binary).expect("seal")
}

/// Opens a cookie value as the gateway does, chunks and all.
fn open_cookie_header(header: &str) -> Option<SessionData> {
    let sealer = Sealer::new(&[Secret::new(KEY)]);
    let pairs: Vec<(&str, &str)> = cookie::pairs(header.as_bytes()).collect();
    let main = pairs.iter().find(|(n, _)| *n == "oag_session")?.1;
    let value = cookie::assemble("oag_session", main, |c| {
        pairs.iter().find(|(n, _)| *n == c).map(|(_, v)| *v)
    })?;
    session::open(&sealer, "oag_session", &value, 200).ok()
}

/// The `Cookie` header a browser sends for `value`, split as the gateway sets it.
fn cookie_header(value: &str) -> String {
    match cookie::split("oag_session", value) {
        Some(chunks) => chunks
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; "),
        None => format!("oag_session={value}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn session_cookies(claims in prop_oneof![Just(2usize), Just(120usize)], flip in any::<(usize, u8)>(), cut in any::<usize>(), kind in 0..4u8) {
        let value = sealed_session(claims);
        let good = cookie_header(&value);
        prop_assert!(open_cookie_header(&good).is_some(), "the unchanged cookie opens");
        let bad = match kind {
            // A flipped byte anywhere in the header.
            0 => {
                let mut b = good.clone().into_bytes();
                let i = flip.0 % b.len();
                b[i] ^= flip.1 | 1;
                String::from_utf8_lossy(&b).into_owned()
            }
            // Cut short.
            1 => good[..cut % good.len()].to_string(),
            // A chunk dropped, or the chunks out of order.
            2 => {
                let mut parts: Vec<&str> = good.split("; ").collect();
                if parts.len() > 1 {
                    parts.remove(1 + cut % (parts.len() - 1));
                } else {
                    return Ok(());
                }
                parts.join("; ")
            }
            _ => {
                let mut parts: Vec<&str> = good.split("; ").collect();
                if parts.len() < 3 {
                    return Ok(());
                }
                let n = parts.len();
                parts.swap(1 + cut % (n - 1), 1 + flip.0 % (n - 1));
                parts.join("; ")
            }
        };
        if bad != good {
            if let Some(d) = open_cookie_header(&bad) {
                // Only a change the seal does not cover (a space, a separator) may
                // still open, and then to the very same session.
                prop_assert_eq!(d.id, "k".repeat(43));
                prop_assert_eq!(d.identity.claims.len(), claims);
            }
        }
    }

    #[test]
    fn random_cookie_headers(header in "[ -~]{0,600}") {
        let _ = open_cookie_header(&header);
    }
}
