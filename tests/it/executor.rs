//! The executor against a scripted mock provider, on tokio's paused (virtual) clock: scheduling,
//! timeouts, retries, aborts, rollbacks, interrupts and the RTO/MTTD/RPO measurements.

use firedrill::backend::{BoxFuture, ErrorKind, Provider, ProviderError};
use firedrill::engine::clock::RunClock;
use firedrill::engine::drill::Drill;
use firedrill::engine::events::{Event, Record, StepOutcome, VerdictKind};
use firedrill::engine::executor::{MemorySink, Outcome, RollbackPolicy};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

type Metric = Box<dyn Fn(Duration, &RunClock) -> Json + Send + Sync>;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// What the mock does. Calls are keyed by their target: the `service`, `deployment`, `zone` or
/// `cluster` parameter.
#[derive(Default)]
struct Script {
    /// How long `inject` takes.
    takes: HashMap<&'static str, Duration>,
    /// `inject` fails this many times before it succeeds (`u32::MAX`: always).
    fail_first: HashMap<&'static str, u32>,
    /// The kind of those failures (default: invalid state, a retryable kind).
    fail_kind: HashMap<&'static str, ErrorKind>,
    /// How long `revert` takes.
    revert_takes: HashMap<&'static str, Duration>,
    /// `revert` fails for these.
    revert_fails: Vec<&'static str>,
    /// Probe outputs as a function of run time.
    metrics: HashMap<&'static str, Metric>,
    /// Interrupt counts to send at run times.
    interrupts: Vec<(Duration, u32)>,
    concurrency: Option<usize>,
    rollback: Option<RollbackPolicy>,
}

impl Script {
    fn metric(
        mut self,
        target: &'static str,
        f: impl Fn(Duration, &RunClock) -> Json + Send + Sync + 'static,
    ) -> Script {
        self.metrics.insert(target, Box::new(f));
        self
    }
}

/// One inject or revert, with run times.
#[derive(Debug, Clone)]
struct Call {
    op: &'static str,
    target: String,
    start: Duration,
    /// `None` while running (or when cancelled).
    end: Option<Duration>,
}

struct Mock {
    script: Script,
    t0: Instant,
    clock: Mutex<Option<RunClock>>,
    tries: Mutex<HashMap<String, u32>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

/// What a scripted call acts on: the deployment, zone, cluster or service it names.
fn target(call: Named<'_>) -> String {
    use firedrill::backend::{Action, Probe};
    match call {
        Named::Action(Action::Scale(s)) => s.workload.name().to_string(),
        Named::Action(Action::AzPowerInterruption(z)) => z.zone.clone(),
        Named::Action(Action::DbClusterFailover(f)) => f.cluster.clone(),
        Named::Probe(Probe::ServiceMetrics(s)) => s.service.clone(),
        Named::Probe(Probe::DbCluster(q)) => q.cluster.clone(),
        _ => "?".to_string(),
    }
}

#[derive(Clone, Copy)]
enum Named<'a> {
    Action(&'a firedrill::backend::Action),
    Probe(&'a firedrill::backend::Probe),
}

impl Mock {
    /// Record the start of a call; returns its index, for `end`.
    fn begin(&self, op: &'static str, target: &str) -> usize {
        let mut calls = self.calls.lock().unwrap();
        calls.push(Call {
            op,
            target: target.to_string(),
            start: self.t0.elapsed(),
            end: None,
        });
        calls.len() - 1
    }

    fn end(&self, idx: usize) {
        self.calls.lock().unwrap()[idx].end = Some(self.t0.elapsed());
    }
}

impl Provider for Mock {
    fn backend(&self) -> &'static str {
        "mock"
    }

    fn start(&self, ctx: &firedrill::backend::RunContext) {
        *self.clock.lock().unwrap() = Some(ctx.clock);
    }

    fn inject<'a>(
        &'a self,
        action: &'a firedrill::backend::Action,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            let t = target(Named::Action(action));
            let idx = self.begin("inject", &t);
            let n = {
                let mut tries = self.tries.lock().unwrap();
                let n = tries.entry(t.clone()).or_default();
                *n += 1;
                *n
            };
            if let Some(d) = self.script.takes.get(t.as_str()) {
                tokio::time::sleep(*d).await;
            }
            self.end(idx);
            if n > self.script.fail_first.get(t.as_str()).copied().unwrap_or(0) {
                Ok(json!({"target": t, "attempt": n}))
            } else {
                let kind = self
                    .script
                    .fail_kind
                    .get(t.as_str())
                    .copied()
                    .unwrap_or(ErrorKind::InvalidState);
                Err(ProviderError::new(
                    kind,
                    format!("{t}: scripted failure {n}"),
                ))
            }
        })
    }

    fn revert<'a>(
        &'a self,
        action: &'a firedrill::backend::Action,
        _output: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            let t = target(Named::Action(action));
            let idx = self.begin("revert", &t);
            if let Some(d) = self.script.revert_takes.get(t.as_str()) {
                tokio::time::sleep(*d).await;
            }
            self.end(idx);
            if self.script.revert_fails.contains(&t.as_str()) {
                return Err(ProviderError::failed(format!(
                    "{t}: scripted revert failure"
                )));
            }
            Ok(json!({"reverted": t}))
        })
    }

    fn observe<'a>(
        &'a self,
        probe: &'a firedrill::backend::Probe,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            let t = target(Named::Probe(probe));
            let clock = self.clock.lock().unwrap().expect("start() was called");
            match self.script.metrics.get(t.as_str()) {
                Some(f) => Ok(f(clock.elapsed(), &clock)),
                None => Err(ProviderError::failed(format!("no script for `{t}`"))),
            }
        })
    }

    fn describe<'a>(
        &'a self,
        _action: &'a firedrill::backend::Action,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async { Ok(String::new()) })
    }
}

