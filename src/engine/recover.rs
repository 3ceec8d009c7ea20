//! `firedrill recover`: the rollbacks a run still owes, worked out from its journal alone, and
//! running them once each.
//!
//! A step owes its rollback when it started, has one, and no rollback of it finished well: the
//! process died before the rollback phase (or during it), a second interrupt stopped it, a
//! rollback failed, or `--rollback never` left it. The journal carries what each rollback needs:
//! the step's resolved parameters and rollback (`StepStarted.with` / `.rollback`, secrets
//! masked), its output (`StepFinished.output`), the environment's document and the secrets'
//! variable names (`RunStarted`). Secret values are read again from the environment.
//!
//! Crash safety: every rollback is journaled as started before it runs and as finished after;
//! a rollback journaled as finished well is never run again, one that started and never
//! finished is run again (rollbacks are idempotent undo operations).

use super::events::{EnvironmentDoc, Event, Record, RollbackRef, SecretRef};
use crate::backend::{Provider, ProviderError};
use crate::lang::action::Action;
use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use std::collections::HashMap;

/// One rollback a run owes.
#[derive(Debug, Clone, PartialEq)]
pub struct Owed {
    pub step: String,
    /// The step's own action.
    pub action: String,
    pub undo: Undo,
    /// Why it is owed.
    pub why: String,
}

/// How an owed rollback is done.
#[derive(Debug, Clone, PartialEq)]
pub enum Undo {
    /// Revert the step's action (its resolved parameters) given its output (`null` when the step
    /// did not finish: the backend then undoes what it finds, as the drill itself would have).
    Revert { with: Json, output: Json },
    /// Run an explicit rollback action.
    Action { action: String, with: Json },
    /// The journal predates the fields recovery needs.
    Unknown,
}

impl Owed {
    /// What `recover --dry-run` and the report say it would do.
    pub fn describe(&self) -> String {
        match &self.undo {
            Undo::Revert { .. } => format!("revert {} of step `{}`", self.action, self.step),
            Undo::Action { action, with } => {
                format!("{action} {with} (rollback of step `{}`)", self.step)
            }
            Undo::Unknown => format!(
                "rollback of step `{}` ({}): the journal does not record how (written before firedrill journaled rollbacks); undo it by hand",
                self.step, self.action
            ),
        }
    }

    /// The name of the action that will run.
    pub fn rollback_action(&self) -> String {
        match &self.undo {
            Undo::Action { action, .. } => action.clone(),
            _ => format!("revert {}", self.action),
        }
    }
}

/// What a journal says about the rollbacks of its run.
#[derive(Debug, Clone, Default)]
pub struct RecoverPlan {
    pub run_id: String,
    pub experiment: String,
    pub environment: String,
    pub environment_doc: Option<EnvironmentDoc>,
    pub secrets: Vec<SecretRef>,
    /// The run finished (its journal has `RunFinished`).
    pub finished: bool,
    pub started: Option<DateTime<Utc>>,
    /// The last record's sequence number and time.
    pub last_seq: u64,
    pub last_at: Option<DateTime<Utc>>,
    /// In the order they must run (reverse dependency order).
    pub owed: Vec<Owed>,
}

/// Work out, from a run's records alone, which rollbacks it owes.
pub fn plan(records: &[Record]) -> RecoverPlan {
    let mut p = Planner::default();
    records.iter().for_each(|r| p.push(r));
    p.finish()
}

/// [`plan`] one record at a time: what it keeps is per step (never per record), so a summary
/// folded while the drill runs holds no more than the plan.
#[derive(Debug, Default)]
pub struct Planner {
    p: RecoverPlan,
    /// The wave of each planned step that has a rollback (the only steps that can owe one).
    waves: HashMap<String, u32>,
    started: HashMap<String, Started>,
    done: HashMap<String, bool>,
    last_error: HashMap<String, String>,
    owed_reason: HashMap<String, String>,
}

/// A started step: its start order, action, resolved parameters, rollback and output.
#[derive(Debug)]
struct Started {
    order: usize,
    action: String,
    with: Option<Json>,
    rollback: Option<RollbackRef>,
    output: Json,
}

