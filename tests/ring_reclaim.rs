//! A thread that exits leaves its sampling ring behind only briefly: the flusher frees it
//! at its next drain, and an exiting thread asks for that drain at once instead of waiting
//! out the flush interval. Before, 400 short-lived threads that each sampled once held
//! 400 rings (64 KiB each at the then default 2,048 records) until the next flush, an hour away here. Own binary:
//! it measures the process's RSS.

mod common;

use std::time::{Duration, Instant};

#[test]
fn rings_of_exited_threads_are_freed_without_waiting_for_a_flush() {
    const THREADS: usize = 400;
    let engine = hotmeter::Engine::builder()
        .sample_rate(1.0)
        .max_sample_rate(1.0)
        .adaptive(false)
        // No flush during the test: only an early drain can free the rings.
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let s = engine.registry().sampled("reclaim_bytes", &[]).unwrap();
    s.record(1.0); // this thread's ring and the first allocations, before measuring
    let before = common::rss_kib();
    if before == 0 {
        eprintln!("no /proc: RSS not measured");
        return;
    }
    for i in 0..THREADS {
        std::thread::spawn(move || s.record(i as f64))
            .join()
            .unwrap();
    }
    // The drains run on the flusher thread: give them a moment (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut grown = common::rss_kib().saturating_sub(before);
    while grown > 8 * 1024 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        grown = common::rss_kib().saturating_sub(before);
    }
    // 400 rings of 64 KiB would be 25 MiB; freed, the growth is the allocator's slack.
    assert!(
        grown <= 8 * 1024,
        "RSS grew {grown} KiB after {THREADS} threads exited"
    );
    engine.shutdown();
}
