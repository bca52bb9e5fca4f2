//! Helpers shared by the export tests: a minimal HTTP/1.1 client on a raw socket (so the
//! tests can also send what a real client never would) and the external-tool policy.
#![allow(dead_code)]

pub mod parse;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Uses up the part of the cell space `filler` takes its cells from (the global registry's
/// half, or the half every other registry shares): the widest histograms (508 cells, one
/// per 512-cell chunk) until registration fails with `CellSpaceExhausted` (a clean error,
/// not a panic), then the last single cells of the last chunk.
pub fn exhaust_cell_space(filler: &hotmeter::Registry) {
    let wide = hotmeter::HistogramConfig::range(1e-9, 1e9).unwrap();
    let values: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    let mut exhausted = false;
    'fill: for f in 0..1000 {
        let name = format!("wide{f}");
        for v in &values {
            match filler.histogram_with(&name, &[("v", v)], &wide) {
                Ok(_) => {}
                Err(hotmeter::Error::CellSpaceExhausted) => {
                    exhausted = true;
                    break 'fill;
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }
    assert!(exhausted, "the cell space has a limit");
    let mut last = 0;
    while filler
        .counter("last_cells_total", &[("v", &last.to_string())])
        .is_ok()
    {
        last += 1;
        assert!(last < 512, "at most one chunk's cells remain");
    }
}

/// Resident set size of this process in KiB (4 KiB pages, `/proc/self/statm`); 0 where
/// there is no `/proc`.
pub fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4
}

/// Loopback, any free port.
pub fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
}

/// Sends `raw` and reads the whole reply (the server closes after one exchange).
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(raw)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {} bytes", buf.len())))?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: buf[split + 4..].to_vec(),
    })
}

/// `GET path` with extra headers.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    exchange(addr, req.as_bytes()).expect("exchange")
}

pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Whether external tool `bin` can run. When it cannot: CI (`HOTMETER_REQUIRE_TOOLS=1`, set
/// by `.ci/run`, which installs them) fails; elsewhere the caller skips, loudly.
pub fn tool_available(bin: &str) -> bool {
    let found = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        if std::env::var("HOTMETER_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("`{bin}` is required (HOTMETER_REQUIRE_TOOLS=1) but cannot be run");
        }
        // Straight to the process's stderr: `eprintln!` goes through the test harness's
        // capture, so the banner showed only under `--nocapture` (or a failure).
        let _ = writeln!(
            std::io::stderr().lock(),
            "\n!!!!! SKIPPED: `{bin}` is not installed; this test did NOT run. `.ci/run` installs it. !!!!!\n"
        );
    }
    found
}
