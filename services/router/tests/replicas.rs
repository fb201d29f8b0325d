//! Three router replicas on one Redis and NATS, 1,000 conversations over two
//! services, 50 agents of capacity 3 (members of both services, so capacity is shared across
//! the per-service leases) arriving, pausing, dropping, logging out and finishing
//! conversations. Checked from Postgres and Redis: no double assignment, never over
//! capacity (sampled all along, and at the end), every conversation assigned or correctly
//! queued.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atende_domain::ids::{AgentId, TenantId};
use atende_proto::v1 as pb;
use atende_proto::v1::router_service_client::RouterServiceClient;
use common::{Fixture, Spec};
use prost::Message;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

const CONVERSATIONS: usize = 1000;
const AGENTS: usize = 50;
const MAX: i64 = 3;

/// Inserts `n` queued conversations of new contacts in `service`, with their route requests
/// in the outbox, in one transaction (as session would, in bulk).
async fn arrive_batch(f: &Fixture, service: Uuid, n: usize) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let contacts: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let payloads: Vec<Vec<u8>> = ids
        .iter()
        .map(|c| {
            pb::RouteRequest {
                tenant_id: f.tenant.to_string(),
                service_id: service.to_string(),
                conversation_id: c.to_string(),
                channel_kind: pb::ChannelKind::Whatsapp as i32,
                queued_at_ms: 0,
                priority: 0,
                ..Default::default()
            }
            .encode_to_vec()
        })
        .collect();
    let msg_ids: Vec<String> = ids.iter().map(|c| format!("route-{c}")).collect();
    let mut tx = f.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO contacts (id, tenant_id, name) SELECT unnest($1::uuid[]), $2, 'c'")
        .bind(&contacts)
        .bind(f.tenant)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO conversations (id, tenant_id, contact_id, channel_id, service_id, status, protocol, opened_at, queued_at)
         SELECT c, $3, ct, $4, $5, 'queued', replace(c::text, '-', ''), now(), clock_timestamp()
         FROM unnest($1::uuid[], $2::uuid[]) AS t(c, ct)",
    )
    .bind(&ids)
    .bind(&contacts)
    .bind(f.tenant)
    .bind(f.channel)
    .bind(service)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO outbox (tenant_id, subject, msg_id, payload) SELECT $1, $2, unnest($3::text[]), unnest($4::bytea[])")
        .bind(f.tenant)
        .bind(f.bus.subjects.route(f.tenant, service))
        .bind(&msg_ids)
        .bind(&payloads)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    ids
}

