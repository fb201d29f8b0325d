//! Push without gaps: an agent's socket shows the agent's feed, numbered per agent. A client
//! that reconnects with the last number it saw gets exactly what it missed, in order, then
//! live frames — even when the only gateway was down while it happened — and a client whose
//! number the feed cannot resume from is told to reload.

use atende_e2e::{AgentSocket, Platform, Tenant, DEADLINE};
use atende_testkit::wait_until;
use atende_testkit::whatsapp::text_message_webhook;
use serde_json::Value;

const CUSTOMER: &str = "5511987654321";

async fn customer_writes(p: &Platform, t: &Tenant, n: usize) {
    let body = text_message_webhook(
        &t.phone_number_id,
        CUSTOMER,
        "Maria",
        &format!("wamid.PUSH{n:04}"),
        &format!("mensagem {n}"),
        atende_e2e::now_secs(),
    );
    assert_eq!(p.post_webhook(t, &body, None).await.status(), 200);
}

fn seq(frame: &Value) -> u64 {
    frame["seq"].as_u64().expect("seq")
}

/// The agent's feed head, as Postgres has it.
async fn head(p: &Platform, t: &Tenant) -> i64 {
    sqlx::query_scalar("SELECT COALESCE((SELECT last_seq FROM agent_feed_heads WHERE agent_id = $1::uuid), 0)")
        .bind(&t.agent_id)
        .fetch_one(&p.sandbox.pool)
        .await
        .unwrap()
}

/// The next `n` frames.
async fn frames(socket: &mut AgentSocket, n: usize) -> Vec<Value> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(socket.next().await);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_events_while_away_and_the_gateway_down_arrive_exactly_once_in_order_on_reconnect() {
    // Arrange: Ana is online and has the customer's conversation.
    let mut p = Platform::start().await;
    let t = p.seed().await;
    let (token, mut socket) = p.online(&t).await;
    customer_writes(&p, &t, 0).await;
    socket.next_of("conversation.assigned").await;
    let first = socket.next_of("message.created").await;
    let last_seen = seq(&first);
    socket.close().await;

    // Act: the gateway goes down; the customer writes twenty times; it comes back.
    p.stop_gateway().await;
    for n in 1..=20 {
        customer_writes(&p, &t, n).await;
    }
    p.start_gateway().await;
    let mut socket = p.socket_after(&token, Some(last_seen)).await;
    let got = frames(&mut socket, 20).await;

    // Assert: the twenty, numbered right after the last one seen, in the customer's order.
    assert_eq!(socket.seen[0]["type"], "hello");
    assert_eq!(seq(&socket.seen[0]), last_seen);
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f["type"], "message.created", "{f}");
        assert_eq!(seq(f), last_seen + 1 + i as u64, "{f}");
        assert_eq!(f["data"]["message"]["text"], format!("mensagem {}", i + 1), "{f}");
    }
    // And the feed holds nothing the socket did not give: its end is the twentieth.
    let end = wait_until("the feed's end", DEADLINE, || async {
        let h = head(&p, &t).await;
        (h >= (last_seen + 20) as i64).then_some(h)
    })
    .await;
    assert_eq!(end, (last_seen + 20) as i64);

    // Live frames follow on the same socket.
    customer_writes(&p, &t, 21).await;
    let live = socket.next_of("message.created").await;
    assert_eq!(seq(&live), last_seen + 21);
    socket.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_number_the_feed_cannot_resume_from_gets_a_resync_and_then_live_frames() {
    let p = Platform::start().await;
    let t = p.seed().await;
    let (token, mut socket) = p.online(&t).await;
    customer_writes(&p, &t, 0).await;
    socket.next_of("message.created").await;
    socket.close().await;
    let end = head(&p, &t).await as u64;

    // A number from the future (another database, a client bug): reload, then live.
    let mut ahead = p.socket_after(&token, Some(end + 1_000)).await;
    let resync = ahead.next_of("resync").await;
    assert_eq!(seq(&resync), end);
    customer_writes(&p, &t, 1).await;
    assert_eq!(seq(&ahead.next_of("message.created").await), end + 1);
    ahead.close().await;

    // A number whose frames were pruned (older than the retention): reload too.
    sqlx::query("DELETE FROM agent_feed WHERE agent_id = $1::uuid AND seq <= 2")
        .bind(&t.agent_id)
        .execute(&p.sandbox.pool)
        .await
        .unwrap();
    let mut old = p.socket_after(&token, Some(0)).await;
    old.next_of("resync").await;
    old.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_windows_band_changes_reach_the_agent_when_their_timers_fire() {
    // Arrange: Ana has the customer's conversation; the customer wrote just now.
    let p = Platform::start().await;
    let t = p.seed().await;
    let (_token, mut socket) = p.online(&t).await;
    customer_writes(&p, &t, 0).await;
    let assigned = socket.next_of("conversation.assigned").await;
    let conversation = assigned["data"]["conversation"]["id"].as_str().unwrap().to_string();

    // The three band changes are timers 8, 16 and 22 hours after the customer's message.
    let due: Vec<(String, f64)> = wait_until("the band timers", DEADLINE, || async {
        let rows: Vec<(String, f64)> = sqlx::query_as(
            "SELECT t.key, extract(epoch FROM t.due_at - c.last_inbound_at)::float8 / 3600
               FROM timers t JOIN conversations c ON c.id = $1::uuid
              WHERE t.kind = 'window_band' AND t.fired_at IS NULL ORDER BY t.due_at",
        )
        .bind(&conversation)
        .fetch_all(&p.sandbox.pool)
        .await
        .unwrap();
        (rows.len() == 3).then_some(rows)
    })
    .await;
    let hours: Vec<f64> = due.iter().map(|(_, h)| h.round()).collect();
    assert_eq!(hours, [8.0, 16.0, 22.0], "{due:?}");
    assert!(due[0].0.ends_with(":yellow") && due[2].0.ends_with(":black"), "{due:?}");

    // Act: time passes for the first one (its due moment is moved to now).
    sqlx::query("UPDATE timers SET due_at = now() WHERE key = $1")
        .bind(&due[0].0)
        .execute(&p.sandbox.pool)
        .await
        .unwrap();

    // Assert: the agent's socket shows the new band, and the next ones still wait.
    let frame = socket.next_of("conversation.window").await;
    assert_eq!(frame["data"]["conversation_id"], conversation.as_str());
    assert_eq!(frame["data"]["band"], "yellow");
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM timers WHERE kind = 'window_band' AND fired_at IS NULL")
            .fetch_one(&p.sandbox.pool)
            .await
            .unwrap();
    assert_eq!(pending, 2);
    socket.close().await;
    p.stop().await;
}
