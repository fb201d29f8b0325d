//! Queued conversations per service (`route_queue`), with their priority and
//! nobody-online flag: what a routing snapshot reads as the queue and what a Redis loss is
//! rebuilt from, beside `assignments` and [`crate::offers`].

use sqlx::{FromRow, PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// A conversation waiting in a service, as routing needs it.
#[derive(Clone, Debug, FromRow)]
pub struct Queued {
    pub conversation_id: Uuid,
    pub channel_kind: String,
    pub queued_at: OffsetDateTime,
    pub priority: i32,
    pub nobody_online: bool,
}

/// The head of the service's queue: conversations the router queued that are still `queued`
/// there, the first `per_kind` of each channel kind in queue order (priority, then arrival,
/// then id) — routing can place no more than the free capacity, so it need not read a long
/// backlog — plus `also`, whatever its place. `skip_flagged` leaves out conversations that
/// arrived while nobody was online (round_robin never distributes them).
pub async fn queued(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    service: Uuid,
    per_kind: i64,
    skip_flagged: bool,
    also: Option<Uuid>,
) -> Result<Vec<Queued>> {
    Ok(sqlx::query_as::<_, Queued>(
        "SELECT conversation_id, channel_kind, queued_at, priority, nobody_online FROM (
           SELECT q.conversation_id, ch.kind AS channel_kind, COALESCE(c.queued_at, c.opened_at) AS queued_at,
                  q.priority, q.nobody_online,
                  row_number() OVER (PARTITION BY ch.kind
                    ORDER BY q.priority DESC, COALESCE(c.queued_at, c.opened_at), q.conversation_id) AS place
           FROM route_queue q
           JOIN conversations c ON c.id = q.conversation_id AND c.status = 'queued' AND c.service_id = q.service_id
           JOIN channels ch ON ch.id = c.channel_id
           WHERE q.tenant_id = $1 AND q.service_id = $2 AND (NOT $4 OR NOT q.nobody_online OR q.conversation_id = $5)
         ) x WHERE place <= $3 OR conversation_id = $5",
    )
    .bind(tenant)
    .bind(service)
    .bind(per_kind)
    .bind(skip_flagged)
    .bind(also)
    .fetch_all(db)
    .await?)
}

/// How many conversations wait in the service and since when (the oldest).
pub async fn queue_depth(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    service: Uuid,
) -> Result<(i64, Option<OffsetDateTime>)> {
    Ok(sqlx::query_as::<_, (i64, Option<OffsetDateTime>)>(
        "SELECT count(*), min(COALESCE(c.queued_at, c.opened_at)) FROM route_queue q
         JOIN conversations c ON c.id = q.conversation_id AND c.status = 'queued' AND c.service_id = q.service_id
         WHERE q.tenant_id = $1 AND q.service_id = $2",
    )
    .bind(tenant)
    .bind(service)
    .fetch_one(db)
    .await?)
}

/// Records (or re-records, after a transfer into another service) a queued conversation.
pub async fn enqueue(
    tx: &mut PgConnection,
    tenant: Uuid,
    service: Uuid,
    conversation: Uuid,
    priority: i32,
    nobody_online: bool,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO route_queue (conversation_id, tenant_id, service_id, priority, nobody_online)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (conversation_id) DO UPDATE SET service_id = EXCLUDED.service_id,
           priority = EXCLUDED.priority, nobody_online = EXCLUDED.nobody_online, created_at = now()",
    )
    .bind(conversation)
    .bind(tenant)
    .bind(service)
    .bind(priority)
    .bind(nobody_online)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn dequeue(tx: &mut PgConnection, tenant: Uuid, conversation: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM route_queue WHERE conversation_id = $1 AND tenant_id = $2")
        .bind(conversation)
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The stored queue entry of a conversation (priority, flag), whatever its status.
pub async fn queue_entry(db: impl PgExecutor<'_>, conversation: Uuid) -> Result<Option<(Uuid, i32, bool)>> {
    Ok(sqlx::query_as::<_, (Uuid, i32, bool)>(
        "SELECT service_id, priority, nobody_online FROM route_queue WHERE conversation_id = $1",
    )
    .bind(conversation)
    .fetch_optional(db)
    .await?)
}

/// Drops queue rows whose conversation left the queue (assigned elsewhere, closed,
/// transferred) without the router's involvement.
pub async fn prune_queue(db: impl PgExecutor<'_>) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM route_queue q USING conversations c
         WHERE c.id = q.conversation_id AND (c.status <> 'queued' OR c.service_id IS DISTINCT FROM q.service_id)",
    )
    .execute(db)
    .await?
    .rows_affected())
}
