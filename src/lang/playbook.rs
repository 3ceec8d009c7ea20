//! Game-day playbooks (`kind: Playbook`): drills run in order or as a DAG (`after:`), each with
//! its own variables, environment overrides and environment; what a drill's verdict does to the
//! game day (`stop_on`); approval gates; the go/no-go criteria; the controls whose evidence the
//! drills produce (`controls:`, read by `firedrill evidence`); and the schedule.
//!
//! Pure like the rest of `lang`: the referenced experiment and environment files are read and
//! validated by the caller (`cli::gameday`), which locates their problems in their own files.

use crate::lang::decode::{Cx, Decode, OrderedMap, Spanned, choice};
use crate::lang::diag::{Diagnostic, did_you_mean};
use crate::lang::spec::Metadata;
use crate::lang::yaml::{Loc, Node, NodeKind};
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// A validated playbook.
#[derive(Debug, Clone)]
pub struct Playbook {
    pub file: String,
    pub metadata: Metadata,
    /// The environment every drill runs against unless it names its own: a path relative to the
    /// playbook's directory; `None` is the built-in simulated estate.
    pub environment: Option<Spanned<String>>,
    /// Game-day default for what stops it (each drill may override).
    pub stop_on: StopOn,
    pub drills: Vec<PlaybookDrill>,
    /// Drill indices in the order they run: a topological order of `after:` that keeps the
    /// written order wherever the graph allows.
    pub order: Vec<usize>,
    pub go_no_go: GoNoGo,
    pub controls: Vec<Control>,
    pub schedule: Option<Schedule>,
    /// Where the game day and its drills are notified (besides the environments' sinks).
    pub notify: Vec<crate::lang::notify::NotifySink>,
}

/// One drill of a game day.
#[derive(Debug, Clone)]
pub struct PlaybookDrill {
    /// Unique within the playbook (default: the experiment file's stem).
    pub name: Spanned<String>,
    /// Path of the experiment, relative to the playbook's directory.
    pub experiment: Spanned<String>,
    /// The drills that must have run before this one (indices); by default the one before it.
    pub after: Vec<usize>,
    /// `--var` overrides for the experiment.
    pub vars: Vec<(String, String)>,
    /// `--set` overrides for the environment (a what-if: such runs are not evidence).
    pub sets: Vec<(String, String)>,
    /// This drill's environment file, if not the playbook's.
    pub environment: Option<Spanned<String>>,
    pub seed: Option<u64>,
    /// What ends the game day after this drill (the playbook's `stop_on` if unset).
    pub stop_on: StopOn,
    /// An approval gate before the drill starts: the question put to the operator.
    pub approval: Option<String>,
    pub loc: Loc,
}

/// The drill verdicts that stop the game day (the drills after it do not run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopOn {
    pub not_steady: bool,
    pub missed: bool,
    pub aborted: bool,
    pub rollback_failed: bool,
}

impl Default for StopOn {
    /// Stop on an abort or a failed rollback (the environment may be unsafe for the next drill);
    /// carry on past a missed objective or a system that was not steady (the game day's finding).
    fn default() -> StopOn {
        StopOn {
            not_steady: false,
            missed: false,
            aborted: true,
            rollback_failed: true,
        }
    }
}

impl StopOn {
    pub fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (on, name) in [
            (self.not_steady, "not_steady"),
            (self.missed, "missed"),
            (self.aborted, "aborted"),
            (self.rollback_failed, "rollback_failed"),
        ] {
            if on {
                out.push(name);
            }
        }
        out
    }
}

/// The objectives a drill can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Objective {
    Rto,
    Rpo,
    Mttd,
}

impl Objective {
    pub fn name(self) -> &'static str {
        match self {
            Objective::Rto => "rto",
            Objective::Rpo => "rpo",
            Objective::Mttd => "mttd",
        }
    }
}

impl Decode for Objective {
    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        choice(
            cx,
            node,
            "objective",
            &[
                ("rto", Objective::Rto),
                ("rpo", Objective::Rpo),
                ("mttd", Objective::Mttd),
            ],
        )
    }
}

/// What makes the game day a GO.
#[derive(Debug, Clone, Default)]
pub struct GoNoGo {
    /// Drills that must pass (indices); `all_passed: true` (the default) names every drill.
    pub must_pass: Vec<usize>,
    /// Objectives that must be measured (not "no impact") and met, per drill index.
    pub verified: Vec<(usize, Vec<Objective>)>,
    /// Every control must be fresh once the game day's runs are counted (default: true when the
    /// playbook names controls).
    pub controls_fresh: bool,
}

/// A checklist control and the drills that evidence it.
#[derive(Debug, Clone)]
pub struct Control {
    pub control: String,
    /// Indices of the drills whose passing runs evidence it (all of them must have one).
    pub drills: Vec<usize>,
    /// The objectives a run must have measured and met to count.
    pub objectives: Vec<Objective>,
    /// Older passing runs no longer count.
    pub max_age: Duration,
    /// A control is `expiring` within this long of `max_age` (default: a fifth of it).
    pub warn_before: Duration,
    /// Only runs against this environment (by name) count, if set.
    pub environment: Option<String>,
    pub loc: Loc,
}

/// When the game day runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The five-field cron expression as written (`#`, `L`, names allowed).
    pub cron: String,
    pub parsed: croner::Cron,
    pub timezone: chrono_tz::Tz,
    pub concurrency: Concurrency,
    /// A run later than this after its scheduled time is missed, not started.
    pub starting_deadline: Duration,
    /// Allowed times; empty: any time.
    pub windows: Vec<Window>,
    pub blackouts: Vec<Blackout>,
    pub loc: Loc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// A game day still running when the next is due: the next is skipped (recorded).
    Forbid,
    /// Start the next anyway (drills still take the environment's lock).
    Allow,
    /// Stop the running one (rolled back as on Ctrl-C) and start the next.
    Replace,
}

