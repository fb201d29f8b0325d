//! Protocol legs, the transition log, the menu bot's conversations and what the indicators
//! read. A conversation has one open protocol at a time; a transfer closes it and opens the
//! next, linked to it, so a conversation's legs read first contact → leg 1 → leg 2 ….

use sqlx::{FromRow, PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

#[derive(Clone, Debug, FromRow)]
pub struct Protocol {
    pub number: String,
    pub conversation_id: Uuid,
    pub service_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub opened_at: OffsetDateTime,
    pub closed_at: Option<OffsetDateTime>,
    pub qualification: Option<String>,
    pub description: Option<String>,
    pub external_protocol: Option<String>,
    pub previous_number: Option<String>,
    pub leg: i32,
    pub close_reason: Option<String>,
}

const PROTOCOL_COLS: &str = "number, conversation_id, service_id, agent_id, opened_at, closed_at, qualification,
    description, external_protocol, previous_number, leg, close_reason";

pub async fn get_protocol(db: impl PgExecutor<'_>, tenant: Uuid, number: &str) -> Result<Option<Protocol>> {
    Ok(sqlx::query_as::<_, Protocol>(&format!(
        "SELECT {PROTOCOL_COLS} FROM protocols WHERE tenant_id = $1 AND number = $2"
    ))
    .bind(tenant)
    .bind(number)
    .fetch_optional(db)
    .await?)
}

/// Every leg of a conversation, oldest first.
pub async fn list_protocols(db: impl PgExecutor<'_>, tenant: Uuid, conversation: Uuid) -> Result<Vec<Protocol>> {
    Ok(sqlx::query_as::<_, Protocol>(&format!(
        "SELECT {PROTOCOL_COLS} FROM protocols WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY leg, opened_at"
    ))
    .bind(tenant)
    .bind(conversation)
    .fetch_all(db)
    .await?)
}

/// Records the finish form (or a transfer's optional qualification) on a protocol.
pub async fn qualify(
    tx: &mut PgConnection,
    tenant: Uuid,
    number: &str,
    qualification: Option<&str>,
    description: Option<&str>,
    external_protocol: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE protocols SET qualification = COALESCE($3, qualification), description = COALESCE($4, description),
           external_protocol = COALESCE($5, external_protocol)
         WHERE tenant_id = $1 AND number = $2",
    )
    .bind(tenant)
    .bind(number)
    .bind(qualification)
    .bind(description)
    .bind(external_protocol)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Closes the conversation's current leg as transferred, opens `next` in `service` linked
/// to it, and points the conversation at the new leg and service, waiting from `at` (the
/// caller then moves its status to queued). Returns the closed leg.
pub async fn open_next_leg(
    tx: &mut PgConnection,
    tenant: Uuid,
    conversation: Uuid,
    next: &str,
    service: Uuid,
    closed_by: Option<Uuid>,
    at: OffsetDateTime,
) -> Result<Protocol> {
    let previous = sqlx::query_as::<_, Protocol>(&format!(
        "UPDATE protocols SET closed_at = $3, close_reason = 'transferred', closed_by = $4
         WHERE tenant_id = $1 AND conversation_id = $2 AND closed_at IS NULL RETURNING {PROTOCOL_COLS}"
    ))
    .bind(tenant)
    .bind(conversation)
    .bind(at)
    .bind(closed_by)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO protocols (number, tenant_id, conversation_id, service_id, opened_at, previous_number, leg)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(next)
    .bind(tenant)
    .bind(conversation)
    .bind(service)
    .bind(at)
    .bind(&previous.number)
    .bind(previous.leg + 1)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE conversations SET protocol = $3, service_id = $4, queued_at = $5, updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(conversation)
    .bind(next)
    .bind(service)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(previous)
}

/// A conversation leaving the bot for `service`: its first protocol takes the service too.
pub async fn enter_service(
    tx: &mut PgConnection,
    tenant: Uuid,
    conversation: Uuid,
    service: Uuid,
    at: OffsetDateTime,
) -> Result<()> {
    sqlx::query(
        "UPDATE conversations SET service_id = $3, queued_at = $4, bot_activity_at = NULL, updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(conversation)
    .bind(service)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE protocols SET service_id = $3 WHERE tenant_id = $1 AND conversation_id = $2 AND closed_at IS NULL",
    )
    .bind(tenant)
    .bind(conversation)
    .bind(service)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The bot prompted or heard the customer at `at`: its inactivity window restarts.
pub async fn touch_bot(tx: &mut PgConnection, conversation: Uuid, at: OffsetDateTime) -> Result<()> {
    sqlx::query("UPDATE conversations SET bot_activity_at = $2 WHERE id = $1 AND status = 'bot'")
        .bind(conversation)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Conversations in a bot whose last activity is before `before` (the longest window a
/// menu may have is checked by the caller against each channel's own), oldest first.
pub async fn bot_idle_since(db: impl PgExecutor<'_>, before: OffsetDateTime, limit: i64) -> Result<Vec<(Uuid, Uuid)>> {
    Ok(sqlx::query_as::<_, (Uuid, Uuid)>(
        "SELECT tenant_id, id FROM conversations WHERE status = 'bot' AND bot_activity_at < $1
         ORDER BY bot_activity_at LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

#[derive(Clone, Debug, FromRow)]
pub struct Transition {
    pub protocol: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub service_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub reason: Option<String>,
    pub at: OffsetDateTime,
}

pub async fn list_transitions(db: impl PgExecutor<'_>, tenant: Uuid, conversation: Uuid) -> Result<Vec<Transition>> {
    Ok(sqlx::query_as::<_, Transition>(
        "SELECT protocol, from_status, to_status, service_id, agent_id, actor_kind, actor_id, reason, at
         FROM conversation_transitions WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY id",
    )
    .bind(tenant)
    .bind(conversation)
    .fetch_all(db)
    .await?)
}

/// What the indicators need about a conversation.
#[derive(Clone, Debug, FromRow)]
pub struct Timeline {
    pub opened_at: OffsetDateTime,
    pub first_queued_at: Option<OffsetDateTime>,
    pub first_assigned_at: Option<OffsetDateTime>,
    pub closed_at: Option<OffsetDateTime>,
}

pub async fn timeline(db: impl PgExecutor<'_>, tenant: Uuid, conversation: Uuid) -> Result<Option<Timeline>> {
    Ok(sqlx::query_as::<_, Timeline>(
        "SELECT c.opened_at, c.first_assigned_at, c.closed_at,
           (SELECT min(t.at) FROM conversation_transitions t WHERE t.conversation_id = c.id AND t.to_status = 'queued')
             AS first_queued_at
         FROM conversations c WHERE c.tenant_id = $1 AND c.id = $2",
    )
    .bind(tenant)
    .bind(conversation)
    .fetch_optional(db)
    .await?)
}

/// (customer wrote?, at) for every customer message and agent reply of the conversation.
pub async fn message_times(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    conversation: Uuid,
) -> Result<Vec<(bool, OffsetDateTime)>> {
    Ok(sqlx::query_as::<_, (bool, OffsetDateTime)>(
        "SELECT direction = 'inbound', COALESCE(sent_at, created_at) FROM messages
         WHERE tenant_id = $1 AND conversation_id = $2
           AND (direction = 'inbound' OR (direction = 'outbound' AND agent_id IS NOT NULL))
         ORDER BY seq",
    )
    .bind(tenant)
    .bind(conversation)
    .fetch_all(db)
    .await?)
}

/// When the bot last prompted or heard the customer of a conversation still in the bot.
pub async fn bot_activity(tx: &mut PgConnection, conversation: Uuid) -> Result<Option<OffsetDateTime>> {
    Ok(
        sqlx::query_scalar("SELECT bot_activity_at FROM conversations WHERE id = $1 AND status = 'bot'")
            .bind(conversation)
            .fetch_optional(&mut *tx)
            .await?
            .flatten(),
    )
}

/// A contact known only by name (an in-person customer without phone).
pub async fn create_contact(tx: &mut PgConnection, tenant: Uuid, name: &str) -> Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO contacts (id, tenant_id, name) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(tenant)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    Ok(id)
}

pub async fn contact_exists(db: impl PgExecutor<'_>, tenant: Uuid, contact: Uuid) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM contacts WHERE tenant_id = $1 AND id = $2)")
            .bind(tenant)
            .bind(contact)
            .fetch_one(db)
            .await?,
    )
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_in_person(
    tx: &mut PgConnection,
    id: Uuid,
    tenant: Uuid,
    protocol: &str,
    service: Uuid,
    contact: Uuid,
    agent: Uuid,
    description: &str,
    at: OffsetDateTime,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO in_person_attendances (id, tenant_id, protocol, service_id, contact_id, agent_id, description, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(tenant)
    .bind(protocol)
    .bind(service)
    .bind(contact)
    .bind(agent)
    .bind(description)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records that the satisfaction question went out for the protocol.
pub async fn request_csat(tx: &mut PgConnection, tenant: Uuid, protocol: &str) -> Result<()> {
    sqlx::query("UPDATE protocols SET csat_requested_at = now() WHERE tenant_id = $1 AND number = $2")
        .bind(tenant)
        .bind(protocol)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The contact's protocol waiting for a satisfaction answer (asked within the last day),
/// locked: (conversation, protocol).
pub async fn pending_csat(tx: &mut PgConnection, contact: Uuid) -> Result<Option<(Uuid, String)>> {
    Ok(sqlx::query_as(
        "SELECT p.conversation_id, p.number FROM protocols p JOIN conversations c ON c.id = p.conversation_id
         WHERE c.contact_id = $1 AND p.csat_requested_at > now() - interval '1 day' AND p.csat_answered_at IS NULL
         ORDER BY p.csat_requested_at DESC LIMIT 1 FOR UPDATE OF p",
    )
    .bind(contact)
    .fetch_optional(&mut *tx)
    .await?)
}

/// The customer's next message answered (a score) or did not (`None`): asked once.
pub async fn answer_csat(tx: &mut PgConnection, tenant: Uuid, protocol: &str, score: Option<u8>) -> Result<()> {
    sqlx::query("UPDATE protocols SET csat_answered_at = now(), csat_score = $3 WHERE tenant_id = $1 AND number = $2")
        .bind(tenant)
        .bind(protocol)
        .bind(score.map(i16::from))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The tenant's "Aguardando" list: queued conversations in no service, oldest first.
pub async fn waiting_list(db: impl PgExecutor<'_>, tenant: Uuid, limit: i64) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM conversations WHERE tenant_id = $1 AND status = 'queued' AND service_id IS NULL
         ORDER BY queued_at, id LIMIT $2",
    )
    .bind(tenant)
    .bind(limit)
    .fetch_all(db)
    .await?)
}
