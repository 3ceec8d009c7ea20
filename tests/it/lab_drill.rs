//! The lab a newcomer runs (README "A real drill on your machine"): `scripts/lab/up` starts
//! PostgreSQL (primary + standby), the writer endpoint, the orders service and Prometheus; the
//! drill `experiments/lab/db-failover.yaml` loses the primary and fails over. Run exactly as the
//! README says (the real binary, from the repository root), in a lab directory of its own.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Lab(std::path::PathBuf);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(Path::new(ROOT).join("scripts/lab/down"))
            .env("FIREDRILL_LAB_DIR", &self.0)
            .output();
    }
}

#[test]
fn the_lab_drill_fails_over_a_real_database_and_measures_it() {
    let _serial = crate::support::WALL_LAB.blocking_lock();
    let tmp = tempfile::TempDir::new().unwrap();
    let lab = tmp.path().join("lab");
    let up = Command::new(Path::new(ROOT).join("scripts/lab/up"))
        .env("FIREDRILL_LAB_DIR", &lab)
        .output()
        .unwrap();
    let _lab = Lab(lab.clone());
    assert!(
        up.status.success(),
        "scripts/lab/up failed (run the tests with ./scripts/test, which installs PostgreSQL and Prometheus):\n{}\n{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .current_dir(ROOT)
        .env("FIREDRILL_LAB_DIR", &lab)
        .args([
            "run",
            "experiments/lab/db-failover.yaml",
            "--env",
            "environments/lab.yaml",
            "--var",
        ])
        .arg(format!("lab={}", lab.display()))
        .arg("--runs-dir")
        .arg(tmp.path().join("runs"))
        .arg("--lessons-dir")
        .arg(tmp.path().join("lessons"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let run = std::fs::read_dir(tmp.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("summary.json").exists())
        .expect("a run");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let m = |name: &str| {
        s["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {s}"))
            .clone()
    };
    let (rto, mttd, rpo) = (m("rto"), m("mttd"), m("rpo"));
    let ms = |v: &serde_json::Value| v["measured_ms"].as_u64().unwrap_or_else(|| panic!("{v}"));
    // Replication stalls 5 s before the primary is lost: about 5 s of acknowledged writes are
    // lost (the newest survivor predates the stall), within one canary interval (500 ms).
    let journal = std::fs::read_to_string(run.join("journal.jsonl")).unwrap();
    let at = |step: &str| -> f64 {
        journal
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["type"] == "step_started" && r["step"] == step)
            .map(|r| {
                chrono::DateTime::parse_from_rfc3339(r["at"].as_str().unwrap())
                    .unwrap()
                    .timestamp_micros() as f64
                    / 1e3
            })
            .unwrap()
    };
    let stall_to_fault = (at("lose-primary") - at("stall-replication")).round() as u64;
    println!(
        "lab drill: RTO {} ms, MTTD {} ms (alert), RPO {} ms vs replication stalled {stall_to_fault} ms before the fault (canary interval 500 ms)",
        ms(&rto),
        ms(&mttd),
        ms(&rpo)
    );
    assert!(
        ms(&rpo) >= stall_to_fault.saturating_sub(50) && ms(&rpo) <= stall_to_fault + 600,
        "RPO {} vs stall {stall_to_fault}",
        ms(&rpo)
    );
    // The alert has `for: 5s`: detection cannot come sooner; the failover waits for it.
    assert!((5_000..30_000).contains(&ms(&mttd)), "{mttd}");
    assert!(ms(&rto) > ms(&mttd) && ms(&rto) < 60_000, "{rto}");
    let c = &rpo["canary"];
    // Writes went on being acknowledged by the primary for the 5 s of the stall (every 500 ms):
    // about ten of them are lost, and the canary saw the outage end once the endpoint moved.
    let lost = c["lost_acknowledged"]
        .as_u64()
        .unwrap_or_else(|| panic!("{rpo}"));
    assert!((8..=12).contains(&lost), "lost {lost}: {c}");
    assert_eq!(c["outage_ended"], true, "{c}");
    println!(
        "lab drill: canary acknowledged {}, failed {}, lost {} ({}), outage {} ms",
        c["acknowledged"], c["failed"], lost, c["lost_ranges"], c["outage_ms"]
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("Data-loss canary"), "{report}");
    assert!(
        report.contains("alert `OrdersWritesFailing` fired at"),
        "{report}"
    );
}
