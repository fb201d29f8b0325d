//! Large services are routed through the Redis candidate index (the best agents per channel
//! kind, kept in the policy's order by the same scripts that change agents): it must choose
//! as `decide` would among everyone.

mod common;

use common::{Fixture, Spec};

#[tokio::test]
async fn a_large_least_loaded_service_spreads_arrivals_over_every_agent_through_the_index() {
    // Arrange: more members than a full snapshot takes
    let f = Fixture::new(Spec {
        agents: 70,
        max: 2,
        ..Spec::default()
    })
    .await;
    for a in &f.agents {
        f.set_presence(*a, true).await.unwrap();
    }

    // Act
    let mut convs = Vec::new();
    for _ in 0..70 {
        convs.push(f.arrive().await);
    }
    for c in &convs {
        f.wait_status(*c, "assigned").await;
    }

    // Assert: the most free capacity first means one each before anyone gets a second
    for a in &f.agents {
        assert_eq!(f.open_load(*a).await, 1, "agent {a}");
    }
    let e: serde_json::Value =
        sqlx::query_scalar("SELECT explanation FROM decision_log WHERE conversation_id = $1 AND decision = 'assign'")
            .bind(convs[69])
            .fetch_one(f.pool())
            .await
            .unwrap();
    assert_eq!(e["members"], 70);
    assert!(e["candidates"].as_array().unwrap().len() <= 20);
    assert_eq!(e["rule"], "least_loaded_most_free");
    f.shutdown().await;
}

#[tokio::test]
async fn round_robin_through_the_index_gives_arrivals_to_agents_in_turn() {
    let f = Fixture::new(Spec {
        policy: "round_robin",
        agents: 3,
        max: 5,
        full_snapshot_max: 0,
        ..Spec::default()
    })
    .await;
    for a in &f.agents {
        f.set_presence(*a, true).await.unwrap();
    }

    let mut got = Vec::new();
    for _ in 0..6 {
        let c = f.arrive().await;
        got.push(f.wait_status(c, "assigned").await.unwrap());
    }

    let order: Vec<uuid::Uuid> = f.agents.iter().chain(f.agents.iter()).copied().collect();
    assert_eq!(got, order, "configured rotation order, then around again");
    f.shutdown().await;
}

#[tokio::test]
async fn offer_or_miss_through_the_index_offers_to_agents_without_a_pending_offer_first() {
    let f = Fixture::new(Spec {
        policy: "offer_or_miss",
        agents: 2,
        max: 3,
        full_snapshot_max: 0,
        ..Spec::default()
    })
    .await;
    for a in &f.agents {
        f.set_presence(*a, true).await.unwrap();
    }

    let first = f.arrive().await;
    let a1 = f.wait_status(first, "offered").await.unwrap();
    let second = f.arrive().await;
    let a2 = f.wait_status(second, "offered").await.unwrap();

    assert_eq!(a1, f.agents[0]);
    assert_eq!(a2, f.agents[1]);
    f.shutdown().await;
}
