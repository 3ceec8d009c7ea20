//! The sample drills db-failover, region-failover and pitr-restore with the AWS backend against
//! moto, through the engine (`firedrill::engine::executor::execute`), after the same preflight
//! the CLI runs.
//!
//! The environment is the honest composition: `backend: sim` as primary (the built-in estate:
//! client-side `service.metrics`, `alert`, `k8s.*`, `region.outage`) plus an `aws:` section, so
//! every `db.*` and `dns.*` call goes to moto (fixtures named like the sim's). moto's changes are
//! instant and the simulated client side does not see moto's database, so these runs prove the
//! plumbing and the verdict arithmetic, not realistic timing (the simulated estate's job): each
//! test asserts the measurements that follow from that, and why.
//!
//! Time: the drills run on tokio's paused clock; every AWS request is real HTTP to moto sent in
//! zero virtual time (see `support`).

use crate::support::*;
use firedrill::backend::Provider;
use firedrill::backend::aws::AwsProvider;
use firedrill::backend::router::{Router, calls_of};
use firedrill::backend::sim::SimProvider;
use firedrill::engine::drill::Drill;
use firedrill::engine::events::{Event, Record, StepOutcome, VerdictKind};
use firedrill::engine::executor::Outcome;
use firedrill::lang::environment::{Backend, Environment};
use serde_json::Value as Json;
use std::sync::Arc;

/// The built-in simulated estate plus an `aws:` section pointing at moto.
fn environment(m: &Moto) -> Environment {
    let src = format!(
        "{}\naws:\n  region: us-east-1\n  dr_region: us-west-2\n  endpoint_url: {}\n  poll_interval: 5s\n",
        firedrill::lang::environment::BUILTIN_SIM,
        m.url
    );
    firedrill::lang::environment::parse_environment("sim+moto.yaml", src.as_bytes(), &[]).unwrap()
}

struct Run {
    outcome: Outcome,
    records: Vec<Record>,
    aws: Arc<AwsProvider>,
}

