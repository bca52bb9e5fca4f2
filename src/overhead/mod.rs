//! Measure what hotmeter costs **your** hot loop, with a verdict against a budget (cargo
//! feature `bench`, not default).
//!
//! [`Harness::run`] times your closure, written once, with hotmeter recording and with its
//! recording turned off at run time, in interleaved repetitions at 1 and N threads, and
//! reports the medians, a confidence interval on the overhead, the engine's own
//! meta-metrics during the run, criterion-compatible JSON and a one-line verdict:
//!
//! ```no_run
//! use hotmeter::overhead::{Budget, Harness};
//!
//! fn step(i: u64) {
//!     hotmeter::counter!("requests_total").inc();
//!     hotmeter::record!("request_bytes", (i % 512) as f64, key = i % 64);
//!     std::hint::black_box(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
//! }
//!
//! let report = Harness::global()
//!     .budget("5%".parse::<Budget>()?)
//!     .run(|iters| {
//!         for i in 0..iters {
//!             step(i)
//!         }
//!     })?;
//! println!("{}", report.verdict_line());
//! std::fs::write("target/overhead.json", report.to_json())?;
//! assert!(report.passed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What "off" means: the run-time switch, and what it cannot switch off
//!
//! The harness turns **sampling** off at run time, on the engine's cold path only, so the
//! code being measured is the very code you ship (no flag on the hot path):
//!
//! - *recording* repetitions run with the engine as configured;
//! - *off* repetitions run with sampling paused **on the harness's worker threads only**
//!   (your application's other threads keep sampling): a call whose geometric countdown
//!   runs out (or a keyed call its key selects) takes no record, reads no clock (a
//!   [`sampled_timer!`](crate::sampled_timer) stays a count) and pushes nothing, and its
//!   next 65,536 calls skip the decision altogether; after the repetition the worker
//!   re-arms its countdowns, so nothing of the pause outlives it. The flusher keeps running
//!   (it drains only critical records, which are never sampled out).
//!
//! Still recorded in both: every **exact** update (counters, gauges, histograms, the exact
//! count and sum of every sampled event, the countdown compare) and critical events. So the
//! run-time ratio is what sampling (record capture, ring pushes, clock reads, the flusher's
//! drains, which come out of your threads' CPU on a small machine) costs on top of the exact
//! layer: a lower bound on hotmeter's whole cost, not the whole cost. An exact update is a
//! load and a store, a timer two clock reads; no run-time switch can remove them without a
//! branch on the hot path, which would change what is measured.
//!
//! The stricter baseline is your code **without hotmeter at all**: build it with the
//! compile-time off switch, `RUSTFLAGS="--cfg hotmeter_disabled"`, under which every macro
//! compiles to nothing. `scripts/overhead_gate` does that for an iai-callgrind benchmark
//! (instruction counts: deterministic on a noisy CI machine). When you have a bare twin of
//! the loop in the same binary (a `const` generic `fn step<const METERED: bool>` whose
//! instrumentation sits under `if METERED`, as `examples/overhead_harness.rs` does),
//! [`Harness::compare`] times it against the instrumented one with the same statistics.
//!
//! # How it measures
//!
//! For each thread count, `T` worker threads run the closure `iters` times each, started
//! together; a repetition's time is from the first start to the last finish, per iteration
//! (the wall time per call on each thread while all `T` run at once). Repetitions come in
//! pairs, recording and off, with the order alternating pair by pair (AB BA AB ...), after
//! an untimed warm-up of each (which also picks `iters` so that one repetition takes about
//! [`Harness::target_time`] unless [`Harness::iters`] fixes it). Before each recording
//! repetition every worker restarts its sampling countdowns with a fresh gap (a geometric
//! gap is memoryless, so every call keeps its chance `p`).
//!
//! The overhead is the **median of the paired ratios** `recording / off − 1`, with the
//! **distribution-free confidence interval of a median**: `[r_(j), r_(n−j+1)]` for the
//! largest `j` with `P(B ≤ j − 1) ≤ 2.5%`, `B ~ Binomial(n, 1/2)`, which holds for any
//! continuous law of the ratios (≥ 95%; 6 pairs are the fewest that reach it, fewer give
//! `[min, max]` and say its coverage). The per-mode estimates in the JSON (mean, median,
//! standard deviation, MAD, with their intervals) are criterion's: a percentile bootstrap,
//! here with a fixed seed so a report is a function of its measurements.
//!
//! The [`Verdict`] compares that interval with the [`Budget`]: [`Verdict::Within`] when it
//! lies under the budget, [`Verdict::Over`] when it lies above, and `LikelyWithin` /
//! `LikelyOver` by the median when it straddles it, or when the interval covers less than
//! 95% (fewer than 6 pairs: see [`Verdict::of_interval`]). [`OverheadReport::passed`] accepts
//! `Within` and `LikelyWithin` at every thread count; match on [`OverheadReport::verdict`]
//! to be stricter.
//!
//! Wall-clock numbers need a quiet machine: the adaptive controller sees the run's average
//! load (half the repetitions record nothing), and another process taking a core shows up
//! as noise in the interval. For a gate on shared CI runners prefer the instruction counts
//! of `scripts/overhead_gate`; set `HOTMETER_ADAPTIVE=false` and `HOTMETER_SEED` for a run
//! that samples the same calls every time.

