//! The security walk: every operation of the gateway's own OpenAPI document (so a route added
//! tomorrow is walked too), called with the real ids of a first tenant — its conversation,
//! tag, service and agents in the path and in the body — by an agent and an administrator of
//! another tenant, and by a colleague of the same tenant (in another service) who neither
//! owns the conversation nor supervises. Every route about one conversation or tag answers 404 or 403, no answer
//! shows anything of the first tenant, their sockets and streams carry nothing of it, and
//! not one row of the first tenant changes (a digest of every tenant-scoped table, taken
//! before and after).

use std::collections::BTreeMap;

use atende_e2e::api::{call, Auth};
use atende_e2e::{Platform, Tenant};
use atende_proto::v1 as pb;
use atende_testkit::whatsapp::text_message_webhook;
use reqwest::Method;
use serde_json::{json, Value};

const CUSTOMER_PHONE: &str = "5511987654321";
const CUSTOMER_NAME: &str = "Maria Sigilosa";
const CUSTOMER_TEXT: &str = "Meu CPF e meu endereco";

/// A digest of each table's rows of `tenant`, for every table with a `tenant_id`.
async fn digest(p: &Platform, tenant: &str) -> BTreeMap<String, String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.columns \
         WHERE column_name = 'tenant_id' AND table_schema = current_schema() ORDER BY 1",
    )
    .fetch_all(&p.sandbox.pool)
    .await
    .unwrap();
    assert!(tables.len() >= 10, "tenant-scoped tables: {tables:?}");
    let mut out = BTreeMap::new();
    for table in tables {
        let sql = format!(
            "SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') \
             FROM {table} t WHERE tenant_id = $1::uuid"
        );
        let d: String = sqlx::query_scalar(&sql)
            .bind(tenant)
            .fetch_one(&p.sandbox.pool)
            .await
            .unwrap();
        out.insert(table, d);
    }
    out
}

/// Every operation of the document: (method, path template).
async fn operations(p: &Platform) -> Vec<(Method, String)> {
    let doc: Value = p
        .http
        .get(format!("{}/openapi.json", p.gateway))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            ops.push((
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                path.clone(),
            ));
        }
    }
    // Logging out last: the intruder's own session ends, which proves nothing about others.
    ops.sort_by_key(|(_, path)| path.ends_with("/logout"));
    assert!(ops.len() >= 38, "{} operations", ops.len());
    ops
}

/// A tenant of its own with a service, an agent and a supervisor: (agent, supervisor).
async fn other_tenant(p: &Platform, t: &Tenant) -> (Tenant, Tenant) {
    let tenant = p
        .admin()
        .await
        .create_tenant(pb::CreateTenantRequest {
            name: "Outra".into(),
            slug: "outra".into(),
            ..Default::default()
        })
        .await
        .expect("tenant")
        .into_inner()
        .tenant
        .unwrap();
    let other = Tenant {
        tenant_id: tenant.id,
        slug: tenant.slug,
        ..t.clone()
    };
    let service = p.service(&other, "Vendas", &[], false).await;
    let agent = p.agent_in(&other, "Ze", &service).await;
    let boss = supervisor(p, &other, "zoe@outra.test", true).await;
    (agent, boss)
}

async fn supervisor(p: &Platform, t: &Tenant, email: &str, admin: bool) -> Tenant {
    p.create_agent(
        t,
        pb::CreateAgentRequest {
            name: "Chefe".into(),
            email: email.into(),
            password: "correct horse".into(),
            max_concurrent: 1,
            supervisor: true,
            admin,
            can_attend_in_person: true,
            ..Default::default()
        },
    )
    .await
}

