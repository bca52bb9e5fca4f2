//! The main job: an instrumented message-handling workload that measures its own overhead.
//!
//! Worker threads handle messages (parse a small buffer, hash it: ~50–100 ns of real work),
//! in alternating one-second rounds run bare and instrumented with hotmeter (connection and
//! message counters, per-client byte counters with a dynamic label, a failure counter, a
//! message-size histogram). Each second it prints a progress line; at the end it reports the
//! overhead (instrumented vs bare ns per message, both measured in this run) and checks
//! every exact value hotmeter read against the workload's own tally.
//!
//! ```text
//! cargo run --release --example demo -- [--seconds N] [--threads N]
//! ```

use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::time::{Duration, Instant};

const CLIENTS: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];

/// What the workload itself counted, to check hotmeter against.
#[derive(Default, Clone, Copy)]
struct Tally {
    messages: u64,
    failed: u64,
    bytes: [u64; 4],
}

/// One message: build a small buffer, parse its header, hash its body. Fails 1 in 64.
#[inline(always)]
fn handle(seq: u64, buf: &mut [u8; 48]) -> (usize, usize, bool) {
    let client = (seq % 4) as usize;
    let len = 16 + (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 59) as usize; // 16..47
    for (i, b) in buf.iter_mut().enumerate().take(len) {
        *b = (seq as u8).wrapping_add(i as u8);
    }
    let header = u16::from_le_bytes([buf[0], buf[1]]);
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    h.write(&buf[2..len]);
    let digest = h.finish() ^ header as u64;
    (client, len, black_box(digest).is_multiple_of(64))
}

fn run_round(instrumented: bool, for_how_long: Duration, tally: &mut Tally) -> (u64, Duration) {
    let mut buf = [0u8; 48];
    let start = Instant::now();
    let mut n = 0u64;
    let mut seq = tally.messages;
    if instrumented {
        hotmeter::counter!("demo_connections_total").inc();
    }
    while start.elapsed() < for_how_long {
        for _ in 0..1024 {
            seq += 1;
            let (client, len, failed) = handle(seq, &mut buf);
            tally.messages += 1;
            tally.bytes[client] += len as u64;
            tally.failed += failed as u64;
            if instrumented {
                hotmeter::counter!("demo_messages_total").inc();
                hotmeter::counter!("demo_client_bytes_total", "client" => CLIENTS[client])
                    .add(len as u64);
                hotmeter::histogram!("demo_message_bytes").record(len as f64);
                if failed {
                    hotmeter::counter!("demo_messages_failed_total").inc();
                }
            }
        }
        n += 1024;
    }
    (n, start.elapsed())
}

fn main() {
    let mut seconds = 10u64;
    let mut threads = 2usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a positive integer"))
        };
        match arg.as_str() {
            "--seconds" => seconds = value("--seconds").max(2),
            "--threads" => threads = value("--threads").max(1) as usize,
            other => {
                eprintln!("unknown argument {other:?}; usage: demo [--seconds N] [--threads N]");
                std::process::exit(2);
            }
        }
    }
    let registry = hotmeter::global();
    registry
        .histogram_with(
            "demo_message_bytes",
            &[],
            &hotmeter::HistogramConfig::range(1.0, 1024.0).expect("valid range"),
        )
        .expect("register demo_message_bytes");
    println!(
        "hotmeter demo: {threads} threads, {seconds} s of alternating bare / instrumented rounds"
    );

    let rounds = seconds;
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                // Separate tallies, so both kinds of round do the same bookkeeping and the
                // instrumented one can be checked against hotmeter.
                let (mut bare, mut inst) = (Tally::default(), Tally::default());
                let mut per_round = Vec::new();
                for round in 0..rounds {
                    let instrumented = round % 2 == 1;
                    let tally = if instrumented { &mut inst } else { &mut bare };
                    let (n, took) = run_round(instrumented, Duration::from_secs(1), tally);
                    per_round.push((instrumented, n, took));
                }
                (inst, per_round)
            })
        })
        .collect();
    // Progress, once a second, read from the registry while the workers run.
    let start = Instant::now();
    let mut last = 0;
    for s in 1..=seconds {
        std::thread::sleep(
            (start + Duration::from_secs(s)).saturating_duration_since(Instant::now()),
        );
        let snap = registry.snapshot();
        let msgs = snap.counter("demo_messages_total", &[]).unwrap_or(0);
        println!(
            "[{s:>3}s] instrumented messages this second={:>11}  failed so far={:>9}  arenas live={}",
            msgs - last,
            snap.counter("demo_messages_failed_total", &[]).unwrap_or(0),
            snap.meta.arenas_live,
        );
        last = msgs;
    }
    let mut total = Tally::default();
    let (mut bare_n, mut bare_t, mut inst_n, mut inst_t) = (0u64, 0f64, 0u64, 0f64);
    for w in workers {
        let (tally, per_round) = w.join().expect("worker");
        for (instrumented, n, took) in per_round {
            if instrumented {
                inst_n += n;
                inst_t += took.as_secs_f64();
            } else {
                bare_n += n;
                bare_t += took.as_secs_f64();
            }
        }
        total.messages += tally.messages;
        total.failed += tally.failed;
        for c in 0..4 {
            total.bytes[c] += tally.bytes[c];
        }
    }
    let snap = registry.snapshot();
    let bare_ns = bare_t * 1e9 / bare_n as f64;
    let inst_ns = inst_t * 1e9 / inst_n as f64;
    println!("\n== overhead (this run, {threads} threads, ns per message per thread)");
    println!("bare:         {bare_ns:8.2} ns  ({bare_n} messages)");
    println!("instrumented: {inst_ns:8.2} ns  ({inst_n} messages, 3-4 records each)");
    println!(
        "overhead:     {:+8.2} ns  = {:+.2}% of the bare loop",
        inst_ns - bare_ns,
        (inst_ns / bare_ns - 1.0) * 100.0
    );
    println!("\n== exact values read from hotmeter (instrumented rounds only)");
    let msgs = snap.counter("demo_messages_total", &[]).unwrap_or(0);
    println!("demo_messages_total          {msgs:>14}   (workload counted {inst_n})");
    let hist = snap
        .histogram("demo_message_bytes", &[])
        .expect("histogram");
    println!(
        "demo_message_bytes count     {:>14}   sum {:.0}",
        hist.count, hist.sum
    );
    let client_sum: u64 = CLIENTS
        .iter()
        .map(|c| {
            snap.counter("demo_client_bytes_total", &[("client", c)])
                .unwrap_or(0)
        })
        .sum();
    println!(
        "demo_client_bytes_total (all){client_sum:>14}   (histogram sum {:.0})",
        hist.sum
    );
    println!(
        "demo_messages_failed_total   {:>14}   (workload counted {})",
        snap.counter("demo_messages_failed_total", &[]).unwrap_or(0),
        total.failed
    );
    let failed = snap.counter("demo_messages_failed_total", &[]).unwrap_or(0);
    let per_client_ok = CLIENTS.iter().enumerate().all(|(i, c)| {
        snap.counter("demo_client_bytes_total", &[("client", c)]) == Some(total.bytes[i])
    });
    let ok = msgs == total.messages
        && msgs == inst_n
        && hist.count == inst_n
        && client_sum as f64 == hist.sum
        && failed == total.failed
        && per_client_ok;
    println!(
        "\nexact: {}  (arenas created: {}, for {threads} workers + this thread)",
        if ok {
            "yes, every value matches"
        } else {
            "NO: MISMATCH"
        },
        snap.meta.arenas_created
    );
    if !ok {
        std::process::exit(1);
    }
}
