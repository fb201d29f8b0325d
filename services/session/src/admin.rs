//! `AdminService`: tenants, channels, services and agents — what operators, tests and the
//! demo seed use to set themselves up. Creating with a fixed `id` is idempotent (the seed
//! runs on every `make run`). Secrets (app secret, verify token, access token, password)
//! are write-only: never returned.

use atende_domain::bot::{Menu, MenuOption};
use atende_domain::routing::Policy;
use atende_domain::ErrorCode;
use atende_proto::v1::{self as pb, admin_service_server::AdminService};
use atende_runtime::errors::store_status;
use atende_runtime::{parse_id, status};
use atende_store::admin as store;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::convert;

#[derive(Clone)]
pub struct AdminApi {
    pub pool: PgPool,
    /// Seals channel credentials before they are stored.
    pub keyring: std::sync::Arc<atende_store::sealed::Keyring>,
}

impl AdminApi {
    /// Validates a channel's menu (the domain's bounds, and every service of this tenant)
    /// and returns it as stored.
    async fn menu_json(&self, tenant: Uuid, m: &pb::BotMenu) -> Result<serde_json::Value, Status> {
        let mut options = Vec::with_capacity(m.options.len());
        for o in &m.options {
            let service: Uuid = parse_id("menu.options.service_id", &o.service_id)?;
            options.push(MenuOption {
                label: o.label.trim().to_string(),
                service,
            });
        }
        let fallback_service = if m.fallback_service_id.is_empty() {
            None
        } else {
            Some(parse_id::<Uuid>("menu.fallback_service_id", &m.fallback_service_id)?)
        };
        let menu = Menu {
            greeting: m.greeting.trim().to_string(),
            options,
            invalid_reply: m.invalid_reply.trim().to_string(),
            inactivity_secs: if m.inactivity_secs == 0 {
                600
            } else {
                u64::from(m.inactivity_secs)
            },
            fallback_service,
        };
        menu.validate().map_err(|e| status(e.code, &e.detail, Some("menu")))?;
        for s in menu.options.iter().map(|o| o.service).chain(menu.fallback_service) {
            if store::get_service(&self.pool, tenant, s)
                .await
                .map_err(store_status)?
                .is_none()
            {
                return Err(status(ErrorCode::NotFound, "menu service", Some("menu")));
            }
        }
        serde_json::to_value(&menu).map_err(|e| atende_runtime::errors::internal(&e))
    }
}

fn id_or_new(field: &'static str, raw: &str) -> Result<Uuid, Status> {
    if raw.is_empty() {
        Ok(Uuid::now_v7())
    } else {
        parse_id(field, raw)
    }
}

/// An admin list's page size: 100 when unset, at most 1000.
pub(crate) fn page_size(size: i32) -> Result<i64, Status> {
    match size {
        0 => Ok(100),
        n if (1..=1000).contains(&n) => Ok(i64::from(n)),
        _ => Err(status(
            ErrorCode::InvalidArgument,
            "page_size must be 1 to 1000",
            Some("page_size"),
        )),
    }
}

fn page(size: i32, token: &str) -> Result<(i64, Option<Uuid>), Status> {
    let size = page_size(size)?;
    let after = if token.is_empty() {
        None
    } else {
        Some(parse_id("page_token", token)?)
    };
    Ok((size, after))
}

fn next_token<T>(rows: &[T], size: i64, id: impl Fn(&T) -> Uuid) -> String {
    if rows.len() as i64 == size {
        rows.last().map(|r| id(r).to_string()).unwrap_or_default()
    } else {
        String::new()
    }
}

fn required<'a>(field: &'static str, v: &'a str) -> Result<&'a str, Status> {
    let v = v.trim();
    if v.is_empty() {
        Err(status(
            ErrorCode::InvalidArgument,
            &format!("`{field}` is required"),
            Some(field),
        ))
    } else {
        Ok(v)
    }
}

