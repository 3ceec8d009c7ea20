//! The executor: runs an experiment's phases on tokio and emits typed events.
//!
//! before-hypothesis (a gate) → method (the step DAG, bounded concurrency, with the
//! during-hypothesis monitor and, from the fault on, the recovery monitor) → after-hypothesis →
//! data-loss measurement → rollbacks → verdict.
//!
//! This file holds [`execute`], a sequence of phase calls, and the state the phases share; each
//! phase lives in its own module: `hypothesis` (before/after), `schedule` (the DAG, steps,
//! retries), `monitor` (during-hypothesis and recovery monitors), `measure` (RTO, MTTD, RPO),
//! `rollback` and `verdict`.
//!
//! Invariants:
//! - All waiting goes through tokio time, so the whole run follows a paused (virtual) clock.
//! - Every started step with a rollback is rolled back on failure, abort or interrupt (by default
//!   also on success: `RollbackPolicy::Always`), in reverse dependency order; a rollback that
//!   cannot run is journaled as owed.
//! - Events are emitted as things happen; consumers (journal first) see each before the run moves on.

use super::clock::RunClock;
use super::events::{Event, Measurement, ObjectivesInfo, Phase, PlannedStep, Record, VerdictKind};
use super::verdict::Findings;
use super::{hypothesis, measure, rollback, schedule, verdict};
use crate::backend::{Probe, Provider};
use crate::lang::plan::Plan;
use crate::lang::secrets::Redactor;
use crate::lang::spec::Experiment;
use serde_json::Value as Json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// When rollbacks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackPolicy {
    /// After every run, so no fault is left behind (default).
    Always,
    /// Only when the run failed, was aborted or was interrupted.
    OnFailure,
    /// Never; every rollback is journaled as owed.
    Never,
}

/// A consumer of the event stream.
pub trait Sink: Send {
    fn record(&mut self, rec: &Record) -> Result<(), String>;
}

/// Collects records in memory (tests, reports at the end of a run).
#[derive(Clone, Default)]
pub struct MemorySink(pub Arc<Mutex<Vec<Record>>>);

impl Sink for MemorySink {
    fn record(&mut self, rec: &Record) -> Result<(), String> {
        self.0
            .lock()
            .expect("memory sink poisoned")
            .push(rec.clone());
        Ok(())
    }
}

struct EmitterInner {
    seq: u64,
    sinks: Vec<Box<dyn Sink>>,
    errors: Vec<String>,
}

/// Stamps events with the run clock and hands them to every sink, in order.
#[derive(Clone)]
pub struct Emitter {
    clock: RunClock,
    inner: Arc<Mutex<EmitterInner>>,
    /// Masks the experiment's secrets in every event before any sink sees it.
    redactor: Arc<Redactor>,
}

impl Emitter {
    pub fn new(clock: RunClock, sinks: Vec<Box<dyn Sink>>) -> Emitter {
        Emitter {
            clock,
            inner: Arc::new(Mutex::new(EmitterInner {
                seq: 0,
                sinks,
                errors: Vec::new(),
            })),
            redactor: Arc::new(Redactor::default()),
        }
    }

    /// Mask these secrets in every event (the journal, summary, report, lessons and progress
    /// display are all built from the events).
    pub fn with_redactor(mut self, redactor: Redactor) -> Emitter {
        self.redactor = Arc::new(redactor);
        self
    }

    /// The secrets' redactor, for what is cut short before it is emitted (command output).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn emit(&self, event: Event) {
        let event = match self.redact(event) {
            Ok(e) => e,
            Err(e) => {
                // Never hand an unmasked event on; say what was lost instead.
                let mut inner = self.inner.lock().expect("emitter poisoned");
                inner.errors.push(format!(
                    "an event was dropped: masking its secrets failed: {e}"
                ));
                return;
            }
        };
        let mut inner = self.inner.lock().expect("emitter poisoned");
        inner.seq += 1;
        let rec = Record {
            seq: inner.seq,
            at: self.clock.now(),
            elapsed_ms: self.clock.elapsed_ms(),
            event,
        };
        let mut errors = Vec::new();
        for s in inner.sinks.iter_mut() {
            if let Err(e) = s.record(&rec) {
                errors.push(e);
            }
        }
        inner.errors.extend(errors);
    }

    fn redact(&self, event: Event) -> Result<Event, serde_json::Error> {
        if self.redactor.is_empty() {
            return Ok(event);
        }
        let mut v = serde_json::to_value(&event)?;
        self.redactor.redact_json(&mut v);
        serde_json::from_value(v)
    }

    /// Errors sinks reported (e.g. the journal could not be written).
    pub fn errors(&self) -> Vec<String> {
        self.inner.lock().expect("emitter poisoned").errors.clone()
    }
}

