//! The statistics of the overhead harness: medians, the distribution-free confidence interval
//! of a median (order statistics against the binomial(n, 1/2) law: Hollander, Wolfe &
//! Chicken, *Nonparametric Statistical Methods*, §3.6), and a seeded percentile bootstrap
//! for the estimates criterion reports beside it (mean, standard deviation, MAD).

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Resamples of the bootstrap (criterion's default is 100,000; 2,000 keep a report quick
/// and put the percentile bounds within a few tenths of a percent of their limit).
pub(crate) const RESAMPLES: usize = 2_000;

/// Seed of the bootstrap: a fixed seed, so a report is a function of its measurements.
pub(crate) const SEED: u64 = 0x5eed_0f0b_ead1_e5e5;

/// The median of `xs` (the mean of the two middle values for an even count); NaN for none.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    median_sorted(&v)
}

/// [`median`] of values already sorted.
pub(crate) fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The arithmetic mean; NaN for none.
pub(crate) fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// The sample standard deviation (`n − 1` in the denominator); 0 for fewer than two values.
pub(crate) fn std_dev(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

/// The median absolute deviation, scaled by 1.4826 to estimate a normal law's standard
/// deviation (as criterion reports it).
pub(crate) fn median_abs_dev(xs: &[f64]) -> f64 {
    let m = median(xs);
    let dev: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
    median(&dev) * 1.4826
}

/// A distribution-free confidence interval for the median of the law `xs` was drawn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianInterval {
    /// The lower bound, the `j`-th smallest value.
    pub lower: f64,
    /// The upper bound, the `j`-th largest value.
    pub upper: f64,
    /// Its exact coverage for any continuous law: `1 − 2·P(B ≤ j − 1)`, `B ~ Binomial(n, 1/2)`.
    /// At least the level asked for, or, when `n` is too small to reach it, the coverage of
    /// `[min, max]`, `1 − 2^(1−n)`.
    pub confidence: f64,
}

/// The distribution-free interval `[x_(j), x_(n−j+1)]` for the median, with the largest `j`
/// whose coverage is at least `level`: the median lies below `x_(j)` only if fewer than `j`
/// of the `n` values fall below it, which happens with probability `P(B ≤ j − 1)` for
/// `B ~ Binomial(n, 1/2)` whatever the (continuous) law. `None` for no values.
pub fn median_interval(xs: &[f64], level: f64) -> Option<MedianInterval> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return None;
    }
    let tail = (1.0 - level) / 2.0;
    // cdf[i] = P(B ≤ i), from the pmf in log space (no underflow for large n).
    let ln2 = std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64; // ln C(n, 0)
    let mut cdf = 0.0f64;
    let mut j = 1; // x_(1), x_(n): always allowed, whatever their coverage
    let mut below = 0.0; // P(B ≤ j − 1) of the chosen j
    for i in 0..n / 2 {
        cdf += (ln_choose - n as f64 * ln2).exp();
        // j = i + 1 misses the median below with probability P(B ≤ i) = cdf (and above
        // with as much, by symmetry).
        if cdf <= tail {
            j = i + 1;
            below = cdf;
        } else {
            break;
        }
        ln_choose += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
    }
    if below == 0.0 {
        // n too small for `level`: [min, max], with its coverage.
        below = (-(n as f64) * ln2).exp();
    }
    Some(MedianInterval {
        lower: v[j - 1],
        upper: v[n - j],
        confidence: 1.0 - 2.0 * below,
    })
}

