//! `firedrill report`: re-render a run's report from its journal alone.

use super::{Failure, ReportArgs, ReportOutput, internal};
use crate::exit;
use crate::report::{journal, lessons, markdown, summary::RunSummary};

pub(super) fn report(a: ReportArgs) -> Result<i32, Failure> {
    let entry = journal::resolve_run(&a.runs.runs_dir, &a.run).map_err(|e| Failure {
        code: exit::INVALID_INPUT,
        message: format!("error: {e}"),
    })?;
    let read = journal::read_journal(&entry.dir.join("journal.jsonl")).map_err(|e| Failure {
        code: exit::INVALID_INPUT,
        message: format!("error: {e}"),
    })?;
    if read.truncated_tail {
        eprintln!(
            "warning: the journal's last line was incomplete (the process died mid-write); it was skipped"
        );
    }
    let mut summary = RunSummary::from_records(&read.records);
    summary.journal_truncated_tail = read.truncated_tail;
    let integrity =
        journal::verify_journal(&entry.dir.join("journal.jsonl")).map_err(|e| Failure {
            code: exit::INVALID_INPUT,
            message: format!("error: {e}"),
        })?;
    if let Some(b) = &integrity.broken {
        eprintln!(
            "warning: the journal does not verify ({b}): the report below is rendered from altered evidence"
        );
    }
    summary.integrity = Some(integrity);
    let text = if a.output == ReportOutput::Json {
        serde_json::to_string_pretty(&summary).map_err(|e| internal(e.to_string()))?
    } else if a.output == ReportOutput::Junit {
        crate::report::junit::render_run(&summary)
    } else {
        let open = lessons::open_items(
            &a.lessons.lessons_dir,
            &summary.experiment,
            Some(&summary.run_id),
        )
        .map_err(|e| internal(e.to_string()))?;
        let mut text = markdown::render_markdown(&summary, &open);
        text.push('\n');
        text.push_str(&super::run::trend_section(&summary, &entry.dir));
        text
    };
    match a.out {
        Some(p) => std::fs::write(&p, text)
            .map_err(|e| internal(format!("cannot write {}: {e}", p.display())))?,
        None => println!("{text}"),
    }
    Ok(exit::PASS)
}
