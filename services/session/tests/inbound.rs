//! The session's inbound consumer against real Postgres and NATS: contacts found by their
//! identities (phone with or without Brazil's ninth digit, business-scoped user id), the
//! same-customer rule, conversations with protocol numbers, each message stored once even
//! when redelivered past JetStream's window, delivery statuses that only move forward, and
//! poison messages recorded rather than skipped.
//!
//! Events are published straight to the inbound stream, as the channel-adapter's relay would.

use std::time::Duration;

use atende_bus::{Bus, StreamKind, Subjects};
use atende_domain::channel::ChannelKind;
use atende_proto::v1::{
    self as pb, domain_event, inbound_event, DeliveryStatusUpdate, DomainEvent, InboundEvent, InboundMessage,
    RouteRequest,
};
use atende_testkit::fixtures::{self, ChannelSpec, RunningRole};
use atende_testkit::{wait_until, Sandbox};
use prost::Message as _;
use uuid::Uuid;

const PHONE_NUMBER_ID: &str = "106540352242922";
const DEADLINE: Duration = Duration::from_secs(15);

/// A running session role with one tenant, one service and one WhatsApp channel.
struct Session {
    sandbox: Sandbox,
    role: RunningRole,
    bus: Bus,
    tenant_id: Uuid,
    service_id: Uuid,
    channel_id: Uuid,
}

#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct ConversationRow {
    id: Uuid,
    contact_id: Uuid,
    service_id: Option<Uuid>,
    status: String,
    protocol: String,
}

impl Session {
    async fn start() -> Session {
        let sandbox = Sandbox::new().await;
        let pool = &sandbox.pool;
        let acme = fixtures::tenant_with_whatsapp(pool, ChannelSpec::new(PHONE_NUMBER_ID)).await;
        let (tenant_id, service_id, channel_id) = (acme.tenant, acme.service, acme.channel.id);
        let role = RunningRole::start(|stop| atende_session::build(&sandbox.config, stop)).await;
        let bus = Bus::connect(&sandbox.config.nats.url, &sandbox.config.namespace.prefix)
            .await
            .unwrap();
        Session {
            sandbox,
            role,
            bus,
            tenant_id,
            service_id,
            channel_id,
        }
    }

    fn subjects(&self) -> &Subjects {
        &self.bus.subjects
    }

    fn event(&self, item: inbound_event::Item) -> InboundEvent {
        InboundEvent {
            event_id: Uuid::now_v7().to_string(),
            tenant_id: self.tenant_id.to_string(),
            channel_id: self.channel_id.to_string(),
            channel_kind: pb::ChannelKind::Whatsapp as i32,
            received_at_ms: 1_763_700_000_000,
            item: Some(item),
        }
    }

    fn text(&self, wamid: &str, phone: &str, user_id: &str, text: &str) -> InboundEvent {
        self.event(inbound_event::Item::Message(InboundMessage {
            provider_message_id: wamid.to_string(),
            from_phone: phone.to_string(),
            from_user_id: user_id.to_string(),
            profile_name: "Maria Silva".to_string(),
            sent_at_ms: 1_763_700_000_000,
            kind: "text".to_string(),
            text: text.to_string(),
            raw_json: format!(r#"{{"id":"{wamid}","type":"text"}}"#),
            ..Default::default()
        }))
    }

    /// Publishes raw bytes on the tenant's inbound subject; returns the stream sequence.
    async fn publish_bytes(&self, payload: Vec<u8>) -> u64 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", Uuid::now_v7().to_string().as_str());
        let subject = self.subjects().inbound(self.tenant_id, ChannelKind::Whatsapp);
        let ack = self
            .bus
            .js
            .publish_with_headers(subject, headers, bytes::Bytes::from(payload))
            .await
            .unwrap();
        ack.await.expect("jetstream stored the event").sequence
    }

    /// Publishes an event under a fresh NATS msg id (so JetStream never dedupes it).
    async fn publish(&self, event: &InboundEvent) -> u64 {
        self.publish_bytes(event.encode_to_vec()).await
    }

    /// Publishes and waits until the session's consumer acked it.
    async fn deliver(&self, event: &InboundEvent) {
        let seq = self.publish(event).await;
        self.wait_consumed(seq).await;
    }

