//! The seed workload's second message step, shared by `benches/overhead.rs` and
//! `benches/logging.rs`: FNV-1a over a 64-byte buffer that changes each message (two
//! interleaved lanes: ~20-35 ns depending on the machine; `step_one_lane` is the single
//! chain).

use std::hint::black_box;

/// The next draw of a xorshift64 (Marsaglia) state.
#[inline(always)]
fn xorshift(state: &mut u64) -> u64 {
    let mut r = *state;
    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    *state = r;
    r
}

/// FNV-1a's prime.
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// One worker's FNV step: its generator, message counter and buffer.
pub struct Fnv {
    rng: u64,
    n: u64,
    buf: [u8; 64],
}

impl Fnv {
    /// Worker `thread`'s step (each thread its own stream and buffer).
    pub fn new(thread: usize) -> Self {
        let mut buf = [0u8; 64];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(thread as u8);
        }
        Self {
            rng: 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(thread as u64 + 1) | 1,
            n: 0,
            buf,
        }
    }

    /// [`Fnv::step`] with FNV-1a as specified: one multiply chain over the 64 bytes (twice
    /// as long as `step`'s two interleaved lanes).
    #[inline(always)]
    #[allow(dead_code)] // used through `benches/common/message.rs` (overhead and iai benches)
    pub fn step_one_lane(&mut self) -> u64 {
        let (r, buf) = self.next_message();
        let h = buf.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(PRIME)
        });
        black_box(h);
        r
    }

    /// The next draw, written with the message counter into the buffer, and the buffer as
    /// an opaque reference (the compiler cannot reuse what it wrote).
    #[inline(always)]
    fn next_message(&mut self) -> (u64, &[u8; 64]) {
        let r = xorshift(&mut self.rng);
        self.n += 1;
        // The buffer changes each message: the draw and the counter go into it.
        self.buf[0..8].copy_from_slice(&r.to_le_bytes());
        self.buf[8..16].copy_from_slice(&self.n.to_le_bytes());
        (r, black_box(&self.buf))
    }

    /// One message: a draw, written with the counter into the buffer, which is hashed.
    /// Returns the draw (what a message's fields are made of).
    #[inline(always)]
    pub fn step(&mut self) -> u64 {
        let (r, buf) = self.next_message();
        let (mut a, mut b) = (0xcbf2_9ce4_8422_2325u64, 0x8422_2325_cbf2_9ce4u64);
        for p in buf.chunks_exact(2) {
            a = (a ^ p[0] as u64).wrapping_mul(PRIME);
            b = (b ^ p[1] as u64).wrapping_mul(PRIME);
        }
        black_box(a ^ b.rotate_left(32));
        r
    }
}
