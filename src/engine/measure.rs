//! The figures a run is judged by: RTO and MTTD from the recovery monitor's findings, and the
//! data-loss measurement (RPO) from the newest write that survived the fault.

use super::events::{Event, Measurement, Phase};
use super::executor::{AlertDetection, RecoveryState, Shared};
use crate::backend::Probe;
use crate::lang::spec::{DataLoss, ExpectImpact, Objectives, Recovery};
use serde_json::Value as Json;
use std::time::Duration;

/// Measure RTO, MTTD (when an objective or a detection probe is set) and RPO (when the recovery
/// has a data-loss probe and the run was not aborted), once the fault was injected and the run
/// not stopped.
pub(super) async fn measure(sh: &Shared, aborted: bool, hard_stop: bool) -> Vec<Measurement> {
    let exp = &sh.exp;
    let o = &exp.objectives;
    let mut measurements = Vec::new();
    let rec_state = std::mem::take(&mut *sh.recovery.lock().expect("poisoned"));
    if let Some(rec) = &exp.recovery
        && let Some(fault_at) = rec_state.fault_at
        && !hard_stop
    {
        measurements.push(rto(rec, o, &rec_state, fault_at, aborted));
        if let Some(mttd) = mttd(rec, o, &rec_state) {
            measurements.push(mttd);
        }
        if let Some(dl) = &rec.data_loss
            && !aborted
        {
            measurements.push(rpo(sh, dl, o, fault_at).await);
        }
    }
    measurements
}

/// RTO: from the fault's start to the start of the final passing streak of every recovery probe
/// after the last failing poll; "no impact" when the probes never failed.
fn rto(
    rec: &Recovery,
    o: &Objectives,
    rec_state: &RecoveryState,
    fault_at: Duration,
    aborted: bool,
) -> Measurement {
    let fmt = crate::lang::duration::format;
    let res_ms = rec.interval.as_millis() as u64;
    let deadline = rec.deadline_for(o);
    let impact_ms = rec_state.impact_after.map(|d| d.as_millis() as u64);
    let mut m = Measurement {
        name: "rto".into(),
        measured_ms: rec_state.recovered_after.map(|d| d.as_millis() as u64),
        objective_ms: Some(o.rto.as_millis() as u64),
        resolution_ms: res_ms,
        deadline_ms: None,
        met: rec_state.recovered_after.is_some_and(|d| d <= o.rto),
        detail: String::new(),
        impact_ms,
        no_impact: false,
        canary: None,
    };
    let impact = rec_state
        .impact_after
        .map(|i| format!(", impact first seen at +{}", fmt(fault_at + i)))
        .unwrap_or_default();
    m.detail = match (rec_state.recovered_after, rec_state.no_impact) {
        _ if rec_state.fault_failed => {
            "not measured: the fault step failed, so there was no injected fault to time".into()
        }
        (Some(d), _) => format!(
            "fault started at +{}{impact}, all {} recovery probes passing from +{} ({} consecutive polls after the last failure)",
            fmt(fault_at),
            rec.probes.len(),
            fmt(fault_at + d),
            rec.consecutive
        ),
        (None, Some((window, polls))) => {
            m.no_impact = true;
            m.met = !rec.expect_impact.expected();
            let expected = match rec.expect_impact {
                ExpectImpact::No => String::new(),
                ExpectImpact::Yes => {
                    "; `recovery.expect_impact` says the fault must show before the method ends"
                        .into()
                }
                ExpectImpact::Within(w) => format!(
                    "; `recovery.expect_impact` says the fault must show within {}",
                    fmt(w)
                ),
            };
            format!(
                "no impact observed: the recovery probes never failed ({polls} polls over the {} after the fault started), so there was nothing to recover from{expected}",
                fmt(window)
            )
        }
        (None, None) if aborted => "not measured: the drill was aborted before recovery".into(),
        (None, None) => {
            m.deadline_ms = Some(deadline.as_millis() as u64);
            format!(
                "not recovered within the {} deadline{impact}; still failing: {}",
                fmt(deadline),
                rec_state.failing_at_deadline.join(", ")
            )
        }
    };
    m
}

