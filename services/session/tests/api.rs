//! `SessionService` over real gRPC: an agent's reply in a conversation it owns is stored
//! `pending` with its outbound job in the outbox and is idempotent on `client_message_id`;
//! other agents and empty texts are refused with stable codes; history pages with tokens.

use std::time::Duration;

use atende_domain::channel::ChannelKind;
use atende_domain::ErrorCode;
use atende_proto::v1::{self as pb, session_service_client::SessionServiceClient, OutboundMessage};
use atende_testkit::fixtures::{self, ChannelSpec, RunningRole};
use atende_testkit::Sandbox;
use prost::Message as _;
use uuid::Uuid;

const CUSTOMER: &str = "5511987654321";
const DEADLINE: Duration = Duration::from_secs(10);

/// A session role with a conversation assigned to `owner`; `other` is a second agent.
struct Harness {
    sandbox: Sandbox,
    role: RunningRole,
    client: SessionServiceClient<atende_runtime::AuthedChannel>,
    subjects: atende_bus::Subjects,
    tenant_id: Uuid,
    channel_id: Uuid,
    conversation_id: Uuid,
    owner: Uuid,
    other: Uuid,
}

impl Harness {
    async fn start() -> Harness {
        let sandbox = Sandbox::new().await;
        let pool = &sandbox.pool;
        let acme = fixtures::tenant_with_whatsapp(pool, ChannelSpec::new("106540352242922")).await;
        let (tenant_id, service_id, channel_id) = (acme.tenant, acme.service, acme.channel.id);
        let owner = fixtures::agent(pool, tenant_id, "Ana", &[service_id], 3).await;
        let other = fixtures::agent(pool, tenant_id, "Bruno", &[service_id], 3).await;
        let contact_id = fixtures::contact_with_phone(pool, tenant_id, "Maria Silva", CUSTOMER).await;
        let conversation_id = fixtures::conversation(
            pool,
            tenant_id,
            contact_id,
            channel_id,
            Some(service_id),
            "assigned",
            Some(owner),
        )
        .await;
        let role = RunningRole::start(|stop| atende_session::build(&sandbox.config, stop)).await;
        let client = SessionServiceClient::new(sandbox.grpc(role.started.grpc_addr));
        let subjects = atende_bus::Subjects::new(&sandbox.config.namespace.prefix);
        Harness {
            sandbox,
            role,
            client,
            subjects,
            tenant_id,
            channel_id,
            conversation_id,
            owner,
            other,
        }
    }

    fn send(&self, agent: Uuid, text: &str, client_message_id: &str) -> pb::SendMessageRequest {
        pb::SendMessageRequest {
            tenant_id: self.tenant_id.to_string(),
            conversation_id: self.conversation_id.to_string(),
            agent_id: agent.to_string(),
            text: text.to_string(),
            client_message_id: client_message_id.to_string(),
            reply_to_message_id: String::new(),
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.sandbox.pool).await.unwrap()
    }

    async fn stop(self) {
        drop(self.client);
        self.role.stop(DEADLINE).await;
        self.sandbox.cleanup().await;
    }
}

#[tokio::test]
async fn the_owning_agents_reply_is_stored_pending_and_queued_for_delivery_once() {
    // Arrange
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let request = h.send(h.owner, "Olá Maria, como posso ajudar?", "client-msg-1");

    // Act
    let first = client
        .send_message(request.clone())
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    let retried = client
        .send_message(request)
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();

    // Assert
    assert_eq!(first.direction, "outbound");
    assert_eq!(first.status, "pending");
    assert_eq!(first.text, "Olá Maria, como posso ajudar?");
    assert_eq!(first.agent_id, h.owner.to_string());
    assert_eq!(
        retried.id, first.id,
        "a retry with the same client id returns the first message"
    );
    let stored: Vec<(Uuid, String, String)> = sqlx::query_as("SELECT id, status, direction FROM messages")
        .fetch_all(&h.sandbox.pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        vec![(first.id.parse().unwrap(), "pending".to_string(), "outbound".to_string())]
    );
    let jobs: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT msg_id, payload FROM outbox WHERE subject = $1")
        .bind(h.subjects.outbound(h.tenant_id, ChannelKind::Whatsapp))
        .fetch_all(&h.sandbox.pool)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "one outbound job for the message");
    assert_eq!(jobs[0].0, format!("out:{}", first.id));
    let job = OutboundMessage::decode(jobs[0].1.as_slice()).unwrap();
    assert_eq!(job.message_id, first.id);
    assert_eq!(job.channel_id, h.channel_id.to_string());
    assert_eq!(job.conversation_id, h.conversation_id.to_string());
    assert_eq!(job.to, CUSTOMER);
    assert_eq!(job.text, "Olá Maria, como posso ajudar?");
    let created = h
        .count(&format!(
            "SELECT count(*) FROM outbox WHERE subject = '{}'",
            h.subjects.event(h.tenant_id, "message.created")
        ))
        .await;
    assert_eq!(created, 1);
    h.stop().await;
}

#[tokio::test]
async fn another_agent_cannot_reply_in_a_conversation_it_does_not_own() {
    // Arrange
    let h = Harness::start().await;
    let mut client = h.client.clone();

    // Act
    let result = client.send_message(h.send(h.other, "posso ajudar?", "")).await;

    // Assert
    let status = result.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        atende_runtime::status_code_of(&status),
        Some(ErrorCode::NotConversationOwner)
    );
    assert_eq!(h.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(h.count("SELECT count(*) FROM outbox").await, 0);
    h.stop().await;
}

