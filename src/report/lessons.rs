//! The structured lessons-learned record of a run, in the post-mortem shape, pre-filled from the
//! measurements. Saved as JSON under `<dir>/<experiment>/<run-id>.json`; people complete the
//! `TODO` markers and close action items by editing `status`. The markdown report's lessons
//! section is rendered from this record (see `markdown.rs`), so the two never disagree.

use crate::lang::duration::format_ms as human;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::engine::events::{Measurement, Phase, StepOutcome, VerdictKind};
use crate::lang::duration::{format, format_signed};
use crate::report::journal::slug;
use crate::report::summary::RunSummary;

/// Default directory of lessons records, relative to the working directory.
pub const DEFAULT_LESSONS_DIR: &str = ".firedrill/lessons";
/// Days between the drill and the due date of its action items.
pub const ACTION_ITEM_DAYS: u64 = 14;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LessonsRecord {
    pub run_id: String,
    pub experiment: String,
    /// The run changed its environment (`--set`): its action items answer "what if?" and are
    /// not listed as the experiment's open items.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub what_if: bool,
    pub title: String,
    pub owner: Option<String>,
    /// Day of the drill (UTC).
    pub date: Option<NaiveDate>,
    #[serde(with = "crate::lang::duration::serde_human")]
    pub duration: Duration,
    pub severity: String,
    pub impact: String,
    /// `None`: the run did not finish.
    pub verdict: Option<VerdictKind>,
    pub measurements: Vec<Measurement>,
    pub timeline: Vec<TimelineEntry>,
    pub root_cause: String,
    pub resolution: String,
    pub action_items: Vec<ActionItem>,
    pub went_well: Vec<String>,
    pub to_improve: Vec<String>,
    pub prevention: Vec<String>,
}

/// A key moment of the run, at a run-clock offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at_ms: u64,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionItem {
    /// `<run-id>#<n>`.
    pub id: String,
    pub title: String,
    pub owner: String,
    pub due: Option<NaiveDate>,
    pub status: ActionStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    Open,
    Done,
    Wontfix,
}

/// An action item still open from an earlier drill.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenActionItem {
    pub run_id: String,
    pub item: ActionItem,
}

