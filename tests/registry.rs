//! The handle API on local registries: naming rules, kinds, labels, caps, snapshots.

use hotmeter::{
    Error, HistogramConfig, MAX_LABEL_VALUE_BYTES, MAX_LABELS, MetricKind, OVERFLOW_LABEL,
    Registry, Value,
};

#[test]
fn invalid_metric_names_are_errors_naming_the_rule() {
    let r = Registry::new();
    let cases = [
        ("", "metric name must not be empty"),
        (
            "__x",
            "metric names starting with `__` are reserved for Prometheus",
        ),
        ("9x", "metric name must start with [a-zA-Z_:]"),
        ("-x", "metric name must start with [a-zA-Z_:]"),
        ("a-b", "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*"),
        ("a b", "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*"),
        ("a\"b", "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*"),
        ("naïve", "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*"),
    ];
    for (name, rule) in cases {
        let want = Error::InvalidMetricName {
            name: name.into(),
            rule,
        };
        assert_eq!(r.counter(name, &[]), Err(want.clone()), "{name:?}");
        assert_eq!(r.gauge(name, &[]).map(|_| ()), Err(want.clone()));
        assert_eq!(r.histogram(name, &[]).map(|_| ()), Err(want.clone()));
        assert_eq!(r.describe(name, "help"), Err(want.clone()));
        assert!(want.to_string().contains(rule));
    }
    // Colons are allowed in metric names (recording rules use them).
    assert!(r.counter("job:requests:rate5m", &[]).is_ok());
    assert!(r.snapshot().families.iter().all(|f| !f.name.is_empty()));
}

