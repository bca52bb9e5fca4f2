//! Sampled events: every call adds to the series' exact count and sum in the calling
//! thread's arena; a geometric skip (tcmalloc / Go heap-profiler style) decides, per thread,
//! which calls also leave a compact [`Record`] in the thread's ring for the flusher.
//!
//! The skip is kept as "the arena count at which the next event is sampled", so a call that
//! is not sampled costs one compare and one branch beyond the two exact adds: no RNG draw,
//! no clock read. Only a sampled call draws the next gap (xoshiro256++), reads the clock,
//! and pushes.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::key::{SampleKey, keep_keyed};
use super::pipeline::{Pipeline, SampledMetric};
use super::record::Record;
use super::ring::{Producer, Push, ring};
use crate::arena::Arena;
use crate::arena::local::{ARENAS, with_arena};

/// Cell offsets of one sampled series in the arenas.
pub(crate) mod cells {
    /// Events seen (exact).
    pub const COUNT: u32 = 0;
    /// Sum of values (exact for `record!`; for `sampled_timer!` the Horvitz–Thompson sum).
    pub const SUM: u32 = 1;
    /// Arena count at which the next event is sampled (0: no gap drawn yet).
    pub const NEXT_AT: u32 = 2;
    /// The `k` the pending gap was drawn with.
    pub const GAP_K: u32 = 3;
    /// Events selected (sampled or critical): each becomes one push attempt.
    pub const PUSHED: u32 = 4;
    /// Push attempts refused by a full ring (drop-newest).
    pub const DROP_FULL: u32 = 5;
    /// Records of this series discarded unread by a drop-oldest push.
    pub const DROP_OLDEST: u32 = 6;
    /// Push attempts that waited their timeout (block policy).
    pub const DROP_TIMEOUT: u32 = 7;
    /// Critical records sent to the critical lane because the ring was full.
    pub const TO_LANE: u32 = 8;
    /// Critical records lost because the lane was at its cap too.
    pub const LANE_FULL: u32 = 9;
    /// Cells per sampled series.
    pub const CELLS: u32 = 10;
}
use cells::*;

/// One registered sampled series.
#[derive(Debug)]
pub struct SampledSeries {
    /// First cell id.
    pub base: u32,
    /// Its family's shared state.
    pub metric: &'static SampledMetric,
}

impl SampledSeries {
    /// Exact value of one of this series' cells, summed over all arenas.
    pub(crate) fn cell(&self, offset: u32) -> u64 {
        ARENAS.sum(self.base + offset)
    }

    /// The series' sum cell.
    pub(crate) fn sum(&self) -> f64 {
        ARENAS.sum_f64(self.base + SUM)
    }
}

/// A handle to one sampled-event series (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Sampled {
    pub(crate) series: &'static SampledSeries,
}

impl PartialEq for Sampled {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::eq(self.series, other.series)
    }
}

impl Eq for Sampled {}

impl Sampled {
    /// Records `value`: exact count and sum always; a compact record when sampled.
    #[inline]
    pub fn record(self, value: f64) {
        let s = self.series;
        with_arena(move |arena| {
            let cells = arena.block(s.base);
            let n = cells.bump(COUNT);
            cells.add_f64(SUM, value);
            if n >= cells.get(NEXT_AT) {
                sample_slow(arena, s, n, value, 0);
            }
        });
    }

    /// Records `value` with a key (client, request id) carried in the record for per-key
    /// breakdowns. For a keyed family the key also decides: all events of one key are kept
    /// or dropped together.
    #[inline]
    pub fn record_keyed<K: SampleKey + ?Sized>(self, value: f64, key: &K) {
        let s = self.series;
        with_arena(|arena| {
            let cells = arena.block(s.base);
            let n = cells.bump(COUNT);
            cells.add_f64(SUM, value);
            if s.metric.keyed {
                // Decided by the key, not a random-gap trial (see `skip_trial`).
                skip_trial(&cells);
                let k = s.metric.k();
                let hash = key.key_hash();
                if keep_keyed(hash, k) {
                    keyed_slow(arena, s, value, hash, k);
                }
            } else if n >= cells.get(NEXT_AT) {
                // The key is hashed only when the event is sampled.
                sample_slow(arena, s, n, value, key.key_hash());
            }
        });
    }

    /// Records a critical event: never sampled out (weight 1), and when the ring is full it
    /// goes to the shared critical lane; only a full lane loses it, counted and reported.
    #[inline]
    pub fn record_critical(self, value: f64) {
        self.record_critical_keyed_hash(value, 0);
    }

    /// [`Sampled::record_critical`] with a key.
    #[inline]
    pub fn record_critical_keyed<K: SampleKey + ?Sized>(self, value: f64, key: &K) {
        self.record_critical_keyed_hash(value, key.key_hash());
    }

