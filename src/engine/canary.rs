//! The data-loss canary (`recovery.data_loss.canary`): a writer that, from the start of the
//! method (the before gate passed, so writes exist before the fault) until recovery is measured,
//! inserts one row every interval on the write server through the backend's [`CanaryIo`],
//! counting acknowledged and failed writes; then the newest surviving canary of this run is read
//! on the read server and RPO computed from it ([`figures`], pure).
//!
//! Clocks: commit times are the server's (`clock_timestamp()` returned by the INSERT). At the
//! start the server's clock is read three times on the open connection and compared with the
//! run clock at the midpoint of the shortest round trip; every commit time is mapped onto the run clock by that skew, and RPO = fault
//! time (run clock) − the newest surviving acknowledged write committed at or before it.
//! Resolution: the interval.
//!
//! Invariants: a write that fails or times out is counted as failed and its sequence number is
//! never written again; every write is bounded by the backend's timeouts; the writer stops when
//! the measurement starts, or when the run ends without one (abort), and this run's rows are
//! removed afterwards unless `keep: true`.

use super::events::{CanaryFigures, Event};
use super::executor::Shared;
use crate::backend::CanaryIo;
use crate::lang::postgres::PgCanary;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// One acknowledged write.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    pub seq: u64,
    /// Commit time by the server's clock.
    pub committed: DateTime<Utc>,
    /// When the acknowledgement arrived (run clock).
    pub acked_ms: u64,
}

/// One failed (or timed-out) write.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub seq: u64,
    /// When the write was sent (run clock).
    pub at_ms: u64,
}

/// What the writer saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    /// Server clock minus run clock (milliseconds) and the round trip it was measured over.
    pub skew_ms: i64,
    pub skew_rtt_ms: u64,
    pub acked: Vec<Ack>,
    pub failed: Vec<Failure>,
    /// When the writer stopped (run clock).
    pub stopped_ms: u64,
}

/// A running canary.
pub(super) struct CanaryRun {
    io: Arc<dyn CanaryIo>,
    spec: PgCanary,
    log: Arc<Mutex<Log>>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Why the canary could not start (no writes were made).
    start_error: Option<String>,
    run_id: String,
}

fn component(io: &dyn CanaryIo) -> String {
    format!("canary {}", io.write_server())
}

/// Clock samples taken at the start; the one with the shortest round trip gives the skew.
const SKEW_SAMPLES: usize = 3;

/// Start the canary (after the before gate, before the method): create the table if needed,
/// measure the clock skew, write canary #1, and spawn the writer for the rest. A canary that cannot start aborts the run
/// before anything is injected (a drill meant to measure RPO must not run blind); it is kept
/// with its error so the journal says why.
pub(super) async fn start(sh: &Arc<Shared>, spec: &PgCanary, run_id: &str) {
    let (stop, stop_rx) = watch::channel(false);
    let log = Arc::new(Mutex::new(Log::default()));
    let io = match sh.provider.canary(spec, run_id) {
        Ok(io) => io,
        Err(e) => {
            // No IO at all: nothing to write, nothing to measure or remove.
            sh.abort(format!(
                "the data-loss canary cannot start ({e}), so nothing was injected"
            ));
            return;
        }
    };
    let mut run = CanaryRun {
        io: io.clone(),
        spec: spec.clone(),
        log: log.clone(),
        stop,
        task: None,
        start_error: None,
        run_id: run_id.to_string(),
    };
    let started = async {
        // The table first: that also opens the write connection, so the clock samples below
        // time one query's round trip, not a connection set-up.
        io.prepare().await?;
        let mut best: Option<(chrono::Duration, chrono::Duration)> = None;
        for _ in 0..SKEW_SAMPLES {
            let t0 = sh.clock.now();
            let server = io.server_time().await?;
            let t1 = sh.clock.now();
            let (rtt, skew) = (t1 - t0, server - (t0 + (t1 - t0) / 2));
            if best.is_none_or(|(r, _)| rtt < r) {
                best = Some((rtt, skew));
            }
        }
        if let Some((rtt, skew)) = best {
            let mut l = log.lock().expect("canary log poisoned");
            l.skew_ms = skew.num_milliseconds();
            l.skew_rtt_ms = rtt.num_milliseconds().max(0) as u64;
        }
        // Canary #1 is acknowledged before the method starts, so a write exists before any
        // fault, even one that is the method's first step.
        let committed = io.write(1).await?;
        log.lock().expect("canary log poisoned").acked.push(Ack {
            seq: 1,
            committed,
            acked_ms: sh.clock.elapsed_ms(),
        });
        Ok::<(), crate::backend::ProviderError>(())
    };
    match started.await {
        Err(e) => {
            let msg = format!("the data-loss canary cannot start: {e} ({})", e.kind);
            sh.emit(Event::EnvironmentEvent {
                at_ms: sh.clock.elapsed_ms(),
                component: component(&*io),
                message: msg.clone(),
                detail: None,
            });
            sh.abort(format!("{msg}, so nothing was injected"));
            run.start_error = Some(msg);
        }
        Ok(()) => {
            let (skew, rtt) = {
                let l = log.lock().expect("canary log poisoned");
                (l.skew_ms, l.skew_rtt_ms)
            };
            sh.emit(Event::EnvironmentEvent {
                at_ms: sh.clock.elapsed_ms(),
                component: component(&*io),
                message: format!(
                    "canary writing to table `{}` every {} (server clock {} firedrill's by {skew} ms, measured over a {rtt} ms round trip)",
                    spec.table.display(),
                    crate::lang::duration::format(spec.interval),
                    if skew >= 0 { "ahead of" } else { "behind" },
                ),
                detail: None,
            });
            run.task = Some(tokio::spawn(writer(
                sh.clone(),
                io,
                spec.interval,
                log,
                stop_rx,
            )));
        }
    }
    *sh.canary.lock().expect("canary slot poisoned") = Some(run);
}

