//! The exposition model: what both text formats render, built from a [`Snapshot`].
//!
//! Every hotmeter metric becomes one or more Prometheus families of three types (counter,
//! gauge, histogram). Building the model is the only place that decides names and values;
//! the two encoders only format it, so both formats always carry the same series.

use std::time::SystemTime;

use super::write::format_float;
use crate::metric::MetricKind;
use crate::registry::{FamilySnapshot, MetaSnapshot, SampledValue, Snapshot, Value};

/// A Prometheus metric type as exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic count; exposed as `<name>_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative buckets, `_sum` and `_count`.
    Histogram,
    /// Quantiles (estimated), exact `_sum` and `_count`.
    Summary,
}

/// One exposed family.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family name: for counters without `_total` (the OpenMetrics family name).
    pub name: String,
    /// HELP text, unescaped.
    pub help: String,
    /// OpenMetrics unit (`# UNIT`); the name ends with `_<unit>` when set.
    pub unit: Option<String>,
    /// The type.
    pub kind: Kind,
    /// The series.
    pub series: Vec<Series>,
}

/// One series of a family.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Label pairs, unescaped, names unique and valid.
    pub labels: Vec<(String, String)>,
    /// The value; its variant matches the family's kind.
    pub value: Sample,
}

/// A series' value.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// A counter value.
    Counter(u64),
    /// A counter with a fractional value (seconds of CPU), finite and not negative.
    FloatCounter(f64),
    /// A gauge value.
    Gauge(f64),
    /// Per-bucket (not cumulative) counts in increasing `le`, the last `+Inf`; the exact
    /// count (the sum of the buckets) and sum; per bucket, at most one exemplar.
    Histogram {
        /// `(le, count in this bucket)`.
        buckets: Vec<(f64, u64)>,
        /// Sum of the bucket counts.
        count: u64,
        /// Sum of the observations.
        sum: f64,
        /// `(bucket index, exemplar)`, bucket indices increasing.
        exemplars: Vec<(usize, Exemplar)>,
    },
    /// A summary: `(quantile, estimate)` pairs, exact count and sum.
    Summary {
        /// `(q, value)` in increasing `q`.
        quantiles: Vec<(f64, f64)>,
        /// Events recorded.
        count: u64,
        /// Sum of the values.
        sum: f64,
    },
}

/// A sampled event attached to a histogram bucket (OpenMetrics only).
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// The label set: `key` = the event key's hash, 16 hex digits.
    pub labels: Vec<(String, String)>,
    /// The observed value.
    pub value: f64,
    /// When it was observed.
    pub timestamp: SystemTime,
}

/// The label value of a key hash: 16 lower-case hex digits.
pub fn key_label(hash: u64) -> String {
    format!("{hash:016x}")
}

/// The `key` label of each of a series' top keys: its name (the key as passed) when it has
/// one, else its hash ([`key_label`]). No two keys of one series share a label (else two
/// series of the family would have the same labels): a name that an earlier key already
/// shows (`7` the integer and `"7"` the string), or that reads like another key's hash,
/// gives way to the key's own hash.
pub fn top_key_labels(keys: &[crate::TopKey]) -> Vec<String> {
    let hashes: std::collections::HashSet<String> = keys.iter().map(|t| key_label(t.key)).collect();
    let mut used = std::collections::HashSet::new();
    keys.iter()
        .map(|t| match t.name.as_deref() {
            Some(name) if !hashes.contains(name) && used.insert(name) => name.to_string(),
            _ => key_label(t.key),
        })
        .collect()
}

/// `v` rounded to 15 significant digits: an estimate's last-bit noise
/// (`5.9000000000000008e-8` from an interpolation) is gone, so it is written in its shortest
/// form (`5.9e-8`). The change is below 1e-15 relative, far inside any estimate's error.
pub(crate) fn tidy(v: f64) -> f64 {
    match format!("{v:.14e}").parse::<f64>() {
        // Not past `f64::MAX` (which rounds up to infinity).
        Ok(t) if v.is_finite() && t.is_finite() => t,
        _ => v,
    }
}

fn float_label(v: f64) -> String {
    let mut s = String::new();
    format_float(&mut s, v);
    s
}

