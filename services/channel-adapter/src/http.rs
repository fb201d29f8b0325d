//! Webhook routes. Every answer is decided before any side effect except the final commit:
//! unknown channel → 404, body over the limit → 413, bad signature → 401, malformed JSON →
//! 400, all with nothing stored; 200 only once the content is durable; 503 when the database
//! is unavailable, so Meta retries.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atende_domain::ErrorCode;
use atende_runtime::http_api::error;
use atende_runtime::limits::{client_ip, too_many, KeyedLimit};
use atende_store::sealed::{Keyring, Purpose};
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
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
    keyring: Arc<Keyring>,
    per_ip: Arc<KeyedLimit<IpAddr>>,
    per_channel: Arc<KeyedLimit<Uuid>>,
    trust_forwarded_for: bool,
}

/// A channel with the secrets a webhook needs, opened once per cache period.
pub struct OpenChannel {
    pub channel: atende_store::admin::Channel,
    app_secret: SecretString,
    verify_token: SecretString,
}

/// Channels by id for a few seconds: every webhook needs its channel's secret, and a
/// lookup per request was a quarter of ingest's database round trips. A rotated secret or
/// a new channel takes effect within the TTL. Unknown ids are remembered as unknown for
/// longer (`limits.unknown_channel_cache_secs`), so a flood of forged ids costs no query.
/// When it was loaded, and the channel (`None`: no such channel).
type CacheEntry = (Instant, Option<Arc<OpenChannel>>);

#[derive(Clone)]
struct ChannelCache {
    ttl: Duration,
    unknown_ttl: Duration,
    entries: Arc<Mutex<HashMap<Uuid, CacheEntry>>>,
}

impl ChannelCache {
    fn new(ttl: Duration, unknown_ttl: Duration) -> Self {
        Self {
            ttl,
            unknown_ttl,
            entries: Default::default(),
        }
    }

    /// `Some(None)`: known to be unknown.
    fn get(&self, id: Uuid) -> Option<Option<Arc<OpenChannel>>> {
        let entries = self.entries.lock().ok()?;
        let (at, entry) = entries.get(&id)?;
        let ttl = if entry.is_some() { self.ttl } else { self.unknown_ttl };
        (at.elapsed() < ttl).then(|| entry.clone())
    }

    fn put(&self, id: Uuid, channel: Option<Arc<OpenChannel>>) {
        if let Ok(mut entries) = self.entries.lock() {
            // Bounded: expired entries go whenever the map grows large.
            if entries.len() > 10_000 {
                let (ttl, unknown_ttl) = (self.ttl, self.unknown_ttl);
                entries.retain(|_, (at, c)| at.elapsed() < if c.is_some() { ttl } else { unknown_ttl });
            }
            entries.insert(id, (Instant::now(), channel));
        }
    }
}

impl AppState {
    pub fn new(
        pool: PgPool,
        subjects: atende_bus::Subjects,
        keyring: Arc<Keyring>,
        cfg: &atende_config::Config,
    ) -> Self {
        Self {
            pool,
            subjects,
            body_limit: cfg.channel_adapter.body_limit_bytes,
            channels: ChannelCache::new(
                Duration::from_secs(5),
                Duration::from_secs(cfg.limits.unknown_channel_cache_secs),
            ),
            keyring,
            per_ip: Arc::new(KeyedLimit::per_second(cfg.limits.webhook_per_ip_per_sec)),
            per_channel: Arc::new(KeyedLimit::per_second(cfg.limits.webhook_per_channel_per_sec)),
            trust_forwarded_for: cfg.limits.trust_forwarded_for,
        }
    }

    /// The 429 answer when the client is over its rate (checked before anything else).
    fn limit_client(&self, peer: SocketAddr, headers: &HeaderMap) -> Option<Response> {
        let ip = client_ip(peer, headers, self.trust_forwarded_for);
        let wait = self.per_ip.check(&ip).err()?;
        tracing::info!(%ip, "webhook rate limit per client reached");
        Some(too_many(wait, "too many webhook requests from this address"))
    }

