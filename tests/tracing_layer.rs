//! The `tracing` layer and its non-blocking writer (feature `tracing`): exact counts,
//! WARN/ERROR never sampled, consistent keyed sampling, lossless shutdown, exact accounting
//! under overflow, directive errors.
#![cfg(feature = "tracing")]

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hotmeter::Engine;
use hotmeter::tracing_layer::{
    Clock, DirectiveErrorKind, Directives, LayerError, NonBlocking, OverflowPolicy, Repeats,
    SamplingLayer, SpanTime, WorkerGuard,
};
use tracing::{Dispatch, Level};
use tracing_subscriber::layer::SubscriberExt;

/// An in-memory sink shared with the test.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn engine() -> Arc<Engine> {
    Arc::new(Engine::builder().build().unwrap())
}

/// What [`sampling`] gives: the sink, the writer, its guard and the layer.
type Setup = (Sink, NonBlocking, WorkerGuard, SamplingLayer);

/// A layer at `rates` (the environment ignored) writing through a 65,536-line writer into a
/// fresh sink.
fn sampling(e: &Arc<Engine>, rates: &str) -> Setup {
    sampling_early(e, rates, false)
}

/// [`sampling`], with early sampling on or off.
fn sampling_early(e: &Arc<Engine>, rates: &str, early: bool) -> Setup {
    let sink = Sink::default();
    let (writer, guard) = NonBlocking::builder()
        .capacity(1 << 16)
        .build(sink.clone(), e)
        .unwrap();
    let layer = SamplingLayer::builder()
        .rates(rates)
        .read_env(false)
        .early_sampling(early)
        .writer(writer.clone())
        .build(e)
        .unwrap();
    (sink, writer, guard, layer)
}

fn counter(e: &Engine, name: &str, labels: &[(&str, &str)]) -> u64 {
    e.registry().snapshot().counter(name, labels).unwrap_or(0)
}

fn emit_every_level(n: u64) {
    for i in 0..n {
        tracing::trace!(target: "app::a", i, "t");
        tracing::debug!(target: "app::a", i, "d");
        tracing::info!(target: "app::b", i, "i");
        tracing::info!(target: "app::c", i, "i2");
        tracing::warn!(target: "app::b", i, "w");
        tracing::error!(target: "app::c", i, "e");
    }
}

/// Every event is counted exactly per level and target (each target here is one callsite
/// per level), from 2 threads, whatever the sampling keeps; kept + sampled out = seen.
#[test]
fn counts_are_exact_per_level_and_callsite_under_two_threads() {
    counts_are_exact(false);
}

/// The same with early sampling (the draw in `enabled`, before the event is built).
#[test]
fn counts_are_exact_with_early_sampling() {
    counts_are_exact(true);
}

fn counts_are_exact(early: bool) {
    let e = engine();
    let (sink, writer, guard, layer) = sampling_early(&e, "0.125,app::b=0.5", early);
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let n = 3_000u64;
    thread::scope(|s| {
        for t in 0..2 {
            let d = dispatch.clone();
            s.spawn(move || {
                // Fixed draws: each thread's generator seeded.
                hotmeter::tracing_layer::seed_this_thread(0x5eed + t);
                tracing::dispatcher::with_default(&d, || emit_every_level(n))
            });
        }
    });
    drop(guard);
    for (level, target, seen) in [
        ("TRACE", "app::a", 2 * n),
        ("DEBUG", "app::a", 2 * n),
        ("INFO", "app::b", 2 * n),
        ("INFO", "app::c", 2 * n),
        ("WARN", "app::b", 2 * n),
        ("ERROR", "app::c", 2 * n),
    ] {
        let got = counter(
            &e,
            "log_events_total",
            &[("level", level), ("target", target)],
        );
        assert_eq!(got, seen, "{level} {target}");
    }
    let mut kept_total = 0;
    for (level, seen) in [
        ("TRACE", 2 * n),
        ("DEBUG", 2 * n),
        ("INFO", 4 * n),
        ("WARN", 2 * n),
        ("ERROR", 2 * n),
    ] {
        let kept = counter(&e, "log_events_kept_total", &[("level", level)]);
        let out = counter(&e, "log_events_sampled_out_total", &[("level", level)]);
        assert_eq!(kept + out, seen, "{level}");
        kept_total += kept;
        // The share kept is the rate, whichever path decided (before the event is built,
        // or in `on_event`): within 4 binomial standard errors (false-failure probability
        // ~6e-5 per level for a fair generator; the threads' generators are seeded, so the
        // outcome is fixed). A second draw on kept events would keep p², far outside.
        let p = match level {
            "WARN" | "ERROR" => 1.0,
            "INFO" => (0.5 + 0.125) / 2.0,
            _ => 0.125,
        };
        let se = (p * (1.0 - p) / seen as f64).sqrt().max(1e-12);
        let share = kept as f64 / seen as f64;
        assert!(
            (share - p).abs() <= 4.0 * se + 1e-12,
            "{level}: kept {share}, rate {p}"
        );
    }
    // Every kept event became one written line (the queue never overflowed).
    let lines = sink.lines();
    assert_eq!(lines.len() as u64, kept_total);
    let st = writer.stats();
    assert_eq!(
        (st.accepted, st.written, st.dropped()),
        (kept_total, kept_total, 0)
    );
    // Sample rates are annotated: 0.125 for app::a, 0.5 for app::b INFO, 1 for WARN/ERROR.
    for l in &lines {
        let rate = l.rsplit_once(" sample_rate=").unwrap().1;
        let expect = if l.contains("level=WARN") || l.contains("level=ERROR") {
            "1"
        } else if l.contains("target=app::b") {
            "0.5"
        } else {
            "0.125"
        };
        assert_eq!(rate, expect, "{l}");
    }
}

