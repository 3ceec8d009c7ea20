//! Hand-built, realistic event sequences for tests: an AZ-loss drill on the simulated estate.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use crate::engine::events::{
    Event, JOURNAL_VERSION, Measurement, ObjectivesInfo, Phase, PlannedStep, Record, StepOutcome,
    VerdictKind,
};

pub const RUN_ID: &str = "20261122T143501Z-az-loss-3f2a";

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 14, 35, 1).unwrap()
}

/// Appends records with consecutive `seq` and run-clock times.
pub struct Builder {
    run_id: String,
    records: Vec<Record>,
}

impl Builder {
    pub fn new(run_id: &str) -> Builder {
        Builder {
            run_id: run_id.to_string(),
            records: Vec::new(),
        }
    }

    pub fn at(&mut self, secs: u64, event: Event) -> &mut Builder {
        let ms = secs * 1000;
        self.records.push(Record {
            seq: self.records.len() as u64,
            at: t0() + chrono::Duration::milliseconds(ms as i64),
            elapsed_ms: ms,
            event,
        });
        self
    }

    pub fn build(&self) -> Vec<Record> {
        self.records.clone()
    }

    fn probe(&mut self, secs: u64, phase: Phase, probe: &str, ok: bool, value: f64) -> &mut Self {
        let message = if ok {
            format!("{probe} = {value}, within tolerance")
        } else {
            format!("{probe} = {value}, out of tolerance")
        };
        self.at(
            secs,
            Event::ProbeChecked {
                phase,
                probe: probe.into(),
                ok,
                value: json!(value),
                message,
            },
        )
    }

    fn step(
        &mut self,
        start: u64,
        end: u64,
        id: &str,
        action: &str,
        outcome: StepOutcome,
        output: serde_json::Value,
    ) -> &mut Self {
        self.at(
            start,
            Event::StepStarted {
                step: id.into(),
                action: action.into(),
                attempt: 1,
                with: None,
                rollback: None,
            },
        );
        if id == "fail-az" {
            self.at(start, Event::FaultInjected { step: id.into() });
        }
        self.at(
            end,
            Event::StepFinished {
                step: id.into(),
                outcome,
                attempts: 1,
                duration_ms: (end - start) * 1000,
                output,
                error: None,
                error_kind: None,
            },
        )
    }

    fn env(&mut self, secs: u64, component: &str, message: &str) -> &mut Self {
        self.at(
            secs,
            Event::EnvironmentEvent {
                at_ms: secs * 1000,
                component: component.into(),
                message: message.into(),
                detail: None,
            },
        )
    }

    fn rollback(&mut self, start: u64, end: u64, step: &str, action: &str) -> &mut Self {
        self.at(
            start,
            Event::RollbackStarted {
                step: step.into(),
                action: action.into(),
                recovered: false,
            },
        )
        .at(
            end,
            Event::RollbackFinished {
                step: step.into(),
                ok: true,
                duration_ms: (end - start) * 1000,
                error: None,
            },
        )
    }

    /// Before phase, then the method up to the fault and the first deviations.
    fn start_to_fault(&mut self) -> &mut Self {
        let run_id = self.run_id.clone();
        self.at(0, run_started(&run_id))
            .at(
                0,
                Event::PhaseStarted {
                    phase: Phase::Before,
                },
            )
            .probe(1, Phase::Before, "availability", true, 0.999)
            .probe(1, Phase::Before, "p99-latency-ms", true, 120.0)
            .at(
                2,
                Event::HypothesisResult {
                    phase: Phase::Before,
                    met: true,
                    failed: vec![],
                },
            )
            .at(
                2,
                Event::PhaseStarted {
                    phase: Phase::Method,
                },
            )
            .at(
                2,
                Event::StepStarted {
                    step: "snapshot-db".into(),
                    action: "db.snapshot".into(),
                    attempt: 1,
                    with: None,
                    rollback: None,
                },
            )
            .at(
                12,
                Event::StepRetrying {
                    step: "snapshot-db".into(),
                    attempt: 1,
                    error: "snapshot quota exceeded (429)".into(),
                    backoff_ms: 5000,
                },
            )
            .at(
                17,
                Event::StepStarted {
                    step: "snapshot-db".into(),
                    action: "db.snapshot".into(),
                    attempt: 2,
                    with: None,
                    rollback: None,
                },
            )
            .at(
                32,
                Event::StepFinished {
                    step: "snapshot-db".into(),
                    outcome: StepOutcome::Succeeded,
                    attempts: 2,
                    duration_ms: 30_000,
                    output: json!({"snapshot_id": "snap-0a1b2c", "size_gb": 120}),
                    error: None,
                    error_kind: None,
                },
            )
            .step(
                32,
                35,
                "fail-az",
                "sim.fail_zone",
                StepOutcome::Succeeded,
                json!({"zone": "eu-west-1a", "instances_stopped": 6}),
            )
            .env(40, "asg web", "6 instances in eu-west-1a terminated")
            .probe(62, Phase::Method, "availability", false, 0.62)
            .at(
                62,
                Event::Deviation {
                    probe: "availability".into(),
                    value: json!(0.62),
                    message: "availability = 0.62, below 0.99".into(),
                },
            )
            .at(
                77,
                Event::Detected {
                    probe: "alerts-firing".into(),
                    after_ms: 45_000,
                },
            )
            .probe(92, Phase::Method, "availability", false, 0.71)
            .at(
                92,
                Event::Deviation {
                    probe: "availability".into(),
                    value: json!(0.71),
                    message: "availability = 0.71, below 0.99".into(),
                },
            )
    }

