//! Game days end to end with the real binary: the sample playbook's GO on the built-in estate,
//! its evidence fresh then stale on a fake clock (`evidence --at`), JUnit read by a real consumer
//! (junitparser, from PyPI), approval gates failing closed, `stop_on`, and bad playbooks
//! rejected with located errors before anything runs.

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const PLAYBOOK: &str = "playbooks/quarterly-dr-game-day.yaml";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn expect(self, code: i32) -> Out {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

struct Lab {
    dir: TempDir,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            dir: TempDir::new().expect("temp dir"),
        }
    }

    fn runs(&self) -> PathBuf {
        self.dir.path().join("runs")
    }

    fn firedrill(&self, args: &[&str]) -> Out {
        let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .args(args)
            .current_dir(MANIFEST)
            .env("FIREDRILL_RUNS_DIR", self.runs())
            .env("FIREDRILL_LESSONS_DIR", self.dir.path().join("lessons"))
            .env_remove("RUST_LOG")
            .output()
            .expect("run firedrill");
        Out {
            code: out.status.code().expect("exit code"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The game-day directories, oldest first (by their start: ids made in one second sort by
    /// their random suffix).
    fn gamedays(&self) -> Vec<PathBuf> {
        let mut v: Vec<(chrono::DateTime<chrono::Utc>, PathBuf)> =
            std::fs::read_dir(self.runs().join("gamedays"))
                .map(|rd| rd.map(|e| e.unwrap().path()).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    let g: Json =
                        serde_json::from_slice(&std::fs::read(p.join("gameday.json")).unwrap())
                            .unwrap();
                    (g["started"].as_str().unwrap().parse().unwrap(), p)
                })
                .collect();
        v.sort();
        v.into_iter().map(|(_, p)| p).collect()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

fn experiment(name: &str) -> String {
    Path::new(MANIFEST)
        .join("experiments")
        .join(name)
        .display()
        .to_string()
}

/// junitparser's reading of a JUnit file: per suite, its counts and its cases' results.
fn junitparser(xml: &Path) -> Json {
    let python = std::env::var("FIREDRILL_VENV_PYTHON").unwrap_or_else(|_| {
        panic!("FIREDRILL_VENV_PYTHON is not set: the JUnit tests read the output with junitparser (PyPI). Run the tests with ./scripts/test, which installs it into .venv and sets it")
    });
    let script = r#"
import json, sys
from junitparser import JUnitXml, Failure, Error, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
suites = []
for s in xml:
    cases = []
    for c in s:
        kind, msg = "pass", None
        for r in c.result:
            kind = {Failure: "failure", Error: "error", Skipped: "skipped"}.get(type(r), type(r).__name__)
            msg = r.message
        cases.append({"name": c.name, "classname": c.classname, "result": kind, "message": msg, "time": c.time})
    suites.append({"name": s.name, "tests": s.tests, "failures": s.failures, "errors": s.errors, "skipped": s.skipped, "cases": cases})
print(json.dumps({"suites": suites}))
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(xml)
        .output()
        .expect("run junitparser");
    assert!(
        out.status.success(),
        "junitparser failed on {}: {}",
        xml.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("junitparser's JSON")
}

fn at(offset_days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(offset_days)).to_rfc3339()
}

fn statuses(out: &Out) -> Vec<(String, String)> {
    let doc: Json = serde_json::from_str(&out.stdout).expect("evidence json");
    doc["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["control"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_sample_game_day_is_a_go_and_its_evidence_goes_stale_with_age() {
    let lab = Lab::new();
    // Before any drill: every control is never run, and the gate says so.
    let none = lab
        .firedrill(&["evidence", PLAYBOOK, "--output", "json"])
        .expect(10);
    assert!(
        statuses(&none).iter().all(|(_, s)| s == "never_run"),
        "{}",
        none.stdout
    );

    let out = lab
        .firedrill(&["gameday", "run", PLAYBOOK, "--approve", "-q"])
        .expect(0);
    assert!(out.stdout.contains(": GO"), "{}", out.stdout);
    let dir = lab.gamedays().pop().expect("a game-day directory");
    let report = std::fs::read_to_string(dir.join("gameday.md")).unwrap();
    assert!(
        report.starts_with("# Game day: Quarterly DR game day (launch checklist evidence) — GO"),
        "{report}"
    );
    for want in [
        "- all 5 drills passed",
        "`region-failover`: RTO verified (2m30s / 15m met)",
        "`pitr-restore`: RTO verified (12m10s / 15m met)",
        "all 4 checklist controls are evidenced",
        "| 5 | region-failover | PASS | 2m30s / 15m met |",
        "| DR failover tested (RTO < 15 min verified) | fresh |",
        "**100/100**",
        "## Post-mortem",
        "First game day of this playbook",
    ] {
        assert!(report.contains(want), "missing {want:?} in\n{report}");
    }
    let g: Json =
        serde_json::from_slice(&std::fs::read(dir.join("gameday.json")).unwrap()).unwrap();
    assert_eq!(g["exit_code"], 0);
    let run_ids: Vec<&str> = g["drills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(run_ids.len(), 5);
    for id in &run_ids {
        assert!(
            lab.runs().join(id).join("report.md").is_file(),
            "{id} has its own run and report"
        );
    }

    // Evidence on a fake clock: fresh a day later; after 31 days the 30-day controls are stale
    // and the 90-day ones fresh; after 91 days all are stale.
    let day1 = lab
        .firedrill(&["evidence", PLAYBOOK, "--output", "json", "--at", &at(1)])
        .expect(0);
    assert!(
        statuses(&day1).iter().all(|(_, s)| s == "fresh"),
        "{}",
        day1.stdout
    );
    let day26 = lab
        .firedrill(&["evidence", PLAYBOOK, "--output", "json", "--at", &at(26)])
        .expect(0);
    let st = statuses(&day26);
    assert_eq!(
        st[1],
        (
            "DR failover tested (RTO < 15 min verified)".into(),
            "expiring".into()
        )
    );
    assert_eq!(st[0].1, "fresh");
    let day31 = lab
        .firedrill(&["evidence", PLAYBOOK, "--at", &at(31)])
        .expect(10);
    assert!(
        day31
            .stdout
            .contains("| DR failover tested (RTO < 15 min verified) | STALE |"),
        "{}",
        day31.stdout
    );
    assert!(
        day31
            .stdout
            .contains("| DR tested within 30 days | STALE |"),
        "{}",
        day31.stdout
    );
    assert!(
        day31
            .stdout
            .contains("| Chaos experiments completed successfully | fresh |"),
        "{}",
        day31.stdout
    );
    assert!(
        day31
            .stdout
            .contains("2 of 4 control(s) evidenced; 2 stale, failing or never run"),
        "{}",
        day31.stdout
    );
    let day91 = lab
        .firedrill(&["evidence", PLAYBOOK, "--output", "json", "--at", &at(91)])
        .expect(10);
    assert!(
        statuses(&day91).iter().all(|(_, s)| s == "stale"),
        "{}",
        day91.stdout
    );

    // A changed journal line is not evidence: the control loses its run.
    let rf = lab.runs().join(run_ids[4]).join("journal.jsonl");
    let text = std::fs::read_to_string(&rf).unwrap();
    std::fs::write(
        &rf,
        text.replacen("\"verdict\"", "\"verdict\" ", 1).replacen(
            "region-failover",
            "region-failover ",
            1,
        ),
    )
    .unwrap();
    let tampered = lab
        .firedrill(&["evidence", PLAYBOOK, "--at", &at(1)])
        .expect(10);
    assert!(
        tampered
            .stdout
            .contains("| DR failover tested (RTO < 15 min verified) | NEVER RUN |"),
        "{}",
        tampered.stdout
    );
    assert!(
        tampered.stdout.contains("its journal does not verify"),
        "{}",
        tampered.stdout
    );

    // The second game day compares with the first.
    lab.firedrill(&["gameday", "run", PLAYBOOK, "--approve", "-q"])
        .expect(0);
    let dir = lab.gamedays().pop().unwrap();
    let report = std::fs::read_to_string(dir.join("gameday.md")).unwrap();
    assert!(
        report.contains("Against the 1 earlier game day(s)"),
        "{report}"
    );
    assert!(
        report.contains("| region-failover | RTO | 2m30s | 2m30s | same |"),
        "{report}"
    );
    assert!(
        report.contains("Resilience score across game days: 100 → 100."),
        "{report}"
    );
}

#[test]
fn junit_of_a_game_day_and_of_a_missed_drill_reads_in_junitparser() {
    let lab = Lab::new();
    let out = lab
        .firedrill(&["gameday", "run", PLAYBOOK, "--approve", "--output", "junit"])
        .expect(0);
    let xml = lab.write("gameday.xml", &out.stdout);
    let parsed = junitparser(Path::new(&xml));
    let suites = parsed["suites"].as_array().unwrap();
    let names: Vec<&str> = suites.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "pod-kill",
            "az-loss",
            "db-failover",
            "pitr-restore",
            "region-failover",
            "go/no-go"
        ]
    );
    assert!(
        suites
            .iter()
            .all(|s| s["failures"] == 0 && s["errors"] == 0),
        "{parsed}"
    );
    let rf = &suites[4]["cases"];
    assert!(
        rf.as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "RTO 2m30s (objective 15m)"
                && c["result"] == "pass"
                && c["time"] == 150.0),
        "{rf}"
    );
    // The game-day directory holds the same document.
    let dir = lab.gamedays().pop().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("junit.xml")).unwrap(),
        out.stdout
    );

    // A what-if that misses its RTO: the failure names the figure against the objective.
    let out = lab
        .firedrill(&[
            "run",
            &experiment("region-failover.yaml"),
            "--set",
            "sim.dns[0].ttl=1h",
            "--output",
            "junit",
        ])
        .expect(4);
    // Its report's trend compares it with the game day's region-failover run, marked what-if.
    let latest = std::fs::read_dir(lab.runs())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("journal.jsonl").exists())
        .filter_map(|p| {
            let s: Json =
                serde_json::from_slice(&std::fs::read(p.join("summary.json")).ok()?).ok()?;
            (s["experiment"] == "region-failover" && !s["environment_sets"].is_null()).then_some(p)
        })
        .next()
        .expect("the what-if run");
    let report = std::fs::read_to_string(latest.join("report.md")).unwrap();
    assert!(
        report.contains("This run against the 1 run(s) before it"),
        "{report}"
    );
    assert!(report.contains("(what-if) (this run) |"), "{report}");
    assert!(report.contains("| PASS | 2m30s | 1s | 30s |"), "{report}");
    let xml = lab.write("missed.xml", &out.stdout);
    let parsed = junitparser(Path::new(&xml));
    let suite = &parsed["suites"][0];
    assert_eq!(suite["name"], "region-failover");
    assert!(suite["failures"].as_i64().unwrap() >= 1, "{parsed}");
    let rto = suite["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with("RTO"))
        .expect("an RTO case");
    assert_eq!(rto["result"], "failure", "{rto}");
    let msg = rto["message"].as_str().unwrap();
    assert!(
        msg.starts_with("RTO not reached by the 20m deadline against an objective of 15m"),
        "{msg}"
    );
}

#[test]
fn an_approval_gate_fails_closed_unattended_and_stop_on_stops_the_game_day() {
    let lab = Lab::new();
    // Unattended without --approve the region-failover gate could only refuse: the game day is
    // refused before its first drill, not after four of them (exit 2, nothing ran).
    let out = lab.firedrill(&["gameday", "run", PLAYBOOK, "-q"]).expect(2);
    assert!(
        out.stderr.contains("drill(s) `region-failover` need an approval, and no terminal is here to ask; nothing ran"),
        "{}",
        out.stderr
    );
    assert!(!lab.runs().exists(), "nothing ran, nothing was written");
    // An `approval` step inside a drill's experiment counts the same.
    let exp = lab.write(
        "asks.yaml",
        "apiVersion: firedrill.dev/v1\nkind: Experiment\nmetadata: {name: asks}\nsteps:\n  - id: ok\n    action: approval\n    with: {message: go?}\n",
    );
    let pb = lab.write(
        "asks-pb.yaml",
        &format!("apiVersion: firedrill.dev/v1\nkind: Playbook\nmetadata: {{name: asks}}\ndrills:\n  - experiment: {}\n  - experiment: {exp}\n", experiment("pod-kill.yaml")),
    );
    let out = lab.firedrill(&["gameday", "run", &pb, "-q"]).expect(2);
    assert!(
        out.stderr.contains("drill(s) `asks` need an approval"),
        "{}",
        out.stderr
    );
    assert!(!lab.runs().exists());
    // The scheduler refuses to serve a gated playbook unattended, before it waits for anything.
    let out = lab.firedrill(&["schedule", "run", PLAYBOOK]).expect(2);
    assert!(
        out.stderr
            .contains("drill `region-failover` has an approval gate"),
        "{}",
        out.stderr
    );

    // A drill that misses its objective: carried on by default, stopped by `stop_on: [missed]`.
    let play = |stop: &str| {
        format!(
            "apiVersion: firedrill.dev/v1\nkind: Playbook\nmetadata: {{name: what-if}}\n{stop}drills:\n  - experiment: {}\n    set: {{\"sim.dns[0].ttl\": 1h}}\n  - experiment: {}\n",
            experiment("region-failover.yaml"),
            experiment("pod-kill.yaml")
        )
    };
    let carry = lab.write("carry.yaml", &play(""));
    let out = lab.firedrill(&["gameday", "run", &carry, "-q"]).expect(4);
    assert!(
        out.stdout.contains("region-failover          MISSED"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("pod-kill                 PASS"),
        "{}",
        out.stdout
    );
    let stop = lab.write("stop.yaml", &play("stop_on: [missed]\n"));
    let out = lab.firedrill(&["gameday", "run", &stop, "-q"]).expect(4);
    assert!(
        out.stdout.contains("pod-kill                 skipped"),
        "{}",
        out.stdout
    );
    let report = std::fs::read_to_string(lab.gamedays().pop().unwrap().join("gameday.md")).unwrap();
    assert!(report.contains("region-failover (what-if)"), "{report}");
    assert!(
        report.contains(
            "the game day stopped after drill `region-failover`: MISSED (stop_on: missed)"
        ),
        "{report}"
    );
}

#[test]
fn bad_playbooks_are_located_and_nothing_runs() {
    let lab = Lab::new();
    let missing = lab.write(
        "missing.yaml",
        &format!(
            "apiVersion: firedrill.dev/v1\nkind: Playbook\nmetadata: {{name: gd}}\ndrills:\n  - experiment: {}\n  - experiment: nope.yaml\n",
            experiment("pod-kill.yaml")
        ),
    );
    let out = lab.firedrill(&["gameday", "run", &missing]).expect(2);
    assert!(out.stderr.contains("missing.yaml:6:17"), "{}", out.stderr);
    assert!(
        out.stderr.contains("nope.yaml does not exist"),
        "{}",
        out.stderr
    );
    // An invalid experiment is located in its own file.
    let bad_exp = lab.write(
        "bad-exp.yaml",
        "apiVersion: firedrill.dev/v1\nkind: Experiment\nmetadata: {name: x}\nsteps:\n  - id: a\n    action: wiat\n",
    );
    let bad = lab.write(
        "bad.yaml",
        &format!("apiVersion: firedrill.dev/v1\nkind: Playbook\nmetadata: {{name: gd}}\ndrills:\n  - experiment: {bad_exp}\n"),
    );
    let out = lab.firedrill(&["gameday", "run", &bad]).expect(2);
    assert!(out.stderr.contains("bad-exp.yaml:6:13"), "{}", out.stderr);
    assert!(out.stderr.contains("drill `bad-exp`"), "{}", out.stderr);
    // A cycle, a bad cron and an unknown key, all at once.
    let cyc = lab.write(
        "cycle.yaml",
        &format!(
            "apiVersion: firedrill.dev/v1\nkind: Playbook\nmetadata: {{name: gd}}\nschedule: \"0 25 * * *\"\ndrills:\n  - {{experiment: {0}, name: a, after: [b]}}\n  - {{experiment: {0}, name: b, after: [a]}}\ncontrol: []\n",
            experiment("pod-kill.yaml")
        ),
    );
    let out = lab.firedrill(&["gameday", "run", &cyc]).expect(2);
    for want in [
        "cycle.yaml:4:11",
        "not a valid cron expression",
        "form a cycle",
        "unknown key `control`",
        "did you mean `controls`",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in\n{}",
            out.stderr
        );
    }
    assert!(!lab.runs().exists(), "nothing ran, nothing was written");
    // A preflight problem in a later drill stops the game day before the first drill.
    let ghost = lab.write(
        "ghost.yaml",
        "apiVersion: firedrill.dev/v1\nkind: Experiment\nmetadata: {name: ghost}\nsteps:\n  - id: kill\n    action: k8s.pod_kill\n    with: {namespace: web, selector: {app: ghost}, mode: fixed, value: 1}\n",
    );
    let pre = lab.write(
        "pre.yaml",
        &format!("apiVersion: firedrill.dev/v1\nkind: Playbook\nmetadata: {{name: gd}}\ndrills:\n  - experiment: {}\n  - experiment: {ghost}\n", experiment("pod-kill.yaml")),
    );
    let out = lab.firedrill(&["gameday", "run", &pre]).expect(7);
    assert!(
        out.stderr.contains("drill `ghost`") && out.stderr.contains("the game day did not start"),
        "{}",
        out.stderr
    );
    assert!(!lab.runs().exists(), "no drill ran");
}

#[test]
fn schedule_next_lists_times_in_the_zone_and_the_skipped_ones() {
    let lab = Lab::new();
    let p = lab.write(
        "sched.yaml",
        &format!(
            "apiVersion: firedrill.dev/v1\nkind: Playbook\nmetadata: {{name: gd}}\nschedule:\n  cron: \"30 9 * * MON\"\n  timezone: America/New_York\n  blackout: [{{from: 2026-12-21, to: 2027-01-03, reason: holiday freeze}}]\ndrills:\n  - experiment: {}\n",
            experiment("pod-kill.yaml")
        ),
    );
    let out = lab
        .firedrill(&[
            "schedule",
            "next",
            &p,
            "--count",
            "4",
            "--after",
            "2026-12-10T00:00:00Z",
        ])
        .expect(0);
    let lines: Vec<&str> = out.stdout.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "  2026-12-14 14:30 UTC  (Mon 2026-12-14 09:30 EST)",
            "  2026-12-21 14:30 UTC  (Mon 2026-12-21 09:30 EST)  skipped: blackout 2026-12-21 to 2027-01-03 (holiday freeze)",
            "  2026-12-28 14:30 UTC  (Mon 2026-12-28 09:30 EST)  skipped: blackout 2026-12-21 to 2027-01-03 (holiday freeze)",
            "  2027-01-04 14:30 UTC  (Mon 2027-01-04 09:30 EST)",
        ],
        "{}",
        out.stdout
    );
}

