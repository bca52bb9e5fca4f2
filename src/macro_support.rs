//! What the macros expand to. `#[doc(hidden)]`: not a stable API.
//!
//! A call site with a literal name and literal labels owns a `static` site that caches its
//! resolved handle: after the first call it is one load and a branch, then the record path.
//! A call site with dynamic label values resolves through a per-thread cache in front of the
//! registry, so a hit costs a hash of the values and no lock.

use core::cell::RefCell;
use core::hash::{BuildHasher, Hasher};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::metric::{Counter, Gauge, Histogram, HistogramConfig, HistogramSeries, MetricKind};
pub use crate::registry::names::{assert_label_name, assert_metric_name};
use crate::registry::{FamilyConfig, Handle, RESERVED_CELLS, Registry, global};
use crate::sample::sampled::{Sampled, SampledSeries};

/// Cell 1 (reserved) backs the discard counter.
const DISCARD_COUNTER: Counter = Counter { id: 1 };

fn discard_gauge() -> Gauge {
    static CELL: AtomicU64 = AtomicU64::new(0);
    Gauge { cell: &CELL }
}

fn discard_histogram() -> Histogram {
    static SERIES: OnceLock<HistogramSeries> = OnceLock::new();
    let series = SERIES.get_or_init(|| {
        let config = HistogramConfig::seconds();
        debug_assert!(config.cells() <= RESERVED_CELLS);
        HistogramSeries {
            base: 0,
            layout: config.layout(),
            exemplar_metric: None,
            exemplars: OnceLock::new(),
        }
    });
    Histogram { series }
}

/// A sampled series registered in a private registry of its own: never exported.
fn discard_sampled() -> Sampled {
    static DISCARD: OnceLock<Sampled> = OnceLock::new();
    *DISCARD.get_or_init(|| {
        let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
        registry
            .sampled("discarded", &[])
            .expect("a valid name in an empty registry")
    })
}

/// A failed registration at a macro call site: counted, reported on stderr, and the site
/// records into a discard handle (never exported) instead of panicking on a hot path.
#[cold]
fn report(name: &str, err: &crate::Error) {
    global().note_registration_error();
    eprintln!("hotmeter: metric {name:?} not recorded: {err}");
}

fn resolve(name: &str, labels: &[(&str, &str)], kind: MetricKind) -> Handle {
    match global().series(name, labels, kind, FamilyConfig::Default) {
        Ok(h) => h,
        Err(err) => {
            report(name, &err);
            match kind {
                MetricKind::Counter => Handle::Counter(DISCARD_COUNTER),
                MetricKind::Gauge => Handle::Gauge(discard_gauge()),
                MetricKind::Histogram => Handle::Histogram(discard_histogram()),
                MetricKind::Sampled => Handle::Sampled(discard_sampled()),
            }
        }
    }
}

/// A counter call site with a literal name and literal labels.
#[derive(Debug)]
pub struct CounterSite {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    /// The resolved cell id; 0 until resolved (cell 0 is reserved, never a real series).
    id: AtomicU32,
}

impl CounterSite {
    /// A site not yet resolved.
    pub const fn new(name: &'static str, labels: &'static [(&'static str, &'static str)]) -> Self {
        Self {
            name,
            labels,
            id: AtomicU32::new(0),
        }
    }

    /// The site's counter.
    #[inline(always)]
    pub fn get(&self) -> Counter {
        // Relaxed: the id is a plain integer; the arena cells it names are reached through
        // the arena's own synchronisation.
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 {
            Counter { id }
        } else {
            self.resolve()
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve(&self) -> Counter {
        let Handle::Counter(c) = resolve(self.name, self.labels, MetricKind::Counter) else {
            unreachable!("resolve returns the kind asked for")
        };
        // Relaxed: see `get`. Racing resolutions store the same id.
        self.id.store(c.id, Ordering::Relaxed);
        c
    }
}

/// A call site's cached pointer to a `'static` series, null until resolved.
#[derive(Debug)]
struct PtrCache<T: 'static>(AtomicPtr<T>);

impl<T: 'static> PtrCache<T> {
    const fn new() -> Self {
        Self(AtomicPtr::new(ptr::null_mut()))
    }

    #[inline(always)]
    fn get(&self) -> Option<&'static T> {
        // Acquire: pairs with the Release store in `set`, so the series' fields are visible
        // before the record path reads them.
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: only `set` stores here, and it only takes `&'static T` (series leaked by
        // the registry, or a static discard series), so a non-null pointer is valid forever.
        unsafe { p.as_ref() }
    }

    fn set(&self, value: &'static T) {
        // Release: publishes the series; pairs with the Acquire load in `get`. Racing
        // resolutions store the same pointer.
        self.0
            .store(ptr::from_ref(value).cast_mut(), Ordering::Release);
    }
}

/// A gauge call site with a literal name and literal labels.
#[derive(Debug)]
pub struct GaugeSite {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    cell: PtrCache<AtomicU64>,
}

impl GaugeSite {
    /// A site not yet resolved.
    pub const fn new(name: &'static str, labels: &'static [(&'static str, &'static str)]) -> Self {
        Self {
            name,
            labels,
            cell: PtrCache::new(),
        }
    }

