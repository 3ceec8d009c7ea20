//! Kubernetes semantics shared by every backend that serves `k8s.*` (the kube-rs backend and the
//! simulated estate): typed parameters of the pod, node and workload actions, kill counts, blast-
//! radius caps, taint keys and effects, and their messages. Validation decodes every `k8s.*` step
//! with these types, so a rule between parameters (`mode: fixed` needs `value`, `namespace` or
//! `namespaces` but not both) is a located diagnostic at `firedrill validate`, and both backends
//! read the same typed value: they cannot drift.
//!
//! Invariant: pure; no IO. Decoding takes the JSON that [`crate::lang::vocab::check_params`]
//! produced (types already checked) and returns typed values or every rule broken.

use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

/// Taint key `k8s.drain_zone` with `method: taint` puts on a zone's nodes (value: the zone).
pub const ZONE_LOSS_TAINT: &str = "firedrill.dev/zone-loss";
/// How long a drain tries by default.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a drain waits before retrying an eviction a PodDisruptionBudget refused (429): a
/// fixed 5 s, as `kubectl drain` does (k8s.io/kubectl/pkg/drain, `evictPods`). Both backends use it,
/// so a blocked drain takes the same time on the simulated estate and on a cluster.
pub const EVICTION_RETRY: Duration = Duration::from_secs(5);
/// Default window of `k8s.pod_restarts`.
pub const RESTART_WINDOW: Duration = Duration::from_secs(300);

/// One broken rule of a step's or probe's parameters: which parameter, what is wrong, the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamProblem {
    /// The parameter the problem is located at (`None`: the `with:` block as a whole).
    pub param: Option<&'static str>,
    pub message: String,
    pub help: String,
}

impl ParamProblem {
    pub fn at(param: &'static str, message: impl Into<String>, help: impl Into<String>) -> Self {
        ParamProblem {
            param: Some(param),
            message: message.into(),
            help: help.into(),
        }
    }
    pub fn whole(message: impl Into<String>, help: impl Into<String>) -> Self {
        ParamProblem {
            param: None,
            message: message.into(),
            help: help.into(),
        }
    }
}

impl std::fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.message, self.help)
    }
}

/// Every problem of a decode, for callers that only need one message.
pub fn joined(problems: &[ParamProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A percentage from 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(u8);

impl Percent {
    pub fn new(v: u64) -> Option<Percent> {
        (1..=100).contains(&v).then_some(Percent(v as u8))
    }
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
    /// This share of `n`, rounded up.
    pub fn of(self, n: usize) -> usize {
        (n * self.0 as usize).div_ceil(100)
    }
}

/// How many of the matching pods a kill takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillMode {
    /// One pod.
    One,
    /// Every matching pod.
    All,
    /// This many (at most all).
    Fixed(NonZeroU32),
    /// This share, rounded up.
    FixedPercent(Percent),
    /// A random count from 1 to this share (rounded up).
    RandomMaxPercent(Percent),
}

impl KillMode {
    pub fn name(self) -> &'static str {
        match self {
            KillMode::One => "one",
            KillMode::All => "all",
            KillMode::Fixed(_) => "fixed",
            KillMode::FixedPercent(_) => "fixed-percent",
            KillMode::RandomMaxPercent(_) => "random-max-percent",
        }
    }

    /// `fixed 2`, `fixed-percent 50`: the mode as written.
    pub fn describe(self) -> String {
        match self {
            KillMode::One | KillMode::All => self.name().to_string(),
            KillMode::Fixed(k) => format!("fixed {k}"),
            KillMode::FixedPercent(p) | KillMode::RandomMaxPercent(p) => {
                format!("{} {}", self.name(), p.get())
            }
        }
    }

    /// How many pods this mode takes of `n` matches: (lowest, highest). Random modes pick in
    /// that range; the others take exactly one count.
    pub fn count_range(self, n: usize) -> (usize, usize) {
        match self {
            KillMode::One => (n.min(1), n.min(1)),
            KillMode::All => (n, n),
            KillMode::Fixed(k) => {
                let k = (k.get() as usize).min(n);
                (k, k)
            }
            KillMode::FixedPercent(p) => {
                let k = p.of(n);
                (k, k)
            }
            KillMode::RandomMaxPercent(p) => (n.min(1), p.of(n).max(n.min(1))),
        }
    }

    /// Whether the pick among the matches differs between runs.
    pub fn is_random(self, n: usize) -> bool {
        let (lo, hi) = self.count_range(n);
        hi < n || lo != hi
    }
}

