//! Every action and probe as a typed value, decoded once from a step's or probe's checked
//! `with:` block. Backends match on these types; no backend reads a parameter by name. The types
//! carry the rules ([`super::kubernetes`] for `k8s.*`, [`super::rules`] for the rest), so a value
//! that exists is a valid one.
//!
//! Invariant: pure. [`Action::decode`] and [`Probe::decode`] accept exactly the parameters the
//! vocabulary ([`super::vocab`]) documents: a test decodes every documented parameter of every
//! name, and unknown parameters are refused, so the table and the types cannot drift apart.

use super::duration::serde_human;
use super::fis_template::StepParams;
use super::kubernetes::{NodeAction, NodeTaint, NodeUntaint, ParamProblem, PodKill, ZoneAction};
pub use super::kubernetes::{PodsQuery, Scale, WorkloadAt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::Duration;

/// `http`, as an action or a probe.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCall {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<Json>,
    #[serde(default = "default_http_timeout", with = "serde_human")]
    pub timeout: Duration,
    /// Required status for an action (default: any 2xx).
    #[serde(default)]
    pub expect_status: Option<u16>,
}

fn default_method() -> String {
    "GET".into()
}
fn default_http_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `command`, as an action or a probe.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandCall {
    /// Program and arguments (at least the program).
    pub run: Vec<String>,
    #[serde(default)]
    pub expect_exit: i32,
    #[serde(default = "default_command_timeout", with = "serde_human")]
    pub timeout: Duration,
}

fn default_command_timeout() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    #[serde(with = "serde_human")]
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assert {
    pub probe: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitUntil {
    pub probe: String,
    #[serde(with = "serde_human")]
    pub deadline: Duration,
    #[serde(default = "default_interval", with = "serde_human")]
    pub interval: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub zone: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFailover {
    pub cluster: String,
    #[serde(default)]
    pub target_instance: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceReboot {
    pub instance: String,
    #[serde(default)]
    pub force_failover: bool,
}

/// `db.global_switchover` and `db.global_failover`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalFailover {
    pub global_cluster: String,
    pub target_cluster: String,
    /// Only `db.global_failover`: an unplanned failover accepting the lag as data loss.
    #[serde(default)]
    pub allow_data_loss: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetachAndPromote {
    pub global_cluster: String,
    pub cluster: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRef {
    pub cluster: String,
}

/// When a restore restores to.
#[derive(Debug, Clone, PartialEq)]
pub enum RestoreTime {
    Latest,
    At(chrono::DateTime<chrono::Utc>),
}

/// `db.point_in_time_restore`.
#[derive(Debug, Clone, PartialEq)]
pub struct PointInTimeRestore {
    pub source_cluster: String,
    pub target_cluster: String,
    pub restore_time: RestoreTime,
    pub serve: bool,
    pub wait: bool,
}

/// Which side a failover record answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsSide {
    Primary,
    Secondary,
}

impl DnsSide {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsSide::Primary => "primary",
            DnsSide::Secondary => "secondary",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsFailover {
    pub record: String,
    pub to: DnsSide,
}

/// Every action an experiment may name, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Wait(Wait),
    Assert(Assert),
    WaitUntil(WaitUntil),
    Approval(Approval),
    Http(HttpCall),
    Command(CommandCall),
    PodKill(PodKill),
    CordonZone(ZoneAction),
    DrainZone(ZoneAction),
    NodeCordon(NodeAction),
    NodeUncordon(NodeAction),
    NodeDrain(NodeAction),
    NodeTaint(NodeTaint),
    NodeUntaint(NodeUntaint),
    Scale(Scale),
    RolloutRestart(WorkloadAt),
    AzPowerInterruption(Zone),
    RegionOutage(Region),
    DbClusterFailover(ClusterFailover),
    DbInstanceReboot(InstanceReboot),
    DbGlobalSwitchover(GlobalFailover),
    DbGlobalFailover(GlobalFailover),
    DbDetachAndPromote(DetachAndPromote),
    DbClusterOutage(ClusterRef),
    DbPointInTimeRestore(PointInTimeRestore),
    DnsFailover(DnsFailover),
    FisExperiment(Box<StepParams>),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nodes {
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterOnly {
    #[serde(default)]
    pub cluster: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub service: String,
}

/// `db.cluster`.
#[derive(Debug, Clone, PartialEq)]
pub struct DbClusterQuery {
    pub cluster: String,
    /// Report the newest surviving write at or before this time (the data-loss measurement).
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub instance: String,
}

/// `dns.health_check`: by the record whose primary it checks, or by id (AWS only).
#[derive(Debug, Clone, PartialEq)]
pub enum HealthCheckRef {
    Record(String),
    Id(String),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub record: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FisQuery {
    #[serde(default)]
    pub template_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRef {
    pub name: String,
}

/// How a `prometheus` probe folds the series of an instant vector into its `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    Max,
    Min,
    Sum,
    Avg,
    /// The number of series.
    Count,
    /// No folding: `value` is the list of every series' value and a bounds tolerance must hold
    /// for each of them.
    Each,
}

impl Reduce {
    pub const NAMES: &'static [&'static str] = &["max", "min", "sum", "avg", "count", "each"];

    pub fn as_str(self) -> &'static str {
        match self {
            Reduce::Max => "max",
            Reduce::Min => "min",
            Reduce::Sum => "sum",
            Reduce::Avg => "avg",
            Reduce::Count => "count",
            Reduce::Each => "each",
        }
    }
}

/// What a `prometheus` probe does when its query returns no series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnEmpty {
    /// The probe fails ("no series"): an empty result is never a silent pass.
    #[default]
    Fail,
    /// The value is 0 (for queries like `sum(rate(errors_total[1m]))` whose series only exist
    /// once something went wrong); the tolerance judges it.
    Zero,
}

impl OnEmpty {
    pub const NAMES: &'static [&'static str] = &["fail", "zero"];
}

/// `prometheus`: one PromQL instant query.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromQuery {
    pub query: String,
    /// Required when the query may return more than one series.
    #[serde(default)]
    pub reduce: Option<Reduce>,
    #[serde(default)]
    pub on_empty: OnEmpty,
}

/// Where a `prometheus.alert` probe reads the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSource {
    /// Prometheus: `/api/v1/alerts` and the `ALERTS` series.
    #[default]
    Prometheus,
    /// Alertmanager: `/api/v2/alerts` (the environment's `alertmanager:` section).
    Alertmanager,
}

