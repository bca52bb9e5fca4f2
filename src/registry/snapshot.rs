//! A point-in-time copy of every series' exact value, for tests and for the exporters.

use std::sync::atomic::Ordering;

use super::{Handle, LabelSet, Registry, overflow_labels};
use crate::metric::{HistogramConfig, HistogramSnapshot, MetricKind};
use crate::sample::sampled::cells as sampled_cells;
use crate::stats::{FlushStats, Published, SeriesEstimate};

/// One family's series as copied under the registry lock: handles, not yet values.
struct Pending {
    name: Box<str>,
    help: Option<Box<str>>,
    unit: Option<Box<str>>,
    kind: MetricKind,
    config: Option<HistogramConfig>,
    series: Vec<(LabelSet, Handle)>,
    overflow: Option<Handle>,
    folded: u64,
}

/// [`Registry::snapshot`]: the series list copied under the shared lock (Arc clones and
/// copies only), then sorted and read without it.
pub(super) fn take(registry: &Registry) -> Snapshot {
    let (mut pending, series_count) = copy_series(registry);
    // Sorted after the lock is released; the overflow series last.
    for p in &mut pending {
        p.series.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(h) = p.overflow {
            p.series.push((overflow_labels(), h));
        }
    }
    let published = registry.pipeline.published();
    let mut meta = MetaSnapshot {
        sampling: published.stats.clone(),
        arenas_created: crate::arena::local::arenas_created(),
        arenas_live: crate::arena::local::arenas_live(),
        registration_errors: registry.registration_errors.load(Ordering::Relaxed),
        series: series_count as u64,
        series_limited: registry.series_limited.load(Ordering::Relaxed),
        series_overflow: Vec::new(),
        histogram_invalid: Vec::new(),
    };
    let families = pending
        .into_iter()
        .map(|p| read_family(p, &published, &mut meta))
        .collect();
    Snapshot { families, meta }
}

/// Under the registry's read lock: every family's series handles and the registry-wide
/// series count.
fn copy_series(registry: &Registry) -> (Vec<Pending>, usize) {
    let inner = registry.read();
    let pending = inner
        .families
        .iter()
        .map(|(name, f)| {
            let series: Vec<(LabelSet, Handle)> =
                f.series.iter().map(|(l, h)| (l.clone(), *h)).collect();
            Pending {
                name: name.clone(),
                help: inner.help.get(name).cloned(),
                unit: inner.units.get(name).cloned(),
                kind: f.kind,
                config: f.histogram.clone(),
                series,
                overflow: f.overflow,
                folded: f.folded,
            }
        })
        .collect();
    (pending, inner.series)
}

/// One family's values, read from the arenas and the flusher's last report; its folded
/// and rejected counts go to `meta`.
fn read_family(p: Pending, published: &Published, meta: &mut MetaSnapshot) -> FamilySnapshot {
    if p.folded > 0 {
        meta.series_overflow.push((p.name.to_string(), p.folded));
    }
    let mut invalid = 0;
    let series = p
        .series
        .into_iter()
        .map(|(labels, handle)| SeriesSnapshot {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: read_value(handle, p.config.as_ref(), published, &mut invalid),
        })
        .collect();
    if invalid > 0 {
        meta.histogram_invalid.push((p.name.to_string(), invalid));
    }
    FamilySnapshot {
        name: p.name.into(),
        help: p.help.map(Into::into),
        unit: p.unit.map(Into::into),
        kind: p.kind,
        series,
    }
}

/// One series' value; a histogram's rejected observations are added to `invalid`.
fn read_value(
    handle: Handle,
    config: Option<&HistogramConfig>,
    published: &Published,
    invalid: &mut u64,
) -> Value {
    match handle {
        Handle::Counter(c) => Value::Counter(c.value()),
        Handle::Gauge(g) => Value::Gauge(g.value()),
        Handle::Histogram(h) => {
            let mut snap = h.snapshot_with(config.expect("histogram family"));
            *invalid += snap.invalid;
            if let Some(Some(s)) = h.series.exemplars.get()
                && let Some(e) = published.series.get(&s.series.base)
            {
                snap.exemplars = e.exemplars.clone();
            }
            Value::Histogram(snap)
        }
        Handle::Sampled(s) => {
            let series = s.series;
            let estimate = published
                .series
                .get(&series.base)
                .map(|e| SeriesEstimate::clone(e))
                .unwrap_or_default();
            Value::Sampled(SampledValue {
                count: series.cell(sampled_cells::COUNT),
                sum: series.sum(),
                rate: 0.5f64.powi(series.metric.k() as i32),
                pushed: series.cell(sampled_cells::PUSHED),
                flushed: estimate.records,
                dropped_full: series.cell(sampled_cells::DROP_FULL),
                dropped_oldest: series.cell(sampled_cells::DROP_OLDEST),
                dropped_timeout: series.cell(sampled_cells::DROP_TIMEOUT),
                critical_to_lane: series.cell(sampled_cells::TO_LANE),
                critical_lost: series.cell(sampled_cells::LANE_FULL),
                estimate,
            })
        }
    }
}

/// Every family of a registry with the exact value of each series.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Families sorted by name.
    pub families: Vec<FamilySnapshot>,
    /// The engine's own numbers.
    pub meta: MetaSnapshot,
}

/// One metric name and its series.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilySnapshot {
    /// The metric name.
    pub name: String,
    /// HELP text, if set with [`Registry::describe`](crate::Registry::describe).
    pub help: Option<String>,
    /// OpenMetrics unit, if set with
    /// [`Registry::describe_with_unit`](crate::Registry::describe_with_unit).
    pub unit: Option<String>,
    /// What kind of metric it is.
    pub kind: MetricKind,
    /// Series sorted by label set; an overflow series, if any, comes last.
    pub series: Vec<SeriesSnapshot>,
}

