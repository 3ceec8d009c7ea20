//! The `k8s.*` probes: pods by selector (with `desired` from their controllers), restarts over a
//! window, workload availability, nodes by zone, memory requested over allocatable.

use super::KubeProvider;
use super::api::{
    Op, ZONE_LABEL, controller_of, list, name_of, node_allocatable_memory, node_ready,
    node_unschedulable, node_zone, pod_finished, pod_live, pod_memory_request, pod_node, pod_ready,
    pod_restarts, selector_string, status_code,
};
use crate::backend::{Probe, ProviderError};
use crate::lang::action::{Nodes, PodsQuery, WorkloadAt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value as Json, json};
use std::collections::BTreeSet;

/// The probes this backend implements (every `k8s.*` probe of [`crate::lang::vocab`]).
pub const PROBES: &[&str] = &[
    "k8s.pods",
    "k8s.pod_restarts",
    "k8s.workload",
    "k8s.nodes",
    "k8s.memory",
];

/// A workload that owns pods: (`Deployment` | `StatefulSet` | `ReplicaSet`, name).
type Owner = (String, String);

impl KubeProvider {
    pub(crate) async fn observe_probe(&self, probe: &Probe) -> Result<Json, ProviderError> {
        match probe {
            Probe::Pods(q) => self.pods_probe(q).await,
            Probe::PodRestarts(q) => self.restarts_probe(q).await,
            Probe::Workload(w) => self.workload_probe(w).await,
            Probe::Nodes(n) => self.nodes_probe(n).await,
            Probe::Memory(_) => self.memory_probe().await,
            other => Err(super::unsupported(other.name())),
        }
    }

    async fn pods_probe(&self, q: &PodsQuery) -> Result<Json, ProviderError> {
        let ns = q.namespace.as_str();
        let selector = selector_string(&q.selector);
        let fields = q.field_selector.as_deref();
        let all = self.list_pods(ns, &selector, fields).await?;
        let terminating = all
            .iter()
            .filter(|p| !pod_finished(p) && super::api::pod_terminating(p))
            .count() as u64;
        let pods: Vec<Pod> = all.into_iter().filter(pod_live).collect();
        let total = pods.len() as u64;
        let ready = pods.iter().filter(|p| pod_ready(p)).count() as u64;
        let pending = pods.iter().filter(|p| pod_node(p).is_none()).count() as u64;
        // Scheduled but not Ready: starting, or stuck on a node that is not Ready (lost).
        let not_ready: Vec<&Pod> = pods
            .iter()
            .filter(|p| !pod_ready(p) && pod_node(p).is_some())
            .collect();
        let unreachable = if not_ready.is_empty() {
            0
        } else {
            match self.all_nodes().await {
                Ok(nodes) => {
                    let down: BTreeSet<String> = nodes
                        .iter()
                        .filter(|n| !node_ready(n))
                        .map(|n| name_of(&n.metadata))
                        .collect();
                    not_ready
                        .iter()
                        .filter(|p| pod_node(p).is_some_and(|n| down.contains(n)))
                        .count() as u64
                }
                // Without the right to list nodes, every such pod counts as starting.
                Err(_) => 0,
            }
        };
        let starting = total - ready - pending - unreachable;
        let restarts: u64 = pods.iter().map(pod_restarts).sum();
        let desired = self.desired(ns, &selector, &pods).await?;
        let ratio = if desired > 0 {
            ready as f64 / desired as f64
        } else if total > 0 {
            ready as f64 / total as f64
        } else if terminating > 0 {
            0.0
        } else {
            // Nothing matches, not even a workload that wants pods: a steady-state check on
            // nothing must not pass.
            return Err(self.no_match(&[ns.to_string()], &selector, fields).await);
        };
        Ok(json!({
            "cluster": self.cluster,
            "namespace": ns,
            "selector": selector,
            "desired": desired,
            "total": total,
            "ready": ready,
            "starting": starting,
            "pending": pending,
            "terminating": terminating,
            "unreachable": unreachable,
            "ready_ratio": ratio,
            "ready_percent": ratio * 100.0,
            "restarts": restarts,
        }))
    }

