//! Semantic checks after decoding: unique names, every reference resolves, the step graph is
//! acyclic (a cycle is printed as the whole loop `a -> b -> a`). Runs over the whole experiment
//! and reports every problem, after the decoder's own.
//!
//! Invariant: pure; adds diagnostics, never changes the experiment.

use crate::lang::decode::{Cx, Spanned};
use crate::lang::diag::did_you_mean;
use crate::lang::spec::{AbortRule, Experiment};
use crate::lang::vocab;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;

pub fn check_experiment(cx: &mut Cx, exp: &Experiment) {
    // Unique probe names and step ids.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, p) in exp.probes.iter().enumerate() {
        if let Some(first) = seen.insert(&p.name.value, i) {
            cx.error_at(
                &format!("steady_state.probes[{i}].name"),
                Some(p.name.loc),
                format!("duplicate probe name `{}`", p.name.value),
                format!("probe names must be unique; the first is at steady_state.probes[{first}]"),
            );
        }
    }
    let probe_names: Vec<&str> = exp.declared_probes.iter().map(String::as_str).collect();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, s) in exp.steps.iter().enumerate() {
        if let Some(first) = ids.insert(&s.id.value, i) {
            cx.error_at(
                &format!("steps[{i}].id"),
                Some(s.id.loc),
                format!("duplicate step id `{}`", s.id.value),
                format!("step ids must be unique; the first is steps[{first}]"),
            );
        }
    }
    let step_ids: Vec<&str> = exp.declared_steps.iter().map(String::as_str).collect();
    // Lookups by name in a set: a check is linear in the steps, whatever their number.
    let declared_steps: std::collections::HashSet<&str> = step_ids.iter().copied().collect();
    let declared_probes: std::collections::HashSet<&str> = probe_names.iter().copied().collect();
    let duplicate_ids = ids.len() < exp.steps.len();

    let probe_ref = |cx: &mut Cx, path: String, r: &Spanned<String>| {
        if !declared_probes.contains(r.value.as_str()) {
            cx.error_at(
                &path,
                Some(r.loc),
                format!("no probe named `{}`", r.value),
                did_you_mean(
                    &r.value,
                    &probe_names,
                    "define it under `steady_state.probes`; probes",
                ),
            );
        }
    };
    for (i, r) in exp.before.iter().enumerate() {
        probe_ref(cx, format!("steady_state.before[{i}]"), r);
    }
    for (i, r) in exp.after.iter().enumerate() {
        probe_ref(cx, format!("steady_state.after[{i}]"), r);
    }
    if let Some(d) = &exp.during {
        for (i, r) in d.probes.iter().enumerate() {
            probe_ref(cx, format!("steady_state.during.probes[{i}]"), r);
        }
        for (i, a) in d.abort_when.iter().enumerate() {
            probe_ref(
                cx,
                format!("steady_state.during.abort_when[{i}].probe"),
                &a.probe,
            );
            // `increase_above` follows one number; a `reduce: each` probe gives a list (one per
            // series), which would leave the condition silently unable to fire.
            if matches!(a.rule, AbortRule::IncreaseAbove(_))
                && exp.probes.iter().any(|p| {
                    p.name.value == a.probe.value
                        && matches!(&p.call, crate::lang::action::Probe::Prometheus(q) if q.reduce == Some(crate::lang::action::Reduce::Each))
                })
            {
                cx.error_at(
                    &format!("steady_state.during.abort_when[{i}]"),
                    Some(a.probe.loc),
                    format!("`increase_above` follows one value, and probe `{}` has `reduce: each` (one value per series)", a.probe.value),
                    "give the probe a `reduce` that folds the series into one value (e.g. `max`), or use `above`/`below` (they breach when any series does)",
                );
            }
            if a.rule != AbortRule::Failing && a.window < d.interval && !a.window.is_zero() {
                cx.error_at(
                    &format!("steady_state.during.abort_when[{i}]"),
                    Some(a.probe.loc),
                    format!("window {} is shorter than the probe interval {}", crate::lang::duration::format(a.window), crate::lang::duration::format(d.interval)),
                    "make the window at least one interval, or shorten `steady_state.during.interval`",
                );
            }
        }
    }
    for (i, s) in exp.steps.iter().enumerate() {
        if matches!(s.action.value.as_str(), "assert" | "wait_until")
            && let with = s.with.json()
            && let Some(p) = with.get("probe").and_then(|p| p.as_str())
            && !declared_probes.contains(p)
        {
            cx.error_at(
                &format!("steps[{i}].with.probe"),
                Some(s.action.loc),
                format!("step `{}` uses unknown probe `{p}`", s.id.value),
                did_you_mean(p, &probe_names, "probes"),
            );
        }
        for (j, a) in s.after.iter().enumerate() {
            if a.value == s.id.value {
                cx.error_at(
                    &format!("steps[{i}].after[{j}]"),
                    Some(a.loc),
                    format!("step `{}` runs after itself", a.value),
                    "remove it from its own `after` list",
                );
            } else if !declared_steps.contains(a.value.as_str()) {
                cx.error_at(
                    &format!("steps[{i}].after[{j}]"),
                    Some(a.loc),
                    format!("no step `{}` to run after", a.value),
                    did_you_mean(&a.value, &step_ids, "steps"),
                );
            }
        }
    }
    if let Some(r) = &exp.recovery {
        if !declared_steps.contains(r.fault.value.as_str()) {
            cx.error_at(
                "recovery.fault",
                Some(r.fault.loc),
                format!("no step `{}` to start the recovery clock", r.fault.value),
                did_you_mean(&r.fault.value, &step_ids, "name the fault step; steps"),
            );
        } else if let Some(step) = exp.steps.iter().find(|s| s.id.value == r.fault.value)
            && vocab::action(&step.action.value).is_some_and(|a| !a.can_be_fault())
        {
            cx.error_at(
                "recovery.fault",
                Some(r.fault.loc),
                format!(
                    "fault step `{}` is a `{}` step: it injects nothing, so it cannot start the recovery clock",
                    r.fault.value, step.action.value
                ),
                "point `recovery.fault` at the step that injects the fault: a backend action, or a `command` or `http` step",
            );
        }
        for (i, p) in r.probes.iter().enumerate() {
            probe_ref(cx, format!("recovery.probes[{i}]"), p);
        }
        if let Some(d) = &r.detection {
            probe_ref(cx, "recovery.detection".into(), d);
        }
        match &r.data_loss {
            Some(crate::lang::spec::DataLoss::Probe { probe, .. }) => {
                probe_ref(cx, "recovery.data_loss.probe".into(), probe);
            }
            Some(crate::lang::spec::DataLoss::Canary {
                canary,
                interval_loc,
            }) if canary.interval >= exp.objectives.rpo => {
                let fmt = crate::lang::duration::format;
                cx.error_at(
                    "recovery.data_loss.canary.interval",
                    Some(*interval_loc),
                    format!(
                        "the canary interval {} is not below the RPO objective {}: the canary could not tell a met objective from a missed one",
                        fmt(canary.interval),
                        fmt(exp.objectives.rpo)
                    ),
                    "write canaries more often than the RPO, e.g. a tenth of it (the RPO's resolution is the interval)",
                );
            }
            _ => {}
        }
        let deadline = r.deadline_for(&exp.objectives);
        if let crate::lang::spec::ExpectImpact::Within(w) = r.expect_impact
            && w > deadline
        {
            cx.error_at(
                "recovery.expect_impact",
                Some(r.fault.loc),
                format!(
                    "`expect_impact: {}` is longer than the recovery deadline {}",
                    crate::lang::duration::format(w),
                    crate::lang::duration::format(deadline)
                ),
                "the impact must show before recovery can be judged: shorten `expect_impact` or raise `recovery.deadline`",
            );
        }
        if deadline < exp.objectives.rto {
            cx.error_at("recovery.deadline", r.deadline_loc, format!("deadline {} is shorter than the RTO {}", crate::lang::duration::format(deadline), crate::lang::duration::format(exp.objectives.rto)), "a drill must wait at least the RTO to judge it; raise the deadline or leave it out (default: twice the RTO)");
        }
        if r.interval > exp.objectives.rto {
            cx.error_at(
                "recovery.interval",
                Some(r.fault.loc),
                "the recovery poll interval is longer than the RTO",
                "poll several times within the RTO, e.g. `interval: 10s`",
            );
        }
    }
    // With duplicate ids the graph is ambiguous; report the duplicates, not a made-up cycle.
    if !duplicate_ids && let Some(cycle) = find_cycle(exp) {
        let first = exp
            .steps
            .iter()
            .position(|s| s.id.value == cycle[0])
            .unwrap_or(0);
        let loc = exp.steps[first].id.loc;
        cx.error_at(
            &format!("steps[{first}].after"),
            Some(loc),
            format!("dependency cycle: {}", cycle.join(" -> ")),
            "remove one of these `after` references to break the loop",
        );
    }
}

