//! The estate model: parameters, the event engine, actions and observations.
//!
//! See the [module docs](super) for the rules the model follows.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lang::duration::{self, format as fmt};

mod objects;
pub use objects::{
    Change, ChangeType, NamespaceObj, NodeObj, Obj, ObjKind, PdbObj, PodObj, WorkloadObj,
};

/// Fixed time an instance reboot without failover keeps the instance down.
pub const DB_REBOOT_TIME: Duration = Duration::from_secs(20);

const ONE_DAY: Duration = Duration::from_secs(86_400);
const ONE_HOUR: Duration = Duration::from_secs(3_600);

// ---------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------

/// Every parameter of the simulated estate. `Default` is the reference estate
/// (also written out in `environments/sim.yaml`); a section left out of an environment's `sim:`
/// takes the reference estate's (so `sim: {}` is the reference estate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimParams {
    /// Seed of the SplitMix64 generator (pod start-up jitter, health-check phase, kill picks).
    pub seed: u64,
    /// Cloud regions and their availability zones.
    pub regions: Vec<RegionParams>,
    /// Kubernetes (EKS-like) clusters.
    pub kubernetes: Vec<ClusterParams>,
    /// Aurora-like database clusters (each may head a global database).
    pub databases: Vec<DatabaseParams>,
    /// Route 53-like failover records.
    pub dns: Vec<DnsRecordParams>,
    /// Client-facing services (traffic model).
    pub services: Vec<ServiceParams>,
    /// Alert rules evaluated on service metrics.
    pub alerts: Vec<AlertParams>,
}

/// A region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionParams {
    /// Region name, e.g. `us-east-1`.
    pub name: String,
    /// Informational role: `primary` or `dr`.
    pub role: RegionRole,
    /// Availability zone names (unique across the estate).
    pub zones: Vec<String>,
}

/// Role of a region in the estate (informational).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegionRole {
    /// Normally serves traffic.
    Primary,
    /// Disaster-recovery standby.
    Dr,
}

/// A Kubernetes cluster spanning every zone of its region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterParams {
    /// Cluster name, e.g. `prod-east`.
    pub name: String,
    /// Region the cluster runs in (its nodes are spread over all the region's zones).
    pub region: String,
    /// Worker nodes in each zone.
    pub nodes_per_zone: u32,
    /// Scheduling capacity: pods one node can run.
    pub pods_per_node: u32,
    /// Memory of one node in GiB.
    pub node_memory_gib: f64,
    /// Node-monitor grace period: how long until a dead node is noticed NotReady.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub node_failure_detection: Duration,
    /// Toleration of the NotReady taint: pods on a NotReady node are evicted this long after it is noticed.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub pod_eviction_timeout: Duration,
    /// How long the ReplicaSet controller takes to create a replacement for a deleted pod.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub reschedule_delay: Duration,
    /// Deployments running in the cluster.
    pub deployments: Vec<DeploymentParams>,
}

/// A workload: a Deployment (pods spread across zones, the default), a StatefulSet (pods
/// `name-0`, `name-1`, ... created in order) or a DaemonSet (one pod per node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentParams {
    /// Workload name, e.g. `api`.
    pub name: String,
    /// `deployment` (default), `statefulset` or `daemonset`.
    #[serde(default, skip_serializing_if = "WorkloadKind::is_deployment")]
    pub kind: WorkloadKind,
    /// Namespace, e.g. `web`.
    pub namespace: String,
    /// Pod labels (what kill selectors match).
    pub labels: BTreeMap<String, String>,
    /// Desired replicas (deployments and statefulsets; a daemonset runs one pod per node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Time from scheduling to Ready.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub startup: Duration,
    /// Start-up varies uniformly within ± this (seeded).
    #[serde(with = "crate::lang::duration::serde_human")]
    pub startup_jitter: Duration,
    /// Memory request of one pod in GiB.
    pub memory_gib: f64,
    /// Pod termination grace period (`terminationGracePeriodSeconds`): a deleted pod stays
    /// Terminating this long unless the delete gives its own.
    #[serde(
        default = "default_termination_grace",
        skip_serializing_if = "is_default_termination_grace",
        with = "crate::lang::duration::serde_human"
    )]
    pub termination_grace: Duration,
    /// A PodDisruptionBudget over the workload's pods (evictions honour it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdb: Option<PdbParams>,
}

/// Kind of a workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// Replicas spread across zones; a ReplicaSet replaces deleted pods.
    #[default]
    Deployment,
    /// Pods with stable names `name-<ordinal>`, created in order; a deleted pod is recreated
    /// under the same name once it is gone.
    StatefulSet,
    /// One pod per node, tolerating every taint (drains skip it).
    DaemonSet,
}

impl WorkloadKind {
    fn is_deployment(&self) -> bool {
        *self == WorkloadKind::Deployment
    }

    /// The Kubernetes kind, e.g. `StatefulSet`.
    pub fn as_kind(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }

    /// Lower-case name as written in settings, e.g. `statefulset`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
        }
    }
}

/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE: Duration = Duration::from_secs(30);

fn default_termination_grace() -> Duration {
    DEFAULT_TERMINATION_GRACE
}

fn is_default_termination_grace(d: &Duration) -> bool {
    *d == DEFAULT_TERMINATION_GRACE
}

/// A PodDisruptionBudget: give exactly one of the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdbParams {
    /// At most this many of the workload's pods may be unavailable (after an eviction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<u32>,
    /// At least this many pods must stay Ready (after an eviction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<u32>,
}

/// An Aurora-like database cluster, optionally the primary of a global database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseParams {
    /// Cluster name, e.g. `orders-db`.
    pub name: String,
    /// Engine (informational), e.g. `aurora-postgresql`.
    pub engine: String,
    /// Region of the cluster.
    pub region: String,
    /// Instances (one per zone is typical); storage is shared between them.
    pub instances: Vec<DbInstanceParams>,
    /// Name of the initial writer instance.
    pub writer: String,
    /// Time a (manual or automatic) in-cluster failover takes.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub failover_time: Duration,
    /// Time until the loss of the writer is noticed and automatic failover starts.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub failure_detection: Duration,
    /// Clients write continuously; newest-write timestamps have this resolution.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub write_interval: Duration,
    /// Global database headed by this cluster, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<GlobalDbParams>,
    /// Continuous backups (point-in-time restore).
    pub backups: BackupParams,
}

/// A database instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbInstanceParams {
    /// Instance name (unique across the estate).
    pub name: String,
    /// Zone the instance runs in (must belong to the cluster's region).
    pub zone: String,
}

/// A global database: the primary cluster plus read-only secondaries in other regions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalDbParams {
    /// Global database name, e.g. `orders-global`.
    pub name: String,
    /// Secondary clusters (they share the primary's failover, detection, write and backup settings).
    pub secondaries: Vec<SecondaryClusterParams>,
    /// Storage replication lag to secondaries.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub replication_lag: Duration,
    /// Unplanned (allow-data-loss) failover time.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub failover_time: Duration,
    /// Planned switchover time (no data loss).
    #[serde(with = "crate::lang::duration::serde_human")]
    pub switchover_time: Duration,
    /// Time to detach a secondary and promote it to a standalone writer.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub detach_promote_time: Duration,
}

/// A secondary cluster of a global database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryClusterParams {
    /// Cluster name, e.g. `orders-db-dr`.
    pub name: String,
    /// Region (must differ from the primary's).
    pub region: String,
    /// Instances; the first one becomes the writer on promotion.
    pub instances: Vec<DbInstanceParams>,
}

/// Continuous backup / point-in-time-restore settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupParams {
    /// Latest restorable time = now − this.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub restorable_lag: Duration,
    /// Earliest restorable time = now − this.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub retention: Duration,
    /// Fixed part of a restore's duration.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub restore_base: Duration,
    /// Restore time per GiB of data.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub restore_per_gib: Duration,
    /// Data size in GiB.
    pub size_gib: f64,
}

/// A failover DNS record with a health check on the primary endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRecordParams {
    /// Record name, e.g. `api.example.com`.
    pub name: String,
    /// Region answered while the primary is healthy.
    pub primary_region: String,
    /// Region answered when the primary is unhealthy.
    pub secondary_region: String,
    /// Resolver cache time: clients see a changed answer this long after it changes.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub ttl: Duration,
    /// Health check on the primary endpoint.
    pub health_check: HealthCheckParams,
}

/// Health check settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckParams {
    /// Time between checks (the first check happens at a seeded offset within one interval).
    #[serde(with = "crate::lang::duration::serde_human")]
    pub interval: Duration,
    /// Consecutive failures (or successes) needed to change the health status.
    pub failure_threshold: u32,
}

/// A client-facing service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceParams {
    /// Service name, e.g. `api`.
    pub name: String,
    /// Deployment serving it (in the cluster of the region clients resolve to).
    pub deployment: String,
    /// Namespace of that deployment.
    pub namespace: String,
    /// DNS record clients resolve.
    pub dns_record: String,
    /// Database cluster the service writes to initially (it follows global failovers).
    pub database: String,
    /// Offered load, requests per second.
    pub rps: f64,
    /// Fraction of requests that write to the database.
    pub write_ratio: f64,
    /// Requests per second one Ready pod can serve.
    pub rps_per_pod: f64,
    /// Latency of an idle service.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub base_latency: Duration,
    /// Client timeout (the p99 latency when requests are dropped).
    #[serde(with = "crate::lang::duration::serde_human")]
    pub timeout: Duration,
}

/// An alert rule: `metric` above/below a threshold for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    /// Alert name, e.g. `ApiDown`.
    pub name: String,
    /// Service whose metrics are evaluated.
    pub service: String,
    /// Metric evaluated.
    pub metric: Metric,
    /// Condition: metric strictly above this (give exactly one of `above` / `below`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Condition: metric strictly below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// How long the condition must hold before the alert fires.
    #[serde(rename = "for", with = "crate::lang::duration::serde_human")]
    pub for_: Duration,
}

/// Metrics alerts can use (all about one service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Fraction of requests failing.
    ErrorRate,
    /// Fraction of requests succeeding.
    Availability,
    /// p99 latency in seconds.
    P99LatencySeconds,
    /// 1 if the database the service writes to is writable, else 0.
    DbWritable,
    /// Ready / desired pods of the deployment in the serving region.
    PodsReadyRatio,
    /// Memory utilization of the serving cluster.
    MemoryUtilization,
}

fn s(v: &str) -> String {
    v.to_string()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

impl Default for SimParams {
    fn default() -> Self {
        let zones = |r: &str| vec![format!("{r}a"), format!("{r}b"), format!("{r}c")];
        let deployments = |api_replicas: u32| {
            vec![
                DeploymentParams {
                    name: s("api"),
                    kind: WorkloadKind::Deployment,
                    namespace: s("web"),
                    labels: BTreeMap::from([(s("app"), s("api"))]),
                    replicas: Some(api_replicas),
                    startup: secs(30),
                    startup_jitter: secs(10),
                    memory_gib: 2.0,
                    termination_grace: DEFAULT_TERMINATION_GRACE,
                    pdb: Some(PdbParams {
                        max_unavailable: Some(1),
                        min_available: None,
                    }),
                },
                DeploymentParams {
                    name: s("worker"),
                    kind: WorkloadKind::Deployment,
                    namespace: s("web"),
                    labels: BTreeMap::from([(s("app"), s("worker"))]),
                    replicas: Some(3),
                    startup: secs(20),
                    startup_jitter: secs(0),
                    memory_gib: 1.0,
                    termination_grace: DEFAULT_TERMINATION_GRACE,
                    pdb: None,
                },
                DeploymentParams {
                    name: s("db"),
                    kind: WorkloadKind::StatefulSet,
                    namespace: s("data"),
                    labels: BTreeMap::from([(s("app"), s("db"))]),
                    replicas: Some(3),
                    startup: secs(15),
                    startup_jitter: secs(0),
                    memory_gib: 2.0,
                    termination_grace: secs(60),
                    pdb: Some(PdbParams {
                        max_unavailable: None,
                        min_available: Some(2),
                    }),
                },
                DeploymentParams {
                    name: s("node-exporter"),
                    kind: WorkloadKind::DaemonSet,
                    namespace: s("kube-system"),
                    labels: BTreeMap::from([(s("app"), s("node-exporter"))]),
                    replicas: None,
                    startup: secs(5),
                    startup_jitter: secs(0),
                    memory_gib: 0.25,
                    termination_grace: DEFAULT_TERMINATION_GRACE,
                    pdb: None,
                },
            ]
        };
        let cluster = |name: &str, region: &str, api: u32| ClusterParams {
            name: s(name),
            region: s(region),
            nodes_per_zone: 3,
            pods_per_node: 8,
            node_memory_gib: 16.0,
            node_failure_detection: secs(40),
            pod_eviction_timeout: secs(60),
            reschedule_delay: secs(2),
            deployments: deployments(api),
        };
        let inst = |name: &str, zone: &str| DbInstanceParams {
            name: s(name),
            zone: s(zone),
        };
        SimParams {
            seed: 42,
            regions: vec![
                RegionParams {
                    name: s("us-east-1"),
                    role: RegionRole::Primary,
                    zones: zones("us-east-1"),
                },
                RegionParams {
                    name: s("us-west-2"),
                    role: RegionRole::Dr,
                    zones: zones("us-west-2"),
                },
            ],
            kubernetes: vec![
                cluster("prod-east", "us-east-1", 6),
                cluster("prod-west", "us-west-2", 2),
            ],
            databases: vec![DatabaseParams {
                name: s("orders-db"),
                engine: s("aurora-postgresql"),
                region: s("us-east-1"),
                instances: vec![
                    inst("orders-db-1", "us-east-1a"),
                    inst("orders-db-2", "us-east-1b"),
                    inst("orders-db-3", "us-east-1c"),
                ],
                writer: s("orders-db-1"),
                failover_time: secs(35),
                failure_detection: secs(15),
                write_interval: secs(1),
                global: Some(GlobalDbParams {
                    name: s("orders-global"),
                    secondaries: vec![SecondaryClusterParams {
                        name: s("orders-db-dr"),
                        region: s("us-west-2"),
                        instances: vec![inst("orders-db-dr-1", "us-west-2a")],
                    }],
                    replication_lag: secs(1),
                    failover_time: secs(120),
                    switchover_time: secs(180),
                    detach_promote_time: secs(60),
                }),
                backups: BackupParams {
                    restorable_lag: secs(300),
                    retention: secs(7 * 86_400),
                    restore_base: secs(480),
                    restore_per_gib: secs(5),
                    size_gib: 50.0,
                },
            }],
            dns: vec![DnsRecordParams {
                name: s("api.example.com"),
                primary_region: s("us-east-1"),
                secondary_region: s("us-west-2"),
                ttl: secs(60),
                health_check: HealthCheckParams {
                    interval: secs(30),
                    failure_threshold: 3,
                },
            }],
            services: vec![ServiceParams {
                name: s("api"),
                deployment: s("api"),
                namespace: s("web"),
                dns_record: s("api.example.com"),
                database: s("orders-db"),
                rps: 200.0,
                write_ratio: 0.2,
                rps_per_pod: 50.0,
                base_latency: Duration::from_millis(80),
                timeout: secs(30),
            }],
            alerts: vec![
                AlertParams {
                    name: s("ApiHighErrorRate"),
                    service: s("api"),
                    metric: Metric::ErrorRate,
                    above: Some(0.05),
                    below: None,
                    for_: secs(60),
                },
                AlertParams {
                    name: s("ApiDown"),
                    service: s("api"),
                    metric: Metric::Availability,
                    above: None,
                    below: Some(0.5),
                    for_: secs(30),
                },
                AlertParams {
                    name: s("DatabaseWriterUnavailable"),
                    service: s("api"),
                    metric: Metric::DbWritable,
                    above: None,
                    below: Some(1.0),
                    for_: secs(30),
                },
            ],
        }
    }
}

/// Collects validation problems, each naming a field path.
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, path: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.0.push(format!("{path}: {msg}"));
    }

    fn duration(&mut self, path: &str, d: Duration, min_positive: bool, max: Duration) {
        if min_positive && d.is_zero() {
            self.push(path, "must be greater than 0s");
        } else if d > max {
            self.push(
                path,
                format_args!("{} is absurdly long; use at most {}", fmt(d), fmt(max)),
            );
        }
    }

    fn positive(&mut self, path: &str, v: f64, max: f64) {
        if !v.is_finite() || v <= 0.0 {
            self.push(path, format_args!("must be a positive number (got {v})"));
        } else if v > max {
            self.push(
                path,
                format_args!("{v} is absurdly large; use at most {max}"),
            );
        }
    }

    fn unique<'a>(&mut self, what: &str, items: impl Iterator<Item = (String, &'a str)>) {
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        for (path, name) in items {
            if name.trim().is_empty() {
                self.push(&path, format_args!("{what} name must not be empty"));
            } else if let Some(first) = seen.get(name) {
                self.push(
                    &path,
                    format_args!("duplicate {what} `{name}` (already used at {first}); rename one"),
                );
            } else {
                seen.insert(name, path);
            }
        }
    }
}

fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<&str> = items.into_iter().collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

