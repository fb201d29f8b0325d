//! Outbound delivery against a fake Graph API: an agent's reply, queued the way session
//! queues it (an outbox row on the outbound subject), reaches Meta in Meta's exact format,
//! is recorded as `sent` with the provider id and reported back as an `accepted` status;
//! a redelivered job never sends twice; retryable Graph errors are retried, permanent ones
//! are recorded as `failed` and not retried.

use std::time::Duration;

use atende_domain::channel::ChannelKind;
use atende_proto::v1::{inbound_event, DeliveryStatusUpdate, InboundEvent, OutboundMessage};
use atende_testkit::fake_graph::FakeGraph;
use atende_testkit::fixtures::{self, ChannelSpec, RunningRole};
use atende_testkit::{wait_until, Sandbox};
use prost::Message as _;
use serde_json::json;
use uuid::Uuid;

const PHONE_NUMBER_ID: &str = "106540352242922";
const ACCESS_TOKEN: &str = "EAAG-delivery-test-token";
const CUSTOMER: &str = "5511987654321";
const DEADLINE: Duration = Duration::from_secs(15);

/// A channel-adapter pointed at a fake Graph API, with one conversation to reply in.
struct Harness {
    sandbox: Sandbox,
    role: RunningRole,
    fake: FakeGraph,
    subjects: atende_bus::Subjects,
    tenant_id: Uuid,
    channel_id: Uuid,
    conversation_id: Uuid,
}

impl Harness {
    async fn start() -> Harness {
        let fake = FakeGraph::start().await;
        fake.expect_token(PHONE_NUMBER_ID, ACCESS_TOKEN);
        let mut sandbox = Sandbox::new().await;
        sandbox.config.channel_adapter.graph_api_base = fake.base_url();
        let pool = &sandbox.pool;
        let tenant_id = fixtures::tenant(pool, "Acme", "acme").await;
        let channel = ChannelSpec {
            access_token: ACCESS_TOKEN,
            ..ChannelSpec::new(PHONE_NUMBER_ID)
        };
        let channel_id = fixtures::whatsapp_channel(pool, tenant_id, channel).await.id;
        let contact_id = fixtures::contact_with_phone(pool, tenant_id, "Maria Silva", CUSTOMER).await;
        let conversation_id =
            fixtures::conversation(pool, tenant_id, contact_id, channel_id, None, "assigned", None).await;
        let role = RunningRole::start(|stop| atende_channel_adapter::build(&sandbox.config, stop)).await;
        let subjects = atende_bus::Subjects::new(&sandbox.config.namespace.prefix);
        Harness {
            sandbox,
            role,
            fake,
            subjects,
            tenant_id,
            channel_id,
            conversation_id,
        }
    }

    /// The outbound `messages` row a reply would have, with its job.
    async fn reply(&self, text: &str) -> (Uuid, OutboundMessage) {
        let id = fixtures::outbound_message(
            &self.sandbox.pool,
            self.tenant_id,
            self.conversation_id,
            self.channel_id,
            text,
            "pending",
        )
        .await;
        let job = OutboundMessage {
            tenant_id: self.tenant_id.to_string(),
            channel_id: self.channel_id.to_string(),
            channel_kind: atende_proto::v1::ChannelKind::Whatsapp as i32,
            message_id: id.to_string(),
            conversation_id: self.conversation_id.to_string(),
            to: CUSTOMER.to_string(),
            text: text.to_string(),
            reply_to_provider_message_id: String::new(),
            ..Default::default()
        };
        (id, job)
    }

    /// Queues `job` through the outbox, as session does; the adapter's relay publishes it.
    async fn enqueue(&self, job: &OutboundMessage, msg_id: &str) {
        let mut tx = self.sandbox.pool.begin().await.unwrap();
        let subject = self.subjects.outbound(self.tenant_id, ChannelKind::Whatsapp);
        let queued = atende_store::outbox::enqueue(
            &mut tx,
            self.tenant_id,
            &job.conversation_id,
            &subject,
            msg_id,
            &job.encode_to_vec(),
            &[],
        )
        .await
        .unwrap();
        assert!(queued, "msg id {msg_id} is new");
        tx.commit().await.unwrap();
    }