    /// From the promotion step to the end, recovering `dns-serves-dr` `dns_after` s after the fault.
    fn recover_and_finish(&mut self, dns_after: u64, verdict: VerdictKind) -> &mut Self {
        let fault = 32;
        self.step(
            95,
            125,
            "promote-dr",
            "dns.failover",
            StepOutcome::Succeeded,
            json!({"record": "api.example.com", "target": "dr-lb"}),
        )
        .env(100, "rds orders-db", "failover to eu-west-1b started")
        .env(
            190,
            "rds orders-db",
            "failover complete; writer in eu-west-1b",
        )
        .at(
            202,
            Event::RecoveryProbePassing {
                probe: "api-healthy".into(),
                after_ms: 170_000,
            },
        )
        .env(
            fault + dns_after - 7,
            "route53 api.example.com",
            "health check failed over to dr-lb",
        )
        .at(
            fault + dns_after,
            Event::RecoveryProbePassing {
                probe: "dns-serves-dr".into(),
                after_ms: dns_after * 1000,
            },
        )
        .probe(
            fault + dns_after + 10,
            Phase::Method,
            "availability",
            true,
            0.998,
        )
        .at(
            fault + dns_after + 15,
            Event::Recovered {
                after_ms: dns_after * 1000,
            },
        );
        let t = fault + dns_after + 20;
        self.at(
            t,
            Event::DataLossMeasured {
                probe: "orders-db".into(),
                newest_write: Some(t0() + chrono::Duration::seconds(12)),
                loss_ms: Some(20_000),
            },
        )
        .at(
            t,
            Event::PhaseStarted {
                phase: Phase::After,
            },
        )
        .probe(t + 1, Phase::After, "availability", true, 0.999)
        .probe(t + 1, Phase::After, "p99-latency-ms", true, 140.0)
        .at(
            t + 2,
            Event::HypothesisResult {
                phase: Phase::After,
                met: true,
                failed: vec![],
            },
        )
        .at(
            t + 3,
            Event::PhaseStarted {
                phase: Phase::Rollback,
            },
        )
        .rollback(t + 3, t + 23, "promote-dr", "dns.failback")
        .rollback(t + 23, t + 33, "fail-az", "sim.restore_zone");
        let rto_met = dns_after <= 300;
        let reasons = if rto_met {
            vec![]
        } else {
            vec![format!(
                "RTO missed: recovered {} after the fault, objective 5m",
                crate::lang::duration::format(std::time::Duration::from_secs(dns_after))
            )]
        };
        self.at(
            t + 34,
            Event::RunFinished {
                verdict,
                exit_code: crate::exit::for_verdict(verdict),
                measurements: vec![
                    Measurement {
                        name: "rto".into(),
                        measured_ms: Some(dns_after * 1000),
                        objective_ms: Some(300_000),
                        resolution_ms: 10_000,
                        deadline_ms: None,
                        met: rto_met,
                        detail: format!(
                            "fault at +32s, all 2 recovery probes passing from {}",
                            crate::report::lessons::offset((fault + dns_after) * 1000)
                        ),
                        impact_ms: Some(10_000),
                        no_impact: false,
                        canary: None,
                    },
                    Measurement {
                        name: "rpo".into(),
                        measured_ms: Some(20_000),
                        objective_ms: Some(60_000),
                        resolution_ms: 5_000,
                        deadline_ms: None,
                        met: true,
                        detail: "newest surviving write 20s before the fault".into(),
                        impact_ms: None,
                        no_impact: false,
                        canary: None,
                    },
                    Measurement {
                        name: "mttd".into(),
                        measured_ms: Some(45_000),
                        objective_ms: Some(120_000),
                        resolution_ms: 15_000,
                        deadline_ms: None,
                        met: true,
                        detail: "alerts-firing passed at +1m17s".into(),
                        impact_ms: None,
                        no_impact: false,
                        canary: None,
                    },
                ],
                reasons,
            },
        )
    }
}

