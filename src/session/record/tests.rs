use proptest::prelude::*;

use super::*;
use crate::config::Realm;

fn full() -> SessionData {
    SessionData {
        identity: Identity {
            sub: "20231101000000123".into(),
            claims: vec![
                ("name".into(), "张三".into()),
                ("email".into(), "zhang.san@example.com".into()),
                ("groups".into(), "a \"quoted\" \\ value\n".into()),
            ],
        },
        issued_at: 1_764_547_200,
        issued_ms: 999,
        expires_at: u64::MAX,
        realm: Realm::Oidc("demo-client".into()),
        id_token: Some(Secret::new("eyJhbGciOi.x.y".into())),
        id: "k".repeat(43),
        sid: Some("sid-1".into()),
        ticket_hash: Some("th".into()),
        last_seen: 1_764_547_260,
        access_expires: Some(0),
        refresh_token: Some(Secret::new("rt".into())),
        access_token: Some(Secret::new(String::new())),
        generation: u32::MAX,
        renewed: true,
    }
}

fn bare() -> SessionData {
    SessionData {
        identity: Identity {
            sub: "u".into(),
            claims: Vec::new(),
        },
        issued_at: 0,
        issued_ms: 0,
        expires_at: 1,
        realm: Realm::Cas,
        id_token: None,
        id: String::new(),
        sid: None,
        ticket_hash: None,
        last_seen: 0,
        access_expires: None,
        refresh_token: None,
        access_token: None,
        generation: 0,
        renewed: false,
    }
}

#[test]
fn both_formats_give_back_what_was_written() {
    for format in [RecordFormat::Binary, RecordFormat::Json] {
        for data in [full(), bare()] {
            let bytes = encode(&data, format);
            assert_eq!(decode(&bytes), Ok(data), "{format:?}");
        }
    }
    assert_eq!(encode(&bare(), RecordFormat::Binary)[0], BINARY);
    assert_eq!(encode(&bare(), RecordFormat::Json)[0], b'{');
}

#[test]
fn a_record_of_an_earlier_gateway_still_opens() {
    // What the gateway wrote before the binary record, byte for byte.
    let old = br#"{"u":{"s":"alice","c":[["email","alice@example.com"],["name","Alice"]]},"i":1764547200,"m":12,"e":1764576000,"r":"oidc:demo-client","k":"abc","l":1764547200,"x":1764550800,"f":"refresh-1"}"#;
    let data = decode(old).expect("the old JSON opens");
    assert_eq!(data.identity.sub, "alice");
    assert_eq!(data.identity.claim("name"), Some("Alice"));
    assert_eq!(data.realm, Realm::Oidc("demo-client".into()));
    assert_eq!(data.issued_ms, 12);
    assert_eq!(data.access_expires, Some(1_764_550_800));
    assert_eq!(
        data.refresh_token.as_ref().map(|t| t.expose().as_str()),
        Some("refresh-1")
    );
    assert_eq!(data.id_token, None);
    // And reads back the same in the new format.
    assert_eq!(decode(&encode(&data, RecordFormat::Binary)), Ok(data));
}

#[test]
fn the_binary_record_is_smaller() {
    for data in [full(), bare()] {
        let binary = encode(&data, RecordFormat::Binary).len();
        let json = encode(&data, RecordFormat::Json).len();
        assert!(binary * 3 < json * 2, "binary {binary} B, JSON {json} B");
    }
}

#[test]
fn every_cut_and_every_extra_byte_is_refused() {
    let bytes = encode(&full(), RecordFormat::Binary);
    for end in 0..bytes.len() {
        assert_eq!(decode(&bytes[..end]), Err(NotARecord), "cut at {end}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(decode(&longer), Err(NotARecord));
}

#[test]
fn malformed_records_are_refused() {
    let good = encode(&bare(), RecordFormat::Binary);
    // Layout of bare(): tag, flags, issued_at, issued_ms, expires_at, last_seen,
    // generation, realm "cas", id "", sub "u", 0 claims.
    assert_eq!(good, b"\x02\x00\x00\x00\x01\x00\x00\x03cas\x00\x01u\x00");
    let with = |i: usize, b: &[u8]| {
        let mut v = good.clone();
        v.splice(i..i + 1, b.iter().copied());
        v
    };
    for (why, bytes) in [
        ("empty", Vec::new()),
        ("a later tag", with(0, b"\x03")),
        ("an unknown flag", with(1, b"\x80\x01")),
        ("a varint not in its shortest form", with(2, b"\x80\x00")),
        ("a varint past 64 bits", with(2, &[0xff; 10])),
        ("an unknown realm", with(8, b"x")),
        (
            "a claim count beyond the record",
            with(14, b"\xff\xff\xff\xff\x0f"),
        ),
        ("a string beyond the record", with(11, b"\x09")),
        ("a string not UTF-8", with(13, b"\xff")),
        ("not JSON after {", b"{\"u\":".to_vec()),
        ("neither", b"[]".to_vec()),
    ] {
        assert_eq!(decode(&bytes), Err(NotARecord), "{why}: {bytes:?}");
    }
    // Largest values in their longest legal forms do open.
    let mut max = bare();
    max.issued_at = u64::MAX;
    assert_eq!(decode(&encode(&max, RecordFormat::Binary)), Ok(max));
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", "[a-z@.]{0,300}"]
}

fn session() -> impl Strategy<Value = SessionData> {
    let realm = prop_oneof![
        Just(Realm::Cas),
        Just(Realm::Public),
        "[a-z0-9-]{1,20}".prop_map(Realm::Oidc),
        "[a-z0-9-]{1,20}".prop_map(Realm::OAuth2),
    ];
    let optional = || proptest::option::of(text());
    (
        (
            text(),
            proptest::collection::vec((text(), text()), 0..6),
            realm,
            text(),
        ),
        (
            any::<u64>(),
            0u16..1000,
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<bool>(),
        ),
        (
            optional(),
            optional(),
            optional(),
            proptest::option::of(any::<u64>()),
        ),
        (optional(), optional()),
    )
        .prop_map(
            |((sub, claims, realm, id), (i, m, e, l, g, w), (t, s, h, x), (f, a))| SessionData {
                identity: Identity { sub, claims },
                issued_at: i,
                issued_ms: m,
                expires_at: e,
                realm,
                id_token: t.map(Secret::new),
                id,
                sid: s,
                ticket_hash: h,
                last_seen: l,
                access_expires: x,
                refresh_token: f.map(Secret::new),
                access_token: a.map(Secret::new),
                generation: g,
                renewed: w,
            },
        )
}

proptest! {
    #[test]
    fn any_session_reads_back_in_both_formats(data in session()) {
        for format in [RecordFormat::Binary, RecordFormat::Json] {
            prop_assert_eq!(decode(&encode(&data, format)), Ok(data.clone()));
        }
    }

    #[test]
    fn any_bytes_are_a_session_or_refused_never_a_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200)
    ) {
        let mut tagged = vec![BINARY];
        tagged.extend_from_slice(&bytes);
        for b in [&bytes, &tagged] {
            if let Ok(data) = decode(b) {
                // What opens is what the record says: written again, it is the same.
                prop_assert_eq!(decode(&encode(&data, RecordFormat::Binary)), Ok(data));
            }
        }
    }
}
