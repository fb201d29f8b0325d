//! Pending offers (`route_offers`): who was offered a conversation and until when. Redis
//! holds the live copy (the deadline set); these rows are what a Redis loss is rebuilt from.
//! The queue itself is [`crate::queue`].

use sqlx::{FromRow, PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

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
