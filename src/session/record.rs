//! A session's bytes, as sealed into the cookie or kept in the store: a compact
//! binary record, and the JSON that gateways before it wrote, which still opens.
//!
//! Why not JSON any more: parsing it was two thirds of opening a session cookie
//! on every request (callgrind, README "How fast"). The binary record carries the
//! same fields without names, quotes or escapes, so it is also smaller.
//!
//! Binary layout (every integer an unsigned LEB128 varint, every string its
//! byte length as a varint, then its UTF-8):
//!
//! ```text
//! 0x02  flags  issued_at issued_ms expires_at last_seen generation
//!       realm id sub  claim-count (name value)*
//!       [id_token] [sid] [ticket_hash] [access_expires] [refresh_token] [access_token]
//! ```
//!
//! `flags` says which of the bracketed fields follow, in that order, and whether
//! the session was `renewed`. A JSON record starts with `{`, never with the
//! binary tag, so one look at the first byte tells them apart. Anything else,
//! an unknown flag, a short or over-long record, is refused: the reader does not
//! guess. A later layout takes the next tag and keeps this reader.

use super::SessionData;
use crate::identity::Identity;
use crate::secret::Secret;

/// The first byte of a binary record (a JSON one starts with `{`).
const BINARY: u8 = 0x02;

const ID_TOKEN: u64 = 1 << 0;
const SID: u64 = 1 << 1;
const TICKET_HASH: u64 = 1 << 2;
const ACCESS_EXPIRES: u64 = 1 << 3;
const REFRESH_TOKEN: u64 = 1 << 4;
const ACCESS_TOKEN: u64 = 1 << 5;
const RENEWED: u64 = 1 << 6;
const KNOWN_FLAGS: u64 = (1 << 7) - 1;

/// How new session records are written. Both are always read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordFormat {
    /// The compact binary record (the default).
    #[default]
    Binary,
    /// JSON, as gateways before the binary record wrote and read: for a rolling
    /// upgrade of several gateways, until none of the older ones is left.
    Json,
}

/// The bytes are no session record this gateway can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a session record")]
pub struct NotARecord;

/// A session's record in `format`.
pub fn encode(data: &SessionData, format: RecordFormat) -> Vec<u8> {
    match format {
        // Serializing a struct of strings and integers cannot fail.
        RecordFormat::Json => serde_json::to_vec(data).unwrap_or_default(),
        RecordFormat::Binary => encode_binary(data),
    }
}

/// A session from its record, binary or JSON.
pub fn decode(bytes: &[u8]) -> Result<SessionData, NotARecord> {
    match bytes.first() {
        Some(&BINARY) => decode_binary(&bytes[1..]),
        Some(b'{') => serde_json::from_slice(bytes).map_err(|_| NotARecord),
        _ => Err(NotARecord),
    }
}

fn encode_binary(d: &SessionData) -> Vec<u8> {
    let optional = [
        (ID_TOKEN, d.id_token.is_some()),
        (SID, d.sid.is_some()),
        (TICKET_HASH, d.ticket_hash.is_some()),
        (ACCESS_EXPIRES, d.access_expires.is_some()),
        (REFRESH_TOKEN, d.refresh_token.is_some()),
        (ACCESS_TOKEN, d.access_token.is_some()),
        (RENEWED, d.renewed),
    ];
    let flags = optional
        .iter()
        .filter(|(_, set)| *set)
        .fold(0, |f, (bit, _)| f | bit);
    let strings = d.identity.sub.len()
        + d.id.len()
        + d.identity
            .claims
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
        + [&d.id_token, &d.refresh_token, &d.access_token]
            .iter()
            .filter_map(|t| t.as_ref().map(|t| t.expose().len() + 3))
            .sum::<usize>();
    let mut w = Writer(Vec::with_capacity(64 + strings));
    w.0.push(BINARY);
    w.int(flags);
    for n in [
        d.issued_at,
        u64::from(d.issued_ms),
        d.expires_at,
        d.last_seen,
    ] {
        w.int(n);
    }
    w.int(u64::from(d.generation));
    w.text(&d.realm.to_string());
    w.text(&d.id);
    w.text(&d.identity.sub);
    w.int(d.identity.claims.len() as u64);
    for (name, value) in &d.identity.claims {
        w.text(name);
        w.text(value);
    }
    if let Some(t) = &d.id_token {
        w.text(t.expose());
    }
    for s in [&d.sid, &d.ticket_hash].into_iter().flatten() {
        w.text(s);
    }
    if let Some(x) = d.access_expires {
        w.int(x);
    }
    for t in [&d.refresh_token, &d.access_token].into_iter().flatten() {
        w.text(t.expose());
    }
    w.0
}

fn decode_binary(bytes: &[u8]) -> Result<SessionData, NotARecord> {
    let mut r = Reader(bytes);
    let flags = r.int()?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(NotARecord);
    }
    let issued_at = r.int()?;
    let issued_ms = u16::try_from(r.int()?).map_err(|_| NotARecord)?;
    let expires_at = r.int()?;
    let last_seen = r.int()?;
    let generation = u32::try_from(r.int()?).map_err(|_| NotARecord)?;
    let realm = r.text()?.parse().map_err(|_| NotARecord)?;
    let id = r.text()?.to_string();
    let sub = r.text()?.to_string();
    let count = r.int()?;
    // Each claim takes at least two bytes: a count beyond that is a lie, and must
    // not size an allocation.
    if count > (r.0.len() / 2) as u64 {
        return Err(NotARecord);
    }
    let mut claims = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name = r.text()?.to_string();
        claims.push((name, r.text()?.to_string()));
    }
    let id_token = r.text_if(flags & ID_TOKEN != 0)?.map(Secret::new);
    let sid = r.text_if(flags & SID != 0)?;
    let ticket_hash = r.text_if(flags & TICKET_HASH != 0)?;
    let access_expires = if flags & ACCESS_EXPIRES != 0 {
        Some(r.int()?)
    } else {
        None
    };
    let refresh_token = r.text_if(flags & REFRESH_TOKEN != 0)?.map(Secret::new);
    let access_token = r.text_if(flags & ACCESS_TOKEN != 0)?.map(Secret::new);
    if !r.0.is_empty() {
        return Err(NotARecord);
    }
    Ok(SessionData {
        identity: Identity { sub, claims },
        issued_at,
        issued_ms,
        expires_at,
        realm,
        id_token,
        id,
        sid,
        ticket_hash,
        last_seen,
        access_expires,
        refresh_token,
        access_token,
        generation,
        renewed: flags & RENEWED != 0,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn int(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    fn text(&mut self, s: &str) {
        self.int(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// A varint of at most ten bytes, in its shortest form (so one value has one
    /// encoding) and within 64 bits.
    fn int(&mut self) -> Result<u64, NotARecord> {
        let mut n: u64 = 0;
        for (i, &b) in self.0.iter().enumerate().take(10) {
            let part = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(NotARecord);
            }
            n |= part << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(NotARecord);
                }
                self.0 = &self.0[i + 1..];
                return Ok(n);
            }
        }
        Err(NotARecord)
    }

    fn text(&mut self) -> Result<&'a str, NotARecord> {
        let len = usize::try_from(self.int()?).map_err(|_| NotARecord)?;
        if len > self.0.len() {
            return Err(NotARecord);
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(text).map_err(|_| NotARecord)
    }

    /// A string that `present` says follows, owned.
    fn text_if(&mut self, present: bool) -> Result<Option<String>, NotARecord> {
        if !present {
            return Ok(None);
        }
        self.text().map(|t| Some(t.to_string()))
    }
}

#[cfg(test)]
mod tests;
