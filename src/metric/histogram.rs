//! A histogram with fixed log-linear buckets (HdrHistogram's layout: a power-of-two range
//! split into `2^SUB_BITS` linear sub-buckets), each bucket a cell in every thread's arena.
//!
//! For an `f64` the power-of-two range *is* the exponent field and the linear sub-bucket the
//! top mantissa bits, so a value's bucket is one shift of its bit pattern (the float
//! analogue of HdrHistogram's `leading_zeros` + shift), a subtraction and a clamp: no search,
//! no `log`. Bucket `i` holds values in `(lower_i, upper_i]`, matching Prometheus' `le`.

use std::sync::OnceLock;

use crate::sample::key::SampleKey;
use crate::sample::pipeline::SampledMetric;
use crate::sample::sampled::Sampled;

use crate::arena::local::{ARENAS, with_arena};
use crate::error::{Error, Result};

/// Linear sub-buckets per power of two: 2^3 = 8, so a bucket is at most 12.5% wide.
pub(crate) const SUB_BITS: u32 = 3;
const SUBS: i64 = 1 << SUB_BITS;
/// Bit pattern of `f64::INFINITY`: every pattern at or above it is +inf, NaN, or negative.
const INF_BITS: u64 = 0x7ff0_0000_0000_0000;
/// Most fine buckets one histogram may have: 63 powers of two. With its two other cells a
/// series then fills at most one 512-cell chunk, so recording needs one chunk lookup.
const MAX_FINE_BUCKETS: usize = 2 + 63 * SUBS as usize;

/// Cell offsets inside one histogram series.
const SUM: u32 = 0;
const INVALID: u32 = 1;
const FIRST_BUCKET: u32 = 2;

/// Most bounds of a histogram with exact bounds ([`HistogramConfig::buckets`]): its cells
/// (the bounds, `+Inf`, sum, rejected) then fit one 512-cell chunk.
pub const MAX_EXACT_BOUNDS: usize = 256;

/// The bucket range and the exported `le` boundaries of a histogram.
///
/// Two kinds:
///
/// - **Fine** ([`HistogramConfig::seconds`], [`HistogramConfig::range`]): buckets cover
///   `[2^low, 2^high]` with 8 linear sub-buckets per power of two, plus an underflow bucket
///   `[0, 2^low]` and an overflow bucket `(2^high, +inf)`; the exported boundaries are
///   fine-bucket edges ([`HistogramConfig::with_bounds`] rounds a requested boundary *up* to
///   the nearest edge), so every exported cumulative count is exact.
/// - **Exact bounds** ([`HistogramConfig::buckets`]): one bucket per boundary you give, as
///   Prometheus client libraries do: `le="0.005"` is exported as `0.005`, and the count at
///   it is exact. A value's bucket is a binary search over the bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramConfig {
    low_exp: i32,
    high_exp: i32,
    /// Exported boundaries as bucket indices (strictly increasing, none the overflow).
    export: Vec<u32>,
    /// Exact bounds, sorted and distinct, when the buckets are the user's own.
    exact: Option<&'static [f64]>,
}

impl Default for HistogramConfig {
    fn default() -> Self {
        Self::seconds()
    }
}

impl HistogramConfig {
    /// The default, for durations in seconds: fine buckets from 2^-20 s (~0.95 µs) to
    /// 2^7 s (128 s), exported at every power of two in between (28 boundaries plus `+Inf`).
    pub fn seconds() -> Self {
        Self::with_exponents(-20, 7).expect("the default range is valid")
    }

