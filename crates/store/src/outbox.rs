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

/// Records a message a consumer terminated, with why.
pub async fn dead_letter(
    db: impl PgExecutor<'_>,
    consumer: &str,
    subject: &str,
    payload: &[u8],
    reason: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO dead_letters (consumer, subject, payload, reason) VALUES ($1, $2, $3, $4)")
        .bind(consumer)
        .bind(subject)
        .bind(payload)
        .bind(reason)
        .execute(db)
        .await?;
    Ok(())
}
