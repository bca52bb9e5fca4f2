//! # hotmeter
//!
//! Metrics for hot paths: counting costs about as much as a plain `x += 1`, and what you
//! read back is exact.
//!
//! ## The tour
//!
//! ```
//! // On a hot path: macros with literal names resolve their series once per call site.
//! hotmeter::counter!("http_requests_total", "method" => "GET").inc();
//! hotmeter::gauge!("queue_depth").set(3.0);
//! hotmeter::histogram!("request_seconds").record(0.0042);
//! {
//!     let _t = hotmeter::timer!("db_query_seconds"); // records on drop
//! }
//!
//! // Reading: exact values of every series, without stopping writers.
//! let snap = hotmeter::global().snapshot();
//! assert!(snap.counter("http_requests_total", &[("method", "GET")]).unwrap() >= 1);
//! assert_eq!(snap.histogram("request_seconds", &[]).unwrap().count, 1);
//! ```
//!
//! ## What is exact
//!
//! Counters and histograms live in **per-thread arenas**: every recording thread owns a
//! block of `AtomicU64` cells that only it writes, so an increment is a relaxed load and a
//! relaxed store (no `lock`-prefixed instruction). A series' value is the sum of its cell
//! over every arena. Arenas are never freed or zeroed: a new thread adopts the arena of one
//! that exited and adds on top, so values stay exact across any thread churn and memory is
//! bounded by the peak number of live threads. Gauges are one shared atomic each (set
//! semantics cannot be split per thread).
//!
//! Histograms use fixed log-linear buckets (8 linear sub-buckets per power of two, so a
//! bucket is at most 12.5% wide); `count` and `sum` are exact, and the exported `le`
//! boundaries are bucket edges, so every exported cumulative count is exact too. Negative,
//! NaN and infinite observations are rejected and counted, never recorded.
//!
//! ## What is sampled
//!
//! Rich events go through the sampled layer ([`record!`], [`sampled_timer!`],
//! [`Registry::sampled`]): every call adds to the exact count and sum in the arena; a
//! geometric skip per thread selects about `p = 2^-k` of the calls (default 1/32) to leave a
//! 32-byte record (value, key hash, time, and the `k` it was sampled at) in the thread's
//! lock-free ring. Critical events ([`record!`]`(critical, ...)`) are never sampled out and
//! overflow into a shared lane instead of being dropped. A background flusher
//! ([`Engine`]) drains the rings, weights each record by `2^k` and publishes quantiles with
//! rank intervals, Horvitz–Thompson totals with standard errors, and top keys:
//!
//! ```
//! let engine = hotmeter::Engine::builder()
//!     .sample_rate(0.25)
//!     .max_sample_rate(0.5)
//!     .seed(7)
//!     .build()?;
//! let bytes = engine.registry().sampled("message_bytes", &[])?;
//! for i in 0..10_000u64 {
//!     bytes.record_keyed((i % 100) as f64, &(i % 7)); // key: a client id
//! }
//! engine.flush();
//! let snap = engine.registry().snapshot();
//! let v = snap.sampled("message_bytes", &[]).unwrap();
//! assert_eq!(v.count, 10_000);                       // exact
//! assert_eq!(v.pushed, v.flushed + v.dropped());     // every record accounted for
//! let p50 = &v.estimate.quantiles[0];                // estimated, with an interval
//! assert!(p50.lower <= p50.value && p50.value <= p50.upper);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Prometheus
//!
//! [`Engine::render`] writes every series in OpenMetrics 1.0 or the 0.0.4 text format
//! ([`Format::from_accept`] picks one from a request's `Accept` header), with the core's
//! dependencies alone; `Engine::serve` (feature `http`) runs a `/metrics` endpoint (gzip,
//! limits, optional bearer token) until the engine shuts down; `Engine::collector` (feature
//! `prometheus-client`) plugs hotmeter into a prometheus-client registry. See the [`export`]
//! module for how each kind is exposed.
//!
//! ```
//! let engine = hotmeter::Engine::builder().build()?;
//! engine.registry().counter("jobs_total", &[("queue", "a\"b")])?.add(3);
//! let text = engine.render(hotmeter::Format::Text)?;
//! assert!(text.contains("jobs_total{queue=\"a\\\"b\"} 3\n"));
//! # #[cfg(feature = "http")] {
//! let addr = engine.serve("127.0.0.1:0")?; // GET http://{addr}/metrics
//! assert!(addr.port() != 0);
//! # }
//! engine.shutdown(); // stops the endpoint too
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Names and labels
//!
//! Names follow the Prometheus rules (`[a-zA-Z_:][a-zA-Z0-9_:]*` for metrics,
//! `[a-zA-Z_][a-zA-Z0-9_]*` for labels, `__` reserved). A macro with a bad literal name
//! fails to compile; the handle API ([`Registry::counter`] and friends) returns an
//! [`Error`] naming the rule. Each metric has a series cap (default 1000); label sets past
//! it fold into one overflow series, counted in [`MetaSnapshot::series_overflow`]. Label
//! values may hold any text; values longer than [`MAX_LABEL_VALUE_BYTES`] are truncated.
//!
//! ## Configuration
//!
//! [`Engine::builder`] has a method per knob and [`EngineBuilder::from_env`] applies the
//! `HOTMETER_*` environment (see the README's table); [`EngineBuilder::install`] makes the
//! engine the global one the macros use. Without it, the global engine starts lazily with
//! the defaults and the environment.
//!
//! ## Layers
//!
//! Imports point down (`scripts/layers` checks it); lowest first:
//! `sync`, `pages`, `names` → `arena` (cells, chunks, cell pools) → `error`, `stats` (rates
//! as `k`, the flush report) → `sample` (records, rings, lane, pipeline) → `metric` handles →
//! `config` → `registry` → `flush` → `export` → `engine` (and [`global`]) → `macro_support`
//! and the macros, and [`Timer`] (a `timer!` records through its call site's handle) → the
//! feature layers (`metrics_recorder`, `tracing_layer`, `overhead`).
//!
//! ## Feature flags and cfgs
//!
//! The core (arenas, macros, the sampled layer, the flusher, [`Engine::render`]) needs no
//! feature and no HTTP stack; layers sit on top of it and the core never names them:
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `http` | yes | `Engine::serve` / `serve_with` / `endpoints`, `ServeConfig` and its `ServeError`, `export::http`, the `listen` and `token` knobs (`HOTMETER_LISTEN`, `HOTMETER_TOKEN`), the `hotmeter_http_*` meta-metrics; pulls in tokio, hyper, hyper-util, http-body-util, bytes, flate2 and subtle. Without it those knobs do not exist and the two variables are a [`ConfigError`] naming the feature. |
//! | `prometheus-client` | no | `EngineCollector` and `Engine::collector`; the crate itself as `hotmeter::prometheus_client`, so you can name the version the collector implements `Collector` for |
//! | `metrics` | no | `metrics_recorder`: a [`metrics`](https://docs.rs/metrics) `Recorder` over the engine, so `metrics::counter!` and friends from any crate land in hotmeter |
//! | `bench` | no | `hotmeter::overhead`: a harness that times your own hot loop with hotmeter recording and with its sampling off at run time, in interleaved repetitions at 1 and N threads, with a verdict against a budget and criterion-compatible JSON (`cargo run --release --features bench --example overhead_harness -- --budget 5%`) |
//! | `tracing` | no | `tracing_layer`: a sampling `tracing_subscriber::Layer` (exact per-level and per-target counts, per-level/per-target rates, WARN and ERROR always kept, consistent decisions per correlation id) and a non-blocking writer |
//!
//! Two `cfg`s, set through `RUSTFLAGS`:
//!
//! - `--cfg hotmeter_disabled`, the **off switch**: every macro keeps its API and its
//!   compile-time name checks but compiles to nothing (no statics, no thread-locals, no
//!   engine), and handles record nothing, so instrumented code builds as its bare twin (for
//!   measuring what hotmeter costs your code: `.ci/off_switch` shows an instrumented function
//!   disassembling to the same instructions as the bare one). A `cfg` rather than a cargo
//!   feature, because features are additive: one dependency enabling it would silence every
//!   crate in the build.
//! - `--cfg loom` builds the lock-free core (arenas and their call-site slots, ring, critical
//!   lane, and with the `metrics` feature the facade recorder's key cache) against `loom`
//!   for model checking.
#![deny(unsafe_op_in_unsafe_fn)]
// Under the off switch the record paths are compiled out, and what only they use is unused.
#![cfg_attr(hotmeter_disabled, allow(dead_code, unused_imports))]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

