//! The real binary: `atende all` starts with no config file (environment only, as in a
//! container), every role's gRPC server reports `grpc.health.v1` SERVING, and SIGTERM makes
//! it report NOT_SERVING, drain and exit 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use atende_testkit::Sandbox;
use secrecy::ExposeSecret;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const ROLES: [&str; 6] = ["router", "session", "channel-adapter", "gateway", "broadcast", "scheduler"];

fn spawn_all(sb: &Sandbox) -> Child {
    let cfg = &sb.config;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atende"));
    cmd.arg("all")
        .env_remove("ATENDE_CONFIG")
        .env("ATENDE__POSTGRES__URL", cfg.postgres.url.expose_secret())
        .env("ATENDE__REDIS__URL", cfg.redis.url.expose_secret())
        .env("ATENDE__NATS__URL", &cfg.nats.url)
        .env("ATENDE__NAMESPACE__PREFIX", &sb.id)
        .env("ATENDE__SHUTDOWN__GRACE_MS", "200")
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
    ] {
        cmd.env(format!("ATENDE__{key}"), "127.0.0.1:0");
    }
    cmd.spawn().expect("spawn atende all")
}

/// Reads the JSON log until every role logged "role ready"; returns (role, grpc address).
fn ready_roles(child: &mut Child) -> Vec<(String, String)> {
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
    while ready.len() < ROLES.len() {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("role ready log lines within 60 s");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if v["message"] == "role ready" {
            let f = &v["fields"];
            ready.push((f["role"].as_str().unwrap().to_string(), f["grpc"].as_str().unwrap().to_string()));
        }
    }
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    ready
}

async fn client(addr: &str) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.expect("connect");
    HealthClient::new(channel)
}

async fn health(addr: &str) -> ServingStatus {
    let mut client = client(addr).await;
    let status = client.check(HealthCheckRequest { service: String::new() }).await.expect("health check").into_inner().status;
    ServingStatus::try_from(status).expect("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atende_all_starts_without_a_config_file_reports_serving_and_stops_cleanly_on_sigterm() {
    let sb = Sandbox::new().await;
    let mut child = spawn_all(&sb);

    let ready = ready_roles(&mut child);
    let mut names: Vec<_> = ready.iter().map(|(r, _)| r.as_str()).collect();
    names.sort();
    let mut expected = ROLES.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    for (role, addr) in &ready {
        assert_eq!(health(addr).await, ServingStatus::Serving, "{role} on {addr}");
    }

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    // During the grace period health turns NOT_SERVING before the servers stop.
    let (_, session_addr) = ready.iter().find(|(r, _)| r == "session").unwrap();
    let client = client(session_addr).await;
    let turned = atende_testkit::wait_until("session NOT_SERVING after SIGTERM", Duration::from_secs(5), || {
        let mut c = client.clone();
        async move {
            match c.check(HealthCheckRequest { service: String::new() }).await {
                Ok(r) => (r.into_inner().status == ServingStatus::NotServing as i32).then_some(true),
                Err(_) => Some(false),
            }
        }
    })
    .await;
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().expect("wait");
    assert!(turned, "the server stopped before reporting NOT_SERVING");
    assert!(exit.success(), "exit status {exit:?}");
    sb.cleanup().await;
}
