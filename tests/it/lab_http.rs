//! The fidelity lab, HTTP part: a real HTTP service (scripts/lab/http-service, Python's standard
//! library) killed by a `command` fault and restarted after a known delay, measured by the real
//! binary. The service's own record (kill time, first moment the restarted service accepts) is
//! the truth; the measured RTO must lie in [true outage, true outage + one poll interval].

use std::path::{Path, PathBuf};
use std::process::Command;

const INTERVAL_MS: u64 = 1_000;
/// A poll's own latency (connect, request, journal): far below the interval.
const LAG_MS: u64 = 300;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab/http-service")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops the service when the test ends, however it ends.
struct Service(PathBuf);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.0).status();
    }
}

fn drill(dir: &Path, port: u16, delay_s: f64) -> PathBuf {
    let yaml = format!(
        r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {{name: lab-http-outage}}
objectives: {{rto: 1m}}
steady_state:
  probes:
    - name: healthy
      type: http
      with: {{url: "http://127.0.0.1:{port}/health", timeout: 500ms}}
      tolerance: {{path: status, equals: 200}}
  before: [healthy]
  after: [healthy]
steps:
  - id: kill-service
    action: command
    with: {{run: ["{script}", outage, "{dir}", "{delay_s}"]}}
recovery:
  fault: kill-service
  probes: [healthy]
  interval: {INTERVAL_MS}ms
  expect_impact: 5s
"#,
        script = script().display(),
        dir = dir.join("service").display(),
    );
    let path = dir.join("lab-http.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// One drill against the service with a restart `delay_s` after the kill: (measured RTO, true
/// outage, impact), in milliseconds.
fn measure(delay_s: f64) -> (u64, u64, u64) {
    let tmp = tempfile::TempDir::new().unwrap();
    let port = free_port();
    let service_dir = tmp.path().join("service");
    let ok = Command::new(script())
        .arg("start")
        .arg(&service_dir)
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs scripts/lab/http-service");
    assert!(ok.success(), "the lab service did not start");
    let _service = Service(service_dir.clone());
    let exp = drill(tmp.path(), port, delay_s);
    let runs = tmp.path().join("runs");
    let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["run", exp.to_str().unwrap(), "--quiet", "--runs-dir"])
        .arg(&runs)
        .arg("--lessons-dir")
        .arg(tmp.path().join("lessons"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let run_dir = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("journal.jsonl").exists())
        .expect("a run directory");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    let rto = summary["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "rto")
        .expect("an RTO")
        .clone();
    // The fault's start, from the journal: when the `kill-service` step started.
    let journal = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap();
    let started = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["type"] == "step_started" && r["step"] == "kill-service")
        .expect("the fault step started");
    let fault_at = chrono::DateTime::parse_from_rfc3339(started["at"].as_str().unwrap())
        .unwrap()
        .timestamp_micros() as f64
        / 1e6;
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(service_dir.join("outage.json")).expect("the outage's record"),
    )
    .unwrap();
    let killed = truth["killed_at"].as_f64().unwrap();
    let ready = truth["ready_at"].as_f64().unwrap();
    assert!(
        killed >= fault_at && killed - fault_at < 5.0,
        "the kill follows the fault's start: fault {fault_at}, kill {killed}"
    );
    // The truth RTO is measured against: from the fault step's start (the kill follows it by a
    // process spawn, more under load) to the first moment the restarted service accepts.
    let outage_ms = ((ready - fault_at) * 1e3).round() as u64;
    let kill_lag_ms = ((killed - fault_at) * 1e3).round() as u64;
    let measured = rto["measured_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("{rto}"));
    let impact = rto["impact_ms"].as_u64().unwrap_or_else(|| panic!("{rto}"));
    println!(
        "lab http: restart after {delay_s}s: true outage {:.3}s (fault start to service accepting; killed {kill_lag_ms}ms after the fault started), measured RTO {:.3}s (resolution {}s), impact seen at +{:.3}s",
        outage_ms as f64 / 1e3,
        measured as f64 / 1e3,
        INTERVAL_MS / 1000,
        impact as f64 / 1e3
    );
    (measured, outage_ms, impact.saturating_sub(kill_lag_ms))
}

#[test]
fn a_killed_service_s_rto_is_its_outage_within_one_interval() {
    let _lab = crate::support::WALL_LAB.blocking_lock();
    for delay in [2.0, 4.5] {
        let (measured, outage, impact) = measure(delay);
        assert!(
            measured >= outage,
            "RTO {measured} ms below the true outage {outage} ms"
        );
        assert!(
            measured <= outage + INTERVAL_MS + LAG_MS,
            "RTO {measured} ms more than one interval over the true outage {outage} ms"
        );
        assert!(
            impact <= INTERVAL_MS + LAG_MS,
            "impact seen late: {impact} ms"
        );
    }
}
