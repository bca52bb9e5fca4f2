//! What the default engine adds to a process's resident memory for the seed workload: the
//! same 2-thread message loop is run bare, then instrumented (a sampled timer, two
//! counters, a keyed `record!`, a rare critical `record!`) with the default engine (its
//! quantile window shortened to 5 s, so that the run fills it as a long-running process
//! has), and the resident set (`VmRSS`) is read after each. The difference is hotmeter's: arenas and
//! their chunks, call-site slots, rings, the flusher's per-series state, the engine.
//!
//! ```text
//! cargo run --release --example memory
//! HOTMETER_SMAPS=1 cargo run --release --example memory   # and which mappings grew
//! ```
//!
//! Part of what it prints is not data: the binary's code pages that the instrumented run
//! touched for the first time (engine, flusher) and `libm`, shared and
//! file-backed; `HOTMETER_SMAPS=1` lists them apart from the anonymous (heap, stack) growth.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Counts the bytes live on the heap, to tell heap from other resident memory.
struct Counting;

static LIVE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
/// The most bytes live at once since the last reset (allocators keep the pages of a peak
/// resident after it passes).
static PEAK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn grew(by: i64) {
    let now = LIVE.fetch_add(by, std::sync::atomic::Ordering::Relaxed) + by;
    PEAK.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
}

// SAFETY: forwards to `System`, only counting sizes.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        grew(l.size() as i64);
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        grew(l.size() as i64);
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size() as i64, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
        grew(new as i64 - l.size() as i64);
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn heap_kib() -> i64 {
    LIVE.load(std::sync::atomic::Ordering::Relaxed) / 1024
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// One message: FNV-1a over a 64-byte buffer that changes each time (one chain of 64
/// multiplies, like `benches/overhead.rs`'s `overhead_fnv1` step).
fn step(buf: &mut [u8; 64], n: u64) -> (u64, u64) {
    buf[..8].copy_from_slice(&n.to_le_bytes());
    let h = black_box(&*buf)
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
    (h, h & 0xff)
}

/// What was resident while the recording threads were still alive.
struct Measured {
    rss_kib: u64,
    heap_kib: i64,
    maps: Vec<(String, u64)>,
}

/// Runs the loop on two threads for `seconds`; then, while both threads still live (their
/// rings, arenas and stacks with them), waits `linger` (for the flusher's intervals) and
/// measures.
fn run(instrumented: bool, seconds: f64, linger: Duration) -> Measured {
    let barrier = Barrier::new(2);
    let done = Barrier::new(3);
    let measured = Barrier::new(3);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (barrier, done, measured) = (&barrier, &done, &measured);
            s.spawn(move || {
                let mut buf = [t as u8; 64];
                barrier.wait();
                let end = Instant::now() + Duration::from_secs_f64(seconds);
                let mut n = 0u64;
                while Instant::now() < end {
                    for _ in 0..10_000 {
                        n += 1;
                        if instrumented {
                            let _t = hotmeter::sampled_timer!("mem_handle_seconds");
                            let (h, client) = step(&mut buf, n);
                            hotmeter::counter!("mem_messages_total").inc();
                            if h & 63 == 0 {
                                hotmeter::counter!("mem_connections_total").inc();
                            }
                            hotmeter::record!(
                                "mem_message_bytes",
                                (64 + (h & 63)) as f64,
                                key = client
                            );
                            if h % 1000 == 0 {
                                hotmeter::record!(
                                    critical,
                                    "mem_messages_failed",
                                    1.0,
                                    key = client
                                );
                            }
                        } else {
                            black_box(step(&mut buf, n));
                        }
                    }
                }
                done.wait();
                measured.wait();
            });
        }
        done.wait();
        std::thread::sleep(linger);
        let m = Measured {
            rss_kib: rss_kib(),
            heap_kib: heap_kib(),
            maps: if std::env::var_os("HOTMETER_SMAPS").is_some() {
                smaps()
            } else {
                Vec::new()
            },
        };
        measured.wait();
        m
    })
}

/// `(mapping, Rss KiB)` of every mapping, from `/proc/self/smaps` (HOTMETER_SMAPS=1).
fn smaps() -> Vec<(String, u64)> {
    let text = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut out = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(kib) = line.strip_prefix("Rss:") {
            let kib = kib
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            out.push((name.clone(), kib));
        } else if line.split_whitespace().next().is_some_and(|a| {
            a.contains('-') && a.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        }) {
            name = line.to_string();
        }
    }
    out
}

fn main() {
    // Long enough to fill the quantile window below (5 steps of 1 s), then a flush
    // interval's linger: the flusher's state as in a process that has run for a window.
    let seconds = 6.0;
    let bare = run(false, seconds, Duration::ZERO);
    hotmeter::Engine::builder()
        // The default window is 600 s in 5 steps of 120 s, and a fresh engine holds one step
        // per series; the state a long-running process holds is all 5. A 5 s window builds
        // that state within the run. (Each 1 s step sees fewer outliers than a 120 s one, so
        // its buckets may span less: each step is capped at 1,024 buckets of 16 bytes.)
        .quantile_window(Duration::from_secs(5))
        .install()
        .expect("the only engine of this program");
    // The peak while recording, from here (the calibration's rings at install are freed).
    PEAK.store(
        LIVE.load(std::sync::atomic::Ordering::Relaxed),
        std::sync::atomic::Ordering::Relaxed,
    );
    // Let the flusher run an interval over what was recorded.
    let on = run(true, seconds, Duration::from_millis(1_100));
    let (mut anon, mut file) = (0, 0);
    if std::env::var_os("HOTMETER_SMAPS").is_some() {
        let mut before: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for (n, k) in &bare.maps {
            *before.entry(n).or_default() += k;
        }
        for (n, k) in &on.maps {
            let b = before.get(n.as_str()).copied().unwrap_or(0);
            if *k > b + 8 {
                println!("{:>6} KiB  {n}", k - b);
                // A mapping with an inode is a file's (code, libraries); inode 0 is
                // anonymous (heap, stacks, hotmeter's own mappings).
                let inode = n.split_whitespace().nth(4).unwrap_or("0");
                if inode == "0" {
                    anon += k - b;
                } else {
                    file += k - b;
                }
            }
        }
    }
    let heap = on.heap_kib - bare.heap_kib;
    let peak = PEAK.load(std::sync::atomic::Ordering::Relaxed) / 1024 - bare.heap_kib;
    let snap = hotmeter::global().snapshot();
    println!(
        "RSS bare {} KiB, instrumented {} KiB: hotmeter adds {} KiB while both threads live, \
         of which {heap} KiB live heap allocations, {peak} KiB at the peak while recording \
         ({} messages, {} arenas)",
        bare.rss_kib,
        on.rss_kib,
        on.rss_kib as i64 - bare.rss_kib as i64,
        snap.counter("mem_messages_total", &[]).unwrap_or(0),
        snap.meta.arenas_created
    );
    if std::env::var_os("HOTMETER_SMAPS").is_some() {
        println!(
            "of the growth: {anon} KiB anonymous (data: heap, stacks, arenas, rings), {file} KiB \
             file-backed (code pages touched for the first time, shared with every process \
             mapping them)"
        );
    }
}
