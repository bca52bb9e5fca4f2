//! A non-blocking line writer: a bounded lock-free queue (crossbeam-queue's `ArrayQueue`)
//! drained by one worker thread into any `io::Write`, after tracing-appender's
//! `NonBlocking` / `WorkerGuard`, with exact accounting of every line handed to it.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::{Counter, Engine, Gauge, Histogram, Result};

/// What [`NonBlocking::send`] does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Evict the oldest queued line to make room (counted `dropped{reason="overflow"}`).
    #[default]
    DropOldest,
    /// Refuse the new line (counted `dropped{reason="overflow"}`).
    DropNewest,
    /// Wait up to this long for room (spinning: waking the worker and yielding, so a core stays busy while it waits), then refuse the line (counted
    /// `dropped{reason="timeout"}`). The sender waits: this trades latency for lines.
    Block(Duration),
}

/// The writer's counters, in the engine's registry:
/// `log_writer_accepted_total` (every line handed to [`NonBlocking::send`]),
/// `log_writer_written_total`, and `log_writer_dropped_total{reason}`
/// with `reason` one of `overflow` (queue full, by the policy), `timeout` (queue still
/// full after [`OverflowPolicy::Block`]'s wait), `closed` (sent after the guard dropped)
/// and `io_error` (the sink refused it). Once the [`WorkerGuard`] has
/// dropped, `accepted = written + dropped` exactly. Beside them, gauges
/// `log_writer_queue_depth` (lines waiting) and `log_writer_queue_utilization` (depth /
/// capacity), set by the worker at each pass, and the histogram
/// `log_writer_latency_seconds` of enqueue-to-written times (one observation per line the
/// sink took; lines from the layer's repeat aggregation, which the worker writes itself,
/// have none).
#[derive(Debug, Clone, Copy)]
struct Counters {
    accepted: Counter,
    written: Counter,
    overflow: Counter,
    timeout: Counter,
    closed: Counter,
    io_error: Counter,
    depth: Gauge,
    utilization: Gauge,
    latency: Histogram,
}

/// Lines held back by a layer above the writer (the repeat aggregation): the worker asks
/// for the ones due at each tick, the close for all of them before it closes the queue.
pub(crate) trait LineSource: Send + Sync {
    /// Appends the lines due now (and refreshes the source's gauges).
    fn tick(&self, out: &mut Vec<String>);
    /// Appends every line held back, and from now on holds none back.
    fn drain_all(&self, out: &mut Vec<String>);
}

/// How often the worker ticks its [`LineSource`]s (at least; it ticks when it wakes).
const TICK: Duration = Duration::from_millis(100);

/// A snapshot of a writer's counters (exact once the [`WorkerGuard`] has dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Lines handed to [`NonBlocking::send`].
    pub accepted: u64,
    /// Lines the sink took.
    pub written: u64,
    /// Lines lost because the queue was full.
    pub dropped_overflow: u64,
    /// Lines refused after [`OverflowPolicy::Block`]'s wait.
    pub dropped_timeout: u64,
    /// Lines sent after the guard dropped.
    pub dropped_closed: u64,
    /// Lines the sink failed to write.
    pub dropped_io_error: u64,
}

impl WriterStats {
    /// Every drop, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_overflow + self.dropped_timeout + self.dropped_closed + self.dropped_io_error
    }
}

struct Shared {
    /// Each line with the instant it was queued (for the latency histogram).
    queue: ArrayQueue<(String, Instant)>,
    policy: OverflowPolicy,
    counters: Counters,
    /// Set by the guard; no line enters the queue after every sender has seen it.
    closed: AtomicBool,
    /// Senders between their `closed` check and their push.
    sending: AtomicUsize,
    /// Set by the guard once no sender is between `closed` and its push: the worker's
    /// last drain after it sees this one finds every accepted line.
    stop: AtomicBool,
    /// The worker is about to park (or parked).
    sleeping: AtomicBool,
    worker: Thread,
    /// The worker's handle until a close joins it; the lock is held for the whole close,
    /// so a second closer returns only once the first has drained.
    handle: Mutex<Option<JoinHandle<()>>>,
    /// Registered by layers ([`NonBlocking::add_source`]); weak, so a dropped layer is
    /// skipped.
    sources: Mutex<Vec<Weak<dyn LineSource>>>,
}

