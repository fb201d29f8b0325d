//! Whether an agent is connected, across every gateway replica, in Redis.
//!
//! Each open socket is a member of the agent's `sockets` set, scored with the time its
//! heartbeat lapses; the replica holding it renews every open socket each third of the grace.
//! A socket that closes leaves the set, and so does one whose replica died (its heartbeat
//! lapses). The tenant's `socket_watch` says when each agent is next to be checked; every
//! replica sweeps the due entries, and the one whose atomic check finds no live socket left
//! marks the agent Inactive through the router (his channel logins are kept, his offers
//! withdrawn) — exactly once, whichever replicas sweep. An agent with a socket on another
//! replica therefore stays connected when one of his sockets closes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atende_capacity::Keys;
use atende_domain::ids::{AgentId, TenantId};
use atende_proto::v1 as pb;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Drops lapsed sockets; then, with none left, takes the agent off the watch and answers 1
/// (only one caller ever gets that 1 for one lapse); otherwise moves the watch to the last
/// live socket's lapse and answers 0.
const CHECK: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #last == 0 then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
redis.call('ZADD', KEYS[1], last[2], ARGV[1])
return 0
";

/// Sockets renewed per Redis pipeline.
const BEAT_BATCH: usize = 500;

#[derive(Clone)]
pub struct Presence {
    redis: ConnectionManager,
    keys: Keys,
    grace: Duration,
    /// This replica's open sockets: id → (tenant, agent).
    sockets: Arc<Mutex<HashMap<Uuid, (Uuid, Uuid)>>>,
    check: Arc<redis::Script>,
}

fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

impl Presence {
    pub fn new(redis: ConnectionManager, keys: Keys, grace: Duration) -> Self {
        Self {
            redis,
            keys,
            grace,
            sockets: Arc::default(),
            check: Arc::new(redis::Script::new(CHECK)),
        }
    }

    fn grace_ms(&self) -> i64 {
        i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX)
    }

    /// A socket opened: the agent is connected until its heartbeat lapses. (Should Redis
    /// not answer now, the next heartbeat records it.)
    pub async fn open(&self, tenant: Uuid, agent: Uuid) -> Uuid {
        let id = Uuid::now_v7();
        self.sockets.lock().expect("presence lock").insert(id, (tenant, agent));
        let lapse = now_ms() + self.grace_ms();
        if let Err(e) = self.beat(&[(id, tenant, agent)], lapse).await {
            tracing::warn!(
                error = &e as &dyn std::error::Error,
                "cannot record the socket; the heartbeat will"
            );
        }
        id
    }

    /// A socket closed: it leaves the set; the sweep decides after the grace whether the
    /// agent still has another (a reload reconnects within it).
    pub async fn close(&self, id: Uuid) {
        let Some((tenant, agent)) = self.sockets.lock().expect("presence lock").remove(&id) else {
            return;
        };
        let (t, a) = (TenantId(tenant), AgentId(agent));
        let closed: redis::RedisResult<()> = redis::pipe()
            .zrem(self.keys.sockets(t, a), id.to_string())
            .ignore()
            .cmd("ZADD")
            .arg(self.keys.socket_watch(t))
            .arg(now_ms() + self.grace_ms())
            .arg(agent.to_string())
            .ignore()
            .query_async(&mut self.redis.clone())
            .await;
        // Not recorded: the socket's heartbeat lapses within the grace all the same.
        if let Err(e) = closed {
            tracing::warn!(error = &e as &dyn std::error::Error, "cannot record the socket's close");
        }
    }

    /// Renews `sockets` until `lapse`, and makes sure each agent is watched.
    async fn beat(&self, sockets: &[(Uuid, Uuid, Uuid)], lapse: i64) -> redis::RedisResult<()> {
        if sockets.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (id, tenant, agent) in sockets {
            let (t, a) = (TenantId(*tenant), AgentId(*agent));
            let set = self.keys.sockets(t, a);
            pipe.zadd(&set, id.to_string(), lapse)
                .ignore()
                .pexpire(&set, self.grace_ms() * 2)
                .ignore()
                // GT: never bring a check forward that a later lapse already scheduled.
                .cmd("ZADD")
                .arg(self.keys.socket_watch(t))
                .arg("GT")
                .arg(lapse)
                .arg(agent.to_string())
                .ignore()
                .sadd(self.keys.socket_watch_tenants(), tenant.to_string())
                .ignore();
        }
        pipe.query_async(&mut self.redis.clone()).await
    }

    /// Renews every socket of this replica.
    async fn heartbeat(&self) -> redis::RedisResult<()> {
        let open: Vec<(Uuid, Uuid, Uuid)> = self
            .sockets
            .lock()
            .expect("presence lock")
            .iter()
            .map(|(id, (t, a))| (*id, *t, *a))
            .collect();
        // In pipelines of a few hundred: ten thousand sockets in one would build (and leave
        // the allocator holding) megabytes at every beat.
        let lapse = now_ms() + self.grace_ms();
        for chunk in open.chunks(BEAT_BATCH) {
            self.beat(chunk, lapse).await?;
        }
        Ok(())
    }

    /// Checks the due agents of every watched tenant; those with no live socket left (and
    /// whose check this replica won) are marked Inactive.
    async fn sweep(&self, router: &atende_runtime::clients::RouterClient) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let tenants: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.socket_watch_tenants())
            .query_async(&mut redis)
            .await?;
        let now = now_ms();
        for tenant in tenants.iter().filter_map(|t| Uuid::parse_str(t).ok()) {
            let watch = self.keys.socket_watch(TenantId(tenant));
            let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&watch)
                .arg("-inf")
                .arg(now)
                .arg("LIMIT")
                .arg(0)
                .arg(500)
                .query_async(&mut redis)
                .await?;
            for agent in due.iter().filter_map(|a| Uuid::parse_str(a).ok()) {
                let gone: i64 = self
                    .check
                    .key(&watch)
                    .key(self.keys.sockets(TenantId(tenant), AgentId(agent)))
                    .arg(agent.to_string())
                    .arg(now)
                    .invoke_async(&mut redis)
                    .await?;
                if gone == 1 {
                    disconnected(router, tenant, agent).await;
                }
            }
        }
        Ok(())
    }
}

/// The agent's connection dropped: Inactive, channel logins kept (a reconnect restores them).
async fn disconnected(router: &atende_runtime::clients::RouterClient, tenant: Uuid, agent: Uuid) {
    let req = pb::SetPresenceRequest {
        tenant_id: tenant.to_string(),
        agent_id: agent.to_string(),
        connected: false,
        channels: Vec::new(),
        logout: false,
    };
    match router.clone().set_presence(req).await {
        Ok(_) => tracing::info!(%agent, "no socket left on any replica: agent inactive"),
        Err(e) => tracing::warn!(%agent, error = %e, "cannot mark the agent inactive"),
    }
}

/// Heartbeats this replica's sockets every third of the grace and sweeps the due checks.
pub async fn run(
    presence: Presence,
    router: atende_runtime::clients::RouterClient,
    shutdown: CancellationToken,
) -> atende_runtime::Result<()> {
    let mut tick = tokio::time::interval((presence.grace / 3).max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = presence.heartbeat().await {
            tracing::warn!(error = &e as &dyn std::error::Error, "socket heartbeat failed");
        }
        if let Err(e) = presence.sweep(&router).await {
            tracing::warn!(error = &e as &dyn std::error::Error, "presence sweep failed");
        }
    }
    Ok(())
}
