//! Redis loses its state: capacity comes back from Postgres before any new reservation, and
//! no agent is ever pushed past capacity.

mod common;

use atende_proto::v1 as pb;
use common::{Fixture, Spec};

#[tokio::test]
async fn after_redis_loses_the_namespace_capacity_is_rebuilt_from_postgres_and_never_exceeded() {
    // Arrange: agent A is full (2 of 2), B is empty
    let f = Fixture::new(Spec {
        agents: 2,
        max: 2,
        ..Spec::default()
    })
    .await;
    let (a, b) = (f.agents[0], f.agents[1]);
    f.set_presence(a, true).await.unwrap();
    for _ in 0..2 {
        let c = f.arrive().await;
        f.wait_status(c, "assigned").await;
    }
    assert_eq!(f.open_load(a).await, 2);

    // Act: every key of this test's namespace vanishes (a FLUSH, a failover to an empty replica)
    let keys = f.redis_keys().await;
    assert!(!keys.is_empty());
    let mut r = f.sandbox.redis().await;
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut r).await.unwrap();
    // a conversation arrives while presence is gone: everyone counts as offline
    let during = f.arrive().await;
    let pool = f.pool().clone();
    atende_testkit::wait_until("the arrival to queue", common::WAIT, || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM route_queue WHERE conversation_id = $1")
                .bind(during)
                .fetch_one(&pool)
                .await
                .ok()?;
            (n == 1).then_some(())
        }
    })
    .await;
    // agents come back with their next heartbeat
    let pa = f.set_presence(a, true).await.unwrap();
    f.set_presence(b, true).await.unwrap();
    let more = f.arrive().await;

    // Assert
    assert_eq!((pa.assigned, pa.offered), (2, 0), "A's load came back from postgres");
    assert_eq!(f.wait_status(during, "assigned").await, Some(b));
    assert_eq!(f.wait_status(more, "assigned").await, Some(b));
    assert_eq!(f.open_load(a).await, 2, "A was never pushed past capacity");
    assert_eq!(f.open_load(b).await, 2);
    let extra = f.arrive().await; // everyone is full now
    let pool = f.pool().clone();
    atende_testkit::wait_until("the extra arrival to queue", common::WAIT, || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM decision_log WHERE conversation_id = $1 AND rule = 'no_eligible_agent'",
            )
            .bind(extra)
            .fetch_one(&pool)
            .await
            .ok()?;
            (n == 1).then_some(())
        }
    })
    .await;
    assert_eq!(f.status(extra).await.0, "queued");
    let presence = f
        .client
        .clone()
        .get_presence(pb::GetPresenceRequest {
            tenant_id: f.tenant.to_string(),
            agent_id: b.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .presence
        .unwrap();
    assert_eq!(presence.assigned, 2);
    f.shutdown().await;
}

#[tokio::test]
async fn reconciliation_restores_a_hold_redis_lost_and_frees_one_postgres_does_not_know() {
    use atende_capacity::{Check, Mode, Presence, Reservation};
    use atende_domain::channel::ChannelKind;
    use atende_domain::clock::Timestamp;
    use atende_domain::ids::{AgentId, ConversationId, ServiceId, TenantId};

    // Arrange: Ana holds one conversation in Postgres and in Redis.
    let f = Fixture::new(Spec {
        agents: 1,
        max: 3,
        ..Spec::default()
    })
    .await;
    let ana = f.agents[0];
    f.set_presence(ana, true).await.unwrap();
    let kept = f.arrive().await;
    f.wait_status(kept, "assigned").await;
    let redis = Presence::new(f.sandbox.redis().await, &f.sandbox.id);
    let tenant = TenantId(f.tenant);
    // An ambiguous commit: the assignment stands in Postgres, but Redis released it (long
    // enough ago that the release's memory expired).
    redis
        .release(tenant, ConversationId(kept), AgentId(ana), None)
        .await
        .unwrap();
    let mut conn = f.sandbox.redis().await;
    let _: () = redis::cmd("DEL")
        .arg(atende_capacity::Keys::new(&f.sandbox.id).released(tenant, ConversationId(kept)))
        .query_async(&mut conn)
        .await
        .unwrap();
    // A release whose Redis step never ran: Redis holds a conversation Postgres never had.
    let now_ms = atende_store::to_millis(time::OffsetDateTime::now_utc());
    let ghost = Reservation {
        conversation: ConversationId(uuid::Uuid::now_v7()),
        agent: AgentId(ana),
        service: ServiceId(f.service),
        mode: Mode::Assign,
        deadline: Timestamp::EPOCH,
    };
    let long_ago = Timestamp(now_ms - 120_000);
    redis
        .reserve(tenant, &ghost, Check::Routing, ChannelKind::Whatsapp, 3, long_ago, None)
        .await
        .unwrap();
    redis.confirm(tenant, &ghost, long_ago).await.unwrap();

    // Act: the routers' periodic reconciliation runs (every 200 ms in these tests).
    let presence = atende_testkit::wait_until("capacity reconciled", common::WAIT, || async {
        let p = f.set_presence(ana, true).await.ok()?;
        let ghost_gone = redis.held(tenant, ghost.conversation).await.ok()?.is_none();
        let kept_back = redis.held(tenant, ConversationId(kept)).await.ok()?.is_some();
        (ghost_gone && kept_back).then_some(p)
    })
    .await;

    // Assert: Redis agrees with Postgres again; the invariant counter never moved. (The
    // drift itself is not read back: the routers reconcile every 200 ms, so it may already
    // be half mended by then — the wait above is what proves both halves were.)
    assert_eq!((presence.assigned, presence.offered), (1, 0));
    assert_eq!(f.open_load(ana).await, 1);
    assert_eq!(redis.over_capacity_count(tenant).await.unwrap(), 0);
    f.shutdown().await;
}