/// The sending side: cheap to clone, `Send + Sync`. Lines go through a bounded queue to a
/// worker thread; [`NonBlocking::send`] never blocks on I/O.
#[derive(Clone)]
pub struct NonBlocking {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NonBlocking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonBlocking")
            .field("capacity", &self.shared.queue.capacity())
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

/// Drains every line accepted before it drops, writes it, flushes the sink and joins the
/// worker. Keep it alive for as long as the program logs (like tracing-appender's).
/// [`Engine::shutdown`] of the engine the writer was built with does the same; whichever
/// comes first drains, the other finds nothing left to do.
#[must_use = "dropping the guard stops the writer"]
pub struct WorkerGuard {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WorkerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerGuard").finish_non_exhaustive()
    }
}

/// Builds a [`NonBlocking`] writer: [`NonBlocking::builder`].
#[derive(Debug, Clone)]
pub struct NonBlockingBuilder {
    capacity: usize,
    policy: OverflowPolicy,
}

/// Default queue capacity, in lines.
pub const DEFAULT_CAPACITY: usize = 8192;

impl NonBlockingBuilder {
    /// Queue capacity in lines (default [`DEFAULT_CAPACITY`]; at least 1).
    pub fn capacity(mut self, lines: usize) -> Self {
        self.capacity = lines.max(1);
        self
    }

    /// What to do when the queue is full (default [`OverflowPolicy::DropOldest`]).
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Starts the worker thread writing into `sink`; counters go to `engine`'s registry, and
    /// `engine`'s [`shutdown`](Engine::shutdown) drains the writer like the guard's drop.
    ///
    /// # Errors
    /// A registry error if the counter names are taken by another kind of metric.
    ///
    /// # Panics
    /// If the worker thread cannot be spawned.
    pub fn build<W: Write + Send + 'static>(
        self,
        sink: W,
        engine: &Engine,
    ) -> Result<(NonBlocking, WorkerGuard)> {
        let r = engine.registry();
        let dropped = "log_writer_dropped_total";
        let counters = Counters {
            accepted: r.counter("log_writer_accepted_total", &[])?,
            written: r.counter("log_writer_written_total", &[])?,
            overflow: r.counter(dropped, &[("reason", "overflow")])?,
            timeout: r.counter(dropped, &[("reason", "timeout")])?,
            closed: r.counter(dropped, &[("reason", "closed")])?,
            io_error: r.counter(dropped, &[("reason", "io_error")])?,
            depth: r.gauge("log_writer_queue_depth", &[])?,
            utilization: r.gauge("log_writer_queue_utilization", &[])?,
            latency: r.histogram("log_writer_latency_seconds", &[])?,
        };
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Shared>>();
        let handle = thread::Builder::new()
            .name("hotmeter-log-writer".into())
            .spawn(move || {
                let shared = rx.recv().expect("the builder sends the shared state");
                worker(&shared, sink);
            })
            .expect("spawn the log writer thread");
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(self.capacity),
            policy: self.policy,
            counters,
            closed: AtomicBool::new(false),
            sending: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            worker: handle.thread().clone(),
            handle: Mutex::new(Some(handle)),
            sources: Mutex::new(Vec::new()),
        });
        tx.send(Arc::clone(&shared))
            .expect("the worker waits for the shared state");
        let weak = Arc::downgrade(&shared);
        engine.on_shutdown(move || {
            if let Some(s) = weak.upgrade() {
                s.close();
            }
        });
        Ok((
            NonBlocking {
                shared: Arc::clone(&shared),
            },
            WorkerGuard { shared },
        ))
    }
}

/// The worker thread: writes queued lines and the sources' due lines, flushes after each
/// batch, parks when there is nothing to write, and drains the queue one last time once
/// the guard stops it.
fn worker<W: Write>(shared: &Shared, sink: W) {
    let mut w = Worker {
        shared,
        sink,
        next_tick: Instant::now() + TICK,
        held: Vec::new(),
    };
    loop {
        w.report_depth();
        let queued = w.write_queue();
        let due = w.write_due_lines();
        if queued || due {
            w.flush();
            continue;
        }
        // Acquire: pairs with the guard's Release store of `stop`, made after every sender
        // left its push (`sending` back to 0), so every accepted line is in the queue now.
        if shared.stop.load(Ordering::Acquire) {
            w.write_queue();
            w.flush();
            w.counters().depth.set(0.0);
            w.counters().utilization.set(0.0);
            return;
        }
        shared.park_until_woken();
    }
}

