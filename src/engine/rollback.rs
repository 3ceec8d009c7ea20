//! The rollback phase: every started step with a rollback, in reverse dependency order, as the
//! rollback policy says; a rollback that cannot run is journaled as owed.

use super::events::{Event, Phase};
use super::executor::{RollbackPolicy, Shared, wait_count};
use super::schedule::MethodRun;
use crate::lang::plan::Plan;
use crate::lang::spec::RollbackSpec;
use serde_json::Value as Json;
use tokio::sync::watch;

/// Roll back (or journal as owed) the started steps that have a rollback. `failed`: whether the
/// run failed so far (for `RollbackPolicy::OnFailure`). True when a rollback failed or is owed
/// after a second interrupt; a second interrupt here sets `run.hard_stop`.
pub(super) async fn roll_back(
    sh: &Shared,
    plan: &Plan,
    policy: RollbackPolicy,
    failed: bool,
    run: &mut MethodRun,
    interrupts: &mut watch::Receiver<u32>,
) -> bool {
    let exp = &sh.exp;
    let mut rollback_failed = false;
    let to_roll: Vec<usize> = plan
        .order
        .iter()
        .rev()
        .copied()
        .filter(|&i| run.started[i] && exp.steps[i].has_rollback())
        .collect();
    let run_rollbacks = !run.hard_stop
        && match policy {
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
    if run.hard_stop {
        owed.extend(
            to_roll
                .iter()
                .map(|&i| (i, "second interrupt: stopped at once".to_string())),
        );
    } else if !run_rollbacks {
        if policy == RollbackPolicy::Never {
            owed.extend(to_roll.iter().map(|&i| (i, "--rollback never".to_string())));
        }
    } else {
        rollback_failed |= run_each(sh, &to_roll, run, interrupts, &mut owed).await;
    }
    for (i, reason) in &owed {
        let step = &exp.steps[*i];
        // Owed by the operator's explicit choice (--rollback never) is journaled, not a failure.
        rollback_failed |= run.hard_stop;
        sh.emit(Event::RollbackOwed {
            step: step.id.value.clone(),
            action: step.action.value.clone(),
            reason: reason.clone(),
        });
    }
    rollback_failed
}

/// Run the rollbacks of `to_roll` in order; a second interrupt stops at once and owes the rest.
/// True when one failed.
async fn run_each(
    sh: &Shared,
    to_roll: &[usize],
    run: &mut MethodRun,
    interrupts: &mut watch::Receiver<u32>,
    owed: &mut Vec<(usize, String)>,
) -> bool {
    let (exp, clock) = (&sh.exp, sh.clock);
    let mut rollback_failed = false;
    for (k, &i) in to_roll.iter().enumerate() {
        let step = &exp.steps[i];
        let out = run.results[i]
            .as_ref()
            .map(|r| r.output.clone())
            .unwrap_or(Json::Null);
        let action_name = match &step.rollback {
            RollbackSpec::Action { call, .. } => call.name().to_string(),
            _ => format!("revert {}", step.action.value),
        };
        sh.emit(Event::RollbackStarted {
            step: step.id.value.clone(),
            action: action_name,
            recovered: false,
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
            _ = wait_count(interrupts, 2) => {
                sh.emit(Event::Interrupted { signal: "interrupt".into(), count: 2 });
                run.hard_stop = true;
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
    rollback_failed
}
