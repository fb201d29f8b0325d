//! The `SessionService` calls around a conversation that agents use all day: the
//! same-customer check, tags and transfer by tag, the contact's history, internal notes,
//! drafts, read marks and canned responses. Each takes the service's state and the request
//! and returns the response, so `api` only maps methods onto them.

use atende_domain::conversation::SameCustomerRule;
use atende_domain::ErrorCode;
use atende_proto::v1::{self as pb, domain_event};
use atende_runtime::errors::store_status;
use atende_runtime::{parse_id, status};
use atende_store::conversations as conv;
use atende_store::workspace::{self as store, Tagged};
use tonic::Status as GrpcStatus;
use uuid::Uuid;

use crate::api::SessionApi;
use crate::convert;

type Result<T> = std::result::Result<T, GrpcStatus>;

const MAX_NOTE: usize = 4096;
const HISTORY_PAGE: i32 = 20;
const DAY_MS: i64 = 24 * 3600 * 1000;

fn opt_id(field: &'static str, raw: &str) -> Result<Option<Uuid>> {
    if raw.is_empty() {
        Ok(None)
    } else {
        parse_id(field, raw).map(Some)
    }
}

async fn agent_exists(api: &SessionApi, tenant: Uuid, agent: Uuid) -> Result<atende_store::admin::Agent> {
    atende_store::admin::get_agent(&api.pool, tenant, agent)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "agent", Some("agent_id")))
}

async fn conversation(api: &SessionApi, tenant: Uuid, id: Uuid) -> Result<conv::Conversation> {
    conv::get_conversation(&api.pool, tenant, id)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "conversation", Some("conversation_id")))
}

pub async fn check_can_open(
    api: &SessionApi,
    tenant: Uuid,
    r: pb::CheckCanOpenRequest,
) -> Result<pb::CheckCanOpenResponse> {
    let contact: Uuid = parse_id("contact_id", &r.contact_id)?;
    let service: Uuid = parse_id("service_id", &r.service_id)?;
    let t = atende_store::admin::get_tenant(&api.pool, tenant)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "tenant", Some("tenant_id")))?;
    let mut tx = api.pool.begin().await.map_err(|e| store_status(e.into()))?;
    atende_store::scope_tenant(&mut tx, tenant)
        .await
        .map_err(store_status)?;
    let open = conv::open_conversations_of_contact(&mut tx, contact)
        .await
        .map_err(store_status)?;
    drop(tx);
    let view = convert::open_view(&open);
    let rule = SameCustomerRule {
        allow_simultaneous: t.allow_simultaneous_conversations,
    };
    Ok(match rule.check_open(&view, Some(service)) {
        Ok(()) => pb::CheckCanOpenResponse {
            allowed: true,
            ..Default::default()
        },
        Err(e) => {
            let blocking = open
                .iter()
                .find(|c| !rule.allow_simultaneous || c.service_id == Some(service))
                .map(|c| c.id.to_string())
                .unwrap_or_default();
            pb::CheckCanOpenResponse {
                allowed: false,
                error_code: e.code.as_str().into(),
                message_en: e.code.message_en().into(),
                message_pt_br: e.code.message_pt_br().into(),
                conversation_id: blocking,
            }
        }
    })
}

fn tag_pb(t: store::Tag) -> pb::Tag {
    pb::Tag {
        id: t.id.to_string(),
        name: t.name,
    }
}

pub async fn create_tag(api: &SessionApi, tenant: Uuid, r: pb::CreateTagRequest) -> Result<pb::CreateTagResponse> {
    let name = r.name.trim();
    if name.is_empty() || name.chars().count() > 60 {
        return Err(status(
            ErrorCode::InvalidArgument,
            "name must have 1 to 60 characters",
            Some("name"),
        ));
    }
    let tag = store::create_tag(&api.pool, tenant, name).await.map_err(store_status)?;
    Ok(pb::CreateTagResponse { tag: Some(tag_pb(tag)) })
}

pub async fn list_tags(api: &SessionApi, tenant: Uuid) -> Result<pb::ListTagsResponse> {
    let tags = store::list_tags(&api.pool, tenant).await.map_err(store_status)?;
    Ok(pb::ListTagsResponse {
        tags: tags.into_iter().map(tag_pb).collect(),
    })
}

