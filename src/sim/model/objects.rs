//! The estate's Kubernetes part as API objects: views of nodes, pods, workloads, the
//! Deployments' ReplicaSets, PodDisruptionBudgets and namespaces, a change feed with resource versions, and the
//! object-level operations the Kubernetes API serves (delete, evict, cordon, taint, scale,
//! rollout restart).
//!
//! The feed is derived, not hand-maintained: after every change to the estate
//! ([`Estate::refresh`](super::Estate)) the current objects are compared with the last
//! published ones, and each difference becomes an ADDED, MODIFIED or DELETED change with the next
//! resource version. So a watch can never miss a change the state shows, and every object's
//! `resourceVersion` is the version of its last change.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::{
    Estate, Phase, SimError, Taint, TaintEffect, Why, WorkloadKind, fmt, fnv, list, safe_chars,
};

/// How many changes the feed keeps; a watch from an older version gets 410 Gone.
pub const FEED_CAPACITY: usize = 20_000;

/// Kinds of objects the estate publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjKind {
    Namespace,
    Node,
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    PodDisruptionBudget,
}

impl ObjKind {
    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, ObjKind::Namespace | ObjKind::Node)
    }

    fn of(kind: WorkloadKind) -> ObjKind {
        match kind {
            WorkloadKind::Deployment => ObjKind::Deployment,
            WorkloadKind::StatefulSet => ObjKind::StatefulSet,
            WorkloadKind::DaemonSet => ObjKind::DaemonSet,
        }
    }
}

/// A namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceObj {
    pub name: String,
    pub uid: String,
}

/// A node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeObj {
    pub name: String,
    pub uid: String,
    pub zone: String,
    pub region: String,
    pub unschedulable: bool,
    pub taints: Vec<Taint>,
    /// Ready condition: `true` (True) or `false` (Unknown: the node controller lost the node).
    pub ready: bool,
    /// Last transition of the Ready condition (estate time).
    pub ready_since: Duration,
    /// Pod capacity (`pods_per_node`).
    pub pods_capacity: u32,
    pub memory_gib: f64,
}

/// A pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodObj {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The workload's labels plus `pod-template-hash` / `controller-revision-hash` (and
    /// `statefulset.kubernetes.io/pod-name`).
    pub labels: BTreeMap<String, String>,
    pub workload_kind: WorkloadKind,
    pub workload: String,
    /// `ReplicaSet`, `StatefulSet` or `DaemonSet`.
    pub owner_kind: &'static str,
    /// `api-<hash>` for a ReplicaSet, else the workload name.
    pub owner_name: String,
    pub owner_uid: String,
    pub node: Option<String>,
    /// `Pending` or `Running`.
    pub phase: &'static str,
    /// The Ready condition.
    pub ready: bool,
    /// Last transition of the Ready condition.
    pub ready_since: Duration,
    /// On a node the node controller has marked NotReady.
    pub unreachable: bool,
    pub created: Duration,
    pub scheduled: Option<Duration>,
    pub restarts: u32,
    /// (deletion requested at, grace period): Terminating.
    pub deletion: Option<(Duration, Duration)>,
    pub grace: Duration,
    pub memory_gib: f64,
}

impl PodObj {
    /// `deletionTimestamp`: when the grace period ends.
    pub fn deletion_timestamp(&self) -> Option<Duration> {
        self.deletion.map(|(at, g)| at + g)
    }
}

/// A Deployment, StatefulSet or DaemonSet.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadObj {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Desired pods (`spec.replicas`; a DaemonSet's desired number scheduled).
    pub replicas: u32,
    /// Live (not terminating) pods.
    pub current: u32,
    pub ready: u32,
    pub updated: u32,
    pub generation: u64,
    pub template_hash: String,
    /// Pod template annotations.
    pub template_annotations: BTreeMap<String, String>,
    pub rolling: bool,
    pub startup: Duration,
    pub grace: Duration,
    pub memory_gib: f64,
}

/// A Deployment's ReplicaSet: one per pod template revision (`<deployment>-<pod-template-hash>`),
/// the current one and, like `revisionHistoryLimit: 10`, up to ten older ones (scaled to their
/// remaining pods, 0 once the rollout is done).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSetObj {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The owning Deployment.
    pub deployment: String,
    pub deployment_uid: String,
    /// The Deployment's labels plus `pod-template-hash` (its selector and pod template labels).
    pub labels: BTreeMap<String, String>,
    pub template_hash: String,
    /// `deployment.kubernetes.io/revision` (1 for the first template).
    pub revision: u64,
    /// `spec.replicas`: the current revision's share of the Deployment's replicas, an old
    /// revision's remaining pods.
    pub replicas: u32,
    /// Live (not terminating) pods of this revision.
    pub current: u32,
    pub ready: u32,
    /// The Deployment's desired replicas (`deployment.kubernetes.io/desired-replicas`).
    pub desired: u32,
    /// Pod template annotations (known for the current revision only).
    pub template_annotations: BTreeMap<String, String>,
    pub grace: Duration,
    pub memory_gib: f64,
}

