//! least_loaded against real Postgres, Redis and NATS: arrivals, backlog, release.

mod common;

use atende_proto::v1 as pb;
use common::{Fixture, Spec};

#[tokio::test]
async fn an_arrival_is_assigned_to_the_available_agent_with_most_free_capacity_and_announced() {
    // Arrange
    let f = Fixture::new(Spec {
        agents: 2,
        max: 3,
        ..Spec::default()
    })
    .await;
    for a in &f.agents {
        f.set_presence(*a, true).await.unwrap();
    }

    // Act
    let first = f.arrive().await;
    let first_agent = f.wait_status(first, "assigned").await.unwrap();
    let second = f.arrive().await;
    let second_agent = f.wait_status(second, "assigned").await.unwrap();

    // Assert: spread by load, one assignment each, announced with the conversation filled in
    assert_ne!(first_agent, second_agent);
    assert_eq!(f.open_load(first_agent).await, 1);
    assert_eq!(f.open_load(second_agent).await, 1);
    let events = f.events("conversation.assigned").await;
    assert_eq!(events.len(), 2);
    let Some(pb::domain_event::Kind::ConversationAssigned(a)) = &events[0].kind else {
        panic!("wrong event")
    };
    let c = a.conversation.as_ref().unwrap();
    assert_eq!(c.id, first.to_string());
    assert_eq!(c.status, "assigned");
    assert_eq!(c.agent_id, first_agent.to_string());
    assert_eq!(c.service_id, f.service.to_string());
    assert_eq!(c.channel_kind, pb::ChannelKind::Whatsapp as i32);
    assert!(!c.protocol.is_empty());
    let p = f.set_presence(first_agent, true).await.unwrap();
    assert_eq!((p.assigned, p.offered, p.max_concurrent), (1, 0, 3));

    // A redelivered route request changes nothing.
    f.route_request(first).await; // same msg id: a no-op in the outbox too
    f.bus
        .publish(
            f.bus.subjects.route(f.tenant, f.service),
            "redelivery",
            prost::Message::encode_to_vec(&pb::RouteRequest {
                tenant_id: f.tenant.to_string(),
                service_id: f.service.to_string(),
                conversation_id: first.to_string(),
                channel_kind: 1,
                queued_at_ms: 0,
                priority: 0,
                ..Default::default()
            })
            .into(),
            Default::default(),
        )
        .await
        .unwrap();
    let third = f.arrive().await; // processed after the redelivery on the same stream
    f.wait_status(third, "assigned").await;
    assert_eq!(f.status(first).await, ("assigned".to_string(), Some(first_agent)));
    assert_eq!(f.events("conversation.assigned").await.len(), 3);
    f.shutdown().await;
}

#[tokio::test]
async fn the_backlog_is_distributed_as_soon_as_capacity_appears_spreading_by_load() {
    // Arrange: nobody online, four conversations wait
    let f = Fixture::new(Spec {
        agents: 2,
        max: 3,
        ..Spec::default()
    })
    .await;
    let mut convs = Vec::new();
    for _ in 0..4 {
        convs.push(f.arrive().await);
    }
    let pool = f.pool().clone();
    atende_testkit::wait_until("four queue decisions", common::WAIT, || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM route_queue")
                .fetch_one(&pool)
                .await
                .ok()?;
            (n == 4).then_some(())
        }
    })
    .await;

    // Act: the first agent logs in, then the second
    let (a, b) = (f.agents[0], f.agents[1]);
    f.set_presence(a, true).await.unwrap();
    assert_eq!(f.open_load(a).await, 3, "capacity is filled as soon as it appears");
    f.set_presence(b, true).await.unwrap();

    // Assert
    assert_eq!(f.open_load(b).await, 1);
    for c in &convs {
        f.wait_status(*c, "assigned").await;
    }
    // queue order is kept: the oldest went first
    assert_eq!(f.status(convs[3]).await.1, Some(b));
    f.shutdown().await;
}

#[tokio::test]
async fn releasing_a_conversation_frees_capacity_and_distributes_the_next_waiting_one() {
    // Arrange
    let f = Fixture::new(Spec {
        agents: 1,
        max: 1,
        ..Spec::default()
    })
    .await;
    let a = f.agents[0];
    f.set_presence(a, true).await.unwrap();
    let first = f.arrive().await;
    f.wait_status(first, "assigned").await;
    let second = f.arrive().await;
    let pool = f.pool().clone();
    atende_testkit::wait_until("the second to queue", common::WAIT, || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM route_queue WHERE conversation_id = $1")
                .bind(second)
                .fetch_one(&pool)
                .await
                .ok()?;
            (n == 1).then_some(())
        }
    })
    .await;

    // Act
    sqlx::query("UPDATE conversations SET status = 'finished' WHERE id = $1")
        .bind(first)
        .execute(f.pool())
        .await
        .unwrap();
    f.client
        .clone()
        .release_conversation(pb::ReleaseConversationRequest {
            tenant_id: f.tenant.to_string(),
            conversation_id: first.to_string(),
            reason: "finished".into(),
        })
        .await
        .unwrap();

    // Assert
    assert_eq!(f.wait_status(second, "assigned").await, Some(a));
    assert_eq!(f.open_load(a).await, 1);
    f.shutdown().await;
}
