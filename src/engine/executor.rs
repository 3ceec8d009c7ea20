//! The executor: runs an experiment's phases on tokio and emits typed events.
//!
//! before-hypothesis (a gate) → method (the step DAG, bounded concurrency, with the
//! during-hypothesis monitor and, from the fault on, the recovery monitor) → after-hypothesis →
//! data-loss measurement → rollbacks → verdict.
//!
//! Invariants:
//! - All waiting goes through tokio time, so the whole run follows a paused (virtual) clock.
//! - Every started step with a rollback is rolled back on failure, abort or interrupt (by default
//!   also on success: `RollbackPolicy::Always`), in reverse dependency order; a rollback that
//!   cannot run is journaled as owed.
//! - Events are emitted as things happen; consumers (journal first) see each before the run moves on.

use super::clock::RunClock;
use super::events::{
    Event, Measurement, ObjectivesInfo, Phase, PlannedStep, Record, StepOutcome, VerdictKind,
};
use crate::backend::{Action, ErrorKind, Probe, Provider, ProviderError};
use crate::lang::plan::Plan;
use crate::lang::spec::{AbortRule, Experiment, OnFailure, RollbackSpec, Step};
use crate::lang::tolerance::as_number;
use serde_json::{Value as Json, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

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
        }
    }

    pub fn emit(&self, event: Event) {
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
}

/// What a run ended with.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub verdict: VerdictKind,
    pub exit_code: i32,
    pub measurements: Vec<Measurement>,
    pub reasons: Vec<String>,
}

struct StepResult {
    outcome: StepOutcome,
    output: Json,
    error: Option<String>,
    error_kind: Option<ErrorKind>,
    attempts: u32,
    duration_ms: u64,
}

impl StepResult {
    fn not_run(outcome: StepOutcome, error: Option<String>) -> StepResult {
        StepResult {
            outcome,
            output: Json::Null,
            error_kind: error.as_ref().map(|_| ErrorKind::Failed),
            error,
            attempts: 0,
            duration_ms: 0,
        }
    }
}

#[derive(Default)]
struct RecoveryState {
    fault_at: Option<Duration>,
    detected_after: Option<Duration>,
    recovered_after: Option<Duration>,
    deadline_exceeded: bool,
    failing_at_deadline: Vec<String>,
}

struct Shared {
    exp: Arc<Experiment>,
    provider: Arc<dyn Provider>,
    emitter: Emitter,
    clock: RunClock,
    abort_tx: watch::Sender<Option<String>>,
    recovery: Mutex<RecoveryState>,
    approve: bool,
    approver: Option<Approver>,
}

impl Shared {
    fn emit(&self, e: Event) {
        self.emitter.emit(e);
    }

    fn drain_env(&self) {
        for ev in self.provider.drain_events() {
            self.emit(Event::EnvironmentEvent {
                at_ms: ev.at_ms,
                component: ev.component,
                message: ev.message,
                detail: ev.detail,
            });
        }
    }

