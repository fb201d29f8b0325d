//! The router's durable routing facts beside `assignments`: queued conversations with their
//! priority and nobody-online flag (`route_queue`) and pending offers (`route_offers`).
//! Redis holds the live copy; these rows are what a Redis loss is rebuilt from and what a
//! routing snapshot reads as the queue.

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

#[derive(Clone, Debug, FromRow)]
pub struct Offer {
    pub conversation_id: Uuid,
    pub tenant_id: Uuid,
    pub service_id: Uuid,
    pub agent_id: Uuid,
    pub channel_kind: String,
    pub offered_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub queued_at: OffsetDateTime,
    pub priority: i32,
}

const OFFER_COLS: &str =
    "conversation_id, tenant_id, service_id, agent_id, channel_kind, offered_at, expires_at, queued_at, priority";

pub async fn insert_offer(tx: &mut PgConnection, o: &Offer) -> Result<bool> {
    let n = sqlx::query(&format!(
        "INSERT INTO route_offers ({OFFER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"
    ))
    .bind(o.conversation_id)
    .bind(o.tenant_id)
    .bind(o.service_id)
    .bind(o.agent_id)
    .bind(&o.channel_kind)
    .bind(o.offered_at)
    .bind(o.expires_at)
    .bind(o.queued_at)
    .bind(o.priority)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Removes the conversation's offer; returns it when there was one.
pub async fn delete_offer(tx: &mut PgConnection, tenant: Uuid, conversation: Uuid) -> Result<Option<Offer>> {
    Ok(sqlx::query_as::<_, Offer>(&format!(
        "DELETE FROM route_offers WHERE conversation_id = $1 AND tenant_id = $2 RETURNING {OFFER_COLS}"
    ))
    .bind(conversation)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?)
}

pub async fn offers_of_service(db: impl PgExecutor<'_>, tenant: Uuid, service: Uuid) -> Result<Vec<Offer>> {
    Ok(sqlx::query_as::<_, Offer>(&format!(
        "SELECT {OFFER_COLS} FROM route_offers WHERE tenant_id = $1 AND service_id = $2"
    ))
    .bind(tenant)
    .bind(service)
    .fetch_all(db)
    .await?)
}

pub async fn offers_of_tenant(db: impl PgExecutor<'_>, tenant: Uuid) -> Result<Vec<Offer>> {
    Ok(
        sqlx::query_as::<_, Offer>(&format!("SELECT {OFFER_COLS} FROM route_offers WHERE tenant_id = $1"))
            .bind(tenant)
            .fetch_all(db)
            .await?,
    )
}

pub async fn get_offer(db: impl PgExecutor<'_>, conversation: Uuid) -> Result<Option<Offer>> {
    Ok(sqlx::query_as::<_, Offer>(&format!(
        "SELECT {OFFER_COLS} FROM route_offers WHERE conversation_id = $1"
    ))
    .bind(conversation)
    .fetch_optional(db)
    .await?)
}

/// (tenant, service) pairs with queued conversations or pending offers: what the periodic
/// sweep re-evaluates.
pub async fn active_services(db: impl PgExecutor<'_>) -> Result<Vec<(Uuid, Uuid)>> {
    Ok(sqlx::query_as::<_, (Uuid, Uuid)>(
        "SELECT tenant_id, service_id FROM route_queue UNION SELECT tenant_id, service_id FROM route_offers",
    )
    .fetch_all(db)
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