#[cfg(not(loom))]
mod names;
#[cfg(not(loom))]
mod pages;
mod sync;

// The test-only strict parser (`tests/common/parse.rs`) names the crate `hotmeter`, as the
// integration tests and the fuzz target see it.
#[cfg(test)]
extern crate self as hotmeter;

#[cfg(not(loom))]
mod arena;
#[cfg(loom)]
#[doc(hidden)]
pub mod arena;

#[cfg(not(loom))]
mod config;
#[cfg(not(loom))]
mod engine;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
pub mod export;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod macro_support;
#[cfg(not(loom))]
mod macros;
#[cfg(not(loom))]
mod metric;
#[cfg(all(not(loom), feature = "metrics"))]
pub mod metrics_recorder;
#[cfg(not(loom))]
mod timer;
// The facade recorder's lock-free cache alone, for its loom model.
#[cfg(all(loom, feature = "metrics"))]
#[doc(hidden)]
#[path = "metrics_recorder/cache.rs"]
pub mod facade_cache;
#[cfg(all(feature = "bench", not(loom)))]
pub mod overhead;
#[cfg(not(loom))]
mod registry;
#[cfg(not(loom))]
mod stats;
#[cfg(all(not(loom), feature = "tracing"))]
pub mod tracing_layer;

#[cfg(not(loom))]
mod flush;
#[doc(hidden)]
pub mod sample;

