//! The transactional outbox and the dead-letter record.
//!
//! Writers call [`enqueue`] inside the transaction of the effect it announces, naming the
//! row's ordering key (a conversation, or a customer of a channel): the statement first takes
//! a transaction-scoped advisory lock on the key, so two transactions writing rows of one key
//! allocate their ids in commit order. The relay ([`lock_partitions`], [`pending`],
//! [`mark_published`]) publishes committed rows of the partitions it holds in id order, so
//! one key's rows go out in the order they committed. Until a row is published it survives
//! any crash, which is what lets an adapter answer a webhook 200 right after its commit.

use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use crate::Result;

/// How many partitions the outbox is relayed in. Stored in each row: after a change, a key's
/// older unpublished rows stay in its old partition and may go out after its new ones, so
/// change it only while the outbox is drained.
pub const PARTITIONS: i16 = 16;

/// Base of the relay's advisory lock keys (one per partition).
const RELAY_LOCK_BASE: i64 = 7_104_650_000;

/// A stable 64-bit hash of an ordering key (FNV-1a): its advisory lock and its partition.
pub fn key_hash(order_key: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in order_key.as_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

pub fn partition_of(order_key: &str) -> i16 {
    (key_hash(order_key).unsigned_abs() % PARTITIONS as u64) as i16
}

#[derive(Clone, Debug, FromRow)]
pub struct OutboxRow {
    pub id: i64,
    /// The hash of the row's ordering key (consumers' lanes follow it).
    pub partition: i16,
    pub subject: String,
    pub msg_id: String,
    pub payload: Vec<u8>,
    pub headers: sqlx::types::Json<Vec<(String, String)>>,
}

/// Queues a message for publication, ordered after every earlier row of `order_key`.
/// `msg_id` is unique: enqueuing the same id twice is a no-op (returns false), so a retried
/// transaction never publishes twice.
pub async fn enqueue(
    tx: &mut PgConnection,
    tenant: Uuid,
    order_key: &str,
    subject: &str,
    msg_id: &str,
    payload: &[u8],
    headers: &[(String, String)],
) -> Result<bool> {
    let n = sqlx::query(
        "WITH ordered AS (SELECT pg_advisory_xact_lock($6))
         INSERT INTO outbox (tenant_id, subject, msg_id, payload, headers, partition)
         SELECT $1, $2, $3, $4, $5, $7 FROM ordered
         ON CONFLICT (msg_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(subject)
    .bind(msg_id)
    .bind(payload)
    .bind(sqlx::types::Json(headers))
    .bind(key_hash(order_key))
    .bind(partition_of(order_key))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Takes (session-level, on the relay's own connection) the locks of up to `limit` partitions
/// that have unpublished rows and that no other relay holds, in random order so replicas
/// spread over them. Release with [`unlock_partitions`]; a dropped connection releases them.
pub async fn lock_partitions(conn: &mut PgConnection, limit: i64) -> Result<Vec<i16>> {
    Ok(sqlx::query_scalar(
        "SELECT p FROM (
           SELECT p FROM (SELECT DISTINCT partition AS p FROM outbox WHERE published_at IS NULL) d
           ORDER BY random() LIMIT $1
         ) c WHERE pg_try_advisory_lock($2 + p)",
    )
    .bind(limit)
    .bind(RELAY_LOCK_BASE)
    .fetch_all(&mut *conn)
    .await?)
}

pub async fn unlock_partitions(conn: &mut PgConnection, partitions: &[i16]) -> Result<()> {
    sqlx::query("SELECT pg_advisory_unlock($2 + p) FROM unnest($1::smallint[]) p")
        .bind(partitions)
        .bind(RELAY_LOCK_BASE)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Up to `limit` unpublished rows of `partitions`, in id order (no lock: the partition
/// locks keep other relays away).
pub async fn pending(db: impl PgExecutor<'_>, partitions: &[i16], limit: i64) -> Result<Vec<OutboxRow>> {
    Ok(sqlx::query_as::<_, OutboxRow>(
        "SELECT id, partition, subject, msg_id, payload, headers FROM outbox
         WHERE published_at IS NULL AND partition = ANY($1) ORDER BY id LIMIT $2",
    )
    .bind(partitions)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub async fn mark_published(db: impl PgExecutor<'_>, ids: &[i64]) -> Result<()> {
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(ids)
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes up to `batch` published outbox rows older than `keep` (short statements, no long
/// lock); returns how many went.
pub async fn prune_published(db: impl PgExecutor<'_>, keep: std::time::Duration, batch: i64) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM outbox WHERE id IN (
           SELECT id FROM outbox WHERE published_at IS NOT NULL
             AND published_at < now() - make_interval(secs => $1) LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(keep.as_secs_f64())
    .bind(batch)
    .execute(db)
    .await?
    .rows_affected())
}

/// Deletes up to `batch` webhook receipts older than `keep`. Meta re-delivers for up to 7
/// days: a receipt pruned earlier would let a redelivery in as new.
pub async fn prune_receipts(db: impl PgExecutor<'_>, keep: std::time::Duration, batch: i64) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM webhook_receipts WHERE ctid IN (
           SELECT ctid FROM webhook_receipts WHERE received_at < now() - make_interval(secs => $1)
           LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(keep.as_secs_f64())
    .bind(batch)
    .execute(db)
    .await?
    .rows_affected())
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
        &row.subject,
        &msg_id,
        &row.payload,
        &[],
    )
    .await?;
    Ok(Some(row))
}
