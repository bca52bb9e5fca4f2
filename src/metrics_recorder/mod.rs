//! A [`metrics`] facade recorder over a hotmeter engine (feature `metrics`): crates
//! instrumented with `metrics::counter!`, `gauge!`, `histogram!` and `describe_*!` report
//! into hotmeter's registry and its exposition. Modelled on metrics-exporter-prometheus
//! (`install()`, name sanitizing, `describe_*` as HELP), with hotmeter's handles behind it.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = hotmeter::Engine::builder().build()?;
//! let recorder = hotmeter::metrics_recorder::MetricsRecorder::builder()
//!     .histogram_buckets("db_", &[0.001, 0.01, 0.1])? // per name prefix
//!     .build(&engine);
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::describe_counter!("jobs", "Jobs done.");
//!     metrics::counter!("jobs", "queue" => "a").increment(3);
//!     metrics::gauge!("depth").set(7.0);
//!     metrics::histogram!("db_seconds").record(0.004);
//! });
//! let text = engine.render(hotmeter::Format::Text)?;
//! assert!(text.contains("# HELP jobs_total Jobs done.\n"));
//! assert!(text.contains("jobs_total{queue=\"a\"} 3\n"));
//! assert!(text.contains("db_seconds_bucket{le=\"0.01\"} 1\n"));
//! # Ok(()) }
//! ```
//!
//! Programs install it once, for the global engine the hotmeter macros use too:
//! [`install`] (or [`Builder::install`] with rules).
//!
//! # How a facade call maps
//!
//! | facade | hotmeter | exposed as |
//! |---|---|---|
//! | `counter!("x")` | counter `x` | `x_total` (the OpenMetrics name; metrics-exporter-prometheus writes `x` in the 0.0.4 format) |
//! | `gauge!("x")` | gauge `x` | `x` |
//! | `histogram!("x")` | exact-bucket histogram, bounds [`DEFAULT_BUCKETS`] (0.005 … 10, the classic Prometheus ones) unless a rule says otherwise | `x_bucket{le}`, `x_sum`, `x_count` |
//! | `histogram!("x")` under [`Builder::histogram_summary`] | sampled metric (as `record!`) | summary `x{quantile}`, exact `x_count`, `x_sum` |
//! | `describe_*!("x", "help")` | [`Registry::describe`](crate::Registry::describe) | `# HELP x help` (exactly) |
//! | `describe_*!("x_seconds", Unit::Seconds, "help")` | [`Registry::describe_with_unit`](crate::Registry::describe_with_unit) | `# HELP`, and in OpenMetrics `# UNIT x_seconds seconds` |
//!
//! Names and label names are sanitized as metrics-exporter-prometheus does (every character
//! outside `[a-zA-Z0-9_:]`, `:` too in label names, becomes `_`; a leading digit gets a `_`
//! in front), so `http.requests` is `http_requests`.
//!
//! Units: a `metrics::Unit` becomes the OpenMetrics unit [`Unit::as_str`] names
//! (`seconds`, `bytes`, `milliseconds`, `bits_per_second`, ...; `Unit::Count` is no unit),
//! written as `# UNIT` in OpenMetrics (the 0.0.4 format has no unit line) when the
//! sanitized name already ends with `_<unit>` (before `_total` for a counter), as
//! OpenMetrics requires. Like metrics-exporter-prometheus by default, the recorder does not
//! append unit suffixes: a name without the suffix gets its HELP and no unit (not an
//! error: `describe_histogram!("latency", Unit::Seconds, ..)` is common and harmless).
//!
//! `Counter::absolute(v)` raises the counter to `v` when it is below (a counter is a sum
//! over threads, so this is a read and an add: two racing `absolute` calls may overshoot).
//!
//! # Cost
//!
//! Each facade macro call asks the recorder for a handle. A key seen before is found in a
//! lock-free cache (one hash-table probe on the key's precomputed hash, no lock, no
//! allocation) that returns a `metrics` handle wrapping an `Arc` straight to hotmeter's
//! handle; the record itself is then hotmeter's (a counter increment is a load and a store
//! in the thread's own arena). `metrics` handles are `Arc`s, and cloning one
//! writes its reference count (twice a call: the clone and its drop): so that recording
//! threads do not fight over one count, each cached key holds one `Arc` per CPU (up to 8,
//! 128 bytes apiece, counts on lines of their own) and each thread takes the least used
//! shard at its first call and gives it back when it exits. While there are no more
//! recording threads than CPUs, no two threads write the same count.
//!
//! # Errors
//!
//! A key the registry refuses (a name breaking a rule after sanitizing, a reserved
//! `hotmeter_` name, a name registered as another kind or as a histogram with other
//! buckets, for instance by hotmeter's own `histogram!`, the registry's series limit) is
//! never a panic: it is counted in `hotmeter_registration_errors_total`, reported once on
//! stderr, and the key records into a no-op handle (cached, so it costs nothing more). Past
//! a metric's series cap, label sets fold into its overflow series as with the macros.

