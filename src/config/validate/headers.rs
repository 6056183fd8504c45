//! `[route.headers]`: what the app behind a route is told about the user. Each
//! entry is a claim name (`X-User = "sub"`) or a table with exactly one of
//! `claim`, `value`, `template`, plus `missing = "omit" | "reject"`, a list
//! `separator` and an `encoding`, whose default is the route's `header_encoding`.

use std::collections::BTreeMap;

use http::HeaderName;

use super::Collector;
use crate::config::runtime::{HeaderEncoding, HeaderRule, HeaderSource, Missing, TemplatePart};

/// The headers every protected route sets unless it lists its own.
pub(crate) const DEFAULT_HEADERS: [(&str, &str); 3] = [
    ("x-forwarded-user", "sub"),
    ("x-forwarded-email", "email"),
    ("x-forwarded-preferred-username", "preferred_username"),
];

/// Headers an identity mapping may never set: they frame or route the request, or
/// carry the client's own credentials.
const FORBIDDEN_HEADERS: [&str; 9] = [
    "host",
    "cookie",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
];

/// The rules of route `i`: its `headers`, or the default set, each in its own
/// `encoding` or the route's `header_encoding`.
pub(super) fn header_rules(
    c: &mut Collector,
    i: usize,
    given: Option<&BTreeMap<String, toml::Value>>,
    header_encoding: Option<&str>,
) -> Vec<HeaderRule> {
    let route_encoding = header_encoding
        .and_then(|name| encoding_named(c, &format!("route[{i}].header_encoding"), name))
        .unwrap_or_default();
    let Some(given) = given else {
        return DEFAULT_HEADERS
            .iter()
            .map(|(h, claim)| HeaderRule {
                name: HeaderName::from_static(h),
                source: HeaderSource::Claim(claim.to_string()),
                missing: Missing::Omit,
                separator: ",".into(),
                encoding: route_encoding,
            })
            .collect();
    };
    let mut rules = Vec::new();
    for (name, v) in given {
        let path = format!("route[{i}].headers.{name}");
        let name = match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) if FORBIDDEN_HEADERS.contains(&h.as_str()) => {
                c.add(path, "this header cannot carry identity");
                continue;
            }
            Ok(h) => h,
            Err(_) => {
                c.add(path, "is not a valid header name");
                continue;
            }
        };
        if let Some(rule) = header_rule(c, &path, name, v, route_encoding) {
            rules.push(rule);
        }
    }
    rules
}

fn header_rule(
    c: &mut Collector,
    path: &str,
    name: HeaderName,
    v: &toml::Value,
    route_encoding: HeaderEncoding,
) -> Option<HeaderRule> {
    let mut rule = HeaderRule {
        name,
        source: HeaderSource::Value(String::new()),
        missing: Missing::Omit,
        separator: ",".into(),
        encoding: route_encoding,
    };
    let table = match v {
        toml::Value::String(claim) => {
            rule.source = HeaderSource::Claim(claim_name(c, path, claim)?);
            return Some(rule);
        }
        toml::Value::Table(t) => t,
        _ => {
            c.add(
                path,
                "must be a claim name or a table { claim | value | template }",
            );
            return None;
        }
    };
    let mut ok = true;
    let mut text = |key: &str| -> Option<String> {
        match table.get(key) {
            None => None,
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(_) => {
                c.add(format!("{path}.{key}"), "must be a string");
                ok = false;
                None
            }
        }
    };
    let (claim, value, template) = (text("claim"), text("value"), text("template"));
    let missing = text("missing");
    let separator = text("separator");
    let encoding = text("encoding");
    for key in table.keys() {
        if ![
            "claim",
            "value",
            "template",
            "missing",
            "separator",
            "encoding",
        ]
        .contains(&key.as_str())
        {
            c.add(
                format!("{path}.{key}"),
                "unknown key (expected claim, value, template, missing, separator, encoding)",
            );
            ok = false;
        }
    }
    if let Some(name) = encoding {
        match encoding_named(c, &format!("{path}.encoding"), &name) {
            Some(e) => rule.encoding = e,
            None => ok = false,
        }
    }
    rule.source = match (claim, value, template) {
        (Some(claim), None, None) => HeaderSource::Claim(claim_name(c, path, &claim)?),
        (None, Some(value), None) => {
            if value.chars().any(char::is_control) {
                c.add(format!("{path}.value"), "contains control characters");
                return None;
            }
            HeaderSource::Value(value)
        }
        (None, None, Some(t)) => match parse_template(&t) {
            Ok(parts) => HeaderSource::Template(parts),
            Err(e) => {
                c.add(format!("{path}.template"), e);
                return None;
            }
        },
        _ => {
            c.add(path, "needs exactly one of claim, value, template");
            return None;
        }
    };
    rule.missing = match missing.as_deref() {
        None | Some("omit") => Missing::Omit,
        Some("reject") => Missing::Reject,
        Some(other) => {
            c.add(
                format!("{path}.missing"),
                format!("`{other}` is not omit or reject"),
            );
            Missing::Omit
        }
    };
    if let Some(sep) = separator {
        if sep.chars().any(char::is_control) {
            c.add(format!("{path}.separator"), "contains control characters");
            ok = false;
        }
        rule.separator = sep;
    }
    ok.then_some(rule)
}