    #[inline]
    fn record_critical_keyed_hash(self, value: f64, key: u64) {
        let s = self.series;
        with_arena(|arena| {
            let cells = arena.block(s.base);
            cells.bump(COUNT);
            cells.add_f64(SUM, value);
            skip_trial(&cells);
            critical_slow(arena, s, value, key);
        });
    }

    /// Starts a timer that reads the clock only if this call is sampled; the exact count
    /// goes up either way. On drop a sampled timer records its elapsed seconds, weighted:
    /// the series' sum becomes a Horvitz–Thompson estimate (see the flusher's standard
    /// error), while the count stays exact.
    #[inline]
    pub fn start_timer(self) -> SampledTimer {
        let s = self.series;
        let k = with_arena(|arena| {
            let cells = arena.block(s.base);
            let n = cells.bump(COUNT);
            if n >= cells.get(NEXT_AT) {
                decide_slow(arena, s, n)
            } else {
                None
            }
        });
        SampledTimer {
            series: s,
            sampled: k.map(|k| (k, Instant::now())),
        }
    }

    /// The exact number of events recorded.
    pub fn count(self) -> u64 {
        self.series.cell(COUNT)
    }

    /// The sum of the values (exact for `record`, estimated for timers).
    pub fn sum(self) -> f64 {
        self.series.sum()
    }
}

/// The random-gap countdown counts the series' arena count, so an event that is *not* a
/// random-gap trial (critical, or decided by its key) moves the target one further: the
/// pending gap then lands only on trials, and a random event after a burst of critical
/// ones is sampled with probability p, not p times the burst.
#[inline(always)]
fn skip_trial(cells: &crate::arena::Block<'_>) {
    let next_at = cells.get(NEXT_AT);
    if next_at != 0 {
        cells.set(NEXT_AT, next_at + 1);
    }
}

/// Measures one call of a sampled timer; see [`Sampled::start_timer`].
#[must_use = "a timer records when it is dropped; bind it with `let _t = ...`"]
#[derive(Debug)]
pub struct SampledTimer {
    series: &'static SampledSeries,
    sampled: Option<(u8, Instant)>,
}

impl SampledTimer {
    /// Whether this call was sampled (and so read the clock).
    pub fn is_sampled(&self) -> bool {
        self.sampled.is_some()
    }
}

impl Drop for SampledTimer {
    #[inline]
    fn drop(&mut self) {
        if let Some((k, start)) = self.sampled {
            timer_slow(self.series, k, start);
        }
    }
}

#[cold]
#[inline(never)]
fn timer_slow(s: &'static SampledSeries, k: u8, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    with_arena(|arena| {
        arena.add_f64(s.base + SUM, secs * (1u64 << k) as f64);
        push(arena, s, k, secs, 0, false);
    });
}

/// Per-thread sampling state for one pipeline: the gap generator and the ring producer.
struct ThreadSampler {
    pipeline: Arc<Pipeline>,
    rng: Xoshiro256PlusPlus,
    producer: Producer,
}

impl ThreadSampler {
    fn new(pipeline: &Arc<Pipeline>) -> Self {
        let c = &pipeline.config;
        let (producer, consumer) = ring(c.ring_capacity, c.overflow);
        pipeline.register_ring(consumer);
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(pipeline.thread_seed()),
            pipeline: Arc::clone(pipeline),
            producer,
        }
    }

    /// A gap `G ≥ 1` with `P(G = g) = p(1-p)^(g-1)`, `p = 2^-k`, by inversion:
    /// `G = 1 + floor(ln U / ln(1-p))` with `U` uniform on `(0, 1]`.
    fn gap(&mut self, k: u8) -> u64 {
        if k == 0 {
            return 1;
        }
        let u = 1.0 - (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let q = (-(0.5f64.powi(k as i32))).ln_1p();
        let g = (u.ln() / q).floor();
        if g >= (u64::MAX / 2) as f64 {
            u64::MAX / 2
        } else {
            1 + g as u64
        }
    }
}

thread_local! {
    static SAMPLERS: RefCell<Vec<ThreadSampler>> = const { RefCell::new(Vec::new()) };
}

/// Drops this thread's sampling state (and rings) for pipelines whose engine shut down.
pub(crate) fn forget_closed() {
    let _ = SAMPLERS.try_with(|samplers| {
        samplers.borrow_mut().retain(|t| !t.pipeline.is_closed());
    });
}

