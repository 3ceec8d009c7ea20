//! Pod recovery timings, as Krkn reports them: for each pod a kill, drain or zone action took
//! away, when its replacement was scheduled and when it was Ready, relative to the kill.
//!
//! A watch (kube-runtime [`watcher`]) on the affected namespaces is opened *before* the action
//! acts, so every pod that exists then is known and any pod seen later with the same controller
//! is a replacement: exact for Deployments (new ReplicaSet pods) and StatefulSets (same name,
//! new uid). A controller does not record which pod a replacement replaces: replacements are
//! paired with the controller's gone pods in kill order, so among pods killed at the same
//! instant the pairing is arbitrary (their timings are not: each is relative to the same kill). Times are when the watch saw the change, on the run clock: accurate to the watch's
//! delivery latency, not the server's one-second timestamps (and immune to clock skew).
//! Each recovered pod becomes one [`EnvironmentEvent`] with a `pod_recovery` detail.
//! Watching stops when every tracked pod has a Ready replacement, after [`HORIZON`], or when the
//! provider is dropped (the run ended).

use super::api::{controller_of, pod_node, pod_ready, pod_terminating};
use crate::backend::EnvironmentEvent;
use crate::engine::clock::RunClock;
use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// Stop watching a kill's pods after this long, recovered or not.
pub(crate) const HORIZON: Duration = Duration::from_secs(3600);

/// State shared between the provider and its watch tasks.
#[derive(Default)]
pub(crate) struct Shared {
    /// The run clock, once the run has started (timings are only taken during runs).
    clock: Mutex<Option<RunClock>>,
    /// A clock for calls outside a run (probes' restart history).
    idle_clock: Mutex<Option<RunClock>>,
    events: Mutex<Vec<EnvironmentEvent>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    pub fn start(&self, clock: RunClock) {
        *self.clock.lock().expect("poisoned") = Some(clock);
    }

    pub fn run_clock(&self) -> Option<RunClock> {
        *self.clock.lock().expect("poisoned")
    }

    /// Time on the run clock (or on a clock started at the first call outside a run).
    pub fn now(&self) -> Duration {
        match self.run_clock() {
            Some(c) => c.elapsed(),
            None => self
                .idle_clock
                .lock()
                .expect("poisoned")
                .get_or_insert_with(RunClock::start_now)
                .elapsed(),
        }
    }

    pub fn push(&self, ev: EnvironmentEvent) {
        self.events.lock().expect("poisoned").push(ev);
    }

    pub fn drain(&self) -> Vec<EnvironmentEvent> {
        std::mem::take(&mut *self.events.lock().expect("poisoned"))
    }

    pub fn stop_all(&self) {
        for t in self.tasks.lock().expect("poisoned").drain(..) {
            t.abort();
        }
    }

    /// Whether every watch task has finished (tests).
    pub fn idle(&self) -> bool {
        self.tasks
            .lock()
            .expect("poisoned")
            .iter()
            .all(|t| t.is_finished())
    }
}

/// A pod an action took away.
#[derive(Debug, Clone)]
pub(crate) struct Victim {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub node: String,
    /// Controller uid (replacements have the same controller).
    pub owner_uid: Option<String>,
    /// `deployment/api`, for reports.
    pub owner: String,
    /// When the action deleted or evicted it; `None` when the cluster will (NoExecute taint):
    /// then the time the watch sees it go.
    pub killed_at: Option<Duration>,
}

/// Watches opened before an action, with the pods that existed then.
pub(crate) struct Prepared {
    streams: Vec<BoxStream<'static, Result<watcher::Event<Pod>, watcher::Error>>>,
    known: HashSet<String>,
}

