//! Fold the event stream into a [`RunSummary`]: the `summary.json` written at the end of a run,
//! the `--output json` document, and the input of the markdown report and lessons record.
//!
//! Pure: no IO. Works on partial journals (a process that died mid-run): whatever was recorded is
//! summarised, and `verdict` stays `None` when there is no `RunFinished`.
//!
//! Offsets (`*_at_ms`) are run-clock milliseconds since the run started. The `after_ms` fields of
//! `Detected`, `RecoveryProbePassing` and `Recovered` are read as milliseconds since the fault, so
//! their run offsets are `fault offset + after_ms` (or the event's own offset if no fault was
//! recorded).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::engine::events::{
    Event, Measurement, ObjectivesInfo, Phase, Record, StepOutcome, VerdictKind,
};
use crate::lang::compact::CompactJson;

/// Everything a report needs about one run, folded from its journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub experiment: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub file: String,
    pub environment: String,
    pub backend: String,
    pub clock: String,
    pub seed: Option<u64>,
    pub variables: Vec<(String, String)>,
    /// The `--set` overrides applied to the environment: a run with any is a what-if, not
    /// evidence of the environment as it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_sets: Vec<(String, String)>,
    /// `--var` and `--seed` given for the run.
    #[serde(
        default,
        skip_serializing_if = "crate::engine::events::Overrides::is_empty"
    )]
    pub overrides: crate::engine::events::Overrides,
    /// The probes as defined (what each measures), for the post-mortem's causal chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_defs: Vec<crate::engine::events::PlannedProbe>,
    pub objectives: Option<ObjectivesInfo>,
    pub journal_version: Option<u32>,
    pub firedrill_version: Option<String>,
    pub started: Option<DateTime<Utc>>,
    /// Time of `RunFinished`; `None` for an unfinished run.
    pub finished: Option<DateTime<Utc>>,
    /// Run-clock time of the last recorded event (the whole run when it finished).
    pub duration_ms: u64,
    pub dry_run: bool,
    /// `None` when the journal has no `RunFinished` (the process died).
    pub verdict: Option<VerdictSummary>,
    pub measurements: Vec<Measurement>,
    /// Phases in the order they started (or first produced an event).
    pub phases: Vec<PhaseSummary>,
    pub steps: Vec<StepSummary>,
    pub critical_path: Vec<String>,
    /// The planned fault step (from `RunStarted`).
    pub fault_step: Option<String>,
    /// Run offset at which the fault was injected.
    pub fault_at_ms: Option<u64>,
    pub detection: Option<Detection>,
    /// Per recovery probe, the start of the passing streak that counted (last report wins).
    pub recovery_probes: Vec<RecoveryProbe>,
    /// When the fault's impact was first seen (the first failing recovery poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
    /// The recovery probes never failed within the impact window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_impact: Option<NoImpact>,
    pub recovered: Option<Recovered>,
    pub deadline_exceeded: Option<DeadlineExceeded>,
    pub data_loss: Vec<DataLoss>,
    pub deviations: Vec<Deviation>,
    pub aborts: Vec<Abort>,
    pub interrupts: Vec<Interrupt>,
    pub environment_events: Vec<EnvironmentEvent>,
    pub rollbacks: Vec<RollbackSummary>,
    pub owed_rollbacks: Vec<OwedRollback>,
    /// Number of journal records folded.
    pub records: usize,
    /// Set by the reader (not by [`RunSummary::from_records`]) when the journal's last line was
    /// cut short.
    #[serde(default)]
    pub journal_truncated_tail: bool,
    /// The journal's hash chain, as checked when this summary was written (set by the writer,
    /// not by [`RunSummary::from_records`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Integrity>,
    /// Step id → index into `steps` (not serialized; rebuilt on demand).
    #[serde(skip)]
    step_index: StepIndex,
}

/// A lookup cache: never part of a summary's value (equal whatever it holds).
#[derive(Debug, Clone, Default)]
struct StepIndex(std::collections::HashMap<String, usize>);

impl PartialEq for StepIndex {
    fn eq(&self, _: &StepIndex) -> bool {
        true
    }
}

