//! Per-call cost of recording a metric: hotmeter beside two baselines and three peer crates,
//! each contender in the same criterion group as the ones it is compared with.
//!
//! Run it with `cargo bench --bench record` (criterion's smoke mode, each bench run once:
//! `cargo bench --bench record -- --test`). `cargo run --release --example bench_table`
//! then prints the results as a table.
//!
//! # Groups
//!
//! - `counter/inc/1thread`, `counter/inc/2threads`: add one to a counter. hotmeter through
//!   its macro with no labels (`hotmeter_macro`), with literal labels
//!   (`hotmeter_macro_labels`) and with a dynamic label value (`hotmeter_dynamic_label`);
//!   metrics-rs through a handle held by the caller (`metrics_handle`) and through its
//!   macro, which looks the series up on every call (`metrics_macro`); prometheus'
//!   `IntCounter`; prometheus-client's `Counter<u64>`.
//! - `histogram/record/1thread`, `histogram/record/2threads`: record one observation.
//!   hotmeter's `histogram!` macro; metrics-rs handle and macro; prometheus' `Histogram` with
//!   its default buckets; prometheus-client's `Histogram` with exponential buckets (1 µs
//!   to ~1 s, factor 2). Every contender records the same sequence of 64 latencies spread
//!   log-uniformly over 1 µs .. 1 s, in a scrambled order.
//! - `gauge/set/1thread`: set a gauge to an `f64`, the same value sequence.
//!
//! Every group also holds the baselines: `plain_thread_local_add` (a `thread_local!`
//! `Cell<u64>` += 1, a real load and store each call: the floor for "as cheap as `x += 1`")
//! and `shared_fetch_add` (one static `AtomicU64` `fetch_add`, `Relaxed`, shared by all
//! threads: what a naive shared counter costs); the gauge group has `shared_store` (a relaxed
//! store to one shared atomic) in place of the latter, the floor of any gauge's `set`.
//!
//! # What the numbers mean
//!
//! Every bench times a loop of `iters` calls with `iter_custom`. With N threads, N-1 extra
//! threads are spawned first, each makes one untimed call (so a thread's first-touch setup,
//! such as adopting an arena or filling a per-thread cache, is not measured), then all N
//! meet at a barrier; the main thread times from the barrier until every thread has done
//! its `iters` calls on the same metric. Criterion divides by `iters`, so the reported time
//! is **wall time per call on each thread** while all N threads record concurrently: with
//! perfect scaling it equals the 1-thread number, and contention on a shared cache line
//! shows up as growth.
//!
//! # Peers, set up honestly
//!
//! metrics-rs does nothing without a recorder, so the global recorder here is the one that
//! real exporters build on: `metrics_util`'s `Registry` with `AtomicStorage` (counters and
//! gauges an `Arc<AtomicU64>`, histograms an `AtomicBucket<f64>` of raw values). Its
//! histograms buffer raw values until an exporter's scrape drains them; here they are
//! drained after every timed batch, outside the timing.

use std::cell::Cell;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};

#[path = "common/metrics_rs.rs"]
mod metrics_rs;
use metrics_rs::{drain_metrics_histograms, metrics_registry};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// Number of distinct observation values (a power of two, so the index is a mask).
const N_VALUES: usize = 64;

/// 64 latencies, log-uniform over 1e-6 ..= 1.0 seconds, in a scrambled (not monotonic)
/// order so the branch predictor of a bucket search sees realistic variation.
fn values() -> [f64; N_VALUES] {
    let mut v = [0.0; N_VALUES];
    for (i, slot) in v.iter_mut().enumerate() {
        // 37 is odd, so i -> 37 i mod 64 is a permutation.
        let j = (i * 37) % N_VALUES;
        *slot = 10f64.powf(-6.0 + 6.0 * j as f64 / (N_VALUES - 1) as f64);
    }
    v
}

