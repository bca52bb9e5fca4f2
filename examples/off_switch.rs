//! The compile-time off switch, shown on a toy message step: `bare_step` and its instrumented
//! twin `instrumented_step` (the seed workload's instrumentation: a sampled timer, a counter,
//! a keyed `record!`, a labelled histogram, a gauge and a rare critical event).
//!
//! Built normally, the twin records; built with `RUSTFLAGS="--cfg hotmeter_disabled"`,
//! every macro compiles to nothing and the two functions are the same machine code, which
//! `.ci/off_switch` checks by disassembling both (and checks that without the cfg they
//! differ).
//!
//! ```text
//! cargo run --release --example off_switch
//! RUSTFLAGS="--cfg hotmeter_disabled" cargo run --release --example off_switch --target-dir target/off
//! ```

use std::hint::black_box;

/// FNV-1a over the message: the work a step does.
#[inline(always)]
fn fnv(buf: &[u8; 64]) -> u64 {
    buf.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One message, bare.
#[inline(never)]
#[unsafe(no_mangle)]
pub fn bare_step(buf: &[u8; 64], client: u64) -> u64 {
    fnv(buf) ^ client
}

/// The same message, instrumented. (The size class recorded comes from the hash: with a
/// value independent of it, LLVM hoists the buffer's loads above the `record!` and spills
/// them across its cold call; see the README.)
#[inline(never)]
#[unsafe(no_mangle)]
pub fn instrumented_step(buf: &[u8; 64], client: u64) -> u64 {
    let _t = hotmeter::sampled_timer!("step_seconds");
    hotmeter::counter!("steps_total").inc();
    let h = fnv(buf) ^ client;
    hotmeter::record!("step_bytes", (h & 63) as f64, key = client);
    hotmeter::histogram!("step_spread", "kind" => "low").record((h % 100) as f64);
    hotmeter::gauge!("last_client").set(client as f64);
    if h == 0 {
        hotmeter::record!(critical, "step_failed", 1.0, key = client);
    }
    h
}

fn main() {
    let mut buf = [0u8; 64];
    let mut acc = 0u64;
    for i in 0..100_000u64 {
        buf[(i % 64) as usize] = i as u8;
        acc = acc.wrapping_add(bare_step(black_box(&buf), i % 16));
        acc = acc.wrapping_add(instrumented_step(black_box(&buf), i % 16));
    }
    let steps = hotmeter::global()
        .snapshot()
        .counter("steps_total", &[])
        .unwrap_or(0);
    println!(
        "hotmeter_disabled: {}; steps recorded: {steps}; checksum {acc:x}",
        cfg!(hotmeter_disabled)
    );
}
