//! A conversation's whole life with every role running: the customer writes → the channel's
//! menu bot answers → option 2 → service Suporte → its agent is assigned → he transfers it
//! to Financeiro → a new linked protocol, the same opening (TTA keeps running), the Financeiro
//! agent is assigned, and the first agent, freed, is at once given the conversation waiting
//! in Suporte → the Financeiro agent finishes with a qualification and an external protocol
//! → the transcript arrives at the tenant's SMTP server (a real aiosmtpd process) → his
//! capacity is back to zero in Redis and Postgres → the customer writes again → a new
//! conversation with a new protocol, greeted by the bot.

use atende_e2e::{Platform, Tenant, DEADLINE};
use atende_proto::v1::{
    self as pb, router_service_client::RouterServiceClient, session_service_client::SessionServiceClient,
};
use atende_testkit::whatsapp::text_message_webhook;

async fn load(p: &Platform, t: &Tenant, agent: &str) -> (u32, i64) {
    let mut router = RouterServiceClient::new(p.sandbox.grpc(&p.router_grpc));
    let presence = router
        .get_presence(pb::GetPresenceRequest {
            tenant_id: t.tenant_id.clone(),
            agent_id: agent.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .presence
        .unwrap();
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM assignments WHERE agent_id = $1::uuid AND released_at IS NULL")
            .bind(agent)
            .fetch_one(&p.sandbox.pool)
            .await
            .unwrap();
    (presence.assigned + presence.offered, open)
}

/// The seeded number's business account lists one approved template, `name` with `body`,
/// and the broadcast role syncs it from the fake Graph API.
async fn synced_template(p: &Platform, t: &Tenant, name: &str, body: &str) {
    use atende_proto::v1::broadcast_service_client::BroadcastServiceClient;
    let (tenant, channel) = (
        uuid::Uuid::parse_str(&t.tenant_id).unwrap(),
        uuid::Uuid::parse_str(&t.channel_id).unwrap(),
    );
    atende_store::templates::set_business_account(&p.sandbox.pool, tenant, channel, "102290129340398")
        .await
        .unwrap();
    p.fake.link_number(&t.phone_number_id, "102290129340398");
    p.fake.set_templates(
        "102290129340398",
        vec![serde_json::json!({
            "id": "778", "name": name, "language": "pt_BR", "status": "APPROVED",
            "category": "UTILITY", "components": [{ "type": "BODY", "text": body }]
        })],
    );
    let broadcast = p.started.iter().find(|s| s.role == "broadcast").unwrap().grpc_addr;
    let synced = BroadcastServiceClient::new(p.sandbox.grpc(format!("http://127.0.0.1:{}", broadcast.port())))
        .sync_templates(pb::SyncTemplatesRequest {
            tenant_id: t.tenant_id.clone(),
            channel_id: t.channel_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(synced.listed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bot_menu_to_service_transfer_with_a_new_protocol_finish_and_a_new_conversation_afterwards() {
    let p = Platform::start().await;
    let t = p.seed().await;
    let support = p.service(&t, "Suporte", &["resolvido"], false).await;
    let billing = p.service(&t, "Financeiro", &["pago", "negociado"], true).await;
    let smtp = atende_testkit::smtp_server::SmtpServer::start();
    let mut admin = p.admin().await;
    // The tenant requires an external protocol on finish; the channel greets with a menu.
    admin
        .create_tenant(pb::CreateTenantRequest {
            id: t.tenant_id.clone(),
            name: "Acme".into(),
            slug: t.slug.clone(),
            require_external_protocol: true,
            mail: Some(pb::MailSettings {
                host: "127.0.0.1".into(),
                port: u32::from(smtp.port),
                tls: "none".into(),
                from_address: "atendimento@acme.test".into(),
                transcript_enabled: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .create_channel(pb::CreateChannelRequest {
            id: t.channel_id.clone(),
            tenant_id: t.tenant_id.clone(),
            kind: pb::ChannelKind::Whatsapp as i32,
            name: "WhatsApp".into(),
            provider_account_id: t.phone_number_id.clone(),
            app_secret: t.app_secret.clone(),
            verify_token: "verify".into(),
            access_token: t.access_token.clone(),
            default_service_id: t.service_id.clone(),
            menu: Some(pb::BotMenu {
                greeting: "Olá! Como podemos ajudar?".into(),
                options: vec![
                    pb::BotMenuOption {
                        label: "Vendas".into(),
                        service_id: t.service_id.clone(),
                    },
                    pb::BotMenuOption {
                        label: "Suporte".into(),
                        service_id: support.clone(),
                    },
                ],
                inactivity_secs: 600,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let bruno = p.agent_in(&t, "Bruno", &support).await;
    let carla = p.agent_in(&t, "Carla", &billing).await;
    let (_, mut bruno_ws) = p.online(&bruno).await;
    let (_, mut carla_ws) = p.online(&carla).await;
    let mut session = SessionServiceClient::new(p.sandbox.grpc(&p.session_grpc));
    let now = atende_e2e::now_secs;
    let write = |from: &'static str, wamid: &str, text: &str| {
        text_message_webhook(&t.phone_number_id, from, "Maria Souza", wamid, text, now())
    };
    const MARIA: &str = "5511987654321";
    const JOAO: &str = "5511912345678";

    // The customer writes; the bot answers with the menu.
    assert_eq!(
        p.post_webhook(&t, &write(MARIA, "wamid.L1", "Oi"), None).await.status(),
        200
    );
    let sends = p.fake.wait_for_sends(1, DEADLINE).await;
    assert_eq!(sends[0].body["to"], MARIA);
    assert_eq!(
        sends[0].body["text"]["body"],
        "Olá! Como podemos ajudar?\n1 - Vendas\n2 - Suporte"
    );

    // Option 2: Suporte, where Bruno takes it.
    assert_eq!(
        p.post_webhook(&t, &write(MARIA, "wamid.L2", "2"), None).await.status(),
        200
    );
    let assigned = bruno_ws.next_of("conversation.assigned").await;
    let first = assigned["data"]["conversation"].clone();
    let conversation_id = first["id"].as_str().unwrap().to_string();
    assert_eq!(first["service_id"], support.as_str());
    let first_protocol = first["protocol"].as_str().unwrap().to_string();
    let opened_at = first["opened_at_ms"].as_i64().unwrap();

    // A second customer picks Suporte too and waits: Bruno is full (1).
    assert_eq!(
        p.post_webhook(&t, &write(JOAO, "wamid.J1", "Oi"), None).await.status(),
        200
    );
    p.fake.wait_for_sends(2, DEADLINE).await;
    assert_eq!(
        p.post_webhook(&t, &write(JOAO, "wamid.J2", "2"), None).await.status(),
        200
    );
    let waiting_id = atende_testkit::wait_until("João queued in Suporte", DEADLINE, || async {
        sqlx::query_scalar::<_, uuid::Uuid>(
            "SELECT c.id FROM conversations c JOIN route_queue q ON q.conversation_id = c.id WHERE c.status = 'queued' AND c.service_id = $1::uuid",
        )
        .bind(&support)
        .fetch_optional(&p.sandbox.pool)
        .await
        .unwrap()
    })
    .await;

    // Bruno transfers Maria to Financeiro.
    let moved = session
        .transfer_conversation(pb::TransferConversationRequest {
            tenant_id: t.tenant_id.clone(),
            conversation_id: conversation_id.clone(),
            agent_id: bruno.agent_id.clone(),
            target_service_id: billing.clone(),
            qualification: "resolvido".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let current = moved.current.unwrap();
    assert_ne!(current.number, first_protocol, "a new protocol for the new leg");
    assert_eq!(current.previous_number, first_protocol);

    // Carla gets Maria under the new protocol, same opening; Bruno, freed, gets João at once.
    let to_carla = carla_ws
        .next_matching("conversation.assigned", |f| {
            f["data"]["conversation"]["id"] == conversation_id.as_str()
        })
        .await;
    assert_eq!(to_carla["data"]["conversation"]["protocol"], current.number.as_str());
    assert_eq!(to_carla["data"]["conversation"]["opened_at_ms"], opened_at);
    bruno_ws.next_of("conversation.transferred").await;
    let to_bruno = bruno_ws
        .next_matching("conversation.assigned", |f| {
            f["data"]["conversation"]["id"] == waiting_id.to_string().as_str()
        })
        .await;
    assert_eq!(to_bruno["data"]["conversation"]["agent_id"], bruno.agent_id.as_str());
    let metrics = session
        .get_conversation_metrics(pb::GetConversationMetricsRequest {
            tenant_id: t.tenant_id.clone(),
            conversation_id: conversation_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let since_opening = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - opened_at;
    assert!(
        metrics.tta_ms >= since_opening - 1000,
        "TTA {} runs from the first opening ({since_opening} ms ago)",
        metrics.tta_ms
    );

    // Carla finishes: the external protocol is required, then accepted.
    let mut finish = pb::FinishConversationRequest {
        tenant_id: t.tenant_id.clone(),
        conversation_id: conversation_id.clone(),
        agent_id: carla.agent_id.clone(),
        qualification: "pago".into(),
        description: "boleto reenviado".into(),
        ..Default::default()
    };
    let refused = session.finish_conversation(finish.clone()).await.unwrap_err();
    assert_eq!(
        atende_runtime::errors::status_code_of(&refused),
        Some(atende_domain::ErrorCode::ExternalProtocolRequired)
    );
    finish.external_protocol = "CRM-2026-0042".into();
    finish.transcript_email = "maria@cliente.test".into();
    let done = session.finish_conversation(finish).await.unwrap().into_inner();
    assert_eq!(done.conversation.unwrap().status, "finished");
    // The transcript reaches the tenant's SMTP server: the whole conversation, in order.
    let mails = smtp.wait_for(1, DEADLINE).await;
    assert_eq!(mails[0].rcpt_tos, vec!["maria@cliente.test".to_string()]);
    assert!(mails[0].subject.ends_with(&current.number), "{}", mails[0].subject);
    let body = &mails[0].body;
    let at = |needle: &str| body.find(needle).unwrap_or_else(|| panic!("{needle:?} not in {body}"));
    assert!(at("Cliente: Oi") < at("BOT: Olá! Como podemos ajudar?") && at("BOT: Olá!") < at("Cliente: 2"));
    let legs = session
        .list_protocols(pb::ListProtocolsRequest {
            tenant_id: t.tenant_id.clone(),
            conversation_id: conversation_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .protocols;
    let summary: Vec<(&str, &str, &str)> = legs
        .iter()
        .map(|l| {
            (
                l.qualification.as_str(),
                l.external_protocol.as_str(),
                l.close_reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![("resolvido", "", "transferred"), ("pago", "CRM-2026-0042", "finished")]
    );
    atende_testkit::wait_until("Carla's capacity back to zero", DEADLINE, || async {
        (load(&p, &t, &carla.agent_id).await == (0, 0)).then_some(())
    })
    .await;
    assert_eq!(load(&p, &t, &bruno.agent_id).await, (1, 1), "Bruno holds João only");

    // Maria writes again: a new conversation, a new protocol, greeted by the bot.
    assert_eq!(
        p.post_webhook(&t, &write(MARIA, "wamid.L3", "Oi de novo"), None)
            .await
            .status(),
        200
    );
    let sends = p.fake.wait_for_sends(3, DEADLINE).await;
    let to_maria: Vec<_> = sends.iter().filter(|s| s.body["to"] == MARIA).collect();
    assert_eq!(to_maria.len(), 2, "the menu again");
    let (count, newest): (i64, String) = sqlx::query_as(
        "SELECT count(*), max(protocol) FROM conversations c JOIN contact_identities i ON i.contact_id = c.contact_id
         WHERE i.value = $1",
    )
    .bind(MARIA)
    .fetch_one(&p.sandbox.pool)
    .await
    .unwrap();
    assert_eq!(count, 2);
    assert!(newest != first_protocol && newest != current.number);

    bruno_ws.close().await;
    carla_ws.close().await;
    p.stop().await;
}

/// Ten agents (five conversations each at most) and a thousand customers: every
/// conversation is assigned, finished through SessionService as soon as it lands on an
/// agent, and at the end every agent is back at load 0 in Redis and in Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_agents_finish_a_thousand_conversations_and_every_load_returns_to_zero() {
    use futures::StreamExt;
    const CUSTOMERS: usize = 1000;
    let p = Platform::start().await;
    let t = p.seed().await;
    let mut agents = Vec::new();
    let mut sockets = Vec::new();
    for i in 0..10 {
        let email = format!("agent{i}@acme.test");
        let a = p
            .admin()
            .await
            .create_agent(pb::CreateAgentRequest {
                tenant_id: t.tenant_id.clone(),
                name: format!("Agent {i}"),
                email: email.clone(),
                password: "correct horse".into(),
                max_concurrent: 5,
                service_ids: vec![t.service_id.clone()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .agent
            .unwrap();
        let who = Tenant {
            agent_id: a.id,
            agent_email: email,
            agent_password: "correct horse".into(),
            ..t.clone()
        };
        let (_, socket) = p.online(&who).await;
        sockets.push(socket);
        agents.push(who);
    }

    let posting = {
        let p = &p;
        let t = &t;
        futures::stream::iter(0..CUSTOMERS)
            .map(move |i| async move {
                let body = text_message_webhook(
                    &t.phone_number_id,
                    &format!("55119{:08}", 10_000_000 + i),
                    "Cliente",
                    &format!("wamid.K{i:05}"),
                    "Oi",
                    atende_e2e::now_secs(),
                );
                assert_eq!(p.post_webhook(t, &body, None).await.status(), 200);
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
    };
    let finishing = async {
        let session = SessionServiceClient::new(p.sandbox.grpc(&p.session_grpc));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(240);
        loop {
            let finished: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations WHERE status = 'finished'")
                .fetch_one(&p.sandbox.pool)
                .await
                .unwrap();
            if finished as usize == CUSTOMERS {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "only {finished} finished");
            let assigned: Vec<(uuid::Uuid, uuid::Uuid)> =
                sqlx::query_as("SELECT id, agent_id FROM conversations WHERE status = 'assigned' LIMIT 100")
                    .fetch_all(&p.sandbox.pool)
                    .await
                    .unwrap();
            if assigned.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
            futures::stream::iter(assigned)
                .map(|(c, a)| {
                    let mut s = session.clone();
                    let tenant = t.tenant_id.clone();
                    async move {
                        s.finish_conversation(pb::FinishConversationRequest {
                            tenant_id: tenant,
                            conversation_id: c.to_string(),
                            agent_id: a.to_string(),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    }
                })
                .buffer_unordered(10)
                .collect::<Vec<()>>()
                .await;
        }
    };
    tokio::join!(posting, finishing);

    for a in &agents {
        atende_testkit::wait_until("the agent's load back to zero", DEADLINE, || async {
            (load(&p, &t, &a.agent_id).await == (0, 0)).then_some(())
        })
        .await;
    }
    let (conversations, open_assignments, releases): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM conversations), (SELECT count(*) FROM assignments WHERE released_at IS NULL),
                (SELECT count(*) FROM assignments WHERE release_reason = 'finished')",
    )
    .fetch_one(&p.sandbox.pool)
    .await
    .unwrap();
    assert_eq!(
        (conversations, open_assignments, releases),
        (CUSTOMERS as i64, 0, CUSTOMERS as i64)
    );
    for s in sockets {
        s.close().await;
    }
    p.stop().await;
}

/// An agent starts a WhatsApp conversation (seed 001), the checks in their order: the
/// number's format, the agent's capacity, another agent having the customer; the customer's
/// queued conversation ends and the agent's starts, assigned to him, with his message sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_starts_a_whatsapp_conversation_under_the_seeds_checks() {
    use atende_domain::ErrorCode;
    let p = Platform::start().await;
    let t = p.seed().await;
    // A manual service: what customers write waits there for someone to take it.
    let desk = p
        .create_service(
            &t,
            pb::CreateServiceRequest {
                name: "Recepção".into(),
                policy: "manual".into(),
                ..Default::default()
            },
        )
        .await;
    p.route_channel_to(&t, Some(&desk)).await;
    let ana = p.agent_in(&t, "Ana2", &desk).await;
    let bruno = p.agent_in(&t, "Bruno", &desk).await;
    let (_, mut ana_ws) = p.online(&ana).await;
    let (_, _bruno_ws) = p.online(&bruno).await;
    let mut session = SessionServiceClient::new(p.sandbox.grpc(&p.session_grpc));
    let start = |who: &Tenant, phone: &str| pb::StartConversationRequest {
        tenant_id: t.tenant_id.clone(),
        agent_id: who.agent_id.clone(),
        phone: phone.into(),
        text: "Olá! Aqui é da Acme, podemos falar sobre seu pedido?".into(),
        client_message_id: format!("start-{phone}"),
        ..Default::default()
    };
    let code = |s: &tonic::Status| atende_runtime::errors::status_code_of(s);

    // The number: a mobile needs 11 digits with the DDD.
    let bad = session
        .start_conversation(start(&ana, "(11) 9876-5432"))
        .await
        .unwrap_err();
    assert_eq!(code(&bad), Some(ErrorCode::InvalidPhone));
    let detail = atende_runtime::errors::detail_of(&bad).unwrap();
    assert_eq!(detail.message_pt_br, "Número inválido, corrija e tente novamente");
    // A customer who never wrote: outside the window only a template may go (none yet).
    let never = session
        .start_conversation(start(&ana, "11 91234-5678"))
        .await
        .unwrap_err();
    assert_eq!(code(&never), Some(ErrorCode::OutsideCustomerWindow));

    // Maria wrote and waits in Recepção; Ana starts a conversation with her number.
    let body = text_message_webhook(
        &t.phone_number_id,
        "5511987654321",
        "Maria",
        "wamid.S1",
        "Oi",
        atende_e2e::now_secs(),
    );
    assert_eq!(p.post_webhook(&t, &body, None).await.status(), 200);
    let waiting: uuid::Uuid = atende_testkit::wait_until("Maria waiting", DEADLINE, || async {
        sqlx::query_scalar("SELECT id FROM conversations WHERE status = 'queued'")
            .fetch_optional(&p.sandbox.pool)
            .await
            .unwrap()
    })
    .await;
    let started = session
        .start_conversation(start(&ana, "(11) 98765-4321"))
        .await
        .unwrap()
        .into_inner();
    let conversation = started.conversation.unwrap();
    assert_eq!(conversation.agent_id, ana.agent_id);
    assert_eq!(conversation.status, "assigned");
    assert_eq!(started.ended_conversation_ids, vec![waiting.to_string()]);
    let ended: String = sqlx::query_scalar("SELECT status FROM conversations WHERE id = $1")
        .bind(waiting)
        .fetch_one(&p.sandbox.pool)
        .await
        .unwrap();
    assert_eq!(ended, "abandoned");
    ana_ws
        .next_matching("conversation.assigned", |f| {
            f["data"]["conversation"]["id"] == conversation.id.as_str()
        })
        .await;
    let sends = p.fake.wait_for_sends(1, DEADLINE).await;
    assert_eq!(sends[0].body["to"], "5511987654321");
    assert_eq!(
        sends[0].body["text"]["body"],
        "Olá! Aqui é da Acme, podemos falar sobre seu pedido?"
    );

    // Bruno tries the same customer: another agent has her.
    let other = session
        .start_conversation(start(&bruno, "11987654321"))
        .await
        .unwrap_err();
    assert_eq!(code(&other), Some(ErrorCode::CustomerWithOtherAgent));
    assert_eq!(
        atende_runtime::errors::detail_of(&other).unwrap().message_pt_br,
        "Não foi possível iniciar a conversa. O cliente está sendo atendido por outro agente."
    );
    // Ana is at her maximum (1): she cannot start another, whoever the customer.
    let body = text_message_webhook(
        &t.phone_number_id,
        "5521998887777",
        "José",
        "wamid.S2",
        "Oi",
        atende_e2e::now_secs(),
    );
    assert_eq!(p.post_webhook(&t, &body, None).await.status(), 200);
    atende_testkit::wait_until("José waiting", DEADLINE, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations WHERE status = 'queued'")
            .fetch_one(&p.sandbox.pool)
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    let full = session
        .start_conversation(start(&ana, "21 99888-7777"))
        .await
        .unwrap_err();
    assert_eq!(code(&full), Some(ErrorCode::AgentAtCapacity));
    assert_eq!(
        atende_runtime::errors::detail_of(&full).unwrap().message_pt_br,
        "Não foi possível iniciar a conversa. O número máximo de atendimentos simultâneos foi atingido."
    );
    assert_eq!(load(&p, &t, &ana.agent_id).await, (1, 1));
    ana_ws.close().await;
    p.stop().await;
}

/// In-person attendances need the permission and get their own protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_in_person_attendance_is_registered_with_its_own_protocol_only_with_the_permission() {
    let p = Platform::start().await;
    let t = p.seed().await;
    let mut session = SessionServiceClient::new(p.sandbox.grpc(&p.session_grpc));
    let register = |agent: &str| pb::RegisterInPersonRequest {
        tenant_id: t.tenant_id.clone(),
        agent_id: agent.into(),
        service_id: t.service_id.clone(),
        contact_name: "Dona Cida".into(),
        contact_phone: "(11) 98888-1234".into(),
        description: "Veio à loja trocar o produto".into(),
        ..Default::default()
    };
    let refused = session.register_in_person(register(&t.agent_id)).await.unwrap_err();
    assert_eq!(
        atende_runtime::errors::status_code_of(&refused),
        Some(atende_domain::ErrorCode::PermissionDenied)
    );
    let allowed = p
        .admin()
        .await
        .create_agent(pb::CreateAgentRequest {
            tenant_id: t.tenant_id.clone(),
            name: "Balcão".into(),
            email: "balcao@acme.test".into(),
            password: "correct horse".into(),
            max_concurrent: 1,
            service_ids: vec![t.service_id.clone()],
            can_attend_in_person: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .agent
        .unwrap();
    assert!(allowed.can_attend_in_person);
    let done = session
        .register_in_person(register(&allowed.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.protocol.len(), 14);
    // The same person later writes on WhatsApp: the same contact.
    let body = text_message_webhook(
        &t.phone_number_id,
        "5511988881234",
        "Cida",
        "wamid.P1",
        "Oi",
        atende_e2e::now_secs(),
    );
    assert_eq!(p.post_webhook(&t, &body, None).await.status(), 200);
    let contact: uuid::Uuid = atende_testkit::wait_until("her message stored", DEADLINE, || async {
        sqlx::query_scalar("SELECT contact_id FROM conversations LIMIT 1")
            .fetch_optional(&p.sandbox.pool)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(contact.to_string(), done.contact_id);
    let conversation_protocol: String = sqlx::query_scalar("SELECT protocol FROM conversations LIMIT 1")
        .fetch_one(&p.sandbox.pool)
        .await
        .unwrap();
    assert_ne!(conversation_protocol, done.protocol);
    p.stop().await;
}

/// A transfer to a user (`@`): the colleague gets it directly under a new protocol, the
/// previous agent is freed; an absent colleague is refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_to_a_user_hands_the_conversation_over_with_a_new_protocol() {
    let p = Platform::start().await;
    let t = p.seed().await;
    let ana = p.agent_in(&t, "Ana3", &t.service_id).await;
    let bruno = p.agent_in(&t, "Bruno3", &t.service_id).await;
    let carla = p.agent_in(&t, "Carla3", &t.service_id).await;
    let (_, mut ana_ws) = p.online(&ana).await;
    let mut session = SessionServiceClient::new(p.sandbox.grpc(&p.session_grpc));
    let body = text_message_webhook(
        &t.phone_number_id,
        "5511987654321",
        "Maria",
        "wamid.U1",
        "Oi",
        atende_e2e::now_secs(),
    );
    assert_eq!(p.post_webhook(&t, &body, None).await.status(), 200);
    let assigned = ana_ws.next_of("conversation.assigned").await;
    let id = assigned["data"]["conversation"]["id"].as_str().unwrap().to_string();
    let first_protocol = assigned["data"]["conversation"]["protocol"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, mut bruno_ws) = p.online(&bruno).await;
    let to = |user: &Tenant| pb::TransferConversationRequest {
        tenant_id: t.tenant_id.clone(),
        conversation_id: id.clone(),
        agent_id: ana.agent_id.clone(),
        target_agent_id: user.agent_id.clone(),
        ..Default::default()
    };
    // Carla never logged in: refused, nothing changes.
    let absent = session.transfer_conversation(to(&carla)).await.unwrap_err();
    assert_eq!(
        atende_runtime::errors::status_code_of(&absent),
        Some(atende_domain::ErrorCode::AgentNotAvailable)
    );
    assert_eq!(load(&p, &t, &ana.agent_id).await, (1, 1));

    let moved = session.transfer_conversation(to(&bruno)).await.unwrap().into_inner();
    let conversation = moved.conversation.unwrap();
    assert_eq!(conversation.agent_id, bruno.agent_id);
    assert_eq!(conversation.status, "assigned");
    assert_eq!(moved.current.unwrap().previous_number, first_protocol);
    let handed = bruno_ws
        .next_matching("conversation.assigned", |f| {
            f["data"]["conversation"]["id"] == id.as_str()
        })
        .await;
    assert_ne!(handed["data"]["conversation"]["protocol"], first_protocol.as_str());
    atende_testkit::wait_until("Ana freed", DEADLINE, || async {
        (load(&p, &t, &ana.agent_id).await == (0, 0)).then_some(())
    })
    .await;
    p.sandbox.wait_quiet(DEADLINE).await;
    assert_eq!(
        load(&p, &t, &bruno.agent_id).await,
        (1, 1),
        "the outbox release did not free Bruno's hold"
    );
    ana_ws.close().await;
    bruno_ws.close().await;
    p.stop().await;
}

/// No menu and no default service: the conversation waits in "Aguardando"; of two agents
/// claiming it at once, one gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conversation_in_no_service_waits_in_aguardando_and_the_first_claim_wins() {
    let p = Platform::start().await;
    let t = p.seed().await;
    p.route_channel_to(&t, None).await;
    let ana = p.agent_in(&t, "Ana4", &t.service_id).await;
    let bruno = p.agent_in(&t, "Bruno4", &t.service_id).await;
    let (_, mut ana_ws) = p.online(&ana).await;
    let (_, mut bruno_ws) = p.online(&bruno).await;
    let mut session = SessionServiceClient::new(p.sandbox.grpc(&p.session_grpc));
    let body = text_message_webhook(
        &t.phone_number_id,
        "5511987654321",
        "Maria",
        "wamid.W1",
        "Oi",
        atende_e2e::now_secs(),
    );
    assert_eq!(p.post_webhook(&t, &body, None).await.status(), 200);
    let waiting = atende_testkit::wait_until("Maria in Aguardando", DEADLINE, || {
        let mut s = session.clone();
        let tenant = t.tenant_id.clone();
        async move {
            let list = s
                .list_waiting(pb::ListWaitingRequest { tenant_id: tenant })
                .await
                .unwrap()
                .into_inner()
                .conversations;
            list.first().cloned()
        }
    })
    .await;
    assert_eq!(waiting.service_id, "");
    let claim = |who: &Tenant| pb::ClaimWaitingRequest {
        tenant_id: t.tenant_id.clone(),
        conversation_id: waiting.id.clone(),
        agent_id: who.agent_id.clone(),
        ..Default::default()
    };
    let (mut s1, mut s2) = (session.clone(), session.clone());
    let (a, b) = tokio::join!(s1.claim_waiting(claim(&ana)), s2.claim_waiting(claim(&bruno)));
    let results = [a.map(|r| r.into_inner()), b.map(|r| r.into_inner())];
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    let lost = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!(
        atende_runtime::errors::status_code_of(lost),
        Some(atende_domain::ErrorCode::ConversationNotWaiting)
    );
    let won = results
        .iter()
        .find_map(|r| r.as_ref().ok())
        .unwrap()
        .conversation
        .clone()
        .unwrap();
    assert_eq!(won.status, "assigned");
    assert_eq!(won.service_id, t.service_id);
    let ws = if won.agent_id == ana.agent_id {
        &mut ana_ws
    } else {
        &mut bruno_ws
    };
    ws.next_matching("conversation.assigned", |f| {
        f["data"]["conversation"]["id"] == waiting.id.as_str()
    })
    .await;
    assert!(session
        .list_waiting(pb::ListWaitingRequest {
            tenant_id: t.tenant_id.clone()
        })
        .await
        .unwrap()
        .into_inner()
        .conversations
        .is_empty());
    ana_ws.close().await;
    bruno_ws.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conversation_whose_window_lapsed_expires_and_its_agent_is_free_again() {
    // Arrange: Ana holds Maria's conversation; then a day passes for it (its times, and the
    // customer's window on the number, moved back 25 h).
    let p = Platform::start_configured(|c| c.session.expiry_sweep_ms = 100).await;
    let t = p.seed().await;
    let (_, mut ws) = p.online(&t).await;
    let write = |wamid: &'static str| {
        text_message_webhook(
            &t.phone_number_id,
            "5511987654321",
            "Maria",
            wamid,
            "Oi",
            atende_e2e::now_secs(),
        )
    };
    assert_eq!(p.post_webhook(&t, &write("wamid.EXP1"), None).await.status(), 200);
    let first = ws.next_of("conversation.assigned").await;
    let id = first["data"]["conversation"]["id"].as_str().unwrap().to_string();
    assert_eq!(load(&p, &t, &t.agent_id).await, (1, 1));
    sqlx::query(
        "UPDATE conversations SET last_inbound_at = last_inbound_at - interval '25 hours',
           opened_at = opened_at - interval '25 hours' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&p.sandbox.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE customer_windows SET last_inbound_at = last_inbound_at - interval '25 hours'")
        .execute(&p.sandbox.pool)
        .await
        .unwrap();

    // Act and assert: the conversation expires, Ana is told and is free again.
    let closed = ws.next_of("conversation.closed").await;
    assert_eq!(closed["data"]["reason"], "window_expired");
    assert_eq!(closed["data"]["conversation"]["id"], id.as_str());
    assert_eq!(closed["data"]["conversation"]["status"], "expired");
    atende_testkit::wait_until("Ana's capacity back", DEADLINE, || async {
        (load(&p, &t, &t.agent_id).await == (0, 0)).then_some(())
    })
    .await;

    // The customer writes again: a new conversation, with a new protocol.
    assert_eq!(p.post_webhook(&t, &write("wamid.EXP2"), None).await.status(), 200);
    let second = ws.next_of("conversation.assigned").await;
    assert_ne!(second["data"]["conversation"]["id"], id.as_str());
    assert_ne!(
        second["data"]["conversation"]["protocol"],
        first["data"]["conversation"]["protocol"]
    );
    ws.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outside_the_window_an_agent_starts_the_conversation_with_a_synced_template() {
    use atende_domain::ErrorCode;
    // Arrange: the number's business account lists one approved template; the broadcast
    // role syncs it from the (fake) Graph API.
    let p = Platform::start().await;
    let t = p.seed().await;
    let (_, mut ws) = p.online(&t).await;
    synced_template(
        &p,
        &t,
        "pedido_enviado",
        "Olá {{1}}, seu pedido {{2}} saiu para entrega.",
    )
    .await;
    // What the agent picks from, over the gateway.
    let token = p.login(&t).await;
    let (s, listed) = atende_e2e::api::call(
        &p,
        reqwest::Method::GET,
        &format!("/api/v1/channels/{}/templates", t.channel_id),
        atende_e2e::api::Auth::Bearer(&token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{listed}");
    assert_eq!(listed["templates"][0]["name"], "pedido_enviado");
    assert_eq!(listed["templates"][0]["body_parameters"], 2);
    let mut session = SessionServiceClient::new(p.sandbox.grpc(&p.session_grpc));
    let start = |template: Option<pb::TemplateUse>| pb::StartConversationRequest {
        tenant_id: t.tenant_id.clone(),
        agent_id: t.agent_id.clone(),
        phone: "11 91234-5678".into(),
        text: "Olá!".into(),
        template,
        ..Default::default()
    };
    let use_of = |name: &str, body: &[&str]| pb::TemplateUse {
        name: name.into(),
        language: "pt_BR".into(),
        body: body.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let code = |s: &tonic::Status| atende_runtime::errors::status_code_of(s);

    // Act and assert: the customer never wrote, so free text is refused; so are a template
    // the number does not have and the wrong parameters.
    let refused = session.start_conversation(start(None)).await.unwrap_err();
    assert_eq!(code(&refused), Some(ErrorCode::OutsideCustomerWindow));
    let refused = session
        .start_conversation(start(Some(use_of("nao_existe", &["Maria", "123"]))))
        .await
        .unwrap_err();
    assert_eq!(code(&refused), Some(ErrorCode::TemplateNotFound));
    let refused = session
        .start_conversation(start(Some(use_of("pedido_enviado", &["Maria"]))))
        .await
        .unwrap_err();
    assert_eq!(code(&refused), Some(ErrorCode::TemplateParamsMismatch));
    // With the template and its two parameters, the conversation starts and the template
    // reaches the provider in Meta's format.
    let started = session
        .start_conversation(start(Some(use_of("pedido_enviado", &["Maria", "123"]))))
        .await
        .unwrap()
        .into_inner();
    let message = started.message.unwrap();
    assert_eq!(message.kind, "template");
    assert_eq!(message.text, "Olá Maria, seu pedido 123 saiu para entrega.");
    let sends = p.fake.wait_for_sends(1, DEADLINE).await;
    assert_eq!(sends[0].body["type"], "template");
    assert_eq!(sends[0].body["to"], "5511912345678");
    assert_eq!(
        sends[0].body["template"],
        serde_json::json!({
            "name": "pedido_enviado", "language": { "code": "pt_BR" },
            "components": [{ "type": "body", "parameters": [
                { "type": "text", "text": "Maria" }, { "type": "text", "text": "123" }
            ] }]
        })
    );
    let created = ws.next_of("message.created").await;
    assert_eq!(created["data"]["message"]["kind"], "template");
    ws.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_send_fires_once_at_its_time_and_starts_the_conversation() {
    // Arrange: a synced template (the customer never wrote, so only a template may go).
    let p = Platform::start().await;
    let t = p.seed().await;
    let (_, mut ws) = p.online(&t).await;
    synced_template(&p, &t, "lembrete", "Olá {{1}}, lembrete da sua visita.").await;
    let mut session = SessionServiceClient::new(p.sandbox.grpc(&p.session_grpc));
    let now = time::OffsetDateTime::now_utc();
    let at = now + time::Duration::hours(1);
    let request = pb::StartConversationRequest {
        tenant_id: t.tenant_id.clone(),
        agent_id: t.agent_id.clone(),
        phone: "11 93333-4444".into(),
        template: Some(pb::TemplateUse {
            name: "lembrete".into(),
            language: "pt_BR".into(),
            body: vec!["Maria".into()],
            ..Default::default()
        }),
        send_at_ms: atende_store::to_millis(at),
        ..Default::default()
    };

    // Act: scheduled for an hour from now: checked, nothing sent.
    let scheduled = session.start_conversation(request.clone()).await.unwrap().into_inner();
    assert!(!scheduled.scheduled_send_id.is_empty());
    assert!(scheduled.conversation.is_none());
    let conversations = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM conversations")
            .fetch_one(&p.sandbox.pool)
            .await
            .unwrap()
    };
    assert_eq!(conversations().await, 0);
    assert!(p.fake.sent().is_empty());
    // Its time comes (the scheduler's pass, on the injected clock).
    let fired = atende_store::timers::fire_due(&p.sandbox.pool, at + time::Duration::seconds(1), 100)
        .await
        .unwrap();
    assert_eq!(fired, 1);

    // Assert: the conversation starts with the template, once.
    let assigned = ws.next_of("conversation.assigned").await;
    let sends = p.fake.wait_for_sends(1, DEADLINE).await;
    assert_eq!(sends[0].body["template"]["name"], "lembrete");
    let first = ws.next_of("message.created").await;
    assert_eq!(first["data"]["message"]["text"], "Olá Maria, lembrete da sua visita.");
    assert_eq!(
        first["data"]["message"]["conversation_id"],
        assigned["data"]["conversation"]["id"]
    );
    // Due again, or delivered again: nothing more.
    let again = atende_store::timers::fire_due(&p.sandbox.pool, at + time::Duration::hours(2), 100)
        .await
        .unwrap();
    assert_eq!(again, 0);
    let redelivered = pb::StartConversationRequest {
        send_at_ms: 0,
        client_message_id: format!("scheduled:{}", scheduled.scheduled_send_id),
        ..request
    };
    let same = session.start_conversation(redelivered).await.unwrap().into_inner();
    assert_eq!(
        same.conversation.unwrap().id,
        assigned["data"]["conversation"]["id"].as_str().unwrap()
    );
    assert_eq!(conversations().await, 1);
    // Only one send was ever queued for the provider (the queueing is in the start's own
    // transaction, so nothing can still be on its way).
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE subject LIKE '%.outbound.%'")
        .fetch_one(&p.sandbox.pool)
        .await
        .unwrap();
    assert_eq!(queued, 1);
    ws.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_sends_are_listed_moved_and_cancelled_by_their_agent_only() {
    use atende_e2e::api::{assert_error, call, Auth};
    use reqwest::Method;
    // Arrange: Ana schedules two template sends over the gateway, in one and two hours.
    let p = Platform::start().await;
    let t = p.seed().await;
    synced_template(&p, &t, "lembrete", "Olá {{1}}, lembrete da sua visita.").await;
    let (ana, _ana_ws) = p.online(&t).await;
    let bruno = p
        .login(&p.add_agent(&t, "Bruno", "bruno@acme.test", "bruno password").await)
        .await;
    let now = atende_store::to_millis(time::OffsetDateTime::now_utc());
    let hour = 3_600_000;
    let mut ids = Vec::new();
    for (phone, at) in [("11 95555-0001", now + hour), ("11 95555-0002", now + 2 * hour)] {
        let body = serde_json::json!({
            "phone": phone, "send_at_ms": at,
            "template": { "name": "lembrete", "language": "pt_BR", "body": ["Maria"] },
        });
        let (s, r) = call(
            &p,
            Method::POST,
            "/api/v1/conversations",
            Auth::Bearer(&ana),
            Some(body),
        )
        .await;
        assert_eq!(s, 201, "{r}");
        ids.push(r["scheduled_send_id"].as_str().unwrap().to_string());
    }
    let listed = |token: String| {
        let p = &p;
        async move {
            let (s, r) = call(p, Method::GET, "/api/v1/me/scheduled-sends", Auth::Bearer(&token), None).await;
            assert_eq!(s, 200, "{r}");
            r["sends"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| (x["id"].as_str().unwrap().to_string(), x["send_at_ms"].as_i64().unwrap()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(ana.clone()).await,
        [(ids[0].clone(), now + hour), (ids[1].clone(), now + 2 * hour)]
    );

    // Act and assert: Bruno sees none of them and may change none.
    assert!(listed(bruno.clone()).await.is_empty());
    let path = |id: &str| format!("/api/v1/scheduled-sends/{id}");
    let got = call(
        &p,
        Method::PUT,
        &path(&ids[0]),
        Auth::Bearer(&bruno),
        Some(serde_json::json!({ "send_at_ms": now + 3 * hour })),
    )
    .await;
    assert_error(&got, 403, "NOT_CONVERSATION_OWNER");
    let got = call(&p, Method::DELETE, &path(&ids[1]), Auth::Bearer(&bruno), None).await;
    assert_error(&got, 403, "NOT_CONVERSATION_OWNER");
    // Ana moves the first to three hours from now and cancels the second.
    let (s, moved) = call(
        &p,
        Method::PUT,
        &path(&ids[0]),
        Auth::Bearer(&ana),
        Some(serde_json::json!({ "send_at_ms": now + 3 * hour })),
    )
    .await;
    assert_eq!(s, 200, "{moved}");
    assert_eq!(moved["send"]["send_at_ms"], now + 3 * hour);
    let (s, _) = call(&p, Method::DELETE, &path(&ids[1]), Auth::Bearer(&ana), None).await;
    assert_eq!(s, 204);
    assert_eq!(listed(ana.clone()).await, [(ids[0].clone(), now + 3 * hour)]);
    let got = call(&p, Method::DELETE, &path(&ids[1]), Auth::Bearer(&ana), None).await;
    assert_error(&got, 404, "NOT_FOUND");
    // Two hours on, nothing falls due; at three, the moved one, alone.
    let at = |ms: i64| atende_store::from_millis(ms);
    let fired = atende_store::timers::fire_due(&p.sandbox.pool, at(now + 2 * hour + 1000), 100)
        .await
        .unwrap();
    assert_eq!(fired, 0);
    let fired = atende_store::timers::fire_due(&p.sandbox.pool, at(now + 3 * hour + 1000), 100)
        .await
        .unwrap();
    assert_eq!(fired, 1);
    let sends = p.fake.wait_for_sends(1, DEADLINE).await;
    assert_eq!(sends[0].body["to"], "5511955550001");
    assert!(listed(ana).await.is_empty());
    p.stop().await;
}
