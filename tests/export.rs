//! The exposition of a real engine: both formats parse strictly and carry the exact values,
//! exemplars come from keyed histogram records, bad registrations are refused, and the
//! external validators (`promtool check metrics`, Python's strict OpenMetrics parser) accept
//! the renderings.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::parse::{ParsedFamily, parse};
use hotmeter::{Engine, Error, Format, HistogramConfig, SampleKey};

/// An engine exercising every kind, escaping included; every sampled call is kept.
fn engine() -> Engine {
    let engine = Engine::builder()
        .sample_rate(1.0)
        .max_sample_rate(1.0)
        .adaptive(false)
        .seed(11)
        // The 2,000 records below fit without a drain: every event kept, counts exact.
        .ring_capacity(4096)
        .build()
        .unwrap();
    let r = engine.registry();
    let weird = "a\"b\\c\nd";
    r.counter("requests_total", &[("path", weird), ("method", "GET")])
        .unwrap()
        .add(41);
    r.describe(
        "requests_total",
        "Requests \"served\" \\ by path\nsecond line",
    )
    .unwrap();
    r.counter("jobs", &[]).unwrap().add(3);
    r.gauge("temperature_celsius", &[("room", weird)])
        .unwrap()
        .set(-2.5);
    let h = r
        .histogram_with(
            "latency_seconds",
            &[("route", "/")],
            &HistogramConfig::seconds()
                .with_bounds(&[0.001, 0.01, 0.1, 1.0])
                .unwrap(),
        )
        .unwrap();
    for v in [0.0005, 0.005, 0.05, 0.5, 5.0, 0.05] {
        h.record(v);
    }
    h.record_keyed(0.02, &"trace-42");
    let s = r.sampled("message_bytes", &[("kind", "data")]).unwrap();
    for i in 0..2000u64 {
        s.record_keyed((i % 100) as f64, &(i % 5));
    }
    engine.flush();
    engine
}

fn family<'a>(fams: &'a [ParsedFamily], name: &str) -> &'a ParsedFamily {
    fams.iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

