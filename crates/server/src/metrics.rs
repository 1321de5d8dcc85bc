//! Prometheus metrics (`GET /metrics`): HTTP requests by route template, plus the
//! engine's own counters (object-store operations, commit batches and retries).
//!
//! Design choices:
//! - **`prometheus-client`** (the Prometheus project's Rust client) encodes the
//!   OpenMetrics text format, which Prometheus scrapes natively; nothing is hand-formatted.
//! - **The engine stays exporter-agnostic.** It keeps plain atomics and fixed-bucket
//!   histograms; [`EngineCollector`] reads a snapshot of them on each scrape and writes
//!   them as const metrics, so the engine never depends on a metrics crate.
//! - **Bounded label values.** Requests are labelled by the matched route *template*
//!   (`/api/v1/{collection}/{id}`), never the raw path, so ids cannot grow the series
//!   count; requests no route matched share `route="unmatched"`, unusual methods share
//!   `method="OTHER"`. No label carries a user, a token or a record.

use std::sync::Arc;

use axum::http::Method;
use bucketbase_engine::metrics::{
    EngineMetrics, HistogramSnapshot, LATENCY_BUCKETS, StoreOpSnapshot,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The server's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    /// The change feed's subscribers, events and drops (see `crate::feed`).
    pub feed: crate::feed::FeedMetrics,
}

impl Metrics {
    /// Registers the HTTP metrics and a collector reading `engine` on each scrape.
    pub fn new(engine: Arc<EngineMetrics>) -> Self {
        let mut registry = Registry::with_prefix("bucketbase");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, matched route template and status",
            requests.clone(),
        );
        let latency: LatencyFamily =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (to the response head), by method and route",
            Unit::Seconds,
            latency.clone(),
        );
        registry.register_collector(Box::new(EngineCollector(engine)));
        let feed = crate::feed::FeedMetrics::default();
        registry.register(
            "feed_subscribers",
            "Change-feed subscriptions open now",
            feed.subscribers.clone(),
        );
        registry.register(
            "feed_events",
            "Change-feed events handed to subscribers",
            feed.events.clone(),
        );
        registry.register(
            "feed_drops",
            "Change-feed subscribers cut off because they did not keep up",
            feed.drops.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            feed,
        }
    }

    /// Counts one answered request.
    pub fn observe_request(&self, method: &Method, route: Option<&str>, status: u16, secs: f64) {
        let method = method_label(method);
        let route = route.unwrap_or("unmatched").to_owned();
        self.latency
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(secs);
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// The OpenMetrics text exposition of everything registered.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Writes the engine's counters on each scrape.
#[derive(Debug)]
struct EngineCollector(Arc<EngineMetrics>);

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let m = self.0.snapshot();
        let counters = [
            (
                "commit_entries",
                "Log entries this process wrote (one per committed batch).",
                m.entries,
            ),
            (
                "commit_transactions",
                "Transactions in those entries (transactions / entries is the mean batch size).",
                m.txns,
            ),
            (
                "commit_lost_slots",
                "Log slots another writer took first (the batch was re-validated and retried).",
                m.lost_slots,
            ),
            (
                "commit_reruns",
                "Transaction closures re-run because their reads changed.",
                m.reruns,
            ),
            (
                "commit_ambiguous_writes",
                "Log writes that failed and were settled by reading the slot back.",
                m.ambiguous_writes,
            ),
            (
                "log_caught_up_entries",
                "Entries of other writers applied by catching up with the log.",
                m.caught_up,
            ),
            (
                "commit_applied_ahead",
                "Large transactions whose writes were applied while they were staged, and committed without validating them again.",
                m.applied_ahead,
            ),
            (
                "commit_applied_ahead_unused",
                "Large transactions applied ahead that the committer validated anyway (the log had moved on).",
                m.applied_ahead_unused,
            ),
            (
                "view_writes",
                "Materialized view files written.",
                m.view_writes,
            ),
            (
                "view_write_errors",
                "Materialized view writes that failed (retried later).",
                m.view_errors,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }

        let batches = self.0.batch_sizes();
        let metric = encoder.encode_descriptor(
            "commit_batch_size",
            "Transactions per log entry written.",
            None,
            MetricType::Histogram,
        )?;
        histogram(metric, &batches)?;

        let ops = self.0.store_ops();
        per_op(
            &mut encoder,
            ("store_operations", None, MetricType::Counter),
            "Object-store operations, by kind (not-found and already-exists answers included).",
            &ops,
            |m, op| ConstCounter::new(op.count).encode(m),
        )?;
        per_op(
            &mut encoder,
            ("store_operation_errors", None, MetricType::Counter),
            "Object-store operations the store failed (network, permissions, 5xx...), by kind.",
            &ops,
            |m, op| ConstCounter::new(op.errors).encode(m),
        )?;
        per_op(
            &mut encoder,
            (
                "store_operation_duration",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            ),
            "Object-store operation latency (reads to the start of the body), by kind.",
            &ops,
            |m, op| histogram(m, &op.latency),
        )
    }
}

/// One metric with a series per store operation kind (label `op`).
fn per_op(
    encoder: &mut DescriptorEncoder,
    (name, unit, metric_type): (&str, Option<&Unit>, MetricType),
    help: &str,
    ops: &[StoreOpSnapshot],
    value: impl Fn(MetricEncoder, &StoreOpSnapshot) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for op in ops {
        let labels = [("op", op.op.as_str())];
        value(metric.encode_family(&labels)?, op)?;
    }
    Ok(())
}

fn histogram(mut metric: MetricEncoder, h: &HistogramSnapshot) -> std::fmt::Result {
    let bounds = h.bounds.iter().copied().chain([f64::INFINITY]);
    let buckets: Vec<(f64, u64)> = bounds.zip(h.buckets.iter().copied()).collect();
    metric.encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_with_bounded_labels() {
        let metrics = Metrics::new(Arc::new(EngineMetrics::default()));
        metrics.observe_request(&Method::GET, Some("/api/v1/{collection}/{id}"), 200, 0.003);
        metrics.observe_request(&Method::from_bytes(b"BREW").unwrap(), None, 404, 0.0);
        let text = metrics.render().unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains(
                r#"bucketbase_http_requests_total{method="GET",route="/api/v1/{collection}/{id}",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"bucketbase_http_requests_total{method="OTHER",route="unmatched",status="404"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"bucketbase_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/v1/{collection}/{id}"} 1"#),
            "{text}"
        );
        for name in [
            "# TYPE bucketbase_commit_batch_size histogram",
            "bucketbase_commit_batch_size_bucket{le=\"+Inf\"} 0",
            "bucketbase_commit_lost_slots_total 0",
            "bucketbase_store_operations_total{op=\"put_if_absent\"} 0",
            "bucketbase_store_operation_errors_total{op=\"get\"} 0",
            "# UNIT bucketbase_store_operation_duration_seconds seconds",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