    fn abort(&self, reason: String) {
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
    async fn probe(&self, name: &str, phase: Phase, record: bool) -> (bool, Json, String) {
        let (ok, value, message, _) = self.probe_raw(name, phase, record, None).await;
        (ok, value, message)
    }

    /// Like `probe`, also returning the probe's raw output; `with` replaces the probe (the
    /// data-loss measurement adds `as_of`).
    async fn probe_raw(
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
                Probe::Http(h) => super::generic::http(h, false).await,
                Probe::Command(c) => super::generic::command(c, false).await,
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

    async fn hypothesis(&self, phase: Phase, probes: &[String]) -> bool {
        self.emit(Event::PhaseStarted { phase });
        let mut failed = Vec::new();
        for p in probes {
            let (ok, _, _) = self.probe(p, phase, true).await;
            if !ok {
                failed.push(p.clone());
            }
        }
        let met = failed.is_empty();
        self.emit(Event::HypothesisResult { phase, met, failed });
        met
    }

    /// Run one action (built-in, generic or provider).
    async fn action(&self, step_id: &str, action: &Action) -> Result<Json, ProviderError> {
        let out = match action {
            Action::Wait(w) => {
                tokio::time::sleep(w.duration).await;
                Ok(json!({"waited": crate::lang::duration::format(w.duration)}))
            }
            Action::Assert(a) => {
                let p = a.probe.as_str();
                let (ok, value, message) = self.probe(p, Phase::Method, true).await;
                if ok {
                    Ok(json!({"probe": p, "value": value}))
                } else {
                    Err(ProviderError::failed(format!(
                        "assertion `{p}` failed: {message}"
                    )))
                }
            }
            Action::WaitUntil(w) => {
                let p = w.probe.as_str();
                let (deadline, interval) = (w.deadline, w.interval);
                let start = self.clock.elapsed();
                loop {
                    let (ok, value, message) = self.probe(p, Phase::Method, true).await;
                    let waited = self.clock.elapsed() - start;
                    if ok {
                        break Ok(
                            json!({"probe": p, "value": value, "after": crate::lang::duration::format(waited)}),
                        );
                    }
                    if waited + interval > deadline {
                        break Err(ProviderError::timed_out(format!(
                            "`{p}` did not hold within {}: {message}",
                            crate::lang::duration::format(deadline)
                        )));
                    }
                    tokio::time::sleep(interval).await;
                }
            }
            Action::Approval(a) => {
                let msg = a.message.clone();
                if self.approve {
                    Ok(json!({"approved": true, "by": "--approve"}))
                } else if let Some(ask) = self.approver.clone() {
                    let prompt = format!("[{step_id}] {msg}");
                    match tokio::task::spawn_blocking(move || ask(&prompt)).await {
                        Ok(Ok(true)) => Ok(json!({"approved": true, "by": "operator"})),
                        Ok(Ok(false)) => Err(ProviderError::denied("the operator declined".into())),
                        Ok(Err(e)) => Err(ProviderError::failed(format!(
                            "approval prompt failed: {e}"
                        ))),
                        Err(e) => Err(ProviderError::failed(format!(
                            "approval prompt failed: {e}"
                        ))),
                    }
                } else {
                    Err(ProviderError::denied(format!(
                        "approval needed (\"{msg}\") but no operator terminal is attached; failing closed. Pre-approve with --approve"
                    )))
                }
            }
            Action::Http(h) => super::generic::http(h, true).await,
            Action::Command(c) => super::generic::command(c, true).await,
            other => self.provider.inject(other).await,
        };
        self.drain_env();
        out
    }

    async fn run_step(self: Arc<Self>, idx: usize) -> StepResult {
        let step: &Step = &self.exp.steps[idx];
        let is_fault = self
            .exp
            .recovery
            .as_ref()
            .is_some_and(|r| r.fault.value == step.id.value);
        let mut backoff = step.retry.backoff;
        let mut attempt = 0;
        let t0 = self.clock.elapsed();
        let took = |clock: &RunClock| (clock.elapsed() - t0).as_millis() as u64;
        loop {
            attempt += 1;
            self.emit(Event::StepStarted {
                step: step.id.value.clone(),
                action: step.action.value.clone(),
                attempt,
            });
            if is_fault && attempt == 1 {
                self.recovery.lock().expect("poisoned").fault_at = Some(self.clock.elapsed());
                self.emit(Event::FaultInjected {
                    step: step.id.value.clone(),
                });
            }
            let fut = self.action(&step.id.value, &step.call);
            let (res, timed_out) = match step.timeout {
                Some(t) => match tokio::time::timeout(t, fut).await {
                    Ok(r) => (r, false),
                    Err(_) => (
                        Err(ProviderError::timed_out(format!(
                            "did not finish within {}",
                            crate::lang::duration::format(t)
                        ))),
                        true,
                    ),
                },
                None => (fut.await, false),
            };
            match res {
                Ok(output) => {
                    return StepResult {
                        outcome: StepOutcome::Succeeded,
                        output,
                        error: None,
                        error_kind: None,
                        attempts: attempt,
                        duration_ms: took(&self.clock),
                    };
                }
                Err(e) if attempt < step.retry.attempts && retryable(step, &e) => {
                    self.emit(Event::StepRetrying {
                        step: step.id.value.clone(),
                        attempt,
                        error: format!("{e} ({})", e.kind),
                        backoff_ms: backoff.as_millis() as u64,
                    });
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.mul_f64(step.retry.factor);
                }
                Err(e) => {
                    let outcome = if timed_out {
                        StepOutcome::TimedOut
                    } else {
                        StepOutcome::Failed
                    };
                    let mut error = e.to_string();
                    if attempt < step.retry.attempts {
                        error.push_str(&format!(
                            " (not retried: {} errors fail the same way again{})",
                            e.kind,
                            if e.kind == ErrorKind::TimedOut {
                                ", and a timed-out change may have happened"
                            } else {
                                ""
                            }
                        ));
                    }
                    return StepResult {
                        outcome,
                        output: Json::Null,
                        error: Some(error),
                        error_kind: Some(e.kind),
                        attempts: attempt,
                        duration_ms: took(&self.clock),
                    };
                }
            }
        }
    }
}

/// Whether a failed attempt of `step` is worth another: transient kinds always; a timeout only
/// for steps that change nothing (a timed-out failover may have happened, and a second one
/// would fail over twice).
fn retryable(step: &Step, e: &ProviderError) -> bool {
    if e.kind == ErrorKind::TimedOut {
        return match &step.call {
            Action::Assert(_) | Action::WaitUntil(_) | Action::Wait(_) => true,
            Action::Http(h) => matches!(h.method.as_str(), "GET" | "HEAD"),
            _ => false,
        };
    }
    e.kind.is_retryable()
}

async fn wait_abort(rx: &mut watch::Receiver<Option<String>>) {
    let _ = rx.wait_for(|v| v.is_some()).await;
}

async fn wait_count(rx: &mut watch::Receiver<u32>, n: u32) {
    if rx.wait_for(|c| *c >= n).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The during-hypothesis monitor: probes at an interval, records deviations, aborts on sustained
/// breaches. Runs until `stop` fires.
async fn during_monitor(sh: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let Some(during) = sh.exp.during.clone() else {
        return;
    };
    let mut names: Vec<String> = during.probes.iter().map(|p| p.value.clone()).collect();
    for a in &during.abort_when {
        if !names.contains(&a.probe.value) {
            names.push(a.probe.value.clone());
        }
    }
    // Per condition: start of the current breach streak, or the samples within the window.
    let mut streak: Vec<Option<Duration>> = vec![None; during.abort_when.len()];
    let mut samples: Vec<VecDeque<(Duration, f64)>> =
        vec![VecDeque::new(); during.abort_when.len()];
    loop {
        let now = sh.clock.elapsed();
        for name in &names {
            let recorded = during.probes.iter().any(|p| &p.value == name);
            let (ok, value, message) = sh.probe(name, Phase::Method, recorded).await;
            if recorded && !ok {
                sh.emit(Event::Deviation {
                    probe: name.clone(),
                    value: value.clone(),
                    message: message.clone(),
                });
            }
            for (ci, cond) in during.abort_when.iter().enumerate() {
                if &cond.probe.value != name {
                    continue;
                }
                let num = as_number(&value);
                let breached = match cond.rule {
                    AbortRule::Above(x) => num.is_some_and(|v| v > x),
                    AbortRule::Below(x) => num.is_some_and(|v| v < x),
                    AbortRule::Failing => !ok,
                    AbortRule::IncreaseAbove(x) => {
                        let Some(v) = num else { continue };
                        let q = &mut samples[ci];
                        q.push_back((now, v));
                        while q
                            .front()
                            .is_some_and(|(t, _)| now.saturating_sub(*t) > cond.window)
                        {
                            q.pop_front();
                        }
                        let low = q.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
                        if v - low > x {
                            sh.abort(format!(
                                "abort condition `{}` held: rose by {} within {}",
                                cond.describe(),
                                v - low,
                                crate::lang::duration::format(cond.window)
                            ));
                        }
                        continue;
                    }
                };
                if breached {
                    let since = *streak[ci].get_or_insert(now);
                    if now - since >= cond.window {
                        sh.abort(format!(
                            "abort condition `{}` held for {} (last value {})",
                            cond.describe(),
                            crate::lang::duration::format(now - since),
                            value
                        ));
                    }
                } else {
                    streak[ci] = None;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(during.interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The recovery monitor: from the fault on, polls the recovery probes (and the detection probe)
/// every interval until recovered and detected, or until the deadline.
async fn recovery_monitor(sh: Arc<Shared>) {
    let Some(rec) = sh.exp.recovery.clone() else {
        return;
    };
    let fault_at = sh
        .recovery
        .lock()
        .expect("poisoned")
        .fault_at
        .unwrap_or_default();
    let deadline = rec.deadline_for(&sh.exp.objectives);
    let probes: Vec<String> = rec.probes.iter().map(|p| p.value.clone()).collect();
    let mut passing_since: Vec<Option<Duration>> = vec![None; probes.len()];
    let mut streak_start: Option<Duration> = None;
    let mut streak_len = 0u32;
    let mut recovered = false;
    let mut detected = rec.detection.is_none();
    loop {
        let now = sh.clock.elapsed();
        let since_fault = now.saturating_sub(fault_at);
        if since_fault > deadline {
            let mut st = sh.recovery.lock().expect("poisoned");
            if !recovered {
                st.deadline_exceeded = true;
                st.failing_at_deadline = probes
                    .iter()
                    .zip(&passing_since)
                    .filter(|(_, p)| p.is_none())
                    .map(|(n, _)| n.clone())
                    .collect();
                let failing = st.failing_at_deadline.clone();
                drop(st);
                sh.emit(Event::RecoveryDeadlineExceeded {
                    deadline_ms: deadline.as_millis() as u64,
                    failing,
                });
            }
            return;
        }
        if !recovered {
            let mut all = true;
            for (i, p) in probes.iter().enumerate() {
                let (ok, _, _) = sh.probe(p, Phase::Method, false).await;
                if ok && passing_since[i].is_none() {
                    passing_since[i] = Some(since_fault);
                    sh.emit(Event::RecoveryProbePassing {
                        probe: p.clone(),
                        after_ms: since_fault.as_millis() as u64,
                    });
                } else if !ok {
                    passing_since[i] = None;
                }
                all &= ok;
            }
            if all {
                let start = *streak_start.get_or_insert(since_fault);
                streak_len += 1;
                if streak_len >= rec.consecutive {
                    recovered = true;
                    sh.recovery.lock().expect("poisoned").recovered_after = Some(start);
                    sh.emit(Event::Recovered {
                        after_ms: start.as_millis() as u64,
                    });
                }
            } else {
                streak_start = None;
                streak_len = 0;
            }
        }
        if !detected && let Some(d) = &rec.detection {
            let (ok, _, _) = sh.probe(&d.value, Phase::Method, false).await;
            if ok {
                detected = true;
                sh.recovery.lock().expect("poisoned").detected_after = Some(since_fault);
                sh.emit(Event::Detected {
                    probe: d.value.clone(),
                    after_ms: since_fault.as_millis() as u64,
                });
            }
        }
        if recovered && detected {
            return;
        }
        tokio::time::sleep(rec.interval).await;
    }
}

/// Static description of the plan for the journal.
pub fn planned_steps(exp: &Experiment, plan: &Plan) -> Vec<PlannedStep> {
    exp.steps
        .iter()
        .enumerate()
        .map(|(i, s)| PlannedStep {
            id: s.id.value.clone(),
            action: s.action.value.clone(),
            after: s.after.iter().map(|a| a.value.clone()).collect(),
            wave: plan.wave_of[i],
            critical: plan.critical_path.contains(&i),
            has_rollback: s.has_rollback(),
            description: s.description.clone(),
        })
        .collect()
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
        approve: opts.approve,
        approver: opts.approver.clone(),
    });
    let o = &exp.objectives;
    sh.emit(Event::RunStarted {
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
        steps: planned_steps(&exp, &plan),
        critical_path: plan
            .critical_path
            .iter()
            .map(|&i| exp.steps[i].id.value.clone())
            .collect(),
        fault_step: exp.recovery.as_ref().map(|r| r.fault.value.clone()),
        dry_run: false,
        firedrill_version: env!("CARGO_PKG_VERSION").to_string(),
    });

    // Before: the gate.
    let before: Vec<String> = exp.before.iter().map(|p| p.value.clone()).collect();
    let steady = tokio::select! {
        met = sh.hypothesis(Phase::Before, &before) => met,
        _ = wait_count(&mut interrupts, 1) => {
            sh.emit(Event::Interrupted { signal: "interrupt".into(), count: 1 });
            sh.abort("interrupted before the fault".into());
            false
        }
    };
    if !steady {
        let aborted = abort_rx.borrow().is_some();
        let mut reasons = vec![if aborted {
            "interrupted before the fault; nothing was injected".to_string()
        } else {
            "steady state not met before the fault; nothing was injected".to_string()
        }];
        let verdict = if aborted {
            VerdictKind::Aborted
        } else {
            VerdictKind::NotSteady
        };
        reasons.dedup();
        return finish(&sh, verdict, Vec::new(), reasons);
    }

    // Method.
    sh.emit(Event::PhaseStarted {
        phase: Phase::Method,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let during = tokio::spawn(during_monitor(sh.clone(), stop_rx));
    let n = exp.steps.len();
    let mut results: Vec<Option<StepResult>> = (0..n).map(|_| None).collect();
    let mut started = vec![false; n];
    let mut set: JoinSet<(usize, StepResult)> = JoinSet::new();
    let mut recovery: Option<tokio::task::JoinHandle<()>> = None;
    let mut hard_stop = false;
    let mut interrupts_open = true;
    let mut continued_failures: Vec<String> = Vec::new();
    // Parent indices, resolved once; an unknown parent (never after validation) is never ready.
    let parents: Vec<Vec<Option<usize>>> = exp
        .steps
        .iter()
        .map(|s| {
            s.after
                .iter()
                .map(|a| exp.steps.iter().position(|x| x.id.value == a.value))
                .collect()
        })
        .collect();
    loop {
        let aborted = abort_rx.borrow().is_some();
        if !aborted {
            for &i in &plan.order {
                if set.len() >= opts.concurrency.max(1) {
                    break;
                }
                if started[i] {
                    continue;
                }
                let ready = parents[i].iter().all(|p| {
                    p.is_some_and(|p| {
                        results[p].as_ref().is_some_and(|r| {
                            r.outcome == StepOutcome::Succeeded
                                || exp.steps[p].on_failure == OnFailure::Continue
                        })
                    })
                });
                if ready {
                    started[i] = true;
                    let sh2 = sh.clone();
                    let mut rx = abort_rx.clone();
                    set.spawn(async move {
                        let t0 = sh2.clock.elapsed();
                        let r = tokio::select! {
                            r = sh2.clone().run_step(i) => r,
                            _ = wait_abort(&mut rx) => StepResult { duration_ms: (sh2.clock.elapsed() - t0).as_millis() as u64, attempts: 1, ..StepResult::not_run(StepOutcome::Cancelled, Some("cancelled by abort".into())) },
                        };
                        (i, r)
                    });
                }
            }
        }
        if set.is_empty() {
            break;
        }
        tokio::select! {
            joined = set.join_next() => {
                let Some(joined) = joined else { break };
                let (i, r) = match joined {
                    Ok(x) => x,
                    Err(e) => {
                        sh.abort(format!("a step task panicked: {e}"));
                        continue;
                    }
                };
                let step = &exp.steps[i];
                sh.emit(Event::StepFinished { step: step.id.value.clone(), outcome: r.outcome, attempts: r.attempts, duration_ms: r.duration_ms, output: r.output.clone(), error: r.error.clone(), error_kind: r.error_kind });
                let is_fault = exp.recovery.as_ref().is_some_and(|rc| rc.fault.value == step.id.value);
                match r.outcome {
                    StepOutcome::Succeeded if is_fault => recovery = Some(tokio::spawn(recovery_monitor(sh.clone()))),
                    StepOutcome::Failed | StepOutcome::TimedOut => {
                        if step.on_failure == OnFailure::Abort {
                            sh.abort(format!("step `{}` failed: {}", step.id.value, r.error.clone().unwrap_or_default()));
                        } else {
                            continued_failures.push(step.id.value.clone());
                        }
                    }
                    _ => {}
                }
                results[i] = Some(r);
            }
            changed = interrupts.changed(), if interrupts_open => {
                if changed.is_err() {
                    interrupts_open = false;
                    continue;
                }
                let count = *interrupts.borrow_and_update();
                if count >= 2 {
                    sh.emit(Event::Interrupted { signal: "interrupt".into(), count: 2 });
                    hard_stop = true;
                    set.abort_all();
                    break;
                }
                if abort_rx.borrow().is_none() {
                    sh.emit(Event::Interrupted { signal: "interrupt".into(), count: 1 });
                    sh.abort("interrupted by the operator (Ctrl-C/SIGTERM); rolling back".into());
                }
            }
        }
    }
    // Steps that never ran.
    for i in 0..n {
        if results[i].is_none() {
            let outcome = if started[i] {
                StepOutcome::Cancelled
            } else {
                StepOutcome::Skipped
            };
            sh.emit(Event::StepFinished {
                step: exp.steps[i].id.value.clone(),
                outcome,
                attempts: 0,
                duration_ms: 0,
                output: Json::Null,
                error: None,
                error_kind: None,
            });
            results[i] = Some(StepResult::not_run(outcome, None));
        }
    }
    // Wait for the recovery measurement unless aborted.
    if let Some(h) = recovery {
        if abort_rx.borrow().is_none() && !hard_stop {
            tokio::select! {
                _ = h => {}
                _ = wait_abort(&mut abort_rx) => {}
                _ = wait_count(&mut interrupts, 1) => {
                    sh.emit(Event::Interrupted { signal: "interrupt".into(), count: 1 });
                    sh.abort("interrupted by the operator while waiting for recovery; rolling back".into());
                }
            }
        } else {
            h.abort();
        }
    }
    let _ = stop_tx.send(true);
    let _ = during.await;
    let aborted = abort_rx.borrow().is_some();

    // After.
    let mut after_met = None;
    if !aborted && !hard_stop {
        let after: Vec<String> = exp.after.iter().map(|p| p.value.clone()).collect();
        if !after.is_empty() {
            after_met = Some(sh.hypothesis(Phase::After, &after).await);
        }
    }

    // Data loss.
    let mut measurements = Vec::new();
    let mut reasons = Vec::new();
    let rec_state = std::mem::take(&mut *sh.recovery.lock().expect("poisoned"));
    if let Some(rec) = &exp.recovery
        && let Some(fault_at) = rec_state.fault_at
        && !hard_stop
    {
        let res_ms = rec.interval.as_millis() as u64;
        let deadline = rec.deadline_for(o);
        let rto = Measurement {
            name: "rto".into(),
            measured_ms: rec_state.recovered_after.map(|d| d.as_millis() as u64),
            objective_ms: Some(o.rto.as_millis() as u64),
            resolution_ms: res_ms,
            deadline_ms: rec_state
                .recovered_after
                .is_none()
                .then_some(deadline.as_millis() as u64),
            met: rec_state.recovered_after.is_some_and(|d| d <= o.rto),
            detail: match rec_state.recovered_after {
                Some(d) => format!(
                    "fault at +{}, all {} recovery probes passing from +{} ({} consecutive polls)",
                    crate::lang::duration::format(fault_at),
                    rec.probes.len(),
                    crate::lang::duration::format(fault_at + d),
                    rec.consecutive
                ),
                None if aborted => "not measured: the drill was aborted before recovery".into(),
                None => format!(
                    "not recovered within the {} deadline; still failing: {}",
                    crate::lang::duration::format(deadline),
                    rec_state.failing_at_deadline.join(", ")
                ),
            },
        };
        measurements.push(rto);
        if let Some(mttd) = o.mttd.or(rec.detection.as_ref().map(|_| Duration::ZERO)) {
            let objective = o.mttd.map(|_| mttd.as_millis() as u64);
            measurements.push(Measurement {
                name: "mttd".into(),
                measured_ms: rec_state.detected_after.map(|d| d.as_millis() as u64),
                objective_ms: objective,
                resolution_ms: res_ms,
                deadline_ms: rec_state
                    .detected_after
                    .is_none()
                    .then_some(deadline.as_millis() as u64),
                met: match (rec_state.detected_after, o.mttd) {
                    (Some(d), Some(obj)) => d <= obj,
                    (Some(_), None) => true,
                    (None, _) => false,
                },
                detail: match (&rec.detection, rec_state.detected_after) {
                    (Some(p), Some(d)) => format!(
                        "detection probe `{}` first passed {} after the fault",
                        p.value,
                        crate::lang::duration::format(d)
                    ),
                    (Some(p), None) => format!("detection probe `{}` never passed", p.value),
                    (None, _) => "no detection probe configured (`recovery.detection`)".into(),
                },
            });
        }
        if let Some(dl) = &rec.data_loss
            && !aborted
        {
            let newest = sh
                .surviving_write(&dl.probe.value, &dl.field, clock.at(fault_at))
                .await;
            let fault_wall = clock.at(fault_at);
            let loss = newest
                .as_ref()
                .map(|t| (fault_wall - *t).to_std().unwrap_or_default());
            sh.emit(Event::DataLossMeasured {
                probe: dl.probe.value.clone(),
                newest_write: newest,
                loss_ms: loss.map(|l| l.as_millis() as u64),
            });
            measurements.push(Measurement {
                name: "rpo".into(),
                measured_ms: loss.map(|l| l.as_millis() as u64),
                objective_ms: Some(o.rpo.as_millis() as u64),
                resolution_ms: 1000,
                deadline_ms: None,
                met: loss.is_some_and(|l| l <= o.rpo),
                detail: match (newest, loss) {
                    (Some(t), Some(l)) => format!(
                        "newest surviving write at +{}, fault at +{}: {} of writes lost",
                        crate::lang::duration::format(clock.offset_of(t)),
                        crate::lang::duration::format(fault_at),
                        crate::lang::duration::format(l)
                    ),
                    _ => format!(
                        "probe `{}` gave no timestamp at `{}`",
                        dl.probe.value, dl.field
                    ),
                },
            });
        }
    }

    // Rollbacks.
    let failed = aborted
        || hard_stop
        || !continued_failures.is_empty()
        || after_met == Some(false)
        || measurements.iter().any(|m| !m.met);
    let mut rollback_failed = false;
    let to_roll: Vec<usize> = plan
        .order
        .iter()
        .rev()
        .copied()
        .filter(|&i| started[i] && exp.steps[i].has_rollback())
        .collect();
    let run_rollbacks = !hard_stop
        && match opts.rollback {
            RollbackPolicy::Always => true,
            RollbackPolicy::OnFailure => failed,
            RollbackPolicy::Never => false,
        };
    if !to_roll.is_empty() {
        sh.emit(Event::PhaseStarted {
            phase: Phase::Rollback,
        });
    }
    // (step index, reason) of rollbacks that did not run.
    let mut owed: Vec<(usize, String)> = Vec::new();
    if hard_stop {
        owed.extend(
            to_roll
                .iter()
                .map(|&i| (i, "second interrupt: stopped at once".to_string())),
        );
    } else if !run_rollbacks {
        if opts.rollback == RollbackPolicy::Never {
            owed.extend(to_roll.iter().map(|&i| (i, "--rollback never".to_string())));
        }
    } else {
        for (k, &i) in to_roll.iter().enumerate() {
            let step = &exp.steps[i];
            let out = results[i]
                .as_ref()
                .map(|r| r.output.clone())
                .unwrap_or(Json::Null);
            let action_name = match &step.rollback {
                RollbackSpec::Action { action, .. } => action.clone(),
                _ => format!("revert {}", step.action.value),
            };
            sh.emit(Event::RollbackStarted {
                step: step.id.value.clone(),
                action: action_name,
            });
            let t0 = clock.elapsed();
            let fut = async {
                match &step.rollback {
                    RollbackSpec::Action { call, .. } => sh.action(&step.id.value, call).await,
                    _ => {
                        let r = sh.provider.revert(&step.call, &out).await;
                        sh.drain_env();
                        r
                    }
                }
            };
            let res = tokio::select! {
                r = fut => r,
                _ = wait_count(&mut interrupts, 2) => {
                    sh.emit(Event::Interrupted { signal: "interrupt".into(), count: 2 });
                    hard_stop = true;
                    owed.extend(to_roll[k..].iter().map(|&i| (i, "second interrupt: stopped at once".to_string())));
                    break;
                }
            };
            let ok = res.is_ok();
            rollback_failed |= !ok;
            sh.emit(Event::RollbackFinished {
                step: step.id.value.clone(),
                ok,
                duration_ms: (clock.elapsed() - t0).as_millis() as u64,
                error: res.as_ref().err().map(|e| format!("{e} ({})", e.kind)),
            });
        }
    }
    for (i, reason) in &owed {
        let step = &exp.steps[*i];
        // Owed by the operator's explicit choice (--rollback never) is journaled, not a failure.
        rollback_failed |= hard_stop;
        sh.emit(Event::RollbackOwed {
            step: step.id.value.clone(),
            action: step.action.value.clone(),
            reason: reason.clone(),
        });
    }

    // Verdict.
    let verdict = if rollback_failed {
        VerdictKind::RollbackFailed
    } else if aborted || hard_stop {
        VerdictKind::Aborted
    } else if failed {
        VerdictKind::Missed
    } else {
        VerdictKind::Pass
    };
    if let Some(reason) = abort_rx.borrow().clone() {
        reasons.push(format!("aborted: {reason}"));
    }
    for m in &measurements {
        if !m.met && !aborted {
            reasons.push(format!("{} missed: {}", m.name.to_uppercase(), m.detail));
        }
    }
    if after_met == Some(false) {
        reasons.push("steady state not met after the method".into());
    }
    for s in &continued_failures {
        reasons.push(format!("step `{s}` failed (on_failure: continue)"));
    }
    if rollback_failed {
        reasons.push(
            "a rollback failed or is still owed: the environment may still carry the fault".into(),
        );
    }
    finish(&sh, verdict, measurements, reasons)
}

impl Shared {
    /// The newest write that survived, as of the fault: the data-loss probe runs with `as_of` set
    /// to the fault time when its type takes it (a canary query `max(ts) where ts <= fault`).
    async fn surviving_write(
        &self,
        probe: &str,
        field: &str,
        fault: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let def = self.exp.probes.iter().find(|p| p.name.value == probe)?;
        let mut typed = def.call.clone();
        if let Probe::DbCluster(q) = &mut typed
            && q.as_of.is_none()
        {
            q.as_of = Some(fault);
        }
        let (_, _, _, raw) = self
            .probe_raw(probe, Phase::After, true, Some(&typed))
            .await;
        timestamp_at(&raw?, field)
    }
}

/// Read a timestamp (RFC 3339 string or epoch seconds) at `field` in a probe's output.
fn timestamp_at(out: &Json, field: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    match crate::lang::tolerance::select(out, Some(field)).ok()? {
        Json::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc)),
        Json::Number(n) => n
            .as_f64()
            .and_then(|secs| chrono::DateTime::from_timestamp_millis((secs * 1000.0) as i64)),
        _ => None,
    }
}

fn finish(
    sh: &Shared,
    verdict: VerdictKind,
    measurements: Vec<Measurement>,
    mut reasons: Vec<String>,
) -> Outcome {
    sh.drain_env();
    if verdict == VerdictKind::Pass && reasons.is_empty() {
        reasons.push("all objectives met".into());
    }
    let exit_code = crate::exit::for_verdict(verdict);
    sh.emit(Event::RunFinished {
        verdict,
        exit_code,
        measurements: measurements.clone(),
        reasons: reasons.clone(),
    });
    Outcome {
        verdict,
        exit_code,
        measurements,
        reasons,
    }
}
