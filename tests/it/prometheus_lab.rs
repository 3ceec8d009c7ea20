//! The Prometheus backend against a real Prometheus (Debian's `prometheus` package), started
//! per test by `scripts/lab/prometheus` in a temporary directory on a free loopback port, with a
//! 1 s scrape and evaluation interval, scraping a tiny exporter served by the test itself whose
//! `lab_up` gauge flips when an `http` step tells it to, and an alert rule `LabDown` (`lab_up ==
//! 0` for 5s). Wall time throughout (a real server). Each timing test prints what firedrill
//! measured against the truth read back from Prometheus.
//!
//! A machine without Prometheus fails these tests with a message: run `./scripts/test`, which
//! installs it.

use firedrill::backend::router::{ConnectOptions, Router, calls_of, connect};
use firedrill::backend::{PreflightProblem, Provider, ProviderExt};
use firedrill::engine::clock::RunClock;
use firedrill::engine::drill::Drill;
use firedrill::engine::events::{Event, Record, VerdictKind};
use firedrill::engine::executor::Outcome;
use serde_json::{Value as Json, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const EVAL_INTERVAL_MS: i64 = 1000;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab/prometheus")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn require(binary: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(binary).is_file()));
    assert!(
        found,
        "`{binary}` is not installed: these tests need Debian's `{package}` package. Run the tests with ./scripts/test, which installs it (apt-get install -y --no-install-recommends {package})"
    );
}

/// When the exporter's `lab_up` was set, and to what.
type Flips = Mutex<Vec<(chrono::DateTime<chrono::Utc>, f64)>>;

/// The exporter: serves `/metrics` (`lab_up`, two `lab_shard` series, a NaN gauge) and
/// `/set?value=V`, which flips `lab_up` and records when it did (the truth of the fault's moment).
struct Exporter {
    port: u16,
    flips: Arc<Flips>,
}

impl Exporter {
    fn start() -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let value = Arc::new(AtomicU64::new(1f64.to_bits()));
        let flips = Arc::new(Mutex::new(Vec::new()));
        let (v, f) = (value, flips.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (v, f) = (v.clone(), f.clone());
                std::thread::spawn(move || serve(&mut conn, &v, &f));
            }
        });
        Exporter { port, flips }
    }

    fn set_url(&self, v: f64) -> String {
        format!("http://127.0.0.1:{}/set?value={v}", self.port)
    }
}

fn serve(conn: &mut TcpStream, value: &AtomicU64, flips: &Flips) {
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).unwrap_or(0);
    let req = String::from_utf8_lossy(&buf[..n]);
    let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
    let body = if let Some(v) = path.strip_prefix("/set?value=") {
        let v: f64 = v.parse().unwrap_or(f64::NAN);
        value.store(v.to_bits(), Ordering::SeqCst);
        flips.lock().unwrap().push((chrono::Utc::now(), v));
        "ok\n".to_string()
    } else {
        let up = f64::from_bits(value.load(Ordering::SeqCst));
        format!(
            "# TYPE lab_up gauge\nlab_up {up}\n# TYPE lab_shard gauge\nlab_shard{{shard=\"a\"}} 1\nlab_shard{{shard=\"b\"}} 3\n# TYPE lab_nan gauge\nlab_nan NaN\n"
        )
    };
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A Prometheus scraping an exporter, stopped on drop.
struct Lab {
    dir: tempfile::TempDir,
    url: String,
    exporter: Exporter,
}

const RULES: &str = "groups:\n  - name: lab\n    interval: 1s\n    rules:\n      - alert: LabDown\n        expr: lab_up == 0\n        for: 5s\n        labels: {severity: page}\n      - alert: AlwaysOn\n        expr: vector(1)\n";

