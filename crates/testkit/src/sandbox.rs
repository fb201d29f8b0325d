//! Per-test isolation against the real Postgres, Redis and NATS named by the usual
//! `ATENDE__…__URL` variables (the Makefile exports them; defaults are the local ones).

use std::time::Duration;

use atende_config::Config;
use secrecy::ExposeSecret;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

pub struct Sandbox {
    /// Unique per test: database name suffix, NATS prefix and Redis namespace.
    pub id: String,
    pub config: Config,
    pub pool: PgPool,
    admin_url: String,
    db_name: String,
}

/// Name of the template database for the current set of migrations.
fn template_name() -> String {
    let mut h: u64 = 1469598103934665603;
    for m in atende_store::MIGRATOR.iter() {
        for b in m.checksum.iter().chain(m.description.as_bytes()) {
            h = (h ^ *b as u64).wrapping_mul(1099511628211);
        }
    }
    format!("atende_tpl_{h:016x}")
}

fn replace_db(url: &str, db: &str) -> String {
    // postgres://user@host:port/dbname?params → swap the path.
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..path_start], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Sandbox {
    pub async fn new() -> Sandbox {
        atende_telemetry::init_for_tests();
        // Tests run in development mode: the known development secrets, nothing to configure.
        let mut env: Vec<(String, String)> = std::env::vars().collect();
        env.push(("ATENDE__SECURITY__MODE".into(), "development".into()));
        let mut base = Config::load_with_env(None, env).expect("test configuration");
        let id = format!("t{}", &Uuid::new_v4().simple().to_string()[..12]);
        let admin_url = base.postgres.url.expose_secret().to_string();
        let template = template_name();
        ensure_template(&admin_url, &template).await;
        let db_name = format!("atende_{id}");
        let mut admin = PgConnection::connect(&admin_url).await.expect("connect to postgres");
        admin
            .execute(format!("CREATE DATABASE {db_name} TEMPLATE {template}").as_str())
            .await
            .expect("create test database");
        let url = replace_db(&admin_url, &db_name);
        base.postgres.url = url.clone().into();
        base.postgres.max_connections = 8;
        base.namespace.prefix = id.clone();
        for addr in [
            &mut base.gateway.http_addr,
            &mut base.gateway.grpc_addr,
            &mut base.channel_adapter.http_addr,
            &mut base.channel_adapter.grpc_addr,
            &mut base.session.grpc_addr,
            &mut base.router.grpc_addr,
            &mut base.broadcast.grpc_addr,
            &mut base.scheduler.grpc_addr,
        ] {
            *addr = "127.0.0.1:0".parse().unwrap();
        }
        base.shutdown.grace_ms = 0;
        base.shutdown.drain_timeout_ms = 3000;
        let pool = atende_store::connect(&url, 4).await.expect("connect to test database");
        Sandbox {
            id,
            config: base,
            pool,
            admin_url,
            db_name,
        }
    }

    /// A gRPC channel to `addr` (`host:port` or a URL) carrying the roles' internal credential,
    /// as another role would call it.
    pub fn grpc(&self, addr: impl std::fmt::Display) -> atende_runtime::AuthedChannel {
        let addr = addr.to_string();
        let url = if addr.starts_with("http") {
            addr
        } else {
            format!("http://{addr}")
        };
        atende_runtime::auth::channel(&url, atende_runtime::ClientAuth::internal(&self.config)).expect("grpc url")
    }

    /// Waits until nothing is in flight: every outbox row published and every consumer of this
    /// namespace's streams with nothing pending or unacknowledged, on two reads in a row — one
    /// read looks at the outbox and the consumers one after the other, so a message handed
    /// from one to the other in between could slip past it, but not past the next read. After
    /// it, "exactly N" assertions mean exactly, not "at least, so far".
    pub async fn wait_quiet(&self, timeout: Duration) {
        let bus = atende_bus::Bus::connect(&self.config.nats.url, &self.id)
            .await
            .expect("nats");
        let deadline = tokio::time::Instant::now() + timeout;
        let mut calm = 0;
        while calm < 2 {
            match busy(&bus, &self.pool).await {
                None => calm += 1,
                Some(what) => {
                    calm = 0;
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the platform is not quiet after {timeout:?}: {what}"
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
        }
    }

    /// A Redis connection for assertions.
    pub async fn redis(&self) -> redis::aio::ConnectionManager {
        let client = redis::Client::open(self.config.redis.url.expose_secret()).expect("redis url");
        redis::aio::ConnectionManager::new(client)
            .await
            .expect("connect to redis")
    }

    /// Drops the database, this namespace's streams and Redis keys.
    pub async fn cleanup(self) {
        self.pool.close().await;
        if let Ok(bus) = atende_bus::Bus::connect(&self.config.nats.url, &self.id).await {
            bus.delete_streams().await;
        }
        let mut redis = self.redis().await;
        let pattern = format!("{}:*", self.id);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut redis)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut redis).await;
        }
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db_name).as_str())
                .await;
        }
    }
}

