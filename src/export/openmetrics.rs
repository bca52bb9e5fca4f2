//! OpenMetrics 1.0 text: our own encoder ([`encode_family`]), in the layout
//! prometheus-client's text encoder writes (a test checks the two agree byte for byte on
//! every family both can write), so `render` needs no dependency beyond the core's.
//!
//! Under the `prometheus-client` feature, `collector::Families` is a prometheus-client
//! `Collector` over the same model (what `EngineCollector` hands to a user's registry). What
//! only our encoder can write, and why `render` does not go through prometheus-client:
//! - histograms carrying exemplars: prometheus-client (0.26) attaches exemplars only to
//!   buckets it counts itself (`Exemplar` has no public constructor), while ours are exact
//!   per-thread counts;
//! - families holding a non-finite value: prometheus-client writes `inf` / `-inf`, which the
//!   OpenMetrics ABNF does not allow (`+Inf`, `-Inf`);
//! - summaries (sampled metrics): prometheus-client (0.26) has no summary type.

use std::time::UNIX_EPOCH;

use super::model::{Exemplar, Family, Sample};
use super::write::{
    Labels, Num, escape_help_openmetrics, format_float, sample_line, sum_and_count, type_line,
    write_sample, write_summary,
};

/// Appends the OpenMetrics rendering of `f` (no `# EOF`), in prometheus-client's layout:
/// histogram samples `_sum`, `_count`, then buckets with `le` first.
pub(crate) fn encode_family(out: &mut String, f: &Family) {
    write_metadata(out, f);
    for s in &f.series {
        let labels = Labels::of(&s.labels);
        match &s.value {
            Sample::Counter(v) => sample_line(out, &f.name, "_total", labels, Num::Int(*v)),
            Sample::FloatCounter(v) => {
                sample_line(out, &f.name, "_total", labels, Num::Float(*v));
            }
            Sample::Gauge(v) => sample_line(out, &f.name, "", labels, Num::Float(*v)),
            Sample::Summary {
                quantiles,
                count,
                sum,
            } => write_summary(out, &f.name, &s.labels, quantiles, *count, *sum),
            Sample::Histogram {
                buckets,
                count,
                sum,
                exemplars,
            } => {
                sum_and_count(out, &f.name, &s.labels, Some(*sum), *count);
                write_buckets(out, &f.name, labels, buckets, exemplars);
            }
        }
    }
}

/// The family's `# HELP`, `# TYPE` and (when it has one) `# UNIT` lines.
fn write_metadata(out: &mut String, f: &Family) {
    out.push_str("# HELP ");
    out.push_str(&f.name);
    out.push(' ');
    out.push_str(&escape_help_openmetrics(&f.help));
    out.push('\n');
    type_line(out, &f.name, f.kind);
    if let Some(unit) = &f.unit {
        out.push_str("# UNIT ");
        out.push_str(&f.name);
        out.push(' ');
        out.push_str(unit);
        out.push('\n');
    }
}

/// A histogram series' cumulative `_bucket` lines, `le` first, each followed by its
/// bucket's exemplar if it has one.
fn write_buckets(
    out: &mut String,
    name: &str,
    labels: Labels<'_>,
    buckets: &[(f64, u64)],
    exemplars: &[(usize, Exemplar)],
) {
    let mut cumulative = 0;
    let mut exemplars = exemplars.iter().peekable();
    let mut le = String::new();
    for (i, &(upper, n)) in buckets.iter().enumerate() {
        cumulative += n;
        le.clear();
        format_float(&mut le, upper);
        let l = Labels {
            before: Some(("le", &le)),
            ..labels
        };
        write_sample(out, name, "_bucket", l, Num::Int(cumulative));
        if let Some((_, e)) = exemplars.next_if(|(j, _)| *j == i) {
            write_exemplar(out, e);
        }
        out.push('\n');
    }
}

/// ` # {labels} value timestamp` after a bucket's sample (`{}` for an empty label set,
/// which OpenMetrics requires; the timestamp in seconds).
fn write_exemplar(out: &mut String, e: &Exemplar) {
    out.push_str(" # ");
    Labels::of(&e.labels).write(out);
    if e.labels.is_empty() {
        out.push_str("{}");
    }
    out.push(' ');
    format_float(out, e.value);
    out.push(' ');
    let ts = e
        .timestamp
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    format_float(out, ts);
}

/// Appends the OpenMetrics rendering of `families`, ending with `# EOF`.
pub(crate) fn encode(out: &mut String, families: &[Family]) {
    for f in families {
        encode_family(out, f);
    }
    out.push_str("# EOF\n");
}
