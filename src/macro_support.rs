//! What the macros expand to. `#[doc(hidden)]`: not a stable API.
//!
//! A call site with a literal name and literal labels expands to two items: a `static`
//! [`Site`] that resolves the series once for the whole process, and a `const`,
//! destructor-free `thread_local!` [`Slot`] that caches the address of the series' cells in
//! the calling thread's arena. The macro returns a [`SiteHandle`] (the two together), whose
//! record path is a thread-local load, a null test and the adds: no arena lookup, no chunk
//! table, no site-id test. A slot is filled on its thread's first call and reset by the
//! thread's arena holder before the arena goes back to the pool (see
//! `arena::Holder`), so a cached address never outlives the thread's
//! ownership of its cells.
//!
//! A call site with dynamic label values resolves through a per-thread cache in front of the
//! registry, so a hit costs a hash of the values and no lock.

use core::cell::RefCell;
use core::hash::{BuildHasher, Hasher};
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::LocalKey;

use crate::arena::RESERVED_CELLS;
pub use crate::arena::Slot;
use crate::arena::local::fill_slot;
use crate::engine::global;
use crate::metric::{Counter, Gauge, Histogram, HistogramConfig, HistogramSeries, MetricKind};
use crate::names::truncate_label_value;
pub use crate::names::{assert_label_name, assert_metric_name};
use crate::registry::{FamilyConfig, Handle};
use crate::sample::key::{KeyArg, SampleKey};
use crate::sample::pipeline::{Pipeline, SampledMetric};
use crate::sample::sampled::{self, Sampled, SampledSeries, SampledTimer};

/// Cell 1 (reserved) backs the discard counter.
const DISCARD_COUNTER: Counter = Counter { id: 1 };
/// Reserved cells from here back the discard sampled series (the discard histogram uses
/// cells `0..HistogramConfig::seconds().cells()`, which ends below it).
const DISCARD_SAMPLED_BASE: u32 = RESERVED_CELLS - sampled::cells::CELLS;

fn discard_gauge() -> Gauge {
    static CELL: AtomicU64 = AtomicU64::new(0);
    Gauge { cell: &CELL }
}

fn discard_histogram() -> Histogram {
    static SERIES: OnceLock<HistogramSeries> = OnceLock::new();
    let series = SERIES.get_or_init(|| {
        let config = HistogramConfig::seconds();
        debug_assert!(config.cells() <= DISCARD_SAMPLED_BASE);
        HistogramSeries {
            base: 0,
            layout: config.layout(),
            exemplar_metric: None,
            exemplars: OnceLock::new(),
        }
    });
    Histogram { series }
}

/// A sampled series on reserved cells with a pipeline of its own that is closed from the
/// start: nothing is exported, nothing queues, and building it cannot fail (it allocates no
/// cells), so a call site whose registration failed always has somewhere to record.
fn discard_sampled() -> Sampled {
    static SERIES: OnceLock<SampledSeries> = OnceLock::new();
    let series = SERIES.get_or_init(|| {
        let config = crate::config::Config {
            critical_lane_bytes: crate::sample::lane::BYTES_PER_RECORD,
            ..crate::config::Config::default()
        };
        // Its cells are reserved ones; the pool only matters for allocations, which it
        // never makes.
        let pipeline = Arc::new(Pipeline::new(
            config.sampling(),
            crate::arena::CellPool::Other,
        ));
        pipeline.close();
        let metric: &'static SampledMetric = Box::leak(Box::new(SampledMetric {
            name: "hotmeter_discarded".into(),
            k: core::sync::atomic::AtomicU8::new(pipeline.config.initial_k),
            keyed: false,
            exemplars: false,
            pipeline,
        }));
        SampledSeries {
            base: DISCARD_SAMPLED_BASE,
            metric,
        }
    });
    Sampled { series }
}

/// A failed registration at a macro call site: counted, reported on stderr the first time
/// for this call site (`reported`), and the site records into a discard handle (never
/// exported) instead of panicking on a hot path.
#[cold]
fn report(name: &str, err: &crate::Error, reported: &AtomicBool) {
    global().note_registration_error();
    // Relaxed: only deduplicates a message; two racing first failures may both print.
    if !reported.swap(true, Ordering::Relaxed) {
        eprintln!("hotmeter: metric {name:?} not recorded: {err} (reported once per call site)");
    }
}