/// Nodes an action targets: one by name, or every node a label selector matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeTarget {
    Name(String),
    Selector(BTreeMap<String, String>),
}

/// A workload an action or probe names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadRef {
    Deployment(String),
    StatefulSet(String),
}

impl WorkloadRef {
    /// `deployment` or `statefulset`, as the parameters and `kubectl` name the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            WorkloadRef::Deployment(_) => "deployment",
            WorkloadRef::StatefulSet(_) => "statefulset",
        }
    }
    pub fn name(&self) -> &str {
        match self {
            WorkloadRef::Deployment(n) | WorkloadRef::StatefulSet(n) => n,
        }
    }
}

/// A taint's effect.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum TaintEffect {
    /// New pods that do not tolerate it are not scheduled on the node.
    NoSchedule,
    /// The scheduler avoids the node when it can.
    PreferNoSchedule,
    /// As NoSchedule, and pods already there that do not tolerate it are evicted.
    NoExecute,
}

impl TaintEffect {
    pub fn parse(s: &str) -> Option<TaintEffect> {
        match s {
            "NoSchedule" => Some(TaintEffect::NoSchedule),
            "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
            "NoExecute" => Some(TaintEffect::NoExecute),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// A taint to add: key, optional value, effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaintSpec {
    pub key: String,
    pub value: Option<String>,
    pub effect: TaintEffect,
}

impl TaintSpec {
    /// The taint `k8s.drain_zone method: taint` puts on the nodes of `zone`.
    pub fn zone_loss(zone: &str) -> TaintSpec {
        TaintSpec {
            key: ZONE_LOSS_TAINT.to_string(),
            value: Some(zone.to_string()),
            effect: TaintEffect::NoExecute,
        }
    }
    /// `key=value:Effect`, as kubectl writes a taint.
    pub fn describe(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={v}:{}", self.key, self.effect.as_str()),
            None => format!("{}:{}", self.key, self.effect.as_str()),
        }
    }
}

/// `k8s.pod_kill`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct PodKill {
    pub cluster: Option<String>,
    /// At least one, without duplicates, in the order written.
    pub namespaces: Vec<String>,
    pub selector: BTreeMap<String, String>,
    pub field_selector: Option<String>,
    pub mode: KillMode,
    pub grace_period: Option<Duration>,
    pub max_pods: Option<NonZeroU32>,
    pub max_percent: Option<Percent>,
    pub allow_kube_system: bool,
}

/// How a zone is lost (`k8s.drain_zone method:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainMethod {
    /// Cordon, then evict through the Eviction API.
    Evict,
    /// A NoExecute taint ([`ZONE_LOSS_TAINT`]).
    Taint,
}

/// `k8s.drain_zone` and `k8s.cordon_zone`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneAction {
    pub cluster: Option<String>,
    pub zone: String,
    pub method: DrainMethod,
    pub timeout: Duration,
    pub grace_period: Option<Duration>,
    pub max_nodes: Option<NonZeroU32>,
    pub allow_kube_system: bool,
}

/// `k8s.node_*`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeAction {
    pub cluster: Option<String>,
    pub target: NodeTarget,
    pub max_nodes: Option<NonZeroU32>,
    pub timeout: Duration,
    pub grace_period: Option<Duration>,
    pub allow_kube_system: bool,
}

/// `k8s.node_taint`, decoded: which nodes, and the taint to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTaint {
    pub nodes: NodeAction,
    pub taint: TaintSpec,
}

/// `k8s.node_untaint`, decoded: which nodes, and the taint to remove (by key, and by effect if
/// given: without one, every taint with the key goes).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeUntaint {
    pub nodes: NodeAction,
    pub key: String,
    pub effect: Option<TaintEffect>,
}

/// A duration that must be positive was written as zero (`default`: what leaving it out gives).
pub(super) fn zero_duration(k: &'static str, default: &str) -> ParamProblem {
    ParamProblem::at(
        k,
        format!("`{k}: 0s` gives up before anything can happen"),
        format!("give a positive duration, or leave `{k}` out (default {default})"),
    )
}

/// Reads typed values out of checked parameters, collecting every broken rule.
struct Reader<'a> {
    p: &'a Json,
    problems: Vec<ParamProblem>,
}

