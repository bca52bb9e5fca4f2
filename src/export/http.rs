//! The `/metrics` endpoint: hyper 1.x on a current-thread tokio runtime in one background
//! thread (renders run on its blocking threads, at most one per scrape permit), so serving
//! never touches the recording threads or the flusher.
//!
//! Limits, all on by default: connections, concurrent scrapes (excess answered 503), a
//! header-read timeout, and a deadline for the whole exchange (one request per connection:
//! `Connection: close`), which is also the write timeout for a client that stops reading.
//! Optional bearer-token auth.
//!
//! Idle or trickling connections cannot starve scrapes: at the connection cap, a new
//! connection takes the slot of the one that has waited longest without a complete request
//! head (it is closed), and while at the cap the header timeout shortens to
//! [`HEADER_TIMEOUT_AT_CAP`]. A new connection is refused only when every slot holds a
//! request being answered. (The eviction policy of nginx's and Apache's "reset timed-out
//! connections" and of hyper's own header timeout, applied oldest first.)
//!
//! Stopping is bounded by a grace period (default 1 s), not by clients: connections still
//! reading a request are closed at once, replies in flight get the grace period to finish,
//! then every connection left is cut and the thread joined.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::Format;
use super::model::{Family, Kind, Row, Sample, family, one};

pub use crate::config::{DEFAULT_ADDR, MAX_REQUEST_HEAD_BYTES, MAX_TOKEN_BYTES};

/// The header timeout while the endpoint is at its connection cap (or
/// [`ServeConfig::header_timeout`] if shorter): a scraper sends its request head at once, so
/// a connection that has not within a second is holding a slot someone else needs.
pub const HEADER_TIMEOUT_AT_CAP: Duration = Duration::from_secs(1);

/// How often an endpoint at its connection cap closes connections past
/// [`HEADER_TIMEOUT_AT_CAP`].
const AT_CAP_SWEEP: Duration = Duration::from_millis(100);

/// Limits and options of the metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Open connections at most. Past it a new connection evicts the connection that has
    /// waited longest without a complete request head; when every connection is being
    /// answered, the new one is closed unanswered.
    pub max_connections: usize,
    /// Scrapes rendered or written at once (each renders on its own blocking thread); past
    /// it a request is answered 503.
    pub max_concurrent_scrapes: usize,
    /// Time a client has to send its request headers.
    pub header_timeout: Duration,
    /// Deadline for a whole exchange (read, render, write); a client that stops reading is
    /// cut off here.
    pub exchange_timeout: Duration,
    /// When set, requests must carry `Authorization: Bearer <token>` (else 401); at most
    /// [`MAX_TOKEN_BYTES`].
    pub token: Option<String>,
    /// When the endpoint stops (with its engine), how long replies in flight may take to
    /// finish before their connections are cut; connections still reading a request are
    /// closed at once. Bounds `Engine::shutdown` and drop whatever clients do.
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_connections: 64,
            max_concurrent_scrapes: 4,
            header_timeout: Duration::from_secs(5),
            exchange_timeout: Duration::from_secs(10),
            token: None,
            shutdown_grace: Duration::from_secs(1),
        }
    }
}

/// Counts of what the endpoint answered.
#[derive(Debug, Default)]
pub(crate) struct ServeStats {
    pub(crate) ok: AtomicU64,
    pub(crate) busy: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) not_found: AtomicU64,
    pub(crate) bad_method: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) refused_connections: AtomicU64,
    /// Connections closed without a complete request to make room at the connection cap
    /// (evicted for a new connection, or past [`HEADER_TIMEOUT_AT_CAP`]).
    pub(crate) evicted_connections: AtomicU64,
    pub(crate) gzip: AtomicU64,
}

impl ServeStats {
    /// `(status code, responses)` pairs.
    pub(crate) fn by_code(&self) -> [(&'static str, u64); 6] {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("200", l(&self.ok)),
            ("401", l(&self.unauthorized)),
            ("404", l(&self.not_found)),
            ("405", l(&self.bad_method)),
            ("500", l(&self.errors)),
            ("503", l(&self.busy)),
        ]
    }
}

impl ServeStats {
    /// The endpoint's own families (`hotmeter_http_*`), exported by every engine built with
    /// the `http` feature.
    pub(crate) fn families(&self) -> Vec<Family> {
        HTTP_META
            .iter()
            .map(|&(name, help, kind, rows)| family(name, help, kind, rows(self)))
            .collect()
    }
}

/// The rows of one endpoint family, from its counters.
type HttpRows = fn(&ServeStats) -> Vec<Row>;

