//! The shutdown handshake between pushes and the final drain: a pusher announces itself in
//! a slot of its own before it stores a record, then checks the [`Gate`]; `close` shuts the
//! gate, then waits until no slot announces a push into it. After `close` returns, every
//! push the gate let through has finished (its record is in a ring for the drain that
//! follows), and every later push sees the gate shut.
//!
//! It is Dekker's pattern with SeqCst fences: the pusher stores to its slot, fences, loads
//! `closed`; `close` stores `closed`, fences, loads the slots. The two fences are ordered in
//! the single total order of SeqCst operations, so the side whose fence comes second sees
//! the other's store: the pusher sees the gate shut (and does not push), or `close` sees the
//! announcement (and waits for its Release clear). Fences rather than SeqCst accesses
//! because loom models SeqCst fences exactly but SeqCst loads and stores only as AcqRel
//! (tokio-rs/loom#180), so `tests/loom_announce.rs` checks the code that ships; on x86 the
//! fence is one `lock or` on the stack, the cost of the `xchg` a SeqCst store would be.
//!
//! The slots themselves (who holds which, the list `close` walks) are the pipeline's.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicBool, AtomicUsize, Ordering, fence, yield_now};

/// One pusher's announcement: the id of the gate it pushes into, 0 when none. Written only
/// by the thread holding it; read by [`Gate::close`].
pub struct PushSlot(CachePadded<AtomicUsize>);

impl PushSlot {
    /// An empty slot.
    pub fn new() -> Self {
        Self(CachePadded::new(AtomicUsize::new(0)))
    }
}

impl Default for PushSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether pushes may still go where a final drain will find them. See the module docs.
#[derive(Default)]
pub struct Gate {
    closed: AtomicBool,
}

/// A push in progress, announced in its slot; the announcement ends on drop.
#[must_use = "the push is in progress while this lives"]
pub struct Announced<'s>(&'s PushSlot);

impl Drop for Announced<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // Release: publishes the push done under this announcement (a ring's tail store) to
        // `Gate::close`, whose Acquire load of this slot pairs with it. A plain
        // store: only the holder writes its slot.
        self.0.0.store(0, Ordering::Release);
    }
}

impl Gate {
    /// An open gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Announces a push into the gate `id` (non-zero, the same for every push through this
    /// gate) in `slot`, which no other thread writes and no other push of this thread is
    /// using; `None` if the gate is shut (push nothing: nothing will drain it). Hold the
    /// result until the record is stored.
    #[inline(always)]
    pub fn begin<'s>(&self, slot: &'s PushSlot, id: usize) -> Option<Announced<'s>> {
        debug_assert_ne!(id, 0);
        // Relaxed: ordered before the load below by the fence.
        slot.0.store(id, Ordering::Relaxed);
        let announced = Announced(slot);
        if self.shut_after_announcing() {
            return None;
        }
        Some(announced)
    }

    /// Shuts the gate `id`, then waits until none of the slots `slots` returns announces a
    /// push into it. `slots` is called after the gate is shut, so a slot handed out later
    /// (under the same lock as the list, say) belongs to a pusher that will see it shut.
    pub fn close<'a, I>(&self, id: usize, slots: impl FnOnce() -> I)
    where
        I: IntoIterator<Item = &'a PushSlot>,
    {
        // Relaxed: ordered before the loads below by the fence.
        self.closed.store(true, Ordering::Relaxed);
        // SeqCst: `close`'s half of the Dekker pair; pairs with the fence in
        // `shut_after_announcing` (module docs).
        fence(Ordering::SeqCst);
        for slot in slots() {
            // Acquire: pairs with `Announced::drop`'s Release store, so a push that finished
            // is visible to the drain that follows. (That the load sees a push's
            // announcement at all is the fences' doing.)
            while slot.0.load(Ordering::Acquire) == id {
                yield_now();
            }
        }
    }

    /// Whether the gate is shut: a hint (Relaxed) for pruning per-thread state and for
    /// skipping an announcement; [`Gate::begin`] decides.
    #[inline]
    pub fn is_closed(&self) -> bool {
        // Relaxed: see above; a late reader only keeps a ring longer or announces once more.
        self.closed.load(Ordering::Relaxed)
    }

    /// The pusher's half of the Dekker pair, after it announced itself (in its slot, or
    /// some other way `close`'s caller checks after `close`, e.g. a shared count): whether
    /// the gate is shut, in which case the push must not happen.
    #[inline(always)]
    pub fn shut_after_announcing(&self) -> bool {
        // SeqCst: pairs with the fence in `close` (module docs).
        fence(Ordering::SeqCst);
        // Relaxed: ordered after the announcement by the fence above.
        self.closed.load(Ordering::Relaxed)
    }
}
