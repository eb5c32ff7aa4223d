//! `cairn bench` smoke test: a short run of every mode completes and prints
//! `RESULT` lines with sane values. It fails only on a collapse (more than
//! 3× below the floor in `BASELINE`, set from the slowest medians measured
//! on the loaded 2-core CI machine, see BENCHMARKS.md), never on ordinary
//! noise: it is a regression guard, not a benchmark.

use std::collections::HashMap;
use std::process::Command;

/// Below the slowest single runs seen on the shared 2-core machine under a
/// load average of 8–22 (BENCHMARKS.md, "PostgreSQL group commit": SQLite
/// seq 82–429 orch/s, fanout 4,541–13,040 act/s), for `-n 200 --runs 1`
/// (SQLite, Rust guests, hot cache) while the other e2e tests run beside
/// it: seq orchestrations/s, fanout activities/s, latency median ms. A run
/// fails below a third of the rates, or above three times the latency.
const BASELINE: [(&str, &str, f64); 3] = [
    ("seq", "orch_per_sec", 60.0),
    ("fanout", "act_per_sec", 1_500.0),
    ("latency", "median_ms", 10.0),
];

fn results(args: &[&str]) -> Vec<HashMap<String, String>> {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run cairn bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cairn bench {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn number(r: &HashMap<String, String>, key: &str) -> f64 {
    let v = r.get(key).unwrap_or_else(|| panic!("RESULT without {key}: {r:?}"));
    let x: f64 = v.parse().unwrap_or_else(|e| panic!("{key}={v}: {e}"));
    assert!(x.is_finite() && x > 0.0, "{key}={v}");
    x
}

#[test]
fn bench_smoke_every_mode_prints_sane_results() {
    let lines = results(&["--mode", "all", "-n", "200", "--runs", "1"]);
    assert_eq!(lines.len(), 3, "one RESULT line per mode: {lines:?}");
    for (mode, key, floor) in BASELINE {
        let r = lines
            .iter()
            .find(|r| r.get("mode").map(String::as_str) == Some(mode))
            .unwrap_or_else(|| panic!("no RESULT for {mode}: {lines:?}"));
        assert_eq!(r["peer"], "cairn");
        assert_eq!(r["n"], "200");
        assert_eq!(r["via"], "inproc");
        assert_eq!(r["lang"], "rust");
        number(r, "secs");
        let x = number(r, key);
        if key == "median_ms" {
            assert!(x <= floor * 3.0, "{mode}: {key}={x}, more than 3× the baseline {floor}");
        } else {
            assert!(
                x >= floor / 3.0,
                "{mode}: {key}={x}, more than 3× below the baseline {floor}"
            );
        }
    }
}

#[test]
fn bench_smoke_over_http() {
    let lines = results(&["--mode", "seq", "-n", "100", "--runs", "1", "--via", "http"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let r = &lines[0];
    assert_eq!(r["via"], "http");
    assert_eq!(r["burst"], "1");
    let x = number(r, "orch_per_sec");
    assert!(
        x >= 150.0 / 3.0 / 2.0,
        "seq over HTTP: {x} orchestrations/s is a collapse"
    );
}

/// The entity modes and the replay mode print their RESULT lines with the
/// fields they measure (no rate floors: the numbers live in BENCHMARKS.md).
#[test]
fn bench_smoke_entity_and_replay_modes() {
    for (mode, key) in [
        ("signals", "ops_per_sec"),
        ("entities", "ops_per_sec"),
        ("replay", "median_ms"),
    ] {
        let lines = results(&["--mode", mode, "-n", "200", "--runs", "1"]);
        assert_eq!(lines.len(), 1, "{mode}: {lines:?}");
        assert_eq!(lines[0]["mode"], mode);
        assert!(number(&lines[0], key) > 0.0, "{mode}: {:?}", lines[0]);
    }
}