/// The endpoint's own families, when it runs: name, HELP, type, rows. Relaxed loads: the
/// counters are statistics; no other data is read through them.
const HTTP_META: &[(&str, &str, Kind, HttpRows)] = &[
    (
        "hotmeter_http_responses",
        "Responses of the /metrics endpoint by status code.",
        Kind::Counter,
        |h| {
            h.by_code()
                .map(|(code, v)| {
                    (
                        vec![("code".to_string(), code.to_string())],
                        Sample::Counter(v),
                    )
                })
                .into()
        },
    ),
    (
        "hotmeter_http_gzip_responses",
        "Responses of the /metrics endpoint sent gzip-compressed.",
        Kind::Counter,
        |h| one(Sample::Counter(h.gzip.load(Ordering::Relaxed))),
    ),
    (
        "hotmeter_http_refused_connections",
        "Connections closed unanswered because the endpoint's connection limit was reached.",
        Kind::Counter,
        |h| {
            one(Sample::Counter(
                h.refused_connections.load(Ordering::Relaxed),
            ))
        },
    ),
    (
        "hotmeter_http_evicted_connections",
        "Connections closed before their request was complete, to make room at the endpoint's connection limit.",
        Kind::Counter,
        |h| {
            one(Sample::Counter(
                h.evicted_connections.load(Ordering::Relaxed),
            ))
        },
    ),
];

/// A running endpoint, held by its engine. Stopping it (explicitly, or on drop) stops
/// accepting, lets replies in flight finish within [`ServeConfig::shutdown_grace`], cuts
/// what is left, and joins the thread.
/// What it answered is counted in the [`ServeStats`] it was started with (the engine's,
/// exported as `hotmeter_http_*`).
#[derive(Debug)]
pub(crate) struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address it listens on (useful after binding port 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the endpoint and joins its thread.
    pub(crate) fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Connections the kernel may queue for the endpoint before it accepts them (std's `bind`
/// asks for 128; the kernel caps it at `net.core.somaxconn`, 4096 on Linux 5.4+). With
/// more clients than the backlog connecting at once, a scraper's SYN is dropped and only
/// retried a second later: measured in `tests/http_starvation.rs`, 1-2 of 20 scrapes timed
/// out connecting with 128 on a loaded 2-core machine, none with this.
const LISTEN_BACKLOG: libc::c_int = 4096;

/// Raises the listening socket's backlog to [`LISTEN_BACKLOG`]; best effort.
fn widen_backlog(listener: &StdListener) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: `listen` on the listener's own open, bound socket (it outlives the call);
        // on a socket already listening it only changes the backlog (POSIX).
        let _ = unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) };
    }
    #[cfg(not(unix))]
    let _ = listener;
}

/// What a request handler needs.
struct Ctx {
    render: Render,
    config: ServeConfig,
    scrapes: Arc<Semaphore>,
    stats: Arc<ServeStats>,
}

/// Why [`Engine::serve`](crate::Engine::serve) or
/// [`Engine::serve_with`](crate::Engine::serve_with) could not start an endpoint: a
/// [`ServeConfig`] knob out of range (named), an address that resolves to nothing, or what
/// the operating system refused (the `io::Error` is the [`source`]).
///
/// `io::Error: From<ServeError>`, so `?` works in a function returning `io::Result`: the
/// operating system's errors convert to themselves (their kind kept, `AddrInUse` stays
/// `AddrInUse`), the others to an `InvalidInput` error carrying this one.
///
/// [`source`]: std::error::Error::source
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// A count limit is zero: `knob` is `"max_connections"` or `"max_concurrent_scrapes"`
    /// (an endpoint with no slot could answer nothing).
    ZeroLimit {
        /// The [`ServeConfig`] field.
        knob: &'static str,
    },
    /// A timeout is zero: `knob` is `"header_timeout"` or `"exchange_timeout"` (every
    /// request would time out before it was read).
    ZeroTimeout {
        /// The [`ServeConfig`] field.
        knob: &'static str,
    },
    /// The token is longer than a request header can carry, so no client could send it.
    TokenTooLong {
        /// The token's length in bytes.
        len: usize,
        /// The longest accepted, [`MAX_TOKEN_BYTES`].
        max: usize,
    },
    /// The address resolved to no socket address at all.
    NoAddress,
    /// The address could not be resolved (not an address, or the name lookup failed).
    Resolve(io::Error),
    /// No address it resolved to could be bound (in use, not local, no permission): the
    /// last one tried and why.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why it could not be bound.
        source: io::Error,
    },
    /// The endpoint's socket options, runtime or thread could not be set up.
    Io(io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::ZeroLimit { knob } => {
                write!(
                    f,
                    "{knob} must be at least 1 (an endpoint with no slot answers nothing)"
                )
            }
            ServeError::ZeroTimeout { knob } => write!(f, "{knob} must be non-zero"),
            ServeError::TokenTooLong { len, max } => write!(
                f,
                "the token is {len} bytes, longer than a request header can carry ({max}, \
                 MAX_TOKEN_BYTES)"
            ),
            ServeError::NoAddress => f.write_str("the address resolved to nothing"),
            ServeError::Resolve(e) => write!(f, "cannot resolve the address: {e}"),
            ServeError::Bind { addr, source } => write!(f, "cannot bind {addr}: {source}"),
            ServeError::Io(e) => write!(f, "cannot start the /metrics endpoint: {e}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Resolve(e) | ServeError::Bind { source: e, .. } | ServeError::Io(e) => {
                Some(e)
            }
            ServeError::ZeroLimit { .. }
            | ServeError::ZeroTimeout { .. }
            | ServeError::TokenTooLong { .. }
            | ServeError::NoAddress => None,
        }
    }
}

