//! Webhook routes. Every answer is decided before any side effect except the final commit:
//! unknown channel → 404, body over the limit → 413, bad signature → 401, malformed JSON →
//! 400, all with nothing stored; 200 only once the content is durable; 503 when the database
//! is unavailable, so Meta retries.

use atende_domain::ErrorCode;
use atende_runtime::http_api::error;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ingest;
use crate::whatsapp::{handshake, signature};

#[derive(Clone)]
pub struct AppState {
    pool: PgPool,
    subjects: atende_bus::Subjects,
    body_limit: usize,
    channels: ChannelCache,
}

/// Channels by id for a few seconds: every webhook needs its channel's secret, and a
/// lookup per request was a quarter of ingest's database round trips. A rotated secret or
/// a new channel takes effect within the TTL; unknown ids are not cached.
#[derive(Clone)]
struct ChannelCache {
    ttl: std::time::Duration,
    entries: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<Uuid, (std::time::Instant, atende_store::admin::Channel)>>,
    >,
}

impl ChannelCache {
    fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            entries: Default::default(),
        }
    }

    fn get(&self, id: Uuid) -> Option<atende_store::admin::Channel> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(&id)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, c)| c.clone())
    }

    fn put(&self, channel: &atende_store::admin::Channel) {
        if let Ok(mut entries) = self.entries.lock() {
            // Bounded: expired entries go whenever the map grows large.
            if entries.len() > 10_000 {
                let ttl = self.ttl;
                entries.retain(|_, (at, _)| at.elapsed() < ttl);
            }
            entries.insert(channel.id, (std::time::Instant::now(), channel.clone()));
        }
    }
}

impl AppState {
    pub fn new(pool: PgPool, subjects: atende_bus::Subjects, body_limit: usize) -> Self {
        Self {
            pool,
            subjects,
            body_limit,
            channels: ChannelCache::new(std::time::Duration::from_secs(5)),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/webhooks/whatsapp/{channel_id}",
            get(whatsapp_verify).post(whatsapp_event),
        )
        .with_state(state)
}

#[derive(serde::Deserialize)]
struct VerifyQuery {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

async fn load_channel(state: &AppState, raw_id: &str) -> std::result::Result<atende_store::admin::Channel, Response> {
    let Ok(id) = Uuid::parse_str(raw_id) else {
        return Err(error(ErrorCode::UnknownChannel, "channel id is not a UUID").into_response());
    };
    if let Some(c) = state.channels.get(id) {
        return Ok(c);
    }
    match atende_store::admin::get_channel(&state.pool, id).await {
        Ok(Some(c)) if c.kind == "whatsapp" => {
            state.channels.put(&c);
            Ok(c)
        }
        Ok(_) => Err(error(ErrorCode::UnknownChannel, "").into_response()),
        Err(e) => {
            tracing::warn!(error = &e as &dyn std::error::Error, "channel lookup failed");
            Err(error(ErrorCode::Unavailable, "").into_response())
        }
    }
}

async fn whatsapp_verify(
    State(state): State<AppState>,
    Path(channel_id): Path<String>,
    Query(q): Query<VerifyQuery>,
) -> Response {
    let channel = match load_channel(&state, &channel_id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match handshake::verify_subscription(
        q.mode.as_deref(),
        q.token.as_deref(),
        q.challenge.as_deref(),
        &channel.verify_token,
    ) {
        Ok(challenge) => (StatusCode::OK, challenge).into_response(),
        Err(e) => {
            tracing::info!(channel_id = %channel.id, reason = %e, "verification handshake refused");
            error(e.code(), "verification refused").into_response()
        }
    }
}

async fn whatsapp_event(
    State(state): State<AppState>,
    Path(channel_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let channel = match load_channel(&state, &channel_id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let raw = match axum::body::to_bytes(body, state.body_limit).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                ErrorCode::PayloadTooLarge,
                &format!("limit is {} bytes", state.body_limit),
            )
            .into_response()
        }
    };
    let sig = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    if let Err(e) = signature::verify_signature(channel.app_secret.as_bytes(), &raw, sig) {
        tracing::info!(channel_id = %channel.id, reason = %e, "webhook signature refused");
        return error(ErrorCode::InvalidSignature, "").into_response();
    }
    let items = match crate::whatsapp::parse::parse_webhook(&raw) {
        Ok(items) => items,
        Err(e) => {
            tracing::info!(channel_id = %channel.id, reason = %e, "malformed webhook");
            return error(ErrorCode::MalformedPayload, &e.to_string()).into_response();
        }
    };
    match ingest::store_whatsapp(&state.pool, &state.subjects, &channel, items).await {
        Ok(outcome) => {
            tracing::info!(channel_id = %channel.id, new = outcome.new, duplicates = outcome.duplicates, "webhook stored");
            StatusCode::OK.into_response()
        }
        Err(e) => {
            tracing::warn!(channel_id = %channel.id, error = &e as &dyn std::error::Error, "webhook not stored");
            error(ErrorCode::Unavailable, "").into_response()
        }
    }
}
