//! Prometheus naming rules, as `const fn`s so that a macro can reject a bad literal name at
//! compile time and the handle API can return the same rule as an `Err`.
//!
//! Rules (Prometheus data model): metric names match `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names
//! match `[a-zA-Z_][a-zA-Z0-9_]*`, and names beginning with `__` are reserved.
//!
//! With the names, the other words every layer uses about a family: its [`MetricKind`]
//! and the unit rule. Nothing here imports from the crate, so the error type and every
//! layer above can.

use core::fmt;

/// The rule a metric name breaks, or `Ok`.
pub const fn check_metric_name(name: &str) -> Result<(), &'static str> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Err("metric name must not be empty");
    }
    if b.len() >= 2 && b[0] == b'_' && b[1] == b'_' {
        return Err("metric names starting with `__` are reserved for Prometheus");
    }
    if starts_with(b, RESERVED_PREFIX.as_bytes()) {
        return Err(
            "metric names starting with `hotmeter_` are reserved for hotmeter's own metrics",
        );
    }
    if !(b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':') {
        return Err("metric name must start with [a-zA-Z_:]");
    }
    let mut i = 1;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_alphanumeric() || c == b'_' || c == b':') {
            return Err("metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*");
        }
        i += 1;
    }
    Ok(())
}

/// Metric names with this prefix are hotmeter's own (meta-metrics in the exposition).
pub const RESERVED_PREFIX: &str = "hotmeter_";

const fn starts_with(b: &[u8], prefix: &[u8]) -> bool {
    if b.len() < prefix.len() {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        if b[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The names a family of `kind` called `name` occupies in the exposition (family names and
/// sample names, in either format). Two families may not share any of them.
pub(crate) fn exposed_names(name: &str, kind: MetricKind) -> Vec<String> {
    match kind {
        // `_created` is never written, but OpenMetrics reserves it for counters, histograms
        // and summaries: another family of that name would clash in a strict parser.
        MetricKind::Counter => {
            let base = name.strip_suffix("_total").unwrap_or(name);
            vec![
                base.into(),
                format!("{base}_total"),
                format!("{base}_created"),
            ]
        }
        MetricKind::Gauge => vec![name.into()],
        MetricKind::Histogram => ["", "_bucket", "_count", "_sum", "_created"]
            .iter()
            .map(|s| format!("{name}{s}"))
            .collect(),
        MetricKind::Sampled => [
            "",
            "_quantile_std_error",
            "_quantile_lower",
            "_quantile_upper",
            "_count",
            "_sum",
            "_created",
            "_top_keys",
        ]
        .iter()
        .map(|s| format!("{name}{s}"))
        .collect(),
    }
}

/// The rule a label name breaks, or `Ok`.
pub const fn check_label_name(name: &str) -> Result<(), &'static str> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Err("label name must not be empty");
    }
    if b.len() >= 2 && b[0] == b'_' && b[1] == b'_' {
        return Err("label names starting with `__` are reserved for Prometheus");
    }
    if !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return Err("label name must start with [a-zA-Z_]");
    }
    let mut i = 1;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_alphanumeric() || c == b'_') {
            return Err("label name must match [a-zA-Z_][a-zA-Z0-9_]*");
        }
        i += 1;
    }
    Ok(())
}

/// Compile-time form of [`check_metric_name`]: a `const` evaluation of this panics, which
/// fails the build with the rule as the message.
pub const fn assert_metric_name(name: &str) {
    if let Err(rule) = check_metric_name(name) {
        panic!("{}", rule);
    }
}

/// Compile-time form of [`check_label_name`].
pub const fn assert_label_name(name: &str) {
    if let Err(rule) = check_label_name(name) {
        panic!("{}", rule);
    }
}

/// Label values longer than this many bytes are truncated (at a UTF-8 character boundary)
/// when a series is registered. Two values that agree on their first
/// `MAX_LABEL_VALUE_BYTES` bytes therefore name the same series.
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;

/// At most this many labels on one series.
pub const MAX_LABELS: usize = 32;

