//! The flusher: drains every ring and the critical lane, corrects for sampling, adapts the
//! rate, and publishes an immutable report that snapshots and scrapes read.

pub(crate) mod buckets;
pub(crate) mod controller;
pub(crate) mod cpu_clock;
pub(crate) mod estimate;
pub(crate) mod flusher;

pub(crate) use crate::stats::{
    EXEMPLARS_PER_SERIES, ExemplarRecord, FlushStats, Published, Quantile, SeriesEstimate, TopKey,
};
