//! AWS FIS experiment templates written inline in an experiment (`fis.experiment` with
//! `template:`): the model, its canonical JSON (what providers receive), and its validation.
//!
//! Real FIS rejects a bad template only when the drill creates it, mid-run, and moto accepts
//! anything (bogus action ids, cycles, dangling `startAfter`). So `firedrill validate` checks the
//! template here, against [`crate::lang::fis_catalog`], reporting every problem with `file:line:col`,
//! its YAML path and a fix, like every other error in an experiment: known action ids (with
//! "did you mean"), each action's parameters (required ones, ISO 8601 durations and their ranges,
//! percentages, enums), target keys and resource types, `startAfter` references and cycles (the
//! whole loop), selection modes, ARNs, stop conditions.
//!
//! The decoded template is put back into the step's parameters in canonical form (camelCase
//! keys, every parameter value a string, as the FIS API takes them), so providers deserialize it
//! with serde ([`Template`]) and never see YAML.
//!
//! Invariant: pure; no IO.

use crate::lang::decode::{Cx, Decode, MapReader, Spanned};
use crate::lang::diag::did_you_mean;
use crate::lang::fis_catalog::{self as catalog, Kind, Param};
use crate::lang::yaml::{Loc, Node, NodeKind};
use petgraph::graph::DiGraph;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Tag keys firedrill sets on what it creates; templates may not set them.
pub const TAG_RUN_ID: &str = "firedrill:run-id";
pub const TAG_PARAMS: &str = "firedrill:params";

/// Default `timeout` of a waiting `fis.experiment` step: FIS's own limit on an experiment.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// An FIS experiment template, as `CreateExperimentTemplate` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Template {
    pub description: String,
    pub role_arn: String,
    #[serde(default)]
    pub targets: BTreeMap<String, Target>,
    pub actions: BTreeMap<String, Action>,
    pub stop_conditions: Vec<StopCondition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_options: Option<ExperimentOptions>,
    /// Where FIS writes the experiment's log (passed through to AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    /// FIS's own experiment report (passed through to AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_report_configuration: Option<ReportConfiguration>,
}

/// `logConfiguration`, as CreateExperimentTemplate takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogConfiguration {
    pub log_schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_configuration: Option<CloudWatchLogs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_configuration: Option<S3Location>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudWatchLogs {
    pub log_group_arn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Location {
    pub bucket_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// `experimentReportConfiguration`, as CreateExperimentTemplate takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<ReportOutputs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_sources: Option<ReportDataSources>,
    /// ISO 8601, e.g. `PT5M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_experiment_duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_experiment_duration: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportOutputs {
    pub s3_configuration: S3Location,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportDataSources {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cloud_watch_dashboards: Vec<Dashboard>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dashboard {
    pub dashboard_identifier: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Action {
    pub action_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_after: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    pub resource_type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_arns: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    pub selection_mode: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub path: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopCondition {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_targeting: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_target_resolution_mode: Option<String>,
}

/// How many of the identified resources a target acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    All,
    Count(u32),
    Percent(u32),
}

impl Selection {
    pub fn parse(s: &str) -> Result<Selection, String> {
        let inner = |prefix: &str| {
            s.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(')'))
                .map(|n| n.trim().parse::<u32>())
        };
        if s == "ALL" {
            return Ok(Selection::All);
        }
        match (inner("COUNT("), inner("PERCENT(")) {
            (Some(Ok(n)), _) if n >= 1 => Ok(Selection::Count(n)),
            (Some(_), _) => Err(format!(
                "`{s}`: COUNT needs a whole number of at least 1, e.g. `COUNT(1)`"
            )),
            (_, Some(Ok(n))) if (1..=100).contains(&n) => Ok(Selection::Percent(n)),
            (_, Some(_)) => Err(format!(
                "`{s}`: PERCENT needs a whole number from 1 to 100, e.g. `PERCENT(25)`"
            )),
            _ => Err(format!(
                "`{s}` is not a selection mode; write `ALL`, `COUNT(n)` or `PERCENT(n)`"
            )),
        }
    }

    /// How many of `n` identified resources are selected (FIS rounds percentages down).
    pub fn of(self, n: usize) -> usize {
        match self {
            Selection::All => n,
            Selection::Count(c) => (c as usize).min(n),
            Selection::Percent(p) => n * p as usize / 100,
        }
    }
}

/// Parse an ISO 8601 duration as FIS takes them: `PT10M`, `PT1H30M`, `PT30S`, `P1D`.
pub fn parse_iso_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("`{s}` is not an ISO 8601 duration; write e.g. `PT30S`, `PT10M` or `PT1H30M`");
    let rest = s.strip_prefix('P').ok_or_else(bad)?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return Err(bad()),
        None => (rest, None),
    };
    let mut secs: f64 = 0.0;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Result<(), String> {
        let mut num = String::new();
        let mut last = 0usize;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let pos = units.iter().position(|(u, _)| *u == c).ok_or_else(|| {
                if matches!(c, 'Y' | 'W') || (c == 'M' && units.len() == 1) {
                    format!("`{s}`: years, months and weeks have no fixed length; use days (`P1D`) or hours (`PT24H`)")
                } else {
                    bad()
                }
            })?;
            // Units must come in order (H before M before S) and each once.
            if pos < last || num.is_empty() {
                return Err(bad());
            }
            last = pos + 1;
            let v: f64 = num.parse().map_err(|_| bad())?;
            secs += v * units[pos].1;
            any = true;
            num.clear();
        }
        if num.is_empty() { Ok(()) } else { Err(bad()) }
    };
    take(date, &[('D', 86_400.0)])?;
    if let Some(t) = time {
        take(t, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    if !any || !secs.is_finite() || secs > 366.0 * 86_400.0 {
        return Err(bad());
    }
    Ok(Duration::from_millis((secs * 1000.0).round() as u64))
}

/// Format a duration as ISO 8601 (`PT1H30M`, `PT45S`, `PT0S`).
pub fn format_iso_duration(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    let ms = d.subsec_millis();
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 || ms > 0 || out == "PT" {
        if ms > 0 {
            out.push_str(&format!("{s}.{ms:03}S"));
        } else {
            out.push_str(&format!("{s}S"));
        }
    }
    out
}

/// The parts of an ARN (`arn:partition:service:region:account:resource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

pub fn parse_arn(s: &str) -> Result<Arn<'_>, String> {
    let arn = parse_arn_shape(s).map_err(|()| {
        format!("`{s}` is not an ARN; ARNs look like `arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE`")
    })?;
    let account = arn.account;
    let account_ok =
        account.is_empty() || (account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()));
    if !account_ok {
        return Err(format!(
            "`{s}`: the account `{account}` is not a 12-digit AWS account id"
        ));
    }
    Ok(arn)
}

/// The last path or colon segment of an ARN's resource (`cluster:orders-db` → `orders-db`).
pub fn arn_name(s: &str) -> &str {
    match parse_arn(s) {
        Ok(a) => a.resource.rsplit([':', '/']).next().unwrap_or(a.resource),
        Err(_) => s,
    }
}

fn valid_fis_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && !s.chars().any(char::is_whitespace)
}

// ---------------------------------------------------------------------------------------------
// The step's parameters.
// ---------------------------------------------------------------------------------------------

/// Where the experiment comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// An existing template, by id.
    Existing(String),
    /// A template written in the experiment, created for the run.
    Inline(Box<Template>),
}

/// The parameters of a `fis.experiment` step, for providers (already validated by
/// [`check_step_params`] when they come from an experiment file).
#[derive(Debug, Clone, PartialEq)]
pub struct StepParams {
    pub source: Source,
    pub wait: bool,
    pub timeout: Duration,
    pub delete_template: bool,
    /// [`params_digest`] of the step's canonical parameters: tagged on what the step creates,
    /// so its rollback finds them without the step's output.
    pub digest: String,
}

impl StepParams {
    pub fn from_json(p: &Json) -> Result<StepParams, String> {
        let source = match (p.get("template_id"), p.get("template")) {
            (Some(Json::String(id)), None) if !id.trim().is_empty() => {
                Source::Existing(id.trim().to_string())
            }
            (None, Some(t)) => Source::Inline(Box::new(
                serde_json::from_value::<Template>(t.clone())
                    .map_err(|e| format!("the inline FIS template is malformed: {e}"))?,
            )),
            (Some(_), Some(_)) => {
                return Err("give either `template_id` or `template`, not both".into());
            }
            _ => {
                return Err(
                    "give `template_id` (an existing FIS template) or `template` (an inline one)"
                        .into(),
                );
            }
        };
        let timeout = match p.get("timeout").and_then(Json::as_str) {
            Some(t) => crate::lang::duration::parse(t).map_err(|e| format!("timeout: {e}"))?,
            None => DEFAULT_TIMEOUT,
        };
        let inline = matches!(source, Source::Inline(_));
        Ok(StepParams {
            wait: p.get("wait").and_then(Json::as_bool).unwrap_or(true),
            timeout,
            delete_template: inline
                && p.get("delete_template")
                    .and_then(Json::as_bool)
                    .unwrap_or(true),
            source,
            digest: params_digest(p),
        })
    }
}

