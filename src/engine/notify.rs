//! Notification delivery: best effort, bounded, and never part of a verdict.
//!
//! A [`Notifier`] owns a thread with its own (unpaused) tokio runtime, so deliveries run on real
//! time even while a drill runs on the virtual clock; events reach it through a bounded queue
//! (when it is full, events are dropped and counted, never waited for). Each delivery has a 5 s
//! timeout and at most 3 attempts (retrying connection errors, 429 and 5xx only); every outcome
//! is kept as a [`Delivery`] for the run's `notifications.jsonl`. [`DrillEvents`] is the engine
//! [`Sink`] that turns a drill's records into notifications.
//!
//! Formats: Slack incoming webhooks (`{"text": ...}`); PagerDuty Events API v2 (change events at
//! `/v2/change/enqueue`; an alert at `/v2/enqueue` on an abort or a failed rollback, with the
//! dedup key `firedrill-<run id>`, resolved at the end when the drill was rolled back); generic
//! webhooks per Standard Webhooks (`{"type", "timestamp", "data"}` signed with
//! `webhook-signature: v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>`, the secret
//! taken base64-decoded after a `whsec_` prefix, else as its bytes).

use crate::engine::events::{Event, Record, VerdictKind};
use crate::engine::executor::Sink;
use crate::lang::duration::format_ms as human;
use crate::lang::notify::{EventKind, NotifySink, SinkKind};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const QUEUE: usize = 256;
/// Where a run's (or a game day's) delivery outcomes are kept, next to its journal.
pub const DELIVERIES_FILE: &str = "notifications.jsonl";
const TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: u32 = 3;
/// How long deliveries still queued when the run ends may take, in all.
const DRAIN: Duration = Duration::from_secs(15);
/// A sink that failed this many deliveries in a row is not tried again in this run.
const GIVE_UP_AFTER: u32 = 3;

/// One thing to notify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub kind: EventKind,
    /// One line a person reads.
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gameday_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictKind>,
    pub at: DateTime<Utc>,
    /// Unique per notification (the webhook id).
    pub id: String,
}

/// What became of one notification at one sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub sink: String,
    pub event: EventKind,
    pub id: String,
    pub ok: bool,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// A sink with its secrets read.
#[derive(Clone)]
pub struct Resolved {
    pub sink: NotifySink,
    /// The Slack webhook URL or the PagerDuty routing key.
    secret: Option<String>,
    /// The webhook signing key.
    signing: Option<Vec<u8>>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resolved({})", self.sink.kind.name())
    }
}

