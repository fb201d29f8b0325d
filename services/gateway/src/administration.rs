//! The tenant administrator's API: the tenant's agents and services, listed and created,
//! each route a mapping of an `AdminService` call scoped to the administrator's own tenant.
//! Administrators only (the `admin` permission): everyone else gets PERMISSION_DENIED.

use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_runtime::http_api::{error, from_status, ErrorResponse};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{Agent, AppState, PageQuery};
use crate::auth::Claims;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(list_services, create_service))
}

fn reply<T: Serialize>(ok: StatusCode, r: Result<tonic::Response<T>, tonic::Status>) -> Response {
    match r {
        Ok(r) => (ok, Json(r.into_inner())).into_response(),
        Err(s) => from_status(&s).into_response(),
    }
}

/// The administrator's tenant and the page asked for, or the refusal.
fn admin_page(
    claims: &Claims,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<(String, i32, String), ErrorResponse> {
    claims.require("admin")?;
    let Query(q) = q.map_err(|_| error(ErrorCode::InvalidArgument, "expected ?page_token=&page_size=<integer>"))?;
    Ok((
        claims.tenant.to_string(),
        q.page_size.unwrap_or_default(),
        q.page_token.unwrap_or_default(),
    ))
}

#[utoipa::path(get, path = "/api/v1/admin/agents", tag = "admin", params(PageQuery),
    responses((status = 200, description = "The tenant's agents", body = pb::ListAgentsResponse)))]
async fn list_agents(
    State(state): State<AppState>,
    Agent(claims): Agent,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let (tenant_id, page_size, page_token) = try_or_answer!(admin_page(&claims, q));
    let req = pb::ListAgentsRequest {
        tenant_id,
        page_size,
        page_token,
    };
    reply(StatusCode::OK, state.admin.clone().list_agents(req).await)
}

#[derive(Deserialize, ToSchema)]
struct NewAgentBody {
    #[schema(example = "Carla")]
    name: String,
    #[schema(example = "carla@acme.test")]
    email: String,
    /// At least 8 characters; stored as an argon2 hash.
    #[schema(min_length = 8, example = "a long passphrase")]
    password: String,
    /// Conversations at once; 3 when absent.
    #[serde(default)]
    #[schema(maximum = 1000)]
    max_concurrent: u32,
    /// The services whose queues the agent works.
    #[serde(default)]
    #[schema(value_type = Vec<uuid::Uuid>)]
    service_ids: Vec<String>,
    #[serde(default)]
    supervisor: bool,
    #[serde(default)]
    admin: bool,
    /// May register in-person attendances.
    #[serde(default)]
    can_attend_in_person: bool,
}

#[utoipa::path(post, path = "/api/v1/admin/agents", tag = "admin", request_body = NewAgentBody,
    responses((status = 201, description = "The new agent; he signs in with this e-mail and password", body = pb::CreateAgentResponse)))]
async fn create_agent(
    State(state): State<AppState>,
    Agent(claims): Agent,
    b: Result<Json<NewAgentBody>, JsonRejection>,
) -> Response {
    try_or_answer!(claims.require("admin"));
    let Ok(Json(b)) = b else {
        return error(
            ErrorCode::MalformedPayload,
            "expected {name, email, password, max_concurrent?, service_ids?, supervisor?, admin?, can_attend_in_person?}",
        )
        .into_response();
    };
    let req = pb::CreateAgentRequest {
        tenant_id: claims.tenant.to_string(),
        name: b.name,
        email: b.email,
        password: b.password,
        max_concurrent: b.max_concurrent,
        service_ids: b.service_ids,
        supervisor: b.supervisor,
        id: String::new(),
        can_attend_in_person: b.can_attend_in_person,
        admin: b.admin,
    };
    reply(StatusCode::CREATED, state.admin.clone().create_agent(req).await)
}

#[utoipa::path(get, path = "/api/v1/admin/services", tag = "admin", params(PageQuery),
    responses((status = 200, description = "The tenant's services", body = pb::ListServicesResponse)))]
async fn list_services(
    State(state): State<AppState>,
    Agent(claims): Agent,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let (tenant_id, page_size, page_token) = try_or_answer!(admin_page(&claims, q));
    let req = pb::ListServicesRequest {
        tenant_id,
        page_size,
        page_token,
    };
    reply(StatusCode::OK, state.admin.clone().list_services(req).await)
}

#[derive(Deserialize, ToSchema)]
struct QualificationBody {
    #[schema(example = "resolvido")]
    code: String,
    #[serde(default)]
    label: String,
}

#[derive(Deserialize, ToSchema)]
struct NewServiceBody {
    #[schema(example = "Vendas")]
    name: String,
    /// manual, round_robin, least_loaded, ordered_offer or offer_or_miss.
    #[schema(example = "least_loaded")]
    policy: String,
    /// Seconds an ordered offer waits for an answer; 60 when absent.
    #[serde(default)]
    offer_timeout_secs: i32,
    #[serde(default)]
    priority: i32,
    /// whatsapp, messenger, instagram, webchat; empty: all.
    #[serde(default)]
    accepted_channels: Vec<String>,
    /// The codes an agent picks from when finishing.
    #[serde(default)]
    qualifications: Vec<QualificationBody>,
    /// E-mail the transcript on finish.
    #[serde(default)]
    send_transcript: bool,
    /// Asked after a finish; the customer answers 1 to 5.
    #[serde(default)]
    csat_question: String,
}

#[utoipa::path(post, path = "/api/v1/admin/services", tag = "admin", request_body = NewServiceBody,
    responses((status = 201, description = "The new service (always open: business hours through AdminService)", body = pb::CreateServiceResponse)))]
async fn create_service(
    State(state): State<AppState>,
    Agent(claims): Agent,
    b: Result<Json<NewServiceBody>, JsonRejection>,
) -> Response {
    try_or_answer!(claims.require("admin"));
    let Ok(Json(b)) = b else {
        return error(
            ErrorCode::MalformedPayload,
            "expected {name, policy, offer_timeout_secs?, priority?, accepted_channels?, qualifications?, send_transcript?, csat_question?}",
        )
        .into_response();
    };
    let req = pb::CreateServiceRequest {
        tenant_id: claims.tenant.to_string(),
        name: b.name,
        policy: b.policy,
        offer_timeout_secs: b.offer_timeout_secs,
        priority: b.priority,
        id: String::new(),
        accepted_channels: b.accepted_channels,
        business_hours: None,
        qualifications: b
            .qualifications
            .into_iter()
            .map(|q| pb::Qualification {
                code: q.code,
                label: q.label,
            })
            .collect(),
        send_transcript: b.send_transcript,
        csat_question: b.csat_question,
    };
    reply(StatusCode::CREATED, state.admin.clone().create_service(req).await)
}
