//! The database part of the estate: Aurora-like clusters and instances, the global database,
//! failovers, reboots, outages, backups and point-in-time restore.

use std::time::Duration;

use super::*;
use crate::lang::duration::format as fmt;

/// Fixed time an instance reboot without failover keeps the instance down.
pub const DB_REBOOT_TIME: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Primary,
    Secondary,
    Standalone,
}

impl Role {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
            Role::Standalone => "standalone",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct DbInstance {
    pub(super) name: String,
    pub(super) zone: String,
    pub(super) rebooting_until: Option<Duration>,
}

#[derive(Debug, Clone)]
pub(super) enum TransitionKind {
    FailingOver { target: usize, reason: String },
    Promoting { what: String },
    Creating { serve: Vec<usize>, took: Duration },
}

#[derive(Debug, Clone)]
pub(super) struct DbCluster {
    pub(super) name: String,
    pub(super) region: String,
    pub(super) instances: Vec<DbInstance>,
    pub(super) writer: usize,
    pub(super) role: Role,
    pub(super) global: Option<usize>,
    pub(super) failover_time: Duration,
    pub(super) failure_detection: Duration,
    pub(super) write_interval: Duration,
    pub(super) backups: BackupParams,
    pub(super) transition: Option<(TransitionKind, Duration)>,
    pub(super) outage: bool,
    pub(super) epoch: u64,
    pub(super) created_at: Duration,
    /// Newest write held when the cluster got its data (promotion, restore).
    pub(super) inherited: Option<Duration>,
    /// Periods during which the cluster took writes: (start, end or open).
    pub(super) spans: Vec<(Duration, Option<Duration>)>,
}

#[derive(Debug, Clone)]
pub(super) struct Global {
    pub(super) name: String,
    pub(super) primary: usize,
    pub(super) members: Vec<usize>,
    pub(super) p: GlobalDbParams,
}

impl Estate {
    pub(super) fn inst_up(&self, db: usize, i: usize) -> bool {
        let inst = &self.dbs[db].instances[i];
        inst.rebooting_until.is_none()
            && !self.zone_lost(&inst.zone)
            && self.region_reachable(&self.dbs[db].region)
    }

    pub(super) fn writable(&self, db: usize) -> bool {
        let d = &self.dbs[db];
        !d.outage
            && d.transition.is_none()
            && d.role != Role::Secondary
            && self.inst_up(db, d.writer)
    }

    pub(super) fn status(&self, db: usize) -> &'static str {
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
    pub(super) fn surviving_write_before(&self, db: usize, t: Duration) -> Option<Duration> {
        // `own_newest_at` counts inherited data only once the cluster exists; data inherited by
        // a cluster created after `t` (a restore, a promotion) survived all the same.
        self.dbs[db]
            .inherited
            .filter(|w| *w <= t)
            .max(self.own_newest_at(db, t))
    }

    /// Newest write held at time `p` (secondaries: what has replicated from the primary).
    pub(super) fn newest_write_at(&self, db: usize, p: Duration) -> Option<Duration> {
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

    pub(super) fn writer_lost(&mut self, db: usize, why: &str) {
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
}

// ---------------------------------------------------------------------------
// Event handlers
// ---------------------------------------------------------------------------

impl Estate {
    /// `Event::DbDetect`: a writer loss is noticed; automatic failover if a reader can take over.
    pub(super) fn on_db_detect(&mut self, db: usize, epoch: u64) {
        let d = &self.dbs[db];
        if d.epoch != epoch || d.outage || d.transition.is_some() || self.inst_up(db, d.writer) {
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

    /// `Event::DbTransitionDone`: a failover, promotion or restore completes.
    pub(super) fn on_db_transition_done(&mut self, db: usize, epoch: u64) {
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
                    let msg = format!("writes now go to {name} (was {})", self.dbs[from].name);
                    self.note(format!("service {sname}"), msg);
                }
            }
        }
    }

    /// `Event::InstanceBack`: a rebooted instance is back.
    pub(super) fn on_instance_back(&mut self, db: usize, inst: usize, until: Duration) {
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
}

// ---------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------

impl Estate {
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
}
