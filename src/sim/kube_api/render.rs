//! The estate's objects as Kubernetes API JSON, built with k8s-openapi's types (so field names,
//! nesting and formats are the real ones), and the server-side printing `kubectl get` asks for
//! (`meta.k8s.io/v1` Table).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, Deployment, DeploymentCondition, DeploymentSpec,
    DeploymentStatus, DeploymentStrategy, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
    RollingUpdateDeployment, StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec, ScaleStatus};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus,
    Namespace, NamespaceStatus, Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus,
    NodeSystemInfo, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec, ResourceRequirements,
    Taint as KTaint, Toleration,
};
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value as Json, json};

use crate::sim::model::{NodeObj, Obj, PdbObj, PodObj, ReplicaSetObj, WorkloadKind, WorkloadObj};

/// The Kubernetes version the simulated API reports.
pub const KUBE_VERSION: &str = "v1.35.0";
/// Container image of every simulated pod.
const IMAGE: &str = "registry.example.com/firedrill/sim:1.0";
/// Annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Time conversion and per-cluster settings for rendering.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Wall-clock milliseconds of estate time zero.
    pub epoch_ms: i64,
    /// Estate time now (for ages).
    pub now: Duration,
    /// `pod_eviction_timeout` (the default NoExecute tolerations' seconds).
    pub eviction_timeout: Duration,
    /// `kubectl.kubernetes.io/restartedAt`-style time of estate time `t`.
    pub cluster: String,
}

impl Ctx {
    pub fn time(&self, t: Duration) -> Time {
        let ms = self.epoch_ms + t.as_millis() as i64;
        Time(
            k8s_openapi::jiff::Timestamp::from_millisecond(ms - ms.rem_euclid(1000))
                .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        )
    }

    /// Human age like kubectl's (`45s`, `3m20s`, `61m`, `5h3m`...).
    pub fn age(&self, t: Duration) -> String {
        human_duration(self.now.saturating_sub(t))
    }
}

/// kubectl's `HumanDuration`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h) = (s / 60, s / 3600);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s.is_multiple_of(60) {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{}h", h / 24, h % 24)
        }
    } else {
        format!("{}d", h / 24)
    }
}

fn q(v: &str) -> Quantity {
    Quantity(v.to_string())
}

fn gib(v: f64) -> Quantity {
    let mib = (v * 1024.0).round() as u64;
    if mib.is_multiple_of(1024) {
        q(&format!("{}Gi", mib / 1024))
    } else {
        q(&format!("{mib}Mi"))
    }
}

fn ip(seed: &str, first: u8) -> String {
    let h = crate::sim::kube_api::fnv(seed);
    format!("10.{first}.{}.{}", (h >> 8) % 250 + 1, h % 250 + 2)
}

fn meta(name: &str, namespace: &str, uid: &str, rv: u64, created: Time) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
        uid: Some(uid.to_string()),
        resource_version: Some(rv.to_string()),
        creation_timestamp: Some(created),
        ..Default::default()
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// Any object as its API JSON, with resource version `rv`.
pub fn object(ctx: &Ctx, rv: u64, o: &Obj) -> Json {
    match o {
        Obj::Namespace(n) => to_json(&Namespace {
            metadata: ObjectMeta {
                labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    n.name.clone(),
                )])),
                ..meta(&n.name, "", &n.uid, rv, ctx.time(Duration::ZERO))
            },
            status: Some(NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        Obj::Node(n) => to_json(&node(ctx, rv, n)),
        Obj::Pod(p) => to_json(&pod(ctx, rv, p)),
        Obj::Workload(w) => workload(ctx, rv, w),
        Obj::ReplicaSet(r) => to_json(&replicaset(ctx, rv, r)),
        Obj::Pdb(p) => to_json(&pdb(ctx, rv, p)),
    }
}

/// A node's labels (hostname, zone, region, os, arch, instance type).
pub fn node_labels(n: &NodeObj) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), n.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("topology.kubernetes.io/zone".to_string(), n.zone.clone()),
        (
            "topology.kubernetes.io/region".to_string(),
            n.region.clone(),
        ),
        (
            "node.kubernetes.io/instance-type".to_string(),
            "sim.standard".to_string(),
        ),
    ])
}

