//! Engine configuration: a builder with every knob, and `HOTMETER_*` environment overrides
//! for the same knobs. A malformed value is an error naming the variable and the accepted
//! form.

use std::fmt;
#[cfg(feature = "http")]
use std::net::SocketAddr;
use std::time::Duration;

use crate::sample::ring::Overflow;
use crate::stats::{
    DEFAULT_BASE_RATE, DEFAULT_MAX_RATE, DEFAULT_MIN_RATE, DEFAULT_OVERHEAD_BUDGET, rate_to_k,
};

/// Default cap on series per metric name.
pub const DEFAULT_SERIES_CAP: usize = 1000;

/// Default cap on series per registry, every metric and kind together (see
/// [`Registry::with_limits`](crate::Registry::with_limits)).
pub const DEFAULT_MAX_SERIES: usize = 100_000;

/// The conventional address of the endpoint (`HOTMETER_LISTEN=default`, the demo's default):
/// loopback only, so nothing is exposed beyond the machine unless asked for.
#[cfg(feature = "http")]
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";

/// Largest request head (request line and headers) the endpoint reads; a longer one is
/// refused by the HTTP parser.
#[cfg(feature = "http")]
pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;

/// Longest bearer token accepted: what a request head can carry beside the request line and
/// the other headers a scraper sends (2 KiB is left for them; Prometheus sends ~400 bytes).
#[cfg(feature = "http")]
pub const MAX_TOKEN_BYTES: usize = MAX_REQUEST_HEAD_BYTES - 2 * 1024;

/// Every knob of an [`Engine`](crate::Engine). Build one with
/// [`Engine::builder`](crate::Engine::builder) or [`Config::default`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Starting sample probability, rounded to the nearest power of two (`HOTMETER_SAMPLE_RATE`,
    /// default 0.03 → 1/32).
    pub sample_rate: f64,
    /// Lowest probability the controller may go down to (`HOTMETER_MIN_SAMPLE_RATE`, 0.01).
    pub min_sample_rate: f64,
    /// Highest probability the controller may go up to (`HOTMETER_MAX_SAMPLE_RATE`, 0.15).
    pub max_sample_rate: f64,
    /// Whether the flusher adapts the rate to the overhead budget and ring pressure
    /// (`HOTMETER_ADAPTIVE`, true).
    pub adaptive: bool,
    /// CPU the sampled layer may cost, as a fraction of one core: records pushed times
    /// their recording cost plus the flusher's CPU (`HOTMETER_OVERHEAD_BUDGET`, 0.01 = 1%).
    /// The adaptive controller picks each family's rate to stay within it, inside
    /// `[min_sample_rate, max_sample_rate]`. In `(0, 1]`.
    pub overhead_budget: f64,
    /// Records per thread ring, rounded up to a power of two (`HOTMETER_RING_CAPACITY`, 1024).
    /// With the default overflow policy the last eighth is kept for critical records.
    pub ring_capacity: usize,
    /// Flush interval (`HOTMETER_FLUSH_INTERVAL`, 1 s; accepts `500ms`, `2s`, `1.5s`).
    pub flush_interval: Duration,
    /// What a full ring does (`HOTMETER_OVERFLOW`: `drop_newest` (default), `drop_oldest`,
    /// `block:<duration>`).
    pub overflow: Overflow,
    /// Series per metric before label sets fold into the overflow series
    /// (`HOTMETER_SERIES_CAP`, 1000).
    pub series_cap: usize,
    /// Series in the whole registry, every metric and kind together (`HOTMETER_MAX_SERIES`,
    /// 100,000). Past it new label sets fold into their metric's overflow series and new
    /// metrics are refused, counted in `hotmeter_series_limited_total`.
    pub max_series: usize,
    /// Memory the shared critical lane may grow to, bytes (`HOTMETER_CRITICAL_LANE_BYTES`,
    /// 64 MiB: about 1.6 million records; accepts `65536`, `512KiB`, `64MiB`, `1GiB`). The
    /// lane grows in blocks of 31 records as critical events overflow their rings and
    /// shrinks as the flusher drains it; past the cap a critical event is lost, counted
    /// and reported.
    pub critical_lane_bytes: usize,
    /// Seed for the samplers' random gaps (`HOTMETER_SEED`; default: from the clock).
    pub seed: u64,
    /// Whether a producer whose ring passes 3/4 full wakes the flusher for an early drain
    /// (`HOTMETER_WAKE_ON_HIGH_WATER`, true). Off, rings are drained only every
    /// `flush_interval` (or by `Engine::flush`): cheaper, more drops under bursts.
    pub wake_on_high_water: bool,
    /// Sliding window the estimated quantiles cover (`HOTMETER_QUANTILE_WINDOW`, 10 min, as
    /// Prometheus client summaries): older records age out in five steps, so a quantile
    /// reflects the last 8–10 minutes. Exact counts and sums, the Horvitz–Thompson totals
    /// and the top keys stay cumulative.
    pub quantile_window: Duration,
    /// Where to serve `/metrics` (`HOTMETER_LISTEN`, e.g. `127.0.0.1:9464`; default none):
    /// [`EngineBuilder::build`](crate::EngineBuilder::build) and `install` start the
    /// endpoint, and the lazily started global engine does too. Feature `http` (without
    /// it the knob does not exist, and `HOTMETER_LISTEN` is an error naming the feature).
    #[cfg(feature = "http")]
    pub listen: Option<SocketAddr>,
    /// Bearer token the endpoint requires (`HOTMETER_TOKEN`; default none: no auth).
    /// Feature `http`, as `listen`.
    #[cfg(feature = "http")]
    pub token: Option<Secret>,
    /// Labels added to every exported series, user and `hotmeter_*` families alike, in both
    /// formats and through the prometheus-client collector (`HOTMETER_GLOBAL_LABELS`, e.g.
    /// `service=api,region=eu`; default none). A series that has a label of the same name
    /// keeps its own value. Names follow the label-name rules, are distinct, and are none
    /// of `le`, `quantile`, `for_quantile`, `key` (the exported buckets and estimates use
    /// them) nor start with `hotmeter_`; values are not empty.
    pub global_labels: Vec<(String, String)>,
    /// Which `hotmeter_*` meta-metric families are exported (`HOTMETER_META_METRICS`:
    /// `all` (default), `essential` or `none`); see [`MetaMetrics`].
    pub meta_metrics: MetaMetrics,
}

