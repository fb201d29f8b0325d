//! The real binary: `atende all` starts with no config file (environment only, as in a
//! container), every role's gRPC server reports `grpc.health.v1` SERVING, and SIGTERM makes
//! it report NOT_SERVING, drain and exit 0.

mod common;

use std::process::Command;
use std::time::Duration;

use atende_testkit::Sandbox;
use common::{ready_roles, spawn_all, ROLES};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn client(addr: &str) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    HealthClient::new(channel)
}

async fn health(addr: &str) -> ServingStatus {
    let mut client = client(addr).await;
    let status = client
        .check(HealthCheckRequest { service: String::new() })
        .await
        .expect("health check")
        .into_inner()
        .status;
    ServingStatus::try_from(status).expect("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atende_all_starts_without_a_config_file_reports_serving_and_stops_cleanly_on_sigterm() {
    let sb = Sandbox::new().await;
    let mut child = spawn_all(&sb);

    let ready = ready_roles(&mut child);
    let mut names: Vec<_> = ready.iter().map(|r| r.role.as_str()).collect();
    names.sort();
    let mut expected = ROLES.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    for r in &ready {
        assert_eq!(
            health(&r.grpc).await,
            ServingStatus::Serving,
            "{} on {}",
            r.role,
            r.grpc
        );
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // During the grace period health turns NOT_SERVING before the servers stop.
    let session = ready.iter().find(|r| r.role == "session").unwrap();
    let client = client(&session.grpc).await;
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
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .expect("wait");
    assert!(turned, "the server stopped before reporting NOT_SERVING");
    assert!(exit.success(), "exit status {exit:?}");
    sb.cleanup().await;
}

#[test]
fn check_config_accepts_the_development_defaults_and_names_a_bad_key() {
    let ok = Command::new(env!("CARGO_BIN_EXE_atende"))
        .arg("check-config")
        .env_remove("ATENDE_CONFIG")
        .env("ATENDE__SECURITY__MODE", "development")
        .output()
        .expect("run check-config");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("configuration is valid"));

    let bad = Command::new(env!("CARGO_BIN_EXE_atende"))
        .arg("check-config")
        .env_remove("ATENDE_CONFIG")
        .env("ATENDE__SECURITY__MODE", "development")
        .env("ATENDE__REDIS__URL", "http://not-redis")
        .output()
        .expect("run check-config");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("redis.url"), "{err}");
}

#[test]
fn outside_development_mode_atende_refuses_to_start_with_missing_or_known_secrets() {
    // No secrets at all: the first one missing is named.
    let out = Command::new(env!("CARGO_BIN_EXE_atende"))
        .arg("all")
        .env_remove("ATENDE_CONFIG")
        .env_remove("ATENDE__SECURITY__MODE")
        .output()
        .expect("run atende all");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gateway.jwt_secret") && err.contains("required"), "{err}");

    // The secret that earlier defaults shipped is refused as publicly known.
    let out = Command::new(env!("CARGO_BIN_EXE_atende"))
        .arg("router")
        .env_remove("ATENDE_CONFIG")
        .env_remove("ATENDE__SECURITY__MODE")
        .env(
            "ATENDE__GATEWAY__JWT_SECRET",
            "change-me-in-production-this-is-only-for-local-use",
        )
        .output()
        .expect("run atende router");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gateway.jwt_secret") && err.contains("publicly known"),
        "{err}"
    );
}
