//! The engine: a registry with its sampling pipeline, plus the background flusher thread
//! that drains it. One global engine backs the macros; local ones are for tests and for
//! programs that want several independent sets of metrics.

#[cfg(feature = "http")]
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::arena::CellPool;
use crate::config::{Config, ConfigError, FromEnv};
use crate::flush::Published;
use crate::flush::flusher::FlushState;
use crate::registry::Registry;
use crate::sample::ring::Overflow;

pub(crate) struct Shared {
    registry: Registry,
    config: Config,
    stop: AtomicBool,
    state: Mutex<FlushState>,
    /// Run once by [`Engine::shutdown`], before the final drain (see [`Engine::on_shutdown`]).
    on_shutdown: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    /// What this engine's endpoints answered (exported as meta-metrics).
    #[cfg(feature = "http")]
    pub(crate) http: Arc<crate::export::http::ServeStats>,
}

impl Shared {
    #[cfg(any(feature = "prometheus-client", feature = "metrics"))]
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    #[cfg(feature = "metrics")]
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    fn state(&self) -> MutexGuard<'_, FlushState> {
        // A panic inside a flush leaves the state usable (every field is valid at every
        // step), so poisoning is ignored.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flush(&self) {
        self.state().flush(&self.registry);
    }

    /// The families the layers above the core add to every rendering: the endpoint's
    /// `hotmeter_http_*`.
    #[cfg(feature = "http")]
    pub(crate) fn extra_families(&self) -> Vec<crate::export::model::Family> {
        self.http.families()
    }

    /// The families the layers above the core add to every rendering: none without the
    /// `http` feature.
    #[cfg(not(feature = "http"))]
    #[allow(clippy::unused_self)]
    pub(crate) fn extra_families(&self) -> Vec<crate::export::model::Family> {
        Vec::new()
    }

    /// Every series and meta-metric in `format`.
    fn render(&self, format: crate::Format) -> Result<String, std::fmt::Error> {
        crate::export::render_with(&self.registry, format, self.extra_families())
    }
}

#[cfg(feature = "prometheus-client")]
impl crate::export::collector::Source for Shared {
    fn registry(&self) -> &Registry {
        Shared::registry(self)
    }

    fn extra_families(&self) -> Vec<crate::export::model::Family> {
        Shared::extra_families(self)
    }
}