/// Which `hotmeter_*` families the exposition carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MetaMetrics {
    /// Every one (the default).
    #[default]
    All,
    /// Those that say whether the exported numbers can be trusted, and what hotmeter
    /// costs: [`ESSENTIAL_META_METRICS`] (data lost or folded, the sample rates the
    /// estimates rest on, the flusher's CPU).
    Essential,
    /// None: only the user's families.
    None,
}

/// The `hotmeter_*` families [`MetaMetrics::Essential`] keeps (family names; counters
/// are exposed with `_total`): what was lost (`dropped_records`, `lane_lost`,
/// `rejected_observations`, `registration_errors`), what was folded into overflow series
/// (`series_overflow`, `series_limited`), the rate each sampled metric's estimates rest on
/// (`sample_rate`), and the CPU the flusher takes from the application
/// (`flusher_cpu_seconds`). The rest (ring fill, flush counts and durations, arenas,
/// the endpoint's `hotmeter_http_*`) is for tuning and debugging hotmeter itself.
pub const ESSENTIAL_META_METRICS: [&str; 8] = [
    "hotmeter_dropped_records",
    "hotmeter_lane_lost",
    "hotmeter_rejected_observations",
    "hotmeter_registration_errors",
    "hotmeter_series_overflow",
    "hotmeter_series_limited",
    "hotmeter_sample_rate",
    "hotmeter_flusher_cpu_seconds",
];

/// A secret string (the endpoint's token): `Debug` prints `"***"` so configurations can be
/// logged.
#[cfg(feature = "http")]
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

#[cfg(feature = "http")]
impl Secret {
    /// A secret holding `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself (for the code that checks it; never log it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(feature = "http")]
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sample_rate: DEFAULT_BASE_RATE,
            min_sample_rate: DEFAULT_MIN_RATE,
            max_sample_rate: DEFAULT_MAX_RATE,
            adaptive: true,
            overhead_budget: DEFAULT_OVERHEAD_BUDGET,
            ring_capacity: 1024,
            flush_interval: Duration::from_secs(1),
            quantile_window: Duration::from_secs(600),
            overflow: Overflow::DropNewest,
            series_cap: DEFAULT_SERIES_CAP,
            max_series: DEFAULT_MAX_SERIES,
            critical_lane_bytes: crate::sample::lane::DEFAULT_MAX_BYTES,
            wake_on_high_water: true,
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x5eed, |d| d.as_nanos() as u64),
            #[cfg(feature = "http")]
            listen: None,
            #[cfg(feature = "http")]
            token: None,
            global_labels: Vec::new(),
            meta_metrics: MetaMetrics::All,
        }
    }
}

/// A configuration value that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The knob (environment variable name when it came from the environment).
    pub knob: String,
    /// The value given.
    pub value: String,
    /// The accepted form.
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} is not valid: expected {}",
            self.knob, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

fn err(knob: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError {
        knob: knob.into(),
        value: value.into(),
        expected,
    }
}

/// A knob whose value came from the environment: the variable and the text it held (`***`
/// for the token), so that a check failing later names what the user wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FromEnv {
    /// The builder method's name (as in [`ConfigError::knob`] from `validate`).
    pub(crate) knob: &'static str,
    /// The variable.
    pub(crate) var: &'static str,
    /// Its text.
    pub(crate) raw: String,
}

/// `e` as the environment caused it: when its knob's value came from a variable in
/// `origin`, the error names that variable and its text instead.
pub(crate) fn blame(e: ConfigError, origin: &[FromEnv]) -> ConfigError {
    match origin.iter().rev().find(|o| o.knob == e.knob) {
        Some(o) => ConfigError {
            knob: o.var.into(),
            value: o.raw.clone(),
            expected: e.expected,
        },
        None => e,
    }
}

