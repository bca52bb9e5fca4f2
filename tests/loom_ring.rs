//! Loom models of the sampled layer's SPSC record ring: push racing pop/drain under each
//! overflow policy, eviction racing the consumer's batch claim, and draining an abandoned ring.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release --test loom_ring --target-dir target/loom
//! ```
//!
//! Every model uses a 2-slot ring and checks that each record pushed is either received
//! exactly once, in order, or reported dropped (`Full`, `Evicted`, `TimedOut`, `Err`) exactly
//! once; every word of a received record is checked, so a torn or stale slot read fails.
//! `Block` is modelled with an unbounded timeout (the wait loop yields to loom each round and
//! never reads the clock to decide); a finite timeout would make the outcome depend on real
//! time, which loom cannot replay. `Block` with a zero timeout is the `DropNewest` path.
//!
//! What loom can and cannot see here: it lets a load read any store allowed so far, so a
//! missing Release on `tail` or Acquire on the consumer's load of it shows up as a stale
//! word. It never lets a load read a store that comes later in its interleaving, so a missing
//! ordering on `head` (the consumer's read of a slot must happen-before the producer reuses
//! it) would pass unseen; under `--cfg loom` the ring therefore shadows every slot with a
//! `loom::cell::UnsafeCell` that the producer writes and the consumer reads, and loom's
//! causality check catches that case for `DropNewest` and `Block`. Under `DropOldest` the
//! consumer's copies race evictions by design, so there the orderings on `head` are argued
//! in `src/sample/ring.rs`, not checked.
#![cfg(loom)]

use std::time::Duration;

use hotmeter::sample::record::Record;
use hotmeter::sample::ring::{Consumer, Overflow, Push, ring};
use loom::thread;

/// Preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set, so that a plain
/// `cargo test` under `--cfg loom` still finishes quickly.
const DEFAULT_PREEMPTIONS: usize = 2;

fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    builder.check(f);
}

/// A record that encodes `seq` in every word (built from words, so it does not depend on
/// `Record`'s field list).
fn rec(seq: u64) -> Record {
    Record::from_words([
        (seq & 0xffff_ffff) | (seq & 0xff) << 32,
        (seq as f64).to_bits(),
        seq.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        !seq,
    ])
}

/// The sequence number of a record made by `rec`, checking every word agrees.
fn seq(r: Record) -> u64 {
    let s = !r.time_ns;
    assert_eq!(r, rec(s), "torn or stale slot read");
    s
}

/// Pushes `1..=n` with `push`, returning the sequence numbers reported lost.
fn push_all(p: &mut hotmeter::sample::ring::Producer, n: u64) -> Vec<u64> {
    let mut dropped = Vec::new();
    for s in 1..=n {
        match p.push(rec(s)) {
            Push::Stored => {}
            Push::Full(r) | Push::TimedOut(r) => {
                assert_eq!(seq(r), s);
                dropped.push(s);
            }
            Push::Evicted(r) => {
                assert!(seq(r) < s);
                dropped.push(seq(r));
            }
        }
    }
    dropped
}

/// Takes whatever is left once both threads are done.
fn drain_rest(c: &mut Consumer, received: &mut Vec<u64>) {
    c.drain(usize::MAX, |r| received.push(seq(r)));
    assert_eq!(c.pop(), None);
    assert!(c.is_empty());
}

/// Received in order, and received + dropped is `1..=n` exactly once.
fn check_accounting(received: &[u64], dropped: &[u64], n: u64) {
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "out of order: {received:?}"
    );
    let mut all: Vec<u64> = received.iter().chain(dropped).copied().collect();
    all.sort_unstable();
    assert!(
        all.iter().copied().eq(1..=n),
        "received {received:?} dropped {dropped:?}"
    );
}

/// `DropNewest`: three pushes into two slots while the consumer pops then drains.
#[test]
fn drop_newest_push_races_pop_and_drain() {
    model(|| {
        let (mut p, mut c) = ring(2, Overflow::DropNewest);
        let consumer = thread::spawn(move || {
            let mut received = Vec::new();
            if let Some(r) = c.pop() {
                received.push(seq(r));
            }
            c.drain(2, |r| received.push(seq(r)));
            (c, received)
        });
        let dropped = push_all(&mut p, 3);
        let (mut c, mut received) = consumer.join().unwrap();
        drain_rest(&mut c, &mut received);
        check_accounting(&received, &dropped, 3);
    });
}

