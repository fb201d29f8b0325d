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
    // Arrange: two agents in rotation order, a one-second offer timeout
    let f = Fixture::new(Spec {
        policy: "ordered_offer",
        offer_timeout_secs: 1,
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
    // a late accept by the first agent is refused
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
    assert_eq!(common::code_of(&err), Some(atende_domain::ErrorCode::OfferNotPending));
    f.shutdown().await;
}

#[tokio::test]
async fn an_offer_or_miss_timeout_closes_the_lead_as_missed_and_frees_the_agent() {
    // Arrange
    let f = Fixture::new(Spec {
        policy: "offer_or_miss",
        offer_timeout_secs: 1,
        agents: 1,
        max: 2,
        ..Spec::default()
    })
    .await;
    let agent = f.agents[0];
    f.set_presence(agent, true).await.unwrap();

    // Act
    let c = f.arrive().await;
    assert_eq!(f.wait_status(c, "offered").await, Some(agent));
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