/// WARN and ERROR are never sampled out, even at the smallest rate, and a directive that
/// tries to sample them is refused.
#[test]
fn warn_and_error_are_never_sampled_out() {
    let e = engine();
    let layer = SamplingLayer::builder()
        .rates("1e-15,app=1e-15")
        .read_env(false)
        .build(&e)
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let n = 2_000u64;
    thread::scope(|s| {
        for _ in 0..2 {
            let d = dispatch.clone();
            s.spawn(move || tracing::dispatcher::with_default(&d, || emit_every_level(n)));
        }
    });
    for level in ["WARN", "ERROR"] {
        assert_eq!(
            counter(&e, "log_events_sampled_out_total", &[("level", level)]),
            0
        );
        assert_eq!(
            counter(&e, "log_events_kept_total", &[("level", level)]),
            2 * n
        );
    }
    // At 2^-50 every INFO is dropped (a kept one would have probability 2.4e-11).
    assert_eq!(
        counter(&e, "log_events_kept_total", &[("level", "INFO")]),
        0
    );
    for d in ["warn=0.5", "ERROR=0.01"] {
        let err = Directives::parse(d).unwrap_err();
        assert!(
            matches!(err.kind, DirectiveErrorKind::NeverSampled(_)),
            "{d}"
        );
    }
}

/// Extracts the correlation id from a line (`request_id=` on the event, or the span's
/// `correlation_id=` appended).
fn line_id(line: &str) -> String {
    for key in [" request_id=", " correlation_id="] {
        if let Some((_, rest)) = line.split_once(key) {
            return rest.split(' ').next().unwrap().to_owned();
        }
    }
    panic!("no id in {line}");
}

/// Over 100,000 correlation ids at rate 2^-3 (and 2^-5 on a second layer): each id's
/// events are all kept or all dropped, whether the id is on the event or on an enclosing
/// span; the kept share of ids is within p ± 3 binomial standard errors; the ids kept at
/// 2^-5 are a subset of those kept at 2^-3.
#[test]
fn keyed_sampling_is_consistent_per_correlation_id() {
    let ids = 100_000u64;
    let per_id = 3;
    let mut layers = Vec::new();
    let mut sinks = Vec::new();
    let mut guards = Vec::new();
    for rate in ["info=0.125", "info=0.03125"] {
        let e = engine();
        let sink = Sink::default();
        let (w, g) = NonBlocking::builder()
            .capacity(1 << 18)
            .build(sink.clone(), &e)
            .unwrap();
        layers.push(
            SamplingLayer::builder()
                .rates(rate)
                .read_env(false)
                .writer(w)
                .build(&e)
                .unwrap(),
        );
        sinks.push(sink);
        guards.push(g);
    }
    let l2 = layers.pop().unwrap();
    let l1 = layers.pop().unwrap();
    let subscriber = tracing_subscriber::registry().with(l1).with(l2);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..ids {
            if i.is_multiple_of(2) {
                for j in 0..per_id {
                    tracing::info!(request_id = i, j, "on the event");
                }
            } else {
                let span = tracing::info_span!("req", correlation_id = %format!("r{i}"));
                let _g = span.enter();
                let inner = tracing::info_span!("inner");
                let _g2 = inner.enter();
                for j in 0..per_id {
                    tracing::info!(j, "in a span");
                }
            }
        }
    });
    drop(guards);
    let mut kept_sets = Vec::new();
    for (sink, p) in sinks.iter().zip([0.125f64, 0.03125]) {
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for l in sink.lines() {
            *per.entry(line_id(&l)).or_default() += 1;
        }
        for (id, n) in &per {
            assert_eq!(*n, per_id, "id {id}: {n} of its {per_id} events kept");
        }
        let share = per.len() as f64 / ids as f64;
        let se = (p * (1.0 - p) / ids as f64).sqrt();
        // 3 SE band (0.31 points at p = 1/8, 0.16 at 1/32, both inside the issue's ±1 point):
        // false-failure probability 0.27% per rate for an ideal hash; ids and hash are fixed,
        // so the outcome is deterministic.
        assert!((share - p).abs() <= 3.0 * se, "p={p}: kept share {share}");
        kept_sets.push(per.into_keys().collect::<HashSet<_>>());
    }
    assert!(kept_sets[1].is_subset(&kept_sets[0]));
}