/// `DropOldest`: the producer evicts while the consumer claims a batch with `drain`, then
/// pops; the consumer's CAS races the eviction CAS on `head`.
#[test]
fn drop_oldest_eviction_races_drain() {
    model(|| {
        let (mut p, mut c) = ring(2, Overflow::DropOldest);
        let consumer = thread::spawn(move || {
            let mut received = Vec::new();
            c.drain(2, |r| received.push(seq(r)));
            if let Some(r) = c.pop() {
                received.push(seq(r));
            }
            (c, received)
        });
        let dropped = push_all(&mut p, 4);
        let (mut c, mut received) = consumer.join().unwrap();
        drain_rest(&mut c, &mut received);
        check_accounting(&received, &dropped, 4);
    });
}

/// `DropOldest`: two single pops against evictions (the `pop` path claims one record).
#[test]
fn drop_oldest_eviction_races_pop() {
    model(|| {
        let (mut p, mut c) = ring(2, Overflow::DropOldest);
        let consumer = thread::spawn(move || {
            let mut received = Vec::new();
            for _ in 0..2 {
                if let Some(r) = c.pop() {
                    received.push(seq(r));
                }
            }
            (c, received)
        });
        let dropped = push_all(&mut p, 3);
        let (mut c, mut received) = consumer.join().unwrap();
        drain_rest(&mut c, &mut received);
        check_accounting(&received, &dropped, 3);
    });
}

/// `try_push` never evicts or waits: a full ring gives the record back, whatever the policy.
fn try_push_races_pop(policy: Overflow) {
    model(move || {
        let (mut p, mut c) = ring(2, policy);
        let consumer = thread::spawn(move || {
            let mut received = Vec::new();
            for _ in 0..2 {
                if let Some(r) = c.pop() {
                    received.push(seq(r));
                }
            }
            (c, received)
        });
        let mut dropped = Vec::new();
        for s in 1..=3 {
            if let Err(r) = p.try_push(rec(s)) {
                assert_eq!(seq(r), s);
                dropped.push(s);
            }
        }
        let (mut c, mut received) = consumer.join().unwrap();
        drain_rest(&mut c, &mut received);
        check_accounting(&received, &dropped, 3);
    });
}

#[test]
fn try_push_races_pop_drop_newest() {
    try_push_races_pop(Overflow::DropNewest);
}

#[test]
fn try_push_races_pop_drop_oldest() {
    try_push_races_pop(Overflow::DropOldest);
}

/// `Block` with an unbounded timeout: the producer waits for the consumer, nothing is lost.
#[test]
fn block_waits_for_pop() {
    model(|| {
        let (mut p, mut c) = ring(
            2,
            Overflow::Block {
                timeout: Duration::MAX,
            },
        );
        let consumer = thread::spawn(move || {
            let mut received = Vec::new();
            while received.len() < 3 {
                match c.pop() {
                    Some(r) => received.push(seq(r)),
                    None => thread::yield_now(),
                }
            }
            received
        });
        let dropped = push_all(&mut p, 3);
        assert!(dropped.is_empty());
        let received = consumer.join().unwrap();
        assert_eq!(received, [1, 2, 3]);
    });
}

/// The flusher's contract for a dead thread's ring: once `is_abandoned` is seen, one drain
/// gets every record the producer pushed.
#[test]
fn abandoned_ring_drains_completely() {
    model(|| {
        let (mut p, mut c) = ring(2, Overflow::DropNewest);
        let producer = thread::spawn(move || {
            assert_eq!(push_all(&mut p, 2), Vec::<u64>::new());
            drop(p);
        });
        let mut received = Vec::new();
        if c.is_abandoned() {
            c.drain(usize::MAX, |r| received.push(seq(r)));
            assert_eq!(received, [1, 2], "abandoned ring not fully visible");
        } else {
            c.drain(usize::MAX, |r| received.push(seq(r)));
        }
        producer.join().unwrap();
        drain_rest(&mut c, &mut received);
        check_accounting(&received, &[], 2);
    });
}
