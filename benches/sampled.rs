//! Sampled-layer costs, each beside its plain baseline in the same group:
//!
//! - `sampled/record/not_sampled`: `record!` on a call the sampler skips (two exact adds,
//!   one compare and branch) vs a plain thread-local decrement-and-branch, add, and
//!   count-and-f64-sum;
//! - `sampled/push`: pushing one compact record into a thread's ring (the ring alone, and
//!   a whole sampled `record!` at p = 1: gap draw, clock read, push), draining untimed;
//! - `sampled/timer`: `sampled_timer!` at p = 1/64 vs an unsampled timer (two `Instant::now()`);
//! - `flush/drain_correct`: the flusher draining and correcting, per record: one plain
//!   series (`flush_32k_records`), and the seed workload's mix (`seed_mix_32k_records`: a
//!   timer series, and three keyed series over 1,024 distinct client keys, interleaved as one
//!   thread's ring holds them, with the default 10-minute quantile window).
//!
//! Run: `cargo bench --bench sampled`.

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotmeter::sample::record::Record;
use hotmeter::sample::ring::{Overflow, ring};

thread_local! {
    static COUNTDOWN: Cell<u64> = const { Cell::new(u64::MAX) };
    static TOTAL: Cell<u64> = const { Cell::new(0) };
    static COUNT_SUM: Cell<(u64, f64)> = const { Cell::new((0, 0.0)) };
}

fn engine() -> &'static hotmeter::Engine {
    static E: std::sync::OnceLock<&'static hotmeter::Engine> = std::sync::OnceLock::new();
    E.get_or_init(|| {
        hotmeter::Engine::builder()
            .sample_rate(1.0 / 4096.0)
            .min_sample_rate(1.0 / 4096.0)
            .max_sample_rate(1.0)
            .adaptive(false)
            .ring_capacity(1 << 16)
            .flush_interval(Duration::from_secs(3600))
            .install()
            .expect("the bench installs the global engine first")
    })
}

fn not_sampled(c: &mut Criterion) {
    engine();
    let mut g = c.benchmark_group("sampled/record/not_sampled");
    g.bench_function("plain_tls_decrement_and_branch", |b| {
        b.iter(|| {
            COUNTDOWN.with(|c| {
                let v = c.get() - 1;
                if v == 0 {
                    c.set(black_box(u64::MAX));
                } else {
                    c.set(v);
                }
            })
        })
    });
    g.bench_function("plain_tls_add", |b| {
        b.iter(|| TOTAL.with(|t| t.set(t.get() + black_box(1))))
    });
    // What `record!` must do on every call by its contract: an exact count and an exact
    // f64 sum (plain thread-local, no sampling check).
    let mut x = 0.0;
    g.bench_function("plain_tls_count_and_sum", |b| {
        b.iter(|| {
            x += 1.0;
            COUNT_SUM.with(|c| {
                let (n, s) = c.get();
                c.set((n + 1, s + black_box(x)));
            })
        })
    });
    let mut v = 0.0;
    g.bench_function("hotmeter_record_macro", |b| {
        b.iter(|| {
            v += 1.0;
            hotmeter::record!("bench_not_sampled_bytes", black_box(v));
        })
    });
    g.finish();
}

fn push(c: &mut Criterion) {
    let mut g = c.benchmark_group("sampled/push");
    let (mut producer, mut consumer) = ring(1 << 12, Overflow::DropNewest);
    let rec = Record {
        series: 1,
        k: 6,
        value: 1.5,
        key: 42,
        time_ns: 7,
        critical: false,
        keyed: false,
    };
    g.bench_function("ring_push", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(1 << 12);
                let t = Instant::now();
                for _ in 0..batch {
                    let _ = black_box(producer.push(black_box(rec)));
                }
                total += t.elapsed();
                consumer.drain(usize::MAX, |r| {
                    black_box(r);
                });
                left -= batch;
            }
            total
        })
    });
    let e = engine();
    let s = e.registry().sampled("bench_every_call", &[]).unwrap();
    e.registry()
        .set_sample_rate("bench_every_call", 1.0)
        .unwrap();
    // Let the gap drawn at the engine's base rate run out first.
    for i in 0..1_000_000 {
        s.record(i as f64);
    }
    e.flush();
    g.bench_function("hotmeter_record_sampled_p1", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(1 << 15);
                let t = Instant::now();
                for i in 0..batch {
                    s.record(black_box(i as f64));
                }
                total += t.elapsed();
                e.flush();
                left -= batch;
            }
            total
        })
    });
    g.finish();
}

fn timer(c: &mut Criterion) {
    let e = engine();
    e.registry()
        .sampled("bench_timer_seconds", &[])
        .expect("register");
    e.registry()
        .set_sample_rate("bench_timer_seconds", 1.0 / 64.0)
        .unwrap();
    let mut g = c.benchmark_group("sampled/timer");
    g.bench_function("unsampled_timer_two_instant_now", |b| {
        b.iter(|| {
            let start = Instant::now();
            black_box(start.elapsed())
        })
    });
    g.bench_function("hotmeter_sampled_timer_p1_64", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let _t = hotmeter::sampled_timer!("bench_timer_seconds");
            }
            let took = t.elapsed();
            e.flush();
            took
        })
    });
    g.finish();
}

fn drain(c: &mut Criterion) {
    let e = engine();
    let s = e.registry().sampled("bench_drain", &[]).unwrap();
    e.registry().set_sample_rate("bench_drain", 1.0).unwrap();
    for i in 0..1_000_000 {
        s.record(i as f64);
    }
    e.flush();
    const N: u64 = 1 << 15;
    let mut g = c.benchmark_group("flush/drain_correct");
    g.throughput(Throughput::Elements(N));
    g.bench_function("flush_32k_records", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for i in 0..N {
                    s.record(i as f64 * 1e-6);
                }
                let t = Instant::now();
                e.flush();
                total += t.elapsed();
            }
            total
        })
    });
    // The seed mix: records of four series interleaved, three of them keyed.
    let r = e.registry();
    let timer = r.sampled("bench_mix_seconds", &[]).unwrap();
    let bytes = r.sampled("bench_mix_bytes", &[]).unwrap();
    let route_a = r
        .sampled("bench_mix_route_bytes", &[("route", "a")])
        .unwrap();
    let route_b = r
        .sampled("bench_mix_route_bytes", &[("route", "b")])
        .unwrap();
    for name in [
        "bench_mix_seconds",
        "bench_mix_bytes",
        "bench_mix_route_bytes",
    ] {
        r.set_sample_rate(name, 1.0).unwrap();
    }
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut mix = |n: u64| {
        for _ in 0..n / 2 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let client = (rng >> 8) & 1023;
            timer.record(50e-9 + (rng >> 40) as f64 * 1e-15);
            let size = 64.0 + (rng & 63) as f64;
            match rng >> 62 {
                0 => route_a.record_keyed(size, &client),
                1 => route_b.record_keyed(size, &client),
                _ => bytes.record_keyed(size, &client),
            }
        }
    };
    mix(1 << 20);
    e.flush();
    g.bench_function("seed_mix_32k_records", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                mix(N);
                let t = Instant::now();
                e.flush();
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    targets = not_sampled, push, timer, drain
}
criterion_main!(benches);
