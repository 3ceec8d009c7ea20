//! `firedrill runs`: list past runs.

use super::{Failure, OutputArg, RunsArgs, internal};
use crate::exit;
use crate::report::journal;

pub(super) fn runs(a: RunsArgs) -> Result<i32, Failure> {
    let list = journal::list_runs(&a.runs.runs_dir).map_err(|e| internal(e.to_string()))?;
    if a.output == OutputArg::Json {
        let rows: Vec<serde_json::Value> = list.iter().map(|r| serde_json::json!({"id": r.id, "experiment": r.experiment, "started": r.started, "status": r.status(), "exit_code": r.exit_code, "dir": r.dir})).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Ok(exit::PASS);
    }
    if list.is_empty() {
        println!("no runs in {}", a.runs.runs_dir.display());
        return Ok(exit::PASS);
    }
    println!(
        "{:<44} {:<20} {:<22} STATUS",
        "RUN", "EXPERIMENT", "STARTED"
    );
    for r in list {
        let started = r
            .started
            .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_default();
        println!(
            "{:<44} {:<20} {:<22} {}",
            r.id,
            r.experiment,
            started,
            r.status()
        );
        let owed = journal::read_journal(&r.dir.join(journal::JOURNAL_FILE))
            .map(|j| crate::engine::recover::plan(&j.records).owed)
            .unwrap_or_default();
        if !owed.is_empty() {
            let steps: Vec<&str> = owed.iter().map(|o| o.step.as_str()).collect();
            println!(
                "  owes {} rollback(s) ({}): run `firedrill recover {}`",
                owed.len(),
                steps.join(", "),
                r.id
            );
        }
    }
    Ok(exit::PASS)
}