pub fn node(ctx: &Ctx, rv: u64, n: &NodeObj) -> Node {
    let labels = node_labels(n);
    let taints: Vec<KTaint> = n
        .taints
        .iter()
        .map(|t| KTaint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: t.effect.as_str().to_string(),
            time_added: t.added.map(|a| ctx.time(a)),
        })
        .collect();
    let (status, reason, message) = if n.ready {
        ("True", "KubeletReady", "kubelet is posting ready status")
    } else {
        (
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        )
    };
    let capacity = BTreeMap::from([
        ("cpu".to_string(), q("4")),
        ("memory".to_string(), gib(n.memory_gib)),
        ("pods".to_string(), q(&n.pods_capacity.to_string())),
    ]);
    Node {
        metadata: ObjectMeta {
            labels: Some(labels),
            ..meta(&n.name, "", &n.uid, rv, ctx.time(Duration::ZERO))
        },
        spec: Some(NodeSpec {
            unschedulable: n.unschedulable.then_some(true),
            taints: (!taints.is_empty()).then_some(taints),
            provider_id: Some(format!("sim:///{}/{}", n.zone, n.name)),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_transition_time: Some(ctx.time(n.ready_since)),
                last_heartbeat_time: Some(ctx.time(if n.ready { ctx.now } else { n.ready_since })),
            }]),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip(&n.name, 0),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: n.name.clone(),
                },
            ]),
            allocatable: Some(capacity.clone()),
            capacity: Some(capacity),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                boot_id: n.uid.clone(),
                container_runtime_version: "containerd://2.0.0".into(),
                kernel_version: "6.1.0-sim".into(),
                kube_proxy_version: String::new(),
                kubelet_version: KUBE_VERSION.into(),
                machine_id: n.uid.replace('-', ""),
                operating_system: "linux".into(),
                os_image: "firedrill simulated node".into(),
                system_uuid: n.uid.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

pub fn pod(ctx: &Ctx, rv: u64, p: &PodObj) -> Pod {
    let api_version = "apps/v1";
    let mut m = meta(&p.name, &p.namespace, &p.uid, rv, ctx.time(p.created));
    m.labels = Some(p.labels.clone());
    m.owner_references = Some(vec![OwnerReference {
        api_version: api_version.into(),
        kind: p.owner_kind.into(),
        name: p.owner_name.clone(),
        uid: p.owner_uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    if p.workload_kind != WorkloadKind::StatefulSet {
        m.generate_name = Some(format!("{}-", p.owner_name));
    }
    if let Some((_, grace)) = p.deletion {
        m.deletion_timestamp = p.deletion_timestamp().map(|t| ctx.time(t));
        m.deletion_grace_period_seconds = Some(grace.as_secs() as i64);
        m.finalizers = None;
    }
    let tolerations = if p.workload_kind == WorkloadKind::DaemonSet {
        vec![Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        }]
    } else {
        [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ]
        .into_iter()
        .map(|k| Toleration {
            key: Some(k.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(ctx.eviction_timeout.as_secs() as i64),
            ..Default::default()
        })
        .collect()
    };
    let running = p.node.is_some();
    let t = |d: Option<Duration>| d.map(|d| ctx.time(d));
    let cond = |type_: &str, ok: bool, since: Option<Duration>| PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        last_transition_time: t(since),
        reason: (!ok && type_ != "PodScheduled").then(|| "ContainersNotReady".to_string()),
        ..Default::default()
    };
    let mut conditions = vec![cond(
        "PodScheduled",
        running,
        p.scheduled.or(Some(p.created)),
    )];
    if !running {
        conditions[0].reason = Some("Unschedulable".into());
        conditions[0].message = Some(format!(
            "0/? nodes are available: no schedulable node with a free slot (pod `{}` waits for capacity)",
            p.name
        ));
    } else {
        conditions.push(cond("Initialized", true, p.scheduled));
        conditions.push(cond("ContainersReady", p.ready, Some(p.ready_since)));
        conditions.push(cond("Ready", p.ready, Some(p.ready_since)));
    }
    let container_status = running.then(|| ContainerStatus {
        name: "app".into(),
        image: IMAGE.into(),
        image_id: format!("{IMAGE}@sha256:{:064x}", crate::sim::kube_api::fnv(IMAGE)),
        container_id: Some(format!("containerd://{}", p.uid.replace('-', ""))),
        ready: p.ready,
        started: Some(true),
        restart_count: p.restarts as i32,
        state: Some(
            if p.deletion.is_some() || p.ready || p.scheduled.is_some() {
                ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: t(p.scheduled),
                    }),
                    ..Default::default()
                }
            } else {
                ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("ContainerCreating".into()),
                        message: None,
                    }),
                    ..Default::default()
                }
            },
        ),
        ..Default::default()
    });
    Pod {
        metadata: m,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(IMAGE.into()),
                resources: Some(ResourceRequirements {
                    requests: Some(BTreeMap::from([("memory".to_string(), gib(p.memory_gib))])),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            node_name: p.node.clone(),
            termination_grace_period_seconds: Some(p.grace.as_secs() as i64),
            tolerations: Some(tolerations),
            restart_policy: Some("Always".into()),
            scheduler_name: Some("default-scheduler".into()),
            service_account_name: Some("default".into()),
            hostname: (p.workload_kind == WorkloadKind::StatefulSet).then(|| p.name.clone()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(p.phase.into()),
            conditions: Some(conditions),
            host_ip: p.node.as_ref().map(|n| ip(n, 0)),
            pod_ip: running.then(|| ip(&p.uid, 1)),
            start_time: t(p.scheduled),
            container_statuses: container_status.map(|c| vec![c]),
            qos_class: Some("Burstable".into()),
            ..Default::default()
        }),
    }
}

