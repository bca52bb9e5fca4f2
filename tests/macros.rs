//! The recording macros against the global registry (its own binary: global state).

use hotmeter::{MetricKind, global};

#[test]
fn literal_sites_record_into_their_series() {
    for _ in 0..5 {
        hotmeter::counter!("m_requests_total").inc();
        hotmeter::counter!("m_requests_total", "method" => "GET", "code" => "200").add(2);
    }
    // A different call site with the same name and labels names the same series.
    hotmeter::counter!("m_requests_total", "code" => "200", "method" => "GET").inc();
    hotmeter::gauge!("m_queue_depth").set(3.0);
    hotmeter::gauge!("m_queue_depth").add(1.5);
    hotmeter::histogram!("m_request_seconds").record(0.0042);
    hotmeter::histogram!("m_request_seconds", "route" => "/a").record(0.5);
    let snap = global().snapshot();
    assert_eq!(snap.counter("m_requests_total", &[]), Some(5));
    assert_eq!(
        snap.counter("m_requests_total", &[("method", "GET"), ("code", "200")]),
        Some(11)
    );
    assert_eq!(snap.gauge("m_queue_depth", &[]), Some(4.5));
    assert_eq!(snap.histogram("m_request_seconds", &[]).unwrap().count, 1);
    assert_eq!(
        snap.histogram("m_request_seconds", &[("route", "/a")])
            .unwrap()
            .sum,
        0.5
    );
}