mod json;
mod stats;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::{Barrier, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::Engine;
use crate::sample::sampled::{Sampled, cells, pause_this_thread, rearm_this_thread, sum_cells};

pub use stats::{MedianInterval, median, median_interval};

/// Confidence level of every interval the harness reports.
pub const CONFIDENCE_LEVEL: f64 = 0.95;

/// How much slower the recording run may be than the baseline, as a fraction (`0.05` for
/// 5%). Parse one from `"5%"` or `"0.05"` (a bare number is a fraction, as in
/// `scripts/overhead_gate`).
///
/// ```
/// use hotmeter::overhead::Budget;
/// assert_eq!("5%".parse::<Budget>()?, Budget::percent(5.0)?);
/// assert_eq!("0.05".parse::<Budget>()?.as_fraction(), 0.05);
/// assert!("0%".parse::<Budget>().is_err());
/// # Ok::<(), hotmeter::overhead::OverheadError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Budget(f64);

impl Budget {
    /// A budget of `percent` percent.
    ///
    /// # Errors
    /// [`OverheadError::InvalidBudget`] unless `percent` is finite and above 0.
    pub fn percent(percent: f64) -> Result<Self, OverheadError> {
        Self::fraction(percent / 100.0).map_err(|_| OverheadError::InvalidBudget {
            input: format!("{percent}%"),
        })
    }

    /// A budget of `fraction` (0.05 for 5%).
    ///
    /// # Errors
    /// [`OverheadError::InvalidBudget`] unless `fraction` is finite and above 0.
    pub fn fraction(fraction: f64) -> Result<Self, OverheadError> {
        if fraction.is_finite() && fraction > 0.0 {
            Ok(Self(fraction))
        } else {
            Err(OverheadError::InvalidBudget {
                input: fraction.to_string(),
            })
        }
    }

    /// The budget as a fraction.
    pub fn as_fraction(self) -> f64 {
        self.0
    }
}

impl Default for Budget {
    /// 5%.
    fn default() -> Self {
        Self(0.05)
    }
}

impl FromStr for Budget {
    type Err = OverheadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let bad = || OverheadError::InvalidBudget { input: s.into() };
        match t.strip_suffix('%') {
            Some(p) => p
                .trim()
                .parse::<f64>()
                .map_err(|_| bad())
                .and_then(|p| Self::percent(p).map_err(|_| bad())),
            None => t
                .parse::<f64>()
                .map_err(|_| bad())
                .and_then(|f| Self::fraction(f).map_err(|_| bad())),
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0 * 100.0)
    }
}

/// What the harness could not do with its input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverheadError {
    /// A budget that is not a finite overhead above 0 (`input` as given).
    InvalidBudget {
        /// The text or number given.
        input: String,
    },
    /// [`Harness::repetitions`] of 0.
    ZeroRepetitions,
    /// No thread counts, or a thread count of 0 ([`Harness::threads`]).
    ZeroThreads,
    /// [`Harness::iters`] of 0.
    ZeroIterations,
    /// The engine was shut down: it samples nothing, so there is nothing to measure.
    EngineShutDown,
}

impl fmt::Display for OverheadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverheadError::InvalidBudget { input } => write!(
                f,
                "overhead budget {input:?} is not valid: expected a finite overhead above 0, \
                 as a percentage (5%) or a fraction (0.05)"
            ),
            OverheadError::ZeroRepetitions => {
                f.write_str("repetitions must be at least 1 (at least 6 for a 95% interval)")
            }
            OverheadError::ZeroThreads => {
                f.write_str("thread counts must be at least 1, and at least one must be given")
            }
            OverheadError::ZeroIterations => f.write_str("iterations must be at least 1"),
            OverheadError::EngineShutDown => {
                f.write_str("the engine was shut down: there is no recording to measure")
            }
        }
    }
}

