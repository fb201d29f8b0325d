//! A session role over real gRPC with a tenant, three services ("Vendas" with
//! qualifications `venda` and `duvida`, "Suporte", "Financeiro"), agents Ana and Bruno and
//! supervisor Sofia, shared by the suites that drive conversations through SessionService.
#![allow(dead_code)]

use std::time::Duration;

use atende_domain::ErrorCode;
use atende_proto::v1::{self as pb, session_service_client::SessionServiceClient, RouteRequest};
use atende_store::admin::{self, NewService};
use atende_testkit::fixtures::{self, ChannelSpec, RunningRole};
use atende_testkit::Sandbox;
use prost::Message as _;
use uuid::Uuid;

pub const DEADLINE: Duration = Duration::from_secs(10);

pub struct Harness {
    pub sandbox: Sandbox,
    pub role: RunningRole,
    pub client: SessionServiceClient<atende_runtime::AuthedChannel>,
    pub subjects: atende_bus::Subjects,
    pub tenant: Uuid,
    pub channel: Uuid,
    /// "Vendas", with qualifications `venda` and `duvida`.
    pub sales: Uuid,
    /// "Suporte" and "Financeiro", without qualifications.
    pub support: Uuid,
    pub billing: Uuid,
    pub ana: Uuid,
    pub bruno: Uuid,
    pub supervisor: Uuid,
}

pub async fn named_service(pool: &sqlx::PgPool, tenant: Uuid, name: &str) -> Uuid {
    admin::create_service(
        pool,
        &NewService {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            name,
            policy: "least_loaded",
            offer_timeout_secs: 60,
            priority: 0,
        },
    )
    .await
    .unwrap()
    .id
}

impl Harness {
    pub async fn start() -> Harness {
        let sandbox = Sandbox::new().await;
        let pool = &sandbox.pool;
        let acme = fixtures::tenant_with_whatsapp(pool, ChannelSpec::new("106540352242922")).await;
        let sales = acme.service;
        sqlx::query(
            r#"UPDATE services SET qualifications = '[{"code":"venda","label":"Venda"},{"code":"duvida","label":"Dúvida"}]' WHERE id = $1"#,
        )
        .bind(sales)
        .execute(pool)
        .await
        .unwrap();
        let support = named_service(pool, acme.tenant, "Suporte").await;
        let billing = named_service(pool, acme.tenant, "Financeiro").await;
        let ana = fixtures::agent(pool, acme.tenant, "Ana", &[sales], 3).await;
        let bruno = fixtures::agent(pool, acme.tenant, "Bruno", &[sales], 3).await;
        let supervisor = fixtures::agent(pool, acme.tenant, "Sofia", &[sales], 3).await;
        sqlx::query("UPDATE agents SET supervisor = true WHERE id = $1")
            .bind(supervisor)
            .execute(pool)
            .await
            .unwrap();
        let role = RunningRole::start(|stop| atende_session::build(&sandbox.config, stop)).await;
        let client = SessionServiceClient::new(sandbox.grpc(role.started.grpc_addr));
        let subjects = atende_bus::Subjects::new(&sandbox.config.namespace.prefix);
        Harness {
            sandbox,
            role,
            client,
            subjects,
            tenant: acme.tenant,
            channel: acme.channel.id,
            sales,
            support,
            billing,
            ana,
            bruno,
            supervisor,
        }
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.sandbox.pool
    }

    /// A new contact with one conversation in `service`, assigned to `agent`.
    pub async fn assigned(&self, service: Uuid, agent: Uuid) -> (Uuid, Uuid) {
        let phone = format!("55119{:08}", rand_digits());
        let contact = fixtures::contact_with_phone(self.pool(), self.tenant, "Maria", &phone).await;
        let c = self.conversation_of(contact, service, agent).await;
        (contact, c)
    }

    pub async fn conversation_of(&self, contact: Uuid, service: Uuid, agent: Uuid) -> Uuid {
        fixtures::conversation(
            self.pool(),
            self.tenant,
            contact,
            self.channel,
            Some(service),
            "assigned",
            Some(agent),
        )
        .await
    }

    pub fn finish(&self, c: Uuid, agent: Uuid, q: &str, ext: &str) -> pb::FinishConversationRequest {
        pb::FinishConversationRequest {
            tenant_id: self.tenant.to_string(),
            conversation_id: c.to_string(),
            agent_id: agent.to_string(),
            qualification: q.into(),
            description: "cliente atendido".into(),
            external_protocol: ext.into(),
            ..Default::default()
        }
    }

    pub fn transfer(&self, c: Uuid, agent: Uuid, target: Uuid) -> pb::TransferConversationRequest {
        pb::TransferConversationRequest {
            tenant_id: self.tenant.to_string(),
            conversation_id: c.to_string(),
            agent_id: agent.to_string(),
            target_service_id: target.to_string(),
            ..Default::default()
        }
    }

    /// Route requests in the outbox for `service`'s subject, oldest first.
    pub async fn route_requests(&self, service: Uuid) -> Vec<RouteRequest> {
        let subject = self.subjects.route(self.tenant, service);
        let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox WHERE subject = $1 ORDER BY id")
            .bind(subject)
            .fetch_all(self.pool())
            .await
            .unwrap();
        rows.iter()
            .map(|p| RouteRequest::decode(p.as_slice()).unwrap())
            .collect()
    }

    pub async fn status_of(&self, c: Uuid) -> (String, Option<Uuid>, Option<Uuid>) {
        sqlx::query_as("SELECT status, service_id, agent_id FROM conversations WHERE id = $1")
            .bind(c)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    pub async fn open_assignments(&self, c: Uuid) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM assignments WHERE conversation_id = $1 AND released_at IS NULL")
            .bind(c)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    pub async fn stop(self) {
        drop(self.client);
        self.role.stop(DEADLINE).await;
        self.sandbox.cleanup().await;
    }
}

pub fn rand_digits() -> u32 {
    (Uuid::now_v7().as_u128() % 100_000_000) as u32
}

pub fn code(s: &tonic::Status) -> ErrorCode {
    atende_runtime::errors::status_code_of(s).unwrap_or_else(|| panic!("no domain code in {s:?}"))
}