/// A sink whose first write waits until the test opens the gate: the queue overflows
/// deterministically while it waits.
#[derive(Clone)]
struct GatedSink {
    inner: Sink,
    open: Arc<AtomicBool>,
}

impl Write for GatedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        while !self.open.load(Ordering::Acquire) {
            thread::yield_now();
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn overflow_run(policy: OverflowPolicy) -> (Vec<String>, hotmeter::tracing_layer::WriterStats) {
    let e = engine();
    let sink = GatedSink {
        inner: Sink::default(),
        open: Arc::new(AtomicBool::new(false)),
    };
    let (w, guard) = NonBlocking::builder()
        .capacity(8)
        .overflow(policy)
        .build(sink.clone(), &e)
        .unwrap();
    for i in 0..1_000 {
        w.send(format!("line {i}\n"));
    }
    // Release: pairs with the sink's Acquire load.
    sink.open.store(true, Ordering::Release);
    drop(guard);
    // Sent after the guard: refused and counted.
    w.send("late\n".into());
    let st = w.stats();
    // The registry's counters agree with the writer's view.
    assert_eq!(counter(&e, "log_writer_accepted_total", &[]), st.accepted);
    assert_eq!(
        counter(&e, "log_writer_dropped_total", &[("reason", "overflow")]),
        st.dropped_overflow
    );
    (sink.inner.lines(), st)
}

/// Drop-oldest, drop-newest and block-with-timeout against a stalled sink: accepted =
/// written + dropped exactly, what was written is what the sink holds, and the policy
/// decides which lines survive (block: the first ones, the rest refused after its wait).
#[test]
fn overflow_accounting_is_exact() {
    for policy in [
        OverflowPolicy::DropOldest,
        OverflowPolicy::DropNewest,
        OverflowPolicy::Block(Duration::from_micros(200)),
    ] {
        let (lines, st) = overflow_run(policy);
        assert_eq!(st.accepted, 1_001, "{policy:?}");
        assert_eq!(st.accepted, st.written + st.dropped(), "{policy:?}");
        assert_eq!(st.dropped_closed, 1);
        assert_eq!(st.dropped_io_error, 0);
        // The queue-full drops go by the policy's reason, all of them.
        let full = st.dropped() - st.dropped_closed;
        assert!(full >= 991, "{policy:?}: {full}");
        let by_reason = if let OverflowPolicy::Block(_) = policy {
            (0, full)
        } else {
            (full, 0)
        };
        assert_eq!((st.dropped_overflow, st.dropped_timeout), by_reason);
        assert_eq!(lines.len() as u64, st.written);
        // The worker holds at most one line while the gate is shut, the queue 8 more.
        assert!(
            (8..=9).contains(&lines.len()),
            "{policy:?}: {}",
            lines.len()
        );
        let nums: Vec<u32> = lines
            .iter()
            .map(|l| l.strip_prefix("line ").unwrap().parse().unwrap())
            .collect();
        match policy {
            // The last 8 sent survive.
            OverflowPolicy::DropOldest => assert_eq!(
                nums[nums.len() - 8..],
                [992, 993, 994, 995, 996, 997, 998, 999]
            ),
            // The first 8 sent survive, and at most one later line: the one that took the
            // slot line 0 left when the worker took it out to write.
            _ => {
                assert_eq!(nums[..8], [0, 1, 2, 3, 4, 5, 6, 7]);
                assert!(nums.windows(2).all(|w| w[0] < w[1]), "{nums:?}");
            }
        }
    }
}

/// Every line accepted before the guard drops is written, from 2 threads, against a tally;
/// and under overflow from 2 threads the identity still holds.
#[test]
fn shutdown_writes_every_accepted_line() {
    for (capacity, lossless) in [(1 << 15, true), (4, false)] {
        let e = engine();
        let sink = Sink::default();
        let (w, guard) = NonBlocking::builder()
            .capacity(capacity)
            .build(sink.clone(), &e)
            .unwrap();
        let per_thread = 10_000;
        send_from_two_threads(&w, per_thread);
        drop(guard);
        let st = w.stats();
        let lines = sink.lines();
        assert_eq!(st.accepted, 2 * per_thread);
        assert_eq!(st.accepted, st.written + st.dropped());
        assert_eq!(lines.len() as u64, st.written);
        let distinct: HashSet<&String> = lines.iter().collect();
        assert_eq!(distinct.len(), lines.len(), "a line written twice");
        if lossless {
            let tally: HashSet<String> = (0..2)
                .flat_map(|t| (0..per_thread).map(move |i| format!("{t}-{i}")))
                .collect();
            assert_eq!(distinct.len() as u64, 2 * per_thread);
            assert!(distinct.iter().all(|l| tally.contains(*l)));
        }
    }
}

/// A kept line: timestamp, level, target, message, fields, the span's id, the sample rate.
#[test]
fn kept_lines_are_key_value_text() {
    let e = engine();
    let sink = Sink::default();
    let (w, guard) = NonBlocking::builder().build(sink.clone(), &e).unwrap();
    let layer = SamplingLayer::builder()
        .read_env(false)
        .writer(w)
        .build(&e)
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let span = tracing::info_span!("req", trace_id = "t-1");
        let _g = span.enter();
        tracing::event!(target: "app::x", Level::INFO, bytes = 42u64, user = "a b", "sent {}", 3);
    });
    drop(guard);
    let lines = sink.lines();
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    assert!(l.starts_with("ts=20"), "{l}");
    let rest = l.split_once(' ').unwrap().1;
    assert_eq!(
        rest,
        "level=INFO target=app::x message=\"sent 3\" bytes=42 user=\"a b\" trace_id=t-1 sample_rate=1"
    );
}