impl std::error::Error for OverheadError {}

/// Where the overhead's interval lies against the budget (ordered from best to worst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// The whole interval is within the budget.
    Within,
    /// The median is within the budget, but the interval reaches past it.
    LikelyWithin,
    /// The median is over the budget, but the interval reaches under it.
    LikelyOver,
    /// The whole interval is over the budget.
    Over,
}

impl Verdict {
    /// The verdict for an overhead `median` with interval `[lower, upper]` (fractions).
    pub fn of(median: f64, lower: f64, upper: f64, budget: Budget) -> Self {
        let b = budget.as_fraction();
        if upper <= b {
            Verdict::Within
        } else if lower > b {
            Verdict::Over
        } else if median <= b {
            Verdict::LikelyWithin
        } else {
            Verdict::LikelyOver
        }
    }

    /// The verdict of an interval whose coverage is `confidence`: as [`Verdict::of`], but
    /// never a definite `Within` / `Over` from an interval that covers less than
    /// [`CONFIDENCE_LEVEL`] (fewer than 6 pairs: `[min, max]` of so few ratios, which for
    /// one pair is a single point): those say `LikelyWithin` / `LikelyOver`, by the median.
    pub fn of_interval(
        median: f64,
        lower: f64,
        upper: f64,
        confidence: f64,
        budget: Budget,
    ) -> Self {
        match Self::of(median, lower, upper, budget) {
            Verdict::Within if confidence < CONFIDENCE_LEVEL => Verdict::LikelyWithin,
            Verdict::Over if confidence < CONFIDENCE_LEVEL => Verdict::LikelyOver,
            v => v,
        }
    }

    /// Whether this verdict passes a gate: `Within` or `LikelyWithin`.
    pub fn passed(self) -> bool {
        matches!(self, Verdict::Within | Verdict::LikelyWithin)
    }

    /// A name for the JSON: `within`, `likely_within`, `likely_over`, `over`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Within => "within",
            Verdict::LikelyWithin => "likely_within",
            Verdict::LikelyOver => "likely_over",
            Verdict::Over => "over",
        }
    }
}

/// A confidence interval, as criterion writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfidenceInterval {
    /// Its coverage (at least [`CONFIDENCE_LEVEL`] when enough repetitions reach it).
    pub confidence_level: f64,
    /// Lower bound.
    pub lower_bound: f64,
    /// Upper bound.
    pub upper_bound: f64,
}

/// A point estimate with its interval and standard error, as criterion writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The interval.
    pub confidence_interval: ConfidenceInterval,
    /// The estimate.
    pub point_estimate: f64,
    /// Its standard error (bootstrap).
    pub standard_error: f64,
}

/// The estimates criterion writes to `new/estimates.json`, of one mode's repetitions, in
/// nanoseconds per iteration (criterion's `slope` is absent: every repetition runs the
/// same number of iterations).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimates {
    /// Mean.
    pub mean: Estimate,
    /// Median.
    pub median: Estimate,
    /// Median absolute deviation, scaled by 1.4826.
    pub median_abs_dev: Estimate,
    /// Standard deviation.
    pub std_dev: Estimate,
}

impl Estimates {
    /// Criterion's estimates of `xs` (bootstrap with a fixed seed).
    pub fn of(xs: &[f64]) -> Self {
        let est = |point: f64, stat: fn(&[f64]) -> f64| {
            let (se, lo, hi) = stats::bootstrap(xs, CONFIDENCE_LEVEL, stat);
            Estimate {
                confidence_interval: ConfidenceInterval {
                    confidence_level: CONFIDENCE_LEVEL,
                    lower_bound: lo,
                    upper_bound: hi,
                },
                point_estimate: point,
                standard_error: se,
            }
        };
        Self {
            mean: est(stats::mean(xs), stats::mean),
            median: est(median(xs), median),
            median_abs_dev: est(stats::median_abs_dev(xs), stats::median_abs_dev),
            std_dev: est(stats::std_dev(xs), stats::std_dev),
        }
    }
}

