//! The seed workload's message steps and their instrumentation, shared by
//! `benches/overhead.rs` (wall time) and `benches/iai.rs` (instructions per message): the
//! steps (`Worker`, `FnvWorker`, `Fnv1Worker`), the bare loop's message, hotmeter's five
//! metrics as the original system recorded them (`with_hotmeter`), and the hand-written
//! floor (`with_floor`).

use std::hint::black_box;
use std::time::Instant;

// ---------------------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------------------

/// A message stream: one per thread.
pub trait Step {
    fn new(thread: usize) -> Self;
    /// Handles the next message.
    fn handle(&mut self) -> Message;
}

#[path = "fnv.rs"]
pub mod fnv;
#[path = "seed.rs"]
pub mod seed;
use fnv::Fnv;
use seed::{MAX_LEN, Message};

/// One thread's message stream: build, parse, hash (`benches/common/seed.rs`, shared with
/// `examples/overhead_harness.rs`).
pub struct Worker {
    rng: u64,
    buf: [u8; MAX_LEN],
}

impl Step for Worker {
    fn new(thread: usize) -> Self {
        Self {
            rng: 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(thread as u64 + 1) | 1,
            buf: [0; MAX_LEN],
        }
    }

    #[inline(always)]
    fn handle(&mut self) -> Message {
        seed::handle(&mut self.rng, &mut self.buf)
    }
}

/// The second variant's stream: FNV-1a over a 64-byte buffer that changes each message
/// (`benches/common/fnv.rs`, shared with `benches/logging.rs`), in two interleaved lanes,
/// or as one chain with `ONE_CHAIN` ([`Fnv1Worker`]).
pub struct FnvWorker<const ONE_CHAIN: bool = false>(pub Fnv);

/// The second variant with FNV-1a as specified (one chain over the 64 bytes).
pub type Fnv1Worker = FnvWorker<true>;

impl<const ONE_CHAIN: bool> Step for FnvWorker<ONE_CHAIN> {
    fn new(thread: usize) -> Self {
        Self(Fnv::new(thread))
    }

    /// The message's fields are taken from the step's draw (one message in 64 opens a
    /// connection, one in about 1000 fails, as in the seed step).
    #[inline(always)]
    fn handle(&mut self) -> Message {
        let r = if ONE_CHAIN {
            self.0.step_one_lane()
        } else {
            self.0.step()
        };
        Message {
            client_id: (r >> 8) & 0xff,
            size: 64 + (r & 63) as usize,
            new_connection: (r >> 16) & 63 == 0,
            failed: (r >> 40).is_multiple_of(1000),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Contenders: one message each
// ---------------------------------------------------------------------------------------

#[inline(always)]
pub fn bare<W: Step>(w: &mut W) {
    black_box(w.handle());
}

#[inline(always)]
pub fn with_hotmeter<W: Step>(w: &mut W) {
    let timer = hotmeter::sampled_timer!("overhead_handle_seconds");
    let m = w.handle();
    drop(timer);
    hotmeter::counter!("overhead_messages_total").inc();
    if m.new_connection {
        hotmeter::counter!("overhead_connections_total").inc();
    }
    hotmeter::record!("overhead_message_bytes", m.size as f64, key = m.client_id);
    if m.failed {
        hotmeter::record!(critical, "overhead_messages_failed", 1.0, key = m.client_id);
    }
}

/// A sampled record in the floor's ring: series, value, key, a spare word (hotmeter's record
/// is four words too).
type FloorRecord = [u64; 4];

/// Records in the floor's ring (a power of two).
const FLOOR_RING: usize = 256;

/// One in this many events of a sampled family is pushed by the floor: 1/128, the rate
/// hotmeter's default engine settles at on this workload (`hotmeter_sample_rate` printed
/// after each hotmeter row; the floor of the default `min_sample_rate` 0.01).
const FLOOR_GAP: u32 = 128;

/// The floor: what the five metrics cost at the least any implementation must execute, as
/// one thread's plain cells written by hand: exact counts (and the message bytes' sum), a
/// countdown per sampled family, and a 4-word push into a ring on a sampled or critical
/// event. Nothing else: no registry, no call-site lookup, no random gap (a fixed one), no
/// shutdown handshake, no consumer of the ring, no flusher. A lower bound for hotmeter's
/// row, not a contender.
struct Floor {
    messages: u64,
    connections: u64,
    bytes_count: u64,
    bytes_sum: f64,
    failed: u64,
    timer_gap: u32,
    bytes_gap: u32,
    head: usize,
    ring: [FloorRecord; FLOOR_RING],
}

impl Floor {
    #[inline(always)]
    fn push(&mut self, r: FloorRecord) {
        self.ring[self.head & (FLOOR_RING - 1)] = r;
        self.head = self.head.wrapping_add(1);
    }
}

thread_local! {
    static FLOOR: std::cell::UnsafeCell<Floor> = const {
        std::cell::UnsafeCell::new(Floor {
            messages: 0,
            connections: 0,
            bytes_count: 0,
            bytes_sum: 0.0,
            failed: 0,
            timer_gap: FLOOR_GAP,
            bytes_gap: FLOOR_GAP,
            head: 0,
            ring: [[0; 4]; FLOOR_RING],
        })
    };
}

#[inline(always)]
pub fn with_floor<W: Step>(w: &mut W) {
    FLOOR.with(|f| {
        // SAFETY: each thread's `Floor` is touched only by that thread, and only inside this
        // closure, which does not re-enter it (`W::handle` never touches `FLOOR`): this is
        // the only reference.
        let f = unsafe { &mut *f.get() };
        f.timer_gap -= 1;
        let start = (f.timer_gap == 0).then(Instant::now);
        let m = w.handle();
        if let Some(start) = start {
            f.timer_gap = FLOOR_GAP;
            f.push([0, start.elapsed().as_nanos() as u64, 0, 0]);
        }
        f.messages += 1;
        if m.new_connection {
            f.connections += 1;
        }
        f.bytes_count += 1;
        f.bytes_sum += m.size as f64;
        f.bytes_gap -= 1;
        if f.bytes_gap == 0 {
            f.bytes_gap = FLOOR_GAP;
            f.push([1, m.size as u64, m.client_id, 0]);
        }
        if m.failed {
            f.failed += 1;
            f.push([2, 1, m.client_id, 0]);
        }
    })
}
