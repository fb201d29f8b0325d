//! Agents' feeds: dense per-agent numbers in commit order, one write per event however often
//! it is delivered, and concurrent appends for one agent never sharing or skipping a number.

use atende_store::feed::{self, Appended, NewFrame};
use atende_testkit::fixtures;
use atende_testkit::Sandbox;
use serde_json::json;
use uuid::Uuid;

async fn arrange() -> (Sandbox, Uuid, Uuid, Uuid) {
    let sb = Sandbox::new().await;
    let tenant = fixtures::tenant(&sb.pool, "Acme", "acme").await;
    let service = fixtures::service(&sb.pool, tenant, "least_loaded").await;
    let ana = fixtures::agent(&sb.pool, tenant, "Ana", &[service], 3).await;
    let bruno = fixtures::agent(&sb.pool, tenant, "Bruno", &[service], 3).await;
    (sb, tenant, ana, bruno)
}

fn frame<'a>(ty: &'a str, data: &'a serde_json::Value) -> NewFrame<'a> {
    NewFrame {
        ty,
        data,
        trace_id: None,
    }
}

#[tokio::test]
async fn frames_are_numbered_per_agent_and_a_redelivered_event_writes_nothing() {
    let (sb, tenant, ana, bruno) = arrange().await;
    let (a, b, c) = (json!({"n": 1}), json!({"n": 2}), json!({"n": 3}));
    let first = Uuid::now_v7();

    let got = feed::append(&sb.pool, tenant, ana, first, &[frame("x", &a), frame("y", &b)])
        .await
        .unwrap();
    assert_eq!(got, Appended::Written { head: 2 });
    let again = feed::append(&sb.pool, tenant, ana, first, &[frame("x", &a), frame("y", &b)])
        .await
        .unwrap();
    assert_eq!(again, Appended::Duplicate);
    let got = feed::append(&sb.pool, tenant, ana, Uuid::now_v7(), &[frame("z", &c)])
        .await
        .unwrap();
    assert_eq!(got, Appended::Written { head: 3 });
    // Bruno's feed counts on its own.
    let got = feed::append(&sb.pool, tenant, bruno, Uuid::now_v7(), &[frame("z", &c)])
        .await
        .unwrap();
    assert_eq!(got, Appended::Written { head: 1 });

    let all = feed::read(&sb.pool, tenant, ana, 0, 100).await.unwrap();
    let seen: Vec<(i64, &str)> = all.iter().map(|f| (f.seq, f.ty.as_str())).collect();
    assert_eq!(seen, [(1, "x"), (2, "y"), (3, "z")]);
    assert_eq!(feed::read(&sb.pool, tenant, ana, 2, 100).await.unwrap()[0].data, c);
    assert_eq!(feed::bounds(&sb.pool, tenant, ana).await.unwrap(), (3, Some(1)));
    let heads = feed::heads(&sb.pool, &[(tenant, ana), (tenant, bruno), (tenant, Uuid::now_v7())])
        .await
        .unwrap();
    assert_eq!(heads.len(), 2);
    sb.cleanup().await;
}

#[tokio::test]
async fn concurrent_appends_for_one_agent_get_every_number_once() {
    let (sb, tenant, ana, _) = arrange().await;
    let events: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
    // Each event is delivered twice, concurrently (a redelivery racing the first delivery).
    let racers = events.iter().chain(events.iter()).map(|&event| {
        let pool = sb.pool.clone();
        tokio::spawn(async move {
            let data = json!({ "event": event });
            let frames = [frame("a", &data), frame("b", &data)];
            feed::append(&pool, tenant, ana, event, &frames).await.unwrap()
        })
    });
    let outcomes = futures::future::join_all(racers).await;
    let written = outcomes
        .iter()
        .filter(|o| matches!(o.as_ref().unwrap(), Appended::Written { .. }))
        .count();
    assert_eq!(written, 40, "each event written once");

    let all = feed::read(&sb.pool, tenant, ana, 0, 1000).await.unwrap();
    let seqs: Vec<i64> = all.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (1..=80).collect::<Vec<_>>(), "dense, no number twice");
    // An event's two frames are adjacent, in order.
    for pair in all.chunks(2) {
        assert_eq!((pair[0].ty.as_str(), pair[1].ty.as_str()), ("a", "b"));
        assert_eq!(pair[0].data, pair[1].data);
    }
    sb.cleanup().await;
}

#[tokio::test]
async fn pruning_removes_only_old_frames_and_the_bounds_say_where_the_feed_starts() {
    let (sb, tenant, ana, _) = arrange().await;
    let d = json!({});
    for _ in 0..3 {
        feed::append(&sb.pool, tenant, ana, Uuid::now_v7(), &[frame("x", &d)])
            .await
            .unwrap();
    }
    sqlx::query("UPDATE agent_feed SET created_at = now() - interval '3 days' WHERE seq <= 2")
        .execute(&sb.pool)
        .await
        .unwrap();
    let before = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    assert_eq!(feed::prune(&sb.pool, before, 1000).await.unwrap(), 2);
    assert_eq!(feed::bounds(&sb.pool, tenant, ana).await.unwrap(), (3, Some(3)));
    sb.cleanup().await;
}
