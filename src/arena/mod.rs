//! Per-thread single-writer arenas: blocks of `AtomicU64` cells, one cell per series slot,
//! written only by the thread that holds the arena and summed by readers with relaxed loads.
//!
//! The design follows the "thread-local counters summed at read time" scheme (Linux per-CPU
//! counters, folly `ThreadCachedInt`) with two twists: an arena grows in fixed chunks reached
//! through a table of atomic chunk pointers, so series registered after a thread started
//! still get a cell; and arenas are never freed or zeroed: when a thread exits its arena goes
//! back to the pool and the next new thread adopts it, adding on top of what is there. Sums
//! stay exact across any amount of thread churn, with no folding step, and memory is bounded
//! by the peak number of live threads.
//!
//! On top of the arena, a [`Holder`] is one thread's tenure of an arena together with the
//! per-call-site [`Slot`]s it filled: each slot caches the address of its call site's cells
//! in this arena, so a macro's hot path is one thread-local load, a test and the add. The
//! holder resets every slot it filled *before* it gives the arena back, so no cached address
//! outlives the thread's ownership of the cells it points to.

#[cfg(not(loom))]
pub(crate) mod local;
#[cfg(not(loom))]
mod pool;

#[cfg(not(loom))]
pub(crate) use pool::{CellPool, CellSpaceExhausted, RESERVED_CELLS, allocate_cells};

use core::cell::{Cell, RefCell};

use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// log2 of the number of cells in one chunk.
pub(crate) const CHUNK_SHIFT: u32 = if cfg!(loom) { 1 } else { 9 };
/// Cells in one chunk (512: 4 KiB, one page).
pub(crate) const CHUNK_CELLS: usize = 1 << CHUNK_SHIFT;
/// Entries in an arena's chunk table; a power of two so that masking an id replaces the
/// bounds check on the hot path. 128 Ki chunks: 64 Mi cells (512 MiB of cells in an arena
/// whose thread touched every series). The table itself is 1 MiB of *virtual* memory per
/// arena, allocated zeroed, so only the pages of it that point to touched chunks become
/// resident (one 4 KiB page per 256 Ki cells).
pub(crate) const MAX_CHUNKS: usize = if cfg!(loom) { 4 } else { 1 << 17 };
/// The size of the cell id space shared by every registry in the process (64 Mi cells).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const MAX_CELLS: usize = CHUNK_CELLS * MAX_CHUNKS;

/// One fixed block of cells, allocated by the arena's owner on first touch.
struct Chunk {
    cells: [AtomicU64; CHUNK_CELLS],
}