    /// `(state, attempts, provider_message_id, last_error)` of a message's delivery.
    async fn delivery(&self, message: Uuid) -> Option<(String, i32, Option<String>, Option<String>)> {
        sqlx::query_as("SELECT state, attempts, provider_message_id, last_error FROM deliveries WHERE message_id = $1")
            .bind(message)
            .fetch_optional(&self.sandbox.pool)
            .await
            .unwrap()
    }

    async fn wait_for_state(&self, message: Uuid, state: &str) -> (String, i32, Option<String>, Option<String>) {
        wait_until(
            &format!("delivery of {message} to become {state}"),
            DEADLINE,
            || async { self.delivery(message).await.filter(|d| d.0 == state) },
        )
        .await
    }

    /// The status event the adapter queued for `message`, decoded.
    async fn status_event(&self, message: Uuid, status: &str) -> (String, DeliveryStatusUpdate) {
        let (subject, payload): (String, Vec<u8>) =
            sqlx::query_as("SELECT subject, payload FROM outbox WHERE msg_id = $1")
                .bind(format!("delivery:{message}:{status}"))
                .fetch_optional(&self.sandbox.pool)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("no {status} status event for {message}"));
        let event = InboundEvent::decode(payload.as_slice()).unwrap();
        assert_eq!(event.tenant_id, self.tenant_id.to_string());
        assert_eq!(event.channel_id, self.channel_id.to_string());
        match event.item {
            Some(inbound_event::Item::Status(s)) => (subject, s),
            other => panic!("expected a status event, got {other:?}"),
        }
    }

    /// Waits until the adapter's outbound consumer has acked (not nak'ed) every job up to
    /// stream sequence `seq`: nothing pending, nothing waiting for redelivery.
    async fn wait_all_acked(&self, seq: u64) {
        let bus = atende_bus::Bus::connect(&self.sandbox.config.nats.url, &self.sandbox.id)
            .await
            .unwrap();
        let stream = bus
            .js
            .get_stream(bus.subjects.stream_name(atende_bus::StreamKind::Outbound))
            .await
            .unwrap();
        wait_until(&format!("outbound jobs up to {seq} acked"), DEADLINE, || async {
            let info = stream.consumer_info("channel-adapter").await.ok()?;
            (info.ack_floor.stream_sequence >= seq && info.num_ack_pending == 0 && info.num_pending == 0).then_some(())
        })
        .await;
    }

    async fn stop(self) {
        self.role.stop(DEADLINE).await;
        drop(self.fake);
        self.sandbox.cleanup().await;
    }
}

#[tokio::test]
async fn a_reply_reaches_the_graph_api_in_metas_format_and_is_recorded_as_sent() {
    // Arrange
    let h = Harness::start().await;
    let (message, job) = h.reply("Olá Maria, seu pedido saiu para entrega").await;

    // Act
    h.enqueue(&job, &format!("out:{message}")).await;

    // Assert
    let sends = h.fake.wait_for_sends(1, DEADLINE).await;
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].phone_number_id, PHONE_NUMBER_ID);
    assert_eq!(sends[0].token, ACCESS_TOKEN);
    assert_eq!(
        sends[0].body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CUSTOMER,
            "type": "text",
            "text": { "preview_url": false, "body": "Olá Maria, seu pedido saiu para entrega" },
        })
    );
    let (_, attempts, provider_id, error) = h.wait_for_state(message, "sent").await;
    assert_eq!(attempts, 1);
    assert_eq!(provider_id.as_deref(), Some(sends[0].provider_message_id.as_str()));
    assert_eq!(error, None);
    let (subject, status) = h.status_event(message, "accepted").await;
    assert_eq!(subject, h.subjects.inbound(h.tenant_id, ChannelKind::Whatsapp));
    assert_eq!(status.status, "accepted");
    assert_eq!(status.message_id, message.to_string());
    assert_eq!(status.provider_message_id, sends[0].provider_message_id);
    h.stop().await;
}

