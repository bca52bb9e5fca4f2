//! The harness's logic, with no timing assertion: the budget parser, the verdicts, the
//! paired statistics, the errors, the JSON shape, and that the run-time switch stops
//! sampling (and only sampling).

use super::*;
use crate::Engine;

#[test]
fn budget_parses_percentages_and_fractions() {
    assert_eq!("5%".parse::<Budget>().unwrap().as_fraction(), 0.05);
    assert_eq!(" 12.5 % ".parse::<Budget>().unwrap().as_fraction(), 0.125);
    assert_eq!("0.05".parse::<Budget>().unwrap().as_fraction(), 0.05);
    // A bare number is a fraction, as in scripts/overhead_gate: "5" is 500%.
    assert_eq!("5".parse::<Budget>().unwrap().as_fraction(), 5.0);
    assert_eq!(Budget::percent(40.0).unwrap().to_string(), "40%");
    assert_eq!(Budget::default().as_fraction(), 0.05);
}

#[test]
fn budget_errors_are_typed() {
    for bad in [
        "0%", "-1%", "0", "-0.5", "NaN%", "nan", "inf", "inf%", "", "%", "five%", "5%%", "5 %x",
    ] {
        match bad.parse::<Budget>() {
            Err(OverheadError::InvalidBudget { input }) => assert_eq!(input, bad),
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
    for bad in [0.0, -5.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(
            Budget::percent(bad),
            Err(OverheadError::InvalidBudget { .. })
        ));
        assert!(matches!(
            Budget::fraction(bad),
            Err(OverheadError::InvalidBudget { .. })
        ));
    }
    let msg = "abc".parse::<Budget>().unwrap_err().to_string();
    assert!(msg.contains("\"abc\"") && msg.contains("5%"), "{msg}");
}

#[test]
fn verdicts_against_the_budget() {
    let b = Budget::percent(5.0).unwrap();
    assert_eq!(Verdict::of(0.02, 0.01, 0.04, b), Verdict::Within);
    assert_eq!(Verdict::of(0.02, 0.01, 0.05, b), Verdict::Within); // the bound itself
    assert_eq!(Verdict::of(0.04, 0.01, 0.07, b), Verdict::LikelyWithin);
    assert_eq!(Verdict::of(0.06, 0.03, 0.08, b), Verdict::LikelyOver);
    assert_eq!(Verdict::of(0.08, 0.06, 0.09, b), Verdict::Over);
    assert_eq!(Verdict::of(-0.02, -0.04, 0.01, b), Verdict::Within);
    // One pair is a point interval of no confidence: it must not say `Within` (or `Over`)
    // outright. Below the confidence level a verdict is only "likely".
    assert_eq!(
        Verdict::of_interval(0.02, 0.02, 0.02, 0.0, b),
        Verdict::LikelyWithin
    );
    assert_eq!(
        Verdict::of_interval(0.09, 0.09, 0.09, 0.0, b),
        Verdict::LikelyOver
    );
    assert_eq!(
        Verdict::of_interval(0.02, 0.01, 0.04, 0.973, b),
        Verdict::Within
    );
    assert_eq!(
        Verdict::of_interval(0.08, 0.06, 0.09, 0.96, b),
        Verdict::Over
    );
    assert!(Verdict::Within.passed() && Verdict::LikelyWithin.passed());
    assert!(!Verdict::LikelyOver.passed() && !Verdict::Over.passed());
    assert!(Verdict::Within < Verdict::LikelyWithin);
    assert!(Verdict::LikelyOver < Verdict::Over);
}

/// Ten pairs whose ratios are 1.00, 1.01, ..., 1.09 (shuffled): the median overhead is
/// 4.5%, and the 95% interval is [r_(2), r_(9)] = [1%, 8%] (see `stats`).
#[test]
fn paired_overhead_by_hand() {
    let pct = [3, 9, 0, 5, 1, 8, 2, 7, 4, 6];
    let baseline: Vec<f64> = (0..10).map(|i| 100.0 + f64::from(i) * 10.0).collect();
    let recording: Vec<f64> = baseline
        .iter()
        .zip(pct)
        .map(|(b, p)| b * (1.0 + f64::from(p) / 100.0))
        .collect();
    let e = paired_overhead(&recording, &baseline);
    assert!((e.point_estimate - 0.045).abs() < 1e-12, "{e:?}");
    let ci = e.confidence_interval;
    assert!((ci.lower_bound - 0.01).abs() < 1e-12, "{e:?}");
    assert!((ci.upper_bound - 0.08).abs() < 1e-12, "{e:?}");
    assert!((ci.confidence_level - (1.0 - 22.0 / 1024.0)).abs() < 1e-12);
    assert!(e.standard_error > 0.0 && e.standard_error < 0.05, "{e:?}");
    let b = Budget::percent(5.0).unwrap();
    assert_eq!(
        Verdict::of(e.point_estimate, ci.lower_bound, ci.upper_bound, b),
        Verdict::LikelyWithin
    );
}

fn engine(rate: f64) -> Engine {
    Engine::builder()
        .sample_rate(rate)
        .min_sample_rate(rate.min(0.01))
        .max_sample_rate(rate)
        .adaptive(false)
        .seed(7)
        .build()
        .unwrap()
}

#[test]
fn bad_settings_are_errors() {
    let e = engine(0.5);
    let f = |_: u64| {};
    let h = Harness::new(&e).iters(1);
    assert_eq!(
        h.clone().repetitions(0).run(f).unwrap_err(),
        OverheadError::ZeroRepetitions
    );
    assert_eq!(
        h.clone().threads([]).run(f).unwrap_err(),
        OverheadError::ZeroThreads
    );
    assert_eq!(
        h.clone().threads([1, 0]).run(f).unwrap_err(),
        OverheadError::ZeroThreads
    );
    assert_eq!(
        Harness::new(&e).iters(0).run(f).unwrap_err(),
        OverheadError::ZeroIterations
    );
    assert_eq!(
        h.clone().repetitions(0).compare(f, f).unwrap_err(),
        OverheadError::ZeroRepetitions
    );
    e.shutdown();
    assert_eq!(h.run(f).unwrap_err(), OverheadError::EngineShutDown);
}

/// Pausing stops every way a call is sampled (random gap, keyed, sampled timer) but not
/// the exact count, nor critical events; resuming re-arms this thread at once.
#[test]
fn the_pause_stops_sampling_only() {
    let e = engine(1.0); // every call sampled while running
    let r = e.registry();
    let plain = r.sampled("paused_plain", &[]).unwrap();
    let keyed = r.sampled_with("paused_keyed", &[], true).unwrap();
    let series = sampled_series(&e);
    let pushed = || sum_cells(&sampled_series(&e), cells::PUSHED);

    plain.record(1.0);
    assert_eq!(pushed(), 1, "running: every call is sampled");
    pause_this_thread(true);
    let before = pushed();
    for i in 0..1000 {
        plain.record(1.0);
        keyed.record_keyed(1.0, &i);
        assert!(!plain.start_timer().is_sampled());
    }
    assert_eq!(pushed(), before, "paused: nothing sampled");
    assert_eq!(plain.count(), 2001, "the exact count still counts");
    plain.record_critical(1.0);
    assert_eq!(
        pushed(),
        before + 1,
        "critical events are never sampled out"
    );

    // Only this thread is paused: another one samples as ever.
    std::thread::scope(|t| {
        t.spawn(|| plain.record(1.0));
    });
    assert_eq!(pushed(), before + 2, "another thread: sampled");
    pause_this_thread(false);
    plain.record(1.0);
    assert_eq!(pushed(), before + 2, "no re-arm: the skip is still running");
    rearm_this_thread(&series);
    plain.record(1.0);
    assert_eq!(pushed(), before + 3, "re-armed: sampled again at once");
    keyed.record_keyed(1.0, &1u64);
    assert_eq!(pushed(), before + 4, "keyed: sampled again");
}

/// Through the harness: the baseline repetitions push no record, the recording ones push
/// one per event (rate 1), at 1 and 2 threads; the events are counted in both.
#[test]
fn the_harness_switches_sampling_per_repetition() {
    let e = engine(1.0);
    let s = e.registry().sampled("harness_events", &[]).unwrap();
    let report = Harness::new(&e)
        .name("switch")
        .threads([1, 2])
        .repetitions(3)
        .iters(200)
        .run(|iters| {
            for i in 0..iters {
                s.record(i as f64);
            }
        })
        .unwrap();
    assert_eq!(report.baseline, Baseline::SamplingOff);
    assert_eq!(report.runs.len(), 2);
    for run in &report.runs {
        let m = run.meta;
        let events = 200 * 3 * run.threads as u64;
        assert_eq!(run.iters, 200);
        assert_eq!((run.recording_ns.len(), run.baseline_ns.len()), (3, 3));
        assert_eq!(m.events_recording, events, "{run:?}");
        assert_eq!(m.events_baseline, events, "{run:?}");
        assert_eq!(m.records_recording, events, "rate 1: every event: {run:?}");
        assert_eq!(m.records_baseline, 0, "sampling off: none: {run:?}");
        assert_eq!(m.records_flushed + m.records_dropped, events, "{run:?}");
        assert!(m.wall_seconds > 0.0 && m.flusher_cpu_seconds >= 0.0);
    }
    // The pause must be per worker, not engine-wide (every thread of the application would
    // skip 65,536 decisions), and undone after each off repetition, so that a run ending on
    // an off repetition leaves no skip in the arenas its workers hand on: a new thread
    // (which may adopt a worker's arena) samples at once, and so does this one.
    let before = s.count();
    let pushed = || sum_cells(&sampled_series(&e), cells::PUSHED);
    let p0 = pushed();
    std::thread::scope(|t| {
        t.spawn(|| s.record(1.0));
    });
    s.record(1.0);
    assert_eq!(
        (s.count(), pushed()),
        (before + 2, p0 + 2),
        "rate 1: both sampled"
    );
}

/// `compare` runs the bare closure for the baseline, the instrumented one for recording.
#[test]
fn compare_runs_the_bare_twin() {
    let e = engine(1.0);
    let s = e.registry().sampled("compare_events", &[]).unwrap();
    let report = Harness::new(&e)
        .threads([2])
        .repetitions(2)
        .iters(50)
        .compare(
            |iters| {
                std::hint::black_box(iters);
            },
            |iters| {
                for i in 0..iters {
                    s.record(i as f64);
                }
            },
        )
        .unwrap();
    assert_eq!(report.baseline, Baseline::Bare);
    let m = report.runs[0].meta;
    assert_eq!((m.events_recording, m.records_recording), (200, 200));
    assert_eq!((m.events_baseline, m.records_baseline), (0, 0));
}

#[test]
#[should_panic(expected = "boom in the closure")]
fn a_panic_in_the_closure_comes_back() {
    let e = engine(0.5);
    let _ = Harness::new(&e)
        .threads([2])
        .repetitions(2)
        .iters(10)
        .run(|_| panic!("boom in the closure"));
}

/// A report built by hand: its JSON parses back with criterion's fields, and the
/// criterion directory holds what criterion would write.
fn report_by_hand() -> OverheadReport {
    let recording = vec![110.0, 104.0, 103.0, 108.0, 102.0, 105.0];
    let baseline = vec![100.0; 6];
    let overhead = paired_overhead(&recording, &baseline);
    let ci = overhead.confidence_interval;
    let budget = Budget::percent(5.0).unwrap();
    OverheadReport {
        name: "toy loop".into(),
        budget,
        baseline: Baseline::SamplingOff,
        runs: vec![ThreadRun {
            threads: 2,
            iters: 1000,
            recording: Estimates::of(&recording),
            baseline: Estimates::of(&baseline),
            verdict: Verdict::of(
                overhead.point_estimate,
                ci.lower_bound,
                ci.upper_bound,
                budget,
            ),
            overhead,
            recording_ns: recording,
            baseline_ns: baseline,
            meta: MetaDuring {
                events_recording: 12_000,
                events_baseline: 12_000,
                records_recording: 375,
                records_baseline: 0,
                records_flushed: 375,
                records_dropped: 0,
                flushes: 1,
                flusher_cpu_seconds: 0.001,
                wall_seconds: 2.0,
            },
        }],
    }
}

#[test]
fn json_shape() {
    let r = report_by_hand();
    // Median of 2, 3, 4, 5, 8, 10 (%) = 4.5%; six pairs: [min, max] = [2%, 10%].
    assert_eq!(r.verdict(), Verdict::LikelyWithin);
    assert!(r.passed());
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["name"], "toy loop");
    assert_eq!(v["budget"], 0.05);
    assert_eq!(v["baseline"], "sampling_off");
    assert_eq!(v["verdict"], "likely_within");
    assert_eq!(v["passed"], true);
    assert_eq!(v["verdict_line"], r.verdict_line());
    let run = &v["runs"][0];
    assert_eq!(run["threads"], 2);
    assert_eq!(run["iters"], 1000);
    assert_eq!(run["repetitions"], 6);
    for mode in ["recording", "baseline"] {
        let est = run[mode].as_object().unwrap();
        let mut keys: Vec<&str> = est.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["mean", "median", "median_abs_dev", "slope", "std_dev"]
        );
        assert!(est["slope"].is_null());
        for k in ["mean", "median", "median_abs_dev", "std_dev"] {
            let e = &est[k];
            assert!(e["point_estimate"].is_f64(), "{mode}.{k}: {e}");
            assert!(e["standard_error"].is_f64(), "{mode}.{k}: {e}");
            let ci = &e["confidence_interval"];
            assert_eq!(ci["confidence_level"], 0.95);
            assert!(ci["lower_bound"].as_f64() <= ci["upper_bound"].as_f64());
        }
        assert_eq!(run["samples"][mode].as_array().unwrap().len(), 6);
    }
    assert_eq!(run["recording"]["median"]["point_estimate"], 104.5);
    let o = &run["overhead"];
    assert!((o["point_estimate"].as_f64().unwrap() - 0.045).abs() < 1e-12);
    assert!((o["confidence_interval"]["lower_bound"].as_f64().unwrap() - 0.02).abs() < 1e-12);
    assert!((o["confidence_interval"]["upper_bound"].as_f64().unwrap() - 0.10).abs() < 1e-12);
    assert_eq!(o["confidence_interval"]["confidence_level"], 0.968_75);
    assert_eq!(run["verdict"], "likely_within");
    assert_eq!(run["meta"]["records_recording"], 375);
    assert_eq!(run["meta"]["flusher_cpu_share"], 0.0005);
    assert_eq!(run["meta"]["sampled_fraction"], 0.03125);
}