    /// The site's gauge.
    #[inline(always)]
    pub fn get(&self) -> Gauge {
        match self.cell.get() {
            Some(cell) => Gauge { cell },
            None => self.resolve(),
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve(&self) -> Gauge {
        let Handle::Gauge(g) = resolve(self.name, self.labels, MetricKind::Gauge) else {
            unreachable!("resolve returns the kind asked for")
        };
        self.cell.set(g.cell);
        g
    }
}

/// A histogram (or timer) call site with a literal name and literal labels.
#[derive(Debug)]
pub struct HistogramSite {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    series: PtrCache<HistogramSeries>,
}

impl HistogramSite {
    /// A site not yet resolved.
    pub const fn new(name: &'static str, labels: &'static [(&'static str, &'static str)]) -> Self {
        Self {
            name,
            labels,
            series: PtrCache::new(),
        }
    }

    /// The site's histogram.
    #[inline(always)]
    pub fn get(&self) -> Histogram {
        match self.series.get() {
            Some(series) => Histogram { series },
            None => self.resolve(),
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve(&self) -> Histogram {
        let Handle::Histogram(h) = resolve(self.name, self.labels, MetricKind::Histogram) else {
            unreachable!("resolve returns the kind asked for")
        };
        self.series.set(h.series);
        h
    }
}

/// A sampled-event call site (`record!`, `sampled_timer!`) with a literal name and
/// literal labels (if any).
#[derive(Debug)]
pub struct SampledSite {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    series: PtrCache<SampledSeries>,
}

impl SampledSite {
    /// A site not yet resolved.
    pub const fn new(name: &'static str, labels: &'static [(&'static str, &'static str)]) -> Self {
        Self {
            name,
            labels,
            series: PtrCache::new(),
        }
    }

    /// The site's sampled series.
    #[inline(always)]
    pub fn get(&self) -> Sampled {
        match self.series.get() {
            Some(series) => Sampled { series },
            None => self.resolve(),
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve(&self) -> Sampled {
        let Handle::Sampled(s) = resolve(self.name, self.labels, MetricKind::Sampled) else {
            unreachable!("resolve returns the kind asked for")
        };
        self.series.set(s.series);
        s
    }
}

/// Slots in one thread's dynamic-label cache (direct-mapped: a colliding entry replaces
/// the old one, which then costs one registry lookup when it comes back).
const DYN_CACHE_SLOTS: usize = 1024;

struct CacheEntry {
    hash: u64,
    site: usize,
    values: Box<[Box<str>]>,
    handle: Handle,
}

thread_local! {
    static DYN_CACHE: RefCell<Vec<Option<CacheEntry>>> = const { RefCell::new(Vec::new()) };
}

/// A call site with literal label names and at least one dynamic label value.
#[derive(Debug)]
pub struct DynSite {
    name: &'static str,
    keys: &'static [&'static str],
}

impl DynSite {
    /// A site for `name` with label names `keys` (values come per call).
    pub const fn new(name: &'static str, keys: &'static [&'static str]) -> Self {
        Self { name, keys }
    }

    /// The counter for these label values (in the order of `keys`).
    #[inline]
    pub fn counter(&'static self, values: &[&str]) -> Counter {
        match self.handle(values, MetricKind::Counter) {
            Handle::Counter(c) => c,
            _ => DISCARD_COUNTER,
        }
    }

    /// The gauge for these label values.
    #[inline]
    pub fn gauge(&'static self, values: &[&str]) -> Gauge {
        match self.handle(values, MetricKind::Gauge) {
            Handle::Gauge(g) => g,
            _ => discard_gauge(),
        }
    }

    /// The sampled series for these label values.
    #[inline]
    pub fn sampled(&'static self, values: &[&str]) -> Sampled {
        match self.handle(values, MetricKind::Sampled) {
            Handle::Sampled(s) => s,
            _ => discard_sampled(),
        }
    }

    /// The histogram for these label values.
    #[inline]
    pub fn histogram(&'static self, values: &[&str]) -> Histogram {
        match self.handle(values, MetricKind::Histogram) {
            Handle::Histogram(h) => h,
            _ => discard_histogram(),
        }
    }

    fn handle(&'static self, values: &[&str], kind: MetricKind) -> Handle {
        let site = ptr::from_ref(self) as usize;
        let mut hasher = rustc_hash::FxBuildHasher.build_hasher();
        hasher.write_usize(site);
        for v in values {
            hasher.write(v.as_bytes());
            hasher.write_u8(0xff); // not valid UTF-8: separates values unambiguously
        }
        let hash = hasher.finish();
        let hit = DYN_CACHE.try_with(|cache| {
            let cache = cache.borrow();
            let e = cache.get(hash as usize % DYN_CACHE_SLOTS)?.as_ref()?;
            (e.hash == hash
                && e.site == site
                && e.values.len() == values.len()
                && e.values.iter().zip(values).all(|(a, b)| &**a == *b))
            .then_some(e.handle)
        });
        match hit {
            Ok(Some(handle)) => handle,
            _ => self.miss(site, hash, values, kind),
        }
    }

    #[cold]
    #[inline(never)]
    fn miss(&'static self, site: usize, hash: u64, values: &[&str], kind: MetricKind) -> Handle {
        let labels: Vec<(&str, &str)> = self
            .keys
            .iter()
            .copied()
            .zip(values.iter().copied())
            .collect();
        let handle = resolve(self.name, &labels, kind);
        let _ = DYN_CACHE.try_with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.is_empty() {
                cache.resize_with(DYN_CACHE_SLOTS, || None);
            }
            cache[hash as usize % DYN_CACHE_SLOTS] = Some(CacheEntry {
                hash,
                site,
                values: values.iter().map(|v| Box::<str>::from(*v)).collect(),
                handle,
            });
        });
        handle
    }
}

/// A label value as `&str` (anything `AsRef<str>`: `&str`, `String`, `Cow<str>`, …).
#[inline(always)]
pub fn label_value<T: AsRef<str> + ?Sized>(value: &T) -> &str {
    value.as_ref()
}
