//! HTTP/1 framing, read the strict way from the bytes a client sends, before
//! Pingora parses them. Pingora is lenient where a proxy in front of legacy apps
//! should not be: it takes `Transfer-Encoding` over a `Content-Length` sent with
//! it, accepts several `Transfer-Encoding` lines, percent-encodes a space in the
//! request target instead of refusing it, and ignores any byte, NUL and bare LF
//! included, in a chunk extension. None of that desynchronises Pingora itself,
//! but an app may read such a request differently, so the gateway refuses it.
//!
//! `Guard` follows a connection's requests line by line: the request line, the
//! header lines (reading `Content-Length`, `Transfer-Encoding` and `Upgrade`),
//! the body by its length or its chunks, and the trailers. Bodies are counted,
//! not read; only a line cut by the end of a read is kept until its end comes. After a request that asks for an upgrade
//! (or a CONNECT), the server's answer decides: a `101` (or a `2xx` to CONNECT)
//! leaves HTTP/1 for good, anything else goes on reading requests.

/// What a request did wrong; each is refused with 400 and the connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// Not `METHOD SP target SP HTTP/1.0|1.1 CRLF`: a space or control byte in
    /// the target, another version.
    RequestLine,
    /// A header line that is not `name: value`, or one folded onto the
    /// previous one.
    HeaderLine,
    /// A line ended by LF alone, or a CR not followed by LF.
    LineEnding,
    /// Both `Content-Length` and `Transfer-Encoding`.
    LengthAndChunked,
    /// `Transfer-Encoding` more than once, not exactly `chunked`, or in HTTP/1.0.
    TransferEncoding,
    /// `Content-Length` more than once, or not a plain number.
    ContentLength,
    /// A chunk-size line that is not hex digits and a clean extension.
    ChunkLine,
    /// Chunk data not followed by CRLF.
    ChunkEnd,
}

impl Violation {
    pub fn code(self) -> &'static str {
        match self {
            Violation::RequestLine => "request_line",
            Violation::HeaderLine => "header_line",
            Violation::LineEnding => "line_ending",
            Violation::LengthAndChunked => "content_length_and_transfer_encoding",
            Violation::TransferEncoding => "transfer_encoding",
            Violation::ContentLength => "content_length",
            Violation::ChunkLine => "chunk_line",
            Violation::ChunkEnd => "chunk_end",
        }
    }
}

/// The outcome of reading some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Every byte is well framed HTTP/1 (or the connection left HTTP/1).
    Pass,
    /// The bytes from `at` on follow an upgrade request: they wait for its answer.
    Hold { at: usize },
    /// A request is refused. `cut` is where to stop passing bytes on when the
    /// server has not yet had the request's whole head: from `cut` (an offset in
    /// these bytes) it must instead read a head it refuses. `None` when the
    /// server already has the head and is reading the body.
    Refuse {
        cut: Option<usize>,
        violation: Violation,
    },
}

/// Bytes that end any partial head, and make a head on their own, that Pingora
/// refuses with 400 at once: a method with a control byte, and no request line
/// for its URI-escaping retry to find.
pub(crate) const POISON: &[u8] = b"\x01\r\n\r\n";

/// The framing state of one connection.
#[derive(Debug)]
pub struct Guard {
    state: State,
    /// Where, in the bytes being read, the request now read began: the server
    /// has not seen its head yet, so a refusal can still be a clean 400.
    started: Option<usize>,
    /// A line cut by the end of a read, until its end comes (rare: heads
    /// usually come whole). Bounded by `MAX_LINE`.
    partial: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Head(Head),
    /// `left` more bytes of a body with a length; then the next request, or the
    /// answer to an upgrade request decides.
    Body {
        left: u64,
        then: Then,
    },
    /// A chunk-size line.
    ChunkSize,
    /// `n` more bytes of chunk data.
    ChunkData(u64),
    /// The CRLF after chunk data: `0` before CR, `1` before LF.
    ChunkEnd(u8),
    /// Trailer lines after the last chunk, then the empty line.
    Trailers,
    /// An upgrade request was read: the answer decides what follows.
    Deciding {
        connect: bool,
    },
    /// Not HTTP/1 any more: bytes pass unread.
    Opaque,
    Refused(Violation),
}

