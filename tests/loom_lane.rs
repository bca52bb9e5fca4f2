//! Loom models of the critical lane: a critical record that does not fit its thread's ring
//! goes to the shared lane, and the flusher, draining ring and lane concurrently, receives
//! every record exactly once; the lane's cap is exact under concurrent pushers, and a lane
//! filling up asks for the flusher exactly once per `wake_every` records. (The queue behind
//! the lane, crossbeam's `SegQueue`, is replaced by a mutex-guarded `VecDeque` here: loom
//! cannot see inside crossbeam's atomics, so these models check the reservation counter
//! around it, which is what caps the lane's memory.)
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_lane --target-dir target/loom`
#![cfg(loom)]

use hotmeter::sample::lane::{Lane, Queued};
use hotmeter::sample::record::Record;
use hotmeter::sample::ring::{Overflow, ring};
use loom::sync::Arc;
use loom::thread;

fn rec(i: u32) -> Record {
    Record {
        series: i,
        k: 0,
        value: i as f64,
        key: 0,
        time_ns: 0,
        critical: true,
        keyed: false,
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

#[test]
fn ring_overflow_to_lane_is_received_exactly_once() {
    model(|| {
        let (mut producer, mut consumer) = ring(2, Overflow::DropNewest);
        let lane = Arc::new(Lane::new(4));
        let lane2 = Arc::clone(&lane);
        let t = thread::spawn(move || {
            for i in 0..3 {
                if let Err(r) = producer.try_push(rec(i)) {
                    lane2.push(r).expect("the lane has room");
                }
            }
        });
        // The flusher drains concurrently with the producer...
        let mut got = Vec::new();
        consumer.drain(usize::MAX, |r| got.push(r.series));
        while let Some(r) = lane.pop() {
            got.push(r.series);
        }
        t.join().unwrap();
        // ...and once more after (a shutdown's final drain).
        consumer.drain(usize::MAX, |r| got.push(r.series));
        while let Some(r) = lane.pop() {
            got.push(r.series);
        }
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(lane.lost(), 0);
    });
}

#[test]
fn lane_cap_is_exact_under_concurrent_pushers() {
    model(|| {
        let lane = Arc::new(Lane::new(1));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let lane = Arc::clone(&lane);
                thread::spawn(move || lane.push(rec(i)).is_ok())
            })
            .collect();
        let popped = lane.pop().map(|r| r.series);
        let ok: usize = handles
            .into_iter()
            .map(|h| h.join().unwrap() as usize)
            .sum();
        let rest = std::iter::from_fn(|| lane.pop()).count();
        // A pop may free the slot before the second push: then both succeed.
        assert_eq!(ok as u64 + lane.lost(), 2);
        assert_eq!(popped.is_some() as usize + rest, ok);
        assert!(lane.len() == 0);
    });
}

#[test]
fn a_filling_lane_asks_for_the_flusher_once_per_mark() {
    model(|| {
        // Cap 8: a wake-up every 2 records.
        let lane = Arc::new(Lane::new(8));
        assert_eq!(lane.wake_every(), 2);
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let lane = Arc::clone(&lane);
                thread::spawn(move || {
                    (0..2)
                        .filter(|&i| lane.push(rec(t * 2 + i)) == Ok(Queued::Wake))
                        .count()
                })
            })
            .collect();
        let wakes: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        // 4 records queued, whatever the interleaving: the lane reached 2 and 4 once each.
        assert_eq!(wakes, 2);
        assert_eq!(lane.len(), 4);
        let mut got: Vec<u32> = std::iter::from_fn(|| lane.pop())
            .map(|r| r.series)
            .collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3]);
    });
}