/// Open a watch per `(namespace, label selector)` and wait for its initial list. `None` outside
/// a run, or when watching fails (then an event says timings are unavailable).
pub(crate) async fn prepare(
    shared: &Shared,
    client: &kube::Client,
    scopes: &[(String, Option<String>)],
    timeout: Duration,
    component: &str,
) -> Option<Prepared> {
    shared.run_clock()?;
    let mut streams = Vec::new();
    let mut known = HashSet::new();
    let mut seen_scopes = HashSet::new();
    for (ns, sel) in scopes {
        if !seen_scopes.insert((ns.clone(), sel.clone())) {
            continue;
        }
        let api: kube::Api<Pod> = kube::Api::namespaced(client.clone(), ns);
        let mut cfg = watcher::Config::default();
        if let Some(s) = sel {
            cfg = cfg.labels(s);
        }
        let mut stream = watcher(api, cfg).default_backoff().boxed();
        let init = async {
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::InitApply(p)) => {
                        if let Some(u) = p.metadata.uid {
                            known.insert(u);
                        }
                    }
                    Ok(watcher::Event::InitDone) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err("the watch ended".to_string())
        };
        match tokio::time::timeout(timeout, init).await {
            Ok(Ok(())) => streams.push(stream),
            Ok(Err(e)) => {
                note_unavailable(shared, component, ns, &e);
                return None;
            }
            Err(_) => {
                note_unavailable(
                    shared,
                    component,
                    ns,
                    &format!(
                        "no initial list within {}",
                        crate::lang::duration::format(timeout)
                    ),
                );
                return None;
            }
        }
    }
    Some(Prepared { streams, known })
}

fn note_unavailable(shared: &Shared, component: &str, ns: &str, why: &str) {
    shared.push(EnvironmentEvent {
        at_ms: shared.now().as_millis() as u64,
        component: component.to_string(),
        message: format!(
            "pod recovery timings unavailable: cannot watch pods in namespace `{ns}`: {why}"
        ),
        detail: None,
    });
}

/// Where an action reports the pods it takes away, as it takes them. Dropping it tells the
/// watch that the action is done.
#[derive(Default)]
pub(crate) struct Tracking {
    tx: Option<tokio::sync::mpsc::UnboundedSender<Victim>>,
}

impl Tracking {
    pub fn victim(&self, v: Victim) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(v);
        }
    }
}

