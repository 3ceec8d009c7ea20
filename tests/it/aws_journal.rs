//! What an AWS drill leaves in its journal: never the credentials (the real binary, credentials
//! from the standard chain's environment variables), and, when an action is left half done, what
//! changed and which rollback is owed. Against moto (`./scripts/test`).

use crate::support::*;
use firedrill::backend::aws::AwsProvider;
use firedrill::engine::drill::Drill;
use firedrill::engine::events::{Event, Record, StepOutcome, VerdictKind};
use firedrill::engine::executor::{MemorySink, RollbackPolicy, Sink};
use firedrill::report::journal::Journal;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const ACCESS_KEY_ID: &str = "AKIAFIREDRILLTEST7Q2X";
const SECRET: &str = "fIrEdRiLl/NeVeR/jOuRnAlEd/6b1d0c2e7f";

/// Every file under `dir`, as text.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn firedrill(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(args)
        .current_dir(dir)
        // The standard chain: credentials from the environment only.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn credentials_never_reach_the_journal_report_or_output() {
    let m = moto().await;
    let b = Bridge::new();
    let c = clients(&m, &b, "us-east-1", None);
    aurora(
        &c.rds,
        "orders-db",
        &[("orders-db-1", "us-east-1a"), ("orders-db-2", "us-east-1b")],
        None,
        false,
    )
    .await;
    failover_record(&c, "api.example.com", true).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("env.yaml"),
        format!(
            "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {{name: moto}}\nbackend: aws\naws:\n  region: us-east-1\n  endpoint_url: {}\n  poll_interval: 1s\n",
            m.url
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("drill.yaml"),
        r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {name: aws-creds-check, owner: sre}
steady_state:
  probes:
    - name: db-writable
      type: db.cluster
      with: {cluster: orders-db}
      tolerance: {path: writable, equals: true}
    - name: dns
      type: dns.record
      with: {record: api.example.com}
      tolerance: {path: primary_healthy, equals: true}
  before: [db-writable, dns]
  after: [db-writable]
steps:
  - id: failover
    action: db.cluster_failover
    with: {cluster: orders-db}
  - id: flip-dns
    action: dns.failover
    after: [failover]
    with: {record: api.example.com, to: secondary}
"#,
    )
    .unwrap();
    let args = [
        "run",
        "drill.yaml",
        "--env",
        "env.yaml",
        "--runs-dir",
        "runs",
        "--lessons-dir",
        "lessons",
    ];
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || firedrill(&d, &args))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // The run did reach AWS (moto) with those credentials, and the journal recorded it.
    let journal = all_text(&dir.path().join("runs"));
    assert!(journal.contains("FailoverDBCluster orders-db"), "{journal}");
    assert!(journal.contains("aws_dns_changed"), "{journal}");
    // A dry run and a preflight failure print things too.
    let d = dir.path().to_path_buf();
    let dry = tokio::task::spawn_blocking(move || {
        firedrill(&d, &["run", "drill.yaml", "--env", "env.yaml", "--dry-run"])
    })
    .await
    .unwrap();
    assert_eq!(
        dry.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let dry_out = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry_out.contains("[IAM: rds:FailoverDBCluster"), "{dry_out}");
    std::fs::write(
        dir.path().join("bad.yaml"),
        std::fs::read_to_string(dir.path().join("drill.yaml"))
            .unwrap()
            .replace("{cluster: orders-db}", "{cluster: orders-dbx}"),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let bad = tokio::task::spawn_blocking(move || {
        firedrill(&d, &["run", "bad.yaml", "--env", "env.yaml"])
    })
    .await
    .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(7),
        "preflight: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let everything = format!(
        "{journal}{stdout}{stderr}{dry_out}{}{}{}",
        String::from_utf8_lossy(&dry.stderr),
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr),
    ) + &all_text(&dir.path().join("lessons"));
    assert!(!everything.contains(ACCESS_KEY_ID), "access key id leaked");
    assert!(!everything.contains(SECRET), "secret leaked");
    assert!(
        !everything.contains("fIrEdRiLl"),
        "part of the secret leaked"
    );
}

struct JournalSink(Journal);

impl Sink for JournalSink {
    fn record(&mut self, rec: &Record) -> Result<(), String> {
        self.0.append(rec).map_err(|e| e.to_string())
    }
}

