//! Exit codes, in one place. Documented in the README; scripts and CI gates rely on them.

use crate::engine::events::VerdictKind;

/// The drill passed: steady before, recovered within RTO, data loss within RPO, after-check
/// met, rollbacks succeeded.
pub const PASS: i32 = 0;
/// Something went wrong inside firedrill (a bug, an unwritable journal, ...).
pub const INTERNAL: i32 = 1;
/// Invalid input: malformed or invalid experiment/environment, bad flags. Nothing ran.
pub const INVALID_INPUT: i32 = 2;
/// The steady-state hypothesis did not hold before the fault: nothing was injected.
pub const NOT_STEADY: i32 = 3;
/// An objective (RTO, RPO, MTTD) was missed, the after-check failed, or a step failed with
/// `on_failure: continue`.
pub const MISSED: i32 = 4;
/// The drill was aborted: a step failed, an abort condition held, or it was interrupted.
pub const ABORTED: i32 = 5;
/// A rollback failed or is still owed: the environment may still carry the fault.
pub const ROLLBACK_FAILED: i32 = 6;
/// Preflight failed: a backend is unreachable, access is denied, or a target does not exist.
/// Nothing ran.
pub const PREFLIGHT: i32 = 7;
/// Another drill holds the environment (or left its lock behind when its process died).
/// Nothing ran.
pub const LOCKED: i32 = 8;
/// `firedrill verify`: the journal's hash chain is broken (a line was changed, removed or
/// inserted), or it no longer ends where its summary says.
pub const EVIDENCE_BROKEN: i32 = 9;
/// `firedrill evidence`: a checklist control is stale, failing or has never been run.
pub const EVIDENCE_STALE: i32 = 10;

pub fn for_verdict(v: VerdictKind) -> i32 {
    match v {
        VerdictKind::Pass => PASS,
        VerdictKind::NotSteady => NOT_STEADY,
        VerdictKind::Missed => MISSED,
        VerdictKind::Aborted => ABORTED,
        VerdictKind::RollbackFailed => ROLLBACK_FAILED,
    }
}

/// The table printed by `--help` and the README.
pub const TABLE: &str = "Exit codes:
  0  pass: steady before, recovered within RTO, data loss within RPO, after-check met, rollbacks ok
  1  internal error
  2  invalid input (nothing ran)
  3  steady state not met before the fault (nothing was injected)
  4  objective missed or deviated (RTO/RPO/MTTD missed, after-check failed, a step failed with on_failure: continue)
  5  aborted (step failure, abort condition, Ctrl-C/SIGTERM)
  6  rollback failed or still owed
  7  preflight failed: backend unreachable, access denied or target missing (nothing ran)
  8  environment locked: another drill holds it, or a dead drill's lock is left (nothing ran)
  9  verify: the journal does not verify (changed, removed or inserted lines)
 10  evidence: a checklist control is stale, failing or never run

A game day (`gameday run`) exits 0 on GO; on NO-GO with its most serious drill outcome (6, 5,
1, 8, 7, 2, 3, 4 in that order), or 4 when every drill passed but a go/no-go criterion did not hold.";
