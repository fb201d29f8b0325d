//! Durable timers (see the `timers` migration). Scheduling, moving and cancelling take the
//! caller's transaction, so a timer changes with the business change that wants it; firing
//! moves due timers into the outbox, once each, whatever number of scheduler replicas run.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// A timer to set.
#[derive(Clone, Debug)]
pub struct NewTimer<'a> {
    pub tenant: Uuid,
    pub kind: &'a str,
    pub key: &'a str,
    pub due_at: OffsetDateTime,
    /// Where its message goes when it fires, and what it says.
    pub subject: &'a str,
    pub payload: &'a [u8],
    pub order_key: &'a str,
}

/// Sets the timer, or moves the pending one of the same (kind, key) to the new time and
/// message; returns its id.
pub async fn schedule(tx: &mut PgConnection, t: &NewTimer<'_>) -> Result<Uuid> {
    Ok(sqlx::query_scalar(
        "INSERT INTO timers (id, tenant_id, kind, key, due_at, subject, payload, order_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id, kind, key) WHERE fired_at IS NULL AND cancelled_at IS NULL
         DO UPDATE SET due_at = EXCLUDED.due_at, subject = EXCLUDED.subject,
                       payload = EXCLUDED.payload, order_key = EXCLUDED.order_key
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(t.tenant)
    .bind(t.kind)
    .bind(t.key)
    .bind(t.due_at)
    .bind(t.subject)
    .bind(t.payload)
    .bind(t.order_key)
    .fetch_one(&mut *tx)
    .await?)
}

/// A pending timer: its key, when it falls due, and its message.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Pending {
    pub key: String,
    pub due_at: OffsetDateTime,
    pub payload: Vec<u8>,
    pub order_key: String,
}

/// The tenant's pending timers of `kind`, soonest first; only those ordered under
/// `order_key` when given.
pub async fn pending(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
    kind: &str,
    order_key: Option<&str>,
) -> Result<Vec<Pending>> {
    Ok(sqlx::query_as::<_, Pending>(
        "SELECT key, due_at, payload, order_key FROM timers
          WHERE tenant_id = $1 AND kind = $2 AND fired_at IS NULL AND cancelled_at IS NULL
            AND ($3::text IS NULL OR order_key = $3)
          ORDER BY due_at, key LIMIT 1000",
    )
    .bind(tenant)
    .bind(kind)
    .bind(order_key)
    .fetch_all(db)
    .await?)
}

/// The pending timer of (kind, key), locked until the caller's transaction ends.
pub async fn lock_pending(tx: &mut PgConnection, tenant: Uuid, kind: &str, key: &str) -> Result<Option<Pending>> {
    Ok(sqlx::query_as::<_, Pending>(
        "SELECT key, due_at, payload, order_key FROM timers
          WHERE tenant_id = $1 AND kind = $2 AND key = $3 AND fired_at IS NULL AND cancelled_at IS NULL
          FOR UPDATE",
    )
    .bind(tenant)
    .bind(kind)
    .bind(key)
    .fetch_optional(&mut *tx)
    .await?)
}

/// Cancels the pending timer of (kind, key); true when there was one.
pub async fn cancel(tx: &mut PgConnection, tenant: Uuid, kind: &str, key: &str, now: OffsetDateTime) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE timers SET cancelled_at = $4
          WHERE tenant_id = $1 AND kind = $2 AND key = $3 AND fired_at IS NULL AND cancelled_at IS NULL",
    )
    .bind(tenant)
    .bind(kind)
    .bind(key)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1)
}

/// Fires up to `limit` timers due at `now`: in one transaction each is marked fired and its
/// message queued in the outbox under `timer:<id>`. Rows another replica is firing are
/// skipped, not waited for. Returns how many fired.
pub async fn fire_due(pool: &PgPool, now: OffsetDateTime, limit: i64) -> Result<usize> {
    let mut tx = pool.begin().await?;
    let mut due: Vec<(Uuid, Uuid, String, Vec<u8>, String)> = sqlx::query_as(
        "UPDATE timers SET fired_at = $1
          WHERE id IN (SELECT id FROM timers
                        WHERE due_at <= $1 AND fired_at IS NULL AND cancelled_at IS NULL
                        ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
          RETURNING id, tenant_id, subject, payload, order_key",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    // The outbox locks each ordering key until commit: take them in one global order, so two
    // replicas firing timers of the same keys wait for each other instead of deadlocking.
    due.sort_by_key(|d| (crate::outbox::key_hash(&d.4), d.0));
    for (id, tenant, subject, payload, order_key) in &due {
        crate::outbox::enqueue(
            &mut tx,
            *tenant,
            order_key,
            subject,
            &format!("timer:{id}"),
            payload,
            &[],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(due.len())
}
