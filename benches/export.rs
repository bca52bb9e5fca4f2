//! Exposition costs:
//!
//! - `export/render_10k`: rendering 10,000 counter series (10 families × 1,000 label sets),
//!   OpenMetrics and 0.0.4, uncompressed; and OpenMetrics + gzip as the endpoint sends it.
//! - `export/counter_inc_2t`: the 2-thread counter increment (wall time per call per
//!   thread, both threads on one counter) with and without a scraper rendering that 10k
//!   registry every 100 ms in a third thread (Prometheus scrapes every 10–60 s; 10 Hz is a
//!   stress setting). On a 2-core machine the scraper's CPU time is taken from the two
//!   recording threads, so part of any difference is time-slicing, not interference.
//!
//! Run: `cargo bench --bench export`.

use std::hint::black_box;
use std::io::Write;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotmeter::{Format, Registry};

fn registry_10k() -> &'static Registry {
    static R: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let r = Registry::new();
        for f in 0..10 {
            let name = format!("requests_{f}_total");
            for i in 0..1000u64 {
                r.counter(
                    &name,
                    &[("route", &format!("/api/v{f}/item{i}")), ("code", "200")],
                )
                .unwrap()
                .add(i * 7 + 1);
            }
        }
        r
    })
}

fn render(c: &mut Criterion) {
    let r = registry_10k();
    let mut g = c.benchmark_group("export/render_10k");
    g.throughput(Throughput::Elements(10_000));
    g.sample_size(30);
    g.bench_function("openmetrics", |b| {
        b.iter(|| black_box(hotmeter::export::render(r, Format::OpenMetrics).unwrap()))
    });
    g.bench_function("text_0.0.4", |b| {
        b.iter(|| black_box(hotmeter::export::render(r, Format::Text).unwrap()))
    });
    g.bench_function("openmetrics_gzip", |b| {
        b.iter(|| {
            let text = hotmeter::export::render(r, Format::OpenMetrics).unwrap();
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(text.as_bytes()).unwrap();
            black_box(enc.finish().unwrap())
        })
    });
    g.finish();
}

/// Wall time for `iters` increments on each of 2 threads, optionally with a scraper.
fn two_threads(iters: u64, counter: hotmeter::Counter, scraping: bool) -> Duration {
    let stop = AtomicBool::new(false);
    let start_line = Barrier::new(2);
    let finish_line = Barrier::new(2);
    std::thread::scope(|s| {
        if scraping {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    black_box(
                        hotmeter::export::render(registry_10k(), Format::OpenMetrics).unwrap(),
                    );
                    let until = Instant::now() + Duration::from_millis(100);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            });
        }
        s.spawn(|| {
            counter.inc();
            start_line.wait();
            for _ in 0..iters {
                black_box(counter).inc();
            }
            finish_line.wait();
        });
        counter.inc();
        start_line.wait();
        let t = Instant::now();
        for _ in 0..iters {
            black_box(counter).inc();
        }
        finish_line.wait();
        let elapsed = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        elapsed
    })
}

fn scraping(c: &mut Criterion) {
    let counter = registry_10k().counter("bench_incs_total", &[]).unwrap();
    let mut g = c.benchmark_group("export/counter_inc_2t");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("no_scraping", |b| {
        b.iter_custom(|iters| two_threads(iters, counter, false))
    });
    g.bench_function("scraping_10k_every_100ms", |b| {
        b.iter_custom(|iters| two_threads(iters, counter, true))
    });
    g.finish();
}

criterion_group!(benches, render, scraping);
criterion_main!(benches);
