//! Sampled events: every call adds to the series' exact count and sum in the calling
//! thread's arena; a geometric skip (tcmalloc / Go heap-profiler style) decides, per thread,
//! which calls also leave a compact [`Record`] in the thread's ring for the flusher.
//!
//! The skip is kept as "the arena count at which the next event is sampled", so a call that
//! is not sampled costs one compare and one branch beyond the two exact adds: no RNG draw,
//! no clock read. Only a sampled call draws the next gap (xoshiro256++, one logarithm with
//! the per-`k` constant cached), reads the coarse clock for the record's timestamp, and
//! pushes. A sampled timer reads the precise clock exactly twice (start and stop) and stamps
//! its record with the stop reading.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::sync::{AtomicU64, Ordering};

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::key::{SampleKey, keep_keyed};
use super::pipeline::{Pipeline, SampledMetric};
use super::record::Record;
use super::ring::{Producer, Push, ring};
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

/// A sampled series' cells in the calling thread's arena, from the address of its first
/// cell: the owner's view (only the thread holding the arena writes them).
#[derive(Clone, Copy)]
pub(crate) struct Cells(*const AtomicU64);

impl Cells {
    /// The cells of `s` in this thread's `arena` (one chunk lookup).
    #[inline(always)]
    fn of(arena: &crate::arena::Arena, s: &SampledSeries) -> Self {
        Cells(arena.cell_ptr(s.base))
    }

    #[inline(always)]
    fn cell(self, i: u32) -> &'static AtomicU64 {
        debug_assert!(i < CELLS);
        // SAFETY: `self.0` is the first cell of a sampled series in the arena this thread
        // holds (from a filled call-site slot or `Arena::cell_ptr`); its `CELLS` cells lie in
        // one chunk, and chunks are never freed while the process runs.
        unsafe { &*self.0.add(i as usize) }
    }

    #[inline(always)]
    fn get(self, i: u32) -> u64 {
        // Relaxed: only this thread writes the cell.
        self.cell(i).load(Ordering::Relaxed)
    }

    #[inline(always)]
    fn set(self, i: u32, v: u64) {
        // Relaxed: only this thread writes the cell; readers want any recent value.
        self.cell(i).store(v, Ordering::Relaxed);
    }

    #[inline(always)]
    fn add(self, i: u32, n: u64) -> u64 {
        let v = self.get(i).wrapping_add(n);
        self.set(i, v);
        v
    }

    #[inline(always)]
    fn add_f64(self, i: u32, v: f64) {
        let old = f64::from_bits(self.get(i));
        self.set(i, (old + v).to_bits());
    }

    /// The exact part of a call: count and sum. Returns the new count.
    #[inline(always)]
    fn record_exact(self, value: f64) -> u64 {
        let n = self.add(COUNT, 1);
        self.add_f64(SUM, value);
        n
    }

    /// The random-gap countdown counts the series' arena count, so an event that is *not* a
    /// random-gap trial (critical, or decided by its key) moves the target one further: the
    /// pending gap then lands only on trials, and a random event after a burst of critical
    /// ones is sampled with probability p, not p times the burst.
    #[inline(always)]
    fn skip_trial(self) {
        let next_at = self.get(NEXT_AT);
        if next_at != 0 {
            self.set(NEXT_AT, next_at + 1);
        }
    }
}

/// Count and sum of one `record!` through a call site's slot; returns the new count.
///
/// # Safety
/// `c` is a filled call-site slot's address: the first cell of a sampled series in the
/// arena the calling thread holds.
#[inline(always)]
pub(crate) unsafe fn record_exact(c: *const AtomicU64, value: f64) -> u64 {
    Cells(c).record_exact(value)
}

/// The count of one `sampled_timer!` start through a call site's slot; returns it.
///
/// # Safety
/// As [`record_exact`].
#[inline(always)]
pub(crate) unsafe fn count_exact(c: *const AtomicU64) -> u64 {
    Cells(c).add(COUNT, 1)
}

/// The count at which this thread samples the series next.
///
/// # Safety
/// As [`record_exact`].
#[inline(always)]
pub(crate) unsafe fn next_at(c: *const AtomicU64) -> u64 {
    Cells(c).get(NEXT_AT)
}

