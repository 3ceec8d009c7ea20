//! End-to-end tests of the `firedrill` binary: exit codes, files written (or not), output.
//! Every test runs in its own temporary directory with its own runs and lessons directories.

use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn repo(rel: &str) -> String {
    Path::new(MANIFEST).join(rel).display().to_string()
}

/// The sample experiments, listed at test time (others are added in parallel).
fn samples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(MANIFEST).join("experiments"))
        .expect("experiments/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no sample experiments");
    v
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(MANIFEST).join("tests/fixtures"))
        .expect("tests/fixtures/")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures");
    v
}

struct Test {
    dir: TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    fn expect_code(self, code: i32) -> Output {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Test {
    fn new() -> Test {
        Test {
            dir: TempDir::new().expect("temp dir"),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Set an environment variable for the binary.
    fn env(mut self, k: &str, v: &str) -> Test {
        self.env.push((k.into(), v.into()));
        self
    }

    fn args<I, S>(mut self, args: I) -> Test
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args = args.into_iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    fn runs_dir(&self) -> PathBuf {
        self.dir.path().join("runs")
    }

    fn lessons_dir(&self) -> PathBuf {
        self.dir.path().join("lessons")
    }

    /// Run the binary with the current arguments; the test can be re-used with new arguments
    /// (same temporary directory).
    fn run(&self) -> Output {
        let mut args = self.args.clone();
        let sub = args.first().cloned().unwrap_or_default();
        let help = args.iter().any(|a| a == "--help" || a == "-h");
        if !help && matches!(sub.as_str(), "run" | "runs" | "report") {
            args.push("--runs-dir".into());
            args.push(self.runs_dir().display().to_string());
        }
        if !help && matches!(sub.as_str(), "run" | "report") {
            args.push("--lessons-dir".into());
            args.push(self.lessons_dir().display().to_string());
        }
        let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .args(&args)
            .current_dir(self.dir.path())
            .env("FIREDRILL_RUNS_DIR", self.runs_dir())
            .env("FIREDRILL_LESSONS_DIR", self.lessons_dir())
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run firedrill");
        Output {
            code: out
                .status
                .code()
                .expect("exit code (not killed by a signal)"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run directories written so far.
    fn run_dirs(&self) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(self.runs_dir()) else {
            return Vec::new();
        };
        // Run directories hold a journal (`locks/` holds the environment locks).
        let mut v: Vec<PathBuf> = rd
            .map(|e| e.expect("entry").path())
            .filter(|p| p.join("journal.jsonl").exists())
            .collect();
        v.sort();
        v
    }
}

#[test]
fn help_for_every_subcommand() {
    for sub in [
        "validate", "plan", "run", "runs", "report", "gameday", "evidence", "schedule",
    ] {
        let out = Test::new().args([sub, "--help"]).run().expect_code(0);
        assert!(
            out.stdout.contains("Usage: firedrill"),
            "{sub}: {}",
            out.stdout
        );
    }
    let out = Test::new().args(["run", "--help"]).run().expect_code(0);
    assert!(out.stdout.contains("Exit codes:"), "{}", out.stdout);
    for code in [
        "0  pass",
        "2  invalid input",
        "4  objective missed",
        "6  rollback",
    ] {
        assert!(out.stdout.contains(code), "missing `{code}`");
    }
    Test::new().args(["--help"]).run().expect_code(0);
}

#[test]
fn validate_samples_and_sim_environment() {
    let mut args = vec!["validate".to_string()];
    args.extend(samples().iter().map(|p| p.display().to_string()));
    args.push(repo("environments/sim.yaml"));
    let out = Test::new().args(&args).run().expect_code(0);
    for p in samples() {
        assert!(
            out.stdout.contains(&format!("ok: {}", p.display())),
            "{}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("(environment)"), "{}", out.stdout);
}

#[test]
fn every_bad_fixture_is_invalid_input_with_a_position_and_runs_nothing() {
    for f in fixtures() {
        let path = f.display().to_string();
        for cmd in ["validate", "plan", "run"] {
            let t = Test::new().args([cmd, path.as_str()]);
            let out = t.run().expect_code(2);
            assert!(
                out.stderr.contains(&format!("{path}:")),
                "{cmd} {path}: no file:line in\n{}",
                out.stderr
            );
            let line_col = out
                .stderr
                .split(&format!("{path}:"))
                .nth(1)
                .and_then(|r| r.split(':').next())
                .is_some_and(|n| n.parse::<u32>().is_ok());
            assert!(line_col, "{cmd} {path}: no line number in\n{}", out.stderr);
            assert!(out.stderr.contains("= help:"), "{}", out.stderr);
            assert!(!t.runs_dir().exists(), "{cmd} {path} created a runs dir");
            assert!(
                !t.lessons_dir().exists(),
                "{cmd} {path} created a lessons dir"
            );
        }
    }
}

#[test]
fn plan_shows_waves_critical_path_and_mermaid() {
    let out = Test::new()
        .args(["plan", &repo("experiments/pod-kill.yaml")])
        .run()
        .expect_code(0);
    for needle in [
        "Wave 1:",
        "Wave 2:",
        "Critical path",
        "```mermaid",
        "graph TD",
    ] {
        assert!(
            out.stdout.contains(needle),
            "missing {needle}:\n{}",
            out.stdout
        );
    }
    insta::assert_snapshot!("plan_pod_kill", out.stdout);
}

#[test]
fn dry_run_prints_targets_and_writes_nothing() {
    let t = Test::new().args(["run", &repo("experiments/pod-kill.yaml"), "--dry-run"]);
    let out = t.run().expect_code(0);
    assert!(out.stdout.contains("Would do:"), "{}", out.stdout);
    assert!(out.stdout.contains("kill 3 pod(s)"), "{}", out.stdout);
    assert!(out.stdout.contains("nothing was written"), "{}", out.stdout);
    assert!(!t.runs_dir().exists());
    assert!(!t.lessons_dir().exists());
    assert_eq!(std::fs::read_dir(t.dir.path()).expect("tmp").count(), 0);
}

#[test]
fn every_sample_runs_and_writes_journal_summary_report() {
    for s in samples() {
        let t = Test::new().args(["run", &s.display().to_string(), "-q"]);
        t.run().expect_code(0);
        let dirs = t.run_dirs();
        assert_eq!(dirs.len(), 1, "{}", s.display());
        for f in ["journal.jsonl", "summary.json", "report.md"] {
            let p = dirs[0].join(f);
            let len = std::fs::metadata(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .len();
            assert!(len > 0, "{} is empty", p.display());
        }
    }
}

#[test]
fn run_output_json_is_valid_and_has_the_verdict() {
    let out = Test::new()
        .args([
            "run",
            &repo("experiments/pod-kill.yaml"),
            "--output",
            "json",
        ])
        .run()
        .expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid JSON on stdout");
    let verdict = v["verdict"]["kind"].as_str().expect("verdict.kind");
    assert!(verdict.eq_ignore_ascii_case("pass"), "{verdict}");
    assert_eq!(v["experiment"], "pod-kill");
}

#[test]
fn runs_lists_the_run() {
    let mut t = Test::new().args(["runs"]);
    let out = t.run().expect_code(0);
    assert!(out.stdout.contains("no runs"), "{}", out.stdout);
    t = t.args(["run", &repo("experiments/pod-kill.yaml"), "-q"]);
    t.run().expect_code(0);
    let id = t.run_dirs()[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    t = t.args(["runs"]);
    let out = t.run().expect_code(0);
    assert!(out.stdout.contains(&id), "{}", out.stdout);
    assert!(out.stdout.contains("pod-kill"), "{}", out.stdout);
    assert!(out.stdout.contains("pass"), "{}", out.stdout);
}

fn key_lines(report: &str) -> Vec<&str> {
    report
        .lines()
        .filter(|l| {
            l.starts_with("Verdict:") || l.starts_with("| RTO |") || l.starts_with("| Run |")
        })
        .collect()
}

#[test]
fn report_latest_rerenders_from_the_journal_alone() {
    let mut t = Test::new().args(["run", &repo("experiments/pod-kill.yaml"), "-q"]);
    t.run().expect_code(0);
    let dir = t.run_dirs()[0].clone();
    let original = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    std::fs::remove_file(dir.join("report.md")).expect("rm report.md");
    std::fs::remove_file(dir.join("summary.json")).expect("rm summary.json");
    t = t.args(["report", "latest"]);
    let out = t.run().expect_code(0);
    let want = key_lines(&original);
    assert_eq!(want.len(), 3, "{original}");
    assert!(want.iter().any(|l| l.contains("PASS")), "{want:?}");
    assert_eq!(key_lines(&out.stdout), want, "{}", out.stdout);
}

/// Redactions for report snapshots: run ids, wall-clock times (not the timeline's offsets,
/// dated 1970-01-01), durations, paths, hashes.
fn report_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\d{8}T\d{6}Z-[a-z0-9-]+?-[0-9a-f]{4}", "[RUN_ID]"),
        (
            r"20\d{2}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?( UTC|Z)?",
            "[TIMESTAMP]",
        ),
        (r"20\d{2}-\d{2}-\d{2}", "[DATE]"),
        (
            r"(?m)^\| Duration \| [^|]+ \|$",
            "| Duration | [DURATION] |",
        ),
        (r"\(`[^`]*experiments/", "(`[DIR]/experiments/"),
        (r"chain ending `[0-9a-f]{64}`", "chain ending `[SHA256]`"),
    ]
}

#[test]
fn rendered_report_snapshot() {
    let mut t = Test::new().args([
        "run",
        &repo("experiments/pod-kill.yaml"),
        "-q",
        "--seed",
        "7",
    ]);
    t.run().expect_code(0);
    t = t.args(["report", "latest"]);
    let out = t.run().expect_code(0);
    insta::with_settings!({filters => report_filters()}, {
        insta::assert_snapshot!("report_pod_kill", out.stdout);
    });
}

/// Every sample's report, and the TTL-1h miss's, as snapshots: the text a team hands its
/// auditors does not change unnoticed.
#[test]
fn every_sample_report_snapshot() {
    let mut runs: Vec<(String, Vec<String>, i32)> = samples()
        .iter()
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                vec![p.display().to_string()],
                0,
            )
        })
        .collect();
    runs.push((
        "region-failover-ttl-1h".into(),
        vec![
            repo("experiments/region-failover.yaml"),
            "--set".into(),
            "sim.dns[0].ttl=1h".into(),
        ],
        4,
    ));
    for (name, args, code) in runs {
        let mut a = vec!["run".to_string()];
        a.extend(args);
        a.extend(["-q".into(), "--seed".into(), "7".into()]);
        let t = Test::new().args(a);
        t.run().expect_code(code);
        let dir = t.run_dirs().pop().unwrap();
        let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
        insta::with_settings!({filters => report_filters()}, {
            insta::assert_snapshot!(format!("sample_report_{name}"), report);
        });
    }
}

/// The drill that misses its RTO: region-failover with a 1h DNS TTL when that sample exists;
/// otherwise pod-kill killing one pod (no abort) whose replacement takes 20m to start.
fn missing_drill() -> Vec<String> {
    let rf = Path::new(MANIFEST).join("experiments/region-failover.yaml");
    if rf.exists() {
        vec![
            "run".into(),
            rf.display().to_string(),
            "-q".into(),
            "--set".into(),
            "sim.dns[0].ttl=1h".into(),
        ]
    } else {
        vec![
            "run".into(),
            repo("experiments/pod-kill.yaml"),
            "-q".into(),
            "--var".into(),
            "percent=20".into(),
            "--set".into(),
            "sim.kubernetes[0].deployments[0].startup=20m".into(),
        ]
    }
}

#[test]
fn lessons_accumulate_across_missed_runs() {
    let mut t = Test::new().args(missing_drill());
    t.run().expect_code(4);
    let first = t.run_dirs();
    assert_eq!(first.len(), 1);
    let first_id = first[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let first_report = std::fs::read_to_string(first[0].join("report.md")).expect("report");
    let first_section = first_report
        .split("## Open action items from earlier drills")
        .nth(1)
        .expect("open-items section");
    assert!(
        first_section.contains("None.") && !first_section.contains("| Run | Item |"),
        "{first_report}"
    );
    t = t.args(missing_drill());
    t.run().expect_code(4);
    let second = t
        .run_dirs()
        .into_iter()
        .find(|d| !d.ends_with(&first_id))
        .expect("second run");
    let report = std::fs::read_to_string(second.join("report.md")).expect("report");
    let section = report
        .split("## Open action items from earlier drills")
        .nth(1)
        .unwrap_or_else(|| panic!("no open-items section:\n{report}"));
    assert!(section.contains(&first_id), "{section}");
    assert!(section.contains("RTO"), "{section}");
}

#[test]
fn set_typo_is_invalid_with_a_suggestion() {
    let t = Test::new().args([
        "run",
        &repo("experiments/pod-kill.yaml"),
        "--set",
        "sim.kubernets[0].nodes_per_zone=2",
    ]);
    let out = t.run().expect_code(2);
    assert!(
        out.stderr.contains("did you mean `kubernetes`?"),
        "{}",
        out.stderr
    );
    assert!(!t.runs_dir().exists());
}

#[test]
fn unknown_var_is_invalid() {
    let t = Test::new().args([
        "run",
        &repo("experiments/pod-kill.yaml"),
        "--var",
        "namespce=x",
    ]);
    let out = t.run().expect_code(2);
    assert!(
        out.stderr.contains("no variable `namespce`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `namespace`?"),
        "{}",
        out.stderr
    );
    assert!(!t.runs_dir().exists());
}

#[test]
fn virtual_clock_with_a_command_step_is_invalid() {
    let t = Test::new();
    let exp = t.dir.path().join("cmd.yaml");
    std::fs::write(
        &exp,
        "apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {name: cmd}
steady_state:
  probes:
    - {name: ready, type: k8s.pods, with: {namespace: web, selector: {app: api}}, tolerance: {path: ready_ratio, min: 1}}
steps:
  - {id: kill, action: k8s.pod_kill, with: {namespace: web, selector: {app: api}}}
  - {id: hello, action: command, after: [kill], with: {run: [\"true\"]}}
recovery: {fault: kill, probes: [ready]}
",
    )
    .expect("write");
    let path = exp.display().to_string();
    let t = t.args(["validate", path.as_str()]);
    t.run().expect_code(0);
    let t = t.args(["run", path.as_str(), "--clock", "virtual"]);
    let out = t.run().expect_code(2);
    assert!(out.stderr.contains("--clock virtual"), "{}", out.stderr);
    assert!(!t.runs_dir().exists());
}

#[test]
fn nonexistent_file_and_directory_are_invalid() {
    for cmd in ["validate", "plan", "run"] {
        let t = Test::new().args([cmd, "no-such-file.yaml"]);
        let out = t.run().expect_code(2);
        assert!(out.stderr.contains("no-such-file.yaml"), "{}", out.stderr);
        let dir = repo("experiments");
        let t = Test::new().args([cmd, dir.as_str()]);
        let out = t.run().expect_code(2);
        assert!(out.stderr.contains("is a directory"), "{}", out.stderr);
        assert!(!t.runs_dir().exists());
    }
}

#[test]
fn protected_environment_needs_confirm() {
    let t = Test::new();
    let sim = std::fs::read_to_string(repo("environments/sim.yaml")).expect("sim.yaml");
    let env = t.dir.path().join("prod.yaml");
    let text = sim.replacen("backend: sim\n", "protected: true\nbackend: sim\n", 1);
    assert_ne!(text, sim);
    std::fs::write(&env, text).expect("write");
    let env = env.display().to_string();
    let exp = repo("experiments/pod-kill.yaml");
    let t = t.args(["run", exp.as_str(), "--env", env.as_str(), "-q"]);
    let out = t.run().expect_code(2);
    assert!(out.stderr.contains("protected"), "{}", out.stderr);
    assert!(out.stderr.contains("--confirm sim"), "{}", out.stderr);
    assert!(!t.runs_dir().exists());
    let t = t.args([
        "run",
        exp.as_str(),
        "--env",
        env.as_str(),
        "-q",
        "--confirm",
        "sim",
    ]);
    t.run().expect_code(0);
    assert_eq!(t.run_dirs().len(), 1);
}

#[test]
fn same_seed_gives_identical_measurements() {
    let run = || {
        let out = Test::new()
            .args([
                "run",
                &repo("experiments/pod-kill.yaml"),
                "--seed",
                "1234",
                "--output",
                "json",
            ])
            .run()
            .expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
        (v["measurements"].clone(), v["duration_ms"].clone())
    };
    let a = run();
    assert!(a.0.as_array().is_some_and(|m| !m.is_empty()), "{a:?}");
    assert_eq!(a, run());
}

/// Targets that do not exist on the simulated estate (a namespace, a cluster, a workload, a
/// probe selector that matches nothing) are all found by preflight: exit 7, every problem
/// listed, no run directory, nothing injected.
#[test]
fn preflight_on_the_estate_lists_every_missing_target_and_runs_nothing() {
    let t = Test::new().args(["run", &repo("tests/preflight/missing-targets.yaml")]);
    let out = t.run().expect_code(7);
    for needle in [
        "preflight found 4 problem(s) in environment `sim`; nothing ran",
        "step `kill-shop` (steps[0]): no pods match selector app=api in namespace(s) shop of cluster `prod-east`; the namespace has no pods (namespaces with pods: data, kube-system, web) (not found)",
        "step `kill-other-cluster` (steps[1]): no cluster `nowhere` in the estate; clusters: prod-east, prod-west (not found)",
        "step `scale-missing` (steps[2]): no deployment `web/apii` in cluster `prod-east`",
        "probe `pods`: no pods match selector app=nothing-here in namespace(s) web",
    ] {
        assert!(
            out.stderr.contains(needle),
            "missing `{needle}` in:\n{}",
            out.stderr
        );
    }
    assert!(
        t.run_dirs().is_empty(),
        "no run directory: {:?}",
        t.run_dirs()
    );
    // The dry run repeats the same check.
    let t = Test::new().args([
        "run",
        &repo("tests/preflight/missing-targets.yaml"),
        "--dry-run",
    ]);
    t.run().expect_code(7);
}

/// The drills of the typed-core issue that used to pass `validate` and abort halfway through
/// `run` (exit 5): every one is refused at validation, all at once, each at its parameter.
#[test]
fn broken_parameter_rules_are_refused_before_anything_runs() {
    let path = repo("tests/fixtures/broken-parameter-rules.yaml");
    let t = Test::new().args(["run", &path]);
    let out = t.run().expect_code(2);
    for needle in [
        ":16:56: k8s.pod_kill: `mode: fixed` needs `value`: how many pods to kill (at `steps[0].with.mode`)",
        ":19:78: k8s.pod_kill: `value: 150` is not a percentage from 1 to 100 (at `steps[1].with.value`)",
        ":22:70: k8s.pod_kill: `mode: fixed` with `value: 0` kills no pod (at `steps[2].with.value`)",
        ":22:83: k8s.pod_kill: `max_pods: 0` refuses every pod",
        ":25:40: k8s.pod_kill: give `namespace` or `namespaces`, not both (at `steps[3].with.namespaces`)",
        ":28:17: command: `run` is empty: there is no program to run (at `steps[4].with.run`)",
        ":31:17: http: `not a url` is not a URL",
        "7 problems found; nothing was run.",
    ] {
        assert!(
            out.stderr.contains(needle),
            "missing `{needle}` in:\n{}",
            out.stderr
        );
    }
    assert!(t.run_dirs().is_empty());
}

/// A drill whose fault is a `command` step, through the real binary on the built-in estate.
fn command_fault_drill(
    dir: &std::path::Path,
    recovery_extra: &str,
    restore_after: &str,
) -> PathBuf {
    let yaml = format!(
        r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {{name: command-fault}}
objectives: {{rto: 1m}}
steady_state:
  probes:
    - name: up
      type: command
      with: {{run: [test, -f, up]}}
      tolerance: {{path: exit_code, equals: 0}}
  before: [up]
steps:
  - id: stop-service
    action: command
    with: {{run: [{stop}]}}
  - id: outage
    action: wait
    after: [stop-service]
    with: {{duration: {restore_after}}}
  - id: start-service
    action: command
    after: [outage]
    with: {{run: [touch, up]}}
recovery:
  fault: stop-service
  probes: [up]
  interval: 2s
{recovery_extra}"#,
        stop = if restore_after == "0s" {
            "\"true\""
        } else {
            "rm, -f, up"
        },
    );
    let path = dir.join("command-fault.yaml");
    std::fs::write(&path, yaml).unwrap();
    std::fs::write(dir.join("up"), "").unwrap();
    path
}

#[test]
fn a_command_fault_is_timed_from_its_impact() {
    let t0 = Test::new();
    let exp = command_fault_drill(t0.dir.path(), "", "6s");
    let t = t0.args(["run", exp.to_str().unwrap()]);
    let out = t.run().expect_code(0);
    // `rm` takes effect at once: the first poll (at the fault's start, +0s) or the next sees it;
    // `touch` at +6s (real time: commands run real processes): the poll at +6s or +8s starts the
    // passing streak.
    let dir = t.run_dirs().pop().expect("a run directory");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let rto = summary["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "rto")
        .unwrap();
    let impact = rto["impact_ms"].as_u64().expect("impact seen");
    // Real processes race: the poll at the fault's start may run before `rm` has (the case that
    // used to read "RTO 0s"); the next poll, one interval later, sees it.
    assert!(impact <= 2_500, "{rto}");
    let measured = rto["measured_ms"].as_u64().unwrap();
    assert!((6_000..=8_500).contains(&measured), "{rto}\n{}", out.stdout);
    assert_eq!(summary["impact"]["failing"], serde_json::json!(["up"]));
}

#[test]
fn a_command_fault_with_no_impact_says_so() {
    let t0 = Test::new();
    // The "fault" is `true`: nothing breaks, the probe never fails.
    let exp = command_fault_drill(t0.dir.path(), "", "0s");
    let t = t0.args(["run", exp.to_str().unwrap()]);
    let out = t.run().expect_code(0);
    assert!(out.stdout.contains("no impact"), "{}", out.stdout);
    let dir = t.run_dirs().pop().expect("a run directory");
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        report.contains("no impact observed: the recovery probes never failed"),
        "{report}"
    );
    assert!(!report.contains("| RTO | 0s"), "{report}");
    // Under `expect_impact: true` the same drill is a deviation.
    let t = Test::new();
    let exp = command_fault_drill(t.dir.path(), "  expect_impact: true\n", "0s");
    let out = t.args(["run", exp.to_str().unwrap()]).run().expect_code(4);
    assert!(out.stdout.contains("DEVIATED"), "{}", out.stdout);
}

/// A drill that uses two secrets everywhere a value can leak: a command's argv and output (also
/// printed by the child from its own environment), an http URL whose error names it, a header.
fn secrets_drill(dir: &std::path::Path) -> PathBuf {
    let yaml = r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {name: secrets}
variables: {host: "127.0.0.1:9"}
secrets:
  api_token: {env: FD_TEST_API_TOKEN}
steady_state:
  probes:
    - name: echo-token
      type: command
      with: {run: [sh, -c, 'echo "probe sees $0"', "${api_token}"]}
      tolerance: {path: exit_code, equals: 0}
  before: [echo-token]
  after: [echo-token]
steps:
  - id: print
    action: command
    with:
      run: [sh, -c, 'echo "token=$0 password=$1"; printenv FD_TEST_API_TOKEN; echo "$1" >&2', "${api_token}", "${env:FD_TEST_DB_PASSWORD}"]
  - id: call
    action: http
    after: [print]
    with:
      url: "http://${host}/login/${env:FD_TEST_DB_PASSWORD}?token=${api_token}"
      headers: {Authorization: "Bearer ${api_token}"}
      timeout: 2s
"#;
    let path = dir.join("secrets.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

const TOKEN: &str = "Tok3n-Alpha-9f8e7d6c";
const PASSWORD: &str = "p@ss w/rd&Zeta-42";

/// Every file under `dir`, with its text.
fn files_under(dir: &std::path::Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push((
                p.clone(),
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into(),
            ));
        }
    }
    out
}

#[test]
fn secrets_never_reach_an_artefact() {
    let t0 = Test::new()
        .env("FD_TEST_API_TOKEN", TOKEN)
        .env("FD_TEST_DB_PASSWORD", PASSWORD);
    let exp = secrets_drill(t0.dir.path());
    // The http step fails (nothing listens on port 9): its error names the URL.
    let t = t0.args(["run", exp.to_str().unwrap()]);
    let out = t.run();
    assert_ne!(out.code, 2, "{}", out.stderr);
    let run_dir = t.run_dirs().pop().expect("a run directory");
    // The drill did use the values: the command saw them (its output is masked).
    let journal = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("token=[REDACTED:api_token] password=[REDACTED:env:FD_TEST_DB_PASSWORD]"),
        "{journal}"
    );
    // Re-render the report from the journal, and print the summary as JSON, too.
    let t = t.args(["report", "latest"]);
    let rerendered = t.run();
    let json = Test::new()
        .env("FD_TEST_API_TOKEN", TOKEN)
        .env("FD_TEST_DB_PASSWORD", PASSWORD);
    let exp2 = secrets_drill(json.dir.path());
    let json = json.args(["run", "--output", "json", exp2.to_str().unwrap()]);
    let json_out = json.run();
    let dry = Test::new()
        .env("FD_TEST_API_TOKEN", TOKEN)
        .env("FD_TEST_DB_PASSWORD", PASSWORD);
    let exp3 = secrets_drill(dry.dir.path());
    let dry_out = dry
        .args(["run", "--dry-run", exp3.to_str().unwrap()])
        .run()
        .expect_code(0);
    let plan_out = Test::new()
        .env("FD_TEST_API_TOKEN", TOKEN)
        .env("FD_TEST_DB_PASSWORD", PASSWORD)
        .args(["plan", exp3.to_str().unwrap()])
        .run();
    let encoded = [
        "p@ss%20w/rd&Zeta-42",
        "p%40ss%20w%2Frd%26Zeta-42",
        "p@ss+w/rd",
    ];
    let mut texts: Vec<(String, String)> = vec![
        ("run stdout".into(), out.stdout.clone()),
        ("run stderr".into(), out.stderr.clone()),
        (
            "report stdout".into(),
            rerendered.stdout + &rerendered.stderr,
        ),
        ("--output json".into(), json_out.stdout + &json_out.stderr),
        ("--dry-run".into(), dry_out.stdout + &dry_out.stderr),
        ("plan".into(), plan_out.stdout + &plan_out.stderr),
    ];
    for root in [
        t.runs_dir(),
        t.lessons_dir(),
        json.runs_dir(),
        json.lessons_dir(),
    ] {
        for (p, text) in files_under(&root) {
            texts.push((p.display().to_string(), text));
        }
    }
    assert!(
        texts.len() >= 10,
        "journal, summary, report, lessons of two runs: {texts:?}"
    );
    for (what, text) in &texts {
        for needle in [TOKEN, PASSWORD].iter().chain(encoded.iter()) {
            assert!(
                !text.contains(needle),
                "{what} contains a secret ({needle}):\n{text}"
            );
        }
    }
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(report.contains("[REDACTED:api_token]"), "{report}");
}

#[test]
fn a_missing_secret_is_a_preflight_problem_and_validate_warns() {
    let t = Test::new().env("FD_TEST_API_TOKEN", TOKEN);
    let exp = secrets_drill(t.dir.path());
    let t = t.args(["run", exp.to_str().unwrap()]);
    let out = t.run().expect_code(7);
    assert!(
        out.stderr.contains("FD_TEST_DB_PASSWORD is not set"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("export FD_TEST_DB_PASSWORD=..."),
        "{}",
        out.stderr
    );
    assert!(t.run_dirs().is_empty(), "nothing ran, no run directory");
    let v = Test::new()
        .args(["validate", exp.to_str().unwrap()])
        .run()
        .expect_code(0);
    assert!(v.stderr.contains("warning"), "{}", v.stderr);
    assert!(
        v.stderr.contains("FD_TEST_API_TOKEN, which is not set"),
        "{}",
        v.stderr
    );
    // A secret cannot be given on the command line.
    let cli = Test::new()
        .env("FD_TEST_API_TOKEN", TOKEN)
        .env("FD_TEST_DB_PASSWORD", PASSWORD)
        .args(["run", exp.to_str().unwrap(), "--var", "api_token=x"])
        .run()
        .expect_code(2);
    assert!(cli.stderr.contains("is a secret"), "{}", cli.stderr);
}

/// A drill with a command step (so it acts outside the process and takes the environment's
/// lock) that lasts `wait`.
fn lock_drill(dir: &std::path::Path, wait: &str) -> PathBuf {
    let yaml = format!(
        "apiVersion: firedrill.dev/v1\nkind: Experiment\nmetadata: {{name: holds-the-lock}}\nsteps:\n  - id: touch\n    action: command\n    with: {{run: [\"true\"]}}\n  - id: hold\n    action: wait\n    after: [touch]\n    with: {{duration: {wait}}}\n"
    );
    let path = dir.join(format!("lock-{wait}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn one_drill_per_environment_and_a_dead_drill_s_lock_is_stale() {
    let t = Test::new();
    let long = lock_drill(t.dir.path(), "30s");
    let short = lock_drill(t.dir.path(), "1ms");
    let lock = t.runs_dir().join("locks/sim.lock");
    let mut first = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["run", long.to_str().unwrap(), "--quiet", "--runs-dir"])
        .arg(t.runs_dir())
        .arg("--lessons-dir")
        .arg(t.lessons_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !lock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first drill never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A second drill against the same environment is refused, naming the holder.
    let t = t.args(["run", short.to_str().unwrap()]);
    let out = t.run().expect_code(8);
    assert!(
        out.stderr.contains("environment `sim` is in use by run"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing ran"), "{}", out.stderr);
    // --force-unlock never takes a lock from a drill that is still running.
    let t = t.args(["run", short.to_str().unwrap(), "--force-unlock"]);
    t.run().expect_code(8);
    // kill -9: the lock stays, and is reported stale.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(lock.exists(), "a killed drill cannot release its lock");
    let t = t.args(["run", short.to_str().unwrap()]);
    let out = t.run().expect_code(8);
    assert!(
        out.stderr.contains("whose process is gone"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--force-unlock"), "{}", out.stderr);
    let t = t.args(["run", short.to_str().unwrap(), "--force-unlock"]);
    let out = t.run().expect_code(0);
    assert!(out.stderr.contains("took over the lock"), "{}", out.stderr);
    // A finished drill releases it; the next one runs.
    assert!(!lock.exists(), "released at the end of the drill");
    t.args(["run", short.to_str().unwrap()])
        .run()
        .expect_code(0);
}

#[test]
fn verify_detects_a_one_byte_change_and_the_report_says_so() {
    let t = Test::new();
    let exp = repo("experiments/pod-kill.yaml");
    let t = t.args(["run", &exp, "--quiet"]);
    t.run().expect_code(0);
    let run_dir = t.run_dirs().pop().unwrap();
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(report.contains("SHA-256 chain ending `"), "{report}");
    let t = t.args(["verify", "latest"]);
    let out = t.run().expect_code(0);
    assert!(out.stdout.contains("verified:"), "{}", out.stdout);
    assert!(
        out.stdout.contains("as summary.json names it"),
        "{}",
        out.stdout
    );
    // One byte: a digit of the 5th record's elapsed time.
    let path = run_dir.join("journal.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines[4].find("\"elapsed_ms\":").unwrap() + "\"elapsed_ms\":".len();
    let mut bytes = lines[4].clone().into_bytes();
    bytes[at] = if bytes[at] == b'9' { b'8' } else { b'9' };
    lines[4] = String::from_utf8(bytes).unwrap();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = t.run().expect_code(9);
    assert!(
        out.stdout.contains("DOES NOT VERIFY: line 5 (seq 5)"),
        "{}",
        out.stdout
    );
    let t = t.args(["report", "latest"]);
    let out = t.run().expect_code(0);
    assert!(
        out.stdout
            .contains("**Warning: this journal does not verify.** line 5"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("does not verify"), "{}", out.stderr);
    // Records cut from the end: the chain holds, the summary's final hash does not match.
    std::fs::write(
        &path,
        text.lines().take(6).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let out = t.args(["verify", "latest"]).run().expect_code(9);
    assert!(
        out.stdout.contains("records were removed from the end"),
        "{}",
        out.stdout
    );
}

/// Two steps that each leave a "fault" (a file) and undo it in their rollback; the rollback
/// logs every attempt and every effective undo.
fn recover_drill(dir: &std::path::Path) -> PathBuf {
    let undo = |s: &str| {
        format!(
            "{{action: command, with: {{run: [sh, -c, 'echo {s} >> attempts.log; sleep 0.1; if [ -e fault-{s} ]; then rm fault-{s}; echo {s} >> undone.log; fi']}}}}"
        )
    };
    let yaml = format!(
        "apiVersion: firedrill.dev/v1\nkind: Experiment\nmetadata: {{name: leaves-faults}}\nsteps:\n  - id: a\n    action: command\n    with: {{run: [touch, fault-a]}}\n    rollback: {}\n  - id: gap\n    action: wait\n    after: [a]\n    with: {{duration: 150ms}}\n  - id: b\n    action: command\n    after: [gap]\n    with: {{run: [touch, fault-b]}}\n    rollback: {}\n  - id: hold\n    action: wait\n    after: [b]\n    with: {{duration: 300ms}}\n",
        undo("a"),
        undo("b")
    );
    let path = dir.join("leaves-faults.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn lines_of(path: &std::path::Path, what: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == what)
        .count()
}

#[test]
fn recover_runs_every_owed_rollback_once_after_kill_9() {
    let mut killed_before_rollbacks = 0;
    let mut dry_run_checked = false;
    for trial in 0..20u64 {
        let mut t = Test::new();
        let exp = recover_drill(t.dir.path());
        let mut child = Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .args(["run", exp.to_str().unwrap(), "--quiet", "--runs-dir"])
            .arg(t.runs_dir())
            .arg("--lessons-dir")
            .arg(t.lessons_dir())
            .current_dir(t.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill -9 at moments spread over the drill (it lasts ~0.5 s, rollbacks at its end).
        let lock = t.runs_dir().join("locks/sim.lock");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !lock.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::thread::sleep(std::time::Duration::from_millis(trial * 37));
        let _ = child.kill();
        child.wait().unwrap();
        let Some(run_dir) = t.run_dirs().pop() else {
            // Killed between taking the lock and creating the journal: nothing ran; the next
            // drill takes the dead lock over (its run never started).
            assert!(!t.dir.path().join("fault-a").exists());
            let t = t.args(["run", exp.to_str().unwrap(), "--quiet"]);
            let out = t.run().expect_code(0);
            assert!(
                out.stderr.contains("died before its run started"),
                "{}",
                out.stderr
            );
            continue;
        };
        let before = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap();
        if !before.contains("rollback_started") {
            killed_before_rollbacks += 1;
        }
        let ran_before = before.matches("\"type\":\"rollback_finished\"").count();
        let both_started = before.contains("\"type\":\"step_started\",\"step\":\"b\"");
        if both_started && !before.contains("rollback_started") && !dry_run_checked {
            dry_run_checked = true;
            let journal_before = std::fs::read(run_dir.join("journal.jsonl")).unwrap();
            let t2 = Test {
                dir: TempDir::new().unwrap(),
                args: vec![],
                env: vec![],
            }
            .args([
                "recover",
                "--dry-run",
                run_dir.to_str().unwrap(),
                "--runs-dir",
                t.runs_dir().to_str().unwrap(),
            ]);
            let dry = t2.run().expect_code(0);
            assert!(
                dry.stdout.contains("(rollback of step `b`)"),
                "{}",
                dry.stdout
            );
            assert!(
                dry.stdout.contains("the drill's process died"),
                "{}",
                dry.stdout
            );
            assert!(
                dry.stdout.contains("dry run: nothing was run"),
                "{}",
                dry.stdout
            );
            assert_eq!(
                std::fs::read(run_dir.join("journal.jsonl")).unwrap(),
                journal_before
            );
            t = t.args(["runs"]);
            let listed = t.run().expect_code(0);
            assert!(
                listed
                    .stdout
                    .contains("owes 2 rollback(s) (b, a): run `firedrill recover"),
                "{}",
                listed.stdout
            );
            t = t.args(["report", "latest"]);
            let report = t.run().expect_code(0);
            assert!(
                report.stdout.contains("Run them with `firedrill recover"),
                "{}",
                report.stdout
            );
        }
        // A step journaled as started may have been killed before its command ran: its
        // rollback then runs and finds nothing to undo.
        let faulted: Vec<(bool, usize)> = ["a", "b"]
            .iter()
            .map(|s| {
                (
                    t.dir.path().join(format!("fault-{s}")).exists(),
                    lines_of(&t.dir.path().join("undone.log"), s),
                )
            })
            .collect();
        let t = t.args(["recover", "--all"]);
        let out = t.run();
        assert!(
            [0].contains(&out.code),
            "trial {trial}: {}\n{}",
            out.stdout,
            out.stderr
        );
        // No fault is left; each started step was undone exactly once; every attempt is
        // journaled (a finished rollback never ran again).
        let journal = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap();
        for (s, (faulted, undone_before)) in ["a", "b"].into_iter().zip(faulted) {
            let started = journal.contains(&format!("\"type\":\"step_started\",\"step\":\"{s}\""));
            assert!(
                !t.dir.path().join(format!("fault-{s}")).exists(),
                "trial {trial}: fault-{s} left\n{journal}"
            );
            let undone = lines_of(&t.dir.path().join("undone.log"), s);
            let attempts = lines_of(&t.dir.path().join("attempts.log"), s);
            let journaled = journal
                .matches(&format!("\"type\":\"rollback_started\",\"step\":\"{s}\""))
                .count();
            let finished_ok = journal
                .lines()
                .filter(|l| {
                    l.contains("\"type\":\"rollback_finished\"")
                        && l.contains(&format!("\"step\":\"{s}\""))
                        && l.contains("\"ok\":true")
                })
                .count();
            if started {
                // A step journaled as started may not have run its command yet when the drill was
                // killed (or its command may finish after the kill): its rollback then has
                // nothing, or something, to undo. Never twice, and no fault is left (above).
                let _ = (faulted, undone_before);
                assert!(
                    undone <= 1,
                    "trial {trial}: step {s} undone twice\n{journal}"
                );
                assert_eq!(finished_ok, 1, "trial {trial}: {s}\n{journal}");
            } else {
                assert_eq!(
                    (undone, attempts),
                    (0, 0),
                    "trial {trial}: {s} never started"
                );
            }
            assert!(
                attempts <= journaled,
                "trial {trial}: {s}: {attempts} attempts, {journaled} journaled\n{journal}"
            );
        }
        if journal.contains("\"type\":\"step_started\"") {
            assert!(
                journal.contains("\"type\":\"run_finished\""),
                "trial {trial}: the run is finished\n{journal}"
            );
        }
        println!(
            "recover trial {trial}: steps started {}, rollbacks finished by the drill {ran_before}, by recover {}",
            journal.matches("\"type\":\"step_started\"").count(),
            journal.matches("\"recovered\":true").count()
        );
        // A second recover runs nothing.
        let attempts =
            std::fs::read_to_string(t.dir.path().join("attempts.log")).unwrap_or_default();
        let again = t.run().expect_code(0);
        assert!(
            again.stdout.contains("nothing to recover"),
            "{}",
            again.stdout
        );
        assert_eq!(
            std::fs::read_to_string(t.dir.path().join("attempts.log")).unwrap_or_default(),
            attempts
        );
        // And the chain still verifies across the appended records.
        t.args(["verify", "latest"]).run().expect_code(0);
    }
    assert!(
        dry_run_checked,
        "some trial killed the drill with both steps started"
    );
    assert!(
        killed_before_rollbacks >= 5,
        "most trials kill the drill before its rollbacks: {killed_before_rollbacks}"
    );
}

/// A wall-clock drill with a phase long enough to signal in each: a slow before probe, a
/// fault with a slow rollback, a hold, and a recovery wait that ends at its deadline.
fn signals_drill(dir: &std::path::Path) -> PathBuf {
    let yaml = r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {name: signals}
objectives: {rto: 2s}
steady_state:
  probes:
    - name: ok
      type: command
      with: {run: [sh, -c, "sleep 0.4; test -f ok"]}
      tolerance: {path: exit_code, equals: 0}
  before: [ok]
steps:
  - id: break
    action: command
    with: {run: [rm, -f, ok]}
    rollback:
      action: command
      with: {run: [sh, -c, "echo start >> rollbacks.log; sleep 1.5; touch ok; echo undone >> rollbacks.log"]}
  - id: hold
    action: wait
    after: [break]
    with: {duration: 1500ms}
recovery:
  fault: break
  probes: [ok]
  interval: 500ms
  deadline: 3s
"#;
    let path = dir.join("signals.yaml");
    std::fs::write(&path, yaml).unwrap();
    std::fs::write(dir.join("ok"), "").unwrap();
    path
}

/// Wait until the newest journal under `runs` contains `needle`.
fn wait_journal(runs: &std::path::Path, needle: &str) -> PathBuf {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(dir) = std::fs::read_dir(runs).ok().and_then(|rd| {
            rd.map(|e| e.unwrap().path())
                .find(|p| p.join("journal.jsonl").exists())
        }) && std::fs::read_to_string(dir.join("journal.jsonl"))
            .unwrap_or_default()
            .contains(needle)
        {
            return dir;
        }
        assert!(std::time::Instant::now() < deadline, "never saw {needle}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn signals_in_every_phase_roll_back_and_exit_as_documented() {
    // (signal, when, signals sent, expected exit, rollback undone, rollback owed)
    let cases: [(&str, &str, u32, i32, bool, bool); 7] = [
        ("-INT", "\"phase\":\"before\"", 1, 5, false, false),
        ("-TERM", "\"phase\":\"before\"", 1, 5, false, false),
        ("-INT", "\"step\":\"hold\"", 1, 5, true, false),
        ("-TERM", "\"step\":\"hold\"", 1, 5, true, false),
        // Waiting for recovery after the method ended.
        (
            "-INT",
            "\"type\":\"step_finished\",\"step\":\"hold\"",
            1,
            5,
            true,
            false,
        ),
        // During the rollback (the drill already missed its RTO): the first signal is journaled
        // and the rollback finishes, the verdict stands; a second stops at once.
        ("-INT", "\"type\":\"rollback_started\"", 1, 4, true, false),
        ("-INT", "\"type\":\"rollback_started\"", 2, 6, false, true),
    ];
    for (k, (sig, when, count, code, undone, owed)) in cases.iter().enumerate() {
        let mut t = Test::new();
        let exp = signals_drill(t.dir.path());
        let child = Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .args(["run", exp.to_str().unwrap(), "--quiet", "--runs-dir"])
            .arg(t.runs_dir())
            .arg("--lessons-dir")
            .arg(t.lessons_dir())
            .current_dir(t.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let run_dir = wait_journal(&t.runs_dir(), when);
        for _ in 0..*count {
            signal(child.id(), sig);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let out = child.wait_with_output().unwrap();
        let journal = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap();
        let case = format!("case {k}: {sig} x{count} at {when}");
        assert_eq!(out.status.code(), Some(*code), "{case}\n{journal}");
        assert!(
            journal.contains("\"type\":\"interrupted\""),
            "{case}: journaled\n{journal}"
        );
        assert!(
            journal.contains("\"type\":\"run_finished\""),
            "{case}: finished\n{journal}"
        );
        let log = std::fs::read_to_string(t.dir.path().join("rollbacks.log")).unwrap_or_default();
        assert_eq!(
            log.contains("undone"),
            *undone,
            "{case}: rollback log {log:?}\n{journal}"
        );
        assert_eq!(
            journal.contains("\"type\":\"rollback_owed\""),
            *owed,
            "{case}\n{journal}"
        );
        if when.contains("before") {
            assert!(
                !journal.contains("\"type\":\"step_started\""),
                "{case}: nothing injected"
            );
        }
        if *owed {
            // What is owed is what recover runs.
            t = t.args(["recover", "latest"]);
            t.run().expect_code(0);
            let log = std::fs::read_to_string(t.dir.path().join("rollbacks.log")).unwrap();
            assert!(log.contains("undone"), "{case}: recovered: {log}");
        }
        // No process is left holding the environment.
        assert!(
            !t.runs_dir().join("locks/sim.lock").exists(),
            "{case}: lock released"
        );
    }
}