fn conflict(e: atende_store::StoreError, what: &str) -> Status {
    if e.is_unique_violation() {
        status(ErrorCode::AlreadyExists, what, None)
    } else {
        store_status(e)
    }
}

fn tenant_pb(t: store::Tenant) -> pb::Tenant {
    let mail = crate::mail::Settings::from_tenant(&t);
    pb::Tenant {
        id: t.id.to_string(),
        name: t.name,
        slug: t.slug,
        allow_simultaneous_conversations: t.allow_simultaneous_conversations,
        require_external_protocol: t.require_external_protocol,
        show_expiry_bands: t.show_expiry_bands,
        mail: mail.map(|m| pb::MailSettings {
            host: m.host,
            port: u32::from(m.port),
            tls: m.tls,
            username: m.username,
            password: String::new(),
            from_address: m.from_address,
            from_name: m.from_name,
            transcript_enabled: m.transcript_enabled,
            has_password: t.mail_password.is_some(),
        }),
    }
}

fn channel_pb(c: store::Channel) -> pb::Channel {
    pb::Channel {
        id: c.id.to_string(),
        tenant_id: c.tenant_id.to_string(),
        kind: convert::channel_kind(&c.kind),
        name: c.name,
        provider_account_id: c.provider_account_id,
        default_service_id: c.default_service_id.map(|s| s.to_string()).unwrap_or_default(),
        menu: c
            .menu
            .and_then(|m| serde_json::from_value::<Menu<Uuid>>(m).ok())
            .map(|m| pb::BotMenu {
                greeting: m.greeting,
                options: m
                    .options
                    .into_iter()
                    .map(|o| pb::BotMenuOption {
                        label: o.label,
                        service_id: o.service.to_string(),
                    })
                    .collect(),
                invalid_reply: m.invalid_reply,
                inactivity_secs: m.inactivity_secs.min(u64::from(u32::MAX)) as u32,
                fallback_service_id: m.fallback_service.map(|s| s.to_string()).unwrap_or_default(),
            }),
    }
}

