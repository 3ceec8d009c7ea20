//! Planning: the step DAG as waves (steps that can start together), the critical path and a
//! Mermaid graph. Pure; used by `firedrill plan`, `run --dry-run` and the run's first event.

use crate::lang::check::step_graph;
use crate::lang::spec::Experiment;
use petgraph::Direction;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Step indices per wave; a step's wave is one more than its deepest parent's.
    pub waves: Vec<Vec<usize>>,
    pub wave_of: Vec<usize>,
    /// Step indices along the longest chain by estimated duration.
    pub critical_path: Vec<usize>,
    /// Estimated length of the critical path (waits count their duration; other steps their
    /// timeout when set, else zero).
    pub critical_length: Duration,
    /// Topological order of the steps.
    pub order: Vec<usize>,
}

/// Estimated duration of a step for the critical path.
pub fn estimate(exp: &Experiment, i: usize) -> Duration {
    let s = &exp.steps[i];
    match &*s.call {
        crate::lang::action::Action::Wait(w) => w.duration,
        crate::lang::action::Action::WaitUntil(w) => w.deadline,
        _ => s.timeout.unwrap_or_default(),
    }
}

/// Plan an experiment that passed validation (acyclic).
pub fn plan(exp: &Experiment) -> Plan {
    let (g, nodes) = step_graph(exp);
    let order: Vec<usize> = petgraph::algo::toposort(&g, None)
        .map(|o| o.into_iter().map(|n| g[n]).collect())
        .unwrap_or_else(|_| (0..exp.steps.len()).collect());
    let n = exp.steps.len();
    let mut wave_of = vec![0usize; n];
    let mut finish = vec![Duration::ZERO; n];
    let mut best_parent: Vec<Option<usize>> = vec![None; n];
    for &i in &order {
        let mut start = Duration::ZERO;
        for p in g.neighbors_directed(nodes[i], Direction::Incoming) {
            let p = g[p];
            wave_of[i] = wave_of[i].max(wave_of[p] + 1);
            if finish[p] >= start && (best_parent[i].is_none() || finish[p] > start) {
                start = finish[p];
                best_parent[i] = Some(p);
            }
        }
        finish[i] = start + estimate(exp, i);
    }
    let waves_n = wave_of.iter().map(|w| w + 1).max().unwrap_or(0);
    let mut waves = vec![Vec::new(); waves_n];
    for (i, &w) in wave_of.iter().enumerate() {
        waves[w].push(i);
    }
    let mut critical_path = Vec::new();
    let mut critical_length = Duration::ZERO;
    // Ties go to the step declared last, so the path ends at a sink.
    if let Some(end) = (0..n).max_by_key(|&i| (finish[i], wave_of[i], i)) {
        critical_length = finish[end];
        let mut cur = Some(end);
        while let Some(c) = cur {
            critical_path.push(c);
            cur = best_parent[c];
        }
        critical_path.reverse();
    }
    Plan {
        waves,
        wave_of,
        critical_path,
        critical_length,
        order,
    }
}

/// A Mermaid flowchart of the step DAG; critical-path steps are highlighted.
pub fn mermaid(exp: &Experiment, plan: &Plan) -> String {
    let mut out = String::from("graph TD\n");
    for (i, s) in exp.steps.iter().enumerate() {
        let fault = exp
            .recovery
            .as_ref()
            .is_some_and(|r| r.fault.value == s.id.value);
        let label = format!(
            "{}<br/>{}{}",
            s.id.value,
            s.action.value,
            if fault { " (fault)" } else { "" }
        );
        let _ = writeln!(out, "  s{i}[\"{}\"]", label.replace('"', "'"));
    }
    let index = exp.step_index();
    for (i, s) in exp.steps.iter().enumerate() {
        for a in &s.after {
            if let Some(&p) = index.get(a.value.as_str()) {
                let _ = writeln!(out, "  s{p} --> s{i}");
            }
        }
    }
    if !plan.critical_path.is_empty() {
        let ids: Vec<String> = plan.critical_path.iter().map(|i| format!("s{i}")).collect();
        let _ = writeln!(
            out,
            "  classDef critical stroke:#d33,stroke-width:3px\n  class {} critical",
            ids.join(",")
        );
    }
    out
}

/// Human-readable plan: waves, critical path, and the Mermaid graph.
pub fn render(exp: &Experiment, plan: &Plan) -> String {
    let mut out = String::new();
    let title = exp.metadata.title.as_deref().unwrap_or(&exp.metadata.name);
    let _ = writeln!(
        out,
        "Plan for {} ({} steps, {} waves)",
        title,
        exp.steps.len(),
        plan.waves.len()
    );
    let _ = writeln!(
        out,
        "Objectives: RTO {}, RPO {}{}",
        crate::lang::duration::format(exp.objectives.rto),
        crate::lang::duration::format(exp.objectives.rpo),
        exp.objectives
            .mttd
            .map(|m| format!(", MTTD {}", crate::lang::duration::format(m)))
            .unwrap_or_default()
    );
    for (w, steps) in plan.waves.iter().enumerate() {
        let _ = writeln!(out, "\nWave {}:", w + 1);
        for &i in steps {
            let s = &exp.steps[i];
            let after = if s.after.is_empty() {
                String::new()
            } else {
                format!(
                    " after {}",
                    s.after
                        .iter()
                        .map(|a| a.value.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let fault = if exp
                .recovery
                .as_ref()
                .is_some_and(|r| r.fault.value == s.id.value)
            {
                "  [fault: starts the recovery clock]"
            } else {
                ""
            };
            let rb = if s.has_rollback() { "  [rollback]" } else { "" };
            let _ = writeln!(
                out,
                "  {:<24} {}{}{}{}",
                s.id.value, s.action.value, after, fault, rb
            );
        }
    }
    let path: Vec<&str> = plan
        .critical_path
        .iter()
        .map(|&i| exp.steps[i].id.value.as_str())
        .collect();
    let _ = writeln!(
        out,
        "\nCritical path (at most {}: the steps' durations and wait deadlines along it, a worst case): {}",
        crate::lang::duration::format(plan.critical_length),
        path.join(" -> ")
    );
    let _ = writeln!(out, "\n```mermaid\n{}```", mermaid(exp, plan));
    out
}