/// MTTD: from the fault to the detection probe's first pass (for a `prometheus.alert`, to the
/// alert's own firing moment); `None` without an objective or a detection probe.
fn mttd(rec: &Recovery, o: &Objectives, rec_state: &RecoveryState) -> Option<Measurement> {
    let fmt = crate::lang::duration::format;
    let deadline = rec.deadline_for(o);
    let mttd = o.mttd.or(rec.detection.as_ref().map(|_| Duration::ZERO))?;
    let objective = o.mttd.map(|_| mttd.as_millis() as u64);
    let alert = rec_state.alert_detection.as_ref();
    // An alert's firing moment is known to its rule group's evaluation interval; a poll's to
    // the poll interval.
    let res_ms = alert
        .and_then(|a| a.eval_interval_ms)
        .unwrap_or(rec.interval.as_millis() as u64);
    Some(Measurement {
        name: "mttd".into(),
        measured_ms: rec_state.detected_after.map(|d| d.as_millis() as u64),
        objective_ms: objective,
        resolution_ms: res_ms,
        deadline_ms: (rec_state.detected_after.is_none() && rec_state.no_impact.is_none())
            .then_some(deadline.as_millis() as u64),
        met: match (rec_state.detected_after, o.mttd) {
            (Some(d), Some(obj)) => d <= obj,
            (Some(_), None) => true,
            // Nothing to detect when the fault never showed (RTO says whether that is a
            // deviation).
            (None, _) => rec_state.no_impact.is_some(),
        },
        detail: match (&rec.detection, rec_state.detected_after) {
            (_, None) if rec_state.no_impact.is_some() => {
                "not measured: no impact observed, so there was nothing to detect".into()
            }
            (Some(_), Some(d)) if alert.is_some() => alert_detail(alert.expect("checked"), d),
            (Some(p), Some(d)) => format!(
                "detection probe `{}` first passed {} after the fault",
                p.value,
                fmt(d)
            ),
            (Some(p), None) => format!("detection probe `{}` never passed", p.value),
            (None, _) => "no detection probe configured (`recovery.detection`)".into(),
        },
        impact_ms: None,
        no_impact: false,
        canary: None,
    })
}

/// "alert `X` fired at <server time> (+Ns after the fault; skew ±...)".
fn alert_detail(a: &AlertDetection, after: Duration) -> String {
    let resolution = match a.eval_interval_ms {
        Some(ms) => format!(
            "resolution: the rule group's evaluation interval, {}",
            crate::lang::duration::format(Duration::from_millis(ms))
        ),
        None => "resolution: the poll interval".to_string(),
    };
    format!(
        "alert `{}` fired at {} ({} server time; +{} after the fault; server clock {:+}ms from firedrill's, skew ±{}ms; {resolution})",
        a.alertname,
        a.fired_at,
        a.source,
        crate::lang::duration::format(after),
        a.skew_ms,
        a.skew_uncertainty_ms
    )
}

impl Shared {
    /// Whether the detection probe `name` is a `prometheus.alert` (detected by its firing
    /// moment, not by a passing poll).
    pub(super) fn detects_by_alert(&self, name: &str) -> bool {
        self.exp
            .probes
            .iter()
            .any(|p| p.name.value == name && matches!(p.call, Probe::PrometheusAlert(_)))
    }

    /// For a `prometheus.alert` detection probe: the alert's first firing moment since the fault
    /// (read from the server, so an alert that fired and resolved between polls counts), as
    /// (time after the fault's start on firedrill's clock, the evidence). `None` when the probe
    /// is of another type, has not fired since, or cannot be read.
    pub(super) async fn alert_fired_since(
        &self,
        name: &str,
        fault_at: Duration,
    ) -> Option<(Duration, Option<AlertDetection>)> {
        let def = self.exp.probes.iter().find(|p| p.name.value == name)?;
        let Probe::PrometheusAlert(q) = &def.call else {
            return None;
        };
        let fault_wall = self.clock.at(fault_at);
        let mut typed = q.clone();
        typed.since = Some(fault_wall);
        let typed = Probe::PrometheusAlert(typed);
        let (_, _, _, raw) = self
            .probe_raw(name, Phase::Method, false, Some(&typed))
            .await;
        let out = raw?;
        let fired_text = out.get("fired_since")?.as_str()?.to_string();
        let fired = chrono::DateTime::parse_from_rfc3339(&fired_text)
            .ok()?
            .with_timezone(&chrono::Utc);
        let skew_ms = out.get("skew_ms").and_then(Json::as_i64).unwrap_or(0);
        // The firing moment on firedrill's clock.
        let local = fired - chrono::Duration::milliseconds(skew_ms);
        let after = (local - fault_wall).to_std().unwrap_or_default();
        Some((
            after,
            Some(AlertDetection {
                alertname: q.alertname.clone(),
                fired_at: fired_text,
                skew_ms,
                skew_uncertainty_ms: out
                    .get("skew_uncertainty_ms")
                    .and_then(Json::as_u64)
                    .unwrap_or(0),
                eval_interval_ms: out.get("eval_interval_ms").and_then(Json::as_u64),
                source: out
                    .get("source")
                    .and_then(Json::as_str)
                    .unwrap_or("prometheus")
                    .to_string(),
            }),
        ))
    }
}

