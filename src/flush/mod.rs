//! The flusher: drains rings, corrects for sampling, adapts the rate.

pub mod controller;
pub mod estimate;
