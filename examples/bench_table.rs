//! Prints the README's benchmark table from criterion's saved results, so every number in
//! it comes from one command:
//!
//! ```text
//! cargo bench --bench record && cargo run --release --example bench_table
//! ```
//!
//! For each group it prints every contender's median ns per operation (per thread), its
//! ratio to the plain thread-local baseline of the same group and run, and for hotmeter rows
//! how many times faster than the fastest peer crate it is.
//!
//! The `overhead/*` groups of `cargo bench --bench overhead` get their own table: each
//! instrumented loop's median ns per message beside the bare loop of the same group and
//! run, and the overhead `(instrumented - bare) / bare` in percent.
//!
//! Results are read from `$CARGO_TARGET_DIR/criterion` (default `target/criterion`), or
//! from the directory given as the first argument.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Criterion group → `(function id, median ns)` rows.
pub type Groups = BTreeMap<String, Vec<(String, f64)>>;

/// The plain baseline row of the per-operation groups.
pub const BASELINE: &str = "plain_thread_local_add";
const PEERS: [&str; 3] = ["metrics", "prometheus", "prometheus_client"];

/// Whether a row is a peer crate's.
pub fn is_peer(id: &str) -> bool {
    PEERS
        .iter()
        .any(|p| id == *p || id.starts_with(&format!("{p}_")))
        && !id.starts_with("hotmeter")
}

fn find(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "new") && p.join("benchmark.json").exists() {
                out.push(p);
            } else {
                find(&p, out);
            }
        }
    }
}

/// Groups of `benches/overhead.rs` (`overhead/*`, `overhead_fnv/*`, `overhead_fnv1/*`): one
/// message-handling loop, bare and instrumented.
const OVERHEAD_PREFIX: &str = "overhead";
const BARE: &str = "bare";

/// An `overhead/*` group: median ns per message and the overhead over the bare loop.
fn overhead_table(out: &mut String, group: &str, rows: &[(String, f64)]) {
    let bare = rows.iter().find(|r| r.0 == BARE).map(|r| r.1);
    let _ = writeln!(out, "### `{group}`\n");
    let _ = writeln!(
        out,
        "| contender | median ns per message | + ns over bare | overhead % |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (id, ns) in rows {
        let (plus, pct) = match bare {
            Some(b) if id != BARE => (
                format!("{:+.2}", ns - b),
                format!("{:+.1}%", 100.0 * (ns - b) / b),
            ),
            _ => (String::new(), String::new()),
        };
        let _ = writeln!(out, "| {id} | {ns:.2} | {plus} | {pct} |");
    }
    if bare.is_none() {
        let _ = writeln!(
            out,
            "\n(no `{BARE}` row in this group: run the whole bench)"
        );
    }
    let _ = writeln!(out);
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Where criterion saved its results: the first argument, or `$CARGO_TARGET_DIR/criterion`.
pub fn results_dir(arg: Option<String>) -> PathBuf {
    arg.map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join("criterion")
    })
}

/// Every group's rows (median ns), sorted fastest first.
pub fn collect(root: &Path) -> Groups {
    let mut dirs = Vec::new();
    find(root, &mut dirs);
    let mut groups = Groups::new();
    for d in dirs {
        let bench = read_json(&d.join("benchmark.json"));
        let est = read_json(&d.join("estimates.json"));
        let group = bench["group_id"].as_str().unwrap_or("?").to_string();
        let id = bench["function_id"].as_str().unwrap_or("?").to_string();
        let median = est["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN);
        groups.entry(group).or_default().push((id, median));
    }
    for rows in groups.values_mut() {
        rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    }
    groups
}

/// The machine line: CPU model and core count.
pub fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores (shared, noisy)")
}

/// One markdown table per group.
pub fn markdown(groups: &Groups) -> String {
    let mut out = String::new();
    for (group, rows) in groups {
        if group
            .split_once('/')
            .is_some_and(|(g, _)| g.starts_with(OVERHEAD_PREFIX))
        {
            overhead_table(&mut out, group, rows);
            continue;
        }
        let baseline = rows.iter().find(|r| r.0 == BASELINE).map(|r| r.1);
        let best_peer = rows
            .iter()
            .filter(|r| is_peer(&r.0))
            .map(|r| r.1)
            .fold(f64::INFINITY, f64::min);
        let _ = writeln!(out, "### `{group}`\n");
        // Whole renderings take milliseconds: print those groups in ms.
        if rows.iter().all(|r| r.1 > 1e5) {
            let _ = writeln!(out, "| contender | median ms |\n|---|---:|");
            for (id, ns) in rows {
                let _ = writeln!(out, "| {id} | {:.2} |", ns / 1e6);
            }
            let _ = writeln!(out);
            continue;
        }
        let _ = writeln!(
            out,
            "| contender | median ns | × {BASELINE} | fastest peer ÷ this |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for (id, ns) in rows {
            let vs_base = baseline.map_or("".into(), |b| format!("{:.2}", ns / b));
            let vs_peer = if id.starts_with("hotmeter") && best_peer.is_finite() {
                format!("{:.1}×", best_peer / ns)
            } else {
                String::new()
            };
            let _ = writeln!(out, "| {id} | {ns:.2} | {vs_base} | {vs_peer} |");
        }
        let _ = writeln!(out);
    }
    out
}

#[allow(dead_code)] // unused where `bench_report` includes this file as a module
fn main() {
    let root = results_dir(std::env::args().nth(1));
    let groups = collect(&root);
    if groups.is_empty() {
        eprintln!(
            "no criterion results under {}; run `cargo bench --bench record` first",
            root.display()
        );
        std::process::exit(1);
    }
    println!(
        "Machine: {}. Median ns per operation per thread.\n",
        machine()
    );
    print!("{}", markdown(&groups));
}
