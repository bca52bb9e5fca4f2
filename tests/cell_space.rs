//! The process-wide cell space: large enough for big programs, and when it does run out,
//! registration fails with a counted error and macro call sites record into discard
//! handles instead of panicking. Own binary: it fills the process's cell space.

mod common;

use hotmeter::Registry;

#[test]
fn big_programs_fit_and_exhaustion_never_panics_a_call_site() {
    // 100,000 default histogram series and 1,000,000 counter series (issue 9's size),
    // across families of 1000 series (the default cap), in a registry whose registry-wide
    // series cap (default 100,000) lets them all in.
    let r = Registry::with_limits(hotmeter::DEFAULT_SERIES_CAP, 2_000_000);
    let values: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    for f in 0..100 {
        let name = format!("h{f}_seconds");
        for v in &values {
            r.histogram(&name, &[("user", v)]).expect("fits");
        }
    }
    for f in 0..1000 {
        let name = format!("c{f}_total");
        for v in &values {
            r.counter(&name, &[("user", v)]).expect("fits");
        }
    }
    let c = r.counter("c999_total", &[("user", "999")]).unwrap();
    c.add(5);
    assert_eq!(c.value(), 5);

    // Fill the rest of the half every program-made registry shares until it runs out.
    let filler = Registry::with_limits(hotmeter::DEFAULT_SERIES_CAP, 2_000_000);
    common::exhaust_cell_space(&filler);
    assert!(
        r.counter("one_more_total", &[]).is_err(),
        "that half is full"
    );

    // The global registry (the macros') has a half of its own: other registries cannot
    // use up its cells. These call sites register and record as usual.
    for _ in 0..10 {
        hotmeter::counter!("before_global_exhaustion_total").inc();
        hotmeter::record!("before_global_exhaustion_bytes", 2.0);
    }
    let snap = hotmeter::global().snapshot();
    assert_eq!(
        snap.counter("before_global_exhaustion_total", &[]),
        Some(10)
    );
    assert_eq!(
        snap.sampled("before_global_exhaustion_bytes", &[])
            .map(|v| v.count),
        Some(10)
    );

    // Now use up the global half too.
    common::exhaust_cell_space(hotmeter::global());

    // Every kind of macro call site now fails to register: each records into a discard
    // handle, never panics, and the failures are counted.
    let before = hotmeter::global().snapshot().meta.registration_errors;
    for _ in 0..1000 {
        every_cell_backed_site();
    }
    let route = String::from("/r");
    hotmeter::counter!("after_exhaustion_routed_total", "route" => route).inc();
    let snap = hotmeter::global().snapshot();
    // Gauges take no cells: the six literal cell-backed sites failed once each (a literal
    // site resolves once), the dynamic one once (it retries per call, counting each).
    assert_eq!(snap.meta.registration_errors - before, 7);
    assert_eq!(snap.counter("after_exhaustion_total", &[]), None);
    hotmeter::gauge!("after_exhaustion_gauge").set(1.0);
    assert_eq!(
        hotmeter::global()
            .snapshot()
            .gauge("after_exhaustion_gauge", &[]),
        Some(1.0)
    );
}

fn every_cell_backed_site() {
    hotmeter::counter!("after_exhaustion_total").inc();
    hotmeter::histogram!("after_exhaustion_seconds").record(0.1);
    hotmeter::record!("after_exhaustion_bytes", 1.0);
    hotmeter::record!("after_exhaustion_keyed_bytes", 1.0, key = 7u64);
    hotmeter::record!(critical, "after_exhaustion_failed", 1.0);
    drop(hotmeter::sampled_timer!("after_exhaustion_handle_seconds"));
}
