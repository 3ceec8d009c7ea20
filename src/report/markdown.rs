//! The post-drill markdown report: evidence SRE teams attach to a drill. Rendered from a
//! [`RunSummary`] alone; the lessons-learned section is rendered from the [`LessonsRecord`] built
//! from the same summary.

use crate::lang::duration::format_ms as human;
use std::fmt::Write as _;

use serde_json::Value as Json;

use crate::engine::events::{Measurement, Phase, StepOutcome};
use crate::lang::duration::format;
use crate::report::lessons::{ActionStatus, LessonsRecord, OpenActionItem, offset, truncate};
use crate::report::summary::RunSummary;

/// Longest output / value shown inline, in characters.
const MAX_INLINE: usize = 300;

/// Make text safe inside a markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn or_dash(s: Option<String>) -> String {
    s.unwrap_or_else(|| "-".to_string())
}

/// Mermaid gantt ids: `[A-Za-z0-9_-]` only.
fn mermaid_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Mermaid gantt task text: `:` separates fields and `#`/`;` start entities and statements, so
/// they are replaced by look-alikes that cannot break the diagram.
fn mermaid_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ':' => '\u{2236}',
            '#' => '\u{FF03}',
            ';' => ',',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect()
}

/// Render the full report. `open_items` are the still-open action items of earlier drills of the
/// same experiment (see `lessons::open_items`).
pub fn render_markdown(summary: &RunSummary, open_items: &[OpenActionItem]) -> String {
    let lessons = LessonsRecord::from_summary(summary);
    let mut out = String::new();
    header(&mut out, summary);
    verdict(&mut out, summary);
    gantt(&mut out, summary);
    steady_state(&mut out, summary);
    steps(&mut out, summary);
    environment(&mut out, summary);
    pod_recovery(&mut out, summary);
    rollbacks(&mut out, summary);
    lessons_section(&mut out, &lessons);
    open_items_section(&mut out, open_items);
    out
}

fn header(out: &mut String, s: &RunSummary) {
    let _ = writeln!(out, "# Drill report: {}\n", s.display_title());
    if let Some(b) = s.integrity.as_ref().and_then(|i| i.broken.as_ref()) {
        let _ = writeln!(
            out,
            "> **Warning: this journal does not verify.** {b}. The figures below come from altered evidence; do not use this report as proof of the drill.\n"
        );
    }
    let mut verdict_line = format!("**{}**", s.verdict_label());
    if let Some(v) = &s.verdict {
        let _ = write!(verdict_line, " (exit code {})", v.exit_code);
    } else {
        verdict_line.push_str(
            " - the journal ends without a verdict: the process died before the run finished",
        );
    }
    if s.dry_run {
        verdict_line.push_str(" - dry run: nothing was injected");
    }
    let _ = writeln!(out, "Verdict: {verdict_line}\n");
    if s.is_what_if() {
        let sets: Vec<String> = s
            .environment_sets
            .iter()
            .map(|(k, v)| format!("`--set {k}={v}`"))
            .collect();
        let _ = writeln!(
            out,
            "> **What-if run:** the environment was changed for this run ({}). It answers \"what if?\"; it is not evidence of the environment as it is, and its action items are kept apart from the experiment's.\n",
            sets.join(", ")
        );
    }
    if let Some(d) = &s.description {
        let _ = writeln!(out, "{d}\n");
    }
    let seed = s
        .seed
        .map(|x| x.to_string())
        .unwrap_or_else(|| "none".into());
    let started = s
        .started
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "unknown".into());
    let mut duration = human(s.duration_ms);
    if !s.is_finished() {
        duration.push_str(" (until the journal ends)");
    }
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Run | `{}` |", s.run_id);
    let _ = writeln!(out, "| Experiment | `{}` (`{}`) |", s.experiment, s.file);
    let _ = writeln!(
        out,
        "| Environment | {} (backend `{}`, clock `{}`, seed {seed}) |",
        cell(&s.environment),
        s.backend,
        s.clock
    );
    let mut overrides: Vec<String> = s
        .environment_sets
        .iter()
        .map(|(k, v)| format!("`--set {k}={v}`"))
        .collect();
    overrides.extend(
        s.overrides
            .vars
            .iter()
            .map(|(k, v)| format!("`--var {k}={v}`")),
    );
    if let Some(seed) = s.overrides.seed {
        overrides.push(format!("`--seed {seed}`"));
    }
    if !overrides.is_empty() {
        let _ = writeln!(out, "| Overrides | {} |", cell(&overrides.join(", ")));
    }
    let _ = writeln!(out, "| Started | {started} |");
    let _ = writeln!(out, "| Duration | {duration} |");
    let _ = writeln!(
        out,
        "| Owner | {} |",
        cell(s.owner.as_deref().unwrap_or("unassigned"))
    );
    if !s.tags.is_empty() {
        let _ = writeln!(out, "| Tags | {} |", cell(&s.tags.join(", ")));
    }
    if let Some(v) = &s.firedrill_version {
        let _ = writeln!(out, "| firedrill | {v} |");
    }
    match &s.integrity {
        Some(i) if i.broken.is_some() => {}
        Some(i) if i.chained => {
            let _ = writeln!(
                out,
                "| Evidence | `journal.jsonl`: {} records, SHA-256 chain ending `{}` (`firedrill verify {}`) |",
                i.records,
                i.final_sha256.as_deref().unwrap_or("-"),
                s.run_id
            );
        }
        Some(_) => {
            let _ = writeln!(
                out,
                "| Evidence | `journal.jsonl` is not hash-chained (written before firedrill chained journals) |"
            );
        }
        None => {}
    }
    if s.journal_truncated_tail {
        let _ = writeln!(
            out,
            "\n> **Warning:** the journal's last line was cut short (the process died while writing it) and was dropped."
        );
    }
    out.push('\n');
}

