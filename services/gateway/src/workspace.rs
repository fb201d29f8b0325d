//! The agent's workspace over HTTP (seed 004), each route a thin mapping of a `SessionService`
//! call made as the authenticated agent: conversation detail with its indicators and legs,
//! finish, transfer (to a service `#` or a user `@`), the contact's history, internal notes,
//! drafts, read marks, canned responses, tags, an agent-initiated WhatsApp conversation,
//! in-person attendances, the "Aguardando" list, and the supervisor's bulk transfers.
//!
//! Every route about one conversation first checks that the agent may see it (his own, or any
//! of the tenant for a supervisor), so nothing is read or written through a foreign id; the
//! session service checks again what it owns (ownership for finish and transfer, the
//! supervisor's role for bulk actions, the in-person permission).

use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_runtime::http_api::{error, from_status, ErrorResponse};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::api::{path_id, Agent, AppState};
use crate::auth::Claims;
use crate::frames;
use crate::views::{
    self, CannedResponses, ChannelTemplates, ConversationDetail, ConversationEnvelope, Conversations, DeskCard,
    DeskPage, Drafts, Finished, HistoryEntryView, HistoryPage, MessageEnvelope, ReadMark, ScheduledSendEnvelope,
    ScheduledSends, Started, TagEnvelope, Tags, TransferOutcomes, Transferred, UnreadList,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_conversation))
        .routes(routes!(detail))
        .routes(routes!(finish))
        .routes(routes!(transfer))
        .routes(routes!(history))
        .routes(routes!(add_note))
        .routes(routes!(save_draft))
        .routes(routes!(mark_read))
        .routes(routes!(conversation_tags))
        .routes(routes!(attach_tag, detach_tag))
        .routes(routes!(desk))
        .routes(routes!(drafts))
        .routes(routes!(unread))
        .routes(routes!(canned_responses))
        .routes(routes!(tags, create_tag))
        .routes(routes!(in_person))
        .routes(routes!(waiting))
        .routes(routes!(claim_waiting))
        .routes(routes!(channel_templates))
        .routes(routes!(scheduled_sends))
        .routes(routes!(reschedule_send, cancel_scheduled_send))
        .routes(routes!(bulk_transfer))
        .routes(routes!(transfer_by_tag))
}

/// A JSON body of the expected shape, or MALFORMED_PAYLOAD naming it.
fn body<T>(b: Result<Json<T>, JsonRejection>, expected: &str) -> Result<T, ErrorResponse> {
    b.map(|Json(t)| t)
        .map_err(|_| error(ErrorCode::MalformedPayload, &format!("expected {expected}")))
}

fn query<T>(q: Result<Query<T>, QueryRejection>, expected: &str) -> Result<T, ErrorResponse> {
    q.map(|Query(t)| t)
        .map_err(|_| error(ErrorCode::InvalidArgument, &format!("expected {expected}")))
}

/// The answer of a call: `ok` with `shape(reply)` as JSON, or the call's error.
fn answer<T, V: Serialize>(
    ok: StatusCode,
    r: Result<tonic::Response<T>, tonic::Status>,
    shape: impl FnOnce(T) -> V,
) -> Response {
    match r {
        Ok(r) => (ok, Json(shape(r.into_inner()))).into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

/// The conversation, when the agent may see it: his own (assigned or offered to him), or any
/// of the tenant for a supervisor. Another tenant's id is NOT_FOUND, like one that never was.
pub(crate) async fn accessible(state: &AppState, claims: &Claims, id: Uuid) -> Result<pb::Conversation, ErrorResponse> {
    let req = pb::GetConversationRequest {
        tenant_id: claims.tenant.to_string(),
        conversation_id: id.to_string(),
    };
    let c = match state.session.clone().get_conversation(req).await {
        Ok(r) => r.into_inner().conversation.unwrap_or_default(),
        Err(s) => return Err(from_status(&s)),
    };
    if claims.supervisor || c.agent_id == claims.sub.to_string() {
        Ok(c)
    } else {
        Err(error(ErrorCode::NotConversationOwner, ""))
    }
}

/// Path id parsed and access checked, in one step for every conversation route.
async fn conversation_of(state: &AppState, claims: &Claims, raw: &str) -> Result<pb::Conversation, ErrorResponse> {
    accessible(state, claims, path_id(raw)?).await
}

/// The conversation with its indicators (TTA across legs, waiting time, TM1R, TMR) and every
/// leg's protocol, first contact first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation")),
    responses((status = 200, description = "The conversation, its indicators and protocols", body = ConversationDetail)))]
