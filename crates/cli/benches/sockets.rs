//! Connected agents per gateway replica (a benchmark, not a test): the real `atende` binary
//! runs every role but one in one process and the gateway alone in a second, as a replica
//! would; this process opens N agents' WebSockets to that gateway and reads the gateway
//! process's memory (RSS from /proc) idle, with N sockets open, and after they have
//! heartbeated a while. Then the push rate: each round writes one frame into every agent's
//! feed in one Postgres transaction and announces it as the platform does (a NATS poke per
//! agent); the round ends when every socket has its frame. Beside it, in the same run: the
//! raw rate of the same transaction without the gateway's work, and of NATS core publishes.
//!
//! Run: `cargo bench -p atende-cli --bench sockets` (release). Environment: BENCH_SOCKETS
//! (10000), BENCH_HOLD_SECS (30), BENCH_ROUNDS (10).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atende_testkit::fixtures;
use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const SECRET: &str = "bench-sockets-secret-0123456789abcdef-0123456789";

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Resident memory of a process, in MB.
fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn token_for(tenant: Uuid, agent: Uuid) -> String {
    let claims = json!({
        "sub": agent, "tenant": tenant, "supervisor": false, "sid": Uuid::now_v7(),
        "exp": jsonwebtoken::get_current_timestamp() + 24 * 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

/// One frame for every agent of the tenant, numbered after each one's last, in one
/// transaction (what the feed writer does per event, for all agents at once).
const APPEND_ALL: &str = "
    WITH heads AS (
        INSERT INTO agent_feed_heads (tenant_id, agent_id, last_seq)
        SELECT tenant_id, id, 1 FROM agents WHERE tenant_id = $1
        ON CONFLICT (tenant_id, agent_id) DO UPDATE SET last_seq = agent_feed_heads.last_seq + 1
        RETURNING tenant_id, agent_id, last_seq)
    INSERT INTO agent_feed (tenant_id, agent_id, seq, event_id, part, type, data)
    SELECT tenant_id, agent_id, last_seq, $2, 0, 'bench.round', jsonb_build_object('round', $3::int)
    FROM heads";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = env_num("BENCH_SOCKETS", 10_000);
    let hold = env_num("BENCH_HOLD_SECS", 30);
    let rounds = env_num("BENCH_ROUNDS", 10);
    let sb = atende_testkit::Sandbox::new().await;
    let tenant = fixtures::tenant(&sb.pool, "Bench", "bench").await;
    let service = fixtures::service(&sb.pool, tenant, "least_loaded").await;
    let started = Instant::now();
    let agents: Vec<Uuid> = futures::stream::iter(0..n)
        .map(|i| {
            let pool = sb.pool.clone();
            async move { fixtures::agent(&pool, tenant, &format!("bench{i}"), &[service], 10).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    println!("{n} agents created in {:.1} s", started.elapsed().as_secs_f64());

    // Every role but the gateway in one process, the gateway in another.
    let env = [
        ("ATENDE__GATEWAY__JWT_SECRET", SECRET),
        ("ATENDE__TELEMETRY__LOG_LEVEL", "warn,atende_cli=info"),
    ];
    let mut core = common::Reaper(Some(common::spawn_all_with(&sb, &env)));
    let ready = common::ready_roles(core.child());
    let grpc = |role: &str| {
        let r = ready.iter().find(|r| r.role == role).expect("role ready");
        format!("http://{}", r.grpc)
    };
    let (session, router) = (grpc("session"), grpc("router"));
    let mut gw_env = env.to_vec();
    gw_env.push(("ATENDE__CLIENTS__SESSION_URL", &session));
    gw_env.push(("ATENDE__CLIENTS__ROUTER_URL", &router));
    let mut gateway = common::Reaper(Some(common::spawn_role_with(&sb, "gateway", &gw_env)));
    let pid = gateway.child().id();
    let gw = common::ready_count(gateway.child(), 1);
    let http = gw[0].http.clone().expect("gateway http");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_mb(pid);

    // N sockets, with the bearer token on the upgrade (as a non-browser client may).
    let frames = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let sinks: Vec<_> = futures::stream::iter(agents.iter().copied())
        .map(|agent| {
            let (http, frames) = (http.clone(), frames.clone());
            async move {
                let mut req = format!("ws://{http}/api/v1/ws").into_client_request().unwrap();
                req.headers_mut().insert(
                    "authorization",
                    format!("Bearer {}", token_for(tenant, agent)).parse().unwrap(),
                );
                let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .read_buffer_size(4 * 1024)
                    .write_buffer_size(0);
                let (ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), false)
                    .await
                    .expect("socket");
                let (sink, mut stream) = ws.split();
                tokio::spawn(async move {
                    while let Some(Ok(msg)) = stream.next().await {
                        if let Message::Text(t) = msg {
                            if t.as_str().contains("\"bench.round\"") {
                                frames.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
                sink
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_open = rss_mb(pid);
    tokio::time::sleep(Duration::from_secs(hold)).await;
    let rss_held = rss_mb(pid);

    // Push: R rounds of one frame per agent.
    let bus = async_nats::connect(&sb.config.nats.url).await.expect("nats");
    let subjects = atende_bus::Subjects::new(&sb.id);
    let mut round_ms = Vec::new();
    for round in 1..=rounds {
        let t0 = Instant::now();
        sqlx::query(APPEND_ALL)
            .bind(tenant)
            .bind(Uuid::now_v7())
            .bind(round as i32)
            .execute(&sb.pool)
            .await
            .expect("append");
        for agent in &agents {
            let _ = bus
                .publish(subjects.feed_poke(tenant, *agent), round.to_string().into())
                .await;
        }
        let _ = bus.flush().await;
        let want = n * round;
        while frames.load(Ordering::Relaxed) < want {
            assert!(t0.elapsed() < Duration::from_secs(120), "round {round} incomplete");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        round_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let rss_pushed = rss_mb(pid);

    // Raw, same run: the round's transaction alone, and N NATS core publishes.
    let t0 = Instant::now();
    sqlx::query(APPEND_ALL)
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(0)
        .execute(&sb.pool)
        .await
        .expect("append");
    let raw_append_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let t0 = Instant::now();
    for i in 0..n {
        let _ = bus.publish(format!("{}.bench.raw.{i}", sb.id), "1".into()).await;
    }
    let _ = bus.flush().await;
    let raw_publish_ms = t0.elapsed().as_secs_f64() * 1000.0;

    round_ms.sort_by(|a, b| a.total_cmp(b));
    let median = round_ms[round_ms.len() / 2];
    let per_kb = |after: f64| (after - rss_idle) * 1024.0 / n as f64;
    println!("\n| measure | value |\n|---|---:|");
    println!("| sockets open | {n} (connected in {connect_secs:.1} s) |");
    println!("| gateway RSS idle | {rss_idle:.0} MB |");
    println!(
        "| gateway RSS, sockets open | {rss_open:.0} MB ({:.1} KB per socket) |",
        per_kb(rss_open)
    );
    println!(
        "| gateway RSS after {hold} s of heartbeats | {rss_held:.0} MB ({:.1} KB per socket) |",
        per_kb(rss_held)
    );
    println!("| gateway RSS after {rounds} push rounds | {rss_pushed:.0} MB |");
    println!(
        "| push round: one frame to each of {n} sockets, median / max | {median:.0} / {:.0} ms |",
        round_ms.last().unwrap()
    );
    println!(
        "| push rate (median round) | {:.0} frames/s |",
        n as f64 / (median / 1000.0)
    );
    println!("| raw: the round's Postgres transaction alone | {raw_append_ms:.0} ms |");
    println!("| raw: {n} NATS core publishes | {raw_publish_ms:.0} ms |");
    drop(sinks);
    gateway.stop().await;
    core.stop().await;
}
