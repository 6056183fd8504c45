//! HTTP/1 framing, read the strict way from the bytes a client sends, before
//! Pingora parses them. Pingora is lenient where a proxy in front of legacy apps
//! should not be: it takes `Transfer-Encoding` over a `Content-Length` sent with
//! it, accepts several `Transfer-Encoding` lines, percent-encodes a space in the
//! request target instead of refusing it, and ignores any byte, NUL and bare LF
//! included, in a chunk extension. None of that desynchronises Pingora itself,
//! but an app may read such a request differently, so the gateway refuses it.
//!
//! `Guard` follows a connection's requests byte by byte: the request line, the
//! header lines (tracking `Content-Length`, `Transfer-Encoding` and `Upgrade`),
//! the body by its length or its chunks, and the trailers. It keeps no buffer,
//! so a slow client costs it nothing. After a request that asks for an upgrade
//! (or a CONNECT), the server's answer decides: a `101` (or a `2xx` to CONNECT)
//! leaves HTTP/1 for good, anything else goes on reading requests.

/// What a request did wrong; each is refused with 400 and the connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// Not `METHOD SP target SP HTTP/1.0|1.1 CRLF`: a space or control byte in
    /// the target, another version.
    RequestLine,
    /// A header line that is not `name: value`: a bad name, a line folded onto
    /// the previous one, a control byte in the value.
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
pub const POISON: &[u8] = b"\x01\r\n\r\n";

/// The framing state of one connection.
#[derive(Debug)]
pub struct Guard {
    state: State,
    /// Where, in the bytes being read, the request now read began: the server
    /// has not seen its head yet, so a refusal can still be a clean 400.
    started: Option<usize>,
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
    Chunks(Chunk),
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
    at: HeadAt,
    method_len: u8,
    http10: bool,
    connect: bool,
    upgrade: bool,
    lengths: u8,
    length: u64,
    encodings: u8,
    chunked: bool,
    /// The header line being read.
    line: Line,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum HeadAt {
    /// Before the request line; empty lines (CRLF) may come first.
    #[default]
    Start,
    StartLf,
    Method,
    /// The target; `len` bytes so far.
    Target {
        len: u32,
    },
    /// `i` bytes of `HTTP/1.` matched.
    Version {
        i: u8,
    },
    /// The minor version digit.
    Minor,
    RequestLineCr,
    RequestLineLf,
    /// The header lines.
    Fields,
}

/// Header names the guard reads the values of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    ContentLength,
    TransferEncoding,
    Upgrade,
    Other,
}

const NAMES: [(&[u8], Name); 3] = [
    (b"content-length", Name::ContentLength),
    (b"transfer-encoding", Name::TransferEncoding),
    (b"upgrade", Name::Upgrade),
];

/// One header (or trailer) line.
#[derive(Debug, Clone, Copy, Default)]
struct Line {
    at: LineAt,
    /// Bytes of the name so far, and which of `NAMES` still match (bits).
    name_len: u8,
    candidates: u8,
    name: Option<Name>,
    /// The value so far: for `Content-Length` its number and digit count, for
    /// `Transfer-Encoding` how much of `chunked` matched; `other` when anything
    /// else came, `space` after a space (data, if more follows).
    number: u64,
    digits: u8,
    matched: u8,
    other: bool,
    space: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum LineAt {
    /// The first byte of a line: a name, or CR of the empty line.
    #[default]
    Start,
    Name,
    /// Spaces between `:` and the value.
    BeforeValue,
    Value,
    /// CR read at the end of a field line.
    Lf,
    /// CR read on the empty line.
    EndLf,
}

/// What a line's bytes came to.
enum LineDone {
    More,
    Field(Name, Line),
    End,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size {
        digits: u8,
        size: u64,
    },
    /// After `;`: `len` bytes of extension.
    Ext {
        len: u16,
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines, then the empty line.
    Trailers(Line),
}

/// The longest chunk extension taken (Pingora ignores extensions, and so can cap them).
const MAX_CHUNK_EXT: u16 = 4096;

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
        }
    }

    /// Waiting for the answer to an upgrade request.
    pub fn deciding(&self) -> bool {
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
                State::Head(h) => h.step(bytes, &mut i, &mut self.started),
                State::Chunks(c) => c.step(bytes, &mut i),
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
                    return Scan::Refuse { cut, violation };
                }
            }
        }
        Scan::Pass
    }
}