impl From<ServeError> for io::Error {
    fn from(e: ServeError) -> Self {
        match e {
            ServeError::Resolve(e) | ServeError::Bind { source: e, .. } | ServeError::Io(e) => e,
            config => io::Error::new(io::ErrorKind::InvalidInput, config),
        }
    }
}

impl ServeConfig {
    /// The first knob out of range, as the [`ServeError`] naming it.
    pub(crate) fn check(&self) -> Result<(), ServeError> {
        let limits = [
            ("max_connections", self.max_connections),
            ("max_concurrent_scrapes", self.max_concurrent_scrapes),
        ];
        if let Some(&(knob, _)) = limits.iter().find(|(_, n)| *n == 0) {
            return Err(ServeError::ZeroLimit { knob });
        }
        let timeouts = [
            ("header_timeout", self.header_timeout),
            ("exchange_timeout", self.exchange_timeout),
        ];
        if let Some(&(knob, _)) = timeouts.iter().find(|(_, t)| t.is_zero()) {
            return Err(ServeError::ZeroTimeout { knob });
        }
        match &self.token {
            Some(t) if t.len() > MAX_TOKEN_BYTES => Err(ServeError::TokenTooLong {
                len: t.len(),
                max: MAX_TOKEN_BYTES,
            }),
            _ => Ok(()),
        }
    }
}

/// The rendering an endpoint serves, called on a blocking thread per scrape.
pub(crate) type Render = Box<dyn Fn(Format) -> Result<String, std::fmt::Error> + Send + Sync>;

/// Checks `config`, binds `addr` now (so a bad address or a port in use is an error here)
/// and serves `render`'s output on it from a background thread.
pub(crate) fn serve(
    addr: SocketAddr,
    config: ServeConfig,
    stats: Arc<ServeStats>,
    render: Render,
) -> Result<MetricsServer, ServeError> {
    config.check()?;
    let listener = StdListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    widen_backlog(&listener);
    listener.set_nonblocking(true).map_err(ServeError::Io)?;
    let addr = listener.local_addr().map_err(ServeError::Io)?;
    let ctx = Arc::new(Ctx {
        render,
        scrapes: Arc::new(Semaphore::new(config.max_concurrent_scrapes)),
        config,
        stats,
    });
    let stop = Arc::new(Notify::new());
    let thread = spawn_endpoint(listener, ctx, Arc::clone(&stop)).map_err(ServeError::Io)?;
    Ok(MetricsServer {
        addr,
        stop,
        thread: Some(thread),
    })
}

/// The endpoint's thread: a current-thread runtime running the accept loop until `stop`.
fn spawn_endpoint(
    listener: StdListener,
    ctx: Arc<Ctx>,
    stop: Arc<Notify>,
) -> io::Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        // Renders run on blocking threads, one per scrape permit at most.
        .max_blocking_threads(ctx.config.max_concurrent_scrapes)
        .thread_name("hotmeter-render")
        .build()?;
    std::thread::Builder::new()
        .name("hotmeter-http".into())
        .spawn(move || {
            runtime.block_on(accept_loop(listener, ctx, stop));
            // A render still running on a blocking thread finishes on its own; its
            // reply has nowhere to go. Dropping the runtime would wait for it.
            runtime.shutdown_background();
        })
}

/// The endpoint's connection slots: how many are taken, and the connections still waiting
/// for their request head in accept order (the eviction candidates, oldest first). Shared by
/// the accept loop and the connection tasks, which all run on the endpoint's one thread:
/// the lock is never contended and never held across an `.await`.
struct Slots {
    max: usize,
    /// Connections counting against `max`: a connection's slot is freed when its task ends,
    /// or handed over at once to the connection that evicts it.
    taken: usize,
    next_id: u64,
    /// Connections without a complete request head: accept order → (accepted at, the
    /// signal that closes it).
    waiting: BTreeMap<u64, (Instant, Arc<Notify>)>,
}

