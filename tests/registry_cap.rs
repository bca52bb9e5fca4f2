//! Issue 9, defect 4: a registry-wide series cap across every kind. Before it, 3,000,000
//! gauge names took 2.6 GB with no error. Now past the cap (default
//! [`DEFAULT_MAX_SERIES`](hotmeter::DEFAULT_MAX_SERIES) = 100,000) a new label set of an
//! existing metric folds into that metric's overflow series and a new metric is refused
//! ([`Error::SeriesLimit`]); both are counted (`hotmeter_series_limited_total`), memory stays
//! bounded.

mod common;

use common::rss_kib;
use hotmeter::{DEFAULT_MAX_SERIES, Engine, Error, Format, OVERFLOW_LABEL, Registry};

/// 300,000 gauge names (three times the default cap): at most the cap are registered, the
/// rest are refused and counted, and memory grows by what the cap allows, not by what was
/// asked. Before the fix all 300,000 registered (~870 bytes each in the run).
#[test]
fn gauge_names_past_the_registry_cap_are_refused_and_counted() {
    assert_eq!(DEFAULT_MAX_SERIES, 100_000, "the documented default");
    let r = Registry::new();
    let before = rss_kib();
    const NAMES: usize = 300_000;
    let mut refused = 0;
    for i in 0..NAMES {
        match r.gauge(&format!("g_{i}"), &[]) {
            Ok(g) => g.set(1.0),
            Err(Error::SeriesLimit { cap, .. }) => {
                assert_eq!(cap, DEFAULT_MAX_SERIES);
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    let snap = r.snapshot();
    eprintln!(
        "{NAMES} gauge names: {} families, {refused} refused, RSS +{grown_mib} MiB",
        snap.families.len()
    );
    assert_eq!(snap.families.len(), DEFAULT_MAX_SERIES);
    assert_eq!(refused, NAMES - DEFAULT_MAX_SERIES);
    assert_eq!(snap.meta.series, DEFAULT_MAX_SERIES as u64);
    assert_eq!(snap.meta.series_limited, refused as u64);
    // ~870 bytes a gauge in the run: 300,000 would be ~250 MiB. The cap's 100,000
    // take about a third of that; the bound leaves room for allocator slack.
    assert!(grown_mib < 200, "RSS grew {grown_mib} MiB");
}

/// Every kind counts against one registry-wide cap; past it, a known metric's new label sets
/// fold into its overflow series (counted per metric and registry-wide) and keep counting.
#[test]
fn label_sets_past_the_registry_cap_fold_into_the_overflow_series() {
    let engine = Engine::builder()
        .series_cap(1_000_000)
        .max_series(100)
        .build()
        .unwrap();
    let r = engine.registry();
    for i in 0..40 {
        let v = i.to_string();
        r.counter("c_total", &[("i", &v)]).unwrap().inc();
        r.histogram("h_seconds", &[("i", &v)]).unwrap().record(0.1);
    }
    for i in 0..20 {
        r.sampled("s_bytes", &[("i", &i.to_string())])
            .unwrap()
            .record(1.0);
    }
    // 100 series: the cap. A new metric is refused, new label sets fold.
    assert!(matches!(
        r.gauge("late", &[]),
        Err(Error::SeriesLimit { cap: 100, .. })
    ));
    for i in 40..1040 {
        let v = i.to_string();
        r.counter("c_total", &[("i", &v)]).unwrap().inc();
        r.histogram("h_seconds", &[("i", &v)]).unwrap().record(0.2);
    }
    // A registered label set still resolves to its own series.
    r.counter("c_total", &[("i", "3")]).unwrap().inc();
    let snap = r.snapshot();
    let c = snap.families.iter().find(|f| f.name == "c_total").unwrap();
    assert_eq!(c.series.len(), 41, "40 series and the overflow series");
    let overflow = c.series.last().unwrap();
    assert_eq!(
        overflow.labels,
        vec![(OVERFLOW_LABEL.0.to_string(), OVERFLOW_LABEL.1.to_string())]
    );
    assert_eq!(overflow.value, hotmeter::Value::Counter(1000));
    let total: u64 = c
        .series
        .iter()
        .map(|s| match s.value {
            hotmeter::Value::Counter(v) => v,
            _ => 0,
        })
        .sum();
    assert_eq!(total, 1041, "no increment lost");
    assert_eq!(
        snap.meta.series_limited, 2001,
        "2,000 folds and one refused metric"
    );
    assert!(
        snap.meta
            .series_overflow
            .contains(&("c_total".to_string(), 1000))
    );
    // Registered: 100 within the cap plus one overflow series for each of the two metrics.
    assert_eq!(snap.meta.series, 102);
    let text = engine.render(Format::Text).unwrap();
    assert!(
        text.contains("hotmeter_series_limited_total 2001\n"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "hotmeter_series 102.0" || l == "hotmeter_series 102"),
        "{text}"
    );
}

#[test]
fn the_cap_comes_from_the_environment_too() {
    let c = hotmeter::Config::default()
        .apply_env_from(|k| (k == "HOTMETER_MAX_SERIES").then(|| "250".to_string()))
        .unwrap();
    assert_eq!(c.max_series, 250);
    let e = hotmeter::Config::default()
        .apply_env_from(|k| (k == "HOTMETER_MAX_SERIES").then(|| "0".to_string()))
        .unwrap_err();
    assert_eq!(e.knob, "HOTMETER_MAX_SERIES");
}
