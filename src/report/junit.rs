//! JUnit XML for CI (`--output junit` of `run` and `gameday run`): a test suite per drill, a
//! test case per hypothesis phase (before, during, after), per objective (RTO, RPO, MTTD) and for
//! the rollbacks; a failure carries the measured figure and the reason. A drill that did not run
//! is one skipped (or errored) case. The schema is the one Jenkins, GitLab and junitparser read.

use crate::engine::events::{Phase, VerdictKind};
use crate::lang::duration::format_ms as human;
use crate::report::gameday::{DrillOutcome, GameDaySummary};
use crate::report::summary::RunSummary;
use std::fmt::Write;

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 allows tab, newline and carriage return among the controls, nothing else.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

enum Result {
    Pass,
    Fail(String, String),
    Skip(String),
    Error(String),
}

struct Case {
    name: String,
    time_ms: u64,
    result: Result,
}

/// The cases of one run.
fn cases(s: &RunSummary) -> Vec<Case> {
    let mut out = Vec::new();
    let phase_case = |phase: Phase, label: &str| -> Case {
        let name = format!("steady state {label}");
        match s.phase(phase).and_then(|p| p.hypothesis.as_ref()) {
            Some(h) if h.met => Case {
                name,
                time_ms: 0,
                result: Result::Pass,
            },
            Some(h) => Case {
                name,
                time_ms: 0,
                result: Result::Fail(
                    format!("steady state {label} not met: {}", h.failed.join(", ")),
                    format!(
                        "probes out of tolerance at +{}: {}",
                        human(h.at_ms),
                        h.failed.join(", ")
                    ),
                ),
            },
            None => Case {
                name,
                time_ms: 0,
                result: Result::Skip(format!(
                    "no steady-state check {label} (the drill stopped earlier or has none)"
                )),
            },
        }
    };
    out.push(phase_case(Phase::Before, "before"));
    let during = if s.aborts.is_empty() {
        Result::Pass
    } else {
        let reasons: Vec<&str> = s.aborts.iter().map(|a| a.reason.as_str()).collect();
        Result::Fail(
            format!("aborted: {}", reasons.join("; ")),
            reasons.join("\n"),
        )
    };
    let deviations: u64 = s.deviations.iter().map(|d| d.count).sum();
    out.push(Case {
        name: format!("steady state during ({deviations} deviations)"),
        time_ms: s.duration_ms,
        result: if s
            .verdict
            .as_ref()
            .is_some_and(|v| v.kind == VerdictKind::NotSteady)
        {
            Result::Skip("not steady before the fault: nothing was injected".into())
        } else {
            during
        },
    });
    out.push(phase_case(Phase::After, "after"));
    for m in &s.measurements {
        let name = m.name.to_uppercase();
        let objective = m.objective_ms.map(human).unwrap_or_else(|| "-".into());
        let measured = match m.measured_ms {
            Some(v) => crate::lang::duration::format_at(v, m.resolution_ms),
            None if m.no_impact => "no impact".into(),
            None => format!(
                "not reached by the {} deadline",
                m.deadline_ms.map(human).unwrap_or_default()
            ),
        };
        let result = if m.met {
            Result::Pass
        } else {
            Result::Fail(
                format!(
                    "{name} {measured} against an objective of {objective} (resolution ±{})",
                    human(m.resolution_ms)
                ),
                m.detail.clone(),
            )
        };
        out.push(Case {
            name: format!("{name} {measured} (objective {objective})"),
            time_ms: m.measured_ms.unwrap_or(0),
            result,
        });
    }
    let failed: Vec<String> = s
        .rollbacks
        .iter()
        .filter(|r| r.ok != Some(true))
        .map(|r| {
            format!(
                "{} ({}): {}",
                r.step,
                r.action,
                r.error.clone().unwrap_or_else(|| "did not finish".into())
            )
        })
        .chain(
            s.owed_rollbacks
                .iter()
                .map(|o| format!("{} ({}): owed: {}", o.step, o.action, o.reason)),
        )
        .collect();
    out.push(Case {
        name: format!("rollbacks ({} run)", s.rollbacks.len()),
        time_ms: s.rollbacks.iter().filter_map(|r| r.duration_ms).sum(),
        result: if failed.is_empty() {
            Result::Pass
        } else {
            Result::Fail(
                format!("{} rollback(s) failed or owed", failed.len()),
                failed.join("\n"),
            )
        },
    });
    if s.verdict.is_none() {
        out.push(Case {
            name: "run finished".into(),
            time_ms: 0,
            result: Result::Error(
                "the run did not finish (its process died); see `firedrill recover`".into(),
            ),
        });
    }
    out
}