pub fn run_started(run_id: &str) -> Event {
    let step = |id: &str, action: &str, after: &[&str], wave, critical, rb| PlannedStep {
        id: id.into(),
        action: action.into(),
        after: after.iter().map(|s| s.to_string()).collect(),
        wave,
        critical,
        has_rollback: rb,
        description: None,
    };
    Event::RunStarted {
        journal_version: JOURNAL_VERSION,
        run_id: run_id.into(),
        experiment: "az-loss".into(),
        title: Some("Lose availability zone eu-west-1a".into()),
        description: None,
        owner: Some("team-payments".into()),
        tags: vec!["dr".into(), "quarterly".into()],
        file: "drills/az-loss.yaml".into(),
        environment: "staging".into(),
        backend: "sim".into(),
        clock: "virtual".into(),
        seed: Some(42),
        variables: vec![("region".into(), "eu-west-1".into())],
        objectives: ObjectivesInfo {
            rto_ms: 300_000,
            rpo_ms: 60_000,
            mttd_ms: Some(120_000),
        },
        steps: vec![
            step("snapshot-db", "db.snapshot", &[], 0, false, false),
            step("fail-az", "sim.fail_zone", &["snapshot-db"], 1, true, true),
            step("promote-dr", "dns.failover", &["fail-az"], 2, true, true),
        ],
        critical_path: vec!["snapshot-db".into(), "fail-az".into(), "promote-dr".into()],
        fault_step: Some("fail-az".into()),
        dry_run: false,
        environment_doc: None,
        secrets: Vec::new(),
        overrides: Default::default(),
        probes: Vec::new(),
        firedrill_version: "0.1.0".into(),
    }
}

/// Recovered 3m35s after the fault: every objective met.
pub fn pass_run() -> Vec<Record> {
    Builder::new(RUN_ID)
        .start_to_fault()
        .recover_and_finish(215, VerdictKind::Pass)
        .build()
}

/// `dns-serves-dr` passes 9m10s after the fault: RTO (5m) missed by 4m10s.
pub fn missed_rto_run() -> Vec<Record> {
    missed_rto_run_with_id(RUN_ID)
}

pub fn missed_rto_run_with_id(run_id: &str) -> Vec<Record> {
    Builder::new(run_id)
        .start_to_fault()
        .recover_and_finish(550, VerdictKind::Missed)
        .build()
}

/// A sustained deviation aborts the drill; the rollback of `promote-dr` fails, then a second
/// interrupt leaves `fail-az`'s change owed.
pub fn aborted_run() -> Vec<Record> {
    Builder::new(RUN_ID)
        .start_to_fault()
        .at(
            95,
            Event::StepStarted {
                step: "promote-dr".into(),
                action: "dns.failover".into(),
                attempt: 1,
                with: None,
                rollback: None,
            },
        )
        .at(
            120,
            Event::AbortTriggered {
                reason: "availability below 0.8 for 1m".into(),
            },
        )
        .at(
            120,
            Event::StepFinished {
                step: "promote-dr".into(),
                outcome: StepOutcome::Cancelled,
                attempts: 1,
                duration_ms: 25_000,
                output: serde_json::Value::Null,
                error: Some("cancelled by abort".into()),
                error_kind: Some(crate::backend::ErrorKind::Failed),
            },
        )
        .at(
            121,
            Event::PhaseStarted {
                phase: Phase::Rollback,
            },
        )
        .at(
            121,
            Event::RollbackStarted {
                step: "promote-dr".into(),
                action: "dns.failback".into(),
                recovered: false,
            },
        )
        .at(
            135,
            Event::RollbackFinished {
                step: "promote-dr".into(),
                ok: false,
                duration_ms: 14_000,
                error: Some("route53 API returned 503 | throttled".into()),
            },
        )
        .at(
            136,
            Event::Interrupted {
                signal: "SIGINT".into(),
                count: 1,
            },
        )
        .at(
            138,
            Event::Interrupted {
                signal: "SIGINT".into(),
                count: 2,
            },
        )
        .at(
            138,
            Event::RollbackOwed {
                step: "fail-az".into(),
                action: "sim.restore_zone".into(),
                reason: "second interrupt: stopped at once".into(),
            },
        )
        .at(
            139,
            Event::RunFinished {
                verdict: VerdictKind::RollbackFailed,
                exit_code: crate::exit::ROLLBACK_FAILED,
                measurements: vec![],
                reasons: vec![
                    "aborted: availability below 0.8 for 1m".into(),
                    "rollback of `promote-dr` failed".into(),
                    "rollback of `fail-az` owed".into(),
                ],
            },
        )
        .build()
}

/// The missed run cut off while `promote-dr` is running: the process died.
pub fn partial_run() -> Vec<Record> {
    let mut b = Builder::new(RUN_ID);
    b.start_to_fault().at(
        95,
        Event::StepStarted {
            step: "promote-dr".into(),
            action: "dns.failover".into(),
            attempt: 1,
            with: None,
            rollback: None,
        },
    );
    b.build()
}
