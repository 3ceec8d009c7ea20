//! The event queue and scheduler: queued events in `(time, seq)` order, advancing the clock, and
//! the dispatch of each event to its domain's handler.

use super::*;
use std::cmp::Ordering;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Event {
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
pub(super) struct Queued {
    pub(super) at: Duration,
    pub(super) seq: u64,
    pub(super) event: Event,
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

impl Estate {
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

    pub(super) fn schedule(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.queue.push(Queued {
            at: at.max(self.now),
            seq: self.seq,
            event,
        });
    }

    /// Dispatch one event to its domain's handler.
    fn handle(&mut self, event: Event) {
        match event {
            Event::PodReady(id) => self.on_pod_ready(id),
            Event::PodGone(id) => self.on_pod_gone(id),
            Event::Reconcile(dep) => self.reconcile(dep),
            Event::NodesNoticed {
                cluster,
                zone,
                epoch,
            } => self.on_nodes_noticed(cluster, zone, epoch),
            Event::EvictZone {
                cluster,
                zone,
                epoch,
            } => self.on_evict_zone(cluster, zone, epoch),
            Event::DbDetect { db, epoch } => self.on_db_detect(db, epoch),
            Event::DbTransitionDone { db, epoch } => self.on_db_transition_done(db, epoch),
            Event::InstanceBack { db, inst, until } => self.on_instance_back(db, inst, until),
            Event::HealthCheck(r) => self.health_check(r),
            Event::DnsPropagated(r) => self.on_dns_propagated(r),
            Event::AlertFor { alert, epoch } => self.on_alert_for(alert, epoch),
        }
    }
}