fn set_target(t: Option<pb::set_tag_request::Target>) -> Result<Tagged> {
    match t {
        Some(pb::set_tag_request::Target::ConversationId(id)) => {
            Ok(Tagged::Conversation(parse_id("conversation_id", &id)?))
        }
        Some(pb::set_tag_request::Target::ContactId(id)) => Ok(Tagged::Contact(parse_id("contact_id", &id)?)),
        None => Err(status(
            ErrorCode::InvalidArgument,
            "conversation_id or contact_id",
            Some("target"),
        )),
    }
}

pub async fn set_tag(api: &SessionApi, tenant: Uuid, r: pb::SetTagRequest) -> Result<pb::SetTagResponse> {
    let tag: Uuid = parse_id("tag_id", &r.tag_id)?;
    let target = set_target(r.target)?;
    if !store::tag_exists(&api.pool, tenant, tag).await.map_err(store_status)? {
        return Err(status(ErrorCode::NotFound, "tag", Some("tag_id")));
    }
    let mut tx = api.pool.begin().await.map_err(|e| store_status(e.into()))?;
    atende_store::scope_tenant(&mut tx, tenant)
        .await
        .map_err(store_status)?;
    if !store::set_tag(&mut tx, tenant, tag, target, r.attached)
        .await
        .map_err(store_status)?
    {
        return Err(status(ErrorCode::NotFound, "target", Some("target")));
    }
    tx.commit().await.map_err(|e| store_status(e.into()))?;
    Ok(pb::SetTagResponse {})
}

pub async fn list_tags_of(api: &SessionApi, tenant: Uuid, r: pb::ListTagsOfRequest) -> Result<pb::ListTagsOfResponse> {
    let target = match r.target {
        Some(pb::list_tags_of_request::Target::ConversationId(id)) => {
            Tagged::Conversation(parse_id("conversation_id", &id)?)
        }
        Some(pb::list_tags_of_request::Target::ContactId(id)) => Tagged::Contact(parse_id("contact_id", &id)?),
        None => {
            return Err(status(
                ErrorCode::InvalidArgument,
                "conversation_id or contact_id",
                Some("target"),
            ))
        }
    };
    let tags = store::tags_of(&api.pool, tenant, target).await.map_err(store_status)?;
    Ok(pb::ListTagsOfResponse {
        tags: tags.into_iter().map(tag_pb).collect(),
    })
}

/// The open conversations carrying the tag, for a bulk transfer.
pub async fn tagged_open(api: &SessionApi, tenant: Uuid, tag: Uuid) -> Result<Vec<Uuid>> {
    if !store::tag_exists(&api.pool, tenant, tag).await.map_err(store_status)? {
        return Err(status(ErrorCode::NotFound, "tag", Some("tag_id")));
    }
    store::open_conversations_tagged(&api.pool, tenant, tag)
        .await
        .map_err(store_status)
}

/// History page tokens are `h<opened_at µs>_<id>`: the keyset of the last row returned.
/// A keyset page token `<prefix><µs>_<id>`: continue after (time, id).
pub(crate) fn time_id_token(prefix: char, at: time::OffsetDateTime, id: Uuid) -> String {
    format!("{prefix}{}_{id}", at.unix_timestamp_nanos() / 1000)
}

/// Reads a [`time_id_token`] of `prefix`; empty: the first page.
pub(crate) fn time_id_cursor(prefix: char, token: &str) -> Result<Option<(time::OffsetDateTime, Uuid)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || status(ErrorCode::InvalidArgument, "invalid page_token", Some("page_token"));
    let (at, id) = token
        .strip_prefix(prefix)
        .and_then(|t| t.split_once('_'))
        .ok_or_else(bad)?;
    let micros: i128 = at.parse().map_err(|_| bad())?;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).map_err(|_| bad())?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok(Some((at, id)))
}