/// What follows a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    NextRequest,
    Decide { connect: bool },
}

impl Then {
    fn state(self) -> State {
        match self {
            Then::NextRequest => State::Head(Head::default()),
            Then::Decide { connect } => State::Deciding { connect },
        }
    }
}

/// What a request's head has said so far.
#[derive(Debug, Clone, Copy, Default)]
struct Head {
    /// The request line was read.
    line: bool,
    http10: bool,
    connect: bool,
    upgrade: bool,
    lengths: u8,
    length: u64,
    encodings: u8,
    chunked: bool,
}

/// The longest line taken (Pingora's own head limit is larger, the gateway's
/// `max_request_header_bytes` smaller).
const MAX_LINE: usize = 64 * 1024;

/// The longest chunk extension taken (Pingora ignores extensions).
const MAX_CHUNK_EXT: usize = 4096;

impl Default for Guard {
    fn default() -> Self {
        Guard::new()
    }
}

impl Guard {
    pub fn new() -> Guard {
        Guard {
            state: State::Head(Head::default()),
            started: None,
            partial: Vec::new(),
        }
    }

    /// Waiting for the answer to an upgrade request.
    pub(crate) fn deciding(&self) -> bool {
        matches!(self.state, State::Deciding { .. })
    }

    /// The violation a request was refused for, if one was.
    pub fn refused(&self) -> Option<Violation> {
        match self.state {
            State::Refused(v) => Some(v),
            _ => None,
        }
    }