impl Lab {
    /// Start Prometheus (extra flags, e.g. `--web.config.file`) and wait until it has scraped the
    /// exporter and loaded the rules.
    fn start(extra: &[&str]) -> Lab {
        require("prometheus", "prometheus");
        let exporter = Exporter::start();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [rules.yml]\nscrape_configs:\n  - job_name: lab\n    static_configs: [{{targets: ['127.0.0.1:{}']}}]\n",
                exporter.port
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
        let port = free_port();
        let out = Command::new(script())
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .args(extra)
            .output()
            .expect("run scripts/lab/prometheus");
        assert!(
            out.status.success(),
            "scripts/lab/prometheus start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(url, format!("http://127.0.0.1:{port}"));
        let lab = Lab { dir, url, exporter };
        if extra.is_empty() {
            lab.wait_for("lab_up", |r| {
                r["data"]["result"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            });
        }
        lab
    }

    /// A raw API GET (not through firedrill: the test's own reading of the truth).
    fn get(&self, path_and_query: &str) -> Json {
        let out = Command::new("python3")
            .args([
                "-c",
                "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())",
            ])
            .arg(format!("{}{path_and_query}", self.url))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Json::Null)
    }

    fn query(&self, q: &str) -> Json {
        let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        self.get(&format!("/api/v1/query?query={enc}"))
    }

    fn wait_for(&self, q: &str, done: impl Fn(&Json) -> bool) {
        for _ in 0..100 {
            if done(&self.query(q)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "Prometheus at {} never answered `{q}` as expected",
            self.url
        );
    }

    /// Timestamps (ms) of every firing sample of the alert in the last 5 minutes.
    fn firing_samples(&self, alertname: &str) -> Vec<i64> {
        let r = self.query(&format!(
            "ALERTS{{alertname=\"{alertname}\",alertstate=\"firing\"}}[5m]"
        ));
        let mut out: Vec<i64> = r["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v[0].as_f64())
            .map(|t| (t * 1000.0).round() as i64)
            .collect();
        out.sort();
        out
    }

    fn env_yaml(&self, extra: &str) -> String {
        format!(
            "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {{name: prom-lab}}\nbackend: sim\nprometheus:\n  url: {}\n  timeout: 2s\n{extra}",
            self.url
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn env(src: &str) -> firedrill::lang::environment::Environment {
    firedrill::lang::environment::parse_environment("env.yaml", src.as_bytes(), &[])
        .unwrap_or_else(|d| panic!("{d:?}"))
}

fn experiment(src: &str) -> firedrill::lang::spec::Experiment {
    firedrill::lang::spec::parse_experiment("exp.yaml", src.as_bytes(), &[]).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter().map(|d| format!("{d:?}\n")).collect::<String>()
        )
    })
}

async fn router(env_src: &str) -> Router {
    connect(&env(env_src), &ConnectOptions::default())
        .await
        .unwrap_or_else(|d| panic!("{d:?}"))
}

async fn preflight(env_src: &str, exp_src: &str) -> Vec<PreflightProblem> {
    let r = router(env_src).await;
    r.preflight(&calls_of(&experiment(exp_src))).await
}

async fn run(env_src: &str, exp_src: &str) -> (Outcome, Vec<Record>) {
    let exp = experiment(exp_src);
    let r = router(env_src).await;
    let problems = r.preflight(&calls_of(&exp)).await;
    assert!(problems.is_empty(), "preflight: {problems:?}");
    Drill::new(exp, Arc::new(r))
        .clock(RunClock::start_now())
        .clock_kind("wall")
        .run_recorded()
        .await
}

fn step_started(records: &[Record], step: &str) -> chrono::DateTime<chrono::Utc> {
    records
        .iter()
        .find(|r| matches!(&r.event, Event::StepStarted { step: s, .. } if s == step))
        .map(|r| r.at)
        .unwrap_or_else(|| panic!("no step_started for {step}"))
}

fn measurement<'a>(o: &'a Outcome, name: &str) -> &'a firedrill::engine::events::Measurement {
    o.measurements
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no {name} measurement: {:?}", o.measurements))
}

/// The drill of (a) and (b): the fault flips `lab_up` to 0, a wait holds it, a step flips it
/// back; `lab-up` (a `prometheus` probe) is the steady state and the recovery probe, `LabDown`
/// the detection probe.
fn flip_drill(lab: &Lab, hold: &str, interval: &str, recovery_probe: &str) -> String {
    format!(
        r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {{name: prom-flip}}
objectives: {{rto: 2m, rpo: 1s, mttd: 1m}}
steady_state:
  probes:
    - name: lab-up
      type: prometheus
      with: {{query: lab_up}}
      tolerance: {{path: value, min: 1}}
    - name: lab-up-12s
      type: prometheus
      with: {{query: "min_over_time(lab_up[12s])"}}
      tolerance: {{path: value, min: 1}}
    - name: lab-down
      type: prometheus.alert
      with: {{alertname: LabDown, matchers: {{severity: page}}}}
  before: [lab-up]
  after: [lab-up]
steps:
  - id: flip
    action: http
    with: {{url: "{down}"}}
  - id: hold
    action: wait
    after: [flip]
    with: {{duration: {hold}}}
  - id: restore
    action: http
    after: [hold]
    with: {{url: "{up}"}}
recovery:
  fault: flip
  probes: [{recovery_probe}]
  detection: lab-down
  interval: {interval}
  consecutive: 1
"#,
        down = lab.exporter.set_url(0.0),
        up = lab.exporter.set_url(1.0),
    )
}

/// (a) MTTD from the alert's own firing moment: measured equals the first `ALERTS` firing
/// sample (read back from Prometheus by the test) minus the fault step's start, within one
/// evaluation interval. (b) The `prometheus` probe passes before the flip (before gate), fails
/// after it (impact) and passes again once the metric flips back (RTO).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mttd_is_the_alerts_firing_moment_and_rto_follows_the_metric() {
    let lab = Lab::start(&[]);
    let (outcome, records) = run(&lab.env_yaml(""), &flip_drill(&lab, "10s", "1s", "lab-up")).await;
    assert_eq!(outcome.verdict, VerdictKind::Pass, "{outcome:?}");
    let fault = step_started(&records, "flip");
    let flips = lab.exporter.flips.lock().unwrap().clone();
    let (down_at, restored_at) = (flips[0].0, flips[1].0);
    // (a)
    let fired = lab.firing_samples("LabDown");
    let first_fired = *fired
        .iter()
        .find(|t| **t >= fault.timestamp_millis())
        .expect("LabDown fired after the fault");
    let truth_ms = first_fired - fault.timestamp_millis();
    let mttd = measurement(&outcome, "mttd");
    let measured_ms = mttd.measured_ms.expect("MTTD measured") as i64;
    println!(
        "MTTD measured {measured_ms} ms, truth {truth_ms} ms (ALERTS first firing sample - fault start; metric flipped {} ms after the fault start); {}",
        (down_at - fault).num_milliseconds(),
        mttd.detail
    );
    assert!(
        (measured_ms - truth_ms).abs() <= EVAL_INTERVAL_MS,
        "measured {measured_ms} ms vs truth {truth_ms} ms"
    );
    assert!(
        measured_ms >= 5000,
        "`for: 5s`: cannot fire sooner ({measured_ms} ms)"
    );
    assert_eq!(
        mttd.resolution_ms, 1000,
        "the rule group's evaluation interval"
    );
    assert!(
        mttd.detail.starts_with("alert `LabDown` fired at ") && mttd.detail.contains("skew ±"),
        "{}",
        mttd.detail
    );
    // (b) the probe passed before (the before gate was met), failed after the flip, and the
    // recovery is timed from the restore.
    let impact_ms = measurement(&outcome, "rto").impact_ms.expect("impact seen") as i64;
    let rto_ms = measurement(&outcome, "rto")
        .measured_ms
        .expect("RTO measured") as i64;
    let restore_ms = (restored_at - fault).num_milliseconds();
    println!(
        "RTO measured {rto_ms} ms, truth >= {restore_ms} ms (metric flipped back), impact seen at {impact_ms} ms after the fault"
    );
    assert!(
        impact_ms <= 4000,
        "1 s scrapes and 1 s polls: impact seen late ({impact_ms} ms)"
    );
    assert!(
        rto_ms >= restore_ms - 1000 && rto_ms <= restore_ms + 4000,
        "RTO {rto_ms} ms vs the restore at {restore_ms} ms (one scrape + one poll + a margin)"
    );
    let checked_before: Vec<bool> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::ProbeChecked {
                phase: firedrill::engine::events::Phase::Before,
                probe,
                ok,
                ..
            } if probe == "lab-up" => Some(*ok),
            _ => None,
        })
        .collect();
    assert_eq!(checked_before, [true]);
}