impl Slots {
    fn at_cap(&self) -> bool {
        self.taken >= self.max
    }

    /// A slot for a new connection: a free one, or the slot of the connection that has
    /// waited longest for its request head (closed through its signal). `None` when every
    /// slot holds a request being answered.
    fn admit(&mut self, stats: &ServeStats) -> Option<(u64, Arc<Notify>)> {
        if self.at_cap() {
            let (_, (_, victim)) = self.waiting.pop_first()?;
            victim.notify_one();
            // Relaxed: a statistic, read on its own.
            stats.evicted_connections.fetch_add(1, Ordering::Relaxed);
        } else {
            self.taken += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        let evict = Arc::new(Notify::new());
        self.waiting
            .insert(id, (Instant::now(), Arc::clone(&evict)));
        Some((id, evict))
    }

    /// At the cap: closes the connections that have waited `timeout` or more for their
    /// request head.
    fn sweep(&mut self, timeout: Duration, stats: &ServeStats) {
        if !self.at_cap() {
            return;
        }
        let now = Instant::now();
        while let Some(entry) = self.waiting.first_entry() {
            if now.duration_since(entry.get().0) < timeout {
                break;
            }
            let (_, victim) = entry.remove();
            victim.notify_one();
            // Nobody takes this slot over: free it here (out of `waiting`, the victim's
            // `Slot` leaves the count alone when it drops).
            self.taken -= 1;
            // Relaxed: a statistic, read on its own.
            stats.evicted_connections.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A connection's hold on its slot. The request head came in: no longer evictable. Dropped
/// (the connection ends): frees the slot, unless an eviction handed it over already.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    id: u64,
    answering: bool,
}

/// The lock of the slots; a panic while it is held leaves them consistent (each update is
/// one insert or remove and a count), so poisoning is ignored.
fn lock_slots(slots: &Mutex<Slots>) -> std::sync::MutexGuard<'_, Slots> {
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        lock_slots(&self.slots)
    }

    /// The request head is complete. `false` if the connection was evicted meanwhile.
    fn answering(&mut self) -> bool {
        let in_time = self.lock().waiting.remove(&self.id).is_some();
        self.answering = in_time;
        in_time
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let id = self.id;
        let answering = self.answering;
        let mut slots = self.lock();
        // Still waiting, or answering: the slot is this connection's to free. Otherwise
        // an eviction took it out of `waiting` and gave its slot to a new connection.
        if slots.waiting.remove(&id).is_some() || answering {
            slots.taken -= 1;
        }
    }
}

/// Accepts connections until `stop`, each served by its own task on a slot
/// ([`Slots::admit`]); at the cap, sweeps connections past [`HEADER_TIMEOUT_AT_CAP`] every
/// [`AT_CAP_SWEEP`]. Then stops the connections ([`stop_connections`]).
async fn accept_loop(listener: StdListener, ctx: Arc<Ctx>, stop: Arc<Notify>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hotmeter: metrics endpoint cannot listen: {e}");
            return;
        }
    };
    let slots = Arc::new(Mutex::new(Slots {
        max: ctx.config.max_connections,
        taken: 0,
        next_id: 0,
        waiting: BTreeMap::new(),
    }));
    let at_cap_timeout = ctx.config.header_timeout.min(HEADER_TIMEOUT_AT_CAP);
    let mut sweep = tokio::time::interval(AT_CAP_SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = tokio::task::JoinSet::new();
    // Tells the connections the endpoint is stopping.
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    loop {
        let at_cap = lock_slots(&slots).at_cap();
        let accepted = tokio::select! {
            _ = stop.notified() => break,
            a = listener.accept() => a,
            _ = sweep.tick(), if at_cap => {
                lock_slots(&slots).sweep(at_cap_timeout, &ctx.stats);
                continue;
            }
        };
        // Reap finished connection tasks so the set stays bounded.
        while tasks.try_join_next().is_some() {}
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(_) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some((id, evicted)) = admit(&slots, &ctx.stats).await else {
            ctx.stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let slot = Slot {
            slots: Arc::clone(&slots),
            id,
            answering: false,
        };
        let ctx = Arc::clone(&ctx);
        tasks.spawn(serve_connection(
            stream,
            slot,
            ctx,
            evicted,
            stopping.clone(),
        ));
    }
    drop(listener);
    stop_connections(tasks, stopping_tx, ctx.config.shutdown_grace).await;
}

/// A slot for a new connection ([`Slots::admit`]).
async fn admit(slots: &Mutex<Slots>, stats: &ServeStats) -> Option<(u64, Arc<Notify>)> {
    let (admitted, evicting) = {
        let mut slots = lock_slots(slots);
        let evicting = slots.at_cap();
        (slots.admit(stats), evicting)
    };
    if evicting {
        // At the cap, a burst of accepts would evict the connections it just admitted
        // before their tasks ever read a request: let the tasks run between accepts.
        tokio::task::yield_now().await;
    }
    admitted
}

/// Graceful stop, bounded: replies in flight get the `grace` period, then every connection
/// left is dropped (aborting its task closes its socket).
async fn stop_connections(
    mut tasks: tokio::task::JoinSet<()>,
    stopping: tokio::sync::watch::Sender<bool>,
    grace: Duration,
) {
    let _ = stopping.send(true);
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tasks.shutdown().await;
    }
}