impl<'a> Reader<'a> {
    fn new(p: &'a Json) -> Reader<'a> {
        Reader {
            p,
            problems: Vec::new(),
        }
    }
    fn has(&self, k: &str) -> bool {
        self.p.get(k).is_some_and(|v| !v.is_null())
    }
    fn str(&self, k: &str) -> Option<String> {
        self.p.get(k).and_then(Json::as_str).map(str::to_string)
    }
    fn u64(&self, k: &str) -> Option<u64> {
        self.p.get(k).and_then(Json::as_u64)
    }
    fn bool(&self, k: &str) -> bool {
        self.p.get(k).and_then(Json::as_bool).unwrap_or(false)
    }
    fn duration(&self, k: &str) -> Option<Duration> {
        self.p
            .get(k)
            .and_then(Json::as_str)
            .and_then(|s| crate::lang::duration::parse(s).ok())
    }
    fn labels(&self, k: &str) -> BTreeMap<String, String> {
        self.p
            .get(k)
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
    fn list(&self, k: &str) -> Option<Vec<String>> {
        self.p.get(k).and_then(Json::as_array).map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
    }
    fn problem(
        &mut self,
        param: &'static str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.problems.push(ParamProblem::at(param, message, help));
    }
    fn whole(&mut self, message: impl Into<String>, help: impl Into<String>) {
        self.problems.push(ParamProblem::whole(message, help));
    }
    /// A blast-radius cap: at least 1 (a cap of 0 refuses every target).
    fn cap(&mut self, k: &'static str, what: &str) -> Option<NonZeroU32> {
        let v = self.u64(k)?;
        match u32::try_from(v).ok().and_then(NonZeroU32::new) {
            Some(n) => Some(n),
            None if v == 0 => {
                self.problem(
                    k,
                    format!("`{k}: 0` refuses every {what}: the step could never act"),
                    format!("give the largest number of {what}s the step may touch (at least 1), or leave `{k}` out"),
                );
                None
            }
            None => {
                self.problem(
                    k,
                    format!("`{k}: {v}` is not a usable cap"),
                    format!("give at most {}", u32::MAX),
                );
                None
            }
        }
    }
    fn percent(&mut self, k: &'static str, help: &str) -> Option<Percent> {
        let v = self.u64(k)?;
        let p = Percent::new(v);
        if p.is_none() {
            self.problem(
                k,
                format!("`{k}: {v}` is not a percentage from 1 to 100"),
                help.to_string(),
            );
        }
        p
    }
    fn positive(&mut self, k: &'static str, default: Duration) -> Duration {
        match self.duration(k) {
            Some(d) if d.is_zero() => {
                self.problems
                    .push(zero_duration(k, &crate::lang::duration::format(default)));
                default
            }
            Some(d) => d,
            None => default,
        }
    }
    /// A label selector that selects: an empty one matches every object.
    fn selector(&mut self, k: &'static str, what: &str) -> BTreeMap<String, String> {
        let s = self.labels(k);
        if self.has(k) && s.is_empty() {
            self.problem(
                k,
                format!("an empty `{k}` matches every {what}"),
                format!("name the {what}s, e.g. `{k}: {{app: api}}`"),
            );
        }
        s
    }
    fn finish<T>(self, value: T) -> Result<T, Vec<ParamProblem>> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(self.problems)
        }
    }
}

/// The namespaces of a pod action: `namespace` or `namespaces` (not both, not none, not empty).
fn namespaces(r: &mut Reader) -> Vec<String> {
    let one = r.str("namespace");
    let many = r.list("namespaces");
    match (one, many) {
        (Some(_), Some(_)) => {
            r.problem(
                "namespaces",
                "give `namespace` or `namespaces`, not both",
                "keep one: `namespace: web`, or `namespaces: [web, api]`",
            );
            Vec::new()
        }
        (Some(ns), None) => vec![ns],
        (None, Some(list)) if list.is_empty() => {
            r.problem(
                "namespaces",
                "`namespaces` is empty: the step would match no pod",
                "list at least one namespace, e.g. `namespaces: [web]`",
            );
            Vec::new()
        }
        (None, Some(list)) => {
            let mut out: Vec<String> = Vec::new();
            for ns in list {
                if out.contains(&ns) {
                    r.problem(
                        "namespaces",
                        format!("namespace `{ns}` is listed twice"),
                        "list each namespace once",
                    );
                } else {
                    out.push(ns);
                }
            }
            out
        }
        (None, None) => {
            r.whole(
                "k8s.pod_kill needs `namespace` (or `namespaces`): which namespace's pods to kill",
                "add `namespace: <name>` under `with:`",
            );
            Vec::new()
        }
    }
}

