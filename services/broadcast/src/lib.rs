//! broadcast: WhatsApp templates (HSM) today — each number's templates synced from the
//! provider's template list and listed for senders through `BroadcastService`. Quick sends,
//! scheduled sends and campaigns build on them.
//!
//! Layout:
//! - [`templates`] the sync from the Graph API and the gRPC service.

pub mod templates;

use atende_config::Config;
use atende_proto::v1::broadcast_service_server::BroadcastServiceServer;
use atende_runtime::{Result, Started};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub async fn build(cfg: &Config, shutdown: CancellationToken) -> Result<Started> {
    let pool = atende_runtime::postgres(cfg).await?;
    let api = templates::BroadcastApi {
        pool,
        keyring: std::sync::Arc::new(atende_runtime::keyring(cfg)?),
        graph: templates::Graph::new(
            &cfg.channel_adapter.graph_api_base,
            &cfg.channel_adapter.graph_api_version,
        ),
    };
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    let routes = tonic::service::Routes::new(BroadcastServiceServer::new(api));
    let (grpc_addr, _health, grpc) = atende_runtime::grpc::serve(
        cfg.broadcast.grpc_addr,
        routes,
        vec!["atende.v1.BroadcastService"],
        cfg,
        shutdown,
    )
    .await?;
    tasks.spawn(grpc);
    tracing::info!(%grpc_addr, "broadcast started");
    Ok(Started {
        role: "broadcast",
        grpc_addr,
        http_addr: None,
        tasks,
    })
}

pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<()> {
    build(&cfg, shutdown).await?.wait().await
}
