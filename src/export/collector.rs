//! `EngineCollector`: hotmeter inside a prometheus-client registry (feature
//! `prometheus-client`).

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::model::{self, Family, Kind, Sample};
use super::started;
use super::write::escape_help_openmetrics;

/// A prometheus-client [`Collector`](prometheus_client::collector::Collector) over an
/// engine: register it in your own `prometheus_client::registry::Registry` to expose
/// hotmeter's series next to yours. Each `encode` reads the exact values and the last
/// published estimates (no lock a writer or the flusher needs). prometheus-client has no
/// summary type, so sampled metrics (summaries) are left out of this path, and exemplars need
/// [`Engine::render`](crate::Engine::render) (see the module docs), and a non-finite value
/// comes out as prometheus-client writes it (`inf`, which Prometheus reads but the
/// OpenMetrics ABNF spells `+Inf`).
#[derive(Clone)]
pub struct EngineCollector {
    pub(crate) shared: Arc<dyn Source>,
}

/// What an [`EngineCollector`] reads: a registry, and the families the layers above the
/// core add to every rendering (the endpoint's statistics). The engine implements it, so
/// the exporter needs no import from the engine above it.
pub(crate) trait Source: Send + Sync {
    /// The registry whose series are collected.
    fn registry(&self) -> &crate::registry::Registry;
    /// The families added beside the registry's.
    fn extra_families(&self) -> Vec<Family>;
}

impl std::fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineCollector").finish_non_exhaustive()
    }
}

impl prometheus_client::collector::Collector for EngineCollector {
    fn encode(
        &self,
        encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        let registry = self.shared.registry();
        let mut families = model::build(registry.snapshot(), started(registry));
        families.extend(self.shared.extra_families());
        model::finish(
            &mut families,
            registry.global_labels(),
            registry.meta_metrics(),
        );
        // prometheus-client has no summary type: a sampled metric's summary is left out, and
        // with it the gauges that only make sense beside it (its quantiles' standard errors
        // and intervals, and its top keys), so that no orphan is exposed.
        let summaries: Vec<String> = families
            .iter()
            .filter(|f| f.kind == Kind::Summary)
            .map(|f| f.name.clone())
            .collect();
        families.retain(|f| {
            f.kind != Kind::Summary
                && !summaries.iter().any(|s| {
                    f.name.strip_prefix(s.as_str()).is_some_and(|rest| {
                        matches!(
                            rest,
                            model::QUANTILE_STD_ERROR_SUFFIX
                                | model::QUANTILE_LOWER_SUFFIX
                                | model::QUANTILE_UPPER_SUFFIX
                                | model::TOP_KEYS_SUFFIX
                        )
                    })
                })
        });
        for f in &mut families {
            for s in &mut f.series {
                if let Sample::Histogram { exemplars, .. } = &mut s.value {
                    exemplars.clear();
                }
            }
        }
        Families(families).encode(encoder)
    }
}

/// A prometheus-client [`Collector`] over a fixed list of families.
#[derive(Debug)]
pub(crate) struct Families(pub(crate) Vec<Family>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        for f in &self.0 {
            encode_with_client(&mut encoder, f)?;
        }
        Ok(())
    }
}

fn metric_type(kind: Kind) -> MetricType {
    match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
        // Never reached: the collector leaves summaries out.
        Kind::Summary => MetricType::Unknown,
    }
}

/// One series' value through a prometheus-client metric encoder.
fn encode_value(encoder: &mut MetricEncoder, value: &Sample) -> fmt::Result {
    match value {
        Sample::Counter(v) => encoder.encode_counter::<NoLabelSet, u64, u64>(v, None),
        Sample::FloatCounter(v) => encoder.encode_counter::<NoLabelSet, f64, u64>(v, None),
        Sample::Gauge(v) => encoder.encode_gauge(v),
        Sample::Histogram {
            buckets,
            count,
            sum,
            ..
        } => encoder.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None),
        Sample::Summary { .. } => Err(fmt::Error),
    }
}

fn encode_with_client(encoder: &mut DescriptorEncoder, f: &Family) -> fmt::Result {
    let help = escape_help_openmetrics(&f.help);
    // prometheus-client appends `_<unit>` to the name it is given.
    let unit = f.unit.clone().map(Unit::Other);
    let name = match &unit {
        Some(u) => f
            .name
            .strip_suffix(u.as_str())
            .and_then(|n| n.strip_suffix('_'))
            .unwrap_or(&f.name),
        None => &f.name,
    };
    let mut metric = encoder.encode_descriptor(name, &help, unit.as_ref(), metric_type(f.kind))?;
    for s in &f.series {
        if s.labels.is_empty() {
            // Straight on the family's encoder: `encode_family` would write `{}`.
            encode_value(&mut metric, &s.value)?;
        } else {
            encode_value(&mut metric.encode_family(&s.labels)?, &s.value)?;
        }
    }
    Ok(())
}

/// Whether `f` must be written by [`encode_family`](super::openmetrics::encode_family) rather than prometheus-client.
#[cfg(all(test, feature = "prometheus-client"))]
pub(crate) fn needs_own_encoder(f: &Family) -> bool {
    f.series.iter().any(|s| match &s.value {
        Sample::Counter(_) | Sample::FloatCounter(_) => false,
        Sample::Gauge(v) => !v.is_finite(),
        Sample::Histogram { exemplars, sum, .. } => !exemplars.is_empty() || !sum.is_finite(),
        Sample::Summary { .. } => true,
    })
}

/// Appends what prometheus-client's text encoder writes for `families` (only those
/// [`needs_own_encoder`] leaves to it), ending with `# EOF`: the reference
/// [`encode`](super::openmetrics::encode) is tested against.
#[cfg(all(test, feature = "prometheus-client"))]
pub(crate) fn encode_with_prometheus_client(
    out: &mut String,
    families: Vec<Family>,
) -> fmt::Result {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Families(families)));
    prometheus_client::encoding::text::encode_registry(out, &registry)?;
    prometheus_client::encoding::text::encode_eof(out)
}
