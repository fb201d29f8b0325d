//! The agent's workspace over the gateway's HTTP API and WebSocket, every role real: an offer
//! is accepted, answered, noted, drafted, transferred to another service under a new linked
//! protocol and finished there with a qualification, each agent's capacity coming back; and
//! the agent's list, ten cards at a time. (Every route against intruders: `walk.rs`.)

use atende_e2e::api::{assert_error, call, Auth};
use atende_e2e::{Platform, Tenant};
use atende_proto::v1 as pb;
use atende_testkit::whatsapp::text_message_webhook;
use reqwest::Method;
use serde_json::{json, Value};

async fn customer_writes(p: &Platform, t: &Tenant, wamid: &str) {
    let body = text_message_webhook(
        &t.phone_number_id,
        "5511987654321",
        "Maria",
        wamid,
        "Oi, quero comprar",
        atende_e2e::now_secs(),
    );
    assert_eq!(p.post_webhook(t, &body, None).await.status(), 200);
}

async fn assigned(p: &Platform, token: &str) -> u64 {
    let (s, body) = call(p, Method::GET, "/api/v1/me/presence", Auth::Bearer(token), None).await;
    assert_eq!(s, 200, "{body}");
    body["assigned"].as_u64().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_offer_is_accepted_answered_transferred_to_another_service_and_finished_there() {
    // Arrange: new conversations go to Leads (ordered offers) where Ana works; Suporte has Bruno.
    let p = Platform::start().await;
    let t = p.seed().await;
    let sales = p
        .create_service(
            &t,
            pb::CreateServiceRequest {
                name: "Leads".into(),
                policy: "ordered_offer".into(),
                offer_timeout_secs: 300,
                qualifications: vec![pb::Qualification {
                    code: "duvida".into(),
                    label: String::new(),
                }],
                ..Default::default()
            },
        )
        .await;
    let support = p.service(&t, "Suporte", &["resolvido"], false).await;
    p.route_channel_to(&t, Some(&sales)).await;
    let ana = p.agent_in(&t, "Aninha", &sales).await;
    let bruno = p.agent_in(&t, "Bruno", &support).await;
    let (ana_token, mut ana_ws) = p.online(&ana).await;
    let (bruno_token, mut bruno_ws) = p.online(&bruno).await;

    // The lead is offered to Ana, who accepts it and answers.
    customer_writes(&p, &t, "wamid.WS0001").await;
    let offered = ana_ws.next_of("conversation.offered").await;
    let id = offered["data"]["conversation"]["id"].as_str().unwrap().to_string();
    let conv = |rest: &str| format!("/api/v1/conversations/{id}{rest}");
    let as_ana = Auth::Bearer(&ana_token);
    let (s, _) = call(&p, Method::POST, &conv("/accept"), as_ana, None).await;
    assert_eq!(s, 204);
    ana_ws.next_of("conversation.assigned").await;
    let body = json!({ "text": "Olá Maria!", "client_message_id": "c1" });
    assert_eq!(
        call(&p, Method::POST, &conv("/messages"), as_ana, Some(body)).await.0,
        201
    );

    // A note for colleagues and a draft, both kept.
    let (s, note) = call(
        &p,
        Method::POST,
        &conv("/notes"),
        as_ana,
        Some(json!({ "text": "cliente VIP" })),
    )
    .await;
    assert_eq!(s, 201, "{note}");
    assert_eq!(note["message"]["direction"], "note", "{note}");
    let (s, _) = call(
        &p,
        Method::PUT,
        &conv("/draft"),
        as_ana,
        Some(json!({ "text": "segue o link" })),
    )
    .await;
    assert_eq!(s, 204);
    let (_, drafts) = call(&p, Method::GET, "/api/v1/me/drafts", as_ana, None).await;
    assert_eq!(drafts["drafts"][0]["conversation_id"], id.as_str(), "{drafts}");
    assert_eq!(drafts["drafts"][0]["text"], "segue o link");

    // The detail: one leg, indicators from the stored times (Ana has answered once).
    let (s, detail) = call(&p, Method::GET, &conv(""), as_ana, None).await;
    assert_eq!(s, 200, "{detail}");
    let first_protocol = detail["conversation"]["protocol"].as_str().unwrap().to_string();
    assert_eq!(detail["protocols"].as_array().unwrap().len(), 1, "{detail}");
    assert_eq!(detail["metrics"]["responses"], 1, "{detail}");
    assert!(detail["metrics"]["first_response_ms"].as_i64().unwrap() >= 0);

    // Transfer into Suporte (`#`): a new leg linked to the first, Bruno gets it, Ana is freed.
    let body = json!({ "service_id": support, "qualification": "duvida" });
    let (s, moved) = call(&p, Method::POST, &conv("/transfer"), as_ana, Some(body)).await;
    assert_eq!(s, 200, "{moved}");
    assert_eq!(moved["previous"]["number"], first_protocol.as_str());
    assert_eq!(moved["current"]["previous_number"], first_protocol.as_str());
    assert_eq!(moved["current"]["leg"], 2);
    let got = bruno_ws.next_of("conversation.assigned").await;
    assert_eq!(got["data"]["conversation"]["id"], id.as_str());
    assert_eq!(assigned(&p, &ana_token).await, 0, "the transfer frees Ana");
    // Bruno sees the contact's history: this conversation with both legs.
    let as_bruno = Auth::Bearer(&bruno_token);
    let (s, history) = call(&p, Method::GET, &conv("/history"), as_bruno, None).await;
    assert_eq!(s, 200, "{history}");
    assert_eq!(history["entries"][0]["conversation"]["id"], id.as_str(), "{history}");
    assert_eq!(
        history["entries"][0]["protocols"].as_array().unwrap().len(),
        2,
        "{history}"
    );
    // It is no longer Ana's to read or finish.
    let refused = call(&p, Method::GET, &conv(""), as_ana, None).await;
    assert_error(&refused, 403, "NOT_CONVERSATION_OWNER");

    // Bruno finishes it: a qualification of Suporte is required.
    let wrong = call(
        &p,
        Method::POST,
        &conv("/finish"),
        as_bruno,
        Some(json!({ "qualification": "duvida" })),
    )
    .await;
    assert_error(&wrong, 400, "INVALID_QUALIFICATION");
    let body = json!({ "qualification": "resolvido", "description": "tirou a dúvida" });
    let (s, done) = call(&p, Method::POST, &conv("/finish"), as_bruno, Some(body)).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["conversation"]["status"], "finished");
    assert_eq!(done["protocol"]["qualification"], "resolvido");
    bruno_ws.next_of("conversation.closed").await;
    assert_eq!(assigned(&p, &bruno_token).await, 0, "the finish frees Bruno");

    // With nothing in progress, both may log out.
    for token in [&ana_token, &bruno_token] {
        let (s, body) = call(&p, Method::POST, "/api/v1/auth/logout", Auth::Bearer(token), None).await;
        assert_eq!(s, 204, "{body}");
    }
    ana_ws.close().await;
    bruno_ws.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agents_list_shows_ten_cards_at_a_time_searched_filtered_and_sorted_by_tta() {
    // Arrange: twelve customers write to Ana, who can hold twenty; the tenant shows bands.
    let p = Platform::start().await;
    let t = p.seed().await;
    let ana = p
        .create_agent(
            &t,
            pb::CreateAgentRequest {
                name: "Aninha".into(),
                email: "aninha@acme.test".into(),
                password: "correct horse".into(),
                max_concurrent: 20,
                service_ids: vec![t.service_id.clone()],
                ..Default::default()
            },
        )
        .await;
    p.admin()
        .await
        .create_tenant(pb::CreateTenantRequest {
            id: t.tenant_id.clone(),
            name: "Acme".into(),
            slug: t.slug.clone(),
            show_expiry_bands: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let (token, _socket) = p.online(&ana).await;
    let as_ana = Auth::Bearer(&token);
    for n in 0..12 {
        let name = if n == 7 {
            "Zoraide Lima".to_string()
        } else {
            format!("Cliente {n}")
        };
        let body = text_message_webhook(
            &t.phone_number_id,
            &format!("55119876543{n:02}"),
            &name,
            &format!("wamid.DESK{n:02}"),
            &format!("pedido {n}"),
            atende_e2e::now_secs(),
        );
        assert_eq!(p.post_webhook(&t, &body, None).await.status(), 200);
    }
    let list = |query: String| {
        let token = token.clone();
        let p = &p;
        async move {
            let (s, body) = call(
                p,
                Method::GET,
                &format!("/api/v1/me/conversations{query}"),
                Auth::Bearer(&token),
                None,
            )
            .await;
            assert_eq!(s, 200, "{body}");
            body
        }
    };
    atende_testkit::wait_until("twelve conversations on Ana's desk", atende_e2e::DEADLINE, || async {
        let all = list("?page_size=100".into()).await;
        (all["conversations"].as_array().unwrap().len() == 12).then_some(())
    })
    .await;

    // Ten at a time, longest TTA first, then "Mostrar mais" gives the other two.
    let first = list(String::new()).await;
    let page1 = first["conversations"].as_array().unwrap().clone();
    assert_eq!(page1.len(), 10);
    let token1 = first["next_page_token"].as_str().unwrap();
    assert!(!token1.is_empty());
    let second = list(format!("?page_token={token1}")).await;
    let page2 = second["conversations"].as_array().unwrap().clone();
    assert_eq!(page2.len(), 2);
    assert_eq!(second["next_page_token"], "");
    let all: Vec<Value> = page1.iter().chain(page2.iter()).cloned().collect();
    let ids: std::collections::HashSet<&str> = all.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 12, "no card twice, none skipped");
    let opened: Vec<i64> = all.iter().map(|c| c["opened_at_ms"].as_i64().unwrap()).collect();
    assert!(opened.windows(2).all(|w| w[0] <= w[1]), "longest TTA first: {opened:?}");
    let shortest = list("?sort=tta_asc&page_size=100".into()).await;
    let reversed: Vec<&str> = shortest["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = all.iter().map(|c| c["id"].as_str().unwrap()).collect();
    expected.reverse();
    assert_eq!(reversed, expected);

    // What a card shows.
    let card = all
        .iter()
        .find(|c| c["contact_name"] == "Zoraide Lima")
        .unwrap()
        .clone();
    assert_eq!(card["last_message_text"], "pedido 7", "{card}");
    assert_eq!(card["display_name"], "Zoraide Lima");
    assert_eq!(card["service_name"], "Vendas");
    assert_eq!(card["unread"], 1);
    assert_eq!(card["has_draft"], false);
    assert_eq!(card["last_sent_at_ms"], 0);
    assert_eq!(card["expiry_band"], "green");
    let window_left = card["window_expires_at_ms"].as_i64().unwrap() - card["opened_at_ms"].as_i64().unwrap();
    assert!(
        (23 * 3_600_000..=24 * 3_600_000 + 60_000).contains(&window_left),
        "{card}"
    );
    assert!(card["tta_ms"].as_i64().unwrap() >= 0);

    // Search by name, by protocol (its start), and filters that match nothing.
    let by_name = list("?search=zoraide".into()).await;
    assert_eq!(by_name["conversations"].as_array().unwrap().len(), 1, "{by_name}");
    let protocol = card["protocol"].as_str().unwrap();
    let by_protocol = list(format!("?search={protocol}")).await;
    assert_eq!(by_protocol["conversations"][0]["id"], card["id"]);
    let by_service = list("?search=vendas&page_size=100".into()).await;
    assert_eq!(by_service["conversations"].as_array().unwrap().len(), 12);
    assert!(list("?channel_kind=messenger".into()).await["conversations"]
        .as_array()
        .unwrap()
        .is_empty());
    let other = uuid::Uuid::new_v4();
    assert!(list(format!("?service_id={other}")).await["conversations"]
        .as_array()
        .unwrap()
        .is_empty());

    // Reading it and drafting change the card.
    let id = card["id"].as_str().unwrap();
    let read = call(
        &p,
        Method::POST,
        &format!("/api/v1/conversations/{id}/read"),
        as_ana,
        Some(json!({})),
    )
    .await;
    assert_eq!(read.0, 200, "{:?}", read.1);
    let draft = call(
        &p,
        Method::PUT,
        &format!("/api/v1/conversations/{id}/draft"),
        as_ana,
        Some(json!({ "text": "oi" })),
    )
    .await;
    assert_eq!(draft.0, 204);
    let again = list("?search=zoraide".into()).await;
    assert_eq!(
        (
            again["conversations"][0]["unread"].clone(),
            again["conversations"][0]["has_draft"].clone()
        ),
        (json!(0), json!(true))
    );

    // Bad input is refused with its code.
    let bad = call(&p, Method::GET, "/api/v1/me/conversations?sort=sideways", as_ana, None).await;
    assert_error(&bad, 400, "INVALID_ARGUMENT");
    let bad = call(
        &p,
        Method::GET,
        "/api/v1/me/conversations?page_token=nonsense",
        as_ana,
        None,
    )
    .await;
    assert_error(&bad, 400, "INVALID_ARGUMENT");
    p.stop().await;
}
