//! A bounded single-producer / single-consumer ring of [`Record`]s: the producer is the
//! recording thread, the consumer the flusher. Rigtorp's SPSC queue / rtrb: monotonically
//! increasing head and tail indices on separate cache lines, each side caching the other's
//! index so that a push is plain slot stores plus one Release store of the tail, no CAS.
//!
//! The drop-oldest policy is the one exception: the producer discards the oldest unread
//! record by moving `head` with a CAS, so under that policy the consumer advances `head`
//! with a CAS too and keeps only the records the producer did not discard meanwhile. Slots
//! are four `AtomicU64` words, so a read racing an overwrite is a discarded stale value,
//! never a data race.

use std::time::{Duration, Instant};

use crossbeam_utils::{Backoff, CachePadded};

use super::record::Record;
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Ordering, yield_now};

/// What a push does when the ring is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// The new record is not stored (cheapest; counted as dropped).
    #[default]
    DropNewest,
    /// The oldest unread record is discarded to make room (counted as dropped).
    DropOldest,
    /// Wait up to `timeout` for the consumer to make room, then drop the new record.
    Block {
        /// How long a push may wait.
        timeout: Duration,
    },
}

/// The outcome of [`Producer::push`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Push {
    /// Stored.
    Stored,
    /// Full under [`Overflow::DropNewest`]: this record was not stored.
    Full(Record),
    /// Full under [`Overflow::DropOldest`]: stored, and this oldest unread record was
    /// discarded to make room.
    Evicted(Record),
    /// Full under [`Overflow::Block`] for the whole timeout: this record was not stored.
    TimedOut(Record),
}

type Slot = [AtomicU64; 4];

struct Shared {
    /// Next index to read. Moved by the consumer; under drop-oldest also by the producer.
    head: CachePadded<AtomicUsize>,
    /// Next index to write. Moved by the producer only.
    tail: CachePadded<AtomicUsize>,
    slots: Box<[Slot]>,
    mask: usize,
    policy: Overflow,
    producer_alive: AtomicBool,
}

impl Shared {
    #[inline(always)]
    fn slot(&self, index: usize) -> &Slot {
        &self.slots[index & self.mask]
    }

    #[inline(always)]
    fn write(&self, index: usize, r: &Record) {
        let slot = self.slot(index);
        for (cell, w) in slot.iter().zip(r.to_words()) {
            // Relaxed: published by the Release store of `tail` that follows.
            cell.store(w, Ordering::Relaxed);
        }
    }

    #[inline(always)]
    fn read(&self, index: usize) -> Record {
        let slot = self.slot(index);
        // Relaxed: the slot was published by the producer's Release store of `tail`, which
        // the reader observed with an Acquire load before calling this.
        Record::from_words([
            slot[0].load(Ordering::Relaxed),
            slot[1].load(Ordering::Relaxed),
            slot[2].load(Ordering::Relaxed),
            slot[3].load(Ordering::Relaxed),
        ])
    }
}

/// The writing end (one thread).
pub struct Producer {
    shared: Arc<Shared>,
    /// Our copy of `tail` (only we move it).
    tail: usize,
    /// The last `head` we saw; refreshed only when the ring looks full.
    cached_head: usize,
}

/// The reading end (the flusher).
pub struct Consumer {
    shared: Arc<Shared>,
    /// The last `tail` we saw; refreshed only when the ring looks empty.
    cached_tail: usize,
}

/// A ring of `capacity` records (rounded up to a power of two, at least 2) with overflow
/// policy `policy`.
pub fn ring(capacity: usize, policy: Overflow) -> (Producer, Consumer) {
    let capacity = capacity.max(2).next_power_of_two();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots: (0..capacity)
            .map(|_| core::array::from_fn(|_| AtomicU64::new(0)))
            .collect(),
        mask: capacity - 1,
        policy,
        producer_alive: AtomicBool::new(true),
    });
    (
        Producer {
            shared: Arc::clone(&shared),
            tail: 0,
            cached_head: 0,
        },
        Consumer {
            shared,
            cached_tail: 0,
        },
    )
}

impl Producer {
    /// Pushes `r`, applying the ring's overflow policy when it is full.
    #[inline]
    pub fn push(&mut self, r: Record) -> Push {
        if self.has_room() {
            self.store(r);
            return Push::Stored;
        }
        self.push_full(r)
    }

    /// Pushes `r` if there is room; never evicts, never waits (critical records).
    #[inline]
    pub fn try_push(&mut self, r: Record) -> Result<(), Record> {
        if self.has_room() {
            self.store(r);
            Ok(())
        } else {
            Err(r)
        }
    }

    #[inline(always)]
    fn has_room(&mut self) -> bool {
        let capacity = self.shared.mask + 1;
        if self.tail.wrapping_sub(self.cached_head) < capacity {
            return true;
        }
        // Acquire: pairs with the consumer's Release store / CAS of `head`, so its reads of
        // the slots we are about to overwrite happened before our writes.
        self.cached_head = self.shared.head.load(Ordering::Acquire);
        self.tail.wrapping_sub(self.cached_head) < capacity
    }

