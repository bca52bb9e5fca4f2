//! The crate's error type.

use core::fmt;

use crate::names::MetricKind;

/// What went wrong registering a series or building a configuration.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A metric name breaks a Prometheus naming rule (`rule` says which).
    InvalidMetricName {
        /// The offending name.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A label name breaks a Prometheus naming rule, or is reserved for the metric's kind
    /// (`le` on a histogram).
    InvalidLabelName {
        /// The offending label name.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The same label name appears twice in one label set.
    DuplicateLabel(String),
    /// More than [`MAX_LABELS`](crate::MAX_LABELS) labels on one series.
    TooManyLabels(usize),
    /// A name already registered as one kind was asked for as another.
    KindMismatch {
        /// The metric name.
        name: String,
        /// The kind it was first registered as.
        registered: MetricKind,
        /// The kind asked for now.
        requested: MetricKind,
    },
    /// A histogram name already registered with another bucket configuration.
    HistogramConfigMismatch(String),
    /// A sampled family already registered with the other sampling mode (keyed / random).
    SamplingModeMismatch(String),
    /// No metric of that name (or not of the kind the call needs).
    UnknownMetric(String),
    /// A histogram configuration that cannot be built (`reason` says why).
    InvalidHistogramConfig(String),
    /// The registry's half of the process-wide cell space is used up: the global engine's
    /// registry has 32 Mi cells of its own, every other registry shares the other 32 Mi
    /// (about 150,000 default histogram series or 32 million counter series each).
    CellSpaceExhausted,
    /// A new metric was asked for while its registry held its registry-wide cap of series
    /// ([`Registry::with_limits`](crate::Registry::with_limits), `max_series`); new label
    /// sets of registered metrics fold into their overflow series instead.
    SeriesLimit {
        /// The metric name asked for.
        name: String,
        /// The registry's cap.
        cap: usize,
    },
    /// A new family would expose a name another family already exposes (a counter `x` and
    /// a gauge `x_total`, a histogram `h` and a gauge `h_count`, ...): the exposition would
    /// be ambiguous, so the second registration is refused.
    ExpositionCollision {
        /// The metric name asked for.
        name: String,
        /// The exposed name both would use.
        exposed: String,
        /// The family already using it.
        existing: String,
    },
    /// A unit given to [`Registry::describe_with_unit`](crate::Registry::describe_with_unit)
    /// that is not a unit word, or that the metric's name does not end with (OpenMetrics'
    /// suffix rule).
    InvalidUnit {
        /// The metric name.
        name: String,
        /// The unit.
        unit: String,
        /// The rule broken.
        rule: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidMetricName { name, rule } => {
                write!(f, "invalid metric name {name:?}: {rule}")
            }
            Error::InvalidLabelName { name, rule } => {
                write!(f, "invalid label name {name:?}: {rule}")
            }
            Error::DuplicateLabel(name) => write!(f, "label {name:?} appears twice"),
            Error::TooManyLabels(n) => write!(
                f,
                "{n} labels on one series; at most {} are allowed",
                crate::names::MAX_LABELS
            ),
            Error::KindMismatch {
                name,
                registered,
                requested,
            } => write!(
                f,
                "metric {name:?} is registered as a {registered} and cannot be used as a {requested}"
            ),
            Error::HistogramConfigMismatch(name) => write!(
                f,
                "histogram {name:?} is registered with a different bucket configuration"
            ),
            Error::SamplingModeMismatch(name) => write!(
                f,
                "sampled metric {name:?} is registered with the other sampling mode (keyed / random)"
            ),
            Error::UnknownMetric(name) => write!(f, "no sampled metric named {name:?}"),
            Error::InvalidHistogramConfig(reason) => {
                write!(f, "invalid histogram configuration: {reason}")
            }
            Error::CellSpaceExhausted => write!(
                f,
                "this registry's half of the process-wide cell space ({} cells) is used up; \
                 register fewer series",
                crate::arena::MAX_CELLS / 2
            ),
            Error::SeriesLimit { name, cap } => write!(
                f,
                "metric `{name}` refused: the registry holds its cap of {cap} series (max_series)"
            ),
            Error::ExpositionCollision {
                name,
                exposed,
                existing,
            } => write!(
                f,
                "metric {name:?} would expose {exposed:?}, which metric {existing:?} already exposes"
            ),
            Error::InvalidUnit { name, unit, rule } => {
                write!(f, "unit {unit:?} of metric {name:?}: {rule}")?;
                if *rule == crate::names::UNIT_SUFFIX_RULE {
                    write!(f, " (register it as {})", name_with_unit(name, unit))?;
                }
                Ok(())
            }
        }
    }
}

/// The name OpenMetrics' suffix rule asks for: the unit before a counter's `_total`
/// (`requests_total` with unit `bytes` → `requests_bytes_total`), else at the end.
fn name_with_unit(name: &str, unit: &str) -> String {
    match name.strip_suffix("_total") {
        Some(base) => format!("{base}_{unit}_total"),
        None => format!("{name}_{unit}"),
    }
}

impl std::error::Error for Error {}

impl From<crate::arena::CellSpaceExhausted> for Error {
    fn from(_: crate::arena::CellSpaceExhausted) -> Self {
        Error::CellSpaceExhausted
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit the name does not end with: the message proposes the name the suffix rule
    /// wants, the unit before a counter's `_total`.
    #[test]
    fn a_unit_suffix_error_proposes_the_name() {
        let e = |name: &str, unit: &str| {
            Error::InvalidUnit {
                name: name.into(),
                unit: unit.into(),
                rule: crate::names::UNIT_SUFFIX_RULE,
            }
            .to_string()
        };
        let m = e("requests_total", "bytes");
        assert!(m.ends_with(" (register it as requests_bytes_total)"), "{m}");
        let m = e("latency", "seconds");
        assert!(m.ends_with(" (register it as latency_seconds)"), "{m}");
    }
}