/// How an approval step gets its answer.
pub type Approver = Arc<dyn Fn(&str) -> Result<bool, String> + Send + Sync>;

pub struct RunOptions {
    pub run_id: String,
    pub concurrency: usize,
    pub rollback: RollbackPolicy,
    /// `--approve`: pre-approve every approval step.
    pub approve: bool,
    /// Asks the operator on a terminal; `None` when unattended (approvals then fail closed).
    pub approver: Option<Approver>,
    pub environment: String,
    pub backend: String,
    pub clock_kind: String,
    pub seed: Option<u64>,
    /// The environment's document, journaled for `firedrill recover`.
    pub environment_doc: Option<super::events::EnvironmentDoc>,
    /// `--var` and `--seed` given for this run, journaled.
    pub overrides: super::events::Overrides,
}

/// What a run ended with.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub verdict: VerdictKind,
    pub exit_code: i32,
    pub measurements: Vec<Measurement>,
    pub reasons: Vec<String>,
}

#[derive(Default)]
pub(super) struct RecoveryState {
    pub(super) fault_at: Option<Duration>,
    /// The fault step failed: nothing (or not all of it) was injected, so no RTO is timed.
    pub(super) fault_failed: bool,
    /// When a recovery probe was first seen failing, after the fault started.
    pub(super) impact_after: Option<Duration>,
    /// The recovery probes never failed: the window watched (after the fault started) and the
    /// number of polls.
    pub(super) no_impact: Option<(Duration, u32)>,
    pub(super) detected_after: Option<Duration>,
    pub(super) recovered_after: Option<Duration>,
    pub(super) deadline_exceeded: bool,
    pub(super) failing_at_deadline: Vec<String>,
    /// The detection probe is a `prometheus.alert` and the alert fired after the fault: its own
    /// firing moment (`detected_after` is then measured from it, not from the poll).
    pub(super) alert_detection: Option<AlertDetection>,
}

/// An alert's firing moment, read back from its server, as MTTD's evidence.
#[derive(Debug, Default, Clone)]
pub(super) struct AlertDetection {
    pub(super) alertname: String,
    /// The firing moment in server time (RFC 3339).
    pub(super) fired_at: String,
    /// Server clock minus firedrill's, and its uncertainty.
    pub(super) skew_ms: i64,
    pub(super) skew_uncertainty_ms: u64,
    /// The rule group's evaluation interval (Prometheus), if known.
    pub(super) eval_interval_ms: Option<u64>,
    /// `prometheus` or `alertmanager`.
    pub(super) source: String,
}

pub(super) struct Shared {
    pub(super) exp: Arc<Experiment>,
    pub(super) provider: Arc<dyn Provider>,
    pub(super) emitter: Emitter,
    pub(super) clock: RunClock,
    pub(super) abort_tx: watch::Sender<Option<String>>,
    pub(super) recovery: Mutex<RecoveryState>,
    /// The recovery monitor, started with the fault step.
    pub(super) recovery_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set once every step of the method has finished (or will never run): the end of the
    /// default impact window.
    pub(super) method_done: watch::Sender<bool>,
    pub(super) approve: bool,
    pub(super) approver: Option<Approver>,
    /// The data-loss canary, from the start of the method until RPO is measured.
    pub(super) canary: Mutex<Option<super::canary::CanaryRun>>,
}

impl Shared {
    pub(super) fn emit(&self, e: Event) {
        self.emitter.emit(e);
    }

