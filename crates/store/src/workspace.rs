//! What agents work with around a conversation: tags on contacts and conversations, the
//! contact's history, drafts, read marks and canned responses.

use sqlx::{FromRow, PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

#[derive(Clone, Debug, FromRow)]
pub struct Tag {
    pub id: Uuid,
    pub name: String,
}

/// Creates the tag, or returns the tenant's tag of that name.
pub async fn create_tag(db: impl PgExecutor<'_>, tenant: Uuid, name: &str) -> Result<Tag> {
    Ok(sqlx::query_as::<_, Tag>(
        "INSERT INTO tags (id, tenant_id, name) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id, name",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(name)
    .fetch_one(db)
    .await?)
}

pub async fn list_tags(db: impl PgExecutor<'_>, tenant: Uuid) -> Result<Vec<Tag>> {
    Ok(
        sqlx::query_as::<_, Tag>("SELECT id, name FROM tags WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant)
            .fetch_all(db)
            .await?,
    )
}

pub async fn tag_exists(db: impl PgExecutor<'_>, tenant: Uuid, tag: Uuid) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tags WHERE tenant_id = $1 AND id = $2)")
            .bind(tenant)
            .bind(tag)
            .fetch_one(db)
            .await?,
    )
}

/// What a tag is put on.
#[derive(Clone, Copy, Debug)]
pub enum Tagged {
    Conversation(Uuid),
    Contact(Uuid),
}

impl Tagged {
    fn sql(self) -> (&'static str, &'static str, Uuid) {
        match self {
            Tagged::Conversation(id) => ("conversation_tags", "conversation_id", id),
            Tagged::Contact(id) => ("contact_tags", "contact_id", id),
        }
    }
}

/// Attaches or detaches; both idempotent. Returns false when the target is not the
/// tenant's.
pub async fn set_tag(tx: &mut PgConnection, tenant: Uuid, tag: Uuid, target: Tagged, attached: bool) -> Result<bool> {
    let (table, column, id) = target.sql();
    let owner = match target {
        Tagged::Conversation(_) => "conversations",
        Tagged::Contact(_) => "contacts",
    };
    let exists: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {owner} WHERE tenant_id = $1 AND id = $2)"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if !exists {
        return Ok(false);
    }
    let sql = if attached {
        format!("INSERT INTO {table} (tenant_id, {column}, tag_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
    } else {
        format!("DELETE FROM {table} WHERE tenant_id = $1 AND {column} = $2 AND tag_id = $3")
    };
    sqlx::query(&sql)
        .bind(tenant)
        .bind(id)
        .bind(tag)
        .execute(&mut *tx)
        .await?;
    Ok(true)
}

pub async fn tags_of(db: impl PgExecutor<'_>, tenant: Uuid, target: Tagged) -> Result<Vec<Tag>> {
    let (table, column, id) = target.sql();
    Ok(sqlx::query_as::<_, Tag>(&format!(
        "SELECT t.id, t.name FROM tags t JOIN {table} x ON x.tag_id = t.id
         WHERE x.tenant_id = $1 AND x.{column} = $2 ORDER BY t.name"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_all(db)
    .await?)
}

/// Open conversations carrying `tag`, oldest first.
pub async fn open_conversations_tagged(db: impl PgExecutor<'_>, tenant: Uuid, tag: Uuid) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT c.id FROM conversations c JOIN conversation_tags x ON x.conversation_id = c.id
         WHERE x.tenant_id = $1 AND x.tag_id = $2 AND c.status NOT IN {closed} ORDER BY c.opened_at, c.id",
        closed = atende_domain::conversation::Status::CLOSED_SQL
    ))
    .bind(tenant)
    .bind(tag)
    .fetch_all(db)
    .await?)
}

/// A page of the contact's conversations, newest first, opened in `[since, until)`, or only
/// the one holding `protocol`; `before` is the keyset cursor (opened_at, id) of the last row
/// of the previous page, so pages never skip or repeat a row.
#[allow(clippy::too_many_arguments)]
pub async fn contact_history(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    contact: Uuid,
    since: OffsetDateTime,
    until: OffsetDateTime,
    protocol: Option<&str>,
    before: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<(Uuid, OffsetDateTime, Option<OffsetDateTime>)>> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.opened_at, c.closed_at FROM conversations c
         WHERE c.tenant_id = $1 AND c.contact_id = $2 AND c.opened_at >= $3 AND c.opened_at < $4
           AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM protocols p WHERE p.tenant_id = $1 AND p.conversation_id = c.id AND p.number = $5))
           AND ($6::timestamptz IS NULL OR (c.opened_at, c.id) < ($6, $7))
         ORDER BY c.opened_at DESC, c.id DESC LIMIT $8",
    )
    .bind(tenant)
    .bind(contact)
    .bind(since)
    .bind(until)
    .bind(protocol)
    .bind(before.map(|b| b.0))
    .bind(before.map(|b| b.1))
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub async fn save_draft(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    agent: Uuid,
    conversation: Uuid,
    body: &str,
) -> Result<()> {
    if body.is_empty() {
        sqlx::query("DELETE FROM drafts WHERE tenant_id = $1 AND agent_id = $2 AND conversation_id = $3")
            .bind(tenant)
            .bind(agent)
            .bind(conversation)
            .execute(db)
            .await?;
    } else {
        sqlx::query(
            "INSERT INTO drafts (tenant_id, agent_id, conversation_id, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (agent_id, conversation_id) DO UPDATE SET body = EXCLUDED.body, updated_at = now()",
        )
        .bind(tenant)
        .bind(agent)
        .bind(conversation)
        .bind(body)
        .execute(db)
        .await?;
    }
    Ok(())
}

