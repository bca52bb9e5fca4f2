//! The one place atomics, `Arc` and thread yields come from: `loom`'s model-checked versions
//! under `cfg(loom)`, `core`/`std` otherwise (the crossbeam-utils `primitive` pattern).
//! Every lock-free module imports from here, so a loom build checks the same code that ships.

#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, fence};
#[cfg(loom)]
pub(crate) use loom::thread::yield_now;

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;

pub(crate) use core::sync::atomic::Ordering;
