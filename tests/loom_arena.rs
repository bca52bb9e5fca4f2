//! Loom models of the arena core: adoption of a released arena, chunk installation under a
//! concurrent reader, and concurrent arena creation.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release --test loom_arena --target-dir target/loom
//! ```
//!
//! Under `cfg(loom)` a chunk holds 2 cells and an arena 4 chunks, so cell `id` lives in
//! chunk `id / 2`: ids 0 and 5 are in different chunks, as are 0 and 3.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};

use hotmeter::arena::{Arena, ArenaSet};
use loom::sync::Arc;
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

/// The arena's address, for identity comparisons across threads.
fn addr(arena: &Arena) -> usize {
    core::ptr::from_ref(arena) as usize
}

/// Model 1: the main thread releases its arena while a second thread acquires (adopting
/// that arena whenever it is already free, creating a fresh one otherwise) and adds on top,
/// and a third thread sums. No increment is lost or counted twice.
#[test]
fn release_races_adoption_and_reader() {
    static ADOPTED: AtomicUsize = AtomicUsize::new(0);
    static FRESH: AtomicUsize = AtomicUsize::new(0);

    model(|| {
        let set = Arc::new(ArenaSet::new());
        let a = set.acquire();
        // Happens-before both threads: the readers' lower bound.
        a.add(0, 1);
        let a_addr = addr(a);

        let adopter = {
            let set = set.clone();
            thread::spawn(move || {
                let b = set.acquire();
                let was_adopted = addr(b) == a_addr;
                b.add(0, 2);
                // Cell 3 is in chunk 1, which the main thread may have installed in the
                // arena just adopted: the adopter must reuse that chunk, not replace it.
                b.add(3, 2);
                set.release(b);
                was_adopted
            })
        };
        let reader = {
            let set = set.clone();
            thread::spawn(move || {
                let first = set.sum(0);
                let other = set.sum(3);
                let second = set.sum(0);
                assert!((1..=4).contains(&first), "sum(0) = {first}");
                assert!(
                    (first..=4).contains(&second),
                    "sum(0) went {first} -> {second}"
                );
                assert!(other <= 3, "sum(3) = {other}");
            })
        };

        // Concurrent with the adopter: these writes must reach it through the release.
        a.add(0, 1);
        a.add(3, 1);
        set.release(a);

        let was_adopted = adopter.join().unwrap();
        reader.join().unwrap();

        assert_eq!(set.sum(0), 4);
        assert_eq!(set.sum(3), 3);
        assert_eq!(set.created(), if was_adopted { 1 } else { 2 });
        assert_eq!(set.live(), 0);
        if was_adopted {
            ADOPTED.fetch_add(1, Ordering::Relaxed);
        } else {
            FRESH.fetch_add(1, Ordering::Relaxed);
        }
    });

    // Both paths of `acquire` were explored.
    assert!(
        ADOPTED.load(Ordering::Relaxed) > 0,
        "adoption never explored"
    );
    assert!(
        FRESH.load(Ordering::Relaxed) > 0,
        "fresh creation never explored"
    );
}

/// Model 2: the owner touches cells in chunks not yet installed while a reader sums them:
/// the reader sees 0 or the full value, never garbage, and untouched neighbours read 0.
#[test]
fn chunk_install_races_reader() {
    model(|| {
        let set = Arc::new(ArenaSet::new());
        let a = set.acquire();

        let reader = {
            let set = set.clone();
            thread::spawn(move || {
                let five = set.sum(5);
                let four = set.sum(4); // same chunk as 5, never written
                let zero = set.sum(0);
                let two = set.sum_f64(2);
                assert!(five == 0 || five == 7, "sum(5) = {five}");
                assert_eq!(four, 0);
                assert!(zero == 0 || zero == 1, "sum(0) = {zero}");
                assert!(two == 0.0 || two == 1.5, "sum_f64(2) = {two}");
            })
        };

        a.add(0, 1); // chunk 0
        a.add(5, 7); // chunk 2
        a.add_f64(2, 1.5); // chunk 1
        reader.join().unwrap();

        assert_eq!(set.sum(0), 1);
        assert_eq!(set.sum(4), 0);
        assert_eq!(set.sum(5), 7);
        assert_eq!(set.sum_f64(2), 1.5);
        set.release(a);
    });
}

/// Model 3: two threads acquire from an empty set at once (both create an arena and race
/// to publish it at the list head) while the main thread sums. Both arenas end up in the
/// list: two created, both counted.
#[test]
fn concurrent_creation_races_reader() {
    model(|| {
        let set = Arc::new(ArenaSet::new());
        let owner = |n: u64| {
            let set = set.clone();
            thread::spawn(move || {
                // Never released: the other thread cannot adopt it, so it must create.
                let a = set.acquire();
                a.add(0, n);
                addr(a)
            })
        };
        let t1 = owner(1);
        let t2 = owner(2);

        let first = set.sum(0);
        let second = set.sum(0);
        assert!(first <= 3, "sum(0) = {first}");
        assert!(
            (first..=3).contains(&second),
            "sum(0) went {first} -> {second}"
        );

        let a1 = t1.join().unwrap();
        let a2 = t2.join().unwrap();
        assert_ne!(a1, a2);
        assert_eq!(set.created(), 2);
        assert_eq!(set.live(), 2);
        assert_eq!(set.sum(0), 3);
    });
}

/// Model 4: call-site slots. Two threads each hold an arena through a [`Holder`], cache a
/// cell's address in a slot (a thread-local in the library, a local here) and add through
/// the cached address; the first releases its holder while the second may be adopting that
/// very arena. The holder resets its slots before it releases the arena, so no write goes
/// through a stale address into an arena another thread now owns: no increment is lost.
#[test]
fn slot_reset_before_release_races_adoption() {
    use hotmeter::arena::{Holder, Slot};

    fn add_through(slot: &Slot, n: u64) {
        let cell = slot.cell();
        assert!(!cell.is_null(), "a filled slot");
        // SAFETY (test): a filled slot points at a live cell of the arena this thread holds.
        let cell = unsafe { &*cell };
        cell.store(cell.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    model(|| {
        let set = Arc::new(ArenaSet::new());
        let worker = |n: u64| {
            let set = set.clone();
            thread::spawn(move || {
                let slot = Slot::new();
                let holder = Holder::acquire(&set);
                // SAFETY (test): `slot` outlives `holder` on this thread.
                unsafe { holder.fill(&slot, 3, 0) }.expect("no fill in progress");
                add_through(&slot, n);
                add_through(&slot, n);
                holder.release();
                assert!(slot.cell().is_null(), "release resets the slot");
            })
        };
        let t1 = worker(1);
        let t2 = worker(10);
        let seen = set.sum(3);
        assert!(seen <= 22, "sum(3) = {seen}");
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(set.sum(3), 22);
        assert_eq!(set.live(), 0);
    });
}
