//! Evidence that stays fresh: each checklist control (a playbook's `controls:`) against the runs
//! of the drills that evidence it. A run counts when it passed, its journal verifies, it was not
//! a what-if (no `--set` overrides), it ran against the control's environment (if named) and it
//! measured and met the control's objectives; it counts until `max_age` after it started.
//!
//! Pure: the caller hands in the facts of each run (read from the runs directory) and the time.

use crate::engine::events::{Measurement, VerdictKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a control asks of the runs.
#[derive(Debug, Clone)]
pub struct ControlSpec {
    pub control: String,
    /// (drill name, experiment name) of each drill that must have a counting run.
    pub drills: Vec<(String, String)>,
    /// `rto`, `rpo`, `mttd`: measured (not "no impact") and met.
    pub objectives: Vec<String>,
    pub max_age: Duration,
    pub warn_before: Duration,
    pub environment: Option<String>,
}

/// One run, as evidence sees it (folded from its journal, not read from its summary).
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub run_id: String,
    pub experiment: String,
    pub environment: String,
    pub backend: String,
    pub started: DateTime<Utc>,
    /// `None`: the run did not finish.
    pub verdict: Option<VerdictKind>,
    pub measurements: Vec<Measurement>,
    pub what_if: bool,
    /// Why its journal does not verify, if it does not.
    pub broken: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    Fresh,
    Expiring,
    Stale,
    Failing,
    NeverRun,
}

impl Freshness {
    pub fn label(self) -> &'static str {
        match self {
            Freshness::Fresh => "fresh",
            Freshness::Expiring => "expiring",
            Freshness::Stale => "STALE",
            Freshness::Failing => "FAILING",
            Freshness::NeverRun => "NEVER RUN",
        }
    }

    /// Whether a launch gate should stop on it.
    pub fn blocks(self) -> bool {
        matches!(
            self,
            Freshness::Stale | Freshness::Failing | Freshness::NeverRun
        )
    }
}

/// A control's status, and each of its drills'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlStatus {
    pub control: String,
    pub status: Freshness,
    /// The oldest of the drills' newest counting runs: when the control was last evidenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidenced_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub max_age_ms: u64,
    pub drills: Vec<DrillEvidence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillEvidence {
    pub drill: String,
    pub experiment: String,
    pub status: Freshness,
    /// The newest run that counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Why the status is what it is, in a sentence.
    pub why: String,
}

/// Why a run does not count, if it does not.
fn disqualified(c: &ControlSpec, r: &RunFacts) -> Option<String> {
    if let Some(b) = &r.broken {
        return Some(format!("its journal does not verify ({b})"));
    }
    if r.what_if {
        return Some("it was a what-if run (environment overrides)".into());
    }
    if let Some(env) = &c.environment
        && &r.environment != env
    {
        return Some(format!("it ran against `{}`, not `{env}`", r.environment));
    }
    match r.verdict {
        None => return Some("it did not finish".into()),
        Some(VerdictKind::Pass) => {}
        Some(v) => {
            return Some(format!(
                "its verdict was {}",
                crate::report::summary::verdict_label(v)
            ));
        }
    }
    for o in &c.objectives {
        match r.measurements.iter().find(|m| &m.name == o) {
            Some(m) if m.met && m.measured_ms.is_some() => {}
            Some(m) if m.no_impact => {
                return Some(format!(
                    "its {} was not measured (the fault had no impact)",
                    o.to_uppercase()
                ));
            }
            Some(_) => return Some(format!("its {} was not met", o.to_uppercase())),
            None => return Some(format!("it did not measure {}", o.to_uppercase())),
        }
    }
    None
}

fn ms(d: chrono::Duration) -> u64 {
    d.num_milliseconds().max(0) as u64
}