impl Head {
    /// Reads head bytes from `bytes[*i..]`; the state that follows once the head is
    /// done. `started` is set to where the request line begins.
    fn step(
        &mut self,
        bytes: &[u8],
        i: &mut usize,
        started: &mut Option<usize>,
    ) -> Result<Option<State>, Violation> {
        while *i < bytes.len() {
            let b = bytes[*i];
            match self.at {
                HeadAt::Start => match b {
                    b'\r' => self.at = HeadAt::StartLf,
                    _ if is_tchar(b) => {
                        *started = Some(*i);
                        self.connect = b == b'C';
                        self.method_len = 1;
                        self.at = HeadAt::Method;
                    }
                    b'\n' => return Err(Violation::LineEnding),
                    _ => return Err(Violation::RequestLine),
                },
                HeadAt::StartLf => match b {
                    b'\n' => self.at = HeadAt::Start,
                    _ => return Err(Violation::LineEnding),
                },
                HeadAt::Method => match b {
                    b' ' => {
                        self.connect &= usize::from(self.method_len) == b"CONNECT".len();
                        self.at = HeadAt::Target { len: 0 };
                    }
                    _ if is_tchar(b) => {
                        self.connect &= b"CONNECT".get(usize::from(self.method_len)) == Some(&b);
                        self.method_len = self.method_len.saturating_add(1);
                    }
                    _ => return Err(Violation::RequestLine),
                },
                HeadAt::Target { len } => {
                    // The target's bytes, fast: anything but controls and space.
                    let rest = &bytes[*i..];
                    let n = rest
                        .iter()
                        .position(|&c| c <= b' ' || c == 0x7f)
                        .unwrap_or(rest.len());
                    *i += n;
                    let len = len.saturating_add(n as u32);
                    self.at = HeadAt::Target { len };
                    match bytes.get(*i) {
                        None => return Ok(None),
                        Some(b' ') if len > 0 => self.at = HeadAt::Version { i: 0 },
                        Some(_) => return Err(Violation::RequestLine),
                    }
                }
                HeadAt::Version { i: k } => {
                    if b"HTTP/1.".get(usize::from(k)) != Some(&b) {
                        return Err(Violation::RequestLine);
                    }
                    self.at = if usize::from(k) + 1 == b"HTTP/1.".len() {
                        HeadAt::Minor
                    } else {
                        HeadAt::Version { i: k + 1 }
                    };
                }
                HeadAt::Minor => match b {
                    b'0' | b'1' => {
                        self.http10 = b == b'0';
                        self.at = HeadAt::RequestLineCr;
                    }
                    _ => return Err(Violation::RequestLine),
                },
                HeadAt::RequestLineCr => match b {
                    b'\r' => self.at = HeadAt::RequestLineLf,
                    b'\n' => return Err(Violation::LineEnding),
                    // A space after the version: the target had one in it.
                    _ => return Err(Violation::RequestLine),
                },
                HeadAt::RequestLineLf => match b {
                    b'\n' => {
                        self.line = Line::default();
                        self.at = HeadAt::Fields;
                    }
                    _ => return Err(Violation::LineEnding),
                },
                HeadAt::Fields => match self.line.step(bytes, i, true)? {
                    LineDone::More => return Ok(None),
                    LineDone::Field(name, line) => {
                        self.take(name, &line)?;
                        continue;
                    }
                    LineDone::End => return self.framing().map(Some),
                },
            }
            *i += 1;
        }
        Ok(None)
    }

