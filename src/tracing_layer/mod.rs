//! Sampled logging for `tracing` (feature `tracing`): a [`SamplingLayer`] that counts every
//! event exactly, keeps a power-of-two share of TRACE/DEBUG/INFO (consistently per
//! correlation id, with hotmeter's keyed rule `keep_keyed`),
//! never samples WARN or ERROR, folds bursts of identical lines into one ([`Repeats`]), and
//! hands each kept event as one `key=value` line to a [`NonBlocking`] writer, which the
//! guard's drop or [`Engine::shutdown`] drains. Optionally it times spans
//! ([`SpanTime`]).
//!
//! ```
//! use std::sync::Arc;
//! use tracing_subscriber::layer::SubscriberExt;
//! use hotmeter::tracing_layer::{NonBlocking, SamplingLayer};
//!
//! let engine = Arc::new(hotmeter::Engine::builder().build()?);
//! let (writer, guard) = NonBlocking::builder().build(std::io::sink(), &engine)?;
//! let layer = SamplingLayer::builder()
//!     .rates("info=0.05,my_crate::conn=0.01") // 2^-4 and 2^-7 (nearest powers of two)
//!     .correlation_fields(&["correlation_id", "request_id", "trace_id"])
//!     .writer(writer)
//!     .build(&engine)?;
//! let subscriber = tracing_subscriber::registry().with(layer);
//! tracing::subscriber::with_default(subscriber, || {
//!     for i in 0..100u64 {
//!         tracing::info!(request_id = i, "handled");
//!     }
//!     tracing::error!("always kept");
//! });
//! drop(guard); // drains and writes every kept line
//! let snap = engine.registry().snapshot();
//! let info = [("level", "INFO"), ("target", module_path!())];
//! assert_eq!(snap.counter("log_events_total", &info), Some(100)); // exact
//! assert_eq!(snap.counter("log_events_kept_total", &[("level", "ERROR")]), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What is counted
//!
//! - `log_events_total{level, target}`: every event that reaches the layer, exact. The
//!   series is resolved once per callsite (in `register_callsite`, or on the first event of
//!   a callsite registered before the layer) and cached by the callsite's `Identifier` in a
//!   shared map, and per thread in a 64-slot direct-mapped cache keyed by the metadata's
//!   address: an event's lookup is a thread-local load and two compares, no lock, no
//!   registry lookup (a cache collision costs one read-locked hash-map lookup).
//! - `log_events_kept_total{level}`, `log_events_sampled_out_total{level}`: the decision.
//! - With a writer: `log_events_aggregated_total{level}` (kept events folded into an
//!   aggregate line instead of written one by one), `log_aggregate_lines_total`,
//!   `log_aggregation_untracked_total` (lines written as usual because the repeat table was
//!   full), the gauge `log_aggregation_entries`, and the gauges
//!   `log_effective_sample_rate{level}` (kept / seen since the start). The writer's worker
//!   refreshes the gauges about every 100 ms, and the drain at the end once more; without a
//!   writer they are not kept.
//! - The writer's `log_writer_*` counters, queue gauges and latency histogram (see
//!   [`NonBlocking`]).
//! - With [`SamplingLayerBuilder::span_timers`]: `span_duration_seconds{target, span}`, a
//!   sampled series per span callsite.
//!
//! ## How an event is kept
//!
//! Its rate comes from the [`Directives`] (most specific target prefix, else its level,
//! else the default, else 1), rounded to the nearest power of two `2^-k` in log space. WARN and ERROR
//! have `k = 0`: always kept. If the event, or its span or an enclosing one, carries one of
//! the correlation fields, the event is kept iff the id's xxh3 hash has at least `k`
//! leading zero bits: every event of one id gets the same decision, and a lower rate keeps
//! a subset of the ids a higher one kept. A string id and its `%Display` form hash alike;
//! an integer id hashes as the integer ([`SampleKey`]). Without an id,
//! the event is kept with probability `2^-k` from a per-thread generator.
//!
//! With [`early_sampling`](SamplingLayerBuilder::early_sampling) that draw is made before
//! the event is built when it can be: a callsite that names no correlation field is
//! registered with `Interest::sometimes`, and while no span carries an id, the layer's
//! `enabled` draws (and counts a sampled-out event, if the subscriber inside the layer
//! would have taken it); a sampled-out event is then never constructed nor dispatched (so
//! no other layer of the subscriber sees it either, as with `EnvFilter`), and a kept one is
//! not drawn again in `on_event`. (An event logged while a kept event's fields are being
//! recorded takes that mark; the outer event then draws again and is kept with `p²`: a
//! rare nesting.)
//!
//! Once an ERROR is logged inside a span carrying an id, the later events of that span and
//! of the spans that inherit its id are kept (`sample_rate=1`); an id carried by the events
//! alone is not tracked this way.
//!
//! A kept event becomes one line:
//! `ts=2026-12-02T00:41:07.123456Z level=INFO target=my_crate::conn message="sent" bytes=42 request_id=7 sample_rate=0.0625`
//! (values quoted when they hold spaces, `"` or `=`; the correlation field of an enclosing
//! span appended when the event does not carry one).
//!
//! An event in a span finds the span's id through a per-thread mirror of the entered spans
//! (pushed in `on_enter`, popped in `on_exit`, the registry's rule for re-entered spans),
//! so a sampled-out event does not look its span up; only a kept line, or an event with an
//! explicit parent, does.
//!
//! ## Repeats
//!
//! With a writer, a kept line other than ERROR repeats another when it has the same
//! callsite, sample rate and text after its timestamp (level, target, every field value,
//! the correlation id: different ids are never merged). The first 5 within 1 s of the
//! first are written as usual; from the 6th on they are counted instead, and one line
//! stands for them:
//! `ts=<first> level=INFO target=app message=refused port=80 sample_rate=1 repeated=15 first=<first> last=<last> window_s=0.140000`.
//! It is written when the burst pauses for more than 1 s, when it reaches 1,000 events or
//! spans 10 s (a burst that goes on then opens the next aggregate at once), or at the end:
//! the layer's drop, the guard's drop or [`Engine::shutdown`], whichever comes first. The
//! table holds at most 1,024 distinct lines (`Repeats::max_entries`); while it is full, new
//! lines are written as usual and counted `log_aggregation_untracked_total` until a sweep
//! (every second) frees expired entries. All of these are [`Repeats`] fields; time comes from
//! the layer's [`Clock`].

