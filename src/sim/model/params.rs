//! Parameters of the simulated estate: [`SimParams`], the reference estate (`Default`) and
//! validation (every problem named by its field path).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lang::duration::{self, format as fmt};

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

pub(super) fn secs(n: u64) -> Duration {
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

pub(super) fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<&str> = items.into_iter().collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

impl SimParams {
    pub(super) fn region(&self, name: &str) -> Option<&RegionParams> {
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
        self.validate_regions(&mut p);
        self.validate_kubernetes(&mut p);
        self.validate_databases(&mut p);
        self.validate_dns(&mut p);
        self.validate_services(&mut p);
        self.validate_alerts(&mut p);
        p.0
    }

    /// Regions and their zones: named once each, at most one primary.
    fn validate_regions(&self, p: &mut Problems) {
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
    }

    /// Clusters: their region, nodes, deployments, budgets and timings.
    fn validate_kubernetes(&self, p: &mut Problems) {
        p.unique(
            "cluster",
            self.kubernetes
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("kubernetes[{i}].name"), c.name.as_str())),
        );
        for (i, c) in self.kubernetes.iter().enumerate() {
            let at = format!("kubernetes[{i}]");
            self.check_region(p, &format!("{at}.region"), &c.region);
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
    }

    /// Database clusters, their instances, global databases, backups and timings.
    fn validate_databases(&self, p: &mut Problems) {
        let mut cluster_names = Vec::new();
        let mut instance_names = Vec::new();
        let mut global_names = Vec::new();
        for (i, d) in self.databases.iter().enumerate() {
            let at = format!("databases[{i}]");
            cluster_names.push((format!("{at}.name"), d.name.as_str()));
            let region = self.check_region(p, &format!("{at}.region"), &d.region);
            self.check_instances(p, &format!("{at}.instances"), region, &d.instances);
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
                    let r = self.check_region(p, &format!("{sp}.region"), &sc.region);
                    if sc.region == d.region {
                        p.push(
                            format_args!("{sp}.region"),
                            "a secondary must be in another region than the primary",
                        );
                    }
                    self.check_instances(p, &format!("{sp}.instances"), r, &sc.instances);
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
    }

    /// Failover records: their regions, TTLs and health checks.
    fn validate_dns(&self, p: &mut Problems) {
        p.unique(
            "dns record",
            self.dns
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("dns[{i}].name"), r.name.as_str())),
        );
        for (i, r) in self.dns.iter().enumerate() {
            let at = format!("dns[{i}]");
            self.check_region(p, &format!("{at}.primary_region"), &r.primary_region);
            self.check_region(p, &format!("{at}.secondary_region"), &r.secondary_region);
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
    }

    /// Services: the deployments that serve them, load and latency figures.
    fn validate_services(&self, p: &mut Problems) {
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
    }

    /// Alerts: the service they watch, one threshold, a sane `for`.
    fn validate_alerts(&self, p: &mut Problems) {
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
    }
}
