//! Exactness under thread churn: 2,000 short-lived threads record into counters and
//! histograms while a reader sums continuously. Its own binary: it checks the process-wide
//! arena count, so no other test may record in this process.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use hotmeter::{HistogramConfig, Registry};

const THREADS: usize = 2_000;
const OPS_PER_THREAD: usize = 10_000;
/// At most this many recording threads are alive at once.
const WINDOW: usize = 8;

#[test]
fn values_exact_and_arenas_bounded_under_churn() {
    let registry = Arc::new(Registry::new());
    let counters = [
        registry.counter("churn_a_total", &[]).unwrap(),
        registry.counter("churn_b_total", &[("k", "v")]).unwrap(),
        registry.counter("churn_c_total", &[]).unwrap(),
    ];
    let histograms = [
        registry.histogram("churn_seconds", &[]).unwrap(),
        registry
            .histogram_with(
                "churn_bytes",
                &[],
                &HistogramConfig::range(1.0, 1e6).unwrap(),
            )
            .unwrap(),
    ];
    // Values whose sums stay exact in f64 in any order (multiples of 1/4, totals < 2^53).
    let values = [0.25, 0.5, 1.0, 2.0, 3.0];

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut last = [0u64; 3];
            let mut last_count = [0u64; 2];
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (c, prev) in counters.iter().zip(&mut last) {
                    let v = c.value();
                    assert!(v >= *prev, "counter went back from {prev} to {v}");
                    *prev = v;
                }
                for (h, prev) in histograms.iter().zip(&mut last_count) {
                    let n: u64 = h.fine_counts().iter().sum();
                    assert!(n >= *prev, "histogram count went back from {prev} to {n}");
                    *prev = n;
                }
                reads += 1;
            }
            reads
        })
    };

    let mut live: VecDeque<thread::JoinHandle<()>> = VecDeque::new();
    for t in 0..THREADS {
        if live.len() == WINDOW {
            live.pop_front().unwrap().join().unwrap();
        }
        live.push_back(thread::spawn(move || {
            for i in 0..OPS_PER_THREAD {
                counters[i % 3].inc();
                if i % 10 == 0 {
                    histograms[(i / 10) % 2].record(values[(i / 20 + t) % values.len()]);
                }
            }
        }));
    }
    for handle in live {
        handle.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);

    // Expected values, computed the same way the workers record.
    let mut want_counters = [0u64; 3];
    let mut want_hist: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for t in 0..THREADS {
        for i in 0..OPS_PER_THREAD {
            want_counters[i % 3] += 1;
            if i % 10 == 0 {
                want_hist[(i / 10) % 2].push(values[(i / 20 + t) % values.len()]);
            }
        }
    }
    let snap = registry.snapshot();
    assert_eq!(snap.counter("churn_a_total", &[]), Some(want_counters[0]));
    assert_eq!(
        snap.counter("churn_b_total", &[("k", "v")]),
        Some(want_counters[1])
    );
    assert_eq!(snap.counter("churn_c_total", &[]), Some(want_counters[2]));
    for (name, want) in ["churn_seconds", "churn_bytes"].iter().zip(&want_hist) {
        let h = snap.histogram(name, &[]).unwrap();
        assert_eq!(h.count, want.len() as u64, "{name} count");
        assert_eq!(h.sum, want.iter().sum::<f64>(), "{name} sum");
        for &(le, cumulative) in &h.buckets {
            let expected = want.iter().filter(|&&v| v <= le).count() as u64;
            assert_eq!(cumulative, expected, "{name} bucket le={le}");
        }
    }

    // Arenas: bounded by the peak number of live recording threads, not by 2,000. (The
    // reader and the test thread only read, so they hold no arena.)
    assert!(
        snap.meta.arenas_created <= WINDOW,
        "{} arenas created for at most {WINDOW} live recording threads",
        snap.meta.arenas_created
    );
    assert_eq!(snap.meta.arenas_live, 0, "every worker has exited");
}
