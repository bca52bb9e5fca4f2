//! OpenMetrics 1.0 text through prometheus-client: a [`Collector`] over the exposition
//! model, encoded by prometheus-client's text encoder.
//!
//! Two kinds of family are written by [`encode_family`] here instead, in the same layout
//! prometheus-client uses (a test checks the two agree byte for byte on everything else):
//! - histograms carrying exemplars: prometheus-client 0.25 attaches exemplars only to
//!   buckets it counts itself (`Exemplar` has no public constructor), while ours are exact
//!   per-thread counts;
//! - families holding a non-finite value: prometheus-client writes `inf` / `-inf`, which the
//!   OpenMetrics ABNF does not allow (`+Inf`, `-Inf`);
//! - summaries (sampled metrics): prometheus-client 0.25 has no summary type.

use std::fmt;
use std::time::UNIX_EPOCH;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::model::{
    Family, Kind, Labels, Num, Sample, format_float, sample_line, sum_and_count, type_line,
    write_sample, write_summary,
};

/// A prometheus-client [`Collector`] over a fixed list of families.
#[derive(Debug)]
pub(crate) struct Families(pub(crate) Vec<Family>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        for f in &self.0 {
            encode_with_client(&mut encoder, f)?;
        }
        Ok(())
    }
}

/// Whether `f` must be written by [`encode_family`] rather than prometheus-client.
pub(crate) fn needs_own_encoder(f: &Family) -> bool {
    f.series.iter().any(|s| match &s.value {
        Sample::Counter(_) | Sample::FloatCounter(_) => false,
        Sample::Gauge(v) => !v.is_finite(),
        Sample::Histogram { exemplars, sum, .. } => !exemplars.is_empty() || !sum.is_finite(),
        Sample::Summary { .. } => true,
    })
}

/// OpenMetrics HELP escaping: `\` → `\\`, newline → `\n`, `"` → `\"`.
pub(crate) fn escape_help(help: &str) -> String {
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

fn metric_type(kind: Kind) -> MetricType {
    match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
        // Never reached: summaries always take `encode_family` (see `needs_own_encoder`).
        Kind::Summary => MetricType::Unknown,
    }
}

/// One series' value through a prometheus-client metric encoder.
fn encode_value(encoder: &mut MetricEncoder, value: &Sample) -> fmt::Result {
    match value {
        Sample::Counter(v) => encoder.encode_counter::<NoLabelSet, u64, u64>(v, None),
        Sample::FloatCounter(v) => encoder.encode_counter::<NoLabelSet, f64, u64>(v, None),
        Sample::Gauge(v) => encoder.encode_gauge(v),
        Sample::Histogram {
            buckets,
            count,
            sum,
            ..
        } => encoder.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None),
        Sample::Summary { .. } => Err(fmt::Error),
    }
}

fn encode_with_client(encoder: &mut DescriptorEncoder, f: &Family) -> fmt::Result {
    let help = escape_help(&f.help);
    let mut metric = encoder.encode_descriptor(&f.name, &help, None, metric_type(f.kind))?;
    for s in &f.series {
        if s.labels.is_empty() {
            // Straight on the family's encoder: `encode_family` would write `{}`.
            encode_value(&mut metric, &s.value)?;
        } else {
            encode_value(&mut metric.encode_family(&s.labels)?, &s.value)?;
        }
    }
    Ok(())
}

/// Appends the OpenMetrics rendering of `f` (no `# EOF`), in prometheus-client's layout:
/// histogram samples `_sum`, `_count`, then buckets with `le` first.
pub(crate) fn encode_family(out: &mut String, f: &Family) {
    out.push_str("# HELP ");
    out.push_str(&f.name);
    out.push(' ');
    out.push_str(&escape_help(&f.help));
    out.push('\n');
    type_line(out, &f.name, f.kind);
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
                    write_sample(out, &f.name, "_bucket", l, Num::Int(cumulative));
                    if let Some((_, e)) = exemplars.next_if(|(j, _)| *j == i) {
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
                    out.push('\n');
                }
            }
        }
    }
}

/// Appends the OpenMetrics rendering of `families`, ending with `# EOF`.
pub(crate) fn encode(out: &mut String, families: Vec<Family>) -> fmt::Result {
    let (own, client): (Vec<Family>, Vec<Family>) =
        families.into_iter().partition(needs_own_encoder);
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Families(client)));
    prometheus_client::encoding::text::encode_registry(out, &registry)?;
    for f in &own {
        encode_family(out, f);
    }
    prometheus_client::encoding::text::encode_eof(out)
}
