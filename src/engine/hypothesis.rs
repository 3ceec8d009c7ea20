//! The steady-state hypothesis phases: before the method (a gate: a run that is not steady
//! injects nothing) and after it.

use super::events::{Event, Phase, VerdictKind};
use super::executor::{Outcome, Shared, wait_count};
use super::verdict::finish;
use tokio::sync::watch;

impl Shared {
    pub(super) async fn hypothesis(&self, phase: Phase, probes: &[String]) -> bool {
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
}

/// The before-hypothesis gate: `Some(outcome)` when the run stops here (not steady, or
/// interrupted), `None` to go on to the method.
pub(super) async fn before(
    sh: &Shared,
    abort_rx: &watch::Receiver<Option<String>>,
    interrupts: &mut watch::Receiver<u32>,
) -> Option<Outcome> {
    let exp = &sh.exp;
    let before: Vec<String> = exp.before.iter().map(|p| p.value.clone()).collect();
    let steady = tokio::select! {
        met = sh.hypothesis(Phase::Before, &before) => met,
        _ = wait_count(interrupts, 1) => {
            sh.emit(Event::Interrupted { signal: "interrupt".into(), count: 1 });
            sh.abort("interrupted before the fault".into());
            false
        }
    };
    if steady {
        return None;
    }
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
    Some(finish(sh, verdict, Vec::new(), reasons))
}

/// The after-hypothesis, unless the run was aborted or stopped: `None` when it did not run (or
/// has no probes), else whether it was met.
pub(super) async fn after(sh: &Shared, aborted: bool, hard_stop: bool) -> Option<bool> {
    let exp = &sh.exp;
    let mut after_met = None;
    if !aborted && !hard_stop {
        let after: Vec<String> = exp.after.iter().map(|p| p.value.clone()).collect();
        if !after.is_empty() {
            after_met = Some(sh.hypothesis(Phase::After, &after).await);
        }
    }
    after_met
}
