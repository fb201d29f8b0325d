//! Postgres: the source of truth for everything that must survive.
//!
//! Layout: one module per table group, each a set of plain functions over an executor
//! (a pool or an open transaction), so a service composes several writes into one
//! transaction. Migrations are embedded (`MIGRATOR`) and run by `atende migrate` or at start.
//!
//! Queries are checked at runtime (no `DATABASE_URL` at build time); every one carries
//! `tenant_id`.

pub mod admin;
pub mod conversations;
pub mod desk;
pub mod feed;
pub mod legs;
pub mod mail;
pub mod missed;
pub mod offers;
pub mod outbox;
pub mod queue;
pub mod report;
pub mod routing;
pub mod sealed;
pub mod sessions;
pub mod templates;
pub mod timers;
pub mod workspace;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub use sqlx::{PgConnection, Postgres, Transaction};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Db(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database url")]
    Url(#[source] sqlx::Error),
    #[error("sealed secret")]
    Sealed(#[from] sealed::SealError),
}

impl StoreError {
    /// A unique-constraint violation (someone else got there first).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
    /// A value the database cannot hold (SQLSTATE class 22, data exception: a NUL character
    /// in text, a string longer than its column, a number out of range…): the caller's input
    /// is at fault, and retrying it would fail the same way.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(e)) if e.code().is_some_and(|c| c.starts_with("22")))
    }
    /// Worth retrying: the connection or the pool failed, not the statement.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Db(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Protocol(_)
            )
        ) || matches!(self, StoreError::Db(sqlx::Error::Database(e)) if e.code().is_some_and(|c| c == "40001" || c == "40P01"))
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Opens a pool as the login itself (the owner of the schema: migrations, tests' own
/// assertions). Services use [`connect_as`].
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    let opts: PgConnectOptions = url.parse().map_err(StoreError::Url)?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await?;
    Ok(pool)
}

/// Opens a pool whose every connection switches to `role` (row-level security applies to it:
/// it owns nothing and is no superuser) and starts platform-wide (`atende.tenant_id = '*'`).
/// Work for one tenant narrows its transaction with [`scope_tenant`]. An empty `role` keeps
/// the login's own role.
pub async fn connect_as(url: &str, max_connections: u32, role: &str) -> Result<PgPool> {
    let opts: PgConnectOptions = url.parse().map_err(StoreError::Url)?;
    let role = role.to_string();
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            let role = role.clone();
            Box::pin(async move {
                if !role.is_empty() {
                    sqlx::query("SELECT set_config('role', $1, false)")
                        .bind(&role)
                        .execute(&mut *conn)
                        .await?;
                }
                sqlx::query("SELECT set_config('atende.tenant_id', '*', false)")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect_with(opts)
        .await?;
    Ok(pool)
}

/// Narrows the rest of the transaction to `tenant`: row-level security hides every other
/// tenant's rows and refuses writes into them (a second wall behind each query's own
/// `tenant_id`). Ends with the transaction.
pub async fn scope_tenant(tx: &mut PgConnection, tenant: uuid::Uuid) -> Result<()> {
    sqlx::query("SELECT set_config('atende.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Converts a stored timestamp to the domain's milliseconds.
pub fn to_millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_millis(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
