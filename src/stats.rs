//! The numbers the layers share: sampling rates as powers of two (`p = 2^-k`, with the
//! defaults and [`rate_to_k`] / [`k_to_rate`]) and the report the flusher publishes
//! ([`Published`]: per-series [`SeriesEstimate`]s and the pipeline's [`FlushStats`]).
//!
//! Plain data and pure functions, below the sampled layer and the flusher: the pipeline
//! holds the last [`Published`] report, the flusher writes it, snapshots and the exporters
//! read it, and none of them needs another to name it.

use std::collections::HashMap;
use std::sync::Arc;

/// The largest supported `k`: a record's weight `2^k` must fit a `u64`
/// (see [`Record::weight`](crate::sample::record::Record::weight)).
pub const MAX_K: u8 = 63;

/// The original system's base sample rate (3%); `DEFAULT_BASE_K` is its `k`.
pub const DEFAULT_BASE_RATE: f64 = 0.03;
/// The original system's minimum sample rate (1%); [`DEFAULT_MAX_K`] is its `k`.
pub const DEFAULT_MIN_RATE: f64 = 0.01;
/// The original system's maximum sample rate (15%); [`DEFAULT_MIN_K`] is its `k`.
pub const DEFAULT_MAX_RATE: f64 = 0.15;
/// `rate_to_k(DEFAULT_BASE_RATE)`: `2^-5` = 3.125%, what a new metric starts at by default
/// (the library converts the configured rate instead; the tests check this value).
#[cfg(test)]
pub const DEFAULT_BASE_K: u8 = 5;
/// `rate_to_k(DEFAULT_MAX_RATE)`: `2^-3` = 12.5%, the highest default sampling rate.
pub const DEFAULT_MIN_K: u8 = 3;
/// `rate_to_k(DEFAULT_MIN_RATE)`: `2^-7` ≈ 0.78%, the lowest default sampling rate.
pub const DEFAULT_MAX_K: u8 = 7;
/// The default overhead budget: the sampled layer may cost 1% of one core (recording
/// threads and flusher together).
pub const DEFAULT_OVERHEAD_BUDGET: f64 = 0.01;

/// Converts a sampling rate in `(0, 1]` to the `k` of the nearest power of two `2^-k`,
/// nearest in log space: `k = round(-log2(rate))`, ties going to the larger `k` (the lower
/// rate).
///
/// So `0.03 → 5` (`1/32` ≈ 3.1%), `0.15 → 3` (`1/8` = 12.5%) and `0.01 → 7` (`1/128` ≈
/// 0.78%: `log2(0.01) = -6.64` is 0.36 from −7 and 0.64 from −6, so the default minimum
/// rate ends up slightly below 1%).
///
/// # Errors
///
/// A rate that is not a number in `(0, 1]` (zero, negative, above 1, NaN, infinite), or one
/// so small that `k` would exceed 63 (`MAX_K`; below about `2^-63.5` ≈ 7.7e-20).
pub fn rate_to_k(rate: f64) -> Result<u8, RateError> {
    if !(rate > 0.0 && rate <= 1.0) {
        return Err(RateError::OutOfRange { rate });
    }
    let k = (-rate.log2()).round();
    if k > f64::from(MAX_K) {
        return Err(RateError::TooSmall { rate });
    }
    // Exact: `k` is an integer in 0..=63 here.
    Ok(k as u8)
}

/// Why [`rate_to_k`] refused a sampling rate.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum RateError {
    /// Not a number in `(0, 1]`: zero, negative, above 1, NaN or infinite.
    OutOfRange {
        /// The rate given.
        rate: f64,
    },
    /// So small that `k` would exceed 63 (`MAX_K`; below about `2^-63.5` ≈ 7.7e-20).
    TooSmall {
        /// The rate given.
        rate: f64,
    },
}

