//! Notifications with the real binary against a local receiver: Slack and PagerDuty payloads,
//! the PagerDuty alert triggered on an abort and resolved once rolled back, Standard Webhooks
//! signatures checked by the reference library (standardwebhooks, PyPI), retries of a 503, and
//! delivery that never changes a verdict (an unreachable sink) or starts unconfigured (an unset
//! variable stops the run before anything, exit 7).

use serde_json::Value as Json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Debug, Clone)]
struct Req {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    fn json(&self) -> Json {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{}: {e}: {}", self.path, self.body))
    }

    fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 receiver on loopback that records every request; `/flaky` answers 503 once.
fn receiver() -> (u16, Arc<Mutex<Vec<Req>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Req>>> = Default::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut flaky_failed = false;
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap_or(0);
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let status = if path == "/flaky" && !flaky_failed {
                flaky_failed = true;
                "503 Service Unavailable"
            } else {
                "202 Accepted"
            };
            s.lock().unwrap().push(Req {
                path,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
            );
        }
    });
    (port, seen)
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn environment(dir: &Path, port: u16) -> String {
    let sim = std::fs::read_to_string(Path::new(MANIFEST).join("environments/sim.yaml")).unwrap();
    let text = format!(
        "{sim}\nnotify:\n  - slack: {{webhook_url_env: FD_TEST_SLACK}}\n  - pagerduty: {{routing_key_env: FD_TEST_PD, events_url: \"http://127.0.0.1:{port}/pd\"}}\n  - webhook: {{url: \"http://127.0.0.1:{port}/hook\", secret_env: FD_TEST_WEBHOOK}}\n  - webhook: {{url: \"http://127.0.0.1:{port}/flaky\"}}\n    events: [finished]\n"
    );
    let p = dir.join("env.yaml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn firedrill(dir: &Path, args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(args)
        .current_dir(dir)
        .env("FIREDRILL_RUNS_DIR", dir.join("runs"))
        .env("FIREDRILL_LESSONS_DIR", dir.join("lessons"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn vars(port: u16) -> Vec<(&'static str, String)> {
    vec![
        (
            "FD_TEST_SLACK",
            format!("http://127.0.0.1:{port}/slack/T000/B000/secret-token"),
        ),
        ("FD_TEST_PD", "R0UTINGKEY0000000000000000000000".into()),
        ("FD_TEST_WEBHOOK", SECRET.into()),
    ]
}

#[test]
fn a_drill_notifies_slack_pagerduty_and_a_signed_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let (port, seen) = receiver();
    let env = environment(dir.path(), port);
    let exp = Path::new(MANIFEST)
        .join("experiments/az-loss.yaml")
        .display()
        .to_string();
    let (code, _, stderr) = firedrill(dir.path(), &["run", &exp, "--env", &env, "-q"], &vars(port));
    assert_eq!(code, 0, "{stderr}");
    let reqs = seen.lock().unwrap().clone();
    let slack: Vec<String> = reqs
        .iter()
        .filter(|r| r.path.starts_with("/slack/"))
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        slack[0].starts_with("*firedrill* · drill `az-loss` on `sim` started (run "),
        "{slack:?}"
    );
    for want in [
        "fault injected (step `",
        "detected by `",
        "recovered 2m30s after the fault",
        "finished: PASS",
    ] {
        assert!(
            slack.iter().any(|t| t.contains(want)),
            "no Slack message with {want:?}: {slack:#?}"
        );
    }
    // PagerDuty: change events only (nothing aborted), with the routing key.
    let pd: Vec<&Req> = reqs.iter().filter(|r| r.path.starts_with("/pd/")).collect();
    assert!(
        pd.iter().all(|r| r.path == "/pd/v2/change/enqueue"),
        "{pd:?}"
    );
    let first = pd[0].json();
    assert_eq!(first["routing_key"], "R0UTINGKEY0000000000000000000000");
    assert_eq!(first["payload"]["source"], "firedrill");
    assert_eq!(first["payload"]["custom_details"]["experiment"], "az-loss");
    // The signed webhook verifies with the Standard Webhooks reference library.
    let hooks: Vec<&Req> = reqs.iter().filter(|r| r.path == "/hook").collect();
    assert_eq!(
        hooks.len(),
        slack.len(),
        "every event reaches every sink that wants it"
    );
    let python = std::env::var("FIREDRILL_VENV_PYTHON").expect("FIREDRILL_VENV_PYTHON: run the tests with ./scripts/test (it installs standardwebhooks into .venv)");
    for h in &hooks {
        let script = "import sys, json\nfrom standardwebhooks.webhooks import Webhook\nh = json.loads(sys.argv[2])\nWebhook(sys.argv[1]).verify(sys.stdin.read(), h)\nprint('ok')\n";
        let headers = serde_json::json!({
            "webhook-id": h.header("webhook-id").unwrap(),
            "webhook-timestamp": h.header("webhook-timestamp").unwrap(),
            "webhook-signature": h.header("webhook-signature").unwrap(),
        });
        let mut child = Command::new(&python)
            .args(["-c", script, SECRET, &headers.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(h.body.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "signature of {} does not verify: {}",
            h.body,
            String::from_utf8_lossy(&out.stderr)
        );
        // A changed body does not verify (the check can fail).
    }
    let tampered = hooks[0].body.replace("firedrill.", "firedrill-");
    let out = Command::new(&python)
        .args([
            "-c",
            "import sys, json\nfrom standardwebhooks.webhooks import Webhook\nWebhook(sys.argv[1]).verify(sys.argv[2], json.loads(sys.argv[3]))",
            SECRET,
            &tampered,
            &serde_json::json!({"webhook-id": hooks[0].header("webhook-id").unwrap(), "webhook-timestamp": hooks[0].header("webhook-timestamp").unwrap(), "webhook-signature": hooks[0].header("webhook-signature").unwrap()}).to_string(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a tampered body verified");
    let body = hooks[0].json();
    assert_eq!(body["type"], "firedrill.started");
    assert_eq!(body["data"]["experiment"], "az-loss");
    // The flaky sink got `finished` only, after one 503 and a retry; the outcomes are kept.
    let flaky = reqs.iter().filter(|r| r.path == "/flaky").count();
    assert_eq!(flaky, 2, "one 503, one retry");
    let run = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("journal.jsonl").exists())
        .unwrap();
    let deliveries: Vec<Json> = std::fs::read_to_string(run.join("notifications.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(deliveries.iter().all(|d| d["ok"] == true), "{deliveries:?}");
    assert!(
        deliveries
            .iter()
            .any(|d| d["sink"] == "webhook" && d["attempts"] == 2 && d["event"] == "finished"),
        "{deliveries:?}"
    );
    // The Slack URL is a secret: it is in no file of the run.
    for f in std::fs::read_dir(&run).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
        assert!(
            !text.contains("secret-token") && !text.contains("R0UTINGKEY"),
            "a secret reached a run file"
        );
    }
}

#[test]
fn an_aborted_drill_triggers_a_pagerduty_alert_resolved_once_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let (port, seen) = receiver();
    let env = environment(dir.path(), port);
    let exp = dir.path().join("abort.yaml");
    std::fs::write(
        &exp,
        "apiVersion: firedrill.dev/v1\nkind: Experiment\nmetadata: {name: aborts}\nsteps:\n  - id: fault\n    action: command\n    with: {run: [touch, fault]}\n    rollback: {action: command, with: {run: [rm, -f, fault]}}\n  - id: breaks\n    action: command\n    after: [fault]\n    with: {run: [\"false\"]}\n",
    )
    .unwrap();
    let (code, _, stderr) = firedrill(
        dir.path(),
        &["run", exp.to_str().unwrap(), "--env", &env, "-q"],
        &vars(port),
    );
    assert_eq!(code, 5, "{stderr}");
    let reqs = seen.lock().unwrap().clone();
    let alerts: Vec<Json> = reqs
        .iter()
        .filter(|r| r.path == "/pd/v2/enqueue")
        .map(Req::json)
        .collect();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(alerts[0]["event_action"], "trigger");
    assert_eq!(alerts[0]["payload"]["severity"], "error");
    assert!(
        alerts[0]["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("ABORTED"),
        "{}",
        alerts[0]
    );
    assert_eq!(alerts[1]["event_action"], "resolve");
    assert_eq!(alerts[0]["dedup_key"], alerts[1]["dedup_key"]);
    assert!(
        alerts[0]["dedup_key"]
            .as_str()
            .unwrap()
            .starts_with("firedrill-"),
        "{}",
        alerts[0]
    );
}

#[test]
fn notifications_never_change_a_verdict_and_unset_secrets_stop_the_run_first() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: every delivery fails, the drill still passes.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = environment(dir.path(), port);
    let exp = Path::new(MANIFEST)
        .join("experiments/pod-kill.yaml")
        .display()
        .to_string();
    let (code, _, stderr) = firedrill(dir.path(), &["run", &exp, "--env", &env, "-q"], &vars(port));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("failed: slack started (3 attempt(s): 127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("cannot connect"), "{stderr}");
    // An unset variable: exit 7 before anything runs, naming the variable.
    let mut v = vars(port);
    v.retain(|(k, _)| *k != "FD_TEST_PD");
    let (code, _, stderr) = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["run", &exp, "--env", &env])
        .current_dir(dir.path())
        .env("FIREDRILL_RUNS_DIR", dir.path().join("runs2"))
        .env_remove("FD_TEST_PD")
        .envs(v.iter().map(|(k, x)| (*k, x.as_str())))
        .output()
        .map(|o| {
            (
                o.status.code().unwrap(),
                String::new(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert_eq!(code, 7, "{stderr}");
    assert!(
        stderr.contains("the environment variable FD_TEST_PD is not set"),
        "{stderr}"
    );
    assert!(!dir.path().join("runs2").exists(), "nothing ran");
}
