//! `firedrill recover`: run the rollbacks a run still owes, from its journal alone, once each,
//! journaled in the same run; then finish the run (a dead one) and rewrite its summary, report
//! and lessons record. See [`crate::engine::recover`] for what is owed and why it is safe to run
//! again after recover itself is killed.

use super::{Failure, RecoverArgs, internal};
use crate::engine::events::{Event, Record, VerdictKind};
use crate::engine::recover::{self, Owed, RecoverPlan};
use crate::exit;
use crate::lang::environment::{self, Backend, Environment};
use crate::report::summary::RunSummary;
use crate::report::{journal, lock};
use std::path::Path;

pub(super) fn recover(a: RecoverArgs) -> Result<i32, Failure> {
    let bad = |e: journal::JournalError| Failure {
        code: exit::INVALID_INPUT,
        message: format!("error: {e}"),
    };
    let runs = match &a.run {
        Some(spec) => vec![journal::resolve_run(&a.runs.runs_dir, spec).map_err(bad)?],
        None => journal::list_runs(&a.runs.runs_dir).map_err(bad)?,
    };
    let mut code = exit::PASS;
    let mut any = false;
    for entry in runs {
        let path = entry.dir.join(journal::JOURNAL_FILE);
        if !path.is_file() {
            continue;
        }
        let read = journal::read_journal(&path).map_err(bad)?;
        let plan = recover::plan(&read.records);
        if plan.owed.is_empty() {
            if a.run.is_some() {
                println!(
                    "{}: nothing to recover: {}",
                    plan.run_id,
                    if plan.finished {
                        "the run finished and owes no rollback"
                    } else {
                        "no started step owes a rollback"
                    }
                );
            }
            continue;
        }
        any = true;
        let c = recover_run(&a, &entry.dir, plan)?;
        code = code.max(c);
    }
    if !any && a.all {
        println!(
            "nothing to recover: no run in {} owes a rollback",
            a.runs.runs_dir.display()
        );
    }
    Ok(code)
}

/// Why an owed rollback cannot run here, if it cannot.
fn blocked(env: &Environment, o: &Owed) -> Option<String> {
    let name = match &o.undo {
        recover::Undo::Unknown => return Some(o.describe()),
        recover::Undo::Revert { .. } => o.action.clone(),
        recover::Undo::Action { action, .. } => action.clone(),
    };
    let generic = name == "http" || name == "command";
    (!generic && env.backend_for(&name) == Backend::Sim).then(|| {
        "nothing to undo: the simulated estate lived in the drill's process, and its change ended with it".to_string()
    })
}