pub async fn contact_history(
    api: &SessionApi,
    tenant: Uuid,
    r: pb::ListContactHistoryRequest,
) -> Result<pb::ListContactHistoryResponse> {
    let contact: Uuid = parse_id("contact_id", &r.contact_id)?;
    let size = match r.page_size {
        0 => HISTORY_PAGE,
        n if (1..=100).contains(&n) => n,
        _ => {
            return Err(status(
                ErrorCode::InvalidArgument,
                "page_size must be 1 to 100",
                Some("page_size"),
            ))
        }
    };
    let now = atende_store::to_millis(time::OffsetDateTime::now_utc());
    let protocol = Some(r.protocol.trim()).filter(|p| !p.is_empty());
    // A protocol search spans all time; otherwise the range, by default the last 24 hours.
    let (since, until) = match (protocol, r.since_ms, r.until_ms) {
        (Some(_), _, _) => (0, i64::MAX / 4),
        (None, 0, 0) => (now - DAY_MS, now + 1),
        (None, s, 0) => (s, now + 1),
        (None, s, u) if u > s => (s, u),
        _ => {
            return Err(status(
                ErrorCode::InvalidArgument,
                "until_ms must be after since_ms",
                Some("until_ms"),
            ))
        }
    };
    let after = time_id_cursor('h', &r.page_token)?;
    let rows = store::contact_history(
        &api.pool,
        tenant,
        contact,
        atende_store::from_millis(since),
        atende_store::from_millis(until.min(253_402_300_799_000)),
        protocol,
        after,
        i64::from(size) + 1,
    )
    .await
    .map_err(store_status)?;
    let more = rows.len() > size as usize;
    let rows = &rows[..rows.len().min(size as usize)];
    let mut entries = Vec::with_capacity(rows.len());
    for (id, _, closed) in rows {
        let c = conversation(api, tenant, *id).await?;
        let legs = atende_store::legs::list_protocols(&api.pool, tenant, *id)
            .await
            .map_err(store_status)?;
        entries.push(pb::HistoryEntry {
            conversation: Some(convert::conversation(&c)),
            protocols: legs.iter().map(convert::protocol).collect(),
            closed_at_ms: closed.map(atende_store::to_millis).unwrap_or_default(),
        });
    }
    let next_page_token = match (more, rows.last()) {
        (true, Some((id, at, _))) => time_id_token('h', *at, *id),
        _ => String::new(),
    };
    Ok(pb::ListContactHistoryResponse {
        entries,
        next_page_token,
    })
}

/// An internal note: stored among the messages (visible to agents and supervisors), never
/// sent to the customer.
pub async fn add_note(api: &SessionApi, tenant: Uuid, r: pb::AddNoteRequest) -> Result<pb::AddNoteResponse> {
    let id: Uuid = parse_id("conversation_id", &r.conversation_id)?;
    let agent: Uuid = parse_id("agent_id", &r.agent_id)?;
    let text = r.text.trim();
    if text.is_empty() || text.chars().count() > MAX_NOTE {
        return Err(status(
            ErrorCode::InvalidArgument,
            "text must have 1 to 4096 characters",
            Some("text"),
        ));
    }
    let who = agent_exists(api, tenant, agent).await?;
    let mut tx = api.pool.begin().await.map_err(|e| store_status(e.into()))?;
    atende_store::scope_tenant(&mut tx, tenant)
        .await
        .map_err(store_status)?;
    let c = conv::lock_conversation(&mut tx, tenant, id)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "conversation", Some("conversation_id")))?;
    if c.agent_id != Some(agent) && !who.supervises() {
        return Err(status(ErrorCode::NotConversationOwner, "", Some("agent_id")));
    }
    let client_id = Some(r.client_message_id.as_str()).filter(|c| !c.is_empty());
    if let Some(cid) = client_id {
        if let Some(existing) = conv::message_by_client_id(&mut *tx, id, cid)
            .await
            .map_err(store_status)?
        {
            return Ok(pb::AddNoteResponse {
                message: Some(convert::message(&existing)),
            });
        }
    }
    let message = conv::insert_message(
        &mut tx,
        &conv::NewMessage {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            conversation_id: id,
            channel_id: c.channel_id,
            direction: "note",
            kind: "text",
            body: Some(text),
            media: None,
            provider_message_id: None,
            reply_to_provider_message_id: None,
            status: "note",
            agent_id: Some(agent),
            client_message_id: client_id,
            raw: None,
            sent_at: None,
        },
    )
    .await
    .map_err(store_status)?
    .ok_or_else(|| status(ErrorCode::Unavailable, "concurrent retry", None))?;
    convert::emit(
        &mut tx,
        &api.subjects,
        tenant,
        "message.created",
        domain_event::Kind::MessageCreated(pb::MessageCreated {
            message: Some(convert::message(&message)),
            agent_id: c.agent_id.map(|a| a.to_string()).unwrap_or_default(),
        }),
    )
    .await
    .map_err(store_status)?;
    tx.commit().await.map_err(|e| store_status(e.into()))?;
    Ok(pb::AddNoteResponse {
        message: Some(convert::message(&message)),
    })
}

