//! The experiment language: the typed model of `kind: Experiment` documents and their decoding.
//!
//! Pipeline (like just's lexer → parser → analyzer): [`crate::lang::yaml`] loads located nodes,
//! [`expand_variables`] substitutes `${name}`, the decoders here build the model while collecting
//! every problem, and [`crate::lang::check`] validates references and the step graph.
//!
//! Invariant: pure and synchronous; no IO beyond the caller handing in the text.

use crate::lang::action::{Action, Probe};
use crate::lang::compact::CompactJson;
use crate::lang::decode::{Cx, Decode, OrderedMap, Spanned, choice};
use crate::lang::diag::{Diagnostic, did_you_mean};
use crate::lang::secrets::{Redactor, Secret, SecretValue};
use crate::lang::tolerance::{Check, Tolerance};
use crate::lang::vocab;
use crate::lang::yaml::{Loc, Node, NodeKind};
use serde_json::Value as Json;
use std::time::Duration;

pub const API_VERSION: &str = "firedrill.dev/v1";
pub const DEFAULT_RTO: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_RPO: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone)]
pub struct Experiment {
    pub file: String,
    pub metadata: Metadata,
    pub objectives: Objectives,
    /// Variables after overrides, in declaration order.
    pub variables: Vec<(String, String)>,
    /// Secrets (`secrets:` and `${env:NAME}`), in declaration order; never in `variables`.
    pub secrets: Vec<Secret>,
    pub probes: Vec<ProbeDef>,
    pub before: Vec<Spanned<String>>,
    pub during: Option<During>,
    pub after: Vec<Spanned<String>>,
    pub steps: Vec<Step>,
    pub recovery: Option<Recovery>,
    /// Every step id and probe name written, including those of entries that failed to decode
    /// (so a reference to them is not also reported as dangling).
    pub declared_steps: Vec<String>,
    pub declared_probes: Vec<String>,
    /// What `validate` warns about: the drill can run (e.g. an FIS selection the service
    /// resolves at start).
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Objectives {
    pub rto: Duration,
    pub rpo: Duration,
    pub mttd: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct ProbeDef {
    pub name: Spanned<String>,
    /// The checked parameters, as written (journaled).
    pub with: Json,
    /// The parameters decoded: what backends read.
    pub call: Probe,
    pub tolerance: Tolerance,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct During {
    pub interval: Duration,
    pub probes: Vec<Spanned<String>>,
    pub abort_when: Vec<AbortCondition>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AbortRule {
    Above(f64),
    Below(f64),
    /// The probe's tolerance fails.
    Failing,
    /// The probe's value rises by more than this within the window.
    IncreaseAbove(f64),
}

#[derive(Debug, Clone)]
pub struct AbortCondition {
    pub probe: Spanned<String>,
    pub rule: AbortRule,
    /// `for` (sustained) or `within` (increase) window.
    pub window: Duration,
}

impl Experiment {
    /// Step id → its index in `steps` (with repeated ids, which validation refuses, the last).
    pub fn step_index(&self) -> std::collections::HashMap<&str, usize> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.value.as_str(), i))
            .collect()
    }
}

impl AbortCondition {
    pub fn describe(&self) -> String {
        let w = crate::lang::duration::format(self.window);
        match self.rule {
            AbortRule::Above(x) => format!("{} > {x} for {w}", self.probe.value),
            AbortRule::Below(x) => format!("{} < {x} for {w}", self.probe.value),
            AbortRule::Failing => format!("{} failing for {w}", self.probe.value),
            AbortRule::IncreaseAbove(x) => {
                format!("{} increase > {x} within {w}", self.probe.value)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    Abort,
    Continue,
}

#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Duration,
    pub factor: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 1,
            backoff: Duration::from_secs(1),
            factor: 2.0,
        }
    }
}

#[derive(Debug, Clone)]
pub enum RollbackSpec {
    /// The action's natural inverse, if it has one (the default).
    Auto,
    None,
    /// An explicit action (`call.name()` is its vocabulary name).
    Action {
        with: Json,
        call: Box<Action>,
    },
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: Spanned<String>,
    pub action: Spanned<String>,
    /// The checked parameters, as written (journaled), kept as compact JSON text.
    pub with: CompactJson,
    /// The parameters decoded: what the executor and backends read (boxed: the typed action is
    /// large, and an experiment may hold thousands of steps).
    pub call: Box<Action>,
    pub after: Vec<Spanned<String>>,
    pub timeout: Option<Duration>,
    pub retry: Retry,
    pub on_failure: OnFailure,
    pub rollback: RollbackSpec,
    pub description: Option<String>,
}

impl Step {
    /// Whether a rollback will run for this step (explicit, or automatic with a natural inverse).
    pub fn has_rollback(&self) -> bool {
        match &self.rollback {
            RollbackSpec::Auto => {
                vocab::action(&self.action.value).is_some_and(|a| a.auto_rollback.is_some())
            }
            RollbackSpec::None => false,
            RollbackSpec::Action { .. } => true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Recovery {
    pub fault: Spanned<String>,
    pub probes: Vec<Spanned<String>>,
    pub consecutive: u32,
    pub interval: Duration,
    pub deadline: Option<Duration>,
    pub deadline_loc: Option<Loc>,
    pub detection: Option<Spanned<String>>,
    pub data_loss: Option<DataLoss>,
    /// Whether the recovery probes must be seen failing (`recovery.expect_impact`).
    pub expect_impact: ExpectImpact,
}

/// `recovery.expect_impact`: must the fault be seen to hurt? RTO is only measured after the
/// recovery probes were seen failing; this says what it means when they never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpectImpact {
    /// Probes that never fail are reported as "no impact observed", not as a missed objective.
    #[default]
    No,
    /// No impact by the end of the method is a deviation (exit 4).
    Yes,
    /// No impact within this long after the fault started is a deviation (exit 4).
    Within(Duration),
}

impl ExpectImpact {
    pub fn expected(self) -> bool {
        self != ExpectImpact::No
    }
}

impl Decode for ExpectImpact {
    fn decode(cx: &mut Cx, n: &Node) -> Option<Self> {
        let help = "write `expect_impact: true` (the recovery probes must fail before the method ends) or a duration such as `expect_impact: 1m` (they must fail that soon after the fault starts)";
        let NodeKind::Scalar { value, plain } = &n.kind else {
            cx.error(
                n.loc,
                format!("expected true, false or a duration, found {}", n.describe()),
                help,
            );
            return None;
        };
        match (value.as_str(), plain) {
            ("true", true) => return Some(ExpectImpact::Yes),
            ("false", true) => return Some(ExpectImpact::No),
            _ => {}
        }
        match crate::lang::duration::parse(value) {
            Ok(d) if d.is_zero() => {
                cx.error(
                    n.loc,
                    "`expect_impact: 0s` gives the fault no time to show",
                    "give how soon the impact must show, e.g. `expect_impact: 1m`, or `true` (by the end of the method)",
                );
                None
            }
            Ok(d) => Some(ExpectImpact::Within(d)),
            Err(_) => {
                cx.error(
                    n.loc,
                    format!("expected true, false or a duration, found `{value}`"),
                    help,
                );
                None
            }
        }
    }
}

/// `recovery.data_loss`: how the newest write surviving the fault is found.
#[derive(Debug, Clone)]
pub enum DataLoss {
    /// `{probe, field}`: a probe reports the newest surviving write's time.
    Probe {
        probe: Spanned<String>,
        /// Path to the newest surviving write's timestamp in the probe's output.
        field: String,
    },
    /// `canary: {type: postgres, ...}`: firedrill writes a canary row every interval from
    /// before the fault and reads back the newest survivor after recovery.
    Canary {
        canary: Box<crate::lang::postgres::PgCanary>,
        /// Where `interval` is written (or the `canary:` key), for the rule against the RPO.
        interval_loc: Loc,
    },
}

impl Recovery {
    pub fn deadline_for(&self, objectives: &Objectives) -> Duration {
        self.deadline.unwrap_or(objectives.rto * 2)
    }
}

/// The whole front end: text → validated experiment, or every problem found. Secrets read no
/// environment here (every one is unset); see [`parse_experiment_with_env`].
pub fn parse_experiment(
    file: &str,
    bytes: &[u8],
    overrides: &[(String, String)],
) -> Result<Experiment, Vec<Diagnostic>> {
    parse_experiment_with_env(file, bytes, overrides, &|_| None)
}

/// The whole front end, with `env` answering the environment variables secrets are read from
/// (the CLI passes the process environment; tests pass a table).
pub fn parse_experiment_with_env(
    file: &str,
    bytes: &[u8],
    overrides: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Experiment, Vec<Diagnostic>> {
    let (_, mut root) = crate::lang::yaml::load_document(file, bytes)?;
    let mut cx = Cx::new(file);
    let (variables, secrets) = expand_variables(&mut cx, &mut root, overrides, env);
    let redactor = Redactor::new(&secrets);
    let exp = decode_experiment(&mut cx, &root, variables);
    // The tree is not needed past decoding: the checks below run on the typed experiment.
    drop(root);
    if let Some(exp) = &exp {
        crate::lang::check::check_experiment(&mut cx, exp);
    }
    for s in &secrets {
        let n = s.value.as_ref().map(|v| v.expose().chars().count());
        match n {
            None => cx.key("secrets", |cx| {
                cx.warning(
                    s.loc,
                    format!(
                        "secret `{}` reads the environment variable {}, which is not set here",
                        s.name, s.env
                    ),
                    format!(
                        "`firedrill run` refuses to start until it is: export {}=... first",
                        s.env
                    ),
                )
            }),
            Some(n) if n < crate::lang::secrets::SHORT_SECRET => cx.key("secrets", |cx| {
                cx.warning(
                    s.loc,
                    format!(
                        "secret `{}` (from {}) is only {n} characters long: masking it in the artefacts also masks any other text that contains it",
                        s.name, s.env
                    ),
                    "use a longer secret, or a `variables:` entry if the value is not secret",
                )
            }),
            Some(_) => {}
        }
    }
    let redact = |mut d: Diagnostic| {
        redactor.redact_string(&mut d.message);
        redactor.redact_string(&mut d.help);
        d
    };
    match exp {
        Some(mut e) if cx.diags.is_empty() => {
            e.warnings = std::mem::take(&mut cx.warnings)
                .into_iter()
                .map(redact)
                .collect();
            e.secrets = secrets;
            Ok(e)
        }
        _ => {
            let mut d: Vec<Diagnostic> = cx.diags.into_iter().map(redact).collect();
            d.sort_by_key(|d| d.loc.map(|l| (l.line, l.col)).unwrap_or((0, 0)));
            Err(d)
        }
    }
}

/// Read `secrets:` (each `name: {env: VAR}`) through `env`.
fn decode_secrets(cx: &mut Cx, root: &Node, env: &dyn Fn(&str) -> Option<String>) -> Vec<Secret> {
    let mut out = Vec::new();
    let Some(node) = root.get("secrets") else {
        return out;
    };
    let Some(map) = cx.key("secrets", |cx| OrderedMap::<Node>::decode(cx, node)) else {
        return out;
    };
    for (k, v) in map.0 {
        cx.key("secrets", |cx| {
            cx.key(&k.value, |cx| {
                if !crate::lang::secrets::valid_env_name(&k.value) {
                    cx.error(
                        k.loc,
                        format!("`{}` is not a usable secret name", k.value),
                        "use letters, digits and `_`, starting with a letter, e.g. `db_password`",
                    );
                    return;
                }
                let Some(mut m) = cx.map(&v, "a secret") else {
                    return;
                };
                let var = m.req::<Spanned<String>>(cx, "env");
                m.finish(cx);
                let Some(var) = var else { return };
                if !crate::lang::secrets::valid_env_name(&var.value) {
                    cx.key("env", |cx| {
                        cx.error(
                            var.loc,
                            format!("`{}` is not an environment variable name", var.value),
                            "name the variable the value is read from, e.g. `env: PGPASSWORD`",
                        )
                    });
                    return;
                }
                out.push(Secret {
                    name: k.value.clone(),
                    value: env(&var.value)
                        .filter(|v| !v.is_empty())
                        .map(SecretValue::new),
                    env: var.value,
                    loc: k.loc,
                });
            })
        });
    }
    out
}

/// Read `variables:` and `secrets:`, apply `--var` overrides, and substitute `${name}` (a
/// variable or a secret) and `${env:NAME}` (a secret read from the environment variable NAME)
/// in every other scalar. `$${` writes a literal `${`.
pub fn expand_variables(
    cx: &mut Cx,
    root: &mut Node,
    overrides: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<(String, String)>, Vec<Secret>) {
    let mut vars: Vec<(String, String)> = Vec::new();
    if let Some(node) = root.get("variables")
        && let Some(map) = cx.key("variables", |cx| OrderedMap::<Node>::decode(cx, node))
    {
        for (k, v) in map.0 {
            match &v.kind {
                NodeKind::Scalar { value, .. } => vars.push((k.value, value.clone())),
                NodeKind::Null => vars.push((k.value, String::new())),
                _ => cx.key("variables", |cx| {
                    cx.key(&k.value, |cx| {
                        cx.error(
                            v.loc,
                            "a variable's default must be a scalar",
                            "write `name: value`",
                        )
                    })
                }),
            }
        }
    }
    let mut secrets = decode_secrets(cx, root, env);
    for s in &secrets {
        if vars.iter().any(|(n, _)| *n == s.name) {
            cx.error_at(
                "secrets",
                Some(s.loc),
                format!("`{}` is both a variable and a secret", s.name),
                "rename one of them: `${name}` must mean one thing",
            );
        }
    }
    for (k, v) in overrides {
        match vars.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v.clone(),
            None if secrets.iter().any(|s| s.name == *k) => {
                let s = secrets.iter().find(|s| s.name == *k).expect("found");
                cx.error_at(
                    "secrets",
                    Some(s.loc),
                    format!("--var {k}=...: `{k}` is a secret, read from the environment variable {}", s.env),
                    format!("set it with `export {}=...` instead: a secret on the command line ends up in shell history and process listings", s.env),
                );
            }
            None => {
                let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
                cx.error_at(
                    "variables",
                    None,
                    format!("--var {k}={v}: the experiment declares no variable `{k}`"),
                    did_you_mean(k, &names, "declared variables"),
                );
            }
        }
    }
    if let NodeKind::Map(entries) = &mut root.kind {
        for (k, v) in entries.iter_mut() {
            if matches!(k.as_str(), Some("variables") | Some("secrets")) {
                continue;
            }
            let key = k.as_str().unwrap_or_default().to_string();
            let mut scope = Scope {
                vars: &vars,
                secrets: &mut secrets,
                env,
            };
            cx.key(&key, |cx| substitute(cx, v, &mut scope));
        }
    }
    (vars, secrets)
}

/// What `${...}` can name while substituting.
struct Scope<'a> {
    vars: &'a [(String, String)],
    secrets: &'a mut Vec<Secret>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Scope<'_> {
    /// The value of `${name}`: `Some((value, is_secret))`, or `None` when it names nothing.
    fn lookup(&mut self, name: &str, loc: Loc) -> Option<(String, bool)> {
        if let Some((_, v)) = self.vars.iter().find(|(n, _)| n == name) {
            return Some((v.clone(), false));
        }
        let secret = match name.strip_prefix("env:") {
            Some(var) => {
                let key = format!("env:{var}");
                if !self.secrets.iter().any(|s| s.name == key) {
                    self.secrets.push(Secret {
                        name: key.clone(),
                        env: var.to_string(),
                        value: (self.env)(var)
                            .filter(|v| !v.is_empty())
                            .map(SecretValue::new),
                        loc,
                    });
                }
                self.secrets.iter().find(|s| s.name == key)
            }
            None => self.secrets.iter().find(|s| s.name == name),
        }?;
        Some((
            secret
                .value
                .as_ref()
                .map(|v| v.expose().to_string())
                .unwrap_or_else(|| crate::lang::secrets::UNSET_PLACEHOLDER.to_string()),
            true,
        ))
    }
}

fn substitute(cx: &mut Cx, node: &mut Node, scope: &mut Scope) {
    match &mut node.kind {
        NodeKind::Scalar { value, plain } if value.contains('$') => {
            let mut out = String::new();
            let mut rest = value.as_str();
            let whole =
                value.starts_with("${") && value.ends_with('}') && value.matches("${").count() == 1;
            let mut any_secret = false;
            while let Some(i) = rest.find('$') {
                out.push_str(&rest[..i]);
                let after = &rest[i..];
                if let Some(r) = after.strip_prefix("$${") {
                    out.push_str("${");
                    rest = r;
                } else if let Some(r) = after.strip_prefix("${") {
                    let Some(end) = r.find('}') else {
                        cx.error(
                            node.loc,
                            "unclosed `${` in a variable reference",
                            "write `${name}`, or `$${` for a literal `${`",
                        );
                        return;
                    };
                    let name = &r[..end];
                    if let Some(var) = name.strip_prefix("env:")
                        && !crate::lang::secrets::valid_env_name(var)
                    {
                        cx.error(
                            node.loc,
                            format!("`${{{name}}}`: `{var}` is not an environment variable name"),
                            "write `${env:NAME}` with letters, digits and `_`, e.g. `${env:API_TOKEN}`",
                        );
                    } else {
                        match scope.lookup(name, node.loc) {
                            Some((v, secret)) => {
                                out.push_str(&v);
                                any_secret |= secret;
                            }
                            None => {
                                let mut names: Vec<&str> =
                                    scope.vars.iter().map(|(n, _)| n.as_str()).collect();
                                names.extend(
                                    scope
                                        .secrets
                                        .iter()
                                        .filter(|s| !s.name.starts_with("env:"))
                                        .map(|s| s.name.as_str()),
                                );
                                cx.error(
                                    node.loc,
                                    format!("unknown variable `${{{name}}}`"),
                                    did_you_mean(
                                        name,
                                        &names,
                                        "declare it under `variables:` (or `secrets:`, or read it with `${env:NAME}`); declared",
                                    ),
                                );
                            }
                        }
                    }
                    rest = &r[end + 1..];
                } else {
                    out.push('$');
                    rest = &after[1..];
                }
            }
            out.push_str(rest);
            // A scalar that was only a variable reference keeps YAML typing (numbers, booleans);
            // a secret is always a string.
            *plain = (*plain || whole) && !any_secret;
            *value = out;
        }
        NodeKind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                cx.idx(i, |cx| substitute(cx, item, scope));
            }
        }
        NodeKind::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                let key = k.as_str().unwrap_or_default().to_string();
                cx.key(&key, |cx| substitute(cx, v, scope));
            }
        }
        _ => {}
    }
}

