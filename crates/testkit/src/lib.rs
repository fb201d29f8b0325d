//! Test support shared by service and end-to-end tests.
//!
//! - [`Sandbox`] isolates one test: its own Postgres database (copied from a migrated
//!   template, so it is fast), its own NATS subject/stream prefix and Redis key namespace,
//!   and a [`Config`](atende_config::Config) pointing every role at them with port 0. Drop
//!   or [`Sandbox::cleanup`] removes what it created.
//! - [`fake_graph`] a local fake of Meta's Graph API that enforces the send formats.
//! - [`whatsapp`] builders of signed webhook bodies exactly as Meta sends them.
//! - [`fixtures`] the rows tests start from (tenant, service, WhatsApp channel, contact,
//!   conversation, agent, outbound message) and in-process roles to boot and stop.
//! - [`wait_until`] polls a condition with a deadline (tests never sleep to synchronise).

/// The fake Graph API lives in its own crate (the CLI serves it too); tests reach it here.
pub use atende_fake_graph as fake_graph;
pub mod fixtures;
pub mod nats_server;
pub mod proxy;
pub mod sandbox;
pub mod smtp_server;
pub mod whatsapp;

pub use sandbox::Sandbox;

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// The schemathesis CLI the API contract test runs: `ATENDE_TEST_SCHEMATHESIS` (written by
/// `deploy/local/infra.sh up`), else the checkout's `.infra/venv`, else `schemathesis` on PATH.
pub fn schemathesis() -> String {
    if let Ok(p) = std::env::var("ATENDE_TEST_SCHEMATHESIS") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.infra/venv/bin/schemathesis");
    if std::path::Path::new(venv).exists() {
        return venv.into();
    }
    "schemathesis".into()
}

/// The grpcurl binary tests read gRPC refusals with, as an outside client would:
/// `ATENDE_TEST_GRPCURL` (written by `deploy/local/infra.sh up`), else the checkout's
/// `.infra/venv`, else `grpcurl` on PATH.
pub fn grpcurl() -> String {
    if let Ok(p) = std::env::var("ATENDE_TEST_GRPCURL") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.infra/venv/bin/grpcurl");
    if std::path::Path::new(venv).exists() {
        return venv.into();
    }
    "grpcurl".into()
}