fn kill_mode(r: &mut Reader) -> KillMode {
    let mode = r.str("mode").unwrap_or_else(|| "one".into());
    let value = r.u64("value");
    let pct_help = "give a percentage from 1 to 100, e.g. `value: 50`";
    match (mode.as_str(), value) {
        ("one" | "all", Some(v)) => {
            r.problem(
                "value",
                format!("`value: {v}` has no effect with `mode: {mode}`"),
                "use `mode: fixed` (a count) or `mode: fixed-percent` (a share) with `value`, or drop `value`",
            );
            KillMode::One
        }
        ("all", None) => KillMode::All,
        ("fixed", Some(v)) => match u32::try_from(v).ok().and_then(NonZeroU32::new) {
            Some(k) => KillMode::Fixed(k),
            None => {
                r.problem(
                    "value",
                    format!("`mode: fixed` with `value: {v}` kills no pod"),
                    "give how many pods to kill (at least 1)",
                );
                KillMode::One
            }
        },
        ("fixed", None) => {
            r.problem(
                "mode",
                "`mode: fixed` needs `value`: how many pods to kill",
                "add e.g. `value: 2`",
            );
            KillMode::One
        }
        ("fixed-percent" | "random-max-percent", None) => {
            r.problem(
                "mode",
                format!("`mode: {mode}` needs `value`: a percentage from 1 to 100"),
                "add e.g. `value: 50`",
            );
            KillMode::One
        }
        ("fixed-percent", Some(_)) => r
            .percent("value", pct_help)
            .map(KillMode::FixedPercent)
            .unwrap_or(KillMode::One),
        ("random-max-percent", Some(_)) => r
            .percent("value", pct_help)
            .map(KillMode::RandomMaxPercent)
            .unwrap_or(KillMode::One),
        _ => KillMode::One,
    }
}

impl PodKill {
    pub fn from_params(p: &Json) -> Result<PodKill, Vec<ParamProblem>> {
        let mut r = Reader::new(p);
        let namespaces = namespaces(&mut r);
        let selector = r.selector("selector", "pod");
        let mode = kill_mode(&mut r);
        let max_pods = r.cap("max_pods", "pod");
        let max_percent = r.percent(
            "max_percent",
            "give the largest share of the matching pods the step may kill, from 1 to 100",
        );
        if let (KillMode::Fixed(k), Some(cap)) = (mode, max_pods)
            && k > cap
        {
            r.problem(
                "value",
                format!("`value: {k}` asks for more pods than `max_pods: {cap}` allows"),
                "lower `value` or raise `max_pods`",
            );
        }
        if let (KillMode::FixedPercent(v), Some(cap)) = (mode, max_percent)
            && v > cap
        {
            r.problem(
                "value",
                format!(
                    "`value: {}` percent is over `max_percent: {}`",
                    v.get(),
                    cap.get()
                ),
                "lower `value` or raise `max_percent`",
            );
        }
        let field_selector = r.str("field_selector");
        if let Some(f) = &field_selector
            && let Err(e) = check_field_selector(f)
        {
            r.problem(
                "field_selector",
                e,
                "write `field=value` pairs separated by commas, e.g. `spec.nodeName=node-1`",
            );
        }
        let value = PodKill {
            cluster: r.str("cluster"),
            namespaces,
            selector,
            field_selector,
            mode,
            grace_period: r.duration("grace_period"),
            max_pods,
            max_percent,
            allow_kube_system: r.bool("allow_kube_system"),
        };
        r.finish(value)
    }
}

