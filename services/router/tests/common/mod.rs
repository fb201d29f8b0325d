//! Fixtures for the router's integration tests: a sandboxed tenant with one service, a
//! WhatsApp channel and agents, a started router, and helpers that read Postgres and Redis.
#![allow(dead_code)]

use std::time::Duration;

use atende_config::Config;
use atende_proto::v1 as pb;
use atende_proto::v1::router_service_client::RouterServiceClient;
use atende_store::admin;
use atende_testkit::{wait_until, Sandbox};
use prost::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(15);

pub struct Fixture {
    pub sandbox: Sandbox,
    pub tenant: Uuid,
    pub service: Uuid,
    pub channel: Uuid,
    pub agents: Vec<Uuid>,
    pub shutdown: CancellationToken,
    pub routers: Vec<atende_runtime::Started>,
    /// The clock every router replica reads: tests move it ahead to expire offers.
    pub clock: std::sync::Arc<atende_domain::clock::ShiftedClock>,
    pub client: RouterServiceClient<atende_runtime::AuthedChannel>,
    pub bus: atende_bus::Bus,
    pub full_snapshot_max: usize,
}

pub struct Spec {
    pub policy: &'static str,
    pub offer_timeout_secs: i32,
    pub agents: usize,
    pub max: i32,
    pub replicas: usize,
    /// Route services larger than this through the candidate index (0 = always).
    pub full_snapshot_max: usize,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            policy: "least_loaded",
            offer_timeout_secs: 60,
            agents: 2,
            max: 3,
            replicas: 1,
            full_snapshot_max: 64,
        }
    }
}

pub fn test_config(sandbox: &Sandbox, full_snapshot_max: usize) -> Config {
    let mut cfg = sandbox.config.clone();
    cfg.router.sweep_interval_ms = 100;
    cfg.router.reconcile_interval_ms = 200;
    cfg.router.full_snapshot_max = full_snapshot_max;
    cfg
}

impl Fixture {
    pub async fn new(spec: Spec) -> Fixture {
        let sandbox = Sandbox::new().await;
        let pool = &sandbox.pool;
        let tenant = Uuid::now_v7();
        admin::create_tenant(pool, tenant, "Acme", &format!("acme-{tenant}"), false)
            .await
            .unwrap();
        let service = Uuid::now_v7();
        admin::create_service(
            pool,
            &admin::NewService {
                id: service,
                tenant_id: tenant,
                name: "Sales",
                policy: spec.policy,
                offer_timeout_secs: spec.offer_timeout_secs,
                priority: 0,
            },
        )
        .await
        .unwrap();
        let channel = Uuid::now_v7();
        let creds = atende_testkit::fixtures::sealed_credentials("s", "v", "a");
        admin::create_channel(
            pool,
            &admin::NewChannel {
                id: channel,
                tenant_id: tenant,
                kind: "whatsapp",
                name: "WA",
                provider_account_id: &channel.to_string(),
                app_secret: &creds.0,
                verify_token: &creds.1,
                access_token: &creds.2,
                default_service_id: Some(service),
            },
        )
        .await
        .unwrap();
        let mut agents = Vec::new();
        let mut conn = pool.acquire().await.unwrap();
        for i in 0..spec.agents {
            let id = Uuid::now_v7();
            admin::create_agent(
                &mut conn,
                &admin::NewAgent {
                    id,
                    tenant_id: tenant,
                    name: &format!("agent {i}"),
                    email: &format!("a{i}@acme.test"),
                    password_hash: "x",
                    max_concurrent: spec.max,
                    supervisor: false,
                },
                &[service],
            )
            .await
            .unwrap();
            agents.push(id);
        }
        drop(conn);
        let shutdown = CancellationToken::new();
        let cfg = test_config(&sandbox, spec.full_snapshot_max);
        let clock = std::sync::Arc::new(atende_domain::clock::ShiftedClock::new(
            atende_domain::clock::SystemClock,
        ));
        let mut routers = Vec::new();
        for _ in 0..spec.replicas.max(1) {
            routers.push(
                atende_router::build_with_clock(&cfg, clock.clone(), shutdown.clone())
                    .await
                    .expect("router starts"),
            );
        }
        let client = RouterServiceClient::new(sandbox.grpc(routers[0].grpc_addr));
        let bus = atende_bus::Bus::connect(&cfg.nats.url, &cfg.namespace.prefix)
            .await
            .unwrap();
        Fixture {
            sandbox,
            tenant,
            service,
            channel,
            agents,
            shutdown,
            routers,
            clock,
            client,
            bus,
            full_snapshot_max: spec.full_snapshot_max,
        }
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.sandbox.pool
    }

    /// A new supervisor of the tenant (not a member of the service).
    pub async fn supervisor(&self) -> Uuid {
        let id = Uuid::now_v7();
        let mut conn = self.pool().acquire().await.unwrap();
        admin::create_agent(
            &mut conn,
            &admin::NewAgent {
                id,
                tenant_id: self.tenant,
                name: "boss",
                email: &format!("boss-{id}@acme.test"),
                password_hash: "x",
                max_concurrent: 1,
                supervisor: true,
            },
            &[],
        )
        .await
        .unwrap();
        id
    }