fn measured_cell(m: &Measurement) -> String {
    match (m.measured_ms, m.deadline_ms) {
        (None, _) if m.no_impact => "no impact observed".to_string(),
        (Some(v), _) => crate::lang::duration::format_at(v, m.resolution_ms),
        (None, Some(d)) => format!("> {} (deadline)", human(d)),
        (None, None) => "not measured".to_string(),
    }
}

fn verdict(out: &mut String, s: &RunSummary) {
    out.push_str("## Verdict\n\n");
    if s.measurements.is_empty() {
        match &s.objectives {
            Some(o) => {
                let mttd = o
                    .mttd_ms
                    .map(|m| format!(", MTTD {}", human(m)))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "No measurements were recorded. Objectives in force: RTO {}, RPO {}{mttd}.\n",
                    human(o.rto_ms),
                    human(o.rpo_ms)
                );
            }
            None => out.push_str("No measurements were recorded.\n\n"),
        }
    } else {
        out.push_str("| Objective | Measured | Target | Resolution | Result |\n");
        out.push_str("|---|---|---|---|---|\n");
        for m in &s.measurements {
            let _ = writeln!(
                out,
                "| {} | {} | {} | ±{} | {} |",
                m.name.to_uppercase(),
                measured_cell(m),
                or_dash(m.objective_ms.map(human)),
                human(m.resolution_ms),
                m.result_word()
            );
        }
        out.push('\n');
        for m in &s.measurements {
            if !m.detail.is_empty() {
                let _ = writeln!(out, "- {}: {}", m.name.to_uppercase(), m.detail);
            }
        }
        out.push('\n');
        for m in &s.measurements {
            if let Some(c) = &m.canary {
                canary(out, c);
            }
        }
    }
    if let Some(v) = &s.verdict
        && !v.reasons.is_empty()
    {
        out.push_str("Reasons:\n\n");
        for r in &v.reasons {
            let _ = writeln!(out, "- {r}");
        }
        out.push('\n');
    }
}

/// The data-loss canary's figures, under the verdict table.
fn canary(out: &mut String, c: &crate::engine::events::CanaryFigures) {
    let _ = writeln!(
        out,
        "Data-loss canary: written to `{}` on {} every {}, read back on {}.\n",
        c.table,
        c.write_server,
        human(c.interval_ms),
        c.read_server
    );
    out.push_str("| Canary | Value |\n|---|---|\n");
    let _ = writeln!(out, "| Acknowledged writes | {} |", c.acknowledged);
    let _ = writeln!(out, "| Failed writes | {} |", c.failed);
    let _ = writeln!(out, "| Surviving after recovery | {} |", c.surviving);
    let _ = writeln!(
        out,
        "| Acknowledged but lost | {}{} |",
        c.lost_acknowledged,
        if c.lost_ranges.is_empty() {
            String::new()
        } else {
            format!(" (#{})", c.lost_ranges)
        }
    );
    let _ = writeln!(
        out,
        "| Newest surviving acknowledged | {} |",
        match c.newest_surviving_seq {
            Some(seq) => format!("#{seq}"),
            None => "none".into(),
        }
    );
    let outage = match (c.outage_from_ms, c.outage_ms) {
        (Some(from), Some(d)) => format!(
            "{} from +{}{}",
            human(d),
            human(from),
            if c.outage_ended {
                ""
            } else {
                " (still failing when the canary stopped)"
            }
        ),
        _ => "none".into(),
    };
    let _ = writeln!(out, "| Write outage | {outage} |");
    let _ = writeln!(
        out,
        "| Server clock skew | {:+} ms (round trip {} ms) |\n",
        c.skew_ms, c.skew_rtt_ms
    );
}