/// The step graph (edges parent → child); dangling references are skipped.
pub fn step_graph(exp: &Experiment) -> (DiGraph<usize, ()>, Vec<NodeIndex>) {
    let mut g = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..exp.steps.len()).map(|i| g.add_node(i)).collect();
    let index = exp.step_index();
    for (i, s) in exp.steps.iter().enumerate() {
        for a in &s.after {
            if let Some(&p) = index.get(a.value.as_str())
                && p != i
            {
                g.update_edge(nodes[p], nodes[i], ());
            }
        }
    }
    (g, nodes)
}

/// One dependency cycle as step ids, closed (`[a, b, a]`), if there is one.
pub fn find_cycle(exp: &Experiment) -> Option<Vec<String>> {
    let (g, _) = step_graph(exp);
    let cycle = cycle_in(&g)?;
    Some(
        cycle
            .into_iter()
            .map(|i| exp.steps[i].id.value.clone())
            .collect(),
    )
}

/// One cycle of a graph as the weights of its nodes, closed (`[a, b, a]`), if there is one.
/// Shared by every graph the front end checks (steps, FIS template actions).
pub fn cycle_in<W: Copy>(g: &DiGraph<W, ()>) -> Option<Vec<W>> {
    // A strongly connected component with more than one node holds a cycle.
    let scc = petgraph::algo::tarjan_scc(g)
        .into_iter()
        .find(|c| c.len() > 1)?;
    // Walk inside the component from its first node until a node repeats.
    let mut path = vec![scc[0]];
    loop {
        let cur = *path.last()?;
        let next = g.neighbors(cur).find(|n| scc.contains(n))?;
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut ids: Vec<W> = path[pos..].iter().map(|&n| g[n]).collect();
            ids.push(ids[0]);
            return Some(ids);
        }
        path.push(next);
    }
}
