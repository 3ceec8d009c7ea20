//! The `k8s.*` vocabulary on the simulated estate, with the semantics the kube-rs backend has
//! against a real API: targets are resolved from the same objects the served API shows (node
//! labels, pod labels, field selectors), blast-radius caps and the kube-system rule refuse before
//! anything is touched, a selector that matches nothing is an error, drains go through the
//! eviction rules (PodDisruptionBudgets, DaemonSet pods skipped) and retry refused evictions like
//! `kubectl drain`, and every action's output records exactly what it changed so its revert
//! undoes that and only that.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::{SimProvider, err, to_json};
use crate::backend::ProviderError;
use crate::lang::action::{Action, Probe};
use crate::lang::duration::format as fmt;
use crate::lang::kubernetes::{self as kube, DrainMethod, NodeTarget, TaintSpec, WorkloadRef};
use crate::sim::kube_api::render::{RESTARTED_AT, node_labels};
use crate::sim::kube_api::selector::{FieldSelector, LabelSelector, POD_FIELDS};
use crate::sim::model::{
    Estate, NodeObj, Obj, ObjKind, PodObj, SimError, Taint, TaintEffect, WorkloadKind, WorkloadObj,
};
use std::num::NonZeroU32;

use crate::lang::kubernetes::{DRAIN_TIMEOUT, EVICTION_RETRY};

fn bad(msg: impl Into<String>) -> ProviderError {
    ProviderError::not_found(msg.into())
}

use crate::backend::strings as str_list;

fn taint_json(t: &Taint) -> Json {
    json!({"key": t.key, "value": t.value, "effect": t.effect.as_str()})
}

fn taint_of(v: &Json) -> Option<Taint> {
    Some(Taint {
        key: v.get("key")?.as_str()?.to_string(),
        value: v.get("value").and_then(Json::as_str).map(str::to_string),
        effect: TaintEffect::parse(v.get("effect")?.as_str()?)?,
        added: None,
    })
}

fn nodes_of(e: &mut Estate, at: Duration, cluster: &str) -> Result<Vec<NodeObj>, ProviderError> {
    Ok(e.objects(at, cluster, ObjKind::Node)
        .map_err(err)?
        .into_iter()
        .filter_map(|(_, o)| match o {
            Obj::Node(n) => Some(n),
            _ => None,
        })
        .collect())
}

fn pods_of(e: &mut Estate, at: Duration, cluster: &str) -> Result<Vec<PodObj>, ProviderError> {
    Ok(e.objects(at, cluster, ObjKind::Pod)
        .map_err(err)?
        .into_iter()
        .filter_map(|(_, o)| match o {
            Obj::Pod(p) => Some(p),
            _ => None,
        })
        .collect())
}

fn pod_field(p: &PodObj, f: &str) -> String {
    match f {
        "metadata.name" => p.name.clone(),
        "metadata.namespace" => p.namespace.clone(),
        "spec.nodeName" => p.node.clone().unwrap_or_default(),
        "status.phase" => p.phase.to_string(),
        _ => String::new(),
    }
}

fn cap_nodes(cap: Option<NonZeroU32>, nodes: &[NodeObj]) -> Result<(), ProviderError> {
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    kube::check_node_cap(&names, cap.map(|c| u64::from(c.get()))).map_err(ProviderError::denied)
}

/// A string field of a step's output (what `revert` and the drain's second half read).
fn out_str<'a>(out: &'a Json, k: &str) -> &'a str {
    out.get(k).and_then(Json::as_str).unwrap_or_default()
}

