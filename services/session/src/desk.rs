//! `ListAgentDesk`: the agent's conversation list as his screen shows it (seed 004).

use atende_domain::channel::ChannelKind;
use atende_domain::clock::Timestamp;
use atende_domain::window::window_status;
use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_runtime::errors::store_status;
use atende_runtime::{parse_id, status};
use atende_store::desk::{self as store, DeskItem, DeskQuery};
use sqlx::PgPool;
use tonic::Status;
use uuid::Uuid;

use crate::workspace::{time_id_cursor, time_id_token};

/// "10 at a time" (seed 004).
const PAGE: i64 = 10;

fn optional_id(field: &'static str, raw: &str) -> Result<Option<Uuid>, Status> {
    if raw.trim().is_empty() {
        Ok(None)
    } else {
        parse_id(field, raw.trim()).map(Some)
    }
}

pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    r: pb::ListAgentDeskRequest,
) -> Result<pb::ListAgentDeskResponse, Status> {
    let agent: Uuid = parse_id("agent_id", &r.agent_id)?;
    let limit = match r.page_size {
        0 => PAGE,
        n if (1..=100).contains(&n) => i64::from(n),
        _ => {
            return Err(status(
                ErrorCode::InvalidArgument,
                "page_size must be 1 to 100",
                Some("page_size"),
            ))
        }
    };
    let longest_first = match r.sort.as_str() {
        "" | "tta_desc" => true,
        "tta_asc" => false,
        _ => {
            return Err(status(
                ErrorCode::InvalidArgument,
                "sort is tta_desc or tta_asc",
                Some("sort"),
            ))
        }
    };
    let channel_kind = Some(r.channel_kind.trim()).filter(|k| !k.is_empty());
    if channel_kind.is_some_and(|k| ChannelKind::parse(k).is_none()) {
        return Err(status(
            ErrorCode::InvalidArgument,
            "unknown channel kind",
            Some("channel_kind"),
        ));
    }
    if r.search.chars().count() > 200 {
        return Err(status(
            ErrorCode::InvalidArgument,
            "search is at most 200 characters",
            Some("search"),
        ));
    }
    let query = DeskQuery {
        search: &r.search,
        service: optional_id("service_id", &r.service_id)?,
        channel_kind,
        tag: optional_id("tag_id", &r.tag_id)?,
        longest_first,
        after: time_id_cursor('d', &r.page_token)?,
        limit: limit + 1,
    };
    let mut rows = store::agent_desk(pool, tenant, agent, &query)
        .await
        .map_err(store_status)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let show_bands = atende_store::admin::get_tenant(pool, tenant)
        .await
        .map_err(store_status)?
        .is_some_and(|t| t.show_expiry_bands);
    let now = Timestamp(atende_store::to_millis(time::OffsetDateTime::now_utc()));
    let next_page_token = match (more, rows.last()) {
        (true, Some(last)) => time_id_token('d', last.opened_at, last.id),
        _ => String::new(),
    };
    Ok(pb::ListAgentDeskResponse {
        items: rows.into_iter().map(|row| item(row, agent, show_bands, now)).collect(),
        next_page_token,
    })
}

fn item(row: DeskItem, agent: Uuid, show_bands: bool, now: Timestamp) -> pb::DeskItem {
    let ms = |t: Option<time::OffsetDateTime>| t.map(atende_store::to_millis).unwrap_or_default();
    let window = ChannelKind::parse(&row.channel_kind).and_then(|kind| {
        window_status(
            kind,
            row.last_inbound_at.map(|t| Timestamp(atende_store::to_millis(t))),
            now,
        )
    });
    let opened = atende_store::to_millis(row.opened_at);
    let name = row.contact_name.clone().filter(|n| !n.trim().is_empty());
    pb::DeskItem {
        conversation: Some(pb::Conversation {
            id: row.id.to_string(),
            tenant_id: String::new(),
            contact_id: row.contact_id.to_string(),
            channel_id: row.channel_id.to_string(),
            channel_kind: crate::convert::channel_kind(&row.channel_kind),
            service_id: row.service_id.map(|s| s.to_string()).unwrap_or_default(),
            protocol: row.protocol.clone(),
            status: row.status.clone(),
            agent_id: agent.to_string(),
            contact_name: name.clone().unwrap_or_default(),
            opened_at_ms: opened,
        }),
        display_name: name.or_else(|| row.contact_phone.clone()).unwrap_or_default(),
        contact_phone: row.contact_phone.unwrap_or_default(),
        service_name: row.service_name.unwrap_or_default(),
        last_message_text: row.last_text.unwrap_or_default(),
        last_message_kind: row.last_kind.unwrap_or_default(),
        last_message_direction: row.last_direction.unwrap_or_default(),
        last_message_at_ms: ms(row.last_at),
        last_sent_at_ms: ms(row.last_sent_at),
        tta_ms: (now.0 - opened).max(0),
        unread: i32::try_from(row.unread).unwrap_or(i32::MAX),
        has_draft: row.has_draft,
        expiry_band: window
            .filter(|_| show_bands)
            .map(|(_, b)| b.as_str().to_string())
            .unwrap_or_default(),
        window_expires_at_ms: window.map(|(closes, _)| closes.0).unwrap_or_default(),
    }
}
