//! The router role: agent presence and capacity, service queues, the five distribution
//! policies, offers and their timeouts, backlog distribution — the IO around the pure
//! `atende_domain::routing::{decide, apply}`.
//!
//! # Layout
//! - [`state`] the `Router` value (connections, settings, caches) and the types shared by
//!   the loop and the effects;
//! - [`engine`] one routing step: lease → snapshot → `decide` → apply each decision →
//!   on conflict reload and decide again (bounded); the capacity rebuild after a Redis loss;
//! - `effects` one decision's effects: Redis reservation (the capacity gate) → one Postgres
//!   transaction (conversation row lock, status check, assignment/offer/queue rows,
//!   decision log, outbox event) → Redis confirm;
//! - `ops` the operations (presence, arrivals, accept, claim, supervisor assignment,
//!   release, stats, explain); [`grpc`] maps them onto `atende.v1.RouterService`;
//! - `sweep` the periodic pass (due offers, reconciler, service re-evaluation);
//! - `explain` the decision-log form of an explanation (top-k candidates at scale);
//! - [`bench`] the routing benchmark behind `cargo bench -p atende-router`.
//!
//! # Where the state lives, and why
//! Postgres is the truth: assignments (unique open per conversation), conversations'
//! status, the queue's flags (`route_queue`) and pending offers (`route_offers`), the
//! decision log. Redis (`atende-capacity`) holds what must be fast and shared across
//! replicas: presence, capacity counters, reservations keyed by conversation, rotation,
//! offer deadlines. Losing Redis is a degraded moment: a per-tenant marker vanishes with the
//! tenant's keys, reservations are refused until one replica has rebuilt the counters from
//! Postgres, and agents count as Offline until their next `SetPresence`.
//!
//! # Snapshots at scale
//! A small service (up to `router.full_snapshot_max` members, 64 by default) is read whole.
//! A larger one is read through the Redis candidate index: the best few eligible agents per
//! channel kind in the policy's order, plus the agents the event names and the holders of
//! pending offers; explanations then list those candidates with counts of the rest. The
//! queue is read only as far as free capacity reaches. A decision therefore costs the same
//! at 100 and 10,000 agents and with 10 or 10,000 waiting (see BENCHMARKS.md). The replica
//! routing a large service keeps that view in memory, versioned so that it knows exactly
//! when it is stale: the lease script and each reservation script bring it up to date in
//! their own round trip, so a decision costs one script, not a read and a script.
//!
//! # Known limits
//! - A crash between a Postgres commit that gives capacity back and the Redis release
//!   leaves that capacity held (never over-used): offers heal at their deadline (the
//!   sweep settles a due offer Postgres no longer has), assignments when the caller
//!   retries `ReleaseConversation` (idempotent) or at the next rebuild.
//! - Membership or policy changes reach the candidate index with the agent's next
//!   `SetPresence`; rules and members are cached for two seconds.
//! - A rebuild assumes the tenant's keys were lost together (they share one slot).
//! - A kept view's version moves with changes to the service's members as Redis knows them
//!   (the agent hash lists his services); a row of an agent no longer listed as a member
//!   (a pending offer's holder removed from the service) may be stale in the view until it
//!   is read again, at most `view_max_age` (1 s) later. Only quality is at stake: the
//!   reservation re-checks him.
//!
//! # Many replicas
//! Every replica consumes the route stream (durable `router`, one delivery per message),
//! serves gRPC and sweeps. A (tenant, service) is routed by one replica at a time (a Redis
//! lease with a fencing token checked inside the reservation script), which keeps rotation
//! and spreading exact; safety does not rest on it — see [`engine`].

pub mod bench;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod state;

mod effects;
mod events;
mod explain;
mod ops;
mod sweep;

use std::sync::Arc;
use std::time::Duration;

use atende_bus::consumer::{self, ConsumerSpec, Outcome};
use atende_bus::StreamKind;
use atende_capacity::Presence;
use atende_config::Config;
use atende_domain::clock::SystemClock;
use atende_proto::v1::router_service_server::RouterServiceServer;
use atende_runtime::{RuntimeError, Started};
use prost::Message;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use engine::{Routed, Router, Settings};
pub use error::RouterError;
pub use ops::QueueStats;