fn resolve<H: SiteKind>(name: &str, labels: &[(&str, &str)], reported: &AtomicBool) -> H {
    match global().series(name, labels, H::KIND, FamilyConfig::Default) {
        Ok(h) => handle_as(h).expect("the registry returns the kind asked for"),
        Err(err) => {
            report(name, &err, reported);
            H::discard()
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Counter {}
    impl Sealed for crate::Gauge {}
    impl Sealed for crate::Histogram {}
    impl Sealed for crate::Sampled {}
}

/// A handle kind a call site can cache: `Copy`, `'static`, and representable as one
/// non-zero word.
pub trait SiteKind: sealed::Sealed + Copy + 'static {
    /// The metric kind this handle records.
    const KIND: MetricKind;
    /// The handle as a non-zero word.
    fn to_bits(self) -> usize;
    /// The handle back from [`SiteKind::to_bits`].
    ///
    /// # Safety
    /// `bits` must come from `to_bits` of a handle of this kind.
    unsafe fn from_bits(bits: usize) -> Self;
    /// A handle that records into cells nobody exports.
    fn discard() -> Self;
}

impl SiteKind for Counter {
    const KIND: MetricKind = MetricKind::Counter;
    fn to_bits(self) -> usize {
        self.id as usize // ids start past the reserved cells, 0 is never one
    }
    unsafe fn from_bits(bits: usize) -> Self {
        Counter { id: bits as u32 }
    }
    fn discard() -> Self {
        DISCARD_COUNTER
    }
}

impl SiteKind for Gauge {
    const KIND: MetricKind = MetricKind::Gauge;
    fn to_bits(self) -> usize {
        ptr::from_ref(self.cell) as usize
    }
    unsafe fn from_bits(bits: usize) -> Self {
        // SAFETY: `bits` is the address of a `&'static AtomicU64` (the caller's contract).
        let r = unsafe { &*(bits as *const AtomicU64) };
        Gauge { cell: r }
    }
    fn discard() -> Self {
        discard_gauge()
    }
}

impl SiteKind for Histogram {
    const KIND: MetricKind = MetricKind::Histogram;
    fn to_bits(self) -> usize {
        ptr::from_ref(self.series) as usize
    }
    unsafe fn from_bits(bits: usize) -> Self {
        // SAFETY: `bits` is the address of a `&'static HistogramSeries` (the caller's contract).
        let r = unsafe { &*(bits as *const HistogramSeries) };
        Histogram { series: r }
    }
    fn discard() -> Self {
        discard_histogram()
    }
}

impl SiteKind for Sampled {
    const KIND: MetricKind = MetricKind::Sampled;
    fn to_bits(self) -> usize {
        ptr::from_ref(self.series) as usize
    }
    unsafe fn from_bits(bits: usize) -> Self {
        // SAFETY: `bits` is the address of a `&'static SampledSeries` (the caller's contract).
        let r = unsafe { &*(bits as *const SampledSeries) };
        Sampled { series: r }
    }
    fn discard() -> Self {
        discard_sampled()
    }
}

/// The handle of kind `H` in a registry [`Handle`], if it is of that kind.
fn handle_as<H: SiteKind>(h: Handle) -> Option<H> {
    let (kind, bits) = match h {
        Handle::Counter(c) => (MetricKind::Counter, c.to_bits()),
        Handle::Gauge(g) => (MetricKind::Gauge, g.to_bits()),
        Handle::Histogram(h) => (MetricKind::Histogram, h.to_bits()),
        Handle::Sampled(s) => (MetricKind::Sampled, s.to_bits()),
    };
    // SAFETY: the bits come from `to_bits` of a handle of kind `H::KIND`.
    (kind == H::KIND).then(|| unsafe { H::from_bits(bits) })
}

/// A call site with a literal name and literal labels: resolves its series once per
/// process and caches the handle.
#[derive(Debug)]
pub struct Site<H> {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    /// The resolved handle as [`SiteKind::to_bits`]; 0 until resolved.
    resolved: AtomicUsize,
    reported: AtomicBool,
    kind: PhantomData<fn() -> H>,
}

impl<H: SiteKind> Site<H> {
    /// A site not yet resolved.
    pub const fn new(name: &'static str, labels: &'static [(&'static str, &'static str)]) -> Self {
        Self {
            name,
            labels,
            resolved: AtomicUsize::new(0),
            reported: AtomicBool::new(false),
            kind: PhantomData,
        }
    }

    /// The site's handle if it is resolved.
    #[inline(always)]
    fn resolved(&self) -> Option<H> {
        // Acquire: as in `get`.
        let bits = self.resolved.load(Ordering::Acquire);
        // SAFETY: only `resolve` stores non-zero bits here, from `H::to_bits`.
        (bits != 0).then(|| unsafe { H::from_bits(bits) })
    }

    /// The site's handle, resolving it on first use.
    #[inline(always)]
    pub fn get(&self) -> H {
        // Acquire: pairs with the Release store in `resolve`, so a handle pointing to a
        // series (histogram, sampled) is read after the series' fields are visible.
        let bits = self.resolved.load(Ordering::Acquire);
        if bits != 0 {
            // SAFETY: only `resolve` stores non-zero bits here, from `H::to_bits`.
            unsafe { H::from_bits(bits) }
        } else {
            self.resolve()
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve(&self) -> H {
        let h: H = resolve(self.name, self.labels, &self.reported);
        // Release: publishes the series the bits point to; pairs with the Acquire load in
        // `get`. Racing resolutions store the same handle.
        self.resolved.store(h.to_bits(), Ordering::Release);
        h
    }

    #[cfg(not(hotmeter_disabled))]
    /// The handle the macro returns: this site with the calling thread's `slot`.
    ///
    /// # Safety
    /// `slot` is this site's own: no other site (of this or another kind) uses it. A slot
    /// holds the address of its series' cells, and the record path writes as many cells
    /// from it as its kind has.
    #[inline(always)]
    pub unsafe fn at(&'static self, slot: &'static LocalKey<Slot>) -> SiteHandle<H> {
        SiteHandle { site: self, slot }
    }
}

#[cfg(not(hotmeter_disabled))]
/// What a literal-label macro call returns: the call site and its per-thread cell cache.
/// Recording through it reaches the calling thread's cells in one thread-local load; it is
/// `Copy`, `Send` and `Sync` (each thread that uses it reads its own slot).
///
/// [`SiteHandle::handle`] gives the plain handle ([`Counter`], [`Gauge`], [`Histogram`],
/// [`Sampled`]) for code that stores one.
pub struct SiteHandle<H: 'static> {
    site: &'static Site<H>,
    slot: &'static LocalKey<Slot>,
}

#[cfg(not(hotmeter_disabled))]
impl<H> Clone for SiteHandle<H> {
    fn clone(&self) -> Self {
        *self
    }
}

#[cfg(not(hotmeter_disabled))]
impl<H> Copy for SiteHandle<H> {}

#[cfg(not(hotmeter_disabled))]
impl<H: SiteKind + core::fmt::Debug> core::fmt::Debug for SiteHandle<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SiteHandle")
            .field("name", &self.site.name)
            .field("labels", &self.site.labels)
            .finish_non_exhaustive()
    }
}

