//! Push latency benchmark (not a test): every role in one process, N agents connected over
//! real WebSockets, signed WhatsApp webhooks POSTed to the channel-adapter at a fixed rate
//! (open loop: a slow answer never delays the next send) for D seconds; for each message, the
//! time from the POST to its `message.created` frame on the agent's socket — webhook, inbox,
//! relay, session, router (for a customer's first message), the agent's feed, the socket.
//! Beside it, measured in the same run: one-row Postgres commits and JetStream
//! publish-with-ack, the two durable steps a message crosses several times on the way.
//!
//! Run: `cargo bench -p atende-e2e --bench push` (release profile). Environment:
//! BENCH_AGENTS (1000), BENCH_RATES (comma list of webhooks/s, "100,500"), BENCH_SECS (60),
//! BENCH_CUSTOMERS per rate (3000).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atende_e2e::Platform;
use atende_testkit::fixtures;
use atende_testkit::whatsapp::text_message_webhook;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;

const SECRET: &str = "bench-gateway-secret-0123456789abcdef-01234";

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pct(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[i] as f64 / 1000.0
}

fn row(label: &str, us: &mut [u64]) -> String {
    us.sort_unstable();
    format!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        us.len(),
        pct(us, 0.5),
        pct(us, 0.9),
        pct(us, 0.99),
        pct(us, 1.0)
    )
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// When each message was sent (by its number), and when its frame arrived.
#[derive(Default)]
struct Clock {
    sent: HashMap<u64, Instant>,
    /// The same moment on the wall clock, to compare with Postgres' timestamps.
    sent_wall: HashMap<u64, i64>,
    arrived: HashMap<u64, Instant>,
}

fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// When each bench message was stored by session and appended to a feed (µs since the epoch).
async fn stages(pool: &sqlx::PgPool) -> (HashMap<u64, i64>, HashMap<u64, i64>) {
    let stored: Vec<(String, i64)> = sqlx::query_as(
        "SELECT provider_message_id, (extract(epoch FROM created_at) * 1000000)::bigint
           FROM messages WHERE provider_message_id LIKE 'wamid.BENCH%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let fed: Vec<(String, i64)> = sqlx::query_as(
        "SELECT data->'message'->>'text', (extract(epoch FROM min(created_at)) * 1000000)::bigint
           FROM agent_feed WHERE type = 'message.created' GROUP BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let num = |s: &str, prefix: &str| s.strip_prefix(prefix).and_then(|n| n.parse::<u64>().ok());
    (
        stored
            .into_iter()
            .filter_map(|(id, at)| Some((num(&id, "wamid.BENCH")?, at)))
            .collect(),
        fed.into_iter()
            .filter_map(|(t, at)| Some((num(&t, "bench ")?, at)))
            .collect(),
    )
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

/// Opens the agent's socket and records, for every `message.created` frame whose text is
/// `bench <n>`, when it arrived (the first time only).
async fn connect(p: &Platform, token: &str, clock: Arc<Mutex<Clock>>) {
    let ticket = p.ws_ticket(token).await;
    let url = format!("{}/api/v1/ws?ticket={ticket}", p.gateway.replace("http://", "ws://"));
    // The client side with small buffers too, so the process's memory is mostly the server's.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .expect("socket");
    let (_sink, mut stream) = ws.split();
    tokio::spawn(async move {
        let _keep = _sink;
        while let Some(Ok(msg)) = stream.next().await {
            let WsMessage::Text(text) = msg else { continue };
            let now = Instant::now();
            let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if frame["type"] != "message.created" {
                continue;
            }
            let n = frame["data"]["message"]["text"]
                .as_str()
                .and_then(|t| t.strip_prefix("bench "))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(n) = n {
                clock.lock().unwrap().arrived.entry(n).or_insert(now);
            }
        }
    });
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let agents = env_num("BENCH_AGENTS", 1000);
    let secs = env_num("BENCH_SECS", 60);
    let customers = env_num("BENCH_CUSTOMERS", 3000);
    let rates: Vec<u64> = std::env::var("BENCH_RATES")
        .unwrap_or_else(|_| "100,500".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();

    let p = Platform::start_configured(|cfg| {
        cfg.gateway.jwt_secret = SECRET.to_string().into();
        cfg.limits.webhook_per_ip_per_sec = 100_000;
        cfg.limits.webhook_per_channel_per_sec = 100_000;
        cfg.limits.api_per_tenant_per_min = 10_000_000;
    })
    .await;
    let t = p.seed().await;
    let tenant: Uuid = t.tenant_id.parse().unwrap();
    let service: Uuid = t.service_id.parse().unwrap();
    let rss_before = rss_mb();

    // N agents, each available on WhatsApp with one socket.
    let clock = Arc::new(Mutex::new(Clock::default()));
    let started = Instant::now();
    let ids: Vec<Uuid> = futures::stream::iter(0..agents)
        .map(|i| {
            let pool = p.sandbox.pool.clone();
            async move { fixtures::agent(&pool, tenant, &format!("bench{i}"), &[service], 10).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let tokens: Vec<String> = ids.iter().map(|a| token_for(tenant, *a)).collect();
    futures::stream::iter(tokens.iter())
        .for_each_concurrent(32, |token| {
            let (p, clock) = (&p, clock.clone());
            async move {
                p.set_available(token).await;
                connect(p, token, clock).await;
            }
        })
        .await;
    let rss_connected = rss_mb();
    println!(
        "{agents} agents available with a socket each in {:.1} s; process RSS {:.0} MB -> {:.0} MB \
         ({:.1} KB per agent, client and server side of the socket together)",
        started.elapsed().as_secs_f64(),
        rss_before,
        rss_connected,
        (rss_connected - rss_before) * 1024.0 / agents as f64
    );

    let http = reqwest::Client::new();
    let mut n0 = 0u64;
    let mut results = Vec::new();
    for (round, rate) in rates.iter().enumerate() {
        let total = rate * secs;
        let first_customer = round as u64 * customers;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / *rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let begin = Instant::now();
        let mut sends = Vec::with_capacity(total as usize);
        for i in 0..total {
            tick.tick().await;
            let n = n0 + i;
            let customer = first_customer + i % customers;
            let body = text_message_webhook(
                &t.phone_number_id,
                &format!("551198{customer:07}"),
                "Cliente",
                &format!("wamid.BENCH{n}"),
                &format!("bench {n}"),
                atende_e2e::now_secs(),
            );
            let req = http
                .post(format!("{}/webhooks/whatsapp/{}", p.adapter, t.channel_id))
                .header("content-type", "application/json")
                .header(
                    "x-hub-signature-256",
                    atende_testkit::whatsapp::sign(t.app_secret.as_bytes(), &body),
                )
                .body(body);
            {
                let mut c = clock.lock().unwrap();
                c.sent.insert(n, Instant::now());
                c.sent_wall.insert(n, wall_us());
            }
            sends.push(tokio::spawn(
                async move { req.send().await.map(|r| r.status().as_u16()) },
            ));
        }
        let send_secs = begin.elapsed().as_secs_f64();
        let mut refused = 0;
        for s in sends {
            if !matches!(s.await, Ok(Ok(200))) {
                refused += 1;
            }
        }
        // Drain: every frame arrives, or 20 s pass.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let all_in = {
                let c = clock.lock().unwrap();
                (n0..n0 + total).all(|n| c.arrived.contains_key(&n))
            };
            if all_in {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (mut first, mut next, mut missing) = (Vec::new(), Vec::new(), 0);
        {
            let c = clock.lock().unwrap();
            for i in 0..total {
                let n = n0 + i;
                match (c.sent.get(&n), c.arrived.get(&n)) {
                    (Some(s), Some(a)) => {
                        let us = a.duration_since(*s).as_micros() as u64;
                        if i < customers {
                            first.push(us)
                        } else {
                            next.push(us)
                        }
                    }
                    _ => missing += 1,
                }
            }
        }
        println!(
            "{rate}/s for {secs} s: {total} webhooks sent in {send_secs:.1} s, {refused} not answered 200, {missing} frames missing"
        );
        // Where the time goes: sent → stored by session → appended to the agent's feed.
        let (stored, fed) = stages(&p.sandbox.pool).await;
        let (mut to_stored, mut to_fed) = (Vec::new(), Vec::new());
        {
            let c = clock.lock().unwrap();
            for n in n0..n0 + total {
                let Some(sent) = c.sent_wall.get(&n) else { continue };
                if let Some(at) = stored.get(&n) {
                    to_stored.push((at - sent).max(0) as u64);
                }
                if let Some(at) = fed.get(&n) {
                    to_fed.push((at - sent).max(0) as u64);
                }
            }
        }
        results.push((*rate, first, next, to_stored, to_fed));
        n0 += total;
    }

    // The raw durable steps, measured now on the same machine and servers.
    let mut pg = Vec::new();
    sqlx::query("CREATE TABLE bench_commit (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
        .execute(&p.sandbox.pool)
        .await
        .unwrap();
    for i in 0..2000i64 {
        let t0 = Instant::now();
        sqlx::query("INSERT INTO bench_commit (id) VALUES ($1)")
            .bind(i)
            .execute(&p.sandbox.pool)
            .await
            .unwrap();
        pg.push(t0.elapsed().as_micros() as u64);
    }
    let nats = async_nats::connect(&p.sandbox.config.nats.url).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let subject = format!("{}.bench.raw", p.sandbox.id);
    let stream_name = format!("{}_BENCH_RAW", p.sandbox.id.to_ascii_uppercase().replace('-', "_"));
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: stream_name.clone(),
        subjects: vec![subject.clone()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut js_acks = Vec::new();
    for i in 0..2000u32 {
        let t0 = Instant::now();
        js.publish(subject.clone(), i.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
        js_acks.push(t0.elapsed().as_micros() as u64);
    }
    let _ = js.delete_stream(&stream_name).await;

    println!();
    println!("| what | n | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (rate, mut first, mut next, mut stored, mut fed) in results {
        println!(
            "{}",
            row(&format!("{rate}/s: any message → stored by session"), &mut stored)
        );
        println!(
            "{}",
            row(&format!("{rate}/s: any message → in the agent's feed"), &mut fed)
        );
        println!("{}", row(&format!("{rate}/s: next message → frame"), &mut next));
        println!(
            "{}",
            row(
                &format!("{rate}/s: first message (new conversation, routed) → frame"),
                &mut first
            )
        );
    }
    println!("{}", row("raw: one-row Postgres commit", &mut pg));
    println!(
        "{}",
        row("raw: JetStream publish with ack (file storage)", &mut js_acks)
    );
    println!("process RSS at the end: {:.0} MB", rss_mb());
    p.stop().await;
}
