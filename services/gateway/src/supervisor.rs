//! The supervisor's board (seed 001): agents by status with their conversations in progress
//! ("Sessões Ativas") and time in status, the queues with their waiting counts and oldest
//! wait, handing a queued conversation to an agent, finishing many at once with an outcome
//! per item, the routing decisions behind a conversation, and a live stream of the counters.
//! Supervisors only: every route answers PERMISSION_DENIED to an agent.

use std::convert::Infallible;

use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_runtime::http_api::{error, from_status, ErrorResponse};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::api::{bearer, path_id, AppState};
use crate::auth::Claims;
use crate::frames;
use crate::views::{
    status_name, AgentBoard, AgentView, Counters, DecisionView, Decisions, ErrorDetail, FinishOutcome, FinishOutcomes,
    NoticeSent, QueueBoard, QueueView, StatusCounts, WaitingSummary,
};

/// Most conversations one bulk finish may name.
const MAX_BULK: usize = 500;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(agents))
        .routes(routes!(queues))
        .routes(routes!(stream))
        .routes(routes!(assign))
        .routes(routes!(explain))
        .routes(routes!(bulk_finish))
        .routes(routes!(notice))
}

/// The supervisor behind a request (bearer token), or the refusal.
fn supervisor(headers: &http::HeaderMap, state: &AppState) -> Result<Claims, ErrorResponse> {
    let claims = bearer(headers, state)?;
    claims.require_supervisor()?;
    Ok(claims)
}

fn now_ms() -> i64 {
    atende_store::to_millis(time::OffsetDateTime::now_utc())
}

/// Every agent of the tenant with his presence.
async fn presences(state: &AppState, tenant: Uuid) -> Result<Vec<pb::AgentPresence>, tonic::Status> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = state
            .router
            .clone()
            .list_agent_presences(pb::ListAgentPresencesRequest {
                tenant_id: tenant.to_string(),
                page_size: 0,
                page_token,
            })
            .await?
            .into_inner();
        all.extend(page.presences);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

fn agent_view(p: &pb::AgentPresence, now: i64, conversations: &[pb::Conversation]) -> AgentView {
    AgentView {
        agent_id: p.agent_id.clone(),
        name: p.name.clone(),
        status: status_name(p.status),
        status_since_ms: p.status_since_ms,
        time_in_status_ms: if p.status_since_ms > 0 {
            (now - p.status_since_ms).max(0)
        } else {
            0
        },
        channels: p.channels.clone(),
        assigned: p.assigned,
        offered: p.offered,
        max_concurrent: p.max_concurrent,
        conversations: conversations.iter().map(frames::conversation).collect(),
    }
}

/// Agents by status, each with his conversations in progress ("Sessões Ativas").
#[utoipa::path(get, path = "/api/v1/supervisor/agents", tag = "supervisor",
    responses((status = 200, description = "The tenant's agents", body = AgentBoard)))]
async fn agents(State(state): State<AppState>, headers: http::HeaderMap) -> Response {
    let claims = match supervisor(&headers, &state) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let list = match presences(&state, claims.tenant).await {
        Ok(l) => l,
        Err(s) => return from_status(&s).into_response(),
    };
    let now = now_ms();
    let sessions = futures::future::join_all(list.iter().map(|p| {
        let mut session = state.session.clone();
        let req = pb::ListAgentConversationsRequest {
            tenant_id: claims.tenant.to_string(),
            agent_id: p.agent_id.clone(),
        };
        async move {
            if p.assigned + p.offered == 0 {
                return Ok(Vec::new());
            }
            session
                .list_agent_conversations(req)
                .await
                .map(|r| r.into_inner().conversations)
        }
    }))
    .await;
    let mut agents = Vec::with_capacity(list.len());
    for (p, conversations) in list.iter().zip(sessions) {
        let conversations = match conversations {
            Ok(c) => c,
            Err(s) => return from_status(&s).into_response(),
        };
        agents.push(agent_view(p, now, &conversations));
    }
    Json(AgentBoard {
        agents,
        counts: counts(&list),
    })
    .into_response()
}

fn counts(list: &[pb::AgentPresence]) -> StatusCounts {
    let of = |s: pb::AgentStatus| list.iter().filter(|p| p.status == s as i32).count();
    StatusCounts {
        available: of(pb::AgentStatus::Available),
        paused: of(pb::AgentStatus::Paused),
        inactive: of(pb::AgentStatus::Inactive),
        offline: of(pb::AgentStatus::Offline),
    }
}

