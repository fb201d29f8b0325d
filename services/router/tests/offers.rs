//! ordered_offer and offer_or_miss: offers, timeouts (exactly once), accepts.

mod common;

use atende_proto::v1 as pb;
use common::{Fixture, Spec};

async fn decisions(f: &Fixture, conversation: uuid::Uuid) -> Vec<(String, String, Option<uuid::Uuid>)> {
    sqlx::query_as("SELECT decision, rule, agent_id FROM decision_log WHERE conversation_id = $1 ORDER BY id")
        .bind(conversation)
        .fetch_all(f.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_ordered_offer_that_times_out_passes_to_the_next_agent_who_accepts() {
    // Arrange: two agents in rotation order, a one-minute offer timeout
    let f = Fixture::new(Spec {
        policy: "ordered_offer",
        offer_timeout_secs: 60,
        agents: 2,
        max: 2,
        ..Spec::default()
    })
    .await;
    let (first, second) = (f.agents[0], f.agents[1]);
    f.set_presence(first, true).await.unwrap();
    f.set_presence(second, true).await.unwrap();

    // Act
    let c = f.arrive().await;
    assert_eq!(
        f.wait_status(c, "offered").await,
        Some(first),
        "first in rotation gets the offer"
    );
    let stats = f
        .client
        .clone()
        .get_queue_stats(pb::GetQueueStatsRequest {
            tenant_id: f.tenant.to_string(),
            service_id: f.service.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((stats.waiting, stats.offered, stats.agents_available), (0, 1, 2));
    // The minute passes on the routers' clock, not on the wall.
    f.clock.advance(std::time::Duration::from_secs(61));
    let pool = f.pool().clone();
    atende_testkit::wait_until("the offer to pass to the second agent", common::WAIT, || {
        let pool = pool.clone();
        async move {
            let (s, a): (String, Option<uuid::Uuid>) =
                sqlx::query_as("SELECT status, agent_id FROM conversations WHERE id = $1")
                    .bind(c)
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (s == "offered" && a == Some(second)).then_some(())
        }
    })
    .await;
    f.client
        .clone()
        .accept_offer(pb::AcceptOfferRequest {
            tenant_id: f.tenant.to_string(),
            conversation_id: c.to_string(),
            agent_id: second.to_string(),
        })
        .await
        .unwrap();

    // Assert
    assert_eq!(f.status(c).await, ("assigned".to_string(), Some(second)));
    let log = decisions(&f, c).await;
    let summary: Vec<(&str, &str)> = log.iter().map(|(d, r, _)| (d.as_str(), r.as_str())).collect();
    assert_eq!(
        summary,
        vec![
            ("offer", "ordered_offer_first_in_rotation"),
            ("withdraw", "offer_timed_out_loses_turn"),
            ("offer", "ordered_offer_first_in_rotation"),
            ("assign", "offer_accepted"),
        ]
    );
    assert_eq!(
        f.events("offer.withdrawn").await.len(),
        1,
        "the timeout was handled exactly once"
    );
    assert_eq!(f.events("conversation.offered").await.len(), 2);
    assert_eq!(f.events("conversation.assigned").await.len(), 1);
    let p1 = f.set_presence(first, true).await.unwrap();
    let p2 = f.set_presence(second, true).await.unwrap();
    assert_eq!(
        (p1.assigned, p1.offered),
        (0, 0),
        "the withdrawn offer no longer holds capacity"
    );
    assert_eq!((p2.assigned, p2.offered), (1, 0));
    // a late accept by the first agent is refused: the conversation is someone else's now
    let err = f
        .client
        .clone()
        .accept_offer(pb::AcceptOfferRequest {
            tenant_id: f.tenant.to_string(),
            conversation_id: c.to_string(),
            agent_id: first.to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        common::code_of(&err),
        Some(atende_domain::ErrorCode::NotConversationOwner)
    );
    f.shutdown().await;
}

#[tokio::test]
async fn an_offer_or_miss_timeout_closes_the_lead_as_missed_and_frees_the_agent() {
    // Arrange
    let f = Fixture::new(Spec {
        policy: "offer_or_miss",
        offer_timeout_secs: 60,
        agents: 1,
        max: 2,
        ..Spec::default()
    })
    .await;
    let agent = f.agents[0];
    f.set_presence(agent, true).await.unwrap();

    // Act: the offer's minute passes on the routers' clock.
    let c = f.arrive().await;
    assert_eq!(f.wait_status(c, "offered").await, Some(agent));
    f.clock.advance(std::time::Duration::from_secs(61));
    f.wait_status(c, "missed").await;

    // Assert
    let reason: Option<String> = sqlx::query_scalar("SELECT close_reason FROM conversations WHERE id = $1")
        .bind(c)
        .fetch_one(f.pool())
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("missed"));
    let closed = f.events("conversation.closed").await;
    assert_eq!(closed.len(), 1);
    let Some(pb::domain_event::Kind::ConversationClosed(cc)) = &closed[0].kind else {
        panic!("wrong event")
    };
    assert_eq!(cc.reason, "missed");
    assert_eq!(cc.conversation.as_ref().unwrap().status, "missed");
    let rules: Vec<String> =
        sqlx::query_scalar("SELECT rule FROM decision_log WHERE conversation_id = $1 AND decision = 'missed_lead'")
            .bind(c)
            .fetch_all(f.pool())
            .await
            .unwrap();
    assert_eq!(rules, vec!["offer_timed_out_missed_lead".to_string()]);
    let p = f.set_presence(agent, true).await.unwrap();
    assert_eq!((p.assigned, p.offered), (0, 0));
    assert_eq!(f.open_load(agent).await, 0);
    f.shutdown().await;
}

#[tokio::test]
async fn an_offer_or_miss_lead_with_nobody_available_is_missed_at_once() {
    let f = Fixture::new(Spec {
        policy: "offer_or_miss",
        offer_timeout_secs: 60,
        agents: 1,
        max: 1,
        ..Spec::default()
    })
    .await;
    let c = f.arrive().await;
    f.wait_status(c, "missed").await;
    let rule: String = sqlx::query_scalar("SELECT rule FROM decision_log WHERE conversation_id = $1")
        .bind(c)
        .fetch_one(f.pool())
        .await
        .unwrap();
    assert_eq!(rule, "nobody_available_missed_lead");
    f.shutdown().await;
}

#[tokio::test]
async fn an_agent_who_pauses_loses_his_pending_offer_to_the_next_agent() {
    let f = Fixture::new(Spec {
        policy: "ordered_offer",
        offer_timeout_secs: 60,
        agents: 2,
        max: 1,
        ..Spec::default()
    })
    .await;
    let (first, second) = (f.agents[0], f.agents[1]);
    f.set_presence(first, true).await.unwrap();
    f.set_presence(second, true).await.unwrap();
    let c = f.arrive().await;
    assert_eq!(f.wait_status(c, "offered").await, Some(first));

    let p = f.set_presence(first, false).await.unwrap(); // pauses

    assert_eq!(p.offered, 0);
    assert_eq!(f.status(c).await, ("offered".to_string(), Some(second)));
    f.shutdown().await;
}

/// How many times each conversation got `decision` (per conversation, over all of them).
async fn decision_counts(f: &Fixture, decision: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT count(d.id) FROM conversations c LEFT JOIN decision_log d
           ON d.conversation_id = c.id AND d.decision = $2
         WHERE c.tenant_id = $1 GROUP BY c.id ORDER BY c.id",
    )
    .bind(f.tenant)
    .bind(decision)
    .fetch_all(f.pool())
    .await
    .unwrap()
}

async fn over_capacity(f: &Fixture) -> u64 {
    atende_capacity::Presence::new(f.sandbox.redis().await, &f.sandbox.id)
        .over_capacity_count(atende_domain::ids::TenantId(f.tenant))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_three_replicas_each_ordered_offer_times_out_exactly_once_and_passes_on() {
    // Arrange: three router replicas share one clock, Redis and stream.
    let f = Fixture::new(Spec {
        policy: "ordered_offer",
        offer_timeout_secs: 60,
        agents: 4,
        max: 2,
        replicas: 3,
        ..Spec::default()
    })
    .await;
    for a in &f.agents {
        f.set_presence(*a, true).await.unwrap();
    }
    let mut conversations = Vec::new();
    for _ in 0..6 {
        conversations.push(f.arrive().await);
    }
    let mut first_holders = Vec::new();
    for c in &conversations {
        first_holders.push(f.wait_status(*c, "offered").await);
    }

    // Act: the offers' minute passes; every replica's sweep sees every deadline due.
    f.clock.advance(std::time::Duration::from_secs(61));
    let pool = f.pool().clone();
    atende_testkit::wait_until("every offer withdrawn once and offered again", common::WAIT, || {
        let pool = pool.clone();
        let tenant = f.tenant;
        async move {
            let (withdrawn, offered): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE decision = 'withdraw'), count(*) FILTER (WHERE decision = 'offer')
                 FROM decision_log WHERE tenant_id = $1",
            )
            .bind(tenant)
            .fetch_one(&pool)
            .await
            .ok()?;
            (withdrawn >= 6 && offered >= 12).then_some(())
        }
    })
    .await;
    f.router_sweeps(3).await;

    // Assert: one withdrawal per offer, never the same agent twice in a row, nobody over capacity.
    assert_eq!(
        decision_counts(&f, "withdraw").await,
        vec![1; 6],
        "each timeout handled exactly once"
    );
    assert_eq!(f.events("offer.withdrawn").await.len(), 6);
    for (c, first) in conversations.iter().zip(&first_holders) {
        let (status, now_with) = f.status(*c).await;
        assert_eq!(status, "offered");
        assert_ne!(now_with, *first, "the agent who let it time out lost the turn");
    }
    assert_eq!(over_capacity(&f).await, 0);
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_three_replicas_each_missed_lead_is_closed_exactly_once_and_frees_its_agent() {
    // Arrange
    let f = Fixture::new(Spec {
        policy: "offer_or_miss",
        offer_timeout_secs: 60,
        agents: 2,
        max: 2,
        replicas: 3,
        ..Spec::default()
    })
    .await;
    for a in &f.agents {
        f.set_presence(*a, true).await.unwrap();
    }
    let mut conversations = Vec::new();
    for _ in 0..4 {
        conversations.push(f.arrive().await);
    }
    for c in &conversations {
        f.wait_status(*c, "offered").await;
    }

    // Act
    f.clock.advance(std::time::Duration::from_secs(61));
    for c in &conversations {
        f.wait_status(*c, "missed").await;
    }
    f.router_sweeps(3).await;

    // Assert
    assert_eq!(decision_counts(&f, "missed_lead").await, vec![1; 4]);
    assert_eq!(f.events("conversation.closed").await.len(), 4);
    for a in &f.agents {
        let p = f.set_presence(*a, true).await.unwrap();
        assert_eq!((p.assigned, p.offered), (0, 0));
    }
    assert_eq!(over_capacity(&f).await, 0);
    f.shutdown().await;
}
