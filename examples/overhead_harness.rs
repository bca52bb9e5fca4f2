//! What hotmeter costs a toy service loop, measured by `hotmeter::overhead` (feature
//! `bench`), with a verdict against a budget; exits 1 when over it.
//!
//! ```text
//! cargo run --release --features bench --example overhead_harness -- --budget 5%
//! ```
//!
//! The loop is `benches/overhead.rs`'s seed workload: per message, draw from a xorshift,
//! build a 64..=127-byte buffer, parse its header back, FNV-1a-hash it; one message in 64
//! opens a connection, one in about 1000 fails. Instrumented as the original system was:
//! a `sampled_timer!` around the handling, `counter!`s for messages and connections, the
//! size as a `record!` keyed by client id, a failure as `record!(critical, ..)`.
//!
//! Options:
//!
//! - `--budget 5%` (or `0.05`): the budget (default 5%);
//! - `--threads 1,2`: thread counts (default 1 and the available parallelism);
//! - `--reps 21`: pairs of repetitions per thread count; `--target-ms 50`: time per
//!   repetition;
//! - `--bare`: compare with the loop's bare twin (the same source with its instrumentation
//!   compiled out by a `const` generic) instead of the same loop with sampling off: the whole
//!   cost, exact layer included, as `benches/overhead.rs` measures it;
//! - `--slow`: a deliberately slowed instrumentation, one more `Instant::now()` per message
//!   (an exact-layer cost: only `--bare` can see it; the run-time switch only turns sampling
//!   off);
//! - `--json PATH` (default `target/overhead_harness.json`) and `--criterion-dir DIR`
//!   (default `target/criterion`): where the report goes.
//!
//! The global engine takes the `HOTMETER_*` environment (seed 1 unless `HOTMETER_SEED`).

use std::cell::RefCell;
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hotmeter::overhead::{Budget, Harness};

#[path = "../benches/common/seed.rs"]
mod seed;
use seed::MAX_LEN;

/// One thread's message stream.
struct Worker {
    rng: u64,
    buf: [u8; MAX_LEN],
}

thread_local! {
    static WORKER: RefCell<Worker> = RefCell::new(Worker::new());
}

impl Worker {
    fn new() -> Self {
        // A stream per thread, continued across repetitions.
        let id = std::thread::current().id();
        let h = format!("{id:?}")
            .bytes()
            .fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        Self {
            rng: h | 1,
            buf: [0; MAX_LEN],
        }
    }
}

/// Handles one message; `METERED` compiles the instrumentation in or out (the bare twin),
/// `SLOW` adds a clock read per message to it.
#[inline(always)]
fn handle<const METERED: bool, const SLOW: bool>(w: &mut Worker) {
    let timer = METERED.then(|| hotmeter::sampled_timer!("handle_seconds"));
    if METERED && SLOW {
        black_box(Instant::now());
    }
    // The same message step as `benches/overhead.rs` (`benches/common/seed.rs`); what it
    // found out is used by the bare twin too (black-boxed, as the bench's bare contender's).
    let m = black_box(seed::handle(&mut w.rng, &mut w.buf));
    drop(timer);
    if METERED {
        hotmeter::counter!("messages_total").inc();
        if m.new_connection {
            hotmeter::counter!("connections_total").inc();
        }
        hotmeter::record!("message_bytes", m.size as f64, key = m.client_id);
        if m.failed {
            hotmeter::record!(critical, "message_failures", 1.0, key = m.client_id);
        }
    }
}

/// `iters` messages on this thread's stream.
fn service_loop<const METERED: bool, const SLOW: bool>(iters: u64) {
    WORKER.with_borrow_mut(|w| {
        for _ in 0..iters {
            handle::<METERED, SLOW>(w);
        }
    });
}

struct Args {
    budget: Budget,
    threads: Option<Vec<usize>>,
    reps: usize,
    target: Duration,
    bare: bool,
    slow: bool,
    json: String,
    criterion_dir: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        budget: Budget::default(),
        threads: None,
        reps: 21,
        target: Duration::from_millis(50),
        bare: false,
        slow: false,
        json: "target/overhead_harness.json".into(),
        criterion_dir: "target/criterion".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--budget" => a.budget = value()?.parse().map_err(|e| format!("{e}"))?,
            "--threads" => {
                let v = value()?;
                let counts = v
                    .split(',')
                    .map(|t| t.trim().parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("--threads {v:?}: expected counts like 1,2"))?;
                a.threads = Some(counts);
            }
            "--reps" => {
                let v = value()?;
                a.reps = v
                    .parse()
                    .map_err(|_| format!("--reps {v:?}: expected a count"))?;
            }
            "--target-ms" => {
                let v = value()?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("--target-ms {v:?}: expected milliseconds"))?;
                a.target = Duration::from_millis(ms);
            }
            "--bare" => a.bare = true,
            "--slow" => a.slow = true,
            "--json" => a.json = value()?,
            "--criterion-dir" => a.criterion_dir = value()?,
            // What `cargo bench` passes to a harness = false target.
            "--bench" => {}
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("overhead_harness: {e}");
            return ExitCode::from(2);
        }
    };
    let installed = hotmeter::Engine::builder()
        .seed(1)
        .from_env()
        .map_err(|e| e.to_string())
        .and_then(|b| b.install().map_err(|e| e.to_string()));
    if let Err(e) = installed {
        eprintln!("overhead_harness: {e}");
        return ExitCode::from(2);
    }
    let mut harness = Harness::global()
        .name("overhead_harness")
        .budget(args.budget)
        .repetitions(args.reps)
        .target_time(args.target);
    if let Some(t) = args.threads {
        harness = harness.threads(t);
    }
    let report = match (args.bare, args.slow) {
        (false, false) => harness.run(service_loop::<true, false>),
        (false, true) => harness.run(service_loop::<true, true>),
        (true, false) => harness.compare(service_loop::<false, false>, service_loop::<true, false>),
        (true, true) => harness.compare(service_loop::<false, false>, service_loop::<true, true>),
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("overhead_harness: {e}");
            return ExitCode::from(2);
        }
    };
    for line in report.meta_lines() {
        println!("{line}");
    }
    for run in &report.runs {
        println!(
            "{}: {} thread{}: recording {:.1} ns/message, baseline {:.1} ns/message (medians, {} \
             messages per thread per repetition)",
            report.name,
            run.threads,
            if run.threads == 1 { "" } else { "s" },
            run.recording.median.point_estimate,
            run.baseline.median.point_estimate,
            run.iters
        );
    }
    let mut saved = std::fs::write(&args.json, report.to_json());
    if saved.is_ok() {
        saved = report.write_criterion(&args.criterion_dir);
    }
    if let Err(e) = saved {
        eprintln!("overhead_harness: cannot write the report: {e}");
    } else {
        println!(
            "report: {} and {}/{}_<T>t/",
            args.json, args.criterion_dir, report.name
        );
    }
    println!("{}", report.verdict_line());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
