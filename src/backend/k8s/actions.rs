//! The `k8s.*` actions, their rollbacks and their dry-run descriptions.
//!
//! Every action first *resolves* its targets (read-only: lists, gets) and checks the blast
//! radius, the namespace allow-list and kube-system, then acts. `describe` runs the same
//! resolution and stops there, so a dry run lists exactly the pods and nodes a run would hit
//! (a random pick is shown with a fixed seed: the actual pick happens at run time).

use super::KubeProvider;
use super::api::{
    Op, RESTARTED_AT, Rng, ZONE_LABEL, ZONE_LOSS_TAINT, controller_of, list, name_of,
    node_unschedulable, owner_label, pod_daemonset, pod_finished, pod_live, pod_mirror, pod_node,
    pod_terminating, selector_string, status_code, strings,
};
use super::recovery::{self, Victim};
use crate::backend::{Action, ErrorKind, ProviderError};
use crate::lang::action::{Scale, WorkloadAt};
use crate::lang::kubernetes::{
    self as kube_rules, DrainMethod, NodeAction, NodeTarget, NodeUntaint, PodKill, TaintSpec,
    ZoneAction,
};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value as Json, json};
use std::num::NonZeroU32;
use std::time::Duration;

/// The actions this backend implements (every `k8s.*` action of [`crate::lang::vocab`]).
pub const ACTIONS: &[&str] = &[
    "k8s.pod_kill",
    "k8s.cordon_zone",
    "k8s.drain_zone",
    "k8s.node_cordon",
    "k8s.node_uncordon",
    "k8s.node_drain",
    "k8s.node_taint",
    "k8s.node_untaint",
    "k8s.scale",
    "k8s.rollout_restart",
];

/// Conflicting writes (409) are retried this many times, re-reading the object each time.
pub const CONFLICT_ATTEMPTS: u32 = 5;
/// Labels the controllers add to pods; not part of a useful selector.
const GENERATED_LABELS: &[&str] = &[
    "pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "pod-template-generation",
];

fn refuse(m: String) -> ProviderError {
    ProviderError::not_found(m)
}

fn pod_ref(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or_default(),
        name_of(&p.metadata)
    )
}

/// Which pods a kill takes, resolved without side effects.
#[derive(Debug, Clone)]
pub(crate) struct KillPlan {
    pub namespaces: Vec<String>,
    pub selector: String,
    pub field_selector: Option<String>,
    pub mode: String,
    pub matched: usize,
    pub victims: Vec<Pod>,
    /// The pick among the matches is random (differs between runs).
    pub random: bool,
}

/// What the node code reads of a zone action ([`ZoneAction`]) or a node action
/// ([`NodeAction`]) once its nodes are resolved: the zone, the drain's timeout and grace period,
/// kube-system. (The node cap is checked where the nodes are resolved.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeScope<'a> {
    /// The zone of a zone action (reported in the output).
    pub zone: Option<&'a str>,
    pub timeout: Duration,
    pub grace_period: Option<Duration>,
    pub allow_kube_system: bool,
}

impl<'a> From<&'a ZoneAction> for NodeScope<'a> {
    fn from(z: &'a ZoneAction) -> NodeScope<'a> {
        NodeScope {
            zone: Some(&z.zone),
            timeout: z.timeout,
            grace_period: z.grace_period,
            allow_kube_system: z.allow_kube_system,
        }
    }
}

impl<'a> From<&'a NodeAction> for NodeScope<'a> {
    fn from(n: &'a NodeAction) -> NodeScope<'a> {
        NodeScope {
            zone: None,
            timeout: n.timeout,
            grace_period: n.grace_period,
            allow_kube_system: n.allow_kube_system,
        }
    }
}

/// A grace period as the API takes it (whole seconds).
fn grace_seconds(d: Option<Duration>) -> Option<u32> {
    d.map(|d| d.as_secs() as u32)
}

/// The key (and effect, if given) of a `k8s.node_untaint` step, as the API writes them.
fn untaint_spec(a: &NodeUntaint) -> (&str, Option<&'static str>) {
    (a.key.as_str(), a.effect.map(|e| e.as_str()))
}

impl KubeProvider {
    /// The pod cap: the step's `max_pods`, else the environment's.
    pub(crate) fn pods_cap(&self, step: Option<NonZeroU32>) -> Option<u64> {
        step.map(|c| u64::from(c.get())).or(self.settings.max_pods)
    }

    /// The node cap: the step's `max_nodes`, else the environment's.
    pub(crate) fn nodes_cap(&self, step: Option<NonZeroU32>) -> Option<u64> {
        step.map(|c| u64::from(c.get())).or(self.settings.max_nodes)
    }

    /// The namespace allow-list and the kube-system refusal, for actions (`allow_kube_system`:
    /// the step's; the environment's applies too).
    pub(crate) fn check_namespace(
        &self,
        ns: &str,
        allow_kube_system: bool,
    ) -> Result<(), ProviderError> {
        let s = &self.settings;
        kube_rules::check_kube_system(ns, s.allow_kube_system || allow_kube_system)
            .map_err(ProviderError::denied)?;
        if !s.namespaces.is_empty() && !s.namespaces.iter().any(|n| n == ns) {
            return Err(ProviderError::denied(format!(
                "namespace `{ns}` is not in this environment's allow-list (kubernetes.namespaces: {}); add it there to allow drills on it",
                s.namespaces.join(", ")
            )));
        }
        Ok(())
    }

    /// The namespaces of a pod action (`namespace` or `namespaces`).
    pub(crate) fn kill_namespaces(&self, pk: &PodKill) -> Result<Vec<String>, ProviderError> {
        let mut out = pk.namespaces.clone();
        out.dedup();
        if out.is_empty() {
            return Err(refuse(
                "k8s.pod_kill needs `namespace` (or `namespaces`): which namespace's pods to kill"
                    .into(),
            ));
        }
        for ns in &out {
            self.check_namespace(ns, pk.allow_kube_system)?;
        }
        Ok(out)
    }

