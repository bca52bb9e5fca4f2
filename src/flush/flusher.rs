//! The flusher's state and one flush: drain, correct, adapt, publish.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::ptr;
use std::sync::atomic::Ordering;

use super::buckets::MIN_SPAN;
use super::controller::{ControllerConfig, ControllerState, Observation, step};
use super::cpu_clock::thread_cpu_ns;
use super::estimate::{
    ClusterVar, DEFAULT_SPAN, Distribution, KeyBatch, TopK, Totals, Z95, poisson_interval,
};
use super::{
    EXEMPLARS_PER_SERIES, ExemplarRecord, FlushStats, Published, Quantile, SeriesEstimate,
};
use crate::registry::{LabelSet, Registry};
use crate::sample::key_names::KeyNames;
use crate::sample::pipeline::{Pipeline, SampledMetric};
use crate::sample::record::Record;
use crate::sample::ring::Consumer;
use crate::sample::sampled::{Sampled, cells};

/// Keys tracked per series for the heavy-hitter estimates.
const TOP_K_CAPACITY: usize = 64;
/// Keys published per series.
const TOP_K_PUBLISHED: usize = 10;
/// Quantiles published per series.
pub(crate) const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// Entries of the drain's series-position cache (a power of two).
const SERIES_CACHE: usize = 16;

/// The cache slot of a series id (Fibonacci hashing: ids of neighbouring series differ by
/// their cell count, so their low bits alone would collide).
#[inline]
fn series_slot(series: u32) -> usize {
    (series.wrapping_mul(0x9e37_79b9) >> (32 - SERIES_CACHE.trailing_zeros())) as usize
}

/// Flush intervals `ns_per_record` averages over.
const RECENT_INTERVALS: usize = 8;

/// Steps the quantile window ages out in (as Prometheus client summaries' age buckets).
const WINDOW_STEPS: usize = 5;

/// Buckets shared out among every sampled series' window steps: a step spans
/// `TOTAL_SPAN / series` buckets, at least [`MIN_SPAN`], at most [`DEFAULT_SPAN`] (see
/// [`step_span`]).
const TOTAL_SPAN: usize = 1 << 18;

/// The bucket span of a new window step while `series` sampled series exist: the flusher's
/// distributions hold at most `max(TOTAL_SPAN, MIN_SPAN · series)` buckets per step
/// (16 bytes each once rates mix), so `WINDOW_STEPS · 16 · TOTAL_SPAN` = 20 MiB in all up
/// to 4,096 series, 5 KiB per series past that; each series at most 80 KiB. Fewer buckets
/// only coarsen the resolution of series whose values spread wide (a step of 256 buckets
/// keeps 128 per octave over 2 octaves), and the quantile intervals include the width.
/// A series' batch of top keys ([`KeyBatch`]) takes at most its step span's slots, rounded
/// down to a power of two (24 bytes each) and at least 64: ≤ 6 MiB more up to 4,096 keyed
/// series, 1.5 KiB per keyed series past that, 24 KiB per series at most.
fn step_span(series: usize) -> usize {
    (TOTAL_SPAN / series.max(1)).clamp(MIN_SPAN, DEFAULT_SPAN)
}

/// A ~95% upper bound on the events of a series that left no record at rate `2^-k`:
/// `N` events leave none with probability `(1 − p)^N ≤ 5%` once `N ≥ ln(20)/−ln(1 − p)`
/// (≈ 3/p); infinite for a keyed family, whose dropped keys may hold any number.
fn no_record_upper(k: u8, keyed: bool) -> f64 {
    if keyed {
        return f64::INFINITY;
    }
    let p = 0.5f64.powi(k as i32);
    if p >= 1.0 {
        0.0
    } else {
        (20f64).ln() / -(-p).ln_1p()
    }
}

/// Per sampled series, what the flusher accumulates from its records: Horvitz–Thompson
/// totals and top keys since start, the distribution over a sliding window.
#[derive(Debug)]
struct SeriesAgg {
    /// Horvitz–Thompson totals since start (quantiles come from the window).
    totals: Totals,
    /// The window's current step: records go here.
    current: Distribution,
    /// The window's ended steps, oldest first (at most `WINDOW_STEPS − 1`).
    past: std::collections::VecDeque<Distribution>,
    /// When the last step began, and when it ends (the next drain or flush past it ages the
    /// window first, so a record never lands in a step that has ended).
    step_started: Instant,
    step_end: Instant,
    top: TopK,
    /// The top keys' records since the last estimate, summed per key (folded into `top`
    /// before it is read).
    keys: KeyBatch,
    /// For a keyed family (from its first record kept by its key): the totals' variance
    /// as a cluster sample, which replaces the record-level one.
    cluster: Option<Box<ClusterVar>>,
    /// The latest keyed record per fine value bucket (`value.to_bits() >> 49`).
    exemplars: HashMap<u64, ExemplarRecord, rustc_hash::FxBuildHasher>,
    /// Whether this series' family keeps exemplars: assumed until the first publish learns
    /// its family (then the map is dropped for families that do not).
    track_exemplars: bool,
    /// The last published estimate, and whether records arrived since.
    estimate: Arc<SeriesEstimate>,
    dirty: bool,
}

impl SeriesAgg {
    /// A new series' aggregate, its first window step starting `now`, `span` buckets wide,
    /// its top keys' batch at most `span` slots.
    fn new(now: Instant, step: Duration, span: usize) -> Self {
        Self {
            totals: Totals::default(),
            current: Distribution::with_span(span),
            past: std::collections::VecDeque::new(),
            step_started: now,
            step_end: now + step,
            top: TopK::new(TOP_K_CAPACITY),
            // As many slots as a window step has buckets: shared out among series alike.
            keys: KeyBatch::with_max(span),
            cluster: None,
            exemplars: HashMap::default(),
            track_exemplars: true,
            estimate: Arc::default(),
            dirty: false,
        }
    }

    /// Takes one record drained at `now`: ages the window first if its last step has
    /// ended, then absorbs it.
    #[cfg(test)]
    fn take(&mut self, r: &Record, scale: f64, now: Instant, step: Duration, span: usize) {
        self.age_to(now, step, span);
        self.absorb(r, scale);
    }