    /// Waits until the session's inbound consumer acked (or terminated) everything up to
    /// stream sequence `seq`, with nothing left pending or awaiting redelivery.
    async fn wait_consumed(&self, seq: u64) {
        let stream = self
            .bus
            .js
            .get_stream(self.subjects().stream_name(StreamKind::Inbound))
            .await
            .unwrap();
        wait_until(&format!("inbound events up to {seq} consumed"), DEADLINE, || async {
            let info = stream.consumer_info("session").await.ok()?;
            (info.ack_floor.stream_sequence >= seq && info.num_ack_pending == 0 && info.num_pending == 0).then_some(())
        })
        .await;
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.sandbox.pool).await.unwrap()
    }

    async fn conversations(&self) -> Vec<ConversationRow> {
        sqlx::query_as("SELECT id, contact_id, service_id, status, protocol FROM conversations ORDER BY opened_at, id")
            .fetch_all(&self.sandbox.pool)
            .await
            .unwrap()
    }

    async fn identities(&self) -> Vec<(Uuid, String, String)> {
        sqlx::query_as("SELECT contact_id, kind, value FROM contact_identities ORDER BY kind")
            .fetch_all(&self.sandbox.pool)
            .await
            .unwrap()
    }

    /// Outbox rows whose subject is `subject`, decoded as `T`.
    async fn outbox<T: prost::Message + Default>(&self, subject: &str) -> Vec<T> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox WHERE subject = $1 ORDER BY id")
            .bind(subject)
            .fetch_all(&self.sandbox.pool)
            .await
            .unwrap();
        rows.iter().map(|p| T::decode(p.as_slice()).unwrap()).collect()
    }

    /// An outbound message (an agent's reply) in a conversation of its own, for status tests.
    async fn outbound_message(&self, status: &str) -> Uuid {
        let pool = &self.sandbox.pool;
        let contact = fixtures::contact(pool, self.tenant_id, "João").await;
        let conversation = fixtures::conversation(
            pool,
            self.tenant_id,
            contact,
            self.channel_id,
            Some(self.service_id),
            "queued",
            None,
        )
        .await;
        fixtures::outbound_message(
            pool,
            self.tenant_id,
            conversation,
            self.channel_id,
            "Seu pedido saiu",
            status,
        )
        .await
    }

    async fn message_status(&self, id: Uuid) -> (String, Option<String>) {
        sqlx::query_as("SELECT status, provider_message_id FROM messages WHERE id = $1")
            .bind(id)
            .fetch_one(&self.sandbox.pool)
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.role.stop(DEADLINE).await;
        self.sandbox.cleanup().await;
    }
}

fn is_protocol(p: &str) -> bool {
    p.len() == 14 && p.bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn a_first_message_opens_a_queued_conversation_with_a_protocol_and_asks_for_routing() {
    // Arrange
    let s = Session::start().await;
    let event = s.text("wamid.FIRST0001", "5511987654321", "", "Olá, quero um orçamento");

    // Act
    s.deliver(&event).await;

    // Assert
    let identities = s.identities().await;
    assert_eq!(identities.len(), 1);
    let (contact, kind, value) = &identities[0];
    assert_eq!((kind.as_str(), value.as_str()), ("wa_phone", "5511987654321"));
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM contacts WHERE id = $1")
        .bind(contact)
        .fetch_one(&s.sandbox.pool)
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("Maria Silva"));

    let conversations = s.conversations().await;
    assert_eq!(conversations.len(), 1);
    let c = &conversations[0];
    assert_eq!(c.contact_id, *contact);
    assert_eq!(c.status, "queued");
    assert_eq!(c.service_id, Some(s.service_id));
    assert!(is_protocol(&c.protocol), "protocol {:?} is 14 digits", c.protocol);
    let protocols = s.count("SELECT count(*) FROM protocols").await;
    assert_eq!(protocols, 1);

    let messages: Vec<(Uuid, String, Option<String>, String)> =
        sqlx::query_as("SELECT conversation_id, direction, body, provider_message_id FROM messages")
            .fetch_all(&s.sandbox.pool)
            .await
            .unwrap();
    assert_eq!(
        messages,
        vec![(
            c.id,
            "inbound".to_string(),
            Some("Olá, quero um orçamento".to_string()),
            "wamid.FIRST0001".to_string()
        )]
    );

    let routes: Vec<RouteRequest> = s.outbox(&s.subjects().route(s.tenant_id, s.service_id)).await;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].conversation_id, c.id.to_string());
    assert_eq!(routes[0].service_id, s.service_id.to_string());

    let queued: Vec<DomainEvent> = s.outbox(&s.subjects().event(s.tenant_id, "conversation.queued")).await;
    assert_eq!(queued.len(), 1);
    match &queued[0].kind {
        Some(domain_event::Kind::ConversationQueued(q)) => {
            let conv = q.conversation.as_ref().unwrap();
            assert_eq!(
                (conv.id.as_str(), conv.protocol.as_str()),
                (c.id.to_string().as_str(), c.protocol.as_str())
            );
        }
        other => panic!("expected conversation.queued, got {other:?}"),
    }
    let created: Vec<DomainEvent> = s.outbox(&s.subjects().event(s.tenant_id, "message.created")).await;
    assert_eq!(created.len(), 1);
    assert_eq!(s.count("SELECT count(*) FROM outbox").await, 3);
    s.stop().await;
}

