//! The classic Prometheus text format, version 0.0.4 (`text/plain; version=0.0.4`).
//!
//! prometheus-client writes OpenMetrics only, so this small encoder is ours. It renders the
//! same [`model`](super::model) as the OpenMetrics path: counters as `<name>_total` (the
//! name Prometheus stores for an OpenMetrics counter too, so a series keeps its name
//! whichever format a scrape negotiates), no `# EOF`, no exemplars, HELP escaping of `\`
//! and newline only (0.0.4 leaves `"` alone in HELP), label values escaped as in
//! OpenMetrics.

use super::model::{Family, Kind, Sample, format_float, write_labels, write_u64};

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
            escape_help(out, &f.help);
            out.push('\n');
        }
        out.push_str("# TYPE ");
        out.push_str(&name);
        out.push_str(match f.kind {
            Kind::Counter => " counter\n",
            Kind::Gauge => " gauge\n",
            Kind::Histogram => " histogram\n",
            Kind::Summary => " summary\n",
        });
        for s in &f.series {
            match &s.value {
                Sample::Counter(v) => {
                    out.push_str(&name);
                    write_labels(out, &s.labels, None);
                    out.push(' ');
                    write_u64(out, *v);
                    out.push('\n');
                }
                Sample::Gauge(v) => {
                    out.push_str(&name);
                    write_labels(out, &s.labels, None);
                    out.push(' ');
                    format_float(out, *v);
                    out.push('\n');
                }
                Sample::Summary {
                    quantiles,
                    count,
                    sum,
                } => super::model::write_summary(out, &name, &s.labels, quantiles, *count, *sum),
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
                        out.push_str(&name);
                        out.push_str("_bucket");
                        write_labels(out, &s.labels, Some(("le", &le)));
                        out.push(' ');
                        write_u64(out, cumulative);
                        out.push('\n');
                    }
                    out.push_str(&name);
                    out.push_str("_sum");
                    write_labels(out, &s.labels, None);
                    out.push(' ');
                    format_float(out, *sum);
                    out.push('\n');
                    out.push_str(&name);
                    out.push_str("_count");
                    write_labels(out, &s.labels, None);
                    out.push(' ');
                    write_u64(out, *count);
                    out.push('\n');
                }
            }
        }
    }
}

/// 0.0.4 HELP escaping: `\` → `\\`, newline → `\n`.
fn escape_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}
