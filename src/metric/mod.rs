//! Write handles for the exact layer: [`Counter`], [`Gauge`], [`Histogram`] (and its
//! [`Timer`] guard). Handles are `Copy` and `'static`; recording never locks or allocates.

mod counter;
mod gauge;
mod histogram;

pub use counter::Counter;
pub use gauge::Gauge;
pub use histogram::{Histogram, HistogramConfig, HistogramSnapshot, MAX_EXACT_BOUNDS, Timer};
pub(crate) use histogram::{HistogramSeries, Layout};

use core::fmt;

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A monotonic `u64` count.
    Counter,
    /// An `f64` that goes up and down.
    Gauge,
    /// A distribution of `f64` observations in fixed log-linear buckets.
    Histogram,
    /// Sampled events: exact count and sum, estimated quantiles and per-key counts.
    Sampled,
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Sampled => "sampled metric",
        })
    }
}