impl Planner {
    pub fn push(&mut self, r: &Record) {
        let p = &mut self.p;
        p.last_seq = p.last_seq.max(r.seq);
        p.last_at = Some(r.at);
        match &r.event {
            Event::RunStarted {
                run_id,
                experiment,
                environment,
                steps,
                environment_doc,
                secrets,
                ..
            } => {
                p.run_id = run_id.clone();
                p.experiment = experiment.clone();
                p.environment = environment.clone();
                p.environment_doc = environment_doc.clone();
                p.secrets = secrets.clone();
                p.started = Some(r.at);
                for s in steps.iter().filter(|s| s.has_rollback) {
                    self.waves.insert(s.id.clone(), s.wave as u32);
                }
            }
            Event::StepStarted {
                step,
                action,
                with,
                rollback,
                ..
            } => {
                // A step without a rollback never owes one: nothing of it is kept.
                if !self.waves.contains_key(step) {
                    return;
                }
                let n = self.started.len();
                let e = self.started.entry(step.clone()).or_insert(Started {
                    order: n,
                    action: action.clone(),
                    with: None,
                    rollback: None,
                    output: Json::Null,
                });
                if with.is_some() {
                    e.with = with.clone();
                    e.rollback = rollback.clone();
                }
            }
            Event::StepFinished { step, output, .. } => {
                if let Some(s) = self.started.get_mut(step) {
                    s.output = output.clone();
                }
            }
            Event::RollbackStarted { step, .. } => {
                self.done.entry(step.clone()).or_insert(false);
            }
            Event::RollbackFinished {
                step, ok, error, ..
            } => {
                self.done.insert(step.clone(), *ok);
                if let Some(e) = error {
                    self.last_error.insert(step.clone(), e.clone());
                }
            }
            Event::RollbackOwed { step, reason, .. } => {
                self.owed_reason.insert(step.clone(), reason.clone());
            }
            Event::RunFinished { .. } => p.finished = true,
            _ => {}
        }
    }

    /// The plan for the records pushed.
    pub fn finish(self) -> RecoverPlan {
        let mut p = self.p;
        let mut owed: Vec<(u32, usize, Owed)> = Vec::new();
        for (id, s) in self.started {
            if self.done.get(&id) == Some(&true) {
                continue;
            }
            let why = match (
                self.done.get(&id),
                self.last_error.get(&id),
                self.owed_reason.get(&id),
            ) {
                (_, _, Some(reason)) => format!("owed: {reason}"),
                (Some(false), Some(e), _) => format!("its rollback failed: {e}"),
                (Some(false), None, _) => {
                    "its rollback started but never finished (the process died during it)".into()
                }
                _ if p.finished => "the drill finished without rolling it back".into(),
                _ => "the drill's process died before rolling it back".into(),
            };
            let undo = match (s.with, s.rollback) {
                (Some(with), Some(RollbackRef::Revert)) => Undo::Revert {
                    with,
                    output: s.output,
                },
                (_, Some(RollbackRef::Action { action, with })) => Undo::Action { action, with },
                _ => Undo::Unknown,
            };
            owed.push((
                self.waves.get(&id).copied().unwrap_or(0),
                s.order,
                Owed {
                    step: id,
                    action: s.action,
                    undo,
                    why,
                },
            ));
        }
        // Reverse dependency order: later waves first, later starts first within a wave.
        owed.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        p.owed = owed.into_iter().map(|(_, _, o)| o).collect();
        p
    }
}

