//! Sessions: password login, silent renewal with rotating refresh tokens, logout, and the
//! single-use tickets that authenticate WebSockets.
//!
//! A login starts a session: a short-lived access token (JWT, `sid` = the session) and a
//! refresh token. `POST /api/v1/auth/refresh` spends the refresh token and answers a new pair,
//! so a client that renews before the access token expires stays signed in for as long as it
//! is active (seed 001: the token does not expire while the user is logged in). A refresh
//! token presented a second time means a copy exists: the whole session is revoked. Logout
//! (the platform logout, refused while conversations are in progress) revokes the session.
//!
//! Browsers cannot set headers on a WebSocket, and a bearer token in a URL ends up in proxy
//! logs; so `POST /api/v1/ws/ticket` trades the bearer token for a ticket valid for a few
//! seconds and one use, kept in Redis so any replica may redeem it.

use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_runtime::http_api::{error, from_status};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::{Agent, AppState};
use crate::auth::{Claims, Opaque};
use crate::views::{TokenPair, WsTicket};

/// Login is the one door open to anyone: limited per client address (this replica) and per
/// account (every replica, through Redis), before any password work.
pub struct LoginLimits {
    pub per_ip: atende_runtime::limits::KeyedLimit<std::net::IpAddr>,
    pub per_account_per_min: u32,
    pub trust_forwarded_for: bool,
}

impl LoginLimits {
    /// The 429 answer when the address or the account is over its rate.
    async fn check(
        &self,
        state: &AppState,
        peer: std::net::SocketAddr,
        headers: &http::HeaderMap,
        tenant: &str,
        email: &str,
    ) -> Option<Response> {
        use atende_runtime::limits::{client_ip, shared_window, too_many, SharedLimitError};
        let ip = client_ip(peer, headers, self.trust_forwarded_for);
        if let Err(wait) = self.per_ip.check(&ip) {
            tracing::info!(%ip, "login rate limit per address reached");
            return Some(too_many(wait, "too many login attempts from this address"));
        }
        use sha2::Digest;
        let account = format!("{}\n{}", tenant.trim().to_lowercase(), email.trim().to_lowercase());
        let key = state
            .redis_keys
            .login_attempts(&hex::encode(&sha2::Sha256::digest(account.as_bytes())[..16]));
        match shared_window(
            &mut state.redis.clone(),
            &key,
            self.per_account_per_min,
            std::time::Duration::from_secs(60),
        )
        .await
        {
            Ok(()) => None,
            Err(SharedLimitError::Over(wait)) => {
                tracing::info!(tenant, "login rate limit per account reached");
                Some(too_many(wait, "too many login attempts for this account"))
            }
            // Redis down: the per-address limit still holds; refusing every login would turn a
            // Redis outage into a platform outage.
            Err(SharedLimitError::Redis(e)) => {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "login limit per account unavailable"
                );
                None
            }
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct LoginBody {
    /// The tenant's slug.
    #[schema(example = "acme")]
    tenant: String,
    #[schema(example = "ana@acme.test")]
    email: String,
    #[schema(example = "a long passphrase")]
    password: String,
}

/// The answer of login and refresh: a new access token and a new refresh token.
fn token_pair(state: &AppState, agent: &atende_store::admin::Agent, sid: Uuid, refresh: &Opaque) -> Response {
    let perms = crate::auth::permissions(agent);
    let supervisor = agent.supervises();
    let Ok(access) = state
        .keys
        .issue(agent.id, agent.tenant_id, supervisor, perms.clone(), sid)
    else {
        return error(ErrorCode::Internal, "").into_response();
    };
    Json(TokenPair {
        access_token: access,
        token_type: "Bearer".into(),
        expires_in: state.keys.ttl_secs,
        refresh_token: refresh.secret.clone(),
        refresh_expires_in: state.refresh_ttl.whole_seconds(),
        agent_id: agent.id,
        tenant_id: agent.tenant_id,
        name: agent.name.clone(),
        supervisor,
        role: crate::auth::role(agent).into(),
        permissions: perms,
    })
    .into_response()
}

/// Password login: an access token for 15 minutes and a refresh token. Limited per client
/// address and per account; wrong tenant, e-mail or password answer alike.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", security(()), request_body = LoginBody,
    responses((status = 200, description = "Signed in", body = TokenPair)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: http::HeaderMap,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(ErrorCode::MalformedPayload, "expected {tenant, email, password}").into_response();
    };
    if let Some(r) = state
        .login_limits
        .check(&state, peer, &headers, &body.tenant, &body.email)
        .await
    {
        return r;
    }
    let tenant = match atende_store::admin::tenant_by_slug(&state.pool, &body.tenant).await {
        Ok(t) => t,
        Err(_) => return error(ErrorCode::Unavailable, "").into_response(),
    };
    let agent = match tenant {
        Some(t) => match atende_store::admin::agent_by_email(&state.pool, t.id, &body.email).await {
            Ok(a) => a,
            Err(_) => return error(ErrorCode::Unavailable, "").into_response(),
        },
        None => None,
    };
    // Same answer, and the same argon2 work, for unknown tenant, unknown e-mail and wrong
    // password. Argon2 is deliberately slow CPU work: it runs off the async workers.
    let password = body.password;
    let checked = tokio::task::spawn_blocking(move || match agent {
        Some(a) if atende_runtime::password::verify(&password, &a.password_hash) => Some(a),
        Some(_) => None,
        None => {
            atende_runtime::password::verify_nothing(&password);
            None
        }
    })
    .await;
    let Ok(Some(agent)) = checked else {
        return error(ErrorCode::InvalidCredentials, "").into_response();
    };
    let refresh = Opaque::generate();
    let now = OffsetDateTime::now_utc();
    let session = match atende_store::sessions::start(
        &state.pool,
        agent.tenant_id,
        agent.id,
        &refresh.digest,
        now + state.refresh_ttl,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = &e as &dyn std::error::Error, "cannot start a session");
            return error(ErrorCode::Unavailable, "").into_response();
        }
    };
    tracing::info!(agent = %agent.id, session = %session.id, "agent logged in");
    token_pair(&state, &agent, session.id, &refresh)
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct RefreshBody {
    refresh_token: String,
}