    /// The workload a ReplicaSet belongs to (its Deployment), cached.
    async fn resolve_replicaset(&self, ns: &str, rs: &str, pod: &Pod) -> Owner {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        let got = self
            .call(Op::new("get", "replicasets").ns(ns).name(rs), api.get(rs))
            .await;
        match got {
            Ok(r) => match controller_of(&r.metadata) {
                Some((k, n, _)) if k == "Deployment" => ("Deployment".into(), n),
                _ => ("ReplicaSet".into(), rs.to_string()),
            },
            // A server without ReplicaSets: the Deployment's name is the ReplicaSet's minus its
            // `-<pod-template-hash>` suffix.
            Err(_) => match pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash"))
                .and_then(|h| rs.strip_suffix(&format!("-{h}")))
            {
                Some(d) => ("Deployment".into(), d.to_string()),
                None => ("ReplicaSet".into(), rs.to_string()),
            },
        }
    }

    /// Desired replicas of the workloads owning a selector's pods. Owners are remembered per
    /// selector, so `desired` stays right when every pod is gone; with no owner ever seen, the
    /// Deployments and StatefulSets whose pod template matches the selector count.
    async fn desired(&self, ns: &str, selector: &str, pods: &[Pod]) -> Result<u64, ProviderError> {
        let key = format!("{ns}\n{selector}");
        let mut owners: BTreeSet<Owner> = self
            .state
            .lock()
            .expect("poisoned")
            .owners
            .get(&key)
            .cloned()
            .unwrap_or_default();
        let mut bare = 0u64;
        let mut resolved: std::collections::HashMap<String, Owner> = Default::default();
        for pod in pods {
            match controller_of(&pod.metadata) {
                Some((k, n, _)) if k == "ReplicaSet" => {
                    if !resolved.contains_key(&n) {
                        let cache_key = format!("{ns}/{n}");
                        let cached = self
                            .state
                            .lock()
                            .expect("poisoned")
                            .rs_owner
                            .get(&cache_key)
                            .cloned();
                        let o = match cached {
                            Some(o) => o,
                            None => {
                                let o = self.resolve_replicaset(ns, &n, pod).await;
                                self.state
                                    .lock()
                                    .expect("poisoned")
                                    .rs_owner
                                    .insert(cache_key, o.clone());
                                o
                            }
                        };
                        resolved.insert(n.clone(), o);
                    }
                    owners.insert(resolved[&n].clone());
                }
                Some((k, n, _)) if k == "StatefulSet" => {
                    owners.insert((k, n));
                }
                _ => bare += 1,
            }
        }
        if owners.is_empty() && bare == 0 {
            owners = self.workloads_matching(ns, selector).await;
        }
        let mut desired = bare;
        let mut gone = Vec::new();
        for o in &owners {
            let r = match o.0.as_str() {
                "Deployment" => {
                    let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                    let op = Op::new("get", "deployments").ns(ns).name(&o.1);
                    self.call_raw(op, api.get(&o.1))
                        .await?
                        .map(|d| d.spec.and_then(|s| s.replicas).unwrap_or(1))
                        .map_err(|e| (op, e))
                }
                "StatefulSet" => {
                    let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
                    let op = Op::new("get", "statefulsets").ns(ns).name(&o.1);
                    self.call_raw(op, api.get(&o.1))
                        .await?
                        .map(|d| d.spec.and_then(|s| s.replicas).unwrap_or(1))
                        .map_err(|e| (op, e))
                }
                _ => {
                    let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
                    let op = Op::new("get", "replicasets").ns(ns).name(&o.1);
                    self.call_raw(op, api.get(&o.1))
                        .await?
                        .map(|d| d.spec.and_then(|s| s.replicas).unwrap_or(1))
                        .map_err(|e| (op, e))
                }
            };
            match r {
                Ok(n) => desired += n.max(0) as u64,
                Err((_, e)) if status_code(&e) == Some(404) => gone.push(o.clone()),
                Err((op, e)) => return Err(self.map(op, e)),
            }
        }
        for g in gone {
            owners.remove(&g);
        }
        self.state
            .lock()
            .expect("poisoned")
            .owners
            .insert(key, owners);
        Ok(desired)
    }

