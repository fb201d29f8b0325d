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