impl core::fmt::Display for RateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            RateError::OutOfRange { rate } => write!(
                f,
                "sample rate must be a number in (0, 1], such as 0.03 (rounded to the nearest \
                 power of two 2^-k); got {rate}"
            ),
            RateError::TooSmall { rate } => write!(
                f,
                "sample rate {rate} rounds to 2^-{}, past the smallest supported rate \
                 2^-{MAX_K} (about 1.1e-19); use a number in (0, 1], such as 0.03",
                (-rate.log2()).round()
            ),
        }
    }
}

impl std::error::Error for RateError {}

/// The sampling probability `2^-k` (exact in `f64`).
#[inline]
pub fn k_to_rate(k: u8) -> f64 {
    (-f64::from(k)).exp2()
}

/// What the last flush published: per sampled series, its estimates; and the pipeline's
/// meta-metrics. Immutable once published (readers clone an `Arc`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Published {
    /// Per sampled series (keyed by its first cell id), the estimates.
    pub series: HashMap<u32, Arc<SeriesEstimate>>,
    /// Pipeline meta-metrics.
    pub stats: FlushStats,
}

/// One estimated quantile with its rank interval. All three numbers are NaN when the
/// records cannot bound the quantile (too few of them: see
/// `flush::estimate::Distribution::quantile`); `records` says how many
/// there were.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Quantile {
    /// The quantile asked for, in (0, 1).
    pub q: f64,
    /// The estimate (interpolated within its histogram bucket).
    pub value: f64,
    /// Lower end of the ~95% interval: the exact binomial order-statistic interval for the
    /// rank, mapped to values through the histogram with its buckets' width.
    pub lower: f64,
    /// Upper end of that interval.
    pub upper: f64,
}

/// Estimates for one sampled series, from every record flushed so far.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SeriesEstimate {
    /// Records flushed (weights summed give the estimated count).
    pub records: u64,
    /// Effective sample size `(Σw)²/Σw²` of the records in the quantile window.
    pub n_eff: f64,
    /// Quantiles 0.5, 0.9, 0.99, 0.999 of the records in the quantile window
    /// ([`Config::quantile_window`](crate::Config::quantile_window)); none when it is empty.
    pub quantiles: Vec<Quantile>,
    /// Horvitz–Thompson estimate of the sum of values, and its standard error
    /// `sqrt(Σ w(w−1)y²)`.
    pub sum_estimate: f64,
    /// Standard error of `sum_estimate`.
    pub sum_std_error: f64,
    /// Estimated count from the records (`Σw`) and its standard error `sqrt(Σ w(w−1))`:
    /// compare with the exact count to see the sampling error. In a keyed family (keys kept
    /// or dropped whole) both standard errors are the cluster sample's, `Σ_kept keys
    /// w(w−1)·Y²` over each key's total `Y`, estimated in bounded memory (see
    /// `flush::estimate::ClusterVar`): right on average, but with few heavy keys the
    /// estimate is far from normal and `±1.96 SE` covers less than 95% (0.54 for Zipf(1.1)
    /// keys at 1/32).
    pub count_estimate: f64,
    /// Standard error of `count_estimate`.
    pub count_std_error: f64,
    /// A ~95% upper bound on the events the records stand for: the exact Poisson upper
    /// bound on the records, scaled by their mean weight; with no record at all, at the
    /// family's rate `p`, `ln(20)/p ≈ 3/p` (more events would have left a record with
    /// probability over 95%), and infinite for a keyed family (one dropped key may hold
    /// any number of events). So "0 records" never reads as "0 ± 0 events". Limits: the
    /// rate is the family's current one, not necessarily the one in force when the events
    /// happened; records a full ring dropped are not counted in it (they are in the
    /// series' accounting); and a keyed family's bound with records counts the kept keys'
    /// events only (a dropped key may still hold any number).
    pub count_upper: f64,
    /// Heaviest keys, heaviest first (see [`TopKey`]). In a keyed family every event of a
    /// kept key is kept, so a key's count is its events counted exactly (while it was kept;
    /// the space-saving overcount aside); a key the rule did not keep appears only with its
    /// critical events (never sampled out), however heavy. Otherwise each record counts
    /// `2^k` events and the bounds include the sampling error.
    pub top_keys: Vec<TopKey>,
    /// The latest keyed record per fine value bucket (at most
    /// `EXEMPLARS_PER_SERIES`, 256), in increasing value: exemplars.
    pub exemplars: Vec<ExemplarRecord>,
}

