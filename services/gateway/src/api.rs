//! The gateway's HTTP API (JSON) and the agent WebSocket.
//!
//! Errors answer with the platform's stable codes and en/pt-BR messages
//! (`atende_runtime::http_api`); gRPC errors from other roles keep their code.

use std::sync::Arc;

use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_runtime::http_api::{error, from_status, ErrorResponse};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::{Claims, Keys};
use crate::hub::Hub;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub hub: Hub,
    pub keys: Arc<Keys>,
    pub session: crate::SessionClient,
    pub router: atende_runtime::clients::RouterClient,
    pub shutdown: CancellationToken,
    pub login_limits: Arc<crate::login::LoginLimits>,
    /// Shared with every replica: per-account login counts and WebSocket tickets.
    pub redis: redis::aio::ConnectionManager,
    pub redis_keys: atende_capacity::Keys,
    /// Idle lifetime of a refresh token.
    pub refresh_ttl: time::Duration,
    pub ws_ticket_ttl_secs: u64,
    /// Longest wait for a socket to take one frame.
    pub socket_write_timeout: std::time::Duration,
    pub presence: crate::presence::Presence,
    pub bus: atende_bus::Bus,
    pub admin: atende_runtime::clients::AdminClient,
    /// How often the supervisor's stream sends the counters.
    pub counters_every: std::time::Duration,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/auth/login", post(crate::login::login))
        .route("/api/v1/auth/refresh", post(crate::login::refresh))
        .route("/api/v1/auth/logout", post(crate::login::logout))
        .route("/api/v1/ws/ticket", post(crate::login::ws_ticket))
        .route("/api/v1/me/presence", put(set_presence).get(get_presence))
        .route(
            "/api/v1/conversations/{id}/messages",
            get(list_messages).post(send_message),
        )
        .route("/api/v1/conversations/{id}/accept", post(accept_offer))
        .route("/api/v1/conversations/{id}/claim", post(claim))
        .route("/api/v1/ws", get(crate::socket::websocket))
        .merge(crate::workspace::routes())
        .merge(crate::supervisor::routes())
        .with_state(state)
}

/// The authenticated agent: `Authorization: Bearer <token>`, and nothing else (tokens never
/// travel in URLs; WebSockets use tickets).
pub struct Agent(pub Claims);

impl FromRequestParts<AppState> for Agent {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        bearer(&parts.headers, state)
            .map(Agent)
            .map_err(IntoResponse::into_response)
    }
}

/// The claims of the request's valid bearer token.
pub(crate) fn bearer(headers: &http::HeaderMap, state: &AppState) -> Result<Claims, ErrorResponse> {
    let Some(token) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
    else {
        return Err(error(ErrorCode::Unauthenticated, ""));
    };
    state
        .keys
        .verify(token)
        .ok_or_else(|| error(ErrorCode::Unauthenticated, "invalid or expired token"))
}

#[derive(Deserialize)]
struct PresenceBody {
    /// available, paused or offline.
    status: String,
    /// Channel kinds to be logged into; all kinds when absent.
    channels: Option<Vec<String>>,
}

fn presence_json(p: Option<pb::AgentPresence>) -> serde_json::Value {
    let p = p.unwrap_or_default();
    json!({
        "agent_id": p.agent_id,
        "status": pb::AgentStatus::try_from(p.status).map(|s| s.as_str_name()).unwrap_or("AGENT_STATUS_UNSPECIFIED").trim_start_matches("AGENT_STATUS_").to_ascii_lowercase(),
        "channels": p.channels.iter().map(|c| json!({"channel_kind": c.channel_kind, "paused": c.paused})).collect::<Vec<_>>(),
        "assigned": p.assigned,
        "offered": p.offered,
        "max_concurrent": p.max_concurrent,
    })
}