/// `iters` calls of `op`, passing the index of the observation value to use.
#[inline(always)]
fn run<F: Fn(usize)>(iters: u64, op: &F) {
    for i in 0..iters {
        op(i as usize % N_VALUES);
    }
}

/// Wall time of `iters` calls of `op` on each of `threads` threads, all recording at once
/// (see the module docs). Thread spawning, each extra thread's first call and the start
/// barrier are outside the timed span.
fn timed<F: Fn(usize) + Sync>(threads: usize, iters: u64, op: &F) -> Duration {
    if threads == 1 {
        let start = Instant::now();
        run(iters, op);
        return start.elapsed();
    }
    let start_line = Barrier::new(threads);
    let finish_line = Barrier::new(threads);
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(|| {
                op(0);
                start_line.wait();
                run(iters, op);
                finish_line.wait();
            });
        }
        start_line.wait();
        let start = Instant::now();
        run(iters, op);
        finish_line.wait();
        start.elapsed()
    })
}

/// Registers one contender: `op` timed on `threads` threads, then `after` (untimed).
fn contender<F, A>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, threads: usize, op: F, after: A)
where
    F: Fn(usize) + Sync,
    A: Fn(),
{
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let elapsed = timed(threads, iters, &op);
            after();
            elapsed
        })
    });
}

fn nothing() {}

fn group_name(base: &str, threads: usize) -> String {
    if threads == 1 {
        format!("{base}/1thread")
    } else {
        format!("{base}/{threads}threads")
    }
}

// ---------------------------------------------------------------------------------------
// Baselines
// ---------------------------------------------------------------------------------------

thread_local! {
    static LOCAL: Cell<u64> = const { Cell::new(0) };
}

static SHARED: AtomicU64 = AtomicU64::new(0);

/// `x += 1` on a thread-local. Passing the cell's address through `black_box` makes the
/// compiler load and store it on every call (as a real metric's cell would be), rather than
/// keeping it in a register or folding the loop into one add; it adds no instruction.
#[inline(always)]
fn plain_thread_local_add() {
    LOCAL.with(|c| {
        let c = black_box(c);
        c.set(c.get() + 1);
    });
}

