//! `AdminService` over real gRPC: creating and listing tenants, services, channels and
//! agents, pagination, idempotent creation with a fixed id, stable error codes in the status
//! details, and `grpc.health.v1`.

use std::time::Duration;

use atende_domain::ErrorCode;
use atende_proto::v1::{self as pb, admin_service_client::AdminServiceClient};
use atende_testkit::fixtures::RunningRole;
use atende_testkit::Sandbox;
use tonic::transport::Channel;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(10);

struct Admin {
    sandbox: Sandbox,
    role: RunningRole,
    client: AdminServiceClient<atende_runtime::AuthedChannel>,
}

impl Admin {
    async fn start() -> Admin {
        let sandbox = Sandbox::new().await;
        let role = RunningRole::start(|stop| atende_session::build(&sandbox.config, stop)).await;
        let client = AdminServiceClient::new(sandbox.grpc(role.started.grpc_addr));
        Admin { sandbox, role, client }
    }

    fn client(&self) -> AdminServiceClient<atende_runtime::AuthedChannel> {
        self.client.clone()
    }

    async fn tenant(&self, slug: &str) -> pb::Tenant {
        let req = pb::CreateTenantRequest {
            name: format!("Tenant {slug}"),
            slug: slug.to_string(),
            ..Default::default()
        };
        self.client()
            .create_tenant(req)
            .await
            .expect("tenant created")
            .into_inner()
            .tenant
            .unwrap()
    }

    async fn service(&self, tenant: &str, name: &str, policy: &str) -> Result<pb::Service, tonic::Status> {
        let req = pb::CreateServiceRequest {
            tenant_id: tenant.to_string(),
            name: name.to_string(),
            policy: policy.to_string(),
            ..Default::default()
        };
        Ok(self.client().create_service(req).await?.into_inner().service.unwrap())
    }

    async fn stop(self) {
        drop(self.client);
        self.role.stop(DEADLINE).await;
        self.sandbox.cleanup().await;
    }
}

/// The status is INVALID_ARGUMENT with the stable code in its details, blaming `field`.
fn assert_invalid(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    let status = result.expect_err("the request is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(
        atende_runtime::status_code_of(&status),
        Some(ErrorCode::InvalidArgument),
        "{status:?}"
    );
    let detail = atende_runtime::errors::detail_of(&status).expect("an ErrorDetail");
    assert_eq!(detail.field, field);
    assert!(!detail.message_pt_br.is_empty());
}

