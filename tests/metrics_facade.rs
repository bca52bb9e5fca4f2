//! The `metrics` facade recorder (issue 10, item 1): a module that knows only the `metrics`
//! crate records counters, gauges and histograms, and hotmeter's exposition shows their
//! exact values; a repeated macro call allocates nothing; refused keys are counted, never a
//! panic. Its own test binary: it installs the process's `metrics` recorder and a counting
//! allocator.
#![cfg(feature = "metrics")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Once;

use hotmeter::Format;
use hotmeter::metrics_recorder::MetricsRecorder;

/// Counts the calling thread's allocations (other threads, such as the flusher, are not
/// counted), so a test can assert that a stretch of its own code allocated nothing.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to `System` unchanged; the count is a destructor-free
// `const` thread-local (no allocation, usable inside the allocator).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// A library instrumented with the `metrics` facade only: it has never heard of hotmeter.
mod only_metrics {
    pub fn describe() {
        metrics::describe_counter!(
            "http.requests",
            metrics::Unit::Count,
            "Requests served, by route."
        );
        metrics::describe_histogram!("http.latency", metrics::Unit::Seconds, "Request latency.");
    }

    pub fn request(route: &'static str, latency: f64) {
        metrics::counter!("http.requests", "route" => route).increment(1);
        metrics::histogram!("http.latency").record(latency);
        metrics::gauge!("http.in_flight").increment(1.0);
        metrics::gauge!("http.in_flight").decrement(1.0);
    }

    pub fn hot_path() {
        metrics::counter!("x", "k" => "v").increment(1);
        metrics::gauge!("y", "k" => "v").set(2.5);
        metrics::histogram!("z", "k" => "v").record(0.042);
    }
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| hotmeter::metrics_recorder::install().expect("the first recorder"));
    // A second one is refused, not a panic.
    assert_eq!(
        hotmeter::metrics_recorder::install(),
        Err(hotmeter::metrics_recorder::AlreadyInstalled)
    );
}

fn scrape() -> String {
    hotmeter::global_engine().render(Format::Text).unwrap()
}