/// Spends the refresh token and answers a new pair. Needs no access token: the access token
/// may well have expired already.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", security(()), request_body = RefreshBody,
    responses((status = 200, description = "A new pair; the presented refresh token is spent", body = TokenPair)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    body: Result<Json<RefreshBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(ErrorCode::MalformedPayload, "expected {refresh_token}").into_response();
    };
    let next = Opaque::generate();
    let now = OffsetDateTime::now_utc();
    let rotation = atende_store::sessions::rotate(
        &state.pool,
        &Opaque::digest_of(&body.refresh_token),
        &next.digest,
        now + state.refresh_ttl,
        now,
    )
    .await;
    let session = match rotation {
        Ok(atende_store::sessions::Rotation::Rotated(s)) => s,
        Ok(atende_store::sessions::Rotation::Reused(s)) => {
            tracing::warn!(agent = %s.agent_id, session = %s.id, "refresh token reused: session revoked");
            return error(ErrorCode::RefreshTokenReused, "").into_response();
        }
        Ok(atende_store::sessions::Rotation::Refused) => {
            return error(ErrorCode::SessionEnded, "unknown, expired or revoked refresh token").into_response()
        }
        Err(e) => {
            tracing::warn!(error = &e as &dyn std::error::Error, "cannot rotate a refresh token");
            return error(ErrorCode::Unavailable, "").into_response();
        }
    };
    // The token carries the agent's current role, not the one of the login.
    let agent = match atende_store::admin::get_agent(&state.pool, session.tenant_id, session.agent_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return error(ErrorCode::SessionEnded, "the agent no longer exists").into_response(),
        Err(_) => return error(ErrorCode::Unavailable, "").into_response(),
    };
    token_pair(&state, &agent, session.id, &next)
}

