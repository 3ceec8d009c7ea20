//! Observations: the `*View` structs probes return, and the [`Estate`] methods that produce them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use serde::Serialize;

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