/// dns.failover whose change is accepted but cannot be confirmed (GetChange denied), and whose
/// revert is denied too: the journal says what changed, that the rollback failed and what to
/// restore by hand. With `--rollback never` the journal records the rollback as owed.
#[tokio::test(start_paused = true)]
async fn a_half_done_dns_failover_journals_the_owed_rollback() {
    let m = moto().await;
    let b = Bridge::new();
    // Fixtures and checks go through a transport without faults.
    let clean = Bridge::new();
    let c = clients(&m, &clean, "us-east-1", None);
    // After the first record change: GetChange and further changes are denied (answered by the
    // transport; moto never sees them).
    let changes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = changes.clone();
    b.fault(move |req| {
        let uri = req.uri().to_string();
        if uri.contains("/change/") {
            return Some(route53_error(
                403,
                "AccessDenied",
                "User is not authorized to perform: route53:GetChange",
            ));
        }
        if uri.contains("/rrset")
            && req.method() == "POST"
            && n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0
        {
            return Some(route53_error(
                403,
                "AccessDenied",
                "User is not authorized to perform: route53:ChangeResourceRecordSets",
            ));
        }
        None
    });
    let exp_src = r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {name: dns-half-done}
steady_state:
  probes:
    - name: dns
      type: dns.record
      with: {record: api.example.com}
      tolerance: {path: primary_healthy, equals: true}
  before: [dns]
steps:
  - id: flip-dns
    action: dns.failover
    with: {record: api.example.com, to: secondary}
"#;
    for policy in [RollbackPolicy::Always, RollbackPolicy::Never] {
        changes.store(0, std::sync::atomic::Ordering::SeqCst);
        let u = m.url.clone();
        tokio::task::spawn_blocking(move || post(&u, "/moto-api/reset", ""))
            .await
            .unwrap()
            .unwrap();
        let (zone, _) = failover_record(&c, "api.example.com", true).await;
        let exp =
            firedrill::lang::spec::parse_experiment("half.yaml", exp_src.as_bytes(), &[]).unwrap();
        let mut s = firedrill::backend::aws::AwsSettings::for_region("us-east-1");
        s.endpoint_url = Some(m.url.clone());
        let p = AwsProvider::from_clients(s, clients(&m, &b, "us-east-1", None));
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(&dir.path().join("run")).unwrap();
        let path = journal.path().to_path_buf();
        let memory = MemorySink::default();
        let outcome = Drill::new(exp, Arc::new(p))
            .run_id("half")
            .concurrency(4)
            .rollback(policy)
            .environment("moto")
            .sink(JournalSink(journal))
            .sink(memory.clone())
            .run()
            .await;
        let text = std::fs::read_to_string(&path).unwrap();
        let records = memory.0.lock().unwrap().clone();
        let step = records
            .iter()
            .find_map(|r| match &r.event {
                Event::StepFinished { outcome, error, .. } => {
                    Some((*outcome, error.clone().unwrap_or_default()))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{policy:?}: no step finished: {text}"));
        assert_eq!(step.0, StepOutcome::Failed);
        assert!(
            step.1
                .contains("records of `api.example.com` were changed (change "),
            "{}",
            step.1
        );
        assert!(step.1.contains("`route53:GetChange`"), "{}", step.1);
        // What changed, with the records as they were, is in the journal.
        let changed = records.iter().find_map(|r| match &r.event {
            Event::EnvironmentEvent {
                detail: Some(d), ..
            } if d["kind"] == "aws_dns_changed" => Some(d.clone()),
            _ => None,
        });
        let changed = changed.expect("the change is journaled");
        assert_eq!(changed["zone_id"], zone.as_str());
        assert_eq!(changed["previous"].as_array().unwrap().len(), 1);
        assert!(text.contains("aws_dns_changed"));
        match policy {
            RollbackPolicy::Always => {
                let rb = records
                    .iter()
                    .find_map(|r| match &r.event {
                        Event::RollbackFinished { ok, error, .. } => {
                            Some((*ok, error.clone().unwrap_or_default()))
                        }
                        _ => None,
                    })
                    .expect("the rollback ran");
                assert!(!rb.0);
                assert!(
                    rb.1.contains("`route53:ChangeResourceRecordSets`"),
                    "{}",
                    rb.1
                );
                assert!(
                    rb.1.contains("still forced by the drill; restore them by hand (UPSERT)"),
                    "{}",
                    rb.1
                );
                assert!(
                    rb.1.contains("\"set_identifier\":\"us-east-1\""),
                    "{}",
                    rb.1
                );
                assert_eq!(outcome.verdict, VerdictKind::RollbackFailed);
                assert_eq!(outcome.exit_code, 6);
            }
            _ => {
                let owed = records.iter().find_map(|r| match &r.event {
                    Event::RollbackOwed {
                        step,
                        action,
                        reason,
                    } => Some((step.clone(), action.clone(), reason.clone())),
                    _ => None,
                });
                assert_eq!(
                    owed,
                    Some((
                        "flip-dns".into(),
                        "dns.failover".into(),
                        "--rollback never".into()
                    ))
                );
                assert!(
                    text.contains("rollback_owed") || text.contains("RollbackOwed"),
                    "{text}"
                );
            }
        }
        // The record really is still forced in moto (the transport refused the restore): the
        // PRIMARY answers with the secondary's address.
        let now = c
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(&zone)
            .send()
            .await
            .unwrap();
        let east = now
            .resource_record_sets()
            .iter()
            .find(|r| r.set_identifier() == Some("us-east-1"))
            .unwrap_or_else(|| panic!("{policy:?}: {:?}", now.resource_record_sets()));
        assert_eq!(east.resource_records()[0].value(), "10.1.0.10");
    }
}
