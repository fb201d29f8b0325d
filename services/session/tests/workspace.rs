//! The workspace calls over real gRPC against Postgres: the same-customer check a broadcast
//! makes, tags and transfer by tag (outcome per conversation), the contact's history with
//! cursors that never skip or repeat, internal notes that never reach the outbox, drafts,
//! "mark unread", canned responses by shortcut.

mod common;

use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use common::{code, Harness};
use uuid::Uuid;

#[tokio::test]
async fn the_check_before_an_hsm_follows_the_tenant_flag() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let (contact, _) = h.assigned(h.sales, h.ana).await;
    let check = |service: Uuid| pb::CheckCanOpenRequest {
        tenant_id: h.tenant.to_string(),
        contact_id: contact.to_string(),
        service_id: service.to_string(),
    };
    let off = client.check_can_open(check(h.support)).await.unwrap().into_inner();
    assert!(!off.allowed, "flag off: any open conversation blocks");
    assert_eq!(off.error_code, "CUSTOMER_IN_SERVICE");
    assert_eq!(
        off.message_pt_br,
        "O cliente já possui um atendimento em aberto neste serviço."
    );
    sqlx::query("UPDATE tenants SET allow_simultaneous_conversations = true WHERE id = $1")
        .bind(h.tenant)
        .execute(h.pool())
        .await
        .unwrap();
    assert!(
        client
            .check_can_open(check(h.support))
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    assert!(
        !client
            .check_can_open(check(h.sales))
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    h.stop().await;
}

#[tokio::test]
async fn a_transfer_by_tag_moves_every_open_conversation_carrying_it_and_reports_each() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let tag = client
        .create_tag(pb::CreateTagRequest {
            tenant_id: h.tenant.to_string(),
            name: "inadimplente".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .tag
        .unwrap();
    // Creating it again returns the same tag.
    let again = client
        .create_tag(pb::CreateTagRequest {
            tenant_id: h.tenant.to_string(),
            name: "inadimplente".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .tag
        .unwrap();
    assert_eq!(again.id, tag.id);
    let (_, a) = h.assigned(h.sales, h.ana).await;
    let (_, b) = h.assigned(h.sales, h.bruno).await;
    let (contact_c, c) = h.assigned(h.sales, h.bruno).await;
    // The third contact already has a conversation in the target service.
    sqlx::query("UPDATE tenants SET allow_simultaneous_conversations = true WHERE id = $1")
        .bind(h.tenant)
        .execute(h.pool())
        .await
        .unwrap();
    let _blocking = h.conversation_of(contact_c, h.billing, h.ana).await;
    let (_, untagged) = h.assigned(h.sales, h.ana).await;
    for conversation in [a, b, c] {
        client
            .set_tag(pb::SetTagRequest {
                tenant_id: h.tenant.to_string(),
                tag_id: tag.id.clone(),
                target: Some(pb::set_tag_request::Target::ConversationId(conversation.to_string())),
                attached: true,
            })
            .await
            .unwrap();
    }
    // Detach is idempotent; listing shows what is attached.
    let of_a = client
        .list_tags_of(pb::ListTagsOfRequest {
            tenant_id: h.tenant.to_string(),
            target: Some(pb::list_tags_of_request::Target::ConversationId(a.to_string())),
        })
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(
        of_a.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["inadimplente"]
    );
    let err = client
        .set_tag(pb::SetTagRequest {
            tenant_id: h.tenant.to_string(),
            tag_id: Uuid::now_v7().to_string(),
            target: Some(pb::set_tag_request::Target::ConversationId(a.to_string())),
            attached: true,
        })
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::NotFound);

    let outcomes = client
        .transfer_by_tag(pb::TransferByTagRequest {
            tenant_id: h.tenant.to_string(),
            supervisor_id: h.supervisor.to_string(),
            tag_id: tag.id.clone(),
            target_service_id: h.billing.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .outcomes;
    let by_id: std::collections::HashMap<String, (bool, String)> = outcomes
        .iter()
        .map(|o| (o.conversation_id.clone(), (o.transferred, o.error_code.clone())))
        .collect();
    assert_eq!(by_id.len(), 3, "only the tagged conversations");
    assert_eq!(by_id[&a.to_string()], (true, String::new()));
    assert_eq!(by_id[&b.to_string()], (true, String::new()));
    assert_eq!(by_id[&c.to_string()], (false, "CUSTOMER_IN_SERVICE".to_string()));
    assert_eq!(h.status_of(untagged).await.1, Some(h.sales));
    h.stop().await;
}

#[tokio::test]
async fn the_contact_history_pages_newest_first_without_skipping_or_repeating() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let (contact, first) = h.assigned(h.sales, h.ana).await;
    let mut ids = vec![first];
    for _ in 0..6 {
        sqlx::query("UPDATE conversations SET status = 'finished', closed_at = now() WHERE contact_id = $1 AND status <> 'finished'")
            .bind(contact)
            .execute(h.pool())
            .await
            .unwrap();
        ids.push(h.conversation_of(contact, h.sales, h.ana).await);
    }
    // Two of them opened at the very same instant: the cursor still orders them.
    sqlx::query(
        "UPDATE conversations SET opened_at = (SELECT opened_at FROM conversations WHERE id = $1) WHERE id = $2",
    )
    .bind(ids[3])
    .bind(ids[4])
    .execute(h.pool())
    .await
    .unwrap();
    // One from last week: outside the default 24 hours.
    sqlx::query("UPDATE conversations SET opened_at = now() - interval '7 days' WHERE id = $1")
        .bind(ids[0])
        .execute(h.pool())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_contact_history(pb::ListContactHistoryRequest {
                tenant_id: h.tenant.to_string(),
                contact_id: contact.to_string(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.entries.iter().map(|e| e.conversation.as_ref().unwrap().id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut expected: Vec<String> = ids[1..].iter().map(Uuid::to_string).collect();
    expected.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(
        got, expected,
        "every conversation of the last 24 h exactly once: {seen:?}"
    );
    // By protocol: the old one, with its legs.
    let protocol: String = sqlx::query_scalar("SELECT protocol FROM conversations WHERE id = $1")
        .bind(ids[0])
        .fetch_one(h.pool())
        .await
        .unwrap();
    let found = client
        .list_contact_history(pb::ListContactHistoryRequest {
            tenant_id: h.tenant.to_string(),
            contact_id: contact.to_string(),
            protocol: protocol.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].protocols[0].number, protocol);
    let err = client
        .list_contact_history(pb::ListContactHistoryRequest {
            tenant_id: h.tenant.to_string(),
            contact_id: contact.to_string(),
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArgument);
    h.stop().await;
}

#[tokio::test]
async fn notes_drafts_read_marks_and_canned_responses() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let (_, c) = h.assigned(h.sales, h.ana).await;
    let tenant = h.tenant.to_string();

    // A note is a message of the conversation that never goes to the outbox.
    let note = client
        .add_note(pb::AddNoteRequest {
            tenant_id: tenant.clone(),
            conversation_id: c.to_string(),
            agent_id: h.ana.to_string(),
            text: "cliente pediu retorno amanhã".into(),
            client_message_id: "n-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    assert_eq!(note.direction, "note");
    let outbound: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE subject LIKE '%outbound%'")
        .fetch_one(h.pool())
        .await
        .unwrap();
    assert_eq!(outbound, 0, "a note is never sent to the customer");
    let err = client
        .add_note(pb::AddNoteRequest {
            tenant_id: tenant.clone(),
            conversation_id: c.to_string(),
            agent_id: h.bruno.to_string(),
            text: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::NotConversationOwner);

    // Drafts survive across devices: saved by one call, listed by another, cleared by empty.
    let draft = |text: &str| pb::SaveDraftRequest {
        tenant_id: tenant.clone(),
        agent_id: h.ana.to_string(),
        conversation_id: c.to_string(),
        text: text.into(),
    };
    client.save_draft(draft("Olá, tudo bem?")).await.unwrap();
    client.save_draft(draft("Olá, tudo bem? Sobre o pedido")).await.unwrap();
    let list = |client: &mut pb::session_service_client::SessionServiceClient<_>| {
        let req = pb::ListDraftsRequest {
            tenant_id: tenant.clone(),
            agent_id: h.ana.to_string(),
        };
        let mut client = client.clone();
        async move { client.list_drafts(req).await.unwrap().into_inner().drafts }
    };
    let drafts = list(&mut client).await;
    assert_eq!(drafts.len(), 1);
    assert_eq!(drafts[0].text, "Olá, tudo bem? Sobre o pedido");
    client.save_draft(draft("")).await.unwrap();
    assert!(list(&mut client).await.is_empty());

    // Read marks: two customer messages unread, read, then the last one marked unread.
    for seq in 2..=3 {
        sqlx::query(
            "INSERT INTO messages (id, tenant_id, conversation_id, channel_id, direction, kind, body, status, seq)
             VALUES ($1, $2, $3, $4, 'inbound', 'text', 'oi', 'received', $5)",
        )
        .bind(Uuid::now_v7())
        .bind(h.tenant)
        .bind(c)
        .bind(h.channel)
        .bind(seq as i64)
        .execute(h.pool())
        .await
        .unwrap();
    }
    sqlx::query("UPDATE conversations SET last_message_seq = 3 WHERE id = $1")
        .bind(c)
        .execute(h.pool())
        .await
        .unwrap();
    let unread = |client: &pb::session_service_client::SessionServiceClient<_>| {
        let mut client = client.clone();
        let req = pb::ListUnreadRequest {
            tenant_id: tenant.clone(),
            agent_id: h.ana.to_string(),
        };
        async move { client.list_unread(req).await.unwrap().into_inner().conversations }
    };
    assert_eq!(unread(&client).await[0].unread, 2);
    let mark = |u: bool| pb::MarkReadRequest {
        tenant_id: tenant.clone(),
        agent_id: h.ana.to_string(),
        conversation_id: c.to_string(),
        unread: u,
    };
    assert_eq!(client.mark_read(mark(false)).await.unwrap().into_inner().unread, 0);
    assert!(unread(&client).await.is_empty());
    assert_eq!(client.mark_read(mark(true)).await.unwrap().into_inner().unread, 1);
    assert_eq!(unread(&client).await[0].unread, 1);

    // Canned responses: the service's own shadows the tenant's; refused shortcuts say why.
    let canned = |service: Option<Uuid>, shortcut: &str, text: &str| pb::CreateCannedResponseRequest {
        tenant_id: tenant.clone(),
        service_id: service.map(|s| s.to_string()).unwrap_or_default(),
        shortcut: shortcut.into(),
        text: text.into(),
    };
    client
        .create_canned_response(canned(None, "/saudacao", "Olá! Como posso ajudar?"))
        .await
        .unwrap();
    client
        .create_canned_response(canned(None, "prazo", "O prazo é de 5 dias úteis."))
        .await
        .unwrap();
    client
        .create_canned_response(canned(Some(h.sales), "saudacao", "Olá! Bem-vindo às Vendas."))
        .await
        .unwrap();
    let dup = client
        .create_canned_response(canned(None, "prazo", "outro"))
        .await
        .unwrap_err();
    assert_eq!(code(&dup), ErrorCode::AlreadyExists);
    let bad = client
        .create_canned_response(canned(None, "com espaço", "x"))
        .await
        .unwrap_err();
    assert_eq!(code(&bad), ErrorCode::InvalidArgument);
    let found = client
        .list_canned_responses(pb::ListCannedResponsesRequest {
            tenant_id: tenant.clone(),
            service_id: h.sales.to_string(),
            prefix: "/sa".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .canned_responses;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].text, "Olá! Bem-vindo às Vendas.");
    let elsewhere = client
        .list_canned_responses(pb::ListCannedResponsesRequest {
            tenant_id: tenant.clone(),
            service_id: h.support.to_string(),
            prefix: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .canned_responses;
    let texts: Vec<&str> = elsewhere.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, vec!["O prazo é de 5 dias úteis.", "Olá! Como posso ajudar?"]);
    h.stop().await;
}
