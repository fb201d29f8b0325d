//! gateway: the agents' and supervisors' door.
//!
//! Layout:
//! - [`auth`] short-lived bearer JWTs and the opaque secrets (refresh tokens, tickets);
//! - [`login`] login, silent renewal with rotating refresh tokens, logout, WebSocket tickets;
//! - [`api`] the HTTP API: presence, conversations, history, replies, offer acceptance;
//! - [`workspace`] the agent's workspace and the supervisor's bulk actions over `SessionService`;
//! - [`guard`] body size, per-agent and per-tenant rate limits, CORS, security headers;
//! - [`feed`] the platform's events as numbered per-agent frames in Postgres (a durable
//!   consumer), pokes between replicas, and the periodic head check;
//! - [`supervisor`] the supervisor's board: agents, queues, assignment, bulk finish, stream;
//! - [`administration`] the tenant administrator's agents and services;
//! - [`hub`] which agents have sockets here and how far their feeds go;
//! - [`presence`] whether an agent has a live socket on any replica (Redis heartbeats);
//! - [`socket`] the agent's WebSocket, resuming from the client's last frame number;
//! - [`frames`] events as the JSON frames agents receive;
//! - [`views`] the JSON the API answers, as types, and [`openapi`] the document describing it.

/// The value of a step that may refuse, or the refusal as the handler's answer.
macro_rules! try_or_answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r.into_response(),
        }
    };
}

pub mod administration;
pub mod api;
pub mod auth;
pub mod feed;
pub mod frames;
pub mod guard;
pub mod hub;
pub mod login;
pub mod openapi;
pub mod presence;
pub mod socket;
pub mod supervisor;
pub mod views;
pub mod workspace;

use std::sync::Arc;

use atende_config::Config;
use atende_runtime::{Result, Started};
use secrecy::ExposeSecret;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub async fn build(cfg: &Config, shutdown: CancellationToken) -> Result<Started> {
    let pool = atende_runtime::postgres(cfg).await?;
    let bus = atende_runtime::bus(cfg).await?;
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();

    let grpc_addr = atende_runtime::spawn_health_grpc(&mut tasks, cfg.gateway.grpc_addr, cfg, shutdown.clone()).await?;

    let hub = hub::Hub::default();
    let session = atende_runtime::clients::session(cfg)?;
    tasks.spawn(feed::run_writer(
        bus.clone(),
        pool.clone(),
        hub.clone(),
        session.clone(),
        atende_runtime::redelivery(cfg),
        cfg.nats.consumer_lanes,
        shutdown.clone(),
    ));
    tasks.spawn(feed::run_pokes(bus.clone(), hub.clone(), shutdown.clone()));
    tasks.spawn(feed::run_sweep(
        pool.clone(),
        hub.clone(),
        std::time::Duration::from_millis(cfg.gateway.feed_sweep_ms),
        std::time::Duration::from_secs(cfg.gateway.feed_retention_secs),
        shutdown.clone(),
    ));

    let redis = atende_runtime::redis(cfg).await?;
    let redis_keys = atende_capacity::Keys::new(&cfg.namespace.prefix);
    let presence = presence::Presence::new(
        redis.clone(),
        redis_keys.clone(),
        std::time::Duration::from_millis(cfg.gateway.presence_grace_ms),
    );
    let router = atende_runtime::clients::router(cfg)?;
    tasks.spawn(presence::run(presence.clone(), router.clone(), shutdown.clone()));
    let state = api::AppState {
        pool,
        hub,
        keys: Arc::new(auth::Keys::rotating(
            cfg.gateway.jwt_secret.expose_secret().as_bytes(),
            &cfg.gateway
                .jwt_previous_secrets
                .expose_secret()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::as_bytes)
                .collect::<Vec<_>>(),
            cfg.gateway.token_ttl_secs,
        )),
        session,
        router,
        shutdown: shutdown.clone(),
        login_limits: Arc::new(login::LoginLimits {
            per_ip: atende_runtime::limits::KeyedLimit::per_minute(cfg.limits.login_per_ip_per_min),
            per_account_per_min: cfg.limits.login_per_account_per_min,
            trust_forwarded_for: cfg.limits.trust_forwarded_for,
        }),
        redis,
        redis_keys,
        refresh_ttl: time::Duration::seconds(i64::try_from(cfg.gateway.refresh_ttl_secs).unwrap_or(i64::MAX)),
        ws_ticket_ttl_secs: cfg.gateway.ws_ticket_ttl_secs,
        socket_write_timeout: std::time::Duration::from_millis(cfg.gateway.socket_write_timeout_ms),
        presence,
        bus: bus.clone(),
        admin: atende_runtime::clients::admin(cfg)?,
        broadcast: atende_runtime::clients::broadcast(cfg)?,
        counters_every: std::time::Duration::from_millis(cfg.gateway.feed_sweep_ms),
    };
    let guard = Arc::new(guard::Guard {
        keys: state.keys.clone(),
        body_limit: cfg.gateway.body_limit_bytes,
        per_user: atende_runtime::limits::KeyedLimit::per_minute(cfg.limits.api_per_user_per_min),
        per_tenant: atende_runtime::limits::KeyedLimit::per_minute(cfg.limits.api_per_tenant_per_min),
    });
    // Outermost last: the security headers go on every answer, limits' refusals included.
    let app = api::router(state)
        .layer(axum::middleware::from_fn_with_state(guard, guard::limits))
        .layer(axum::extract::DefaultBodyLimit::max(cfg.gateway.body_limit_bytes))
        .layer(guard::cors(&cfg.gateway.cors_allowed_origins))
        .layer(axum::middleware::from_fn(guard::headers));
    let (http_addr, http_server) =
        atende_runtime::http_api::serve(cfg.gateway.http_addr, app, atende_runtime::grace(cfg), shutdown).await?;
    tasks.spawn(http_server);
    tracing::info!(%http_addr, %grpc_addr, "gateway started");
    Ok(Started {
        role: "gateway",
        grpc_addr,
        http_addr: Some(http_addr),
        tasks,
    })
}

pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<()> {
    build(&cfg, shutdown).await?.wait().await
}

pub use atende_runtime::clients::SessionClient;