#[test]
fn invalid_label_names_are_errors_naming_the_rule() {
    let r = Registry::new();
    let cases = [
        ("", "label name must not be empty"),
        (
            "__name__",
            "label names starting with `__` are reserved for Prometheus",
        ),
        ("9", "label name must start with [a-zA-Z_]"),
        (":a", "label name must start with [a-zA-Z_]"),
        ("a:b", "label name must match [a-zA-Z_][a-zA-Z0-9_]*"),
        ("a-b", "label name must match [a-zA-Z_][a-zA-Z0-9_]*"),
    ];
    for (name, rule) in cases {
        assert_eq!(
            r.counter("ok_total", &[(name, "v")]),
            Err(Error::InvalidLabelName {
                name: name.into(),
                rule
            }),
            "{name:?}"
        );
    }
    assert_eq!(
        r.histogram("h", &[("le", "1")]).map(|_| ()),
        Err(Error::InvalidLabelName {
            name: "le".into(),
            rule: "`le` is reserved for histogram buckets"
        })
    );
    // `le` is an ordinary label on a counter.
    assert!(r.counter("c_total", &[("le", "1")]).is_ok());
    assert_eq!(
        r.counter("ok_total", &[("a", "1"), ("b", "2"), ("a", "3")]),
        Err(Error::DuplicateLabel("a".into()))
    );
    let many: Vec<(String, String)> = (0..=MAX_LABELS)
        .map(|i| (format!("l{i}"), "v".to_string()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        r.counter("ok_total", &many),
        Err(Error::TooManyLabels(MAX_LABELS + 1))
    );
    assert!(r.counter("ok_total", &many[..MAX_LABELS]).is_ok());
}

#[test]
fn one_name_cannot_be_two_kinds() {
    let r = Registry::new();
    r.counter("requests_total", &[]).unwrap();
    let err = r.gauge("requests_total", &[("a", "b")]).unwrap_err();
    assert_eq!(
        err,
        Error::KindMismatch {
            name: "requests_total".into(),
            registered: MetricKind::Counter,
            requested: MetricKind::Gauge
        }
    );
    assert!(err.to_string().contains("registered as a counter"));
    assert!(r.histogram("requests_total", &[]).is_err());
    r.histogram_with("bytes", &[], &HistogramConfig::range(1.0, 1e6).unwrap())
        .unwrap();
    assert_eq!(
        r.histogram_with("bytes", &[], &HistogramConfig::seconds())
            .map(|_| ()),
        Err(Error::HistogramConfigMismatch("bytes".into()))
    );
    // Without a config, a later registration takes the family's.
    let h = r.histogram("bytes", &[("x", "y")]).unwrap();
    h.record(1000.0);
    let snap = r.snapshot();
    let b = snap.histogram("bytes", &[("x", "y")]).unwrap();
    assert_eq!(b.buckets.last().unwrap(), &(f64::INFINITY, 1));
    assert_eq!(
        b.buckets.len(),
        22,
        "2^0..2^20 (21 bounds) plus +Inf: {:?}",
        b.buckets
    );
}

#[test]
fn series_are_name_plus_sorted_labels() {
    let r = Registry::new();
    let a = r
        .counter("req_total", &[("method", "GET"), ("code", "200")])
        .unwrap();
    let b = r
        .counter("req_total", &[("code", "200"), ("method", "GET")])
        .unwrap();
    let c = r
        .counter("req_total", &[("code", "500"), ("method", "GET")])
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    a.add(3);
    b.inc();
    c.inc();
    let snap = r.snapshot();
    assert_eq!(
        snap.counter("req_total", &[("method", "GET"), ("code", "200")]),
        Some(4)
    );
    assert_eq!(
        snap.counter("req_total", &[("code", "500"), ("method", "GET")]),
        Some(1)
    );
    let family = snap.family("req_total").unwrap();
    assert_eq!(family.kind, MetricKind::Counter);
    assert_eq!(
        family.series[0].labels,
        vec![
            ("code".into(), "200".into()),
            ("method".into(), "GET".into())
        ]
    );
    assert_eq!(a.value(), 4);
}

#[test]
fn series_past_the_cap_fold_into_one_overflow_series() {
    let r = Registry::with_series_cap(3);
    for i in 0..10 {
        let id = i.to_string();
        r.counter("per_client_total", &[("client", &id)])
            .unwrap()
            .add(i + 1);
    }
    let snap = r.snapshot();
    let family = snap.family("per_client_total").unwrap();
    assert_eq!(family.series.len(), 4, "3 series + overflow");
    assert_eq!(
        snap.counter("per_client_total", &[("client", "0")]),
        Some(1)
    );
    assert_eq!(snap.counter("per_client_total", &[("client", "3")]), None);
    assert_eq!(
        snap.counter("per_client_total", &[OVERFLOW_LABEL]),
        Some((4..=10).sum::<u64>()),
        "nothing is lost: the folded series hold the rest"
    );
    assert_eq!(
        snap.meta.series_overflow,
        vec![("per_client_total".to_string(), 7)]
    );
    // A series registered before the cap was reached still resolves to itself.
    r.counter("per_client_total", &[("client", "1")])
        .unwrap()
        .inc();
    assert_eq!(
        r.snapshot().counter("per_client_total", &[("client", "1")]),
        Some(3)
    );
}

#[test]
fn label_values_of_any_text_are_stored_safely() {
    let r = Registry::new();
    let nasty = "a\"b\\c\nd\u{0}é\u{1F600}{}=,";
    r.counter("nasty_total", &[("v", nasty)]).unwrap().inc();
    let huge = "x".repeat(1 << 20);
    r.counter("nasty_total", &[("v", &huge)]).unwrap().add(2);
    // A different value with the same first MAX_LABEL_VALUE_BYTES bytes: the same series.
    let huge2 = format!("{}y", "x".repeat(MAX_LABEL_VALUE_BYTES + 5));
    r.counter("nasty_total", &[("v", &huge2)]).unwrap().add(3);
    let snap = r.snapshot();
    assert_eq!(snap.counter("nasty_total", &[("v", nasty)]), Some(1));
    let truncated = "x".repeat(MAX_LABEL_VALUE_BYTES);
    assert_eq!(snap.counter("nasty_total", &[("v", &truncated)]), Some(5));
    assert_eq!(snap.family("nasty_total").unwrap().series.len(), 2);
}

#[test]
fn gauges_set_add_sub() {
    let r = Registry::new();
    let g = r.gauge("temperature", &[]).unwrap();
    assert_eq!(g.value(), 0.0);
    g.set(20.5);
    g.add(1.25);
    g.sub(0.75);
    assert_eq!(g.value(), 21.0);
    assert_eq!(r.snapshot().gauge("temperature", &[]), Some(21.0));
    // Concurrent adds are not lost.
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || (0..10_000).for_each(|_| g.add(1.0))))
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(g.value(), 40_021.0);
}

