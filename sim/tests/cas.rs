//! CAS against the simulator: login/ticket flow, the three validation protocols in
//! JSON (default) and XML, and the failure codes.

mod common;

use common::*;
use oneaccess_sim::{Sim, SimConfig};
use reqwest::header::COOKIE;
use serde_json::{json, Value};

async fn validate(base: &str, path: &str, params: &[(&str, &str)]) -> (String, String) {
    let resp = client()
        .get(format!("{base}{path}"))
        .query(params)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "CAS answers 200 even on failure");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    (ct, resp.text().await.unwrap())
}

#[tokio::test]
async fn browser_flow_and_json_attributes() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();
    let c = client();

    // Gateway mode without a session: straight back, no ticket.
    let resp = c
        .get(format!("{base}/api/v1/cas/login"))
        .query(&[("service", SERVICE), ("gateway", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), SERVICE);

    // No session: to the login page, and back to CAS login afterwards.
    let resp = c
        .get(format!("{base}/api/v1/cas/login"))
        .query(&[("service", SERVICE)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let back = query_param(&location(&resp), "redirect").unwrap();
    assert!(back.starts_with("/api/v1/cas/login?service="));
    let (cookie, next) = login(&c, &base, "alice", "alice-password", &back).await;
    let resp = c
        .get(format!("{base}{next}"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let to_app = location(&resp);
    assert!(
        to_app.starts_with(&format!("{SERVICE}?ticket=ST-")),
        "{to_app}"
    );
    let ticket = query_param(&to_app, "ticket").unwrap();
    assert!(ticket.len() >= 40 && ticket.len() <= 128);
    // Letters and digits after `ST-`, as OneAccess's: mod_auth_cas refuses others.
    assert!(
        ticket[3..].bytes().all(|b| b.is_ascii_alphanumeric()),
        "{ticket}"
    );

    let (ct, body) = validate(
        &base,
        "/api/v1/cas/p3/serviceValidate",
        &[("service", SERVICE), ("ticket", &ticket)],
    )
    .await;
    assert!(ct.starts_with("application/json"), "JSON is the default");
    let v: Value = serde_json::from_str(&body).unwrap();
    let ok = &v["serviceResponse"]["authenticationSuccess"];
    assert_eq!(ok["user"], "alice");
    let attrs = &ok["attributes"];
    assert_eq!(attrs["email"], "alice@example.com");
    assert_eq!(attrs["isFromNewLogin"], true);
    assert_eq!(attrs["birthday"], Value::Null);
    assert!(attrs.as_object().unwrap().contains_key("birthday"));
    assert_eq!(attrs["memberOf"], json!(["staff", "dev"]));
    assert!(attrs["authenticationDate"].as_str().unwrap().ends_with('Z'));

    // Single use.
    let (_, body) = validate(
        &base,
        "/api/v1/cas/p3/serviceValidate",
        &[("service", SERVICE), ("ticket", &ticket)],
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["serviceResponse"]["authenticationFailure"]["code"],
        "INVALID_TICKET"
    );
    assert_eq!(
        v["serviceResponse"]["authenticationFailure"]["description"],
        format!("the ticket provided was not valid, ticket is {ticket}")
    );

    // With a session the next ticket is issued at once, and is no longer "new login".
    let resp = c
        .get(format!("{base}/api/v1/cas/login"))
        .query(&[("service", SERVICE)])
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let ticket = query_param(&location(&resp), "ticket").unwrap();
    let (_, body) = validate(
        &base,
        "/api/v1/cas/serviceValidate",
        &[
            ("service", SERVICE),
            ("ticket", &ticket),
            ("format", "JSON"),
        ],
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"serviceResponse":{"authenticationSuccess":{"user":"alice"}}})
    );

    // CAS logout ends the SSO session.
    let resp = c
        .get(format!("{base}/api/v1/cas/logout"))
        .query(&[("service", SERVICE)])
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), SERVICE);
    let resp = c
        .get(format!("{base}/api/v1/cas/login"))
        .query(&[("service", SERVICE)])
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert!(location(&resp).starts_with("/api/v1/login?"));
    assert_eq!(sim.counters().cas_validate, 3);
}

#[tokio::test]
async fn xml_cas1_and_failures() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url();

    let t = sim.mint_cas_ticket("bob", SERVICE);
    let (ct, xml) = validate(
        &base,
        "/api/v1/cas/p3/serviceValidate",
        &[("service", SERVICE), ("ticket", &t), ("format", "XML")],
    )
    .await;
    assert!(ct.starts_with("application/xml"));
    assert!(xml.starts_with("<cas:serviceResponse xmlns:cas=\"http://www.yale.edu/tp/cas\">"));
    assert!(xml.contains("<cas:authenticationSuccess>"));
    assert!(xml.contains("<cas:user>bob</cas:user>"));
    assert!(xml.contains("<cas:isFromNewLogin>true</cas:isFromNewLogin>"));
    assert!(xml.contains("<cas:email>bob@example.com</cas:email>"));
    assert!(xml.contains("<cas:memberOf>staff</cas:memberOf>"));
    assert!(xml.contains("<cas:memberOf>dev</cas:memberOf>"));
    assert!(xml.contains("<cas:birthday/>"));

    let t = sim.mint_cas_ticket("bob", SERVICE);
    let (_, xml) = validate(
        &base,
        "/api/v1/cas/serviceValidate",
        &[("service", SERVICE), ("ticket", &t), ("format", "xml")],
    )
    .await;
    assert!(xml.contains("<cas:user>bob</cas:user>") && !xml.contains("<cas:attributes>"));

    // Ticket for another service: INVALID_SERVICE, and the ticket is spent.
    let t = sim.mint_cas_ticket("bob", SERVICE);
    let (_, xml) = validate(
        &base,
        "/api/v1/cas/serviceValidate",
        &[
            ("service", "http://other.example/"),
            ("ticket", &t),
            ("format", "XML"),
        ],
    )
    .await;
    assert!(
        xml.contains("<cas:authenticationFailure code=\"INVALID_SERVICE\">"),
        "{xml}"
    );
    let (_, xml) = validate(
        &base,
        "/api/v1/cas/serviceValidate",
        &[("service", SERVICE), ("ticket", &t), ("format", "XML")],
    )
    .await;
    assert!(xml.contains(&format!(
        "<cas:authenticationFailure code=\"INVALID_TICKET\">Ticket {t} not recognized</cas:authenticationFailure>"
    )));

    let (_, body) = validate(
        &base,
        "/api/v1/cas/p3/serviceValidate",
        &[("service", SERVICE)],
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["serviceResponse"]["authenticationFailure"]["code"],
        "INVALID_REQUEST"
    );

    // CAS 1.0.
    let t = sim.mint_cas_ticket("alice", SERVICE);
    let (ct, body) = validate(
        &base,
        "/api/v1/cas/validate",
        &[("service", SERVICE), ("ticket", &t)],
    )
    .await;
    assert!(ct.starts_with("text/plain"));
    assert_eq!(body, "yes\nalice\n");
    let (_, body) = validate(
        &base,
        "/api/v1/cas/validate",
        &[("service", SERVICE), ("ticket", &t)],
    )
    .await;
    assert_eq!(body, "no\n\n");
}