    pub(super) fn drain_env(&self) {
        for ev in self.provider.drain_events() {
            self.emit(Event::EnvironmentEvent {
                at_ms: ev.at_ms,
                component: ev.component,
                message: ev.message,
                detail: ev.detail,
            });
        }
    }

    pub(super) fn abort(&self, reason: String) {
        let mut first = false;
        self.abort_tx.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(reason.clone());
                first = true;
                true
            } else {
                false
            }
        });
        if first {
            self.emit(Event::AbortTriggered { reason });
        }
    }

    /// Run a probe and evaluate its tolerance: (ok, selected value, message).
    pub(super) async fn probe(
        &self,
        name: &str,
        phase: Phase,
        record: bool,
    ) -> (bool, Json, String) {
        let (ok, value, message, _) = self.probe_raw(name, phase, record, None).await;
        (ok, value, message)
    }

    /// Like `probe`, also returning the probe's raw output; `with` replaces the probe (the
    /// data-loss measurement adds `as_of`).
    pub(super) async fn probe_raw(
        &self,
        name: &str,
        phase: Phase,
        record: bool,
        with: Option<&Probe>,
    ) -> (bool, Json, String, Option<Json>) {
        let Some(def) = self.exp.probes.iter().find(|p| p.name.value == name) else {
            return (false, Json::Null, format!("no probe named `{name}`"), None);
        };
        let typed = with.unwrap_or(&def.call);
        let call = async {
            match typed {
                Probe::Http(h) => super::generic::http(h, false, self.emitter.redactor()).await,
                Probe::Command(c) => {
                    super::generic::command(c, false, self.emitter.redactor()).await
                }
                probe => self.provider.observe(probe).await,
            }
        };
        let res = match tokio::time::timeout(def.timeout, call).await {
            Ok(r) => r.map_err(|e| format!("{e} ({})", e.kind)),
            Err(_) => Err(format!(
                "probe did not answer within {}",
                crate::lang::duration::format(def.timeout)
            )),
        };
        self.drain_env();
        let (ok, value, message, raw) = match res {
            Ok(out) => {
                let v = def.tolerance.evaluate(&out);
                (v.ok, v.value, v.message, Some(out))
            }
            Err(e) => (false, Json::Null, format!("probe failed: {e}"), None),
        };
        if record {
            self.emit(Event::ProbeChecked {
                phase,
                probe: name.to_string(),
                ok,
                value: value.clone(),
                message: message.clone(),
            });
        }
        (ok, value, message, raw)
    }
}

pub(super) async fn wait_abort(rx: &mut watch::Receiver<Option<String>>) {
    let _ = rx.wait_for(|v| v.is_some()).await;
}