    /// Buckets at exactly these upper bounds (plus `+Inf`), in any order; duplicates are
    /// merged. For a Prometheus dashboard's `le="0.1"` to match, ask for `0.1`.
    ///
    /// # Errors
    /// [`Error::InvalidHistogramConfig`] if there is no bound, a bound is negative, NaN or
    /// infinite (`+Inf` is always there), or there are more than [`MAX_EXACT_BOUNDS`].
    pub fn buckets(bounds: &[f64]) -> Result<Self> {
        if bounds.is_empty() {
            return Err(Error::InvalidHistogramConfig(
                "buckets needs at least one bound (+Inf is implied)".into(),
            ));
        }
        if let Some(b) = bounds.iter().find(|b| !b.is_finite() || **b < 0.0) {
            return Err(Error::InvalidHistogramConfig(format!(
                "bucket bound {b} must be finite and non-negative (observations are; +Inf is implied)"
            )));
        }
        // `+ 0.0` turns -0.0 into 0.0, so a zero bound is exported as `0`.
        let mut sorted: Vec<f64> = bounds.iter().map(|b| b + 0.0).collect();
        sorted.sort_by(f64::total_cmp);
        sorted.dedup();
        if sorted.len() > MAX_EXACT_BOUNDS {
            return Err(Error::InvalidHistogramConfig(format!(
                "{} bucket bounds; at most {MAX_EXACT_BOUNDS} are allowed",
                sorted.len()
            )));
        }
        let n = sorted.len() as u32;
        let exact = intern_bounds(sorted);
        Ok(Self {
            low_exp: 0,
            high_exp: 0,
            export: (0..n).collect(),
            exact: Some(exact),
        })
    }

    /// Fine buckets covering `[min, max]`, widened to powers of two, exported at every power
    /// of two in the range.
    ///
    /// # Errors
    /// [`Error::InvalidHistogramConfig`] if `min`/`max` are not finite, `0 < min < max` does
    /// not hold, or the range needs more than 63 powers of two (506 fine buckets).
    pub fn range(min: f64, max: f64) -> Result<Self> {
        if !(min.is_finite() && max.is_finite() && min > 0.0 && min < max) {
            return Err(Error::InvalidHistogramConfig(format!(
                "range needs finite 0 < min < max, got min={min}, max={max}"
            )));
        }
        if min < f64::MIN_POSITIVE {
            return Err(Error::InvalidHistogramConfig(format!(
                "min={min} is subnormal; the smallest allowed is {}",
                f64::MIN_POSITIVE
            )));
        }
        Self::with_exponents(min.log2().floor() as i32, max.log2().ceil() as i32)
    }

    fn with_exponents(low_exp: i32, high_exp: i32) -> Result<Self> {
        let low_exp = low_exp.max(-1022);
        let high_exp = high_exp.min(1023);
        let fine = 2 + (high_exp as i64 - low_exp as i64) * SUBS;
        if high_exp <= low_exp || fine as usize > MAX_FINE_BUCKETS {
            return Err(Error::InvalidHistogramConfig(format!(
                "range 2^{low_exp}..2^{high_exp} needs {fine} buckets; at most {MAX_FINE_BUCKETS} are allowed"
            )));
        }
        let mut config = Self {
            low_exp,
            high_exp,
            export: Vec::new(),
            exact: None,
        };
        config.export = (low_exp..=high_exp)
            .map(|e| config.layout().bucket(2f64.powi(e)))
            .collect();
        Ok(config)
    }

    /// Replaces the exported boundaries. Each is rounded up to the nearest fine-bucket edge;
    /// duplicates after rounding are merged. `+Inf` is always exported and need not be given.
    ///
    /// # Errors
    /// [`Error::InvalidHistogramConfig`] if a boundary is not finite, is negative, or lies
    /// above the top of the range.
    pub fn with_bounds(mut self, bounds: &[f64]) -> Result<Self> {
        if self.exact.is_some() {
            return Err(Error::InvalidHistogramConfig(
                "with_bounds rounds to fine-bucket edges; an exact-bounds configuration \
                 takes its bounds in HistogramConfig::buckets"
                    .into(),
            ));
        }
        let layout = self.layout();
        let mut export = Vec::with_capacity(bounds.len());
        for &b in bounds {
            if !b.is_finite() || b < 0.0 {
                return Err(Error::InvalidHistogramConfig(format!(
                    "boundary {b} must be finite and non-negative"
                )));
            }
            let i = layout.bucket(b);
            if i == layout.last {
                return Err(Error::InvalidHistogramConfig(format!(
                    "boundary {b} is above the range's top 2^{}",
                    self.high_exp
                )));
            }
            export.push(i);
        }
        export.sort_unstable();
        export.dedup();
        self.export = export;
        Ok(self)
    }