    #[inline(always)]
    fn store(&mut self, r: Record) {
        self.shared.write(self.tail, &r);
        self.tail = self.tail.wrapping_add(1);
        // Release: publishes the slot written above; pairs with the Acquire load of `tail`
        // in `Consumer::refresh_tail`.
        self.shared.tail.store(self.tail, Ordering::Release);
    }

    #[cold]
    #[inline(never)]
    fn push_full(&mut self, r: Record) -> Push {
        match self.shared.policy {
            Overflow::DropNewest => Push::Full(r),
            Overflow::DropOldest => {
                let oldest = self.cached_head;
                let evicted = self.shared.read(oldest);
                // AcqRel on success: Release so a consumer whose head CAS then fails sees
                // the eviction in order; Acquire pairs with the consumer's Release head CAS,
                // so its reads of the slot we overwrite next happened before our write.
                // Acquire on failure: the consumer moved `head`, freeing slots it has read.
                match self.shared.head.compare_exchange(
                    oldest,
                    oldest.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        self.cached_head = oldest.wrapping_add(1);
                        self.store(r);
                        Push::Evicted(evicted)
                    }
                    Err(head) => {
                        // The consumer took records: there is room now.
                        self.cached_head = head;
                        self.store(r);
                        Push::Stored
                    }
                }
            }
            Overflow::Block { timeout } => {
                let start = Instant::now();
                let backoff = Backoff::new();
                loop {
                    if self.has_room() {
                        self.store(r);
                        return Push::Stored;
                    }
                    if start.elapsed() >= timeout {
                        return Push::TimedOut(r);
                    }
                    if backoff.is_completed() {
                        yield_now();
                    } else {
                        backoff.snooze();
                    }
                }
            }
        }
    }

    /// Records in the ring now (as the producer sees it: at most the true number).
    pub fn len(&self) -> usize {
        // Relaxed: an estimate for the high-water check; `head` only grows.
        self.tail
            .wrapping_sub(self.shared.head.load(Ordering::Relaxed))
            .min(self.shared.mask + 1)
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records the ring holds at most.
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Release: pairs with the Acquire load in `Consumer::is_abandoned`, so a consumer
        // that sees the producer gone also sees its last `tail`.
        self.shared.producer_alive.store(false, Ordering::Release);
    }
}

/// Records read per batch in [`Consumer::drain`] before `head` is advanced.
const BATCH: usize = 64;

impl Consumer {
    #[inline(always)]
    fn refresh_tail(&mut self) -> usize {
        // Acquire: pairs with the Release store of `tail` in `Producer::store`, so every
        // slot below it is visible.
        self.cached_tail = self.shared.tail.load(Ordering::Acquire);
        self.cached_tail
    }

    /// Takes the oldest record.
    pub fn pop(&mut self) -> Option<Record> {
        let mut out = None;
        self.drain(1, |r| out = Some(r));
        out
    }