mod cache;

use std::cell::Cell;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};

use metrics::{Key, KeyName, Metadata, SharedString, Unit};

use crate::engine::{Engine, Shared};
use crate::sync::Ordering;
use crate::{Counter, Gauge, Histogram, HistogramConfig, Result as HmResult, Sampled};
use cache::Cache;

/// The bounds facade histograms get unless a rule says otherwise: the classic Prometheus
/// client defaults, in seconds.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What facade histograms under a name prefix become.
#[derive(Debug, Clone, PartialEq)]
enum HistogramRule {
    /// A histogram with this configuration (exact bounds, or hotmeter's fine buckets).
    Histogram(HistogramConfig),
    /// A sampled metric (`record!`): estimated quantiles, exact count and sum.
    Summary,
}

/// Configures a [`MetricsRecorder`]: what facade histograms become, by name prefix.
#[derive(Debug, Clone)]
pub struct Builder {
    default: HistogramConfig,
    /// `(prefix, rule)`; the longest matching prefix wins.
    rules: Vec<(String, HistogramRule)>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            default: HistogramConfig::buckets(&DEFAULT_BUCKETS).expect("valid default bounds"),
            rules: Vec::new(),
        }
    }
}

impl Builder {
    /// Histograms whose (sanitized) name starts with `prefix` count exactly against
    /// `bounds` (plus `+Inf`). `""` changes the default for every name.
    ///
    /// # Errors
    /// Bounds [`HistogramConfig::buckets`] refuses.
    pub fn histogram_buckets(self, prefix: &str, bounds: &[f64]) -> HmResult<Self> {
        Ok(self.histogram_config(prefix, HistogramConfig::buckets(bounds)?))
    }

    /// Histograms whose name starts with `prefix` use `config` (exact bounds, or hotmeter's
    /// fine log-linear buckets such as [`HistogramConfig::seconds`]).
    pub fn histogram_config(mut self, prefix: &str, config: HistogramConfig) -> Self {
        if prefix.is_empty() {
            self.default = config;
        } else {
            self.rules
                .push((prefix.to_string(), HistogramRule::Histogram(config)));
        }
        self
    }

    /// Histograms whose name starts with `prefix` become sampled metrics, as `record!`:
    /// fine estimated quantiles (a summary), exact count and sum, at the sampled layer's
    /// cost instead of a bucket per value.
    pub fn histogram_summary(mut self, prefix: &str) -> Self {
        self.rules
            .push((prefix.to_string(), HistogramRule::Summary));
        self
    }

