//! The simulated estate as a [`Provider`]: maps the portable action and probe vocabulary onto the
//! model, on the run clock (virtual time when the runtime is paused).
//!
//! Dry runs apply the action to a throwaway copy of the estate, so they resolve targets exactly
//! ("would kill api-7f3k2") and touch nothing.

mod k8s;

use crate::backend::{
    Action, BoxFuture, Call, EnvironmentEvent, PreflightProblem, Probe, Provider, ProviderError,
    RunContext, Typed,
};
use crate::engine::clock::RunClock;
use crate::lang::action::{DnsSide, HealthCheckRef, RestoreTime};
use crate::lang::diag::Diagnostic;
use crate::lang::environment::{Backend, Environment};
use crate::lang::kubernetes::DrainMethod;
use crate::sim::model::{DnsTarget, Estate, SimError, SimParams};
use serde_json::{Value as Json, json};
use std::sync::Mutex;
use std::time::Duration;

pub use crate::sim::shared::{SharedEstate, WARM_UP};

pub struct SimProvider {
    shared: SharedEstate,
    /// (log entries, pod recoveries) already turned into environment events.
    cursor: Mutex<(usize, usize)>,
    seed: u64,
}

/// Check an environment's `sim:` settings without running anything.
pub fn check_settings(env: &Environment) -> Result<(), Vec<Diagnostic>> {
    SimProvider::new(env, None).map(|_| ())
}

impl SimProvider {
    /// Build the estate from an environment's settings; `seed` overrides the environment's.
    pub fn new(env: &Environment, seed: Option<u64>) -> Result<SimProvider, Vec<Diagnostic>> {
        let mut params: SimParams = env.decode_settings(
            Backend::Sim,
            "fix this setting; environments/sim.yaml documents every one",
        )?;
        if let Some(s) = seed {
            params.seed = s;
        }
        let seed = params.seed;
        match Estate::new(params, seed) {
            Ok(estate) => Ok(SimProvider {
                shared: SharedEstate::new(estate),
                cursor: Mutex::new((0, 0)),
                seed,
            }),
            Err(SimError::InvalidParams(problems)) => Err(problems
                .into_iter()
                .map(|p| {
                    let path = p.split([':', ' ']).next().unwrap_or_default().to_string();
                    env.settings_error(
                        Backend::Sim,
                        &path,
                        p.clone(),
                        "fix this setting; environments/sim.yaml documents every one".into(),
                    )
                })
                .collect()),
            Err(e) => Err(vec![env.settings_error(
                Backend::Sim,
                "",
                e.to_string(),
                "fix the simulated estate's settings".into(),
            )]),
        }
    }

    /// A provider over an estate shared with other views of it.
    pub fn from_shared(shared: SharedEstate, seed: u64) -> SimProvider {
        SimProvider {
            shared,
            cursor: Mutex::new((0, 0)),
            seed,
        }
    }

