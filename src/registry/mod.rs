//! Names, labels and series ids: the cold path. A series is a metric name plus its sorted
//! label pairs; registering one hands out arena cells (or, for a gauge, a shared atomic)
//! and a `Copy` handle that records without touching the registry again.

mod snapshot;

pub use snapshot::{FamilySnapshot, MetaSnapshot, SampledValue, SeriesSnapshot, Snapshot, Value};

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crossbeam_utils::CachePadded;

use crate::arena::{CellPool, allocate_cells};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metric::{Counter, Gauge, Histogram, HistogramConfig, HistogramSeries, MetricKind};
use crate::names::{
    self, MAX_LABELS, check_label_name, check_metric_name, check_unit, truncate_label_value,
};
use crate::sample::pipeline::{Pipeline, SampledMetric};
use crate::sample::sampled::{Sampled, SampledSeries, cells as sampled_cells};

pub use crate::config::{DEFAULT_MAX_SERIES, DEFAULT_SERIES_CAP};

/// The label set that series past a metric's cap fold into.
pub const OVERFLOW_LABEL: (&str, &str) = ("hotmeter_overflow", "true");

/// A series' sorted label pairs; an `Arc` so snapshots copy the series list cheaply.
pub(crate) type LabelSet = Arc<[(Box<str>, Box<str>)]>;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Handle {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
    Sampled(Sampled),
}

/// What a registration asks of the family besides its kind.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FamilyConfig<'a> {
    /// Whatever the family has (the default for a new one).
    Default,
    /// A histogram with this bucket configuration.
    Histogram(&'a HistogramConfig),
    /// A sampled family, keyed or not.
    Sampled { keyed: bool },
}

struct Family {
    kind: MetricKind,
    histogram: Option<HistogramConfig>,
    /// A sampled family's shared state; for a histogram family, its exemplar sampler's.
    sampled: Option<&'static SampledMetric>,
    series: HashMap<LabelSet, Handle>,
    overflow: Option<Handle>,
    /// Resolutions folded into the overflow series.
    folded: u64,
}

#[derive(Default)]
struct Inner {
    families: BTreeMap<Box<str>, Family>,
    help: HashMap<Box<str>, Box<str>>,
    /// OpenMetrics units set with [`Registry::describe_with_unit`].
    units: HashMap<Box<str>, Box<str>>,
    /// Every name a family exposes (see [`names::exposed_names`]) → that family.
    exposed: HashMap<String, Box<str>>,
    /// Series registered, overflow series included (counted against `max_series`).
    series: usize,
}

/// A set of metric families. Registration takes a lock; recording through the returned
/// handles never does. Most programs use the process-wide [`global()`](crate::global) registry through the
/// macros; a `Registry` of your own is for dynamic names and isolated tests.
///
/// Cells are never freed: a series, once registered, lives for the rest of the process (a
/// few bytes per live thread and series, the series bounded by the caps: at most
/// `max_series` series in all, plus one overflow series per metric). A sampled family
/// also keeps its registry's sampling pipeline (its configuration, bookkeeping and the
/// critical lane's queued records) alive for the process.
pub struct Registry {
    /// Read by snapshots (scrapes) and the flusher, written by registration: a scrape
    /// copying the series list never blocks the flusher, and recording never takes it.
    inner: RwLock<Inner>,
    series_cap: usize,
    max_series: usize,
    /// Label sets folded into an overflow series, and new metrics refused, because the
    /// registry held `max_series` series.
    series_limited: AtomicU64,
    registration_errors: AtomicU64,
    pipeline: Arc<Pipeline>,
    /// Labels the exposition adds to every series ([`Config::global_labels`]).
    global_labels: Vec<(String, String)>,
    /// Which `hotmeter_*` families the exposition carries.
    meta_metrics: crate::config::MetaMetrics,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("families", &self.read().families.len())
            .field("series_cap", &self.series_cap)
            .field("max_series", &self.max_series)
            .finish()
    }
}

