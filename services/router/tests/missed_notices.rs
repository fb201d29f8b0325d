//! The pending-message check of offer_or_miss services (seed 003), on the routers' clock: a
//! lead an agent let pass is told — as a notice, not the chat — to the first Available agent
//! in rotation a day later, once; a lead that arrived with nobody online is looked at every
//! quarter of an hour until someone is Available, then told once.

mod common;

use std::time::Duration;

use atende_proto::v1 as pb;
use common::{Fixture, Spec};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(20);

fn notices(events: &[pb::DomainEvent]) -> Vec<pb::MissedLeadNotice> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::domain_event::Kind::MissedLeadNotice(n)) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

async fn wait_notices(f: &Fixture, n: usize) -> Vec<pb::MissedLeadNotice> {
    atende_testkit::wait_until("missed lead notices", DEADLINE, || async {
        let got = notices(&f.events("missed_lead.notice").await);
        (got.len() >= n).then_some(got)
    })
    .await
}

async fn due_and_told(f: &Fixture, c: Uuid) -> (time::OffsetDateTime, time::OffsetDateTime, Option<Uuid>) {
    sqlx::query_as("SELECT missed_at, notice_due_at, notified_agent_id FROM missed_leads WHERE conversation_id = $1")
        .bind(c)
        .fetch_one(f.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_lead_an_agent_let_pass_is_told_to_the_first_available_agent_a_day_later_once() {
    // Arrange: two agents online; the lead is offered to the first and his minute passes.
    let f = Fixture::new(Spec {
        policy: "offer_or_miss",
        offer_timeout_secs: 60,
        agents: 2,
        max: 2,
        ..Spec::default()
    })
    .await;
    for a in &f.agents {
        f.set_presence(*a, true).await.unwrap();
    }
    let c = f.arrive().await;
    let first = f.wait_status(c, "offered").await.unwrap();
    f.clock.advance(Duration::from_secs(61));
    f.wait_status(c, "missed").await;
    let (missed_at, due, told) = due_and_told(&f, c).await;
    assert_eq!(due - missed_at, time::Duration::hours(24));
    assert_eq!(told, None);

    // Act and assert: nothing before the day is out (full passes on the routers' clock)...
    f.router_sweeps(2).await;
    assert!(f.events("missed_lead.notice").await.is_empty());
    // ...then, a day later on the routers' clock, one notice to the agent first in rotation
    // (who missed it: offer_or_miss keeps a missing agent's place).
    f.clock.advance(Duration::from_secs(24 * 3600));
    let got = wait_notices(&f, 1).await;
    assert_eq!(got[0].agent_id, first.to_string());
    assert_eq!(got[0].missed_by_agent_id, first.to_string());
    let conversation = got[0].conversation.as_ref().unwrap();
    assert_eq!(
        (conversation.id.as_str(), conversation.status.as_str()),
        (c.to_string().as_str(), "missed")
    );
    assert_eq!(due_and_told(&f, c).await.2, Some(first));
    // The chat itself stays closed, and later passes tell nobody again.
    f.clock.advance(Duration::from_secs(24 * 3600));
    f.router_sweeps(2).await;
    assert_eq!(notices(&f.events("missed_lead.notice").await).len(), 1);
    assert_eq!(f.status(c).await.0, "missed");
    f.shutdown().await;
}

#[tokio::test]
async fn a_lead_nobody_was_online_for_waits_quarter_hours_until_someone_is_available() {
    // Arrange: the only agent is offline; the lead is missed at once.
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
    let (missed_at, due, _) = due_and_told(&f, c).await;
    assert_eq!(due - missed_at, time::Duration::minutes(15));

    // Act: a quarter of an hour passes with nobody Available: the check looks again later.
    f.clock.advance(Duration::from_secs(15 * 60));
    atende_testkit::wait_until("the notice postponed", DEADLINE, || async {
        (due_and_told(&f, c).await.1 > due).then_some(())
    })
    .await;
    assert!(f.events("missed_lead.notice").await.is_empty());

    // The agent comes online; at the next quarter hour he is told.
    let agent = f.agents[0];
    f.set_presence(agent, true).await.unwrap();
    f.clock.advance(Duration::from_secs(15 * 60));
    let got = wait_notices(&f, 1).await;

    // Assert
    assert_eq!(got[0].agent_id, agent.to_string());
    assert_eq!(got[0].missed_by_agent_id, "", "nobody was online to miss it");
    assert_eq!(due_and_told(&f, c).await.2, Some(agent));
    f.shutdown().await;
}
