//! A game day's record (`gameday.json`) and report (`gameday.md`): each drill's outcome, the
//! go/no-go decision with its reasons, the checklist evidence, the resilience score, the trend
//! against earlier game days of the same playbook, the action items gathered from the drills'
//! lessons, and a game-day post-mortem in the lessons record's shape.
//!
//! Pure: the CLI runs the drills and hands in their summaries and lessons records.

use crate::engine::events::{Measurement, VerdictKind};
use crate::exit;
use crate::lang::duration::format_ms as human;
use crate::lang::playbook::{GoNoGo, Objective};
use crate::report::evidence::{ControlStatus, Freshness};
use crate::report::lessons::{ActionItem, LessonsRecord};
use crate::report::summary::verdict_label;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Directory (under the runs directory) holding one directory per game day.
pub const GAMEDAYS_DIR: &str = "gamedays";
pub const GAMEDAY_FILE: &str = "gameday.json";
pub const GAMEDAY_REPORT: &str = "gameday.md";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameDaySummary {
    pub id: String,
    pub playbook: String,
    pub title: Option<String>,
    pub owner: Option<String>,
    pub file: String,
    pub started: DateTime<Utc>,
    /// `None` while it runs (the record is rewritten after every drill).
    pub finished: Option<DateTime<Utc>>,
    /// Approval gates were passed with `--approve`.
    #[serde(default)]
    pub pre_approved: bool,
    pub drills: Vec<DrillResult>,
    pub decision: Option<Decision>,
    #[serde(default)]
    pub controls: Vec<ControlStatus>,
    pub score: Option<Score>,
    pub exit_code: Option<i32>,
    /// How the notifications went (best effort: never part of the decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillOutcome {
    /// The drill ran (see its verdict).
    Ran,
    /// Not run: the game day stopped before it.
    Skipped,
    /// Its approval gate was refused (or could not be asked).
    NotApproved,
    /// It could not start: preflight failed, the environment was locked, or an internal error.
    DidNotStart,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillResult {
    pub name: String,
    /// The experiment file as the playbook resolves it.
    pub file: String,
    /// The experiment's `metadata.name`.
    pub experiment: String,
    pub environment: String,
    pub outcome: DrillOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictKind>,
    /// The drill's exit code (as `firedrill run` would give).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The verdict's reasons, or why it did not run.
    pub reasons: Vec<String>,
    pub measurements: Vec<Measurement>,
    /// Environment overrides (`set:`): a what-if, not evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<(String, String)>,
    pub action_items: Vec<ActionItem>,
    /// Wall-clock start and end of the drill (set by the game day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<DateTime<Utc>>,
    /// The drill's span on its own clock (simulated time on the virtual clock).
    pub span_ms: u64,
    /// `virtual` or `wall`.
    #[serde(default)]
    pub clock: String,
    /// The lessons record's findings, for the game-day post-mortem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<String>,
    #[serde(default)]
    pub went_well: Vec<String>,
    #[serde(default)]
    pub to_improve: Vec<String>,
}

impl DrillResult {
    pub fn label(&self) -> String {
        match (self.outcome, self.verdict) {
            (DrillOutcome::Ran, Some(v)) => verdict_label(v).to_string(),
            (DrillOutcome::Ran, None) => "UNFINISHED".into(),
            (DrillOutcome::Skipped, _) => "skipped".into(),
            (DrillOutcome::NotApproved, _) => "NOT APPROVED".into(),
            (DrillOutcome::DidNotStart, _) => "DID NOT START".into(),
        }
    }

    pub fn measurement(&self, o: Objective) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.name == o.name())
    }

    /// This drill's share of the resilience score, 0 to 1, and why.
    pub fn score(&self) -> (f64, String) {
        match (self.outcome, self.verdict) {
            (DrillOutcome::Ran, Some(VerdictKind::Pass)) => (1.0, "passed".into()),
            (DrillOutcome::Ran, Some(VerdictKind::Missed)) => {
                let with_objective: Vec<&Measurement> = self
                    .measurements
                    .iter()
                    .filter(|m| m.objective_ms.is_some())
                    .collect();
                let met = with_objective.iter().filter(|m| m.met).count();
                if with_objective.is_empty() {
                    (0.0, "missed (no objective measured)".into())
                } else {
                    (
                        met as f64 / with_objective.len() as f64,
                        format!("missed: {met} of {} objectives met", with_objective.len()),
                    )
                }
            }
            _ => (0.0, self.label().to_lowercase()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub go: bool,
    /// Every criterion, with whether it held: the reasons for NO-GO first.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// 0 to 100.
    pub value: u32,
    pub parts: Vec<(String, f64, String)>,
}

/// The formula, as the reports state it.
pub const SCORE_FORMULA: &str = "the mean over the playbook's drills of: 1 for a pass; for a missed objective, the fraction of the drill's objectives met; 0 for a drill that was not steady, aborted, failed a rollback, or did not run; times 100, rounded down";

pub fn score(drills: &[DrillResult]) -> Score {
    let parts: Vec<(String, f64, String)> = drills
        .iter()
        .map(|d| {
            let (s, why) = d.score();
            (d.name.clone(), s, why)
        })
        .collect();
    let mean = if parts.is_empty() {
        0.0
    } else {
        parts.iter().map(|p| p.1).sum::<f64>() / parts.len() as f64
    };
    Score {
        value: (mean * 100.0 + 1e-9).floor() as u32,
        parts,
    }
}

fn figure(m: &Measurement) -> String {
    let measured = match m.measured_ms {
        Some(v) => crate::lang::duration::format_at(v, m.resolution_ms),
        None if m.no_impact => "no impact".into(),
        None => match m.deadline_ms {
            Some(d) => format!("> {}", human(d)),
            None => "-".into(),
        },
    };
    match m.objective_ms {
        Some(o) => format!("{measured} / {} {}", human(o), m.result_word()),
        None => measured,
    }
}

/// The go/no-go decision from the criteria, the drills' results and the controls' statuses.
pub fn decide(criteria: &GoNoGo, drills: &[DrillResult], controls: &[ControlStatus]) -> Decision {
    let mut no = Vec::new();
    let mut yes = Vec::new();
    let must: Vec<&DrillResult> = criteria
        .must_pass
        .iter()
        .filter_map(|&i| drills.get(i))
        .collect();
    for d in &must {
        if d.outcome == DrillOutcome::Ran && d.verdict == Some(VerdictKind::Pass) {
            continue;
        }
        let why = d
            .reasons
            .first()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        no.push(format!(
            "drill `{}` must pass and is {}{why}",
            d.name,
            d.label()
        ));
    }
    if !must.is_empty() && no.is_empty() {
        yes.push(if must.len() == drills.len() {
            format!("all {} drills passed", drills.len())
        } else {
            let names: Vec<&str> = must.iter().map(|d| d.name.as_str()).collect();
            format!("the required drills passed: {}", names.join(", "))
        });
    }
    for (i, objectives) in &criteria.verified {
        let Some(d) = drills.get(*i) else { continue };
        for &o in objectives {
            match d.measurement(o) {
                Some(m) if m.met && m.measured_ms.is_some() => yes.push(format!(
                    "`{}`: {} verified ({})",
                    d.name,
                    o.name().to_uppercase(),
                    figure(m)
                )),
                Some(m) => no.push(format!(
                    "`{}`: {} not verified ({})",
                    d.name,
                    o.name().to_uppercase(),
                    figure(m)
                )),
                None => no.push(format!(
                    "`{}`: {} not verified (not measured: {})",
                    d.name,
                    o.name().to_uppercase(),
                    d.label().to_lowercase()
                )),
            }
        }
    }
    if criteria.controls_fresh && !controls.is_empty() {
        let blocked: Vec<&ControlStatus> = controls.iter().filter(|c| c.status.blocks()).collect();
        for c in &blocked {
            let why = c
                .drills
                .iter()
                .filter(|d| d.status.blocks())
                .map(|d| format!("{}: {}", d.drill, d.why))
                .collect::<Vec<_>>()
                .join("; ");
            no.push(format!(
                "control \"{}\" is {} ({why})",
                c.control,
                c.status.label()
            ));
        }
        if blocked.is_empty() {
            let expiring = controls
                .iter()
                .filter(|c| c.status == Freshness::Expiring)
                .count();
            yes.push(format!(
                "all {} checklist controls are evidenced{}",
                controls.len(),
                if expiring > 0 {
                    format!(" ({expiring} expiring soon)")
                } else {
                    String::new()
                }
            ));
        }
    }
    let go = no.is_empty();
    no.extend(yes);
    Decision { go, reasons: no }
}

/// The game day's exit code: 0 on GO; on NO-GO the most serious drill outcome (a failed
/// rollback, an abort, a drill that could not start, a system not steady, a missed objective),
/// or 4 when every drill passed but a criterion did not hold.
pub fn exit_code(decision: &Decision, drills: &[DrillResult]) -> i32 {
    if decision.go {
        return exit::PASS;
    }
    const RANK: [i32; 8] = [
        exit::ROLLBACK_FAILED,
        exit::ABORTED,
        exit::INTERNAL,
        exit::LOCKED,
        exit::PREFLIGHT,
        exit::INVALID_INPUT,
        exit::NOT_STEADY,
        exit::MISSED,
    ];
    let codes: Vec<i32> = drills.iter().filter_map(|d| d.exit_code).collect();
    if drills
        .iter()
        .any(|d| d.outcome == DrillOutcome::NotApproved)
        && !codes.iter().any(|c| RANK[..2].contains(c))
    {
        return exit::ABORTED;
    }
    RANK.iter()
        .copied()
        .find(|r| codes.contains(r))
        .unwrap_or(exit::MISSED)
}

const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A sparkline of values (oldest first); missing values are a space.
pub fn sparkline(values: &[Option<u64>]) -> String {
    let present: Vec<u64> = values.iter().flatten().copied().collect();
    let (Some(&lo), Some(&hi)) = (present.iter().min(), present.iter().max()) else {
        return " ".repeat(values.len());
    };
    values
        .iter()
        .map(|v| match v {
            None => ' ',
            Some(_) if hi == lo => SPARKS[3],
            Some(v) => SPARKS[((v - lo) * 7 / (hi - lo)) as usize],
        })
        .collect()
}

/// One drill's figure across game days, oldest first (`history` newest first, this one apart).
fn series(
    name: &str,
    objective: &str,
    this: &GameDaySummary,
    history: &[GameDaySummary],
) -> Vec<Option<u64>> {
    let value = |g: &GameDaySummary| {
        g.drills
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.measurements.iter().find(|m| m.name == objective))
            .and_then(|m| m.measured_ms)
    };
    let mut out: Vec<Option<u64>> = history.iter().rev().map(value).collect();
    out.push(value(this));
    out
}

/// The game-day report.
pub fn render_markdown(g: &GameDaySummary, history: &[GameDaySummary]) -> String {
    let mut out = String::new();
    let decision = match &g.decision {
        Some(d) if d.go => "GO",
        Some(_) => "NO-GO",
        None => "UNFINISHED",
    };
    let _ = writeln!(
        out,
        "# Game day: {} — {decision}\n",
        g.title.as_deref().unwrap_or(&g.playbook)
    );
    let _ = writeln!(out, "- Playbook: `{}` ({})", g.playbook, g.file);
    let _ = writeln!(out, "- Game day: `{}`", g.id);
    if let Some(o) = &g.owner {
        let _ = writeln!(out, "- Owner: {o}");
    }
    let _ = writeln!(
        out,
        "- Started: {}",
        g.started.format("%Y-%m-%d %H:%M:%S UTC")
    );
    match g.finished {
        Some(f) => {
            let _ = writeln!(
                out,
                "- Finished: {} (wall time {})",
                f.format("%Y-%m-%d %H:%M:%S UTC"),
                human((f - g.started).num_milliseconds().max(0) as u64)
            );
        }
        None => out.push_str("- Finished: not yet (or the process died while it ran)\n"),
    }
    if g.pre_approved {
        out.push_str("- Approval gates: pre-approved with `--approve`\n");
    }
    if let Some(n) = &g.notifications {
        let _ = writeln!(out, "- {}{}", n[..1].to_uppercase(), &n[1..]);
    }
    out.push_str("\n## Decision\n\n");
    match &g.decision {
        Some(d) => {
            let _ = writeln!(out, "**{decision}**\n");
            for r in &d.reasons {
                let _ = writeln!(out, "- {r}");
            }
            out.push('\n');
        }
        None => out.push_str("No decision: the game day did not finish.\n\n"),
    }
    out.push_str("## Drills\n\n| # | Drill | Verdict | RTO (measured / objective) | RPO | MTTD | Run |\n|---|---|---|---|---|---|---|\n");
    for (i, d) in g.drills.iter().enumerate() {
        let fig = |o: Objective| d.measurement(o).map(figure).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "| {} | {}{} | {} | {} | {} | {} | {} |",
            i + 1,
            d.name,
            if d.sets.is_empty() { "" } else { " (what-if)" },
            d.label(),
            fig(Objective::Rto),
            fig(Objective::Rpo),
            fig(Objective::Mttd),
            d.run_id
                .as_ref()
                .map(|r| format!("`{r}`"))
                .unwrap_or_else(|| "-".into())
        );
    }
    out.push('\n');
    for d in &g.drills {
        if d.verdict != Some(VerdictKind::Pass) && !d.reasons.is_empty() {
            let _ = writeln!(out, "- `{}`: {}", d.name, d.reasons.join("; "));
        }
    }
    if g.drills.iter().any(|d| !d.sets.is_empty()) {
        out.push_str("- what-if: the drill ran with environment overrides (`set:`); it is not evidence of the environment as it is.\n");
    }
    out.push('\n');
    out.push_str("## Checklist evidence\n\n");
    if g.controls.is_empty() {
        out.push_str("The playbook names no controls (`controls:`).\n\n");
    } else {
        let _ = writeln!(
            out,
            "As of {}, from the runs directory (this game day's runs included):\n",
            g.finished.unwrap_or(g.started).format("%Y-%m-%d %H:%M UTC")
        );
        out.push_str(&crate::report::evidence::render_markdown(&g.controls));
        out.push('\n');
    }
    if let Some(s) = &g.score {
        let _ = writeln!(
            out,
            "## Resilience score\n\n**{}/100**: {SCORE_FORMULA}.\n",
            s.value
        );
        out.push_str("| Drill | Share | Why |\n|---|---|---|\n");
        for (name, share, why) in &s.parts {
            let _ = writeln!(out, "| {name} | {share:.2} | {why} |");
        }
        out.push('\n');
    }
    trend(&mut out, g, history);
    out.push_str("## Action items\n\n");
    let items: Vec<(&DrillResult, &ActionItem)> = g
        .drills
        .iter()
        .flat_map(|d| d.action_items.iter().map(move |a| (d, a)))
        .collect();
    if items.is_empty() {
        out.push_str("None from this game day's drills.\n\n");
    } else {
        out.push_str("| Id | Drill | Action | Owner | Due |\n|---|---|---|---|---|\n");
        for (d, a) in &items {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                a.id,
                d.name,
                a.title.replace('|', "\\|").replace('\n', " "),
                a.owner.replace('|', "\\|"),
                a.due.map(|d| d.to_string()).unwrap_or_else(|| "-".into())
            );
        }
        out.push_str("\nEach item lives in its drill's lessons record (`.firedrill/lessons/<experiment>/<run-id>.json`): set its `status` to `done` or `wontfix` there.\n\n");
    }
    post_mortem(&mut out, g, decision);
    out
}