    /// Deployments and StatefulSets whose pod template carries every label of the selector.
    pub(crate) async fn workloads_matching(&self, ns: &str, selector: &str) -> BTreeSet<Owner> {
        let want: Vec<(&str, &str)> = selector
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let matches = |l: Option<&std::collections::BTreeMap<String, String>>| {
            l.is_some_and(|l| {
                want.iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
        };
        let mut out = BTreeSet::new();
        let lp = ListParams::default();
        let deps: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        if let Ok(l) = self
            .call(Op::new("list", "deployments").ns(ns), deps.list(&lp))
            .await
        {
            for d in l.items {
                let tl = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.metadata.as_ref())
                    .and_then(|m| m.labels.as_ref());
                if matches(tl) {
                    out.insert(("Deployment".to_string(), name_of(&d.metadata)));
                }
            }
        }
        let sts: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        if let Ok(l) = self
            .call(Op::new("list", "statefulsets").ns(ns), sts.list(&lp))
            .await
        {
            for d in l.items {
                let tl = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.metadata.as_ref())
                    .and_then(|m| m.labels.as_ref());
                if matches(tl) {
                    out.insert(("StatefulSet".to_string(), name_of(&d.metadata)));
                }
            }
        }
        out
    }

    async fn restarts_probe(&self, q: &PodsQuery) -> Result<Json, ProviderError> {
        let ns = q.namespace.as_str();
        let selector = selector_string(&q.selector);
        let window = q.window;
        let pods = self.list_pods(ns, &selector, None).await?;
        // Nothing matches, not even a workload that wants pods: "no restarts" would be a check
        // that cannot fail.
        if pods.is_empty() && self.workloads_matching(ns, &selector).await.is_empty() {
            return Err(self.no_match(&[ns.to_string()], &selector, None).await);
        }
        let now = self.shared.now();
        let key = format!("{ns}\n{selector}");
        let mut st = self.state.lock().expect("poisoned");
        let h = st.restarts.entry(key).or_default();
        let first = h.samples.is_empty();
        for pod in &pods {
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            let r = pod_restarts(pod);
            match h.seen.get_mut(&uid) {
                Some(v) => *v = (*v).max(r),
                None => {
                    if !first {
                        h.replaced += 1;
                    }
                    h.seen.insert(uid, r);
                }
            }
        }
        let total = h.replaced + h.seen.values().sum::<u64>();
        h.samples.push_back((now, total));
        // Keep the newest sample at or before the window's start, and everything after it.
        while h.samples.len() > 1 && h.samples[1].0 + window <= now {
            h.samples.pop_front();
        }
        let (t0, base) = h.samples[0];
        let covered = now.saturating_sub(t0);
        Ok(json!({
            "cluster": self.cluster,
            "namespace": ns,
            "selector": selector,
            "restarts": total,
            "increase": total - base.min(total),
            "window_seconds": window.as_secs_f64(),
            "covered_seconds": covered.as_secs_f64(),
        }))
    }

