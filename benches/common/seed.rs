//! The seed workload's message step, shared by `benches/overhead.rs` and
//! `examples/overhead_harness.rs`: draw a message, build it (a header, then a payload of
//! 64–127 bytes), parse the header back from an opaque buffer, and FNV-1a the whole message
//! (~70 ns).

use std::hint::black_box;

/// Largest message, in bytes.
pub const MAX_LEN: usize = 128;

/// What handling a message found out.
#[derive(Clone, Copy)]
pub struct Message {
    pub client_id: u64,
    pub size: usize,
    pub new_connection: bool,
    pub failed: bool,
}

/// Builds, parses and hashes the next message of the stream `rng` (a xorshift64 state),
/// in `buf`.
#[inline(always)]
pub fn handle(rng: &mut u64, buf: &mut [u8; MAX_LEN]) -> Message {
    // xorshift64 (Marsaglia)
    let mut r = *rng;
    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    *rng = r;

    let size = 64 + (r & 63) as usize; // 64..=127 bytes
    let client = ((r >> 8) & 0xff) as u32;
    let flags = (r >> 16) as u16;
    let failed = (r >> 40).is_multiple_of(1000);

    // Build: header, then a payload.
    buf[0..4].copy_from_slice(&client.to_le_bytes());
    buf[4..6].copy_from_slice(&(size as u16).to_le_bytes());
    buf[6..8].copy_from_slice(&flags.to_le_bytes());
    let seed = (r >> 24) as u8;
    for (i, b) in buf[8..size].iter_mut().enumerate() {
        *b = seed.wrapping_add((i as u8).wrapping_mul(31));
    }

    // Parse the header back (opaque buffer: the compiler cannot reuse what it wrote).
    let buf = black_box(&*buf);
    let client_id = u64::from(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]));
    let size = usize::from(u16::from_le_bytes([buf[4], buf[5]]));
    let flags = u16::from_le_bytes([buf[6], buf[7]]);

    // FNV-1a over the whole message, in two interleaved lanes (even and odd bytes) so the
    // multiply chain is half as long.
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let (mut a, mut b) = (0xcbf2_9ce4_8422_2325u64, 0x8422_2325_cbf2_9ce4u64);
    let mut pairs = buf[..size].chunks_exact(2);
    for p in &mut pairs {
        a = (a ^ u64::from(p[0])).wrapping_mul(PRIME);
        b = (b ^ u64::from(p[1])).wrapping_mul(PRIME);
    }
    if let [last] = pairs.remainder() {
        a = (a ^ u64::from(*last)).wrapping_mul(PRIME);
    }
    black_box(a ^ b.rotate_left(32));

    Message {
        client_id,
        size,
        new_connection: flags & 63 == 0,
        failed,
    }
}