async fn detail(State(state): State<AppState>, Agent(claims): Agent, Path(id): Path<String>) -> Response {
    let c = try_or_answer!(conversation_of(&state, &claims, &id).await);
    let (tenant_id, conversation_id) = (claims.tenant.to_string(), c.id.clone());
    let metrics = state
        .session
        .clone()
        .get_conversation_metrics(pb::GetConversationMetricsRequest {
            tenant_id: tenant_id.clone(),
            conversation_id: conversation_id.clone(),
        })
        .await;
    let protocols = state
        .session
        .clone()
        .list_protocols(pb::ListProtocolsRequest {
            tenant_id,
            conversation_id,
        })
        .await;
    match (metrics, protocols) {
        (Ok(m), Ok(p)) => Json(ConversationDetail {
            conversation: frames::conversation(&c),
            metrics: m.into_inner(),
            protocols: p.into_inner().protocols,
        })
        .into_response(),
        (Err(s), _) | (_, Err(s)) => from_status(&s).into_response(),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeskQuery {
    /// Part of the contact's name, the service's name or a protocol number.
    search: Option<String>,
    service_id: Option<String>,
    channel_kind: Option<String>,
    tag_id: Option<String>,
    /// tta_desc (default) or tta_asc.
    sort: Option<String>,
    page_size: Option<i32>,
    page_token: Option<String>,
}

/// The agent's open conversations as cards (seed 004): 10 at a time, `next_page_token` for
/// "Mostrar mais"; each is the conversation with what its card shows.
#[utoipa::path(get, path = "/api/v1/me/conversations", tag = "workspace", params(DeskQuery),
    responses((status = 200, description = "A page of cards", body = DeskPage)))]
async fn desk(
    State(state): State<AppState>,
    Agent(claims): Agent,
    q: Result<Query<DeskQuery>, QueryRejection>,
) -> Response {
    let q = try_or_answer!(query(
        q,
        "?search=&service_id=&channel_kind=&tag_id=&sort=tta_desc|tta_asc&page_size=&page_token="
    ));
    let req = pb::ListAgentDeskRequest {
        tenant_id: claims.tenant.to_string(),
        agent_id: claims.sub.to_string(),
        search: q.search.unwrap_or_default(),
        service_id: q.service_id.unwrap_or_default(),
        channel_kind: q.channel_kind.unwrap_or_default(),
        tag_id: q.tag_id.unwrap_or_default(),
        sort: q.sort.unwrap_or_default(),
        page_size: q.page_size.unwrap_or_default(),
        page_token: q.page_token.unwrap_or_default(),
    };
    answer(StatusCode::OK, state.session.clone().list_agent_desk(req).await, |r| {
        DeskPage {
            conversations: r.items.iter().filter_map(DeskCard::of).collect(),
            next_page_token: r.next_page_token,
        }
    })
}

#[derive(Deserialize, ToSchema)]
struct FinishBody {
    /// One of the service's qualification codes (required when the service has any).
    #[serde(default)]
    qualification: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    external_protocol: String,
    #[serde(default)]
    transcript_email: String,
}

/// Finishes the conversation: its protocol closes, the agent's capacity comes back, the
/// transcript goes to `transcript_email` when given.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/finish", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation")), request_body = FinishBody,
    responses((status = 200, description = "Finished", body = Finished)))]
