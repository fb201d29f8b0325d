//! Finish and transfer over real gRPC against real Postgres: the finish form's rules with
//! their stable codes, protocol legs linked and qualified per leg, every transition recorded
//! with its actor, the capacity release handed durably to the router (one outbox row naming
//! the previous holder), the same-customer rule on transfers — atomic when two transfers of
//! one contact race for the same service — and bulk transfers reporting per item.

mod common;

use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use common::{code, Harness, DEADLINE};
use uuid::Uuid;

#[tokio::test]
async fn finishing_checks_the_form_records_the_qualification_and_hands_the_release_to_the_router() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    sqlx::query("UPDATE tenants SET require_external_protocol = true WHERE id = $1")
        .bind(h.tenant)
        .execute(h.pool())
        .await
        .unwrap();
    let (_, c) = h.assigned(h.sales, h.ana).await;

    // Refusals, each with its stable code, and nothing written.
    let cases = [
        (h.ana, "", "ABC123", ErrorCode::InvalidQualification),
        (h.ana, "outra", "ABC123", ErrorCode::InvalidQualification),
        (h.ana, "venda", "", ErrorCode::ExternalProtocolRequired),
        (h.ana, "venda", "12345678901234", ErrorCode::ExternalProtocolInvalid),
        (h.bruno, "venda", "ABC123", ErrorCode::NotConversationOwner),
    ];
    for (agent, q, ext, expected) in cases {
        let err = client
            .finish_conversation(h.finish(c, agent, q, ext))
            .await
            .unwrap_err();
        assert_eq!(code(&err), expected, "{q:?} {ext:?}");
    }
    assert_eq!(h.status_of(c).await.0, "assigned");
    assert_eq!(h.open_assignments(c).await, 1);
    assert!(h.route_requests(h.sales).await.is_empty());

    // The owner finishes.
    let done = client
        .finish_conversation(h.finish(c, h.ana, "venda", "ABC-123456789"))
        .await
        .unwrap()
        .into_inner();
    let conv = done.conversation.unwrap();
    let protocol = done.protocol.unwrap();
    assert_eq!(conv.status, "finished");
    assert_eq!(protocol.qualification, "venda");
    assert_eq!(protocol.description, "cliente atendido");
    assert_eq!(protocol.external_protocol, "ABC-123456789");
    assert_eq!(protocol.close_reason, "finished");
    assert!(protocol.closed_at_ms > 0);
    assert_eq!(h.open_assignments(c).await, 0);
    let releases = h.route_requests(h.sales).await;
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0].release_agent_id, h.ana.to_string());
    assert_eq!(releases[0].release_service_id, h.sales.to_string());
    assert_eq!(releases[0].service_id, "", "a finish routes nothing");

    // Finishing again changes nothing and releases nothing more.
    let again = client
        .finish_conversation(h.finish(c, h.ana, "venda", "ABC-123456789"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.protocol.unwrap().number, protocol.number);
    assert_eq!(h.route_requests(h.sales).await.len(), 1);
    // A closed conversation is not transferred.
    let err = client
        .transfer_conversation(h.transfer(c, h.ana, h.support))
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::ConversationClosed);

    let transitions = client
        .list_transitions(pb::ListTransitionsRequest {
            tenant_id: h.tenant.to_string(),
            conversation_id: c.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .transitions;
    let last = transitions.last().unwrap();
    assert_eq!(
        (last.from_status.as_str(), last.to_status.as_str()),
        ("assigned", "finished")
    );
    assert_eq!(
        (last.actor_kind.as_str(), last.actor_id.as_str()),
        ("agent", h.ana.to_string().as_str())
    );
    h.stop().await;
}

#[tokio::test]
async fn a_transfer_opens_a_linked_protocol_requeues_in_the_target_and_releases_the_previous_agent() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let (_, c) = h.assigned(h.sales, h.ana).await;
    let opened_before: time::OffsetDateTime = sqlx::query_scalar("SELECT opened_at FROM conversations WHERE id = $1")
        .bind(c)
        .fetch_one(h.pool())
        .await
        .unwrap();

    // Into the service it is already in: refused.
    let err = client
        .transfer_conversation(h.transfer(c, h.ana, h.sales))
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::CustomerInService);
    // By someone who does not own it and is no supervisor: refused.
    let err = client
        .transfer_conversation(h.transfer(c, h.bruno, h.support))
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::NotConversationOwner);

    let mut req = h.transfer(c, h.ana, h.support);
    req.qualification = "duvida".into();
    let t = client.transfer_conversation(req).await.unwrap().into_inner();
    let (previous, current) = (t.previous.unwrap(), t.current.unwrap());
    assert_eq!(previous.close_reason, "transferred");
    assert_eq!(previous.qualification, "duvida", "each leg keeps its own qualification");
    assert_eq!(current.previous_number, previous.number);
    assert_eq!((previous.leg, current.leg), (1, 2));
    assert_ne!(current.number, previous.number);
    assert_eq!(current.service_id, h.support.to_string());
    let conv = t.conversation.unwrap();
    assert_eq!(conv.protocol, current.number);
    assert_eq!(h.status_of(c).await, ("queued".to_string(), Some(h.support), None));
    let opened_after: time::OffsetDateTime = sqlx::query_scalar("SELECT opened_at FROM conversations WHERE id = $1")
        .bind(c)
        .fetch_one(h.pool())
        .await
        .unwrap();
    assert_eq!(
        opened_after, opened_before,
        "TTA runs from the first opening across legs"
    );
    assert_eq!(h.open_assignments(c).await, 0);

    // One route request into the target that frees Ana's hold in the old service first.
    let routes = h.route_requests(h.support).await;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].service_id, h.support.to_string());
    assert_eq!(routes[0].release_agent_id, h.ana.to_string());
    assert_eq!(routes[0].release_service_id, h.sales.to_string());

    let legs = client
        .list_protocols(pb::ListProtocolsRequest {
            tenant_id: h.tenant.to_string(),
            conversation_id: c.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .protocols;
    assert_eq!(
        legs.iter().map(|p| p.number.clone()).collect::<Vec<_>>(),
        vec![previous.number.clone(), current.number.clone()]
    );

    // A supervisor moves it on (queued, no owner): a third leg.
    let t = client
        .transfer_conversation(h.transfer(c, h.supervisor, h.billing))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.current.unwrap().leg, 3);
    let transitions = client
        .list_transitions(pb::ListTransitionsRequest {
            tenant_id: h.tenant.to_string(),
            conversation_id: c.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .transitions;
    let kinds: Vec<(String, String)> = transitions
        .iter()
        .map(|t| (t.to_status.clone(), t.actor_kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("queued".to_string(), "agent".to_string()),
            ("queued".to_string(), "supervisor".to_string())
        ]
    );
    h.stop().await;
}

#[tokio::test]
async fn two_concurrent_transfers_of_one_contacts_conversations_into_one_service_one_wins() {
    let h = Harness::start().await;
    sqlx::query("UPDATE tenants SET allow_simultaneous_conversations = true WHERE id = $1")
        .bind(h.tenant)
        .execute(h.pool())
        .await
        .unwrap();
    for round in 0..10 {
        let (contact, a) = h.assigned(h.sales, h.ana).await;
        let b = h.conversation_of(contact, h.support, h.bruno).await;
        let (mut c1, mut c2) = (h.client.clone(), h.client.clone());
        let (r1, r2) = tokio::join!(
            c1.transfer_conversation(h.transfer(a, h.ana, h.billing)),
            c2.transfer_conversation(h.transfer(b, h.bruno, h.billing)),
        );
        let outcomes = [r1.map(|_| ()), r2.map(|_| ())];
        let won = outcomes.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {outcomes:?}");
        let lost = outcomes.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert_eq!(code(lost), ErrorCode::CustomerInService);
        let in_billing: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM conversations WHERE contact_id = $1 AND service_id = $2 AND status = 'queued'",
        )
        .bind(contact)
        .bind(h.billing)
        .fetch_one(h.pool())
        .await
        .unwrap();
        assert_eq!(in_billing, 1);
    }
    h.stop().await;
}

#[tokio::test]
async fn with_the_flag_off_a_transfer_is_refused_while_the_contact_has_another_open_conversation() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let (contact, a) = h.assigned(h.sales, h.ana).await;
    // Left over from before the flag was turned off.
    let _b = h.conversation_of(contact, h.support, h.bruno).await;
    let err = client
        .transfer_conversation(h.transfer(a, h.ana, h.billing))
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::CustomerInService);
    let detail = atende_runtime::errors::detail_of(&err).unwrap();
    assert_eq!(
        detail.message_pt_br,
        "O cliente já possui um atendimento em aberto neste serviço."
    );
    h.stop().await;
}