/// A registry, its sampling pipeline and its flusher thread. See the crate docs.
///
/// Dropping an engine shuts it down ([`Engine::shutdown`]).
pub struct Engine {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    #[cfg(feature = "http")]
    servers: Mutex<Vec<crate::export::http::MetricsServer>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`]; every knob of [`Config`], and [`EngineBuilder::from_env`] for the
/// `HOTMETER_*` overrides.
#[derive(Debug, Clone, Default)]
pub struct EngineBuilder {
    config: Config,
    /// Knobs whose value came from the environment (so errors name the variable); a
    /// builder call for one of them takes it off.
    env: Vec<FromEnv>,
    /// A `listen` address that did not resolve, reported by `build` / `install`.
    listen_error: Option<ConfigError>,
}

macro_rules! knob {
    ($(#[$doc:meta])* $name:ident: $t:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $t) -> Self {
            self.config.$name = value;
            self.env.retain(|o| o.knob != stringify!($name));
            self
        }
    };
}

impl EngineBuilder {
    knob!(
        /// Starting sample probability (rounded to the nearest power of two).
        sample_rate: f64
    );
    knob!(
        /// Lowest probability the controller may use.
        min_sample_rate: f64
    );
    knob!(
        /// Highest probability the controller may use.
        max_sample_rate: f64
    );
    knob!(
        /// Whether the flusher adapts the rate to the overhead budget and ring pressure.
        adaptive: bool
    );
    knob!(
        /// CPU the sampled layer may cost, a fraction of one core in `(0, 1]` (default
        /// 0.01: 1%); checked by `build` and `install`.
        overhead_budget: f64
    );
    knob!(
        /// Records per thread ring (rounded up to a power of two). With
        /// [`Overflow::DropNewest`] the last eighth is kept for critical records.
        ring_capacity: usize
    );
    knob!(
        /// How often the flusher drains (it also wakes early when a ring passes 3/4 full).
        flush_interval: Duration
    );
    knob!(
        /// What a full ring does.
        overflow: Overflow
    );
    knob!(
        /// Sliding window of the estimated quantiles (default 10 min).
        quantile_window: Duration
    );
    knob!(
        /// Series per metric before label sets fold into one overflow series.
        series_cap: usize
    );
    knob!(
        /// Series in the whole registry before new label sets fold into their metric's
        /// overflow series and new metrics are refused (default 100,000).
        max_series: usize
    );
    knob!(
        /// Memory the critical lane may grow to, bytes (default 64 MiB).
        critical_lane_bytes: usize
    );
    knob!(
        /// Seed of the samplers' gap generators (fixed seeds make tests repeatable).
        seed: u64
    );
    knob!(
        /// Whether a ring past 3/4 full wakes the flusher for an early drain.
        wake_on_high_water: bool
    );

    knob!(
        /// Which `hotmeter_*` families the exposition carries (default all).
        meta_metrics: crate::config::MetaMetrics
    );

    /// Adds `name="value"` to every exported series, user and `hotmeter_*` families alike,
    /// in both formats and through the prometheus-client collector. A series with a label
    /// of the same name keeps its own. Checked by `build` / `install` (see
    /// [`Config::global_labels`]).
    pub fn global_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.global_labels.push((name.into(), value.into()));
        self.env.retain(|o| o.knob != "global_labels");
        self
    }

    /// Serve `/metrics` at `addr` once built (see [`Engine::serve`]): a `SocketAddr`, or
    /// anything [`ToSocketAddrs`] takes (`"127.0.0.1:9464"`, `("localhost", 9464)`),
    /// resolved now to its first address. An address that does not resolve is reported
    /// by `build` / `install`. Feature `http`.
    #[cfg(feature = "http")]
    pub fn listen(mut self, addr: impl ToSocketAddrs) -> Self {
        self.env.retain(|o| o.knob != "listen");
        self.listen_error = None;
        match addr.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(a)) => self.config.listen = Some(a),
            Ok(None) | Err(_) => {
                self.config.listen = None;
                self.listen_error = Some(ConfigError {
                    knob: "listen".into(),
                    value: String::new(),
                    expected: "an address that resolves, such as 127.0.0.1:9464",
                });
            }
        }
        self
    }

    /// Require `Authorization: Bearer <token>` on the endpoint. Feature `http`.
    #[cfg(feature = "http")]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.config.token = Some(crate::config::Secret::new(token));
        self.env.retain(|o| o.knob != "token");
        self
    }

    /// Applies the `HOTMETER_*` environment variables over what is set so far.
    ///
    /// # Errors
    /// A malformed or out-of-range variable, named with its accepted form. Checks between
    /// knobs come at [`EngineBuilder::build`], which names the variable too.
    pub fn from_env(mut self) -> Result<Self, ConfigError> {
        self.config = self
            .config
            .apply_env_traced(|k| std::env::var(k).ok(), &mut self.env)?;
        Ok(self)
    }

    /// The configuration so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Builds a local engine and starts its flusher.
    ///
    /// # Errors
    /// [`BuildError::Config`]: knobs that contradict each other or are out of range
    /// ([`Config::validate`]), or a `listen` address that did not resolve; a value from
    /// the environment is named by its variable. [`BuildError::Bind`]: the `listen`
    /// address cannot be bound (in use, not local, no permission), with the `io::Error`
    /// as its [`source`](std::error::Error::source).
    pub fn build(self) -> Result<Engine, BuildError> {
        if let Some(e) = self.listen_error {
            return Err(BuildError::Config(e));
        }
        self.config.validate_traced(&self.env)?;
        let engine = Engine::start(self.config, CellPool::Other);
        engine
            .serve_configured()
            .map_err(|e| BuildError::Bind(e.named(&self.env)))?;
        Ok(engine)
    }

    /// Builds the engine and installs it as the global one the macros use.
    ///
    /// # Errors
    /// [`InstallError::Config`] for a bad knob; [`InstallError::AlreadyInstalled`] if a
    /// global engine exists already (installed before, or started lazily by a macro or
    /// [`global()`](crate::global) call).
    pub fn install(self) -> Result<&'static Engine, InstallError> {
        if let Some(e) = self.listen_error {
            return Err(InstallError::Config(e));
        }
        self.config
            .validate_traced(&self.env)
            .map_err(InstallError::Config)?;
        let mut fresh = None;
        let engine = GLOBAL.get_or_init(|| {
            fresh = Some(());
            Engine::start(self.config, CellPool::Global)
        });
        match fresh {
            Some(()) => {
                engine
                    .serve_configured()
                    .map_err(|e| InstallError::Bind(e.named(&self.env)))?;
                Ok(engine)
            }
            None => Err(InstallError::AlreadyInstalled),
        }
    }
}

/// The `/metrics` endpoint the configuration asks for (`listen`, `HOTMETER_LISTEN`) could
/// not be bound. Its [`source`](std::error::Error::source) is the `io::Error`.
#[derive(Debug)]
#[non_exhaustive]
pub struct BindError {
    /// The knob, or the variable when the address came from the environment
    /// (`HOTMETER_LISTEN`).
    pub knob: String,
    /// The address.
    pub addr: String,
    /// Why it could not be bound.
    pub source: std::io::Error,
}

impl BindError {
    /// Names the variable when the address came from the environment.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    fn named(mut self, origin: &[FromEnv]) -> Self {
        if let Some(o) = origin.iter().rev().find(|o| o.knob == self.knob) {
            self.knob = o.var.into();
        }
        self
    }
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot serve /metrics on {} ({}): {}",
            self.addr, self.knob, self.source
        )
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Why [`EngineBuilder::build`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// A configuration error.
    Config(ConfigError),
    /// The configured endpoint could not be bound.
    Bind(BindError),
}

impl BuildError {
    /// The configuration error, if that is what it is.
    pub fn config(&self) -> Option<&ConfigError> {
        match self {
            BuildError::Config(e) => Some(e),
            BuildError::Bind(_) => None,
        }
    }
}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        BuildError::Config(e)
    }
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Config(e) => e.fmt(f),
            BuildError::Bind(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Config(_) => None,
            BuildError::Bind(e) => Some(&e.source),
        }
    }
}

/// Why [`EngineBuilder::install`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum InstallError {
    /// A configuration error.
    Config(ConfigError),
    /// The configured endpoint could not be bound (the engine is installed all the same,
    /// without it).
    Bind(BindError),
    /// A global engine exists already.
    AlreadyInstalled,
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstallError::Config(e) => e.fmt(f),
            InstallError::Bind(e) => e.fmt(f),
            InstallError::AlreadyInstalled => f.write_str(
                "a global hotmeter engine already exists (install before the first macro call)",
            ),
        }
    }
}

impl std::error::Error for InstallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InstallError::Bind(e) => Some(&e.source),
            _ => None,
        }
    }
}

static GLOBAL: OnceLock<Engine> = OnceLock::new();

/// The process-wide registry the macros record into: the global engine's (see
/// [`Engine::install`](crate::Engine) and [`global_engine`]). It lives here, not in the
/// registry module, so that the registry never names the engine above it.
pub fn global() -> &'static Registry {
    global_engine().registry()
}

/// The global engine the macros record into, started on first use with the defaults and
/// the `HOTMETER_*` environment. A malformed variable is reported on stderr (naming the
/// variable and the accepted form) and the defaults are used instead: a metrics library
/// does not take a program down for its configuration.
pub fn global_engine() -> &'static Engine {
    GLOBAL.get_or_init(|| {
        let mut env = Vec::new();
        let config = match Config::default()
            .apply_env_traced(|k| std::env::var(k).ok(), &mut env)
            .and_then(|c| {
                c.validate_traced(&env)?;
                Ok(c)
            }) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("hotmeter: {e}; using the default configuration");
                env.clear();
                Config::default()
            }
        };
        let engine = Engine::start(config, CellPool::Global);
        if let Err(e) = engine.serve_configured() {
            eprintln!("hotmeter: {}; not serving /metrics", e.named(&env));
        }
        engine
    })
}

impl Engine {
    /// A builder with the default configuration.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Starts an engine whose registry takes its cells from `pool` (the global engine's
    /// own half of the cell space, or the half every other registry shares).
    fn start(config: Config, pool: CellPool) -> Engine {
        let registry = Registry::with_config_in(&config, pool);
        let state = FlushState::new(calibration(), config.overhead_budget);
        let shared = Arc::new(Shared {
            registry,
            config,
            stop: AtomicBool::new(false),
            state: Mutex::new(state),
            on_shutdown: Mutex::new(Vec::new()),
            #[cfg(feature = "http")]
            http: Arc::default(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("hotmeter-flusher".into())
                .spawn(move || run(&shared))
                .expect("spawn the hotmeter flusher thread")
        };
        shared
            .registry
            .pipeline()
            .set_flusher(thread.thread().clone());
        Engine {
            shared,
            thread: Mutex::new(Some(thread)),
            #[cfg(feature = "http")]
            servers: Mutex::new(Vec::new()),
        }
    }

    /// Without the `http` feature there is no endpoint to start (and no `listen` knob).
    #[cfg(not(feature = "http"))]
    #[allow(clippy::unnecessary_wraps, clippy::unused_self)]
    fn serve_configured(&self) -> Result<(), BindError> {
        Ok(())
    }

    /// Starts the endpoint the configuration asks for (`listen`), if any.
    ///
    /// Its failure is a [`BindError`] whose source is the operating system's `io::Error`,
    /// not a [`ServeError`](crate::ServeError): the configuration was validated before
    /// (`Config::validate` bounds the token; the limits are `ServeConfig`'s defaults) and
    /// `listen` holds a resolved address, so only binding or starting the thread can fail
    /// here, and a user asks `source.kind()` (`AddrInUse`?) without a second match.
    #[cfg(feature = "http")]
    fn serve_configured(&self) -> Result<(), BindError> {
        let Some(addr) = self.shared.config.listen else {
            return Ok(());
        };
        self.serve(addr).map(|_| ()).map_err(|e| BindError {
            knob: "listen".into(),
            addr: addr.to_string(),
            source: e.into(),
        })
    }

    /// Serves `GET /metrics` at `addr` (a `SocketAddr`, `"127.0.0.1:9464"`,
    /// `("localhost", 0)`: each address it resolves to is tried in turn, as
    /// `TcpListener::bind` does; port 0 picks a free one) from a background thread,
    /// with the default limits ([`ServeConfig`](crate::export::http::ServeConfig)) and the
    /// configured token; returns the bound address. The format follows the request's
    /// `Accept` header, `Accept-Encoding: gzip` is honoured. The endpoint stops with the
    /// engine ([`Engine::shutdown`]).
    ///
    /// # Errors
    /// A [`ServeError`](crate::ServeError): [`Resolve`](crate::ServeError::Resolve) or
    /// [`NoAddress`](crate::ServeError::NoAddress) when the address does not resolve;
    /// [`Bind`](crate::ServeError::Bind) when no address it resolves to can be bound (in
    /// use, not local, no permission), with the last address and its `io::Error`;
    /// [`Io`](crate::ServeError::Io) when the bound socket, its runtime or its thread cannot
    /// be set up.
    ///
    /// Feature `http` (on by default).
    #[cfg(feature = "http")]
    pub fn serve(&self, addr: impl ToSocketAddrs) -> Result<SocketAddr, crate::ServeError> {
        let config = crate::export::http::ServeConfig {
            token: self
                .shared
                .config
                .token
                .as_ref()
                .map(|t| t.expose().to_string()),
            ..Default::default()
        };
        self.serve_with(addr, config)
    }

    /// The addresses this engine's endpoints listen on (after port 0 was resolved), in the
    /// order they were started: how to find the endpoint `HOTMETER_LISTEN=127.0.0.1:0` got.
    /// Feature `http`.
    #[cfg(feature = "http")]
    pub fn endpoints(&self) -> Vec<SocketAddr> {
        self.servers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|s| s.local_addr())
            .collect()
    }

    /// [`Engine::serve`] with explicit limits and options.
    ///
    /// # Errors
    /// What [`Engine::serve`] answers, and before any address is tried, a knob of `config`
    /// out of range: [`ZeroLimit`](crate::ServeError::ZeroLimit) or
    /// [`ZeroTimeout`](crate::ServeError::ZeroTimeout) naming it, or
    /// [`TokenTooLong`](crate::ServeError::TokenTooLong).
    ///
    /// Feature `http`.
    #[cfg(feature = "http")]
    pub fn serve_with(
        &self,
        addr: impl ToSocketAddrs,
        config: crate::export::http::ServeConfig,
    ) -> Result<SocketAddr, crate::ServeError> {
        use crate::ServeError;
        // A bad knob fails every address alike: say so before resolving any.
        config.check()?;
        let mut last = ServeError::NoAddress;
        let mut server = None;
        for a in addr.to_socket_addrs().map_err(ServeError::Resolve)? {
            let shared = Arc::clone(&self.shared);
            match crate::export::http::serve(
                a,
                config.clone(),
                Arc::clone(&self.shared.http),
                Box::new(move |format| shared.render(format)),
            ) {
                Ok(s) => {
                    server = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let server = server.ok_or(last)?;
        let bound = server.local_addr();
        self.servers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(server);
        Ok(bound)
    }

    /// The engine's shared state, for the layers that outlive a borrow of it.
    #[cfg(feature = "metrics")]
    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// This engine's registry (handles for dynamic names, snapshots).
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Drains every ring now, on the calling thread, and publishes the result. Records
    /// pushed before the call are flushed when it returns.
    pub fn flush(&self) {
        self.shared.flush();
    }

    /// Every series and the engine's meta-metrics in an exposition format, for mounting in
    /// your own HTTP server (answer with [`Format::content_type`](crate::Format::content_type); pick the format with
    /// [`Format::from_accept`](crate::Format::from_accept)). Reads exact values and the last published estimates; never
    /// holds a lock a recording thread or the flusher needs.
    ///
    /// # Errors
    /// Only if an encoder fails; serve a 500 with no partial body then.
    pub fn render(&self, format: crate::Format) -> Result<String, std::fmt::Error> {
        self.shared.render(format)
    }

    /// A prometheus-client collector over this engine, to register in a
    /// `prometheus_client::registry::Registry` of your own (the version re-exported as
    /// [`hotmeter::prometheus_client`](crate::prometheus_client)). Feature
    /// `prometheus-client`.
    #[cfg(feature = "prometheus-client")]
    pub fn collector(&self) -> crate::EngineCollector {
        crate::EngineCollector {
            shared: Arc::<Shared>::clone(&self.shared),
        }
    }

    /// The last published sampling report (estimates and pipeline meta-metrics).
    pub fn published(&self) -> Arc<Published> {
        self.shared.registry.pipeline().published()
    }

    /// Registers `f` to run once, at the next [`Engine::shutdown`] (or drop), after the
    /// endpoints stopped and before the pipeline closes, so what `f` records is still
    /// flushed. Callbacks run in the order registered, on the thread that shuts down; one
    /// registered after a shutdown runs at the next call (the drop's, at the latest). The
    /// layers above the core use it (the `tracing` writer drains its queue here).
    pub fn on_shutdown(&self, f: impl FnOnce() + Send + 'static) {
        self.shared
            .on_shutdown
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(f));
    }

    /// Stops the flusher after a final drain: every record pushed before this is called is
    /// flushed when it returns, and none is left in a thread's ring (a push racing with the
    /// call is flushed too, or counted as below). Idempotent; callable from any thread. Recording keeps working afterwards
    /// (exact counts and sums stay exact), but sampled records are then counted as
    /// `dropped_full` instead of pushed, and critical ones go to the critical lane, which
    /// [`Engine::flush`] still drains. Before closing, it stops the endpoints and runs the
    /// [`Engine::on_shutdown`] callbacks.
    pub fn shutdown(&self) {
        // Endpoints first: each finishes its exchanges in flight and joins its thread.
        #[cfg(feature = "http")]
        {
            let servers =
                std::mem::take(&mut *self.servers.lock().unwrap_or_else(PoisonError::into_inner));
            for s in servers {
                s.stop();
            }
        }
        // Then the callbacks of `on_shutdown`, outside the lock (one may register another).
        let callbacks = std::mem::take(
            &mut *self
                .shared
                .on_shutdown
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for f in callbacks {
            f();
        }
        // Closed before the last drains, and only once no push is in progress: a record
        // pushed after the final drain would sit in a ring forever. From here on, sampled
        // records count as dropped and critical ones go to the lane. The flusher still runs
        // meanwhile, so a push blocked on a full ring (`Overflow::Block`) gets its drain.
        self.shared.registry.pipeline().close();
        // Release: pairs with the Acquire load in `run`, so the flusher sees the request.
        self.shared.stop.store(true, Ordering::Release);
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            handle.thread().unpark();
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        // The final drain, on this thread: covers records pushed while the flusher was
        // finishing its last pass.
        self.shared.flush();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The flusher thread: a flush every interval, or earlier when a producer passes its
/// ring's high-water mark and unparks us.
fn run(shared: &Shared) {
    let interval = shared.config.flush_interval;
    // Early drains are rate-limited to one a millisecond: past that, the controller
    // lowering the sample rate is cheaper than the flusher taking a core.
    let min_gap = Duration::from_millis(1);
    let mut next = Instant::now() + interval;
    loop {
        let now = Instant::now();
        if now < next {
            std::thread::park_timeout(next - now);
        }
        // Acquire: pairs with the Release store in `shutdown`.
        if shared.stop.load(Ordering::Acquire) {
            shared.flush();
            return;
        }
        let now = Instant::now();
        if now >= next {
            shared.flush();
            next += interval;
            if next <= now {
                next = now + interval;
            }
        } else {
            // Woken early by a ring past its high-water mark: drain only.
            shared.state().drain(shared.registry.pipeline());
            // A sleep, not a park: producers keep unparking us while their rings fill.
            std::thread::sleep(min_gap);
        }
    }
}

/// The calibrated recording costs, measured once per process.
fn calibration() -> (f64, f64) {
    static COSTS: OnceLock<(f64, f64)> = OnceLock::new();
    *COSTS.get_or_init(calibrate)
}

/// Measures what a sampled-layer call costs on this machine: a call that is not sampled,
/// and one that is (gap draw, clock read, push), each in ns. Uses two private registries
/// whose records are never exported; their rings are freed afterwards.
fn calibrate() -> (f64, f64) {
    const N: u32 = 200_000;
    let config = Config {
        sample_rate: 1.0 / 1024.0,
        min_sample_rate: 1.0 / 1024.0,
        max_sample_rate: 1.0,
        ring_capacity: 1 << 15,
        ..Config::default()
    };
    let rare_registry = Registry::with_config(&config);
    let every_registry = Registry::with_config(&Config {
        sample_rate: 1.0,
        ..config
    });
    rare_registry.pipeline().allow_rings();
    every_registry.pipeline().allow_rings();
    let (Ok(rare), Ok(every)) = (
        rare_registry.sampled("calibration", &[]),
        every_registry.sampled("calibration", &[]),
    ) else {
        return (0.0, 0.0);
    };
    let time = |s: crate::Sampled, n: u32| {
        // Warm up first: the first calls register the thread's arena chunk and ring.
        for i in 0..n / 10 {
            s.record(std::hint::black_box(i as f64));
        }
        let t = Instant::now();
        for i in 0..n {
            s.record(std::hint::black_box(i as f64));
        }
        t.elapsed().as_nanos() as f64 / n as f64
    };
    let costs = (time(rare, N), time(every, N / 10));
    // Free both ends of this thread's rings for the two private pipelines.
    for registry in [&rare_registry, &every_registry] {
        registry.pipeline().close();
        drop(registry.pipeline().take_new_rings());
    }
    crate::sample::sampled::forget_closed();
    costs
}
