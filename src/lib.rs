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
//! ## Names and labels
//!
//! Names follow the Prometheus rules (`[a-zA-Z_:][a-zA-Z0-9_:]*` for metrics,
//! `[a-zA-Z_][a-zA-Z0-9_]*` for labels, `__` reserved). A macro with a bad literal name
//! fails to compile; the handle API ([`Registry::counter`] and friends) returns an
//! [`Error`] naming the rule. Each metric has a series cap (default 1000); label sets past
//! it fold into one overflow series, counted in [`MetaSnapshot::series_overflow`]. Label
//! values may hold any text; values longer than [`MAX_LABEL_VALUE_BYTES`] are truncated.
//!
//! ## Feature flags
//!
//! None yet. `--cfg loom` builds the lock-free core against `loom` for model checking.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod sync;

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
#[doc(hidden)]
pub mod macro_support;
#[cfg(not(loom))]
mod macros;
#[cfg(not(loom))]
mod metric;
#[cfg(not(loom))]
mod registry;

#[cfg(not(loom))]
#[doc(hidden)]
#[allow(dead_code)] // wired into the engine as the sampled layer lands
pub mod flush;
#[doc(hidden)]
#[allow(dead_code)]
pub mod sample;

#[cfg(not(loom))]
#[doc(hidden)]
pub use macro_support as __macro_support;

#[cfg(not(loom))]
pub use config::{Config, ConfigError};
#[cfg(not(loom))]
pub use engine::{Engine, EngineBuilder, InstallError, global_engine};
#[cfg(not(loom))]
pub use error::{Error, Result};
#[cfg(not(loom))]
pub use flush::controller::{k_to_rate, rate_to_k};
#[cfg(not(loom))]
pub use flush::{FlushStats, Published, Quantile, SeriesEstimate};
#[cfg(not(loom))]
pub use metric::{
    Counter, Gauge, Histogram, HistogramConfig, HistogramSnapshot, MetricKind, Timer,
};
#[cfg(not(loom))]
pub use registry::names::{MAX_LABEL_VALUE_BYTES, MAX_LABELS, check_label_name, check_metric_name};
#[cfg(not(loom))]
pub use registry::{
    DEFAULT_SERIES_CAP, FamilySnapshot, MetaSnapshot, OVERFLOW_LABEL, Registry, SampledValue,
    SeriesSnapshot, Snapshot, Value, global,
};
#[cfg(not(loom))]
pub use sample::key::SampleKey;
pub use sample::ring::Overflow;
#[cfg(not(loom))]
pub use sample::sampled::{Sampled, SampledTimer};
