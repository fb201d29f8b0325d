//! WhatsApp webhook intake against real Postgres and NATS: Meta's handshake, signed
//! deliveries made durable (receipt + outbox) and relayed to JetStream, redeliveries that
//! store nothing new, and bad input refused with nothing stored.
//!
//! Each test boots only the channel-adapter role in its own [`Sandbox`].

mod common;

use atende_proto::v1::{inbound_event, InboundEvent};
use atende_testkit::fixtures::{self, ChannelSpec};
use atende_testkit::wait_until;
use atende_testkit::whatsapp as wa;
use common::*;
use futures::StreamExt;
use prost::Message as _;
use uuid::Uuid;

#[tokio::test]
async fn the_verification_handshake_echoes_the_challenge_only_for_the_right_token() {
    // Arrange
    let adapter = Adapter::start().await;
    let query = |token: &str| {
        vec![
            ("hub.mode", "subscribe".to_string()),
            ("hub.verify_token", token.to_string()),
            ("hub.challenge", "1158201444".to_string()),
        ]
    };

    // Act
    let accepted = adapter
        .http
        .get(adapter.url())
        .query(&query(VERIFY_TOKEN))
        .send()
        .await
        .unwrap();
    let refused = adapter
        .http
        .get(adapter.url())
        .query(&query("not-the-token"))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.text().await.unwrap(), "1158201444");
    assert_eq!(refused.status(), 403);
    adapter.stop().await;
}

#[tokio::test]
async fn a_signed_text_webhook_is_stored_durably_and_relayed_to_jetstream() {
    // Arrange
    let adapter = Adapter::start().await;
    let nats = async_nats::connect(&adapter.sandbox.config.nats.url).await.unwrap();
    let mut inbound = nats
        .subscribe(format!("{}.atende.inbound.>", adapter.sandbox.id))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    let wamid = "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjBDMEE4RjY5";

    // Act
    let response = adapter
        .post_signed(&text_webhook(wamid, "Olá, quero um orçamento"))
        .await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(adapter.receipts().await, 1);
    assert_eq!(adapter.outbox_rows().await, 1);
    let published = tokio::time::timeout(DEADLINE, inbound.next())
        .await
        .expect("the relay publishes the event within the deadline")
        .expect("subscription open");
    assert_eq!(
        published.subject.as_str(),
        format!("{}.atende.inbound.{}.whatsapp", adapter.sandbox.id, adapter.tenant_id)
    );
    let event = InboundEvent::decode(published.payload.as_ref()).unwrap();
    assert_eq!(event.tenant_id, adapter.tenant_id.to_string());
    assert_eq!(event.channel_id, adapter.channel_id.to_string());
    let m = message_of(&event);
    assert_eq!(m.provider_message_id, wamid);
    assert_eq!(m.from_phone, CUSTOMER);
    assert_eq!(m.profile_name, "Maria Silva");
    assert_eq!(m.kind, "text");
    assert_eq!(m.text, "Olá, quero um orçamento");
    let pool = adapter.sandbox.pool.clone();
    wait_until("the outbox row marked published", DEADLINE, || async {
        let unpublished = atende_store::outbox::unpublished_count(&pool).await.unwrap();
        (unpublished == 0).then_some(())
    })
    .await;
    adapter.stop().await;
}

#[tokio::test]
async fn a_redelivered_webhook_is_answered_200_and_stores_nothing_new_even_after_jetstream_forgot_it() {
    // Arrange
    let adapter = Adapter::start().await;
    let body = text_webhook("wamid.REDELIVERED0001", "oi");
    assert_eq!(adapter.post_signed(&body).await.status(), 200);
    let pool = adapter.sandbox.pool.clone();
    wait_until("the first delivery relayed", DEADLINE, || async {
        (atende_store::outbox::unpublished_count(&pool).await.unwrap() == 0).then_some(())
    })
    .await;
    // Meta redelivers for days, long after JetStream's duplicate window: only Postgres remembers.
    let bus = atende_bus::Bus::connect(&adapter.sandbox.config.nats.url, &adapter.sandbox.id)
        .await
        .unwrap();
    let stream = bus
        .js
        .get_stream(bus.subjects.stream_name(atende_bus::StreamKind::Inbound))
        .await
        .unwrap();
    stream.purge().await.unwrap();

    // Act
    let again = adapter.post_signed(&body).await;

    // Assert
    assert_eq!(again.status(), 200);
    assert_eq!(adapter.receipts().await, 1);
    assert_eq!(adapter.outbox_rows().await, 1);
    adapter.stop().await;
}