#[tokio::test]
async fn a_bulk_transfer_reports_each_conversation_on_its_own() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let (_, ok) = h.assigned(h.sales, h.ana).await;
    let (_, closed) = h.assigned(h.sales, h.bruno).await;
    client
        .finish_conversation(h.finish(closed, h.bruno, "venda", ""))
        .await
        .unwrap();
    let missing = Uuid::now_v7();
    let req = pb::BulkTransferRequest {
        tenant_id: h.tenant.to_string(),
        supervisor_id: h.supervisor.to_string(),
        conversation_ids: vec![ok.to_string(), closed.to_string(), missing.to_string(), "nope".into()],
        target_service_id: h.support.to_string(),
    };
    // Only supervisors.
    let mut not_supervisor = req.clone();
    not_supervisor.supervisor_id = h.ana.to_string();
    let err = client.bulk_transfer(not_supervisor).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::PermissionDenied);

    let outcomes = client.bulk_transfer(req).await.unwrap().into_inner().outcomes;
    let summary: Vec<(bool, &str)> = outcomes
        .iter()
        .map(|o| (o.transferred, o.error_code.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (true, ""),
            (false, "CONVERSATION_CLOSED"),
            (false, "NOT_FOUND"),
            (false, "INVALID_ARGUMENT")
        ]
    );
    assert!(!outcomes[0].protocol.is_empty());
    assert!(!outcomes[1].message_pt_br.is_empty());
    assert_eq!(h.status_of(ok).await.1, Some(h.support));
    h.stop().await;
}

