//! Abuse of the `/metrics` endpoint: malformed requests, a 64 KiB header, 100 concurrent
//! scrapes, clients that stop reading, one that never sends. The server stays up, its
//! threads stay bounded, and a writer recording throughout stays exact. Alone in its test
//! binary, so the thread count it checks is not moved by other tests' engines.
// The endpoint's tests: nothing to run without it.
#![cfg(feature = "http")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::parse::parse;
use common::{exchange, get, local};
use hotmeter::{Engine, Format, ServeConfig};

/// `GET /metrics`, reading the reply to its end through a small buffer: its status.
fn streamed_status(addr: SocketAddr) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut status = None;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if status.is_none() {
            let head = String::from_utf8_lossy(&buf[..n.min(32)]).to_string();
            status = head.split(' ').nth(1).and_then(|c| c.parse().ok());
        }
    }
    status.ok_or_else(|| std::io::Error::other("no status line"))
}

/// Peak resident memory of this process so far, KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

#[test]
fn abuse_leaves_the_server_up_bounded_and_writers_exact() {
    let engine = Arc::new(Engine::builder().build().unwrap());
    let r = engine.registry();
    // ~10k series, a multi-megabyte body: more than the socket buffers hold, so a client
    // that stops reading really blocks the write.
    for i in 0..10 {
        let name = format!("load_{i}_total");
        for j in 0..1000 {
            r.counter(&name, &[("series", &format!("{j:04}-padding-padding"))])
                .unwrap()
                .inc();
        }
    }
    let config = ServeConfig {
        max_concurrent_scrapes: 2,
        max_connections: 32,
        header_timeout: Duration::from_secs(1),
        exchange_timeout: Duration::from_secs(2),
        token: None,
        shutdown_grace: Duration::from_secs(1),
    };
    let addr = engine.serve_with(local(), config).unwrap();
    // One scrape first, so the peak below counts the abuse, not the first rendering.
    let body_len = get(addr, "/metrics", &[]).body.len();
    let threads_before = threads();
    let peak_before = peak_rss_kib();

    // A writer records throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
        std::thread::spawn(move || {
            let c = engine.registry().counter("writes_total", &[]).unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) || n < 100_000 {
                c.inc();
                n += 1;
                if n >= 50_000_000 {
                    break;
                }
            }
            n
        })
    };

    // Malformed requests.
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"\x00\x01\x02\xff\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nBad Header Line\r\n\r\n",
    ] {
        let r = exchange(addr, raw);
        if let Ok(r) = r {
            assert!(r.status >= 400, "status {}", r.status);
        }
    }
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    if let Ok(r) = exchange(addr, huge.as_bytes()) {
        assert!(r.status >= 400);
    }

    // Clients that stop reading (after the request) and one that never sends.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        stalled.push(s);
    }
    let silent = TcpStream::connect(addr).unwrap();
    // Past the exchange deadline while nobody reads the stalled streams.
    std::thread::sleep(Duration::from_secs(3));

    // 100 concurrent scrapes: each gets 200, 503, or (past the connection limit) a close.
    // Each client reads its reply through a 64 KiB buffer and keeps only the status, so the
    // memory check below measures the server, not 100 buffered bodies.
    let scrapers: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(move || streamed_status(addr).unwrap_or(0)))
        .collect();
    let statuses: Vec<u16> = scrapers.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| [0, 200, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");

    // The silent client is cut off by the header timeout, the stalled ones by the deadline.
    let mut silent = silent;
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = silent.read(&mut buf).unwrap_or(0);
    assert!(
        n == 0 || buf.starts_with(b"HTTP/1.1 408"),
        "silent client got {n} bytes"
    );
    for mut s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let t = Instant::now();
        let mut total = 0;
        let mut chunk = vec![0u8; 1 << 16];
        // Drain what was sent before the cut; the stream must end (EOF or reset), not hang.
        loop {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "stalled stream never ended"
            );
        }
        let _ = total;
    }

    // Still serving, with a bounded number of threads.
    let ok = get(addr, "/metrics", &[]);
    assert_eq!(ok.status, 200);
    parse(&ok.text(), Format::Text).unwrap();
    assert!(
        threads() <= threads_before + 3,
        "threads grew from {threads_before} to {}",
        threads()
    );

    // Memory stayed bounded: at most 2 scrapes hold a rendered body (plus one snapshot being
    // built), not one per open connection: 32 connections each holding a body would add
    // ~15 MiB on top. The 100 client threads add their stacks and 64 KiB buffers (~7 MiB).
    // Measured here: ~11 MiB of growth in three runs.
    let grown = peak_rss_kib().saturating_sub(peak_before);
    let bound = 16 * 1024 + 12 * body_len as u64 / 1024;
    eprintln!(
        "peak RSS grew {grown} KiB during the abuse (body {body_len} bytes, bound {bound} KiB)"
    );
    assert!(
        grown < bound,
        "peak RSS grew {grown} KiB, bound {bound} KiB"
    );

    stop.store(true, Ordering::Relaxed);
    let n = writer.join().unwrap();
    let snap = engine.registry().snapshot();
    assert_eq!(snap.counter("writes_total", &[]), Some(n));
}