/// An alert that fires and resolves between two polls is still found (the `ALERTS` series is
/// read back from the fault on), and its MTTD is its firing moment, not the poll that saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_that_fired_and_resolved_between_polls_is_found() {
    let lab = Lab::start(&[]);
    // Polls at +0s and +16s; LabDown fires ~6 s after the flip and resolves at the restore (+9 s).
    let (outcome, records) = run(
        &lab.env_yaml(""),
        &flip_drill(&lab, "8s", "16s", "lab-up-12s"),
    )
    .await;
    let fault = step_started(&records, "flip");
    let fired = lab.firing_samples("LabDown");
    let first_fired = *fired
        .iter()
        .find(|t| **t >= fault.timestamp_millis())
        .expect("LabDown fired after the fault");
    let truth_ms = first_fired - fault.timestamp_millis();
    let last_fired_ms = fired.last().unwrap() - fault.timestamp_millis();
    let mttd = measurement(&outcome, "mttd");
    let measured_ms = mttd.measured_ms.expect("MTTD measured") as i64;
    println!(
        "MTTD measured {measured_ms} ms, truth {truth_ms} ms; the alert's last firing sample at +{last_fired_ms} ms, polls every 16 s"
    );
    assert!(
        last_fired_ms < 16_000,
        "the alert resolved before the second poll"
    );
    assert!(
        (measured_ms - truth_ms).abs() <= EVAL_INTERVAL_MS,
        "{measured_ms} vs {truth_ms}"
    );
}