/// The worker thread's state: its sink and the sources' lines waiting to be written.
struct Worker<'a, W> {
    shared: &'a Shared,
    sink: W,
    /// When the sources' due lines are next collected.
    next_tick: Instant,
    /// The sources' lines collected at a tick (kept to reuse its allocation).
    held: Vec<String>,
}

impl<W: Write> Worker<'_, W> {
    fn counters(&self) -> Counters {
        self.shared.counters
    }

    /// Publishes the queue's depth and fill as gauges.
    fn report_depth(&self) {
        let depth = self.shared.queue.len();
        self.counters().depth.set(depth as f64);
        self.counters()
            .utilization
            .set(depth as f64 / self.shared.queue.capacity() as f64);
    }

    /// Writes one line; whether it was written. A sink that panics costs its line (counted
    /// as an I/O error), not the worker: the lines queued behind it are still written and
    /// counted, and the guard still returns.
    fn write(&mut self, line: &str) -> bool {
        let sink = &mut self.sink;
        match catch_unwind(AssertUnwindSafe(|| sink.write_all(line.as_bytes()))) {
            Ok(Ok(())) => {
                self.counters().written.inc();
                true
            }
            Ok(Err(_)) | Err(_) => {
                self.counters().io_error.inc();
                false
            }
        }
    }

    /// Writes every line in the queue, recording each written line's time in the queue;
    /// whether there was any.
    fn write_queue(&mut self) -> bool {
        let mut any = false;
        while let Some((line, queued)) = self.shared.queue.pop() {
            if self.write(&line) {
                self.counters()
                    .latency
                    .record(queued.elapsed().as_secs_f64());
            }
            any = true;
        }
        any
    }

    /// At each tick, the sources' lines due (aggregated repeats), written here rather than
    /// queued: a worker waiting on its own full queue (`Block`) would wait forever. Whether
    /// there was any.
    fn write_due_lines(&mut self) -> bool {
        if Instant::now() < self.next_tick {
            return false;
        }
        self.next_tick = Instant::now() + TICK;
        let mut held = std::mem::take(&mut self.held);
        self.shared.tick_sources(&mut held);
        let any = !held.is_empty();
        for line in held.drain(..) {
            self.counters().accepted.inc();
            self.write(&line);
        }
        self.held = held;
        any
    }

    /// Flushes the sink; a panic in it is the sink's, not the worker's.
    fn flush(&mut self) {
        let sink = &mut self.sink;
        let _ = catch_unwind(AssertUnwindSafe(|| sink.flush()));
    }
}

impl Shared {
    /// Parks the worker until a sender or the guard wakes it (or [`TICK`] passes), unless a
    /// line or the stop arrived meanwhile.
    fn park_until_woken(&self) {
        // SeqCst store and fence: a Dekker pair with the sender's push, SeqCst fence and
        // load of `sleeping` in `NonBlocking::send`: either the sender sees `sleeping` and
        // unparks, or this thread sees its line in the queue below.
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // Relaxed: a stale `false` only costs one more turn (the guard unparks after storing).
        if self.queue.is_empty() && !self.stop.load(Ordering::Relaxed) {
            // The timeout is a backstop only; wake-ups come from `send` and the guard.
            thread::park_timeout(TICK);
        }
        // Relaxed: a hint to senders; a stale `true` costs one spurious unpark.
        self.sleeping.store(false, Ordering::Relaxed);
    }

    fn sources(&self) -> Vec<Arc<dyn LineSource>> {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        sources.retain(|s| s.strong_count() > 0);
        sources.iter().filter_map(Weak::upgrade).collect()
    }

    fn tick_sources(&self, out: &mut Vec<String>) {
        for s in self.sources() {
            s.tick(out);
        }
    }

    /// Drains the sources into the queue, closes it, waits for the senders in flight,
    /// lets the worker write everything and joins it. Idempotent: a later call (the
    /// guard's drop after `Engine::shutdown`, or the other way round) returns once the
    /// first is done.
    fn close(&self) {
        let mut handle = self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(h) = handle.take() else { return };
        // The lines held back by the layers go in while the queue still takes lines (and
        // the worker still drains it, for a `Block` policy).
        let mut held = Vec::new();
        for s in self.sources() {
            s.drain_all(&mut held);
        }
        for line in held {
            self.send(line);
        }
        // SeqCst: pairs with the SeqCst `sending` increment and `closed` load in `send`.
        self.closed.store(true, Ordering::SeqCst);
        // SeqCst: the other half of the `closed` / `sending` handshake with `send` (its
        // SeqCst increment then `closed` load; an Acquire load here would not order against
        // them); it also acquires the Release decrements, so the pushes of senders that got
        // past `closed` happen before the `stop` store below.
        while self.sending.load(Ordering::SeqCst) != 0 {
            thread::yield_now();
        }
        // Release: pairs with the worker's Acquire load of `stop` before its last drain.
        self.stop.store(true, Ordering::Release);
        h.thread().unpark();
        if h.thread().id() != thread::current().id() {
            let _ = h.join();
        }
    }

