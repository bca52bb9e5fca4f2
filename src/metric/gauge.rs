//! A gauge: one shared, cache-padded `AtomicU64` holding `f64` bits.

use core::sync::atomic::{AtomicU64, Ordering};

/// A handle to one gauge series. A gauge has *set* semantics, so it cannot be split over
/// per-thread cells: it is one shared atomic. `set` is a store; `add`/`sub` are a CAS loop.
#[derive(Debug, Clone, Copy)]
pub struct Gauge {
    pub(crate) cell: &'static AtomicU64,
}

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(self, v: f64) {
        if cfg!(hotmeter_disabled) {
            return;
        }
        // Relaxed: the gauge is a single independent value; no other data is published
        // through it.
        self.cell.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Adds `v` (atomically with respect to other `add`/`sub`/`set` calls).
    #[inline]
    pub fn add(self, v: f64) {
        if cfg!(hotmeter_disabled) {
            return;
        }
        // Relaxed: as in `set`; the CAS loop alone makes concurrent adds not lose updates.
        let _ = self
            .cell
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Subtracts `v`.
    #[inline]
    pub fn sub(self, v: f64) {
        self.add(-v);
    }

    /// The current value.
    pub fn value(self) -> f64 {
        f64::from_bits(self.cell.load(Ordering::Relaxed))
    }
}

impl PartialEq for Gauge {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::eq(self.cell, other.cell)
    }
}

impl Eq for Gauge {}