#[tokio::test]
async fn an_operator_sets_up_a_tenant_with_a_service_a_channel_and_an_agent() {
    // Arrange
    let admin = Admin::start().await;
    let mut client = admin.client();

    // Act
    let tenant = admin.tenant("acme").await;
    let service = admin.service(&tenant.id, "Vendas", "ordered_offer").await.unwrap();
    let channel = client
        .create_channel(pb::CreateChannelRequest {
            tenant_id: tenant.id.clone(),
            kind: pb::ChannelKind::Whatsapp as i32,
            name: "WhatsApp Vendas".into(),
            provider_account_id: "106540352242922".into(),
            app_secret: "app-secret".into(),
            verify_token: "verify".into(),
            access_token: "EAAG".into(),
            default_service_id: service.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    let agent = client
        .create_agent(pb::CreateAgentRequest {
            tenant_id: tenant.id.clone(),
            name: "Ana".into(),
            email: "ana@acme.test".into(),
            password: "correct horse battery".into(),
            max_concurrent: 5,
            service_ids: vec![service.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .agent
        .unwrap();

    // Assert
    assert_eq!((tenant.name.as_str(), tenant.slug.as_str()), ("Tenant acme", "acme"));
    assert!(
        !tenant.allow_simultaneous_conversations,
        "the same-customer flag defaults off"
    );
    assert_eq!(
        (service.policy.as_str(), service.offer_timeout_secs),
        ("ordered_offer", 60)
    );
    assert_eq!(channel.kind, pb::ChannelKind::Whatsapp as i32);
    assert_eq!(channel.default_service_id, service.id);
    assert_eq!(agent.service_ids, vec![service.id.clone()]);
    assert_eq!(agent.max_concurrent, 5);
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM agents WHERE id = $1::uuid")
        .bind(&agent.id)
        .fetch_one(&admin.sandbox.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "the password is stored hashed");
    let channels = client
        .list_channels(pb::ListChannelsRequest {
            tenant_id: tenant.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(channels.into_inner().channels, vec![channel]);
    let agents = client
        .list_agents(pb::ListAgentsRequest {
            tenant_id: tenant.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(agents.into_inner().agents, vec![agent]);
    admin.stop().await;
}

#[tokio::test]
async fn lists_page_through_every_row_once() {
    // Arrange
    let admin = Admin::start().await;
    let tenant = admin.tenant("acme").await;
    let mut created = Vec::new();
    for name in ["Vendas", "Suporte", "Financeiro", "Cobrança", "Ouvidoria"] {
        created.push(admin.service(&tenant.id, name, "least_loaded").await.unwrap().id);
    }
    created.sort();

    // Act
    let mut client = admin.client();
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_services(pb::ListServicesRequest {
                tenant_id: tenant.id.clone(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(page.services.iter().map(|s| s.id.clone()).collect::<Vec<_>>());
        token = page.next_page_token;
        if token.is_empty() || pages.len() > 10 {
            break;
        }
    }

    // Assert
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
    assert_eq!(pages.concat(), created);
    admin.stop().await;
}

#[tokio::test]
async fn invalid_requests_are_refused_with_a_stable_code_in_the_details() {
    // Arrange
    let admin = Admin::start().await;
    let tenant = admin.tenant("acme").await;
    let mut client = admin.client();

    // Act
    let bad_policy = admin.service(&tenant.id, "Vendas", "whoever_is_fastest").await;
    let short_password = client
        .create_agent(pb::CreateAgentRequest {
            tenant_id: tenant.id.clone(),
            name: "Ana".into(),
            email: "ana@acme.test".into(),
            password: "short".into(),
            ..Default::default()
        })
        .await;
    let not_a_uuid = admin.service("acme", "Vendas", "manual").await;
    let bad_page = client
        .list_tenants(pb::ListTenantsRequest {
            page_size: -1,
            ..Default::default()
        })
        .await;

    // Assert
    assert_invalid(bad_policy, "policy");
    assert_invalid(short_password, "password");
    assert_invalid(not_a_uuid, "tenant_id");
    assert_invalid(bad_page, "page_size");
    let services: i64 = sqlx::query_scalar("SELECT count(*) FROM services")
        .fetch_one(&admin.sandbox.pool)
        .await
        .unwrap();
    let agents: i64 = sqlx::query_scalar("SELECT count(*) FROM agents")
        .fetch_one(&admin.sandbox.pool)
        .await
        .unwrap();
    assert_eq!((services, agents), (0, 0));
    admin.stop().await;
}

#[tokio::test]
async fn creating_with_a_fixed_id_twice_is_idempotent() {
    // Arrange
    let admin = Admin::start().await;
    let mut client = admin.client();
    let tenant_id = Uuid::now_v7().to_string();
    let service_id = Uuid::now_v7().to_string();
    let tenant_req = pb::CreateTenantRequest {
        id: tenant_id.clone(),
        name: "Demo".into(),
        slug: "demo".into(),
        allow_simultaneous_conversations: true,
        ..Default::default()
    };
    let service_req = pb::CreateServiceRequest {
        id: service_id.clone(),
        tenant_id: tenant_id.clone(),
        name: "Vendas".into(),
        policy: "round_robin".into(),
        offer_timeout_secs: 30,
        priority: 1,
        ..Default::default()
    };

    // Act
    let first_tenant = client
        .create_tenant(tenant_req.clone())
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    let first_service = client
        .create_service(service_req.clone())
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let second_tenant = client
        .create_tenant(tenant_req)
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    let second_service = client
        .create_service(service_req)
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();

    // Assert
    assert_eq!(first_tenant, second_tenant);
    assert_eq!(first_tenant.id, tenant_id);
    assert_eq!(first_service, second_service);
    assert_eq!(first_service.id, service_id);
    let tenants = client
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tenants;
    assert_eq!(tenants, vec![first_tenant]);
    let services = client
        .list_services(pb::ListServicesRequest {
            tenant_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .services;
    assert_eq!(services, vec![first_service]);
    admin.stop().await;
}

#[tokio::test]
async fn grpc_health_reports_the_session_services_as_serving() {
    // Arrange
    let admin = Admin::start().await;
    let channel = Channel::from_shared(format!("http://{}", admin.role.started.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);

    // Act
    let mut statuses = Vec::new();
    for service in ["", "atende.v1.SessionService", "atende.v1.AdminService"] {
        let res = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .unwrap()
            .into_inner();
        statuses.push(res.status);
    }

    // Assert
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(statuses, vec![serving; 3]);
    drop(health);
    admin.stop().await;
}

#[tokio::test]
async fn a_service_keeps_its_accepted_channels_and_business_hours_and_bad_ones_are_refused() {
    use atende_proto::v1::{BusinessHours, DayHours};
    let a = Admin::start().await;
    let mut admin = a.client();
    let tenant = a.tenant("horas").await;
    let hours = BusinessHours {
        time_zone: "America/Sao_Paulo".into(),
        days: vec![DayHours {
            weekday: "monday".into(),
            intervals: vec!["08:00-12:00".into(), "13:00-18:00".into()],
        }],
        holidays: vec!["2026-12-25".into()],
    };
    let created = admin
        .create_service(pb::CreateServiceRequest {
            tenant_id: tenant.id.clone(),
            name: "Suporte".into(),
            policy: "ordered_offer".into(),
            accepted_channels: vec!["whatsapp".into(), "webchat".into()],
            business_hours: Some(hours.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert_eq!(
        created.accepted_channels,
        vec!["webchat".to_string(), "whatsapp".to_string()]
    );
    assert_eq!(created.business_hours, Some(hours.clone()));
    let listed = admin
        .list_services(pb::ListServicesRequest {
            tenant_id: tenant.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .services;
    assert_eq!(listed[0].business_hours, Some(hours.clone()));

    for (bad, what) in [
        (
            BusinessHours {
                time_zone: "Mars/Olympus".into(),
                ..hours.clone()
            },
            "time zone",
        ),
        (
            BusinessHours {
                days: vec![DayHours {
                    weekday: "funday".into(),
                    intervals: vec![],
                }],
                ..hours.clone()
            },
            "weekday",
        ),
        (
            BusinessHours {
                days: vec![DayHours {
                    weekday: "monday".into(),
                    intervals: vec!["18:00-08:00".into()],
                }],
                ..hours.clone()
            },
            "interval",
        ),
        (
            BusinessHours {
                holidays: vec!["25/12/2026".into()],
                ..hours.clone()
            },
            "holiday",
        ),
    ] {
        let err = admin
            .create_service(pb::CreateServiceRequest {
                tenant_id: tenant.id.clone(),
                name: format!("bad {what}"),
                business_hours: Some(bad),
                ..Default::default()
            })
            .await
            .expect_err(what);
        assert_eq!(
            atende_runtime::status_code_of(&err),
            Some(ErrorCode::InvalidArgument),
            "{what}"
        );
        assert_eq!(
            atende_runtime::errors::detail_of(&err).unwrap().field,
            "business_hours",
            "{what}"
        );
    }
    let bad_kind = admin
        .create_service(pb::CreateServiceRequest {
            tenant_id: tenant.id.clone(),
            name: "bad kind".into(),
            accepted_channels: vec!["telegram".into()],
            ..Default::default()
        })
        .await;
    assert_invalid(bad_kind, "accepted_channels");
    a.stop().await;
}

#[tokio::test]
async fn grpcurl_reads_a_refusal_with_its_code_and_both_messages() {
    // Arrange: a request AdminService refuses (a slug with capitals), as an outside client
    // sends it, through reflection, with the roles' credential.
    use secrecy::ExposeSecret;
    let admin = Admin::start().await;
    let addr = format!("127.0.0.1:{}", admin.role.started.grpc_addr.port());
    let auth = format!(
        "authorization: Bearer {}",
        admin.sandbox.config.grpc.internal_token.expose_secret()
    );

    // Act
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(atende_testkit::grpcurl())
            .args([
                "-plaintext",
                "-format-error",
                "-H",
                &auth,
                "-d",
                r#"{"name": "Acme", "slug": "Not A Slug"}"#,
            ])
            .arg(&addr)
            .arg("atende.v1.AdminService/CreateTenant")
            .output()
    })
    .await
    .unwrap()
    .expect("grpcurl runs");

    // Assert: grpcurl decodes google.rpc.Status: the code, the stable reason, both languages.
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(!text.contains("malformed"), "{text}");
    let status: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(status["code"], 3, "INVALID_ARGUMENT: {text}");
    let details = status["details"].as_array().expect("details");
    let info = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        .expect("ErrorInfo");
    assert_eq!(info["reason"], "INVALID_ARGUMENT", "{text}");
    assert_eq!(info["domain"], "atende.v1");
    let messages: Vec<(&str, &str)> = details
        .iter()
        .filter(|d| d["@type"] == "type.googleapis.com/google.rpc.LocalizedMessage")
        .map(|d| (d["locale"].as_str().unwrap(), d["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        messages,
        [
            ("en", ErrorCode::InvalidArgument.message_en()),
            ("pt-BR", ErrorCode::InvalidArgument.message_pt_br())
        ]
    );
    let violation = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .expect("BadRequest");
    assert_eq!(violation["fieldViolations"][0]["field"], "slug");
    admin.stop().await;
}
