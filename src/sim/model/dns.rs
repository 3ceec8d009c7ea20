//! DNS: Route 53-like failover records, their health checks, TTL propagation and manual
//! failover.

use std::time::Duration;

use super::*;
use crate::lang::duration::format as fmt;

#[derive(Debug, Clone)]
pub(super) struct DnsState {
    pub(super) p: DnsRecordParams,
    pub(super) fails: u32,
    pub(super) oks: u32,
    pub(super) primary_healthy: bool,
    pub(super) forced: Option<DnsTarget>,
    pub(super) history: Vec<(Duration, DnsTarget)>,
    pub(super) answered: DnsTarget,
}

impl Estate {
    pub(super) fn region_of(&self, r: usize, t: DnsTarget) -> &str {
        match t {
            DnsTarget::Primary => &self.dns[r].p.primary_region,
            DnsTarget::Secondary => &self.dns[r].p.secondary_region,
        }
    }

    pub(super) fn dns_authoritative(&self, r: usize) -> DnsTarget {
        self.dns[r].history.last().expect("non-empty").1
    }

    pub(super) fn dns_answer(&self, r: usize) -> DnsTarget {
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
}

// ---------------------------------------------------------------------------
// Event handlers
// ---------------------------------------------------------------------------

impl Estate {
    pub(super) fn health_check(&mut self, r: usize) {
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

    /// `Event::DnsPropagated`: resolvers follow the authoritative answer once the TTL has passed.
    pub(super) fn on_dns_propagated(&mut self, r: usize) {
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
}

// ---------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------

impl Estate {
    pub(super) fn record_index(&self, record: &str) -> Result<usize, SimError> {
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
