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
        lanes: 1,
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
    let processed = CancellationToken::new();
    let stop = CancellationToken::new();
    let run = {
        let (bus, pool, deliveries, processed) = (bus.clone(), sb.pool.clone(), deliveries.clone(), processed.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            consumer::run(bus, pool, spec("budgeted"), stop, move |d| {
                let n = deliveries.fetch_add(1, Ordering::SeqCst) + 1;
                assert_eq!(d.delivered, n, "deliveries are counted by JetStream");
                let processed = processed.clone();
                async move {
                    if n <= 80 {
                        Outcome::Retry("postgres is down".into())
                    } else {
                        processed.cancel();
                        Outcome::Ack
                    }
                }
            })
            .await
        })
    };
    tokio::time::timeout(DEADLINE, processed.cancelled())
        .await
        .expect("the message came back until it was processed");

    // Assert: its ack reaches JetStream (the consumer still runs), and nothing is left.
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream.get_consumer("budgeted").await.unwrap();
    let info = atende_testkit::wait_until("the ack recorded", DEADLINE, || {
        let mut consumer = consumer.clone();
        async move {
            let info = consumer.info().await.unwrap().clone();
            (info.num_ack_pending == 0 && info.num_pending == 0).then_some(info)
        }
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(deliveries.load(Ordering::SeqCst), 81);
    assert_eq!(info.config.max_deliver, -1, "the old budget was lifted");
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

#[tokio::test]
async fn one_partitions_retries_hold_up_only_its_own_lane_and_each_partition_keeps_its_order() {
    // Arrange: five messages of partition 1 and five of partition 2, interleaved.
    let sb = Sandbox::new().await;
    let bus = bus(&sb).await;
    let subject = bus.subjects.inbound(Uuid::now_v7(), ChannelKind::Whatsapp);
    for i in 1..=5 {
        for (key, partition) in [("a", "1"), ("b", "2")] {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(consumer::PARTITION_HEADER, partition);
            let id = format!("{key}{i}");
            bus.publish(subject.clone(), &id, id.clone().into(), headers)
                .await
                .unwrap();
        }
    }

    // Act: a1 fails transiently until every b has been handled; four lanes.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let done = CancellationToken::new();
    let run = {
        let (bus, pool, seen, done) = (bus.clone(), sb.pool.clone(), seen.clone(), done.clone());
        tokio::spawn(async move {
            let spec = ConsumerSpec {
                lanes: 4,
                ..spec("lanes")
            };
            consumer::run(bus, pool, spec, done.clone(), move |d| {
                let (seen, done) = (seen.clone(), done.clone());
                async move {
                    let id = String::from_utf8_lossy(&d.payload).to_string();
                    let mut seen = seen.lock().unwrap();
                    let bs = seen.iter().filter(|s| s.starts_with('b')).count();
                    if id == "a1" && bs < 5 {
                        return Outcome::Retry("a1's dependency is down".into());
                    }
                    seen.push(id);
                    if seen.len() == 10 {
                        done.cancel();
                    }
                    Outcome::Ack
                }
            })
            .await
        })
    };
    tokio::time::timeout(DEADLINE, done.cancelled())
        .await
        .expect("a1's retries held up the other partition");
    run.await.unwrap().unwrap();

    // Assert: every b passed a1 while it retried; each partition in its own order.
    let seen = seen.lock().unwrap().clone();
    let of = |k: char| seen.iter().filter(|s| s.starts_with(k)).cloned().collect::<Vec<_>>();
    assert_eq!(of('a'), ["a1", "a2", "a3", "a4", "a5"]);
    assert_eq!(of('b'), ["b1", "b2", "b3", "b4", "b5"]);
    assert_eq!(seen[5], "a1", "a1 went through only after the five b: {seen:?}");
    sb.cleanup().await;
}

/// Runs on one thread, so the consumer and a watcher task share it: while messages are
/// handled and settled, the watcher never finds a message's `consume` span current — a span
/// entered across an await would leak into every task polled meanwhile (their logs and
/// spans would join that message's trace).
#[test]
fn a_messages_span_never_becomes_current_in_another_task() {
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Arrange: twenty messages.
        let sb = Sandbox::new().await;
        let bus = bus(&sb).await;
        let subject = bus.subjects.inbound(Uuid::now_v7(), ChannelKind::Whatsapp);
        for i in 0..20 {
            let id = format!("m{i}");
            bus.publish(subject.clone(), &id, id.clone().into(), Default::default())
                .await
                .unwrap();
        }
        let done = CancellationToken::new();
        let leaked = Arc::new(AtomicI64::new(0));
        let watcher = {
            let (done, leaked) = (done.clone(), leaked.clone());
            tokio::spawn(async move {
                while !done.is_cancelled() {
                    if tracing::Span::current().metadata().map(|m| m.name()) == Some("consume") {
                        leaked.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::task::yield_now().await;
                }
            })
        };

        // Act: consume them all; each is poison, so settling it awaits the dead-letter insert
        // in Postgres (the task yields there, with the message's span in hand).
        let handled = Arc::new(AtomicI64::new(0));
        let stop = done.clone();
        let run = consumer::run(bus, sb.pool.clone(), spec("spans"), done.clone(), move |_| {
            let (handled, stop) = (handled.clone(), stop.clone());
            async move {
                if handled.fetch_add(1, Ordering::SeqCst) + 1 == 20 {
                    stop.cancel();
                }
                Outcome::Poison("a test message that can never succeed".into())
            }
        });
        tokio::time::timeout(DEADLINE, run).await.unwrap().unwrap();
        watcher.await.unwrap();

        // Assert
        assert_eq!(
            leaked.load(Ordering::SeqCst),
            0,
            "a consume span was current in the watcher"
        );
        sb.cleanup().await;
    });
}
