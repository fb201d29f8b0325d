//! The transactional outbox and the dead-letter record.
//!
//! Writers call [`enqueue`] inside the transaction of the effect it announces; the relay
//! ([`claim`] / [`mark_published`]) publishes committed rows in id order. Until a row is
//! published it survives any crash, which is what lets an adapter answer a webhook 200
//! right after its commit.

use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use crate::Result;

#[derive(Clone, Debug, FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub subject: String,
    pub msg_id: String,
    pub payload: Vec<u8>,
    pub headers: sqlx::types::Json<Vec<(String, String)>>,
}

/// Queues a message for publication. `msg_id` is unique: enqueuing the same id twice is a
/// no-op (returns false), so a retried transaction never publishes twice.
pub async fn enqueue(
    tx: &mut PgConnection,
    tenant: Uuid,
    subject: &str,
    msg_id: &str,
    payload: &[u8],
    headers: &[(String, String)],
) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO outbox (tenant_id, subject, msg_id, payload, headers) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (msg_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(subject)
    .bind(msg_id)
    .bind(payload)
    .bind(sqlx::types::Json(headers))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Locks up to `limit` unpublished rows, oldest first. Only one relay holds the outbox at a
/// time (a transaction-scoped advisory lock), which keeps publication in commit order per
/// writer without coordinating replicas any other way; others return an empty batch.
pub async fn claim(tx: &mut PgConnection, limit: i64) -> Result<Vec<OutboxRow>> {
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(7104650313)")
        .fetch_one(&mut *tx)
        .await?;
    if !leader {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as::<_, OutboxRow>(
        "SELECT id, subject, msg_id, payload, headers FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?)
}

pub async fn mark_published(tx: &mut PgConnection, ids: &[i64]) -> Result<()> {
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn unpublished_count(db: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(db)
            .await?,
    )
}

/// Records a message a consumer terminated, with why. `tenant` is the one its subject names.
pub async fn dead_letter(
    db: impl PgExecutor<'_>,
    consumer: &str,
    subject: &str,
    tenant: Option<Uuid>,
    payload: &[u8],
    reason: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO dead_letters (consumer, subject, tenant_id, payload, reason) VALUES ($1, $2, $3, $4, $5)")
        .bind(consumer)
        .bind(subject)
        .bind(tenant)
        .bind(payload)
        .bind(reason)
        .execute(db)
        .await?;
    Ok(())
}

#[derive(Clone, Debug, FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub subject: String,
    pub tenant_id: Option<Uuid>,
    pub payload: Vec<u8>,
    pub reason: String,
    pub at: time::OffsetDateTime,
    pub replayed_at: Option<time::OffsetDateTime>,
    pub replays: i32,
}

/// Dead letters after `after` (by id), optionally of one tenant and only those not replayed.
pub async fn list_dead_letters(
    db: impl PgExecutor<'_>,
    tenant: Option<Uuid>,
    pending_only: bool,
    after: i64,
    limit: i64,
) -> Result<Vec<DeadLetter>> {
    Ok(sqlx::query_as::<_, DeadLetter>(
        "SELECT id, consumer, subject, tenant_id, payload, reason, at, replayed_at, replays FROM dead_letters
         WHERE id > $1 AND ($2::uuid IS NULL OR tenant_id = $2) AND (NOT $3 OR replayed_at IS NULL)
         ORDER BY id LIMIT $4",
    )
    .bind(after)
    .bind(tenant)
    .bind(pending_only)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Puts a dead letter back on its subject through the outbox (so the replay is as durable as
/// any publication) and marks it replayed, in one transaction. `None`: no such dead letter
/// (of that tenant). A fresh message id per replay: JetStream must not drop it as a duplicate
/// of the original, and the consumers' own dedupe makes a replay of a processed message a no-op.
pub async fn replay_dead_letter(tx: &mut PgConnection, id: i64, tenant: Option<Uuid>) -> Result<Option<DeadLetter>> {
    let row = sqlx::query_as::<_, DeadLetter>(
        "UPDATE dead_letters SET replayed_at = now(), replays = replays + 1
         WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)
         RETURNING id, consumer, subject, tenant_id, payload, reason, at, replayed_at, replays",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let msg_id = format!("replay-{}-{}", row.id, row.replays);
    enqueue(
        tx,
        row.tenant_id.unwrap_or_default(),
        &row.subject,
        &msg_id,
        &row.payload,
        &[],
    )
    .await?;
    Ok(Some(row))
}
