//! The Kubernetes part of the estate: nodes, taints, workloads and pods; scheduling,
//! reconciling, rollouts, deletions, and the kill / cordon / drain / scale actions.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;
use crate::lang::duration::format as fmt;

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) cluster: usize,
    pub(super) name: String,
    pub(super) zone: String,
    pub(super) schedulable: bool,
    pub(super) taints: Vec<Taint>,
    /// Since when the node controller has marked the node NotReady (condition Unknown).
    pub(super) not_ready_since: Option<Duration>,
}

/// Effect of a node taint (one type for the estate and both Kubernetes backends).
pub use crate::lang::kubernetes::TaintEffect;

/// A node taint. Only DaemonSet pods tolerate taints (they tolerate every one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    /// Key, e.g. `chaos.firedrill.dev/zone-loss`.
    pub key: String,
    /// Optional value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Effect.
    pub effect: TaintEffect,
    /// When it was added (NoExecute taints only, as the API records it).
    #[serde(default, skip)]
    pub added: Option<Duration>,
}

/// Taint key the node controller puts on nodes it has marked NotReady (unreachable).
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// A pod deleted through a disruption (kill, eviction, drain, taint, node loss), remembered until
/// its controller has created the replacement.
#[derive(Debug, Clone)]
pub(super) struct Lost {
    pub(super) pod: String,
    pub(super) node: Option<String>,
    pub(super) at: Duration,
}

#[derive(Debug, Clone)]
pub(super) struct Deployment {
    pub(super) cluster: usize,
    pub(super) p: DeploymentParams,
    /// Desired replicas (deployments and statefulsets).
    pub(super) replicas: u32,
    /// Replacement pods created for disrupted ones.
    pub(super) restarts: u64,
    /// Disrupted pods not yet replaced, oldest first.
    pub(super) lost: Vec<Lost>,
    /// `metadata.generation`: bumped by every spec change (scale, restart).
    pub(super) generation: u64,
    /// Pod template revision (rollout restarts bump it; pods carry its hash).
    pub(super) revision: u64,
    /// Annotations of the pod template (`kubectl rollout restart` sets
    /// `kubectl.kubernetes.io/restartedAt`); changing them rolls the pods.
    pub(super) template_annotations: BTreeMap<String, String>,
    /// A rolling restart is in progress.
    pub(super) rolling: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Pending,
    Starting,
    Ready,
}

/// Why pods are deleted: only disruptions are replaced "as recovery" (counted as restarts and
/// timed as pod recoveries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    Disruption,
    ScaleDown,
    Rollout,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Deleting {
    pub(super) since: Duration,
    pub(super) grace: Duration,
    /// When the pod is gone; `None` while its node is down (the kubelet cannot confirm).
    pub(super) gone_at: Option<Duration>,
}

#[derive(Debug, Clone)]
pub(super) struct Pod {
    pub(super) name: String,
    pub(super) dep: usize,
    pub(super) node: Option<usize>,
    /// DaemonSet pods run on this node only.
    pub(super) pin: Option<usize>,
    /// StatefulSet ordinal.
    pub(super) ordinal: Option<u32>,
    pub(super) phase: Phase,
    pub(super) startup: Duration,
    pub(super) created: Duration,
    pub(super) scheduled: Option<Duration>,
    /// When the pod (last) became Ready.
    pub(super) ready_at: Option<Duration>,
    /// When its containers will be Ready (a stale PodReady event is ignored).
    pub(super) ready_due: Option<Duration>,
    /// Container restarts (a node that comes back restarts its pods' containers).
    pub(super) container_restarts: u32,
    /// Template revision the pod was created from.
    pub(super) revision: u64,
    pub(super) deleting: Option<Deleting>,
    /// The disrupted pod this one replaces.
    pub(super) replaces: Option<Lost>,
}