fn trend(out: &mut String, g: &GameDaySummary, history: &[GameDaySummary]) {
    out.push_str("## Trend\n\n");
    if history.is_empty() {
        out.push_str("First game day of this playbook in the runs directory: nothing to compare with yet.\n\n");
        return;
    }
    let _ = writeln!(
        out,
        "Against the {} earlier game day(s) of `{}` (oldest first; the sparkline is this figure across them):\n",
        history.len(),
        g.playbook
    );
    out.push_str("| Drill | Figure | Previous | This game day | Change | Trend |\n|---|---|---|---|---|---|\n");
    let previous = &history[0];
    for d in &g.drills {
        for m in &d.measurements {
            let s = series(&d.name, &m.name, g, history);
            let prev = previous
                .drills
                .iter()
                .find(|p| p.name == d.name)
                .and_then(|p| p.measurements.iter().find(|pm| pm.name == m.name))
                .and_then(|pm| pm.measured_ms);
            let change = match (prev, m.measured_ms) {
                (Some(p), Some(n)) if n > p => format!("+{} (slower)", human(n - p)),
                (Some(p), Some(n)) if n < p => format!("-{} (faster)", human(p - n)),
                (Some(_), Some(_)) => "same".into(),
                _ => "-".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {change} | `{}` |",
                d.name,
                m.name.to_uppercase(),
                prev.map(human).unwrap_or_else(|| "-".into()),
                m.measured_ms.map(human).unwrap_or_else(|| "-".into()),
                sparkline(&s)
            );
        }
    }
    let scores: Vec<String> = history
        .iter()
        .rev()
        .chain(std::iter::once(g))
        .map(|h| {
            h.score
                .as_ref()
                .map(|s| s.value.to_string())
                .unwrap_or_else(|| "-".into())
        })
        .collect();
    let _ = writeln!(
        out,
        "\nResilience score across game days: {}.\n",
        scores.join(" → ")
    );
    // A chart of the score (Mermaid xychart): one point per game day.
    let points: Vec<String> = history
        .iter()
        .rev()
        .chain(std::iter::once(g))
        .map(|h| h.score.as_ref().map(|s| s.value).unwrap_or(0).to_string())
        .collect();
    let labels: Vec<String> = history
        .iter()
        .rev()
        .chain(std::iter::once(g))
        .map(|h| format!("\"{}\"", h.started.format("%Y-%m-%d")))
        .collect();
    let _ = writeln!(
        out,
        "```mermaid\nxychart-beta\n    title \"Resilience score\"\n    x-axis [{}]\n    y-axis \"score\" 0 --> 100\n    line [{}]\n```\n",
        labels.join(", "),
        points.join(", ")
    );
}