    /// Ages the window if its last step ended by `now`. A drain calls this once per series
    /// it meets (its `now` holds for the whole drain), before the series' first record.
    #[inline]
    fn age_to(&mut self, now: Instant, step: Duration, span: usize) {
        if now >= self.step_end {
            self.age(now, step, span);
        }
    }

    /// Takes one drained record, standing for `scale` records of its ring (1 unless the
    /// ring dropped records of its series since the last drain). The window must be aged
    /// to the drain's time ([`SeriesAgg::age_to`]).
    #[inline(always)]
    fn absorb(&mut self, r: &Record, scale: f64) {
        debug_assert!(!r.keyed || r.key != 0, "a record kept by its key has one");
        self.dirty = true;
        let w = (1u64 << r.k.min(62)) as f64;
        // The common record: a finite value, not negative (nor −0.0), nothing dropped.
        if r.value.to_bits() < f64::INFINITY.to_bits() && scale == 1.0 {
            self.totals.add_plain(r.value, w);
            // The totals are this series' (above): the window's steps keep buckets only.
            self.current.add_plain_to_buckets(r.value, r.k, w);
        } else {
            self.absorb_value(r, w * scale, scale);
        }
        if r.key != 0 {
            self.absorb_key(r, scale);
        }
    }

    /// [`SeriesAgg::absorb`]'s value for any value and scale.
    #[inline(never)]
    fn absorb_value(&mut self, r: &Record, w: f64, scale: f64) {
        self.totals.add_weight(r.value, w);
        self.current.add_to_buckets_only(r.value, r.k, scale);
    }

    /// [`SeriesAgg::absorb`]'s key: the cluster variance, the top keys, the exemplars.
    #[inline]
    fn absorb_key(&mut self, r: &Record, scale: f64) {
        if r.keyed {
            let w = (1u64 << r.k.min(62)) as f64 * scale;
            self.cluster
                .get_or_insert_with(Box::default)
                .add(r.key, w, r.value);
        }
        // A key kept by its key (keyed family) has every event kept: count its events as
        // they are, not times `2^k` (the totals above still weigh them).
        if r.keyed {
            self.keys.add(r.key, scale, 0.0, &mut self.top);
        } else {
            let w = r.weight() as f64 * scale;
            self.keys.add(r.key, w, w * (w - 1.0), &mut self.top);
        }
        if !self.track_exemplars {
            return;
        }
        let e = ExemplarRecord {
            value: r.value,
            key: r.key,
            time_ns: r.time_ns,
        };
        let bucket = r.value.to_bits() >> 49;
        if let Some(slot) = self.exemplars.get_mut(&bucket) {
            *slot = e;
        } else if self.exemplars.len() < EXEMPLARS_PER_SERIES {
            self.exemplars.insert(bucket, e);
        }
    }

    /// Starts new window steps for the time passed (at most a whole window's worth), dropping
    /// the oldest; marks the series for re-estimation when a dropped step held records.
    fn age(&mut self, now: Instant, step: Duration, span: usize) {
        let elapsed = now.saturating_duration_since(self.step_started);
        let steps = (elapsed.as_nanos() / step.as_nanos().max(1)).min(WINDOW_STEPS as u128);
        if steps == 0 {
            return;
        }
        for _ in 0..steps {
            let ended = std::mem::replace(&mut self.current, Distribution::with_span(span));
            self.past.push_back(ended);
            if self.past.len() >= WINDOW_STEPS
                && let Some(old) = self.past.pop_front()
                && old.bucketed_weight() > 0.0
            {
                self.dirty = true;
            }
        }
        self.step_started = if steps as usize == WINDOW_STEPS {
            now
        } else {
            self.step_started + step * steps as u32
        };
        self.step_end = self.step_started + step;
    }

    /// The weight in the window's steps.
    #[cfg(test)]
    fn window_weight(&self) -> f64 {
        self.past
            .iter()
            .chain([&self.current])
            .map(Distribution::bucketed_weight)
            .sum()
    }

    fn estimate(&mut self) -> SeriesEstimate {
        self.keys.fold(&mut self.top);
        let mut count = self.totals.count_estimate();
        let mut total = self.totals.total_estimate();
        // The design effect of keys kept or dropped whole, for the quantile intervals.
        let (mut deff, mut deff_df) = (1.0, f64::INFINITY);
        if let Some(c) = &self.cluster {
            // Records kept with their key: their record-level variance is replaced by the
            // cluster variance (see `ClusterVar`); records sampled one by one in the same
            // series (no key, a sampled timer) keep theirs.
            let (cluster_count, cluster_sum) = c.variances();
            let (keyed_count, keyed_sum) = c.record_variances();
            let others_count = (count.std_error.powi(2) - keyed_count).max(0.0);
            let others_sum = (total.std_error.powi(2) - keyed_sum).max(0.0);
            if keyed_count > 0.0 {
                deff = (cluster_count / keyed_count).max(1.0);
                deff_df = ClusterVar::DEFF_DF;
            }
            count.std_error = (cluster_count + others_count).sqrt();
            total.std_error = (cluster_sum + others_sum).sqrt();
        }
        let mut window = Distribution::with_span(DEFAULT_SPAN);
        for w in self.past.iter().chain([&self.current]) {
            window.merge(w);
        }
        SeriesEstimate {
            records: self.totals.records(),
            n_eff: window.bucketed_n_eff(),
            quantiles: QUANTILES
                .iter()
                .filter_map(|&q| {
                    window
                        .quantile_clustered_df(q, Z95, deff, deff_df)
                        .map(|e| Quantile {
                            q,
                            value: e.value,
                            lower: e.lower,
                            upper: e.upper,
                        })
                })
                .collect(),
            sum_estimate: total.value,
            sum_std_error: total.std_error,
            count_estimate: count.value,
            count_std_error: count.std_error,
            count_upper: {
                let var = count.std_error * count.std_error;
                if var <= 0.0 || count.value <= 0.0 {
                    count.value
                } else {
                    let w = 1.0 + var / count.value;
                    poisson_interval(count.value / w, Z95).1 * w
                }
            },
            top_keys: self.top.top_bounded(TOP_K_PUBLISHED),
            exemplars: {
                let mut e: Vec<ExemplarRecord> = self.exemplars.values().copied().collect();
                e.sort_by(|a, b| a.value.total_cmp(&b.value));
                e
            },
        }
    }
}