    /// The exported `le` boundaries (excluding `+Inf`), in increasing order.
    pub fn bounds(&self) -> Vec<f64> {
        let layout = self.layout();
        self.export.iter().map(|&i| layout.upper_edge(i)).collect()
    }

    /// Buckets in this layout, the overflow (`+Inf`) one included (cells per histogram
    /// series are this plus two).
    pub fn fine_buckets(&self) -> usize {
        self.layout().last as usize + 1
    }

    pub(crate) fn layout(&self) -> Layout {
        if let Some(exact) = self.exact {
            return Layout {
                low_exp: 0,
                key_low: 0,
                last: exact.len() as u32,
                exact: Some(exact),
            };
        }
        Layout {
            low_exp: self.low_exp,
            key_low: ((self.low_exp as i64 + 1023) << SUB_BITS) - 1,
            last: (1 + (self.high_exp as i64 - self.low_exp as i64) * SUBS) as u32,
            exact: None,
        }
    }

    pub(crate) fn cells(&self) -> u32 {
        FIRST_BUCKET + self.layout().last + 1
    }

    pub(crate) fn export_indices(&self) -> &[u32] {
        &self.export
    }
}

/// Bucket arithmetic for one configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Layout {
    low_exp: i32,
    /// `key(2^low)` minus one: subtracting it maps the first linear bucket to index 1.
    key_low: i64,
    /// Index of the overflow bucket.
    last: u32,
    /// Exact bounds (then bucket `i` is `(bounds[i-1], bounds[i]]`, `last` is their count).
    exact: Option<&'static [f64]>,
}

impl Layout {
    /// The bucket of a finite, non-negative `v`: `(lower, upper]` semantics. Taking the key
    /// of the next float *below* `v` (bits - 1) turns the exponent/mantissa split, which is
    /// `[lower, upper)`, into `(lower, upper]`. Zero saturates to key 0, the underflow bucket.
    #[inline(always)]
    pub(crate) fn bucket(&self, v: f64) -> u32 {
        if let Some(exact) = self.exact {
            return exact_bucket(exact, v);
        }
        let key = (v.to_bits().saturating_sub(1) >> (52 - SUB_BITS)) as i64;
        (key - self.key_low).clamp(0, self.last as i64) as u32
    }

    /// Whether a [`HistogramSeries::packed_layout`] word is of exact bounds.
    #[inline(always)]
    pub(crate) fn is_exact_packed(packed: u64) -> bool {
        (packed as i64) < 0
    }

    /// [`Layout::bucket`] from a [`HistogramSeries::packed_layout`] word.
    #[inline(always)]
    pub(crate) fn bucket_packed(packed: u64, v: f64) -> u32 {
        if (packed as i64) < 0 {
            return exact_bucket_packed(packed, v);
        }
        let key = (v.to_bits().saturating_sub(1) >> (52 - SUB_BITS)) as i64;
        let key_low = packed as u32 as i64;
        let last = (packed >> 32) as i64;
        (key - key_low).clamp(0, last) as u32
    }

    /// The inclusive upper edge of bucket `i` (`+inf` for the overflow bucket).
    pub(crate) fn upper_edge(&self, i: u32) -> f64 {
        if i >= self.last {
            return f64::INFINITY;
        }
        if let Some(exact) = self.exact {
            return exact[i as usize];
        }
        if i == 0 {
            return 2f64.powi(self.low_exp);
        }
        let octave = (i as i64 - 1) / SUBS;
        let sub = (i as i64 - 1) % SUBS;
        2f64.powi(self.low_exp + octave as i32) * (1.0 + (sub + 1) as f64 / SUBS as f64)
    }
}

