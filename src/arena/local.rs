//! The calling thread's arena in the process-wide [`ArenaSet`]: a destructor-free
//! thread-local pointer for the hot path, and a guard whose destructor returns the arena to
//! the pool when the thread exits.

use core::cell::Cell;
use core::sync::atomic::AtomicU64;
use std::thread::LocalKey;

use super::{Arena, ArenaSet, Holder, Slot};

/// Every thread's arena, for every registry in the process.
pub(crate) static ARENAS: ArenaSet = ArenaSet::new();

thread_local! {
    /// The arena this thread holds, or null. `const` and without a destructor, so reading it
    /// is a plain thread-local load with no lazy-initialisation check.
    static CURRENT: Cell<*const Arena> = const { Cell::new(core::ptr::null()) };
    /// Holds the arena for the thread's lifetime; its destructor gives it back.
    static GUARD: Guard = Guard::acquire();
}

struct Guard(Option<Holder<'static>>);

impl Guard {
    fn acquire() -> Self {
        let holder = Holder::acquire(&ARENAS);
        CURRENT.set(holder.arena());
        Guard(Some(holder))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Clear the fast pointer first, so nothing on this thread writes the arena after it
        // is released (a later recording takes the slow path below); the holder resets the
        // call-site slots it filled before it releases the arena.
        CURRENT.set(core::ptr::null());
        if let Some(holder) = self.0.take() {
            holder.release();
        }
    }
}

/// Fills a call site's thread-local `slot` with the address of cell `id` in this thread's
/// arena (and `aux`), and returns that cell. `None` when the thread is past its guard's
/// destructor: the caller then records through [`with_arena`] (a borrowed arena) and the
/// slot stays empty.
#[cold]
#[inline(never)]
pub(crate) fn fill_slot(
    slot: &'static LocalKey<Slot>,
    id: u32,
    aux: u64,
) -> Option<&'static AtomicU64> {
    GUARD
        .try_with(|guard| {
            let holder = guard.0.as_ref()?;
            slot.with(|slot| {
                // SAFETY: `slot` is a call site's `const`, destructor-free thread-local of
                // this thread: valid for the thread's whole life (past every thread-local
                // destructor, the guard's included), and read only by this thread.
                unsafe { holder.fill(slot, id, aux) }
            })
        })
        .ok()
        .flatten()
}

/// Runs `f` on this thread's arena, acquiring one on first use.
#[inline(always)]
pub(crate) fn with_arena<R>(f: impl FnOnce(&Arena) -> R) -> R {
    let arena = CURRENT.get();
    if arena.is_null() {
        with_arena_slow(f)
    } else {
        // SAFETY: a non-null CURRENT points into the static `ARENAS`, whose arenas are never
        // freed, and this thread holds it: CURRENT is cleared before the guard releases it.
        f(unsafe { &*arena })
    }
}

#[cold]
#[inline(never)]
fn with_arena_slow<R>(f: impl FnOnce(&Arena) -> R) -> R {
    match GUARD.try_with(|guard| guard.0.as_ref().map(Holder::arena)) {
        Ok(Some(arena)) => f(arena),
        // The thread is past its guard's destructor (a recording from another thread-local's
        // destructor): borrow an arena for this one call.
        Ok(None) | Err(_) => {
            /// Gives the borrowed arena back even if `f` panics.
            struct Borrowed(&'static Arena);
            impl Drop for Borrowed {
                fn drop(&mut self) {
                    ARENAS.release(self.0);
                }
            }
            let borrowed = Borrowed(ARENAS.acquire());
            f(borrowed.0)
        }
    }
}

/// Arenas ever created in this process.
pub(crate) fn arenas_created() -> usize {
    ARENAS.created()
}

/// Arenas held by a live thread now.
pub(crate) fn arenas_live() -> usize {
    ARENAS.live()
}