/// A run offset as a Mermaid gantt date: from `1970-01-01 00:00:00`, read as local time by
/// Mermaid, so the axis reads the offset in every time zone (an epoch number would be shown in
/// the viewer's zone, and Mermaid 11 reads bare numbers differently as starts and ends).
pub(crate) fn gantt_time(ms: u64) -> String {
    let days = ms / 86_400_000;
    let rest = ms % 86_400_000;
    let s = rest / 1000;
    format!(
        "1970-01-{:02} {:02}:{:02}:{:02}.{:03}",
        1 + days.min(30),
        s / 3600,
        (s / 60) % 60,
        s % 60,
        rest % 1000
    )
}

/// Axis ticks for a span: the smallest interval giving at most 10 ticks.
fn tick_interval(span_ms: u64) -> &'static str {
    const STEPS: [(u64, &str); 18] = [
        (1_000, "1second"),
        (2_000, "2second"),
        (5_000, "5second"),
        (10_000, "10second"),
        (15_000, "15second"),
        (30_000, "30second"),
        (60_000, "1minute"),
        (120_000, "2minute"),
        (300_000, "5minute"),
        (600_000, "10minute"),
        (900_000, "15minute"),
        (1_800_000, "30minute"),
        (3_600_000, "1hour"),
        (7_200_000, "2hour"),
        (10_800_000, "3hour"),
        (21_600_000, "6hour"),
        (43_200_000, "12hour"),
        (86_400_000, "1day"),
    ];
    STEPS
        .iter()
        .find(|(ms, _)| span_ms / ms <= 10)
        .map(|s| s.1)
        .unwrap_or("1day")
}

/// One gantt line: a bar from `start` to `end`, or a milestone (a diamond) when the span is too
/// short to see (under 1% of the chart, or under a second).
fn gantt_task(
    out: &mut String,
    text: &str,
    tag: &str,
    id: &str,
    start: u64,
    end: u64,
    chart_ms: u64,
) {
    let visible = end.saturating_sub(start) >= 1000 && end.saturating_sub(start) * 100 >= chart_ms;
    if visible {
        let _ = writeln!(
            out,
            "    {text} :{tag}{id}, {}, {}",
            gantt_time(start),
            gantt_time(end)
        );
    } else {
        let _ = writeln!(
            out,
            "    {text} :{tag}milestone, {id}, {}, {}",
            gantt_time(start),
            gantt_time(start)
        );
    }
}

fn gantt(out: &mut String, s: &RunSummary) {
    out.push_str("## Timeline\n\n");
    out.push_str("Offsets from the start of the run (run clock, hours:minutes:seconds); diamonds mark moments and steps too short to draw as bars.\n\n");
    let chart_ms = s.duration_ms.max(1000);
    let _ = writeln!(
        out,
        "```mermaid\ngantt\n    dateFormat YYYY-MM-DD HH:mm:ss.SSS\n    axisFormat {}\n    tickInterval {}\n    todayMarker off",
        if chart_ms >= 86_400_000 {
            "%d %H:%M"
        } else {
            "%H:%M:%S"
        },
        tick_interval(chart_ms)
    );
    let started: Vec<_> = s
        .steps
        .iter()
        .filter(|st| st.started_at_ms.is_some())
        .collect();
    if !started.is_empty() {
        out.push_str("    section Steps\n");
        for st in started {
            let start = st.started_at_ms.unwrap_or(0);
            let end = st.finished_at_ms.unwrap_or(s.duration_ms);
            let tag = match st.outcome {
                Some(StepOutcome::Succeeded) => "done, ",
                Some(StepOutcome::Failed | StepOutcome::TimedOut) => "crit, ",
                None => "active, ",
                _ => "",
            };
            let text = format!("{} ({})", mermaid_text(&st.id), mermaid_text(&st.action));
            gantt_task(
                out,
                &text,
                tag,
                &format!("step_{}", mermaid_id(&st.id)),
                start,
                end,
                chart_ms,
            );
        }
    }
    let mut milestones = Vec::new();
    if let (Some(step), Some(at)) = (&s.fault_step, s.fault_at_ms) {
        milestones.push(("fault", format!("Fault injected ({step})"), at));
    }
    if let Some(i) = &s.impact {
        milestones.push(("impact", "Impact seen".to_string(), i.at_ms));
    }
    if let Some(n) = &s.no_impact {
        milestones.push(("no_impact", "No impact observed".to_string(), n.at_ms));
    }
    if let Some(d) = &s.detection {
        milestones.push(("detected", format!("Detected ({})", d.probe), d.at_ms));
    }
    if let Some(r) = &s.recovered {
        milestones.push(("recovered", "Recovered".to_string(), r.at_ms));
    }
    if let Some(d) = &s.deadline_exceeded {
        milestones.push((
            "deadline",
            "Recovery deadline exceeded".to_string(),
            d.at_ms,
        ));
    }
    for (i, a) in s.aborts.iter().enumerate() {
        milestones.push((
            if i == 0 { "abort" } else { "abort_more" },
            "Abort".to_string(),
            a.at_ms,
        ));
    }
    if !milestones.is_empty() {
        out.push_str("    section Recovery\n");
        for (id, text, at) in milestones {
            let t = gantt_time(at);
            let _ = writeln!(
                out,
                "    {} :milestone, {id}, {t}, {t}",
                mermaid_text(&text)
            );
        }
    }
    if !s.rollbacks.is_empty() {
        out.push_str("    section Rollbacks\n");
        for (i, r) in s.rollbacks.iter().enumerate() {
            let end = r.started_at_ms + r.duration_ms.unwrap_or(0);
            let tag = match r.ok {
                Some(true) => "done, ",
                Some(false) => "crit, ",
                None => "active, ",
            };
            let text = format!("rollback {}", mermaid_text(&r.step));
            gantt_task(
                out,
                &text,
                tag,
                &format!("rb_{}_{i}", mermaid_id(&r.step)),
                r.started_at_ms,
                end,
                chart_ms,
            );
        }
    }
    out.push_str("```\n\n");
}