#[tokio::test]
async fn indicators_come_from_the_stored_timestamps() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let (_, c) = h.assigned(h.sales, h.ana).await;
    // A customer turn at t, answered 30 s later; then one answered 10 s later.
    for (seq, (direction, agent, offset)) in [
        ("inbound", None, -100),
        ("outbound", Some(h.ana), -70),
        ("inbound", None, -50),
        ("outbound", Some(h.ana), -40),
    ]
    .into_iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO messages (id, tenant_id, conversation_id, channel_id, direction, kind, body, status, agent_id, created_at, seq)
             VALUES ($1, $2, $3, $4, $5, 'text', 'x', 'received', $6, '2026-12-01T12:00:00Z'::timestamptz + make_interval(secs => $7), $8)",
        )
        .bind(Uuid::now_v7())
        .bind(h.tenant)
        .bind(c)
        .bind(h.channel)
        .bind(direction)
        .bind(agent)
        .bind(offset as f64)
        .bind(seq as i64 + 1)
        .execute(h.pool())
        .await
        .unwrap();
    }
    let m = client
        .get_conversation_metrics(pb::GetConversationMetricsRequest {
            tenant_id: h.tenant.to_string(),
            conversation_id: c.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.first_response_ms, 30_000);
    assert_eq!(m.mean_response_ms, 20_000);
    assert_eq!(m.responses, 2);
    assert!(m.tta_ms >= 0);
    h.stop().await;
}

