//! Tenants, channels, services and agents.

use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use crate::sealed::Sealed;
use crate::Result;

#[derive(Clone, Debug, FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub allow_simultaneous_conversations: bool,
    pub require_external_protocol: bool,
    pub show_expiry_bands: bool,
    /// SMTP settings (see the `tenants.mail` column), without the password.
    pub mail: Option<serde_json::Value>,
    pub mail_password: Option<Sealed>,
}

#[derive(Clone, Debug, FromRow)]
pub struct Channel {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: String,
    pub name: String,
    pub provider_account_id: String,
    /// Sealed with the keyring (see [`crate::sealed`]); opened only where used.
    pub app_secret: Sealed,
    pub verify_token: Sealed,
    pub access_token: Sealed,
    pub default_service_id: Option<Uuid>,
    /// The menu bot (`atende_domain::bot::Menu<Uuid>` as JSON), when the channel has one.
    pub menu: Option<serde_json::Value>,
}

#[derive(Clone, Debug, FromRow)]
pub struct Service {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub policy: String,
    pub offer_timeout_secs: i32,
    pub priority: i32,
    pub accepted_channels: Vec<String>,
    pub business_hours: Option<serde_json::Value>,
    /// `[{"code", "label"}]`: what an agent picks from when finishing.
    pub qualifications: serde_json::Value,
    pub send_transcript: bool,
    /// Asked after a finish (answers 1 to 5); `None`: no question.
    pub csat_question: Option<String>,
}

