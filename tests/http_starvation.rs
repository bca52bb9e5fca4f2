//! Issue 9, defect 5: connections that never finish their request cannot starve scrapes.
//! 1,000 hostile connections (half idle, half slowloris at 1 byte/s per connection) are held
//! open against an endpoint with the default limits (64 connections), reconnecting whenever
//! the endpoint closes one, while a scraper asks once a second for 20 s; at least 99% of the
//! scrapes (here: all 20) must be answered 200 within 1 s. Before the fix the hostile
//! connections held every slot and nearly every scrape was refused.
//!
//! Loopback only; bounded in count (1,000 sockets, 20 scrapes) and time (~25 s). The 1 s
//! bound is the criterion and a correctness bound: an answered scrape of this small
//! registry takes milliseconds.
// The endpoint's tests: nothing to run without it.
#![cfg(feature = "http")]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hotmeter::Engine;

const HOSTILE: usize = 1000;
const SCRAPES: usize = 20;
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// Raises the soft fd limit to what the test needs (1,000 client sockets, their server
/// ends, and the rest of the process), up to the hard limit.
fn raise_fd_limit(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur >= need as libc::rlim_t {
        return;
    }
    lim.rlim_cur = lim.rlim_max.min(need as libc::rlim_t);
    // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one is allowed.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}

struct Hostile {
    stream: Option<TcpStream>,
    slowloris: bool,
    sent: usize,
    last_write: Instant,
}

/// Holds `HOSTILE` connections open until `stop`: idle ones send nothing, slowloris ones a
/// byte of an endless header each second; a connection the endpoint closes is reopened.
/// Returns the number of reconnections.
fn hostile(addr: SocketAddr, stop: Arc<AtomicBool>, up: Arc<AtomicU64>) -> u64 {
    const HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut conns: Vec<Hostile> = (0..HOSTILE)
        .map(|i| Hostile {
            stream: None,
            slowloris: i % 2 == 1,
            sent: 0,
            last_write: Instant::now(),
        })
        .collect();
    let mut reconnects = 0u64;
    let mut first_round = true;
    let mut buf = [0u8; 4096];
    // Relaxed: a stop flag, nothing published with it.
    while !stop.load(Ordering::Relaxed) {
        let mut open = 0;
        for c in &mut conns {
            if c.stream.is_none() {
                if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(20)) {
                    s.set_nonblocking(true).unwrap();
                    c.stream = Some(s);
                    c.sent = 0;
                    c.last_write = Instant::now() - Duration::from_secs(1);
                    if !first_round {
                        reconnects += 1;
                    }
                } else {
                    continue;
                }
            }
            let s = c.stream.as_mut().unwrap();
            let closed = match s.read(&mut buf) {
                Ok(0) => true,
                // The endpoint answered something (a timeout reply): it closes next.
                Ok(_) => true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                Err(_) => true,
            };
            if !closed && c.slowloris && c.last_write.elapsed() >= Duration::from_secs(1) {
                let byte = HEAD.get(c.sent).copied().unwrap_or(b'a');
                match s.write(&[byte]) {
                    Ok(1) => {
                        c.sent += 1;
                        c.last_write = Instant::now();
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    _ => {
                        c.stream = None;
                        continue;
                    }
                }
            }
            if closed {
                c.stream = None;
            } else {
                open += 1;
            }
        }
        first_round = false;
        up.store(open, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
    }
    reconnects
}

/// One scrape: the time to a 200 with a complete body, or what went wrong.
fn scrape(addr: SocketAddr) -> Result<Duration, String> {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, ANSWER_WITHIN)
        .map_err(|e| format!("connect: {e} after {:?}", start.elapsed()))?;
    s.set_read_timeout(Some(ANSWER_WITHIN))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).map_err(|e| {
        format!(
            "read: {e} after {:?}, {} bytes",
            start.elapsed(),
            reply.len()
        )
    })?;
    let text = String::from_utf8_lossy(&reply);
    if text.starts_with("HTTP/1.1 200") && text.contains("starvation_probe_total 1\n") {
        Ok(start.elapsed())
    } else {
        Err(format!(
            "reply after {:?}: {:?}",
            start.elapsed(),
            &text[..text.len().min(60)]
        ))
    }
}

#[test]
fn a_thousand_hostile_connections_do_not_starve_scrapes() {
    raise_fd_limit(4096);
    let engine = Engine::builder().build().unwrap();
    engine
        .registry()
        .counter("starvation_probe_total", &[])
        .unwrap()
        .inc();
    let addr = engine.serve(common::local()).unwrap();
    scrape(addr).expect("the endpoint answers when idle");

    let stop = Arc::new(AtomicBool::new(false));
    let up = Arc::new(AtomicU64::new(0));
    let attacker = {
        let (stop, up) = (Arc::clone(&stop), Arc::clone(&up));
        std::thread::spawn(move || hostile(addr, stop, up))
    };
    // Let the attack take every slot (and the slowloris connections start trickling).
    std::thread::sleep(Duration::from_secs(2));

    let mut answered = Vec::new();
    let mut failures = Vec::new();
    let mut open_seen = Vec::new();
    let begin = Instant::now();
    for i in 0..SCRAPES {
        let next = begin + Duration::from_secs(i as u64);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // Relaxed: a progress figure for the report.
        open_seen.push(up.load(Ordering::Relaxed));
        match scrape(addr) {
            Ok(t) if t <= ANSWER_WITHIN => answered.push(t),
            Ok(t) => failures.push(format!("answered after {t:?}")),
            Err(e) => failures.push(e),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let reconnects = attacker.join().unwrap();
    let text = engine.render(hotmeter::Format::Text).unwrap();
    let evicted = text
        .lines()
        .find(|l| l.starts_with("hotmeter_http_evicted_connections_total "))
        .map(|l| l.rsplit(' ').next().unwrap().to_string());
    answered.sort();
    eprintln!(
        "scrapes answered within {ANSWER_WITHIN:?}: {}/{SCRAPES} (slowest {:?}); hostile \
         connections open at each scrape: {open_seen:?}; reconnects {reconnects}; evicted {evicted:?}",
        answered.len(),
        answered.last()
    );
    // The attack really was on: it held hundreds of connections at nearly every scrape and
    // reopened each one the endpoint closed (an attacker that gives up is no attack). Not
    // at every scrape: the endpoint evicts them by the hundred thousand, and on a loaded
    // 2-core machine the attacking thread lagged behind once (64 open at 1 scrape of 20,
    // 163-822 at the others, in a CI run beside other builds).
    let held = open_seen.iter().filter(|&&n| n >= 100).count();
    assert!(
        held * 4 >= SCRAPES * 3 && reconnects >= HOSTILE as u64,
        "the attack did not hold its connections: {open_seen:?}, {reconnects} reconnects"
    );
    assert!(
        answered.len() * 100 >= SCRAPES * 99,
        "{} of {SCRAPES} scrapes unanswered within {ANSWER_WITHIN:?}: {failures:?}",
        failures.len()
    );
    engine.shutdown();
}