/// Each service's queue, and the tenant's "Aguardando" list.
async fn queue_board(state: &AppState, tenant: Uuid) -> Result<QueueBoard, tonic::Status> {
    let mut services = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = state
            .admin
            .clone()
            .list_services(pb::ListServicesRequest {
                tenant_id: tenant.to_string(),
                page_size: 0,
                page_token,
            })
            .await?
            .into_inner();
        services.extend(page.services);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let stats = futures::future::try_join_all(services.iter().map(|s| {
        let mut router = state.router.clone();
        let req = pb::GetQueueStatsRequest {
            tenant_id: tenant.to_string(),
            service_id: s.id.clone(),
        };
        async move { router.get_queue_stats(req).await.map(|r| r.into_inner()) }
    }))
    .await?;
    let waiting = state
        .session
        .clone()
        .list_waiting(pb::ListWaitingRequest {
            tenant_id: tenant.to_string(),
        })
        .await?
        .into_inner()
        .conversations;
    let now = now_ms();
    let oldest_waiting = waiting.iter().map(|c| c.opened_at_ms).min();
    let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    Ok(QueueBoard {
        queues: services
            .iter()
            .zip(stats)
            .map(|(s, q)| QueueView {
                service_id: s.id.clone(),
                name: s.name.clone(),
                policy: s.policy.clone(),
                waiting: q.waiting,
                oldest_wait_ms: q.oldest_wait_ms,
                offered: q.offered,
                agents: StatusCounts {
                    available: count(q.agents_available),
                    paused: count(q.agents_paused),
                    inactive: count(q.agents_inactive),
                    offline: count(q.agents_offline),
                },
            })
            .collect(),
        aguardando: WaitingSummary {
            waiting: waiting.len(),
            oldest_wait_ms: oldest_waiting.map(|at| (now - at).max(0)).unwrap_or(0),
        },
    })
}

/// Each service's queue with its waiting count and oldest wait, and "Aguardando".
#[utoipa::path(get, path = "/api/v1/supervisor/queues", tag = "supervisor",
    responses((status = 200, description = "The queues", body = QueueBoard)))]
async fn queues(State(state): State<AppState>, headers: http::HeaderMap) -> Response {
    let claims = match supervisor(&headers, &state) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match queue_board(&state, claims.tenant).await {
        Ok(board) => Json(board).into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// A single-use ticket from `POST /api/v1/ws/ticket` (EventSource cannot set headers).
    ticket: Option<String>,
}

/// Server-sent events: a `counters` event (agents by status, the queues) now and every
/// `gateway.feed_sweep_ms`. Browsers' EventSource cannot set headers: `?ticket=` as for the
/// WebSocket, or the bearer token for other clients.
#[utoipa::path(get, path = "/api/v1/supervisor/stream", tag = "supervisor", params(StreamQuery),
    responses((status = 200, description = "Server-sent `counters` events, each a JSON `Counters`",
        content_type = "text/event-stream", body = String)))]
async fn stream(State(state): State<AppState>, headers: http::HeaderMap, q: Query<StreamQuery>) -> Response {
    let claims = match crate::login::ticket_or_bearer(&state, q.0.ticket.as_deref(), &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(e) = claims.require_supervisor() {
        return e.into_response();
    }
    Sse::new(counters(state, claims.tenant))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn counters(state: AppState, tenant: Uuid) -> impl Stream<Item = Result<Event, Infallible>> {
    let every = state.counters_every;
    futures::stream::unfold((state, true), move |(state, first)| async move {
        if !first {
            tokio::select! {
                _ = state.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(every) => {}
            }
        }
        let snapshot = match (presences(&state, tenant).await, queue_board(&state, tenant).await) {
            (Ok(agents), Ok(board)) => Counters {
                at_ms: now_ms(),
                agents: Some(counts(&agents)),
                board: Some(board),
                error: None,
            },
            // The stable code and its messages, as every answer of the API carries them.
            (Err(s), _) | (_, Err(s)) => {
                let code = atende_runtime::status_code_of(&s).unwrap_or(ErrorCode::Unavailable);
                Counters {
                    at_ms: now_ms(),
                    agents: None,
                    board: None,
                    error: Some(ErrorDetail {
                        code: code.as_str().into(),
                        message: code.message_en().into(),
                        message_pt_br: code.message_pt_br().into(),
                        detail: String::new(),
                    }),
                }
            }
        };
        let snapshot = serde_json::to_value(&snapshot).unwrap_or(Value::Null);
        let event = Event::default().event("counters").data(snapshot.to_string());
        Some((Ok(event), (state, false)))
    })
}

#[derive(Deserialize, ToSchema)]
struct AssignBody {
    #[schema(format = Uuid)]
    agent_id: String,
}

/// Hands a queued conversation to the chosen agent (capacity still applies).
#[utoipa::path(post, path = "/api/v1/supervisor/conversations/{id}/assign", tag = "supervisor",
    params(("id" = Uuid, Path, description = "The queued conversation")), request_body = AssignBody,
    responses((status = 204, description = "Assigned")))]
