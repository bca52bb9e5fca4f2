//! Loom model of the `metrics` facade recorder's key cache: lookups that race with inserts
//! and with the table growing (a small table grows on the fourth insert) see either nothing
//! or the right value, a key once seen stays seen (the grown table is filled before it is
//! published), and every insert is visible once the writer is done. (Loom sees its own
//! atomics only: the entries behind them are plain memory, so the model checks the
//! publication protocol's logic, and the orderings are argued in the code.)
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --features metrics --test loom_facade_cache --target-dir target/loom`
#![cfg(all(loom, feature = "metrics"))]

use hotmeter::facade_cache::Cache;
use loom::sync::Arc;
use loom::thread;
use metrics::Key;

/// At least 3 preemptions, whatever `LOOM_MAX_PREEMPTIONS` says: with 2, the model misses
/// a reader that probes a grown table before it is filled (checked by publishing the table
/// first on purpose: found at 3, not at 2). The model is small, so 3 stays quick.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.unwrap_or(3).max(3));
    b.check(f);
}

fn keys() -> Vec<Key> {
    ["a", "b", "c", "d"]
        .into_iter()
        .map(Key::from_static_name)
        .collect()
}

#[test]
fn lookups_racing_inserts_and_growth_see_nothing_or_the_right_value() {
    model(|| {
        // 4 slots: the fourth insert moves every entry into an 8-slot table.
        let cache = Arc::new(Cache::with_slots(usize::MAX, 4));
        let writer = {
            let cache = Arc::clone(&cache);
            thread::spawn(move || {
                for (i, k) in keys().iter().enumerate() {
                    assert_eq!(*cache.get_or_insert_with(k, || i as u64).unwrap(), i as u64);
                }
            })
        };
        let keys = keys();
        // The reader probes the first key twice and the last once while the writer inserts
        // (and grows the table under the reader's feet): a key once seen stays seen.
        let mut seen = false;
        for i in [0, 3, 0, 0] {
            // A yield lets loom run the writer between probes without spending its
            // preemption budget, so the probes reach every step of an insert and a growth.
            thread::yield_now();
            match cache.get(&keys[i]) {
                Some(v) => {
                    assert_eq!(*v, i as u64);
                    seen |= i == 0;
                }
                None => assert!(!(seen && i == 0), "key {i} vanished"),
            }
        }
        writer.join().unwrap();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(cache.get(k), Some(&(i as u64)));
        }
    });
}
