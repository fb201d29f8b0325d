//! The agent's conversation list (seed 004's cards and list): his open conversations with
//! what each card shows, searched, filtered and sorted by TTA, keyset-paged.

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// What narrows and orders the list.
#[derive(Clone, Debug, Default)]
pub struct DeskQuery<'a> {
    /// Matches the contact's name, the service's name or a protocol number (any leg).
    pub search: &'a str,
    pub service: Option<Uuid>,
    /// whatsapp, messenger, instagram or webchat.
    pub channel_kind: Option<&'a str>,
    pub tag: Option<Uuid>,
    /// Longest TTA first (the oldest opening first); false: shortest first.
    pub longest_first: bool,
    /// Continue after this (opened_at, id).
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: i64,
}

#[derive(Clone, Debug, FromRow)]
pub struct DeskItem {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub contact_name: Option<String>,
    /// The contact's WhatsApp number, shown on first contact when he has no name.
    pub contact_phone: Option<String>,
    pub channel_id: Uuid,
    pub channel_kind: String,
    pub service_id: Option<Uuid>,
    pub service_name: Option<String>,
    pub status: String,
    pub protocol: String,
    pub opened_at: OffsetDateTime,
    pub last_text: Option<String>,
    pub last_kind: Option<String>,
    pub last_direction: Option<String>,
    pub last_at: Option<OffsetDateTime>,
    /// When the agent side last sent something.
    pub last_sent_at: Option<OffsetDateTime>,
    pub unread: i64,
    pub has_draft: bool,
    /// The customer's last message on the number replies leave from (the window's start).
    pub last_inbound_at: Option<OffsetDateTime>,
}

pub async fn agent_desk(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    agent: Uuid,
    q: &DeskQuery<'_>,
) -> Result<Vec<DeskItem>> {
    let (op, dir) = if q.longest_first { (">", "ASC") } else { ("<", "DESC") };
    let search = q.search.trim();
    let like = format!(
        "%{}%",
        search.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
    );
    let prefix = format!(
        "{}%",
        search.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
    );
    let (after_at, after_id) = q.after.map_or((None, None), |(at, id)| (Some(at), Some(id)));
    Ok(sqlx::query_as::<_, DeskItem>(&format!(
        "SELECT c.id, c.contact_id, ct.name AS contact_name,
                (SELECT ci.value FROM contact_identities ci
                  WHERE ci.contact_id = c.contact_id AND ci.kind = 'wa_phone' LIMIT 1) AS contact_phone,
                c.channel_id, ch.kind AS channel_kind, c.service_id, s.name AS service_name,
                c.status, c.protocol, c.opened_at,
                lm.body AS last_text, lm.kind AS last_kind, lm.direction AS last_direction, lm.created_at AS last_at,
                lo.created_at AS last_sent_at,
                (SELECT count(*) FROM messages m
                  WHERE m.conversation_id = c.id AND m.direction = 'inbound'
                    AND m.seq > COALESCE((SELECT r.read_seq FROM agent_reads r
                                           WHERE r.agent_id = $2 AND r.conversation_id = c.id), 0)) AS unread,
                EXISTS (SELECT 1 FROM drafts d WHERE d.agent_id = $2 AND d.conversation_id = c.id) AS has_draft,
                COALESCE(w.last_inbound_at, c.last_inbound_at) AS last_inbound_at
           FROM conversations c
           JOIN contacts ct ON ct.id = c.contact_id
           JOIN channels ch ON ch.id = c.channel_id
           LEFT JOIN services s ON s.id = c.service_id
           LEFT JOIN customer_windows w
                  ON w.contact_id = c.contact_id AND w.channel_id = COALESCE(c.reply_channel_id, c.channel_id)
           LEFT JOIN LATERAL (SELECT body, kind, direction, created_at FROM messages
                               WHERE conversation_id = c.id AND direction <> 'note'
                               ORDER BY seq DESC LIMIT 1) lm ON true
           LEFT JOIN LATERAL (SELECT created_at FROM messages
                               WHERE conversation_id = c.id AND direction = 'outbound'
                               ORDER BY seq DESC LIMIT 1) lo ON true
          WHERE c.tenant_id = $1 AND c.agent_id = $2 AND c.status IN ('offered', 'assigned')
            AND ($3 = '' OR ct.name ILIKE $4 OR s.name ILIKE $4
                 OR EXISTS (SELECT 1 FROM protocols p WHERE p.conversation_id = c.id AND p.number LIKE $5))
            AND ($6::uuid IS NULL OR c.service_id = $6)
            AND ($7::text IS NULL OR ch.kind = $7)
            AND ($8::uuid IS NULL OR EXISTS (SELECT 1 FROM conversation_tags t
                                              WHERE t.conversation_id = c.id AND t.tag_id = $8))
            AND ($9::timestamptz IS NULL OR (c.opened_at, c.id) {op} ($9, $10))
          ORDER BY c.opened_at {dir}, c.id {dir}
          LIMIT $11"
    ))
    .bind(tenant)
    .bind(agent)
    .bind(search)
    .bind(&like)
    .bind(&prefix)
    .bind(q.service)
    .bind(q.channel_kind)
    .bind(q.tag)
    .bind(after_at)
    .bind(after_id)
    .bind(q.limit)
    .fetch_all(db)
    .await?)
}