/// Each control's status at `now`. `runs` may be in any order and hold other experiments' runs.
pub fn evaluate(
    controls: &[ControlSpec],
    runs: &[RunFacts],
    now: DateTime<Utc>,
) -> Vec<ControlStatus> {
    let mut sorted: Vec<&RunFacts> = runs.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.started));
    controls
        .iter()
        .map(|c| {
            let max_age = chrono::Duration::from_std(c.max_age).unwrap_or(chrono::Duration::MAX);
            let warn =
                chrono::Duration::from_std(c.warn_before).unwrap_or(chrono::Duration::zero());
            let drills: Vec<DrillEvidence> = c
                .drills
                .iter()
                .map(|(drill, experiment)| {
                    let mine: Vec<&&RunFacts> = sorted
                        .iter()
                        .filter(|r| &r.experiment == experiment && r.started <= now)
                        .collect();
                    let newest_counting = mine.iter().find(|r| disqualified(c, r).is_none());
                    // A finished run newer than the newest counting one that failed: the drill is
                    // failing now, whatever older evidence says (what-ifs, other environments and
                    // unverifiable journals are not the system failing).
                    let newer_failure = mine
                        .iter()
                        .take_while(|r| newest_counting.is_none_or(|n| r.started > n.started))
                        .find(|r| {
                            r.broken.is_none()
                                && !r.what_if
                                && c.environment.as_ref().is_none_or(|e| &r.environment == e)
                                && r.verdict.is_some_and(|v| v != VerdictKind::Pass)
                        });
                    let base = |status, run: Option<&RunFacts>, why: String| DrillEvidence {
                        drill: drill.clone(),
                        experiment: experiment.clone(),
                        status,
                        run_id: run.map(|r| r.run_id.clone()),
                        started: run.map(|r| r.started),
                        environment: run.map(|r| r.environment.clone()),
                        why,
                    };
                    if let Some(f) = newer_failure {
                        let why = format!(
                            "newest run {} ({}) {}",
                            f.run_id,
                            f.started.format("%Y-%m-%d %H:%M UTC"),
                            disqualified(c, f).unwrap_or_default()
                        );
                        return base(Freshness::Failing, Some(f), why);
                    }
                    match newest_counting {
                        Some(r) => {
                            let age = now - r.started;
                            let (status, why) = if age > max_age {
                                (
                                    Freshness::Stale,
                                    format!(
                                        "newest passing run is {} old, over the {} allowed",
                                        human(ms(age)),
                                        human(ms(max_age))
                                    ),
                                )
                            } else if age > max_age - warn {
                                (
                                    Freshness::Expiring,
                                    format!(
                                        "passed {} ago; stale in {}",
                                        human(ms(age)),
                                        human(ms(max_age - age))
                                    ),
                                )
                            } else {
                                (
                                    Freshness::Fresh,
                                    format!(
                                        "passed {} ago on `{}` ({})",
                                        human(ms(age)),
                                        r.environment,
                                        r.backend
                                    ),
                                )
                            };
                            base(status, Some(r), why)
                        }
                        None => match mine.first() {
                            Some(r) => base(
                                Freshness::NeverRun,
                                None,
                                format!(
                                    "no run counts: the newest ({}) does not because {}",
                                    r.run_id,
                                    disqualified(c, r).unwrap_or_default()
                                ),
                            ),
                            None => base(
                                Freshness::NeverRun,
                                None,
                                format!(
                                    "no run of experiment `{experiment}` in the runs directory"
                                ),
                            ),
                        },
                    }
                })
                .collect();
            let status = drills
                .iter()
                .map(|d| d.status)
                .max()
                .unwrap_or(Freshness::NeverRun);
            let evidenced_at = if drills
                .iter()
                .all(|d| d.started.is_some() && d.status != Freshness::Failing)
            {
                drills.iter().filter_map(|d| d.started).min()
            } else {
                None
            };
            ControlStatus {
                control: c.control.clone(),
                status,
                evidenced_at,
                age_ms: evidenced_at.map(|t| ms(now - t)),
                expires_at: evidenced_at.map(|t| t + max_age),
                max_age_ms: c.max_age.as_millis() as u64,
                drills,
            }
        })
        .collect()
}

fn human(ms: u64) -> String {
    // Ages read in whole units: days above two days, hours above two hours, else minutes.
    if ms >= 2 * 86_400_000 {
        // Whole days, with the hours when there are some (30d23h is not "30d, over 30d").
        match (ms % 86_400_000) / 3_600_000 {
            0 => format!("{}d", ms / 86_400_000),
            h => format!("{}d{h}h", ms / 86_400_000),
        }
    } else if ms >= 2 * 3_600_000 {
        format!("{}h", ms / 3_600_000)
    } else {
        crate::lang::duration::format(Duration::from_secs(ms / 60_000 * 60))
    }
}