fn encoding_named(c: &mut Collector, path: &str, name: &str) -> Option<HeaderEncoding> {
    let found = HeaderEncoding::named(name);
    if found.is_none() {
        let names: Vec<&str> = HeaderEncoding::ALL.iter().map(|e| e.as_str()).collect();
        c.add(path, format!("`{name}` is not one of {}", names.join(", ")));
    }
    found
}

fn claim_name(c: &mut Collector, path: &str, claim: &str) -> Option<String> {
    let claim = claim.trim();
    if claim.is_empty() || claim.contains(['{', '}']) || claim.chars().any(char::is_control) {
        c.add(
            path,
            "needs a claim name (for text around claims, use template)",
        );
        return None;
    }
    Some(claim.to_string())
}

/// `"{preferred_username}@corp"` into text and claims; `{{` and `}}` are
/// literal braces.
pub(super) fn parse_template(t: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = t.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') | None => {
                            return Err(format!("`{{{name}` is not closed with `}}`"))
                        }
                        Some(ch) => name.push(ch),
                    }
                }
                let name = name.trim();
                if name.is_empty() {
                    return Err("`{}` names no claim".into());
                }
                if !text.is_empty() {
                    parts.push(TemplatePart::Text(std::mem::take(&mut text)));
                }
                parts.push(TemplatePart::Claim(name.to_string()));
            }
            '}' => return Err("a `}` without its `{` (write `}}` for a brace)".into()),
            ch if ch.is_control() => return Err("contains control characters".into()),
            ch => text.push(ch),
        }
    }
    if !text.is_empty() {
        parts.push(TemplatePart::Text(text));
    }
    if !parts.iter().any(|p| matches!(p, TemplatePart::Claim(_))) {
        return Err("uses no claim: for a fixed text, write value".into());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        assert_eq!(
            parse_template("{userName}@corp").expect("ok"),
            vec![
                TemplatePart::Claim("userName".into()),
                TemplatePart::Text("@corp".into())
            ]
        );
        assert_eq!(
            parse_template("{{{ a }}}-{b}").expect("ok"),
            vec![
                TemplatePart::Text("{".into()),
                TemplatePart::Claim("a".into()),
                TemplatePart::Text("}-".into()),
                TemplatePart::Claim("b".into()),
            ]
        );
        for bad in ["{a", "a}", "{}", "plain", "{a{b}}", "x\n{a}"] {
            assert!(parse_template(bad).is_err(), "{bad}");
        }
    }
}