impl PodKill {
    /// How many of `matched` pods this kill takes, (lowest, highest), after the blast-radius
    /// caps: the step's `max_pods` (else `default_max_pods`, the environment's) and
    /// `max_percent` are checked against the highest count a mode may take, so a random mode
    /// is refused when it *could* go over, before anything is touched. `target` names the pods
    /// for the message (`pods matching app=api`).
    pub fn limit(
        &self,
        matched: usize,
        default_max_pods: Option<u64>,
        target: &str,
    ) -> Result<(usize, usize), String> {
        let (low, high) = self.mode.count_range(matched);
        let up_to = if low != high { "up to " } else { "" };
        let mode = self.mode.describe();
        if let Some(cap) = self
            .max_pods
            .map(|c| u64::from(c.get()))
            .or(default_max_pods)
            && high as u64 > cap
        {
            return Err(format!(
                "blast radius: mode `{mode}` would kill {up_to}{high} of the {matched} {target}, over max_pods {cap}; raise max_pods or narrow the selector"
            ));
        }
        if let Some(pct) = self.max_percent
            && (high as u64) * 100 > u64::from(pct.get()) * matched as u64
        {
            return Err(format!(
                "blast radius: mode `{mode}` would kill {up_to}{high} of the {matched} {target} ({}%), over max_percent {}%; raise max_percent or kill fewer",
                (high * 100).div_ceil(matched.max(1)),
                pct.get()
            ));
        }
        Ok((low, high))
    }
}

/// The node cap: refuse an action on more than `cap` nodes (the step's `max_nodes`, else the
/// environment's).
pub fn check_node_cap(names: &[String], cap: Option<u64>) -> Result<(), String> {
    match cap {
        Some(cap) if names.len() as u64 > cap => Err(format!(
            "blast radius: this would touch {} nodes ({}), over max_nodes {cap}; raise max_nodes or narrow the selection",
            names.len(),
            names.join(", ")
        )),
        _ => Ok(()),
    }
}

/// The kube-system rule: pods of the cluster's own components are touched only when the step
/// (or the environment) says so.
pub fn check_kube_system(namespace: &str, allowed: bool) -> Result<(), String> {
    if namespace == "kube-system" && !allowed {
        return Err(
            "refusing to act on namespace `kube-system` (the cluster's own components); set `allow_kube_system: true` on the step (or in the environment's kubernetes section) if you really mean it".into(),
        );
    }
    Ok(())
}

/// The fields a pod field selector may use (what the API server supports for pods).
pub const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

