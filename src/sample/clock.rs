//! A coarse monotonic clock for record timestamps: on Linux `CLOCK_MONOTONIC_COARSE`, which
//! the vDSO answers from the last timer tick without reading the hardware counter (a few
//! nanoseconds; resolution one tick, 1–10 ms), elsewhere `Instant`. A record's timestamp
//! only places it in time for exemplars, so a tick's resolution is enough and the sampled
//! path does not pay for a precise clock read.

/// Nanoseconds on the coarse monotonic clock (an arbitrary origin).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
pub(crate) fn coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    debug_assert_eq!(
        rc, 0,
        "CLOCK_MONOTONIC_COARSE is supported since Linux 2.6.32"
    );
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Nanoseconds on a monotonic clock (an arbitrary origin).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[inline]
pub(crate) fn coarse_ns() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn coarse_clock_is_monotonic_and_moves() {
        let a = super::coarse_ns();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = super::coarse_ns();
        // A tick is at most 10 ms, so 30 ms of sleep moves the coarse clock.
        assert!(b > a, "{a} -> {b}");
    }
}