/// An alert already firing before the fault fails the before gate, naming the alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_already_firing_fails_the_before_gate() {
    let lab = Lab::start(&[]);
    lab.wait_for(
        "ALERTS{alertname=\"AlwaysOn\",alertstate=\"firing\"}",
        |r| {
            r["data"]["result"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    );
    let exp = flip_drill(&lab, "1s", "1s", "lab-up").replace(
        "with: {alertname: LabDown, matchers: {severity: page}}",
        "with: {alertname: AlwaysOn}",
    );
    let (outcome, _) = run(&lab.env_yaml(""), &exp).await;
    assert_eq!(outcome.verdict, VerdictKind::NotSteady, "{outcome:?}");
    assert!(
        outcome.reasons.iter().any(
            |r| r.contains("alert `AlwaysOn`") && r.contains("already firing before the fault")
        ),
        "{:?}",
        outcome.reasons
    );
    assert!(
        lab.exporter.flips.lock().unwrap().is_empty(),
        "nothing was injected"
    );
}

fn probe_exp(probes: &str) -> String {
    format!(
        "apiVersion: firedrill.dev/v1\nkind: Experiment\nmetadata: {{name: prom-probes}}\nobjectives: {{rto: 1m, rpo: 1s}}\nsteady_state:\n  probes:\n{probes}\n  before: []\nsteps:\n  - id: pause\n    action: wait\n    with: {{duration: 1ms}}\n"
    )
}

/// The probes' outputs against the live server: one series, `reduce`, NaN, scalars, empty
/// results, alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_outputs_against_the_server() {
    let lab = Lab::start(&[]);
    lab.wait_for("lab_nan", |r| {
        r["data"]["result"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    let r = router(&lab.env_yaml("")).await;
    let o = |q: Json| {
        let r = &r;
        async move { r.observe_json("prometheus", &q).await }
    };
    let up = o(json!({"query": "lab_up"})).await.unwrap();
    assert_eq!(up["value"], json!(1.0));
    assert_eq!(up["series"][0]["labels"]["job"], json!("lab"));
    let server = lab.url.trim_start_matches("http://").to_string();
    assert_eq!(up["server"], json!(server));
    let e = o(json!({"query": "lab_shard"})).await.unwrap_err();
    assert!(
        e.message.contains("returned 2 series") && e.message.contains(&server),
        "{e}"
    );
    assert_eq!(
        o(json!({"query": "lab_shard", "reduce": "sum"}))
            .await
            .unwrap()["value"],
        json!(4.0)
    );
    assert_eq!(
        o(json!({"query": "lab_shard", "reduce": "each"}))
            .await
            .unwrap()["value"],
        json!([1.0, 3.0])
    );
    let nan = o(json!({"query": "lab_nan"})).await.unwrap();
    assert_eq!(
        (nan["value"].clone(), nan["value_text"].clone()),
        (Json::Null, json!("NaN"))
    );
    let inf = o(json!({"query": "lab_up / 0"})).await.unwrap();
    assert_eq!(inf["value_text"], json!("+Inf"));
    assert_eq!(
        o(json!({"query": "scalar(lab_up) * 2"})).await.unwrap()["value"],
        json!(2.0)
    );
    let e = o(json!({"query": "lab_missing"})).await.unwrap_err();
    assert!(e.message.contains("returned no series"), "{e}");
    assert_eq!(
        o(json!({"query": "lab_missing", "on_empty": "zero"}))
            .await
            .unwrap()["value"],
        json!(0.0)
    );
    let inactive = r
        .observe_json("prometheus.alert", &json!({"alertname": "LabDown"}))
        .await
        .unwrap();
    assert_eq!(
        (inactive["state"].clone(), inactive["firing"].clone()),
        (json!("inactive"), json!(false))
    );
    assert_eq!(inactive["eval_interval_ms"], json!(1000));
    assert!(
        inactive["skew_ms"].as_i64().unwrap().abs() < 1000,
        "{inactive}"
    );
    lab.wait_for(
        "ALERTS{alertname=\"AlwaysOn\",alertstate=\"firing\"}",
        |r| {
            r["data"]["result"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    );
    let on = r
        .observe_json("prometheus.alert", &json!({"alertname": "AlwaysOn"}))
        .await
        .unwrap();
    assert_eq!(on["state"], json!("firing"), "{on}");
    assert!(
        on["fired_at"].is_string() && on["active_at"].is_string(),
        "{on}"
    );
    // Through a drill: NaN fails a bounds tolerance.
    let (outcome, _) = run(
        &lab.env_yaml(""),
        &probe_exp("    - name: nan\n      type: prometheus\n      with: {query: lab_nan}\n      tolerance: {path: value, max: 100}\n  after: [nan]"),
    )
    .await;
    assert_eq!(outcome.verdict, VerdictKind::Missed, "{outcome:?}");
}

/// (c) Bad input is a preflight problem naming the server and what to do: a PromQL syntax
/// error (the server's message and position), a query returning a string, an unknown alert
/// rule, an unreachable server, a server that never answers (the timeout), wrong credentials,
/// and a probe or source whose section is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_preflight_problem() {
    let lab = Lab::start(&[]);
    let server = lab.url.trim_start_matches("http://").to_string();
    let problems = preflight(
        &lab.env_yaml(""),
        &probe_exp(concat!(
            "    - name: syntax\n      type: prometheus\n      with: {query: 'rate(lab_up[1m]'}\n",
            "    - name: text\n      type: prometheus\n      with: {query: '\"hello\"'}\n",
            "    - name: scalar\n      type: prometheus\n      with: {query: 'scalar(lab_up)'}\n",
            "    - name: empty-is-a-state\n      type: prometheus\n      with: {query: 'lab_missing'}\n",
            "    - name: no-rule\n      type: prometheus.alert\n      with: {alertname: NoSuchAlert}\n",
            "    - name: no-am\n      type: prometheus.alert\n      with: {alertname: LabDown, source: alertmanager}\n",
        )),
    )
    .await;
    let msg = |owner: &str| {
        problems
            .iter()
            .find(|p| p.owner.contains(owner))
            .map(|p| p.error.message.clone())
            .unwrap_or_else(|| panic!("no problem for {owner}: {problems:?}"))
    };
    assert_eq!(problems.len(), 4, "{problems:?}");
    let syntax = msg("`syntax`");
    println!("syntax error: {syntax}");
    assert!(
        syntax.contains(&format!("Prometheus at {server} rejected the request")),
        "{syntax}"
    );
    assert!(
        syntax.contains("1:16: parse error"),
        "the server's position: {syntax}"
    );
    assert!(msg("`text`").contains("returns a string (`hello`)"));
    assert!(msg("`no-rule`").contains("no alerting rule `NoSuchAlert`"));
    assert!(msg("`no-am`").contains("add `alertmanager: {url:"));

    // Unreachable: a closed port.
    let closed = free_port();
    let env_closed = format!(
        "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {{name: x}}\nbackend: sim\nprometheus: {{url: 'http://127.0.0.1:{closed}', timeout: 1s}}\n"
    );
    let one = probe_exp("    - name: up\n      type: prometheus\n      with: {query: lab_up}\n");
    let p = preflight(&env_closed, &one).await;
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].error.message.contains(&format!(
            "Prometheus at 127.0.0.1:{closed} cannot be reached"
        )) && p[0].error.message.contains("check `prometheus.url`"),
        "{}",
        p[0].error.message
    );

    // A server that accepts and never answers: the per-request timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming() {
            held.push(c);
        }
    });
    let env_silent = env_closed
        .replace(&closed.to_string(), &silent_port.to_string())
        .replace("timeout: 1s", "timeout: 500ms");
    let started = std::time::Instant::now();
    let p = preflight(&env_silent, &one).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the timeout bounds the wait"
    );
    assert!(
        p[0].error.message.contains("did not answer") && p[0].error.message.contains("500ms"),
        "{}",
        p[0].error.message
    );

    // No `prometheus:` section at all.
    let sim_only =
        "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {name: s}\nbackend: sim\n";
    let p = preflight(sim_only, &one).await;
    assert!(
        p[0].error
            .message
            .contains("add a `prometheus:` section with its url"),
        "{}",
        p[0].error.message
    );
}