async fn set_presence(
    State(state): State<AppState>,
    Agent(claims): Agent,
    body: Result<Json<PresenceBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(ErrorCode::MalformedPayload, "expected {status, channels?}").into_response();
    };
    let kinds = body.channels.unwrap_or_else(|| {
        atende_domain::channel::ChannelKind::ALL
            .iter()
            .map(|k| k.as_str().to_string())
            .collect()
    });
    if let Some(bad) = kinds
        .iter()
        .find(|k| atende_domain::channel::ChannelKind::parse(k).is_none())
    {
        return error(ErrorCode::InvalidArgument, &format!("unknown channel kind {bad}")).into_response();
    }
    let channels = match body.status.as_str() {
        "available" => kinds
            .into_iter()
            .map(|k| pb::ChannelLogin {
                channel_kind: k,
                paused: false,
            })
            .collect(),
        "paused" => kinds
            .into_iter()
            .map(|k| pb::ChannelLogin {
                channel_kind: k,
                paused: true,
            })
            .collect(),
        "offline" => Vec::new(),
        _ => {
            return error(
                ErrorCode::InvalidArgument,
                "status must be available, paused or offline",
            )
            .into_response()
        }
    };
    let req = pb::SetPresenceRequest {
        tenant_id: claims.tenant.to_string(),
        agent_id: claims.sub.to_string(),
        connected: true,
        channels,
        logout: false,
    };
    match state.router.clone().set_presence(req).await {
        Ok(r) => Json(presence_json(r.into_inner().presence)).into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

async fn get_presence(State(state): State<AppState>, Agent(claims): Agent) -> Response {
    let req = pb::GetPresenceRequest {
        tenant_id: claims.tenant.to_string(),
        agent_id: claims.sub.to_string(),
    };
    match state.router.clone().get_presence(req).await {
        Ok(r) => Json(presence_json(r.into_inner().presence)).into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

pub(crate) fn path_id(raw: &str) -> Result<Uuid, ErrorResponse> {
    Uuid::parse_str(raw).map_err(|_| error(ErrorCode::InvalidArgument, "conversation id must be a UUID"))
}

#[derive(Deserialize)]
struct PageQuery {
    page_token: Option<String>,
    page_size: Option<i32>,
}

async fn list_messages(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let id = match path_id(&id) {
        Ok(i) => i,
        Err(r) => return r.into_response(),
    };
    let Ok(Query(q)) = q else {
        return error(ErrorCode::InvalidArgument, "expected ?page_token=&page_size=<integer>").into_response();
    };
    if let Err(r) = crate::workspace::accessible(&state, &claims, id).await {
        return r.into_response();
    }
    let req = pb::ListMessagesRequest {
        tenant_id: claims.tenant.to_string(),
        conversation_id: id.to_string(),
        page_size: q.page_size.unwrap_or(50),
        page_token: q.page_token.unwrap_or_default(),
    };
    match state.session.clone().list_messages(req).await {
        Ok(r) => {
            let r = r.into_inner();
            Json(json!({ "messages": r.messages.iter().map(crate::frames::message).collect::<Vec<_>>(), "next_page_token": r.next_page_token })).into_response()
        }
        Err(s) => from_status(&s).into_response(),
    }
}

#[derive(Deserialize)]
struct SendBody {
    text: String,
    client_message_id: Option<String>,
    reply_to_message_id: Option<String>,
}

async fn send_message(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path(id): Path<String>,
    body: Result<Json<SendBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let id = match path_id(&id) {
        Ok(i) => i,
        Err(r) => return r.into_response(),
    };
    let Ok(Json(body)) = body else {
        return error(ErrorCode::MalformedPayload, "expected {text, client_message_id?}").into_response();
    };
    let req = pb::SendMessageRequest {
        tenant_id: claims.tenant.to_string(),
        conversation_id: id.to_string(),
        agent_id: claims.sub.to_string(),
        text: body.text,
        client_message_id: body.client_message_id.unwrap_or_default(),
        reply_to_message_id: body.reply_to_message_id.unwrap_or_default(),
    };
    match state.session.clone().send_message(req).await {
        Ok(r) => (
            StatusCode::CREATED,
            Json(json!({ "message": r.into_inner().message.as_ref().map(crate::frames::message) })),
        )
            .into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

async fn accept_offer(State(state): State<AppState>, Agent(claims): Agent, Path(id): Path<String>) -> Response {
    let id = match path_id(&id) {
        Ok(i) => i,
        Err(r) => return r.into_response(),
    };
    let req = pb::AcceptOfferRequest {
        tenant_id: claims.tenant.to_string(),
        conversation_id: id.to_string(),
        agent_id: claims.sub.to_string(),
    };
    match state.router.clone().accept_offer(req).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

async fn claim(State(state): State<AppState>, Agent(claims): Agent, Path(id): Path<String>) -> Response {
    let id = match path_id(&id) {
        Ok(i) => i,
        Err(r) => return r.into_response(),
    };
    let req = pb::ClaimConversationRequest {
        tenant_id: claims.tenant.to_string(),
        conversation_id: id.to_string(),
        agent_id: claims.sub.to_string(),
    };
    match state.router.clone().claim_conversation(req).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}