impl Chunk {
    fn new() -> Self {
        Self {
            cells: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// One thread's block of cells. Only the thread that acquired it (through
/// [`ArenaSet::acquire`]) writes it; anyone may read it.
pub struct Arena {
    chunks: [AtomicPtr<Chunk>; MAX_CHUNKS],
    in_use: AtomicBool,
    /// The arena published before this one; set before publication, never changed after.
    next: AtomicPtr<Arena>,
}

impl Arena {
    /// A new arena, held (`in_use`). Outside loom its memory starts zeroed (all its fields
    /// are atomics whose zero bits are null / false), so its large chunk table costs address
    /// space, not memory, until chunks are installed: see [`crate::pages`].
    #[cfg(not(loom))]
    fn new_boxed() -> *mut Arena {
        let arena = crate::pages::map_zeroed(std::alloc::Layout::new::<Arena>()).cast::<Arena>();
        // SAFETY: just allocated and initialised (zeroed: a valid `Arena`, above); not yet
        // shared.
        unsafe { arena.as_ref() }
            .in_use
            .store(true, Ordering::Relaxed);
        arena.as_ptr()
    }

    /// Frees an arena from [`Arena::new_boxed`].
    ///
    /// # Safety
    /// `arena` came from `new_boxed`, is not borrowed, and is freed once.
    #[cfg(not(loom))]
    unsafe fn free_boxed(arena: *mut Arena) {
        // SAFETY: the caller's contract; `new_boxed` mapped it with this layout.
        unsafe {
            crate::pages::unmap_zeroed(
                core::ptr::NonNull::new_unchecked(arena).cast(),
                std::alloc::Layout::new::<Arena>(),
            );
        }
    }

    /// Frees an arena from [`Arena::new_boxed`].
    ///
    /// # Safety
    /// As the non-loom version.
    #[cfg(loom)]
    unsafe fn free_boxed(arena: *mut Arena) {
        // SAFETY: the caller's contract: from `Box::into_raw` in `new_boxed`.
        drop(unsafe { Box::from_raw(arena) });
    }

    /// A new arena, held (`in_use`), on the heap (loom atomics are not zero-initialisable).
    #[cfg(loom)]
    fn new_boxed() -> *mut Arena {
        Box::into_raw(Box::new(Self {
            chunks: core::array::from_fn(|_| AtomicPtr::new(core::ptr::null_mut())),
            in_use: AtomicBool::new(true),
            next: AtomicPtr::new(core::ptr::null_mut()),
        }))
    }

    /// The owner's view of the chunk holding cell `id`, allocating it on first touch.
    ///
    /// Must only be called by the thread that holds this arena.
    #[inline(always)]
    fn owned_chunk(&self, id: u32) -> &Chunk {
        // The mask is a no-op for ids handed out by the registry (< MAX_CELLS) and lets the
        // compiler drop the bounds check.
        let index = (id as usize >> CHUNK_SHIFT) & (MAX_CHUNKS - 1);
        // Relaxed is enough: a non-null pointer here was stored either by this thread, or by
        // a previous owner whose release of the arena (Release store of `in_use`)
        // happens-before our acquisition (Acquire CAS in `ArenaSet::acquire`).
        let chunk = self.chunks[index].load(Ordering::Relaxed);
        if chunk.is_null() {
            self.install_chunk(index)
        } else {
            // SAFETY: non-null chunk pointers come from `Box::into_raw` in `install_chunk` and
            // are freed only by `ArenaSet::drop`, which needs `&mut ArenaSet` and so cannot
            // run while `self` is borrowed.
            unsafe { &*chunk }
        }
    }

    /// The owner's view of cell `id`, allocating its chunk on first touch.
    #[inline(always)]
    fn owned_cell(&self, id: u32) -> &AtomicU64 {
        &self.owned_chunk(id).cells[id as usize & (CHUNK_CELLS - 1)]
    }

    /// The address of cell `id`, allocating its chunk on first touch: the cells from `id` to
    /// the end of its chunk follow it. Owner only.
    #[inline(always)]
    pub fn cell_ptr(&self, id: u32) -> *const AtomicU64 {
        self.owned_cell(id)
    }

    /// The owner's view of the cells from `base` to the end of its chunk: one chunk lookup
    /// for a series whose cells the registry placed inside a single chunk. Owner only.
    #[inline(always)]
    pub fn block(&self, base: u32) -> Block<'_> {
        Block {
            cells: &self.owned_chunk(base).cells,
            offset: base as usize & (CHUNK_CELLS - 1),
        }
    }

    #[cold]
    #[inline(never)]
    fn install_chunk(&self, index: usize) -> &Chunk {
        let chunk = Box::into_raw(Box::new(Chunk::new()));
        // Release: publishes the zeroed cells to readers; pairs with the Acquire load of the
        // chunk pointer in `Arena::read`. No CAS: only the owner ever stores here.
        self.chunks[index].store(chunk, Ordering::Release);
        // SAFETY: just allocated above; freed only by `ArenaSet::drop` (see `owned_cell`).
        unsafe { &*chunk }
    }

    /// Adds `n` to cell `id` (wrapping). Owner only: a relaxed load and a relaxed store, no
    /// read-modify-write, because no other thread writes this cell.
    #[inline(always)]
    pub fn add(&self, id: u32, n: u64) {
        let cell = self.owned_cell(id);
        // Relaxed: single writer; readers only need some recent value of the cell, and the
        // hand-over to a later owner is ordered by `in_use` (see `ArenaSet::release`).
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds `v` to the `f64` stored (as bits) in cell `id`. Owner only. (The record paths
    /// use [`Block::add_f64`] or a call-site slot; the loom models use this.)
    #[cfg_attr(not(loom), allow(dead_code))]
    #[inline(always)]
    pub fn add_f64(&self, id: u32, v: f64) {
        let cell = self.owned_cell(id);
        // Relaxed: as in `add`.
        let old = f64::from_bits(cell.load(Ordering::Relaxed));
        cell.store((old + v).to_bits(), Ordering::Relaxed);
    }

    /// Reads cell `id`; any thread. A chunk never touched reads as 0.
    #[inline]
    fn read(&self, id: u32) -> u64 {
        let index = (id as usize >> CHUNK_SHIFT) & (MAX_CHUNKS - 1);
        // Acquire: pairs with the Release store in `install_chunk`, so the chunk's
        // initialised cells are visible before we read one.
        let chunk = self.chunks[index].load(Ordering::Acquire);
        if chunk.is_null() {
            return 0;
        }
        // SAFETY: as in `owned_cell`: chunks live until `ArenaSet::drop`.
        let chunk = unsafe { &*chunk };
        // Relaxed: a reader wants a recent value of this one cell; no other data is read
        // through it.
        chunk.cells[id as usize & (CHUNK_CELLS - 1)].load(Ordering::Relaxed)
    }
}

/// A series' cells inside one chunk of the owner's arena (see [`Arena::block`]).
pub struct Block<'a> {
    cells: &'a [AtomicU64; CHUNK_CELLS],
    offset: usize,
}

impl Block<'_> {
    #[inline(always)]
    fn cell(&self, i: u32) -> &AtomicU64 {
        // The mask is a no-op for the series the registry lays out (never across a chunk
        // boundary) and replaces the bounds check on the record path.
        &self.cells[(self.offset + i as usize) & (CHUNK_CELLS - 1)]
    }

    /// Adds `n` to cell `base + i` (wrapping).
    #[inline(always)]
    pub fn add(&self, i: u32, n: u64) {
        let cell = self.cell(i);
        // Relaxed: single writer, as in `Arena::add`.
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds `v` to the `f64` in cell `base + i`.
    #[inline(always)]
    pub fn add_f64(&self, i: u32, v: f64) {
        let cell = self.cell(i);
        // Relaxed: single writer, as in `Arena::add`.
        let old = f64::from_bits(cell.load(Ordering::Relaxed));
        cell.store((old + v).to_bits(), Ordering::Relaxed);
    }
}

/// One call site's cache of its cells in the calling thread's arena: the address of the
/// site's first cell (null until filled) and one word the site may use for what its record
/// path needs besides (a histogram's bucket layout). Lives in a `const`, destructor-free
/// `thread_local!` of the call site, so reading it is a plain thread-local load.
#[derive(Debug)]
pub struct Slot {
    cell: Cell<*const AtomicU64>,
    aux: Cell<u64>,
}

impl Slot {
    /// An empty slot.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            cell: Cell::new(core::ptr::null()),
            aux: Cell::new(0),
        }
    }

    /// An empty slot.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            cell: Cell::new(core::ptr::null()),
            aux: Cell::new(0),
        }
    }

    /// The cached address of the site's first cell, or null. A non-null address points into
    /// the arena this thread holds, and stays valid until the thread's [`Holder`] releases
    /// it (which resets the slot first).
    #[inline(always)]
    pub fn cell(&self) -> *const AtomicU64 {
        self.cell.get()
    }

    /// The word stored beside the address by [`Holder::fill`].
    #[inline(always)]
    pub fn aux(&self) -> u64 {
        self.aux.get()
    }
}

