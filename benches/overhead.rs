//! What instrumentation costs a real hot loop: a message-handling loop run bare and with the
//! metrics the original system recorded per message, through hotmeter and through two
//! peers, on 1 and 2 threads.
//!
//! Run it with `cargo bench --bench overhead` (smoke: `cargo bench --bench overhead --
//! --test`); `cargo run --release --example bench_table` then prints, per thread count, each
//! contender's median ns per message and its overhead over the bare loop,
//! `(instrumented - bare) / bare`.
//!
//! # The workloads
//!
//! `overhead/{1t,2t}`: one message: draw from a seeded xorshift, build a 64..=127-byte buffer
//! (header: client id, size, flags; then a payload), parse the header back out of it,
//! FNV-1a-hash the whole buffer (two interleaved lanes). One message in 64 opens a new
//! connection, one in about 1000 fails (both decided by the xorshift, so every contender
//! handles the same messages). Each thread has its own message stream.
//!
//! `overhead_fnv/{1t,2t}`: the second variant, a step of plain FNV-1a (~20 ns on the third
//! session's VM) over a 64-byte buffer that changes each message (the xorshift draw and a
//! message counter are written into it first; two interleaved lanes of 32 bytes), the
//! message's fields taken from the draw as above. No memory traffic of its own; consecutive messages' chains are
//! independent, so the core overlaps them and the loop is bound by the instructions it
//! retires: every instruction the recording adds costs its share.
//!
//! `overhead_fnv1/{1t,2t}`: the same with FNV-1a as specified, one multiply chain over the
//! 64 bytes (twice as long as the two lanes).
//!
//! # Per message, as the original system recorded
//!
//! - `hotmeter`: a `sampled_timer!` around the handling, `counter!` incs for messages and
//!   (when one opens) connections, the message size as a `record!` keyed by client id, and
//!   a failure as `record!(critical, ..)`. The global engine has the default configuration
//!   (sample rate 1/32, adaptive, a flush every second) with a fixed seed: its flusher runs
//!   during the measurement, as it would in production.
//! - `metrics`: metrics-rs macros into a metrics-util `Registry` (as `benches/record.rs`):
//!   counters for messages, connections and failures, histograms of the handling time (two
//!   `Instant::now()` per message: metrics-rs has no sampled timer) and of the message size
//!   (no client key: a per-client label would be a series per client). Histograms buffer
//!   raw values until a scrape; here they are drained after each timed batch, untimed.
//! - `prometheus_client`: the same with its `Counter` and `Histogram` handles, created once.
//! - `floor`: not a contender but the least any implementation must execute for the same
//!   five metrics: hand-written per-thread cells (exact counts and sum), a fixed 1-in-128
//!   countdown per sampled family and a 4-word push into a ring nobody drains. hotmeter's
//!   overhead can only approach this row's; when the floor itself costs more than 5% of a
//!   step, so must any metrics library recording the same at the same sampling rate.
//!
//! # What the numbers mean
//!
//! Each bench times `iters` messages with `iter_custom`. With 2 threads, the extra thread
//! handles one message untimed (first-touch setup), both meet at a barrier, and the main
//! thread times from the barrier until both have handled `iters` messages: wall time per
//! message on each thread while both run at once (the shape of `benches/record.rs`).
//!
//! After each hotmeter contender the bench prints what the flusher cost during it, read
//! from the engine's meta-metrics (`hotmeter_flusher_cpu_seconds_total` and
//! `hotmeter_flush_records_total` before and after, each after a final drain), plus the
//! rates the controller chose, and at the end the same for the whole run.

use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};

#[path = "common/metrics_rs.rs"]
mod metrics_rs;
use metrics_rs::{drain_metrics_histograms, metrics_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[path = "common/message.rs"]
mod message;
use message::{Fnv1Worker, FnvWorker, Step, Worker, bare, with_floor, with_hotmeter};

// ---------------------------------------------------------------------------------------
// Peers: one message each
// ---------------------------------------------------------------------------------------

#[inline(always)]
fn with_metrics<W: Step>(w: &mut W) {
    let start = Instant::now();
    let m = w.handle();
    metrics::histogram!("overhead_handle_seconds").record(start.elapsed().as_secs_f64());
    metrics::counter!("overhead_messages_total").increment(1);
    if m.new_connection {
        metrics::counter!("overhead_connections_total").increment(1);
    }
    metrics::histogram!("overhead_message_bytes").record(m.size as f64);
    if m.failed {
        metrics::counter!("overhead_messages_failed_total").increment(1);
    }
}

/// prometheus-client's metrics, created once and shared by every thread.
struct PromClient {
    handle_seconds: Histogram,
    messages: Counter,
    connections: Counter,
    message_bytes: Histogram,
    failed: Counter,
}

fn prom_client() -> &'static PromClient {
    static P: OnceLock<PromClient> = OnceLock::new();
    P.get_or_init(|| PromClient {
        // 1 µs .. ~1 s
        handle_seconds: Histogram::new(exponential_buckets(1e-6, 2.0, 21)),
        messages: Counter::default(),
        connections: Counter::default(),
        // 16 .. 2048 bytes
        message_bytes: Histogram::new(exponential_buckets(16.0, 2.0, 8)),
        failed: Counter::default(),
    })
}

