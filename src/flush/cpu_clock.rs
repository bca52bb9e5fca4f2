//! The flusher's cost meter: CPU time consumed by the calling thread, read from the
//! thread's CPU clock (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`, POSIX) on Linux and Android.
//! Elsewhere it falls back to wall time, which overstates CPU by whatever the thread waited
//! (page faults, preemption) while it worked: an upper bound, not the CPU time itself.

/// Nanoseconds of CPU time the calling thread has used so far (elsewhere than Linux and
/// Android: wall time since a fixed process-wide origin). Only differences between two reads
/// on the same thread mean anything.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec` for the duration of the call, and
    // `CLOCK_THREAD_CPUTIME_ID` is a clock every Linux since 2.6.12 provides.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Wall-time fallback (see the module docs).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn thread_cpu_ns() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock only moves forward, and busy work moves it (by at least some of the work:
    /// no timing bound, only that it is not stuck).
    #[test]
    fn thread_clock_is_monotone_and_counts_work() {
        let a = thread_cpu_ns();
        let mut x = 0u64;
        let mut b = a;
        // Spin until the clock moves (its resolution is ~1 ns on Linux; bounded loop).
        for i in 0..100_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            if i % 1024 == 0 {
                b = thread_cpu_ns();
                if b > a {
                    break;
                }
            }
        }
        std::hint::black_box(x);
        assert!(b > a, "thread clock did not move: {a} -> {b}");
        assert!(thread_cpu_ns() >= b);
    }
}