/// What the first tenant's data looks like in an answer: none of it may appear.
fn leaks(body: &str, secrets: &[&str]) -> Vec<String> {
    secrets
        .iter()
        .filter(|s| !s.is_empty() && body.contains(*s))
        .map(|s| s.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operation_refuses_another_tenant_and_a_colleague_with_the_first_tenants_real_ids_and_writes_nothing() {
    // Arrange: tenant A — Ana holds Maria's conversation, tagged; Bruno is Ana's colleague.
    let p = Platform::start_configured(|c| {
        c.limits.api_per_user_per_min = 1_000_000;
        c.limits.api_per_tenant_per_min = 1_000_000;
    })
    .await;
    let t = p.seed().await;
    let (ana_token, mut ana_ws) = p.online(&t).await;
    let body = text_message_webhook(
        &t.phone_number_id,
        CUSTOMER_PHONE,
        CUSTOMER_NAME,
        "wamid.WALK1",
        CUSTOMER_TEXT,
        atende_e2e::now_secs(),
    );
    assert_eq!(p.post_webhook(&t, &body, None).await.status(), 200);
    let assigned = ana_ws.next_of("conversation.assigned").await;
    let conversation = assigned["data"]["conversation"].clone();
    let id = conversation["id"].as_str().unwrap().to_string();
    let protocol = conversation["protocol"].as_str().unwrap().to_string();
    let contact = conversation["contact_id"].as_str().unwrap().to_string();
    ana_ws.next_of("message.created").await;
    let sara_token = p.login(&supervisor(&p, &t, "sara@acme.test", false).await).await;
    let (s, tag) = call(
        &p,
        Method::POST,
        "/api/v1/tags",
        Auth::Bearer(&sara_token),
        Some(json!({ "name": "vip-a" })),
    )
    .await;
    assert_eq!(s, 201, "{tag}");
    let tag = tag["tag"]["id"].as_str().unwrap().to_string();
    let (s, _) = call(
        &p,
        Method::PUT,
        &format!("/api/v1/conversations/{id}/tags/{tag}"),
        Auth::Bearer(&ana_token),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let support = p.service(&t, "Suporte", &[], false).await;
    let bruno = p.agent_in(&t, "Bruno", &support).await;
    let bruno_token = p.login(&bruno).await;

    // Tenant B: Zé (agent) and Zoe (supervisor), each with a socket; Zoe watches her board.
    let (ze, zoe) = other_tenant(&p, &t).await;
    let (ze_token, mut ze_ws) = p.online(&ze).await;
    let zoe_token = p.login(&zoe).await;

    // Everything the intruders might aim at: tenant A's ids, in paths and in bodies.
    let body = json!({
        "conversation_ids": [id],
        "service_id": t.service_id,
        "agent_id": t.agent_id,
        "agent_ids": [t.agent_id],
        "tag_id": tag,
        "contact_id": contact,
        "channel_id": t.channel_id,
        "phone": CUSTOMER_PHONE,
        "text": "intruso",
        "name": "intruso",
        "qualification": "",
        "unread": true,
        "status": "available",
        "send_at_ms": atende_store::to_millis(time::OffsetDateTime::now_utc()) + 3_600_000,
    });
    let secrets = [
        protocol.as_str(),
        contact.as_str(),
        t.service_id.as_str(),
        t.channel_id.as_str(),
        tag.as_str(),
        CUSTOMER_NAME,
        CUSTOMER_TEXT,
        "vip-a",
    ];
    let ops = operations(&p).await;
    let before = digest(&p, &t.tenant_id).await;
    let walk_started: time::OffsetDateTime = sqlx::query_scalar("SELECT now()")
        .fetch_one(&p.sandbox.pool)
        .await
        .unwrap();

    // Act and assert: every operation, as each intruder.
    let mut walked = 0;
    for (method, template) in &ops {
        if template.starts_with("/api/v1/auth/login") || template.starts_with("/api/v1/auth/refresh") {
            continue; // no token, no ids: nothing of anyone's to reach
        }
        let path = template.replace("{id}", &id).replace("{tag}", &tag);
        let about_one = template.contains('{');
        for (who, token) in [("Zé", &ze_token), ("Zoe", &zoe_token), ("Bruno", &bruno_token)] {
            let colleague = who == "Bruno";
            // The colleague's own desk, presence and sessions are his to use: only routes
            // about tenant A's conversation or tag, and the supervisor's, are walked for him.
            let restricted = template.contains("/supervisor/") || template.contains("/admin/");
            if colleague && !about_one && !restricted && template != "/api/v1/tags" {
                continue;
            }
            if colleague && template == "/api/v1/tags" && method == Method::GET {
                continue;
            }
            let (status, answer) = if template.ends_with("/stream") {
                stream_once(&p, token).await
            } else {
                call(&p, method.clone(), &path, Auth::Bearer(token), Some(body.clone())).await
            };
            let text = answer.to_string();
            walked += 1;
            assert!(status < 500, "{who} {method} {template}: {status} {text}");
            // Refused as unknown (404, as if it never was) or as not the caller's (403): the
            // platform's error body, whichever check came first.
            if (about_one || colleague) && template != "/api/v1/ws" {
                assert!(
                    matches!(status, 403 | 404),
                    "{who} {method} {template}: {status} {text}"
                );
                assert!(answer["error"]["code"].is_string(), "{who} {method} {template}: {text}");
            }
            let leaked = leaks(&text, &secrets);
            assert!(leaked.is_empty(), "{who} {method} {template} showed {leaked:?}: {text}");
        }
    }
    assert!(walked > 60, "{walked} calls");

    // No frame of tenant A reached Zé's socket: the next one is a notice from his own
    // supervisor, sent after the walk.
    let (s, _) = call(
        &p,
        Method::POST,
        "/api/v1/supervisor/notices",
        Auth::Bearer(&zoe_token),
        Some(json!({ "text": "fim" })),
    )
    .await;
    assert_eq!(s, 200);
    let next = ze_ws.next().await;
    assert_eq!(
        (next["type"].as_str(), next["data"]["text"].as_str()),
        (Some("supervisor.notice"), Some("fim")),
        "{next}"
    );

    // Not one row of tenant A changed, but for the router's log of the colleague's refused
    // attempts (what a supervisor's "explain" shows): rejections, all his, and nothing else.
    let after = digest(&p, &t.tenant_id).await;
    let changed: Vec<&String> = before.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert!(
        changed.is_empty() || changed == ["decision_log"],
        "tenant A's tables changed: {changed:?}"
    );
    let logged: Vec<(String, Option<uuid::Uuid>)> = sqlx::query_as(
        "SELECT decision, agent_id FROM decision_log WHERE tenant_id = $1::uuid AND at >= $2 ORDER BY id",
    )
    .bind(&t.tenant_id)
    .bind(walk_started)
    .fetch_all(&p.sandbox.pool)
    .await
    .unwrap();
    let bruno_id = uuid::Uuid::parse_str(&bruno.agent_id).unwrap();
    assert!(
        logged.iter().all(|(d, a)| d == "reject" && *a == Some(bruno_id)),
        "{logged:?}"
    );
    ana_ws.close().await;
    ze_ws.close().await;
    p.stop().await;
}

/// The supervisor's stream as one `counters` event (it never ends by itself): the status
/// and the first event's data, or the refusal.
async fn stream_once(p: &Platform, token: &str) -> (u16, Value) {
    let mut resp = p
        .http
        .get(format!("{}/api/v1/supervisor/stream", p.gateway))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    if status != 200 {
        return (status, resp.json().await.unwrap_or(Value::Null));
    }
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), resp.chunk())
            .await
            .expect("a counters event")
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    (status, Value::String(text))
}