pub async fn list_drafts(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    agent: Uuid,
) -> Result<Vec<(Uuid, String, OffsetDateTime)>> {
    Ok(sqlx::query_as(
        "SELECT conversation_id, body, updated_at FROM drafts WHERE tenant_id = $1 AND agent_id = $2 ORDER BY updated_at DESC",
    )
    .bind(tenant)
    .bind(agent)
    .fetch_all(db)
    .await?)
}

/// Marks the conversation read up to its last message, or (`unread`) up to just before its
/// last customer message; returns the unread count after.
pub async fn mark_read(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    agent: Uuid,
    conversation: Uuid,
    unread: bool,
) -> Result<i64> {
    let to = if unread {
        "COALESCE((SELECT max(seq) FROM messages WHERE conversation_id = $3 AND direction = 'inbound'), 1) - 1"
    } else {
        "(SELECT last_message_seq FROM conversations WHERE id = $3)"
    };
    Ok(sqlx::query_scalar(&format!(
        "WITH r AS (
           INSERT INTO agent_reads (tenant_id, agent_id, conversation_id, read_seq) VALUES ($1, $2, $3, {to})
           ON CONFLICT (agent_id, conversation_id) DO UPDATE SET read_seq = EXCLUDED.read_seq, updated_at = now()
           RETURNING read_seq)
         SELECT count(*) FROM messages m, r WHERE m.conversation_id = $3 AND m.direction = 'inbound' AND m.seq > r.read_seq"
    ))
    .bind(tenant)
    .bind(agent)
    .bind(conversation)
    .fetch_one(db)
    .await?)
}

/// The agent's open conversations with unread customer messages, and how many.
pub async fn unread(db: impl PgExecutor<'_>, tenant: Uuid, agent: Uuid) -> Result<Vec<(Uuid, i64)>> {
    Ok(sqlx::query_as(
        "SELECT c.id, count(m.id) FROM conversations c
         JOIN messages m ON m.conversation_id = c.id AND m.direction = 'inbound'
         LEFT JOIN agent_reads r ON r.agent_id = $2 AND r.conversation_id = c.id
         WHERE c.tenant_id = $1 AND c.agent_id = $2 AND c.status IN ('offered', 'assigned')
           AND m.seq > COALESCE(r.read_seq, 0)
         GROUP BY c.id ORDER BY c.id",
    )
    .bind(tenant)
    .bind(agent)
    .fetch_all(db)
    .await?)
}

#[derive(Clone, Debug, FromRow)]
pub struct Canned {
    pub id: Uuid,
    pub service_id: Option<Uuid>,
    pub shortcut: String,
    pub body: String,
}

pub async fn create_canned(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    service: Option<Uuid>,
    shortcut: &str,
    body: &str,
) -> Result<Canned> {
    Ok(sqlx::query_as::<_, Canned>(
        "INSERT INTO canned_responses (id, tenant_id, service_id, shortcut, body) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, service_id, shortcut, body",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(service)
    .bind(shortcut)
    .bind(body)
    .fetch_one(db)
    .await?)
}

/// The tenant's responses and `service`'s, whose shortcut starts with `prefix`; a service's
/// own response shadows the tenant's of the same shortcut.
pub async fn list_canned(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    service: Option<Uuid>,
    prefix: &str,
) -> Result<Vec<Canned>> {
    Ok(sqlx::query_as::<_, Canned>(
        "SELECT DISTINCT ON (shortcut) id, service_id, shortcut, body FROM canned_responses
         WHERE tenant_id = $1 AND (service_id IS NULL OR service_id = $2) AND starts_with(shortcut, $3)
         ORDER BY shortcut, service_id NULLS LAST LIMIT 50",
    )
    .bind(tenant)
    .bind(service)
    .bind(prefix)
    .fetch_all(db)
    .await?)
}