#[tokio::test]
async fn an_empty_reply_is_refused_as_invalid() {
    // Arrange
    let h = Harness::start().await;
    let mut client = h.client.clone();

    // Act
    let result = client.send_message(h.send(h.owner, "   ", "")).await;

    // Assert
    let status = result.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        atende_runtime::status_code_of(&status),
        Some(ErrorCode::InvalidArgument)
    );
    assert_eq!(h.count("SELECT count(*) FROM messages").await, 0);
    h.stop().await;
}

#[tokio::test]
async fn a_free_text_reply_after_the_24_hour_whatsapp_window_is_refused_and_nothing_is_sent() {
    // Arrange: the customer last wrote 25 hours ago.
    let h = Harness::start().await;
    let mut client = h.client.clone();
    sqlx::query("UPDATE customer_windows SET last_inbound_at = now() - interval '25 hours' WHERE channel_id = $1")
        .bind(h.channel_id)
        .execute(&h.sandbox.pool)
        .await
        .unwrap();

    // Act
    let result = client
        .send_message(h.send(h.owner, "Olá, ainda precisa de ajuda?", "late"))
        .await;

    // Assert: a template is needed; nothing stored, nothing queued for Meta.
    let status = result.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        atende_runtime::status_code_of(&status),
        Some(ErrorCode::OutsideCustomerWindow)
    );
    assert_eq!(h.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(
        h.count("SELECT count(*) FROM outbox WHERE subject LIKE '%.atende.outbound.%'")
            .await,
        0
    );
    h.stop().await;
}

#[tokio::test]
async fn history_pages_through_every_message_once_in_order() {
    // Arrange
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let mut sent = Vec::new();
    for i in 0..5 {
        let m = client
            .send_message(h.send(h.owner, &format!("mensagem {i}"), &format!("c{i}")))
            .await
            .unwrap();
        sent.push(m.into_inner().message.unwrap().id);
    }

    // Act
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_messages(pb::ListMessagesRequest {
                tenant_id: h.tenant_id.to_string(),
                conversation_id: h.conversation_id.to_string(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(page.messages.iter().map(|m| m.id.clone()).collect::<Vec<_>>());
        token = page.next_page_token;
        if token.is_empty() || pages.len() > 10 {
            break;
        }
    }
    let bad_token = client
        .list_messages(pb::ListMessagesRequest {
            tenant_id: h.tenant_id.to_string(),
            conversation_id: h.conversation_id.to_string(),
            page_size: 2,
            page_token: "garbage".into(),
        })
        .await;

    // Assert
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
    assert_eq!(pages.concat(), sent);
    let status = bad_token.expect_err("a malformed token is refused");
    assert_eq!(
        atende_runtime::status_code_of(&status),
        Some(ErrorCode::InvalidArgument)
    );
    h.stop().await;
}

#[tokio::test]
async fn a_reader_continuing_after_the_last_message_it_saw_never_misses_one_that_committed_late() {
    // Arrange: T1 writes a message first but commits last; T2 writes one meanwhile.
    let h = Harness::start().await;
    let pool = h.sandbox.pool.clone();
    let (tenant, conversation, channel) = (h.tenant_id, h.conversation_id, h.channel_id);
    let message = move |id: Uuid, provider_id: &'static str| atende_store::conversations::NewMessage {
        id,
        tenant_id: tenant,
        conversation_id: conversation,
        channel_id: channel,
        direction: "inbound",
        kind: "text",
        body: Some(provider_id),
        media: None,
        provider_message_id: Some(provider_id),
        reply_to_provider_message_id: None,
        status: "received",
        agent_id: None,
        client_message_id: None,
        raw: None,
        sent_at: None,
    };
    let (m1, m2) = (Uuid::now_v7(), Uuid::now_v7());
    let mut t1 = pool.begin().await.unwrap();
    atende_store::conversations::insert_message(&mut t1, &message(m1, "wamid.LATE"))
        .await
        .unwrap();
    let mut t2 = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut t2 = pool.begin().await.unwrap();
            atende_store::conversations::insert_message(&mut t2, &message(m2, "wamid.EARLY"))
                .await
                .unwrap();
            t2.commit().await.unwrap();
        }
    });
    // Nothing may order T2 behind T1: give it the chance to commit first (a bound, not an
    // assertion about time).
    let t2_done_early = tokio::time::timeout(Duration::from_millis(300), &mut t2).await.is_ok();

    // Act: a reader reads, remembers the last position it saw, T1 commits, it reads on.
    let mut client = h.client.clone();
    let read_after = |token: String| {
        let mut client = client.clone();
        let req = pb::ListMessagesRequest {
            tenant_id: tenant.to_string(),
            conversation_id: conversation.to_string(),
            page_size: 100,
            page_token: token,
        };
        async move { client.list_messages(req).await.unwrap().into_inner().messages }
    };
    let first = read_after(String::new()).await;
    let cursor = first.last().map(|m| format!("s{}", m.seq)).unwrap_or_default();
    t1.commit().await.unwrap();
    if !t2_done_early {
        t2.await.unwrap();
    }
    let rest = read_after(cursor).await;
    client = h.client.clone();
    let everything = client
        .list_messages(pb::ListMessagesRequest {
            tenant_id: tenant.to_string(),
            conversation_id: conversation.to_string(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .messages;

    // Assert: each message seen exactly once, in the order they committed.
    let seen: Vec<String> = first.iter().chain(&rest).map(|m| m.id.clone()).collect();
    assert_eq!(seen, vec![m1.to_string(), m2.to_string()], "first read {first:?}");
    assert_eq!(everything.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), seen);
    assert!(everything[0].seq < everything[1].seq);
    h.stop().await;
}
