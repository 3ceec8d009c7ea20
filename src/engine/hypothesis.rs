//! The steady-state hypothesis phases: before the method (a gate: a run that is not steady
//! injects nothing) and after it.

use super::events::{Event, Phase, VerdictKind};
use super::executor::{Outcome, Shared, wait_count};
use super::verdict::finish;
use tokio::sync::watch;

impl Shared {
    pub(super) async fn hypothesis(&self, phase: Phase, probes: &[String]) -> bool {
        self.hypothesis_checked(phase, probes).await.0
    }

    /// The hypothesis and, before the fault, the detection alert's check: (met, the reasons
    /// beyond the failing probes' names).
    async fn hypothesis_checked(&self, phase: Phase, probes: &[String]) -> (bool, Vec<String>) {
        self.emit(Event::PhaseStarted { phase });
        let mut failed = Vec::new();
        let mut reasons = Vec::new();
        for p in probes {
            let (ok, _, _) = self.probe(p, phase, true).await;
            if !ok {
                failed.push(p.clone());
            }
        }
        if phase == Phase::Before
            && let Some((probe, reason)) = self.detection_alert_active().await
        {
            if !failed.contains(&probe) {
                failed.push(probe);
            }
            reasons.push(reason);
        }
        let met = failed.is_empty();
        self.emit(Event::HypothesisResult { phase, met, failed });
        (met, reasons)
    }

    /// When the detection probe is a `prometheus.alert`: the alert must be inactive before the
    /// fault, or its firing would be no detection of it (MTTD would be meaningless). `Some((probe,
    /// reason))` when it is pending or firing, or cannot be read.
    async fn detection_alert_active(&self) -> Option<(String, String)> {
        let name = self
            .exp
            .recovery
            .as_ref()?
            .detection
            .as_ref()?
            .value
            .clone();
        let def = self.exp.probes.iter().find(|p| p.name.value == name)?;
        let crate::backend::Probe::PrometheusAlert(q) = &def.call else {
            return None;
        };
        let (_, _, message, raw) = self.probe_raw(&name, Phase::Before, false, None).await;
        let (reason, value) = match raw {
            Some(out) => {
                let state = out.get("state").cloned().unwrap_or_default();
                match state.as_str() {
                    Some(s @ ("firing" | "pending")) => (
                        format!(
                            "alert `{}` (detection probe `{name}`) is already {s} before the fault: its firing would not detect the fault; resolve it (or wait until it is inactive) first",
                            q.alertname
                        ),
                        state,
                    ),
                    _ => return None,
                }
            }
            None => (
                format!(
                    "detection probe `{name}` (alert `{}`) cannot be read before the fault: {message}",
                    q.alertname
                ),
                serde_json::Value::Null,
            ),
        };
        self.emit(Event::ProbeChecked {
            phase: Phase::Before,
            probe: name.clone(),
            ok: false,
            value,
            message: reason.clone(),
        });
        Some((name, reason))
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
    let (steady, alert_reasons) = tokio::select! {
        checked = sh.hypothesis_checked(Phase::Before, &before) => checked,
        _ = wait_count(interrupts, 1) => {
            sh.emit(Event::Interrupted { signal: "interrupt".into(), count: 1 });
            sh.abort("interrupted before the fault".into());
            (false, Vec::new())
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
    reasons.extend(alert_reasons);
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
