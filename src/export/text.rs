//! The classic Prometheus text format, version 0.0.4 (`text/plain; version=0.0.4`).
//!
//! prometheus-client writes OpenMetrics only, so this small encoder is ours. It renders the
//! same [`model`](super::model) as the OpenMetrics path: counters as `<name>_total` (the
//! name Prometheus stores for an OpenMetrics counter too, so a series keeps its name
//! whichever format a scrape negotiates), no `# EOF`, no exemplars, HELP escaping of `\`
//! and newline only (0.0.4 leaves `"` alone in HELP), label values escaped as in
//! OpenMetrics.

use super::model::{Family, Kind, Sample};
use super::write::{
    Labels, Num, escape_help_text, format_float, sample_line, sum_and_count, type_line,
    write_summary,
};

/// Appends the 0.0.4 rendering of `families` to `out`.
pub fn encode(out: &mut String, families: &[Family]) {
    for f in families {
        let name = match f.kind {
            Kind::Counter => format!("{}_total", f.name),
            _ => f.name.clone(),
        };
        if !f.help.is_empty() {
            out.push_str("# HELP ");
            out.push_str(&name);
            out.push(' ');
            escape_help_text(out, &f.help);
            out.push('\n');
        }
        type_line(out, &name, f.kind);
        for s in &f.series {
            let labels = Labels::of(&s.labels);
            match &s.value {
                Sample::Counter(v) => sample_line(out, &name, "", labels, Num::Int(*v)),
                Sample::FloatCounter(v) => sample_line(out, &name, "", labels, Num::Float(*v)),
                Sample::Gauge(v) => sample_line(out, &name, "", labels, Num::Float(*v)),
                Sample::Summary {
                    quantiles,
                    count,
                    sum,
                } => write_summary(out, &name, &s.labels, quantiles, *count, *sum),
                Sample::Histogram {
                    buckets,
                    count,
                    sum,
                    ..
                } => {
                    let mut cumulative = 0u64;
                    let mut le = String::new();
                    for &(upper, n) in buckets {
                        cumulative += n;
                        le.clear();
                        format_float(&mut le, upper);
                        let l = Labels {
                            after: Some(("le", &le)),
                            ..labels
                        };
                        sample_line(out, &name, "_bucket", l, Num::Int(cumulative));
                    }
                    sum_and_count(out, &name, &s.labels, Some(*sum), *count);
                }
            }
        }
    }
}