/// Bad directives: a typed error naming the directive at fault.
#[test]
fn bad_directives_are_named() {
    type IsKind = fn(&DirectiveErrorKind) -> bool;
    let cases: [(&str, &str, IsKind); 6] = [
        ("info=0.5,info=abc", "info=abc", |k| {
            matches!(k, DirectiveErrorKind::NotANumber)
        }),
        ("my crate=0.5", "my crate=0.5", |k| {
            matches!(k, DirectiveErrorKind::Syntax)
        }),
        ("=0.5", "=0.5", |k| matches!(k, DirectiveErrorKind::Syntax)),
        ("a::=0.5", "a::=0.5", |k| {
            matches!(k, DirectiveErrorKind::Syntax)
        }),
        ("debug=0", "debug=0", |k| {
            matches!(k, DirectiveErrorKind::Rate(_))
        }),
        ("1e-30", "1e-30", |k| {
            matches!(k, DirectiveErrorKind::Rate(_))
        }),
    ];
    for (input, directive, kind) in cases {
        let err = Directives::parse(input).unwrap_err();
        assert_eq!(err.directive, directive, "{input}");
        assert!(kind(&err.kind), "{input}: {:?}", err.kind);
        assert!(err.to_string().contains(&format!("`{directive}`")), "{err}");
    }
    let err = SamplingLayer::builder()
        .rates("info=2")
        .read_env(false)
        .build(&engine())
        .unwrap_err();
    assert!(matches!(err, LayerError::Rates(ref d) if d.directive == "info=2"));
    assert!(err.to_string().contains("`info=2`"), "{err}");
}

/// The block policy with a generous timeout loses nothing, from 2 threads through a queue of
/// 4: every line is written, against a tally.
#[test]
fn block_policy_drops_nothing() {
    let e = engine();
    let sink = Sink::default();
    let (w, guard) = NonBlocking::builder()
        .capacity(4)
        .overflow(OverflowPolicy::Block(Duration::from_secs(60)))
        .build(sink.clone(), &e)
        .unwrap();
    let per_thread = 10_000u64;
    send_from_two_threads(&w, per_thread);
    drop(guard);
    let st = w.stats();
    assert_eq!(
        (st.accepted, st.written, st.dropped()),
        (2 * per_thread, 2 * per_thread, 0)
    );
    let lines: HashSet<String> = sink.lines().into_iter().collect();
    let tally: HashSet<String> = (0..2)
        .flat_map(|t| (0..per_thread).map(move |i| format!("{t}-{i}")))
        .collect();
    assert_eq!(lines, tally);
}

