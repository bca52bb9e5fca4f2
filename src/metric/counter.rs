//! A monotonic counter: one cell in every thread's arena.

use crate::arena::local::{ARENAS, with_arena};

/// A handle to one counter series. Recording is a relaxed load and a relaxed store into the
/// calling thread's own arena cell: no `lock`-prefixed instruction, no allocation.
///
/// The value is a `u64` that wraps on overflow. At one billion increments a second it would
/// take 584 years to wrap, so in practice it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Counter {
    pub(crate) id: u32,
}

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(self) {
        self.add(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(self, n: u64) {
        if cfg!(hotmeter_disabled) {
            return;
        }
        with_arena(|arena| arena.add(self.id, n));
    }

    /// The exact value: the sum of this series' cell over every arena. Never blocks
    /// writers; an increment racing with the read may or may not be included.
    pub fn value(self) -> u64 {
        ARENAS.sum(self.id)
    }
}