struct Run {
    outcome: Outcome,
    records: Vec<Record>,
    calls: Vec<Call>,
}

impl Run {
    fn find(&self, f: impl Fn(&Event) -> bool) -> Vec<&Record> {
        self.records.iter().filter(|r| f(&r.event)).collect()
    }

    /// Run time (ms) of the first event matching `f`.
    fn first_ms(&self, f: impl Fn(&Event) -> bool) -> u64 {
        self.find(f).first().expect("no such event").elapsed_ms
    }

    fn calls(&self, op: &str) -> Vec<&Call> {
        self.calls.iter().filter(|c| c.op == op).collect()
    }

    fn targets(&self, op: &str) -> Vec<&str> {
        self.calls(op).iter().map(|c| c.target.as_str()).collect()
    }

    fn step_finished(&self, id: &str) -> (StepOutcome, u32, u64) {
        self.records
            .iter()
            .find_map(|r| match &r.event {
                Event::StepFinished {
                    step,
                    outcome,
                    attempts,
                    duration_ms,
                    ..
                } if step == id => Some((*outcome, *attempts, *duration_ms)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("step `{id}` never finished"))
    }

    fn finished_ms(&self) -> u64 {
        self.first_ms(|e| matches!(e, Event::RunFinished { .. }))
    }

    fn assert_verdict(&self, verdict: VerdictKind, exit_code: i32) {
        assert_eq!(
            (self.outcome.verdict, self.outcome.exit_code),
            (verdict, exit_code),
            "reasons: {:?}",
            self.outcome.reasons
        );
    }
}

/// Parse `body` (everything after `metadata`) and run it against the script.
async fn run(body: &str, mut script: Script) -> Run {
    let text =
        format!("apiVersion: firedrill.dev/v1\nkind: Experiment\nmetadata: {{name: t}}\n{body}");
    let exp = firedrill::lang::spec::parse_experiment("t.yaml", text.as_bytes(), &[])
        .unwrap_or_else(|d| panic!("invalid experiment: {d:#?}"));
    let clock = RunClock::start_now();
    let concurrency = script.concurrency.unwrap_or(8);
    let rollback = script.rollback.unwrap_or(RollbackPolicy::Always);
    let (tx, rx) = watch::channel(0u32);
    let tx = Arc::new(tx);
    let schedule = std::mem::take(&mut script.interrupts);
    let sender = tx.clone();
    tokio::spawn(async move {
        for (at, n) in schedule {
            tokio::time::sleep_until(clock.start + at).await;
            sender.send_replace(n);
        }
    });
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mock = Mock {
        script,
        t0: clock.start,
        clock: Mutex::new(None),
        tries: Mutex::default(),
        calls: calls.clone(),
    };
    let sink = MemorySink::default();
    let (outcome, emitter) = Drill::new(exp, Arc::new(mock))
        .run_id("test")
        .concurrency(concurrency)
        .rollback(rollback)
        .environment("test")
        .clock(clock)
        .sink(sink.clone())
        .interrupts(rx)
        .run_with_emitter()
        .await;
    drop(tx);
    assert!(emitter.errors().is_empty());
    let records = sink.0.lock().unwrap().clone();
    let calls = calls.lock().unwrap().clone();
    Run {
        outcome,
        records,
        calls,
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

#[tokio::test(start_paused = true)]
async fn parallel_branches_take_the_critical_path() {
    let r = run(
        r#"
steps:
  - {id: short, action: wait, with: {duration: 2m}}
  - {id: long, action: wait, with: {duration: 5m}}
  - id: join
    action: k8s.scale
    after: [short, long]
    with: {namespace: web, deployment: join, replicas: 1}
"#,
        Script::default(),
    )
    .await;
    r.assert_verdict(VerdictKind::Pass, 0);
    let join = r.calls("inject");
    assert_eq!(join.len(), 1);
    assert_eq!(
        ms(join[0].start),
        ms(secs(300)),
        "join starts after both branches"
    );
    let short_start =
        r.first_ms(|e| matches!(e, Event::StepStarted { step, .. } if step == "short"));
    let long_start = r.first_ms(|e| matches!(e, Event::StepStarted { step, .. } if step == "long"));
    assert_eq!(
        (short_start, long_start),
        (0, 0),
        "both branches start at once"
    );
    assert_eq!(r.finished_ms(), ms(secs(300)), "5m, not 7m");
}

#[tokio::test(start_paused = true)]
async fn dependencies_and_bounded_concurrency() {
    let body = r#"
steps:
  - {id: x, action: k8s.scale, with: {namespace: web, deployment: x, replicas: 1}}
  - {id: y, action: k8s.scale, with: {namespace: web, deployment: y, replicas: 1}}
  - {id: z, action: k8s.scale, after: x, with: {namespace: web, deployment: z, replicas: 1}}
"#;
    let takes = || HashMap::from([("x", secs(60)), ("y", secs(60)), ("z", secs(60))]);

    // Unbounded: x and y together, z after x.
    let r = run(
        body,
        Script {
            takes: takes(),
            ..Script::default()
        },
    )
    .await;
    r.assert_verdict(VerdictKind::Pass, 0);
    let starts: HashMap<&str, u64> = r
        .calls("inject")
        .iter()
        .map(|c| (c.target.as_str(), ms(c.start)))
        .collect();
    assert_eq!(starts["x"], 0);
    assert_eq!(starts["y"], 0);
    assert_eq!(starts["z"], 60_000, "z waits for x");

    // concurrency: 1 serializes: no two injects overlap, z still after x.
    let r = run(
        body,
        Script {
            takes: takes(),
            concurrency: Some(1),
            ..Script::default()
        },
    )
    .await;
    r.assert_verdict(VerdictKind::Pass, 0);
    let mut injects: Vec<&Call> = r.calls("inject");
    injects.sort_by_key(|c| c.start);
    for w in injects.windows(2) {
        assert!(
            w[1].start >= w[0].end.unwrap(),
            "{} overlaps {}",
            w[1].target,
            w[0].target
        );
    }
    let order: Vec<&str> = injects.iter().map(|c| c.target.as_str()).collect();
    let pos = |t: &str| order.iter().position(|x| *x == t).unwrap();
    assert!(pos("z") > pos("x"));
    assert_eq!(ms(injects[2].end.unwrap()), 180_000);
}

#[tokio::test(start_paused = true)]
async fn step_timeout_aborts_and_rolls_back() {
    let r = run(
        r#"
steps:
  - {id: first, action: k8s.scale, with: {namespace: web, deployment: first, replicas: 1}}
  - id: slow
    action: k8s.scale
    after: first
    timeout: 1m
    with: {namespace: web, deployment: slow, replicas: 1}
  - {id: never, action: wait, after: slow, with: {duration: 1m}}
"#,
        Script {
            takes: HashMap::from([("slow", secs(600))]),
            ..Script::default()
        },
    )
    .await;
    r.assert_verdict(VerdictKind::Aborted, 5);
    let (outcome, attempts, duration) = r.step_finished("slow");
    assert_eq!((outcome, attempts), (StepOutcome::TimedOut, 1));
    assert_eq!(duration, 60_000);
    assert_eq!(r.step_finished("never").0, StepOutcome::Skipped);
    let abort = r.first_ms(|e| matches!(e, Event::AbortTriggered { .. }));
    assert_eq!(abort, 60_000);
    // The completed step is rolled back (the timed-out one was started, so it is too).
    let reverts = r.targets("revert");
    assert!(reverts.contains(&"first"), "{reverts:?}");
    assert_eq!(reverts.last(), Some(&"first"), "reverse order: {reverts:?}");
    assert!(
        r.finished_ms() < 600_000,
        "did not wait for the slow inject"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_with_exponential_backoff() {
    let r = run(
        r#"
steps:
  - id: flaky
    action: k8s.scale
    retry: {attempts: 3, backoff: 10s, factor: 2}
    with: {namespace: web, deployment: flaky, replicas: 1}
"#,
        Script {
            fail_first: HashMap::from([("flaky", 2)]),
            ..Script::default()
        },
    )
    .await;
    r.assert_verdict(VerdictKind::Pass, 0);
    let retries: Vec<(u32, u64)> = r
        .records
        .iter()
        .filter_map(|rec| match &rec.event {
            Event::StepRetrying {
                attempt,
                backoff_ms,
                ..
            } => Some((*attempt, *backoff_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(retries, vec![(1, 10_000), (2, 20_000)]);
    let starts: Vec<u64> = r.calls("inject").iter().map(|c| ms(c.start)).collect();
    assert_eq!(starts, vec![0, 10_000, 30_000]);
    let (outcome, attempts, _) = r.step_finished("flaky");
    assert_eq!((outcome, attempts), (StepOutcome::Succeeded, 3));
}

/// Retries only help where a second try can succeed: a denial, a missing target or a timed-out
/// change is not retried, whatever `retry` says, and the journal says why and of what kind.
#[tokio::test(start_paused = true)]
async fn only_retryable_kinds_are_retried() {
    for (kind, tries, retried) in [
        (ErrorKind::Denied, 1, false),
        (ErrorKind::NotFound, 1, false),
        (ErrorKind::Unavailable, 3, true),
        (ErrorKind::Throttled, 3, true),
    ] {
        let r = run(
            r#"
steps:
  - id: flaky
    action: k8s.scale
    retry: {attempts: 3, backoff: 10s, factor: 2}
    with: {namespace: web, deployment: flaky, replicas: 1}
"#,
            Script {
                fail_first: HashMap::from([("flaky", u32::MAX)]),
                fail_kind: HashMap::from([("flaky", kind)]),
                ..Script::default()
            },
        )
        .await;
        assert_eq!(r.calls("inject").len(), tries, "{kind}");
        let (error, error_kind) = r
            .records
            .iter()
            .find_map(|rec| match &rec.event {
                Event::StepFinished {
                    error, error_kind, ..
                } => Some((error.clone().unwrap_or_default(), *error_kind)),
                _ => None,
            })
            .unwrap();
        assert_eq!(error_kind, Some(kind), "{error}");
        assert_eq!(error.contains("not retried"), !retried, "{kind}: {error}");
    }
    // A step that timed out while changing something is not tried again.
    let r = run(
        r#"
steps:
  - id: slow
    action: db.cluster_failover
    timeout: 1m
    retry: {attempts: 3, backoff: 10s}
    with: {cluster: slow}
"#,
        Script {
            takes: HashMap::from([("slow", secs(600))]),
            ..Script::default()
        },
    )
    .await;
    assert_eq!(
        r.calls("inject").len(),
        1,
        "a timed-out failover is not retried"
    );
    let (outcome, attempts, _) = r.step_finished("slow");
    assert_eq!((outcome, attempts), (StepOutcome::TimedOut, 1));
}

#[tokio::test(start_paused = true)]
async fn abort_rolls_back_in_reverse_dependency_order() {
    let r = run(
        r#"
steps:
  - {id: a, action: k8s.scale, with: {namespace: web, deployment: a, replicas: 1}}
  - {id: b, action: az.power_interruption, after: a, with: {zone: b}}
  - {id: c, action: db.cluster_failover, after: b, with: {cluster: c}}
  - {id: d, action: k8s.scale, after: c, with: {namespace: web, deployment: d, replicas: 1}}
"#,
        Script {
            fail_first: HashMap::from([("c", u32::MAX)]),
            ..Script::default()
        },
    )
    .await;
    r.assert_verdict(VerdictKind::Aborted, 5);
    assert_eq!(r.step_finished("c").0, StepOutcome::Failed);
    assert_eq!(r.step_finished("d").0, StepOutcome::Skipped);
    assert!(
        r.find(|e| matches!(e, Event::StepStarted { step, .. } if step == "d"))
            .is_empty()
    );
    assert_eq!(r.targets("inject"), vec!["a", "b", "c"]);
    assert_eq!(r.targets("revert"), vec!["b", "a"]);
    let rolled: Vec<&str> = r
        .records
        .iter()
        .filter_map(|rec| match &rec.event {
            Event::RollbackFinished { step, ok: true, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(rolled, vec!["b", "a"]);
}

#[tokio::test(start_paused = true)]
async fn on_failure_continue_runs_children_and_misses() {
    let r = run(
        r#"
steps:
  - {id: failover, action: db.cluster_failover, on_failure: continue, with: {cluster: main}}
  - {id: after, action: wait, after: failover, with: {duration: 1m}}
"#,
        Script {
            fail_first: HashMap::from([("main", u32::MAX)]),
            ..Script::default()
        },
    )
    .await;
    r.assert_verdict(VerdictKind::Missed, 4);
    assert_eq!(r.step_finished("failover").0, StepOutcome::Failed);
    assert_eq!(r.step_finished("after").0, StepOutcome::Succeeded);
    assert!(
        r.find(|e| matches!(e, Event::AbortTriggered { .. }))
            .is_empty()
    );
    assert!(
        r.outcome.reasons.iter().any(|s| s.contains("failover")),
        "{:?}",
        r.outcome.reasons
    );
}

#[tokio::test(start_paused = true)]
async fn before_hypothesis_not_met_injects_nothing() {
    let r = run(
        r#"
steady_state:
  probes:
    - {name: api-ok, type: service.metrics, with: {service: api}, tolerance: {path: availability, min: 0.99}}
  before: [api-ok]
steps:
  - {id: zone, action: az.power_interruption, with: {zone: a}}
"#,
        Script::default().metric("api", |_, _| json!({"availability": 0.5})),
    )
    .await;
    r.assert_verdict(VerdictKind::NotSteady, 3);
    assert!(r.calls.is_empty(), "nothing injected: {:?}", r.calls);
    assert!(
        r.find(|e| matches!(e, Event::StepStarted { .. }))
            .is_empty()
    );
}

const DURING: &str = r#"
steady_state:
  probes:
    - {name: errors, type: service.metrics, with: {service: api}, tolerance: {path: error_rate, max: 0.01}}
    - {name: restarts, type: service.metrics, with: {service: pods}, tolerance: {path: restarts}}
  during:
    interval: 10s
    probes: [errors]
    abort_when:
      - {probe: errors, above: 0.05, for: 5m}
      - {probe: restarts, increase_above: 10, within: 5m}
steps:
  - {id: zone, action: az.power_interruption, with: {zone: a}}
  - {id: soak, action: wait, after: zone, with: {duration: 20m}}
"#;

/// Error rate 0.1 from 60s for `breach`, else 0; restarts steady.
fn breach(breach: Duration) -> Script {
    Script::default()
        .metric("api", move |t, _| {
            let on = t >= secs(60) && t < secs(60) + breach;
            json!({"error_rate": if on { 0.1 } else { 0.0 }})
        })
        .metric("pods", |_, _| json!({"restarts": 3}))
}

#[tokio::test(start_paused = true)]
async fn short_breach_does_not_abort() {
    let r = run(DURING, breach(secs(120))).await;
    r.assert_verdict(VerdictKind::Pass, 0);
    assert!(
        r.find(|e| matches!(e, Event::AbortTriggered { .. }))
            .is_empty()
    );
    assert!(
        !r.find(|e| matches!(e, Event::Deviation { .. })).is_empty(),
        "the breach is recorded as deviations"
    );
    assert_eq!(r.finished_ms(), 1_200_000);
}

#[tokio::test(start_paused = true)]
async fn sustained_breach_aborts_after_its_window() {
    let r = run(DURING, breach(secs(360))).await;
    r.assert_verdict(VerdictKind::Aborted, 5);
    let abort = r.first_ms(|e| matches!(e, Event::AbortTriggered { .. }));
    let expected = 60_000 + 300_000;
    assert!(
        abort.abs_diff(expected) <= 10_000,
        "aborted at {abort}ms, expected ~{expected}ms"
    );
    assert_eq!(r.step_finished("soak").0, StepOutcome::Cancelled);
    assert_eq!(r.targets("revert"), vec!["a"]);
}

#[tokio::test(start_paused = true)]
async fn increase_within_window_aborts() {
    // Restarts jump by 20 at 2m: aborts at once.
    let script = breach(Duration::ZERO).metric(
        "pods",
        |t, _| json!({"restarts": if t >= secs(120) { 25 } else { 5 }}),
    );
    let r = run(DURING, script).await;
    r.assert_verdict(VerdictKind::Aborted, 5);
    let abort = r.find(|e| matches!(e, Event::AbortTriggered { .. }));
    assert_eq!(abort.len(), 1);
    assert_eq!(abort[0].elapsed_ms, 120_000);
    assert!(
        matches!(&abort[0].event, Event::AbortTriggered { reason } if reason.contains("restarts")),
        "{:?}",
        abort[0].event
    );
    assert_eq!(r.targets("revert"), vec!["a"]);

    // A slow rise (1 a minute, 5 per window) never does.
    let script =
        breach(Duration::ZERO).metric("pods", |t, _| json!({"restarts": t.as_secs() / 60}));
    let r = run(DURING, script).await;
    r.assert_verdict(VerdictKind::Pass, 0);
}

const TWO_ZONES: &str = r#"
steps:
  - {id: zone-a, action: az.power_interruption, with: {zone: a}}
  - {id: zone-b, action: az.power_interruption, after: zone-a, with: {zone: b}}
  - {id: soak, action: wait, after: zone-b, with: {duration: 10m}}
"#;

#[tokio::test(start_paused = true)]
async fn first_interrupt_aborts_and_rolls_back() {
    let r = run(
        TWO_ZONES,
        Script {
            interrupts: vec![(secs(90), 1)],
            ..Script::default()
        },
    )
    .await;
    r.assert_verdict(VerdictKind::Aborted, 5);
    let counts: Vec<u32> = r
        .records
        .iter()
        .filter_map(|rec| match rec.event {
            Event::Interrupted { count, .. } => Some(count),
            _ => None,
        })
        .collect();
    assert_eq!(counts, vec![1]);
    assert_eq!(
        r.first_ms(|e| matches!(e, Event::AbortTriggered { .. })),
        90_000
    );
    assert_eq!(r.step_finished("soak").0, StepOutcome::Cancelled);
    assert_eq!(r.targets("revert"), vec!["b", "a"]);
    assert!(
        r.find(|e| matches!(e, Event::RollbackOwed { .. }))
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn second_interrupt_during_rollbacks_leaves_them_owed() {
    let r = run(
        TWO_ZONES,
        Script {
            interrupts: vec![(secs(60), 1), (secs(120), 2)],
            revert_takes: HashMap::from([("b", secs(3600))]),
            ..Script::default()
        },
    )
    .await;
    r.assert_verdict(VerdictKind::RollbackFailed, 6);
    let counts: Vec<u32> = r
        .records
        .iter()
        .filter_map(|rec| match rec.event {
            Event::Interrupted { count, .. } => Some(count),
            _ => None,
        })
        .collect();
    assert_eq!(counts, vec![1, 2]);
    let owed: Vec<&str> = r
        .records
        .iter()
        .filter_map(|rec| match &rec.event {
            Event::RollbackOwed { step, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(owed, vec!["zone-b", "zone-a"]);
    // b's revert was cut off, a's never started.
    assert_eq!(r.targets("revert"), vec!["b"]);
    assert!(r.calls("revert")[0].end.is_none());
    assert_eq!(r.finished_ms(), 120_000, "stopped at once");
}

const RECOVERY: &str = r#"
objectives: {rto: 5m, rpo: 1m, mttd: 1m}
steady_state:
  probes:
    - {name: api-ok, type: service.metrics, with: {service: api}, tolerance: {path: ok, equals: true}}
    - {name: paged, type: service.metrics, with: {service: alert}, tolerance: {path: firing, equals: true}}
    - {name: newest, type: db.cluster, with: {cluster: main}}
steps:
  - {id: warmup, action: wait, with: {duration: 1m}}
  - {id: zone, action: az.power_interruption, after: warmup, with: {zone: a}}
  - {id: soak, action: wait, after: zone, with: {duration: 3m}}
recovery:
  fault: zone
  probes: [api-ok]
  detection: paged
  data_loss: {probe: newest, field: latest_write}
  interval: 10s
  consecutive: 3
"#;

/// The fault lands at 60s; the API is back `ok_after` it, the alert fires 40s after it and the
/// newest surviving write is from 30s before it.
fn recovers(ok_after: Option<Duration>) -> Script {
    let fault = secs(60);
    Script::default()
        .metric(
            "api",
            move |t, _| json!({"ok": ok_after.is_some_and(|d| t >= fault + d)}),
        )
        .metric(
            "alert",
            move |t, _| json!({"firing": t >= fault + secs(40)}),
        )
        .metric(
            "main",
            move |_, clock| json!({"latest_write": clock.at(fault - secs(30)).to_rfc3339()}),
        )
}

fn measurement(o: &Outcome, name: &str) -> (Option<u64>, bool) {
    let m = o
        .measurements
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no {name} measurement in {:?}", o.measurements));
    (m.measured_ms, m.met)
}

#[tokio::test(start_paused = true)]
async fn rto_mttd_and_rpo_are_measured() {
    let r = run(RECOVERY, recovers(Some(secs(90)))).await;
    r.assert_verdict(VerdictKind::Pass, 0);
    let recovered: Vec<u64> = r
        .records
        .iter()
        .filter_map(|rec| match rec.event {
            Event::Recovered { after_ms } => Some(after_ms),
            _ => None,
        })
        .collect();
    assert_eq!(recovered.len(), 1);
    assert!(
        recovered[0].abs_diff(90_000) <= 10_000,
        "recovered after {}ms",
        recovered[0]
    );
    // ... declared only after the third consecutive passing poll.
    let declared = r.first_ms(|e| matches!(e, Event::Recovered { .. }));
    assert_eq!(declared, 60_000 + 90_000 + 2 * 10_000);
    let (rto, met) = measurement(&r.outcome, "rto");
    assert!(met);
    assert!(rto.unwrap().abs_diff(90_000) <= 10_000, "{rto:?}");
    let (mttd, met) = measurement(&r.outcome, "mttd");
    assert!(met);
    assert!(mttd.unwrap().abs_diff(40_000) <= 10_000, "{mttd:?}");
    assert_eq!(measurement(&r.outcome, "rpo"), (Some(30_000), true));
    assert!(
        !r.find(|e| matches!(
            e,
            Event::DataLossMeasured {
                loss_ms: Some(30_000),
                ..
            }
        ))
        .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn never_recovering_exceeds_the_deadline() {
    let r = run(RECOVERY, recovers(None)).await;
    r.assert_verdict(VerdictKind::Missed, 4);
    let deadline = r.find(|e| matches!(e, Event::RecoveryDeadlineExceeded { .. }));
    assert_eq!(deadline.len(), 1);
    // Default deadline: twice the RTO, from the fault at 60s.
    assert!(deadline[0].elapsed_ms.abs_diff(60_000 + 600_000) <= 10_000);
    assert!(r.find(|e| matches!(e, Event::Recovered { .. })).is_empty());
    assert_eq!(measurement(&r.outcome, "rto"), (None, false));
    assert!(
        r.outcome
            .reasons
            .iter()
            .any(|s| s.starts_with("RTO missed")),
        "{:?}",
        r.outcome.reasons
    );
    // Rollbacks still run (policy: always).
    assert_eq!(r.targets("revert"), vec!["a"]);
}

#[tokio::test(start_paused = true)]
async fn rollback_never_is_owed_not_failed() {
    let r = run(
        TWO_ZONES,
        Script {
            rollback: Some(RollbackPolicy::Never),
            ..Script::default()
        },
    )
    .await;
    assert_ne!(r.outcome.verdict, VerdictKind::RollbackFailed);
    r.assert_verdict(VerdictKind::Pass, 0);
    assert!(r.calls("revert").is_empty());
    let owed: Vec<(&str, &str)> = r
        .records
        .iter()
        .filter_map(|rec| match &rec.event {
            Event::RollbackOwed { step, reason, .. } => Some((step.as_str(), reason.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        owed,
        vec![
            ("zone-b", "--rollback never"),
            ("zone-a", "--rollback never")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn rollback_on_failure_skips_a_passing_run() {
    let r = run(
        TWO_ZONES,
        Script {
            rollback: Some(RollbackPolicy::OnFailure),
            ..Script::default()
        },
    )
    .await;
    r.assert_verdict(VerdictKind::Pass, 0);
    assert!(r.calls("revert").is_empty());
    assert!(
        r.find(|e| matches!(
            e,
            Event::RollbackStarted { .. } | Event::RollbackOwed { .. }
        ))
        .is_empty()
    );

    // ... but a failing one is rolled back.
    let r = run(
        TWO_ZONES,
        Script {
            rollback: Some(RollbackPolicy::OnFailure),
            fail_first: HashMap::from([("b", u32::MAX)]),
            ..Script::default()
        },
    )
    .await;
    r.assert_verdict(VerdictKind::Aborted, 5);
    assert_eq!(r.targets("revert"), vec!["b", "a"]);
}

#[tokio::test(start_paused = true)]
async fn failed_rollback_is_reported_and_the_rest_still_run() {
    let r = run(
        TWO_ZONES,
        Script {
            revert_fails: vec!["b"],
            ..Script::default()
        },
    )
    .await;
    r.assert_verdict(VerdictKind::RollbackFailed, 6);
    assert_eq!(r.targets("revert"), vec!["b", "a"]);
    let finished: Vec<(&str, bool)> = r
        .records
        .iter()
        .filter_map(|rec| match &rec.event {
            Event::RollbackFinished { step, ok, .. } => Some((step.as_str(), *ok)),
            _ => None,
        })
        .collect();
    assert_eq!(finished, vec![("zone-b", false), ("zone-a", true)]);
}

#[tokio::test(start_paused = true)]
async fn interrupt_while_waiting_for_recovery_aborts() {
    // The method ends at 4m; recovery never comes; Ctrl-C at 6m.
    let r = run(
        RECOVERY,
        Script {
            interrupts: vec![(secs(360), 1)],
            ..recovers(None)
        },
    )
    .await;
    r.assert_verdict(VerdictKind::Aborted, 5);
    assert_eq!(
        r.first_ms(|e| matches!(e, Event::Interrupted { count: 1, .. })),
        360_000
    );
    assert!(
        r.find(|e| matches!(e, Event::RecoveryDeadlineExceeded { .. }))
            .is_empty()
    );
    assert_eq!(measurement(&r.outcome, "rto"), (None, false));
    assert_eq!(r.targets("revert"), vec!["a"]);
    assert_eq!(r.finished_ms(), 360_000);
}

#[tokio::test(start_paused = true)]
async fn second_interrupt_during_the_method_stops_at_once() {
    let r = run(
        TWO_ZONES,
        Script {
            interrupts: vec![(secs(30), 2)],
            ..Script::default()
        },
    )
    .await;
    r.assert_verdict(VerdictKind::RollbackFailed, 6);
    assert!(r.calls("revert").is_empty());
    let owed = r.find(|e| matches!(e, Event::RollbackOwed { .. }));
    assert_eq!(owed.len(), 2);
    assert_eq!(r.step_finished("soak").0, StepOutcome::Cancelled);
    assert_eq!(r.finished_ms(), 30_000);
}

#[tokio::test(start_paused = true)]
async fn wait_until_and_assert_builtins() {
    let body = |deadline: &str| {
        format!(
            r#"
steady_state:
  probes:
    - {{name: api-ok, type: service.metrics, with: {{service: api}}, tolerance: {{path: ok, equals: true}}}}
steps:
  - {{id: until, action: wait_until, with: {{probe: api-ok, deadline: {deadline}, interval: 10s}}}}
  - {{id: check, action: assert, after: until, with: {{probe: api-ok}}}}
"#
        )
    };
    let script = || Script::default().metric("api", |t, _| json!({"ok": t >= secs(90)}));

    let r = run(&body("5m"), script()).await;
    r.assert_verdict(VerdictKind::Pass, 0);
    assert_eq!(
        r.step_finished("until"),
        (StepOutcome::Succeeded, 1, 90_000)
    );
    assert_eq!(r.step_finished("check").0, StepOutcome::Succeeded);

    let r = run(&body("1m"), script()).await;
    r.assert_verdict(VerdictKind::Aborted, 5);
    let (outcome, _, took) = r.step_finished("until");
    assert_eq!(outcome, StepOutcome::Failed);
    assert!(took <= 60_000, "gave up after {took}ms");
    assert_eq!(r.step_finished("check").0, StepOutcome::Skipped);
}

// ---- impact-aware recovery -----------------------------------------------------------------

/// The recovery section of [`RECOVERY`] with `consecutive: 1` and `extra` recovery keys.
fn recovery_body(extra: &str) -> String {
    RECOVERY.replace("  consecutive: 3\n", &format!("  consecutive: 1\n{extra}"))
}

fn rto_of(o: &Outcome) -> firedrill::engine::events::Measurement {
    o.measurements
        .iter()
        .find(|m| m.name == "rto")
        .cloned()
        .expect("an RTO measurement")
}

/// The API keeps answering for 25s after the fault (say a pod Terminating for its grace
/// period), is down until 85s after it, then back. Polled every 10s from the fault on, the first
/// poll passes: before impact-aware recovery that poll was "recovered after 0s".
#[tokio::test(start_paused = true)]
async fn a_lagging_impact_is_not_mistaken_for_recovery() {
    let fault = secs(60);
    let script = recovers(None).metric(
        "api",
        move |t, _| json!({"ok": t < fault + secs(25) || t >= fault + secs(85)}),
    );
    let r = run(&recovery_body(""), script).await;
    r.assert_verdict(VerdictKind::Pass, 0);
    let rto = rto_of(&r.outcome);
    // Polls at +0 +10 +20 pass, +30 is the first to fail: the impact, at the poll's resolution.
    assert_eq!(rto.impact_ms, Some(30_000));
    // Down until +85: the poll at +90 starts the final passing streak.
    assert_eq!(rto.measured_ms, Some(90_000));
    assert!(rto.met && !rto.no_impact);
    assert!(
        rto.detail.contains("impact first seen at +1m30s"),
        "{}",
        rto.detail
    );
    let seen: Vec<u64> = r
        .records
        .iter()
        .filter_map(|rec| match &rec.event {
            Event::ImpactObserved { after_ms, failing } => {
                assert_eq!(failing, &vec!["api-ok".to_string()]);
                Some(*after_ms)
            }
            _ => None,
        })
        .collect();
    assert_eq!(seen, vec![30_000]);
}

/// A fault step that takes 40s (a blocking failover call): its impact shows 5s after it starts.
/// The recovery clock and its polls start with the step, not when it returns.
#[tokio::test(start_paused = true)]
async fn the_recovery_clock_starts_when_the_fault_step_starts() {
    let fault = secs(60);
    let mut script = recovers(None).metric(
        "api",
        move |t, _| json!({"ok": t < fault + secs(5) || t >= fault + secs(55)}),
    );
    script.takes.insert("a", secs(40));
    let r = run(&recovery_body(""), script).await;
    r.assert_verdict(VerdictKind::Pass, 0);
    let rto = rto_of(&r.outcome);
    assert_eq!(rto.impact_ms, Some(10_000), "seen by the poll at +10s");
    assert_eq!(
        rto.measured_ms,
        Some(60_000),
        "first passing poll after +55s"
    );
    // The first recovery poll ran while the fault step was still running.
    let fault_start = r.first_ms(|e| matches!(e, Event::FaultInjected { .. }));
    let step_end = r.first_ms(|e| matches!(e, Event::StepFinished { step, .. } if step == "zone"));
    assert_eq!(fault_start, 60_000);
    assert_eq!(step_end, 100_000);
    let impact = r.first_ms(|e| matches!(e, Event::ImpactObserved { .. }));
    assert!(impact < step_end, "impact seen at {impact}ms");
}

/// Recovery probes that never fail: no RTO is reported as met; the run says so and passes.
#[tokio::test(start_paused = true)]
async fn probes_that_never_fail_report_no_impact() {
    let script = recovers(None).metric("api", |_, _| json!({"ok": true}));
    let r = run(&recovery_body(""), script).await;
    r.assert_verdict(VerdictKind::Pass, 0);
    let rto = rto_of(&r.outcome);
    assert!(rto.no_impact && rto.met, "{rto:?}");
    assert_eq!((rto.measured_ms, rto.impact_ms), (None, None));
    assert_eq!(rto.result_word(), "no impact");
    assert!(
        rto.detail
            .starts_with("no impact observed: the recovery probes never failed"),
        "{}",
        rto.detail
    );
    // The window: until the method ended (soak: 3m after the fault at 60s) and one more poll.
    let no_impact = r.find(|e| matches!(e, Event::NoImpactObserved { .. }));
    assert_eq!(no_impact.len(), 1);
    let Event::NoImpactObserved {
        window_ms,
        expected,
        polls,
    } = &no_impact[0].event
    else {
        unreachable!()
    };
    assert!(!expected);
    // The method ends at +3m, the same instant as a poll: that poll or the next closes it.
    assert!((180_000..=190_000).contains(window_ms), "{window_ms}");
    assert_eq!(u64::from(*polls), window_ms / 10_000 + 1);
    assert!(r.find(|e| matches!(e, Event::Recovered { .. })).is_empty());
    // MTTD (the alert fires 40s after the fault, but there was nothing to detect) is not held
    // against the run either; the reasons say why RTO was not measured.
    assert!(
        r.outcome.reasons[0].starts_with("RTO not measured: no impact observed"),
        "{:?}",
        r.outcome.reasons
    );
    assert!(
        !r.outcome.reasons.iter().any(|s| s == "all objectives met"),
        "{:?}",
        r.outcome.reasons
    );
}

/// `expect_impact: 1m`: probes still passing a minute after the fault are a deviation (exit 4),
/// decided at that minute, not at the recovery deadline.
#[tokio::test(start_paused = true)]
async fn an_expected_impact_that_never_shows_is_a_deviation() {
    let script = recovers(None).metric("api", |_, _| json!({"ok": true}));
    let r = run(&recovery_body("  expect_impact: 1m\n"), script).await;
    r.assert_verdict(VerdictKind::Missed, 4);
    let rto = rto_of(&r.outcome);
    assert!(rto.no_impact && !rto.met, "{rto:?}");
    assert_eq!(rto.result_word(), "DEVIATED");
    assert!(rto.detail.contains("must show within 1m"), "{}", rto.detail);
    let at = r.first_ms(|e| matches!(e, Event::NoImpactObserved { expected: true, .. }));
    assert_eq!(at, 60_000 + 60_000);
    assert!(
        r.outcome
            .reasons
            .iter()
            .any(|s| s.starts_with("deviation: no impact observed")),
        "{:?}",
        r.outcome.reasons
    );
    // `expect_impact: true` with an impact that shows: an ordinary pass.
    let r = run(
        &recovery_body("  expect_impact: true\n"),
        recovers(Some(secs(90))),
    )
    .await;
    r.assert_verdict(VerdictKind::Pass, 0);
    assert_eq!(rto_of(&r.outcome).impact_ms, Some(0));
}