#[derive(Debug, thiserror::Error)]
pub enum LessonsError {
    #[error("cannot create lessons directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("lessons record {} already exists (people may have edited it); delete it to regenerate", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("cannot serialize lessons record {}", path.display())]
    Serialize {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write lessons record {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot list lessons directory {}", path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read lessons record {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a valid lessons record: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The marker of what people must complete (visible in the rendered page, and greppable).
pub const TODO_MARK: &str = "TO COMPLETE ";

/// Whether a line is a placeholder for people to complete.
pub fn is_todo(s: &str) -> bool {
    s.contains(TODO_MARK)
}

/// A marker for what people must complete; rendered verbatim (an HTML comment) in markdown.
pub fn todo(owner: &str, what: &str) -> String {
    format!("**{TODO_MARK}({owner}):** _{what}_")
}

/// `+4m10s`: a run-clock offset.
pub fn offset(ms: u64) -> String {
    format!("+{}", format(Duration::from_millis(ms)))
}

fn upper(name: &str) -> String {
    name.to_uppercase()
}

impl LessonsRecord {
    /// Pre-fill the record from a run's summary. Pure.
    pub fn from_summary(s: &RunSummary) -> LessonsRecord {
        let owner_name = s.owner.clone().unwrap_or_else(|| "owner".to_string());
        let date = s.finished.or(s.started).map(|t| t.date_naive());
        let verdict = s.verdict.as_ref().map(|v| v.kind);
        let mut rec = LessonsRecord {
            run_id: s.run_id.clone(),
            experiment: s.experiment.clone(),
            what_if: s.is_what_if(),
            title: s.display_title().to_string(),
            owner: s.owner.clone(),
            date,
            duration: Duration::from_millis(s.duration_ms),
            severity: severity(s),
            impact: impact(s).unwrap_or_else(|| {
                todo(
                    &owner_name,
                    "describe the impact: no availability or error-rate probe was measured",
                )
            }),
            verdict,
            measurements: s.measurements.clone(),
            timeline: timeline(s),
            root_cause: root_cause(s, &owner_name),
            resolution: resolution(s, &owner_name),
            action_items: Vec::new(),
            went_well: went_well(s),
            to_improve: Vec::new(),
            prevention: vec![todo(
                &owner_name,
                "what change prevents this class of failure (design, automation, alerting)?",
            )],
        };
        let due = date.and_then(|d| d.checked_add_days(Days::new(ACTION_ITEM_DAYS)));
        let item_owner = s.owner.clone().unwrap_or_else(|| "TODO".to_string());
        for (i, title) in findings(s).into_iter().enumerate() {
            rec.to_improve.push(title.clone());
            rec.action_items.push(ActionItem {
                id: format!("{}#{}", s.run_id, i + 1),
                title,
                owner: item_owner.clone(),
                due,
                status: ActionStatus::Open,
            });
        }
        rec.went_well.push(todo(
            &owner_name,
            "what else went well (people, runbooks, tooling)?",
        ));
        rec.to_improve
            .push(todo(&owner_name, "what else should improve?"));
        if !rec.action_items.is_empty() {
            rec.prevention.push(format!(
                "Re-run `{}` once the action items are closed to verify the fixes.",
                s.experiment
            ));
        }
        rec
    }
}

fn severity(s: &RunSummary) -> String {
    let Some(v) = &s.verdict else {
        return "unknown (the run did not finish)".to_string();
    };
    let missed: Vec<String> = s
        .measurements
        .iter()
        .filter(|m| !m.met)
        .map(|m| upper(&m.name))
        .collect();
    match v.kind {
        VerdictKind::Pass => "low (every objective met)".to_string(),
        VerdictKind::NotSteady => "low (not steady before the fault; nothing injected)".to_string(),
        VerdictKind::Missed if missed.iter().any(|m| m == "RTO" || m == "RPO") => {
            format!("high ({} missed)", missed.join(", "))
        }
        VerdictKind::Missed if !missed.is_empty() => {
            format!("medium ({} missed)", missed.join(", "))
        }
        VerdictKind::Missed => "medium (after-check or step failed)".to_string(),
        VerdictKind::Aborted => "high (drill aborted)".to_string(),
        VerdictKind::RollbackFailed => {
            "critical (rollback failed; the environment may not be back to normal)".to_string()
        }
    }
}

fn is_impact_probe(name: &str) -> bool {
    let n = name.to_lowercase();
    ["avail", "error", "success", "5xx"]
        .iter()
        .any(|k| n.contains(k))
}

/// Impact from availability / error-rate probes checked during the method, and data loss.
fn impact(s: &RunSummary) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(during) = s.phase(Phase::Method) {
        for c in during.probes.iter().filter(|c| is_impact_probe(&c.name)) {
            let num = crate::lang::tolerance::number;
            let range = match (c.min, c.max) {
                (Some(lo), Some(hi)) if lo == hi => {
                    format!(" measured {} in every check;", num(lo))
                }
                (Some(lo), Some(hi)) => format!(" measured between {} and {};", num(lo), num(hi)),
                _ => String::new(),
            };
            let out = match (&c.first_failure, &c.last_failure) {
                (Some(_), Some(_)) if c.failed == c.checks => {
                    format!("every one of its {} checks out of tolerance", c.checks)
                }
                (Some(first), Some(last)) => format!(
                    "{} of {} checks out of tolerance, from {} to {}",
                    c.failed,
                    c.checks,
                    offset(first.at_ms),
                    offset(last.at_ms)
                ),
                _ => format!("all {} checks within tolerance", c.checks),
            };
            parts.push(format!("`{}`{range} {out}.", c.name));
        }
    }
    for d in &s.data_loss {
        match d.loss_ms {
            Some(l) => parts.push(format!(
                "Data loss measured by `{}`: {} of writes.",
                d.probe,
                human(l)
            )),
            None => parts.push(format!("Data loss by `{}` could not be measured.", d.probe)),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(" "))
    }
}

fn timeline(s: &RunSummary) -> Vec<TimelineEntry> {
    let mut t = Vec::new();
    let mut push = |at_ms: u64, what: String| t.push(TimelineEntry { at_ms, what });
    push(0, "Drill started".to_string());
    if let Some(h) = s.phase(Phase::Before).and_then(|p| p.hypothesis.as_ref())
        && !h.met
    {
        push(
            h.at_ms,
            format!(
                "Not steady before the fault: {} failed",
                code_list(&h.failed)
            ),
        );
    }
    if let (Some(step), Some(at)) = (&s.fault_step, s.fault_at_ms) {
        push(at, format!("Fault injected by step `{step}`"));
    }
    if let Some(d) = &s.detection {
        push(
            d.at_ms,
            format!(
                "Detected by `{}` ({} after the fault)",
                d.probe,
                human(d.after_ms)
            ),
        );
    }
    for p in &s.recovery_probes {
        push(p.at_ms, format!("Recovery probe `{}` passing", p.probe));
    }
    if let Some(r) = &s.recovered {
        push(
            r.at_ms,
            format!("Recovered ({} after the fault)", human(r.after_ms)),
        );
    }
    if let Some(d) = &s.deadline_exceeded {
        push(
            d.at_ms,
            format!(
                "Recovery deadline {} exceeded; still failing: {}",
                human(d.deadline_ms),
                code_list(&d.failing)
            ),
        );
    }
    for a in &s.aborts {
        push(a.at_ms, format!("Abort: {}", a.reason));
    }
    for i in &s.interrupts {
        push(
            i.at_ms,
            format!("Interrupted by {} (#{})", i.signal, i.count),
        );
    }
    for r in &s.rollbacks {
        let what = match r.ok {
            Some(true) => format!("Rollback of `{}` succeeded", r.step),
            Some(false) => format!(
                "Rollback of `{}` FAILED: {}",
                r.step,
                r.error.as_deref().unwrap_or("no error given")
            ),
            None => format!("Rollback of `{}` started, never finished", r.step),
        };
        push(r.started_at_ms + r.duration_ms.unwrap_or(0), what);
    }
    for o in &s.owed_rollbacks {
        push(
            o.at_ms,
            format!("Rollback of `{}` owed: {}", o.step, o.reason),
        );
    }
    match &s.verdict {
        Some(v) => push(
            s.duration_ms,
            format!(
                "Drill finished: {}",
                crate::report::summary::verdict_label(v.kind)
            ),
        ),
        None => push(
            s.duration_ms,
            "Journal ends: the run did not finish (the process died)".to_string(),
        ),
    }
    t.sort_by_key(|e| e.at_ms);
    t
}

fn code_list(items: &[String]) -> String {
    if items.is_empty() {
        return "(none named)".to_string();
    }
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a measurement compares to its objective, for prose: "9m10s against 5m (exceeded by 4m10s)".
fn measured_vs_objective(m: &Measurement) -> String {
    match (m.measured_ms, m.objective_ms) {
        (None, _) if m.no_impact => "not measured: no impact observed".to_string(),
        (Some(v), Some(o)) if v > o => format!(
            "{} against {} (exceeded by {})",
            human(v),
            human(o),
            format_signed(v as i64 - o as i64)
        ),
        (Some(v), Some(o)) => format!("{} against {}", human(v), human(o)),
        (Some(v), None) => human(v),
        (None, o) => {
            let deadline = m
                .deadline_ms
                .map(|d| format!("> {} (deadline)", human(d)))
                .unwrap_or_else(|| "never reached".to_string());
            match o {
                Some(o) => format!("{deadline} against {}", human(o)),
                None => deadline,
            }
        }
    }
}

/// The environment events inside the recovery window, and the longest gap between consecutive
/// ones (the dominant contributor).
fn recovery_window_analysis(s: &RunSummary) -> Option<String> {
    let start = s.fault_at_ms?;
    let recovered = s.recovered.is_some();
    let end = s
        .recovered
        .as_ref()
        .map(|r| r.at_ms)
        .or_else(|| s.deadline_exceeded.as_ref().map(|d| d.at_ms))
        .or_else(|| s.last_recovering_probe().map(|p| p.at_ms))
        .unwrap_or(s.duration_ms);
    let mut events: Vec<_> = s
        .environment_events
        .iter()
        .filter(|e| e.at_ms >= start && e.at_ms <= end)
        .collect();
    events.sort_by_key(|e| e.at_ms);
    if events.is_empty() {
        return Some(format!(
            "The environment reported no events between the fault ({}) and {}.",
            offset(start),
            offset(end)
        ));
    }
    // Keep the narrative short: the first event and the last few before the window's end.
    const SHOWN: usize = 6;
    let shown: Vec<_> = if events.len() > SHOWN {
        std::iter::once(events[0])
            .chain(events[events.len() - (SHOWN - 1)..].iter().copied())
            .collect()
    } else {
        events.clone()
    };
    let list = shown
        .iter()
        .map(|e| format!("{} {} ({})", offset(e.at_ms), e.component, e.message))
        .collect::<Vec<_>>()
        .join(", then ");
    let more = events.len() - shown.len();
    let mut out = format!(
        "Environment events in the recovery window ({} to {}){}: {list}.",
        offset(start),
        offset(end),
        if more > 0 {
            format!(", {more} more in the journal")
        } else {
            String::new()
        }
    );
    let last = events[events.len() - 1];
    let tail_gap = end.saturating_sub(last.at_ms);
    let longest = events
        .windows(2)
        .max_by_key(|w| (w[1].at_ms - w[0].at_ms, std::cmp::Reverse(w[0].at_ms)));
    let longest_gap = longest.map(|w| w[1].at_ms - w[0].at_ms).unwrap_or(0);
    if !recovered && tail_gap >= longest_gap {
        out.push_str(&format!(
            " Nothing changed in the environment for the last {} of the window, after {} ({} at {}): that wait dominated.",
            human(tail_gap),
            last.component,
            last.message,
            offset(last.at_ms)
        ));
    } else if let Some(w) = longest {
        out.push_str(&format!(
            " The longest gap, {} between {} ({} at {}) and {} ({} at {}), is the dominant contributor.",
            human(longest_gap),
            w[0].component,
            w[0].message,
            offset(w[0].at_ms),
            w[1].component,
            w[1].message,
            offset(w[1].at_ms)
        ));
    }
    Some(out)
}

/// The string values a probe's parameters name (targets: a service, a record, a cluster, labels).
fn probe_values(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::String(s) => out.push(s.clone()),
        Json::Array(a) => a.iter().for_each(|x| probe_values(x, out)),
        Json::Object(o) => o.values().for_each(|x| probe_values(x, out)),
        _ => {}
    }
}

/// Whether an environment event concerns what a probe measures. An event's component is
/// `<kind> <subject>` (`service api`, `route53 api.example.com`, `db orders-db-dr`); it concerns
/// the probe when the subject, or one of its dot- or slash-separated labels, is a target the
/// probe names (`service: api` is concerned by the record `api.example.com` its clients resolve),
/// or when it is a Kubernetes cluster's event and the probe is a Kubernetes probe on that cluster
/// (or names none).
pub(crate) fn concerns(
    p: &crate::engine::events::PlannedProbe,
    e: &crate::report::summary::EnvironmentEvent,
) -> bool {
    let (kind, subject) = e
        .component
        .split_once(' ')
        .unwrap_or(("", e.component.as_str()));
    let mut values = Vec::new();
    probe_values(&p.with, &mut values);
    let labels: Vec<&str> = subject.split(['.', '/', ':', ' ']).collect();
    if values
        .iter()
        .any(|v| v == subject || labels.contains(&v.as_str()))
    {
        return true;
    }
    p.call.starts_with("k8s.")
        && kind == "k8s"
        && p.with
            .get("cluster")
            .and_then(Json::as_str)
            .is_none_or(|c| c == subject)
}

/// The causal chain of the recovery: what the last probe to pass waited on, or what the probes
/// still failing at the deadline last saw. `None` when the journal has no probe definitions
/// (written before they were journaled).
fn causal_chain(s: &RunSummary) -> Option<String> {
    if s.probe_defs.is_empty() {
        return None;
    }
    let defs = |names: &[String]| -> Vec<&crate::engine::events::PlannedProbe> {
        s.probe_defs
            .iter()
            .filter(|p| names.contains(&p.name))
            .collect()
    };
    let last_concerning = |probes: &[&crate::engine::events::PlannedProbe], until: u64| {
        s.environment_events
            .iter()
            .filter(|e| e.at_ms <= until && probes.iter().any(|p| concerns(p, e)))
            .max_by_key(|e| e.at_ms)
    };
    if let Some(d) = s
        .deadline_exceeded
        .as_ref()
        .filter(|d| !d.failing.is_empty())
    {
        let probes = defs(&d.failing);
        let names = code_list(&d.failing);
        return Some(match last_concerning(&probes, d.at_ms) {
            Some(e) => format!(
                "The last environment event concerning {names} was at {}: {}: {}. Nothing that concerns them changed in the {} after it, up to the deadline.",
                offset(e.at_ms),
                e.component,
                e.message,
                human(d.at_ms.saturating_sub(e.at_ms))
            ),
            None => format!(
                "No environment event concerns what {names} measure: look at what they depend on outside the estate's reports."
            ),
        });
    }
    let p = s.last_recovering_probe()?;
    let probes = defs(std::slice::from_ref(&p.probe));
    Some(match last_concerning(&probes, p.at_ms) {
        Some(e) => format!(
            "Recovery was gated by `{}`, the last recovery probe to pass (at {}); the last event before it concerning what it measures was at {}: {}: {}.",
            p.probe,
            offset(p.at_ms),
            offset(e.at_ms),
            e.component,
            e.message
        ),
        None => {
            // Nothing names its target: what the other recovery probes waited on is the
            // nearest evidence (a service's availability follows its pods).
            let others: Vec<String> = s
                .recovery_probes
                .iter()
                .map(|r| r.probe.clone())
                .filter(|n| *n != p.probe)
                .collect();
            match last_concerning(&defs(&others), p.at_ms) {
                Some(e) => format!(
                    "Recovery was gated by `{}`, the last recovery probe to pass (at {}); no environment event names what it measures, and the last event before it concerning the other recovery probes was at {}: {}: {}.",
                    p.probe,
                    offset(p.at_ms),
                    offset(e.at_ms),
                    e.component,
                    e.message
                ),
                None => format!(
                    "Recovery was gated by `{}`, the last recovery probe to pass (at {}); no environment event concerns what it measures.",
                    p.probe,
                    offset(p.at_ms)
                ),
            }
        }
    })
}

fn root_cause(s: &RunSummary, owner: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let gate = match &s.deadline_exceeded {
        // Never recovered: the probes still failing at the deadline gated recovery.
        Some(d) if !d.failing.is_empty() => Some(format!(
            "recovery was gated by {}, still failing at the {} deadline",
            code_list(&d.failing),
            human(d.deadline_ms)
        )),
        _ => s.last_recovering_probe().map(|p| {
            format!(
                "recovery was gated by probe `{}`, which passed last at {}",
                p.probe,
                offset(p.at_ms)
            )
        }),
    };
    match s.verdict.as_ref().map(|v| v.kind) {
        None => parts.push(format!(
            "The run did not finish: the journal ends at {} (the process died).",
            offset(s.duration_ms)
        )),
        Some(VerdictKind::NotSteady) => {
            let failed = s
                .phase(Phase::Before)
                .and_then(|p| p.hypothesis.as_ref())
                .map(|h| code_list(&h.failed))
                .unwrap_or_else(|| "(not recorded)".to_string());
            parts.push(format!(
                "The system was not in steady state before the fault ({failed} failed); nothing was injected."
            ));
        }
        _ => {}
    }
    for m in s.measurements.iter().filter(|m| !m.met) {
        let mut line = format!("{} missed: {}", upper(&m.name), measured_vs_objective(m));
        if m.name == "rto"
            && let Some(g) = &gate
        {
            line.push_str(&format!("; {g}"));
        }
        line.push('.');
        parts.push(line);
    }
    // With probe definitions the causal chain below names the gate and what it waited on.
    if parts.is_empty()
        && s.measurements.iter().all(|m| m.met)
        && (s.probe_defs.is_empty() || s.recovered.is_none())
        && let Some(g) = &gate
    {
        let mut g = g.clone();
        g[..1].make_ascii_uppercase();
        parts.push(format!("{g}."));
    }
    for a in &s.aborts {
        parts.push(format!(
            "The drill was aborted at {}: {}.",
            offset(a.at_ms),
            a.reason
        ));
    }
    for r in s.rollbacks.iter().filter(|r| r.ok == Some(false)) {
        parts.push(format!(
            "The rollback of step `{}` failed: {}.",
            r.step,
            r.error.as_deref().unwrap_or("no error given")
        ));
    }
    if s.fault_at_ms.is_some() {
        match causal_chain(s) {
            Some(c) => parts.push(c),
            None => {
                if let Some(w) = recovery_window_analysis(s) {
                    parts.push(w);
                }
            }
        }
    }
    parts.push(todo(owner, "confirm or correct this draft root cause"));
    parts.join(" ")
}

fn resolution(s: &RunSummary, owner: &str) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &s.recovered {
        parts.push(format!(
            "All recovery probes passing at {} ({} after the fault).",
            offset(r.at_ms),
            human(r.after_ms)
        ));
    } else if let Some(d) = &s.deadline_exceeded {
        parts.push(format!(
            "Not recovered within the {} deadline; still failing: {}.",
            human(d.deadline_ms),
            code_list(&d.failing)
        ));
    }
    let ok = s.rollbacks.iter().filter(|r| r.ok == Some(true)).count();
    if ok > 0 {
        parts.push(format!("{ok} rollback(s) restored the environment."));
    }
    if !s.owed_rollbacks.is_empty() {
        let steps: Vec<String> = s.owed_rollbacks.iter().map(|o| o.step.clone()).collect();
        parts.push(format!(
            "Rollbacks still owed for {}: the environment still carries these changes.",
            code_list(&steps)
        ));
    }
    parts.push(todo(
        owner,
        "describe what restored service and any manual steps taken",
    ));
    parts.join(" ")
}

fn went_well(s: &RunSummary) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(h) = s.phase(Phase::Before).and_then(|p| p.hypothesis.as_ref())
        && h.met
    {
        out.push("Steady state held before the fault.".to_string());
    }
    for m in s.measurements.iter().filter(|m| m.met) {
        out.push(format!(
            "{} met: {}.",
            upper(&m.name),
            measured_vs_objective(m)
        ));
    }
    let ok = s.rollbacks.iter().filter(|r| r.ok == Some(true)).count();
    if ok > 0 && ok == s.rollbacks.len() && s.owed_rollbacks.is_empty() {
        out.push(format!("All {ok} rollback(s) succeeded."));
    }
    out
}