async fn finish(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path(id): Path<String>,
    b: Result<Json<FinishBody>, JsonRejection>,
) -> Response {
    let b = try_or_answer!(body(
        b,
        "{qualification, description?, external_protocol?, transcript_email?}"
    ));
    let c = try_or_answer!(conversation_of(&state, &claims, &id).await);
    let req = pb::FinishConversationRequest {
        tenant_id: claims.tenant.to_string(),
        conversation_id: c.id,
        agent_id: claims.sub.to_string(),
        qualification: b.qualification,
        description: b.description,
        external_protocol: b.external_protocol,
        transcript_email: b.transcript_email,
    };
    answer(
        StatusCode::OK,
        state.session.clone().finish_conversation(req).await,
        |r| Finished {
            conversation: views::conversation(r.conversation.as_ref()),
            protocol: r.protocol,
            transcript_email: r.transcript_email,
        },
    )
}

#[derive(Deserialize, ToSchema)]
struct TransferBody {
    /// `#`: the target service.
    #[serde(default)]
    #[schema(format = Uuid)]
    service_id: String,
    /// `@`: the colleague who takes it.
    #[serde(default)]
    #[schema(format = Uuid)]
    agent_id: String,
    #[serde(default)]
    qualification: String,
    #[serde(default)]
    description: String,
}

/// Transfers the conversation to a service (`#`) or a colleague (`@`) under a new protocol
/// linked to the previous one.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/transfer", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation")), request_body = TransferBody,
    responses((status = 200, description = "Transferred", body = Transferred)))]
async fn transfer(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path(id): Path<String>,
    b: Result<Json<TransferBody>, JsonRejection>,
) -> Response {
    let b = try_or_answer!(body(b, "{service_id? | agent_id?, qualification?, description?}"));
    let c = try_or_answer!(conversation_of(&state, &claims, &id).await);
    let req = pb::TransferConversationRequest {
        tenant_id: claims.tenant.to_string(),
        conversation_id: c.id,
        agent_id: claims.sub.to_string(),
        target_service_id: b.service_id,
        qualification: b.qualification,
        description: b.description,
        target_agent_id: b.agent_id,
    };
    answer(
        StatusCode::OK,
        state.session.clone().transfer_conversation(req).await,
        |r| Transferred {
            conversation: views::conversation(r.conversation.as_ref()),
            previous: r.previous,
            current: r.current,
        },
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// From (epoch milliseconds); the last 24 h when neither bound nor a protocol is given.
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    /// One protocol number.
    protocol: Option<String>,
    page_size: Option<i32>,
    page_token: Option<String>,
}

/// The contact's conversations: the last 24 h by default, a date range, or a protocol.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/history", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation"), HistoryQuery),
    responses((status = 200, description = "The contact's earlier conversations", body = HistoryPage)))]
async fn history(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path(id): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let q = try_or_answer!(query(q, "?since_ms=&until_ms=&protocol=&page_size=&page_token="));
    let c = try_or_answer!(conversation_of(&state, &claims, &id).await);
    let req = pb::ListContactHistoryRequest {
        tenant_id: claims.tenant.to_string(),
        contact_id: c.contact_id,
        since_ms: q.since_ms.unwrap_or_default(),
        until_ms: q.until_ms.unwrap_or_default(),
        protocol: q.protocol.unwrap_or_default(),
        page_size: q.page_size.unwrap_or_default(),
        page_token: q.page_token.unwrap_or_default(),
    };
    answer(
        StatusCode::OK,
        state.session.clone().list_contact_history(req).await,
        |r| HistoryPage {
            entries: r
                .entries
                .into_iter()
                .map(|e| HistoryEntryView {
                    conversation: views::conversation(e.conversation.as_ref()),
                    protocols: e.protocols,
                    closed_at_ms: e.closed_at_ms,
                })
                .collect(),
            next_page_token: r.next_page_token,
        },
    )
}

#[derive(Deserialize, ToSchema)]
struct NoteBody {
    #[schema(min_length = 1, example = "Cliente pediu retorno amanhã")]
    text: String,
    #[serde(default)]
    client_message_id: String,
}