/// A PodDisruptionBudget.
#[derive(Debug, Clone, PartialEq)]
pub struct PdbObj {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub selector: BTreeMap<String, String>,
    pub min_available: Option<u32>,
    pub max_unavailable: Option<u32>,
    pub current_healthy: u32,
    pub desired_healthy: u32,
    pub disruptions_allowed: u32,
    pub expected_pods: u32,
}

/// An object of the estate's Kubernetes part.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    Namespace(NamespaceObj),
    Node(NodeObj),
    Pod(PodObj),
    Workload(WorkloadObj),
    ReplicaSet(ReplicaSetObj),
    Pdb(PdbObj),
}

impl Obj {
    pub fn kind(&self) -> ObjKind {
        match self {
            Obj::Namespace(_) => ObjKind::Namespace,
            Obj::Node(_) => ObjKind::Node,
            Obj::Pod(_) => ObjKind::Pod,
            Obj::Workload(w) => ObjKind::of(w.kind),
            Obj::ReplicaSet(_) => ObjKind::ReplicaSet,
            Obj::Pdb(_) => ObjKind::PodDisruptionBudget,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Obj::Namespace(x) => &x.name,
            Obj::Node(x) => &x.name,
            Obj::Pod(x) => &x.name,
            Obj::Workload(x) => &x.name,
            Obj::ReplicaSet(x) => &x.name,
            Obj::Pdb(x) => &x.name,
        }
    }

    /// Namespace ("" for cluster-scoped objects).
    pub fn namespace(&self) -> &str {
        match self {
            Obj::Namespace(_) | Obj::Node(_) => "",
            Obj::Pod(x) => &x.namespace,
            Obj::Workload(x) => &x.namespace,
            Obj::ReplicaSet(x) => &x.namespace,
            Obj::Pdb(x) => &x.namespace,
        }
    }
}

/// ADDED, MODIFIED or DELETED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    /// The watch event type.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One change of one object, at resource version `rv` (for DELETED: the object as last seen).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub rv: u64,
    pub cluster: usize,
    pub kind: ChangeType,
    pub obj: Obj,
}

type Key = (usize, ObjKind, String, String);

/// Published objects and the change feed.
#[derive(Debug, Clone, Default)]
pub(super) struct Feed {
    rv: u64,
    published: BTreeMap<Key, (u64, Obj)>,
    log: VecDeque<Change>,
}

fn uid(key: &str) -> String {
    let h = fnv(key);
    let l = super::SplitMix64(h).next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        l >> 52,
        l & 0xffff_ffff_ffff
    )
}

impl Estate {
    // ----- views -------------------------------------------------------------

    fn node_obj(&self, n: usize) -> NodeObj {
        let node = &self.nodes[n];
        let c = self.cluster_p(node.cluster);
        NodeObj {
            name: node.name.clone(),
            uid: uid(&format!("node/{}/{}", c.name, node.name)),
            zone: node.zone.clone(),
            region: c.region.clone(),
            unschedulable: !node.schedulable,
            taints: node.taints.clone(),
            ready: node.not_ready_since.is_none(),
            ready_since: node.not_ready_since.unwrap_or_default(),
            pods_capacity: c.pods_per_node,
            memory_gib: c.node_memory_gib,
        }
    }

    fn pod_obj(&self, id: u64) -> PodObj {
        let p = &self.pods[&id];
        let d = &self.deployments[p.dep];
        let cname = &self.cluster_p(d.cluster).name;
        let hash = self.revision_hash(p.dep, p.revision);
        let mut labels = d.p.labels.clone();
        let (owner_kind, owner_name) = match d.p.kind {
            WorkloadKind::Deployment => {
                labels.insert("pod-template-hash".into(), hash.clone());
                ("ReplicaSet", format!("{}-{hash}", d.p.name))
            }
            WorkloadKind::StatefulSet => {
                labels.insert(
                    "controller-revision-hash".into(),
                    format!("{}-{hash}", d.p.name),
                );
                labels.insert("statefulset.kubernetes.io/pod-name".into(), p.name.clone());
                ("StatefulSet", d.p.name.clone())
            }
            WorkloadKind::DaemonSet => {
                labels.insert("controller-revision-hash".into(), hash.clone());
                ("DaemonSet", d.p.name.clone())
            }
        };
        let ready = self.pod_ready_condition(p);
        let node_lost = p.node.and_then(|n| self.nodes[n].not_ready_since);
        let ready_since = if ready {
            p.ready_at.unwrap_or_default()
        } else {
            [
                p.deleting.map(|x| x.since),
                node_lost,
                p.scheduled,
                Some(p.created),
            ]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or_default()
        };
        PodObj {
            namespace: d.p.namespace.clone(),
            name: p.name.clone(),
            uid: uid(&format!("pod/{cname}/{}", id)),
            labels,
            workload_kind: d.p.kind,
            workload: d.p.name.clone(),
            owner_kind,
            owner_uid: uid(&format!(
                "{owner_kind}/{cname}/{}/{owner_name}",
                d.p.namespace
            )),
            owner_name,
            node: p.node.map(|n| self.nodes[n].name.clone()),
            phase: if p.node.is_some() {
                "Running"
            } else {
                "Pending"
            },
            ready,
            ready_since,
            unreachable: node_lost.is_some(),
            created: p.created,
            scheduled: p.scheduled,
            restarts: p.container_restarts,
            deletion: p.deleting.map(|x| (x.since, x.grace)),
            grace: d.p.termination_grace,
            memory_gib: d.p.memory_gib,
        }
    }

