//! The endpoint's request handling, end to end on loopback: a request built from arbitrary
//! parts (method, path, headers, `Accept`, `Accept-Encoding`, a token right, wrong or
//! mangled, raw bytes) is answered with one of the endpoint's statuses or closed, never
//! hangs the endpoint and never panics it. A well-formed authorized `GET /metrics` is
//! answered 200 (or 503 when busy) in the format `Format::from_accept` picks, and gzip only
//! when `Accept-Encoding` names gzip or `*`.
#![no_main]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use hotmeter::{Engine, Format, ServeConfig};
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "fuzz-token-0123";

#[derive(Arbitrary, Debug)]
enum Auth {
    None,
    Right,
    Scheme(String),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    path: String,
    version: u8,
    accept: Option<String>,
    accept_encoding: Option<String>,
    auth: Auth,
    headers: Vec<(String, String)>,
    /// Sent instead of the request when set: arbitrary bytes.
    raw: Option<Vec<u8>>,
}

fn endpoint() -> SocketAddr {
    static ENDPOINT: OnceLock<(Engine, SocketAddr)> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            let engine = Engine::builder().token(TOKEN).build().unwrap();
            engine
                .registry()
                .counter("fuzz_requests_total", &[("path", "a\"b\\c\nd")])
                .unwrap()
                .inc();
            let addr = engine
                .serve_with(
                    "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(),
                    ServeConfig {
                        token: Some(TOKEN.into()),
                        header_timeout: Duration::from_secs(2),
                        exchange_timeout: Duration::from_secs(5),
                        ..ServeConfig::default()
                    },
                )
                .unwrap();
            (engine, addr)
        })
        .1
}

/// A header value as a client could send it (no CR / LF / NUL, visible ASCII, space, tab).
fn clean_value(v: &str) -> bool {
    v.bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        && v.trim() == v
        && v.len() < 2048
}

fn token_name(k: &str) -> bool {
    !k.is_empty() && k.len() < 64 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fuzz_target!(|input: Input| {
    let addr = endpoint();
    let method = [
        "GET", "HEAD", "POST", "DELETE", "OPTIONS", "get", "G\u{0}T", "BREW",
    ][input.method as usize % 8];
    let version = ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x"][input.version as usize % 4];
    let mut req = Vec::new();
    let mut clean = true;
    let path = if input.path.is_empty() {
        "/metrics".to_string()
    } else {
        input.path.clone()
    };
    clean &= path == "/metrics";
    write!(
        req,
        "{method} {path} {version}\r\nHost: x\r\nConnection: close\r\n"
    )
    .unwrap();
    clean &= method == "GET" && version == "HTTP/1.1";
    let mut header = |k: &str, v: &str, clean: &mut bool| {
        *clean &= token_name(k) && clean_value(v);
        write!(req, "{k}: {v}\r\n").unwrap();
    };
    if let Some(a) = &input.accept {
        header("Accept", a, &mut clean);
    }
    if let Some(e) = &input.accept_encoding {
        header("Accept-Encoding", e, &mut clean);
    }
    match &input.auth {
        Auth::None => clean = false,
        Auth::Right => header("Authorization", &format!("Bearer {TOKEN}"), &mut clean),
        Auth::Scheme(s) => {
            header("Authorization", &format!("{s} {TOKEN}"), &mut clean);
            clean &= s.eq_ignore_ascii_case("bearer");
        }
        Auth::Raw(s) => {
            header("Authorization", s, &mut clean);
            clean = false;
        }
    }
    for (k, v) in input.headers.iter().take(16) {
        let lower = k.to_ascii_lowercase();
        if [
            "host",
            "connection",
            "accept",
            "accept-encoding",
            "authorization",
            "content-length",
            "transfer-encoding",
            "expect",
            "upgrade",
        ]
        .contains(&lower.as_str())
        {
            clean = false;
        }
        header(k, v, &mut clean);
    }
    req.extend_from_slice(b"\r\n");
    if let Some(raw) = &input.raw {
        req = raw.clone();
        clean = false;
    }
    clean &= req.len() < 8 * 1024;

    let mut s = TcpStream::connect(addr).expect("the endpoint accepts");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.set_nodelay(true);
    let _ = s.write_all(&req);
    if !clean {
        // An incomplete head would wait out the header timeout: end it here (the endpoint
        // answers what it has, or closes). A well-formed request keeps its connection open
        // for the reply.
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut reply = Vec::new();
    match s.read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the endpoint neither answered nor closed: {e}"),
    }
    if reply.is_empty() {
        // Closed unanswered: only for requests that are not well formed (a raw request
        // still incomplete when the endpoint gave up on it).
        assert!(!clean, "a well-formed request was closed unanswered");
        return;
    }
    let text = String::from_utf8_lossy(&reply);
    let head = text.split("\r\n\r\n").next().unwrap();
    let status: u16 = head
        .strip_prefix("HTTP/1.1 ")
        // hyper answers an HTTP/1.0 request in kind.
        .or_else(|| head.strip_prefix("HTTP/1.0 "))
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.x status line: {head:?}"));
    assert!(
        [
            200, 400, 401, 404, 405, 408, 413, 414, 431, 500, 501, 503, 505
        ]
        .contains(&status),
        "unexpected status {status}: {head}"
    );
    if clean {
        assert!(
            status == 200 || status == 503,
            "well formed, got {status}: {head}"
        );
    }
    if status == 200 {
        let header = |name: &str| {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        };
        if clean {
            let want = Format::from_accept(input.accept.as_deref()).content_type();
            assert_eq!(header("content-type").as_deref(), Some(want), "{head}");
        }
        if header("content-encoding").is_some() {
            let ae = input
                .accept_encoding
                .as_deref()
                .unwrap_or("")
                .to_ascii_lowercase();
            assert!(
                ae.contains("gzip") || ae.contains('*'),
                "gzip unasked: {head}"
            );
        }
    }
});
