//! Webhook ingest benchmark (not a test): signed WhatsApp webhooks POSTed to a real
//! channel-adapter (signature check, parse, receipt + outbox commit, 200) by C concurrent
//! clients for D seconds; prints requests/s and latency percentiles beside the raw rate of
//! the Postgres operation underneath — a one-row INSERT committed per request at the same
//! concurrency — measured in the same run against the same server.
//!
//! Run: `make bench` or `cargo bench -p atende-channel-adapter --bench ingest`
//! (env: BENCH_SECS, default 5; BENCH_CLIENTS, default 16).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atende_testkit::fixtures::{self, ChannelSpec};
use atende_testkit::whatsapp::{sign, text_message_webhook};
use atende_testkit::Sandbox;
use tokio_util::sync::CancellationToken;

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Run {
    ops: u64,
    secs: f64,
    latencies_us: Vec<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

async fn drive<F, Fut>(clients: u64, secs: u64, op: F) -> Run
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..clients {
        let (op, counter) = (op.clone(), counter.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                op(n).await;
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut latencies_us = Vec::new();
    for h in handles {
        latencies_us.extend(h.await.expect("client"));
    }
    let secs = start.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Run {
        ops: latencies_us.len() as u64,
        secs,
        latencies_us,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let secs = env_num("BENCH_SECS", 5);
    let clients = env_num("BENCH_CLIENTS", 16);
    let mut sb = Sandbox::new().await;
    sb.config.postgres.max_connections = 32;
    let shutdown = CancellationToken::new();
    let started = atende_channel_adapter::build(&sb.config, shutdown.clone())
        .await
        .expect("adapter");
    let url_base = format!("http://{}", started.http_addr.expect("http"));

    let tenant = fixtures::tenant(&sb.pool, "Bench", &format!("b-{}", sb.id)).await;
    let pnid = "990011223344";
    let spec = ChannelSpec {
        name: "bench",
        app_secret: "bench-secret",
        ..ChannelSpec::new(pnid)
    };
    let channel = fixtures::whatsapp_channel(&sb.pool, tenant, spec).await.id;

    // Raw Postgres: one durable single-row INSERT per operation, same concurrency.
    let pool = atende_store::connect(
        secrecy::ExposeSecret::expose_secret(&sb.config.postgres.url),
        clients as u32 + 2,
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE bench_raw (id bigint PRIMARY KEY, body bytea NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let raw_pool = pool.clone();
    let raw = drive(clients, secs, move |n| {
        let pool = raw_pool.clone();
        async move {
            sqlx::query("INSERT INTO bench_raw (id, body) VALUES ($1, $2)")
                .bind(n as i64)
                .bind(vec![0u8; 600])
                .execute(&pool)
                .await
                .expect("raw insert");
        }
    })
    .await;

    // The adapter: a new message per request, so every request commits a receipt + outbox row.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients as usize)
        .build()
        .unwrap();
    let url = format!("{url_base}/webhooks/whatsapp/{channel}");
    let ingest = drive(clients, secs, move |n| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let body = text_message_webhook(
                pnid,
                "5511987654321",
                "Bench",
                &format!("wamid.BENCH{n}"),
                "oi",
                1_763_700_000,
            );
            let resp = http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", sign(b"bench-secret", &body))
                .body(body)
                .send()
                .await
                .expect("webhook");
            assert_eq!(resp.status(), 200);
        }
    })
    .await;

    println!("webhook ingest, {clients} clients, {secs} s each (same machine, same Postgres)");
    println!("| operation | ops/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    println!(
        "| raw Postgres: 1-row INSERT + commit | {:.0} | {:.2} | {:.2} |",
        raw.rate(),
        raw.pct(0.5),
        raw.pct(0.99)
    );
    println!(
        "| POST /webhooks/whatsapp (verify, parse, receipt + outbox commit, 200) | {:.0} | {:.2} | {:.2} |",
        ingest.rate(),
        ingest.pct(0.5),
        ingest.pct(0.99)
    );
    println!("ingest / raw = {:.0} %", 100.0 * ingest.rate() / raw.rate());

    shutdown.cancel();
    let _ = started.wait().await;
    pool.close().await;
    sb.cleanup().await;
}