#[inline(always)]
fn shared_fetch_add() {
    SHARED.fetch_add(1, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------

fn counter_inc(c: &mut Criterion, threads: usize) {
    metrics_registry();
    let metrics_handle = metrics::counter!("bench_metrics_handle_total");
    let prom = prometheus::IntCounter::new("bench_prom_total", "bench").unwrap();
    let prom_client = prometheus_client::metrics::counter::Counter::<u64>::default();
    // A label value known only at run time, as a request's route would be.
    let route: &str = black_box("/api/v1/users");

    let mut g = c.benchmark_group(group_name("counter/inc", threads));
    contender(
        &mut g,
        "hotmeter_macro",
        threads,
        |_| hotmeter::counter!("bench_counter_total").inc(),
        nothing,
    );
    contender(
        &mut g,
        "hotmeter_macro_labels",
        threads,
        |_| hotmeter::counter!("bench_labeled_total", "method" => "GET", "code" => "200").inc(),
        nothing,
    );
    contender(
        &mut g,
        "hotmeter_dynamic_label",
        threads,
        |_| {
            // Opaque on every call, so the value's hash cannot be hoisted out of the loop.
            let route = black_box(route);
            hotmeter::counter!("bench_routed_total", "route" => route).inc();
        },
        nothing,
    );
    contender(
        &mut g,
        "plain_thread_local_add",
        threads,
        |_| plain_thread_local_add(),
        nothing,
    );
    contender(
        &mut g,
        "shared_fetch_add",
        threads,
        |_| shared_fetch_add(),
        nothing,
    );
    contender(
        &mut g,
        "metrics_handle",
        threads,
        |_| metrics_handle.increment(1),
        nothing,
    );
    contender(
        &mut g,
        "metrics_macro",
        threads,
        |_| metrics::counter!("bench_metrics_macro_total").increment(1),
        nothing,
    );
    contender(&mut g, "prometheus", threads, |_| prom.inc(), nothing);
    contender(
        &mut g,
        "prometheus_client",
        threads,
        |_| {
            prom_client.inc();
        },
        nothing,
    );
    g.finish();
}

fn histogram_record(c: &mut Criterion, threads: usize) {
    metrics_registry();
    let v = values();
    let metrics_handle = metrics::histogram!("bench_metrics_handle_seconds");
    let prom = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
        "bench_prom_seconds",
        "bench",
    ))
    .unwrap();
    let prom_client = prometheus_client::metrics::histogram::Histogram::new(
        prometheus_client::metrics::histogram::exponential_buckets(1e-6, 2.0, 21),
    );

    let mut g = c.benchmark_group(group_name("histogram/record", threads));
    contender(
        &mut g,
        "hotmeter_macro",
        threads,
        |i| hotmeter::histogram!("bench_seconds").record(v[i]),
        nothing,
    );
    contender(
        &mut g,
        "plain_thread_local_add",
        threads,
        |_| plain_thread_local_add(),
        nothing,
    );
    contender(
        &mut g,
        "shared_fetch_add",
        threads,
        |_| shared_fetch_add(),
        nothing,
    );
    contender(
        &mut g,
        "metrics_handle",
        threads,
        |i| metrics_handle.record(v[i]),
        drain_metrics_histograms,
    );
    contender(
        &mut g,
        "metrics_macro",
        threads,
        |i| metrics::histogram!("bench_metrics_macro_seconds").record(v[i]),
        drain_metrics_histograms,
    );
    contender(
        &mut g,
        "prometheus",
        threads,
        |i| prom.observe(v[i]),
        nothing,
    );
    contender(
        &mut g,
        "prometheus_client",
        threads,
        |i| prom_client.observe(v[i]),
        nothing,
    );
    g.finish();
}

fn gauge_set(c: &mut Criterion) {
    metrics_registry();
    let v = values();
    let metrics_handle = metrics::gauge!("bench_metrics_handle_gauge");
    let prom = prometheus::Gauge::new("bench_prom_gauge", "bench").unwrap();
    let prom_client =
        prometheus_client::metrics::gauge::Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    static SHARED_GAUGE: AtomicU64 = AtomicU64::new(0);

    let threads = 1;
    let mut g = c.benchmark_group(group_name("gauge/set", threads));
    contender(
        &mut g,
        "hotmeter_macro",
        threads,
        |i| hotmeter::gauge!("bench_gauge").set(v[i]),
        nothing,
    );
    contender(
        &mut g,
        "plain_thread_local_add",
        threads,
        |_| plain_thread_local_add(),
        nothing,
    );
    contender(
        &mut g,
        "shared_store",
        threads,
        |i| SHARED_GAUGE.store(v[i].to_bits(), Ordering::Relaxed),
        // Read it back after each batch: LTO deletes a static that is only ever stored to,
        // stores and all.
        || {
            black_box(SHARED_GAUGE.load(Ordering::Relaxed));
        },
    );
    contender(
        &mut g,
        "metrics_handle",
        threads,
        |i| metrics_handle.set(v[i]),
        nothing,
    );
    contender(
        &mut g,
        "metrics_macro",
        threads,
        |i| metrics::gauge!("bench_metrics_macro_gauge").set(v[i]),
        nothing,
    );
    contender(&mut g, "prometheus", threads, |i| prom.set(v[i]), nothing);
    contender(
        &mut g,
        "prometheus_client",
        threads,
        |i| {
            prom_client.set(v[i]);
        },
        nothing,
    );
    g.finish();
}

fn benches(c: &mut Criterion) {
    for threads in [1, 2] {
        counter_inc(c, threads);
    }
    for threads in [1, 2] {
        histogram_record(c, threads);
    }
    gauge_set(c);
}

criterion_group! {
    name = record;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(record);
