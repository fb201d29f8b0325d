//! Templates per WhatsApp number: `SyncTemplates` reads the business account's template list
//! from the Graph API (every page) and replaces the number's templates in one transaction;
//! `ListTemplates` answers them with what each part asks a sender for.

use std::sync::Arc;
use std::time::Duration;

use atende_domain::template::Component;
use atende_domain::ErrorCode;
use atende_proto::v1::{self as pb, broadcast_service_server::BroadcastService};
use atende_runtime::errors::store_status;
use atende_runtime::{parse_id, status};
use atende_store::sealed::{Keyring, Purpose};
use atende_store::templates::{self as store, Listed, TemplateRow};
use secrecy::ExposeSecret;
use serde::Deserialize;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The most pages one sync reads (a business account has at most a few hundred templates).
const MAX_PAGES: usize = 50;

#[derive(Clone)]
pub struct BroadcastApi {
    pub pool: sqlx::PgPool,
    pub keyring: Arc<Keyring>,
    pub graph: Graph,
}

/// The Graph API's template list.
#[derive(Clone)]
pub struct Graph {
    http: reqwest::Client,
    base: String,
    version: String,
}

#[derive(Deserialize)]
struct ListPage {
    #[serde(default)]
    data: Vec<Listing>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    next: Option<String>,
}

/// One template as the list shows it; unknown fields are ignored.
#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    id: String,
    name: String,
    language: String,
    status: String,
    category: String,
    #[serde(default)]
    components: Vec<Component>,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphErrorDetail,
}

#[derive(Deserialize)]
struct GraphErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
}

impl Graph {
    pub fn new(base: &str, version: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("reqwest client with rustls builds from static configuration");
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            version: version.to_string(),
        }
    }

    /// Every template of the business account, following `paging.next`.
    async fn list(&self, account: &str, token: &str) -> Result<Vec<Listing>, Status> {
        let mut url = format!(
            "{}/{}/{account}/message_templates?limit=100&fields=id,name,language,status,category,components",
            self.base, self.version
        );
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let resp = self
                .http
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| status(ErrorCode::Unavailable, &format!("template list: {e}"), None))?;
            let code = resp.status();
            let body = resp
                .bytes()
                .await
                .map_err(|e| status(ErrorCode::Unavailable, &format!("template list: {e}"), None))?;
            if !code.is_success() {
                let detail = serde_json::from_slice::<GraphErrorBody>(&body)
                    .map(|b| {
                        format!(
                            "the provider refused the template list: ({}) {}",
                            b.error.code, b.error.message
                        )
                    })
                    .unwrap_or_else(|_| format!("the provider answered {code}"));
                let code = if code.is_server_error() || code.as_u16() == 429 {
                    ErrorCode::Unavailable
                } else {
                    ErrorCode::InvalidArgument
                };
                return Err(status(code, &detail, Some("channel_id")));
            }
            let page: ListPage = serde_json::from_slice(&body)
                .map_err(|e| status(ErrorCode::Unavailable, &format!("unreadable template list: {e}"), None))?;
            all.extend(page.data);
            match page.paging.and_then(|p| p.next) {
                Some(next) if !next.is_empty() => url = next,
                _ => return Ok(all),
            }
        }
        Err(status(
            ErrorCode::Unavailable,
            "the template list has more pages than a sync reads",
            None,
        ))
    }
}

fn template_pb(row: &TemplateRow) -> pb::Template {
    let shape = row.to_domain().shape().unwrap_or_default();
    pb::Template {
        id: row.id.to_string(),
        channel_id: row.channel_id.to_string(),
        provider_template_id: row.provider_template_id.clone(),
        name: row.name.clone(),
        language: row.language.clone(),
        category: row.category.clone(),
        status: row.status.clone(),
        components_json: row.components.to_string(),
        header_parameters: shape.header_parameters as i32,
        body_parameters: shape.body_parameters as i32,
        url_button_indexes: shape.url_buttons.iter().map(|i| *i as i32).collect(),
        header_format: shape.header_format.unwrap_or_default().to_lowercase(),
        updated_at_ms: atende_store::to_millis(row.updated_at),
    }
}

impl BroadcastApi {
    /// The tenant's WhatsApp channel named in a request.
    async fn whatsapp_channel(&self, tenant: Uuid, raw: &str) -> Result<atende_store::admin::Channel, Status> {
        let id: Uuid = parse_id("channel_id", raw)?;
        atende_store::admin::get_channel(&self.pool, id)
            .await
            .map_err(store_status)?
            .filter(|c| c.tenant_id == tenant && c.kind == "whatsapp")
            .ok_or_else(|| status(ErrorCode::UnknownChannel, "", Some("channel_id")))
    }
}

#[tonic::async_trait]
impl BroadcastService for BroadcastApi {
    async fn sync_templates(
        &self,
        request: Request<pb::SyncTemplatesRequest>,
    ) -> Result<Response<pb::SyncTemplatesResponse>, Status> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let channel = self.whatsapp_channel(tenant, &request.get_ref().channel_id).await?;
        let account = store::business_account(&self.pool, tenant, channel.id)
            .await
            .map_err(store_status)?
            .ok_or_else(|| {
                status(
                    ErrorCode::InvalidArgument,
                    "the number has no WhatsApp Business Account id (business_account_id) to list templates from",
                    Some("channel_id"),
                )
            })?;
        let token = self
            .keyring
            .open(Purpose::AccessToken, &channel.access_token)
            .map_err(|e| atende_runtime::errors::internal(&e))?;
        let listed: Vec<Listed> = self
            .graph
            .list(&account, token.expose_secret())
            .await?
            .into_iter()
            .map(|l| Listed {
                provider_template_id: l.id,
                name: l.name,
                language: l.language,
                category: l.category,
                status: l.status,
                components: serde_json::to_value(&l.components).unwrap_or_default(),
            })
            .collect();
        let mut tx = self.pool.begin().await.map_err(|e| store_status(e.into()))?;
        atende_store::scope_tenant(&mut tx, tenant)
            .await
            .map_err(store_status)?;
        let (kept, deleted) = store::replace_all(&mut tx, tenant, channel.id, &listed)
            .await
            .map_err(store_status)?;
        let rows = store::list(&mut *tx, tenant, channel.id).await.map_err(store_status)?;
        tx.commit().await.map_err(|e| store_status(e.into()))?;
        tracing::info!(%tenant, channel = %channel.id, kept, deleted, "templates synced");
        Ok(Response::new(pb::SyncTemplatesResponse {
            listed: kept as i32,
            deleted: deleted as i32,
            templates: rows.iter().map(template_pb).collect(),
        }))
    }

    async fn list_templates(
        &self,
        request: Request<pb::ListTemplatesRequest>,
    ) -> Result<Response<pb::ListTemplatesResponse>, Status> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let channel = self.whatsapp_channel(tenant, &request.get_ref().channel_id).await?;
        let rows = store::list(&self.pool, tenant, channel.id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::ListTemplatesResponse {
            templates: rows.iter().map(template_pb).collect(),
        }))
    }
}
