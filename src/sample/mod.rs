//! The sampled layer: compact records, per-thread rings, the critical lane, the samplers.

#[doc(hidden)]
pub mod announce;
#[cfg(not(loom))]
pub mod key;
#[cfg(not(loom))]
pub mod key_names;
pub mod lane;
#[cfg(not(loom))]
pub mod pipeline;
pub mod record;
pub mod ring;
#[cfg(not(loom))]
pub mod sampled;