fn decode_experiment(
    cx: &mut Cx,
    root: &Node,
    variables: Vec<(String, String)>,
) -> Option<Experiment> {
    let mut m = cx.map(root, "the experiment")?;
    crate::lang::decode::api_version(cx, &mut m);
    if let Some(kind) = m.req::<Spanned<String>>(cx, "kind")
        && kind.value != "Experiment"
    {
        let help = match kind.value.as_str() {
            "Environment" => "this is an environment file; pass it with `--env`, and pass an experiment as the argument".to_string(),
            "Playbook" => "this is a game-day playbook: run it with `firedrill gameday run`".to_string(),
            _ => "write `kind: Experiment`".to_string(),
        };
        cx.key("kind", |cx| {
            cx.error(
                kind.loc,
                format!("expected `kind: Experiment`, found `{}`", kind.value),
                help,
            )
        });
        // Another kind of document: its keys are not an experiment's mistakes.
        if matches!(kind.value.as_str(), "Environment" | "Playbook") {
            return None;
        }
    }
    let metadata = m.node("metadata").and_then(|n| {
        cx.key("metadata", |cx| {
            decode_metadata(
                cx,
                n,
                "experiment name",
                " (it names run directories and lessons records)",
            )
        })
    });
    if !m.has("metadata") {
        cx.error(
            root.loc,
            "the experiment is missing required key `metadata`",
            "add `metadata: {name: my-drill}`",
        );
    }
    let objectives = match m.node("objectives") {
        Some(n) => cx.key("objectives", |cx| decode_objectives(cx, n)),
        None => Some(Objectives {
            rto: DEFAULT_RTO,
            rpo: DEFAULT_RPO,
            mttd: None,
        }),
    };
    m.node("variables"); // expanded already
    m.node("secrets"); // read already
    let (probes, declared_probes, before, during, after) = match m.node("steady_state") {
        Some(n) => cx
            .key("steady_state", |cx| decode_steady_state(cx, n))
            .unwrap_or_default(),
        None => Default::default(),
    };
    let steps = match m.node("steps") {
        Some(n) if !matches!(n.kind, NodeKind::Null) => {
            cx.key("steps", |cx| decode_partial::<Step>(cx, n, "id"))
        }
        _ => {
            cx.error(
                root.loc,
                "the experiment is missing required key `steps`",
                "add `steps:` with at least one step",
            );
            (Vec::new(), Vec::new())
        }
    };
    let recovery = m.opt::<Recovery>(cx, "recovery");
    m.finish(cx);
    Some(Experiment {
        file: cx.file.clone(),
        metadata: metadata.unwrap_or_default(),
        objectives: objectives.unwrap_or(Objectives {
            rto: DEFAULT_RTO,
            rpo: DEFAULT_RPO,
            mttd: None,
        }),
        variables,
        secrets: Vec::new(),
        probes,
        before,
        during,
        after,
        steps: steps.0,
        declared_steps: steps.1,
        declared_probes,
        warnings: Vec::new(),
        recovery,
    })
}

