//! The typed events the executor emits. Every output (journal, progress display, markdown report,
//! JSON summary, lessons record) is a consumer of this stream, and a run can be re-rendered from
//! its journal alone.
//!
//! Invariants: events are append-only and self-describing (they carry the names, objectives and
//! parameters a report needs); `Record::seq` increases by one per event; times are the run's clock
//! (virtual time on the simulated estate, wall time otherwise), so `elapsed_ms` is what durations
//! are computed from, never the difference of two `at` strings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The journal schema version; bumped on incompatible changes.
pub const JOURNAL_VERSION: u32 = 1;

/// The environment a run used, as `firedrill recover` needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentDoc {
    /// The file as the user named it.
    pub file: String,
    pub source: String,
    #[serde(default)]
    pub sets: Vec<(String, String)>,
}

/// What the operator overrode for this run (`--var`, `--seed`); the environment's `--set`
/// overrides are in [`EnvironmentDoc::sets`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty() && self.seed.is_none()
    }
}

/// A secret by name and environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    pub name: String,
    pub env: String,
}

/// How a started step is undone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RollbackRef {
    /// The step's action reverted with its output.
    Revert,
    /// An explicit action (`rollback: {action, with}`), with its resolved parameters.
    Action { action: String, with: Json },
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// Run clock time of the event.
    pub at: DateTime<Utc>,
    /// Milliseconds since the run started (the run clock).
    pub elapsed_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// Phases of a drill, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Steady-state hypothesis before the fault: a gate.
    Before,
    /// The method: the step DAG, with the during-hypothesis and recovery monitors.
    Method,
    /// Steady-state verification after the method.
    After,
    /// Rollbacks.
    Rollback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Succeeded,
    Failed,
    TimedOut,
    /// Cancelled by an abort or an interrupt while running.
    Cancelled,
    /// Never started because the run stopped first.
    Skipped,
}

/// How a run ended; the exit code follows from it (see `crate::exit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// Steady before, recovered within RTO, data loss within RPO, after-check met, rollbacks ok.
    Pass,
    /// The before-hypothesis was not met: nothing was injected.
    NotSteady,
    /// An objective was missed, the after-check failed, or a step failed with on_failure: continue.
    Missed,
    /// A step failure, an abort condition or an interrupt stopped the drill.
    Aborted,
    /// A rollback failed (or is still owed): the environment may not be back to normal.
    RollbackFailed,
}

/// A static description of one step, as planned (for reports rendered from the journal alone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub id: String,
    pub action: String,
    pub after: Vec<String>,
    pub wave: usize,
    pub critical: bool,
    pub has_rollback: bool,
    pub description: Option<String>,
}

/// A probe as defined (for reports rendered from the journal alone: what each probe measures).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedProbe {
    pub name: String,
    /// The probe's vocabulary name (`service.metrics`, `k8s.pods`, ...).
    pub call: String,
    /// Its checked parameters (secrets masked like every event).
    pub with: Json,
}

/// Objectives in force for the run, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectivesInfo {
    pub rto_ms: u64,
    pub rpo_ms: u64,
    pub mttd_ms: Option<u64>,
}

/// One measured figure against its objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// `rto`, `rpo` or `mttd`.
    pub name: String,
    /// The measured value; `None` when it was never reached before the deadline.
    pub measured_ms: Option<u64>,
    pub objective_ms: Option<u64>,
    /// Resolution of the figure (the poll interval that produced it).
    pub resolution_ms: u64,
    /// When `measured_ms` is `None`: the deadline it was not reached by.
    pub deadline_ms: Option<u64>,
    pub met: bool,
    /// One line of explanation, e.g. "fault at +2m, all 2 recovery probes passing from +9m10s".
    pub detail: String,
    /// RTO: when the recovery probes were first seen failing, after the fault started (at the
    /// measurement's resolution). `None` when they never failed or for other figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact_ms: Option<u64>,
    /// RTO: the recovery probes never failed, so there was nothing to recover from and no RTO.
    /// `met` says whether that is acceptable (false under `recovery.expect_impact`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_impact: bool,
    /// RPO measured by the data-loss canary: what it wrote, what survived, what was lost.
    /// Absent for other figures and in journals written before canaries existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryFigures>,
}

/// The data-loss canary's figures (`recovery.data_loss.canary`). Times on the run clock; the
/// server's commit times are mapped onto it by the skew measured when the canary started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryFigures {
    /// `host:port/dbname` the canaries were written to and read back from.
    pub write_server: String,
    pub read_server: String,
    pub table: String,
    pub interval_ms: u64,
    /// Writes the write server acknowledged, and writes that failed or timed out.
    pub acknowledged: u64,
    pub failed: u64,
    /// This run's canaries found on the read server after recovery.
    pub surviving: u64,
    /// Acknowledged writes missing on the read server, and their sequence numbers as ranges
    /// (`41-57, 60`).
    pub lost_acknowledged: u64,
    pub lost_ranges: String,
    /// The newest surviving acknowledged canary committed at or before the fault.
    pub newest_surviving_seq: Option<u64>,
    pub newest_surviving_at: Option<DateTime<Utc>>,
    /// Fault time minus `newest_surviving_at`.
    pub rpo_ms: Option<u64>,
    /// Server clock minus firedrill's (milliseconds), and the round trip it was measured over.
    pub skew_ms: i64,
    pub skew_rtt_ms: u64,
    /// The fault's write outage as the canary saw it: from the first write failing at or after
    /// the fault's start (run clock) to the first acknowledged write after it, or to the
    /// canary's stop when none was (`outage_ended` false). Failures before the fault are only
    /// counted in `failed`.
    pub outage_from_ms: Option<u64>,
    pub outage_ms: Option<u64>,
    pub outage_ended: bool,
}

