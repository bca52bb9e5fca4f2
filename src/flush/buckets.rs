//! Log-linear buckets over the bit pattern of `f64`, in bounded memory: what a
//! [`Distribution`](super::estimate::Distribution) keeps its weights in.
//!
//! A positive normal `f64`'s bits, read as an integer, grow with its value; dropping the low
//! `shift` bits leaves the exponent and the top `52 − shift` mantissa bits, a bucket index.
//! At the starting `shift` of 45 that is 128 linear buckets per octave: a bucket's width is
//! at most 1/128 of its lower edge (0.78%), the same resolution as an HdrHistogram with two
//! significant figures, over the whole `f64` range with no scaling and no clamping (only
//! infinity is clamped, to `f64::MAX`; zero and subnormal values share one bucket at 0).
//!
//! Only the span of indices between the smallest and the largest value seen is stored
//! (a dense `Vec`: one add is an index, a compare and an add). The span is capped: a value
//! that would stretch it past `max_span` buckets *collapses* the buckets instead, halving
//! the resolution (one more bit dropped, adjacent pairs merged) until it fits. Memory is
//! thus at most `max_span` weights (two lanes when the variance lane is on) whatever the
//! values, and the resolution is the finest that the values' spread allows: 128 buckets per
//! octave while they span `max_span / 128` octaves, 64 while they span twice that, and so on.
//! (Why not `hdrhistogram`: its counts array is dense from 0 to the largest value — by its
//! layout 128 eight-byte counters per octave at two significant figures, so ~30 KiB for
//! byte counts of 64–127 held in nano-units — and it has no bounded mode; the flusher
//! holds five of them per sampled series.)

/// The starting `shift`: 52 mantissa bits minus the 7 kept (128 buckets per octave).
const FINEST_SHIFT: u32 = 45;

/// The smallest span cap: enough that no collapse drops more than 57 bits (64 buckets
/// hold the whole exponent range at 1 bucket per 32 octaves).
pub(crate) const MIN_SPAN: usize = 64;

/// Weighted buckets: `Σw` per bucket, and optionally `Σ w(w−1)` per bucket (the variance
/// lane, same layout).
#[derive(Debug, Clone)]
pub(crate) struct Buckets {
    /// Index = bits >> shift.
    shift: u32,
    /// The index of `w[0]`.
    lo: u64,
    w: Vec<f64>,
    /// `Σ w(w−1)` per bucket, once enabled.
    var: Option<Vec<f64>>,
    /// Weight and variance at 0 (zero and subnormal values).
    zero_w: f64,
    zero_var: f64,
    /// The most buckets `w` may span.
    max_span: usize,
}

/// One non-empty bucket: its edges `[lower, upper)` (both 0 for the zero bucket), `Σw`
/// and `Σ w(w−1)` (0 without the variance lane).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub w: f64,
    pub var: f64,
}

impl Buckets {
    /// Empty buckets that will span at most `max_span` (at least [`MIN_SPAN`]) indices. Allocates
    /// nothing until the first value.
    pub(crate) fn new(max_span: usize) -> Self {
        Self {
            shift: FINEST_SHIFT,
            lo: 0,
            w: Vec::new(),
            var: None,
            zero_w: 0.0,
            zero_var: 0.0,
            max_span: max_span.max(MIN_SPAN),
        }
    }

    /// Whether the variance lane is on.
    #[cfg(test)]
    pub(crate) fn has_var(&self) -> bool {
        self.var.is_some()
    }

    /// Turns the variance lane on, each bucket's variance `f(its Σw)`.
    pub(crate) fn enable_var(&mut self, f: impl Fn(f64) -> f64) {
        if self.var.is_none() {
            self.var = Some(self.w.iter().map(|&w| f(w)).collect());
            self.zero_var = f(self.zero_w);
        }
    }