/// The overhead of paired repetitions: the median of `recording[i] / baseline[i] − 1` with
/// its distribution-free interval (see the module docs) and a bootstrap standard error.
///
/// # Panics
/// If the two slices differ in length or are empty.
pub fn paired_overhead(recording: &[f64], baseline: &[f64]) -> Estimate {
    assert_eq!(recording.len(), baseline.len(), "repetitions come in pairs");
    let over: Vec<f64> = recording
        .iter()
        .zip(baseline)
        .map(|(r, b)| r / b - 1.0)
        .collect();
    let ci = median_interval(&over, CONFIDENCE_LEVEL).expect("at least one pair");
    let (se, _, _) = stats::bootstrap(&over, CONFIDENCE_LEVEL, median);
    Estimate {
        confidence_interval: ConfidenceInterval {
            confidence_level: ci.confidence,
            lower_bound: ci.lower,
            upper_bound: ci.upper,
        },
        point_estimate: median(&over),
        standard_error: se,
    }
}

/// What the engine itself did while one thread count was measured (warm-up excluded),
/// from its meta-metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct MetaDuring {
    /// Sampled-layer events (exact count) in the recording repetitions.
    pub events_recording: u64,
    /// Sampled-layer events in the baseline repetitions.
    pub events_baseline: u64,
    /// Sampled records pushed (events selected) in the recording repetitions.
    pub records_recording: u64,
    /// Sampled records pushed in the baseline repetitions (0 with sampling off, except
    /// critical events, which are never sampled out).
    pub records_baseline: u64,
    /// Records the engine drained over the measurement (including a final flush).
    pub records_flushed: u64,
    /// Records dropped by full rings over the measurement.
    pub records_dropped: u64,
    /// Flushes over the measurement.
    pub flushes: u64,
    /// CPU the flusher (and the final flush) spent draining and flushing over the
    /// measurement, seconds (`hotmeter_flusher_cpu_seconds_total`).
    pub flusher_cpu_seconds: f64,
    /// Wall time of the measurement, seconds.
    pub wall_seconds: f64,
}

impl MetaDuring {
    /// Fraction of the recording events that left a record.
    pub fn sampled_fraction(&self) -> f64 {
        self.records_recording as f64 / self.events_recording as f64
    }

    /// The flusher's CPU as a fraction of one core over the measurement.
    pub fn flusher_cpu_share(&self) -> f64 {
        self.flusher_cpu_seconds / self.wall_seconds
    }
}

/// What the recording run was compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The same closure with sampling paused on the workers ([`Harness::run`]).
    SamplingOff,
    /// A bare twin of the closure ([`Harness::compare`]).
    Bare,
}

impl Baseline {
    /// A name for the JSON: `sampling_off` or `bare`.
    pub fn as_str(self) -> &'static str {
        match self {
            Baseline::SamplingOff => "sampling_off",
            Baseline::Bare => "bare",
        }
    }
}

/// The measurement at one thread count.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ThreadRun {
    /// Threads running the closure at once.
    pub threads: usize,
    /// Iterations per thread per repetition.
    pub iters: u64,
    /// Per recording repetition, wall nanoseconds per iteration, in the order run.
    pub recording_ns: Vec<f64>,
    /// Per baseline repetition (paired with `recording_ns` by index).
    pub baseline_ns: Vec<f64>,
    /// Criterion's estimates of `recording_ns`.
    pub recording: Estimates,
    /// Criterion's estimates of `baseline_ns`.
    pub baseline: Estimates,
    /// The overhead, `recording / baseline − 1`: median of the pairs, distribution-free
    /// interval.
    pub overhead: Estimate,
    /// The overhead against the budget.
    pub verdict: Verdict,
    /// The engine's meta-metrics during the measurement.
    pub meta: MetaDuring,
}

/// Everything [`Harness::run`] measured. Assert on [`OverheadReport::passed`] (or match on
/// [`OverheadReport::verdict`]); print [`OverheadReport::verdict_line`]; save
/// [`OverheadReport::to_json`] or [`OverheadReport::write_criterion`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OverheadReport {
    /// The benchmark's name (criterion's group).
    pub name: String,
    /// The budget.
    pub budget: Budget,
    /// What the recording run was compared with.
    pub baseline: Baseline,
    /// Per thread count, in the order asked.
    pub runs: Vec<ThreadRun>,
}

impl OverheadReport {
    /// The worst verdict over the thread counts.
    pub fn verdict(&self) -> Verdict {
        self.runs
            .iter()
            .map(|r| r.verdict)
            .max()
            .unwrap_or(Verdict::Within)
    }

