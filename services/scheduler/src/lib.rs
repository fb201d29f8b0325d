//! scheduler: durable timers. Every replica fires, each `scheduler.tick_ms`, the timers that
//! fell due (`atende_store::timers`): marked fired and their messages queued in the outbox in
//! one transaction, under the timer's id, with `FOR UPDATE SKIP LOCKED` so replicas share the
//! work and never fire one timer twice; its outbox relay publishes them. Timers are set,
//! moved and cancelled by the roles that own the business change, in its transaction. Timers
//! that fell due while no replica ran fire at the first pass.

use std::time::Duration;

use atende_config::Config;
use atende_runtime::{Result, Started};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub async fn build(cfg: &Config, shutdown: CancellationToken) -> Result<Started> {
    let pool = atende_runtime::postgres(cfg).await?;
    let bus = atende_runtime::bus(cfg).await?;
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    let grpc_addr =
        atende_runtime::spawn_health_grpc(&mut tasks, cfg.scheduler.grpc_addr, cfg, shutdown.clone()).await?;
    tasks.spawn(fire(
        pool.clone(),
        Duration::from_millis(cfg.scheduler.tick_ms.max(10)),
        cfg.scheduler.batch.max(1),
        shutdown.clone(),
    ));
    atende_runtime::spawn_relay(&mut tasks, cfg, bus, pool, shutdown);
    tracing::info!(%grpc_addr, "scheduler started");
    Ok(Started {
        role: "scheduler",
        grpc_addr,
        http_addr: None,
        tasks,
    })
}

/// Fires what is due, pass after pass; a full batch is followed at once by the next.
async fn fire(pool: sqlx::PgPool, every: Duration, batch: i64, shutdown: CancellationToken) -> Result<()> {
    loop {
        let fired = match atende_store::timers::fire_due(&pool, time::OffsetDateTime::now_utc(), batch).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = &e as &dyn std::error::Error, "cannot fire due timers; retrying");
                0
            }
        };
        if fired > 0 {
            tracing::debug!(fired, "timers fired");
        }
        if fired as i64 >= batch {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<()> {
    build(&cfg, shutdown).await?.wait().await
}
