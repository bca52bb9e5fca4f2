//! The harness's JSON: the report, and the files criterion writes per benchmark
//! (`new/estimates.json`, `new/benchmark.json`, `new/sample.json`), with criterion's field
//! names so that tools reading `target/criterion` read these too.

use std::path::Path;

use serde_json::{Value, json};

use super::{Estimate, Estimates, OverheadReport, ThreadRun};

/// A number, or `null` for NaN and infinities (JSON has neither).
fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Criterion's `Estimate`.
pub(super) fn estimate(e: &Estimate) -> Value {
    let ci = &e.confidence_interval;
    json!({
        "confidence_interval": {
            "confidence_level": num(ci.confidence_level),
            "lower_bound": num(ci.lower_bound),
            "upper_bound": num(ci.upper_bound),
        },
        "point_estimate": num(e.point_estimate),
        "standard_error": num(e.standard_error),
    })
}

/// Criterion's `estimates.json` (`slope` is null: every repetition runs as many
/// iterations, as in criterion's flat sampling mode).
pub(super) fn estimates(e: &Estimates) -> Value {
    json!({
        "mean": estimate(&e.mean),
        "median": estimate(&e.median),
        "median_abs_dev": estimate(&e.median_abs_dev),
        "slope": Value::Null,
        "std_dev": estimate(&e.std_dev),
    })
}

fn run(r: &ThreadRun) -> Value {
    let m = &r.meta;
    json!({
        "threads": r.threads,
        "iters": r.iters,
        "repetitions": r.recording_ns.len(),
        "recording": estimates(&r.recording),
        "baseline": estimates(&r.baseline),
        "overhead": estimate(&r.overhead),
        "verdict": r.verdict.as_str(),
        "passed": r.verdict.passed(),
        "samples": {
            "recording": r.recording_ns.iter().map(|&x| num(x)).collect::<Vec<_>>(),
            "baseline": r.baseline_ns.iter().map(|&x| num(x)).collect::<Vec<_>>(),
        },
        "meta": {
            "events_recording": m.events_recording,
            "events_baseline": m.events_baseline,
            "records_recording": m.records_recording,
            "records_baseline": m.records_baseline,
            "records_flushed": m.records_flushed,
            "records_dropped": m.records_dropped,
            "flushes": m.flushes,
            "flusher_cpu_seconds": num(m.flusher_cpu_seconds),
            "wall_seconds": num(m.wall_seconds),
            "sampled_fraction": num(m.sampled_fraction()),
            "flusher_cpu_share": num(m.flusher_cpu_share()),
        },
    })
}

pub(super) fn report(r: &OverheadReport) -> Value {
    json!({
        "name": r.name,
        "budget": num(r.budget.as_fraction()),
        "baseline": r.baseline.as_str(),
        "confidence_level": num(super::CONFIDENCE_LEVEL),
        "verdict": r.verdict().as_str(),
        "passed": r.passed(),
        "verdict_line": r.verdict_line(),
        "runs": r.runs.iter().map(run).collect::<Vec<_>>(),
    })
}

/// Criterion's directory name for an id: characters outside `[A-Za-z0-9_-]` become `_`
/// (criterion turns `/` and most punctuation into `_` too).
fn dir_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(super) fn write_criterion(r: &OverheadReport, dir: &Path) -> std::io::Result<()> {
    let write = |path: &Path, v: &Value| {
        std::fs::write(
            path,
            serde_json::to_string(v).expect("a JSON value serializes"),
        )
    };
    for run in &r.runs {
        let group = format!("{}/{}t", r.name, run.threads);
        let group_dir = dir.join(dir_name(&group));
        for (function, ns, est) in [
            ("recording", &run.recording_ns, &run.recording),
            ("baseline", &run.baseline_ns, &run.baseline),
        ] {
            let full_id = format!("{group}/{function}");
            let directory_name = format!("{}/{function}", dir_name(&group));
            let new = group_dir.join(function).join("new");
            std::fs::create_dir_all(&new)?;
            write(&new.join("estimates.json"), &estimates(est))?;
            write(
                &new.join("benchmark.json"),
                &json!({
                    "group_id": group,
                    "function_id": function,
                    "value_str": Value::Null,
                    "throughput": Value::Null,
                    "full_id": full_id,
                    "directory_name": directory_name,
                    "title": full_id,
                }),
            )?;
            // Criterion's `sample.json`: per sample, iterations and total nanoseconds.
            write(
                &new.join("sample.json"),
                &json!({
                    "sampling_mode": "Flat",
                    "iters": ns.iter().map(|_| run.iters as f64).collect::<Vec<_>>(),
                    "times": ns.iter().map(|&x| num(x * run.iters as f64)).collect::<Vec<_>>(),
                }),
            )?;
        }
        write(&group_dir.join("overhead.json"), &estimate(&run.overhead))?;
    }
    Ok(())
}
