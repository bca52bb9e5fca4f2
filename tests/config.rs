//! Configuration bounds (issue 9, defect 7): the flush interval is bounded (a zero one burnt
//! a core, `Duration::MAX` panicked the flusher), and a bearer token longer than a request
//! header can carry is refused when the engine is built, while the longest accepted one
//! works end to end.

mod common;

use std::time::Duration;

#[cfg(feature = "http")]
use common::{get, local};
use hotmeter::Engine;
#[cfg(feature = "http")]
use hotmeter::export::http::MAX_TOKEN_BYTES;

#[test]
fn the_flush_interval_is_bounded() {
    for bad in [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(999),
        Duration::from_secs(3600) + Duration::from_nanos(1),
        Duration::MAX,
    ] {
        let e = Engine::builder().flush_interval(bad).build().unwrap_err();
        assert_eq!(e.knob, "flush_interval", "{bad:?}");
    }
    for good in [Duration::from_millis(1), Duration::from_secs(3600)] {
        Engine::builder().flush_interval(good).build().unwrap();
    }
}

#[cfg(feature = "http")]
#[test]
fn a_token_longer_than_a_header_can_carry_is_refused() {
    let e = Engine::builder()
        .token("t".repeat(MAX_TOKEN_BYTES + 1))
        .build()
        .unwrap_err();
    assert_eq!((e.knob.as_str(), e.value.as_str()), ("token", "***"));
    // The longest accepted token fits in a request with the headers Prometheus sends.
    let token = "t".repeat(MAX_TOKEN_BYTES);
    let e = Engine::builder().token(token.clone()).build().unwrap();
    let addr = e.serve(local()).unwrap();
    let bearer = format!("Bearer {token}");
    let reply = get(
        addr,
        "/metrics",
        &[
            ("Accept", common::PROMETHEUS_ACCEPT),
            ("Accept-Encoding", "gzip"),
            ("User-Agent", "Prometheus/3.0.0"),
            ("X-Prometheus-Scrape-Timeout-Seconds", "10"),
            ("Authorization", &bearer),
        ],
    );
    assert_eq!(reply.status, 200);
    assert_eq!(get(addr, "/metrics", &[]).status, 401);
}