    fn rule(&self, name: &str) -> HistogramRule {
        self.rules
            .iter()
            .filter(|(p, _)| name.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map_or_else(
                || HistogramRule::Histogram(self.default.clone()),
                |(_, r)| r.clone(),
            )
    }

    /// A recorder over `engine`'s registry, to install yourself
    /// (`metrics::set_global_recorder`) or use with `metrics::with_local_recorder`.
    pub fn build(self, engine: &Engine) -> MetricsRecorder {
        MetricsRecorder::with(engine.shared(), self)
    }

    /// Builds a recorder over the global engine (the one hotmeter's macros use, started
    /// with the defaults and the environment if it is not yet) and installs it as the
    /// process's `metrics` recorder.
    ///
    /// # Errors
    /// [`AlreadyInstalled`]: the process has a `metrics` recorder already.
    pub fn install(self) -> Result<(), AlreadyInstalled> {
        metrics::set_global_recorder(self.build(crate::global_engine()))
            .map_err(|_| AlreadyInstalled)
    }
}

/// [`install`] failed: the process has a `metrics` recorder already (one can be installed
/// once per process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyInstalled;

impl std::fmt::Display for AlreadyInstalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a `metrics` recorder is already installed in this process")
    }
}

impl std::error::Error for AlreadyInstalled {}

/// Installs a recorder with the default rules over the global engine: after this,
/// `metrics::counter!` and friends from any crate land in hotmeter.
///
/// # Errors
/// [`AlreadyInstalled`]: the process has a `metrics` recorder already.
pub fn install() -> Result<(), AlreadyInstalled> {
    Builder::default().install()
}

/// A `metrics::Recorder` over a hotmeter engine. See the [module docs](self).
pub struct MetricsRecorder {
    shared: Arc<Shared>,
    rules: Builder,
    counters: Cache<Shards<CounterFn>>,
    gauges: Cache<Shards<GaugeFn>>,
    histograms: Cache<Shards<HistogramFn>>,
}

impl std::fmt::Debug for MetricsRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRecorder")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// Most `Arc`s one cached key holds (each 128 bytes: a key costs at most 1 KiB of them).
const MAX_SHARDS: usize = 8;

/// A value on a cache line of its own: an `Arc` of it takes 128 bytes (the reference counts
/// on one line, the value on the next), so two `Arc`s' counts never share a line.
#[repr(align(64))]
struct Padded<T>(T);

/// One key's handles: `Arc`s to the same hotmeter handle, one per shard.
struct Shards<T>(Box<[Arc<Padded<T>>]>);

impl<T: Copy> Shards<T> {
    fn new(value: T) -> Self {
        Shards(
            (0..shard_count())
                .map(|_| Arc::new(Padded(value)))
                .collect(),
        )
    }

    /// This thread's `Arc`.
    #[inline]
    fn get(&self) -> Arc<Padded<T>> {
        // `shard()` is below `shard_count()`, the length of every `Shards`; the `min` keeps
        // the index check out of the way of the optimizer's doubts.
        Arc::clone(&self.0[shard().min(self.0.len() - 1)])
    }
}

/// Shards per key: the CPUs there are, at most [`MAX_SHARDS`]. One value per process.
fn shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_SHARDS)
    })
}

/// Live threads using each shard, so that a new thread takes the least used one: while
/// there are no more recording threads than shards, no two share an `Arc`. Relaxed
/// throughout: it only balances load; any shard is correct.
static SHARD_USERS: [AtomicUsize; MAX_SHARDS] = [const { AtomicUsize::new(0) }; MAX_SHARDS];

thread_local! {
    /// This thread's shard, or `usize::MAX` before its first facade call. `const` and
    /// without a destructor: a plain thread-local load on the hot path.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Gives the thread's shard back when it exits.
    static SHARD_GUARD: ShardGuard = const { ShardGuard(Cell::new(usize::MAX)) };
}

struct ShardGuard(Cell<usize>);

impl Drop for ShardGuard {
    fn drop(&mut self) {
        let s = self.0.get();
        if s != usize::MAX {
            SHARD_USERS[s].fetch_sub(1, Ordering::Relaxed);
            // A facade call from a later thread-local destructor takes a shard again,
            // without keeping it.
            SHARD.set(usize::MAX);
        }
    }
}

/// The calling thread's shard.
#[inline]
fn shard() -> usize {
    let s = SHARD.get();
    if s != usize::MAX {
        return s;
    }
    take_shard()
}

