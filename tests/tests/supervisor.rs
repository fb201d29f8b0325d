//! The supervisor's board over the gateway, every role real: agents by status with their
//! conversations in progress and time in status, queues with waiting counts, handing a queued
//! conversation to an agent, the decisions behind it, finishing many at once with an outcome
//! per item, and the live counters stream. Agents are refused all of it.

use atende_e2e::api::{assert_error, call, Auth};
use atende_e2e::{Platform, Tenant};
use atende_proto::v1 as pb;
use atende_testkit::whatsapp::text_message_webhook;
use reqwest::Method;
use serde_json::{json, Value};

async fn customer_writes(p: &Platform, t: &Tenant, n: u32) {
    let body = text_message_webhook(
        &t.phone_number_id,
        &format!("55119876540{n:02}"),
        &format!("Cliente {n}"),
        &format!("wamid.SUP{n:02}"),
        "Oi",
        atende_e2e::now_secs(),
    );
    assert_eq!(p.post_webhook(t, &body, None).await.status(), 200);
}

/// Sara, a supervisor of `t`'s tenant.
async fn supervisor(p: &Platform, t: &Tenant) -> Tenant {
    p.create_agent(
        t,
        pb::CreateAgentRequest {
            name: "Sara".into(),
            email: "sara@acme.test".into(),
            password: "correct horse".into(),
            max_concurrent: 1,
            supervisor: true,
            ..Default::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_supervisor_sees_agents_and_queues_assigns_explains_finishes_in_bulk_and_streams_counters() {
    // Arrange: Ana (agent) holds two conversations; Sara supervises.
    let p = Platform::start().await;
    let t = p.seed().await;
    let sara = supervisor(&p, &t).await;
    let sara_token = p.login(&sara).await;
    let as_sara = Auth::Bearer(&sara_token);
    let (ana_token, mut ana_ws) = p.online(&t).await;
    let mut mine = Vec::new();
    for n in 0..2 {
        customer_writes(&p, &t, n).await;
        let got = ana_ws.next_of("conversation.assigned").await;
        mine.push(got["data"]["conversation"]["id"].as_str().unwrap().to_string());
    }

    // Agents are refused the board.
    for (method, path) in [
        (Method::GET, "/api/v1/supervisor/agents"),
        (Method::GET, "/api/v1/supervisor/queues"),
        (Method::GET, "/api/v1/supervisor/stream"),
        (Method::POST, "/api/v1/supervisor/bulk-finish"),
    ] {
        let got = call(
            &p,
            method,
            path,
            Auth::Bearer(&ana_token),
            Some(json!({ "conversation_ids": [mine[0]] })),
        )
        .await;
        assert_error(&got, 403, "PERMISSION_DENIED");
    }

    // Agents by status, with their conversations in progress.
    let (s, board) = call(&p, Method::GET, "/api/v1/supervisor/agents", as_sara, None).await;
    assert_eq!(s, 200, "{board}");
    let ana = board["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent_id"] == t.agent_id.as_str())
        .unwrap();
    assert_eq!(ana["status"], "available", "{ana}");
    assert_eq!(ana["name"], "Ana");
    assert!(ana["status_since_ms"].as_i64().unwrap() > 0);
    let held: Vec<&str> = ana["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(held.len(), 2, "{ana}");
    assert!(mine.iter().all(|m| held.contains(&m.as_str())));
    assert_eq!(board["counts"]["available"], 1, "{board}");

    // A manual queue: the next customer waits there until Sara hands him to Bruno.
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
    let bruno = p.agent_in(&t, "Bruno", &desk).await;
    let (_, mut bruno_ws) = p.online(&bruno).await;
    p.route_channel_to(&t, Some(&desk)).await;
    customer_writes(&p, &t, 9).await;
    let queued = atende_testkit::wait_until("the customer waits in Recepção", atende_e2e::DEADLINE, || async {
        let (_, q) = call(&p, Method::GET, "/api/v1/supervisor/queues", as_sara, None).await;
        let recepcao = q["queues"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "Recepção")?
            .clone();
        (recepcao["waiting"] == 1).then_some(recepcao)
    })
    .await;
    assert_eq!(queued["policy"], "manual");
    assert_eq!(queued["agents"]["available"], 1, "{queued}");
    let waiting: String =
        sqlx::query_scalar("SELECT id::text FROM conversations WHERE service_id = $1::uuid AND status = 'queued'")
            .bind(&desk)
            .fetch_one(&p.sandbox.pool)
            .await
            .unwrap();
    let path = format!("/api/v1/supervisor/conversations/{waiting}/assign");
    let (s, body) = call(
        &p,
        Method::POST,
        &path,
        as_sara,
        Some(json!({ "agent_id": bruno.agent_id })),
    )
    .await;
    assert_eq!(s, 204, "{body}");
    let got = bruno_ws.next_of("conversation.assigned").await;
    assert_eq!(got["data"]["conversation"]["id"], waiting.as_str());
    let (s, why) = call(
        &p,
        Method::GET,
        &format!("/api/v1/supervisor/conversations/{waiting}/explain"),
        as_sara,
        None,
    )
    .await;
    assert_eq!(s, 200, "{why}");
    assert!(!why["decisions"].as_array().unwrap().is_empty(), "{why}");

    // Bulk finish: Ana's two and an id that is nobody's, one outcome each, in order.
    let nobody = uuid::Uuid::new_v4().to_string();
    let ids = json!([mine[0], nobody, mine[1]]);
    let (s, done) = call(
        &p,
        Method::POST,
        "/api/v1/supervisor/bulk-finish",
        as_sara,
        Some(json!({ "conversation_ids": ids })),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    let outcomes = done["outcomes"].as_array().unwrap();
    let finished: Vec<bool> = outcomes.iter().map(|o| o["finished"].as_bool().unwrap()).collect();
    assert_eq!(finished, [true, false, true], "{done}");
    assert_eq!(outcomes[1]["error_code"], "NOT_FOUND");
    assert!(!outcomes[1]["message_pt_br"].as_str().unwrap().is_empty());
    atende_testkit::wait_until("Ana is free again", atende_e2e::DEADLINE, || async {
        let (_, presence) = call(&p, Method::GET, "/api/v1/me/presence", Auth::Bearer(&ana_token), None).await;
        (presence["assigned"] == 0).then_some(())
    })
    .await;

    // The live counters: the first event comes at once.
    let mut resp = p
        .http
        .get(format!("{}/api/v1/supervisor/stream", p.gateway))
        .bearer_auth(&sara_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(atende_e2e::DEADLINE, resp.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.starts_with("event: counters\n"), "{text}");
    let data: Value = serde_json::from_str(text.lines().nth(1).unwrap().trim_start_matches("data: ")).unwrap();
    assert_eq!(data["agents"]["available"], 2, "{data}");
    assert!(data["board"]["queues"].as_array().unwrap().len() >= 2, "{data}");
    drop(resp);
    ana_ws.close().await;
    bruno_ws.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_supervisors_notice_reaches_the_agents_sockets_once_and_survives_a_reconnect() {
    let p = Platform::start().await;
    let t = p.seed().await;
    let sara = supervisor(&p, &t).await;
    let sara_token = p.login(&sara).await;
    let (ana_token, mut ana_ws) = p.online(&t).await;

    // To everyone (Ana and Sara), then the same notice again (a client's retry).
    let notice_id = uuid::Uuid::now_v7();
    let body = json!({ "text": "Reunião às 15h", "notice_id": notice_id });
    let (s, sent) = call(
        &p,
        Method::POST,
        "/api/v1/supervisor/notices",
        Auth::Bearer(&sara_token),
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 200, "{sent}");
    assert_eq!(
        (sent["agents"].clone(), sent["delivered"].clone()),
        (json!(2), json!(2))
    );
    let (_, again) = call(
        &p,
        Method::POST,
        "/api/v1/supervisor/notices",
        Auth::Bearer(&sara_token),
        Some(body),
    )
    .await;
    assert_eq!(again["delivered"], 0, "a retry tells no one twice: {again}");
    let frame = ana_ws.next_of("supervisor.notice").await;
    assert_eq!(frame["data"]["text"], "Reunião às 15h");
    assert_eq!(frame["data"]["from"], sara.agent_id.as_str());
    let seq = frame["seq"].as_u64().unwrap();
    ana_ws.close().await;

    // Reconnecting from before it: the notice is there, once.
    let mut back = p.socket_after(&ana_token, Some(seq - 1)).await;
    let replayed = back.next_of("supervisor.notice").await;
    assert_eq!(
        (replayed["seq"].as_u64(), replayed["data"]["notice_id"].clone()),
        (Some(seq), json!(notice_id))
    );
    back.close().await;

    // Agents cannot send notices; a stranger's id and an empty text are refused.
    let body = json!({ "text": "oi" });
    assert_error(
        &call(
            &p,
            Method::POST,
            "/api/v1/supervisor/notices",
            Auth::Bearer(&ana_token),
            Some(body),
        )
        .await,
        403,
        "PERMISSION_DENIED",
    );
    // An agent of no tenant of hers, and a blank text.
    for body in [
        json!({ "text": "oi", "agent_ids": [uuid::Uuid::now_v7()] }),
        json!({ "text": "  " }),
    ] {
        let got = call(
            &p,
            Method::POST,
            "/api/v1/supervisor/notices",
            Auth::Bearer(&sara_token),
            Some(body),
        )
        .await;
        assert_error(&got, 400, "INVALID_ARGUMENT");
    }
    p.stop().await;
}