    /// The bucket index of a finite, non-negative `value` at the current shift; `None` for
    /// the zero bucket.
    #[inline]
    fn index(&self, value: f64) -> Option<u64> {
        (value >= f64::MIN_POSITIVE).then(|| value.to_bits() >> self.shift)
    }

    /// Adds weight `w` (and `var` to the variance lane, if on) at `value`: finite and not
    /// negative (the caller keeps the others out; infinity is the caller's to clamp).
    #[inline]
    pub(crate) fn add(&mut self, value: f64, w: f64, var: f64) {
        debug_assert!(value >= 0.0 && value.is_finite(), "{value}");
        match self.index(value) {
            None => {
                self.zero_w += w;
                self.zero_var += var;
            }
            Some(i) => self.add_at(i, self.shift, w, var),
        }
    }

    /// Adds at index `i` of resolution `shift` (a coarser one than ours collapses these
    /// buckets first; a finer one is folded into ours).
    #[inline]
    fn add_at(&mut self, i: u64, shift: u32, w: f64, var: f64) {
        if shift > self.shift {
            self.collapse_to(shift);
        }
        let i = i >> (self.shift - shift);
        let off = i.wrapping_sub(self.lo) as usize;
        if off >= self.w.len() {
            return self.add_outside(i, w, var);
        }
        self.w[off] += w;
        if let Some(v) = &mut self.var {
            v[off] += var;
        }
    }

    /// An index outside the stored span: grows it (collapsing when it would exceed the cap).
    #[cold]
    fn add_outside(&mut self, i: u64, w: f64, var: f64) {
        let mut i = i;
        if self.w.is_empty() {
            self.lo = i;
            self.w.push(0.0);
            if let Some(v) = &mut self.var {
                v.push(0.0);
            }
        } else {
            loop {
                // The span the values need (not the slack stored around them).
                let (used_lo, used_hi) = self.occupied().unwrap_or((i, i + 1));
                let lo = used_lo.min(i);
                let hi = used_hi.max(i + 1);
                let span = (hi - lo) as usize;
                if span <= self.max_span {
                    // Room to grow on the side that grew, as a `Vec` doubles: a spread that
                    // widens bucket by bucket reallocates O(log span) times, not per bucket.
                    let slack = (span / 2).max(8).min(self.max_span - span) as u64;
                    let (lo, hi) = if i < used_lo {
                        (lo.saturating_sub(slack), hi)
                    } else {
                        (lo, hi + slack)
                    };
                    self.regrow(lo, hi);
                    break;
                }
                self.collapse_to(self.shift + 1);
                i >>= 1;
            }
        }
        let off = (i - self.lo) as usize;
        self.w[off] += w;
        if let Some(v) = &mut self.var {
            v[off] += var;
        }
    }

    /// The indices `[first, last + 1)` of the buckets holding weight or variance, if any.
    fn occupied(&self) -> Option<(u64, u64)> {
        let held = |j: usize| self.w[j] != 0.0 || self.var.as_ref().is_some_and(|v| v[j] != 0.0);
        let first = (0..self.w.len()).find(|&j| held(j))?;
        let last = (0..self.w.len()).rev().find(|&j| held(j))?;
        Some((self.lo + first as u64, self.lo + last as u64 + 1))
    }

    /// Re-lays the stored span over `[lo, hi)`, which holds every occupied bucket (empty
    /// ones outside it, slack, are dropped).
    fn regrow(&mut self, lo: u64, hi: u64) {
        let len = (hi - lo) as usize;
        let old_lo = self.lo;
        let relay = |old: &[f64]| {
            let mut new = vec![0.0; len];
            for (j, &x) in old.iter().enumerate() {
                let i = old_lo + j as u64;
                if (lo..hi).contains(&i) {
                    new[(i - lo) as usize] = x;
                } else {
                    debug_assert_eq!(x, 0.0, "an occupied bucket outside the new span");
                }
            }
            new
        };
        self.w = relay(&self.w);
        if let Some(v) = &mut self.var {
            *v = relay(v);
        }
        self.lo = lo;
    }

