//! `firedrill gameday run <playbook>`: validate the playbook and every drill it names (experiment
//! and environment, with the drill's overrides), preflight every drill, then run them one at a
//! time in the playbook's order, each exactly as `firedrill run` would (its own run directory,
//! journal, report and lessons record), passing approval gates and stopping as `stop_on` says;
//! then decide GO or NO-GO and write the game-day directory
//! (`<runs>/gamedays/<id>/gameday.json`, `gameday.md`, `junit.xml`).
//!
//! Drills run one at a time: drills against one environment would collide (one drill per
//! environment), and a game day is read as a sequence. `after:` orders them.

use super::{
    ClockArg, EnvArgs, Failure, GamedayRunArgs, LessonsDir, ReportOutput, RollbackArg, RunArgs,
    RunsDir, VarArgs, internal, invalid, read_file,
};
use crate::exit;
use crate::lang::diag::Diagnostic;
use crate::lang::playbook::{self, Playbook};
use crate::lang::spec::Experiment;
use crate::report::gameday::{
    self, DrillOutcome, DrillResult, GAMEDAY_FILE, GAMEDAY_REPORT, GAMEDAYS_DIR, GameDaySummary,
};
use crate::report::summary::RunSummary;
use crate::report::{journal, lessons};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// A playbook's drill, loaded: its files resolved and its experiment validated.
pub(super) struct LoadedDrill {
    pub experiment_path: PathBuf,
    pub environment_path: Option<PathBuf>,
    pub experiment: Experiment,
}