/// A request (an id on its span) that logs an ERROR keeps its later events, in its span
/// and in child spans that inherit the id, at `sample_rate=1`; its earlier events and a
/// request without an error stay sampled out. At 2^-50 (1e-15) an id is kept by the keyed
/// rule with probability 8.9e-16, and these ids are fixed: the outcome is deterministic.
#[test]
fn an_error_keeps_the_rest_of_its_request() {
    let e = engine();
    let sink = Sink::default();
    let (w, guard) = NonBlocking::builder().build(sink.clone(), &e).unwrap();
    let layer = SamplingLayer::builder()
        .rates("1e-15")
        .read_env(false)
        .writer(w)
        .build(&e)
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for id in ["ok-1", "bad-2", "ok-3"] {
            let span = tracing::info_span!("req", correlation_id = id);
            let _g = span.enter();
            tracing::info!(step = 1, "before");
            if id.starts_with("bad") {
                tracing::error!("failed");
            }
            tracing::info!(step = 2, "after");
            // Review finding: an event that repeats its request's id itself was sampled by
            // its key even after the request's ERROR.
            tracing::info!(correlation_id = id, step = 4, "after, with its own id");
            let child = tracing::info_span!("db");
            let _c = child.enter();
            tracing::debug!(step = 3, "in a child span");
        }
    });
    drop(guard);
    let lines = sink.lines();
    let got: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| {
            let level = l
                .split(" level=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            let rate = l.rsplit_once(" sample_rate=").unwrap().1;
            (level, line_id_ref(l), rate)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("ERROR", "bad-2", "1"),
            ("INFO", "bad-2", "1"),
            ("INFO", "bad-2", "1"),
            ("DEBUG", "bad-2", "1"),
        ]
    );
    assert_eq!(
        counter(&e, "log_events_kept_total", &[("level", "INFO")]),
        2
    );
    assert_eq!(
        counter(&e, "log_events_sampled_out_total", &[("level", "INFO")]),
        7
    );
}

/// A sink that panics on every third line (review finding: the worker died with it, the
/// lines queued behind were neither written nor counted, and `Block` senders waited out
/// their timeouts). The worker survives: those lines count as I/O errors, the rest are
/// written, and accepted = written + dropped stays exact.
#[test]
fn a_panicking_sink_costs_its_lines_not_the_worker() {
    struct Flaky(Sink, u64);
    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.1 += 1;
            if self.1.is_multiple_of(3) {
                panic!("a sink that panics (on purpose)");
            }
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let e = engine();
    let sink = Sink::default();
    let (w, guard) = NonBlocking::builder()
        .capacity(1 << 12)
        .build(Flaky(sink.clone(), 0), &e)
        .unwrap();
    let per_thread = 300u64;
    send_from_two_threads(&w, per_thread);
    drop(guard);
    let st = w.stats();
    assert_eq!(st.accepted, 2 * per_thread);
    assert_eq!(st.accepted, st.written + st.dropped(), "{st:?}");
    assert_eq!(sink.lines().len() as u64, st.written);
    assert_eq!(st.written, 400, "two lines in three: {st:?}");
}

/// Two threads each send `per_thread` lines `"{thread}-{i}\n"` through `w`.
fn send_from_two_threads(w: &NonBlocking, per_thread: u64) {
    thread::scope(|s| {
        for t in 0..2 {
            let w = w.clone();
            s.spawn(move || {
                for i in 0..per_thread {
                    w.send(format!("{t}-{i}\n"));
                }
            });
        }
    });
}

fn line_id_ref(line: &str) -> &str {
    line.split_once(" correlation_id=")
        .unwrap()
        .1
        .split(' ')
        .next()
        .unwrap()
}

/// A clock the test moves by hand: `now` is a fixed base plus the offset, `wall` is
/// 2023-11-14T22:13:20Z (1,700,000,000 s) plus the offset.
#[derive(Debug)]
struct ManualClock {
    base: Instant,
    offset_ns: AtomicU64,
}

impl ManualClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            offset_ns: AtomicU64::new(0),
        })
    }

    /// Sets the offset to `ms` milliseconds.
    fn set_ms(&self, ms: u64) {
        // Relaxed: read back by this thread, or by the writer's worker, whose tick applies
        // the same rules as the events (either reading is fine).
        self.offset_ns.store(ms * 1_000_000, Ordering::Relaxed);
    }

    fn offset(&self) -> Duration {
        // Relaxed: as in `set_ms`.
        Duration::from_nanos(self.offset_ns.load(Ordering::Relaxed))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.offset()
    }
    fn wall(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + self.offset()
    }
}

/// A layer with a writer into a fresh sink, on the manual clock; returns what the tests
/// need to drive and read it.
fn clocked(
    rules: Option<Repeats>,
) -> (
    Arc<Engine>,
    Sink,
    NonBlocking,
    hotmeter::tracing_layer::WorkerGuard,
    Dispatch,
    Arc<ManualClock>,
) {
    let e = engine();
    let sink = Sink::default();
    let (w, guard) = NonBlocking::builder()
        .capacity(1 << 16)
        .build(sink.clone(), &e)
        .unwrap();
    let clock = ManualClock::new();
    let layer = SamplingLayer::builder()
        .read_env(false)
        .repeats(rules)
        .clock(clock.clone())
        .writer(w.clone())
        .build(&e)
        .unwrap();
    let d = Dispatch::new(tracing_subscriber::registry().with(layer));
    (e, sink, w, guard, d, clock)
}