#[tokio::test]
async fn two_concurrent_deliveries_of_one_webhook_store_exactly_one_event() {
    // Arrange
    let adapter = Adapter::start().await;
    let body = text_webhook("wamid.CONCURRENT0001", "oi de novo");

    // Act
    let (a, b) = tokio::join!(adapter.post_signed(&body), adapter.post_signed(&body));

    // Assert
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);
    assert_eq!(adapter.receipts().await, 1);
    assert_eq!(adapter.outbox_rows().await, 1);
    adapter.stop().await;
}

#[tokio::test]
async fn a_webhook_without_a_signature_is_refused_with_401_and_nothing_stored() {
    // Arrange
    let adapter = Adapter::start().await;

    // Act
    let response = adapter
        .post(&adapter.url(), text_webhook("wamid.NOSIG", "oi"), None)
        .await;

    // Assert
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "INVALID_SIGNATURE");
    assert_eq!((adapter.receipts().await, adapter.outbox_rows().await), (0, 0));
    adapter.stop().await;
}

#[tokio::test]
async fn a_webhook_signed_with_another_secret_is_refused_with_401_and_nothing_stored() {
    // Arrange
    let adapter = Adapter::start().await;
    let body = text_webhook("wamid.WRONGSIG", "oi");
    let forged = wa::sign(b"someone-elses-secret", &body);

    // Act
    let response = adapter.post(&adapter.url(), body, Some(forged)).await;

    // Assert
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "INVALID_SIGNATURE");
    assert_eq!((adapter.receipts().await, adapter.outbox_rows().await), (0, 0));
    adapter.stop().await;
}

#[tokio::test]
async fn a_signed_body_that_is_not_json_is_refused_with_400_and_nothing_stored() {
    // Arrange
    let adapter = Adapter::start().await;
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":["#.to_vec();

    // Act
    let response = adapter.post_signed(&body).await;

    // Assert
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "MALFORMED_PAYLOAD");
    assert_eq!((adapter.receipts().await, adapter.outbox_rows().await), (0, 0));
    adapter.stop().await;
}

#[tokio::test]
async fn a_webhook_for_an_unknown_channel_is_refused_with_404_and_nothing_stored() {
    // Arrange
    let adapter = Adapter::start().await;
    let body = text_webhook("wamid.UNKNOWNCHANNEL", "oi");
    let sig = wa::sign(APP_SECRET.as_bytes(), &body);

    // Act
    let unknown = adapter
        .post(
            &adapter.url_for(&Uuid::now_v7().to_string()),
            body.clone(),
            Some(sig.clone()),
        )
        .await;
    let not_a_uuid = adapter.post(&adapter.url_for("not-a-uuid"), body, Some(sig)).await;

    // Assert
    assert_eq!(unknown.status(), 404);
    assert_eq!(error_code(unknown).await, "UNKNOWN_CHANNEL");
    assert_eq!(not_a_uuid.status(), 404);
    assert_eq!(error_code(not_a_uuid).await, "UNKNOWN_CHANNEL");
    assert_eq!((adapter.receipts().await, adapter.outbox_rows().await), (0, 0));
    adapter.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_and_nothing_stored() {
    // Arrange
    let adapter = Adapter::start_with(|cfg| cfg.channel_adapter.body_limit_bytes = 2048).await;
    let body = text_webhook("wamid.TOOLARGE", &"a".repeat(4096));
    assert!(body.len() > 4096);

    // Act
    let response = adapter.post_signed(&body).await;

    // Assert
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "PAYLOAD_TOO_LARGE");
    assert_eq!((adapter.receipts().await, adapter.outbox_rows().await), (0, 0));
    adapter.stop().await;
}

#[tokio::test]
async fn a_message_of_an_unknown_type_is_kept_as_unsupported() {
    // Arrange
    let adapter = Adapter::start().await;
    let body = wa::unknown_type_webhook(
        PHONE_NUMBER_ID,
        CUSTOMER,
        "Maria Silva",
        "wamid.HOLOGRAM",
        "hologram",
        1_763_700_000,
    );

    // Act
    let response = adapter.post_signed(&body).await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(adapter.receipts().await, 1);
    let events = adapter.outbox_events().await;
    assert_eq!(events.len(), 1);
    let m = message_of(&events[0]);
    assert_eq!(m.provider_message_id, "wamid.HOLOGRAM");
    assert_eq!(m.kind, "unsupported");
    assert!(
        m.raw_json.contains("hologram"),
        "the raw message is kept: {}",
        m.raw_json
    );
    adapter.stop().await;
}

const OTHER_NUMBER: &str = "106540352242999";

async fn add_channel(pool: &sqlx::PgPool, tenant_id: Uuid, account: &str) -> Uuid {
    let channel = ChannelSpec {
        name: "WhatsApp Rio",
        app_secret: "another-app-secret",
        verify_token: "another-verify-token",
        access_token: "EAAG-other",
        ..ChannelSpec::new(account)
    };
    fixtures::whatsapp_channel(pool, tenant_id, channel).await.id
}

