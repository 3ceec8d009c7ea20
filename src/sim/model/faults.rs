//! Faults: zone loss (power interruption) and region loss, their restore, and the node
//! controller's reaction to a lost zone.

use std::time::Duration;

use super::*;
use crate::lang::duration::format as fmt;

impl Estate {
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
}

// ---------------------------------------------------------------------------
// Event handlers
// ---------------------------------------------------------------------------

impl Estate {
    /// `Event::NodesNoticed`: the node controller marks a lost zone's nodes NotReady.
    pub(super) fn on_nodes_noticed(&mut self, cluster: usize, zone: String, epoch: u64) {
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

    /// `Event::EvictZone`: the pods on a lost zone's NotReady nodes are evicted.
    pub(super) fn on_evict_zone(&mut self, cluster: usize, zone: String, epoch: u64) {
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
}
