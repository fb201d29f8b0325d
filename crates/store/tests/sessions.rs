//! Agents' sessions on an injected clock: a refresh token lives `ttl` from its issue, each
//! rotation starts a new one, a spent token presented again revokes the whole session, and
//! of two concurrent presentations of one token exactly one rotates.

use atende_store::sessions::{self, Rotation};
use atende_testkit::fixtures;
use atende_testkit::Sandbox;
use time::{Duration, OffsetDateTime};

fn token(n: u8) -> [u8; 32] {
    [n; 32]
}

async fn arrange() -> (Sandbox, uuid::Uuid, uuid::Uuid) {
    let sb = Sandbox::new().await;
    let tenant = fixtures::tenant(&sb.pool, "Acme", "acme").await;
    let service = fixtures::service(&sb.pool, tenant, "least_loaded").await;
    let agent = fixtures::agent(&sb.pool, tenant, "Ana", &[service], 3).await;
    (sb, tenant, agent)
}

#[tokio::test]
async fn a_session_renewed_within_each_tokens_lifetime_lives_on_and_an_idle_one_ends() {
    let (sb, tenant, agent) = arrange().await;
    let ttl = Duration::days(7);
    let t0 = OffsetDateTime::now_utc();
    let s = sessions::start(&sb.pool, tenant, agent, &token(1), t0 + ttl)
        .await
        .unwrap();

    // Renewed every six days for two months: every rotation succeeds.
    let mut now = t0;
    for n in 1..10u8 {
        now += Duration::days(6);
        let got = sessions::rotate(&sb.pool, &token(n), &token(n + 1), now + ttl, now)
            .await
            .unwrap();
        assert_eq!(
            got,
            Rotation::Rotated(s),
            "rotation {n} at day {}",
            (now - t0).whole_days()
        );
    }

    // Then left idle past the last token's lifetime: refused, and nothing is issued.
    let late = now + ttl + Duration::seconds(1);
    let got = sessions::rotate(&sb.pool, &token(10), &token(11), late + ttl, late)
        .await
        .unwrap();
    assert_eq!(got, Rotation::Refused);
    let issued: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE session_id = $1")
        .bind(s.id)
        .fetch_one(&sb.pool)
        .await
        .unwrap();
    assert_eq!(issued, 10, "one token per rotation, none for the refused one");
    sb.cleanup().await;
}

#[tokio::test]
async fn a_spent_token_presented_again_revokes_the_session_and_its_newest_token() {
    let (sb, tenant, agent) = arrange().await;
    let now = OffsetDateTime::now_utc();
    let later = now + Duration::days(7);
    let s = sessions::start(&sb.pool, tenant, agent, &token(1), later)
        .await
        .unwrap();
    let other = sessions::start(&sb.pool, tenant, agent, &token(50), later)
        .await
        .unwrap();
    assert_eq!(
        sessions::rotate(&sb.pool, &token(1), &token(2), later, now)
            .await
            .unwrap(),
        Rotation::Rotated(s)
    );

    // The copy of token 1 comes back: the session is revoked...
    assert_eq!(
        sessions::rotate(&sb.pool, &token(1), &token(3), later, now)
            .await
            .unwrap(),
        Rotation::Reused(s)
    );
    // ...so the legitimate holder's token 2 is dead too, and presenting 1 again changes nothing.
    assert_eq!(
        sessions::rotate(&sb.pool, &token(2), &token(4), later, now)
            .await
            .unwrap(),
        Rotation::Refused
    );
    assert_eq!(
        sessions::rotate(&sb.pool, &token(1), &token(5), later, now)
            .await
            .unwrap(),
        Rotation::Refused
    );
    // The agent's other session (another device) is untouched.
    assert_eq!(
        sessions::rotate(&sb.pool, &token(50), &token(51), later, now)
            .await
            .unwrap(),
        Rotation::Rotated(other)
    );
    let reason: Option<String> = sqlx::query_scalar("SELECT revoked_reason FROM agent_sessions WHERE id = $1")
        .bind(s.id)
        .fetch_one(&sb.pool)
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("reuse"));
    sb.cleanup().await;
}

#[tokio::test]
async fn of_concurrent_presentations_of_one_token_exactly_one_rotates() {
    let (sb, tenant, agent) = arrange().await;
    let now = OffsetDateTime::now_utc();
    let later = now + Duration::days(7);
    sessions::start(&sb.pool, tenant, agent, &token(1), later)
        .await
        .unwrap();

    let racers = (0..8u8).map(|n| {
        let pool = sb.pool.clone();
        tokio::spawn(async move { sessions::rotate(&pool, &token(1), &token(100 + n), later, now).await })
    });
    let outcomes: Vec<Rotation> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let rotated = outcomes.iter().filter(|o| matches!(o, Rotation::Rotated(_))).count();
    assert_eq!(rotated, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().any(|o| matches!(o, Rotation::Reused(_))),
        "the losers see a reuse: {outcomes:?}"
    );
    sb.cleanup().await;
}

#[tokio::test]
async fn logout_revokes_only_its_tenants_session_and_is_idempotent() {
    let (sb, tenant, agent) = arrange().await;
    let now = OffsetDateTime::now_utc();
    let later = now + Duration::days(7);
    let s = sessions::start(&sb.pool, tenant, agent, &token(1), later)
        .await
        .unwrap();

    let foreign = fixtures::tenant(&sb.pool, "Other", "other").await;
    assert!(
        !sessions::revoke(&sb.pool, foreign, s.id, now).await.unwrap(),
        "another tenant's id"
    );
    assert!(sessions::revoke(&sb.pool, tenant, s.id, now).await.unwrap());
    assert!(
        !sessions::revoke(&sb.pool, tenant, s.id, now).await.unwrap(),
        "already revoked"
    );
    assert_eq!(
        sessions::rotate(&sb.pool, &token(1), &token(2), later, now)
            .await
            .unwrap(),
        Rotation::Refused
    );
    sb.cleanup().await;
}