impl Measurement {
    /// The result column of reports and the terminal: `met`, `MISSED`, or, when the recovery
    /// probes never failed, `no impact` (acceptable) or `DEVIATED` (`recovery.expect_impact`).
    pub fn result_word(&self) -> &'static str {
        match (self.no_impact, self.met) {
            (true, true) => "no impact",
            (true, false) => "DEVIATED",
            (false, true) => "met",
            (false, false) => "MISSED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "RunStarted is emitted once per run; boxing it would only complicate every match"
)]
pub enum Event {
    RunStarted {
        journal_version: u32,
        run_id: String,
        experiment: String,
        title: Option<String>,
        description: Option<String>,
        owner: Option<String>,
        tags: Vec<String>,
        file: String,
        environment: String,
        backend: String,
        /// `virtual` (simulated estate on a paused clock) or `wall`.
        clock: String,
        seed: Option<u64>,
        variables: Vec<(String, String)>,
        objectives: ObjectivesInfo,
        steps: Vec<PlannedStep>,
        critical_path: Vec<String>,
        /// Id of the fault step that starts the recovery clock.
        fault_step: Option<String>,
        dry_run: bool,
        firedrill_version: String,
        /// What `firedrill recover` needs to reach the environment again: its document (the
        /// file's text; absent for the built-in estate) and the `--set` overrides applied.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        environment_doc: Option<EnvironmentDoc>,
        /// The secrets the drill used, by name and environment variable (never their values):
        /// `recover` reads them again from the environment.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        secrets: Vec<SecretRef>,
        /// `--var` and `--seed` given for this run.
        #[serde(default, skip_serializing_if = "Overrides::is_empty")]
        overrides: Overrides,
        /// The probes, as defined (what each one measures).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        probes: Vec<PlannedProbe>,
    },
    PhaseStarted {
        phase: Phase,
    },
    /// One probe evaluation. `value` is the probe's output, `ok` whether its tolerance held.
    ProbeChecked {
        phase: Phase,
        probe: String,
        ok: bool,
        value: Json,
        message: String,
    },
    HypothesisResult {
        phase: Phase,
        met: bool,
        failed: Vec<String>,
    },
    StepStarted {
        step: String,
        action: String,
        attempt: u32,
        /// The step's resolved parameters (first attempt only; secrets masked).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<Json>,
        /// How the step is undone (first attempt only; absent when it has no rollback).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rollback: Option<RollbackRef>,
    },
    StepRetrying {
        step: String,
        attempt: u32,
        error: String,
        backoff_ms: u64,
    },
    StepFinished {
        step: String,
        outcome: StepOutcome,
        attempts: u32,
        duration_ms: u64,
        output: Json,
        error: Option<String>,
        /// What kind of failure `error` is (denied, not found, timed out...); absent on success
        /// and in journals written before kinds existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_kind: Option<crate::backend::ErrorKind>,
    },
    /// The fault step started: the recovery clock runs from here.
    FaultInjected {
        step: String,
    },
    /// A during-hypothesis probe out of tolerance (recorded; aborts only when sustained).
    Deviation {
        probe: String,
        value: Json,
        message: String,
    },
    /// An abort condition held for its whole window, a step failed, or an interrupt arrived.
    AbortTriggered {
        reason: String,
    },
    Interrupted {
        signal: String,
        /// 1 for the first (graceful) interrupt, 2 for the second (stop at once).
        count: u32,
    },
    /// Something the environment did on its own (e.g. the simulated estate's controllers),
    /// reported by the provider; `at_ms` is run-clock milliseconds.
    EnvironmentEvent {
        at_ms: u64,
        component: String,
        message: String,
        /// Structured detail (e.g. `{"kind": "pod_recovery", ...}`); absent for plain events.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<Json>,
    },
    /// The detection probe passed for the first time; `after_ms` is since the fault's start. For
    /// a `prometheus.alert` detection probe it is the alert's own firing moment (read back from
    /// the server, skew-corrected), which may precede the poll that journaled it.
    Detected {
        probe: String,
        after_ms: u64,
    },
    /// A recovery probe's first pass in the streak that counted (for bottleneck analysis).
    RecoveryProbePassing {
        probe: String,
        after_ms: u64,
    },
    /// The first recovery poll after the fault started in which a recovery probe failed: the
    /// fault's impact became visible (resolution: the recovery interval).
    ImpactObserved {
        after_ms: u64,
        failing: Vec<String>,
    },
    /// The recovery probes never failed: by the end of the impact window (`window_ms` after the
    /// fault started) nothing was hurt, so there was no recovery to time. `expected`: the
    /// experiment said the impact must show (`recovery.expect_impact`).
    NoImpactObserved {
        window_ms: u64,
        polls: u32,
        expected: bool,
    },
    /// Every recovery probe passed `consecutive` polls in a row.
    Recovered {
        after_ms: u64,
    },
    RecoveryDeadlineExceeded {
        deadline_ms: u64,
        failing: Vec<String>,
    },
    DataLossMeasured {
        probe: String,
        /// Time of the newest write that survived (run clock).
        newest_write: Option<DateTime<Utc>>,
        loss_ms: Option<u64>,
    },
    RollbackStarted {
        step: String,
        action: String,
        /// Run by `firedrill recover` after the drill's process died.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        recovered: bool,
    },
    RollbackFinished {
        step: String,
        ok: bool,
        duration_ms: u64,
        error: Option<String>,
    },
    /// A rollback that did not run (second interrupt, or --rollback never): the environment
    /// still carries this step's change.
    RollbackOwed {
        step: String,
        action: String,
        reason: String,
    },
    RunFinished {
        verdict: VerdictKind,
        exit_code: i32,
        measurements: Vec<Measurement>,
        reasons: Vec<String>,
    },
}