/// Nodes named by `node` or selected by `selector` (exactly one), capped by `max_nodes`.
fn target_nodes(
    e: &mut Estate,
    at: Duration,
    cluster: &str,
    target: &NodeTarget,
    cap: Option<NonZeroU32>,
) -> Result<Vec<NodeObj>, ProviderError> {
    let all = nodes_of(e, at, cluster)?;
    let chosen: Vec<NodeObj> = match target {
        NodeTarget::Name(name) => {
            let found: Vec<NodeObj> = all.iter().filter(|n| &n.name == name).cloned().collect();
            if found.is_empty() {
                return Err(bad(format!(
                    "no node `{name}` in cluster `{cluster}`; nodes: {}",
                    all.iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            found
        }
        NodeTarget::Selector(labels) => {
            let sel = LabelSelector::from_labels(labels);
            let found: Vec<NodeObj> = all
                .iter()
                .filter(|n| sel.matches(&node_labels(n)))
                .cloned()
                .collect();
            if found.is_empty() {
                let mut zones: Vec<&str> = all.iter().map(|n| n.zone.as_str()).collect();
                zones.dedup();
                return Err(bad(format!(
                    "no node of cluster `{cluster}` matches selector {sel}; node labels there include topology.kubernetes.io/zone ({}) and kubernetes.io/hostname",
                    zones.join(", ")
                )));
            }
            found
        }
    };
    cap_nodes(cap, &chosen)?;
    Ok(chosen)
}

/// The nodes of `zone` (`topology.kubernetes.io/zone`) in the cluster, capped by `max_nodes`.
fn zone_nodes(
    e: &mut Estate,
    at: Duration,
    cluster: &str,
    zone: &str,
    cap: Option<NonZeroU32>,
) -> Result<Vec<NodeObj>, ProviderError> {
    e.nodes(at, cluster, Some(zone)).map_err(err)?;
    let nodes: Vec<NodeObj> = nodes_of(e, at, cluster)?
        .into_iter()
        .filter(|n| n.zone == zone)
        .collect();
    if nodes.is_empty() {
        return Err(bad(format!(
            "zone `{zone}` has no nodes in cluster `{cluster}`"
        )));
    }
    cap_nodes(cap, &nodes)?;
    Ok(nodes)
}

/// A selector that matches no pod: which namespaces were searched and what labels exist there
/// (or that the namespace has no pods at all).
fn no_pods_match(
    pods: &[PodObj],
    nss: &[String],
    sel: &LabelSelector,
    field_selector: Option<&str>,
    cluster: &str,
) -> ProviderError {
    let mut sets: Vec<String> = pods
        .iter()
        .filter(|x| nss.contains(&x.namespace))
        .map(|x| {
            let mut l = x.labels.clone();
            l.retain(|k, _| !k.contains("hash") && !k.contains('/'));
            l.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    sets.sort();
    sets.dedup();
    let mut known: Vec<&str> = pods.iter().map(|x| x.namespace.as_str()).collect();
    known.sort();
    known.dedup();
    let there = if sets.is_empty() {
        format!(
            "the namespace has no pods (namespaces with pods: {})",
            known.join(", ")
        )
    } else {
        format!("label sets there: {}", sets.join("; "))
    };
    bad(format!(
        "no pods match selector {sel}{} in namespace(s) {} of cluster `{cluster}`; {there}",
        match field_selector {
            Some(f) => format!(" and field selector {f}"),
            None => String::new(),
        },
        nss.join(", "),
    ))
}

fn workload_kind(w: &WorkloadRef) -> WorkloadKind {
    match w {
        WorkloadRef::Deployment(_) => WorkloadKind::Deployment,
        WorkloadRef::StatefulSet(_) => WorkloadKind::StatefulSet,
    }
}

fn field_selector(f: Option<&str>) -> Result<FieldSelector, ProviderError> {
    match f {
        Some(f) => FieldSelector::parse(f, POD_FIELDS).map_err(bad),
        None => Ok(FieldSelector::default()),
    }
}

fn workload(
    e: &mut Estate,
    at: Duration,
    cluster: &str,
    ns: &str,
    kind: WorkloadKind,
    name: &str,
) -> Result<WorkloadObj, ProviderError> {
    let k = match kind {
        WorkloadKind::Deployment => ObjKind::Deployment,
        WorkloadKind::StatefulSet => ObjKind::StatefulSet,
        WorkloadKind::DaemonSet => ObjKind::DaemonSet,
    };
    match e.object(at, cluster, k, ns, name).map_err(err)? {
        Some((_, Obj::Workload(w))) => Ok(w),
        _ => {
            let valid: Vec<String> = e
                .objects(at, cluster, k)
                .map_err(err)?
                .into_iter()
                .map(|(_, o)| format!("{}/{}", o.namespace(), o.name()))
                .collect();
            Err(bad(format!(
                "no {} `{ns}/{name}` in cluster `{cluster}`; {}s: {}",
                kind.as_str(),
                kind.as_str(),
                if valid.is_empty() {
                    "(none)".to_string()
                } else {
                    valid.join(", ")
                }
            )))
        }
    }
}

fn pod_ref(p: &PodObj) -> Json {
    json!({
        "namespace": p.namespace,
        "name": p.name,
        "node": p.node,
        "owner": format!("{}/{}", p.workload_kind.as_str(), p.workload),
    })
}

/// Cordon `nodes` (unless already) and evict their pods once, as the start of a drain. Refuses
/// before touching anything when a non-DaemonSet kube-system pod is there without
/// `allow_kube_system`.
fn drain_start(
    e: &mut Estate,
    at: Duration,
    cluster: &str,
    nodes: &[NodeObj],
    allow_system: bool,
    grace: Option<Duration>,
) -> Result<Json, ProviderError> {
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let pods: Vec<PodObj> = pods_of(e, at, cluster)?
        .into_iter()
        .filter(|x| x.deletion.is_none() && x.node.as_ref().is_some_and(|n| names.contains(n)))
        .collect();
    let (daemons, pods): (Vec<PodObj>, Vec<PodObj>) = pods
        .into_iter()
        .partition(|x| x.workload_kind == WorkloadKind::DaemonSet);
    let system: Vec<&str> = pods
        .iter()
        .filter(|x| x.namespace == "kube-system")
        .map(|x| x.name.as_str())
        .collect();
    if !system.is_empty() && !allow_system {
        return Err(ProviderError::denied(format!(
            "refusing to evict kube-system pods ({}) from {}; set `allow_kube_system: true` if the drill means to",
            system.join(", "),
            names.join(", ")
        )));
    }
    let mut cordoned = Vec::new();
    for n in &names {
        if !e.set_unschedulable(at, cluster, n, true).map_err(err)? {
            cordoned.push(n.clone());
        }
    }
    let (mut evicted, mut refused) = (Vec::new(), Vec::new());
    for x in &pods {
        match e.evict_pod(at, cluster, &x.namespace, &x.name, grace) {
            Ok(()) => evicted.push(pod_ref(x)),
            Err(SimError::Budget { pdb, message, .. }) => {
                let mut r = pod_ref(x);
                r["refused_by"] = json!(format!("PodDisruptionBudget {pdb}: {message}"));
                refused.push(r);
            }
            Err(other) => {
                for n in &cordoned {
                    let _ = e.set_unschedulable(at, cluster, n, false);
                }
                return Err(err(other));
            }
        }
    }
    Ok(json!({
        "cluster": cluster,
        "method": "evict",
        "nodes": cordoned,
        "drained_nodes": names,
        "evicted": evicted,
        "refused": refused,
        "skipped_daemonset_pods": daemons.iter().map(|x| x.name.clone()).collect::<Vec<_>>(),
    }))
}

/// Add (or replace) a taint on nodes; returns (touched nodes, previous same-key-and-effect taint
/// per touched node).
fn add_taint(
    e: &mut Estate,
    at: Duration,
    cluster: &str,
    nodes: &[NodeObj],
    taint: &Taint,
) -> Result<(Vec<String>, BTreeMap<String, Json>), ProviderError> {
    let mut touched = Vec::new();
    let mut previous = BTreeMap::new();
    for n in nodes {
        let existing = n
            .taints
            .iter()
            .find(|t| t.key == taint.key && t.effect == taint.effect)
            .cloned();
        if existing.as_ref().is_some_and(|t| t.value == taint.value) {
            continue;
        }
        let mut new: Vec<Taint> = n
            .taints
            .iter()
            .filter(|t| !(t.key == taint.key && t.effect == taint.effect))
            .cloned()
            .collect();
        new.push(taint.clone());
        e.set_taints(at, cluster, &n.name, new).map_err(err)?;
        touched.push(n.name.clone());
        previous.insert(
            n.name.clone(),
            existing.as_ref().map_or(Json::Null, taint_json),
        );
    }
    Ok((touched, previous))
}

/// Remove taints matching `key` (and `effect` if given) from the named nodes.
fn remove_taints(
    e: &mut Estate,
    at: Duration,
    cluster: &str,
    nodes: &[String],
    key: &str,
    effect: Option<TaintEffect>,
) -> Result<BTreeMap<String, Vec<Json>>, ProviderError> {
    let all = nodes_of(e, at, cluster)?;
    let mut removed = BTreeMap::new();
    for n in all.iter().filter(|n| nodes.contains(&n.name)) {
        let (gone, keep): (Vec<Taint>, Vec<Taint>) = n
            .taints
            .iter()
            .cloned()
            .partition(|t| t.key == key && effect.is_none_or(|x| x == t.effect));
        if gone.is_empty() {
            continue;
        }
        e.set_taints(at, cluster, &n.name, keep).map_err(err)?;
        removed.insert(n.name.clone(), gone.iter().map(taint_json).collect());
    }
    Ok(removed)
}

/// Apply a `k8s.*` action (the synchronous part; drains continue in
/// [`SimProvider::finish_drain`]).
pub(super) fn apply(
    e: &mut Estate,
    at: Duration,
    sim: &SimProvider,
    cluster: &str,
    action: &Action,
) -> Result<Json, ProviderError> {
    Ok(match action {
        Action::PodKill(pk) => {
            let nss = pk.namespaces.clone();
            for ns in &nss {
                kube::check_kube_system(ns, pk.allow_kube_system).map_err(ProviderError::denied)?;
            }
            let sel = LabelSelector::from_labels(&pk.selector);
            let fields = field_selector(pk.field_selector.as_deref())?;
            let pods = pods_of(e, at, cluster)?;
            let candidates: Vec<&PodObj> = pods
                .iter()
                .filter(|x| {
                    x.deletion.is_none()
                        && nss.contains(&x.namespace)
                        && sel.matches(&x.labels)
                        && fields.matches(|f| pod_field(x, f))
                })
                .collect();
            if candidates.is_empty() {
                return Err(no_pods_match(
                    &pods,
                    &nss,
                    &sel,
                    pk.field_selector.as_deref(),
                    cluster,
                ));
            }
            let pairs: Vec<(String, String)> = candidates
                .iter()
                .map(|x| (x.namespace.clone(), x.name.clone()))
                .collect();
            pk.limit(pairs.len(), None, &format!("pods matching `{sel}`"))
                .map_err(ProviderError::denied)?;
            let victims = e.choose_victims(&pairs, pk.mode).map_err(err)?;
            let what = format!("matching {sel} in {}", nss.join(", "));
            let grace = pk.grace_period;
            let killed = e
                .kill_named(at, cluster, &victims, grace, &what)
                .map_err(err)?;
            let refs: Vec<Json> = killed
                .iter()
                .filter_map(|(ns, name)| {
                    candidates
                        .iter()
                        .find(|x| &x.namespace == ns && &x.name == name)
                        .map(|x| pod_ref(x))
                })
                .collect();
            json!({
                "cluster": cluster,
                "namespace": nss.join(","),
                "killed": killed.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>(),
                "count": killed.len(),
                "matched": pairs.len(),
                "pods": refs,
            })
        }
        Action::CordonZone(_) | Action::NodeCordon(_) | Action::NodeUncordon(_) => {
            let nodes = match action {
                Action::CordonZone(z) => zone_nodes(e, at, cluster, &z.zone, z.max_nodes)?,
                Action::NodeCordon(n) | Action::NodeUncordon(n) => {
                    target_nodes(e, at, cluster, &n.target, n.max_nodes)?
                }
                _ => unreachable!("matched above"),
            };
            let cordon = !matches!(action, Action::NodeUncordon(_));
            let (mut touched, mut unchanged) = (Vec::new(), Vec::new());
            for n in &nodes {
                if e.set_unschedulable(at, cluster, &n.name, cordon)
                    .map_err(err)?
                    == cordon
                {
                    unchanged.push(n.name.clone());
                } else {
                    touched.push(n.name.clone());
                }
            }
            let mut out = json!({"cluster": cluster, "nodes": touched, "unchanged": unchanged, "unschedulable": cordon});
            if let Action::CordonZone(z) = action {
                out["zone"] = json!(z.zone);
            }
            out
        }
        Action::DrainZone(z) => {
            let nodes = zone_nodes(e, at, cluster, &z.zone, z.max_nodes)?;
            let mut out = if z.method == DrainMethod::Taint {
                let spec = TaintSpec::zone_loss(&z.zone);
                let taint = Taint {
                    key: spec.key,
                    value: spec.value,
                    effect: TaintEffect::NoExecute,
                    added: None,
                };
                let (touched, previous) = add_taint(e, at, cluster, &nodes, &taint)?;
                json!({
                    "cluster": cluster,
                    "method": "taint",
                    "nodes": touched,
                    "taint": taint_json(&taint),
                    "previous": previous,
                })
            } else {
                drain_start(e, at, cluster, &nodes, z.allow_kube_system, z.grace_period)?
            };
            out["zone"] = json!(z.zone);
            out
        }
        Action::NodeDrain(n) => {
            let nodes = target_nodes(e, at, cluster, &n.target, n.max_nodes)?;
            drain_start(e, at, cluster, &nodes, n.allow_kube_system, n.grace_period)?
        }
        Action::NodeTaint(t) => {
            let nodes = target_nodes(e, at, cluster, &t.nodes.target, t.nodes.max_nodes)?;
            let spec = &t.taint;
            let taint = Taint {
                key: spec.key.clone(),
                value: spec.value.clone(),
                effect: spec.effect,
                added: None,
            };
            let (touched, previous) = add_taint(e, at, cluster, &nodes, &taint)?;
            json!({"cluster": cluster, "nodes": touched, "taint": taint_json(&taint), "previous": previous})
        }
        Action::NodeUntaint(u) => {
            let nodes = target_nodes(e, at, cluster, &u.nodes.target, u.nodes.max_nodes)?;
            let (key, effect) = (&u.key, u.effect);
            let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
            let removed = remove_taints(e, at, cluster, &names, key, effect)?;
            json!({"cluster": cluster, "key": key, "nodes": removed.keys().collect::<Vec<_>>(), "removed": removed})
        }
        Action::Scale(sc) => {
            let (kind, name) = (workload_kind(&sc.workload), sc.workload.name().to_string());
            let ns = sc.namespace.as_str();
            workload(e, at, cluster, ns, kind, &name)?;
            let replicas = sc.replicas;
            let prev = e
                .scale_workload(at, cluster, ns, Some(kind), &name, replicas)
                .map_err(err)?;
            json!({"cluster": cluster, "namespace": ns, "kind": kind.as_str(), "name": name,
                   kind.as_str(): name, "previous": prev, "replicas": replicas})
        }
        Action::RolloutRestart(w) => {
            let (kind, name) = (workload_kind(&w.workload), w.workload.name().to_string());
            let ns = w.namespace.as_str();
            let obj = workload(e, at, cluster, ns, kind, &name)?;
            let stamp = sim
                .clock()
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let mut annotations = obj.template_annotations.clone();
            annotations.insert(RESTARTED_AT.to_string(), stamp.clone());
            let prev = e
                .set_template_annotations(at, cluster, ns, Some(kind), &name, annotations)
                .map_err(err)?;
            json!({"cluster": cluster, "namespace": ns, "kind": kind.as_str(), "name": name,
                   "restarted_at": stamp, "previous_annotations": prev})
        }
        other => {
            return Err(ProviderError::unsupported("sim", other.name()));
        }
    })
}

/// Undo exactly what a `k8s.*` action did, from its output. An action that failed recorded
/// nothing and changed nothing (failures undo their own partial changes).
pub(super) fn revert(
    e: &mut Estate,
    at: Duration,
    action: &Action,
    output: &Json,
) -> Result<Json, ProviderError> {
    let Some(cluster) = output.get("cluster").and_then(Json::as_str) else {
        return Ok(json!({"restored": false, "reason": "the step changed nothing"}));
    };
    let nodes = str_list(&output["nodes"]);
    Ok(match action {
        Action::CordonZone(_)
        | Action::NodeCordon(_)
        | Action::NodeUncordon(_)
        | Action::NodeDrain(_)
        | Action::DrainZone(_)
            if output.get("method").and_then(Json::as_str) != Some("taint") =>
        {
            let back = matches!(action, Action::NodeUncordon(_));
            for n in &nodes {
                e.set_unschedulable(at, cluster, n, back).map_err(err)?;
            }
            json!({"nodes": nodes, "unschedulable": back})
        }
        Action::DrainZone(_) | Action::NodeTaint(_) => {
            let taint = taint_of(&output["taint"])
                .ok_or_else(|| ProviderError::failed("the step's output lost its taint".into()))?;
            removes_then_restores(e, at, cluster, &nodes, &taint, &output["previous"])?;
            json!({"nodes": nodes, "untainted": taint_json(&taint)})
        }
        Action::NodeUntaint(_) => {
            let removed = output["removed"].as_object().cloned().unwrap_or_default();
            let all = nodes_of(e, at, cluster)?;
            for (node, taints) in &removed {
                let Some(n) = all.iter().find(|n| &n.name == node) else {
                    continue;
                };
                let mut new = n.taints.clone();
                for t in taints.as_array().into_iter().flatten().filter_map(taint_of) {
                    if !new.iter().any(|x| x.key == t.key && x.effect == t.effect) {
                        new.push(t);
                    }
                }
                e.set_taints(at, cluster, node, new).map_err(err)?;
            }
            json!({"retainted": removed.keys().collect::<Vec<_>>()})
        }
        Action::Scale(_) => {
            let Some(prev) = output.get("previous").and_then(Json::as_u64) else {
                return Ok(json!({"restored": false, "reason": "the step changed nothing"}));
            };
            let kind = match out_str(output, "kind") {
                "statefulset" => WorkloadKind::StatefulSet,
                _ => WorkloadKind::Deployment,
            };
            e.scale_workload(
                at,
                cluster,
                out_str(output, "namespace"),
                Some(kind),
                out_str(output, "name"),
                prev as u32,
            )
            .map_err(err)?;
            json!({"replicas": prev})
        }
        Action::RolloutRestart(_) => {
            let kind = match out_str(output, "kind") {
                "statefulset" => WorkloadKind::StatefulSet,
                _ => WorkloadKind::Deployment,
            };
            let prev: BTreeMap<String, String> =
                serde_json::from_value(output["previous_annotations"].clone()).unwrap_or_default();
            e.set_template_annotations(
                at,
                cluster,
                out_str(output, "namespace"),
                Some(kind),
                out_str(output, "name"),
                prev.clone(),
            )
            .map_err(err)?;
            json!({"restored_annotations": prev, "note": "restoring the template rolls the pods again"})
        }
        other => {
            return Err(ProviderError::unsupported(
                "sim",
                &format!("rollback of {}", other.name()),
            ));
        }
    })
}

fn removes_then_restores(
    e: &mut Estate,
    at: Duration,
    cluster: &str,
    nodes: &[String],
    taint: &Taint,
    previous: &Json,
) -> Result<(), ProviderError> {
    let all = nodes_of(e, at, cluster)?;
    for n in all.iter().filter(|n| nodes.contains(&n.name)) {
        let mut new: Vec<Taint> = n
            .taints
            .iter()
            .filter(|t| !(t.key == taint.key && t.effect == taint.effect))
            .cloned()
            .collect();
        if let Some(prev) = previous.get(&n.name).and_then(taint_of) {
            new.push(prev);
        }
        e.set_taints(at, cluster, &n.name, new).map_err(err)?;
    }
    Ok(())
}

/// A `k8s.*` probe.
pub(super) fn observe(
    e: &mut Estate,
    at: Duration,
    cluster: &str,
    probe: &Probe,
) -> Result<Json, ProviderError> {
    Ok(match probe {
        Probe::Pods(q) => {
            let nss = vec![q.namespace.clone()];
            let sel = LabelSelector::from_labels(&q.selector);
            let fields = field_selector(q.field_selector.as_deref())?;
            let view = e
                .pods_matching(at, cluster, &nss, &|l| sel.matches(l), &|x| {
                    fields.matches(|f| pod_field(x, f))
                })
                .map_err(err)?;
            // Nothing matches, not even a workload that wants pods: a steady-state check on
            // nothing must not pass.
            if view.total == 0 && view.terminating == 0 && view.desired == 0 {
                return Err(no_pods_match(
                    &pods_of(e, at, cluster)?,
                    &nss,
                    &sel,
                    q.field_selector.as_deref(),
                    cluster,
                ));
            }
            to_json(view)
        }
        Probe::PodRestarts(q) => {
            let nss = vec![q.namespace.clone()];
            let sel = LabelSelector::from_labels(&q.selector);
            let view = e
                .pods_matching(at, cluster, &nss, &|l| sel.matches(l), &|_| true)
                .map_err(err)?;
            if view.total == 0 && view.terminating == 0 && view.desired == 0 {
                return Err(no_pods_match(
                    &pods_of(e, at, cluster)?,
                    &nss,
                    &sel,
                    None,
                    cluster,
                ));
            }
            let window = q.window;
            let (total, increase) = e
                .pod_restarts(at, cluster, &nss, &|l| sel.matches(l), window)
                .map_err(err)?;
            json!({"restarts": total, "increase": increase, "window_seconds": window.as_secs_f64()})
        }
        Probe::Workload(wa) => {
            let (kind, name) = (workload_kind(&wa.workload), wa.workload.name().to_string());
            let w = workload(e, at, cluster, &wa.namespace, kind, &name)?;
            json!({
                "kind": kind.as_str(),
                "name": w.name,
                "namespace": w.namespace,
                "replicas": w.replicas,
                "ready_replicas": w.ready,
                "available_replicas": w.ready,
                "updated_replicas": w.updated,
                "available": w.ready >= w.replicas,
                "rolling_out": w.rolling,
            })
        }
        Probe::Nodes(n) => to_json(e.nodes(at, cluster, n.zone.as_deref()).map_err(err)?),
        Probe::Memory(_) => {
            json!({"cluster": cluster, "utilization": e.memory_utilization(at, cluster).map_err(err)?})
        }
        other => {
            return Err(ProviderError::unsupported("sim", other.name()));
        }
    })
}

/// What a `k8s.*` action would do (its output on a copy of the estate), in words.
pub(super) fn describe(action: &Action, out: &Json) -> String {
    let zone = match action {
        Action::CordonZone(z) | Action::DrainZone(z) => z.zone.as_str(),
        _ => "",
    };
    let timeout = match action {
        Action::DrainZone(z) => z.timeout,
        Action::NodeDrain(n) => n.timeout,
        _ => DRAIN_TIMEOUT,
    };
    let list = |v: &Json| {
        let items: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .or_else(|| x.get("name").and_then(Json::as_str).map(str::to_string))
            })
            .collect();
        if items.is_empty() {
            "(none)".to_string()
        } else {
            items.join(", ")
        }
    };
    let count = |v: &Json| v.as_array().map_or(0, Vec::len);
    match action {
        Action::PodKill(_) => format!(
            "kill {} pod(s) (of {} matching) in {}/{}: {}",
            out["count"],
            out["matched"],
            out_str(out, "cluster"),
            out_str(out, "namespace"),
            list(&out["killed"])
        ),
        Action::CordonZone(_) => format!(
            "cordon {} node(s) in {}: {}",
            count(&out["nodes"]),
            zone,
            list(&out["nodes"])
        ),
        Action::NodeCordon(_) | Action::NodeUncordon(_) => format!(
            "{} {} node(s): {}",
            if matches!(action, Action::NodeCordon(_)) {
                "cordon"
            } else {
                "uncordon"
            },
            count(&out["nodes"]),
            list(&out["nodes"])
        ),
        Action::DrainZone(_) | Action::NodeDrain(_) if out_str(out, "method") == "taint" => {
            format!(
                "taint {} node(s) {}={}:NoExecute (evicts every pod but DaemonSets'): {}",
                count(&out["nodes"]),
                kube::ZONE_LOSS_TAINT,
                zone,
                list(&out["nodes"])
            )
        }
        Action::DrainZone(_) | Action::NodeDrain(_) => format!(
            "cordon and drain {} node(s): {}; evict {} pod(s): {}; {} refused by a PodDisruptionBudget now (retried every {} until {}): {}; DaemonSet pods skipped: {}",
            count(&out["drained_nodes"]),
            list(&out["drained_nodes"]),
            count(&out["evicted"]),
            list(&out["evicted"]),
            count(&out["refused"]),
            fmt(EVICTION_RETRY),
            fmt(timeout),
            list(&out["refused"]),
            count(&out["skipped_daemonset_pods"]),
        ),
        Action::NodeTaint(_) => format!(
            "taint {} node(s) with {}: {}",
            count(&out["nodes"]),
            out["taint"],
            list(&out["nodes"])
        ),
        Action::NodeUntaint(n) => format!(
            "remove taint {} from {} node(s): {}",
            n.key,
            count(&out["nodes"]),
            list(&out["nodes"])
        ),
        Action::Scale(_) => format!(
            "scale {} {}/{} from {} to {} replicas",
            out_str(out, "kind"),
            out_str(out, "namespace"),
            out_str(out, "name"),
            out["previous"],
            out["replicas"]
        ),
        Action::RolloutRestart(_) => format!(
            "rollout restart {} {}/{} (pods replaced one at a time)",
            out_str(out, "kind"),
            out_str(out, "namespace"),
            out_str(out, "name")
        ),
        other => format!("{} {out}", other.name()),
    }
}

impl SimProvider {
    /// The rest of a drain, as `kubectl drain` does it: retry evictions a budget refused every
    /// [`EVICTION_RETRY`], then wait for the evicted pods to be gone, within `timeout`. On timeout
    /// the nodes this step cordoned are uncordoned again (evicted pods stay evicted) and the
    /// step fails.
    pub(super) async fn finish_drain(
        &self,
        mut out: Json,
        timeout: Duration,
        grace: Option<Duration>,
    ) -> Result<Json, ProviderError> {
        if out_str(&out, "method") != "evict" {
            return Ok(out);
        }
        let cluster = out_str(&out, "cluster").to_string();
        let start = tokio::time::Instant::now();
        let deadline = start + timeout;
        let fail = |sim: &SimProvider, out: &Json, why: String| {
            let at = sim.now();
            let mut e = sim.shared.lock();
            for n in str_list(&out["nodes"]) {
                let _ = e.set_unschedulable(at, &cluster, &n, false);
            }
            drop(e);
            sim.shared.notify_changed();
            Err(ProviderError::invalid_state(format!(
                "drain of {} timed out after {}: {why}; the nodes this step cordoned are uncordoned again (pods already evicted stay evicted); raise `timeout` or relax the budget",
                str_list(&out["drained_nodes"]).join(", "),
                fmt(timeout)
            )))
        };
        loop {
            let refused = out["refused"].as_array().cloned().unwrap_or_default();
            if refused.is_empty() {
                break;
            }
            if tokio::time::Instant::now() + EVICTION_RETRY > deadline {
                let why = refused
                    .iter()
                    .map(|r| format!("{} ({})", out_str(r, "name"), out_str(r, "refused_by")))
                    .collect::<Vec<_>>()
                    .join(", ");
                return fail(self, &out, format!("evictions still refused: {why}"));
            }
            tokio::time::sleep(EVICTION_RETRY).await;
            let at = self.now();
            let mut still = Vec::new();
            {
                let mut e = self.shared.lock();
                for r in refused {
                    match e.evict_pod(
                        at,
                        &cluster,
                        out_str(&r, "namespace"),
                        out_str(&r, "name"),
                        grace,
                    ) {
                        Ok(()) => {
                            if let Some(a) = out["evicted"].as_array_mut() {
                                let mut done = r.clone();
                                if let Some(m) = done.as_object_mut() {
                                    m.remove("refused_by");
                                }
                                a.push(done);
                            }
                        }
                        Err(SimError::Budget { pdb, message, .. }) => {
                            let mut r = r.clone();
                            r["refused_by"] =
                                json!(format!("PodDisruptionBudget {pdb}: {message}"));
                            still.push(r);
                        }
                        // Gone meanwhile (deleted by someone else): nothing left to evict.
                        Err(SimError::Unknown { .. }) => {}
                        Err(other) => return Err(err(other)),
                    }
                }
            }
            self.shared.notify_changed();
            out["refused"] = json!(still);
        }
        // Wait for the evicted pods to be gone (their grace periods).
        loop {
            let at = self.now();
            let (left, next) = {
                let mut e = self.shared.lock();
                let pods = pods_of(&mut e, at, &cluster)?;
                let left: Vec<String> = out["evicted"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| {
                        pods.iter().any(|x| {
                            x.namespace == out_str(r, "namespace")
                                && x.name == out_str(r, "name")
                                && x.deletion.is_some()
                        })
                    })
                    .map(|r| out_str(r, "name").to_string())
                    .collect();
                (left, e.next_event_at())
            };
            if left.is_empty() {
                break;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return fail(
                    self,
                    &out,
                    format!("pods still terminating: {}", left.join(", ")),
                );
            }
            let wait = next
                .map(|t| t.saturating_sub(at).max(Duration::from_millis(1)))
                .unwrap_or(Duration::from_secs(1))
                .min(deadline - now);
            tokio::time::sleep(wait).await;
        }
        out["took_seconds"] = json!(start.elapsed().as_secs_f64());
        Ok(out)
    }
}