    /// Whether every thread count passed ([`Verdict::passed`]).
    pub fn passed(&self) -> bool {
        self.verdict().passed()
    }

    /// One line: the overhead per thread count with its interval, and the verdict, e.g.
    /// `overhead: 1 thread +1.2% [+0.4%, +2.0%], 2 threads +3.1% [+1.0%, +5.2%] (median of
    /// 21 pairs, 95% CI, against sampling off): within the 5% budget`.
    pub fn verdict_line(&self) -> String {
        let pct = |x: f64| format!("{:+.1}%", x * 100.0);
        let runs: Vec<String> = self
            .runs
            .iter()
            .map(|r| {
                let ci = r.overhead.confidence_interval;
                format!(
                    "{} thread{} {} [{}, {}]",
                    r.threads,
                    if r.threads == 1 { "" } else { "s" },
                    pct(r.overhead.point_estimate),
                    pct(ci.lower_bound),
                    pct(ci.upper_bound)
                )
            })
            .collect();
        let reps = self.runs.first().map_or(0, |r| r.recording_ns.len());
        let level = self
            .runs
            .iter()
            .map(|r| r.overhead.confidence_interval.confidence_level)
            .fold(1.0, f64::min);
        let against = match self.baseline {
            Baseline::SamplingOff => "against sampling off",
            Baseline::Bare => "against the bare loop",
        };
        let worst = self.runs.iter().max_by_key(|r| r.verdict);
        let verdict = match (self.verdict(), worst) {
            (Verdict::Within, _) | (_, None) => format!("within the {} budget", self.budget),
            (Verdict::Over, _) => format!("OVER the {} budget", self.budget),
            (v, Some(w)) => {
                let ci = w.overhead.confidence_interval;
                let (word, reach) = if v == Verdict::LikelyWithin {
                    ("within", ci.upper_bound)
                } else {
                    ("OVER", ci.lower_bound)
                };
                format!(
                    "likely {word} the {} budget (not conclusive: the {} thread interval \
                     reaches {})",
                    self.budget,
                    w.threads,
                    pct(reach)
                )
            }
        };
        format!(
            "{}: {} (median of {reps} pairs, {:.0}% CI, {against}): {verdict}",
            self.name,
            runs.join(", "),
            (level * 100.0).floor()
        )
    }

    /// The engine's meta-metrics per thread count, one line each.
    pub fn meta_lines(&self) -> Vec<String> {
        self.runs
            .iter()
            .map(|r| {
                let m = &r.meta;
                format!(
                    "{}: {} thread{}: {:.2} sampled-layer events per iteration, {} of {} \
                     recorded ({:.2}%), {} with recording off; flusher {:.3} ms CPU in {:.2} s \
                     ({:.3}% of a core), {} flushes, {} records drained, {} dropped",
                    self.name,
                    r.threads,
                    if r.threads == 1 { "" } else { "s" },
                    m.events_recording as f64
                        / (r.iters * r.threads as u64 * r.recording_ns.len() as u64) as f64,
                    m.records_recording,
                    m.events_recording,
                    m.sampled_fraction() * 100.0,
                    m.records_baseline,
                    m.flusher_cpu_seconds * 1e3,
                    m.wall_seconds,
                    m.flusher_cpu_share() * 100.0,
                    m.flushes,
                    m.records_flushed,
                    m.records_dropped
                )
            })
            .collect()
    }

    /// The whole report as JSON (see [`OverheadReport::to_json_value`]).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.to_json_value()).expect("a JSON value serializes")
    }

    /// The whole report as a JSON value: `name`, `budget`, `baseline`, `verdict`, `passed`,
    /// `confidence_level`, and per thread count in `runs`: `threads`, `iters`,
    /// `repetitions`, `recording` and `baseline` (criterion's `estimates.json` objects, ns per
    /// iteration), `overhead` (criterion's estimate object, a fraction), `verdict`,
    /// `samples` (`recording`, `baseline`: ns per iteration per repetition) and `meta`.
    pub fn to_json_value(&self) -> serde_json::Value {
        json::report(self)
    }

    /// Writes criterion's files for each thread count and mode under `dir` (e.g.
    /// `target/criterion`): `<name>_<T>t/{recording,baseline}/new/{estimates,benchmark,
    /// sample}.json`, as criterion's group `<name>/<T>t` would, plus
    /// `<name>_<T>t/overhead.json` (the overhead estimate, a fraction).
    ///
    /// # Errors
    /// Any error creating the directories or writing the files.
    pub fn write_criterion(&self, dir: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        json::write_criterion(self, dir.as_ref())
    }
}