/// Shortest and longest flush interval: below 1 ms the flusher burns a core while idle;
/// above an hour nothing is exported in practice, and the bound keeps the flusher's clock
/// arithmetic (deadline = now + interval) far from overflow.
pub const FLUSH_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(1), Duration::from_secs(3600));
const FLUSH_INTERVAL_FORM: &str = "a duration from 1ms to 1h, such as 250ms, 2s, 1.5s or 1m";
/// Kept in step with `MAX_TOKEN_BYTES` by the test `token_form_states_the_limit`.
#[cfg(feature = "http")]
const TOKEN_FORM: &str = "a non-empty token of printable ASCII without spaces, at most 14336 \
     bytes (what a request header can carry)";

/// Largest ring: 2^24 records (512 MiB per thread) is far past any sane setting, and keeps
/// the power-of-two rounding and the allocation from failing on a recording path.
const MAX_RING_CAPACITY: usize = 1 << 24;
/// Largest critical-lane cap: 1 TiB (a cap, not an allocation: the lane grows on demand).
const MAX_LANE_BYTES: usize = 1 << 40;
const LANE_BYTES_FORM: &str =
    "a size in bytes from 41 (one record) to 1TiB, e.g. 67108864, 512KiB, 64MiB or 1GiB";

/// What `HOTMETER_LISTEN` and `HOTMETER_TOKEN` get in a build without the endpoint.
#[cfg(not(feature = "http"))]
const NO_HTTP_FORM: &str = "nothing: this build of hotmeter has no /metrics endpoint (enable \
     its `http` cargo feature, on by default, or mount `Engine::render` in your own server)";

const GLOBAL_LABELS_FORM: &str = "comma-separated name=value pairs such as service=api,region=eu";
const LABEL_NAME_FORM: &str =
    "label names matching [a-zA-Z_][a-zA-Z0-9_]*, not starting with      `__` or `hotmeter_`";
const LABEL_RESERVED_FORM: &str = "label names other than le, quantile, for_quantile and key      (the exported buckets and estimates use them)";
const LABEL_DUPLICATE_FORM: &str = "each label name once";
const LABEL_VALUE_FORM: &str = "a non-empty value for every label";
const META_FORM: &str = "all, essential or none";

/// The rule `labels` (global labels) break, as the accepted form.
fn check_global_labels(labels: &[(String, String)]) -> Result<(), &'static str> {
    for (i, (k, v)) in labels.iter().enumerate() {
        if crate::names::check_label_name(k).is_err()
            || k.starts_with(crate::names::RESERVED_PREFIX)
        {
            return Err(LABEL_NAME_FORM);
        }
        if ["le", "quantile", "for_quantile", "key"].contains(&k.as_str()) {
            return Err(LABEL_RESERVED_FORM);
        }
        if v.is_empty() {
            return Err(LABEL_VALUE_FORM);
        }
        if labels[..i].iter().any(|(a, _)| a == k) {
            return Err(LABEL_DUPLICATE_FORM);
        }
    }
    Ok(())
}

/// Parses `service=api,region=eu` (spaces around names and values trimmed; empty: none).
fn parse_global_labels(knob: &str, v: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, val) = pair
            .split_once('=')
            .ok_or_else(|| err(knob, v, GLOBAL_LABELS_FORM))?;
        out.push((k.trim().to_string(), val.trim().to_string()));
    }
    check_global_labels(&out).map_err(|form| err(knob, v, form))?;
    Ok(out)
}

fn parse_meta(knob: &str, v: &str) -> Result<MetaMetrics, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "all" => Ok(MetaMetrics::All),
        "essential" => Ok(MetaMetrics::Essential),
        "none" => Ok(MetaMetrics::None),
        _ => Err(err(knob, v, META_FORM)),
    }
}

const RATE_FORM: &str = "a probability in (0, 1], e.g. 0.03";
const BUDGET_FORM: &str = "a fraction of one core in (0, 1], e.g. 0.01 for 1%";

fn parse_rate(knob: &str, v: &str) -> Result<f64, ConfigError> {
    match v.trim().parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1.0 => Ok(r),
        _ => Err(err(knob, v, RATE_FORM)),
    }
}

fn parse_budget(knob: &str, v: &str) -> Result<f64, ConfigError> {
    match v.trim().parse::<f64>() {
        Ok(b) if b > 0.0 && b <= 1.0 => Ok(b),
        _ => Err(err(knob, v, BUDGET_FORM)),
    }
}

fn parse_bool(knob: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(err(knob, v, "true/false (also 1/0, yes/no, on/off)")),
    }
}

/// Parses a byte size: a bare number, or one with a `KiB`, `MiB` or `GiB` suffix.
fn parse_bytes(knob: &str, v: &str) -> Result<usize, ConfigError> {
    let t = v.trim();
    let (num, shift) = [("KiB", 10), ("MiB", 20), ("GiB", 30)]
        .into_iter()
        .find_map(|(suffix, shift)| t.strip_suffix(suffix).map(|n| (n, shift)))
        .unwrap_or((t, 0));
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| err(knob, v, LANE_BYTES_FORM))
}