/// The position of `series` in `aggs` (a new aggregate if it has none), aged to `now`: a
/// drain calls this once per series it meets (a series in its cache was aged when cached,
/// and `now` holds for the whole drain), so records never land in an ended step.
#[inline(never)]
fn find_series(
    aggs: &mut Vec<SeriesAgg>,
    index: &mut HashMap<u32, usize, rustc_hash::FxBuildHasher>,
    series: u32,
    now: Instant,
    step: Duration,
    span: usize,
) -> usize {
    let i = *index.entry(series).or_insert_with(|| {
        // The share of a series created now: `span` is the drain's, and many series may
        // appear in one drain.
        aggs.push(SeriesAgg::new(now, step, step_span(aggs.len() + 1)));
        aggs.len() - 1
    });
    aggs[i].age_to(now, step, span);
    i
}

/// `est` with the names `names` now has for its unnamed top keys; `None` when it gains
/// none (the estimate stays shared).
fn with_names(est: &Arc<SeriesEstimate>, names: &KeyNames) -> Option<Arc<SeriesEstimate>> {
    if est.top_keys.iter().all(|t| t.name.is_some()) {
        return None;
    }
    let found: Vec<Option<Arc<str>>> = est
        .top_keys
        .iter()
        .map(|t| t.name.clone().or_else(|| names.name(t.key)))
        .collect();
    if found
        .iter()
        .zip(&est.top_keys)
        .all(|(n, t)| n.is_some() == t.name.is_some())
    {
        return None;
    }
    let mut named = SeriesEstimate::clone(est);
    for (t, n) in named.top_keys.iter_mut().zip(found) {
        t.name = n;
    }
    Some(Arc::new(named))
}

/// What the drains of one flush interval saw (not to be confused with the quantile
/// window: this one is reset at every flush).
#[derive(Debug, Default)]
struct DrainTally {
    drains: u64,
    records: u64,
    fill_max: f64,
    fill_mean_sum: f64,
}

/// Per sampled family: its controller and the totals at the previous flush.
struct Control {
    state: ControllerState,
    seen: u64,
    pushed: u64,
    dropped: u64,
}

#[derive(Default)]
pub(crate) struct FlushState {
    consumers: Vec<Consumer>,
    /// Per sampled series, its aggregate; `index` maps a series id to its position.
    series: Vec<SeriesAgg>,
    index: HashMap<u32, usize, rustc_hash::FxBuildHasher>,
    /// Keyed by the family's `SampledMetric` address (families live for the process).
    control: HashMap<usize, Control>,
    /// What the drains since the last full flush saw.
    drains: DrainTally,
    stats: FlushStats,
    /// Calibrated recording cost (ns): a call not sampled, a sampled call.
    calibration: (f64, f64),
    /// CPU ns spent in drains and flushes, ever.
    cpu_ns: u64,
    /// CPU ns spent in drains since the last flush.
    interval_cpu_ns: u64,
    /// `(CPU ns, records drained)` of the last [`RECENT_INTERVALS`] flush intervals.
    recent: std::collections::VecDeque<(u64, u64)>,
    /// The sampled layer's CPU budget, a fraction of one core.
    overhead_budget: f64,
    /// When the controllers last stepped.
    last_adapt: Option<Instant>,
    /// Reused by `Consumer::drain_weighted` for a `DropOldest` ring that dropped records.
    drop_buf: Vec<Record>,
}