/// Findings that become action items, in a stable order.
fn findings(s: &RunSummary) -> Vec<String> {
    let mut out = Vec::new();
    for m in s.measurements.iter().filter(|m| !m.met) {
        let vs = measured_vs_objective(m);
        out.push(match m.name.as_str() {
            "rto" => {
                let gate = match s
                    .deadline_exceeded
                    .as_ref()
                    .filter(|d| !d.failing.is_empty())
                {
                    Some(d) => format!(
                        "; start with {}, still failing at the deadline",
                        code_list(&d.failing)
                    ),
                    None => s
                        .last_recovering_probe()
                        .map(|p| format!("; start with `{}`, the last probe to recover", p.probe))
                        .unwrap_or_default(),
                };
                format!("Bring recovery time within RTO: measured {vs}{gate}")
            }
            "rpo" => format!("Bring data loss within RPO: measured {vs}"),
            "mttd" => format!("Speed up detection (slow detection): measured {vs}"),
            other => format!("Meet the {} objective: measured {vs}", upper(other)),
        });
    }
    if s.fault_at_ms.is_some()
        && s.detection.is_none()
        && s.is_finished()
        && !s.measurements.iter().any(|m| m.name == "mttd" && !m.met)
        && s.objectives.as_ref().is_some_and(|o| o.mttd_ms.is_some())
    {
        out.push("Add detection: the fault was never detected".to_string());
    }
    // Without an MTTD objective, detection taking more than half the RTO is still slow.
    if let (Some(d), Some(o)) = (&s.detection, &s.objectives)
        && o.mttd_ms.is_none()
        && d.after_ms * 2 > o.rto_ms
    {
        out.push(format!(
            "Speed up detection (slow detection): `{}` took {}, more than half the {} RTO",
            d.probe,
            human(d.after_ms),
            human(o.rto_ms)
        ));
    }
    for a in &s.aborts {
        out.push(format!(
            "Investigate the abort at {}: {}",
            offset(a.at_ms),
            a.reason
        ));
    }
    for st in &s.steps {
        if matches!(
            st.outcome,
            Some(StepOutcome::Failed | StepOutcome::TimedOut)
        ) {
            out.push(format!(
                "Fix step `{}` ({}): {}",
                st.id,
                st.action,
                st.error
                    .as_deref()
                    .unwrap_or("failed without an error message")
            ));
        }
    }
    for r in s.rollbacks.iter().filter(|r| r.ok == Some(false)) {
        out.push(format!(
            "Fix the rollback of step `{}` ({}): {}",
            r.step,
            r.action,
            r.error
                .as_deref()
                .unwrap_or("failed without an error message")
        ));
    }
    for o in &s.owed_rollbacks {
        out.push(format!(
            "Revert step `{}` ({}) by hand: its rollback is owed ({})",
            o.step, o.action, o.reason
        ));
    }
    for d in &s.deviations {
        out.push(format!(
            "Investigate {} steady-state deviation(s) of `{}` during the drill ({} to {})",
            d.count,
            d.probe,
            offset(d.first_at_ms),
            offset(d.last_at_ms)
        ));
    }
    if let Some(h) = s.phase(Phase::After).and_then(|p| p.hypothesis.as_ref())
        && !h.met
    {
        out.push(format!(
            "Restore steady state after the drill: after-check failed for {}",
            code_list(&h.failed)
        ));
    }
    out
}

