//! Sampled logging (issue 11): hotmeter's `SamplingLayer` with its `NonBlocking` writer
//! beside `tracing-subscriber`'s fmt layer with `tracing-appender`'s non-blocking writer,
//! both writing into `io::sink()`, on one thread.
//!
//! - `logging/sampled_out_info`: an INFO event with no id that hotmeter samples out (rate
//!   2^-20); the fmt layer formats and queues every event; a bare
//!   `tracing_subscriber::registry()` is the floor.
//! - `logging/kept_info`: an INFO event kept, formatted and queued (a field that changes
//!   every event, so repeat aggregation does not fold it).
//! - `logging/in_span_with_id`: the sampled-out INFO inside a span carrying a
//!   `request_id` (hotmeter's decision is keyed by the span's id).
//! - `logging/seed_debug_1pct`: the ~50 ns FNV step of `benches/overhead.rs`
//!   (`overhead_fnv`) plus one `debug!` per message, which hotmeter keeps at `debug=0.01`
//!   (2^-7) and the fmt layer writes every time; `bare` is the step alone.
//!
//! `cargo bench --features tracing --bench logging` (smoke: `-- --test`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hotmeter::tracing_layer::{NonBlocking, SamplingLayer, WorkerGuard};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

/// hotmeter's layer and writer into `io::sink()`, at `rates`, with early sampling or not.
fn hotmeter(rates: &str, early: bool) -> (Dispatch, WorkerGuard) {
    let engine = Arc::new(hotmeter::Engine::builder().build().expect("engine"));
    let (writer, guard) = NonBlocking::builder()
        .build(std::io::sink(), &engine)
        .expect("writer");
    let layer = SamplingLayer::builder()
        .rates(rates)
        .read_env(false)
        .early_sampling(early)
        .writer(writer)
        .build(&engine)
        .expect("layer");
    (
        Dispatch::new(tracing_subscriber::registry().with(layer)),
        guard,
    )
}

/// The fmt layer (no ANSI) over tracing-appender's non-blocking writer into `io::sink()`,
/// every level enabled.
fn fmt() -> (Dispatch, tracing_appender::non_blocking::WorkerGuard) {
    let (writer, guard) = tracing_appender::non_blocking(std::io::sink());
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(writer);
    let subscriber = tracing_subscriber::registry()
        .with(layer)
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    (Dispatch::new(subscriber), guard)
}

fn bare() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry())
}

#[path = "common/fnv.rs"]
mod fnv;
use fnv::Fnv;