#[tokio::test]
async fn a_template_goes_out_as_metas_template_request_with_its_components() {
    // Arrange: a template send, its components as session checked and built them.
    let h = Harness::start().await;
    let (message, mut job) = h.reply("Olá Maria, seu pedido 123 saiu.").await;
    let components = json!([
        { "type": "body", "parameters": [
            { "type": "text", "text": "Maria" }, { "type": "text", "text": "123" }
        ] }
    ]);
    job.template_name = "pedido_enviado".into();
    job.template_language = "pt_BR".into();
    job.template_components_json = components.to_string();

    // Act
    h.enqueue(&job, &format!("out:{message}")).await;

    // Assert
    let sends = h.fake.wait_for_sends(1, DEADLINE).await;
    assert_eq!(
        sends[0].body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CUSTOMER,
            "type": "template",
            "template": { "name": "pedido_enviado", "language": { "code": "pt_BR" }, "components": components },
        })
    );
    h.wait_for_state(message, "sent").await;
    h.stop().await;
}

#[tokio::test]
async fn a_redelivered_job_for_a_sent_message_does_not_send_it_again() {
    // Arrange
    let h = Harness::start().await;
    let (message, job) = h.reply("só uma vez").await;
    h.enqueue(&job, &format!("out:{message}")).await;
    let first = h.wait_for_state(message, "sent").await;

    // Act: the same job again, past JetStream's duplicate window (another msg id).
    h.enqueue(&job, &format!("out:{message}:redelivered")).await;

    // Assert
    h.wait_all_acked(2).await;
    assert_eq!(h.fake.sent().len(), 1, "sent once: {:#?}", h.fake.sent());
    assert_eq!(h.delivery(message).await, Some(first));
    let status_events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE msg_id LIKE 'delivery:%'")
        .fetch_one(&h.sandbox.pool)
        .await
        .unwrap();
    assert_eq!(status_events, 1);
    h.stop().await;
}

#[tokio::test]
async fn a_rate_limited_send_is_retried_and_sent_once() {
    // Arrange
    let h = Harness::start().await;
    h.fake.fail_next(1, 429, 130429);
    let (message, job) = h.reply("tente de novo").await;

    // Act
    h.enqueue(&job, &format!("out:{message}")).await;

    // Assert
    let (_, attempts, provider_id, _) = h.wait_for_state(message, "sent").await;
    assert_eq!(attempts, 2, "one refused attempt, one accepted");
    let sends = h.fake.sent();
    assert_eq!(sends.len(), 1);
    assert_eq!(provider_id.as_deref(), Some(sends[0].provider_message_id.as_str()));
    let (_, status) = h.status_event(message, "accepted").await;
    assert_eq!(status.provider_message_id, sends[0].provider_message_id);
    h.wait_all_acked(1).await;
    h.stop().await;
}

#[tokio::test]
async fn an_undeliverable_message_is_recorded_as_failed_and_not_retried() {
    // Arrange
    let h = Harness::start().await;
    h.fake.fail_next(1, 400, 131026);
    let (message, job) = h.reply("número inexistente").await;

    // Act
    h.enqueue(&job, &format!("out:{message}")).await;

    // Assert
    let (_, attempts, provider_id, error) = h.wait_for_state(message, "failed").await;
    assert_eq!(attempts, 1);
    assert_eq!(provider_id, None);
    assert!(error.is_some_and(|e| !e.is_empty()), "the provider's reason is kept");
    let (_, status) = h.status_event(message, "failed").await;
    assert_eq!(status.status, "failed");
    assert_eq!(status.message_id, message.to_string());
    assert_eq!(status.error_code, "131026");
    // Acked, not nak'ed: no redelivery is pending, so no second attempt can come.
    h.wait_all_acked(1).await;
    assert!(h.fake.sent().is_empty());
    assert_eq!(
        h.delivery(message).await.map(|d| (d.0, d.1)),
        Some(("failed".to_string(), 1))
    );
    h.stop().await;
}