#[inline(always)]
fn with_prometheus_client<W: Step>(w: &mut W) {
    let p = prom_client();
    let start = Instant::now();
    let m = w.handle();
    p.handle_seconds.observe(start.elapsed().as_secs_f64());
    p.messages.inc();
    if m.new_connection {
        p.connections.inc();
    }
    p.message_bytes.observe(m.size as f64);
    if m.failed {
        p.failed.inc();
    }
}

// ---------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------

fn hotmeter_engine() {
    static E: OnceLock<()> = OnceLock::new();
    E.get_or_init(|| {
        hotmeter::Engine::builder()
            .seed(0x0ee_4ead)
            .install()
            .expect("the bench installs the global engine before any macro runs");
    });
}

fn nothing() {}

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// `iters` messages of `op` on a fresh worker's stream.
#[inline(always)]
fn run<W: Step, F: Fn(&mut W)>(w: &mut W, iters: u64, op: &F) {
    for _ in 0..iters {
        op(w);
    }
}

/// Wall time of `iters` messages on each of `threads` threads, all at once (module docs).
fn timed<W: Step, F: Fn(&mut W) + Sync>(threads: usize, iters: u64, op: &F) -> Duration {
    if threads == 1 {
        let mut w = W::new(0);
        let start = Instant::now();
        run(&mut w, iters, op);
        return start.elapsed();
    }
    let start_line = Barrier::new(threads);
    let finish_line = Barrier::new(threads);
    std::thread::scope(|s| {
        for t in 1..threads {
            let (start_line, finish_line) = (&start_line, &finish_line);
            s.spawn(move || {
                let mut w = W::new(t);
                op(&mut w);
                start_line.wait();
                run(&mut w, iters, op);
                finish_line.wait();
            });
        }
        let mut w = W::new(0);
        start_line.wait();
        let start = Instant::now();
        run(&mut w, iters, op);
        finish_line.wait();
        start.elapsed()
    })
}

/// Registers one contender: `op` timed on `threads` threads, then `after` (untimed).
fn contender<W: Step, F: Fn(&mut W) + Sync>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    threads: usize,
    op: F,
    after: fn(),
) {
    // Register every series (on this thread) before timing.
    op(&mut W::new(99));
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let took = timed(threads, iters, &op);
            after();
            took
        })
    });
}

/// The flusher's totals as exported: (`hotmeter_flusher_cpu_seconds_total`,
/// `hotmeter_flush_records_total`), after a final drain.
fn flusher_totals() -> (f64, f64) {
    let e = hotmeter::global_engine();
    e.flush();
    let text = e.render(hotmeter::Format::Text).expect("render");
    (
        meta_value(&text, "hotmeter_flusher_cpu_seconds_total"),
        meta_value(&text, "hotmeter_flush_records_total"),
    )
}

/// The value of the first sample named exactly `name` in a 0.0.4 rendering.
fn meta_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// Prints what the flusher cost between two [`flusher_totals`], and the sample rates the
/// controller chose. (Not the `hotmeter_flusher_cpu_seconds_per_record` gauge: it covers the last 8
/// flush intervals, and criterion's analysis after a contender leaves them idle.)
fn report_flusher(id: &str, before: (f64, f64), after: (f64, f64)) {
    let text = hotmeter::global_engine()
        .render(hotmeter::Format::Text)
        .expect("render");
    let (cpu, records) = (after.0 - before.0, after.1 - before.1);
    if records == 0.0 {
        return; // the contender was filtered out
    }
    let rate = text
        .lines()
        .filter(|l| l.starts_with("hotmeter_sample_rate{") && l.contains("overhead_"))
        .map(|l| l.trim_start_matches("hotmeter_sample_rate"))
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "{id}: flusher {:.1} ms CPU for {records} records drained: {:.1} ns/record; \
         sample rates {rate}",
        cpu * 1e3,
        cpu * 1e9 / records,
    );
}

/// The contenders (and the floor) on `threads` threads, for one workload.
fn group<W: Step>(c: &mut Criterion, name: &str, threads: usize) {
    let id = format!("{name}/{threads}t");
    let mut g = c.benchmark_group(&id);
    contender(&mut g, "bare", threads, bare::<W>, nothing);
    contender(&mut g, "floor", threads, with_floor::<W>, nothing);
    let before = flusher_totals();
    contender(&mut g, "hotmeter", threads, with_hotmeter::<W>, nothing);
    report_flusher(&format!("{id}/hotmeter"), before, flusher_totals());
    contender(
        &mut g,
        "metrics",
        threads,
        with_metrics::<W>,
        drain_metrics_histograms,
    );
    contender(
        &mut g,
        "prometheus_client",
        threads,
        with_prometheus_client::<W>,
        nothing,
    );
    g.finish();
}

fn overhead(c: &mut Criterion) {
    hotmeter_engine();
    metrics_registry();
    for threads in [1, 2] {
        group::<Worker>(c, "overhead", threads);
    }
    for threads in [1, 2] {
        group::<FnvWorker>(c, "overhead_fnv", threads);
    }
    for threads in [1, 2] {
        group::<Fnv1Worker>(c, "overhead_fnv1", threads);
    }
    let (cpu, records) = flusher_totals();
    println!(
        "whole run: flusher {:.1} ms CPU for {records} records drained: {:.1} ns/record",
        cpu * 1e3,
        cpu * 1e9 / records
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    targets = overhead
}
criterion_main!(benches);
