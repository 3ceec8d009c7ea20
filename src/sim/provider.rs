//! The simulated estate as a [`Provider`]: maps the portable action and probe vocabulary onto the
//! model, on the run clock (virtual time when the runtime is paused).
//!
//! Dry runs apply the action to a throwaway copy of the estate, so they resolve targets exactly
//! ("would kill api-7f3k2") and touch nothing.

use super::model::{DnsTarget, Estate, KillMode, SimError, SimParams};
use crate::diag::Diagnostic;
use crate::engine::clock::RunClock;
use crate::environment::{Backend, Environment};
use crate::provider::{BoxFuture, EnvironmentEvent, Provider, ProviderError, RunContext};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// How long the estate has been running when a drill starts: write history and restorable
/// backups exist, as in a real estate.
pub const WARM_UP: Duration = Duration::from_secs(3600);

pub struct SimProvider {
    shared: SharedEstate,
    cursor: Mutex<usize>,
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
                cursor: Mutex::new(0),
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
            cursor: Mutex::new(0),
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
        SimError::Refused(m) => ProviderError::InvalidState(m),
        other => ProviderError::InvalidTarget(other.to_string()),
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
        "k8s.pod_kill" => {
            let value = p.get("value").and_then(Json::as_u64).unwrap_or(1) as u32;
            let mode = match s(p, "mode") {
                "all" => KillMode::All,
                "fixed" => KillMode::Fixed(value),
                "fixed-percent" => {
                    if !(1..=100).contains(&value) {
                        return Err(ProviderError::InvalidTarget(format!(
                            "fixed-percent needs `value` from 1 to 100, got {value}"
                        )));
                    }
                    KillMode::FixedPercent(value)
                }
                _ => KillMode::One,
            };
            let sel = labels(p, "selector");
            if let Some(cap) = p.get("max_pods").and_then(Json::as_u64) {
                let mut copy = estate.clone();
                let n = copy
                    .kill_pods(at, &cluster, s(p, "namespace"), &sel, mode)
                    .map_err(err)?
                    .len() as u64;
                if n > cap {
                    return Err(ProviderError::InvalidTarget(format!(
                        "blast radius: this would kill {n} pods, over max_pods {cap}; raise max_pods or narrow the selector"
                    )));
                }
            }
            let killed = estate
                .kill_pods(at, &cluster, s(p, "namespace"), &sel, mode)
                .map_err(err)?;
            json!({"cluster": cluster, "namespace": s(p, "namespace"), "killed": killed, "count": killed.len()})
        }
        "k8s.cordon_zone" => {
            json!({"cluster": cluster, "zone": s(p, "zone"), "nodes": estate.cordon_zone(at, &cluster, s(p, "zone")).map_err(err)?})
        }
        "k8s.drain_zone" => {
            json!({"cluster": cluster, "zone": s(p, "zone"), "nodes": estate.drain_zone(at, &cluster, s(p, "zone")).map_err(err)?})
        }
        "k8s.scale" => {
            let replicas = p.get("replicas").and_then(Json::as_u64).unwrap_or(0) as u32;
            let prev = estate
                .scale(
                    at,
                    &cluster,
                    s(p, "namespace"),
                    s(p, "deployment"),
                    replicas,
                )
                .map_err(err)?;
            json!({"cluster": cluster, "deployment": s(p, "deployment"), "previous": prev, "replicas": replicas})
        }
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
                        .map_err(|e| ProviderError::InvalidTarget(format!("restore_time: {e}")))?;
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
            return Err(ProviderError::Unsupported {
                backend: "sim".into(),
                name: other.into(),
            });
        }
    })
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
            let out = {
                let mut e = self.shared.lock();
                apply(&mut e, self.now(), self, action, params)?
            };
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
            let at = self.now();
            let mut e = self.shared.lock();
            match action {
                "k8s.cordon_zone" | "k8s.drain_zone" => {
                    let nodes: Vec<String> = output
                        .get("nodes")
                        .and_then(Json::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|n| n.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    let cluster = output
                        .get("cluster")
                        .and_then(Json::as_str)
                        .unwrap_or_default();
                    e.uncordon_nodes(at, cluster, &nodes).map_err(err)?;
                    Ok(json!({"uncordoned": nodes}))
                }
                "k8s.scale" => {
                    // A scale that failed recorded no previous count and changed nothing.
                    let Some(prev) = output.get("previous").and_then(Json::as_u64) else {
                        return Ok(
                            json!({"restored": false, "reason": "the step changed nothing"}),
                        );
                    };
                    let prev = prev as u32;
                    let cluster = output
                        .get("cluster")
                        .and_then(Json::as_str)
                        .unwrap_or_default();
                    e.scale(
                        at,
                        cluster,
                        s(params, "namespace"),
                        s(params, "deployment"),
                        prev,
                    )
                    .map_err(err)?;
                    Ok(json!({"replicas": prev}))
                }
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
                other => Err(ProviderError::Unsupported {
                    backend: "sim".into(),
                    name: format!("rollback of {other}"),
                }),
            }
        })
    }

    fn observe<'a>(
        &'a self,
        probe: &'a str,
        p: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            let at = self.now();
            let mut e = self.shared.lock();
            let cluster = p
                .get("cluster")
                .and_then(Json::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| Self::default_cluster(&e));
            Ok(match probe {
                "service.metrics" => to_json(e.service(at, s(p, "service")).map_err(err)?),
                "k8s.pods" => to_json(
                    e.pods(at, &cluster, s(p, "namespace"), &labels(p, "selector"))
                        .map_err(err)?,
                ),
                "k8s.nodes" => to_json(
                    e.nodes(at, &cluster, p.get("zone").and_then(Json::as_str))
                        .map_err(err)?,
                ),
                "k8s.memory" => {
                    json!({"cluster": cluster, "utilization": e.memory_utilization(at, &cluster).map_err(err)?})
                }
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
                "alert" => {
                    let v = e.alert(at, s(p, "name")).map_err(err)?;
                    drop(e);
                    json!({"name": s(p, "name"), "state": v.state, "firing": v.state == "firing", "since": self.time(v.since_secs)})
                }
                other => {
                    return Err(ProviderError::Unsupported {
                        backend: "sim".into(),
                        name: other.into(),
                    });
                }
            })
        })
    }

    fn describe<'a>(
        &'a self,
        action: &'a str,
        params: &'a Json,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move { self.describe_now(action, params) })
    }

    fn drain_events(&self) -> Vec<EnvironmentEvent> {
        self.drain_now()
    }
}

