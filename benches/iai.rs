//! Instruction counts per recording call, under callgrind (iai-callgrind): deterministic, so
//! this is the CI gate (`.ci/iai_gate` divides each count by [`N`] and checks it against
//! `benches/iai_budgets.txt`); criterion (`benches/record.rs`, `benches/sampled.rs`) is for
//! the wall-time report.
//!
//! Run: `cargo bench --bench iai` (needs valgrind and `iai-callgrind-runner` 0.16.1, the
//! version of the `iai-callgrind` dev-dependency; the gate installs it).
//!
//! # Shape of every bench
//!
//! iai-callgrind runs each bench in its own process under callgrind and counts only the
//! instructions executed inside the bench function (and what it calls), on its thread. So:
//!
//! - the **setup** function (not counted) installs the global engine with the
//!   configuration the bench needs (a fresh process per bench, so each installs its own),
//!   then makes [`WARMUP`] calls of the *same* `#[inline(never)]` op function the bench
//!   calls, so the call site's first-call work (registering the series, the thread's arena
//!   chunk, its ring and sampler) is done before counting starts;
//! - the **bench** function calls the op [`N`] times; the count includes the loop and the
//!   call of the op (about 5 instructions a call, the same in every bench: compare a
//!   contender with its `baseline_*` row);
//! - the **teardown** (not counted) checks the premise where one can be broken silently
//!   (e.g. that the not-sampled bench really sampled nothing, or that no sampled record hit a
//!   full ring), and panics otherwise, which fails the run.
//!
//! # Determinism
//!
//! Each engine has a fixed sampler seed, `adaptive(false)`, a 3600 s flush interval and
//! `wake_on_high_water(false)`, so the flusher thread stays parked for the whole run and
//! nothing in the measured loop depends on it (callgrind counts only the bench thread
//! anyway). What remains time-dependent: a sampled or critical call reads the clock (the
//! record's timestamp; `sampled_timer!` also reads it at start and drop). Through the vDSO
//! that is a handful of instructions whose count can differ by a retry of its seqlock
//! loop, so those rows may move by a few instructions per million calls between runs; the
//! gate's 5% tolerance is far above that.

// The iai-callgrind macros generate `pub mod`s that cannot carry docs.
#![allow(missing_docs)]

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hotmeter::sample::record::Record;
use hotmeter::sample::ring::{Consumer, Overflow, Producer, ring};
use iai_callgrind::{library_benchmark, library_benchmark_group, main};

#[path = "common/message.rs"]
#[allow(dead_code)] // the other steps and the metrics' names are `benches/overhead.rs`'s
mod message;
use message::{FnvWorker, Step};

/// Calls per measured function: the gate divides the count by this.
const N: usize = 10_000;
/// Untimed calls before counting (registration, first-touch allocation, warm caches).
const WARMUP: usize = 1_000;
/// Ring capacity for the sampled benches: warm-up and measured records both fit, so no
/// record meets a full ring (the teardowns check it).
const RING: usize = 1 << 15;

/// 64 latencies, log-uniform over 1 µs .. 1 s, in a scrambled order (as
/// `benches/record.rs`), so a histogram record lands in varying buckets. Made by the setup:
/// the measured loop only indexes it.
fn values() -> &'static [f64; 64] {
    let mut v = [0.0; 64];
    for (i, slot) in v.iter_mut().enumerate() {
        let j = (i * 37) % 64;
        *slot = 10f64.powf(-6.0 + 6.0 * j as f64 / 63.0);
    }
    Box::leak(Box::new(v))
}

// ---------------------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------------------

/// Installs the global engine sampling every family at `rate` (no adaptation), with a
/// parked flusher. Panics if one exists already: every bench runs in a fresh process, so
/// that would mean a bench measured with the wrong configuration.
fn install(rate: f64) -> &'static hotmeter::Engine {
    hotmeter::Engine::builder()
        .sample_rate(rate)
        .min_sample_rate(rate)
        .max_sample_rate(rate)
        .adaptive(false)
        .ring_capacity(RING)
        .flush_interval(Duration::from_secs(3600))
        .wake_on_high_water(false)
        .seed(0x1a1_5eed)
        .install()
        .expect("each iai bench installs the global engine once, in its own process")
}