/// The evidence table, as markdown.
pub fn render_markdown(statuses: &[ControlStatus]) -> String {
    use std::fmt::Write;
    let mut out =
        String::from("| Control | Status | Evidence | Age | Expires |\n|---|---|---|---|---|\n");
    for s in statuses {
        let evidence: Vec<String> = s
            .drills
            .iter()
            .map(|d| match &d.run_id {
                Some(id) => format!("{}: `{id}` ({})", d.drill, d.why),
                None => format!("{}: {}", d.drill, d.why),
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            s.control.replace('|', "\\|"),
            s.status.label(),
            evidence.join("<br>").replace('|', "\\|"),
            s.age_ms.map(human).unwrap_or_else(|| "-".into()),
            s.expires_at
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn control() -> ControlSpec {
        ControlSpec {
            control: "DR failover tested (RTO < 15 min verified)".into(),
            drills: vec![("region-failover".into(), "region-failover".into())],
            objectives: vec!["rto".into()],
            max_age: Duration::from_secs(30 * 86_400),
            warn_before: Duration::from_secs(6 * 86_400),
            environment: None,
        }
    }

    fn rto(ms: Option<u64>, met: bool) -> Measurement {
        Measurement {
            name: "rto".into(),
            measured_ms: ms,
            objective_ms: Some(900_000),
            resolution_ms: 10_000,
            deadline_ms: None,
            met,
            detail: String::new(),
            impact_ms: None,
            no_impact: ms.is_none(),
            canary: None,
        }
    }

    fn run(id: &str, day: u32, verdict: VerdictKind, m: Measurement) -> RunFacts {
        RunFacts {
            run_id: id.into(),
            experiment: "region-failover".into(),
            environment: "sim".into(),
            backend: "sim".into(),
            started: Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap(),
            verdict: Some(verdict),
            measurements: vec![m],
            what_if: false,
            broken: None,
        }
    }

    fn at(month: u32, day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, month, day, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_pass_is_fresh_then_expiring_then_stale() {
        let runs = [run("r1", 1, VerdictKind::Pass, rto(Some(160_000), true))];
        let st = |now| evaluate(&[control()], &runs, now)[0].status;
        assert_eq!(st(at(11, 10)), Freshness::Fresh);
        assert_eq!(st(at(11, 26)), Freshness::Expiring);
        assert_eq!(st(at(12, 1)), Freshness::Expiring);
        assert_eq!(st(at(12, 2)), Freshness::Stale);
        let s = &evaluate(&[control()], &runs, at(12, 2))[0];
        assert_eq!(s.evidenced_at, Some(at(11, 1)));
        assert_eq!(s.expires_at, Some(at(12, 1)));
        assert!(
            s.drills[0].why.contains("31d old, over the 30d allowed"),
            "{}",
            s.drills[0].why
        );
        assert!(s.status.blocks());
    }

    #[test]
    fn what_ifs_broken_journals_and_unmeasured_objectives_do_not_count_and_a_newer_failure_fails() {
        let mut what_if = run("r2", 5, VerdictKind::Pass, rto(Some(1000), true));
        what_if.what_if = true;
        let mut broken = run("r3", 6, VerdictKind::Pass, rto(Some(1000), true));
        broken.broken = Some("line 4 was changed".into());
        let no_impact = run("r4", 7, VerdictKind::Pass, rto(None, true));
        let s = &evaluate(
            &[control()],
            &[what_if.clone(), broken, no_impact],
            at(11, 8),
        )[0];
        assert_eq!(s.status, Freshness::NeverRun);
        assert!(
            s.drills[0].why.contains("not measured"),
            "{}",
            s.drills[0].why
        );
        let good = run("r1", 1, VerdictKind::Pass, rto(Some(1000), true));
        let s = &evaluate(&[control()], &[good.clone(), what_if], at(11, 8))[0];
        assert_eq!(s.status, Freshness::Fresh);
        assert_eq!(s.drills[0].run_id.as_deref(), Some("r1"));
        let missed = run("r9", 9, VerdictKind::Missed, rto(Some(2_000_000), false));
        let s = &evaluate(&[control()], &[good.clone(), missed], at(11, 10))[0];
        assert_eq!(s.status, Freshness::Failing);
        assert!(s.drills[0].why.contains("MISSED"), "{}", s.drills[0].why);
        assert_eq!(s.evidenced_at, None);
        // A run in the future of the evaluation time is not seen.
        let s = &evaluate(&[control()], &[good], at(10, 30))[0];
        assert_eq!(s.status, Freshness::NeverRun);
    }
}
