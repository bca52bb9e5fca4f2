//! Golden renderings of both formats from a hand-built snapshot, the two OpenMetrics
//! encoders against each other, the strict parser, and `Accept` negotiation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::model::{self, Family};
use super::parse::parse;
use super::{Format, openmetrics, text};
use crate::flush::{ExemplarRecord, FlushStats, Quantile, SeriesEstimate};
use crate::metric::{HistogramSnapshot, MetricKind};
use crate::registry::{
    FamilySnapshot, MetaSnapshot, SampledValue, SeriesSnapshot, Snapshot, Value,
};

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn family(
    name: &str,
    help: Option<&str>,
    kind: MetricKind,
    series: Vec<SeriesSnapshot>,
) -> FamilySnapshot {
    FamilySnapshot {
        name: name.into(),
        help: help.map(Into::into),
        unit: None,
        kind,
        series,
    }
}

/// Every kind, escaping in a label value and in HELP, an exemplar, a sampled series.
fn snapshot() -> Snapshot {
    Snapshot {
        families: vec![
            family(
                "jobs",
                None,
                MetricKind::Counter,
                vec![SeriesSnapshot {
                    labels: vec![],
                    value: Value::Counter(3),
                }],
            ),
            FamilySnapshot {
                unit: Some("seconds".into()),
                ..family(
                    "latency_seconds",
                    None,
                    MetricKind::Histogram,
                    vec![SeriesSnapshot {
                        labels: labels(&[("route", "/")]),
                        value: Value::Histogram(HistogramSnapshot {
                            buckets: vec![(0.25, 1), (1.0, 2), (f64::INFINITY, 3)],
                            count: 3,
                            sum: 2.6,
                            invalid: 0,
                            exemplars: vec![ExemplarRecord {
                                value: 0.5,
                                key: 0xabc,
                                time_ns: 1_500_000_000,
                            }],
                        }),
                    }],
                )
            },
            family(
                "msg_bytes",
                None,
                MetricKind::Sampled,
                vec![SeriesSnapshot {
                    labels: vec![],
                    value: Value::Sampled(SampledValue {
                        count: 100,
                        sum: 5000.0,
                        rate: 0.25,
                        pushed: 30,
                        flushed: 28,
                        dropped_full: 2,
                        dropped_oldest: 0,
                        dropped_timeout: 0,
                        critical_to_lane: 0,
                        critical_lost: 0,
                        estimate: SeriesEstimate {
                            records: 28,
                            n_eff: 28.0,
                            quantiles: vec![Quantile {
                                q: 0.5,
                                value: 2.0,
                                lower: 0.0,
                                upper: 3.92,
                            }],
                            top_keys: vec![crate::TopKey {
                                key: 0xbeef,
                                name: None,
                                count: 12.0,
                                overcount: 1.0,
                                lower: 11.0,
                                upper: 12.0,
                            }],
                            ..SeriesEstimate::default()
                        },
                    }),
                }],
            ),
            family(
                "requests_total",
                Some("Requests \"served\"\\ok\nsecond line"),
                MetricKind::Counter,
                vec![SeriesSnapshot {
                    labels: labels(&[("method", "GET"), ("path", "a\"b\\c\nd")]),
                    value: Value::Counter(7),
                }],
            ),
            family(
                "temperature",
                None,
                MetricKind::Gauge,
                vec![
                    SeriesSnapshot {
                        labels: vec![],
                        value: Value::Gauge(21.5),
                    },
                    SeriesSnapshot {
                        labels: labels(&[("room", "x")]),
                        value: Value::Gauge(-0.25),
                    },
                ],
            ),
        ],
        meta: MetaSnapshot {
            arenas_created: 2,
            arenas_live: 1,
            registration_errors: 0,
            series: 6,
            series_limited: 0,
            series_overflow: vec![("requests_total".into(), 4)],
            histogram_invalid: vec![],
            sampling: FlushStats {
                flushes: 5,
                records_flushed: 28,
                drains: 6,
                rings: 1,
                last_duration_seconds: 0.001,
                ring_utilization_max: 0.5,
                ring_utilization_mean: 0.25,
                overhead_ns_per_call: 3.5,
                cpu_seconds: 0.25,
                ns_per_record: 12.5,
                ..FlushStats::default()
            },
        },
    }
}

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1000)
}

fn user_families() -> Vec<Family> {
    model::build(snapshot(), start())
        .into_iter()
        .filter(|f| !f.name.starts_with(crate::names::RESERVED_PREFIX))
        .collect()
}