#[cfg(not(hotmeter_disabled))]
impl<H: SiteKind> SiteHandle<H> {
    /// The site's plain handle.
    #[inline]
    pub fn handle(self) -> H {
        self.site.get()
    }

    /// This thread's cached cells, or null.
    #[inline(always)]
    fn cells(self) -> *const AtomicU64 {
        self.slot.with(Slot::cell)
    }
}

/// Adds `n` to the owner-written cell `c` (a relaxed load and a relaxed store: the thread
/// holding the arena is the cell's only writer).
#[inline(always)]
fn add(c: &AtomicU64, n: u64) -> u64 {
    // Relaxed: single writer (see `Arena::add`).
    let v = c.load(Ordering::Relaxed).wrapping_add(n);
    c.store(v, Ordering::Relaxed);
    v
}

/// Adds `v` to the `f64` in the owner-written cell `c`.
#[inline(always)]
fn add_f64(c: &AtomicU64, v: f64) {
    // Relaxed: single writer (see `Arena::add`).
    let old = f64::from_bits(c.load(Ordering::Relaxed));
    c.store((old + v).to_bits(), Ordering::Relaxed);
}

/// Cell `i` from a slot's base address.
///
/// # Safety
/// `base` is a non-null slot address of a series with more than `i` cells (a series'
/// cells never straddle a chunk, so all of them follow its first cell in one chunk).
#[inline(always)]
unsafe fn cell<'a>(base: *const AtomicU64, i: u32) -> &'a AtomicU64 {
    // SAFETY: the caller's contract; arena chunks are never freed while the process runs.
    unsafe { &*base.add(i as usize) }
}

