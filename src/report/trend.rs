//! An experiment's figures across its runs: the report's trend section (a table and a Mermaid
//! xychart of the RTO) and the terminal's sparklines. What-if runs are shown, marked, and never
//! mixed into the sparkline of real runs.

use crate::engine::events::VerdictKind;
use crate::lang::duration::format_ms as human;
use crate::report::summary::{RunSummary, verdict_label};
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// How many earlier runs a trend shows.
pub const WINDOW: usize = 10;

/// One run's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub run_id: String,
    pub started: Option<DateTime<Utc>>,
    pub verdict: Option<VerdictKind>,
    pub what_if: bool,
    /// `rto`, `rpo`, `mttd` → measured ms (`None`: not reached or not measured).
    pub figures: Vec<(String, Option<u64>)>,
}

impl Point {
    pub fn of(s: &RunSummary) -> Point {
        Point {
            run_id: s.run_id.clone(),
            started: s.started,
            verdict: s.verdict.as_ref().map(|v| v.kind),
            what_if: !s.environment_sets.is_empty(),
            figures: s
                .measurements
                .iter()
                .map(|m| (m.name.clone(), m.measured_ms))
                .collect(),
        }
    }

    fn figure(&self, name: &str) -> Option<u64> {
        self.figures
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| *v)
    }
}

/// The sparkline of one figure over the real (not what-if) runs, oldest first, this run last.
pub fn sparkline(name: &str, this: &Point, history: &[Point]) -> String {
    let values: Vec<Option<u64>> = history
        .iter()
        .filter(|p| !p.what_if)
        .chain(std::iter::once(this))
        .map(|p| p.figure(name))
        .collect();
    crate::report::gameday::sparkline(&values)
}

/// The trend section of a run's report; `history` oldest first, without this run.
pub fn markdown(this: &Point, history: &[Point]) -> String {
    let mut out = String::from("## Trend\n\n");
    if history.is_empty() {
        out.push_str(
            "First run of this experiment in the runs directory: nothing to compare with yet.\n",
        );
        return out;
    }
    let names: Vec<&str> = ["rto", "rpo", "mttd"]
        .into_iter()
        .filter(|n| {
            this.figures
                .iter()
                .chain(history.iter().flat_map(|h| h.figures.iter()))
                .any(|(f, _)| f == n)
        })
        .collect();
    let _ = writeln!(
        out,
        "This run against the {} run(s) before it (oldest first; what-if runs, with environment overrides, are marked and left out of the sparklines):\n",
        history.len()
    );
    out.push_str("| Run | Started | Verdict |");
    for n in &names {
        let _ = write!(out, " {} |", n.to_uppercase());
    }
    out.push_str("\n|---|---|---|");
    for _ in &names {
        out.push_str("---|");
    }
    out.push('\n');
    for p in history.iter().chain(std::iter::once(this)) {
        let _ = write!(
            out,
            "| `{}`{}{} | {} | {} |",
            p.run_id,
            if p.what_if { " (what-if)" } else { "" },
            if std::ptr::eq(p, this) {
                " (this run)"
            } else {
                ""
            },
            p.started
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "-".into()),
            p.verdict.map(verdict_label).unwrap_or("UNFINISHED")
        );
        for n in &names {
            let _ = write!(
                out,
                " {} |",
                p.figure(n).map(human).unwrap_or_else(|| "-".into())
            );
        }
        out.push('\n');
    }
    out.push('\n');
    for n in &names {
        let _ = writeln!(
            out,
            "- {}: `{}`",
            n.to_uppercase(),
            sparkline(n, this, history)
        );
    }
    let real: Vec<&Point> = history
        .iter()
        .filter(|p| !p.what_if)
        .chain(std::iter::once(this))
        .collect();
    let rto: Vec<(String, u64)> = real
        .iter()
        .filter_map(|p| {
            Some((
                p.started?.format("%m-%d %H:%M").to_string(),
                p.figure("rto")?,
            ))
        })
        .collect();
    if rto.len() >= 2 {
        let labels: Vec<String> = rto.iter().map(|(l, _)| format!("\"{l}\"")).collect();
        let values: Vec<String> = rto
            .iter()
            .map(|(_, v)| format!("{:.1}", *v as f64 / 1000.0))
            .collect();
        let _ = writeln!(
            out,
            "\n```mermaid\nxychart-beta\n    title \"RTO across runs (seconds)\"\n    x-axis [{}]\n    y-axis \"seconds\"\n    line [{}]\n```",
            labels.join(", "),
            values.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, rto: Option<u64>, what_if: bool) -> Point {
        Point {
            run_id: id.into(),
            started: Some(chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 1, 10, 0, 0).unwrap()),
            verdict: Some(VerdictKind::Pass),
            what_if,
            figures: vec![("rto".into(), rto)],
        }
    }

    #[test]
    fn what_ifs_are_marked_and_kept_out_of_the_sparkline() {
        let history = vec![
            p("a", Some(150_000), false),
            p("b", Some(1_200_000), true),
            p("c", Some(160_000), false),
        ];
        let this = p("d", Some(400_000), false);
        assert_eq!(sparkline("rto", &this, &history), "▁▁█");
        let md = markdown(&this, &history);
        assert!(md.contains("| `b` (what-if) |"), "{md}");
        assert!(md.contains("| `d` (this run) |"), "{md}");
        assert!(md.contains("line [150.0, 160.0, 400.0]"), "{md}");
        assert!(markdown(&this, &[]).contains("First run"));
    }
}
