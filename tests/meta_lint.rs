//! Issue 9, defect 8: hotmeter's own exposition passes `promtool check metrics` (lint
//! included) in every state, i.e. with every meta-metric non-zero: rejected histogram
//! observations, macro registration errors, series overflow, dropped records of each reason
//! (one engine per overflow policy: a policy is engine-wide), critical records sent to the
//! lane and lost past its cap, series refused past the registry-wide cap, endpoint
//! responses of several codes and an evicted connection.
//!
//! Its own test binary: it installs the global engine (macro registration errors are
//! counted on the global registry only).
// The endpoint's tests: nothing to run without it.
#![cfg(feature = "http")]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::parse::parse;
use hotmeter::{Engine, EngineBuilder, Format, Overflow};

const EVENTS: u64 = 200;
const RING: usize = 8;
/// `exercise` registers 6 series, then asks for 4 more gauges: 2 fit, 2 are refused.
const MAX_SERIES: usize = 8;

/// An engine whose rings fill at once and are never drained on their own, so that every
/// push past `RING` hits the overflow policy; a lane holding 2 records.
fn builder(overflow: Overflow) -> EngineBuilder {
    Engine::builder()
        .sample_rate(1.0)
        .max_sample_rate(1.0)
        .adaptive(false)
        .wake_on_high_water(false)
        .flush_interval(Duration::from_secs(3600))
        .ring_capacity(RING)
        .critical_lane_bytes(2 * hotmeter_lane_record_bytes())
        .series_cap(2)
        .max_series(MAX_SERIES)
        .overflow(overflow)
        .seed(5)
}

/// `hotmeter::sample::lane::BYTES_PER_RECORD` is not public: the lane's documented cost of
/// one record (41 bytes) is enough to size a lane of 2.
fn hotmeter_lane_record_bytes() -> usize {
    41
}

/// Drives every meta-metric of `engine` away from zero (from a fresh thread, so the ring
/// is this engine's own and empty).
fn exercise(engine: &Engine, tag: &str) {
    let r = engine.registry();
    std::thread::scope(|s| {
        s.spawn(|| {
            // Series overflow: a cap of 2.
            for i in 0..5 {
                r.counter("requests_total", &[("i", &i.to_string())])
                    .unwrap()
                    .inc();
            }
            r.gauge("temperature_celsius", &[]).unwrap().set(1.0);
            // Rejected histogram observations.
            let h = r.histogram("latency_seconds", &[]).unwrap();
            h.record(0.5);
            h.record(-1.0);
            h.record(f64::NAN);
            // Dropped records: the ring holds RING, the rest meet the policy.
            let s = r.sampled("message_bytes", &[("tag", tag)]).unwrap();
            for i in 0..EVENTS {
                s.record(i as f64);
            }
            // Critical records past a full ring go to the lane (2 records), then are lost.
            for _ in 0..10 {
                s.record_critical(1.0);
            }
            // The registry-wide series cap: 6 series so far, room for 2 more.
            let refused = (0..4)
                .filter(|i| r.gauge(&format!("filler_{i}"), &[]).is_err())
                .count();
            assert_eq!(refused, 2);
        });
    });
}

fn promtool(text: &str) -> std::process::Output {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn value(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .unwrap_or_else(|| panic!("no line starting with {line_prefix:?} in\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn check(text: &str, what: &str) {
    // Both formats must also parse strictly.
    parse(text, Format::Text).unwrap_or_else(|e| panic!("{what}: {e:?}\n{text}"));
    let out = promtool(text);
    assert!(
        out.status.success(),
        "{what}: promtool {:?}\n{}{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_meta_metric_non_zero_passes_promtool_lint() {
    let have_promtool = common::tool_available("promtool");

    // The global engine: drop-newest, with an endpoint, and macro registration errors.
    let global = builder(Overflow::DropNewest).install().unwrap();
    exercise(global, "newest");
    hotmeter::counter!("jobs_total").inc();
    for _ in 0..3 {
        // A kind mismatch at a macro call site: counted, recorded into a discard handle.
        hotmeter::gauge!("jobs_total").set(1.0);
    }
    let addr = global
        .serve_with(
            common::local(),
            hotmeter::ServeConfig {
                max_connections: 1,
                ..hotmeter::ServeConfig::default()
            },
        )
        .unwrap();
    {
        // An idle connection holds the only slot; the scrape after it evicts it.
        let _idle = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(common::get(addr, "/metrics", &[]).status, 200);
    }
    assert_eq!(common::get(addr, "/metrics", &[]).status, 200);
    assert_eq!(common::get(addr, "/nope", &[]).status, 404);
    let post = common::exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(
        common::get(addr, "/metrics", &[("Accept-Encoding", "gzip")]).status,
        200
    );

    let oldest = builder(Overflow::DropOldest).build().unwrap();
    exercise(&oldest, "oldest");
    let block = builder(Overflow::Block {
        timeout: Duration::from_millis(1),
    })
    .build()
    .unwrap();
    exercise(&block, "block");

    for (engine, what, reason) in [
        (global, "drop-newest", "full"),
        (&oldest, "drop-oldest", "oldest"),
        (&block, "block", "timeout"),
    ] {
        // The drops were counted at push time; the flush drains what the rings and the
        // lane held (so `flushed` and the flush meta-metrics are non-zero too).
        engine.flush();
        let text = engine.render(Format::Text).unwrap();
        // Every meta-metric this engine can move is non-zero.
        let dropped = value(
            &text,
            &format!(
                "hotmeter_dropped_records_total{{metric=\"message_bytes\",reason=\"{reason}\"}}"
            ),
        );
        assert!(
            dropped >= (EVENTS as usize - RING) as f64,
            "{what}: {dropped}"
        );
        for line in [
            "hotmeter_dropped_records_total{metric=\"message_bytes\",reason=\"critical_lost\"}",
            "hotmeter_critical_to_lane_total{metric=\"message_bytes\"}",
            "hotmeter_series_overflow_total{metric=\"requests_total\"}",
            "hotmeter_sampled_events_total{metric=\"message_bytes\"}",
            "hotmeter_flushed_records_total{metric=\"message_bytes\"}",
            "hotmeter_lane_lost_total",
            "hotmeter_flushes_total",
            "hotmeter_arenas_created_total",
            "hotmeter_series_limited_total",
        ] {
            assert!(value(&text, line) > 0.0, "{what}: {line} is zero\n{text}");
        }
        assert!(
            text.lines()
                .any(|l| l.contains("metric=\"latency_seconds\"") && !l.ends_with(" 0")),
            "{what}: no rejected histogram observation counted\n{text}"
        );
        if what == "drop-newest" {
            assert!(value(&text, "hotmeter_registration_errors_total") >= 1.0);
            for code in ["200", "404", "405"] {
                let line = format!("hotmeter_http_responses_total{{code=\"{code}\"}}");
                assert!(value(&text, &line) > 0.0, "{line}\n{text}");
            }
            assert!(value(&text, "hotmeter_http_gzip_responses_total") > 0.0);
            assert!(value(&text, "hotmeter_http_evicted_connections_total") > 0.0);
        }
        parse(
            &engine.render(Format::OpenMetrics).unwrap(),
            Format::OpenMetrics,
        )
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        if have_promtool {
            check(&text, what);
        }
    }
}