async fn assign(
    State(state): State<AppState>,
    headers: http::HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<AssignBody>, JsonRejection>,
) -> Response {
    let claims = match supervisor(&headers, &state) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Ok(Json(b)) = b else {
        return error(ErrorCode::MalformedPayload, "expected {agent_id}").into_response();
    };
    let id = match path_id(&id) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let req = pb::AssignConversationRequest {
        tenant_id: claims.tenant.to_string(),
        conversation_id: id.to_string(),
        agent_id: b.agent_id,
        supervisor_id: claims.sub.to_string(),
        directed: false,
    };
    match state.router.clone().assign_conversation(req).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

/// Why each agent got (or did not get) the conversation: the router's decision log.
#[utoipa::path(get, path = "/api/v1/supervisor/conversations/{id}/explain", tag = "supervisor",
    params(("id" = Uuid, Path, description = "The conversation")),
    responses((status = 200, description = "The router's decisions, oldest first", body = Decisions)))]
async fn explain(State(state): State<AppState>, headers: http::HeaderMap, Path(id): Path<String>) -> Response {
    let claims = match supervisor(&headers, &state) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let id = match path_id(&id) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    // Another tenant's conversation is NOT_FOUND, like one that never was.
    if let Err(e) = crate::workspace::accessible(&state, &claims, id).await {
        return e.into_response();
    }
    let req = pb::ExplainConversationRequest {
        tenant_id: claims.tenant.to_string(),
        conversation_id: id.to_string(),
    };
    match state.router.clone().explain_conversation(req).await {
        Ok(r) => {
            let decisions = r
                .into_inner()
                .decisions
                .into_iter()
                .map(|d| DecisionView {
                    at_ms: d.at_ms,
                    explanation: serde_json::from_str::<Value>(&d.explanation_json)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({})),
                    decision: d.decision,
                    agent_id: d.agent_id,
                    rule: d.rule,
                })
                .collect();
            Json(Decisions { decisions }).into_response()
        }
        Err(s) => from_status(&s).into_response(),
    }
}

#[derive(Deserialize, ToSchema)]
struct NoticeBody {
    #[schema(min_length = 1, max_length = 1000, example = "Reunião às 15h")]
    text: String,
    /// The agents to tell; empty or absent: every agent of the tenant.
    #[serde(default)]
    agent_ids: Vec<Uuid>,
    /// Chosen by the client: a retry with the same id tells no one twice.
    notice_id: Option<Uuid>,
}

/// A supervisor's notice (seed 001's supervisor notices): a `supervisor.notice` frame in each
/// named agent's feed, so it reaches every socket and survives a reconnect like any frame.
#[utoipa::path(post, path = "/api/v1/supervisor/notices", tag = "supervisor", request_body = NoticeBody,
    responses((status = 200, description = "Written to each agent's feed", body = NoticeSent)))]
