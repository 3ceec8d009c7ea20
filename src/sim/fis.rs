//! AWS FIS experiments on the simulated estate: an inline template's actions run on the estate,
//! in `startAfter` order and for their durations on the run clock (virtual time under a paused
//! runtime), each mapped to the estate operation closest to what FIS does.
//!
//! | FIS action | Estate operation |
//! |---|---|
//! | `aws:fis:wait` | nothing, for `duration` |
//! | `aws:ec2:stop-instances` (target: instances filtered by `Placement.AvailabilityZone`, `ALL`) | the zone loses power ([`Estate::lose_zone`]); restored after `startInstancesAfterDuration`, else left down |
//! | `aws:ec2:terminate-instances` (same target) | the zone loses power and stays down (the estate has no instance lifecycle) |
//! | `aws:network:disrupt-connectivity` (`scope: all` or `availability-zone`; subnets by `AvailabilityZone` filter or `availabilityZoneIdentifier`) | the zone is lost for `duration`, then restored |
//! | `aws:rds:failover-db-cluster` | [`Estate::db_failover`] of each targeted cluster |
//! | `aws:rds:reboot-db-instances` | [`Estate::db_reboot`] (`forceFailover`) |
//! | `aws:eks:pod-delete` (`labelSelector` or `deploymentName`) | [`Estate::kill_pods`] (`ALL`, `COUNT(n)`, `PERCENT(n)` rounded down) |
//!
//! Stop conditions: a `aws:cloudwatch:alarm` whose alarm name is an alert of the estate (e.g.
//! `arn:aws:cloudwatch:us-east-1:123456789012:alarm:ApiDown`) is checked every [`ALARM_POLL`]
//! and when actions start or end; when it fires the experiment is stopped, as FIS does. Alarms
//! the estate has no alert for are journaled as not evaluated.
//!
//! The estate has no instance-level or network-only faults: losing a zone also takes down the
//! database instances there (as a real AZ power loss does). Zones held by several actions of one
//! experiment (the network cut and the stopped instances of a power interruption) come back when
//! the last of them ends; a zone that was already down when the experiment took it is left as it
//! was. The estate has no tags: `resourceTags` match every resource of the type, narrowed by the
//! AZ filters and parameters. Any other action id is refused, at preflight, dry run and start,
//! naming the ids the sim runs.
//!
//! FIS semantics kept: targets are resolved when the experiment starts; an action starts when
//! every action in its `startAfter` has completed; an action that fails fails the experiment
//! (running actions are stopped and undone, pending ones cancelled); stopping the experiment
//! (the step's rollback) undoes what running actions hold, while completed actions' lasting
//! effects stay, as on AWS. Experiments run on after the step that started them returns (with
//! `wait: false`, or when an abort cancels the step mid-wait): a per-estate registry keeps them,
//! so the rollback and the `fis.experiment` probe find them by the step's parameters.

use super::model::{Estate, KillMode, SimError};
use super::shared::SharedEstate;
use crate::backend::{Call, EnvironmentEvent, PreflightProblem, ProviderError, Typed};
use crate::engine::clock::RunClock;
use crate::lang::fis_template::{
    self as tpl, Selection, Source, StepParams, Target, Template, arn_name,
};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The FIS action ids the simulated estate runs.
pub const SUPPORTED: &[&str] = &[
    "aws:fis:wait",
    "aws:ec2:stop-instances",
    "aws:ec2:terminate-instances",
    "aws:network:disrupt-connectivity",
    "aws:rds:failover-db-cluster",
    "aws:rds:reboot-db-instances",
    "aws:eks:pod-delete",
];

/// What one FIS action does to the estate.
#[derive(Debug, Clone, PartialEq)]
enum Effect {
    Wait,
    /// The zones lose power; `restore`: they come back when the action ends.
    ZonesDown {
        zones: Vec<String>,
        restore: bool,
    },
    DbFailover {
        clusters: Vec<String>,
    },
    DbReboot {
        instances: Vec<String>,
        force: bool,
    },
    PodKill {
        cluster: String,
        namespace: String,
        selector: BTreeMap<String, String>,
        count: u32,
    },
}

#[derive(Debug, Clone)]
struct Planned {
    name: String,
    action_id: String,
    start_after: Vec<String>,
    length: Duration,
    effect: Effect,
}