impl SimParams {
    fn region(&self, name: &str) -> Option<&RegionParams> {
        self.regions.iter().find(|r| r.name == name)
    }

    fn check_region(&self, p: &mut Problems, path: &str, name: &str) -> Option<&RegionParams> {
        let r = self.region(name);
        if r.is_none() {
            p.push(
                path,
                format_args!(
                    "unknown region `{name}`; use one of: {}",
                    list(self.regions.iter().map(|r| r.name.as_str()))
                ),
            );
        }
        r
    }

    fn check_instances(
        &self,
        p: &mut Problems,
        path: &str,
        region: Option<&RegionParams>,
        instances: &[DbInstanceParams],
    ) {
        if instances.is_empty() {
            p.push(path, "needs at least one instance");
        }
        if let Some(r) = region {
            for (k, i) in instances.iter().enumerate() {
                if !r.zones.contains(&i.zone) {
                    p.push(
                        format_args!("{path}[{k}].zone"),
                        format_args!(
                            "zone `{}` is not in the cluster's region {}; use one of: {}",
                            i.zone,
                            r.name,
                            list(r.zones.iter().map(String::as_str))
                        ),
                    );
                }
            }
        }
    }

    /// Every problem with these parameters, each naming the field path and what to do.
    /// Empty when the parameters are usable.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Problems(Vec::new());
        if self.regions.is_empty() {
            p.push("regions", "at least one region is needed");
        }
        p.unique(
            "region",
            self.regions
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("regions[{i}].name"), r.name.as_str())),
        );
        p.unique(
            "zone",
            self.regions.iter().enumerate().flat_map(|(i, r)| {
                r.zones
                    .iter()
                    .enumerate()
                    .map(move |(j, z)| (format!("regions[{i}].zones[{j}]"), z.as_str()))
            }),
        );
        for (i, r) in self.regions.iter().enumerate() {
            if r.zones.is_empty() {
                p.push(format_args!("regions[{i}].zones"), "list at least one zone");
            }
        }
        if self
            .regions
            .iter()
            .filter(|r| r.role == RegionRole::Primary)
            .count()
            > 1
        {
            p.push("regions", "only one region may have role `primary`");
        }

        // Kubernetes
        p.unique(
            "cluster",
            self.kubernetes
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("kubernetes[{i}].name"), c.name.as_str())),
        );
        for (i, c) in self.kubernetes.iter().enumerate() {
            let at = format!("kubernetes[{i}]");
            self.check_region(&mut p, &format!("{at}.region"), &c.region);
            if c.nodes_per_zone == 0 {
                p.push(
                    format_args!("{at}.nodes_per_zone"),
                    "zero nodes: a cluster needs at least 1 node per zone",
                );
            } else if c.nodes_per_zone > 1000 {
                p.push(
                    format_args!("{at}.nodes_per_zone"),
                    "absurd; use at most 1000",
                );
            }
            if c.pods_per_node == 0 || c.pods_per_node > 1000 {
                p.push(
                    format_args!("{at}.pods_per_node"),
                    "must be between 1 and 1000",
                );
            }
            p.positive(
                &format!("{at}.node_memory_gib"),
                c.node_memory_gib,
                65_536.0,
            );
            p.duration(
                &format!("{at}.node_failure_detection"),
                c.node_failure_detection,
                false,
                ONE_HOUR,
            );
            p.duration(
                &format!("{at}.pod_eviction_timeout"),
                c.pod_eviction_timeout,
                false,
                ONE_DAY,
            );
            p.duration(
                &format!("{at}.reschedule_delay"),
                c.reschedule_delay,
                false,
                ONE_HOUR,
            );
            p.unique(
                "deployment",
                c.deployments
                    .iter()
                    .enumerate()
                    .map(|(j, d)| (format!("{at}.deployments[{j}].name"), d.name.as_str())),
            );
            for (j, d) in c.deployments.iter().enumerate() {
                let dp = format!("{at}.deployments[{j}]");
                if d.namespace.trim().is_empty() {
                    p.push(format_args!("{dp}.namespace"), "must not be empty");
                }
                if d.labels.is_empty() {
                    p.push(
                        format_args!("{dp}.labels"),
                        "give at least one label, e.g. `app: api`",
                    );
                }
                match (d.kind, d.replicas) {
                    (WorkloadKind::DaemonSet, Some(_)) => p.push(
                        format_args!("{dp}.replicas"),
                        "a daemonset runs one pod per node; remove `replicas`",
                    ),
                    (WorkloadKind::DaemonSet, None) => {}
                    (k, None) => p.push(
                        format_args!("{dp}.replicas"),
                        format_args!("a {} needs `replicas`, e.g. `replicas: 3`", k.as_str()),
                    ),
                    (_, Some(r)) if r > 10_000 => {
                        p.push(format_args!("{dp}.replicas"), "absurd; use at most 10000")
                    }
                    _ => {}
                }
                p.duration(
                    &format!("{dp}.termination_grace"),
                    d.termination_grace,
                    false,
                    ONE_HOUR,
                );
                if let Some(b) = &d.pdb {
                    match (b.max_unavailable, b.min_available) {
                        (Some(_), Some(_)) | (None, None) => p.push(
                            format_args!("{dp}.pdb"),
                            "give exactly one of `max_unavailable` or `min_available`",
                        ),
                        _ => {}
                    }
                    if d.kind == WorkloadKind::DaemonSet {
                        p.push(
                            format_args!("{dp}.pdb"),
                            "drains skip daemonset pods, so a budget on them means nothing; remove it",
                        );
                    }
                }
                p.duration(&format!("{dp}.startup"), d.startup, false, ONE_HOUR);
                if d.startup_jitter > d.startup {
                    p.push(
                        format_args!("{dp}.startup_jitter"),
                        format_args!(
                            "{} exceeds startup {}; use at most the startup time",
                            fmt(d.startup_jitter),
                            fmt(d.startup)
                        ),
                    );
                }
                p.positive(
                    &format!("{dp}.memory_gib"),
                    d.memory_gib,
                    c.node_memory_gib.max(0.0),
                );
            }
        }

        // Databases
        let mut cluster_names = Vec::new();
        let mut instance_names = Vec::new();
        let mut global_names = Vec::new();
        for (i, d) in self.databases.iter().enumerate() {
            let at = format!("databases[{i}]");
            cluster_names.push((format!("{at}.name"), d.name.as_str()));
            let region = self.check_region(&mut p, &format!("{at}.region"), &d.region);
            self.check_instances(&mut p, &format!("{at}.instances"), region, &d.instances);
            for (k, inst) in d.instances.iter().enumerate() {
                instance_names.push((format!("{at}.instances[{k}].name"), inst.name.as_str()));
            }
            if !d.instances.iter().any(|x| x.name == d.writer) {
                p.push(
                    format_args!("{at}.writer"),
                    format_args!(
                        "`{}` is not one of the cluster's instances; use one of: {}",
                        d.writer,
                        list(d.instances.iter().map(|x| x.name.as_str()))
                    ),
                );
            }
            p.duration(
                &format!("{at}.failover_time"),
                d.failover_time,
                true,
                ONE_HOUR,
            );
            p.duration(
                &format!("{at}.failure_detection"),
                d.failure_detection,
                false,
                ONE_HOUR,
            );
            p.duration(
                &format!("{at}.write_interval"),
                d.write_interval,
                true,
                ONE_HOUR,
            );
            let b = &d.backups;
            p.duration(
                &format!("{at}.backups.restorable_lag"),
                b.restorable_lag,
                false,
                ONE_DAY,
            );
            p.duration(
                &format!("{at}.backups.retention"),
                b.retention,
                true,
                duration::MAX,
            );
            if b.retention <= b.restorable_lag {
                p.push(
                    format_args!("{at}.backups.retention"),
                    "must be longer than restorable_lag, or nothing is ever restorable",
                );
            }
            p.duration(
                &format!("{at}.backups.restore_base"),
                b.restore_base,
                false,
                ONE_DAY,
            );
            p.duration(
                &format!("{at}.backups.restore_per_gib"),
                b.restore_per_gib,
                false,
                ONE_HOUR,
            );
            p.positive(&format!("{at}.backups.size_gib"), b.size_gib, 1_000_000.0);
            if let Some(g) = &d.global {
                let gp = format!("{at}.global");
                global_names.push((format!("{gp}.name"), g.name.as_str()));
                if g.secondaries.is_empty() {
                    p.push(
                        format_args!("{gp}.secondaries"),
                        "list at least one secondary cluster",
                    );
                }
                for (k, sc) in g.secondaries.iter().enumerate() {
                    let sp = format!("{gp}.secondaries[{k}]");
                    cluster_names.push((format!("{sp}.name"), sc.name.as_str()));
                    let r = self.check_region(&mut p, &format!("{sp}.region"), &sc.region);
                    if sc.region == d.region {
                        p.push(
                            format_args!("{sp}.region"),
                            "a secondary must be in another region than the primary",
                        );
                    }
                    self.check_instances(&mut p, &format!("{sp}.instances"), r, &sc.instances);
                    for (m, inst) in sc.instances.iter().enumerate() {
                        instance_names
                            .push((format!("{sp}.instances[{m}].name"), inst.name.as_str()));
                    }
                }
                p.duration(
                    &format!("{gp}.replication_lag"),
                    g.replication_lag,
                    false,
                    ONE_HOUR,
                );
                p.duration(
                    &format!("{gp}.failover_time"),
                    g.failover_time,
                    true,
                    ONE_DAY,
                );
                p.duration(
                    &format!("{gp}.switchover_time"),
                    g.switchover_time,
                    true,
                    ONE_DAY,
                );
                p.duration(
                    &format!("{gp}.detach_promote_time"),
                    g.detach_promote_time,
                    true,
                    ONE_DAY,
                );
            }
        }
        p.unique(
            "database cluster",
            cluster_names.iter().map(|(a, b)| (a.clone(), *b)),
        );
        p.unique(
            "database instance",
            instance_names.iter().map(|(a, b)| (a.clone(), *b)),
        );
        p.unique(
            "global database",
            global_names.iter().map(|(a, b)| (a.clone(), *b)),
        );

        // DNS
        p.unique(
            "dns record",
            self.dns
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("dns[{i}].name"), r.name.as_str())),
        );
        for (i, r) in self.dns.iter().enumerate() {
            let at = format!("dns[{i}]");
            self.check_region(&mut p, &format!("{at}.primary_region"), &r.primary_region);
            self.check_region(
                &mut p,
                &format!("{at}.secondary_region"),
                &r.secondary_region,
            );
            if r.primary_region == r.secondary_region {
                p.push(
                    format_args!("{at}.secondary_region"),
                    "must differ from primary_region",
                );
            }
            p.duration(&format!("{at}.ttl"), r.ttl, true, ONE_DAY);
            p.duration(
                &format!("{at}.health_check.interval"),
                r.health_check.interval,
                true,
                ONE_HOUR,
            );
            if r.health_check.failure_threshold == 0 || r.health_check.failure_threshold > 10 {
                p.push(
                    format_args!("{at}.health_check.failure_threshold"),
                    "must be between 1 and 10",
                );
            }
        }

        // Services
        p.unique(
            "service",
            self.services
                .iter()
                .enumerate()
                .map(|(i, x)| (format!("services[{i}].name"), x.name.as_str())),
        );
        for (i, svc) in self.services.iter().enumerate() {
            let at = format!("services[{i}]");
            let found = self.kubernetes.iter().any(|c| {
                c.deployments
                    .iter()
                    .any(|d| d.name == svc.deployment && d.namespace == svc.namespace)
            });
            if !found {
                p.push(
                    format_args!("{at}.deployment"),
                    format_args!(
                        "no cluster has deployment `{}` in namespace `{}`; deployments: {}",
                        svc.deployment,
                        svc.namespace,
                        list(
                            self.kubernetes
                                .iter()
                                .flat_map(|c| c.deployments.iter().map(|d| d.name.as_str()))
                        )
                    ),
                );
            }
            if !self.dns.iter().any(|r| r.name == svc.dns_record) {
                p.push(
                    format_args!("{at}.dns_record"),
                    format_args!(
                        "unknown record `{}`; use one of: {}",
                        svc.dns_record,
                        list(self.dns.iter().map(|r| r.name.as_str()))
                    ),
                );
            }
            if !self.databases.iter().any(|d| d.name == svc.database) {
                p.push(
                    format_args!("{at}.database"),
                    format_args!(
                        "unknown database cluster `{}`; use one of: {}",
                        svc.database,
                        list(self.databases.iter().map(|d| d.name.as_str()))
                    ),
                );
            }
            p.positive(&format!("{at}.rps"), svc.rps, 10_000_000.0);
            if !(0.0..=1.0).contains(&svc.write_ratio) {
                p.push(format_args!("{at}.write_ratio"), "must be between 0 and 1");
            }
            p.positive(&format!("{at}.rps_per_pod"), svc.rps_per_pod, 10_000_000.0);
            p.duration(
                &format!("{at}.base_latency"),
                svc.base_latency,
                true,
                ONE_HOUR,
            );
            p.duration(&format!("{at}.timeout"), svc.timeout, true, ONE_HOUR);
            if svc.base_latency >= svc.timeout {
                p.push(
                    format_args!("{at}.timeout"),
                    "must be longer than base_latency",
                );
            }
        }

        // Alerts
        p.unique(
            "alert",
            self.alerts
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("alerts[{i}].name"), a.name.as_str())),
        );
        for (i, a) in self.alerts.iter().enumerate() {
            let at = format!("alerts[{i}]");
            if !self.services.iter().any(|x| x.name == a.service) {
                p.push(
                    format_args!("{at}.service"),
                    format_args!(
                        "unknown service `{}`; use one of: {}",
                        a.service,
                        list(self.services.iter().map(|x| x.name.as_str()))
                    ),
                );
            }
            match (a.above, a.below) {
                (Some(_), Some(_)) | (None, None) => {
                    p.push(&at, "give exactly one of `above` or `below`")
                }
                (Some(v), None) | (None, Some(v)) if !v.is_finite() => {
                    p.push(&at, "threshold must be a finite number")
                }
                _ => {}
            }
            p.duration(&format!("{at}.for"), a.for_, false, ONE_DAY);
        }
        p.0
    }
}

// ---------------------------------------------------------------------------
// Errors, views, randomness
// ---------------------------------------------------------------------------

/// Why an action or observation could not be carried out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// The parameters are unusable; every problem is listed.
    #[error("invalid sim parameters:\n  - {}", .0.join("\n  - "))]
    InvalidParams(Vec<String>),
    /// A name that does not exist; lists the valid ones.
    #[error("no {kind} `{name}` in the estate; {kind}s: {valid}")]
    Unknown {
        /// What kind of thing (zone, region, cluster, ...).
        kind: &'static str,
        /// The name given.
        name: String,
        /// Valid names, comma separated.
        valid: String,
    },
    /// The zone exists but not in that cluster's region.
    #[error("zone `{zone}` is not in cluster `{cluster}`; its zones: {valid}")]
    ZoneNotInCluster {
        /// Zone given.
        zone: String,
        /// Cluster given.
        cluster: String,
        /// Zones of the cluster.
        valid: String,
    },
    /// A kill selector matched nothing.
    #[error(
        "no pods match selector {selector} in namespace `{namespace}` of cluster `{cluster}`; label sets there: {valid}"
    )]
    NoMatchingPods {
        /// Cluster.
        cluster: String,
        /// Namespace.
        namespace: String,
        /// Selector, rendered `k=v,...`.
        selector: String,
        /// Label sets of deployments in that namespace.
        valid: String,
    },
    /// The action is not possible in the current state; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// An eviction a PodDisruptionBudget does not allow now (the API's 429).
    #[error(
        "cannot evict pod {namespace}/{pod}: it would violate PodDisruptionBudget `{pdb}` ({message})"
    )]
    Budget {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
        /// The budget.
        pdb: String,
        /// `The disruption budget api needs 5 healthy pods and has 5 currently`.
        message: String,
    },
}

/// How many of the matching pods a kill takes (the Kubernetes semantics all backends share).
pub use crate::lang::kubernetes::KillMode;

/// Which side of a failover record to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsTarget {
    /// The primary region.
    Primary,
    /// The secondary region.
    Secondary,
}

/// One notable controller reaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EstateEvent {
    /// Time since estate start.
    #[serde(with = "crate::lang::duration::serde_human")]
    pub at: Duration,
    /// Component, e.g. `route53 api.example.com`, `db orders-db`, `k8s prod-east`.
    pub component: String,
    /// Plain-English message.
    pub message: String,
}

/// Service metrics at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    /// Fraction of requests succeeding.
    pub availability: f64,
    /// Fraction of requests failing.
    pub error_rate: f64,
    /// p99 latency in seconds.
    pub p99_latency_seconds: f64,
    /// Region clients resolve to.
    pub serving_region: String,
    /// Offered load.
    pub rps: f64,
    /// Whether the database the service writes to is writable.
    pub db_writable: bool,
    /// Database cluster the service writes to.
    pub database: String,
}