#[cold]
#[inline(never)]
fn take_shard() -> usize {
    let s = (0..shard_count())
        .min_by_key(|&i| SHARD_USERS[i].load(Ordering::Relaxed))
        .unwrap_or(0);
    // Kept only if the guard can give it back (not while the thread is being torn down).
    if SHARD_GUARD.try_with(|g| g.0.set(s)).is_ok() {
        SHARD_USERS[s].fetch_add(1, Ordering::Relaxed);
        SHARD.set(s);
    }
    s
}

/// A counter as a `metrics::CounterFn`: `None` when the registry refused the key.
#[derive(Clone, Copy)]
struct CounterFn(Option<Counter>);
#[derive(Clone, Copy)]
struct GaugeFn(Option<Gauge>);
#[derive(Clone, Copy)]
enum HistogramFn {
    Refused,
    Exact(Histogram),
    Sampled(Sampled),
}

impl metrics::CounterFn for Padded<CounterFn> {
    #[inline]
    fn increment(&self, value: u64) {
        if let Some(c) = self.0.0 {
            c.add(value);
        }
    }

    /// Raises the counter to `value` if it is below. The counter is sharded per thread, so
    /// this reads the sum and adds the difference: two threads calling it at once can
    /// overshoot (both add the same difference). `metrics`' `absolute` mirrors a total kept
    /// elsewhere; call it from one thread.
    fn absolute(&self, value: u64) {
        if let Some(c) = self.0.0 {
            let now = c.value();
            if value > now {
                c.add(value - now);
            }
        }
    }
}

impl metrics::GaugeFn for Padded<GaugeFn> {
    #[inline]
    fn increment(&self, value: f64) {
        if let Some(g) = self.0.0 {
            g.add(value);
        }
    }

    #[inline]
    fn decrement(&self, value: f64) {
        if let Some(g) = self.0.0 {
            g.sub(value);
        }
    }

    #[inline]
    fn set(&self, value: f64) {
        if let Some(g) = self.0.0 {
            g.set(value);
        }
    }
}

impl metrics::HistogramFn for Padded<HistogramFn> {
    #[inline]
    fn record(&self, value: f64) {
        match self.0 {
            HistogramFn::Refused => {}
            HistogramFn::Exact(h) => h.record(value),
            HistogramFn::Sampled(s) => s.record(value),
        }
    }
}

impl MetricsRecorder {
    /// A builder with the default rules (every histogram with [`DEFAULT_BUCKETS`]).
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A recorder with the default rules over `engine`.
    pub fn new(engine: &Engine) -> Self {
        Builder::default().build(engine)
    }

    fn with(shared: Arc<Shared>, rules: Builder) -> Self {
        // Twice the registry's series limit: keys past it fold (or fail) anyway, and the
        // cache's memory stays bounded whatever label values a program makes up.
        let cap = shared.config().max_series.saturating_mul(2);
        MetricsRecorder {
            shared,
            rules,
            counters: Cache::new(cap),
            gauges: Cache::new(cap),
            histograms: Cache::new(cap),
        }
    }

    /// Registers `key` through `register`, counting and reporting a refusal.
    #[cold]
    #[inline(never)]
    fn resolve<H>(
        &self,
        key: &Key,
        register: impl FnOnce(&crate::Registry, &str, &[(&str, &str)]) -> HmResult<H>,
    ) -> Option<H> {
        let name = sanitize_name(key.name());
        let labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (sanitize_label_name(l.key()), l.value().to_string()))
            .collect();
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let registry = self.shared.registry();
        match register(registry, &name, &pairs) {
            Ok(h) => Some(h),
            Err(e) => {
                registry.note_registration_error();
                eprintln!("hotmeter: metrics key {key} not recorded: {e} (reported once per key)");
                None
            }
        }
    }

    fn describe(&self, name: &KeyName, unit: Option<Unit>, description: &SharedString) {
        let name = sanitize_name(name.as_str());
        let registry = self.shared.registry();
        let unit = unit.and_then(unit_name);
        // With the unit when the name carries its suffix; otherwise HELP alone (see the
        // module docs).
        let done = match unit {
            Some(u) => registry
                .describe_with_unit(&name, u, description)
                .or_else(|_| registry.describe(&name, description)),
            None => registry.describe(&name, description),
        };
        if let Err(e) = done {
            self.shared.registry().note_registration_error();
            eprintln!("hotmeter: metrics description of {name:?} not recorded: {e}");
        }
    }
}

