//! What the flusher costs while the seed workload runs, read from its own meta-metrics:
//! the seed message step (`benches/common/seed.rs`) instrumented as `benches/overhead.rs`
//! instruments it, on `threads` threads for `seconds`, with the default engine (a ring of
//! `ring` records per thread); then the flusher's CPU per drained record and per drain.
//!
//! ```text
//! cargo run --release --example flusher_cost -- [threads] [seconds] [ring]   # 1 3 1024
//! ```
//!
//! The figures are the engine's `FlushStats` as of its last flush (`cpu_seconds`,
//! `records_flushed`, `drains`): the flusher thread's CPU clock around each drain and flush.

#[path = "../benches/common/seed.rs"]
mod seed;

use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .map_or(default, |s| s.parse().ok().expect("a number"))
}

fn main() {
    let (threads, seconds, ring) = (arg(1, 1usize), arg(2, 3u64), arg(3, 1024usize));
    let e = hotmeter::Engine::builder()
        .seed(7)
        .ring_capacity(ring)
        .install()
        .expect("the first engine installed");
    let end = Instant::now() + Duration::from_secs(seconds);
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ t as u64;
                let mut buf = [0u8; seed::MAX_LEN];
                while Instant::now() < end {
                    for _ in 0..10_000 {
                        let timer = hotmeter::sampled_timer!("overhead_handle_seconds");
                        let m = seed::handle(&mut rng, &mut buf);
                        drop(timer);
                        hotmeter::counter!("overhead_messages_total").inc();
                        if m.new_connection {
                            hotmeter::counter!("overhead_connections_total").inc();
                        }
                        hotmeter::record!(
                            "overhead_message_bytes",
                            m.size as f64,
                            key = m.client_id
                        );
                        if m.failed {
                            hotmeter::record!(
                                critical,
                                "overhead_messages_failed",
                                1.0,
                                key = m.client_id
                            );
                        }
                    }
                }
            });
        }
    });
    let s = e.published().stats.clone();
    println!(
        "{threads} thread(s), ring {ring}: {} flushes, {} drains, {} records drained; flusher \
         {:.1} ms CPU: {:.1} ns per record, {:.0} records and {:.1} us per drain",
        s.flushes,
        s.drains,
        s.records_flushed,
        s.cpu_seconds * 1e3,
        s.cpu_seconds * 1e9 / s.records_flushed as f64,
        s.records_flushed as f64 / s.drains as f64,
        s.cpu_seconds * 1e6 / s.drains as f64,
    );
}