/// Read every sink's secrets from the environment; an unset variable is a problem (the CLI
/// stops before anything runs: stakeholders expecting to hear of a drill must).
pub fn resolve(
    sinks: &[NotifySink],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Resolved>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for s in sinks {
        let get = |v: &str, problems: &mut Vec<String>| match env(v).filter(|x| !x.is_empty()) {
            Some(x) => Some(x),
            None => {
                problems.push(format!(
                    "{} notifications (line {}): the environment variable {v} is not set",
                    s.kind.name(),
                    s.loc.line
                ));
                None
            }
        };
        match &s.kind {
            SinkKind::Slack { webhook_url_env } => {
                if let Some(u) = get(webhook_url_env, &mut problems) {
                    if url::Url::parse(&u).is_err() {
                        problems.push(format!(
                            "slack notifications (line {}): {webhook_url_env} does not hold a URL",
                            s.loc.line
                        ));
                    }
                    out.push(Resolved {
                        sink: s.clone(),
                        secret: Some(u),
                        signing: None,
                    });
                }
            }
            SinkKind::PagerDuty {
                routing_key_env, ..
            } => {
                if let Some(k) = get(routing_key_env, &mut problems) {
                    out.push(Resolved {
                        sink: s.clone(),
                        secret: Some(k),
                        signing: None,
                    });
                }
            }
            SinkKind::Webhook { secret_env, .. } => {
                let signing = match secret_env {
                    None => None,
                    Some(v) => match get(v, &mut problems) {
                        Some(x) => match x.strip_prefix("whsec_") {
                            Some(b64) => {
                                match base64::engine::general_purpose::STANDARD.decode(b64) {
                                    Ok(k) => Some(k),
                                    Err(_) => {
                                        problems.push(format!("webhook notifications (line {}): {v} starts with `whsec_` but the rest is not base64", s.loc.line));
                                        None
                                    }
                                }
                            }
                            None => Some(x.into_bytes()),
                        },
                        None => None,
                    },
                };
                out.push(Resolved {
                    sink: s.clone(),
                    secret: None,
                    signing,
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The Standard Webhooks signature of a body.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

enum Msg {
    Send(Notification),
}

/// Delivers notifications on its own thread.
pub struct Notifier {
    tx: Option<std::sync::mpsc::SyncSender<Msg>>,
    /// Set by `finish`: queued deliveries after this instant are not attempted.
    drain_until: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    thread: Option<std::thread::JoinHandle<Vec<Delivery>>>,
    dropped: Arc<AtomicU64>,
    seq: AtomicU64,
}

impl Notifier {
    /// `None` when there is nothing to deliver to.
    pub fn start(sinks: Vec<Resolved>) -> Option<Arc<Notifier>> {
        if sinks.is_empty() {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(QUEUE);
        let drain_until: Arc<std::sync::Mutex<Option<std::time::Instant>>> = Default::default();
        let until = drain_until.clone();
        let thread = std::thread::Builder::new()
            .name("firedrill-notify".into())
            .spawn(move || deliver_all(sinks, rx, until))
            .ok()?;
        Some(Arc::new(Notifier {
            tx: Some(tx),
            drain_until,
            thread: Some(thread),
            dropped: Arc::new(AtomicU64::new(0)),
            seq: AtomicU64::new(0),
        }))
    }

    /// Queue a notification; never blocks (a full queue drops it and counts it).
    pub fn send(&self, mut n: Notification) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        if n.id.is_empty() {
            n.id = format!(
                "msg_{}_{seq}",
                n.run_id
                    .as_deref()
                    .or(n.gameday_id.as_deref())
                    .unwrap_or("firedrill")
            );
        }
        if let Some(tx) = &self.tx
            && tx.try_send(Msg::Send(n)).is_err()
        {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Deliver what is queued and stop; the outcomes, and how many were dropped.
    pub fn finish(mut self) -> (Vec<Delivery>, u64) {
        // What is still queued gets at most this long: a dead endpoint must not hold the CLI.
        if let Ok(mut d) = self.drain_until.lock() {
            *d = Some(std::time::Instant::now() + DRAIN);
        }
        drop(self.tx.take());
        let out = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        (out, self.dropped.load(Ordering::SeqCst))
    }
}

fn deliver_all(
    sinks: Vec<Resolved>,
    rx: std::sync::mpsc::Receiver<Msg>,
    drain_until: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
) -> Vec<Delivery> {
    crate::engine::generic::install_crypto_provider();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let Ok(client) = reqwest::Client::builder().timeout(TIMEOUT).build() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // PagerDuty alerts triggered, by dedup key (resolved at the end when rolled back).
    let mut triggered: std::collections::HashSet<String> = Default::default();
    let mut failures = vec![0u32; sinks.len()];
    while let Ok(Msg::Send(n)) = rx.recv() {
        for (i, s) in sinks.iter().enumerate() {
            if !s.sink.wants(n.kind) {
                continue;
            }
            let late = drain_until
                .lock()
                .ok()
                .and_then(|d| *d)
                .is_some_and(|d| std::time::Instant::now() > d);
            for (endpoint, body, headers) in requests(s, &n, &mut triggered) {
                let skip = if late {
                    Some(format!(
                        "not sent: the run ended and queued notifications had {} to go out",
                        crate::lang::duration::format(DRAIN)
                    ))
                } else if failures[i] >= GIVE_UP_AFTER {
                    Some(format!(
                        "not sent: {GIVE_UP_AFTER} deliveries to this sink failed in a row"
                    ))
                } else {
                    None
                };
                let d = match skip {
                    Some(why) => Delivery {
                        sink: s.sink.kind.name().into(),
                        event: n.kind,
                        id: n.id.clone(),
                        ok: false,
                        attempts: 0,
                        status: None,
                        error: Some(why),
                        at: Utc::now(),
                    },
                    None => rt.block_on(post(
                        &client,
                        s.sink.kind.name(),
                        &endpoint,
                        body,
                        headers,
                        &n,
                    )),
                };
                if d.attempts > 0 {
                    failures[i] = if d.ok { 0 } else { failures[i] + 1 };
                }
                out.push(d);
            }
        }
    }
    out
}

type Request = (String, String, Vec<(String, String)>);

/// The HTTP requests a notification makes at one sink.
fn requests(
    s: &Resolved,
    n: &Notification,
    triggered: &mut std::collections::HashSet<String>,
) -> Vec<Request> {
    let json_headers = vec![("content-type".to_string(), "application/json".to_string())];
    match &s.sink.kind {
        SinkKind::Slack { .. } => {
            let text = format!("*firedrill* · {}", n.title);
            vec![(
                s.secret.clone().unwrap_or_default(),
                json!({ "text": text }).to_string(),
                json_headers,
            )]
        }
        SinkKind::PagerDuty { events_url, .. } => {
            let key = s.secret.clone().unwrap_or_default();
            let dedup = format!(
                "firedrill-{}",
                n.run_id
                    .as_deref()
                    .or(n.gameday_id.as_deref())
                    .unwrap_or("run")
            );
            let details = json!({
                "event": n.kind.name(),
                "run_id": n.run_id,
                "gameday_id": n.gameday_id,
                "experiment": n.experiment,
                "environment": n.environment,
                "verdict": n.verdict,
            });
            let mut out = Vec::new();
            match n.kind {
                EventKind::Aborted | EventKind::RollbackFailed => {
                    let severity = if n.kind == EventKind::RollbackFailed {
                        "critical"
                    } else {
                        "error"
                    };
                    triggered.insert(dedup.clone());
                    out.push((
                        format!("{events_url}/v2/enqueue"),
                        json!({
                            "routing_key": key,
                            "event_action": "trigger",
                            "dedup_key": dedup,
                            "payload": {
                                "summary": truncate(&n.title, 1024),
                                "source": "firedrill",
                                "severity": severity,
                                "component": n.experiment,
                                "group": n.environment,
                                "class": n.kind.name(),
                                "timestamp": n.at.to_rfc3339(),
                                "custom_details": details,
                            }
                        })
                        .to_string(),
                        json_headers.clone(),
                    ));
                }
                _ => {
                    out.push((
                        format!("{events_url}/v2/change/enqueue"),
                        json!({
                            "routing_key": key,
                            "payload": {
                                "summary": truncate(&n.title, 1024),
                                "source": "firedrill",
                                "timestamp": n.at.to_rfc3339(),
                                "custom_details": details,
                            }
                        })
                        .to_string(),
                        json_headers.clone(),
                    ));
                    // The drill ended rolled back: the alert its abort raised is over.
                    if n.kind == EventKind::Finished
                        && n.verdict != Some(VerdictKind::RollbackFailed)
                        && triggered.remove(&dedup)
                    {
                        out.push((
                            format!("{events_url}/v2/enqueue"),
                            json!({ "routing_key": key, "event_action": "resolve", "dedup_key": dedup }).to_string(),
                            json_headers,
                        ));
                    }
                }
            }
            out
        }
        SinkKind::Webhook { url, .. } => {
            let body = json!({
                "type": format!("firedrill.{}", n.kind.name()),
                "timestamp": n.at.to_rfc3339(),
                "data": n,
            })
            .to_string();
            let mut headers = json_headers;
            if let Some(key) = &s.signing {
                let ts = Utc::now().timestamp();
                headers.push(("webhook-id".into(), n.id.clone()));
                headers.push(("webhook-timestamp".into(), ts.to_string()));
                headers.push(("webhook-signature".into(), sign(key, &n.id, ts, &body)));
            }
            vec![(url.clone(), body, headers)]
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars()
            .take(max - 1)
            .chain(std::iter::once('…'))
            .collect()
    }
}

/// The host and port of a URL (Slack's URL is a secret: only its host is ever shown).
fn host_of(u: &str) -> String {
    url::Url::parse(u)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                format!(
                    "{h}{}",
                    u.port().map(|p| format!(":{p}")).unwrap_or_default()
                )
            })
        })
        .unwrap_or_else(|| "?".into())
}

async fn post(
    client: &reqwest::Client,
    sink: &str,
    url: &str,
    body: String,
    headers: Vec<(String, String)>,
    n: &Notification,
) -> Delivery {
    let mut last_err = None;
    let mut status = None;
    let mut attempts = 0;
    for attempt in 1..=ATTEMPTS {
        attempts = attempt;
        let mut req = client.post(url).body(body.clone());
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(r) => {
                let code = r.status().as_u16();
                status = Some(code);
                if r.status().is_success() {
                    return Delivery {
                        sink: sink.into(),
                        event: n.kind,
                        id: n.id.clone(),
                        ok: true,
                        attempts,
                        status,
                        error: None,
                        at: Utc::now(),
                    };
                }
                last_err = Some(format!("{} answered HTTP {code}", host_of(url)));
                if !(code == 429 || code >= 500) {
                    break;
                }
            }
            Err(e) => {
                status = None;
                last_err = Some(format!(
                    "{}: {}",
                    host_of(url),
                    if e.is_timeout() {
                        "no answer within 5s".to_string()
                    } else if e.is_connect() {
                        "cannot connect".to_string()
                    } else {
                        "request failed".to_string()
                    }
                ));
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt - 1))).await;
        }
    }
    Delivery {
        sink: sink.into(),
        event: n.kind,
        id: n.id.clone(),
        ok: false,
        attempts,
        status,
        error: last_err,
        at: Utc::now(),
    }
}

/// The engine sink that notifies a drill's moments.
pub struct DrillEvents {
    notifier: Arc<Notifier>,
    gameday_id: Option<String>,
    run_id: String,
    experiment: String,
    environment: String,
    aborted: bool,
    rto_missed: bool,
}

impl DrillEvents {
    pub fn new(notifier: Arc<Notifier>, gameday_id: Option<String>) -> DrillEvents {
        DrillEvents {
            notifier,
            gameday_id,
            run_id: String::new(),
            experiment: String::new(),
            environment: String::new(),
            aborted: false,
            rto_missed: false,
        }
    }

    fn send(
        &self,
        kind: EventKind,
        title: String,
        at: DateTime<Utc>,
        verdict: Option<VerdictKind>,
    ) {
        self.notifier.send(Notification {
            kind,
            title,
            run_id: Some(self.run_id.clone()),
            gameday_id: self.gameday_id.clone(),
            experiment: Some(self.experiment.clone()),
            environment: Some(self.environment.clone()),
            verdict,
            at,
            id: String::new(),
        });
    }
}

impl Sink for DrillEvents {
    fn record(&mut self, rec: &Record) -> Result<(), String> {
        let at = rec.at;
        let who = |s: &DrillEvents| format!("drill `{}` on `{}`", s.experiment, s.environment);
        match &rec.event {
            Event::RunStarted { run_id, experiment, environment, .. } => {
                self.run_id = run_id.clone();
                self.experiment = experiment.clone();
                self.environment = environment.clone();
                self.send(EventKind::Started, format!("{} started (run {run_id})", who(self)), at, None);
            }
            Event::FaultInjected { step } => self.send(EventKind::FaultInjected, format!("{}: fault injected (step `{step}`)", who(self)), at, None),
            Event::Detected { probe, after_ms } => self.send(EventKind::Detected, format!("{}: detected by `{probe}` {} after the fault", who(self), human(*after_ms)), at, None),
            Event::Recovered { after_ms } => self.send(EventKind::Recovered, format!("{}: recovered {} after the fault", who(self), human(*after_ms)), at, None),
            Event::RecoveryDeadlineExceeded { deadline_ms, failing } => {
                self.rto_missed = true;
                self.send(EventKind::ObjectiveMissed, format!("{}: not recovered by the {} deadline (still failing: {})", who(self), human(*deadline_ms), failing.join(", ")), at, None);
            }
            Event::AbortTriggered { reason } if !self.aborted => {
                self.aborted = true;
                self.send(EventKind::Aborted, format!("{}: ABORTED: {reason}", who(self)), at, None);
            }
            Event::RollbackFinished { step, ok: false, error, .. } => self.send(
                EventKind::RollbackFailed,
                format!("{}: ROLLBACK FAILED for step `{step}`: {}; the environment may still carry the fault", who(self), error.as_deref().unwrap_or("unknown error")),
                at,
                None,
            ),
            Event::RollbackOwed { step, reason, .. } => self.send(EventKind::RollbackFailed, format!("{}: rollback of step `{step}` OWED ({reason}): run `firedrill recover {}`", who(self), self.run_id), at, None),
            Event::RunFinished { verdict, measurements, .. } => {
                for m in measurements.iter().filter(|m| !(m.met || m.name == "rto" && self.rto_missed)) {
                    let measured = m.measured_ms.map(human).unwrap_or_else(|| "not reached".into());
                    let objective = m.objective_ms.map(human).unwrap_or_else(|| "-".into());
                    self.send(EventKind::ObjectiveMissed, format!("{}: {} {measured} against an objective of {objective}", who(self), m.name.to_uppercase()), at, None);
                }
                self.send(
                    EventKind::Finished,
                    format!("{} finished: {}", who(self), crate::report::summary::verdict_label(*verdict)),
                    at,
                    Some(*verdict),
                );
            }
            _ => {}
        }
        Ok(())
    }
}

/// A summary line per outcome, for the report and the terminal.
pub fn describe(deliveries: &[Delivery], dropped: u64) -> Option<String> {
    if deliveries.is_empty() && dropped == 0 {
        return None;
    }
    let ok = deliveries.iter().filter(|d| d.ok).count();
    let failed: Vec<String> = deliveries
        .iter()
        .filter(|d| !d.ok && d.attempts > 0)
        .map(|d| {
            format!(
                "{} {} ({} attempt(s): {})",
                d.sink,
                d.event.name(),
                d.attempts,
                d.error.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    let skipped = deliveries.iter().filter(|d| d.attempts == 0).count();
    let mut s = format!("notifications: {ok} delivered");
    if !failed.is_empty() {
        s.push_str(&format!(", {} failed: {}", failed.len(), failed.join("; ")));
    }
    if skipped > 0 {
        s.push_str(&format!(
            ", {skipped} not sent (a sink failing in a row, or the end of the run)"
        ));
    }
    if dropped > 0 {
        s.push_str(&format!(", {dropped} dropped (queue full)"));
    }
    Some(s)
}

/// The deliveries as JSON lines.
pub fn to_jsonl(deliveries: &[Delivery]) -> String {
    deliveries
        .iter()
        .filter_map(|d| serde_json::to_string(d).ok())
        .map(|l| l + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification's reference implementations.
        let key = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .unwrap();
        let sig = super::sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