/// An internal comment (`!`): kept with the conversation, never sent to the customer.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/notes", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation")), request_body = NoteBody,
    responses((status = 201, description = "The note", body = MessageEnvelope)))]
async fn add_note(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path(id): Path<String>,
    b: Result<Json<NoteBody>, JsonRejection>,
) -> Response {
    let b = try_or_answer!(body(b, "{text, client_message_id?}"));
    let c = try_or_answer!(conversation_of(&state, &claims, &id).await);
    let req = pb::AddNoteRequest {
        tenant_id: claims.tenant.to_string(),
        conversation_id: c.id,
        agent_id: claims.sub.to_string(),
        text: b.text,
        client_message_id: b.client_message_id,
    };
    answer(StatusCode::CREATED, state.session.clone().add_note(req).await, |r| {
        MessageEnvelope {
            message: views::message(r.message.as_ref()),
        }
    })
}

#[derive(Deserialize, ToSchema)]
struct DraftBody {
    /// Empty deletes the draft.
    text: String,
}

#[utoipa::path(put, path = "/api/v1/conversations/{id}/draft", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation")), request_body = DraftBody,
    responses((status = 204, description = "Kept (or deleted when empty)")))]
async fn save_draft(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path(id): Path<String>,
    b: Result<Json<DraftBody>, JsonRejection>,
) -> Response {
    let b = try_or_answer!(body(b, "{text}"));
    let c = try_or_answer!(conversation_of(&state, &claims, &id).await);
    let req = pb::SaveDraftRequest {
        tenant_id: claims.tenant.to_string(),
        agent_id: claims.sub.to_string(),
        conversation_id: c.id,
        text: b.text,
    };
    match state.session.clone().save_draft(req).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

#[utoipa::path(get, path = "/api/v1/me/drafts", tag = "workspace",
    responses((status = 200, description = "The agent's drafts", body = Drafts)))]
async fn drafts(State(state): State<AppState>, Agent(claims): Agent) -> Response {
    let req = pb::ListDraftsRequest {
        tenant_id: claims.tenant.to_string(),
        agent_id: claims.sub.to_string(),
    };
    answer(StatusCode::OK, state.session.clone().list_drafts(req).await, |r| {
        Drafts { drafts: r.drafts }
    })
}

#[derive(Deserialize, ToSchema)]
struct ReadBody {
    /// true: "mark unread" (the last customer message is unread again).
    #[serde(default)]
    unread: bool,
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation")), request_body = ReadBody,
    responses((status = 200, description = "Unread count now", body = ReadMark)))]
async fn mark_read(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path(id): Path<String>,
    b: Result<Json<ReadBody>, JsonRejection>,
) -> Response {
    let b = try_or_answer!(body(b, "{unread?}"));
    let c = try_or_answer!(conversation_of(&state, &claims, &id).await);
    let req = pb::MarkReadRequest {
        tenant_id: claims.tenant.to_string(),
        agent_id: claims.sub.to_string(),
        conversation_id: c.id,
        unread: b.unread,
    };
    answer(StatusCode::OK, state.session.clone().mark_read(req).await, |r| {
        ReadMark { unread: r.unread }
    })
}

#[utoipa::path(get, path = "/api/v1/me/unread", tag = "workspace",
    responses((status = 200, description = "The agent's conversations with unread messages", body = UnreadList)))]