impl Planned {
    fn describe(&self) -> String {
        let l = crate::lang::duration::format(self.length);
        match &self.effect {
            Effect::Wait => format!("wait {l}"),
            Effect::ZonesDown {
                zones,
                restore: true,
            } => format!("{} down for {l}", zones.join(", ")),
            Effect::ZonesDown {
                zones,
                restore: false,
            } => format!("{} down (not restored by the experiment)", zones.join(", ")),
            Effect::DbFailover { clusters } => format!("fail over {}", clusters.join(", ")),
            Effect::DbReboot { instances, force } => format!(
                "reboot {}{}",
                instances.join(", "),
                if *force { " with failover" } else { "" }
            ),
            Effect::PodKill {
                cluster,
                namespace,
                selector,
                count,
            } => format!(
                "delete {count} pod(s) matching {} in {cluster}/{namespace}",
                selector
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

fn invalid(msg: String) -> ProviderError {
    ProviderError::not_found(msg)
}

fn sim_err(e: SimError) -> ProviderError {
    match e {
        SimError::Refused(m) => ProviderError::invalid_state(m),
        other => ProviderError::not_found(other.to_string()),
    }
}

/// Values of a target's filters at `path`.
fn filter_values(t: &Target, path: &str) -> Vec<String> {
    t.filters
        .iter()
        .filter(|f| f.path == path)
        .flat_map(|f| f.values.iter().cloned())
        .collect()
}

fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Resolve a template against the estate (as FIS resolves targets when an experiment starts).
/// `estate` is a copy: resolution reads advance it.
fn plan(estate: &mut Estate, at: Duration, t: &Template) -> Result<Vec<Planned>, ProviderError> {
    let order = tpl::start_order(t).map_err(invalid)?;
    let zones = estate.zones();
    let check_zones = |what: &str, z: Vec<String>| -> Result<Vec<String>, ProviderError> {
        if z.is_empty() {
            return Err(invalid(what.to_string()));
        }
        for zone in &z {
            if !zones.contains(zone) {
                return Err(invalid(format!(
                    "zone `{zone}` is not in the simulated estate (AZ ids like use1-az1 are not modelled); its zones: {}",
                    zones.join(", ")
                )));
            }
        }
        Ok(z)
    };
    let mut out = Vec::new();
    for name in order {
        let a = &t.actions[&name];
        let label = format!("FIS action `{name}` ({})", a.action_id);
        let target = |key: &str| -> Result<&Target, ProviderError> {
            a.targets
                .get(key)
                .and_then(|n| t.targets.get(n))
                .ok_or_else(|| invalid(format!("{label} names no `{key}` target")))
        };
        let all_only = |tg: &Target, tname: &str| -> Result<(), ProviderError> {
            match Selection::parse(&tg.selection_mode) {
                Ok(Selection::All) => Ok(()),
                _ => Err(invalid(format!(
                    "{label}: the simulated estate loses whole zones, so target `{tname}` must use `selectionMode: ALL` (it has `{}`)",
                    tg.selection_mode
                ))),
            }
        };
        let length = tpl::action_length(a);
        let effect = match a.action_id.as_str() {
            "aws:fis:wait" => Effect::Wait,
            "aws:ec2:stop-instances" | "aws:ec2:terminate-instances" => {
                let tg = target("Instances")?;
                all_only(tg, &a.targets["Instances"])?;
                if !tg.resource_arns.is_empty() {
                    return Err(invalid(format!(
                        "{label}: the simulated estate has no instance ids; select the instances of a zone with a `Placement.AvailabilityZone` filter instead of `resourceArns`"
                    )));
                }
                let z = check_zones(
                    &format!(
                        "{label}: the simulated estate selects instances by zone; add `filters: [{{path: Placement.AvailabilityZone, values: [ZONE]}}]` to target `{}`",
                        a.targets["Instances"]
                    ),
                    filter_values(tg, "Placement.AvailabilityZone"),
                )?;
                Effect::ZonesDown {
                    zones: z,
                    restore: a.action_id == "aws:ec2:stop-instances"
                        && a.parameters.contains_key("startInstancesAfterDuration"),
                }
            }
            "aws:network:disrupt-connectivity" => {
                let scope = a.parameters.get("scope").map(String::as_str).unwrap_or("");
                if !matches!(scope, "all" | "availability-zone") {
                    return Err(invalid(format!(
                        "{label}: `scope: {scope}` has no meaning in the simulated estate (it models zones, not S3, DynamoDB or prefix lists); use `scope: all` or `availability-zone`, or run this template against the aws backend"
                    )));
                }
                let tg = target("Subnets")?;
                let mut z = filter_values(tg, "AvailabilityZone");
                if let Some(p) = tg.parameters.get("availabilityZoneIdentifier") {
                    z.push(p.clone());
                }
                z.sort();
                z.dedup();
                Effect::ZonesDown {
                    zones: check_zones(
                        &format!(
                            "{label}: the simulated estate cuts subnets by zone; give target `{}` an `AvailabilityZone` filter or an `availabilityZoneIdentifier` parameter",
                            a.targets["Subnets"]
                        ),
                        z,
                    )?,
                    restore: true,
                }
            }
            "aws:rds:failover-db-cluster" => {
                let tg = target("Clusters")?;
                let known = estate.db_clusters();
                let mut clusters: Vec<String> = if !tg.resource_arns.is_empty() {
                    tg.resource_arns
                        .iter()
                        .map(|a| arn_name(a).to_string())
                        .collect()
                } else {
                    let wanted = tg
                        .parameters
                        .get("writerAvailabilityZoneIdentifiers")
                        .map(|s| comma_list(s));
                    let mut v = Vec::new();
                    for c in &known {
                        let view = estate.db_cluster(at, c).map_err(sim_err)?;
                        let zone_ok = match &wanted {
                            None => true,
                            Some(w) if w.iter().any(|x| x == "all") => true,
                            Some(w) => view.writer_zone.as_ref().is_some_and(|z| w.contains(z)),
                        };
                        if view.role != "secondary" && zone_ok {
                            v.push(c.clone());
                        }
                    }
                    v
                };
                for c in &clusters {
                    if !known.contains(c) {
                        return Err(invalid(format!(
                            "{label}: no database cluster `{c}` in the simulated estate; clusters: {}",
                            known.join(", ")
                        )));
                    }
                }
                let sel = Selection::parse(&tg.selection_mode).map_err(invalid)?;
                clusters.truncate(sel.of(clusters.len()));
                if clusters.is_empty() {
                    return Err(invalid(format!(
                        "{label}: target `{}` selects no database cluster in the simulated estate (FIS fails such an experiment)",
                        a.targets["Clusters"]
                    )));
                }
                Effect::DbFailover { clusters }
            }
            "aws:rds:reboot-db-instances" => {
                let tg = target("DBInstances")?;
                let known = estate.db_instances();
                let mut instances: Vec<String> = if !tg.resource_arns.is_empty() {
                    tg.resource_arns
                        .iter()
                        .map(|a| arn_name(a).to_string())
                        .collect()
                } else if let Some(z) = tg.parameters.get("availabilityZoneIdentifiers") {
                    let z = comma_list(z);
                    let p = estate.params();
                    p.databases
                        .iter()
                        .flat_map(|d| {
                            d.instances.iter().chain(
                                d.global
                                    .iter()
                                    .flat_map(|g| g.secondaries.iter().flat_map(|s| &s.instances)),
                            )
                        })
                        .filter(|i| z.iter().any(|x| x == "all" || *x == i.zone))
                        .map(|i| i.name.clone())
                        .collect()
                } else {
                    return Err(invalid(format!(
                        "{label}: the simulated estate has no tags; name the instances by `resourceArns` or by an `availabilityZoneIdentifiers` parameter"
                    )));
                };
                for i in &instances {
                    if !known.contains(i) {
                        return Err(invalid(format!(
                            "{label}: no database instance `{i}` in the simulated estate; instances: {}",
                            known.join(", ")
                        )));
                    }
                }
                let sel = Selection::parse(&tg.selection_mode).map_err(invalid)?;
                instances.truncate(sel.of(instances.len()));
                if instances.is_empty() {
                    return Err(invalid(format!(
                        "{label}: target `{}` selects no database instance",
                        a.targets["DBInstances"]
                    )));
                }
                Effect::DbReboot {
                    instances,
                    force: a.parameters.get("forceFailover").map(String::as_str) == Some("true"),
                }
            }
            "aws:eks:pod-delete" => {
                let tg = target("Pods")?;
                let get = |k: &str| tg.parameters.get(k).cloned().unwrap_or_default();
                if tg.parameters.contains_key("availabilityZoneIdentifier") {
                    return Err(invalid(format!(
                        "{label}: the simulated estate cannot select pods by zone; remove `availabilityZoneIdentifier` for sim runs"
                    )));
                }
                let cluster = arn_name(&get("clusterIdentifier")).to_string();
                let namespace = get("namespace");
                let value = get("selectorValue");
                let selector: BTreeMap<String, String> = match get("selectorType").as_str() {
                    "labelSelector" => comma_list(&value)
                        .iter()
                        .map(|kv| match kv.split_once('=') {
                            Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
                            None => Err(invalid(format!(
                                "{label}: label selector `{value}` is not `key=value[,key=value]`"
                            ))),
                        })
                        .collect::<Result<_, _>>()?,
                    "deploymentName" => estate
                        .params()
                        .kubernetes
                        .iter()
                        .find(|c| c.name == cluster)
                        .and_then(|c| {
                            c.deployments
                                .iter()
                                .find(|d| d.name == value && d.namespace == namespace)
                        })
                        .map(|d| d.labels.clone())
                        .ok_or_else(|| {
                            invalid(format!(
                                "{label}: no deployment `{value}` in {cluster}/{namespace} of the simulated estate"
                            ))
                        })?,
                    other => {
                        return Err(invalid(format!(
                            "{label}: `selectorType: {other}` is not modelled by the simulated estate; use `labelSelector` or `deploymentName`"
                        )));
                    }
                };
                let view = estate
                    .pods(at, &cluster, &namespace, &selector)
                    .map_err(sim_err)?;
                let total = (view.ready + view.starting + view.pending + view.unreachable) as usize;
                let sel = Selection::parse(&tg.selection_mode).map_err(invalid)?;
                let count = sel.of(total) as u32;
                if count == 0 {
                    return Err(invalid(format!(
                        "{label}: target `{}` selects no pod ({} of {total} matching)",
                        a.targets["Pods"], tg.selection_mode
                    )));
                }
                Effect::PodKill {
                    cluster,
                    namespace,
                    selector,
                    count,
                }
            }
            other => {
                return Err(invalid(format!(
                    "FIS action `{name}` ({other}) has no meaning in the simulated estate; the sim runs {}. Run this template against the aws backend, or leave `{name}` out of sim runs",
                    SUPPORTED.join(", ")
                )));
            }
        };
        out.push(Planned {
            name: name.clone(),
            action_id: a.action_id.clone(),
            start_after: a.start_after.clone(),
            length,
            effect,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Registry: experiments by estate.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ActionState {
    action_id: String,
    status: String,
    reason: String,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct RunState {
    status: String,
    reason: String,
    actions: BTreeMap<String, ActionState>,
    /// Lasting effects of completed actions (left in place by a stop, as on AWS).
    lasting: Vec<String>,
}

struct Run {
    id: String,
    digest: String,
    state: Mutex<RunState>,
    stop: watch::Sender<bool>,
    done: watch::Sender<bool>,
}

/// The FIS experiments started on one estate and their events not yet journaled. It lives in
/// the estate's [`SharedEstate`] (so rollbacks and the probe find experiments after their step
/// returned), and goes with it.
#[derive(Default)]
pub struct Registry {
    runs: Vec<Arc<Run>>,
    events: Vec<EnvironmentEvent>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

const TERMINAL: &[&str] = &["completed", "stopped", "failed", "cancelled"];

fn runs_of(shared: &SharedEstate) -> Vec<Arc<Run>> {
    shared.fis().runs.clone()
}

/// Merge the FIS events of this estate since the last call into `out`, in time order, an
/// experiment's own events before the estate's reactions at the same instant (the sim
/// provider's `drain_events` calls this).
pub fn drain_into(shared: &SharedEstate, out: &mut Vec<EnvironmentEvent>) {
    let mut mine = std::mem::take(&mut shared.fis().events);
    if mine.is_empty() {
        return;
    }
    mine.append(out);
    mine.sort_by_key(|e| e.at_ms);
    *out = mine;
}

impl Run {
    fn state(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn terminal(&self) -> bool {
        TERMINAL.contains(&self.state().status.as_str())
    }

    fn to_json(&self, clock: &RunClock) -> Json {
        let s = self.state().clone();
        let t = |ms: Option<u64>| {
            ms.map(|m| json!(clock.at(Duration::from_millis(m)).to_rfc3339()))
                .unwrap_or(Json::Null)
        };
        let actions: serde_json::Map<String, Json> = s
            .actions
            .iter()
            .map(|(name, a)| {
                (
                    name.clone(),
                    json!({
                        "action_id": a.action_id,
                        "state": a.status,
                        "reason": a.reason,
                        "start_ms": a.start_ms,
                        "end_ms": a.end_ms,
                        "start": t(a.start_ms),
                        "end": t(a.end_ms),
                    }),
                )
            })
            .collect();
        json!({
            "experiment_id": self.id,
            "template": "inline",
            "backend": "sim",
            "state": s.status,
            "reason": s.reason,
            "actions": actions,
            "left_in_place": s.lasting,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The runner.
// ---------------------------------------------------------------------------------------------

struct Runner {
    shared: SharedEstate,
    clock: RunClock,
    run: Arc<Run>,
    plan: Vec<Planned>,
    /// Run-clock offset at which each running action ends.
    ends: Vec<Option<Duration>>,
    /// Zones this experiment holds down, with how many running actions hold each; `true` when
    /// the zone was already down when the experiment took it (then it is never restored here).
    held: BTreeMap<String, (u32, bool)>,
    /// Estate alerts standing in for the template's CloudWatch alarm stop conditions.
    alarms: Vec<String>,
}

/// What the simulated FIS accepts from a template but does not model, one line each: AWS would
/// act on these (write logs, a report, target other accounts); the estate does not.
pub fn ignored_settings(t: &Template) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(l) = &t.log_configuration {
        let to: Vec<String> = l
            .cloud_watch_logs_configuration
            .iter()
            .map(|c| c.log_group_arn.clone())
            .chain(
                l.s3_configuration
                    .iter()
                    .map(|s| format!("s3://{}", s.bucket_name)),
            )
            .collect();
        out.push(format!(
            "`logConfiguration` ignored: the simulated FIS writes no experiment log (AWS would write schema v{} to {}); the run's journal has the same events",
            l.log_schema_version,
            to.join(", ")
        ));
    }
    if t.experiment_report_configuration.is_some() {
        out.push("`experimentReportConfiguration` ignored: the simulated FIS writes no experiment report; firedrill's report.md covers the run".into());
    }
    if let Some(o) = &t.experiment_options
        && o.account_targeting.as_deref() == Some("multi-account")
    {
        out.push(
            "`accountTargeting: multi-account` ignored: the simulated estate is one account".into(),
        );
    }
    out
}

/// How often a running experiment checks its stop conditions (FIS polls its alarms too).
pub const ALARM_POLL: Duration = Duration::from_secs(10);

/// The template's alarm stop conditions that name an alert of the estate (evaluated), and the
/// others (not evaluated: the estate has no such alert).
fn stop_alarms(estate: &Estate, t: &Template) -> (Vec<String>, Vec<String>) {
    let known = estate.alert_names();
    t.stop_conditions
        .iter()
        .filter(|c| c.source == "aws:cloudwatch:alarm")
        .filter_map(|c| c.value.as_deref())
        .map(|arn| arn_name(arn).to_string())
        .partition(|name| known.contains(name))
}

enum Next {
    Done,
    At(Duration),
}

impl Runner {
    fn event(&self, message: String, detail: Option<Json>) {
        self.shared.fis().events.push(EnvironmentEvent {
            at_ms: self.clock.elapsed_ms(),
            component: format!("fis {}", self.run.id),
            message,
            detail,
        });
    }

    fn set_action(&self, i: usize, status: &str, reason: String) {
        let now = self.clock.elapsed_ms();
        let p = &self.plan[i];
        {
            let mut s = self.run.state();
            let a = s.actions.get_mut(&p.name).expect("planned action");
            a.status = status.to_string();
            a.reason = reason.clone();
            if status == "running" || (a.start_ms.is_none() && status == "completed") {
                a.start_ms.get_or_insert(now);
            }
            if TERMINAL.contains(&status) && a.start_ms.is_some() {
                a.end_ms = Some(now);
            }
        }
        self.event(
            format!("action `{}` ({}) {status}: {reason}", p.name, p.action_id),
            Some(json!({"kind": "fis_action", "experiment": self.run.id, "action": p.name, "action_id": p.action_id, "state": status})),
        );
    }

    fn status(&self, i: usize) -> String {
        self.run.state().actions[&self.plan[i].name].status.clone()
    }

    fn zone_down(e: &mut Estate, at: Duration, zone: &str) -> bool {
        e.advance_to(at);
        e.zone_lost(zone)
    }

    /// Apply an action's start; `Err` is the estate's refusal.
    fn apply_start(&mut self, i: usize) -> Result<(), ProviderError> {
        let at = self.shared.now();
        let effect = self.plan[i].effect.clone();
        let mut e = self.shared.lock();
        match effect {
            Effect::Wait => {}
            Effect::ZonesDown { zones, .. } => {
                for z in zones {
                    let entry = self.held.entry(z.clone()).or_insert((0, false));
                    if entry.0 == 0 {
                        entry.1 = Self::zone_down(&mut e, at, &z);
                        if !entry.1 {
                            e.lose_zone(at, &z).map_err(sim_err)?;
                        }
                    }
                    entry.0 += 1;
                }
            }
            Effect::DbFailover { clusters } => {
                for c in clusters {
                    e.db_failover(at, &c, None).map_err(sim_err)?;
                }
            }
            Effect::DbReboot { instances, force } => {
                for i in instances {
                    e.db_reboot(at, &i, force).map_err(sim_err)?;
                }
            }
            Effect::PodKill {
                cluster,
                namespace,
                selector,
                count,
            } => {
                if let Some(count) = std::num::NonZeroU32::new(count) {
                    e.kill_pods(at, &cluster, &namespace, &selector, KillMode::Fixed(count))
                        .map_err(sim_err)?;
                }
            }
        }
        Ok(())
    }

    /// Undo what a running action holds (its end, or a stop).
    fn release(&mut self, i: usize) {
        let Effect::ZonesDown {
            zones,
            restore: true,
        } = self.plan[i].effect.clone()
        else {
            return;
        };
        let at = self.shared.now();
        let mut e = self.shared.lock();
        for z in zones {
            if let Some(entry) = self.held.get_mut(&z)
                && entry.0 > 0
            {
                entry.0 -= 1;
                if entry.0 == 0 && !entry.1 {
                    // The zone exists (checked when planning); restoring cannot fail.
                    let _ = e.restore_zone(at, &z);
                }
            }
        }
    }

    fn lasting(&self, i: usize) -> Option<String> {
        match &self.plan[i].effect {
            Effect::ZonesDown {
                zones,
                restore: false,
            } => Some(format!(
                "{}: {} left down ({} does not bring instances back)",
                self.plan[i].name,
                zones.join(", "),
                self.plan[i].action_id
            )),
            _ => None,
        }
    }

    fn finish(&mut self, status: &str, reason: String) {
        {
            let mut s = self.run.state();
            s.status = status.to_string();
            s.reason = reason.clone();
        }
        self.event(
            format!("experiment {status}: {reason}"),
            Some(json!({"kind": "fis_experiment", "experiment": self.run.id, "state": status})),
        );
        self.run.done.send_replace(true);
    }

    /// Stop: undo what running actions hold; running actions are stopped, pending cancelled.
    fn stop(&mut self, status: &str, reason: String, failed: Option<usize>) {
        for i in 0..self.plan.len() {
            if Some(i) == failed {
                continue;
            }
            match self.status(i).as_str() {
                "running" => {
                    self.release(i);
                    self.ends[i] = None;
                    self.set_action(i, "stopped", reason.clone());
                }
                "pending" => self.set_action(i, "cancelled", reason.clone()),
                _ => {}
            }
        }
        self.finish(status, reason);
    }

    /// End the actions due by now and start every action whose `startAfter` has completed,
    /// until nothing changes; then say when to look again.
    /// The first of the stop-condition alerts that fires now.
    fn alarm_firing(&self) -> Option<String> {
        if self.alarms.is_empty() {
            return None;
        }
        let at = self.shared.now();
        let mut e = self.shared.lock();
        self.alarms
            .iter()
            .find(|a| e.alert(at, a).is_ok_and(|v| v.state == "firing"))
            .cloned()
    }

    fn step(&mut self) -> Next {
        if self.run.terminal() {
            return Next::Done;
        }
        if let Some(alarm) = self.alarm_firing() {
            self.stop(
                "stopped",
                format!("stop condition: alarm `{alarm}` is in ALARM"),
                None,
            );
            return Next::Done;
        }
        loop {
            let now = self.clock.elapsed();
            let mut changed = false;
            for i in 0..self.plan.len() {
                if self.ends[i].is_some_and(|t| t <= now) {
                    self.ends[i] = None;
                    self.release(i);
                    self.set_action(i, "completed", "action completed".into());
                    changed = true;
                }
            }
            for i in 0..self.plan.len() {
                if self.status(i) != "pending" {
                    continue;
                }
                let ready = self.plan[i].start_after.iter().all(|p| {
                    self.run.state().actions.get(p).map(|a| a.status.as_str()) == Some("completed")
                });
                if !ready {
                    continue;
                }
                changed = true;
                let what = self.plan[i].describe();
                match self.apply_start(i) {
                    Err(err) => {
                        let reason = format!(
                            "action `{}` ({}) failed: {err}",
                            self.plan[i].name, self.plan[i].action_id
                        );
                        // Whatever this action took before failing is released with the rest.
                        self.ends[i] = None;
                        self.release(i);
                        self.set_action(i, "failed", err.to_string());
                        self.stop("failed", reason, Some(i));
                        return Next::Done;
                    }
                    Ok(()) if self.plan[i].length.is_zero() => {
                        self.set_action(i, "running", what);
                        if let Some(l) = self.lasting(i) {
                            self.run.state().lasting.push(l);
                        }
                        self.set_action(i, "completed", "action completed".into());
                    }
                    Ok(()) => {
                        self.ends[i] = Some(now + self.plan[i].length);
                        self.set_action(i, "running", what);
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let all_done = (0..self.plan.len()).all(|i| self.status(i) == "completed");
        if all_done {
            self.finish("completed", "experiment completed".into());
            return Next::Done;
        }
        match self.ends.iter().flatten().min() {
            Some(t) if !self.alarms.is_empty() => {
                Next::At((*t).min(self.clock.elapsed() + ALARM_POLL))
            }
            Some(t) => Next::At(*t),
            // Nothing running and nothing can start: cannot happen with a planned order.
            None => {
                self.stop(
                    "failed",
                    "no action can start (startAfter waits on actions that never complete)".into(),
                    None,
                );
                Next::Done
            }
        }
    }

    async fn drive(mut self) {
        let mut stop = self.run.stop.subscribe();
        loop {
            let at = match self.step() {
                Next::Done => return,
                Next::At(t) => t,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(self.clock.start + at) => {}
                _ = stop.wait_for(|s| *s) => {
                    self.stop("stopped", "experiment stopped (rollback)".into(), None);
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The provider entry points.
// ---------------------------------------------------------------------------------------------

fn inline(p: &StepParams) -> Result<(StepParams, Template), ProviderError> {
    let p = p.clone();
    match &p.source {
        Source::Inline(t) => {
            let t = (**t).clone();
            Ok((p, t))
        }
        Source::Existing(id) => Err(invalid(format!(
            "the simulated estate has no FIS template `{id}`; write the template inline (`template:`) to run it on the sim backend"
        ))),
    }
}

fn plan_now(shared: &SharedEstate, t: &Template) -> Result<Vec<Planned>, ProviderError> {
    let at = shared.now();
    let mut copy = shared.lock().clone();
    plan(&mut copy, at, t)
}

/// Check a `fis.experiment` call against the estate without running anything.
pub fn preflight(shared: &SharedEstate, params: &StepParams) -> Result<(), ProviderError> {
    let (_, t) = inline(params)?;
    plan_now(shared, &t).map(|_| ())
}

/// Preflight of every `fis.*` call (the sim provider's `preflight` calls this).
pub fn preflight_calls(shared: &SharedEstate, calls: &[Call]) -> Vec<PreflightProblem> {
    calls
        .iter()
        .filter_map(|c| match &c.typed {
            Typed::Action(crate::lang::action::Action::FisExperiment(p)) => Some((c, p)),
            _ => None,
        })
        .filter_map(|(c, p)| {
            preflight(shared, p).err().map(|error| PreflightProblem {
                owner: c.owner.clone(),
                error,
            })
        })
        .collect()
}

/// What the experiment would do: its actions on the estate, on a timeline.
pub fn describe(shared: &SharedEstate, params: &StepParams) -> Result<String, ProviderError> {
    let (p, t) = inline(params)?;
    let planned = plan_now(shared, &t)?;
    let timeline = tpl::timeline(&t).map_err(invalid)?;
    let mut parts = Vec::new();
    let mut end = Duration::ZERO;
    for (name, start, stop) in &timeline {
        end = end.max(*stop);
        if let Some(a) = planned.iter().find(|a| &a.name == name) {
            parts.push(format!(
                "t+{} {name}: {}",
                crate::lang::duration::format(*start),
                a.describe()
            ));
        }
    }
    let (alarms, unknown) = stop_alarms(&shared.lock(), &t);
    let stops = match (alarms.is_empty(), unknown.is_empty()) {
        (true, true) => String::new(),
        _ => format!(
            "; stops when {}{}",
            if alarms.is_empty() {
                "(no estate alert)".to_string()
            } else {
                alarms.join(" or ") + " fires"
            },
            if unknown.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} not evaluated: no such estate alert)",
                    unknown.join(", ")
                )
            }
        ),
    };
    Ok(format!(
        "FIS experiment (simulated) \"{}\": {}; ends at t+{}{stops}; {}",
        t.description,
        parts.join("; "),
        crate::lang::duration::format(end),
        if p.wait {
            format!(
                "waits for it (timeout {})",
                crate::lang::duration::format(p.timeout)
            )
        } else {
            "returns once it has started".into()
        }
    ))
}

/// Start the experiment; with `wait` (the default), return when it has ended.
pub async fn inject(shared: &SharedEstate, params: &StepParams) -> Result<Json, ProviderError> {
    let (p, t) = inline(params)?;
    let planned = plan_now(shared, &t)?;
    let clock = shared.clock();
    let id = format!("EXPsim{:05}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let run = Arc::new(Run {
        id: id.clone(),
        digest: params.digest.clone(),
        state: Mutex::new(RunState {
            status: "running".into(),
            reason: "experiment is running".into(),
            actions: planned
                .iter()
                .map(|a| {
                    (
                        a.name.clone(),
                        ActionState {
                            action_id: a.action_id.clone(),
                            status: "pending".into(),
                            reason: "waiting for its startAfter actions".into(),
                            start_ms: None,
                            end_ms: None,
                        },
                    )
                })
                .collect(),
            lasting: Vec::new(),
        }),
        stop: watch::channel(false).0,
        done: watch::channel(false).0,
    });
    shared.fis().runs.push(run.clone());
    let (alarms, unknown) = stop_alarms(&shared.lock(), &t);
    let mut runner = Runner {
        shared: shared.clone(),
        clock,
        run: run.clone(),
        ends: vec![None; planned.len()],
        plan: planned,
        held: BTreeMap::new(),
        alarms,
    };
    runner.event(
        format!(
            "experiment started from an inline template (\"{}\", {} action(s))",
            t.description,
            t.actions.len()
        ),
        Some(json!({"kind": "fis_experiment", "experiment": id, "state": "running"})),
    );
    for name in unknown {
        runner.event(
            format!(
                "stop condition alarm `{name}` is not evaluated: the simulated estate has no alert of that name (its alerts: {})",
                shared.lock().alert_names().join(", ")
            ),
            None,
        );
    }
    for ignored in ignored_settings(&t) {
        runner.event(ignored, None);
    }
    // The first wave starts now, before the step returns: the fault is in place when it does.
    if let Next::At(_) = runner.step() {
        tokio::spawn(runner.drive());
    }
    if !p.wait {
        let mut out = run.to_json(&clock);
        out["waited"] = json!(false);
        return Ok(out);
    }
    let mut done = run.done.subscribe();
    if tokio::time::timeout(p.timeout, done.wait_for(|d| *d))
        .await
        .is_err()
    {
        run.stop.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(60), done.wait_for(|d| *d)).await;
        return Err(ProviderError::invalid_state(format!(
            "FIS experiment {id} did not end within {}; it was stopped",
            crate::lang::duration::format(p.timeout)
        )));
    }
    let mut out = run.to_json(&clock);
    out["waited"] = json!(true);
    match out["state"].as_str() {
        Some("completed") => Ok(out),
        _ => Err(ProviderError::invalid_state(format!(
            "FIS experiment {id} {}: {}",
            out["state"].as_str().unwrap_or("ended"),
            out["reason"].as_str().unwrap_or_default()
        ))),
    }
}

/// Stop the step's experiment if it still runs (its rollback): by the id in the step's output,
/// or, when an abort cancelled the step before it returned, by its parameters.
pub async fn revert(
    shared: &SharedEstate,
    params: &StepParams,
    output: &Json,
) -> Result<Json, ProviderError> {
    let digest = params.digest.clone();
    let runs: Vec<Arc<Run>> = runs_of(shared)
        .into_iter()
        .filter(
            |r| match output.get("experiment_id").and_then(Json::as_str) {
                Some(id) => r.id == id,
                None => r.digest == digest,
            },
        )
        .collect();
    let mut stopped = Vec::new();
    let mut ended = Vec::new();
    let mut left = Vec::new();
    for r in &runs {
        if r.terminal() {
            ended.push(json!({"experiment_id": r.id, "state": r.state().status}));
        } else {
            let mut done = r.done.subscribe();
            r.stop.send_replace(true);
            if tokio::time::timeout(Duration::from_secs(60), done.wait_for(|d| *d))
                .await
                .is_err()
            {
                return Err(ProviderError::invalid_state(format!(
                    "FIS experiment {} did not stop",
                    r.id
                )));
            }
            stopped.push(json!(r.id));
        }
        left.extend(r.state().lasting.iter().cloned().map(Json::String));
    }
    Ok(json!({
        "stopped": stopped,
        "already_ended": ended,
        "left_in_place": left,
    }))
}

/// The `fis.experiment` probe: the newest experiment started on this estate.
pub fn observe(shared: &SharedEstate, template_id: Option<&str>) -> Result<Json, ProviderError> {
    let runs = runs_of(shared);
    // The sim has no stored templates: filtering by one matches nothing.
    let runs: Vec<&Arc<Run>> = match template_id {
        Some(_) => Vec::new(),
        None => runs.iter().collect(),
    };
    let Some(r) = runs.last() else {
        return Ok(
            json!({"id": null, "state": "none", "reason": "no FIS experiment started yet", "running": false, "actions": {}, "experiments": 0}),
        );
    };
    let s = r.state().clone();
    let actions: serde_json::Map<String, Json> = s
        .actions
        .iter()
        .map(|(k, a)| (k.clone(), json!(a.status)))
        .collect();
    Ok(json!({
        "id": r.id,
        "state": s.status,
        "reason": s.reason,
        "running": !TERMINAL.contains(&s.status.as_str()),
        "actions": actions,
        "experiments": runs.len(),
    }))
}

/// Ids of the experiments still running on this estate.
pub fn running_experiments(shared: &SharedEstate) -> Vec<String> {
    runs_of(shared)
        .iter()
        .filter(|r| !r.terminal())
        .map(|r| r.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(p: &Json) -> StepParams {
        StepParams::from_json(p).unwrap()
    }
    use crate::sim::model::SimParams;

    fn estate() -> SharedEstate {
        let s = SharedEstate::new(Estate::from_params(SimParams::default()).unwrap());
        s.start(RunClock::start_now());
        s
    }

    fn with(actions: Json, extra: Json) -> Json {
        let mut p = json!({"template": {
            "description": "test",
            "roleArn": "arn:aws:iam::123456789012:role/fis",
            "stopConditions": [{"source": "none"}],
            "targets": {
                "zone-a": {"resourceType": "aws:ec2:instance", "selectionMode": "ALL",
                    "filters": [{"path": "Placement.AvailabilityZone", "values": ["us-east-1a"]}]},
                "subnets-a": {"resourceType": "aws:ec2:subnet", "selectionMode": "ALL",
                    "parameters": {"availabilityZoneIdentifier": "us-east-1a"}},
                "orders": {"resourceType": "aws:rds:cluster", "selectionMode": "ALL",
                    "resourceArns": ["arn:aws:rds:us-east-1:123456789012:cluster:orders-db"]},
                "orders-2": {"resourceType": "aws:rds:db", "selectionMode": "ALL",
                    "resourceArns": ["arn:aws:rds:us-east-1:123456789012:db:orders-db-2"]},
            },
            "actions": actions,
        }});
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        p
    }

    /// Nodes of a zone that have power (the API's Ready condition lags a power loss by
    /// `node_failure_detection`, so the truth is read from the model).
    fn ready_nodes(s: &SharedEstate, zone: &str) -> u32 {
        let at = s.now();
        let mut e = s.lock();
        let total = e.nodes(at, "prod-east", Some(zone)).unwrap().total;
        if e.zone_lost(zone) { 0 } else { total }
    }

    async fn at(s: &SharedEstate, offset: Duration) {
        tokio::time::sleep_until(s.clock().start + offset).await;
    }

    const M: u64 = 60_000;

    #[tokio::test(start_paused = true)]
    async fn settings_the_simulation_does_not_model_are_journaled_as_ignored() {
        let s = estate();
        let mut p = with(
            json!({"w": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1M"}}}),
            json!({"wait": false}),
        );
        p["template"]["logConfiguration"] = json!({"logSchemaVersion": 2,
            "cloudWatchLogsConfiguration": {"logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:fis:*"}});
        p["template"]["experimentReportConfiguration"] = json!({"outputs": {"s3Configuration": {"bucketName": "reports"}}, "preExperimentDuration": "PT5M"});
        inject(&s, &sp(&p)).await.unwrap();
        let mut events = Vec::new();
        drain_into(&s, &mut events);
        let said: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
        assert!(
            said.iter()
                .any(|m| m.starts_with("`logConfiguration` ignored")
                    && m.contains(
                        "schema v2 to arn:aws:logs:us-east-1:123456789012:log-group:fis:*"
                    )),
            "{said:?}"
        );
        assert!(
            said.iter()
                .any(|m| m.starts_with("`experimentReportConfiguration` ignored")),
            "{said:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn actions_start_in_start_after_order_for_their_durations() {
        let s = estate();
        let p = with(
            json!({
                "first": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1M"}},
                "stop": {"actionId": "aws:ec2:stop-instances", "startAfter": ["first"],
                    "parameters": {"startInstancesAfterDuration": "PT2M"},
                    "targets": {"Instances": "zone-a"}},
                "short": {"actionId": "aws:fis:wait", "startAfter": ["first"], "parameters": {"duration": "PT1M"}},
                "last": {"actionId": "aws:rds:failover-db-cluster", "startAfter": ["stop", "short"],
                    "targets": {"Clusters": "orders"}},
            }),
            json!({"wait": false}),
        );
        let out = inject(&s, &sp(&p)).await.unwrap();
        assert_eq!(out["state"], "running");
        assert_eq!(out["actions"]["first"]["state"], "running");
        assert_eq!(out["actions"]["stop"]["state"], "pending");
        assert_eq!(ready_nodes(&s, "us-east-1a"), 3);
        at(&s, Duration::from_secs(90)).await;
        assert_eq!(
            ready_nodes(&s, "us-east-1a"),
            0,
            "zone down while `stop` runs"
        );
        at(&s, Duration::from_secs(200)).await;
        assert_eq!(ready_nodes(&s, "us-east-1a"), 3, "restarted after 2m");
        let o = observe(&s, None).unwrap();
        assert_eq!(o["state"], "completed", "{o}");
        let runs = runs_of(&s);
        let done = runs.last().unwrap().to_json(&s.clock());
        let span = |a: &str| {
            (
                done["actions"][a]["start_ms"].as_u64().unwrap(),
                done["actions"][a]["end_ms"].as_u64().unwrap(),
            )
        };
        assert_eq!(span("first"), (0, M));
        assert_eq!(span("stop"), (M, 3 * M));
        assert_eq!(span("short"), (M, 2 * M));
        assert_eq!(span("last"), (3 * M, 3 * M));
        // The journal sees every state change, in time order, the experiment's own events first.
        let mut ev = Vec::new();
        drain_into(&s, &mut ev);
        let stop_running = ev
            .iter()
            .find(|e| e.message.starts_with("action `stop`") && e.message.contains(" running"))
            .unwrap();
        assert_eq!(stop_running.at_ms, M);
        assert!(ev.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_returns_the_timeline_and_a_zone_held_twice_comes_back_with_the_last_holder() {
        let s = estate();
        let p = with(
            json!({
                "net": {"actionId": "aws:network:disrupt-connectivity",
                    "parameters": {"scope": "all", "duration": "PT2M"}, "targets": {"Subnets": "subnets-a"}},
                "stop": {"actionId": "aws:ec2:stop-instances",
                    "parameters": {"startInstancesAfterDuration": "PT10M"}, "targets": {"Instances": "zone-a"}},
            }),
            json!({}),
        );
        let s2 = s.clone();
        let probe = tokio::spawn(async move {
            at(&s2, Duration::from_secs(180)).await;
            let mid = ready_nodes(&s2, "us-east-1a");
            at(&s2, Duration::from_secs(601)).await;
            (mid, ready_nodes(&s2, "us-east-1a"))
        });
        let out = inject(&s, &sp(&p)).await.unwrap();
        assert_eq!(out["state"], "completed");
        assert_eq!(out["waited"], true);
        assert_eq!(out["actions"]["net"]["end_ms"], 2 * M);
        assert_eq!(out["actions"]["stop"]["end_ms"], 10 * M);
        let (mid, after) = probe.await.unwrap();
        assert_eq!(mid, 0, "still held by `stop` after the network cut ended");
        assert_eq!(after, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn revert_stops_running_actions_undoes_them_and_cancels_the_rest() {
        let s = estate();
        let p = with(
            json!({
                "stop": {"actionId": "aws:ec2:stop-instances",
                    "parameters": {"startInstancesAfterDuration": "PT10M"}, "targets": {"Instances": "zone-a"}},
                "after": {"actionId": "aws:fis:wait", "startAfter": ["stop"], "parameters": {"duration": "PT1M"}},
            }),
            json!({"wait": false}),
        );
        let out = inject(&s, &sp(&p)).await.unwrap();
        at(&s, Duration::from_secs(60)).await;
        assert_eq!(ready_nodes(&s, "us-east-1a"), 0);
        let r = revert(&s, &sp(&p), &out).await.unwrap();
        assert_eq!(r["stopped"], json!([out["experiment_id"]]));
        assert_eq!(
            ready_nodes(&s, "us-east-1a"),
            3,
            "the stop restores the zone"
        );
        let o = observe(&s, None).unwrap();
        assert_eq!(o["state"], "stopped");
        assert_eq!(o["actions"]["stop"], "stopped");
        assert_eq!(o["actions"]["after"], "cancelled");
        assert!(running_experiments(&s).is_empty());
        // A second revert finds nothing left to stop.
        let again = revert(&s, &sp(&p), &out).await.unwrap();
        assert_eq!(again["stopped"], json!([]));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abort_that_cancels_the_waiting_step_leaves_the_experiment_for_the_rollback() {
        let s = estate();
        let p = with(
            json!({"stop": {"actionId": "aws:ec2:stop-instances",
                "parameters": {"startInstancesAfterDuration": "PT10M"}, "targets": {"Instances": "zone-a"}}}),
            json!({}),
        );
        // The executor drops the step's future on abort: the experiment runs on, as FIS does.
        let step = sp(&p);
        tokio::select! {
            _ = inject(&s, &step) => panic!("the experiment should still be running"),
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        assert_eq!(running_experiments(&s).len(), 1);
        assert_eq!(ready_nodes(&s, "us-east-1a"), 0);
        // The rollback has no output (the step never returned): it finds the run by parameters.
        let r = revert(&s, &sp(&p), &Json::Null).await.unwrap();
        assert_eq!(r["stopped"].as_array().unwrap().len(), 1);
        assert_eq!(ready_nodes(&s, "us-east-1a"), 3);
        // Another step's parameters match nothing.
        let other = with(
            json!({"w": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1M"}}}),
            json!({}),
        );
        let r = revert(&s, &sp(&other), &Json::Null).await.unwrap();
        assert_eq!(
            r,
            json!({"stopped": [], "already_ended": [], "left_in_place": []})
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_action_fails_the_experiment_and_undoes_the_others() {
        let s = estate();
        // The failover puts orders-db in transition; rebooting its new writer is then refused.
        let p = with(
            json!({
                "a-net": {"actionId": "aws:network:disrupt-connectivity",
                    "parameters": {"scope": "availability-zone", "duration": "PT5M"}, "targets": {"Subnets": "subnets-a"}},
                "b-failover": {"actionId": "aws:rds:failover-db-cluster", "targets": {"Clusters": "orders"}},
                "c-reboot": {"actionId": "aws:rds:reboot-db-instances", "targets": {"DBInstances": "orders-2"}},
                "d-later": {"actionId": "aws:fis:wait", "startAfter": ["a-net"], "parameters": {"duration": "PT1M"}},
            }),
            json!({}),
        );
        let err = inject(&s, &sp(&p)).await.unwrap_err().to_string();
        assert!(
            err.contains("failed: action `c-reboot` (aws:rds:reboot-db-instances) failed"),
            "{err}"
        );
        assert!(err.contains("orders-db"), "{err}");
        let o = observe(&s, None).unwrap();
        assert_eq!(o["state"], "failed");
        assert_eq!(o["actions"]["a-net"], "stopped");
        assert_eq!(o["actions"]["d-later"], "cancelled");
        assert_eq!(
            ready_nodes(&s, "us-east-1a"),
            3,
            "the network cut was undone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_alarm_stop_condition_stops_the_experiment_when_the_estate_alert_fires() {
        let s = estate();
        // The failover makes the database unwritable for 35s; DatabaseWriterUnavailable fires
        // after 30s of that, and the experiment is stopped at the next check.
        let mut p = with(
            json!({
                "failover": {"actionId": "aws:rds:failover-db-cluster", "targets": {"Clusters": "orders"}},
                "net": {"actionId": "aws:network:disrupt-connectivity",
                    "parameters": {"scope": "all", "duration": "PT10M"}, "targets": {"Subnets": "subnets-b"}},
            }),
            json!({}),
        );
        p["template"]["targets"]["subnets-b"] = json!({"resourceType": "aws:ec2:subnet",
            "selectionMode": "ALL", "parameters": {"availabilityZoneIdentifier": "us-east-1c"}});
        p["template"]["stopConditions"] = json!([
            {"source": "aws:cloudwatch:alarm", "value": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:DatabaseWriterUnavailable"},
            {"source": "aws:cloudwatch:alarm", "value": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:NotInTheEstate"},
        ]);
        let d = describe(&s, &sp(&p)).unwrap();
        assert!(
            d.contains("stops when DatabaseWriterUnavailable fires (NotInTheEstate not evaluated"),
            "{d}"
        );
        let err = inject(&s, &sp(&p)).await.unwrap_err().to_string();
        assert!(
            err.contains("stopped: stop condition: alarm `DatabaseWriterUnavailable` is in ALARM"),
            "{err}"
        );
        let o = observe(&s, None).unwrap();
        assert_eq!(o["actions"]["net"], "stopped");
        assert_eq!(
            ready_nodes(&s, "us-east-1c"),
            3,
            "the stop undid the network cut"
        );
        let runs = runs_of(&s);
        let stopped_at = runs.last().unwrap().to_json(&s.clock())["actions"]["net"]["end_ms"]
            .as_u64()
            .unwrap();
        assert!((30_000..=40_000).contains(&stopped_at), "{stopped_at}");
        let mut ev = Vec::new();
        drain_into(&s, &mut ev);
        assert!(ev.iter().any(|e| {
            e.message
                .contains("alarm `NotInTheEstate` is not evaluated")
        }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_zone_already_down_is_left_as_it_was() {
        let s = estate();
        {
            let at = s.now();
            s.lock().lose_zone(at, "us-east-1a").unwrap();
        }
        let p = with(
            json!({"stop": {"actionId": "aws:ec2:stop-instances",
                "parameters": {"startInstancesAfterDuration": "PT1M"}, "targets": {"Instances": "zone-a"}}}),
            json!({}),
        );
        let out = inject(&s, &sp(&p)).await.unwrap();
        assert_eq!(out["state"], "completed");
        assert_eq!(
            ready_nodes(&s, "us-east-1a"),
            0,
            "another fault still holds the zone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unmapped_action_ids_are_refused_before_anything_runs() {
        let s = estate();
        let mut p = with(
            json!({
                "stop": {"actionId": "aws:ec2:stop-instances", "targets": {"Instances": "zone-a"}},
                "ebs": {"actionId": "aws:ebs:pause-volume-io", "parameters": {"duration": "PT1M"},
                    "targets": {"Volumes": "vols"}},
            }),
            json!({}),
        );
        p["template"]["targets"]["vols"] = json!({"resourceType": "aws:ec2:ebs-volume",
            "selectionMode": "ALL", "resourceTags": {"a": "b"}});
        let calls = [Call::new("steps[1]".into(), "fis.experiment", p.clone(), true).unwrap()];
        let problems = preflight_calls(&s, &calls);
        assert_eq!(problems.len(), 1);
        let msg = problems[0].error.to_string();
        assert!(
            msg.contains(
                "FIS action `ebs` (aws:ebs:pause-volume-io) has no meaning in the simulated estate"
            ),
            "{msg}"
        );
        assert!(msg.contains("aws:ec2:stop-instances"), "{msg}");
        assert!(
            describe(&s, &sp(&p))
                .unwrap_err()
                .to_string()
                .contains("aws:ebs:pause-volume-io")
        );
        assert!(inject(&s, &sp(&p)).await.is_err());
        assert!(runs_of(&s).is_empty(), "nothing started");
        assert_eq!(ready_nodes(&s, "us-east-1a"), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn targets_the_estate_cannot_resolve_are_clear_errors() {
        let s = estate();
        let mut p = with(
            json!({"stop": {"actionId": "aws:ec2:stop-instances", "targets": {"Instances": "zone-a"}}}),
            json!({}),
        );
        p["template"]["targets"]["zone-a"]["filters"][0]["values"] = json!(["eu-west-1a"]);
        let e = preflight(&s, &sp(&p)).unwrap_err().to_string();
        assert!(
            e.contains("zone `eu-west-1a` is not in the simulated estate")
                && e.contains("us-east-1b"),
            "{e}"
        );
        p["template"]["targets"]["zone-a"]["filters"] = json!([]);
        p["template"]["targets"]["zone-a"]["resourceTags"] = json!({"a": "b"});
        let e = preflight(&s, &sp(&p)).unwrap_err().to_string();
        assert!(
            e.contains("add `filters: [{path: Placement.AvailabilityZone"),
            "{e}"
        );
        let e = preflight(&s, &sp(&json!({"template_id": "EXT1"})))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no FIS template `EXT1`") && e.contains("inline"),
            "{e}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn describe_prints_the_timeline_without_touching_the_estate() {
        let s = estate();
        let p = with(
            json!({
                "net": {"actionId": "aws:network:disrupt-connectivity",
                    "parameters": {"scope": "all", "duration": "PT2M"}, "targets": {"Subnets": "subnets-a"}},
                "hold": {"actionId": "aws:fis:wait", "startAfter": ["net"], "parameters": {"duration": "PT5M"}},
            }),
            json!({"wait": false}),
        );
        let d = describe(&s, &sp(&p)).unwrap();
        assert!(
            d.contains("t+0s net: us-east-1a down for 2m; t+2m hold: wait 5m; ends at t+7m"),
            "{d}"
        );
        assert_eq!(ready_nodes(&s, "us-east-1a"), 3);
        assert!(runs_of(&s).is_empty());
    }
}
