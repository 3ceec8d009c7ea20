//! The simulated estate as a [`Provider`]: maps the portable action and probe vocabulary onto the
//! model, on the run clock (virtual time when the runtime is paused).
//!
//! Dry runs apply the action to a throwaway copy of the estate, so they resolve targets exactly
//! ("would kill api-7f3k2") and touch nothing.

mod k8s;

use super::model::{DnsTarget, Estate, SimError, SimParams};
use crate::engine::clock::RunClock;
use crate::lang::diag::Diagnostic;
use crate::lang::environment::{Backend, Environment};
use crate::provider::{
    BoxFuture, Call, EnvironmentEvent, PreflightProblem, Provider, ProviderError, RunContext,
};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// How long the estate has been running when a drill starts: write history and restorable
/// backups exist, as in a real estate.
pub const WARM_UP: Duration = Duration::from_secs(3600);

pub struct SimProvider {
    shared: SharedEstate,
    /// (log entries, pod recoveries) already turned into environment events.
    cursor: Mutex<(usize, usize)>,
    seed: u64,
}

/// An estate and its clock, shareable between the provider and other views of the same estate
/// (the Kubernetes API that `firedrill sim serve` and the tests serve from it). Estate time is
/// [`WARM_UP`] + the clock's elapsed time; the first clock set wins.
#[derive(Clone)]
pub struct SharedEstate {
    estate: Arc<Mutex<Estate>>,
    clock: Arc<OnceLock<RunClock>>,
    changed: Arc<tokio::sync::Notify>,
}