fn value(f: &ParsedFamily, sample: &str, labels: &[(&str, &str)]) -> f64 {
    f.samples
        .iter()
        .find(|s| {
            s.name == sample
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .unwrap_or_else(|| panic!("no sample {sample}{labels:?} in {}", f.name))
        .value
}

#[test]
fn both_formats_carry_the_exact_values() {
    let engine = engine();
    let snap = engine.registry().snapshot();
    for format in [Format::OpenMetrics, Format::Text] {
        let text = engine.render(format).unwrap();
        let fams = parse(&text, format).unwrap_or_else(|e| panic!("{format:?}: {e}\n{text}"));
        let req_family = if format == Format::OpenMetrics {
            "requests"
        } else {
            "requests_total"
        };
        let req = family(&fams, req_family);
        assert_eq!(req.help, "Requests \"served\" \\ by path\nsecond line");
        assert_eq!(
            value(
                req,
                "requests_total",
                &[("method", "GET"), ("path", "a\"b\\c\nd")]
            ),
            41.0
        );
        assert!(!text.contains("_total_total"));
        assert_eq!(
            value(
                family(&fams, "temperature_celsius"),
                "temperature_celsius",
                &[("room", "a\"b\\c\nd")]
            ),
            -2.5
        );
        // Histogram: cumulative buckets equal to the snapshot's, +Inf == count == 7.
        let h = snap
            .histogram("latency_seconds", &[("route", "/")])
            .unwrap();
        let lat = family(&fams, "latency_seconds");
        for &(le, cumulative) in &h.buckets {
            let mut s = String::new();
            if le.is_infinite() {
                s.push_str("+Inf");
            } else {
                s.push_str(&format!("{le:?}"));
            }
            assert_eq!(
                value(lat, "latency_seconds_bucket", &[("route", "/"), ("le", &s)]),
                cumulative as f64,
                "le={s}"
            );
        }
        assert_eq!(value(lat, "latency_seconds_count", &[("route", "/")]), 7.0);
        // Sampled: exact count, quantiles present.
        let m = family(&fams, "message_bytes");
        assert_eq!(m.kind, "summary");
        assert_eq!(value(m, "message_bytes_count", &[("kind", "data")]), 2000.0);
        let p50 = value(m, "message_bytes", &[("kind", "data"), ("quantile", "0.5")]);
        assert!((40.0..=60.0).contains(&p50), "p50 {p50}");
        // Five keys, each ~400 events (every event was kept: exact).
        let keys = family(&fams, "message_bytes_top_keys");
        assert_eq!(keys.samples.len(), 5);
        assert!(keys.samples.iter().all(|s| s.value == 400.0));
        // Meta-metrics.
        let rate = family(&fams, "hotmeter_sample_rate");
        assert_eq!(
            value(rate, "hotmeter_sample_rate", &[("metric", "message_bytes")]),
            1.0
        );
    }
}

/// Issue 13, defect 3: a quantile's interval is not symmetric around its estimate (a 0.9 /
/// 0.1 mixture of 10 and 1,000, sampled at 1/32: p90 sits at the edge between them), so a
/// symmetric standard error cannot describe it. Both formats export the interval itself,
/// `_quantile_lower` / `_quantile_upper`, equal to the snapshot's, and it is lopsided
/// here. Deterministic (fixed seeds).
#[test]
fn quantile_intervals_are_exported_as_they_are() {
    let engine = Engine::builder()
        .sample_rate(1.0 / 32.0)
        .min_sample_rate(1.0 / 32.0)
        .max_sample_rate(1.0 / 32.0)
        .adaptive(false)
        .seed(7)
        .ring_capacity(1 << 14)
        .build()
        .unwrap();
    let s = engine.registry().sampled("mix_value", &[]).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.record(if x.is_multiple_of(10) { 1000.0 } else { 10.0 });
    }
    engine.flush();
    let snap = engine.registry().snapshot();
    let est = &snap.sampled("mix_value", &[]).unwrap().estimate;
    let p90 = est.quantiles.iter().find(|q| q.q == 0.9).unwrap();
    let (below, above) = (p90.value - p90.lower, p90.upper - p90.value);
    println!("p90 {p90:?}");
    assert!(p90.lower <= p90.value && p90.value <= p90.upper, "{p90:?}");
    assert!(
        above > 10.0 * below || below > 10.0 * above,
        "a lopsided interval: {p90:?}"
    );
    for format in [Format::OpenMetrics, Format::Text] {
        let text = engine.render(format).unwrap();
        let fams = parse(&text, format).unwrap_or_else(|e| panic!("{format:?}: {e}\n{text}"));
        for q in &est.quantiles {
            let label = [("for_quantile", format!("{:?}", q.q))];
            let label: Vec<(&str, &str)> = label.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let lower = value(
                family(&fams, "mix_value_quantile_lower"),
                "mix_value_quantile_lower",
                &label,
            );
            let upper = value(
                family(&fams, "mix_value_quantile_upper"),
                "mix_value_quantile_upper",
                &label,
            );
            if q.lower.is_nan() {
                assert!(lower.is_nan() && upper.is_nan(), "{format:?} {q:?}");
            } else {
                assert_eq!((lower, upper), (q.lower, q.upper), "{format:?} {q:?}");
            }
        }
    }
}

#[test]
fn exemplars_come_from_keyed_histogram_records_in_openmetrics_only() {
    let engine = engine();
    let om = engine.render(Format::OpenMetrics).unwrap();
    let fams = parse(&om, Format::OpenMetrics).unwrap();
    let lat = family(&fams, "latency_seconds");
    let with: Vec<_> = lat
        .samples
        .iter()
        .filter(|s| s.exemplar.is_some())
        .collect();
    assert_eq!(with.len(), 1, "{om}");
    let (labels, v, ts) = with[0].exemplar.clone().unwrap();
    assert_eq!(v, 0.02);
    // The parser checked the exemplar lies in its bucket; it is the first `le` >= 0.02.
    let snap = engine.registry().snapshot();
    let h = snap
        .histogram("latency_seconds", &[("route", "/")])
        .unwrap();
    let le = h.buckets.iter().find(|b| b.0 >= 0.02).unwrap().0;
    assert!(
        with[0].labels.contains(&("le".into(), format!("{le:?}"))),
        "{:?} vs {le}",
        with[0].labels
    );
    let key = format!("{:016x}", "trace-42".key_hash());
    assert_eq!(labels, vec![("key".to_string(), key)]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let ts = ts.expect("timestamp");
    assert!(ts <= now + 1.0 && ts > now - 600.0, "{ts} vs {now}");
    let text = engine.render(Format::Text).unwrap();
    assert!(!text.contains(" # {"), "no exemplars in 0.0.4");
    // Only histograms keep exemplars: a keyed sampled metric's records feed its top keys.
    let snap = engine.registry().snapshot();
    let bytes = snap.sampled("message_bytes", &[("kind", "data")]).unwrap();
    assert!(!bytes.estimate.top_keys.is_empty());
    assert!(bytes.estimate.exemplars.is_empty());
}

#[test]
fn collisions_and_reserved_names_are_refused() {
    let engine = Engine::builder().build().unwrap();
    let r = engine.registry();
    r.counter("x", &[]).unwrap();
    assert!(matches!(
        r.gauge("x_total", &[]),
        Err(Error::ExpositionCollision { .. })
    ));
    assert!(matches!(
        r.counter("x_total", &[]),
        Err(Error::ExpositionCollision { .. })
    ));
    r.histogram("h", &[]).unwrap();
    assert!(matches!(
        r.gauge("h_count", &[]),
        Err(Error::ExpositionCollision { .. })
    ));
    r.sampled("s", &[]).unwrap();
    let e = r.gauge("s_sum", &[]).unwrap_err();
    assert!(e.to_string().contains("\"s_sum\""), "{e}");
    assert!(matches!(
        r.counter("hotmeter_mine", &[]),
        Err(Error::InvalidMetricName { .. })
    ));
    // `_created` is OpenMetrics' too, for counters, histograms and summaries.
    assert!(matches!(
        r.gauge("x_created", &[]),
        Err(Error::ExpositionCollision { .. })
    ));
    assert!(matches!(
        r.gauge("h_created", &[]),
        Err(Error::ExpositionCollision { .. })
    ));
    // The overflow series' label is hotmeter's.
    assert!(matches!(
        r.counter("y_total", &[("hotmeter_overflow", "true")]),
        Err(Error::InvalidLabelName { .. })
    ));
    // An empty label value is no label (Prometheus' reading): one series, not two.
    r.counter("z_total", &[("a", "")]).unwrap().inc();
    r.counter("z_total", &[]).unwrap().inc();
    let snap = r.snapshot();
    assert_eq!(snap.family("z_total").unwrap().series.len(), 1);
    assert_eq!(snap.counter("z_total", &[]), Some(2));
    for bad in ["_", "_total"] {
        assert!(
            matches!(r.counter(bad, &[]), Err(Error::InvalidMetricName { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        r.sampled("t", &[("quantile", "x")]),
        Err(Error::InvalidLabelName { .. })
    ));
    // The refused names left nothing behind: the rendering still parses.
    parse(
        &engine.render(Format::OpenMetrics).unwrap(),
        Format::OpenMetrics,
    )
    .unwrap();
    parse(&engine.render(Format::Text).unwrap(), Format::Text).unwrap();
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn promtool_accepts_the_text_format() {
    if !common::tool_available("promtool") {
        return;
    }
    let text = engine().render(Format::Text).unwrap();
    let out = run_with_stdin(Command::new("promtool").args(["check", "metrics"]), &text);
    assert!(
        out.status.success(),
        "promtool: {:?}\n{}{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_strict_parser_accepts_openmetrics() {
    if !common::tool_available("python3") {
        return;
    }
    let probe = Command::new("python3")
        .args(["-c", "import prometheus_client.openmetrics.parser"])
        .output()
        .unwrap();
    if !probe.status.success() {
        // The module is the tool here.
        assert!(
            common::tool_available("hotmeter-missing-python-prometheus-client"),
            "unreachable"
        );
        return;
    }
    let om = engine().render(Format::OpenMetrics).unwrap();
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\nfams = list(p(sys.stdin.read()))\nn = sum(len(f.samples) for f in fams)\nex = sum(1 for f in fams for s in f.samples if s.exemplar)\nprint(len(fams), n, ex)\n";
    let out = run_with_stdin(Command::new("python3").args(["-c", script]), &om);
    assert!(
        out.status.success(),
        "python parser: {}\n{om}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<usize> = printed
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let ours = parse(&om, Format::OpenMetrics).unwrap();
    assert_eq!(nums[0], ours.len(), "family count");
    assert_eq!(nums[1], ours.iter().map(|f| f.samples.len()).sum::<usize>());
    assert_eq!(nums[2], 1, "one exemplar");
}
