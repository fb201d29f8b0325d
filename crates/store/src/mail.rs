//! Transcript jobs: one per finished protocol that e-mails its conversation, claimed by the
//! session's mailer with a visibility timeout (a mailer that dies mid-send lets the job
//! reappear), marked sent once the SMTP server accepted it, retried with backoff otherwise.

use sqlx::{FromRow, PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// Queues the transcript of `conversation` for `recipient`; once per protocol.
pub async fn queue_transcript(
    tx: &mut PgConnection,
    tenant: Uuid,
    conversation: Uuid,
    protocol: &str,
    recipient: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO transcript_jobs (id, tenant_id, conversation_id, protocol, recipient) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, protocol) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(conversation)
    .bind(protocol)
    .bind(recipient)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(Clone, Debug, FromRow)]
pub struct Job {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub protocol: String,
    pub recipient: String,
    pub attempts: i32,
}

/// Claims up to `limit` due jobs for `visibility` seconds.
pub async fn claim_due(db: impl PgExecutor<'_>, visibility_secs: f64, limit: i64) -> Result<Vec<Job>> {
    Ok(sqlx::query_as::<_, Job>(
        "UPDATE transcript_jobs SET next_attempt_at = now() + make_interval(secs => $1), attempts = attempts + 1
         WHERE id IN (SELECT id FROM transcript_jobs WHERE sent_at IS NULL AND next_attempt_at <= now()
                      ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING id, tenant_id, conversation_id, protocol, recipient, attempts",
    )
    .bind(visibility_secs)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub async fn mark_sent(db: impl PgExecutor<'_>, job: Uuid) -> Result<()> {
    sqlx::query("UPDATE transcript_jobs SET sent_at = now(), last_error = NULL WHERE id = $1")
        .bind(job)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn mark_failed(db: impl PgExecutor<'_>, job: Uuid, error: &str, retry_in_secs: f64) -> Result<()> {
    sqlx::query(
        "UPDATE transcript_jobs SET last_error = $2, next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
    )
    .bind(job)
    .bind(error)
    .bind(retry_in_secs)
    .execute(db)
    .await?;
    Ok(())
}

/// One line of a transcript: who wrote, what, when (bot messages have neither direction
/// inbound nor an agent).
#[derive(Clone, Debug, FromRow)]
pub struct Line {
    pub inbound: bool,
    pub agent_name: Option<String>,
    pub kind: String,
    pub body: Option<String>,
    pub at: OffsetDateTime,
}

/// The conversation's messages in order (internal notes are never part of it).
pub async fn transcript(db: impl PgExecutor<'_>, tenant: Uuid, conversation: Uuid) -> Result<Vec<Line>> {
    Ok(sqlx::query_as::<_, Line>(
        "SELECT m.direction = 'inbound' AS inbound, a.name AS agent_name, m.kind, m.body,
                COALESCE(m.sent_at, m.created_at) AS at
         FROM messages m LEFT JOIN agents a ON a.id = m.agent_id
         WHERE m.tenant_id = $1 AND m.conversation_id = $2 AND m.direction <> 'note' ORDER BY m.seq",
    )
    .bind(tenant)
    .bind(conversation)
    .fetch_all(db)
    .await?)
}

/// The contact's e-mail, and saves `email` on a contact that has none (seed 004: "Se não
/// houver e-mail cadastrado, ao preencher, o endereço será salvo no contato").
pub async fn contact_email(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
    typed: Option<&str>,
) -> Result<Option<String>> {
    let current: Option<String> = sqlx::query_scalar("SELECT email FROM contacts WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(contact)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
    if let (None, Some(email)) = (&current, typed) {
        sqlx::query("UPDATE contacts SET email = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(contact)
            .bind(email)
            .execute(&mut *tx)
            .await?;
    }
    Ok(current)
}
