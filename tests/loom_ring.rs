//! Loom models of the SPSC ring: a producer pushing against a concurrent consumer under
//! each overflow policy. Every record is received exactly once, in order, or reported
//! dropped / evicted by the producer, never both, never torn.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_ring --target-dir target/loom`
#![cfg(loom)]

use std::time::Duration;

use hotmeter::sample::record::Record;
use hotmeter::sample::ring::{Overflow, Push, ring};
use loom::thread;

fn rec(i: u64) -> Record {
    Record {
        series: i as u32,
        k: 3,
        value: i as f64,
        key: i * 7,
        time_ns: i,
        critical: false,
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// Producer pushes 1..=n into a 2-slot ring; the consumer drains concurrently and once
/// more after the producer is done.
fn run(policy: Overflow, n: u64, batch: usize) {
    let (mut p, mut c) = ring(2, policy);
    let producer = thread::spawn(move || {
        let mut lost = Vec::new();
        for i in 1..=n {
            match p.push(rec(i)) {
                Push::Stored => {}
                Push::Full(r) | Push::Evicted(r) | Push::TimedOut(r) => lost.push(r),
            }
        }
        lost
    });
    let mut got = Vec::new();
    c.drain(batch, |r| got.push(r));
    let lost = producer.join().unwrap();
    c.drain(usize::MAX, |r| got.push(r));
    for r in got.iter().chain(&lost) {
        assert_eq!(*r, rec(r.time_ns), "torn record");
    }
    assert!(
        got.windows(2).all(|w| w[0].time_ns < w[1].time_ns),
        "out of order: {got:?}"
    );
    let mut all: Vec<u64> = got.iter().chain(&lost).map(|r| r.time_ns).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=n).collect::<Vec<_>>(),
        "got {got:?} lost {lost:?}"
    );
}

#[test]
fn drop_newest_against_consumer() {
    model(|| run(Overflow::DropNewest, 3, 1));
}

#[test]
fn drop_oldest_against_consumer() {
    model(|| run(Overflow::DropOldest, 3, 2));
}

#[test]
fn block_with_zero_timeout_against_consumer() {
    // A zero timeout keeps the model finite (no clock-driven spinning under loom): it
    // checks the policy's handling of a full ring, not the waiting itself.
    model(|| {
        run(
            Overflow::Block {
                timeout: Duration::ZERO,
            },
            3,
            1,
        )
    });
}

#[test]
fn try_push_never_evicts() {
    model(|| {
        let (mut p, mut c) = ring(2, Overflow::DropOldest);
        let producer = thread::spawn(move || {
            (1..=3u64)
                .filter(|&i| p.try_push(rec(i)).is_err())
                .collect::<Vec<_>>()
        });
        let mut got = Vec::new();
        c.drain(1, |r| got.push(r.time_ns));
        let refused = producer.join().unwrap();
        c.drain(usize::MAX, |r| got.push(r.time_ns));
        let mut all: Vec<u64> = got.iter().chain(&refused).copied().collect();
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3]);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    });
}
