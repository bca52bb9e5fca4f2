//! Loom model of the flusher's early-wake flag (`hotmeter::sample::wake`): a producer that
//! stored a record and asked to wake either wakes the flusher, or the drain that cleared the
//! flag sees its record. Together: a record pushed past the mark is never left waiting for
//! a wake that was skipped.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release --test loom_wake --target-dir target/loom
//! ```
//!
//! The flag's two sides are ordered with SeqCst fences (loom models them exactly; SeqCst
//! loads and stores only as AcqRel: tokio-rs/loom#180). Weakening the producer's fence to
//! AcqRel lets it read a stale "pending" while the drain misses its record: the first model
//! fails then (checked by hand).
#![cfg(loom)]

use hotmeter::sample::ring::{Overflow, Push, ring};
use hotmeter::sample::wake::WakeFlag;
use loom::sync::Arc;
use loom::thread;

#[path = "common/loom.rs"]
mod loom_common;
use loom_common::{model, record};

/// A wake is pending from before (the flusher is on its way): the producer pushes and asks;
/// the drain clears the flag and reads the ring. Either the drain sees the record or the
/// producer wakes the flusher (whose next drain will).
#[test]
fn a_skipped_wake_means_the_drain_sees_the_record() {
    model(|| {
        let flag = Arc::new(WakeFlag::new());
        assert!(flag.should_wake(), "the first ask wakes");
        let (mut producer, mut consumer) = ring(2, Overflow::DropNewest);
        let pusher = {
            let flag = Arc::clone(&flag);
            thread::spawn(move || {
                assert_eq!(producer.push(record(1)), Push::Stored);
                flag.should_wake()
            })
        };
        flag.clear();
        let drained = consumer.pop();
        let woke = pusher.join().unwrap();
        assert!(
            drained.is_some() || woke,
            "the record was neither drained nor followed by a wake"
        );
    });
}

/// Two producers past their marks while a wake is pending: at most one unparks per drain,
/// and each record is drained or followed by a wake.
#[test]
fn two_producers_one_wake_per_drain() {
    model(|| {
        let flag = Arc::new(WakeFlag::new());
        let (p1, mut c1) = ring(2, Overflow::DropNewest);
        let (p2, mut c2) = ring(2, Overflow::DropNewest);
        let spawn = |mut p: hotmeter::sample::ring::Producer, i: u32| {
            let flag = Arc::clone(&flag);
            thread::spawn(move || {
                assert_eq!(p.push(record(i)), Push::Stored);
                flag.should_wake()
            })
        };
        let (t1, t2) = (spawn(p1, 1), spawn(p2, 2));
        let (w1, w2) = (t1.join().unwrap(), t2.join().unwrap());
        assert!(!(w1 && w2), "two unparks without a drain between them");
        assert!(w1 || w2, "nothing was pending: one of them wakes");
        flag.clear();
        assert!(c1.pop().is_some() && c2.pop().is_some());
        assert!(
            flag.should_wake(),
            "after a drain began, the next ask wakes again"
        );
    });
}