/// Short JSON for prose (strings unquoted).
pub fn short_json(v: &Json, max_chars: usize) -> String {
    let s = match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(&s, max_chars)
}

/// Cut to at most `max_chars` characters, marking the cut with `…`.
pub fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Save a record to `<dir>/<experiment>/<run-id>.json`. Never overwrites: people edit these.
pub fn save(dir: &Path, record: &LessonsRecord) -> Result<PathBuf, LessonsError> {
    let exp_dir = dir.join(slug(&record.experiment));
    fs::create_dir_all(&exp_dir).map_err(|source| LessonsError::CreateDir {
        path: exp_dir.clone(),
        source,
    })?;
    let file: String = record
        .run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = exp_dir.join(format!("{file}.json"));
    if path.exists() {
        return Err(LessonsError::AlreadyExists { path });
    }
    let mut text =
        serde_json::to_string_pretty(record).map_err(|source| LessonsError::Serialize {
            path: path.clone(),
            source,
        })?;
    text.push('\n');
    fs::write(&path, text).map_err(|source| LessonsError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Every record of `experiment` under `dir`, oldest first.
pub fn load_all(dir: &Path, experiment: &str) -> Result<Vec<LessonsRecord>, LessonsError> {
    let exp_dir = dir.join(slug(experiment));
    let entries = match fs::read_dir(&exp_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LessonsError::ReadDir {
                path: exp_dir,
                source,
            });
        }
    };
    let mut records = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| LessonsError::ReadDir {
                path: exp_dir.clone(),
                source,
            })?
            .path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = fs::read_to_string(&path).map_err(|source| LessonsError::Read {
            path: path.clone(),
            source,
        })?;
        let rec: LessonsRecord =
            serde_json::from_str(&text).map_err(|source| LessonsError::Parse { path, source })?;
        records.push(rec);
    }
    records.sort_by(|a, b| (a.date, &a.run_id).cmp(&(b.date, &b.run_id)));
    Ok(records)
}