fn parse_count(knob: &str, v: &str, min: usize) -> Result<usize, ConfigError> {
    match v.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(err(knob, v, "a positive integer")),
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `1m`, `1h`, or a bare number of seconds.
pub fn parse_duration(knob: &str, v: &str) -> Result<Duration, ConfigError> {
    const FORM: &str = "a duration such as 250ms, 2s, 1.5s or 1m";
    let t = v.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 && x * scale < 1e9 => {
            Ok(Duration::from_secs_f64(x * scale))
        }
        _ => Err(err(knob, v, FORM)),
    }
}

fn parse_overflow(knob: &str, v: &str) -> Result<Overflow, ConfigError> {
    const FORM: &str = "drop_newest, drop_oldest, or block:<duration> (e.g. block:5ms)";
    let t = v.trim().to_ascii_lowercase();
    match t.as_str() {
        "drop_newest" => Ok(Overflow::DropNewest),
        "drop_oldest" => Ok(Overflow::DropOldest),
        _ => match t.strip_prefix("block:") {
            Some(d) => Ok(Overflow::Block {
                timeout: parse_duration(knob, d).map_err(|_| err(knob, v, FORM))?,
            }),
            None => Err(err(knob, v, FORM)),
        },
    }
}

impl Config {
    /// The sampling pipeline's view of this configuration.
    pub(crate) fn sampling(&self) -> crate::sample::pipeline::SamplingConfig {
        // `validate` has checked every rate is in (0, 1]; 63 is where `rate_to_k` saturates.
        let k = |rate: f64| rate_to_k(rate).unwrap_or(crate::stats::MAX_K);
        let min_k = k(self.max_sample_rate);
        let max_k = k(self.min_sample_rate).max(min_k);
        crate::sample::pipeline::SamplingConfig {
            initial_k: k(self.sample_rate).clamp(min_k, max_k),
            min_k,
            max_k,
            adaptive: self.adaptive,
            ring_capacity: self.ring_capacity,
            overflow: self.overflow,
            lane_bytes: self.critical_lane_bytes,
            seed: self.seed,
            wake_on_high_water: self.wake_on_high_water,
            quantile_window: self.quantile_window,
        }
    }

    /// Applies the `HOTMETER_*` variables found by `get` (the environment, or a map in tests).
    ///
    /// # Errors
    /// The first malformed variable, naming it and the accepted form.
    pub fn apply_env_from(self, get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        self.apply_env_traced(get, &mut Vec::new())
    }

    /// [`Config::apply_env_from`], noting in `origin` each knob a variable set. Every value
    /// is checked on its own here (a variable that parses but is out of range is an error
    /// naming it); checks between knobs, and binding `listen`, come later, with `origin`
    /// to name the variable then ([`blame`]).
    pub(crate) fn apply_env_traced(
        mut self,
        get: impl Fn(&str) -> Option<String>,
        origin: &mut Vec<FromEnv>,
    ) -> Result<Self, ConfigError> {
        const VARS: [(&str, &str); 18] = [
            ("HOTMETER_SAMPLE_RATE", "sample_rate"),
            ("HOTMETER_MIN_SAMPLE_RATE", "min_sample_rate"),
            ("HOTMETER_MAX_SAMPLE_RATE", "max_sample_rate"),
            ("HOTMETER_ADAPTIVE", "adaptive"),
            ("HOTMETER_RING_CAPACITY", "ring_capacity"),
            ("HOTMETER_FLUSH_INTERVAL", "flush_interval"),
            ("HOTMETER_QUANTILE_WINDOW", "quantile_window"),
            ("HOTMETER_OVERFLOW", "overflow"),
            ("HOTMETER_SERIES_CAP", "series_cap"),
            ("HOTMETER_MAX_SERIES", "max_series"),
            ("HOTMETER_CRITICAL_LANE_BYTES", "critical_lane_bytes"),
            ("HOTMETER_WAKE_ON_HIGH_WATER", "wake_on_high_water"),
            ("HOTMETER_SEED", "seed"),
            ("HOTMETER_LISTEN", "listen"),
            ("HOTMETER_TOKEN", "token"),
            ("HOTMETER_OVERHEAD_BUDGET", "overhead_budget"),
            ("HOTMETER_GLOBAL_LABELS", "global_labels"),
            ("HOTMETER_META_METRICS", "meta_metrics"),
        ];
        self = self.apply_env_values(&get)?;
        for (var, knob) in VARS {
            if let Some(v) = get(var) {
                let raw = if knob == "token" { "***".into() } else { v };
                origin.push(FromEnv { knob, var, raw });
                self.check(knob).map_err(|e| blame(e, origin))?;
            }
        }
        Ok(self)
    }

    /// Every variable's value on its own, in a fixed order (the first bad one is the
    /// error).
    fn apply_env_values(
        mut self,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        self.apply_env_sampling(&get)?;
        self.apply_env_pipeline(&get)?;
        self.apply_env_series(&get)?;
        self.apply_env_endpoint(&get)?;
        Ok(self)
    }