#[test]
fn dynamic_label_values_resolve_per_value_and_thread() {
    let routes = ["/users", "/orders", "/users"];
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    for r in routes {
                        hotmeter::counter!("m_bytes_total", "route" => r).add(10);
                        let owned = String::from(r);
                        hotmeter::counter!("m_mixed_total", "route" => owned, "kind" => "x").inc();
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let snap = global().snapshot();
    assert_eq!(
        snap.counter("m_bytes_total", &[("route", "/users")]),
        Some(4 * 1000 * 2 * 10)
    );
    assert_eq!(
        snap.counter("m_bytes_total", &[("route", "/orders")]),
        Some(4 * 1000 * 10)
    );
    assert_eq!(
        snap.counter("m_mixed_total", &[("route", "/users"), ("kind", "x")]),
        Some(8000)
    );
    assert_eq!(snap.family("m_bytes_total").unwrap().series.len(), 2);
    // Values that could collide if concatenated without a separator stay distinct.
    for (a, b) in [("ab", "c"), ("a", "bc")] {
        hotmeter::counter!("m_pair_total", "x" => a, "y" => b).inc();
    }
    let snap = global().snapshot();
    assert_eq!(
        snap.counter("m_pair_total", &[("x", "ab"), ("y", "c")]),
        Some(1)
    );
    assert_eq!(
        snap.counter("m_pair_total", &[("x", "a"), ("y", "bc")]),
        Some(1)
    );
}

#[test]
fn a_failed_registration_never_panics_and_is_counted() {
    let before = global().snapshot().meta.registration_errors;
    hotmeter::gauge!("m_conflict").set(1.0);
    // Same name as another kind: reported, counted, recorded into a discard handle.
    for _ in 0..3 {
        hotmeter::counter!("m_conflict").inc();
    }
    let kind = "x";
    hotmeter::histogram!("m_conflict", "k" => kind).record(1.0);
    let snap = global().snapshot();
    assert_eq!(
        snap.meta.registration_errors - before,
        2,
        "once per call site"
    );
    let family = snap.family("m_conflict").unwrap();
    assert_eq!(family.kind, MetricKind::Gauge);
    assert_eq!(family.series.len(), 1);
    assert_eq!(snap.gauge("m_conflict", &[]), Some(1.0));
}

#[test]
fn timer_records_elapsed_seconds() {
    {
        let _t = hotmeter::timer!("m_sleep_seconds", "op" => "sleep");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let snap = global().snapshot();
    let h = snap
        .histogram("m_sleep_seconds", &[("op", "sleep")])
        .unwrap();
    assert_eq!(h.count, 1);
    assert!(h.sum >= 0.005, "slept 5 ms, recorded {}", h.sum);
}

/// `record!` and `sampled_timer!` take labels after the value (and key): literal values
/// through a static site, dynamic ones through the per-thread cache; every form counts
/// exactly into its own labelled series.
#[test]
fn sampled_macros_take_labels() {
    let routes = ["/a".to_string(), "/b".to_string()];
    for i in 0..100u64 {
        let route = &routes[(i % 2) as usize];
        hotmeter::record!("m_msg_bytes", 10.0, "kind" => "data");
        hotmeter::record!("m_msg_bytes", 1.0, key = i % 3, "kind" => "ctl");
        hotmeter::record!("m_route_bytes", i as f64, "route" => route);
        hotmeter::record!("m_route_bytes", 1.0, key = i, "route" => route.as_str(), "v" => "2",);
        hotmeter::record!(critical, "m_failed", 1.0, "kind" => "io");
        hotmeter::record!(critical, "m_failed", 1.0, key = "c", "kind" => format!("{}", "net"));
        let _t = hotmeter::sampled_timer!("m_route_seconds", "route" => route);
    }
    let snap = global().snapshot();
    let count = |name: &str, labels: &[(&str, &str)]| {
        snap.sampled(name, labels)
            .unwrap_or_else(|| panic!("{name}{labels:?}"))
            .count
    };
    assert_eq!(count("m_msg_bytes", &[("kind", "data")]), 100);
    assert_eq!(
        snap.sampled("m_msg_bytes", &[("kind", "data")])
            .unwrap()
            .sum,
        1000.0
    );
    assert_eq!(count("m_msg_bytes", &[("kind", "ctl")]), 100);
    assert_eq!(count("m_route_bytes", &[("route", "/a")]), 50);
    assert_eq!(
        snap.sampled("m_route_bytes", &[("route", "/b")])
            .unwrap()
            .sum,
        (1..100).step_by(2).sum::<u64>() as f64
    );
    assert_eq!(count("m_route_bytes", &[("route", "/a"), ("v", "2")]), 50);
    assert_eq!(count("m_failed", &[("kind", "io")]), 100);
    assert_eq!(count("m_failed", &[("kind", "net")]), 100);
    assert_eq!(count("m_route_seconds", &[("route", "/b")]), 50);
    // The unlabelled series was never created by the labelled sites. (`m_bytes` would
    // collide with the counter `m_bytes_total` of another test here: refused, by design.)
    assert!(snap.sampled("m_msg_bytes", &[]).is_none());
}

/// A family registered with exact bucket bounds keeps them for its macro call sites: every
/// exported `le` is a bound asked for, and each cumulative count is exact at it.
#[test]
fn exact_bucket_bounds_through_the_macro() {
    let config = hotmeter::HistogramConfig::buckets(&[0.005, 0.01, 0.1]).unwrap();
    hotmeter::global()
        .histogram_with("m_exact_seconds", &[("route", "/a")], &config)
        .unwrap();
    for v in [0.001, 0.005, 0.0051, 0.01, 0.05, 0.1, 0.2, 7.0] {
        hotmeter::histogram!("m_exact_seconds", "route" => "/a").record(v);
    }
    let snap = hotmeter::global().snapshot();
    let h = snap
        .histogram("m_exact_seconds", &[("route", "/a")])
        .unwrap();
    assert_eq!(
        h.buckets,
        vec![(0.005, 2), (0.01, 4), (0.1, 6), (f64::INFINITY, 8)]
    );
    let text = hotmeter::global_engine()
        .render(hotmeter::Format::Text)
        .unwrap();
    assert!(
        text.contains("m_exact_seconds_bucket{route=\"/a\",le=\"0.005\"} 2\n"),
        "{text}"
    );
}
