//! The verdict: what the phases found, turned into a verdict, its reasons and the run's exit
//! code, journaled as `run_finished`.

use super::events::{Event, Measurement, VerdictKind};
use super::executor::{Outcome, Shared};

/// What the phases after the before-hypothesis found.
pub(super) struct Findings {
    /// The run was aborted (an abort condition, a failed step, an interrupt).
    pub(super) aborted: bool,
    /// A second interrupt stopped the run at once.
    pub(super) hard_stop: bool,
    /// Aborted, stopped, a step failed, the after-hypothesis or an objective was missed.
    pub(super) failed: bool,
    /// A rollback failed or is still owed after a second interrupt.
    pub(super) rollback_failed: bool,
    /// The after-hypothesis, when it ran.
    pub(super) after_met: Option<bool>,
    pub(super) measurements: Vec<Measurement>,
    /// Steps that failed with `on_failure: continue`.
    pub(super) continued_failures: Vec<String>,
}

/// The verdict and its reasons; `abort_reason` is the first abort's.
pub(super) fn conclude(sh: &Shared, f: Findings, abort_reason: Option<String>) -> Outcome {
    let Findings {
        aborted,
        hard_stop,
        failed,
        rollback_failed,
        after_met,
        measurements,
        continued_failures,
    } = f;
    let mut reasons = Vec::new();
    let verdict = if rollback_failed {
        VerdictKind::RollbackFailed
    } else if aborted || hard_stop {
        VerdictKind::Aborted
    } else if failed {
        VerdictKind::Missed
    } else {
        VerdictKind::Pass
    };
    if let Some(reason) = abort_reason {
        reasons.push(format!("aborted: {reason}"));
    }
    for m in &measurements {
        if m.no_impact && m.met && !aborted {
            reasons.push(format!(
                "RTO not measured: {} (set `recovery.expect_impact` to make this a deviation)",
                m.detail
            ));
        }
        if !m.met && !aborted {
            if m.no_impact {
                reasons.push(format!("deviation: {}", m.detail));
            } else {
                reasons.push(format!("{} missed: {}", m.name.to_uppercase(), m.detail));
            }
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
    finish(sh, verdict, measurements, reasons)
}

pub(super) fn finish(
    sh: &Shared,
    verdict: VerdictKind,
    measurements: Vec<Measurement>,
    mut reasons: Vec<String>,
) -> Outcome {
    sh.drain_env();
    if verdict == VerdictKind::Pass && !measurements.iter().any(|m| m.no_impact) {
        reasons.insert(0, "all objectives met".into());
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
