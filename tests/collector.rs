//! `EngineCollector` through the re-exported prometheus-client (issue 10, item 2): a program
//! that names `hotmeter::prometheus_client` always has the version the collector implements
//! `Collector` for; what the collector cannot carry (summaries) leaves no orphan gauge.
#![cfg(feature = "prometheus-client")]

use hotmeter::prometheus_client;

#[test]
fn the_collector_registers_in_the_reexported_crate_and_leaves_no_orphans() {
    let engine = hotmeter::Engine::builder().build().unwrap();
    let r = engine.registry();
    r.counter("jobs_total", &[("queue", "a")]).unwrap().add(3);
    r.histogram_with(
        "latency_seconds",
        &[],
        &hotmeter::HistogramConfig::buckets(&[0.1, 1.0]).unwrap(),
    )
    .unwrap()
    .record(0.5);
    let s = r.sampled("payload_bytes", &[]).unwrap();
    for i in 0..100u64 {
        s.record_keyed(i as f64, &(i % 3));
    }
    engine.flush();

    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(engine.collector()));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();

    assert!(out.contains("jobs_total{queue=\"a\"} 3\n"), "{out}");
    assert!(
        out.contains("latency_seconds_bucket{le=\"0.1\"} 0\n"),
        "{out}"
    );
    assert!(
        out.contains("latency_seconds_bucket{le=\"1.0\"} 1\n"),
        "{out}"
    );
    // The summary is not carried, and neither are the gauges that only describe it (the
    // meta-metrics name it in a label only).
    assert!(
        !out.lines()
            .any(|l| l.starts_with("payload_bytes") || l.contains(" payload_bytes")),
        "{out}"
    );
    // `render` carries all of it.
    let text = engine.render(hotmeter::Format::Text).unwrap();
    for family in [
        "payload_bytes_count 100\n",
        "payload_bytes_quantile_std_error{",
        "payload_bytes_quantile_lower{",
        "payload_bytes_quantile_upper{",
        "payload_bytes_top_keys{",
    ] {
        assert!(text.contains(family), "{family:?} in\n{text}");
    }
}

#[test]
fn the_collector_carries_units_global_labels_and_the_meta_selection() {
    let engine = hotmeter::Engine::builder()
        .global_label("service", "api")
        .meta_metrics(hotmeter::MetaMetrics::Essential)
        .build()
        .unwrap();
    let r = engine.registry();
    r.histogram_with(
        "latency_seconds",
        &[("route", "/")],
        &hotmeter::HistogramConfig::buckets(&[0.1, 1.0]).unwrap(),
    )
    .unwrap()
    .record(0.5);
    r.describe_with_unit("latency_seconds", "seconds", "Latency.")
        .unwrap();
    engine.flush();
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(engine.collector()));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    assert!(
        out.contains(
            "# HELP latency_seconds Latency.\n# TYPE latency_seconds histogram\n# UNIT latency_seconds seconds\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("latency_seconds_bucket{le=\"1.0\",route=\"/\",service=\"api\"} 1\n"),
        "{out}"
    );
    assert!(out.contains("hotmeter_sample_rate"), "{out}");
    assert!(!out.contains("hotmeter_flushes"), "{out}");
    assert!(
        out.lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.contains("service=\"api\"")),
        "{out}"
    );
}
