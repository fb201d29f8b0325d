//! Missed leads waiting for the pending-message check (see the `missed_leads` migration).

use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

#[derive(Clone, Debug, FromRow)]
pub struct MissedLead {
    pub conversation_id: Uuid,
    pub tenant_id: Uuid,
    pub service_id: Uuid,
    pub missed_by: Option<Uuid>,
    pub missed_at: OffsetDateTime,
    pub notice_due_at: OffsetDateTime,
}

/// Records a missed lead for the check, in the transaction that closes it; a second record
/// of the same conversation changes nothing.
pub async fn record(
    tx: &mut PgConnection,
    tenant: Uuid,
    conversation: Uuid,
    service: Uuid,
    missed_by: Option<Uuid>,
    missed_at: OffsetDateTime,
    due: OffsetDateTime,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO missed_leads (conversation_id, tenant_id, service_id, missed_by, missed_at, notice_due_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (conversation_id) DO NOTHING",
    )
    .bind(conversation)
    .bind(tenant)
    .bind(service)
    .bind(missed_by)
    .bind(missed_at)
    .bind(due)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Up to `limit` leads whose notice is due at `now`, locked; rows another replica holds are
/// skipped, not waited for.
pub async fn lock_due(tx: &mut PgConnection, now: OffsetDateTime, limit: i64) -> Result<Vec<MissedLead>> {
    Ok(sqlx::query_as::<_, MissedLead>(
        "SELECT conversation_id, tenant_id, service_id, missed_by, missed_at, notice_due_at FROM missed_leads
          WHERE notified_at IS NULL AND notice_due_at <= $1
          ORDER BY notice_due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?)
}

/// The lead's notice went to `agent`.
pub async fn notified(tx: &mut PgConnection, conversation: Uuid, agent: Uuid, at: OffsetDateTime) -> Result<()> {
    sqlx::query("UPDATE missed_leads SET notified_agent_id = $2, notified_at = $3 WHERE conversation_id = $1")
        .bind(conversation)
        .bind(agent)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Nobody could be told: the check looks again at `due`.
pub async fn postpone(tx: &mut PgConnection, conversation: Uuid, due: OffsetDateTime) -> Result<()> {
    sqlx::query("UPDATE missed_leads SET notice_due_at = $2 WHERE conversation_id = $1")
        .bind(conversation)
        .bind(due)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
