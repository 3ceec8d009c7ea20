//! The estate model: parameters, the event engine, actions and observations.
//!
//! See the [module docs](super) for the rules the model follows. This file holds the
//! [`Estate`] itself (its state, constructor and the lookups every domain shares), the error
//! type and the seeded randomness; each domain lives in its own module:
//!
//! - `params`: [`SimParams`], the reference estate and validation;
//! - `queue`: the event queue, advancing the clock, dispatching events to the domains;
//! - `workloads`: nodes, taints, workloads and pods (scheduling, reconciling, rollouts,
//!   kills, cordons, drains, scaling);
//! - `objects`: the Kubernetes part as API objects and its change feed;
//! - `database`: Aurora-like clusters, the global database, backups and PITR;
//! - `dns`: Route 53-like failover records and health checks;
//! - `services`: client load, service metrics, write spans and alerts;
//! - `faults`: zone and region loss and restore;
//! - `views`: the observation structs probes return and the methods producing them.

use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lang::duration::format as fmt;

mod database;
mod dns;
mod faults;
mod objects;
mod params;
mod queue;
mod services;
#[cfg(test)]
mod tests;
mod views;
mod workloads;

pub use database::DB_REBOOT_TIME;
pub use objects::{
    Change, ChangeType, NamespaceObj, NodeObj, Obj, ObjKind, PdbObj, PodObj, ReplicaSetObj,
    WorkloadObj,
};
pub use params::{
    AlertParams, BackupParams, ClusterParams, DEFAULT_TERMINATION_GRACE, DatabaseParams,
    DbInstanceParams, DeploymentParams, DnsRecordParams, GlobalDbParams, HealthCheckParams, Metric,
    PdbParams, RegionParams, RegionRole, SecondaryClusterParams, ServiceParams, SimParams,
    WorkloadKind,
};
pub use views::{
    AlertView, DbClusterView, DbInstanceView, DnsView, NodesView, PodsView, ServiceView,
    summarize_pods,
};
pub use workloads::{PodRecovery, Taint, TaintEffect, UNREACHABLE_TAINT};

use database::{DbCluster, DbInstance, Global, Role, TransitionKind};
use dns::DnsState;
use params::list;
use queue::{Event, Queued};
use services::{AlertState, ServiceState};
use workloads::{Deployment, Node, Phase, Pod, Why, fnv, matches, safe_chars};

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

    /// End of every action: recompute derived state, then return its result.
    fn finish<T>(&mut self, v: T) -> Result<T, SimError> {
        self.refresh();
        Ok(v)
    }
}
