//! Agents' sessions and their rotating refresh tokens (see the `agent_sessions` migration).
//! Tokens arrive here already hashed: the caller keeps the secret, the table its SHA-256.

use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// A live session: whose it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
}

/// What presenting a refresh token did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is spent now and `next` is the session's new token.
    Rotated(Session),
    /// The token had already been spent: the session is revoked, every token of it dead.
    Reused(Session),
    /// Unknown, expired, or of a revoked session.
    Refused,
}

/// A presented token with its session, locked for the rotation.
#[derive(sqlx::FromRow)]
struct PresentedToken {
    id: Uuid,
    tenant_id: Uuid,
    agent_id: Uuid,
    expires_at: OffsetDateTime,
    spent_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

/// Starts a session with its first refresh token.
pub async fn start(
    pool: &PgPool,
    tenant: Uuid,
    agent: Uuid,
    token_hash: &[u8; 32],
    expires_at: OffsetDateTime,
) -> Result<Session> {
    let mut tx = pool.begin().await?;
    let session = Session {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        agent_id: agent,
    };
    sqlx::query("INSERT INTO agent_sessions (id, tenant_id, agent_id) VALUES ($1, $2, $3)")
        .bind(session.id)
        .bind(tenant)
        .bind(agent)
        .execute(&mut *tx)
        .await?;
    insert_token(&mut *tx, &session, token_hash, expires_at).await?;
    tx.commit().await?;
    Ok(session)
}

async fn insert_token(
    db: impl PgExecutor<'_>,
    session: &Session,
    token_hash: &[u8; 32],
    expires_at: OffsetDateTime,
) -> Result<()> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, tenant_id, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(&token_hash[..])
        .bind(session.id)
        .bind(session.tenant_id)
        .bind(expires_at)
        .execute(db)
        .await?;
    Ok(())
}

/// Spends `presented` and, when it was live, stores `next` in its place, in one transaction.
/// The presented token's row is locked first, so of two concurrent presentations exactly
/// one rotates and the other finds it spent (and revokes the session).
pub async fn rotate(
    pool: &PgPool,
    presented: &[u8; 32],
    next: &[u8; 32],
    next_expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Rotation> {
    let mut tx = pool.begin().await?;
    let row: Option<PresentedToken> = sqlx::query_as(
        "SELECT s.id, s.tenant_id, s.agent_id, t.expires_at, t.spent_at, s.revoked_at
           FROM refresh_tokens t JOIN agent_sessions s ON s.id = t.session_id
          WHERE t.token_hash = $1
          FOR UPDATE OF t, s",
    )
    .bind(&presented[..])
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Rotation::Refused);
    };
    let session = Session {
        id: row.id,
        tenant_id: row.tenant_id,
        agent_id: row.agent_id,
    };
    if row.revoked_at.is_some() {
        return Ok(Rotation::Refused);
    }
    if row.spent_at.is_some() {
        revoke_in(&mut *tx, session.tenant_id, session.id, "reuse", now).await?;
        tx.commit().await?;
        return Ok(Rotation::Reused(session));
    }
    if row.expires_at <= now {
        return Ok(Rotation::Refused);
    }
    sqlx::query("UPDATE refresh_tokens SET spent_at = $2 WHERE token_hash = $1")
        .bind(&presented[..])
        .bind(now)
        .execute(&mut *tx)
        .await?;
    insert_token(&mut *tx, &session, next, next_expires_at).await?;
    tx.commit().await?;
    Ok(Rotation::Rotated(session))
}

async fn revoke_in(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    session: Uuid,
    reason: &str,
    now: OffsetDateTime,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE agent_sessions SET revoked_at = $3, revoked_reason = $4
          WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL",
    )
    .bind(session)
    .bind(tenant)
    .bind(now)
    .bind(reason)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes a session of `tenant` (logout); true when it was live. Idempotent.
pub async fn revoke(pool: &PgPool, tenant: Uuid, session: Uuid, now: OffsetDateTime) -> Result<bool> {
    revoke_in(pool, tenant, session, "logout", now).await
}
