//! A bounded single-producer / single-consumer ring of [`Record`]s: one per recording thread.
//! Algorithm: rtrb / Erik Rigtorp's SPSC queue (monotonic indices, each side caching the other's).
//!
//! # Design
//!
//! `head` (the oldest unread record) and `tail` (one past the newest) are `usize` indices
//! that only grow (wrapping at `usize::MAX`, which no ring reaches); record `i` lives in slot
//! `i & mask`. The producer caches `head` and the consumer caches `tail`, so in the common case
//! a push touches no line the consumer writes: four relaxed stores of the record's words and
//! one Release store of `tail`. No CAS, no lock.
//!
//! A slot is four `AtomicU64` rather than plain memory: under [`Overflow::DropOldest`] the
//! producer may overwrite a slot the consumer is copying out, and atomics make that race
//! well defined (the consumer then discards what it copied, see below). The only `unsafe` in
//! this file is the slot lookup's unchecked index (a masked index is in bounds).
//!
//! # Who moves `head`
//!
//! Under [`Overflow::DropNewest`] and [`Overflow::Block`] only the consumer moves `head`,
//! with a plain Release store. Under [`Overflow::DropOldest`] the producer moves it too, to
//! evict the oldest record from a full ring, so both sides move it with a CAS:
//!
//! - The producer, finding the ring full (`tail - head == capacity`), reads the oldest
//!   record `h` (its own earlier write) and CASes `head` from `h` to `h + 1`. If that
//!   succeeds, `h` is evicted and handed back to the caller to count; the producer then
//!   writes record `h + capacity` into `h`'s slot. If it fails, the consumer moved `head`, so
//!   there is space now and the record is stored normally.
//! - The consumer copies records `[h, end)` into a local buffer, then CASes `head` from `h`
//!   to `end` and hands the copies out only if that succeeds. If it fails with head `h2`, the
//!   producer evicted `[h, h2)` (and counted them); the copies of `[h2, end)` are still good,
//!   so it retries the CAS from `h2`.
//!
//! Why a copy of record `j` taken before a successful CAS `s -> end` (with `s <= j < end`)
//! is exactly record `j`: the producer writes record `j + capacity` into `j`'s slot only
//! after it has seen `head > j`. It cannot have got there by evicting `j` itself (its CAS
//! `j -> j + 1` and ours `s -> end` cannot both succeed: `head` only grows, and each reads
//! the value the other would have replaced), so it read `head > j` with Acquire from our
//! Release CAS or a later modification (a later consumer Release, or a producer eviction,
//! which as a read-modify-write continues our release sequence). So our copy of slot `j`
//! happens-before any overwrite of it, and record `j`'s write happens-before the copy (via
//! the Release/Acquire pair on `tail`). A copy that a failed CAS discards may be torn; it
//! is never handed out.

use core::time::Duration;
use std::time::Instant;

#[cfg(not(loom))]
use crossbeam_utils::Backoff;
use crossbeam_utils::CachePadded;

use super::record::Record;
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Ordering, yield_now};

/// Records [`Consumer::drain`] copies out per CAS of `head` under [`Overflow::DropOldest`]
/// (a 1 KiB buffer on the stack).
const EVICTING_BATCH: usize = 32;

/// What [`Producer::push`] does when the ring is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overflow {
    /// The new record is not stored and comes back in [`Push::Full`]. The cheapest: the
    /// producer never touches the consumer's index except to read it. The only policy
    /// under which the ring may keep a reserve for [`Producer::try_push`]
    /// ([`ring_reserving`]; the sampled layer keeps an eighth for critical records).
    #[default]
    DropNewest,
    /// The oldest unread record is discarded to make room and comes back in
    /// [`Push::Evicted`]. Costs a CAS per overflowing push, and a CAS per batch on the
    /// consumer side (see the module docs).
    DropOldest,
    /// Wait up to `timeout` for the consumer to make room (spinning, then yielding), then
    /// give up with [`Push::TimedOut`]. Meant for short timeouts: the producer burns its
    /// core while it waits. A zero timeout gives up at once.
    Block {
        /// How long a push may wait for space.
        timeout: Duration,
    },
}

/// The outcome of [`Producer::push`].
#[must_use = "a record that was not stored, or was evicted, must be counted as dropped"]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Push {
    /// The record was stored.
    Stored,
    /// [`Overflow::DropNewest`]: the ring was full; the record (returned) was not stored.
    Full(Record),
    /// [`Overflow::DropOldest`]: the record was stored; the oldest unread record was
    /// discarded to make room and is returned so the caller can count it (or reroute it).
    Evicted(Record),
    /// [`Overflow::Block`]: no space came within the timeout (or the consumer is gone); the
    /// record (returned) was not stored.
    TimedOut(Record),
}

impl Push {
    /// The record this push lost, if any: the new one for [`Push::Full`] and
    /// [`Push::TimedOut`], the evicted one for [`Push::Evicted`].
    #[inline]
    pub fn dropped(self) -> Option<Record> {
        match self {
            Push::Stored => None,
            Push::Full(r) | Push::Evicted(r) | Push::TimedOut(r) => Some(r),
        }
    }
}

/// One record's storage: its four words (see [`Record::to_words`]).
type Slot = [AtomicU64; 4];

/// The state both halves share.
struct Shared {
    /// Index of the oldest unread record. Moved by the consumer; under
    /// [`Overflow::DropOldest`] also by the producer (eviction), both with CAS then.
    head: CachePadded<AtomicUsize>,
    /// One past the newest record. Written only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// `capacity` slots; record `i` lives in `slots[i & mask]`. Outside loom in pages of
    /// their own ([`crate::pages`]), returned to the system when the ring is freed.
    #[cfg(not(loom))]
    slots: crate::pages::ZeroedSlice<Slot>,
    #[cfg(loom)]
    slots: Box<[Slot]>,
    /// `capacity - 1` (capacity is a power of two).
    mask: usize,
    /// The most records a [`Producer::push`] fills the ring to ([`ring_reserving`]).
    limit: usize,
    policy: Overflow,
    /// Set when the [`Producer`] is dropped.
    producer_gone: AtomicBool,
    /// Set when the [`Consumer`] is dropped.
    consumer_gone: AtomicBool,
    /// Weight (`2^k` per record) of the records this ring's producer dropped, per series:
    /// an open-addressed table of `(series + 1, weight)` entries (0: free). Only the
    /// producer writes; an entry, once claimed, keeps its series, and its weight only
    /// grows. Series that find no free entry are tallied together in `dropped_rest`. See
    /// [`Consumer::drain_weighted`].
    dropped: [(AtomicU64, AtomicU64); DROP_SLOTS],
    /// Dropped weight of series that found the table full.
    dropped_rest: AtomicU64,
    /// Under loom, a stand-in cell per slot that the producer "writes" and the consumer
    /// "reads" alongside the real words, so loom's causality check proves each consumer read
    /// happens-before the producer's next write of that slot. The atomics alone cannot show
    /// it: loom never lets a load see a store that comes later in its interleaving, so it
    /// would pass a missing Acquire/Release on `head`. Not under `DropOldest`, whose consumer
    /// copies race evictions by design (the module docs argue that case).
    #[cfg(loom)]
    shadow: Box<[loom::cell::UnsafeCell<()>]>,
}