/// `value` cut to at most [`MAX_LABEL_VALUE_BYTES`] bytes, at a character boundary.
#[inline]
pub(crate) fn truncate_label_value(value: &str) -> &str {
    if value.len() <= MAX_LABEL_VALUE_BYTES {
        return value;
    }
    truncate_long(value)
}

#[cold]
fn truncate_long(value: &str) -> &str {
    let mut end = MAX_LABEL_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A monotonic `u64` count.
    Counter,
    /// An `f64` that goes up and down.
    Gauge,
    /// A distribution of `f64` observations in fixed log-linear buckets.
    Histogram,
    /// Sampled events: exact count and sum, estimated quantiles and per-key counts.
    Sampled,
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Sampled => "sampled metric",
        })
    }
}

/// [`Error::InvalidUnit`](crate::Error::InvalidUnit)'s rule for a name without its unit's suffix.
pub(crate) const UNIT_SUFFIX_RULE: &str = "OpenMetrics requires the name to end with `_<unit>` \
     (before `_total` for a counter), and hotmeter does not rename metrics";

/// The rule a unit for metric `name` breaks (see [`Registry::describe_with_unit`](crate::Registry::describe_with_unit)).
pub(crate) fn check_unit(name: &str, unit: &str) -> std::result::Result<(), &'static str> {
    let b = unit.as_bytes();
    if b.is_empty()
        || !b[0].is_ascii_lowercase()
        || !b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
    {
        return Err("a unit is a lower-case word matching [a-z][a-z0-9_]*, such as seconds");
    }
    let family = name.strip_suffix("_total").unwrap_or(name);
    if !family
        .strip_suffix(unit)
        .is_some_and(|rest| rest.ends_with('_') && rest.len() > 1)
    {
        return Err(UNIT_SUFFIX_RULE);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        for ok in ["a", "http_requests_total", ":colon:ok", "_x9", "A:b_C"] {
            assert_eq!(check_metric_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_metric_name(""), Err("metric name must not be empty"));
        assert_eq!(
            check_metric_name("__x"),
            Err("metric names starting with `__` are reserved for Prometheus")
        );
        assert_eq!(
            check_metric_name("9abc"),
            Err("metric name must start with [a-zA-Z_:]")
        );
        for bad in ["a-b", "a b", "a.b", "é", "a\n", "a\"b"] {
            assert_eq!(
                check_metric_name(bad),
                Err(if bad.as_bytes()[0].is_ascii_alphabetic() {
                    "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*"
                } else {
                    "metric name must start with [a-zA-Z_:]"
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn label_names() {
        for ok in ["a", "method", "_x9", "Code_2"] {
            assert_eq!(check_label_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_label_name(""), Err("label name must not be empty"));
        assert_eq!(
            check_label_name("__name__"),
            Err("label names starting with `__` are reserved for Prometheus")
        );
        assert_eq!(
            check_label_name(":a"),
            Err("label name must start with [a-zA-Z_]")
        );
        assert_eq!(
            check_label_name("9"),
            Err("label name must start with [a-zA-Z_]")
        );
        assert_eq!(
            check_label_name("a:b"),
            Err("label name must match [a-zA-Z_][a-zA-Z0-9_]*")
        );
        assert_eq!(
            check_label_name("a-b"),
            Err("label name must match [a-zA-Z_][a-zA-Z0-9_]*")
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let short = "a\"b\\c\n";
        assert_eq!(truncate_label_value(short), short);
        let long = "x".repeat(MAX_LABEL_VALUE_BYTES + 10);
        assert_eq!(truncate_label_value(&long).len(), MAX_LABEL_VALUE_BYTES);
        // 'é' is two bytes: an odd cap position falls inside one and must back off.
        let accents = format!("a{}", "é".repeat(MAX_LABEL_VALUE_BYTES));
        let cut = truncate_label_value(&accents);
        assert!(cut.len() <= MAX_LABEL_VALUE_BYTES && cut.len() >= MAX_LABEL_VALUE_BYTES - 1);
        assert!(accents.starts_with(cut));
    }
}