    /// The server writes `bytes`. The first write after an upgrade request is its
    /// answer's status line (Pingora writes a response head in one piece): `101`,
    /// or `2xx` to a CONNECT, leaves HTTP/1; any other final status goes on with
    /// the next request.
    pub fn wrote(&mut self, bytes: &[u8]) {
        let State::Deciding { connect } = self.state else {
            return;
        };
        let status = bytes
            .get(9..12)
            .filter(|_| bytes.starts_with(b"HTTP/1."))
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok());
        self.state = match status {
            Some(200..=299) if connect => State::Opaque,
            Some(200..=599) => State::Head(Head::default()),
            // 101, an interim answer, or none readable: the rest is left to Pingora.
            _ => State::Opaque,
        };
    }

    /// Reads the next bytes from the client.
    pub fn read(&mut self, bytes: &[u8]) -> Scan {
        self.started = None;
        let mut i = 0;
        while i < bytes.len() {
            let step = match &mut self.state {
                State::Opaque => return Scan::Pass,
                State::Refused(violation) => {
                    return Scan::Refuse {
                        cut: Some(i),
                        violation: *violation,
                    }
                }
                State::Deciding { .. } => return Scan::Hold { at: i },
                State::Body { left, then } => {
                    let take = (*left).min((bytes.len() - i) as u64);
                    *left -= take;
                    i += take as usize;
                    Ok((*left == 0).then(|| then.state()))
                }
                State::ChunkData(left) => {
                    let take = (*left).min((bytes.len() - i) as u64);
                    *left -= take;
                    i += take as usize;
                    Ok((*left == 0).then_some(State::ChunkEnd(0)))
                }
                State::ChunkEnd(k) => {
                    let want = if *k == 0 { b'\r' } else { b'\n' };
                    let b = bytes[i];
                    i += 1;
                    match (b == want, *k) {
                        (false, _) => Err(Violation::ChunkEnd),
                        (true, 0) => Ok(Some(State::ChunkEnd(1))),
                        (true, _) => Ok(Some(State::ChunkSize)),
                    }
                }
                State::Head(h) => {
                    if !h.line && self.started.is_none() && self.partial.is_empty() {
                        self.started = Some(i);
                    }
                    self.line(bytes, &mut i)
                }
                State::ChunkSize | State::Trailers => self.line(bytes, &mut i),
            };
            match step {
                Ok(None) => {}
                Ok(Some(next)) => {
                    if matches!(next, State::Head(_) | State::Deciding { .. }) {
                        // The request is done; the next one has not begun.
                        self.started = None;
                    }
                    self.state = next;
                }
                Err(violation) => {
                    // A head not wholly passed on yet is cut where it began in
                    // these bytes (or at their start, when it began earlier).
                    let cut = match self.state {
                        State::Head(_) => Some(self.started.unwrap_or(0)),
                        _ => self.started,
                    };
                    self.state = State::Refused(violation);
                    self.partial = Vec::new();
                    return Scan::Refuse { cut, violation };
                }
            }
        }
        Scan::Pass
    }

    /// Takes the next line from `bytes[*i..]` (with any part kept from earlier
    /// reads) and reads it in the current state; the state that follows, if it
    /// changes.
    fn line(&mut self, bytes: &[u8], i: &mut usize) -> Result<Option<State>, Violation> {
        let rest = &bytes[*i..];
        // A CR that ended the previous read must be followed by this read's LF.
        if self.partial.last() == Some(&b'\r') {
            if rest[0] != b'\n' {
                return Err(Violation::LineEnding);
            }
            *i += 1;
            let mut kept = std::mem::take(&mut self.partial);
            kept.pop();
            return self.take_line(&kept);
        }
        // The line ends at its first CR, which must be followed by LF; a LF
        // alone is no line end.
        let end = memchr::memchr2(b'\r', b'\n', rest);
        let complete = match end {
            Some(e) if rest[e] == b'\n' => return Err(Violation::LineEnding),
            Some(e) => match rest.get(e + 1) {
                Some(b'\n') => Some(e),
                Some(_) => return Err(Violation::LineEnding),
                None => None,
            },
            None => None,
        };
        let Some(e) = complete else {
            // Cut by the end of the read (perhaps just after its CR): kept.
            if self.partial.len() + rest.len() > MAX_LINE {
                return Err(self.too_long());
            }
            self.partial.extend_from_slice(rest);
            *i = bytes.len();
            return Ok(None);
        };
        *i += e + 2;
        if self.partial.is_empty() {
            return self.take_line(&rest[..e]);
        }
        if self.partial.len() + e > MAX_LINE {
            return Err(self.too_long());
        }
        let mut kept = std::mem::take(&mut self.partial);
        kept.extend_from_slice(&rest[..e]);
        self.take_line(&kept)
    }

    /// Reads one whole line, without its CRLF, in the current state.
    fn take_line(&mut self, line: &[u8]) -> Result<Option<State>, Violation> {
        match &mut self.state {
            State::Head(h) if !h.line => {
                if !line.is_empty() {
                    h.request_line(line)?;
                }
                Ok(None)
            }
            State::Head(h) if line.is_empty() => h.framing().map(Some),
            State::Head(h) => {
                let (name, value) = field(line)?;
                h.field(name, value)?;
                Ok(None)
            }
            State::Trailers if line.is_empty() => Ok(Some(State::Head(Head::default()))),
            State::Trailers => field(line).map(|_| None),
            _ => chunk_size(line).map(|size| {
                Some(match size {
                    0 => State::Trailers,
                    n => State::ChunkData(n),
                })
            }),
        }
    }

    fn too_long(&self) -> Violation {
        match self.state {
            State::Head(Head { line: false, .. }) => Violation::RequestLine,
            State::Head(_) | State::Trailers => Violation::HeaderLine,
            _ => Violation::ChunkLine,
        }
    }
}

