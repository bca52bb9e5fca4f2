//! What a user controls in the exposition: HELP exactly as described, units, global labels,
//! which `hotmeter_*` meta-metrics are exported, and tidy quantiles.

mod common;

use common::parse::parse;
use hotmeter::{Engine, Format};

/// Every sampled call kept, no drain needed for the records below.
fn engine() -> Engine {
    Engine::builder()
        .sample_rate(1.0)
        .max_sample_rate(1.0)
        .adaptive(false)
        .seed(3)
        .ring_capacity(4096)
        .build()
        .unwrap()
}

#[test]
fn help_is_exactly_the_described_text() {
    let engine = engine();
    let r = engine.registry();
    let s = r.sampled("payload_bytes", &[]).unwrap();
    s.record(3.0);
    r.describe("payload_bytes", "Payload \"size\" \\ per request.")
        .unwrap();
    r.counter("jobs_total", &[]).unwrap().inc();
    r.describe("jobs_total", "Jobs done.").unwrap();
    engine.flush();
    for format in [Format::OpenMetrics, Format::Text] {
        let text = engine.render(format).unwrap();
        let fams = parse(&text, format).unwrap_or_else(|e| panic!("{format:?}: {e}\n{text}"));
        let help = |name: &str| {
            fams.iter()
                .find(|f| f.name == name)
                .unwrap_or_else(|| panic!("no {name}"))
                .help
                .clone()
        };
        assert_eq!(help("payload_bytes"), "Payload \"size\" \\ per request.");
        let jobs = if format == Format::Text {
            "jobs_total"
        } else {
            "jobs"
        };
        assert_eq!(help(jobs), "Jobs done.");
    }
}

#[test]
fn a_constant_is_exported_as_itself_with_a_nonzero_error() {
    let engine = engine();
    let s = engine.registry().sampled("constant_value", &[]).unwrap();
    for _ in 0..2000 {
        s.record(1.0);
    }
    engine.flush();
    let snap = engine.registry().snapshot();
    let est = &snap.sampled("constant_value", &[]).unwrap().estimate;
    for q in &est.quantiles {
        assert_eq!(q.value, 1.0, "{q:?}");
        assert!(q.lower < q.upper, "the bucket's width: {q:?}");
    }
    let text = engine.render(Format::Text).unwrap();
    // `1.0`: floats are written as prometheus-client writes them (dtoa's shortest form).
    for q in ["0.5", "0.9", "0.99", "0.999"] {
        let line = format!("constant_value{{quantile=\"{q}\"}} 1.0\n");
        assert!(text.contains(&line), "{line}\n{text}");
    }
    for line in text
        .lines()
        .filter(|l| l.starts_with("constant_value_quantile_std_error{"))
    {
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v > 0.0, "{line}");
    }
}

#[test]
fn units_are_exported_in_openmetrics_and_need_the_suffix() {
    let engine = engine();
    let r = engine.registry();
    r.histogram("rpc_duration_seconds", &[])
        .unwrap()
        .record(0.2);
    r.describe_with_unit("rpc_duration_seconds", "seconds", "RPC time.")
        .unwrap();
    r.counter("io_wait_seconds_total", &[]).unwrap().inc();
    r.describe_with_unit("io_wait_seconds_total", "seconds", "Waiting.")
        .unwrap();
    r.sampled("payload_bytes", &[]).unwrap().record(5.0);
    r.describe_with_unit("payload_bytes", "bytes", "Payloads.")
        .unwrap();
    // No renaming: a name without the unit's suffix is refused, naming the rule.
    for (name, unit) in [
        ("latency", "seconds"),
        ("jobs_total", "seconds"),
        ("x_s", ""),
    ] {
        match r.describe_with_unit(name, unit, "h") {
            Err(hotmeter::Error::InvalidUnit { .. }) => {}
            other => panic!("{name} {unit}: {other:?}"),
        }
    }
    let e = r.describe_with_unit("latency", "seconds", "h").unwrap_err();
    assert!(e.to_string().contains("_seconds"), "{e}");
    engine.flush();

    let om = engine.render(Format::OpenMetrics).unwrap();
    let fams = parse(&om, Format::OpenMetrics).unwrap_or_else(|e| panic!("{e}\n{om}"));
    let unit = |name: &str| fams.iter().find(|f| f.name == name).unwrap().unit.clone();
    assert_eq!(unit("rpc_duration_seconds"), "seconds");
    assert_eq!(unit("io_wait_seconds"), "seconds");
    assert_eq!(unit("payload_bytes"), "bytes");
    assert_eq!(unit("payload_bytes_quantile_std_error"), "");
    assert_eq!(unit("hotmeter_flush_duration_seconds"), "seconds");
    assert!(om.contains(
        "# HELP rpc_duration_seconds RPC time.\n# TYPE rpc_duration_seconds histogram\n# UNIT rpc_duration_seconds seconds\n"
    ));
    // The 0.0.4 format has no UNIT line.
    let text = engine.render(Format::Text).unwrap();
    assert!(!text.contains("# UNIT"), "{text}");
    parse(&text, Format::Text).unwrap();
}

