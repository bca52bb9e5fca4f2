//! The `metrics` facade through hotmeter's recorder beside metrics-exporter-prometheus's
//! (issue 10): the same macro call, `metrics::counter!("x", "k" => "v").increment(1)` and
//! `metrics::histogram!("h", "k" => "v").record(v)`, 1 and 2 threads, same run.
//!
//! Run it with `cargo bench --features metrics --bench facade` (smoke: `-- --test`).
//!
//! Groups `facade/counter/1thread`, `facade/counter/2threads`, `facade/histogram/1thread`,
//! `facade/histogram/2threads`; contenders `hotmeter_recorder` (default rules: the
//! histogram counts exactly against the classic 0.005 … 10 bounds) and
//! `metrics_exporter_prometheus` (its recorder alone, `default-features = false`: a
//! metrics-util registry, histograms buffering raw values until a scrape drains them; here
//! drained by `run_upkeep` after every timed batch, outside the timing).
//!
//! Each recorder is the thread's `metrics::with_local_recorder`, on every thread, so both
//! pay the same facade dispatch. With N threads, N-1 extra threads make one untimed call
//! each, then all N meet at a barrier; the time is wall time per call on each thread while
//! all N record at once (as in `benches/record.rs`).

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use metrics::Recorder;

/// 64 latencies, log-uniform over 1e-6 ..= 1.0 s, scrambled (as in `benches/record.rs`).
fn values() -> [f64; 64] {
    let mut v = [0.0; 64];
    for (i, slot) in v.iter_mut().enumerate() {
        let j = (i * 37) % 64;
        *slot = 10f64.powf(-6.0 + 6.0 * j as f64 / 63.0);
    }
    v
}

/// Wall time of `iters` calls of `op` on each of `threads` threads, each with `recorder` as
/// its local recorder.
fn timed<R: Recorder + Sync, F: Fn(usize) + Sync>(
    recorder: &R,
    threads: usize,
    iters: u64,
    op: &F,
) -> Duration {
    let run = || {
        for i in 0..iters {
            op(i as usize & 63);
        }
    };
    if threads == 1 {
        return metrics::with_local_recorder(recorder, || {
            op(0);
            let start = Instant::now();
            run();
            start.elapsed()
        });
    }
    let start_line = Barrier::new(threads);
    let finish_line = Barrier::new(threads);
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(|| {
                metrics::with_local_recorder(recorder, || {
                    op(0);
                    start_line.wait();
                    run();
                    finish_line.wait();
                })
            });
        }
        metrics::with_local_recorder(recorder, || {
            op(0);
            start_line.wait();
            let start = Instant::now();
            run();
            finish_line.wait();
            start.elapsed()
        })
    })
}

fn facade(c: &mut Criterion) {
    let engine = hotmeter::Engine::builder().build().expect("an engine");
    let hotmeter = hotmeter::metrics_recorder::MetricsRecorder::new(&engine);
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let prometheus_handle = prometheus.handle();
    let values = values();

    let counter = |_: usize| metrics::counter!("x", "k" => "v").increment(1);
    let histogram = |i: usize| metrics::histogram!("h", "k" => "v").record(black_box(values[i]));

    for threads in [1, 2] {
        let suffix = if threads == 1 { "1thread" } else { "2threads" };
        let mut g = c.benchmark_group(format!("facade/counter/{suffix}"));
        g.bench_function("hotmeter_recorder", |b| {
            b.iter_custom(|iters| timed(&hotmeter, threads, iters, &counter));
        });
        g.bench_function("metrics_exporter_prometheus", |b| {
            b.iter_custom(|iters| timed(&prometheus, threads, iters, &counter));
        });
        g.finish();

        let mut g = c.benchmark_group(format!("facade/histogram/{suffix}"));
        g.bench_function("hotmeter_recorder", |b| {
            b.iter_custom(|iters| timed(&hotmeter, threads, iters, &histogram));
        });
        g.bench_function("metrics_exporter_prometheus", |b| {
            b.iter_custom(|iters| {
                let t = timed(&prometheus, threads, iters, &histogram);
                prometheus_handle.run_upkeep();
                t
            });
        });
        g.finish();
    }
    // Both saw every call: the counts are exact on hotmeter's side.
    let snap = engine.registry().snapshot();
    assert!(snap.counter("x", &[("k", "v")]).unwrap_or(0) > 0);
}

criterion_group!(benches, facade);
criterion_main!(benches);
