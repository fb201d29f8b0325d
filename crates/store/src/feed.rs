//! Agents' feeds: the frames each agent's WebSocket shows, numbered per agent (see the
//! `agent_feed` migration for why the numbers are dense and commit in order).

use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// One frame to append.
#[derive(Clone, Debug)]
pub struct NewFrame<'a> {
    pub ty: &'a str,
    pub data: &'a serde_json::Value,
    pub trace_id: Option<&'a str>,
}

/// A stored frame.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Frame {
    pub seq: i64,
    #[sqlx(rename = "type")]
    pub ty: String,
    pub data: serde_json::Value,
    pub trace_id: Option<String>,
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Written; the agent's feed now ends at this number.
    Written { head: i64 },
    /// The event's frames were already there (a redelivery): nothing written.
    Duplicate,
}

/// Appends the frames `event` makes for `agent`, numbered after the agent's last one, in one
/// transaction. Idempotent per event: a second append of the same event writes nothing.
pub async fn append(
    pool: &PgPool,
    tenant: Uuid,
    agent: Uuid,
    event: Uuid,
    frames: &[NewFrame<'_>],
) -> Result<Appended> {
    if frames.is_empty() {
        return Ok(Appended::Duplicate);
    }
    let mut tx = pool.begin().await?;
    // The head first: its row lock orders this append after any other of the agent's, so the
    // check below sees a concurrent delivery of the same event once that one has committed.
    let n = i64::try_from(frames.len()).unwrap_or(i64::MAX);
    let head: i64 = sqlx::query_scalar(
        "INSERT INTO agent_feed_heads (tenant_id, agent_id, last_seq) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, agent_id) DO UPDATE SET last_seq = agent_feed_heads.last_seq + $3
         RETURNING last_seq",
    )
    .bind(tenant)
    .bind(agent)
    .bind(n)
    .fetch_one(&mut *tx)
    .await?;
    let seen: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM agent_feed WHERE tenant_id = $1 AND agent_id = $2 AND event_id = $3)",
    )
    .bind(tenant)
    .bind(agent)
    .bind(event)
    .fetch_one(&mut *tx)
    .await?;
    if seen {
        // Dropping the transaction rolls the head back.
        return Ok(Appended::Duplicate);
    }
    let first = head - n + 1;
    let types: Vec<&str> = frames.iter().map(|f| f.ty).collect();
    let data: Vec<&serde_json::Value> = frames.iter().map(|f| f.data).collect();
    let traces: Vec<Option<&str>> = frames.iter().map(|f| f.trace_id).collect();
    sqlx::query(
        "INSERT INTO agent_feed (tenant_id, agent_id, seq, event_id, part, type, data, trace_id)
         SELECT $1, $2, $3 + f.ord - 1, $4, (f.ord - 1)::smallint, f.type, f.data, f.trace_id
           FROM unnest($5::text[], $6::jsonb[], $7::text[]) WITH ORDINALITY AS f(type, data, trace_id, ord)",
    )
    .bind(tenant)
    .bind(agent)
    .bind(first)
    .bind(event)
    .bind(&types)
    .bind(&data)
    .bind(&traces)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Appended::Written { head })
}

/// Up to `limit` frames after `after`, in order.
pub async fn read(db: impl PgExecutor<'_>, tenant: Uuid, agent: Uuid, after: i64, limit: i64) -> Result<Vec<Frame>> {
    Ok(sqlx::query_as(
        "SELECT seq, type, data, trace_id FROM agent_feed
          WHERE tenant_id = $1 AND agent_id = $2 AND seq > $3
          ORDER BY seq LIMIT $4",
    )
    .bind(tenant)
    .bind(agent)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// The agent's feed as it stands: the last number written (0 for none yet) and the first one
/// still kept (None when everything was pruned or nothing written).
pub async fn bounds(db: impl PgExecutor<'_>, tenant: Uuid, agent: Uuid) -> Result<(i64, Option<i64>)> {
    let (head, first): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT last_seq FROM agent_feed_heads WHERE tenant_id = $1 AND agent_id = $2),
                (SELECT min(seq) FROM agent_feed WHERE tenant_id = $1 AND agent_id = $2)",
    )
    .bind(tenant)
    .bind(agent)
    .fetch_one(db)
    .await?;
    Ok((head.unwrap_or(0), first))
}

/// The heads of these agents' feeds (agents with none yet are left out).
pub async fn heads(db: impl PgExecutor<'_>, agents: &[(Uuid, Uuid)]) -> Result<Vec<(Uuid, Uuid, i64)>> {
    let tenants: Vec<Uuid> = agents.iter().map(|a| a.0).collect();
    let ids: Vec<Uuid> = agents.iter().map(|a| a.1).collect();
    Ok(sqlx::query_as(
        "SELECT h.tenant_id, h.agent_id, h.last_seq
           FROM unnest($1::uuid[], $2::uuid[]) AS k(tenant_id, agent_id)
           JOIN agent_feed_heads h USING (tenant_id, agent_id)",
    )
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(db)
    .await?)
}

/// Deletes up to `batch` frames written before `before`; how many.
pub async fn prune(pool: &PgPool, before: OffsetDateTime, batch: i64) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM agent_feed WHERE ctid IN (
             SELECT ctid FROM agent_feed WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(before)
    .bind(batch)
    .execute(pool)
    .await?
    .rows_affected())
}
