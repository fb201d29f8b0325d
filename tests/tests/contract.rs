//! The gateway's HTTP API against its own OpenAPI document (`/openapi.json`): schemathesis
//! (PyPI) generates requests for every operation — the document's examples, its boundary
//! values, then valid and invalid data — with a real supervisor's token and, in the paths,
//! a real conversation and tag of the tenant. No answer may be a 5xx, answer a status the
//! document does not list, or carry a body its schema refuses, and no request the schema
//! forbids may be accepted.

use atende_e2e::api::{call, Auth};
use atende_e2e::Platform;
use atende_proto::v1 as pb;
use atende_testkit::whatsapp::text_message_webhook;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    // Arrange: rate limits out of the way (429s would only hide the routes behind them), a
    // conversation of Ana's, a tag, and Sara, an administrator (who supervises too).
    let p = Platform::start_configured(|c| {
        c.limits.api_per_user_per_min = 1_000_000;
        c.limits.api_per_tenant_per_min = 1_000_000;
        c.limits.login_per_ip_per_min = 1_000_000;
        c.limits.login_per_account_per_min = 1_000_000;
    })
    .await;
    let t = p.seed().await;
    let (_, mut ana_ws) = p.online(&t).await;
    let body = text_message_webhook(
        &t.phone_number_id,
        "5511987654321",
        "Maria",
        "wamid.CONTRACT1",
        "Oi",
        atende_e2e::now_secs(),
    );
    assert_eq!(p.post_webhook(&t, &body, None).await.status(), 200);
    let got = ana_ws.next_of("conversation.assigned").await;
    let conversation = got["data"]["conversation"]["id"].as_str().unwrap().to_string();
    let sara = p
        .create_agent(
            &t,
            pb::CreateAgentRequest {
                name: "Sara".into(),
                email: "sara@acme.test".into(),
                password: "correct horse".into(),
                max_concurrent: 1,
                supervisor: true,
                admin: true,
                can_attend_in_person: true,
                ..Default::default()
            },
        )
        .await;
    let token = p.login(&sara).await;
    let (s, tag) = call(
        &p,
        Method::POST,
        "/api/v1/tags",
        Auth::Bearer(&token),
        Some(json!({ "name": "vip" })),
    )
    .await;
    assert_eq!(s, 201, "{tag}");
    let tag = tag["tag"]["id"].as_str().unwrap().to_string();

    // Act: the whole document, a few dozen cases per operation. The supervisor's stream never
    // ends, and logging out would revoke the token the run uses.
    let dir = std::env::temp_dir().join(format!("atende-contract-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("schemathesis.toml"),
        format!(
            "headers = {{ Authorization = \"Bearer {token}\" }}\n\
             [parameters]\n\"path.id\" = \"{conversation}\"\n\"path.tag\" = \"{tag}\"\n"
        ),
    )
    .unwrap();
    let gateway = p.gateway.clone();
    let cwd = dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(atende_testkit::schemathesis())
        .current_dir(&cwd)
        .args([
            "run",
            &format!("{gateway}/openapi.json"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--workers",
            "2",
            "--request-timeout",
            "20",
            "--generation-database",
            "none",
            "--exclude-path",
            "/api/v1/supervisor/stream",
            "--exclude-path",
            "/api/v1/auth/logout",
            "--no-color",
        ])
        .output()
    })
    .await
    .unwrap()
    .expect("schemathesis runs (deploy/local/infra.sh up installs it)");
    let _ = std::fs::remove_dir_all(&dir);

    // Assert: a clean run over every other operation.
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{report}");
    assert!(report.contains("Tested: 46"), "not every operation ran:\n{report}");
    ana_ws.close().await;
    p.stop().await;
}
