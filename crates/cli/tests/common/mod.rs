//! Spawning the real `atende all` against a sandbox and reading its role addresses from the
//! JSON log.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use atende_testkit::Sandbox;
use secrecy::ExposeSecret;

pub const ROLES: [&str; 6] = [
    "router",
    "session",
    "channel-adapter",
    "gateway",
    "broadcast",
    "scheduler",
];

pub fn spawn_all(sb: &Sandbox) -> Child {
    spawn_all_with(sb, &[])
}

/// As [`spawn_all`], with extra environment variables.
pub fn spawn_all_with(sb: &Sandbox, extra: &[(&str, &str)]) -> Child {
    spawn_role_with(sb, "all", extra)
}

/// `atende <role>` (or `all`) against the sandbox, every address on a free port unless
/// `extra` says otherwise.
pub fn spawn_role_with(sb: &Sandbox, role: &str, extra: &[(&str, &str)]) -> Child {
    let cfg = &sb.config;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atende"));
    cmd.arg(role)
        .env_remove("ATENDE_CONFIG")
        .env("ATENDE__SECURITY__MODE", "development")
        .env("ATENDE__POSTGRES__URL", cfg.postgres.url.expose_secret())
        .env("ATENDE__REDIS__URL", cfg.redis.url.expose_secret())
        .env("ATENDE__NATS__URL", &cfg.nats.url)
        .env("ATENDE__NAMESPACE__PREFIX", &sb.id)
        .env("ATENDE__SHUTDOWN__GRACE_MS", "200")
        // Messages held by a killed consumer come back after this.
        .env("ATENDE__NATS__ACK_WAIT_MS", "2000")
        .env("ATENDE__TELEMETRY__LOG_LEVEL", "info")
        .env("RUST_LOG", "")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for key in [
        "GATEWAY__HTTP_ADDR",
        "GATEWAY__GRPC_ADDR",
        "CHANNEL_ADAPTER__HTTP_ADDR",
        "CHANNEL_ADAPTER__GRPC_ADDR",
        "SESSION__GRPC_ADDR",
        "ROUTER__GRPC_ADDR",
        "BROADCAST__GRPC_ADDR",
        "SCHEDULER__GRPC_ADDR",
        "TELEMETRY__METRICS_ADDR",
    ] {
        cmd.env(format!("ATENDE__{key}"), "127.0.0.1:0");
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn atende all")
}

pub struct Ready {
    pub role: String,
    pub grpc: String,
    pub http: Option<String>,
}

/// Reads the JSON log until every role logged "role ready".
pub fn ready_roles(child: &mut Child) -> Vec<Ready> {
    ready_count(child, ROLES.len())
}

/// Reads the JSON log until `n` roles logged "role ready".
pub fn ready_count(child: &mut Child, n: usize) -> Vec<Ready> {
    ready_until(child, n, false).0
}

/// Every role ready, and the address `/metrics` listens on.
#[allow(dead_code)] // not every test binary scrapes
pub fn ready_with_metrics(child: &mut Child) -> (Vec<Ready>, String) {
    let (ready, metrics) = ready_until(child, ROLES.len(), true);
    (ready, metrics.expect("metrics ready"))
}

fn ready_until(child: &mut Child, n: usize, metrics: bool) -> (Vec<Ready>, Option<String>) {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut ready = Vec::new();
    let mut metrics_addr = None;
    while ready.len() < n || (metrics && metrics_addr.is_none()) {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("role ready log lines within 60 s");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["message"] == "metrics ready" {
            metrics_addr = v["fields"]["metrics"].as_str().map(str::to_string);
        }
        if v["message"] == "role ready" {
            let f = &v["fields"];
            let http = f["http"]
                .as_str()
                .and_then(|h| h.strip_prefix("Some("))
                .map(|h| h.trim_end_matches(')').to_string());
            ready.push(Ready {
                role: f["role"].as_str().unwrap().to_string(),
                grpc: f["grpc"].as_str().unwrap().to_string(),
                http,
            });
        }
    }
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (ready, metrics_addr)
}

/// Kills the process it holds when dropped, so a test that fails half-way leaves no `atende`
/// running; `take` it back to stop it gracefully.
#[allow(dead_code)] // not every test binary uses it
pub struct Reaper(pub Option<Child>);

impl Reaper {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child still held")
    }

    /// SIGTERM, then waits: true when the process stopped cleanly (exit 0).
    pub async fn stop(&mut self) -> bool {
        let mut child = self.0.take().expect("child still held");
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("wait task")
            .expect("wait")
            .success()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
