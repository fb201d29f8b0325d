//! Contacts and their identities, conversations, protocol numbers, messages, webhook
//! receipts and outbound deliveries.

use atende_domain::conversation::{Actor, Status};
use sqlx::{FromRow, PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// One way of recognising a contact (see `contact_identities`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub kind: &'static str,
    pub scope: String,
    pub value: String,
}

/// Finds the contact owning any of `identities` (locking it), or creates one; then records
/// every identity not yet known for it. Concurrent first messages of one new customer race
/// on the identities' primary key: the loser retries and finds the winner's contact.
pub async fn find_or_create_contact(
    tx: &mut PgConnection,
    tenant: Uuid,
    identities: &[Identity],
    name: Option<&str>,
) -> Result<Uuid> {
    for attempt in 0..3 {
        let mut found: Option<Uuid> = None;
        for id in identities {
            let hit: Option<Uuid> = sqlx::query_scalar(
                "SELECT contact_id FROM contact_identities WHERE tenant_id = $1 AND kind = $2 AND scope = $3 AND value = $4",
            )
            .bind(tenant)
            .bind(id.kind)
            .bind(&id.scope)
            .bind(&id.value)
            .fetch_optional(&mut *tx)
            .await?;
            if hit.is_some() {
                found = hit;
                break;
            }
        }
        let contact = match found {
            Some(c) => {
                sqlx::query("SELECT id FROM contacts WHERE id = $1 FOR UPDATE")
                    .bind(c)
                    .execute(&mut *tx)
                    .await?;
                if let Some(n) = name {
                    sqlx::query(
                        "UPDATE contacts SET name = $2, updated_at = now() WHERE id = $1 AND name IS DISTINCT FROM $2",
                    )
                    .bind(c)
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
                }
                c
            }
            None => {
                let c = Uuid::now_v7();
                sqlx::query("INSERT INTO contacts (id, tenant_id, name) VALUES ($1, $2, $3)")
                    .bind(c)
                    .bind(tenant)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                c
            }
        };
        let mut conflict = false;
        for id in identities {
            let inserted = sqlx::query(
                "INSERT INTO contact_identities (tenant_id, contact_id, kind, scope, value) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(contact)
            .bind(id.kind)
            .bind(&id.scope)
            .bind(&id.value)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 && found.is_none() {
                conflict = true;
            } else if inserted == 0 {
                // Already known: for this contact (nothing to do) or for another one, in which
                // case two contacts are the same customer; merging is an operator's decision.
                let owner: Option<Uuid> = sqlx::query_scalar(
                    "SELECT contact_id FROM contact_identities WHERE tenant_id = $1 AND kind = $2 AND scope = $3 AND value = $4",
                )
                .bind(tenant)
                .bind(id.kind)
                .bind(&id.scope)
                .bind(&id.value)
                .fetch_optional(&mut *tx)
                .await?;
                if owner.is_some_and(|o| o != contact) {
                    tracing::warn!(%contact, other = ?owner, kind = id.kind, "identity belongs to another contact; not merged");
                }
            }
        }
        if !conflict {
            return Ok(contact);
        }
        // Someone created this customer concurrently: drop our contact and use theirs.
        sqlx::query("DELETE FROM contact_identities WHERE contact_id = $1")
            .bind(contact)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM contacts WHERE id = $1")
            .bind(contact)
            .execute(&mut *tx)
            .await?;
        tracing::debug!(attempt, "contact created concurrently, retrying");
    }
    Err(crate::StoreError::Db(sqlx::Error::Protocol(
        "contact identity kept conflicting".into(),
    )))
}

/// The next protocol number of the tenant for `day`: `YYYYMMDD` + a 6-digit daily sequence.
pub async fn next_protocol(tx: &mut PgConnection, tenant: Uuid, now: OffsetDateTime) -> Result<String> {
    let day = now.date();
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO protocol_counters (tenant_id, day, last) VALUES ($1, $2, 1)
         ON CONFLICT (tenant_id, day) DO UPDATE SET last = protocol_counters.last + 1 RETURNING last",
    )
    .bind(tenant)
    .bind(day)
    .fetch_one(&mut *tx)
    .await?;
    Ok(atende_domain::conversation::protocol_number(
        day.year(),
        day.month() as u8,
        day.day(),
        seq as u64,
    ))
}