#[tokio::test]
async fn the_same_event_delivered_twice_stores_one_message_and_emits_nothing_more() {
    // Arrange
    let s = Session::start().await;
    let event = s.text("wamid.TWICE0001", "5511987654321", "", "oi");
    s.deliver(&event).await;
    let outbox_after_first = s.count("SELECT count(*) FROM outbox").await;

    // Act: redelivered past JetStream's duplicate window (another NATS msg id).
    s.deliver(&event).await;

    // Assert
    assert_eq!(s.count("SELECT count(*) FROM messages").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM conversations").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM outbox").await, outbox_after_first);
    s.stop().await;
}

#[tokio::test]
async fn a_brazilian_mobile_with_and_without_the_ninth_digit_is_one_contact_and_one_conversation() {
    // Arrange
    let s = Session::start().await;
    s.deliver(&s.text("wamid.NINTH0001", "5511987654321", "", "com o nove"))
        .await;

    // Act
    s.deliver(&s.text("wamid.NINTH0002", "551187654321", "", "sem o nove"))
        .await;

    // Assert
    assert_eq!(s.count("SELECT count(*) FROM contacts").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM conversations").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM messages").await, 2);
    let identities = s.identities().await;
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0].2, "5511987654321");
    s.stop().await;
}

#[tokio::test]
async fn a_business_scoped_user_id_keys_the_contact_and_a_later_phone_joins_it() {
    // Arrange
    let s = Session::start().await;
    let bsuid = "BR.13491208655302741918";
    s.deliver(&s.text("wamid.BSUID0001", "", bsuid, "oi, sou só username"))
        .await;
    let first = s.identities().await;
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].1.as_str(), first[0].2.as_str()), ("wa_bsuid", bsuid));

    // Act
    s.deliver(&s.text("wamid.BSUID0002", "5511987654321", bsuid, "agora com telefone"))
        .await;

    // Assert
    assert_eq!(s.count("SELECT count(*) FROM contacts").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM conversations").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM messages").await, 2);
    let identities = s.identities().await;
    let contact = first[0].0;
    assert_eq!(
        identities,
        vec![
            (contact, "wa_bsuid".to_string(), bsuid.to_string()),
            (contact, "wa_phone".to_string(), "5511987654321".to_string()),
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn with_the_flag_off_a_message_joins_the_open_conversation_and_after_finishing_opens_a_new_one() {
    // Arrange
    let s = Session::start().await;
    s.deliver(&s.text("wamid.RULE0001", "5511987654321", "", "primeira"))
        .await;

    // Act: a second message while the conversation is open
    s.deliver(&s.text("wamid.RULE0002", "5511987654321", "", "segunda"))
        .await;

    // Assert
    let open = s.conversations().await;
    assert_eq!(open.len(), 1);
    assert_eq!(s.count("SELECT count(*) FROM messages").await, 2);
    let routes = s
        .outbox::<RouteRequest>(&s.subjects().route(s.tenant_id, s.service_id))
        .await;
    assert_eq!(routes.len(), 1, "joining a conversation asks for no new routing");

    // Arrange: the conversation is finished
    sqlx::query("UPDATE conversations SET status = 'finished', closed_at = now() WHERE id = $1")
        .bind(open[0].id)
        .execute(&s.sandbox.pool)
        .await
        .unwrap();

    // Act: the customer writes again
    s.deliver(&s.text("wamid.RULE0003", "5511987654321", "", "voltei"))
        .await;

    // Assert
    let all = s.conversations().await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].status, "finished");
    assert_eq!(all[1].status, "queued");
    assert_eq!(all[1].contact_id, all[0].contact_id);
    assert!(is_protocol(&all[1].protocol));
    assert_ne!(all[1].protocol, all[0].protocol);
    let third_in: Uuid =
        sqlx::query_scalar("SELECT conversation_id FROM messages WHERE provider_message_id = 'wamid.RULE0003'")
            .fetch_one(&s.sandbox.pool)
            .await
            .unwrap();
    assert_eq!(third_in, all[1].id);
    let routes = s
        .outbox::<RouteRequest>(&s.subjects().route(s.tenant_id, s.service_id))
        .await;
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[1].conversation_id, all[1].id.to_string());
    s.stop().await;
}

