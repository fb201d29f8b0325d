//! The HTTP side of a role: the error contract (the same stable code and en/pt-BR messages
//! as the gRPC details, in a JSON body `{"error": {"code", "message", "message_pt_br",
//! "detail"}}`, with the status from the domain's one table) and [`serve`], which adds
//! `/healthz`, `/readyz`, per-request tracing and the shutdown sequence to a role's routes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atende_domain::ErrorCode;
use tokio_util::sync::CancellationToken;

use crate::{Result, RuntimeError};

/// Binds `addr` (port 0 picks a free one) and returns the bound address and the server
/// future. `/healthz` answers while the process lives; `/readyz` turns 503 as soon as
/// shutdown starts, then, after `grace`, intake stops and in-flight requests finish.
pub async fn serve(
    addr: SocketAddr,
    routes: axum::Router,
    grace: Duration,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, impl std::future::Future<Output = Result<()>>)> {
    let ready = Arc::new(AtomicBool::new(true));
    let probe = ready.clone();
    let app = routes
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready = probe.load(Ordering::SeqCst);
                async move {
                    if ready {
                        (http::StatusCode::OK, "ready")
                    } else {
                        (http::StatusCode::SERVICE_UNAVAILABLE, "shutting down")
                    }
                }
            }),
        )
        .layer(axum::middleware::from_fn(record))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(atende_telemetry::propagation::ServerSpan));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RuntimeError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| RuntimeError::Bind { addr, source })?;
    let fut = async move {
        // Peer addresses reach handlers (`ConnectInfo`) for per-client rate limits.
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                shutdown.cancelled().await;
                ready.store(false, Ordering::SeqCst);
                tokio::time::sleep(grace).await;
            })
            .await
            .map_err(|e| RuntimeError::Task(format!("http server: {e}")))
    };
    Ok((bound, fut))
}

pub type ErrorResponse = (http::StatusCode, [(http::header::HeaderName, &'static str); 1], String);

pub fn error(code: ErrorCode, detail: &str) -> ErrorResponse {
    let body = serde_json::json!({
        "error": {
            "code": code.as_str(),
            "message": code.message_en(),
            "message_pt_br": code.message_pt_br(),
            "detail": detail,
        }
    });
    (
        http::StatusCode::from_u16(code.http_status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

/// The HTTP answer for a gRPC status coming back from another role: its domain code when
/// it carries one, otherwise UNAVAILABLE / INTERNAL.
pub fn from_status(s: &tonic::Status) -> ErrorResponse {
    if let Some(d) = crate::errors::detail_of(s) {
        if let Some(code) = ErrorCode::parse(&d.code) {
            return error(code, &d.detail);
        }
    }
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => error(ErrorCode::Unavailable, ""),
        _ => error(ErrorCode::Internal, ""),
    }
}

/// Rate, errors and duration per route (the route's pattern, never the raw path with ids).
async fn record(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let span = tracing::Span::current();
    span.record("http.route", route.as_str());
    let resp = next.run(req).await;
    span.record("http.response.status_code", resp.status().as_u16());
    atende_telemetry::metrics::http_request(&route, &method, resp.status().as_u16(), started.elapsed());
    resp
}
