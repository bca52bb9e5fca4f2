//! A user's benchmark, as `scripts/overhead_gate` expects one: a toy service loop (parse a
//! request, hash its body, answer) instrumented as a service would be, under iai-callgrind.
//! `scripts/overhead_gate user_gate --budget 30%` runs it with hotmeter and with its off
//! switch and compares instruction counts. With `HOTMETER_GATE_HEAVY=1` at build time the
//! instrumentation also times every request with `timer!` (two clock reads: a deliberately
//! heavier instrumentation), which the gate must refuse.

// The iai-callgrind macros generate `pub mod`s that cannot carry docs.
#![allow(missing_docs)]

use std::hint::black_box;

use iai_callgrind::{library_benchmark, library_benchmark_group, main};

/// Requests per measured call.
const N: u64 = 2_000;

/// Whether this build adds a `timer!` per request (set `HOTMETER_GATE_HEAVY=1` when
/// building).
const HEAVY: bool = option_env!("HOTMETER_GATE_HEAVY").is_some();

/// One request: a 64-byte body built from `i`, hashed (FNV-1a).
#[inline(always)]
fn handle(i: u64) -> u64 {
    let mut body = [0u8; 64];
    for (j, b) in body.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(j as u8);
    }
    black_box(&body)
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        })
}

#[inline(never)]
fn serve(n: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..n {
        let _t = hotmeter::sampled_timer!("gate_request_seconds");
        hotmeter::counter!("gate_requests_total").inc();
        let h = handle(i);
        hotmeter::record!("gate_body_class", (h & 7) as f64, key = i & 15);
        if HEAVY {
            // Two clock reads per request, through hotmeter: gone under the off switch.
            drop(hotmeter::timer!("gate_heavy_seconds"));
        }
        acc = acc.wrapping_add(h);
    }
    acc
}

fn setup() -> u64 {
    // Registration and first-touch work happen before counting.
    black_box(serve(100));
    N
}

#[library_benchmark(setup = setup)]
fn service_loop(n: u64) -> u64 {
    black_box(serve(n))
}

library_benchmark_group!(name = service; benchmarks = service_loop);
main!(library_benchmark_groups = service);
