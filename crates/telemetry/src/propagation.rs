//! W3C trace context across every transport, in one place: HTTP and gRPC (both are HTTP
//! headers on the wire), and NATS message headers. Producers inject the current span's
//! context; consumers extract it and make it the parent of their span.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::Context;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HttpInjector<'a>(&'a mut http::HeaderMap);
impl Injector for HttpInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(val)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, val);
        }
    }
}

struct HttpExtractor<'a>(&'a http::HeaderMap);
impl Extractor for HttpExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct GrpcInjector<'a>(&'a mut tonic::metadata::MetadataMap);
impl Injector for GrpcInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(val)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(name, val);
        }
    }
}

struct NatsInjector<'a>(&'a mut async_nats::HeaderMap);
impl Injector for NatsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct NatsExtractor<'a>(&'a async_nats::HeaderMap);
impl Extractor for NatsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

struct MapInjector<'a>(&'a mut Vec<(String, String)>);
impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_string(), value));
    }
}

struct MapExtractor<'a>(&'a [(String, String)]);
impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

fn inject(span: &Span, injector: &mut dyn Injector) {
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, injector));
}

fn extract(extractor: &dyn Extractor) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(extractor))
}

pub fn inject_http(headers: &mut http::HeaderMap) {
    inject(&Span::current(), &mut HttpInjector(headers));
}

pub fn extract_http(headers: &http::HeaderMap) -> Context {
    extract(&HttpExtractor(headers))
}

pub fn inject_grpc(metadata: &mut tonic::metadata::MetadataMap) {
    inject(&Span::current(), &mut GrpcInjector(metadata));
}

pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    inject(&Span::current(), &mut NatsInjector(headers));
}

pub fn extract_nats(headers: &async_nats::HeaderMap) -> Context {
    extract(&NatsExtractor(headers))
}

/// Trace context as key/value pairs, for carrying it through a database row (the
/// transactional outbox stores it beside the payload so the relay's publish continues the
/// trace of the request that wrote the row).
pub fn current_as_pairs() -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    inject(&Span::current(), &mut MapInjector(&mut pairs));
    pairs
}

pub fn extract_pairs(pairs: &[(String, String)]) -> Context {
    extract(&MapExtractor(pairs))
}

/// Makes `cx` the parent of `span` (call before entering it).
pub fn set_parent(span: &Span, cx: Context) {
    let _ = span.set_parent(cx);
}

/// `make_span_with` for tower-http's TraceLayer, on axum and tonic servers alike: one span
/// per request, child of the caller's trace when it sent a `traceparent`, with OpenTelemetry's
/// semantic-convention attributes — `rpc.*` for gRPC calls, `http.*` and `url.path` for HTTP
/// (`http.route` and the status are recorded once routing and the answer are known). Never a
/// query string, header or body: they may hold tokens or customers' data.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerSpan;

impl<B> tower_http::trace::MakeSpan<B> for ServerSpan {
    fn make_span(&mut self, request: &http::Request<B>) -> Span {
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        let span = if grpc {
            let path = request.uri().path().trim_start_matches('/');
            let (service, method) = path.split_once('/').unwrap_or((path, ""));
            tracing::info_span!(
                "rpc",
                otel.name = %path,
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
            )
        } else {
            tracing::info_span!(
                "request",
                otel.kind = "server",
                http.request.method = %request.method(),
                url.path = %request.uri().path(),
                http.route = tracing::field::Empty,
                http.response.status_code = tracing::field::Empty,
            )
        };
        set_parent(&span, extract_http(request.headers()));
        span
    }
}

/// A tonic client interceptor that sends the current trace context.
pub fn grpc_client_interceptor(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    inject_grpc(request.metadata_mut());
    Ok(request)
}