/// The probability of the not-sampled benches: one call in about a million is sampled, and
/// with the fixed seed none of the `WARMUP + N` calls is (the teardown checks it).
const RARE: f64 = 1.0 / (1u64 << 20) as f64;

// ---------------------------------------------------------------------------------------
// Ops: each `#[inline(never)]`, so setup (warm-up) and bench run the very same call site.
// ---------------------------------------------------------------------------------------

thread_local! {
    static LOCAL: Cell<u64> = const { Cell::new(0) };
    static COUNT_SUM: Cell<(u64, f64)> = const { Cell::new((0, 0.0)) };
}

static SHARED_GAUGE: AtomicU64 = AtomicU64::new(0);

#[inline(never)]
fn op_plain_tls_add() {
    LOCAL.with(|c| {
        let c = black_box(c);
        c.set(c.get() + 1);
    });
}

#[inline(never)]
fn op_counter_literal_label() {
    hotmeter::counter!("iai_requests_total", "method" => "GET", "code" => "200").inc();
}

#[inline(never)]
fn op_counter_literal() {
    hotmeter::counter!("iai_messages_total").inc();
}

#[inline(never)]
fn op_counter_dynamic_label(route: &str) {
    hotmeter::counter!("iai_routed_total", "route" => route).inc();
}

#[inline(never)]
fn op_shared_store(v: f64) {
    // Through `black_box`: LTO deletes a static that is only ever stored to, stores and all.
    black_box(&SHARED_GAUGE).store(v.to_bits(), Ordering::Relaxed);
}

#[inline(never)]
fn op_gauge_set(v: f64) {
    hotmeter::gauge!("iai_queue_depth").set(v);
}

#[inline(never)]
fn op_histogram_record(v: f64) {
    hotmeter::histogram!("iai_request_seconds").record(v);
}

#[inline(never)]
fn op_plain_tls_count_and_sum(v: f64) {
    COUNT_SUM.with(|c| {
        let c = black_box(c);
        let (n, s) = c.get();
        c.set((n + 1, s + v));
    });
}

#[inline(never)]
fn op_record_not_sampled(v: f64) {
    hotmeter::record!("iai_not_sampled_bytes", v);
}

#[inline(never)]
fn op_record_keyed_not_sampled(v: f64, client: u64) {
    hotmeter::record!("iai_keyed_bytes", v, key = client);
}

#[inline(never)]
fn op_sampled_timer_not_sampled() {
    let _t = hotmeter::sampled_timer!("iai_rare_seconds");
}

#[inline(never)]
fn op_record_sampled(v: f64) {
    hotmeter::record!("iai_sampled_bytes", v);
}

#[inline(never)]
fn op_record_critical(v: f64) {
    hotmeter::record!(critical, "iai_failed", v);
}

#[inline(never)]
fn op_ring_push(p: &mut Producer, v: f64) {
    let _ = black_box(p.push(Record {
        series: 1,
        k: 0,
        value: v,
        key: 0,
        time_ns: 7,
        critical: false,
        keyed: false,
    }));
}

#[inline(never)]
fn op_sampled_timer() {
    let _t = hotmeter::sampled_timer!("iai_handle_seconds");
}

#[inline(never)]
fn op_two_instant_now() {
    let start = Instant::now();
    black_box(start.elapsed());
}

// ---------------------------------------------------------------------------------------
// Setups and checks (not counted)
// ---------------------------------------------------------------------------------------

fn setup_exact() -> usize {
    install(RARE);
    for i in 0..WARMUP {
        op_plain_tls_add();
        op_counter_literal_label();
        op_counter_literal();
        op_plain_tls_count_and_sum(i as f64);
    }
    N
}

fn setup_values() -> (usize, &'static [f64; 64]) {
    install(RARE);
    let v = values();
    for i in 0..WARMUP {
        op_shared_store(v[i & 63]);
        op_gauge_set(v[i & 63]);
        op_histogram_record(v[i & 63]);
    }
    (N, v)
}

