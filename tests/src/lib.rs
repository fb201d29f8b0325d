//! End-to-end sandbox: every role booted in-process exactly as `atende all` boots them
//! (`atende_cli::roles::start`), against real Postgres, Redis and NATS isolated per test,
//! with a fake Graph API standing in for Meta.

pub mod api;

use std::time::Duration;

use atende_cli::roles::{self, Role};
use atende_proto::v1::{self as pb, admin_service_client::AdminServiceClient};
use atende_runtime::Started;
use atende_testkit::fake_graph::FakeGraph;
use atende_testkit::fixtures;
use atende_testkit::Sandbox;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

pub const DEADLINE: Duration = Duration::from_secs(20);

/// Now, in the seconds Meta's webhooks carry: replies are only allowed inside the window
/// that runs from the customer's message time.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

pub struct Platform {
    pub sandbox: Sandbox,
    pub fake: FakeGraph,
    pub shutdown: CancellationToken,
    pub started: Vec<Started>,
    pub gateway: String,
    pub adapter: String,
    pub session_grpc: String,
    pub router_grpc: String,
    pub http: reqwest::Client,
    /// The configuration the edge roles (gateway, channel-adapter, ...) run with.
    pub edge: atende_cli::Config,
    /// Stops only the gateway (a child of `shutdown`), for tests that restart it.
    gateway_stop: CancellationToken,
}

/// What `Platform::seed` created through AdminService.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub tenant_id: String,
    pub slug: String,
    pub service_id: String,
    pub channel_id: String,
    pub phone_number_id: String,
    pub app_secret: String,
    pub access_token: String,
    pub agent_id: String,
    pub agent_email: String,
    pub agent_password: String,
}

impl Platform {
    pub async fn start() -> Platform {
        Self::start_configured(|_| {}).await
    }

    /// Like [`Platform::start`], with `adjust` applied to the configuration first (a known
    /// JWT secret, a shutdown grace, ...).
    pub async fn start_configured(adjust: impl FnOnce(&mut atende_cli::Config)) -> Platform {
        let sandbox = Sandbox::new().await;
        let fake = FakeGraph::start().await;
        let mut cfg = sandbox.config.clone();
        cfg.channel_adapter.graph_api_base = fake.base_url();
        cfg.router.sweep_interval_ms = 100;
        adjust(&mut cfg);
        Self::start_with(sandbox, fake, cfg).await
    }

    pub async fn start_with(sandbox: Sandbox, fake: FakeGraph, cfg: atende_cli::Config) -> Platform {
        Self::start_split(sandbox, fake, cfg.clone(), cfg).await
    }

    /// Like [`Platform::start_with`], with the router and session roles (the consumers of
    /// routing and inbound work) started from `consumers` and the others from `edge` — e.g.
    /// the consumers reaching Postgres through a proxy the test can cut while the edge keeps
    /// acknowledging webhooks.
    pub async fn start_split(
        sandbox: Sandbox,
        fake: FakeGraph,
        consumers: atende_cli::Config,
        mut edge: atende_cli::Config,
    ) -> Platform {
        let shutdown = CancellationToken::new();
        let mut started = roles::start(&consumers, &[Role::Router, Role::Session], shutdown.clone())
            .await
            .expect("consumer roles start");
        for s in &started {
            let url = format!("http://127.0.0.1:{}", s.grpc_addr.port());
            match s.role {
                "router" => edge.clients.router_url = url,
                "session" => edge.clients.session_url = url,
                _ => {}
            }
        }
        let rest: Vec<Role> = Role::all()
            .iter()
            .copied()
            .filter(|r| !matches!(r, Role::Router | Role::Session | Role::Gateway))
            .collect();
        started.extend(
            roles::start(&edge, &rest, shutdown.clone())
                .await
                .expect("edge roles start"),
        );
        if let Some(b) = started.iter().find(|s| s.role == "broadcast") {
            edge.clients.broadcast_url = format!("http://127.0.0.1:{}", b.grpc_addr.port());
        }
        let gateway_stop = shutdown.child_token();
        started.extend(
            roles::start(&edge, &[Role::Gateway], gateway_stop.clone())
                .await
                .expect("gateway starts"),
        );
        let find = |r: &str| started.iter().find(|s| s.role == r).expect("role started");
        let url = |a: std::net::SocketAddr| format!("http://127.0.0.1:{}", a.port());
        let gateway = url(find("gateway").http_addr.expect("gateway http"));
        let adapter = url(find("channel-adapter").http_addr.expect("adapter http"));
        let session_grpc = url(find("session").grpc_addr);
        let router_grpc = url(find("router").grpc_addr);
        Platform {
            sandbox,
            fake,
            shutdown,
            started,
            gateway,
            adapter,
            session_grpc,
            router_grpc,
            http: reqwest::Client::new(),
            edge,
            gateway_stop,
        }
    }