impl SharedEstate {
    pub fn new(estate: Estate) -> SharedEstate {
        SharedEstate {
            estate: Arc::new(Mutex::new(estate)),
            clock: Arc::new(OnceLock::new()),
            changed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Tell every view waiting on the estate (watches) that something acted on it.
    pub fn notify_changed(&self) {
        self.changed.notify_waiters();
    }

    /// What [`SharedEstate::notify_changed`] wakes.
    pub fn changes(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// Wall-clock milliseconds of estate time zero (estate time runs [`WARM_UP`] ahead of the
    /// run clock).
    pub fn epoch_ms(&self) -> i64 {
        self.clock().start_wall.timestamp_millis() - WARM_UP.as_millis() as i64
    }

    /// Anchor estate time to a clock (ignored if one is already set).
    pub fn start(&self, clock: RunClock) {
        let _ = self.clock.set(clock);
    }

    pub fn clock(&self) -> RunClock {
        *self.clock.get_or_init(RunClock::start_now)
    }

    /// Estate time now (clock + warm-up).
    pub fn now(&self) -> Duration {
        WARM_UP + self.clock().elapsed()
    }

    /// Lock the estate (callers advance it to [`SharedEstate::now`] before reading).
    pub fn lock(&self) -> MutexGuard<'_, Estate> {
        self.estate.lock().expect("estate poisoned")
    }
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

fn s<'a>(p: &'a Json, k: &str) -> &'a str {
    p.get(k).and_then(Json::as_str).unwrap_or_default()
}

fn labels(p: &Json, k: &str) -> BTreeMap<String, String> {
    p.get(k)
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
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
    action: &str,
    p: &Json,
) -> Result<Json, ProviderError> {
    let cluster = p
        .get("cluster")
        .and_then(Json::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| SimProvider::default_cluster(estate));
    Ok(match action {
        a if a.starts_with("k8s.") => k8s::apply(estate, at, sim, &cluster, a, p)?,
        "az.power_interruption" => {
            estate.lose_zone(at, s(p, "zone")).map_err(err)?;
            json!({"zone": s(p, "zone"), "power": "off"})
        }
        "region.outage" => {
            estate.lose_region(at, s(p, "region")).map_err(err)?;
            json!({"region": s(p, "region"), "state": "lost"})
        }
        "db.cluster_failover" => {
            let target = p.get("target_instance").and_then(Json::as_str);
            json!({"cluster": s(p, "cluster"), "new_writer": estate.db_failover(at, s(p, "cluster"), target).map_err(err)?})
        }
        "db.instance_reboot" => {
            let force = p
                .get("force_failover")
                .and_then(Json::as_bool)
                .unwrap_or(false);
            estate.db_reboot(at, s(p, "instance"), force).map_err(err)?;
            json!({"instance": s(p, "instance"), "force_failover": force})
        }
        "db.global_switchover" | "db.global_failover" => {
            let loss = action == "db.global_failover"
                && p.get("allow_data_loss")
                    .and_then(Json::as_bool)
                    .unwrap_or(false);
            estate
                .global_failover(at, s(p, "global_cluster"), s(p, "target_cluster"), loss)
                .map_err(err)?;
            json!({"global_cluster": s(p, "global_cluster"), "target_cluster": s(p, "target_cluster"), "allow_data_loss": loss})
        }
        "db.detach_and_promote" => {
            estate
                .detach_and_promote(at, s(p, "global_cluster"), s(p, "cluster"))
                .map_err(err)?;
            json!({"cluster": s(p, "cluster"), "detached_from": s(p, "global_cluster")})
        }
        "db.cluster_outage" => {
            estate.cluster_outage(at, s(p, "cluster")).map_err(err)?;
            json!({"cluster": s(p, "cluster"), "state": "unavailable"})
        }
        "db.point_in_time_restore" => {
            let to = match p.get("restore_time").and_then(Json::as_str) {
                None | Some("latest") => None,
                Some(t) => {
                    let t = chrono::DateTime::parse_from_rfc3339(t)
                        .map_err(|e| ProviderError::not_found(format!("restore_time: {e}")))?;
                    Some(sim.estate_time(t.with_timezone(&chrono::Utc)))
                }
            };
            let serve = p.get("serve").and_then(Json::as_bool).unwrap_or(false);
            let point = estate
                .pitr_restore(
                    at,
                    s(p, "source_cluster"),
                    s(p, "target_cluster"),
                    to,
                    serve,
                )
                .map_err(err)?;
            json!({"source_cluster": s(p, "source_cluster"), "target_cluster": s(p, "target_cluster"), "restore_point": sim.time(Some(point.as_secs_f64())), "serve": serve})
        }
        "dns.failover" => {
            let to = if s(p, "to") == "primary" {
                DnsTarget::Primary
            } else {
                DnsTarget::Secondary
            };
            estate.dns_failover(at, s(p, "record"), to).map_err(err)?;
            json!({"record": s(p, "record"), "to": s(p, "to")})
        }
        other => {
            return Err(ProviderError::unsupported("sim", other));
        }
    })
}

/// Revert an action on the estate (see [`Provider::revert`]).
fn revert_on(
    e: &mut Estate,
    at: Duration,
    action: &str,
    params: &Json,
    output: &Json,
) -> Result<Json, ProviderError> {
    match action {
        a if a.starts_with("k8s.") => k8s::revert(e, at, a, params, output),
        "az.power_interruption" => {
            e.restore_zone(at, s(params, "zone")).map_err(err)?;
            Ok(json!({"zone": s(params, "zone"), "power": "on"}))
        }
        "region.outage" => {
            e.restore_region(at, s(params, "region")).map_err(err)?;
            Ok(json!({"region": s(params, "region"), "state": "restored"}))
        }
        "db.cluster_outage" => {
            e.cluster_repair(at, s(params, "cluster")).map_err(err)?;
            Ok(json!({"cluster": s(params, "cluster"), "state": "repaired"}))
        }
        "dns.failover" => {
            e.dns_reset(at, s(params, "record")).map_err(err)?;
            Ok(json!({"record": s(params, "record"), "control": "health checks"}))
        }
        other => Err(ProviderError::unsupported(
            "sim",
            &format!("rollback of {other}"),
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

    fn inject<'a>(
        &'a self,
        action: &'a str,
        params: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            if action == "fis.experiment" {
                return super::fis::inject(&self.shared, params).await;
            }
            let out = {
                let mut e = self.shared.lock();
                apply(&mut e, self.now(), self, action, params)
            };
            self.shared.notify_changed();
            let mut out = out?;
            if matches!(action, "k8s.drain_zone" | "k8s.node_drain") {
                out = self.finish_drain(out, params).await?;
            }
            // A restore is done when its cluster is available (unless told not to wait).
            if action == "db.point_in_time_restore"
                && params.get("wait").and_then(Json::as_bool).unwrap_or(true)
            {
                let target = s(params, "target_cluster");
                loop {
                    let status = self
                        .shared
                        .lock()
                        .db_cluster(self.now(), target)
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
        action: &'a str,
        params: &'a Json,
        output: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            if action == "fis.experiment" {
                return super::fis::revert(&self.shared, params, output).await;
            }
            let at = self.now();
            let mut e = self.shared.lock();
            let r = revert_on(&mut e, at, action, params, output);
            drop(e);
            self.shared.notify_changed();
            r
        })
    }

    fn observe<'a>(
        &'a self,
        probe: &'a str,
        p: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            if probe == "fis.experiment" {
                return super::fis::observe(&self.shared, p);
            }
            let at = self.now();
            let mut e = self.shared.lock();
            let cluster = p
                .get("cluster")
                .and_then(Json::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| Self::default_cluster(&e));
            Ok(match probe {
                "service.metrics" => to_json(e.service(at, s(p, "service")).map_err(err)?),
                k if k.starts_with("k8s.") => k8s::observe(&mut e, at, &cluster, k, p)?,
                "db.cluster" => {
                    let mut v = e.db_cluster(at, s(p, "cluster")).map_err(err)?;
                    if let Some(t) = p
                        .get("as_of")
                        .and_then(Json::as_str)
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    {
                        let t = self.estate_time(t.with_timezone(&chrono::Utc));
                        v.latest_write_secs = e
                            .surviving_write(at, s(p, "cluster"), t)
                            .map_err(err)?
                            .map(|d| d.as_secs_f64());
                    }
                    drop(e);
                    json!({
                        "cluster": s(p, "cluster"),
                        "status": v.status,
                        "role": v.role,
                        "writer": v.writer,
                        "writer_zone": v.writer_zone,
                        "writable": v.writable,
                        "latest_write": self.time(v.latest_write_secs),
                        "latest_restorable_time": self.time(v.latest_restorable_secs),
                    })
                }
                "dns.record" => to_json(e.dns(at, s(p, "record")).map_err(err)?),
                "db.instance" => {
                    let v = e.db_instance(at, s(p, "instance")).map_err(err)?;
                    json!({"instance": s(p, "instance"), "cluster": v.cluster, "status": v.status, "available": v.status == "available", "zone": v.zone, "is_writer": v.is_writer})
                }
                "dns.health_check" => {
                    if p.get("health_check_id").is_some() {
                        return Err(ProviderError::not_found(
                            "the simulated estate names health checks by record: use `record` instead of `health_check_id`".into(),
                        ));
                    }
                    let v = e.dns(at, s(p, "record")).map_err(err)?;
                    json!({"record": s(p, "record"), "healthy": v.primary_healthy})
                }
                "alert" => {
                    let v = e.alert(at, s(p, "name")).map_err(err)?;
                    drop(e);
                    json!({"name": s(p, "name"), "state": v.state, "firing": v.state == "firing", "since": self.time(v.since_secs)})
                }
                other => {
                    return Err(ProviderError::unsupported("sim", other));
                }
            })
        })
    }

    fn describe<'a>(
        &'a self,
        action: &'a str,
        params: &'a Json,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            if action == "fis.experiment" {
                return super::fis::describe(&self.shared, params);
            }
            self.describe_now(action, params)
        })
    }

    fn preflight<'a>(&'a self, calls: &'a [Call]) -> BoxFuture<'a, Vec<PreflightProblem>> {
        Box::pin(async move { super::fis::preflight_calls(&self.shared, calls) })
    }

    fn drain_events(&self) -> Vec<EnvironmentEvent> {
        let mut out = self.drain_now();
        super::fis::drain_into(&self.shared, &mut out);
        out
    }
}

impl SimProvider {
    fn describe_now(&self, action: &str, params: &Json) -> Result<String, ProviderError> {
        let mut copy = self.shared.lock().clone();
        let out = apply(&mut copy, self.now(), self, action, params)?;
        let what = match action {
            a if a.starts_with("k8s.") => k8s::describe(a, params, &out),
            "db.cluster_failover" => format!(
                "fail over {} to {}",
                s(params, "cluster"),
                out["new_writer"].as_str().unwrap_or_default()
            ),
            _ => format!("{action} {out}"),
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
