//! The menu bot and the opening rule through the real inbound consumer (NATS → session →
//! Postgres): a channel with a menu greets a new customer and keeps the conversation in the
//! bot, an unknown answer re-prompts, option 2 queues it in the second service with a route
//! request; the inactivity pass (on an injected `now`) sends it to the fallback service or
//! closes it as abandoned. And 100 first messages of one new customer, consumed at once by
//! three session replicas, open exactly one conversation, whatever the tenant flag.

use std::time::Duration;

use atende_bus::{Bus, StreamKind};
use atende_domain::channel::ChannelKind;
use atende_proto::v1::{self as pb, inbound_event, InboundEvent, InboundMessage, OutboundMessage, RouteRequest};
use atende_store::admin::{self, NewService};
use atende_testkit::fixtures::{self, ChannelSpec, RunningRole};
use atende_testkit::{wait_until, Sandbox};
use prost::Message as _;
use uuid::Uuid;

const PHONE_NUMBER_ID: &str = "106540352242922";
const CUSTOMER: &str = "5511987654321";
const DEADLINE: Duration = Duration::from_secs(20);

struct Bot {
    sandbox: Sandbox,
    roles: Vec<RunningRole>,
    bus: Bus,
    tenant: Uuid,
    channel: Uuid,
    sales: Uuid,
    support: Uuid,
}

impl Bot {
    /// A tenant whose WhatsApp channel has a two-option menu ("1 - Vendas", "2 - Suporte"),
    /// with `fallback` after 10 minutes of silence; `replicas` session roles.
    async fn start(fallback: bool, replicas: usize, with_menu: bool) -> Bot {
        let sandbox = Sandbox::new().await;
        let pool = &sandbox.pool;
        let acme = fixtures::tenant_with_whatsapp(pool, ChannelSpec::new(PHONE_NUMBER_ID)).await;
        let support = admin::create_service(
            pool,
            &NewService {
                id: Uuid::now_v7(),
                tenant_id: acme.tenant,
                name: "Suporte",
                policy: "least_loaded",
                offer_timeout_secs: 60,
                priority: 0,
            },
        )
        .await
        .unwrap()
        .id;
        if with_menu {
            let menu = serde_json::json!({
                "greeting": "Olá! Digite o número da opção:",
                "options": [
                    { "label": "Vendas", "service": acme.service },
                    { "label": "Suporte", "service": support },
                ],
                "invalid_reply": "Não entendi.",
                "inactivity_secs": 600,
                "fallback_service": if fallback { Some(acme.service) } else { None },
            });
            sqlx::query("UPDATE channels SET menu = $2 WHERE id = $1")
                .bind(acme.channel.id)
                .bind(menu)
                .execute(pool)
                .await
                .unwrap();
        }
        let mut roles = Vec::new();
        for _ in 0..replicas {
            roles.push(RunningRole::start(|stop| atende_session::build(&sandbox.config, stop)).await);
        }
        let bus = Bus::connect(&sandbox.config.nats.url, &sandbox.config.namespace.prefix)
            .await
            .unwrap();
        Bot {
            sandbox,
            roles,
            bus,
            tenant: acme.tenant,
            channel: acme.channel.id,
            sales: acme.service,
            support,
        }
    }

    fn pool(&self) -> &sqlx::PgPool {
        &self.sandbox.pool
    }

    fn text(&self, wamid: &str, text: &str) -> InboundEvent {
        InboundEvent {
            event_id: Uuid::now_v7().to_string(),
            tenant_id: self.tenant.to_string(),
            channel_id: self.channel.to_string(),
            channel_kind: pb::ChannelKind::Whatsapp as i32,
            received_at_ms: 1_763_700_000_000,
            item: Some(inbound_event::Item::Message(InboundMessage {
                provider_message_id: wamid.to_string(),
                from_phone: CUSTOMER.to_string(),
                profile_name: "Maria Silva".to_string(),
                kind: "text".to_string(),
                text: text.to_string(),
                ..Default::default()
            })),
        }
    }