fn probe_table(out: &mut String, s: &RunSummary, phase: Phase, label: &str) {
    let _ = writeln!(out, "### {label}\n");
    let Some(p) = s.phase(phase) else {
        out.push_str("Not reached.\n\n");
        return;
    };
    if let Some(h) = &p.hypothesis {
        if h.met {
            let _ = writeln!(out, "Hypothesis **met** at {}.\n", offset(h.at_ms));
        } else {
            let failed = h
                .failed
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "Hypothesis **not met** at {}: {failed} failed.\n",
                offset(h.at_ms)
            );
        }
    }
    if p.probes.is_empty() {
        out.push_str("No probe checks recorded.\n\n");
        return;
    }
    out.push_str("| Probe | Result | Value | Message | Last checked | Checks |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for c in &p.probes {
        let counts = if c.failed > 0 {
            format!("{} ({} failed)", c.checks, c.failed)
        } else {
            c.checks.to_string()
        };
        let r = &c.last;
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {counts} |",
            c.name,
            if r.ok { "ok" } else { "FAIL" },
            cell(&readable(&r.value, 4, "<br>")),
            cell(&r.message),
            offset(r.at_ms)
        );
    }
    out.push('\n');
}

fn steady_state(out: &mut String, s: &RunSummary) {
    out.push_str("## Steady state\n\n");
    probe_table(out, s, Phase::Before, "Before the fault");
    probe_table(out, s, Phase::Method, "During the method");
    if s.deviations.is_empty() {
        out.push_str("Deviations: none.\n\n");
    } else {
        let _ = writeln!(
            out,
            "Deviations (checks of the during-hypothesis probes out of tolerance): {} across {} probe(s).\n",
            s.deviation_count(),
            s.deviations.len()
        );
        out.push_str("| Probe | Count | First | Last | Worst value | Last message |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for d in &s.deviations {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                d.probe,
                d.count,
                offset(d.first_at_ms),
                offset(d.last_at_ms),
                cell(&readable(&d.worst_value, 4, "<br>")),
                cell(&d.last_message)
            );
        }
        out.push('\n');
    }
    for a in &s.aborts {
        let _ = writeln!(out, "**Aborted** at {}: {}\n", offset(a.at_ms), a.reason);
    }
    for i in &s.interrupts {
        let _ = writeln!(
            out,
            "**Interrupted** at {} by {} (interrupt #{}).\n",
            offset(i.at_ms),
            i.signal,
            i.count
        );
    }
    probe_table(out, s, Phase::After, "After the method");
}

fn outcome_label(o: Option<StepOutcome>, started: bool) -> &'static str {
    match o {
        Some(StepOutcome::Succeeded) => "succeeded",
        Some(StepOutcome::Failed) => "FAILED",
        Some(StepOutcome::TimedOut) => "TIMED OUT",
        Some(StepOutcome::Cancelled) => "cancelled",
        Some(StepOutcome::Skipped) => "skipped",
        None if started => "running when the journal ends",
        None => "not started",
    }
}

