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
//! `overhead_fnv/{1t,2t}`: the second variant, a step of ~50 ns of plain FNV-1a over a
//! 64-byte buffer that changes each message (the xorshift draw and a message counter are
//! written into it first; two interleaved lanes of 32 bytes), the message's fields taken
//! from the draw as above. No memory traffic of its own; consecutive messages' chains are
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

use std::hint::black_box;
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};

#[path = "common/metrics_rs.rs"]
mod metrics_rs;
use metrics_rs::{drain_metrics_histograms, metrics_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

// ---------------------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------------------

/// A message stream: one per thread.
trait Step {
    fn new(thread: usize) -> Self;
    /// Handles the next message.
    fn handle(&mut self) -> Message;
}

#[path = "common/fnv.rs"]
mod fnv;
#[path = "common/seed.rs"]
mod seed;
use fnv::Fnv;
use seed::{MAX_LEN, Message};

/// One thread's message stream: build, parse, hash (`benches/common/seed.rs`, shared with
/// `examples/overhead_harness.rs`).
struct Worker {
    rng: u64,
    buf: [u8; MAX_LEN],
}

impl Step for Worker {
    fn new(thread: usize) -> Self {
        Self {
            rng: 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(thread as u64 + 1) | 1,
            buf: [0; MAX_LEN],
        }
    }

    #[inline(always)]
    fn handle(&mut self) -> Message {
        seed::handle(&mut self.rng, &mut self.buf)
    }
}

/// The second variant's stream: FNV-1a over a 64-byte buffer that changes each message
/// (`benches/common/fnv.rs`, shared with `benches/logging.rs`).
struct FnvWorker(Fnv);

impl Step for FnvWorker {
    fn new(thread: usize) -> Self {
        Self(Fnv::new(thread))
    }

    #[inline(always)]
    fn handle(&mut self) -> Message {
        let r = self.0.step();
        Message {
            client_id: (r >> 8) & 0xff,
            size: 64 + (r & 63) as usize,
            new_connection: (r >> 16) & 63 == 0,
            failed: (r >> 40).is_multiple_of(1000),
        }
    }
}

/// The second variant with FNV-1a as specified (one chain over the 64 bytes).
struct Fnv1Worker(Fnv);

impl Step for Fnv1Worker {
    fn new(thread: usize) -> Self {
        Self(Fnv::new(thread))
    }

    #[inline(always)]
    fn handle(&mut self) -> Message {
        let r = self.0.step_one_lane();
        Message {
            client_id: (r >> 8) & 0xff,
            size: 64 + (r & 63) as usize,
            new_connection: (r >> 16) & 63 == 0,
            failed: (r >> 40).is_multiple_of(1000),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Contenders: one message each
// ---------------------------------------------------------------------------------------

#[inline(always)]
fn bare<W: Step>(w: &mut W) {
    black_box(w.handle());
}

#[inline(always)]
fn with_hotmeter<W: Step>(w: &mut W) {
    let timer = hotmeter::sampled_timer!("overhead_handle_seconds");
    let m = w.handle();
    drop(timer);
    hotmeter::counter!("overhead_messages_total").inc();
    if m.new_connection {
        hotmeter::counter!("overhead_connections_total").inc();
    }
    hotmeter::record!("overhead_message_bytes", m.size as f64, key = m.client_id);
    if m.failed {
        hotmeter::record!(critical, "overhead_messages_failed", 1.0, key = m.client_id);
    }
}

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

/// A sampled record in the floor's ring: series, value, key, a spare word (hotmeter's record
/// is four words too).
type FloorRecord = [u64; 4];

/// Records in the floor's ring (a power of two).
const FLOOR_RING: usize = 256;

/// One in this many events of a sampled family is pushed by the floor: 1/128, the rate
/// hotmeter's default engine settles at on this workload (`hotmeter_sample_rate` printed
/// after each hotmeter row; the floor of the default `min_sample_rate` 0.01).
const FLOOR_GAP: u32 = 128;

/// The floor: what the five metrics cost at the least any implementation must execute, as
/// one thread's plain cells written by hand: exact counts (and the message bytes' sum), a
/// countdown per sampled family, and a 4-word push into a ring on a sampled or critical
/// event. Nothing else: no registry, no call-site lookup, no random gap (a fixed one), no
/// shutdown handshake, no consumer of the ring, no flusher. A lower bound for hotmeter's
/// row, not a contender.
struct Floor {
    messages: u64,
    connections: u64,
    bytes_count: u64,
    bytes_sum: f64,
    failed: u64,
    timer_gap: u32,
    bytes_gap: u32,
    head: usize,
    ring: [FloorRecord; FLOOR_RING],
}

impl Floor {
    #[inline(always)]
    fn push(&mut self, r: FloorRecord) {
        self.ring[self.head & (FLOOR_RING - 1)] = r;
        self.head = self.head.wrapping_add(1);
    }
}

thread_local! {
    static FLOOR: std::cell::UnsafeCell<Floor> = const {
        std::cell::UnsafeCell::new(Floor {
            messages: 0,
            connections: 0,
            bytes_count: 0,
            bytes_sum: 0.0,
            failed: 0,
            timer_gap: FLOOR_GAP,
            bytes_gap: FLOOR_GAP,
            head: 0,
            ring: [[0; 4]; FLOOR_RING],
        })
    };
}

#[inline(always)]
fn with_floor<W: Step>(w: &mut W) {
    FLOOR.with(|f| {
        // SAFETY: each thread's `Floor` is touched only by that thread, and only inside this
        // closure, which does not re-enter it (`W::handle` never touches `FLOOR`): this is
        // the only reference.
        let f = unsafe { &mut *f.get() };
        f.timer_gap -= 1;
        let start = (f.timer_gap == 0).then(Instant::now);
        let m = w.handle();
        if let Some(start) = start {
            f.timer_gap = FLOOR_GAP;
            f.push([0, start.elapsed().as_nanos() as u64, 0, 0]);
        }
        f.messages += 1;
        if m.new_connection {
            f.connections += 1;
        }
        f.bytes_count += 1;
        f.bytes_sum += m.size as f64;
        f.bytes_gap -= 1;
        if f.bytes_gap == 0 {
            f.bytes_gap = FLOOR_GAP;
            f.push([1, m.size as u64, m.client_id, 0]);
        }
        if m.failed {
            f.failed += 1;
            f.push([2, 1, m.client_id, 0]);
        }
    })
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
