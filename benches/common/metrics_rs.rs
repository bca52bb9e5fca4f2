//! The metrics-rs side of the peer benchmarks, shared by `benches/record.rs` and
//! `benches/overhead.rs` (included with `#[path]`): the global recorder real exporters build
//! on, metrics-util's `Registry` with `AtomicStorage`.

use std::sync::{Arc, OnceLock};

use metrics::{Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};

/// metrics-util's registry, as exporters use it: a sharded map from key to atomic storage.
pub struct BenchRecorder {
    registry: &'static Registry<Key, AtomicStorage>,
}

impl Recorder for BenchRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        self.registry
            .get_or_create_counter(key, |c| metrics::Counter::from_arc(Arc::clone(c)))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        self.registry
            .get_or_create_gauge(key, |g| metrics::Gauge::from_arc(Arc::clone(g)))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        self.registry
            .get_or_create_histogram(key, |h| metrics::Histogram::from_arc(Arc::clone(h)))
    }
}

/// Installs the metrics-rs global recorder (once) and returns its registry.
pub fn metrics_registry() -> &'static Registry<Key, AtomicStorage> {
    static REGISTRY: OnceLock<&'static Registry<Key, AtomicStorage>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry: &'static _ = Box::leak(Box::new(Registry::atomic()));
        metrics::set_global_recorder(BenchRecorder { registry })
            .unwrap_or_else(|_| panic!("a metrics recorder is already installed"));
        registry
    })
}

/// Drops the raw observations metrics-rs histograms have buffered, as a scrape would.
pub fn drain_metrics_histograms() {
    metrics_registry().visit_histograms(|_, h| h.clear());
}