    /// Drops resolution down to `shift` (coarser): adjacent buckets merge.
    #[cold]
    fn collapse_to(&mut self, shift: u32) {
        debug_assert!(shift > self.shift);
        let d = shift - self.shift;
        self.shift = shift;
        if self.w.is_empty() {
            return;
        }
        let old_lo = self.lo;
        let new_lo = old_lo >> d;
        let new_hi = ((old_lo + self.w.len() as u64 - 1) >> d) + 1;
        let fold = |old: &[f64]| {
            let mut new = vec![0.0; (new_hi - new_lo) as usize];
            for (j, &x) in old.iter().enumerate() {
                new[(((old_lo + j as u64) >> d) - new_lo) as usize] += x;
            }
            new
        };
        self.w = fold(&self.w);
        if let Some(v) = &mut self.var {
            *v = fold(v);
        }
        self.lo = new_lo;
    }

    /// Adds everything `other` holds (the caller turns the variance lanes on alike; a lane
    /// that is off counts as zeros).
    #[cfg(test)]
    pub(crate) fn merge(&mut self, other: &Buckets) {
        self.merge_var(other, None);
    }

    /// Adds everything `other` holds, its variance taken as `var_per_w` times its weight
    /// where given (for buckets without the variance lane whose records all weigh alike:
    /// what [`Buckets::enable_var`] would fill in, without the copy), else from its lane (a
    /// lane that is off counts as zeros).
    pub(crate) fn merge_var(&mut self, other: &Buckets, var_per_w: Option<f64>) {
        self.zero_w += other.zero_w;
        self.zero_var += var_per_w.map_or(other.zero_var, |a| other.zero_w * a);
        // Their span's ends first, so ours grows (or collapses) once, not bucket by bucket.
        if let (Some(first), Some(last)) = (
            other.w.iter().position(|&w| w != 0.0),
            other.w.iter().rposition(|&w| w != 0.0),
        ) {
            self.add_at(other.lo + first as u64, other.shift, 0.0, 0.0);
            self.add_at(other.lo + last as u64, other.shift, 0.0, 0.0);
        }
        for (j, &w) in other.w.iter().enumerate() {
            let var = match var_per_w {
                Some(a) => w * a,
                None => other.var.as_ref().map_or(0.0, |v| v[j]),
            };
            if w != 0.0 || var != 0.0 {
                self.add_at(other.lo + j as u64, other.shift, w, var);
            }
        }
    }