impl Shared {
    #[inline]
    fn capacity(&self) -> usize {
        self.mask + 1
    }

    #[inline]
    fn slot(&self, index: usize) -> &Slot {
        debug_assert_eq!(self.slots.len(), self.mask + 1);
        // SAFETY: `slots` holds `mask + 1` slots (`ring` makes both from one capacity), so
        // a masked index is in bounds.
        unsafe { self.slots.get_unchecked(index & self.mask) }
    }

    /// Under loom, records an access to record `index`'s slot in its shadow cell.
    #[cfg(loom)]
    fn track_access(&self, index: usize, write: bool) {
        if self.policy != Overflow::DropOldest {
            let cell = &self.shadow[index & self.mask];
            if write {
                cell.with_mut(|_| ());
            } else {
                cell.with(|_| ());
            }
        }
    }

    /// Writes record `index` into its slot: the record's words ([`Record::to_words`]).
    /// Producer only.
    #[inline(always)]
    fn write(&self, index: usize, words: [u64; 4]) {
        #[cfg(loom)]
        self.track_access(index, true);
        for (cell, word) in self.slot(index).iter().zip(words) {
            // Relaxed: the Release store of `tail` that follows (`Producer::store`)
            // publishes these words to the consumer; no one reads them before that, except
            // a DropOldest consumer whose copy of an evicted slot is discarded (module docs).
            cell.store(word, Ordering::Relaxed);
        }
    }

    /// Reads the words in record `index`'s slot.
    #[inline]
    fn read(&self, index: usize) -> [u64; 4] {
        #[cfg(loom)]
        self.track_access(index, false);
        let slot = self.slot(index);
        // Relaxed: the consumer reads a slot only below a `tail` it loaded with Acquire, which
        // makes the record's words visible; the producer reads only its own writes. The
        // module docs say why no later write can be seen by a copy that is handed out.
        core::array::from_fn(|i| slot[i].load(Ordering::Relaxed))
    }
}

/// Entries of a ring's per-series drop tally (see [`Consumer::drain_weighted`]).
pub const DROP_SLOTS: usize = if cfg!(loom) { 2 } else { 64 };

/// One [`Consumer::drain_weighted`] call's view of the producer's drop tally: per table
/// entry (then the rest, at [`DROP_SLOTS`]) its series + 1 (0: free), the weight dropped,
/// and the weight drained.
struct DropTally {
    ids: [u64; DROP_SLOTS + 1],
    dropped: [u64; DROP_SLOTS + 1],
    drained: [u64; DROP_SLOTS + 1],
}

impl DropTally {
    /// The tally a record of `series` uses: its entry, or the rest (`DROP_SLOTS`).
    fn of(&self, series: u32) -> usize {
        let id = series as u64 + 1;
        let mut j = drop_home(series);
        for _ in 0..DROP_SLOTS {
            match self.ids[j] {
                e if e == id => return j,
                0 => return DROP_SLOTS,
                _ => j = (j + 1) % DROP_SLOTS,
            }
        }
        DROP_SLOTS
    }

    /// Counts a record about to be drained (critical records are never dropped).
    fn note_drained(&mut self, r: &Record) {
        if !r.critical {
            let j = self.of(r.series);
            self.drained[j] = self.drained[j].saturating_add(r.weight());
        }
    }

    /// How many records of its series a drained record stands for: `(W + D) / W` with
    /// `D` the weight its tally dropped and `W` the weight drained; 1 for a critical record.
    fn scale_of(&self, r: &Record) -> f64 {
        let j = self.of(r.series);
        if r.critical || self.drained[j] == 0 || self.dropped[j] == 0 {
            1.0
        } else {
            (self.drained[j] as f64 + self.dropped[j] as f64) / self.drained[j] as f64
        }
    }
}

/// Where a series' probe in the drop tally starts (Fibonacci hashing: sampled series ids
/// are cell ids a fixed stride apart).
#[inline]
fn drop_home(series: u32) -> usize {
    (series.wrapping_mul(0x9e37_79b9) as usize) % DROP_SLOTS
}

/// Adds `weight` to a drop tally that only the producer writes.
#[inline]
fn add_tally(tally: &AtomicU64, weight: u64) {
    // Relaxed: only the producer writes a tally (a load and a store, no RMW); the consumer
    // reads some recent value, and a drop it misses now it sees at its next drain. No other
    // data is published through it.
    tally.store(
        tally.load(Ordering::Relaxed).saturating_add(weight),
        Ordering::Relaxed,
    );
}

/// Records between `head` and `tail` when the two were read at different moments: 0 if
/// `head` appears past `tail`, never more than `capacity`.
#[inline]
fn distance(head: usize, tail: usize, capacity: usize) -> usize {
    let d = tail.wrapping_sub(head);
    if d > isize::MAX as usize {
        0
    } else {
        d.min(capacity)
    }
}

/// The capacity [`ring`] makes of a requested one: rounded up to a power of two, at least 2.
///
/// # Panics
///
/// If the rounded capacity does not fit in a `usize`.
pub fn rounded_capacity(capacity: usize) -> usize {
    capacity
        .max(2)
        .checked_next_power_of_two()
        .expect("ring capacity overflows usize")
}

/// The most records a [`Producer::push`] fills a ring of `capacity` (a power of two) to,
/// with `reserve` slots kept for [`Producer::try_push`] ([`ring_reserving`]).
pub fn limit_of(capacity: usize, policy: Overflow, reserve: usize) -> usize {
    match policy {
        Overflow::DropNewest => capacity - reserve.min(capacity / 2),
        Overflow::DropOldest | Overflow::Block { .. } => capacity,
    }
}

