//! Fuzz target: arbitrary sequences of ring operations (push, try_push, pop, drain, length
//! queries, a fresh ring with another policy) against a `VecDeque` model, single-threaded.
//!
//! Run with `cargo +nightly fuzz run ring_model -- -max_total_time=60` from `fuzz/`.
#![no_main]

use std::collections::VecDeque;
use std::time::Duration;

use arbitrary::Arbitrary;
use hotmeter::sample::record::Record;
use hotmeter::sample::ring::{Consumer, Overflow, Producer, Push, ring};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Policy {
    DropNewest,
    DropOldest,
    /// With a zero timeout: single-threaded, a wait for space could never end.
    Block,
}

impl Policy {
    fn overflow(self) -> Overflow {
        match self {
            Policy::DropNewest => Overflow::DropNewest,
            Policy::DropOldest => Overflow::DropOldest,
            Policy::Block => Overflow::Block {
                timeout: Duration::ZERO,
            },
        }
    }
}

/// A record from arbitrary words (NaN values included); built with `Record::from_words`, so
/// the target does not depend on `Record`'s field list.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Fields([u64; 4]);

impl Fields {
    fn record(self) -> Record {
        Record::from_words(self.0)
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Push(Fields),
    TryPush(Fields),
    Pop,
    Drain(u8),
    Len,
    /// Replace the ring (and the model) with a fresh one.
    NewRing {
        capacity: u8,
        policy: Policy,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    policy: Policy,
    ops: Vec<Op>,
}

/// Records compare by their words: `Record`'s `PartialEq` says NaN != NaN.
type Words = [u64; 4];

fn words(r: Record) -> Words {
    r.to_words()
}

/// The outcome of a push, with records as words.
#[derive(Debug, PartialEq)]
enum Outcome {
    Stored,
    Full(Words),
    Evicted(Words),
    TimedOut(Words),
}

impl From<Push> for Outcome {
    fn from(p: Push) -> Self {
        match p {
            Push::Stored => Outcome::Stored,
            Push::Full(r) => Outcome::Full(words(r)),
            Push::Evicted(r) => Outcome::Evicted(words(r)),
            Push::TimedOut(r) => Outcome::TimedOut(words(r)),
        }
    }
}

struct Model {
    q: VecDeque<Words>,
    capacity: usize,
    policy: Policy,
}

impl Model {
    fn push(&mut self, w: Words) -> Outcome {
        if self.q.len() < self.capacity {
            self.q.push_back(w);
            return Outcome::Stored;
        }
        match self.policy {
            Policy::DropNewest => Outcome::Full(w),
            Policy::DropOldest => {
                let old = self.q.pop_front().expect("full ring is not empty");
                self.q.push_back(w);
                Outcome::Evicted(old)
            }
            Policy::Block => Outcome::TimedOut(w),
        }
    }

    fn try_push(&mut self, w: Words) -> Result<(), Words> {
        if self.q.len() < self.capacity {
            self.q.push_back(w);
            Ok(())
        } else {
            Err(w)
        }
    }
}

/// Capacities up to 32 (asked for 0..=32), so rings fill up often.
fn make(capacity: u8, policy: Policy) -> (Producer, Consumer, Model) {
    let asked = capacity as usize % 33;
    let (p, c) = ring(asked, policy.overflow());
    let capacity = asked.max(2).next_power_of_two();
    assert_eq!(p.capacity(), capacity);
    assert_eq!(c.capacity(), capacity);
    assert_eq!(p.policy(), policy.overflow());
    let model = Model {
        q: VecDeque::new(),
        capacity,
        policy,
    };
    (p, c, model)
}

fuzz_target!(|input: Input| {
    let (mut p, mut c, mut m) = make(input.capacity, input.policy);
    for op in input.ops {
        match op {
            Op::Push(f) => {
                let r = f.record();
                assert_eq!(Outcome::from(p.push(r)), m.push(words(r)));
            }
            Op::TryPush(f) => {
                let r = f.record();
                assert_eq!(p.try_push(r).map_err(words), m.try_push(words(r)));
            }
            Op::Pop => assert_eq!(c.pop().map(words), m.q.pop_front()),
            Op::Drain(max) => {
                let max = max as usize;
                let mut got = Vec::new();
                let n = c.drain(max, |r| got.push(words(r)));
                assert_eq!(n, got.len());
                let want: Vec<Words> = (0..max.min(m.q.len()))
                    .map(|_| m.q.pop_front().expect("counted"))
                    .collect();
                assert_eq!(got, want);
            }
            Op::Len => {
                assert_eq!(p.len(), m.q.len());
                assert_eq!(c.len(), m.q.len());
                assert_eq!(p.is_empty(), m.q.is_empty());
                assert_eq!(c.is_empty(), m.q.is_empty());
            }
            Op::NewRing { capacity, policy } => {
                assert!(!p.is_abandoned() && !c.is_abandoned());
                (p, c, m) = make(capacity, policy);
            }
        }
    }
    // Neither half sees the other as gone while both live; each sees it once it is dropped.
    assert!(!c.is_abandoned());
    drop(p);
    assert!(c.is_abandoned());
    let mut rest = Vec::new();
    c.drain(usize::MAX, |r| rest.push(words(r)));
    assert_eq!(rest, Vec::from(m.q));
});