/// The platform logout: every channel logged out (refused while conversations are in
/// progress, with the seed's message), then the session revoked so its refresh token is dead.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "Logged out of every channel; the session is revoked")))]
pub(crate) async fn logout(State(state): State<AppState>, Agent(claims): Agent) -> Response {
    let req = pb::SetPresenceRequest {
        tenant_id: claims.tenant.to_string(),
        agent_id: claims.sub.to_string(),
        connected: false,
        channels: Vec::new(),
        logout: true,
    };
    if let Err(s) = state.router.clone().set_presence(req).await {
        return from_status(&s).into_response();
    }
    match atende_store::sessions::revoke(&state.pool, claims.tenant, claims.sid, OffsetDateTime::now_utc()).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::warn!(error = &e as &dyn std::error::Error, "cannot revoke the session");
            error(ErrorCode::Unavailable, "").into_response()
        }
    }
}

/// What a WebSocket ticket stands for.
#[derive(Serialize, Deserialize)]
struct Ticket {
    agent: Uuid,
    tenant: Uuid,
    supervisor: bool,
    #[serde(default)]
    perms: Vec<String>,
    sid: Uuid,
}

/// Trades the bearer token for a single-use WebSocket ticket.
#[utoipa::path(post, path = "/api/v1/ws/ticket", tag = "auth",
    responses((status = 200, description = "A ticket for `/api/v1/ws?ticket=` or the supervisor's stream", body = WsTicket)))]
pub(crate) async fn ws_ticket(State(state): State<AppState>, Agent(claims): Agent) -> Response {
    let ticket = Opaque::generate();
    let value = json!(Ticket {
        agent: claims.sub,
        tenant: claims.tenant,
        supervisor: claims.supervisor,
        perms: claims.perms.clone(),
        sid: claims.sid,
    })
    .to_string();
    let key = state.redis_keys.ws_ticket(&hex::encode(ticket.digest));
    let stored: redis::RedisResult<()> = redis::cmd("SET")
        .arg(&key)
        .arg(value)
        .arg("EX")
        .arg(state.ws_ticket_ttl_secs)
        .query_async(&mut state.redis.clone())
        .await;
    if let Err(e) = stored {
        tracing::warn!(error = &e as &dyn std::error::Error, "cannot store a websocket ticket");
        return error(ErrorCode::Unavailable, "").into_response();
    }
    Json(WsTicket {
        ticket: ticket.secret,
        expires_in: state.ws_ticket_ttl_secs,
    })
    .into_response()
}

/// Who opens a long-lived stream (a WebSocket, server-sent events): a single-use ticket from
/// `?ticket=` — browsers cannot set headers on them — or, for other clients, the bearer token.
pub(crate) async fn ticket_or_bearer(
    state: &AppState,
    ticket: Option<&str>,
    headers: &http::HeaderMap,
) -> Result<Claims, Response> {
    match ticket {
        Some(ticket) => match redeem_ticket(state, ticket).await? {
            Some(c) => Ok(c),
            None => Err(error(ErrorCode::Unauthenticated, "unknown, used or expired ticket").into_response()),
        },
        None => crate::api::bearer(headers, state).map_err(IntoResponse::into_response),
    }
}

/// Redeems a ticket: its claims the first time, `None` ever after (GETDEL is atomic, so two
/// replicas racing for one ticket cannot both win) or once it has expired.
async fn redeem_ticket(state: &AppState, presented: &str) -> Result<Option<Claims>, Response> {
    let key = state.redis_keys.ws_ticket(&hex::encode(Opaque::digest_of(presented)));
    let value: Option<String> = redis::cmd("GETDEL")
        .arg(&key)
        .query_async(&mut state.redis.clone())
        .await
        .map_err(|e| {
            tracing::warn!(error = &e as &dyn std::error::Error, "cannot redeem a websocket ticket");
            error(ErrorCode::Unavailable, "").into_response()
        })?;
    Ok(value
        .and_then(|v| serde_json::from_str::<Ticket>(&v).ok())
        .map(|t| Claims {
            sub: t.agent,
            tenant: t.tenant,
            supervisor: t.supervisor,
            perms: t.perms,
            sid: t.sid,
            exp: 0,
        }))
}