/// Creates a ring holding up to `capacity` records, rounded up to a power of two (so a
/// record's slot is its index masked) and to at least 2. `policy` says what a push into a
/// full ring does; it is fixed for the ring's life.
///
/// # Panics
///
/// If the rounded capacity does not fit in a `usize`.
pub fn ring(capacity: usize, policy: Overflow) -> (Producer, Consumer) {
    ring_reserving(capacity, policy, 0)
}

/// [`ring`] whose last `reserve` slots (at most half the rounded capacity) only
/// [`Producer::try_push`] fills, with [`Overflow::DropNewest`]: a [`Producer::push`] or
/// [`Producer::try_store`] finds the ring full at `capacity - reserve` records, a `try_push`
/// at `capacity`. The sampled layer pushes critical records with `try_push`, so a ring that
/// sampled records have filled still takes critical ones, which otherwise go to the shared
/// lane (whose blocks come from the recording thread's heap). Under the other policies a
/// push evicts or waits for room instead, and `reserve` is ignored.
pub fn ring_reserving(capacity: usize, policy: Overflow, reserve: usize) -> (Producer, Consumer) {
    let capacity = rounded_capacity(capacity);
    let limit = limit_of(capacity, policy, reserve);
    #[cfg(not(loom))]
    // SAFETY: zero bits are a valid `[AtomicU64; 4]` (an empty slot).
    let slots = unsafe { crate::pages::ZeroedSlice::new(capacity) };
    #[cfg(loom)]
    let slots = (0..capacity)
        .map(|_| core::array::from_fn(|_| AtomicU64::new(0)))
        .collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots,
        mask: capacity - 1,
        limit,
        policy,
        producer_gone: AtomicBool::new(false),
        consumer_gone: AtomicBool::new(false),
        dropped: core::array::from_fn(|_| (AtomicU64::new(0), AtomicU64::new(0))),
        dropped_rest: AtomicU64::new(0),
        #[cfg(loom)]
        shadow: (0..capacity)
            .map(|_| loom::cell::UnsafeCell::new(()))
            .collect(),
    });
    let producer = Producer {
        shared: shared.clone(),
        tail: 0,
        head_cache: 0,
        limit,
    };
    let consumer = Consumer {
        shared,
        head: 0,
        tail_cache: 0,
        dropped_seen: [0; DROP_SLOTS + 1],
        dropped_carry: [0; DROP_SLOTS + 1],
    };
    (producer, consumer)
}

/// The writing half of a ring: owned by the recording thread.
pub struct Producer {
    shared: Arc<Shared>,
    /// `tail`; only we write it, so this copy is exact.
    tail: usize,
    /// Some past value of `head`. `head` only grows, so `tail - head_cache` over-estimates
    /// how full the ring is: a slot that is free by this copy is free.
    head_cache: usize,
    /// The most records a [`Producer::push`] or [`Producer::try_store`] fills the ring to:
    /// the capacity less the reserve for [`Producer::try_push`] ([`ring_reserving`]). A
    /// copy of `Shared::limit` (which the consumer reads), kept here so that the sampled
    /// path's space check reads only the producer's own line, as it does `tail`.
    limit: usize,
}

impl Producer {
    /// Stores `r`; if the ring is full, does what the ring's [`Overflow`] policy says.
    #[inline]
    pub fn push(&mut self, r: Record) -> Push {
        if self.has_space() {
            self.store(r);
            return Push::Stored;
        }
        self.push_full(r)
    }

    /// Stores `r` if there is space, whatever the policy: never evicts, never waits (for
    /// critical events, which go elsewhere when the ring is full).
    ///
    /// # Errors
    ///
    /// Gives `r` back if the ring is full.
    #[inline]
    pub fn try_push(&mut self, r: Record) -> Result<(), Record> {
        if self.has_space_below(self.shared.capacity()) {
            self.store(r);
            Ok(())
        } else {
            Err(r)
        }
    }

    /// Records in the ring now, as the producer sees it (a snapshot: the consumer may be
    /// taking some).
    pub fn len(&self) -> usize {
        // Relaxed: a snapshot for reporting; no slot is read on the strength of it.
        let head = self.shared.head.load(Ordering::Relaxed);
        distance(head, self.tail, self.capacity())
    }

    /// Tallies `weight` (a dropped record's `2^k`) against `series`: the consumer weights the
    /// records of the same series it drains next to stand for it
    /// ([`Consumer::drain_weighted`]).
    #[inline]
    pub fn note_dropped(&self, series: u32, weight: u64) {
        let id = series as u64 + 1;
        let table = &self.shared.dropped;
        let mut j = drop_home(series);
        for _ in 0..DROP_SLOTS {
            let (entry, tally) = &table[j];
            // Relaxed: only this producer writes the entries.
            match entry.load(Ordering::Relaxed) {
                e if e == id => return add_tally(tally, weight),
                0 => {
                    // Relaxed: the weight is published by the Release store just below.
                    tally.store(weight, Ordering::Relaxed);
                    // Release: the weight stored above is visible to a consumer that sees
                    // this entry's series; pairs with the Acquire load in
                    // `Consumer::drain_weighted`.
                    entry.store(id, Ordering::Release);
                    return;
                }
                _ => j = (j + 1) % DROP_SLOTS,
            }
        }
        add_tally(&self.shared.dropped_rest, weight);
    }

    /// An upper bound of [`Producer::len`] from the producer's own copies of the indices:
    /// no load of the consumer's cache line.
    #[inline]
    pub fn len_upper_bound(&self) -> usize {
        self.tail.wrapping_sub(self.head_cache)
    }

    /// Whether the ring is empty now, as the producer sees it.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most records the ring holds.
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// The ring's overflow policy.
    pub fn policy(&self) -> Overflow {
        self.shared.policy
    }

    /// Whether the [`Consumer`] was dropped: nothing pushed from now on will be read.
    pub fn is_abandoned(&self) -> bool {
        // Acquire: pairs with the Release store in `Consumer::drop` (nothing is read through
        // it; Acquire keeps the two `is_abandoned` symmetric).
        self.shared.consumer_gone.load(Ordering::Acquire)
    }

    /// Whether one more record fits below the reserve ([`ring_reserving`]), refreshing the
    /// cached `head` if it looks full.
    #[inline]
    fn has_space(&mut self) -> bool {
        self.has_space_below(self.limit)
    }

    /// Whether the ring holds fewer than `limit` (at most the capacity) records, refreshing
    /// the cached `head` if it looks full.
    #[inline]
    fn has_space_below(&mut self, limit: usize) -> bool {
        if self.tail.wrapping_sub(self.head_cache) < limit {
            return true;
        }
        // Acquire: pairs with the consumer's Release store (or Release CAS) of `head` in
        // `Consumer::pop`/`drain`: its reads of the slots it freed happen-before we
        // overwrite them.
        self.head_cache = self.shared.head.load(Ordering::Acquire);
        self.tail.wrapping_sub(self.head_cache) < limit
    }