/// `bounds` as a `'static` slice (series point at their bounds for the process's life),
/// shared by every configuration with the same bounds: making one in a loop does not leak.
fn intern_bounds(bounds: Vec<f64>) -> &'static [f64] {
    static INTERNED: std::sync::Mutex<Vec<&'static [f64]>> = std::sync::Mutex::new(Vec::new());
    let mut interned = INTERNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let same = |b: &[f64]| {
        b.len() == bounds.len()
            && b.iter()
                .zip(&bounds)
                .all(|(x, y)| x.to_bits() == y.to_bits())
    };
    if let Some(b) = interned.iter().find(|b| same(b)) {
        return b;
    }
    let b: &'static [f64] = Box::leak(bounds.into_boxed_slice());
    interned.push(b);
    b
}

/// The bucket of `v` among exact `bounds`: the first bound at or above `v` (`le`
/// semantics), or the overflow bucket past the last.
#[inline]
fn exact_bucket(bounds: &[f64], v: f64) -> u32 {
    bounds.partition_point(|&b| b < v) as u32
}

/// [`exact_bucket`] from a slot word made by [`HistogramSeries::packed_layout`].
#[inline(never)]
fn exact_bucket_packed(packed: u64, v: f64) -> u32 {
    let series = (packed & !(1 << 63)) as usize as *const HistogramSeries;
    // SAFETY: `packed_layout` put the address of a `&'static HistogramSeries` (leaked by the
    // registry, never freed) below the tag bit.
    let series = unsafe { &*series };
    series
        .layout
        .exact
        .map_or(0, |bounds| exact_bucket(bounds, v))
}

/// One registered histogram series: where its cells start and its bucket layout.
#[derive(Debug)]
pub(crate) struct HistogramSeries {
    pub(crate) base: u32,
    pub(crate) layout: Layout,
    /// The family's exemplar sampler (a hidden sampled family in the same pipeline), absent
    /// for registries whose histograms carry no exemplars.
    pub(crate) exemplar_metric: Option<&'static SampledMetric>,
    /// This series' exemplar sampler: sampled cells allocated on the first keyed record
    /// (`None` inside if the cell space was exhausted then).
    pub(crate) exemplars: OnceLock<Option<Sampled>>,
}

impl HistogramSeries {
    /// The layout in one word, for a call site's slot (see [`Layout::bucket_packed`]): for
    /// fine buckets `key_low` and `last` (`key_low` is in 7..=16_375, exponents
    /// -1022..=1023, so it fits the low half, and `last` < 2^31 leaves the top bit clear);
    /// for exact bounds the top bit and this series' address.
    pub(crate) fn packed_layout(&'static self) -> u64 {
        match self.layout.exact {
            Some(_) => 1 << 63 | core::ptr::from_ref(self) as usize as u64,
            None => self.layout.key_low as u32 as u64 | (self.layout.last as u64) << 32,
        }
    }

    /// The exemplar sampler, allocating it on first use.
    #[cold]
    fn exemplar_sampler(&'static self) -> Option<Sampled> {
        *self.exemplars.get_or_init(|| {
            let metric = self.exemplar_metric?;
            crate::sample::pipeline::new_sampled_series(metric).ok()
        })
    }
}

/// A handle to one histogram series.
///
/// `record` is a shift and a clamp to find the bucket, then two single-writer adds (the
/// bucket and the sum) into the calling thread's arena. `count` is not a cell of its own: it
/// is the sum of the buckets at read time, so `+Inf == count` holds in every snapshot.
///
/// Negative values, NaN and ±infinity are *rejected*: they touch no bucket, neither count
/// nor sum, and are counted in the series' `invalid` cell (see
/// [`HistogramSnapshot::invalid`]). `-0.0` is recorded as `0.0`.
#[derive(Debug, Clone, Copy)]
pub struct Histogram {
    pub(crate) series: &'static HistogramSeries,
}

impl Histogram {
    /// The cell offset of the sum in a series.
    pub(crate) const SUM_CELL: u32 = SUM;
    /// The cell offset of the first bucket in a series.
    pub(crate) const FIRST_BUCKET_CELL: u32 = FIRST_BUCKET;