/// Connects to the engines, binds gRPC on `cfg.router.grpc_addr` and spawns the route
/// consumer, the sweep and the outbox relay; returns at once with the bound address.
pub async fn build(cfg: &Config, shutdown: CancellationToken) -> Result<Started, RuntimeError> {
    build_with_clock(cfg, Arc::new(SystemClock), shutdown).await
}

/// As [`build`], with the clock the routing rules read (tests move it ahead to expire offers
/// instead of waiting).
pub async fn build_with_clock(
    cfg: &Config,
    clock: Arc<dyn atende_domain::clock::Clock>,
    shutdown: CancellationToken,
) -> Result<Started, RuntimeError> {
    let bus = atende_runtime::bus(cfg).await?;
    let router = Arc::new(router_with_clock(cfg, clock).await?);
    let pool = router.pool.clone();

    let routes = tonic::service::Routes::new(RouterServiceServer::new(grpc::RouterGrpc::new(router.clone())));
    let (grpc_addr, _health, serve) = atende_runtime::grpc::serve(
        cfg.router.grpc_addr,
        routes,
        vec!["atende.v1.RouterService"],
        cfg,
        shutdown.clone(),
    )
    .await?;

    let mut tasks: JoinSet<Result<(), RuntimeError>> = JoinSet::new();
    tasks.spawn(serve);
    {
        let (router, bus, pool, shutdown) = (router.clone(), bus.clone(), pool.clone(), shutdown.clone());
        let redelivery = atende_runtime::redelivery(cfg);
        tasks.spawn(async move {
            let spec = ConsumerSpec {
                stream: StreamKind::Route,
                durable: "router",
                filter: None,
                redelivery,
                // Decisions of one service are serialised by its lease anyway.
                lanes: 1,
            };
            consumer::run(bus, pool, spec, shutdown, move |delivery| {
                let router = router.clone();
                async move { on_route_request(&router, &delivery.payload).await }
            })
            .await?;
            Ok(())
        });
    }
    {
        let (router, shutdown) = (router.clone(), shutdown.clone());
        tasks.spawn(async move {
            router.sweep_loop(shutdown).await;
            Ok(())
        });
    }
    atende_runtime::spawn_relay(&mut tasks, cfg, bus, pool, shutdown);
    tracing::info!(%grpc_addr, "router started");
    Ok(Started {
        role: "router",
        grpc_addr,
        http_addr: None,
        tasks,
    })
}

/// A router connected to Postgres and Redis as configured, without serving or consuming
/// anything: what [`build`] runs, and what tests and benchmarks drive directly.
pub async fn router(cfg: &Config) -> Result<Router, RuntimeError> {
    router_with_clock(cfg, Arc::new(SystemClock)).await
}

/// A router reading `clock` (tests share the injected clock of their replicas with it).
pub async fn router_with_clock(
    cfg: &Config,
    clock: Arc<dyn atende_domain::clock::Clock>,
) -> Result<Router, RuntimeError> {
    let pool = atende_runtime::postgres(cfg).await?;
    let redis = atende_runtime::redis(cfg).await?;
    let settings = Settings {
        sweep_interval: Duration::from_millis(cfg.router.sweep_interval_ms.max(10)),
        full_snapshot_max: cfg.router.full_snapshot_max,
        reconcile_every: Duration::from_millis(cfg.router.reconcile_interval_ms.max(10)),
        ..Settings::default()
    };
    Ok(Router::new(
        pool,
        Presence::new(redis, &cfg.namespace.prefix),
        atende_bus::Subjects::new(&cfg.namespace.prefix),
        clock,
        settings,
    ))
}

/// [`build`], then wait for every task (they end on `shutdown`).
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<(), RuntimeError> {
    build(&cfg, shutdown).await?.wait().await
}

async fn on_route_request(router: &Router, payload: &[u8]) -> Outcome {
    let req = match atende_proto::v1::RouteRequest::decode(payload) {
        Ok(r) => r,
        Err(e) => return Outcome::Poison(format!("undecodable route request: {e}")),
    };
    match router.arrived(&req).await {
        Ok(()) => Outcome::Ack,
        Err(e) if e.is_transient() => Outcome::Retry(e.to_string()),
        Err(RouterError::Refused { code, detail, .. }) => Outcome::Poison(format!("{code}: {detail}")),
        // The database refused the statement itself (not a lost connection): it would refuse
        // it again, and retrying in place would hold every request behind it.
        Err(e) => Outcome::Poison(format!("database refused the request: {e}")),
    }
}