async fn unread(State(state): State<AppState>, Agent(claims): Agent) -> Response {
    let req = pb::ListUnreadRequest {
        tenant_id: claims.tenant.to_string(),
        agent_id: claims.sub.to_string(),
    };
    answer(StatusCode::OK, state.session.clone().list_unread(req).await, |r| {
        UnreadList {
            conversations: r.conversations,
        }
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CannedQuery {
    service_id: Option<String>,
    /// What was typed after the slash.
    prefix: Option<String>,
}

/// Canned responses (`/`): the service's and the tenant's, by what was typed after the slash.
#[utoipa::path(get, path = "/api/v1/canned-responses", tag = "workspace", params(CannedQuery),
    responses((status = 200, description = "Matching canned responses", body = CannedResponses)))]
async fn canned_responses(
    State(state): State<AppState>,
    Agent(claims): Agent,
    q: Result<Query<CannedQuery>, QueryRejection>,
) -> Response {
    let q = try_or_answer!(query(q, "?service_id=&prefix="));
    let req = pb::ListCannedResponsesRequest {
        tenant_id: claims.tenant.to_string(),
        service_id: q.service_id.unwrap_or_default(),
        prefix: q.prefix.unwrap_or_default(),
    };
    answer(
        StatusCode::OK,
        state.session.clone().list_canned_responses(req).await,
        |r| CannedResponses {
            canned_responses: r.canned_responses,
        },
    )
}

#[utoipa::path(get, path = "/api/v1/tags", tag = "workspace",
    responses((status = 200, description = "The tenant's tags", body = Tags)))]
async fn tags(State(state): State<AppState>, Agent(claims): Agent) -> Response {
    let req = pb::ListTagsRequest {
        tenant_id: claims.tenant.to_string(),
    };
    answer(StatusCode::OK, state.session.clone().list_tags(req).await, |r| Tags {
        tags: r.tags,
    })
}

#[derive(Deserialize, ToSchema)]
struct TagBody {
    #[schema(min_length = 1, example = "vip")]
    name: String,
}

#[utoipa::path(post, path = "/api/v1/tags", tag = "workspace", request_body = TagBody,
    responses((status = 201, description = "The tag (supervisors)", body = TagEnvelope)))]
async fn create_tag(
    State(state): State<AppState>,
    Agent(claims): Agent,
    b: Result<Json<TagBody>, JsonRejection>,
) -> Response {
    try_or_answer!(claims.require_supervisor());
    let b = try_or_answer!(body(b, "{name}"));
    let req = pb::CreateTagRequest {
        tenant_id: claims.tenant.to_string(),
        name: b.name,
    };
    answer(StatusCode::CREATED, state.session.clone().create_tag(req).await, |r| {
        TagEnvelope { tag: r.tag }
    })
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/tags", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation")),
    responses((status = 200, description = "The conversation's tags", body = Tags)))]
async fn conversation_tags(State(state): State<AppState>, Agent(claims): Agent, Path(id): Path<String>) -> Response {
    let c = try_or_answer!(conversation_of(&state, &claims, &id).await);
    let req = pb::ListTagsOfRequest {
        tenant_id: claims.tenant.to_string(),
        target: Some(pb::list_tags_of_request::Target::ConversationId(c.id)),
    };
    answer(StatusCode::OK, state.session.clone().list_tags_of(req).await, |r| {
        Tags { tags: r.tags }
    })
}

async fn set_tag(state: AppState, claims: Claims, id: String, tag: String, attached: bool) -> Response {
    let c = try_or_answer!(conversation_of(&state, &claims, &id).await);
    let req = pb::SetTagRequest {
        tenant_id: claims.tenant.to_string(),
        tag_id: tag,
        target: Some(pb::set_tag_request::Target::ConversationId(c.id)),
        attached,
    };
    match state.session.clone().set_tag(req).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

#[utoipa::path(put, path = "/api/v1/conversations/{id}/tags/{tag}", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation"), ("tag" = Uuid, Path, description = "The tag")),
    responses((status = 204, description = "Tagged")))]
async fn attach_tag(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path((id, tag)): Path<(String, String)>,
) -> Response {
    set_tag(state, claims, id, tag, true).await
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/tags/{tag}", tag = "conversations",
    params(("id" = Uuid, Path, description = "The conversation"), ("tag" = Uuid, Path, description = "The tag")),
    responses((status = 204, description = "Untagged")))]
async fn detach_tag(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path((id, tag)): Path<(String, String)>,
) -> Response {
    set_tag(state, claims, id, tag, false).await
}