#[derive(Clone, Debug, FromRow)]
pub struct Conversation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub contact_id: Uuid,
    pub channel_id: Uuid,
    pub channel_kind: String,
    pub service_id: Option<Uuid>,
    pub status: String,
    pub agent_id: Option<Uuid>,
    pub protocol: String,
    pub opened_at: OffsetDateTime,
    pub queued_at: Option<OffsetDateTime>,
    pub contact_name: Option<String>,
    /// When the customer last wrote (the provider's time of the latest message).
    pub last_inbound_at: Option<OffsetDateTime>,
    /// The channel (number) the customer last wrote to: replies leave from it.
    pub reply_channel_id: Uuid,
}

const CONV_SELECT: &str =
    "SELECT c.id, c.tenant_id, c.contact_id, c.channel_id, ch.kind AS channel_kind, c.service_id, c.status,
    c.agent_id, c.protocol, c.opened_at, c.queued_at, ct.name AS contact_name, c.last_inbound_at,
    COALESCE(c.reply_channel_id, c.channel_id) AS reply_channel_id
    FROM conversations c JOIN channels ch ON ch.id = c.channel_id JOIN contacts ct ON ct.id = c.contact_id";

/// Open conversations of a contact, locked so concurrent messages of one customer serialise.
pub async fn open_conversations_of_contact(tx: &mut PgConnection, contact: Uuid) -> Result<Vec<Conversation>> {
    Ok(sqlx::query_as::<_, Conversation>(&format!(
        "{CONV_SELECT} WHERE c.contact_id = $1 AND c.status NOT IN {closed}
         ORDER BY c.opened_at, c.id FOR UPDATE OF c",
        closed = Status::CLOSED_SQL
    ))
    .bind(contact)
    .fetch_all(&mut *tx)
    .await?)
}