    /// The estate this provider drives, for other views of it.
    pub fn shared(&self) -> SharedEstate {
        self.shared.clone()
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn clock(&self) -> RunClock {
        self.shared.clock()
    }

    /// Estate time now (run clock + warm-up).
    fn now(&self) -> Duration {
        WARM_UP + self.clock().elapsed()
    }

    /// Run-clock time of an estate time, as RFC 3339 (times before the run are before its start).
    fn time(&self, secs: Option<f64>) -> Json {
        match secs {
            Some(s) => {
                let offset_ms = (s * 1000.0) as i64 - WARM_UP.as_millis() as i64;
                json!(
                    (self.clock().start_wall + chrono::Duration::milliseconds(offset_ms))
                        .to_rfc3339()
                )
            }
            None => Json::Null,
        }
    }

    /// Estate time of a run-clock wall time.
    fn estate_time(&self, t: chrono::DateTime<chrono::Utc>) -> Duration {
        let ms = (t - self.clock().start_wall).num_milliseconds() + WARM_UP.as_millis() as i64;
        Duration::from_millis(ms.max(0) as u64)
    }

    fn default_cluster(estate: &Estate) -> String {
        estate.clusters().into_iter().next().unwrap_or_default()
    }
}

fn err(e: SimError) -> ProviderError {
    match e {
        SimError::Refused(m) => ProviderError::invalid_state(m),
        other => ProviderError::not_found(other.to_string()),
    }
}

fn to_json<T: serde::Serialize>(v: T) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// Apply an action to an estate at `at`. Shared by real runs and dry runs (on a copy).
fn apply(
    estate: &mut Estate,
    at: Duration,
    sim: &SimProvider,
    action: &Action,
) -> Result<Json, ProviderError> {
    let cluster = action
        .cluster()
        .map(str::to_string)
        .unwrap_or_else(|| SimProvider::default_cluster(estate));
    Ok(match action {
        Action::AzPowerInterruption(z) => {
            estate.lose_zone(at, &z.zone).map_err(err)?;
            json!({"zone": z.zone, "power": "off"})
        }
        Action::RegionOutage(r) => {
            estate.lose_region(at, &r.region).map_err(err)?;
            json!({"region": r.region, "state": "lost"})
        }
        Action::DbClusterFailover(f) => {
            let target = f.target_instance.as_deref();
            json!({"cluster": f.cluster, "new_writer": estate.db_failover(at, &f.cluster, target).map_err(err)?})
        }
        Action::DbInstanceReboot(r) => {
            estate
                .db_reboot(at, &r.instance, r.force_failover)
                .map_err(err)?;
            json!({"instance": r.instance, "force_failover": r.force_failover})
        }
        Action::DbGlobalSwitchover(g) | Action::DbGlobalFailover(g) => {
            let loss = matches!(action, Action::DbGlobalFailover(_)) && g.allow_data_loss;
            estate
                .global_failover(at, &g.global_cluster, &g.target_cluster, loss)
                .map_err(err)?;
            json!({"global_cluster": g.global_cluster, "target_cluster": g.target_cluster, "allow_data_loss": loss})
        }
        Action::DbDetachAndPromote(d) => {
            estate
                .detach_and_promote(at, &d.global_cluster, &d.cluster)
                .map_err(err)?;
            json!({"cluster": d.cluster, "detached_from": d.global_cluster})
        }
        Action::DbClusterOutage(c) => {
            estate.cluster_outage(at, &c.cluster).map_err(err)?;
            json!({"cluster": c.cluster, "state": "unavailable"})
        }
        Action::DbPointInTimeRestore(r) => {
            let to = match &r.restore_time {
                RestoreTime::Latest => None,
                RestoreTime::At(t) => Some(sim.estate_time(*t)),
            };
            let point = estate
                .pitr_restore(at, &r.source_cluster, &r.target_cluster, to, r.serve)
                .map_err(err)?;
            json!({"source_cluster": r.source_cluster, "target_cluster": r.target_cluster, "restore_point": sim.time(Some(point.as_secs_f64())), "serve": r.serve})
        }
        Action::DnsFailover(d) => {
            let to = match d.to {
                DnsSide::Primary => DnsTarget::Primary,
                DnsSide::Secondary => DnsTarget::Secondary,
            };
            estate.dns_failover(at, &d.record, to).map_err(err)?;
            json!({"record": d.record, "to": d.to.as_str()})
        }
        other if other.name().starts_with("k8s.") => k8s::apply(estate, at, sim, &cluster, other)?,
        other => return Err(ProviderError::unsupported("sim", other.name())),
    })
}

/// Revert an action on the estate (see [`Provider::revert`]).
fn revert_on(
    e: &mut Estate,
    at: Duration,
    action: &Action,
    output: &Json,
) -> Result<Json, ProviderError> {
    match action {
        Action::AzPowerInterruption(z) => {
            e.restore_zone(at, &z.zone).map_err(err)?;
            Ok(json!({"zone": z.zone, "power": "on"}))
        }
        Action::RegionOutage(r) => {
            e.restore_region(at, &r.region).map_err(err)?;
            Ok(json!({"region": r.region, "state": "restored"}))
        }
        Action::DbClusterOutage(c) => {
            e.cluster_repair(at, &c.cluster).map_err(err)?;
            Ok(json!({"cluster": c.cluster, "state": "repaired"}))
        }
        Action::DnsFailover(d) => {
            e.dns_reset(at, &d.record).map_err(err)?;
            Ok(json!({"record": d.record, "control": "health checks"}))
        }
        other if other.name().starts_with("k8s.") => k8s::revert(e, at, other, output),
        other => Err(ProviderError::unsupported(
            "sim",
            &format!("rollback of {}", other.name()),
        )),
    }
}

impl Provider for SimProvider {
    fn backend(&self) -> &'static str {
        "sim"
    }

    fn start(&self, ctx: &RunContext) {
        self.shared.start(ctx.clock);
    }