    async fn publish(&self, event: &InboundEvent) -> u64 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", Uuid::now_v7().to_string().as_str());
        let subject = self.bus.subjects.inbound(self.tenant, ChannelKind::Whatsapp);
        let ack = self
            .bus
            .js
            .publish_with_headers(subject, headers, bytes::Bytes::from(event.encode_to_vec()))
            .await
            .unwrap();
        ack.await.unwrap().sequence
    }

    async fn wait_consumed(&self, seq: u64) {
        let stream = self
            .bus
            .js
            .get_stream(self.bus.subjects.stream_name(StreamKind::Inbound))
            .await
            .unwrap();
        wait_until(&format!("inbound events up to {seq} consumed"), DEADLINE, || async {
            let info = stream.consumer_info("session").await.ok()?;
            (info.ack_floor.stream_sequence >= seq && info.num_ack_pending == 0 && info.num_pending == 0).then_some(())
        })
        .await;
    }

    async fn say(&self, wamid: &str, text: &str) {
        let seq = self.publish(&self.text(wamid, text)).await;
        self.wait_consumed(seq).await;
    }

    async fn conversation(&self) -> (Uuid, String, Option<Uuid>) {
        sqlx::query_as("SELECT id, status, service_id FROM conversations ORDER BY opened_at DESC LIMIT 1")
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// Texts the bot sent, oldest first.
    async fn bot_texts(&self) -> Vec<String> {
        let subject = self.bus.subjects.outbound(self.tenant, ChannelKind::Whatsapp);
        let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox WHERE subject = $1 ORDER BY id")
            .bind(subject)
            .fetch_all(self.pool())
            .await
            .unwrap();
        rows.iter()
            .map(|p| OutboundMessage::decode(p.as_slice()).unwrap())
            .inspect(|m| assert_eq!(m.to, CUSTOMER))
            .map(|m| m.text)
            .collect()
    }

    async fn routes(&self, service: Uuid) -> Vec<RouteRequest> {
        let subject = self.bus.subjects.route(self.tenant, service);
        let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox WHERE subject = $1 ORDER BY id")
            .bind(subject)
            .fetch_all(self.pool())
            .await
            .unwrap();
        rows.iter()
            .map(|p| RouteRequest::decode(p.as_slice()).unwrap())
            .collect()
    }

    async fn stop(self) {
        for r in self.roles {
            r.stop(DEADLINE).await;
        }
        self.sandbox.cleanup().await;
    }
}

const MENU: &str = "Olá! Digite o número da opção:\n1 - Vendas\n2 - Suporte";