    pub(super) fn revision_hash(&self, dep: usize, revision: u64) -> String {
        let d = &self.deployments[dep];
        let key = format!(
            "{}/{}/{}/{}",
            self.cluster_p(d.cluster).name,
            d.p.namespace,
            d.p.name,
            revision
        );
        safe_chars(fnv(&key), 10)
    }

    pub(super) fn desired_pods(&self, dep: usize) -> u32 {
        let d = &self.deployments[dep];
        match d.p.kind {
            WorkloadKind::DaemonSet => self.cluster_nodes(d.cluster).len() as u32,
            _ => d.replicas,
        }
    }

    fn workload_obj(&self, dep: usize) -> WorkloadObj {
        let d = &self.deployments[dep];
        let cname = &self.cluster_p(d.cluster).name;
        let live: Vec<_> = self.live_pods(dep).collect();
        WorkloadObj {
            kind: d.p.kind,
            namespace: d.p.namespace.clone(),
            name: d.p.name.clone(),
            uid: uid(&format!(
                "{}/{cname}/{}/{}",
                d.p.kind.as_str(),
                d.p.namespace,
                d.p.name
            )),
            labels: d.p.labels.clone(),
            replicas: self.desired_pods(dep),
            current: live.len() as u32,
            ready: live.iter().filter(|p| self.pod_ready_condition(p)).count() as u32,
            updated: live.iter().filter(|p| p.revision == d.revision).count() as u32,
            generation: d.generation,
            template_hash: self.revision_hash(dep, d.revision),
            template_annotations: d.template_annotations.clone(),
            rolling: d.rolling,
            startup: d.p.startup,
            grace: d.p.termination_grace,
            memory_gib: d.p.memory_gib,
        }
    }

    /// A Deployment's ReplicaSets, oldest revision first: the current revision, the ten before
    /// it (`revisionHistoryLimit: 10`) and any older one that still has pods.
    fn replicaset_objs(&self, dep: usize) -> Vec<ReplicaSetObj> {
        let d = &self.deployments[dep];
        if d.p.kind != WorkloadKind::Deployment {
            return Vec::new();
        }
        let cname = &self.cluster_p(d.cluster).name;
        let live: Vec<_> = self.live_pods(dep).collect();
        let mut revisions: Vec<u64> = (d.revision.saturating_sub(10).max(1)..=d.revision).collect();
        for p in self.pods.values().filter(|p| p.dep == dep) {
            if !revisions.contains(&p.revision) {
                revisions.push(p.revision);
            }
        }
        revisions.sort_unstable();
        let others = |r: u64| live.iter().filter(|p| p.revision != r).count() as u32;
        revisions
            .into_iter()
            .map(|r| {
                let hash = self.revision_hash(dep, r);
                let mine: Vec<_> = live.iter().filter(|p| p.revision == r).collect();
                let current = mine.len() as u32;
                let mut labels = d.p.labels.clone();
                labels.insert("pod-template-hash".into(), hash.clone());
                let name = format!("{}-{hash}", d.p.name);
                ReplicaSetObj {
                    namespace: d.p.namespace.clone(),
                    uid: uid(&format!("ReplicaSet/{cname}/{}/{name}", d.p.namespace)),
                    name,
                    deployment: d.p.name.clone(),
                    deployment_uid: uid(&format!(
                        "{}/{cname}/{}/{}",
                        d.p.kind.as_str(),
                        d.p.namespace,
                        d.p.name
                    )),
                    labels,
                    template_hash: hash,
                    revision: r,
                    replicas: if r == d.revision {
                        d.replicas.saturating_sub(others(r))
                    } else {
                        current
                    },
                    current,
                    ready: mine.iter().filter(|p| self.pod_ready_condition(p)).count() as u32,
                    desired: d.replicas,
                    template_annotations: if r == d.revision {
                        d.template_annotations.clone()
                    } else {
                        BTreeMap::new()
                    },
                    grace: d.p.termination_grace,
                    memory_gib: d.p.memory_gib,
                }
            })
            .collect()
    }

    /// (expected pods, desired healthy, currently healthy, disruptions allowed) of a workload's
    /// budget.
    fn budget(&self, dep: usize) -> Option<(u32, u32, u32, u32)> {
        let pdb = self.deployments[dep].p.pdb.as_ref()?;
        let expected = self.desired_pods(dep);
        let desired = match (pdb.min_available, pdb.max_unavailable) {
            (Some(m), _) => m,
            (_, Some(u)) => expected.saturating_sub(u),
            _ => 0,
        };
        let healthy = self
            .pods
            .values()
            .filter(|p| p.dep == dep && self.pod_ready_condition(p))
            .count() as u32;
        Some((expected, desired, healthy, healthy.saturating_sub(desired)))
    }