/// Appends `(name, value)` to a copy of `labels`.
fn with_label(labels: &[(String, String)], name: &str, value: String) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(labels.len() + 1);
    out.extend_from_slice(labels);
    out.push((name.to_string(), value));
    out
}

/// The gauge family beside a sampled metric's summary holding its quantiles' standard
/// errors: `<name>_quantile_std_error`.
pub(crate) const QUANTILE_STD_ERROR_SUFFIX: &str = "_quantile_std_error";
/// The gauge families beside a sampled metric's summary holding its quantiles' intervals:
/// `<name>_quantile_lower` and `<name>_quantile_upper`.
pub(crate) const QUANTILE_LOWER_SUFFIX: &str = "_quantile_lower";
pub(crate) const QUANTILE_UPPER_SUFFIX: &str = "_quantile_upper";
/// The gauge family beside a sampled metric's summary holding its top keys: `<name>_top_keys`.
pub(crate) const TOP_KEYS_SUFFIX: &str = "_top_keys";

/// Builds the model of a snapshot: every user family, then hotmeter's meta-metrics.
/// `start` is the wall-clock time the sampling pipeline's record times count from.
pub fn build(snapshot: Snapshot, start: SystemTime) -> Vec<Family> {
    let mut out = Vec::with_capacity(snapshot.families.len() + 24);
    let mut sampled_meta = SampledMeta::default();
    let Snapshot { families, meta } = snapshot;
    for f in families {
        match f.kind {
            MetricKind::Counter => out.push(counter_family(f)),
            MetricKind::Gauge => out.push(gauge_family(f)),
            MetricKind::Histogram => out.push(histogram_family(&f, start)),
            MetricKind::Sampled => {
                sampled_families(&f, &mut out);
                sampled_meta.add(&f);
            }
        }
    }
    meta_families(&meta, sampled_meta, &mut out);
    out
}

/// The family's HELP, or a default naming it and its kind (an empty HELP is legal, but
/// linters flag it).
fn help_of(f: &FamilySnapshot) -> String {
    f.help
        .clone()
        .unwrap_or_else(|| format!("{} {}", f.kind, f.name))
}

/// The family's unit, when its exposed name (a counter's without `_total`) ends with it
/// (checked by `describe_with_unit`; a gauge named `x_seconds_total` would not).
fn unit_of(f: &FamilySnapshot) -> Option<String> {
    let unit = f.unit.as_ref()?;
    let exposed = match f.kind {
        MetricKind::Counter => f.name.strip_suffix("_total").unwrap_or(&f.name),
        _ => &f.name,
    };
    exposed
        .strip_suffix(unit.as_str())
        .is_some_and(|rest| rest.ends_with('_'))
        .then(|| unit.clone())
}

fn counter_family(f: FamilySnapshot) -> Family {
    Family {
        name: f.name.strip_suffix("_total").unwrap_or(&f.name).to_string(),
        help: help_of(&f),
        unit: unit_of(&f),
        kind: Kind::Counter,
        series: f
            .series
            .into_iter()
            .filter_map(|s| match s.value {
                Value::Counter(v) => Some(Series {
                    labels: s.labels,
                    value: Sample::Counter(v),
                }),
                _ => None,
            })
            .collect(),
    }
}

fn gauge_family(f: FamilySnapshot) -> Family {
    Family {
        help: help_of(&f),
        unit: unit_of(&f),
        name: f.name,
        kind: Kind::Gauge,
        series: f
            .series
            .into_iter()
            .filter_map(|s| match s.value {
                Value::Gauge(v) => Some(Series {
                    labels: s.labels,
                    value: Sample::Gauge(v),
                }),
                _ => None,
            })
            .collect(),
    }
}

fn histogram_family(f: &FamilySnapshot, start: SystemTime) -> Family {
    let series = f
        .series
        .iter()
        .filter_map(|s| {
            let Value::Histogram(h) = &s.value else {
                return None;
            };
            let mut previous = 0;
            let buckets: Vec<(f64, u64)> = h
                .buckets
                .iter()
                .map(|&(le, cumulative)| {
                    let n = cumulative - previous;
                    previous = cumulative;
                    (le, n)
                })
                .collect();
            let exemplars = bucket_exemplars(&h.buckets, &h.exemplars, start);
            Some(Series {
                labels: s.labels.clone(),
                value: Sample::Histogram {
                    buckets,
                    count: h.count,
                    sum: h.sum,
                    exemplars,
                },
            })
        })
        .collect();
    Family {
        name: f.name.clone(),
        help: help_of(f),
        unit: unit_of(f),
        kind: Kind::Histogram,
        series,
    }
}

