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

/// The progress display: one line per notable event, stamped `[+HH:MM:SS.mmm]` on the run clock;
/// on a terminal, a live status line below them, redrawn every second (the phase, the elapsed
/// time, the RTO countdown, the running steps, the probes failing now and their values), lines
/// fitted to the terminal's width. Not a terminal (CI logs): the event lines only, in full.
pub(super) struct Progress {
    tty: bool,
    live: std::sync::Arc<std::sync::Mutex<Live>>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

/// What the status line shows.
#[derive(Default)]
struct Live {
    phase: Option<Phase>,
    /// Run-clock milliseconds of the newest record, and the wall instant it arrived.
    elapsed_ms: u64,
    seen_at: Option<std::time::Instant>,
    /// The run follows the wall clock (the status ticks between events).
    wall: bool,
    running: Vec<String>,
    rto_ms: Option<u64>,
    fault_at_ms: Option<u64>,
    recovered_after_ms: Option<u64>,
    /// The newest check of each probe: (name, ok, value).
    probes: Vec<(String, bool, String)>,
    done: bool,
}

fn stamp(ms: u64) -> String {
    let s = ms / 1000;
    format!(
        "+{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

fn width() -> usize {
    terminal_size::terminal_size_of(std::io::stderr())
        .map(|(w, _)| w.0 as usize)
        .unwrap_or(100)
        .max(40)
}

/// Cut a line to the terminal's width.
fn fit(line: &str, width: usize) -> String {
    if line.chars().count() < width {
        return line.to_string();
    }
    let mut out: String = line.chars().take(width.saturating_sub(2)).collect();
    out.push('…');
    out
}

impl Live {
    /// The run-clock time now: the newest record's, plus the wall time since on a wall clock.
    fn now_ms(&self) -> u64 {
        match (self.wall, self.seen_at) {
            (true, Some(at)) if !self.done => self.elapsed_ms + at.elapsed().as_millis() as u64,
            _ => self.elapsed_ms,
        }
    }

    fn status(&self) -> String {
        let ms = |m: u64| {
            crate::lang::duration::format(std::time::Duration::from_millis(m / 1000 * 1000))
        };
        let now = self.now_ms();
        let mut parts = vec![format!(
            "{} {}",
            stamp(now).split('.').next().unwrap_or_default(),
            self.phase.map(phase_name).unwrap_or("starting")
        )];
        match (self.fault_at_ms, self.rto_ms, self.recovered_after_ms) {
            (Some(_), _, Some(r)) => parts.push(format!("recovered in {}", ms(r))),
            (Some(f), Some(rto), None) => {
                let since = now.saturating_sub(f);
                parts.push(if since <= rto {
                    format!("RTO {}: {} left", ms(rto), ms(rto - since))
                } else {
                    format!("RTO {} exceeded by {}", ms(rto), ms(since - rto))
                });
            }
            _ => {}
        }
        if !self.running.is_empty() {
            parts.push(format!("running {}", self.running.join(", ")));
        }
        let failing: Vec<String> = self
            .probes
            .iter()
            .filter(|(_, ok, _)| !ok)
            .map(|(n, _, v)| format!("{n}={v}"))
            .collect();
        if !failing.is_empty() {
            parts.push(format!("failing {}", failing.join(" ")));
        } else if !self.probes.is_empty() {
            parts.push(format!("{} probe(s) passing", self.probes.len()));
        }
        format!("  ▸ {}", parts.join(" │ "))
    }
}

impl Progress {
    pub(super) fn new(tty: bool) -> Progress {
        let live = std::sync::Arc::new(std::sync::Mutex::new(Live::default()));
        // On a terminal the status line ticks every second, events or not.
        let ticker = tty.then(|| {
            let live = live.clone();
            std::thread::spawn(move || {
                for tick in 1u64.. {
                    // Short sleeps: the display stops promptly when the run ends.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    let Ok(l) = live.lock() else { return };
                    if l.done {
                        return;
                    }
                    if tick % 10 == 0 && l.wall && l.seen_at.is_some() {
                        let mut err = std::io::stderr().lock();
                        let _ = write!(err, "\r\x1b[2K{}", fit(&l.status(), width()));
                        let _ = err.flush();
                    }
                }
            })
        });
        Progress { tty, live, ticker }
    }

    fn line(&self, rec: &Record) -> Option<String> {
        let ms = crate::lang::duration::format_ms;
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
        // Environment events carry their own time (the estate reports them when next observed).
        let happened = match &rec.event {
            Event::EnvironmentEvent { at_ms, .. } => Some(*at_ms),
            _ => None,
        };
        let line = self.line(rec);
        let Ok(mut l) = self.live.lock() else {
            return Ok(());
        };
        l.elapsed_ms = rec.elapsed_ms;
        l.seen_at = Some(std::time::Instant::now());
        match &rec.event {
            Event::RunStarted {
                clock, objectives, ..
            } => {
                l.wall = clock == "wall";
                l.rto_ms = Some(objectives.rto_ms);
            }
            Event::PhaseStarted { phase } => l.phase = Some(*phase),
            Event::StepStarted { step, .. } if !l.running.contains(step) => {
                l.running.push(step.clone())
            }
            Event::StepFinished { step, .. } => l.running.retain(|s| s != step),
            Event::FaultInjected { .. } => l.fault_at_ms = Some(rec.elapsed_ms),
            Event::Recovered { after_ms } => l.recovered_after_ms = Some(*after_ms),
            Event::ProbeChecked {
                probe, ok, value, ..
            } => {
                let v = crate::lang::tolerance::show_value(value);
                let v: String = v.chars().take(24).collect();
                match l.probes.iter_mut().find(|p| &p.0 == probe) {
                    Some(p) => *p = (probe.clone(), *ok, v),
                    None => l.probes.push((probe.clone(), *ok, v)),
                }
            }
            Event::RunFinished { .. } => l.done = true,
            _ => {}
        }
        let mut err = std::io::stderr().lock();
        if let Some(line) = line {
            let mut text = format!("[{}] {line}", stamp(rec.elapsed_ms));
            if let Some(at) = happened.filter(|at| at + 1000 < rec.elapsed_ms) {
                text.push_str(&format!(" (at {})", stamp(at)));
            }
            if self.tty {
                let _ = write!(err, "\r\x1b[2K");
                text = fit(&text, width());
            }
            let _ = writeln!(err, "{text}");
        }
        if self.tty {
            if l.done {
                let _ = write!(err, "\r\x1b[2K");
            } else {
                let _ = write!(err, "\r\x1b[2K{}", fit(&l.status(), width()));
            }
            let _ = err.flush();
        }
        Ok(())
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Ok(mut l) = self.live.lock() {
            l.done = true;
        }
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}
