//! channel-adapter: the edge facing providers.
//!
//! Layout:
//! - [`whatsapp`] Meta's wire formats: webhook parsing, signature, handshake, Graph client;
//! - [`ingest`] turns a verified webhook into durable rows (receipt + outbox) in one
//!   transaction; the 200 goes out only after that commit;
//! - [`http`] the webhook routes, body limit and error answers;
//! - [`outbound`] delivers agents' replies to the Graph API and reports the outcome back as
//!   a delivery status.

pub mod http;
pub mod ingest;
pub mod outbound;
pub mod whatsapp;

use atende_config::Config;
use atende_runtime::{Result, Started};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Binds the HTTP and gRPC ports (port 0 picks free ones), starts the outbound consumer and
/// the outbox relay, and returns at once with the bound addresses.
pub async fn build(cfg: &Config, shutdown: CancellationToken) -> Result<Started> {
    let pool = atende_runtime::postgres(cfg).await?;
    let bus = atende_runtime::bus(cfg).await?;
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();

    let grpc_addr =
        atende_runtime::spawn_health_grpc(&mut tasks, cfg.channel_adapter.grpc_addr, cfg, shutdown.clone()).await?;

    let keyring = std::sync::Arc::new(atende_runtime::keyring(cfg)?);
    let state = http::AppState::new(pool.clone(), bus.subjects.clone(), keyring.clone(), cfg);
    let (http_addr, http_server) = atende_runtime::http_api::serve(
        cfg.channel_adapter.http_addr,
        http::router(state),
        atende_runtime::grace(cfg),
        shutdown.clone(),
    )
    .await?;
    tasks.spawn(http_server);

    let graph = whatsapp::graph::GraphClient::new(
        cfg.channel_adapter.graph_api_base.clone(),
        cfg.channel_adapter.graph_api_version.clone(),
    );
    tasks.spawn(outbound::run(
        bus.clone(),
        pool.clone(),
        graph,
        keyring,
        atende_runtime::redelivery(cfg),
        shutdown.clone(),
    ));
    atende_runtime::spawn_relay(&mut tasks, cfg, bus, pool, shutdown);
    tracing::info!(%http_addr, %grpc_addr, "channel-adapter started");
    Ok(Started {
        role: "channel-adapter",
        grpc_addr,
        http_addr: Some(http_addr),
        tasks,
    })
}

pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<()> {
    build(&cfg, shutdown).await?.wait().await
}