#[tokio::test]
async fn the_transcript_reaches_the_tenants_smtp_server_and_waits_out_an_outage() {
    use atende_proto::v1::admin_service_client::AdminServiceClient;
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let smtp = atende_testkit::smtp_server::SmtpServer::start();
    // First the tenant's server is unreachable: a port held bound but never listening, so
    // connections are refused for as long as the test holds it (a port merely freed could be
    // taken by another test's listener meanwhile, and the attempt would hang there instead).
    let dead = tokio::net::TcpSocket::new_v4().unwrap();
    dead.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    let (name, slug): (String, String) = sqlx::query_as("SELECT name, slug FROM tenants WHERE id = $1")
        .bind(h.tenant)
        .fetch_one(h.pool())
        .await
        .unwrap();
    let mut admin = AdminServiceClient::new(h.sandbox.grpc(h.role.started.grpc_addr));
    let tenant_with = |port: u16| pb::CreateTenantRequest {
        id: h.tenant.to_string(),
        name: name.clone(),
        slug: slug.clone(),
        mail: Some(pb::MailSettings {
            host: "127.0.0.1".into(),
            port: u32::from(port),
            tls: "none".into(),
            username: String::new(),
            password: "s3cret".into(),
            from_address: "atendimento@acme.test".into(),
            from_name: "Acme Atendimento".into(),
            transcript_enabled: true,
            has_password: false,
        }),
        ..Default::default()
    };
    let t = admin
        .create_tenant(tenant_with(dead_port))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    let mail = t.mail.unwrap();
    assert!(
        mail.has_password && mail.password.is_empty(),
        "the password is write-only"
    );
    let stored: String = sqlx::query_scalar("SELECT mail_password FROM tenants WHERE id = $1")
        .bind(h.tenant)
        .fetch_one(h.pool())
        .await
        .unwrap();
    assert!(!stored.contains("s3cret"), "stored sealed");
    sqlx::query("UPDATE services SET send_transcript = true WHERE id = $1")
        .bind(h.sales)
        .execute(h.pool())
        .await
        .unwrap();
    let (contact, c) = h.assigned(h.sales, h.ana).await;
    for (seq, (direction, agent, text)) in [
        ("inbound", None, "Oi, preciso da segunda via"),
        ("outbound", Some(h.ana), "Olá Maria! Segue a segunda via."),
        ("inbound", None, "Obrigada!"),
    ]
    .into_iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO messages (id, tenant_id, conversation_id, channel_id, direction, kind, body, status, agent_id, seq)
             VALUES ($1, $2, $3, $4, $5, 'text', $6, 'received', $7, $8)",
        )
        .bind(Uuid::now_v7())
        .bind(h.tenant)
        .bind(c)
        .bind(h.channel)
        .bind(direction)
        .bind(text)
        .bind(agent)
        .bind(seq as i64 + 1)
        .execute(h.pool())
        .await
        .unwrap();
    }
    // A malformed address is refused before anything is written.
    let mut bad = h.finish(c, h.ana, "venda", "");
    bad.transcript_email = "not-an-address".into();
    let err = client.finish_conversation(bad).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArgument);

    let mut req = h.finish(c, h.ana, "venda", "");
    req.transcript_email = "maria@cliente.test".into();
    let done = client.finish_conversation(req).await.unwrap().into_inner();
    assert_eq!(done.transcript_email, "maria@cliente.test");
    let saved: Option<String> = sqlx::query_scalar("SELECT email FROM contacts WHERE id = $1")
        .bind(contact)
        .fetch_one(h.pool())
        .await
        .unwrap();
    assert_eq!(
        saved.as_deref(),
        Some("maria@cliente.test"),
        "a typed address is kept on the contact"
    );

    // The mailer tries, fails, and keeps the job.
    atende_testkit::wait_until("a failed attempt recorded", DEADLINE, || async {
        let (attempts, error): (i32, Option<String>) =
            sqlx::query_as("SELECT attempts, last_error FROM transcript_jobs WHERE conversation_id = $1")
                .bind(c)
                .fetch_one(h.pool())
                .await
                .ok()?;
        (attempts >= 1 && error.is_some()).then_some(())
    })
    .await;
    assert!(smtp.received().is_empty());

    // The server comes back (the tenant fixes its settings): the job goes out, once.
    admin.create_tenant(tenant_with(smtp.port)).await.unwrap();
    sqlx::query("UPDATE transcript_jobs SET next_attempt_at = now() WHERE conversation_id = $1")
        .bind(c)
        .execute(h.pool())
        .await
        .unwrap();
    let mails = smtp.wait_for(1, DEADLINE).await;
    let protocol = done.protocol.unwrap().number;
    assert_eq!(mails[0].rcpt_tos, vec!["maria@cliente.test".to_string()]);
    assert_eq!(mails[0].mail_from, "atendimento@acme.test");
    assert!(mails[0].from.contains("Acme Atendimento"));
    assert_eq!(
        mails[0].subject,
        format!("Histórico do atendimento - protocolo {protocol}")
    );
    let body = &mails[0].body;
    let order: Vec<usize> = [
        "Cliente: Oi, preciso da segunda via",
        "Ana: Olá Maria! Segue a segunda via.",
        "Cliente: Obrigada!",
    ]
    .iter()
    .map(|line| {
        body.find(line)
            .unwrap_or_else(|| panic!("{line:?} missing from {body}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {body}");
    assert!(body.contains(&protocol));
    atende_testkit::wait_until("the job marked sent", DEADLINE, || async {
        let sent: Option<time::OffsetDateTime> =
            sqlx::query_scalar("SELECT sent_at FROM transcript_jobs WHERE conversation_id = $1")
                .bind(c)
                .fetch_one(h.pool())
                .await
                .ok()?;
        sent.map(|_| ())
    })
    .await;
    assert_eq!(smtp.received().len(), 1, "sent once");
    h.stop().await;
}
