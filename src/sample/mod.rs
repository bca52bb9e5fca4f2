//! The sampled layer: compact records, per-thread rings, the critical lane, the samplers.

// Public under `--cfg loom` alone, for its model (`tests/loom_announce.rs`).
#[cfg(loom)]
#[doc(hidden)]
pub mod announce;
#[cfg(not(loom))]
pub(crate) mod announce;
#[cfg(not(loom))]
pub mod key;
#[cfg(not(loom))]
pub(crate) mod key_names;
pub mod lane;
#[cfg(not(loom))]
pub(crate) mod pipeline;
pub mod record;
pub mod ring;
#[cfg(not(loom))]
pub(crate) mod sampled;
// Public under `--cfg loom` alone, for its model (`tests/loom_wake.rs`).
#[cfg(loom)]
#[doc(hidden)]
pub mod wake;
#[cfg(not(loom))]
pub(crate) mod wake;
