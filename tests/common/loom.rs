//! What the ring-level loom models share (`#[path]`-included: `tests/common/mod.rs` is not
//! built under `--cfg loom`).

use hotmeter::sample::record::Record;

/// Runs `f` under loom, with at most two preemptions unless `LOOM_MAX_PREEMPTIONS` says.
pub fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// A plain record of series `i` (value `i`, no key, weight 1).
pub fn record(i: u32) -> Record {
    Record::new(i, 0, f64::from(i), 0, 0, false)
}
