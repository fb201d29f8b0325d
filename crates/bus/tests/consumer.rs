//! The consumer loop against a real JetStream: a message that keeps failing transiently is
//! redelivered for as long as it takes (beyond any fixed delivery budget, also on a consumer
//! an earlier version created with one), and a poison message is terminated, recorded with its
//! tenant, and can be replayed through the outbox.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use atende_bus::consumer::{self, ConsumerSpec, Outcome, Redelivery};
use atende_bus::{Bus, StreamKind};
use atende_domain::channel::ChannelKind;
use atende_testkit::Sandbox;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(30);

async fn bus(sb: &Sandbox) -> Bus {
    let bus = Bus::connect(&sb.config.nats.url, &sb.config.namespace.prefix)
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();
    bus
}

fn spec(durable: &'static str) -> ConsumerSpec {
    ConsumerSpec {
        stream: StreamKind::Inbound,
        durable,
        filter: None,
        redelivery: Redelivery {
            ack_wait: Duration::from_secs(5),
            max_backoff: Duration::from_millis(5),
        },
    }
}

#[tokio::test]
async fn a_message_failing_longer_than_any_delivery_budget_is_still_processed_once_the_failure_ends() {
    // Arrange: a consumer an earlier version created with a budget of 50 deliveries.
    let sb = Sandbox::new().await;
    let bus = bus(&sb).await;
    let stream = bus
        .js
        .get_stream(bus.subjects.stream_name(StreamKind::Inbound))
        .await
        .unwrap();
    stream
        .create_consumer(pull::Config {
            durable_name: Some("budgeted".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            max_deliver: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    let tenant = Uuid::now_v7();
    bus.publish(
        bus.subjects.inbound(tenant, ChannelKind::Whatsapp),
        "m1",
        "payload".into(),
        Default::default(),
    )
    .await
    .unwrap();

    // Act: the dependency is "down" for the first 80 deliveries.
    let deliveries = Arc::new(AtomicI64::new(0));
    let acked = CancellationToken::new();
    let run = {
        let (bus, pool, deliveries, acked) = (bus.clone(), sb.pool.clone(), deliveries.clone(), acked.clone());
        tokio::spawn(async move {
            consumer::run(bus, pool, spec("budgeted"), acked.clone(), move |d| {
                let n = deliveries.fetch_add(1, Ordering::SeqCst) + 1;
                assert_eq!(d.delivered, n, "deliveries are counted by JetStream");
                let acked = acked.clone();
                async move {
                    if n <= 80 {
                        Outcome::Retry("postgres is down".into())
                    } else {
                        acked.cancel();
                        Outcome::Ack
                    }
                }
            })
            .await
        })
    };
    tokio::time::timeout(DEADLINE, acked.cancelled())
        .await
        .expect("the message came back until it was processed");
    run.await.unwrap().unwrap();

    // Assert
    assert_eq!(deliveries.load(Ordering::SeqCst), 81);
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream.get_consumer("budgeted").await.unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(info.config.max_deliver, -1, "the old budget was lifted");
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 0);
    sb.cleanup().await;
}

#[tokio::test]
async fn a_poison_message_is_recorded_with_its_tenant_and_a_replay_publishes_it_again() {
    // Arrange
    let sb = Sandbox::new().await;
    let bus = bus(&sb).await;
    let tenant = Uuid::now_v7();
    let subject = bus.subjects.inbound(tenant, ChannelKind::Whatsapp);
    bus.publish(subject.clone(), "bad", "not protobuf".into(), Default::default())
        .await
        .unwrap();

    // Act
    let stop = CancellationToken::new();
    let run = {
        let (bus, pool, stop) = (bus.clone(), sb.pool.clone(), stop.clone());
        tokio::spawn(async move {
            consumer::run(bus, pool, spec("poisoned"), stop.clone(), move |_| {
                let stop = stop.clone();
                async move {
                    stop.cancel();
                    Outcome::Poison("undecodable".into())
                }
            })
            .await
        })
    };
    tokio::time::timeout(DEADLINE, run).await.unwrap().unwrap().unwrap();
    let letters = atende_store::outbox::list_dead_letters(&sb.pool, Some(tenant), true, 0, 10)
        .await
        .unwrap();
    let mut tx = sb.pool.begin().await.unwrap();
    let other_tenant = atende_store::outbox::replay_dead_letter(&mut tx, letters[0].id, Some(Uuid::now_v7()))
        .await
        .unwrap();
    let replayed = atende_store::outbox::replay_dead_letter(&mut tx, letters[0].id, Some(tenant))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Assert
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].subject.as_str(), letters[0].reason.as_str()),
        (subject.as_str(), "undecodable")
    );
    assert_eq!(letters[0].payload, b"not protobuf");
    assert!(other_tenant.is_none(), "a tenant replays only its own dead letters");
    assert_eq!(replayed.unwrap().replays, 1);
    let queued: (String, Vec<u8>) = sqlx::query_as("SELECT subject, payload FROM outbox WHERE published_at IS NULL")
        .fetch_one(&sb.pool)
        .await
        .unwrap();
    assert_eq!(queued, (subject, b"not protobuf".to_vec()));
    assert!(atende_store::outbox::list_dead_letters(&sb.pool, None, true, 0, 10)
        .await
        .unwrap()
        .is_empty());
    sb.cleanup().await;
}
