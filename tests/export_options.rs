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