    /// A queued conversation of a new contact, with its RouteRequest in the outbox (as
    /// session writes it); the relay publishes it.
    pub async fn arrive(&self) -> Uuid {
        let id = self.queued_conversation().await;
        self.route_request(id).await;
        id
    }

    /// A queued conversation without its RouteRequest.
    pub async fn queued_conversation(&self) -> Uuid {
        let contact = Uuid::now_v7();
        let id = Uuid::now_v7();
        let mut tx = self.pool().begin().await.unwrap();
        sqlx::query("INSERT INTO contacts (id, tenant_id, name) VALUES ($1, $2, 'Maria')")
            .bind(contact)
            .bind(self.tenant)
            .execute(&mut *tx)
            .await
            .unwrap();
        atende_store::conversations::insert_conversation(
            &mut tx,
            &atende_store::conversations::NewConversation {
                id,
                tenant_id: self.tenant,
                contact_id: contact,
                channel_id: self.channel,
                service_id: Some(self.service),
                status: "queued",
                protocol: id.simple().to_string(),
                at: time::OffsetDateTime::now_utc(),
                actor: atende_domain::conversation::Actor::Customer,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    }

    pub async fn route_request(&self, conversation: Uuid) {
        let req = pb::RouteRequest {
            tenant_id: self.tenant.to_string(),
            service_id: self.service.to_string(),
            conversation_id: conversation.to_string(),
            channel_kind: pb::ChannelKind::Whatsapp as i32,
            queued_at_ms: 0,
            priority: 0,
            ..Default::default()
        };
        let mut tx = self.pool().begin().await.unwrap();
        atende_store::outbox::enqueue(
            &mut tx,
            self.tenant,
            &conversation.to_string(),
            &self.bus.subjects.route(self.tenant, self.service),
            &format!("route-{conversation}"),
            &req.encode_to_vec(),
            &[],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    pub async fn set_presence(&self, agent: Uuid, available: bool) -> Result<pb::AgentPresence, tonic::Status> {
        self.presence(agent, true, available, false).await
    }

    pub async fn presence(
        &self,
        agent: Uuid,
        connected: bool,
        unpaused: bool,
        logout: bool,
    ) -> Result<pb::AgentPresence, tonic::Status> {
        self.client
            .clone()
            .set_presence(pb::SetPresenceRequest {
                tenant_id: self.tenant.to_string(),
                agent_id: agent.to_string(),
                connected,
                channels: vec![pb::ChannelLogin {
                    channel_kind: "whatsapp".into(),
                    paused: !unpaused,
                }],
                logout,
            })
            .await
            .map(|r| r.into_inner().presence.unwrap())
    }

    pub async fn status(&self, conversation: Uuid) -> (String, Option<Uuid>) {
        sqlx::query_as("SELECT status, agent_id FROM conversations WHERE id = $1")
            .bind(conversation)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    pub async fn wait_status(&self, conversation: Uuid, status: &str) -> Option<Uuid> {
        let pool = self.pool().clone();
        wait_until(&format!("conversation {conversation} to be {status}"), WAIT, || {
            let pool = pool.clone();
            async move {
                let (s, a): (String, Option<Uuid>) =
                    sqlx::query_as("SELECT status, agent_id FROM conversations WHERE id = $1")
                        .bind(conversation)
                        .fetch_one(&pool)
                        .await
                        .ok()?;
                (s == status).then_some(a)
            }
        })
        .await
    }

    /// Open assignments per agent, from Postgres.
    pub async fn open_load(&self, agent: Uuid) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM assignments WHERE agent_id = $1 AND released_at IS NULL")
            .bind(agent)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    pub async fn count_status(&self, status: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM conversations WHERE tenant_id = $1 AND status = $2")
            .bind(self.tenant)
            .bind(status)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// Events the router wrote to the outbox for `name` (e.g. `conversation.assigned`).
    pub async fn events(&self, name: &str) -> Vec<pb::DomainEvent> {
        let subject = self.bus.subjects.event(self.tenant, name);
        let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox WHERE subject = $1 ORDER BY id")
            .bind(subject)
            .fetch_all(self.pool())
            .await
            .unwrap();
        rows.iter()
            .map(|p| pb::DomainEvent::decode(p.as_slice()).unwrap())
            .collect()
    }

    /// Runs `n` complete sweep passes (the periodic work of every replica) on the replicas'
    /// clock and returns: what a test waits on to know the router has re-evaluated
    /// everything, not a sleep.
    pub async fn router_sweeps(&self, n: u64) {
        let router =
            atende_router::router_with_clock(&test_config(&self.sandbox, self.full_snapshot_max), self.clock.clone())
                .await
                .unwrap();
        for tick in 1..=n {
            router.sweep_once(tick).await.unwrap();
        }
    }

    pub async fn redis_keys(&self) -> Vec<String> {
        let mut r = self.sandbox.redis().await;
        redis::cmd("KEYS")
            .arg(format!("{}:*", self.sandbox.id))
            .query_async(&mut r)
            .await
            .unwrap()
    }

    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for r in self.routers {
            let _ = tokio::time::timeout(Duration::from_secs(10), r.wait()).await;
        }
        self.sandbox.cleanup().await;
    }
}

pub fn code_of(s: &tonic::Status) -> Option<atende_domain::ErrorCode> {
    atende_runtime::status_code_of(s)
}
