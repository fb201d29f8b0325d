//! `atende simulate` end to end through the built binary. Needs `simulate` wired into
//! `main.rs` as the `simulate` subcommand (`SimulateArgs` / `simulate::run`).

use std::process::Command;

fn atende(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_atende"))
        .args(args)
        .output()
        .expect("the atende binary runs")
}

/// The number after `"key":` in a one-line JSON object (the CLI crate has no JSON parser).
fn field(json: &str, key: &str) -> f64 {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    let rest = &json[at + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

#[test]
fn simulate_mmn_prints_one_json_object_close_to_erlang_c() {
    // Act
    let out = atende(&[
        "simulate",
        "mmn",
        "--erlangs",
        "48",
        "--agents",
        "55",
        "--aht-secs",
        "180",
        "--arrivals",
        "200000",
        "--seed",
        "3",
        "--json",
    ]);
    // Assert
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = stdout.trim();
    assert!(
        json.starts_with('{') && json.ends_with('}') && json.lines().count() == 1,
        "{json}"
    );
    assert!((field(json, "p_wait") - 0.239).abs() < 0.02, "{json}");
    for key in ["service_level_20s", "asa_secs", "abandon_rate", "occupancy"] {
        let v = field(json, key);
        assert!(v.is_finite() && v >= 0.0, "{key} in {json}");
    }
    assert!(field(json, "occupancy") <= 1.0 && field(json, "abandon_rate") == 0.0);
}

#[test]
fn simulate_mmn_with_patience_reports_abandonment() {
    let out = atende(&[
        "simulate",
        "mmn",
        "--erlangs",
        "48",
        "--agents",
        "50",
        "--aht-secs",
        "180",
        "--patience-secs",
        "120",
        "--arrivals",
        "50000",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json = String::from_utf8(out.stdout).unwrap();
    let abandon = field(&json, "abandon_rate");
    assert!(abandon > 0.02 && abandon < 0.08, "{json}");
}

#[test]
fn simulate_runs_a_scenario_file_as_a_table_or_json() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../sim/scenarios/example.toml");
    let table = atende(&["simulate", scenario]);
    assert!(table.status.success(), "{}", String::from_utf8_lossy(&table.stderr));
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("P(wait)") && text.contains("least_loaded"), "{text}");

    let json = atende(&["simulate", scenario, "--json"]);
    assert!(json.status.success());
    let json = String::from_utf8(json.stdout).unwrap();
    assert!((field(&json, "p_wait") - 0.239).abs() < 0.03, "{json}");
}

#[test]
fn simulate_refuses_a_missing_scenario_file() {
    let out = atende(&["simulate", "/nonexistent/scenario.toml"]);
    assert!(!out.status.success());
}