mod aggregate;
mod directives;
mod writer;

pub use aggregate::Repeats;
pub use directives::{DirectiveError, DirectiveErrorKind, Directives};
pub use writer::{
    DEFAULT_CAPACITY, NonBlocking, NonBlockingBuilder, OverflowPolicy, WorkerGuard, WriterStats,
};

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustc_hash::FxHashMap;
use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::sample::key::keep_keyed;
use crate::{Counter, Engine, SampleKey, Sampled, k_to_rate};

use aggregate::{Aggregator, Meters};

/// Where the layer reads the time: repeat windows and span durations from
/// [`now`](Clock::now), the lines' timestamps from [`wall`](Clock::wall). [`SystemClock`]
/// unless [`SamplingLayerBuilder::clock`] sets another (a test's manual clock).
pub trait Clock: Send + Sync + 'static {
    /// A monotonic reading.
    fn now(&self) -> Instant;
    /// The wall-clock time, for timestamps.
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// [`Instant::now`] and [`SystemTime::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Which time of a span [`SamplingLayerBuilder::span_timers`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpanTime {
    /// The time the span was entered (summed over its enters, nested re-entries once).
    Busy,
    /// From the span's creation to its close.
    Wall,
}

/// The environment variable whose directives [`SamplingLayerBuilder::build`] applies on top
/// of [`SamplingLayerBuilder::rates`] (unless [`SamplingLayerBuilder::read_env`] is off).
pub const ENV_VAR: &str = "HOTMETER_LOG_SAMPLING";

/// The correlation fields looked for by default.
pub const DEFAULT_CORRELATION_FIELDS: [&str; 3] = ["correlation_id", "request_id", "trace_id"];

/// Why [`SamplingLayerBuilder::build`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum LayerError {
    /// A bad directive in [`SamplingLayerBuilder::rates`].
    Rates(DirectiveError),
    /// A bad directive in `HOTMETER_LOG_SAMPLING`.
    Env(DirectiveError),
    /// A counter name of the layer is taken by another kind of metric.
    Registry(crate::Error),
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerError::Rates(e) => write!(f, "rates: {e}"),
            LayerError::Env(e) => write!(f, "{ENV_VAR}: {e}"),
            LayerError::Registry(e) => write!(f, "registering the log counters: {e}"),
        }
    }
}

impl std::error::Error for LayerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LayerError::Rates(e) | LayerError::Env(e) => Some(e),
            LayerError::Registry(e) => Some(e),
        }
    }
}

/// Builds a [`SamplingLayer`]: [`SamplingLayer::builder`].
#[derive(Clone)]
pub struct SamplingLayerBuilder {
    rates: String,
    fields: Vec<&'static str>,
    read_env: bool,
    writer: Option<NonBlocking>,
    repeats: Option<Repeats>,
    span_timers: Option<SpanTime>,
    clock: Arc<dyn Clock>,
    early: bool,
}

impl fmt::Debug for SamplingLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamplingLayerBuilder")
            .field("rates", &self.rates)
            .field("fields", &self.fields)
            .field("read_env", &self.read_env)
            .field("writer", &self.writer)
            .field("repeats", &self.repeats)
            .field("span_timers", &self.span_timers)
            .field("early", &self.early)
            .finish_non_exhaustive()
    }
}

impl SamplingLayerBuilder {
    /// Sampling directives ([`Directives::parse`]): `info=0.05,my_crate::conn=0.01,0.5`.
    /// Default: none (keep everything).
    pub fn rates(mut self, directives: &str) -> Self {
        self.rates = directives.to_owned();
        self
    }