/// Wrong credentials: Prometheus serves its API behind basic auth (`--web.config.file`; it has
/// no bearer-token auth of its own), so the bearer token firedrill sends is refused with 401:
/// through the real binary (the token's variable set for the child only), a preflight problem
/// (exit 7) naming the server and the variable to check, never the token. A missing token
/// variable is an error when the backend connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_missing_tokens() {
    require("prometheus", "prometheus");
    let web = tempfile::NamedTempFile::new().unwrap();
    // bcrypt of "secret".
    std::fs::write(
        web.path(),
        "basic_auth_users:\n  lab: $2b$12$QSrD0qKiMDOCoAWntaKG6uZq/I1Dk5WDLhrlvTezBPvWaA2I1nxNO\n",
    )
    .unwrap();
    let flag = format!("--web.config.file={}", web.path().display());
    let lab = Lab::start(&[&flag]);
    let env_src = lab.env_yaml("").replace(
        "  timeout: 2s\n",
        "  timeout: 2s\n  bearer_token_env: FIREDRILL_TEST_PROM_TOKEN\n",
    );
    let exp = probe_exp("    - name: up\n      type: prometheus\n      with: {query: lab_up}\n");
    let (code, stderr) = cli(
        &env_src,
        &exp,
        &[("FIREDRILL_TEST_PROM_TOKEN", "not-the-right-token")],
    );
    println!("{stderr}");
    assert_eq!(code, Some(7), "{stderr}");
    let server = lab.url.trim_start_matches("http://");
    assert!(
        stderr.contains(&format!(
            "Prometheus at {server} refused the request (HTTP 401"
        )) && stderr.contains("`FIREDRILL_TEST_PROM_TOKEN`"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-the-right-token"),
        "the token is never printed: {stderr}"
    );
    let missing = env_src.replace(
        "FIREDRILL_TEST_PROM_TOKEN",
        "FIREDRILL_TEST_PROM_TOKEN_UNSET",
    );
    let Err(d) = connect(&env(&missing), &ConnectOptions::default()).await else {
        panic!("a missing token variable must not connect")
    };
    assert!(
        d[0].message
            .contains("`FIREDRILL_TEST_PROM_TOKEN_UNSET` is not set"),
        "{d:?}"
    );
    assert_eq!(d[0].path, "prometheus.bearer_token_env");
}