/// What is still in flight (`None`: nothing): an outbox row waiting, or a consumer holding
/// or having pending messages.
async fn busy(bus: &atende_bus::Bus, pool: &PgPool) -> Option<String> {
    use futures::TryStreamExt;
    match atende_store::outbox::unpublished_count(pool).await {
        Ok(0) => {}
        Ok(n) => return Some(format!("{n} outbox rows unpublished")),
        Err(e) => return Some(format!("outbox unreadable: {e}")),
    }
    for kind in atende_bus::StreamKind::ALL {
        let Ok(stream) = bus.js.get_stream(bus.subjects.stream_name(kind)).await else {
            continue;
        };
        let names: Vec<String> = match stream.consumer_names().try_collect().await {
            Ok(n) => n,
            Err(e) => return Some(format!("consumers of {kind:?} unreadable: {e}")),
        };
        for name in names {
            match stream.consumer_info(&name).await {
                Ok(info) if info.num_pending > 0 || info.num_ack_pending > 0 => {
                    return Some(format!(
                        "consumer {name}: {} pending, {} unacknowledged",
                        info.num_pending, info.num_ack_pending
                    ))
                }
                Ok(_) => {}
                Err(e) => return Some(format!("consumer {name} unreadable: {e}")),
            }
        }
    }
    None
}

/// Creates the migrated template once per migration set, under an advisory lock so parallel
/// test processes do not race.
async fn ensure_template(admin_url: &str, template: &str) {
    let mut admin = PgConnection::connect(admin_url).await.expect("connect to postgres");
    admin.execute("SELECT pg_advisory_lock(8217311)").await.expect("lock");
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(template)
        .fetch_one(&mut admin)
        .await
        .expect("query pg_database");
    if !exists {
        let building = format!("{template}_build");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)").as_str())
            .await
            .expect("drop");
        admin
            .execute(format!("CREATE DATABASE {building}").as_str())
            .await
            .expect("create template");
        {
            let pool = atende_store::connect(&replace_db(admin_url, &building), 2)
                .await
                .expect("connect template");
            atende_store::migrate(&pool).await.expect("migrate template");
            pool.close().await;
        }
        // Renamed only once complete, so a crash mid-build never leaves a half template.
        admin
            .execute(format!("ALTER DATABASE {building} RENAME TO {template}").as_str())
            .await
            .expect("rename template");
    }
    admin
        .execute("SELECT pg_advisory_unlock(8217311)")
        .await
        .expect("unlock");
    let _ = tokio::time::timeout(Duration::from_secs(5), admin.close()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_swapped_in_a_url() {
        assert_eq!(replace_db("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            replace_db("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(replace_db("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
    }

    #[tokio::test]
    async fn a_sandbox_gets_a_migrated_database_of_its_own_and_removes_it() {
        let sb = Sandbox::new().await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
            .fetch_one(&sb.pool)
            .await
            .unwrap();
        assert_eq!(n, 0);
        let name = sb.db_name.clone();
        let admin_url = sb.admin_url.clone();
        sb.cleanup().await;
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(!exists);
    }
}
