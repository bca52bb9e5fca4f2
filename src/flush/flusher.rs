//! The flusher's state and one flush: drain, correct, adapt, publish.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::{FlushStats, Published, SeriesEstimate};
use crate::registry::Registry;
use crate::sample::record::Record;
use crate::sample::ring::Consumer;

/// Per sampled series, what the flusher accumulates from its records.
#[derive(Debug, Default)]
struct SeriesAgg {
    records: u64,
    /// Σw, Σw², Σwy, Σw(w−1), Σw(w−1)y² over records (w = 2^k).
    sum_w: f64,
    sum_w2: f64,
    sum_wy: f64,
    var_count: f64,
    var_sum: f64,
}

impl SeriesAgg {
    fn absorb(&mut self, r: &Record) {
        let w = r.weight() as f64;
        let y = r.value;
        self.records += 1;
        self.sum_w += w;
        self.sum_w2 += w * w;
        self.sum_wy += w * y;
        self.var_count += w * (w - 1.0);
        self.var_sum += w * (w - 1.0) * y * y;
    }

    fn estimate(&self) -> SeriesEstimate {
        SeriesEstimate {
            records: self.records,
            n_eff: if self.sum_w2 > 0.0 {
                self.sum_w * self.sum_w / self.sum_w2
            } else {
                0.0
            },
            sum_estimate: self.sum_wy,
            sum_std_error: self.var_sum.sqrt(),
            count_estimate: self.sum_w,
            count_std_error: self.var_count.sqrt(),
            ..SeriesEstimate::default()
        }
    }
}

/// Everything the flusher keeps between flushes. Behind a mutex shared by the flusher
/// thread and `Engine::flush`.
#[derive(Default)]
pub(crate) struct FlushState {
    consumers: Vec<Consumer>,
    series: HashMap<u32, SeriesAgg>,
    stats: FlushStats,
    /// Calibrated recording cost (ns): a call not sampled, a sampled call.
    calibration: (f64, f64),
}

impl FlushState {
    /// An empty state with the recording cost calibrated at start.
    pub(crate) fn new(calibration: (f64, f64)) -> Self {
        Self {
            calibration,
            ..Self::default()
        }
    }

    /// Drains every ring of `registry`'s pipeline and its critical lane, updates the
    /// estimates and the rate, and publishes the result.
    pub(crate) fn flush(&mut self, registry: &Registry) {
        let start = Instant::now();
        let pipeline = registry.pipeline();
        self.consumers.extend(pipeline.take_new_rings());
        let mut consumers = std::mem::take(&mut self.consumers);
        let series = &mut self.series;
        let mut drained = 0u64;
        let mut absorb = |r: Record| {
            series.entry(r.series).or_default().absorb(&r);
            drained += 1;
        };
        let (mut fill_max, mut fill_sum) = (0f64, 0f64);
        consumers.retain_mut(|c| {
            let fill = c.len() as f64 / c.capacity() as f64;
            fill_max = fill_max.max(fill);
            fill_sum += fill;
            // Checked before draining: once abandoned, nothing new can arrive, so the
            // drain below empties it for good.
            let abandoned = c.is_abandoned();
            c.drain(usize::MAX, &mut absorb);
            !abandoned
        });
        while let Some(r) = pipeline.lane.pop() {
            absorb(r);
        }
        let rings = consumers.len();
        self.consumers = consumers;

        let sampled = registry.sampled_series();
        let published_series = sampled
            .iter()
            .map(|(_, _, s)| {
                let base = s.series.base;
                let est = self
                    .series
                    .get(&base)
                    .map(SeriesAgg::estimate)
                    .unwrap_or_default();
                (base, est)
            })
            .collect();
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
        stats.ring_utilization_max = fill_max;
        stats.ring_utilization_mean = if rings == 0 {
            0.0
        } else {
            fill_sum / rings as f64
        };
        stats.rings = rings;
        stats.lane_depth = pipeline.lane.len();
        stats.lane_lost = pipeline.lane.lost();
        stats.overhead_ns_per_call = unsampled + mean_p * (sampled_ns - unsampled).max(0.0);
        stats.rates = rates;
        stats.last_duration_seconds = start.elapsed().as_secs_f64();
        pipeline.publish(Arc::new(Published {
            series: published_series,
            stats: stats.clone(),
        }));
    }
}
