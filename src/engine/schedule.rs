//! The method phase: the step DAG scheduled with bounded concurrency, each step run with its
//! timeout and retries (only of retryable error kinds), the during-hypothesis monitor alongside
//! and, from the fault on, the recovery monitor.

use super::clock::RunClock;
use super::events::{Event, Phase, StepOutcome};
use super::executor::{Shared, wait_abort};
use super::monitor::{await_recovery, during_monitor, recovery_monitor};
use crate::backend::{Action, ErrorKind, ProviderError};
use crate::lang::plan::Plan;
use crate::lang::spec::{OnFailure, Step};
use serde_json::{Value as Json, json};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub(super) struct StepResult {
    pub(super) outcome: StepOutcome,
    pub(super) output: Json,
    pub(super) error: Option<String>,
    pub(super) error_kind: Option<ErrorKind>,
    pub(super) attempts: u32,
    pub(super) duration_ms: u64,
}

impl StepResult {
    pub(super) fn not_run(outcome: StepOutcome, error: Option<String>) -> StepResult {
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

impl Shared {
    /// Run one action (built-in, generic or provider).
    pub(super) async fn action(
        &self,
        step_id: &str,
        action: &Action,
    ) -> Result<Json, ProviderError> {
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
            Action::Http(h) => super::generic::http(h, true, self.emitter.redactor()).await,
            Action::Command(c) => super::generic::command(c, true, self.emitter.redactor()).await,
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
                with: (attempt == 1).then(|| step.with.json()),
                rollback: if attempt == 1 {
                    rollback_ref(step)
                } else {
                    None
                },
            });
            if is_fault && attempt == 1 {
                // Recovery is timed from the moment the fault starts: its impact may show
                // before the step returns (a kill that waits for the process to exit, a
                // failover call that blocks), and polling only from its end would miss it.
                self.recovery.lock().expect("poisoned").fault_at = Some(self.clock.elapsed());
                self.emit(Event::FaultInjected {
                    step: step.id.value.clone(),
                });
                let monitor = tokio::spawn(recovery_monitor(self.clone()));
                *self.recovery_task.lock().expect("poisoned") = Some(monitor);
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
        return match &*step.call {
            Action::Assert(_) | Action::WaitUntil(_) | Action::Wait(_) => true,
            Action::Http(h) => matches!(h.method.as_str(), "GET" | "HEAD"),
            _ => false,
        };
    }
    e.kind.is_retryable()
}

/// What the method phase leaves for the phases after it.
pub(super) struct MethodRun {
    /// Per step, in the experiment's order; every step has one once the method is over.
    pub(super) results: Vec<Option<StepResult>>,
    pub(super) started: Vec<bool>,
    /// A second interrupt: stop at once (set again if it comes during the rollbacks).
    pub(super) hard_stop: bool,
    /// Steps that failed with `on_failure: continue`.
    pub(super) continued_failures: Vec<String>,
}

/// The method phase: run the step DAG with the during-hypothesis monitor alongside, then wait for
/// the recovery measurement (unless aborted).
pub(super) async fn method(
    sh: &Arc<Shared>,
    plan: &Plan,
    concurrency: usize,
    abort_rx: &mut watch::Receiver<Option<String>>,
    interrupts: &mut watch::Receiver<u32>,
) -> MethodRun {
    sh.emit(Event::PhaseStarted {
        phase: Phase::Method,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let during = tokio::spawn(during_monitor(sh.clone(), stop_rx));
    let mut dag = Scheduler::new(sh, plan, concurrency);
    dag.run(abort_rx, interrupts).await;
    dag.finish_not_run();
    sh.method_done.send_replace(true);
    let run = dag.run;
    let recovery = sh.recovery_task.lock().expect("poisoned").take();
    await_recovery(sh, recovery, run.hard_stop, abort_rx, interrupts).await;
    let _ = stop_tx.send(true);
    let _ = during.await;
    run
}

/// The DAG scheduler's state while the method runs.
struct Scheduler<'a> {
    sh: &'a Arc<Shared>,
    plan: &'a Plan,
    concurrency: usize,
    /// Per step, its children (indices), resolved once.
    children: Vec<Vec<usize>>,
    /// Per step, how many parents have not yet finished in a way that lets it start (succeeded,
    /// or failed with `on_failure: continue`); an unknown parent (never after validation) never
    /// counts down, so its child never starts.
    waiting_on: Vec<usize>,
    /// Steps whose parents are all done, by their position in the plan order (the order they
    /// start in): scheduling costs O(log n) per step, not a scan of every step.
    ready: std::collections::BTreeSet<usize>,
    /// Position of each step in `plan.order`.
    rank: Vec<usize>,
    set: JoinSet<(usize, StepResult)>,
    interrupts_open: bool,
    run: MethodRun,
}

impl<'a> Scheduler<'a> {
    fn new(sh: &'a Arc<Shared>, plan: &'a Plan, concurrency: usize) -> Scheduler<'a> {
        let exp = &sh.exp;
        let n = exp.steps.len();
        let index = exp.step_index();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut waiting_on = vec![0usize; n];
        for (i, s) in exp.steps.iter().enumerate() {
            waiting_on[i] = s.after.len();
            for a in &s.after {
                if let Some(&p) = index.get(a.value.as_str()) {
                    children[p].push(i);
                }
            }
        }
        let mut rank = vec![usize::MAX; n];
        for (pos, &i) in plan.order.iter().enumerate() {
            rank[i] = pos;
        }
        let ready = plan
            .order
            .iter()
            .enumerate()
            .filter(|&(_, &i)| waiting_on[i] == 0)
            .map(|(pos, _)| pos)
            .collect();
        Scheduler {
            sh,
            plan,
            concurrency,
            children,
            waiting_on,
            ready,
            rank,
            set: JoinSet::new(),
            interrupts_open: true,
            run: MethodRun {
                results: (0..n).map(|_| None).collect(),
                started: vec![false; n],
                hard_stop: false,
                continued_failures: Vec::new(),
            },
        }
    }

    /// Start ready steps and take their results until every started step has finished, no more
    /// can start, or a second interrupt stops the run.
    async fn run(
        &mut self,
        abort_rx: &watch::Receiver<Option<String>>,
        interrupts: &mut watch::Receiver<u32>,
    ) {
        loop {
            let aborted = abort_rx.borrow().is_some();
            if !aborted {
                self.spawn_ready(abort_rx);
            }
            if self.set.is_empty() {
                break;
            }
            tokio::select! {
                joined = self.set.join_next() => {
                    let Some(joined) = joined else { break };
                    let (i, r) = match joined {
                        Ok(x) => x,
                        Err(e) => {
                            self.sh.abort(format!("a step task panicked: {e}"));
                            continue;
                        }
                    };
                    self.finished(i, r);
                }
                changed = interrupts.changed(), if self.interrupts_open => {
                    if changed.is_err() {
                        self.interrupts_open = false;
                        continue;
                    }
                    let count = *interrupts.borrow_and_update();
                    if self.interrupted(count, abort_rx) {
                        break;
                    }
                }
            }
        }
    }

    /// Start every step whose parents are done, in plan order, up to the concurrency bound.
    fn spawn_ready(&mut self, abort_rx: &watch::Receiver<Option<String>>) {
        let sh = self.sh;
        while self.set.len() < self.concurrency.max(1) {
            let Some(pos) = self.ready.pop_first() else {
                break;
            };
            let i = self.plan.order[pos];
            if self.run.started[i] {
                continue;
            }
            {
                self.run.started[i] = true;
                let sh2 = sh.clone();
                let mut rx = abort_rx.clone();
                self.set.spawn(async move {
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

    /// A step finished: journal it, start the recovery monitor after the fault, abort or note a
    /// failure as its `on_failure` says.
    fn finished(&mut self, i: usize, mut r: StepResult) {
        let (sh, exp) = (self.sh, &self.sh.exp);
        let step = &exp.steps[i];
        // Only a rollback reads the output later: a step without one gives it to the journal.
        let output = if step.has_rollback() {
            r.output.clone()
        } else {
            std::mem::take(&mut r.output)
        };
        sh.emit(Event::StepFinished {
            step: step.id.value.clone(),
            outcome: r.outcome,
            attempts: r.attempts,
            duration_ms: r.duration_ms,
            output,
            error: r.error.clone(),
            error_kind: r.error_kind,
        });
        let is_fault = exp
            .recovery
            .as_ref()
            .is_some_and(|rc| rc.fault.value == step.id.value);
        if is_fault && r.outcome != StepOutcome::Succeeded {
            // Nothing, or not all of the fault, was injected: there is no recovery to time.
            if let Some(m) = sh.recovery_task.lock().expect("poisoned").take() {
                m.abort();
            }
            // A cancelled fault step is an abort, which the RTO's detail says on its own.
            if matches!(r.outcome, StepOutcome::Failed | StepOutcome::TimedOut) {
                sh.recovery.lock().expect("poisoned").fault_failed = true;
            }
        }
        match r.outcome {
            StepOutcome::Failed | StepOutcome::TimedOut => {
                if step.on_failure == OnFailure::Abort {
                    sh.abort(format!(
                        "step `{}` failed: {}",
                        step.id.value,
                        r.error.clone().unwrap_or_default()
                    ));
                } else {
                    self.run.continued_failures.push(step.id.value.clone());
                }
            }
            _ => {}
        }
        // Its children may start once every parent let them.
        let lets_children_run =
            r.outcome == StepOutcome::Succeeded || step.on_failure == OnFailure::Continue;
        self.run.results[i] = Some(r);
        if lets_children_run {
            for k in 0..self.children[i].len() {
                let c = self.children[i][k];
                self.waiting_on[c] -= 1;
                if self.waiting_on[c] == 0 && !self.run.started[c] {
                    self.ready.insert(self.rank[c]);
                }
            }
        }
    }

    /// An interrupt during the method: the first aborts (rollbacks run), the second stops at
    /// once. True when scheduling stops.
    fn interrupted(&mut self, count: u32, abort_rx: &watch::Receiver<Option<String>>) -> bool {
        let sh = self.sh;
        if count >= 2 {
            sh.emit(Event::Interrupted {
                signal: "interrupt".into(),
                count: 2,
            });
            self.run.hard_stop = true;
            self.set.abort_all();
            return true;
        }
        if abort_rx.borrow().is_none() {
            sh.emit(Event::Interrupted {
                signal: "interrupt".into(),
                count: 1,
            });
            sh.abort("interrupted by the operator (Ctrl-C/SIGTERM); rolling back".into());
        }
        false
    }

    /// Journal the steps that never ran: cancelled if started, else skipped.
    fn finish_not_run(&mut self) {
        let (sh, exp) = (self.sh, &self.sh.exp);
        let n = exp.steps.len();
        let (results, started) = (&mut self.run.results, &self.run.started);
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
    }
}

/// How a step is undone, for the journal (so `firedrill recover` can undo it after a crash).
fn rollback_ref(step: &crate::lang::spec::Step) -> Option<super::events::RollbackRef> {
    use crate::lang::spec::RollbackSpec;
    if !step.has_rollback() {
        return None;
    }
    Some(match &step.rollback {
        RollbackSpec::Action { call, with } => super::events::RollbackRef::Action {
            action: call.name().to_string(),
            with: with.clone(),
        },
        _ => super::events::RollbackRef::Revert,
    })
}
