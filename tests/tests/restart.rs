//! R-restart: under a steady stream of webhooks, the platform's NATS server (the test's own)
//! is restarted, and later every Redis key of the tenant vanishes (a FLUSH, a failover to an
//! empty replica). Afterwards every acknowledged message is stored exactly once, every
//! conversation routed once, nothing dead-lettered, and no capacity script ever produced a
//! load above max.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atende_e2e::{Platform, DEADLINE};
use atende_testkit::fake_graph::FakeGraph;
use atende_testkit::nats_server::NatsServer;
use atende_testkit::whatsapp::text_message_webhook;
use atende_testkit::{wait_until, Sandbox};
use tokio_util::sync::CancellationToken;

/// Two agents of capacity 3: every customer's conversation can be routed.
const CUSTOMERS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_restart_and_a_redis_flush_under_load_lose_and_duplicate_nothing() {
    // Arrange: the platform on a NATS server of the test's own; two agents online.
    let mut nats = tokio::task::block_in_place(NatsServer::start);
    let mut sandbox = Sandbox::new().await;
    sandbox.config.nats.url = nats.url();
    let fake = FakeGraph::start().await;
    let mut cfg = sandbox.config.clone();
    cfg.channel_adapter.graph_api_base = fake.base_url();
    cfg.router.sweep_interval_ms = 100;
    cfg.nats.retry_backoff_max_ms = 200;
    // An ack lost in the restart is redelivered (and found a duplicate) after this.
    cfg.nats.ack_wait_ms = 2000;
    let p = Platform::start_with(sandbox, fake, cfg).await;
    let t = p.seed().await;
    let t2 = p.add_agent(&t, "Bruno", "bruno@acme.test", "bruno password").await;
    let (_ta, _sa) = p.online(&t).await;
    let (_tb, _sb) = p.online(&t2).await;

    // Act: a steady stream of webhooks while NATS restarts and Redis loses the tenant.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = CancellationToken::new();
    let load = {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        let url = format!("{}/webhooks/whatsapp/{}", p.adapter, t.channel_id);
        let (pnid, secret) = (t.phone_number_id.clone(), t.app_secret.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut n = 0usize;
            while !stop.is_cancelled() && n < 5_000 {
                let customer = format!("55119{:08}", n % CUSTOMERS);
                let wamid = format!("wamid.RESTART{n:05}");
                let body = text_message_webhook(&pnid, &customer, "Cliente", &wamid, "oi", atende_e2e::now_secs());
                let resp = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header(
                        "x-hub-signature-256",
                        atende_testkit::whatsapp::sign(secret.as_bytes(), &body),
                    )
                    .body(body)
                    .send()
                    .await;
                if matches!(&resp, Ok(r) if r.status() == 200) {
                    acknowledged.lock().unwrap().push(wamid);
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let acked_so_far = || acknowledged.lock().unwrap().len();
    wait_until("load under way", DEADLINE, || async {
        (acked_so_far() >= 30).then_some(())
    })
    .await;
    tokio::task::block_in_place(|| nats.restart());
    let after_restart = acked_so_far();
    wait_until("load goes on after the restart", DEADLINE, || async {
        (acked_so_far() >= after_restart + 30).then_some(())
    })
    .await;
    let mut redis = p.sandbox.redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", p.sandbox.id))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut redis).await.unwrap();
    // Agents come back with their next heartbeat, as after any Redis loss.
    p.set_available(&_ta).await;
    p.set_available(&_tb).await;
    let after_flush = acked_so_far();
    wait_until("load goes on after the flush", DEADLINE, || async {
        (acked_so_far() >= after_flush + 30).then_some(())
    })
    .await;
    stop.cancel();
    load.await.unwrap();
    let acked: Vec<String> = acknowledged.lock().unwrap().clone();

    // Assert
    let pool = p.sandbox.pool.clone();
    let expected = acked.len() as i64;
    wait_until("every acknowledged message stored", DEADLINE, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE direction = 'inbound'")
            .fetch_one(&pool)
            .await
            .ok()?;
        (n >= expected).then_some(())
    })
    .await;
    p.sandbox.wait_quiet(DEADLINE).await;
    wait_until("every conversation routed", DEADLINE, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations WHERE status <> 'assigned'")
            .fetch_one(&pool)
            .await
            .ok()?;
        (n == 0).then_some(())
    })
    .await;
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT provider_message_id FROM messages WHERE direction = 'inbound'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let distinct: HashSet<&String> = stored.iter().collect();
    let (conversations, open_assignments, dead): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM conversations),
                (SELECT count(*) FROM assignments WHERE released_at IS NULL),
                (SELECT count(*) FROM dead_letters)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let over = atende_capacity::Presence::new(p.sandbox.redis().await, &p.sandbox.id)
        .over_capacity_count(atende_domain::ids::TenantId(t.tenant_id.parse().unwrap()))
        .await
        .unwrap();
    let missing: Vec<&String> = acked.iter().filter(|w| !distinct.contains(w)).collect();
    assert!(missing.is_empty(), "acknowledged but not stored: {missing:?}");
    assert_eq!(stored.len(), distinct.len(), "a message stored twice");
    assert_eq!(conversations, CUSTOMERS as i64);
    assert_eq!(open_assignments, conversations, "each conversation routed exactly once");
    assert_eq!(dead, 0);
    assert_eq!(over, 0, "a capacity script observed an agent over capacity");
    p.stop().await;
    drop(nats);
}
