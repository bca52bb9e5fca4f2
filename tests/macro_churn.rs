//! Literal macro call sites cache this thread's cells in a thread-local slot. Threads that
//! record through them come and go concurrently (each new one adopting an arena another
//! just gave back), and half of them also record from a thread-local destructor that runs
//! after their arena guard gave the arena back: every value stays exact, so no write went
//! through a stale slot into an arena another thread owned by then (with the slot reset
//! removed from `Holder::release`, the late writes race the adopter's and counts come up
//! short). Own binary: it installs the global engine.

use std::cell::Cell;
use std::thread;

/// Threads each spawner starts, one after another.
const WAVES: usize = 40;
/// Spawners running at once.
const THREADS: usize = 4;
const CALLS: u64 = 2_000;

/// Records through the macros when dropped: registered before the thread's first recording,
/// so its destructor runs after the arena guard's (destructors run in reverse order of
/// registration), when the thread no longer holds an arena.
struct LateRecorder(Cell<u64>);

impl Drop for LateRecorder {
    fn drop(&mut self) {
        // The call sites `work` filled on this thread: their slots must have been reset.
        for _ in 0..self.0.get() {
            late_sites();
        }
    }
}

thread_local! {
    static LATE: LateRecorder = const { LateRecorder(Cell::new(0)) };
}

/// Call sites both `work` and the late destructor use: an adopter of this thread's arena
/// writes the same cells at the same time.
fn late_sites() {
    hotmeter::counter!("churn_total").inc();
    hotmeter::record!("churn_bytes", 1.0);
    hotmeter::histogram!("churn_seconds").record(0.5);
}

fn work(late: bool) {
    if late {
        LATE.with(|l| l.0.set(CALLS));
    }
    for i in 0..CALLS {
        late_sites();
        hotmeter::counter!("churn_labelled_total", "kind" => "a").add(2);
        hotmeter::record!("churn_keyed_bytes", 3.0, key = i);
        let _t = hotmeter::sampled_timer!("churn_handle_seconds");
        let _h = hotmeter::timer!("churn_timer_seconds");
    }
}

#[test]
fn literal_sites_stay_exact_across_churn_and_late_destructors() {
    let engine = hotmeter::Engine::builder()
        .seed(3)
        .install()
        .expect("the only engine of this binary");
    let spawners: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                for w in 0..WAVES {
                    thread::spawn(move || work((t + w) % 2 == 0))
                        .join()
                        .unwrap();
                }
            })
        })
        .collect();
    for s in spawners {
        s.join().unwrap();
    }
    engine.flush();
    let snap = engine.registry().snapshot();
    let calls = (WAVES * THREADS) as u64 * CALLS;
    let late = (WAVES * THREADS / 2) as u64 * CALLS;
    assert_eq!(snap.counter("churn_total", &[]), Some(calls + late));
    assert_eq!(
        snap.counter("churn_labelled_total", &[("kind", "a")]),
        Some(2 * calls)
    );
    let h = snap.histogram("churn_seconds", &[]).unwrap();
    assert_eq!(h.count, calls + late);
    assert_eq!(
        snap.histogram("churn_timer_seconds", &[]).unwrap().count,
        calls
    );
    for (name, n, per_call) in [
        ("churn_bytes", calls + late, 1.0),
        ("churn_keyed_bytes", calls, 3.0),
    ] {
        let v = snap.sampled(name, &[]).unwrap();
        assert_eq!(v.count, n, "{name}");
        assert_eq!(v.sum, per_call * n as f64, "{name}");
        assert_eq!(
            v.pushed,
            v.flushed + v.dropped(),
            "{name}: every record accounted for"
        );
    }
    assert_eq!(
        snap.sampled("churn_handle_seconds", &[]).unwrap().count,
        calls
    );
    // At most THREADS workers live at once, plus the spawners, which never record: arenas
    // are adopted, not piled up (a worker past its guard borrows one for each late call,
    // so up to twice as many may exist).
    assert!(
        snap.meta.arenas_created <= 2 * THREADS + 1,
        "arenas created: {}",
        snap.meta.arenas_created
    );
}
