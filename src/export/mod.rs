//! Prometheus exposition: OpenMetrics 1.0 text and the classic 0.0.4 text format, both our
//! own encoders (no dependency beyond the core's), from one model so both carry the same
//! series. The OpenMetrics encoder writes prometheus-client's layout byte for byte (a test
//! compares the two under the `prometheus-client` feature), which also backs
//! `EngineCollector` there.
//!
//! What each hotmeter metric becomes:
//!
//! | hotmeter | exposed as |
//! |---|---|
//! | counter `x_total` (or `x`) | counter family `x`, sample `x_total` (never `_total_total`) |
//! | gauge `g` | gauge `g` |
//! | histogram `h` | histogram `h`: cumulative `h_bucket{le}`, `+Inf` = `h_count`, `h_sum`; exemplars (OpenMetrics only) from [`Histogram::record_keyed`](crate::Histogram::record_keyed) |
//! | sampled `s` | summary `s`: `s{quantile}` estimated (0.5, 0.9, 0.99, 0.999) over the last [`Config::quantile_window`](crate::Config::quantile_window), `NaN` while too few records bound it (p99.9 needs ~3,700), `s_count` exact, `s_sum` exact for `record!` (a Horvitz–Thompson estimate for sampled timers); gauges `s_quantile_lower{for_quantile}` / `s_quantile_upper{for_quantile}` (the 95% interval itself: not symmetric around the estimate; NaN with it) and `s_quantile_std_error{for_quantile}` (its width / 3.92); gauge `s_top_keys{key}` (estimated events of the ≤ 10 heaviest keys per series; `key` = the key as passed, cut to 64 bytes, once a sampled event of it followed the flush that first reported it, else its 16-hex-digit hash; see `sample::key_names`) |
//! | the engine | `hotmeter_*` meta-metrics with HELP text: sample rate, sampled / flushed / dropped records by reason, flush count / duration / drains, ring utilization, rings, critical lane depth and losses, arenas, registration errors, series overflow, rejected histogram observations, estimated recording overhead |
//!
//! HELP is the text given to [`Registry::describe`](crate::Registry::describe), exactly
//! (escaped); a unit given to
//! [`Registry::describe_with_unit`](crate::Registry::describe_with_unit) is an OpenMetrics
//! `# UNIT` line (the 0.0.4 format has none). The engine's
//! [`Config::global_labels`](crate::Config::global_labels) go on every series, and
//! [`Config::meta_metrics`](crate::Config::meta_metrics) selects the `hotmeter_*` families,
//! in both formats and through the collector.
//!
//! The renderings pass `promtool check metrics` (lint included), Python's strict
//! OpenMetrics parser, and a real Prometheus scrape (see `tests/`).
//!
//! Registration refuses a family whose exposed names would collide with another's
//! ([`Error::ExpositionCollision`](crate::Error::ExpositionCollision)), and names starting
//! with `hotmeter_` are reserved, so the rendering is always a valid exposition.

#[cfg(feature = "prometheus-client")]
pub(crate) mod collector;
#[cfg(feature = "http")]
pub mod http;
pub(crate) mod model;
pub(crate) mod openmetrics;
pub(crate) mod text;
pub(crate) mod write;

/// The strict exposition parser of the tests (`tests/common/parse.rs`), for the unit tests.
#[cfg(test)]
#[path = "../../tests/common/parse.rs"]
mod parse;

use std::time::SystemTime;

use crate::registry::Registry;

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, ending with `# EOF`; carries exemplars.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format to answer a request's `Accept` header with, as Prometheus sends it
    /// (`application/openmetrics-text;version=1.0.0,...;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`):
    /// the acceptable media range with the highest `q` (the first on a tie). OpenMetrics is
    /// acceptable as `application/openmetrics-text` with version 1.0.0 or none; the text
    /// format as `text/plain` with version 0.0.4 or none, `text/*` or `*/*`. Without a
    /// header, or when nothing is acceptable, the text format (the one every scraper reads).
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut best: Option<(f64, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0;
            let mut version = None;
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.parse::<f64>().unwrap_or(0.0),
                    "version" => version = Some(v.to_string()),
                    _ => {}
                }
            }
            if !(q > 0.0 && q <= 1.0) {
                continue;
            }
            let format = match (media.as_str(), version.as_deref()) {
                ("application/openmetrics-text", None | Some("1.0.0")) => Format::OpenMetrics,
                ("text/plain", None | Some("0.0.4")) | ("text/*", _) | ("*/*", _) => Format::Text,
                _ => continue,
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Text, |(_, f)| f)
    }
}

/// Renders every series of `registry` (and its engine's meta-metrics) in `format`.
///
/// # Errors
/// Only if an encoder fails (it writes into a `String`, so in practice never); callers that
/// serve the result answer 500 with no partial body.
pub fn render(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    render_with(registry, format, Vec::new())
}

/// [`render`], with `extra` families (the layers' own meta-metrics, such as the endpoint's)
/// after the registry's.
pub(crate) fn render_with(
    registry: &Registry,
    format: Format,
    extra: Vec<model::Family>,
) -> Result<String, std::fmt::Error> {
    let mut families = model::build(registry.snapshot(), started(registry));
    families.extend(extra);
    model::finish(
        &mut families,
        registry.global_labels(),
        registry.meta_metrics(),
    );
    let series: usize = families.iter().map(|f| f.series.len()).sum();
    let mut out = String::with_capacity(4096 + series * 96);
    match format {
        Format::OpenMetrics => openmetrics::encode(&mut out, &families),
        Format::Text => text::encode(&mut out, &families),
    }
    Ok(out)
}

/// The wall-clock time the sampling pipeline's record times count from (exemplar
/// timestamps).
pub(crate) fn started(registry: &Registry) -> SystemTime {
    SystemTime::now()
        .checked_sub(registry.pipeline().start.elapsed())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests;