#[cfg(not(loom))]
impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

/// One thread's tenure of an arena, and the call-site [`Slot`]s it filled. Releasing it
/// resets those slots, then returns the arena to its set.
pub struct Holder<'a> {
    set: &'a ArenaSet,
    arena: &'a Arena,
    filled: RefCell<Vec<*const Slot>>,
}

impl<'a> Holder<'a> {
    /// Acquires an arena of `set` (see [`ArenaSet::acquire`]).
    pub fn acquire(set: &'a ArenaSet) -> Self {
        Self {
            set,
            arena: set.acquire(),
            filled: RefCell::new(Vec::new()),
        }
    }

    /// The held arena.
    #[inline(always)]
    pub fn arena(&self) -> &'a Arena {
        self.arena
    }

    /// Caches in `slot` the address of cell `id` of the held arena (installing its chunk on
    /// first touch) and `aux`, and returns that cell. Cells `id..` up to the end of `id`'s
    /// chunk may then be reached from the address. `None` (and the slot left empty) when the
    /// holder's list is in use: a fill reached from inside another fill (an allocator that
    /// records, say), whose caller then records through the arena without the slot.
    ///
    /// # Safety
    ///
    /// `slot` must stay valid (not moved, not freed) until this holder is released or
    /// dropped, and must only be read on the thread that holds this holder: it is a
    /// destructor-free thread-local of that thread (in the library), or a value that
    /// outlives the holder on its thread (in models).
    pub unsafe fn fill(&self, slot: &Slot, id: u32, aux: u64) -> Option<&'a AtomicU64> {
        let mut filled = self.filled.try_borrow_mut().ok()?;
        // Grow the list first (it may allocate, and an allocation may record): the slot is
        // written only once its reset is sure to be listed.
        filled.reserve(1);
        let cell = self.arena.owned_cell(id);
        filled.push(slot);
        slot.aux.set(aux);
        slot.cell.set(cell);
        Some(cell)
    }

    /// Resets every slot this holder filled, then gives the arena back to its set: no slot
    /// still points into the arena once another thread may adopt it.
    pub fn release(self) {
        for slot in self.filled.take() {
            // SAFETY: `fill`'s contract: the slot is still valid and read only by this
            // thread, which is running this release.
            unsafe { &*slot }.cell.set(core::ptr::null());
        }
        // The resets above are plain thread-local writes: no other thread reads these slots,
        // and the arena's writes are handed over by `release`'s Release store.
        self.set.release(self.arena);
    }
}