    /// The sampling knobs: rates, adaptation, overhead budget.
    fn apply_env_sampling(
        &mut self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = get("HOTMETER_SAMPLE_RATE") {
            self.sample_rate = parse_rate("HOTMETER_SAMPLE_RATE", &v)?;
        }
        if let Some(v) = get("HOTMETER_MIN_SAMPLE_RATE") {
            self.min_sample_rate = parse_rate("HOTMETER_MIN_SAMPLE_RATE", &v)?;
        }
        if let Some(v) = get("HOTMETER_MAX_SAMPLE_RATE") {
            self.max_sample_rate = parse_rate("HOTMETER_MAX_SAMPLE_RATE", &v)?;
        }
        if let Some(v) = get("HOTMETER_ADAPTIVE") {
            self.adaptive = parse_bool("HOTMETER_ADAPTIVE", &v)?;
        }
        if let Some(v) = get("HOTMETER_OVERHEAD_BUDGET") {
            self.overhead_budget = parse_budget("HOTMETER_OVERHEAD_BUDGET", &v)?;
        }
        Ok(())
    }

    /// The pipeline's knobs: rings, flushing, the quantile window, the overflow policy.
    fn apply_env_pipeline(
        &mut self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = get("HOTMETER_RING_CAPACITY") {
            self.ring_capacity = parse_count("HOTMETER_RING_CAPACITY", &v, 2)?;
        }
        if let Some(v) = get("HOTMETER_FLUSH_INTERVAL") {
            self.flush_interval = parse_duration("HOTMETER_FLUSH_INTERVAL", &v)?;
        }
        if let Some(v) = get("HOTMETER_QUANTILE_WINDOW") {
            self.quantile_window = parse_duration("HOTMETER_QUANTILE_WINDOW", &v)?;
        }
        if let Some(v) = get("HOTMETER_OVERFLOW") {
            self.overflow = parse_overflow("HOTMETER_OVERFLOW", &v)?;
        }
        Ok(())
    }

    /// The series and lane limits, global labels, meta-metrics and the seed.
    fn apply_env_series(
        &mut self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = get("HOTMETER_SERIES_CAP") {
            self.series_cap = parse_count("HOTMETER_SERIES_CAP", &v, 1)?;
        }
        if let Some(v) = get("HOTMETER_MAX_SERIES") {
            self.max_series = parse_count("HOTMETER_MAX_SERIES", &v, 1)?;
        }
        if let Some(v) = get("HOTMETER_CRITICAL_LANE_BYTES") {
            self.critical_lane_bytes = parse_bytes("HOTMETER_CRITICAL_LANE_BYTES", &v)?;
        }
        if let Some(v) = get("HOTMETER_WAKE_ON_HIGH_WATER") {
            self.wake_on_high_water = parse_bool("HOTMETER_WAKE_ON_HIGH_WATER", &v)?;
        }
        if let Some(v) = get("HOTMETER_GLOBAL_LABELS") {
            self.global_labels = parse_global_labels("HOTMETER_GLOBAL_LABELS", &v)?;
        }
        if let Some(v) = get("HOTMETER_META_METRICS") {
            self.meta_metrics = parse_meta("HOTMETER_META_METRICS", &v)?;
        }
        if let Some(v) = get("HOTMETER_SEED") {
            self.seed = v
                .trim()
                .parse()
                .map_err(|_| err("HOTMETER_SEED", &v, "an unsigned 64-bit integer"))?;
        }
        Ok(())
    }

    /// The endpoint's knobs; without the `http` feature, either variable is an error.
    #[cfg(not(feature = "http"))]
    fn apply_env_endpoint(
        &mut self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for var in ["HOTMETER_LISTEN", "HOTMETER_TOKEN"] {
            if let Some(v) = get(var) {
                let v = if var == "HOTMETER_TOKEN" { "***" } else { &v };
                return Err(err(var, v, NO_HTTP_FORM));
            }
        }
        Ok(())
    }

    /// The endpoint's knobs: the address (`default` for 127.0.0.1:9464) and the token.
    #[cfg(feature = "http")]
    fn apply_env_endpoint(
        &mut self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = get("HOTMETER_LISTEN") {
            let v = v.trim();
            let addr = if v == "default" { DEFAULT_ADDR } else { v };
            self.listen = Some(addr.parse().map_err(|_| {
                err(
                    "HOTMETER_LISTEN",
                    v,
                    "an address such as 127.0.0.1:9464, or `default` (127.0.0.1:9464)",
                )
            })?);
        }
        if let Some(v) = get("HOTMETER_TOKEN") {
            let t = v.trim();
            if !token_ok(t) {
                return Err(err("HOTMETER_TOKEN", "***", TOKEN_FORM));
            }
            self.token = Some(Secret(t.to_string()));
        }
        Ok(())
    }

    /// Applies the process environment's `HOTMETER_*` variables.
    ///
    /// # Errors
    /// As [`Config::apply_env_from`].
    pub fn apply_env(self) -> Result<Self, ConfigError> {
        self.apply_env_from(|k| std::env::var(k).ok())
    }

