//! The main job: an instrumented message-handling workload that measures its own overhead
//! and checks every number hotmeter reports.
//!
//! Worker threads handle messages (build a small buffer, parse its header, hash its body),
//! in alternating one-second rounds run bare and instrumented the way the original system
//! was: a connection counter, a message counter, a message-size `record!` keyed by client,
//! a `sampled_timer!` around the handling, and failures as critical events. Each second it
//! prints a progress line; at the end it reports the overhead (instrumented vs bare ns per
//! message, both measured in this run), checks every exact value against the workload's own
//! tally, and sets each sampled estimate beside the truth with its standard error.
//!
//! While it runs it serves `/metrics` (default `127.0.0.1:9464`; a free port if that one is
//! taken) for Prometheus or `curl`; at the end it scrapes its own endpoint and checks that
//! the exposition shows the same numbers as the report. It runs 20 s by default, or until
//! Ctrl-C (which ends the current round and still prints the report).
//!
//! ```text
//! cargo run --release --example demo -- [--seconds N] [--threads N] [--listen ADDR]
//! ```

use std::hash::Hasher;
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hotmeter::SampleKey;

/// Set by Ctrl-C: workers finish their round, the report is printed.
static STOP: AtomicBool = AtomicBool::new(false);

const CLIENTS: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];
const MAX_LEN: usize = 96;

/// What the workload itself counted, to check hotmeter against.
#[derive(Clone, Copy)]
struct Tally {
    messages: u64,
    failed: u64,
    bytes: u64,
    per_client: [u64; 4],
    /// Messages per length, for exact quantiles.
    lengths: [u64; MAX_LEN],
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            messages: 0,
            failed: 0,
            bytes: 0,
            per_client: [0; 4],
            lengths: [0; MAX_LEN],
        }
    }
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.messages += other.messages;
        self.failed += other.failed;
        self.bytes += other.bytes;
        for i in 0..4 {
            self.per_client[i] += other.per_client[i];
        }
        for i in 0..MAX_LEN {
            self.lengths[i] += other.lengths[i];
        }
    }

    /// The exact q-quantile of message lengths (smallest length with rank ≥ q·n).
    fn length_quantile(&self, q: f64) -> usize {
        let target = (q * self.messages as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (len, n) in self.lengths.iter().enumerate() {
            seen += n;
            if seen >= target {
                return len;
            }
        }
        MAX_LEN - 1
    }
}

/// One message: build a buffer of 32..=95 bytes, parse its header, SipHash its body (the
/// work a broker does to route and dedupe: ~50–100 ns). Fails 1 in 1024.
#[inline(always)]
fn handle(seq: u64, buf: &mut [u8; MAX_LEN]) -> (usize, usize, bool) {
    // Clients are skewed (alpha sends half the traffic) so per-key estimates have work.
    let client = [0, 0, 0, 0, 1, 1, 2, 3][(seq % 8) as usize];
    let len = 32 + (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize; // 32..=95
    for (i, b) in buf.iter_mut().enumerate().take(len) {
        *b = (seq as u8).wrapping_add(i as u8);
    }
    let header = u16::from_le_bytes([buf[0], buf[1]]);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(&buf[2..len]);
    let digest = h.finish() ^ header as u64;
    (client, len, black_box(digest).is_multiple_of(1024))
}

fn run_round(instrumented: bool, for_how_long: Duration, tally: &mut Tally) -> (u64, Duration) {
    let mut buf = [0u8; MAX_LEN];
    let start = Instant::now();
    let mut n = 0u64;
    let mut seq = tally.messages;
    while start.elapsed() < for_how_long {
        if instrumented {
            hotmeter::counter!("demo_connections_total").inc();
        }
        for _ in 0..1024 {
            seq += 1;
            let timer = instrumented.then(|| hotmeter::sampled_timer!("demo_handle_seconds"));
            let (client, len, failed) = handle(seq, &mut buf);
            drop(timer);
            tally.messages += 1;
            tally.bytes += len as u64;
            tally.per_client[client] += 1;
            tally.lengths[len] += 1;
            tally.failed += failed as u64;
            if instrumented {
                hotmeter::counter!("demo_messages_total").inc();
                hotmeter::record!("demo_message_bytes", len as f64, key = CLIENTS[client]);
                if failed {
                    hotmeter::record!(critical, "demo_messages_failed", 1.0, key = CLIENTS[client]);
                }
            }
        }
        n += 1024;
    }
    (n, start.elapsed())
}

fn parse_args() -> (u64, usize, SocketAddr) {
    let mut seconds = 20u64;
    let mut threads = 2usize;
    let mut listen: SocketAddr = "127.0.0.1:9464".parse().expect("literal address");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> u64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{name} needs a positive integer");
                std::process::exit(2)
            })
        };
        if arg == "--listen" {
            listen = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("--listen needs an address such as 127.0.0.1:9464");
                std::process::exit(2)
            });
            continue;
        }
        match arg.as_str() {
            "--seconds" => seconds = value("--seconds").max(2),
            "--threads" => threads = value("--threads").max(1) as usize,
            other => {
                eprintln!(
                    "unknown argument {other:?}; usage: demo [--seconds N] [--threads N] [--listen ADDR]"
                );
                std::process::exit(2);
            }
        }
    }
    (seconds, threads, listen)
}

