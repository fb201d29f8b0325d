//! session: contacts, conversations, protocols and messages.
//!
//! Layout:
//! - [`inbound`] consumes normalised inbound events: finds or creates the contact by its
//!   identities, applies the same-customer rule, opens the conversation with a protocol
//!   number, stores the message once, and asks the router for an agent;
//! - [`api`] `SessionService`: agents' replies, conversation and history reads;
//! - [`lifecycle`] finish and transfer (protocol legs, capacity freed through the router),
//!   legs, transitions and indicators;
//! - [`bot`] the channel's menu bot and its inactivity pass;
//! - [`mail`] transcript e-mails through the tenant's SMTP server;
//! - [`outbound`] one outbound text through the outbox;
//! - [`report`] the interaction-tracking report, paged and as streamed CSV;
//! - [`start`] agent-initiated WhatsApp conversations and in-person attendances;
//! - [`workspace`] the same-customer check, tags, history, notes, drafts, read marks and
//!   canned responses;
//! - [`admin`] `AdminService`: tenants, channels, services and agents;
//! - [`convert`] rows to `atende.v1` messages;
//! - [`dead_letters`] listing and replaying what consumers terminated as poison.
//!
//! Every effect and the events announcing it are written in one transaction (the outbox);
//! the consumer acks only after that commit.

pub mod admin;
pub mod api;
pub mod bot;
pub mod convert;
pub mod dead_letters;
pub mod desk;
pub mod inbound;
pub mod lifecycle;
pub mod mail;
pub mod outbound;
pub mod report;
pub mod start;
pub mod workspace;

use atende_config::Config;
use atende_proto::v1::admin_service_server::AdminServiceServer;
use atende_proto::v1::session_service_server::SessionServiceServer;
use atende_runtime::{Result, Started};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use atende_runtime::clients::RouterClient;

/// A lazily connected router client that carries the roles' credential and the trace context.
pub fn router_client(cfg: &Config) -> Result<RouterClient> {
    atende_runtime::clients::router(cfg)
}

pub async fn build(cfg: &Config, shutdown: CancellationToken) -> Result<Started> {
    let pool = atende_runtime::postgres(cfg).await?;
    let bus = atende_runtime::bus(cfg).await?;
    let router = router_client(cfg)?;
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();

    let api = api::SessionApi {
        pool: pool.clone(),
        subjects: bus.subjects.clone(),
        router,
    };
    let keyring = std::sync::Arc::new(atende_runtime::keyring(cfg)?);
    let admin = admin::AdminApi {
        pool: pool.clone(),
        keyring: keyring.clone(),
    };
    let api_for_jobs = api.clone();
    let routes =
        tonic::service::Routes::new(SessionServiceServer::new(api)).add_service(AdminServiceServer::new(admin));
    let (grpc_addr, _health, grpc) = atende_runtime::grpc::serve(
        cfg.session.grpc_addr,
        routes,
        vec!["atende.v1.SessionService", "atende.v1.AdminService"],
        cfg,
        shutdown.clone(),
    )
    .await?;
    tasks.spawn(grpc);
    tasks.spawn(inbound::run(
        bus.clone(),
        pool.clone(),
        atende_runtime::redelivery(cfg),
        cfg.nats.consumer_lanes,
        shutdown.clone(),
    ));
    tasks.spawn(bot::run(
        pool.clone(),
        bus.subjects.clone(),
        std::time::Duration::from_secs(5),
        shutdown.clone(),
    ));
    tasks.spawn(start::run_scheduled(
        api_for_jobs,
        bus.clone(),
        pool.clone(),
        atende_runtime::redelivery(cfg),
        shutdown.clone(),
    ));
    tasks.spawn(lifecycle::run_expiry(
        pool.clone(),
        bus.subjects.clone(),
        std::time::Duration::from_millis(cfg.session.expiry_sweep_ms.max(100)),
        shutdown.clone(),
    ));
    tasks.spawn(mail::run(
        pool.clone(),
        keyring,
        std::time::Duration::from_secs(1),
        shutdown.clone(),
    ));
    atende_runtime::spawn_relay(&mut tasks, cfg, bus, pool, shutdown);
    tracing::info!(%grpc_addr, "session started");
    Ok(Started {
        role: "session",
        grpc_addr,
        http_addr: None,
        tasks,
    })
}

/// Runs `pass` every `period` until `shutdown`; a failed pass is logged and the next one
/// comes at its time.
pub(crate) async fn every<F, Fut, E>(
    period: std::time::Duration,
    what: &'static str,
    shutdown: CancellationToken,
    mut pass: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<usize, E>>,
    E: std::error::Error + 'static,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        if let Err(e) = pass().await {
            tracing::warn!(error = &e as &dyn std::error::Error, what, "periodic pass failed");
        }
    }
}

pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<()> {
    build(&cfg, shutdown).await?.wait().await
}