#[tokio::test]
async fn delivery_statuses_move_forward_and_never_back() {
    // Arrange
    let s = Session::start().await;
    let message = s.outbound_message("accepted").await;
    let status = |status: &str| {
        s.event(inbound_event::Item::Status(DeliveryStatusUpdate {
            provider_message_id: "wamid.OUT0001".to_string(),
            status: status.to_string(),
            at_ms: 1_763_700_000_000,
            message_id: message.to_string(),
            ..Default::default()
        }))
    };

    // Act
    s.deliver(&status("delivered")).await;
    let after_delivered = s.message_status(message).await;
    s.deliver(&status("read")).await;
    let after_read = s.message_status(message).await;
    s.deliver(&status("delivered")).await;

    // Assert
    assert_eq!(
        after_delivered,
        ("delivered".to_string(), Some("wamid.OUT0001".to_string()))
    );
    assert_eq!(after_read.0, "read");
    assert_eq!(
        s.message_status(message).await.0,
        "read",
        "an older status does not move it back"
    );
    let changes: Vec<DomainEvent> = s
        .outbox(&s.subjects().event(s.tenant_id, "message.status_changed"))
        .await;
    let statuses: Vec<String> = changes
        .iter()
        .map(|e| match &e.kind {
            Some(domain_event::Kind::MessageStatusChanged(c)) => c.status.clone(),
            other => panic!("expected message.status_changed, got {other:?}"),
        })
        .collect();
    assert_eq!(statuses, vec!["delivered", "read"]);
    s.stop().await;
}

#[tokio::test]
async fn a_poison_event_is_terminated_and_recorded_and_the_next_event_is_still_processed() {
    // Arrange
    let s = Session::start().await;
    let garbage = b"\xff\xff\xff\xff not a protobuf".to_vec();

    // Act
    s.publish_bytes(garbage.clone()).await;
    s.deliver(&s.text("wamid.AFTERPOISON", "5511987654321", "", "ainda funciona?"))
        .await;

    // Assert
    let dead: Vec<(String, String, Vec<u8>)> = sqlx::query_as("SELECT consumer, subject, payload FROM dead_letters")
        .fetch_all(&s.sandbox.pool)
        .await
        .unwrap();
    assert_eq!(
        dead,
        vec![(
            "session".to_string(),
            s.subjects().inbound(s.tenant_id, ChannelKind::Whatsapp),
            garbage
        )]
    );
    assert_eq!(
        s.count("SELECT count(*) FROM messages WHERE provider_message_id = 'wamid.AFTERPOISON'")
            .await,
        1
    );
    s.stop().await;
}

#[tokio::test]
async fn a_provider_status_finds_our_message_by_its_provider_id() {
    // Arrange: our reply was accepted by Meta with a wamid; Meta's webhook carries only that.
    let s = Session::start().await;
    let message = s.outbound_message("accepted").await;
    sqlx::query("UPDATE messages SET provider_message_id = 'wamid.OUT0002' WHERE id = $1")
        .bind(message)
        .execute(&s.sandbox.pool)
        .await
        .unwrap();
    let delivered = s.event(inbound_event::Item::Status(DeliveryStatusUpdate {
        provider_message_id: "wamid.OUT0002".to_string(),
        status: "delivered".to_string(),
        at_ms: 1_763_700_000_000,
        ..Default::default()
    }));

    // Act
    s.deliver(&delivered).await;

    // Assert
    assert_eq!(
        s.message_status(message).await,
        ("delivered".to_string(), Some("wamid.OUT0002".to_string()))
    );
    s.stop().await;
}

