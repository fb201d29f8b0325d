//! Template sync against the local fake Graph API: every page of the business account's
//! template list is read with the number's own access token, each template is stored with
//! what its parts ask a sender for, a second sync follows the provider (a status changed, a
//! template gone is DELETED), and a number of another tenant, or without a business account
//! id, is refused with its stable code.

use atende_domain::ErrorCode;
use atende_fake_graph::FakeGraph;
use atende_proto::v1::{self as pb, broadcast_service_client::BroadcastServiceClient};
use atende_testkit::fixtures::{self, ChannelSpec, RunningRole};
use atende_testkit::Sandbox;
use serde_json::{json, Value};
use std::time::Duration;

const WABA: &str = "102290129340398";

fn template(i: usize, status: &str) -> Value {
    json!({
        "id": format!("{}", 9000 + i),
        "name": format!("aviso_{i:02}"),
        "language": "pt_BR",
        "status": status,
        "category": if i.is_multiple_of(2) { "UTILITY" } else { "MARKETING" },
        "components": [
            { "type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}" },
            { "type": "BODY", "text": "Olá {{1}}, seu pedido {{2}} saiu para entrega." },
            { "type": "FOOTER", "text": "Loja Teste" },
            { "type": "BUTTONS", "buttons": [
                { "type": "QUICK_REPLY", "text": "Falar com atendente" },
                { "type": "URL", "text": "Rastrear", "url": "https://loja.test/p/{{1}}" }
            ] }
        ]
    })
}

fn code(s: &tonic::Status) -> ErrorCode {
    atende_runtime::errors::status_code_of(s).unwrap_or_else(|| panic!("no code in {s:?}"))
}

#[tokio::test]
async fn templates_sync_from_every_page_follow_the_provider_and_stay_within_the_tenant() {
    // Arrange: 30 templates of the number's business account, its token expected.
    let fake = FakeGraph::start().await;
    fake.expect_token(WABA, "token");
    fake.set_templates(WABA, (0..30).map(|i| template(i, "APPROVED")).collect());
    let sb = Sandbox::new().await;
    let mut cfg = sb.config.clone();
    cfg.channel_adapter.graph_api_base = fake.base_url();
    let acme = fixtures::tenant_with_whatsapp(&sb.pool, ChannelSpec::new("106540352242922")).await;
    atende_store::templates::set_business_account(&sb.pool, acme.tenant, acme.channel.id, WABA)
        .await
        .unwrap();
    let role = RunningRole::start(|stop| atende_broadcast::build(&cfg, stop)).await;
    let mut client = BroadcastServiceClient::new(sb.grpc(role.started.grpc_addr));
    let sync = |tenant: uuid::Uuid, channel: uuid::Uuid| pb::SyncTemplatesRequest {
        tenant_id: tenant.to_string(),
        channel_id: channel.to_string(),
    };

    // Act: the first sync.
    let got = client
        .sync_templates(sync(acme.tenant, acme.channel.id))
        .await
        .unwrap()
        .into_inner();

    // Assert: all 30, each with its shape.
    assert_eq!((got.listed, got.deleted), (30, 0));
    assert_eq!(got.templates.len(), 30);
    let first = &got.templates[0];
    assert_eq!((first.name.as_str(), first.language.as_str()), ("aviso_00", "pt_BR"));
    assert_eq!(
        (first.category.as_str(), first.status.as_str()),
        ("UTILITY", "APPROVED")
    );
    assert_eq!(
        (
            first.header_format.as_str(),
            first.header_parameters,
            first.body_parameters
        ),
        ("text", 1, 2)
    );
    assert_eq!(first.url_button_indexes, [1]);
    let components: Value = serde_json::from_str(&first.components_json).unwrap();
    assert_eq!(components[1]["text"], "Olá {{1}}, seu pedido {{2}} saiu para entrega.");

    // The provider moves on: one paused, one gone. A second sync follows it.
    let mut now: Vec<Value> = (0..30).map(|i| template(i, "APPROVED")).collect();
    now[3]["status"] = json!("PAUSED");
    now.remove(7);
    fake.set_templates(WABA, now);
    let again = client
        .sync_templates(sync(acme.tenant, acme.channel.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.listed, again.deleted), (29, 1));
    let status_of = |name: &str| {
        again
            .templates
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.status.clone())
            .unwrap()
    };
    assert_eq!(status_of("aviso_03"), "PAUSED");
    assert_eq!(status_of("aviso_07"), "DELETED");
    let listed = client
        .list_templates(pb::ListTemplatesRequest {
            tenant_id: acme.tenant.to_string(),
            channel_id: acme.channel.id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.templates.len(), 30);

    // Another tenant cannot reach this number; a number without an account id cannot sync.
    let other = fixtures::tenant(&sb.pool, "Outra", "outra").await;
    let err = client.sync_templates(sync(other, acme.channel.id)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::UnknownChannel);
    atende_store::templates::set_business_account(&sb.pool, acme.tenant, acme.channel.id, "")
        .await
        .unwrap();
    let err = client
        .sync_templates(sync(acme.tenant, acme.channel.id))
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArgument);
    drop(client);
    role.stop(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_template_list_of_many_pages_is_read_to_the_end() {
    // Arrange: 250 templates; the client asks for 100 a page, so three pages.
    let fake = FakeGraph::start().await;
    fake.set_templates(WABA, (0..250).map(|i| template(i, "APPROVED")).collect());
    let sb = Sandbox::new().await;
    let mut cfg = sb.config.clone();
    cfg.channel_adapter.graph_api_base = fake.base_url();
    let acme = fixtures::tenant_with_whatsapp(&sb.pool, ChannelSpec::new("106540352242922")).await;
    atende_store::templates::set_business_account(&sb.pool, acme.tenant, acme.channel.id, WABA)
        .await
        .unwrap();
    let role = RunningRole::start(|stop| atende_broadcast::build(&cfg, stop)).await;
    let mut client = BroadcastServiceClient::new(sb.grpc(role.started.grpc_addr));

    // Act
    let got = client
        .sync_templates(pb::SyncTemplatesRequest {
            tenant_id: acme.tenant.to_string(),
            channel_id: acme.channel.id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();

    // Assert
    assert_eq!(got.listed, 250);
    let names: std::collections::BTreeSet<&str> = got.templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 250);
    drop(client);
    role.stop(Duration::from_secs(10)).await;
}