    /// See [`NonBlocking::send`].
    fn send(&self, line: String) {
        self.counters.accepted.inc();
        // Once closed, do not touch `sending` at all: senders that keep coming must not
        // keep the guard waiting for it to read 0.
        if self.closed.load(Ordering::SeqCst) {
            self.counters.closed.inc();
            return;
        }
        // SeqCst: `sending` then `closed`, against the closer's `closed` then `sending`
        // (both SeqCst): either the closer waits for this send, or this send sees `closed`.
        self.sending.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            // Release: pairs with the closer's SeqCst load of `sending`, as below.
            self.sending.fetch_sub(1, Ordering::Release);
            self.counters.closed.inc();
            return;
        }
        let item = (line, Instant::now());
        match self.policy {
            OverflowPolicy::DropOldest => {
                if self.queue.force_push(item).is_some() {
                    self.counters.overflow.inc();
                }
            }
            OverflowPolicy::DropNewest => {
                if self.queue.push(item).is_err() {
                    self.counters.overflow.inc();
                }
            }
            OverflowPolicy::Block(timeout) => {
                if let Err(item) = self.queue.push(item) {
                    self.block(item, timeout);
                }
            }
        }
        // Release: publishes the push above to the closer, whose SeqCst load of `sending`
        // reads 0 only after it.
        self.sending.fetch_sub(1, Ordering::Release);
        // SeqCst fence then load: pairs with the worker's SeqCst store of `sleeping` and
        // fence before it checks the queue (see `worker`).
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above (see `worker`).
        if self.sleeping.load(Ordering::Relaxed) {
            self.worker.unpark();
        }
    }

    /// The slow path of [`OverflowPolicy::Block`]: the queue was full.
    #[cold]
    #[inline(never)]
    fn block(&self, mut line: (String, Instant), timeout: Duration) {
        // `None`: no deadline (a timeout as long as `Duration::MAX` would overflow the
        // instant and panic in the caller's logging call).
        let deadline = Instant::now().checked_add(timeout);
        loop {
            // The worker may be parked on a queue it saw empty a moment ago.
            self.worker.unpark();
            thread::yield_now();
            match self.queue.push(line) {
                Ok(()) => return,
                Err(back) => line = back,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.counters.timeout.inc();
                return;
            }
        }
    }
}

impl NonBlocking {
    /// A builder: capacity and overflow policy.
    pub fn builder() -> NonBlockingBuilder {
        NonBlockingBuilder {
            capacity: DEFAULT_CAPACITY,
            policy: OverflowPolicy::DropOldest,
        }
    }

    /// Hands `line` (written as is: end it with `\n`) to the worker. Never blocks on I/O:
    /// when the queue is full the overflow policy drops a line, counted, or (with
    /// [`OverflowPolicy::Block`]) waits for room up to its timeout.
    pub fn send(&self, line: String) {
        self.shared.send(line);
    }

    /// Registers a source of held-back lines (the layer's repeat aggregation).
    pub(crate) fn add_source(&self, source: Weak<dyn LineSource>) {
        self.shared
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(source);
    }

    /// The writer's counters now (exact once the guard has dropped).
    pub fn stats(&self) -> WriterStats {
        let c = self.shared.counters;
        WriterStats {
            accepted: c.accepted.value(),
            written: c.written.value(),
            dropped_overflow: c.overflow.value(),
            dropped_timeout: c.timeout.value(),
            dropped_closed: c.closed.value(),
            dropped_io_error: c.io_error.value(),
        }
    }

    /// Lines waiting in the queue.
    pub fn queue_len(&self) -> usize {
        self.shared.queue.len()
    }

    /// The queue's capacity in lines.
    pub fn capacity(&self) -> usize {
        self.shared.queue.capacity()
    }
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        self.shared.close();
    }
}
