//! What stands in front of every route of the API: a body size limit, rate limits per
//! signed-in agent and per tenant (429 with Retry-After), CORS for the configured origins, and
//! security headers on every answer.

use std::sync::Arc;

use atende_domain::ErrorCode;
use atende_runtime::http_api::error;
use atende_runtime::limits::{too_many, KeyedLimit};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderValue};
use uuid::Uuid;

use crate::auth::Keys;

pub struct Guard {
    pub keys: Arc<Keys>,
    pub body_limit: usize,
    pub per_user: KeyedLimit<Uuid>,
    pub per_tenant: KeyedLimit<Uuid>,
}

/// The limits, in order: the declared body size, then the agent's and his tenant's rates
/// (requests with no valid token pass here and are refused by the route itself).
pub async fn limits(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > guard.body_limit) {
        return error(
            ErrorCode::PayloadTooLarge,
            &format!("at most {} bytes", guard.body_limit),
        )
        .into_response();
    }
    let claims = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .and_then(|(_, token)| guard.keys.verify(token.trim()));
    if let Some(c) = claims {
        if let Err(wait) = guard.per_user.check(&c.sub) {
            return too_many(wait, "too many requests from this agent");
        }
        if let Err(wait) = guard.per_tenant.check(&c.tenant) {
            tracing::info!(tenant = %c.tenant, "api rate limit per tenant reached");
            return too_many(wait, "too many requests from this tenant");
        }
    }
    next.run(req).await
}

/// Security headers on every answer: no sniffing, no framing, no referrer, nothing cached,
/// and a content policy that lets an API answer load nothing.
pub async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ] {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// CORS for `origins` (comma-separated); none: no cross-origin page may call the API.
pub fn cors(origins: &str) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allowed: Vec<HeaderValue> = origins
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([
            http::Method::GET,
            http::Method::POST,
            http::Method::PUT,
            http::Method::DELETE,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}
