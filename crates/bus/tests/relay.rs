//! The outbox relay against real Postgres and JetStream: several relays share the partitions
//! and each ordering key's rows reach the stream once and in order; pruning removes what is
//! past retention and nothing else.

use std::collections::HashMap;
use std::time::Duration;

use atende_bus::relay::{self, Retention};
use atende_bus::{Bus, StreamKind};
use atende_domain::channel::ChannelKind;
use atende_testkit::{wait_until, Sandbox};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const KEYS: usize = 12;
const PER_KEY: usize = 25;

fn retention() -> Retention {
    Retention {
        outbox: Duration::from_secs(24 * 3600),
        receipts: Duration::from_secs(8 * 24 * 3600),
        every: Duration::from_secs(3600),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_relays_publish_every_row_once_and_each_keys_rows_in_order() {
    // Arrange: three relays (as three replicas would run) on one outbox.
    let sb = Sandbox::new().await;
    let bus = Bus::connect(&sb.config.nats.url, &sb.config.namespace.prefix)
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();
    let stop = CancellationToken::new();
    let relays: Vec<_> = (0..3)
        .map(|_| tokio::spawn(relay::run(bus.clone(), sb.pool.clone(), retention(), stop.clone())))
        .collect();
    let tenant = Uuid::now_v7();
    let subject = bus.subjects.inbound(tenant, ChannelKind::Whatsapp);

    // Act: every key's rows are written one transaction after another, keys interleaved by
    // concurrent writers, while the relays run.
    let writers: Vec<_> = (0..KEYS)
        .map(|k| {
            let (pool, subject) = (sb.pool.clone(), subject.clone());
            tokio::spawn(async move {
                for i in 0..PER_KEY {
                    let mut tx = pool.begin().await.unwrap();
                    atende_store::outbox::enqueue(
                        &mut tx,
                        tenant,
                        &format!("key-{k}"),
                        &subject,
                        &format!("m-{k}-{i}"),
                        format!("{k}:{i}").as_bytes(),
                        &[],
                    )
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let pool = sb.pool.clone();
    wait_until("every row published", Duration::from_secs(20), || async {
        (atende_store::outbox::unpublished_count(&pool).await.ok()? == 0).then_some(())
    })
    .await;
    stop.cancel();
    for r in relays {
        r.await.unwrap();
    }

    // Assert: read the stream back in stream order.
    let stream = bus
        .js
        .get_stream(bus.subjects.stream_name(StreamKind::Inbound))
        .await
        .unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("reader".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer
        .fetch()
        .max_messages(KEYS * PER_KEY + 10)
        .messages()
        .await
        .unwrap();
    let mut seen: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut total = 0;
    while let Some(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), messages.next())
        .await
        .ok()
        .flatten()
    {
        let text = String::from_utf8(m.payload.to_vec()).unwrap();
        let (k, i) = text.split_once(':').unwrap();
        seen.entry(k.parse().unwrap()).or_default().push(i.parse().unwrap());
        total += 1;
    }
    assert_eq!(total, KEYS * PER_KEY, "every row exactly once");
    for k in 0..KEYS {
        assert_eq!(seen[&k], (0..PER_KEY).collect::<Vec<_>>(), "key {k} in commit order");
    }
    sb.cleanup().await;
}

#[tokio::test]
async fn pruning_removes_published_rows_and_receipts_past_retention_and_nothing_else() {
    // Arrange
    let sb = Sandbox::new().await;
    let acme = atende_testkit::fixtures::tenant_with_whatsapp(
        &sb.pool,
        atende_testkit::fixtures::ChannelSpec::new("106540352242922"),
    )
    .await;
    for (key, age) in [("old", "9 days"), ("recent", "6 days")] {
        sqlx::query(&format!(
            "INSERT INTO webhook_receipts (channel_id, provider_key, tenant_id, received_at)
             VALUES ($1, $2, $3, now() - interval '{age}')"
        ))
        .bind(acme.channel.id)
        .bind(key)
        .bind(acme.tenant)
        .execute(&sb.pool)
        .await
        .unwrap();
    }
    for (msg_id, published) in [
        ("published-long-ago", Some("2 days")),
        ("published-just-now", Some("1 minute")),
        ("never-published", None),
    ] {
        sqlx::query(&format!(
            "INSERT INTO outbox (tenant_id, subject, msg_id, payload, published_at)
             VALUES ($1, 's', $2, ''::bytea, {})",
            published.map_or("NULL".to_string(), |age| format!("now() - interval '{age}'"))
        ))
        .bind(acme.tenant)
        .bind(msg_id)
        .execute(&sb.pool)
        .await
        .unwrap();
    }

    // Act
    relay::prune(&sb.pool, retention(), &CancellationToken::new())
        .await
        .unwrap();

    // Assert
    let receipts: Vec<String> = sqlx::query_scalar("SELECT provider_key FROM webhook_receipts ORDER BY 1")
        .fetch_all(&sb.pool)
        .await
        .unwrap();
    let rows: Vec<String> = sqlx::query_scalar("SELECT msg_id FROM outbox ORDER BY 1")
        .fetch_all(&sb.pool)
        .await
        .unwrap();
    assert_eq!(
        receipts,
        vec!["recent"],
        "a receipt inside Meta's 7-day redelivery stays"
    );
    assert_eq!(rows, vec!["never-published", "published-just-now"]);
    sb.cleanup().await;
}