fn logging(c: &mut Criterion) {
    let (hm_out, _g1) = hotmeter("info=0.000001,debug=0.01", false);
    let (hm_early, _g4) = hotmeter("info=0.000001,debug=0.01", true);
    let (hm_keep, _g2) = hotmeter("", false);
    let (fmt, _g3) = fmt();
    let bare = bare();

    let mut g = c.benchmark_group("logging/sampled_out_info");
    for (name, d) in [
        ("bare_registry", &bare),
        ("hotmeter", &hm_out),
        ("hotmeter_early", &hm_early),
        ("fmt_appender", &fmt),
    ] {
        g.bench_function(name, |b| {
            tracing::dispatcher::with_default(d, || {
                let mut i = 0u64;
                b.iter(|| {
                    i += 1;
                    tracing::info!(target: "bench::hot", i, "tick");
                });
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("logging/kept_info");
    for (name, d) in [("hotmeter", &hm_keep), ("fmt_appender", &fmt)] {
        g.bench_function(name, |b| {
            tracing::dispatcher::with_default(d, || {
                let mut i = 0u64;
                b.iter(|| {
                    i += 1;
                    tracing::info!(target: "bench::kept", i, bytes = 512u64, "sent");
                });
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("logging/in_span_with_id");
    for (name, d) in [
        ("bare_registry", &bare),
        ("hotmeter", &hm_out),
        ("fmt_appender", &fmt),
    ] {
        g.bench_function(name, |b| {
            tracing::dispatcher::with_default(d, || {
                let span = tracing::info_span!("request", request_id = 123_456_789u64);
                let _e = span.enter();
                let mut i = 0u64;
                b.iter(|| {
                    i += 1;
                    tracing::info!(target: "bench::hot", i, "tick");
                });
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("logging/seed_debug_1pct");
    g.bench_function("bare", |b| {
        let mut s = Fnv::new(0);
        b.iter(|| black_box(s.step()));
    });
    for (name, d) in [
        ("hotmeter", &hm_out),
        ("hotmeter_early", &hm_early),
        ("fmt_appender", &fmt),
    ] {
        g.bench_function(name, |b| {
            tracing::dispatcher::with_default(d, || {
                let mut s = Fnv::new(0);
                b.iter(|| {
                    let r = s.step();
                    tracing::debug!(target: "bench::seed", r, "message");
                });
            });
        });
    }
    g.finish();
}

/// Two threads each logging `iters` events through `d`: the wall time per event of one
/// thread (both run at once).
fn two_threads(d: &Dispatch, iters: u64, event: fn(u64)) -> Duration {
    let start = std::sync::Barrier::new(3);
    let t = std::thread::scope(|s| {
        for _ in 0..2 {
            let (d, start) = (d.clone(), &start);
            s.spawn(move || {
                tracing::dispatcher::with_default(&d, || {
                    start.wait();
                    for i in 0..iters {
                        event(i);
                    }
                });
            });
        }
        start.wait();
        std::time::Instant::now()
    });
    t.elapsed()
}

/// The 1-thread groups' events, from 2 threads at once.
fn logging_two_threads(c: &mut Criterion) {
    let (hm_out, _g1) = hotmeter("info=0.000001,debug=0.01", false);
    let (hm_keep, _g2) = hotmeter("", false);
    let (fmt, _g3) = fmt();
    let sampled_out: fn(u64) = |i| tracing::info!(target: "bench::hot", i, "tick");
    let kept: fn(u64) = |i| tracing::info!(target: "bench::kept", i, bytes = 512u64, "sent");
    let mut g = c.benchmark_group("logging_2t");
    for (group, event, cases) in [
        (
            "sampled_out_info",
            sampled_out,
            [("hotmeter", &hm_out), ("fmt_appender", &fmt)],
        ),
        (
            "kept_info",
            kept,
            [("hotmeter", &hm_keep), ("fmt_appender", &fmt)],
        ),
    ] {
        for (name, d) in cases {
            g.bench_function(format!("{group}/{name}"), |b| {
                b.iter_custom(|iters| two_threads(d, iters, event));
            });
        }
    }
    g.finish();
}

/// The writer alone: `LINES` preformatted lines sent from one thread into a sink that
/// discards, under the block policy (nothing dropped), timed until the guard's drop has
/// written the last one: lines per second through the queue and the worker.
fn writer_throughput(c: &mut Criterion) {
    const LINES: u64 = 100_000;
    let line = "ts=2026-12-02T00:41:07.123456Z level=INFO target=bench::kept message=sent i=7 bytes=512 sample_rate=1\n";
    let mut g = c.benchmark_group("logging/writer_throughput");
    g.throughput(criterion::Throughput::Elements(LINES));
    g.sample_size(10);
    g.bench_function("hotmeter_block", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let engine = Arc::new(hotmeter::Engine::builder().build().expect("engine"));
                let (writer, guard) = NonBlocking::builder()
                    .overflow(hotmeter::tracing_layer::OverflowPolicy::Block(
                        Duration::from_secs(5),
                    ))
                    .build(std::io::sink(), &engine)
                    .expect("writer");
                let t = std::time::Instant::now();
                for _ in 0..LINES {
                    writer.send(line.to_string());
                }
                drop(guard);
                total += t.elapsed();
                let st = writer.stats();
                assert_eq!((st.written, st.dropped()), (LINES, 0), "every line written");
            }
            total
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = logging, logging_two_threads, writer_throughput
}
criterion_main!(benches);