/// A family's key (its `SampledMetric`'s address), the family, and what it saw, pushed
/// and dropped since the previous controller step.
type FamilyDelta = (usize, &'static SampledMetric, (u64, u64, u64));

/// Shares `total` ns of budget among families that would cost `demands` ns each at the
/// highest rate (water-filling): from the cheapest up, each gets `4 ×` its demand or an
/// equal part of what is left, whichever is less. A cheap family thus keeps room for its
/// noise and the controller's margin at the highest rate, the rest is split evenly among
/// the expensive ones, and the shares never add up to more than `total`.
fn share_budget(total: f64, demands: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by(|&a, &b| demands[a].total_cmp(&demands[b]));
    let mut shares = vec![0.0; demands.len()];
    let mut left = total.max(0.0);
    for (n, &i) in order.iter().enumerate() {
        let fair = left / (demands.len() - n) as f64;
        let d = demands[i];
        let share = if d.is_finite() && d >= 0.0 {
            (4.0 * d).min(fair)
        } else {
            fair
        };
        shares[i] = share;
        left -= share;
    }
    shares
}

impl FlushState {
    /// One controller step per sampled family. The rings are shared by every family of a
    /// thread, so a family's `fill` is the fullest ring's fill times the family's share of
    /// this interval's pushes: a family that contributes little is not slowed down by
    /// another's burst.
    ///
    /// The overhead budget (a fraction of one core, over the time since the last step) is
    /// shared out by [`share_budget`]; a record costs the calibrated difference between a
    /// sampled and a skipped call plus the flusher's recent CPU per drained record.
    fn adapt(
        &mut self,
        registry: &Registry,
        sampled: &[(Box<str>, LabelSet, Sampled)],
        fill_max: f64,
        rings: usize,
        now: Instant,
    ) {
        let c = &registry.pipeline().config;
        // What sampled records may fill of each ring (the rest is the critical reserve).
        let ring_limit = c.ring_limit();
        let cfg = ControllerConfig {
            min_k: c.min_k,
            max_k: c.max_k,
            ..ControllerConfig::default()
        };
        let deltas = self.family_deltas(sampled);
        let all_pushed: u64 = deltas.iter().map(|d| d.2.1).sum();
        let elapsed = self
            .last_adapt
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.last_adapt = Some(now);
        let record_cost_ns = self.record_cost_ns();
        let budgets = self.budgets(&deltas, &cfg, record_cost_ns, elapsed);
        for ((key, metric, (seen, pushed, dropped)), budget_ns) in deltas.into_iter().zip(budgets) {
            let share = if all_pushed == 0 {
                0.0
            } else {
                pushed as f64 / all_pushed as f64
            };
            let control = self.control.get_mut(&key).expect("inserted above");
            // The observation describes the interval that ran at the controller's k; a
            // rate forced with `set_sample_rate` in between is adopted as the new start.
            control.state.k = metric.k();
            let obs = Observation {
                fill: fill_max * share,
                seen,
                pushed,
                dropped,
                capacity: (ring_limit * rings) as u64,
                budget_ns,
                record_cost_ns,
            };
            control.state = step(&cfg, &control.state, &obs);
            // Relaxed: a tuning value, read Relaxed by the samplers (see `SampledMetric::k`).
            metric.k.store(control.state.k, Ordering::Relaxed);
        }
    }

    /// Per sampled family, what it saw, pushed and dropped since the previous step (its
    /// `Control` created at the family's current rate on first sight).
    fn family_deltas(&mut self, sampled: &[(Box<str>, LabelSet, Sampled)]) -> Vec<FamilyDelta> {
        // Totals per family now.
        let mut totals: HashMap<usize, (&'static SampledMetric, u64, u64, u64)> = HashMap::new();
        for (_, _, s) in sampled {
            let series = s.series;
            let t = totals
                .entry(ptr::from_ref(series.metric) as usize)
                .or_insert((series.metric, 0, 0, 0));
            t.1 += series.cell(cells::COUNT);
            t.2 += series.cell(cells::PUSHED);
            t.3 += series.cell(cells::DROP_FULL)
                + series.cell(cells::DROP_OLDEST)
                + series.cell(cells::DROP_TIMEOUT);
        }
        totals
            .into_iter()
            .map(|(key, (metric, seen, pushed, dropped))| {
                let prev = self.control.entry(key).or_insert_with(|| Control {
                    state: ControllerState::new(metric.k()),
                    seen: 0,
                    pushed: 0,
                    dropped: 0,
                });
                let d = (
                    seen.wrapping_sub(prev.seen),
                    pushed.wrapping_sub(prev.pushed),
                    dropped.wrapping_sub(prev.dropped),
                );
                (prev.seen, prev.pushed, prev.dropped) = (seen, pushed, dropped);
                (key, metric, d)
            })
            .collect()
    }

    /// What one record costs (ns): the calibrated difference between a sampled and a
    /// skipped call, plus the flusher's recent CPU per drained record once it is known.
    fn record_cost_ns(&self) -> f64 {
        let (unsampled, sampled_ns) = self.calibration;
        let flusher_ns = self.stats.ns_per_record;
        (sampled_ns - unsampled).max(0.0)
            + if flusher_ns.is_finite() {
                flusher_ns
            } else {
                0.0
            }
    }

    /// Each family's share of the budget of the `elapsed` interval, in the order of
    /// `deltas`.
    fn budgets(
        &self,
        deltas: &[FamilyDelta],
        cfg: &ControllerConfig,
        record_cost_ns: f64,
        elapsed: Duration,
    ) -> Vec<f64> {
        // What each family would cost at the highest rate, at the arrivals its controller
        // reacts to (`max(seen, EMA)`: see `step`).
        let max_rate = crate::stats::k_to_rate(cfg.min_k);
        let demands: Vec<f64> = deltas
            .iter()
            .map(|(key, _, (seen, _, _))| {
                let ema = self.control[key].state.ema_arrivals;
                (*seen as f64).max(ema) * max_rate * record_cost_ns
            })
            .collect();
        share_budget(self.overhead_budget * elapsed.as_nanos() as f64, &demands)
    }

    /// An empty state with the recording cost calibrated at start and the overhead budget
    /// (a fraction of one core, validated by the configuration).
    pub(crate) fn new(calibration: (f64, f64), overhead_budget: f64) -> Self {
        Self {
            calibration,
            overhead_budget,
            last_adapt: Some(Instant::now()),
            ..Self::default()
        }
    }

    /// Drains every ring of `pipeline` and its critical lane into the aggregates, noting
    /// the fullest ring. Cheap (no registry access): the flusher does this alone when a
    /// producer wakes it early, and a full [`FlushState::flush`] at interval boundaries.
    /// Its CPU time counts toward the flusher's.
    pub(crate) fn drain(&mut self, pipeline: &Pipeline) {
        let cpu = thread_cpu_ns();
        self.drain_rings(pipeline);
        let spent = thread_cpu_ns().saturating_sub(cpu);
        self.cpu_ns += spent;
        self.interval_cpu_ns += spent;
    }

    fn drain_rings(&mut self, pipeline: &Pipeline) {
        // Records pushed from here on are stamped with this pass's time, and a ring past
        // its mark wakes the flusher again.
        pipeline.begin_drain();
        self.consumers.extend(pipeline.take_new_rings());
        let (series, index, drop_buf) = (&mut self.series, &mut self.index, &mut self.drop_buf);
        let mut drained = 0u64;
        // A ring interleaves the records of a thread's few hot call sites, so a small
        // direct-mapped cache of series positions answers nearly every record and the map
        // is consulted only on a miss.
        let mut cache = [(u32::MAX, 0usize); SERIES_CACHE];
        let span = step_span(series.len() + 1);
        let now = Instant::now();
        let step = pipeline.config.quantile_window / WINDOW_STEPS as u32;
        let mut absorb = |r: Record, scale: f64| {
            drained += 1;
            let slot = &mut cache[series_slot(r.series)];
            if slot.0 != r.series {
                *slot = (
                    r.series,
                    find_series(series, index, r.series, now, step, span),
                );
            }
            series[slot.1].absorb(&r, scale);
        };
        let (mut fill_max, mut fill_sum) = (0f64, 0f64);
        let rings_before = self.consumers.len();
        self.consumers.retain_mut(|c| {
            // Of what sampled records may fill (critical ones also have the reserve above
            // it: a ring holding some counts as full).
            let fill = (c.len() as f64 / c.limit() as f64).min(1.0);
            fill_max = fill_max.max(fill);
            fill_sum += fill;
            // Checked before draining: once abandoned, nothing new can arrive, so the
            // drain below empties it for good.
            let abandoned = c.is_abandoned();
            // Records of a series the ring dropped some of stand for those too.
            c.drain_weighted(usize::MAX, drop_buf, &mut absorb);
            !abandoned
        });
        // At most what the lane held when we started: producers refilling it cannot keep
        // the flusher from returning to the rings.
        for _ in 0..pipeline.lane.len() {
            match pipeline.lane.pop() {
                Some(r) => absorb(r, 1.0),
                None => break,
            }
        }
        let w = &mut self.drains;
        w.drains += 1;
        w.records += drained;
        w.fill_max = w.fill_max.max(fill_max);
        if rings_before > 0 {
            w.fill_mean_sum += fill_sum / rings_before as f64;
        }
    }

    /// Drains every ring of `registry`'s pipeline and its critical lane, updates the
    /// estimates and the rate, and publishes the result.
    pub(crate) fn flush(&mut self, registry: &Registry) {
        let start = Instant::now();
        let cpu_start = thread_cpu_ns();
        let pipeline = registry.pipeline();
        // Age the quantile windows before draining, so this interval's records land in the
        // step that is current now.
        let step = pipeline.config.quantile_window / WINDOW_STEPS as u32;
        let span = step_span(self.series.len());
        for agg in &mut self.series {
            agg.age(start, step, span);
        }
        self.drain_rings(pipeline);
        let tally = std::mem::take(&mut self.drains);
        let rings = self.consumers.len();

        let sampled = registry.sampled_series();
        if pipeline.config.adaptive {
            // Each drain of the interval emptied every ring once: that is the capacity the
            // interval had.
            self.adapt(
                registry,
                &sampled,
                tally.fill_max,
                rings * tally.drains as usize,
                start,
            );
        }
        let published_series = self.estimates(pipeline, &sampled);
        self.count_interval(pipeline, &tally, rings);
        self.time_interval(cpu_start, tally.records, start);
        pipeline.publish(Arc::new(Published {
            series: published_series,
            stats: self.stats.clone(),
        }));
        // The whole flush, publishing included (its tail shows in the next publish).
        self.cpu_ns += thread_cpu_ns().saturating_sub(cpu_start);
    }

    /// The estimate of every sampled series, by its base cell. Estimates are recomputed
    /// only for series that received records since the last flush; the others republish
    /// their previous (shared) estimate. Tells the key names which top keys are reported.
    fn estimates(
        &mut self,
        pipeline: &Pipeline,
        sampled: &[(Box<str>, LabelSet, Sampled)],
    ) -> HashMap<u32, Arc<SeriesEstimate>> {
        let mut empty: HashMap<(u8, bool), Arc<SeriesEstimate>> = HashMap::new();
        // Every top key reported now, for the key names (`sample::key_names`).
        let mut reported = rustc_hash::FxHashSet::default();
        let published_series = sampled
            .iter()
            .map(|(_, _, s)| {
                let base = s.series.base;
                let est = match self.index.get(&base).map(|&i| &mut self.series[i]) {
                    Some(agg) => {
                        if agg.track_exemplars && !s.series.metric.exemplars {
                            agg.track_exemplars = false;
                            agg.exemplars = HashMap::default();
                        }
                        if agg.dirty {
                            agg.estimate = Arc::new(agg.estimate());
                            agg.dirty = false;
                        }
                        if let Some(named) = with_names(&agg.estimate, &pipeline.names) {
                            agg.estimate = named;
                        }
                        reported.extend(agg.estimate.top_keys.iter().map(|t| t.key));
                        Arc::clone(&agg.estimate)
                    }
                    // No record yet: the bound on what the family's rate hid.
                    None => {
                        let m = &s.series.metric;
                        Arc::clone(empty.entry((m.k(), m.keyed)).or_insert_with(|| {
                            Arc::new(SeriesEstimate {
                                count_upper: no_record_upper(m.k(), m.keyed),
                                ..SeriesEstimate::default()
                            })
                        }))
                    }
                };
                (base, est)
            })
            .collect();
        pipeline.names.want(&reported);
        published_series
    }

    /// The interval's counts into the stats: records, ring fill, the lane, the rates and
    /// the recording overhead they imply.
    fn count_interval(&mut self, pipeline: &Pipeline, tally: &DrainTally, rings: usize) {
        let drained = tally.records;
        let mut rates: Vec<(String, f64)> = pipeline
            .metrics()
            .iter()
            .map(|m| (m.name.to_string(), 0.5f64.powi(m.k() as i32)))
            .collect();
        rates.sort_by(|a, b| a.0.cmp(&b.0));
        let mean_p = if rates.is_empty() {
            0.0
        } else {
            rates.iter().map(|r| r.1).sum::<f64>() / rates.len() as f64
        };
        let (unsampled, sampled_ns) = self.calibration;
        let stats = &mut self.stats;
        stats.flushes += 1;
        stats.records_flushed += drained;
        stats.last_records = drained;
        stats.ring_utilization_max = tally.fill_max;
        stats.ring_utilization_mean = tally.fill_mean_sum / tally.drains.max(1) as f64;
        stats.drains += tally.drains;
        stats.rings = rings;
        stats.lane_depth = pipeline.lane.len();
        let lost = pipeline.lane.lost();
        if lost > stats.lane_lost {
            // Loud, once per flush interval at most: losing a critical event is never silent.
            eprintln!(
                "hotmeter: {} critical events lost since the last flush: the critical lane is \
                 full ({} records, {} bytes); raise critical_lane_bytes or ring_capacity",
                lost - stats.lane_lost,
                pipeline.lane.capacity(),
                pipeline.config.lane_bytes
            );
        }
        stats.lane_lost = lost;
        stats.overhead_ns_per_call = unsampled + mean_p * (sampled_ns - unsampled).max(0.0);
        stats.rates = rates;
    }

    /// The flusher's CPU into the stats: this interval's (its early drains, and this flush
    /// up to here, begun at `cpu_start` and `start`), per record over the recent intervals,
    /// and ever.
    fn time_interval(&mut self, cpu_start: u64, drained: u64, start: Instant) {
        let flush_cpu = thread_cpu_ns().saturating_sub(cpu_start);
        let interval_cpu = self.interval_cpu_ns + flush_cpu;
        self.interval_cpu_ns = 0;
        if self.recent.len() == RECENT_INTERVALS {
            self.recent.pop_front();
        }
        self.recent.push_back((interval_cpu, drained));
        let (cpu, records) = self
            .recent
            .iter()
            .fold((0u64, 0u64), |(c, n), &(dc, dn)| (c + dc, n + dn));
        let stats = &mut self.stats;
        stats.ns_per_record = if records == 0 {
            f64::NAN
        } else {
            cpu as f64 / records as f64
        };
        stats.cpu_seconds = (self.cpu_ns + flush_cpu) as f64 * 1e-9;
        stats.last_duration_seconds = start.elapsed().as_secs_f64();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13, defect 4: keyed sampling keeps or drops whole keys, so a keyed family's
    /// totals vary as a cluster sample's. 1,000 keys with Zipf(1.1) event counts (50,000
    /// events), each key kept with p = 1/32, 2,000 independent trials. The record-level
    /// standard error understated the spread of the Horvitz–Thompson count ~2,600× in
    /// variance (50× in SE; ±1.96 SE covered the exact count in 4% of trials); the
    /// published one is the cluster
    /// variance, whose mean over trials must match the estimates' actual variance, and it
    /// agrees with the exact `Σ_kept w(w−1)·Y²` that the sketch stands in for.
    ///
    /// Bounds: the variance here is carried by the few trials that keep one of the heaviest
    /// keys (~60 of 2,000 keep the heaviest), so the trials' variance has a relative
    /// standard error of ~15%: the ratio must lie in [0.6, 1.6] (about 3 SE each way,
    /// false-failure probability < 1%; measured 1.016, record-level 0.0004). The sketch's
    /// mean variance must be within 10% of the exact cluster variance's (its own error
    /// averages out over trials: ~25% per trial / sqrt(2,000)). Seeds are fixed:
    /// deterministic. Coverage of ±1.96 SE is printed, not asserted: with so few heavy keys
    /// the estimate is far from normal (0.54 here, whatever its standard error), which the
    /// README says.
    #[test]
    fn keyed_totals_carry_the_cluster_variance() {
        use rand_core::{Rng, SeedableRng};
        let keys = 1000usize;
        let norm: f64 = (1..=keys).map(|r| (r as f64).powf(-1.1)).sum();
        let events: Vec<u64> = (1..=keys)
            .map(|r| ((r as f64).powf(-1.1) / norm * 50_000.0).round().max(1.0) as u64)
            .collect();
        let truth = events.iter().sum::<u64>() as f64;
        let (k, trials) = (5u8, 2000u64);
        let (mut covered, mut record_level, mut cantelli) = (0, 0, 0);
        let (mut sq_err, mut var_hat, mut var_record, mut var_exact) = (0.0, 0.0, 0.0, 0.0);
        let t0 = Instant::now();
        let step = Duration::from_secs(60);
        for trial in 0..trials {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(trial);
            let mut agg = SeriesAgg::new(t0, step, DEFAULT_SPAN);
            let mut plain = Totals::default();
            for (i, &n) in events.iter().enumerate() {
                if rng.next_u64() >> 59 != 0 {
                    continue; // dropped with probability 31/32, all its events
                }
                var_exact += 32.0 * 31.0 * (n * n) as f64;
                let key = (trial << 32) | i as u64 | 1 << 63;
                for _ in 0..n {
                    agg.absorb(&Record::new(1, k, 1.0, key, 0, false).by_key(), 1.0);
                    plain.add(1.0, k);
                }
            }
            let e = agg.estimate();
            let err = e.count_estimate - truth;
            sq_err += err * err;
            var_hat += e.count_std_error * e.count_std_error;
            covered += (err.abs() <= Z95 * e.count_std_error) as u32;
            // An upper bound by Cantelli's inequality (one-sided, 2.5%: 6.24 SE), beside
            // the kept keys' events (a sure lower bound): printed, to show that no bound
            // from the kept keys' spread holds when the heavy keys were dropped.
            cantelli += (e.count_estimate + 6.24 * e.count_std_error >= truth) as u32;
            let p = plain.count_estimate();
            var_record += p.std_error * p.std_error;
            record_level += (err.abs() <= Z95 * p.std_error) as u32;
        }
        let n = trials as f64;
        let (actual, published) = (sq_err / n, var_hat / n);
        let (record, exact) = (var_record / n, var_exact / n);
        println!(
            "variance of the estimates {actual:.4e}; mean published {published:.4e} (ratio {:.3}), \
             exact cluster {exact:.4e}, record-level {record:.4e} (ratio {:.4}); \
             coverage {:.3}, record-level {:.3}; estimate + 6.24 SE above the truth in {:.3}",
            published / actual,
            record / actual,
            covered as f64 / n,
            record_level as f64 / n,
            cantelli as f64 / n
        );
        assert!(
            (0.6..=1.6).contains(&(published / actual)),
            "{published} vs {actual}"
        );
        assert!(
            (published / exact - 1.0).abs() <= 0.1,
            "{published} vs {exact}"
        );
        assert!(
            record / actual < 0.1,
            "the record-level variance understates it"
        );
    }

    /// Issue 13, defect 4 (quantiles): a keyed family's records come in clusters, and when a
    /// key's values sit together (here each key has its own level, its events within 1% of
    /// it) the records of one key are nearly one observation. 1,000 keys with 1–60 events
    /// each (~30,000 events), levels lognormal, each key kept with p = 1/8, 200 trials:
    /// intervals built as if records were independent covered the true p50 / p90 in 0.27–
    /// 0.31 of trials (the audit: 0.10–0.27); with the count's design effect they must
    /// cover in ≥ 90% (measured 0.975 / 0.970 with the few-keys cut; they err wide by
    /// construction; for a true 95%, < 90% of 200 is 3.2 SE away, false-failure
    /// probability < 0.1% per quantile) or say NaN,
    /// and NaN in at most a tenth of the trials. Deterministic (fixed seeds).
    #[test]
    fn keyed_quantile_intervals_count_keys_not_records() {
        use rand_core::{Rng, SeedableRng};
        let (trials, keys, k) = (200u64, 1000usize, 3u8);
        let qs = [0.5, 0.9];
        let uniform = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus| {
            (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        };
        let t0 = Instant::now();
        let step = Duration::from_secs(60);
        let (mut covered, mut naive, mut nan) = ([0u32; 2], [0u32; 2], [0u32; 2]);
        for trial in 0..trials {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(trial * 2 + 1);
            let mut agg = SeriesAgg::new(t0, step, DEFAULT_SPAN);
            let mut naive_d = Distribution::new();
            let mut all = Vec::new();
            for key in 0..keys as u64 {
                let n = 1 + rng.next_u64() % 60;
                // A lognormal level per key (σ = 1), events within ±1% of it.
                let g: f64 = (0..4).map(|_| uniform(&mut rng)).sum::<f64>() - 2.0;
                let level = (g * 3f64.sqrt()).exp();
                let kept = rng.next_u64() >> (64 - k) == 0;
                for _ in 0..n {
                    let y = level * (1.0 + 0.01 * (uniform(&mut rng) - 0.5));
                    all.push(y);
                    if kept {
                        let key = (trial << 32) | key | 1 << 63;
                        agg.absorb(&Record::new(1, k, y, key, 0, false).by_key(), 1.0);
                        naive_d.add(y, k);
                    }
                }
            }
            all.sort_by(f64::total_cmp);
            let e = agg.estimate();
            for (i, &q) in qs.iter().enumerate() {
                let truth = all[((q * all.len() as f64).ceil() as usize).clamp(1, all.len()) - 1];
                let est = e.quantiles.iter().find(|x| x.q == q).unwrap();
                if est.lower.is_nan() {
                    nan[i] += 1;
                } else if est.lower <= truth && truth <= est.upper {
                    covered[i] += 1;
                }
                let n = naive_d.quantile(q, Z95).unwrap();
                naive[i] += (n.lower <= truth && truth <= n.upper) as u32;
            }
        }
        for (i, q) in qs.iter().enumerate() {
            let cov = covered[i] as f64 / (trials - nan[i] as u64) as f64;
            println!(
                "q={q}: clustered coverage {cov:.3} ({} NaN), as if independent {:.3}",
                nan[i],
                naive[i] as f64 / trials as f64
            );
            assert!(cov >= 0.90, "q={q}: {cov}");
            assert!(
                nan[i] as f64 <= 0.1 * trials as f64,
                "q={q}: {} NaN",
                nan[i]
            );
        }
    }

    /// Review finding: in a keyed family, records sampled one by one (`record()` without a
    /// key, a sampled timer) keep their record-level variance beside the keyed records'
    /// cluster variance; before, the cluster sketch replaced all of it. 1,000 unkeyed
    /// records at 1/128 and one keyed record at 1/2: the standard error is the unkeyed
    /// records' `sqrt(1000·128·127)` plus the one key's `2·1·1²`, not the key's alone.
    #[test]
    fn keyed_families_keep_the_variance_of_their_unkeyed_records() {
        let t0 = Instant::now();
        let mut agg = SeriesAgg::new(t0, Duration::from_secs(60), DEFAULT_SPAN);
        for _ in 0..1000 {
            agg.absorb(&Record::new(1, 7, 1.0, 0, 0, false), 1.0);
        }
        agg.absorb(&Record::new(1, 1, 1.0, 42, 0, false).by_key(), 1.0);
        let e = agg.estimate();
        let expected = (1000.0 * 128.0 * 127.0 + 2.0f64).sqrt();
        // The one key's cluster variance is estimated by the sketch: exact for one key.
        assert!(
            (e.count_std_error - expected).abs() <= 1e-9 * expected,
            "{} vs {expected}",
            e.count_std_error
        );
    }

    /// A record drained after its series' last step ended goes to a step that starts then.
    /// Before, only a flush aged the window: a flusher kept draining by busy rings for a
    /// whole window put the records in the old step, and the next flush aged that step out
    /// with them (a 1,000-series test published no quantile for any series, 1 run in 2).
    #[test]
    fn records_drained_late_stay_in_the_window() {
        let t0 = Instant::now();
        let step = Duration::from_millis(100);
        let mut agg = SeriesAgg::new(t0, step, DEFAULT_SPAN);
        let r = Record {
            series: 1,
            k: 0,
            value: 2.5,
            key: 0,
            time_ns: 0,
            critical: false,
            keyed: false,
        };
        agg.take(&r, 1.0, t0 + step / 2, step, DEFAULT_SPAN);
        // Drained seven steps later, then a flush a moment after.
        let t1 = t0 + step * 7;
        agg.take(&r, 1.0, t1, step, DEFAULT_SPAN);
        agg.age(t1 + Duration::from_millis(1), step, DEFAULT_SPAN);
        let in_window = agg.window_weight();
        assert_eq!(
            in_window, 1.0,
            "the late record is in the window, the first aged out"
        );
        assert_eq!(agg.estimate().quantiles.len(), QUANTILES.len());
        // A whole window later with nothing drained, the flush ages it out.
        agg.age(t1 + step * 6, step, DEFAULT_SPAN);
        let in_window = agg.window_weight();
        assert_eq!(in_window, 0.0);
    }

    #[test]
    fn budget_shares_never_exceed_the_total_and_favour_no_one() {
        // Nothing to share among no one; one family gets it all when it needs it.
        assert!(share_budget(10.0, &[]).is_empty());
        assert_eq!(share_budget(10.0, &[100.0]), vec![10.0]);
        // Cheap families get 4× their demand; the expensive ones split the rest evenly.
        assert_eq!(
            share_budget(100.0, &[1.0, 1000.0, 2.0, 500.0]),
            vec![4.0, 44.0, 8.0, 44.0]
        );
        // Idle families (no demand) get nothing; a NaN demand gets an even part.
        assert_eq!(
            share_budget(9.0, &[0.0, f64::NAN, 100.0]),
            vec![0.0, 4.5, 4.5]
        );
        // Many random cases: the sum stays within the total, every share is ≥ 0.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..1000 {
            let n = (x % 9) as usize;
            let d: Vec<f64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 1000) as f64
                })
                .collect();
            let total = (x % 3000) as f64;
            let s = share_budget(total, &d);
            assert!(
                s.iter().sum::<f64>() <= total * (1.0 + 1e-12),
                "{d:?} {s:?}"
            );
            assert!(s.iter().all(|&v| v >= 0.0));
        }
    }

    /// Issue 13's calibration grid, keyed cases (the random-gap cases are
    /// `estimate::tests::calibration_quantile_intervals_cover_across_the_grid`; both run
    /// with `cargo test --release --lib calibration -- --nocapture`, which prints the
    /// table). 1,000 keys; a key's events number Zipf(1.1) (50,000 events in all, the
    /// heaviest key ~9,000) or geometric (mean 30, ~30,000 events); each key has a
    /// lognormal level (σ = 1) and its values sit at it (`tight`: within ±0.5%, under one
    /// bucket: a key is one value, the hard case) or spread around it (`loose`: lognormal,
    /// σ = 0.5 within the key); each key kept with p = 1/32 or 1/128 (the hash rule,
    /// simulated by a seeded draw per key), all events of a kept key recorded with weight
    /// `2^k` through the flusher's own path (`SeriesAgg::absorb` / `estimate`: the design
    /// effect from `ClusterVar`, then `quantile_clustered_df`). The truth is the events'
    /// own quantile (every key's, kept or not). A third law, 10,000 keys of geometric
    /// sizes with mean 5, keeps enough keys to bound p90.
    ///
    /// Before the Korn–Graubard cut (see `Distribution::quantile_clustered`), the Zipf
    /// `tight` p50 at 1/32 covered in 0.920 of 549 finite trials, under its bound 0.922:
    /// this test failed; now 0.938 of 340 (more trials say NaN: a few heavy keys are a
    /// few observations). Takes ~40 s in a release build on 2 cores.
    ///
    /// Every finite interval must cover the truth in ≥ `0.95 − 3·SE` of the trials that
    /// give one (`SE = sqrt(0.95·0.05/n)`; 1,000 trials per case in a release build, so
    /// ≥ 0.929 when all are finite; 50 in a debug build: ≥ 0.857; a case finite in fewer
    /// than 10 trials is NaN as it should be with so few kept keys and has nothing to
    /// cover), and no trial may give a finite zero-width interval around a wrong value.
    /// For a case whose coverage is exactly 95% the false-failure probability is ~0.13%
    /// (one-sided 3 SE), ~1% over the grid's cases that are bounded; seeds are fixed, so
    /// the outcome is deterministic.
    #[test]
    fn calibration_keyed_quantile_intervals_cover_across_the_grid() {
        use rand_core::{Rng, SeedableRng};
        use rand_xoshiro::Xoshiro256PlusPlus;
        let release = !cfg!(debug_assertions);
        let trials = if release { 1000u64 } else { 50 };
        let uniform =
            |rng: &mut Xoshiro256PlusPlus| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        // Box–Muller.
        let normal = |rng: &mut Xoshiro256PlusPlus| {
            let u1 = 1.0 - uniform(rng);
            let u2 = uniform(rng);
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        };
        let norm: f64 = (1..=1000).map(|r| (r as f64).powf(-1.1)).sum();
        let zipf: Vec<u64> = (1..=1000)
            .map(|r| ((r as f64).powf(-1.1) / norm * 50_000.0).round().max(1.0) as u64)
            .collect();
        let qs = QUANTILES;
        let t0 = Instant::now();
        let step = Duration::from_secs(60);
        let mut worst = (1.0f64, String::new());
        for (law, keys) in [("zipf", 1000), ("geometric", 1000), ("geometric", 10_000)] {
            for spread in ["tight", "loose"] {
                for k in [5u8, 7] {
                    let case_seed = (law == "zipf") as u64 * 4
                        + (spread == "tight") as u64 * 2
                        + (keys > 1000) as u64 * 8;
                    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1313 + case_seed + k as u64);
                    let (mut covered, mut finite) = ([0u32; 4], [0u32; 4]);
                    let mut events: Vec<f64> = Vec::new();
                    let mean_inv: f64 = if keys > 1000 { 1.0 / 5.0 } else { 1.0 / 30.0 };
                    for trial in 0..trials {
                        let mut agg = SeriesAgg::new(t0, step, DEFAULT_SPAN);
                        events.clear();
                        for key in 0..keys as u64 {
                            let n = match law {
                                "zipf" => zipf[key as usize],
                                // Geometric on 1, 2, … with mean 30 (5 for 10,000 keys).
                                _ => 1 + (uniform(&mut rng).ln() / (1.0 - mean_inv).ln()) as u64,
                            };
                            let level = normal(&mut rng).exp();
                            let kept = rng.next_u64() >> (64 - k) == 0;
                            let id = (trial << 32) | key | 1 << 63;
                            for _ in 0..n {
                                let y = match spread {
                                    "tight" => level * (1.0 + 0.01 * (uniform(&mut rng) - 0.5)),
                                    _ => level * (0.5 * normal(&mut rng)).exp(),
                                };
                                events.push(y);
                                if kept {
                                    agg.absorb(&Record::new(1, k, y, id, 0, false).by_key(), 1.0);
                                }
                            }
                        }
                        let e = agg.estimate();
                        for (i, &q) in qs.iter().enumerate() {
                            let Some(est) = e.quantiles.iter().find(|x| x.q == q) else {
                                continue; // no kept key: no quantile
                            };
                            if est.lower.is_nan() {
                                continue;
                            }
                            let rank = ((q * events.len() as f64).ceil() as usize).max(1) - 1;
                            let truth = *events.select_nth_unstable_by(rank, f64::total_cmp).1;
                            finite[i] += 1;
                            let case = format!("{law} {keys} {spread} p=1/{} q={q}", 1 << k);
                            if est.lower == est.upper {
                                assert_eq!(est.lower, truth, "{case}: {est:?}");
                            }
                            covered[i] += (est.lower <= truth && truth <= est.upper) as u32;
                        }
                    }
                    for (i, &q) in qs.iter().enumerate() {
                        let case = format!("keyed {law} {keys} keys {spread} p=1/{} q={q}", 1 << k);
                        if finite[i] < 10 {
                            println!("{case}: NaN in {} of {trials}", trials - finite[i] as u64);
                            continue;
                        }
                        let se = (0.95 * 0.05 / finite[i] as f64).sqrt();
                        let bound = 0.95 - 3.0 * se;
                        let cov = covered[i] as f64 / finite[i] as f64;
                        println!("{case}: {cov:.3} of {} finite", finite[i]);
                        if cov - bound < worst.0 {
                            worst = (cov - bound, case.clone());
                        }
                        assert!(cov >= bound, "{case}: coverage {cov:.3} < {bound:.3}");
                    }
                }
            }
        }
        println!("keyed: closest to its bound: {} ({:+.3})", worst.1, worst.0);
    }
}