#[derive(Deserialize, ToSchema)]
struct StartBody {
    /// The customer's number, Brazilian formats accepted.
    #[schema(example = "+55 11 98765-4321")]
    phone: String,
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    service_id: String,
    #[serde(default)]
    contact_name: String,
    /// Free text, inside the customer's window (empty when a template is sent).
    #[serde(default)]
    text: String,
    #[serde(default)]
    client_message_id: String,
    /// Outside the customer's window: a WhatsApp template of the origin number.
    template: Option<TemplateBody>,
    /// Later (epoch ms, up to a year ahead): checked now, sent then.
    #[serde(default)]
    send_at_ms: i64,
}

#[derive(Deserialize, ToSchema)]
struct TemplateBody {
    #[schema(example = "pedido_enviado")]
    name: String,
    #[schema(example = "pt_BR")]
    language: String,
    /// The header's text parameter, or a media header's https link.
    #[serde(default)]
    header: String,
    /// The body's parameters, in order.
    #[serde(default)]
    body: Vec<String>,
    /// The parameter of each URL button whose link takes one.
    #[serde(default)]
    buttons: Vec<TemplateButtonBody>,
}

#[derive(Deserialize, ToSchema)]
struct TemplateButtonBody {
    index: i32,
    text: String,
}

/// An agent writes first on WhatsApp, under seed 001's checks (number, capacity, another
/// agent, the customer's window).
#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations", request_body = StartBody,
    responses((status = 201, description = "The new conversation and its first message", body = Started)))]
async fn start_conversation(
    State(state): State<AppState>,
    Agent(claims): Agent,
    b: Result<Json<StartBody>, JsonRejection>,
) -> Response {
    let b = try_or_answer!(body(
        b,
        "{phone, text | template, channel_id?, service_id?, contact_name?, client_message_id?}"
    ));
    let req = pb::StartConversationRequest {
        tenant_id: claims.tenant.to_string(),
        agent_id: claims.sub.to_string(),
        phone: b.phone,
        channel_id: b.channel_id,
        service_id: b.service_id,
        contact_name: b.contact_name,
        text: b.text,
        client_message_id: b.client_message_id,
        template: b.template.map(|t| pb::TemplateUse {
            name: t.name,
            language: t.language,
            header: t.header,
            body: t.body,
            buttons: t
                .buttons
                .into_iter()
                .map(|b| pb::TemplateButtonParameter {
                    index: b.index,
                    text: b.text,
                })
                .collect(),
        }),
        send_at_ms: b.send_at_ms,
    };
    answer(
        StatusCode::CREATED,
        state.session.clone().start_conversation(req).await,
        |r| Started {
            conversation: views::conversation(r.conversation.as_ref()),
            message: views::message(r.message.as_ref()),
            ended_conversation_ids: r.ended_conversation_ids,
            scheduled_send_id: r.scheduled_send_id,
            send_at_ms: r.send_at_ms,
        },
    )
}

#[derive(Deserialize, ToSchema)]
struct InPersonBody {
    #[schema(format = Uuid)]
    service_id: String,
    /// An existing contact; or give the name (and phone, e-mail) of a new one.
    #[serde(default)]
    #[schema(format = Uuid)]
    contact_id: String,
    #[serde(default)]
    contact_name: String,
    #[serde(default)]
    contact_phone: String,
    #[serde(default)]
    contact_email: String,
    #[serde(default)]
    description: String,
}

/// Registers an in-person attendance (agents with the in_person permission).
#[utoipa::path(post, path = "/api/v1/in-person", tag = "workspace", request_body = InPersonBody,
    responses((status = 201, description = "Registered under its own protocol", body = pb::RegisterInPersonResponse)))]
async fn in_person(
    State(state): State<AppState>,
    Agent(claims): Agent,
    b: Result<Json<InPersonBody>, JsonRejection>,
) -> Response {
    try_or_answer!(claims.require("in_person"));
    let b = try_or_answer!(body(
        b,
        "{service_id, contact_id? | contact_name, contact_phone?, contact_email?, description?}"
    ));
    let req = pb::RegisterInPersonRequest {
        tenant_id: claims.tenant.to_string(),
        agent_id: claims.sub.to_string(),
        service_id: b.service_id,
        contact_id: b.contact_id,
        contact_name: b.contact_name,
        contact_phone: b.contact_phone,
        contact_email: b.contact_email,
        description: b.description,
    };
    answer(
        StatusCode::CREATED,
        state.session.clone().register_in_person(req).await,
        |r| r,
    )
}

