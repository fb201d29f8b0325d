//! Starting roles, alone or together, and the shutdown on SIGTERM / Ctrl-C.
//!
//! Together (`atende all`), roles start in dependency order and each later role's client
//! URLs are pointed at the ports the earlier ones actually bound.

use std::net::SocketAddr;

use std::str::FromStr;

use anyhow::Context;
use atende_config::Config;
use atende_runtime::Started;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Router,
    Session,
    ChannelAdapter,
    Gateway,
    Broadcast,
    Scheduler,
}

impl Role {
    /// Every role, in start order (callees before callers).
    pub fn all() -> &'static [Role] {
        &[
            Role::Router,
            Role::Session,
            Role::ChannelAdapter,
            Role::Broadcast,
            Role::Gateway,
            Role::Scheduler,
        ]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Router => "router",
            Role::Session => "session",
            Role::ChannelAdapter => "channel-adapter",
            Role::Gateway => "gateway",
            Role::Broadcast => "broadcast",
            Role::Scheduler => "scheduler",
        }
    }

    async fn build(self, cfg: &Config, shutdown: CancellationToken) -> atende_runtime::Result<Started> {
        match self {
            Role::Router => atende_router::build(cfg, shutdown).await,
            Role::Session => atende_session::build(cfg, shutdown).await,
            Role::ChannelAdapter => atende_channel_adapter::build(cfg, shutdown).await,
            Role::Gateway => atende_gateway::build(cfg, shutdown).await,
            Role::Broadcast => atende_broadcast::build(cfg, shutdown).await,
            Role::Scheduler => atende_scheduler::build(cfg, shutdown).await,
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::all()
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`"))
    }
}

/// A loopback URL for a bound address (0.0.0.0 → 127.0.0.1).
fn local_url(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    format!("http://{ip}:{}", addr.port())
}

/// Starts `roles` in order, pointing each later role's clients at the ports the earlier
/// ones bound. On failure the started roles are stopped before returning the error.
pub async fn start(cfg: &Config, roles: &[Role], shutdown: CancellationToken) -> anyhow::Result<Vec<Started>> {
    let mut cfg = cfg.clone();
    let mut started = Vec::new();
    for role in roles {
        let s = match role.build(&cfg, shutdown.clone()).await {
            Ok(s) => s,
            Err(e) => {
                shutdown.cancel();
                for s in started {
                    let _ = Started::wait(s).await;
                }
                return Err(anyhow::Error::new(e).context(format!("cannot start {}", role.as_str())));
            }
        };
        match role {
            Role::Router => cfg.clients.router_url = local_url(s.grpc_addr),
            Role::Session => cfg.clients.session_url = local_url(s.grpc_addr),
            Role::Broadcast => cfg.clients.broadcast_url = local_url(s.grpc_addr),
            _ => {}
        }
        tracing::info!(role = role.as_str(), grpc = %s.grpc_addr, http = ?s.http_addr, "role ready");
        started.push(s);
    }
    Ok(started)
}

/// Runs `roles` until SIGTERM / Ctrl-C (migrating first when several run together), then
/// shuts them down: health NOT_SERVING, grace, stop intake, drain, flush telemetry.
pub async fn run(cfg: &Config, roles: &[Role]) -> anyhow::Result<()> {
    let guard = atende_telemetry::init(&cfg.telemetry).context("cannot start telemetry")?;
    let shutdown = CancellationToken::new();
    if roles.len() > 1 {
        let pool = atende_runtime::postgres_owner(cfg)
            .await
            .context("cannot connect to postgres")?;
        atende_store::migrate(&pool).await.context("migration failed")?;
        pool.close().await;
    }
    let started = start(cfg, roles, shutdown.clone()).await?;
    if !cfg.telemetry.metrics_addr.is_empty() {
        serve_metrics(&cfg.telemetry.metrics_addr, shutdown.clone()).await?;
    }
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        signal.cancel();
    });
    // Roles finish in any order; the first failure stops the others.
    let mut waits = tokio::task::JoinSet::new();
    for s in started {
        waits.spawn(async move { (s.role, s.wait().await) });
    }
    let mut failure = None;
    while let Some(joined) = waits.join_next().await {
        let (role, result) = match joined {
            Ok(r) => r,
            Err(e) => ("unknown", Err(atende_runtime::RuntimeError::Task(e.to_string()))),
        };
        if let Err(e) = result {
            tracing::error!(role, error = &e as &dyn std::error::Error, "role stopped with an error");
            shutdown.cancel();
            failure.get_or_insert(anyhow::Error::new(e).context(format!("{role} failed")));
        }
    }
    tracing::info!("stopped");
    guard.shutdown();
    failure.map_or(Ok(()), Err)
}

/// `GET /metrics`: the process's Prometheus metrics as OpenMetrics text.
async fn serve_metrics(addr: &str, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind telemetry.metrics_addr {addr}"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    http::header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                atende_telemetry::metrics::render(),
            )
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    });
    tracing::info!(metrics = %bound, "metrics ready");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_their_names() {
        for r in Role::all() {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
        assert!("nope".parse::<Role>().is_err());
    }

    #[test]
    fn unspecified_addresses_become_loopback_urls() {
        assert_eq!(local_url("0.0.0.0:50051".parse().unwrap()), "http://127.0.0.1:50051");
    }
}