    /// Stores a record given as its words ([`Record::to_words`]) if one more fits, whatever
    /// the policy (never evicts, never waits); `None` if it is full to its limit (below the
    /// reserve, [`ring_reserving`]). The sampled path's push: the words are built where the
    /// record's fields are, and the policy is applied out of line (with [`Producer::push`]
    /// or [`Producer::try_push`]) only when this fails.
    ///
    /// Returns the producer's upper bound of the records held after the store
    /// ([`Producer::len_upper_bound`]), `None` if the ring was full.
    #[inline(always)]
    pub fn try_store(&mut self, words: [u64; 4]) -> Option<usize> {
        if self.has_space() {
            let tail = self.tail;
            self.store_words(words);
            Some(tail.wrapping_add(1).wrapping_sub(self.head_cache))
        } else {
            None
        }
    }

    /// Writes `r` at `tail` and publishes it. The caller has checked there is space.
    #[inline]
    fn store(&mut self, r: Record) {
        self.store_words(r.to_words());
    }

    /// [`Producer::store`] of a record's words.
    #[inline(always)]
    fn store_words(&mut self, words: [u64; 4]) {
        self.shared.write(self.tail, words);
        self.tail = self.tail.wrapping_add(1);
        // Release: publishes the words written just above; pairs with the Acquire loads of
        // `tail` in `Consumer::pop`/`drain`.
        self.shared.tail.store(self.tail, Ordering::Release);
    }

    #[cold]
    #[inline(never)]
    fn push_full(&mut self, r: Record) -> Push {
        match self.shared.policy {
            Overflow::DropNewest => Push::Full(r),
            Overflow::DropOldest => self.evict_and_store(r),
            Overflow::Block { timeout } => self.wait_and_store(r, timeout),
        }
    }

    /// [`Overflow::DropOldest`] on a full ring: evicts the oldest record, stores `r`.
    fn evict_and_store(&mut self, r: Record) -> Push {
        // `has_space` just loaded `head` into the cache and found the ring full.
        let h = self.head_cache;
        debug_assert_eq!(self.tail.wrapping_sub(h), self.capacity());
        // Record `h` is our own write (only the producer writes slots), so this read sees it.
        let oldest = Record::from_words(self.shared.read(h));
        match self.shared.head.compare_exchange(
            h,
            h.wrapping_add(1),
            // Release on success: pairs with the consumer's Acquire load (and Acquire failed
            // CAS) of `head` in `Consumer::drain_evicting`: a consumer that sees this head
            // also sees the `tail` stores before it, so it never sees head past tail.
            Ordering::Release,
            // Acquire on failure: the consumer moved `head` (Release CAS in
            // `Consumer::drain_evicting`); its reads of the slots it freed happen-before we
            // overwrite one of them below.
            Ordering::Acquire,
        ) {
            Ok(_) => {
                // Our own CAS is no license to write slots past `h + capacity`: the next push
                // finds the ring full again and reloads `head`.
                self.head_cache = h.wrapping_add(1);
                self.store(r);
                Push::Evicted(oldest)
            }
            Err(actual) => {
                // `head` only grows, so `actual > h`: there is space now.
                self.head_cache = actual;
                debug_assert!(self.tail.wrapping_sub(actual) < self.capacity());
                self.store(r);
                Push::Stored
            }
        }
    }

    /// [`Overflow::Block`] on a full ring: waits up to `timeout` for space.
    fn wait_and_store(&mut self, r: Record, timeout: Duration) -> Push {
        // `has_space` just reloaded `head`: a zero timeout has had its one look.
        if timeout.is_zero() {
            return Push::TimedOut(r);
        }
        // `None` (a timeout too long to add) waits for as long as it takes.
        let deadline = Instant::now().checked_add(timeout);
        #[cfg(not(loom))]
        let backoff = Backoff::new();
        loop {
            // Under loom every round yields to the model checker instead of spinning.
            #[cfg(loom)]
            yield_now();
            #[cfg(not(loom))]
            if backoff.is_completed() {
                yield_now();
            } else {
                backoff.snooze();
            }
            if self.has_space() {
                self.store(r);
                return Push::Stored;
            }
            if self.is_abandoned() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Push::TimedOut(r);
            }
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Release: orders every push (its Release store of `tail`) before this flag; pairs
        // with the Acquire load in `Consumer::is_abandoned`, so a consumer that sees the flag
        // and then drains gets every record ever pushed.
        self.shared.producer_gone.store(true, Ordering::Release);
    }
}

impl core::fmt::Debug for Producer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Producer")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("policy", &self.policy())
            .finish()
    }
}

/// The reading half of a ring: owned by the flusher.
pub struct Consumer {
    shared: Arc<Shared>,
    /// `head` under [`Overflow::DropNewest`] and [`Overflow::Block`], where only we move it.
    /// Unused under [`Overflow::DropOldest`], where the producer moves it too.
    head: usize,
    /// Some past value of `tail`: `tail` only grows, so every record below it is published.
    tail_cache: usize,
    /// The producer's drop tallies (per table entry, then the rest) as of the last
    /// [`Consumer::drain_weighted`].
    dropped_seen: [u64; DROP_SLOTS + 1],
    /// Dropped weight not yet given to a drained record (no record of its series was
    /// drained), per table entry, then the rest.
    dropped_carry: [u64; DROP_SLOTS + 1],
}

impl Consumer {
    /// Takes the oldest record, or `None` if the ring is empty.
    #[inline]
    pub fn pop(&mut self) -> Option<Record> {
        if self.shared.policy == Overflow::DropOldest {
            let mut out = None;
            self.drain_evicting::<1>(1, |r| out = Some(r));
            return out;
        }
        let h = self.head;
        if h == self.tail_cache {
            // Acquire: pairs with the Release store of `tail` in `Producer::store`: the
            // words of every record below it are visible.
            self.tail_cache = self.shared.tail.load(Ordering::Acquire);
            if h == self.tail_cache {
                return None;
            }
        }
        let r = Record::from_words(self.shared.read(h));
        self.head = h.wrapping_add(1);
        // Release: our read of the slot happens-before the producer overwrites it; pairs
        // with the Acquire load of `head` in `Producer::has_space_below`.
        self.shared.head.store(self.head, Ordering::Release);
        Some(r)
    }

