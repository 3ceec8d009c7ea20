//! The monitors that run alongside the method: the during-hypothesis monitor (deviations,
//! sustained-window and increase abort conditions) and, from the fault on, the recovery monitor
//! (RTO, MTTD).

use super::events::{Event, Phase};
use super::executor::{Shared, wait_abort, wait_count};
use crate::lang::spec::{AbortRule, ExpectImpact, Recovery};
use crate::lang::tolerance::{as_number, numbers};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The during-hypothesis monitor: probes at an interval, records deviations, aborts on sustained
/// breaches. Runs until `stop` fires.
pub(super) async fn during_monitor(sh: Arc<Shared>, mut stop: watch::Receiver<bool>) {
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
                // A list (`reduce: each`) breaches when any of its values does.
                let breached = match cond.rule {
                    AbortRule::Above(x) => numbers(&value).iter().any(|v| *v > x),
                    AbortRule::Below(x) => numbers(&value).iter().any(|v| *v < x),
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

/// The recovery monitor: from the moment the fault step starts, polls the recovery probes (and
/// the detection probe) every interval until recovered and detected, or until the deadline.
///
/// Recovery is impact-aware: a streak of passing polls counts only after a recovery probe was
/// seen failing, so a fault whose impact lags (a pod Terminating for its grace period, a load
/// balancer keeping old endpoints, a DNS cache) is not reported as recovered before it hurt. RTO
/// is then the start of the final passing streak after the last failure. When the probes never
/// fail within the impact window (`recovery.expect_impact: <duration>`, else until the method has
/// finished and `consecutive` more polls passed) the monitor records "no impact" and stops.
pub(super) async fn recovery_monitor(sh: Arc<Shared>) {
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
    let method_done = sh.method_done.subscribe();
    let probes: Vec<String> = rec.probes.iter().map(|p| p.value.clone()).collect();
    let mut passing_since: Vec<Option<Duration>> = vec![None; probes.len()];
    let mut impact: Option<Duration> = None;
    let mut polls = 0u32;
    let mut clean_after_method = 0u32;
    let mut streak_start: Option<Duration> = None;
    let mut streak_len = 0u32;
    let mut recovered = false;
    let mut detected = rec.detection.is_none();
    loop {
        let now = sh.clock.elapsed();
        let since_fault = now.saturating_sub(fault_at);
        if since_fault > deadline {
            if !recovered && impact.is_none() {
                no_impact(&sh, &rec, since_fault, polls);
            } else if !recovered {
                let mut st = sh.recovery.lock().expect("poisoned");
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
            let mut failing = Vec::new();
            for (i, p) in probes.iter().enumerate() {
                let (ok, _, _) = sh.probe(p, Phase::Method, false).await;
                if ok && passing_since[i].is_none() {
                    passing_since[i] = Some(since_fault);
                    if impact.is_some() {
                        sh.emit(Event::RecoveryProbePassing {
                            probe: p.clone(),
                            after_ms: since_fault.as_millis() as u64,
                        });
                    }
                } else if !ok {
                    passing_since[i] = None;
                    failing.push(p.clone());
                }
            }
            polls += 1;
            if !failing.is_empty() {
                streak_start = None;
                streak_len = 0;
                if impact.is_none() {
                    impact = Some(since_fault);
                    sh.recovery.lock().expect("poisoned").impact_after = Some(since_fault);
                    sh.emit(Event::ImpactObserved {
                        after_ms: since_fault.as_millis() as u64,
                        failing,
                    });
                }
            } else if impact.is_some() {
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
                // Before any impact: is the window for it over?
                if *method_done.borrow() {
                    clean_after_method += 1;
                }
                let over = match rec.expect_impact {
                    ExpectImpact::Within(w) => since_fault >= w,
                    ExpectImpact::No | ExpectImpact::Yes => {
                        clean_after_method >= rec.consecutive.max(1)
                    }
                };
                if over {
                    no_impact(&sh, &rec, since_fault, polls);
                    return;
                }
            }
        }
        if !detected && let Some(d) = &rec.detection {
            // A `prometheus.alert` detects with the alert's own firing moment since the fault;
            // any other probe with its first passing poll.
            let found = match sh.alert_fired_since(&d.value, fault_at).await {
                Some(alert) => Some(alert),
                None if !sh.detects_by_alert(&d.value) => {
                    let (ok, _, _) = sh.probe(&d.value, Phase::Method, false).await;
                    ok.then_some((since_fault, None))
                }
                None => None,
            };
            if let Some((after, alert)) = found {
                detected = true;
                let mut st = sh.recovery.lock().expect("poisoned");
                st.detected_after = Some(after);
                st.alert_detection = alert;
                drop(st);
                sh.emit(Event::Detected {
                    probe: d.value.clone(),
                    after_ms: after.as_millis() as u64,
                });
            }
        }
        if recovered && detected {
            return;
        }
        tokio::time::sleep(rec.interval).await;
    }
}

/// The recovery probes never failed: record it (measure reports "no impact observed").
fn no_impact(sh: &Shared, rec: &Recovery, window: Duration, polls: u32) {
    sh.recovery.lock().expect("poisoned").no_impact = Some((window, polls));
    sh.emit(Event::NoImpactObserved {
        window_ms: window.as_millis() as u64,
        polls,
        expected: rec.expect_impact.expected(),
    });
}

/// After the method: wait for the recovery measurement to finish, unless the run was aborted or
/// stopped (then it is cancelled); an interrupt while waiting aborts the run.
pub(super) async fn await_recovery(
    sh: &Shared,
    recovery: Option<JoinHandle<()>>,
    hard_stop: bool,
    abort_rx: &mut watch::Receiver<Option<String>>,
    interrupts: &mut watch::Receiver<u32>,
) {
    if let Some(h) = recovery {
        if abort_rx.borrow().is_none() && !hard_stop {
            tokio::select! {
                _ = h => {}
                _ = wait_abort(abort_rx) => {}
                _ = wait_count(interrupts, 1) => {
                    sh.emit(Event::Interrupted { signal: "interrupt".into(), count: 1 });
                    sh.abort("interrupted by the operator while waiting for recovery; rolling back".into());
                }
            }
        } else {
            h.abort();
        }
    }
}