/// `(repeated, first, last, window_s)` of an aggregate line, `None` for a plain one.
fn aggregate_of(line: &str) -> Option<(u64, String, String, String)> {
    let (_, rest) = line.split_once(" repeated=")?;
    let mut it = rest.split(' ');
    let n = it.next()?.parse().ok()?;
    let mut field = |k: &str| it.next()?.strip_prefix(k).map(str::to_owned);
    Some((n, field("first=")?, field("last=")?, field("window_s=")?))
}

/// The same callsite and field values 20 times, 10 ms apart: 5 lines as usual, then one
/// aggregate line for the other 15 with the first and last occurrence and the window.
#[test]
fn more_than_five_repeats_within_a_second_become_one_line() {
    let (e, sink, w, guard, d, clock) = clocked(Some(Repeats::default()));
    tracing::dispatcher::with_default(&d, || {
        for i in 0..20u64 {
            clock.set_ms(i * 10);
            tracing::info!(target: "app::rep", port = 80u64, "refused");
        }
    });
    drop(d);
    drop(guard);
    let lines = sink.lines();
    let aggs: Vec<_> = lines.iter().filter_map(|l| aggregate_of(l)).collect();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(
        aggs,
        [(
            15,
            "2023-11-14T22:13:20.050000Z".to_owned(),
            "2023-11-14T22:13:20.190000Z".to_owned(),
            "0.140000".to_owned()
        )]
    );
    let agg = lines.iter().find(|l| l.contains(" repeated=")).unwrap();
    assert!(
        agg.starts_with(
            "ts=2023-11-14T22:13:20.050000Z level=INFO target=app::rep message=refused port=80 sample_rate=1 repeated=15"
        ),
        "{agg}"
    );
    assert_eq!(
        counter(&e, "log_events_aggregated_total", &[("level", "INFO")]),
        15
    );
    assert_eq!(counter(&e, "log_aggregate_lines_total", &[]), 1);
    assert_eq!(
        counter(&e, "log_events_kept_total", &[("level", "INFO")]),
        20
    );
    let st = w.stats();
    assert_eq!((st.accepted, st.written), (6, 6));
}

/// Five within a second are not "more than 5"; nor are 6 spread over more than a second;
/// different field values are different lines.
#[test]
fn five_repeats_or_slower_ones_are_written_as_usual() {
    let (_e, sink, _w, guard, d, clock) = clocked(Some(Repeats::default()));
    tracing::dispatcher::with_default(&d, || {
        // 5 at 0..400 ms, then 5 more from 1,500 ms: two bursts of 5.
        for i in 0..5u64 {
            clock.set_ms(i * 100);
            tracing::info!(target: "app::rep", "five");
        }
        for i in 0..5u64 {
            clock.set_ms(1_500 + i * 100);
            tracing::info!(target: "app::rep", "five");
        }
        // 30 within 300 ms, each with its own value.
        for i in 0..30u64 {
            clock.set_ms(3_000 + i * 10);
            tracing::info!(target: "app::rep", i, "distinct");
        }
    });
    drop(d);
    drop(guard);
    let lines = sink.lines();
    assert_eq!(lines.len(), 40, "{lines:#?}");
    assert!(lines.iter().all(|l| aggregate_of(l).is_none()));
}

/// At most `max_count` events per aggregate line: 5 + 2,500 identical lines 1 ms apart
/// (within 10 s) give 5 plain lines and aggregates of 1,000, 1,000 and 500.
#[test]
fn an_aggregate_line_holds_at_most_max_count_events() {
    let (_e, sink, _w, guard, d, clock) = clocked(Some(Repeats::default()));
    tracing::dispatcher::with_default(&d, || {
        for i in 0..2_505u64 {
            clock.set_ms(i);
            tracing::warn!(target: "app::rep", "disk slow");
        }
    });
    drop(d);
    drop(guard);
    let lines = sink.lines();
    let counts: Vec<u64> = lines
        .iter()
        .filter_map(|l| aggregate_of(l))
        .map(|a| a.0)
        .collect();
    assert_eq!(counts, [1_000, 1_000, 500]);
    assert_eq!(lines.len(), 5 + 3);
}

/// A burst longer than `max_window` (10 s) is split: every aggregate's window is at most
/// 10 s, and plain lines plus aggregated events add up to every event.
#[test]
fn an_aggregate_window_is_at_most_ten_seconds() {
    let (_e, sink, _w, guard, d, clock) = clocked(Some(Repeats::default()));
    tracing::dispatcher::with_default(&d, || {
        // One every 100 ms for 25 s.
        for i in 0..250u64 {
            clock.set_ms(i * 100);
            tracing::info!(target: "app::rep", "tick");
        }
    });
    drop(d);
    drop(guard);
    let lines = sink.lines();
    let aggs: Vec<_> = lines.iter().filter_map(|l| aggregate_of(l)).collect();
    let plain = lines.len() - aggs.len();
    assert_eq!(plain, 5);
    // 500 ms..10.4 s, 10.5 s..20.4 s, 20.5 s..24.9 s.
    let got: Vec<(u64, &str)> = aggs.iter().map(|a| (a.0, a.3.as_str())).collect();
    assert_eq!(
        got,
        [(100, "9.900000"), (100, "9.900000"), (45, "4.400000")]
    );
    assert_eq!(plain as u64 + aggs.iter().map(|a| a.0).sum::<u64>(), 250);
}