    /// Takes up to `max` records, oldest first, handing each to `f`; returns how many.
    /// `head` moves once per batch of up to 64 records.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(Record)) -> usize {
        let mut taken = 0;
        let mut batch = [Record::default(); BATCH];
        while taken < max {
            // Acquire: pairs with the producer's AcqRel eviction CAS (drop-oldest), so the
            // slots it discarded are not read as ours. Otherwise only we move `head`.
            let mut head = self.shared.head.load(Ordering::Acquire);
            let mut tail = self.cached_tail;
            if tail.wrapping_sub(head) == 0 || tail.wrapping_sub(head) > self.shared.mask + 1 {
                tail = self.refresh_tail();
            }
            let available = tail.wrapping_sub(head);
            if available == 0 {
                break;
            }
            let n = available.min(BATCH).min(max - taken);
            for (i, slot) in batch.iter_mut().take(n).enumerate() {
                *slot = self.shared.read(head.wrapping_add(i));
            }
            let start = head;
            let end = head.wrapping_add(n);
            let mut first = 0;
            if self.shared.policy == Overflow::DropOldest {
                loop {
                    // Release: our reads of the slots happen before the producer reuses
                    // them; pairs with the producer's Acquire head load / CAS.
                    match self.shared.head.compare_exchange(
                        head,
                        end,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => break,
                        Err(moved) => {
                            // The producer discarded [head, moved). The slots from `moved`
                            // on were not overwritten: the producer overwrites slot i + cap
                            // only after discarding i, and `head` has not passed them.
                            let skip = moved.wrapping_sub(start);
                            if skip >= n {
                                first = n;
                                break;
                            }
                            first = skip;
                            head = moved;
                        }
                    }
                }
            } else {
                // Release: our reads of the slots happen before the producer reuses them;
                // pairs with the Acquire load of `head` in `Producer::has_room`.
                self.shared.head.store(end, Ordering::Release);
            }
            for r in &batch[first..n] {
                f(*r);
            }
            taken += n - first;
        }
        taken
    }

    /// Records waiting now.
    pub fn len(&self) -> usize {
        // Acquire on `tail`: as in `refresh_tail`; `head` Relaxed: a size estimate.
        let tail = self.shared.tail.load(Ordering::Acquire);
        tail.wrapping_sub(self.shared.head.load(Ordering::Relaxed))
            .min(self.shared.mask + 1)
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records the ring holds at most.
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }

    /// Whether the producer is gone: nothing more will arrive, so after one more drain
    /// the ring can be freed.
    pub fn is_abandoned(&self) -> bool {
        // Acquire: pairs with the Release store in `Producer::drop`.
        !self.shared.producer_alive.load(Ordering::Acquire)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn rec(i: u64) -> Record {
        Record {
            series: i as u32,
            k: (i % 7) as u8,
            value: i as f64,
            key: i.wrapping_mul(31),
            time_ns: i,
            critical: i.is_multiple_of(5),
        }
    }

    /// The reference: a VecDeque with the same policy (Block behaves as DropNewest with no
    /// consumer running concurrently, after its timeout).
    fn model_push(q: &mut VecDeque<Record>, cap: usize, policy: Overflow, r: Record) -> Push {
        if q.len() < cap {
            q.push_back(r);
            return Push::Stored;
        }
        match policy {
            Overflow::DropNewest => Push::Full(r),
            Overflow::DropOldest => {
                let old = q.pop_front().unwrap();
                q.push_back(r);
                Push::Evicted(old)
            }
            Overflow::Block { .. } => Push::TimedOut(r),
        }
    }

    #[test]
    fn matches_a_vecdeque_for_every_policy() {
        for policy in [
            Overflow::DropNewest,
            Overflow::DropOldest,
            Overflow::Block {
                timeout: Duration::ZERO,
            },
        ] {
            for cap in [2usize, 4, 16] {
                let (mut p, mut c) = ring(cap, policy);
                let mut q = VecDeque::new();
                let mut state = 0x1234_5678_9abc_def0u64 ^ cap as u64;
                for i in 0..20_000u64 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    match state % 5 {
                        0 | 1 => {
                            assert_eq!(p.push(rec(i)), model_push(&mut q, cap, policy, rec(i)))
                        }
                        2 => {
                            let want = if q.len() < cap {
                                q.push_back(rec(i));
                                Ok(())
                            } else {
                                Err(rec(i))
                            };
                            assert_eq!(p.try_push(rec(i)), want);
                        }
                        3 => assert_eq!(c.pop(), q.pop_front()),
                        _ => {
                            let max = (state >> 8) as usize % (cap + 2);
                            let mut got = Vec::new();
                            let n = c.drain(max, |r| got.push(r));
                            let want: Vec<Record> = (0..max.min(q.len()))
                                .map(|_| q.pop_front().unwrap())
                                .collect();
                            assert_eq!(n, want.len());
                            assert_eq!(got, want);
                        }
                    }
                    assert_eq!(c.len(), q.len());
                    assert_eq!(p.len(), q.len());
                }
            }
        }
    }

    #[test]
    fn capacity_rounds_up_and_abandonment_is_seen() {
        let (p, c) = ring(5, Overflow::DropNewest);
        assert_eq!(p.capacity(), 8);
        assert_eq!(ring(0, Overflow::DropNewest).0.capacity(), 2);
        assert!(!c.is_abandoned());
        drop(p);
        assert!(c.is_abandoned());
    }

    /// A producer and a consumer on two threads: every sequence number is received exactly
    /// once, in order, or reported dropped / evicted.
    #[test]
    fn concurrent_stress_accounts_for_every_record() {
        let n: u64 = if cfg!(debug_assertions) {
            100_000
        } else {
            2_000_000
        };
        for policy in [
            Overflow::DropNewest,
            Overflow::DropOldest,
            Overflow::Block {
                timeout: Duration::from_micros(20),
            },
        ] {
            let (mut p, mut c) = ring(64, policy);
            let producer = std::thread::spawn(move || {
                let mut lost = Vec::new();
                for i in 1..=n {
                    match p.push(rec(i)) {
                        Push::Stored => {}
                        Push::Full(r) | Push::TimedOut(r) | Push::Evicted(r) => {
                            lost.push(r.time_ns)
                        }
                    }
                }
                lost
            });
            let mut got = Vec::new();
            let mut torn = 0;
            let mut take = |r: Record| {
                // Every field is derived from the sequence number: a torn read shows.
                torn += (r != rec(r.time_ns)) as usize;
                got.push(r.time_ns);
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let done = c.is_abandoned();
                c.drain(usize::MAX, &mut take);
                if done || Instant::now() > deadline {
                    break;
                }
            }
            let lost = producer.join().unwrap();
            c.drain(usize::MAX, &mut take);
            assert_eq!(torn, 0, "{policy:?}: torn records");
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "{policy:?}: out of order"
            );
            let mut all: Vec<u64> = got.iter().chain(&lost).copied().collect();
            all.sort_unstable();
            assert_eq!(
                all.len() as u64,
                n,
                "{policy:?}: {} received, {} lost",
                got.len(),
                lost.len()
            );
            assert!(
                all.iter().copied().eq(1..=n),
                "{policy:?}: a record twice or never"
            );
        }
    }
}
