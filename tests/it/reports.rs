//! What the reports say, read as a reader would: the post-mortem draft's causal chain (the last
//! probe to pass and the event it waited on; for a miss, the probes still failing and the last
//! event concerning them, never an idle gap between unrelated events) and figures with their sign.

use std::path::Path;
use std::process::Command;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// Run a sample and return its report.
fn report(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let exp = Path::new(MANIFEST).join("experiments").join(args[0]);
    let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .arg("run")
        .arg(&exp)
        .args(&args[1..])
        .arg("-q")
        .arg("--runs-dir")
        .arg(dir.path().join("runs"))
        .arg("--lessons-dir")
        .arg(dir.path().join("lessons"))
        .output()
        .unwrap();
    assert!(
        [0, 4].contains(&out.status.code().unwrap()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("report.md").exists())
        .unwrap();
    std::fs::read_to_string(run.join("report.md")).unwrap()
}

fn root_cause(report: &str) -> &str {
    let start =
        report.find("### Root cause\n\n").expect("a root cause") + "### Root cause\n\n".len();
    &report[start..start + report[start..].find("\n\n").unwrap()]
}

#[test]
fn a_missed_region_failover_names_the_probes_still_failing_and_the_ttl_that_held_them() {
    let r = report(&["region-failover.yaml", "--set", "sim.dns[0].ttl=1h"]);
    let rc = root_cause(&r);
    assert!(rc.contains("recovery was gated by `api-available`, `served-from-dr`, still failing at the 20m deadline"), "{rc}");
    assert!(
        rc.contains("The last environment event concerning `api-available`, `served-from-dr` was at +1m2s: route53 api.example.com: health check failed 3 times (interval 30s), primary marked unhealthy; authoritative answer is now us-west-2 (resolvers follow after TTL 1h)."),
        "{rc}"
    );
    assert!(!rc.contains("longest gap"), "{rc}");
    // The action item starts where recovery was stuck, not with the probe that did recover.
    assert!(
        r.contains("start with `api-available`, `served-from-dr`, still failing at the deadline"),
        "{r}"
    );
    assert!(!r.contains("start with `dr-writable`"), "{r}");
}

#[test]
fn a_passing_drill_names_the_last_probe_to_pass_and_the_event_it_waited_on() {
    let r = report(&["region-failover.yaml"]);
    let rc = root_cause(&r);
    assert!(
        rc.starts_with("Recovery was gated by `dr-writable`, the last recovery probe to pass (at +2m30s); the last event before it concerning what it measures was at +2m30s: db orders-db-dr: global failover complete: now the writable primary cluster."),
        "{rc}"
    );
    assert!(!rc.contains("longest gap"), "{rc}");
    // The newest surviving write was a second before the run started: a negative offset.
    assert!(r.contains("newest surviving write at -1s (before the run started), fault at +0s: 1s of writes lost"), "{r}");
    let r = report(&["pod-kill.yaml"]);
    let rc = root_cause(&r);
    assert!(rc.starts_with("Recovery was gated by `api-pods-ready`, the last recovery probe to pass (at +40s); the last event before it concerning what it measures was at +35.007s: k8s prod-east: pod web/api-"), "{rc}");
}

#[test]
fn the_estate_and_the_run_share_one_clock_so_data_loss_is_the_same_every_run() {
    // The FIS sample's preflight reads the estate before the drill's clock starts; the estate
    // used to keep the preflight's clock, shifting "newest surviving write" by the preflight's
    // wall time (82 to 100 ms, run to run). One anchor: the same figure every run.
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .arg("run")
            .arg(Path::new(MANIFEST).join("experiments/fis-az-power-interruption.yaml"))
            .args(["--output", "json", "--runs-dir"])
            .arg(dir.path().join("runs"))
            .arg("--lessons-dir")
            .arg(dir.path().join("lessons"))
            .output()
            .unwrap();
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let rpo = s["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "rpo")
            .unwrap();
        assert_eq!(rpo["measured_ms"], 0, "{rpo}");
        assert_eq!(
            rpo["detail"],
            "newest surviving write at +0s, fault at +0s: 0s of writes lost"
        );
    }
}