/// `a=b,c!=d`: every term names a known pod field and an operator.
pub fn check_field_selector(s: &str) -> Result<(), String> {
    for term in s.split(',') {
        let term = term.trim();
        let field = term
            .split_once("!=")
            .or_else(|| term.split_once("=="))
            .or_else(|| term.split_once('='))
            .map(|(f, _)| f.trim());
        match field {
            None | Some("") => {
                return Err(format!("`{term}` is not a `field=value` term"));
            }
            Some(f) if !POD_FIELDS.contains(&f) => {
                return Err(format!(
                    "`{f}` is not a pod field a selector can use (one of {})",
                    POD_FIELDS.join(", ")
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn node_target(r: &mut Reader) -> NodeTarget {
    let sel = r.selector("selector", "node");
    match (r.str("node"), r.has("selector")) {
        (Some(n), false) => NodeTarget::Name(n),
        (None, true) => NodeTarget::Selector(sel),
        (Some(_), true) => {
            r.problem(
                "selector",
                "give `node` or `selector`, not both",
                "keep `node: <name>` for one node, or `selector: {...}` for several",
            );
            NodeTarget::Selector(sel)
        }
        (None, false) => {
            r.whole(
                "the step needs `node` or `selector`: which nodes to act on",
                "add `node: <name>`, or `selector: {topology.kubernetes.io/zone: <zone>}`",
            );
            NodeTarget::Selector(sel)
        }
    }
}

/// A Kubernetes qualified name (`prefix/name`, as taint keys and label names are).
pub fn check_qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let ok_name = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok_name {
        return Err(format!(
            "`{s}` is not a valid key: the name part must be 1 to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
        ));
    }
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "`{s}`: the prefix `{p}` is not a DNS subdomain (lowercase, e.g. `example.com`)"
            ));
        }
    }
    Ok(())
}

impl ZoneAction {
    pub fn from_params(p: &Json) -> Result<ZoneAction, Vec<ParamProblem>> {
        let mut r = Reader::new(p);
        let zone = r.str("zone").unwrap_or_default();
        if zone.trim().is_empty() {
            r.problem(
                "zone",
                "`zone` is empty",
                "name the zone, e.g. `zone: us-east-1a`",
            );
        }
        let method = match r.str("method").as_deref() {
            Some("taint") => DrainMethod::Taint,
            _ => DrainMethod::Evict,
        };
        if method == DrainMethod::Taint && r.has("timeout") {
            r.problem(
                "timeout",
                "`timeout` applies to evictions; `method: taint` evicts through the cluster's taint manager and has nothing to time out",
                "drop `timeout`, or use `method: evict`",
            );
        }
        let timeout = r.positive("timeout", DRAIN_TIMEOUT);
        let max_nodes = r.cap("max_nodes", "node");
        let value = ZoneAction {
            cluster: r.str("cluster"),
            zone,
            method,
            timeout,
            grace_period: r.duration("grace_period"),
            max_nodes,
            allow_kube_system: r.bool("allow_kube_system"),
        };
        r.finish(value)
    }
}

impl NodeAction {
    /// Decode the node parameters every `k8s.node_*` action shares.
    pub fn from_params(p: &Json) -> Result<NodeAction, Vec<ParamProblem>> {
        let mut r = Reader::new(p);
        let value = NodeAction::read(&mut r);
        r.finish(value)
    }

    fn read(r: &mut Reader<'_>) -> NodeAction {
        let target = node_target(r);
        let max_nodes = r.cap("max_nodes", "node");
        let timeout = r.positive("timeout", DRAIN_TIMEOUT);
        NodeAction {
            cluster: r.str("cluster"),
            target,
            max_nodes,
            timeout,
            grace_period: r.duration("grace_period"),
            allow_kube_system: r.bool("allow_kube_system"),
        }
    }
}

/// The `key` of a taint step, checked as a qualified name (the vocabulary requires it, so a
/// missing key has already been reported).
fn taint_key(r: &mut Reader<'_>) -> String {
    let Some(key) = r.str("key") else {
        return String::new();
    };
    if let Err(e) = check_qualified_name(&key) {
        r.problem("key", e, "write a key like `example.com/maintenance`");
    }
    key
}

impl NodeTaint {
    /// Decode `k8s.node_taint` (the effect defaults to `NoSchedule`).
    pub fn from_params(p: &Json) -> Result<NodeTaint, Vec<ParamProblem>> {
        let mut r = Reader::new(p);
        let nodes = NodeAction::read(&mut r);
        let key = taint_key(&mut r);
        let value = r.str("value");
        if let Some(v) = value.as_deref()
            && (v.len() > 63
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            r.problem(
                "value",
                format!("`{v}` is not a valid taint value"),
                "use at most 63 letters, digits, `-`, `_` or `.`",
            );
        }
        let effect = r
            .str("effect")
            .as_deref()
            .and_then(TaintEffect::parse)
            .unwrap_or(TaintEffect::NoSchedule);
        let taint = TaintSpec { key, value, effect };
        r.finish(NodeTaint { nodes, taint })
    }
}

impl NodeUntaint {
    /// Decode `k8s.node_untaint`.
    pub fn from_params(p: &Json) -> Result<NodeUntaint, Vec<ParamProblem>> {
        let mut r = Reader::new(p);
        let nodes = NodeAction::read(&mut r);
        let key = taint_key(&mut r);
        let effect = r.str("effect").as_deref().and_then(TaintEffect::parse);
        r.finish(NodeUntaint { nodes, key, effect })
    }
}

impl WorkloadRef {
    /// `deployment` or `statefulset`, exactly one.
    pub fn from_params(p: &Json) -> Result<WorkloadRef, Vec<ParamProblem>> {
        let mut r = Reader::new(p);
        let w = match (r.str("deployment"), r.str("statefulset")) {
            (Some(d), None) => WorkloadRef::Deployment(d),
            (None, Some(s)) => WorkloadRef::StatefulSet(s),
            (Some(d), Some(_)) => {
                r.problem(
                    "statefulset",
                    "give `deployment` or `statefulset`, not both",
                    "one step acts on one workload; add a second step for the other",
                );
                WorkloadRef::Deployment(d)
            }
            (None, None) => {
                r.whole(
                    "the step needs `deployment` or `statefulset`: which workload",
                    "add `deployment: <name>` (or `statefulset: <name>`)",
                );
                WorkloadRef::Deployment(String::new())
            }
        };
        r.finish(w)
    }
}

/// `k8s.scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    pub cluster: Option<String>,
    pub namespace: String,
    pub workload: WorkloadRef,
    pub replicas: u32,
}

/// A workload in a namespace (`k8s.rollout_restart`, the `k8s.workload` probe).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadAt {
    pub cluster: Option<String>,
    pub namespace: String,
    pub workload: WorkloadRef,
}