/// What [`crate::report::journal::verify_journal`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integrity {
    /// Records that verified, in order from the first.
    pub records: usize,
    /// False for journals written before lines were chained (nothing to check).
    pub chained: bool,
    /// The hash of the last line that verified: naming it elsewhere (a CI log, a ticket) pins
    /// the whole journal up to it.
    pub final_sha256: Option<String>,
    /// Where the chain breaks, if it does.
    pub broken: Option<String>,
    /// The last line was cut short (the process died while writing it).
    pub torn_tail: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictSummary {
    pub kind: VerdictKind,
    pub exit_code: i32,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseSummary {
    pub phase: Phase,
    pub started_at_ms: Option<u64>,
    /// Per probe, its checks in the phase folded (in first-checked order): a summary's size
    /// never grows with the number of checks.
    pub probes: Vec<ProbeChecks>,
    pub hypothesis: Option<HypothesisOutcome>,
}

/// One probe's checks in a phase, aggregated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeChecks {
    pub name: String,
    pub checks: u64,
    pub failed: u64,
    /// The first and the newest check.
    pub first: ProbeCheck,
    pub last: ProbeCheck,
    pub first_failure: Option<ProbeCheck>,
    pub last_failure: Option<ProbeCheck>,
    /// The newest check that passed.
    pub last_pass: Option<ProbeCheck>,
    /// The range of its numeric values (`None` when none was a number).
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The most consecutive failed checks, and the failed checks at the end (0 when the last
    /// check passed).
    pub longest_failing_streak: u64,
    pub failing_streak: u64,
}

/// One probe check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeCheck {
    pub ok: bool,
    pub value: Json,
    pub message: String,
    pub at_ms: u64,
}

impl ProbeChecks {
    fn new(name: &str, check: ProbeCheck) -> ProbeChecks {
        ProbeChecks {
            name: name.to_string(),
            checks: 0,
            failed: 0,
            first: check.clone(),
            last: check,
            first_failure: None,
            last_failure: None,
            last_pass: None,
            min: None,
            max: None,
            longest_failing_streak: 0,
            failing_streak: 0,
        }
    }