/// Serves one accepted connection's one exchange within the exchange deadline (past it the
/// connection, and any unsent body, is dropped). `evicted` closes it unanswered. When the
/// endpoint starts `stopping`, a connection still reading its request closes at once; a
/// reply in flight may finish (until [`stop_connections`] cuts it).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    slot: Slot,
    ctx: Arc<Ctx>,
    evicted: Arc<Notify>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(ctx.config.header_timeout)
        .keep_alive(false)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES);
    let deadline = ctx.config.exchange_timeout;
    // Set once the request's head is in: from then on a stop lets the reply finish,
    // and the connection cannot be evicted.
    let answering = Arc::new(AtomicBool::new(false));
    let service = service(ctx, Arc::new(Mutex::new(slot)), Arc::clone(&answering));
    let conn = http.serve_connection(TokioIo::new(stream), service);
    let exchange = async move {
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            // Eviction first: a connection evicted before this poll must not read
            // (and answer) a request on a slot it has handed over.
            biased;
            _ = evicted.notified() => return,
            _ = conn.as_mut() => return,
            // Also when the sender is gone: the endpoint is stopping either way.
            _ = stopping.wait_for(|&s| s) => {}
        }
        // Stopping: a connection still reading its request closes now (returning
        // drops it); a reply in flight may finish (until the accept loop cuts it).
        // Relaxed: read by this connection's own task, on this one thread.
        if answering.load(Ordering::Relaxed) {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    };
    // Past the deadline the connection (and any unsent body) is dropped.
    let _ = tokio::time::timeout(deadline, exchange).await;
}

/// The connection's request handler: marks the connection `answering` once its request
/// head is in (taking the slot out of the eviction candidates), then [`handle`]s it.
fn service(
    ctx: Arc<Ctx>,
    slot: Arc<Mutex<Slot>>,
    answering: Arc<AtomicBool>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<PermitBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<PermitBody>, Infallible>> + Send,
> {
    hyper::service::service_fn(move |req| {
        let in_time = slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .answering();
        // Relaxed: read by this connection's own task, on this one thread.
        answering.store(true, Ordering::Relaxed);
        let ctx = Arc::clone(&ctx);
        async move {
            if !in_time {
                // Evicted in the same poll that completed the head (its task ends at the
                // next one): no reply.
                return Ok::<_, Infallible>(plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "connection evicted\n",
                ));
            }
            Ok::<_, Infallible>(handle(ctx, req).await)
        }
    })
}

