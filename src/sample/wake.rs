//! The flusher's early-wake flag: one `unpark` per drain, however many pushes pass their
//! ring's high-water mark while the flusher sleeps.
//!
//! Before, every push past the mark unparked the flusher: an atomic read-modify-write on the
//! flusher's parker, a cache line both recording threads and the flusher write. On the
//! 2-core VM (`benches/overhead.rs`, 2-thread rows, alternating builds) removing that
//! lowered the FNV step's 2-thread overhead in every pair; the seed step's change was
//! within the run-to-run spread (README, "The flusher per drained record"). Now a push past the mark reads a flag and unparks only if no wake is
//! pending since the last drain began; the drain clears the flag before it reads the rings.
//!
//! No wake is lost. It is Dekker's pattern with SeqCst fences, as in `sample::announce`:
//! the producer stores its record (the ring's `tail`), fences, loads the flag; the drainer
//! stores `false`, fences, loads each ring's `tail`. The fences are ordered in the single
//! total order of SeqCst operations, so either the drain sees the record, or the producer
//! sees the cleared flag and wakes the flusher again (`tests/loom_wake.rs`). The fence is
//! on the producer's cold path only (past the mark).

use crate::sync::{AtomicBool, Ordering, fence};

/// Whether a wake is pending since the last drain began.
#[derive(Debug, Default)]
pub struct WakeFlag {
    pending: AtomicBool,
}

impl WakeFlag {
    /// A flag with no wake pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// For a producer whose record is stored (its ring past the mark): whether it must
    /// unpark the flusher (no wake pending since the last drain began). Marks one pending.
    #[inline]
    pub fn should_wake(&self) -> bool {
        // SeqCst: the producer's half of the Dekker pair (its record's `tail` store before,
        // this flag's load after); pairs with the fence in `WakeFlag::clear`.
        fence(Ordering::SeqCst);
        // Relaxed: ordered after the record's store by the fence above; a stale `true`
        // means a drain that begins after it (see the module docs).
        if self.pending.load(Ordering::Relaxed) {
            return false;
        }
        // Relaxed: the flag carries no data; of several producers racing here, one wakes.
        !self.pending.swap(true, Ordering::Relaxed)
    }

    /// For whoever drains, before it reads the rings: no wake pending from here on.
    #[inline]
    pub fn clear(&self) {
        // Relaxed: ordered before the rings' `tail` loads by the fence below.
        self.pending.store(false, Ordering::Relaxed);
        // SeqCst: the drainer's half of the Dekker pair; pairs with the fence in
        // `WakeFlag::should_wake`.
        fence(Ordering::SeqCst);
    }
}