impl SimProvider {
    fn describe_now(&self, action: &str, params: &Json) -> Result<String, ProviderError> {
        let mut copy = self.shared.lock().clone();
        let out = apply(&mut copy, self.now(), self, action, params)?;
        let what = match action {
            "k8s.pod_kill" => format!(
                "kill {} pod(s) in {}/{}: {}",
                out["count"],
                out["cluster"].as_str().unwrap_or_default(),
                out["namespace"].as_str().unwrap_or_default(),
                list(&out["killed"])
            ),
            "k8s.cordon_zone" => format!(
                "cordon {} node(s) in {}: {}",
                out["nodes"].as_array().map_or(0, Vec::len),
                s(params, "zone"),
                list(&out["nodes"])
            ),
            "k8s.drain_zone" => format!(
                "drain {} node(s) in {}: {}",
                out["nodes"].as_array().map_or(0, Vec::len),
                s(params, "zone"),
                list(&out["nodes"])
            ),
            "k8s.scale" => format!(
                "scale {} from {} to {} replicas",
                s(params, "deployment"),
                out["previous"],
                out["replicas"]
            ),
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
        // Events of the warm-up (before the run) are history, not part of the drill.
        let out = log[(*cursor).min(log.len())..]
            .iter()
            .filter(|ev| ev.at >= WARM_UP)
            .map(|ev| EnvironmentEvent {
                at_ms: (ev.at - WARM_UP).as_millis() as u64,
                component: ev.component.clone(),
                message: ev.message.clone(),
                detail: None,
            })
            .collect();
        *cursor = log.len();
        out
    }
}

fn list(v: &Json) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