/// `GET /metrics` on our own endpoint, text format.
fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: demo\r\nAccept: text/plain;version=0.0.4\r\nConnection: close\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let (head, body) = buf
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("answer {head:?}")));
    }
    Ok(body.to_string())
}

/// The value of sample line `series` (name and labels exactly as rendered) in `text`.
fn scraped(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let (seconds, threads, listen) = parse_args();
    if let Err(e) = ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed)) {
        eprintln!("no Ctrl-C handler ({e}); the demo runs its full time");
    }
    let engine = hotmeter::Engine::builder()
        .from_env()
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        })
        .install()
        .expect("the demo installs the global engine before any macro runs");
    let registry = engine.registry();
    let addr = engine.serve(listen).or_else(|e| {
        eprintln!("cannot listen on {listen} ({e}); using a free port instead");
        engine.serve(SocketAddr::new(listen.ip(), 0))
    });
    let addr = match addr {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot serve /metrics: {e}");
            std::process::exit(2)
        }
    };
    println!(
        "hotmeter demo: {threads} threads, {seconds} s of alternating bare / instrumented rounds (Ctrl-C ends early)"
    );
    println!("serving http://{addr}/metrics  (try: curl -s http://{addr}/metrics | grep demo_)");

    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                // Separate tallies, so both kinds of round do the same bookkeeping and the
                // instrumented one can be checked against hotmeter.
                let (mut bare, mut inst) = (Tally::default(), Tally::default());
                let mut per_round = Vec::new();
                for round in 0..seconds {
                    // Stop on an even count of rounds, so bare and instrumented stay paired.
                    if STOP.load(Ordering::Relaxed) && round % 2 == 0 {
                        break;
                    }
                    let instrumented = round % 2 == 1;
                    let tally = if instrumented { &mut inst } else { &mut bare };
                    let (n, took) = run_round(instrumented, Duration::from_secs(1), tally);
                    per_round.push((instrumented, n, took));
                }
                (inst, per_round)
            })
        })
        .collect();

    // Progress, once a second, read while the workers run.
    let start = Instant::now();
    let mut last = 0;
    for s in 1..=seconds {
        std::thread::sleep(
            (start + Duration::from_secs(s)).saturating_duration_since(Instant::now()),
        );
        if STOP.load(Ordering::Relaxed) && workers.iter().all(|w| w.is_finished()) {
            break;
        }
        let snap = registry.snapshot();
        let msgs = snap.counter("demo_messages_total", &[]).unwrap_or(0);
        let m = &snap.meta.sampling;
        let bytes = snap.sampled("demo_message_bytes", &[]);
        println!(
            "[{s:>3}s] msgs/s {:>11}  rate {:>8}  ring util max {:>5.1}%  dropped {:>7}  flushes {:>4}  est. overhead {:.1} ns/call",
            msgs - last,
            bytes.map_or("-".into(), |b| format!("1/{:.0}", 1.0 / b.rate)),
            m.ring_utilization_max * 100.0,
            bytes.map_or(0, |b| b.dropped()),
            m.flushes,
            m.overhead_ns_per_call,
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
        total.add(&tally);
    }
    engine.flush();
    let snap = registry.snapshot();
    let mut ok = true;
    let mut check = |what: &str, good: bool| {
        if !good {
            println!("MISMATCH: {what}");
            ok = false;
        }
    };

    let bare_ns = bare_t * 1e9 / bare_n as f64;
    let inst_ns = inst_t * 1e9 / inst_n as f64;
    println!("\n== overhead (this run, {threads} threads, ns per message per thread)");
    println!("bare:         {bare_ns:8.2} ns  ({bare_n} messages)");
    println!("instrumented: {inst_ns:8.2} ns  ({inst_n} messages)");
    println!(
        "overhead:     {:+8.2} ns  = {:+.2}% of the bare loop",
        inst_ns - bare_ns,
        (inst_ns / bare_ns - 1.0) * 100.0
    );

    println!("\n== exact values (instrumented rounds), against the workload's own tally");
    let msgs = snap.counter("demo_messages_total", &[]).unwrap_or(0);
    println!(
        "demo_messages_total            {msgs:>14}   tally {}",
        total.messages
    );
    check("messages", msgs == total.messages && msgs == inst_n);
    let bytes = snap
        .sampled("demo_message_bytes", &[])
        .expect("bytes")
        .clone();
    println!(
        "demo_message_bytes count       {:>14}   tally {}",
        bytes.count, total.messages
    );
    println!(
        "demo_message_bytes sum         {:>14}   tally {}",
        bytes.sum, total.bytes
    );
    check("bytes count", bytes.count == total.messages);
    check("bytes sum", bytes.sum == total.bytes as f64);
    let failed = snap.sampled("demo_messages_failed", &[]).cloned();
    let (fc, ff, fl) = failed
        .as_ref()
        .map_or((0, 0, 0), |f| (f.count, f.flushed, f.critical_lost));
    println!(
        "demo_messages_failed (critical){fc:>14}   tally {}   flushed {ff}   lost {fl}",
        total.failed
    );
    check("failed count", fc == total.failed);
    check("no critical event lost", ff == fc && fl == 0);
    let timer = snap
        .sampled("demo_handle_seconds", &[])
        .expect("timer")
        .clone();
    println!(
        "demo_handle_seconds count      {:>14}   tally {}",
        timer.count, total.messages
    );
    check("timer count", timer.count == total.messages);
    let accounted = bytes.pushed == bytes.flushed + bytes.dropped()
        && bytes.count == bytes.skipped() + bytes.pushed;
    println!(
        "accounting demo_message_bytes: seen {} = skipped {} + pushed {}; pushed = flushed {} + dropped {}",
        bytes.count,
        bytes.skipped(),
        bytes.pushed,
        bytes.flushed,
        bytes.dropped()
    );
    check("accounting", accounted);

    println!(
        "\n== sampled estimates beside the truth (rate now 1/{:.0})",
        1.0 / bytes.rate
    );
    let e = &bytes.estimate;
    // Records dropped for a full ring are missing from the sample, so the raw
    // Horvitz–Thompson totals fall short by about the dropped share; distributions are
    // calibrated to the exact count instead. The z-scores test the sampler only when
    // nothing was dropped.
    let kept = e.count_estimate / bytes.count as f64;
    println!(
        "count: Horvitz–Thompson {:.0} ± {:.0} (1 SE) vs exact {} (z = {:+.2}); records dropped: {} of {} pushed, so the sample covers {:.2}% of events",
        e.count_estimate,
        e.count_std_error,
        bytes.count,
        (e.count_estimate - bytes.count as f64) / e.count_std_error.max(1e-9),
        bytes.dropped(),
        bytes.pushed,
        kept * 100.0
    );
    println!(
        "sum:   Horvitz–Thompson {:.0} ± {:.0} (1 SE); calibrated to the exact count: {:.0} vs exact {} ({:+.3}%)",
        e.sum_estimate,
        e.sum_std_error,
        e.sum_estimate / kept,
        total.bytes,
        (e.sum_estimate / kept / total.bytes as f64 - 1.0) * 100.0
    );
    for q in &e.quantiles {
        println!(
            "p{:<5} message bytes: estimated {:>6.1} [{:.1}, {:.1}] (95% rank interval) vs exact {}",
            q.q * 100.0,
            q.value,
            q.lower,
            q.upper,
            total.length_quantile(q.q)
        );
    }
    for &hotmeter::TopKey {
        key,
        count: est,
        lower,
        upper,
        ..
    } in e.top_keys.iter().take(4)
    {
        let name = CLIENTS
            .iter()
            .position(|c| c.key_hash() == key)
            .map_or("?", |i| CLIENTS[i]);
        let exact = CLIENTS
            .iter()
            .position(|c| c.key_hash() == key)
            .map_or(0, |i| total.per_client[i]);
        println!(
            "client {name:<8} messages: estimated {est:>12.0} [{lower:.0}, {upper:.0}] (95%, sampling and space-saving) vs exact {exact}"
        );
    }
    for q in &timer.estimate.quantiles {
        println!(
            "p{:<5} handle time: estimated {:.3e} s [{:.3e}, {:.3e}]",
            q.q * 100.0,
            q.value,
            q.lower,
            q.upper
        );
    }
    let m = &snap.meta.sampling;
    println!(
        "\npipeline: {} flushes, {} records flushed, last flush {:.3} ms for {} records, ring util max {:.1}% mean {:.1}%, {} rings, lane depth {}, lane lost {}",
        m.flushes,
        m.records_flushed,
        m.last_duration_seconds * 1e3,
        m.last_records,
        m.ring_utilization_max * 100.0,
        m.ring_utilization_mean * 100.0,
        m.rings,
        m.lane_depth,
        m.lane_lost
    );
    println!(
        "engine's own estimate of its recording cost: {:.1} ns per sampled-layer call",
        m.overhead_ns_per_call
    );

    // The exposition must say what this report says.
    println!("\n== a scrape of http://{addr}/metrics, against this report");
    match scrape(addr) {
        Ok(text) => {
            let mut checks = vec![
                ("demo_messages_total".to_string(), msgs as f64),
                ("demo_message_bytes_count".to_string(), bytes.count as f64),
                ("demo_message_bytes_sum".to_string(), bytes.sum),
                ("demo_messages_failed_count".to_string(), fc as f64),
                ("demo_handle_seconds_count".to_string(), timer.count as f64),
            ];
            for q in &e.quantiles {
                checks.push((
                    format!("demo_message_bytes{{quantile=\"{:?}\"}}", q.q),
                    q.value,
                ));
            }
            for (series, want) in &checks {
                let got = scraped(&text, series);
                let same = got == Some(*want);
                println!(
                    "{series:<42} report {want:>16}   scrape {:>16}   {}",
                    got.map_or("missing".into(), |g| g.to_string()),
                    if same { "same" } else { "DIFFERENT" }
                );
                check(series, same);
            }
        }
        Err(e) => check(&format!("scrape failed: {e}"), false),
    }

    println!(
        "\nexact: {}",
        if ok {
            "yes, every exact value matches the tally"
        } else {
            "NO"
        }
    );
    engine.shutdown();
    if !ok {
        std::process::exit(1);
    }
}