impl AlertSource {
    pub const NAMES: &'static [&'static str] = &["prometheus", "alertmanager"];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertSource::Prometheus => "prometheus",
            AlertSource::Alertmanager => "alertmanager",
        }
    }
}

/// `prometheus.alert`: the state of one alert (an alerting rule's instances matching the
/// matchers).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    pub alertname: String,
    /// Label equality matchers the alert's labels must also carry.
    #[serde(default)]
    pub matchers: BTreeMap<String, String>,
    #[serde(default)]
    pub source: AlertSource,
    /// Not a parameter: set by the engine when the probe is the detection probe, so the output's
    /// `fired_since` is the alert's first firing moment at or after this (server) time, even if
    /// it fired and resolved between polls.
    #[serde(skip)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

/// Every probe an experiment may name, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    ServiceMetrics(Service),
    Pods(PodsQuery),
    PodRestarts(PodsQuery),
    Workload(WorkloadAt),
    Nodes(Nodes),
    Memory(ClusterOnly),
    DbCluster(DbClusterQuery),
    DbInstance(Instance),
    DnsHealthCheck(HealthCheckRef),
    DnsRecord(Record),
    FisExperiment(FisQuery),
    Alert(AlertRef),
    Prometheus(PromQuery),
    PrometheusAlert(AlertQuery),
    Http(HttpCall),
    Command(CommandCall),
    Postgres(super::postgres::PgQuery),
}

fn serde<T: DeserializeOwned>(p: &Json) -> Result<T, Vec<ParamProblem>> {
    serde_json::from_value(p.clone()).map_err(|e| {
        vec![ParamProblem::whole(
            format!("the parameters do not decode: {e}"),
            "check the parameter against the format reference (README)",
        )]
    })
}