const TEXT_GOLDEN: &str = r#"# HELP jobs_total counter jobs
# TYPE jobs_total counter
jobs_total 3
# HELP latency_seconds histogram latency_seconds
# TYPE latency_seconds histogram
latency_seconds_bucket{route="/",le="0.25"} 1
latency_seconds_bucket{route="/",le="1.0"} 2
latency_seconds_bucket{route="/",le="+Inf"} 3
latency_seconds_sum{route="/"} 2.6
latency_seconds_count{route="/"} 3
# HELP msg_bytes sampled metric msg_bytes (quantiles estimated from sampled events; _count exact; _sum exact for recorded values, a Horvitz-Thompson estimate for sampled timers)
# TYPE msg_bytes summary
msg_bytes{quantile="0.5"} 2.0
msg_bytes_sum 5000.0
msg_bytes_count 100
# HELP msg_bytes_quantile_std_error sampled metric msg_bytes (standard error of each estimated quantile: its 95% rank interval's width / 3.92)
# TYPE msg_bytes_quantile_std_error gauge
msg_bytes_quantile_std_error{for_quantile="0.5"} 1.0
# HELP msg_bytes_quantile_lower sampled metric msg_bytes (lower end of each estimated quantile's 95% interval: the exact binomial rank interval, widened to its buckets' edges; NaN while too few records bound it)
# TYPE msg_bytes_quantile_lower gauge
msg_bytes_quantile_lower{for_quantile="0.5"} 0.0
# HELP msg_bytes_quantile_upper sampled metric msg_bytes (upper end of each estimated quantile's 95% interval)
# TYPE msg_bytes_quantile_upper gauge
msg_bytes_quantile_upper{for_quantile="0.5"} 3.92
# HELP msg_bytes_top_keys sampled metric msg_bytes (estimated events of the heaviest keys; `key` is the key as passed, or its 64-bit hash in hex until it is named)
# TYPE msg_bytes_top_keys gauge
msg_bytes_top_keys{key="000000000000beef"} 12.0
# HELP requests_total Requests "served"\\ok\nsecond line
# TYPE requests_total counter
requests_total{method="GET",path="a\"b\\c\nd"} 7
# HELP temperature gauge temperature
# TYPE temperature gauge
temperature 21.5
temperature{room="x"} -0.25
"#;

const OPENMETRICS_GOLDEN: &str = r#"# HELP jobs counter jobs
# TYPE jobs counter
jobs_total 3
# HELP latency_seconds histogram latency_seconds
# TYPE latency_seconds histogram
# UNIT latency_seconds seconds
latency_seconds_sum{route="/"} 2.6
latency_seconds_count{route="/"} 3
latency_seconds_bucket{le="0.25",route="/"} 1
latency_seconds_bucket{le="1.0",route="/"} 2 # {key="0000000000000abc"} 0.5 1001.5
latency_seconds_bucket{le="+Inf",route="/"} 3
# HELP msg_bytes sampled metric msg_bytes (quantiles estimated from sampled events; _count exact; _sum exact for recorded values, a Horvitz-Thompson estimate for sampled timers)
# TYPE msg_bytes summary
msg_bytes{quantile="0.5"} 2.0
msg_bytes_sum 5000.0
msg_bytes_count 100
# HELP msg_bytes_quantile_std_error sampled metric msg_bytes (standard error of each estimated quantile: its 95% rank interval's width / 3.92)
# TYPE msg_bytes_quantile_std_error gauge
msg_bytes_quantile_std_error{for_quantile="0.5"} 1.0
# HELP msg_bytes_quantile_lower sampled metric msg_bytes (lower end of each estimated quantile's 95% interval: the exact binomial rank interval, widened to its buckets' edges; NaN while too few records bound it)
# TYPE msg_bytes_quantile_lower gauge
msg_bytes_quantile_lower{for_quantile="0.5"} 0.0
# HELP msg_bytes_quantile_upper sampled metric msg_bytes (upper end of each estimated quantile's 95% interval)
# TYPE msg_bytes_quantile_upper gauge
msg_bytes_quantile_upper{for_quantile="0.5"} 3.92
# HELP msg_bytes_top_keys sampled metric msg_bytes (estimated events of the heaviest keys; `key` is the key as passed, or its 64-bit hash in hex until it is named)
# TYPE msg_bytes_top_keys gauge
msg_bytes_top_keys{key="000000000000beef"} 12.0
# HELP requests Requests \"served\"\\ok\nsecond line
# TYPE requests counter
requests_total{method="GET",path="a\"b\\c\nd"} 7
# HELP temperature gauge temperature
# TYPE temperature gauge
temperature 21.5
temperature{room="x"} -0.25
# EOF
"#;

#[test]
fn text_golden() {
    let mut out = String::new();
    text::encode(&mut out, &user_families());
    assert_eq!(out, TEXT_GOLDEN);
}

#[test]
fn openmetrics_golden() {
    let mut out = String::new();
    openmetrics::encode(&mut out, &user_families());
    assert_eq!(out, OPENMETRICS_GOLDEN);
}

