//! Floods and bad bytes are cheap to refuse: unknown channel ids are remembered as unknown,
//! clients and channels over their rate get 429 with Retry-After, and a body that is not
//! UTF-8 is refused with 400 and nothing stored. Channel credentials are sealed at rest.

mod common;

use atende_testkit::whatsapp as wa;
use common::*;
use uuid::Uuid;

#[tokio::test]
async fn an_unknown_channel_id_is_remembered_as_unknown_without_asking_the_database_again() {
    // Arrange
    let adapter = Adapter::start().await;
    let forged_id = Uuid::now_v7();
    let body = text_webhook("wamid.FLOOD1", "oi");
    let sig = wa::sign(APP_SECRET.as_bytes(), &body);
    let first = adapter
        .post(
            &adapter.url_for(&forged_id.to_string()),
            body.clone(),
            Some(sig.clone()),
        )
        .await;

    // Act: the id starts to exist in the database right after the first refusal.
    sqlx::query(
        "INSERT INTO channels (id, tenant_id, kind, name, provider_account_id, app_secret, verify_token, access_token)
         SELECT $1, tenant_id, kind, 'late', 'late-account', app_secret, verify_token, access_token FROM channels LIMIT 1",
    )
    .bind(forged_id)
    .execute(&adapter.sandbox.pool)
    .await
    .unwrap();
    let second = adapter
        .post(&adapter.url_for(&forged_id.to_string()), body, Some(sig))
        .await;

    // Assert: the second answer came from the negative cache, not from a query.
    assert_eq!(first.status(), 404);
    assert_eq!(second.status(), 404);
    assert_eq!(error_code(second).await, "UNKNOWN_CHANNEL");
    assert_eq!(adapter.receipts().await, 0);
    adapter.stop().await;
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after_and_nothing_is_stored() {
    // Arrange
    let adapter = Adapter::start_with(|cfg| cfg.limits.webhook_per_ip_per_sec = 2).await;

    // Act
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..3 {
        let body = text_webhook(&format!("wamid.RATE{i}"), "oi");
        let resp = adapter.post_signed(&body).await;
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(error_code(resp).await, "RATE_LIMITED");
        }
    }

    // Assert
    assert_eq!(statuses, vec![200, 200, 429]);
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(adapter.receipts().await, 2);
    adapter.stop().await;
}

#[tokio::test]
async fn a_channel_over_its_rate_gets_429() {
    let adapter = Adapter::start_with(|cfg| cfg.limits.webhook_per_channel_per_sec = 1).await;
    let first = adapter.post_signed(&text_webhook("wamid.CH1", "oi")).await;
    let second = adapter.post_signed(&text_webhook("wamid.CH2", "oi")).await;
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 429));
    assert!(second.headers().contains_key("retry-after"));
    adapter.stop().await;
}

#[tokio::test]
async fn a_signed_body_that_is_not_utf8_is_refused_with_400_and_nothing_stored() {
    // Arrange: valid JSON structure, but an unknown field holds bytes that are not UTF-8.
    let adapter = Adapter::start().await;
    let mut body = text_webhook("wamid.UTF8", "oi");
    let close = body.iter().rposition(|b| *b == b'}').unwrap();
    body.splice(close..close, b",\"x_unknown\":\"\xff\xfe\"".iter().copied());

    // Act
    let resp = adapter.post_signed(&body).await;

    // Assert
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp).await, "MALFORMED_PAYLOAD");
    assert_eq!(adapter.receipts().await, 0);
    assert_eq!(adapter.outbox_rows().await, 0);
    adapter.stop().await;
}

#[tokio::test]
async fn the_database_holds_no_plaintext_channel_credential() {
    // Arrange: the fixture channel was stored the way AdminService stores one.
    let adapter = Adapter::start().await;

    // Act
    let row: (String, String, String) =
        sqlx::query_as("SELECT app_secret, verify_token, access_token FROM channels WHERE id = $1")
            .bind(adapter.channel_id)
            .fetch_one(&adapter.sandbox.pool)
            .await
            .unwrap();
    let dump: String = sqlx::query_scalar("SELECT string_agg(t::text, ' ') FROM channels t")
        .fetch_one(&adapter.sandbox.pool)
        .await
        .unwrap();

    // Assert: sealed, yet the webhook still verifies with the real secret.
    for (stored, plain) in [(&row.0, APP_SECRET), (&row.1, VERIFY_TOKEN), (&row.2, "EAAG-test")] {
        assert!(stored.starts_with("sealed:v1:dev:"), "{stored}");
        assert!(!dump.contains(plain), "plaintext {plain} in the database");
    }
    let resp = adapter.post_signed(&text_webhook("wamid.SEALED", "oi")).await;
    assert_eq!(resp.status(), 200);
    adapter.stop().await;
}