pub async fn save_draft(api: &SessionApi, tenant: Uuid, r: pb::SaveDraftRequest) -> Result<pb::SaveDraftResponse> {
    let agent: Uuid = parse_id("agent_id", &r.agent_id)?;
    let id: Uuid = parse_id("conversation_id", &r.conversation_id)?;
    if r.text.chars().count() > 4096 {
        return Err(status(
            ErrorCode::InvalidArgument,
            "text must have at most 4096 characters",
            Some("text"),
        ));
    }
    agent_exists(api, tenant, agent).await?;
    conversation(api, tenant, id).await?;
    store::save_draft(&api.pool, tenant, agent, id, &r.text)
        .await
        .map_err(store_status)?;
    Ok(pb::SaveDraftResponse {})
}

pub async fn list_drafts(api: &SessionApi, tenant: Uuid, r: pb::ListDraftsRequest) -> Result<pb::ListDraftsResponse> {
    let agent: Uuid = parse_id("agent_id", &r.agent_id)?;
    let rows = store::list_drafts(&api.pool, tenant, agent)
        .await
        .map_err(store_status)?;
    Ok(pb::ListDraftsResponse {
        drafts: rows
            .into_iter()
            .map(|(c, text, at)| pb::Draft {
                conversation_id: c.to_string(),
                text,
                updated_at_ms: atende_store::to_millis(at),
            })
            .collect(),
    })
}

pub async fn mark_read(api: &SessionApi, tenant: Uuid, r: pb::MarkReadRequest) -> Result<pb::MarkReadResponse> {
    let agent: Uuid = parse_id("agent_id", &r.agent_id)?;
    let id: Uuid = parse_id("conversation_id", &r.conversation_id)?;
    agent_exists(api, tenant, agent).await?;
    conversation(api, tenant, id).await?;
    let unread = store::mark_read(&api.pool, tenant, agent, id, r.unread)
        .await
        .map_err(store_status)?;
    Ok(pb::MarkReadResponse { unread: unread as i32 })
}

pub async fn list_unread(api: &SessionApi, tenant: Uuid, r: pb::ListUnreadRequest) -> Result<pb::ListUnreadResponse> {
    let agent: Uuid = parse_id("agent_id", &r.agent_id)?;
    let rows = store::unread(&api.pool, tenant, agent).await.map_err(store_status)?;
    Ok(pb::ListUnreadResponse {
        conversations: rows
            .into_iter()
            .map(|(c, n)| pb::UnreadCount {
                conversation_id: c.to_string(),
                unread: n as i32,
            })
            .collect(),
    })
}

fn canned_pb(c: store::Canned) -> pb::CannedResponse {
    pb::CannedResponse {
        id: c.id.to_string(),
        service_id: c.service_id.map(|s| s.to_string()).unwrap_or_default(),
        shortcut: c.shortcut,
        text: c.body,
    }
}

pub async fn create_canned(
    api: &SessionApi,
    tenant: Uuid,
    r: pb::CreateCannedResponseRequest,
) -> Result<pb::CreateCannedResponseResponse> {
    let service = opt_id("service_id", &r.service_id)?;
    let shortcut = r.shortcut.trim().trim_start_matches('/').to_lowercase();
    if shortcut.is_empty()
        || shortcut.len() > 32
        || !shortcut
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err(status(
            ErrorCode::InvalidArgument,
            "shortcut: 1 to 32 of a-z, 0-9, _ and -",
            Some("shortcut"),
        ));
    }
    let text = r.text.trim();
    if text.is_empty() || text.chars().count() > 4096 {
        return Err(status(
            ErrorCode::InvalidArgument,
            "text must have 1 to 4096 characters",
            Some("text"),
        ));
    }
    if let Some(s) = service {
        atende_store::admin::get_service(&api.pool, tenant, s)
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::NotFound, "service", Some("service_id")))?;
    }
    let c = store::create_canned(&api.pool, tenant, service, &shortcut, text)
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                status(ErrorCode::AlreadyExists, "this shortcut exists", Some("shortcut"))
            } else {
                store_status(e)
            }
        })?;
    Ok(pb::CreateCannedResponseResponse {
        canned_response: Some(canned_pb(c)),
    })
}

pub async fn list_canned(
    api: &SessionApi,
    tenant: Uuid,
    r: pb::ListCannedResponsesRequest,
) -> Result<pb::ListCannedResponsesResponse> {
    let service = opt_id("service_id", &r.service_id)?;
    let prefix = r.prefix.trim().trim_start_matches('/').to_lowercase();
    let rows = store::list_canned(&api.pool, tenant, service, &prefix)
        .await
        .map_err(store_status)?;
    Ok(pb::ListCannedResponsesResponse {
        canned_responses: rows.into_iter().map(canned_pb).collect(),
    })
}
