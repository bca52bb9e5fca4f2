//! One engine's sampling pipeline: the configuration the samplers read, the rings they push
//! into (registered here for the flusher on first use per thread), the critical lane, and
//! the way to wake the flusher early.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::Instant;

use super::lane::Lane;
use super::ring::{Consumer, Overflow};
use crate::flush::Published;

/// Sampling knobs, fixed when the engine is built.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// Starting `k` (p = 2^-k).
    pub initial_k: u8,
    /// Smallest `k` the controller may use (from the highest rate).
    pub min_k: u8,
    /// Largest `k` the controller may use (from the lowest rate).
    pub max_k: u8,
    /// Whether the controller moves `k`.
    pub adaptive: bool,
    /// Records per thread ring.
    pub ring_capacity: usize,
    /// What a full ring does.
    pub overflow: Overflow,
    /// Cap of the critical lane.
    pub lane_capacity: usize,
    /// Seed of the per-thread gap generators.
    pub seed: u64,
    /// Whether a ring past 3/4 full wakes the flusher.
    pub wake_on_high_water: bool,
    /// Sliding window of the estimated quantiles.
    pub quantile_window: std::time::Duration,
}

/// The state a sampled metric family shares between its call sites and the flusher.
#[derive(Debug)]
pub struct SampledMetric {
    /// The family name.
    pub name: Box<str>,
    /// The `k` in force for new gaps; written by the flusher's controller.
    pub k: AtomicU8,
    /// Keyed (consistent) sampling on the event key instead of a random gap.
    pub keyed: bool,
    /// A histogram's exemplar sampler: the flusher keeps its keyed records as exemplars
    /// (other families' keyed records only feed their top keys).
    pub exemplars: bool,
    /// The pipeline its records go to.
    pub pipeline: Arc<Pipeline>,
}

impl SampledMetric {
    /// The current `k`.
    #[inline(always)]
    pub fn k(&self) -> u8 {
        // Relaxed: `k` is a tuning value; a sampler using the previous value for one more
        // gap is correct, because each record carries the `k` it was sampled with.
        self.k.load(Ordering::Relaxed)
    }
}

/// See the module docs.
pub struct Pipeline {
    /// Sampling knobs.
    pub config: SamplingConfig,
    /// Time origin of record timestamps.
    pub start: Instant,
    /// The coarse clock's reading at `start` (see [`Pipeline::coarse_ns`]).
    coarse_start: u64,
    /// Critical records whose ring was full.
    pub lane: Lane,
    /// Consumers of rings created since the flusher last looked.
    new_rings: Mutex<Vec<Consumer>>,
    /// Sampled metric families, for the controller.
    metrics: Mutex<Vec<&'static SampledMetric>>,
    /// The flusher thread, once started, to wake early.
    flusher: OnceLock<Thread>,
    /// Threads that created a ring here (seeds their generators).
    threads: AtomicU64,
    /// Fill level at which a producer wakes the flusher.
    pub high_water: usize,
    /// What the last flush published.
    published: Mutex<Arc<Published>>,
    /// Set when the engine shut down: threads drop their samplers for it.
    closed: AtomicBool,
    /// Set once something will drain this pipeline's rings (a flusher, or calibration).
    accepts: AtomicBool,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline with `config`.
    pub fn new(config: SamplingConfig) -> Self {
        // `usize::MAX`: never reached, so producers never wake the flusher early.
        let high_water = if config.wake_on_high_water {
            (config.ring_capacity.next_power_of_two() * 3 / 4).max(1)
        } else {
            usize::MAX
        };
        Self {
            lane: Lane::new(config.lane_capacity),
            config,
            start: Instant::now(),
            coarse_start: super::clock::coarse_ns(),
            new_rings: Mutex::new(Vec::new()),
            metrics: Mutex::new(Vec::new()),
            flusher: OnceLock::new(),
            threads: AtomicU64::new(0),
            high_water,
            published: Mutex::new(Arc::default()),
            closed: AtomicBool::new(false),
            accepts: AtomicBool::new(false),
        }
    }

    /// Nanoseconds since `start` on the coarse clock (one tick of resolution): the
    /// timestamp of a sampled record.
    #[inline]
    pub fn coarse_ns(&self) -> u64 {
        super::clock::coarse_ns().saturating_sub(self.coarse_start)
    }

    /// Hands a new ring's consumer to the flusher.
    pub fn register_ring(&self, consumer: Consumer) {
        self.new_rings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(consumer);
    }

    /// Consumers registered since the last call.
    pub fn take_new_rings(&self) -> Vec<Consumer> {
        std::mem::take(
            &mut *self
                .new_rings
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Registers a sampled family for the controller.
    pub fn register_metric(&self, metric: &'static SampledMetric) {
        self.metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(metric);
    }

    /// Every sampled family.
    pub fn metrics(&self) -> Vec<&'static SampledMetric> {
        self.metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the published report (the flusher, after each flush).
    pub(crate) fn publish(&self, report: Arc<Published>) {
        *self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = report;
    }

    /// The last published report. Holds a lock only to clone an `Arc`.
    pub fn published(&self) -> Arc<Published> {
        Arc::clone(
            &self
                .published
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Marks the pipeline closed (its engine shut down).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Whether the engine shut down.
    pub fn is_closed(&self) -> bool {
        // Relaxed: a hint for pruning thread state; a late reader only keeps a ring longer.
        self.closed.load(Ordering::Relaxed)
    }

    /// A fresh seed for a thread's gap generator.
    pub fn thread_seed(&self) -> u64 {
        let n = self.threads.fetch_add(1, Ordering::Relaxed);
        splitmix64(self.config.seed ^ splitmix64(n))
    }

    /// Records where the flusher thread is, so producers can wake it.
    pub fn set_flusher(&self, thread: Thread) {
        let _ = self.flusher.set(thread);
        self.allow_rings();
    }

    /// Lets threads create rings here: something (a flusher, `Engine::flush`) drains them.
    pub(crate) fn allow_rings(&self) {
        self.accepts.store(true, Ordering::Relaxed);
    }

    /// Whether a thread may create a ring here: drained by someone and not shut down.
    pub fn accepts_rings(&self) -> bool {
        // Relaxed: a hint; a thread that misses the change samples into the lane / drops.
        self.accepts.load(Ordering::Relaxed) && !self.is_closed()
    }

    /// Wakes the flusher early (a ring passed its high-water mark).
    #[cold]
    pub fn wake(&self) {
        if let Some(t) = self.flusher.get() {
            t.unpark();
        }
    }
}

/// SplitMix64 (Steele, Lea, Flood): decorrelates sequential seeds.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