/// Flatten a value into `key: value` pairs (nested keys dotted, lists indexed).
fn pairs(prefix: &str, v: &Json, out: &mut Vec<(String, String)>) {
    match v {
        Json::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                pairs(&key, x, out);
            }
        }
        Json::Array(a) if !a.is_empty() && a.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, x) in a.iter().enumerate() {
                pairs(&format!("{prefix}[{i}]"), x, out);
            }
        }
        Json::Array(a) => out.push((
            prefix.to_string(),
            a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        )),
        other => out.push((prefix.to_string(), scalar(other))),
    }
}

fn scalar(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => "null".into(),
        other => crate::lang::tolerance::show_value(other),
    }
}

/// A value for people: a scalar as it reads, an object as `key: value` pairs, at most
/// `max_pairs` of them with a note of how many more the journal has.
fn readable(v: &Json, max_pairs: usize, sep: &str) -> String {
    let mut ps = Vec::new();
    pairs("", v, &mut ps);
    if ps.len() == 1 && ps[0].0.is_empty() {
        return truncate(&ps[0].1, MAX_INLINE);
    }
    let shown: Vec<String> = ps
        .iter()
        .take(max_pairs)
        .map(|(k, x)| format!("{k}: {}", truncate(x, 80)))
        .collect();
    let mut out = shown.join(sep);
    if ps.len() > max_pairs {
        out.push_str(&format!(
            "{sep}… {} more in the journal",
            ps.len() - max_pairs
        ));
    }
    out
}