    /// The non-empty buckets in value order (the zero bucket first).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Bucket> + '_ {
        let zero = (self.zero_w != 0.0).then_some(Bucket {
            lower: 0.0,
            upper: 0.0,
            w: self.zero_w,
            var: self.zero_var,
        });
        zero.into_iter()
            .chain(
                self.w
                    .iter()
                    .enumerate()
                    .filter(|&(_, &w)| w != 0.0)
                    .map(move |(j, &w)| {
                        let (lower, upper) = self.edges(self.lo + j as u64);
                        Bucket {
                            lower,
                            upper,
                            w,
                            var: self.var.as_ref().map_or(0.0, |v| v[j]),
                        }
                    }),
            )
    }

    /// The edges `[lower, upper)` of index `i` (the top bucket's upper edge is `f64::MAX`,
    /// not infinity, so that interpolating within it stays finite).
    fn edges(&self, i: u64) -> (f64, f64) {
        // Past the top bucket the bits would be infinity's, or (once collapsed beyond 52
        // bits) wrap into the sign bit and read as −0.0: both are capped at `f64::MAX`.
        let upper = (i + 1) << self.shift;
        let upper = if upper >= f64::INFINITY.to_bits() {
            f64::MAX
        } else {
            f64::from_bits(upper)
        };
        (f64::from_bits(i << self.shift), upper)
    }

    /// The edges of the bucket `value` falls in (`(0, 0)` for the zero bucket).
    #[cfg(test)]
    pub(crate) fn edges_of(&self, value: f64) -> (f64, f64) {
        match self.index(value) {
            None => (0.0, 0.0),
            Some(i) => self.edges(i),
        }
    }

    /// Buckets per octave at the current resolution.
    #[cfg(test)]
    pub(crate) fn per_octave(&self) -> u64 {
        1 << 52u32.saturating_sub(self.shift)
    }

    /// Heap bytes held.
    // Only tests call it.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.w.capacity() + self.var.as_ref().map_or(0, Vec::capacity)) * size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// Every value lands in a bucket whose edges hold it, at most 1/128 of the lower edge
    /// wide at full resolution; zero and subnormals land at 0.
    #[test]
    fn edges_hold_their_values() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let b = Buckets::new(1024);
        for _ in 0..100_000 {
            let v = f64::from_bits(rng.next_u64() >> 1); // any non-negative bit pattern
            if !v.is_finite() {
                continue;
            }
            let (lo, hi) = b.edges_of(v);
            if v < f64::MIN_POSITIVE {
                assert_eq!((lo, hi), (0.0, 0.0));
                continue;
            }
            assert!(lo <= v && (v < hi || hi == f64::MAX), "{v}: [{lo}, {hi})");
            assert!(hi - lo <= lo / 128.0, "{v}: [{lo}, {hi})");
        }
        assert_eq!(b.edges_of(1.0), (1.0, 1.0 + 1.0 / 128.0));
        assert_eq!(b.edges_of(f64::MAX).1, f64::MAX);
    }

    /// Weights are conserved exactly through growth on both sides, collapses and merges;
    /// the span never exceeds its cap; the resolution is the finest the spread allows.
    #[test]
    fn collapse_conserves_weight_and_bounds_the_span() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        let mut b = Buckets::new(256);
        let mut total = 0.0;
        // Values within one octave: full resolution.
        for _ in 0..1000 {
            let v = 1.0 + (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            b.add(v, 2.0, 0.0);
            total += 2.0;
        }
        assert_eq!(b.per_octave(), 128);
        assert!(b.w.len() <= 256, "{}", b.w.len());
        // Spread over 2^-40 .. 2^40: 80 octaves in 256 buckets is 2 per octave at most.
        for i in 0..1000 {
            let v = (2f64).powi((i % 80) - 40) * 1.5;
            b.add(v, 1.0, 0.0);
            total += 1.0;
        }
        b.add(0.0, 3.0, 0.0);
        total += 3.0;
        assert!(b.w.len() <= 256, "{}", b.w.len());
        assert_eq!(b.per_octave(), 2);
        let sum: f64 = b.iter().map(|x| x.w).sum();
        assert_eq!(sum, total);
        // Buckets come in value order, each value still inside its bucket.
        let v: Vec<Bucket> = b.iter().collect();
        assert!(v.windows(2).all(|p| p[0].upper <= p[1].lower));
        let (lo, hi) = b.edges_of(1.5);
        assert!(lo <= 1.5 && 1.5 < hi);
        // Merging a finer one into a coarser one (and the reverse) conserves weight.
        let mut fine = Buckets::new(256);
        fine.add(1.25, 5.0, 0.0);
        let mut a = fine.clone();
        a.merge(&b);
        let mut c = b.clone();
        c.merge(&fine);
        for m in [&a, &c] {
            assert_eq!(m.iter().map(|x| x.w).sum::<f64>(), total + 5.0);
            assert_eq!(m.per_octave(), 2);
        }
        assert!(b.heap_bytes() <= 256 * 8);
    }

    /// The variance lane follows the weights through growth, collapse and merge.
    #[test]
    fn variance_lane_follows_the_weights() {
        let mut b = Buckets::new(64);
        b.add(1.0, 4.0, 0.0);
        b.enable_var(|w| w * 3.0);
        b.add(1.0, 2.0, 2.0);
        b.add(1e10, 2.0, 2.0);
        b.add(0.0, 1.0, 0.0);
        let var: f64 = b.iter().map(|x| x.var).sum();
        assert_eq!(var, 12.0 + 2.0 + 2.0);
        let mut m = Buckets::new(64);
        m.enable_var(|w| w);
        m.merge(&b);
        assert_eq!(m.iter().map(|x| x.var).sum::<f64>(), 16.0);
        assert_eq!(m.iter().map(|x| x.w).sum::<f64>(), 9.0);
    }

    /// Against the well-kept implementation: quantiles read from these buckets agree with
    /// HdrHistogram's (two significant figures, the resolution these buckets replace) to
    /// within one bucket of either (1% of the value), on lognormal data spread over ~9
    /// octaves. Deterministic (fixed seed).
    #[test]
    fn quantiles_agree_with_hdrhistogram() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut ours = Buckets::new(4096);
        let mut hdr = hdrhistogram::Histogram::<u64>::new(2).unwrap();
        hdr.auto(true);
        let n = 100_000;
        for _ in 0..n {
            let g: f64 = (0..4)
                .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
                .sum::<f64>()
                - 2.0;
            let v = 1e-3 * (2.0 * g).exp(); // seconds, ~1 ms median
            ours.add(v, 1.0, 0.0);
            hdr.record((v * 1e9) as u64).unwrap();
        }
        assert_eq!(ours.per_octave(), 128);
        for q in [0.01, 0.1, 0.5, 0.9, 0.99, 0.999] {
            let rank = (q * n as f64).ceil();
            let mut to = 0.0;
            let upper = ours
                .iter()
                .find(|b| {
                    to += b.w;
                    to >= rank
                })
                .unwrap()
                .upper;
            let theirs = hdr.value_at_quantile(q) as f64 * 1e-9;
            assert!(
                (upper - theirs).abs() <= 0.01 * theirs,
                "q={q}: ours {upper}, hdrhistogram {theirs}"
            );
        }
    }

    /// The top bucket's upper edge is `f64::MAX` at every resolution: once collapsed past
    /// 52 bits its raw upper bits wrapped into the sign bit and read as −0.0 (a bucket whose
    /// upper edge was below its lower one: quantiles next to `f64::MAX` came out far below
    /// their bucket, with a zero-width interval). Found by review.
    #[test]
    fn the_top_bucket_ends_at_f64_max_at_every_resolution() {
        for span in [64, 1024] {
            let mut b = Buckets::new(span);
            b.add(1e-300, 1.0, 0.0);
            b.add(f64::MAX, 1.0, 0.0);
            assert!(b.shift > 52, "span {span}: shift {}", b.shift);
            for x in b.iter() {
                assert!(x.lower <= x.upper, "span {span}: {x:?}");
            }
            let (lo, hi) = b.edges_of(f64::MAX);
            assert!(
                lo <= f64::MAX && hi == f64::MAX,
                "span {span}: [{lo}, {hi}]"
            );
        }
    }

    /// A collapse happens only when the values themselves span more than the cap, not the
    /// slack stored around them. Found by review: values over 801 buckets collapsed a
    /// 1,024-bucket cap because the stored range (with slack) was 1,101.
    #[test]
    fn slack_does_not_force_a_collapse() {
        let mut b = Buckets::new(1024);
        let base = 1.0f64.to_bits() >> FINEST_SHIFT;
        let at = |i: u64| f64::from_bits((base + i) << FINEST_SHIFT);
        b.add(at(200), 1.0, 0.0);
        b.add(at(800), 1.0, 0.0); // stored with slack past 800
        b.add(at(0), 1.0, 0.0); // the values span 801 buckets
        assert_eq!(b.per_octave(), 128, "collapsed for slack");
        assert_eq!(b.iter().map(|x| x.w).sum::<f64>(), 3.0);
        b.add(at(1100), 1.0, 0.0); // now they span 1,101: one collapse
        assert_eq!(b.per_octave(), 64);
        assert_eq!(b.iter().map(|x| x.w).sum::<f64>(), 4.0);
    }
}