#[cfg(not(loom))]
#[doc(hidden)]
pub use macro_support as __macro_support;

#[cfg(all(not(loom), feature = "http"))]
pub use config::Secret;
#[cfg(not(loom))]
pub use config::{Config, ConfigError, ESSENTIAL_META_METRICS, MetaMetrics};
#[cfg(not(loom))]
pub use engine::{
    BindError, BuildError, Engine, EngineBuilder, InstallError, global, global_engine,
};
#[cfg(not(loom))]
pub use error::{Error, Result};
#[cfg(not(loom))]
pub use export::Format;
#[cfg(all(not(loom), feature = "prometheus-client"))]
pub use export::collector::EngineCollector;
#[cfg(all(not(loom), feature = "http"))]
pub use export::http::{ServeConfig, ServeError};
#[cfg(not(loom))]
pub use metric::{
    Counter, Gauge, Histogram, HistogramConfig, HistogramSnapshot, MAX_EXACT_BOUNDS, MetricKind,
};
#[cfg(not(loom))]
pub use names::{MAX_LABEL_VALUE_BYTES, MAX_LABELS, check_label_name, check_metric_name};
/// The prometheus-client crate [`EngineCollector`] implements `Collector` for, so that a
/// program can name the very version hotmeter was built with.
#[cfg(all(not(loom), feature = "prometheus-client"))]
pub use prometheus_client;
#[cfg(not(loom))]
pub use registry::{
    DEFAULT_MAX_SERIES, DEFAULT_SERIES_CAP, FamilySnapshot, MetaSnapshot, OVERFLOW_LABEL, Registry,
    SampledValue, SeriesSnapshot, Snapshot, Value,
};
#[cfg(not(loom))]
pub use sample::key::SampleKey;
pub use sample::ring::Overflow;
#[cfg(not(loom))]
pub use sample::sampled::{Sampled, SampledTimer};
#[cfg(not(loom))]
pub use stats::{ExemplarRecord, FlushStats, Published, Quantile, SeriesEstimate, TopKey};
#[cfg(not(loom))]
pub use stats::{RateError, k_to_rate, rate_to_k};
#[cfg(not(loom))]
pub use timer::Timer;