fn template(w: &WorkloadObj, hash_label: Option<(&str, String)>) -> PodTemplateSpec {
    let mut labels = w.labels.clone();
    if let Some((k, v)) = hash_label {
        labels.insert(k.into(), v);
    }
    pod_template(labels, &w.template_annotations, w.memory_gib, w.grace)
}

/// The pod template every workload and ReplicaSet renders: one `app` container with the
/// modelled memory request.
fn pod_template(
    labels: BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    memory_gib: f64,
    grace: Duration,
) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then(|| annotations.clone()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(IMAGE.into()),
                resources: Some(ResourceRequirements {
                    requests: Some(BTreeMap::from([("memory".to_string(), gib(memory_gib))])),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(grace.as_secs() as i64),
            ..Default::default()
        }),
    }
}

fn selector(labels: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.clone()),
        ..Default::default()
    }
}

/// A Deployment, StatefulSet or DaemonSet as API JSON.
pub fn workload(ctx: &Ctx, rv: u64, w: &WorkloadObj) -> Json {
    let mut m = meta(&w.name, &w.namespace, &w.uid, rv, ctx.time(Duration::ZERO));
    m.generation = Some(w.generation as i64);
    m.labels = Some(w.labels.clone());
    let unavailable = w.replicas.saturating_sub(w.ready);
    match w.kind {
        WorkloadKind::Deployment => {
            let available = w.ready >= w.replicas.saturating_sub(1);
            to_json(&Deployment {
                metadata: m,
                spec: Some(DeploymentSpec {
                    replicas: Some(w.replicas as i32),
                    selector: selector(&w.labels),
                    template: template(w, None),
                    strategy: Some(DeploymentStrategy {
                        type_: Some("RollingUpdate".into()),
                        rolling_update: Some(RollingUpdateDeployment {
                            max_surge: Some(IntOrString::Int(0)),
                            max_unavailable: Some(IntOrString::Int(1)),
                        }),
                    }),
                    ..Default::default()
                }),
                status: Some(DeploymentStatus {
                    observed_generation: Some(w.generation as i64),
                    replicas: Some(w.current as i32),
                    ready_replicas: Some(w.ready as i32),
                    available_replicas: Some(w.ready as i32),
                    updated_replicas: Some(w.updated as i32),
                    unavailable_replicas: (unavailable > 0).then_some(unavailable as i32),
                    conditions: Some(vec![
                        DeploymentCondition {
                            type_: "Available".into(),
                            status: if available { "True" } else { "False" }.into(),
                            reason: Some(
                                if available {
                                    "MinimumReplicasAvailable"
                                } else {
                                    "MinimumReplicasUnavailable"
                                }
                                .into(),
                            ),
                            ..Default::default()
                        },
                        DeploymentCondition {
                            type_: "Progressing".into(),
                            status: "True".into(),
                            reason: Some(
                                if w.rolling {
                                    "ReplicaSetUpdated"
                                } else {
                                    "NewReplicaSetAvailable"
                                }
                                .into(),
                            ),
                            message: Some(format!(
                                "ReplicaSet \"{}-{}\" {}",
                                w.name,
                                w.template_hash,
                                if w.rolling {
                                    "is progressing."
                                } else {
                                    "has successfully progressed."
                                }
                            )),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            })
        }
        WorkloadKind::StatefulSet => {
            let rev = format!("{}-{}", w.name, w.template_hash);
            to_json(&StatefulSet {
                metadata: m,
                spec: Some(StatefulSetSpec {
                    replicas: Some(w.replicas as i32),
                    selector: selector(&w.labels),
                    service_name: Some(w.name.clone()),
                    template: template(w, None),
                    pod_management_policy: Some("OrderedReady".into()),
                    ..Default::default()
                }),
                status: Some(StatefulSetStatus {
                    observed_generation: Some(w.generation as i64),
                    replicas: w.current as i32,
                    ready_replicas: Some(w.ready as i32),
                    available_replicas: Some(w.ready as i32),
                    current_replicas: Some(w.current as i32),
                    updated_replicas: Some(w.updated as i32),
                    current_revision: Some(rev.clone()),
                    update_revision: Some(rev),
                    ..Default::default()
                }),
            })
        }
        WorkloadKind::DaemonSet => to_json(&DaemonSet {
            metadata: m,
            spec: Some(DaemonSetSpec {
                selector: selector(&w.labels),
                template: template(w, None),
                ..Default::default()
            }),
            status: Some(DaemonSetStatus {
                observed_generation: Some(w.generation as i64),
                desired_number_scheduled: w.replicas as i32,
                current_number_scheduled: w.current as i32,
                number_ready: w.ready as i32,
                number_available: Some(w.ready as i32),
                number_unavailable: (unavailable > 0).then_some(unavailable as i32),
                updated_number_scheduled: Some(w.updated as i32),
                number_misscheduled: 0,
                ..Default::default()
            }),
        }),
    }
}

/// A Deployment's ReplicaSet, owned by it (so a pod's owner resolves to its Deployment).
pub fn replicaset(ctx: &Ctx, rv: u64, r: &ReplicaSetObj) -> ReplicaSet {
    let mut m = meta(&r.name, &r.namespace, &r.uid, rv, ctx.time(Duration::ZERO));
    m.generation = Some(1);
    m.labels = Some(r.labels.clone());
    m.annotations = Some(BTreeMap::from([
        (
            "deployment.kubernetes.io/desired-replicas".to_string(),
            r.desired.to_string(),
        ),
        (
            "deployment.kubernetes.io/max-replicas".to_string(),
            r.desired.to_string(),
        ),
        (
            "deployment.kubernetes.io/revision".to_string(),
            r.revision.to_string(),
        ),
    ]));
    m.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: r.deployment.clone(),
        uid: r.deployment_uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    ReplicaSet {
        metadata: m,
        spec: Some(ReplicaSetSpec {
            replicas: Some(r.replicas as i32),
            selector: selector(&r.labels),
            template: Some(pod_template(
                r.labels.clone(),
                &r.template_annotations,
                r.memory_gib,
                r.grace,
            )),
            ..Default::default()
        }),
        status: Some(ReplicaSetStatus {
            observed_generation: Some(1),
            replicas: r.current as i32,
            fully_labeled_replicas: Some(r.current as i32),
            ready_replicas: Some(r.ready as i32),
            available_replicas: Some(r.ready as i32),
            ..Default::default()
        }),
    }
}

pub fn pdb(ctx: &Ctx, rv: u64, p: &PdbObj) -> PodDisruptionBudget {
    let mut m = meta(&p.name, &p.namespace, &p.uid, rv, ctx.time(Duration::ZERO));
    m.generation = Some(1);
    PodDisruptionBudget {
        metadata: m,
        spec: Some(PodDisruptionBudgetSpec {
            min_available: p.min_available.map(|v| IntOrString::Int(v as i32)),
            max_unavailable: p.max_unavailable.map(|v| IntOrString::Int(v as i32)),
            selector: Some(selector(&p.selector)),
            ..Default::default()
        }),
        status: Some(PodDisruptionBudgetStatus {
            current_healthy: p.current_healthy as i32,
            desired_healthy: p.desired_healthy as i32,
            disruptions_allowed: p.disruptions_allowed as i32,
            expected_pods: p.expected_pods as i32,
            observed_generation: Some(1),
            conditions: Some(vec![Condition {
                type_: "DisruptionAllowed".into(),
                status: if p.disruptions_allowed > 0 {
                    "True"
                } else {
                    "False"
                }
                .into(),
                reason: if p.disruptions_allowed > 0 {
                    "SufficientPods"
                } else {
                    "InsufficientPods"
                }
                .into(),
                message: String::new(),
                last_transition_time: ctx.time(Duration::ZERO),
                observed_generation: Some(1),
            }]),
            ..Default::default()
        }),
    }
}

/// The `autoscaling/v1` Scale of a Deployment or StatefulSet.
pub fn scale(ctx: &Ctx, rv: u64, w: &WorkloadObj) -> Json {
    to_json(&Scale {
        metadata: meta(&w.name, &w.namespace, &w.uid, rv, ctx.time(Duration::ZERO)),
        spec: Some(ScaleSpec {
            replicas: Some(w.replicas as i32),
        }),
        status: Some(ScaleStatus {
            replicas: w.current as i32,
            selector: Some(
                w.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }),
    })
}

/// A `meta.k8s.io/v1` Table of objects (server-side printing for `kubectl get`).
pub fn table(ctx: &Ctx, rv: u64, objs: &[(u64, Obj)]) -> Json {
    let kind = objs.first().map(|(_, o)| o.kind());
    let col = |name: &str, ty: &str, priority: u8| json!({"name": name, "type": ty, "format": if name == "Name" {"name"} else {""}, "description": name, "priority": priority});
    use crate::sim::model::ObjKind as K;
    let columns = match kind {
        Some(K::Pod) => vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Status", "string", 0),
            col("Restarts", "string", 0),
            col("Age", "string", 0),
            col("IP", "string", 1),
            col("Node", "string", 1),
        ],
        Some(K::Node) => vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Roles", "string", 0),
            col("Age", "string", 0),
            col("Version", "string", 0),
            col("Internal-IP", "string", 1),
        ],
        Some(K::Deployment) => vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Up-to-date", "string", 0),
            col("Available", "string", 0),
            col("Age", "string", 0),
        ],
        Some(K::StatefulSet) => vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Age", "string", 0),
        ],
        Some(K::DaemonSet) => vec![
            col("Name", "string", 0),
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Up-to-date", "integer", 0),
            col("Available", "integer", 0),
            col("Age", "string", 0),
        ],
        Some(K::ReplicaSet) => vec![
            col("Name", "string", 0),
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Age", "string", 0),
        ],
        Some(K::PodDisruptionBudget) => vec![
            col("Name", "string", 0),
            col("Min Available", "string", 0),
            col("Max Unavailable", "string", 0),
            col("Allowed Disruptions", "integer", 0),
            col("Age", "string", 0),
        ],
        Some(K::Namespace) => vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Age", "string", 0),
        ],
        None => vec![col("Name", "string", 0), col("Age", "string", 0)],
    };
    let rows: Vec<Json> = objs
        .iter()
        .map(|(orv, o)| {
            let age0 = ctx.age(Duration::ZERO);
            let cells = match o {
                Obj::Pod(p) => {
                    let status = if p.deletion.is_some() {
                        "Terminating"
                    } else {
                        p.phase
                    };
                    json!([
                        p.name,
                        format!("{}/1", u8::from(p.ready)),
                        status,
                        p.restarts.to_string(),
                        ctx.age(p.created),
                        if p.node.is_some() {
                            ip(&p.uid, 1)
                        } else {
                            "<none>".into()
                        },
                        p.node.clone().unwrap_or_else(|| "<none>".into())
                    ])
                }
                Obj::Node(n) => {
                    let mut status = if n.ready { "Ready" } else { "NotReady" }.to_string();
                    if n.unschedulable {
                        status.push_str(",SchedulingDisabled");
                    }
                    json!([n.name, status, "<none>", age0, KUBE_VERSION, ip(&n.name, 0)])
                }
                Obj::Workload(w) => match w.kind {
                    WorkloadKind::Deployment => json!([
                        w.name,
                        format!("{}/{}", w.ready, w.replicas),
                        w.updated,
                        w.ready,
                        age0
                    ]),
                    WorkloadKind::StatefulSet => {
                        json!([w.name, format!("{}/{}", w.ready, w.replicas), age0])
                    }
                    WorkloadKind::DaemonSet => json!([
                        w.name, w.replicas, w.current, w.ready, w.updated, w.ready, age0
                    ]),
                },
                Obj::ReplicaSet(r) => json!([r.name, r.replicas, r.current, r.ready, age0]),
                Obj::Pdb(p) => json!([
                    p.name,
                    p.min_available.map_or("N/A".to_string(), |v| v.to_string()),
                    p.max_unavailable
                        .map_or("N/A".to_string(), |v| v.to_string()),
                    p.disruptions_allowed,
                    age0
                ]),
                Obj::Namespace(n) => json!([n.name, "Active", age0]),
            };
            let full = object(ctx, *orv, o);
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": full.get("metadata").cloned().unwrap_or(Json::Null),
                }
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_read_like_kubectl() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3660, "61m"),
            (4 * 3600 + 300, "4h5m"),
            (30 * 3600, "30h"),
            (3 * 86_400 + 3600, "3d1h"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(s)), want);
        }
    }
}