/// Pods matching a selector, as the Kubernetes API shows them (see [`summarize_pods`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodsView {
    /// Desired pods of the workloads the selector matches (their replica counts).
    pub desired: u32,
    /// Matching pods, not counting Terminating ones.
    pub total: u32,
    /// Pods whose Ready condition is true (not on a node marked NotReady, not Terminating).
    pub ready: u32,
    /// Pods scheduled and starting.
    pub starting: u32,
    /// Pods not scheduled (waiting for capacity).
    pub pending: u32,
    /// Pods being deleted (grace period running, or stuck on a node that is down).
    pub terminating: u32,
    /// Live pods on nodes the node controller marked NotReady (not yet evicted).
    pub unreachable: u32,
    /// ready / desired (1 when desired is 0).
    pub ready_ratio: f64,
    /// ready_ratio × 100.
    pub ready_percent: f64,
    /// Restarts of the matching workloads so far: replacement pods their controllers created for
    /// disrupted ones, plus container restarts (a node coming back restarts its pods).
    pub restarts: u64,
}

/// Summarize pods into a [`PodsView`] (`desired` from their workloads, `restarts` from the
/// restart history).
pub fn summarize_pods(pods: &[&PodObj], desired: u32, restarts: u64) -> PodsView {
    let mut v = PodsView {
        desired,
        total: 0,
        ready: 0,
        starting: 0,
        pending: 0,
        terminating: 0,
        unreachable: 0,
        ready_ratio: 1.0,
        ready_percent: 100.0,
        restarts,
    };
    for p in pods {
        if p.deletion.is_some() {
            v.terminating += 1;
            continue;
        }
        v.total += 1;
        if p.node.is_none() {
            v.pending += 1;
        } else if p.ready {
            v.ready += 1;
        } else if p.unreachable {
            v.unreachable += 1;
        } else {
            v.starting += 1;
        }
    }
    // Against what the controllers want; bare pods (no controller) against those that exist,
    // as the Kubernetes backend reports them.
    if desired > 0 {
        v.ready_ratio = f64::from(v.ready) / f64::from(desired);
    } else if v.total > 0 {
        v.ready_ratio = f64::from(v.ready) / f64::from(v.total);
    } else if v.terminating > 0 {
        v.ready_ratio = 0.0;
    }
    v.ready_percent = v.ready_ratio * 100.0;
    v
}

/// Nodes of a cluster (optionally one zone), as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodesView {
    /// Nodes whose Ready condition is True (a dead node counts until the node controller marks it).
    pub ready: u32,
    /// All nodes.
    pub total: u32,
    /// Ready, not cordoned and without a NoSchedule/NoExecute taint.
    pub schedulable: u32,
    /// ready / total (1 when there are none).
    pub ready_ratio: f64,
}

/// A database cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbClusterView {
    /// `available`, `failing-over`, `unavailable`, `creating` or `promoting`.
    pub status: String,
    /// `primary`, `secondary` or `standalone`.
    pub role: String,
    /// Writer instance (when available and not a secondary).
    pub writer: Option<String>,
    /// Zone of the writer.
    pub writer_zone: Option<String>,
    /// Accepts writes now.
    pub writable: bool,
    /// Time of the newest write the cluster holds (seconds since estate start).
    pub latest_write_secs: Option<f64>,
    /// Latest restorable time (seconds since estate start).
    pub latest_restorable_secs: Option<f64>,
}

/// A failover DNS record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsView {
    /// Region the authoritative servers answer.
    pub authoritative: String,
    /// Region resolvers (clients) get now.
    pub answer: String,
    /// Health-check status of the primary.
    pub primary_healthy: bool,
    /// Record TTL in seconds.
    pub ttl_seconds: f64,
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertView {
    /// `inactive`, `pending` or `firing`.
    pub state: String,
    /// When the current state began (seconds since estate start); None when inactive.
    pub since_secs: Option<f64>,
}

/// SplitMix64: tiny, seeded, deterministic.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn dms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn floor_to(t: Duration, step: Duration) -> Duration {
    let step = ms(step).max(1);
    dms(ms(t) / step * step)
}

fn secs_f(d: Duration) -> f64 {
    d.as_secs_f64()
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    PodReady(u64),
    /// A terminating pod's grace period ended.
    PodGone(u64),
    Reconcile(usize),
    NodesNoticed {
        cluster: usize,
        zone: String,
        epoch: u64,
    },
    EvictZone {
        cluster: usize,
        zone: String,
        epoch: u64,
    },
    DbDetect {
        db: usize,
        epoch: u64,
    },
    DbTransitionDone {
        db: usize,
        epoch: u64,
    },
    InstanceBack {
        db: usize,
        inst: usize,
        until: Duration,
    },
    HealthCheck(usize),
    DnsPropagated(usize),
    AlertFor {
        alert: usize,
        epoch: u64,
    },
}

#[derive(Debug, Clone)]
struct Queued {
    at: Duration,
    seq: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Reversed so the max-heap pops the earliest (time, seq) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Debug, Clone)]
struct Node {
    cluster: usize,
    name: String,
    zone: String,
    schedulable: bool,
    taints: Vec<Taint>,
    /// Since when the node controller has marked the node NotReady (condition Unknown).
    not_ready_since: Option<Duration>,
}

/// Effect of a node taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaintEffect {
    /// New pods that do not tolerate it are not scheduled on the node.
    NoSchedule,
    /// The scheduler avoids the node when it can.
    PreferNoSchedule,
    /// As NoSchedule, and pods already there that do not tolerate it are evicted.
    NoExecute,
}

impl TaintEffect {
    /// The API's spelling, e.g. `NoExecute`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }

    /// Parse the API's spelling.
    pub fn parse(s: &str) -> Option<TaintEffect> {
        match s {
            "NoSchedule" => Some(TaintEffect::NoSchedule),
            "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
            "NoExecute" => Some(TaintEffect::NoExecute),
            _ => None,
        }
    }
}

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
struct Lost {
    pod: String,
    node: Option<String>,
    at: Duration,
}

#[derive(Debug, Clone)]
struct Deployment {
    cluster: usize,
    p: DeploymentParams,
    /// Desired replicas (deployments and statefulsets).
    replicas: u32,
    /// Replacement pods created for disrupted ones.
    restarts: u64,
    /// Disrupted pods not yet replaced, oldest first.
    lost: Vec<Lost>,
    /// `metadata.generation`: bumped by every spec change (scale, restart).
    generation: u64,
    /// Pod template revision (rollout restarts bump it; pods carry its hash).
    revision: u64,
    /// Annotations of the pod template (`kubectl rollout restart` sets
    /// `kubectl.kubernetes.io/restartedAt`); changing them rolls the pods.
    template_annotations: BTreeMap<String, String>,
    /// A rolling restart is in progress.
    rolling: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Starting,
    Ready,
}

/// Why pods are deleted: only disruptions are replaced "as recovery" (counted as restarts and
/// timed as pod recoveries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Disruption,
    ScaleDown,
    Rollout,
}

#[derive(Debug, Clone, Copy)]
struct Deleting {
    since: Duration,
    grace: Duration,
    /// When the pod is gone; `None` while its node is down (the kubelet cannot confirm).
    gone_at: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Pod {
    name: String,
    dep: usize,
    node: Option<usize>,
    /// DaemonSet pods run on this node only.
    pin: Option<usize>,
    /// StatefulSet ordinal.
    ordinal: Option<u32>,
    phase: Phase,
    startup: Duration,
    created: Duration,
    scheduled: Option<Duration>,
    /// When the pod (last) became Ready.
    ready_at: Option<Duration>,
    /// When its containers will be Ready (a stale PodReady event is ignored).
    ready_due: Option<Duration>,
    /// Container restarts (a node that comes back restarts its pods' containers).
    container_restarts: u32,
    /// Template revision the pod was created from.
    revision: u64,
    deleting: Option<Deleting>,
    /// The disrupted pod this one replaces.
    replaces: Option<Lost>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Primary,
    Secondary,
    Standalone,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
            Role::Standalone => "standalone",
        }
    }
}

#[derive(Debug, Clone)]
struct DbInstance {
    name: String,
    zone: String,
    rebooting_until: Option<Duration>,
}

#[derive(Debug, Clone)]
enum TransitionKind {
    FailingOver { target: usize, reason: String },
    Promoting { what: String },
    Creating { serve: Vec<usize>, took: Duration },
}

#[derive(Debug, Clone)]
struct DbCluster {
    name: String,
    region: String,
    instances: Vec<DbInstance>,
    writer: usize,
    role: Role,
    global: Option<usize>,
    failover_time: Duration,
    failure_detection: Duration,
    write_interval: Duration,
    backups: BackupParams,
    transition: Option<(TransitionKind, Duration)>,
    outage: bool,
    epoch: u64,
    created_at: Duration,
    /// Newest write held when the cluster got its data (promotion, restore).
    inherited: Option<Duration>,
    /// Periods during which the cluster took writes: (start, end or open).
    spans: Vec<(Duration, Option<Duration>)>,
}

#[derive(Debug, Clone)]
struct Global {
    name: String,
    primary: usize,
    members: Vec<usize>,
    p: GlobalDbParams,
}

#[derive(Debug, Clone)]
struct DnsState {
    p: DnsRecordParams,
    fails: u32,
    oks: u32,
    primary_healthy: bool,
    forced: Option<DnsTarget>,
    history: Vec<(Duration, DnsTarget)>,
    answered: DnsTarget,
}

#[derive(Debug, Clone)]
struct AlertState {
    p: AlertParams,
    svc: usize,
    pending_since: Option<Duration>,
    firing_since: Option<Duration>,
    epoch: u64,
}

#[derive(Debug, Clone)]
struct ServiceState {
    p: ServiceParams,
    record: usize,
    target: usize,
    writing: bool,
}

#[derive(Debug, Clone, Copy)]
struct Metrics {
    availability: f64,
    error_rate: f64,
    p99: f64,
    db_writable: bool,
    pods_ready_ratio: f64,
    memory: f64,
    reaching: bool,
}

/// The simulated estate: parameters, clock, event queue and state.
#[derive(Debug, Clone)]
pub struct Estate {
    params: SimParams,
    now: Duration,
    queue: BinaryHeap<Queued>,
    seq: u64,
    rng: SplitMix64,
    log: Vec<EstateEvent>,
    /// zone → (lost, epoch)
    zones: BTreeMap<String, (bool, u64)>,
    unreachable_regions: Vec<String>,
    nodes: Vec<Node>,
    deployments: Vec<Deployment>,
    pods: BTreeMap<u64, Pod>,
    next_pod: u64,
    /// Replaced pods' recovery timings, in the order replacements became Ready.
    recoveries: Vec<PodRecovery>,
    /// Restarts as they happen: (time, workload, count) for replacement pods created and
    /// container restarts.
    restart_log: Vec<(Duration, usize, u32)>,
    /// The Kubernetes objects as last published, and their change feed.
    feed: objects::Feed,
    dbs: Vec<DbCluster>,
    globals: Vec<Global>,
    dns: Vec<DnsState>,
    services: Vec<ServiceState>,
    alerts: Vec<AlertState>,
}