fn str_of(p: &Json, k: &str) -> Option<String> {
    p.get(k).and_then(Json::as_str).map(str::to_string)
}

fn time_of(
    p: &Json,
    k: &'static str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Vec<ParamProblem>> {
    match p.get(k).and_then(Json::as_str) {
        None | Some("latest") => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&chrono::Utc)))
            .map_err(|e| {
                vec![ParamProblem::at(
                    k,
                    format!("`{s}` is not an RFC 3339 time ({e})"),
                    "write e.g. `2026-12-01T10:00:00Z`, or `latest`",
                )]
            }),
    }
}

impl Action {
    /// Decode the checked parameters of action `name`. Every rule of [`super::rules`] holds for
    /// a decoded value.
    pub fn decode(name: &str, p: &Json) -> Result<Action, Vec<ParamProblem>> {
        let rules = super::rules::check(name, p);
        if !rules.is_empty() {
            return Err(rules);
        }
        Ok(match name {
            "wait" => Action::Wait(serde(p)?),
            "assert" => Action::Assert(serde(p)?),
            "wait_until" => Action::WaitUntil(serde(p)?),
            "approval" => Action::Approval(serde(p)?),
            "http" => Action::Http(serde(p)?),
            "command" => Action::Command(serde(p)?),
            "k8s.pod_kill" => Action::PodKill(PodKill::from_params(p)?),
            "k8s.cordon_zone" => Action::CordonZone(ZoneAction::from_params(p)?),
            "k8s.drain_zone" => Action::DrainZone(ZoneAction::from_params(p)?),
            "k8s.node_cordon" => Action::NodeCordon(NodeAction::from_params(p)?),
            "k8s.node_uncordon" => Action::NodeUncordon(NodeAction::from_params(p)?),
            "k8s.node_drain" => Action::NodeDrain(NodeAction::from_params(p)?),
            "k8s.node_taint" => Action::NodeTaint(NodeTaint::from_params(p)?),
            "k8s.node_untaint" => Action::NodeUntaint(NodeUntaint::from_params(p)?),
            "k8s.scale" => Action::Scale(Scale::from_params(p)?),
            "k8s.rollout_restart" => Action::RolloutRestart(WorkloadAt::from_params(p)?),
            "az.power_interruption" => Action::AzPowerInterruption(serde(p)?),
            "region.outage" => Action::RegionOutage(serde(p)?),
            "db.cluster_failover" => Action::DbClusterFailover(serde(p)?),
            "db.instance_reboot" => Action::DbInstanceReboot(serde(p)?),
            "db.global_switchover" => Action::DbGlobalSwitchover(serde(p)?),
            "db.global_failover" => Action::DbGlobalFailover(serde(p)?),
            "db.detach_and_promote" => Action::DbDetachAndPromote(serde(p)?),
            "db.cluster_outage" => Action::DbClusterOutage(serde(p)?),
            "db.point_in_time_restore" => Action::DbPointInTimeRestore(PointInTimeRestore {
                source_cluster: str_of(p, "source_cluster").unwrap_or_default(),
                target_cluster: str_of(p, "target_cluster").unwrap_or_default(),
                restore_time: match time_of(p, "restore_time")? {
                    Some(t) => RestoreTime::At(t),
                    None => RestoreTime::Latest,
                },
                serve: p.get("serve").and_then(Json::as_bool).unwrap_or(false),
                wait: p.get("wait").and_then(Json::as_bool).unwrap_or(true),
            }),
            "dns.failover" => Action::DnsFailover(serde(p)?),
            "fis.experiment" => {
                Action::FisExperiment(Box::new(StepParams::from_json(p).map_err(|m| {
                    vec![ParamProblem::whole(
                        m,
                        "fix the `fis.experiment` parameters",
                    )]
                })?))
            }
            other => {
                return Err(vec![ParamProblem::whole(
                    format!("unknown action `{other}`"),
                    "see the action vocabulary in the README",
                )]);
            }
        })
    }