/// Runs one closure with hotmeter recording and with its recording off, at 1 and N
/// threads, against a budget. See the module docs.
#[derive(Debug, Clone)]
pub struct Harness<'e> {
    engine: &'e Engine,
    name: String,
    budget: Budget,
    repetitions: usize,
    threads: Vec<usize>,
    iters: Option<u64>,
    target: Duration,
}

impl Harness<'static> {
    /// A harness over the global engine, the one the macros record into.
    pub fn global() -> Self {
        Harness::new(crate::global_engine())
    }
}

impl<'e> Harness<'e> {
    /// A harness over `engine` (its registry's handles are what the closure should record
    /// into), with the defaults: budget 5%, 21 pairs, threads 1 and the available
    /// parallelism, about 50 ms per repetition.
    pub fn new(engine: &'e Engine) -> Self {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut threads = vec![1, n];
        threads.dedup();
        Self {
            engine,
            name: "overhead".into(),
            budget: Budget::default(),
            repetitions: 21,
            threads,
            iters: None,
            target: Duration::from_millis(50),
        }
    }

    /// The benchmark's name (the JSON's `name`, criterion's group).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The budget the verdict compares with.
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Pairs of repetitions per thread count (at least 1; 6 or more for a 95% interval; 21
    /// by default).
    pub fn repetitions(mut self, pairs: usize) -> Self {
        self.repetitions = pairs;
        self
    }

    /// The thread counts to measure at, in order (each at least 1).
    pub fn threads(mut self, counts: impl IntoIterator<Item = usize>) -> Self {
        self.threads = counts.into_iter().collect();
        self
    }

    /// Fixes the iterations per thread per repetition (by default they are chosen by the
    /// warm-up so that a repetition takes about [`Harness::target_time`]).
    pub fn iters(mut self, iters: u64) -> Self {
        self.iters = Some(iters);
        self
    }

    /// About how long one repetition takes when the iterations are chosen by the warm-up
    /// (50 ms by default).
    pub fn target_time(mut self, target: Duration) -> Self {
        self.target = target;
        self
    }

    /// Times `f(iters)` with the engine recording and with sampling paused on its worker threads (see the
    /// module docs for what that switches off), in interleaved pairs at each thread count.
    /// `f` is your loop: it should do `iters` iterations of the code to measure.
    ///
    /// # Errors
    /// A bad setting ([`OverheadError`]), or the engine shut down.
    ///
    /// # Panics
    /// If `f` panics: the panic is raised again here once the worker threads have stopped.
    pub fn run<F>(&self, f: F) -> Result<OverheadReport, OverheadError>
    where
        F: Fn(u64) + Sync,
    {
        self.measure(&f, None)
    }

    /// Times `instrumented(iters)` with the engine recording against `bare(iters)`, a twin
    /// of it without hotmeter (see the module docs for a way to write both once), in
    /// interleaved pairs at each thread count.
    ///
    /// # Errors
    /// As [`Harness::run`].
    ///
    /// # Panics
    /// As [`Harness::run`].
    pub fn compare<B, F>(&self, bare: B, instrumented: F) -> Result<OverheadReport, OverheadError>
    where
        B: Fn(u64) + Sync,
        F: Fn(u64) + Sync,
    {
        self.measure(&instrumented, Some(&bare))
    }

    fn check(&self) -> Result<(), OverheadError> {
        if self.repetitions == 0 {
            return Err(OverheadError::ZeroRepetitions);
        }
        if self.threads.is_empty() || self.threads.contains(&0) {
            return Err(OverheadError::ZeroThreads);
        }
        if self.iters == Some(0) {
            return Err(OverheadError::ZeroIterations);
        }
        if self.engine.registry().pipeline().is_closed() {
            return Err(OverheadError::EngineShutDown);
        }
        Ok(())
    }

    fn measure(
        &self,
        f: &(dyn Fn(u64) + Sync),
        bare: Option<&(dyn Fn(u64) + Sync)>,
    ) -> Result<OverheadReport, OverheadError> {
        self.check()?;
        // One harness at a time in the process: two would pause each other's engines and
        // compete for the cores.
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        let runs = self
            .threads
            .iter()
            .map(|&t| self.measure_threads(t, f, bare))
            .collect();
        Ok(OverheadReport {
            name: self.name.clone(),
            budget: self.budget,
            baseline: if bare.is_some() {
                Baseline::Bare
            } else {
                Baseline::SamplingOff
            },
            runs,
        })
    }

    fn measure_threads(
        &self,
        threads: usize,
        f: &(dyn Fn(u64) + Sync),
        bare: Option<&(dyn Fn(u64) + Sync)>,
    ) -> ThreadRun {
        let engine = self.engine;
        let pool = Pool::new(threads);
        let mut recording_ns = Vec::with_capacity(self.repetitions);
        let mut baseline_ns = Vec::with_capacity(self.repetitions);
        let mut meta = MetaDuring::default();
        let iters = std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| pool.worker(f, bare));
            }
            let _stop = StopOnDrop(&pool);
            let rep = |iters: u64, recording: bool| {
                repetition(engine, &pool, iters, recording, bare.is_some())
            };
            let iters = self.warm_up(&rep);
            self.measure_pairs(&rep, iters, &mut recording_ns, &mut baseline_ns, &mut meta);
            iters
        });
        let overhead = paired_overhead(&recording_ns, &baseline_ns);
        let ci = overhead.confidence_interval;
        ThreadRun {
            threads,
            iters,
            recording: Estimates::of(&recording_ns),
            baseline: Estimates::of(&baseline_ns),
            verdict: Verdict::of_interval(
                overhead.point_estimate,
                ci.lower_bound,
                ci.upper_bound,
                ci.confidence_level,
                self.budget,
            ),
            overhead,
            recording_ns,
            baseline_ns,
            meta,
        }
    }

    /// The warm-up (recording first: it registers the closure's series, then one baseline
    /// repetition), choosing the iterations per repetition on the way unless they are
    /// fixed.
    fn warm_up(&self, rep: &dyn Fn(u64, bool) -> Repetition) -> u64 {
        let iters = match self.iters {
            Some(n) => {
                rep(n, true);
                n
            }
            None => {
                // Grow by 8× until a repetition takes a millisecond (or the target),
                // then scale to the target once, and warm up at that size.
                let target = self.target.as_secs_f64().max(1e-6);
                let mut n = 1u64;
                let secs = loop {
                    let secs = rep(n, true).0.as_secs_f64();
                    if secs >= target.min(1e-3) || n >= 1 << 40 {
                        break secs;
                    }
                    n *= 8;
                };
                let n = ((n as f64 * target / secs.max(1e-9)).ceil() as u64).clamp(1, 1 << 40);
                rep(n, true);
                n
            }
        };
        rep(iters, false);
        iters
    }

    /// The measurement, from a drained engine: the interleaved pairs of repetitions (their
    /// order rotating), and what the engine did meanwhile.
    fn measure_pairs(
        &self,
        rep: &dyn Fn(u64, bool) -> Repetition,
        iters: u64,
        recording_ns: &mut Vec<f64>,
        baseline_ns: &mut Vec<f64>,
        meta: &mut MetaDuring,
    ) {
        let engine = self.engine;
        engine.flush();
        let before = engine.published().stats.clone();
        let dropped_before = dropped(engine);
        let start = Instant::now();
        for pair in 0..self.repetitions {
            let order = if pair % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for recording in order {
                let (wall, events, pushed) = rep(iters, recording);
                let ns = wall.as_nanos() as f64 / iters as f64;
                if recording {
                    recording_ns.push(ns);
                    meta.events_recording += events;
                    meta.records_recording += pushed;
                } else {
                    baseline_ns.push(ns);
                    meta.events_baseline += events;
                    meta.records_baseline += pushed;
                }
            }
        }
        engine.flush();
        meta.wall_seconds = start.elapsed().as_secs_f64();
        let after = engine.published().stats.clone();
        meta.flushes = after.flushes - before.flushes;
        meta.records_flushed = after.records_flushed - before.records_flushed;
        meta.flusher_cpu_seconds = after.cpu_seconds - before.cpu_seconds;
        meta.records_dropped = dropped(engine) - dropped_before;
    }
}

