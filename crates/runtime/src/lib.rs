//! What every role needs around its own logic: connections to the three engines, a gRPC
//! server with `grpc.health.v1` and reflection (v1 and v1alpha), the shutdown sequence,
//! and the mapping from domain error codes to gRPC statuses.
//!
//! Shutdown (on the role's `CancellationToken`): health reports NOT_SERVING, wait the
//! configured grace so load balancers notice, then stop accepting, drain, return.

pub mod auth;
pub mod clients;
pub mod errors;
pub mod events;
pub mod grpc;
pub mod http_api;
pub mod limits;
pub mod password;

use std::time::Duration;

use atende_config::Config;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use auth::{authorize_all_tenants, authorize_tenant, AuthedChannel, ClientAuth};
pub use errors::{status, status_code_of};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("postgres")]
    Store(#[from] atende_store::StoreError),
    #[error("nats")]
    Bus(#[from] atende_bus::BusError),
    #[error("redis")]
    Redis(#[from] redis::RedisError),
    #[error("cannot bind {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("grpc server")]
    Grpc(#[from] tonic::transport::Error),
    #[error("task failed: {0}")]
    Task(String),
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// The services' pool: as `postgres.app_role`, under row-level security.
pub async fn postgres(cfg: &Config) -> Result<PgPool> {
    Ok(atende_store::connect_as(
        cfg.postgres.url.expose_secret(),
        cfg.postgres.max_connections,
        &cfg.postgres.app_role,
    )
    .await?)
}

/// A pool as the login itself, for migrations and maintenance (it owns the schema).
pub async fn postgres_owner(cfg: &Config) -> Result<PgPool> {
    Ok(atende_store::connect(cfg.postgres.url.expose_secret(), cfg.postgres.max_connections.min(4)).await?)
}

/// The keys that seal and open secrets at rest (validated with the configuration).
pub fn keyring(cfg: &Config) -> Result<atende_store::sealed::Keyring> {
    let keys = cfg.crypto.decoded_keys().map_err(RuntimeError::Task)?;
    atende_store::sealed::Keyring::new(&cfg.crypto.active_key, keys)
        .map_err(|e| RuntimeError::Store(atende_store::StoreError::Sealed(e)))
}

pub async fn bus(cfg: &Config) -> Result<atende_bus::Bus> {
    let bus = atende_bus::Bus::connect(&cfg.nats.url, &cfg.namespace.prefix).await?;
    bus.ensure_streams().await?;
    Ok(bus)
}

pub async fn redis(cfg: &Config) -> Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(cfg.redis.url.expose_secret())?;
    Ok(redis::aio::ConnectionManager::new(client).await?)
}

/// A started role: where it listens and the tasks it runs.
pub struct Started {
    pub role: &'static str,
    pub grpc_addr: std::net::SocketAddr,
    pub http_addr: Option<std::net::SocketAddr>,
    pub tasks: JoinSet<Result<()>>,
}

impl Started {
    /// Waits for every task of the role; the first failure is returned.
    pub async fn wait(mut self) -> Result<()> {
        let mut first_err = None;
        while let Some(res) = self.tasks.join_next().await {
            let err = match res {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(e) => RuntimeError::Task(e.to_string()),
            };
            tracing::error!(role = self.role, error = %err, "role task failed");
            first_err.get_or_insert(err);
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// The consumers' redelivery timing from `nats.*`.
pub fn redelivery(cfg: &Config) -> atende_bus::consumer::Redelivery {
    atende_bus::consumer::Redelivery {
        ack_wait: Duration::from_millis(cfg.nats.ack_wait_ms),
        max_backoff: Duration::from_millis(cfg.nats.retry_backoff_max_ms),
    }
}

/// How long NOT_SERVING is reported before intake stops.
pub fn grace(cfg: &Config) -> Duration {
    Duration::from_millis(cfg.shutdown.grace_ms)
}

/// The outbox relay as a role task (every role that writes the outbox runs one; they share
/// the partitions, each relayed by one at a time).
pub fn spawn_relay(
    tasks: &mut JoinSet<Result<()>>,
    cfg: &Config,
    bus: atende_bus::Bus,
    pool: PgPool,
    shutdown: CancellationToken,
) {
    let retention = atende_bus::relay::Retention {
        outbox: Duration::from_secs(cfg.outbox.published_retention_secs),
        receipts: Duration::from_secs(cfg.outbox.receipt_retention_secs),
        every: Duration::from_secs(cfg.outbox.prune_every_secs),
    };
    tasks.spawn(async move {
        atende_bus::relay::run(bus, pool, retention, shutdown).await;
        Ok(())
    });
}

/// Parses a UUID field of a request, naming the field on failure.
pub fn parse_id<T: From<uuid::Uuid>>(field: &'static str, value: &str) -> std::result::Result<T, tonic::Status> {
    uuid::Uuid::parse_str(value).map(T::from).map_err(|_| {
        status(
            atende_domain::ErrorCode::InvalidArgument,
            &format!("`{field}` must be a UUID"),
            Some(field),
        )
    })
}

/// Parses the tenant a request names and checks that its caller may act for it.
pub fn tenant_id<T: From<uuid::Uuid>, M>(
    request: &tonic::Request<M>,
    raw: &str,
) -> std::result::Result<T, tonic::Status> {
    let tenant: uuid::Uuid = parse_id("tenant_id", raw)?;
    authorize_tenant(request, tenant)?;
    Ok(T::from(tenant))
}

/// A role whose gRPC server only reports health yet (its features are not built yet):
/// it starts, reports SERVING, and shuts down like every other role.
pub async fn health_only_role(
    role: &'static str,
    addr: std::net::SocketAddr,
    cfg: &Config,
    shutdown: CancellationToken,
) -> Result<Started> {
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    let grpc_addr = spawn_health_grpc(&mut tasks, addr, cfg, shutdown).await?;
    tracing::info!(role, %grpc_addr, "role started");
    Ok(Started {
        role,
        grpc_addr,
        http_addr: None,
        tasks,
    })
}

/// Starts a gRPC server with only health and reflection (for roles whose API is HTTP or
/// not written yet) as a task of the role; returns the bound address.
pub async fn spawn_health_grpc(
    tasks: &mut JoinSet<Result<()>>,
    addr: std::net::SocketAddr,
    cfg: &Config,
    shutdown: CancellationToken,
) -> Result<std::net::SocketAddr> {
    let (grpc_addr, _health, grpc) =
        grpc::serve(addr, tonic::service::Routes::default(), vec![], cfg, shutdown).await?;
    tasks.spawn(grpc);
    Ok(grpc_addr)
}
