//! Telemetry for every role: JSON logs that carry trace ids, OTLP export when an endpoint is
//! configured, and the W3C trace-context propagator.
//!
//! Layout:
//! - [`init`] installs the subscriber and returns a [`Guard`] that flushes spans on drop;
//! - [`propagation`] the one place where trace context is injected into and extracted from
//!   HTTP headers, gRPC metadata and NATS headers, so one trace spans webhook → session →
//!   router → gateway push;
//! - [`json`] the log line format.

pub mod json;
pub mod metrics;
pub mod propagation;

use atende_config::Telemetry as TelemetryConfig;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the otlp exporter")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global subscriber is already installed")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
    #[error("invalid log level filter")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
}

/// Keeps the tracer provider alive; dropping it flushes pending spans.
pub struct Guard {
    provider: SdkTracerProvider,
}

impl Guard {
    /// Flushes and shuts the exporter down; called on graceful shutdown.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber: env filter (`RUST_LOG` wins over the config level),
/// JSON or pretty logs, and the OpenTelemetry layer (exporting over OTLP/gRPC when
/// `otlp_endpoint` is set; trace ids are generated and propagated either way).
pub fn init(cfg: &TelemetryConfig) -> Result<Guard, TelemetryError> {
    let (provider, subscriber) = build(cfg)?;
    subscriber.try_init()?;
    Ok(Guard { provider })
}

/// For tests that boot several roles in one process: installs once, later calls are no-ops.
pub fn init_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let cfg = TelemetryConfig {
            otlp_endpoint: String::new(),
            log_level: std::env::var("ATENDE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            log_format: "json".into(),
            service_name: "atende-test".into(),
            metrics_addr: String::new(),
        };
        if let Ok((provider, subscriber)) = build(&cfg) {
            let _ = subscriber.try_init();
            // Keep the provider for the life of the test process.
            std::mem::forget(provider);
        }
    });
}

fn build(cfg: &TelemetryConfig) -> Result<(SdkTracerProvider, impl tracing::Subscriber + Send + Sync), TelemetryError> {
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(cfg.service_name.clone())
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if !cfg.otlp_endpoint.is_empty() {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(cfg.otlp_endpoint.clone())
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer("atende");
    let directives = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => v,
        _ => format!(
            "{},h2=warn,hyper=warn,tower=warn,sqlx=warn,async_nats=warn",
            cfg.log_level
        ),
    };
    let filter = EnvFilter::try_new(&directives)?;
    let filter_json = EnvFilter::try_new(&directives)?;
    let pretty = cfg.log_format == "pretty";
    // Spans feed traces whatever the log level: the log filter applies to log lines only,
    // so an operator turning logs down to `warn` keeps one trace per request.
    let trace_filter = EnvFilter::try_new("info,h2=off,hyper=off,tower=off,sqlx=warn,async_nats=warn")?;
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(trace_filter),
        )
        .with(if pretty {
            Some(tracing_subscriber::fmt::layer().with_target(true).with_filter(filter))
        } else {
            None
        })
        .with(if pretty {
            None
        } else {
            Some(
                tracing_subscriber::fmt::layer()
                    .event_format(json::JsonFormat)
                    .with_filter(filter_json),
            )
        });
    Ok((provider, subscriber))
}

/// The current span's trace id as 32 hex characters, or None outside a sampled trace.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
