//! The flusher's own cost, as every user sees it: `hotmeter_flusher_cpu_seconds_total` and
//! `hotmeter_flusher_cpu_seconds_per_record`, from the published stats and both exposition
//! formats.

use std::time::Duration;

use hotmeter::{Engine, Format};

fn engine() -> Engine {
    Engine::builder()
        .seed(11)
        .sample_rate(1.0)
        .max_sample_rate(1.0)
        .adaptive(false)
        .ring_capacity(1 << 16)
        // Long interval: the test decides when to flush.
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap()
}

/// The value of the unlabelled sample `name` in a rendering.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn flusher_cpu_is_monotone_positive_and_exported() {
    let e = engine();
    let s = e.registry().sampled("cost_bytes", &[]).unwrap();
    let k = e.registry().sampled("cost_keyed_bytes", &[]).unwrap();
    let mut last = 0.0;
    for round in 0..5u64 {
        for i in 0..20_000u64 {
            s.record(i as f64);
            k.record_keyed(i as f64, &(i % 300));
        }
        e.flush();
        let stats = e.published().stats.clone();
        assert_eq!(
            stats.last_records, 40_000,
            "round {round}: every record drained"
        );
        assert!(
            stats.cpu_seconds > 0.0 && stats.cpu_seconds >= last,
            "round {round}: {} after {last}",
            stats.cpu_seconds
        );
        // Per record: finite and positive once records were drained (no bound on speed).
        assert!(
            stats.ns_per_record.is_finite() && stats.ns_per_record > 0.0,
            "round {round}: {}",
            stats.ns_per_record
        );
        last = stats.cpu_seconds;
        for format in [Format::OpenMetrics, Format::Text] {
            let text = e.render(format).unwrap();
            let cpu = sample(&text, "hotmeter_flusher_cpu_seconds_total");
            assert!(cpu >= last, "{format:?}: {cpu} < {last}");
            assert_eq!(
                sample(&text, "hotmeter_flusher_cpu_seconds_per_record"),
                stats.ns_per_record * 1e-9,
                "{format:?}"
            );
        }
    }
    // A flush that drains nothing adds little, but never takes away.
    e.flush();
    assert!(e.published().stats.cpu_seconds >= last);
}

#[test]
fn a_bad_overhead_budget_is_refused_by_name() {
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        let e = Engine::builder().overhead_budget(bad).build().unwrap_err();
        assert_eq!(e.config().unwrap().knob, "overhead_budget", "{bad}");
        assert!(e.to_string().contains("overhead_budget"), "{e}");
    }
    let e = Engine::builder().overhead_budget(0.2).build().unwrap();
    assert_eq!(e.config().overhead_budget, 0.2);
}

/// The budget reaches the controller: a family whose records cost more than a tiny budget
/// goes to the lowest rate at the next flush; with the whole core as budget a light family
/// rises to the highest rate; an idle family keeps its starting rate. (No timing is
/// asserted: the sleeps only make each interval's budget large.)
#[test]
fn the_overhead_budget_drives_the_rate() {
    let engine = |budget: f64| {
        Engine::builder()
            .seed(3)
            .sample_rate(1.0 / 8.0)
            .min_sample_rate(1.0 / 1024.0)
            .max_sample_rate(1.0)
            .overhead_budget(budget)
            .ring_capacity(2048)
            .flush_interval(Duration::from_secs(3600))
            .build()
            .unwrap()
    };
    let rate = |e: &Engine, name: &str| e.registry().snapshot().sampled(name, &[]).unwrap().rate;

    // A millionth of a core: 10,000 events are far over it, while their ~1,250 records
    // leave the 2,048-record ring calm (so only the budget can lower the rate).
    let e = engine(1e-6);
    let heavy = e.registry().sampled("budget_heavy", &[]).unwrap();
    e.registry().sampled("budget_idle", &[]).unwrap();
    for _ in 0..3 {
        for i in 0..10_000 {
            heavy.record(i as f64);
        }
        std::thread::sleep(Duration::from_millis(5));
        e.flush();
    }
    assert_eq!(rate(&e, "budget_heavy"), 1.0 / 1024.0);
    assert_eq!(rate(&e, "budget_idle"), 1.0 / 8.0);

    // The whole core over intervals of at least 20 ms: 10 events an interval cost a tiny
    // part of it, even with the per-record cost charged the flush's fixed cost (a few
    // hundred µs in a debug build, spread over the few records of each interval).
    let e = engine(1.0);
    let light = e.registry().sampled("budget_light", &[]).unwrap();
    e.registry().sampled("budget_idle", &[]).unwrap();
    for _ in 0..12 {
        for i in 0..10 {
            light.record(i as f64);
        }
        std::thread::sleep(Duration::from_millis(20));
        e.flush();
    }
    assert_eq!(rate(&e, "budget_light"), 1.0);
    assert_eq!(rate(&e, "budget_idle"), 1.0 / 8.0);
}