    /// Stops the gateway as SIGTERM would and waits until it is gone.
    pub async fn stop_gateway(&mut self) {
        self.gateway_stop.cancel();
        if let Some(i) = self.started.iter().position(|s| s.role == "gateway") {
            let gateway = self.started.remove(i);
            tokio::time::timeout(DEADLINE, gateway.wait())
                .await
                .expect("the gateway stops in time")
                .expect("the gateway stops cleanly");
        }
    }

    /// Starts another gateway replica beside the platform's (stopped with the platform);
    /// its base URL.
    pub async fn extra_gateway(&mut self) -> String {
        let started = roles::start(&self.edge, &[Role::Gateway], self.shutdown.child_token())
            .await
            .expect("gateway replica starts");
        let addr = started[0].http_addr.expect("gateway http");
        self.started.extend(started);
        format!("http://127.0.0.1:{}", addr.port())
    }

    /// Starts a gateway again (on a new port, which `gateway` then names).
    pub async fn start_gateway(&mut self) {
        self.gateway_stop = self.shutdown.child_token();
        let started = roles::start(&self.edge, &[Role::Gateway], self.gateway_stop.clone())
            .await
            .expect("gateway starts");
        let addr = started[0].http_addr.expect("gateway http");
        self.gateway = format!("http://127.0.0.1:{}", addr.port());
        self.started.extend(started);
    }

    pub async fn admin(&self) -> AdminServiceClient<atende_runtime::AuthedChannel> {
        AdminServiceClient::new(self.sandbox.grpc(&self.session_grpc))
    }

    /// A tenant with one least_loaded service, one WhatsApp channel and one agent.
    pub async fn seed(&self) -> Tenant {
        let s = fixtures::seed_through_admin(&self.sandbox, &self.session_grpc, "app-secret-e2e", "token-e2e").await;
        let seeded = Tenant {
            tenant_id: s.tenant_id,
            slug: s.slug,
            service_id: s.service_id,
            channel_id: s.channel_id,
            phone_number_id: s.phone_number_id,
            app_secret: "app-secret-e2e".into(),
            access_token: "token-e2e".into(),
            agent_id: String::new(),
            agent_email: String::new(),
            agent_password: String::new(),
        };
        self.add_agent(&seeded, "Ana", "ana@acme.test", "correct horse").await
    }

    /// Another agent of `t`'s tenant in `t`'s service, created through AdminService; the
    /// returned `Tenant` is `t` with the new agent's id and credentials.
    pub async fn add_agent(&self, t: &Tenant, name: &str, email: &str, password: &str) -> Tenant {
        self.create_agent(
            t,
            pb::CreateAgentRequest {
                name: name.into(),
                email: email.into(),
                password: password.into(),
                max_concurrent: 3,
                service_ids: vec![t.service_id.clone()],
                ..Default::default()
            },
        )
        .await
    }

