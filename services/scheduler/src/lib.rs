//! scheduler: durable timers — scheduled sends, missed-lead sweeps, window expiry (a later
//! issue). Today the role
//! starts, reports `grpc.health.v1` SERVING and shuts down cleanly, so deployments and
//! `atende all` already have their final shape.

use atende_config::Config;
use atende_runtime::{Result, Started};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub async fn build(cfg: &Config, shutdown: CancellationToken) -> Result<Started> {
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    let (grpc_addr, _health, grpc) = atende_runtime::grpc::serve(
        cfg.scheduler.grpc_addr,
        tonic::service::Routes::default(),
        vec![],
        atende_runtime::grace(cfg),
        shutdown,
    )
    .await?;
    tasks.spawn(grpc);
    tracing::info!(%grpc_addr, "scheduler started");
    Ok(Started { role: "scheduler", grpc_addr, http_addr: None, tasks })
}

pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<()> {
    build(&cfg, shutdown).await?.wait().await
}