/// A label value known only at run time (as a request's route would be).
fn setup_dynamic_label() -> (usize, String) {
    install(RARE);
    let route = black_box(String::from("/api/v1/users"));
    for _ in 0..WARMUP {
        op_counter_dynamic_label(&route);
    }
    (N, route)
}

fn setup_not_sampled() -> usize {
    install(RARE);
    for i in 0..WARMUP {
        op_record_not_sampled(i as f64);
    }
    N
}

fn setup_keyed_not_sampled() -> usize {
    install(RARE);
    for i in 0..WARMUP {
        op_record_keyed_not_sampled(i as f64, i as u64);
        op_sampled_timer_not_sampled();
    }
    N
}

fn setup_sampled() -> usize {
    let e = install(1.0);
    for i in 0..WARMUP {
        op_record_sampled(i as f64);
    }
    e.flush(); // an empty ring before counting
    N
}

fn setup_critical() -> usize {
    let e = install(RARE);
    for i in 0..WARMUP {
        op_record_critical(i as f64);
    }
    e.flush();
    N
}

fn setup_timer() -> usize {
    let e = install(1.0 / 64.0);
    for _ in 0..WARMUP {
        op_sampled_timer();
    }
    e.flush();
    N
}

fn setup_ring() -> (usize, Producer, Consumer) {
    let (mut p, c) = ring(RING, Overflow::DropNewest);
    for i in 0..WARMUP {
        op_ring_push(&mut p, i as f64);
    }
    let mut c = c;
    c.drain(usize::MAX, |r| {
        black_box(r);
    });
    (N, p, c)
}

fn setup_plain_timer() -> usize {
    for _ in 0..WARMUP {
        op_two_instant_now();
    }
    N
}

/// The sampled value of `name` after a synchronous flush.
fn sampled_after_flush(name: &str) -> hotmeter::SampledValue {
    let e = hotmeter::global_engine();
    e.flush();
    e.registry()
        .snapshot()
        .sampled(name, &[])
        .cloned()
        .unwrap_or_else(|| panic!("{name} is registered"))
}

fn check_not_sampled(calls: usize) {
    let v = sampled_after_flush("iai_not_sampled_bytes");
    assert_eq!(v.count, (WARMUP + calls) as u64);
    assert_eq!(
        v.pushed, 0,
        "the not-sampled bench sampled a call: pick another seed"
    );
}

fn check_keyed_not_sampled(calls: usize) {
    let v = sampled_after_flush("iai_keyed_bytes");
    assert_eq!(v.count, (WARMUP + calls) as u64);
    assert_eq!(
        v.pushed, 0,
        "the keyed bench sampled a call: pick another seed"
    );
}

fn check_timer_not_sampled(calls: usize) {
    let v = sampled_after_flush("iai_rare_seconds");
    // The setup's warm-up calls count too (both benches share the setup).
    assert!(v.count >= calls as u64);
    assert_eq!(
        v.pushed, 0,
        "the timer bench sampled a call: pick another seed"
    );
}

fn check_sampled(calls: usize) {
    let v = sampled_after_flush("iai_sampled_bytes");
    assert_eq!(
        v.pushed,
        (WARMUP + calls) as u64,
        "p = 1 samples every call"
    );
    assert_eq!(v.dropped(), 0, "no sampled record may meet a full ring");
}

fn check_critical(calls: usize) {
    let v = sampled_after_flush("iai_failed");
    assert_eq!(v.pushed, (WARMUP + calls) as u64);
    assert_eq!(v.critical_to_lane, 0, "every critical record fits the ring");
}

fn check_timer(calls: usize) {
    let v = sampled_after_flush("iai_handle_seconds");
    assert_eq!(v.count, (WARMUP + calls) as u64);
    assert_eq!(v.dropped(), 0);
}

// ---------------------------------------------------------------------------------------
// The seed workload's FNV step per message: bare, the hand-written floor, hotmeter
// (`benches/common/message.rs`, as `benches/overhead.rs` times them)
// ---------------------------------------------------------------------------------------

