//! Roles: a tenant administrator signs in with the `admin` role, creates a service and an
//! agent in it over the gateway (the agent then signs in as an agent), lists them, and
//! supervises too; agents and supervisors are refused every administrator's route, and an
//! administrator of another tenant sees none of this tenant's agents or services.

use atende_e2e::api::{assert_error, call, Auth};
use atende_e2e::{Platform, Tenant};
use atende_proto::v1 as pb;
use reqwest::Method;
use serde_json::{json, Value};

async fn member(p: &Platform, t: &Tenant, email: &str, supervisor: bool, admin: bool) -> Tenant {
    p.create_agent(
        t,
        pb::CreateAgentRequest {
            name: email.split('@').next().unwrap().into(),
            email: email.into(),
            password: "correct horse".into(),
            max_concurrent: 1,
            supervisor,
            admin,
            ..Default::default()
        },
    )
    .await
}

async fn login_body(p: &Platform, slug: &str, email: &str, password: &str) -> Value {
    let body = json!({ "tenant": slug, "email": email, "password": password });
    let (s, answer) = call(p, Method::POST, "/api/v1/auth/login", Auth::None, Some(body)).await;
    assert_eq!(s, 200, "{answer}");
    answer
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_administrator_manages_agents_and_services_and_no_one_else_may() {
    // Arrange: Alice administers Acme; Sara supervises it; Ana is an agent.
    let p = Platform::start().await;
    let t = p.seed().await;
    let alice = member(&p, &t, "alice@acme.test", false, true).await;
    let sara = member(&p, &t, "sara@acme.test", true, false).await;
    let signed = login_body(&p, &t.slug, "alice@acme.test", "correct horse").await;
    assert_eq!(signed["role"], "admin");
    assert_eq!(signed["supervisor"], true, "administrators supervise too");
    let perms: Vec<&str> = signed["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(perms.contains(&"admin") && perms.contains(&"bulk"), "{perms:?}");
    let alice_token = signed["access_token"].as_str().unwrap().to_string();
    assert_eq!(alice.agent_id, signed["agent_id"].as_str().unwrap());

    // Act: Alice creates a service and an agent working in it.
    let (s, service) = call(
        &p,
        Method::POST,
        "/api/v1/admin/services",
        Auth::Bearer(&alice_token),
        Some(json!({ "name": "Pós-venda", "policy": "round_robin", "qualifications": [{ "code": "resolvido" }] })),
    )
    .await;
    assert_eq!(s, 201, "{service}");
    let service_id = service["service"]["id"].as_str().unwrap().to_string();
    let (s, carla) = call(
        &p,
        Method::POST,
        "/api/v1/admin/agents",
        Auth::Bearer(&alice_token),
        Some(json!({
            "name": "Carla", "email": "carla@acme.test", "password": "carla's passphrase",
            "max_concurrent": 4, "service_ids": [service_id],
        })),
    )
    .await;
    assert_eq!(s, 201, "{carla}");
    assert_eq!(carla["agent"]["service_ids"], json!([service_id]));
    assert_eq!(carla["agent"]["admin"], false);

    // Assert: Carla signs in as an agent; both show in Alice's lists; Alice supervises.
    let carla_login = login_body(&p, &t.slug, "carla@acme.test", "carla's passphrase").await;
    assert_eq!(carla_login["role"], "agent");
    let (s, agents) = call(
        &p,
        Method::GET,
        "/api/v1/admin/agents",
        Auth::Bearer(&alice_token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{agents}");
    assert!(ids(&agents, "agents").contains(&carla["agent"]["id"].as_str().unwrap().to_string()));
    let (s, services) = call(
        &p,
        Method::GET,
        "/api/v1/admin/services",
        Auth::Bearer(&alice_token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{services}");
    assert!(ids(&services, "services").contains(&service_id));
    let (s, board) = call(
        &p,
        Method::GET,
        "/api/v1/supervisor/agents",
        Auth::Bearer(&alice_token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{board}");
    // ...and acts as one everywhere: Ana's conversation, finished by Alice.
    let (_, mut ana_ws) = p.online(&t).await;
    let body = atende_testkit::whatsapp::text_message_webhook(
        &t.phone_number_id,
        "5511987654321",
        "Maria",
        "wamid.ADMIN1",
        "Oi",
        atende_e2e::now_secs(),
    );
    assert_eq!(p.post_webhook(&t, &body, None).await.status(), 200);
    let assigned = ana_ws.next_of("conversation.assigned").await;
    let id = assigned["data"]["conversation"]["id"].as_str().unwrap().to_string();
    let (s, done) = call(
        &p,
        Method::POST,
        "/api/v1/supervisor/bulk-finish",
        Auth::Bearer(&alice_token),
        Some(json!({ "conversation_ids": [id] })),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["outcomes"][0]["finished"], true, "{done}");
    ana_ws.close().await;

    // Agents and supervisors are refused every administrator's route.
    let ana_token = p.login(&t).await;
    let sara_token = p.login(&sara).await;
    for token in [&ana_token, &sara_token] {
        for (method, path, body) in [
            (Method::GET, "/api/v1/admin/agents", None),
            (Method::GET, "/api/v1/admin/services", None),
            (
                Method::POST,
                "/api/v1/admin/agents",
                Some(json!({ "name": "X", "email": "x@acme.test", "password": "x passphrase" })),
            ),
            (
                Method::POST,
                "/api/v1/admin/services",
                Some(json!({ "name": "X", "policy": "manual" })),
            ),
        ] {
            let got = call(&p, method, path, Auth::Bearer(token), body).await;
            assert_error(&got, 403, "PERMISSION_DENIED");
        }
    }
    let (services_now, agents_now): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM services WHERE name = 'X'), (SELECT count(*) FROM agents WHERE email = 'x@acme.test')",
    )
    .fetch_one(&p.sandbox.pool)
    .await
    .unwrap();
    assert_eq!((services_now, agents_now), (0, 0));

    // Another tenant's administrator sees only his own tenant.
    let other = p
        .admin()
        .await
        .create_tenant(pb::CreateTenantRequest {
            name: "Outra".into(),
            slug: "outra".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    let other_t = Tenant {
        tenant_id: other.id,
        slug: other.slug.clone(),
        ..t.clone()
    };
    member(&p, &other_t, "olga@outra.test", false, true).await;
    let olga = login_body(&p, &other.slug, "olga@outra.test", "correct horse").await;
    let olga_token = olga["access_token"].as_str().unwrap();
    let (_, agents) = call(&p, Method::GET, "/api/v1/admin/agents", Auth::Bearer(olga_token), None).await;
    assert_eq!(agents["agents"].as_array().unwrap().len(), 1, "{agents}");
    let (_, services) = call(
        &p,
        Method::GET,
        "/api/v1/admin/services",
        Auth::Bearer(olga_token),
        None,
    )
    .await;
    assert!(services["services"].as_array().unwrap().is_empty(), "{services}");
    p.stop().await;
}