/// `k8s.pods` and `k8s.pod_restarts`.
#[derive(Debug, Clone, PartialEq)]
pub struct PodsQuery {
    pub cluster: Option<String>,
    pub namespace: String,
    pub selector: BTreeMap<String, String>,
    pub field_selector: Option<String>,
    /// `k8s.pod_restarts`: the increase is counted over this window.
    pub window: Duration,
}

impl WorkloadAt {
    pub fn from_params(p: &Json) -> Result<WorkloadAt, Vec<ParamProblem>> {
        let r = Reader::new(p);
        Ok(WorkloadAt {
            cluster: r.str("cluster"),
            namespace: r.str("namespace").unwrap_or_default(),
            workload: WorkloadRef::from_params(p)?,
        })
    }
}

impl Scale {
    pub fn from_params(p: &Json) -> Result<Scale, Vec<ParamProblem>> {
        let mut r = Reader::new(p);
        let workload = WorkloadRef::from_params(p);
        let replicas = r.u64("replicas").unwrap_or(0);
        if replicas > i32::MAX as u64 {
            r.problem(
                "replicas",
                format!("`replicas: {replicas}` is more than Kubernetes can store"),
                "give a replica count Kubernetes accepts (a 32-bit number)",
            );
        }
        if let Err(mut w) = workload {
            w.append(&mut r.problems);
            return Err(w);
        }
        let value = Scale {
            cluster: r.str("cluster"),
            namespace: r.str("namespace").unwrap_or_default(),
            workload: workload.expect("checked above"),
            replicas: replicas as u32,
        };
        r.finish(value)
    }
}