/// Action items still `open` in the records of `experiment`, oldest run first, leaving out
/// `exclude_run` (typically the run being reported).
pub fn open_items(
    dir: &Path,
    experiment: &str,
    exclude_run: Option<&str>,
) -> Result<Vec<OpenActionItem>, LessonsError> {
    Ok(load_all(dir, experiment)?
        .into_iter()
        .filter(|r| Some(r.run_id.as_str()) != exclude_run)
        // A what-if run's items are about a changed environment, not the experiment's own.
        .filter(|r| !r.what_if)
        .flat_map(|r| {
            let run_id = r.run_id;
            r.action_items
                .into_iter()
                .filter(|i| i.status == ActionStatus::Open)
                .map(move |item| OpenActionItem {
                    run_id: run_id.clone(),
                    item,
                })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{self, RUN_ID};

    fn record(records: &[crate::engine::events::Record]) -> LessonsRecord {
        LessonsRecord::from_summary(&RunSummary::from_records(records))
    }

    #[test]
    fn missed_run_has_an_action_item_for_the_rto() {
        let l = record(&fixtures::missed_rto_run());
        assert_eq!(l.verdict, Some(VerdictKind::Missed));
        assert!(l.severity.starts_with("high"), "{}", l.severity);
        let first = &l.action_items[0];
        assert_eq!(first.id, format!("{RUN_ID}#1"));
        assert!(first.title.contains("RTO"), "{}", first.title);
        assert!(first.title.contains("exceeded by 4m10s"), "{}", first.title);
        assert!(first.title.contains("dns-serves-dr"), "{}", first.title);
        assert_eq!(first.owner, "team-payments");
        assert_eq!(first.due, NaiveDate::from_ymd_opt(2026, 12, 6));
        assert_eq!(first.status, ActionStatus::Open);
        assert!(l.root_cause.contains("RTO missed"), "{}", l.root_cause);
        assert!(l.root_cause.contains("dominant contributor"));
        assert!(
            !l.impact.contains("TODO"),
            "availability probe gives impact"
        );
    }

    #[test]
    fn pass_run_has_no_objective_items_and_owner_todo_when_unowned() {
        let l = record(&fixtures::pass_run());
        assert!(l.action_items.iter().all(|a| !a.title.contains("RTO")));
        assert_eq!(l.severity, "low (every objective met)");

        let mut s = RunSummary::from_records(&fixtures::missed_rto_run());
        s.owner = None;
        s.phases.retain(|p| p.phase != Phase::Method);
        s.data_loss.clear();
        let l = LessonsRecord::from_summary(&s);
        assert_eq!(l.action_items[0].owner, "TODO");
        assert!(
            l.impact.starts_with("**TO COMPLETE (owner):** _"),
            "{}",
            l.impact
        );
    }

    #[test]
    fn aborted_run_items_cover_abort_rollbacks_and_owed_changes() {
        let l = record(&fixtures::aborted_run());
        let titles: Vec<&str> = l.action_items.iter().map(|a| a.title.as_str()).collect();
        assert!(
            titles
                .iter()
                .any(|t| t.starts_with("Investigate the abort")),
            "{titles:?}"
        );
        assert!(
            titles
                .iter()
                .any(|t| t.starts_with("Fix the rollback of step `promote-dr`"))
        );
        assert!(
            titles
                .iter()
                .any(|t| t.starts_with("Revert step `fail-az`"))
        );
        assert!(l.severity.starts_with("critical"));
    }

    #[test]
    fn slow_detection_without_mttd_objective_is_an_item() {
        let mut s = RunSummary::from_records(&fixtures::pass_run());
        s.objectives.as_mut().unwrap().mttd_ms = None;
        let slow = |s: &RunSummary| {
            LessonsRecord::from_summary(s)
                .action_items
                .iter()
                .any(|a| a.title.contains("slow detection"))
        };
        assert!(!slow(&s), "45s is fast against a 5m RTO");
        s.detection.as_mut().unwrap().after_ms = 200_000;
        assert!(slow(&s));
    }

    #[test]
    fn unfinished_run_is_flagged() {
        let l = record(&fixtures::partial_run());
        assert_eq!(l.verdict, None);
        assert!(l.severity.starts_with("unknown"));
        assert!(l.root_cause.contains("did not finish"));
        assert!(l.timeline.last().unwrap().what.contains("process died"));
    }

    #[test]
    fn save_and_open_items_across_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let older = "20261101T100000Z-az-loss-0001";
        let newer = "20261122T143501Z-az-loss-3f2a";
        let a = record(&fixtures::missed_rto_run_with_id(older));
        let b = record(&fixtures::missed_rto_run_with_id(newer));
        assert_eq!(a.action_items.len(), 2);
        let path_a = save(dir, &a).unwrap();
        assert_eq!(path_a, dir.join("az-loss").join(format!("{older}.json")));
        save(dir, &b).unwrap();
        let err = save(dir, &b).unwrap_err();
        assert!(matches!(err, LessonsError::AlreadyExists { .. }), "{err}");

        let open = open_items(dir, "az-loss", Some(newer)).unwrap();
        assert_eq!(open.len(), 2);
        assert!(open.iter().all(|o| o.run_id == older));

        // Someone closes the first item of the older run by editing the JSON.
        let text = fs::read_to_string(&path_a).unwrap();
        let mut json: Json = serde_json::from_str(&text).unwrap();
        json["action_items"][0]["status"] = Json::from("done");
        fs::write(&path_a, serde_json::to_string_pretty(&json).unwrap()).unwrap();

        let open = open_items(dir, "az-loss", None).unwrap();
        let ids: Vec<&str> = open.iter().map(|o| o.item.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                format!("{older}#2"),
                format!("{newer}#1"),
                format!("{newer}#2")
            ],
            "oldest first, closed item gone"
        );
        assert!(
            open_items(dir, "other-experiment", None)
                .unwrap()
                .is_empty()
        );

        fs::write(dir.join("az-loss").join("broken.json"), "{").unwrap();
        let err = open_items(dir, "az-loss", None).unwrap_err();
        assert!(err.to_string().contains("broken.json"), "{err}");
    }

    #[test]
    fn record_round_trips_through_json() {
        let l = record(&fixtures::aborted_run());
        let text = serde_json::to_string(&l).unwrap();
        assert!(text.contains("\"status\":\"open\""));
        assert!(text.contains("\"duration\":\"2m19s\""));
        let back: LessonsRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, l);
    }
}