/// RPO: the data-loss window between the newest surviving write and the fault.
async fn rpo(sh: &Shared, dl: &DataLoss, o: &Objectives, fault_at: Duration) -> Measurement {
    let (probe, field) = match dl {
        DataLoss::Probe { probe, field } => (probe, field),
        DataLoss::Canary { canary, .. } => return canary_rpo(sh, canary, o, fault_at).await,
    };
    let clock = sh.clock;
    let newest = sh
        .surviving_write(&probe.value, field, clock.at(fault_at))
        .await;
    let fault_wall = clock.at(fault_at);
    let loss = newest
        .as_ref()
        .map(|t| (fault_wall - *t).to_std().unwrap_or_default());
    sh.emit(Event::DataLossMeasured {
        probe: probe.value.clone(),
        newest_write: newest,
        loss_ms: loss.map(|l| l.as_millis() as u64),
    });
    Measurement {
        name: "rpo".into(),
        measured_ms: loss.map(|l| l.as_millis() as u64),
        objective_ms: Some(o.rpo.as_millis() as u64),
        resolution_ms: 1000,
        deadline_ms: None,
        met: loss.is_some_and(|l| l <= o.rpo),
        detail: match (newest, loss) {
            (Some(t), Some(l)) => {
                let at = (t - clock.start_wall).num_milliseconds();
                format!(
                    "newest surviving write at {}{}, fault at +{}: {} of writes lost",
                    crate::lang::duration::format_offset(at),
                    if at < 0 {
                        " (before the run started)"
                    } else {
                        ""
                    },
                    crate::lang::duration::format(fault_at),
                    crate::lang::duration::format(l)
                )
            }
            _ => format!("probe `{}` gave no timestamp at `{field}`", probe.value),
        },
        impact_ms: None,
        no_impact: false,
        canary: None,
    }
}

/// RPO by the data-loss canary: stop the writer, read the survivors, compare.
async fn canary_rpo(
    sh: &Shared,
    spec: &crate::lang::postgres::PgCanary,
    o: &Objectives,
    fault_at: Duration,
) -> Measurement {
    let fmt = crate::lang::duration::format;
    let ms = |m: u64| fmt(Duration::from_millis(m));
    let result = super::canary::measure(sh, fault_at)
        .await
        .unwrap_or_else(|| {
            Err("the canary never started (the run stopped before the method)".into())
        });
    let mut m = Measurement {
        name: "rpo".into(),
        measured_ms: None,
        objective_ms: Some(o.rpo.as_millis() as u64),
        resolution_ms: spec.interval.as_millis() as u64,
        deadline_ms: None,
        met: false,
        detail: String::new(),
        impact_ms: None,
        no_impact: false,
        canary: None,
    };
    let probe = format!("canary {}", spec.write.server());
    match result {
        Err(e) => {
            m.detail = format!("not measured: {e}");
            sh.emit(Event::DataLossMeasured {
                probe,
                newest_write: None,
                loss_ms: None,
            });
        }
        Ok(f) => {
            m.measured_ms = f.rpo_ms;
            m.met = f.rpo_ms.is_some_and(|r| r <= o.rpo.as_millis() as u64);
            let newest = match (f.newest_surviving_seq, f.newest_surviving_at, f.rpo_ms) {
                (Some(seq), Some(at), Some(rpo)) => format!(
                    "newest surviving acknowledged canary #{seq} committed at +{}, fault at +{}: {} of writes lost",
                    fmt(sh.clock.offset_of(at)),
                    fmt(fault_at),
                    ms(rpo)
                ),
                _ => format!(
                    "no acknowledged canary written before the fault (+{}) survived on {}",
                    fmt(fault_at),
                    f.read_server
                ),
            };
            let lost = if f.lost_acknowledged == 0 {
                "no acknowledged write lost".to_string()
            } else {
                format!(
                    "{} acknowledged lost (#{})",
                    f.lost_acknowledged, f.lost_ranges
                )
            };
            let outage = match (f.outage_from_ms, f.outage_ms, f.outage_ended) {
                (Some(from), Some(d), true) => {
                    format!("; write outage from +{} for {}", ms(from), ms(d))
                }
                (Some(from), Some(d), false) => format!(
                    "; writes failing from +{} until the canary stopped ({})",
                    ms(from),
                    ms(d)
                ),
                _ => "; no write failed".into(),
            };
            m.detail = format!(
                "{newest}; {} acknowledged, {} failed, {lost}{outage}; server clock {} firedrill's by {} ms (round trip {} ms)",
                f.acknowledged,
                f.failed,
                if f.skew_ms >= 0 { "ahead of" } else { "behind" },
                f.skew_ms.abs(),
                f.skew_rtt_ms
            );
            sh.emit(Event::DataLossMeasured {
                probe,
                newest_write: f.newest_surviving_at,
                loss_ms: f.rpo_ms,
            });
            m.canary = Some(f);
        }
    }
    m
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
