//! What both text formats write alike: the three escapers (label values, OpenMetrics HELP,
//! 0.0.4 HELP), floats, label sets, and the sample, `# TYPE`, summary and `_sum`/`_count`
//! lines. The encoders (`openmetrics`, `text`) only choose which to write, and in what order.

use std::fmt::Write as _;

use super::model::Kind;

/// A float as both formats write it (and as `le` / `quantile` label values): `NaN`,
/// `+Inf`, `-Inf`, or the shortest representation that round-trips (`1.0`, `0.001`, `1e-7`).
pub(crate) fn format_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        out.push_str(dtoa::Buffer::new().format_finite(v));
    }
}

/// A label set as written: an optional label before the series' labels (OpenMetrics'
/// `le`, where prometheus-client puts it), the series' labels, an optional one after.
#[derive(Clone, Copy)]
pub(crate) struct Labels<'a> {
    /// Written first.
    pub(crate) before: Option<(&'a str, &'a str)>,
    /// The series' own labels.
    pub(crate) series: &'a [(String, String)],
    /// Written last.
    pub(crate) after: Option<(&'a str, &'a str)>,
}

impl<'a> Labels<'a> {
    /// Just the series' labels.
    pub(crate) fn of(series: &'a [(String, String)]) -> Self {
        Self {
            before: None,
            series,
            after: None,
        }
    }

    /// Writes `{a="x",b="y"}` with escaped values, or nothing for an empty set.
    pub(crate) fn write(&self, out: &mut String) {
        let all = self
            .before
            .into_iter()
            .chain(self.series.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .chain(self.after);
        let mut first = true;
        for (k, v) in all {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape_label_value(out, v);
            out.push('"');
        }
        if !first {
            out.push('}');
        }
    }
}

/// A sample value as written: an integer, or a float in [`format_float`]'s spelling.
#[derive(Clone, Copy)]
pub(crate) enum Num {
    /// A count.
    Int(u64),
    /// Anything else.
    Float(f64),
}

/// Appends `<name><suffix><labels> <value>` with no newline (an exemplar may follow).
pub(crate) fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: Labels<'_>,
    value: Num,
) {
    out.push_str(name);
    out.push_str(suffix);
    labels.write(out);
    out.push(' ');
    match value {
        Num::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Num::Float(v) => format_float(out, v),
    }
}

/// [`write_sample`] and a newline.
pub(crate) fn sample_line(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: Labels<'_>,
    value: Num,
) {
    write_sample(out, name, suffix, labels, value);
    out.push('\n');
}

/// `# TYPE <name> <kind>` and a newline.
pub(crate) fn type_line(out: &mut String, name: &str, kind: Kind) {
    out.push_str("# TYPE ");
    out.push_str(name);
    out.push_str(match kind {
        Kind::Counter => " counter\n",
        Kind::Gauge => " gauge\n",
        Kind::Histogram => " histogram\n",
        Kind::Summary => " summary\n",
    });
}

/// The `_sum` (when given) and `_count` lines of a histogram or summary.
pub(crate) fn sum_and_count(
    out: &mut String,
    name: &str,
    labels: &[(String, String)],
    sum: Option<f64>,
    count: u64,
) {
    if let Some(sum) = sum {
        sample_line(out, name, "_sum", Labels::of(labels), Num::Float(sum));
    }
    sample_line(out, name, "_count", Labels::of(labels), Num::Int(count));
}

/// Label-value escaping, the same in both formats: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub(crate) fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A summary's samples, the same in both formats: quantiles, `_sum`, `_count`.
pub(crate) fn write_summary(
    out: &mut String,
    name: &str,
    labels: &[(String, String)],
    quantiles: &[(f64, f64)],
    count: u64,
    sum: f64,
) {
    let mut q = String::new();
    for &(p, v) in quantiles {
        q.clear();
        format_float(&mut q, p);
        let l = Labels {
            after: Some(("quantile", &q)),
            ..Labels::of(labels)
        };
        sample_line(out, name, "", l, Num::Float(v));
    }
    // A summary's sum must not be negative or NaN (OpenMetrics); it is optional, so a
    // metric that recorded negative values (or NaN) exposes its count and quantiles only.
    sum_and_count(out, name, labels, (sum >= 0.0).then_some(sum), count);
}

/// OpenMetrics HELP escaping: `\` → `\\`, newline → `\n`, `"` → `\"`.
pub(crate) fn escape_help_openmetrics(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// 0.0.4 HELP escaping: `\` → `\\`, newline → `\n`.
pub(crate) fn escape_help_text(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}
