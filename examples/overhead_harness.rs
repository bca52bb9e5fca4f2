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

const MAX_LEN: usize = 128;

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
    // xorshift64 (Marsaglia)
    let mut r = w.rng;
    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    w.rng = r;
    let size = 64 + (r & 63) as usize;
    let client = ((r >> 8) & 0xff) as u32;
    let flags = (r >> 16) as u16;
    let failed = (r >> 40).is_multiple_of(1000);
    // Build: header, then a payload.
    let buf = &mut w.buf;
    buf[0..4].copy_from_slice(&client.to_le_bytes());
    buf[4..6].copy_from_slice(&(size as u16).to_le_bytes());
    buf[6..8].copy_from_slice(&flags.to_le_bytes());
    let seed = (r >> 24) as u8;
    for (i, b) in buf[8..size].iter_mut().enumerate() {
        *b = seed.wrapping_add((i as u8).wrapping_mul(31));
    }
    // Parse the header back, then FNV-1a over the message in two interleaved lanes.
    let buf = black_box(&*buf);
    let client_id = u64::from(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]));
    let size = usize::from(u16::from_le_bytes([buf[4], buf[5]]));
    let flags = u16::from_le_bytes([buf[6], buf[7]]);
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let (mut a, mut b) = (0xcbf2_9ce4_8422_2325u64, 0x8422_2325_cbf2_9ce4u64);
    let mut pairs = buf[..size].chunks_exact(2);
    for p in &mut pairs {
        a = (a ^ u64::from(p[0])).wrapping_mul(PRIME);
        b = (b ^ u64::from(p[1])).wrapping_mul(PRIME);
    }
    if let [last] = pairs.remainder() {
        a = (a ^ u64::from(*last)).wrapping_mul(PRIME);
    }
    black_box(a ^ b.rotate_left(32));
    // What handling found out, used by the bare twin too (as `benches/overhead.rs`'s bare
    // contender black-boxes its `Message`).
    let (client_id, size, flags, failed) = black_box((client_id, size, flags, failed));
    drop(timer);
    if METERED {
        hotmeter::counter!("messages_total").inc();
        if flags & 63 == 0 {
            hotmeter::counter!("connections_total").inc();
        }
        hotmeter::record!("message_bytes", size as f64, key = client_id);
        if failed {
            hotmeter::record!(critical, "message_failures", 1.0, key = client_id);
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
