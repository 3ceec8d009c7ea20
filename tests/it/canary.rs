//! The data-loss canary's engine side on tokio's paused (virtual) clock, against a fake
//! `CanaryIo` whose server clock runs 2 s ahead: cadence, failed writes never reused, the
//! survivors read after recovery, RPO on one clock, lost writes by sequence, the outage, and the
//! clean-up (also when the run aborts).

use firedrill::backend::{Action, BoxFuture, CanaryIo, Probe, Provider, ProviderError};
use firedrill::engine::drill::Drill;
use firedrill::engine::events::Event;
use firedrill::engine::executor::MemorySink;
use firedrill::lang::postgres::PgCanary;
use serde_json::{Value as Json, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What the fake server saw.
#[derive(Default, Clone)]
struct Seen {
    /// (sequence, run time of the write) of every write attempted.
    writes: Vec<(u64, Duration)>,
    removed: u32,
    injected: u32,
    /// Reads of the survivors so far (the first two fail: the standby is still starting).
    reads: u32,
}

/// A copy of what the fake saw (no lock held across the test's awaits).
fn snapshot(seen: &Mutex<Seen>) -> Seen {
    seen.lock().unwrap().clone()
}

struct FakeIo {
    start: Instant,
    /// The server's clock at `start`.
    server_start: chrono::DateTime<chrono::Utc>,
    seen: Arc<Mutex<Seen>>,
    prepare_fails: bool,
}

impl FakeIo {
    fn t(&self) -> Duration {
        Instant::now() - self.start
    }
}

/// Writes fail from 3.1 s to 5 s (the primary is down); the read side has every write before
/// 2.5 s (replication stopped then) and every write from 5 s on.
impl CanaryIo for FakeIo {
    fn write_server(&self) -> String {
        "primary:5432/app".into()
    }
    fn read_server(&self) -> String {
        "standby:5432/app".into()
    }
    fn server_time(&self) -> BoxFuture<'_, Result<chrono::DateTime<chrono::Utc>, ProviderError>> {
        Box::pin(
            async move { Ok(self.server_start + chrono::Duration::from_std(self.t()).unwrap()) },
        )
    }
    fn prepare(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            if self.prepare_fails {
                Err(ProviderError::denied(
                    "primary:5432/app: cannot create the canary table: permission denied".into(),
                ))
            } else {
                Ok(())
            }
        })
    }
    fn write(
        &self,
        seq: u64,
    ) -> BoxFuture<'_, Result<chrono::DateTime<chrono::Utc>, ProviderError>> {
        Box::pin(async move {
            let t = self.t();
            self.seen.lock().unwrap().writes.push((seq, t));
            if t >= Duration::from_millis(3100) && t < Duration::from_secs(5) {
                // A write to a dead primary: a connect timeout, then the error.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(ProviderError::unavailable(
                    "primary:5432/app: refused".into(),
                ));
            }
            Ok(self.server_start + chrono::Duration::from_std(t).unwrap())
        })
    }
    fn surviving(&self) -> BoxFuture<'_, Result<Vec<u64>, ProviderError>> {
        Box::pin(async move {
            let mut seen = self.seen.lock().unwrap();
            seen.reads += 1;
            if seen.reads <= 2 {
                return Err(ProviderError::unavailable(
                    "standby:5432/app: the database system is starting up".into(),
                ));
            }
            Ok(seen
                .writes
                .iter()
                .filter(|(_, t)| *t < Duration::from_millis(2500) || *t >= Duration::from_secs(5))
                .map(|(s, _)| *s)
                .collect())
        })
    }
    fn remove(&self) -> BoxFuture<'_, Result<String, ProviderError>> {
        Box::pin(async move {
            self.seen.lock().unwrap().removed += 1;
            Ok("removed".into())
        })
    }
}

/// The fault (`az.power_interruption`) and the recovery probe (`alert`: passing before 3 s and
/// from 5.5 s); the canary's IO is the fake.
struct Fake {
    start: Instant,
    seen: Arc<Mutex<Seen>>,
    fault_fails: bool,
    prepare_fails: bool,
}

impl Provider for Fake {
    fn backend(&self) -> &'static str {
        "fake"
    }
    fn inject<'a>(&'a self, _: &'a Action) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            self.seen.lock().unwrap().injected += 1;
            if self.fault_fails {
                Err(ProviderError::failed("the fault failed".into()))
            } else {
                Ok(json!({}))
            }
        })
    }
    fn revert<'a>(
        &'a self,
        _: &'a Action,
        _: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async { Ok(json!({})) })
    }
    fn observe<'a>(&'a self, _: &'a Probe) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            let t = Instant::now() - self.start;
            Ok(json!({"ok": t < Duration::from_secs(3) || t >= Duration::from_millis(5500)}))
        })
    }
    fn describe<'a>(&'a self, _: &'a Action) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async { Ok(String::new()) })
    }
    fn canary(&self, _: &PgCanary, _: &str) -> Result<Arc<dyn CanaryIo>, ProviderError> {
        Ok(Arc::new(FakeIo {
            start: self.start,
            server_start: "2026-12-02T12:00:02Z".parse().unwrap(),
            seen: self.seen.clone(),
            prepare_fails: self.prepare_fails,
        }))
    }
}

const DRILL: &str = r#"apiVersion: firedrill.dev/v1
kind: Experiment
metadata: {name: canary}
objectives: {rto: 1m, rpo: 5s}
steady_state:
  probes:
    - name: writable
      type: alert
      with: {name: db}
      tolerance: {path: ok, equals: true}
  before: [writable]