/// For each bucket the most recent exemplar whose value falls in it (by the records' stamps:
/// records stamped by the same flusher pass tie, and the first of them in value order,
/// the smallest, wins).
fn bucket_exemplars(
    buckets: &[(f64, u64)],
    exemplars: &[crate::flush::ExemplarRecord],
    start: SystemTime,
) -> Vec<(usize, Exemplar)> {
    let mut best: Vec<Option<&crate::flush::ExemplarRecord>> = vec![None; buckets.len()];
    for e in exemplars {
        let i = buckets.partition_point(|&(le, _)| le < e.value);
        if let Some(slot) = best.get_mut(i)
            && slot.is_none_or(|b| b.time_ns < e.time_ns)
        {
            *slot = Some(e);
        }
    }
    best.into_iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let e = e?;
            Some((
                i,
                Exemplar {
                    labels: vec![("key".to_string(), key_label(e.key))],
                    value: e.value,
                    timestamp: start + std::time::Duration::from_nanos(e.time_ns),
                },
            ))
        })
        .collect()
}

/// A sampled family: its summary, and the gauges of its quantiles' standard errors and
/// intervals and of its top keys.
fn sampled_families(f: &FamilySnapshot, out: &mut Vec<Family>) {
    let mut rows = SampledRows::default();
    for s in &f.series {
        let Value::Sampled(v) = &s.value else {
            continue;
        };
        rows.add(&s.labels, v);
    }
    rows.into_families(f, out);
}

/// The series of a sampled family's summary and of the gauge families beside it.
#[derive(Default)]
struct SampledRows {
    summaries: Vec<Series>,
    std_errors: Vec<Series>,
    lowers: Vec<Series>,
    uppers: Vec<Series>,
    keys: Vec<Series>,
}

/// A sampled series' quantiles; with no events in the quantile window, every quantile is
/// NaN (as OpenMetrics asks), so the series stay put instead of coming and going.
fn quantiles_or_nan(v: &SampledValue) -> Vec<crate::flush::Quantile> {
    if v.estimate.quantiles.is_empty() {
        crate::flush::flusher::QUANTILES
            .iter()
            .map(|&q| crate::flush::Quantile {
                q,
                value: f64::NAN,
                lower: f64::NAN,
                upper: f64::NAN,
            })
            .collect()
    } else {
        v.estimate.quantiles.clone()
    }
}

impl SampledRows {
    /// The rows of one sampled series, labelled `labels`.
    fn add(&mut self, labels: &[(String, String)], v: &SampledValue) {
        let quantiles = quantiles_or_nan(v);
        self.summaries.push(Series {
            labels: labels.to_vec(),
            value: Sample::Summary {
                quantiles: quantiles.iter().map(|q| (q.q, tidy(q.value))).collect(),
                count: v.count,
                sum: v.sum,
            },
        });
        for q in &quantiles {
            let labels = with_label(labels, "for_quantile", float_label(q.q));
            let se = tidy((q.upper - q.lower) / (2.0 * crate::flush::estimate::Z95));
            self.std_errors.push(Series {
                labels: labels.clone(),
                value: Sample::Gauge(se),
            });
            self.lowers.push(Series {
                labels: labels.clone(),
                value: Sample::Gauge(q.lower),
            });
            self.uppers.push(Series {
                labels,
                value: Sample::Gauge(q.upper),
            });
        }
        for (t, label) in v
            .estimate
            .top_keys
            .iter()
            .zip(top_key_labels(&v.estimate.top_keys))
        {
            self.keys.push(Series {
                labels: with_label(labels, "key", label),
                value: Sample::Gauge(t.count),
            });
        }
    }

