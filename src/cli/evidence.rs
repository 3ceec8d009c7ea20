//! `firedrill evidence <playbook>...`: each checklist control the playbooks name, with its newest
//! counting run, its age and its status (fresh, expiring, stale, failing, never run), from the
//! runs directory. A run's verdict is folded from its journal, which must verify (a changed
//! `summary.json` changes nothing). Exit 10 when a control is stale, failing or never run, so a
//! launch pipeline can gate on it.

use super::gameday::{LoadedDrill, load_drills, load_playbook};
use super::{EvidenceArgs, Failure, OutputArg, internal};
use crate::exit;
use crate::lang::playbook::Playbook;
use crate::report::evidence::{self, ControlSpec, ControlStatus, RunFacts};
use crate::report::journal;
use crate::report::summary::RunSummary;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::path::Path;

pub(super) fn evidence(a: EvidenceArgs) -> Result<i32, Failure> {
    let now = match &a.at {
        None => Utc::now(),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| Failure {
                code: exit::INVALID_INPUT,
                message: format!("error: --at `{s}`: {e}\n  = help: write an RFC 3339 time, e.g. 2026-12-01T14:00:00Z"),
            })?,
    };
    let mut all = Vec::new();
    for p in &a.playbooks {
        let (pb, source) = load_playbook(p)?;
        if pb.controls.is_empty() {
            eprintln!(
                "warning: {}: the playbook names no `controls:`",
                p.display()
            );
        }
        let drills = load_drills(&pb, &source)?;
        all.extend(control_statuses(&pb, &drills, &a.runs.runs_dir, now)?);
    }
    let blocked = all.iter().filter(|c| c.status.blocks()).count();
    if a.output == OutputArg::Json {
        let doc = serde_json::json!({ "at": now, "controls": all, "blocked": blocked });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| internal(e.to_string()))?
        );
    } else {
        println!(
            "Evidence as of {} (runs in {}):\n",
            now.format("%Y-%m-%d %H:%M UTC"),
            a.runs.runs_dir.display()
        );
        print!("{}", evidence::render_markdown(&all));
        println!(
            "\n{} of {} control(s) evidenced{}",
            all.len() - blocked,
            all.len(),
            if blocked > 0 {
                format!("; {blocked} stale, failing or never run")
            } else {
                String::new()
            }
        );
    }
    Ok(if blocked > 0 {
        exit::EVIDENCE_STALE
    } else {
        exit::PASS
    })
}

/// The playbook's controls at `now`, from the runs of its drills' experiments.
pub(super) fn control_statuses(
    pb: &Playbook,
    drills: &[LoadedDrill],
    runs_dir: &Path,
    now: DateTime<Utc>,
) -> Result<Vec<ControlStatus>, Failure> {
    if pb.controls.is_empty() {
        return Ok(Vec::new());
    }
    let specs: Vec<ControlSpec> = pb
        .controls
        .iter()
        .map(|c| ControlSpec {
            control: c.control.clone(),
            drills: c
                .drills
                .iter()
                .map(|&i| {
                    (
                        pb.drills[i].name.value.clone(),
                        drills[i].experiment.metadata.name.clone(),
                    )
                })
                .collect(),
            objectives: c.objectives.iter().map(|o| o.name().to_string()).collect(),
            max_age: c.max_age,
            warn_before: c.warn_before,
            environment: c.environment.clone(),
        })
        .collect();
    let wanted: HashSet<&str> = specs
        .iter()
        .flat_map(|s| s.drills.iter().map(|d| d.1.as_str()))
        .collect();
    let entries = journal::list_runs(runs_dir).map_err(|e| internal(e.to_string()))?;
    let mut facts = Vec::new();
    for e in entries
        .iter()
        .filter(|e| wanted.contains(e.experiment.as_str()))
    {
        if let Some(f) = run_facts(&e.dir) {
            facts.push(f);
        }
    }
    Ok(evidence::evaluate(&specs, &facts, now))
}

/// A run's facts folded from its journal, with whether the journal verifies (its chain, and its
/// end against the hash its summary names). `None` when it has no readable journal.
fn run_facts(dir: &Path) -> Option<RunFacts> {
    let path = dir.join(journal::JOURNAL_FILE);
    let read = journal::read_journal(&path).ok()?;
    let s = RunSummary::from_records(&read.records);
    let integrity = journal::verify_journal(&path).ok()?;
    let pinned = journal::read_summary(dir)
        .ok()
        .flatten()
        .and_then(|s| s.integrity)
        .and_then(|i| i.final_sha256);
    let broken = if !integrity.chained {
        Some("not hash-chained".to_string())
    } else if let Some(b) = integrity.broken {
        Some(b)
    } else if pinned.is_some() && pinned != integrity.final_sha256 {
        Some("records were removed from its end".into())
    } else {
        None
    };
    Some(RunFacts {
        run_id: s.run_id.clone(),
        experiment: s.experiment.clone(),
        environment: s.environment.clone(),
        backend: s.backend.clone(),
        started: s.started?,
        verdict: s.verdict.as_ref().map(|v| v.kind),
        measurements: s.measurements.clone(),
        what_if: !s.environment_sets.is_empty(),
        broken,
    })
}