/// `metadata:` of an experiment or a playbook (`what` names the name, `why` says what it names).
pub(crate) fn decode_metadata(cx: &mut Cx, n: &Node, what: &str, why: &str) -> Option<Metadata> {
    let mut m = cx.map(n, "metadata")?;
    let name = req_name(cx, &mut m, "name", what, why);
    let md = Metadata {
        name: name.map(|n| n.value).unwrap_or_default(),
        title: m.opt(cx, "title"),
        description: m.opt(cx, "description"),
        owner: m.opt(cx, "owner"),
        tags: m.opt(cx, "tags").unwrap_or_default(),
    };
    m.finish(cx);
    Some(md)
}

/// A required name (`what`: "step id", ...), checked with [`valid_name`]; `why` is appended to
/// the help.
fn req_name(
    cx: &mut Cx,
    m: &mut crate::lang::decode::MapReader,
    key: &'static str,
    what: &str,
    why: &str,
) -> Option<Spanned<String>> {
    let name = m.req::<Spanned<String>>(cx, key);
    if let Some(n) = &name
        && !valid_name(&n.value)
    {
        cx.key(key, |cx| {
            cx.error(
                n.loc,
                format!("`{}` is not a valid {what}", n.value),
                format!("use letters, digits, `-` and `_`{why}"),
            )
        });
    }
    name
}