    /// Whether `v` is recorded as it is: finite and non-negative (not `-0.0` either, which
    /// takes the unusual path to become `0.0`).
    #[inline(always)]
    pub(crate) fn is_usual(v: f64) -> bool {
        v.to_bits() < INF_BITS
    }

    /// Records one observation.
    #[inline]
    pub fn record(self, v: f64) {
        if cfg!(hotmeter_disabled) {
            return;
        }
        if v.to_bits() >= INF_BITS {
            return self.record_unusual(v);
        }
        let s = self.series;
        let bucket = s.layout.bucket(v);
        with_arena(|arena| {
            let cells = arena.block(s.base);
            cells.add_f64(SUM, v);
            cells.add(FIRST_BUCKET + bucket, 1);
        });
    }

    /// Records one observation with a key (a trace or request id): exactly like
    /// [`Histogram::record`], and a random sample of keyed observations (at the engine's
    /// sample rate, adapted like any sampled metric) becomes the bucket's *exemplar* in the
    /// OpenMetrics exposition: `# {key="<hash>"} value timestamp` after the bucket line.
    #[inline]
    pub fn record_keyed<K: SampleKey + ?Sized>(self, v: f64, key: &K) {
        self.record(v);
        self.record_exemplar(v, key);
    }

    /// The exemplar half of [`Histogram::record_keyed`].
    #[inline]
    pub(crate) fn record_exemplar<K: SampleKey + ?Sized>(self, v: f64, key: &K) {
        if cfg!(hotmeter_disabled) {
            return;
        }
        if v.to_bits() >= INF_BITS {
            return;
        }
        let sampler = match self.series.exemplars.get() {
            Some(s) => *s,
            None => self.series.exemplar_sampler(),
        };
        if let Some(s) = sampler {
            s.record_keyed(v, key);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_unusual(self, v: f64) {
        if v == 0.0 {
            // -0.0
            return self.record(0.0);
        }
        let s = self.series;
        with_arena(|arena| arena.add(s.base + INVALID, 1));
    }

    /// Per fine bucket, the exact number of observations (not cumulative).
    pub fn fine_counts(self) -> Vec<u64> {
        let s = self.series;
        (0..=s.layout.last)
            .map(|i| ARENAS.sum(s.base + FIRST_BUCKET + i))
            .collect()
    }

    /// The exact state of this series, exported at `config`'s boundaries.
    pub(crate) fn snapshot_with(self, config: &HistogramConfig) -> HistogramSnapshot {
        let s = self.series;
        let fine = self.fine_counts();
        let mut buckets = Vec::with_capacity(config.export_indices().len() + 1);
        let mut cumulative = 0u64;
        let mut next = 0usize;
        for &i in config.export_indices() {
            cumulative += fine[next..=i as usize].iter().sum::<u64>();
            next = i as usize + 1;
            buckets.push((s.layout.upper_edge(i), cumulative));
        }
        cumulative += fine[next..].iter().sum::<u64>();
        buckets.push((f64::INFINITY, cumulative));
        HistogramSnapshot {
            exemplars: Vec::new(),
            buckets,
            count: cumulative,
            sum: ARENAS.sum_f64(s.base + SUM),
            invalid: ARENAS.sum(s.base + INVALID),
        }
    }
}

impl PartialEq for Histogram {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::eq(self.series, other.series)
    }
}

impl Eq for Histogram {}

/// The exact state of one histogram series at a point in time.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HistogramSnapshot {
    /// `(le, cumulative count)` pairs in increasing `le`; the last is `(+inf, count)`.
    pub buckets: Vec<(f64, u64)>,
    /// Observations recorded (the sum of the fine buckets).
    pub count: u64,
    /// Sum of the observations.
    pub sum: f64,
    /// Observations rejected: negative, NaN or infinite.
    pub invalid: u64,
    /// Sampled keyed observations ([`Histogram::record_keyed`]) as of the flusher's last
    /// flush: the latest per value group (a value's exponent and top 3 mantissa bits), at
    /// most 256 groups, in increasing value. The exporter puts each in its bucket.
    pub exemplars: Vec<crate::stats::ExemplarRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent reference: the bucket from `log2` arithmetic with exact corrections,
    /// `(lower, upper]` semantics, sub-bucket `ceil((v / 2^e - 1) * 8)` on `(2^e, 2^(e+1)]`.
    fn reference_bucket(config: &HistogramConfig, v: f64) -> u32 {
        let (low, high) = (config.low_exp, config.high_exp);
        let last = (1 + (high - low) as i64 * SUBS) as u32;
        if v <= 2f64.powi(low) {
            return 0;
        }
        if v > 2f64.powi(high) {
            return last;
        }
        // e such that 2^e < v <= 2^(e+1)
        let mut e = v.log2().ceil() as i32 - 1;
        while 2f64.powi(e) >= v {
            e -= 1;
        }
        while 2f64.powi(e + 1) < v {
            e += 1;
        }
        let m = v / 2f64.powi(e); // in (1, 2], exact (division by a power of two)
        let sub = ((m - 1.0) * SUBS as f64).ceil() as i64; // 1..=8, exact
        (1 + (e - low) as i64 * SUBS + sub - 1) as u32
    }