/// A response body that holds a scrape permit until it is fully written or dropped.
struct PermitBody {
    body: Full<Bytes>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Body for PermitBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<PermitBody> {
    let mut r = Response::new(PermitBody {
        body: Full::new(Bytes::from_static(text.as_bytes())),
        _permit: None,
    });
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Whether a presented token equals the configured one, in time that does not depend on
/// where they differ (`subtle`; only the length may show).
fn token_matches(presented: &[u8], token: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    presented.ct_eq(token).into()
}

fn authorized(headers: &hyper::HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        // The scheme is case-insensitive (RFC 7235).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, t)| token_matches(t.trim().as_bytes(), token.as_bytes()))
}

/// Whether `Accept-Encoding` allows gzip: an explicit `gzip` entry decides by its `q`;
/// otherwise a `*` entry does; `q=0` refuses (parameter names case-insensitive).
fn wants_gzip(headers: &hyper::HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (mut gzip, mut any) = (None, None);
    for coding in v.split(',') {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, q)| q.trim().parse::<f64>().unwrap_or(0.0));
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q);
        } else if name == "*" {
            any = Some(q);
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

/// Answers one request: a refusal ([`refusal`]), 503 past `max_concurrent_scrapes`, or the
/// rendering in the format `Accept` asks for, gzip-compressed if `Accept-Encoding` allows.
async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Response<PermitBody> {
    let stats = &ctx.stats;
    if let Some(refused) = refusal(&ctx, &req) {
        return refused;
    }
    let Ok(permit) = Arc::clone(&ctx.scrapes).try_acquire_owned() else {
        stats.busy.fetch_add(1, Ordering::Relaxed);
        let mut r = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many concurrent scrapes\n",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let format = Format::from_accept(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let gzip = wants_gzip(req.headers());
    // Rendering and compressing are CPU work: off the I/O thread (at most
    // `max_concurrent_scrapes` at once, as many as permits), so accepting, timeouts and
    // other exchanges go on meanwhile.
    let work = {
        let ctx = Arc::clone(&ctx);
        tokio::task::spawn_blocking(move || render_body(&ctx, format, gzip))
    };
    let body = match work.await {
        Ok(Ok(body)) => body,
        Ok(Err(why)) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            return plain(StatusCode::INTERNAL_SERVER_ERROR, why);
        }
        Err(_) => {
            // The render panicked (or the runtime is shutting down).
            stats.errors.fetch_add(1, Ordering::Relaxed);
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n");
        }
    };
    stats.ok.fetch_add(1, Ordering::Relaxed);
    if gzip {
        stats.gzip.fetch_add(1, Ordering::Relaxed);
    }
    metrics_reply(body, permit, format, gzip)
}

/// The answer to a request that is not a scrape this endpoint serves: 404 for another
/// path, 405 for another method, 401 without the token. `None` for a scrape.
fn refusal(ctx: &Ctx, req: &Request<Incoming>) -> Option<Response<PermitBody>> {
    let stats = &ctx.stats;
    if req.uri().path() != "/metrics" {
        stats.not_found.fetch_add(1, Ordering::Relaxed);
        return Some(plain(StatusCode::NOT_FOUND, "not found: scrape /metrics\n"));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        stats.bad_method.fetch_add(1, Ordering::Relaxed);
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(r);
    }
    if let Some(token) = &ctx.config.token
        && !authorized(req.headers(), token)
    {
        stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        let mut r = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"hotmeter\""),
        );
        return Some(r);
    }
    None
}

/// The body of a scrape (on a blocking thread): the rendering, gzip-compressed when
/// `gzip`; the 500 body when either step fails.
fn render_body(ctx: &Ctx, format: Format, gzip: bool) -> Result<Bytes, &'static str> {
    let text = (ctx.render)(format).map_err(|_| "encoding failed\n")?;
    if !gzip {
        return Ok(Bytes::from(text));
    }
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(text.as_bytes())
        .and_then(|()| enc.finish())
        .map(Bytes::from)
        .map_err(|_| "compression failed\n")
}

