//! Sampled events: every call adds to the series' exact count and sum in the calling
//! thread's arena; a geometric skip (tcmalloc / Go heap-profiler style) decides, per thread,
//! which calls also leave a compact [`Record`] in the thread's ring for the flusher.
//!
//! The skip is kept as "the arena count at which the next event is sampled", so a call that
//! is not sampled costs one compare and one branch beyond the two exact adds: no RNG draw,
//! no clock read. Only a sampled call draws the next gap (xoshiro256++, one logarithm with
//! the per-`k` constant cached), stamps the record with the flusher's clock (one load), and
//! pushes. A sampled timer reads the precise clock exactly twice (start and stop) and stamps
//! its record with the stop reading.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::sync::{AtomicU64, Ordering};

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::key::{KeyArg, SampleKey, keep_keyed, nonzero};
use super::pipeline::{Pipeline, SampledMetric, SlotLease};
use super::record::Record;
use super::ring::{Producer, Push, ring_reserving};
use crate::arena::local::{ARENAS, with_arena};

/// Cell offsets of one sampled series in the arenas.
pub(crate) mod cells {
    /// Events seen (exact).
    pub const COUNT: u32 = 0;
    /// Sum of values (exact for `record!`; for `sampled_timer!` the Horvitz–Thompson sum).
    pub const SUM: u32 = 1;
    /// Arena count at which the next event is sampled (0: no gap drawn yet).
    pub const NEXT_AT: u32 = 2;
    /// The `k` the pending gap was drawn with, plus one; 0 when no gap was drawn (a
    /// series' first event in this arena, or a countdown set without a draw): the event
    /// the countdown reaches is then a fresh gap's first trial.
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

/// The series' count in this thread's arena now.
///
/// # Safety
/// As [`record_exact`].
#[inline(always)]
pub(crate) unsafe fn count_now(c: *const AtomicU64) -> u64 {
    Cells(c).get(COUNT)
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
///
/// # Safety
/// As [`record_exact`], with `c` the cells of `s`.
#[inline]
pub(crate) unsafe fn sample_at(
    c: *const AtomicU64,
    s: Sampled,
    n: u64,
    value: f64,
    key: KeyArg<'_>,
) {
    let hash = key.hash();
    if sample_slow(Cells(c), s.series, n, value, hash) {
        name_key(s.series, hash, &|out| key.write_label(out));
    }
}

/// A call site's `sampled_timer!` reached its countdown.
///
/// # Safety
/// As [`sample_at`].
#[inline]
pub(crate) unsafe fn timer_at(c: *const AtomicU64, s: Sampled, n: u64) -> SampledTimer {
    let k = decide_slow(Cells(c), s.series, n);
    SampledTimer {
        sampled: k.map(|k| (s.series, k, Instant::now())),
    }
}

/// The write handle of one series of a sampled metric ([`MetricKind::Sampled`]), named
/// after its kind as [`Counter`](crate::Counter) and [`Histogram`](crate::Histogram) are:
/// what `record!` and `sampled_timer!` record into, and what
/// [`Registry::sampled`](crate::Registry::sampled) returns (see the module docs).
///
/// [`MetricKind::Sampled`]: crate::MetricKind::Sampled
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
        if cfg!(hotmeter_disabled) {
            return;
        }
        let s = self.series;
        with_arena(move |arena| {
            let cells = Cells::of(arena, s);
            let n = cells.record_exact(value);
            if n >= cells.get(NEXT_AT) {
                sample_handle_slow(cells, s, n, value, 0);
            }
        });
    }

    /// [`Sampled::record`] or [`Sampled::record_keyed`] with the key as a [`KeyArg`]
    /// ([`KeyArg::NONE`]: no key).
    #[inline]
    pub(crate) fn record_key_arg(self, value: f64, key: KeyArg<'_>) {
        struct Arg<'a>(KeyArg<'a>);
        impl SampleKey for Arg<'_> {
            fn key_hash(&self) -> u64 {
                self.0.hash()
            }