/// Names of experiments, steps and probes: they end up in file names and Mermaid graphs.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !s.starts_with('-')
}

fn positive(
    cx: &mut Cx,
    m: &mut crate::lang::decode::MapReader,
    key: &'static str,
    what: &str,
) -> Option<Duration> {
    let node = m.node(key)?;
    let d = cx.key(key, |cx| Duration::decode(cx, node))?;
    if d.is_zero() {
        cx.key(key, |cx| cx.error(node.loc, format!("{what} must be positive"), format!("give a positive duration, e.g. `{key}: 15m`{}", if key == "rpo" { " (for zero data loss write `rpo: 1s`, the finest resolution a drill can measure)" } else { "" })));
        return None;
    }
    Some(d)
}

fn decode_objectives(cx: &mut Cx, n: &Node) -> Option<Objectives> {
    let mut m = cx.map(n, "objectives")?;
    let rto = if m.has("rto") {
        positive(cx, &mut m, "rto", "the RTO")
    } else {
        m.node("rto");
        Some(DEFAULT_RTO)
    };
    let rpo = if m.has("rpo") {
        positive(cx, &mut m, "rpo", "the RPO")
    } else {
        m.node("rpo");
        Some(DEFAULT_RPO)
    };
    let mttd = if m.has("mttd") {
        positive(cx, &mut m, "mttd", "the MTTD").map(Some)
    } else {
        m.node("mttd");
        Some(None)
    };
    m.finish(cx);
    Some(Objectives {
        rto: rto?,
        rpo: rpo?,
        mttd: mttd?,
    })
}