impl Registry {
    /// An empty registry with the default caps ([`DEFAULT_SERIES_CAP`] per metric,
    /// [`DEFAULT_MAX_SERIES`] in all).
    pub fn new() -> Self {
        Self::with_series_cap(DEFAULT_SERIES_CAP)
    }

    /// An empty registry allowing `cap` series per metric name (at least 1); label sets past
    /// the cap fold into one overflow series labelled [`OVERFLOW_LABEL`].
    pub fn with_series_cap(cap: usize) -> Self {
        Self::with_limits(cap, DEFAULT_MAX_SERIES)
    }

    /// An empty registry allowing `series_cap` series per metric name and `max_series` in
    /// all, every metric and kind together (each at least 1). Past `max_series`, a new label
    /// set of a registered metric folds into that metric's overflow series (as past its own
    /// cap) and a new metric is refused with [`Error::SeriesLimit`]; both are counted
    /// ([`MetaSnapshot::series_limited`]). So a registry holds at most `max_series` series
    /// plus one overflow series per metric, whatever names and label values it is asked for.
    pub fn with_limits(series_cap: usize, max_series: usize) -> Self {
        Self::with_config(&Config {
            series_cap,
            max_series,
            ..Config::default()
        })
    }

    /// An empty registry whose series cap and sampling pipeline follow `config` (the
    /// engine's constructor; without an engine's flusher, sampled records stay in their
    /// rings until someone drains them).
    pub(crate) fn with_config(config: &Config) -> Self {
        Self::with_config_in(config, CellPool::Other)
    }

