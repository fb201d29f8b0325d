//! R-outage: the consumers of inbound and routing work lose Postgres (through a proxy the test
//! cuts; the shared server is untouched) for longer than any fixed retry budget would allow,
//! while the channel-adapter keeps acknowledging webhooks. When Postgres is back, every
//! acknowledged message is stored exactly once and routed; nothing is dead-lettered and
//! nothing stays queued behind the outage.

use std::time::Duration;

use atende_e2e::{Platform, DEADLINE};
use atende_testkit::fake_graph::FakeGraph;
use atende_testkit::proxy::TcpProxy;
use atende_testkit::whatsapp::text_message_webhook;
use atende_testkit::{wait_until, Sandbox};
use secrecy::ExposeSecret;

/// Longer than the old budget of 50 deliveries at this test's retry pace (50 ms apart).
const OUTAGE: Duration = Duration::from_secs(5);

fn via_proxy(url: &str, proxy: std::net::SocketAddr) -> String {
    // postgres://user@host:port/db?… → the same with the proxy's host:port.
    let (scheme, rest) = url.split_once("://").expect("postgres url");
    let (authority, tail) = rest.split_once('/').expect("database in url");
    let user = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{user}{proxy}/{tail}")
}

async fn stored(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages WHERE direction = 'inbound'")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_webhooks_survive_a_postgres_outage_of_the_consumers_and_are_stored_once_and_routed() {
    // Arrange: router and session reach Postgres through a proxy; the edge reaches it directly.
    let sandbox = Sandbox::new().await;
    let fake = FakeGraph::start().await;
    let url = sandbox.config.postgres.url.expose_secret().to_string();
    let upstream = {
        let host_port = url.split_once("://").unwrap().1.split('/').next().unwrap();
        let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, hp)| hp);
        tokio::net::lookup_host(host_port).await.unwrap().next().unwrap()
    };
    let proxy = TcpProxy::start(upstream).await;
    let mut edge = sandbox.config.clone();
    edge.channel_adapter.graph_api_base = fake.base_url();
    edge.router.sweep_interval_ms = 100;
    edge.nats.retry_backoff_max_ms = 50;
    let mut consumers = edge.clone();
    consumers.postgres.url = via_proxy(&url, proxy.addr()).into();
    let platform = Platform::start_split(sandbox, fake, consumers, edge).await;
    let p = &platform;
    let t = p.seed().await;
    let t2 = p.add_agent(&t, "Bruno", "bruno@acme.test", "bruno password").await;
    let (_ta, _sa) = p.online(&t).await;
    let (_tb, _sb) = p.online(&t2).await;
    let pool = p.sandbox.pool.clone();
    let t = &t;
    let post = |customer: &str, wamid: &str| {
        let body = text_message_webhook(&t.phone_number_id, customer, "Cliente", wamid, "oi", 1_763_700_000);
        async move { p.post_webhook(t, &body, None).await.status().as_u16() }
    };
    assert_eq!(post("5511900000001", "wamid.BEFORE").await, 200);
    wait_until("the first message stored", DEADLINE, || async {
        (stored(&pool).await == 1).then_some(())
    })
    .await;

    // Act: Postgres disappears for the consumers; customers keep writing and are acknowledged.
    proxy.cut();
    let mut acknowledged = 1;
    for (customer, wamid) in [
        ("5511900000002", "wamid.DURING1"),
        ("5511900000003", "wamid.DURING2"),
        ("5511900000001", "wamid.DURING3"),
    ] {
        assert_eq!(post(customer, wamid).await, 200, "the edge still acknowledges");
        acknowledged += 1;
    }
    tokio::time::sleep(OUTAGE).await; // the outage itself: real time is what is being tested
    let during = stored(&pool).await;
    proxy.heal();

    // Assert: everything acknowledged arrives, once, and is routed.
    wait_until("every acknowledged message stored", DEADLINE, || async {
        (stored(&pool).await == acknowledged).then_some(())
    })
    .await;
    p.sandbox.wait_quiet(DEADLINE).await;
    let (messages, distinct, conversations, unassigned, dead): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages WHERE direction = 'inbound'),
                (SELECT count(DISTINCT provider_message_id) FROM messages WHERE direction = 'inbound'),
                (SELECT count(*) FROM conversations),
                (SELECT count(*) FROM conversations WHERE status <> 'assigned'),
                (SELECT count(*) FROM dead_letters)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(during, 1, "nothing could be stored while the consumers had no database");
    assert_eq!(
        (messages, distinct),
        (4, 4),
        "every acknowledged message stored exactly once"
    );
    assert_eq!(conversations, 3, "the customer who wrote twice has one conversation");
    assert_eq!(unassigned, 0, "every conversation routed to an agent");
    assert_eq!(dead, 0);
    platform.stop().await;
}