/// Every arena ever created, as an append-only list, plus the pool of free ones (those
/// whose `in_use` flag is clear).
pub struct ArenaSet {
    head: AtomicPtr<Arena>,
    created: AtomicUsize,
    live: AtomicUsize,
}

impl ArenaSet {
    /// An empty set.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            head: AtomicPtr::new(core::ptr::null_mut()),
            created: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
        }
    }

    /// An empty set (loom atomics have no `const` constructor).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            head: AtomicPtr::new(core::ptr::null_mut()),
            created: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Arena> {
        // Acquire: pairs with the Release CAS in `acquire` that published the head arena, so
        // its fields (and, transitively, every older arena's) are initialised.
        let mut next = self.head.load(Ordering::Acquire);
        core::iter::from_fn(move || {
            // SAFETY: list nodes come from `Arena::new_boxed` in `acquire` and are freed only
            // by `drop`, which needs `&mut self`.
            let arena = unsafe { next.as_ref() }?;
            // Relaxed: `next` was written before the node was published (see `acquire`), and
            // we reached the node through an Acquire load, so its value is visible.
            next = arena.next.load(Ordering::Relaxed);
            Some(arena)
        })
    }

    /// Takes a free arena, or creates one. The caller becomes its single writer until it
    /// passes it to [`ArenaSet::release`].
    pub fn acquire(&self) -> &Arena {
        for arena in self.iter() {
            // Relaxed pre-check: only a hint; the CAS below decides.
            if !arena.in_use.load(Ordering::Relaxed)
                && arena
                    .in_use
                    // Acquire: pairs with the Release store in `release`, so every cell the
                    // previous owner wrote (and every chunk it installed) is visible before
                    // we load-and-store on top of it.
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                self.live.fetch_add(1, Ordering::Relaxed);
                return arena;
            }
        }
        let arena = Arena::new_boxed();
        // Relaxed: a statistic only.
        self.created.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::Relaxed);
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `arena` is not yet published, so we are its only user.
            unsafe { &*arena }.next.store(head, Ordering::Relaxed);
            // Release: publishes the new node (its `next` and zeroed chunk table); pairs with
            // the Acquire load of `head` in `iter`.
            match self
                .head
                .compare_exchange_weak(head, arena, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(current) => head = current,
            }
        }
        // SAFETY: published above; lives until `drop`.
        unsafe { &*arena }
    }

    /// Returns `arena` to the pool. Its cells keep their values; the next owner adds on top.
    pub fn release(&self, arena: &Arena) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        // Release: makes every write of this (now former) owner visible to the next owner;
        // pairs with the Acquire CAS in `acquire`.
        arena.in_use.store(false, Ordering::Release);
    }

    /// The sum of cell `id` over every arena (wrapping). Never blocks writers.
    pub fn sum(&self, id: u32) -> u64 {
        self.iter()
            .fold(0u64, |acc, a| acc.wrapping_add(a.read(id)))
    }

    /// The sum of the `f64` values stored (as bits) in cell `id` over every arena.
    pub fn sum_f64(&self, id: u32) -> f64 {
        self.iter().map(|a| f64::from_bits(a.read(id))).sum()
    }

    /// Arenas ever created: bounded by the peak number of threads holding one at once.
    pub fn created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }

    /// Arenas held by a thread right now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