/// A 200 carrying `body`, holding its scrape `permit` until the body is sent.
fn metrics_reply(
    body: Bytes,
    permit: OwnedSemaphorePermit,
    format: Format,
    gzip: bool,
) -> Response<PermitBody> {
    let mut r = Response::new(PermitBody {
        body: Full::new(body),
        _permit: Some(permit),
    });
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn exchange(addr: SocketAddr, accept_gzip: bool) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let gzip = if accept_gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n{gzip}\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// An encoder failure is a 500 with a short message and nothing of the rendering.
    #[test]
    fn an_encode_error_is_a_500_with_no_partial_body() {
        let stats = Arc::new(ServeStats::default());
        let server = serve(
            "127.0.0.1:0".parse().unwrap(),
            ServeConfig::default(),
            Arc::clone(&stats),
            Box::new(|_| Err(std::fmt::Error)),
        )
        .unwrap();
        for gzip in [false, true] {
            let reply = exchange(server.local_addr(), gzip);
            assert!(reply.starts_with("HTTP/1.1 500"), "{reply}");
            let body = reply.split_once("\r\n\r\n").unwrap().1;
            assert_eq!(body, "encoding failed\n");
            assert!(!reply.contains("Content-Encoding"), "{reply}");
        }
        assert_eq!(stats.errors.load(Ordering::Relaxed), 2);
        assert_eq!(stats.ok.load(Ordering::Relaxed), 0);
        server.stop();
    }

    /// Stopping the endpoint waits for exchanges in flight at most their grace period, also
    /// for a client that never reads a large reply and one that trickles its headers: a
    /// shutdown bounded by the clients' 30 s timeouts would hold the program's exit hostage. The bound asserted is
    /// generous (grace + 3 s): it is a correctness bound, not a benchmark.
    #[test]
    fn stopping_cuts_stalled_exchanges_after_the_grace_period() {
        let config = ServeConfig {
            header_timeout: Duration::from_secs(30),
            exchange_timeout: Duration::from_secs(30),
            ..ServeConfig::default()
        };
        let grace = config.shutdown_grace;
        assert_eq!(grace, Duration::from_secs(1), "the documented default");
        // 64 MiB: far more than the loopback socket buffers hold.
        let body = std::sync::Arc::new("a".repeat(64 << 20));
        let server = serve(
            "127.0.0.1:0".parse().unwrap(),
            config,
            Arc::default(),
            Box::new(move |_| Ok(String::clone(&body))),
        )
        .unwrap();
        let addr = server.local_addr();
        // A client that asks for the reply and never reads it.
        let mut sink = std::net::TcpStream::connect(addr).unwrap();
        write!(sink, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        // A client that trickles its headers, a byte every 50 ms, until cut off.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let trickle = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                let mut sent = 0usize;
                for b in b"GET /metrics HTTP/1.1\r\n"
                    .iter()
                    .chain(b"X-Slow: ".iter())
                {
                    if s.write_all(&[*b]).is_err() {
                        return sent;
                    }
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                // Relaxed: a stop request for this client.
                while !done.load(Ordering::Relaxed) && s.write_all(b"x").is_ok() {
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                sent
            })
        };
        // Let both get stuck: the reply fills the socket buffers, the headers are half sent.
        std::thread::sleep(Duration::from_millis(700));
        let started = std::time::Instant::now();
        server.stop();
        let took = started.elapsed();
        done.store(true, Ordering::Relaxed);
        assert!(
            took <= grace + Duration::from_secs(3),
            "stop took {took:?} with a grace of {grace:?}"
        );
        trickle.join().unwrap();
        // The stalled reply was cut: the client reads what was buffered, then the end.
        sink.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut got = Vec::new();
        let _ = sink.read_to_end(&mut got);
        assert!(
            got.len() < 64 << 20,
            "the whole reply was sent: {}",
            got.len()
        );
    }

    /// At the connection cap, connections without a complete request head are closed after
    /// `HEADER_TIMEOUT_AT_CAP` (not the configured 30 s), their slots are free again, and a
    /// new connection evicts the oldest idle one: idle or trickling clients cannot starve
    /// the scraper.
    #[test]
    fn at_the_cap_idle_connections_are_swept_and_evicted() {
        let config = ServeConfig {
            max_connections: 4,
            header_timeout: Duration::from_secs(30),
            exchange_timeout: Duration::from_secs(30),
            ..ServeConfig::default()
        };
        let stats = Arc::new(ServeStats::default());
        let server = serve(
            "127.0.0.1:0".parse().unwrap(),
            config,
            Arc::clone(&stats),
            Box::new(|_| Ok("ok\n".to_string())),
        )
        .unwrap();
        let addr = server.local_addr();
        let idle = |n: usize| -> Vec<std::net::TcpStream> {
            (0..n)
                .map(|_| {
                    let s = std::net::TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    s
                })
                .collect()
        };
        // Four idle connections fill the cap; the oldest is swept after about a second.
        // The others go in the same sweep if they were accepted within a second of it; under
        // load the accepts can spread wider, and once the sweep has brought the endpoint below
        // its cap the rest wait for the configured header timeout like any connection. Those
        // are kept open (`left`): closed by the client, they would free their slots without
        // an eviction, and the count asserted at the end assumes each one is swept or evicted
        // by the connections below.
        let started = std::time::Instant::now();
        let mut first = idle(4).into_iter();
        let mut buf = [0u8; 16];
        let oldest = first.next().unwrap().read(&mut buf);
        let took = started.elapsed();
        assert!(
            matches!(oldest, Ok(0)) && took < Duration::from_secs(10),
            "the oldest: {oldest:?} after {took:?}, not closed before the 30 s header timeout"
        );
        let mut left = Vec::new();
        for mut s in first {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            match s.read(&mut buf) {
                Ok(0) => {} // swept
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    left.push(s);
                }
                other => panic!("an idle connection was answered or broke: {other:?}"),
            }
        }
        // Their slots are free again: four more idle ones fit, and a fifth connection (a
        // scrape) evicts the oldest of them instead of being refused.
        let mut again = idle(4);
        std::thread::sleep(Duration::from_millis(200));
        let reply = exchange(addr, false);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let mut buf = [0u8; 16];
        let oldest_again = again[0].read(&mut buf);
        assert!(
            matches!(oldest_again, Ok(0)),
            "the oldest was evicted: {oldest_again:?}"
        );
        assert_eq!(stats.refused_connections.load(Ordering::Relaxed), 0);
        // The first sweep's, the ones left open (swept or evicted later), the scrape's.
        assert!(stats.evicted_connections.load(Ordering::Relaxed) >= 5);
        drop(left);
        server.stop();
    }

    #[test]
    fn zero_limits_and_an_unreadable_token_are_refused() {
        type Want = fn(&ServeError) -> bool;
        let cases: [(ServeConfig, &str, Want); 5] = [
            (
                ServeConfig {
                    header_timeout: Duration::ZERO,
                    ..ServeConfig::default()
                },
                "header_timeout",
                |e| {
                    matches!(
                        e,
                        ServeError::ZeroTimeout {
                            knob: "header_timeout"
                        }
                    )
                },
            ),
            (
                ServeConfig {
                    exchange_timeout: Duration::ZERO,
                    ..ServeConfig::default()
                },
                "exchange_timeout",
                |e| {
                    matches!(
                        e,
                        ServeError::ZeroTimeout {
                            knob: "exchange_timeout"
                        }
                    )
                },
            ),
            (
                ServeConfig {
                    max_connections: 0,
                    ..ServeConfig::default()
                },
                "max_connections",
                |e| {
                    matches!(
                        e,
                        ServeError::ZeroLimit {
                            knob: "max_connections"
                        }
                    )
                },
            ),
            (
                ServeConfig {
                    max_concurrent_scrapes: 0,
                    ..ServeConfig::default()
                },
                "max_concurrent_scrapes",
                |e| {
                    matches!(
                        e,
                        ServeError::ZeroLimit {
                            knob: "max_concurrent_scrapes"
                        }
                    )
                },
            ),
            (
                ServeConfig {
                    token: Some("t".repeat(MAX_TOKEN_BYTES + 1)),
                    ..ServeConfig::default()
                },
                "token",
                |e| {
                    matches!(e, ServeError::TokenTooLong { len, max: MAX_TOKEN_BYTES }
                        if *len == MAX_TOKEN_BYTES + 1)
                },
            ),
        ];
        for (config, knob, want) in cases {
            let err = serve(
                "127.0.0.1:0".parse().unwrap(),
                config,
                Arc::default(),
                Box::new(|_| Ok(String::new())),
            )
            .unwrap_err();
            assert!(want(&err), "{knob}: {err:?}");
            // The message names the knob; a configuration error has no cause below it.
            assert!(err.to_string().contains(knob), "{err}");
            assert!(std::error::Error::source(&err).is_none(), "{err:?}");
        }
    }

    /// A port in use is a bind error naming the address, with the `io::Error` as its source;
    /// converted to an `io::Error` (for `?` in a function returning `io::Result`) it keeps
    /// the kind.
    #[test]
    fn a_busy_port_is_a_bind_error_with_its_io_source() {
        let busy = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap();
        let err = serve(
            addr,
            ServeConfig::default(),
            Arc::default(),
            Box::new(|_| Ok(String::new())),
        )
        .unwrap_err();
        match &err {
            ServeError::Bind { addr: a, source } => {
                assert_eq!(*a, addr);
                assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        let source = std::error::Error::source(&err).expect("the io::Error");
        assert!(source.is::<io::Error>(), "{source:?}");
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::AddrInUse);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for &(k, v) in pairs {
            h.append(k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn accept_encoding() {
        let cases = [
            (None, false),
            (Some("gzip"), true),
            (Some("GZIP"), true),
            (Some("deflate, gzip;q=0.5"), true),
            (Some("gzip;q=0"), false),
            (Some("gzip;Q=0"), false),
            (Some("gzip; q=0.0, *"), false),
            (Some("*"), true),
            (Some("*;q=0"), false),
            (Some("br, deflate"), false),
            (Some("identity"), false),
        ];
        for (v, want) in cases {
            let pairs: Vec<(&'static str, &str)> =
                v.iter().map(|v| ("accept-encoding", *v)).collect();
            let h = headers(&pairs);
            assert_eq!(wants_gzip(&h), want, "{v:?}");
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_the_token_exact() {
        let t = "s3cret";
        for (v, want) in [
            ("Bearer s3cret", true),
            ("bearer s3cret", true),
            ("BEARER  s3cret ", true),
            ("Bearer s3cre", false),
            ("Bearer s3cret2", false),
            ("Basic s3cret", false),
            ("s3cret", false),
            ("Bearer", false),
        ] {
            assert_eq!(
                authorized(&headers(&[("authorization", v)]), t),
                want,
                "{v:?}"
            );
        }
        assert!(!authorized(&headers(&[]), t));
    }

    #[test]
    fn token_comparison() {
        assert!(token_matches(b"abc", b"abc"));
        assert!(!token_matches(b"abc", b"abd"));
        assert!(!token_matches(b"abc", b"abcd"));
        assert!(!token_matches(b"", b"a"));
    }
}