    /// The field names that carry a request's correlation id, on the event or an enclosing
    /// span (default [`DEFAULT_CORRELATION_FIELDS`]).
    pub fn correlation_fields(mut self, names: &[&'static str]) -> Self {
        self.fields = names.to_vec();
        self
    }

    /// Whether [`build`](Self::build) applies `HOTMETER_LOG_SAMPLING` on top of
    /// [`rates`](Self::rates) (default `true`).
    pub fn read_env(mut self, yes: bool) -> Self {
        self.read_env = yes;
        self
    }

    /// Where kept lines go. Without one, kept events are counted but not formatted.
    pub fn writer(mut self, writer: NonBlocking) -> Self {
        self.writer = Some(writer);
        self
    }

    /// Repeat aggregation ([`Repeats`]; default `Some(Repeats::default())`: more than 5
    /// identical lines within 1 s become one line per burst, at most 10 s and 1,000 events
    /// each). `None` turns it off. Only lines for a [`writer`](Self::writer) are aggregated.
    pub fn repeats(mut self, rules: Option<Repeats>) -> Self {
        self.repeats = rules;
        self
    }

    /// Spans as timers (default off): at its close, each span's busy or wall time is
    /// recorded, in seconds, into the sampled series
    /// `span_duration_seconds{target, span}` (one per span name and target; exact count
    /// and sum, sampled quantiles), so `#[instrument]` gives latency quantiles. Costs two
    /// clock reads per span (`Wall`) or per enter/exit pair (`Busy`).
    pub fn span_timers(mut self, time: Option<SpanTime>) -> Self {
        self.span_timers = time;
        self
    }

    /// Early sampling (default off): decide an event's fate before it is built, so a
    /// sampled-out event costs a callsite check and a draw (11.2 ns against 20.8 ns without
    /// it, `benches/logging.rs`, quiet 2-core VM). Applies to callsites that name no correlation field, while no
    /// span carries an id; other events are decided as usual.
    ///
    /// A sampled-out event is then never built nor dispatched, so **no other layer of the
    /// subscriber sees it** (as with `EnvFilter`). Put filters *outside* this layer
    /// (`registry().with(sampling).with(filter)`) so that a callsite they disable stays
    /// disabled at no cost: a filter inside it still works (the layer asks it before
    /// counting), but its disabled callsites then pay a dispatch per call. Events that
    /// reach the subscriber without a `'static` callsite (the `log` bridge) are decided as
    /// usual.
    pub fn early_sampling(mut self, yes: bool) -> Self {
        self.early = yes;
        self
    }

    /// The clock for repeat windows, span durations and timestamps (default
    /// [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The layer, counting into `engine`'s registry.
    ///
    /// # Errors
    /// [`LayerError`]: a bad directive (naming it), or a counter name already taken by
    /// another kind of metric.
    pub fn build(self, engine: &Arc<Engine>) -> Result<SamplingLayer, LayerError> {
        self.build_with(EngineRef::Shared(Arc::clone(engine)))
    }

    /// The layer, counting into the global engine ([`crate::global_engine`]).
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_global(self) -> Result<SamplingLayer, LayerError> {
        self.build_with(EngineRef::Static(crate::global_engine()))
    }

    fn build_with(self, engine: EngineRef) -> Result<SamplingLayer, LayerError> {
        let mut directives = Directives::parse(&self.rates).map_err(LayerError::Rates)?;
        if self.read_env
            && let Ok(env) = std::env::var(ENV_VAR)
        {
            directives.extend(&env).map_err(LayerError::Env)?;
        }
        let r = engine.get().registry();
        let kept = per_level(r, "log_events_kept_total")?;
        let sampled_out = per_level(r, "log_events_sampled_out_total")?;
        let mut effective = [None; 5];
        for (i, l) in LEVELS.iter().enumerate() {
            effective[i] = Some(
                r.gauge("log_effective_sample_rate", &[("level", l.as_str())])
                    .map_err(LayerError::Registry)?,
            );
        }
        let aggregator = match &self.writer {
            Some(w) => Some(self.aggregator(w, r, kept, sampled_out, effective)?),
            None => None,
        };
        Ok(SamplingLayer {
            // Relaxed: only uniqueness matters, which the RMW gives whatever the ordering.
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            engine,
            directives,
            fields: self.fields.into_boxed_slice(),
            sites: RwLock::new(FxHashMap::default()),
            kept,
            sampled_out,
            writer: self.writer,
            aggregator,
            any_span_id: AtomicBool::new(false),
            clock: self.clock,
            span_timers: self.span_timers,
            span_series: RwLock::new(FxHashMap::default()),
            early: self.early,
        })
    }

    /// The aggregator of repeated lines for `writer`, with its meters (registered in
    /// `r` after the layer's own).
    fn aggregator(
        &self,
        writer: &NonBlocking,
        r: &crate::Registry,
        kept: [Counter; 5],
        sampled_out: [Counter; 5],
        effective: [Option<crate::Gauge>; 5],
    ) -> Result<Arc<Aggregator>, LayerError> {
        let meters = Meters {
            aggregated: per_level(r, "log_events_aggregated_total")?,
            lines: r
                .counter("log_aggregate_lines_total", &[])
                .map_err(LayerError::Registry)?,
            untracked: r
                .counter("log_aggregation_untracked_total", &[])
                .map_err(LayerError::Registry)?,
            entries: r
                .gauge("log_aggregation_entries", &[])
                .map_err(LayerError::Registry)?,
            kept,
            sampled_out,
            effective: effective.map(|g| g.expect("filled above")),
        };
        let a = Arc::new(Aggregator::new(
            self.repeats,
            Arc::clone(&self.clock),
            meters,
            writer.clone(),
        ));
        let weak = Arc::downgrade(&a);
        writer.add_source(weak);
        Ok(a)
    }
}

/// One counter `name{level}` per level, in [`LEVELS`]' order.
fn per_level(r: &crate::Registry, name: &str) -> Result<[Counter; 5], LayerError> {
    let mut out = [None; 5];
    for (i, l) in LEVELS.iter().enumerate() {
        out[i] = Some(
            r.counter(name, &[("level", l.as_str())])
                .map_err(LayerError::Registry)?,
        );
    }
    Ok(out.map(|c| c.expect("filled above")))
}

const LEVELS: [Level; 5] = [
    Level::TRACE,
    Level::DEBUG,
    Level::INFO,
    Level::WARN,
    Level::ERROR,
];

fn level_index(l: &Level) -> usize {
    match *l {
        Level::TRACE => 0,
        Level::DEBUG => 1,
        Level::INFO => 2,
        Level::WARN => 3,
        _ => 4,
    }
}

enum EngineRef {
    Static(&'static Engine),
    Shared(Arc<Engine>),
}

impl EngineRef {
    fn get(&self) -> &Engine {
        match self {
            EngineRef::Static(e) => e,
            EngineRef::Shared(e) => e,
        }
    }
}

/// What the layer caches per callsite: resolved once, copied out on every event.
#[derive(Clone, Copy)]
struct Site {
    /// `log_events_total{level, target}`; `None` if the registry refused the series.
    events: Option<Counter>,
    /// Index into the per-level counters.
    level: usize,
    /// Keep probability `2^-k`.
    k: u8,
    /// The callsite declares one of the correlation fields.
    has_id_field: bool,
    /// The address of the callsite's `'static` metadata: early sampling applies only to
    /// metadata at this address (not to a `log` record's, built on the stack).
    meta: usize,
}

/// A request's correlation id, as found on an event or span. On a span, its value is kept
/// for the lines and `errored` is shared with the spans that inherit the id.
#[derive(Clone, Debug)]
struct Correlation {
    field: &'static str,
    /// Empty unless asked for (`FindId::want_value`).
    value: String,
    hash: u64,
    /// The request logged an ERROR: its later events are kept.
    errored: Arc<AtomicBool>,
}

/// Index of ERROR in the per-level counters.
const ERROR_INDEX: usize = 4;

/// The sampling layer: see the [module docs](self).
pub struct SamplingLayer {
    /// Keys this layer's entries in the per-thread site cache.
    uid: u64,
    engine: EngineRef,
    directives: Directives,
    fields: Box<[&'static str]>,
    sites: RwLock<FxHashMap<Identifier, Site>>,
    kept: [Counter; 5],
    sampled_out: [Counter; 5],
    writer: Option<NonBlocking>,
    /// With a writer: the repeat table and the gauges the writer's worker refreshes.
    aggregator: Option<Arc<Aggregator>>,
    /// Some span has carried a correlation id: only then do events look at their span.
    any_span_id: AtomicBool,
    clock: Arc<dyn Clock>,
    span_timers: Option<SpanTime>,
    /// `span_duration_seconds{target, span}` per span callsite (`None`: refused).
    span_series: RwLock<FxHashMap<Identifier, Option<Sampled>>>,
    /// Early sampling ([`SamplingLayerBuilder::early_sampling`]).
    early: bool,
}

impl Drop for SamplingLayer {
    /// The aggregates still open are written (or counted `closed` if the writer is).
    fn drop(&mut self) {
        if let (Some(a), Some(w)) = (&self.aggregator, &self.writer) {
            let mut out = Vec::new();
            writer::LineSource::drain_all(&**a, &mut out);
            for line in out {
                w.send(line);
            }
        }
    }
}

impl fmt::Debug for SamplingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamplingLayer")
            .field("directives", &self.directives)
            .field("fields", &self.fields)
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl SamplingLayer {
    /// A builder: rates, correlation fields, writer.
    pub fn builder() -> SamplingLayerBuilder {
        SamplingLayerBuilder {
            rates: String::new(),
            fields: DEFAULT_CORRELATION_FIELDS.to_vec(),
            read_env: true,
            writer: None,
            repeats: Some(Repeats::default()),
            span_timers: None,
            clock: Arc::new(SystemClock),
            early: false,
        }
    }

    /// The directives in force (after `HOTMETER_LOG_SAMPLING`).
    pub fn directives(&self) -> &Directives {
        &self.directives
    }

    /// The callsite's cached [`Site`]: from this thread's cache (no atomic operation), else
    /// from the shared map (one read lock), else registered.
    #[inline]
    fn site(&self, meta: &'static Metadata<'static>) -> Site {
        self.cached_site(meta, || Some(self.shared_site(meta)))
            .expect("shared_site registers a site it does not know")
    }

    /// The site of `meta` from this thread's cache, else from `lookup` (cached then).
    #[inline]
    fn cached_site(
        &self,
        meta: &Metadata<'_>,
        lookup: impl FnOnce() -> Option<Site>,
    ) -> Option<Site> {
        let addr = meta as *const Metadata<'_> as usize;
        // Fibonacci hashing of the metadata's address onto the cache's slots.
        let slot =
            ((addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SITE_CACHE_BITS)) as usize;
        SITE_CACHE.with(|cache| {
            let (uid, a, site) = cache[slot].get();
            if uid == self.uid && a == addr {
                return Some(site);
            }
            let site = lookup()?;
            cache[slot].set((self.uid, addr, site));
            Some(site)
        })
    }

    fn shared_site(&self, meta: &'static Metadata<'static>) -> Site {
        lookup(&self.sites, meta).unwrap_or_else(|| self.register(meta))
    }

    #[cold]
    #[inline(never)]
    fn register(&self, meta: &'static Metadata<'static>) -> Site {
        let level = *meta.level();
        let site = Site {
            events: self
                .engine
                .get()
                .registry()
                .counter(
                    "log_events_total",
                    &[("level", level.as_str()), ("target", meta.target())],
                )
                .ok(),
            level: level_index(&level),
            k: self.directives.k_for(&level, meta.target()),
            has_id_field: self.fields.iter().any(|f| meta.fields().field(f).is_some()),
            meta: meta as *const Metadata<'static> as usize,
        };
        *self
            .sites
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(meta.callsite())
            .or_insert(site)
    }

    /// Runs `f` on the correlation id's hash and shared ERROR flag of the event's span, if
    /// any (inherited ids included). A contextual event reads them from this thread's
    /// [`ENTERED`] mirror (no span lookup); one with an explicit parent looks its span up.
    #[inline]
    fn with_span_id<S, R>(
        &self,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
        f: impl FnOnce(u64, &AtomicBool) -> R,
    ) -> Option<R>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        // Relaxed: a hint. The span's creator stored `true` before the span could reach this
        // thread, and that hand-over (entering it here) happens after the store.
        if !self.any_span_id.load(Ordering::Relaxed) {
            return None;
        }
        if event.is_contextual() {
            return ENTERED.with(|stack| {
                let stack = stack.borrow();
                let top = stack
                    .iter()
                    .rev()
                    .find(|e| e.uid == self.uid && !e.duplicate)?;
                top.id.as_ref().map(|(hash, errored)| f(*hash, errored))
            });
        }
        let span = ctx.event_span(event)?;
        let ext = span.extensions();
        ext.get::<Correlation>().map(|c| f(c.hash, &c.errored))
    }

