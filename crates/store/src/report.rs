//! The interaction-tracking report: every event of the protocols a filter selects, in
//! protocol and time order, from one query that both the paged list and the streamed CSV
//! export read (the export streams rows as Postgres sends them).

use futures::stream::BoxStream;
use futures::StreamExt;
use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub tenant: Uuid,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub service: Option<Uuid>,
    pub agent: Option<Uuid>,
    pub channel: Option<String>,
    pub qualification: Option<String>,
}

#[derive(Clone, Debug, FromRow)]
pub struct Row {
    pub protocol: String,
    pub at: OffsetDateTime,
    /// Unique within the protocol and instant: the keyset's tiebreaker.
    pub key: String,
    pub event: String,
    pub what: String,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub service_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub channel: String,
    pub qualification: Option<String>,
    pub detail: String,
}

/// $1 tenant, $2 since, $3 until, $4 service, $5 agent, $6 channel, $7 qualification,
/// $8..$10 the keyset (protocol, at, key) to start after, $11 limit.
const SQL: &str = "
WITH legs AS (
  SELECT p.number, p.conversation_id, p.service_id, p.agent_id, p.qualification, ch.kind AS channel
  FROM protocols p JOIN conversations c ON c.id = p.conversation_id JOIN channels ch ON ch.id = c.channel_id
  WHERE p.tenant_id = $1 AND p.opened_at >= $2 AND p.opened_at < $3
    AND ($4::uuid IS NULL OR p.service_id = $4) AND ($5::uuid IS NULL OR p.agent_id = $5)
    AND ($6::text IS NULL OR ch.kind = $6) AND ($7::text IS NULL OR p.qualification = $7)
), events AS (
  SELECT l.number AS protocol, t.at, 't' || t.id AS key, 'status' AS event, t.to_status AS what,
         t.actor_kind, t.actor_id, l.service_id, l.agent_id, l.channel, l.qualification, COALESCE(t.reason, '') AS detail
  FROM legs l JOIN conversation_transitions t ON t.tenant_id = $1 AND t.protocol = l.number
  UNION ALL
  SELECT l.number, m.created_at, 'm' || m.id, 'message', m.direction,
         CASE WHEN m.direction = 'inbound' THEN 'customer' WHEN m.agent_id IS NULL THEN 'bot' ELSE 'agent' END,
         m.agent_id, l.service_id, l.agent_id, l.channel, l.qualification,
         m.kind || ': ' || left(COALESCE(m.body, ''), 500)
  FROM legs l JOIN messages m ON m.conversation_id = l.conversation_id
  WHERE l.number = COALESCE(
    (SELECT p.number FROM protocols p WHERE p.conversation_id = m.conversation_id AND p.opened_at <= m.created_at
     ORDER BY p.opened_at DESC LIMIT 1),
    (SELECT p.number FROM protocols p WHERE p.conversation_id = m.conversation_id ORDER BY p.opened_at LIMIT 1))
  UNION ALL
  SELECT l.number, p.closed_at, 'f', 'finish', COALESCE(p.close_reason, ''), CASE WHEN p.closed_by IS NULL THEN 'system' ELSE 'agent' END,
         p.closed_by, l.service_id, l.agent_id, l.channel, l.qualification,
         concat_ws(' | ', p.qualification, p.description, p.external_protocol)
  FROM legs l JOIN protocols p ON p.tenant_id = $1 AND p.number = l.number WHERE p.closed_at IS NOT NULL
  UNION ALL
  SELECT l.number, p.csat_answered_at, 'c', 'csat', COALESCE(p.csat_score::text, 'unanswered'), 'customer',
         NULL, l.service_id, l.agent_id, l.channel, l.qualification, ''
  FROM legs l JOIN protocols p ON p.tenant_id = $1 AND p.number = l.number WHERE p.csat_answered_at IS NOT NULL
  UNION ALL
  SELECT i.protocol, i.at, 'i', 'in_person', 'registered', 'agent', i.agent_id, i.service_id, i.agent_id,
         'in_person', NULL, i.description
  FROM in_person_attendances i
  WHERE i.tenant_id = $1 AND i.at >= $2 AND i.at < $3 AND ($4::uuid IS NULL OR i.service_id = $4)
    AND ($5::uuid IS NULL OR i.agent_id = $5) AND ($6::text IS NULL OR $6 = 'in_person') AND $7::text IS NULL
)
SELECT protocol, at, key, event, what, actor_kind, actor_id, service_id, agent_id, channel, qualification, detail
FROM events
WHERE $8::text IS NULL OR (protocol, at, key) > ($8, $9, $10)
ORDER BY protocol, at, key
LIMIT $11";

fn bounds(f: &Filter) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (
        f.since.unwrap_or(now - time::Duration::days(1)),
        f.until.unwrap_or(now + time::Duration::seconds(1)),
    )
}

fn query<'q>(
    f: &'q Filter,
    after: Option<&'q (String, OffsetDateTime, String)>,
    limit: i64,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, Row, sqlx::postgres::PgArguments> {
    let (since, until) = bounds(f);
    sqlx::query_as::<_, Row>(SQL)
        .bind(f.tenant)
        .bind(since)
        .bind(until)
        .bind(f.service)
        .bind(f.agent)
        .bind(f.channel.as_deref())
        .bind(f.qualification.as_deref())
        .bind(after.map(|a| a.0.as_str()))
        .bind(after.map(|a| a.1))
        .bind(after.map(|a| a.2.as_str()))
        .bind(limit)
}

/// A page after the keyset `after`.
pub async fn page(
    pool: &PgPool,
    f: &Filter,
    after: Option<(String, OffsetDateTime, String)>,
    limit: i64,
) -> Result<Vec<Row>> {
    Ok(query(f, after.as_ref(), limit).fetch_all(pool).await?)
}

/// Every row, streamed as Postgres sends them (the caller owns the pool and filter for the
/// stream's life, e.g. in the task that writes the export).
pub fn rows<'a>(pool: &'a PgPool, f: &'a Filter) -> BoxStream<'a, Result<Row>> {
    query(f, None, i64::MAX)
        .fetch(pool)
        .map(|r| r.map_err(crate::StoreError::from))
        .boxed()
}