#[tokio::test]
async fn the_menu_greets_re_prompts_and_option_two_queues_the_conversation_in_the_second_service() {
    let b = Bot::start(true, 1, true).await;

    b.say("wamid.B1", "Oi").await;
    let (id, status, service) = b.conversation().await;
    assert_eq!((status.as_str(), service), ("bot", None));
    assert_eq!(b.bot_texts().await, vec![MENU.to_string()]);
    assert!(b.routes(b.sales).await.is_empty() && b.routes(b.support).await.is_empty());

    b.say("wamid.B2", "quero falar com alguém").await;
    assert_eq!(b.conversation().await.1, "bot");
    assert_eq!(b.bot_texts().await[1], format!("Não entendi.\n\n{MENU}"));

    b.say("wamid.B3", "2").await;
    assert_eq!(b.conversation().await, (id, "queued".to_string(), Some(b.support)));
    let routes = b.routes(b.support).await;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].conversation_id, id.to_string());
    let protocol_service: Option<Uuid> =
        sqlx::query_scalar("SELECT service_id FROM protocols WHERE conversation_id = $1")
            .bind(id)
            .fetch_one(b.pool())
            .await
            .unwrap();
    assert_eq!(protocol_service, Some(b.support));
    let steps: Vec<(Option<String>, String, String, Option<String>)> = sqlx::query_as(
        "SELECT from_status, to_status, actor_kind, reason FROM conversation_transitions WHERE conversation_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(b.pool())
    .await
    .unwrap();
    assert_eq!(
        steps,
        vec![
            (None, "bot".into(), "customer".into(), Some("opened".into())),
            (
                Some("bot".into()),
                "queued".into(),
                "customer".into(),
                Some("menu option 2".into())
            ),
        ]
    );
    // Later messages join the queued conversation; the bot says nothing more.
    b.say("wamid.B4", "alô?").await;
    assert_eq!(b.bot_texts().await.len(), 2);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations")
        .fetch_one(b.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
    b.stop().await;
}

#[tokio::test]
async fn a_silent_customer_goes_to_the_fallback_service_after_the_window() {
    let b = Bot::start(true, 1, true).await;
    b.say("wamid.S1", "Oi").await;
    let subjects = b.bus.subjects.clone();
    let now = time::OffsetDateTime::now_utc();
    // Within the window nothing moves.
    let moved = atende_session::bot::sweep(b.pool(), &subjects, now + Duration::from_secs(599))
        .await
        .unwrap();
    assert_eq!(moved, 0);
    assert_eq!(b.conversation().await.1, "bot");
    let moved = atende_session::bot::sweep(b.pool(), &subjects, now + Duration::from_secs(601))
        .await
        .unwrap();
    assert_eq!(moved, 1);
    let (id, status, service) = b.conversation().await;
    assert_eq!((status.as_str(), service), ("queued", Some(b.sales)));
    assert_eq!(b.routes(b.sales).await.len(), 1);
    let reason: Option<String> = sqlx::query_scalar(
        "SELECT reason FROM conversation_transitions WHERE conversation_id = $1 AND to_status = 'queued'",
    )
    .bind(id)
    .fetch_one(b.pool())
    .await
    .unwrap();
    assert_eq!(reason.as_deref(), Some("bot_inactivity"));
    // A second pass finds nothing.
    let again = atende_session::bot::sweep(b.pool(), &subjects, now + Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(again, 0);
    b.stop().await;
}

#[tokio::test]
async fn without_a_fallback_a_silent_customers_conversation_is_abandoned_and_the_next_message_opens_a_new_one() {
    let b = Bot::start(false, 1, true).await;
    b.say("wamid.A1", "Oi").await;
    let (first, _, _) = b.conversation().await;
    let subjects = b.bus.subjects.clone();
    let later = time::OffsetDateTime::now_utc() + Duration::from_secs(601);
    assert_eq!(atende_session::bot::sweep(b.pool(), &subjects, later).await.unwrap(), 1);
    let status: String = sqlx::query_scalar("SELECT status FROM conversations WHERE id = $1")
        .bind(first)
        .fetch_one(b.pool())
        .await
        .unwrap();
    assert_eq!(status, "abandoned");
    b.say("wamid.A2", "Oi de novo").await;
    let (second, status, _) = b.conversation().await;
    assert_ne!(second, first);
    assert_eq!(status, "bot");
    let protocols: i64 = sqlx::query_scalar("SELECT count(DISTINCT number) FROM protocols")
        .fetch_one(b.pool())
        .await
        .unwrap();
    assert_eq!(protocols, 2);
    b.stop().await;
}

async fn hundred_first_messages_open_one_conversation(flag: bool, with_menu: bool) {
    let b = Bot::start(true, 3, with_menu).await;
    sqlx::query("UPDATE tenants SET allow_simultaneous_conversations = $2 WHERE id = $1")
        .bind(b.tenant)
        .bind(flag)
        .execute(b.pool())
        .await
        .unwrap();
    let events: Vec<InboundEvent> = (0..100).map(|i| b.text(&format!("wamid.C{i:03}"), "Oi")).collect();
    let seqs = futures::future::join_all(events.iter().map(|e| b.publish(e))).await;
    b.wait_consumed(seqs.into_iter().max().unwrap()).await;
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM conversations), (SELECT count(*) FROM messages WHERE direction = 'inbound')",
    )
    .fetch_one(b.pool())
    .await
    .unwrap();
    assert_eq!(counts, (1, 1, 100), "flag {flag}, menu {with_menu}");
    if with_menu {
        assert_eq!(
            b.bot_texts().await.len(),
            100,
            "one prompt, then a re-prompt per unanswered message"
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn a_hundred_simultaneous_first_messages_open_one_conversation_with_the_flag_off() {
    hundred_first_messages_open_one_conversation(false, false).await;
}

#[tokio::test]
async fn a_hundred_simultaneous_first_messages_open_one_conversation_with_the_flag_on_and_a_menu() {
    hundred_first_messages_open_one_conversation(true, true).await;
}