    /// The summary family of `f` and the four gauge families beside it, into `out`.
    fn into_families(self, f: &FamilySnapshot, out: &mut Vec<Family>) {
        let name = &f.name;
        // The summary's HELP is exactly what `describe` set; without one, a default that
        // says what is exact and what estimated. The gauges beside it say what they hold.
        let described = f.help.clone();
        let help = described
            .clone()
            .unwrap_or_else(|| format!("sampled metric {name}"));
        let gauge = |suffix: &str, what: &str, series: Vec<Series>| Family {
            name: format!("{name}{suffix}"),
            help: format!("{help} ({what})"),
            unit: None,
            kind: Kind::Gauge,
            series,
        };
        out.push(Family {
            name: name.clone(),
            help: described.unwrap_or_else(|| format!(
                "{help} (quantiles estimated from sampled events; _count exact; _sum exact for recorded values, a Horvitz-Thompson estimate for sampled timers)"
            )),
            unit: unit_of(f),
            kind: Kind::Summary,
            series: self.summaries,
        });
        out.push(gauge(
            QUANTILE_STD_ERROR_SUFFIX,
            "standard error of each estimated quantile: its 95% rank interval's width / 3.92",
            self.std_errors,
        ));
        // The interval itself: it is not symmetric around the estimate (a tail quantile's
        // upper end is often much further), so a symmetric standard error alone misleads.
        out.push(gauge(
            QUANTILE_LOWER_SUFFIX,
            "lower end of each estimated quantile's 95% interval: the exact binomial rank interval, widened to its buckets' edges; NaN while too few records bound it",
            self.lowers,
        ));
        out.push(gauge(
            QUANTILE_UPPER_SUFFIX,
            "upper end of each estimated quantile's 95% interval",
            self.uppers,
        ));
        out.push(gauge(
            TOP_KEYS_SUFFIX,
            "estimated events of the heaviest keys; `key` is the key as passed, or its 64-bit hash in hex until it is named",
            self.keys,
        ));
    }
}

/// Per sampled family, the pipeline's accounting summed over its series.
#[derive(Default)]
struct SampledMeta {
    rows: Vec<(String, f64, SampledValueTotals)>,
}

#[derive(Default)]
struct SampledValueTotals {
    pushed: u64,
    flushed: u64,
    dropped_full: u64,
    dropped_oldest: u64,
    dropped_timeout: u64,
    critical_lost: u64,
    critical_to_lane: u64,
}

impl SampledMeta {
    fn add(&mut self, f: &FamilySnapshot) {
        let mut t = SampledValueTotals::default();
        let mut rate = f64::NAN;
        for s in &f.series {
            if let Value::Sampled(SampledValue {
                rate: r,
                pushed,
                flushed,
                dropped_full,
                dropped_oldest,
                dropped_timeout,
                critical_lost,
                critical_to_lane,
                ..
            }) = &s.value
            {
                rate = *r;
                t.pushed += pushed;
                t.flushed += flushed;
                t.dropped_full += dropped_full;
                t.dropped_oldest += dropped_oldest;
                t.dropped_timeout += dropped_timeout;
                t.critical_lost += critical_lost;
                t.critical_to_lane += critical_to_lane;
            }
        }
        self.rows.push((f.name.clone(), rate, t));
    }
}

fn metric_label(name: &str) -> Vec<(String, String)> {
    vec![("metric".to_string(), name.to_string())]
}

/// One series' labels and value.
pub(crate) type Row = (Vec<(String, String)>, Sample);

/// The rows of one meta family, from the engine's numbers and the sampled metrics' totals.
type Rows = fn(&MetaSnapshot, &SampledMeta) -> Vec<Row>;

/// An unlabelled row.
pub(crate) fn one(value: Sample) -> Vec<Row> {
    vec![(Vec::new(), value)]
}

/// One row per sampled metric, labelled `metric`, from its totals.
fn per_sampled(
    sampled: &SampledMeta,
    value: impl Fn(f64, &SampledValueTotals) -> Sample,
) -> Vec<Row> {
    sampled
        .rows
        .iter()
        .map(|(n, rate, t)| (metric_label(n), value(*rate, t)))
        .collect()
}

/// One row per metric of a `(metric, count)` list.
fn per_named(list: &[(String, u64)]) -> Vec<Row> {
    list.iter()
        .map(|(n, v)| (metric_label(n), Sample::Counter(*v)))
        .collect()
}