            fn write_label(&self, out: &mut String) {
                self.0.write_label(out);
            }
        }
        if key.is_none() {
            self.record(value);
        } else {
            self.record_keyed(value, &Arg(key));
        }
    }

    /// Records `value` with a key (client, request id) carried in the record for per-key
    /// breakdowns. For a keyed family the key also decides: all events of one key are kept
    /// or dropped together.
    #[inline]
    pub fn record_keyed<K: SampleKey + ?Sized>(self, value: f64, key: &K) {
        if cfg!(hotmeter_disabled) {
            return;
        }
        let s = self.series;
        with_arena(|arena| {
            let cells = Cells::of(arena, s);
            let n = cells.record_exact(value);
            if s.metric.keyed {
                // Decided by the key, not a random-gap trial (see `skip_trial`).
                cells.skip_trial();
                let k = s.metric.k();
                let hash = nonzero(key.key_hash());
                if keep_keyed(hash, k) && keyed_slow(cells, s, value, hash, k) {
                    name_key(s, hash, &|out| key.write_label(out));
                }
            } else if n >= cells.get(NEXT_AT) {
                // The key is hashed only when the event is sampled.
                let hash = nonzero(key.key_hash());
                if sample_handle_slow(cells, s, n, value, hash) {
                    name_key(s, hash, &|out| key.write_label(out));
                }
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
        let hash = nonzero(key.key_hash());
        if self.record_critical_keyed_hash(value, hash) {
            name_key(self.series, hash, &|out| key.write_label(out));
        }
    }

    /// Whether the key `key` should be named now (see [`name_key`]).
    #[inline]
    fn record_critical_keyed_hash(self, value: f64, key: u64) -> bool {
        if cfg!(hotmeter_disabled) {
            return false;
        }
        let s = self.series;
        with_arena(|arena| {
            let cells = Cells::of(arena, s);
            cells.record_exact(value);
            cells.skip_trial();
            critical_slow(cells, s, value, key)
        })
    }

    /// Starts a timer that reads the clock only if this call is sampled; the exact count
    /// goes up either way. On drop a sampled timer records its elapsed seconds, weighted:
    /// the series' sum becomes a Horvitz–Thompson estimate (see the flusher's standard
    /// error), while the count stays exact.
    #[inline]
    pub fn start_timer(self) -> SampledTimer {
        if cfg!(hotmeter_disabled) {
            return SampledTimer::not_sampled();
        }
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
        push(
            cells,
            s,
            Record::new(s.base, k, secs, 0, time_ns, false).to_words(),
        );
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
    /// Where this sampler announces its pushes to shutdown ([`Pipeline::begin_push_at`]):
    /// its own, so a push reaches it without a thread-local lookup.
    slot: SlotLease,
}

impl ThreadSampler {
    fn new(pipeline: &Arc<Pipeline>) -> Self {
        let c = &pipeline.config;
        let (producer, consumer) =
            ring_reserving(c.ring_capacity, c.overflow, c.critical_reserve());
        pipeline.register_ring(consumer);
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(pipeline.thread_seed()),
            pipeline: Arc::clone(pipeline),
            producer,
            gap_q: gap_constants(),
            slot: SlotLease::take(),
        }
    }

    /// A gap `G ≥ 1` with `P(G = g) = p(1-p)^(g-1)`, `p = 2^-k`: 1 when `k = 0`, else a
    /// draw (out of line: the sampled path stays small).
    #[inline(always)]
    fn gap(&mut self, k: u8) -> u64 {
        if k == 0 { 1 } else { self.draw_gap(k) }
    }

    /// The gap for `k > 0` by inversion: `G = 1 + floor(ln U / ln(1-p))` with `U` uniform on
    /// `(0, 1]`. One logarithm: the denominator comes from the table.
    #[inline(never)]
    fn draw_gap(&mut self, k: u8) -> u64 {
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

/// This thread's samplers, boxed so that their addresses stay put while [`FAST`] holds
/// one (the `Vec` reallocates as engines come and go). Dropping it (at thread exit) first
/// empties `FAST`.
#[allow(clippy::vec_box)]
struct Samplers(Vec<Box<ThreadSampler>>);

impl Samplers {
    /// Removes the samplers of pipelines that shut down (their rings with them).
    fn forget_closed(&mut self) {
        if self.0.iter().any(|t| t.pipeline.is_closed()) {
            FAST.set(NO_SAMPLER);
            self.0.retain(|t| !t.pipeline.is_closed());
        }
    }
}

impl Drop for Samplers {
    fn drop(&mut self) {
        FAST.set(NO_SAMPLER);
        // The thread is exiting: drop its samplers (their producers mark the rings
        // abandoned), then wake each pipeline's flusher, whose next drain frees those rings
        // at once instead of at the next flush.
        let samplers = std::mem::take(&mut self.0);
        let pipelines: Vec<Arc<Pipeline>> =
            samplers.iter().map(|t| Arc::clone(&t.pipeline)).collect();
        drop(samplers);
        for p in pipelines {
            p.wake();
        }
    }
}

/// An empty [`FAST`].
const NO_SAMPLER: (*const Pipeline, *mut ThreadSampler) =
    (core::ptr::null(), core::ptr::null_mut());

thread_local! {
    static SAMPLERS: RefCell<Samplers> = const { RefCell::new(Samplers(Vec::new())) };
    /// The sampler used last and its pipeline: with one engine (the usual case) every
    /// lookup hits it with two plain thread-local loads. `const` and destructor-free, so
    /// it is readable at any time; emptied before any sampler is dropped.
    static FAST: Cell<(*const Pipeline, *mut ThreadSampler)> = const { Cell::new(NO_SAMPLER) };
    /// Set while a sampler of this thread is in use (by either path): a recording made
    /// from inside one (an allocator that records, say) finds no sampler instead of a
    /// second `&mut` to it.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Drops this thread's sampling state (and rings) for pipelines whose engine shut down.
pub(crate) fn forget_closed() {
    // Busy while samplers are dropped: a recording made from inside (an allocator that
    // records) finds no sampler instead of a borrowed `SAMPLERS`.
    let Some(_busy) = Busy::enter() else {
        return;
    };
    let _ = SAMPLERS.try_with(|samplers| samplers.borrow_mut().forget_closed());
}

/// Clears [`BUSY`] when dropped, also when the sampled path unwinds.
struct Busy;

impl Busy {
    #[inline(always)]
    fn enter() -> Option<Self> {
        if BUSY.get() {
            return None;
        }
        BUSY.set(true);
        Some(Busy)
    }
}

impl Drop for Busy {
    #[inline(always)]
    fn drop(&mut self) {
        BUSY.set(false);
    }
}

/// This thread's sampler for one pipeline, in use: the only reference to it while held.
struct InUse {
    t: *mut ThreadSampler,
    _busy: Busy,
}

impl core::ops::Deref for InUse {
    type Target = ThreadSampler;
    #[inline(always)]
    fn deref(&self) -> &ThreadSampler {
        // SAFETY: see `sampler`: `t` is live and only reached through this value.
        unsafe { &*self.t }
    }
}

impl core::ops::DerefMut for InUse {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut ThreadSampler {
        // SAFETY: see `sampler`.
        unsafe { &mut *self.t }
    }
}

/// This thread's sampler for `pipeline`, created (with its ring) on first use. `None` when
/// no ring may be created for it (nobody drains it, or it shut down), the thread is past
/// its thread-local destructors, or a sampler is already in use on this thread (a
/// recording from inside the sampled path).
///
/// The returned [`InUse`] points at `FAST`'s sampler (just read, or just set by
/// `sampler_slow`): boxed in this thread's `SAMPLERS`, and `FAST` is emptied before any of
/// them is dropped, so it is live; it holds [`Busy`], which every other way to a sampler,
/// and every way to drop one, checks first, so it is the only reference.
#[inline(always)]
fn sampler(pipeline: &Arc<Pipeline>) -> Option<InUse> {
    let busy = Busy::enter()?;
    let (p, t) = FAST.get();
    let t = if core::ptr::eq(p, Arc::as_ptr(pipeline)) {
        t
    } else {
        sampler_slow(pipeline)?
    };
    Some(InUse { t, _busy: busy })
}

/// Runs `f` on this thread's sampler for `pipeline` (see [`sampler`]).
#[inline(always)]
fn with_sampler<R>(pipeline: &Arc<Pipeline>, f: impl FnOnce(&mut ThreadSampler) -> R) -> Option<R> {
    let mut t = sampler(pipeline)?;
    Some(f(&mut t))
}

/// [`with_sampler`] when `FAST` holds another pipeline's sampler or none: finds or creates
/// it and makes it the `FAST` one. The caller holds [`Busy`].
#[cold]
#[inline(never)]
fn sampler_slow(pipeline: &Arc<Pipeline>) -> Option<*mut ThreadSampler> {
    SAMPLERS
        .try_with(|samplers| {
            let mut samplers = samplers.borrow_mut();
            find_sampler(&mut samplers, pipeline).map(|t| t as *mut ThreadSampler)
        })
        .ok()
        .flatten()
}

/// This thread's sampler for `pipeline`, created if needed, and made the [`FAST`] one.
fn find_sampler<'a>(
    samplers: &'a mut Samplers,
    pipeline: &Arc<Pipeline>,
) -> Option<&'a mut ThreadSampler> {
    let i = match samplers
        .0
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
            samplers.forget_closed();
            samplers.0.push(Box::new(ThreadSampler::new(pipeline)));
            samplers.0.len() - 1
        }
    };
    let t: &mut ThreadSampler = &mut samplers.0[i];
    FAST.set((Arc::as_ptr(pipeline), t));
    Some(t)
}

/// Decides with sampler `t` whether the event at count `n` is sampled, and draws the next
/// gap; the `k` to record it with, or `None`.
#[inline(always)]
fn decide(t: &mut ThreadSampler, cells: Cells, s: &SampledSeries, n: u64) -> Option<u8> {
    let k_now = s.metric.k();
    let gap_k = cells.get(GAP_K);
    let record_k = if gap_k == NO_GAP {
        // First event of this series in this arena: it is the first trial of a fresh gap,
        // so it is sampled only if that gap is 1 (probability p).
        let g = t.gap(k_now);
        if g > 1 {
            cells.set(NEXT_AT, n + g - 1);
            cells.set(GAP_K, k_now as u64 + 1);
            return None;
        }
        k_now
    } else {
        (gap_k - 1) as u8
    };
    let g = t.gap(k_now);
    cells.set(NEXT_AT, n + g);
    cells.set(GAP_K, k_now as u64 + 1);
    Some(record_k)
}

/// `GAP_K` when no gap was drawn (a series' first event here, or a countdown set by
/// [`no_sampler`] or [`paused`]): the call the countdown reaches is a fresh gap's first
/// trial, not a sampled one.
const NO_GAP: u64 = 0;

/// No ring for this pipeline on this thread (nobody drains it, or the thread is past its
/// destructors): not sampled, and the next 2^20 calls skip the slow path.
fn no_sampler(cells: Cells, n: u64) {
    cells.set(NEXT_AT, n + (1 << 20));
    cells.set(GAP_K, NO_GAP);
}

#[cfg(feature = "bench")]
std::thread_local! {
    /// Set on the overhead harness's worker threads during its *off* repetitions.
    static PAUSED: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Whether sampling is paused on this thread: only the overhead harness's workers, during
/// its *off* repetitions (feature `bench`; without it this is `false` and costs nothing).
/// Per thread, so a measurement never pauses the application's other threads.
#[inline(always)]
fn paused_here() -> bool {
    #[cfg(feature = "bench")]
    {
        PAUSED.with(core::cell::Cell::get)
    }
    #[cfg(not(feature = "bench"))]
    {
        false
    }
}

/// Pauses or resumes sampling on the calling thread (the overhead harness's run-time off
/// switch): while paused, a call whose countdown runs out samples nothing, pushes no record
/// and skips its next 2^16 decisions; exact counts and sums, and critical events, are
/// recorded as ever. Re-arm with [`rearm_this_thread`] when resuming.
#[cfg(feature = "bench")]
pub(crate) fn pause_this_thread(paused: bool) {
    PAUSED.with(|p| p.set(paused));
}

/// Sampling is paused on this thread ([`paused_here`]): not sampled, and the next 2^16
/// calls skip the slow path (until [`rearm_this_thread`]). `true` when paused.
#[inline(always)]
fn paused(cells: Cells, n: u64) -> bool {
    if !paused_here() {
        return false;
    }
    cells.set(NEXT_AT, n + (1 << 16));
    cells.set(GAP_K, NO_GAP);
    true
}

/// Restarts this thread's countdown of every series in `series` with a fresh gap (as for a
/// series' first event): after a pause, this thread samples again from its next call. A
/// geometric gap is memoryless, so redrawing one keeps every call's chance at `p`. Writes
/// only the calling thread's arena (single writer).
#[cfg(feature = "bench")]
pub(crate) fn rearm_this_thread(series: &[Sampled]) {
    with_arena(|arena| {
        for s in series {
            let cells = Cells::of(arena, s.series);
            cells.set(NEXT_AT, 0);
            cells.set(GAP_K, NO_GAP);
        }
    });
}

/// Sums cell `offset` (see [`cells`]) of every series in `series` over all arenas.
#[cfg(feature = "bench")]
pub(crate) fn sum_cells(series: &[Sampled], offset: u32) -> u64 {
    series.iter().map(|s| s.series.cell(offset)).sum()
}

/// The countdown reached this call (or no gap was drawn yet in this arena): decide whether
/// this event is sampled, draw the next gap, and return the `k` to record it with.
#[cold]
#[inline(never)]
fn decide_slow(cells: Cells, s: &SampledSeries, n: u64) -> Option<u8> {
    if paused(cells, n) {
        return None;
    }
    with_sampler(&s.metric.pipeline, |t| decide(t, cells, s, n)).unwrap_or_else(|| {
        no_sampler(cells, n);
        None
    })
}

/// Decides and, when sampled, pushes: one sampler lookup for both. Inlined into the two
/// cold callers (a call site's and a handle's), so the sampled path is one out-of-line call.
/// Returns whether the caller should name the key ([`name_key`]): the event was selected
/// (whatever its push's outcome) and its key is one the flusher wants named.
#[inline(always)]
fn sample_slow(cells: Cells, s: &SampledSeries, n: u64, value: f64, key: u64) -> bool {
    if paused(cells, n) {
        return false;
    }
    let pipeline = &s.metric.pipeline;
    let Some(mut t) = sampler(pipeline) else {
        no_sampler(cells, n);
        return false;
    };
    let Some(k) = decide(&mut t, cells, s, n) else {
        return false;
    };
    let time_ns = pipeline.stamp_ns();
    push_in(
        &mut t,
        cells,
        s,
        Record::new(s.base, k, value, key, time_ns, false).to_words(),
    );
    wants_name(pipeline, key)
}

/// Whether the flusher wants the key of a sampled event named: one load and a bit test
/// (false for an event without a key). See [`super::key_names`].
#[inline(always)]
fn wants_name(pipeline: &Pipeline, key: u64) -> bool {
    key != 0 && pipeline.names.wanted(key)
}

/// Names the key `key` of a sampled event of `s` with what `label` writes (after the push,
/// outside the sampler: it takes a lock and allocates).
#[cold]
#[inline(never)]
fn name_key(s: &SampledSeries, key: u64, label: &dyn Fn(&mut String)) {
    s.metric.pipeline.names.offer(key, label);
}

/// [`sample_slow`] out of line, for the handle path.
#[cold]
#[inline(never)]
fn sample_handle_slow(cells: Cells, s: &SampledSeries, n: u64, value: f64, key: u64) -> bool {
    sample_slow(cells, s, n, value, key)
}

/// Pushes a keyed family's event its key kept; whether to name the key.
#[cold]
#[inline(never)]
fn keyed_slow(cells: Cells, s: &SampledSeries, value: f64, key: u64, k: u8) -> bool {
    if paused_here() {
        return false;
    }
    let pipeline = &s.metric.pipeline;
    let time_ns = pipeline.stamp_ns();
    push(
        cells,
        s,
        Record::new(s.base, k, value, key, time_ns, false)
            .by_key()
            .to_words(),
    );
    wants_name(pipeline, key)
}

/// Pushes a critical event; whether to name its key.
#[cold]
#[inline(never)]
fn critical_slow(cells: Cells, s: &SampledSeries, value: f64, key: u64) -> bool {
    let pipeline = &s.metric.pipeline;
    let time_ns = pipeline.stamp_ns();
    push(
        cells,
        s,
        Record::new(s.base, 0, value, key, time_ns, true).to_words(),
    );
    wants_name(pipeline, key)
}

/// Pushes one selected event (a record's words, [`Record::to_words`]) into this thread's
/// ring for its pipeline.
fn push(cells: Cells, s: &SampledSeries, words: [u64; 4]) {
    let pipeline = &s.metric.pipeline;
    if with_sampler(pipeline, |t| push_in(t, cells, s, words)).is_none() {
        // No ring (shut down, never drained, past this thread's destructors, or a sampler
        // in use): only the lane can take it. Announced like a ring push, so that a
        // shutdown in progress waits for it before its final drain.
        let _pushing = pipeline.begin_push();
        cells.add(PUSHED, 1);
        settle(cells, pipeline, Push::Full(Record::from_words(words)));
    }
}

/// Counts the push, pushes the record (its words) into `t`'s ring, and accounts for a
/// record that did not fit (to the lane if critical, else a drop counter).
#[inline(always)]
fn push_in(t: &mut ThreadSampler, cells: Cells, s: &SampledSeries, words: [u64; 4]) {
    cells.add(PUSHED, 1);
    let pipeline = &s.metric.pipeline;
    // Held until the record is stored: `Pipeline::close` waits for it before shutdown's
    // final drain. After the close nothing drains the rings: the record counts as dropped
    // (a critical one still goes to the lane, which `Engine::flush` drains).
    let Some(_pushing) = pipeline.begin_push_at(&t.slot) else {
        return settle(cells, pipeline, Push::Full(Record::from_words(words)));
    };
    if let Some(held) = t.producer.try_store(words) {
        // The producer's own upper bound first: the shared `head` is read only near the
        // mark.
        if held >= pipeline.high_water {
            wake_if_high(t, pipeline);
        }
    } else {
        push_full(t, cells, pipeline, Record::from_words(words));
    }
}

/// A ring past its producer's upper bound of the high-water mark: wakes the flusher if it
/// really is (the shared `head` read).
#[cold]
#[inline(never)]
fn wake_if_high(t: &ThreadSampler, pipeline: &Pipeline) {
    if t.producer.len() >= pipeline.high_water {
        pipeline.wake();
    }
}

/// A record that found the ring full: the ring's overflow policy (a critical record is
/// never evicted nor waited for: it goes to the lane), the wake-up, the accounting.
#[cold]
#[inline(never)]
fn push_full(t: &mut ThreadSampler, cells: Cells, pipeline: &Pipeline, record: Record) {
    let outcome = if record.critical {
        match t.producer.try_push(record) {
            Ok(()) => Push::Stored,
            Err(r) => Push::Full(r),
        }
    } else {
        t.producer.push(record)
    };
    wake_if_high(t, pipeline);
    if !matches!(outcome, Push::Stored) {
        // A sampled record this ring lost: the consumer weights its neighbours for it.
        match outcome {
            Push::Full(r) | Push::TimedOut(r) | Push::Evicted(r) if !r.critical => {
                t.producer.note_dropped(r.series, r.weight());
            }
            _ => {}
        }
        settle(cells, pipeline, outcome);
    }
}

/// Accounts for a push that did not store its record: to the lane (critical), or a drop
/// counter.
#[cold]
#[inline(never)]
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
    match pipeline.to_lane(r) {
        Ok(()) => {
            cells.add(TO_LANE, 1);
        }
        Err(_) => {
            cells.add(LANE_FULL, 1);
        }
    }
}

/// [`to_lane`] for a record of another series (an evicted one), counted in its own cells.
fn to_lane_of(pipeline: &Pipeline, r: Record) {
    with_arena(|arena| to_lane(Cells(arena.cell_ptr(r.series)), pipeline, r));
}