type SteadyState = (
    Vec<ProbeDef>,
    Vec<String>,
    Vec<Spanned<String>>,
    Option<During>,
    Vec<Spanned<String>>,
);

/// Decode a list keeping the items that decode, so that later checks still run on the rest; also
/// return the names (`key`) every item declares, valid or not, so that references to an invalid
/// item are not reported a second time as dangling.
fn decode_partial<T: Decode>(cx: &mut Cx, n: &Node, key: &str) -> (Vec<T>, Vec<String>) {
    let NodeKind::Seq(items) = &n.kind else {
        cx.error(
            n.loc,
            format!("expected a list, found {}", n.describe()),
            "write one `- ...` entry per line",
        );
        return (Vec::new(), Vec::new());
    };
    let declared = items
        .iter()
        .filter_map(|i| i.get(key).and_then(Node::as_str).map(str::to_string))
        .collect();
    // Sized up front: a filtered iterator would grow the list by doubling.
    let mut decoded = Vec::with_capacity(items.len());
    decoded.extend(
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| cx.idx(i, |cx| T::decode(cx, item))),
    );
    (decoded, declared)
}

fn decode_steady_state(cx: &mut Cx, n: &Node) -> Option<SteadyState> {
    let mut m = cx.map(n, "steady_state")?;
    let (probes, declared) = match m.node("probes") {
        Some(n) if !matches!(n.kind, NodeKind::Null) => {
            cx.key("probes", |cx| decode_partial::<ProbeDef>(cx, n, "name"))
        }
        _ => (Vec::new(), Vec::new()),
    };
    let before = m.opt(cx, "before").unwrap_or_default();
    let during = m.opt::<During>(cx, "during");
    let after = m.opt(cx, "after").unwrap_or_default();
    m.finish(cx);
    Some((probes, declared, before, during, after))
}

impl Decode for ProbeDef {
    fn decode(cx: &mut Cx, n: &Node) -> Option<Self> {
        let mut m = cx.map(n, "a probe")?;
        let name = req_name(cx, &mut m, "name", "probe name", "");
        let kind = m.req::<Spanned<String>>(cx, "type");
        let with_node = m.node("with");
        let with = match &kind {
            Some(k) => match vocab::probe(&k.value) {
                Some(pk) => vocab::check_params(
                    cx,
                    n,
                    with_node,
                    pk.params,
                    &format!("probe type `{}`", pk.name),
                )
                .and_then(|p| {
                    let typed = located(cx, n, with_node, pk.name, Probe::decode(pk.name, &p))?;
                    Some((p, typed))
                }),
                None => {
                    let help = did_you_mean(&k.value, &vocab::probe_names(), "probe types");
                    cx.key("type", |cx| {
                        cx.error(k.loc, format!("unknown probe type `{}`", k.value), help)
                    });
                    None
                }
            },
            None => None,
        };
        let tolerance = match m.node("tolerance") {
            Some(t) => cx.key("tolerance", |cx| decode_tolerance(cx, t)),
            None => Some(Tolerance::default()),
        };
        let timeout = m
            .opt::<Duration>(cx, "timeout")
            .unwrap_or(Duration::from_secs(30));
        m.finish(cx);
        let (with, call) = with?;
        Some(ProbeDef {
            name: name?,
            with,
            call,
            tolerance: tolerance?,
            timeout,
        })
    }
}

fn decode_tolerance(cx: &mut Cx, n: &Node) -> Option<Tolerance> {
    // Shorthand: a scalar means `equals`.
    if let NodeKind::Scalar { .. } = n.kind {
        return Some(Tolerance {
            path: None,
            check: Check::Equals(n.to_json()),
        });
    }
    let mut m = cx.map(n, "a tolerance")?;
    let path = m.opt::<Spanned<String>>(cx, "path");
    if let Some(p) = &path
        && let Err(e) = crate::lang::tolerance::validate_path(&p.value)
    {
        cx.key("path", |cx| {
            cx.error(
                p.loc,
                e,
                "write a path like `ready_ratio`, `body.status` or `items[0].name`",
            )
        });
    }
    let equals = m.node("equals").map(Node::to_json);
    let one_of = m.opt::<Vec<Json>>(cx, "one_of");
    let min = m.opt::<f64>(cx, "min");
    let max = m.opt::<f64>(cx, "max");
    let range = m.opt::<Vec<f64>>(cx, "range");
    let regex = m.opt::<Spanned<String>>(cx, "regex");
    let kinds = [
        equals.is_some(),
        one_of.is_some(),
        min.is_some() || max.is_some() || range.is_some(),
        regex.is_some(),
    ];
    let count = kinds.iter().filter(|b| **b).count();
    if count > 1 {
        cx.error(
            n.loc,
            "a tolerance has more than one kind of check",
            "use one of: `equals`, `one_of`, `min`/`max`/`range`, `regex`",
        );
    }
    let check = if let Some(e) = equals {
        Some(Check::Equals(e))
    } else if let Some(o) = one_of {
        Some(Check::OneOf(o))
    } else if let Some(r) = regex {
        match regex::Regex::new(&r.value) {
            Ok(re) => Some(Check::Regex(re)),
            Err(e) => {
                cx.key("regex", |cx| {
                    cx.error(
                        r.loc,
                        format!("invalid regex: {e}"),
                        "fix the regular expression (Rust regex syntax)",
                    )
                });
                None
            }
        }
    } else if let Some(r) = range {
        if r.len() != 2 || r[0] > r[1] {
            cx.key("range", |cx| {
                cx.error(
                    n.loc,
                    "a range needs two numbers, low first",
                    "write `range: [0, 0.05]`",
                )
            });
            None
        } else {
            Some(Check::Bounds {
                min: Some(r[0]),
                max: Some(r[1]),
            })
        }
    } else if min.is_some() || max.is_some() {
        if let (Some(a), Some(b)) = (min, max)
            && a > b
        {
            cx.error(
                n.loc,
                format!("min {a} is above max {b}: nothing can pass"),
                "swap them",
            );
        }
        Some(Check::Bounds { min, max })
    } else {
        Some(Check::Any)
    };
    m.finish(cx);
    Some(Tolerance {
        path: path.map(|p| p.value),
        check: check?,
    })
}