/// Every `hotmeter_*` family, in exposition order: name, HELP, type, rows.
const META: &[(&str, &str, Kind, Rows)] = {
    use Kind::{Counter, Gauge};
    &[
        (
            "hotmeter_arenas_created",
            "Per-thread arenas ever created (bounded by the peak number of live recording threads).",
            Counter,
            |m, _| one(Sample::Counter(m.arenas_created as u64)),
        ),
        (
            "hotmeter_arenas_live",
            "Arenas held by a live thread now.",
            Gauge,
            |m, _| one(Sample::Gauge(m.arenas_live as f64)),
        ),
        (
            "hotmeter_registration_errors",
            "Macro call sites whose registration failed (they record into a discard handle).",
            Counter,
            |m, _| one(Sample::Counter(m.registration_errors)),
        ),
        (
            "hotmeter_series",
            "Series registered (overflow series included), counted against the registry-wide cap.",
            Gauge,
            |m, _| one(Sample::Gauge(m.series as f64)),
        ),
        (
            "hotmeter_series_limited",
            "Label sets folded into an overflow series, and new metrics refused, because the registry-wide series cap was reached.",
            Counter,
            |m, _| one(Sample::Counter(m.series_limited)),
        ),
        (
            "hotmeter_series_overflow",
            "Label-set resolutions folded into a metric's overflow series (its series cap was reached).",
            Counter,
            |m, _| per_named(&m.series_overflow),
        ),
        (
            // Not `hotmeter_histogram_invalid`: promtool's lint refuses a metric type in a name.
            "hotmeter_rejected_observations",
            "Histogram observations rejected (negative, NaN or infinite), by histogram.",
            Counter,
            |m, _| per_named(&m.histogram_invalid),
        ),
        (
            "hotmeter_sample_rate",
            "Current sample probability of each sampled metric.",
            Gauge,
            |_, sampled| per_sampled(sampled, |rate, _| Sample::Gauge(rate)),
        ),
        (
            "hotmeter_sampled_events",
            "Events selected by the sampler (or critical) of each sampled metric: one push attempt each.",
            Counter,
            |_, sampled| per_sampled(sampled, |_, t| Sample::Counter(t.pushed)),
        ),
        (
            "hotmeter_flushed_records",
            "Records of each sampled metric drained and corrected by the flusher.",
            Counter,
            |_, sampled| per_sampled(sampled, |_, t| Sample::Counter(t.flushed)),
        ),
        (
            "hotmeter_critical_to_lane",
            "Critical records that overflowed their ring into the shared critical lane (not lost).",
            Counter,
            |_, sampled| per_sampled(sampled, |_, t| Sample::Counter(t.critical_to_lane)),
        ),
        (
            "hotmeter_dropped_records",
            "Sampled records dropped, by reason: ring full (drop-newest), evicted (drop-oldest), \
             timed out (block), critical lost (lane full).",
            Counter,
            |_, sampled| {
                sampled
                    .rows
                    .iter()
                    .flat_map(|(n, _, t)| {
                        [
                            ("full", t.dropped_full),
                            ("oldest", t.dropped_oldest),
                            ("timeout", t.dropped_timeout),
                            ("critical_lost", t.critical_lost),
                        ]
                        .map(|(reason, v)| {
                            (
                                with_label(&metric_label(n), "reason", reason.to_string()),
                                Sample::Counter(v),
                            )
                        })
                    })
                    .collect()
            },
        ),
        (
            "hotmeter_flushes",
            "Flushes done by the flusher.",
            Counter,
            |m, _| one(Sample::Counter(m.sampling.flushes)),
        ),
        (
            "hotmeter_flush_drains",
            "Ring drains: one per flush plus one per early wake-up by a filling ring.",
            Counter,
            |m, _| one(Sample::Counter(m.sampling.drains)),
        ),
        (
            "hotmeter_flush_records",
            "Records drained from the rings and the critical lane, ever.",
            Counter,
            |m, _| one(Sample::Counter(m.sampling.records_flushed)),
        ),
        (
            "hotmeter_flush_duration_seconds",
            "Duration of the last flush.",
            Gauge,
            |m, _| one(Sample::Gauge(m.sampling.last_duration_seconds)),
        ),
        (
            "hotmeter_ring_utilization",
            "Ring fill fraction seen by the last interval's drains (1: sampled records find it full), the fullest ring and the mean.",
            Gauge,
            |m, _| {
                [
                    ("max", m.sampling.ring_utilization_max),
                    ("mean", m.sampling.ring_utilization_mean),
                ]
                .map(|(stat, v)| {
                    (
                        vec![("stat".to_string(), stat.to_string())],
                        Sample::Gauge(v),
                    )
                })
                .into()
            },
        ),
        (
            "hotmeter_rings",
            "Rings the flusher drains (one per thread that sampled).",
            Gauge,
            |m, _| one(Sample::Gauge(m.sampling.rings as f64)),
        ),
        (
            "hotmeter_lane_depth",
            "Critical records waiting in the lane after the last flush.",
            Gauge,
            |m, _| one(Sample::Gauge(m.sampling.lane_depth as f64)),
        ),
        (
            "hotmeter_lane_lost",
            "Critical records lost to a full critical lane, ever.",
            Counter,
            |m, _| one(Sample::Counter(m.sampling.lane_lost)),
        ),
        (
            "hotmeter_flusher_cpu_seconds",
            "CPU time the flusher spent draining, correcting and publishing (thread CPU clock; \
             includes Engine::flush calls on other threads).",
            Counter,
            // Not negative, finite: a sum of clock differences.
            |m, _| one(Sample::FloatCounter(m.sampling.cpu_seconds.max(0.0))),
        ),
        (
            "hotmeter_flusher_cpu_seconds_per_record",
            "Flusher CPU time per drained record over the last 8 flush intervals (NaN when they \
             drained nothing).",
            Gauge,
            |m, _| one(Sample::Gauge(m.sampling.ns_per_record * 1e-9)),
        ),
        (
            "hotmeter_recording_overhead_seconds",
            "Estimated cost of one sampled-layer call at the current rates, from a calibration at start.",
            Gauge,
            |m, _| one(Sample::Gauge(m.sampling.overhead_ns_per_call * 1e-9)),
        ),
    ]
};

