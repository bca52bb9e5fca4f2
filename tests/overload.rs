//! Estimates stay honest when rings overflow. Two phases with different value ranges; the
//! first samples far more records than its ring holds between two drains, so most are
//! dropped. Each drained record then stands for what its ring dropped of its series since
//! the last drain (`Consumer::drain_weighted`), and the estimates stay unbiased: the
//! Horvitz–Thompson count within 3 standard errors of the exact count, and the estimated
//! quantiles' intervals covering the exact quantiles of the data. Without that weighting,
//! the second phase's 256 kept records weighed as much as the first's, the count came out
//! near 2,048 instead of 10,000, and the median sat at the phases' boundary.

use std::time::Duration;

use hotmeter::{Engine, Overflow};

const RING: usize = 256;
const PHASE_A: usize = 8_000; // values in [0, 1): ~2,000 sampled at p = 1/4, 256 kept
const PHASE_B: usize = 2_000; // values in [10, 11): ~500 sampled, 256 kept
const SEEDS: u64 = 40;

/// xorshift64*: a fixed stream of uniform values per seed.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The exact `q` quantile of `sorted` (the value at rank `ceil(q n)`).
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[test]
fn overflowing_rings_leave_counts_and_quantiles_unbiased() {
    let (mut count_within, mut covered, mut intervals) = (0, 0, 0);
    let mut max_z = 0f64;
    for seed in 1..=SEEDS {
        let e = Engine::builder()
            .seed(seed)
            .ring_capacity(RING)
            .overflow(Overflow::DropNewest)
            .sample_rate(0.25)
            .min_sample_rate(0.25)
            .max_sample_rate(0.25)
            .adaptive(false)
            .wake_on_high_water(false)
            // The test decides when to drain.
            .flush_interval(Duration::from_secs(3600))
            .build()
            .unwrap();
        let s = e.registry().sampled("overload_bytes", &[]).unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut all = Vec::with_capacity(PHASE_A + PHASE_B);
        for (n, base) in [(PHASE_A, 0.0), (PHASE_B, 10.0)] {
            for _ in 0..n {
                let v = base + rng.uniform();
                all.push(v);
                s.record(v);
            }
            e.flush();
        }
        let v = e
            .registry()
            .snapshot()
            .sampled("overload_bytes", &[])
            .cloned()
            .unwrap();
        assert_eq!(v.count, (PHASE_A + PHASE_B) as u64);
        assert_eq!(v.pushed, v.flushed + v.dropped());
        assert!(
            v.dropped() > 1_000,
            "seed {seed}: the premise is a ring that overflows ({} dropped)",
            v.dropped()
        );
        let est = &v.estimate;
        let z = (est.count_estimate - v.count as f64) / est.count_std_error;
        max_z = max_z.max(z.abs());
        if z.abs() <= 3.0 {
            count_within += 1;
        }
        all.sort_by(f64::total_cmp);
        for q in est.quantiles.iter().filter(|q| q.q <= 0.9) {
            let truth = exact_quantile(&all, q.q);
            intervals += 1;
            if q.lower <= truth && truth <= q.upper {
                covered += 1;
            }
        }
        e.shutdown();
    }
    // Each count z is ~N(0, 1): P(|z| > 3) = 0.27%, so 38 or more of 40 within 3 SE fails
    // with probability ~5e-4 for an unbiased estimator (binomial tail, 3+ misses).
    assert!(
        count_within >= SEEDS - 2,
        "count within 3 SE in {count_within} of {SEEDS} seeds (max |z| {max_z:.2})"
    );
    // The p50 and p90 intervals are ~95%; over 80 intervals, coverage below 80% has a
    // false-failure probability below 1e-5 (binomial, p = 0.95). The estimates without the
    // weighting covered none.
    let coverage = covered as f64 / intervals as f64;
    eprintln!(
        "count within 3 SE: {count_within}/{SEEDS} (max |z| {max_z:.2}); intervals covering: {covered}/{intervals}"
    );
    assert!(
        coverage >= 0.80,
        "quantile intervals covered the truth in {covered} of {intervals}"
    );
}
