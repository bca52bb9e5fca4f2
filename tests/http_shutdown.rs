//! Issue 9, defect 6: dropping an engine (or `shutdown()`) is bounded by the endpoint's
//! grace period, however many clients stall it: 64 slowloris connections (the connection
//! cap) trickling their request headers, with 30 s header and exchange timeouts, used to
//! hold the drop until those timeouts.
// The endpoint's tests: nothing to run without it.
#![cfg(feature = "http")]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::local;
use hotmeter::{Engine, ServeConfig};

#[test]
fn dropping_the_engine_is_not_held_by_slowloris_clients() {
    let engine = Engine::builder().build().unwrap();
    let config = ServeConfig {
        header_timeout: Duration::from_secs(30),
        exchange_timeout: Duration::from_secs(30),
        ..ServeConfig::default()
    };
    let grace = config.shutdown_grace;
    let addr = engine.serve_with(local(), config).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // One thread drives all 64 connections: a byte each every 100 ms.
        let slowloris = scope.spawn(|| {
            let mut conns: Vec<TcpStream> =
                (0..64).map(|_| TcpStream::connect(addr).unwrap()).collect();
            let head = b"GET /metrics HTTP/1.1\r\nX-Slow: ";
            let mut i = 0;
            // Relaxed: a stop request for this client.
            while !done.load(Ordering::Relaxed) && !conns.is_empty() {
                let b = head.get(i).copied().unwrap_or(b'x');
                // A connection the server cut is dropped here.
                conns.retain_mut(|c| c.write_all(&[b]).is_ok());
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        std::thread::sleep(Duration::from_millis(800));
        let started = Instant::now();
        drop(engine);
        let took = started.elapsed();
        done.store(true, Ordering::Relaxed);
        slowloris.join().unwrap();
        // Generous: a correctness bound, not a benchmark.
        assert!(
            took <= grace + Duration::from_secs(3),
            "drop took {took:?} with a grace of {grace:?}"
        );
    });
}