impl Service {
    /// The qualification codes of the service.
    pub fn qualification_codes(&self) -> Vec<String> {
        self.qualifications
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|q| q["code"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct Agent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub max_concurrent: i32,
    pub supervisor: bool,
    /// May register in-person attendances.
    pub can_attend_in_person: bool,
    /// Manages the tenant's agents and services (and supervises).
    pub admin: bool,
}

impl Agent {
    /// Sees and acts on the whole tenant's work (`domain::roles::supervises`).
    pub fn supervises(&self) -> bool {
        atende_domain::roles::supervises(self.supervisor, self.admin)
    }
}

const TENANT_COLS: &str =
    "id, name, slug, allow_simultaneous_conversations, require_external_protocol, show_expiry_bands, mail, mail_password";

/// Sets the tenant's SMTP settings; `None` keeps the stored password.
pub async fn set_tenant_mail(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    mail: &serde_json::Value,
    password: Option<&Sealed>,
) -> Result<()> {
    sqlx::query("UPDATE tenants SET mail = $2, mail_password = COALESCE($3, mail_password) WHERE id = $1")
        .bind(tenant)
        .bind(mail)
        .bind(password)
        .execute(db)
        .await?;
    Ok(())
}

/// Sets the tenant's finish options.
pub async fn set_tenant_options(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    require_external_protocol: bool,
    show_expiry_bands: bool,
) -> Result<()> {
    sqlx::query("UPDATE tenants SET require_external_protocol = $2, show_expiry_bands = $3 WHERE id = $1")
        .bind(tenant)
        .bind(require_external_protocol)
        .bind(show_expiry_bands)
        .execute(db)
        .await?;
    Ok(())
}

/// Sets (or with `None` removes) a channel's menu bot; the caller validated it.
pub async fn set_channel_menu(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    channel: Uuid,
    menu: Option<&serde_json::Value>,
) -> Result<Option<Channel>> {
    Ok(sqlx::query_as::<_, Channel>(&format!(
        "UPDATE channels SET menu = $3 WHERE tenant_id = $1 AND id = $2 RETURNING {CHANNEL_COLS}"
    ))
    .bind(tenant)
    .bind(channel)
    .bind(menu)
    .fetch_optional(db)
    .await?)
}

/// Sets what finishing in a service asks for: its qualification list (`[{"code", "label"}]`)
/// and whether it e-mails the transcript.
pub async fn set_service_finish(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    service: Uuid,
    qualifications: &serde_json::Value,
    send_transcript: bool,
    csat_question: Option<&str>,
) -> Result<Option<Service>> {
    Ok(sqlx::query_as::<_, Service>(&format!(
        "UPDATE services SET qualifications = $3, send_transcript = $4, csat_question = $5 WHERE tenant_id = $1 AND id = $2
         RETURNING {SERVICE_COLS}"
    ))
    .bind(tenant)
    .bind(service)
    .bind(qualifications)
    .bind(send_transcript)
    .bind(csat_question)
    .fetch_optional(db)
    .await?)
}

/// Creates a tenant; with a fixed id an existing identical tenant is returned (idempotent
/// seeding).
pub async fn create_tenant(
    db: impl PgExecutor<'_>,
    id: Uuid,
    name: &str,
    slug: &str,
    allow_simultaneous: bool,
) -> Result<Tenant> {
    Ok(sqlx::query_as::<_, Tenant>(&format!(
        "INSERT INTO tenants (id, name, slug, allow_simultaneous_conversations) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name
         RETURNING {TENANT_COLS}"
    ))
    .bind(id)
    .bind(name)
    .bind(slug)
    .bind(allow_simultaneous)
    .fetch_one(db)
    .await?)
}

pub async fn list_tenants(db: impl PgExecutor<'_>, after: Option<Uuid>, limit: i64) -> Result<Vec<Tenant>> {
    Ok(sqlx::query_as::<_, Tenant>(&format!(
        "SELECT {TENANT_COLS} FROM tenants
         WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub async fn get_tenant(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Tenant>> {
    Ok(
        sqlx::query_as::<_, Tenant>(&format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

pub async fn tenant_by_slug(db: impl PgExecutor<'_>, slug: &str) -> Result<Option<Tenant>> {
    Ok(
        sqlx::query_as::<_, Tenant>(&format!("SELECT {TENANT_COLS} FROM tenants WHERE slug = $1"))
            .bind(slug)
            .fetch_optional(db)
            .await?,
    )
}

pub struct NewChannel<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: &'a str,
    pub name: &'a str,
    pub provider_account_id: &'a str,
    pub app_secret: &'a Sealed,
    pub verify_token: &'a Sealed,
    pub access_token: &'a Sealed,
    pub default_service_id: Option<Uuid>,
}

const CHANNEL_COLS: &str =
    "id, tenant_id, kind, name, provider_account_id, app_secret, verify_token, access_token, default_service_id, menu";

pub async fn create_channel(db: impl PgExecutor<'_>, c: &NewChannel<'_>) -> Result<Channel> {
    Ok(sqlx::query_as::<_, Channel>(&format!(
        "INSERT INTO channels (id, tenant_id, kind, name, provider_account_id, app_secret, verify_token, access_token, default_service_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, app_secret = EXCLUDED.app_secret,
           verify_token = EXCLUDED.verify_token, access_token = EXCLUDED.access_token,
           default_service_id = EXCLUDED.default_service_id
         WHERE channels.tenant_id = EXCLUDED.tenant_id
         RETURNING {CHANNEL_COLS}"
    ))
    .bind(c.id)
    .bind(c.tenant_id)
    .bind(c.kind)
    .bind(c.name)
    .bind(c.provider_account_id)
    .bind(c.app_secret)
    .bind(c.verify_token)
    .bind(c.access_token)
    .bind(c.default_service_id)
    .fetch_one(db)
    .await?)
}

pub async fn get_channel(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Channel>> {
    Ok(
        sqlx::query_as::<_, Channel>(&format!("SELECT {CHANNEL_COLS} FROM channels WHERE id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

pub async fn list_channels(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Channel>> {
    Ok(sqlx::query_as::<_, Channel>(&format!(
        "SELECT {CHANNEL_COLS} FROM channels WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub struct NewService<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: &'a str,
    pub policy: &'a str,
    pub offer_timeout_secs: i32,
    pub priority: i32,
}

const SERVICE_COLS: &str =
    "id, tenant_id, name, policy, offer_timeout_secs, priority, accepted_channels, business_hours, qualifications,
    send_transcript, csat_question";

pub async fn create_service(db: impl PgExecutor<'_>, s: &NewService<'_>) -> Result<Service> {
    Ok(sqlx::query_as::<_, Service>(&format!(
        "INSERT INTO services (id, tenant_id, name, policy, offer_timeout_secs, priority) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, policy = EXCLUDED.policy,
           offer_timeout_secs = EXCLUDED.offer_timeout_secs, priority = EXCLUDED.priority
         WHERE services.tenant_id = EXCLUDED.tenant_id
         RETURNING {SERVICE_COLS}"
    ))
    .bind(s.id)
    .bind(s.tenant_id)
    .bind(s.name)
    .bind(s.policy)
    .bind(s.offer_timeout_secs)
    .bind(s.priority)
    .fetch_one(db)
    .await?)
}

/// Sets which channel kinds a service takes and when it is open (the caller validated both
/// with the domain types).
pub async fn set_service_schedule(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    service: Uuid,
    accepted_channels: &[String],
    business_hours: Option<&serde_json::Value>,
) -> Result<Option<Service>> {
    Ok(sqlx::query_as::<_, Service>(&format!(
        "UPDATE services SET accepted_channels = $3, business_hours = $4 WHERE tenant_id = $1 AND id = $2
         RETURNING {SERVICE_COLS}"
    ))
    .bind(tenant)
    .bind(service)
    .bind(accepted_channels)
    .bind(business_hours)
    .fetch_optional(db)
    .await?)
}

pub async fn get_service(db: impl PgExecutor<'_>, tenant: Uuid, id: Uuid) -> Result<Option<Service>> {
    Ok(sqlx::query_as::<_, Service>(&format!(
        "SELECT {SERVICE_COLS} FROM services WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(db)
    .await?)
}

pub async fn list_services(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Service>> {
    Ok(sqlx::query_as::<_, Service>(&format!(
        "SELECT {SERVICE_COLS} FROM services WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub struct NewAgent<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub max_concurrent: i32,
    pub supervisor: bool,
}

const AGENT_COLS: &str =
    "id, tenant_id, name, email, password_hash, max_concurrent, supervisor, can_attend_in_person, admin";

/// Makes the agent a tenant administrator, or not.
pub async fn set_agent_admin(db: impl PgExecutor<'_>, tenant: Uuid, agent: Uuid, admin: bool) -> Result<()> {
    sqlx::query("UPDATE agents SET admin = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(agent)
        .bind(admin)
        .execute(db)
        .await?;
    Ok(())
}

/// Sets the agent's permission to register in-person attendances.
pub async fn set_agent_in_person(db: impl PgExecutor<'_>, tenant: Uuid, agent: Uuid, allowed: bool) -> Result<()> {
    sqlx::query("UPDATE agents SET can_attend_in_person = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(agent)
        .bind(allowed)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn create_agent(db: &mut sqlx::PgConnection, a: &NewAgent<'_>, service_ids: &[Uuid]) -> Result<Agent> {
    let agent = sqlx::query_as::<_, Agent>(&format!(
        "INSERT INTO agents (id, tenant_id, name, email, password_hash, max_concurrent, supervisor)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email,
           password_hash = EXCLUDED.password_hash, max_concurrent = EXCLUDED.max_concurrent,
           supervisor = EXCLUDED.supervisor
         WHERE agents.tenant_id = EXCLUDED.tenant_id
         RETURNING {AGENT_COLS}"
    ))
    .bind(a.id)
    .bind(a.tenant_id)
    .bind(a.name)
    .bind(a.email)
    .bind(a.password_hash)
    .bind(a.max_concurrent)
    .bind(a.supervisor)
    .fetch_one(&mut *db)
    .await?;
    for (order, service) in service_ids.iter().enumerate() {
        sqlx::query(
            "INSERT INTO agent_services (tenant_id, agent_id, service_id, rotation_order)
             SELECT $1, $2, $3, COALESCE(MAX(rotation_order), 0) + 1 + $4 FROM agent_services WHERE service_id = $3
             ON CONFLICT DO NOTHING",
        )
        .bind(a.tenant_id)
        .bind(a.id)
        .bind(service)
        .bind(order as i32)
        .execute(&mut *db)
        .await?;
    }
    Ok(agent)
}

pub async fn list_agents(db: impl PgExecutor<'_>, tenant: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<Agent>> {
    Ok(sqlx::query_as::<_, Agent>(&format!(
        "SELECT {AGENT_COLS} FROM agents WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub async fn get_agent(db: impl PgExecutor<'_>, tenant: Uuid, id: Uuid) -> Result<Option<Agent>> {
    Ok(sqlx::query_as::<_, Agent>(&format!(
        "SELECT {AGENT_COLS} FROM agents WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(db)
    .await?)
}

pub async fn agent_by_email(db: impl PgExecutor<'_>, tenant: Uuid, email: &str) -> Result<Option<Agent>> {
    Ok(sqlx::query_as::<_, Agent>(&format!(
        "SELECT {AGENT_COLS} FROM agents WHERE tenant_id = $1 AND lower(email) = lower($2)"
    ))
    .bind(tenant)
    .bind(email)
    .fetch_optional(db)
    .await?)
}

pub async fn agent_service_ids(db: impl PgExecutor<'_>, agent: Uuid) -> Result<Vec<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT service_id FROM agent_services WHERE agent_id = $1 ORDER BY service_id")
            .bind(agent)
            .fetch_all(db)
            .await?,
    )
}

/// Members of a service with their capacity and initial rotation place.
#[derive(Clone, Debug, FromRow)]
pub struct ServiceMember {
    pub agent_id: Uuid,
    pub max_concurrent: i32,
    pub rotation_order: i32,
}

pub async fn service_members(db: impl PgExecutor<'_>, service: Uuid) -> Result<Vec<ServiceMember>> {
    Ok(sqlx::query_as::<_, ServiceMember>(
        "SELECT s.agent_id, a.max_concurrent, s.rotation_order FROM agent_services s
         JOIN agents a ON a.id = s.agent_id WHERE s.service_id = $1 ORDER BY s.rotation_order, s.agent_id",
    )
    .bind(service)
    .fetch_all(db)
    .await?)
}

/// The channel of a provider account (WhatsApp phone_number_id, page id…).
pub async fn channel_by_account(db: impl PgExecutor<'_>, kind: &str, account: &str) -> Result<Option<Channel>> {
    Ok(sqlx::query_as::<_, Channel>(&format!(
        "SELECT {CHANNEL_COLS} FROM channels WHERE kind = $1 AND provider_account_id = $2"
    ))
    .bind(kind)
    .bind(account)
    .fetch_optional(db)
    .await?)
}

/// Re-seals every channel secret not sealed by the active key (plaintext from before
/// sealing, or an older key), a page at a time; returns how many channels changed. A row
/// changed concurrently is left for the next run (the update matches the old values).
/// Re-seals tenants' SMTP passwords sealed by an older key; returns how many changed.
pub async fn reseal_mail_passwords(pool: &sqlx::PgPool, keyring: &crate::sealed::Keyring) -> Result<u64> {
    use crate::sealed::Purpose;
    use secrecy::ExposeSecret;
    let rows: Vec<(Uuid, Sealed)> =
        sqlx::query_as("SELECT id, mail_password FROM tenants WHERE mail_password IS NOT NULL ORDER BY id")
            .fetch_all(pool)
            .await?;
    let mut changed = 0;
    for (tenant, sealed) in rows {
        if !keyring.needs_reseal(&sealed) {
            continue;
        }
        let fresh = keyring.seal(
            Purpose::SmtpPassword,
            keyring.open(Purpose::SmtpPassword, &sealed)?.expose_secret(),
        )?;
        changed += sqlx::query("UPDATE tenants SET mail_password = $2 WHERE id = $1 AND mail_password = $3")
            .bind(tenant)
            .bind(&fresh)
            .bind(&sealed)
            .execute(pool)
            .await?
            .rows_affected();
    }
    Ok(changed)
}

pub async fn reseal_channel_secrets(pool: &sqlx::PgPool, keyring: &crate::sealed::Keyring) -> Result<u64> {
    use crate::sealed::Purpose;
    let mut after: Option<Uuid> = None;
    let mut changed = 0;
    loop {
        let rows = sqlx::query_as::<_, Channel>(&format!(
            "SELECT {CHANNEL_COLS} FROM channels WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT 100"
        ))
        .bind(after)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        for c in rows {
            if ![&c.app_secret, &c.verify_token, &c.access_token]
                .iter()
                .any(|s| keyring.needs_reseal(s))
            {
                continue;
            }
            let reseal = |purpose, s: &Sealed| -> std::result::Result<Sealed, crate::sealed::SealError> {
                use secrecy::ExposeSecret;
                keyring.seal(purpose, keyring.open(purpose, s)?.expose_secret())
            };
            let (app, verify, access) = (
                reseal(Purpose::AppSecret, &c.app_secret)?,
                reseal(Purpose::VerifyToken, &c.verify_token)?,
                reseal(Purpose::AccessToken, &c.access_token)?,
            );
            changed += sqlx::query(
                "UPDATE channels SET app_secret = $2, verify_token = $3, access_token = $4
                 WHERE id = $1 AND app_secret = $5 AND verify_token = $6 AND access_token = $7",
            )
            .bind(c.id)
            .bind(&app)
            .bind(&verify)
            .bind(&access)
            .bind(&c.app_secret)
            .bind(&c.verify_token)
            .bind(&c.access_token)
            .execute(pool)
            .await?
            .rows_affected();
        }
    }
    Ok(changed)
}