/// `firedrill run exp.yaml --env env.yaml` in a temporary directory: (exit code, stderr); no run
/// directory may be left when it exits 7.
fn cli(env_src: &str, exp_src: &str, vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("env.yaml"), env_src).unwrap();
    std::fs::write(dir.path().join("exp.yaml"), exp_src).unwrap();
    let runs = dir.path().join("runs");
    let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["run", "exp.yaml", "--env", "env.yaml", "--runs-dir"])
        .arg(&runs)
        .arg("--lessons-dir")
        .arg(dir.path().join("lessons"))
        .envs(vars.iter().copied())
        .current_dir(dir.path())
        .output()
        .unwrap();
    let code = out.status.code();
    if code == Some(7) {
        assert!(
            !runs.exists() || std::fs::read_dir(&runs).unwrap().next().is_none(),
            "a preflight failure creates no run directory"
        );
    }
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The real binary: a PromQL syntax error exits 7 (preflight) naming the server, before any
/// run directory exists.
#[test]
fn the_cli_exits_7_on_a_promql_error() {
    let lab = Lab::start(&[]);
    let exp = probe_exp(
        "    - name: syntax\n      type: prometheus\n      with: {query: 'sum(lab_up'}\n",
    );
    let (code, stderr) = cli(&lab.env_yaml(""), &exp, &[]);
    println!("{stderr}");
    assert_eq!(code, Some(7), "{stderr}");
    let server = lab.url.trim_start_matches("http://");
    assert!(
        stderr.contains(&format!("Prometheus at {server}")) && stderr.contains("parse error"),
        "{stderr}"
    );
}

