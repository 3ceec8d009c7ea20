//! The action and probe vocabulary: every action and probe kind an experiment may name, with the
//! parameters each takes. Validation checks `with:` blocks against it; every backend (the
//! simulated estate now, Kubernetes and AWS later) implements the same names, so an experiment
//! runs unchanged against any of them: the environment decides.
//!
//! Invariant: this table is the single source of truth for names and parameters; the README's
//! format reference and `firedrill validate` both follow from it.

use crate::lang::decode::Cx;
use crate::lang::diag::did_you_mean;
use crate::lang::yaml::{Node, NodeKind};
use serde_json::{Map, Value as Json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Str,
    Int,
    Num,
    Bool,
    Duration,
    StrList,
    /// A mapping of label names to values (a Kubernetes-style selector).
    Labels,
    Enum(&'static [&'static str]),
    /// An RFC 3339 time or `latest`.
    Time,
    /// Anything (passed through as JSON).
    Any,
}

impl ParamType {
    fn describe(&self) -> String {
        match self {
            ParamType::Str => "a string".into(),
            ParamType::Int => "a whole number".into(),
            ParamType::Num => "a number".into(),
            ParamType::Bool => "true or false".into(),
            ParamType::Duration => "a duration like `90s`".into(),
            ParamType::StrList => "a list of strings".into(),
            ParamType::Labels => "a mapping of labels, e.g. `{app: api}`".into(),
            ParamType::Enum(v) => format!("one of {}", v.join(", ")),
            ParamType::Time => "an RFC 3339 time or `latest`".into(),
            ParamType::Any => "any value".into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
    pub doc: &'static str,
}

const fn req(name: &'static str, ty: ParamType, doc: &'static str) -> Param {
    Param {
        name,
        ty,
        required: true,
        doc,
    }
}
const fn opt(name: &'static str, ty: ParamType, doc: &'static str) -> Param {
    Param {
        name,
        ty,
        required: false,
        doc,
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ActionKind {
    pub name: &'static str,
    pub params: &'static [Param],
    pub doc: &'static str,
    /// What the automatic rollback does, if the action has a natural inverse.
    pub auto_rollback: Option<&'static str>,
    /// Built-in steps are run by the executor itself, not by a backend.
    pub builtin: bool,
}

impl ActionKind {
    /// Whether a step of this kind may be `recovery.fault`: any backend action, and the built-in
    /// `command` and `http` steps (a script or an API call can be the fault); not `wait`,
    /// `assert`, `wait_until` or `approval`, which observe or pause but inject nothing.
    pub fn can_be_fault(&self) -> bool {
        !self.builtin || matches!(self.name, "command" | "http")
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ProbeKind {
    pub name: &'static str,
    pub params: &'static [Param],
    pub doc: &'static str,
    /// The fields of the probe's JSON output.
    pub output: &'static str,
}

use ParamType::*;

const CLUSTER: Param = opt(
    "cluster",
    Str,
    "Kubernetes cluster (default: the environment's first cluster)",
);
const KILL_MODES: &[&str] = &["one", "all", "fixed", "fixed-percent", "random-max-percent"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const NODE: Param = opt("node", Str, "node name (or `selector`)");
const NODE_SELECTOR: Param = opt(
    "selector",
    Labels,
    "node label selector, e.g. `{topology.kubernetes.io/zone: us-east-1a}` (or `node`)",
);
const MAX_NODES: Param = opt(
    "max_nodes",
    Int,
    "blast-radius cap: refuse to touch more nodes than this",
);
const GRACE: Param = opt(
    "grace_period",
    Duration,
    "termination grace period (default: the pod's own)",
);
const ALLOW_SYSTEM: Param = opt(
    "allow_kube_system",
    Bool,
    "allow touching pods in kube-system (default false: refused)",
);
const WORKLOAD_NS: Param = req("namespace", Str, "namespace");
const DEPLOYMENT: Param = opt("deployment", Str, "deployment name (or `statefulset`)");
const STATEFULSET: Param = opt("statefulset", Str, "statefulset name (or `deployment`)");

pub const ACTIONS: &[ActionKind] = &[
    ActionKind {
        name: "wait",
        params: &[req("duration", Duration, "how long to wait")],
        doc: "Wait for a duration.",
        auto_rollback: None,
        builtin: true,
    },
    ActionKind {
        name: "assert",
        params: &[req("probe", Str, "name of a steady-state probe")],
        doc: "Run a probe once; fail unless its tolerance holds.",
        auto_rollback: None,
        builtin: true,
    },
    ActionKind {
        name: "wait_until",
        params: &[
            req("probe", Str, "name of a steady-state probe"),
            req(
                "deadline",
                Duration,
                "fail if the probe has not held by then",
            ),
            opt("interval", Duration, "poll interval (default 10s)"),
        ],
        doc: "Poll a probe until its tolerance holds, or fail at the deadline.",
        auto_rollback: None,
        builtin: true,
    },
    ActionKind {
        name: "approval",
        params: &[req("message", Str, "what the operator approves")],
        doc: "Ask an operator on the terminal; fails closed when unattended unless `--approve` was given.",
        auto_rollback: None,
        builtin: true,
    },
    ActionKind {
        name: "http",
        params: HTTP_PARAMS,
        doc: "Send an HTTP request; fails unless the status is as expected.",
        auto_rollback: None,
        builtin: true,
    },
    ActionKind {
        name: "command",
        params: COMMAND_PARAMS,
        doc: "Run a local command; fails unless it exits with the expected code.",
        auto_rollback: None,
        builtin: true,
    },
    ActionKind {
        name: "k8s.pod_kill",
        params: &[
            CLUSTER,
            opt("namespace", Str, "namespace of the pods (or `namespaces`)"),
            opt("namespaces", StrList, "several namespaces (or `namespace`)"),
            req("selector", Labels, "label selector, e.g. `{app: api}`"),
            opt(
                "field_selector",
                Str,
                "field selector, e.g. `spec.nodeName=node-1`",
            ),
            opt(
                "mode",
                Enum(KILL_MODES),
                "how many matching pods to kill (default one); `random-max-percent` kills a random count from 1 to `value`%",
            ),
            opt(
                "value",
                Int,
                "count for `fixed`, percent for `fixed-percent` and `random-max-percent`",
            ),
            GRACE,
            opt(
                "max_pods",
                Int,
                "blast-radius cap: refuse to kill more pods than this",
            ),
            opt(
                "max_percent",
                Int,
                "blast-radius cap: refuse to kill more than this percent of the matching pods",
            ),
            ALLOW_SYSTEM,
        ],
        doc: "Delete pods matching a selector; their controllers replace them. Records which pods were killed and, per pod, when a replacement was scheduled and Ready.",
        auto_rollback: None,
        builtin: false,
    },
    ActionKind {
        name: "k8s.cordon_zone",
        params: &[
            CLUSTER,
            req("zone", Str, "availability zone, e.g. us-east-1a"),
            MAX_NODES,
        ],
        doc: "Mark every node of a zone (`topology.kubernetes.io/zone`) unschedulable.",
        auto_rollback: Some("uncordon the nodes this step cordoned, and only those"),
        builtin: false,
    },
    ActionKind {
        name: "k8s.drain_zone",
        params: &[
            CLUSTER,
            req("zone", Str, "availability zone"),
            opt(
                "method",
                Enum(&["evict", "taint"]),
                "`evict`: cordon and drain through the Eviction API (default); `taint`: a NoExecute taint",
            ),
            opt(
                "timeout",
                Duration,
                "give up evicting after this long (default 5m)",
            ),
            GRACE,
            MAX_NODES,
            ALLOW_SYSTEM,
        ],
        doc: "Lose a zone the Kubernetes way: cordon and drain (or NoExecute-taint) every node with `topology.kubernetes.io/zone=<zone>`. Drains respect PodDisruptionBudgets and skip DaemonSet and mirror pods.",
        auto_rollback: Some("uncordon (or untaint) the nodes this step touched, and only those"),
        builtin: false,
    },
    ActionKind {
        name: "k8s.node_cordon",
        params: &[CLUSTER, NODE, NODE_SELECTOR, MAX_NODES],
        doc: "Mark nodes unschedulable.",
        auto_rollback: Some("uncordon the nodes this step cordoned, and only those"),
        builtin: false,
    },
    ActionKind {
        name: "k8s.node_uncordon",
        params: &[CLUSTER, NODE, NODE_SELECTOR, MAX_NODES],
        doc: "Mark nodes schedulable again.",
        auto_rollback: Some("cordon again the nodes this step uncordoned"),
        builtin: false,
    },
    ActionKind {
        name: "k8s.node_drain",
        params: &[
            CLUSTER,
            NODE,
            NODE_SELECTOR,
            opt(
                "timeout",
                Duration,
                "give up evicting after this long (default 5m)",
            ),
            GRACE,
            MAX_NODES,
            ALLOW_SYSTEM,
        ],
        doc: "Cordon nodes and evict their pods through the Eviction API (respects PodDisruptionBudgets, skips DaemonSet and mirror pods).",
        auto_rollback: Some("uncordon the nodes this step drained"),
        builtin: false,
    },
    ActionKind {
        name: "k8s.node_taint",
        params: &[
            CLUSTER,
            NODE,
            NODE_SELECTOR,
            req("key", Str, "taint key"),
            opt("value", Str, "taint value"),
            req("effect", Enum(TAINT_EFFECTS), "taint effect"),
            MAX_NODES,
        ],
        doc: "Add a taint to nodes (NoExecute evicts pods that do not tolerate it).",
        auto_rollback: Some("remove the taint from the nodes this step added it to"),
        builtin: false,
    },
    ActionKind {
        name: "k8s.node_untaint",
        params: &[
            CLUSTER,
            NODE,
            NODE_SELECTOR,
            req("key", Str, "taint key"),
            opt(
                "effect",
                Enum(TAINT_EFFECTS),
                "only the taint with this effect (default: every effect)",
            ),
            MAX_NODES,
        ],
        doc: "Remove a taint from nodes.",
        auto_rollback: Some("put back the taints this step removed"),
        builtin: false,
    },
    ActionKind {
        name: "k8s.scale",
        params: &[
            CLUSTER,
            WORKLOAD_NS,
            DEPLOYMENT,
            STATEFULSET,
            req("replicas", Int, "new replica count"),
        ],
        doc: "Scale a deployment or statefulset.",
        auto_rollback: Some("restore the previous replica count"),
        builtin: false,
    },
    ActionKind {
        name: "k8s.rollout_restart",
        params: &[CLUSTER, WORKLOAD_NS, DEPLOYMENT, STATEFULSET],
        doc: "Restart a deployment's or statefulset's pods with a rolling update (as `kubectl rollout restart`).",
        auto_rollback: Some("restore the previous restart annotation of the pod template"),
        builtin: false,
    },
    ActionKind {
        name: "az.power_interruption",
        params: &[req("zone", Str, "availability zone to lose")],
        doc: "Lose an availability zone (FIS AZ power interruption): its nodes, pods and database instances.",
        auto_rollback: Some("restore power to the zone"),
        builtin: false,
    },
    ActionKind {
        name: "region.outage",
        params: &[req("region", Str, "region to lose")],
        doc: "Lose a whole region: every zone, its endpoint and its database cluster.",
        auto_rollback: Some("restore the region"),
        builtin: false,
    },
    ActionKind {
        name: "db.cluster_failover",
        params: &[
            req("cluster", Str, "database cluster"),
            opt(
                "target_instance",
                Str,
                "reader to promote (default: chosen by the service)",
            ),
        ],
        doc: "Fail over a database cluster's writer to a reader.",
        auto_rollback: None,
        builtin: false,
    },
    ActionKind {
        name: "db.instance_reboot",
        params: &[
            req("instance", Str, "database instance"),
            opt(
                "force_failover",
                Bool,
                "fail over if the instance is the writer (default false)",
            ),
        ],
        doc: "Reboot a database instance.",
        auto_rollback: None,
        builtin: false,
    },
    ActionKind {
        name: "db.global_switchover",
        params: &[
            req("global_cluster", Str, "global database"),
            req("target_cluster", Str, "secondary cluster to make primary"),
        ],
        doc: "Planned switchover of a global database (no data loss; needs a healthy primary).",
        auto_rollback: None,
        builtin: false,
    },
    ActionKind {
        name: "db.global_failover",
        params: &[
            req("global_cluster", Str, "global database"),
            req("target_cluster", Str, "secondary cluster to promote"),
            opt(
                "allow_data_loss",
                Bool,
                "unplanned failover accepting the replication lag as data loss (default false: switchover)",
            ),
        ],
        doc: "Fail over a global database to a secondary region.",
        auto_rollback: None,
        builtin: false,
    },
    ActionKind {
        name: "db.detach_and_promote",
        params: &[
            req("global_cluster", Str, "global database"),
            req("cluster", Str, "secondary cluster to detach and promote"),
        ],
        doc: "Remove a secondary from its global database and promote it to a standalone writer.",
        auto_rollback: None,
        builtin: false,
    },
    ActionKind {
        name: "db.cluster_outage",
        params: &[req("cluster", Str, "database cluster")],
        doc: "Make a database cluster unavailable beyond failover (storage loss): the fault of a backup drill.",
        auto_rollback: Some("repair the cluster"),
        builtin: false,
    },
    ActionKind {
        name: "db.point_in_time_restore",
        params: &[
            req("source_cluster", Str, "cluster whose backups to restore"),
            req("target_cluster", Str, "name of the new cluster"),
            opt(
                "restore_time",
                Time,
                "time to restore to, or `latest` (default)",
            ),
            opt(
                "serve",
                Bool,
                "switch the service's writes to the restored cluster once available (default false)",
            ),
            opt(
                "wait",
                Bool,
                "wait until the restored cluster is available (default true)",
            ),
        ],
        doc: "Restore a database cluster to a point in time, into a new cluster.",
        auto_rollback: None,
        builtin: false,
    },
    ActionKind {
        name: "dns.failover",
        params: &[
            req("record", Str, "DNS record name"),
            req(
                "to",
                Enum(&["primary", "secondary"]),
                "where the record should answer",
            ),
        ],
        doc: "Force a failover record to its primary or secondary target.",
        auto_rollback: Some("return the record to health-check control"),
        builtin: false,
    },
    ActionKind {
        name: "fis.experiment",
        params: &[
            opt(
                "template_id",
                Str,
                "run an existing AWS FIS experiment template (or `template`)",
            ),
            opt(
                "template",
                Any,
                "an inline FIS experiment template (description, roleArn, actions, targets, stopConditions, tags, experimentOptions, logConfiguration, experimentReportConfiguration: every key CreateExperimentTemplate takes), created for the run and checked by `firedrill validate`",
            ),
            opt(
                "wait",
                Bool,
                "wait until the experiment ends (default true); false returns once it has started",
            ),
            opt(
                "timeout",
                Duration,
                "stop the experiment and fail the step if it has not ended by then (default 12h, FIS's limit)",
            ),
            opt(
                "delete_template",
                Bool,
                "delete the inline template once the experiment has ended (default true)",
            ),
        ],
        doc: "Run an AWS FIS experiment (existing template, or an inline one created for the run), tagged with the run id; journals each FIS action's state changes. Fails unless the experiment completes.",
        auto_rollback: Some(
            "stop the experiment if it is still running (StopExperiment) and delete the inline template",
        ),
        builtin: false,
    },
];

const HTTP_PARAMS: &[Param] = &[
    req("url", Str, "URL"),
    opt(
        "method",
        Enum(&["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
        "HTTP method (default GET)",
    ),
    opt("headers", Labels, "request headers"),
    opt("body", Any, "request body (JSON)"),
    opt("timeout", Duration, "request timeout (default 10s)"),
    opt(
        "expect_status",
        Int,
        "status required for an action to succeed (default: any 2xx)",
    ),
];

const COMMAND_PARAMS: &[Param] = &[
    req(
        "run",
        StrList,
        "program and arguments, e.g. `[curl, -sf, http://x]`",
    ),
    opt(
        "expect_exit",
        Int,
        "exit code required for an action to succeed (default 0)",
    ),
    opt(
        "timeout",
        Duration,
        "kill the command after this long (default 60s)",
    ),
];

pub const PROBES: &[ProbeKind] = &[
    ProbeKind {
        name: "service.metrics",
        params: &[req("service", Str, "service name")],
        doc: "Client-side view of a service.",
        output: "availability, error_rate, p99_latency_seconds, serving_region, rps",
    },
    ProbeKind {
        name: "k8s.pods",
        params: &[
            CLUSTER,
            req("namespace", Str, "namespace"),
            req("selector", Labels, "label selector"),
            opt("field_selector", Str, "field selector"),
        ],
        doc: "Pods matching a selector (desired comes from their controllers' replica counts).",
        output: "desired, total, ready, starting, pending, ready_ratio, ready_percent, restarts",
    },
    ProbeKind {
        name: "k8s.pod_restarts",
        params: &[
            CLUSTER,
            req("namespace", Str, "namespace"),
            req("selector", Labels, "label selector"),
            opt(
                "window",
                Duration,
                "count the increase over this window (default 5m)",
            ),
        ],
        doc: "Container restarts and pod replacements of the matching pods, in total and over a window (the runbook's \"restarts > 10 in 5 min\").",
        output: "restarts, increase, window_seconds",
    },
    ProbeKind {
        name: "k8s.workload",
        params: &[CLUSTER, WORKLOAD_NS, DEPLOYMENT, STATEFULSET],
        doc: "A deployment's or statefulset's availability.",
        output: "replicas, ready_replicas, available_replicas, updated_replicas, available",
    },
    ProbeKind {
        name: "k8s.nodes",
        params: &[CLUSTER, opt("zone", Str, "only this zone")],
        doc: "Nodes, optionally of one zone (`topology.kubernetes.io/zone`).",
        output: "ready, total, schedulable, ready_ratio",
    },
    ProbeKind {
        name: "k8s.memory",
        params: &[CLUSTER],
        doc: "Memory requested by running pods over Ready nodes' memory.",
        output: "utilization",
    },
    ProbeKind {
        name: "db.cluster",
        params: &[
            req("cluster", Str, "database cluster"),
            opt(
                "as_of",
                Time,
                "report `latest_write` as the newest surviving write at or before this time (the data-loss measurement passes the fault time)",
            ),
        ],
        doc: "A database cluster's status, writer and data freshness.",
        output: "status, role, writer, writer_zone, writable, latest_write, latest_restorable_time",
    },
    ProbeKind {
        name: "db.instance",
        params: &[req("instance", Str, "database instance")],
        doc: "A database instance's status and whether it is its cluster's writer.",
        output: "status, available, is_writer, cluster, zone",
    },
    ProbeKind {
        name: "dns.health_check",
        params: &[
            opt(
                "record",
                Str,
                "the health check of this failover record's primary (or `health_check_id`)",
            ),
            opt(
                "health_check_id",
                Str,
                "a Route 53 health check id (AWS only; or `record`)",
            ),
        ],
        doc: "A DNS health check's status.",
        output: "healthy (AWS also: checkers, healthy_checkers, status)",
    },
    ProbeKind {
        name: "dns.record",
        params: &[req("record", Str, "DNS record name")],
        doc: "What a failover record answers.",
        output: "authoritative, answer, primary_healthy, ttl_seconds",
    },
    ProbeKind {
        name: "fis.experiment",
        params: &[opt(
            "template_id",
            Str,
            "only experiments of this template (default: any this run started)",
        )],
        doc: "The newest FIS experiment this run started (pair with `fis.experiment` and `wait: false`).",
        output: "id, state (none, pending, initiating, running, completed, stopping, stopped, failed, cancelled), reason, running, actions (name: state), experiments",
    },
    ProbeKind {
        name: "alert",
        params: &[req("name", Str, "alert rule name")],
        doc: "State of an alert rule.",
        output: "state (inactive, pending, firing), firing, since",
    },
    ProbeKind {
        name: "prometheus",
        params: &[
            req(
                "query",
                Str,
                "PromQL instant query, e.g. `sum(rate(http_requests_total{code=~\"5..\"}[1m]))`",
            ),
            opt(
                "reduce",
                Enum(crate::lang::action::Reduce::NAMES),
                "how several series fold into `value` (required when the query returns more than one series); `each`: `value` is the list of every series' value and a `min`/`max`/`range` tolerance must hold for each",
            ),
            opt(
                "on_empty",
                Enum(crate::lang::action::OnEmpty::NAMES),
                "when the query returns no series: `fail` (default: the probe fails) or `zero` (the value is 0)",
            ),
        ],
        doc: "A PromQL instant query against the environment's `prometheus:` server (preflight runs it once and reports PromQL errors). NaN and ±Inf are `value: null` with `value_text` (`NaN`, `+Inf`, `-Inf`), so numeric tolerances fail on them.",
        output: "value (number, or a list with `reduce: each`; null for NaN/±Inf), value_text (only for NaN/±Inf), series (labels, value), series_count, result_type (vector or scalar), server",
    },
    ProbeKind {
        name: "prometheus.alert",
        params: &[
            req(
                "alertname",
                Str,
                "the alerting rule's name (`alertname` label)",
            ),
            opt(
                "matchers",
                Labels,
                "label values the alert must also carry, e.g. `{service: api}`",
            ),
            opt(
                "source",
                Enum(crate::lang::action::AlertSource::NAMES),
                "`prometheus` (default: `/api/v1/alerts` and the `ALERTS` series) or `alertmanager` (`/api/v2/alerts`, the `alertmanager:` section)",
            ),
        ],
        doc: "An alert's state. As `recovery.detection`, MTTD is the alert's own firing moment (the first `ALERTS{alertstate=\"firing\"}` sample after the fault, server clock corrected by the skew measured at start) minus the fault's start, resolution the rule group's evaluation interval; an alert that fired and resolved between polls still counts, and an alert already pending or firing before the fault fails the before gate.",
        output: "state (inactive, pending, firing), firing, active_at, fired_at (RFC 3339 or null), alerts (matching instances), source, server",
    },
    ProbeKind {
        name: "postgres",
        params: &[
            req(
                "dsn",
                Str,
                "connection string: `postgres://user:password@host:5432/db?sslmode=require` or `host=... port=... dbname=... user=...`; `sslmode` disable, prefer (default) or require; under TLS the certificate and host name are verified against the system's roots; `connect_timeout` in seconds (default: the environment's, 5s)",
            ),
            req(
                "query",
                Str,
                "SQL run in a READ ONLY transaction, e.g. `select not pg_is_in_recovery()`",
            ),
        ],
        doc: "A PostgreSQL query (one connection per poll, every step timed out). Values are typed: integers, floats, numeric, bool, text, json, timestamptz as RFC 3339, null; cast other types to text.",
        output: "value (first column of the first row, null without rows), rows (up to 100, column: value), row_count",
    },
    ProbeKind {
        name: "http",
        params: HTTP_PARAMS,
        doc: "An HTTP request.",
        output: "status, latency_ms, body",
    },
    ProbeKind {
        name: "command",
        params: COMMAND_PARAMS,
        doc: "A local command.",
        output: "exit_code, stdout, stderr",
    },
];

pub fn action(name: &str) -> Option<&'static ActionKind> {
    ACTIONS.iter().find(|a| a.name == name)
}

pub fn probe(name: &str) -> Option<&'static ProbeKind> {
    PROBES.iter().find(|p| p.name == name)
}

pub fn action_names() -> Vec<&'static str> {
    ACTIONS.iter().map(|a| a.name).collect()
}

pub fn probe_names() -> Vec<&'static str> {
    PROBES.iter().map(|p| p.name).collect()
}

/// Check a `with:` block against a parameter list; returns the parameters as a JSON object.
pub fn check_params(
    cx: &mut Cx,
    owner: &Node,
    with: Option<&Node>,
    params: &[Param],
    what: &str,
) -> Option<Json> {
    let mut out = Map::new();
    let mut ok = true;
    let entries: &[(Node, Node)] = match with.map(|w| &w.kind) {
        None | Some(NodeKind::Null) => &[],
        Some(NodeKind::Map(e)) => e,
        Some(_) => {
            let w = with.expect("matched Some");
            cx.key("with", |cx| {
                cx.error(
                    w.loc,
                    format!(
                        "expected a mapping of parameters for {what}, found {}",
                        w.describe()
                    ),
                    "write parameters as `with: {name: value}`",
                )
            });
            return None;
        }
    };
    let names: Vec<&str> = params.iter().map(|p| p.name).collect();
    for (k, v) in entries {
        let Some(name) = k.as_str() else { continue };
        let Some(p) = params.iter().find(|p| p.name == name) else {
            ok = false;
            let help = did_you_mean(name, &names, &format!("parameters of {what}"));
            cx.key("with", |cx| {
                cx.key(name, |cx| {
                    cx.error(k.loc, format!("{what} has no parameter `{name}`"), help)
                })
            });
            continue;
        };
        match cx.key("with", |cx| cx.key(name, |cx| check_value(cx, v, p))) {
            Some(j) => {
                out.insert(name.to_string(), j);
            }
            None => ok = false,
        }
    }
    for p in params.iter().filter(|p| p.required) {
        if !entries.iter().any(|(k, _)| k.as_str() == Some(p.name)) {
            ok = false;
            let loc = with.map(|w| w.loc).unwrap_or(owner.loc);
            cx.error(
                loc,
                format!("{what} needs parameter `{}` ({})", p.name, p.ty.describe()),
                format!("add `{}: ...` under `with:` ({})", p.name, p.doc),
            );
        }
    }
    ok.then_some(Json::Object(out))
}

fn check_value(cx: &mut Cx, v: &Node, p: &Param) -> Option<Json> {
    use crate::lang::decode::Decode;
    let bad = |cx: &mut Cx, found: &str| {
        cx.error(
            v.loc,
            format!(
                "parameter `{}` must be {}, found {found}",
                p.name,
                p.ty.describe()
            ),
            format!("{}: {}", p.name, p.doc),
        );
        None
    };
    let json = v.to_json();
    match p.ty {
        Any => Some(json),
        Str => match &v.kind {
            NodeKind::Scalar { value, .. } => Some(Json::String(value.clone())),
            _ => bad(cx, v.describe()),
        },
        Int => match json.as_u64() {
            Some(_) => Some(json),
            None => bad(cx, &format!("`{}`", v.as_str().unwrap_or(v.describe()))),
        },
        Num => match json.as_f64() {
            Some(_) => Some(json),
            None => bad(cx, &format!("`{}`", v.as_str().unwrap_or(v.describe()))),
        },
        Bool => match json {
            Json::Bool(_) => Some(json),
            _ => bad(cx, &format!("`{}`", v.as_str().unwrap_or(v.describe()))),
        },
        Duration => std::time::Duration::decode(cx, v)
            .map(|d| Json::String(crate::lang::duration::format(d))),
        StrList => match &v.kind {
            NodeKind::Seq(items)
                if items
                    .iter()
                    .all(|i| matches!(i.kind, NodeKind::Scalar { .. })) =>
            {
                Some(Json::Array(
                    items
                        .iter()
                        .map(|i| Json::String(i.as_str().unwrap_or_default().to_string()))
                        .collect(),
                ))
            }
            _ => bad(cx, v.describe()),
        },
        Labels => match &v.kind {
            NodeKind::Map(e)
                if e.iter()
                    .all(|(_, x)| matches!(x.kind, NodeKind::Scalar { .. })) =>
            {
                Some(Json::Object(
                    e.iter()
                        .map(|(k, x)| {
                            (
                                k.as_str().unwrap_or_default().to_string(),
                                Json::String(x.as_str().unwrap_or_default().to_string()),
                            )
                        })
                        .collect(),
                ))
            }
            _ => bad(cx, v.describe()),
        },
        Enum(options) => match v.as_str() {
            Some(s) if options.contains(&s) => Some(json_str(s)),
            Some(s) => {
                cx.error(
                    v.loc,
                    format!("`{s}` is not a valid `{}`", p.name),
                    did_you_mean(s, options, "choices"),
                );
                None
            }
            None => bad(cx, v.describe()),
        },
        Time => match v.as_str() {
            Some("latest") => Some(json_str("latest")),
            Some(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => Some(json_str(s)),
            Some(s) => bad(cx, &format!("`{s}`")),
            None => bad(cx, v.describe()),
        },
    }
}

fn json_str(s: &str) -> Json {
    Json::String(s.to_string())
}

/// The vocabulary as markdown tables (the README's format reference is this text, checked by a
/// test, and `firedrill vocab` prints it): every action and probe with its parameters, what a
/// rollback does, and what a probe reports.
pub fn markdown() -> String {
    use std::fmt::Write as _;
    let params = |ps: &[Param]| -> String {
        if ps.is_empty() {
            return "(none)".into();
        }
        ps.iter()
            .map(|p| {
                format!(
                    "`{}`{}: {}; {}",
                    p.name,
                    if p.required { "" } else { "?" },
                    p.ty.describe(),
                    p.doc.replace('|', "\\|")
                )
            })
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::new();
    out.push_str("| Action | Parameters (`?`: optional) | Rollback (`auto`) | What it does |\n");
    out.push_str("|---|---|---|---|\n");
    for a in ACTIONS {
        let _ = writeln!(
            out,
            "| `{}`{} | {} | {} | {} |",
            a.name,
            if a.builtin { " (built-in)" } else { "" },
            params(a.params),
            a.auto_rollback.map(cell).unwrap_or_else(|| "none".into()),
            cell(a.doc)
        );
    }
    out.push_str("\n| Probe | Parameters (`?`: optional) | Output | What it reports |\n");
    out.push_str("|---|---|---|---|\n");
    for p in PROBES {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            p.name,
            params(p.params),
            cell(p.output),
            cell(p.doc)
        );
    }
    out
}
