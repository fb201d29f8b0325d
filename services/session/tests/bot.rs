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

/// After a finish the service's satisfaction question goes out; the customer's next message
/// answers it (a score stays in the finished conversation, with thanks), and the
/// interaction report lists the whole life of the protocol — as rows and as streamed CSV.
#[tokio::test]
async fn the_satisfaction_answer_is_kept_on_the_protocol_and_the_report_shows_it_all() {
    use atende_proto::v1::session_service_client::SessionServiceClient;
    let b = Bot::start(false, 1, false).await;
    let pool = b.pool().clone();
    sqlx::query("UPDATE services SET csat_question = 'De 1 a 5, como foi o atendimento?' WHERE id = $1")
        .bind(b.sales)
        .execute(&pool)
        .await
        .unwrap();
    let ana = fixtures::agent(&pool, b.tenant, "Ana", &[b.sales], 3).await;
    let mut session = SessionServiceClient::new(b.sandbox.grpc(b.roles[0].started.grpc_addr));

    // Two customers' lives: each writes, is assigned to Ana, finished; one scores, one not.
    async fn live(
        b: &Bot,
        session: &mut SessionServiceClient<atende_runtime::AuthedChannel>,
        ana: Uuid,
        phone: &str,
    ) -> (Uuid, String) {
        let mut first = b.text(&format!("wamid.{phone}.1"), "Oi, quero ajuda");
        if let Some(inbound_event::Item::Message(m)) = first.item.as_mut() {
            m.from_phone = phone.into();
        }
        let seq = b.publish(&first).await;
        b.wait_consumed(seq).await;
        let (id, protocol): (Uuid, String) = sqlx::query_as(
            "SELECT c.id, c.protocol FROM conversations c JOIN contact_identities i ON i.contact_id = c.contact_id
             WHERE i.value = $1 ORDER BY c.opened_at DESC LIMIT 1",
        )
        .bind(phone)
        .fetch_one(b.pool())
        .await
        .unwrap();
        sqlx::query("UPDATE conversations SET status = 'assigned', agent_id = $2 WHERE id = $1")
            .bind(id)
            .bind(ana)
            .execute(b.pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO assignments (id, tenant_id, conversation_id, agent_id, service_id) VALUES ($1, $2, $3, $4, $5)")
            .bind(Uuid::now_v7())
            .bind(b.tenant)
            .bind(id)
            .bind(ana)
            .bind(b.sales)
            .execute(b.pool())
            .await
            .unwrap();
        session
            .finish_conversation(pb::FinishConversationRequest {
                tenant_id: b.tenant.to_string(),
                conversation_id: id.to_string(),
                agent_id: ana.to_string(),
                ..Default::default()
            })
            .await
            .unwrap();
        (id, protocol)
    }
    let (first, protocol) = live(&b, &mut session, ana, CUSTOMER).await;
    assert_eq!(
        b.bot_texts().await,
        vec!["De 1 a 5, como foi o atendimento?".to_string()]
    );

    b.say("wamid.R1", "5").await;
    let (score, conversations): (Option<i16>, i64) = sqlx::query_as(
        "SELECT (SELECT csat_score FROM protocols WHERE number = $1), (SELECT count(*) FROM conversations)",
    )
    .bind(&protocol)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (score, conversations),
        (Some(5), 1),
        "the score is kept; no new conversation"
    );
    assert_eq!(b.bot_texts().await.last().unwrap(), "Obrigado pela sua avaliação!");
    let in_finished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE conversation_id = $1 AND body = '5'")
            .bind(first)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(in_finished, 1);
    // The next message is an ordinary one: a new conversation.
    b.say("wamid.R2", "Oi de novo").await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2);

    // Another customer answers with words: no score, and the message opens a conversation.
    let (_, other_protocol) = live(&b, &mut session, ana, "5521988887777").await;
    let mut words = b.text("wamid.W1", "foi ótimo, obrigado");
    if let Some(inbound_event::Item::Message(m)) = words.item.as_mut() {
        m.from_phone = "5521988887777".into();
    }
    let seq = b.publish(&words).await;
    b.wait_consumed(seq).await;
    let (score, answered): (Option<i16>, bool) =
        sqlx::query_as("SELECT csat_score, csat_answered_at IS NOT NULL FROM protocols WHERE number = $1")
            .bind(&other_protocol)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((score, answered), (None, true), "asked once, not answered with a score");

    // The report: the first protocol's life in order, and the same rows as CSV.
    let report = session
        .list_interactions(pb::ListInteractionsRequest {
            tenant_id: b.tenant.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .interactions;
    let life: Vec<(String, String)> = report
        .iter()
        .filter(|r| r.protocol == protocol)
        .map(|r| (r.event.clone(), r.what.clone()))
        .collect();
    for expected in [
        ("status", "queued"),
        ("message", "inbound"),
        ("status", "finished"),
        ("finish", "finished"),
        ("message", "outbound"),
        ("csat", "5"),
    ] {
        assert!(
            life.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} missing from {life:?}"
        );
    }
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = session
            .list_interactions(pb::ListInteractionsRequest {
                tenant_id: b.tenant.to_string(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        paged.extend(page.interactions);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, report, "pages of 3 give the same rows, none skipped or repeated");
    let mut stream = session
        .export_interactions(pb::ExportInteractionsRequest {
            tenant_id: b.tenant.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut csv = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        csv.extend(chunk.data);
    }
    let text = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "protocol,at,event,what,actor_kind,actor_id,service_id,agent_id,channel,qualification,detail"
    );
    assert_eq!(lines.len(), report.len() + 1);
    assert!(
        text.contains("\"text: foi ótimo, obrigado\""),
        "commas are quoted: {text}"
    );
    // Filters: by agent, nothing for another one.
    let none = session
        .list_interactions(pb::ListInteractionsRequest {
            tenant_id: b.tenant.to_string(),
            filter: Some(pb::InteractionFilter {
                agent_id: Uuid::now_v7().to_string(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .interactions;
    assert!(none.is_empty());
    b.stop().await;
}
