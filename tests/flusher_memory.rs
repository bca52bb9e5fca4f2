//! The flusher's state is bounded per series and in total (issue 9, defect 4): one sampled
//! metric at its series cap with widely spread values held 370–420 MB in the flusher
//! before (five window steps of two dense HdrHistograms per series, each as wide as the
//! values' range); the window steps now share a fixed number of buckets among the series
//! (`step_span`: at most 20 MiB of buckets up to 4,096 series). Own binary: it measures
//! the process's RSS.

mod common;

use std::time::{Duration, Instant};

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

#[test]
fn widely_spread_values_at_the_series_cap_keep_the_flusher_small() {
    const SERIES: usize = 1000;
    const STEPS: usize = 7; // more than the window's 5, so every step has been filled
    const PER_STEP: usize = 120; // records per series per step
    let window = Duration::from_millis(500);
    let engine = hotmeter::Engine::builder()
        .sample_rate(1.0)
        .max_sample_rate(1.0)
        .adaptive(false)
        .ring_capacity(1 << 16)
        .quantile_window(window)
        .flush_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let labels: Vec<String> = (0..SERIES).map(|i| i.to_string()).collect();
    let handles: Vec<_> = labels
        .iter()
        .map(|l| {
            engine
                .registry()
                .sampled("spread_seconds", &[("user", l)])
                .unwrap()
        })
        .collect();
    handles[0].record(1.0);
    std::thread::sleep(Duration::from_millis(100));
    let before = common::rss_kib();
    if before == 0 {
        eprintln!("no /proc: RSS not measured");
        return;
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    let step = window / 5;
    for _ in 0..STEPS {
        let started = Instant::now();
        for chunk in 0..PER_STEP / 40 {
            for h in &handles {
                for _ in 0..40 {
                    // 1e-9 .. 1e10 with a random mantissa: every step's values span 63
                    // octaves.
                    let e = (rng.next_u64() % 64) as i32 - 30;
                    let m = 1.0 + (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    h.record(m * 2f64.powi(e));
                }
            }
            // Let the flusher drain the ring between bursts (40,000 records < 65,536).
            let _ = chunk;
            std::thread::sleep(Duration::from_millis(30));
        }
        if let Some(rest) = step.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    let grown_kib = common::rss_kib().saturating_sub(before);
    println!("RSS grew {grown_kib} KiB over {SERIES} series");
    // The bound: 20 MiB of buckets (16 bytes each once the window merges mixed steps: the
    // steps of one series share one k here, so 8) plus, per series, its published estimate
    // and the merged window while it is computed (transient); and the allocator's slack.
    assert!(
        grown_kib <= 48 * 1024,
        "the flusher's state grew RSS by {grown_kib} KiB for {SERIES} series"
    );
    // And the estimates still say something: a last burst, drained by the flush, gives
    // every series quantiles (the bursts above may have overflowed the ring, slow in a
    // debug build, for some series' last steps; the first flush empties it).
    engine.flush();
    for h in &handles {
        for i in 0..10 {
            h.record(1.0 + i as f64);
        }
    }
    engine.flush();
    let snap = engine.registry().snapshot();
    let family = snap
        .families
        .iter()
        .find(|f| f.name == "spread_seconds")
        .unwrap();
    let with_quantiles = family
        .series
        .iter()
        .filter(|s| match &s.value {
            hotmeter::Value::Sampled(v) => !v.estimate.quantiles.is_empty(),
            _ => false,
        })
        .count();
    assert_eq!(with_quantiles, SERIES, "{:?}", family.series[0]);
    engine.shutdown();
}
