//! broadcast: HSM templates, quick sends and campaigns (not built yet). Today the role
//! starts, reports `grpc.health.v1` SERVING and shuts down cleanly, so deployments and
//! `atende all` already have their final shape.

use atende_config::Config;
use atende_runtime::{Result, Started};
use tokio_util::sync::CancellationToken;

pub async fn build(cfg: &Config, shutdown: CancellationToken) -> Result<Started> {
    atende_runtime::health_only_role("broadcast", cfg.broadcast.grpc_addr, cfg, shutdown).await
}

pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<()> {
    build(&cfg, shutdown).await?.wait().await
}