/// Open the watches (see [`prepare`]) and start following them at once, so every change is
/// timed when it happens, while the action is still running (a drain can take minutes).
pub(crate) async fn start(
    shared: &std::sync::Arc<Shared>,
    client: &kube::Client,
    scopes: &[(String, Option<String>)],
    timeout: Duration,
    component: String,
) -> Tracking {
    let Some(prepared) = prepare(shared, client, scopes, timeout, &component).await else {
        return Tracking::default();
    };
    let Some(clock) = shared.run_clock() else {
        return Tracking::default();
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Victim>();
    let sh = std::sync::Arc::downgrade(shared);
    let task = tokio::spawn(async move {
        let mut tracker = Tracker::new(Vec::new(), prepared.known);
        let mut all = futures::stream::select_all(prepared.streams);
        let mut open = true;
        let run = async {
            loop {
                let done = tokio::select! {
                    v = rx.recv(), if open => match v {
                        Some(v) => tracker.add(v),
                        None => {
                            open = false;
                            Vec::new()
                        }
                    },
                    ev = all.next() => {
                        let now = clock.elapsed();
                        match ev {
                            Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => {
                                tracker.observe(&p, false, now)
                            }
                            Some(Ok(watcher::Event::Delete(p))) => tracker.observe(&p, true, now),
                            Some(_) => Vec::new(),
                            None => return,
                        }
                    }
                };
                let Some(sh) = sh.upgrade() else { return };
                for d in done {
                    sh.push(d.event(&component));
                }
                if !open && tracker.finished() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(HORIZON, run).await;
    });
    let mut tasks = shared.tasks.lock().expect("poisoned");
    tasks.retain(|t| !t.is_finished());
    tasks.push(task);
    Tracking { tx: Some(tx) }
}

#[derive(Debug, Clone, Default)]
struct Replacement {
    name: String,
    owner_uid: Option<String>,
    first_seen: Duration,
    /// Order of first sight (the watch delivers creations in order).
    seq: u64,
    node: Option<String>,
    scheduled_at: Option<Duration>,
    ready_at: Option<Duration>,
    assigned: bool,
}

/// One recovered pod.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recovered {
    pub victim_namespace: String,
    pub victim_pod: String,
    pub victim_node: String,
    pub owner: String,
    pub replacement: String,
    pub replacement_node: String,
    pub killed_at: Duration,
    pub scheduled_after: Duration,
    pub ready_after: Duration,
    pub ready_at: Duration,
}

impl Recovered {
    pub fn event(&self, component: &str) -> EnvironmentEvent {
        let fmt = |d: Duration| crate::lang::duration::format(d);
        EnvironmentEvent {
            at_ms: self.ready_at.as_millis() as u64,
            component: component.to_string(),
            message: format!(
                "pod {}/{} ({}) replaced by {} on {}: scheduled after {}, Ready after {}",
                self.victim_namespace,
                self.victim_pod,
                self.victim_node,
                self.replacement,
                self.replacement_node,
                fmt(self.scheduled_after),
                fmt(self.ready_after)
            ),
            detail: Some(json!({
                "kind": "pod_recovery",
                "namespace": self.victim_namespace,
                "pod": self.victim_pod,
                "node": self.victim_node,
                "owner": self.owner,
                "replacement": self.replacement,
                "replacement_node": self.replacement_node,
                "killed_at_ms": self.killed_at.as_millis() as u64,
                "scheduled_after_ms": self.scheduled_after.as_millis() as u64,
                "ready_after_ms": self.ready_after.as_millis() as u64,
            })),
        }
    }
}

/// Pairs victims with replacements from watch observations (pure; unit tested).
pub(crate) struct Tracker {
    victims: Vec<(Victim, Option<String>, bool)>,
    known: HashSet<String>,
    new: HashMap<String, Replacement>,
    seen: u64,
}

impl Tracker {
    pub fn new(victims: Vec<Victim>, known: HashSet<String>) -> Tracker {
        Tracker {
            victims: victims.into_iter().map(|v| (v, None, false)).collect(),
            known,
            new: HashMap::new(),
            seen: 0,
        }
    }

    pub fn finished(&self) -> bool {
        self.victims.iter().all(|(_, _, done)| *done)
    }

    /// A pod the action took away (possibly after its replacement was already seen).
    pub fn add(&mut self, v: Victim) -> Vec<Recovered> {
        self.victims.push((v, None, false));
        self.progress()
    }

    /// Take one observation of a pod at `now`; returns the victims whose replacement just became
    /// Ready.
    pub fn observe(&mut self, pod: &Pod, deleted: bool, now: Duration) -> Vec<Recovered> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        for (v, _, _) in self.victims.iter_mut() {
            if v.uid == uid && v.killed_at.is_none() && (deleted || pod_terminating(pod)) {
                v.killed_at = Some(now);
            }
        }
        if !self.known.contains(&uid) && !deleted && !uid.is_empty() {
            let seq = self.seen;
            let r = self.new.entry(uid).or_insert_with(|| Replacement {
                name: pod.metadata.name.clone().unwrap_or_default(),
                owner_uid: controller_of(&pod.metadata).map(|(_, _, u)| u),
                first_seen: now,
                seq,
                ..Default::default()
            });
            self.seen += 1;
            if let Some(n) = pod_node(pod) {
                r.node.get_or_insert_with(|| n.to_string());
                r.scheduled_at.get_or_insert(now);
            }
            if pod_ready(pod) {
                r.ready_at.get_or_insert(now);
            }
        }
        self.progress()
    }

    fn progress(&mut self) -> Vec<Recovered> {
        self.assign();
        let mut out = Vec::new();
        for (v, rep, done) in self.victims.iter_mut() {
            if *done {
                continue;
            }
            let (Some(uid), Some(killed_at)) = (rep.as_ref(), v.killed_at) else {
                continue;
            };
            let r = &self.new[uid];
            if let Some(ready_at) = r.ready_at {
                *done = true;
                let scheduled_at = r.scheduled_at.unwrap_or(ready_at);
                out.push(Recovered {
                    victim_namespace: v.namespace.clone(),
                    victim_pod: v.pod.clone(),
                    victim_node: v.node.clone(),
                    owner: v.owner.clone(),
                    replacement: r.name.clone(),
                    replacement_node: r.node.clone().unwrap_or_default(),
                    killed_at,
                    scheduled_after: scheduled_at.saturating_sub(killed_at),
                    ready_after: ready_at.saturating_sub(killed_at),
                    ready_at,
                });
            }
        }
        out
    }

    /// Pair unassigned replacements (in order seen) with gone victims (in kill order, ties in
    /// the order the action took them), same controller: a controller creates replacements in
    /// the order its pods went.
    fn assign(&mut self) {
        let mut reps: Vec<(&String, &mut Replacement)> =
            self.new.iter_mut().filter(|(_, r)| !r.assigned).collect();
        reps.sort_by_key(|r| (r.1.first_seen, r.1.seq));
        let mut order: Vec<usize> = (0..self.victims.len())
            .filter(|&i| self.victims[i].1.is_none() && self.victims[i].0.killed_at.is_some())
            .collect();
        order.sort_by_key(|&i| self.victims[i].0.killed_at);
        for (uid, r) in reps {
            if let Some(pos) = order.iter().position(|&i| {
                self.victims[i].0.owner_uid.is_some() && self.victims[i].0.owner_uid == r.owner_uid
            }) {
                let i = order.remove(pos);
                self.victims[i].1 = Some(uid.clone());
                r.assigned = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str, owner: &str, node: Option<&str>, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "web", "uid": uid,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner, "controller": true}]},
            "spec": {"containers": [], "nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap()
    }

    fn victim(name: &str, uid: &str, owner: &str, killed: Option<u64>) -> Victim {
        Victim {
            namespace: "web".into(),
            pod: name.into(),
            uid: uid.into(),
            node: "n1".into(),
            owner_uid: Some(owner.into()),
            owner: format!("deployment/{owner}"),
            killed_at: killed.map(Duration::from_secs),
        }
    }

    #[test]
    fn replacements_pair_with_victims_of_the_same_controller_in_kill_order() {
        let known: HashSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let mut t = Tracker::new(
            vec![
                victim("a", "a", "rs1", Some(10)),
                victim("b", "b", "rs1", Some(11)),
            ],
            known,
        );
        let s = Duration::from_secs;
        // A surviving pod of the same ReplicaSet is not a replacement.
        assert!(
            t.observe(&pod("c", "c", "rs1", Some("n2"), true), false, s(12))
                .is_empty()
        );
        // Another controller's new pod is not either.
        assert!(
            t.observe(&pod("z", "z", "rs2", Some("n2"), true), false, s(12))
                .is_empty()
        );
        assert!(
            t.observe(&pod("x", "x", "rs1", None, false), false, s(12))
                .is_empty()
        );
        assert!(
            t.observe(&pod("y", "y", "rs1", None, false), false, s(13))
                .is_empty()
        );
        assert!(
            t.observe(&pod("x", "x", "rs1", Some("n3"), false), false, s(14))
                .is_empty()
        );
        let r = t.observe(&pod("y", "y", "rs1", Some("n2"), true), false, s(40));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].victim_pod, "b");
        assert_eq!(r[0].replacement, "y");
        assert_eq!(r[0].scheduled_after, s(29));
        assert_eq!(r[0].ready_after, s(29));
        assert!(!t.finished());
        let r = t.observe(&pod("x", "x", "rs1", Some("n3"), true), false, s(44));
        assert_eq!(r[0].victim_pod, "a");
        assert_eq!(r[0].scheduled_after, s(4));
        assert_eq!(r[0].ready_after, s(34));
        assert_eq!(r[0].ready_at, s(44));
        assert!(t.finished());
        let ev = r[0].event("k8s prod");
        assert_eq!(ev.at_ms, 44_000);
        let d = ev.detail.unwrap();
        assert_eq!(d["kind"], "pod_recovery");
        assert_eq!(d["ready_after_ms"], 34_000);
        assert_eq!(d["owner"], "deployment/rs1");
    }

    #[test]
    fn a_taint_victim_is_killed_when_the_watch_sees_it_go() {
        let known: HashSet<String> = ["a"].iter().map(|s| s.to_string()).collect();
        let mut t = Tracker::new(vec![victim("a", "a", "rs1", None)], known);
        let s = Duration::from_secs;
        // The replacement shows up before the deletion is seen: held until then.
        assert!(
            t.observe(&pod("x", "x", "rs1", Some("n2"), false), false, s(5))
                .is_empty()
        );
        assert!(
            t.observe(&pod("a", "a", "rs1", Some("n1"), true), true, s(6))
                .is_empty()
        );
        let r = t.observe(&pod("x", "x", "rs1", Some("n2"), true), false, s(30));
        assert_eq!(r[0].killed_at, s(6));
        assert_eq!(r[0].scheduled_after, Duration::ZERO);
        assert_eq!(r[0].ready_after, s(24));
    }
}