    fn check(config: &HistogramConfig, v: f64) {
        let layout = config.layout();
        let got = layout.bucket(v);
        assert_eq!(got, reference_bucket(config, v), "value {v:e}");
        // The bucket's edges bracket the value.
        assert!(v <= layout.upper_edge(got), "{v:e} above its bucket {got}");
        if got > 0 {
            assert!(
                v > layout.upper_edge(got - 1),
                "{v:e} below its bucket {got}"
            );
        }
    }

    #[test]
    fn bucket_matches_reference_on_a_dense_sweep() {
        for config in [
            HistogramConfig::seconds(),
            HistogramConfig::range(1.0, 1e9).unwrap(),
        ] {
            let mut v = 1e-9;
            while v < 1e12 {
                check(&config, v);
                v *= 1.000_37;
            }
        }
    }

    #[test]
    fn bucket_matches_reference_on_edge_values() {
        let config = HistogramConfig::seconds();
        let mut values = vec![
            0.0,
            f64::from_bits(1),       // smallest subnormal
            f64::MIN_POSITIVE / 2.0, // subnormal
            f64::MIN_POSITIVE,
            f64::MAX,
            1.0,
        ];
        for e in -40..40 {
            let p = 2f64.powi(e);
            values.extend([
                p,
                f64::from_bits(p.to_bits() - 1),
                f64::from_bits(p.to_bits() + 1),
            ]);
            for s in 1..8 {
                let edge = p * (1.0 + s as f64 / 8.0);
                values.extend([
                    edge,
                    f64::from_bits(edge.to_bits() - 1),
                    f64::from_bits(edge.to_bits() + 1),
                ]);
            }
        }
        for v in values {
            check(&config, v);
        }
        let layout = config.layout();
        assert_eq!(layout.bucket(0.0), 0);
        assert_eq!(layout.bucket(f64::MAX), layout.last);
        assert_eq!(layout.bucket(2f64.powi(7)), layout.last - 1);
        assert_eq!(config.fine_buckets(), 2 + 27 * 8);
    }