    /// The 429 answer when the channel is over its rate.
    fn limit_channel(&self, id: Uuid) -> Option<Response> {
        let wait = self.per_channel.check(&id).err()?;
        tracing::info!(channel_id = %id, "webhook rate limit per channel reached");
        Some(too_many(wait, "too many webhook requests for this channel"))
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

async fn load_channel(state: &AppState, raw_id: &str) -> std::result::Result<Arc<OpenChannel>, Response> {
    let unknown = || error(ErrorCode::UnknownChannel, "").into_response();
    let Ok(id) = Uuid::parse_str(raw_id) else {
        return Err(error(ErrorCode::UnknownChannel, "channel id is not a UUID").into_response());
    };
    if let Some(cached) = state.channels.get(id) {
        return cached.ok_or_else(unknown);
    }
    match atende_store::admin::get_channel(&state.pool, id).await {
        Ok(Some(c)) if c.kind == "whatsapp" => {
            let opened = state
                .keyring
                .open(Purpose::AppSecret, &c.app_secret)
                .and_then(|app| Ok((app, state.keyring.open(Purpose::VerifyToken, &c.verify_token)?)));
            match opened {
                Ok((app_secret, verify_token)) => {
                    let open = Arc::new(OpenChannel {
                        channel: c,
                        app_secret,
                        verify_token,
                    });
                    state.channels.put(id, Some(open.clone()));
                    Ok(open)
                }
                Err(e) => {
                    // A key missing from the configuration: Meta retries once it is fixed.
                    tracing::error!(channel_id = %id, error = &e as &dyn std::error::Error, "cannot open the channel's secrets");
                    Err(error(ErrorCode::Unavailable, "").into_response())
                }
            }
        }
        Ok(_) => {
            state.channels.put(id, None);
            Err(unknown())
        }
        Err(e) => {
            tracing::warn!(error = &e as &dyn std::error::Error, "channel lookup failed");
            Err(error(ErrorCode::Unavailable, "").into_response())
        }
    }
}

async fn whatsapp_verify(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(channel_id): Path<String>,
    Query(q): Query<VerifyQuery>,
) -> Response {
    if let Some(r) = state.limit_client(peer, &headers) {
        return r;
    }
    let open = match load_channel(&state, &channel_id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match handshake::verify_subscription(
        q.mode.as_deref(),
        q.token.as_deref(),
        q.challenge.as_deref(),
        open.verify_token.expose_secret(),
    ) {
        Ok(challenge) => (StatusCode::OK, challenge).into_response(),
        Err(e) => {
            tracing::info!(channel_id = %open.channel.id, reason = %e, "verification handshake refused");
            error(e.code(), "verification refused").into_response()
        }
    }
}

async fn whatsapp_event(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(channel_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(r) = state.limit_client(peer, &headers) {
        return r;
    }
    let open = match load_channel(&state, &channel_id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let channel = &open.channel;
    if let Some(r) = state.limit_channel(channel.id) {
        return r;
    }
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
    if let Err(e) = signature::verify_signature(open.app_secret.expose_secret().as_bytes(), &raw, sig) {
        tracing::info!(channel_id = %channel.id, reason = %e, "webhook signature refused");
        return error(ErrorCode::InvalidSignature, "").into_response();
    }
    // JSON is UTF-8 (RFC 8259); the parser skips unknown fields without decoding them, so
    // check the whole body rather than acknowledge bytes nobody could read back.
    if let Err(e) = std::str::from_utf8(&raw) {
        tracing::info!(channel_id = %channel.id, at = e.valid_up_to(), "webhook body is not utf-8");
        return error(
            ErrorCode::MalformedPayload,
            &format!("the body is not UTF-8 (invalid byte at {})", e.valid_up_to()),
        )
        .into_response();
    }
    let items = match crate::whatsapp::parse::parse_webhook(&raw) {
        Ok(items) => items,
        Err(e) => {
            tracing::info!(channel_id = %channel.id, reason = %e, "malformed webhook");
            return error(ErrorCode::MalformedPayload, &e.to_string()).into_response();
        }
    };
    match ingest::store_whatsapp(&state.pool, &state.subjects, channel, items).await {
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