/// The highest load of any agent, in Postgres (open assignments) and in Redis (assigned +
/// offered counters, which include reservations not yet committed).
async fn observed_max(
    f: &Fixture,
    keys: &atende_capacity::Keys,
    redis: &mut redis::aio::ConnectionManager,
) -> (i64, i64) {
    let pg: i64 = sqlx::query_scalar(
        "SELECT COALESCE(max(n), 0) FROM (SELECT count(*) AS n FROM assignments
         WHERE tenant_id = $1 AND released_at IS NULL GROUP BY agent_id) x",
    )
    .bind(f.tenant)
    .fetch_one(f.pool())
    .await
    .unwrap();
    let mut pipe = redis::pipe();
    for a in &f.agents {
        pipe.cmd("HMGET")
            .arg(keys.agent(TenantId(f.tenant), AgentId(*a)))
            .arg("assigned")
            .arg("offered");
    }
    let rows: Vec<(Option<i64>, Option<i64>)> = pipe.query_async(redis).await.unwrap();
    let rd = rows
        .iter()
        .map(|(a, o)| a.unwrap_or(0) + o.unwrap_or(0))
        .max()
        .unwrap_or(0);
    (pg, rd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_never_double_assign_never_exceed_capacity_and_route_everything() {
    let started = Instant::now();
    // Arrange: three replicas, two least_loaded services sharing 50 agents of capacity 3
    let f = Arc::new(
        Fixture::new(Spec {
            policy: "least_loaded",
            agents: AGENTS,
            max: MAX as i32,
            replicas: 3,
            // the candidate-index path: the one large services take
            full_snapshot_max: 0,
            ..Spec::default()
        })
        .await,
    );
    let second = Uuid::now_v7();
    atende_store::admin::create_service(
        f.pool(),
        &atende_store::admin::NewService {
            id: second,
            tenant_id: f.tenant,
            name: "Support",
            policy: "least_loaded",
            offer_timeout_secs: 60,
            priority: 0,
        },
    )
    .await
    .unwrap();
    sqlx::query("INSERT INTO agent_services (tenant_id, agent_id, service_id, rotation_order) SELECT $1, unnest($2::uuid[]), $3, 1")
        .bind(f.tenant)
        .bind(&f.agents)
        .bind(second)
        .execute(f.pool())
        .await
        .unwrap();
    let services = [f.service, second];
    let mut clients = Vec::new();
    for r in &f.routers {
        clients.push(RouterServiceClient::new(f.sandbox.grpc(r.grpc_addr)));
    }
    let clients = Arc::new(clients);
    let keys = atende_capacity::Keys::new(&f.sandbox.id);
    let churning = Arc::new(AtomicBool::new(true));
    let finishing = Arc::new(AtomicBool::new(true));
    let sampling = Arc::new(AtomicBool::new(true));
    let worst_pg = Arc::new(AtomicI64::new(0));
    let worst_redis = Arc::new(AtomicI64::new(0));
    let samples = Arc::new(AtomicI64::new(0));

    // Sampler: capacity as observed in Postgres and Redis, all along.
    let sampler = {
        let (f, keys, sampling, worst_pg, worst_redis, samples) = (
            f.clone(),
            keys.clone(),
            sampling.clone(),
            worst_pg.clone(),
            worst_redis.clone(),
            samples.clone(),
        );
        tokio::spawn(async move {
            let mut redis = f.sandbox.redis().await;
            while sampling.load(Ordering::Relaxed) {
                let (pg, rd) = observed_max(&f, &keys, &mut redis).await;
                worst_pg.fetch_max(pg, Ordering::Relaxed);
                worst_redis.fetch_max(rd, Ordering::Relaxed);
                samples.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Agents: each comes online, then pauses, drops, logs out (refused while busy) and comes back.
    let mut churners = Vec::new();
    for (i, agent) in f.agents.clone().into_iter().enumerate() {
        let (f, clients, churning) = (f.clone(), clients.clone(), churning.clone());
        churners.push(tokio::spawn(async move {
            let mut client = clients[i % clients.len()].clone();
            let mut rng = rand::rngs::StdRng::from_entropy();
            let mut changes = 0u32;
            while churning.load(Ordering::Relaxed) {
                let roll: u32 = rng.gen_range(0..100);
                let (connected, paused, logout) = match roll {
                    0..=59 => (true, false, false),
                    60..=79 => (true, true, false),
                    80..=89 => (false, false, false),
                    _ => (true, false, true),
                };
                let req = pb::SetPresenceRequest {
                    tenant_id: f.tenant.to_string(),
                    agent_id: agent.to_string(),
                    connected,
                    channels: vec![pb::ChannelLogin {
                        channel_kind: "whatsapp".into(),
                        paused,
                    }],
                    logout,
                };
                match client.set_presence(req).await {
                    Ok(_) => changes += 1,
                    Err(e)
                        if logout
                            && common::code_of(&e) == Some(atende_domain::ErrorCode::LogoutWithOpenConversations) => {}
                    Err(e) => panic!("set presence failed: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(rng.gen_range(400..1600))).await;
            }
            // Everyone ends online so the backlog can drain.
            client
                .set_presence(pb::SetPresenceRequest {
                    tenant_id: f.tenant.to_string(),
                    agent_id: agent.to_string(),
                    connected: true,
                    channels: vec![pb::ChannelLogin {
                        channel_kind: "whatsapp".into(),
                        paused: false,
                    }],
                    logout: false,
                })
                .await
                .unwrap();
            changes
        }));
    }

    // Finishers: agents finish conversations (session closes them and releases them).
    let mut finishers = Vec::new();
    for i in 0..6 {
        let (f, clients, finishing) = (f.clone(), clients.clone(), finishing.clone());
        finishers.push(tokio::spawn(async move {
            let mut client = clients[i % clients.len()].clone();
            let mut done = 0u32;
            while finishing.load(Ordering::Relaxed) {
                let picked: Option<Uuid> = sqlx::query_scalar(
                    "UPDATE conversations SET status = 'finished' WHERE id = (
                       SELECT id FROM conversations WHERE tenant_id = $1 AND status = 'assigned'
                       ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
                )
                .bind(f.tenant)
                .fetch_optional(f.pool())
                .await
                .unwrap();
                match picked {
                    Some(c) => {
                        client
                            .release_conversation(pb::ReleaseConversationRequest {
                                tenant_id: f.tenant.to_string(),
                                conversation_id: c.to_string(),
                                reason: "finished".into(),
                            })
                            .await
                            .unwrap();
                        done += 1;
                    }
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            done
        }));
    }

    // Act: 1,000 conversations arrive in batches while agents come and go.
    let mut all = Vec::new();
    for batch in 0..20 {
        all.extend(arrive_batch(&f, services[batch % 2], CONVERSATIONS / 20).await);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // more churn with the backlog in place
    churning.store(false, Ordering::Relaxed);
    let mut presence_changes = 0;
    for c in churners {
        presence_changes += c.await.unwrap();
    }
    let pool = f.pool().clone();
    let tenant = f.tenant;
    atende_testkit::wait_until("every conversation to be routed", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM conversations WHERE tenant_id = $1 AND status IN ('queued', 'offered')",
            )
            .bind(tenant)
            .fetch_one(&pool)
            .await
            .ok()?;
            (waiting == 0).then_some(())
        }
    })
    .await;
    finishing.store(false, Ordering::Relaxed);
    let mut finished = 0;
    for h in finishers {
        finished += h.await.unwrap();
    }
    let mut redis = f.sandbox.redis().await;
    let (pg_end, redis_end) = observed_max(&f, &keys, &mut redis).await;
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();

    // Assert: never over capacity, at any sampled moment and at the end
    assert!(samples.load(Ordering::Relaxed) > 50, "the sampler ran");
    assert!(
        worst_pg.load(Ordering::Relaxed) <= MAX,
        "postgres saw an agent over capacity"
    );
    assert!(
        worst_redis.load(Ordering::Relaxed) <= MAX,
        "redis saw an agent over capacity"
    );
    assert!(pg_end <= MAX && redis_end <= MAX);
    // ... and at every moment: the scripts count any load above max they ever produce.
    let over = atende_capacity::Presence::new(f.sandbox.redis().await, &f.sandbox.id)
        .over_capacity_count(atende_domain::ids::TenantId(f.tenant))
        .await
        .unwrap();
    assert_eq!(over, 0, "a script observed an agent over capacity");
    // every conversation was assigned exactly once (some are finished since)
    let statuses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM conversations WHERE tenant_id = $1 GROUP BY status ORDER BY status",
    )
    .bind(f.tenant)
    .fetch_all(f.pool())
    .await
    .unwrap();
    let total: i64 = statuses.iter().map(|(_, n)| n).sum();
    assert_eq!(total, CONVERSATIONS as i64);
    assert!(
        statuses.iter().all(|(s, _)| s == "assigned" || s == "finished"),
        "{statuses:?}"
    );
    let doubles: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT conversation_id FROM assignments WHERE tenant_id = $1 GROUP BY 1 HAVING count(*) > 1) x",
    )
    .bind(f.tenant)
    .fetch_one(f.pool())
    .await
    .unwrap();
    assert_eq!(doubles, 0, "a conversation had two assignments");
    let assigned_rows: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT conversation_id) FROM assignments WHERE tenant_id = $1")
            .bind(f.tenant)
            .fetch_one(f.pool())
            .await
            .unwrap();
    assert_eq!(assigned_rows, CONVERSATIONS as i64);
    let owner_mismatch: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM assignments a JOIN conversations c ON c.id = a.conversation_id WHERE a.agent_id <> c.agent_id",
    )
    .fetch_one(f.pool())
    .await
    .unwrap();
    assert_eq!(owner_mismatch, 0);
    let logged: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM decision_log WHERE tenant_id = $1 AND decision = 'assign' GROUP BY conversation_id",
    )
    .bind(f.tenant)
    .fetch_all(f.pool())
    .await
    .unwrap();
    assert_eq!(logged.len(), CONVERSATIONS);
    assert!(logged.iter().all(|n| *n == 1), "an assignment was logged twice");
    let events = f.events("conversation.assigned").await;
    let mut per_conversation = std::collections::HashMap::<String, u32>::new();
    for e in &events {
        if let Some(pb::domain_event::Kind::ConversationAssigned(a)) = &e.kind {
            *per_conversation
                .entry(a.conversation.as_ref().unwrap().id.clone())
                .or_default() += 1;
        }
    }
    assert_eq!(per_conversation.len(), CONVERSATIONS);
    assert!(
        per_conversation.values().all(|n| *n == 1),
        "an assignment was announced twice"
    );
    // Redis agrees with Postgres on every agent's load
    for a in &f.agents {
        let live = f.set_presence(*a, true).await.unwrap();
        assert_eq!(
            live.assigned as i64,
            f.open_load(*a).await,
            "redis counter of {a} drifted from postgres"
        );
        assert_eq!(live.offered, 0);
    }
    eprintln!(
        "replicas: {} conversations, {presence_changes} presence changes, {finished} finished, {} samples, \
         worst load pg={} redis={}, {:?}",
        all.len(),
        samples.load(Ordering::Relaxed),
        worst_pg.load(Ordering::Relaxed),
        worst_redis.load(Ordering::Relaxed),
        started.elapsed()
    );
    Arc::try_unwrap(f).ok().expect("fixture still shared").shutdown().await;
}