/// One repetition's wall time, and the sampled events and records it made.
type Repetition = (Duration, u64, u64);

/// One repetition of `pool` over `engine` in one mode: recording, or its baseline (the
/// bare twin when there is one, else the closure with sampling paused).
fn repetition(
    engine: &Engine,
    pool: &Pool,
    iters: u64,
    recording: bool,
    has_bare: bool,
) -> Repetition {
    let series = sampled_series(engine);
    let (events, pushed) = (
        sum_cells(&series, cells::COUNT),
        sum_cells(&series, cells::PUSHED),
    );
    let wall = pool.run(Cmd {
        iters,
        recording,
        paused: !recording && !has_bare,
        series,
    });
    let series = sampled_series(engine);
    (
        wall,
        sum_cells(&series, cells::COUNT) - events,
        sum_cells(&series, cells::PUSHED) - pushed,
    )
}

/// Every sampled series of `engine`'s registry (exemplar samplers included).
fn sampled_series(engine: &Engine) -> Vec<Sampled> {
    engine
        .registry()
        .sampled_series()
        .into_iter()
        .map(|(_, _, s)| s)
        .collect()
}

/// Records dropped by full rings (every policy), ever, over `engine`'s sampled series.
fn dropped(engine: &Engine) -> u64 {
    let series = sampled_series(engine);
    [cells::DROP_FULL, cells::DROP_OLDEST, cells::DROP_TIMEOUT]
        .into_iter()
        .map(|c| sum_cells(&series, c))
        .sum()
}