async fn notice(
    State(state): State<AppState>,
    headers: http::HeaderMap,
    b: Result<Json<NoticeBody>, JsonRejection>,
) -> Response {
    let claims = match supervisor(&headers, &state) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Ok(Json(b)) = b else {
        return error(ErrorCode::MalformedPayload, "expected {text, agent_ids?, notice_id?}").into_response();
    };
    let text = b.text.trim();
    if text.is_empty() || text.chars().count() > 1000 {
        return error(ErrorCode::InvalidArgument, "text is 1 to 1000 characters").into_response();
    }
    let everyone = match presences(&state, claims.tenant).await {
        Ok(p) => p,
        Err(s) => return from_status(&s).into_response(),
    };
    let tenant_agents: Vec<Uuid> = everyone
        .iter()
        .filter_map(|p| Uuid::parse_str(&p.agent_id).ok())
        .collect();
    let targets = if b.agent_ids.is_empty() {
        tenant_agents
    } else if let Some(stranger) = b.agent_ids.iter().find(|a| !tenant_agents.contains(a)) {
        return error(
            ErrorCode::InvalidArgument,
            &format!("no agent {stranger} in this tenant"),
        )
        .into_response();
    } else {
        b.agent_ids
    };
    let notice_id = b.notice_id.unwrap_or_else(Uuid::now_v7);
    let data = json!({ "notice_id": notice_id, "from": claims.sub, "text": text, "at_ms": now_ms() });
    let frame = [atende_store::feed::NewFrame {
        ty: "supervisor.notice",
        data: &data,
        trace_id: None,
    }];
    let mut delivered = 0;
    for agent in &targets {
        match atende_store::feed::append(&state.pool, claims.tenant, *agent, notice_id, &frame).await {
            Ok(atende_store::feed::Appended::Written { head }) => {
                delivered += 1;
                crate::feed::announce(&state.hub, &state.bus, claims.tenant, *agent, head).await;
            }
            Ok(atende_store::feed::Appended::Duplicate) => {}
            Err(e) => {
                tracing::warn!(error = &e as &dyn std::error::Error, "cannot write a notice");
                return error(ErrorCode::Unavailable, "").into_response();
            }
        }
    }
    Json(NoticeSent {
        notice_id,
        agents: targets.len(),
        delivered,
    })
    .into_response()
}

#[derive(Deserialize, ToSchema)]
struct BulkFinishBody {
    #[schema(min_items = 1, max_items = 500)]
    conversation_ids: Vec<Uuid>,
    #[serde(default)]
    qualification: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    external_protocol: String,
}

/// Finishes each named conversation as the supervisor; one outcome per item, in order.
#[utoipa::path(post, path = "/api/v1/supervisor/bulk-finish", tag = "supervisor", request_body = BulkFinishBody,
    responses((status = 200, description = "One outcome per conversation, in order", body = FinishOutcomes)))]
async fn bulk_finish(
    State(state): State<AppState>,
    headers: http::HeaderMap,
    b: Result<Json<BulkFinishBody>, JsonRejection>,
) -> Response {
    let claims = match supervisor(&headers, &state) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Ok(Json(b)) = b else {
        return error(
            ErrorCode::MalformedPayload,
            "expected {conversation_ids, qualification, description?, external_protocol?}",
        )
        .into_response();
    };
    if let Err(e) = claims.require("bulk") {
        return e.into_response();
    }
    if b.conversation_ids.is_empty() || b.conversation_ids.len() > MAX_BULK {
        return error(ErrorCode::InvalidArgument, "name 1 to 500 conversations").into_response();
    }
    let requests: Vec<pb::FinishConversationRequest> = b
        .conversation_ids
        .into_iter()
        .map(|id| pb::FinishConversationRequest {
            tenant_id: claims.tenant.to_string(),
            conversation_id: id.to_string(),
            agent_id: claims.sub.to_string(),
            qualification: b.qualification.clone(),
            description: b.description.clone(),
            external_protocol: b.external_protocol.clone(),
            transcript_email: String::new(),
        })
        .collect();
    let finishes = requests.into_iter().map(|req| {
        let mut session = state.session.clone();
        async move { (req.conversation_id.clone(), session.finish_conversation(req).await) }
    });
    // A few at a time, in order: one supervisor's click must not flood the session role.
    let done: Vec<_> =
        futures::StreamExt::collect(futures::StreamExt::buffered(futures::stream::iter(finishes), 8)).await;
    let outcomes = done
        .into_iter()
        .map(|(id, r)| match r {
            Ok(done) => FinishOutcome {
                conversation_id: id,
                finished: true,
                protocol: Some(done.into_inner().protocol.map(|p| p.number).unwrap_or_default()),
                error_code: None,
                message_en: None,
                message_pt_br: None,
            },
            Err(s) => {
                let code = atende_runtime::errors::detail_of(&s)
                    .and_then(|d| ErrorCode::parse(&d.code))
                    .unwrap_or(ErrorCode::Internal);
                FinishOutcome {
                    conversation_id: id,
                    finished: false,
                    protocol: None,
                    error_code: Some(code.as_str().into()),
                    message_en: Some(code.message_en().into()),
                    message_pt_br: Some(code.message_pt_br().into()),
                }
            }
        })
        .collect();
    Json(FinishOutcomes { outcomes }).into_response()
}