/// The rate of the message benches' sampled families: 1/128, where hotmeter's default
/// engine settles on the seed workload (the overhead bench prints it) and the floor's
/// fixed gap. Fixed here (no adaptation), so the count is deterministic.
const MESSAGE_RATE: f64 = 1.0 / 128.0;

#[inline(never)]
fn op_message_bare(w: &mut FnvWorker) {
    message::bare(w);
}

#[inline(never)]
fn op_message_floor(w: &mut FnvWorker) {
    message::with_floor(w);
}

#[inline(never)]
fn op_message_hotmeter(w: &mut FnvWorker) {
    message::with_hotmeter(w);
}

fn setup_message() -> (usize, FnvWorker) {
    let e = install(MESSAGE_RATE);
    let mut w = FnvWorker::new(0);
    for _ in 0..WARMUP {
        op_message_bare(&mut w);
        op_message_floor(&mut w);
        op_message_hotmeter(&mut w);
    }
    e.flush();
    (N, w)
}

/// hotmeter's message bench recorded every message, sampled some, and lost none.
fn check_message(calls: usize) {
    let v = sampled_after_flush("overhead_message_bytes");
    assert_eq!(v.count, (WARMUP + calls) as u64);
    assert!(v.pushed > 0, "1/128 of 11,000 messages sampled none");
    assert_eq!(v.dropped(), 0, "no sampled record may meet a full ring");
}

// ---------------------------------------------------------------------------------------
// Benches: N calls each; `.ci/iai_gate` divides by N.
// ---------------------------------------------------------------------------------------

#[library_benchmark(setup = setup_message)]
fn message_fnv_bare((n, mut w): (usize, FnvWorker)) {
    for _ in 0..n {
        op_message_bare(&mut w);
    }
}

#[library_benchmark(setup = setup_message)]
fn message_fnv_floor((n, mut w): (usize, FnvWorker)) {
    for _ in 0..n {
        op_message_floor(&mut w);
    }
}

#[library_benchmark(setup = setup_message, teardown = check_message)]
fn message_fnv_hotmeter((n, mut w): (usize, FnvWorker)) -> usize {
    for _ in 0..n {
        op_message_hotmeter(&mut w);
    }
    n
}

// Baseline of the counter and histogram rows: `x += 1` on a thread-local.
#[library_benchmark(setup = setup_exact)]
fn baseline_plain_tls_add(n: usize) {
    for _ in 0..n {
        op_plain_tls_add();
    }
}

#[library_benchmark(setup = setup_exact)]
fn counter_inc_literal_label(n: usize) {
    for _ in 0..n {
        op_counter_literal_label();
    }
}

#[library_benchmark(setup = setup_exact)]
fn counter_inc_literal(n: usize) {
    for _ in 0..n {
        op_counter_literal();
    }
}

#[library_benchmark(setup = setup_dynamic_label)]
fn counter_inc_dynamic_label((n, route): (usize, String)) -> String {
    for _ in 0..n {
        op_counter_dynamic_label(black_box(&route));
    }
    route
}

// Baseline of the gauge row: a relaxed store to one shared atomic.
#[library_benchmark(setup = setup_values)]
fn baseline_shared_store((n, v): (usize, &[f64; 64])) {
    for i in 0..n {
        op_shared_store(v[i & 63]);
    }
}

#[library_benchmark(setup = setup_values)]
fn gauge_set((n, v): (usize, &[f64; 64])) {
    for i in 0..n {
        op_gauge_set(v[i & 63]);
    }
}

#[library_benchmark(setup = setup_values)]
fn histogram_record((n, v): (usize, &[f64; 64])) {
    for i in 0..n {
        op_histogram_record(v[i & 63]);
    }
}

// Baseline of the not-sampled `record!`: what its contract needs, a thread-local count
// and f64 sum.
#[library_benchmark(setup = setup_exact)]
fn baseline_plain_tls_count_and_sum(n: usize) {
    for i in 0..n {
        op_plain_tls_count_and_sum(i as f64);
    }
}

#[library_benchmark(setup = setup_not_sampled, teardown = check_not_sampled)]
fn record_not_sampled(n: usize) -> usize {
    for i in 0..n {
        op_record_not_sampled(i as f64);
    }
    n
}