    fn add(&mut self, check: ProbeCheck) {
        self.checks += 1;
        if let Some(x) = check.value.as_f64() {
            self.min = Some(self.min.map_or(x, |m| m.min(x)));
            self.max = Some(self.max.map_or(x, |m| m.max(x)));
        }
        if check.ok {
            self.failing_streak = 0;
            self.last_pass = Some(check.clone());
        } else {
            self.failed += 1;
            self.failing_streak += 1;
            self.longest_failing_streak = self.longest_failing_streak.max(self.failing_streak);
            if self.first_failure.is_none() {
                self.first_failure = Some(check.clone());
            }
            self.last_failure = Some(check.clone());
        }
        self.last = check;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HypothesisOutcome {
    pub met: bool,
    pub failed: Vec<String>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    pub id: String,
    pub action: String,
    pub after: Vec<String>,
    pub wave: usize,
    pub critical: bool,
    pub has_rollback: bool,
    pub description: Option<String>,
    /// Run offset of the first attempt; `None` if it never started.
    pub started_at_ms: Option<u64>,
    /// Run offset of `StepFinished`.
    pub finished_at_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub attempts: u32,
    /// `None` while running (or never started) when the journal ends.
    pub outcome: Option<StepOutcome>,
    /// Kept as compact text: a summary may hold thousands of steps.
    pub output: CompactJson,
    pub error: Option<String>,
    /// The kind of `error` (denied, not found, timed out...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<crate::backend::ErrorKind>,
    pub retries: Vec<Retry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    pub attempt: u32,
    pub error: String,
    pub backoff_ms: u64,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub probe: String,
    /// Since the fault.
    pub after_ms: u64,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryProbe {
    pub probe: String,
    /// Since the fault.
    pub after_ms: u64,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovered {
    /// Since the fault.
    pub after_ms: u64,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    /// Since the fault started.
    pub after_ms: u64,
    pub at_ms: u64,
    /// The recovery probes failing at that poll.
    pub failing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoImpact {
    /// How long after the fault started the probes were watched.
    pub window_ms: u64,
    /// How many polls passed.
    pub polls: u32,
    pub expected: bool,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlineExceeded {
    pub deadline_ms: u64,
    pub failing: Vec<String>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataLoss {
    pub probe: String,
    pub newest_write: Option<DateTime<Utc>>,
    pub loss_ms: Option<u64>,
    pub at_ms: u64,
}

/// One probe's steady-state deviations during the method, aggregated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deviation {
    pub probe: String,
    pub count: u64,
    pub first_at_ms: u64,
    pub last_at_ms: u64,
    /// The value farthest from the probe's steady value (its newest passing check before the
    /// deviation, from the before phase or the method) when both are numbers; else the newest.
    pub worst_value: Json,
    pub worst_at_ms: u64,
    pub last_value: Json,
    pub last_message: String,
    /// The steady value `worst_value` is measured from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Abort {
    pub reason: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interrupt {
    pub signal: String,
    pub count: u32,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentEvent {
    pub at_ms: u64,
    pub component: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackSummary {
    pub step: String,
    pub action: String,
    pub started_at_ms: u64,
    /// `None` if the rollback started but the journal ends before it finished.
    pub ok: Option<bool>,
    pub duration_ms: Option<u64>,
    pub error: Option<String>,
    /// Run by `firedrill recover` after the drill's process died.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwedRollback {
    pub step: String,
    pub action: String,
    pub reason: String,
    pub at_ms: u64,
}

impl RunSummary {
    /// Fold a run's records (in journal order) into its summary.
    pub fn from_records(records: &[Record]) -> RunSummary {
        let mut b = SummaryBuilder::default();
        records.iter().for_each(|r| b.push(r));
        b.finish()
    }

    fn empty() -> RunSummary {
        RunSummary {
            run_id: String::new(),
            experiment: String::new(),
            title: None,
            description: None,
            owner: None,
            tags: Vec::new(),
            file: String::new(),
            environment: String::new(),
            backend: String::new(),
            clock: String::new(),
            seed: None,
            variables: Vec::new(),
            environment_sets: Vec::new(),
            overrides: Default::default(),
            probe_defs: Vec::new(),
            objectives: None,
            journal_version: None,
            firedrill_version: None,
            started: None,
            finished: None,
            duration_ms: 0,
            dry_run: false,
            verdict: None,
            measurements: Vec::new(),
            phases: Vec::new(),
            steps: Vec::new(),
            critical_path: Vec::new(),
            fault_step: None,
            fault_at_ms: None,
            detection: None,
            recovery_probes: Vec::new(),
            impact: None,
            no_impact: None,
            recovered: None,
            deadline_exceeded: None,
            data_loss: Vec::new(),
            deviations: Vec::new(),
            aborts: Vec::new(),
            interrupts: Vec::new(),
            environment_events: Vec::new(),
            rollbacks: Vec::new(),
            owed_rollbacks: Vec::new(),
            records: 0,
            journal_truncated_tail: false,
            integrity: None,
            step_index: Default::default(),
        }
    }

    /// Run offset of something reported as `after_ms` since the fault.
    fn since_fault(&self, after_ms: u64, event_at: u64) -> u64 {
        self.fault_at_ms.map_or(event_at, |f| f + after_ms)
    }

    fn phase_mut(&mut self, phase: Phase) -> &mut PhaseSummary {
        let idx = match self.phases.iter().position(|p| p.phase == phase) {
            Some(i) => i,
            None => {
                self.phases.push(PhaseSummary {
                    phase,
                    started_at_ms: None,
                    probes: Vec::new(),
                    hypothesis: None,
                });
                self.phases.len() - 1
            }
        };
        &mut self.phases[idx]
    }

    fn step_mut(&mut self, id: &str, action: &str) -> &mut StepSummary {
        // An index by id, rebuilt when the steps changed: folding is O(1) per event.
        if self.step_index.0.len() != self.steps.len() {
            self.step_index.0 = self
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.clone(), i))
                .collect();
        }
        let idx = match self.step_index.0.get(id).copied() {
            Some(i) => i,
            None => {
                // Not in the plan (should not happen): keep it anyway.
                self.steps.push(StepSummary {
                    id: id.to_string(),
                    action: action.to_string(),
                    after: Vec::new(),
                    wave: 0,
                    critical: false,
                    has_rollback: false,
                    description: None,
                    started_at_ms: None,
                    finished_at_ms: None,
                    duration_ms: None,
                    attempts: 0,
                    outcome: None,
                    output: CompactJson::default(),
                    error: None,
                    error_kind: None,
                    retries: Vec::new(),
                });
                self.steps.len() - 1
            }
        };
        &mut self.steps[idx]
    }

    fn apply(&mut self, rec: &Record) {
        let at = rec.elapsed_ms;
        self.duration_ms = self.duration_ms.max(at);
        match &rec.event {
            Event::RunStarted {
                journal_version,
                run_id,
                experiment,
                title,
                description,
                owner,
                tags,
                file,
                environment,
                backend,
                clock,
                seed,
                variables,
                objectives,
                steps,
                critical_path,
                fault_step,
                dry_run,
                firedrill_version,
                environment_doc,
                overrides,
                probes,
                ..
            } => {
                self.overrides = overrides.clone();
                self.probe_defs = probes.clone();
                self.environment_sets = environment_doc
                    .as_ref()
                    .map(|d| d.sets.clone())
                    .unwrap_or_default();
                self.journal_version = Some(*journal_version);
                self.run_id = run_id.clone();
                self.experiment = experiment.clone();
                self.title = title.clone();
                self.description = description.clone();
                self.owner = owner.clone();
                self.tags = tags.clone();
                self.file = file.clone();
                self.environment = environment.clone();
                self.backend = backend.clone();
                self.clock = clock.clone();
                self.seed = *seed;
                self.variables = variables.clone();
                self.objectives = Some(objectives.clone());
                self.critical_path = critical_path.clone();
                self.fault_step = fault_step.clone();
                self.dry_run = *dry_run;
                self.firedrill_version = Some(firedrill_version.clone());
                self.started = Some(rec.at - chrono::Duration::milliseconds(at as i64));
                self.steps = steps
                    .iter()
                    .map(|p| StepSummary {
                        id: p.id.clone(),
                        action: p.action.clone(),
                        after: p.after.clone(),
                        wave: p.wave,
                        critical: p.critical,
                        has_rollback: p.has_rollback,
                        description: p.description.clone(),
                        started_at_ms: None,
                        finished_at_ms: None,
                        duration_ms: None,
                        attempts: 0,
                        outcome: None,
                        output: CompactJson::default(),
                        error: None,
                        error_kind: None,
                        retries: Vec::new(),
                    })
                    .collect();
            }
            Event::PhaseStarted { phase } => {
                let p = self.phase_mut(*phase);
                p.started_at_ms.get_or_insert(at);
            }
            Event::ProbeChecked {
                phase,
                probe,
                ok,
                value,
                message,
            } => {
                let check = ProbeCheck {
                    ok: *ok,
                    value: value.clone(),
                    message: message.clone(),
                    at_ms: at,
                };
                let probes = &mut self.phase_mut(*phase).probes;
                match probes.iter_mut().find(|p| p.name == *probe) {
                    Some(p) => p.add(check),
                    None => {
                        let mut p = ProbeChecks::new(probe, check.clone());
                        p.add(check);
                        probes.push(p);
                    }
                }
            }
            Event::HypothesisResult { phase, met, failed } => {
                self.phase_mut(*phase).hypothesis = Some(HypothesisOutcome {
                    met: *met,
                    failed: failed.clone(),
                    at_ms: at,
                })
            }
            Event::StepStarted {
                step,
                action,
                attempt,
                ..
            } => {
                let s = self.step_mut(step, action);
                s.started_at_ms.get_or_insert(at);
                s.attempts = s.attempts.max(*attempt);
            }
            Event::StepRetrying {
                step,
                attempt,
                error,
                backoff_ms,
            } => self.step_mut(step, "").retries.push(Retry {
                attempt: *attempt,
                error: error.clone(),
                backoff_ms: *backoff_ms,
                at_ms: at,
            }),
            Event::StepFinished {
                step,
                outcome,
                attempts,
                duration_ms,
                output,
                error,
                error_kind,
            } => {
                let s = self.step_mut(step, "");
                s.outcome = Some(*outcome);
                s.attempts = *attempts;
                s.duration_ms = Some(*duration_ms);
                s.finished_at_ms = Some(at);
                // A skipped step never started; a start missing from the journal is inferred.
                if *outcome != StepOutcome::Skipped && s.started_at_ms.is_none() {
                    s.started_at_ms = Some(at.saturating_sub(*duration_ms));
                }
                s.output = CompactJson::new(output);
                s.error = error.clone();
                s.error_kind = *error_kind;
            }
            Event::FaultInjected { step } => {
                self.fault_step = Some(step.clone());
                self.fault_at_ms = Some(at);
            }
            Event::Deviation {
                probe,
                value,
                message,
            } => {
                let baseline = self.steady_value(probe);
                let distance = |v: &Json| match (baseline, v.as_f64()) {
                    (Some(b), Some(x)) => Some((x - b).abs()),
                    _ => None,
                };
                match self.deviations.iter_mut().find(|d| d.probe == *probe) {
                    Some(d) => {
                        d.count += 1;
                        d.last_at_ms = at;
                        d.last_value = value.clone();
                        d.last_message = message.clone();
                        let worse = match (distance(value), distance(&d.worst_value)) {
                            (Some(new), Some(old)) => new > old,
                            (Some(_), None) => true,
                            (None, Some(_)) => false,
                            (None, None) => true,
                        };
                        if worse {
                            d.worst_value = value.clone();
                            d.worst_at_ms = at;
                        }
                        d.baseline = d.baseline.or(baseline);
                    }
                    None => self.deviations.push(Deviation {
                        probe: probe.clone(),
                        count: 1,
                        first_at_ms: at,
                        last_at_ms: at,
                        worst_value: value.clone(),
                        worst_at_ms: at,
                        last_value: value.clone(),
                        last_message: message.clone(),
                        baseline,
                    }),
                }
            }
            Event::AbortTriggered { reason } => self.aborts.push(Abort {
                reason: reason.clone(),
                at_ms: at,
            }),
            Event::Interrupted { signal, count } => self.interrupts.push(Interrupt {
                signal: signal.clone(),
                count: *count,
                at_ms: at,
            }),
            Event::EnvironmentEvent {
                at_ms,
                component,
                message,
                detail,
            } => self.environment_events.push(EnvironmentEvent {
                at_ms: *at_ms,
                component: component.clone(),
                message: message.clone(),
                detail: detail.clone(),
            }),
            Event::Detected { probe, after_ms } => {
                let at_ms = self.since_fault(*after_ms, at);
                self.detection.get_or_insert(Detection {
                    probe: probe.clone(),
                    after_ms: *after_ms,
                    at_ms,
                });
            }
            Event::RecoveryProbePassing { probe, after_ms } => {
                let entry = RecoveryProbe {
                    probe: probe.clone(),
                    after_ms: *after_ms,
                    at_ms: self.since_fault(*after_ms, at),
                };
                match self.recovery_probes.iter_mut().find(|p| p.probe == *probe) {
                    Some(p) => *p = entry,
                    None => self.recovery_probes.push(entry),
                }
            }
            Event::ImpactObserved { after_ms, failing } => {
                self.impact.get_or_insert(Impact {
                    after_ms: *after_ms,
                    at_ms: self.since_fault(*after_ms, at),
                    failing: failing.clone(),
                });
            }
            Event::NoImpactObserved {
                window_ms,
                polls,
                expected,
            } => {
                self.no_impact = Some(NoImpact {
                    window_ms: *window_ms,
                    polls: *polls,
                    expected: *expected,
                    at_ms: at,
                })
            }
            Event::Recovered { after_ms } => {
                self.recovered = Some(Recovered {
                    after_ms: *after_ms,
                    at_ms: self.since_fault(*after_ms, at),
                })
            }
            Event::RecoveryDeadlineExceeded {
                deadline_ms,
                failing,
            } => {
                self.deadline_exceeded = Some(DeadlineExceeded {
                    deadline_ms: *deadline_ms,
                    failing: failing.clone(),
                    at_ms: at,
                })
            }
            Event::DataLossMeasured {
                probe,
                newest_write,
                loss_ms,
            } => self.data_loss.push(DataLoss {
                probe: probe.clone(),
                newest_write: *newest_write,
                loss_ms: *loss_ms,
                at_ms: at,
            }),
            Event::RollbackStarted {
                step,
                action,
                recovered,
            } => self.rollbacks.push(RollbackSummary {
                recovered: *recovered,
                step: step.clone(),
                action: action.clone(),
                started_at_ms: at,
                ok: None,
                duration_ms: None,
                error: None,
            }),
            Event::RollbackFinished {
                step,
                ok,
                duration_ms,
                error,
            } => {
                let idx = self
                    .rollbacks
                    .iter()
                    .rposition(|r| r.step == *step && r.ok.is_none());
                let r = match idx {
                    Some(i) => &mut self.rollbacks[i],
                    None => {
                        let action = self
                            .steps
                            .iter()
                            .find(|s| s.id == *step)
                            .map(|s| s.action.clone())
                            .unwrap_or_default();
                        self.rollbacks.push(RollbackSummary {
                            step: step.clone(),
                            action,
                            started_at_ms: at.saturating_sub(*duration_ms),
                            ok: None,
                            duration_ms: None,
                            error: None,
                            recovered: false,
                        });
                        self.rollbacks.last_mut().expect("just pushed")
                    }
                };
                r.ok = Some(*ok);
                r.duration_ms = Some(*duration_ms);
                r.error = error.clone();
            }
            Event::RollbackOwed {
                step,
                action,
                reason,
            } => self.owed_rollbacks.push(OwedRollback {
                step: step.clone(),
                action: action.clone(),
                reason: reason.clone(),
                at_ms: at,
            }),
            Event::RunFinished {
                verdict,
                exit_code,
                measurements,
                reasons,
            } => {
                self.finished = Some(rec.at);
                self.verdict = Some(VerdictSummary {
                    kind: *verdict,
                    exit_code: *exit_code,
                    reasons: reasons.clone(),
                });
                self.measurements = measurements.clone();
            }
        }
    }

    /// A probe's steady value: its newest passing numeric check of the method, else of the
    /// before phase.
    fn steady_value(&self, probe: &str) -> Option<f64> {
        [Phase::Method, Phase::Before].iter().find_map(|ph| {
            let p = self.phase(*ph)?.probes.iter().find(|p| p.name == probe)?;
            p.last_pass.as_ref()?.value.as_f64()
        })
    }

    /// The number of deviation events, over every probe.
    pub fn deviation_count(&self) -> u64 {
        self.deviations.iter().map(|d| d.count).sum()
    }

    /// Whether the journal reached `RunFinished`.
    /// A what-if run: the environment was overridden (`--set`), so it is not the environment
    /// as it is.
    pub fn is_what_if(&self) -> bool {
        !self.environment_sets.is_empty()
    }

    pub fn is_finished(&self) -> bool {
        self.verdict.is_some()
    }

    /// Title if given, else the experiment name.
    pub fn display_title(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.experiment)
    }

    /// The verdict as shown to people: `PASS`, `MISSED`, ..., `UNFINISHED`.
    pub fn verdict_label(&self) -> &'static str {
        match self.verdict.as_ref().map(|v| v.kind) {
            Some(k) => verdict_label(k),
            None => "UNFINISHED",
        }
    }

    pub fn phase(&self, phase: Phase) -> Option<&PhaseSummary> {
        self.phases.iter().find(|p| p.phase == phase)
    }

    pub fn measurement(&self, name: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.name == name)
    }

    /// The recovery probe that passed last: the one that gated recovery.
    pub fn last_recovering_probe(&self) -> Option<&RecoveryProbe> {
        self.recovery_probes.iter().max_by_key(|p| p.at_ms)
    }
}

/// Folds records into a [`RunSummary`] one at a time, as they happen: what it keeps grows with
/// the steps, probes and environment events of a run, never with its probe checks.
#[derive(Debug)]
pub struct SummaryBuilder {
    s: RunSummary,
    planner: crate::engine::recover::Planner,
}

impl Default for SummaryBuilder {
    fn default() -> SummaryBuilder {
        SummaryBuilder {
            s: RunSummary::empty(),
            planner: Default::default(),
        }
    }
}

impl SummaryBuilder {
    pub fn push(&mut self, rec: &Record) {
        self.s.records += 1;
        self.s.apply(rec);
        self.planner.push(rec);
    }

    /// The summary, with what the journal says is still owed beyond the journaled
    /// `RollbackOwed`s: the rollbacks of a run whose process died, and failed ones (`firedrill
    /// recover` runs them).
    pub fn finish(self) -> RunSummary {
        let mut s = self.s;
        let at_ms = s.duration_ms;
        for o in self.planner.finish().owed {
            if !s.owed_rollbacks.iter().any(|x| x.step == o.step) {
                s.owed_rollbacks.push(OwedRollback {
                    action: o.rollback_action(),
                    step: o.step,
                    reason: o.why,
                    at_ms,
                });
            }
        }
        s
    }
}

/// A sink folding the run into its summary while it runs (shared: the caller keeps a handle).
#[derive(Debug, Clone, Default)]
pub struct SummarySink(pub std::sync::Arc<std::sync::Mutex<SummaryBuilder>>);

impl SummarySink {
    /// The summary, leaving the sink empty (no copy: for the end of a run).
    pub fn take(&self) -> RunSummary {
        std::mem::take(&mut *self.0.lock().expect("summary sink")).finish()
    }
}

impl crate::engine::executor::Sink for SummarySink {
    fn record(&mut self, rec: &Record) -> Result<(), String> {
        self.0.lock().expect("summary sink").push(rec);
        Ok(())
    }
}

/// Upper-case label of a verdict.
pub fn verdict_label(kind: VerdictKind) -> &'static str {
    match kind {
        VerdictKind::Pass => "PASS",
        VerdictKind::NotSteady => "NOT STEADY",
        VerdictKind::Missed => "MISSED",
        VerdictKind::Aborted => "ABORTED",
        VerdictKind::RollbackFailed => "ROLLBACK FAILED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{self, RUN_ID};
    use serde_json::json;

    #[test]
    fn pass_run_is_folded_completely() {
        let s = RunSummary::from_records(&fixtures::pass_run());
        assert_eq!(s.run_id, RUN_ID);
        assert_eq!(s.experiment, "az-loss");
        assert_eq!(s.owner.as_deref(), Some("team-payments"));
        assert_eq!(s.seed, Some(42));
        assert_eq!(s.started, Some(fixtures::t0()));
        assert!(s.is_finished());
        let v = s.verdict.as_ref().unwrap();
        assert_eq!((v.kind, v.exit_code), (VerdictKind::Pass, 0));
        assert_eq!(s.verdict_label(), "PASS");
        assert_eq!(s.measurements.len(), 3);
        assert!(s.measurements.iter().all(|m| m.met));
        assert_eq!(s.duration_ms, 301_000);
        assert_eq!(
            s.finished,
            Some(fixtures::t0() + chrono::Duration::seconds(301))
        );

        let phases: Vec<Phase> = s.phases.iter().map(|p| p.phase).collect();
        assert_eq!(
            phases,
            [Phase::Before, Phase::Method, Phase::After, Phase::Rollback]
        );
        let before = s.phase(Phase::Before).unwrap();
        assert_eq!(before.probes.len(), 2);
        assert!(before.hypothesis.as_ref().unwrap().met);
        // The method's three checks of one probe, folded.
        let method = &s.phase(Phase::Method).unwrap().probes;
        assert_eq!(method.len(), 1);
        let a = &method[0];
        assert_eq!(
            (
                a.name.as_str(),
                a.checks,
                a.failed,
                a.longest_failing_streak,
                a.failing_streak
            ),
            ("availability", 3, 2, 2, 0)
        );
        assert_eq!((a.min, a.max), (Some(0.62), Some(0.998)));
        assert_eq!(a.first_failure.as_ref().unwrap().at_ms, 62_000);
        assert_eq!(a.last_failure.as_ref().unwrap().at_ms, 92_000);
        assert!(a.last.ok && a.last_pass == Some(a.last.clone()));

        let snap = &s.steps[0];
        assert_eq!(snap.id, "snapshot-db");
        assert_eq!(snap.started_at_ms, Some(2_000), "first attempt's start");
        assert_eq!(snap.finished_at_ms, Some(32_000));
        assert_eq!(snap.attempts, 2);
        assert_eq!(snap.retries.len(), 1);
        assert_eq!(snap.retries[0].at_ms, 12_000);
        assert_eq!(snap.outcome, Some(StepOutcome::Succeeded));
        assert_eq!(snap.output.json()["snapshot_id"], "snap-0a1b2c");
        assert_eq!(s.steps[1].after, ["snapshot-db"]);

        assert_eq!(s.fault_step.as_deref(), Some("fail-az"));
        assert_eq!(s.fault_at_ms, Some(32_000));
        let d = s.detection.as_ref().unwrap();
        assert_eq!(
            (d.probe.as_str(), d.after_ms, d.at_ms),
            ("alerts-firing", 45_000, 77_000)
        );
        assert_eq!(s.recovery_probes.len(), 2);
        let last = s.last_recovering_probe().unwrap();
        assert_eq!(
            (last.probe.as_str(), last.at_ms),
            ("dns-serves-dr", 247_000)
        );
        assert_eq!(s.recovered.as_ref().unwrap().after_ms, 215_000);
        assert!(s.deadline_exceeded.is_none());
        assert_eq!(s.data_loss[0].loss_ms, Some(20_000));
        // Two deviations of one probe; the worst is the farthest from its steady value (0.999
        // before the fault), not the newest.
        assert_eq!((s.deviations.len(), s.deviation_count()), (1, 2));
        let d = &s.deviations[0];
        assert_eq!((d.first_at_ms, d.last_at_ms), (62_000, 92_000));
        assert_eq!(
            (d.worst_value.clone(), d.worst_at_ms),
            (json!(0.62), 62_000)
        );
        assert_eq!(
            (d.last_value.clone(), d.baseline),
            (json!(0.71), Some(0.999))
        );
        assert_eq!(s.environment_events.len(), 4);
        assert_eq!(s.rollbacks.len(), 2);
        assert!(s.rollbacks.iter().all(|r| r.ok == Some(true)));
        assert_eq!(s.rollbacks[0].duration_ms, Some(20_000));
        assert!(s.owed_rollbacks.is_empty() && s.aborts.is_empty());
    }

    #[test]
    fn missed_rto_run_names_the_gating_probe() {
        let s = RunSummary::from_records(&fixtures::missed_rto_run());
        assert_eq!(s.verdict.as_ref().unwrap().kind, VerdictKind::Missed);
        assert_eq!(s.verdict_label(), "MISSED");
        let rto = s.measurement("rto").unwrap();
        assert!(!rto.met);
        assert_eq!(rto.measured_ms, Some(550_000));
        let last = s.last_recovering_probe().unwrap();
        assert_eq!(last.probe, "dns-serves-dr");
        assert_eq!(last.at_ms, 582_000, "fault +32s plus 9m10s");
        assert_eq!(s.verdict.as_ref().unwrap().reasons.len(), 1);
    }

    #[test]
    fn aborted_run_keeps_aborts_interrupts_and_owed_rollbacks() {
        let s = RunSummary::from_records(&fixtures::aborted_run());
        let v = s.verdict.as_ref().unwrap();
        assert_eq!((v.kind, v.exit_code), (VerdictKind::RollbackFailed, 6));
        assert_eq!(s.aborts.len(), 1);
        assert_eq!(s.aborts[0].at_ms, 120_000);
        assert_eq!(
            s.interrupts.iter().map(|i| i.count).collect::<Vec<_>>(),
            [1, 2]
        );
        // Owed: the one a second interrupt skipped, and the one that failed (`recover` runs both).
        assert_eq!(s.owed_rollbacks.len(), 2);
        assert_eq!(s.owed_rollbacks[0].step, "fail-az");
        assert_eq!(s.owed_rollbacks[1].step, s.rollbacks[0].step);
        assert!(
            s.owed_rollbacks[1]
                .reason
                .starts_with("its rollback failed: "),
            "{}",
            s.owed_rollbacks[1].reason
        );
        assert_eq!(s.rollbacks.len(), 1);
        assert_eq!(s.rollbacks[0].ok, Some(false));
        assert!(s.rollbacks[0].error.as_deref().unwrap().contains("503"));
        let promote = s.steps.iter().find(|st| st.id == "promote-dr").unwrap();
        assert_eq!(promote.outcome, Some(StepOutcome::Cancelled));
        assert!(s.recovered.is_none());
        assert!(s.measurements.is_empty());
    }

    #[test]
    fn partial_journal_is_unfinished_with_a_running_step() {
        let s = RunSummary::from_records(&fixtures::partial_run());
        assert!(!s.is_finished());
        assert!(s.verdict.is_none());
        assert!(s.finished.is_none());
        assert_eq!(s.verdict_label(), "UNFINISHED");
        assert_eq!(s.duration_ms, 95_000);
        let promote = s.steps.iter().find(|st| st.id == "promote-dr").unwrap();
        assert_eq!(promote.started_at_ms, Some(95_000));
        assert_eq!(promote.outcome, None);
        assert_eq!(s.fault_at_ms, Some(32_000));
        assert_eq!(s.deviation_count(), 2);

        // Even with no RunStarted at all, folding does not panic.
        let tail = &fixtures::partial_run()[5..];
        let s = RunSummary::from_records(tail);
        assert!(s.run_id.is_empty() && !s.is_finished());
        assert!(!s.steps.is_empty());
    }

    #[test]
    fn summary_round_trips_through_json() {
        let s = RunSummary::from_records(&fixtures::missed_rto_run());
        let text = serde_json::to_string_pretty(&s).unwrap();
        let back: RunSummary = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
    }
}

#[cfg(test)]
mod bounded {
    use super::*;
    use crate::report::fixtures;
    use serde_json::json;

    /// A passing run with `n` extra failing-then-passing checks and deviations of one probe.
    fn with_checks(n: u64) -> Vec<Record> {
        let mut recs = fixtures::pass_run();
        let last = recs.pop().expect("RunFinished");
        let mut seq = last.seq;
        for k in 0..n {
            let ok = k % 10 != 0;
            let value = if ok {
                0.999
            } else {
                0.5 + (k % 7) as f64 / 100.0
            };
            for event in [
                Some(Event::ProbeChecked {
                    phase: Phase::Method,
                    probe: "availability".into(),
                    ok,
                    value: json!(value),
                    message: format!("availability = {value}"),
                }),
                (!ok).then(|| Event::Deviation {
                    probe: "availability".into(),
                    value: json!(value),
                    message: format!("availability = {value}, below 0.99"),
                }),
            ]
            .into_iter()
            .flatten()
            {
                seq += 1;
                recs.push(Record {
                    seq,
                    at: last.at,
                    elapsed_ms: last.elapsed_ms,
                    event,
                });
            }
        }
        recs.push(Record {
            seq: seq + 1,
            ..last
        });
        recs
    }

    #[test]
    fn a_summary_does_not_grow_with_probe_checks() {
        let small = RunSummary::from_records(&with_checks(10));
        let large = RunSummary::from_records(&with_checks(10_000));
        let size = |s: &RunSummary| serde_json::to_string(s).unwrap().len();
        // The figures change (counts have more digits), the shape does not.
        assert!(
            size(&large) <= size(&small) + 64,
            "{} vs {} bytes",
            size(&large),
            size(&small)
        );
        let a = &large.phase(Phase::Method).unwrap().probes[0];
        assert_eq!((a.checks, a.failed), (3 + 10_000, 2 + 1_000));
        assert_eq!(
            a.longest_failing_streak, 2,
            "the fixture's two, then single failures"
        );
        assert_eq!(large.deviation_count(), 2 + 1_000);
        // The worst is the farthest from the steady 0.999: the fixture's 0.5 + 0/100.
        assert_eq!(large.deviations[0].worst_value, json!(0.5));
    }
}
