//! Services: client load, service metrics, write spans and alerts (recomputed after every
//! change by [`Estate::refresh`]).

use std::time::Duration;

use super::*;
use crate::lang::duration::format as fmt;

#[derive(Debug, Clone)]
pub(super) struct AlertState {
    pub(super) p: AlertParams,
    pub(super) svc: usize,
    pub(super) pending_since: Option<Duration>,
    pub(super) firing_since: Option<Duration>,
    pub(super) epoch: u64,
}

#[derive(Debug, Clone)]
pub(super) struct ServiceState {
    pub(super) p: ServiceParams,
    pub(super) record: usize,
    pub(super) target: usize,
    pub(super) writing: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Metrics {
    pub(super) availability: f64,
    pub(super) error_rate: f64,
    pub(super) p99: f64,
    pub(super) db_writable: bool,
    pub(super) pods_ready_ratio: f64,
    pub(super) memory: f64,
    pub(super) reaching: bool,
}

impl Estate {
    /// The deployment serving service `s` in `region`, if any.
    fn serving_dep(&self, s: usize, region: &str) -> Option<usize> {
        let p = &self.services[s].p;
        self.deployments.iter().position(|d| {
            d.p.name == p.deployment
                && d.p.namespace == p.namespace
                && self.cluster_p(d.cluster).region == region
        })
    }

    pub(super) fn endpoint_healthy(&self, s: Option<usize>, region: &str) -> bool {
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

    pub(super) fn memory_of(&self, ci: usize) -> f64 {
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

    pub(super) fn metrics(&self, s: usize) -> Metrics {
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
    pub(super) fn refresh(&mut self) {
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
    /// `Event::AlertFor`: an alert's condition has held for its `for` duration.
    pub(super) fn on_alert_for(&mut self, alert: usize, epoch: u64) {
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
