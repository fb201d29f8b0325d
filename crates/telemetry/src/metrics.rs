//! Prometheus metrics of the process: RED (rate, errors, duration) per HTTP route, gRPC
//! method and consumer, outbox publishes and dead letters. One registry per process — every
//! role of `atende all` shares it, as they share the process — exposed as OpenMetrics text at
//! `telemetry.metrics_addr` `/metrics`.
//!
//! The registry is the one process-wide value here: instruments are written from layers and
//! loops that have no other shared handle, and reads only ever encode it.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;
type Timings = Family<Labels, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<Labels, Counter>,
    http_duration: Timings,
    grpc_requests: Family<Labels, Counter>,
    grpc_duration: Timings,
    consumed: Family<Labels, Counter>,
    consume_duration: Timings,
    published: Family<Labels, Counter>,
    dead_letters: Family<Labels, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("atende");
    let m = Metrics {
        http_requests: Family::default(),
        http_duration: Family::new_with_constructor(seconds),
        grpc_requests: Family::default(),
        grpc_duration: Family::new_with_constructor(seconds),
        consumed: Family::default(),
        consume_duration: Family::new_with_constructor(seconds),
        published: Family::default(),
        dead_letters: Family::default(),
        registry: Registry::default(),
    };
    registry.register(
        "http_requests",
        "HTTP requests by route, method and status",
        m.http_requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "HTTP request handling time",
        m.http_duration.clone(),
    );
    registry.register(
        "grpc_requests",
        "gRPC calls served by service, method and code",
        m.grpc_requests.clone(),
    );
    registry.register(
        "grpc_request_duration_seconds",
        "gRPC call handling time",
        m.grpc_duration.clone(),
    );
    registry.register(
        "consumer_messages",
        "messages handled by consumer and outcome",
        m.consumed.clone(),
    );
    registry.register(
        "consumer_message_duration_seconds",
        "message handling time, retries included",
        m.consume_duration.clone(),
    );
    registry.register(
        "outbox_published",
        "outbox rows published to JetStream, by stream",
        m.published.clone(),
    );
    registry.register(
        "dead_letters",
        "messages terminated as poison and recorded, by consumer",
        m.dead_letters.clone(),
    );
    Metrics { registry, ..m }
});

/// An HTTP request answered.
pub fn http_request(route: &str, method: &str, status: u16, took: Duration) {
    let labels = vec![
        ("route", route.to_string()),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    METRICS.http_requests.get_or_create(&labels).inc();
    METRICS
        .http_duration
        .get_or_create(&labels[..2].to_vec())
        .observe(took.as_secs_f64());
}

/// A gRPC call served (`path` is `/package.Service/Method`).
pub fn grpc_request(path: &str, code: &str, took: Duration) {
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    let labels = vec![("service", service.to_string()), ("method", method.to_string())];
    let mut with_code = labels.clone();
    with_code.push(("code", code.to_string()));
    METRICS.grpc_requests.get_or_create(&with_code).inc();
    METRICS.grpc_duration.get_or_create(&labels).observe(took.as_secs_f64());
}

/// A consumer started: its series exist at zero from now on, so rates and alerts see them
/// before the first message (a series that appears only with its first dead letter would
/// hide the first increase).
pub fn consumer_started(consumer: &str) {
    for outcome in ["ack", "defer", "poison"] {
        let labels = vec![("consumer", consumer.to_string()), ("outcome", outcome.to_string())];
        METRICS.consumed.get_or_create(&labels).inc_by(0);
    }
    METRICS
        .dead_letters
        .get_or_create(&vec![("consumer", consumer.to_string())])
        .inc_by(0);
}

/// A message settled by a consumer: `ack`, `defer` or `poison`.
pub fn consumed(consumer: &str, outcome: &str, took: Duration) {
    let consumer_label = vec![("consumer", consumer.to_string())];
    let mut labels = consumer_label.clone();
    labels.push(("outcome", outcome.to_string()));
    METRICS.consumed.get_or_create(&labels).inc();
    METRICS
        .consume_duration
        .get_or_create(&consumer_label)
        .observe(took.as_secs_f64());
    if outcome == "poison" {
        METRICS.dead_letters.get_or_create(&consumer_label).inc();
    }
}

/// Outbox rows published (the stream's kind: inbound, outbound, route, events).
pub fn published(stream: &str, n: u64) {
    METRICS
        .published
        .get_or_create(&vec![("stream", stream.to_string())])
        .inc_by(n);
}

/// Everything, as OpenMetrics text.
pub fn render() -> String {
    let mut out = String::new();
    if encode(&mut out, &METRICS.registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_exposition() {
        http_request("/webhooks/whatsapp/{channel_id}", "POST", 200, Duration::from_millis(3));
        consumed("session", "ack", Duration::from_millis(2));
        let text = render();
        assert!(text.contains("# TYPE atende_http_requests counter"), "{text}");
        assert!(
            text.contains(
                r#"atende_http_requests_total{route="/webhooks/whatsapp/{channel_id}",method="POST",status="200"} "#
            ),
            "{text}"
        );
        assert!(text.contains(r#"atende_consumer_messages_total{consumer="session",outcome="ack"} "#));
        assert!(text.ends_with("# EOF\n"));
    }
}
