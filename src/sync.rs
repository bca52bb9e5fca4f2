//! The one place atomics and threads come from: `loom`'s model-checked versions under
//! `cfg(loom)`, `core`/`std` otherwise (the crossbeam-utils `primitive` pattern).
//! Every module imports from here, so a loom build checks the same code that ships.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};

pub(crate) use core::sync::atomic::Ordering;