/// One series: its labels (sorted by name) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSnapshot {
    /// Label pairs sorted by name (values as stored, possibly truncated).
    pub labels: Vec<(String, String)>,
    /// The exact value.
    pub value: Value,
}

/// A series' value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's exact count.
    Counter(u64),
    /// A gauge's current value.
    Gauge(f64),
    /// A histogram's exact buckets, count and sum.
    Histogram(HistogramSnapshot),
    /// A sampled series: exact count and sum, its accounting, and the flusher's estimates.
    Sampled(SampledValue),
}

/// The state of one sampled series.
///
/// Accounting identities (exact once [`Engine::flush`](crate::Engine::flush) has drained
/// every ring): `count = skipped + pushed` and
/// `pushed = flushed + dropped_full + dropped_oldest + dropped_timeout + critical_lost`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SampledValue {
    /// Events seen (exact).
    pub count: u64,
    /// Sum of the values (exact for `record`; the Horvitz–Thompson estimate for sampled
    /// timers, whose unsampled calls never read the clock).
    pub sum: f64,
    /// The family's current sample probability.
    pub rate: f64,
    /// Events selected by the sampler, or critical: each one push attempt.
    pub pushed: u64,
    /// Records the flusher has drained (from the rings and the critical lane).
    pub flushed: u64,
    /// Records refused by a full ring (drop-newest policy).
    pub dropped_full: u64,
    /// Records discarded unread by a drop-oldest push.
    pub dropped_oldest: u64,
    /// Records that waited their timeout for space (block policy).
    pub dropped_timeout: u64,
    /// Critical records that went to the critical lane (and are then flushed from it).
    pub critical_to_lane: u64,
    /// Critical records lost because the lane was at its cap too.
    pub critical_lost: u64,
    /// The flusher's estimates as of its last flush.
    pub estimate: SeriesEstimate,
}

impl SampledValue {
    /// Events the sampler skipped: `count - pushed`. The two are read one after the other
    /// while writers run, so a snapshot may hold a `pushed` that counts events its `count`
    /// missed: the difference saturates at 0 then.
    pub fn skipped(&self) -> u64 {
        self.count.saturating_sub(self.pushed)
    }

    /// Records dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_full + self.dropped_oldest + self.dropped_timeout + self.critical_lost
    }
}

/// Meta-metrics of the exact layer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetaSnapshot {
    /// Arenas ever created in the process: bounded by the peak number of live recording
    /// threads, not by how many threads ever ran.
    pub arenas_created: usize,
    /// Arenas held by a live thread now.
    pub arenas_live: usize,
    /// Macro call sites whose registration failed (they record into a discard handle).
    pub registration_errors: u64,
    /// Series registered in the registry, overflow series included.
    pub series: u64,
    /// Label-set resolutions folded into an overflow series, and new metrics refused,
    /// because the registry held its `max_series` series (see
    /// [`Registry::with_limits`](crate::Registry::with_limits)).
    pub series_limited: u64,
    /// Per metric name, label-set resolutions folded into the overflow series (past the
    /// metric's cap or the registry's).
    pub series_overflow: Vec<(String, u64)>,
    /// Per histogram name, observations rejected (negative, NaN, infinite).
    pub histogram_invalid: Vec<(String, u64)>,
    /// The sampling pipeline, as of the last flush.
    pub sampling: FlushStats,
}

impl Snapshot {
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Value> {
        let mut wanted: Vec<(&str, &str)> = labels.to_vec();
        wanted.sort_by(|a, b| a.0.cmp(b.0));
        let family = self.families.iter().find(|f| f.name == name)?;
        family
            .series
            .iter()
            .find(|s| {
                s.labels.len() == wanted.len()
                    && s.labels
                        .iter()
                        .zip(&wanted)
                        .all(|((k, v), (wk, wv))| k == wk && v == wv)
            })
            .map(|s| &s.value)
    }

    /// The value of counter `name{labels}`, if it exists.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        match self.find(name, labels)? {
            Value::Counter(v) => Some(*v),
            _ => None,
        }
    }

    /// The value of gauge `name{labels}`, if it exists.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.find(name, labels)? {
            Value::Gauge(v) => Some(*v),
            _ => None,
        }
    }

    /// The state of histogram `name{labels}`, if it exists.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<&HistogramSnapshot> {
        match self.find(name, labels)? {
            Value::Histogram(h) => Some(h),
            _ => None,
        }
    }

    /// The state of sampled series `name{labels}`, if it exists.
    pub fn sampled(&self, name: &str, labels: &[(&str, &str)]) -> Option<&SampledValue> {
        match self.find(name, labels)? {
            Value::Sampled(s) => Some(s),
            _ => None,
        }
    }

    /// The family called `name`, if it exists.
    pub fn family(&self, name: &str) -> Option<&FamilySnapshot> {
        self.families.iter().find(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` and `pushed` are read one after the other while writers run, so a snapshot
    /// can hold a `pushed` that already includes events its `count` missed.
    #[test]
    fn skipped_does_not_underflow_when_pushed_was_read_later() {
        let v = SampledValue {
            count: 10,
            sum: 0.0,
            rate: 1.0,
            pushed: 12,
            flushed: 12,
            dropped_full: 0,
            dropped_oldest: 0,
            dropped_timeout: 0,
            critical_to_lane: 0,
            critical_lost: 0,
            estimate: SeriesEstimate::default(),
        };
        assert_eq!(v.skipped(), 0);
    }
}