    /// The event's span's correlation id, value included (for a kept line).
    fn span_correlation<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> Option<Correlation>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        // Relaxed: see `with_span_id`.
        if !self.any_span_id.load(Ordering::Relaxed) {
            return None;
        }
        let span = ctx.event_span(event)?;
        let ext = span.extensions();
        ext.get::<Correlation>().cloned()
    }

    /// Updates this thread's mirror entry of span `id` (after `on_record` gave it an id).
    fn mirror_id(&self, id: &Id, c: &Correlation) {
        ENTERED.with(|stack| {
            for e in stack.borrow_mut().iter_mut() {
                if e.uid == self.uid && e.span == id.into_u64() {
                    e.id = Some((c.hash, Arc::clone(&c.errored)));
                }
            }
        });
    }
}

/// One entered span in this thread's mirror of the registry's span stack.
struct Entered {
    uid: u64,
    span: u64,
    /// Entered again while already on the stack: like the registry, not the current span.
    duplicate: bool,
    /// Its correlation id's hash and shared ERROR flag.
    id: Option<(u64, Arc<AtomicBool>)>,
}

thread_local! {
    /// Per thread, the spans entered through each sampling layer (innermost last), with
    /// the id they carry: a contextual event finds its span's id here without the
    /// registry's span lookup and extensions lock. Pushed in `on_enter`, removed in
    /// `on_exit` as the registry does (the innermost entry of that span).
    static ENTERED: std::cell::RefCell<Vec<Entered>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// log2 of the per-thread site cache's slots.
const SITE_CACHE_BITS: u32 = 6;

/// Each layer's number, so that one thread's cache never serves a site to another layer
/// (layers may come and go at the same address; numbers are never reused).
static NEXT_UID: AtomicU64 = AtomicU64::new(1);

#[allow(clippy::declare_interior_mutable_const)] // an initializer, copied per slot
const EMPTY_SLOT: Cell<(u64, usize, Site)> = Cell::new((
    0,
    0,
    Site {
        events: None,
        level: 0,
        k: 0,
        has_id_field: false,
        meta: 0,
    },
));

thread_local! {
    /// Per thread, direct-mapped: `(layer uid, metadata address, site)`. A layer's sites
    /// never change once registered, so an entry never goes stale; a collision only costs
    /// a trip to the shared map. Uid 0 is never assigned: the empty slots match nothing.
    static SITE_CACHE: [Cell<(u64, usize, Site)>; 1 << SITE_CACHE_BITS] =
        const { [EMPTY_SLOT; 1 << SITE_CACHE_BITS] };

    static RNG: Cell<u64> = Cell::new({
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let here = &t as *const u64 as u64;
        t ^ here.rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15
    });
}

/// The entry of `meta`'s callsite in one of the layer's per-callsite maps.
fn lookup<V: Copy>(map: &RwLock<FxHashMap<Identifier, V>>, meta: &Metadata<'_>) -> Option<V> {
    map.read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&meta.callsite())
        .copied()
}

/// Whether `meta` is an `enabled!` / `event_enabled!` hint, not an event: `tracing`'s
/// `Metadata` does not expose its kind's hint bit, but those macros name their callsites
/// `enabled <file>:<line>` (events are `event <file>:<line>`).
fn is_hint(meta: &Metadata<'_>) -> bool {
    meta.name().starts_with("enabled ")
}

thread_local! {
    /// The layer (`uid`) and metadata address of the event that layer's `enabled` just kept
    /// early (`(0, 0)`: none): its `on_event` does not draw again. A nested event (logged
    /// while the event's fields are recorded) replaces the mark, and the outer event then
    /// draws again: kept with `p²`, a rare nesting. With two early-sampling layers on one
    /// subscriber the inner one's mark replaces the outer's the same way.
    static PASSED: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
}

/// Seeds the calling thread's keep/drop generator (the draws for events without a
/// correlation id): for tests that need a fixed sequence. Not a stable API.
#[doc(hidden)]
pub fn seed_this_thread(seed: u64) {
    RNG.with(|s| s.set(seed));
}

/// splitmix64 (Steele, Lea, Flood 2014) on a per-thread state: one uniform 64-bit draw.
#[inline]
fn random_u64() -> u64 {
    RNG.with(|s| {
        let x = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// Finds the first correlation field among an event's or span's fields.
struct FindId<'a> {
    names: &'a [&'static str],
    /// Keep the value's text (spans: it goes on their events' lines); events only hash.
    want_value: bool,
    found: Option<Correlation>,
}

impl<'a> FindId<'a> {
    fn new(names: &'a [&'static str], want_value: bool) -> Self {
        Self {
            names,
            want_value,
            found: None,
        }
    }

    fn wants(&self, field: &Field) -> bool {
        self.found.is_none() && self.names.contains(&field.name())
    }

    fn found(&mut self, field: &Field, hash: u64, value: impl FnOnce() -> String) {
        self.found = Some(Correlation {
            field: field.name(),
            value: if self.want_value {
                value()
            } else {
                String::new()
            },
            hash,
            errored: Arc::default(),
        });
    }
}

impl Visit for FindId<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.wants(field) {
            self.found(field, value.key_hash(), || value.to_owned());
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.wants(field) {
            self.found(field, value.key_hash(), || value.to_string());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.wants(field) {
            self.found(field, value.key_hash(), || value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.wants(field) {
            // `%id` (Display) arrives here: hashed as its text, like a `&str` id.
            let text = format!("{value:?}");
            self.found(field, text.key_hash(), || text.clone());
        }
    }
}

impl SamplingLayer {
    /// An ERROR marks its request (the correlation id of its span): the request's later
    /// events are kept.
    #[inline]
    fn mark_request_errored<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        // Relaxed: a flag read by this request's later events; those on other threads see
        // it once they synchronize with this one (as any hand-over of the request).
        self.with_span_id(event, ctx, |_, errored| {
            errored.store(true, Ordering::Relaxed)
        });
    }

    /// Whether this layer's `enabled` kept this very event already (it marks the metadata
    /// just before the event is built, and clears nothing else in between but a nested
    /// event's mark); the mark is cleared either way.
    #[inline]
    fn take_early_mark(&self, meta: &'static Metadata<'static>) -> bool {
        PASSED
            .try_with(|p| {
                let mark = p.get();
                if mark.0 != self.uid {
                    return false;
                }
                p.set((0, 0));
                mark.1 == meta as *const Metadata<'static> as usize
            })
            .unwrap_or(false)
    }

    /// The keep decision for an event of a sampled callsite: the `k` it is kept at (0 when
    /// its request logged an ERROR), or `None` when it is sampled out. Keyed by the event's
    /// own correlation id, else its span's; a random draw without either.
    #[inline]
    fn sample<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, site: Site) -> Option<u8>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut k = site.k;
        let mut key = None;
        if site.has_id_field {
            let mut find = FindId::new(&self.fields, false);
            event.record(&mut find);
            key = find.found.map(|c| c.hash);
        }
        if let Some((hash, errored)) = self.with_span_id(event, ctx, |hash, errored| {
            // Relaxed: see `mark_request_errored`.
            (hash, errored.load(Ordering::Relaxed))
        }) {
            // The span's request, unless the event names another one itself: an ERROR in
            // it keeps the event also when the event repeats the request's id.
            if key.is_none_or(|own| own == hash) {
                key = Some(hash);
                if errored {
                    k = 0;
                }
            }
        }
        let keep = k == 0
            || match key {
                Some(hash) => keep_keyed(hash, k),
                None => random_u64().leading_zeros() >= u32::from(k),
            };
        keep.then_some(k)
    }

