//! `cargo bench -p atende-router --bench route` — routing decisions per second with 100,
//! 1,000 and 10,000 agents beside the raw Redis EVALSHA rate, measured in the same run.
//! Redis comes from the usual configuration (`ATENDE__REDIS__URL`, default
//! redis://127.0.0.1:6379); keys go under a `bench-…` prefix and are removed afterwards.
//! `ATENDE_BENCH_DECISIONS` sets the decisions per row (default 20,000).

use std::sync::Arc;

use atende_router::bench::{bench_route, table, BenchSize};

fn main() {
    let cfg = atende_config::Config::load(None).expect("configuration");
    let decisions = std::env::var("ATENDE_BENCH_DECISIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let size = BenchSize {
        decisions,
        evalsha: decisions * 2,
        full_snapshot: decisions / 10,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let redis = atende_runtime::redis(&cfg).await.expect("redis");
        let prefix = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let presence = Arc::new(atende_capacity::Presence::new(redis, &prefix));
        let rows = bench_route(presence, &[100, 1_000, 10_000], size)
            .await
            .expect("benchmark");
        println!(
            "routing decisions per second (least_loaded, sequential, one connection, {decisions} decisions per row)\n"
        );
        print!("{}", table(&rows));
    });
}
