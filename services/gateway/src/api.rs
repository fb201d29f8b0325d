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
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Claims, Keys};
use crate::hub::Hub;
use crate::views::{MessageEnvelope, MessagesPage, PresenceView};

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
    pub broadcast: atende_runtime::clients::BroadcastClient,
    /// How often the supervisor's stream sends the counters.
    pub counters_every: std::time::Duration,
}

/// Every route with its description: the router and `/openapi.json` come from this one list.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(crate::login::login))
        .routes(routes!(crate::login::refresh))
        .routes(routes!(crate::login::logout))
        .routes(routes!(crate::login::ws_ticket))
        .routes(routes!(set_presence, get_presence))
        .routes(routes!(list_messages, send_message))
        .routes(routes!(accept_offer))
        .routes(routes!(claim))
        .routes(routes!(crate::socket::websocket))
        .merge(crate::workspace::routes())
        .merge(crate::supervisor::routes())
        .merge(crate::administration::routes())
}

/// The API, and its OpenAPI document at `/openapi.json`.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = routes().split_for_parts();
    let doc: Arc<str> = crate::openapi::complete(doc)
        .to_pretty_json()
        .unwrap_or_default()
        .into();
    routes
        .route(
            "/openapi.json",
            get(move || async move { ([(http::header::CONTENT_TYPE, "application/json")], doc.to_string()) }),
        )
        .with_state(state)
}

/// The API's OpenAPI document, as `/openapi.json` serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    crate::openapi::complete(routes().split_for_parts().1)
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

#[derive(Deserialize, ToSchema)]
pub(crate) struct PresenceBody {
    /// available, paused or offline.
    #[schema(example = "available")]
    status: String,
    /// Channel kinds to be logged into (whatsapp, instagram, messenger, webchat); all kinds
    /// when absent.
    channels: Option<Vec<String>>,
}

fn presence_view(p: Option<pb::AgentPresence>) -> PresenceView {
    PresenceView::from(p.unwrap_or_default())
}

/// Logs into channels and out of them, pauses and resumes (seed 001). Logging out of every
/// channel is refused while conversations are in progress.
#[utoipa::path(put, path = "/api/v1/me/presence", tag = "presence", request_body = PresenceBody,
    responses((status = 200, description = "The agent's presence now", body = PresenceView)))]
pub(crate) async fn set_presence(
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
        Ok(r) => Json(presence_view(r.into_inner().presence)).into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

#[utoipa::path(get, path = "/api/v1/me/presence", tag = "presence",
    responses((status = 200, description = "The agent's presence", body = PresenceView)))]
pub(crate) async fn get_presence(State(state): State<AppState>, Agent(claims): Agent) -> Response {
    let req = pb::GetPresenceRequest {
        tenant_id: claims.tenant.to_string(),
        agent_id: claims.sub.to_string(),
    };
    match state.router.clone().get_presence(req).await {
        Ok(r) => Json(presence_view(r.into_inner().presence)).into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

pub(crate) fn path_id(raw: &str) -> Result<Uuid, ErrorResponse> {
    Uuid::parse_str(raw).map_err(|_| error(ErrorCode::InvalidArgument, "the id in the path must be a UUID"))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// From `next_page_token` of the previous page.
    pub(crate) page_token: Option<String>,
    /// The listing's own default when absent (50 messages).
    pub(crate) page_size: Option<i32>,
}

/// The conversation's messages, newest page first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation"), PageQuery),
    responses((status = 200, description = "A page of messages", body = MessagesPage)))]
pub(crate) async fn list_messages(
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
            Json(MessagesPage {
                messages: r.messages.iter().map(crate::frames::message).collect(),
                next_page_token: r.next_page_token,
            })
            .into_response()
        }
        Err(s) => from_status(&s).into_response(),
    }
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct SendBody {
    #[schema(example = "Olá, Maria! Como posso ajudar?")]
    text: String,
    /// Chosen by the client: a retry with the same id sends nothing twice.
    client_message_id: Option<String>,
    /// The message this reply quotes.
    reply_to_message_id: Option<String>,
}

/// A reply to the customer on the conversation's channel.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation")), request_body = SendBody,
    responses((status = 201, description = "The message, queued for the provider", body = MessageEnvelope)))]
pub(crate) async fn send_message(
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
            Json(MessageEnvelope {
                message: crate::views::message(r.into_inner().message.as_ref()),
            }),
        )
            .into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

/// Accepts the conversation offered to the agent.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/accept", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation offered")),
    responses((status = 204, description = "The conversation is the agent's")))]
pub(crate) async fn accept_offer(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path(id): Path<String>,
) -> Response {
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

/// Takes a conversation from one of the agent's service queues (manual pick).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/claim", tag = "conversations",
    params(("id" = Uuid, Path, description = "The queued conversation")),
    responses((status = 204, description = "The conversation is the agent's")))]
pub(crate) async fn claim(State(state): State<AppState>, Agent(claims): Agent, Path(id): Path<String>) -> Response {
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
