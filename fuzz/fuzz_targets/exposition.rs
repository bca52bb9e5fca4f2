//! Arbitrary metric names, label names and values, HELP texts and floats: each registration
//! is either refused with an error or ends up in renderings (both formats) that the strict
//! parser accepts and that round-trip every value, label and HELP text exactly.
#![no_main]

use arbitrary::Arbitrary;
#[path = "../../tests/common/parse.rs"]
mod parse;
use parse::parse;
use hotmeter::{Format, Registry};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Counter { name: String, labels: Vec<(String, String)>, n: u32 },
    Gauge { name: String, labels: Vec<(String, String)>, v: f64 },
    Histogram { name: String, labels: Vec<(String, String)>, v: f64 },
    Describe { name: String, help: String },
}

fuzz_target!(|ops: Vec<Op>| {
    let registry = Registry::new();
    // What the registry accepted: (exposed sample name, labels) -> value.
    let mut expected: Vec<(String, Vec<(String, String)>, f64)> = Vec::new();
    // The last HELP set per name wins.
    let mut helps: std::collections::BTreeMap<String, String> = Default::default();
    for op in ops.into_iter().take(32) {
        match op {
            Op::Counter { name, labels, n } => {
                let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                if let Ok(c) = registry.counter(&name, &l) {
                    c.add(n as u64);
                }
            }
            Op::Gauge { name, labels, v } => {
                let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                if let Ok(g) = registry.gauge(&name, &l) {
                    g.set(v);
                }
            }
            Op::Histogram { name, labels, v } => {
                let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                if let Ok(h) = registry.histogram(&name, &l) {
                    h.record(v);
                }
            }
            Op::Describe { name, help } => {
                if registry.describe(&name, &help).is_ok() {
                    helps.insert(name, help);
                }
            }
        }
    }
    let snap = registry.snapshot();
    for f in &snap.families {
        for s in &f.series {
            match &s.value {
                hotmeter::Value::Counter(v) => {
                    let base = f.name.strip_suffix("_total").unwrap_or(&f.name);
                    expected.push((format!("{base}_total"), s.labels.clone(), *v as f64));
                }
                hotmeter::Value::Gauge(v) => expected.push((f.name.clone(), s.labels.clone(), *v)),
                hotmeter::Value::Histogram(h) => {
                    expected.push((format!("{}_count", f.name), s.labels.clone(), h.count as f64));
                }
                hotmeter::Value::Sampled(_) => {}
            }
        }
    }
    for format in [Format::OpenMetrics, Format::Text] {
        let text = hotmeter::export::render(&registry, format).expect("render");
        let fams = match parse(&text, format) {
            Ok(f) => f,
            Err(e) => panic!("{format:?} rendering rejected: {e}\n{text}"),
        };
        for (name, labels, v) in &expected {
            let mut want = labels.clone();
            want.sort();
            let found = fams.iter().flat_map(|f| &f.samples).find(|s| {
                let mut l = s.labels.clone();
                l.sort();
                &s.name == name && l == want
            });
            let s = found.unwrap_or_else(|| panic!("{name}{labels:?} missing in {format:?}\n{text}"));
            assert!(
                s.value.to_bits() == v.to_bits() || (s.value.is_nan() && v.is_nan()),
                "{name}: {} != {v}",
                s.value
            );
        }
        for (name, help) in &helps {
            if let Some(f) = snap.family(name) {
                let exposed = match (f.kind, format) {
                    (hotmeter::MetricKind::Counter, Format::OpenMetrics) => {
                        name.strip_suffix("_total").unwrap_or(name).to_string()
                    }
                    (hotmeter::MetricKind::Counter, Format::Text) => {
                        format!("{}_total", name.strip_suffix("_total").unwrap_or(name))
                    }
                    _ => name.clone(),
                };
                let pf = fams.iter().find(|p| p.name == exposed).expect("family");
                assert_eq!(&pf.help, help);
            }
        }
    }
});