    /// Hands up to `max` of the oldest records to `f`, oldest first, and returns how many.
    /// Only records already in the ring when the call starts are taken, so a drain ends even
    /// while the producer keeps pushing.
    ///
    /// Batched: under [`Overflow::DropNewest`] and [`Overflow::Block`] the records are read
    /// in place and `head` advances once, after the last; under [`Overflow::DropOldest`]
    /// records are copied out 32 at a time (`EVICTING_BATCH`) and `head` advances once per
    /// batch, by CAS, before the batch is handed to `f`.
    ///
    /// # Panics
    ///
    /// Only if `f` panics. Under [`Overflow::DropNewest`] and [`Overflow::Block`] the records
    /// of the interrupted call then stay in the ring and are handed out again; under
    /// [`Overflow::DropOldest`] the rest of the interrupted batch is lost.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(Record)) -> usize {
        if self.shared.policy == Overflow::DropOldest {
            return self.drain_evicting::<EVICTING_BATCH>(max, f);
        }
        let h = self.head;
        // Acquire: pairs with the Release store of `tail` in `Producer::store`.
        self.tail_cache = self.shared.tail.load(Ordering::Acquire);
        let n = distance(h, self.tail_cache, self.capacity()).min(max);
        if n == 0 {
            return 0;
        }
        for i in 0..n {
            f(Record::from_words(self.shared.read(h.wrapping_add(i))));
        }
        self.head = h.wrapping_add(n);
        // Release: our reads of the `n` slots happen-before the producer overwrites them;
        // pairs with the Acquire load of `head` in `Producer::has_space_below`.
        self.shared.head.store(self.head, Ordering::Release);
        n
    }

    /// [`Consumer::drain`], handing each record with a *scale*: how many records of its
    /// series each drained one stands for, counting those the producer dropped.
    ///
    /// Before draining, reads the weight the producer dropped since the last call, per
    /// series (its tally: [`Producer::note_dropped`]). Drops happen only while the ring is
    /// full to its limit, so the records drained now are the ones pushed around the drops,
    /// from the same thread: each non-critical record of a series with dropped weight `D`
    /// and drained weight `W` (sum of `2^k`) gets scale `(W + D) / W`, so the drained weight equals what
    /// was sampled, and estimates built from it stay unbiased when the dropped events are
    /// like their neighbours in time. A series with drops but nothing drained keeps its
    /// weight for the next call. Series beyond the tally's [`DROP_SLOTS`] entries share one
    /// tally, spread over their records alike. Critical records (never dropped, weight 1)
    /// always get 1. Without drops this is `drain` with scale 1; with drops the records are
    /// read twice in place (under [`Overflow::DropOldest`], copied through `buf` first).
    pub fn drain_weighted(
        &mut self,
        max: usize,
        buf: &mut Vec<Record>,
        mut f: impl FnMut(Record, f64),
    ) -> usize {
        let Some(mut tally) = self.take_dropped() else {
            return self.drain(max, |r| f(r, 1.0));
        };
        // Two passes over the records: the drained weight per tally, then the records with
        // their scale. Under `DropOldest` the producer may evict what we have not claimed,
        // so the records are copied out (into `buf`) first; otherwise the slots up to the
        // tail loaded here stay ours until `head` moves, and both passes read them in place
        // (no buffer: the flusher's heap does not grow by a ring's worth).
        if self.shared.policy == Overflow::DropOldest {
            buf.clear();
            let n = self.drain(max, |r| buf.push(r));
            buf.iter().for_each(|r| tally.note_drained(r));
            self.keep_undrained(&tally);
            buf.drain(..).for_each(|r| f(r, tally.scale_of(&r)));
            return n;
        }
        let h = self.head;
        // Acquire: pairs with the Release store of `tail` in `Producer::store`.
        self.tail_cache = self.shared.tail.load(Ordering::Acquire);
        let n = distance(h, self.tail_cache, self.capacity()).min(max);
        for i in 0..n {
            tally.note_drained(&Record::from_words(self.shared.read(h.wrapping_add(i))));
        }
        self.keep_undrained(&tally);
        for i in 0..n {
            let r = Record::from_words(self.shared.read(h.wrapping_add(i)));
            f(r, tally.scale_of(&r));
        }
        self.head = h.wrapping_add(n);
        // Release: our reads of the `n` slots happen-before the producer overwrites them;
        // pairs with the Acquire load of `head` in `Producer::has_space_below`.
        self.shared.head.store(self.head, Ordering::Release);
        n
    }

    /// The weight the producer dropped per tally since the last call (with what earlier
    /// calls could not give away), or `None` when it dropped nothing.
    fn take_dropped(&mut self) -> Option<DropTally> {
        let mut t = DropTally {
            ids: [0; DROP_SLOTS + 1],
            dropped: [0; DROP_SLOTS + 1],
            drained: [0; DROP_SLOTS + 1],
        };
        let mut any = false;
        for j in 0..=DROP_SLOTS {
            let now = match self.shared.dropped.get(j) {
                Some((entry, tally)) => {
                    // Acquire: pairs with the Release store that claimed the entry, so its
                    // first weight is visible.
                    t.ids[j] = entry.load(Ordering::Acquire);
                    if t.ids[j] == 0 {
                        continue;
                    }
                    // Relaxed: see `add_tally`.
                    tally.load(Ordering::Relaxed)
                }
                // Relaxed: see `add_tally`.
                None => self.shared.dropped_rest.load(Ordering::Relaxed),
            };
            t.dropped[j] = now
                .wrapping_sub(self.dropped_seen[j])
                .saturating_add(self.dropped_carry[j]);
            self.dropped_seen[j] = now;
            self.dropped_carry[j] = 0;
            any |= t.dropped[j] > 0;
        }
        any.then_some(t)
    }

    /// Dropped weight of a tally none of whose records was drained waits for the next call.
    fn keep_undrained(&mut self, t: &DropTally) {
        for j in 0..=DROP_SLOTS {
            if t.drained[j] == 0 {
                self.dropped_carry[j] = t.dropped[j];
            }
        }
    }

    /// `pop`/`drain` under [`Overflow::DropOldest`]: copy a batch of up to `BATCH` records,
    /// claim it by CAS, then hand it out (the argument is in the module docs).
    fn drain_evicting<const BATCH: usize>(
        &mut self,
        max: usize,
        mut f: impl FnMut(Record),
    ) -> usize {
        let capacity = self.capacity();
        // Acquire: pairs with the Release CAS of `head` in `Producer::evict_and_store`, so
        // the `tail` loaded next is at least this head. (A head we moved ourselves is at
        // most a tail we loaded before.)
        let mut h = self.shared.head.load(Ordering::Acquire);
        // Acquire: pairs with the Release store of `tail` in `Producer::store`: the words of
        // every record below it are visible. Records pushed after this load wait for the
        // next call.
        let t = self.shared.tail.load(Ordering::Acquire);
        self.tail_cache = t;
        let mut buf = [[0u64; 4]; BATCH];
        let mut delivered = 0;
        while delivered < max {
            let n = distance(h, t, capacity).min(max - delivered).min(BATCH);
            if n == 0 {
                break;
            }
            for (i, words) in buf[..n].iter_mut().enumerate() {
                *words = self.shared.read(h.wrapping_add(i));
            }
            let end = h.wrapping_add(n);
            let mut start = h;
            // Each round either claims `[start, end)` or learns that the producer evicted
            // more; `head` only grows, so this ends.
            loop {
                match self.shared.head.compare_exchange(
                    start,
                    end,
                    // Release on success: our copies of `[start, end)` happen-before the
                    // producer overwrites those slots; pairs with its Acquire load of `head`
                    // in `Producer::has_space_below` (and its Acquire failed CAS in
                    // `evict_and_store`).
                    Ordering::Release,
                    // Acquire on failure: the new head may come from the producer's Release
                    // eviction CAS; as for the load above, later `tail` loads then see at
                    // least it.
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        let skip = start.wrapping_sub(h);
                        for words in &buf[skip..n] {
                            f(Record::from_words(*words));
                        }
                        delivered += n - skip;
                        h = end;
                        break;
                    }
                    Err(actual) => {
                        // The producer evicted `[start, actual)`; it counted them.
                        if actual.wrapping_sub(h) >= n {
                            // The whole batch was evicted: copy again from the new head.
                            h = actual;
                            break;
                        }
                        start = actual;
                    }
                }
            }
        }
        delivered
    }

    /// Records in the ring now (a snapshot: the producer may be adding some).
    pub fn len(&self) -> usize {
        // Relaxed (both): a snapshot for reporting; no slot is read on the strength of it.
        let head = if self.shared.policy == Overflow::DropOldest {
            self.shared.head.load(Ordering::Relaxed)
        } else {
            self.head
        };
        let tail = self.shared.tail.load(Ordering::Relaxed);
        distance(head, tail, self.capacity())
    }

    /// Whether the ring is empty now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most records the ring holds.
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// The most records a [`Producer::push`] fills the ring to: the capacity less the
    /// reserve for [`Producer::try_push`] ([`ring_reserving`]).
    pub fn limit(&self) -> usize {
        self.shared.limit
    }

    /// The ring's overflow policy.
    pub fn policy(&self) -> Overflow {
        self.shared.policy
    }

    /// Whether the [`Producer`] was dropped (its thread exited). Once this returns `true`,
    /// one drain of everything empties the ring for good, and the ring can be freed: check
    /// this first, then drain.
    pub fn is_abandoned(&self) -> bool {
        // Acquire: pairs with the Release store in `Producer::drop`, so every record pushed
        // before the drop is visible to the drains that follow.
        self.shared.producer_gone.load(Ordering::Acquire)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Release: pairs with the Acquire load in `Producer::is_abandoned` (a waiting
        // `Block` push stops waiting).
        self.shared.consumer_gone.store(true, Ordering::Release);
    }
}