    fn inject<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            if let Action::FisExperiment(f) = action {
                return crate::sim::fis::inject(&self.shared, f).await;
            }
            let out = {
                let mut e = self.shared.lock();
                apply(&mut e, self.now(), self, action)
            };
            self.shared.notify_changed();
            let mut out = out?;
            if let Action::DrainZone(z) = action
                && z.method == DrainMethod::Evict
            {
                out = self.finish_drain(out, z.timeout, z.grace_period).await?;
            }
            if let Action::NodeDrain(n) = action {
                out = self.finish_drain(out, n.timeout, n.grace_period).await?;
            }
            // A restore is done when its cluster is available (unless told not to wait).
            if let Action::DbPointInTimeRestore(r) = action
                && r.wait
            {
                loop {
                    let status = self
                        .shared
                        .lock()
                        .db_cluster(self.now(), &r.target_cluster)
                        .map_err(err)?
                        .status;
                    if status == "available" {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
            Ok(out)
        })
    }

    fn revert<'a>(
        &'a self,
        action: &'a Action,
        output: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            if let Action::FisExperiment(f) = action {
                return crate::sim::fis::revert(&self.shared, f, output).await;
            }
            let at = self.now();
            let mut e = self.shared.lock();
            let r = revert_on(&mut e, at, action, output);
            drop(e);
            self.shared.notify_changed();
            r
        })
    }

    fn observe<'a>(&'a self, probe: &'a Probe) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            if let Probe::FisExperiment(q) = probe {
                return crate::sim::fis::observe(&self.shared, q.template_id.as_deref());
            }
            let at = self.now();
            let mut e = self.shared.lock();
            let cluster = probe
                .cluster()
                .map(str::to_string)
                .unwrap_or_else(|| Self::default_cluster(&e));
            Ok(match probe {
                Probe::ServiceMetrics(sv) => to_json(e.service(at, &sv.service).map_err(err)?),
                Probe::DbCluster(q) => {
                    let mut v = e.db_cluster(at, &q.cluster).map_err(err)?;
                    if let Some(t) = q.as_of {
                        let t = self.estate_time(t);
                        v.latest_write_secs = e
                            .surviving_write(at, &q.cluster, t)
                            .map_err(err)?
                            .map(|d| d.as_secs_f64());
                    }
                    drop(e);
                    json!({
                        "cluster": q.cluster,
                        "status": v.status,
                        "role": v.role,
                        "writer": v.writer,
                        "writer_zone": v.writer_zone,
                        "writable": v.writable,
                        "latest_write": self.time(v.latest_write_secs),
                        "latest_restorable_time": self.time(v.latest_restorable_secs),
                    })
                }
                Probe::DnsRecord(r) => to_json(e.dns(at, &r.record).map_err(err)?),
                Probe::DbInstance(i) => {
                    let v = e.db_instance(at, &i.instance).map_err(err)?;
                    json!({"instance": i.instance, "cluster": v.cluster, "status": v.status, "available": v.status == "available", "zone": v.zone, "is_writer": v.is_writer})
                }
                Probe::DnsHealthCheck(HealthCheckRef::Id(_)) => {
                    return Err(ProviderError::not_found(
                        "the simulated estate names health checks by record: use `record` instead of `health_check_id`".into(),
                    ));
                }
                Probe::DnsHealthCheck(HealthCheckRef::Record(record)) => {
                    let v = e.dns(at, record).map_err(err)?;
                    json!({"record": record, "healthy": v.primary_healthy})
                }
                Probe::Alert(a) => {
                    let v = e.alert(at, &a.name).map_err(err)?;
                    drop(e);
                    json!({"name": a.name, "state": v.state, "firing": v.state == "firing", "since": self.time(v.since_secs)})
                }
                other if other.name().starts_with("k8s.") => {
                    k8s::observe(&mut e, at, &cluster, other)?
                }
                other => return Err(ProviderError::unsupported("sim", other.name())),
            })
        })
    }

    fn describe<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            if let Action::FisExperiment(f) = action {
                return crate::sim::fis::describe(&self.shared, f);
            }
            self.describe_now(action)
        })
    }

    fn preflight<'a>(&'a self, calls: &'a [Call]) -> BoxFuture<'a, Vec<PreflightProblem>> {
        Box::pin(async move {
            let mut problems = crate::sim::fis::preflight_calls(&self.shared, calls);
            problems.extend(self.preflight_estate(calls).await);
            problems
        })
    }

    fn drain_events(&self) -> Vec<EnvironmentEvent> {
        let mut out = self.drain_now();
        crate::sim::fis::drain_into(&self.shared, &mut out);
        out
    }
}

