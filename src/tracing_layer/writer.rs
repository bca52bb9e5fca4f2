//! A non-blocking line writer: a bounded lock-free queue (crossbeam-queue's `ArrayQueue`)
//! drained by one worker thread into any `io::Write`, after tracing-appender's
//! `NonBlocking` / `WorkerGuard`, with exact accounting of every line handed to it.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::{Counter, Engine, Result};

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
/// dropped, `accepted = written + dropped` exactly.
#[derive(Debug, Clone, Copy)]
struct Counters {
    accepted: Counter,
    written: Counter,
    overflow: Counter,
    timeout: Counter,
    closed: Counter,
    io_error: Counter,
}

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

#[derive(Debug)]
struct Shared {
    queue: ArrayQueue<String>,
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
#[must_use = "dropping the guard stops the writer"]
#[derive(Debug)]
pub struct WorkerGuard {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
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

    /// Starts the worker thread writing into `sink`; counters go to `engine`'s registry.
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
        });
        tx.send(Arc::clone(&shared))
            .expect("the worker waits for the shared state");
        Ok((
            NonBlocking {
                shared: Arc::clone(&shared),
            },
            WorkerGuard {
                shared,
                handle: Some(handle),
            },
        ))
    }
}

fn worker<W: Write>(shared: &Shared, mut sink: W) {
    let c = shared.counters;
    // A sink that panics costs its line (counted as an I/O error), not the worker: the
    // lines queued behind it are still written and counted, and the guard still returns.
    let write = |line: String, sink: &mut W| match catch_unwind(AssertUnwindSafe(|| {
        sink.write_all(line.as_bytes())
    })) {
        Ok(Ok(())) => c.written.inc(),
        Ok(Err(_)) | Err(_) => c.io_error.inc(),
    };
    let flush = |sink: &mut W| {
        let _ = catch_unwind(AssertUnwindSafe(|| sink.flush()));
    };
    loop {
        let mut wrote = false;
        while let Some(line) = shared.queue.pop() {
            write(line, &mut sink);
            wrote = true;
        }
        if wrote {
            flush(&mut sink);
            continue;
        }
        // Acquire: pairs with the guard's Release store of `stop`, made after every sender
        // left its push (`sending` back to 0), so every accepted line is in the queue now.
        if shared.stop.load(Ordering::Acquire) {
            while let Some(line) = shared.queue.pop() {
                write(line, &mut sink);
            }
            flush(&mut sink);
            return;
        }
        // SeqCst store and fence: a Dekker pair with the sender's push, SeqCst fence and
        // load of `sleeping` in `NonBlocking::send`: either the sender sees `sleeping` and
        // unparks, or this thread sees its line in the queue below.
        shared.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // Relaxed: a stale `false` only costs one more turn (the guard unparks after storing).
        if shared.queue.is_empty() && !shared.stop.load(Ordering::Relaxed) {
            // The timeout is a backstop only; wake-ups come from `send` and the guard.
            thread::park_timeout(Duration::from_millis(100));
        }
        // Relaxed: a hint to senders; a stale `true` costs one spurious unpark.
        shared.sleeping.store(false, Ordering::Relaxed);
    }
}

impl Shared {
    /// The slow path of [`OverflowPolicy::Block`]: the queue was full.
    #[cold]
    #[inline(never)]
    fn block(&self, mut line: String, timeout: Duration) {
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
        let s = &*self.shared;
        s.counters.accepted.inc();
        // Once closed, do not touch `sending` at all: senders that keep coming must not
        // keep the guard waiting for it to read 0.
        if s.closed.load(Ordering::SeqCst) {
            s.counters.closed.inc();
            return;
        }
        // SeqCst: `sending` then `closed`, against the guard's `closed` then `sending`
        // (both SeqCst): either the guard waits for this send, or this send sees `closed`.
        s.sending.fetch_add(1, Ordering::SeqCst);
        if s.closed.load(Ordering::SeqCst) {
            // Release: pairs with the guard's Acquire load of `sending`, as below.
            s.sending.fetch_sub(1, Ordering::Release);
            s.counters.closed.inc();
            return;
        }
        match s.policy {
            OverflowPolicy::DropOldest => {
                if s.queue.force_push(line).is_some() {
                    s.counters.overflow.inc();
                }
            }
            OverflowPolicy::DropNewest => {
                if s.queue.push(line).is_err() {
                    s.counters.overflow.inc();
                }
            }
            OverflowPolicy::Block(timeout) => {
                if let Err(line) = s.queue.push(line) {
                    s.block(line, timeout);
                }
            }
        }
        // Release: publishes the push above to the guard, whose Acquire load of `sending`
        // reads 0 only after it.
        s.sending.fetch_sub(1, Ordering::Release);
        // SeqCst fence then load: pairs with the worker's SeqCst store of `sleeping` and
        // fence before it checks the queue (see `worker`).
        fence(Ordering::SeqCst);
        if s.sleeping.load(Ordering::Relaxed) {
            s.worker.unpark();
        }
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
        let s = &*self.shared;
        // SeqCst: pairs with the SeqCst `sending` increment and `closed` load in `send`.
        s.closed.store(true, Ordering::SeqCst);
        // SeqCst: the other half of the `closed` / `sending` handshake with `send` (its
        // SeqCst increment then `closed` load; an Acquire load here would not order against
        // them); it also acquires the Release decrements, so the pushes of senders that got
        // past `closed` happen before the `stop` store below.
        while s.sending.load(Ordering::SeqCst) != 0 {
            thread::yield_now();
        }
        // Release: pairs with the worker's Acquire load of `stop` before its last drain.
        s.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}
