//! The sampled layer: compact records, per-thread rings, the critical lane.

pub mod record;
pub mod ring;