#[cfg(not(hotmeter_disabled))]
impl SiteHandle<Counter> {
    /// Adds one.
    #[inline(always)]
    pub fn inc(self) {
        self.add(1);
    }

    /// Adds `n`.
    #[inline(always)]
    pub fn add(self, n: u64) {
        let c = self.cells();
        if !c.is_null() {
            // SAFETY: a filled counter slot holds the address of its one cell.
            add(unsafe { cell(c, 0) }, n);
        } else {
            self.add_cold(n);
        }
    }

    #[cold]
    #[inline(never)]
    fn add_cold(self, n: u64) {
        let counter = self.site.get();
        match fill_slot(self.slot, counter.id, 0) {
            Some(c) => {
                add(c, n);
            }
            None => counter.add(n),
        }
    }

    /// The exact value (see [`Counter::value`]).
    pub fn value(self) -> u64 {
        self.handle().value()
    }
}

#[cfg(not(hotmeter_disabled))]
impl SiteHandle<Gauge> {
    /// Sets the value.
    #[inline(always)]
    pub fn set(self, v: f64) {
        match self.site.resolved() {
            Some(g) => g.set(v),
            None => self.set_cold(v),
        }
    }

    #[cold]
    #[inline(never)]
    fn set_cold(self, v: f64) {
        self.site.get().set(v);
    }

    /// Adds `v`.
    #[inline(always)]
    pub fn add(self, v: f64) {
        match self.site.resolved() {
            Some(g) => g.add(v),
            None => self.add_cold(v),
        }
    }

    #[cold]
    #[inline(never)]
    fn add_cold(self, v: f64) {
        self.site.get().add(v);
    }

    /// Subtracts `v`.
    #[inline(always)]
    pub fn sub(self, v: f64) {
        self.add(-v);
    }

    /// The current value.
    pub fn value(self) -> f64 {
        self.site.get().value()
    }
}

/// [`SiteHandle::record`] for a histogram with exact bounds: its slot's `aux` names the
/// series (see `HistogramSeries::packed_layout`).
#[cfg(not(hotmeter_disabled))]
#[inline(never)]
fn record_exact_bounds(c: *const AtomicU64, aux: u64, v: f64) {
    let bucket = crate::metric::Layout::bucket_packed(aux, v);
    // SAFETY: as in `SiteHandle::record`: `c` is this thread's filled slot for the series
    // `aux` names, and the bucket is within its bounds.
    unsafe {
        add_f64(cell(c, Histogram::SUM_CELL), v);
        add(cell(c, Histogram::FIRST_BUCKET_CELL + bucket), 1);
    }
}