/// Write every interval until told to stop. Journals the first failure of each streak and the
/// first acknowledgement after it (the outage as the canary sees it).
async fn writer(
    sh: Arc<Shared>,
    io: Arc<dyn CanaryIo>,
    interval: Duration,
    log: Arc<Mutex<Log>>,
    mut stop: watch::Receiver<bool>,
) {
    // #1 was written by `start`.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq = 1u64;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        seq += 1;
        let at_ms = sh.clock.elapsed_ms();
        let r = tokio::select! {
            r = io.write(seq) => r,
            // Stopped mid-write: not acknowledged, so counted as failed.
            _ = stop.wait_for(|s| *s) => {
                log.lock().expect("canary log poisoned").failed.push(Failure { seq, at_ms });
                break;
            }
        };
        match r {
            Ok(committed) => {
                let acked_ms = sh.clock.elapsed_ms();
                log.lock().expect("canary log poisoned").acked.push(Ack {
                    seq,
                    committed,
                    acked_ms,
                });
                if failing {
                    failing = false;
                    sh.emit(Event::EnvironmentEvent {
                        at_ms: acked_ms,
                        component: component(&*io),
                        message: format!("canary #{seq} acknowledged: writes succeed again"),
                        detail: None,
                    });
                }
            }
            Err(e) => {
                log.lock()
                    .expect("canary log poisoned")
                    .failed
                    .push(Failure { seq, at_ms });
                if !failing {
                    failing = true;
                    sh.emit(Event::EnvironmentEvent {
                        at_ms,
                        component: component(&*io),
                        message: format!("canary #{seq} failed: {e} ({})", e.kind),
                        detail: None,
                    });
                }
            }
        }
    }
}

impl CanaryRun {
    /// Stop the writer and return what it saw.
    async fn stop(&mut self, sh: &Shared) -> Log {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let mut l = self.log.lock().expect("canary log poisoned").clone();
        l.stopped_ms = sh.clock.elapsed_ms();
        l
    }

    /// Remove this run's rows unless `keep` (or the run was stopped at once: then the journal
    /// says how to remove them); journaled either way. A canary that never started wrote
    /// nothing.
    async fn clean_up(&self, sh: &Shared, at_once: bool) {
        if self.start_error.is_some() {
            return;
        }
        let table = self.spec.table.display();
        let message = if self.spec.keep {
            format!("canary rows of run `{}` kept (`keep: true`)", self.run_id)
        } else if at_once {
            format!(
                "canary rows left (the run was stopped at once); remove them with `delete from {table} where run_id = '{}'` on {}",
                self.run_id,
                self.io.read_server()
            )
        } else {
            match self.io.remove().await {
                Ok(said) => said,
                Err(e) => format!(
                    "canary rows of this run could not be removed: {e} ({}); delete them with `delete from {table} where run_id = '{}'`",
                    e.kind, self.run_id
                ),
            }
        };
        sh.emit(Event::EnvironmentEvent {
            at_ms: sh.clock.elapsed_ms(),
            component: component(&*self.io),
            message,
            detail: None,
        });
    }
}

