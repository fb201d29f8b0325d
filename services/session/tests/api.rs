//! `SessionService` over real gRPC: an agent's reply in a conversation it owns is stored
//! `pending` with its outbound job in the outbox and is idempotent on `client_message_id`;
//! other agents and empty texts are refused with stable codes; history pages with tokens.

use std::time::Duration;

use atende_domain::channel::ChannelKind;
use atende_domain::ErrorCode;
use atende_proto::v1::{self as pb, session_service_client::SessionServiceClient, OutboundMessage};
use atende_runtime::Started;
use atende_store::admin::{self, NewAgent, NewChannel, NewService};
use atende_testkit::Sandbox;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

const CUSTOMER: &str = "5511987654321";
const DEADLINE: Duration = Duration::from_secs(10);

/// A session role with a conversation assigned to `owner`; `other` is a second agent.
struct Harness {
    sandbox: Sandbox,
    shutdown: CancellationToken,
    started: Started,
    client: SessionServiceClient<Channel>,
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
        let tenant_id = Uuid::now_v7();
        admin::create_tenant(pool, tenant_id, "Acme", "acme", false)
            .await
            .unwrap();
        let service_id = Uuid::now_v7();
        let service = NewService {
            id: service_id,
            tenant_id,
            name: "Vendas",
            policy: "least_loaded",
            offer_timeout_secs: 60,
            priority: 0,
        };
        admin::create_service(pool, &service).await.unwrap();
        let channel_id = Uuid::now_v7();
        admin::create_channel(
            pool,
            &NewChannel {
                id: channel_id,
                tenant_id,
                kind: "whatsapp",
                name: "WhatsApp Vendas",
                provider_account_id: "106540352242922",
                app_secret: "secret",
                verify_token: "verify",
                access_token: "token",
                default_service_id: Some(service_id),
            },
        )
        .await
        .unwrap();
        let mut agents = Vec::new();
        for (name, email) in [("Ana", "ana@acme.test"), ("Bruno", "bruno@acme.test")] {
            let id = Uuid::now_v7();
            let mut conn = pool.acquire().await.unwrap();
            let agent = NewAgent {
                id,
                tenant_id,
                name,
                email,
                password_hash: "not-a-real-hash",
                max_concurrent: 3,
                supervisor: false,
            };
            admin::create_agent(&mut conn, &agent, &[service_id]).await.unwrap();
            agents.push(id);
        }
        let contact_id = Uuid::now_v7();
        sqlx::query("INSERT INTO contacts (id, tenant_id, name) VALUES ($1, $2, 'Maria Silva')")
            .bind(contact_id)
            .bind(tenant_id)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO contact_identities (tenant_id, contact_id, kind, value) VALUES ($1, $2, 'wa_phone', $3)",
        )
        .bind(tenant_id)
        .bind(contact_id)
        .bind(CUSTOMER)
        .execute(pool)
        .await
        .unwrap();
        let conversation_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO conversations (id, tenant_id, contact_id, channel_id, service_id, status, agent_id, protocol)
             VALUES ($1, $2, $3, $4, $5, 'assigned', $6, '20261121000001')",
        )
        .bind(conversation_id)
        .bind(tenant_id)
        .bind(contact_id)
        .bind(channel_id)
        .bind(service_id)
        .bind(agents[0])
        .execute(pool)
        .await
        .unwrap();
        let shutdown = CancellationToken::new();
        let started = atende_session::build(&sandbox.config, shutdown.clone())
            .await
            .expect("session starts");
        let client = SessionServiceClient::connect(format!("http://{}", started.grpc_addr))
            .await
            .expect("connect");
        let subjects = atende_bus::Subjects::new(&sandbox.config.namespace.prefix);
        Harness {
            sandbox,
            shutdown,
            started,
            client,
            subjects,
            tenant_id,
            channel_id,
            conversation_id,
            owner: agents[0],
            other: agents[1],
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
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.started.wait())
            .await
            .expect("session stops within the deadline")
            .expect("session tasks end cleanly");
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
