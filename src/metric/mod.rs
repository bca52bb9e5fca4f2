//! Write handles for the exact layer: [`Counter`], [`Gauge`], [`Histogram`] (and its
//! [`Timer`](crate::Timer) guard). Handles are `Copy` and `'static`; recording never locks or allocates.

mod counter;
mod gauge;
mod histogram;

pub use counter::Counter;
pub use gauge::Gauge;
pub use histogram::{Histogram, HistogramConfig, HistogramSnapshot, MAX_EXACT_BOUNDS};
pub(crate) use histogram::{HistogramSeries, Layout};

pub use crate::names::MetricKind;