    fn pdb_obj(&self, dep: usize) -> Option<PdbObj> {
        let d = &self.deployments[dep];
        let pdb = d.p.pdb.as_ref()?;
        let (expected, desired, healthy, allowed) = self.budget(dep)?;
        let cname = &self.cluster_p(d.cluster).name;
        Some(PdbObj {
            namespace: d.p.namespace.clone(),
            name: d.p.name.clone(),
            uid: uid(&format!("pdb/{cname}/{}/{}", d.p.namespace, d.p.name)),
            selector: d.p.labels.clone(),
            min_available: pdb.min_available,
            max_unavailable: pdb.max_unavailable,
            current_healthy: healthy,
            desired_healthy: desired,
            disruptions_allowed: allowed,
            expected_pods: expected,
        })
    }

    fn snapshot(&self) -> BTreeMap<Key, Obj> {
        let mut out = BTreeMap::new();
        let mut put = |ci: usize, o: Obj| {
            out.insert(
                (
                    ci,
                    o.kind(),
                    o.namespace().to_string(),
                    o.name().to_string(),
                ),
                o,
            );
        };
        for ci in 0..self.params.kubernetes.len() {
            let cname = &self.cluster_p(ci).name;
            let mut namespaces: Vec<&str> = vec!["default", "kube-node-lease", "kube-public"];
            namespaces.push("kube-system");
            for d in self.deployments.iter().filter(|d| d.cluster == ci) {
                namespaces.push(&d.p.namespace);
            }
            for ns in namespaces {
                put(
                    ci,
                    Obj::Namespace(NamespaceObj {
                        name: ns.to_string(),
                        uid: uid(&format!("namespace/{cname}/{ns}")),
                    }),
                );
            }
        }
        for n in 0..self.nodes.len() {
            put(self.nodes[n].cluster, Obj::Node(self.node_obj(n)));
        }
        for dep in 0..self.deployments.len() {
            let ci = self.deployments[dep].cluster;
            put(ci, Obj::Workload(self.workload_obj(dep)));
            for rs in self.replicaset_objs(dep) {
                put(ci, Obj::ReplicaSet(rs));
            }
            if let Some(p) = self.pdb_obj(dep) {
                put(ci, Obj::Pdb(p));
            }
        }
        for (&id, p) in &self.pods {
            put(self.deployments[p.dep].cluster, Obj::Pod(self.pod_obj(id)));
        }
        out
    }

    /// Publish the current objects: every difference from the last publication becomes a
    /// change with the next resource version.
    pub(super) fn publish(&mut self) {
        let now = self.snapshot();
        let feed = &mut self.feed;
        let mut changes = Vec::new();
        for (k, (_, old)) in &feed.published {
            if !now.contains_key(k) {
                changes.push((k.clone(), ChangeType::Deleted, old.clone()));
            }
        }
        for (k, o) in now {
            match feed.published.get(&k) {
                Some((_, old)) if *old == o => {}
                Some(_) => changes.push((k, ChangeType::Modified, o)),
                None => changes.push((k, ChangeType::Added, o)),
            }
        }
        for (k, kind, obj) in changes {
            feed.rv += 1;
            let rv = feed.rv;
            if kind == ChangeType::Deleted {
                feed.published.remove(&k);
            } else {
                feed.published.insert(k.clone(), (rv, obj.clone()));
            }
            feed.log.push_back(Change {
                rv,
                cluster: k.0,
                kind,
                obj,
            });
            if feed.log.len() > FEED_CAPACITY {
                feed.log.pop_front();
            }
        }
    }

    // ----- reading -----------------------------------------------------------

    /// The latest resource version (of any object of any cluster).
    pub fn resource_version(&self) -> u64 {
        self.feed.rv
    }

    /// When the next queued model event happens (estate time), if any: a watch on a paused
    /// clock sleeps until then.
    pub fn next_event_at(&self) -> Option<Duration> {
        self.queue.peek().map(|q| q.at)
    }

