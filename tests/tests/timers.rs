//! The scheduler role fires durable timers: a timer that fell due reaches NATS on its subject,
//! once, carrying the timer's id as its dedupe id; one not yet due does not.

use atende_e2e::{Platform, DEADLINE};
use atende_store::timers::{self, NewTimer};
use futures::StreamExt;
use time::{Duration, OffsetDateTime};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_due_timer_reaches_nats_once_with_its_id_and_a_future_one_waits() {
    let p = Platform::start().await;
    let t = p.seed().await;
    let tenant: uuid::Uuid = t.tenant_id.parse().unwrap();
    let subjects = atende_bus::Subjects::new(&p.sandbox.config.namespace.prefix);
    let subject = subjects.event(tenant, "timer.test");
    let nats = async_nats::connect(&p.sandbox.config.nats.url).await.unwrap();
    let mut messages = nats.subscribe(subject.clone()).await.unwrap();

    // Its message: an event no agent's feed takes (the gateway's consumer acks it).
    let expired = prost::Message::encode_to_vec(&atende_proto::v1::DomainEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        tenant_id: t.tenant_id.clone(),
        occurred_at_ms: 0,
        kind: None,
    });
    // A timer that fell due an hour ago (nothing ran it) and one due tomorrow.
    let now = OffsetDateTime::now_utc();
    let mut tx = p.sandbox.pool.begin().await.unwrap();
    let due = timers::schedule(
        &mut tx,
        &NewTimer {
            tenant,
            kind: "window_expiry",
            key: "conversation-1",
            due_at: now - Duration::hours(1),
            subject: &subject,
            payload: &expired,
            order_key: "conversation-1",
        },
    )
    .await
    .unwrap();
    timers::schedule(
        &mut tx,
        &NewTimer {
            tenant,
            kind: "window_expiry",
            key: "conversation-2",
            due_at: now + Duration::days(1),
            subject: &subject,
            payload: &expired,
            order_key: "conversation-2",
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let msg = tokio::time::timeout(DEADLINE, messages.next())
        .await
        .expect("the due timer fires")
        .unwrap();
    assert_eq!(&msg.payload[..], &expired[..]);
    let id = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| v.to_string());
    assert_eq!(id, Some(format!("timer:{due}")), "headers: {:?}", msg.headers);
    // The scheduler is quiet once everything due is published: the other timer is pending.
    p.sandbox.wait_quiet(DEADLINE).await;
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM timers WHERE fired_at IS NULL")
        .fetch_one(&p.sandbox.pool)
        .await
        .unwrap();
    assert_eq!(pending, 1);
    let published: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE msg_id LIKE 'timer:%'")
        .fetch_one(&p.sandbox.pool)
        .await
        .unwrap();
    assert_eq!(published, 1, "fired once");
    p.stop().await;
}