#[utoipa::path(get, path = "/api/v1/waiting", tag = "workspace",
    responses((status = 200, description = "The tenant's \"Aguardando\" list", body = Conversations)))]
async fn waiting(State(state): State<AppState>, Agent(claims): Agent) -> Response {
    let req = pb::ListWaitingRequest {
        tenant_id: claims.tenant.to_string(),
    };
    answer(StatusCode::OK, state.session.clone().list_waiting(req).await, |r| {
        Conversations {
            conversations: r.conversations.iter().map(frames::conversation).collect(),
        }
    })
}

#[derive(Deserialize, Default, ToSchema)]
struct ClaimBody {
    /// The service to take it into; the conversation's own when empty.
    #[serde(default)]
    #[schema(format = Uuid)]
    service_id: String,
}

/// Takes a conversation from "Aguardando"; the first claim wins. The body is optional.
#[utoipa::path(post, path = "/api/v1/waiting/{id}/claim", tag = "workspace",
    params(("id" = Uuid, Path, description = "The waiting conversation")), request_body(content = Option<ClaimBody>),
    responses((status = 200, description = "The conversation is the agent's", body = ConversationEnvelope)))]
async fn claim_waiting(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Response {
    let id = try_or_answer!(path_id(&id));
    let b: ClaimBody = if raw.iter().all(u8::is_ascii_whitespace) {
        ClaimBody::default()
    } else {
        try_or_answer!(serde_json::from_slice(&raw)
            .map_err(|_| error(ErrorCode::MalformedPayload, "expected no body or {service_id?}")))
    };
    let req = pb::ClaimWaitingRequest {
        tenant_id: claims.tenant.to_string(),
        conversation_id: id.to_string(),
        agent_id: claims.sub.to_string(),
        service_id: b.service_id,
    };
    answer(StatusCode::OK, state.session.clone().claim_waiting(req).await, |r| {
        ConversationEnvelope {
            conversation: views::conversation(r.conversation.as_ref()),
        }
    })
}

/// The WhatsApp number's templates (HSM), with what each part asks a sender for: what an
/// agent picks from to write outside the customer's window.
#[utoipa::path(get, path = "/api/v1/channels/{id}/templates", tag = "workspace",
    params(("id" = Uuid, Path, description = "The WhatsApp channel (number)")),
    responses((status = 200, description = "The number's templates", body = ChannelTemplates)))]
async fn channel_templates(State(state): State<AppState>, Agent(claims): Agent, Path(id): Path<String>) -> Response {
    let id = try_or_answer!(path_id(&id));
    let req = pb::ListTemplatesRequest {
        tenant_id: claims.tenant.to_string(),
        channel_id: id.to_string(),
    };
    answer(StatusCode::OK, state.broadcast.clone().list_templates(req).await, |r| {
        ChannelTemplates { templates: r.templates }
    })
}

/// The agent's sends scheduled for later and not gone out yet (a supervisor's: the tenant's).
#[utoipa::path(get, path = "/api/v1/me/scheduled-sends", tag = "workspace",
    responses((status = 200, description = "Pending scheduled sends, soonest first", body = ScheduledSends)))]
async fn scheduled_sends(State(state): State<AppState>, Agent(claims): Agent) -> Response {
    let req = pb::ListScheduledSendsRequest {
        tenant_id: claims.tenant.to_string(),
        agent_id: claims.sub.to_string(),
    };
    answer(
        StatusCode::OK,
        state.session.clone().list_scheduled_sends(req).await,
        |r| ScheduledSends { sends: r.sends },
    )
}

#[derive(Deserialize, ToSchema)]
struct RescheduleBody {
    /// The new time (epoch ms), up to a year ahead.
    send_at_ms: i64,
}