impl PodsQuery {
    pub fn from_params(p: &Json) -> Result<PodsQuery, Vec<ParamProblem>> {
        let mut r = Reader::new(p);
        let field_selector = r.str("field_selector");
        if let Some(f) = &field_selector
            && let Err(e) = check_field_selector(f)
        {
            r.problem(
                "field_selector",
                e,
                "write `field=value` pairs separated by commas",
            );
        }
        let window = r.positive("window", RESTART_WINDOW);
        let value = PodsQuery {
            cluster: r.str("cluster"),
            namespace: r.str("namespace").unwrap_or_default(),
            selector: r.labels("selector"),
            field_selector,
            window,
        };
        r.finish(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The broken rules of an action (or a probe) as decoding reports them.
    fn problems(name: &str, p: Json) -> Vec<String> {
        let decoded = if crate::lang::vocab::action(name).is_some() {
            crate::lang::action::Action::decode(name, &p).err()
        } else {
            crate::lang::action::Probe::decode(name, &p).err()
        };
        decoded
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

    #[test]
    fn kill_counts_follow_the_mode() {
        let f = |n| KillMode::Fixed(NonZeroU32::new(n).unwrap());
        let pct = |v| Percent::new(v).unwrap();
        assert_eq!(KillMode::One.count_range(6), (1, 1));
        assert_eq!(KillMode::One.count_range(0), (0, 0));
        assert_eq!(KillMode::All.count_range(6), (6, 6));
        assert_eq!(f(2).count_range(6), (2, 2));
        assert_eq!(f(9).count_range(6), (6, 6));
        assert_eq!(KillMode::FixedPercent(pct(50)).count_range(5), (3, 3));
        assert_eq!(KillMode::FixedPercent(pct(10)).count_range(6), (1, 1));
        assert_eq!(KillMode::RandomMaxPercent(pct(50)).count_range(6), (1, 3));
        assert_eq!(KillMode::RandomMaxPercent(pct(1)).count_range(6), (1, 1));
        assert!(!KillMode::All.is_random(6));
        assert!(KillMode::One.is_random(6));
    }

    #[test]
    fn the_pod_kill_rules_are_checked() {
        let base = |extra: Json| {
            let mut p = json!({"namespace": "web", "selector": {"app": "api"}});
            p.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            p
        };
        assert!(problems("k8s.pod_kill", base(json!({}))).is_empty());
        let fixed = problems("k8s.pod_kill", base(json!({"mode": "fixed"})));
        assert!(
            fixed[0].contains("`mode: fixed` needs `value`"),
            "{fixed:?}"
        );
        let over = problems(
            "k8s.pod_kill",
            base(json!({"mode": "fixed-percent", "value": 150})),
        );
        assert!(
            over[0].contains("`value: 150` is not a percentage"),
            "{over:?}"
        );
        let zero = problems("k8s.pod_kill", base(json!({"mode": "fixed", "value": 0})));
        assert!(zero[0].contains("kills no pod"), "{zero:?}");
        let cap = problems("k8s.pod_kill", base(json!({"max_pods": 0})));
        assert!(
            cap[0].contains("`max_pods: 0` refuses every pod"),
            "{cap:?}"
        );
        let both = problems("k8s.pod_kill", base(json!({"namespaces": ["a"]})));
        assert!(both[0].contains("not both"), "{both:?}");
        let useless = problems("k8s.pod_kill", base(json!({"mode": "all", "value": 3})));
        assert!(useless[0].contains("has no effect"), "{useless:?}");
        let empty = problems("k8s.pod_kill", json!({"namespace": "web", "selector": {}}));
        assert!(empty[0].contains("matches every pod"), "{empty:?}");
        let none = problems("k8s.pod_kill", json!({"selector": {"app": "api"}}));
        assert!(none[0].contains("needs `namespace`"), "{none:?}");
        let fs = problems(
            "k8s.pod_kill",
            base(json!({"field_selector": "spec.node=x"})),
        );
        assert!(fs[0].contains("not a pod field"), "{fs:?}");
    }

    #[test]
    fn node_and_workload_rules_are_checked() {
        let both = problems(
            "k8s.node_cordon",
            json!({"node": "n1", "selector": {"a": "b"}}),
        );
        assert!(both[0].contains("not both"), "{both:?}");
        let none = problems("k8s.node_drain", json!({}));
        assert!(none[0].contains("needs `node` or `selector`"), "{none:?}");
        let key = problems(
            "k8s.node_taint",
            json!({"node": "n1", "key": "-bad", "effect": "NoSchedule"}),
        );
        assert!(key[0].contains("not a valid key"), "{key:?}");
        assert!(
            problems(
                "k8s.node_taint",
                json!({"node": "n1", "key": "example.com/x", "effect": "NoExecute"})
            )
            .is_empty()
        );
        let w = problems(
            "k8s.scale",
            json!({"namespace": "web", "deployment": "a", "statefulset": "b", "replicas": 1}),
        );
        assert!(w[0].contains("not both"), "{w:?}");
        let t = problems(
            "k8s.drain_zone",
            json!({"zone": "z", "method": "taint", "timeout": "1m"}),
        );
        assert!(t[0].contains("`timeout` applies to evictions"), "{t:?}");
        let t0 = problems("k8s.drain_zone", json!({"zone": "z", "timeout": "0s"}));
        assert!(t0[0].contains("gives up"), "{t0:?}");
    }

    #[test]
    fn caps_are_checked_against_the_highest_count() {
        let pk = |extra: Json| {
            let mut p = json!({"namespace": "web", "selector": {"app": "api"}});
            p.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            PodKill::from_params(&p).unwrap()
        };
        assert_eq!(
            pk(json!({"mode": "fixed-percent", "value": 50, "max_pods": 3})).limit(6, None, "pods"),
            Ok((3, 3))
        );
        let e = pk(json!({"mode": "random-max-percent", "value": 50, "max_pods": 2}))
            .limit(6, None, "pods")
            .unwrap_err();
        assert!(
            e.contains("would kill up to 3 of the 6 pods, over max_pods 2"),
            "{e}"
        );
        let e = pk(json!({"mode": "all"}))
            .limit(6, Some(5), "pods")
            .unwrap_err();
        assert!(e.contains("over max_pods 5"), "{e}");
        let e = pk(json!({"mode": "all", "max_percent": 50}))
            .limit(4, None, "pods")
            .unwrap_err();
        assert!(e.contains("(100%), over max_percent 50%"), "{e}");
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert!(
            check_node_cap(&names, Some(2))
                .unwrap_err()
                .contains("3 nodes (a, b, c), over max_nodes 2")
        );
        assert!(check_kube_system("kube-system", false).is_err());
        assert!(check_kube_system("kube-system", true).is_ok());
    }

    #[test]
    fn the_zone_loss_taint_is_one_key() {
        let t = TaintSpec::zone_loss("us-east-1a");
        assert_eq!(t.describe(), "firedrill.dev/zone-loss=us-east-1a:NoExecute");
    }
}
