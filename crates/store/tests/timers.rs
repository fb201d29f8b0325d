//! Durable timers on an injected clock: a timer fires once when due (never before), moves and
//! cancels with the caller's transaction, one that fell due while nothing ran fires at the
//! next pass, and three replicas firing at once fire each of 300 timers exactly once.

use atende_store::timers::{self, NewTimer};
use atende_testkit::fixtures;
use atende_testkit::Sandbox;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

fn timer<'a>(tenant: Uuid, key: &'a str, due_at: OffsetDateTime) -> NewTimer<'a> {
    NewTimer {
        tenant,
        kind: "scheduled_send",
        key,
        due_at,
        subject: "t.atende.events.x.timer.scheduled_send",
        payload: key.as_bytes(),
        order_key: key,
    }
}

/// The outbox rows timers queued, by message id.
async fn fired(sb: &Sandbox) -> Vec<String> {
    sqlx::query_scalar("SELECT msg_id FROM outbox WHERE msg_id LIKE 'timer:%' ORDER BY id")
        .fetch_all(&sb.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_timer_fires_once_when_due_and_moves_and_cancels_with_its_transaction() {
    let sb = Sandbox::new().await;
    let tenant = fixtures::tenant(&sb.pool, "Acme", "acme").await;
    let t0 = OffsetDateTime::now_utc();
    let mut tx = sb.pool.begin().await.unwrap();
    let a = timers::schedule(&mut tx, &timer(tenant, "a", t0 + Duration::minutes(10)))
        .await
        .unwrap();
    timers::schedule(&mut tx, &timer(tenant, "b", t0 + Duration::minutes(10)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // A transaction that rolls back changes nothing: "b" is neither moved nor cancelled.
    let mut tx = sb.pool.begin().await.unwrap();
    assert!(timers::cancel(&mut tx, tenant, "scheduled_send", "b", t0)
        .await
        .unwrap());
    drop(tx);

    // Not yet due: nothing fires.
    assert_eq!(
        timers::fire_due(&sb.pool, t0 + Duration::minutes(9), 100)
            .await
            .unwrap(),
        0
    );
    // "a" moves to later, in the same transaction as whatever moved it; "b" is cancelled.
    let mut tx = sb.pool.begin().await.unwrap();
    let moved = timers::schedule(&mut tx, &timer(tenant, "a", t0 + Duration::minutes(30)))
        .await
        .unwrap();
    assert_eq!(moved, a, "the pending timer moves; no second one");
    assert!(timers::cancel(&mut tx, tenant, "scheduled_send", "b", t0)
        .await
        .unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        timers::fire_due(&sb.pool, t0 + Duration::minutes(20), 100)
            .await
            .unwrap(),
        0
    );

    // Due: fires once, however many passes follow.
    assert_eq!(
        timers::fire_due(&sb.pool, t0 + Duration::minutes(31), 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        timers::fire_due(&sb.pool, t0 + Duration::hours(5), 100).await.unwrap(),
        0
    );
    assert_eq!(fired(&sb).await, [format!("timer:{a}")]);
    // Once fired, the same (kind, key) can be set again as a new timer.
    let mut tx = sb.pool.begin().await.unwrap();
    let again = timers::schedule(&mut tx, &timer(tenant, "a", t0 + Duration::hours(6)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_ne!(again, a);
    sb.cleanup().await;
}

#[tokio::test]
async fn timers_due_while_nothing_ran_fire_at_the_next_pass_each_once_across_three_replicas() {
    let sb = Sandbox::new().await;
    let tenant = fixtures::tenant(&sb.pool, "Acme", "acme").await;
    let t0 = OffsetDateTime::now_utc();
    let mut tx = sb.pool.begin().await.unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        // Shared ordering keys across timers, so replicas contend for the same outbox locks.
        let t = NewTimer {
            order_key: &keys[i % 7],
            ..timer(tenant, key, t0 - Duration::hours(2) + Duration::seconds(i as i64))
        };
        timers::schedule(&mut tx, &t).await.unwrap();
    }
    tx.commit().await.unwrap();

    // Three replicas pass at once, in small batches, until nothing is due.
    let replicas = (0..3).map(|_| {
        let pool = sb.pool.clone();
        tokio::spawn(async move {
            let mut total = 0;
            loop {
                let n = timers::fire_due(&pool, t0, 25).await.unwrap();
                if n == 0 {
                    return total;
                }
                total += n;
            }
        })
    });
    let counts: Vec<usize> = futures::future::join_all(replicas)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), 300, "{counts:?}");
    let ids = fired(&sb).await;
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (300, 300), "every timer queued once");
    sb.cleanup().await;
}