impl core::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Consumer")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("policy", &self.policy())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn weighted_rec(series: u32, k: u8, critical: bool) -> Record {
        Record::new(series, k, 1.0, 0, 0, critical)
    }

    /// Series whose ids share a tally slot under `series % 64` (ids 64 apart, as sampled
    /// series allocated 32 apart are): only the one that dropped records gets the scale.
    #[test]
    fn drain_weighted_keeps_series_apart() {
        let (mut p, mut c) = ring(8, Overflow::DropNewest);
        let mut buf = Vec::new();
        for r in [weighted_rec(300, 0, false), weighted_rec(364, 0, false)] {
            assert_eq!(p.push(r), Push::Stored);
        }
        p.note_dropped(300, 3); // series 300 dropped three; 364 none
        let mut seen = Vec::new();
        c.drain_weighted(usize::MAX, &mut buf, |r, s| seen.push((r.series, s)));
        assert_eq!(seen, [(300, 4.0), (364, 1.0)]);
    }

    /// More series drop than the tally has entries: the rest are tallied together and their
    /// records share that weight; nothing is lost.
    #[test]
    fn drain_weighted_overflowing_the_tally_keeps_the_total() {
        let n = DROP_SLOTS as u32 + 8;
        let (mut p, mut c) = ring(2 * n as usize, Overflow::DropNewest);
        let mut buf = Vec::new();
        for s in 0..n {
            assert_eq!(p.push(weighted_rec(1000 + 10 * s, 0, false)), Push::Stored);
            p.note_dropped(1000 + 10 * s, 1);
        }
        let mut total = 0.0;
        c.drain_weighted(usize::MAX, &mut buf, |r, s| total += r.weight() as f64 * s);
        assert_eq!(
            total,
            2.0 * n as f64,
            "every drop stands in a drained record"
        );
    }

    /// Under both kinds of policy: records read in place (no buffer: the flusher's heap
    /// grew by a ring's worth, 64 KiB at the then default ring size, at the first drain after drops before),
    /// or copied out first where the producer may evict them.
    #[test]
    fn drain_weighted_gives_dropped_weight_to_the_same_series() {
        for policy in [Overflow::DropNewest, Overflow::DropOldest] {
            weights_of_drops_go_to_the_same_series(policy);
        }
    }

    fn weights_of_drops_go_to_the_same_series(policy: Overflow) {
        let (mut p, mut c) = ring(8, policy);
        let mut buf = Vec::new();
        // No drops: every scale is 1.
        assert_eq!(p.push(weighted_rec(3, 2, false)), Push::Stored);
        let mut seen = Vec::new();
        c.drain_weighted(usize::MAX, &mut buf, |r, s| seen.push((r.series, s)));
        assert_eq!(seen, [(3, 1.0)]);

        // Series 3: two records of weight 4 stored, three of weight 4 dropped; series 4:
        // one stored of weight 2 and nothing dropped; one critical record of series 3.
        for r in [
            weighted_rec(3, 2, false),
            weighted_rec(3, 2, false),
            weighted_rec(4, 1, false),
            weighted_rec(3, 0, true),
        ] {
            assert_eq!(p.push(r), Push::Stored);
        }
        for _ in 0..3 {
            p.note_dropped(3, 4);
        }
        // Series 5 dropped weight 8 but has no record in the ring: carried over.
        p.note_dropped(5, 8);
        let mut seen = Vec::new();
        c.drain_weighted(usize::MAX, &mut buf, |r, s| {
            seen.push((r.series, r.critical, s))
        });
        assert_eq!(
            seen,
            [
                (3, false, 2.5),
                (3, false, 2.5),
                (4, false, 1.0),
                (3, true, 1.0)
            ]
        );
        // Weight drained for series 3 (non-critical): 2 × 4 × 2.5 = 20 = 8 stored + 12 dropped.

        assert_eq!(p.push(weighted_rec(5, 3, false)), Push::Stored);
        let mut seen = Vec::new();
        c.drain_weighted(usize::MAX, &mut buf, |r, s| seen.push((r.series, s)));
        assert_eq!(
            seen,
            [(5, 2.0)],
            "the carried weight 8 goes to the next record of 5"
        );
        assert_eq!(
            buf.capacity() == 0,
            policy != Overflow::DropOldest,
            "{policy:?}: read in place unless the producer may evict"
        );

        assert_eq!(p.push(weighted_rec(5, 3, false)), Push::Stored);
        let mut seen = Vec::new();
        c.drain_weighted(usize::MAX, &mut buf, |r, s| seen.push((r.series, s)));
        assert_eq!(seen, [(5, 1.0)], "and only once");
    }
    use std::collections::VecDeque;
    use std::thread;

    /// A record that encodes `seq` in every word, so a torn read shows. Built from words
    /// (series in the low 32 bits, `k` above), so it does not depend on the field list.
    fn rec(seq: u64) -> Record {
        Record::from_words([
            (seq & 0xffff_ffff) | (seq % 61) << 32,
            (seq as f64).to_bits(),
            seq.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            !seq,
        ])
    }

    /// The sequence number of a record made by `rec`, checking every word agrees.
    fn seq(r: Record) -> u64 {
        let s = !r.time_ns;
        assert_eq!(r, rec(s), "torn or corrupt record");
        s
    }

    /// splitmix64: a deterministic op sequence for the model tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The reference: a `VecDeque` with the ring's overflow rules.
    struct Model {
        q: VecDeque<Record>,
        capacity: usize,
        policy: Overflow,
    }

    impl Model {
        fn push(&mut self, r: Record) -> Push {
            if self.q.len() < self.capacity {
                self.q.push_back(r);
                return Push::Stored;
            }
            match self.policy {
                Overflow::DropNewest => Push::Full(r),
                Overflow::DropOldest => {
                    let old = self.q.pop_front().unwrap();
                    self.q.push_back(r);
                    Push::Evicted(old)
                }
                Overflow::Block { .. } => Push::TimedOut(r),
            }
        }

        fn try_push(&mut self, r: Record) -> Result<(), Record> {
            if self.q.len() < self.capacity {
                self.q.push_back(r);
                Ok(())
            } else {
                Err(r)
            }
        }
    }

    fn check_against_model(policy: Overflow, requested: usize, seed: u64) {
        let (mut p, mut c) = ring(requested, policy);
        let capacity = requested.max(2).next_power_of_two();
        assert_eq!(p.capacity(), capacity);
        assert_eq!(c.capacity(), capacity);
        let mut m = Model {
            q: VecDeque::new(),
            capacity,
            policy,
        };
        let mut rng = Rng(seed);
        let mut next = 1u64;
        for _ in 0..20_000 {
            match rng.below(6) {
                0 | 1 => {
                    let r = rec(next);
                    next += 1;
                    assert_eq!(p.push(r), m.push(r));
                }
                2 => {
                    let r = rec(next);
                    next += 1;
                    assert_eq!(p.try_push(r), m.try_push(r));
                }
                3 => assert_eq!(c.pop(), m.q.pop_front()),
                4 => {
                    let max = rng.below(capacity as u64 * 2) as usize;
                    let mut got = Vec::new();
                    let n = c.drain(max, |r| got.push(r));
                    let want: Vec<_> = (0..max.min(m.q.len()))
                        .map(|_| m.q.pop_front().unwrap())
                        .collect();
                    assert_eq!(n, got.len());
                    assert_eq!(got, want);
                }
                _ => {
                    assert_eq!(p.len(), m.q.len());
                    assert_eq!(c.len(), m.q.len());
                    assert_eq!(c.is_empty(), m.q.is_empty());
                }
            }
        }
    }

    const POLICIES: [Overflow; 3] = [
        Overflow::DropNewest,
        Overflow::DropOldest,
        Overflow::Block {
            timeout: Duration::ZERO,
        },
    ];

    #[test]
    fn matches_vecdeque_model() {
        for policy in POLICIES {
            for (requested, seed) in [(0, 1), (1, 2), (2, 3), (3, 4), (8, 5), (100, 6)] {
                check_against_model(policy, requested, seed);
            }
        }
    }

    #[test]
    fn halves_move_to_other_threads() {
        fn send<T: Send>() {}
        send::<Producer>();
        send::<Consumer>();
    }

    #[test]
    fn capacity_rounding() {
        for (asked, got) in [(0, 2), (1, 2), (2, 2), (3, 4), (4, 4), (5, 8), (2048, 2048)] {
            assert_eq!(ring(asked, Overflow::default()).0.capacity(), got);
        }
    }

    #[test]
    fn the_reserve_is_for_try_push_only() {
        let (mut p, mut c) = ring_reserving(8, Overflow::DropNewest, 2);
        for i in 0..6 {
            assert_eq!(p.push(rec(i)), Push::Stored);
        }
        assert_eq!(p.push(rec(6)), Push::Full(rec(6)), "push stops at 8 - 2");
        assert_eq!(p.try_store(rec(6).to_words()), None, "so does try_store");
        assert_eq!(p.try_push(rec(7)), Ok(()));
        assert_eq!(p.try_push(rec(8)), Ok(()));
        assert_eq!(p.try_push(rec(9)), Err(rec(9)), "try_push stops at 8");
        assert_eq!(c.pop(), Some(rec(0)));
        assert_eq!(p.push(rec(10)), Push::Full(rec(10)), "7 held: still past 6");
        assert_eq!(p.try_push(rec(11)), Ok(()));
        let got: Vec<u32> = std::iter::from_fn(|| c.pop()).map(|r| r.series).collect();
        assert_eq!(got, [1, 2, 3, 4, 5, 7, 8, 11]);
        // A reserve of more than half is cut to half; other policies ignore it.
        let (mut p, _c) = ring_reserving(4, Overflow::DropNewest, 100);
        assert_eq!(
            (0..4).filter(|&i| p.push(rec(i)) == Push::Stored).count(),
            2
        );
        let (mut p, _c) = ring_reserving(4, Overflow::DropOldest, 2);
        assert_eq!(
            (0..4).filter(|&i| p.push(rec(i)) == Push::Stored).count(),
            4
        );
        assert_eq!(p.push(rec(4)), Push::Evicted(rec(0)));
    }

    #[test]
    fn push_outcomes_per_policy() {
        let (mut p, mut c) = ring(2, Overflow::DropNewest);
        assert_eq!(p.push(rec(1)), Push::Stored);
        assert_eq!(p.push(rec(2)), Push::Stored);
        assert_eq!(p.push(rec(3)), Push::Full(rec(3)));
        assert_eq!(p.try_push(rec(4)), Err(rec(4)));
        assert_eq!(c.pop(), Some(rec(1)));
        assert_eq!(p.push(rec(5)), Push::Stored);

        let (mut p, mut c) = ring(2, Overflow::DropOldest);
        assert_eq!(p.push(rec(1)), Push::Stored);
        assert_eq!(p.push(rec(2)), Push::Stored);
        assert_eq!(p.push(rec(3)), Push::Evicted(rec(1)));
        assert_eq!(p.push(rec(3)).dropped(), Some(rec(2)));
        assert_eq!(p.try_push(rec(4)), Err(rec(4)), "try_push never evicts");
        assert_eq!(c.pop(), Some(rec(3)));
        assert_eq!(c.pop(), Some(rec(3)));
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn block_times_out_and_stops_waiting_for_a_dead_consumer() {
        let timeout = Duration::from_millis(5);
        let (mut p, c) = ring(2, Overflow::Block { timeout });
        assert_eq!(p.push(rec(1)), Push::Stored);
        assert_eq!(p.push(rec(2)), Push::Stored);
        assert_eq!(p.push(rec(3)), Push::TimedOut(rec(3)));
        assert!(!p.is_abandoned());
        drop(c);
        assert!(p.is_abandoned());
        // With the consumer gone a push gives up at once instead of waiting an hour (no
        // timing assertion: if it waited, the test would hang, not fail).
        let (mut p, c) = ring(
            2,
            Overflow::Block {
                timeout: Duration::from_secs(3600),
            },
        );
        assert_eq!(p.push(rec(1)), Push::Stored);
        assert_eq!(p.push(rec(2)), Push::Stored);
        drop(c);
        assert_eq!(p.push(rec(3)), Push::TimedOut(rec(3)));
    }

    #[test]
    fn block_waits_for_the_consumer() {
        let (mut p, mut c) = ring(
            2,
            Overflow::Block {
                timeout: Duration::from_secs(3600),
            },
        );
        assert_eq!(p.push(rec(1)), Push::Stored);
        assert_eq!(p.push(rec(2)), Push::Stored);
        let consumer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            let mut got = Vec::new();
            while got.len() < 3 {
                c.drain(usize::MAX, |r| got.push(seq(r)));
                thread::yield_now();
            }
            got
        });
        assert_eq!(p.push(rec(3)), Push::Stored);
        assert_eq!(consumer.join().unwrap(), [1, 2, 3]);
    }

    #[test]
    fn abandoned_ring_drains_completely() {
        let (mut p, mut c) = ring(8, Overflow::DropNewest);
        for s in 1..=5 {
            assert_eq!(p.push(rec(s)), Push::Stored);
        }
        assert!(!c.is_abandoned());
        drop(p);
        assert!(c.is_abandoned());
        let mut got = Vec::new();
        assert_eq!(c.drain(usize::MAX, |r| got.push(seq(r))), 5);
        assert_eq!(got, [1, 2, 3, 4, 5]);
        assert_eq!(c.pop(), None);
    }

    /// One producer pushes 1..=n while the consumer takes records concurrently (alternating
    /// `pop` and `drain`). Every sequence number is received or reported dropped, exactly
    /// once, and what is received is in order.
    fn stress(policy: Overflow) {
        let n: u64 = if cfg!(debug_assertions) {
            50_000
        } else {
            1_000_000
        };
        let give_up = Instant::now() + Duration::from_secs(120);
        let (mut p, mut c) = ring(64, policy);
        let start = Arc::new(std::sync::Barrier::new(2));
        let producer_start = start.clone();
        let producer = thread::spawn(move || {
            producer_start.wait();
            let mut dropped = Vec::new();
            for s in 1..=n {
                // Phases of 4096 pushes at three paces, so the ring runs full (overflow
                // racing the consumer), near empty, and in between.
                for _ in 0..[0, 8, 64][(s >> 12) as usize % 3] {
                    core::hint::spin_loop();
                }
                match p.push(rec(s)) {
                    Push::Stored => {}
                    Push::Full(r) | Push::TimedOut(r) => {
                        assert_eq!(seq(r), s);
                        dropped.push(s);
                    }
                    Push::Evicted(r) => {
                        assert!(seq(r) < s);
                        dropped.push(seq(r));
                    }
                }
            }
            dropped
        });
        let mut received = Vec::new();
        let mut round = 0u64;
        start.wait();
        loop {
            assert!(Instant::now() < give_up, "stress test stuck");
            // Checked before taking: if the producer was gone already, an empty take means
            // the ring is empty for good.
            let done = c.is_abandoned();
            round += 1;
            let got = if round.is_multiple_of(2) {
                match c.pop() {
                    Some(r) => {
                        received.push(seq(r));
                        1
                    }
                    None => 0,
                }
            } else {
                c.drain(1 + (round % 50) as usize, |r| received.push(seq(r)))
            };
            if got == 0 {
                if done {
                    break;
                }
                thread::yield_now();
            }
        }
        let dropped = producer.join().unwrap();
        assert!(received.windows(2).all(|w| w[0] < w[1]), "out of order");
        let mut all: Vec<u64> = received.iter().chain(&dropped).copied().collect();
        all.sort_unstable();
        assert_eq!(all.len() as u64, n, "lost or duplicated records");
        assert!(all.iter().copied().eq(1..=n), "lost or duplicated records");
        if policy == Overflow::DropOldest {
            // Evictions come out oldest first too.
            assert!(dropped.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn stress_drop_newest() {
        stress(Overflow::DropNewest);
    }

    #[test]
    fn stress_drop_oldest() {
        stress(Overflow::DropOldest);
    }

    #[test]
    fn stress_block() {
        stress(Overflow::Block {
            timeout: Duration::from_micros(50),
        });
    }
}
