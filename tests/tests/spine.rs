//! The spine, every hop real: a signed WhatsApp webhook → channel-adapter (durable) →
//! NATS → session (contact, conversation, protocol, message) → router (assignment in Redis
//! and Postgres) → gateway WebSocket push → the agent's reply over HTTP → session → NATS →
//! channel-adapter → the (fake) Graph API, checked against Meta's format. One trace id
//! from the webhook's traceparent to the agent's screen.

use atende_e2e::{Platform, DEADLINE};
use atende_testkit::whatsapp::text_message_webhook;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customer_message_reaches_an_agent_and_the_reply_reaches_whatsapp() {
    // Arrange: a tenant set up through AdminService, an agent online watching its socket.
    let p = Platform::start().await;
    let t = p.seed().await;
    let (token, mut socket) = p.online(&t).await;

    // Act: the customer writes.
    let body = text_message_webhook(
        &t.phone_number_id,
        "5511987654321",
        "Maria Souza",
        "wamid.SPINE1",
        "Oi, preciso de ajuda",
        atende_e2e::now_secs(),
    );
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let resp = p.post_webhook(&t, &body, Some(&traceparent)).await;
    assert_eq!(resp.status(), 200);

    // Assert: the agent is assigned the conversation and sees the message, in one trace.
    let assigned = socket.next_of("conversation.assigned").await;
    let conversation = &assigned["data"]["conversation"];
    assert_eq!(conversation["agent_id"], t.agent_id.as_str());
    assert_eq!(conversation["contact_name"], "Maria Souza");
    assert!(conversation["protocol"].as_str().unwrap().len() >= 14);
    assert_eq!(assigned["trace_id"], TRACE_ID, "one trace from webhook to push");
    let conversation_id = conversation["id"].as_str().unwrap().to_string();
    let message = socket
        .next_matching("message.created", |f| f["data"]["message"]["direction"] == "inbound")
        .await;
    assert_eq!(message["data"]["message"]["text"], "Oi, preciso de ajuda");
    assert_eq!(message["data"]["message"]["conversation_id"], conversation_id.as_str());

    // Act: the agent replies through the gateway.
    let reply = p
        .http
        .post(format!("{}/api/v1/conversations/{conversation_id}/messages", p.gateway))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "text": "Olá Maria!", "client_message_id": "c-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201, "{:?}", reply.text().await);

    // Assert: Meta's send endpoint received exactly one well-formed message — still one once
    // nothing is in flight anywhere (no outbox row, no pending or unacknowledged delivery).
    p.fake.wait_for_sends(1, DEADLINE).await;
    p.sandbox.wait_quiet(DEADLINE).await;
    let sends = p.fake.sent();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].phone_number_id, t.phone_number_id);
    assert_eq!(sends[0].token, t.access_token);
    assert_eq!(sends[0].body["to"], "5511987654321");
    assert_eq!(sends[0].body["type"], "text");
    assert_eq!(sends[0].body["text"]["body"], "Olá Maria!");

    // And the durable record agrees: one contact, one conversation, one open assignment,
    // the inbound message and the accepted reply, and a decision explaining the choice.
    let pool = &p.sandbox.pool;
    let accepted = atende_testkit::wait_until("reply accepted by the provider", DEADLINE, || async {
        let s: Option<String> = sqlx::query_scalar("SELECT status FROM messages WHERE direction = 'outbound'")
            .fetch_optional(pool)
            .await
            .unwrap();
        s.filter(|s| s == "accepted")
    })
    .await;
    assert_eq!(accepted, "accepted");
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM conversations),
                (SELECT count(*) FROM assignments WHERE released_at IS NULL), (SELECT count(*) FROM messages)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(counts, (1, 1, 1, 2));
    // "Why did this agent get it?" — the router answers from its decision log.
    let mut router = atende_proto::v1::router_service_client::RouterServiceClient::new(p.sandbox.grpc(&p.router_grpc));
    let explained = router
        .explain_conversation(atende_proto::v1::ExplainConversationRequest {
            tenant_id: t.tenant_id.clone(),
            conversation_id: conversation_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .decisions;
    let assign = explained
        .iter()
        .find(|d| d.decision == "assign")
        .expect("an assign decision");
    assert_eq!(assign.agent_id, t.agent_id);
    assert!(!assign.rule.is_empty());
    let why: serde_json::Value = serde_json::from_str(&assign.explanation_json).unwrap();
    assert!(
        why.to_string().contains(&t.agent_id),
        "candidates name the agent: {why}"
    );

    socket.close().await;
    p.stop().await;
}