/// Our OpenMetrics writer (the one `render` uses) and prometheus-client's (the one
/// `EngineCollector` feeds) agree byte for byte on every family both can write, meta
/// included.
#[cfg(feature = "prometheus-client")]
#[test]
fn own_openmetrics_encoder_matches_prometheus_client() {
    use super::collector::{encode_with_prometheus_client, needs_own_encoder};
    let mut families = model::build(snapshot(), start());
    families.retain(|f| f.kind != model::Kind::Summary);
    for f in &mut families {
        for s in &mut f.series {
            if let model::Sample::Histogram { exemplars, .. } = &mut s.value {
                exemplars.clear();
            }
        }
    }
    assert!(families.iter().all(|f| !needs_own_encoder(f)));
    let mut client = String::new();
    encode_with_prometheus_client(&mut client, families.clone()).unwrap();
    let mut own = String::new();
    openmetrics::encode(&mut own, &families);
    assert_eq!(own, client);
}

/// Both renderings of the full model (meta included) parse strictly, carry the same
/// series with the same values, and HELP texts and label values round-trip.
#[test]
fn both_formats_parse_and_agree() {
    let families = model::build(snapshot(), start());
    let mut om = String::new();
    openmetrics::encode(&mut om, &families);
    let mut txt = String::new();
    text::encode(&mut txt, &families);
    let om = parse(&om, Format::OpenMetrics).unwrap();
    let txt = parse(&txt, Format::Text).unwrap();
    let samples = |fams: &[super::parse::ParsedFamily]| {
        let mut v: Vec<(String, super::parse::Labels, u64)> = fams
            .iter()
            .flat_map(|f| f.samples.iter())
            .map(|s| {
                let mut l = s.labels.clone();
                l.sort();
                (s.name.clone(), l, s.value.to_bits())
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(samples(&om), samples(&txt));
    let req = om.iter().find(|f| f.name == "requests").unwrap();
    assert_eq!(req.help, "Requests \"served\"\\ok\nsecond line");
    assert_eq!(req.samples[0].labels[1].1, "a\"b\\c\nd");
    let req = txt.iter().find(|f| f.name == "requests_total").unwrap();
    assert_eq!(req.help, "Requests \"served\"\\ok\nsecond line");
    // Meta-metrics are present with HELP text.
    for name in [
        "hotmeter_sample_rate",
        "hotmeter_dropped_records",
        "hotmeter_flush_duration_seconds",
        "hotmeter_ring_utilization",
        "hotmeter_recording_overhead_seconds",
        "hotmeter_flusher_cpu_seconds",
        "hotmeter_flusher_cpu_seconds_per_record",
    ] {
        let f = om
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert!(!f.help.is_empty(), "{name} has HELP");
    }
    // The flusher's cost in both formats, with its value (a fractional counter).
    for (fams, name) in [
        (&om, "hotmeter_flusher_cpu_seconds_total"),
        (&txt, "hotmeter_flusher_cpu_seconds_total"),
        (&om, "hotmeter_flusher_cpu_seconds_per_record"),
        (&txt, "hotmeter_flusher_cpu_seconds_per_record"),
    ] {
        let v = fams
            .iter()
            .flat_map(|f| f.samples.iter())
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name}"))
            .value;
        let want = if name.ends_with("_total") {
            0.25
        } else {
            12.5 * 1e-9
        };
        assert_eq!(v, want, "{name}");
    }
    let dropped_full = om
        .iter()
        .find(|f| f.name == "hotmeter_dropped_records")
        .unwrap()
        .samples
        .iter()
        .find(|s| s.labels.contains(&("reason".into(), "full".into())))
        .unwrap();
    assert_eq!(dropped_full.value, 2.0);
}

#[test]
fn non_finite_values_use_the_openmetrics_spelling() {
    let mut snap = snapshot();
    snap.families[4].series[0].value = Value::Gauge(f64::INFINITY);
    snap.families[4].series[1].value = Value::Gauge(f64::NAN);
    let mut om = String::new();
    openmetrics::encode(&mut om, &model::build(snap.clone(), start()));
    assert!(om.contains("\ntemperature +Inf\n"), "{om}");
    assert!(om.contains("\ntemperature{room=\"x\"} NaN\n"), "{om}");
    parse(&om, Format::OpenMetrics).unwrap();
    let mut txt = String::new();
    text::encode(&mut txt, &model::build(snap.clone(), start()));
    assert!(txt.contains("\ntemperature +Inf\n"), "{txt}");
    parse(&txt, Format::Text).unwrap();
}

#[test]
fn the_parser_rejects_what_the_formats_forbid() {
    let bad_om = [
        "# TYPE a counter\na_total 1\n",                 // no EOF
        "# TYPE a counter\na 1\n# EOF\n",                // counter without _total
        "# TYPE a gauge\na{x=\"\\q\"} 1\n# EOF\n",       // bad escape
        "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n# EOF\n", // duplicate label
        "# TYPE a gauge\na 1\na 2\n# EOF\n",             // duplicate series
        "# TYPE a gauge\nb 1\n# EOF\n",                  // sample outside family
        "# TYPE h histogram\nh_bucket{le=\"1.0\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n# EOF\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n# EOF\n",
        "# TYPE a gauge\na 1 # {k=\"v\"} 1\n# EOF\n", // exemplar on a gauge
        "# TYPE a gauge\na one\n# EOF\n",
        "# TYPE s summary\ns_sum -1.0\ns_count 1\n# EOF\n", // negative summary sum
        "# TYPE c counter\nc_total NaN\n# EOF\n",           // NaN counter
        "# TYPE c counter\nc_total 1\n# TYPE c_total gauge\nc_total 2\n# EOF\n", // clash
    ];
    for t in bad_om {
        assert!(parse(t, Format::OpenMetrics).is_err(), "accepted {t:?}");
    }
    assert!(parse("# TYPE a gauge\na 1\n# EOF\n", Format::Text).is_err());
    assert!(parse("# TYPE a gauge\na 1\n# EOF\n", Format::OpenMetrics).is_ok());
}

#[test]
fn accept_negotiation() {
    use Format::{OpenMetrics as Om, Text};
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let cases: &[(Option<&str>, Format)] = &[
        (None, Text),
        (Some(prometheus), Om),
        (Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), Text),
        (Some("application/openmetrics-text"), Om),
        (
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Om,
        ),
        (Some("application/openmetrics-text;version=0.0.1"), Text),
        (
            Some("text/plain;q=0.9,application/openmetrics-text;q=0.8"),
            Text,
        ),
        (
            Some("text/plain;q=0.8,application/openmetrics-text;q=0.9"),
            Om,
        ),
        (Some("application/openmetrics-text;q=0"), Text),
        (Some("application/json"), Text),
        (Some("*/*"), Text),
        (Some(""), Text),
        (Some(";;;,,=q"), Text),
    ];
    for &(accept, want) in cases {
        assert_eq!(Format::from_accept(accept), want, "{accept:?}");
    }
}

/// A summary whose window holds no events exposes every quantile as NaN (and NaN
/// standard errors), and a negative or NaN sum is left out (OpenMetrics forbids it; the
/// sum is optional): both renderings still parse and agree.
#[test]
fn empty_windows_and_negative_sums() {
    for sum in [-5.0, f64::NAN, 0.0] {
        let mut snap = snapshot();
        if let Value::Sampled(v) = &mut snap.families[2].series[0].value {
            v.estimate.quantiles.clear();
            v.sum = sum;
        }
        let families = model::build(snap, start());
        let mut om = String::new();
        openmetrics::encode(&mut om, &families);
        let mut txt = String::new();
        text::encode(&mut txt, &families);
        for (body, format) in [(&om, Format::OpenMetrics), (&txt, Format::Text)] {
            let fams = parse(body, format).unwrap_or_else(|e| panic!("{e}\n{body}"));
            let m = fams.iter().find(|f| f.name == "msg_bytes").unwrap();
            let quantiles: Vec<_> = m.samples.iter().filter(|s| s.name == "msg_bytes").collect();
            assert_eq!(quantiles.len(), 4, "{body}");
            assert!(quantiles.iter().all(|s| s.value.is_nan()));
            let has_sum = m.samples.iter().any(|s| s.name == "msg_bytes_sum");
            assert_eq!(has_sum, sum == 0.0, "sum {sum}: {body}");
            for name in [
                "msg_bytes_quantile_std_error",
                "msg_bytes_quantile_lower",
                "msg_bytes_quantile_upper",
            ] {
                let f = fams.iter().find(|f| f.name == name).unwrap();
                assert_eq!(f.samples.len(), 4, "{name}");
                assert!(f.samples.iter().all(|s| s.value.is_nan()), "{name}");
            }
        }
    }
}

#[test]
fn quantiles_lose_their_last_bit_noise() {
    use super::model::tidy;
    assert_eq!(tidy(5.900_000_000_000_000_8e-8), 5.9e-8);
    assert_eq!(tidy(0.001_007_615_000_000_000_1), 0.001_007_615);
    for v in [1.0, 0.1, 1e-300, f64::MAX, 0.0, 1.007_812_5] {
        assert_eq!(tidy(v), v);
    }
    assert!(tidy(f64::NAN).is_nan());
    assert_eq!(tidy(f64::INFINITY), f64::INFINITY);
}
