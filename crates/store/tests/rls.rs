//! The second wall: the services' role sees and writes only the tenant its transaction names,
//! whatever a query forgets to filter; with no tenant named it sees nothing.

use atende_testkit::fixtures;
use atende_testkit::Sandbox;
use secrecy::ExposeSecret;
use sqlx::Connection;
use uuid::Uuid;

async fn count(tx: &mut sqlx::PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap()
}

#[tokio::test]
async fn a_transaction_scoped_to_one_tenant_sees_and_writes_nothing_of_another() {
    // Arrange: two tenants with a contact each, written by the schema owner.
    let sb = Sandbox::new().await;
    let a = fixtures::tenant(&sb.pool, "A", "tenant-a").await;
    let b = fixtures::tenant(&sb.pool, "B", "tenant-b").await;
    let contact_a = fixtures::contact(&sb.pool, a, "Alice").await;
    fixtures::contact(&sb.pool, b, "Bob").await;
    let app = atende_store::connect_as(sb.config.postgres.url.expose_secret(), 2, &sb.config.postgres.app_role)
        .await
        .unwrap();

    // Act: tenant B's transaction runs queries that forget their tenant filter.
    let mut tx = app.begin().await.unwrap();
    atende_store::scope_tenant(&mut tx, b).await.unwrap();
    let contacts = count(&mut tx, "SELECT count(*) FROM contacts").await;
    let tenants = count(&mut tx, "SELECT count(*) FROM tenants").await;
    let updated = sqlx::query("UPDATE contacts SET name = 'hijacked' WHERE id = $1")
        .bind(contact_a)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    let planted = sqlx::query("INSERT INTO contacts (id, tenant_id, name) VALUES ($1, $2, 'planted')")
        .bind(Uuid::now_v7())
        .bind(a)
        .execute(&mut *tx)
        .await;
    drop(tx);
    let mut platform = app.acquire().await.unwrap();
    let platform_wide = count(&mut platform, "SELECT count(*) FROM contacts").await;
    let mut nobody = sqlx::PgConnection::connect(sb.config.postgres.url.expose_secret())
        .await
        .unwrap();
    sqlx::query("SET ROLE atende_app").execute(&mut nobody).await.unwrap();
    let unscoped = count(&mut nobody, "SELECT count(*) FROM contacts").await;

    // Assert
    assert_eq!((contacts, tenants), (1, 1), "only B's rows are visible to B");
    assert_eq!(updated, 0, "A's contact is out of reach");
    let err = planted.expect_err("writing into A is refused");
    assert!(err.to_string().contains("row-level security"), "{err}");
    assert_eq!(platform_wide, 2, "platform-wide work (relay, sweeps) sees every tenant");
    assert_eq!(unscoped, 0, "a connection that named no tenant sees nothing");
    let name: String = sqlx::query_scalar("SELECT name FROM contacts WHERE id = $1")
        .bind(contact_a)
        .fetch_one(&sb.pool)
        .await
        .unwrap();
    assert_eq!(name, "Alice");
    drop(platform);
    app.close().await;
    nobody.close().await.ok();
    sb.cleanup().await;
}