    /// Checks every knob, and the knobs against each other.
    ///
    /// # Errors
    /// A rate or an overhead budget outside (0, 1], `min_sample_rate > max_sample_rate`, a
    /// flush interval outside 1 ms ..= 1 h, a zero quantile window, a ring or lane cap out
    /// of range, a token that is empty, not printable ASCII, or longer than a request header
    /// can carry (`hotmeter::export::http::MAX_TOKEN_BYTES`, feature `http`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_traced(&[])
    }

    /// [`Config::validate`], naming the variable for values that came from the environment.
    pub(crate) fn validate_traced(&self, origin: &[FromEnv]) -> Result<(), ConfigError> {
        for knob in [
            "sample_rate",
            "min_sample_rate",
            "max_sample_rate",
            "flush_interval",
            "quantile_window",
            "ring_capacity",
            "critical_lane_bytes",
            "token",
            "overhead_budget",
            "global_labels",
        ] {
            self.check(knob).map_err(|e| blame(e, origin))?;
        }
        if self.min_sample_rate > self.max_sample_rate {
            // Blame the one the user set in the environment, if only one of them was.
            let from_env = |k: &str| origin.iter().any(|o| o.knob == k);
            let (knob, value) = if from_env("max_sample_rate") && !from_env("min_sample_rate") {
                ("max_sample_rate", self.max_sample_rate)
            } else {
                ("min_sample_rate", self.min_sample_rate)
            };
            return Err(blame(
                err(
                    knob,
                    &value.to_string(),
                    "min_sample_rate <= max_sample_rate",
                ),
                origin,
            ));
        }
        Ok(())
    }

    /// Checks one knob on its own (knobs without a check pass).
    fn check(&self, knob: &str) -> Result<(), ConfigError> {
        let rate = |r: f64| {
            if r > 0.0 && r <= 1.0 {
                Ok(())
            } else {
                Err(err(knob, &r.to_string(), RATE_FORM))
            }
        };
        match knob {
            "sample_rate" => rate(self.sample_rate),
            "overhead_budget" if !(self.overhead_budget > 0.0 && self.overhead_budget <= 1.0) => {
                Err(err(knob, &self.overhead_budget.to_string(), BUDGET_FORM))
            }
            "min_sample_rate" => rate(self.min_sample_rate),
            "max_sample_rate" => rate(self.max_sample_rate),
            "flush_interval" => {
                let (lo, hi) = FLUSH_INTERVAL_RANGE;
                if (lo..=hi).contains(&self.flush_interval) {
                    Ok(())
                } else {
                    Err(err(
                        knob,
                        &format!("{:?}", self.flush_interval),
                        FLUSH_INTERVAL_FORM,
                    ))
                }
            }
            "global_labels" => check_global_labels(&self.global_labels).map_err(|form| {
                let shown: Vec<String> = self
                    .global_labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                err(knob, &shown.join(","), form)
            }),
            "quantile_window" if self.quantile_window.is_zero() => {
                Err(err(knob, "0", "a non-zero duration"))
            }
            "ring_capacity" if !(2..=MAX_RING_CAPACITY).contains(&self.ring_capacity) => Err(err(
                knob,
                &self.ring_capacity.to_string(),
                "between 2 and 16777216 records",
            )),
            "critical_lane_bytes"
                if !(crate::sample::lane::BYTES_PER_RECORD..=MAX_LANE_BYTES)
                    .contains(&self.critical_lane_bytes) =>
            {
                Err(err(
                    knob,
                    &self.critical_lane_bytes.to_string(),
                    LANE_BYTES_FORM,
                ))
            }
            #[cfg(feature = "http")]
            "token" => match &self.token {
                Some(Secret(t)) if !token_ok(t) => Err(err(knob, "***", TOKEN_FORM)),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// A token the endpoint can compare: non-empty printable ASCII without spaces, short enough
/// for a request header.
#[cfg(feature = "http")]
fn token_ok(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_TOKEN_BYTES && t.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_overrides_every_knob() {
        let c = Config::default()
            .apply_env_from(env(&[
                ("HOTMETER_SAMPLE_RATE", "0.5"),
                ("HOTMETER_MIN_SAMPLE_RATE", "0.25"),
                ("HOTMETER_MAX_SAMPLE_RATE", "1"),
                ("HOTMETER_ADAPTIVE", "off"),
                ("HOTMETER_RING_CAPACITY", "64"),
                ("HOTMETER_FLUSH_INTERVAL", "250ms"),
                ("HOTMETER_OVERFLOW", "block:5ms"),
                ("HOTMETER_SERIES_CAP", "7"),
                ("HOTMETER_CRITICAL_LANE_BYTES", "512KiB"),
                ("HOTMETER_SEED", "42"),
                ("HOTMETER_WAKE_ON_HIGH_WATER", "no"),
                #[cfg(feature = "http")]
                ("HOTMETER_LISTEN", "127.0.0.1:9000"),
            ]))
            .unwrap();
        assert_eq!(c.sample_rate, 0.5);
        assert_eq!(c.min_sample_rate, 0.25);
        assert_eq!(c.max_sample_rate, 1.0);
        assert!(!c.adaptive);
        assert_eq!(c.ring_capacity, 64);
        assert_eq!(c.flush_interval, Duration::from_millis(250));
        assert_eq!(
            c.overflow,
            Overflow::Block {
                timeout: Duration::from_millis(5)
            }
        );
        assert_eq!(c.series_cap, 7);
        assert_eq!(c.critical_lane_bytes, 512 << 10);
        assert_eq!(c.seed, 42);
        assert!(!c.wake_on_high_water);
        #[cfg(feature = "http")]
        assert_eq!(c.listen, Some("127.0.0.1:9000".parse().unwrap()));
        c.validate().unwrap();
    }

    #[test]
    fn global_labels_and_meta_metrics_from_the_environment() {
        let c = Config::default()
            .apply_env_from(env(&[
                ("HOTMETER_GLOBAL_LABELS", " service=api, region = eu ,"),
                ("HOTMETER_META_METRICS", "Essential"),
            ]))
            .unwrap();
        assert_eq!(
            c.global_labels,
            [("service", "api"), ("region", "eu")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(c.meta_metrics, MetaMetrics::Essential);
        let none = Config::default()
            .apply_env_from(env(&[("HOTMETER_GLOBAL_LABELS", "")]))
            .unwrap();
        assert!(none.global_labels.is_empty());
        for (v, form) in [
            ("service", GLOBAL_LABELS_FORM),
            ("1x=a", LABEL_NAME_FORM),
            ("__name__=a", LABEL_NAME_FORM),
            ("hotmeter_x=a", LABEL_NAME_FORM),
            ("le=1", LABEL_RESERVED_FORM),
            ("quantile=1", LABEL_RESERVED_FORM),
            ("a=1,b=2,a=3", LABEL_DUPLICATE_FORM),
            ("a=", LABEL_VALUE_FORM),
        ] {
            let e = Config::default()
                .apply_env_from(env(&[("HOTMETER_GLOBAL_LABELS", v)]))
                .unwrap_err();
            assert_eq!(
                (e.knob.as_str(), e.value.as_str(), e.expected),
                ("HOTMETER_GLOBAL_LABELS", v, form)
            );
        }
        let e = Config::default()
            .apply_env_from(env(&[("HOTMETER_META_METRICS", "some")]))
            .unwrap_err();
        assert_eq!(
            (e.knob.as_str(), e.expected),
            ("HOTMETER_META_METRICS", META_FORM)
        );
        // The builder's labels are checked by `validate`, named by the knob.
        let c = Config {
            global_labels: vec![("le".into(), "1".into())],
            ..Config::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(
            (e.knob.as_str(), e.expected),
            ("global_labels", LABEL_RESERVED_FORM)
        );
    }

    #[test]
    fn malformed_env_values_name_the_variable_and_form() {
        for (k, v, form) in [
            ("HOTMETER_SAMPLE_RATE", "3%", RATE_FORM),
            ("HOTMETER_SAMPLE_RATE", "0", RATE_FORM),
            ("HOTMETER_MAX_SAMPLE_RATE", "1.5", RATE_FORM),
            (
                "HOTMETER_ADAPTIVE",
                "maybe",
                "true/false (also 1/0, yes/no, on/off)",
            ),
            ("HOTMETER_RING_CAPACITY", "-1", "a positive integer"),
            ("HOTMETER_RING_CAPACITY", "1", "a positive integer"),
            (
                "HOTMETER_FLUSH_INTERVAL",
                "soon",
                "a duration such as 250ms, 2s, 1.5s or 1m",
            ),
            (
                "HOTMETER_OVERFLOW",
                "drop_all",
                "drop_newest, drop_oldest, or block:<duration> (e.g. block:5ms)",
            ),
            (
                "HOTMETER_OVERFLOW",
                "block:x",
                "drop_newest, drop_oldest, or block:<duration> (e.g. block:5ms)",
            ),
            ("HOTMETER_SEED", "abc", "an unsigned 64-bit integer"),
            ("HOTMETER_FLUSH_INTERVAL", "0", FLUSH_INTERVAL_FORM),
            ("HOTMETER_FLUSH_INTERVAL", "2h", FLUSH_INTERVAL_FORM),
            ("HOTMETER_FLUSH_INTERVAL", "1e-9", FLUSH_INTERVAL_FORM),
            (
                "HOTMETER_RING_CAPACITY",
                "16777217",
                "between 2 and 16777216 records",
            ),
            ("HOTMETER_QUANTILE_WINDOW", "0", "a non-zero duration"),
            ("HOTMETER_CRITICAL_LANE_BYTES", "64MB", LANE_BYTES_FORM),
            ("HOTMETER_CRITICAL_LANE_BYTES", "-1", LANE_BYTES_FORM),
            (
                "HOTMETER_CRITICAL_LANE_BYTES",
                "99999999999GiB",
                LANE_BYTES_FORM,
            ),
            #[cfg(feature = "http")]
            (
                "HOTMETER_LISTEN",
                "localhost",
                "an address such as 127.0.0.1:9464, or `default` (127.0.0.1:9464)",
            ),
        ] {
            let e = Config::default()
                .apply_env_from(env(&[(k, v)]))
                .unwrap_err();
            assert_eq!(e, err(k, v, form));
            let msg = e.to_string();
            assert!(msg.contains(k) && msg.contains(form), "{msg}");
        }
    }

    #[test]
    fn validation() {
        Config::default().validate().unwrap();
        let bad = Config {
            min_sample_rate: 0.5,
            max_sample_rate: 0.1,
            ..Config::default()
        };
        assert_eq!(bad.validate().unwrap_err().knob, "min_sample_rate");
        let bad = Config {
            flush_interval: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(bad.validate().unwrap_err().knob, "flush_interval");
        for cap in [0, 1, MAX_RING_CAPACITY + 1, usize::MAX] {
            let bad = Config {
                ring_capacity: cap,
                ..Config::default()
            };
            assert_eq!(bad.validate().unwrap_err().knob, "ring_capacity", "{cap}");
        }
        for bytes in [0, 40, MAX_LANE_BYTES + 1] {
            let bad = Config {
                critical_lane_bytes: bytes,
                ..Config::default()
            };
            assert_eq!(bad.validate().unwrap_err().knob, "critical_lane_bytes");
        }
    }

    #[test]
    fn overhead_budget_from_env_and_builder_values() {
        assert_eq!(Config::default().overhead_budget, 0.01);
        let c = Config::default()
            .apply_env_from(env(&[("HOTMETER_OVERHEAD_BUDGET", " 0.05 ")]))
            .unwrap();
        assert_eq!(c.overhead_budget, 0.05);
        c.validate().unwrap();
        for bad in ["0", "-0.01", "1.5", "NaN", "inf", "1%", ""] {
            let e = Config::default()
                .apply_env_from(env(&[("HOTMETER_OVERHEAD_BUDGET", bad)]))
                .unwrap_err();
            assert_eq!(e, err("HOTMETER_OVERHEAD_BUDGET", bad, BUDGET_FORM));
        }
        for bad in [0.0, -0.0, -1.0, 1.0001, f64::NAN, f64::INFINITY] {
            let c = Config {
                overhead_budget: bad,
                ..Config::default()
            };
            let e = c.validate().unwrap_err();
            assert_eq!(
                (e.knob.as_str(), e.expected),
                ("overhead_budget", BUDGET_FORM)
            );
        }
        for ok in [1e-6, 0.5, 1.0] {
            let c = Config {
                overhead_budget: ok,
                ..Config::default()
            };
            c.validate().unwrap();
        }
    }

    #[cfg(not(feature = "http"))]
    #[test]
    fn listen_and_token_need_the_http_feature() {
        for (var, value, shown) in [
            ("HOTMETER_LISTEN", "127.0.0.1:9000", "127.0.0.1:9000"),
            ("HOTMETER_TOKEN", "s3cret", "***"),
        ] {
            let e = Config::default()
                .apply_env_from(env(&[(var, value)]))
                .unwrap_err();
            assert_eq!(e, err(var, shown, NO_HTTP_FORM));
            assert!(e.to_string().contains("`http` cargo feature"), "{e}");
        }
    }

    #[cfg(feature = "http")]
    #[test]
    fn token_and_default_listen() {
        let c = Config::default()
            .apply_env_from(env(&[
                ("HOTMETER_TOKEN", " s3cret "),
                ("HOTMETER_LISTEN", "default"),
                ("HOTMETER_QUANTILE_WINDOW", "30s"),
            ]))
            .unwrap();
        assert_eq!(c.quantile_window, Duration::from_secs(30));
        let zero = Config {
            quantile_window: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(zero.validate().unwrap_err().knob, "quantile_window");
        assert_eq!(c.token, Some(Secret("s3cret".into())));
        assert_eq!(c.listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "Debug redacts the token"
        );
        for bad in ["", "two words", "tab\there"] {
            let e = Config::default()
                .apply_env_from(env(&[("HOTMETER_TOKEN", bad)]))
                .unwrap_err();
            assert_eq!(e.knob, "HOTMETER_TOKEN");
            assert_eq!(e.value, "***", "the error does not repeat the token");
        }
    }

    #[cfg(feature = "http")]
    #[test]
    fn token_form_states_the_limit() {
        let limit = MAX_TOKEN_BYTES.to_string();
        assert!(
            TOKEN_FORM.contains(&format!(" {limit} bytes")),
            "{TOKEN_FORM}"
        );
        let at = |n: usize| Config {
            token: Some(Secret("t".repeat(n))),
            ..Config::default()
        };
        at(MAX_TOKEN_BYTES).validate().unwrap();
        let e = at(MAX_TOKEN_BYTES + 1).validate().unwrap_err();
        assert_eq!(e, err("token", "***", TOKEN_FORM));
    }
}