/// One of a series' heaviest keys.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TopKey {
    /// The key's hash.
    pub key: u64,
    /// The key as it was passed ([`SampleKey::write_label`](crate::SampleKey::write_label),
    /// at most 64 bytes), once a sampled event of it came after the flush that first
    /// reported it; `None` until then, and for a key type that writes no label.
    pub name: Option<std::sync::Arc<str>>,
    /// Its estimated events (records weighted `2^k`, or counted once each when kept by
    /// their key).
    pub count: f64,
    /// The space-saving overcount: how much of `count` may belong to keys it displaced.
    pub overcount: f64,
    /// A ~95% lower bound on the key's true events: `count − overcount`, less the sampling
    /// error (an exact Poisson bound on the records behind it). Equal to
    /// `count − overcount` when nothing was sampled out (a kept key of a keyed family, or a
    /// rate of 1).
    pub lower: f64,
    /// A ~95% upper bound on the key's true events: `count` plus the sampling error.
    pub upper: f64,
}

/// Most exemplars kept per series.
pub const EXEMPLARS_PER_SERIES: usize = 256;

/// One keyed sampled record kept as an exemplar.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ExemplarRecord {
    /// The observed value.
    pub value: f64,
    /// The key's hash.
    pub key: u64,
    /// Nanoseconds since the engine started.
    pub time_ns: u64,
}

/// Meta-metrics of the sampling pipeline, as of the last flush.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct FlushStats {
    /// Flushes done.
    pub flushes: u64,
    /// Records drained, ever (rings and lane).
    pub records_flushed: u64,
    /// Records drained in the last flush interval.
    pub last_records: u64,
    /// Duration of the last flush, seconds.
    pub last_duration_seconds: f64,
    /// Fill fraction of the fullest ring seen by any drain in the last interval (measured
    /// before draining), of what sampled records may fill: a drop-newest ring keeps its
    /// last eighth for critical records, and 1 means sampled records find it full.
    pub ring_utilization_max: f64,
    /// Mean over the last interval's drains of the mean ring fill.
    pub ring_utilization_mean: f64,
    /// Drains ever: one per flush plus one per early wake-up by a filling ring.
    pub drains: u64,
    /// Rings the flusher drains (one per thread that sampled, until it exits and is drained).
    pub rings: usize,
    /// Critical records waiting in the lane after the last flush (0 unless it is filling).
    pub lane_depth: usize,
    /// Critical records lost to a full lane, ever.
    pub lane_lost: u64,
    /// Estimated cost of hotmeter's recording, ns per call, from a calibration at start:
    /// `unsampled + p·(sampled − unsampled)` at the mean current rate.
    pub overhead_ns_per_call: f64,
    /// Per sampled family, the current sample probability.
    pub rates: Vec<(String, f64)>,
    /// CPU time spent draining and flushing, ever, in seconds: the flusher thread's, and
    /// that of threads calling [`Engine::flush`](crate::Engine::flush) or shutting down,
    /// read from the thread CPU clock (`CLOCK_THREAD_CPUTIME_ID` on Linux and Android; wall
    /// time elsewhere, an upper bound). Includes the last flush up to its publishing.
    pub cpu_seconds: f64,
    /// CPU nanoseconds per drained record over the last few flush intervals (early drains
    /// included): total CPU over total records drained, fixed per-flush costs included.
    /// NaN when those intervals drained nothing (0 before the first flush).
    pub ns_per_record: f64,
}