/// Put secrets back into journaled (masked) parameters: `[REDACTED:name]` → the value of the
/// secret's variable, read now. Fails naming the variable when it is not set.
pub fn unmask(
    v: &Json,
    secrets: &[SecretRef],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Json, String> {
    let mut out = v.clone();
    let mut missing = None;
    fn walk(v: &mut Json, f: &mut dyn FnMut(&mut String)) {
        match v {
            Json::String(s) => f(s),
            Json::Array(a) => a.iter_mut().for_each(|x| walk(x, f)),
            Json::Object(m) => m.values_mut().for_each(|x| walk(x, f)),
            _ => {}
        }
    }
    walk(&mut out, &mut |s: &mut String| {
        for sec in secrets {
            let label = format!("[REDACTED:{}]", sec.name);
            if s.contains(&label) {
                match env(&sec.env).filter(|v| !v.is_empty()) {
                    Some(val) => *s = s.replace(&label, &val),
                    None => missing = Some(sec.env.clone()),
                }
            }
        }
    });
    match missing {
        Some(var) => Err(format!(
            "it uses a secret read from {var}, which is not set: export {var}=... and run recover again"
        )),
        None => Ok(out),
    }
}

/// Run one owed rollback against `provider` (generic `http`/`command` actions run here).
pub async fn run_one(
    owed: &Owed,
    secrets: &[SecretRef],
    env: &dyn Fn(&str) -> Option<String>,
    provider: &dyn Provider,
    redactor: &crate::lang::secrets::Redactor,
) -> Result<Json, ProviderError> {
    let decode = |name: &str, with: &Json| -> Result<Action, ProviderError> {
        let with = unmask(with, secrets, env).map_err(ProviderError::invalid_input)?;
        Action::decode(name, &with).map_err(|problems| {
            ProviderError::invalid_input(format!(
                "the journaled parameters of `{name}` no longer decode: {}",
                problems
                    .iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })
    };
    let limit = std::time::Duration::from_secs(15 * 60);
    let fut = async {
        match &owed.undo {
            Undo::Unknown => Err(ProviderError::new(
                crate::backend::ErrorKind::Unsupported,
                owed.describe(),
            )),
            Undo::Revert { with, output } => {
                let action = decode(&owed.action, with)?;
                let output = unmask(output, secrets, env).map_err(ProviderError::invalid_input)?;
                provider.revert(&action, &output).await
            }
            Undo::Action { action, with } => match decode(action, with)? {
                Action::Http(h) => super::generic::http(&h, true, redactor).await,
                Action::Command(c) => super::generic::command(&c, true, redactor).await,
                a @ (Action::Wait(_)
                | Action::Assert(_)
                | Action::WaitUntil(_)
                | Action::Approval(_)) => Err(ProviderError::new(
                    crate::backend::ErrorKind::Unsupported,
                    format!("`{}` is a built-in step, not an undo action", a.name()),
                )),
                a => provider.inject(&a).await,
            },
        }
    };
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::timed_out(format!(
            "the rollback of step `{}` did not finish within 15m",
            owed.step
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{PlannedStep, VerdictKind};

    fn rec(seq: u64, event: Event) -> Record {
        Record {
            seq,
            at: Utc::now(),
            elapsed_ms: seq,
            event,
        }
    }

    fn planned(id: &str, wave: usize, rb: bool) -> PlannedStep {
        PlannedStep {
            id: id.into(),
            action: "command".into(),
            after: vec![],
            wave,
            critical: true,
            has_rollback: rb,
            description: None,
        }
    }

    fn run_started() -> Event {
        let mut e = crate::report::fixtures::run_started("r1");
        if let Event::RunStarted { steps, .. } = &mut e {
            *steps = vec![
                planned("a", 0, true),
                planned("b", 1, true),
                planned("c", 2, false),
            ];
        }
        e
    }

    fn started(step: &str) -> Event {
        Event::StepStarted {
            step: step.into(),
            action: "k8s.cordon_zone".into(),
            attempt: 1,
            with: Some(serde_json::json!({"zone": "z1"})),
            rollback: Some(RollbackRef::Revert),
        }
    }

    #[test]
    fn a_dead_run_owes_the_rollbacks_of_every_started_step_latest_first() {
        let records = vec![
            rec(1, run_started()),
            rec(2, started("a")),
            rec(
                3,
                Event::StepFinished {
                    step: "a".into(),
                    outcome: crate::engine::events::StepOutcome::Succeeded,
                    attempts: 1,
                    duration_ms: 1,
                    output: serde_json::json!({"nodes": ["n1"]}),
                    error: None,
                    error_kind: None,
                },
            ),
            rec(4, started("b")),
            rec(5, started("c")),
        ];
        let p = plan(&records);
        assert!(!p.finished);
        let steps: Vec<&str> = p.owed.iter().map(|o| o.step.as_str()).collect();
        assert_eq!(steps, ["b", "a"], "c has no rollback; b (wave 1) before a");
        assert_eq!(
            p.owed[1].undo,
            Undo::Revert {
                with: serde_json::json!({"zone": "z1"}),
                output: serde_json::json!({"nodes": ["n1"]})
            }
        );
        assert_eq!(
            p.owed[0].why,
            "the drill's process died before rolling it back"
        );
        // A rollback that finished well is never owed again; one that started and died is.
        let mut more = records.clone();
        more.push(rec(
            6,
            Event::RollbackStarted {
                step: "b".into(),
                action: "revert".into(),
                recovered: true,
            },
        ));
        more.push(rec(
            7,
            Event::RollbackFinished {
                step: "b".into(),
                ok: true,
                duration_ms: 1,
                error: None,
            },
        ));
        more.push(rec(
            8,
            Event::RollbackStarted {
                step: "a".into(),
                action: "revert".into(),
                recovered: true,
            },
        ));
        let p = plan(&more);
        let steps: Vec<&str> = p.owed.iter().map(|o| o.step.as_str()).collect();
        assert_eq!(steps, ["a"]);
        assert!(
            p.owed[0].why.contains("never finished"),
            "{}",
            p.owed[0].why
        );
        assert_eq!(p.last_seq, 8);
        more.push(rec(
            9,
            Event::RollbackFinished {
                step: "a".into(),
                ok: true,
                duration_ms: 1,
                error: None,
            },
        ));
        more.push(rec(
            10,
            Event::RunFinished {
                verdict: VerdictKind::Aborted,
                exit_code: 5,
                measurements: vec![],
                reasons: vec![],
            },
        ));
        let p = plan(&more);
        assert!(p.finished && p.owed.is_empty());
    }

    #[test]
    fn secrets_come_back_from_the_environment() {
        let secrets = vec![SecretRef {
            name: "token".into(),
            env: "TOK".into(),
        }];
        let v = serde_json::json!({"url": "http://x/?t=[REDACTED:token]", "n": 1});
        let env = |k: &str| (k == "TOK").then(|| "s3cr3t-value".to_string());
        assert_eq!(
            unmask(&v, &secrets, &env).unwrap(),
            serde_json::json!({"url": "http://x/?t=s3cr3t-value", "n": 1})
        );
        let err = unmask(&v, &secrets, &|_| None).unwrap_err();
        assert!(err.contains("export TOK=..."), "{err}");
    }
}