    /// The vocabulary name (`k8s.pod_kill`).
    pub fn name(&self) -> &'static str {
        match self {
            Action::Wait(_) => "wait",
            Action::Assert(_) => "assert",
            Action::WaitUntil(_) => "wait_until",
            Action::Approval(_) => "approval",
            Action::Http(_) => "http",
            Action::Command(_) => "command",
            Action::PodKill(_) => "k8s.pod_kill",
            Action::CordonZone(_) => "k8s.cordon_zone",
            Action::DrainZone(_) => "k8s.drain_zone",
            Action::NodeCordon(_) => "k8s.node_cordon",
            Action::NodeUncordon(_) => "k8s.node_uncordon",
            Action::NodeDrain(_) => "k8s.node_drain",
            Action::NodeTaint(_) => "k8s.node_taint",
            Action::NodeUntaint(_) => "k8s.node_untaint",
            Action::Scale(_) => "k8s.scale",
            Action::RolloutRestart(_) => "k8s.rollout_restart",
            Action::AzPowerInterruption(_) => "az.power_interruption",
            Action::RegionOutage(_) => "region.outage",
            Action::DbClusterFailover(_) => "db.cluster_failover",
            Action::DbInstanceReboot(_) => "db.instance_reboot",
            Action::DbGlobalSwitchover(_) => "db.global_switchover",
            Action::DbGlobalFailover(_) => "db.global_failover",
            Action::DbDetachAndPromote(_) => "db.detach_and_promote",
            Action::DbClusterOutage(_) => "db.cluster_outage",
            Action::DbPointInTimeRestore(_) => "db.point_in_time_restore",
            Action::DnsFailover(_) => "dns.failover",
            Action::FisExperiment(_) => "fis.experiment",
        }
    }

    /// The Kubernetes cluster a `k8s.*` action names (`None`: the environment's first).
    pub fn cluster(&self) -> Option<&str> {
        match self {
            Action::PodKill(a) => a.cluster.as_deref(),
            Action::CordonZone(a) | Action::DrainZone(a) => a.cluster.as_deref(),
            Action::NodeCordon(a) | Action::NodeUncordon(a) | Action::NodeDrain(a) => {
                a.cluster.as_deref()
            }
            Action::NodeTaint(a) => a.nodes.cluster.as_deref(),
            Action::NodeUntaint(a) => a.nodes.cluster.as_deref(),
            Action::Scale(a) => a.cluster.as_deref(),
            Action::RolloutRestart(a) => a.cluster.as_deref(),
            _ => None,
        }
    }
}

/// `postgres`: the DSN parsed (the rules checked it already), the query as written.
fn pg_query(p: &Json) -> Result<super::postgres::PgQuery, Vec<ParamProblem>> {
    let dsn = super::postgres::Dsn::parse(&str_of(p, "dsn").unwrap_or_default())
        .map_err(|e| vec![ParamProblem::at("dsn", e, super::rules::DSN_HELP)])?;
    Ok(super::postgres::PgQuery {
        dsn,
        query: str_of(p, "query").unwrap_or_default(),
    })
}

impl Probe {
    /// Decode the checked parameters of probe `name`.
    pub fn decode(name: &str, p: &Json) -> Result<Probe, Vec<ParamProblem>> {
        let rules = super::rules::check(name, p);
        if !rules.is_empty() {
            return Err(rules);
        }
        Ok(match name {
            "service.metrics" => Probe::ServiceMetrics(serde(p)?),
            "k8s.pods" => Probe::Pods(PodsQuery::from_params(p)?),
            "k8s.pod_restarts" => Probe::PodRestarts(PodsQuery::from_params(p)?),
            "k8s.workload" => Probe::Workload(WorkloadAt::from_params(p)?),
            "k8s.nodes" => Probe::Nodes(serde(p)?),
            "k8s.memory" => Probe::Memory(serde(p)?),
            "db.cluster" => Probe::DbCluster(DbClusterQuery {
                cluster: str_of(p, "cluster").unwrap_or_default(),
                as_of: time_of(p, "as_of")?,
            }),
            "db.instance" => Probe::DbInstance(serde(p)?),
            "dns.health_check" => {
                Probe::DnsHealthCheck(match (str_of(p, "record"), str_of(p, "health_check_id")) {
                    (Some(r), None) => HealthCheckRef::Record(r),
                    (None, Some(id)) => HealthCheckRef::Id(id),
                    _ => unreachable!("rules::check refuses both and neither"),
                })
            }
            "dns.record" => Probe::DnsRecord(serde(p)?),
            "fis.experiment" => Probe::FisExperiment(serde(p)?),
            "alert" => Probe::Alert(serde(p)?),
            "prometheus" => Probe::Prometheus(serde(p)?),
            "prometheus.alert" => Probe::PrometheusAlert(serde(p)?),
            "http" => Probe::Http(serde(p)?),
            "command" => Probe::Command(serde(p)?),
            "postgres" => Probe::Postgres(pg_query(p)?),
            other => {
                return Err(vec![ParamProblem::whole(
                    format!("unknown probe type `{other}`"),
                    "see the probe vocabulary in the README",
                )]);
            }
        })
    }

