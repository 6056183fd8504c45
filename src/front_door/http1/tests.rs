//! The strict HTTP/1 read, byte by byte: what passes and what poisons the connection.

use super::*;

/// Reads `bytes` in one piece, then byte by byte in a fresh guard: both must agree.
fn scan(bytes: &[u8]) -> Scan {
    let whole = Guard::new().read(bytes);
    let mut g = Guard::new();
    let mut bytewise = Scan::Pass;
    for (k, b) in bytes.iter().enumerate() {
        match g.read(std::slice::from_ref(b)) {
            Scan::Pass => {}
            Scan::Hold { .. } => {
                bytewise = Scan::Hold { at: k };
                break;
            }
            Scan::Refuse { cut, violation } => {
                // Offsets are per read: byte k's read has offset 0.
                bytewise = Scan::Refuse {
                    cut: cut.map(|_| usize::MAX),
                    violation,
                };
                break;
            }
        }
    }
    match (whole, bytewise) {
        (Scan::Refuse { violation: a, .. }, Scan::Refuse { violation: b, .. }) => {
            assert_eq!(a, b, "{:?}", String::from_utf8_lossy(bytes))
        }
        (Scan::Pass, Scan::Pass) | (Scan::Hold { .. }, Scan::Hold { .. }) => {}
        (a, b) => panic!(
            "whole {a:?} but byte by byte {b:?}: {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
    whole
}

fn refused(bytes: &str) -> Violation {
    match scan(bytes.as_bytes()) {
        Scan::Refuse { violation, .. } => violation,
        other => panic!("{bytes:?} was not refused: {other:?}"),
    }
}

#[test]
fn well_framed_requests_pass() {
    for r in [
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\nGET / HTTP/1.0\r\n\r\n",
        "GET /a?b=c%20d HTTP/1.1\r\nHost: a\r\nCookie: x=1; y=2\r\nX-Empty:\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "POST /p HTTP/1.1\r\nHost: a\r\ncontent-length:  3 \r\n\r\nabc",
        "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\nA;name=val\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n",
        // Pipelined.
        "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nokGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /u HTTP/1.1\r\nHost: a\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) 中\r\n\r\n",
        // Left to Pingora, which refuses them itself: a name that is not a
        // token, a control byte in a value.
        "GET /a HTTP/1.1\r\nHost : a\r\nX: a\x00b\r\n\r\n",
    ] {
        assert_eq!(scan(r.as_bytes()), Scan::Pass, "{r:?}");
    }
}

#[test]
fn ambiguous_framing_is_refused() {
    use Violation::*;
    for (r, want) in [
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            LengthAndChunked,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            LengthAndChunked,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            TransferEncoding,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            TransferEncoding,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            TransferEncoding,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunk\r\n\r\n",
            TransferEncoding,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
            TransferEncoding,
        ),
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            TransferEncoding,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            ContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            ContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            ContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n",
            ContentLength,
        ),
        ("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", ContentLength),
        (
            "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
            ContentLength,
        ),
        ("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", RequestLine),
        ("GET /a HTTP/1.1 x\r\nHost: a\r\n\r\n", RequestLine),
        ("GET  /a HTTP/1.1\r\nHost: a\r\n\r\n", RequestLine),
        ("GET /a\tb HTTP/1.1\r\n\r\n", RequestLine),
        ("GET /a\x00 HTTP/1.1\r\n\r\n", RequestLine),
        ("GET /a HTTP/2.0\r\n\r\n", RequestLine),
        ("GET /a\r\n\r\n", RequestLine),
        ("G\x01T /a HTTP/1.1\r\n\r\n", RequestLine),
        ("GET /a HTTP/1.1\nHost: a\r\n\r\n", LineEnding),
        ("GET /a HTTP/1.1\r\nHost: a\n\r\n", LineEnding),
        ("GET /a HTTP/1.1\r\nHost: a\r\n\n", LineEnding),
        ("GET /a HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", LineEnding),
        ("GET /a HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", HeaderLine),
        ("GET /a HTTP/1.1\r\n: a\r\n\r\n", HeaderLine),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x00b\r\nhello\r\n0\r\n\r\n",
            ChunkLine,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n",
            LineEnding,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n",
            ChunkLine,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            ChunkLine,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n",
            ChunkLine,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
            ChunkLine,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n",
            LineEnding,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n",
            ChunkEnd,
        ),
    ] {
        assert_eq!(refused(r), want, "{r:?}");
    }
}

