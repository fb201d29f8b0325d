use super::*;

const PNID: &str = "106540352242922";

fn text(to: &str, body: &str) -> Value {
    json!({
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
        "type": "text", "text": {"preview_url": false, "body": body}
    })
}

async fn post_json(fake: &FakeGraph, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", fake.base_url()))
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("fake graph answers");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json body"))
}

fn messages_path() -> String {
    format!("/v23.0/{PNID}/messages")
}

fn assert_graph_error(status: u16, body: &Value, want_status: u16, want_code: i64) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert_eq!(body["error"]["type"], "OAuthException");
    assert!(body["error"]["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn a_valid_text_send_is_accepted_with_a_fresh_wamid_and_recorded() {
    let fake = FakeGraph::start().await;
    fake.expect_token(PNID, "tok");

    let (status, body) = post_json(&fake, &messages_path(), Some("tok"), &text("5511987654321", "olá")).await;
    let (_, second) = post_json(&fake, &messages_path(), Some("tok"), &text("5511987654321", "de novo")).await;

    assert_eq!(status, 200);
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(
        body["contacts"][0],
        json!({"input": "5511987654321", "wa_id": "5511987654321"})
    );
    assert_eq!(body["messages"][0]["message_status"], "accepted");
    let wamid = body["messages"][0]["id"].as_str().unwrap();
    assert!(wamid.starts_with("wamid."));
    assert_ne!(second["messages"][0]["id"], body["messages"][0]["id"]);
    let sent = fake.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].phone_number_id, PNID);
    assert_eq!(sent[0].token, "tok");
    assert_eq!(sent[0].provider_message_id, wamid);
    assert_eq!(sent[0].body["text"]["body"], "olá");
}

#[tokio::test]
async fn a_wrong_or_missing_bearer_is_refused_with_code_190() {
    let fake = FakeGraph::start().await;
    fake.expect_token(PNID, "right");

    let (status, body) = post_json(&fake, &messages_path(), Some("wrong"), &text("1", "x")).await;
    assert_graph_error(status, &body, 401, 190);
    let (status, body) = post_json(&fake, &messages_path(), None, &text("1", "x")).await;
    assert_graph_error(status, &body, 401, 190);
    assert!(fake.sent().is_empty());
}

#[tokio::test]
async fn malformed_sends_get_a_400_with_code_100_and_details() {
    let fake = FakeGraph::start().await;
    let long = "a".repeat(MAX_TEXT_CHARS + 1);
    let cases = [
        json!({"to": "1", "type": "text", "text": {"body": "x"}}),
        text("+5511987654321", "x"),
        text("55 11 98765", "x"),
        text("1", ""),
        text("1", &long),
        json!({"messaging_product": "whatsapp", "to": "1", "type": "hologram", "hologram": {}}),
        json!({"messaging_product": "whatsapp", "to": "1", "type": "image", "image": {"id": "1", "link": "https://x/y.png"}}),
        json!({"messaging_product": "whatsapp", "to": "1", "type": "audio", "audio": {}}),
        json!({"messaging_product": "whatsapp", "to": "1", "type": "template", "template": {"name": "t"}}),
        json!({"messaging_product": "whatsapp", "to": "1", "type": "text", "text": {"body": "x"}, "context": {"message_id": 5}}),
        json!({"messaging_product": "whatsapp", "status": "read"}),
    ];
    for case in cases {
        let (status, body) = post_json(&fake, &messages_path(), Some("t"), &case).await;
        assert_graph_error(status, &body, 400, 100);
        assert!(body["error"]["error_data"]["details"].is_string(), "{body}");
    }
    assert!(fake.sent().is_empty());
}

#[tokio::test]
async fn wrong_paths_versions_and_content_types_are_refused() {
    let fake = FakeGraph::start().await;
    let (status, body) = post_json(&fake, &format!("/23.0/{PNID}/messages"), Some("t"), &text("1", "x")).await;
    assert_graph_error(status, &body, 400, 100);
    let (status, body) = post_json(&fake, "/v23.0/abc/messages", Some("t"), &text("1", "x")).await;
    assert_graph_error(status, &body, 400, 100);
    let (status, body) = post_json(&fake, &format!("/v23.0/{PNID}/media"), Some("t"), &text("1", "x")).await;
    assert_graph_error(status, &body, 400, 100);

    let res = reqwest::Client::new()
        .post(format!("{}{}", fake.base_url(), messages_path()))
        .bearer_auth("t")
        .header("content-type", "text/plain")
        .body(text("1", "x").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
}

#[tokio::test]
async fn templates_media_bsuid_recipients_and_quoted_replies_are_accepted() {
    let fake = FakeGraph::start().await;
    let cases = [
        json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "template",
               "template": {"name": "lembrete", "language": {"code": "pt_BR"}, "components": []}}),
        json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "audio", "audio": {"id": "123"}}),
        json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "document",
               "document": {"link": "https://example.com/a.pdf", "filename": "a.pdf"}}),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "BR.1502576394655843",
               "type": "text", "text": {"body": "oi"}, "context": {"message_id": "wamid.Q"}}),
    ];
    for case in &cases {
        let (status, body) = post_json(&fake, &messages_path(), Some("t"), case).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, body) = post_json(&fake, &messages_path(), Some("t"), &cases[3]).await;
    assert_eq!(body["contacts"][0]["user_id"], "BR.1502576394655843");
    assert_eq!(fake.sent().len(), 5);
}