/// The OpenMetrics unit of a facade unit: its [`Unit::as_str`] name, none for
/// `Unit::Count` (a count is unitless; `_count` is a histogram's sample suffix).
fn unit_name(unit: Unit) -> Option<&'static str> {
    match unit {
        Unit::Count => None,
        u => Some(u.as_str()),
    }
}

impl metrics::Recorder for MetricsRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(&key, unit, &description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(&key, unit, &description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(&key, unit, &description);
    }

    #[inline]
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        let shards = match self.counters.get(key) {
            Some(s) => s,
            None => {
                let make = || {
                    let c = self.resolve(key, |r, n, l| r.counter(n, l));
                    Shards::new(CounterFn(c))
                };
                match self.counters.get_or_insert_with(key, make) {
                    Ok(s) => s,
                    Err(uncached) => return metrics::Counter::from_arc(uncached.get()),
                }
            }
        };
        metrics::Counter::from_arc(shards.get())
    }

    #[inline]
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        let shards = match self.gauges.get(key) {
            Some(s) => s,
            None => {
                let make = || {
                    let g = self.resolve(key, |r, n, l| r.gauge(n, l));
                    Shards::new(GaugeFn(g))
                };
                match self.gauges.get_or_insert_with(key, make) {
                    Ok(s) => s,
                    Err(uncached) => return metrics::Gauge::from_arc(uncached.get()),
                }
            }
        };
        metrics::Gauge::from_arc(shards.get())
    }

    #[inline]
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        let shards = match self.histograms.get(key) {
            Some(s) => s,
            None => {
                let make = || {
                    let h = match self.rules.rule(&sanitize_name(key.name())) {
                        HistogramRule::Histogram(config) => self
                            .resolve(key, |r, n, l| r.histogram_with(n, l, &config))
                            .map_or(HistogramFn::Refused, HistogramFn::Exact),
                        HistogramRule::Summary => self
                            .resolve(key, |r, n, l| r.sampled(n, l))
                            .map_or(HistogramFn::Refused, HistogramFn::Sampled),
                    };
                    Shards::new(h)
                };
                match self.histograms.get_or_insert_with(key, make) {
                    Ok(s) => s,
                    Err(uncached) => return metrics::Histogram::from_arc(uncached.get()),
                }
            }
        };
        metrics::Histogram::from_arc(shards.get())
    }
}

/// A metric name as metrics-exporter-prometheus writes it: characters outside
/// `[a-zA-Z0-9_:]` become `_`, and a leading digit gets a `_` before it.
fn sanitize_name(name: &str) -> String {
    sanitize(name, |c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A label name likewise, without `:`.
fn sanitize_label_name(name: &str) -> String {
    sanitize(name, |c| c.is_ascii_alphanumeric() || c == '_')
}

fn sanitize(name: &str, ok: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(name.chars().map(|c| if ok(c) { c } else { '_' }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_as_metrics_exporter_prometheus_does() {
        assert_eq!(sanitize_name("http.requests-total"), "http_requests_total");
        assert_eq!(sanitize_name("1st:x"), "_1st:x");
        assert_eq!(sanitize_label_name("a:b.c"), "a_b_c");
        assert_eq!(sanitize_name("ok_name"), "ok_name");
    }

    #[test]
    fn the_longest_prefix_rule_wins() {
        let b = Builder::default()
            .histogram_buckets("db_", &[1.0])
            .unwrap()
            .histogram_summary("db_slow_");
        assert_eq!(
            b.rule("db_seconds"),
            HistogramRule::Histogram(HistogramConfig::buckets(&[1.0]).unwrap())
        );
        assert_eq!(b.rule("db_slow_seconds"), HistogramRule::Summary);
        assert_eq!(
            b.rule("http_seconds"),
            HistogramRule::Histogram(HistogramConfig::buckets(&DEFAULT_BUCKETS).unwrap())
        );
    }
}
