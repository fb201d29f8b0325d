//! Acknowledged means durable: webhooks answered 200, then `kill -9` of the whole process
//! (wherever each message was — outbox, JetStream, mid-consumer), then a restart: every
//! message is stored exactly once and nothing acknowledged is lost. Meta's retries of the
//! same webhooks afterwards change nothing.

mod common;

use std::process::Command;
use std::time::Duration;

use atende_testkit::whatsapp::{sign, text_message_webhook};
use atende_testkit::Sandbox;
use common::{ready_roles, spawn_all, Ready};

const MESSAGES: usize = 40;

fn addr(ready: &[Ready], role: &str) -> (String, Option<String>) {
    let r = ready.iter().find(|r| r.role == role).expect("role");
    (r.grpc.clone(), r.http.clone())
}

/// POSTs each body signed with the channel's secret, asserting each is acknowledged (200).
async fn post_all_acknowledged(http: &reqwest::Client, url: &str, bodies: &[Vec<u8>]) {
    for body in bodies {
        let resp = http
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sign(b"kill-secret", body))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_webhooks_survive_kill_9_and_are_stored_exactly_once() {
    // Arrange: the platform as a real process, a tenant set up through AdminService.
    let sb = Sandbox::new().await;
    let mut child = spawn_all(&sb);
    let ready = ready_roles(&mut child);
    let (session, _) = addr(&ready, "session");
    let (_, adapter) = addr(&ready, "channel-adapter");
    let adapter = adapter.expect("adapter http");
    let seeded = atende_testkit::fixtures::seed_through_admin(&sb, &session, "kill-secret", "token").await;
    let phone_number_id = seeded.phone_number_id.clone();

    // Act: customers write; each webhook is acknowledged; then the process is killed -9.
    let http = reqwest::Client::new();
    let bodies: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| {
            let wa_id = format!("55119{:08}", 10_000_000 + i);
            text_message_webhook(
                &phone_number_id,
                &wa_id,
                "Cliente",
                &format!("wamid.KILL{i}"),
                &format!("mensagem {i}"),
                1_763_700_000,
            )
        })
        .collect();
    post_all_acknowledged(
        &http,
        &format!("http://{adapter}/webhooks/whatsapp/{}", seeded.channel_id),
        &bodies,
    )
    .await;
    let killed = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;

    // Assert: after a restart every acknowledged message is stored, once.
    let mut child = spawn_all(&sb);
    let ready = ready_roles(&mut child);
    let pool = &sb.pool;
    atende_testkit::wait_until(
        "every acknowledged message stored after the restart",
        Duration::from_secs(30),
        || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
                .fetch_one(pool)
                .await
                .unwrap();
            (n as usize >= MESSAGES).then_some(())
        },
    )
    .await;
    // Meta retries them all anyway: nothing new.
    let (_, adapter) = addr(&ready, "channel-adapter");
    post_all_acknowledged(
        &http,
        &format!("http://{}/webhooks/whatsapp/{}", adapter.unwrap(), seeded.channel_id),
        &bodies,
    )
    .await;
    atende_testkit::wait_until("outbox drained", Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(pool)
            .await
            .unwrap();
        (n == 0).then_some(())
    })
    .await;
    let (messages, distinct, conversations, receipts): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages), (SELECT count(DISTINCT provider_message_id) FROM messages),
                (SELECT count(*) FROM conversations), (SELECT count(*) FROM webhook_receipts)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (messages, distinct, conversations, receipts),
        (MESSAGES as i64, MESSAGES as i64, MESSAGES as i64, MESSAGES as i64)
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    sb.cleanup().await;
}