    /// A finished field line's value.
    fn take(&mut self, name: Name, line: &Line) -> Result<(), Violation> {
        match name {
            Name::ContentLength => {
                self.lengths = self.lengths.saturating_add(1);
                if line.other || line.digits == 0 || line.digits > 18 {
                    return Err(Violation::ContentLength);
                }
                self.length = line.number;
            }
            Name::TransferEncoding => {
                self.encodings = self.encodings.saturating_add(1);
                self.chunked = !line.other && usize::from(line.matched) == b"chunked".len();
            }
            Name::Upgrade => self.upgrade = true,
            Name::Other => {}
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
            return Ok(State::Chunks(Chunk::Size { digits: 0, size: 0 }));
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

impl Line {
    /// Reads one field line from `bytes[*i..]`. `track` reads the values of the
    /// names the guard cares about (heads); trailers only need to be well formed.
    fn step(&mut self, bytes: &[u8], i: &mut usize, track: bool) -> Result<LineDone, Violation> {
        while *i < bytes.len() {
            let b = bytes[*i];
            *i += 1;
            match self.at {
                LineAt::Start => match b {
                    b'\r' => self.at = LineAt::EndLf,
                    _ if is_tchar(b) => {
                        self.at = LineAt::Name;
                        self.candidates = if track { 0b111 } else { 0 };
                        self.match_name(b);
                    }
                    b'\n' => return Err(Violation::LineEnding),
                    // A line that starts with a space continues the previous one
                    // (obs-fold): refused, as RFC 9112 5.2 allows.
                    _ => return Err(Violation::HeaderLine),
                },
                LineAt::Name => match b {
                    b':' => {
                        let n = usize::from(self.name_len);
                        let kind = NAMES
                            .iter()
                            .enumerate()
                            .find(|(k, (name, _))| {
                                self.candidates & (1 << k) != 0 && name.len() == n
                            })
                            .map_or(Name::Other, |(_, (_, kind))| *kind);
                        self.name = Some(kind);
                        self.at = LineAt::BeforeValue;
                    }
                    _ if is_tchar(b) => self.match_name(b),
                    _ => return Err(Violation::HeaderLine),
                },
                LineAt::BeforeValue | LineAt::Value => match b {
                    b' ' | b'\t' => self.space = self.at == LineAt::Value,
                    b'\r' => self.at = LineAt::Lf,
                    b'\n' => return Err(Violation::LineEnding),
                    _ if b < 0x20 || b == 0x7f => return Err(Violation::HeaderLine),
                    _ => {
                        self.at = LineAt::Value;
                        self.value_byte(b, bytes, i);
                    }
                },
                LineAt::Lf => {
                    if b != b'\n' {
                        return Err(Violation::LineEnding);
                    }
                    let done = std::mem::take(self);
                    return Ok(LineDone::Field(done.name.unwrap_or(Name::Other), done));
                }
                LineAt::EndLf => {
                    if b != b'\n' {
                        return Err(Violation::LineEnding);
                    }
                    return Ok(LineDone::End);
                }
            }
        }
        Ok(LineDone::More)
    }

    /// A byte of a value (not a space, CR or control byte).
    fn value_byte(&mut self, b: u8, bytes: &[u8], i: &mut usize) {
        // A space followed by more is inside the value.
        self.other |= std::mem::take(&mut self.space);
        match self.name {
            Some(Name::ContentLength) if b.is_ascii_digit() => {
                self.digits = self.digits.saturating_add(1);
                self.number = self
                    .number
                    .saturating_mul(10)
                    .saturating_add(u64::from(b - b'0'));
            }
            Some(Name::TransferEncoding)
                if b"chunked".get(usize::from(self.matched)) == Some(&b.to_ascii_lowercase()) =>
            {
                self.matched += 1;
            }
            Some(Name::ContentLength | Name::TransferEncoding) => self.other = true,
            _ => {
                // The rest of a value nobody reads, fast, up to the next space
                // or control byte.
                let rest = &bytes[*i..];
                let n = rest
                    .iter()
                    .position(|&c| c <= b' ' || c == 0x7f)
                    .unwrap_or(rest.len());
                *i += n;
            }
        }
    }

    fn match_name(&mut self, b: u8) {
        let n = usize::from(self.name_len);
        let lower = b.to_ascii_lowercase();
        for (k, (name, _)) in NAMES.iter().enumerate() {
            if name.get(n) != Some(&lower) {
                self.candidates &= !(1 << k);
            }
        }
        self.name_len = self.name_len.saturating_add(1);
    }
}

impl Chunk {
    /// Reads chunked body bytes from `bytes[*i..]`; the next request's state once
    /// the body, with its trailers, is done.
    fn step(&mut self, bytes: &[u8], i: &mut usize) -> Result<Option<State>, Violation> {
        while *i < bytes.len() {
            let b = bytes[*i];
            *self = match *self {
                Chunk::Data(left) => {
                    let take = left.min((bytes.len() - *i) as u64);
                    *i += take as usize;
                    *self = match left - take {
                        0 => Chunk::DataCr,
                        left => Chunk::Data(left),
                    };
                    continue;
                }
                Chunk::Trailers(mut line) => match line.step(bytes, i, false)? {
                    LineDone::End => return Ok(Some(State::Head(Head::default()))),
                    LineDone::More => {
                        *self = Chunk::Trailers(line);
                        continue;
                    }
                    LineDone::Field(..) => {
                        *self = Chunk::Trailers(Line::default());
                        continue;
                    }
                },
                Chunk::Size { digits, size } => match b {
                    _ if b.is_ascii_hexdigit() && digits < 16 => Chunk::Size {
                        digits: digits + 1,
                        size: (size << 4) | u64::from(hex(b)),
                    },
                    b';' if digits > 0 => Chunk::Ext { len: 0, size },
                    b'\r' if digits > 0 => Chunk::SizeLf { size },
                    _ => return Err(Violation::ChunkLine),
                },
                Chunk::Ext { len, size } => match b {
                    b'\r' => Chunk::SizeLf { size },
                    b'\t' | b' '..=b'~' if len < MAX_CHUNK_EXT => Chunk::Ext { len: len + 1, size },
                    _ => return Err(Violation::ChunkLine),
                },
                Chunk::SizeLf { size } => match b {
                    b'\n' if size == 0 => Chunk::Trailers(Line::default()),
                    b'\n' => Chunk::Data(size),
                    _ => return Err(Violation::ChunkLine),
                },
                Chunk::DataCr => match b {
                    b'\r' => Chunk::DataLf,
                    _ => return Err(Violation::ChunkEnd),
                },
                Chunk::DataLf => match b {
                    b'\n' => Chunk::Size { digits: 0, size: 0 },
                    _ => return Err(Violation::ChunkEnd),
                },
            };
            *i += 1;
        }
        Ok(None)
    }
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
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests;
