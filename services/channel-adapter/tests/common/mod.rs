//! The running channel-adapter every webhook test boots: one role in its own [`Sandbox`] with
//! one WhatsApp channel, and helpers to post and count what was stored.

#![allow(dead_code)]

use std::time::Duration;

use atende_config::Config;
use atende_proto::v1::{inbound_event, InboundEvent, InboundMessage};
use atende_testkit::fixtures::{self, ChannelSpec, RunningRole};
use atende_testkit::whatsapp as wa;
use atende_testkit::Sandbox;
use prost::Message as _;
use serde_json::Value;
use uuid::Uuid;

pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "verify-me-please";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const CUSTOMER: &str = "5511987654321";
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running channel-adapter with one WhatsApp channel.
pub struct Adapter {
    pub sandbox: Sandbox,
    pub role: RunningRole,
    pub http: reqwest::Client,
    pub tenant_id: Uuid,
    pub channel_id: Uuid,
}

impl Adapter {
    pub async fn start() -> Adapter {
        Adapter::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Adapter {
        let mut sandbox = Sandbox::new().await;
        configure(&mut sandbox.config);
        let pool = &sandbox.pool;
        let channel = ChannelSpec {
            app_secret: APP_SECRET,
            verify_token: VERIFY_TOKEN,
            access_token: "EAAG-test",
            ..ChannelSpec::new(PHONE_NUMBER_ID)
        };
        let acme = fixtures::tenant_with_whatsapp(pool, channel).await;
        let (tenant_id, channel_id) = (acme.tenant, acme.channel.id);
        let role = RunningRole::start(|stop| atende_channel_adapter::build(&sandbox.config, stop)).await;
        Adapter {
            sandbox,
            role,
            http: reqwest::Client::new(),
            tenant_id,
            channel_id,
        }
    }

    pub fn url_for(&self, channel: &str) -> String {
        format!(
            "http://{}/webhooks/whatsapp/{channel}",
            self.role.started.http_addr.expect("http address")
        )
    }

    pub fn url(&self) -> String {
        self.url_for(&self.channel_id.to_string())
    }

    pub async fn post(&self, url: &str, body: Vec<u8>, signature: Option<String>) -> reqwest::Response {
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        req.send().await.expect("webhook request")
    }

    pub async fn post_signed(&self, body: &[u8]) -> reqwest::Response {
        self.post(&self.url(), body.to_vec(), Some(wa::sign(APP_SECRET.as_bytes(), body)))
            .await
    }

    pub async fn receipts(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM webhook_receipts")
            .fetch_one(&self.sandbox.pool)
            .await
            .unwrap()
    }

    pub async fn outbox_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.sandbox.pool)
            .await
            .unwrap()
    }

    /// The inbound events waiting in (or relayed from) the outbox, oldest first.
    pub async fn outbox_events(&self) -> Vec<InboundEvent> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox ORDER BY id")
            .fetch_all(&self.sandbox.pool)
            .await
            .unwrap();
        rows.iter()
            .map(|p| InboundEvent::decode(p.as_slice()).expect("outbox payload is an InboundEvent"))
            .collect()
    }

    pub async fn stop(self) {
        self.role.stop(DEADLINE).await;
        self.sandbox.cleanup().await;
    }
}

pub fn text_webhook(wamid: &str, body: &str) -> Vec<u8> {
    wa::text_message_webhook(PHONE_NUMBER_ID, CUSTOMER, "Maria Silva", wamid, body, 1_763_700_000)
}

pub fn message_of(event: &InboundEvent) -> &InboundMessage {
    match event.item.as_ref() {
        Some(inbound_event::Item::Message(m)) => m,
        other => panic!("expected a message event, got {other:?}"),
    }
}

pub async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("error body is json");
    body["error"]["code"].as_str().unwrap_or_default().to_string()
}