/// One replaced pod's recovery: when its replacement was scheduled and Ready.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodRecovery {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// The disrupted pod.
    pub pod: String,
    /// Node it ran on.
    pub node: Option<String>,
    /// Owning workload, `deployment/api`-style.
    pub owner: String,
    /// The replacement pod.
    pub replacement: String,
    /// Node the replacement runs on.
    pub replacement_node: Option<String>,
    /// When the pod was deleted / evicted (estate time).
    pub killed_at: Duration,
    /// When the replacement was scheduled (estate time).
    pub scheduled_at: Duration,
    /// When the replacement became Ready (estate time).
    pub ready_at: Duration,
}

/// `n` characters of Kubernetes' "safe" alphabet derived from `seed` (name suffixes, hashes).
pub(super) fn safe_chars(seed: u64, n: usize) -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut g = SplitMix64(seed);
    let mut h = g.next_u64();
    (0..n)
        .map(|i| {
            if i == 8 {
                h = g.next_u64();
            }
            let c = CHARS[(h % CHARS.len() as u64) as usize] as char;
            h /= CHARS.len() as u64;
            c
        })
        .collect()
}

fn pod_suffix(id: u64) -> String {
    safe_chars(id ^ 0x5EED_F00D, 5)
}

/// FNV-1a of a string (stable across runs and platforms).
pub(super) fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn render_selector(sel: &BTreeMap<String, String>) -> String {
    if sel.is_empty() {
        return "{}".into();
    }
    sel.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn matches(labels: &BTreeMap<String, String>, sel: &BTreeMap<String, String>) -> bool {
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl Estate {
    pub(super) fn kind(&self, dep: usize) -> WorkloadKind {
        self.deployments[dep].p.kind
    }

    pub(super) fn cluster_nodes(&self, ci: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&n| self.nodes[n].cluster == ci)
            .collect()
    }

    /// Pods bound to a node (Terminating ones hold their slot until they are gone).
    fn pods_on(&self, node: usize) -> usize {
        self.pods.values().filter(|p| p.node == Some(node)).count()
    }

    /// Whether the node's taints or cordon keep new pods of `dep` off it. DaemonSet pods
    /// tolerate everything.
    fn repels(&self, dep: usize, n: usize) -> bool {
        if self.kind(dep) == WorkloadKind::DaemonSet {
            return false;
        }
        let node = &self.nodes[n];
        !node.schedulable
            || node
                .taints
                .iter()
                .any(|t| t.effect != TaintEffect::PreferNoSchedule)
    }

    /// A workload's live pods: every pod it owns that is not terminating.
    pub(super) fn live_pods(&self, dep: usize) -> impl Iterator<Item = &Pod> {
        self.pods
            .values()
            .filter(move |p| p.dep == dep && p.deleting.is_none())
    }

    fn pick_node(&self, dep: usize) -> Option<usize> {
        let ci = self.deployments[dep].cluster;
        let cap = self.cluster_p(ci).pods_per_node as usize;
        // Spread counts the workload's live pods (terminating ones are leaving).
        let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
        for p in self.live_pods(dep) {
            if let Some(n) = p.node {
                *per_zone.entry(self.nodes[n].zone.as_str()).or_default() += 1;
            }
        }
        (0..self.nodes.len())
            .filter(|&n| {
                self.nodes[n].cluster == ci
                    && !self.repels(dep, n)
                    && self.node_ready(n)
                    && self.pods_on(n) < cap
            })
            .min_by_key(|&n| {
                let avoid = self.nodes[n]
                    .taints
                    .iter()
                    .any(|t| t.effect == TaintEffect::PreferNoSchedule);
                (
                    avoid,
                    per_zone
                        .get(self.nodes[n].zone.as_str())
                        .copied()
                        .unwrap_or(0),
                    self.pods_on(n),
                    n,
                )
            })
    }

    fn jittered_startup(&mut self, dep: usize) -> Duration {
        let d = &self.deployments[dep].p;
        let (base, j) = (ms(d.startup), ms(d.startup_jitter));
        if j == 0 {
            return d.startup;
        }
        let offset = self.rng.below(2 * j + 1);
        dms((base + offset).saturating_sub(j))
    }

    /// Hash of a workload's current pod template (`pod-template-hash`).
    fn template_hash(&self, dep: usize) -> String {
        self.revision_hash(dep, self.deployments[dep].revision)
    }

    /// Create a Deployment pod, scheduling it if possible. Returns its id.
    pub(super) fn create_pod(&mut self, dep: usize, log: bool) -> u64 {
        let id = self.new_pod(dep, None, None);
        if log && self.pods[&id].phase == Phase::Pending {
            let cname = self.cluster_p(self.deployments[dep].cluster).name.clone();
            let pname = self.pods[&id].name.clone();
            self.note(
                format!("k8s {cname}"),
                format!("pod {pname} Pending: no schedulable node with a free slot"),
            );
        }
        id
    }

    /// Create a pod of any workload kind (`ordinal` for StatefulSets, `pin` for DaemonSets).
    pub(super) fn new_pod(&mut self, dep: usize, ordinal: Option<u32>, pin: Option<usize>) -> u64 {
        self.next_pod += 1;
        let id = self.next_pod;
        let d = &self.deployments[dep];
        let name = match (d.p.kind, ordinal) {
            (WorkloadKind::StatefulSet, Some(o)) => format!("{}-{o}", d.p.name),
            (WorkloadKind::Deployment, _) => {
                format!(
                    "{}-{}-{}",
                    d.p.name,
                    self.template_hash(dep),
                    pod_suffix(id)
                )
            }
            _ => format!("{}-{}", d.p.name, pod_suffix(id)),
        };
        let revision = d.revision;
        self.pods.insert(
            id,
            Pod {
                name,
                dep,
                node: None,
                pin,
                ordinal,
                phase: Phase::Pending,
                startup: Duration::ZERO,
                created: self.now,
                scheduled: None,
                ready_at: None,
                ready_due: None,
                container_restarts: 0,
                revision,
                deleting: None,
                replaces: None,
            },
        );
        self.try_place(id);
        id
    }

    fn try_place(&mut self, id: u64) -> bool {
        let (dep, pin) = (self.pods[&id].dep, self.pods[&id].pin);
        let node = match pin {
            Some(n) => {
                let cap = self.cluster_p(self.nodes[n].cluster).pods_per_node as usize;
                (self.node_ready(n) && self.pods_on(n) < cap).then_some(n)
            }
            None => self.pick_node(dep),
        };
        let Some(node) = node else {
            return false;
        };
        let startup = self.jittered_startup(dep);
        let at = self.now + startup;
        let now = self.now;
        if let Some(p) = self.pods.get_mut(&id) {
            p.node = Some(node);
            p.phase = Phase::Starting;
            p.startup = startup;
            p.scheduled = Some(now);
            p.ready_due = Some(at);
        }
        self.schedule(at, Event::PodReady(id));
        true
    }

    pub(super) fn schedule_pending(&mut self, ci: usize) {
        let pending: Vec<u64> = self
            .pods
            .iter()
            .filter(|(_, p)| {
                p.phase == Phase::Pending
                    && p.deleting.is_none()
                    && self.deployments[p.dep].cluster == ci
            })
            .map(|(id, _)| *id)
            .collect();
        for id in pending {
            if self.try_place(id) {
                let p = &self.pods[&id];
                let msg = format!(
                    "pending pod {} scheduled on node {}",
                    p.name,
                    self.nodes[p.node.expect("placed")].name
                );
                let cname = self.cluster_p(ci).name.clone();
                self.note(format!("k8s {cname}"), msg);
            }
        }
    }

    /// Delete pods. Each stays Terminating for its grace period (`grace`, else the workload's
    /// `termination_grace`; 0 or an unscheduled pod: gone at once; on a node that is down: until
    /// the node is back). A Deployment's ReplicaSet creates replacements after `reschedule_delay`
    /// (Terminating pods do not count); StatefulSet and DaemonSet pods are recreated once gone.
    /// Returns the names of the pods newly deleted (already Terminating ones are not counted, but
    /// a shorter grace shortens their termination).
    pub(super) fn delete_pods(
        &mut self,
        ids: &[u64],
        grace: Option<Duration>,
        why: Why,
    ) -> Vec<String> {
        let mut names = Vec::new();
        let mut deps = Vec::new();
        for &id in ids {
            let Some(p) = self.pods.get(&id) else {
                continue;
            };
            let dep = p.dep;
            let g = grace.unwrap_or(self.deployments[dep].p.termination_grace);
            let node_up = p.node.is_some_and(|n| self.node_ready(n));
            if let Some(d) = p.deleting {
                if node_up && d.gone_at.is_some_and(|at| self.now + g < at) {
                    if g.is_zero() {
                        self.pod_gone(id);
                    } else {
                        let at = self.now + g;
                        if let Some(p) = self.pods.get_mut(&id)
                            && let Some(d) = p.deleting.as_mut()
                        {
                            d.gone_at = Some(at);
                        }
                        self.schedule(at, Event::PodGone(id));
                    }
                }
                continue;
            }
            names.push(p.name.clone());
            if why == Why::Disruption {
                let lost = Lost {
                    pod: p.name.clone(),
                    node: p.node.map(|n| self.nodes[n].name.clone()),
                    at: self.now,
                };
                self.deployments[dep].lost.push(lost);
            }
            if !deps.contains(&dep) {
                deps.push(dep);
            }
            if p.node.is_none() || g.is_zero() {
                self.pod_gone(id);
                continue;
            }
            let gone_at = node_up.then_some(self.now + g);
            let now = self.now;
            if let Some(p) = self.pods.get_mut(&id) {
                p.deleting = Some(Deleting {
                    since: now,
                    grace: g,
                    gone_at,
                });
            }
            if let Some(at) = gone_at {
                self.schedule(at, Event::PodGone(id));
            }
        }
        for dep in deps {
            if self.kind(dep) == WorkloadKind::Deployment {
                let delay = self
                    .cluster_p(self.deployments[dep].cluster)
                    .reschedule_delay;
                self.schedule(self.now + delay, Event::Reconcile(dep));
            }
        }
        names
    }

    /// A pod is gone from the API; StatefulSets and DaemonSets recreate theirs after
    /// `reschedule_delay`, and capacity it held goes to Pending pods.
    pub(super) fn pod_gone(&mut self, id: u64) {
        let Some(p) = self.pods.remove(&id) else {
            return;
        };
        let ci = self.deployments[p.dep].cluster;
        if self.kind(p.dep) != WorkloadKind::Deployment {
            let delay = self.cluster_p(ci).reschedule_delay;
            self.schedule(self.now + delay, Event::Reconcile(p.dep));
        }
        if p.node.is_some() {
            self.schedule_pending(ci);
        }
        if self.deployments[p.dep].rolling {
            self.rollout_step(p.dep);
        }
    }

    /// The replacement record for a new pod of `dep` (matching a StatefulSet pod by name and a
    /// DaemonSet pod by node; Deployments take the oldest).
    fn take_lost(&mut self, dep: usize, id: u64) -> Option<Lost> {
        let d = &self.deployments[dep];
        let p = &self.pods[&id];
        let pos = match d.p.kind {
            WorkloadKind::Deployment => (!d.lost.is_empty()).then_some(0),
            WorkloadKind::StatefulSet => d.lost.iter().position(|l| l.pod == p.name),
            WorkloadKind::DaemonSet => {
                let node = p.pin.map(|n| self.nodes[n].name.clone());
                d.lost.iter().position(|l| l.node == node)
            }
        }?;
        Some(self.deployments[dep].lost.remove(pos))
    }

    pub(super) fn reconcile(&mut self, dep: usize) {
        let ci = self.deployments[dep].cluster;
        let live = |e: &Estate| e.live_pods(dep).count() as u32;
        let created: Vec<u64> = match self.kind(dep) {
            WorkloadKind::Deployment => {
                let (have, want) = (live(self), self.deployments[dep].replicas);
                if have >= want {
                    self.deployments[dep].lost.clear();
                    Vec::new()
                } else {
                    (0..want - have)
                        .map(|_| self.create_pod(dep, false))
                        .collect()
                }
            }
            WorkloadKind::StatefulSet => {
                // OrderedReady: the lowest missing ordinal, once every lower one is Ready.
                let want = self.deployments[dep].replicas;
                let mut next = None;
                for o in 0..want {
                    match self
                        .pods
                        .values()
                        .find(|p| p.dep == dep && p.ordinal == Some(o))
                    {
                        Some(p) if p.phase == Phase::Ready && p.deleting.is_none() => continue,
                        Some(_) => break,
                        None => {
                            next = Some(o);
                            break;
                        }
                    }
                }
                next.map(|o| self.new_pod(dep, Some(o), None))
                    .into_iter()
                    .collect()
            }
            WorkloadKind::DaemonSet => {
                let missing: Vec<usize> = self
                    .cluster_nodes(ci)
                    .into_iter()
                    .filter(|&n| !self.pods.values().any(|p| p.dep == dep && p.pin == Some(n)))
                    .collect();
                missing
                    .into_iter()
                    .map(|n| self.new_pod(dep, None, Some(n)))
                    .collect()
            }
        };
        if created.is_empty() {
            return;
        }
        let mut replacements = 0;
        let mut pending = 0;
        for &id in &created {
            if let Some(l) = self.take_lost(dep, id) {
                replacements += 1;
                if let Some(p) = self.pods.get_mut(&id) {
                    p.replaces = Some(l);
                }
            }
            if self.pods[&id].phase == Phase::Pending {
                pending += 1;
            }
        }
        self.deployments[dep].restarts += replacements;
        if replacements > 0 {
            self.restart_log.push((self.now, dep, replacements as u32));
        }
        let n = created.len();
        let cname = self.cluster_p(ci).name.clone();
        let d = &self.deployments[dep].p;
        let mut msg = match d.kind {
            WorkloadKind::Deployment => format!(
                "deployment {}/{}: ReplicaSet created {n} pod(s) ({replacements} replacement(s))",
                d.namespace, d.name
            ),
            k => format!(
                "{} {}/{}: created pod(s) {}",
                k.as_str(),
                d.namespace,
                d.name,
                created
                    .iter()
                    .map(|id| self.pods[id].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        if pending > 0 {
            msg.push_str(&format!(
                ", {pending} Pending: no schedulable node with a free slot (pods_per_node {})",
                self.cluster_p(ci).pods_per_node
            ));
        }
        self.note(format!("k8s {cname}"), msg);
    }

    /// A rolling restart's next move: once every replica exists and is Ready (and nothing is
    /// terminating), delete the next pod of an old revision (one at a time: maxUnavailable 1,
    /// no surge); the controller recreates it from the new template.
    pub(super) fn rollout_step(&mut self, dep: usize) {
        let d = &self.deployments[dep];
        let (rev, kind) = (d.revision, d.p.kind);
        let want = match kind {
            WorkloadKind::DaemonSet => self.cluster_nodes(d.cluster).len() as u32,
            _ => d.replicas,
        };
        let pods: Vec<(&u64, &Pod)> = self.pods.iter().filter(|(_, p)| p.dep == dep).collect();
        let busy = pods.len() as u32 != want
            || pods
                .iter()
                .any(|(_, p)| p.deleting.is_some() || p.phase != Phase::Ready);
        let old: Vec<(u64, Option<u32>)> = pods
            .iter()
            .filter(|(_, p)| p.revision != rev)
            .map(|(id, p)| (**id, p.ordinal))
            .collect();
        if old.is_empty() {
            if !busy {
                self.deployments[dep].rolling = false;
                let cname = self.cluster_p(self.deployments[dep].cluster).name.clone();
                let d = &self.deployments[dep].p;
                let msg = format!(
                    "{} {}/{}: rollout restart complete",
                    d.kind.as_str(),
                    d.namespace,
                    d.name
                );
                self.note(format!("k8s {cname}"), msg);
            }
            return;
        }
        if busy {
            return;
        }
        // StatefulSets update from the highest ordinal down; others oldest first.
        let next = match kind {
            WorkloadKind::StatefulSet => old.iter().max_by_key(|(_, o)| *o).map(|(id, _)| *id),
            _ => old.first().map(|(id, _)| *id),
        };
        if let Some(id) = next {
            self.delete_pods(&[id], None, Why::Rollout);
        }
    }

    /// Pods that serve: Ready, not terminating, on a node that is up.
    pub(super) fn ready_pods(&self, dep: usize) -> u32 {
        self.pods
            .values()
            .filter(|p| {
                p.dep == dep
                    && p.phase == Phase::Ready
                    && p.deleting.is_none()
                    && p.node.is_some_and(|n| self.node_ready(n))
            })
            .count() as u32
    }

    /// The API's view of a pod's Ready condition: Ready, not terminating, and its node not
    /// marked NotReady by the node controller (which lags a dead node by `node_failure_detection`).
    pub(super) fn pod_ready_condition(&self, p: &Pod) -> bool {
        p.phase == Phase::Ready
            && p.deleting.is_none()
            && p.node
                .is_some_and(|n| self.nodes[n].not_ready_since.is_none())
    }
}

// ---------------------------------------------------------------------------
// Event handlers
// ---------------------------------------------------------------------------

impl Estate {
    /// `Event::PodReady`: a starting pod's start-up ended.
    pub(super) fn on_pod_ready(&mut self, id: u64) {
        let now = self.now;
        let Some(p) = self.pods.get_mut(&id) else {
            return;
        };
        if p.phase != Phase::Starting || p.deleting.is_some() || p.ready_due != Some(now) {
            return;
        }
        p.phase = Phase::Ready;
        p.ready_at = Some(now);
        let (name, node, startup, dep) = (p.name.clone(), p.node, p.startup, p.dep);
        let node = node.expect("starting pods have a node");
        let ci = self.deployments[dep].cluster;
        let cname = self.cluster_p(ci).name.clone();
        let mut msg = format!(
            "pod {name} Ready on node {} (startup {})",
            self.nodes[node].name,
            fmt(startup)
        );
        if !self.node_ready(node) {
            msg.push_str(", but its node is NotReady");
        }
        self.note(format!("k8s {cname}"), msg);
        let p = &self.pods[&id];
        if let Some(l) = p.replaces.clone() {
            let d = &self.deployments[dep].p;
            self.recoveries.push(PodRecovery {
                cluster: cname,
                namespace: d.namespace.clone(),
                pod: l.pod,
                node: l.node,
                owner: format!("{}/{}", d.kind.as_str(), d.name),
                replacement: p.name.clone(),
                replacement_node: Some(self.nodes[node].name.clone()),
                killed_at: l.at,
                scheduled_at: p.scheduled.unwrap_or(now),
                ready_at: now,
            });
        }
        if self.kind(dep) == WorkloadKind::StatefulSet {
            let delay = self.cluster_p(ci).reschedule_delay;
            self.schedule(self.now + delay, Event::Reconcile(dep));
        }
        if self.deployments[dep].rolling {
            self.rollout_step(dep);
        }
    }

    /// `Event::PodGone`: a terminating pod's grace period ended.
    pub(super) fn on_pod_gone(&mut self, id: u64) {
        let due = self
            .pods
            .get(&id)
            .and_then(|p| p.deleting)
            .is_some_and(|d| d.gone_at == Some(self.now));
        if due {
            let p = &self.pods[&id];
            if self.kind(p.dep) == WorkloadKind::StatefulSet {
                let ci = self.deployments[p.dep].cluster;
                let msg = format!(
                    "pod {} gone after its {} grace period; the StatefulSet recreates it after {}",
                    p.name,
                    fmt(p.deleting.map(|d| d.grace).unwrap_or_default()),
                    fmt(self.cluster_p(ci).reschedule_delay)
                );
                let cname = self.cluster_p(ci).name.clone();
                self.note(format!("k8s {cname}"), msg);
            }
            self.pod_gone(id);
        }
    }
}

// ---------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------

impl Estate {
    /// Delete pods matching `selector` in `namespace` (each with its own grace period); their
    /// controllers replace them (see the module docs). Returns the names killed.
    pub fn kill_pods(
        &mut self,
        at: Duration,
        cluster: &str,
        namespace: &str,
        selector: &BTreeMap<String, String>,
        mode: KillMode,
    ) -> Result<Vec<String>, SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        let candidates: Vec<(String, String)> = self
            .pods
            .values()
            .filter(|p| {
                let d = &self.deployments[p.dep];
                p.deleting.is_none()
                    && d.cluster == ci
                    && d.p.namespace == namespace
                    && matches(&d.p.labels, selector)
            })
            .map(|p| (namespace.to_string(), p.name.clone()))
            .collect();
        if candidates.is_empty() {
            let valid = self
                .deployments
                .iter()
                .filter(|d| d.cluster == ci && d.p.namespace == namespace)
                .map(|d| render_selector(&d.p.labels))
                .collect::<Vec<_>>();
            return Err(SimError::NoMatchingPods {
                cluster: cluster.into(),
                namespace: namespace.into(),
                selector: render_selector(selector),
                valid: list(valid.iter().map(String::as_str)),
            });
        }
        let victims = self.choose_victims(&candidates, mode)?;
        let what = format!("matching {} in {namespace}", render_selector(selector));
        let names = self.kill_named(at, cluster, &victims, None, &what)?;
        self.finish(names.into_iter().map(|(_, n)| n).collect())
    }

    /// Pick the victims of a kill among `candidates` (namespace, name), with the seeded
    /// generator (a partial Fisher-Yates shuffle); returned in candidate order.
    pub fn choose_victims(
        &mut self,
        candidates: &[(String, String)],
        mode: KillMode,
    ) -> Result<Vec<(String, String)>, SimError> {
        let n = candidates.len();
        let (low, high) = mode.count_range(n);
        let count = if low == high {
            low
        } else {
            low + self.rng.below((high - low + 1) as u64) as usize
        };
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..count {
            let j = i + self.rng.below((n - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(count);
        idx.sort_unstable();
        Ok(idx.into_iter().map(|i| candidates[i].clone()).collect())
    }

    /// Delete the named pods (namespace, name) of a cluster as a disruption (a kill); `grace`
    /// overrides their own grace period. Pods already Terminating are not counted again.
    /// Logs "killed N pod(s) `what`: ...". Returns the pods newly deleted.
    pub fn kill_named(
        &mut self,
        at: Duration,
        cluster: &str,
        pods: &[(String, String)],
        grace: Option<Duration>,
        what: &str,
    ) -> Result<Vec<(String, String)>, SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        let mut ids = Vec::new();
        for (ns, name) in pods {
            ids.push(self.pod_id(ci, ns, name)?);
        }
        ids.sort_unstable();
        let ns_of: BTreeMap<String, String> = ids
            .iter()
            .map(|id| {
                let p = &self.pods[id];
                (p.name.clone(), self.deployments[p.dep].p.namespace.clone())
            })
            .collect();
        let names = self.delete_pods(&ids, grace, Why::Disruption);
        let msg = format!(
            "killed {} pod(s) {what}: {}; replacements after {}",
            names.len(),
            names.join(", "),
            fmt(self.cluster_p(ci).reschedule_delay)
        );
        self.note(format!("k8s {cluster}"), msg);
        let out = names
            .into_iter()
            .map(|n| (ns_of.get(&n).cloned().unwrap_or_default(), n))
            .collect();
        self.finish(out)
    }

    /// Cordon every node of `zone` in `cluster`; returns the node names.
    pub fn cordon_zone(
        &mut self,
        at: Duration,
        cluster: &str,
        zone: &str,
    ) -> Result<Vec<String>, SimError> {
        self.advance_to(at);
        let ci = self.cluster_zone(cluster, zone)?;
        let mut names = Vec::new();
        for n in self
            .nodes
            .iter_mut()
            .filter(|n| n.cluster == ci && n.zone == zone)
        {
            n.schedulable = false;
            names.push(n.name.clone());
        }
        self.note(
            format!("k8s {cluster}"),
            format!("cordoned {} node(s) in {zone}", names.len()),
        );
        self.finish(names)
    }

    /// Make nodes schedulable again; Pending pods are retried.
    pub fn uncordon_nodes(
        &mut self,
        at: Duration,
        cluster: &str,
        nodes: &[String],
    ) -> Result<(), SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        let mut idx = Vec::new();
        for name in nodes {
            idx.push(self.node_index(ci, name)?);
        }
        for i in idx {
            self.nodes[i].schedulable = true;
        }
        self.note(
            format!("k8s {cluster}"),
            format!("uncordoned {} node(s)", nodes.len()),
        );
        self.schedule_pending(ci);
        self.finish(())
    }

    /// Cordon the zone and evict its pods through the Eviction API's rules (PodDisruptionBudgets
    /// honoured, DaemonSet pods skipped), in one pass. Returns (evicted, refused by a budget);
    /// a caller that drains like `kubectl drain` retries the refused ones.
    pub fn drain_zone(
        &mut self,
        at: Duration,
        cluster: &str,
        zone: &str,
    ) -> Result<(Vec<String>, Vec<String>), SimError> {
        self.cordon_zone(at, cluster, zone)?;
        let ci = self.cluster_index(cluster)?;
        let pods: Vec<(String, String)> = self
            .pods
            .values()
            .filter(|p| {
                p.deleting.is_none()
                    && self.kind(p.dep) != WorkloadKind::DaemonSet
                    && p.node
                        .is_some_and(|n| self.nodes[n].cluster == ci && self.nodes[n].zone == zone)
            })
            .map(|p| (self.deployments[p.dep].p.namespace.clone(), p.name.clone()))
            .collect();
        let (mut evicted, mut refused) = (Vec::new(), Vec::new());
        for (ns, name) in pods {
            match self.evict_pod(at, cluster, &ns, &name, None) {
                Ok(()) => evicted.push(name),
                Err(SimError::Budget { .. }) => refused.push(name),
                Err(e) => return Err(e),
            }
        }
        self.note(
            format!("k8s {cluster}"),
            format!(
                "drained {zone}: evicted {} pod(s){}",
                evicted.len(),
                if refused.is_empty() {
                    String::new()
                } else {
                    format!(", {} refused by a PodDisruptionBudget", refused.len())
                }
            ),
        );
        self.finish((evicted, refused))
    }

    /// Set a deployment's (or statefulset's) replicas; returns the previous value (for rollback).
    pub fn scale(
        &mut self,
        at: Duration,
        cluster: &str,
        namespace: &str,
        deployment: &str,
        replicas: u32,
    ) -> Result<u32, SimError> {
        self.scale_workload(at, cluster, namespace, None, deployment, replicas)
    }
}