#[cfg(not(loom))]
impl Default for ArenaSet {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ArenaSet {
    fn drop(&mut self) {
        // `&mut self`: no arena or chunk of this set is borrowed any more.
        let mut next = self.head.load(Ordering::Relaxed);
        while !next.is_null() {
            let this = next;
            // SAFETY: every node came from `Arena::new_boxed` in `acquire` and is freed only
            // below, once.
            let arena = unsafe { &*this };
            next = arena.next.load(Ordering::Relaxed);
            for slot in &arena.chunks {
                let chunk = slot.load(Ordering::Relaxed);
                if !chunk.is_null() {
                    // SAFETY: came from `Box::into_raw` in `install_chunk`; freed once, here.
                    drop(unsafe { Box::from_raw(chunk) });
                }
            }
            // SAFETY: from `new_boxed`; `arena` is not used after this.
            unsafe { Arena::free_boxed(this) };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cells_sum_across_arenas_and_survive_adoption() {
        let set = ArenaSet::new();
        let a = set.acquire();
        a.add(3, 5);
        a.add(CHUNK_CELLS as u32 + 1, 7); // second chunk
        let b = set.acquire();
        b.add(3, 1);
        assert_eq!(set.sum(3), 6);
        assert_eq!(set.sum(CHUNK_CELLS as u32 + 1), 7);
        assert_eq!(set.sum(4), 0);
        assert_eq!(set.created(), 2);
        set.release(a);
        let c = set.acquire(); // adopts `a`
        assert_eq!(set.created(), 2);
        c.add(3, 10);
        assert_eq!(set.sum(3), 16);
        assert_eq!(set.live(), 2);
    }

    #[test]
    fn f64_cells_add() {
        let set = ArenaSet::new();
        let a = set.acquire();
        a.add_f64(0, 1.5);
        a.add_f64(0, 2.25);
        let b = set.acquire();
        b.add_f64(0, -0.75);
        assert_eq!(set.sum_f64(0), 3.0);
    }
}