/// ERROR is never aggregated.
#[test]
fn errors_are_never_aggregated() {
    let (e, sink, _w, guard, d, clock) = clocked(Some(Repeats::default()));
    tracing::dispatcher::with_default(&d, || {
        for i in 0..50u64 {
            clock.set_ms(i);
            tracing::error!(target: "app::rep", "upstream failed");
        }
    });
    drop(d);
    drop(guard);
    let lines = sink.lines();
    assert_eq!(lines.len(), 50);
    assert!(lines.iter().all(|l| aggregate_of(l).is_none()));
    assert_eq!(
        counter(&e, "log_events_aggregated_total", &[("level", "ERROR")]),
        0
    );
}

/// Repeats with different correlation ids are never merged, whether the id is on the event
/// or on the enclosing span: two ids interleaved, 8 times each, give 5 + 1 lines per id.
#[test]
fn different_correlation_ids_are_never_merged() {
    let (_e, sink, _w, guard, d, clock) = clocked(Some(Repeats::default()));
    tracing::dispatcher::with_default(&d, || {
        for i in 0..8u64 {
            clock.set_ms(i * 10);
            for id in ["a", "b"] {
                tracing::info!(target: "app::rep", request_id = id, "retry");
                let span = tracing::info_span!("req", correlation_id = id);
                let _g = span.enter();
                tracing::info!(target: "app::rep", "in span");
            }
        }
    });
    drop(d);
    drop(guard);
    let lines = sink.lines();
    for id in [
        "request_id=a ",
        "request_id=b ",
        "correlation_id=a ",
        "correlation_id=b ",
    ] {
        let mine: Vec<&String> = lines.iter().filter(|l| l.contains(id)).collect();
        let aggs: Vec<u64> = mine
            .iter()
            .filter_map(|l| aggregate_of(l))
            .map(|a| a.0)
            .collect();
        assert_eq!((mine.len(), aggs), (6, vec![3]), "{id}: {mine:#?}");
    }
    assert_eq!(lines.len(), 24);
}

/// At the entry cap, new lines go untracked: written as usual and counted, never lost.
#[test]
fn at_the_entry_cap_new_lines_are_written_untracked() {
    let mut rules = Repeats::default();
    rules.max_entries = 4;
    let (e, sink, w, guard, d, clock) = clocked(Some(rules));
    tracing::dispatcher::with_default(&d, || {
        for i in 0..10u64 {
            clock.set_ms(i * 10);
            for key in 0..6u64 {
                tracing::info!(target: "app::rep", key, "many");
            }
        }
    });
    drop(d);
    drop(guard);
    let lines = sink.lines();
    // Keys 0-3 tracked: 5 plain + 1 aggregate of 5 each; keys 4 and 5: all 10 plain.
    assert_eq!(lines.len(), 4 * 6 + 2 * 10, "{lines:#?}");
    assert_eq!(counter(&e, "log_aggregation_untracked_total", &[]), 20);
    assert_eq!(
        counter(&e, "log_events_aggregated_total", &[("level", "INFO")]),
        20
    );
    let st = w.stats();
    assert_eq!(st.accepted, st.written);
}

/// `Engine::shutdown` drains the writer like the guard's drop: the open aggregates are
/// written and so is every line accepted; the guard's later drop has nothing left to do.
#[test]
fn engine_shutdown_drains_the_writer_and_the_open_aggregates() {
    let (e, sink, w, guard, d, clock) = clocked(Some(Repeats::default()));
    tracing::dispatcher::with_default(&d, || {
        for i in 0..20u64 {
            clock.set_ms(i);
            tracing::info!(target: "app::rep", "again");
        }
    });
    send_from_two_threads(&w, 5_000);
    e.shutdown();
    let lines = sink.lines();
    assert_eq!(lines.len(), 6 + 10_000);
    assert_eq!(
        lines
            .iter()
            .filter_map(|l| aggregate_of(l))
            .map(|a| a.0)
            .collect::<Vec<_>>(),
        [15]
    );
    let st = w.stats();
    assert_eq!((st.accepted, st.written, st.dropped()), (10_006, 10_006, 0));
    // Sent after the shutdown: refused and counted, never queued.
    w.send("late\n".into());
    assert_eq!(w.stats().dropped_closed, 1);
    drop(d);
    drop(guard);
    assert_eq!(sink.lines().len(), 10_006);
}