/// A stable digest of a step's parameters (FNV-1a, hex): tagged on what the step creates, so a
/// rollback that lost the step's output (an abort cancelled it mid-poll) still finds them.
pub fn params_digest(p: &Json) -> String {
    // Keys sorted at every level: the digest does not depend on the order they were written.
    fn sorted(v: &Json) -> Json {
        match v {
            Json::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Json::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Json::Array(a) => Json::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let text = serde_json::to_string(&sorted(p)).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

// ---------------------------------------------------------------------------------------------
// Timeline.
// ---------------------------------------------------------------------------------------------

/// How long an action runs once started, as far as the template says (`duration`,
/// `startInstancesAfterDuration`, `maxDuration`...); zero for one-shot actions.
pub fn action_length(a: &Action) -> Duration {
    [
        "duration",
        "startInstancesAfterDuration",
        "maxDuration",
        "durationBeforeInterruption",
    ]
    .iter()
    .find_map(|k| a.parameters.get(*k))
    .and_then(|v| parse_iso_duration(v).ok())
    .unwrap_or_default()
}

/// Actions in an order that respects `startAfter` (ties by name); `Err` names a cycle or a
/// dangling reference (templates from experiment files never have either).
pub fn start_order(t: &Template) -> Result<Vec<String>, String> {
    let mut done: Vec<String> = Vec::new();
    let mut left: Vec<&String> = t.actions.keys().collect();
    while !left.is_empty() {
        let ready = left.iter().position(|name| {
            t.actions[*name]
                .start_after
                .iter()
                .all(|p| done.contains(p))
        });
        match ready {
            Some(i) => done.push(left.remove(i).clone()),
            None => {
                let stuck: Vec<&str> = left.iter().map(|s| s.as_str()).collect();
                return Err(format!(
                    "actions {} wait on each other or on actions that do not exist",
                    stuck.join(", ")
                ));
            }
        }
    }
    Ok(done)
}

/// When each action starts and ends, as offsets from the experiment's start, assuming every
/// action runs for [`action_length`].
pub fn timeline(t: &Template) -> Result<Vec<(String, Duration, Duration)>, String> {
    let mut ends: HashMap<String, Duration> = HashMap::new();
    let mut out = Vec::new();
    for name in start_order(t)? {
        let a = &t.actions[&name];
        let start = a
            .start_after
            .iter()
            .filter_map(|p| ends.get(p))
            .max()
            .copied()
            .unwrap_or_default();
        let end = start + action_length(a);
        ends.insert(name.clone(), end);
        out.push((name, start, end));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------------------

/// The validation hook for a `fis.experiment` step's `with:` (called after the vocabulary check
/// with the path at the step): exactly one of `template_id` and `template`, the template checked
/// and put back in canonical form, and the options that only apply to some forms. Returns
/// whether everything held.
pub fn check_step_params(
    cx: &mut Cx,
    owner: &Node,
    with: Option<&Node>,
    params: &mut Json,
) -> bool {
    let loc = with.map(|w| w.loc).unwrap_or(owner.loc);
    let node_of = |k: &str| with.and_then(|w| w.get(k));
    let key_loc = |k: &str| {
        match with.map(|w| &w.kind) {
            Some(NodeKind::Map(e)) => e
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(key, _)| key.loc),
            _ => None,
        }
        .unwrap_or(loc)
    };
    let mut ok = true;
    match (params.get("template_id").is_some(), node_of("template")) {
        (true, Some(_)) => {
            ok = false;
            cx.key("with", |cx| {
                cx.error(
                    key_loc("template"),
                    "`fis.experiment` takes `template_id` or `template`, not both",
                    "keep `template_id` to run an existing template, or `template` to create one for this run",
                )
            });
        }
        (false, None) => {
            ok = false;
            cx.error(
                loc,
                "`fis.experiment` needs `template_id` or `template`",
                "add `template_id: EXT...` (an existing FIS experiment template) or `template: {description, roleArn, actions, targets, stopConditions}` (created for the run and deleted afterwards)",
            );
        }
        (true, None) => {
            if let Some(id) = params.get("template_id").and_then(Json::as_str)
                && (id.trim().is_empty() || id.chars().any(char::is_whitespace))
            {
                ok = false;
                cx.key("with", |cx| {
                    cx.key("template_id", |cx| {
                        cx.error(
                            node_of("template_id").map(|n| n.loc).unwrap_or(loc),
                            format!("`{id}` is not an FIS experiment template id"),
                            "write the id FIS gave the template, e.g. `EXTa1b2c3d4e5f6g7`",
                        )
                    })
                });
            }
            if params.get("delete_template").is_some() {
                ok = false;
                cx.key("with", |cx| {
                    cx.error(
                        key_loc("delete_template"),
                        "`delete_template` applies only to an inline `template`",
                        "remove it: firedrill never deletes a template it did not create",
                    )
                });
            }
        }
        (false, Some(node)) => {
            match cx.key("with", |cx| cx.key("template", |cx| decode(cx, node))) {
                Some(t) => {
                    params["template"] = serde_json::to_value(&t).unwrap_or(Json::Null);
                }
                None => ok = false,
            }
        }
    }
    if params.get("wait") == Some(&Json::Bool(false)) && params.get("timeout").is_some() {
        ok = false;
        cx.key("with", |cx| {
            cx.error(
                key_loc("timeout"),
                "`timeout` applies only while waiting for the experiment (`wait: true`)",
                "remove `timeout`, or wait for the experiment",
            )
        });
    }
    ok
}

/// Decode and check an inline FIS template; every problem is reported.
pub fn decode(cx: &mut Cx, node: &Node) -> Option<Template> {
    let before = cx.diags.len();
    let mut m = cx.map(node, "an FIS experiment template")?;
    let description = m.req::<Spanned<String>>(cx, "description");
    if let Some(d) = &description
        && (d.value.trim().is_empty() || d.value.len() > 512)
    {
        cx.key("description", |cx| {
            cx.error(
                d.loc,
                "an FIS template description must be 1 to 512 characters",
                "say what the experiment does, e.g. `Power interruption in us-east-1a`",
            )
        });
    }
    let role = m.req::<Spanned<String>>(cx, "roleArn");
    if let Some(r) = &role {
        let ok = parse_arn(&r.value)
            .is_ok_and(|a| a.service == "iam" && a.resource.starts_with("role/"));
        if !ok {
            cx.key("roleArn", |cx| {
                cx.error(
                    r.loc,
                    format!("`{}` is not an IAM role ARN", r.value),
                    "FIS runs the experiment as this role: write `arn:aws:iam::123456789012:role/NAME`",
                )
            });
        }
    }
    let targets = match m.node("targets") {
        Some(n) if !matches!(n.kind, NodeKind::Null) => cx.key("targets", |cx| {
            decode_named(cx, n, "targets", decode_target)
        }),
        _ => Vec::new(),
    };
    let actions = match m.node("actions") {
        Some(n) if !matches!(n.kind, NodeKind::Null) => cx.key("actions", |cx| {
            decode_named(cx, n, "actions", |cx, name, n| {
                decode_action(cx, name, n, &targets)
            })
        }),
        _ => {
            cx.error(
                node.loc,
                "an FIS template is missing required key `actions`",
                "add `actions: {NAME: {actionId: aws:..., ...}}`",
            );
            Vec::new()
        }
    };
    let stop = decode_stop_conditions(cx, &mut m, node);
    let tags = m.node("tags").and_then(|n| {
        cx.key("tags", |cx| {
            let t = string_map(cx, n, "tags")?;
            let mut ok = true;
            for (k, _) in &t {
                let reserved = k.value.starts_with("aws:") || k.value.starts_with("firedrill:");
                if reserved {
                    ok = false;
                    cx.key(&k.value, |cx| {
                        cx.error(
                            k.loc,
                            format!("tag key `{}` is reserved", k.value),
                            "`aws:` keys belong to AWS and firedrill sets `firedrill:run-id` and `firedrill:params` itself; rename the tag",
                        )
                    });
                }
            }
            ok.then(|| t.into_iter().map(|(k, v)| (k.value, v.value)).collect())
        })
    });
    let options = m
        .node("experimentOptions")
        .and_then(|n| cx.key("experimentOptions", |cx| decode_options(cx, n)));
    let log = m
        .node("logConfiguration")
        .and_then(|n| cx.key("logConfiguration", |cx| decode_log(cx, n)));
    let report = m
        .node("experimentReportConfiguration")
        .and_then(|n| cx.key("experimentReportConfiguration", |cx| decode_report(cx, n)));
    // The API's idempotency token: firedrill sets its own per run, so one written here is
    // accepted and not used.
    let _ = m.opt::<Spanned<String>>(cx, "clientToken");
    m.finish(cx);

    // startAfter: references and cycles, over the actions that decoded far enough to have names.
    check_start_after(cx, &actions);

    let description = description?;
    let role = role?;
    let stop = stop?;
    if actions.iter().any(|a| a.action.is_none()) || targets.iter().any(|t| t.target.is_none()) {
        return None;
    }
    let has_tags = m_has(node, "tags");
    let tags = if has_tags { tags? } else { BTreeMap::new() };
    let options = if m_has(node, "experimentOptions") {
        Some(options?)
    } else {
        None
    };
    // Checks that found a problem but still produced a value (a bad ARN...) invalidate it too.
    if cx.diags.len() > before {
        return None;
    }
    Some(Template {
        description: description.value,
        role_arn: role.value,
        targets: targets
            .into_iter()
            .filter_map(|t| t.target.map(|x| (t.name.value, x)))
            .collect(),
        actions: actions
            .into_iter()
            .filter_map(|a| a.action.map(|x| (a.name.value, x)))
            .collect(),
        stop_conditions: stop,
        tags,
        experiment_options: options,
        log_configuration: log,
        experiment_report_configuration: report,
    })
}

fn m_has(node: &Node, key: &str) -> bool {
    node.get(key)
        .is_some_and(|n| !matches!(n.kind, NodeKind::Null))
}

/// A named entry (action or target): its name, and the decoded value when it was valid.
struct Named<T> {
    name: Spanned<String>,
    /// The resource type (targets) or nothing; kept even when the entry is invalid, so
    /// references to it are not also reported as dangling or mistyped.
    kind: Option<String>,
    start_after: Vec<Spanned<String>>,
    value: Option<T>,
}

struct TargetDecl {
    name: Spanned<String>,
    resource_type: Option<String>,
    target: Option<Target>,
}

struct ActionDecl {
    name: Spanned<String>,
    start_after: Vec<Spanned<String>>,
    action: Option<Action>,
}

trait FromNamed<T> {
    fn from_named(n: Named<T>) -> Self;
}
impl FromNamed<Target> for TargetDecl {
    fn from_named(n: Named<Target>) -> Self {
        TargetDecl {
            name: n.name,
            resource_type: n.kind,
            target: n.value,
        }
    }
}
impl FromNamed<Action> for ActionDecl {
    fn from_named(n: Named<Action>) -> Self {
        ActionDecl {
            name: n.name,
            start_after: n.start_after,
            action: n.value,
        }
    }
}

fn decode_named<T, D: FromNamed<T>>(
    cx: &mut Cx,
    node: &Node,
    what: &'static str,
    mut f: impl FnMut(&mut Cx, &Spanned<String>, &Node) -> Named<T>,
) -> Vec<D> {
    let NodeKind::Map(entries) = &node.kind else {
        cx.error(
            node.loc,
            format!(
                "expected a mapping of {what} by name, found {}",
                node.describe()
            ),
            format!("write {what} as `NAME: {{...}}` entries"),
        );
        return Vec::new();
    };
    let _ = cx.map(node, what); // duplicate keys
    let mut out = Vec::new();
    for (k, v) in entries {
        let Some(name) = k.as_str() else { continue };
        let name = Spanned {
            value: name.to_string(),
            loc: k.loc,
        };
        cx.key(&name.value, |cx| {
            if !valid_fis_name(&name.value) {
                cx.error(
                    k.loc,
                    format!("`{}` is not a valid FIS name", name.value),
                    "FIS names are 1 to 64 characters without spaces",
                );
            }
            out.push(D::from_named(f(cx, &name, v)));
        });
    }
    out
}

/// Help for an unknown catalog name: the likely typo, else the names of the same service
/// (`aws:ec2:...`), else all of them.
fn catalog_help(word: &str, names: &[&str], what: &str) -> String {
    // Catalog names share long prefixes (`aws:ec2:`): a tighter bound than for short keys.
    let close = names
        .iter()
        .map(|n| (crate::lang::diag::edit_distance(word, n), *n))
        .filter(|(d, n)| *d <= (n.len() / 5).max(2))
        .min_by_key(|(d, _)| *d);
    if let Some((_, s)) = close {
        return format!("did you mean `{s}`? (the FIS user guide lists every one)");
    }
    let service: String = word.split(':').take(2).collect::<Vec<_>>().join(":");
    let same: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with(&format!("{service}:")))
        .collect();
    if same.is_empty() {
        did_you_mean(word, names, &format!("FIS {what}"))
    } else {
        did_you_mean(word, &same, &format!("FIS `{service}` {what}"))
    }
}

/// A mapping of strings (tags, target `parameters`); non-scalar values are an error.
fn string_map(
    cx: &mut Cx,
    node: &Node,
    what: &'static str,
) -> Option<Vec<(Spanned<String>, Spanned<String>)>> {
    let NodeKind::Map(entries) = &node.kind else {
        cx.error(
            node.loc,
            format!("expected a mapping for {what}, found {}", node.describe()),
            format!("write {what} as `key: value` lines"),
        );
        return None;
    };
    let _ = cx.map(node, what);
    let mut out = Vec::new();
    let mut ok = true;
    for (k, v) in entries {
        let Some(key) = k.as_str() else {
            ok = false;
            continue;
        };
        match &v.kind {
            NodeKind::Scalar { value, .. } => out.push((
                Spanned {
                    value: key.to_string(),
                    loc: k.loc,
                },
                Spanned {
                    value: value.clone(),
                    loc: v.loc,
                },
            )),
            _ => {
                ok = false;
                cx.key(key, |cx| {
                    cx.error(
                        v.loc,
                        format!("`{key}` must be a string, found {}", v.describe()),
                        format!("FIS {what} are strings: write `{key}: value`"),
                    )
                });
            }
        }
    }
    ok.then_some(out)
}

/// Action parameters: scalars as written (FIS takes strings); a mapping or list is written as
/// compact JSON (FIS takes `documentParameters`, `kubernetesSpec`... as JSON strings).
fn param_map(cx: &mut Cx, node: &Node) -> Option<Vec<(Spanned<String>, Spanned<String>)>> {
    let NodeKind::Map(entries) = &node.kind else {
        cx.error(
            node.loc,
            format!(
                "expected a mapping of parameters, found {}",
                node.describe()
            ),
            "write parameters as `name: value` lines",
        );
        return None;
    };
    let _ = cx.map(node, "parameters");
    Some(
        entries
            .iter()
            .filter_map(|(k, v)| {
                let value = match &v.kind {
                    NodeKind::Scalar { value, .. } => value.clone(),
                    NodeKind::Null => String::new(),
                    _ => serde_json::to_string(&v.to_json()).unwrap_or_default(),
                };
                Some((
                    Spanned {
                        value: k.as_str()?.to_string(),
                        loc: k.loc,
                    },
                    Spanned { value, loc: v.loc },
                ))
            })
            .collect(),
    )
}

/// Check one parameter value against its kind; `Some(problem)` when it does not fit.
fn check_kind(value: &str, kind: Kind) -> Option<String> {
    match kind {
        Kind::Text if value.trim().is_empty() => Some("must not be empty".into()),
        Kind::Text => None,
        Kind::Bool if value == "true" || value == "false" => None,
        Kind::Bool => Some(format!("must be `true` or `false`, found `{value}`")),
        Kind::Int { min, max } => match value.parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => None,
            _ => Some(format!(
                "must be a whole number from {min} to {max}, found `{value}`"
            )),
        },
        Kind::Enum(options) if options.contains(&value) => None,
        Kind::Enum(options) => Some(format!(
            "`{value}` is not one of {}{}",
            options.join(", "),
            crate::lang::diag::suggest(value, options.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default()
        )),
        Kind::Duration { min, max } => match parse_iso_duration(value) {
            Err(e) => Some(e),
            Ok(d) if d < min || d > max => Some(format!(
                "{value} is outside the range FIS allows, {} to {}",
                format_iso_duration(min),
                format_iso_duration(max)
            )),
            Ok(_) => None,
        },
    }
}

fn kind_help(p: &Param) -> String {
    match p.kind {
        Kind::Duration { min, max } => format!(
            "`{}` is an ISO 8601 duration from {} to {}, e.g. `PT10M`",
            p.name,
            format_iso_duration(min),
            format_iso_duration(max)
        ),
        Kind::Int { min, max } => format!("`{}` is a whole number from {min} to {max}", p.name),
        Kind::Bool => format!("`{}` is `true` or `false`", p.name),
        Kind::Enum(o) => format!("`{}` is one of {}", p.name, o.join(", ")),
        Kind::Text => format!("`{}` is a non-empty string", p.name),
    }
}

/// Check parameters against a spec: unknown names (with suggestions), values, required ones.
/// `owner` is where a missing parameter is reported.
fn check_params_against(
    cx: &mut Cx,
    given: &[(Spanned<String>, Spanned<String>)],
    spec: &[Param],
    owner: Loc,
    what: &str,
) -> bool {
    let names: Vec<&str> = spec.iter().map(|p| p.name).collect();
    let mut ok = true;
    for (k, v) in given {
        let Some(p) = spec.iter().find(|p| p.name == k.value) else {
            ok = false;
            let help = if names.is_empty() {
                format!("{what} takes no parameters; remove `{}`", k.value)
            } else {
                did_you_mean(&k.value, &names, &format!("parameters of {what}"))
            };
            cx.key(&k.value, |cx| {
                cx.error(
                    k.loc,
                    format!("{what} has no parameter `{}`", k.value),
                    help,
                )
            });
            continue;
        };
        if let Some(problem) = check_kind(&v.value, p.kind) {
            ok = false;
            cx.key(&k.value, |cx| {
                cx.error(
                    v.loc,
                    format!("parameter `{}`: {problem}", k.value),
                    kind_help(p),
                )
            });
        }
    }
    for p in spec.iter().filter(|p| p.required) {
        if !given.iter().any(|(k, _)| k.value == p.name) {
            ok = false;
            cx.error(
                owner,
                format!("{what} needs parameter `{}`", p.name),
                format!("add `{}` under `parameters:` ({})", p.name, kind_help(p)),
            );
        }
    }
    ok
}

fn decode_target(cx: &mut Cx, name: &Spanned<String>, node: &Node) -> Named<Target> {
    let mut named = Named {
        name: name.clone(),
        kind: None,
        start_after: Vec::new(),
        value: None,
    };
    let Some(mut m) = cx.map(node, "an FIS target") else {
        return named;
    };
    let rtype = m.req::<Spanned<String>>(cx, "resourceType");
    let spec = rtype.as_ref().and_then(|r| {
        let spec = catalog::resource_type(&r.value);
        if spec.is_none() {
            let help = catalog_help(&r.value, &catalog::resource_type_names(), "resource types");
            cx.key("resourceType", |cx| {
                cx.error(
                    r.loc,
                    format!("unknown FIS resource type `{}`", r.value),
                    help,
                )
            });
        }
        spec
    });
    named.kind = rtype.as_ref().map(|r| r.value.clone());
    let arns = m.opt::<Vec<Spanned<String>>>(cx, "resourceArns");
    let tags = m
        .node("resourceTags")
        .and_then(|n| cx.key("resourceTags", |cx| string_map(cx, n, "resource tags")));
    let filters = m
        .node("filters")
        .and_then(|n| cx.key("filters", |cx| Vec::<FilterDecl>::decode(cx, n)));
    let params = m
        .node("parameters")
        .and_then(|n| cx.key("parameters", |cx| string_map(cx, n, "target parameters")));
    let selection = m.req::<Spanned<String>>(cx, "selectionMode");
    let mut ok = rtype.is_some() && spec.is_some();
    let mut parsed_sel = None;
    if let Some(s) = &selection {
        match Selection::parse(&s.value) {
            Ok(sel) => parsed_sel = Some(sel),
            Err(e) => {
                ok = false;
                cx.key("selectionMode", |cx| {
                    cx.error(s.loc, e, "`ALL` acts on every identified resource, `COUNT(n)` on n of them, `PERCENT(n)` on n% (rounded down)")
                });
            }
        }
    } else {
        ok = false;
    }
    let has = |k: &str| m.has(k);
    if has("resourceArns") && has("resourceTags") {
        ok = false;
        cx.error(
            node.loc,
            "a target names resources by `resourceArns` or by `resourceTags`, not both",
            "keep one of them",
        );
    }
    if has("resourceArns") && has("filters") {
        ok = false;
        cx.error(
            node.loc,
            "`filters` cannot narrow `resourceArns`",
            "list exactly the ARNs you mean, or select by `resourceTags` with `filters`",
        );
    }
    if !["resourceArns", "resourceTags", "filters", "parameters"]
        .iter()
        .any(|k| has(k))
    {
        ok = false;
        cx.error(
            node.loc,
            format!("target `{}` does not say which resources", name.value),
            "add `resourceArns`, `resourceTags`, `filters` or (for some resource types) `parameters`",
        );
    }
    if let (Some(arns), Some(spec)) = (&arns, spec) {
        if arns.is_empty() {
            ok = false;
            cx.key("resourceArns", |cx| {
                cx.error(node.loc, "`resourceArns` is empty", "list at least one ARN")
            });
        }
        for (i, a) in arns.iter().enumerate() {
            let problem = match parse_arn(&a.value) {
                Err(e) => Some(e),
                Ok(p) => spec.arn_service.filter(|s| *s != p.service).map(|s| {
                    format!(
                        "`{}` is an ARN of service `{}`, but a `{}` target needs `{s}` ARNs",
                        a.value, p.service, spec.name
                    )
                }),
            };
            if let Some(p) = problem {
                ok = false;
                cx.key("resourceArns", |cx| {
                    cx.idx(i, |cx| {
                        cx.error(
                            a.loc,
                            p,
                            format!("give the ARN of a `{}` resource", spec.name),
                        )
                    })
                });
            }
        }
        if let Some(sel) = parsed_sel
            && !arns.is_empty()
        {
            let n = arns.len();
            let loc = selection.as_ref().map(|s| s.loc).unwrap_or(node.loc);
            match sel {
                // FIS accepts this (targets are resolved when the experiment starts) and acts
                // on every listed resource: worth a warning, not a refusal.
                Selection::Count(c) if c as usize > n => cx.key("selectionMode", |cx| {
                    cx.warning(
                        loc,
                        format!("`COUNT({c})` selects more resources than the {n} listed ARNs: FIS accepts it and acts on all {n}"),
                        format!("write `ALL` or `COUNT({n})` to say what will happen, or list more ARNs"),
                    )
                }),
                // The action would act on nothing: the experiment fails when it starts.
                Selection::Percent(p) if sel.of(n) == 0 => {
                    ok = false;
                    cx.key("selectionMode", |cx| {
                        cx.error(
                            loc,
                            format!("`PERCENT({p})` of {n} listed ARNs is less than one resource (FIS rounds down)"),
                            "FIS cannot select that many; list more ARNs or select a larger percentage",
                        )
                    });
                }
                _ => {}
            }
        }
    }
    if let (Some(p), Some(spec)) = (&params, spec) {
        let ploc = node.get("parameters").map(|n| n.loc).unwrap_or(node.loc);
        ok &= cx.key("parameters", |cx| {
            check_params_against(
                cx,
                p,
                spec.params,
                ploc,
                &format!("a `{}` target", spec.name),
            )
        });
    } else if let Some(spec) = spec
        && spec.params.iter().any(|p| p.required)
        && !has("parameters")
    {
        ok = false;
        let need: Vec<&str> = spec
            .params
            .iter()
            .filter(|p| p.required)
            .map(|p| p.name)
            .collect();
        cx.error(
            node.loc,
            format!("a `{}` target needs `parameters`", spec.name),
            format!("add `parameters:` with {}", need.join(", ")),
        );
    }
    ok &= has("resourceTags") == tags.is_some()
        && has("filters") == filters.is_some()
        && has("parameters") == params.is_some()
        && has("resourceArns") == arns.is_some();
    m.finish(cx);
    if ok {
        named.value = Some(Target {
            resource_type: rtype.map(|r| r.value).unwrap_or_default(),
            resource_arns: arns
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.value)
                .collect(),
            resource_tags: tags
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.value, v.value))
                .collect(),
            filters: filters
                .unwrap_or_default()
                .into_iter()
                .map(|f| f.0)
                .collect(),
            parameters: params
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.value, v.value))
                .collect(),
            selection_mode: selection.map(|s| s.value).unwrap_or_default(),
        });
    }
    named
}