/// The canary's figures once recovery is measured: stop the writer, read the survivors (retried
/// for a while: the read server may just have been promoted), compute, clean up. `None` when no
/// canary ran (the run never reached the method).
pub(super) async fn measure(
    sh: &Shared,
    fault_at: Duration,
) -> Option<Result<CanaryFigures, String>> {
    let mut run = sh.canary.lock().expect("canary slot poisoned").take()?;
    let log = run.stop(sh).await;
    let result = match &run.start_error {
        Some(e) => Err(e.clone()),
        None => match survivors(&*run.io).await {
            Ok(s) => Ok(figures(
                &log,
                &s,
                fault_at,
                sh.clock.start_wall,
                &run.spec,
                [run.io.write_server(), run.io.read_server()],
            )),
            Err(e) => Err(format!(
                "the surviving canaries could not be read on {}: {e}",
                run.io.read_server()
            )),
        },
    };
    run.clean_up(sh, false).await;
    Some(result)
}

/// Stop and clean up a canary that was never measured (the run was aborted, or stopped at once:
/// `hard_stop`, then the rows are left and the journal says how to remove them).
pub(super) async fn abandon(sh: &Shared, hard_stop: bool) {
    let run = sh.canary.lock().expect("canary slot poisoned").take();
    if let Some(mut run) = run {
        let _ = run.stop(sh).await;
        run.clean_up(sh, hard_stop).await;
    }
}

/// How long to keep trying to read the survivors.
const READ_FOR: Duration = Duration::from_secs(15);