async fn drill(file: &str, env: &Environment, c: firedrill::backend::aws::clients::Clients) -> Run {
    let path = format!("{}/experiments/{file}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    let exp = firedrill::lang::spec::parse_experiment(&path, &bytes, &[]).unwrap();
    let settings = firedrill::backend::aws::settings::decode(env).unwrap();
    let aws = Arc::new(AwsProvider::from_clients(settings, c));
    let sim = SimProvider::new(env, Some(42)).unwrap();
    let router = Router::new(
        env,
        vec![
            (Backend::Sim, Arc::new(sim) as Arc<dyn Provider>),
            (Backend::Aws, aws.clone() as Arc<dyn Provider>),
        ],
    );
    // The CLI's preflight: every db.*/dns.* target exists in moto.
    let problems = router.preflight(&calls_of(&exp)).await;
    assert!(problems.is_empty(), "{problems:#?}");
    let (outcome, records) = Drill::new(exp, Arc::new(router))
        .run_id(format!("test-{file}"))
        .environment(env.name.clone())
        .seed(42)
        .run_recorded()
        .await;
    Run {
        outcome,
        records,
        aws,
    }
}

impl Run {
    fn measured(&self, name: &str) -> Option<u64> {
        self.outcome
            .measurements
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.measured_ms)
    }

    fn measurement(&self, name: &str) -> &firedrill::engine::events::Measurement {
        self.outcome
            .measurements
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name} measurement"))
    }

    fn met(&self, name: &str) -> bool {
        self.outcome
            .measurements
            .iter()
            .find(|m| m.name == name)
            .is_some_and(|m| m.met)
    }

    fn step(&self, id: &str) -> (StepOutcome, Json, Option<String>) {
        self.records
            .iter()
            .find_map(|r| match &r.event {
                Event::StepFinished {
                    step,
                    outcome,
                    output,
                    error,
                    ..
                } if step == id => Some((*outcome, output.clone(), error.clone())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("step {id} did not finish"))
    }

    fn after_failed(&self) -> Vec<String> {
        self.records
            .iter()
            .filter_map(|r| match &r.event {
                Event::HypothesisResult {
                    phase: firedrill::engine::events::Phase::After,
                    failed,
                    ..
                } => Some(failed.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn environment_events(&self) -> Vec<(String, Option<Json>)> {
        self.records
            .iter()
            .filter_map(|r| match &r.event {
                Event::EnvironmentEvent {
                    component,
                    message,
                    detail,
                    ..
                } if component == "aws" => Some((message.clone(), detail.clone())),
                _ => None,
            })
            .collect()
    }
}

/// db-failover: moto promotes orders-db-2 at once; the simulated clients never lose their own
/// database, so their alert never fires.
#[tokio::test(start_paused = true)]
async fn db_failover_against_moto() {
    let m = moto().await;
    let b = Bridge::new();
    let env = environment(&m);
    let c = clients(&m, &b, "us-east-1", Some("us-west-2"));
    orders_estate(&c).await;
    let run = drill("db-failover.yaml", &env, c).await;

    let (outcome, output, _) = run.step("failover");
    assert_eq!(outcome, StepOutcome::Succeeded);
    assert_eq!(output["region"], "us-east-1", "served by the AWS backend");
    assert_eq!(output["previous_writer"], "orders-db-1");
    assert_eq!(output["new_writer"], "orders-db-2");
    assert!(
        b.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("FailoverDBCluster"))
    );
    // The after check `writer-moved` (^orders-db-[23]$) read moto's writer.
    assert!(run.after_failed().is_empty(), "{:?}", run.after_failed());
    // moto's failover is instant and the simulated API never degrades: the recovery probes never
    // fail, so there is no impact to time. Before impact-aware recovery this was "RTO 0s, met".
    assert_eq!(run.measured("rto"), None);
    let rto = run.measurement("rto");
    assert!(rto.no_impact && rto.met, "{rto:?}");
    assert_eq!(rto.impact_ms, None);
    assert!(
        rto.detail
            .starts_with("no impact observed: the recovery probes never failed"),
        "{}",
        rto.detail
    );
    // latest_write = min(fault time, moto's LatestRestorableTime = now): no loss.
    assert_eq!(run.measured("rpo"), Some(0));
    assert!(run.met("rpo"));
    // The detection alert (DatabaseWriterUnavailable) is the simulated estate's, whose database
    // nothing touched: with no impact there was nothing to detect, so MTTD is not measured and
    // not held against the drill. The verdict passes, saying why RTO was not measured.
    assert_eq!(run.measured("mttd"), None);
    assert!(run.met("mttd"));
    assert_eq!(run.outcome.verdict, VerdictKind::Pass);
    assert_eq!(run.outcome.reasons.len(), 1, "{:?}", run.outcome.reasons);
    assert!(
        run.outcome.reasons[0].starts_with("RTO not measured: no impact observed")
            && run.outcome.reasons[0].contains("recovery.expect_impact"),
        "{:?}",
        run.outcome.reasons
    );
    assert!(run.aws.created_resources().is_empty());
}

/// region-failover: the simulated estate loses us-east-1 (clients, pods, DNS health checks, and
/// its own database); the global database failover goes to moto, through the aws-smithy-mocks
/// rules for FailoverGlobalCluster (moto lacks it).
#[tokio::test(start_paused = true)]
async fn region_failover_against_moto() {
    let m = moto().await;
    let b = Bridge::new();
    let env = environment(&m);
    let mut c = clients(&m, &b, "us-east-1", Some("us-west-2"));
    orders_estate(&c).await;
    failover_record(&c, "api.example.com", true).await;
    let mock = global_mock("orders-global", &[ORDERS_DB_ARN, ORDERS_DB_DR_ARN]);
    mock.install(&m, &b, &mut c);
    let run = drill("region-failover.yaml", &env, c).await;

    let (outcome, output, _) = run.step("promote-dr-database");
    assert_eq!(outcome, StepOutcome::Succeeded);
    assert_eq!(output["operation"], "failover");
    assert_eq!(output["from"], "orders-db");
    assert_eq!(output["to"], "orders-db-dr");
    assert_eq!(*mock.allow_data_loss.lock().unwrap(), vec![Some(true)]);
    assert_eq!(
        mock.moved_to.lock().unwrap().as_deref(),
        Some(ORDERS_DB_DR_ARN)
    );
    // Detection is the simulated ApiDown alert (availability < 0.5 for 30s): measured.
    let mttd = run.measured("mttd").expect("ApiDown fired");
    assert!((30_000..=45_000).contains(&mttd), "mttd {mttd}");
    // dr-writable reads moto (the DR cluster is the global writer after the failover) and
    // served-from-dr reads the simulated DNS; but the simulated clients write to the simulated
    // estate's own database, lost with us-east-1 and failed over by nobody (the failover went to
    // moto), so 20% of requests keep failing: api-available never recovers, the RTO is missed at
    // the 20m deadline, and dr-serving fails (on_failure: continue).
    assert_eq!(run.measured("rto"), None);
    assert_eq!(run.step("dr-serving").0, StepOutcome::Failed);
    let deadline = run
        .records
        .iter()
        .find_map(|r| match &r.event {
            Event::RecoveryDeadlineExceeded { failing, .. } => Some(failing.clone()),
            _ => None,
        })
        .expect("deadline exceeded");
    assert_eq!(deadline, vec!["api-available".to_string()]);
    assert_eq!(
        run.measured("rpo"),
        Some(0),
        "moto's restorable time is `now`"
    );
    assert_eq!(run.outcome.verdict, VerdictKind::Missed);
    assert!(run.after_failed().contains(&"api-available".to_string()));
    assert!(
        !run.after_failed().contains(&"dr-writable".to_string()),
        "moto's DR cluster is writable"
    );
}

/// pitr-restore: StopDBCluster is the outage; the restore creates orders-db-restored and its
/// instance in moto, waits until they are available, and journals both with their cleanup.
#[tokio::test(start_paused = true)]
async fn pitr_restore_against_moto() {
    let m = moto().await;
    let b = Bridge::new();
    let env = environment(&m);
    let c = clients(&m, &b, "us-east-1", Some("us-west-2"));
    // A standalone source: moto would put a restored copy of a global member into the global
    // cluster (AWS restores a standalone cluster).
    aurora(
        &c.rds,
        "orders-db",
        &[
            ("orders-db-1", "us-east-1a"),
            ("orders-db-2", "us-east-1b"),
            ("orders-db-3", "us-east-1c"),
        ],
        None,
        false,
    )
    .await;
    let run = drill("pitr-restore.yaml", &env, c.clone()).await;

    let (o, out, _) = run.step("lose-database");
    assert_eq!(o, StepOutcome::Succeeded);
    assert_eq!(out["revert"], "StartDBCluster");
    let (o, out, _) = run.step("restore");
    assert_eq!(o, StepOutcome::Succeeded);
    assert_eq!(out["target_cluster"], "orders-db-restored");
    assert_eq!(out["instance"], "orders-db-restored-1");
    assert_eq!(out["restore_type"], "latest");
    // `rollback: none` on the outage: orders-db stays stopped in moto after the drill.
    let src = c
        .rds
        .describe_db_clusters()
        .db_cluster_identifier("orders-db")
        .send()
        .await
        .unwrap();
    assert_eq!(src.db_clusters()[0].status(), Some("stopped"));
    // Everything the drill created is in the journal with its cleanup command.
    let created: Vec<String> = run
        .environment_events()
        .into_iter()
        .filter_map(|(_, d)| d)
        .filter(|d| d["kind"] == "aws_resource_created")
        .map(|d| d["cleanup"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(created.len(), 2, "{created:?}");
    assert!(created[0].contains(
        "delete-db-cluster --region us-east-1 --db-cluster-identifier orders-db-restored"
    ));
    assert!(created[1].contains(
        "delete-db-instance --region us-east-1 --db-instance-identifier orders-db-restored-1"
    ));
    assert_eq!(run.aws.created_resources().len(), 2);
    // serve: true cannot be done through AWS: journaled.
    assert!(
        run.environment_events()
            .iter()
            .any(|(m, _)| m.contains("serve: true is not done by the aws backend"))
    );
    // The simulated API never lost its own database, and moto restores at once; but the
    // recovery poll at the fault instant races the restore (the next step), and a poll that
    // runs first finds no restored cluster. So the RTO is 0 or the next poll, one recovery
    // interval (10s) later: within the measurement's resolution of zero.
    let rto = run.measured("rto").expect("recovered");
    assert!(rto == 0 || rto == 10_000, "rto {rto}");
    // moto reports a new cluster `creating` on its first describe only: the restore waited at
    // most one aws.poll_interval (5s).
    let took = run
        .records
        .iter()
        .find_map(|r| match &r.event {
            Event::StepFinished {
                step, duration_ms, ..
            } if step == "restore" => Some(*duration_ms),
            _ => None,
        })
        .unwrap();
    assert!(took == 0 || took == 5_000, "restore took {took}ms");
    // RPO: the restore point is moto's LatestRestorableTime at the restore (after the fault), so
    // min(fault, restore point) = fault: nothing lost.
    assert_eq!(run.measured("rpo"), Some(0));
    assert!(run.after_failed().is_empty(), "{:?}", run.after_failed());
    // As in db-failover, the simulated writer alert never fires: MTTD missed, verdict missed.
    assert_eq!(run.measured("mttd"), None);
    assert_eq!(run.outcome.verdict, VerdictKind::Missed);
    assert_eq!(run.outcome.reasons.len(), 1, "{:?}", run.outcome.reasons);
}