#[test]
fn a_metrics_only_crate_shows_exact_values_in_a_scrape() {
    install();
    only_metrics::describe();
    for (route, latency) in [("/a", 0.003), ("/a", 0.02), ("/b", 0.2), ("/a", 20.0)] {
        only_metrics::request(route, latency);
    }
    metrics::gauge!("http.in_flight").set(3.0);
    let text = scrape();
    for line in [
        "# HELP http_requests_total Requests served, by route.\n",
        "# TYPE http_requests_total counter\n",
        "http_requests_total{route=\"/a\"} 3\n",
        "http_requests_total{route=\"/b\"} 1\n",
        "# HELP http_latency Request latency.\n",
        "# TYPE http_latency histogram\n",
        // The classic Prometheus bounds, exactly as written, counted exactly.
        "http_latency_bucket{le=\"0.005\"} 1\n",
        "http_latency_bucket{le=\"0.01\"} 1\n",
        "http_latency_bucket{le=\"0.025\"} 2\n",
        "http_latency_bucket{le=\"0.25\"} 3\n",
        "http_latency_bucket{le=\"10.0\"} 3\n",
        "http_latency_bucket{le=\"+Inf\"} 4\n",
        "http_latency_sum 20.223\n",
        "http_latency_count 4\n",
        "http_in_flight 3.0\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // The OpenMetrics rendering carries the same.
    let om = hotmeter::global_engine()
        .render(Format::OpenMetrics)
        .unwrap();
    assert!(om.contains("http_requests_total{route=\"/a\"} 3\n"), "{om}");
}

#[test]
fn a_repeated_call_allocates_nothing() {
    install();
    // The first calls register the keys (and this thread's arena and shard).
    only_metrics::hot_path();
    only_metrics::hot_path();
    let before = allocations();
    for _ in 0..1000 {
        only_metrics::hot_path();
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations in 1000 repeated calls"
    );
    let snap = hotmeter::global().snapshot();
    assert_eq!(snap.counter("x", &[("k", "v")]), Some(1002));
    assert_eq!(snap.gauge("y", &[("k", "v")]), Some(2.5));
    assert_eq!(snap.histogram("z", &[("k", "v")]).unwrap().count, 1002);
}

#[test]
fn refused_keys_are_counted_not_panics() {
    install();
    let errors = || hotmeter::global().snapshot().meta.registration_errors;
    let before = errors();
    // A reserved name, and a name already registered as another kind.
    metrics::counter!("hotmeter_mine").increment(1);
    metrics::gauge!("kind_clash").set(1.0);
    metrics::counter!("kind_clash").increment(1);
    // Each refused key is counted once, then records into a no-op handle.
    metrics::counter!("hotmeter_mine").increment(1);
    assert_eq!(errors() - before, 2);
    let snap = hotmeter::global().snapshot();
    assert_eq!(snap.gauge("kind_clash", &[]), Some(1.0));
    assert!(snap.counter("hotmeter_mine", &[]).is_none());
}

#[test]
fn histograms_follow_the_rules_by_prefix() {
    let engine = hotmeter::Engine::builder().build().unwrap();
    let recorder = MetricsRecorder::builder()
        .histogram_buckets("db_", &[0.001, 0.1])
        .unwrap()
        .histogram_summary("rpc_")
        .build(&engine);
    metrics::with_local_recorder(&recorder, || {
        for v in [0.0005, 0.05, 0.5] {
            metrics::histogram!("db_seconds").record(v);
            metrics::histogram!("rpc_seconds").record(v);
        }
        metrics::counter!("dyn", "shard" => format!("{}", 7)).increment(2);
    });
    engine.flush();
    let text = engine.render(Format::Text).unwrap();
    for line in [
        "db_seconds_bucket{le=\"0.001\"} 1\n",
        "db_seconds_bucket{le=\"0.1\"} 2\n",
        "db_seconds_bucket{le=\"+Inf\"} 3\n",
        "# TYPE rpc_seconds summary\n",
        "rpc_seconds_count 3\n",
        "rpc_seconds_sum 0.5505\n",
        "dyn_total{shard=\"7\"} 2\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn units_from_the_facade_become_openmetrics_units() {
    let engine = hotmeter::Engine::builder().build().unwrap();
    let recorder = hotmeter::metrics_recorder::MetricsRecorder::builder().build(&engine);
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_histogram!("db.query_seconds", metrics::Unit::Seconds, "Query time.");
        metrics::describe_counter!("sent_bytes_total", metrics::Unit::Bytes, "Sent.");
        // No suffix: HELP only (the facade does not rename), not an error.
        metrics::describe_gauge!("queue", metrics::Unit::Count, "Queued.");
        metrics::describe_histogram!("latency", metrics::Unit::Milliseconds, "Latency.");
        metrics::histogram!("db.query_seconds").record(0.01);
        metrics::counter!("sent_bytes_total").increment(5);
        metrics::gauge!("queue").set(1.0);
        metrics::histogram!("latency").record(3.0);
    });
    let om = engine.render(hotmeter::Format::OpenMetrics).unwrap();
    for line in [
        "# HELP db_query_seconds Query time.\n# TYPE db_query_seconds histogram\n# UNIT db_query_seconds seconds\n",
        "# HELP sent_bytes Sent.\n# TYPE sent_bytes counter\n# UNIT sent_bytes bytes\n",
        "# HELP queue Queued.\n# TYPE queue gauge\nqueue 1.0\n",
        "# HELP latency Latency.\n# TYPE latency histogram\nlatency_sum",
    ] {
        assert!(om.contains(line), "{line}\n{om}");
    }
    assert_eq!(engine.registry().snapshot().meta.registration_errors, 0);
}
