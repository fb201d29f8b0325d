//! The Helm chart, checked by the real Helm CLI and the Kubernetes schemas (offline): it
//! lints strictly; it refuses to render without the Secret unless development mode is asked
//! for; rendered with the default values (plus the Secret's name), with development mode, and
//! with a production-like values file, every manifest validates against Kubernetes 1.30, and
//! each role's Deployment carries what operators rely on.

use std::path::PathBuf;
use std::process::{Command, Output};

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../helm/atende")
}

/// A tool from `.infra` (`make test` writes the paths into the environment).
fn tool(env: &str, fallback: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../.infra")
            .join(fallback)
            .to_string_lossy()
            .into_owned()
    })
}

fn helm(args: &[&str]) -> Output {
    let home = std::env::temp_dir().join(format!("atende-helm-{}", std::process::id()));
    Command::new(tool("ATENDE_TEST_HELM", "tools/helm/helm"))
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("helm runs (deploy/local/infra.sh up installs it)")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Renders the chart with `extra` arguments and validates every manifest; the manifests.
fn render_and_validate(name: &str, extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["template", "rel", chart.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = helm(&args);
    assert!(out.status.success(), "{name}: {}", text(&out));
    let manifests = String::from_utf8(out.stdout).unwrap();
    let file = std::env::temp_dir().join(format!("atende-chart-{}-{name}.yaml", std::process::id()));
    std::fs::write(&file, &manifests).unwrap();
    let check = Command::new(tool("ATENDE_TEST_KUBE_VALIDATE", "venv/bin/kubernetes-validate"))
        .args(["-k", "1.30", "--strict", "--quiet"])
        .arg(&file)
        .output()
        .expect("kubernetes-validate runs (deploy/local/infra.sh up installs it)");
    let _ = std::fs::remove_file(&file);
    assert!(check.status.success(), "{name}: {}", text(&check));
    manifests
}

fn count(manifests: &str, kind: &str) -> usize {
    manifests.lines().filter(|l| *l == format!("kind: {kind}")).count()
}

/// What every role's Deployment must carry.
fn assert_deployments(manifests: &str, roles: usize) {
    assert_eq!(count(manifests, "Deployment"), roles);
    assert_eq!(count(manifests, "Service"), roles);
    for needle in ["checksum/config:", "startupProbe:", "livenessProbe:", "readinessProbe:"] {
        assert_eq!(manifests.matches(needle).count(), roles, "{needle} in every Deployment");
    }
    // Every pod, the migration job's included: non-root, read-only, no capability.
    let pods = roles + count(manifests, "Job");
    for needle in ["readOnlyRootFilesystem: true", "runAsNonRoot: true", "- ALL"] {
        assert_eq!(manifests.matches(needle).count(), pods, "{needle} in every pod");
    }
    // Longer than the shutdown delay (0.5 s) plus the drain (10 s).
    assert_eq!(manifests.matches("terminationGracePeriodSeconds: 20").count(), roles);
    assert_eq!(count(manifests, "Secret"), 0, "the chart never carries a secret value");
}

#[test]
fn the_chart_lints_strictly() {
    let out = helm(&[
        "lint",
        "--strict",
        "--set",
        "secrets.existingSecret=atende",
        chart().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn without_the_secret_the_chart_refuses_to_render_unless_in_development_mode() {
    let out = helm(&["template", "rel", chart().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("secrets.existingSecret must name a Secret"),
        "{}",
        text(&out)
    );

    let dev = render_and_validate("development", &["--set", "development=true"]);
    assert!(dev.contains(r#"ATENDE__SECURITY__MODE: "development""#));
    assert!(!dev.contains("secretKeyRef"), "development mode reads no Secret");
}

#[test]
fn the_default_values_render_valid_manifests_for_every_role() {
    let m = render_and_validate("default", &["--set", "secrets.existingSecret=atende-secrets"]);
    assert_deployments(&m, 6);
    assert!(m.contains(r#"ATENDE__SECURITY__MODE: "production""#));
    assert_eq!(count(&m, "Job"), 1, "the migration hook");
    assert!(m.contains("helm.sh/hook: pre-install,pre-upgrade"));
    assert_eq!(count(&m, "NetworkPolicy"), 6);
    assert_eq!(count(&m, "Ingress"), 0, "optional, off by default");
    for key in [
        "jwt-secret",
        "grpc-internal-token",
        "crypto-key",
        "postgres-url",
        "redis-url",
    ] {
        assert!(m.contains(&format!("key: {key}")), "{key} comes from the Secret");
    }
}

#[test]
fn a_production_like_release_renders_valid_manifests() {
    let values = chart().join("ci/production-values.yaml");
    let m = render_and_validate("production", &["-f", values.to_str().unwrap()]);
    assert_deployments(&m, 6);
    assert_eq!(count(&m, "HorizontalPodAutoscaler"), 2);
    assert_eq!(count(&m, "PodDisruptionBudget"), 6);
    assert_eq!(count(&m, "Ingress"), 1);
    assert!(m.contains("key: nats-url"), "NATS credentials from the Secret");
    assert!(m.contains(r#"ATENDE__TELEMETRY__OTLP_ENDPOINT: "http://otel-collector.observability:4317""#));
}