impl Decode for During {
    fn decode(cx: &mut Cx, n: &Node) -> Option<Self> {
        let mut m = cx.map(n, "the during-hypothesis")?;
        let interval = m.opt::<Spanned<Duration>>(cx, "interval");
        if let Some(i) = &interval
            && i.value < Duration::from_millis(100)
        {
            cx.key("interval", |cx| {
                cx.error(
                    i.loc,
                    "interval below 100ms",
                    "probe at most ten times a second, e.g. `interval: 10s`",
                )
            });
        }
        let probes = m.opt(cx, "probes").unwrap_or_default();
        let abort_when = m.opt(cx, "abort_when").unwrap_or_default();
        m.finish(cx);
        Some(During {
            interval: interval.map(|i| i.value).unwrap_or(Duration::from_secs(10)),
            probes,
            abort_when,
        })
    }
}

impl Decode for AbortCondition {
    fn decode(cx: &mut Cx, n: &Node) -> Option<Self> {
        let mut m = cx.map(n, "an abort condition")?;
        let probe = m.req::<Spanned<String>>(cx, "probe");
        let above = m.opt::<f64>(cx, "above");
        let below = m.opt::<f64>(cx, "below");
        let failing = m.opt::<bool>(cx, "failing");
        let increase = m.opt::<f64>(cx, "increase_above");
        let window_for = m.opt::<Duration>(cx, "for");
        let within = m.opt::<Duration>(cx, "within");
        let rules: Vec<AbortRule> = [
            above.map(AbortRule::Above),
            below.map(AbortRule::Below),
            failing.filter(|f| *f).map(|_| AbortRule::Failing),
            increase.map(AbortRule::IncreaseAbove),
        ]
        .into_iter()
        .flatten()
        .collect();
        let rule = match rules.as_slice() {
            [r] => Some(*r),
            [] => {
                cx.error(n.loc, "an abort condition needs a rule", "add one of `above: X`, `below: X`, `failing: true` or `increase_above: N` (with `within:`)");
                None
            }
            _ => {
                cx.error(
                    n.loc,
                    "an abort condition has more than one rule",
                    "split it into one condition per rule",
                );
                None
            }
        };
        let window = match (rule, window_for, within) {
            (Some(AbortRule::IncreaseAbove(_)), None, Some(w)) => Some(w),
            (Some(AbortRule::IncreaseAbove(_)), _, None) => {
                cx.error(
                    n.loc,
                    "`increase_above` needs `within`",
                    "write e.g. `increase_above: 10` with `within: 5m`",
                );
                None
            }
            (Some(_), _, Some(_)) => {
                cx.error(
                    n.loc,
                    "`within` goes with `increase_above`",
                    "use `for:` for a sustained condition",
                );
                None
            }
            (Some(_), w, None) => Some(w.unwrap_or(Duration::ZERO)),
            (None, _, _) => None,
        };
        m.finish(cx);
        Some(AbortCondition {
            probe: probe?,
            rule: rule?,
            window: window?,
        })
    }
}

impl Decode for Step {
    fn decode(cx: &mut Cx, n: &Node) -> Option<Self> {
        let mut m = cx.map(n, "a step")?;
        let id = req_name(cx, &mut m, "id", "step id", "");
        let action = m.req::<Spanned<String>>(cx, "action");
        let with_node = m.node("with");
        let with = action
            .as_ref()
            .and_then(|a| action_params(cx, n, a, with_node));
        let after = match m.node("after") {
            // `after: x` is accepted as `after: [x]`.
            Some(
                s @ Node {
                    kind: NodeKind::Scalar { .. },
                    ..
                },
            ) => cx
                .key("after", |cx| Spanned::<String>::decode(cx, s))
                .map(|x| vec![x]),
            Some(other) => cx.key("after", |cx| Vec::<Spanned<String>>::decode(cx, other)),
            None => Some(Vec::new()),
        };
        let timeout = m.opt::<Spanned<Duration>>(cx, "timeout");
        if let Some(t) = &timeout
            && t.value.is_zero()
        {
            cx.key("timeout", |cx| {
                cx.error(
                    t.loc,
                    "a zero timeout fails every attempt",
                    "give a positive duration, or leave `timeout` out",
                )
            });
        }
        let retry = m.opt::<Retry>(cx, "retry").unwrap_or_default();
        let on_failure = m.node("on_failure").and_then(|x| {
            cx.key("on_failure", |cx| {
                choice(
                    cx,
                    x,
                    "on_failure",
                    &[
                        ("abort", OnFailure::Abort),
                        ("continue", OnFailure::Continue),
                    ],
                )
            })
        });
        let rollback = match m.node("rollback") {
            None => Some(RollbackSpec::Auto),
            Some(r) => cx.key("rollback", |cx| {
                decode_rollback(cx, r, action.as_ref().map(|a| a.value.as_str()))
            }),
        };
        let description = m.opt(cx, "description");
        m.finish(cx);
        let (with, call) = with?;
        Some(Step {
            id: id?,
            action: action?,
            with: CompactJson::new(&with),
            call: Box::new(call),
            after: after?,
            timeout: timeout.map(|t| t.value),
            retry,
            on_failure: on_failure.unwrap_or(OnFailure::Abort),
            rollback: rollback?,
            description,
        })
    }
}