    async fn workload_probe(&self, at: &WorkloadAt) -> Result<Json, ProviderError> {
        let ns = at.namespace.as_str();
        let (kind, name) = (at.workload.kind(), at.workload.name());
        let w = self.get_workload(ns, kind, name).await?;
        let n = |path: &str| w.pointer(path).and_then(Json::as_i64).unwrap_or(0);
        let replicas = w
            .pointer("/spec/replicas")
            .and_then(Json::as_i64)
            .unwrap_or(1);
        let available = n("/status/availableReplicas");
        Ok(json!({
            "cluster": self.cluster,
            "namespace": ns,
            "kind": kind,
            "name": name,
            "replicas": replicas,
            "ready_replicas": n("/status/readyReplicas"),
            "available_replicas": available,
            "updated_replicas": n("/status/updatedReplicas"),
            "available": available >= replicas,
        }))
    }

    pub(crate) async fn nodes_probe(&self, q: &Nodes) -> Result<Json, ProviderError> {
        let zone = q.zone.as_deref();
        let api: Api<Node> = Api::all(self.client.clone());
        let lp = match zone {
            Some(z) => ListParams::default().labels(&format!("{ZONE_LABEL}={z}")),
            None => ListParams::default(),
        };
        let nodes = self
            .call(Op::new("list", "nodes"), api.list(&lp))
            .await?
            .items;
        if let Some(z) = zone
            && nodes.is_empty()
        {
            let mut zones: Vec<String> = self
                .all_nodes()
                .await?
                .iter()
                .filter_map(|n| node_zone(n).map(str::to_string))
                .collect();
            zones.sort();
            zones.dedup();
            return Err(ProviderError::not_found(format!(
                "no nodes in zone `{z}` (label {ZONE_LABEL}); zones with nodes: {}",
                list(&zones)
            )));
        }
        let total = nodes.len() as u64;
        let ready = nodes.iter().filter(|n| node_ready(n)).count() as u64;
        // Schedulable for an ordinary pod: Ready, not cordoned, no NoSchedule/NoExecute taint.
        let schedulable = nodes
            .iter()
            .filter(|n| {
                node_ready(n)
                    && !node_unschedulable(n)
                    && !n
                        .spec
                        .as_ref()
                        .and_then(|s| s.taints.as_ref())
                        .is_some_and(|t| {
                            t.iter()
                                .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
                        })
            })
            .count() as u64;
        let mut out = json!({
            "cluster": self.cluster,
            "ready": ready,
            "total": total,
            "schedulable": schedulable,
            "ready_ratio": if total > 0 { ready as f64 / total as f64 } else { 0.0 },
        });
        if let Some(z) = zone {
            out["zone"] = json!(z);
        }
        Ok(out)
    }

    async fn memory_probe(&self) -> Result<Json, ProviderError> {
        let nodes = self.all_nodes().await?;
        let ready: BTreeSet<String> = nodes
            .iter()
            .filter(|n| node_ready(n))
            .map(|n| name_of(&n.metadata))
            .collect();
        let allocatable: f64 = nodes
            .iter()
            .filter(|n| node_ready(n))
            .map(node_allocatable_memory)
            .sum();
        let api: Api<Pod> = Api::all(self.client.clone());
        let pods = self
            .call(Op::new("list", "pods"), api.list(&ListParams::default()))
            .await?
            .items;
        // A terminating pod holds its memory until it is gone, as the scheduler counts it.
        let requested: f64 = pods
            .iter()
            .filter(|p| !pod_finished(p) && pod_node(p).is_some_and(|n| ready.contains(n)))
            .map(pod_memory_request)
            .sum();
        Ok(json!({
            "cluster": self.cluster,
            "utilization": if allocatable > 0.0 { requested / allocatable } else { 0.0 },
            "requested_bytes": requested,
            "allocatable_bytes": allocatable,
            "ready_nodes": ready.len(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_k8s_probe_of_the_vocabulary_is_implemented() {
        let vocab: Vec<&str> = crate::lang::vocab::PROBES
            .iter()
            .map(|p| p.name)
            .filter(|n| n.starts_with("k8s."))
            .collect();
        assert_eq!(vocab, PROBES);
    }
}