/// The meta-metrics: queue gauges, the writer's latency histogram (one observation per
/// written line), the effective sample rate per level (kept / seen, exact after the drain).
#[test]
fn meta_metrics_are_in_the_registry() {
    let e = engine();
    let (_sink, w, guard, layer) = sampling(&e, "info=0.25");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..4_000u64 {
            tracing::info!(target: "app::m", i, "x");
        }
    });
    drop(guard);
    let snap = e.registry().snapshot();
    let kept = snap
        .counter("log_events_kept_total", &[("level", "INFO")])
        .unwrap();
    let rate = snap
        .gauge("log_effective_sample_rate", &[("level", "INFO")])
        .unwrap();
    assert_eq!(rate, kept as f64 / 4_000.0);
    assert_eq!(
        snap.gauge("log_effective_sample_rate", &[("level", "WARN")]),
        Some(1.0)
    );
    assert_eq!(snap.gauge("log_writer_queue_depth", &[]), Some(0.0));
    assert_eq!(snap.gauge("log_writer_queue_utilization", &[]), Some(0.0));
    let lat = snap.histogram("log_writer_latency_seconds", &[]).unwrap();
    assert_eq!(lat.count, w.stats().written);
    assert_eq!(lat.count, kept);
    let text = e.render(hotmeter::Format::Text).unwrap();
    for name in [
        "log_events_aggregated_total",
        "log_effective_sample_rate",
        "log_writer_queue_depth",
        "log_writer_queue_utilization",
        "log_writer_latency_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} not in the scrape");
    }
}

/// Spans as timers, on the manual clock: busy time counts only the entered stretches
/// (a nested re-entry once); wall time runs from creation to close. Exact count and sum.
#[test]
fn spans_are_timed_by_name() {
    for (mode, secs) in [(SpanTime::Busy, 0.003), (SpanTime::Wall, 0.010)] {
        let e = engine();
        let clock = ManualClock::new();
        let layer = SamplingLayer::builder()
            .read_env(false)
            .span_timers(Some(mode))
            .clock(clock.clone())
            .build(&e)
            .unwrap();
        let n = 100u64;
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for i in 0..n {
                let t0 = i * 100;
                clock.set_ms(t0);
                let span = tracing::info_span!(target: "app::t", "handle", i);
                clock.set_ms(t0 + 1);
                {
                    let _g = span.enter();
                    let _again = span.enter();
                    clock.set_ms(t0 + 3);
                }
                clock.set_ms(t0 + 5);
                span.in_scope(|| clock.set_ms(t0 + 6));
                clock.set_ms(t0 + 10);
                drop(span);
            }
        });
        let snap = e.registry().snapshot();
        let s = snap
            .sampled(
                "span_duration_seconds",
                &[("target", "app::t"), ("span", "handle")],
            )
            .unwrap();
        assert_eq!(s.count, n, "{mode:?}");
        assert!(
            (s.sum - n as f64 * secs).abs() < 1e-9,
            "{mode:?}: {}",
            s.sum
        );
    }
}

/// Early sampling under a filter inside the layer (`registry().with(filter).with(layer)`):
/// an event the filter disables is not this layer's to count, sampled out or not; and
/// `enabled!` / `event_enabled!` hints are neither counted nor drawn.
#[test]
fn early_sampling_counts_only_what_the_inner_filter_takes() {
    let e = engine();
    let (_sink, _writer, guard, layer) = sampling_early(&e, "0.125", true);
    // A dynamic filter (no level hint: `info!` reaches the dispatcher): INFO of
    // `app::filtered` off.
    let filter = tracing_subscriber::filter::filter_fn(|m| {
        m.target() != "app::filtered" || *m.level() <= Level::WARN
    });
    let subscriber = tracing_subscriber::registry().with(filter).with(layer);
    tracing::subscriber::with_default(subscriber, || {
        hotmeter::tracing_layer::seed_this_thread(7);
        for i in 0..1_000u64 {
            tracing::info!(target: "app::filtered", i, "disabled by the filter");
            tracing::warn!(target: "app::filtered", i, "taken");
            let _ = tracing::event_enabled!(target: "app::hint", Level::WARN);
            let _ = tracing::enabled!(target: "app::hint", Level::WARN);
        }
    });
    drop(guard);
    let info = [("level", "INFO"), ("target", "app::filtered")];
    let warn = [("level", "WARN"), ("target", "app::filtered")];
    let snap = e.registry().snapshot();
    assert_eq!(snap.counter("log_events_total", &info).unwrap_or(0), 0);
    assert_eq!(snap.counter("log_events_total", &warn), Some(1_000));
    assert_eq!(
        counter(&e, "log_events_sampled_out_total", &[("level", "INFO")]),
        0
    );
    assert_eq!(
        snap.counter(
            "log_events_total",
            &[("level", "WARN"), ("target", "app::hint")]
        ),
        None,
        "a hint is no event"
    );
}