/// A step's (or rollback's) parameters: checked against the vocabulary, then decoded into its
/// typed [`Action`]. Returns the checked JSON (journaled as the step's parameters) and the value.
fn action_params(
    cx: &mut Cx,
    owner: &Node,
    action: &Spanned<String>,
    with: Option<&Node>,
) -> Option<(Json, Action)> {
    match vocab::action(&action.value) {
        Some(a) => {
            let mut p =
                vocab::check_params(cx, owner, with, a.params, &format!("action `{}`", a.name))?;
            // An inline FIS template is checked (and put in canonical form) like the rest.
            if a.name == "fis.experiment"
                && !crate::lang::fis_template::check_step_params(cx, owner, with, &mut p)
            {
                return None;
            }
            let typed = located(cx, owner, with, a.name, Action::decode(a.name, &p))?;
            Some((p, typed))
        }
        None => {
            let help = did_you_mean(&action.value, &vocab::action_names(), "actions");
            cx.key("action", |cx| {
                cx.error(
                    action.loc,
                    format!("unknown action `{}`", action.value),
                    help,
                )
            });
            None
        }
    }
}

/// A decode's result, with every broken rule ([`crate::lang::rules`]) reported at its parameter.
fn located<T>(
    cx: &mut Cx,
    owner: &Node,
    with: Option<&Node>,
    name: &str,
    decoded: Result<T, Vec<crate::lang::kubernetes::ParamProblem>>,
) -> Option<T> {
    let problems = match decoded {
        Ok(v) => return Some(v),
        Err(p) => p,
    };
    for pr in &problems {
        let node = pr.param.and_then(|k| with.and_then(|w| w.get(k)));
        let loc = node.or(with).unwrap_or(owner).loc;
        let message = format!("{name}: {}", pr.message);
        cx.key("with", |cx| match pr.param {
            Some(k) if node.is_some() => cx.key(k, |cx| cx.error(loc, message, pr.help.clone())),
            _ => cx.error(loc, message, pr.help.clone()),
        });
    }
    None
}

fn decode_rollback(cx: &mut Cx, n: &Node, action: Option<&str>) -> Option<RollbackSpec> {
    match &n.kind {
        NodeKind::Scalar { value, .. } if value == "auto" => {
            if let Some(a) = action.and_then(vocab::action)
                && a.auto_rollback.is_none()
            {
                cx.error(n.loc, format!("action `{}` has no automatic rollback", a.name), "write `rollback: none`, or give an explicit `rollback: {action: ..., with: ...}`");
                return None;
            }
            Some(RollbackSpec::Auto)
        }
        NodeKind::Scalar { value, .. } if value == "none" => Some(RollbackSpec::None),
        NodeKind::Map(_) => {
            let mut m = cx.map(n, "a rollback")?;
            let act = m.req::<Spanned<String>>(cx, "action");
            let with_node = m.node("with");
            let with = act
                .as_ref()
                .and_then(|a| action_params(cx, n, a, with_node));
            m.finish(cx);
            let (with, call) = with?;
            Some(RollbackSpec::Action {
                with,
                call: Box::new(call),
            })
        }
        _ => {
            cx.error(
                n.loc,
                "a rollback is `auto`, `none`, or an action",
                "write `rollback: auto`, `rollback: none`, or `rollback: {action: ..., with: ...}`",
            );
            None
        }
    }
}

impl Decode for Retry {
    fn decode(cx: &mut Cx, n: &Node) -> Option<Self> {
        let mut m = cx.map(n, "a retry policy")?;
        let attempts = m.opt::<Spanned<u32>>(cx, "attempts");
        if let Some(a) = &attempts
            && (a.value == 0 || a.value > 100)
        {
            cx.key("attempts", |cx| {
                cx.error(
                    a.loc,
                    format!("{} attempts is out of range", a.value),
                    "give 1 to 100 attempts (1 means no retry)",
                )
            });
        }
        let backoff = m.opt::<Duration>(cx, "backoff");
        let factor = m.opt::<Spanned<f64>>(cx, "factor");
        if let Some(f) = &factor
            && !(1.0..=10.0).contains(&f.value)
        {
            cx.key("factor", |cx| {
                cx.error(
                    f.loc,
                    format!("backoff factor {} is out of range", f.value),
                    "give a factor from 1 (constant) to 10",
                )
            });
        }
        m.finish(cx);
        let d = Retry::default();
        Some(Retry {
            attempts: attempts.map(|a| a.value).unwrap_or(d.attempts),
            backoff: backoff.unwrap_or(d.backoff),
            factor: factor.map(|f| f.value).unwrap_or(d.factor),
        })
    }
}