/// Read and validate a playbook (exit 2 with every problem located); also its text, which
/// [`load_drills`] locates missing files in.
pub(super) fn load_playbook(path: &Path) -> Result<(Playbook, String), Failure> {
    let bytes = read_file(path)?;
    let pb = playbook::parse_playbook(&path.display().to_string(), &bytes)
        .map_err(|d| invalid(&d, std::str::from_utf8(&bytes).ok()))?;
    Ok((pb, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Load every drill's experiment (with its `vars:`) and environment (with its `set:`): every
/// problem of every file, located in its own file; a missing file is located in the playbook.
pub(super) fn load_drills(pb: &Playbook, source: &str) -> Result<Vec<LoadedDrill>, Failure> {
    let mut messages = Vec::new();
    let mut missing = Vec::new();
    let mut out = Vec::new();
    for (i, d) in pb.drills.iter().enumerate() {
        let experiment_path = playbook::resolve_path(&pb.file, &d.experiment.value);
        let env = d.environment.as_ref().or(pb.environment.as_ref());
        let environment_path = env.map(|e| playbook::resolve_path(&pb.file, &e.value));
        let mut ok = true;
        for (p, loc, key) in [
            (Some(&experiment_path), d.experiment.loc, "experiment"),
            (
                environment_path.as_ref(),
                env.map(|e| e.loc).unwrap_or(d.loc),
                "environment",
            ),
        ] {
            if let Some(p) = p
                && !p.is_file()
            {
                ok = false;
                missing.push(Diagnostic {
                    file: pb.file.clone(),
                    loc: Some(loc),
                    path: format!("drills[{i}].{key}"),
                    message: format!(
                        "drill `{}`: {key} file {} {}",
                        d.name.value,
                        p.display(),
                        if p.exists() {
                            "is not a file"
                        } else {
                            "does not exist"
                        }
                    ),
                    help: "paths are relative to the playbook's directory; fix the path".into(),
                });
            }
        }
        if !ok {
            continue;
        }
        let experiment = match super::load_experiment(&experiment_path, &d.vars) {
            Ok(e) => Some(e),
            Err(f) => {
                messages.push(format!(
                    "drill `{}` ({}:{}):\n{}",
                    d.name.value, pb.file, d.loc.line, f.message
                ));
                None
            }
        };
        let env_args = EnvArgs {
            env: environment_path.clone(),
            sets: d.sets.clone(),
        };
        if let Err(f) = super::load_environment(&env_args) {
            messages.push(format!(
                "drill `{}` ({}:{}): its environment:\n{}",
                d.name.value, pb.file, d.loc.line, f.message
            ));
        }
        if let Some(experiment) = experiment {
            out.push(LoadedDrill {
                experiment_path,
                environment_path,
                experiment,
            });
        }
    }
    if !missing.is_empty() {
        messages.insert(0, crate::lang::diag::render_all(&missing, Some(source)));
    }
    if messages.is_empty() {
        Ok(out)
    } else {
        Err(Failure {
            code: exit::INVALID_INPUT,
            message: format!(
                "{}\nerror: the playbook's drills do not validate; nothing ran",
                messages.join("\n")
            ),
        })
    }
}

fn run_args(
    a: &GamedayRunArgs,
    pb: &Playbook,
    i: usize,
    d: &LoadedDrill,
    output: ReportOutput,
    gameday_id: Option<&str>,
) -> RunArgs {
    let pd = &pb.drills[i];
    RunArgs {
        experiment: d.experiment_path.clone(),
        vars: VarArgs {
            vars: pd.vars.clone(),
        },
        env: EnvArgs {
            env: d.environment_path.clone(),
            sets: pd.sets.clone(),
        },
        seed: pd.seed,
        dry_run: false,
        rollback: RollbackArg::Always,
        approve: a.approve,
        confirm: a.confirm.clone(),
        concurrency: 8,
        clock: ClockArg::Auto,
        runs: RunsDir {
            runs_dir: a.runs.runs_dir.clone(),
        },
        lessons: LessonsDir {
            lessons_dir: a.lessons.lessons_dir.clone(),
        },
        output,
        quiet: a.quiet,
        force_unlock: false,
        notify: pb.notify.clone(),
        gameday_id: gameday_id.map(str::to_string),
    }
}

pub(super) fn run(a: GamedayRunArgs) -> Result<i32, Failure> {
    let (pb, source) = load_playbook(&a.playbook)?;
    if a.if_due
        && let Some(why) = not_due(&pb, &a.runs.runs_dir, chrono::Utc::now())?
    {
        println!("{}: not due: {why}; nothing ran", pb.metadata.name);
        return Ok(exit::PASS);
    }
    let drills = load_drills(&pb, &source)?;
    unattended_gates(&a, &pb, &drills)?;
    let text = a.output == ReportOutput::Text;
    // Every drill is preflighted before the first starts: a target missing in drill five stops
    // the game day before drill one injects anything.
    let mut problems = Vec::new();
    for &i in &pb.order {
        let args = run_args(&a, &pb, i, &drills[i], ReportOutput::Json, None);
        if let Err(f) = super::run::preflight_only(&args) {
            problems.push((
                f.code,
                format!("drill `{}`:\n{}", pb.drills[i].name.value, f.message),
            ));
        }
    }
    if let Some(&(code, _)) = problems.first() {
        let all: Vec<String> = problems.into_iter().map(|p| p.1).collect();
        return Err(Failure {
            code,
            message: format!(
                "{}\nerror: the game day did not start; nothing ran",
                all.join("\n")
            ),
        });
    }
    let started = chrono::Utc::now();
    let salt = std::process::id() as u64 ^ started.timestamp_subsec_nanos() as u64;
    let id = journal::new_run_id(&pb.metadata.name, started, salt);
    let dir = a.runs.runs_dir.join(GAMEDAYS_DIR).join(&id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| internal(format!("cannot create {}: {e}", dir.display())))?;
    let mut g = GameDaySummary {
        id: id.clone(),
        playbook: pb.metadata.name.clone(),
        title: pb.metadata.title.clone(),
        owner: pb.metadata.owner.clone(),
        file: pb.file.clone(),
        started,
        finished: None,
        pre_approved: a.approve,
        drills: pb
            .drills
            .iter()
            .zip(&drills)
            .map(|(pd, d)| DrillResult {
                name: pd.name.value.clone(),
                file: d.experiment_path.display().to_string(),
                experiment: d.experiment.metadata.name.clone(),
                environment: String::new(),
                outcome: DrillOutcome::Skipped,
                run_id: None,
                verdict: None,
                exit_code: None,
                reasons: vec!["not run yet".into()],
                measurements: Vec::new(),
                sets: pd.sets.clone(),
                vars: pd.vars.clone(),
                action_items: Vec::new(),
                started: None,
                finished: None,
                span_ms: 0,
                clock: String::new(),
                root_cause: None,
                went_well: Vec::new(),
                to_improve: Vec::new(),
            })
            .collect(),
        decision: None,
        controls: Vec::new(),
        score: None,
        notifications: None,
        exit_code: None,
    };
    save(&dir, &g)?;
    if text {
        eprintln!(
            "game day {} ({} drills): {}",
            id,
            pb.drills.len(),
            dir.display()
        );
    }
    // The playbook's sinks hear of the game day itself (its drills' events reach them through
    // each drill's own notifier). Their variables were checked by every drill's preflight.
    let notifier = crate::engine::notify::resolve(&pb.notify, &|k| std::env::var(k).ok())
        .ok()
        .and_then(crate::engine::notify::Notifier::start);
    let notify = |kind, title: String| {
        if let Some(n) = &notifier {
            n.send(crate::engine::notify::Notification {
                kind,
                title,
                run_id: None,
                gameday_id: Some(id.clone()),
                experiment: None,
                environment: None,
                verdict: None,
                at: chrono::Utc::now(),
                id: String::new(),
            });
        }
    };
    notify(
        crate::lang::notify::EventKind::GamedayStarted,
        format!(
            "game day `{}` started: {} drill(s)",
            pb.metadata.name,
            pb.drills.len()
        ),
    );
    let mut runs: Vec<Option<RunSummary>> = vec![None; pb.drills.len()];
    let mut stopped: Option<String> = None;
    for &i in &pb.order {
        let pd = &pb.drills[i];
        let name = pd.name.value.clone();
        if let Some(why) = &stopped {
            g.drills[i].reasons = vec![why.clone()];
            continue;
        }
        if let Some(question) = &pd.approval {
            match approve(&a, &name, question) {
                Ok(()) => {}
                Err(why) => {
                    g.drills[i].outcome = DrillOutcome::NotApproved;
                    g.drills[i].reasons = vec![why];
                    stopped = Some(format!(
                        "the game day stopped: drill `{name}` was not approved"
                    ));
                    save(&dir, &g)?;
                    continue;
                }
            }
        }
        if text {
            eprintln!(
                "\n== drill {}/{}: {name} ({}) ==",
                g.drills
                    .iter()
                    .filter(|d| d.outcome != DrillOutcome::Skipped || d.run_id.is_some())
                    .count()
                    + 1,
                pb.drills.len(),
                drills[i].experiment_path.display()
            );
        }
        let args = run_args(&a, &pb, i, &drills[i], ReportOutput::Json, Some(&id));
        let drill_started = chrono::Utc::now();
        match super::run::execute(&args) {
            Ok((code, _dir, summary)) => {
                let record = lessons::LessonsRecord::from_summary(&summary);
                let mut r = gameday::drill_result(
                    &name,
                    &g.drills[i].file,
                    &summary,
                    &record,
                    &pd.sets,
                    &pd.vars,
                );
                r.exit_code = Some(code);
                r.started = Some(drill_started);
                r.finished = Some(chrono::Utc::now());
                let verdict = r.verdict;
                if text {
                    eprintln!("   {name}: {} (run {})", r.label(), summary.run_id);
                }
                g.drills[i] = r;
                if !summary.interrupts.is_empty() {
                    stopped = Some(format!(
                        "the game day stopped: drill `{name}` was interrupted"
                    ));
                } else if let Some(v) = verdict
                    && stops(&pd.stop_on, v)
                {
                    stopped = Some(format!(
                        "the game day stopped after drill `{name}`: {} (stop_on: {})",
                        crate::report::summary::verdict_label(v),
                        pd.stop_on.names().join(", ")
                    ));
                } else if verdict.is_none() {
                    stopped = Some(format!(
                        "the game day stopped: drill `{name}` did not finish"
                    ));
                }
                runs[i] = Some(summary);
            }
            Err(f) => {
                let msg = f.message.trim().trim_start_matches("error: ").to_string();
                if text {
                    eprintln!("   {name}: did not start: {msg}");
                }
                g.drills[i].outcome = DrillOutcome::DidNotStart;
                g.drills[i].exit_code = Some(f.code);
                g.drills[i].started = Some(drill_started);
                g.drills[i].reasons = vec![msg];
                stopped = Some(format!(
                    "the game day stopped: drill `{name}` did not start"
                ));
            }
        }
        save(&dir, &g)?;
    }
    let finished = chrono::Utc::now();
    g.finished = Some(finished);
    g.controls = super::evidence::control_statuses(&pb, &drills, &a.runs.runs_dir, finished)?;
    let decision = gameday::decide(&pb.go_no_go, &g.drills, &g.controls);
    let code = gameday::exit_code(&decision, &g.drills);
    g.decision = Some(decision);
    g.score = Some(gameday::score(&g.drills));
    g.exit_code = Some(code);
    let history = history(&a.runs.runs_dir, &pb.metadata.name, &id);
    if let Some(d) = &g.decision {
        notify(
            crate::lang::notify::EventKind::GamedayFinished,
            format!(
                "game day `{}`: {} (resilience score {}/100){}",
                pb.metadata.name,
                if d.go { "GO" } else { "NO-GO" },
                g.score.as_ref().map(|s| s.value).unwrap_or(0),
                d.reasons
                    .first()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        );
    }
    if let Some(n) = notifier.and_then(|n| std::sync::Arc::try_unwrap(n).ok()) {
        let (deliveries, dropped) = n.finish();
        let _ = std::fs::write(
            dir.join(crate::engine::notify::DELIVERIES_FILE),
            crate::engine::notify::to_jsonl(&deliveries),
        );
        g.notifications = crate::engine::notify::describe(&deliveries, dropped);
    }
    save(&dir, &g)?;
    let junit = crate::report::junit::render_gameday(&g, &runs);
    std::fs::write(dir.join("junit.xml"), &junit).map_err(|e| {
        internal(format!(
            "cannot write {}: {e}",
            dir.join("junit.xml").display()
        ))
    })?;
    std::fs::write(
        dir.join(GAMEDAY_REPORT),
        gameday::render_markdown(&g, &history),
    )
    .map_err(|e| internal(format!("cannot write the game-day report: {e}")))?;
    match a.output {
        ReportOutput::Json => println!(
            "{}",
            serde_json::to_string_pretty(&g).map_err(|e| internal(e.to_string()))?
        ),
        ReportOutput::Junit => print!("{junit}"),
        ReportOutput::Text => print_decision(&g, &dir),
    }
    Ok(code)
}

/// The drills that need an operator's yes: a playbook gate, or an `approval` step (or rollback)
/// in the drill's experiment.
fn gated(pb: &Playbook, drills: &[LoadedDrill]) -> Vec<String> {
    let approval = |call: &str| call == "approval";
    pb.drills
        .iter()
        .zip(drills)
        .filter(|(pd, d)| {
            pd.approval.is_some()
                || d.experiment.steps.iter().any(|s| {
                    approval(&s.action.value)
                        || matches!(&s.rollback, crate::lang::spec::RollbackSpec::Action { call, .. } if approval(call.name()))
                })
        })
        .map(|(pd, _)| pd.name.value.clone())
        .collect()
}

/// Unattended, without `--approve`, a gate can only refuse: say so before the first drill
/// rather than after the drills before it have run (exit 2, nothing ran).
fn unattended_gates(
    a: &GamedayRunArgs,
    pb: &Playbook,
    drills: &[LoadedDrill],
) -> Result<(), Failure> {
    if a.approve || (std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Ok(());
    }
    let gated = gated(pb, drills);
    if gated.is_empty() {
        return Ok(());
    }
    Err(Failure {
        code: exit::INVALID_INPUT,
        message: format!(
            "error: {}: drill(s) {} need an approval, and no terminal is here to ask; nothing ran\n  = help: re-run with --approve to pass the approvals unattended, or run the game day from a terminal",
            pb.file,
            gated
                .iter()
                .map(|g| format!("`{g}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// `--if-due`: why the game day is not due at `now`, if it is not.
fn not_due(
    pb: &Playbook,
    runs_dir: &Path,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<String>, Failure> {
    let Some(s) = &pb.schedule else {
        return Err(Failure {
            code: exit::INVALID_INPUT,
            message: format!(
                "error: {}: --if-due needs the playbook's `schedule:`, and it has none\n  = help: add a schedule, or drop --if-due",
                pb.file
            ),
        });
    };
    if crate::engine::timetable::paused_path(runs_dir, &pb.metadata.name).exists() {
        return Ok(Some(
            "the schedule is paused (`firedrill schedule resume`)".into(),
        ));
    }
    let Some(prev) = s.previous(now) else {
        return Ok(Some(format!(
            "`{}` has no scheduled time before now",
            s.cron
        )));
    };
    let late = now - prev;
    let deadline = chrono::Duration::from_std(s.starting_deadline).unwrap_or(chrono::Duration::MAX);
    if late > deadline {
        return Ok(Some(format!(
            "its newest scheduled time ({}) was {} ago, past the starting deadline of {}",
            prev.format("%Y-%m-%d %H:%M UTC"),
            crate::lang::duration::format(late.to_std().unwrap_or_default()),
            crate::lang::duration::format(s.starting_deadline)
        )));
    }
    Ok(s.refusal(prev)
        .map(|why| format!("{} is {why}", prev.format("%Y-%m-%d %H:%M UTC"))))
}

fn stops(s: &playbook::StopOn, v: crate::engine::events::VerdictKind) -> bool {
    use crate::engine::events::VerdictKind as V;
    match v {
        V::Pass => false,
        V::NotSteady => s.not_steady,
        V::Missed => s.missed,
        V::Aborted => s.aborted,
        V::RollbackFailed => s.rollback_failed,
    }
}

/// An approval gate: `--approve` passes it; on a terminal the operator answers; unattended it
/// fails closed.
fn approve(a: &GamedayRunArgs, name: &str, question: &str) -> Result<(), String> {
    if a.approve {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(format!(
            "approval gate before `{name}` (\"{question}\"): no terminal to ask and not pre-approved; re-run with --approve to pass the gates unattended"
        ));
    }
    match super::run::ask_operator(&format!(
        "Game day approval gate before drill `{name}`: {question}"
    )) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "approval gate before `{name}` (\"{question}\"): refused by the operator"
        )),
        Err(e) => Err(format!(
            "approval gate before `{name}`: could not ask ({e})"
        )),
    }
}

/// Write the game-day record (atomically: a crash leaves the previous one whole).
fn save(dir: &Path, g: &GameDaySummary) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(g).map_err(|e| internal(e.to_string()))?;
    let tmp = dir.join(format!("{GAMEDAY_FILE}.tmp"));
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, dir.join(GAMEDAY_FILE)))
        .map_err(|e| {
            internal(format!(
                "cannot write {}: {e}",
                dir.join(GAMEDAY_FILE).display()
            ))
        })
}

/// Earlier finished game days of the same playbook, newest first (unreadable ones are skipped).
fn history(runs_dir: &Path, playbook: &str, this: &str) -> Vec<GameDaySummary> {
    let Ok(entries) = std::fs::read_dir(runs_dir.join(GAMEDAYS_DIR)) else {
        return Vec::new();
    };
    let mut out: Vec<GameDaySummary> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy() != this)
        .filter_map(|e| std::fs::read(e.path().join(GAMEDAY_FILE)).ok())
        .filter_map(|b| serde_json::from_slice::<GameDaySummary>(&b).ok())
        .filter(|g| g.playbook == playbook && g.finished.is_some())
        .collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.started));
    out
}

fn print_decision(g: &GameDaySummary, dir: &Path) {
    let decision = g.decision.as_ref();
    println!(
        "\ngame day {} {}: {}",
        g.playbook,
        g.id,
        match decision {
            Some(d) if d.go => "GO",
            Some(_) => "NO-GO",
            None => "UNFINISHED",
        }
    );
    for d in &g.drills {
        let rto = d
            .measurement(crate::lang::playbook::Objective::Rto)
            .and_then(|m| m.measured_ms)
            .map(|ms| {
                format!(
                    "  RTO {}",
                    crate::lang::duration::format(std::time::Duration::from_millis(ms))
                )
            })
            .unwrap_or_default();
        println!("  {:<24} {:<15}{rto}", d.name, d.label());
    }
    if let Some(d) = decision {
        for r in &d.reasons {
            println!("  - {r}");
        }
    }
    if let Some(s) = &g.score {
        println!("  resilience score {}/100", s.value);
    }
    println!("  report: {}", dir.join(GAMEDAY_REPORT).display());
}