#[cfg(not(hotmeter_disabled))]
impl SiteHandle<Histogram> {
    /// Records one observation (see [`Histogram::record`]).
    #[inline(always)]
    pub fn record(self, v: f64) {
        let c = self.cells();
        if !c.is_null() && Histogram::is_usual(v) {
            let aux = self.slot.with(Slot::aux);
            if crate::metric::Layout::is_exact_packed(aux) {
                // Out of line, as a tail call: the fine path keeps no frame.
                return record_exact_bounds(c, aux, v);
            }
            let bucket = crate::metric::Layout::bucket_packed(aux, v);
            // SAFETY: a filled histogram slot holds the address of its series' first cell,
            // and `bucket_packed` stays within the layout its `aux` was packed from.
            unsafe {
                add_f64(cell(c, Histogram::SUM_CELL), v);
                add(cell(c, Histogram::FIRST_BUCKET_CELL + bucket), 1);
            }
        } else {
            self.record_cold(v);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_cold(self, v: f64) {
        let h = self.site.get();
        if Histogram::is_usual(v) {
            let _ = fill_slot(self.slot, h.series.base, h.series.packed_layout());
        }
        h.record(v);
    }

    /// Records one observation with a key (see [`Histogram::record_keyed`]).
    #[inline]
    pub fn record_keyed<K: SampleKey + ?Sized>(self, v: f64, key: &K) {
        self.record(v);
        self.handle().record_exemplar(v, key);
    }
}

#[cfg(not(hotmeter_disabled))]
impl SiteHandle<Sampled> {
    /// This thread's cells of the site's series, or null (empty slot, or a keyed family,
    /// whose calls always take the handle path).
    #[inline(always)]
    fn sampled_cells(self) -> *const AtomicU64 {
        self.cells()
    }

    /// Fills the slot if the family allows it (keyed families decide per key, on the
    /// handle path) and returns the cells.
    #[cold]
    #[inline(never)]
    fn fill(self) -> Option<(Sampled, &'static AtomicU64)> {
        let s = self.site.get();
        if s.series.metric.keyed {
            return None;
        }
        fill_slot(self.slot, s.series.base, 0).map(|c| (s, c))
    }

    /// Records `value` (see [`Sampled::record`]).
    #[inline(always)]
    pub fn record(self, value: f64) {
        self.record_key(value, KeyArg::NONE);
    }

    /// Records `value` with a key (see [`Sampled::record_keyed`]).
    #[inline(always)]
    pub fn record_keyed<K: SampleKey + ?Sized>(self, value: f64, key: &K) {
        self.record_key(value, key.key_arg());
    }

    /// Count and sum through the slot; the countdown test; everything else out of line.
    #[inline(always)]
    fn record_key(self, value: f64, key: KeyArg<'_>) {
        let c = self.sampled_cells();
        if !c.is_null() {
            // SAFETY: a filled sampled slot holds the address of its series' first cell,
            // and the family is not keyed (`fill`).
            let n = unsafe { sampled::record_exact(c, value) };
            // SAFETY: as above.
            if n >= unsafe { sampled::next_at(c) } {
                self.sample_cold(c, n, value, key);
            }
        } else {
            self.record_cold(value, key);
        }
    }

    /// The countdown reached this call: decide, and push if sampled.
    #[cold]
    #[inline(never)]
    fn sample_cold(self, c: *const AtomicU64, n: u64, value: f64, key: KeyArg<'_>) {
        // SAFETY: `c` is this thread's filled slot for the site's series (`record_key`).
        unsafe { sampled::sample_at(c, self.site.get(), n, value, key) };
    }

    #[cold]
    #[inline(never)]
    fn record_cold(self, value: f64, key: KeyArg<'_>) {
        match self.fill() {
            Some(_) => self.record_key(value, key),
            None => self.handle().record_key_arg(value, key),
        }
    }

    /// Records a critical event (see [`Sampled::record_critical`]).
    #[inline]
    pub fn record_critical(self, value: f64) {
        self.handle().record_critical(value);
    }

    /// Records a critical event with a key (see [`Sampled::record_critical_keyed`]).
    #[inline]
    pub fn record_critical_keyed<K: SampleKey + ?Sized>(self, value: f64, key: &K) {
        self.handle().record_critical_keyed(value, key);
    }

    /// Starts a timer that reads the clock only if this call is sampled (see
    /// [`Sampled::start_timer`]).
    #[inline(always)]
    pub fn start_timer(self) -> SampledTimer {
        let c = self.sampled_cells();
        if !c.is_null() {
            // SAFETY: a filled sampled slot holds the address of its series' first cell.
            let n = unsafe { sampled::count_exact(c) };
            // SAFETY: as above.
            if n < unsafe { sampled::next_at(c) } {
                return SampledTimer::not_sampled();
            }
        }
        self.start_timer_cold()
    }

    /// An empty slot, or the countdown reached this call.
    #[cold]
    #[inline(never)]
    fn start_timer_cold(self) -> SampledTimer {
        let c = self.sampled_cells();
        if c.is_null() {
            return match self.fill() {
                Some(_) => self.start_timer(),
                None => self.handle().start_timer(),
            };
        }
        // SAFETY: as in `start_timer`; the count was taken there.
        let n = unsafe { sampled::count_now(c) };
        // SAFETY: `c` is this thread's filled slot for the site's series.
        unsafe { sampled::timer_at(c, self.site.get(), n) }
    }

    /// The exact number of events recorded.
    pub fn count(self) -> u64 {
        self.handle().count()
    }
}

#[cfg(hotmeter_disabled)]
pub use off::SiteHandle;

/// What the macros return under `--cfg hotmeter_disabled`: the same methods, doing nothing.
#[cfg(hotmeter_disabled)]
mod off {
    use core::marker::PhantomData;

    use crate::sample::key::SampleKey;
    use crate::{Counter, Gauge, Histogram, Sampled, SampledTimer};

    use super::SiteKind;

    /// A call site's handle in a build with `--cfg hotmeter_disabled`: every method is an
    /// empty inline function, so an instrumented function compiles to its bare twin.
    pub struct SiteHandle<H>(PhantomData<fn() -> H>);

    impl<H> Clone for SiteHandle<H> {
        fn clone(&self) -> Self {
            *self
        }
    }

    impl<H> Copy for SiteHandle<H> {}

    impl<H> core::fmt::Debug for SiteHandle<H> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("SiteHandle(disabled)")
        }
    }