/// Runs `f` on this thread's sampler for `pipeline`, creating it (and its ring) on first
/// use. `None` when the thread is past its thread-local destructors.
fn with_sampler<R>(pipeline: &Arc<Pipeline>, f: impl FnOnce(&mut ThreadSampler) -> R) -> Option<R> {
    SAMPLERS
        .try_with(|samplers| {
            let mut samplers = samplers.borrow_mut();
            let i = match samplers
                .iter()
                .position(|t| Arc::ptr_eq(&t.pipeline, pipeline))
            {
                Some(i) => i,
                // A pipeline nobody drains (no flusher, or shut down) gets no ring: its
                // samples count as dropped instead of piling up per thread.
                None if !pipeline.accepts_rings() => return None,
                None => {
                    // Drop this thread's state for engines that shut down, so short-lived
                    // engines (tests) do not pile up rings in long-lived threads.
                    samplers.retain(|t| !t.pipeline.is_closed());
                    samplers.push(ThreadSampler::new(pipeline));
                    samplers.len() - 1
                }
            };
            Some(f(&mut samplers[i]))
        })
        .ok()
        .flatten()
}

/// The countdown reached this call (or no gap was drawn yet in this arena): decide whether
/// this event is sampled, draw the next gap, and return the `k` to record it with.
#[cold]
#[inline(never)]
fn decide_slow(arena: &Arena, s: &SampledSeries, n: u64) -> Option<u8> {
    let next_at = arena.get(s.base + NEXT_AT);
    let k_now = s.metric.k();
    with_sampler(&s.metric.pipeline, |t| {
        let record_k = if next_at == 0 {
            // First event of this series in this arena: it is the first trial of a fresh
            // gap, so it is sampled only if that gap is 1 (probability p).
            let g = t.gap(k_now);
            if g > 1 {
                arena.set(s.base + NEXT_AT, n + g - 1);
                arena.set(s.base + GAP_K, k_now as u64);
                return None;
            }
            k_now
        } else {
            arena.get(s.base + GAP_K) as u8
        };
        let g = t.gap(k_now);
        arena.set(s.base + NEXT_AT, n + g);
        arena.set(s.base + GAP_K, k_now as u64);
        Some(record_k)
    })
    .unwrap_or_else(|| {
        // No ring for this pipeline on this thread (nobody drains it, or the thread is
        // past its destructors): not sampled, and the next 2^20 calls skip the slow path.
        arena.set(s.base + NEXT_AT, n + (1 << 20));
        None
    })
}

#[cold]
#[inline(never)]
fn sample_slow(arena: &Arena, s: &SampledSeries, n: u64, value: f64, key: u64) {
    if let Some(k) = decide_slow(arena, s, n) {
        push(arena, s, k, value, key, false);
    }
}

#[cold]
#[inline(never)]
fn keyed_slow(arena: &Arena, s: &SampledSeries, value: f64, key: u64, k: u8) {
    push(arena, s, k, value, key, false);
}

#[cold]
#[inline(never)]
fn critical_slow(arena: &Arena, s: &SampledSeries, value: f64, key: u64) {
    push(arena, s, 0, value, key, true);
}

fn push(arena: &Arena, s: &SampledSeries, k: u8, value: f64, key: u64, critical: bool) {
    let pipeline = &s.metric.pipeline;
    let record = Record {
        series: s.base,
        k,
        value,
        key,
        time_ns: pipeline.start.elapsed().as_nanos() as u64,
        critical,
    };
    arena.add(s.base + PUSHED, 1);
    // Held until the record is stored: `Pipeline::close` waits for it (shutdown's drain).
    let Some(_pushing) = pipeline.begin_push() else {
        // After shutdown nothing drains the rings: count the record as dropped (a critical
        // one still goes to the lane, which `Engine::flush` drains).
        return match critical {
            true => to_lane(arena, pipeline, record),
            false => arena.add(s.base + DROP_FULL, 1),
        };
    };
    let outcome = with_sampler(pipeline, |t| {
        let outcome = if critical {
            match t.producer.try_push(record) {
                Ok(()) => Push::Stored,
                Err(r) => Push::Full(r),
            }
        } else {
            t.producer.push(record)
        };
        if t.producer.len() >= pipeline.high_water {
            pipeline.wake();
        }
        outcome
    })
    // Past this thread's destructors there is no ring: only the lane can take it.
    .unwrap_or(Push::Full(record));
    match outcome {
        Push::Stored => {}
        Push::Full(r) | Push::TimedOut(r) if r.critical => to_lane(arena, pipeline, r),
        Push::Full(_) => arena.add(s.base + DROP_FULL, 1),
        Push::TimedOut(_) => arena.add(s.base + DROP_TIMEOUT, 1),
        Push::Evicted(old) if old.critical => to_lane(arena, pipeline, old),
        Push::Evicted(old) => arena.add(old.series + DROP_OLDEST, 1),
    }
}

fn to_lane(arena: &Arena, pipeline: &Pipeline, r: Record) {
    match pipeline.to_lane(r) {
        Ok(()) => arena.add(r.series + TO_LANE, 1),
        Err(_) => arena.add(r.series + LANE_FULL, 1),
    }
}