    /// The objects of one kind in a cluster, each with its resource version, ordered by
    /// namespace and name.
    pub fn objects(
        &mut self,
        at: Duration,
        cluster: &str,
        kind: ObjKind,
    ) -> Result<Vec<(u64, Obj)>, SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        Ok(self
            .feed
            .published
            .iter()
            .filter(|(k, _)| k.0 == ci && k.1 == kind)
            .map(|(_, v)| v.clone())
            .collect())
    }

    /// One object (namespace "" for cluster-scoped kinds); `None` if it does not exist.
    pub fn object(
        &mut self,
        at: Duration,
        cluster: &str,
        kind: ObjKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<(u64, Obj)>, SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        Ok(self
            .feed
            .published
            .get(&(ci, kind, namespace.to_string(), name.to_string()))
            .cloned())
    }

    /// Changes of a cluster after resource version `rv`, in order. `Err(oldest)` when `rv` is
    /// older than the feed keeps (the API's 410 Gone).
    pub fn changes_since(&self, cluster: &str, rv: u64) -> Result<Vec<Change>, u64> {
        let ci = self.cluster_index(cluster).map_err(|_| 0u64)?;
        let oldest = self
            .feed
            .log
            .front()
            .map(|c| c.rv)
            .unwrap_or(self.feed.rv + 1);
        if rv + 1 < oldest && rv < self.feed.rv {
            return Err(oldest);
        }
        Ok(self
            .feed
            .log
            .iter()
            .filter(|c| c.rv > rv && c.cluster == ci)
            .cloned()
            .collect())
    }

    /// Every replaced pod's recovery so far (in the order replacements became Ready).
    pub fn pod_recoveries(&self) -> &[super::PodRecovery] {
        &self.recoveries
    }

    // ----- operations ---------------------------------------------------------

    /// Delete a pod (`grace`: its own termination grace period if `None`; 0 deletes at once).
    /// Returns the pod as it is now (Terminating), or `None` if it is gone already.
    pub fn delete_pod(
        &mut self,
        at: Duration,
        cluster: &str,
        namespace: &str,
        name: &str,
        grace: Option<Duration>,
    ) -> Result<Option<PodObj>, SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        let id = self.pod_id(ci, namespace, name)?;
        let names = self.delete_pods(&[id], grace, Why::Disruption);
        if !names.is_empty() {
            self.note(
                format!("k8s {cluster}"),
                format!(
                    "pod {namespace}/{name} deleted (grace {})",
                    fmt(grace.unwrap_or(
                        self.deployments[self.pods.get(&id).map_or(0, |p| p.dep)]
                            .p
                            .termination_grace
                    ))
                ),
            );
        }
        let out = self.pods.contains_key(&id).then(|| self.pod_obj(id));
        self.finish(out)
    }

    /// Evict a pod through the Eviction API's rules: refused ([`SimError::Budget`]) when its
    /// workload's PodDisruptionBudget allows no disruption now (a pod that is not Ready may go
    /// while the budget is met: `IfHealthyBudget`). A Terminating pod is accepted as is.
    pub fn evict_pod(
        &mut self,
        at: Duration,
        cluster: &str,
        namespace: &str,
        name: &str,
        grace: Option<Duration>,
    ) -> Result<(), SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        let id = self.pod_id(ci, namespace, name)?;
        let p = &self.pods[&id];
        if p.deleting.is_some() {
            return Ok(());
        }
        let dep = p.dep;
        if let Some((_, desired, healthy, allowed)) = self.budget(dep) {
            let ok = if self.pod_ready_condition(p) {
                allowed > 0
            } else {
                healthy >= desired
            };
            if !ok {
                let pdb = self.deployments[dep].p.name.clone();
                return Err(SimError::Budget {
                    namespace: namespace.into(),
                    pod: name.into(),
                    message: format!(
                        "The disruption budget {pdb} needs {desired} healthy pods and has {healthy} currently"
                    ),
                    pdb,
                });
            }
        }
        self.delete_pods(&[id], grace, Why::Disruption);
        self.note(
            format!("k8s {cluster}"),
            format!("pod {namespace}/{name} evicted"),
        );
        self.finish(())
    }

    /// Cordon (`true`) or uncordon a node; returns whether it was unschedulable before.
    pub fn set_unschedulable(
        &mut self,
        at: Duration,
        cluster: &str,
        node: &str,
        unschedulable: bool,
    ) -> Result<bool, SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        let n = self.node_index(ci, node)?;
        let before = !self.nodes[n].schedulable;
        if before != unschedulable {
            self.nodes[n].schedulable = !unschedulable;
            let what = if unschedulable {
                "cordoned"
            } else {
                "uncordoned"
            };
            self.note(format!("k8s {cluster}"), format!("node {node} {what}"));
            if !unschedulable {
                self.schedule_pending(ci);
            }
        }
        self.finish(before)
    }

    /// Replace a node's taints (as a patch of `spec.taints` does); returns the previous ones.
    /// A NoExecute taint that was not there evicts the node's pods (DaemonSet pods tolerate it),
    /// each with its own grace period; removing taints lets Pending pods schedule.
    pub fn set_taints(
        &mut self,
        at: Duration,
        cluster: &str,
        node: &str,
        taints: Vec<Taint>,
    ) -> Result<Vec<Taint>, SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        let n = self.node_index(ci, node)?;
        for (i, t) in taints.iter().enumerate() {
            if t.key.trim().is_empty() {
                return Err(SimError::Refused(format!(
                    "spec.taints[{i}].key: Required value; give every taint a key"
                )));
            }
            if taints[..i]
                .iter()
                .any(|o| o.key == t.key && o.effect == t.effect)
            {
                return Err(SimError::Refused(format!(
                    "spec.taints[{i}]: Duplicate value: taints must be unique by key and effect ({}:{})",
                    t.key,
                    t.effect.as_str()
                )));
            }
        }
        let before = self.nodes[n].taints.clone();
        let now = self.now;
        let new: Vec<Taint> = taints
            .into_iter()
            .map(|mut t| {
                let kept = before
                    .iter()
                    .find(|o| o.key == t.key && o.effect == t.effect)
                    .and_then(|o| o.added);
                if t.effect == TaintEffect::NoExecute {
                    t.added = t.added.or(kept).or(Some(now));
                } else {
                    t.added = None;
                }
                t
            })
            .collect();
        let fresh_no_execute: Vec<String> = new
            .iter()
            .filter(|t| {
                t.effect == TaintEffect::NoExecute
                    && !before
                        .iter()
                        .any(|o| o.key == t.key && o.effect == TaintEffect::NoExecute)
            })
            .map(|t| t.key.clone())
            .collect();
        let removed = before.iter().any(|o| !new.contains(o));
        if before != new {
            self.nodes[n].taints = new;
            let shown: Vec<String> = self.nodes[n]
                .taints
                .iter()
                .map(|t| match &t.value {
                    Some(v) => format!("{}={v}:{}", t.key, t.effect.as_str()),
                    None => format!("{}:{}", t.key, t.effect.as_str()),
                })
                .collect();
            self.note(
                format!("k8s {cluster}"),
                format!("node {node} taints now [{}]", shown.join(", ")),
            );
        }
        if !fresh_no_execute.is_empty() {
            let ids: Vec<u64> = self
                .pods
                .iter()
                .filter(|(_, p)| {
                    p.node == Some(n)
                        && p.deleting.is_none()
                        && self.kind(p.dep) != WorkloadKind::DaemonSet
                })
                .map(|(id, _)| *id)
                .collect();
            let names = self.delete_pods(&ids, None, Why::Disruption);
            if !names.is_empty() {
                self.note(
                    format!("k8s {cluster}"),
                    format!(
                        "NoExecute taint {} on node {node} evicted {} pod(s): {}",
                        fresh_no_execute.join(", "),
                        names.len(),
                        names.join(", ")
                    ),
                );
            }
        }
        if removed {
            self.schedule_pending(ci);
        }
        self.finish(before)
    }

    fn workload_index(
        &self,
        ci: usize,
        namespace: &str,
        kind: Option<WorkloadKind>,
        name: &str,
    ) -> Result<usize, SimError> {
        self.deployments
            .iter()
            .position(|d| {
                d.cluster == ci
                    && d.p.namespace == namespace
                    && d.p.name == name
                    && kind.is_none_or(|k| k == d.p.kind)
            })
            .ok_or_else(|| {
                let what = kind.map_or("workload", WorkloadKind::as_str);
                let valid: Vec<String> = self
                    .deployments
                    .iter()
                    .filter(|d| d.cluster == ci && kind.is_none_or(|k| k == d.p.kind))
                    .map(|d| format!("{}/{}", d.p.namespace, d.p.name))
                    .collect();
                SimError::Unknown {
                    kind: match what {
                        "deployment" => "deployment",
                        "statefulset" => "statefulset",
                        "daemonset" => "daemonset",
                        _ => "workload",
                    },
                    name: format!("{namespace}/{name}"),
                    valid: list(valid.iter().map(String::as_str)),
                }
            })
    }

    /// Set a Deployment's or StatefulSet's replicas (`kind` None: whichever has that name);
    /// returns the previous count. Scale-down deletes the excess (Deployments: Pending, then
    /// Starting, then newest; StatefulSets: highest ordinals), each with its grace period.
    pub fn scale_workload(
        &mut self,
        at: Duration,
        cluster: &str,
        namespace: &str,
        kind: Option<WorkloadKind>,
        name: &str,
        replicas: u32,
    ) -> Result<u32, SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        let dep = self.workload_index(ci, namespace, kind, name)?;
        if self.kind(dep) == WorkloadKind::DaemonSet {
            return Err(SimError::Refused(format!(
                "daemonset {namespace}/{name} runs one pod per node and cannot be scaled"
            )));
        }
        if replicas > 10_000 {
            return Err(SimError::Refused(format!(
                "{replicas} replicas is absurd; use at most 10000"
            )));
        }
        let prev = self.deployments[dep].replicas;
        if prev == replicas {
            return self.finish(prev);
        }
        self.deployments[dep].replicas = replicas;
        self.deployments[dep].generation += 1;
        let kind = self.kind(dep);
        self.note(
            format!("k8s {cluster}"),
            format!(
                "{} {namespace}/{name} scaled {prev} -> {replicas}",
                kind.as_str()
            ),
        );
        let mut live: Vec<(u8, u64, u64)> = self
            .pods
            .iter()
            .filter(|(_, p)| p.dep == dep && p.deleting.is_none())
            .map(|(id, p)| {
                let rank = match (kind, p.phase) {
                    (WorkloadKind::StatefulSet, _) => 0,
                    (_, Phase::Pending) => 0,
                    (_, Phase::Starting) => 1,
                    (_, Phase::Ready) => 2,
                };
                let order = match p.ordinal {
                    Some(o) => u64::MAX - u64::from(o),
                    None => u64::MAX - id,
                };
                (rank, order, *id)
            })
            .collect();
        if live.len() as u32 > replicas {
            live.sort_unstable();
            let excess = live.len() - replicas as usize;
            let ids: Vec<u64> = live.into_iter().take(excess).map(|x| x.2).collect();
            self.delete_pods(&ids, None, Why::ScaleDown);
            self.schedule_pending(ci);
        } else {
            self.reconcile(dep);
        }
        self.finish(prev)
    }

    /// Set a workload's pod template annotations (`kubectl rollout restart` sets
    /// `kubectl.kubernetes.io/restartedAt`); a change is a new template revision, rolled out one
    /// pod at a time. Returns the previous annotations.
    pub fn set_template_annotations(
        &mut self,
        at: Duration,
        cluster: &str,
        namespace: &str,
        kind: Option<WorkloadKind>,
        name: &str,
        annotations: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        let dep = self.workload_index(ci, namespace, kind, name)?;
        let prev = self.deployments[dep].template_annotations.clone();
        if prev == annotations {
            return self.finish(prev);
        }
        let d = &mut self.deployments[dep];
        d.template_annotations = annotations;
        d.revision += 1;
        d.generation += 1;
        d.rolling = true;
        let msg = format!(
            "{} {namespace}/{name}: pod template changed, rolling update started (one pod at a time)",
            d.p.kind.as_str()
        );
        self.note(format!("k8s {cluster}"), msg);
        self.rollout_step(dep);
        self.finish(prev)
    }

    /// Nodes of a cluster whose labels match (for label-selected node actions).
    pub fn node_names(&self, cluster: &str) -> Result<Vec<String>, SimError> {
        let ci = self.cluster_index(cluster)?;
        Ok(self
            .nodes
            .iter()
            .filter(|n| n.cluster == ci)
            .map(|n| n.name.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SimParams, Taint, TaintEffect};
    use super::*;

    fn t(v: u64) -> Duration {
        Duration::from_secs(v)
    }

    fn estate() -> Estate {
        Estate::from_params(SimParams::default()).unwrap()
    }

    fn pods(e: &mut Estate, at: u64, ns: &str) -> Vec<PodObj> {
        e.objects(t(at), "prod-east", ObjKind::Pod)
            .unwrap()
            .into_iter()
            .filter_map(|(_, o)| match o {
                Obj::Pod(p) if p.namespace == ns => Some(p),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn initial_objects_have_owners_nodes_and_labels() {
        let mut e = estate();
        let web = pods(&mut e, 0, "web");
        assert_eq!(web.len(), 9);
        let api: Vec<_> = web.iter().filter(|p| p.workload == "api").collect();
        assert_eq!(api.len(), 6);
        for p in &api {
            assert_eq!(p.owner_kind, "ReplicaSet");
            let hash = &p.labels["pod-template-hash"];
            assert_eq!(p.owner_name, format!("api-{hash}"));
            assert!(p.name.starts_with(&format!("api-{hash}-")), "{}", p.name);
            assert!(p.ready && p.node.is_some());
        }
        let db = pods(&mut e, 0, "data");
        let names: Vec<_> = db.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["db-0", "db-1", "db-2"]);
        let ds = pods(&mut e, 0, "kube-system");
        assert_eq!(ds.len(), 9, "one node-exporter per node");
        let mut nodes: Vec<_> = ds.iter().map(|p| p.node.clone().unwrap()).collect();
        nodes.dedup();
        assert_eq!(nodes.len(), 9);
    }

    fn replicasets(e: &mut Estate, at: u64) -> Vec<ReplicaSetObj> {
        e.objects(t(at), "prod-east", ObjKind::ReplicaSet)
            .unwrap()
            .into_iter()
            .filter_map(|(_, o)| match o {
                Obj::ReplicaSet(r) if r.deployment == "api" => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_rollout_adds_a_replicaset_and_scales_the_old_one_to_zero() {
        let mut e = estate();
        let rs = replicasets(&mut e, 0);
        assert_eq!(rs.len(), 1, "{rs:?}");
        let first = rs[0].clone();
        let api: Vec<PodObj> = pods(&mut e, 0, "web")
            .into_iter()
            .filter(|p| p.workload == "api")
            .collect();
        assert!(
            api.iter()
                .all(|p| p.owner_name == first.name && p.owner_uid == first.uid)
        );
        assert_eq!(first.labels["pod-template-hash"], first.template_hash);
        assert_eq!(
            (first.revision, first.replicas, first.current, first.ready),
            (1, 6, 6, 6)
        );
        // No ObjKind::ReplicaSet for StatefulSets or DaemonSets.
        assert_eq!(
            e.objects(t(0), "prod-east", ObjKind::ReplicaSet)
                .unwrap()
                .len(),
            2,
            "api and worker"
        );
        e.set_template_annotations(
            t(10),
            "prod-east",
            "web",
            None,
            "api",
            BTreeMap::from([("k".to_string(), "v".to_string())]),
        )
        .unwrap();
        let rs = replicasets(&mut e, 11);
        assert_eq!(rs.len(), 2);
        let (old, new) = (&rs[0], &rs[1]);
        assert_eq!(old.name, first.name);
        assert_eq!(new.revision, 2);
        assert_eq!(new.template_annotations["k"], "v");
        assert!(old.template_annotations.is_empty());
        assert_eq!(old.replicas + new.replicas, 6, "{rs:?}");
        assert!(new.replicas >= 1 && old.current < 6, "{rs:?}");
        // Once rolled out, the old one stays in the history with nothing left.
        let rs = replicasets(&mut e, 3600);
        assert_eq!(
            rs.iter()
                .map(|r| (r.revision, r.replicas, r.ready))
                .collect::<Vec<_>>(),
            [(1, 0, 0), (2, 6, 6)]
        );
    }

    #[test]
    fn delete_keeps_pod_terminating_for_its_grace_and_statefulset_recreates_after() {
        let mut e = estate();
        let grace = e.params().kubernetes[0].deployments[2].termination_grace;
        let delay = e.params().kubernetes[0].reschedule_delay;
        let p = e
            .delete_pod(t(10), "prod-east", "data", "db-1", None)
            .unwrap()
            .unwrap();
        assert_eq!(p.deletion, Some((t(10), grace)));
        assert!(!p.ready);
        let gone = t(10) + grace;
        let still = e
            .object(gone - t(1), "prod-east", ObjKind::Pod, "data", "db-1")
            .unwrap();
        assert!(still.is_some());
        assert!(
            e.object(gone, "prod-east", ObjKind::Pod, "data", "db-1")
                .unwrap()
                .is_none()
        );
        let back = e
            .object(gone + delay, "prod-east", ObjKind::Pod, "data", "db-1")
            .unwrap()
            .expect("recreated under its name");
        let Obj::Pod(back) = back.1 else { panic!() };
        assert_eq!(back.created, gone + delay);
        assert!(back.deletion.is_none());
        let r = e.pod_recoveries();
        assert!(r.is_empty(), "not Ready yet");
        let startup = e.params().kubernetes[0].deployments[2].startup;
        e.advance_to(gone + delay + startup);
        let r = e.pod_recoveries().last().unwrap().clone();
        assert_eq!((r.pod.as_str(), r.replacement.as_str()), ("db-1", "db-1"));
        assert_eq!(r.ready_at - r.killed_at, grace + delay + startup);
    }

    #[test]
    fn eviction_honours_the_budget_until_the_replacement_is_ready() {
        let mut e = estate();
        let api: Vec<String> = pods(&mut e, 0, "web")
            .into_iter()
            .filter(|p| p.workload == "api")
            .map(|p| p.name)
            .collect();
        e.evict_pod(t(10), "prod-east", "web", &api[0], None)
            .unwrap();
        let err = e
            .evict_pod(t(11), "prod-east", "web", &api[1], None)
            .unwrap_err();
        assert!(matches!(err, SimError::Budget { .. }), "{err}");
        assert!(
            err.to_string().contains("needs 5 healthy pods and has 5"),
            "{err}"
        );
        // Allowed again once the replacement is Ready: reschedule delay + start-up (≤ 40s).
        let c = &e.params().kubernetes[0];
        let latest =
            t(10) + c.reschedule_delay + c.deployments[0].startup + c.deployments[0].startup_jitter;
        e.evict_pod(latest, "prod-east", "web", &api[1], None)
            .unwrap();
    }

    #[test]
    fn no_execute_taint_evicts_all_but_daemonset_pods_and_blocks_scheduling() {
        let mut e = estate();
        let node = "us-east-1a-1";
        let on_node = |e: &mut Estate, at| {
            pods(e, at, "web")
                .into_iter()
                .chain(pods(e, at, "data"))
                .chain(pods(e, at, "kube-system"))
                .filter(|p| p.node.as_deref() == Some(node) && p.deletion.is_none())
                .map(|p| p.workload)
                .collect::<Vec<_>>()
        };
        assert!(on_node(&mut e, 0).len() > 1);
        let taint = Taint {
            key: "chaos".into(),
            value: None,
            effect: TaintEffect::NoExecute,
            added: None,
        };
        let before = e.set_taints(t(10), "prod-east", node, vec![taint]).unwrap();
        assert!(before.is_empty());
        assert_eq!(on_node(&mut e, 10), ["node-exporter"]);
        assert_eq!(
            on_node(&mut e, 300),
            ["node-exporter"],
            "nothing schedules back"
        );
        e.set_taints(t(300), "prod-east", node, vec![]).unwrap();
    }

    #[test]
    fn feed_orders_changes_and_versions_objects() {
        let mut e = estate();
        let rv0 = e.resource_version();
        e.set_unschedulable(t(5), "prod-east", "us-east-1b-2", true)
            .unwrap();
        let ch = e.changes_since("prod-east", rv0).unwrap();
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].kind, ChangeType::Modified);
        assert!(matches!(&ch[0].obj, Obj::Node(n) if n.unschedulable));
        let (rv, _) = e
            .object(t(5), "prod-east", ObjKind::Node, "", "us-east-1b-2")
            .unwrap()
            .unwrap();
        assert_eq!(rv, ch[0].rv);
        // A kill: MODIFIED (Terminating), ADDED (replacement), DELETED (grace over), in order.
        let rv1 = e.resource_version();
        let victims = e
            .kill_pods(
                t(10),
                "prod-east",
                "web",
                &BTreeMap::from([("app".to_string(), "worker".to_string())]),
                super::super::KillMode::One,
            )
            .unwrap();
        e.advance_to(t(100));
        let ch: Vec<_> = e
            .changes_since("prod-east", rv1)
            .unwrap()
            .into_iter()
            .filter(|c| matches!(&c.obj, Obj::Pod(_)))
            .collect();
        let of = |name: &str| {
            ch.iter()
                .filter(|c| c.obj.name() == name)
                .map(|c| c.kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(of(&victims[0]), [ChangeType::Modified, ChangeType::Deleted]);
        assert!(ch.windows(2).all(|w| w[0].rv < w[1].rv));
        assert!(ch.iter().any(|c| c.kind == ChangeType::Added));
        assert_eq!(
            e.changes_since("prod-west", e.resource_version())
                .unwrap()
                .len(),
            0
        );
        assert!(e.next_event_at().is_some());
    }
}