#[test]
fn global_labels_go_on_every_series_and_a_series_keeps_its_own() {
    let engine = Engine::builder()
        .global_label("service", "api")
        .global_label("region", "eu")
        .sample_rate(1.0)
        .max_sample_rate(1.0)
        .build()
        .unwrap();
    let r = engine.registry();
    r.counter("hits_total", &[("path", "/")]).unwrap().inc();
    r.counter("moved_total", &[("region", "us")]).unwrap().inc();
    r.gauge("depth", &[]).unwrap().set(2.0);
    r.histogram("size_bytes", &[]).unwrap().record(3.0);
    r.sampled("wait_seconds", &[]).unwrap().record(1.0);
    engine.flush();
    for format in [Format::OpenMetrics, Format::Text] {
        let text = engine.render(format).unwrap();
        let fams = parse(&text, format).unwrap_or_else(|e| panic!("{format:?}: {e}\n{text}"));
        let mut meta = 0;
        for f in &fams {
            meta += usize::from(f.name.starts_with("hotmeter_"));
            for s in &f.samples {
                let get = |k: &str| s.labels.iter().find(|(a, _)| a == k).map(|(_, v)| v);
                assert_eq!(get("service").map(String::as_str), Some("api"), "{s:?}");
                let region = if f.name.starts_with("moved") {
                    "us"
                } else {
                    "eu"
                };
                assert_eq!(get("region").map(String::as_str), Some(region), "{s:?}");
            }
        }
        assert!(meta > 10, "the meta-metrics carry them too");
        assert!(text.contains("hits_total{path=\"/\",region=\"eu\",service=\"api\"} 1"));
    }
}

#[test]
fn meta_metrics_are_selectable() {
    use hotmeter::{ESSENTIAL_META_METRICS, MetaMetrics};
    let meta_families = |m: MetaMetrics| {
        let engine = Engine::builder().meta_metrics(m).build().unwrap();
        engine.registry().counter("mine_total", &[]).unwrap().inc();
        engine.flush();
        let text = engine.render(Format::OpenMetrics).unwrap();
        let fams = parse(&text, Format::OpenMetrics).unwrap();
        assert!(fams.iter().any(|f| f.name == "mine"));
        let mut names: Vec<String> = fams
            .into_iter()
            .map(|f| f.name)
            .filter(|n| n.starts_with("hotmeter_"))
            .collect();
        names.sort();
        names
    };
    assert!(meta_families(MetaMetrics::None).is_empty());
    let mut essential: Vec<String> = ESSENTIAL_META_METRICS.map(String::from).into();
    essential.sort();
    assert_eq!(meta_families(MetaMetrics::Essential), essential);
    let all = meta_families(MetaMetrics::All);
    assert!(all.len() > essential.len() + 10, "{all:?}");
    assert!(essential.iter().all(|e| all.contains(e)));
}