impl Concurrency {
    pub fn name(self) -> &'static str {
        match self {
            Concurrency::Forbid => "forbid",
            Concurrency::Allow => "allow",
            Concurrency::Replace => "replace",
        }
    }
}

/// Weekdays and hours (in the window's time zone) when a game day may start.
#[derive(Debug, Clone)]
pub struct Window {
    /// Monday = 0 … Sunday = 6.
    pub days: [bool; 7],
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub timezone: chrono_tz::Tz,
    pub loc: Loc,
}

impl Window {
    pub fn contains<Z: TimeZone>(&self, at: &DateTime<Z>) -> bool {
        let local = at.with_timezone(&self.timezone);
        let day = local.weekday().num_days_from_monday() as usize;
        let t = local.time().with_nanosecond(0).unwrap_or(local.time());
        self.days[day] && t >= self.start && t < self.end
    }
}

/// Dates (inclusive, in the schedule's time zone) when no game day starts.
#[derive(Debug, Clone)]
pub struct Blackout {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub reason: Option<String>,
    pub loc: Loc,
}

impl Schedule {
    /// Why a game day must not start at `at` (outside every window, inside a blackout), if so.
    pub fn refusal(&self, at: DateTime<Utc>) -> Option<String> {
        let local = at.with_timezone(&self.timezone).date_naive();
        if let Some(b) = self
            .blackouts
            .iter()
            .find(|b| local >= b.from && local <= b.to)
        {
            return Some(format!(
                "blackout {} to {}{}",
                b.from,
                b.to,
                b.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
        }
        if !self.windows.is_empty() && !self.windows.iter().any(|w| w.contains(&at)) {
            return Some("outside its allowed windows".into());
        }
        None
    }

    /// The next scheduled times strictly after `after`, at most `count`, with why a time is
    /// skipped (blackout, outside windows). Bounded: searches at most 10,000 occurrences.
    pub fn upcoming(
        &self,
        after: DateTime<Utc>,
        count: usize,
    ) -> Vec<(DateTime<Utc>, Option<String>)> {
        let mut out = Vec::new();
        let start = after.with_timezone(&self.timezone);
        for t in self.parsed.iter_after(start).take(10_000) {
            let t = t.with_timezone(&Utc);
            out.push((t, self.refusal(t)));
            if out.len() >= count {
                break;
            }
        }
        out
    }

    /// The newest scheduled time at or before `at`.
    pub fn previous(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.parsed
            .find_previous_occurrence(&at.with_timezone(&self.timezone), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The next scheduled time strictly after `at`.
    pub fn next(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.parsed
            .find_next_occurrence(&at.with_timezone(&self.timezone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// The nearest Kubernetes CronJob schedule that fires at every time of `cron` (Kubernetes cron
/// has no `#`, `L` or `W`): `TUE#1` becomes `TUE` (2), `5L` becomes 5, a day-of-month `L` becomes
/// `28-31`, `15W` becomes `13-17`. Returns the schedule and whether it is wider than `cron`
/// (then the job must run `gameday run --if-due`, which skips the times that are not due).
pub fn kubernetes_cron(cron: &str) -> (String, bool) {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    if fields.len() != 5 {
        // Nicknames (`@daily`, ...) mean the same to Kubernetes.
        return (cron.trim().to_string(), false);
    }
    let mut widened = false;
    let dom = fields[2]
        .split(',')
        .map(|t| {
            let up = t.to_ascii_uppercase();
            if up == "L" || up.starts_with("L-") {
                widened = true;
                "28-31".to_string()
            } else if up == "LW" {
                widened = true;
                "26-31".to_string()
            } else if let Some(n) = up.strip_suffix('W').and_then(|n| n.parse::<u32>().ok()) {
                widened = true;
                format!("{}-{}", n.saturating_sub(2).max(1), (n + 2).min(31))
            } else {
                t.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let dow = fields[4]
        .split(',')
        .map(|t| {
            if let Some((day, _)) = t.split_once('#') {
                widened = true;
                day.to_string()
            } else if t.eq_ignore_ascii_case("L") {
                widened = true;
                "*".to_string()
            } else if t.len() > 1 && t.to_ascii_uppercase().ends_with('L') {
                widened = true;
                t[..t.len() - 1].to_string()
            } else {
                t.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let dom = if dom.split(',').any(|t| t == "*") {
        "*".to_string()
    } else {
        dom
    };
    let dow = if dow.split(',').any(|t| t == "*") {
        "*".to_string()
    } else {
        dow
    };
    (
        format!("{} {} {dom} {} {dow}", fields[0], fields[1], fields[3]),
        widened,
    )
}

/// Default starting deadline: a game day more than this late is recorded as missed.
pub const DEFAULT_STARTING_DEADLINE: Duration = Duration::from_secs(3600);

/// The whole front end for a playbook: text → validated playbook, or every problem found.
pub fn parse_playbook(file: &str, bytes: &[u8]) -> Result<Playbook, Vec<Diagnostic>> {
    let (_, root) = crate::lang::yaml::load_document(file, bytes)?;
    let mut cx = Cx::new(file);
    let pb = decode_playbook(&mut cx, &root);
    match pb {
        Some(pb) if cx.diags.is_empty() => Ok(pb),
        _ => Err(cx.diags),
    }
}

/// Resolves a drill name written somewhere (`what`) to its index, or reports it.
type Resolve<'a> = dyn Fn(&mut Cx, &Spanned<String>, &str) -> Option<usize> + 'a;

/// A drill as written, before `after:` names are resolved.
struct RawDrill {
    name: Spanned<String>,
    experiment: Spanned<String>,
    after: Option<Vec<Spanned<String>>>,
    vars: Vec<(String, String)>,
    sets: Vec<(String, String)>,
    environment: Option<Spanned<String>>,
    seed: Option<u64>,
    stop_on: Option<StopOn>,
    approval: Option<String>,
    loc: Loc,
}

fn decode_playbook(cx: &mut Cx, root: &Node) -> Option<Playbook> {
    let mut m = cx.map(root, "the playbook")?;
    crate::lang::decode::api_version(cx, &mut m);
    if let Some(kind) = m.req::<Spanned<String>>(cx, "kind")
        && kind.value != "Playbook"
    {
        let help = match kind.value.as_str() {
            "Experiment" => {
                "this is an experiment: run it with `firedrill run`, or list it under a playbook's `drills:`"
            }
            "Environment" => "this is an environment: name it in the playbook's `environment:`",
            _ => "write `kind: Playbook`",
        };
        cx.key("kind", |cx| {
            cx.error(
                kind.loc,
                format!("expected `kind: Playbook`, found `{}`", kind.value),
                help,
            )
        });
    }
    let metadata = match m.node("metadata") {
        Some(n) => cx.key("metadata", |cx| {
            crate::lang::spec::decode_metadata(
                cx,
                n,
                "playbook name",
                " (it names game-day directories)",
            )
        }),
        None => {
            cx.error(
                root.loc,
                "the playbook is missing required key `metadata`",
                "add `metadata: {name: quarterly-dr-game-day}`",
            );
            None
        }
    };
    let environment = m.opt::<Spanned<String>>(cx, "environment");
    let stop_on = m
        .node("stop_on")
        .and_then(|n| cx.key("stop_on", |cx| decode_stop_on(cx, n)))
        .unwrap_or_default();
    let raw = match m.node("drills") {
        Some(n) => cx.key("drills", |cx| decode_drills(cx, n)),
        None => {
            cx.error(
                root.loc,
                "the playbook is missing required key `drills`",
                "add `drills:` with one `- experiment: experiments/<name>.yaml` per drill",
            );
            None
        }
    };
    let go_node = m.node("go_no_go");
    let controls_node = m.node("controls");
    let schedule = m
        .node("schedule")
        .and_then(|n| cx.key("schedule", |cx| decode_schedule(cx, n)));
    let notify = match m.node("notify") {
        Some(n) => cx
            .key("notify", |cx| crate::lang::notify::decode_sinks(cx, n))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    m.finish(cx);
    let raw = raw?;
    let index: HashMap<&str, usize> = raw
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.value.as_str(), i))
        .collect();
    let names: Vec<&str> = raw.iter().map(|d| d.name.value.as_str()).collect();
    let resolve = |cx: &mut Cx, n: &Spanned<String>, what: &str| -> Option<usize> {
        match index.get(n.value.as_str()) {
            Some(&i) => Some(i),
            None => {
                cx.error(
                    n.loc,
                    format!(
                        "{what} names drill `{}`, which this playbook does not have",
                        n.value
                    ),
                    did_you_mean(&n.value, &names, "drills"),
                );
                None
            }
        }
    };
    let mut drills = Vec::with_capacity(raw.len());
    for (i, d) in raw.iter().enumerate() {
        let after = match &d.after {
            None if i > 0 => vec![i - 1],
            None => Vec::new(),
            Some(list) => cx.key("drills", |cx| {
                cx.idx(i, |cx| {
                    cx.key("after", |cx| {
                        let mut out = Vec::new();
                        for n in list {
                            if n.value == d.name.value {
                                cx.error(
                                    n.loc,
                                    format!("drill `{}` is after itself", n.value),
                                    "remove it from its own `after:`",
                                );
                            } else if let Some(j) = resolve(cx, n, "`after:`") {
                                out.push(j);
                            }
                        }
                        out
                    })
                })
            }),
        };
        drills.push(PlaybookDrill {
            name: d.name.clone(),
            experiment: d.experiment.clone(),
            after,
            vars: d.vars.clone(),
            sets: d.sets.clone(),
            environment: d.environment.clone(),
            seed: d.seed,
            stop_on: d.stop_on.unwrap_or(stop_on),
            approval: d.approval.clone(),
            loc: d.loc,
        });
    }
    let order = match drill_order(&drills) {
        Ok(o) => o,
        Err(cycle) => {
            let first = &drills[cycle[0]];
            let path: Vec<&str> = cycle
                .iter()
                .map(|&i| drills[i].name.value.as_str())
                .collect();
            cx.error_at(
                "drills",
                Some(first.loc),
                format!("the drills' `after:` form a cycle: {}", path.join(" → ")),
                "remove one `after:` entry of the loop so the drills have an order",
            );
            Vec::new()
        }
    };
    let go_no_go = match go_node {
        Some(n) => cx.key("go_no_go", |cx| {
            decode_go_no_go(cx, n, &resolve, drills.len())
        }),
        None => None,
    };
    let controls = match controls_node {
        Some(n) => cx
            .key("controls", |cx| decode_controls(cx, n, &resolve))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let go_no_go = go_no_go.unwrap_or_else(|| GoNoGo {
        must_pass: (0..drills.len()).collect(),
        verified: Vec::new(),
        controls_fresh: !controls.is_empty(),
    });
    Some(Playbook {
        file: cx.file.clone(),
        metadata: metadata.unwrap_or_default(),
        environment,
        stop_on,
        drills,
        order,
        go_no_go,
        controls,
        schedule,
        notify,
    })
}

/// A topological order of the drills that keeps the written order where `after:` allows (Kahn's
/// algorithm taking the lowest ready index); a cycle is returned as its drills, first repeated.
fn drill_order(drills: &[PlaybookDrill]) -> Result<Vec<usize>, Vec<usize>> {
    let mut g = petgraph::graph::DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = (0..drills.len()).map(|i| g.add_node(i)).collect();
    for (i, d) in drills.iter().enumerate() {
        for &j in &d.after {
            g.add_edge(nodes[j], nodes[i], ());
        }
    }
    if let Some(cycle) = crate::lang::check::cycle_in(&g) {
        return Err(cycle);
    }
    let mut pending: Vec<usize> = drills.iter().map(|d| d.after.len()).collect();
    let mut done = vec![false; drills.len()];
    let mut order = Vec::with_capacity(drills.len());
    while order.len() < drills.len() {
        let Some(next) = (0..drills.len()).find(|&i| !done[i] && pending[i] == 0) else {
            break;
        };
        done[next] = true;
        order.push(next);
        for (i, d) in drills.iter().enumerate() {
            pending[i] -= d.after.iter().filter(|&&j| j == next).count();
        }
    }
    Ok(order)
}

fn decode_drills(cx: &mut Cx, node: &Node) -> Option<Vec<RawDrill>> {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(
            node.loc,
            format!("expected a list of drills, found {}", node.describe()),
            "write one `- experiment: experiments/<name>.yaml` per drill",
        );
        return None;
    };
    if items.is_empty() {
        cx.error(
            node.loc,
            "the playbook has no drills",
            "add at least one `- experiment: ...`",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut seen: HashMap<String, Loc> = HashMap::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match cx.idx(i, |cx| decode_drill(cx, item)) {
            Some(d) => {
                if let Some(first) = seen.get(&d.name.value) {
                    let msg = format!(
                        "drill name `{}` is used twice (first at line {})",
                        d.name.value, first.line
                    );
                    cx.idx(i, |cx| {
                        cx.error(d.name.loc, msg, "give one of them `name: <another-name>` (a playbook may run one experiment twice under two names)")
                    });
                } else {
                    seen.insert(d.name.value.clone(), d.name.loc);
                }
                out.push(d);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn decode_drill(cx: &mut Cx, node: &Node) -> Option<RawDrill> {
    let mut m = cx.map(node, "a drill")?;
    let experiment = m.req::<Spanned<String>>(cx, "experiment");
    let name = match m.opt::<Spanned<String>>(cx, "name") {
        Some(n) => {
            if !crate::lang::spec::valid_name(&n.value) {
                cx.key("name", |cx| {
                    cx.error(n.loc, format!("`{}` is not a valid drill name", n.value), "use letters, digits, `-` and `_`")
                });
            }
            Some(n)
        }
        None => experiment.as_ref().and_then(|e| {
            let stem = std::path::Path::new(&e.value)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !crate::lang::spec::valid_name(&stem) {
                cx.key("experiment", |cx| {
                    cx.error(e.loc, format!("the drill's default name `{stem}` (the file's stem) is not a valid drill name"), "give the drill `name: <letters, digits, - and _>`")
                });
                return None;
            }
            Some(Spanned { value: stem, loc: e.loc })
        }),
    };
    let after = m.opt::<Vec<Spanned<String>>>(cx, "after");
    let vars = m
        .opt::<OrderedMap<Node>>(cx, "vars")
        .map(|o| scalars(cx, "vars", o))
        .unwrap_or_default();
    let sets = m
        .opt::<OrderedMap<Node>>(cx, "set")
        .map(|o| scalars(cx, "set", o))
        .unwrap_or_default();
    let environment = m.opt::<Spanned<String>>(cx, "environment");
    let seed = m.opt::<u64>(cx, "seed");
    let stop_on = m
        .node("stop_on")
        .and_then(|n| cx.key("stop_on", |cx| decode_stop_on(cx, n)));
    let approval = match m.node("approval") {
        None => None,
        Some(n) => cx.key("approval", |cx| match &n.kind {
            NodeKind::Scalar { value, plain: true } if value == "true" => {
                Some("Start this drill?".to_string())
            }
            NodeKind::Scalar { value, plain: true } if value == "false" => None,
            NodeKind::Scalar { value, .. } if !value.trim().is_empty() => Some(value.clone()),
            _ => {
                cx.error(
                    n.loc,
                    "`approval` must be `true` or the question to ask",
                    "write e.g. `approval: \"Fail over production's database?\"`",
                );
                None
            }
        }),
    };
    m.finish(cx);
    Some(RawDrill {
        name: name?,
        experiment: experiment?,
        after,
        vars,
        sets,
        environment,
        seed,
        stop_on,
        approval,
        loc: node.loc,
    })
}

/// `name: value` pairs whose values are scalars (a variable or a setting).
fn scalars(cx: &mut Cx, key: &str, o: OrderedMap<Node>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in o.0 {
        match &v.kind {
            NodeKind::Scalar { value, .. } => out.push((k.value, value.clone())),
            _ => cx.key(key, |cx| {
                cx.key(&k.value, |cx| {
                    cx.error(
                        v.loc,
                        format!(
                            "`{}` must be a single value, found {}",
                            k.value,
                            v.describe()
                        ),
                        "write `name: value`",
                    )
                })
            }),
        }
    }
    out
}

fn decode_stop_on(cx: &mut Cx, node: &Node) -> Option<StopOn> {
    #[derive(Clone, Copy)]
    enum K {
        NotSteady,
        Missed,
        Aborted,
        RollbackFailed,
        Never,
    }
    let opts = [
        ("not_steady", K::NotSteady),
        ("missed", K::Missed),
        ("aborted", K::Aborted),
        ("rollback_failed", K::RollbackFailed),
        ("never", K::Never),
    ];
    let items: Vec<&Node> = match &node.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        NodeKind::Scalar { .. } => vec![node],
        _ => {
            cx.error(
                node.loc,
                "`stop_on` must be a list of verdicts",
                "write e.g. `stop_on: [aborted, rollback_failed]`",
            );
            return None;
        }
    };
    let mut s = StopOn {
        not_steady: false,
        missed: false,
        aborted: false,
        rollback_failed: false,
    };
    let mut never = None;
    for (i, n) in items.iter().enumerate() {
        match cx.idx(i, |cx| choice(cx, n, "verdict to stop on", &opts))? {
            K::NotSteady => s.not_steady = true,
            K::Missed => s.missed = true,
            K::Aborted => s.aborted = true,
            K::RollbackFailed => s.rollback_failed = true,
            K::Never => never = Some(n.loc),
        }
    }
    if let Some(loc) = never
        && items.len() > 1
    {
        cx.error(
            loc,
            "`never` cannot be combined with verdicts",
            "write `stop_on: [never]` alone, or list the verdicts",
        );
        return None;
    }
    Some(s)
}

fn decode_go_no_go(cx: &mut Cx, node: &Node, resolve: &Resolve, drills: usize) -> Option<GoNoGo> {
    let mut m = cx.map(node, "go_no_go")?;
    let must_pass = match m.node("all_passed") {
        Some(n) => match bool::decode(cx, n) {
            Some(true) | None => (0..drills).collect(),
            Some(false) => Vec::new(),
        },
        None => (0..drills).collect(),
    };
    let must_pass = match m.opt::<Vec<Spanned<String>>>(cx, "passed") {
        Some(list) => {
            if m.has("all_passed") {
                cx.error(
                    node.loc,
                    "`passed` and `all_passed` contradict each other",
                    "keep one: `all_passed: true`, or `passed: [<drill>, ...]`",
                );
            }
            cx.key("passed", |cx| {
                list.iter()
                    .filter_map(|n| resolve(cx, n, "`passed`"))
                    .collect()
            })
        }
        None => must_pass,
    };
    let verified = match m.opt::<OrderedMap<Vec<Objective>>>(cx, "verified") {
        Some(o) => cx.key("verified", |cx| {
            o.0.into_iter()
                .filter_map(|(k, v)| resolve(cx, &k, "`verified`").map(|i| (i, v)))
                .collect()
        }),
        None => Vec::new(),
    };
    let controls_fresh = m.opt::<bool>(cx, "controls_fresh");
    m.finish(cx);
    Some(GoNoGo {
        must_pass,
        verified,
        // Unset: decided once controls are known (true when there are some).
        controls_fresh: controls_fresh.unwrap_or(true),
    })
}

fn decode_controls(cx: &mut Cx, node: &Node, resolve: &Resolve) -> Option<Vec<Control>> {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(
            node.loc,
            format!("expected a list of controls, found {}", node.describe()),
            "write one `- control: \"...\"` per checklist item",
        );
        return None;
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let c = cx.idx(i, |cx| {
            let mut m = cx.map(item, "a control")?;
            let control = m.req::<Spanned<String>>(cx, "control");
            let drills = m.req::<Vec<Spanned<String>>>(cx, "drills");
            let objectives = m
                .opt::<Vec<Objective>>(cx, "objectives")
                .unwrap_or_default();
            let max_age = m
                .node("max_age")
                .and_then(|n| cx.key("max_age", |cx| age(cx, n)));
            if !m.has("max_age") {
                cx.error(
                    item.loc,
                    "a control is missing required key `max_age`",
                    "add e.g. `max_age: 30d` (how long a passing drill counts as evidence)",
                );
            }
            let warn_before = m
                .node("warn_before")
                .and_then(|n| cx.key("warn_before", |cx| age(cx, n)));
            let environment = m.opt::<String>(cx, "environment");
            m.finish(cx);
            let drills = cx.key("drills", |cx| {
                if drills.as_ref().is_some_and(|d| d.is_empty()) {
                    cx.error(
                        item.loc,
                        "a control with no drills can never be evidenced",
                        "name the drills that evidence it: `drills: [region-failover]`",
                    );
                }
                drills.map(|d| {
                    d.iter()
                        .filter_map(|n| resolve(cx, n, "`drills`"))
                        .collect::<Vec<_>>()
                })
            })?;
            let control = control?;
            if !seen.insert(control.value.clone()) {
                cx.key("control", |cx| {
                    cx.error(
                        control.loc,
                        format!("control `{}` is listed twice", control.value),
                        "merge the two entries",
                    )
                });
            }
            let max_age = max_age?;
            let warn_before = warn_before.unwrap_or(max_age / 5);
            if warn_before >= max_age {
                cx.error(
                    item.loc,
                    format!(
                        "`warn_before` ({}) is not shorter than `max_age` ({})",
                        crate::lang::duration::format(warn_before),
                        crate::lang::duration::format(max_age)
                    ),
                    "make `warn_before` shorter than `max_age`, e.g. a fifth of it (the default)",
                );
            }
            Some(Control {
                control: control.value,
                drills,
                objectives,
                max_age,
                warn_before,
                environment,
                loc: item.loc,
            })
        });
        if let Some(c) = c {
            out.push(c);
        }
    }
    Some(out)
}

/// An age: a positive duration up to two years.
fn age(cx: &mut Cx, n: &Node) -> Option<Duration> {
    let NodeKind::Scalar { value, .. } = &n.kind else {
        cx.error(
            n.loc,
            format!("expected a duration, found {}", n.describe()),
            "write e.g. `30d`",
        );
        return None;
    };
    match crate::lang::duration::parse_up_to(value, crate::lang::duration::MAX_AGE) {
        Ok(d) if d.is_zero() => {
            cx.error(
                n.loc,
                "an age of zero makes every run stale at once",
                "write a positive duration, e.g. `30d`",
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            cx.error(n.loc, format!("bad duration `{value}`"), e.to_string());
            None
        }
    }
}

fn timezone(cx: &mut Cx, n: &Spanned<String>) -> Option<chrono_tz::Tz> {
    match n.value.parse::<chrono_tz::Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()).collect();
            cx.error(
                n.loc,
                format!("`{}` is not an IANA time zone", n.value),
                did_you_mean(
                    &n.value,
                    &names,
                    "IANA time zones such as `UTC`, `Europe/Berlin`, `America/New_York`",
                ),
            );
            None
        }
    }
}

fn parse_cron(cx: &mut Cx, n: &Spanned<String>) -> Option<croner::Cron> {
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build();
    let fields = n.value.split_whitespace().count();
    if fields != 5 && !n.value.trim_start().starts_with('@') {
        cx.error(
            n.loc,
            format!("cron expression `{}` has {fields} fields, not 5", n.value),
            "write minute hour day-of-month month day-of-week, e.g. `0 14 * * TUE#1` (14:00 on the first Tuesday of the month)",
        );
        return None;
    }
    match parser.parse(&n.value) {
        Ok(c) => Some(c),
        Err(e) => {
            cx.error(
                n.loc,
                format!("`{}` is not a valid cron expression: {e}", n.value),
                "write minute hour day-of-month month day-of-week with numbers, names, ranges, steps, `L` or `#`, e.g. `0 14 * * TUE#1`",
            );
            None
        }
    }
}

fn decode_schedule(cx: &mut Cx, node: &Node) -> Option<Schedule> {
    // `schedule: "0 14 * * TUE#1"`: the cron expression alone, in UTC.
    if let NodeKind::Scalar { value, .. } = &node.kind {
        let cron = Spanned {
            value: value.clone(),
            loc: node.loc,
        };
        let parsed = parse_cron(cx, &cron)?;
        return Some(Schedule {
            cron: cron.value,
            parsed,
            timezone: chrono_tz::UTC,
            concurrency: Concurrency::Forbid,
            starting_deadline: DEFAULT_STARTING_DEADLINE,
            windows: Vec::new(),
            blackouts: Vec::new(),
            loc: node.loc,
        });
    }
    let mut m = cx.map(node, "the schedule")?;
    let cron = m.req::<Spanned<String>>(cx, "cron");
    let parsed = cron
        .as_ref()
        .and_then(|c| cx.key("cron", |cx| parse_cron(cx, c)));
    let tz = match m.opt::<Spanned<String>>(cx, "timezone") {
        Some(t) => cx.key("timezone", |cx| timezone(cx, &t)),
        None => Some(chrono_tz::UTC),
    };
    let concurrency = m
        .node("concurrency")
        .and_then(|n| {
            cx.key("concurrency", |cx| {
                choice(
                    cx,
                    n,
                    "concurrency policy",
                    &[
                        ("forbid", Concurrency::Forbid),
                        ("allow", Concurrency::Allow),
                        ("replace", Concurrency::Replace),
                    ],
                )
            })
        })
        .unwrap_or(Concurrency::Forbid);
    let starting_deadline = match m.node("starting_deadline") {
        Some(n) => cx.key("starting_deadline", |cx| age(cx, n)),
        None => Some(DEFAULT_STARTING_DEADLINE),
    };
    let windows = match m.node("windows") {
        Some(n) => cx.key("windows", |cx| {
            decode_windows(cx, n, tz.unwrap_or(chrono_tz::UTC))
        }),
        None => Some(Vec::new()),
    };
    let blackouts = match m.node("blackout") {
        Some(n) => cx.key("blackout", |cx| decode_blackouts(cx, n)),
        None => Some(Vec::new()),
    };
    m.finish(cx);
    let s = Schedule {
        cron: cron?.value,
        parsed: parsed?,
        timezone: tz?,
        concurrency,
        starting_deadline: starting_deadline?,
        windows: windows?,
        blackouts: blackouts?,
        loc: node.loc,
    };
    // A schedule whose every time in the next two years falls outside its windows or in a
    // blackout would never run: say so now, not in two years.
    if !s.windows.is_empty() || !s.blackouts.is_empty() {
        let from = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_else(Utc::now);
        let horizon = from + chrono::Duration::days(731);
        let any = s
            .parsed
            .iter_after(from.with_timezone(&s.timezone))
            .take(10_000)
            .map(|t| t.with_timezone(&Utc))
            .take_while(|t| *t < horizon)
            .any(|t| s.refusal(t).is_none());
        if !any {
            cx.error(
                node.loc,
                format!("the schedule `{}` never falls inside its windows (outside every window or in a blackout)", s.cron),
                "move the cron time into a window, or widen the windows",
            );
        }
    }
    Some(s)
}

fn decode_windows(cx: &mut Cx, node: &Node, default_tz: chrono_tz::Tz) -> Option<Vec<Window>> {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(
            node.loc,
            format!("expected a list of windows, found {}", node.describe()),
            "write e.g. `windows: [{days: mon-thu, hours: \"10:00-16:00\"}]`",
        );
        return None;
    };
    let mut out: Vec<Window> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let w = cx.idx(i, |cx| {
            let mut m = cx.map(item, "a window")?;
            let days = m.req::<Spanned<String>>(cx, "days");
            let hours = m.req::<Spanned<String>>(cx, "hours");
            let tz = match m.opt::<Spanned<String>>(cx, "timezone") {
                Some(t) => cx.key("timezone", |cx| timezone(cx, &t)),
                None => Some(default_tz),
            };
            m.finish(cx);
            let days = days.and_then(|d| cx.key("days", |cx| weekdays(cx, &d)));
            let hours = hours.and_then(|h| cx.key("hours", |cx| hour_range(cx, &h)));
            let (start, end) = hours?;
            Some(Window {
                days: days?,
                start,
                end,
                timezone: tz?,
                loc: item.loc,
            })
        });
        match w {
            Some(w) => {
                if let Some(other) = out.iter().find(|o| {
                    o.timezone == w.timezone
                        && (0..7).any(|d| o.days[d] && w.days[d])
                        && o.start < w.end
                        && w.start < o.end
                }) {
                    let msg = format!("this window overlaps the window at line {}", other.loc.line);
                    cx.idx(i, |cx| {
                        cx.error(
                            w.loc,
                            msg,
                            "merge the two windows into one, or make their days or hours disjoint",
                        )
                    });
                    ok = false;
                }
                out.push(w);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `mon-fri`, `tue,thu`, `sat-sun`, `*`.
fn weekdays(cx: &mut Cx, d: &Spanned<String>) -> Option<[bool; 7]> {
    let mut days = [false; 7];
    let help = "write weekdays as `mon-fri`, `tue,thu` or `*`";
    let day = |s: &str| {
        DAY_NAMES
            .iter()
            .position(|n| s.trim().eq_ignore_ascii_case(n))
    };
    if d.value.trim() == "*" {
        return Some([true; 7]);
    }
    for part in d.value.split(',') {
        match part.split_once('-') {
            Some((a, b)) => match (day(a), day(b)) {
                (Some(a), Some(b)) if a <= b => (a..=b).for_each(|i| days[i] = true),
                (Some(_), Some(_)) => {
                    cx.error(d.loc, format!("weekday range `{part}` runs backwards"), "write ranges Monday first, e.g. `mon-fri`; split a range over the weekend: `fri,sat,sun,mon`");
                    return None;
                }
                _ => {
                    cx.error(d.loc, format!("`{part}` is not a weekday range"), help);
                    return None;
                }
            },
            None => match day(part) {
                Some(i) => days[i] = true,
                None => {
                    cx.error(d.loc, format!("`{}` is not a weekday", part.trim()), help);
                    return None;
                }
            },
        }
    }
    Some(days)
}

/// `09:00-17:00` (the end is exclusive, `24:00` allowed).
fn hour_range(cx: &mut Cx, h: &Spanned<String>) -> Option<(NaiveTime, NaiveTime)> {
    let help = "write hours as `HH:MM-HH:MM`, e.g. `10:00-16:00` (start inclusive, end exclusive)";
    let Some((a, b)) = h.value.split_once('-') else {
        cx.error(h.loc, format!("`{}` is not an hour range", h.value), help);
        return None;
    };
    let t = |s: &str| {
        let s = s.trim();
        if s == "24:00" {
            return NaiveTime::from_hms_milli_opt(23, 59, 59, 999);
        }
        NaiveTime::parse_from_str(s, "%H:%M").ok()
    };
    match (t(a), t(b)) {
        (Some(a), Some(b)) if a < b => Some((a, b)),
        (Some(_), Some(_)) => {
            cx.error(h.loc, format!("hour range `{}` is empty or runs backwards", h.value), "write the start before the end; split a window over midnight into two days' windows");
            None
        }
        _ => {
            cx.error(h.loc, format!("`{}` is not an hour range", h.value), help);
            None
        }
    }
}

fn decode_blackouts(cx: &mut Cx, node: &Node) -> Option<Vec<Blackout>> {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(
            node.loc,
            format!("expected a list of blackouts, found {}", node.describe()),
            "write e.g. `blackout: [{from: 2026-12-20, to: 2027-01-04, reason: change freeze}]`",
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let b = cx.idx(i, |cx| {
            let mut m = cx.map(item, "a blackout")?;
            let from = m.req::<Spanned<String>>(cx, "from");
            let to = m.req::<Spanned<String>>(cx, "to");
            let reason = m.opt::<String>(cx, "reason");
            m.finish(cx);
            let date = |cx: &mut Cx, key: &str, s: Spanned<String>| {
                cx.key(key, |cx| {
                    match NaiveDate::parse_from_str(s.value.trim(), "%Y-%m-%d") {
                        Ok(d) => Some(d),
                        Err(_) => {
                            cx.error(
                                s.loc,
                                format!("`{}` is not a date", s.value),
                                "write dates as YYYY-MM-DD",
                            );
                            None
                        }
                    }
                })
            };
            let from = from.and_then(|f| date(cx, "from", f));
            let to = to.and_then(|t| date(cx, "to", t));
            let (from, to) = (from?, to?);
            if to < from {
                cx.error(
                    item.loc,
                    format!("blackout ends ({to}) before it starts ({from})"),
                    "swap `from` and `to`",
                );
                return None;
            }
            Some(Blackout {
                from,
                to,
                reason,
                loc: item.loc,
            })
        });
        match b {
            Some(b) => out.push(b),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// The path a playbook names (`environment:`, `experiment:`), relative to the playbook's
/// directory unless absolute.
pub fn resolve_path(playbook_file: &str, path: &str) -> std::path::PathBuf {
    use std::path::{Component, Path, PathBuf};
    let p = Path::new(path);
    let joined = match Path::new(playbook_file).parent() {
        _ if p.is_absolute() => p.to_path_buf(),
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
        _ => p.to_path_buf(),
    };
    // Lexically: `playbooks/../experiments/a.yaml` reads `experiments/a.yaml` in messages.
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Playbook, Vec<Diagnostic>> {
        parse_playbook("p.yaml", text.as_bytes())
    }

    fn errors(text: &str) -> Vec<(u32, String)> {
        parse(text)
            .expect_err("should be rejected")
            .into_iter()
            .map(|d| (d.loc.map(|l| l.line).unwrap_or(0), d.message))
            .collect()
    }

    const HEAD: &str = "apiVersion: firedrill.dev/v1\nkind: Playbook\nmetadata: {name: gd}\n";

    #[test]
    fn drills_run_in_order_by_default_and_by_after_when_given() {
        let pb = parse(&format!(
            "{HEAD}drills:\n  - experiment: a.yaml\n  - experiment: b.yaml\n  - experiment: c.yaml\n"
        ))
        .unwrap();
        assert_eq!(pb.order, vec![0, 1, 2]);
        assert_eq!(pb.drills[2].after, vec![1]);
        assert_eq!(pb.drills[0].name.value, "a");
        assert_eq!(pb.go_no_go.must_pass, vec![0, 1, 2]);
        assert_eq!(pb.stop_on, StopOn::default());
        assert_eq!(
            resolve_path("playbooks/p.yaml", "../experiments/a.yaml"),
            std::path::PathBuf::from("experiments/a.yaml")
        );
        assert_eq!(
            resolve_path("p.yaml", "../a.yaml"),
            std::path::PathBuf::from("../a.yaml")
        );
        assert_eq!(
            resolve_path("/x/p.yaml", "/abs/a.yaml"),
            std::path::PathBuf::from("/abs/a.yaml")
        );
        let pb = parse(&format!(
            "{HEAD}drills:\n  - {{experiment: a.yaml, after: [c]}}\n  - {{experiment: b.yaml, after: []}}\n  - {{experiment: c.yaml, after: [b]}}\n"
        ))
        .unwrap();
        assert_eq!(pb.order, vec![1, 2, 0]);
    }

    #[test]
    fn bad_playbooks_are_located() {
        let e = errors(&format!(
            "{HEAD}drills:\n  - {{experiment: a.yaml, after: [b]}}\n  - {{experiment: b.yaml, after: [a]}}\n"
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].1.contains("cycle: a → b → a") || e[0].1.contains("cycle: b → a → b"),
            "{e:?}"
        );
        let e = errors(&format!(
            "{HEAD}drills:\n  - experiment: a.yaml\n  - experiment: dir/a.yaml\n  - {{experiment: c.yaml, after: [x]}}\n"
        ));
        assert_eq!(e[0].0, 6);
        assert!(e[0].1.contains("used twice"), "{e:?}");
        assert!(
            e.iter().any(|(l, m)| *l == 7 && m.contains("drill `x`")),
            "{e:?}"
        );
        let e = errors(&format!(
            "{HEAD}schedule: {{cron: \"0 14 * * TUE#9\", timezone: Europe/Berln}}\ndrills:\n  - experiment: a.yaml\n"
        ));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().all(|(l, _)| *l == 4));
        assert!(e.iter().any(|(_, m)| m.contains("not an IANA time zone")));
        let e = errors(&format!(
            "{HEAD}schedule: \"0 14 * *\"\ndrills:\n  - experiment: a.yaml\n"
        ));
        assert!(e[0].1.contains("4 fields"), "{e:?}");
        let e = errors(&format!(
            "{HEAD}schedule:\n  cron: \"0 14 * * *\"\n  windows:\n    - {{days: mon-fri, hours: \"09:00-17:00\"}}\n    - {{days: fri, hours: \"16:00-18:00\"}}\ndrills:\n  - experiment: a.yaml\n"
        ));
        assert!(
            e.iter()
                .any(|(l, m)| *l == 8 && m.contains("overlaps the window at line 7")),
            "{e:?}"
        );
        let e = errors(&format!(
            "{HEAD}schedule:\n  cron: \"0 20 * * *\"\n  windows: [{{days: \"*\", hours: \"09:00-17:00\"}}]\ndrills:\n  - experiment: a.yaml\n"
        ));
        assert!(
            e.iter()
                .any(|(_, m)| m.contains("never falls inside its windows")),
            "{e:?}"
        );
        let e = errors(&format!(
            "{HEAD}drills:\n  - experiment: a.yaml\ncontrols:\n  - {{control: DR, drills: [b], max_age: 0s}}\n  - {{control: X, drills: [a], max_age: 30d, warn_before: 40d}}\ngo_no_go: {{all_passed: true, passed: [a]}}\n"
        ));
        let msgs: Vec<&str> = e.iter().map(|(_, m)| m.as_str()).collect();
        assert!(msgs.iter().any(|m| m.contains("age of zero")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.contains("drill `b`")), "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|m| m.contains("not shorter than `max_age`")),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.contains("contradict")), "{msgs:?}");
        let e = errors(&format!("{HEAD}drils: []\n"));
        assert!(e.iter().any(|(_, m)| m.contains("unknown key `drils`")));
    }

    #[test]
    fn kubernetes_schedules_widen_what_kubernetes_cannot_say() {
        assert_eq!(
            kubernetes_cron("0 14 * * TUE#1"),
            ("0 14 * * TUE".into(), true)
        );
        assert_eq!(kubernetes_cron("0 3 L * *"), ("0 3 28-31 * *".into(), true));
        assert_eq!(
            kubernetes_cron("0 3 15W * *"),
            ("0 3 13-17 * *".into(), true)
        );
        assert_eq!(kubernetes_cron("30 2 * * 5L"), ("30 2 * * 5".into(), true));
        assert_eq!(
            kubernetes_cron("*/15 9-17 * * MON-FRI"),
            ("*/15 9-17 * * MON-FRI".into(), false)
        );
        assert_eq!(kubernetes_cron("@daily"), ("@daily".into(), false));
        // The wider schedule fires at every time of the original.
        let parser = croner::parser::CronParser::builder().build();
        for c in ["0 14 * * TUE#1", "0 3 L * *", "0 3 15W * *", "30 2 * * 5L"] {
            let orig = parser.parse(c).unwrap();
            let wide = parser.parse(&kubernetes_cron(c).0).unwrap();
            let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            for t in orig.iter_after(from).take(40) {
                assert!(
                    wide.is_time_matching(&t).unwrap(),
                    "{c}: {t} not in the wider schedule"
                );
            }
        }
    }

    #[test]
    fn schedules_follow_the_time_zone_and_skip_blackouts_and_closed_windows() {
        let pb = parse(&format!(
            "{HEAD}schedule:\n  cron: \"0 14 * * TUE#1\"\n  timezone: Europe/Berlin\n  windows: [{{days: mon-thu, hours: \"09:00-17:00\"}}]\n  blackout: [{{from: 2026-12-28, to: 2027-01-10, reason: freeze}}]\ndrills:\n  - experiment: a.yaml\n"
        ))
        .unwrap();
        let s = pb.schedule.unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 15, 0, 0, 0).unwrap();
        let next = s.upcoming(from, 3);
        // First Tuesdays: 1 Dec 2026 (CET, UTC+1), 5 Jan 2027 (in the blackout), 2 Feb 2027.
        assert_eq!(
            next[0].0,
            Utc.with_ymd_and_hms(2026, 12, 1, 13, 0, 0).unwrap()
        );
        assert_eq!(next[0].1, None);
        assert_eq!(
            next[1].0,
            Utc.with_ymd_and_hms(2027, 1, 5, 13, 0, 0).unwrap()
        );
        assert!(next[1].1.as_deref().unwrap().contains("freeze"));
        assert_eq!(
            next[2].0,
            Utc.with_ymd_and_hms(2027, 2, 2, 13, 0, 0).unwrap()
        );
        assert_eq!(s.previous(next[2].0), Some(next[2].0));
        // Summer time: 14:00 in Berlin is 12:00 UTC.
        let july = s
            .next(Utc.with_ymd_and_hms(2027, 7, 1, 0, 0, 0).unwrap())
            .unwrap();
        assert_eq!(july, Utc.with_ymd_and_hms(2027, 7, 6, 12, 0, 0).unwrap());
    }
}
