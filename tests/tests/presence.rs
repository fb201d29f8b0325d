//! Presence across gateway replicas: an agent is connected while one of his sockets is alive
//! on any replica (heartbeats in Redis). Closing his socket on one replica while another stays
//! open on a second leaves him Available; when the last one closes, he becomes Inactive after
//! the grace, keeping his channel logins, and a new socket restores them.

use atende_capacity::Keys;
use atende_domain::ids::{AgentId, TenantId};
use atende_e2e::api::{call, Auth};
use atende_e2e::{Platform, Tenant, DEADLINE};
use atende_testkit::wait_until;
use reqwest::Method;

const GRACE_MS: u64 = 600;

async fn status(p: &Platform, token: &str) -> String {
    let (s, body) = call(p, Method::GET, "/api/v1/me/presence", Auth::Bearer(token), None).await;
    assert_eq!(s, 200, "{body}");
    body["status"].as_str().unwrap().to_string()
}

/// The lapse times (ms) of the agent's live sockets, as Redis has them.
async fn sockets(p: &Platform, t: &Tenant) -> Vec<i64> {
    let keys = Keys::new(&p.sandbox.config.namespace.prefix);
    let key = keys.sockets(
        TenantId(t.tenant_id.parse().unwrap()),
        AgentId(t.agent_id.parse().unwrap()),
    );
    let scored: Vec<(String, i64)> = redis::cmd("ZRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut p.sandbox.redis().await)
        .await
        .unwrap();
    scored.into_iter().map(|(_, lapse)| lapse).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_with_a_socket_on_another_replica_stays_available_and_the_last_close_makes_him_inactive() {
    // Arrange: Ana, available, with one socket on each of two gateway replicas.
    let mut p = Platform::start_configured(|cfg| cfg.gateway.presence_grace_ms = GRACE_MS).await;
    let t = p.seed().await;
    let second = p.extra_gateway().await;
    let token = p.login(&t).await;
    p.set_available(&token).await;
    let here = p.socket(&token).await;
    let there = p.socket_on(&second, &token, None).await;
    wait_until("both sockets recorded", DEADLINE, || async {
        (sockets(&p, &t).await.len() == 2).then_some(())
    })
    .await;

    // Act: the socket on the first replica closes.
    here.close().await;
    let closed_at = now_ms();

    // Assert: once the other socket was renewed past the moment the first one's absence is
    // decided (its close plus the grace), Ana is still Available.
    wait_until("the other socket renewed past the grace", DEADLINE, || async {
        let live = sockets(&p, &t).await;
        (live.len() == 1 && live[0] > closed_at + GRACE_MS as i64 * 2).then_some(())
    })
    .await;
    assert_eq!(status(&p, &token).await, "available");

    // The last socket closes: Inactive after the grace, channel logins kept...
    there.close().await;
    wait_until("inactive after the grace", DEADLINE, || async {
        (status(&p, &token).await == "inactive").then_some(())
    })
    .await;
    // ...so a new socket brings him back to Available without logging into channels again.
    let back = p.socket(&token).await;
    wait_until("available again", DEADLINE, || async {
        (status(&p, &token).await == "available").then_some(())
    })
    .await;
    back.close().await;
    p.stop().await;
}