/// Whether preflight can check a call against the estate as it is before the drill: the call
/// names what exists from the start (clusters, namespaces, pods, nodes, zones, regions, records,
/// services, alerts). Database calls are checked unless the drill restores a cluster (a later
/// step may name the cluster the restore creates).
fn checked_at_preflight(c: &Call, restores: bool) -> bool {
    let n = c.name();
    if matches!(c.typed, Typed::Action(_)) {
        n.starts_with("k8s.")
            || matches!(
                n,
                "az.power_interruption" | "region.outage" | "dns.failover"
            )
            || (n.starts_with("db.") && !restores)
    } else {
        n.starts_with("k8s.")
            || matches!(
                n,
                "service.metrics" | "alert" | "dns.record" | "dns.health_check"
            )
            || (matches!(n, "db.cluster" | "db.instance") && !restores)
    }
}

impl SimProvider {
    /// Check every call against a scratch copy of the estate as it is before the drill: each
    /// action is applied (alone) to its own copy, each probe observed, so a target that does not
    /// exist, a selector that matches nothing, a refused cap or the kube-system rule is found
    /// before anything runs. Read-only: the estate, its clock and its generator are untouched.
    async fn preflight_estate(&self, calls: &[Call]) -> Vec<PreflightProblem> {
        let restores = calls.iter().any(|c| c.name() == "db.point_in_time_restore");
        let scratch =
            SimProvider::from_shared(SharedEstate::new(self.shared.lock().clone()), self.seed);
        let mut problems = Vec::new();
        for c in calls.iter().filter(|c| checked_at_preflight(c, restores)) {
            let r = match &c.typed {
                Typed::Action(a) => scratch.describe_now(a).map(|_| ()),
                Typed::Probe(p) => scratch.observe(p).await.map(|_| ()),
                Typed::Canary(_) => Err(ProviderError::unsupported("sim", "canary")),
            };
            if let Err(error) = r {
                problems.push(PreflightProblem {
                    owner: c.owner.clone(),
                    error,
                });
            }
        }
        problems
    }

    fn describe_now(&self, action: &Action) -> Result<String, ProviderError> {
        let mut copy = self.shared.lock().clone();
        let out = apply(&mut copy, self.now(), self, action)?;
        let what = match action {
            Action::DbClusterFailover(f) => format!(
                "fail over {} to {}",
                f.cluster,
                out["new_writer"].as_str().unwrap_or_default()
            ),
            a if a.name().starts_with("k8s.") => k8s::describe(a, &out),
            a => format!("{} {out}", a.name()),
        };
        Ok(what)
    }

    fn drain_now(&self) -> Vec<EnvironmentEvent> {
        let at = self.now();
        let mut e = self.shared.lock();
        e.advance_to(at);
        let mut cursor = self.cursor.lock().expect("cursor poisoned");
        let log = e.log();
        let ms = |t: Duration| (t.saturating_sub(WARM_UP)).as_millis() as u64;
        // Events of the warm-up (before the run) are history, not part of the drill.
        let mut out: Vec<EnvironmentEvent> = log[cursor.0.min(log.len())..]
            .iter()
            .filter(|ev| ev.at >= WARM_UP)
            .map(|ev| EnvironmentEvent {
                at_ms: ms(ev.at),
                component: ev.component.clone(),
                message: ev.message.clone(),
                detail: None,
            })
            .collect();
        cursor.0 = log.len();
        let recoveries = e.pod_recoveries();
        for r in recoveries[cursor.1.min(recoveries.len())..]
            .iter()
            .filter(|r| r.ready_at >= WARM_UP)
        {
            let node = |n: &Option<String>| n.clone().unwrap_or_else(|| "-".into());
            out.push(EnvironmentEvent {
                at_ms: ms(r.ready_at),
                component: format!("k8s {}", r.cluster),
                message: format!(
                    "pod {}/{} (node {}) recovered: replacement {} on node {} scheduled after {}, Ready after {}",
                    r.namespace,
                    r.pod,
                    node(&r.node),
                    r.replacement,
                    node(&r.replacement_node),
                    crate::lang::duration::format(r.scheduled_at.saturating_sub(r.killed_at)),
                    crate::lang::duration::format(r.ready_at.saturating_sub(r.killed_at)),
                ),
                detail: Some(json!({
                    "kind": "pod_recovery",
                    "namespace": r.namespace,
                    "pod": r.pod,
                    "node": r.node,
                    "owner": r.owner,
                    "replacement": r.replacement,
                    "replacement_node": r.replacement_node,
                    "killed_at_ms": ms(r.killed_at),
                    "scheduled_after_ms": r.scheduled_at.saturating_sub(r.killed_at).as_millis() as u64,
                    "ready_after_ms": r.ready_at.saturating_sub(r.killed_at).as_millis() as u64,
                })),
            });
        }
        cursor.1 = recoveries.len();
        out.sort_by_key(|ev| ev.at_ms);
        out
    }
}