impl Decode for Recovery {
    fn decode(cx: &mut Cx, n: &Node) -> Option<Self> {
        let mut m = cx.map(n, "the recovery section")?;
        let fault = m.req::<Spanned<String>>(cx, "fault");
        let probes = m.req::<Vec<Spanned<String>>>(cx, "probes");
        if let Some(p) = &probes
            && p.is_empty()
        {
            cx.key("probes", |cx| {
                cx.error(
                    n.loc,
                    "no recovery probes",
                    "name the probes that define \"recovered\" (all must pass)",
                )
            });
        }
        let consecutive = m.opt::<Spanned<u32>>(cx, "consecutive");
        if let Some(c) = &consecutive
            && (c.value == 0 || c.value > 1000)
        {
            cx.key("consecutive", |cx| {
                cx.error(
                    c.loc,
                    format!("consecutive {} is out of range", c.value),
                    "give 1 to 1000 consecutive passing polls",
                )
            });
        }
        let interval = m.opt::<Spanned<Duration>>(cx, "interval");
        if let Some(i) = &interval
            && i.value < Duration::from_millis(100)
        {
            cx.key("interval", |cx| {
                cx.error(
                    i.loc,
                    "interval below 100ms",
                    "poll at most ten times a second, e.g. `interval: 10s`",
                )
            });
        }
        let deadline = m.opt::<Spanned<Duration>>(cx, "deadline");
        if let Some(d) = &deadline
            && d.value.is_zero()
        {
            cx.key("deadline", |cx| cx.error(d.loc, "a zero deadline can never be met", "give the longest you will wait for recovery, e.g. `deadline: 30m` (default: twice the RTO)"));
        }
        let detection = m.opt(cx, "detection");
        let data_loss = m.opt::<DataLoss>(cx, "data_loss");
        let expect_impact = m.opt::<ExpectImpact>(cx, "expect_impact");
        m.finish(cx);
        Some(Recovery {
            fault: fault?,
            probes: probes?,
            consecutive: consecutive.map(|c| c.value).unwrap_or(1),
            interval: interval.map(|i| i.value).unwrap_or(Duration::from_secs(10)),
            deadline: deadline.as_ref().map(|d| d.value),
            deadline_loc: deadline.map(|d| d.loc),
            detection,
            data_loss,
            expect_impact: expect_impact.unwrap_or_default(),
        })
    }
}

impl Decode for DataLoss {
    fn decode(cx: &mut Cx, n: &Node) -> Option<Self> {
        let mut m = cx.map(n, "the data-loss measurement")?;
        if m.has("canary") {
            if m.has("probe") || m.has("field") {
                cx.error(
                    n.loc,
                    "`recovery.data_loss` has both `canary` and `probe`/`field`",
                    "measure data loss one way: either `canary: {type: postgres, write_dsn: ...}` or `probe:` with `field:`",
                );
            }
            let c = m
                .node("canary")
                .and_then(|c| cx.key("canary", |cx| canary(cx, c)));
            let _ = (m.node("probe"), m.node("field"));
            m.finish(cx);
            return c;
        }
        let probe = m.req(cx, "probe");
        let field = m.req::<Spanned<String>>(cx, "field");
        if let Some(f) = &field
            && let Err(e) = crate::lang::tolerance::validate_path(&f.value)
        {
            cx.key("field", |cx| {
                cx.error(
                    f.loc,
                    e,
                    "write a path into the probe output, e.g. `latest_write`",
                )
            });
        }
        m.finish(cx);
        Some(DataLoss::Probe {
            probe: probe?,
            field: field?.value,
        })
    }
}

/// `canary: {type: postgres, write_dsn, read_dsn?, interval?, table?, keep?}`.
fn canary(cx: &mut Cx, n: &Node) -> Option<DataLoss> {
    use crate::lang::postgres::{self as pg, Dsn, TableName};
    let mut m = cx.map(n, "the canary")?;
    let ty = m.node("type");
    match ty {
        None => cx.error(
            n.loc,
            "the canary is missing required key `type`",
            "add `type: postgres` (the only canary type so far)",
        ),
        Some(t) => {
            cx.key("type", |cx| {
                crate::lang::decode::choice(cx, t, "canary type", &[("postgres", ())])
            });
        }
    }
    let dsn = |cx: &mut Cx, s: Option<Spanned<String>>, key: &str| -> Option<Dsn> {
        let s = s?;
        match Dsn::parse(&s.value) {
            Ok(d) => Some(d),
            Err(e) => {
                cx.key(key, |cx| cx.error(s.loc, e, crate::lang::rules::DSN_HELP));
                None
            }
        }
    };
    let write_raw = m.req::<Spanned<String>>(cx, "write_dsn");
    let write = dsn(cx, write_raw, "write_dsn");
    let read_raw = m.opt::<Spanned<String>>(cx, "read_dsn");
    let has_read = read_raw.is_some();
    let read = dsn(cx, read_raw, "read_dsn");
    let interval = m.opt::<Spanned<Duration>>(cx, "interval");
    if let Some(i) = &interval
        && i.value < pg::CANARY_MIN_INTERVAL
    {
        cx.key("interval", |cx| {
            cx.error(
                i.loc,
                format!(
                    "canary interval {} is below 100ms",
                    crate::lang::duration::format(i.value)
                ),
                "write at most ten canaries a second, e.g. `interval: 200ms` (the RPO's resolution is the interval)",
            )
        });
    }
    let table = match m.opt::<Spanned<String>>(cx, "table") {
        None => Some(TableName::parse(pg::CANARY_TABLE).expect("the default is valid")),
        Some(t) => match TableName::parse(&t.value) {
            Ok(t) => Some(t),
            Err(e) => {
                cx.key("table", |cx| {
                    cx.error(
                        t.loc,
                        e,
                        format!(
                            "name the canary table like `{}` or `ops.canary`",
                            pg::CANARY_TABLE
                        ),
                    )
                });
                None
            }
        },
    };
    let keep = m.opt::<bool>(cx, "keep").unwrap_or(false);
    m.finish(cx);
    let write = write?;
    let read = if has_read { read? } else { write.clone() };
    Some(DataLoss::Canary {
        canary: Box::new(pg::PgCanary {
            write,
            read,
            interval: interval
                .as_ref()
                .map(|i| i.value)
                .unwrap_or(pg::CANARY_INTERVAL),
            table: table?,
            keep,
        }),
        interval_loc: interval.map(|i| i.loc).unwrap_or(n.loc),
    })
}

/// The location to report for "the whole file".
pub const TOP: Loc = Loc {
    line: 1,
    col: 1,
    len: 1,
};