    impl<H: SiteKind> SiteHandle<H> {
        /// The handle every disabled call site returns.
        pub const DISABLED: Self = SiteHandle(PhantomData);

        /// A handle that records nothing (a discard handle).
        pub fn handle(self) -> H {
            H::discard()
        }
    }

    impl SiteHandle<Counter> {
        /// Does nothing.
        #[inline(always)]
        pub fn inc(self) {}
        /// Does nothing.
        #[inline(always)]
        pub fn add(self, _n: u64) {}
        /// 0.
        pub fn value(self) -> u64 {
            0
        }
    }

    impl SiteHandle<Gauge> {
        /// Does nothing.
        #[inline(always)]
        pub fn set(self, _v: f64) {}
        /// Does nothing.
        #[inline(always)]
        pub fn add(self, _v: f64) {}
        /// Does nothing.
        #[inline(always)]
        pub fn sub(self, _v: f64) {}
        /// 0.
        pub fn value(self) -> f64 {
            0.0
        }
    }

    impl SiteHandle<Histogram> {
        /// Does nothing.
        #[inline(always)]
        pub fn record(self, _v: f64) {}
        /// Does nothing.
        #[inline(always)]
        pub fn record_keyed<K: SampleKey + ?Sized>(self, _v: f64, _key: &K) {}
    }

    impl SiteHandle<Sampled> {
        /// Does nothing.
        #[inline(always)]
        pub fn record(self, _value: f64) {}
        /// Does nothing.
        #[inline(always)]
        pub fn record_keyed<K: SampleKey + ?Sized>(self, _value: f64, _key: &K) {}
        /// Does nothing.
        #[inline(always)]
        pub fn record_critical(self, _value: f64) {}
        /// Does nothing.
        #[inline(always)]
        pub fn record_critical_keyed<K: SampleKey + ?Sized>(self, _value: f64, _key: &K) {}
        /// A timer that reads no clock.
        #[inline(always)]
        pub fn start_timer(self) -> SampledTimer {
            SampledTimer::not_sampled()
        }
        /// 0.
        pub fn count(self) -> u64 {
            0
        }
    }
}

/// Slots in one thread's dynamic-label cache (direct-mapped: a colliding entry replaces
/// the old one, which then costs one registry lookup when it comes back).
const DYN_CACHE_SLOTS: usize = 1024;
/// Label-value bytes one thread's cache may hold; past it the cache starts over empty.
/// Values are stored as the registry stores them (at most
/// [`MAX_LABEL_VALUE_BYTES`](crate::MAX_LABEL_VALUE_BYTES) each).
pub(crate) const DYN_CACHE_MAX_BYTES: usize = 256 * 1024;

struct CacheEntry {
    hash: u64,
    site: usize,
    values: Box<[Box<str>]>,
    handle: Handle,
}

impl CacheEntry {
    fn bytes(&self) -> usize {
        self.values.iter().map(|v| v.len()).sum()
    }
}

/// One thread's dynamic-label cache and the label-value bytes it holds.
struct DynCache {
    entries: Vec<Option<CacheEntry>>,
    bytes: usize,
}

thread_local! {
    static DYN_CACHE: RefCell<DynCache> = const {
        RefCell::new(DynCache { entries: Vec::new(), bytes: 0 })
    };
}

/// A call site with literal label names and at least one dynamic label value.
#[derive(Debug)]
pub struct DynSite {
    name: &'static str,
    keys: &'static [&'static str],
    reported: AtomicBool,
}