/// A call site's `record!` reached its countdown (`n` is its new count).
#[cold]
#[inline(never)]
pub(crate) fn sample_at(s: Sampled, n: u64, value: f64, key: u64) {
    with_arena(|arena| sample_slow(Cells::of(arena, s.series), s.series, n, value, key));
}

/// A call site's keyed `record!` reached its countdown: the key is hashed only now.
#[cold]
#[inline(never)]
pub(crate) fn sample_keyed_at<K: SampleKey + ?Sized>(s: Sampled, n: u64, value: f64, key: &K) {
    sample_at(s, n, value, key.key_hash());
}

/// A call site's `sampled_timer!` reached its countdown.
#[cold]
#[inline(never)]
pub(crate) fn timer_at(s: Sampled, n: u64) -> SampledTimer {
    let k = with_arena(|arena| decide_slow(Cells::of(arena, s.series), s.series, n));
    SampledTimer {
        sampled: k.map(|k| (s.series, k, Instant::now())),
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
            let cells = Cells::of(arena, s);
            let n = cells.record_exact(value);
            if n >= cells.get(NEXT_AT) {
                sample_slow(cells, s, n, value, 0);
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
            let cells = Cells::of(arena, s);
            let n = cells.record_exact(value);
            if s.metric.keyed {
                // Decided by the key, not a random-gap trial (see `skip_trial`).
                cells.skip_trial();
                let k = s.metric.k();
                let hash = key.key_hash();
                if keep_keyed(hash, k) {
                    keyed_slow(cells, s, value, hash, k);
                }
            } else if n >= cells.get(NEXT_AT) {
                // The key is hashed only when the event is sampled.
                sample_slow(cells, s, n, value, key.key_hash());
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
            let cells = Cells::of(arena, s);
            cells.record_exact(value);
            cells.skip_trial();
            critical_slow(cells, s, value, key);
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
            let cells = Cells::of(arena, s);
            let n = cells.add(COUNT, 1);
            if n >= cells.get(NEXT_AT) {
                decide_slow(cells, s, n)
            } else {
                None
            }
        });
        SampledTimer {
            sampled: k.map(|k| (s, k, Instant::now())),
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

/// Measures one call of a sampled timer; see [`Sampled::start_timer`].
#[must_use = "a timer records when it is dropped; bind it with `let _t = ...`"]
#[derive(Debug)]
pub struct SampledTimer {
    /// The series, the `k` and the start reading of a sampled call; `None` otherwise.
    sampled: Option<(&'static SampledSeries, u8, Instant)>,
}

impl SampledTimer {
    /// A call that was not sampled: dropping it does nothing.
    #[inline(always)]
    pub(crate) fn not_sampled() -> Self {
        Self { sampled: None }
    }

    /// Whether this call was sampled (and so read the clock).
    pub fn is_sampled(&self) -> bool {
        self.sampled.is_some()
    }
}

impl Drop for SampledTimer {
    #[inline]
    fn drop(&mut self) {
        if let Some((series, k, start)) = self.sampled {
            timer_slow(series, k, start);
        }
    }
}

/// The second of a sampled timer's two clock reads: the elapsed time, and the record's
/// timestamp.
#[cold]
#[inline(never)]
fn timer_slow(s: &'static SampledSeries, k: u8, start: Instant) {
    let end = Instant::now();
    let secs = end.saturating_duration_since(start).as_secs_f64();
    let time_ns = end
        .saturating_duration_since(s.metric.pipeline.start)
        .as_nanos() as u64;
    with_arena(|arena| {
        let cells = Cells::of(arena, s);
        cells.add_f64(SUM, secs * (1u64 << k) as f64);
        push(cells, s, k, secs, 0, time_ns, false);
    });
}

/// `1 / ln(1 - 2^-k)` for every `k`: the one constant of the inverse-CDF gap draw.
fn gap_constants() -> &'static [f64; 64] {
    static TABLE: OnceLock<[f64; 64]> = OnceLock::new();
    TABLE.get_or_init(|| core::array::from_fn(|k| (-(0.5f64.powi(k as i32))).ln_1p()))
}

/// Per-thread sampling state for one pipeline: the gap generator and the ring producer.
struct ThreadSampler {
    pipeline: Arc<Pipeline>,
    rng: Xoshiro256PlusPlus,
    producer: Producer,
    /// `ln(1 - 2^-k)` per `k` (see [`gap_constants`]).
    gap_q: &'static [f64; 64],
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
            gap_q: gap_constants(),
        }
    }

    /// A gap `G ≥ 1` with `P(G = g) = p(1-p)^(g-1)`, `p = 2^-k`, by inversion:
    /// `G = 1 + floor(ln U / ln(1-p))` with `U` uniform on `(0, 1]`. One logarithm: the
    /// denominator comes from the table.
    #[inline]
    fn gap(&mut self, k: u8) -> u64 {
        if k == 0 {
            return 1;
        }
        let u = 1.0 - (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let q = self.gap_q[k as usize & 63];
        let g = (u.ln() / q).floor();
        if g >= (u64::MAX / 2) as f64 {
            u64::MAX / 2
        } else {
            1 + g as u64
        }
    }
}

thread_local! {
    /// This thread's samplers, one per pipeline it sampled into.
    static SAMPLERS: RefCell<Vec<ThreadSampler>> = const { RefCell::new(Vec::new()) };
    /// Index in `SAMPLERS` of the sampler used last: with one engine (the usual case) every
    /// lookup hits it, with no search. Only a hint: the pipeline is compared before use.
    static LAST: Cell<usize> = const { Cell::new(0) };
}

/// Drops this thread's sampling state (and rings) for pipelines whose engine shut down.
pub(crate) fn forget_closed() {
    let _ = SAMPLERS.try_with(|samplers| {
        samplers.borrow_mut().retain(|t| !t.pipeline.is_closed());
    });
}

/// Runs `f` on this thread's sampler for `pipeline`, creating it (and its ring) on first
/// use. `None` when no ring may be created for it (nobody drains it, or it shut down) or
/// the thread is past its thread-local destructors.
#[inline]
fn with_sampler<R>(pipeline: &Arc<Pipeline>, f: impl FnOnce(&mut ThreadSampler) -> R) -> Option<R> {
    SAMPLERS
        .try_with(|samplers| {
            let mut samplers = samplers.borrow_mut();
            let last = LAST.get();
            let i = match samplers.get(last) {
                Some(t) if Arc::ptr_eq(&t.pipeline, pipeline) => last,
                _ => find_sampler(&mut samplers, pipeline)?,
            };
            Some(f(&mut samplers[i]))
        })
        .ok()
        .flatten()
}

/// The index of this thread's sampler for `pipeline`, created if needed; remembered in
/// `LAST`.
#[cold]
#[inline(never)]
fn find_sampler(samplers: &mut Vec<ThreadSampler>, pipeline: &Arc<Pipeline>) -> Option<usize> {
    let i = match samplers
        .iter()
        .position(|t| Arc::ptr_eq(&t.pipeline, pipeline))
    {
        Some(i) => i,
        // A pipeline nobody drains (no flusher, or shut down) gets no ring: its samples
        // count as dropped instead of piling up per thread.
        None if !pipeline.accepts_rings() => return None,
        None => {
            // Drop this thread's state for engines that shut down, so short-lived engines
            // (tests) do not pile up rings in long-lived threads.
            samplers.retain(|t| !t.pipeline.is_closed());
            samplers.push(ThreadSampler::new(pipeline));
            samplers.len() - 1
        }
    };
    LAST.set(i);
    Some(i)
}

/// Decides with sampler `t` whether the event at count `n` is sampled, and draws the next
/// gap; the `k` to record it with, or `None`.
#[inline]
fn decide(t: &mut ThreadSampler, cells: Cells, s: &SampledSeries, n: u64) -> Option<u8> {
    let k_now = s.metric.k();
    let record_k = if cells.get(NEXT_AT) == 0 {
        // First event of this series in this arena: it is the first trial of a fresh gap,
        // so it is sampled only if that gap is 1 (probability p).
        let g = t.gap(k_now);
        if g > 1 {
            cells.set(NEXT_AT, n + g - 1);
            cells.set(GAP_K, k_now as u64);
            return None;
        }
        k_now
    } else {
        cells.get(GAP_K) as u8
    };
    let g = t.gap(k_now);
    cells.set(NEXT_AT, n + g);
    cells.set(GAP_K, k_now as u64);
    Some(record_k)
}

/// No ring for this pipeline on this thread (nobody drains it, or the thread is past its
/// destructors): not sampled, and the next 2^20 calls skip the slow path.
fn no_sampler(cells: Cells, n: u64) {
    cells.set(NEXT_AT, n + (1 << 20));
}

/// The countdown reached this call (or no gap was drawn yet in this arena): decide whether
/// this event is sampled, draw the next gap, and return the `k` to record it with.
#[cold]
#[inline(never)]
fn decide_slow(cells: Cells, s: &SampledSeries, n: u64) -> Option<u8> {
    with_sampler(&s.metric.pipeline, |t| decide(t, cells, s, n)).unwrap_or_else(|| {
        no_sampler(cells, n);
        None
    })
}

/// Decides and, when sampled, pushes: one sampler lookup for both.
#[cold]
#[inline(never)]
fn sample_slow(cells: Cells, s: &SampledSeries, n: u64, value: f64, key: u64) {
    let pipeline = &s.metric.pipeline;
    let sampled = with_sampler(pipeline, |t| {
        let k = decide(t, cells, s, n)?;
        Some((
            k,
            push_with(t, cells, s, k, value, key, pipeline.coarse_ns(), false),
        ))
    });
    match sampled {
        None => no_sampler(cells, n),
        Some(None) => {}
        Some(Some((_, outcome))) => settle(cells, pipeline, outcome),
    }
}

#[cold]
#[inline(never)]
fn keyed_slow(cells: Cells, s: &SampledSeries, value: f64, key: u64, k: u8) {
    push(
        cells,
        s,
        k,
        value,
        key,
        s.metric.pipeline.coarse_ns(),
        false,
    );
}

#[cold]
#[inline(never)]
fn critical_slow(cells: Cells, s: &SampledSeries, value: f64, key: u64) {
    push(cells, s, 0, value, key, s.metric.pipeline.coarse_ns(), true);
}

/// Pushes one selected event (count it, then the ring, the lane or a drop counter).
fn push(
    cells: Cells,
    s: &SampledSeries,
    k: u8,
    value: f64,
    key: u64,
    time_ns: u64,
    critical: bool,
) {
    let pipeline = &s.metric.pipeline;
    let outcome = with_sampler(pipeline, |t| {
        push_with(t, cells, s, k, value, key, time_ns, critical)
    })
    // No ring (shut down, never drained, or past this thread's destructors): only the
    // lane can take it.
    .unwrap_or_else(|| {
        cells.add(PUSHED, 1);
        Push::Full(Record {
            series: s.base,
            k,
            value,
            key,
            time_ns,
            critical,
        })
    });
    settle(cells, pipeline, outcome);
}

/// Counts the push and pushes into `t`'s ring; `settle` then accounts for the outcome.
#[allow(clippy::too_many_arguments)]
#[inline]
fn push_with(
    t: &mut ThreadSampler,
    cells: Cells,
    s: &SampledSeries,
    k: u8,
    value: f64,
    key: u64,
    time_ns: u64,
    critical: bool,
) -> Push {
    let record = Record {
        series: s.base,
        k,
        value,
        key,
        time_ns,
        critical,
    };
    cells.add(PUSHED, 1);
    let pipeline = &s.metric.pipeline;
    if pipeline.is_closed() {
        return Push::Full(record);
    }
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
}

/// Accounts for a push's outcome: stored, or to the lane (critical), or a drop counter.
#[inline]
fn settle(cells: Cells, pipeline: &Pipeline, outcome: Push) {
    match outcome {
        Push::Stored => {}
        Push::Full(r) | Push::TimedOut(r) if r.critical => to_lane(cells, pipeline, r),
        Push::Full(_) => {
            cells.add(DROP_FULL, 1);
        }
        Push::TimedOut(_) => {
            cells.add(DROP_TIMEOUT, 1);
        }
        Push::Evicted(old) if old.critical => to_lane_of(pipeline, old),
        Push::Evicted(old) => {
            with_arena(|arena| arena.add(old.series + DROP_OLDEST, 1));
        }
    }
}

fn to_lane(cells: Cells, pipeline: &Pipeline, r: Record) {
    match pipeline.lane.push(r) {
        Ok(()) => {
            cells.add(TO_LANE, 1);
        }
        Err(_) => {
            cells.add(LANE_FULL, 1);
            if pipeline.config.wake_on_high_water {
                pipeline.wake();
            }
        }
    }
}

/// [`to_lane`] for a record of another series (an evicted one), counted in its own cells.
fn to_lane_of(pipeline: &Pipeline, r: Record) {
    with_arena(|arena| to_lane(Cells(arena.cell_ptr(r.series)), pipeline, r));
}