struct FilterDecl(Filter);

impl Decode for FilterDecl {
    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let mut m = cx.map(node, "a target filter")?;
        let path = m.req::<Spanned<String>>(cx, "path");
        let values = m.req::<Vec<String>>(cx, "values");
        m.finish(cx);
        let path = path?;
        let values = values?;
        if path.value.trim().is_empty() {
            cx.key("path", |cx| {
                cx.error(
                    path.loc,
                    "a filter path is empty",
                    "write the attribute path in Pascal case, e.g. `Placement.AvailabilityZone`",
                )
            });
            return None;
        }
        if values.is_empty() {
            cx.error(
                node.loc,
                "a filter needs at least one value",
                "write e.g. `values: [us-east-1a]` (any one value matches)",
            );
            return None;
        }
        Some(FilterDecl(Filter {
            path: path.value,
            values,
        }))
    }
}

fn decode_action(
    cx: &mut Cx,
    name: &Spanned<String>,
    node: &Node,
    targets: &[TargetDecl],
) -> Named<Action> {
    let mut named = Named {
        name: name.clone(),
        kind: None,
        start_after: Vec::new(),
        value: None,
    };
    let Some(mut m) = cx.map(node, "an FIS action") else {
        return named;
    };
    let id = m.req::<Spanned<String>>(cx, "actionId");
    let spec = id.as_ref().and_then(|id| {
        let spec = catalog::action(&id.value);
        if spec.is_none() {
            let help = catalog_help(&id.value, &catalog::action_ids(), "action ids");
            cx.key("actionId", |cx| {
                cx.error(
                    id.loc,
                    format!("unknown FIS action id `{}`", id.value),
                    help,
                )
            });
        }
        spec
    });
    let description = m.opt::<String>(cx, "description");
    let params = match m.node("parameters") {
        Some(n) if !matches!(n.kind, NodeKind::Null) => cx.key("parameters", |cx| param_map(cx, n)),
        _ => Some(Vec::new()),
    };
    let action_targets = match m.node("targets") {
        Some(n) if !matches!(n.kind, NodeKind::Null) => {
            cx.key("targets", |cx| string_map(cx, n, "action targets"))
        }
        _ => Some(Vec::new()),
    };
    let start_after = match m.node("startAfter") {
        Some(
            s @ Node {
                kind: NodeKind::Scalar { .. },
                ..
            },
        ) => cx
            .key("startAfter", |cx| Spanned::<String>::decode(cx, s))
            .map(|x| vec![x]),
        Some(n) if !matches!(n.kind, NodeKind::Null) => {
            cx.key("startAfter", |cx| Vec::<Spanned<String>>::decode(cx, n))
        }
        _ => Some(Vec::new()),
    };
    m.finish(cx);
    named.start_after = start_after.clone().unwrap_or_default();
    let mut ok = spec.is_some() && params.is_some() && action_targets.is_some();
    let what = id
        .as_ref()
        .map(|i| format!("action `{}` ({})", name.value, i.value))
        .unwrap_or_else(|| format!("action `{}`", name.value));
    if let (Some(spec), Some(p)) = (spec, &params) {
        let ploc = node.get("parameters").map(|n| n.loc).unwrap_or(node.loc);
        ok &= cx.key("parameters", |cx| {
            check_params_against(cx, p, spec.params, ploc, &what)
        });
        ok &= check_action_rules(cx, spec.id, p, ploc);
    }
    // Targets: the key the action takes, naming a defined target of the right resource type.
    if let (Some(spec), Some(at)) = (spec, &action_targets) {
        let tloc = node.get("targets").map(|n| n.loc).unwrap_or(node.loc);
        match spec.target {
            None => {
                for (k, _) in at {
                    ok = false;
                    cx.key("targets", |cx| {
                        cx.key(&k.value, |cx| {
                            cx.error(
                                k.loc,
                                format!("{} acts on no target", spec.id),
                                "remove its `targets:`",
                            )
                        })
                    });
                }
            }
            Some((key, rtype)) => {
                if at.is_empty() {
                    ok = false;
                    cx.error(
                        tloc,
                        format!("{what} needs a target"),
                        format!("add `targets: {{{key}: TARGET}}` naming a `{rtype}` target under the template's `targets:`"),
                    );
                }
                for (k, v) in at {
                    if k.value != key {
                        ok = false;
                        cx.key("targets", |cx| {
                            cx.key(&k.value, |cx| {
                                cx.error(
                                    k.loc,
                                    format!(
                                        "{} takes its target under `{key}`, not `{}`",
                                        spec.id, k.value
                                    ),
                                    format!("write `targets: {{{key}: {}}}`", v.value),
                                )
                            })
                        });
                        continue;
                    }
                    let names: Vec<&str> = targets.iter().map(|t| t.name.value.as_str()).collect();
                    match targets.iter().find(|t| t.name.value == v.value) {
                        None => {
                            ok = false;
                            cx.key("targets", |cx| {
                                cx.key(&k.value, |cx| {
                                    cx.error(
                                        v.loc,
                                        format!("no target named `{}`", v.value),
                                        did_you_mean(
                                            &v.value,
                                            &names,
                                            "define it under the template's `targets:`; targets",
                                        ),
                                    )
                                })
                            });
                        }
                        Some(t) => {
                            if let Some(rt) = &t.resource_type
                                && rt != rtype
                                && catalog::resource_type(rt).is_some()
                            {
                                ok = false;
                                cx.key("targets", |cx| {
                                    cx.key(&k.value, |cx| {
                                        cx.error(
                                            v.loc,
                                            format!(
                                                "target `{}` is a `{rt}` target, but {} acts on `{rtype}`",
                                                v.value, spec.id
                                            ),
                                            format!("point `{key}` at a target with `resourceType: {rtype}`"),
                                        )
                                    })
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    if let (true, Some(id), Some(p), Some(at), Some(sa)) =
        (ok, id, params, action_targets, start_after)
    {
        named.value = Some(Action {
            action_id: id.value,
            description,
            parameters: p.into_iter().map(|(k, v)| (k.value, v.value)).collect(),
            targets: at.into_iter().map(|(k, v)| (k.value, v.value)).collect(),
            start_after: sa.into_iter().map(|s| s.value).collect(),
        });
    }
    named
}

/// Rules between an action's parameters that FIS enforces at create time.
fn check_action_rules(
    cx: &mut Cx,
    id: &str,
    p: &[(Spanned<String>, Spanned<String>)],
    loc: Loc,
) -> bool {
    let get = |k: &str| p.iter().find(|(n, _)| n.value == k).map(|(_, v)| v);
    match id {
        "aws:ec2:stop-instances"
            if get("completeIfInstancesTerminated").is_some_and(|v| v.value == "true")
                && get("startInstancesAfterDuration").is_none() =>
        {
            let at = get("completeIfInstancesTerminated").map_or(loc, |v| v.loc);
            cx.key("parameters", |cx| {
                cx.key("completeIfInstancesTerminated", |cx| {
                    cx.error(
                        at,
                        "`completeIfInstancesTerminated` needs `startInstancesAfterDuration`",
                        "add `startInstancesAfterDuration: PT10M` (when to start the instances again), or remove it",
                    )
                })
            });
            false
        }
        "aws:network:disrupt-connectivity" => {
            let prefix = get("scope").is_some_and(|v| v.value == "prefix-list");
            match (prefix, get("prefixListIdentifier")) {
                (true, None) => {
                    cx.key("parameters", |cx| {
                        cx.error(
                            get("scope").map_or(loc, |v| v.loc),
                            "`scope: prefix-list` needs `prefixListIdentifier`",
                            "add `prefixListIdentifier:` (the prefix list's name, id or ARN)",
                        )
                    });
                    false
                }
                (false, Some(v)) => {
                    cx.key("parameters", |cx| {
                        cx.key("prefixListIdentifier", |cx| {
                            cx.error(
                                v.loc,
                                "`prefixListIdentifier` applies only to `scope: prefix-list`",
                                "remove it, or set `scope: prefix-list`",
                            )
                        })
                    });
                    false
                }
                _ => true,
            }
        }
        _ => true,
    }
}

fn check_start_after(cx: &mut Cx, actions: &[ActionDecl]) {
    let names: Vec<&str> = actions.iter().map(|a| a.name.value.as_str()).collect();
    for a in actions {
        for (j, s) in a.start_after.iter().enumerate() {
            let problem = if s.value == a.name.value {
                Some((
                    format!("action `{}` starts after itself", s.value),
                    "remove it from its own `startAfter`".to_string(),
                ))
            } else if !names.contains(&s.value.as_str()) {
                Some((
                    format!("no action `{}` to start after", s.value),
                    did_you_mean(&s.value, &names, "actions of this template"),
                ))
            } else {
                None
            };
            if let Some((msg, help)) = problem {
                cx.key("actions", |cx| {
                    cx.key(&a.name.value, |cx| {
                        cx.key("startAfter", |cx| {
                            cx.idx(j, |cx| cx.error(s.loc, msg, help))
                        })
                    })
                });
            }
        }
    }
    let mut g: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<_> = (0..actions.len()).map(|i| g.add_node(i)).collect();
    for (i, a) in actions.iter().enumerate() {
        for s in &a.start_after {
            if let Some(p) = names.iter().position(|n| *n == s.value)
                && p != i
            {
                g.update_edge(nodes[p], nodes[i], ());
            }
        }
    }
    if let Some(mut cycle) = crate::lang::check::cycle_in(&g) {
        // Start the loop at the action written first.
        cycle.pop();
        let lowest = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
        cycle.rotate_left(lowest);
        cycle.push(cycle[0]);
        let first = &actions[cycle[0]];
        let path: Vec<&str> = cycle
            .iter()
            .map(|&i| actions[i].name.value.as_str())
            .collect();
        cx.key("actions", |cx| {
            cx.key(&first.name.value, |cx| {
                cx.key("startAfter", |cx| {
                    cx.error(
                        first.name.loc,
                        format!("startAfter cycle: {}", path.join(" -> ")),
                        "FIS would never start these actions; remove one of these `startAfter` references to break the loop",
                    )
                })
            })
        });
    }
}

fn decode_stop_conditions(
    cx: &mut Cx,
    m: &mut MapReader,
    node: &Node,
) -> Option<Vec<StopCondition>> {
    let Some(n) = m
        .node("stopConditions")
        .filter(|n| !matches!(n.kind, NodeKind::Null))
    else {
        cx.error(
            node.loc,
            "an FIS template is missing required key `stopConditions`",
            "add `stopConditions: [{source: aws:cloudwatch:alarm, value: ALARM_ARN}]` (FIS stops the experiment when the alarm fires), or `[{source: none}]` to run without one",
        );
        return None;
    };
    cx.key("stopConditions", |cx| {
        let NodeKind::Seq(items) = &n.kind else {
            cx.error(
                n.loc,
                format!("expected a list of stop conditions, found {}", n.describe()),
                "write `stopConditions: [{source: none}]` or a list of alarms",
            );
            return None;
        };
        if items.is_empty() {
            cx.error(
                n.loc,
                "`stopConditions` is empty",
                "FIS needs at least one: `{source: none}` or `{source: aws:cloudwatch:alarm, value: ALARM_ARN}`",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let sc = cx.idx(i, |cx| {
                let mut m = cx.map(item, "a stop condition")?;
                let source = m.req::<Spanned<String>>(cx, "source");
                let value = m.opt::<Spanned<String>>(cx, "value");
                m.finish(cx);
                let source = source?;
                match source.value.as_str() {
                    "none" => {
                        if let Some(v) = &value {
                            cx.key("value", |cx| {
                                cx.error(
                                    v.loc,
                                    "`source: none` takes no value",
                                    "remove `value`, or use `source: aws:cloudwatch:alarm`",
                                )
                            });
                            return None;
                        }
                    }
                    "aws:cloudwatch:alarm" => {
                        let Some(v) = &value else {
                            cx.error(
                                item.loc,
                                "an alarm stop condition needs `value`, the alarm's ARN",
                                "write `value: arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`",
                            );
                            return None;
                        };
                        let ok = parse_arn(&v.value).is_ok_and(|a| {
                            a.service == "cloudwatch" && a.resource.starts_with("alarm:")
                        });
                        if !ok {
                            cx.key("value", |cx| {
                                cx.error(
                                    v.loc,
                                    format!("`{}` is not a CloudWatch alarm ARN", v.value),
                                    "write `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`; FIS stops the experiment when this alarm is in ALARM",
                                )
                            });
                            return None;
                        }
                    }
                    other => {
                        cx.key("source", |cx| {
                            cx.error(
                                source.loc,
                                format!("`{other}` is not a stop condition source"),
                                did_you_mean(other, &["none", "aws:cloudwatch:alarm"], "sources"),
                            )
                        });
                        return None;
                    }
                }
                Some(StopCondition {
                    source: source.value,
                    value: value.map(|v| v.value),
                })
            });
            match sc {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        if out.len() > 1 && out.iter().any(|s| s.source == "none") {
            cx.error(
                n.loc,
                "`source: none` is listed with alarms",
                "`none` means no stop condition; remove it when you list alarms",
            );
            ok = false;
        }
        ok.then_some(out)
    })
}

fn decode_s3(cx: &mut Cx, n: &Node) -> Option<S3Location> {
    let mut m = cx.map(n, "an S3 location")?;
    let bucket = m.req::<Spanned<String>>(cx, "bucketName");
    let prefix = m.opt::<Spanned<String>>(cx, "prefix");
    m.finish(cx);
    let bucket = bucket?;
    let b = &bucket.value;
    let valid = (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        cx.key("bucketName", |cx| {
            cx.error(
                bucket.loc,
                format!("`{b}` is not an S3 bucket name"),
                "bucket names are 3 to 63 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit",
            )
        });
        return None;
    }
    Some(S3Location {
        bucket_name: bucket.value,
        prefix: prefix.map(|p| p.value),
    })
}

fn decode_log(cx: &mut Cx, n: &Node) -> Option<LogConfiguration> {
    let mut m = cx.map(n, "the FIS log configuration")?;
    let version = m.req::<Spanned<u32>>(cx, "logSchemaVersion");
    let cloudwatch = m.node("cloudWatchLogsConfiguration").and_then(|n| {
        cx.key("cloudWatchLogsConfiguration", |cx| {
            let mut m = cx.map(n, "a CloudWatch Logs destination")?;
            let arn = m.req::<Spanned<String>>(cx, "logGroupArn");
            m.finish(cx);
            let arn = arn?;
            let parts = parse_arn_shape(&arn.value)
                .ok()
                .filter(|p| p.service == "logs" && p.resource.starts_with("log-group:"));
            let Some(parts) = parts else {
                cx.key("logGroupArn", |cx| {
                    cx.error(
                        arn.loc,
                        format!("`{}` is not a CloudWatch Logs log group ARN", arn.value),
                        "write `arn:aws:logs:REGION:ACCOUNT:log-group:NAME` (optionally ending `:*`)",
                    )
                });
                return None;
            };
            if !(parts.account.len() == 12 && parts.account.chars().all(|c| c.is_ascii_digit())) {
                cx.key("logGroupArn", |cx| {
                    cx.warning(
                        arn.loc,
                        format!("the account `{}` of the log group ARN is not a 12-digit AWS account id (a placeholder left in?)", parts.account),
                        "put the account the log group lives in; FIS fails to write the log otherwise",
                    )
                });
            }
            Some(CloudWatchLogs {
                log_group_arn: arn.value,
            })
        })
    });
    let s3 = m
        .node("s3Configuration")
        .and_then(|n| cx.key("s3Configuration", |cx| decode_s3(cx, n)));
    m.finish(cx);
    let version = version?;
    if !(1..=2).contains(&version.value) {
        cx.key("logSchemaVersion", |cx| {
            cx.error(
                version.loc,
                format!("log schema version {} does not exist", version.value),
                "FIS log schemas are versions 1 and 2 (2 adds target resolution details)",
            )
        });
        return None;
    }
    let has = |k| m_has(n, k);
    if !has("cloudWatchLogsConfiguration") && !has("s3Configuration") {
        cx.error(
            n.loc,
            "an FIS log configuration without a destination",
            "add `cloudWatchLogsConfiguration: {logGroupArn: ...}` or `s3Configuration: {bucketName: ...}`",
        );
        return None;
    }
    if (has("cloudWatchLogsConfiguration") && cloudwatch.is_none())
        || (has("s3Configuration") && s3.is_none())
    {
        return None;
    }
    Some(LogConfiguration {
        log_schema_version: version.value,
        cloud_watch_logs_configuration: cloudwatch,
        s3_configuration: s3,
    })
}

fn decode_report(cx: &mut Cx, n: &Node) -> Option<ReportConfiguration> {
    let mut m = cx.map(n, "the FIS experiment report configuration")?;
    let outputs = m.node("outputs").and_then(|n| {
        cx.key("outputs", |cx| {
            let mut m = cx.map(n, "the report's outputs")?;
            let s3 = m
                .node("s3Configuration")
                .and_then(|n| cx.key("s3Configuration", |cx| decode_s3(cx, n)));
            if m.node("s3Configuration").is_none() {
                cx.error(
                    n.loc,
                    "the report's outputs have no `s3Configuration`",
                    "FIS writes the report to S3: add `s3Configuration: {bucketName: ...}`",
                );
            }
            m.finish(cx);
            Some(ReportOutputs {
                s3_configuration: s3?,
            })
        })
    });
    let sources = m.node("dataSources").and_then(|n| {
        cx.key("dataSources", |cx| {
            let mut m = cx.map(n, "the report's data sources")?;
            let dashboards = m.node("cloudWatchDashboards").and_then(|n| {
                cx.key("cloudWatchDashboards", |cx| {
                    let NodeKind::Seq(items) = &n.kind else {
                        cx.error(n.loc, "expected a list of dashboards", "write `[{dashboardIdentifier: arn:aws:cloudwatch::ACCOUNT:dashboard/NAME}]`");
                        return None;
                    };
                    let mut out = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let d = cx.idx(i, |cx| {
                            let mut m = cx.map(item, "a dashboard")?;
                            let id = m.req::<Spanned<String>>(cx, "dashboardIdentifier");
                            m.finish(cx);
                            Some(Dashboard {
                                dashboard_identifier: id?.value,
                            })
                        });
                        out.push(d?);
                    }
                    Some(out)
                })
            });
            m.finish(cx);
            Some(ReportDataSources {
                cloud_watch_dashboards: dashboards.unwrap_or_default(),
            })
        })
    });
    let mut duration = |cx: &mut Cx, key: &'static str| -> Result<Option<String>, ()> {
        let Some(v) = m.opt::<Spanned<String>>(cx, key) else {
            return Ok(None);
        };
        match parse_iso_duration(&v.value) {
            Ok(d) if (Duration::from_secs(60)..=Duration::from_secs(1800)).contains(&d) => {
                Ok(Some(v.value))
            }
            Ok(_) => {
                cx.key(key, |cx| {
                    cx.error(
                        v.loc,
                        format!("`{key}: {}` is outside FIS's 1 to 30 minutes", v.value),
                        "give an ISO 8601 duration from `PT1M` to `PT30M`",
                    )
                });
                Err(())
            }
            Err(e) => {
                cx.key(key, |cx| {
                    cx.error(v.loc, e, "write an ISO 8601 duration such as `PT5M`")
                });
                Err(())
            }
        }
    };
    let pre = duration(cx, "preExperimentDuration");
    let post = duration(cx, "postExperimentDuration");
    m.finish(cx);
    if (m_has(n, "outputs") && outputs.is_none()) || (m_has(n, "dataSources") && sources.is_none())
    {
        return None;
    }
    Some(ReportConfiguration {
        outputs,
        data_sources: sources,
        pre_experiment_duration: pre.ok()?,
        post_experiment_duration: post.ok()?,
    })
}

/// An ARN's six parts, without the account-id check of [`parse_arn`] (for ARNs the API takes
/// loosely, where a placeholder account is a warning).
fn parse_arn_shape(s: &str) -> Result<Arn<'_>, ()> {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(());
    };
    if *arn != "arn" || !partition.starts_with("aws") || service.is_empty() || resource.is_empty() {
        return Err(());
    }
    Ok(Arn {
        partition,
        service,
        region,
        account,
        resource,
    })
}

fn decode_options(cx: &mut Cx, n: &Node) -> Option<ExperimentOptions> {
    let mut m = cx.map(n, "experiment options")?;
    let mut pick =
        |cx: &mut Cx, key: &'static str, options: &[&str]| -> Result<Option<String>, ()> {
            let Some(v) = m.opt::<Spanned<String>>(cx, key) else {
                return Ok(None);
            };
            if options.contains(&v.value.as_str()) {
                Ok(Some(v.value))
            } else {
                cx.key(key, |cx| {
                    cx.error(
                        v.loc,
                        format!("`{}` is not a valid `{key}`", v.value),
                        did_you_mean(&v.value, options, "choices"),
                    )
                });
                Err(())
            }
        };
    let account = pick(cx, "accountTargeting", &["single-account", "multi-account"]);
    let empty = pick(cx, "emptyTargetResolutionMode", &["fail", "skip"]);
    m.finish(cx);
    Some(ExperimentOptions {
        account_targeting: account.ok()?,
        empty_target_resolution_mode: empty.ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::yaml::{Limits, load};

    #[test]
    fn iso_durations() {
        assert_eq!(parse_iso_duration("PT10M"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_iso_duration("PT1H30M"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_iso_duration("PT5S"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_iso_duration("P1D"), Ok(Duration::from_secs(86_400)));
        assert_eq!(
            parse_iso_duration("P1DT1S"),
            Ok(Duration::from_secs(86_401))
        );
        for bad in [
            "10m", "PT", "P", "PT10", "PTM", "PT1S1M", "PT1M1M", "P1M", "P1W", "",
        ] {
            assert!(parse_iso_duration(bad).is_err(), "{bad}");
        }
        assert!(
            parse_iso_duration("P1M")
                .unwrap_err()
                .contains("no fixed length")
        );
        for d in [0u64, 5, 60, 90, 3600, 5400, 43_200] {
            let d = Duration::from_secs(d);
            assert_eq!(parse_iso_duration(&format_iso_duration(d)), Ok(d));
        }
    }

    #[test]
    fn selection_modes() {
        assert_eq!(Selection::parse("ALL"), Ok(Selection::All));
        assert_eq!(Selection::parse("COUNT(2)"), Ok(Selection::Count(2)));
        assert_eq!(Selection::parse("PERCENT(25)"), Ok(Selection::Percent(25)));
        for bad in [
            "all",
            "COUNT(0)",
            "COUNT(x)",
            "PERCENT(0)",
            "PERCENT(101)",
            "SOME",
        ] {
            assert!(Selection::parse(bad).is_err(), "{bad}");
        }
        // FIS rounds percentages down.
        assert_eq!(Selection::Percent(50).of(5), 2);
        assert_eq!(Selection::Percent(5).of(4), 0);
        assert_eq!(Selection::Count(3).of(2), 2);
    }

    #[test]
    fn arns() {
        let a = parse_arn("arn:aws:rds:us-east-1:123456789012:cluster:orders-db").unwrap();
        assert_eq!((a.service, a.region), ("rds", "us-east-1"));
        assert_eq!(
            arn_name("arn:aws:rds:us-east-1:123456789012:cluster:orders-db"),
            "orders-db"
        );
        assert_eq!(
            arn_name("arn:aws:eks:us-east-1:123456789012:cluster/prod-east"),
            "prod-east"
        );
        assert!(parse_arn("arn:aws:rds:us-east-1:1234:cluster:x").is_err());
        assert!(parse_arn("orders-db").is_err());
    }

    fn template(text: &str) -> (Option<Template>, Vec<String>) {
        let node = load(text, &Limits::default()).unwrap();
        let mut cx = Cx::new("t.yaml");
        let t = decode(&mut cx, &node);
        (
            t,
            cx.diags
                .iter()
                .map(|d| format!("{}: {} ({})", d.path, d.message, d.help))
                .collect(),
        )
    }

    const GOOD: &str = "\
description: stop then wait
roleArn: arn:aws:iam::123456789012:role/fis
stopConditions: [{source: none}]
targets:
  az-a: {resourceType: aws:ec2:instance, filters: [{path: Placement.AvailabilityZone, values: [us-east-1a]}], selectionMode: ALL}
actions:
  stop: {actionId: aws:ec2:stop-instances, parameters: {startInstancesAfterDuration: PT10M, completeIfInstancesTerminated: true}, targets: {Instances: az-a}}
  hold: {actionId: aws:fis:wait, parameters: {duration: PT5M}, startAfter: [stop]}
";

    #[test]
    fn canonical_form_has_string_parameters_and_round_trips() {
        let (t, d) = template(GOOD);
        assert!(d.is_empty(), "{d:?}");
        let t = t.unwrap();
        assert_eq!(
            t.actions["stop"].parameters["completeIfInstancesTerminated"],
            "true"
        );
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["actions"]["hold"]["startAfter"][0], "stop");
        assert_eq!(json["targets"]["az-a"]["selectionMode"], "ALL");
        let back: Template = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
        assert_eq!(start_order(&t).unwrap(), vec!["stop", "hold"]);
        let tl = timeline(&t).unwrap();
        assert_eq!(
            tl,
            vec![
                ("stop".into(), Duration::ZERO, Duration::from_secs(600)),
                (
                    "hold".into(),
                    Duration::from_secs(600),
                    Duration::from_secs(900)
                ),
            ]
        );
    }

    #[test]
    fn every_problem_at_once() {
        let text = GOOD
            .replace("aws:fis:wait", "aws:fis:wiat")
            .replace("startAfter: [stop]", "startAfter: [stpo]")
            .replace("selectionMode: ALL", "selectionMode: PERCENT(0)")
            .replace("PT10M", "10m");
        let (t, d) = template(&text);
        assert!(t.is_none());
        let all = d.join("\n");
        assert!(
            all.contains("unknown FIS action id `aws:fis:wiat`"),
            "{all}"
        );
        assert!(all.contains("did you mean `aws:fis:wait`?"), "{all}");
        assert!(all.contains("no action `stpo` to start after"), "{all}");
        assert!(
            all.contains("PERCENT needs a whole number from 1 to 100"),
            "{all}"
        );
        assert!(all.contains("`10m` is not an ISO 8601 duration"), "{all}");
        assert!(
            all.contains("actions.stop.parameters.startInstancesAfterDuration"),
            "{all}"
        );
    }

    #[test]
    fn unknown_ids_suggest_a_typo_fix_or_the_same_service_s_ids() {
        let (_, d) = template(&GOOD.replace("aws:fis:wait", "aws:ec2:explode-instances"));
        let all = d.join("\n");
        assert!(
            all.contains("FIS `aws:ec2` action ids: `aws:ec2:api-insufficient"),
            "{all}"
        );
        assert!(!all.contains("aws:lambda"), "{all}");
        let (_, d) = template(&GOOD.replace("aws:ec2:instance", "aws:ec2:instances"));
        assert!(
            d.iter()
                .any(|x| x.contains("did you mean `aws:ec2:instance`?")),
            "{d:?}"
        );
    }

    #[test]
    fn target_reference_checks() {
        let text = GOOD.replace("{Instances: az-a}", "{Instances: az-b}");
        let (_, d) = template(&text);
        assert!(d.iter().any(|x| x.contains("no target named `az-b`") && x.contains("did you mean `az-a`?")), "{d:?}");
        let text = GOOD.replace("{Instances: az-a}", "{Instance: az-a}");
        let (_, d) = template(&text);
        assert!(
            d.iter()
                .any(|x| x.contains("takes its target under `Instances`, not `Instance`")),
            "{d:?}"
        );
        let text = GOOD.replace("aws:ec2:instance", "aws:ec2:subnet");
        let (_, d) = template(&text);
        assert!(d.iter().any(|x| x.contains("is a `aws:ec2:subnet` target, but aws:ec2:stop-instances acts on `aws:ec2:instance`")), "{d:?}");
        let text = GOOD.replace(
            "filters: [{path: Placement.AvailabilityZone, values: [us-east-1a]}], selectionMode: ALL",
            "resourceArns: [\"arn:aws:rds:us-east-1:123456789012:cluster:x\"], selectionMode: COUNT(2)",
        );
        let (_, d) = template(&text);
        let all = d.join("\n");
        assert!(all.contains("needs `ec2` ARNs"), "{all}");
        assert!(!all.contains("COUNT(2)"), "a warning, not an error: {all}");
    }

    #[test]
    fn log_and_report_configurations_are_checked() {
        let with = |extra: &str| format!("{GOOD}{extra}");
        let (t, d) = template(&with(
            "logConfiguration: {logSchemaVersion: 2, cloudWatchLogsConfiguration: {logGroupArn: \"arn:aws:logs:us-east-1:123456789012:log-group:fis:*\"}}\nexperimentReportConfiguration: {outputs: {s3Configuration: {bucketName: fis-reports, prefix: drills/}}, dataSources: {cloudWatchDashboards: [{dashboardIdentifier: \"arn:aws:cloudwatch::123456789012:dashboard/api\"}]}, preExperimentDuration: PT5M, postExperimentDuration: PT10M}\nclientToken: abc\n",
        ));
        assert!(d.is_empty(), "{d:?}");
        let t = t.unwrap();
        assert_eq!(t.log_configuration.unwrap().log_schema_version, 2);
        let r = t.experiment_report_configuration.unwrap();
        assert_eq!(
            r.outputs.unwrap().s3_configuration.bucket_name,
            "fis-reports"
        );
        assert_eq!(r.pre_experiment_duration.as_deref(), Some("PT5M"));
        for (extra, needle) in [
            (
                "logConfiguration: {logSchemaVersion: 3, s3Configuration: {bucketName: logs}}",
                "log schema version 3 does not exist",
            ),
            (
                "logConfiguration: {logSchemaVersion: 2}",
                "without a destination",
            ),
            (
                "logConfiguration: {logSchemaVersion: 2, cloudWatchLogsConfiguration: {logGroupArn: \"arn:aws:s3:::bucket\"}}",
                "is not a CloudWatch Logs log group ARN",
            ),
            (
                "logConfiguration: {logSchemaVersion: 2, s3Configuration: {bucketName: Logs_Bucket}}",
                "`Logs_Bucket` is not an S3 bucket name",
            ),
            (
                "experimentReportConfiguration: {preExperimentDuration: PT45M}",
                "outside FIS's 1 to 30 minutes",
            ),
            (
                "experimentReportConfiguration: {outputs: {}}",
                "no `s3Configuration`",
            ),
            (
                "logConfiguration: {logSchemaVersion: 2, destination: x}",
                "unknown key `destination`",
            ),
        ] {
            let (t, d) = template(&with(&format!("{extra}\n")));
            assert!(t.is_none(), "{extra}");
            assert!(d.iter().any(|x| x.contains(needle)), "{extra}: {d:?}");
        }
        // A placeholder account in the log group ARN: FIS takes it, the log would go nowhere.
        let text = with(
            "logConfiguration: {logSchemaVersion: 2, cloudWatchLogsConfiguration: {logGroupArn: \"arn:aws:logs:us-east-1:YOUR_ACCOUNT:log-group:fis:*\"}}\n",
        );
        let node = load(&text, &Limits::default()).unwrap();
        let mut cx = Cx::new("t.yaml");
        assert!(decode(&mut cx, &node).is_some() && cx.diags.is_empty());
        assert!(
            cx.warnings[0].message.contains("`YOUR_ACCOUNT`"),
            "{:?}",
            cx.warnings
        );
    }

    #[test]
    fn a_count_over_fewer_arns_is_a_warning_fis_accepts() {
        let text = GOOD.replace(
            "filters: [{path: Placement.AvailabilityZone, values: [us-east-1a]}], selectionMode: ALL",
            "resourceArns: [\"arn:aws:ec2:us-east-1:123456789012:instance/i-1\"], selectionMode: COUNT(5)",
        );
        let node = load(&text, &Limits::default()).unwrap();
        let mut cx = Cx::new("t.yaml");
        let t = decode(&mut cx, &node);
        assert!(t.is_some() && cx.diags.is_empty(), "{:?}", cx.diags);
        assert_eq!(cx.warnings.len(), 1);
        let w = &cx.warnings[0];
        assert_eq!(w.path, "targets.az-a.selectionMode");
        assert!(
            w.message
                .contains("`COUNT(5)` selects more resources than the 1 listed ARNs: FIS accepts it and acts on all 1"),
            "{}",
            w.message
        );
        assert!(
            w.render_warning(Some(&text))
                .starts_with("warning: t.yaml:")
        );
        // PERCENT that rounds to no resource still refuses: the experiment would fail at start.
        let text = text.replace("COUNT(5)", "PERCENT(10)");
        let (t, d) = template(&text);
        assert!(t.is_none());
        assert!(
            d.iter()
                .any(|x| x.contains("`PERCENT(10)` of 1 listed ARNs")),
            "{d:?}"
        );
    }

    #[test]
    fn cross_parameter_rules_and_stop_conditions() {
        let text = GOOD.replace("startInstancesAfterDuration: PT10M, ", "");
        let (_, d) = template(&text);
        assert!(
            d.iter()
                .any(|x| x.contains("needs `startInstancesAfterDuration`")),
            "{d:?}"
        );
        let text = GOOD.replace(
            "[{source: none}]",
            "[{source: aws:cloudwatch:alarm, value: \"arn:aws:sns:us-east-1:123456789012:x\"}]",
        );
        let (_, d) = template(&text);
        assert!(
            d.iter()
                .any(|x| x.contains("is not a CloudWatch alarm ARN")),
            "{d:?}"
        );
        let text = GOOD.replace("stopConditions: [{source: none}]\n", "");
        let (_, d) = template(&text);
        assert!(
            d.iter()
                .any(|x| x.contains("missing required key `stopConditions`")),
            "{d:?}"
        );
        let text = GOOD.replace("parameters: {duration: PT5M}", "parameters: {}");
        let (_, d) = template(&text);
        assert!(
            d.iter()
                .any(|x| x.contains("action `hold` (aws:fis:wait) needs parameter `duration`")),
            "{d:?}"
        );
        let text = GOOD.replace(
            "parameters: {duration: PT5M}",
            "parameters: {duration: PT5S}",
        );
        let (_, d) = template(&text);
        assert!(
            d.iter()
                .any(|x| x.contains("PT5S is outside the range FIS allows, PT1M to PT12H")),
            "{d:?}"
        );
    }

    #[test]
    fn cycles_are_reported_as_the_whole_loop() {
        let text = GOOD.replace("stop: {actionId", "stop: {startAfter: [hold], actionId");
        let (t, d) = template(&text);
        assert!(t.is_none());
        assert!(
            d.iter()
                .any(|x| x.contains("startAfter cycle: stop -> hold -> stop")),
            "{d:?}"
        );
    }

    #[test]
    fn step_params() {
        let t = serde_json::to_value(template(GOOD).0.unwrap()).unwrap();
        let p = StepParams::from_json(&serde_json::json!({"template": t})).unwrap();
        assert!(p.wait && p.delete_template);
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
        let p = StepParams::from_json(&serde_json::json!({"template_id": "EXT1", "wait": false}))
            .unwrap();
        assert_eq!(p.source, Source::Existing("EXT1".into()));
        assert!(!p.wait && !p.delete_template);
        assert!(StepParams::from_json(&serde_json::json!({})).is_err());
        assert!(
            StepParams::from_json(&serde_json::json!({"template": {"description": 1}})).is_err()
        );
        assert_ne!(
            params_digest(&serde_json::json!({"template_id": "EXT1"})),
            params_digest(&serde_json::json!({"template_id": "EXT2"}))
        );
    }
}