fn post_mortem(out: &mut String, g: &GameDaySummary, decision: &str) {
    out.push_str("## Post-mortem\n\n### Summary\n\n");
    let ran = g
        .drills
        .iter()
        .filter(|d| d.outcome == DrillOutcome::Ran)
        .count();
    let passed = g
        .drills
        .iter()
        .filter(|d| d.verdict == Some(VerdictKind::Pass))
        .count();
    let _ = writeln!(out, "- Date: {}", g.started.format("%Y-%m-%d"));
    let _ = writeln!(out, "- Decision: {decision}");
    let _ = writeln!(
        out,
        "- Drills: {} in the playbook, {ran} ran, {passed} passed",
        g.drills.len()
    );
    if let Some(s) = &g.score {
        let _ = writeln!(out, "- Resilience score: {}/100", s.value);
    }
    out.push_str("\n### Timeline\n\n");
    for d in &g.drills {
        match (d.started, d.finished) {
            (Some(s), Some(f)) => {
                let wall = (f - s).num_milliseconds().max(0) as f64 / 1000.0;
                let _ = writeln!(
                    out,
                    "- {} `{}` ({wall:.1}s wall): {} (drill span {}{})",
                    s.format("%H:%M:%S"),
                    d.name,
                    d.label(),
                    human(d.span_ms),
                    if d.clock == "virtual" {
                        " of simulated time"
                    } else {
                        ""
                    }
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "- `{}`: {}{}",
                    d.name,
                    d.label(),
                    d.reasons
                        .first()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
        }
    }
    out.push_str("\n### Root cause\n\n");
    let failing: Vec<&DrillResult> = g
        .drills
        .iter()
        .filter(|d| d.outcome != DrillOutcome::Skipped && d.verdict != Some(VerdictKind::Pass))
        .collect();
    if failing.is_empty() {
        out.push_str("Every drill that ran passed: no failure to explain.\n\n");
    } else {
        for d in &failing {
            let cause = d
                .root_cause
                .clone()
                .or_else(|| d.reasons.first().cloned())
                .unwrap_or_else(|| "unknown".into());
            let _ = writeln!(
                out,
                "- `{}` ({}): {}",
                d.name,
                d.label(),
                cause.replace('\n', " ")
            );
        }
        out.push('\n');
    }
    for (title, pick, prompt) in [
        (
            "What went well",
            0usize,
            "what went well in the game day itself (people, runbooks, communication)?",
        ),
        (
            "What to improve",
            1usize,
            "what should the next game day do differently?",
        ),
    ] {
        let _ = writeln!(out, "### {title}\n");
        // The same finding from several drills is one line naming them; people's placeholders
        // (the drills' TODOs) become one visible line for the game day.
        let mut lines: Vec<(String, Vec<&str>)> = Vec::new();
        for d in &g.drills {
            let list = if pick == 0 {
                &d.went_well
            } else {
                &d.to_improve
            };
            for i in list.iter().filter(|i| !crate::report::lessons::is_todo(i)) {
                match lines.iter_mut().find(|(t, _)| t == i) {
                    Some((_, names)) => names.push(&d.name),
                    None => lines.push((i.clone(), vec![&d.name])),
                }
            }
        }
        for (text, names) in &lines {
            let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            let _ = writeln!(
                out,
                "- {} ({})",
                text.trim_end_matches('.'),
                names.join(", ")
            );
        }
        let owner = g.owner.as_deref().unwrap_or("the game day's participants");
        let _ = writeln!(out, "- **To complete ({owner}):** {prompt}\n");
    }
}

/// Build a drill's result from its run.
pub fn drill_result(
    name: &str,
    file: &str,
    summary: &crate::report::summary::RunSummary,
    lessons: &LessonsRecord,
    sets: &[(String, String)],
    vars: &[(String, String)],
) -> DrillResult {
    DrillResult {
        name: name.to_string(),
        file: file.to_string(),
        experiment: summary.experiment.clone(),
        environment: summary.environment.clone(),
        outcome: DrillOutcome::Ran,
        run_id: Some(summary.run_id.clone()),
        verdict: summary.verdict.as_ref().map(|v| v.kind),
        exit_code: summary.verdict.as_ref().map(|v| v.exit_code),
        reasons: summary
            .verdict
            .as_ref()
            .map(|v| v.reasons.clone())
            .unwrap_or_default(),
        measurements: summary.measurements.clone(),
        sets: sets.to_vec(),
        vars: vars.to_vec(),
        action_items: lessons.action_items.clone(),
        started: None,
        finished: None,
        span_ms: summary.duration_ms,
        clock: summary.clock.clone(),
        root_cause: (summary.verdict.as_ref().map(|v| v.kind) != Some(VerdictKind::Pass))
            .then(|| lessons.root_cause.clone()),
        went_well: lessons.went_well.clone(),
        to_improve: lessons.to_improve.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, measured: Option<u64>, objective: u64, met: bool) -> Measurement {
        Measurement {
            name: name.into(),
            measured_ms: measured,
            objective_ms: Some(objective),
            resolution_ms: 10_000,
            deadline_ms: Some(objective * 2),
            met,
            detail: String::new(),
            impact_ms: None,
            no_impact: false,
            canary: None,
        }
    }

    fn drill(name: &str, verdict: VerdictKind, ms: Vec<Measurement>) -> DrillResult {
        DrillResult {
            name: name.into(),
            file: format!("experiments/{name}.yaml"),
            experiment: name.into(),
            environment: "sim".into(),
            outcome: DrillOutcome::Ran,
            run_id: Some(format!("{name}-1")),
            verdict: Some(verdict),
            exit_code: Some(exit::for_verdict(verdict)),
            reasons: if verdict == VerdictKind::Pass {
                vec![]
            } else {
                vec!["RTO missed".into()]
            },
            measurements: ms,
            sets: vec![],
            vars: vec![],
            action_items: vec![],
            started: None,
            finished: None,
            span_ms: 0,
            clock: "virtual".into(),
            root_cause: None,
            went_well: vec![],
            to_improve: vec![],
        }
    }

    #[test]
    fn the_decision_names_every_criterion_and_the_exit_code_the_worst_drill() {
        let drills = vec![
            drill(
                "pod-kill",
                VerdictKind::Pass,
                vec![m("rto", Some(30_000), 900_000, true)],
            ),
            drill(
                "region-failover",
                VerdictKind::Missed,
                vec![
                    m("rto", None, 900_000, false),
                    m("rpo", Some(1_000), 3_600_000, true),
                ],
            ),
        ];
        let criteria = GoNoGo {
            must_pass: vec![0, 1],
            verified: vec![(1, vec![Objective::Rto, Objective::Rpo])],
            controls_fresh: true,
        };
        let d = decide(&criteria, &drills, &[]);
        assert!(!d.go);
        assert_eq!(
            d.reasons[0],
            "drill `region-failover` must pass and is MISSED: RTO missed"
        );
        assert_eq!(
            d.reasons[1],
            "`region-failover`: RTO not verified (> 30m / 15m MISSED)"
        );
        assert_eq!(
            d.reasons[2],
            "`region-failover`: RPO verified (1s / 1h met)"
        );
        assert_eq!(exit_code(&d, &drills), exit::MISSED);
        let s = score(&drills);
        assert_eq!(s.value, 75, "{s:?}");
        let pass = vec![drills[0].clone()];
        let d = decide(
            &GoNoGo {
                must_pass: vec![0],
                verified: vec![],
                controls_fresh: true,
            },
            &pass,
            &[],
        );
        assert!(d.go);
        assert_eq!(d.reasons, vec!["all 1 drills passed"]);
        assert_eq!(exit_code(&d, &pass), exit::PASS);
        let mut aborted = drills.clone();
        aborted[0].verdict = Some(VerdictKind::Aborted);
        aborted[0].exit_code = Some(exit::ABORTED);
        assert_eq!(
            exit_code(&decide(&criteria, &aborted, &[]), &aborted),
            exit::ABORTED
        );
    }

    #[test]
    fn sparklines_scale_between_the_lowest_and_highest() {
        assert_eq!(sparkline(&[Some(10), Some(80), None, Some(45)]), "▁█ ▄");
        assert_eq!(sparkline(&[Some(5), Some(5)]), "▄▄");
        assert_eq!(sparkline(&[None]), " ");
    }
}