#[utoipa::path(put, path = "/api/v1/scheduled-sends/{id}", tag = "workspace",
    params(("id" = Uuid, Path, description = "The scheduled send")), request_body = RescheduleBody,
    responses((status = 200, description = "Moved", body = ScheduledSendEnvelope)))]
async fn reschedule_send(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path(id): Path<String>,
    b: Result<Json<RescheduleBody>, JsonRejection>,
) -> Response {
    let b = try_or_answer!(body(b, "{send_at_ms}"));
    let id = try_or_answer!(path_id(&id));
    let req = pb::RescheduleSendRequest {
        tenant_id: claims.tenant.to_string(),
        id: id.to_string(),
        agent_id: claims.sub.to_string(),
        send_at_ms: b.send_at_ms,
    };
    answer(StatusCode::OK, state.session.clone().reschedule_send(req).await, |r| {
        ScheduledSendEnvelope { send: r.send }
    })
}

#[utoipa::path(delete, path = "/api/v1/scheduled-sends/{id}", tag = "workspace",
    params(("id" = Uuid, Path, description = "The scheduled send")),
    responses((status = 204, description = "Cancelled: it will not go out")))]
async fn cancel_scheduled_send(
    State(state): State<AppState>,
    Agent(claims): Agent,
    Path(id): Path<String>,
) -> Response {
    let id = try_or_answer!(path_id(&id));
    let req = pb::CancelScheduledSendRequest {
        tenant_id: claims.tenant.to_string(),
        id: id.to_string(),
        agent_id: claims.sub.to_string(),
    };
    match state.session.clone().cancel_scheduled_send(req).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

#[derive(Deserialize, ToSchema)]
struct BulkBody {
    #[schema(min_items = 1)]
    conversation_ids: Vec<Uuid>,
    #[schema(format = Uuid)]
    service_id: String,
}

/// A supervisor moves the selected conversations into a service; one outcome per item.
#[utoipa::path(post, path = "/api/v1/supervisor/bulk-transfer", tag = "supervisor", request_body = BulkBody,
    responses((status = 200, description = "One outcome per conversation, in order", body = TransferOutcomes)))]
async fn bulk_transfer(
    State(state): State<AppState>,
    Agent(claims): Agent,
    b: Result<Json<BulkBody>, JsonRejection>,
) -> Response {
    try_or_answer!(claims.require("bulk"));
    let b = try_or_answer!(body(b, "{conversation_ids, service_id}"));
    let req = pb::BulkTransferRequest {
        tenant_id: claims.tenant.to_string(),
        supervisor_id: claims.sub.to_string(),
        conversation_ids: b.conversation_ids.iter().map(Uuid::to_string).collect(),
        target_service_id: b.service_id,
    };
    answer(StatusCode::OK, state.session.clone().bulk_transfer(req).await, |r| {
        TransferOutcomes { outcomes: r.outcomes }
    })
}

#[derive(Deserialize, ToSchema)]
struct ByTagBody {
    #[schema(format = Uuid)]
    tag_id: String,
    #[schema(format = Uuid)]
    service_id: String,
}

/// A supervisor moves every open conversation carrying a tag into a service.
#[utoipa::path(post, path = "/api/v1/supervisor/transfer-by-tag", tag = "supervisor", request_body = ByTagBody,
    responses((status = 200, description = "One outcome per conversation moved", body = TransferOutcomes)))]
async fn transfer_by_tag(
    State(state): State<AppState>,
    Agent(claims): Agent,
    b: Result<Json<ByTagBody>, JsonRejection>,
) -> Response {
    try_or_answer!(claims.require("bulk"));
    let b = try_or_answer!(body(b, "{tag_id, service_id}"));
    let req = pb::TransferByTagRequest {
        tenant_id: claims.tenant.to_string(),
        supervisor_id: claims.sub.to_string(),
        tag_id: b.tag_id,
        target_service_id: b.service_id,
    };
    answer(StatusCode::OK, state.session.clone().transfer_by_tag(req).await, |r| {
        TransferOutcomes { outcomes: r.outcomes }
    })
}
