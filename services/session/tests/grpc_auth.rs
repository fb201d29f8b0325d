//! Every gRPC call carries a credential: no token or an unknown one is UNAUTHENTICATED, a
//! credential limited to some services or tenants is PERMISSION_DENIED outside them, and a
//! refused call writes nothing. Health stays open for probes.

use std::time::Duration;

use atende_config::GrpcClient;
use atende_domain::ErrorCode;
use atende_proto::v1::{self as pb, admin_service_client::AdminServiceClient};
use atende_runtime::ClientAuth;
use atende_testkit::fixtures::{self, RunningRole};
use atende_testkit::Sandbox;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(10);
const OPS_TOKEN: &str = "ops-team-token-0123456789abcdef0123456789";
const CRM_TOKEN: &str = "crm-team-token-0123456789abcdef0123456789";

struct Harness {
    sandbox: Sandbox,
    role: RunningRole,
    tenant_a: Uuid,
    tenant_b: Uuid,
    url: String,
}

impl Harness {
    /// A session role whose config knows `ops` (AdminService, tenant A only) and `crm`
    /// (SessionService only, every tenant).
    async fn start() -> Harness {
        let mut sandbox = Sandbox::new().await;
        let tenant_a = fixtures::tenant(&sandbox.pool, "A", "tenant-a").await;
        let tenant_b = fixtures::tenant(&sandbox.pool, "B", "tenant-b").await;
        let client = |token: &str, tenants: String, services: &str| GrpcClient {
            token: token.to_string().into(),
            tenants,
            services: services.into(),
        };
        let clients = &mut sandbox.config.grpc.clients;
        clients.insert("ops".into(), client(OPS_TOKEN, tenant_a.to_string(), "admin"));
        clients.insert("crm".into(), client(CRM_TOKEN, "*".into(), "session"));
        let role = RunningRole::start(|stop| atende_session::build(&sandbox.config, stop)).await;
        let url = format!("http://{}", role.started.grpc_addr);
        Harness {
            sandbox,
            role,
            tenant_a,
            tenant_b,
            url,
        }
    }

    async fn admin(&self, token: Option<&str>) -> AdminServiceClient<atende_runtime::AuthedChannel> {
        let auth = match token {
            Some(t) => ClientAuth::new(t),
            None => ClientAuth::new(""),
        };
        AdminServiceClient::new(atende_runtime::auth::channel(&self.url, auth).unwrap())
    }

    async fn agents(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM agents")
            .fetch_one(&self.sandbox.pool)
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.role.stop(DEADLINE).await;
        self.sandbox.cleanup().await;
    }
}

fn create_agent(tenant: Uuid) -> pb::CreateAgentRequest {
    pb::CreateAgentRequest {
        tenant_id: tenant.to_string(),
        name: "Mallory".into(),
        email: format!("mallory-{}@evil.test", Uuid::new_v4().simple()),
        password: "chosen password".into(),
        max_concurrent: 3,
        supervisor: true,
        ..Default::default()
    }
}

fn refused_with<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: ErrorCode) {
    let status = result.expect_err("the call is refused");
    assert_eq!(atende_runtime::status_code_of(&status), Some(code), "{status:?}");
}

#[tokio::test]
async fn a_call_without_a_valid_token_is_refused_and_writes_nothing() {
    // Arrange
    let h = Harness::start().await;

    // Act
    let anonymous = h.admin(None).await.create_agent(create_agent(h.tenant_a)).await;
    let forged = h
        .admin(Some("a-token-nobody-issued-0123456789abcdef"))
        .await
        .create_agent(create_agent(h.tenant_a))
        .await;
    let raw = AdminServiceClient::connect(h.url.clone())
        .await
        .unwrap()
        .create_agent(create_agent(h.tenant_a))
        .await;

    // Assert
    refused_with(anonymous, ErrorCode::Unauthenticated);
    refused_with(forged, ErrorCode::Unauthenticated);
    refused_with(raw, ErrorCode::Unauthenticated);
    assert_eq!(h.agents().await, 0);
    h.stop().await;
}

#[tokio::test]
async fn a_credential_acts_only_in_its_tenants_and_services() {
    // Arrange
    let h = Harness::start().await;
    let mut ops = h.admin(Some(OPS_TOKEN)).await;
    let mut crm = h.admin(Some(CRM_TOKEN)).await;

    // Act
    let own_tenant = ops.create_agent(create_agent(h.tenant_a)).await;
    let other_tenant = ops.create_agent(create_agent(h.tenant_b)).await;
    let new_tenant = ops
        .create_tenant(pb::CreateTenantRequest {
            name: "Evil".into(),
            slug: "evil".into(),
            ..Default::default()
        })
        .await;
    let list_tenants = ops.list_tenants(pb::ListTenantsRequest::default()).await;
    let outside_service = crm.create_agent(create_agent(h.tenant_a)).await;

    // Assert
    own_tenant.expect("ops may create agents in tenant A");
    refused_with(other_tenant, ErrorCode::PermissionDenied);
    refused_with(new_tenant, ErrorCode::PermissionDenied);
    refused_with(list_tenants, ErrorCode::PermissionDenied);
    refused_with(outside_service, ErrorCode::PermissionDenied);
    assert_eq!(h.agents().await, 1);
    h.stop().await;
}

#[tokio::test]
async fn health_answers_without_a_credential() {
    let h = Harness::start().await;
    let channel = tonic::transport::Endpoint::from_shared(h.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let res = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "atende.v1.AdminService".into(),
        })
        .await
        .expect("health is open");
    assert_eq!(
        res.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    h.stop().await;
}