pub async fn get_conversation(db: impl PgExecutor<'_>, tenant: Uuid, id: Uuid) -> Result<Option<Conversation>> {
    Ok(
        sqlx::query_as::<_, Conversation>(&format!("{CONV_SELECT} WHERE c.tenant_id = $1 AND c.id = $2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

/// As `get_conversation`, locking the row for the rest of the transaction.
pub async fn lock_conversation(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> Result<Option<Conversation>> {
    Ok(sqlx::query_as::<_, Conversation>(&format!(
        "{CONV_SELECT} WHERE c.tenant_id = $1 AND c.id = $2 FOR UPDATE OF c"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?)
}

pub async fn agent_open_conversations(db: impl PgExecutor<'_>, tenant: Uuid, agent: Uuid) -> Result<Vec<Conversation>> {
    Ok(sqlx::query_as::<_, Conversation>(&format!(
        "{CONV_SELECT} WHERE c.tenant_id = $1 AND c.agent_id = $2 AND c.status IN ('offered', 'assigned') ORDER BY c.opened_at"
    ))
    .bind(tenant)
    .bind(agent)
    .fetch_all(db)
    .await?)
}

pub struct NewConversation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub contact_id: Uuid,
    pub channel_id: Uuid,
    pub service_id: Option<Uuid>,
    pub status: &'static str,
    pub protocol: String,
    pub at: OffsetDateTime,
    /// Who opened it (the customer's message, an agent, the bot).
    pub actor: Actor,
}

pub async fn insert_conversation(tx: &mut PgConnection, c: &NewConversation) -> Result<()> {
    sqlx::query(
        "INSERT INTO conversations (id, tenant_id, contact_id, channel_id, service_id, status, protocol, opened_at, queued_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(c.id)
    .bind(c.tenant_id)
    .bind(c.contact_id)
    .bind(c.channel_id)
    .bind(c.service_id)
    .bind(c.status)
    .bind(&c.protocol)
    .bind(c.at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO protocols (number, tenant_id, conversation_id, service_id, opened_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&c.protocol)
    .bind(c.tenant_id)
    .bind(c.id)
    .bind(c.service_id)
    .bind(c.at)
    .execute(&mut *tx)
    .await?;
    let (kind, actor_id) = c.actor.parts();
    sqlx::query(
        "INSERT INTO conversation_transitions (tenant_id, conversation_id, protocol, from_status, to_status, service_id,
           actor_kind, actor_id, reason, at)
         VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, 'opened', $8)",
    )
    .bind(c.tenant_id)
    .bind(c.id)
    .bind(&c.protocol)
    .bind(c.status)
    .bind(c.service_id)
    .bind(kind)
    .bind(actor_id)
    .bind(c.at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records that the customer wrote to `channel` at `at` (the provider's time): that number's
/// window is measured from it, and the conversation's replies leave from the number of the
/// customer's latest message (a late-delivered older message changes neither).
pub async fn touch_inbound(
    tx: &mut PgConnection,
    tenant: Uuid,
    conversation: Uuid,
    contact: Uuid,
    channel: Uuid,
    at: OffsetDateTime,
) -> Result<()> {
    sqlx::query(
        "WITH w AS (
           INSERT INTO customer_windows (contact_id, channel_id, tenant_id, last_inbound_at) VALUES ($3, $4, $5, $2)
           ON CONFLICT (contact_id, channel_id)
           DO UPDATE SET last_inbound_at = GREATEST(customer_windows.last_inbound_at, EXCLUDED.last_inbound_at))
         UPDATE conversations SET
           reply_channel_id = CASE WHEN last_inbound_at IS NULL OR $2 >= last_inbound_at THEN $4 ELSE reply_channel_id END,
           last_inbound_at = GREATEST(last_inbound_at, $2), updated_at = now()
         WHERE id = $1 AND tenant_id = $5",
    )
    .bind(conversation)
    .bind(at)
    .bind(contact)
    .bind(channel)
    .bind(tenant)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// When the customer last wrote to `channel` (its window's start), if ever.
pub async fn customer_window(db: impl PgExecutor<'_>, contact: Uuid, channel: Uuid) -> Result<Option<OffsetDateTime>> {
    Ok(
        sqlx::query_scalar("SELECT last_inbound_at FROM customer_windows WHERE contact_id = $1 AND channel_id = $2")
            .bind(contact)
            .bind(channel)
            .fetch_optional(db)
            .await?,
    )
}

/// Conversations waiting or in progress on `kind` channels whose window base — the latest of
/// the customer's last message to the reply number, the conversation's own last inbound and
/// its opening — is before `before`: (tenant, id, base), oldest first. Not locked: the caller
/// locks each and checks again.
pub async fn window_lapsed(
    db: impl PgExecutor<'_>,
    kind: &str,
    before: OffsetDateTime,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>> {
    Ok(sqlx::query_as::<_, (Uuid, Uuid)>(&format!(
        "SELECT c.tenant_id, c.id FROM conversations c
           JOIN channels ch ON ch.id = c.channel_id
           LEFT JOIN customer_windows w
             ON w.contact_id = c.contact_id AND w.channel_id = COALESCE(c.reply_channel_id, c.channel_id)
          WHERE c.status IN {expiring} AND ch.kind = $1
            AND GREATEST(w.last_inbound_at, c.last_inbound_at, c.opened_at) < $2
          ORDER BY GREATEST(w.last_inbound_at, c.last_inbound_at, c.opened_at) LIMIT $3",
        expiring = Status::EXPIRING_SQL
    ))
    .bind(kind)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// The base of the conversation's window (see [`window_lapsed`]).
pub async fn window_base(db: impl PgExecutor<'_>, c: &Conversation) -> Result<OffsetDateTime> {
    let customer = customer_window(db, c.contact_id, c.reply_channel_id).await?;
    Ok([customer, c.last_inbound_at, Some(c.opened_at)]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(c.opened_at))
}

/// Moves a conversation to a new status and owner (the caller checked the transition with
/// `domain::conversation`).
pub async fn set_status(
    tx: &mut PgConnection,
    conversation: Uuid,
    status: &str,
    agent: Option<Uuid>,
    close_reason: Option<&str>,
) -> Result<()> {
    set_status_by(tx, conversation, status, agent, close_reason, Actor::Router).await
}

/// Moves the conversation (the caller holds its row lock and checked the move with
/// `Status::transition`), closes its open protocol when the status is closed, and records
/// the transition with `actor`.
pub async fn set_status_by(
    tx: &mut PgConnection,
    conversation: Uuid,
    status: &str,
    agent: Option<Uuid>,
    close_reason: Option<&str>,
    actor: Actor,
) -> Result<()> {
    let closed = Status::parse(status).is_some_and(Status::is_closed);
    let (actor_kind, actor_id) = actor.parts();
    sqlx::query(
        "WITH old AS (SELECT status, agent_id FROM conversations WHERE id = $1),
         upd AS (
           UPDATE conversations SET status = $2, agent_id = $3,
             close_reason = CASE WHEN $5 THEN COALESCE($4, close_reason) ELSE close_reason END,
             closed_at = CASE WHEN $5 THEN now() ELSE closed_at END,
             first_assigned_at = CASE WHEN $2 = 'assigned' THEN COALESCE(first_assigned_at, now()) ELSE first_assigned_at END,
             updated_at = now()
           WHERE id = $1 RETURNING tenant_id, protocol, service_id)
         INSERT INTO conversation_transitions (tenant_id, conversation_id, protocol, from_status, to_status, service_id,
           agent_id, actor_kind, actor_id, reason)
         SELECT upd.tenant_id, $1, upd.protocol, old.status, $2, upd.service_id, $3, $6, $7, $4 FROM upd, old
         WHERE old.status IS DISTINCT FROM $2 OR old.agent_id IS DISTINCT FROM $3 OR $4 IS NOT NULL",
    )
    .bind(conversation)
    .bind(status)
    .bind(agent)
    .bind(close_reason)
    .bind(closed)
    .bind(actor_kind)
    .bind(actor_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE protocols SET agent_id = COALESCE($2, agent_id),
           closed_at = CASE WHEN $3 THEN now() ELSE closed_at END,
           close_reason = CASE WHEN $3 THEN COALESCE($4, $5) ELSE close_reason END,
           closed_by = CASE WHEN $3 THEN $6 ELSE closed_by END
         WHERE conversation_id = $1 AND closed_at IS NULL",
    )
    .bind(conversation)
    .bind(agent)
    .bind(closed)
    .bind(close_reason)
    .bind(status)
    .bind(actor_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(Clone, Debug, FromRow)]
pub struct Message {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub channel_id: Uuid,
    pub direction: String,
    pub kind: String,
    pub body: Option<String>,
    pub media: Option<serde_json::Value>,
    pub provider_message_id: Option<String>,
    pub reply_to_provider_message_id: Option<String>,
    pub status: String,
    pub agent_id: Option<Uuid>,
    pub client_message_id: Option<String>,
    pub created_at: OffsetDateTime,
    /// Position in the conversation, in commit order (the page cursor).
    pub seq: i64,
}

const MSG_COLS: &str = "id, tenant_id, conversation_id, channel_id, direction, kind, body, media, provider_message_id,
    reply_to_provider_message_id, status, agent_id, client_message_id, created_at, seq";

pub struct NewMessage<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub channel_id: Uuid,
    pub direction: &'static str,
    pub kind: &'a str,
    pub body: Option<&'a str>,
    pub media: Option<serde_json::Value>,
    pub provider_message_id: Option<&'a str>,
    pub reply_to_provider_message_id: Option<&'a str>,
    pub status: &'static str,
    pub agent_id: Option<Uuid>,
    pub client_message_id: Option<&'a str>,
    pub raw: Option<serde_json::Value>,
    pub sent_at: Option<OffsetDateTime>,
}

/// Inserts a message; `None` when its provider id (or client id) is already stored — the
/// durable dedupe that makes redelivered webhooks and retried replies no-ops. Its `seq` comes
/// from the conversation row, which stays locked until the transaction ends, so messages of
/// one conversation are numbered in commit order (a duplicate leaves a harmless gap).
pub async fn insert_message(tx: &mut PgConnection, m: &NewMessage<'_>) -> Result<Option<Message>> {
    Ok(sqlx::query_as::<_, Message>(&format!(
        "WITH numbered AS (
           UPDATE conversations SET last_message_seq = last_message_seq + 1
           WHERE id = $3 AND tenant_id = $2 RETURNING last_message_seq)
         INSERT INTO messages (id, tenant_id, conversation_id, channel_id, direction, kind, body, media, provider_message_id,
            reply_to_provider_message_id, status, agent_id, client_message_id, raw, sent_at, seq)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, last_message_seq FROM numbered
         ON CONFLICT DO NOTHING RETURNING {MSG_COLS}"
    ))
    .bind(m.id)
    .bind(m.tenant_id)
    .bind(m.conversation_id)
    .bind(m.channel_id)
    .bind(m.direction)
    .bind(m.kind)
    .bind(m.body)
    .bind(&m.media)
    .bind(m.provider_message_id)
    .bind(m.reply_to_provider_message_id)
    .bind(m.status)
    .bind(m.agent_id)
    .bind(m.client_message_id)
    .bind(&m.raw)
    .bind(m.sent_at)
    .fetch_optional(&mut *tx)
    .await?)
}

pub async fn message_exists(db: impl PgExecutor<'_>, channel: Uuid, provider_message_id: &str) -> Result<bool> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE channel_id = $1 AND provider_message_id = $2)",
    )
    .bind(channel)
    .bind(provider_message_id)
    .fetch_one(db)
    .await?)
}

pub async fn message_by_client_id(
    db: impl PgExecutor<'_>,
    conversation: Uuid,
    client_id: &str,
) -> Result<Option<Message>> {
    Ok(sqlx::query_as::<_, Message>(&format!(
        "SELECT {MSG_COLS} FROM messages WHERE conversation_id = $1 AND client_message_id = $2"
    ))
    .bind(conversation)
    .bind(client_id)
    .fetch_optional(db)
    .await?)
}

/// The tenant's message with this client id, in whatever conversation (a scheduled send's
/// first message is found before its conversation is).
pub async fn message_by_client_id_in_tenant(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    client_id: &str,
) -> Result<Option<Message>> {
    Ok(sqlx::query_as::<_, Message>(&format!(
        "SELECT {MSG_COLS} FROM messages WHERE tenant_id = $1 AND client_message_id = $2 LIMIT 1"
    ))
    .bind(tenant)
    .bind(client_id)
    .fetch_optional(db)
    .await?)
}

pub async fn get_message(db: impl PgExecutor<'_>, tenant: Uuid, id: Uuid) -> Result<Option<Message>> {
    Ok(sqlx::query_as::<_, Message>(&format!(
        "SELECT {MSG_COLS} FROM messages WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// Messages of a conversation in commit order, after the `seq` cursor (0: from the start).
pub async fn list_messages(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    conversation: Uuid,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<Message>> {
    Ok(sqlx::query_as::<_, Message>(&format!(
        "SELECT {MSG_COLS} FROM messages WHERE tenant_id = $1 AND conversation_id = $2 AND seq > $3
         ORDER BY seq LIMIT $4"
    ))
    .bind(tenant)
    .bind(conversation)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Finds our outbound message by the provider's id (for status webhooks).
pub async fn message_by_provider_id(
    tx: &mut PgConnection,
    channel: Uuid,
    provider_id: &str,
) -> Result<Option<Message>> {
    Ok(sqlx::query_as::<_, Message>(&format!(
        "SELECT {MSG_COLS} FROM messages WHERE channel_id = $1 AND provider_message_id = $2 FOR UPDATE"
    ))
    .bind(channel)
    .bind(provider_id)
    .fetch_optional(&mut *tx)
    .await?)
}

pub async fn lock_message(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> Result<Option<Message>> {
    Ok(sqlx::query_as::<_, Message>(&format!(
        "SELECT {MSG_COLS} FROM messages WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?)
}

pub async fn update_message_delivery(
    tx: &mut PgConnection,
    id: Uuid,
    status: &str,
    provider_message_id: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE messages SET status = $2, provider_message_id = COALESCE(provider_message_id, $3) WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(provider_message_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(Clone, Debug, FromRow)]
pub struct Delivery {
    pub state: String,
    pub attempts: i32,
    pub provider_message_id: Option<String>,
}

/// Marks an outbound message as being sent (before calling the provider) and returns the
/// previous delivery state, if any, so a redelivered job can tell a finished send apart.
pub async fn begin_delivery(db: impl PgExecutor<'_>, tenant: Uuid, message: Uuid) -> Result<Option<Delivery>> {
    let prev: Option<Delivery> = sqlx::query_as::<_, Delivery>(
        "WITH prev AS (SELECT state, attempts, provider_message_id FROM deliveries WHERE message_id = $1),
         up AS (INSERT INTO deliveries (message_id, tenant_id, state, attempts) VALUES ($1, $2, 'sending', 1)
                ON CONFLICT (message_id) DO UPDATE SET attempts = deliveries.attempts + 1, updated_at = now()
                  WHERE deliveries.state NOT IN ('sent', 'failed')
                RETURNING 1)
         SELECT state, attempts, provider_message_id FROM prev",
    )
    .bind(message)
    .bind(tenant)
    .fetch_optional(db)
    .await?;
    Ok(prev)
}

pub async fn finish_delivery(
    db: impl PgExecutor<'_>,
    message: Uuid,
    state: &str,
    provider_message_id: Option<&str>,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE deliveries SET state = $2, provider_message_id = COALESCE($3, provider_message_id), last_error = $4, updated_at = now()
         WHERE message_id = $1",
    )
    .bind(message)
    .bind(state)
    .bind(provider_message_id)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// The address to send to on WhatsApp: the canonical phone when known, else the BSUID.
pub async fn whatsapp_address(db: impl PgExecutor<'_>, tenant: Uuid, contact: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT value FROM contact_identities WHERE tenant_id = $1 AND contact_id = $2 AND kind IN ('wa_phone', 'wa_bsuid')
         ORDER BY CASE kind WHEN 'wa_phone' THEN 0 ELSE 1 END LIMIT 1",
    )
    .bind(tenant)
    .bind(contact)
    .fetch_optional(db)
    .await?)
}

/// Records a webhook item and, only if it is new, queues its event — in ONE statement, so a
/// webhook with a single item needs no explicit transaction (one round trip). Returns false
/// when the item was received before (any time before: the receipt is the durable key).
#[allow(clippy::too_many_arguments)]
pub async fn receive_item(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    channel: Uuid,
    provider_key: &str,
    order_key: &str,
    subject: &str,
    msg_id: &str,
    payload: &[u8],
    headers: &[(String, String)],
) -> Result<bool> {
    // The ordering lock comes first (see `outbox::enqueue`): the outbox id is allocated after it.
    let n = sqlx::query(
        "WITH ordered AS (SELECT pg_advisory_xact_lock($8)),
         receipt AS (
             INSERT INTO webhook_receipts (channel_id, provider_key, tenant_id) SELECT $1, $2, $3 FROM ordered
             ON CONFLICT DO NOTHING RETURNING 1)
         INSERT INTO outbox (tenant_id, subject, msg_id, payload, headers, partition)
         SELECT $3, $4, $5, $6, $7, $9 FROM receipt
         ON CONFLICT (msg_id) DO NOTHING",
    )
    .bind(channel)
    .bind(provider_key)
    .bind(tenant)
    .bind(subject)
    .bind(msg_id)
    .bind(payload)
    .bind(sqlx::types::Json(headers))
    .bind(crate::outbox::key_hash(order_key))
    .bind(crate::outbox::partition_of(order_key))
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}