pub(super) async fn wait_count(rx: &mut watch::Receiver<u32>, n: u32) {
    if rx.wait_for(|c| *c >= n).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Static description of the plan for the journal.
pub fn planned_steps(exp: &Experiment, plan: &Plan) -> Vec<PlannedStep> {
    let mut critical = vec![false; exp.steps.len()];
    for &i in &plan.critical_path {
        critical[i] = true;
    }
    exp.steps
        .iter()
        .enumerate()
        .map(|(i, s)| PlannedStep {
            id: s.id.value.clone(),
            action: s.action.value.clone(),
            after: s.after.iter().map(|a| a.value.clone()).collect(),
            wave: plan.wave_of[i],
            critical: critical[i],
            has_rollback: s.has_rollback(),
            description: s.description.clone(),
        })
        .collect()
}

/// The `run_started` event: the run's identity, options, objectives and plan.
fn run_started(exp: &Experiment, plan: &Plan, opts: &RunOptions) -> Event {
    let o = &exp.objectives;
    Event::RunStarted {
        journal_version: super::events::JOURNAL_VERSION,
        run_id: opts.run_id.clone(),
        experiment: exp.metadata.name.clone(),
        title: exp.metadata.title.clone(),
        description: exp.metadata.description.clone(),
        owner: exp.metadata.owner.clone(),
        tags: exp.metadata.tags.clone(),
        file: exp.file.clone(),
        environment: opts.environment.clone(),
        backend: opts.backend.clone(),
        clock: opts.clock_kind.clone(),
        seed: opts.seed,
        variables: exp.variables.clone(),
        objectives: ObjectivesInfo {
            rto_ms: o.rto.as_millis() as u64,
            rpo_ms: o.rpo.as_millis() as u64,
            mttd_ms: o.mttd.map(|m| m.as_millis() as u64),
        },
        steps: planned_steps(exp, plan),
        critical_path: plan
            .critical_path
            .iter()
            .map(|&i| exp.steps[i].id.value.clone())
            .collect(),
        fault_step: exp.recovery.as_ref().map(|r| r.fault.value.clone()),
        dry_run: false,
        firedrill_version: env!("CARGO_PKG_VERSION").to_string(),
        environment_doc: opts.environment_doc.clone(),
        overrides: opts.overrides.clone(),
        probes: exp
            .probes
            .iter()
            .map(|p| super::events::PlannedProbe {
                name: p.name.value.clone(),
                call: p.call.name().to_string(),
                with: p.with.clone(),
            })
            .collect(),
        secrets: exp
            .secrets
            .iter()
            .map(|s| super::events::SecretRef {
                name: s.name.clone(),
                env: s.env.clone(),
            })
            .collect(),
    }
}

/// Run an experiment. `interrupts` counts Ctrl-C/SIGTERM: the first aborts gracefully (rollbacks
/// run), the second stops at once (rollbacks still owed are journaled).
pub async fn execute(
    exp: Arc<Experiment>,
    plan: Arc<Plan>,
    provider: Arc<dyn Provider>,
    emitter: Emitter,
    clock: RunClock,
    opts: RunOptions,
    mut interrupts: watch::Receiver<u32>,
) -> Outcome {
    let (abort_tx, mut abort_rx) = watch::channel(None::<String>);
    provider.start(&crate::backend::RunContext {
        clock,
        run_id: opts.run_id.clone(),
        experiment: exp.metadata.name.clone(),
    });
    let sh = Arc::new(Shared {
        exp: exp.clone(),
        provider,
        emitter,
        clock,
        abort_tx,
        recovery: Mutex::new(RecoveryState::default()),
        recovery_task: Mutex::new(None),
        method_done: watch::channel(false).0,
        approve: opts.approve,
        approver: opts.approver.clone(),
        canary: Mutex::new(None),
    });
    sh.emit(run_started(&exp, &plan, &opts));

    if let Some(outcome) = hypothesis::before(&sh, &abort_rx, &mut interrupts).await {
        return outcome;
    }
    // The canary writes from before the fault (the before gate passed) until RPO is measured.
    if let Some(crate::lang::spec::DataLoss::Canary { canary: spec, .. }) =
        exp.recovery.as_ref().and_then(|r| r.data_loss.as_ref())
    {
        super::canary::start(&sh, spec, &opts.run_id).await;
    }
    let mut method =
        schedule::method(&sh, &plan, opts.concurrency, &mut abort_rx, &mut interrupts).await;
    let aborted = abort_rx.borrow().is_some();
    let after_met = hypothesis::after(&sh, aborted, method.hard_stop).await;
    let measurements = measure::measure(&sh, aborted, method.hard_stop).await;
    // A canary that was not measured (abort, no fault) still stops and cleans up.
    super::canary::abandon(&sh, method.hard_stop).await;
    let failed = aborted
        || method.hard_stop
        || !method.continued_failures.is_empty()
        || after_met == Some(false)
        || measurements.iter().any(|m| !m.met);
    let rollback_failed = rollback::roll_back(
        &sh,
        &plan,
        opts.rollback,
        failed,
        &mut method,
        &mut interrupts,
    )
    .await;
    let abort_reason = abort_rx.borrow().clone();
    verdict::conclude(
        &sh,
        Findings {
            aborted,
            hard_stop: method.hard_stop,
            failed,
            rollback_failed,
            after_met,
            measurements,
            continued_failures: method.continued_failures,
        },
        abort_reason,
    )
}