#[library_benchmark(setup = setup_keyed_not_sampled, teardown = check_keyed_not_sampled)]
fn record_keyed_not_sampled(n: usize) -> usize {
    for i in 0..n {
        op_record_keyed_not_sampled(i as f64, i as u64);
    }
    n
}

#[library_benchmark(setup = setup_keyed_not_sampled, teardown = check_timer_not_sampled)]
fn sampled_timer_not_sampled(n: usize) -> usize {
    for _ in 0..n {
        op_sampled_timer_not_sampled();
    }
    n
}

// Baseline of the sampled and critical rows: one push into a ring alone.
#[library_benchmark(setup = setup_ring)]
fn baseline_ring_push((n, mut p, c): (usize, Producer, Consumer)) -> (Producer, Consumer) {
    for i in 0..n {
        op_ring_push(&mut p, i as f64);
    }
    (p, c)
}

#[library_benchmark(setup = setup_sampled, teardown = check_sampled)]
fn record_sampled_p1(n: usize) -> usize {
    for i in 0..n {
        op_record_sampled(i as f64);
    }
    n
}

#[library_benchmark(setup = setup_critical, teardown = check_critical)]
fn record_critical(n: usize) -> usize {
    for i in 0..n {
        op_record_critical(i as f64);
    }
    n
}

/// One message of the seed workload's sampled mix, as the flusher sees it: a timer's
/// record and the message size keyed by one of 256 clients (`state` is a xorshift64).
#[inline(never)]
fn op_seed_mix(state: &mut u64) {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    hotmeter::record!("iai_mix_seconds", 50e-9 + (x >> 58) as f64 * 1e-9);
    hotmeter::record!(
        "iai_mix_bytes",
        64.0 + (x & 63) as f64,
        key = (x >> 8) & 255
    );
}

/// The flusher's work per drained record: the rings hold `N` records of the seed mix
/// (series seen and warmed by a first flush), and the bench is the one flush that drains
/// them, estimates and publishes (its fixed cost spread over the `N` records).
fn setup_flush() -> usize {
    let e = install(1.0);
    let mut state = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..WARMUP {
        op_seed_mix(&mut state);
    }
    e.flush();
    for _ in 0..N / 2 {
        op_seed_mix(&mut state);
    }
    N
}

#[library_benchmark(setup = setup_flush, teardown = check_flush)]
fn flush_seed_mix(n: usize) -> usize {
    hotmeter::global_engine().flush();
    n
}

fn check_flush(records: usize) {
    let stats = &hotmeter::global_engine().published().stats;
    assert_eq!(
        stats.last_records, records as u64,
        "the flush drained the mix"
    );
}

// Baseline of the timer row: an always-on timer, two clock reads.
#[library_benchmark(setup = setup_plain_timer)]
fn baseline_two_instant_now(n: usize) {
    for _ in 0..n {
        op_two_instant_now();
    }
}

#[library_benchmark(setup = setup_timer, teardown = check_timer)]
fn sampled_timer_p1_64(n: usize) -> usize {
    for _ in 0..n {
        op_sampled_timer();
    }
    n
}

library_benchmark_group!(
    name = exact;
    benchmarks =
        baseline_plain_tls_add,
        counter_inc_literal,
        counter_inc_literal_label,
        counter_inc_dynamic_label,
        baseline_shared_store,
        gauge_set,
        histogram_record
);

library_benchmark_group!(
    name = sampled;
    benchmarks =
        baseline_plain_tls_count_and_sum,
        record_not_sampled,
        record_keyed_not_sampled,
        sampled_timer_not_sampled,
        baseline_ring_push,
        record_sampled_p1,
        record_critical,
        baseline_two_instant_now,
        sampled_timer_p1_64,
        flush_seed_mix
);

library_benchmark_group!(
    name = seed_loop;
    benchmarks =
        message_fnv_bare,
        message_fnv_floor,
        message_fnv_hotmeter
);

main!(library_benchmark_groups = exact, sampled, seed_loop);