fn multi_batch() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/whatsapp/multi_batch.json"
    ))
    .unwrap()
}

/// `(channel_id, provider key)` of every receipt, ordered by key.
async fn receipt_keys(pool: &sqlx::PgPool) -> Vec<(Uuid, String)> {
    sqlx::query_as("SELECT channel_id, provider_key FROM webhook_receipts ORDER BY provider_key")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn items_of_one_batch_go_to_the_channel_of_their_phone_number_within_the_tenant() {
    // Arrange
    let adapter = Adapter::start().await;
    let rio = add_channel(&adapter.sandbox.pool, adapter.tenant_id, OTHER_NUMBER).await;

    // Act
    let response = adapter.post_signed(&multi_batch()).await;

    // Assert
    assert_eq!(response.status(), 200);
    let sp = adapter.channel_id;
    assert_eq!(
        receipt_keys(&adapter.sandbox.pool).await,
        vec![
            (sp, "m:wamid.M1".to_string()),
            (sp, "m:wamid.M2".to_string()),
            (rio, "m:wamid.M3".to_string()),
            (sp, "s:wamid.OUT9:delivered".to_string()),
        ]
    );
    let routed: Vec<(String, String)> = adapter
        .outbox_events()
        .await
        .iter()
        .map(|e| {
            let id = match e.item.as_ref() {
                Some(inbound_event::Item::Message(m)) => m.provider_message_id.clone(),
                Some(inbound_event::Item::Status(s)) => format!("{}:{}", s.provider_message_id, s.status),
                None => panic!("event without an item"),
            };
            (id, e.channel_id.clone())
        })
        .collect();
    assert_eq!(
        routed,
        vec![
            ("wamid.M1".to_string(), sp.to_string()),
            ("wamid.M2".to_string(), sp.to_string()),
            ("wamid.OUT9:delivered".to_string(), sp.to_string()),
            ("wamid.M3".to_string(), rio.to_string()),
        ]
    );
    adapter.stop().await;
}

#[tokio::test]
async fn an_item_for_a_number_of_another_tenant_is_skipped_and_the_rest_stored() {
    // Arrange
    let adapter = Adapter::start().await;
    let other_tenant = fixtures::tenant(&adapter.sandbox.pool, "Other", "other").await;
    add_channel(&adapter.sandbox.pool, other_tenant, OTHER_NUMBER).await;

    // Act
    let response = adapter.post_signed(&multi_batch()).await;

    // Assert
    assert_eq!(response.status(), 200);
    let keys: Vec<String> = receipt_keys(&adapter.sandbox.pool)
        .await
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    assert_eq!(keys, vec!["m:wamid.M1", "m:wamid.M2", "s:wamid.OUT9:delivered"]);
    let events = adapter.outbox_events().await;
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.tenant_id == adapter.tenant_id.to_string()));
    adapter.stop().await;
}

#[tokio::test]
async fn a_template_status_webhook_updates_the_template_on_every_number_of_its_account() {
    // Arrange: the tenant's number belongs to business account 102290129340398, whose
    // template `lembrete_pagamento` the last sync saw as PENDING.
    let adapter = Adapter::start().await;
    let pool = &adapter.sandbox.pool;
    atende_store::templates::set_business_account(pool, adapter.tenant_id, adapter.channel_id, "102290129340398")
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    atende_store::templates::replace_all(
        &mut tx,
        adapter.tenant_id,
        adapter.channel_id,
        &[atende_store::templates::Listed {
            provider_template_id: "1279829343219734".into(),
            name: "lembrete_pagamento".into(),
            language: "pt_BR".into(),
            category: "UTILITY".into(),
            status: "PENDING".into(),
            components: serde_json::json!([{ "type": "BODY", "text": "Olá {{1}}" }]),
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let status = || async {
        atende_store::templates::get(
            pool,
            adapter.tenant_id,
            adapter.channel_id,
            "lembrete_pagamento",
            "pt_BR",
        )
        .await
        .unwrap()
        .unwrap()
        .status
    };

    // Act: Meta says it was approved (twice: a redelivery).
    let body = include_bytes!("fixtures/whatsapp/template_status_update.json");
    assert_eq!(adapter.post_signed(body).await.status(), 200);
    assert_eq!(adapter.post_signed(body).await.status(), 200);

    // Assert: approved, and nothing queued for the session role (it is not a message).
    assert_eq!(status().await, "APPROVED");
    assert_eq!(adapter.outbox_rows().await, 0);
    adapter.stop().await;
}
