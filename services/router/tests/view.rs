//! The candidate view a replica keeps between routing steps of a large service: when another
//! replica takes capacity between two of its decisions, its next decision does not trust the
//! stale view — it re-reads (inside the lease script) and picks someone else; never over
//! capacity.

mod common;

use atende_proto::v1 as pb;
use common::{test_config, Fixture, Spec};

fn request(f: &Fixture, conversation: uuid::Uuid) -> pb::RouteRequest {
    pb::RouteRequest {
        tenant_id: f.tenant.to_string(),
        service_id: f.service.to_string(),
        conversation_id: conversation.to_string(),
        channel_kind: pb::ChannelKind::Whatsapp as i32,
        queued_at_ms: 0,
        priority: 0,
        ..Default::default()
    }
}

#[tokio::test]
async fn capacity_taken_by_another_replica_between_two_decisions_is_seen_by_the_next_one() {
    // Arrange: every service goes through the index (and the kept view); three agents of
    // capacity 1; two replicas driven directly (no route stream)
    let f = Fixture::new(Spec {
        agents: 3,
        max: 1,
        full_snapshot_max: 0,
        ..Spec::default()
    })
    .await;
    for a in &f.agents {
        f.set_presence(*a, true).await.unwrap();
    }
    let cfg = test_config(&f.sandbox, 0);
    let one = atende_router::router(&cfg).await.unwrap();
    let two = atende_router::router(&cfg).await.unwrap();

    // Act: replica one decides (and keeps the view: two agents free), replica two takes one
    // of those two, replica one decides again
    let c1 = f.queued_conversation().await;
    one.arrived(&request(&f, c1)).await.unwrap();
    let a1 = f.status(c1).await.1.expect("assigned");
    let c2 = f.queued_conversation().await;
    two.arrived(&request(&f, c2)).await.unwrap();
    let a2 = f.status(c2).await.1.expect("assigned");
    let c3 = f.queued_conversation().await;
    one.arrived(&request(&f, c3)).await.unwrap();
    let a3 = f.status(c3).await.1.expect("assigned");
    let c4 = f.queued_conversation().await;
    one.arrived(&request(&f, c4)).await.unwrap();

    // Assert: three different agents, then nobody left: the fourth waits
    assert!(a1 != a2 && a2 != a3 && a1 != a3, "{a1} {a2} {a3}");
    assert_eq!(f.status(c4).await, ("queued".to_string(), None));
    for a in &f.agents {
        assert_eq!(f.open_load(*a).await, 1, "agent {a}");
        let (live, _) = one
            .presence(atende_domain::ids::TenantId(f.tenant), atende_domain::ids::AgentId(*a))
            .await
            .unwrap();
        assert_eq!(live.assigned + live.offered, 1, "agent {a} in redis");
    }
    f.shutdown().await;
}