/// A family of these rows.
pub(crate) fn family(name: &str, help: &str, kind: Kind, rows: Vec<Row>) -> Family {
    Family {
        name: name.to_string(),
        help: help.to_string(),
        // hotmeter's own durations (`hotmeter_flush_duration_seconds`, ...).
        unit: name.ends_with("_seconds").then(|| "seconds".to_string()),
        kind,
        series: rows
            .into_iter()
            .map(|(labels, value)| Series { labels, value })
            .collect(),
    }
}

/// The `hotmeter_*` families (see [`META`]).
fn meta_families(m: &MetaSnapshot, sampled: SampledMeta, out: &mut Vec<Family>) {
    out.extend(
        META.iter()
            .map(|&(name, help, kind, rows)| family(name, help, kind, rows(m, &sampled))),
    );
}

/// What the engine's configuration asks of a rendering, applied to every family (the
/// registry's, its meta-metrics, and the layers' extra ones): only the `hotmeter_*`
/// families `meta` selects, and the global labels on every series that lacks a label of
/// that name (a series' own label wins).
pub(crate) fn finish(
    families: &mut Vec<Family>,
    global_labels: &[(String, String)],
    meta: crate::config::MetaMetrics,
) {
    use crate::config::{ESSENTIAL_META_METRICS, MetaMetrics};
    let is_meta = |f: &Family| f.name.starts_with(crate::names::RESERVED_PREFIX);
    match meta {
        MetaMetrics::All => {}
        MetaMetrics::Essential => {
            families.retain(|f| !is_meta(f) || ESSENTIAL_META_METRICS.contains(&f.name.as_str()));
        }
        MetaMetrics::None => families.retain(|f| !is_meta(f)),
    }
    if global_labels.is_empty() {
        return;
    }
    for s in families.iter_mut().flat_map(|f| f.series.iter_mut()) {
        let before = s.labels.len();
        for (k, v) in global_labels {
            if !s.labels[..before].iter().any(|(a, _)| a == k) {
                s.labels.push((k.clone(), v.clone()));
            }
        }
        s.labels.sort_by(|a, b| a.0.cmp(&b.0));
    }
}
