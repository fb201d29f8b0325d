//! Meta re-delivers webhooks for up to 7 days; JetStream's duplicate window lasts minutes.
//! A webhook delivered again — seconds later, or after the window (simulated by purging the
//! stream and republishing the event with a fresh message id) — stores nothing new and
//! pushes nothing new.

use atende_e2e::Platform;
use atende_testkit::whatsapp::text_message_webhook;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_delivered_again_stores_nothing_new_and_pushes_nothing_new() {
    // Arrange: one message delivered and pushed to the agent.
    let p = Platform::start().await;
    let t = p.seed().await;
    let (_, mut socket) = p.online(&t).await;
    let first = text_message_webhook(
        &t.phone_number_id,
        "5511987654321",
        "Maria",
        "wamid.REDELIVER1",
        "primeira",
        1_763_700_000,
    );
    assert_eq!(p.post_webhook(&t, &first, None).await.status(), 200);
    socket.next_of("conversation.assigned").await;
    socket
        .next_matching("message.created", |f| f["data"]["message"]["text"] == "primeira")
        .await;

    // Act 1: Meta retries the same webhook seconds later.
    assert_eq!(p.post_webhook(&t, &first, None).await.status(), 200);

    // Act 2: days later — past JetStream's duplicate window: purge the streams and
    // redeliver both the webhook and the already-published event under a new message id.
    let bus = atende_bus::Bus::connect(&p.sandbox.config.nats.url, &p.sandbox.id)
        .await
        .unwrap();
    let inbound = bus.subjects.stream_name(atende_bus::StreamKind::Inbound);
    let (subject, payload): (String, Vec<u8>) = sqlx::query_as(
        "SELECT subject, payload FROM outbox WHERE subject LIKE '%.atende.inbound.%' ORDER BY id LIMIT 1",
    )
    .fetch_one(&p.sandbox.pool)
    .await
    .unwrap();
    bus.js.get_stream(&inbound).await.unwrap().purge().await.unwrap();
    assert_eq!(p.post_webhook(&t, &first, None).await.status(), 200);
    bus.publish(
        subject,
        "republished-after-the-window",
        payload.into(),
        Default::default(),
    )
    .await
    .unwrap();

    // A different message afterwards is the sentinel: once it is pushed, every earlier
    // delivery has been processed (one consumer, in order).
    let second = text_message_webhook(
        &t.phone_number_id,
        "5511987654321",
        "Maria",
        "wamid.REDELIVER2",
        "segunda",
        1_763_700_100,
    );
    assert_eq!(p.post_webhook(&t, &second, None).await.status(), 200);
    socket
        .next_matching("message.created", |f| f["data"]["message"]["text"] == "segunda")
        .await;

    // Assert: one message, one receipt and one inbound event per provider id; one push.
    let pool = &p.sandbox.pool;
    let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap() };
    let messages = count("SELECT count(*) FROM messages").await;
    let receipts = count("SELECT count(*) FROM webhook_receipts").await;
    let inbound_rows = count("SELECT count(*) FROM outbox WHERE subject LIKE '%.atende.inbound.%'").await;
    let conversations = count("SELECT count(*) FROM conversations").await;
    assert_eq!((messages, receipts, inbound_rows, conversations), (2, 2, 2, 1));
    let pushes_of_first = socket
        .seen
        .iter()
        .filter(|f| f["type"] == "message.created" && f["data"]["message"]["text"] == "primeira")
        .count();
    assert_eq!(pushes_of_first, 1, "frames: {:?}", socket.seen);

    socket.close().await;
    p.stop().await;
}