    /// An agent of `t`'s tenant (`<name>@acme.test`, password `correct horse`) who works in
    /// `service` only, one conversation at a time; the returned `Tenant` is his view of it.
    pub async fn agent_in(&self, t: &Tenant, name: &str, service: &str) -> Tenant {
        self.create_agent(
            t,
            pb::CreateAgentRequest {
                name: name.into(),
                email: format!("{}@acme.test", name.to_lowercase()),
                password: "correct horse".into(),
                max_concurrent: 1,
                service_ids: vec![service.into()],
                ..Default::default()
            },
        )
        .await
    }

    /// Creates the agent `req` describes in `t`'s tenant; `t` as that agent sees it (his id,
    /// credentials and first service).
    pub async fn create_agent(&self, t: &Tenant, req: pb::CreateAgentRequest) -> Tenant {
        let (email, password) = (req.email.clone(), req.password.clone());
        let service_id = req.service_ids.first().cloned().unwrap_or_else(|| t.service_id.clone());
        let agent = self
            .admin()
            .await
            .create_agent(pb::CreateAgentRequest {
                tenant_id: t.tenant_id.clone(),
                ..req
            })
            .await
            .expect("agent")
            .into_inner()
            .agent
            .unwrap();
        Tenant {
            agent_id: agent.id,
            agent_email: email,
            agent_password: password,
            service_id,
            ..t.clone()
        }
    }

    /// A least_loaded service of `t`'s tenant with these qualification codes.
    pub async fn service(&self, t: &Tenant, name: &str, qualifications: &[&str], send_transcript: bool) -> String {
        self.create_service(
            t,
            pb::CreateServiceRequest {
                name: name.into(),
                policy: "least_loaded".into(),
                qualifications: qualifications
                    .iter()
                    .map(|q| pb::Qualification {
                        code: (*q).into(),
                        label: String::new(),
                    })
                    .collect(),
                send_transcript,
                ..Default::default()
            },
        )
        .await
    }

    /// New conversations of `t`'s channel go to `service` (none: the tenant's "Aguardando").
    pub async fn route_channel_to(&self, t: &Tenant, service: Option<&str>) {
        self.admin()
            .await
            .create_channel(pb::CreateChannelRequest {
                id: t.channel_id.clone(),
                tenant_id: t.tenant_id.clone(),
                kind: pb::ChannelKind::Whatsapp as i32,
                name: "WhatsApp".into(),
                provider_account_id: t.phone_number_id.clone(),
                app_secret: t.app_secret.clone(),
                verify_token: "verify".into(),
                access_token: t.access_token.clone(),
                default_service_id: service.unwrap_or_default().into(),
                ..Default::default()
            })
            .await
            .expect("channel");
    }

    /// Creates the service `req` describes in `t`'s tenant; its id.
    pub async fn create_service(&self, t: &Tenant, req: pb::CreateServiceRequest) -> String {
        self.admin()
            .await
            .create_service(pb::CreateServiceRequest {
                tenant_id: t.tenant_id.clone(),
                ..req
            })
            .await
            .expect("service")
            .into_inner()
            .service
            .unwrap()
            .id
    }

    /// Logs in through the gateway and returns the bearer token.
    pub async fn login(&self, t: &Tenant) -> String {
        let resp = self
            .http
            .post(format!("{}/api/v1/auth/login", self.gateway))
            .json(&serde_json::json!({ "tenant": t.slug, "email": t.agent_email, "password": t.agent_password }))
            .send()
            .await
            .expect("login request");
        assert_eq!(resp.status(), 200, "login failed");
        let body: Value = resp.json().await.expect("login json");
        body["access_token"].as_str().expect("token").to_string()
    }

    pub async fn set_available(&self, token: &str) {
        let resp = self
            .http
            .put(format!("{}/api/v1/me/presence", self.gateway))
            .bearer_auth(token)
            .json(&serde_json::json!({ "status": "available", "channels": ["whatsapp"] }))
            .send()
            .await
            .expect("presence request");
        assert_eq!(resp.status(), 200, "presence failed: {:?}", resp.text().await);
    }

