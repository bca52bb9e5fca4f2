//! Arbitrary sequences of push / try_push / pop / drain against a `VecDeque` model of the
//! ring, for an arbitrary capacity and overflow policy (single-threaded: the concurrent
//! cases are loom's).
#![no_main]

use std::collections::VecDeque;
use std::time::Duration;

use arbitrary::Arbitrary;
use hotmeter::sample::record::Record;
use hotmeter::sample::ring::{Overflow, Push, ring};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Policy {
    DropNewest,
    DropOldest,
    Block,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Push(u64, f64, u8),
    TryPush(u64),
    Pop,
    Drain(u8),
}

#[derive(Debug, Arbitrary)]
struct Input {
    capacity: u8,
    policy: Policy,
    ops: Vec<Op>,
}

fn record(key: u64, value: f64, k: u8) -> Record {
    Record {
        series: key as u32,
        k: k % 64,
        value,
        key,
        time_ns: key.rotate_left(7),
        critical: k & 64 != 0,
    }
}

/// Bitwise equality, so NaN values compare.
fn same(a: &Record, b: &Record) -> bool {
    a.to_words() == b.to_words()
}

fuzz_target!(|input: Input| {
    let policy = match input.policy {
        Policy::DropNewest => Overflow::DropNewest,
        Policy::DropOldest => Overflow::DropOldest,
        Policy::Block => Overflow::Block {
            timeout: Duration::ZERO,
        },
    };
    let (mut p, mut c) = ring(input.capacity as usize, policy);
    let cap = p.capacity();
    assert!(cap.is_power_of_two() && cap >= 2 && cap >= input.capacity as usize);
    let mut model: VecDeque<Record> = VecDeque::new();
    for op in input.ops {
        match op {
            Op::Push(key, value, k) => {
                let r = record(key, value, k);
                let got = p.push(r);
                if model.len() < cap {
                    model.push_back(r);
                    assert!(matches!(got, Push::Stored));
                } else {
                    match (policy, got) {
                        (Overflow::DropNewest, Push::Full(x)) => assert!(same(&x, &r)),
                        (Overflow::Block { .. }, Push::TimedOut(x)) => assert!(same(&x, &r)),
                        (Overflow::DropOldest, Push::Evicted(x)) => {
                            let old = model.pop_front().unwrap();
                            assert!(same(&x, &old));
                            model.push_back(r);
                        }
                        (policy, got) => panic!("{policy:?} full ring gave {got:?}"),
                    }
                }
            }
            Op::TryPush(key) => {
                let r = record(key, key as f64, 1);
                let ok = p.try_push(r).is_ok();
                assert_eq!(ok, model.len() < cap);
                if ok {
                    model.push_back(r);
                }
            }
            Op::Pop => match (c.pop(), model.pop_front()) {
                (Some(a), Some(b)) => assert!(same(&a, &b)),
                (None, None) => {}
                (a, b) => panic!("ring {a:?} model {b:?}"),
            },
            Op::Drain(max) => {
                let mut got = Vec::new();
                let n = c.drain(max as usize, |r| got.push(r));
                assert_eq!(n, got.len());
                assert_eq!(n, (max as usize).min(model.len()));
                for r in got {
                    assert!(same(&r, &model.pop_front().unwrap()));
                }
            }
        }
        assert_eq!(c.len(), model.len());
        assert_eq!(p.len(), model.len());
    }
});
