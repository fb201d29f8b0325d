//! R-kill: every role runs as its own process (`atende <role>`, as in Kubernetes) under a
//! steady stream of webhooks, and each in turn is killed with `kill -9` at a random moment
//! and started again. Afterwards: every acknowledged message is stored exactly once, every
//! conversation is routed once, nothing is dead-lettered, and no agent was ever over
//! capacity — the last read from the counter the capacity scripts increment at the moment
//! they would produce a load above max, not from sampling.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atende_proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, router_service_client::RouterServiceClient,
};
use atende_testkit::whatsapp::{sign, text_message_webhook};
use atende_testkit::{wait_until, Sandbox};
use rand::Rng;
use tokio_util::sync::CancellationToken;

const CUSTOMERS: usize = 12;
const AGENTS: usize = 4;
const MAX: u32 = 5;
const DEADLINE: Duration = Duration::from_secs(60);
const SECRET: &[u8] = b"kill-role-secret";

/// The fixed ports of one deployment: a restarted role comes back where its callers expect it.
struct Ports {
    router: u16,
    session: u16,
    adapter_http: u16,
    adapter_grpc: u16,
    gateway_http: u16,
    gateway_grpc: u16,
    broadcast: u16,
    scheduler: u16,
}

/// A free port outside the kernel's ephemeral range (where every other test's port 0 lands),
/// so nobody takes it between this check and the role binding it — after each restart too.
fn free_port() -> u16 {
    let mut rng = rand::thread_rng();
    loop {
        let port = rng.gen_range(20_000..30_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Ports {
    fn new() -> Ports {
        Ports {
            router: free_port(),
            session: free_port(),
            adapter_http: free_port(),
            adapter_grpc: free_port(),
            gateway_http: free_port(),
            gateway_grpc: free_port(),
            broadcast: free_port(),
            scheduler: free_port(),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let addr = |p: u16| format!("127.0.0.1:{p}");
        vec![
            ("ATENDE__ROUTER__GRPC_ADDR".into(), addr(self.router)),
            ("ATENDE__SESSION__GRPC_ADDR".into(), addr(self.session)),
            ("ATENDE__CHANNEL_ADAPTER__HTTP_ADDR".into(), addr(self.adapter_http)),
            ("ATENDE__CHANNEL_ADAPTER__GRPC_ADDR".into(), addr(self.adapter_grpc)),
            ("ATENDE__GATEWAY__HTTP_ADDR".into(), addr(self.gateway_http)),
            ("ATENDE__GATEWAY__GRPC_ADDR".into(), addr(self.gateway_grpc)),
            ("ATENDE__BROADCAST__GRPC_ADDR".into(), addr(self.broadcast)),
            ("ATENDE__SCHEDULER__GRPC_ADDR".into(), addr(self.scheduler)),
            (
                "ATENDE__CLIENTS__ROUTER_URL".into(),
                format!("http://{}", addr(self.router)),
            ),
            (
                "ATENDE__CLIENTS__SESSION_URL".into(),
                format!("http://{}", addr(self.session)),
            ),
        ]
    }
}

/// One role as its own process, ready (its "role ready" log line read).
fn start(sb: &Sandbox, ports: &Ports, role: &str) -> Child {
    let extra: Vec<(String, String)> = ports
        .env()
        .into_iter()
        .chain([
            ("ATENDE__NATS__RETRY_BACKOFF_MAX_MS".to_string(), "200".to_string()),
            ("ATENDE__ROUTER__SWEEP_INTERVAL_MS".to_string(), "200".to_string()),
            ("ATENDE__ROUTER__RECONCILE_INTERVAL_MS".to_string(), "500".to_string()),
        ])
        .collect();
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut child = common::spawn_role_with(sb, role, &extra);
    common::ready_count(&mut child, 1);
    child
}

/// The role processes; killed if the test ends early (a panic), so none outlives it.
struct Roles(Vec<(&'static str, Child)>);

impl Drop for Roles {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn kill_9(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    child.wait().expect("reaped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_role_killed_at_a_random_moment_under_load_loses_and_duplicates_nothing() {
    // Arrange: six processes, a tenant, agents online.
    let sb = Sandbox::new().await;
    let ports = Ports::new();
    let mut procs = Roles(Vec::new());
    for role in [
        "router",
        "session",
        "channel-adapter",
        "gateway",
        "broadcast",
        "scheduler",
    ] {
        procs.0.push((role, start(&sb, &ports, role)));
    }
    let session_url = format!("http://127.0.0.1:{}", ports.session);
    let seeded =
        atende_testkit::fixtures::seed_through_admin(&sb, &session_url, std::str::from_utf8(SECRET).unwrap(), "token")
            .await;
    let mut admin = AdminServiceClient::new(sb.grpc(&session_url));
    let phone_number_id = seeded.phone_number_id.clone();
    let mut router = RouterServiceClient::new(sb.grpc(format!("http://127.0.0.1:{}", ports.router)));
    for i in 0..AGENTS {
        let agent = admin
            .create_agent(pb::CreateAgentRequest {
                tenant_id: seeded.tenant_id.clone(),
                name: format!("Agente {i}"),
                email: format!("agente{i}@kill.test"),
                password: "kill password".into(),
                max_concurrent: MAX,
                service_ids: vec![seeded.service_id.clone()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .agent
            .unwrap();
        router
            .set_presence(pb::SetPresenceRequest {
                tenant_id: seeded.tenant_id.clone(),
                agent_id: agent.id,
                connected: true,
                channels: vec![pb::ChannelLogin {
                    channel_kind: "whatsapp".into(),
                    paused: false,
                }],
                logout: false,
            })
            .await
            .unwrap();
    }

    // Act: a steady stream of webhooks; meanwhile each role is killed and restarted in turn.
    let url = format!(
        "http://127.0.0.1:{}/webhooks/whatsapp/{}",
        ports.adapter_http, seeded.channel_id
    );
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = CancellationToken::new();
    let load = {
        let (acknowledged, stop, pnid) = (acknowledged.clone(), stop.clone(), phone_number_id.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut n = 0usize;
            while !stop.is_cancelled() && n < 5_000 {
                let customer = format!("55119{:08}", n % CUSTOMERS);
                let wamid = format!("wamid.KILL{n:05}");
                let body = text_message_webhook(&pnid, &customer, "Cliente", &wamid, "oi", 1_763_700_000 + n as i64);
                let sent = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", sign(SECRET, &body))
                    .body(body)
                    .send()
                    .await;
                if matches!(&sent, Ok(r) if r.status() == 200) {
                    acknowledged.lock().unwrap().push(wamid);
                } else {
                    // The adapter is down or refusing: Meta would retry later; so do we, later.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // A random moment under load: after a random number of webhooks acknowledged since the
    // last restart (so the load really runs through every kill).
    let acked_so_far = || acknowledged.lock().unwrap().len();
    let load_goes_on = |more: usize| {
        let from = acked_so_far();
        wait_until("the load to go on", DEADLINE, move || async move {
            (acked_so_far() >= from + more).then_some(())
        })
    };
    for (role, child) in procs.0.iter_mut() {
        load_goes_on(rand::thread_rng().gen_range(10..60)).await;
        kill_9(child);
        *child = tokio::task::block_in_place(|| start(&sb, &ports, role));
    }
    load_goes_on(20).await;
    stop.cancel();
    load.await.unwrap();
    let acked: Vec<String> = acknowledged.lock().unwrap().clone();

    // Assert: everything acknowledged stored once, routed once; nothing over capacity.
    let pool = sb.pool.clone();
    let expected = acked.len() as i64;
    wait_until("every acknowledged message stored", DEADLINE, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE direction = 'inbound'")
            .fetch_one(&pool)
            .await
            .ok()?;
        (n >= expected).then_some(())
    })
    .await;
    sb.wait_quiet(DEADLINE).await;
    let stored: HashSet<String> =
        sqlx::query_scalar("SELECT provider_message_id FROM messages WHERE direction = 'inbound'")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let (messages, conversations, open_assignments, unrouted, dead): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages WHERE direction = 'inbound'),
                (SELECT count(*) FROM conversations),
                (SELECT count(*) FROM assignments WHERE released_at IS NULL),
                (SELECT count(*) FROM conversations WHERE status <> 'assigned'),
                (SELECT count(*) FROM dead_letters)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let over = atende_capacity::Presence::new(sb.redis().await, &sb.id)
        .over_capacity_count(atende_domain::ids::TenantId(seeded.tenant_id.parse().unwrap()))
        .await
        .unwrap();
    assert!(acked.len() > 100, "the load ran ({} acknowledged)", acked.len());
    let missing: Vec<&String> = acked.iter().filter(|w| !stored.contains(*w)).collect();
    assert!(missing.is_empty(), "acknowledged but not stored: {missing:?}");
    assert_eq!(messages, stored.len() as i64, "a message stored twice");
    assert_eq!(conversations, CUSTOMERS as i64, "one conversation per customer");
    assert_eq!(open_assignments, conversations, "each conversation routed exactly once");
    assert_eq!(unrouted, 0);
    assert_eq!(dead, 0);
    assert_eq!(over, 0, "a capacity script observed an agent over capacity");
    for (_, child) in procs.0.iter_mut() {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let _ = child.wait();
    }
    sb.cleanup().await;
}