    /// Logs `t`'s agent in, makes it available on WhatsApp and opens its socket: an agent
    /// online, ready to be assigned conversations. Returns its bearer token and socket.
    pub async fn online(&self, t: &Tenant) -> (String, AgentSocket) {
        let token = self.login(t).await;
        self.set_available(&token).await;
        let socket = self.socket(&token).await;
        (token, socket)
    }

    /// A single-use WebSocket ticket for the agent of `token`.
    pub async fn ws_ticket(&self, token: &str) -> String {
        let resp = self
            .http
            .post(format!("{}/api/v1/ws/ticket", self.gateway))
            .bearer_auth(token)
            .send()
            .await
            .expect("ticket request");
        assert_eq!(resp.status(), 200, "ticket refused");
        let body: Value = resp.json().await.expect("ticket json");
        body["ticket"].as_str().expect("ticket").to_string()
    }

    /// The agent's WebSocket, opened as a browser does: with a fresh single-use ticket.
    pub async fn socket(&self, token: &str) -> AgentSocket {
        self.socket_after(token, None).await
    }

    /// The agent's WebSocket resuming after the feed number `last_seq` (None: live).
    pub async fn socket_after(&self, token: &str, last_seq: Option<u64>) -> AgentSocket {
        self.socket_on(&self.gateway, token, last_seq).await
    }

    /// The agent's WebSocket on the gateway at `gateway` (the ticket comes from the
    /// platform's gateway: any replica redeems it).
    pub async fn socket_on(&self, gateway: &str, token: &str, last_seq: Option<u64>) -> AgentSocket {
        let ticket = self.ws_ticket(token).await;
        let resume = last_seq.map(|n| format!("&last_seq={n}")).unwrap_or_default();
        let url = format!(
            "{}/api/v1/ws?ticket={ticket}{resume}",
            gateway.replace("http://", "ws://")
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connect");
        let mut s = AgentSocket { ws, seen: Vec::new() };
        s.next_of("hello").await;
        s
    }

    /// POSTs a webhook signed with `secret`, optionally carrying a W3C traceparent.
    pub async fn post_webhook(&self, t: &Tenant, body: &[u8], traceparent: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/webhooks/whatsapp/{}", self.adapter, t.channel_id))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                atende_testkit::whatsapp::sign(t.app_secret.as_bytes(), body),
            )
            .body(body.to_vec());
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        req.send().await.expect("webhook request")
    }

    /// Stops every role (as SIGTERM would) and removes the sandbox.
    pub async fn stop(self) {
        fixtures::stop_roles(&self.shutdown, self.started, DEADLINE).await;
        self.sandbox.cleanup().await;
    }
}

pub struct AgentSocket {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    /// Every frame received so far, in order.
    pub seen: Vec<Value>,
}

impl AgentSocket {
    /// The next frame of type `ty` (earlier frames of other types are kept in `seen`).
    pub async fn next_of(&mut self, ty: &str) -> Value {
        self.next_matching(ty, |_| true).await
    }

    pub async fn next_matching(&mut self, ty: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let v = self.next_before(deadline, ty).await;
            if v["type"] == ty && pred(&v) {
                return v;
            }
        }
    }

    /// The next frame, whatever its type (kept in `seen` too).
    pub async fn next(&mut self) -> Value {
        self.next_before(tokio::time::Instant::now() + DEADLINE, "any").await
    }

    async fn next_before(&mut self, deadline: tokio::time::Instant, waiting_for: &str) -> Value {
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no `{waiting_for}` frame within {DEADLINE:?}; saw {:?}", self.seen))
                .expect("socket open")
                .expect("socket frame");
            if let WsMessage::Text(text) = msg {
                let v: Value = serde_json::from_str(text.as_str()).expect("json frame");
                self.seen.push(v.clone());
                return v;
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.send(WsMessage::Close(None)).await;
    }
}