steps:
  - id: warm
    action: wait
    with: {duration: 3s}
  - id: lose-primary
    action: az.power_interruption
    after: [warm]
    with: {zone: a}
    rollback: none
  - id: hold
    action: wait
    after: [lose-primary]
    with: {duration: 4s}
recovery:
  fault: lose-primary
  probes: [writable]
  interval: 100ms
  data_loss:
    canary: {type: postgres, write_dsn: "postgres://drill@primary/app", read_dsn: "postgres://drill@standby/app", interval: 200ms}
"#;

/// The run clock starts at 12:00:00; the fake server's clock says 12:00:02 then.
fn clock(start: Instant) -> firedrill::engine::clock::RunClock {
    firedrill::engine::clock::RunClock {
        start,
        start_wall: "2026-12-02T12:00:00Z".parse().unwrap(),
    }
}

fn exp() -> firedrill::lang::spec::Experiment {
    firedrill::lang::spec::parse_experiment("canary.yaml", DRILL.as_bytes(), &[]).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_canary_measures_rpo_lost_writes_and_the_outage_on_one_clock() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let memory = MemorySink::default();
    let start = Instant::now();
    let fake = Fake {
        start,
        seen: seen.clone(),
        fault_fails: false,
        prepare_fails: false,
    };
    let outcome = Drill::new(exp(), Arc::new(fake))
        .clock(clock(start))
        .sink(memory.clone())
        .run()
        .await;
    let rpo = outcome
        .measurements
        .iter()
        .find(|m| m.name == "rpo")
        .unwrap();
    let c = rpo
        .canary
        .as_ref()
        .unwrap_or_else(|| panic!("{}", rpo.detail));
    // Writes every 200 ms from 0 s: #1 at 0 s ... #14 at 2.6 s (the first the standby missed),
    // #16 at 3.0 s (the fault's start, acknowledged, lost), #17 at 3.2 s the first failure.
    assert_eq!(
        c.skew_ms, 2000,
        "the fake server's clock runs 2 s ahead of the run clock"
    );
    assert_eq!(c.newest_surviving_seq, Some(13));
    assert_eq!(c.rpo_ms, Some(600), "{}", rpo.detail);
    assert_eq!(rpo.measured_ms, Some(600));
    assert_eq!(rpo.resolution_ms, 200);
    assert_eq!(c.lost_ranges, "14-16");
    assert_eq!(c.failed, 9, "3.2 s to 4.8 s");
    assert_eq!(
        (c.outage_from_ms, c.outage_ms, c.outage_ended),
        (Some(3200), Some(1800), true)
    );
    assert!(rpo.met);
    assert!(
        rpo.detail
            .contains("newest surviving acknowledged canary #13")
            && rpo.detail.contains("3 acknowledged lost (#14-16)")
            && rpo
                .detail
                .contains("server clock ahead of firedrill's by 2000 ms"),
        "{}",
        rpo.detail
    );
    let s = snapshot(&seen);
    let seqs: Vec<u64> = s.writes.iter().map(|(q, _)| *q).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "a sequence is never reused"
    );
    // The writer stopped when RPO was measured, after the method (7 s).
    let last = s.writes.last().unwrap().1;
    assert!(
        last >= Duration::from_secs(6) && last < Duration::from_millis(7300),
        "{last:?}"
    );
    assert_eq!(s.removed, 1, "the run's rows are removed (no keep)");
    assert_eq!(
        s.reads, 3,
        "the survivors' read is retried while the read server starts"
    );
    let n = seen.lock().unwrap().writes.len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        seen.lock().unwrap().writes.len(),
        n,
        "no write after the stop"
    );
    let records = memory.0.lock().unwrap().clone();
    let notes: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::EnvironmentEvent { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("canary #17 failed")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("canary #26 acknowledged: writes succeed again")),
        "{notes:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_aborted_run_stops_the_canary_and_removes_its_rows() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let start = Instant::now();
    let fake = Fake {
        start,
        seen: seen.clone(),
        fault_fails: true,
        prepare_fails: false,
    };
    let outcome = Drill::new(exp(), Arc::new(fake))
        .clock(clock(start))
        .run()
        .await;
    assert!(
        outcome
            .measurements
            .iter()
            .all(|m| m.name != "rpo" || m.canary.is_none())
    );
    let s = snapshot(&seen);
    assert!(
        !s.writes.is_empty(),
        "the canary wrote from the start of the method"
    );
    assert_eq!(
        s.removed, 1,
        "the rows are removed although nothing was measured"
    );
    let n = s.writes.len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(seen.lock().unwrap().writes.len(), n, "the writer stopped");
}

#[tokio::test(start_paused = true)]
async fn a_canary_that_cannot_start_aborts_before_the_fault() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let start = Instant::now();
    let fake = Fake {
        start,
        seen: seen.clone(),
        fault_fails: false,
        prepare_fails: true,
    };
    let outcome = Drill::new(exp(), Arc::new(fake))
        .clock(clock(start))
        .run()
        .await;
    assert_eq!(outcome.exit_code, 5, "aborted: {:?}", outcome.reasons);
    assert!(
        outcome
            .reasons
            .iter()
            .any(|r| r.contains("the data-loss canary cannot start")
                && r.contains("nothing was injected")),
        "{:?}",
        outcome.reasons
    );
    let s = snapshot(&seen);
    assert_eq!((s.injected, s.writes.len(), s.removed), (0, 0, 0));
}