    /// Formats a kept event's line and hands it to the writer, unless the repeat
    /// aggregation takes it (never an ERROR).
    #[inline]
    fn write_kept<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, level: usize, k: u8)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(writer) = &self.writer else { return };
        // A span's id is appended when the event does not name one itself.
        let span_id = if event.fields().any(|f| self.fields.contains(&f.name())) {
            None
        } else {
            self.span_correlation(event, ctx)
        };
        let (line, body) = format_line(event, k, span_id.as_ref(), self.clock.wall());
        if level != ERROR_INDEX
            && let Some(a) = &self.aggregator
            && a.on()
        {
            let addr = event.metadata() as *const Metadata<'static> as usize;
            if !a.offer(addr, level, k, &line[body], self.clock.now()) {
                return;
            }
        }
        writer.send(line);
    }
}

impl<S> Layer<S> for SamplingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if !meta.is_event() || is_hint(meta) {
            return Interest::always();
        }
        let site = self.shared_site(meta);
        if self.early && site.k != 0 && !site.has_id_field {
            // Perhaps sampled out before the event is built: see `enabled`.
            Interest::sometimes()
        } else {
            // Always kept, decided by the event's own id, or no early sampling: `on_event`
            // decides.
            Interest::always()
        }
    }

    /// Early sampling ([`SamplingLayerBuilder::early_sampling`]) for an event whose
    /// callsite names no correlation field, before the event is built and dispatched: while
    /// no span carries an id its keep decision is a random draw. A sampled-out event is
    /// counted here (if the subscriber inside this layer would have taken it) and goes no
    /// further; a kept one is marked for this layer's `on_event` (`PASSED`), which then
    /// does not draw again. Once some span carries an id the decision needs the event's
    /// span, which only `on_event` knows for sure (an explicit parent), so it waits there.
    fn enabled(&self, meta: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        // Spans, `enabled!`/`event_enabled!` hints: nothing to count or decide.
        if !self.early || !meta.is_event() || is_hint(meta) {
            return true;
        }
        let addr = meta as *const Metadata<'_> as usize;
        // A mark of this layer's left by an event that never reached `on_event` (another
        // layer or filter refused it) must not pass a later one.
        let _ = PASSED.try_with(|p| {
            if p.get().0 == self.uid {
                p.set((0, 0));
            }
        });
        // Relaxed: see `with_span_id`.
        if self.any_span_id.load(Ordering::Relaxed) {
            return true;
        }
        // Only a registered callsite's own `'static` metadata (a `log` record's is built on
        // the stack, at an address another record may reuse): the per-thread cache holds
        // only sites found at their registered address, so a stack address never hits.
        let Some(site) = self.cached_site(meta, || {
            lookup(&self.sites, meta).filter(|s| s.meta == addr)
        }) else {
            return true;
        };
        if site.k == 0 || site.has_id_field {
            return true;
        }
        if random_u64().leading_zeros() >= u32::from(site.k) {
            let _ = PASSED.try_with(|p| p.set((self.uid, addr)));
            return true;
        }
        // Counted only if the subscriber inside this layer would take the event (a filter
        // there may disable it: then it is not an event of this layer's, as without early
        // sampling).
        if ctx.enabled(meta) {
            if let Some(c) = site.events {
                c.inc();
            }
            self.sampled_out[site.level].inc();
        }
        false
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if self.span_timers.is_some()
            && let Some(series) = self.span_series(attrs.metadata())
        {
            span.extensions_mut().replace(SpanTiming {
                series,
                created: self.clock.now(),
                entered: None,
                depth: 0,
                busy: Duration::ZERO,
            });
        }
        let mut find = FindId::new(&self.fields, true);
        if self
            .fields
            .iter()
            .any(|f| attrs.metadata().fields().field(f).is_some())
        {
            attrs.record(&mut find);
        }
        // A span without an id of its own inherits its parent's.
        let found = find.found.or_else(|| {
            span.parent()
                .and_then(|p| p.extensions().get::<Correlation>().cloned())
        });
        if let Some(c) = found {
            // Relaxed: see `with_span_id`.
            self.any_span_id.store(true, Ordering::Relaxed);
            // `replace`: two sampling layers over one registry both store the span's id
            // (the same one, unless their correlation fields differ: then the last wins).
            span.extensions_mut().replace(c);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut find = FindId::new(&self.fields, true);
        values.record(&mut find);
        if let Some(c) = find.found {
            // Relaxed: see `with_span_id`.
            self.any_span_id.store(true, Ordering::Relaxed);
            self.mirror_id(id, &c);
            span.extensions_mut().replace(c);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let site = self.site(meta);
        if let Some(c) = site.events {
            c.inc();
        }
        if site.level == ERROR_INDEX {
            self.mark_request_errored(event, &ctx);
        }
        // Taken whatever `k` is, so that a stale mark never outlives its event.
        let passed = self.take_early_mark(meta);
        let mut k = site.k;
        if k != 0 && !passed {
            match self.sample(event, &ctx, site) {
                Some(kept_at) => k = kept_at,
                None => {
                    self.sampled_out[site.level].inc();
                    return;
                }
            }
        }
        self.kept[site.level].inc();
        self.write_kept(event, &ctx, site.level, k);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        // The mirror first: the span's id, looked up only once some span has carried one
        // (Relaxed: see `with_span_id`; a span given an id later is updated by `on_record`).
        let with_ids = self.any_span_id.load(Ordering::Relaxed);
        let busy = self.span_timers == Some(SpanTime::Busy);
        let span = if with_ids || busy { ctx.span(id) } else { None };
        let found = span.as_ref().and_then(|s| {
            s.extensions()
                .get::<Correlation>()
                .map(|c| (c.hash, Arc::clone(&c.errored)))
        });
        ENTERED.with(|stack| {
            let mut stack = stack.borrow_mut();
            let span_id = id.into_u64();
            let duplicate = stack.iter().any(|e| e.uid == self.uid && e.span == span_id);
            stack.push(Entered {
                uid: self.uid,
                span: span_id,
                duplicate,
                id: found,
            });
        });
        if !busy {
            return;
        }
        let Some(span) = span else { return };
        let mut ext = span.extensions_mut();
        if let Some(t) = ext.get_mut::<SpanTiming>() {
            if t.depth == 0 {
                t.entered = Some(self.clock.now());
            }
            t.depth += 1;
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        ENTERED.with(|stack| {
            let mut stack = stack.borrow_mut();
            let span_id = id.into_u64();
            if let Some(i) = stack
                .iter()
                .rposition(|e| e.uid == self.uid && e.span == span_id)
            {
                stack.remove(i);
            }
        });
        if self.span_timers != Some(SpanTime::Busy) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(t) = ext.get_mut::<SpanTiming>() {
            t.depth = t.depth.saturating_sub(1);
            if t.depth == 0
                && let Some(at) = t.entered.take()
            {
                t.busy += self.clock.now().saturating_duration_since(at);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(mode) = self.span_timers else { return };
        let Some(span) = ctx.span(&id) else { return };
        let ext = span.extensions();
        let Some(t) = ext.get::<SpanTiming>() else {
            return;
        };
        let secs = match mode {
            SpanTime::Busy => t.busy,
            SpanTime::Wall => self.clock.now().saturating_duration_since(t.created),
        };
        t.series.record(secs.as_secs_f64());
    }
}

/// A span's timing, in its extensions (spans as timers).
struct SpanTiming {
    series: Sampled,
    created: Instant,
    /// When the outermost current enter began.
    entered: Option<Instant>,
    /// Enters not yet exited (a span may be re-entered while entered).
    depth: u32,
    busy: Duration,
}

impl SamplingLayer {
    /// The series of a span callsite (spans as timers), resolved once.
    fn span_series(&self, meta: &'static Metadata<'static>) -> Option<Sampled> {
        lookup(&self.span_series, meta).unwrap_or_else(|| self.register_span(meta))
    }

    #[cold]
    #[inline(never)]
    fn register_span(&self, meta: &'static Metadata<'static>) -> Option<Sampled> {
        let series = self
            .engine
            .get()
            .registry()
            .sampled(
                "span_duration_seconds",
                &[("target", meta.target()), ("span", meta.name())],
            )
            .ok();
        *self
            .span_series
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(meta.callsite())
            .or_insert(series)
    }
}

/// One line: `ts=... level=... target=... message=... fields... sample_rate=...\n`, and
/// the range of its body (from `level=` to the last field: what repeats compare).
fn format_line(
    event: &Event<'_>,
    k: u8,
    span_id: Option<&Correlation>,
    now: SystemTime,
) -> (String, std::ops::Range<usize>) {
    let meta = event.metadata();
    let mut line = String::with_capacity(160);
    line.push_str("ts=");
    push_timestamp(&mut line, now);
    line.push(' ');
    let start = line.len();
    line.push_str("level=");
    line.push_str(meta.level().as_str());
    line.push_str(" target=");
    push_value(&mut line, meta.target());
    let mut fields = FormatFields { line: &mut line };
    event.record(&mut fields);
    if let Some(c) = span_id {
        line.push(' ');
        line.push_str(c.field);
        line.push('=');
        push_value(&mut line, &c.value);
    }
    let end = line.len();
    line.push_str(" sample_rate=");
    line.push_str(&rate_texts()[usize::from(k.min(63))]);
    line.push('\n');
    (line, start..end)
}

/// `2^-k` as `Display` writes it (`1`, `0.5`, `0.0625`, …), for every `k`: written once, not
/// per line.
fn rate_texts() -> &'static [String; 64] {
    static TEXTS: std::sync::OnceLock<[String; 64]> = std::sync::OnceLock::new();
    TEXTS.get_or_init(|| core::array::from_fn(|k| k_to_rate(k as u8).to_string()))
}

/// Appends `v` in decimal (what `Display` writes), without the formatting machinery.
fn push_u64(line: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    push_digits(line, &buf[i..]);
}

/// Appends `v` as `width` decimal digits, zero-padded (`v < 10^width`, `width ≤ 20`).
fn push_padded(line: &mut String, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    push_digits(line, &buf[..width]);
}

/// Appends ASCII text (digits, a timestamp's punctuation) without validating it again.
fn push_digits(line: &mut String, ascii: &[u8]) {
    assert!(ascii.is_ascii(), "push_digits takes ASCII");
    // SAFETY: ASCII (checked just above, a handful of byte compares) is valid UTF-8.
    line.push_str(unsafe { core::str::from_utf8_unchecked(ascii) });
}

thread_local! {
    /// A `Debug` value's text while it is checked for quoting: reused, so a kept line does
    /// not allocate per field.
    static SCRATCH: core::cell::RefCell<String> = const { core::cell::RefCell::new(String::new()) };
}

struct FormatFields<'a> {
    line: &'a mut String,
}

impl FormatFields<'_> {
    fn name(&mut self, field: &Field) {
        self.line.push(' ');
        self.line.push_str(field.name());
        self.line.push('=');
    }
}

impl Visit for FormatFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        push_value(self.line, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        push_u64(self.line, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field);
        if value < 0 {
            self.line.push('-');
        }
        push_u64(self.line, value.unsigned_abs());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        self.line.push_str(if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.name(field);
        // Reentrancy (a `Debug` impl that logs) finds the scratch borrowed: it allocates.
        let done = SCRATCH.try_with(|scratch| {
            let Ok(mut text) = scratch.try_borrow_mut() else {
                return false;
            };
            text.clear();
            let _ = write!(text, "{value:?}");
            push_value(self.line, &text);
            true
        });
        if done != Ok(true) {
            push_value(self.line, &format!("{value:?}"));
        }
    }
}

/// A value as is when it is a plain token, else quoted with `\"`, `\\`, `\n` escaped.
fn push_value(line: &mut String, v: &str) {
    // ASCII bytes decided by their byte; text with others by its characters.
    let plain = !v.is_empty()
        && if v.is_ascii() {
            !v.bytes().any(|b| {
                b.is_ascii_whitespace()
                    || b == b'"'
                    || b == b'='
                    || b == b'\\'
                    || b.is_ascii_control()
            })
        } else {
            !v.chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '=' || c == '\\' || c.is_control())
        };
    if plain {
        line.push_str(v);
        return;
    }
    line.push('"');
    for c in v.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{{{:x}}}", c as u32);
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

/// RFC 3339 UTC with microseconds, from days-since-epoch to civil date (Howard Hinnant's
/// `civil_from_days`). The text up to the seconds is kept per thread for the second it
/// stands for, so consecutive lines write only their microseconds.
fn push_timestamp(line: &mut String, t: SystemTime) {
    thread_local! {
        /// The last whole second written and its `YYYY-MM-DDTHH:MM:SS.` (20 bytes).
        static LAST: core::cell::Cell<(u64, [u8; 20])> = const { core::cell::Cell::new((u64::MAX, [0; 20])) };
    }
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let prefix = match LAST.try_with(core::cell::Cell::get) {
        Ok((s, prefix)) if s == secs => prefix,
        _ => {
            let prefix = second_prefix(secs);
            let _ = LAST.try_with(|last| last.set((secs, prefix)));
            prefix
        }
    };
    push_digits(line, &prefix);
    push_padded(line, u64::from(d.subsec_micros()), 6);
    line.push('Z');
}

/// `YYYY-MM-DDTHH:MM:SS.` of the second `secs` after the epoch (years mod 10,000: a log's
/// clock never leaves 0..=9999).
fn second_prefix(secs: u64) -> [u8; 20] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for slot in out[at..at + width].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year.rem_euclid(10_000) as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, rem / 3600);
    put(14, 2, rem / 60 % 60);
    put(17, 2, rem % 60);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The hand-written number and timestamp writers write what `Display` would.
    #[test]
    fn numbers_and_timestamps_read_as_display_writes_them() {
        for v in [0u64, 7, 10, 99, 1_000, 123_456_789, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, v);
            assert_eq!(s, v.to_string());
        }
        let mut s = String::new();
        push_padded(&mut s, 42, 6);
        assert_eq!(s, "000042");
        // Two lines in one second share the cached prefix; the next second gets its own.
        let t = UNIX_EPOCH + Duration::new(1_709_210_096, 1_000);
        let mut s = String::new();
        push_timestamp(&mut s, t);
        push_timestamp(&mut s, t + Duration::from_micros(5));
        push_timestamp(&mut s, t + Duration::from_secs(1));
        assert_eq!(
            s,
            "2024-02-29T12:34:56.000001Z2024-02-29T12:34:56.000006Z2024-02-29T12:34:57.000001Z"
        );
        for k in [0u8, 1, 4, 63] {
            assert_eq!(rate_texts()[usize::from(k)], k_to_rate(k).to_string());
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let mut s = String::new();
        push_timestamp(&mut s, UNIX_EPOCH);
        assert_eq!(s, "1970-01-01T00:00:00.000000Z");
        s.clear();
        // 2024-02-29T12:34:56.789012Z (a leap day).
        push_timestamp(
            &mut s,
            UNIX_EPOCH + Duration::new(1_709_210_096, 789_012_000),
        );
        assert_eq!(s, "2024-02-29T12:34:56.789012Z");
    }

    #[test]
    fn values_are_quoted_only_when_needed() {
        let mut s = String::new();
        push_value(&mut s, "plain::token-1");
        push_value(&mut s, "two words");
        push_value(&mut s, "a=\"b\"\\\n");
        push_value(&mut s, "");
        assert_eq!(s, "plain::token-1\"two words\"\"a=\\\"b\\\"\\\\\\n\"\"\"");
    }

    #[test]
    fn the_generator_keeps_about_two_to_the_minus_k() {
        // 2^-3 of 80,000 draws: mean 10,000, SE sqrt(80,000 * 1/8 * 7/8) = 93.5; a 5 SE band
        // fails with probability 6e-7 for a uniform generator.
        let n = 80_000;
        let kept = (0..n).filter(|_| random_u64().leading_zeros() >= 3).count() as f64;
        assert!((kept - 10_000.0).abs() <= 5.0 * 93.5, "kept {kept}");
    }
}