fn suite(
    out: &mut String,
    name: &str,
    classname: &str,
    props: &[(&str, String)],
    cases: &[Case],
    timestamp: Option<String>,
    time_ms: u64,
) {
    let count = |f: fn(&Result) -> bool| cases.iter().filter(|c| f(&c.result)).count();
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\"{}>",
        esc(name),
        cases.len(),
        count(|r| matches!(r, Result::Fail(..))),
        count(|r| matches!(r, Result::Error(_))),
        count(|r| matches!(r, Result::Skip(_))),
        secs(time_ms),
        timestamp
            .map(|t| format!(" timestamp=\"{t}\""))
            .unwrap_or_default()
    );
    if !props.is_empty() {
        out.push_str("    <properties>\n");
        for (k, v) in props {
            let _ = writeln!(
                out,
                "      <property name=\"{}\" value=\"{}\"/>",
                esc(k),
                esc(v)
            );
        }
        out.push_str("    </properties>\n");
    }
    for c in cases {
        let open = format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
            esc(classname),
            esc(&c.name),
            secs(c.time_ms)
        );
        match &c.result {
            Result::Pass => {
                let _ = writeln!(out, "{open}/>");
            }
            Result::Fail(msg, body) => {
                let _ = writeln!(
                    out,
                    "{open}>\n      <failure message=\"{}\" type=\"objective\">{}</failure>\n    </testcase>",
                    esc(msg),
                    esc(body)
                );
            }
            Result::Skip(msg) => {
                let _ = writeln!(
                    out,
                    "{open}>\n      <skipped message=\"{}\"/>\n    </testcase>",
                    esc(msg)
                );
            }
            Result::Error(msg) => {
                let _ = writeln!(
                    out,
                    "{open}>\n      <error message=\"{}\" type=\"drill\"/>\n    </testcase>",
                    esc(msg)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n");
}

fn run_suite(out: &mut String, name: &str, s: &RunSummary) {
    let props = vec![
        ("run_id", s.run_id.clone()),
        ("experiment", s.experiment.clone()),
        ("environment", s.environment.clone()),
        ("verdict", s.verdict_label().to_string()),
        ("clock", s.clock.clone()),
    ];
    suite(
        out,
        name,
        &format!("firedrill.{}", s.experiment),
        &props,
        &cases(s),
        s.started.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
        s.duration_ms,
    );
}

/// One run as a JUnit document.
pub fn render_run(s: &RunSummary) -> String {
    let mut body = String::new();
    run_suite(&mut body, &s.experiment, s);
    wrap(&format!("firedrill {}", s.experiment), &body)
}

fn wrap(name: &str, body: &str) -> String {
    // Totals over the suites, as consumers that read only the root expect.
    let attr = |key: &str| -> usize {
        body.lines()
            .filter(|l| l.trim_start().starts_with("<testsuite "))
            .filter_map(|l| {
                let k = format!(" {key}=\"");
                let start = l.find(&k)? + k.len();
                l[start..].split('"').next()?.parse::<usize>().ok()
            })
            .sum()
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">\n{body}</testsuites>\n",
        esc(name),
        attr("tests"),
        attr("failures"),
        attr("errors"),
        attr("skipped")
    )
}

/// A game day: a suite per drill (its run's cases; one case for a drill that did not run), and a
/// `go/no-go` suite whose one case fails on NO-GO.
pub fn render_gameday(g: &GameDaySummary, runs: &[Option<RunSummary>]) -> String {
    let mut body = String::new();
    for (d, run) in g
        .drills
        .iter()
        .zip(runs.iter().chain(std::iter::repeat(&None)))
    {
        match (d.outcome, run) {
            (DrillOutcome::Ran, Some(s)) => run_suite(&mut body, &d.name, s),
            _ => {
                let why = d.reasons.first().cloned().unwrap_or_else(|| d.label());
                let result = match d.outcome {
                    DrillOutcome::Skipped => Result::Skip(why),
                    _ => Result::Error(format!("{}: {why}", d.label())),
                };
                suite(
                    &mut body,
                    &d.name,
                    &format!("firedrill.{}", d.experiment),
                    &[],
                    &[Case {
                        name: "drill ran".into(),
                        time_ms: 0,
                        result,
                    }],
                    None,
                    0,
                );
            }
        }
    }
    let decision = match &g.decision {
        Some(d) if d.go => Result::Pass,
        Some(d) => Result::Fail("NO-GO".into(), d.reasons.join("\n")),
        None => Result::Error("the game day did not finish".into()),
    };
    suite(
        &mut body,
        "go/no-go",
        &format!("firedrill.gameday.{}", g.playbook),
        &[("gameday", g.id.clone())],
        &[Case {
            name: "decision".into(),
            time_ms: 0,
            result: decision,
        }],
        Some(g.started.format("%Y-%m-%dT%H:%M:%S").to_string()),
        0,
    );
    wrap(&format!("firedrill game day {}", g.playbook), &body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(
            super::esc("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot;?"
        );
    }
}