#[test]
fn the_cronjob_export_is_a_valid_cronjob_and_if_due_skips_what_is_not_due() {
    let lab = Lab::new();
    let out = lab
        .firedrill(&[
            "schedule",
            "export",
            PLAYBOOK,
            "--approve",
            "--namespace",
            "chaos",
        ])
        .expect(0);
    assert!(
        out.stderr.contains("the CronJob fires on `0 14 * * TUE`"),
        "{}",
        out.stderr
    );
    for want in [
        "schedule: \"0 14 * * TUE\"",
        "timeZone: \"UTC\"",
        "concurrencyPolicy: Forbid",
        "startingDeadlineSeconds: 7200",
        "firedrill.dev/cron: \"0 14 * * TUE#1\"",
        "args: [\"gameday\", \"run\", \"playbooks/quarterly-dr-game-day.yaml\", \"--if-due\", \"--approve\"]",
        "claimName: \"firedrill-runs\"",
        "serviceAccountName: \"firedrill\"",
    ] {
        assert!(
            out.stdout.contains(want),
            "missing {want:?} in\n{}",
            out.stdout
        );
    }
    let file = lab.write("cronjob.yaml", &out.stdout);
    // Kubernetes 1.31's published schemas, strictly (no unknown field anywhere).
    let validate = std::env::var("FIREDRILL_KUBE_VALIDATE").unwrap_or_else(|_| {
        panic!("FIREDRILL_KUBE_VALIDATE is not set: run the tests with ./scripts/test, which installs kubernetes-validate (PyPI) into .venv")
    });
    let v = Command::new(&validate)
        .args(["-k", "1.31.0", "--strict", &file])
        .output()
        .expect("run kubernetes-validate");
    assert!(
        v.status.success(),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    // A field Kubernetes does not have fails the same check (the check can fail).
    let bad = lab.write(
        "bad.yaml",
        &out.stdout
            .replace("backoffLimit: 0", "backoffLimit: 0\n      retries: 3"),
    );
    let v = Command::new(&validate)
        .args(["-k", "1.31.0", "--strict", &bad])
        .output()
        .unwrap();
    assert!(!v.status.success());
    // The real kubectl reads it as a batch/v1 CronJob without a server.
    let k = Command::new("kubectl")
        .args([
            "annotate",
            "--local",
            "-f",
            &file,
            "checked=yes",
            "-o",
            "jsonpath={.kind} {.spec.jobTemplate.spec.template.spec.containers[0].args}",
        ])
        .env("KUBECONFIG", "/dev/null")
        .output()
        .expect("kubectl (Debian's kubernetes-client; ./scripts/test installs it)");
    assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
    assert!(
        String::from_utf8_lossy(&k.stdout).starts_with("CronJob [\"gameday\",\"run\""),
        "{}",
        String::from_utf8_lossy(&k.stdout)
    );

    // --if-due: a schedule whose newest time is far outside its deadline does not run; one due
    // now (every minute, 1h deadline) runs.
    let play = |cron: &str| {
        format!(
            "apiVersion: firedrill.dev/v1\nkind: Playbook\nmetadata: {{name: due}}\nschedule: {{cron: \"{cron}\", starting_deadline: 1h}}\ndrills:\n  - experiment: {}\n",
            experiment("pod-kill.yaml")
        )
    };
    let leap = lab.write("leap.yaml", &play("0 0 29 2 *"));
    let out = lab
        .firedrill(&["gameday", "run", &leap, "--if-due"])
        .expect(0);
    assert!(
        out.stdout.contains("not due: its newest scheduled time"),
        "{}",
        out.stdout
    );
    assert!(!lab.runs().exists(), "nothing ran");
    let every = lab.write("every.yaml", &play("* * * * *"));
    let out = lab
        .firedrill(&["gameday", "run", &every, "--if-due", "-q"])
        .expect(0);
    assert!(out.stdout.contains(": GO"), "{}", out.stdout);
    // Paused: not due.
    lab.firedrill(&["schedule", "pause", &every]).expect(0);
    let out = lab
        .firedrill(&["gameday", "run", &every, "--if-due"])
        .expect(0);
    assert!(
        out.stdout.contains("not due: the schedule is paused"),
        "{}",
        out.stdout
    );
    lab.firedrill(&["schedule", "resume", &every]).expect(0);
    let status = lab.firedrill(&["schedule", "status", &every]).expect(0);
    assert!(
        status.stdout.starts_with("due: active"),
        "{}",
        status.stdout
    );
}

#[test]
fn the_scheduler_process_starts_a_due_game_day_and_stops_on_sigterm() {
    // The real binary on wall time: an every-minute schedule with a drill of real waits is
    // started at the next minute; SIGTERM stops the scheduler and the running game day, whose
    // drill rolls back; the state says what happened.
    let lab = Lab::new();
    let exp = lab.write(
        "slow.yaml",
        "apiVersion: firedrill.dev/v1\nkind: Experiment\nmetadata: {name: slow}\nsteps:\n  - id: fault\n    action: command\n    with: {run: [touch, fault]}\n    rollback: {action: command, with: {run: [rm, -f, fault]}}\n  - id: hold\n    action: command\n    after: [fault]\n    with: {run: [sleep, \"300\"], timeout: 10m}\n",
    );
    let pb = lab.write(
        "sched.yaml",
        &format!("apiVersion: firedrill.dev/v1\nkind: Playbook\nmetadata: {{name: every-minute}}\nschedule: {{cron: \"* * * * *\"}}\ndrills:\n  - experiment: {exp}\n"),
    );
    // The scheduler last served it two minutes ago: this minute's time is due at once (within
    // the starting deadline), so the test does not wait for the next minute.
    let parsed =
        firedrill::lang::playbook::parse_playbook(&pb, std::fs::read(&pb).unwrap().as_slice())
            .unwrap();
    let two_ago = chrono::Utc::now() - chrono::Duration::minutes(2);
    let state = firedrill::engine::timetable::State::new(
        "every-minute",
        parsed.schedule.as_ref().unwrap(),
        two_ago,
    );
    firedrill::engine::timetable::save(
        &firedrill::engine::timetable::state_path(&lab.runs(), "every-minute"),
        &state,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["schedule", "run", &pb])
        .stdout(std::process::Stdio::null())
        .current_dir(lab.dir.path())
        .env("FIREDRILL_RUNS_DIR", lab.runs())
        .env("FIREDRILL_LESSONS_DIR", lab.dir.path().join("lessons"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let fault = lab.dir.path().join("fault");
    let deadline = std::time::Instant::now() + Duration::from_secs(75);
    while !fault.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no game day started within 75s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!fault.exists(), "the running drill rolled back\n{stderr}");
    let state: Json = serde_json::from_slice(
        &std::fs::read(lab.runs().join("schedules/every-minute.json")).unwrap(),
    )
    .unwrap();
    let whats: Vec<&str> = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert_eq!(whats, ["missed", "started", "stopped"], "{state}");
    assert_eq!(
        state["history"][2]["exit_code"], 5,
        "the interrupted game day exits as an aborted drill"
    );
    assert!(state["running"].as_array().unwrap().is_empty());
}

#[test]
fn a_what_if_run_says_so_and_its_action_items_stay_apart() {
    let lab = Lab::new();
    let rf = experiment("region-failover.yaml");
    lab.firedrill(&[
        "run",
        &rf,
        "--set",
        "sim.dns[0].ttl=1h",
        "--var",
        "dr_cluster=orders-db-dr",
        "--seed",
        "7",
        "-q",
    ])
    .expect(4);
    lab.firedrill(&["run", &rf, "-q"]).expect(0);
    let mut reports: Vec<(chrono::DateTime<chrono::Utc>, String)> = std::fs::read_dir(lab.runs())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").exists())
        .map(|p| {
            let s: Json =
                serde_json::from_slice(&std::fs::read(p.join("summary.json")).unwrap()).unwrap();
            (
                s["started"].as_str().unwrap().parse().unwrap(),
                std::fs::read_to_string(p.join("report.md")).unwrap(),
            )
        })
        .collect();
    reports.sort();
    let (what_if, real) = (&reports[0].1, &reports[1].1);
    assert!(what_if.contains("> **What-if run:** the environment was changed for this run (`--set sim.dns[0].ttl=1h`)"), "{what_if}");
    assert!(
        what_if.contains(
            "| Overrides | `--set sim.dns[0].ttl=1h`, `--var dr_cluster=orders-db-dr`, `--seed 7` |"
        ),
        "{what_if}"
    );
    // The miss's action items (the RTO) are not the experiment's open items.
    assert!(!real.contains("What-if run"), "{real}");
    assert!(
        real.contains("## Open action items from earlier drills of this experiment\n\nNone."),
        "{real}"
    );
    let journal = std::fs::read_to_string(
        lab.runs()
            .join(
                std::fs::read_dir(lab.runs())
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .find(|p| {
                        p.join("journal.jsonl").exists()
                            && std::fs::read_to_string(p.join("journal.jsonl"))
                                .unwrap()
                                .contains("\"seed\":7")
                    })
                    .unwrap(),
            )
            .join("journal.jsonl"),
    )
    .unwrap();
    assert!(
        journal
            .lines()
            .next()
            .unwrap()
            .contains("\"overrides\":{\"vars\":[[\"dr_cluster\",\"orders-db-dr\"]],\"seed\":7}"),
        "{}",
        journal.lines().next().unwrap()
    );
}

#[test]
fn validate_checks_a_playbook_with_its_drills_and_run_points_a_playbook_to_gameday() {
    let lab = Lab::new();
    let out = lab.firedrill(&["validate", PLAYBOOK]).expect(0);
    assert_eq!(
        out.stdout.trim(),
        "ok: playbooks/quarterly-dr-game-day.yaml (playbook: 5 drills, 4 controls, schedule `0 14 * * TUE#1` in UTC)"
    );
    // A drill's broken experiment fails the playbook's validation, located in its own file.
    let bad_exp = lab.write("bad.yaml", "apiVersion: firedrill.dev/v1\nkind: Experiment\nmetadata: {name: x}\nsteps:\n  - id: a\n    action: wiat\n");
    let pb = lab.write("pb.yaml", &format!("apiVersion: firedrill.dev/v1\nkind: Playbook\nmetadata: {{name: gd}}\ndrills:\n  - experiment: {bad_exp}\n"));
    let out = lab.firedrill(&["validate", &pb]).expect(2);
    assert!(out.stderr.contains("bad.yaml:6:13"), "{}", out.stderr);
    // `run` on a playbook: one error that says what to do, not the playbook's keys as mistakes.
    let out = lab.firedrill(&["run", PLAYBOOK]).expect(2);
    assert!(
        out.stderr
            .contains("this is a game-day playbook: run it with `firedrill gameday run`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("1 problem found"), "{}", out.stderr);
}