#[tokio::test]
async fn replies_leave_from_the_number_the_customer_last_wrote_to_and_each_number_keeps_its_own_window() {
    // Arrange: a second WhatsApp number of the same tenant; an agent owns what arrives.
    let s = Session::start().await;
    let pool = &s.sandbox.pool;
    let second = fixtures::whatsapp_channel(
        pool,
        s.tenant_id,
        ChannelSpec {
            default_service: Some(s.service_id),
            ..ChannelSpec::new("106540352200002")
        },
    )
    .await
    .id;
    let agent = fixtures::agent(pool, s.tenant_id, "Ana", &[s.service_id], 3).await;
    let now_ms = atende_store::to_millis(time::OffsetDateTime::now_utc());
    let hour = 3_600_000;
    let written = |wamid: &str, phone: &str, channel: Uuid, at_ms: i64| {
        let mut e = s.text(wamid, phone, "", "oi");
        e.channel_id = channel.to_string();
        if let Some(inbound_event::Item::Message(m)) = e.item.as_mut() {
            m.sent_at_ms = at_ms;
        }
        e
    };
    let mut client =
        atende_proto::v1::session_service_client::SessionServiceClient::new(s.sandbox.grpc(s.role.started.grpc_addr));
    let reply = |conversation: Uuid, id: &str| pb::SendMessageRequest {
        tenant_id: s.tenant_id.to_string(),
        conversation_id: conversation.to_string(),
        agent_id: agent.to_string(),
        text: "Olá!".into(),
        client_message_id: id.into(),
        reply_to_message_id: String::new(),
    };
    let assign = |conversation: Uuid| async move {
        sqlx::query("UPDATE conversations SET status = 'assigned', agent_id = $2 WHERE id = $1")
            .bind(conversation)
            .bind(agent)
            .execute(pool)
            .await
            .unwrap();
    };

    // Act: the customer writes to the first number, then to the second; then a message to
    // the first number, written in between, is delivered late.
    s.deliver(&written("wamid.NUM1", "5511987654321", s.channel_id, now_ms - 2 * hour))
        .await;
    s.deliver(&written("wamid.NUM2", "5511987654321", second, now_ms - hour))
        .await;
    s.deliver(&written(
        "wamid.NUM3",
        "5511987654321",
        s.channel_id,
        now_ms - 90 * 60_000,
    ))
    .await;
    let conversation = s.conversations().await[0].id;
    assign(conversation).await;
    let sent = client
        .send_message(reply(conversation, "r1"))
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    // Another customer whose message (to the first number) was written 25 h ago and delivered now.
    s.deliver(&written("wamid.OLD", "5511912345678", s.channel_id, now_ms - 25 * hour))
        .await;
    let late = s
        .conversations()
        .await
        .iter()
        .find(|c| c.id != conversation)
        .unwrap()
        .id;
    assign(late).await;
    let refused = client.send_message(reply(late, "r2")).await;

    // Assert: one conversation; the reply leaves from the second number, whose window is its own.
    assert_eq!(s.count("SELECT count(*) FROM conversations").await, 2);
    let channel_of_reply: Uuid = sqlx::query_scalar("SELECT channel_id FROM messages WHERE id = $1::uuid")
        .bind(&sent.id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(channel_of_reply, second);
    let jobs = s
        .outbox::<pb::OutboundMessage>(&s.subjects().outbound(s.tenant_id, ChannelKind::Whatsapp))
        .await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].channel_id, second.to_string());
    let windows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT w.channel_id, (extract(epoch FROM w.last_inbound_at) * 1000)::bigint FROM customer_windows w
         JOIN conversations c ON c.contact_id = w.contact_id WHERE c.id = $1 ORDER BY 2",
    )
    .bind(conversation)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        windows,
        vec![(s.channel_id, now_ms - 90 * 60_000), (second, now_ms - hour)]
    );
    // The window runs from the customer's message time, not from when it was processed.
    let status = refused.expect_err("outside the window");
    assert_eq!(
        atende_runtime::status_code_of(&status),
        Some(atende_domain::ErrorCode::OutsideCustomerWindow)
    );
    s.stop().await;
}
