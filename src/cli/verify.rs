//! `firedrill verify`: check a run's evidence. Every journal line carries a SHA-256 hash chained
//! to the line before; the summary names the final hash. A changed, removed or inserted line
//! breaks the chain; lines cut from the end are caught by the summary's final hash.

use super::{Failure, VerifyArgs};
use crate::exit;
use crate::report::journal;

pub(super) fn verify(a: VerifyArgs) -> Result<i32, Failure> {
    let bad = |e: journal::JournalError| Failure {
        code: exit::INVALID_INPUT,
        message: format!("error: {e}"),
    };
    let entry = journal::resolve_run(&a.runs.runs_dir, &a.run).map_err(bad)?;
    let path = entry.dir.join(journal::JOURNAL_FILE);
    let found = journal::verify_journal(&path).map_err(bad)?;
    let summary = journal::read_summary(&entry.dir).map_err(bad)?;
    let pinned = summary
        .as_ref()
        .and_then(|s| s.integrity.as_ref())
        .and_then(|i| i.final_sha256.clone());
    let name = path.display();
    if !found.chained {
        println!(
            "{name}: {} records, not hash-chained (written before firedrill chained journals): nothing to verify",
            found.records
        );
        return Ok(exit::PASS);
    }
    if let Some(b) = &found.broken {
        println!(
            "{name}: DOES NOT VERIFY: {b}\n  {} records verify before it",
            found.records
        );
        return Ok(exit::EVIDENCE_BROKEN);
    }
    let last = found.final_sha256.clone().unwrap_or_default();
    if let Some(p) = &pinned
        && *p != last
    {
        println!(
            "{name}: DOES NOT VERIFY: the chain is intact over {} records, but it ends at {last} while summary.json names {p}: records were removed from the end (or the summary belongs to another journal)",
            found.records
        );
        return Ok(exit::EVIDENCE_BROKEN);
    }
    println!(
        "{name}: verified: {} records, SHA-256 chain ending {last}{}{}",
        found.records,
        if pinned.is_some() {
            ", as summary.json names it"
        } else {
            " (no summary names a final hash: lines cut from the end would not show)"
        },
        if found.torn_tail {
            "; the last line was cut short (the process died while writing it) and is not counted"
        } else {
            ""
        }
    );
    Ok(exit::PASS)
}