impl DynSite {
    /// A site for `name` with label names `keys` (values come per call).
    pub const fn new(name: &'static str, keys: &'static [&'static str]) -> Self {
        Self {
            name,
            keys,
            reported: AtomicBool::new(false),
        }
    }

    /// The handle for these label values (in the order of `keys`).
    #[inline]
    pub fn get<H: SiteKind>(&'static self, values: &[&str]) -> H {
        handle_as(self.handle::<H>(values)).unwrap_or_else(H::discard)
    }

    fn handle<H: SiteKind>(&'static self, values: &[&str]) -> Handle {
        let site = ptr::from_ref(self) as usize;
        let mut hasher = rustc_hash::FxBuildHasher.build_hasher();
        hasher.write_usize(site);
        // Values as the registry keeps them: two values that agree in their first
        // `MAX_LABEL_VALUE_BYTES` are one series, and the cache stores no more than that.
        for v in values {
            hasher.write(truncate_label_value(v).as_bytes());
            hasher.write_u8(0xff); // not valid UTF-8: separates values unambiguously
        }
        let hash = hasher.finish();
        // `try_borrow`: a lookup from inside a miss (an allocator that records) goes to the
        // registry instead of panicking.
        let hit = DYN_CACHE.try_with(|cache| {
            let cache = cache.try_borrow().ok()?;
            let e = cache
                .entries
                .get(hash as usize % DYN_CACHE_SLOTS)?
                .as_ref()?;
            (e.hash == hash
                && e.site == site
                && e.values.len() == values.len()
                && e.values
                    .iter()
                    .zip(values)
                    .all(|(a, b)| **a == *truncate_label_value(b)))
            .then_some(e.handle)
        });
        match hit {
            Ok(Some(handle)) => handle,
            _ => self.miss::<H>(site, hash, values),
        }
    }

    #[cold]
    #[inline(never)]
    fn miss<H: SiteKind>(&'static self, site: usize, hash: u64, values: &[&str]) -> Handle {
        let labels: Vec<(&str, &str)> = self
            .keys
            .iter()
            .copied()
            .zip(values.iter().copied())
            .collect();
        let handle = match global().series(self.name, &labels, H::KIND, FamilyConfig::Default) {
            Ok(h) => h,
            Err(err) => {
                report(self.name, &err, &self.reported);
                return H::discard_handle();
            }
        };
        let entry = CacheEntry {
            hash,
            site,
            values: values
                .iter()
                .map(|v| Box::<str>::from(truncate_label_value(v)))
                .collect(),
            handle,
        };
        let _ = DYN_CACHE.try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return;
            };
            let cache = &mut *cache;
            if cache.entries.is_empty() {
                cache.entries.resize_with(DYN_CACHE_SLOTS, || None);
            }
            let slot = &mut cache.entries[hash as usize % DYN_CACHE_SLOTS];
            cache.bytes -= slot.as_ref().map_or(0, CacheEntry::bytes);
            if cache.bytes + entry.bytes() > DYN_CACHE_MAX_BYTES {
                // Start over: a bound on memory, at the price of one registry lookup per
                // entry when its label values come back.
                cache.entries.iter_mut().for_each(|e| *e = None);
                cache.bytes = 0;
            }
            cache.bytes += entry.bytes();
            cache.entries[hash as usize % DYN_CACHE_SLOTS] = Some(entry);
        });
        handle
    }
}

/// The registry [`Handle`] of a kind's discard handle.
trait DiscardHandle {
    fn discard_handle() -> Handle;
}

impl<H: SiteKind> DiscardHandle for H {
    fn discard_handle() -> Handle {
        match H::KIND {
            MetricKind::Counter => Handle::Counter(DISCARD_COUNTER),
            MetricKind::Gauge => Handle::Gauge(discard_gauge()),
            MetricKind::Histogram => Handle::Histogram(discard_histogram()),
            MetricKind::Sampled => Handle::Sampled(discard_sampled()),
        }
    }
}

/// A label value as `&str` (anything `AsRef<str>`: `&str`, `String`, `Cow<str>`, …).
#[inline(always)]
pub fn label_value<T: AsRef<str> + ?Sized>(value: &T) -> &str {
    value.as_ref()
}