fn interesting(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Object(m) => !m.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn steps(out: &mut String, s: &RunSummary) {
    out.push_str("## Steps\n\n");
    if s.steps.is_empty() {
        out.push_str("No steps recorded.\n\n");
        return;
    }
    out.push_str("| Step | Action | After | Started | Duration | Attempts | Outcome |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    let critical: std::collections::HashSet<&str> =
        s.critical_path.iter().map(String::as_str).collect();
    for st in &s.steps {
        let mut id = format!("`{}`", st.id);
        if s.fault_step.as_deref() == Some(st.id.as_str()) {
            id.push_str(" (fault)");
        }
        if critical.contains(st.id.as_str()) {
            id.push_str(" *");
        }
        let after = if st.after.is_empty() {
            "-".to_string()
        } else {
            st.after.join(", ")
        };
        let _ = writeln!(
            out,
            "| {id} | `{}` | {} | {} | {} | {} | {} |",
            cell(&st.action),
            cell(&after),
            or_dash(st.started_at_ms.map(offset)),
            or_dash(st.duration_ms.map(human)),
            st.attempts,
            outcome_label(st.outcome, st.started_at_ms.is_some())
        );
    }
    if !s.critical_path.is_empty() {
        out.push_str("\n`*` on the critical path.\n");
    }
    out.push('\n');
    // Each output read back once: (step, its output when worth showing).
    let detailed: Vec<_> = s
        .steps
        .iter()
        .filter_map(|st| {
            let output = Some(st.output.json()).filter(interesting);
            (st.error.is_some() || output.is_some() || !st.retries.is_empty())
                .then_some((st, output))
        })
        .collect();
    if detailed.is_empty() {
        return;
    }
    out.push_str("Details:\n\n");
    for (st, output) in detailed {
        let _ = writeln!(out, "- `{}`", st.id);
        if let Some(e) = &st.error {
            match st.error_kind {
                Some(k) => {
                    let _ = writeln!(out, "  - error ({k}): {}", truncate(e, MAX_INLINE));
                }
                None => {
                    let _ = writeln!(out, "  - error: {}", truncate(e, MAX_INLINE));
                }
            }
        }
        for r in &st.retries {
            let _ = writeln!(
                out,
                "  - attempt {} failed at {}: {} (retried after {})",
                r.attempt,
                offset(r.at_ms),
                truncate(&r.error, MAX_INLINE),
                human(r.backoff_ms)
            );
        }
        if let Some(o) = output {
            let _ = writeln!(out, "  - output: {}", readable(&o, 8, "; "));
        }
    }
    out.push('\n');
}

fn environment(out: &mut String, s: &RunSummary) {
    out.push_str("## Environment events\n\n");
    if s.environment_events.is_empty() {
        out.push_str("The environment reported no events.\n\n");
        return;
    }
    let mut events: Vec<_> = s.environment_events.iter().collect();
    events.sort_by_key(|e| e.at_ms);
    out.push_str("```text\n");
    for e in events {
        let _ = writeln!(out, "{:<9} {}: {}", offset(e.at_ms), e.component, e.message);
    }
    out.push_str("```\n\n");
}

/// Per-pod recovery timings (`pod_recovery` event details, from the Kubernetes and sim
/// backends): one row per pod an action took away, and the slowest.
fn pod_recovery(out: &mut String, s: &RunSummary) {
    // A drill wired to two views of one estate (the simulated backend and the Kubernetes API
    // it serves) hears of each recovery twice: one row per pod and replacement.
    let mut seen = std::collections::HashSet::new();
    let rows: Vec<&Json> = s
        .environment_events
        .iter()
        .filter_map(|e| e.detail.as_ref())
        .filter(|d| d["kind"] == "pod_recovery")
        .filter(|d| {
            seen.insert((
                d["namespace"].clone(),
                d["pod"].clone(),
                d["replacement"].clone(),
            ))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let text = |d: &Json, k: &str| cell(d[k].as_str().unwrap_or("-"));
    let ms = |d: &Json, k: &str| d[k].as_u64().map(human).unwrap_or_else(|| "-".into());
    out.push_str(
        "## Pod recovery

",
    );
    out.push_str(
        "| Pod | Node | Replacement | Scheduled after | Ready after |
|---|---|---|---|---|
",
    );
    for d in &rows {
        let _ = writeln!(
            out,
            "| {}/{} | {} | {} on {} | {} | {} |",
            text(d, "namespace"),
            text(d, "pod"),
            text(d, "node"),
            text(d, "replacement"),
            text(d, "replacement_node"),
            ms(d, "scheduled_after_ms"),
            ms(d, "ready_after_ms")
        );
    }
    if let Some(slow) = rows
        .iter()
        .max_by_key(|d| d["ready_after_ms"].as_u64().unwrap_or(0))
    {
        let _ = writeln!(
            out,
            "\nSlowest: `{}/{}` ({}), Ready {} after the kill.",
            text(slow, "namespace"),
            text(slow, "pod"),
            text(slow, "owner"),
            ms(slow, "ready_after_ms")
        );
    }
    out.push('\n');
}

fn rollbacks(out: &mut String, s: &RunSummary) {
    out.push_str("## Rollbacks\n\n");
    if s.rollbacks.is_empty() && s.owed_rollbacks.is_empty() {
        out.push_str("No rollbacks ran.\n\n");
        return;
    }
    if !s.rollbacks.is_empty() {
        out.push_str("| Step | Action | Result | Duration | Error |\n|---|---|---|---|---|\n");
        for r in &s.rollbacks {
            let result = match (r.ok, r.recovered) {
                (Some(true), false) => "ok",
                (Some(true), true) => "ok (by `firedrill recover`)",
                (Some(false), false) => "FAILED",
                (Some(false), true) => "FAILED (by `firedrill recover`)",
                (None, _) => "did not finish",
            };
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {result} | {} | {} |",
                r.step,
                cell(&r.action),
                or_dash(r.duration_ms.map(human)),
                cell(&or_dash(
                    r.error.as_deref().map(|e| truncate(e, MAX_INLINE))
                ))
            );
        }
        out.push('\n');
    }
    if !s.owed_rollbacks.is_empty() {
        out.push_str(
            "> **Warning: rollbacks owed.** The environment still carries these changes:\n>\n",
        );
        for o in &s.owed_rollbacks {
            let _ = writeln!(
                out,
                "> - `{}` (`{}`): {}",
                o.step,
                cell(&o.action),
                o.reason
            );
        }
        let _ = writeln!(
            out,
            ">\n> Run them with `firedrill recover {}` (`--dry-run` first shows what it would do), or revert them by hand, before the next drill.\n",
            s.run_id
        );
    }
}

fn lessons_section(out: &mut String, l: &LessonsRecord) {
    out.push_str("## Lessons learned\n\n### Summary\n\n");
    let _ = writeln!(
        out,
        "- Date: {}",
        l.date
            .map(|d| d.to_string())
            .unwrap_or_else(|| "unknown".into())
    );
    let _ = writeln!(out, "- Duration: {}", format(l.duration));
    let _ = writeln!(out, "- Severity: {}", l.severity);
    let _ = writeln!(out, "- Impact: {}\n", l.impact);
    out.push_str("### Timeline\n\n");
    for e in &l.timeline {
        let _ = writeln!(out, "- `{}` {}", offset(e.at_ms), e.what);
    }
    let _ = writeln!(out, "\n### Root cause\n\n{}\n", l.root_cause);
    let _ = writeln!(out, "### Resolution\n\n{}\n", l.resolution);
    out.push_str("### Action items\n\n");
    if l.action_items.is_empty() {
        out.push_str("None from this drill.\n\n");
    } else {
        out.push_str("| Id | Action | Owner | Due | Status |\n|---|---|---|---|---|\n");
        for a in &l.action_items {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                a.id,
                cell(&a.title),
                cell(&a.owner),
                or_dash(a.due.map(|d| d.to_string())),
                status_label(a.status)
            );
        }
        out.push('\n');
    }
    for (title, items) in [
        ("What went well", &l.went_well),
        ("What to improve", &l.to_improve),
        ("Prevention", &l.prevention),
    ] {
        let _ = writeln!(out, "### {title}\n");
        for i in items {
            let _ = writeln!(out, "- {i}");
        }
        out.push('\n');
    }
}

fn status_label(s: ActionStatus) -> &'static str {
    match s {
        ActionStatus::Open => "open",
        ActionStatus::Done => "done",
        ActionStatus::Wontfix => "wontfix",
    }
}

fn open_items_section(out: &mut String, items: &[OpenActionItem]) {
    out.push_str("## Open action items from earlier drills of this experiment\n\n");
    if items.is_empty() {
        out.push_str("None.\n");
        return;
    }
    out.push_str("| Run | Item | Owner | Due |\n|---|---|---|---|\n");
    for o in items {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            o.run_id,
            cell(&o.item.title),
            cell(&o.item.owner),
            or_dash(o.item.due.map(|d| d.to_string()))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;
    use crate::report::lessons::ActionItem;

    fn render(records: &[crate::engine::events::Record], open: &[OpenActionItem]) -> String {
        render_markdown(&RunSummary::from_records(records), open)
    }

    fn earlier_item() -> OpenActionItem {
        OpenActionItem {
            run_id: "20261001T090000Z-az-loss-0001".into(),
            item: ActionItem {
                id: "20261001T090000Z-az-loss-0001#1".into(),
                title: "Lower the route53 health-check interval".into(),
                owner: "team-payments".into(),
                due: chrono::NaiveDate::from_ymd_opt(2026, 10, 15),
                status: ActionStatus::Open,
            },
        }
    }

    macro_rules! redacted {
        ($name:expr, $report:expr) => {
            insta::with_settings!({filters => vec![
                (r"\d{8}T\d{6}Z-[a-z0-9-]+-[0-9a-f]{4}", "[run-id]"),
                (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", "[timestamp]"),
                (r"\d{4}-\d{2}-\d{2}", "[date]"),
            ]}, {
                insta::assert_snapshot!($name, $report);
            });
        };
    }

    #[test]
    fn pass_report_snapshot() {
        redacted!("pass_report", render(&fixtures::pass_run(), &[]));
    }

    #[test]
    fn missed_report_snapshot() {
        redacted!(
            "missed_report",
            render(&fixtures::missed_rto_run(), &[earlier_item()])
        );
    }

    #[test]
    fn pod_recovery_timings_are_tabled_with_the_slowest() {
        let mut summary = RunSummary::from_records(&fixtures::pass_run());
        assert!(!render_markdown(&summary, &[]).contains("## Pod recovery"));
        for (pod, sched, ready) in [
            ("api-1", 2000, 31_400),
            ("api-4", 2100, 38_900),
            ("api-4", 2100, 38_900),
        ] {
            summary
                .environment_events
                .push(crate::report::summary::EnvironmentEvent {
                    at_ms: 60_000 + ready,
                    component: "k8s prod".into(),
                    message: format!("pod web/{pod} replaced"),
                    detail: Some(serde_json::json!({
                        "kind": "pod_recovery", "namespace": "web", "pod": pod, "node": "node-a",
                        "owner": "deployment/api", "replacement": "api-x", "replacement_node": "node-b",
                        "killed_at_ms": 60_000, "scheduled_after_ms": sched, "ready_after_ms": ready,
                    })),
                });
        }
        let md = render_markdown(&summary, &[]);
        assert!(
            md.contains("| web/api-1 | node-a | api-x on node-b | 2s | 31.4s |\n| web/api-4 | node-a | api-x on node-b | 2.1s | 38.9s |\n\nSlowest: `web/api-4` (deployment/api), Ready 38.9s after the kill."),
            "{md}"
        );
    }

    #[test]
    fn missed_report_shows_the_miss_and_its_cause() {
        let md = render(&fixtures::missed_rto_run(), &[]);
        assert!(md.starts_with("# Drill report: Lose availability zone eu-west-1a\n"));
        assert!(md.contains("Verdict: **MISSED** (exit code 4)"));
        assert!(md.contains("| RTO | 9m10s | 5m | ±10s | MISSED |"), "{md}");
        assert!(md.contains("| RPO | 20s | 1m | ±5s | met |"));
        assert!(md.contains("exceeded by 4m10s"));
        assert!(
            md.contains("recovery was gated by probe `dns-serves-dr`, which passed last at +9m42s")
        );
        assert!(
            md.contains("The longest gap, 6m25s between rds orders-db"),
            "{md}"
        );
        assert!(md.contains("**TO COMPLETE (team-payments):** _"));
        let sections: Vec<usize> = [
            "## Verdict",
            "## Timeline",
            "## Steady state",
            "## Steps",
            "## Environment events",
            "## Rollbacks",
            "## Lessons learned",
            "## Open action items from earlier drills",
        ]
        .iter()
        .map(|h| md.find(h).unwrap_or_else(|| panic!("missing {h}")))
        .collect();
        assert!(
            sections.windows(2).all(|w| w[0] < w[1]),
            "sections in order"
        );
    }

    #[test]
    fn canary_figures_are_listed_under_the_verdict() {
        let mut s = RunSummary::from_records(&fixtures::pass_run());
        let rpo = s.measurements.iter_mut().find(|m| m.name == "rpo").unwrap();
        rpo.canary = Some(crate::engine::events::CanaryFigures {
            write_server: "127.0.0.1:5432/app".into(),
            read_server: "127.0.0.1:5433/app".into(),
            table: "firedrill_canary".into(),
            interval_ms: 200,
            acknowledged: 40,
            failed: 12,
            surviving: 31,
            lost_acknowledged: 9,
            lost_ranges: "17-25".into(),
            newest_surviving_seq: Some(16),
            newest_surviving_at: None,
            rpo_ms: Some(1800),
            skew_ms: -3,
            skew_rtt_ms: 1,
            outage_from_ms: Some(5000),
            outage_ms: Some(2400),
            outage_ended: false,
        });
        let md = render_markdown(&s, &[]);
        assert!(md.contains("Data-loss canary: written to `firedrill_canary` on 127.0.0.1:5432/app every 200ms, read back on 127.0.0.1:5433/app."), "{md}");
        assert!(
            md.contains("| Acknowledged but lost | 9 (#17-25) |"),
            "{md}"
        );
        assert!(
            md.contains("| Write outage | 2.4s from +5s (still failing when the canary stopped) |"),
            "{md}"
        );
        assert!(
            md.contains("| Server clock skew | -3 ms (round trip 1 ms) |"),
            "{md}"
        );
    }

    #[test]
    fn never_recovered_is_shown_against_the_deadline() {
        let mut s = RunSummary::from_records(&fixtures::missed_rto_run());
        let rto = s.measurements.iter_mut().find(|m| m.name == "rto").unwrap();
        rto.measured_ms = None;
        rto.deadline_ms = Some(1_800_000);
        let md = render_markdown(&s, &[]);
        assert!(
            md.contains("| RTO | > 30m (deadline) | 5m | ±10s | MISSED |"),
            "{md}"
        );
    }

    #[test]
    fn aborted_report_warns_about_owed_rollbacks() {
        let md = render(&fixtures::aborted_run(), &[]);
        assert!(md.contains("Verdict: **ROLLBACK FAILED** (exit code 6)"));
        assert!(md.contains("**Aborted** at +2m: availability below 0.8 for 1m"));
        assert!(md.contains(
            "> **Warning: rollbacks owed.** The environment still carries these changes:"
        ));
        assert!(
            md.contains("> - `fail-az` (`sim.restore_zone`): second interrupt: stopped at once")
        );
        assert!(md.contains("| `promote-dr` | `dns.failback` | FAILED | 14s | route53 API returned 503 \\| throttled |"), "{md}");
        assert!(md.contains("Fix the rollback of step `promote-dr`"));
    }

    #[test]
    fn unfinished_report_says_the_process_died() {
        let md = render(&fixtures::partial_run(), &[]);
        assert!(md.contains("**UNFINISHED**"));
        assert!(md.contains("the process died"));
        assert!(md.contains("running when the journal ends"));
        assert!(md.contains("    section Steps\n"));
    }

    #[test]
    fn mermaid_text_and_ids_are_sanitized() {
        assert_eq!(mermaid_id("db:primary#1"), "db_primary_1");
        assert_eq!(mermaid_id("fail-az"), "fail-az");
        let t = mermaid_text("a: b # c; d");
        assert!(
            !t.contains(':') && !t.contains('#') && !t.contains(';'),
            "{t}"
        );
    }

    #[test]
    fn long_output_is_truncated() {
        let mut s = RunSummary::from_records(&fixtures::pass_run());
        s.steps[0].output = serde_json::json!({"blob": "x".repeat(1000)}).into();
        let md = render_markdown(&s, &[]);
        let line = md.lines().find(|l| l.contains("output: blob: ")).unwrap();
        assert!(line.chars().count() < 330, "{}", line.len());
        assert!(line.contains('…'));
    }
}