    /// The vocabulary name (`k8s.pods`).
    pub fn name(&self) -> &'static str {
        match self {
            Probe::ServiceMetrics(_) => "service.metrics",
            Probe::Pods(_) => "k8s.pods",
            Probe::PodRestarts(_) => "k8s.pod_restarts",
            Probe::Workload(_) => "k8s.workload",
            Probe::Nodes(_) => "k8s.nodes",
            Probe::Memory(_) => "k8s.memory",
            Probe::DbCluster(_) => "db.cluster",
            Probe::DbInstance(_) => "db.instance",
            Probe::DnsHealthCheck(_) => "dns.health_check",
            Probe::DnsRecord(_) => "dns.record",
            Probe::FisExperiment(_) => "fis.experiment",
            Probe::Alert(_) => "alert",
            Probe::Prometheus(_) => "prometheus",
            Probe::PrometheusAlert(_) => "prometheus.alert",
            Probe::Http(_) => "http",
            Probe::Command(_) => "command",
            Probe::Postgres(_) => "postgres",
        }
    }

    /// The Kubernetes cluster a `k8s.*` probe names.
    pub fn cluster(&self) -> Option<&str> {
        match self {
            Probe::Pods(q) | Probe::PodRestarts(q) => q.cluster.as_deref(),
            Probe::Workload(w) => w.cluster.as_deref(),
            Probe::Nodes(n) => n.cluster.as_deref(),
            Probe::Memory(m) => m.cluster.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::vocab::{self, ParamType};
    use serde_json::json;

    /// A valid value of a parameter type, for the drift test.
    fn sample(name: &str, ty: ParamType) -> Json {
        match (name, ty) {
            ("url", _) => json!("http://127.0.0.1:8080/health"),
            ("dsn", _) => json!("postgres://drill@127.0.0.1:5432/app"),
            ("run", _) => json!(["true"]),
            ("key", _) => json!("example.com/maint"),
            ("field_selector", _) => json!("spec.nodeName=n1"),
            ("expect_status", _) => json!(200),
            ("expect_exit", _) => json!(0),
            ("replicas", _) => json!(2),
            ("value", ParamType::Int) => json!(1),
            ("value", _) => json!("v"),
            ("max_percent", _) => json!(50),
            ("query", _) => json!("up"),
            ("matchers", _) => json!({"job": "api"}),
            (_, ParamType::Str) => json!(format!("{name}-x")),
            (_, ParamType::Int) => json!(3),
            (_, ParamType::Num) => json!(1.5),
            (_, ParamType::Bool) => json!(true),
            (_, ParamType::Duration) => json!("30s"),
            (_, ParamType::StrList) => json!(["a"]),
            (_, ParamType::Labels) => json!({"app": "api"}),
            (_, ParamType::Enum(v)) => json!(v[0]),
            (_, ParamType::Time) => json!("2026-12-01T10:00:00Z"),
            (_, ParamType::Any) => json!({}),
        }
    }

    /// Every documented parameter of every action and probe decodes (alone with the required
    /// ones, so exclusive pairs are tried one at a time), and an undocumented one is refused by
    /// the vocabulary check that runs first. The README's table is generated from the same
    /// vocabulary, so documentation and decoding cannot drift.
    #[test]
    fn every_documented_parameter_decodes() {
        let exclusive_second = [
            "namespaces",
            "statefulset",
            "health_check_id",
            "template",
            "selector",
        ];
        for a in vocab::ACTIONS {
            let mut base = serde_json::Map::new();
            for p in a.params.iter().filter(|p| p.required) {
                base.insert(p.name.into(), sample(p.name, p.ty));
            }
            // One of each exclusive pair is needed when neither is required.
            let needs = |k: &str| a.params.iter().any(|p| p.name == k);
            if needs("namespace") && !base.contains_key("namespace") {
                base.insert("namespace".into(), json!("web"));
            }
            if needs("deployment") && !base.contains_key("deployment") {
                base.insert("deployment".into(), json!("api"));
            }
            if needs("node") && !base.contains_key("node") {
                base.insert("node".into(), json!("n1"));
            }
            if a.name == "fis.experiment" {
                base.insert("template_id".into(), json!("EXT1234"));
            }
            let decoded = Action::decode(a.name, &Json::Object(base.clone()));
            assert!(decoded.is_ok(), "{}: {decoded:?}", a.name);
            assert_eq!(decoded.unwrap().name(), a.name);
            for p in a.params {
                if base.contains_key(p.name)
                    || exclusive_second.contains(&p.name)
                    || (a.name == "fis.experiment" && p.name == "template_id")
                    || (p.name == "mode")
                {
                    continue;
                }
                let mut with = base.clone();
                with.insert(p.name.into(), sample(p.name, p.ty));
                if p.name == "value" && a.name == "k8s.pod_kill" {
                    with.insert("mode".into(), json!("fixed"));
                }
                if p.name == "timeout" && a.name == "k8s.drain_zone" {
                    with.insert("method".into(), json!("evict"));
                }
                let r = Action::decode(a.name, &Json::Object(with));
                assert!(r.is_ok(), "{} with `{}`: {r:?}", a.name, p.name);
            }
        }
        for pk in vocab::PROBES {
            let mut base = serde_json::Map::new();
            for p in pk.params.iter().filter(|p| p.required) {
                base.insert(p.name.into(), sample(p.name, p.ty));
            }
            if pk.params.iter().any(|p| p.name == "deployment") {
                base.insert("deployment".into(), json!("api"));
            }
            if pk.name == "dns.health_check" {
                base.insert("record".into(), json!("api.example.com"));
            }
            let decoded = Probe::decode(pk.name, &Json::Object(base.clone()));
            assert!(decoded.is_ok(), "{}: {decoded:?}", pk.name);
            assert_eq!(decoded.unwrap().name(), pk.name);
            for p in pk.params {
                if base.contains_key(p.name) || exclusive_second.contains(&p.name) {
                    continue;
                }
                let mut with = base.clone();
                with.insert(p.name.into(), sample(p.name, p.ty));
                let r = Probe::decode(pk.name, &Json::Object(with));
                assert!(r.is_ok(), "{} with `{}`: {r:?}", pk.name, p.name);
            }
        }
    }

    #[test]
    fn decoded_values_carry_their_types() {
        let Action::PodKill(k) = Action::decode(
            "k8s.pod_kill",
            &json!({"namespace": "web", "selector": {"app": "api"}, "mode": "fixed-percent", "value": 50, "grace_period": "5s"}),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(k.mode.describe(), "fixed-percent 50");
        assert_eq!(k.grace_period, Some(Duration::from_secs(5)));
        let Action::Http(h) = Action::decode("http", &json!({"url": "http://x/"})).unwrap() else {
            panic!()
        };
        assert_eq!(
            (h.method.as_str(), h.timeout),
            ("GET", Duration::from_secs(10))
        );
        let Action::DbPointInTimeRestore(r) = Action::decode(
            "db.point_in_time_restore",
            &json!({"source_cluster": "a", "target_cluster": "b", "restore_time": "2026-12-01T10:00:00Z"}),
        )
        .unwrap() else {
            panic!()
        };
        assert!(matches!(r.restore_time, RestoreTime::At(_)) && r.wait && !r.serve);
        assert!(Action::decode("command", &json!({"run": []})).is_err());
        assert!(Action::decode("dns.failover", &json!({"record": "r", "to": "sideways"})).is_err());
    }
}