/// An Alertmanager (Debian's `prometheus-alertmanager`) started in a temporary directory by
/// `scripts/lab/prometheus alertmanager-start`, stopped on drop.
struct Alertmanager {
    dir: tempfile::TempDir,
    url: String,
}

impl Alertmanager {
    fn start() -> Alertmanager {
        require("prometheus-alertmanager", "prometheus-alertmanager");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("alertmanager.yml"),
            "route: {receiver: none}\nreceivers: [{name: none}]\n",
        )
        .unwrap();
        let port = free_port();
        let out = Command::new(script())
            .arg("alertmanager-start")
            .arg(dir.path())
            .arg(port.to_string())
            .output()
            .expect("run scripts/lab/prometheus");
        assert!(
            out.status.success(),
            "scripts/lab/prometheus alertmanager-start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Alertmanager { dir, url }
    }

    /// The alerts Alertmanager holds (the test's own reading).
    fn alerts(&self) -> Json {
        alerts_at(&self.url)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("alertmanager-stop")
            .arg(self.dir.path())
            .output();
    }
}

/// (d) `source: alertmanager`: a drill whose fault posts an alert to Alertmanager (as a
/// Prometheus would); the detection probe reads it from `/api/v2/alerts`, MTTD is its `startsAt`
/// (read back by the test) minus the fault's start; an alert of another name or labels is
/// inactive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_source() {
    let lab = Lab::start(&[]);
    let am = Alertmanager::start();
    let env_src = lab.env_yaml(&format!("alertmanager: {{url: '{}'}}\n", am.url));
    let exp = format!(
        r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {{name: am-detect}}
objectives: {{rto: 1m, rpo: 1s, mttd: 30s}}
steady_state:
  probes:
    - name: posted
      type: prometheus.alert
      with: {{alertname: LabPosted, matchers: {{service: api}}, source: alertmanager}}
    - name: posted-firing
      type: prometheus.alert
      with: {{alertname: LabPosted, matchers: {{service: api}}, source: alertmanager}}
      tolerance: {{path: firing, equals: false}}
  before: [posted-firing]
steps:
  - id: post
    action: http
    with:
      url: "{url}/api/v2/alerts"
      method: POST
      body: [{{labels: {{alertname: LabPosted, service: api}}}}]
  - id: settle
    action: wait
    after: [post]
    with: {{duration: 3s}}
  - id: resolve
    action: http
    after: [settle]
    with:
      url: "{url}/api/v2/alerts"
      method: POST
      body: [{{labels: {{alertname: LabPosted, service: api}}, endsAt: "2020-01-01T00:00:00Z"}}]
recovery:
  fault: post
  probes: [posted-firing]
  detection: posted
  interval: 1s
  consecutive: 1
  expect_impact: 5s
"#,
        url = am.url
    );
    // The truth: the test's own reading of the alert's startsAt while it is active.
    let seen = Arc::new(Mutex::new(None::<String>));
    let watcher = {
        let (seen, url) = (seen.clone(), am.url.clone());
        std::thread::spawn(move || {
            for _ in 0..100 {
                if let Some(s) = alerts_at(&url)[0]["startsAt"].as_str() {
                    *seen.lock().unwrap() = Some(s.to_string());
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let (outcome, records) = run(&env_src, &exp).await;
    watcher.join().unwrap();
    assert_eq!(outcome.verdict, VerdictKind::Pass, "{outcome:?}");
    let fault = step_started(&records, "post");
    let starts = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the alert was seen active");
    let starts = chrono::DateTime::parse_from_rfc3339(&starts).unwrap();
    let truth_ms = starts.timestamp_millis() - fault.timestamp_millis();
    let mttd = measurement(&outcome, "mttd");
    let measured_ms = mttd.measured_ms.expect("MTTD measured") as i64;
    println!(
        "Alertmanager MTTD measured {measured_ms} ms, truth {truth_ms} ms (startsAt - fault start); {}",
        mttd.detail
    );
    assert!(
        (measured_ms - truth_ms).abs() <= 50,
        "{measured_ms} vs {truth_ms}"
    );
    assert!(
        mttd.detail.contains("alertmanager server time"),
        "{}",
        mttd.detail
    );
    let r = router(&env_src).await;
    let other = r
        .observe_json(
            "prometheus.alert",
            &json!({"alertname": "LabPosted", "matchers": {"service": "db"}, "source": "alertmanager"}),
        )
        .await
        .unwrap();
    assert_eq!(other["state"], json!("inactive"), "{other}");
    assert!(
        am.alerts().as_array().unwrap().is_empty(),
        "resolved by the drill"
    );
    let _ = post_json(
        &format!("{}/api/v2/alerts", am.url),
        &json!([{"labels": {"alertname": "LabPosted", "service": "api"}}]),
    );
    let starts =
        chrono::DateTime::parse_from_rfc3339(am.alerts()[0]["startsAt"].as_str().unwrap()).unwrap();
    let mine = r
        .observe_json(
            "prometheus.alert",
            &json!({"alertname": "LabPosted", "source": "alertmanager"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (mine["state"].clone(), mine["alerts"].clone()),
        (json!("firing"), json!(1))
    );
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(mine["fired_at"].as_str().unwrap()).unwrap(),
        starts
    );
}

fn alerts_at(url: &str) -> Json {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())",
        ])
        .arg(format!("{url}/api/v2/alerts"))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Json::Null)
}

fn post_json(url: &str, body: &Json) -> std::process::Output {
    Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), headers={'Content-Type': 'application/json'}), timeout=5)",
        ])
        .arg(url)
        .arg(body.to_string())
        .output()
        .unwrap()
}