#[test]
fn histogram_rejects_and_counts_invalid_values() {
    let r = Registry::new();
    let h = r.histogram("latency_seconds", &[]).unwrap();
    for v in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -1.0,
        -1e-300,
        0.5,
    ] {
        h.record(v);
    }
    h.record(-0.0);
    let snap = r.snapshot();
    let s = snap.histogram("latency_seconds", &[]).unwrap();
    assert_eq!(s.invalid, 5);
    assert_eq!(s.count, 2);
    assert_eq!(s.sum, 0.5);
    assert_eq!(s.buckets[0], (2f64.powi(-20), 1), "-0.0 is recorded as 0");
    assert_eq!(
        snap.meta.histogram_invalid,
        vec![("latency_seconds".to_string(), 5)]
    );
}

/// xorshift64*: a fixed-seed generator so the test is deterministic.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn exported_buckets_are_cumulative_against_a_sorted_reference() {
    let r = Registry::new();
    let config = HistogramConfig::seconds()
        .with_bounds(&[1e-6, 1e-4, 0.001, 0.0042, 0.01, 0.1, 0.5, 1.0, 10.0, 100.0])
        .unwrap();
    let h = r.histogram_with("ref_seconds", &[], &config).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let mut values = Vec::new();
    for _ in 0..50_000 {
        // Log-uniform over 1e-8 .. 1e3, plus exact bucket edges now and then.
        let u = (xorshift(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
        let v = if xorshift(&mut state).is_multiple_of(16) {
            config.bounds()[(xorshift(&mut state) % 10) as usize]
        } else {
            10f64.powf(-8.0 + 11.0 * u)
        };
        values.push(v);
        h.record(v);
    }
    values.sort_by(f64::total_cmp);
    let snap = r.snapshot();
    let s = snap.histogram("ref_seconds", &[]).unwrap();
    assert_eq!(s.count, values.len() as u64);
    assert_eq!(s.buckets.len(), config.bounds().len() + 1);
    let mut prev = 0;
    for &(le, cumulative) in &s.buckets {
        let expected = values.partition_point(|&v| v <= le) as u64;
        assert_eq!(cumulative, expected, "le={le}");
        assert!(cumulative >= prev);
        prev = cumulative;
    }
    assert_eq!(s.buckets.last().unwrap(), &(f64::INFINITY, s.count));
    let want_sum: f64 = values.iter().sum();
    assert!((s.sum - want_sum).abs() <= want_sum * 1e-12);
}

#[test]
fn help_text_and_snapshot_kinds() {
    let r = Registry::new();
    r.describe("jobs_total", "Jobs done.").unwrap();
    r.counter("jobs_total", &[]).unwrap().inc();
    r.gauge("depth", &[]).unwrap().set(2.0);
    let t = r.histogram("job_seconds", &[]).unwrap().start_timer();
    t.stop();
    let snap = r.snapshot();
    let names: Vec<&str> = snap.families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["depth", "job_seconds", "jobs_total"]);
    assert_eq!(
        snap.family("jobs_total").unwrap().help.as_deref(),
        Some("Jobs done.")
    );
    assert!(matches!(
        snap.family("job_seconds").unwrap().series[0].value,
        Value::Histogram(ref h) if h.count == 1 && h.sum >= 0.0
    ));
}
