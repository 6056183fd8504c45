//! CAS answers as servers send them (JSON, XML, 1.0), hostile ones included.

use super::*;
use serde_json::json;

fn success(a: CasAnswer) -> (String, Map<String, Value>) {
    match a {
        CasAnswer::Success { user, attributes } => (user, attributes),
        other => panic!("expected success, got {other:?}"),
    }
}

#[test]
fn json_success_with_every_attribute_shape() {
    let body = r#"{"serviceResponse":{"authenticationSuccess":{"user":"minghui","attributes":{
        "authenticationDate":"2020-02-11T06:43:30.588Z","isFromNewLogin":true,"birthday":null,
        "memberOf":["staff","dev"],"email":"m@example.com"}}}}"#;
    let (user, attrs) = success(parse_json(body).expect("parse"));
    assert_eq!(user, "minghui");
    assert_eq!(attrs["isFromNewLogin"], json!(true));
    assert_eq!(attrs["birthday"], Value::Null);
    assert_eq!(attrs["memberOf"], json!(["staff", "dev"]));
}

#[test]
fn json_failure_keeps_only_a_clean_code() {
    let body = r#"{"serviceResponse":{"authenticationFailure":{"code":"INVALID_TICKET","description":"<b>ST-1</b>"}}}"#;
    assert_eq!(
        parse_json(body).expect("parse"),
        CasAnswer::Failure {
            code: "INVALID_TICKET".into()
        }
    );
    let body = r#"{"serviceResponse":{"authenticationFailure":{"code":"INVALID<script>"}}}"#;
    assert_eq!(
        parse_json(body).expect("parse"),
        CasAnswer::Failure {
            code: "INVALIDscript".into()
        }
    );
    for junk in [
        "",
        "{",
        "[]",
        r#"{"serviceResponse":{}}"#,
        r#"{"serviceResponse":{"authenticationSuccess":{}}}"#,
    ] {
        assert!(parse_json(junk).is_err(), "{junk}");
    }
}

#[test]
fn xml_success_with_namespaces_lists_and_entities() {
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
  <cas:authenticationSuccess>
    <cas:user>min&amp;ghui</cas:user>
    <cas:attributes>
      <cas:isFromNewLogin>true</cas:isFromNewLogin>
      <cas:memberOf>staff</cas:memberOf>
      <cas:memberOf>dev</cas:memberOf>
      <cas:birthday/>
      <cas:name>&#24352;&#x4F1F; &lt;x&gt;</cas:name>
    </cas:attributes>
  </cas:authenticationSuccess>
</cas:serviceResponse>"#;
    let (user, attrs) = success(parse_xml(body).expect("parse"));
    assert_eq!(user, "min&ghui");
    assert_eq!(attrs["isFromNewLogin"], json!("true"));
    assert_eq!(attrs["memberOf"], json!(["staff", "dev"]));
    assert_eq!(attrs["birthday"], Value::Null);
    assert_eq!(attrs["name"], json!("张伟 <x>"));
}

#[test]
fn xml_failure() {
    let body = r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationFailure code="INVALID_SERVICE">Ticket ST-1 not recognized</cas:authenticationFailure></cas:serviceResponse>"#;
    assert_eq!(
        parse_xml(body).expect("parse"),
        CasAnswer::Failure {
            code: "INVALID_SERVICE".into()
        }
    );
}

#[test]
fn xml_with_a_dtd_or_custom_entity_is_refused() {
    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>&lol2;</cas:user></cas:authenticationSuccess></cas:serviceResponse>"#;
    assert!(parse_xml(bomb).is_err());
    let xxe = r#"<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>&xxe;</cas:user></cas:authenticationSuccess></cas:serviceResponse>"#;
    assert!(parse_xml(xxe).is_err());
    // An undeclared entity without a DTD, too.
    let undeclared = r#"<cas:serviceResponse xmlns:cas="x"><cas:authenticationSuccess><cas:user>&boom;</cas:user></cas:authenticationSuccess></cas:serviceResponse>"#;
    assert!(parse_xml(undeclared).is_err());
}

#[test]
fn malformed_xml_is_an_error_not_a_user() {
    for junk in [
        "",
        "<cas:serviceResponse>",
        "<a><b></a>",
        r#"<cas:serviceResponse xmlns:cas="x"><cas:authenticationSuccess></cas:authenticationSuccess></cas:serviceResponse>"#,
        // A user element outside authenticationSuccess does not count.
        r#"<cas:serviceResponse xmlns:cas="x"><cas:user>admin</cas:user></cas:serviceResponse>"#,
    ] {
        assert!(parse_xml(junk).is_err(), "{junk}");
    }
}

#[test]
fn cas1_answers() {
    assert_eq!(success(parse_v1("yes\nalice\n").expect("parse")).0, "alice");
    assert_eq!(
        parse_v1("no\n\n").expect("parse"),
        CasAnswer::Failure {
            code: "INVALID_TICKET".into()
        }
    );
    assert!(parse_v1("maybe\n").is_err());
    assert!(parse_v1("").is_err());
}

#[test]
fn tickets_that_could_change_the_request_are_refused() {
    assert!(check_ticket("ST-1-abcDEF_123.xyz-cas01").is_ok());
    for t in [
        "",
        "ST-1&service=http://evil",
        "ST-1<x>",
        "ST-1%0d%0a",
        "ST-1\r\nX: y",
        "ST 1",
        "ST-1#frag",
        "ST-1\"",
        &format!("ST-{}", "a".repeat(MAX_TICKET)),
    ] {
        assert!(check_ticket(t).is_err(), "{t:?}");
    }
}

#[test]
fn logout_requests_give_their_session_index() {
    let xml = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="LR-1" Version="2.0" IssueInstant="2024-04-30T06:43:30Z"><saml:NameID>@NOT_USED@</saml:NameID><samlp:SessionIndex>ST-12345-abc</samlp:SessionIndex></samlp:LogoutRequest>"#;
    assert_eq!(parse_logout_request(xml).as_deref(), Some("ST-12345-abc"));
    for bad in [
        "",
        "<x>",
        r#"<!DOCTYPE x [<!ENTITY e "ST-1">]><samlp:LogoutRequest xmlns:samlp="u"><samlp:SessionIndex>&e;</samlp:SessionIndex></samlp:LogoutRequest>"#,
        r#"<samlp:LogoutRequest xmlns:samlp="u"><samlp:SessionIndex>ST-1&amp;x=1</samlp:SessionIndex></samlp:LogoutRequest>"#,
        r#"<samlp:LogoutRequest xmlns:samlp="u"></samlp:LogoutRequest>"#,
    ] {
        assert_eq!(parse_logout_request(bad), None, "{bad}");
    }
}

#[test]
fn a_cas_1_user_with_a_control_character_is_refused() {
    // Found by tests/parsers_props.rs: `str::lines` splits at LF and CRLF only,
    // so a lone CR stayed inside the user name.
    for body in ["yes\na\rice\n", "yes\nal\u{7}ice\n", "yes\nal\u{0}ice\n"] {
        assert!(parse_v1(body).is_err(), "{body:?}");
    }
    assert!(
        matches!(parse_v1("yes\nalice\r\n"), Ok(CasAnswer::Success { user, .. }) if user == "alice")
    );
}