#[test]
fn a_refusal_cuts_where_the_server_has_not_had_the_head() {
    let good = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
    let bad = "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n";
    // After a good request in the same read: cut where the bad one begins.
    let r = Guard::new().read(format!("{good}{bad}").as_bytes());
    assert_eq!(
        r,
        Scan::Refuse {
            cut: Some(good.len()),
            violation: Violation::RequestLine
        }
    );
    // A bad chunk in the read that has its head: the head is cut too.
    let chunked =
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;\x00\r\nhello\r\n";
    let r = Guard::new().read(format!("{good}{chunked}").as_bytes());
    assert!(
        matches!(r, Scan::Refuse { cut: Some(n), .. } if n == good.len()),
        "{r:?}"
    );
    // A head split over two reads: the server has its start, not its end.
    let mut g = Guard::new();
    assert_eq!(g.read(b"GET /a HTTP/1.1\r\nHo"), Scan::Pass);
    assert!(matches!(
        g.read(b"st: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        Scan::Refuse {
            cut: Some(0),
            violation: Violation::ContentLength
        }
    ));
    // A bad chunk after the head was passed on: no clean cut.
    let mut g = Guard::new();
    assert_eq!(
        g.read(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"),
        Scan::Pass
    );
    assert_eq!(
        g.read(b"lo\r\n3;\x00\r\n"),
        Scan::Refuse {
            cut: None,
            violation: Violation::ChunkLine
        }
    );
    assert_eq!(g.refused(), Some(Violation::ChunkLine));
}

#[test]
fn the_answer_to_an_upgrade_request_decides() {
    let upgrade =
        "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    // Bytes after it wait for the answer.
    let mut g = Guard::new();
    let after = b"\x81\x05hello";
    let bytes = [upgrade.as_bytes(), after].concat();
    assert_eq!(g.read(&bytes), Scan::Hold { at: upgrade.len() });
    assert!(g.deciding());
    g.wrote(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    assert_eq!(g.read(after), Scan::Pass);
    assert_eq!(
        g.read(b"GET /a b c\x00 \n"),
        Scan::Pass,
        "not HTTP/1 any more"
    );

    // Refused upgrade: requests go on, and are read strictly again.
    let mut g = Guard::new();
    assert_eq!(g.read(upgrade.as_bytes()), Scan::Pass);
    g.wrote(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n");
    assert!(!g.deciding());
    assert_eq!(g.read(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n"), Scan::Pass);
    assert!(matches!(
        g.read(b"GET /a b HTTP/1.1\r\n"),
        Scan::Refuse { .. }
    ));

    // CONNECT: a 2xx leaves HTTP/1, Pingora's 405 does not.
    let mut g = Guard::new();
    assert_eq!(
        g.read(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
        Scan::Pass
    );
    g.wrote(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n");
    assert!(!g.deciding());
    let mut g = Guard::new();
    assert_eq!(g.read(b"CONNECTX / HTTP/1.1\r\n\r\n"), Scan::Pass);
    assert!(!g.deciding(), "only CONNECT itself");
    // An upgrade request with a body: the body first.
    let mut g = Guard::new();
    let request = "POST /ws HTTP/1.1\r\nUpgrade: x\r\nContent-Length: 3\r\n\r\nabc";
    assert_eq!(
        g.read(format!("{request}Z").as_bytes()),
        Scan::Hold { at: request.len() }
    );
}