#[test]
fn criterion_files() {
    let r = report_by_hand();
    let dir = std::env::temp_dir().join(format!("hotmeter-criterion-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    r.write_criterion(&dir).unwrap();
    let read = |p: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(p)).unwrap()).unwrap()
    };
    let est = read("toy_loop_2t/recording/new/estimates.json");
    assert_eq!(est["median"]["point_estimate"], 104.5);
    assert!(est["slope"].is_null());
    let bench = read("toy_loop_2t/baseline/new/benchmark.json");
    assert_eq!(bench["group_id"], "toy loop/2t");
    assert_eq!(bench["function_id"], "baseline");
    assert_eq!(bench["full_id"], "toy loop/2t/baseline");
    assert_eq!(bench["directory_name"], "toy_loop_2t/baseline");
    let sample = read("toy_loop_2t/recording/new/sample.json");
    assert_eq!(sample["sampling_mode"], "Flat");
    assert_eq!(sample["iters"][0], 1000.0);
    assert_eq!(sample["times"][0], 110_000.0);
    let over = read("toy_loop_2t/overhead.json");
    assert!((over["point_estimate"].as_f64().unwrap() - 0.045).abs() < 1e-12);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verdict_lines() {
    let mut r = report_by_hand();
    let line = r.verdict_line();
    assert!(
        line.starts_with("toy loop: 2 threads +4.5% [+2.0%, +10.0%] (median of 6 pairs, 96% CI"),
        "{line}"
    );
    assert!(
        line.ends_with(
            "likely within the 5% budget (not conclusive: the 2 thread interval reaches +10.0%)"
        ),
        "{line}"
    );
    r.budget = Budget::percent(20.0).unwrap();
    r.runs[0].verdict = Verdict::Within;
    assert!(r.verdict_line().ends_with("within the 20% budget"));
    r.runs[0].verdict = Verdict::Over;
    assert!(r.verdict_line().ends_with("OVER the 20% budget"));
    assert!(!r.passed());
    assert_eq!(r.meta_lines().len(), 1);
}
