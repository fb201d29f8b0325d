//! Claims, supervisor assignments, logout, round_robin's nobody-online backlog, queue stats
//! and the decision log.

mod common;

use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use common::{code_of, Fixture, Spec};

async fn wait_queued(f: &Fixture, c: uuid::Uuid) {
    let pool = f.pool().clone();
    atende_testkit::wait_until("the conversation to be in the router's queue", common::WAIT, || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM route_queue WHERE conversation_id = $1")
                .bind(c)
                .fetch_one(&pool)
                .await
                .ok()?;
            (n == 1).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn when_two_agents_claim_one_conversation_the_first_claim_wins() {
    // Arrange
    let f = Fixture::new(Spec {
        policy: "manual",
        agents: 2,
        max: 2,
        ..Spec::default()
    })
    .await;
    for a in &f.agents {
        f.set_presence(*a, true).await.unwrap();
    }
    let c = f.arrive().await;
    wait_queued(&f, c).await;
    let claim = |agent: uuid::Uuid| {
        let mut client = f.client.clone();
        let req = pb::ClaimConversationRequest {
            tenant_id: f.tenant.to_string(),
            conversation_id: c.to_string(),
            agent_id: agent.to_string(),
        };
        async move { client.claim_conversation(req).await }
    };

    // Act
    let (r1, r2) = tokio::join!(claim(f.agents[0]), claim(f.agents[1]));

    // Assert
    let results = [r1, r2];
    let winners: Vec<usize> = (0..2).filter(|i| results[*i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!(code_of(loser), Some(ErrorCode::ConversationAlreadyAssigned));
    assert_eq!(f.status(c).await, ("assigned".to_string(), Some(f.agents[winners[0]])));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM assignments WHERE conversation_id = $1")
        .bind(c)
        .fetch_one(f.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
    f.shutdown().await;
}

#[tokio::test]
async fn a_supervisor_cannot_assign_to_an_agent_at_capacity_but_can_to_one_with_room() {
    // Arrange: manual service, the first agent holds one conversation of one
    let f = Fixture::new(Spec {
        policy: "manual",
        agents: 2,
        max: 1,
        ..Spec::default()
    })
    .await;
    let (full, free) = (f.agents[0], f.agents[1]);
    f.set_presence(full, true).await.unwrap();
    f.set_presence(free, false).await.unwrap(); // paused: a supervisor may still assign
    let held = f.arrive().await;
    wait_queued(&f, held).await;
    f.client
        .clone()
        .claim_conversation(pb::ClaimConversationRequest {
            tenant_id: f.tenant.to_string(),
            conversation_id: held.to_string(),
            agent_id: full.to_string(),
        })
        .await
        .unwrap();
    let c = f.arrive().await;
    wait_queued(&f, c).await;
    let supervisor = f.supervisor().await;
    let assign = |agent: uuid::Uuid| pb::AssignConversationRequest {
        tenant_id: f.tenant.to_string(),
        conversation_id: c.to_string(),
        agent_id: agent.to_string(),
        supervisor_id: supervisor.to_string(),
        directed: false,
    };

    // Act
    let refused = f.client.clone().assign_conversation(assign(full)).await.unwrap_err();
    f.client.clone().assign_conversation(assign(free)).await.unwrap();

    // Assert
    assert_eq!(code_of(&refused), Some(ErrorCode::AgentAtCapacity));
    assert_eq!(f.status(c).await, ("assigned".to_string(), Some(free)));
    assert_eq!(f.open_load(full).await, 1);
    let rules: Vec<(String, String)> = sqlx::query_as(
        "SELECT decision, rule FROM decision_log WHERE conversation_id = $1 AND decision <> 'queue' ORDER BY id",
    )
    .bind(c)
    .fetch_all(f.pool())
    .await
    .unwrap();
    assert_eq!(
        rules,
        vec![
            ("reject".into(), "supervisor_choice".into()),
            ("assign".into(), "supervisor_choice".into())
        ]
    );
    f.shutdown().await;
}

#[tokio::test]
async fn logout_is_refused_while_the_agent_has_open_conversations() {
    // Arrange
    let f = Fixture::new(Spec {
        agents: 1,
        max: 2,
        ..Spec::default()
    })
    .await;
    let agent = f.agents[0];
    f.set_presence(agent, true).await.unwrap();
    let c = f.arrive().await;
    f.wait_status(c, "assigned").await;

    // Act
    let refused = f.presence(agent, true, true, true).await.unwrap_err();
    f.client
        .clone()
        .release_conversation(pb::ReleaseConversationRequest {
            tenant_id: f.tenant.to_string(),
            conversation_id: c.to_string(),
            reason: "finished".into(),
        })
        .await
        .unwrap();
    sqlx::query("UPDATE conversations SET status = 'finished' WHERE id = $1")
        .bind(c)
        .execute(f.pool())
        .await
        .unwrap();
    let out = f.presence(agent, true, true, true).await.unwrap();

    // Assert
    assert_eq!(code_of(&refused), Some(ErrorCode::LogoutWithOpenConversations));
    let detail = atende_runtime::errors::detail_of(&refused).unwrap();
    assert!(detail.message_pt_br.starts_with("Você não pode fazer logout"));
    assert_eq!(out.status, pb::AgentStatus::Offline as i32);
    assert!(out.channels.is_empty());
    f.shutdown().await;
}

#[tokio::test]
async fn round_robin_does_not_distribute_what_arrived_while_nobody_was_online() {
    // Arrange: nobody online when the first conversation arrives
    let f = Fixture::new(Spec {
        policy: "round_robin",
        agents: 2,
        max: 3,
        ..Spec::default()
    })
    .await;
    let held = f.arrive().await;
    wait_queued(&f, held).await;

    // Act: agents come online and a new conversation arrives
    for a in &f.agents {
        f.set_presence(*a, true).await.unwrap();
    }
    let fresh = f.arrive().await;
    let got = f.wait_status(fresh, "assigned").await.unwrap();
    let next = f.arrive().await;
    let got_next = f.wait_status(next, "assigned").await.unwrap();
    // a few sweeps pass
    f.router_sweeps(3).await;

    // Assert
    assert_ne!(got, got_next, "arrivals go to online agents in turn");
    assert_eq!(
        f.status(held).await.0,
        "queued",
        "the nobody-online backlog waits for a claim or a supervisor"
    );
    let flag: bool = sqlx::query_scalar("SELECT nobody_online FROM route_queue WHERE conversation_id = $1")
        .bind(held)
        .fetch_one(f.pool())
        .await
        .unwrap();
    assert!(flag);
    let rule: String = sqlx::query_scalar("SELECT rule FROM decision_log WHERE conversation_id = $1")
        .bind(held)
        .fetch_one(f.pool())
        .await
        .unwrap();
    assert_eq!(rule, "nobody_online_backlog_held");
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
    assert_eq!(stats.waiting, 1);
    assert!(stats.oldest_wait_ms >= 0);
    assert_eq!((stats.agents_available, stats.agents_offline), (2, 0));
    f.shutdown().await;
}

#[tokio::test]
async fn explain_conversation_says_which_rule_chose_the_agent_among_which_candidates() {
    // Arrange: the first agent already holds one conversation
    let f = Fixture::new(Spec {
        agents: 2,
        max: 3,
        ..Spec::default()
    })
    .await;
    let (busy, idle) = (f.agents[0], f.agents[1]);
    f.set_presence(busy, true).await.unwrap();
    let first = f.arrive().await;
    f.wait_status(first, "assigned").await;
    f.set_presence(idle, true).await.unwrap();
    let c = f.arrive().await;
    f.wait_status(c, "assigned").await;

    // Act
    let out = f
        .client
        .clone()
        .explain_conversation(pb::ExplainConversationRequest {
            tenant_id: f.tenant.to_string(),
            conversation_id: c.to_string(),
        })
        .await
        .unwrap()
        .into_inner();

    // Assert
    let last = out.decisions.last().unwrap();
    assert_eq!(last.decision, "assign");
    assert_eq!(last.rule, "least_loaded_most_free");
    assert_eq!(last.agent_id, idle.to_string());
    let e: serde_json::Value = serde_json::from_str(&last.explanation_json).unwrap();
    assert_eq!(e["chosen"], idle.to_string());
    let candidates = e["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    let load_of = |a: uuid::Uuid| candidates.iter().find(|c| c["agent"] == a.to_string()).unwrap()["load"].as_u64();
    assert_eq!(load_of(busy), Some(1));
    assert_eq!(load_of(idle), Some(0));
    f.shutdown().await;
}

#[tokio::test]
async fn release_conversation_naming_another_tenant_frees_nothing() {
    // Arrange: an agent of tenant A holds a conversation; tenant B exists too.
    let f = Fixture::new(Spec {
        agents: 1,
        max: 2,
        ..Spec::default()
    })
    .await;
    let agent = f.agents[0];
    f.set_presence(agent, true).await.unwrap();
    let c = f.arrive().await;
    f.wait_status(c, "assigned").await;
    let other_tenant = atende_testkit::fixtures::tenant(f.pool(), "Other", "other-tenant").await;

    // Act: a release for tenant B naming A's conversation.
    f.client
        .clone()
        .release_conversation(pb::ReleaseConversationRequest {
            tenant_id: other_tenant.to_string(),
            conversation_id: c.to_string(),
            reason: "finished".into(),
        })
        .await
        .unwrap();

    // Assert: the assignment and the agent's capacity in Redis are untouched.
    assert_eq!(f.open_load(agent).await, 1);
    let presence = f.set_presence(agent, true).await.unwrap();
    assert_eq!(presence.assigned, 1);
    f.shutdown().await;
}
