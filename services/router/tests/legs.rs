//! A finish or a transfer reaches the router as a route request naming the previous leg's
//! holder: the router frees his capacity for that conversation — only while he still holds
//! it for the old service — and then distributes the backlog his capacity can take. The
//! session has already closed the assignment in Postgres; here the test writes what the
//! session writes, in one transaction, and checks Redis and Postgres agree after each step,
//! including after the same request is delivered again.

mod common;

use atende_proto::v1 as pb;
use common::{Fixture, Spec};
use prost::Message as _;
use uuid::Uuid;

async fn send(f: &Fixture, service: Uuid, req: pb::RouteRequest) {
    let mut tx = f.pool().begin().await.unwrap();
    atende_store::outbox::enqueue(
        &mut tx,
        f.tenant,
        &req.conversation_id,
        &f.bus.subjects.route(f.tenant, service),
        // A fresh id each time: a redelivery, not a NATS-deduplicated duplicate.
        &Uuid::now_v7().to_string(),
        &req.encode_to_vec(),
        &[],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn redis_load(f: &Fixture, agent: Uuid) -> u32 {
    let p = f
        .client
        .clone()
        .get_presence(pb::GetPresenceRequest {
            tenant_id: f.tenant.to_string(),
            agent_id: agent.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .presence
        .unwrap();
    p.assigned + p.offered
}

async fn wait_load(f: &Fixture, agent: Uuid, load: u32) {
    atende_testkit::wait_until(&format!("agent load {load} in redis"), common::WAIT, || async {
        (redis_load(f, agent).await == load).then_some(())
    })
    .await;
}

/// What the session's finish writes: the assignment closed, the conversation finished.
async fn finish_in_postgres(f: &Fixture, conversation: Uuid) {
    let mut tx = f.pool().begin().await.unwrap();
    atende_store::routing::release_assignment(&mut tx, f.tenant, conversation, "finished")
        .await
        .unwrap();
    atende_store::conversations::set_status(&mut tx, conversation, "finished", None, Some("finished"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn release(f: &Fixture, conversation: Uuid, agent: Uuid, to: Option<Uuid>) -> pb::RouteRequest {
    pb::RouteRequest {
        tenant_id: f.tenant.to_string(),
        service_id: to.map(|s| s.to_string()).unwrap_or_default(),
        conversation_id: conversation.to_string(),
        channel_kind: pb::ChannelKind::Whatsapp as i32,
        release_agent_id: agent.to_string(),
        release_service_id: f.service.to_string(),
        release_reason: "finished".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_finish_frees_the_agent_once_and_he_is_given_the_next_queued_conversation_at_once() {
    let f = Fixture::new(Spec {
        agents: 1,
        max: 1,
        ..Spec::default()
    })
    .await;
    let agent = f.agents[0];
    f.set_presence(agent, true).await.unwrap();
    let first = f.arrive().await;
    assert_eq!(f.wait_status(first, "assigned").await, Some(agent));
    let second = f.arrive().await;
    wait_load(&f, agent, 1).await;
    assert_eq!(f.status(second).await.0, "queued", "the agent is full");

    finish_in_postgres(&f, first).await;
    send(&f, f.service, release(&f, first, agent, None)).await;
    assert_eq!(f.wait_status(second, "assigned").await, Some(agent));
    wait_load(&f, agent, 1).await;

    // The same release delivered again frees nothing: the agent's hold is now the second
    // conversation's, not the first's.
    send(&f, f.service, release(&f, first, agent, None)).await;
    f.router_sweeps(3).await;
    assert_eq!(redis_load(&f, agent).await, 1);
    assert_eq!(f.open_load(agent).await, 1);
    f.shutdown().await;
}

#[tokio::test]
async fn a_redelivered_transfer_never_frees_the_next_legs_hold_even_when_the_same_agent_has_it() {
    let f = Fixture::new(Spec {
        agents: 1,
        max: 2,
        ..Spec::default()
    })
    .await;
    let agent = f.agents[0];
    // A second service the same agent works in.
    let support = Uuid::now_v7();
    atende_store::admin::create_service(
        f.pool(),
        &atende_store::admin::NewService {
            id: support,
            tenant_id: f.tenant,
            name: "Support",
            policy: "least_loaded",
            offer_timeout_secs: 60,
            priority: 0,
        },
    )
    .await
    .unwrap();
    sqlx::query("INSERT INTO agent_services (tenant_id, agent_id, service_id, rotation_order) VALUES ($1, $2, $3, 1)")
        .bind(f.tenant)
        .bind(agent)
        .bind(support)
        .execute(f.pool())
        .await
        .unwrap();
    f.set_presence(agent, true).await.unwrap();
    let c = f.arrive().await;
    assert_eq!(f.wait_status(c, "assigned").await, Some(agent));

    // What the session's transfer writes: assignment closed, next leg in Support, queued.
    let mut tx = f.pool().begin().await.unwrap();
    atende_store::routing::release_assignment(&mut tx, f.tenant, c, "transferred")
        .await
        .unwrap();
    atende_store::legs::open_next_leg(
        &mut tx,
        f.tenant,
        c,
        "20261204999999",
        support,
        None,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    atende_store::conversations::set_status(&mut tx, c, "queued", None, Some("transferred"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut req = release(&f, c, agent, Some(support));
    req.release_reason = "transferred".into();
    send(&f, support, req.clone()).await;

    // The same agent takes the next leg in Support: one hold, in both stores.
    let (assigned_service, agent_now): (Option<Uuid>, Option<Uuid>) =
        atende_testkit::wait_until("the next leg assigned", common::WAIT, || async {
            let row: (String, Option<Uuid>, Option<Uuid>) =
                sqlx::query_as("SELECT status, service_id, agent_id FROM conversations WHERE id = $1")
                    .bind(c)
                    .fetch_one(f.pool())
                    .await
                    .ok()?;
            (row.0 == "assigned").then_some((row.1, row.2))
        })
        .await;
    assert_eq!((assigned_service, agent_now), (Some(support), Some(agent)));
    wait_load(&f, agent, 1).await;

    // Delivered again: the hold is for Support now, so nothing is freed.
    send(&f, support, req).await;
    f.router_sweeps(3).await;
    assert_eq!(redis_load(&f, agent).await, 1);
    assert_eq!(f.open_load(agent).await, 1);
    f.shutdown().await;
}