async fn survivors(io: &dyn CanaryIo) -> Result<BTreeSet<u64>, String> {
    let until = tokio::time::Instant::now() + READ_FOR;
    loop {
        match io.surviving().await {
            Ok(s) => return Ok(s.into_iter().collect()),
            Err(e) if tokio::time::Instant::now() >= until => {
                return Err(format!(
                    "{e} ({}; tried for {}s)",
                    e.kind,
                    READ_FOR.as_secs()
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Sequence numbers as compressed ranges: `3, 41-57, 60`.
pub fn ranges(seqs: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seqs.len() {
        let start = seqs[i];
        let mut end = start;
        while i + 1 < seqs.len() && seqs[i + 1] == end + 1 {
            i += 1;
            end = seqs[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(", ")
}

/// The figures from what the writer saw and what survived (pure).
pub fn figures(
    log: &Log,
    surviving: &BTreeSet<u64>,
    fault_at: Duration,
    start_wall: DateTime<Utc>,
    spec: &PgCanary,
    [write_server, read_server]: [String; 2],
) -> CanaryFigures {
    let skew = chrono::Duration::milliseconds(log.skew_ms);
    let fault_wall = start_wall + chrono::Duration::from_std(fault_at).unwrap_or_default();
    let on_run_clock = |t: DateTime<Utc>| t - skew;
    let lost: Vec<u64> = log
        .acked
        .iter()
        .filter(|a| !surviving.contains(&a.seq))
        .map(|a| a.seq)
        .collect();
    let newest = log
        .acked
        .iter()
        .filter(|a| surviving.contains(&a.seq) && on_run_clock(a.committed) <= fault_wall)
        .max_by_key(|a| a.committed);
    let rpo_ms = newest.map(|a| {
        (fault_wall - on_run_clock(a.committed))
            .num_milliseconds()
            .max(0) as u64
    });
    // The fault's outage: the first write failing from the fault's start on, to the first
    // acknowledged write after it (failures before the fault are counted, not the outage).
    let fault_ms = fault_at.as_millis() as u64;
    let first_fail = log
        .failed
        .iter()
        .filter(|f| f.at_ms >= fault_ms)
        .min_by_key(|f| f.seq);
    let (outage_from_ms, outage_ms, outage_ended) = match first_fail {
        None => (None, None, true),
        Some(f) => match log
            .acked
            .iter()
            .filter(|a| a.seq > f.seq)
            .min_by_key(|a| a.seq)
        {
            Some(a) => (
                Some(f.at_ms),
                Some(a.acked_ms.saturating_sub(f.at_ms)),
                true,
            ),
            None => (
                Some(f.at_ms),
                Some(log.stopped_ms.saturating_sub(f.at_ms)),
                false,
            ),
        },
    };
    CanaryFigures {
        write_server,
        read_server,
        table: spec.table.display(),
        interval_ms: spec.interval.as_millis() as u64,
        acknowledged: log.acked.len() as u64,
        failed: log.failed.len() as u64,
        surviving: surviving.len() as u64,
        lost_acknowledged: lost.len() as u64,
        lost_ranges: ranges(&lost),
        newest_surviving_seq: newest.map(|a| a.seq),
        newest_surviving_at: newest.map(|a| on_run_clock(a.committed)),
        rpo_ms,
        skew_ms: log.skew_ms,
        skew_rtt_ms: log.skew_rtt_ms,
        outage_from_ms,
        outage_ms,
        outage_ended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compress_runs() {
        assert_eq!(ranges(&[]), "");
        assert_eq!(ranges(&[3]), "3");
        assert_eq!(ranges(&[3, 41, 42, 43, 57, 60, 61]), "3, 41-43, 57, 60-61");
    }

    /// Writes every 200 ms from +0.2s; the server clock runs 1.5 s ahead; the standby stopped
    /// receiving after #10 (+2.0s), the fault is at +3.1s, writes fail from #16 and succeed
    /// again from #25 on the new primary.
    #[test]
    fn rpo_is_the_fault_minus_the_newest_surviving_acknowledged_write_on_one_clock() {
        let start: DateTime<Utc> = "2026-12-02T10:00:00Z".parse().unwrap();
        let skew = chrono::Duration::milliseconds(1500);
        let mut log = Log {
            skew_ms: 1500,
            skew_rtt_ms: 2,
            stopped_ms: 6000,
            ..Log::default()
        };
        for seq in 1..=30u64 {
            let at = seq * 200;
            if (16..25).contains(&seq) {
                log.failed.push(Failure { seq, at_ms: at });
            } else {
                log.acked.push(Ack {
                    seq,
                    committed: start + chrono::Duration::milliseconds(at as i64 + 5) + skew,
                    acked_ms: at + 6,
                });
            }
        }
        // A blip before the fault: counted as failed, not the fault's outage.
        log.acked.retain(|a| a.seq != 3);
        log.failed.insert(0, Failure { seq: 3, at_ms: 600 });
        let surviving: BTreeSet<u64> = (1..=10).chain(25..=30).collect();
        let spec = PgCanary {
            write: crate::lang::postgres::Dsn::parse("postgres://u@p/app").unwrap(),
            read: crate::lang::postgres::Dsn::parse("postgres://u@s/app").unwrap(),
            interval: Duration::from_millis(200),
            table: crate::lang::postgres::TableName::parse("firedrill_canary").unwrap(),
            keep: false,
        };
        let fig = |log: &Log, surviving: &BTreeSet<u64>| {
            figures(
                log,
                surviving,
                Duration::from_millis(3100),
                start,
                &spec,
                ["p:5432/app".into(), "s:5432/app".into()],
            )
        };
        let f = fig(&log, &surviving);
        assert_eq!(f.newest_surviving_seq, Some(10));
        // #10 committed at +2.005s on the run clock: 3.1 - 2.005.
        assert_eq!(f.rpo_ms, Some(1095));
        assert_eq!((f.acknowledged, f.failed, f.surviving), (20, 10, 16));
        assert_eq!(f.lost_ranges, "11-15");
        assert_eq!(f.lost_acknowledged, 5);
        assert_eq!(
            (f.outage_from_ms, f.outage_ms, f.outage_ended),
            (Some(3200), Some(1806), true)
        );
        // Without the skew correction the newest write would look 1.5 s younger.
        let mut unskewed = log.clone();
        unskewed.skew_ms = 0;
        let g = fig(&unskewed, &surviving);
        assert_ne!(g.rpo_ms, f.rpo_ms);
        // Nothing after the first failure acknowledged: the outage lasts to the stop.
        log.acked.retain(|a| a.seq < 16);
        let h = fig(&log, &surviving);
        assert_eq!((h.outage_ms, h.outage_ended), (Some(2800), false));
        // No surviving acknowledged write before the fault: no RPO.
        let none = fig(&log, &BTreeSet::new());
        assert_eq!(
            (none.rpo_ms, none.lost_ranges.as_str()),
            (None, "1-2, 4-15")
        );
    }
}