/// One repetition's orders for the workers.
struct Cmd {
    iters: u64,
    /// The instrumented closure (else the bare one, when there is one).
    recording: bool,
    /// Sampling paused on the workers (an *off* repetition without a bare twin).
    paused: bool,
    /// The engine's sampled series: a worker restarts their countdowns on its thread
    /// before a recording repetition and after a paused one (so a paused repetition leaves
    /// nothing behind in the arena the thread hands on when it exits).
    series: Vec<Sampled>,
}

/// The worker threads of one thread count, driven one repetition at a time: the main
/// thread posts a [`Cmd`] and meets them at `go`; they start together (`ready`), time
/// themselves, and meet the main thread again at `done`.
struct Pool {
    go: Barrier,
    ready: Barrier,
    done: Barrier,
    /// `None`: stop.
    cmd: Mutex<Option<Cmd>>,
    /// Each worker's start and end of the repetition.
    times: Mutex<Vec<(Instant, Instant)>>,
    /// The first panic of the closure in a worker.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    stopped: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    fn new(threads: usize) -> Self {
        Self {
            go: Barrier::new(threads + 1),
            ready: Barrier::new(threads),
            done: Barrier::new(threads + 1),
            cmd: Mutex::new(None),
            times: Mutex::new(Vec::with_capacity(threads)),
            panic: Mutex::new(None),
            stopped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs one repetition: from the first worker's start to the last one's end.
    fn run(&self, cmd: Cmd) -> Duration {
        *lock(&self.cmd) = Some(cmd);
        self.go.wait();
        self.done.wait();
        let panic = lock(&self.panic).take();
        if let Some(p) = panic {
            self.stop();
            std::panic::resume_unwind(p);
        }
        let times = std::mem::take(&mut *lock(&self.times));
        let start = times.iter().map(|t| t.0).min().expect("a worker ran");
        let end = times.iter().map(|t| t.1).max().expect("a worker ran");
        end.saturating_duration_since(start)
    }

    /// Lets the workers return (once).
    fn stop(&self) {
        // Relaxed: only the main thread calls this.
        if !self
            .stopped
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            *lock(&self.cmd) = None;
            self.go.wait();
        }
    }

    fn worker(&self, f: &(dyn Fn(u64) + Sync), bare: Option<&(dyn Fn(u64) + Sync)>) {
        loop {
            self.go.wait();
            let (iters, recording, paused, series) = match &*lock(&self.cmd) {
                None => return,
                Some(c) => (c.iters, c.recording, c.paused, c.series.clone()),
            };
            if recording {
                rearm_this_thread(&series);
            }
            // Only this worker thread: the application's other threads keep sampling.
            pause_this_thread(paused);
            let body = match bare {
                Some(b) if !recording => b,
                _ => f,
            };
            self.ready.wait();
            let start = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| body(iters)));
            let end = Instant::now();
            if paused {
                pause_this_thread(false);
                rearm_this_thread(&series);
            }
            if let Err(p) = outcome {
                lock(&self.panic).get_or_insert(p);
            }
            lock(&self.times).push((start, end));
            self.done.wait();
        }
    }
}

/// Stops the pool's workers when the measurement ends, also by a panic.
struct StopOnDrop<'a>(&'a Pool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests;