impl Head {
    /// `METHOD SP target SP HTTP/1.0|1.1`, exactly.
    fn request_line(&mut self, line: &[u8]) -> Result<(), Violation> {
        let bad = Violation::RequestLine;
        let sp = memchr::memchr(b' ', line).ok_or(bad)?;
        let (method, rest) = (&line[..sp], &line[sp + 1..]);
        let sp = memchr::memchr(b' ', rest).ok_or(bad)?;
        let (target, version) = (&rest[..sp], &rest[sp + 1..]);
        if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
            return Err(bad);
        }
        // The target ends at the first space: another one, or a control byte, is
        // a target with spaces or no request line.
        if target.is_empty() || target.iter().any(|&b| b < b' ' || b == 0x7f) {
            return Err(bad);
        }
        self.http10 = match version {
            b"HTTP/1.1" => false,
            b"HTTP/1.0" => true,
            _ => return Err(bad),
        };
        self.connect = method == b"CONNECT";
        self.line = true;
        Ok(())
    }

    /// A header field: the three that frame a request are read.
    fn field(&mut self, name: &[u8], value: &[u8]) -> Result<(), Violation> {
        if name.eq_ignore_ascii_case(b"content-length") {
            self.lengths = self.lengths.saturating_add(1);
            let digits =
                !value.is_empty() && value.len() <= 18 && value.iter().all(|b| b.is_ascii_digit());
            if !digits {
                return Err(Violation::ContentLength);
            }
            self.length = value.iter().fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.encodings = self.encodings.saturating_add(1);
            self.chunked = value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.upgrade = true;
        }
        Ok(())
    }

    /// The body framing, once the head is read: the state that follows.
    fn framing(&self) -> Result<State, Violation> {
        if self.lengths > 1 {
            return Err(Violation::ContentLength);
        }
        if self.encodings > 0 {
            if self.lengths > 0 {
                return Err(Violation::LengthAndChunked);
            }
            if self.encodings > 1 || !self.chunked || self.http10 {
                return Err(Violation::TransferEncoding);
            }
            return Ok(State::ChunkSize);
        }
        let then = if self.upgrade || self.connect {
            Then::Decide {
                connect: self.connect,
            }
        } else {
            Then::NextRequest
        };
        Ok(match self.length {
            0 => then.state(),
            left => State::Body { left, then },
        })
    }
}

/// A field line's name and value (without the spaces around it). Only what
/// frames a request is judged here: a name that is not a token, or a control
/// byte in a value, Pingora's parser refuses with 400 before anything is
/// proxied. A line that starts with a space continues the previous one
/// (obs-fold): refused, as RFC 9112 5.2 allows.
fn field(line: &[u8]) -> Result<(&[u8], &[u8]), Violation> {
    let bad = Violation::HeaderLine;
    let colon = memchr::memchr(b':', line).ok_or(bad)?;
    let name = &line[..colon];
    if name.is_empty() || matches!(name[0], b' ' | b'\t') {
        return Err(bad);
    }
    let value = &line[colon + 1..];
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |e| e + 1);
    Ok((name, &value[start..end]))
}

/// A chunk-size line: 1 to 16 hex digits, then nothing or `;` and an extension
/// of visible characters, spaces and tabs.
fn chunk_size(line: &[u8]) -> Result<u64, Violation> {
    let bad = Violation::ChunkLine;
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits == 0 || digits > 16 {
        return Err(bad);
    }
    let ext = &line[digits..];
    let clean = |e: &[u8]| {
        e.len() <= MAX_CHUNK_EXT && e.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    };
    match ext.split_first() {
        None => {}
        Some((b';', e)) if clean(e) => {}
        _ => return Err(bad),
    }
    Ok(line[..digits]
        .iter()
        .fold(0u64, |n, &b| (n << 4) | u64::from(hex(b))))
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// RFC 9110 `tchar`: the bytes of a method or a header name.
fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

const TCHAR: [bool; 256] = super::byte_set(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~",
);

#[cfg(test)]
mod tests;