    #[test]
    fn exact_bounds_bucket_by_le_and_export_as_given() {
        let config = HistogramConfig::buckets(&[0.1, 0.005, 0.01, 0.1, 1.0]).unwrap();
        assert_eq!(config.bounds(), vec![0.005, 0.01, 0.1, 1.0]);
        assert_eq!(config.fine_buckets(), 5, "four bounds and +Inf");
        let layout = config.layout();
        // Reference: the number of bounds strictly below v (v <= bound is in that bucket).
        let reference = |v: f64| [0.005, 0.01, 0.1, 1.0].iter().filter(|&&b| b < v).count() as u32;
        let mut values = vec![
            0.0,
            0.004,
            0.005,
            0.0050000001,
            0.01,
            0.05,
            0.1,
            0.5,
            1.0,
            2.0,
            1e300,
        ];
        for b in [0.005f64, 0.01, 0.1, 1.0] {
            values.extend([
                f64::from_bits(b.to_bits() - 1),
                f64::from_bits(b.to_bits() + 1),
            ]);
        }
        for v in values {
            assert_eq!(layout.bucket(v), reference(v), "value {v:e}");
            let series: &'static HistogramSeries = Box::leak(Box::new(HistogramSeries {
                base: 0,
                layout,
                exemplar_metric: None,
                exemplars: OnceLock::new(),
            }));
            assert_eq!(
                Layout::bucket_packed(series.packed_layout(), v),
                reference(v),
                "packed, value {v:e}"
            );
        }
        assert_eq!(layout.upper_edge(0), 0.005);
        assert_eq!(layout.upper_edge(4), f64::INFINITY);

        assert!(HistogramConfig::buckets(&[]).is_err());
        assert!(HistogramConfig::buckets(&[f64::NAN]).is_err());
        assert!(HistogramConfig::buckets(&[f64::INFINITY]).is_err());
        assert!(HistogramConfig::buckets(&[-1.0]).is_err());
        let many: Vec<f64> = (0..=MAX_EXACT_BOUNDS).map(|i| i as f64).collect();
        assert!(HistogramConfig::buckets(&many).is_err());
        assert!(HistogramConfig::buckets(&many[..MAX_EXACT_BOUNDS]).is_ok());
        assert!(config.clone().with_bounds(&[0.5]).is_err());
        // The same bounds share one interned slice.
        let again = HistogramConfig::buckets(&[1.0, 0.1, 0.01, 0.005]).unwrap();
        assert!(core::ptr::eq(config.exact.unwrap(), again.exact.unwrap()));
        assert_eq!(
            HistogramConfig::buckets(&[-0.0, 0.0, 1.0])
                .unwrap()
                .bounds(),
            vec![0.0, 1.0]
        );
        assert!(HistogramConfig::buckets(&[-0.0]).unwrap().bounds()[0].is_sign_positive());
        // Fine packing keeps the tag bit clear.
        let fine: &'static HistogramSeries = Box::leak(Box::new(HistogramSeries {
            base: 0,
            layout: HistogramConfig::seconds().layout(),
            exemplar_metric: None,
            exemplars: OnceLock::new(),
        }));
        assert!((fine.packed_layout() as i64) >= 0);
        assert_eq!(
            Layout::bucket_packed(fine.packed_layout(), 0.3),
            fine.layout.bucket(0.3)
        );
    }

    #[test]
    fn bounds_snap_up_to_edges() {
        let config = HistogramConfig::seconds()
            .with_bounds(&[0.001, 0.5, 0.5, 1.0, 0.0])
            .unwrap();
        let bounds = config.bounds();
        assert_eq!(bounds.len(), 4, "{bounds:?}");
        assert_eq!(bounds[0], 2f64.powi(-20)); // 0 snaps to the underflow edge
        assert!(bounds[1] >= 0.001 && bounds[1] < 0.001 * 1.125);
        assert_eq!(bounds[2], 0.5);
        assert_eq!(bounds[3], 1.0);
        assert!(HistogramConfig::seconds().with_bounds(&[200.0]).is_err());
        assert!(HistogramConfig::seconds().with_bounds(&[f64::NAN]).is_err());
        assert!(HistogramConfig::seconds().with_bounds(&[-1.0]).is_err());
        assert!(HistogramConfig::range(0.0, 1.0).is_err());
        assert!(HistogramConfig::range(2.0, 1.0).is_err());
        assert!(HistogramConfig::range(1e-300, 1e300).is_err());
        let default_bounds = HistogramConfig::seconds().bounds();
        assert_eq!(default_bounds.len(), 28);
        assert_eq!(default_bounds[0], 2f64.powi(-20));
        assert_eq!(default_bounds[27], 128.0);
    }
}