    /// [`Registry::with_config`], taking its cells from `pool`.
    pub(crate) fn with_config_in(config: &Config, pool: CellPool) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            series_cap: config.series_cap.max(1),
            max_series: config.max_series.max(1),
            series_limited: AtomicU64::new(0),
            registration_errors: AtomicU64::new(0),
            pipeline: Arc::new(Pipeline::new(config.sampling(), pool)),
            global_labels: config.global_labels.clone(),
            meta_metrics: config.meta_metrics,
        }
    }

    /// The labels the exposition adds to every series (the engine's
    /// [`Config::global_labels`]; none for a registry of your own).
    pub(crate) fn global_labels(&self) -> &[(String, String)] {
        &self.global_labels
    }

    /// Which `hotmeter_*` families the exposition carries.
    pub(crate) fn meta_metrics(&self) -> crate::config::MetaMetrics {
        self.meta_metrics
    }

    /// The sampling pipeline of this registry.
    pub(crate) fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// Shared access (snapshots, the flusher, lookups). A panic while the lock is held
    /// leaves `Inner` consistent (every update is one insert), so poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Exclusive access (registration, `describe`).
    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counter `name{labels}`, registering it on first use.
    ///
    /// # Errors
    /// A name or label name that breaks a Prometheus rule, a duplicate label, or `name`
    /// already registered as another kind.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Result<Counter> {
        match self.series(name, labels, MetricKind::Counter, FamilyConfig::Default)? {
            Handle::Counter(c) => Ok(c),
            _ => unreachable!("kind checked in `series`"),
        }
    }

    /// The gauge `name{labels}`, registering it on first use.
    ///
    /// # Errors
    /// As [`Registry::counter`].
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Result<Gauge> {
        match self.series(name, labels, MetricKind::Gauge, FamilyConfig::Default)? {
            Handle::Gauge(g) => Ok(g),
            _ => unreachable!("kind checked in `series`"),
        }
    }

    /// The histogram `name{labels}` with the default configuration
    /// ([`HistogramConfig::seconds`]) or the one the family was first registered with.
    ///
    /// # Errors
    /// As [`Registry::counter`]; also a label named `le`.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Result<Histogram> {
        match self.series(name, labels, MetricKind::Histogram, FamilyConfig::Default)? {
            Handle::Histogram(h) => Ok(h),
            _ => unreachable!("kind checked in `series`"),
        }
    }

    /// The histogram `name{labels}` with bucket configuration `config`.
    ///
    /// # Errors
    /// As [`Registry::histogram`]; also [`Error::HistogramConfigMismatch`] if the family was
    /// registered with another configuration.
    pub fn histogram_with(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        config: &HistogramConfig,
    ) -> Result<Histogram> {
        match self.series(
            name,
            labels,
            MetricKind::Histogram,
            FamilyConfig::Histogram(config),
        )? {
            Handle::Histogram(h) => Ok(h),
            _ => unreachable!("kind checked in `series`"),
        }
    }

    /// The sampled-event series `name{labels}` (see [`Sampled`]), registering it on first
    /// use; a new family samples by random gaps.
    ///
    /// # Errors
    /// As [`Registry::counter`].
    pub fn sampled(&self, name: &str, labels: &[(&str, &str)]) -> Result<Sampled> {
        match self.series(name, labels, MetricKind::Sampled, FamilyConfig::Default)? {
            Handle::Sampled(s) => Ok(s),
            _ => unreachable!("kind checked in `series`"),
        }
    }

    /// The sampled-event series `name{labels}` with keyed (`keyed = true`: consistent, by
    /// the event key's hash) or random-gap sampling.
    ///
    /// # Errors
    /// As [`Registry::counter`]; also [`Error::SamplingModeMismatch`] if the family was
    /// registered with the other mode.
    pub fn sampled_with(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        keyed: bool,
    ) -> Result<Sampled> {
        match self.series(
            name,
            labels,
            MetricKind::Sampled,
            FamilyConfig::Sampled { keyed },
        )? {
            Handle::Sampled(s) => Ok(s),
            _ => unreachable!("kind checked in `series`"),
        }
    }

    /// Forces the sample probability of sampled family `name` (rounded to the nearest power
    /// of two, within the engine's min/max rates). Gaps already drawn finish at their old
    /// rate; every record carries the rate it was sampled with, so estimates stay unbiased.
    /// The adaptive controller, if on, may move it again at the next flush.
    ///
    /// # Errors
    /// [`Error::UnknownMetric`] if no sampled family of that name exists.
    pub fn set_sample_rate(&self, name: &str, rate: f64) -> Result<()> {
        let inner = self.read();
        let metric = inner
            .families
            .get(name)
            .and_then(|f| f.sampled)
            .ok_or_else(|| Error::UnknownMetric(name.into()))?;
        let c = &self.pipeline.config;
        let k = crate::stats::rate_to_k(rate.clamp(f64::MIN_POSITIVE, 1.0))
            .unwrap_or(c.max_k)
            .clamp(c.min_k, c.max_k);
        metric.k.store(k, Ordering::Relaxed);
        Ok(())
    }

    /// Every sampled series: family name, labels, handle. For the flusher.
    pub(crate) fn sampled_series(&self) -> Vec<(Box<str>, LabelSet, Sampled)> {
        let inner = self.read();
        let mut out = Vec::new();
        for (name, f) in &inner.families {
            if !matches!(f.kind, MetricKind::Sampled | MetricKind::Histogram) {
                continue;
            }
            for (labels, h) in f
                .series
                .iter()
                .map(|(l, h)| (l.clone(), h))
                .chain(f.overflow.as_ref().map(|h| (overflow_labels(), h)))
            {
                match h {
                    Handle::Sampled(s) => out.push((name.clone(), labels, *s)),
                    // A histogram's exemplar sampler, once a keyed record allocated it.
                    Handle::Histogram(h) => {
                        if let Some(Some(s)) = h.series.exemplars.get() {
                            out.push((name.clone(), labels, *s));
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// Sets the HELP text of metric `name` (used by the exporters).
    ///
    /// # Errors
    /// [`Error::InvalidMetricName`] for a name that breaks a Prometheus rule.
    pub fn describe(&self, name: &str, help: &str) -> Result<()> {
        check_metric_name(name).map_err(|rule| Error::InvalidMetricName {
            name: name.into(),
            rule,
        })?;
        self.write().help.insert(name.into(), help.into());
        Ok(())
    }

    /// Sets the HELP text and the unit of metric `name`: OpenMetrics writes
    /// `# UNIT <family> <unit>` (the 0.0.4 text format has no unit line). `unit` is a
    /// lower-case word such as `seconds`, `bytes`, `celsius` or `ratio` (Prometheus
    /// prefers base units).
    ///
    /// OpenMetrics requires a family's name to end with `_<unit>` (before `_total` for a
    /// counter: `io_wait_seconds_total`). hotmeter does not rename: the name a program
    /// registers is the name it queries, and a suffix appended at export would make
    /// `latency` appear as `latency_seconds`, possibly beside another family of that name.
    /// So a name without the suffix is refused here.
    ///
    /// # Errors
    /// [`Error::InvalidMetricName`] for a name that breaks a Prometheus rule;
    /// [`Error::InvalidUnit`] for a unit that is not `[a-z0-9_]` (starting with a letter),
    /// or a name that does not end with `_<unit>` (or `_<unit>_total`).
    pub fn describe_with_unit(&self, name: &str, unit: &str, help: &str) -> Result<()> {
        check_metric_name(name).map_err(|rule| Error::InvalidMetricName {
            name: name.into(),
            rule,
        })?;
        check_unit(name, unit).map_err(|rule| Error::InvalidUnit {
            name: name.into(),
            unit: unit.into(),
            rule,
        })?;
        let mut inner = self.write();
        inner.help.insert(name.into(), help.into());
        inner.units.insert(name.into(), unit.into());
        Ok(())
    }

    /// Counts a registration that failed at a macro call site (which then records into a
    /// discard handle). Exposed as [`MetaSnapshot::registration_errors`].
    pub(crate) fn note_registration_error(&self) {
        self.registration_errors.fetch_add(1, Ordering::Relaxed);
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn series(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        kind: MetricKind,
        config: FamilyConfig<'_>,
    ) -> Result<Handle> {
        check_metric_name(name).map_err(|rule| Error::InvalidMetricName {
            name: name.into(),
            rule,
        })?;
        let labels = normalize_labels(labels, kind)?;
        let mut inner = self.write();
        let inner = &mut *inner;
        let Some(family) = inner.families.get_mut(name) else {
            return self.new_family(inner, name, labels, kind, config);
        };
        if family.kind != kind {
            return Err(Error::KindMismatch {
                name: name.into(),
                registered: family.kind,
                requested: kind,
            });
        }
        match (config, &family.histogram, family.sampled) {
            (FamilyConfig::Histogram(wanted), Some(have), _) if wanted != have => {
                return Err(Error::HistogramConfigMismatch(name.into()));
            }
            (FamilyConfig::Sampled { keyed }, _, Some(m)) if m.keyed != keyed => {
                return Err(Error::SamplingModeMismatch(name.into()));
            }
            _ => {}
        }
        if let Some(handle) = family.series.get(&labels) {
            return Ok(*handle);
        }
        let registry_full = inner.series >= self.max_series;
        let overflow = family.series.len() >= self.series_cap || registry_full;
        if overflow {
            family.folded += 1;
            if registry_full {
                self.series_limited.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(handle) = family.overflow {
                return Ok(handle);
            }
        }
        let handle = new_handle(
            self.pipeline.cells,
            kind,
            family.histogram.as_ref(),
            family.sampled,
        )?;
        if overflow {
            family.overflow = Some(handle);
        } else {
            family.series.insert(labels, handle);
        }
        inner.series += 1;
        Ok(handle)
    }

    /// Registers family `name` with its first series. Nothing is inserted unless the whole
    /// registration succeeds: a failed one leaves no empty family (nor exposed names) behind.
    #[cold]
    fn new_family(
        &self,
        inner: &mut Inner,
        name: &str,
        labels: LabelSet,
        kind: MetricKind,
        config: FamilyConfig<'_>,
    ) -> Result<Handle> {
        let exposed = self.admit_family(inner, name, kind)?;
        let histogram = (kind == MetricKind::Histogram).then(|| match config {
            FamilyConfig::Histogram(c) => c.clone(),
            _ => HistogramConfig::default(),
        });
        // The first series' cells before anything else: running out of cells (the only
        // way past this point to fail) leaves nothing behind.
        let cells = allocate_for(self.pipeline.cells, kind, histogram.as_ref())?;
        let sampled = self.register_sampled(name, kind, config);
        let handle = handle_at(kind, cells, histogram.as_ref(), sampled);
        for e in exposed {
            inner.exposed.insert(e, name.into());
        }
        inner.families.insert(
            name.into(),
            Family {
                kind,
                histogram,
                sampled,
                series: HashMap::from([(labels, handle)]),
                overflow: None,
                folded: 0,
            },
        );
        inner.series += 1;
        Ok(handle)
    }

    /// The names a new family `name` of `kind` would expose, once they are known to be
    /// valid and free, and the registry below its series cap (a refusal there is counted).
    fn admit_family(&self, inner: &Inner, name: &str, kind: MetricKind) -> Result<Vec<String>> {
        let exposed = names::exposed_names(name, kind);
        if exposed.iter().any(|e| check_metric_name(e).is_err()) {
            // `_` as a counter exposes `__total`; `_total` exposes an empty family.
            return Err(Error::InvalidMetricName {
                name: name.into(),
                rule: "the names it exposes (a counter's base name and `<base>_total`) must follow the metric name rules too",
            });
        }
        if let Some((e, existing)) = exposed
            .iter()
            .find_map(|e| inner.exposed.get(e).map(|f| (e, f)))
        {
            return Err(Error::ExpositionCollision {
                name: name.into(),
                exposed: e.clone(),
                existing: existing.to_string(),
            });
        }
        if inner.series >= self.max_series {
            self.series_limited.fetch_add(1, Ordering::Relaxed);
            return Err(Error::SeriesLimit {
                name: name.into(),
                cap: self.max_series,
            });
        }
        Ok(exposed)
    }

    /// The pipeline state of a new family that leaves records: a sampled metric's, or a
    /// histogram's exemplars (`<name>:exemplars`), registered with the pipeline. Leaked, so
    /// that handles and records can hold it as `&'static`. `None` for counters and gauges.
    fn register_sampled(
        &self,
        name: &str,
        kind: MetricKind,
        config: FamilyConfig<'_>,
    ) -> Option<&'static SampledMetric> {
        if !matches!(kind, MetricKind::Sampled | MetricKind::Histogram) {
            return None;
        }
        let metric: &'static SampledMetric = Box::leak(Box::new(SampledMetric {
            name: match kind {
                MetricKind::Histogram => format!("{name}:exemplars").into(),
                _ => name.into(),
            },
            k: AtomicU8::new(self.pipeline.config.initial_k),
            keyed: matches!(config, FamilyConfig::Sampled { keyed: true }),
            exemplars: kind == MetricKind::Histogram,
            pipeline: Arc::clone(&self.pipeline),
        }));
        self.pipeline.register_metric(metric);
        Some(metric)
    }

    /// The exact value of every series, read without stopping writers. The registry lock is
    /// held only to copy the list of series (Arc clones), never while reading cells, and
    /// shared: concurrent scrapes and the flusher never wait for each other.
    pub fn snapshot(&self) -> Snapshot {
        snapshot::take(self)
    }
}

fn new_handle(
    pool: CellPool,
    kind: MetricKind,
    config: Option<&HistogramConfig>,
    sampled: Option<&'static SampledMetric>,
) -> Result<Handle> {
    Ok(handle_at(
        kind,
        allocate_for(pool, kind, config)?,
        config,
        sampled,
    ))
}

/// The cells a new series of `kind` needs (none for a gauge: one shared atomic).
fn allocate_for(pool: CellPool, kind: MetricKind, config: Option<&HistogramConfig>) -> Result<u32> {
    Ok(match kind {
        MetricKind::Counter => allocate_cells(pool, 1)?,
        MetricKind::Gauge => 0,
        MetricKind::Histogram => allocate_cells(
            pool,
            config.expect("histogram families carry a config").cells(),
        )?,
        MetricKind::Sampled => allocate_cells(pool, sampled_cells::CELLS)?,
    })
}

/// The handle of a new series whose cells start at `base` (from [`allocate_for`]).
fn handle_at(
    kind: MetricKind,
    base: u32,
    config: Option<&HistogramConfig>,
    sampled: Option<&'static SampledMetric>,
) -> Handle {
    match kind {
        MetricKind::Counter => Handle::Counter(Counter { id: base }),
        MetricKind::Gauge => Handle::Gauge(Gauge {
            cell: leak_gauge_cell(),
        }),
        MetricKind::Histogram => {
            let config = config.expect("histogram families carry a config");
            Handle::Histogram(Histogram {
                series: Box::leak(Box::new(HistogramSeries {
                    base,
                    layout: config.layout(),
                    exemplar_metric: sampled,
                    exemplars: std::sync::OnceLock::new(),
                })),
            })
        }
        MetricKind::Sampled => Handle::Sampled(Sampled {
            series: Box::leak(Box::new(SampledSeries {
                base,
                metric: sampled.expect("sampled families carry their shared state"),
            })),
        }),
    }
}

/// One cache-padded cell per gauge series, so two hot gauges never share a line. Leaked:
/// series live for the process.
fn leak_gauge_cell() -> &'static AtomicU64 {
    let padded: &'static CachePadded<AtomicU64> =
        Box::leak(Box::new(CachePadded::new(AtomicU64::new(0f64.to_bits()))));
    padded
}

fn overflow_labels() -> LabelSet {
    Arc::new([(OVERFLOW_LABEL.0.into(), OVERFLOW_LABEL.1.into())])
}

/// Validates label names, rejects duplicates, truncates long values, drops empty values and
/// sorts by name. An empty value is dropped because Prometheus treats `a=""` as no label
/// `a`: keeping it would expose two series Prometheus sees as one.
fn normalize_labels(labels: &[(&str, &str)], kind: MetricKind) -> Result<LabelSet> {
    if labels.len() > MAX_LABELS {
        return Err(Error::TooManyLabels(labels.len()));
    }
    let mut out: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(labels.len());
    for &(k, v) in labels {
        check_label_name(k).map_err(|rule| Error::InvalidLabelName {
            name: k.into(),
            rule,
        })?;
        if k.starts_with(names::RESERVED_PREFIX) {
            return Err(Error::InvalidLabelName {
                name: k.into(),
                rule: "label names starting with `hotmeter_` are reserved (the overflow series uses one)",
            });
        }
        if kind == MetricKind::Histogram && k == "le" {
            return Err(Error::InvalidLabelName {
                name: k.into(),
                rule: "`le` is reserved for histogram buckets",
            });
        }
        if kind == MetricKind::Sampled && ["quantile", "for_quantile", "key"].contains(&k) {
            return Err(Error::InvalidLabelName {
                name: k.into(),
                rule: "`quantile`, `for_quantile` and `key` are reserved on sampled metrics (their exported estimates use them)",
            });
        }
        out.push((k.into(), truncate_label_value(v).into()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::DuplicateLabel(w[0].0.to_string()));
    }
    out.retain(|(_, v)| !v.is_empty());
    Ok(out.into())
}
