//! gateway: the agents' and supervisors' door.
//!
//! Layout:
//! - [`auth`] password login (argon2id) issuing short-lived bearer JWTs;
//! - [`api`] the HTTP API: presence, conversations, history, replies, offer acceptance;
//! - [`hub`] WebSocket connections per agent, fed by the platform's NATS events;
//! - [`frames`] events as the JSON frames agents receive.

pub mod api;
pub mod auth;
pub mod frames;
pub mod hub;

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
    let subscriber = bus
        .client
        .subscribe(bus.subjects.stream_filter(atende_bus::StreamKind::Events))
        .await
        .map_err(atende_bus::BusError::from)?;
    let session = session_client(cfg)?;
    tasks.spawn(hub::pump(hub.clone(), subscriber, session.clone(), shutdown.clone()));

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
        router: atende_session::router_client(cfg)?,
        shutdown: shutdown.clone(),
        login_limits: Arc::new(api::LoginLimits {
            per_ip: atende_runtime::limits::KeyedLimit::per_minute(cfg.limits.login_per_ip_per_min),
            per_account_per_min: cfg.limits.login_per_account_per_min,
            trust_forwarded_for: cfg.limits.trust_forwarded_for,
            redis: atende_runtime::redis(cfg).await?,
            keys: atende_capacity::Keys::new(&cfg.namespace.prefix),
        }),
    };
    let (http_addr, http_server) = atende_runtime::http_api::serve(
        cfg.gateway.http_addr,
        api::router(state),
        atende_runtime::grace(cfg),
        shutdown,
    )
    .await?;
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

pub type SessionClient = atende_proto::v1::session_service_client::SessionServiceClient<atende_runtime::AuthedChannel>;

fn session_client(cfg: &Config) -> Result<SessionClient> {
    Ok(atende_proto::v1::session_service_client::SessionServiceClient::new(
        atende_runtime::auth::channel(&cfg.clients.session_url, atende_runtime::ClientAuth::internal(cfg))?,
    ))
}