fn service_pb(s: store::Service) -> pb::Service {
    pb::Service {
        id: s.id.to_string(),
        tenant_id: s.tenant_id.to_string(),
        name: s.name,
        policy: s.policy,
        offer_timeout_secs: s.offer_timeout_secs,
        priority: s.priority,
        accepted_channels: s.accepted_channels,
        business_hours: s.business_hours.as_ref().map(business_hours_pb),
        qualifications: s
            .qualifications
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|q| pb::Qualification {
                        code: q["code"].as_str().unwrap_or_default().to_string(),
                        label: q["label"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        send_transcript: s.send_transcript,
        csat_question: s.csat_question.unwrap_or_default(),
    }
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// A service's qualification list as stored: codes unique, 1 to 40 characters, labels
/// defaulting to the code.
fn qualifications_json(list: &[pb::Qualification]) -> Result<serde_json::Value, Status> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for q in list {
        let code = q.code.trim();
        if code.is_empty() || code.chars().count() > 40 || !seen.insert(code.to_string()) {
            return Err(status(
                ErrorCode::InvalidArgument,
                "qualification codes must be unique and have 1 to 40 characters",
                Some("qualifications"),
            ));
        }
        let label = Some(q.label.trim()).filter(|l| !l.is_empty()).unwrap_or(code);
        out.push(serde_json::json!({ "code": code, "label": label }));
    }
    Ok(serde_json::Value::Array(out))
}

fn accepted_channels(kinds: &[String]) -> Result<Vec<String>, Status> {
    let mut out = Vec::with_capacity(kinds.len());
    for k in kinds {
        let kind = atende_domain::channel::ChannelKind::parse(k).ok_or_else(|| {
            status(
                ErrorCode::InvalidArgument,
                &format!("unknown channel kind `{k}`"),
                Some("accepted_channels"),
            )
        })?;
        out.push(kind.as_str().to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The API's schedule as the stored JSON, validated by the domain type (time zone,
/// intervals, dates) so the router can always load what was accepted.
fn business_hours_json(h: &pb::BusinessHours) -> Result<serde_json::Value, Status> {
    let bad = |detail: String| status(ErrorCode::InvalidArgument, &detail, Some("business_hours"));
    let mut weekly = serde_json::Map::new();
    for d in &h.days {
        let day = d.weekday.to_ascii_lowercase();
        if !WEEKDAYS.contains(&day.as_str()) {
            return Err(bad(format!("unknown weekday `{}`", d.weekday)));
        }
        if weekly.insert(day, serde_json::json!(d.intervals)).is_some() {
            return Err(bad(format!("`{}` given twice", d.weekday)));
        }
    }
    let value = serde_json::json!({ "time_zone": h.time_zone, "weekly": weekly, "holidays": h.holidays });
    serde_json::from_value::<atende_domain::business_hours::BusinessHours>(value.clone())
        .map_err(|e| bad(e.to_string()))?;
    Ok(value)
}

fn business_hours_pb(v: &serde_json::Value) -> pb::BusinessHours {
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    pb::BusinessHours {
        time_zone: v["time_zone"].as_str().unwrap_or_default().to_string(),
        days: WEEKDAYS
            .iter()
            .filter_map(|d| {
                let intervals = strings(&v["weekly"][*d]);
                (!intervals.is_empty()).then(|| pb::DayHours {
                    weekday: d.to_string(),
                    intervals,
                })
            })
            .collect(),
        holidays: strings(&v["holidays"]),
    }
}

fn agent_pb(a: store::Agent, services: Vec<Uuid>) -> pb::Agent {
    pb::Agent {
        id: a.id.to_string(),
        tenant_id: a.tenant_id.to_string(),
        name: a.name,
        email: a.email,
        max_concurrent: a.max_concurrent as u32,
        service_ids: services.iter().map(|s| s.to_string()).collect(),
        supervisor: a.supervisor,
        can_attend_in_person: a.can_attend_in_person,
        admin: a.admin,
    }
}

async fn tenant_exists(pool: &PgPool, tenant: Uuid) -> Result<(), Status> {
    match store::get_tenant(pool, tenant).await.map_err(store_status)? {
        Some(_) => Ok(()),
        None => Err(status(ErrorCode::NotFound, "tenant", Some("tenant_id"))),
    }
}

/// Argon2id with a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, Status> {
    atende_runtime::password::hash(password).map_err(|_| status(ErrorCode::Internal, "password hashing failed", None))
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_tenant(
        &self,
        r: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        atende_runtime::authorize_all_tenants(&r)?;
        let r = r.into_inner();
        let id = id_or_new("id", &r.id)?;
        let name = required("name", &r.name)?;
        let slug = required("slug", &r.slug)?;
        if !slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(status(
                ErrorCode::InvalidArgument,
                "slug may hold a-z, 0-9 and -",
                Some("slug"),
            ));
        }
        let mut t = store::create_tenant(&self.pool, id, name, slug, r.allow_simultaneous_conversations)
            .await
            .map_err(|e| conflict(e, "a tenant with this slug exists"))?;
        if r.require_external_protocol != t.require_external_protocol || r.show_expiry_bands != t.show_expiry_bands {
            store::set_tenant_options(&self.pool, t.id, r.require_external_protocol, r.show_expiry_bands)
                .await
                .map_err(store_status)?;
            t.require_external_protocol = r.require_external_protocol;
            t.show_expiry_bands = r.show_expiry_bands;
        }
        if let Some(m) = &r.mail {
            let settings = crate::mail::Settings {
                host: m.host.trim().to_string(),
                port: u16::try_from(m.port).unwrap_or(0),
                tls: if m.tls.is_empty() {
                    "starttls".into()
                } else {
                    m.tls.clone()
                },
                username: m.username.trim().to_string(),
                from_address: m.from_address.trim().to_string(),
                from_name: m.from_name.trim().to_string(),
                transcript_enabled: m.transcript_enabled,
            };
            settings
                .validate()
                .map_err(|field| status(ErrorCode::InvalidArgument, "invalid mail settings", Some(field)))?;
            let password = if m.password.is_empty() {
                None
            } else {
                Some(
                    self.keyring
                        .seal(atende_store::sealed::Purpose::SmtpPassword, &m.password)
                        .map_err(|e| atende_runtime::errors::internal(&e))?,
                )
            };
            let json = serde_json::to_value(&settings).map_err(|e| atende_runtime::errors::internal(&e))?;
            store::set_tenant_mail(&self.pool, t.id, &json, password.as_ref())
                .await
                .map_err(store_status)?;
            t = store::get_tenant(&self.pool, t.id)
                .await
                .map_err(store_status)?
                .unwrap_or(t);
        }
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(tenant_pb(t)),
        }))
    }

    async fn list_tenants(
        &self,
        r: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        atende_runtime::authorize_all_tenants(&r)?;
        let r = r.into_inner();
        let (size, after) = page(r.page_size, &r.page_token)?;
        let rows = store::list_tenants(&self.pool, after, size)
            .await
            .map_err(store_status)?;
        let next_page_token = next_token(&rows, size, |t| t.id);
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: rows.into_iter().map(tenant_pb).collect(),
            next_page_token,
        }))
    }

    async fn create_channel(
        &self,
        r: Request<pb::CreateChannelRequest>,
    ) -> Result<Response<pb::CreateChannelResponse>, Status> {
        let tenant: Uuid = atende_runtime::tenant_id(&r, &r.get_ref().tenant_id)?;
        let r = r.into_inner();
        tenant_exists(&self.pool, tenant).await?;
        let id = id_or_new("id", &r.id)?;
        let kind = match pb::ChannelKind::try_from(r.kind) {
            Ok(pb::ChannelKind::Whatsapp) => "whatsapp",
            Ok(pb::ChannelKind::Messenger) => "messenger",
            Ok(pb::ChannelKind::Instagram) => "instagram",
            Ok(pb::ChannelKind::Webchat) => "webchat",
            _ => return Err(status(ErrorCode::InvalidArgument, "kind is required", Some("kind"))),
        };
        let default_service_id = if r.default_service_id.is_empty() {
            None
        } else {
            let s: Uuid = parse_id("default_service_id", &r.default_service_id)?;
            if store::get_service(&self.pool, tenant, s)
                .await
                .map_err(store_status)?
                .is_none()
            {
                return Err(status(ErrorCode::NotFound, "service", Some("default_service_id")));
            }
            Some(s)
        };
        use atende_store::sealed::Purpose;
        let seal = |purpose, secret: &str| {
            self.keyring
                .seal(purpose, secret)
                .map_err(|e| atende_runtime::errors::internal(&e))
        };
        let app_secret = seal(Purpose::AppSecret, required("app_secret", &r.app_secret)?)?;
        let verify_token = seal(Purpose::VerifyToken, required("verify_token", &r.verify_token)?)?;
        let access_token = seal(Purpose::AccessToken, &r.access_token)?;
        let menu = match &r.menu {
            Some(m) => Some(self.menu_json(tenant, m).await?),
            None => None,
        };
        let mut tx = self.pool.begin().await.map_err(|e| store_status(e.into()))?;
        let c = store::create_channel(
            &mut *tx,
            &store::NewChannel {
                id,
                tenant_id: tenant,
                kind,
                name: required("name", &r.name)?,
                provider_account_id: required("provider_account_id", &r.provider_account_id)?,
                app_secret: &app_secret,
                verify_token: &verify_token,
                access_token: &access_token,
                default_service_id,
            },
        )
        .await
        .map_err(|e| conflict(e, "this provider account is already connected"))?;
        let c = store::set_channel_menu(&mut *tx, tenant, c.id, menu.as_ref())
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::AlreadyExists, "the id belongs to another tenant", Some("id")))?;
        atende_store::templates::set_business_account(&mut *tx, tenant, c.id, r.business_account_id.trim())
            .await
            .map_err(store_status)?;
        tx.commit().await.map_err(|e| store_status(e.into()))?;
        Ok(Response::new(pb::CreateChannelResponse {
            channel: Some(channel_pb(c)),
        }))
    }

    async fn list_channels(
        &self,
        r: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        let tenant: Uuid = atende_runtime::tenant_id(&r, &r.get_ref().tenant_id)?;
        let r = r.into_inner();
        let (size, after) = page(r.page_size, &r.page_token)?;
        let rows = store::list_channels(&self.pool, tenant, after, size)
            .await
            .map_err(store_status)?;
        let next_page_token = next_token(&rows, size, |c| c.id);
        Ok(Response::new(pb::ListChannelsResponse {
            channels: rows.into_iter().map(channel_pb).collect(),
            next_page_token,
        }))
    }

    async fn create_service(
        &self,
        r: Request<pb::CreateServiceRequest>,
    ) -> Result<Response<pb::CreateServiceResponse>, Status> {
        let tenant: Uuid = atende_runtime::tenant_id(&r, &r.get_ref().tenant_id)?;
        let r = r.into_inner();
        tenant_exists(&self.pool, tenant).await?;
        let id = id_or_new("id", &r.id)?;
        let policy = if r.policy.is_empty() {
            "least_loaded"
        } else {
            r.policy.as_str()
        };
        let Some(policy) = Policy::parse(policy) else {
            return Err(status(
                ErrorCode::InvalidArgument,
                "policy must be manual, round_robin, least_loaded, ordered_offer or offer_or_miss",
                Some("policy"),
            ));
        };
        let timeout = if r.offer_timeout_secs == 0 {
            60
        } else {
            r.offer_timeout_secs
        };
        if !(1..=86_400).contains(&timeout) {
            return Err(status(
                ErrorCode::InvalidArgument,
                "offer_timeout_secs must be 1 to 86400",
                Some("offer_timeout_secs"),
            ));
        }
        let accepted = accepted_channels(&r.accepted_channels)?;
        let qualifications = qualifications_json(&r.qualifications)?;
        let csat_question = Some(r.csat_question.trim()).filter(|q| !q.is_empty());
        if csat_question.is_some_and(|q| q.chars().count() > 1024) {
            return Err(status(
                ErrorCode::InvalidArgument,
                "csat_question must have at most 1024 characters",
                Some("csat_question"),
            ));
        }
        let hours = r.business_hours.as_ref().map(business_hours_json).transpose()?;
        let mut tx = self.pool.begin().await.map_err(|e| store_status(e.into()))?;
        store::create_service(
            &mut *tx,
            &store::NewService {
                id,
                tenant_id: tenant,
                name: required("name", &r.name)?,
                policy: policy.as_str(),
                offer_timeout_secs: timeout,
                priority: r.priority,
            },
        )
        .await
        .map_err(|e| conflict(e, "a service with this name exists"))?;
        let s = store::set_service_schedule(&mut *tx, tenant, id, &accepted, hours.as_ref())
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::AlreadyExists, "the id belongs to another tenant", Some("id")))?;
        let s = store::set_service_finish(&mut *tx, tenant, id, &qualifications, r.send_transcript, csat_question)
            .await
            .map_err(store_status)?
            .unwrap_or(s);
        tx.commit().await.map_err(|e| store_status(e.into()))?;
        Ok(Response::new(pb::CreateServiceResponse {
            service: Some(service_pb(s)),
        }))
    }

    async fn list_services(
        &self,
        r: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let tenant: Uuid = atende_runtime::tenant_id(&r, &r.get_ref().tenant_id)?;
        let r = r.into_inner();
        let (size, after) = page(r.page_size, &r.page_token)?;
        let rows = store::list_services(&self.pool, tenant, after, size)
            .await
            .map_err(store_status)?;
        let next_page_token = next_token(&rows, size, |s| s.id);
        Ok(Response::new(pb::ListServicesResponse {
            services: rows.into_iter().map(service_pb).collect(),
            next_page_token,
        }))
    }

    async fn create_agent(
        &self,
        r: Request<pb::CreateAgentRequest>,
    ) -> Result<Response<pb::CreateAgentResponse>, Status> {
        let tenant: Uuid = atende_runtime::tenant_id(&r, &r.get_ref().tenant_id)?;
        let r = r.into_inner();
        tenant_exists(&self.pool, tenant).await?;
        let id = id_or_new("id", &r.id)?;
        let email = required("email", &r.email)?;
        if !email.contains('@') {
            return Err(status(
                ErrorCode::InvalidArgument,
                "email is not an address",
                Some("email"),
            ));
        }
        if r.password.chars().count() < 8 {
            return Err(status(
                ErrorCode::InvalidArgument,
                "password needs at least 8 characters",
                Some("password"),
            ));
        }
        let max = if r.max_concurrent == 0 { 3 } else { r.max_concurrent };
        if max > 1000 {
            return Err(status(
                ErrorCode::InvalidArgument,
                "max_concurrent must be 1 to 1000",
                Some("max_concurrent"),
            ));
        }
        let mut services = Vec::with_capacity(r.service_ids.len());
        for s in &r.service_ids {
            let s: Uuid = parse_id("service_ids", s)?;
            if store::get_service(&self.pool, tenant, s)
                .await
                .map_err(store_status)?
                .is_none()
            {
                return Err(status(ErrorCode::NotFound, "service", Some("service_ids")));
            }
            services.push(s);
        }
        let hash = hash_password(&r.password)?;
        let mut tx = self.pool.begin().await.map_err(|e| store_status(e.into()))?;
        let a = store::create_agent(
            &mut tx,
            &store::NewAgent {
                id,
                tenant_id: tenant,
                name: required("name", &r.name)?,
                email,
                password_hash: &hash,
                max_concurrent: max as i32,
                supervisor: r.supervisor,
            },
            &services,
        )
        .await
        .map_err(|e| conflict(e, "an agent with this e-mail exists"))?;
        let mut a = a;
        if a.can_attend_in_person != r.can_attend_in_person {
            store::set_agent_in_person(&mut *tx, tenant, a.id, r.can_attend_in_person)
                .await
                .map_err(store_status)?;
            a.can_attend_in_person = r.can_attend_in_person;
        }
        if a.admin != r.admin {
            store::set_agent_admin(&mut *tx, tenant, a.id, r.admin)
                .await
                .map_err(store_status)?;
            a.admin = r.admin;
        }
        let service_ids = store::agent_service_ids(&mut *tx, a.id).await.map_err(store_status)?;
        tx.commit().await.map_err(|e| store_status(e.into()))?;
        Ok(Response::new(pb::CreateAgentResponse {
            agent: Some(agent_pb(a, service_ids)),
        }))
    }

    async fn list_agents(&self, r: Request<pb::ListAgentsRequest>) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let tenant: Uuid = atende_runtime::tenant_id(&r, &r.get_ref().tenant_id)?;
        let r = r.into_inner();
        let (size, after) = page(r.page_size, &r.page_token)?;
        let rows = store::list_agents(&self.pool, tenant, after, size)
            .await
            .map_err(store_status)?;
        let next_page_token = next_token(&rows, size, |a| a.id);
        let mut agents = Vec::with_capacity(rows.len());
        for a in rows {
            let services = store::agent_service_ids(&self.pool, a.id).await.map_err(store_status)?;
            agents.push(agent_pb(a, services));
        }
        Ok(Response::new(pb::ListAgentsResponse {
            agents,
            next_page_token,
        }))
    }

    async fn list_dead_letters(
        &self,
        r: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        crate::dead_letters::list(&self.pool, r).await
    }

    async fn replay_dead_letter(
        &self,
        r: Request<pb::ReplayDeadLetterRequest>,
    ) -> Result<Response<pb::ReplayDeadLetterResponse>, Status> {
        crate::dead_letters::replay(&self.pool, r).await
    }
}
