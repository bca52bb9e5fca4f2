//! The critical lane: a shared, growable, lock-free queue for critical records whose thread
//! ring is full. An unbounded `crossbeam_queue::SegQueue` (a linked list of blocks of 31
//! slots, allocated as it grows and freed as it drains: the lane costs nothing while empty)
//! behind a reservation counter that caps its memory; a push past the cap fails and is
//! counted, never silent. Every `wake_every` records queued, the push asks for the flusher.

use super::record::Record;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;

#[cfg(not(loom))]
type Queue = crossbeam_queue::SegQueue<Record>;

/// Under loom, a model-checked stand-in with the same interface: loom cannot see inside
/// crossbeam's atomics, so the models check our reservation logic around the queue.
#[cfg(loom)]
struct Queue(loom::sync::Mutex<std::collections::VecDeque<Record>>);

#[cfg(loom)]
impl Queue {
    fn new() -> Self {
        Self(loom::sync::Mutex::new(Default::default()))
    }
    fn push(&self, r: Record) {
        self.0.lock().unwrap().push_back(r);
    }
    fn pop(&self) -> Option<Record> {
        self.0.lock().unwrap().pop_front()
    }
}

/// Memory one queued record costs, rounded up: a `SegQueue` slot is the record and a state
/// word (40 bytes), and a block is 31 slots plus a next pointer (1,248 bytes).
pub const BYTES_PER_RECORD: usize = 41;

/// Default memory cap of the critical lane: 64 MiB, about 1.6 million records.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// At most this many records between two wake-ups of the flusher by a filling lane.
const WAKE_EVERY: usize = 1024;

/// A memory-capped multi-producer queue of critical records.
pub struct Lane {
    queue: Queue,
    /// Records reserved (pushed or being pushed) and not yet popped. Padded: every pushing
    /// thread writes it.
    len: CachePadded<AtomicUsize>,
    cap: usize,
    /// A power of two: a push that brings `len` to a multiple of it asks for a wake-up.
    wake_every: usize,
    /// Pushes refused because the lane was at its cap, ever.
    lost: AtomicU64,
}

/// What [`Lane::push`] did with a record it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued.
    Queued,
    /// Queued, and the lane just filled past another `wake_every` records: wake the
    /// flusher.
    Wake,
}

impl Lane {
    /// A lane holding at most `cap` records (at least 1).
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            queue: Queue::new(),
            len: CachePadded::new(AtomicUsize::new(0)),
            cap,
            // A quarter of a small lane, so that it too wakes the flusher before it is full.
            wake_every: (cap.next_power_of_two() / 4).clamp(1, WAKE_EVERY),
            lost: AtomicU64::new(0),
        }
    }

    /// A lane using at most about `bytes` of memory ([`BYTES_PER_RECORD`] per record, plus
    /// at most two partly used blocks).
    pub fn with_max_bytes(bytes: usize) -> Self {
        Self::new(bytes / BYTES_PER_RECORD)
    }

    /// Queues `r`, or gives it back (and counts it lost) when the lane is at its cap.
    #[inline]
    pub fn push(&self, r: Record) -> Result<Queued, Record> {
        // Relaxed: `len` only bounds memory; the RMW makes the reservation exact, and the
        // record itself is published by the queue's own synchronisation.
        let n = self.len.fetch_add(1, Ordering::Relaxed);
        if n >= self.cap {
            self.len.fetch_sub(1, Ordering::Relaxed);
            self.lost.fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        self.queue.push(r);
        // `n + 1` records now: each multiple of `wake_every` is reached by exactly one push.
        Ok(if (n + 1) & (self.wake_every - 1) == 0 {
            Queued::Wake
        } else {
            Queued::Queued
        })
    }

    /// Takes the oldest queued record.
    pub fn pop(&self) -> Option<Record> {
        let r = self.queue.pop()?;
        // Relaxed: see `push`. Released only after the record left the queue, so the cap
        // is never exceeded.
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(r)
    }

    /// Records queued now (reservations included).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cap, in records.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Records between two wake-ups of the flusher.
    pub fn wake_every(&self) -> usize {
        self.wake_every
    }

    /// Pushes refused at the cap, ever.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn rec(i: u32) -> Record {
        Record {
            series: i,
            k: 0,
            value: i as f64,
            key: 0,
            time_ns: 0,
            critical: true,
            keyed: false,
        }
    }

    #[test]
    fn caps_and_counts_and_keeps_order() {
        let lane = Lane::new(3);
        for i in 0..5 {
            let r = lane.push(rec(i));
            assert_eq!(r.is_ok(), i < 3);
        }
        assert_eq!(lane.lost(), 2);
        assert_eq!(lane.len(), 3);
        assert_eq!(lane.pop().unwrap().series, 0);
        assert!(lane.push(rec(9)).is_ok());
        assert_eq!(
            Lane::with_max_bytes(DEFAULT_MAX_BYTES).capacity(),
            1_636_801
        );
        let rest: Vec<u32> = std::iter::from_fn(|| lane.pop())
            .map(|r| r.series)
            .collect();
        assert_eq!(rest, [1, 2, 9]);
        assert!(lane.is_empty());
    }

    #[test]
    fn concurrent_pushers_lose_nothing_below_the_cap() {
        let lane = std::sync::Arc::new(Lane::new(1 << 20));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let lane = lane.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        lane.push(rec(t * 100_000 + i)).unwrap();
                    }
                })
            })
            .collect();
        let mut got = 0;
        for t in threads {
            t.join().unwrap();
        }
        while lane.pop().is_some() {
            got += 1;
        }
        assert_eq!(got, 40_000);
        assert_eq!(lane.lost(), 0);
    }

    #[test]
    fn grows_far_past_a_segment_and_frees_as_it_drains() {
        let lane = Lane::with_max_bytes(DEFAULT_MAX_BYTES);
        let n = 200_000;
        let wakes = (0..n)
            .filter(|&i| lane.push(rec(i)).unwrap() == Queued::Wake)
            .count();
        assert_eq!(
            wakes,
            n as usize / WAKE_EVERY,
            "one wake-up per {WAKE_EVERY} records"
        );
        assert_eq!(lane.len(), n as usize);
        assert!((0..n).all(|i| lane.pop().unwrap().series == i));
        assert!(lane.pop().is_none());
        assert_eq!(lane.lost(), 0);
    }

    #[test]
    fn a_small_lane_wakes_before_it_is_full() {
        let lane = Lane::new(10);
        assert_eq!(lane.wake_every(), 4);
        let got: Vec<_> = (0..12).map(|i| lane.push(rec(i))).collect();
        assert_eq!(got[3], Ok(Queued::Wake));
        assert_eq!(got[7], Ok(Queued::Wake));
        assert!(got[10].is_err() && got[11].is_err());
        assert_eq!(lane.lost(), 2);
        assert_eq!(Lane::new(1).wake_every(), 1);
    }
}
