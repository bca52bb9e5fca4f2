//! The critical lane: a shared, bounded, lock-free queue for critical records whose thread
//! ring is full. Memory is capped by a reservation counter in front of an unbounded
//! `crossbeam_queue::SegQueue`; a push past the cap fails and is counted, never silent.

use super::record::Record;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};

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

/// A bounded multi-producer queue of critical records.
pub struct Lane {
    queue: Queue,
    /// Records reserved (pushed or being pushed) and not yet popped.
    len: AtomicUsize,
    cap: usize,
    /// Pushes refused because the lane was at its cap, ever.
    lost: AtomicU64,
}

impl Lane {
    /// A lane holding at most `cap` records (at least 1).
    pub fn new(cap: usize) -> Self {
        Self {
            queue: Queue::new(),
            len: AtomicUsize::new(0),
            cap: cap.max(1),
            lost: AtomicU64::new(0),
        }
    }

    /// Queues `r`, or gives it back (and counts it lost) when the lane is full.
    pub fn push(&self, r: Record) -> Result<(), Record> {
        // Relaxed: `len` only bounds memory; the RMW makes the reservation exact, and the
        // record itself is published by the queue's own synchronisation.
        if self.len.fetch_add(1, Ordering::Relaxed) >= self.cap {
            self.len.fetch_sub(1, Ordering::Relaxed);
            self.lost.fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        self.queue.push(r);
        Ok(())
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

    /// The cap.
    pub fn capacity(&self) -> usize {
        self.cap
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
}
