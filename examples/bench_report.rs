//! The benchmark report: runs every criterion suite, then writes `BENCHMARKS.md` (a table
//! per operation: median ns, ratio to the plain baseline, how many times faster than the
//! fastest peer; the overhead tables of the seed workload; the machine) and
//! `BENCHMARKS.svg` (ns per operation per library, log scale).
//!
//! ```text
//! cargo run --release --example bench_report            # runs the suites (~15 min here), writes both
//! cargo run --release --example bench_report -- --no-run  # from the results already saved
//! ```

#[path = "bench_table.rs"]
mod table;

use std::fmt::Write as _;
use std::process::Command;

use plotters::prelude::*;

/// The chart's groups (criterion group ids) and their x-axis labels.
const CHART_GROUPS: [(&str, &str); 8] = [
    ("counter/inc/1thread", "counter 1t"),
    ("counter/inc/2threads", "counter 2t"),
    ("gauge/set/1thread", "gauge 1t"),
    ("histogram/record/1thread", "histogram 1t"),
    ("histogram/record/2threads", "histogram 2t"),
    ("sampled/record/not_sampled", "record! 1t"),
    ("overhead/1t", "message 1t"),
    ("overhead/2t", "message 2t"),
];

/// Libraries in the chart: the row(s) that stand for each, best (fastest) row taken.
const LIBRARIES: [(&str, &[&str]); 5] = [
    (
        "plain baseline",
        &[
            "plain_thread_local_add",
            "bare",
            "plain_tls_decrement_and_branch",
        ],
    ),
    (
        "hotmeter",
        &["hotmeter_macro", "hotmeter", "hotmeter_record_macro"],
    ),
    ("metrics", &["metrics_handle", "metrics_macro", "metrics"]),
    ("prometheus", &["prometheus"]),
    ("prometheus-client", &["prometheus_client"]),
];

const COLORS: [RGBColor; 5] = [
    RGBColor(150, 150, 150),
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
];

fn best(rows: &[(String, f64)], ids: &[&str]) -> Option<f64> {
    rows.iter()
        .filter(|r| ids.contains(&r.0.as_str()))
        .map(|r| r.1)
        .reduce(f64::min)
}

fn chart(groups: &table::Groups, path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let present: Vec<(&str, &str)> = CHART_GROUPS
        .iter()
        .copied()
        .filter(|(g, _)| groups.contains_key(*g))
        .collect();
    let root = SVGBackend::new(path, (1100, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = present.len().max(1) as f64;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "ns per operation per thread (log scale; lower is better)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..n - 0.5, (0.1f64..2000f64).log_scale())?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(present.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                present
                    .get(i as usize)
                    .map_or(String::new(), |p| p.1.to_string())
            } else {
                String::new()
            }
        })
        .y_desc("ns")
        .draw()?;
    let width = 0.8 / LIBRARIES.len() as f64;
    for (j, (lib, ids)) in LIBRARIES.iter().enumerate() {
        let color = COLORS[j];
        let bars: Vec<_> = present
            .iter()
            .enumerate()
            .filter_map(|(i, (g, _))| {
                let ns = best(&groups[*g], ids)?;
                let x0 = i as f64 - 0.4 + j as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.1), (x0 + width * 0.9, ns)],
                    color.filled(),
                ))
            })
            .collect();
        c.draw_series(bars)?
            .label(*lib)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    c.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

fn headline(groups: &table::Groups) -> String {
    let mut out = String::from(
        "| operation | plain baseline | hotmeter | fastest peer | hotmeter × baseline | fastest peer ÷ hotmeter |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for (g, label) in CHART_GROUPS {
        let Some(rows) = groups.get(g) else { continue };
        let base = best(rows, LIBRARIES[0].1);
        let hot = best(rows, LIBRARIES[1].1);
        let peer = rows
            .iter()
            .filter(|r| table::is_peer(&r.0))
            .map(|r| r.1)
            .reduce(f64::min);
        let f = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.2}"));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", a / b),
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {label} (`{g}`) | {} | {} | {} | {} | {} |",
            f(base),
            f(hot),
            f(peer),
            ratio(hot, base),
            ratio(peer, hot)
        );
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--no-run") {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "bench", "--bench", "record", "--bench", "sampled", "--bench", "export", "--bench",
                "overhead",
            ])
            .status()
            .expect("run cargo bench");
        if !status.success() {
            eprintln!("cargo bench failed: {status}");
            std::process::exit(1);
        }
    }
    let root = table::results_dir(None);
    let groups = table::collect(&root);
    if groups.is_empty() {
        eprintln!("no criterion results under {}", root.display());
        std::process::exit(1);
    }
    if let Err(e) = chart(&groups, "BENCHMARKS.svg") {
        eprintln!("chart: {e}");
        std::process::exit(1);
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# hotmeter benchmarks\n\nWritten by `cargo run --release --example bench_report` (which runs \
         `cargo bench --bench record --bench sampled --bench export --bench overhead` first) on \
         {}, {}. Median ns per operation per thread; 2-thread rows are wall time per call per \
         thread with both threads recording at once. One run: compare rows within a group, not \
         across runs (sub-nanosecond rows move ±30% between runs on this VM).\n",
        table::machine(),
        std::process::Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    );
    let _ = writeln!(md, "![ns per operation per library](BENCHMARKS.svg)\n");
    let _ = writeln!(md, "## Headline rows\n\n{}", headline(&groups));
    let _ = writeln!(
        md,
        "`message` rows are the seed workload of `benches/overhead.rs` (ns per message, bare loop as the baseline); the fastest peer there is the cheaper of metrics-rs and prometheus-client doing the same instrumentation.\n\n## Every group\n\n{}",
        table::markdown(&groups)
    );
    std::fs::write("BENCHMARKS.md", md).expect("write BENCHMARKS.md");
    println!(
        "wrote BENCHMARKS.md and BENCHMARKS.svg ({} groups)",
        groups.len()
    );
}