/// `n` characters of Kubernetes' "safe" alphabet derived from `seed` (name suffixes, hashes).
fn safe_chars(seed: u64, n: usize) -> String {
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
fn fnv(s: &str) -> u64 {
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

fn matches(labels: &BTreeMap<String, String>, sel: &BTreeMap<String, String>) -> bool {
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl Estate {
    /// Build the estate in its steady state at time 0 (every pod Ready, DNS on the primary).
    pub fn new(params: SimParams, seed: u64) -> Result<Estate, SimError> {
        let problems = params.validate();
        if !problems.is_empty() {
            return Err(SimError::InvalidParams(problems));
        }
        let mut e = Estate {
            params: params.clone(),
            now: Duration::ZERO,
            queue: BinaryHeap::new(),
            seq: 0,
            rng: SplitMix64(seed),
            log: Vec::new(),
            zones: BTreeMap::new(),
            unreachable_regions: Vec::new(),
            nodes: Vec::new(),
            deployments: Vec::new(),
            pods: BTreeMap::new(),
            next_pod: 0,
            recoveries: Vec::new(),
            restart_log: Vec::new(),
            feed: objects::Feed::default(),
            dbs: Vec::new(),
            globals: Vec::new(),
            dns: Vec::new(),
            services: Vec::new(),
            alerts: Vec::new(),
        };
        for r in &params.regions {
            for z in &r.zones {
                e.zones.insert(z.clone(), (false, 0));
            }
        }
        for (ci, c) in params.kubernetes.iter().enumerate() {
            let region = params.region(&c.region).expect("validated");
            for z in &region.zones {
                for n in 1..=c.nodes_per_zone {
                    e.nodes.push(Node {
                        cluster: ci,
                        name: format!("{z}-{n}"),
                        zone: z.clone(),
                        schedulable: true,
                        taints: Vec::new(),
                        not_ready_since: None,
                    });
                }
            }
            for d in &c.deployments {
                e.deployments.push(Deployment {
                    cluster: ci,
                    p: d.clone(),
                    replicas: d.replicas.unwrap_or(0),
                    restarts: 0,
                    lost: Vec::new(),
                    generation: 1,
                    revision: 1,
                    template_annotations: BTreeMap::new(),
                    rolling: false,
                });
            }
        }
        // Initial pods: already Ready at time 0. Deployments first (in order), so the seeded
        // start-up jitter draws do not depend on the other workloads.
        let order: Vec<usize> = (0..e.deployments.len())
            .filter(|&d| e.kind(d) == WorkloadKind::Deployment)
            .chain((0..e.deployments.len()).filter(|&d| e.kind(d) != WorkloadKind::Deployment))
            .collect();
        for di in order {
            let ids: Vec<u64> = match e.kind(di) {
                WorkloadKind::Deployment => (0..e.deployments[di].replicas)
                    .map(|_| e.create_pod(di, false))
                    .collect(),
                WorkloadKind::StatefulSet => (0..e.deployments[di].replicas)
                    .map(|o| e.new_pod(di, Some(o), None))
                    .collect(),
                WorkloadKind::DaemonSet => e
                    .cluster_nodes(e.deployments[di].cluster)
                    .into_iter()
                    .map(|n| e.new_pod(di, None, Some(n)))
                    .collect(),
            };
            for id in ids {
                if let Some(p) = e.pods.get_mut(&id)
                    && p.phase == Phase::Starting
                {
                    p.phase = Phase::Ready;
                    p.ready_at = Some(Duration::ZERO);
                }
            }
        }
        e.queue.clear();
        let mk_inst = |v: &[DbInstanceParams]| {
            v.iter()
                .map(|i| DbInstance {
                    name: i.name.clone(),
                    zone: i.zone.clone(),
                    rebooting_until: None,
                })
                .collect::<Vec<_>>()
        };
        for d in &params.databases {
            let primary = e.dbs.len();
            e.dbs.push(DbCluster {
                name: d.name.clone(),
                region: d.region.clone(),
                instances: mk_inst(&d.instances),
                writer: d
                    .instances
                    .iter()
                    .position(|i| i.name == d.writer)
                    .unwrap_or(0),
                role: if d.global.is_some() {
                    Role::Primary
                } else {
                    Role::Standalone
                },
                global: None,
                failover_time: d.failover_time,
                failure_detection: d.failure_detection,
                write_interval: d.write_interval,
                backups: d.backups.clone(),
                transition: None,
                outage: false,
                epoch: 0,
                created_at: Duration::ZERO,
                inherited: None,
                spans: Vec::new(),
            });
            if let Some(g) = &d.global {
                let gi = e.globals.len();
                e.dbs[primary].global = Some(gi);
                let mut members = vec![primary];
                for sc in &g.secondaries {
                    members.push(e.dbs.len());
                    let mut c = e.dbs[primary].clone();
                    c.name = sc.name.clone();
                    c.region = sc.region.clone();
                    c.instances = mk_inst(&sc.instances);
                    c.writer = 0;
                    c.role = Role::Secondary;
                    e.dbs.push(c);
                }
                e.globals.push(Global {
                    name: g.name.clone(),
                    primary,
                    members,
                    p: g.clone(),
                });
            }
        }
        for (ri, r) in params.dns.iter().enumerate() {
            let phase = dms(1 + e.rng.below(ms(r.health_check.interval)));
            e.dns.push(DnsState {
                p: r.clone(),
                fails: 0,
                oks: r.health_check.failure_threshold,
                primary_healthy: true,
                forced: None,
                history: vec![(Duration::ZERO, DnsTarget::Primary)],
                answered: DnsTarget::Primary,
            });
            e.schedule(phase, Event::HealthCheck(ri));
        }
        for svc in &params.services {
            let record = params
                .dns
                .iter()
                .position(|r| r.name == svc.dns_record)
                .expect("validated");
            let target = e.db_index(&svc.database).expect("validated");
            e.services.push(ServiceState {
                p: svc.clone(),
                record,
                target,
                writing: false,
            });
        }
        for a in &params.alerts {
            let svc = params
                .services
                .iter()
                .position(|x| x.name == a.service)
                .expect("validated");
            e.alerts.push(AlertState {
                p: a.clone(),
                svc,
                pending_since: None,
                firing_since: None,
                epoch: 0,
            });
        }
        e.refresh();
        Ok(e)
    }

    /// Build the estate seeded with `params.seed`.
    pub fn from_params(params: SimParams) -> Result<Estate, SimError> {
        let seed = params.seed;
        Estate::new(params, seed)
    }

    /// Current simulated time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The parameters the estate was built from.
    pub fn params(&self) -> &SimParams {
        &self.params
    }

    /// Every notable controller reaction so far, in time order.
    pub fn log(&self) -> &[EstateEvent] {
        &self.log
    }

    /// Process every queued event with time <= `t`, then set the clock to `t` (never backwards).
    pub fn advance_to(&mut self, t: Duration) {
        while let Some(top) = self.queue.peek() {
            if top.at > t {
                break;
            }
            let q = self.queue.pop().expect("peeked");
            if q.at > self.now {
                self.now = q.at;
            }
            self.handle(q.event);
            self.refresh();
        }
        if t > self.now {
            self.now = t;
        }
    }

    fn schedule(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.queue.push(Queued {
            at: at.max(self.now),
            seq: self.seq,
            event,
        });
    }

    fn note(&mut self, component: impl Into<String>, message: impl Into<String>) {
        self.log.push(EstateEvent {
            at: self.now,
            component: component.into(),
            message: message.into(),
        });
    }

    // ----- lookups -------------------------------------------------------

    /// Zone names.
    /// Whether a zone is powered off now (the truth, which the Kubernetes API only shows after
    /// `node_failure_detection`).
    pub fn zone_lost(&self, zone: &str) -> bool {
        self.zones.get(zone).is_some_and(|z| z.0)
    }

    pub fn zones(&self) -> Vec<String> {
        self.zones.keys().cloned().collect()
    }

    /// Region names.
    pub fn regions(&self) -> Vec<String> {
        self.params.regions.iter().map(|r| r.name.clone()).collect()
    }

    /// Kubernetes cluster names.
    pub fn clusters(&self) -> Vec<String> {
        self.params
            .kubernetes
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// Database cluster names (including restored ones).
    pub fn db_clusters(&self) -> Vec<String> {
        self.dbs.iter().map(|d| d.name.clone()).collect()
    }

    /// Database instance names.
    pub fn db_instances(&self) -> Vec<String> {
        self.dbs
            .iter()
            .flat_map(|d| d.instances.iter().map(|i| i.name.clone()))
            .collect()
    }

    /// Global database names.
    pub fn global_databases(&self) -> Vec<String> {
        self.globals.iter().map(|g| g.name.clone()).collect()
    }

    /// DNS record names.
    pub fn records(&self) -> Vec<String> {
        self.dns.iter().map(|d| d.p.name.clone()).collect()
    }

    /// Service names.
    pub fn service_names(&self) -> Vec<String> {
        self.services.iter().map(|x| x.p.name.clone()).collect()
    }

    /// Alert names.
    pub fn alert_names(&self) -> Vec<String> {
        self.alerts.iter().map(|a| a.p.name.clone()).collect()
    }

    fn unknown(kind: &'static str, name: &str, valid: Vec<String>) -> SimError {
        SimError::Unknown {
            kind,
            name: name.to_string(),
            valid: list(valid.iter().map(String::as_str)),
        }
    }

    fn cluster_index(&self, name: &str) -> Result<usize, SimError> {
        self.params
            .kubernetes
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| Self::unknown("cluster", name, self.clusters()))
    }

    fn db_index(&self, name: &str) -> Option<usize> {
        self.dbs.iter().position(|d| d.name == name)
    }

    fn db(&self, name: &str) -> Result<usize, SimError> {
        self.db_index(name)
            .ok_or_else(|| Self::unknown("database cluster", name, self.db_clusters()))
    }

    fn zone_checked(&self, zone: &str) -> Result<(), SimError> {
        if self.zones.contains_key(zone) {
            Ok(())
        } else {
            Err(Self::unknown("zone", zone, self.zones()))
        }
    }

    fn node_index(&self, ci: usize, name: &str) -> Result<usize, SimError> {
        self.nodes
            .iter()
            .position(|n| n.cluster == ci && n.name == name)
            .ok_or_else(|| {
                let valid = self
                    .nodes
                    .iter()
                    .filter(|n| n.cluster == ci)
                    .map(|n| n.name.clone())
                    .collect();
                Self::unknown("node", name, valid)
            })
    }

    fn pod_id(&self, ci: usize, namespace: &str, name: &str) -> Result<u64, SimError> {
        self.pods
            .iter()
            .find(|(_, p)| {
                let d = &self.deployments[p.dep];
                d.cluster == ci && d.p.namespace == namespace && p.name == name
            })
            .map(|(id, _)| *id)
            .ok_or_else(|| SimError::Unknown {
                kind: "pod",
                name: format!("{namespace}/{name}"),
                valid: format!(
                    "list them with `kubectl get pods -n {namespace}` (cluster `{}`)",
                    self.cluster_p(ci).name
                ),
            })
    }

    fn cluster_zone(&self, cluster: &str, zone: &str) -> Result<usize, SimError> {
        let ci = self.cluster_index(cluster)?;
        let region = &self.params.kubernetes[ci].region;
        let zones = &self.params.region(region).expect("validated").zones;
        if !zones.iter().any(|z| z == zone) {
            return Err(SimError::ZoneNotInCluster {
                zone: zone.to_string(),
                cluster: cluster.to_string(),
                valid: list(zones.iter().map(String::as_str)),
            });
        }
        Ok(ci)
    }

    fn node_ready(&self, n: usize) -> bool {
        !self.zone_lost(&self.nodes[n].zone)
    }

    fn region_reachable(&self, region: &str) -> bool {
        !self.unreachable_regions.iter().any(|r| r == region)
    }

    fn cluster_p(&self, ci: usize) -> &ClusterParams {
        &self.params.kubernetes[ci]
    }

    // ----- pods ------------------------------------------------------------

    fn kind(&self, dep: usize) -> WorkloadKind {
        self.deployments[dep].p.kind
    }

    fn cluster_nodes(&self, ci: usize) -> Vec<usize> {
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

    fn pick_node(&self, dep: usize) -> Option<usize> {
        let ci = self.deployments[dep].cluster;
        let cap = self.cluster_p(ci).pods_per_node as usize;
        // Spread counts the workload's live pods (terminating ones are leaving).
        let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
        for p in self
            .pods
            .values()
            .filter(|p| p.dep == dep && p.deleting.is_none())
        {
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
    fn create_pod(&mut self, dep: usize, log: bool) -> u64 {
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
    fn new_pod(&mut self, dep: usize, ordinal: Option<u32>, pin: Option<usize>) -> u64 {
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

    fn schedule_pending(&mut self, ci: usize) {
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
    fn delete_pods(&mut self, ids: &[u64], grace: Option<Duration>, why: Why) -> Vec<String> {
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
    fn pod_gone(&mut self, id: u64) {
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

    fn reconcile(&mut self, dep: usize) {
        let ci = self.deployments[dep].cluster;
        let live = |e: &Estate| {
            e.pods
                .values()
                .filter(|p| p.dep == dep && p.deleting.is_none())
                .count() as u32
        };
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
    fn rollout_step(&mut self, dep: usize) {
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
    fn ready_pods(&self, dep: usize) -> u32 {
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
    fn pod_ready_condition(&self, p: &Pod) -> bool {
        p.phase == Phase::Ready
            && p.deleting.is_none()
            && p.node
                .is_some_and(|n| self.nodes[n].not_ready_since.is_none())
    }

    // ----- database --------------------------------------------------------

    fn inst_up(&self, db: usize, i: usize) -> bool {
        let inst = &self.dbs[db].instances[i];
        inst.rebooting_until.is_none()
            && !self.zone_lost(&inst.zone)
            && self.region_reachable(&self.dbs[db].region)
    }

    fn writable(&self, db: usize) -> bool {
        let d = &self.dbs[db];
        !d.outage
            && d.transition.is_none()
            && d.role != Role::Secondary
            && self.inst_up(db, d.writer)
    }

    fn status(&self, db: usize) -> &'static str {
        let d = &self.dbs[db];
        if d.outage {
            return "unavailable";
        }
        match &d.transition {
            Some((TransitionKind::FailingOver { .. }, _)) => "failing-over",
            Some((TransitionKind::Promoting { .. }, _)) => "promoting",
            Some((TransitionKind::Creating { .. }, _)) => "creating",
            None if self.inst_up(db, d.writer) => "available",
            None => "unavailable",
        }
    }

    fn eligible_readers(&self, db: usize) -> Vec<usize> {
        (0..self.dbs[db].instances.len())
            .filter(|&i| i != self.dbs[db].writer && self.inst_up(db, i))
            .collect()
    }

    /// Newest write a non-secondary cluster holds as of time `p`.
    fn own_newest_at(&self, db: usize, p: Duration) -> Option<Duration> {
        let d = &self.dbs[db];
        let mut best = if d.created_at <= p { d.inherited } else { None };
        for &(start, end) in &d.spans {
            if start > p {
                continue;
            }
            let upto = end.unwrap_or(self.now).min(p);
            let w = floor_to(upto, d.write_interval);
            if w >= start {
                best = best.max(Some(w));
            }
        }
        best
    }

    /// Newest write at or before `t` that the cluster holds now: data it inherited (promotion,
    /// restore) plus its own writes. This is what a canary query `max(ts) where ts <= t` returns,
    /// and what a data-loss (RPO) measurement compares with the fault time.
    fn surviving_write_before(&self, db: usize, t: Duration) -> Option<Duration> {
        // `own_newest_at` counts inherited data only once the cluster exists; data inherited by
        // a cluster created after `t` (a restore, a promotion) survived all the same.
        self.dbs[db]
            .inherited
            .filter(|w| *w <= t)
            .max(self.own_newest_at(db, t))
    }

    /// Newest write held at time `p` (secondaries: what has replicated from the primary).
    fn newest_write_at(&self, db: usize, p: Duration) -> Option<Duration> {
        let d = &self.dbs[db];
        if d.role == Role::Secondary
            && let Some(g) = d.global
        {
            let pc = self.globals[g].primary;
            let lag = self.globals[g].p.replication_lag;
            // Replication stops when the primary stops taking writes.
            let stopped = match self.dbs[pc].spans.last() {
                Some(&(_, Some(end))) => end,
                _ => p,
            };
            let point = stopped.min(p).checked_sub(lag);
            let replicated = point.and_then(|x| self.own_newest_at(pc, x));
            return d.inherited.max(replicated);
        }
        self.own_newest_at(db, p)
    }

    fn start_transition(&mut self, db: usize, kind: TransitionKind, took: Duration) {
        self.dbs[db].epoch += 1;
        let until = self.now + took;
        self.dbs[db].transition = Some((kind, until));
        let epoch = self.dbs[db].epoch;
        self.schedule(until, Event::DbTransitionDone { db, epoch });
    }

    fn writer_lost(&mut self, db: usize, why: &str) {
        let d = &self.dbs[db];
        if d.outage || d.transition.is_some() || d.role == Role::Secondary {
            if d.role == Role::Secondary {
                let msg = format!("instance {} lost ({why})", d.instances[d.writer].name);
                self.note(format!("db {}", d.name), msg);
            }
            return;
        }
        let msg = format!(
            "writer {} lost ({why}); writes failing until a failover completes",
            d.instances[d.writer].name
        );
        let at = self.now + d.failure_detection;
        let epoch = d.epoch;
        self.note(format!("db {}", d.name), msg);
        self.schedule(at, Event::DbDetect { db, epoch });
    }

    fn services_writing_to(&self, db: usize) -> Vec<usize> {
        (0..self.services.len())
            .filter(|&s| self.services[s].target == db)
            .collect()
    }

    fn retarget_services(&mut self, from: usize, to: usize) {
        for s in self.services_writing_to(from) {
            self.services[s].target = to;
            let msg = format!(
                "writes now go to {} (was {})",
                self.dbs[to].name, self.dbs[from].name
            );
            let sname = self.services[s].p.name.clone();
            self.note(format!("service {sname}"), msg);
        }
    }

    // ----- dns / service -----------------------------------------------------

    fn region_of(&self, r: usize, t: DnsTarget) -> &str {
        match t {
            DnsTarget::Primary => &self.dns[r].p.primary_region,
            DnsTarget::Secondary => &self.dns[r].p.secondary_region,
        }
    }

    fn dns_authoritative(&self, r: usize) -> DnsTarget {
        self.dns[r].history.last().expect("non-empty").1
    }

    fn dns_answer(&self, r: usize) -> DnsTarget {
        let d = &self.dns[r];
        let mut ans = d.history[0].1;
        for &(t, v) in &d.history {
            if t + d.p.ttl <= self.now {
                ans = v;
            }
        }
        ans
    }

    fn set_authoritative(&mut self, r: usize, t: DnsTarget, why: String) {
        if self.dns_authoritative(r) == t {
            return;
        }
        self.dns[r].history.push((self.now, t));
        let region = self.region_of(r, t).to_string();
        let (name, ttl) = (self.dns[r].p.name.clone(), self.dns[r].p.ttl);
        self.note(
            format!("route53 {name}"),
            format!(
                "{why}; authoritative answer is now {region} (resolvers follow after TTL {})",
                fmt(ttl)
            ),
        );
        self.schedule(self.now + ttl, Event::DnsPropagated(r));
    }

    /// The deployment serving service `s` in `region`, if any.
    fn serving_dep(&self, s: usize, region: &str) -> Option<usize> {
        let p = &self.services[s].p;
        self.deployments.iter().position(|d| {
            d.p.name == p.deployment
                && d.p.namespace == p.namespace
                && self.cluster_p(d.cluster).region == region
        })
    }

    fn endpoint_healthy(&self, s: Option<usize>, region: &str) -> bool {
        if !self.region_reachable(region) {
            return false;
        }
        match s {
            Some(s) => self
                .serving_dep(s, region)
                .is_some_and(|d| self.ready_pods(d) > 0),
            None => true,
        }
    }

    fn memory_of(&self, ci: usize) -> f64 {
        let c = self.cluster_p(ci);
        let ready_nodes = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].cluster == ci && self.node_ready(n))
            .count() as f64;
        if ready_nodes == 0.0 {
            return 0.0;
        }
        let used: f64 = self
            .pods
            .values()
            .filter(|p| {
                self.deployments[p.dep].cluster == ci && p.node.is_some_and(|n| self.node_ready(n))
            })
            .map(|p| self.deployments[p.dep].p.memory_gib)
            .sum();
        used / (ready_nodes * c.node_memory_gib)
    }

    fn metrics(&self, s: usize) -> Metrics {
        let svc = &self.services[s];
        let region = self
            .region_of(svc.record, self.dns_answer(svc.record))
            .to_string();
        let dep = self.serving_dep(s, &region);
        let ready = dep.map(|d| self.ready_pods(d)).unwrap_or(0);
        let desired = dep.map(|d| self.deployments[d].replicas).unwrap_or(0);
        let db_writable = self.writable(svc.target);
        let pods_ready_ratio = if desired == 0 {
            1.0
        } else {
            f64::from(ready) / f64::from(desired)
        };
        let memory = dep
            .map(|d| self.memory_of(self.deployments[d].cluster))
            .unwrap_or(0.0);
        let timeout = secs_f(svc.p.timeout);
        if !self.region_reachable(&region) || ready == 0 {
            return Metrics {
                availability: 0.0,
                error_rate: 1.0,
                p99: timeout,
                db_writable,
                pods_ready_ratio,
                memory,
                reaching: false,
            };
        }
        let capacity = f64::from(ready) * svc.p.rps_per_pod;
        let served = (capacity / svc.p.rps).min(1.0);
        let success = if db_writable {
            served
        } else {
            served * (1.0 - svc.p.write_ratio)
        };
        let u = svc.p.rps / capacity;
        let p99 = if u <= 1.0 {
            (secs_f(svc.p.base_latency) * (1.0 + 9.0 * u * u * u)).min(timeout)
        } else {
            timeout
        };
        Metrics {
            availability: success,
            error_rate: 1.0 - success,
            p99,
            db_writable,
            pods_ready_ratio,
            memory,
            reaching: true,
        }
    }

    fn metric_value(m: &Metrics, metric: Metric) -> f64 {
        match metric {
            Metric::ErrorRate => m.error_rate,
            Metric::Availability => m.availability,
            Metric::P99LatencySeconds => m.p99,
            Metric::DbWritable => {
                if m.db_writable {
                    1.0
                } else {
                    0.0
                }
            }
            Metric::PodsReadyRatio => m.pods_ready_ratio,
            Metric::MemoryUtilization => m.memory,
        }
    }

    /// Recompute derived state after any change: write spans and alert conditions.
    fn refresh(&mut self) {
        let metrics: Vec<Metrics> = (0..self.services.len()).map(|s| self.metrics(s)).collect();
        for (s, m) in metrics.iter().enumerate() {
            let writing = m.reaching && m.db_writable;
            if writing != self.services[s].writing {
                self.services[s].writing = writing;
                let db = self.services[s].target;
                let msg = if writing {
                    format!("writes to {} succeeding", self.dbs[db].name)
                } else {
                    format!("writes to {} failing", self.dbs[db].name)
                };
                let sname = self.services[s].p.name.clone();
                self.note(format!("service {sname}"), msg);
            }
        }
        for db in 0..self.dbs.len() {
            let taking = self.services.iter().any(|x| x.target == db && x.writing);
            let open = matches!(self.dbs[db].spans.last(), Some((_, None)));
            let now = self.now;
            if taking && !open {
                self.dbs[db].spans.push((now, None));
            } else if !taking
                && open
                && let Some(last) = self.dbs[db].spans.last_mut()
            {
                last.1 = Some(now);
            }
        }
        for a in 0..self.alerts.len() {
            let al = &self.alerts[a];
            let v = Self::metric_value(&metrics[al.svc], al.p.metric);
            let cond = match (al.p.above, al.p.below) {
                (Some(x), _) => v > x,
                (_, Some(x)) => v < x,
                _ => false,
            };
            let active = al.pending_since.is_some() || al.firing_since.is_some();
            if cond && !active {
                let (for_, epoch) = (al.p.for_, al.epoch);
                self.alerts[a].pending_since = Some(self.now);
                self.schedule(self.now + for_, Event::AlertFor { alert: a, epoch });
            } else if !cond && active {
                let was_firing = al.firing_since.is_some();
                let name = al.p.name.clone();
                let al = &mut self.alerts[a];
                al.pending_since = None;
                al.firing_since = None;
                al.epoch += 1;
                if was_firing {
                    self.note(format!("alert {name}"), "resolved");
                }
            }
        }
        self.publish();
    }
}

// ---------------------------------------------------------------------------
// Event handlers
// ---------------------------------------------------------------------------

impl Estate {
    fn handle(&mut self, event: Event) {
        match event {
            Event::PodReady(id) => {
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
            Event::PodGone(id) => {
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
            Event::Reconcile(dep) => self.reconcile(dep),
            Event::NodesNoticed {
                cluster,
                zone,
                epoch,
            } => {
                if self.zones[&zone] != (true, epoch) {
                    return;
                }
                let now = self.now;
                let mut n = 0;
                for node in self
                    .nodes
                    .iter_mut()
                    .filter(|n| n.cluster == cluster && n.zone == zone)
                {
                    n += 1;
                    node.not_ready_since = Some(now);
                    for effect in [TaintEffect::NoSchedule, TaintEffect::NoExecute] {
                        node.taints.push(Taint {
                            key: UNREACHABLE_TAINT.into(),
                            value: None,
                            effect,
                            added: (effect == TaintEffect::NoExecute).then_some(now),
                        });
                    }
                }
                let c = self.cluster_p(cluster);
                let msg = format!(
                    "{n} node(s) in {zone} marked NotReady (node-monitor grace {}); pods there are evicted after {}",
                    fmt(c.node_failure_detection),
                    fmt(c.pod_eviction_timeout)
                );
                let name = c.name.clone();
                self.note(format!("k8s {name}"), msg);
            }
            Event::EvictZone {
                cluster,
                zone,
                epoch,
            } => {
                if self.zones[&zone] != (true, epoch) {
                    return;
                }
                // DaemonSet pods tolerate the unreachable taint; the others are deleted, and stay
                // Terminating until their node is back (the kubelet cannot confirm).
                let ids: Vec<u64> = self
                    .pods
                    .iter()
                    .filter(|(_, p)| {
                        p.deleting.is_none()
                            && self.kind(p.dep) != WorkloadKind::DaemonSet
                            && p.node.is_some_and(|n| {
                                self.nodes[n].cluster == cluster && self.nodes[n].zone == zone
                            })
                    })
                    .map(|(id, _)| *id)
                    .collect();
                let c = self.cluster_p(cluster);
                let msg = format!(
                    "{} pod(s) on NotReady nodes in {zone} evicted ({} detection + {} eviction timeout); ReplicaSets replace them after {}",
                    ids.len(),
                    fmt(c.node_failure_detection),
                    fmt(c.pod_eviction_timeout),
                    fmt(c.reschedule_delay)
                );
                let name = c.name.clone();
                self.note(format!("k8s {name}"), msg);
                self.delete_pods(&ids, None, Why::Disruption);
            }
            Event::DbDetect { db, epoch } => {
                let d = &self.dbs[db];
                if d.epoch != epoch
                    || d.outage
                    || d.transition.is_some()
                    || self.inst_up(db, d.writer)
                {
                    return;
                }
                let detection = d.failure_detection;
                let name = d.name.clone();
                match self.eligible_readers(db).first().copied() {
                    None => self.note(
                        format!("db {name}"),
                        format!(
                            "writer loss noticed after {}, but no healthy reader in a live zone: cluster unavailable until an instance comes back",
                            fmt(detection)
                        ),
                    ),
                    Some(target) => {
                        let took = self.dbs[db].failover_time;
                        let tname = self.dbs[db].instances[target].name.clone();
                        self.note(
                            format!("db {name}"),
                            format!(
                                "writer loss noticed after {}; automatic failover to {tname} started (takes {})",
                                fmt(detection),
                                fmt(took)
                            ),
                        );
                        let reason = "automatic".to_string();
                        self.start_transition(db, TransitionKind::FailingOver { target, reason }, took);
                    }
                }
            }
            Event::DbTransitionDone { db, epoch } => {
                if self.dbs[db].epoch != epoch {
                    return;
                }
                let Some((kind, _)) = self.dbs[db].transition.take() else {
                    return;
                };
                let name = self.dbs[db].name.clone();
                match kind {
                    TransitionKind::FailingOver { target, reason } => {
                        self.dbs[db].writer = target;
                        let d = &self.dbs[db];
                        let msg = format!(
                            "{} promoted to writer after {} {reason} failover",
                            d.instances[target].name,
                            fmt(d.failover_time)
                        );
                        self.note(format!("db {name}"), msg);
                        if !self.inst_up(db, target) {
                            self.writer_lost(db, "its zone is down");
                        }
                    }
                    TransitionKind::Promoting { what } => {
                        let role = self.dbs[db].role.as_str();
                        self.note(
                            format!("db {name}"),
                            format!("{what} complete: now the writable {role} cluster"),
                        );
                    }
                    TransitionKind::Creating { serve, took } => {
                        self.note(
                            format!("db {name}"),
                            format!("restored cluster available (restore took {})", fmt(took)),
                        );
                        for s in serve {
                            let from = self.services[s].target;
                            self.services[s].target = db;
                            let sname = self.services[s].p.name.clone();
                            let msg =
                                format!("writes now go to {name} (was {})", self.dbs[from].name);
                            self.note(format!("service {sname}"), msg);
                        }
                    }
                }
            }
            Event::InstanceBack { db, inst, until } => {
                if self.dbs[db].instances[inst].rebooting_until == Some(until) {
                    self.dbs[db].instances[inst].rebooting_until = None;
                    let msg = format!(
                        "instance {} back after reboot",
                        self.dbs[db].instances[inst].name
                    );
                    let name = self.dbs[db].name.clone();
                    self.note(format!("db {name}"), msg);
                }
            }
            Event::HealthCheck(r) => self.health_check(r),
            Event::DnsPropagated(r) => {
                let ans = self.dns_answer(r);
                if ans != self.dns[r].answered {
                    self.dns[r].answered = ans;
                    let region = self.region_of(r, ans).to_string();
                    let (name, ttl) = (self.dns[r].p.name.clone(), self.dns[r].p.ttl);
                    self.note(
                        format!("route53 {name}"),
                        format!("resolvers now answer {region} (TTL {} expired)", fmt(ttl)),
                    );
                }
            }
            Event::AlertFor { alert, epoch } => {
                let a = &mut self.alerts[alert];
                if a.epoch != epoch || a.firing_since.is_some() {
                    return;
                }
                if let Some(since) = a.pending_since {
                    a.firing_since = Some(self.now);
                    let name = a.p.name.clone();
                    let msg = format!(
                        "firing: {:?} {} for {} (condition true since {} ago)",
                        a.p.metric,
                        match (a.p.above, a.p.below) {
                            (Some(x), _) => format!("above {x}"),
                            (_, Some(x)) => format!("below {x}"),
                            _ => String::new(),
                        },
                        fmt(a.p.for_),
                        fmt(self.now.saturating_sub(since))
                    );
                    self.note(format!("alert {name}"), msg);
                }
            }
        }
    }

    fn health_check(&mut self, r: usize) {
        let interval = self.dns[r].p.health_check.interval;
        self.schedule(self.now + interval, Event::HealthCheck(r));
        let threshold = self.dns[r].p.health_check.failure_threshold;
        let svc = self.services.iter().position(|x| x.record == r);
        let primary = self.dns[r].p.primary_region.clone();
        let ok = self.endpoint_healthy(svc, &primary);
        let name = self.dns[r].p.name.clone();
        let d = &mut self.dns[r];
        if ok {
            d.oks += 1;
            d.fails = 0;
        } else {
            d.fails += 1;
            d.oks = 0;
        }
        let mut why = None;
        if d.primary_healthy && d.fails >= threshold {
            d.primary_healthy = false;
            why = Some(format!(
                "health check failed {threshold} times (interval {}), primary marked unhealthy",
                fmt(interval)
            ));
        } else if !d.primary_healthy && d.oks >= threshold {
            d.primary_healthy = true;
            why = Some(format!(
                "health check passed {threshold} times (interval {}), primary healthy again",
                fmt(interval)
            ));
        }
        if let Some(w) = &why {
            self.note(format!("route53 {name}"), w.clone());
        }
        self.update_authoritative(r, why.unwrap_or_else(|| "health checks".into()));
    }

    fn update_authoritative(&mut self, r: usize, why: String) {
        let d = &self.dns[r];
        let target = match d.forced {
            Some(t) => t,
            None if d.primary_healthy => DnsTarget::Primary,
            None if self.region_reachable(&d.p.secondary_region) => DnsTarget::Secondary,
            // Both sides unhealthy: Route 53 answers the primary.
            None => DnsTarget::Primary,
        };
        self.set_authoritative(r, target, why);
    }
}

// ---------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------

impl Estate {
    fn finish<T>(&mut self, v: T) -> Result<T, SimError> {
        self.refresh();
        Ok(v)
    }

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

    /// Power interruption of a zone (see module docs).
    pub fn lose_zone(&mut self, at: Duration, zone: &str) -> Result<(), SimError> {
        self.advance_to(at);
        self.zone_checked(zone)?;
        self.lose_zone_inner(zone, "zone power interruption");
        self.finish(())
    }

    fn lose_zone_inner(&mut self, zone: &str, why: &str) {
        let entry = self.zones.get_mut(zone).expect("checked");
        if entry.0 {
            return;
        }
        entry.0 = true;
        entry.1 += 1;
        let epoch = entry.1;
        let zone_s = zone.to_string();
        self.note(
            format!("zone {zone}"),
            format!("{why}: nodes NotReady, pods there stop serving, database instances down"),
        );
        for ci in 0..self.params.kubernetes.len() {
            if !self.nodes.iter().any(|n| n.cluster == ci && n.zone == zone) {
                continue;
            }
            let c = self.cluster_p(ci);
            let noticed = self.now + c.node_failure_detection;
            let evict = noticed + c.pod_eviction_timeout;
            self.schedule(
                noticed,
                Event::NodesNoticed {
                    cluster: ci,
                    zone: zone_s.clone(),
                    epoch,
                },
            );
            self.schedule(
                evict,
                Event::EvictZone {
                    cluster: ci,
                    zone: zone_s.clone(),
                    epoch,
                },
            );
        }
        for db in 0..self.dbs.len() {
            let w = self.dbs[db].writer;
            if self.dbs[db].instances[w].zone == zone {
                self.writer_lost(db, &format!("{zone} down"));
            }
        }
    }

    /// Power back in a zone: nodes Ready, instances back (as readers unless still the writer), Pending pods scheduled.
    pub fn restore_zone(&mut self, at: Duration, zone: &str) -> Result<(), SimError> {
        self.advance_to(at);
        self.zone_checked(zone)?;
        self.restore_zone_inner(zone);
        self.finish(())
    }

    fn restore_zone_inner(&mut self, zone: &str) {
        let entry = self.zones.get_mut(zone).expect("checked");
        if !entry.0 {
            return;
        }
        entry.0 = false;
        entry.1 += 1;
        self.note(
            format!("zone {zone}"),
            "power restored: nodes Ready, database instances back",
        );
        for n in self.nodes.iter_mut().filter(|n| n.zone == zone) {
            n.not_ready_since = None;
            n.taints.retain(|t| t.key != UNREACHABLE_TAINT);
        }
        // The kubelets are back: pods deleted meanwhile are gone at last, and the containers of
        // the others restart (they lost power), Ready again after their start-up.
        let on_zone: Vec<u64> = self
            .pods
            .iter()
            .filter(|(_, p)| p.node.is_some_and(|n| self.nodes[n].zone == zone))
            .map(|(id, _)| *id)
            .collect();
        for id in on_zone {
            if self.pods[&id].deleting.is_some() {
                self.pod_gone(id);
                continue;
            }
            let at = self.now + self.pods[&id].startup;
            let dep = self.pods[&id].dep;
            self.restart_log.push((self.now, dep, 1));
            if let Some(p) = self.pods.get_mut(&id) {
                p.container_restarts += 1;
                p.phase = Phase::Starting;
                p.ready_at = None;
                p.ready_due = Some(at);
            }
            self.schedule(at, Event::PodReady(id));
        }
        for ci in 0..self.params.kubernetes.len() {
            if self.nodes.iter().any(|n| n.cluster == ci && n.zone == zone) {
                self.schedule_pending(ci);
            }
        }
    }

    /// Every zone of the region lost and its endpoint unreachable. No automatic cross-region failover.
    pub fn lose_region(&mut self, at: Duration, region: &str) -> Result<(), SimError> {
        self.advance_to(at);
        let zones = self.region_zones(region)?;
        if self.region_reachable(region) {
            self.unreachable_regions.push(region.to_string());
        }
        self.note(
            format!("region {region}"),
            "region outage: endpoint unreachable, every zone down",
        );
        for z in zones {
            self.lose_zone_inner(&z, "region outage");
        }
        self.finish(())
    }

    /// Reverse of [`Estate::lose_region`].
    pub fn restore_region(&mut self, at: Duration, region: &str) -> Result<(), SimError> {
        self.advance_to(at);
        let zones = self.region_zones(region)?;
        self.unreachable_regions.retain(|r| r != region);
        self.note(
            format!("region {region}"),
            "region restored: endpoint reachable",
        );
        for z in zones {
            self.restore_zone_inner(&z);
        }
        self.finish(())
    }

    fn region_zones(&self, region: &str) -> Result<Vec<String>, SimError> {
        self.params
            .region(region)
            .map(|r| r.zones.clone())
            .ok_or_else(|| Self::unknown("region", region, self.regions()))
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

    fn check_idle(&self, db: usize) -> Result<(), SimError> {
        let d = &self.dbs[db];
        if d.outage {
            return Err(SimError::Refused(format!(
                "database cluster `{}` is in an outage (storage lost); repair it or restore from backup",
                d.name
            )));
        }
        if d.transition.is_some() {
            return Err(SimError::Refused(format!(
                "database cluster `{}` is {}; wait until it is available",
                d.name,
                self.status(db)
            )));
        }
        Ok(())
    }

    /// Manual failover inside a cluster; returns the new writer.
    pub fn db_failover(
        &mut self,
        at: Duration,
        cluster: &str,
        target: Option<&str>,
    ) -> Result<String, SimError> {
        self.advance_to(at);
        let db = self.db(cluster)?;
        self.check_idle(db)?;
        let eligible = self.eligible_readers(db);
        let names = || {
            list(
                eligible
                    .iter()
                    .map(|&i| self.dbs[db].instances[i].name.as_str()),
            )
        };
        let t = match target {
            Some(name) => match eligible
                .iter()
                .find(|&&i| self.dbs[db].instances[i].name == name)
            {
                Some(&i) => i,
                None => {
                    return Err(SimError::Refused(format!(
                        "`{name}` is not an eligible failover target of `{cluster}` (must be a healthy reader in a live zone); eligible: {}",
                        names()
                    )));
                }
            },
            None => match eligible.first() {
                Some(&i) => i,
                None => {
                    return Err(SimError::Refused(format!(
                        "`{cluster}` has no healthy reader in a live zone to fail over to"
                    )));
                }
            },
        };
        let took = self.dbs[db].failover_time;
        let tname = self.dbs[db].instances[t].name.clone();
        self.note(
            format!("db {cluster}"),
            format!("manual failover to {tname} started (takes {})", fmt(took)),
        );
        self.start_transition(
            db,
            TransitionKind::FailingOver {
                target: t,
                reason: "manual".into(),
            },
            took,
        );
        self.finish(tname)
    }

    /// Reboot an instance. With `force_failover` on the writer it behaves like [`Estate::db_failover`];
    /// otherwise the instance is down for [`DB_REBOOT_TIME`] (the writer's cluster is unwritable meanwhile).
    pub fn db_reboot(
        &mut self,
        at: Duration,
        instance: &str,
        force_failover: bool,
    ) -> Result<(), SimError> {
        self.advance_to(at);
        let found = self.dbs.iter().enumerate().find_map(|(db, d)| {
            d.instances
                .iter()
                .position(|i| i.name == instance)
                .map(|i| (db, i))
        });
        let Some((db, i)) = found else {
            return Err(Self::unknown(
                "database instance",
                instance,
                self.db_instances(),
            ));
        };
        let cluster = self.dbs[db].name.clone();
        if force_failover && i == self.dbs[db].writer && self.dbs[db].role != Role::Secondary {
            self.db_failover(at, &cluster, None)?;
            return Ok(());
        }
        self.check_idle(db)?;
        let until = self.now + DB_REBOOT_TIME;
        self.dbs[db].instances[i].rebooting_until = Some(until);
        self.schedule(until, Event::InstanceBack { db, inst: i, until });
        self.note(
            format!("db {cluster}"),
            format!(
                "instance {instance} rebooting (down for {})",
                fmt(DB_REBOOT_TIME)
            ),
        );
        self.finish(())
    }

    fn global_index(&self, name: &str) -> Result<usize, SimError> {
        self.globals
            .iter()
            .position(|g| g.name == name)
            .ok_or_else(|| Self::unknown("global database", name, self.global_databases()))
    }

    fn secondary_of(&self, g: usize, cluster: &str) -> Result<usize, SimError> {
        let gl = &self.globals[g];
        gl.members
            .iter()
            .copied()
            .find(|&m| self.dbs[m].name == cluster && self.dbs[m].role == Role::Secondary)
            .ok_or_else(|| {
                let valid = gl
                    .members
                    .iter()
                    .filter(|&&m| self.dbs[m].role == Role::Secondary)
                    .map(|&m| self.dbs[m].name.clone())
                    .collect();
                Self::unknown("secondary cluster", cluster, valid)
            })
    }

    /// Cross-region failover of a global database (see module docs).
    pub fn global_failover(
        &mut self,
        at: Duration,
        global: &str,
        target_cluster: &str,
        allow_data_loss: bool,
    ) -> Result<(), SimError> {
        self.advance_to(at);
        let g = self.global_index(global)?;
        let t = self.secondary_of(g, target_cluster)?;
        self.check_idle(t)?;
        if !self.inst_up(t, self.dbs[t].writer) {
            return Err(SimError::Refused(format!(
                "secondary `{target_cluster}` has no healthy instance (its region or zone is down); pick another target"
            )));
        }
        let pc = self.globals[g].primary;
        let gp = self.globals[g].p.clone();
        let pname = self.dbs[pc].name.clone();
        if allow_data_loss {
            let data = self.newest_write_at(t, self.now);
            self.dbs[t].inherited = data;
            self.dbs[t].role = Role::Primary;
            self.dbs[pc].role = Role::Standalone;
            self.dbs[pc].global = None;
            self.globals[g].members.retain(|&m| m != pc);
            self.globals[g].primary = t;
            let held = data
                .map(|d| format!("{} before now", fmt(self.now.saturating_sub(d))))
                .unwrap_or_else(|| "none".into());
            self.note(
                format!("global {global}"),
                format!(
                    "unplanned failover to {target_cluster} started (allow data loss, takes {}); its newest write is from {held} (replication lag {}); {pname} detached",
                    fmt(gp.failover_time),
                    fmt(gp.replication_lag)
                ),
            );
            self.start_transition(
                t,
                TransitionKind::Promoting {
                    what: "global failover".into(),
                },
                gp.failover_time,
            );
        } else {
            if !self.writable(pc) {
                return Err(SimError::Refused(format!(
                    "planned switchover of `{global}` needs a healthy primary, but `{pname}` is {}; use allow_data_loss: true for an unplanned failover",
                    self.status(pc)
                )));
            }
            let data = self.own_newest_at(pc, self.now);
            self.dbs[t].inherited = data;
            self.dbs[pc].inherited = data;
            self.dbs[t].role = Role::Primary;
            self.dbs[pc].role = Role::Secondary;
            self.globals[g].primary = t;
            self.note(
                format!("global {global}"),
                format!(
                    "planned switchover to {target_cluster} started (takes {}, no data loss); {pname} becomes a secondary",
                    fmt(gp.switchover_time)
                ),
            );
            self.start_transition(
                t,
                TransitionKind::Promoting {
                    what: "switchover".into(),
                },
                gp.switchover_time,
            );
        }
        self.retarget_services(pc, t);
        self.finish(())
    }

    /// Remove a secondary from its global database and promote it to a standalone writer.
    pub fn detach_and_promote(
        &mut self,
        at: Duration,
        global: &str,
        cluster: &str,
    ) -> Result<(), SimError> {
        self.advance_to(at);
        let g = self.global_index(global)?;
        let t = self.secondary_of(g, cluster)?;
        self.check_idle(t)?;
        let data = self.newest_write_at(t, self.now);
        let pc = self.globals[g].primary;
        self.dbs[t].inherited = data;
        self.dbs[t].role = Role::Standalone;
        self.dbs[t].global = None;
        self.globals[g].members.retain(|&m| m != t);
        let took = self.globals[g].p.detach_promote_time;
        let held = data
            .map(|d| format!("{} before now", fmt(self.now.saturating_sub(d))))
            .unwrap_or_else(|| "none".into());
        self.note(
            format!("global {global}"),
            format!("{cluster} detached and promoting to standalone writer (takes {}); its newest write is from {held}", fmt(took)),
        );
        self.start_transition(
            t,
            TransitionKind::Promoting {
                what: "detach and promote".into(),
            },
            took,
        );
        self.retarget_services(pc, t);
        self.finish(())
    }

    /// Fault for backup drills: the cluster is unavailable and cannot fail over.
    pub fn cluster_outage(&mut self, at: Duration, cluster: &str) -> Result<(), SimError> {
        self.advance_to(at);
        let db = self.db(cluster)?;
        self.dbs[db].outage = true;
        self.dbs[db].transition = None;
        self.dbs[db].epoch += 1;
        self.note(
            format!("db {cluster}"),
            "cluster outage (storage lost): unavailable, cannot fail over",
        );
        self.finish(())
    }

    /// Rollback of [`Estate::cluster_outage`].
    pub fn cluster_repair(&mut self, at: Duration, cluster: &str) -> Result<(), SimError> {
        self.advance_to(at);
        let db = self.db(cluster)?;
        self.dbs[db].outage = false;
        self.dbs[db].epoch += 1;
        self.note(format!("db {cluster}"), "cluster repaired");
        if !self.inst_up(db, self.dbs[db].writer) {
            self.writer_lost(db, "down while the cluster was out");
        }
        self.finish(())
    }

    /// Point-in-time restore of `source` into a new cluster `target`; returns the restore point.
    pub fn pitr_restore(
        &mut self,
        at: Duration,
        source: &str,
        target: &str,
        to: Option<Duration>,
        serve: bool,
    ) -> Result<Duration, SimError> {
        self.advance_to(at);
        let src = self.db(source)?;
        if self.db_index(target).is_some() {
            return Err(SimError::Refused(format!(
                "database cluster `{target}` already exists; pick a new name (existing: {})",
                list(self.dbs.iter().map(|d| d.name.as_str()))
            )));
        }
        let b = self.dbs[src].backups.clone();
        let Some(latest) = self.now.checked_sub(b.restorable_lag) else {
            return Err(SimError::Refused(format!(
                "`{source}` has no restorable time yet: the latest restorable time is now − {} and the estate is only {} old",
                fmt(b.restorable_lag),
                fmt(self.now)
            )));
        };
        let earliest = self
            .now
            .saturating_sub(b.retention)
            .max(self.dbs[src].created_at);
        let point = to.unwrap_or(latest);
        if point < earliest || point > latest {
            return Err(SimError::Refused(format!(
                "restore point {} is outside the restorable window of `{source}`: {} to {} (retention {}, restorable lag {})",
                fmt(point),
                fmt(earliest),
                fmt(latest),
                fmt(b.retention),
                fmt(b.restorable_lag)
            )));
        }
        let data = self.newest_write_at(src, point);
        let s = &self.dbs[src];
        let zone = s.instances[s.writer].zone.clone();
        let mut c = s.clone();
        c.name = target.to_string();
        c.instances = vec![DbInstance {
            name: format!("{target}-1"),
            zone,
            rebooting_until: None,
        }];
        c.writer = 0;
        c.role = Role::Standalone;
        c.global = None;
        c.transition = None;
        c.outage = false;
        c.epoch = 0;
        c.created_at = self.now;
        c.inherited = data;
        c.spans = Vec::new();
        let took = b.restore_base + Duration::from_secs_f64(secs_f(b.restore_per_gib) * b.size_gib);
        let db = self.dbs.len();
        self.dbs.push(c);
        let serve_list = if serve {
            self.services_writing_to(src)
        } else {
            Vec::new()
        };
        self.note(
            format!("db {target}"),
            format!(
                "restoring {source} to {} (writes up to {}) takes {} ({} + {} GiB × {})",
                fmt(point),
                data.map(fmt).unwrap_or_else(|| "none".into()),
                fmt(took),
                fmt(b.restore_base),
                b.size_gib,
                fmt(b.restore_per_gib)
            ),
        );
        self.start_transition(
            db,
            TransitionKind::Creating {
                serve: serve_list,
                took,
            },
            took,
        );
        self.finish(point)
    }

    fn record_index(&self, record: &str) -> Result<usize, SimError> {
        self.dns
            .iter()
            .position(|d| d.p.name == record)
            .ok_or_else(|| Self::unknown("dns record", record, self.records()))
    }

    /// Force the authoritative answer (overrides health checks until [`Estate::dns_reset`]).
    pub fn dns_failover(
        &mut self,
        at: Duration,
        record: &str,
        to: DnsTarget,
    ) -> Result<(), SimError> {
        self.advance_to(at);
        let r = self.record_index(record)?;
        self.dns[r].forced = Some(to);
        self.update_authoritative(r, format!("manual failover to {to:?}"));
        self.finish(())
    }

    /// Back to health-check-driven answers.
    pub fn dns_reset(&mut self, at: Duration, record: &str) -> Result<(), SimError> {
        self.advance_to(at);
        let r = self.record_index(record)?;
        self.dns[r].forced = None;
        self.update_authoritative(r, "manual override removed".into());
        self.finish(())
    }
}

// ---------------------------------------------------------------------------
// Observations
// ---------------------------------------------------------------------------

impl Estate {
    fn service_index(&self, name: &str) -> Result<usize, SimError> {
        self.services
            .iter()
            .position(|x| x.p.name == name)
            .ok_or_else(|| Self::unknown("service", name, self.service_names()))
    }

    /// Service metrics now.
    pub fn service(&mut self, at: Duration, name: &str) -> Result<ServiceView, SimError> {
        self.advance_to(at);
        let s = self.service_index(name)?;
        let m = self.metrics(s);
        let svc = &self.services[s];
        Ok(ServiceView {
            availability: m.availability,
            error_rate: m.error_rate,
            p99_latency_seconds: m.p99,
            serving_region: self
                .region_of(svc.record, self.dns_answer(svc.record))
                .to_string(),
            rps: svc.p.rps,
            db_writable: m.db_writable,
            database: self.dbs[svc.target].name.clone(),
        })
    }

    /// Pods in `namespace` whose labels match `selector` (see [`PodsView`]).
    pub fn pods(
        &mut self,
        at: Duration,
        cluster: &str,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Result<PodsView, SimError> {
        let ns = [namespace.to_string()];
        self.pods_matching(
            at,
            cluster,
            &ns,
            &|labels| matches(labels, selector),
            &|_| true,
        )
    }

    /// Pods in `namespaces` whose labels pass `label_ok` and that pass `pod_ok` (a field
    /// selector); desired comes from the workloads whose pod labels pass `label_ok`.
    pub fn pods_matching(
        &mut self,
        at: Duration,
        cluster: &str,
        namespaces: &[String],
        label_ok: &dyn Fn(&BTreeMap<String, String>) -> bool,
        pod_ok: &dyn Fn(&PodObj) -> bool,
    ) -> Result<PodsView, SimError> {
        let objs = self.objects(at, cluster, ObjKind::Pod)?;
        let ci = self.cluster_index(cluster)?;
        let pods: Vec<&PodObj> = objs
            .iter()
            .filter_map(|(_, o)| match o {
                Obj::Pod(p)
                    if namespaces.contains(&p.namespace) && label_ok(&p.labels) && pod_ok(p) =>
                {
                    Some(p)
                }
                _ => None,
            })
            .collect();
        let mut desired = 0;
        let mut deps = Vec::new();
        for (dep, d) in self.deployments.iter().enumerate() {
            if d.cluster == ci && namespaces.contains(&d.p.namespace) && label_ok(&d.p.labels) {
                desired += self.desired_pods(dep);
                deps.push(dep);
            }
        }
        let replacements = self
            .restart_log
            .iter()
            .filter(|(_, d, _)| deps.contains(d))
            .map(|(_, _, n)| u64::from(*n))
            .sum();
        Ok(summarize_pods(&pods, desired, replacements))
    }

    /// Restarts (replacements and container restarts) of the workloads in `namespaces` whose
    /// pod labels pass `label_ok`: (total so far, increase over the last `window`).
    pub fn pod_restarts(
        &mut self,
        at: Duration,
        cluster: &str,
        namespaces: &[String],
        label_ok: &dyn Fn(&BTreeMap<String, String>) -> bool,
        window: Duration,
    ) -> Result<(u64, u64), SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        let deps: Vec<usize> = (0..self.deployments.len())
            .filter(|&d| {
                let x = &self.deployments[d];
                x.cluster == ci && namespaces.contains(&x.p.namespace) && label_ok(&x.p.labels)
            })
            .collect();
        let since = self.now.checked_sub(window);
        let (mut total, mut recent) = (0, 0);
        for (t, d, n) in &self.restart_log {
            if deps.contains(d) {
                total += u64::from(*n);
                if since.is_none_or(|s| *t > s) {
                    recent += u64::from(*n);
                }
            }
        }
        Ok((total, recent))
    }

    /// Nodes of a cluster, optionally only one zone.
    pub fn nodes(
        &mut self,
        at: Duration,
        cluster: &str,
        zone: Option<&str>,
    ) -> Result<NodesView, SimError> {
        self.advance_to(at);
        let ci = match zone {
            Some(z) => self.cluster_zone(cluster, z)?,
            None => self.cluster_index(cluster)?,
        };
        let mut v = NodesView {
            ready: 0,
            total: 0,
            schedulable: 0,
            ready_ratio: 1.0,
        };
        for n in 0..self.nodes.len() {
            let node = &self.nodes[n];
            if node.cluster != ci || zone.is_some_and(|z| z != node.zone) {
                continue;
            }
            v.total += 1;
            if node.not_ready_since.is_none() {
                v.ready += 1;
                if node.schedulable
                    && !node
                        .taints
                        .iter()
                        .any(|t| t.effect != TaintEffect::PreferNoSchedule)
                {
                    v.schedulable += 1;
                }
            }
        }
        if v.total > 0 {
            v.ready_ratio = f64::from(v.ready) / f64::from(v.total);
        }
        Ok(v)
    }

    /// Memory of running pods / memory of Ready nodes (0 when no node is Ready).
    pub fn memory_utilization(&mut self, at: Duration, cluster: &str) -> Result<f64, SimError> {
        self.advance_to(at);
        let ci = self.cluster_index(cluster)?;
        Ok(self.memory_of(ci))
    }

    /// A database cluster.
    pub fn db_cluster(&mut self, at: Duration, cluster: &str) -> Result<DbClusterView, SimError> {
        self.advance_to(at);
        let db = self.db(cluster)?;
        let d = &self.dbs[db];
        let status = self.status(db);
        let has_writer = status == "available" && d.role != Role::Secondary;
        let restorable = match d.transition {
            Some((TransitionKind::Creating { .. }, _)) => None,
            _ => self
                .now
                .checked_sub(d.backups.restorable_lag)
                .filter(|&t| t >= d.created_at)
                .map(secs_f),
        };
        Ok(DbClusterView {
            status: status.to_string(),
            role: d.role.as_str().to_string(),
            writer: has_writer.then(|| d.instances[d.writer].name.clone()),
            writer_zone: has_writer.then(|| d.instances[d.writer].zone.clone()),
            writable: self.writable(db),
            latest_write_secs: self.newest_write_at(db, self.now).map(secs_f),
            latest_restorable_secs: restorable,
        })
    }

    /// Newest write the cluster holds (time since estate start).
    pub fn latest_write(
        &mut self,
        at: Duration,
        cluster: &str,
    ) -> Result<Option<Duration>, SimError> {
        self.advance_to(at);
        let db = self.db(cluster)?;
        Ok(self.newest_write_at(db, self.now))
    }

    /// Newest write at or before `t` that survived in `cluster` (see `surviving_write_before`).
    pub fn surviving_write(
        &mut self,
        at: Duration,
        cluster: &str,
        t: Duration,
    ) -> Result<Option<Duration>, SimError> {
        self.advance_to(at);
        let db = self.db(cluster)?;
        Ok(self.surviving_write_before(db, t))
    }

    /// A DNS record.
    pub fn dns(&mut self, at: Duration, record: &str) -> Result<DnsView, SimError> {
        self.advance_to(at);
        let r = self.record_index(record)?;
        Ok(DnsView {
            authoritative: self.region_of(r, self.dns_authoritative(r)).to_string(),
            answer: self.region_of(r, self.dns_answer(r)).to_string(),
            primary_healthy: self.dns[r].primary_healthy,
            ttl_seconds: secs_f(self.dns[r].p.ttl),
        })
    }

    /// An alert.
    pub fn alert(&mut self, at: Duration, name: &str) -> Result<AlertView, SimError> {
        self.advance_to(at);
        let a = self
            .alerts
            .iter()
            .find(|a| a.p.name == name)
            .ok_or_else(|| Self::unknown("alert", name, self.alert_names()))?;
        let (state, since) = match (a.firing_since, a.pending_since) {
            (Some(f), _) => ("firing", Some(f)),
            (None, Some(p)) => ("pending", Some(p)),
            _ => ("inactive", None),
        };
        Ok(AlertView {
            state: state.to_string(),
            since_secs: since.map(secs_f),
        })
    }

    /// A database instance (the `db.instance` probe).
    pub fn db_instance(&mut self, at: Duration, name: &str) -> Result<DbInstanceView, SimError> {
        self.advance_to(at);
        let (db, i) = self
            .dbs
            .iter()
            .enumerate()
            .find_map(|(d, c)| {
                c.instances
                    .iter()
                    .position(|x| x.name == name)
                    .map(|i| (d, i))
            })
            .ok_or_else(|| Self::unknown("database instance", name, self.db_instances()))?;
        let d = &self.dbs[db];
        let rebooting = d.instances[i].rebooting_until.is_some();
        let status = if d.outage || (!rebooting && !self.inst_up(db, i)) {
            "unavailable"
        } else if rebooting {
            "rebooting"
        } else if matches!(d.transition, Some((TransitionKind::Creating { .. }, _))) {
            "creating"
        } else {
            "available"
        };
        Ok(DbInstanceView {
            cluster: d.name.clone(),
            zone: d.instances[i].zone.clone(),
            status: status.to_string(),
            is_writer: d.writer == i && d.role != Role::Secondary,
        })
    }
}

/// A database instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbInstanceView {
    /// Its cluster.
    pub cluster: String,
    pub zone: String,
    /// `available`, `rebooting`, `unavailable` (zone or region lost, storage lost) or `creating`.
    pub status: String,
    /// The writer of a cluster that takes writes (a global secondary has none).
    pub is_writer: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const REC: &str = "api.example.com";

    fn t(v: f64) -> Duration {
        Duration::from_secs_f64(v)
    }

    fn sel(app: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("app".to_string(), app.to_string())])
    }

    fn estate(p: SimParams) -> Estate {
        Estate::from_params(p).expect("valid params")
    }

    /// Step in 1s until `f` holds; returns the first such time.
    fn first_time(
        e: &mut Estate,
        from: f64,
        limit: f64,
        mut f: impl FnMut(&mut Estate, Duration) -> bool,
    ) -> f64 {
        let mut x = from;
        while x <= limit {
            if f(e, t(x)) {
                return x;
            }
            x += 1.0;
        }
        panic!("condition never held between {from}s and {limit}s");
    }

    fn dns_flip_after_region_loss(ttl: u64) -> f64 {
        let mut p = SimParams::default();
        p.dns[0].ttl = secs(ttl);
        let mut e = estate(p);
        e.lose_region(t(600.0), "us-east-1").unwrap();
        assert_eq!(e.dns(t(600.0), REC).unwrap().answer, "us-east-1");
        let at = first_time(&mut e, 600.0, 4000.0, |e, x| {
            e.dns(x, REC).unwrap().answer == "us-west-2"
        });
        at - 600.0
    }

    #[test]
    fn dns_failover_time_follows_interval_threshold_and_ttl() {
        let (interval, threshold) = (30.0, 3.0);
        let d60 = dns_flip_after_region_loss(60);
        // First failing check within one interval of the loss, then threshold-1 more, then TTL.
        let expected = interval * threshold + 60.0;
        assert!(
            d60 > expected - interval && d60 <= expected + 1.0,
            "flip after {d60}s"
        );
        let d300 = dns_flip_after_region_loss(300);
        assert_eq!(d300 - d60, 240.0);
    }

    #[test]
    fn dns_flip_is_logged_in_plain_english() {
        let mut e = estate(SimParams::default());
        e.lose_region(t(600.0), "us-east-1").unwrap();
        e.advance_to(t(900.0));
        let log: Vec<String> = e
            .log()
            .iter()
            .map(|l| format!("{}: {}", l.component, l.message))
            .collect();
        assert!(log.iter().any(|l| l.contains(
            "route53 api.example.com: health check failed 3 times (interval 30s), primary marked unhealthy"
        )), "{log:#?}");
        assert!(
            log.iter()
                .any(|l| l.contains("resolvers now answer us-west-2 (TTL 1m expired)")),
            "{log:#?}"
        );
    }

    #[test]
    fn dns_fails_back_after_threshold_successes_and_ttl() {
        let mut e = estate(SimParams::default());
        e.lose_region(t(600.0), "us-east-1").unwrap();
        e.restore_region(t(1000.0), "us-east-1").unwrap();
        assert_eq!(e.dns(t(1000.0), REC).unwrap().answer, "us-west-2");
        // Evicted east pods were Pending (no Ready node); they start again on restore.
        let ready = first_time(&mut e, 1000.0, 2000.0, |e, x| {
            e.pods(x, "prod-east", "web", &sel("api")).unwrap().ready > 0
        });
        let back = first_time(&mut e, ready, 3000.0, |e, x| {
            e.dns(x, REC).unwrap().answer == "us-east-1"
        });
        // threshold (3) consecutive passing checks, 30s apart, then TTL 60s.
        let d = back - ready;
        assert!(
            (120.0..=151.0).contains(&d),
            "failback {d}s after pods Ready"
        );
        assert!(
            e.log()
                .iter()
                .any(|l| l.message.contains("primary healthy again"))
        );
    }

    #[test]
    fn manual_dns_failover_is_seen_after_ttl_and_reset_restores_health_checks() {
        let mut e = estate(SimParams::default());
        e.dns_failover(t(100.0), REC, DnsTarget::Secondary).unwrap();
        let v = e.dns(t(159.0), REC).unwrap();
        assert_eq!(
            (v.authoritative.as_str(), v.answer.as_str()),
            ("us-west-2", "us-east-1")
        );
        assert_eq!(e.dns(t(160.0), REC).unwrap().answer, "us-west-2");
        assert_eq!(
            e.service(t(160.0), "api").unwrap().serving_region,
            "us-west-2"
        );
        e.dns_reset(t(200.0), REC).unwrap();
        assert_eq!(e.dns(t(260.0), REC).unwrap().answer, "us-east-1");
    }

    #[test]
    fn pod_kill_is_ready_again_after_reschedule_delay_plus_startup() {
        let mut e = estate(SimParams::default());
        let killed = e
            .kill_pods(t(100.0), "prod-east", "web", &sel("api"), KillMode::One)
            .unwrap();
        assert_eq!(killed.len(), 1);
        let v = e.pods(t(101.0), "prod-east", "web", &sel("api")).unwrap();
        assert_eq!((v.ready, v.starting, v.restarts), (5, 0, 0));
        let v = e.pods(t(102.0), "prod-east", "web", &sel("api")).unwrap();
        assert_eq!((v.ready, v.starting, v.restarts), (5, 1, 1));
        let back = first_time(&mut e, 102.0, 400.0, |e, x| {
            e.pods(x, "prod-east", "web", &sel("api")).unwrap().ready == 6
        });
        // reschedule_delay 2s + startup 30s ± 10s jitter
        assert!((122.0..=143.0).contains(&back), "ready again at {back}s");
        // The log states the exact start-up time.
        let line = e
            .log()
            .iter()
            .rev()
            .find(|l| l.message.contains("Ready on node"))
            .unwrap();
        let startup: f64 = line
            .message
            .rsplit("(startup ")
            .next()
            .unwrap()
            .trim_end_matches("s)")
            .parse()
            .unwrap();
        assert!(
            (back - (102.0 + startup)).abs() <= 1.0,
            "{line:?} vs {back}"
        );
    }

    #[test]
    fn kill_modes_and_unmatched_selector() {
        let mut e = estate(SimParams::default());
        let all = e
            .kill_pods(t(10.0), "prod-east", "web", &sel("api"), KillMode::All)
            .unwrap();
        assert_eq!(all.len(), 6);
        let v = e.service(t(11.0), "api").unwrap();
        assert_eq!((v.availability, v.error_rate), (0.0, 1.0));
        let half = e
            .kill_pods(
                t(12.0),
                "prod-east",
                "web",
                &sel("worker"),
                KillMode::FixedPercent(crate::lang::kubernetes::Percent::new(50).unwrap()),
            )
            .unwrap();
        assert_eq!(half.len(), 2);
        let err = e
            .kill_pods(t(13.0), "prod-east", "web", &sel("nope"), KillMode::One)
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("app=nope") && msg.contains("app=api"), "{msg}");
    }

    fn writable_again_after_writer_zone_loss(detection: u64, failover: u64) -> f64 {
        let mut p = SimParams::default();
        p.databases[0].failure_detection = secs(detection);
        p.databases[0].failover_time = secs(failover);
        let mut e = estate(p);
        assert!(e.db_cluster(t(99.0), "orders-db").unwrap().writable);
        e.lose_zone(t(100.0), "us-east-1a").unwrap();
        assert!(!e.db_cluster(t(100.0), "orders-db").unwrap().writable);
        assert!(!e.service(t(100.0), "api").unwrap().db_writable);
        let back = first_time(&mut e, 100.0, 1000.0, |e, x| {
            e.db_cluster(x, "orders-db").unwrap().writable
        });
        let v = e.db_cluster(t(back), "orders-db").unwrap();
        assert_eq!(v.writer.as_deref(), Some("orders-db-2"));
        assert_eq!(v.writer_zone.as_deref(), Some("us-east-1b"));
        back - 100.0
    }

    #[test]
    fn zone_loss_with_writer_recovers_after_detection_plus_failover() {
        assert_eq!(writable_again_after_writer_zone_loss(15, 35), 50.0);
        assert_eq!(writable_again_after_writer_zone_loss(30, 60), 90.0);
        let mut e = estate(SimParams::default());
        e.lose_zone(t(100.0), "us-east-1a").unwrap();
        assert_eq!(
            e.db_cluster(t(120.0), "orders-db").unwrap().status,
            "failing-over"
        );
        // Shared storage: no data loss, writes resume.
        assert_eq!(
            e.latest_write(t(200.0), "orders-db").unwrap(),
            Some(t(200.0))
        );
        assert!(e.log().iter().any(|l| l.message == "orders-db-2 promoted to writer after 35s automatic failover"));
        // Restored zone: the old writer is back as a reader.
        e.restore_zone(t(300.0), "us-east-1a").unwrap();
        assert_eq!(
            e.db_cluster(t(301.0), "orders-db")
                .unwrap()
                .writer
                .as_deref(),
            Some("orders-db-2")
        );
    }

    #[test]
    fn zone_loss_evicts_and_replaces_pods_after_detection_eviction_and_startup() {
        let mut e = estate(SimParams::default());
        e.lose_zone(t(100.0), "us-east-1b").unwrap();
        // The pods there stop serving at once, but the API shows them Ready until the node
        // controller notices (node_failure_detection 40s).
        assert!((e.service(t(101.0), "api").unwrap().p99_latency_seconds - 0.8).abs() < 1e-9);
        let v = e.pods(t(101.0), "prod-east", "web", &sel("api")).unwrap();
        assert_eq!((v.ready, v.unreachable), (6, 0));
        let v = e.pods(t(140.0), "prod-east", "web", &sel("api")).unwrap();
        assert_eq!((v.ready, v.unreachable), (4, 2));
        // Evicted at 100 + 40 + 60; ReplicaSet reacts 2s later; the evicted pods stay
        // Terminating while their node is down.
        let v = e.pods(t(199.0), "prod-east", "web", &sel("api")).unwrap();
        assert_eq!((v.unreachable, v.restarts), (2, 0));
        let v = e.pods(t(202.0), "prod-east", "web", &sel("api")).unwrap();
        assert_eq!(
            (
                v.ready,
                v.starting,
                v.unreachable,
                v.terminating,
                v.restarts
            ),
            (4, 2, 0, 2, 2)
        );
        let back = first_time(&mut e, 202.0, 1000.0, |e, x| {
            e.pods(x, "prod-east", "web", &sel("api")).unwrap().ready == 6
        });
        assert!((222.0..=243.0).contains(&back), "replaced at {back}s");
        let n = e.nodes(t(back), "prod-east", Some("us-east-1b")).unwrap();
        assert_eq!((n.ready, n.total), (0, 3));
    }

    #[test]
    fn zone_loss_leaves_pods_pending_when_capacity_is_too_small() {
        let mut p = SimParams::default();
        p.kubernetes[0].pods_per_node = 1; // 9 slots for 6 api + 3 worker pods
        p.kubernetes[0].deployments.retain(|d| d.namespace == "web");
        let mut e = estate(p);
        e.lose_zone(t(100.0), "us-east-1a").unwrap();
        let v = e.pods(t(300.0), "prod-east", "web", &sel("api")).unwrap();
        assert_eq!((v.ready, v.pending), (4, 2));
        assert!(e.log().iter().any(|l| l.message.contains("Pending")));
        e.restore_zone(t(400.0), "us-east-1a").unwrap();
        let v = e.pods(t(400.0), "prod-east", "web", &sel("api")).unwrap();
        assert_eq!((v.pending, v.starting), (0, 2));
        assert_eq!(
            e.pods(t(441.0), "prod-east", "web", &sel("api"))
                .unwrap()
                .ready,
            6
        );
        // With the default capacity nothing is left Pending.
        let mut e = estate(SimParams::default());
        e.lose_zone(t(100.0), "us-east-1a").unwrap();
        assert_eq!(
            e.pods(t(300.0), "prod-east", "web", &sel("api"))
                .unwrap()
                .pending,
            0
        );
    }

    fn unplanned_loss(lag: u64) -> (f64, f64) {
        let mut p = SimParams::default();
        p.databases[0].global.as_mut().unwrap().replication_lag = secs(lag);
        let mut e = estate(p);
        e.lose_region(t(1000.0), "us-east-1").unwrap();
        let primary = e.latest_write(t(1100.0), "orders-db").unwrap().unwrap();
        e.global_failover(t(1100.0), "orders-global", "orders-db-dr", true)
            .unwrap();
        let dr = e.latest_write(t(1100.0), "orders-db-dr").unwrap().unwrap();
        assert_eq!(
            e.db_cluster(t(1219.0), "orders-db-dr").unwrap().status,
            "promoting"
        );
        let writable_at = first_time(&mut e, 1100.0, 2000.0, |e, x| {
            e.db_cluster(x, "orders-db-dr").unwrap().writable
        });
        let v = e.db_cluster(t(1300.0), "orders-db-dr").unwrap();
        assert_eq!(v.role, "primary");
        assert_eq!(
            v.latest_write_secs,
            Some(1300.0),
            "service writes to the new primary"
        );
        ((primary - dr).as_secs_f64(), writable_at - 1100.0)
    }

    #[test]
    fn unplanned_global_failover_loses_about_replication_lag() {
        assert_eq!(unplanned_loss(1), (1.0, 120.0));
        assert_eq!(unplanned_loss(5), (5.0, 120.0));
    }

    #[test]
    fn old_primary_comes_back_standalone_after_region_restore() {
        let mut e = estate(SimParams::default());
        e.lose_region(t(1000.0), "us-east-1").unwrap();
        e.global_failover(t(1100.0), "orders-global", "orders-db-dr", true)
            .unwrap();
        e.restore_region(t(2000.0), "us-east-1").unwrap();
        let v = e.db_cluster(t(2001.0), "orders-db").unwrap();
        assert_eq!(
            (v.role.as_str(), v.status.as_str()),
            ("standalone", "available")
        );
        assert_eq!(v.latest_write_secs, Some(1000.0));
        assert_eq!(
            e.service(t(2001.0), "api").unwrap().database,
            "orders-db-dr"
        );
    }

    #[test]
    fn planned_switchover_loses_nothing_and_refuses_when_primary_is_down() {
        let mut e = estate(SimParams::default());
        e.global_failover(t(500.0), "orders-global", "orders-db-dr", false)
            .unwrap();
        assert!(
            !e.service(t(600.0), "api").unwrap().db_writable,
            "writes unavailable during switchover"
        );
        assert_eq!(
            e.latest_write(t(600.0), "orders-db-dr").unwrap(),
            Some(t(500.0))
        );
        assert_eq!(
            e.latest_write(t(600.0), "orders-db").unwrap(),
            Some(t(500.0))
        );
        assert!(!e.db_cluster(t(679.0), "orders-db-dr").unwrap().writable);
        let v = e.db_cluster(t(680.0), "orders-db-dr").unwrap();
        assert!(v.writable);
        assert_eq!(
            e.db_cluster(t(680.0), "orders-db").unwrap().role,
            "secondary"
        );

        let mut e = estate(SimParams::default());
        e.lose_region(t(100.0), "us-east-1").unwrap();
        let err = e
            .global_failover(t(200.0), "orders-global", "orders-db-dr", false)
            .unwrap_err();
        assert!(err.to_string().contains("allow_data_loss"), "{err}");
        let err = e
            .global_failover(t(200.0), "orders-global", "orders-db", true)
            .unwrap_err();
        assert!(err.to_string().contains("orders-db-dr"), "{err}");
    }

    #[test]
    fn detach_and_promote_makes_a_standalone_writer() {
        let mut e = estate(SimParams::default());
        e.cluster_outage(t(1000.0), "orders-db").unwrap();
        e.detach_and_promote(t(1100.0), "orders-global", "orders-db-dr")
            .unwrap();
        assert_eq!(
            e.latest_write(t(1100.0), "orders-db-dr").unwrap(),
            Some(t(999.0))
        );
        assert!(!e.db_cluster(t(1159.0), "orders-db-dr").unwrap().writable);
        let v = e.db_cluster(t(1160.0), "orders-db-dr").unwrap();
        assert!(v.writable);
        assert_eq!(v.role, "standalone");
        assert!(e.service(t(1160.0), "api").unwrap().db_writable);
    }

    fn restore(size_gib: f64) -> (Estate, Duration) {
        let mut p = SimParams::default();
        p.databases[0].backups.size_gib = size_gib;
        let mut e = estate(p);
        e.cluster_outage(t(3000.0), "orders-db").unwrap();
        assert_eq!(
            e.db_cluster(t(3001.0), "orders-db").unwrap().status,
            "unavailable"
        );
        let point = e
            .pitr_restore(t(3600.0), "orders-db", "orders-restored", None, true)
            .unwrap();
        (e, point)
    }

    #[test]
    fn pitr_restore_point_and_duration_follow_parameters() {
        let (mut e, point) = restore(50.0);
        assert_eq!(point, t(3300.0), "now - restorable_lag");
        // 8m + 50 GiB × 5s = 730s
        assert_eq!(
            e.db_cluster(t(4329.0), "orders-restored").unwrap().status,
            "creating"
        );
        assert!(!e.service(t(4329.0), "api").unwrap().db_writable);
        assert_eq!(
            e.latest_write(t(4329.0), "orders-restored").unwrap(),
            Some(t(3000.0))
        );
        let v = e.db_cluster(t(4330.0), "orders-restored").unwrap();
        assert_eq!(v.status, "available");
        let s = e.service(t(4330.0), "api").unwrap();
        assert!(s.db_writable);
        assert_eq!(s.database, "orders-restored");
        let (mut e, _) = restore(100.0);
        assert_eq!(
            e.db_cluster(t(4579.0), "orders-restored").unwrap().status,
            "creating"
        );
        assert_eq!(
            e.db_cluster(t(4580.0), "orders-restored").unwrap().status,
            "available"
        );
    }

    #[test]
    fn pitr_restore_refuses_points_outside_the_window() {
        let mut e = estate(SimParams::default());
        let err = e
            .pitr_restore(t(100.0), "orders-db", "r1", None, false)
            .unwrap_err();
        assert!(err.to_string().contains("no restorable time yet"), "{err}");
        let err = e
            .pitr_restore(t(3600.0), "orders-db", "r1", Some(t(3500.0)), false)
            .unwrap_err();
        assert!(
            err.to_string().contains("outside the restorable window"),
            "{err}"
        );
        assert_eq!(
            e.pitr_restore(t(3600.0), "orders-db", "r1", Some(t(1800.5)), false)
                .unwrap(),
            t(1800.5)
        );
        assert_eq!(e.latest_write(t(3601.0), "r1").unwrap(), Some(t(1800.0)));
        let err = e
            .pitr_restore(t(3600.0), "orders-db", "r1", None, false)
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }

    fn alert_states(startup: u64) -> Vec<(f64, String, String)> {
        let mut p = SimParams::default();
        p.kubernetes[0].deployments[0].startup = secs(startup);
        p.kubernetes[0].deployments[0].startup_jitter = Duration::ZERO;
        let mut e = estate(p);
        e.kill_pods(t(100.0), "prod-east", "web", &sel("api"), KillMode::All)
            .unwrap();
        let mut out = Vec::new();
        for x in [100.0, 129.9, 130.0, 159.9, 160.0, 171.9, 172.0] {
            for name in ["ApiDown", "ApiHighErrorRate"] {
                out.push((x, name.to_string(), e.alert(t(x), name).unwrap().state));
            }
        }
        out
    }

    #[test]
    fn alerts_fire_exactly_for_after_the_condition_starts() {
        let states = alert_states(70); // pods Ready again at 100 + 2 + 70 = 172
        let get = |x: f64, n: &str| {
            states
                .iter()
                .find(|s| s.0 == x && s.1 == n)
                .unwrap()
                .2
                .clone()
        };
        assert_eq!(get(100.0, "ApiDown"), "pending");
        assert_eq!(get(129.9, "ApiDown"), "pending");
        assert_eq!(get(130.0, "ApiDown"), "firing");
        assert_eq!(get(159.9, "ApiHighErrorRate"), "pending");
        assert_eq!(get(160.0, "ApiHighErrorRate"), "firing");
        assert_eq!(get(171.9, "ApiDown"), "firing");
        assert_eq!(get(172.0, "ApiDown"), "inactive");
        assert_eq!(get(172.0, "ApiHighErrorRate"), "inactive");
        // Faster start-up: the condition clears before `for` elapses, nothing fires.
        let states = alert_states(20);
        assert!(states.iter().all(|s| s.2 != "firing"), "{states:?}");
        let mut e = estate(SimParams::default());
        e.lose_zone(t(50.0), "us-east-1a").unwrap();
        let v = e.alert(t(80.0), "DatabaseWriterUnavailable").unwrap();
        assert_eq!((v.state.as_str(), v.since_secs), ("firing", Some(80.0)));
        assert_eq!(
            e.alert(t(100.0), "DatabaseWriterUnavailable")
                .unwrap()
                .state,
            "inactive"
        );
    }

    fn scenario_log(seed: u64) -> Vec<EstateEvent> {
        let mut e = Estate::new(SimParams::default(), seed).unwrap();
        e.kill_pods(
            t(100.0),
            "prod-east",
            "web",
            &sel("api"),
            KillMode::Fixed(std::num::NonZeroU32::new(3).unwrap()),
        )
        .unwrap();
        e.lose_region(t(300.0), "us-east-1").unwrap();
        e.global_failover(t(400.0), "orders-global", "orders-db-dr", true)
            .unwrap();
        e.scale(t(400.0), "prod-west", "web", "api", 6).unwrap();
        e.advance_to(t(2000.0));
        e.log().to_vec()
    }

    #[test]
    fn same_seed_same_log_different_seed_different_jitter() {
        assert_eq!(scenario_log(7), scenario_log(7));
        let startups = |log: &[EstateEvent]| {
            log.iter()
                .filter(|l| l.message.contains("(startup "))
                .map(|l| l.message.clone())
                .collect::<Vec<_>>()
        };
        assert_ne!(startups(&scenario_log(7)), startups(&scenario_log(8)));
    }

    #[test]
    fn validation_catches_bad_references_and_absurd_values() {
        assert_eq!(SimParams::default().validate(), Vec::<String>::new());
        let mut p = SimParams::default();
        p.kubernetes[0].region = "eu-west-1".into();
        p.kubernetes[1].name = "prod-east".into();
        p.kubernetes[1].nodes_per_zone = 0;
        p.kubernetes[0].deployments[1].replicas = Some(1_000_000);
        p.kubernetes[0].deployments[0].replicas = None;
        p.kubernetes[0].deployments[0].pdb = Some(PdbParams {
            max_unavailable: Some(1),
            min_available: Some(1),
        });
        p.kubernetes[0].deployments[3].replicas = Some(2);
        p.kubernetes[0].deployments[3].pdb = Some(PdbParams {
            max_unavailable: Some(1),
            min_available: None,
        });
        p.kubernetes[0].deployments[2].termination_grace = secs(7200);
        p.databases[0].instances[0].zone = "us-west-2a".into();
        p.databases[0].writer = "orders-db-9".into();
        p.dns[0].ttl = secs(2 * 86_400);
        p.services[0].rps = 0.0;
        p.alerts[0].above = None;
        let problems = p.validate();
        for path in [
            "kubernetes[0].region: unknown region `eu-west-1`; use one of: us-east-1, us-west-2",
            "kubernetes[1].name: duplicate cluster `prod-east`",
            "kubernetes[1].nodes_per_zone: zero nodes",
            "kubernetes[0].deployments[1].replicas",
            "kubernetes[0].deployments[0].replicas: a deployment needs `replicas`",
            "kubernetes[0].deployments[0].pdb: give exactly one of `max_unavailable` or `min_available`",
            "kubernetes[0].deployments[3].replicas: a daemonset runs one pod per node; remove `replicas`",
            "kubernetes[0].deployments[3].pdb: drains skip daemonset pods",
            "kubernetes[0].deployments[2].termination_grace: 2h is absurdly long",
            "databases[0].instances[0].zone: zone `us-west-2a` is not in the cluster's region us-east-1",
            "databases[0].writer: `orders-db-9` is not one of the cluster's instances",
            "dns[0].ttl: 48h is absurdly long",
            "services[0].rps: must be a positive number",
            "alerts[0]: give exactly one of",
        ] {
            assert!(
                problems.iter().any(|x| x.starts_with(path)),
                "missing {path:?} in {problems:#?}"
            );
        }
        match Estate::new(p, 1) {
            Err(SimError::InvalidParams(v)) => assert_eq!(v, problems),
            other => panic!("expected InvalidParams, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_thing_and_list_valid_choices() {
        let mut e = estate(SimParams::default());
        let err = e.lose_zone(t(1.0), "us-east-1d").unwrap_err().to_string();
        assert!(
            err.starts_with("no zone `us-east-1d` in the estate; zones: us-east-1a, us-east-1b"),
            "{err}"
        );
        let err = e
            .cordon_zone(t(1.0), "prod-east", "us-west-2a")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("its zones: us-east-1a, us-east-1b, us-east-1c"),
            "{err}"
        );
        let err = e
            .db_failover(t(1.0), "orders-db", Some("orders-db-1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("eligible: orders-db-2, orders-db-3"), "{err}");
        let err = e
            .scale(t(1.0), "prod-east", "web", "nope", 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("web/api, web/worker"), "{err}");
        let err = e.alert(t(1.0), "Nope").unwrap_err().to_string();
        assert!(err.contains("ApiHighErrorRate, ApiDown"), "{err}");
    }

    #[test]
    fn service_metrics_follow_capacity() {
        let mut e = estate(SimParams::default());
        let v = e.service(t(1.0), "api").unwrap();
        assert_eq!(
            (v.availability, v.serving_region.as_str()),
            (1.0, "us-east-1")
        );
        let u: f64 = 200.0 / 300.0;
        assert!((v.p99_latency_seconds - 0.08 * (1.0 + 9.0 * u.powi(3))).abs() < 1e-9);
        assert_eq!(e.scale(t(10.0), "prod-east", "web", "api", 2).unwrap(), 6);
        let v = e.service(t(10.0), "api").unwrap();
        assert_eq!((v.availability, v.p99_latency_seconds), (0.5, 30.0));
        // Memory: api 2 GiB, worker 1, db 2, node-exporter 0.25 per pod over 9 × 16 GiB; the 4
        // api pods scaled away hold theirs while Terminating (30s grace).
        let others = 3.0 * 1.0 + 3.0 * 2.0 + 9.0 * 0.25;
        let m = e.memory_utilization(t(10.0), "prod-east").unwrap();
        assert!(
            (m - (6.0 * 2.0 + others) / (9.0 * 16.0)).abs() < 1e-9,
            "{m}"
        );
        let m = e.memory_utilization(t(40.0), "prod-east").unwrap();
        assert!(
            (m - (2.0 * 2.0 + others) / (9.0 * 16.0)).abs() < 1e-9,
            "{m}"
        );
        assert_eq!(e.scale(t(50.0), "prod-east", "web", "api", 6).unwrap(), 2);
        assert_eq!(e.service(t(91.0), "api").unwrap().availability, 1.0);
        // Writes fail while the database is unwritable: only reads succeed.
        e.db_reboot(t(100.0), "orders-db-1", false).unwrap();
        assert!((e.service(t(101.0), "api").unwrap().availability - 0.8).abs() < 1e-9);
        assert_eq!(e.service(t(120.0), "api").unwrap().availability, 1.0);
    }

    #[test]
    fn cordon_drain_and_uncordon() {
        let mut e = estate(SimParams::default());
        let nodes = e.cordon_zone(t(10.0), "prod-east", "us-east-1c").unwrap();
        assert_eq!(nodes, ["us-east-1c-1", "us-east-1c-2", "us-east-1c-3"]);
        let n = e.nodes(t(10.0), "prod-east", None).unwrap();
        assert_eq!((n.ready, n.total, n.schedulable), (9, 9, 6));
        // Zone a runs 2 api, 1 worker, 1 db and 3 node-exporter pods: the daemonset is skipped,
        // the api budget (max_unavailable 1) lets one api pod go, the db budget (min 2 of 3) one.
        let (evicted, refused) = e.drain_zone(t(20.0), "prod-east", "us-east-1a").unwrap();
        assert_eq!(
            (evicted.len(), refused.len()),
            (3, 1),
            "{evicted:?} {refused:?}"
        );
        assert!(refused[0].starts_with("api-"), "{refused:?}");
        let v = e.pods(t(200.0), "prod-east", "web", &sel("api")).unwrap();
        assert_eq!((v.ready, v.restarts), (6, 1));
        // Once the replacement is Ready the budget allows the second one.
        let (evicted, refused) = e.drain_zone(t(200.0), "prod-east", "us-east-1a").unwrap();
        assert_eq!((evicted.len(), refused.len()), (1, 0));
        e.uncordon_nodes(t(200.0), "prod-east", &nodes).unwrap();
        assert_eq!(
            e.nodes(t(200.0), "prod-east", None).unwrap().schedulable,
            9 - 3
        );
        let err = e
            .uncordon_nodes(t(200.0), "prod-east", &["x".to_string()])
            .unwrap_err();
        assert!(err.to_string().contains("us-east-1a-1"), "{err}");
    }

    #[test]
    fn manual_db_failover_and_reboot() {
        let mut e = estate(SimParams::default());
        assert_eq!(
            e.db_failover(t(100.0), "orders-db", Some("orders-db-3"))
                .unwrap(),
            "orders-db-3"
        );
        assert_eq!(
            e.db_cluster(t(134.0), "orders-db").unwrap().status,
            "failing-over"
        );
        let v = e.db_cluster(t(135.0), "orders-db").unwrap();
        assert_eq!(
            (v.writer.as_deref(), v.writable),
            (Some("orders-db-3"), true)
        );
        e.db_reboot(t(200.0), "orders-db-3", true).unwrap();
        assert_eq!(
            e.db_cluster(t(235.0), "orders-db")
                .unwrap()
                .writer
                .as_deref(),
            Some("orders-db-1")
        );
        e.db_reboot(t(300.0), "orders-db-1", false).unwrap();
        assert!(!e.db_cluster(t(319.0), "orders-db").unwrap().writable);
        assert!(e.db_cluster(t(320.0), "orders-db").unwrap().writable);
    }

    #[test]
    fn surviving_write_ignores_writes_after_the_point_asked() {
        let mut e = Estate::new(SimParams::default(), 42).unwrap();
        e.cluster_outage(t(1000.0), "orders-db").unwrap();
        let point = e
            .pitr_restore(t(1010.0), "orders-db", "r1", None, true)
            .unwrap();
        // Long after the restore the new cluster takes new writes; what survived from before
        // the fault is only what the restore point held.
        let after = t(1010.0 + 3600.0);
        let newest = e.latest_write(after, "r1").unwrap().unwrap();
        assert!(newest > t(1000.0), "new writes resumed: {newest:?}");
        let survived = e.surviving_write(after, "r1", t(1000.0)).unwrap().unwrap();
        assert_eq!(survived, point);
        assert_eq!(point, t(1010.0 - 300.0));
        // A cluster that never failed holds every write up to the fault.
        let mut e = Estate::new(SimParams::default(), 42).unwrap();
        e.db_failover(t(500.0), "orders-db", None).unwrap();
        assert_eq!(
            e.surviving_write(t(900.0), "orders-db", t(500.0)).unwrap(),
            Some(t(500.0))
        );
    }

    #[test]
    fn advance_never_goes_backwards() {
        let mut e = estate(SimParams::default());
        e.advance_to(t(100.0));
        e.advance_to(t(50.0));
        assert_eq!(e.now(), t(100.0));
    }

    #[test]
    fn params_round_trip_through_json() {
        let p = SimParams::default();
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["databases"][0]["failover_time"], "35s");
        assert_eq!(json["alerts"][0]["for"], "1m");
        let back: SimParams = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, p);
        let mut bad = json;
        bad["dns"][0]["tll"] = "60s".into();
        assert!(
            serde_json::from_value::<SimParams>(bad).is_err(),
            "unknown fields are rejected"
        );
    }
}
