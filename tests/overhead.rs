//! The overhead harness over the global engine, as a user runs it: macros in the closure,
//! `Harness::global()`. Its own binary: it installs the global engine (rate 1, not
//! adaptive, so every call is sampled while recording and the counts are exact).
#![cfg(feature = "bench")]

use hotmeter::overhead::{Baseline, Budget, Harness, OverheadError};

fn step(i: u64) {
    hotmeter::counter!("gate_requests_total").inc();
    hotmeter::record!("gate_request_bytes", (i % 512) as f64, key = i % 7);
    let _t = hotmeter::sampled_timer!("gate_handle_seconds");
    std::hint::black_box(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
}

#[test]
fn overhead_harness_switches_the_global_engine_per_repetition() {
    hotmeter::Engine::builder()
        .sample_rate(1.0)
        .max_sample_rate(1.0)
        .adaptive(false)
        .seed(3)
        .install()
        .unwrap();
    let report = Harness::global()
        .name("gate")
        .budget("1000%".parse::<Budget>().unwrap())
        .threads([1, 2])
        .repetitions(4)
        .iters(300)
        .run(|iters| {
            for i in 0..iters {
                step(i)
            }
        })
        .unwrap();
    assert_eq!(report.baseline, Baseline::SamplingOff);
    for run in &report.runs {
        let m = run.meta;
        // Two sampled-layer events per step (the record and the timer).
        let events = 2 * 300 * 4 * run.threads as u64;
        assert_eq!(m.events_recording, events, "{run:?}");
        assert_eq!(m.events_baseline, events, "{run:?}");
        assert_eq!(m.records_recording, events, "rate 1: every event: {run:?}");
        assert_eq!(m.records_baseline, 0, "sampling off: no record: {run:?}");
    }
    // The exact layer records in both modes: warm-ups, then 4 pairs, per thread.
    let snap = hotmeter::global().snapshot();
    let count = snap.counter("gate_requests_total", &[]).unwrap();
    assert!(count >= 2 * 300 * 4 * 3, "{count}");
    // Errors come back typed, not as panics.
    let err = Harness::global().threads([0]).run(|_| {}).unwrap_err();
    assert_eq!(err, OverheadError::ZeroThreads);
}