fn recover_run(a: &RecoverArgs, run_dir: &Path, plan: RecoverPlan) -> Result<i32, Failure> {
    let env = match &plan.environment_doc {
        Some(doc) if doc.file != environment::BUILTIN_NAME => {
            environment::parse_environment(&doc.file, doc.source.as_bytes(), &doc.sets)
        }
        Some(doc) => environment::builtin(&doc.sets),
        None => environment::builtin(&[]),
    }
    .map_err(|d| Failure {
        code: exit::INVALID_INPUT,
        message: format!(
            "error: run {}: its journaled environment does not load any more: {}",
            plan.run_id,
            d.first().map(|d| d.message.clone()).unwrap_or_default()
        ),
    })?;
    println!(
        "{}: {} owed rollback(s), environment `{}`{}",
        plan.run_id,
        plan.owed.len(),
        env.name,
        if plan.finished {
            ""
        } else {
            " (the drill's process died)"
        }
    );
    let mut runnable = Vec::new();
    for o in &plan.owed {
        match blocked(&env, o) {
            Some(why) => println!("  - {}: {why}", o.step),
            None => {
                println!("  - {}: {} ({})", o.step, o.describe(), o.why);
                runnable.push(o.clone());
            }
        }
    }
    if a.dry_run {
        println!("  dry run: nothing was run and nothing was written");
        return Ok(exit::PASS);
    }
    // The environment's lock: a live drill on it (this run, still running, included) stops us;
    // a dead one's lock (this run's, typically) is taken over.
    let me = lock::Holder::this_process(&plan.run_id, &plan.experiment, &env.name);
    let _held = match lock::acquire(&a.runs.runs_dir, &me, false) {
        Ok((l, _)) => l,
        Err(lock::LockError::Stale { .. }) | Err(lock::LockError::Unreadable { .. }) => {
            lock::acquire(&a.runs.runs_dir, &me, true)
                .map_err(|e| locked(&e))?
                .0
        }
        Err(e) => return Err(locked(&e)),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| internal(format!("cannot start the runtime: {e}")))?;
    let provider = if runnable.is_empty() {
        None
    } else {
        Some(
            runtime
                .block_on(crate::backend::router::connect(
                    &env,
                    &crate::backend::router::ConnectOptions { seed: None },
                ))
                .map_err(|d| Failure {
                    code: exit::PREFLIGHT,
                    message: format!(
                        "error: run {}: cannot connect to environment `{}`: {}",
                        plan.run_id,
                        env.name,
                        d.first().map(|d| d.message.clone()).unwrap_or_default()
                    ),
                })?,
        )
    };
    let (mut j, mut seq) =
        journal::Journal::reopen(run_dir).map_err(|e| internal(e.to_string()))?;
    let started = plan.started.unwrap_or_else(chrono::Utc::now);
    let mut write = |event: Event| -> Result<(), Failure> {
        seq += 1;
        let now = chrono::Utc::now();
        let rec = Record {
            seq,
            at: now,
            elapsed_ms: (now - started).num_milliseconds().max(0) as u64,
            event,
        };
        j.append(&rec).map_err(|e| internal(e.to_string()))
    };
    let redactor = crate::lang::secrets::Redactor::new(
        &plan
            .secrets
            .iter()
            .map(|s| crate::lang::secrets::Secret {
                name: s.name.clone(),
                env: s.env.clone(),
                value: std::env::var(&s.env)
                    .ok()
                    .map(crate::lang::secrets::SecretValue::new),
                loc: crate::lang::spec::TOP,
            })
            .collect::<Vec<_>>(),
    );
    let env_lookup = |k: &str| std::env::var(k).ok();
    let mut failed = 0;
    for o in &runnable {
        write(Event::RollbackStarted {
            step: o.step.clone(),
            action: o.rollback_action(),
            recovered: true,
        })?;
        let t0 = std::time::Instant::now();
        let res = runtime.block_on(recover::run_one(
            o,
            &plan.secrets,
            &env_lookup,
            provider.as_ref().expect("connected when something runs"),
            &redactor,
        ));
        let error = res
            .as_ref()
            .err()
            .map(|e| redactor.redact(&format!("{e} ({})", e.kind)).into_owned());
        match &error {
            None => println!("  ok      {}", o.step),
            Some(e) => {
                failed += 1;
                println!("  FAILED  {}: {e}", o.step)
            }
        }
        write(Event::RollbackFinished {
            step: o.step.clone(),
            ok: error.is_none(),
            duration_ms: t0.elapsed().as_millis() as u64,
            error,
        })?;
    }
    if !plan.finished {
        let verdict = if failed > 0 {
            VerdictKind::RollbackFailed
        } else {
            VerdictKind::Aborted
        };
        let last = plan
            .last_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        write(Event::RunFinished {
            verdict,
            exit_code: exit::for_verdict(verdict),
            measurements: Vec::new(),
            reasons: vec![format!(
                "the drill's process died (its last event: {last}); `firedrill recover` ran {} owed rollback(s){}",
                runnable.len(),
                if failed > 0 {
                    format!(", {failed} failed")
                } else {
                    String::new()
                }
            )],
        })?;
    }
    j.finish().map_err(|e| internal(e.to_string()))?;
    let read = journal::read_journal(&run_dir.join(journal::JOURNAL_FILE))
        .map_err(|e| internal(e.to_string()))?;
    super::run::write_outputs(
        RunSummary::from_records(&read.records),
        run_dir,
        &a.lessons.lessons_dir,
        &plan.experiment,
        &plan.run_id,
        true,
    )?;
    println!(
        "  {} rollback(s) ran, {failed} failed; report: {}",
        runnable.len(),
        run_dir.join("report.md").display()
    );
    Ok(if failed > 0 {
        exit::ROLLBACK_FAILED
    } else {
        exit::PASS
    })
}

fn locked(e: &lock::LockError) -> Failure {
    Failure {
        code: exit::LOCKED,
        message: format!(
            "error: {e}; nothing ran\n  = help: a drill that is still running rolls back by itself (Ctrl-C stops it and rolls back); recover only runs that are dead"
        ),
    }
}