    /// Live pods matching a selector in one namespace.
    pub(crate) async fn list_pods(
        &self,
        ns: &str,
        selector: &str,
        fields: Option<&str>,
    ) -> Result<Vec<Pod>, ProviderError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let mut lp = ListParams::default();
        if !selector.is_empty() {
            lp = lp.labels(selector);
        }
        if let Some(f) = fields {
            lp = lp.fields(f);
        }
        let l = self
            .call(Op::new("list", "pods").ns(ns), api.list(&lp))
            .await?;
        Ok(l.items)
    }

    /// "No pods match": an error naming the selector and the selectors that would match.
    pub(crate) async fn no_match(
        &self,
        namespaces: &[String],
        selector: &str,
        fields: Option<&str>,
    ) -> ProviderError {
        let mut known = std::collections::BTreeSet::new();
        let mut any = false;
        for ns in namespaces {
            if let Ok(pods) = self.list_pods(ns, "", None).await {
                for p in pods.iter().filter(|p| pod_live(p)) {
                    any = true;
                    let l: std::collections::BTreeMap<String, String> = p
                        .metadata
                        .labels
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(k, _)| !GENERATED_LABELS.contains(&k.as_str()))
                        .collect();
                    if !l.is_empty() {
                        known.insert(selector_string(&l));
                    }
                }
            }
        }
        let ns = namespaces.join(", ");
        let field = fields
            .map(|f| format!(" and field selector `{f}`"))
            .unwrap_or_default();
        let help = if !any {
            match self.namespace_names().await {
                Some(all) => {
                    let missing: Vec<&String> =
                        namespaces.iter().filter(|n| !all.contains(n)).collect();
                    if missing.is_empty() {
                        format!("namespace `{ns}` has no running pods at all")
                    } else {
                        format!(
                            "namespace {} does not exist in the cluster (namespaces: {})",
                            missing
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            all.join(", ")
                        )
                    }
                }
                None => format!("namespace `{ns}` has no running pods at all (does it exist?)"),
            }
        } else {
            let mut k: Vec<String> = known.into_iter().collect();
            let more = k.len().saturating_sub(10);
            k.truncate(10);
            format!(
                "the running pods there have labels: {}{}",
                k.join("; "),
                if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                }
            )
        };
        refuse(format!(
            "no running pods match selector `{selector}`{field} in namespace `{ns}`; {help}"
        ))
    }

    /// The cluster's namespaces, when the caller may list them.
    pub(crate) async fn namespace_names(&self) -> Option<Vec<String>> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let list = api.list(&ListParams::default()).await.ok()?;
        let mut names: Vec<String> = list.items.iter().map(|n| name_of(&n.metadata)).collect();
        names.sort();
        Some(names)
    }

    /// Resolve a pod kill: which pods match, how many go, caps; picks with `rng`.
    pub(crate) async fn plan_pod_kill(
        &self,
        pk: &PodKill,
        rng: Option<&mut Rng>,
    ) -> Result<KillPlan, ProviderError> {
        let namespaces = self.kill_namespaces(pk)?;
        let selector = selector_string(&pk.selector);
        let fields = pk.field_selector.as_deref();
        let mode = pk.mode.name().to_string();
        let mut matched = Vec::new();
        for ns in &namespaces {
            matched.extend(
                self.list_pods(ns, &selector, fields)
                    .await?
                    .into_iter()
                    .filter(pod_live),
            );
        }
        if matched.is_empty() {
            return Err(self.no_match(&namespaces, &selector, fields).await);
        }
        matched.sort_by_key(pod_ref);
        let n = matched.len();
        let (low, high) = pk
            .limit(
                n,
                self.settings.max_pods,
                &format!("pods matching `{selector}`"),
            )
            .map_err(ProviderError::denied)?;
        let mut fixed = Rng(0);
        let rng = rng.unwrap_or(&mut fixed);
        let count = if low == high {
            low
        } else {
            low + rng.below((high - low + 1) as u64) as usize
        };
        // Seeded partial Fisher-Yates shuffle picks the victims.
        let mut pool = matched;
        for i in 0..count {
            let j = i + rng.below((n - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(count);
        pool.sort_by_key(pod_ref);
        Ok(KillPlan {
            namespaces,
            selector,
            field_selector: fields.map(str::to_string),
            random: count < n || low != high,
            mode,
            matched: n,
            victims: pool,
        })
    }

    fn victim(&self, p: &Pod, killed_at: Option<Duration>) -> Victim {
        Victim {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            pod: name_of(&p.metadata),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            node: pod_node(p).unwrap_or_default().to_string(),
            owner_uid: controller_of(&p.metadata).map(|(_, _, u)| u),
            owner: owner_label(p),
            killed_at,
        }
    }

    fn pod_json(&self, p: &Pod, at: Option<Duration>) -> Json {
        let mut j = json!({
            "namespace": p.metadata.namespace.clone().unwrap_or_default(),
            "pod": name_of(&p.metadata),
            "node": pod_node(p).unwrap_or_default(),
            "owner": owner_label(p),
        });
        if let Some(at) = at {
            j["at_ms"] = json!(at.as_millis() as u64);
        }
        j
    }

    async fn pod_kill(&self, action: &Action, pk: &PodKill) -> Result<Json, ProviderError> {
        // The pick is made with the provider's generator; lists happen before it is locked.
        let plan = {
            let mut rng = self.rng.lock().expect("poisoned").clone();
            let plan = self.plan_pod_kill(pk, Some(&mut rng)).await?;
            *self.rng.lock().expect("poisoned") = rng;
            plan
        };
        for ns in &plan.namespaces {
            self.require("delete", "pods", None, Some(ns)).await?;
        }
        let scopes: Vec<(String, Option<String>)> = plan
            .namespaces
            .iter()
            .map(|ns| (ns.clone(), Some(plan.selector.clone())))
            .collect();
        let tracking = recovery::start(
            &self.shared,
            &self.client,
            &scopes,
            self.settings.request_timeout(),
            self.component(),
        )
        .await;
        let grace = grace_seconds(pk.grace_period);
        let mut out = json!({
            "cluster": self.cluster,
            "namespaces": plan.namespaces,
            "selector": plan.selector,
            "mode": plan.mode,
            "matched": plan.matched,
            "count": 0,
            "killed": [],
            "pods": [],
            "already_gone": [],
        });
        if let Some(f) = &plan.field_selector {
            out["field_selector"] = json!(f);
        }
        let idx = self.ledger_open(action, &out);
        let mut count = 0;
        for pod in &plan.victims {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = name_of(&pod.metadata);
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let dp = DeleteParams {
                grace_period_seconds: grace,
                ..Default::default()
            };
            let at = self.shared.now();
            let op = Op::new("delete", "pods").ns(&ns).name(&name);
            match self.call_raw(op, api.delete(&name, &dp)).await? {
                Ok(_) => {
                    out["killed"]
                        .as_array_mut()
                        .expect("array")
                        .push(json!(pod_ref(pod)));
                    out["pods"]
                        .as_array_mut()
                        .expect("array")
                        .push(self.pod_json(pod, Some(at)));
                    tracking.victim(self.victim(pod, Some(at)));
                    count += 1;
                }
                Err(e) if status_code(&e) == Some(404) => {
                    out["already_gone"]
                        .as_array_mut()
                        .expect("array")
                        .push(json!(pod_ref(pod)));
                }
                Err(e) => {
                    let killed = strings(&out["killed"]);
                    let err = self.map(op, e);
                    return Err(with_done(err, &killed, "killed"));
                }
            }
            out["count"] = json!(count);
            self.ledger_set(idx, &out);
        }
        Ok(out)
    }

    // ---- nodes ----------------------------------------------------------------------------

    pub(crate) async fn all_nodes(&self) -> Result<Vec<Node>, ProviderError> {
        let api: Api<Node> = Api::all(self.client.clone());
        Ok(self
            .call(Op::new("list", "nodes"), api.list(&ListParams::default()))
            .await?
            .items)
    }

    async fn zones_hint(&self) -> String {
        match self.all_nodes().await {
            Ok(nodes) => {
                let mut z: Vec<String> = nodes
                    .iter()
                    .filter_map(|n| super::api::node_zone(n).map(str::to_string))
                    .collect();
                z.sort();
                z.dedup();
                format!("zones with nodes: {}", list(&z))
            }
            Err(_) => String::new(),
        }
    }

    fn check_node_cap(
        &self,
        max_nodes: Option<NonZeroU32>,
        nodes: &[Node],
    ) -> Result<(), ProviderError> {
        let names: Vec<String> = nodes.iter().map(|n| name_of(&n.metadata)).collect();
        kube_rules::check_node_cap(&names, self.nodes_cap(max_nodes)).map_err(ProviderError::denied)
    }

    /// The nodes of a node action (`node` or `selector`), caps checked.
    pub(crate) async fn plan_nodes(&self, a: &NodeAction) -> Result<Vec<Node>, ProviderError> {
        let nodes = match &a.target {
            NodeTarget::Selector(sel) if sel.is_empty() => {
                return Err(refuse(
                    "name the nodes: `node: <name>` or `selector: {label: value}`".into(),
                ));
            }
            NodeTarget::Name(name) => {
                let name = name.as_str();
                let api: Api<Node> = Api::all(self.client.clone());
                let op = Op::new("get", "nodes").name(name);
                match self.call_raw(op, api.get(name)).await? {
                    Ok(n) => vec![n],
                    Err(e) if status_code(&e) == Some(404) => {
                        let mut names: Vec<String> = self
                            .all_nodes()
                            .await
                            .unwrap_or_default()
                            .iter()
                            .map(|n| name_of(&n.metadata))
                            .collect();
                        names.sort();
                        let more = names.len().saturating_sub(20);
                        names.truncate(20);
                        return Err(refuse(format!(
                            "node `{name}` not found; nodes: {}{}",
                            list(&names),
                            if more > 0 {
                                format!(" (and {more} more)")
                            } else {
                                String::new()
                            }
                        )));
                    }
                    Err(e) => return Err(self.map(op, e)),
                }
            }
            NodeTarget::Selector(sel) => {
                let s = selector_string(sel);
                let api: Api<Node> = Api::all(self.client.clone());
                let nodes = self
                    .call(
                        Op::new("list", "nodes"),
                        api.list(&ListParams::default().labels(&s)),
                    )
                    .await?
                    .items;
                if nodes.is_empty() {
                    return Err(refuse(format!(
                        "no nodes match selector `{s}`; {}",
                        self.zones_hint().await
                    )));
                }
                nodes
            }
        };
        self.check_node_cap(a.max_nodes, &nodes)?;
        Ok(nodes)
    }

    /// The nodes of a zone, caps checked.
    pub(crate) async fn plan_zone(&self, z: &ZoneAction) -> Result<Vec<Node>, ProviderError> {
        let zone = z.zone.as_str();
        let api: Api<Node> = Api::all(self.client.clone());
        let s = format!("{ZONE_LABEL}={zone}");
        let mut nodes = self
            .call(
                Op::new("list", "nodes"),
                api.list(&ListParams::default().labels(&s)),
            )
            .await?
            .items;
        if nodes.is_empty() {
            return Err(refuse(format!(
                "no nodes in zone `{zone}` (label {ZONE_LABEL}); {}",
                self.zones_hint().await
            )));
        }
        nodes.sort_by_key(|n| name_of(&n.metadata));
        self.check_node_cap(z.max_nodes, &nodes)?;
        Ok(nodes)
    }

    /// Read-modify-write a node: `f` gives a merge patch for the node as it is now (or `None`:
    /// nothing to do). The patch carries the resourceVersion read, so a concurrent change is a
    /// 409; conflicts are retried, re-reading the node. Returns whether it patched.
    pub(crate) async fn patch_node(
        &self,
        name: &str,
        f: impl Fn(&Node) -> Option<Json>,
    ) -> Result<bool, ProviderError> {
        let api: Api<Node> = Api::all(self.client.clone());
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let node = self
                .call(Op::new("get", "nodes").name(name), api.get(name))
                .await?;
            let Some(mut patch) = f(&node) else {
                return Ok(false);
            };
            if let Some(rv) = &node.metadata.resource_version {
                patch["metadata"]["resourceVersion"] = json!(rv);
            }
            let op = Op::new("patch", "nodes").name(name);
            match self
                .call_raw(
                    op,
                    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?
            {
                Ok(_) => return Ok(true),
                Err(e) if status_code(&e) == Some(409) && attempt < CONFLICT_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                }
                Err(e) => return Err(self.map(op, e)),
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn set_unschedulable(&self, name: &str, on: bool) -> Result<bool, ProviderError> {
        self.patch_node(name, |n| {
            (node_unschedulable(n) != on).then(|| json!({"spec": {"unschedulable": on}}))
        })
        .await
    }

    /// Cordon nodes, recording in `out` which this step changed.
    async fn cordon_all(
        &self,
        nodes: &[Node],
        out: &mut Json,
        idx: usize,
    ) -> Result<(), ProviderError> {
        self.set_all_unschedulable(nodes, out, idx, true).await
    }

    /// Cordon (`on`) or uncordon nodes, recording in `out` which this step changed
    /// (`cordoned`/`uncordoned`) and which already were so (`already_cordoned`/
    /// `already_schedulable`); the ledger follows each node.
    async fn set_all_unschedulable(
        &self,
        nodes: &[Node],
        out: &mut Json,
        idx: usize,
        on: bool,
    ) -> Result<(), ProviderError> {
        let (done, already) = if on {
            ("cordoned", "already_cordoned")
        } else {
            ("uncordoned", "already_schedulable")
        };
        out[done] = json!([]);
        out[already] = json!([]);
        for n in nodes {
            let name = name_of(&n.metadata);
            let changed = self
                .set_unschedulable(&name, on)
                .await
                .map_err(|e| with_done(e, &strings(&out[done]), done))?;
            let key = if changed { done } else { already };
            out[key].as_array_mut().expect("array").push(json!(name));
            self.ledger_set(idx, out);
        }
        Ok(())
    }

    /// `zone`: the zone of a zone action.
    fn node_out(&self, nodes: &[Node], zone: Option<&str>) -> Json {
        let mut out = json!({
            "cluster": self.cluster,
            "nodes": nodes.iter().map(|n| name_of(&n.metadata)).collect::<Vec<_>>(),
        });
        if let Some(z) = zone {
            out["zone"] = json!(z);
        }
        out
    }

    async fn cordon(
        &self,
        action: &Action,
        zone: Option<&str>,
        nodes: Vec<Node>,
    ) -> Result<Json, ProviderError> {
        self.require("patch", "nodes", None, None).await?;
        let mut out = self.node_out(&nodes, zone);
        let idx = self.ledger_open(action, &out);
        self.cordon_all(&nodes, &mut out, idx).await?;
        Ok(out)
    }

    async fn uncordon(&self, action: &Action, nodes: Vec<Node>) -> Result<Json, ProviderError> {
        self.require("patch", "nodes", None, None).await?;
        let mut out = self.node_out(&nodes, None);
        out["uncordoned"] = json!([]);
        out["already_schedulable"] = json!([]);
        let idx = self.ledger_open(action, &out);
        self.set_all_unschedulable(&nodes, &mut out, idx, false)
            .await?;
        Ok(out)
    }

    // ---- taints ---------------------------------------------------------------------------

    /// A taint as the API writes it.
    pub(crate) fn taint_of(t: &TaintSpec) -> Taint {
        Taint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: t.effect.as_str().to_string(),
            time_added: None,
        }
    }

    fn taints(n: &Node) -> Vec<Taint> {
        n.spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
    }

    /// Add a taint (same key and effect: already there) to nodes; records which it changed.
    async fn taint_all(
        &self,
        nodes: &[Node],
        taint: &Taint,
        out: &mut Json,
        idx: usize,
    ) -> Result<(), ProviderError> {
        out["taint"] = json!(taint);
        out["tainted"] = json!([]);
        out["already_tainted"] = json!([]);
        for n in nodes {
            let name = name_of(&n.metadata);
            let changed = self
                .patch_node(&name, |n| {
                    let mut t = Self::taints(n);
                    if t.iter()
                        .any(|x| x.key == taint.key && x.effect == taint.effect)
                    {
                        return None;
                    }
                    t.push(taint.clone());
                    Some(json!({"spec": {"taints": t}}))
                })
                .await
                .map_err(|e| with_done(e, &strings(&out["tainted"]), "tainted"))?;
            let key = if changed {
                "tainted"
            } else {
                "already_tainted"
            };
            out[key].as_array_mut().expect("array").push(json!(name));
            self.ledger_set(idx, out);
        }
        Ok(())
    }

    /// Remove taints with `key` (and `effect`, if given) from one node; returns those removed.
    async fn untaint_node(
        &self,
        name: &str,
        key: &str,
        effect: Option<&str>,
    ) -> Result<Vec<Taint>, ProviderError> {
        let removed = std::sync::Mutex::new(Vec::new());
        self.patch_node(name, |n| {
            let (gone, kept): (Vec<Taint>, Vec<Taint>) = Self::taints(n)
                .into_iter()
                .partition(|t| t.key == key && effect.is_none_or(|e| t.effect == e));
            *removed.lock().expect("poisoned") = gone.clone();
            (!gone.is_empty()).then(|| json!({"spec": {"taints": kept}}))
        })
        .await?;
        Ok(removed.into_inner().expect("poisoned"))
    }

    async fn untaint(
        &self,
        action: &Action,
        a: &NodeUntaint,
        nodes: Vec<Node>,
    ) -> Result<Json, ProviderError> {
        let (key, effect) = untaint_spec(a);
        self.require("patch", "nodes", None, None).await?;
        let mut out = self.node_out(&nodes, None);
        out["removed"] = json!([]);
        let idx = self.ledger_open(action, &out);
        for n in &nodes {
            let name = name_of(&n.metadata);
            let gone = self.untaint_node(&name, key, effect).await.map_err(|e| {
                let done: Vec<String> = out["removed"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r["node"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                with_done(e, &done, "untainted")
            })?;
            if !gone.is_empty() {
                out["removed"]
                    .as_array_mut()
                    .expect("array")
                    .push(json!({"node": name, "taints": gone}));
                self.ledger_set(idx, &out);
            }
        }
        Ok(out)
    }

    // ---- drains ---------------------------------------------------------------------------

    /// The pods a drain of `nodes` evicts, and those it skips (with why). With `taint` (a zone
    /// taint), the pods the cluster will evict: those not tolerating it; then a pod in a
    /// namespace the drill may not touch (kube-system, outside the allow-list) refuses the step,
    /// since the cluster would evict it regardless.
    pub(crate) async fn plan_drain(
        &self,
        nodes: &[Node],
        scope: NodeScope<'_>,
        taint: Option<&Taint>,
    ) -> Result<(Vec<Pod>, Vec<(String, String)>), ProviderError> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let mut evict = Vec::new();
        let mut skipped = Vec::new();
        for n in nodes {
            let name = name_of(&n.metadata);
            let lp = ListParams::default().fields(&format!("spec.nodeName={name}"));
            let pods = self
                .call(Op::new("list", "pods"), api.list(&lp))
                .await?
                .items;
            for pod in pods {
                // A server that ignores the field selector must not widen the drain.
                if pod_node(&pod) != Some(name.as_str())
                    || pod_finished(&pod)
                    || pod_terminating(&pod)
                {
                    continue;
                }
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let why = if pod_mirror(&pod) {
                    Some("mirror pod".to_string())
                } else if let Some(t) = taint {
                    if tolerates(&pod, t) {
                        Some("tolerates the taint".to_string())
                    } else if let Err(e) = self.check_namespace(&ns, scope.allow_kube_system) {
                        return Err(refuse(format!(
                            "the zone taint would make the cluster evict pod `{}`: {e}; or use `method: evict`, which skips it",
                            pod_ref(&pod)
                        )));
                    } else {
                        None
                    }
                } else if pod_daemonset(&pod) {
                    Some("DaemonSet pod".to_string())
                } else if ns == "kube-system"
                    && self.check_namespace(&ns, scope.allow_kube_system).is_err()
                {
                    Some("kube-system (set allow_kube_system to evict it)".to_string())
                } else if self.check_namespace(&ns, scope.allow_kube_system).is_err() {
                    Some(format!("namespace `{ns}` is not in kubernetes.namespaces"))
                } else {
                    None
                };
                match why {
                    Some(w) => skipped.push((pod_ref(&pod), w)),
                    None => evict.push(pod),
                }
            }
        }
        // Drains have no `max_pods` of their own: the environment's cap.
        if let Some(cap) = self.pods_cap(None)
            && evict.len() as u64 > cap
        {
            return Err(refuse(format!(
                "blast radius: this drain would evict {} pods, over max_pods {cap} (kubernetes.max_pods); raise the cap or drain fewer nodes",
                evict.len()
            )));
        }
        Ok((evict, skipped))
    }

    /// Evict one pod, retrying while a PodDisruptionBudget refuses (429) until `deadline`.
    /// `Ok(Some(at))`: evicted by the request sent at `at` (run clock); `Ok(None)`: already gone.
    async fn evict(
        &self,
        pod: &Pod,
        grace: Option<u32>,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<Option<Duration>, ProviderError> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = name_of(&pod.metadata);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let body = k8s_openapi::api::policy::v1::Eviction {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            delete_options: grace.map(|g| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions {
                    grace_period_seconds: Some(g as i64),
                    ..Default::default()
                }
            }),
        };
        let backoff = kube_rules::EVICTION_RETRY;
        loop {
            let op = Op::new("create", "pods/eviction").ns(&ns).name(&name);
            let at = self.shared.now();
            let r = self
                .call_raw(
                    op,
                    api.create_subresource::<_, Json>(
                        "eviction",
                        &name,
                        &PostParams::default(),
                        &body,
                    ),
                )
                .await?;
            match r {
                Ok(_) => return Ok(Some(at)),
                Err(e) if status_code(&e) == Some(429) => {
                    if tokio::time::Instant::now() + backoff > deadline {
                        let said = match &e {
                            kube::Error::Api(s) => s.message.clone(),
                            _ => String::new(),
                        };
                        return Err(ProviderError::invalid_state(format!(
                            "eviction of pod `{ns}/{name}` still refused after {} (429: {said}): a PodDisruptionBudget does not allow it; check `kubectl get pdb -n {ns}` or raise the step's `timeout`",
                            crate::lang::duration::format(timeout)
                        )));
                    }
                    tokio::time::sleep(backoff).await;
                }
                Err(e) if status_code(&e) == Some(404) => {
                    // Gone already, unless the server does not serve evictions at all.
                    let gop = Op::new("get", "pods").ns(&ns).name(&name);
                    return match self.call_raw(gop, api.get(&name)).await? {
                        Ok(p) if p.metadata.uid == pod.metadata.uid => {
                            Err(ProviderError::failed(format!(
                                "the API server at {} does not serve the Eviction API (pods/eviction) for `{ns}/{name}`; drain with `method: taint` instead",
                                self.ep.server
                            )))
                        }
                        _ => Ok(None),
                    };
                }
                Err(e) => return Err(self.map(op, e)),
            }
        }
    }

    /// Cordon and drain nodes through the Eviction API.
    async fn drain(
        &self,
        action: &Action,
        scope: NodeScope<'_>,
        nodes: Vec<Node>,
    ) -> Result<Json, ProviderError> {
        let (pods, skipped) = self.plan_drain(&nodes, scope, None).await?;
        self.require("patch", "nodes", None, None).await?;
        let namespaces = self.eviction_rights(&pods).await?;
        let timeout = scope.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let grace = grace_seconds(scope.grace_period);
        let mut out = self.node_out(&nodes, scope.zone);
        out["method"] = json!("evict");
        out["skipped"] = json!(
            skipped
                .iter()
                .map(|(pod, why)| json!({"pod": pod, "reason": why}))
                .collect::<Vec<_>>()
        );
        let idx = self.ledger_open(action, &out);
        self.cordon_all(&nodes, &mut out, idx).await?;
        let scopes: Vec<(String, Option<String>)> =
            namespaces.iter().map(|ns| (ns.clone(), None)).collect();
        let tracking = recovery::start(
            &self.shared,
            &self.client,
            &scopes,
            self.settings.request_timeout(),
            self.component(),
        )
        .await;
        // Evict concurrently (as `kubectl drain` does): one PDB-blocked pod must not hold the
        // others back.
        let tracking = &tracking;
        let results = futures::future::join_all(pods.iter().map(|pod| async move {
            let r = self.evict(pod, grace, deadline, timeout).await;
            if let Ok(Some(at)) = r {
                tracking.victim(self.victim(pod, Some(at)));
            }
            (pod, r)
        }))
        .await;
        out["evicted"] = json!([]);
        out["pods"] = json!([]);
        out["already_gone"] = json!([]);
        let mut first_err = None;
        for (pod, r) in results {
            match r {
                Ok(Some(at)) => {
                    out["evicted"]
                        .as_array_mut()
                        .expect("array")
                        .push(json!(pod_ref(pod)));
                    out["pods"]
                        .as_array_mut()
                        .expect("array")
                        .push(self.pod_json(pod, Some(at)));
                }
                Ok(None) => out["already_gone"]
                    .as_array_mut()
                    .expect("array")
                    .push(json!(pod_ref(pod))),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.ledger_set(idx, &out);
        let Some(e) = first_err else {
            return Ok(out);
        };
        // A failed drain leaves no cordon behind: undo them now (the ledger then records that
        // nothing is left to roll back). Evicted pods are replaced by their controllers.
        let mut undone = Vec::new();
        let mut still = Vec::new();
        for n in strings(&out["cordoned"]) {
            match self.set_unschedulable(&n, false).await {
                Ok(_) => undone.push(n),
                Err(_) => still.push(n),
            }
        }
        out["cordoned"] = json!(still);
        out["uncordoned_after_failure"] = json!(undone);
        self.ledger_set(idx, &out);
        let mut e = with_done(e, &strings(&out["evicted"]), "evicted");
        if !undone.is_empty() {
            e = with_done(e, &undone, "uncordoned again after the failure");
        }
        if !still.is_empty() {
            e = with_done(e, &still, "STILL CORDONED (the rollback uncordons them)");
        }
        Err(e)
    }

    /// The taint of a zone loss by `method: taint`.
    pub(crate) fn zone_taint(z: &ZoneAction) -> Taint {
        Self::taint_of(&TaintSpec::zone_loss(&z.zone))
    }

    /// Zone loss by NoExecute taint: the cluster evicts what does not tolerate it.
    async fn taint_zone(
        &self,
        action: &Action,
        z: &ZoneAction,
        nodes: Vec<Node>,
    ) -> Result<Json, ProviderError> {
        let taint = Self::zone_taint(z);
        let (affected, skipped) = self.plan_drain(&nodes, z.into(), Some(&taint)).await?;
        self.require("patch", "nodes", None, None).await?;
        let mut out = self.node_out(&nodes, Some(&z.zone));
        out["method"] = json!("taint");
        out["pods"] = json!(
            affected
                .iter()
                .map(|p| self.pod_json(p, None))
                .collect::<Vec<_>>()
        );
        out["skipped"] = json!(
            skipped
                .iter()
                .map(|(pod, why)| json!({"pod": pod, "reason": why}))
                .collect::<Vec<_>>()
        );
        let mut namespaces: Vec<String> = affected
            .iter()
            .filter_map(|p| p.metadata.namespace.clone())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        let scopes: Vec<(String, Option<String>)> =
            namespaces.iter().map(|ns| (ns.clone(), None)).collect();
        let tracking = recovery::start(
            &self.shared,
            &self.client,
            &scopes,
            self.settings.request_timeout(),
            self.component(),
        )
        .await;
        // The cluster evicts them: each is timed from when the watch sees it go.
        for pod in &affected {
            tracking.victim(self.victim(pod, None));
        }
        let idx = self.ledger_open(action, &out);
        self.taint_all(&nodes, &taint, &mut out, idx).await?;
        Ok(out)
    }

    // ---- workloads ------------------------------------------------------------------------

    /// Current replicas of a workload (via its scale subresource, else the object).
    pub(crate) async fn replicas_of(
        &self,
        ns: &str,
        kind: &str,
        name: &str,
    ) -> Result<i32, ProviderError> {
        let w = self.get_workload(ns, kind, name).await?;
        Ok(w.get("spec")
            .and_then(|s| s.get("replicas"))
            .and_then(Json::as_i64)
            .unwrap_or(1) as i32)
    }

    /// A workload as JSON; a missing one is an error listing the workloads there.
    pub(crate) async fn get_workload(
        &self,
        ns: &str,
        kind: &str,
        name: &str,
    ) -> Result<Json, ProviderError> {
        let (resource, r) = match kind {
            "deployment" => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                let op = Op::new("get", "deployments").ns(ns).name(name);
                (
                    "deployments",
                    self.call_raw(op, api.get(name))
                        .await?
                        .map(|d| serde_json::to_value(d).unwrap_or(Json::Null)),
                )
            }
            _ => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
                let op = Op::new("get", "statefulsets").ns(ns).name(name);
                (
                    "statefulsets",
                    self.call_raw(op, api.get(name))
                        .await?
                        .map(|d| serde_json::to_value(d).unwrap_or(Json::Null)),
                )
            }
        };
        match r {
            Ok(j) => Ok(j),
            Err(e) if status_code(&e) == Some(404) => {
                let names = self.workload_names(ns, kind).await;
                Err(refuse(format!(
                    "{kind} `{name}` not found in namespace `{ns}`; {resource} there: {}",
                    list(&names)
                )))
            }
            Err(e) => Err(self.map(Op::new("get", resource).ns(ns).name(name), e)),
        }
    }

    async fn workload_names(&self, ns: &str, kind: &str) -> Vec<String> {
        let lp = ListParams::default();
        let mut v: Vec<String> = match kind {
            "deployment" => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                self.call(Op::new("list", "deployments").ns(ns), api.list(&lp))
                    .await
                    .map(|l| l.items.iter().map(|d| name_of(&d.metadata)).collect())
                    .unwrap_or_default()
            }
            _ => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
                self.call(Op::new("list", "statefulsets").ns(ns), api.list(&lp))
                    .await
                    .map(|l| l.items.iter().map(|d| name_of(&d.metadata)).collect())
                    .unwrap_or_default()
            }
        };
        v.sort();
        v
    }

    /// Merge-patch a workload, retrying conflicts.
    async fn patch_workload(
        &self,
        ns: &str,
        kind: &str,
        name: &str,
        patch: &Json,
    ) -> Result<(), ProviderError> {
        let resource = if kind == "deployment" {
            "deployments"
        } else {
            "statefulsets"
        };
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let op = Op::new("patch", resource).ns(ns).name(name);
            let pp = PatchParams::default();
            let r = if kind == "deployment" {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                self.call_raw(op, api.patch(name, &pp, &Patch::Merge(patch)))
                    .await?
                    .map(|_| ())
            } else {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
                self.call_raw(op, api.patch(name, &pp, &Patch::Merge(patch)))
                    .await?
                    .map(|_| ())
            };
            match r {
                Ok(()) => return Ok(()),
                Err(e) if status_code(&e) == Some(409) && attempt < CONFLICT_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                }
                Err(e) => return Err(self.map(op, e)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Set a workload's replicas through its scale subresource (the object itself if the
    /// server does not serve the subresource).
    async fn set_replicas(
        &self,
        ns: &str,
        kind: &str,
        name: &str,
        n: i64,
    ) -> Result<(), ProviderError> {
        let resource = if kind == "deployment" {
            "deployments/scale"
        } else {
            "statefulsets/scale"
        };
        let patch = json!({"spec": {"replicas": n}});
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let op = Op::new("patch", resource).ns(ns).name(name);
            let pp = PatchParams::default();
            let r = if kind == "deployment" {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                self.call_raw(op, api.patch_scale(name, &pp, &Patch::Merge(&patch)))
                    .await?
                    .map(|_| ())
            } else {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
                self.call_raw(op, api.patch_scale(name, &pp, &Patch::Merge(&patch)))
                    .await?
                    .map(|_| ())
            };
            match r {
                Ok(()) => return Ok(()),
                Err(e) if status_code(&e) == Some(409) && attempt < CONFLICT_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                }
                Err(e) if status_code(&e) == Some(404) => {
                    // No scale subresource here: the workload exists (read just before).
                    return self.patch_workload(ns, kind, name, &patch).await;
                }
                Err(e) => return Err(self.map(op, e)),
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn scale(&self, action: &Action, s: &Scale) -> Result<Json, ProviderError> {
        let ns = s.namespace.as_str();
        // Workload steps have no `allow_kube_system` of their own: the environment's.
        self.check_namespace(ns, false)?;
        let (kind, name) = (s.workload.kind(), s.workload.name());
        let replicas = i64::from(s.replicas);
        let previous = self.replicas_of(ns, kind, name).await?;
        let resource = if kind == "deployment" {
            "deployments"
        } else {
            "statefulsets"
        };
        self.require("patch", resource, Some("scale"), Some(ns))
            .await?;
        let mut out = json!({"cluster": self.cluster, "namespace": ns, "kind": kind, "name": name, "replicas": replicas});
        let idx = self.ledger_open(action, &out);
        self.set_replicas(ns, kind, name, replicas).await?;
        out["previous"] = json!(previous);
        self.ledger_set(idx, &out);
        Ok(out)
    }

    fn restarted_at(w: &Json) -> Json {
        w.pointer("/spec/template/metadata/annotations")
            .and_then(|a| a.get(RESTARTED_AT))
            .cloned()
            .unwrap_or(Json::Null)
    }

    async fn rollout_restart(
        &self,
        action: &Action,
        at: &WorkloadAt,
    ) -> Result<Json, ProviderError> {
        let ns = at.namespace.as_str();
        self.check_namespace(ns, false)?;
        let (kind, name) = (at.workload.kind(), at.workload.name());
        let w = self.get_workload(ns, kind, name).await?;
        let resource = if kind == "deployment" {
            "deployments"
        } else {
            "statefulsets"
        };
        self.require("patch", resource, None, Some(ns)).await?;
        let previous = Self::restarted_at(&w);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut out = json!({"cluster": self.cluster, "namespace": ns, "kind": kind, "name": name, "restarted_at": now});
        let idx = self.ledger_open(action, &out);
        self.patch_workload(
            ns,
            kind,
            name,
            &json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}),
        )
        .await?;
        out["previous"] = previous;
        self.ledger_set(idx, &out);
        Ok(out)
    }

    // ---- dispatch -------------------------------------------------------------------------

    pub(crate) async fn inject_action(&self, action: &Action) -> Result<Json, ProviderError> {
        match action {
            Action::PodKill(pk) => self.pod_kill(action, pk).await,
            Action::CordonZone(z) => {
                let nodes = self.plan_zone(z).await?;
                self.cordon(action, Some(&z.zone), nodes).await
            }
            Action::DrainZone(z) => {
                let nodes = self.plan_zone(z).await?;
                match z.method {
                    DrainMethod::Taint => self.taint_zone(action, z, nodes).await,
                    DrainMethod::Evict => self.drain(action, z.into(), nodes).await,
                }
            }
            Action::NodeCordon(n) => {
                let nodes = self.plan_nodes(n).await?;
                self.cordon(action, None, nodes).await
            }
            Action::NodeUncordon(n) => {
                let nodes = self.plan_nodes(n).await?;
                self.uncordon(action, nodes).await
            }
            Action::NodeDrain(n) => {
                let nodes = self.plan_nodes(n).await?;
                self.drain(action, n.into(), nodes).await
            }
            Action::NodeTaint(n) => {
                let taint = Self::taint_of(&n.taint);
                let nodes = self.plan_nodes(&n.nodes).await?;
                self.require("patch", "nodes", None, None).await?;
                let mut out = self.node_out(&nodes, None);
                let idx = self.ledger_open(action, &out);
                self.taint_all(&nodes, &taint, &mut out, idx).await?;
                Ok(out)
            }
            Action::NodeUntaint(n) => {
                let nodes = self.plan_nodes(&n.nodes).await?;
                self.untaint(action, n, nodes).await
            }
            Action::Scale(sc) => self.scale(action, sc).await,
            Action::RolloutRestart(at) => self.rollout_restart(action, at).await,
            other => Err(super::unsupported(other.name())),
        }
    }

    /// Undo what an action recorded. With no output (the step failed or timed out half-way),
    /// what the provider's ledger recorded for it.
    pub(crate) async fn revert_action(
        &self,
        action: &Action,
        output: &Json,
    ) -> Result<Json, ProviderError> {
        if let Action::PodKill(_) = action {
            return Err(ProviderError::unsupported(
                "kubernetes",
                "rollback of k8s.pod_kill (controllers replace deleted pods; there is nothing to undo)",
            ));
        }
        let out = if output.is_object() {
            output.clone()
        } else {
            match self.ledger_find(action) {
                Some((_, o)) => o,
                None => {
                    return Ok(json!({"reverted": false, "reason": "the step changed nothing"}));
                }
            }
        };
        let r = self.revert_output(action, &out).await;
        if r.is_ok() {
            self.ledger_close(action);
        }
        r
    }

    /// Undo what a step's output says it changed (its parameters are not needed: the output
    /// names every node, taint and previous value).
    async fn revert_output(&self, action: &Action, out: &Json) -> Result<Json, ProviderError> {
        match action {
            Action::CordonZone(_)
            | Action::NodeCordon(_)
            | Action::NodeDrain(_)
            | Action::DrainZone(_)
                if out.get("method").and_then(Json::as_str) != Some("taint") =>
            {
                let nodes = strings(&out["cordoned"]);
                let mut done = Vec::new();
                let mut missing = Vec::new();
                for n in &nodes {
                    match self.set_unschedulable(n, false).await {
                        Ok(_) => done.push(n.clone()),
                        Err(e) if e.kind == ErrorKind::NotFound => missing.push(n.clone()),
                        Err(e) => return Err(with_done(e, &done, "uncordoned")),
                    }
                }
                Ok(json!({"uncordoned": done, "missing": missing}))
            }
            Action::DrainZone(_) | Action::NodeTaint(_) => {
                let taint: Taint = serde_json::from_value(out["taint"].clone()).map_err(|e| {
                    ProviderError::invalid_state(format!(
                        "the step's output has no usable `taint` ({e}); remove the taint by hand"
                    ))
                })?;
                let mut done = Vec::new();
                for n in strings(&out["tainted"]) {
                    match self.untaint_node(&n, &taint.key, Some(&taint.effect)).await {
                        Ok(_) => done.push(n),
                        Err(e) if e.kind == ErrorKind::NotFound => done.push(n),
                        Err(e) => return Err(with_done(e, &done, "untainted")),
                    }
                }
                Ok(json!({"untainted": done, "taint": taint}))
            }
            Action::NodeUncordon(_) => {
                let mut done = Vec::new();
                for n in strings(&out["uncordoned"]) {
                    self.set_unschedulable(&n, true)
                        .await
                        .map_err(|e| with_done(e, &done, "cordoned again"))?;
                    done.push(n);
                }
                Ok(json!({"cordoned": done}))
            }
            Action::NodeUntaint(_) => {
                let mut done = Vec::new();
                for r in out["removed"].as_array().cloned().unwrap_or_default() {
                    let node = r["node"].as_str().unwrap_or_default().to_string();
                    let back: Vec<Taint> =
                        serde_json::from_value(r["taints"].clone()).unwrap_or_default();
                    self.patch_node(&node, |n| {
                        let mut t = Self::taints(n);
                        let before = t.len();
                        for b in &back {
                            if !t.iter().any(|x| x.key == b.key && x.effect == b.effect) {
                                t.push(b.clone());
                            }
                        }
                        (t.len() != before).then(|| json!({"spec": {"taints": t}}))
                    })
                    .await
                    .map_err(|e| with_done(e, &done, "re-tainted"))?;
                    done.push(node);
                }
                Ok(json!({"retainted": done}))
            }
            Action::Scale(_) => {
                let Some(prev) = out.get("previous").and_then(Json::as_i64) else {
                    return Ok(json!({"reverted": false, "reason": "the step changed nothing"}));
                };
                let ns = out["namespace"].as_str().unwrap_or_default();
                let kind = out["kind"].as_str().unwrap_or("deployment");
                let name = out["name"].as_str().unwrap_or_default();
                self.set_replicas(ns, kind, name, prev).await?;
                Ok(json!({"replicas": prev}))
            }
            Action::RolloutRestart(_) => {
                if out.get("previous").is_none() {
                    return Ok(json!({"reverted": false, "reason": "the step changed nothing"}));
                }
                let ns = out["namespace"].as_str().unwrap_or_default();
                let kind = out["kind"].as_str().unwrap_or("deployment");
                let name = out["name"].as_str().unwrap_or_default();
                let prev = out["previous"].clone();
                self.patch_workload(ns, kind, name, &json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: prev}}}}}))
                    .await?;
                Ok(json!({"restored_annotation": prev}))
            }
            other => Err(super::unsupported(other.name())),
        }
    }

    // ---- dry run --------------------------------------------------------------------------

    pub(crate) async fn describe_action(&self, action: &Action) -> Result<String, ProviderError> {
        let names = |nodes: &[Node]| -> Vec<String> {
            nodes.iter().map(|n| name_of(&n.metadata)).collect()
        };
        let split = |nodes: &[Node]| -> (Vec<String>, Vec<String>) {
            let (a, b): (Vec<&Node>, Vec<&Node>) =
                nodes.iter().partition(|n| !node_unschedulable(n));
            (
                a.iter().map(|n| name_of(&n.metadata)).collect(),
                b.iter().map(|n| name_of(&n.metadata)).collect(),
            )
        };
        let drain_text = |pods: &[Pod], skipped: &[(String, String)]| -> String {
            let mut s = format!(
                "; evict {} pod(s) through the Eviction API: {}",
                pods.len(),
                list(&pods.iter().map(pod_ref).collect::<Vec<_>>())
            );
            if !skipped.is_empty() {
                s.push_str(&format!(
                    "; skip {}",
                    skipped
                        .iter()
                        .map(|(p, w)| format!("{p} ({w})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            s
        };
        Ok(match action {
            Action::PodKill(pk) => {
                let plan = self.plan_pod_kill(pk, None).await?;
                let pods: Vec<String> = plan
                    .victims
                    .iter()
                    .map(|v| format!("{} on {}", pod_ref(v), pod_node(v).unwrap_or("no node")))
                    .collect();
                format!(
                    "kill {} of {} pod(s) matching `{}` in {} (mode {}): {}{}",
                    plan.victims.len(),
                    plan.matched,
                    plan.selector,
                    plan.namespaces.join(", "),
                    plan.mode,
                    pods.join(", "),
                    match (plan.random, plan.mode.as_str()) {
                        (true, "random-max-percent") => {
                            "; an example pick: how many pods, and which, are picked at random at run time"
                        }
                        (true, _) =>
                            "; an example pick: the actual pods are picked at random at run time",
                        _ => "",
                    }
                )
            }
            Action::CordonZone(_) | Action::NodeCordon(_) => {
                let nodes = match action {
                    Action::CordonZone(z) => self.plan_zone(z).await?,
                    Action::NodeCordon(n) => self.plan_nodes(n).await?,
                    _ => unreachable!("matched above"),
                };
                let (todo, already) = split(&nodes);
                format!(
                    "cordon {} node(s): {}{}",
                    todo.len(),
                    list(&todo),
                    if already.is_empty() {
                        String::new()
                    } else {
                        format!(" (already cordoned, left alone: {})", already.join(", "))
                    }
                )
            }
            Action::NodeUncordon(n) => {
                let nodes = self.plan_nodes(n).await?;
                let (already, todo) = split(&nodes);
                format!(
                    "uncordon {} node(s): {}{}",
                    todo.len(),
                    list(&todo),
                    if already.is_empty() {
                        String::new()
                    } else {
                        format!(" (already schedulable: {})", already.join(", "))
                    }
                )
            }
            Action::DrainZone(_) | Action::NodeDrain(_) => {
                let (nodes, scope, taint, zone) = match action {
                    Action::DrainZone(z) => (
                        self.plan_zone(z).await?,
                        NodeScope::from(z),
                        (z.method == DrainMethod::Taint).then(|| Self::zone_taint(z)),
                        z.zone.as_str(),
                    ),
                    Action::NodeDrain(n) => {
                        (self.plan_nodes(n).await?, NodeScope::from(n), None, "")
                    }
                    _ => unreachable!("matched above"),
                };
                let (pods, skipped) = self.plan_drain(&nodes, scope, taint.as_ref()).await?;
                if taint.is_some() {
                    let hit: Vec<String> = pods.iter().map(pod_ref).collect();
                    format!(
                        "taint {} node(s) `{ZONE_LOSS_TAINT}={}:NoExecute`: {}; the cluster then evicts {} pod(s): {}",
                        nodes.len(),
                        zone,
                        names(&nodes).join(", "),
                        hit.len(),
                        list(&hit)
                    )
                } else {
                    let (todo, already) = split(&nodes);
                    format!(
                        "cordon {} node(s): {}{}{}",
                        todo.len(),
                        list(&todo),
                        if already.is_empty() {
                            String::new()
                        } else {
                            format!(" (already cordoned: {})", already.join(", "))
                        },
                        drain_text(&pods, &skipped)
                    )
                }
            }
            Action::NodeTaint(n) => {
                let t = Self::taint_of(&n.taint);
                let nodes = self.plan_nodes(&n.nodes).await?;
                format!(
                    "taint {} node(s) `{}{}:{}`: {}",
                    nodes.len(),
                    t.key,
                    t.value.map(|v| format!("={v}")).unwrap_or_default(),
                    t.effect,
                    names(&nodes).join(", ")
                )
            }
            Action::NodeUntaint(n) => {
                let (key, effect) = untaint_spec(n);
                let nodes = self.plan_nodes(&n.nodes).await?;
                let with: Vec<String> = nodes
                    .iter()
                    .filter(|n| {
                        Self::taints(n)
                            .iter()
                            .any(|t| t.key == key && effect.is_none_or(|e| t.effect == e))
                    })
                    .map(|n| name_of(&n.metadata))
                    .collect();
                format!(
                    "remove taint `{key}` from {} node(s): {}",
                    with.len(),
                    list(&with)
                )
            }
            Action::Scale(sc) => {
                let ns = sc.namespace.as_str();
                self.check_namespace(ns, false)?;
                let (kind, name) = (sc.workload.kind(), sc.workload.name());
                let prev = self.replicas_of(ns, kind, name).await?;
                format!(
                    "scale {kind} {ns}/{name} from {prev} to {} replicas",
                    sc.replicas
                )
            }
            Action::RolloutRestart(at) => {
                let ns = at.namespace.as_str();
                self.check_namespace(ns, false)?;
                let (kind, name) = (at.workload.kind(), at.workload.name());
                self.get_workload(ns, kind, name).await?;
                format!(
                    "restart {kind} {ns}/{name} with a rolling update (`{RESTARTED_AT}` annotation)"
                )
            }
            other => return Err(super::unsupported(other.name())),
        })
    }
}

/// Whether a pod tolerates a taint.
fn tolerates(p: &Pod, t: &Taint) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|tols| {
            tols.iter().any(|tol| {
                let key_ok = match tol.key.as_deref() {
                    None | Some("") => tol.operator.as_deref() == Some("Exists"),
                    Some(k) => k == t.key,
                };
                let value_ok = tol.operator.as_deref() == Some("Exists")
                    || tol.value.as_deref().unwrap_or_default()
                        == t.value.as_deref().unwrap_or_default();
                let effect_ok = tol
                    .effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == t.effect);
                key_ok && value_ok && effect_ok
            })
        })
}

/// Add what was already done to an error, so a half-done step says what it left behind.
pub(crate) fn with_done(e: ProviderError, done: &[String], what: &str) -> ProviderError {
    if done.is_empty() {
        return e;
    }
    let suffix = format!(" (before this, {what}: {})", done.join(", "));
    e.map_message(|m| m + &suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_k8s_action_of_the_vocabulary_is_implemented() {
        let vocab: Vec<&str> = crate::lang::vocab::ACTIONS
            .iter()
            .map(|a| a.name)
            .filter(|n| n.starts_with("k8s."))
            .collect();
        assert_eq!(vocab, ACTIONS);
    }

    #[test]
    fn tolerations_match_key_value_and_effect() {
        let t = Taint {
            key: ZONE_LOSS_TAINT.into(),
            value: Some("a".into()),
            effect: "NoExecute".into(),
            time_added: None,
        };
        let pod = |tol: Json| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": {"containers": [], "tolerations": [tol]}})).unwrap()
        };
        assert!(tolerates(&pod(json!({"operator": "Exists"})), &t));
        assert!(tolerates(
            &pod(json!({"key": ZONE_LOSS_TAINT, "operator": "Exists", "effect": "NoExecute"})),
            &t
        ));
        assert!(tolerates(
            &pod(json!({"key": ZONE_LOSS_TAINT, "value": "a"})),
            &t
        ));
        assert!(!tolerates(
            &pod(json!({"key": ZONE_LOSS_TAINT, "value": "b"})),
            &t
        ));
        assert!(!tolerates(
            &pod(json!({"key": "other", "operator": "Exists"})),
            &t
        ));
        assert!(!tolerates(
            &pod(json!({"key": ZONE_LOSS_TAINT, "operator": "Exists", "effect": "NoSchedule"})),
            &t
        ));
    }
}
