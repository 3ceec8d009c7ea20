//! The run's consumers on the CLI side: the journal sink and the progress display.

use crate::engine::events::{Event, Phase, Record, StepOutcome};
use crate::engine::executor::Sink;
use crate::report::journal::Journal;
use std::io::Write;

pub(super) struct JournalSink(pub(super) Journal);

impl Sink for JournalSink {
    fn record(&mut self, rec: &Record) -> Result<(), String> {
        self.0.append(rec).map_err(|e| e.to_string())?;
        if matches!(rec.event, Event::RunFinished { .. }) {
            self.0.finish().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The progress display: one line per notable event; on a terminal, a status line that keeps
/// the elapsed run time and the running steps in view.
pub(super) struct Progress {
    tty: bool,
    running: Vec<String>,
}

impl Progress {
    pub(super) fn new(tty: bool) -> Progress {
        Progress {
            tty,
            running: Vec::new(),
        }
    }

    fn line(&self, rec: &Record) -> Option<String> {
        let ms = |m: u64| crate::lang::duration::format(std::time::Duration::from_millis(m));
        Some(match &rec.event {
            Event::RunStarted {
                experiment,
                environment,
                backend,
                clock,
                ..
            } => format!("drill {experiment} on {environment} ({backend}, {clock} clock)"),
            Event::PhaseStarted { phase } => format!("phase {}", phase_name(*phase)),
            Event::HypothesisResult { phase, met, failed } => format!(
                "steady state {}: {}",
                phase_name(*phase),
                if *met {
                    "met".to_string()
                } else {
                    format!("NOT met ({})", failed.join(", "))
                }
            ),
            Event::StepStarted {
                step,
                action,
                attempt,
                ..
            } => format!(
                "step {step} ({action}) started{}",
                if *attempt > 1 {
                    format!(", attempt {attempt}")
                } else {
                    String::new()
                }
            ),
            Event::StepRetrying {
                step,
                error,
                backoff_ms,
                ..
            } => format!(
                "step {step} failed: {error}; retrying in {}",
                ms(*backoff_ms)
            ),
            Event::StepFinished {
                step,
                outcome,
                duration_ms,
                error,
                ..
            } => match outcome {
                StepOutcome::Skipped => format!("step {step} skipped"),
                o => format!(
                    "step {step} {} after {}{}",
                    format!("{o:?}").to_lowercase(),
                    ms(*duration_ms),
                    error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                ),
            },
            Event::FaultInjected { step } => format!("FAULT {step}: recovery clock started"),
            Event::AbortTriggered { reason } => format!("ABORT: {reason}"),
            Event::Interrupted { count, .. } => {
                if *count == 1 {
                    "interrupted: aborting and rolling back (interrupt again to stop at once)"
                        .into()
                } else {
                    "interrupted again: stopping at once".into()
                }
            }
            Event::EnvironmentEvent {
                component, message, ..
            } => format!("  env {component}: {message}"),
            Event::Detected { probe, after_ms } => {
                format!("detected by {probe} after {}", ms(*after_ms))
            }
            Event::ImpactObserved { after_ms, failing } => format!(
                "impact seen {} after the fault started (failing: {})",
                ms(*after_ms),
                failing.join(", ")
            ),
            Event::NoImpactObserved {
                window_ms,
                polls,
                expected,
            } => format!(
                "NO IMPACT observed: the recovery probes passed all {polls} polls in the {} after the fault{}",
                ms(*window_ms),
                if *expected {
                    " (an impact was expected)"
                } else {
                    ""
                }
            ),
            Event::Recovered { after_ms } => format!("RECOVERED after {}", ms(*after_ms)),
            Event::RecoveryDeadlineExceeded {
                deadline_ms,
                failing,
            } => format!(
                "NOT recovered within {} (failing: {})",
                ms(*deadline_ms),
                failing.join(", ")
            ),
            Event::RollbackFinished {
                step, ok, error, ..
            } => format!(
                "rollback {step}: {}",
                if *ok {
                    "ok".into()
                } else {
                    format!("FAILED: {}", error.clone().unwrap_or_default())
                }
            ),
            Event::RollbackOwed { step, reason, .. } => format!("rollback {step} OWED: {reason}"),
            Event::DataLossMeasured {
                loss_ms: Some(l), ..
            } => format!("data loss window {}", ms(*l)),
            _ => return None,
        })
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Before => "before",
        Phase::Method => "method",
        Phase::After => "after",
        Phase::Rollback => "rollback",
    }
}

impl Sink for Progress {
    fn record(&mut self, rec: &Record) -> Result<(), String> {
        match &rec.event {
            Event::StepStarted { step, .. } if !self.running.contains(step) => {
                self.running.push(step.clone())
            }
            Event::StepFinished { step, .. } => self.running.retain(|s| s != step),
            _ => {}
        }
        let mut err = std::io::stderr().lock();
        // Environment events carry their own time (the estate reports them when next observed).
        let at_ms = match &rec.event {
            Event::EnvironmentEvent { at_ms, .. } => *at_ms,
            _ => rec.elapsed_ms,
        };
        let t = crate::lang::duration::format(std::time::Duration::from_millis(at_ms));
        if let Some(line) = self.line(rec) {
            if self.tty {
                let _ = write!(err, "\r\x1b[2K");
            }
            let _ = writeln!(err, "[+{t:>7}] {line}");
        }
        if self.tty {
            let status = if self.running.is_empty() {
                String::new()
            } else {
                format!(" running: {}", self.running.join(", "))
            };
            let _ = write!(err, "\r\x1b[2K  … +{t}{status}");
            if matches!(rec.event, Event::RunFinished { .. }) {
                let _ = write!(err, "\r\x1b[2K");
            }
            let _ = err.flush();
        }
        Ok(())
    }
}