#[tokio::test]
async fn a_read_receipt_succeeds_and_is_recorded_apart_from_sends() {
    let fake = FakeGraph::start().await;
    let receipt = json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN",
                         "typing_indicator": {"type": "text"}});
    let (status, body) = post_json(&fake, &messages_path(), Some("t"), &receipt).await;
    assert_eq!((status, body), (200, json!({"success": true})));
    assert_eq!(
        fake.marked_read(),
        [RecordedRead {
            phone_number_id: PNID.into(),
            token: "t".into(),
            message_id: "wamid.IN".into()
        }]
    );
    assert!(fake.sent().is_empty());
}

#[tokio::test]
async fn injected_failures_apply_to_the_next_n_valid_requests_only() {
    let fake = FakeGraph::start().await;
    fake.fail_next(2, 429, 130429);

    let (s1, b1) = post_json(&fake, &messages_path(), Some("t"), &text("1", "a")).await;
    let (s2, _) = post_json(&fake, &messages_path(), Some("t"), &text("1", "b")).await;
    let (s3, _) = post_json(&fake, &messages_path(), Some("t"), &text("1", "c")).await;

    assert_graph_error(s1, &b1, 429, 130429);
    assert!(b1["error"]["message"].as_str().unwrap().starts_with("(#130429)"));
    assert_eq!((s2, s3), (429, 200));
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(fake.sent()[0].body["text"]["body"], "c");
}

#[tokio::test]
async fn wait_for_sends_returns_once_enough_sends_arrived() {
    let fake = Arc::new(FakeGraph::start().await);
    let sender = {
        let fake = fake.clone();
        tokio::spawn(async move {
            for body in ["um", "dois"] {
                post_json(&fake, &messages_path(), Some("t"), &text("1", body)).await;
            }
        })
    };
    let sends = fake.wait_for_sends(2, Duration::from_secs(10)).await;
    assert_eq!(sends.len(), 2);
    sender.await.unwrap();
}

#[tokio::test]
#[should_panic(expected = "expected 1 sends")]
async fn wait_for_sends_panics_at_the_deadline() {
    let fake = FakeGraph::start().await;
    fake.wait_for_sends(1, Duration::from_millis(50)).await;
}

#[test]
fn api_versions_and_bsuids_are_recognised() {
    assert!(is_api_version("v23.0") && is_api_version("v9.10"));
    assert!(!is_api_version("23.0") && !is_api_version("v23") && !is_api_version("v2x.0"));
    assert!(is_bsuid("US.13491208655302741918") && is_bsuid("US.ENT.11815799212886844830"));
    assert!(!is_bsuid("us.1") && !is_bsuid("USA.1") && !is_bsuid("US.") && !is_bsuid("5511987654321"));
}

#[test]
fn a_missing_type_defaults_to_text() {
    let body = json!({"messaging_product": "whatsapp", "to": "1", "text": {"body": "x"}});
    assert_eq!(validate(&body), Ok(Request::Message { to: "1".into() }));
}

#[tokio::test]
async fn a_template_send_from_a_linked_number_must_match_an_approved_template_of_its_account() {
    let fake = FakeGraph::start().await;
    fake.set_templates(
        "102290129340398",
        vec![
            json!({"name": "lembrete", "language": "pt_BR", "status": "APPROVED", "category": "UTILITY",
                   "components": [{"type": "BODY", "text": "Olá {{1}}, sua visita é {{2}}."}]}),
            json!({"name": "promo", "language": "pt_BR", "status": "PAUSED", "category": "MARKETING",
                   "components": [{"type": "BODY", "text": "Oferta!"}]}),
        ],
    );
    fake.link_number(PNID, "102290129340398");
    let send = |name: &str, language: &str, params: &[&str]| {
        let parameters: Vec<Value> = params.iter().map(|p| json!({"type": "text", "text": p})).collect();
        json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "template",
               "template": {"name": name, "language": {"code": language},
                            "components": [{"type": "body", "parameters": parameters}]}})
    };
    let cases = [
        (send("nao_existe", "pt_BR", &[]), 132001),
        (send("lembrete", "en_US", &["a", "b"]), 132001),
        (send("promo", "pt_BR", &[]), 132015),
        (send("lembrete", "pt_BR", &["a"]), 132000),
    ];
    for (case, code) in &cases {
        let (status, body) = post_json(&fake, &messages_path(), Some("t"), case).await;
        assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(*code)), "{body}");
    }
    assert!(fake.sent().is_empty());
    let (status, body) = post_json(
        &fake,
        &messages_path(),
        Some("t"),
        &send("lembrete", "pt_BR", &["Ana", "amanhã"]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
