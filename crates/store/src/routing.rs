//! Assignments (who owns which conversation: the durable side of the router's Redis
//! reservations) and the decision log ("why did this agent get it?").

use sqlx::{FromRow, PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// Opens the assignment of a conversation; false when it already has an open one (the
/// partial unique index is the last wall against double assignment).
pub async fn open_assignment(
    tx: &mut PgConnection,
    tenant: Uuid,
    conversation: Uuid,
    agent: Uuid,
    service: Option<Uuid>,
) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO assignments (id, tenant_id, conversation_id, agent_id, service_id) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(conversation)
    .bind(agent)
    .bind(service)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Closes the open assignment of a conversation; returns the agent it had.
pub async fn release_assignment(
    tx: &mut PgConnection,
    tenant: Uuid,
    conversation: Uuid,
    reason: &str,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "UPDATE assignments SET released_at = now(), release_reason = $2
         WHERE conversation_id = $1 AND tenant_id = $3 AND released_at IS NULL RETURNING agent_id",
    )
    .bind(conversation)
    .bind(reason)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?)
}

pub async fn open_assignment_agent(db: impl PgExecutor<'_>, conversation: Uuid) -> Result<Option<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT agent_id FROM assignments WHERE conversation_id = $1 AND released_at IS NULL")
            .bind(conversation)
            .fetch_optional(db)
            .await?,
    )
}

#[derive(Clone, Debug, FromRow)]
pub struct OpenAssignment {
    pub conversation_id: Uuid,
    pub agent_id: Uuid,
}

/// Every open assignment of a tenant: what the router rebuilds Redis capacity from.
pub async fn open_assignments(db: impl PgExecutor<'_>, tenant: Uuid) -> Result<Vec<OpenAssignment>> {
    Ok(sqlx::query_as::<_, OpenAssignment>(
        "SELECT conversation_id, agent_id FROM assignments WHERE tenant_id = $1 AND released_at IS NULL",
    )
    .bind(tenant)
    .fetch_all(db)
    .await?)
}

pub struct Decision<'a> {
    pub tenant_id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub service_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub decision: &'a str,
    pub rule: &'a str,
    pub explanation: serde_json::Value,
}

pub async fn log_decision(db: impl PgExecutor<'_>, d: &Decision<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO decision_log (tenant_id, conversation_id, service_id, agent_id, decision, rule, explanation)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(d.tenant_id)
    .bind(d.conversation_id)
    .bind(d.service_id)
    .bind(d.agent_id)
    .bind(d.decision)
    .bind(d.rule)
    .bind(&d.explanation)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Clone, Debug, FromRow)]
pub struct DecisionRow {
    pub at: OffsetDateTime,
    pub decision: String,
    pub agent_id: Option<Uuid>,
    pub rule: String,
    pub explanation: serde_json::Value,
}

pub async fn decisions_for(db: impl PgExecutor<'_>, tenant: Uuid, conversation: Uuid) -> Result<Vec<DecisionRow>> {
    Ok(sqlx::query_as::<_, DecisionRow>(
        "SELECT at, decision, agent_id, rule, explanation FROM decision_log
         WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY id",
    )
    .bind(tenant)
    .bind(conversation)
    .fetch_all(db)
    .await?)
}

/// A service's routing configuration as stored (business hours as their JSON).
#[derive(Clone, Debug, FromRow)]
pub struct ServiceRules {
    pub policy: String,
    pub offer_timeout_secs: i32,
    pub priority: i32,
    pub accepted_channels: Vec<String>,
    pub business_hours: Option<serde_json::Value>,
}

pub async fn service_rules(db: impl PgExecutor<'_>, tenant: Uuid, service: Uuid) -> Result<Option<ServiceRules>> {
    Ok(sqlx::query_as::<_, ServiceRules>(
        "SELECT policy, offer_timeout_secs, priority, accepted_channels, business_hours FROM services
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(service)
    .fetch_optional(db)
    .await?)
}

/// Every agent of a tenant with his max: the rebuild writes a counter for each, zero
/// included, so a stale counter never survives it.
pub async fn tenant_agent_capacity(db: impl PgExecutor<'_>, tenant: Uuid) -> Result<Vec<(Uuid, i32)>> {
    Ok(
        sqlx::query_as::<_, (Uuid, i32)>("SELECT id, max_concurrent FROM agents WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_all(db)
            .await?,
    )
}

/// How many conversations the agent has assigned and open.
pub async fn open_assignment_count(db: impl PgExecutor<'_>, agent: Uuid) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM assignments WHERE agent_id = $1 AND released_at IS NULL")
            .bind(agent)
            .fetch_one(db)
            .await?,
    )
}

/// Tenants with anything the router must keep live in Redis (open assignments or offers).
pub async fn routed_tenants(db: impl PgExecutor<'_>) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT tenant_id FROM assignments WHERE released_at IS NULL
         UNION SELECT DISTINCT tenant_id FROM route_offers",
    )
    .fetch_all(db)
    .await?)
}

/// The agent's services with their policy and his initial rotation place in each: what the
/// router's candidate index needs about him.
pub async fn agent_memberships(db: impl PgExecutor<'_>, agent: Uuid) -> Result<Vec<(Uuid, String, i32)>> {
    Ok(sqlx::query_as::<_, (Uuid, String, i32)>(
        "SELECT s.service_id, sv.policy, s.rotation_order FROM agent_services s
         JOIN services sv ON sv.id = s.service_id WHERE s.agent_id = $1 ORDER BY s.service_id",
    )
    .bind(agent)
    .fetch_all(db)
    .await?)
}

/// A page of a tenant's agents, by id after `after`: reconciliation walks them in turn.
pub async fn agent_page(db: impl PgExecutor<'_>, tenant: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM agents WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// What `agents` hold according to Postgres: open assignments (`assign`) and pending offers
/// (`offer`, with their service and deadline), as (agent, conversation, mode, service, deadline).
#[derive(Clone, Debug, FromRow)]
pub struct Hold {
    pub agent_id: Uuid,
    pub conversation_id: Uuid,
    pub mode: String,
    pub service_id: Option<Uuid>,
    pub expires_at: Option<time::OffsetDateTime>,
}

pub async fn holds_of_agents(db: impl PgExecutor<'_>, tenant: Uuid, agents: &[Uuid]) -> Result<Vec<Hold>> {
    Ok(sqlx::query_as::<_, Hold>(
        "SELECT agent_id, conversation_id, 'assign' AS mode, NULL::uuid AS service_id, NULL::timestamptz AS expires_at
           FROM assignments WHERE tenant_id = $1 AND agent_id = ANY($2) AND released_at IS NULL
         UNION ALL
         SELECT agent_id, conversation_id, 'offer', service_id, expires_at
           FROM route_offers WHERE tenant_id = $1 AND agent_id = ANY($2)",
    )
    .bind(tenant)
    .bind(agents)
    .fetch_all(db)
    .await?)
}
