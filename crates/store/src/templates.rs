//! WhatsApp templates per number (see the `templates` migration).

use sqlx::{FromRow, PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

#[derive(Clone, Debug, FromRow)]
pub struct TemplateRow {
    pub id: Uuid,
    pub channel_id: Uuid,
    pub provider_template_id: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub components: serde_json::Value,
    pub updated_at: OffsetDateTime,
}

impl TemplateRow {
    /// The template as the domain's rules see it (an unknown category counts as utility).
    pub fn to_domain(&self) -> atende_domain::template::Template {
        use atende_domain::template::Category;
        atende_domain::template::Template {
            name: self.name.clone(),
            language: self.language.clone(),
            category: match self.category.as_str() {
                "MARKETING" => Category::Marketing,
                "AUTHENTICATION" => Category::Authentication,
                _ => Category::Utility,
            },
            status: self.status.clone(),
            components: serde_json::from_value(self.components.clone()).unwrap_or_default(),
        }
    }
}

/// A template as the provider lists it.
#[derive(Clone, Debug)]
pub struct Listed {
    pub provider_template_id: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub components: serde_json::Value,
}

const COLS: &str = "id, channel_id, provider_template_id, name, language, category, status, components, updated_at";

/// The WhatsApp Business Account behind a number, where its templates live.
pub async fn business_account(db: impl PgExecutor<'_>, tenant: Uuid, channel: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT business_account_id FROM channels WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(channel)
    .fetch_optional(db)
    .await?
    .flatten())
}

pub async fn set_business_account(db: impl PgExecutor<'_>, tenant: Uuid, channel: Uuid, account: &str) -> Result<()> {
    sqlx::query("UPDATE channels SET business_account_id = NULLIF($3, '') WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(channel)
        .bind(account)
        .execute(db)
        .await?;
    Ok(())
}

/// Replaces the number's templates with the provider's list, in one transaction: listed ones
/// are inserted or updated, those no longer listed become DELETED. Returns (kept, deleted).
pub async fn replace_all(
    tx: &mut PgConnection,
    tenant: Uuid,
    channel: Uuid,
    listed: &[Listed],
) -> Result<(usize, usize)> {
    for t in listed {
        sqlx::query(
            "INSERT INTO templates (id, tenant_id, channel_id, provider_template_id, name, language, category,
               status, components)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (channel_id, name, language) DO UPDATE SET
               provider_template_id = EXCLUDED.provider_template_id, category = EXCLUDED.category,
               status = EXCLUDED.status, components = EXCLUDED.components, updated_at = now()
             WHERE (templates.provider_template_id, templates.category, templates.status, templates.components)
               IS DISTINCT FROM (EXCLUDED.provider_template_id, EXCLUDED.category, EXCLUDED.status, EXCLUDED.components)",
        )
        .bind(Uuid::now_v7())
        .bind(tenant)
        .bind(channel)
        .bind(&t.provider_template_id)
        .bind(&t.name)
        .bind(&t.language)
        .bind(&t.category)
        .bind(&t.status)
        .bind(&t.components)
        .execute(&mut *tx)
        .await?;
    }
    let names: Vec<String> = listed.iter().map(|t| t.name.clone()).collect();
    let languages: Vec<String> = listed.iter().map(|t| t.language.clone()).collect();
    let deleted = sqlx::query(
        "UPDATE templates SET status = 'DELETED', updated_at = now()
          WHERE tenant_id = $1 AND channel_id = $2 AND status <> 'DELETED'
            AND (name, language) NOT IN (SELECT * FROM unnest($3::text[], $4::text[]))",
    )
    .bind(tenant)
    .bind(channel)
    .bind(&names)
    .bind(&languages)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok((listed.len(), deleted as usize))
}

/// A template status the provider announced, on every number of the tenant that shares the
/// business account: matched by the provider's template id, or by name and language. Returns
/// how many rows changed.
pub async fn set_status(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    business_account: &str,
    template_id: &str,
    name: &str,
    language: &str,
    status: &str,
) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE templates t SET status = $6, updated_at = now()
           FROM channels c
          WHERE c.id = t.channel_id AND t.tenant_id = $1 AND c.business_account_id = $2
            AND (($3 <> '' AND t.provider_template_id = $3) OR (t.name = $4 AND t.language = $5))
            AND t.status IS DISTINCT FROM $6",
    )
    .bind(tenant)
    .bind(business_account)
    .bind(template_id)
    .bind(name)
    .bind(language)
    .bind(status)
    .execute(db)
    .await?
    .rows_affected())
}

/// The number's templates, by name and language.
pub async fn list(db: impl PgExecutor<'_>, tenant: Uuid, channel: Uuid) -> Result<Vec<TemplateRow>> {
    Ok(sqlx::query_as::<_, TemplateRow>(&format!(
        "SELECT {COLS} FROM templates WHERE tenant_id = $1 AND channel_id = $2 ORDER BY name, language"
    ))
    .bind(tenant)
    .bind(channel)
    .fetch_all(db)
    .await?)
}

pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    channel: Uuid,
    name: &str,
    language: &str,
) -> Result<Option<TemplateRow>> {
    Ok(sqlx::query_as::<_, TemplateRow>(&format!(
        "SELECT {COLS} FROM templates WHERE tenant_id = $1 AND channel_id = $2 AND name = $3 AND language = $4"
    ))
    .bind(tenant)
    .bind(channel)
    .bind(name)
    .bind(language)
    .fetch_optional(db)
    .await?)
}