/// The percentile bootstrap of `stat` over `xs`, with a fixed seed: `(standard error,
/// lower, upper)` at `level`.
pub(crate) fn bootstrap(xs: &[f64], level: f64, stat: fn(&[f64]) -> f64) -> (f64, f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    let mut sample = vec![0.0; n];
    let mut stats: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            for s in &mut sample {
                // Multiply-shift (Lemire): an index in [0, n), each with probability within
                // n / 2^32 of 1/n.
                *s = xs[(((rng.next_u64() >> 32) * n as u64) >> 32) as usize];
            }
            stat(&sample)
        })
        .collect();
    let se = std_dev(&stats);
    stats.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| stats[((q * (RESAMPLES - 1) as f64).round() as usize).min(RESAMPLES - 1)];
    (se, at(tail), at(1.0 - tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_by_hand() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
        assert!(median(&[]).is_nan());
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        // Deviations from 3: 4, 1, 0, 1, 4 → squares 16+1+0+1+16 = 34, / 4 = 8.5.
        assert!((std_dev(&[-1.0, 2.0, 3.0, 4.0, 7.0]) - 8.5f64.sqrt()).abs() < 1e-12);
        // Median 3; absolute deviations 4, 1, 0, 1, 4 → median 1 → 1.4826.
        assert!((median_abs_dev(&[-1.0, 2.0, 3.0, 4.0, 7.0]) - 1.4826).abs() < 1e-12);
    }

    /// n = 10 at 95%: P(B ≤ 1) = 11/1024 ≈ 0.0107 ≤ 0.025 < P(B ≤ 2) = 56/1024, so j = 2:
    /// [x_(2), x_(9)], coverage 1 − 22/1024.
    #[test]
    fn median_interval_of_ten_by_hand() {
        let xs = [10.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0];
        let ci = median_interval(&xs, 0.95).unwrap();
        assert_eq!((ci.lower, ci.upper), (2.0, 9.0));
        assert!(
            (ci.confidence - (1.0 - 22.0 / 1024.0)).abs() < 1e-12,
            "{ci:?}"
        );
    }

    /// n = 20 at 95%: P(B ≤ 5) = 21700/2^20 ≈ 0.0207 ≤ 0.025 < P(B ≤ 6) = 60460/2^20, so
    /// j = 6: [x_(6), x_(15)].
    #[test]
    fn median_interval_of_twenty_by_hand() {
        let xs: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        let ci = median_interval(&xs, 0.95).unwrap();
        assert_eq!((ci.lower, ci.upper), (6.0, 15.0));
        let p = 21700.0 / f64::from(1 << 20);
        assert!((ci.confidence - (1.0 - 2.0 * p)).abs() < 1e-12, "{ci:?}");
    }

    /// Five values cannot reach 95% (the widest interval covers 1 − 2/32 = 93.75%): the
    /// interval is [min, max] and says so.
    #[test]
    fn median_interval_too_few_for_the_level() {
        let ci = median_interval(&[5.0, 4.0, 3.0, 2.0, 1.0], 0.95).unwrap();
        assert_eq!((ci.lower, ci.upper), (1.0, 5.0));
        assert!((ci.confidence - 0.9375).abs() < 1e-12);
        // Six reach it: 1 − 2/64 = 96.875%.
        let ci = median_interval(&[6.0, 5.0, 4.0, 3.0, 2.0, 1.0], 0.95).unwrap();
        assert_eq!((ci.lower, ci.upper), (1.0, 6.0));
        assert!((ci.confidence - 0.968_75).abs() < 1e-12);
        let one = median_interval(&[3.0], 0.95).unwrap();
        assert_eq!((one.lower, one.upper, one.confidence), (3.0, 3.0, 0.0));
        assert!(median_interval(&[], 0.95).is_none());
    }

    /// Large n stays finite (the pmf is summed in log space) and brackets the median.
    #[test]
    fn median_interval_of_many() {
        let xs: Vec<f64> = (0..5000).map(f64::from).collect();
        let ci = median_interval(&xs, 0.95).unwrap();
        assert!(ci.lower < 2499.5 && 2499.5 < ci.upper, "{ci:?}");
        // Normal approximation: j ≈ n/2 − 1.96·sqrt(n)/2 ≈ 2430.7.
        assert!((2420.0..2440.0).contains(&ci.lower), "{ci:?}");
        assert!(ci.confidence >= 0.95 && ci.confidence < 0.96, "{ci:?}");
    }

    /// The bootstrap is a function of its input (fixed seed); a constant sample has no
    /// spread; the mean's interval brackets the mean.
    #[test]
    fn bootstrap_is_seeded() {
        let xs: Vec<f64> = (0..31).map(|i| f64::from(i * 7 % 31)).collect();
        let a = bootstrap(&xs, 0.95, mean);
        let b = bootstrap(&xs, 0.95, mean);
        assert_eq!(a, b);
        assert!(a.1 < 15.0 && 15.0 < a.2, "{a:?}");
        // The mean of 31 draws from a law with sd ≈ 9.09 (n − 1: 9.09): se ≈ 9.09/sqrt(31)
        // ≈ 1.61 (the bootstrap uses the n-denominator law: 8.94/sqrt(31) ≈ 1.61).
        assert!((a.0 - 1.61).abs() < 0.15, "{a:?}");
        assert_eq!(bootstrap(&[2.0; 9], 0.95, median), (0.0, 2.0, 2.0));
    }
}
