//! `firedrill run`: load and validate the drill, connect and preflight its backends, then either
//! print what it would do (`--dry-run`) or run it through [`Drill`] and write its summary, report
//! and lessons-learned record; print the verdict.

use super::progress::{JournalSink, Progress};
use super::{
    ClockArg, Failure, ReportOutput, RollbackArg, RunArgs, internal, invalid, load_environment,
    load_experiment, read_file,
};
use crate::backend::router::Router;
use crate::backend::{Call, Provider};
use crate::engine::clock::RunClock;
use crate::engine::drill::Drill;
use crate::engine::executor::{self, RollbackPolicy, Sink};
use crate::exit;
use crate::lang::diag::Diagnostic;
use crate::lang::environment::{self, Environment};
use crate::lang::plan::Plan;
use crate::lang::spec::{self, Experiment};
use crate::report::journal::{self, Journal};
use crate::report::summary::{RunSummary, SummarySink};
use crate::report::{lessons, lock, markdown};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A drill ready to run: loaded, validated, its backends connected and preflighted.
struct Prepared {
    exp: Experiment,
    env: Environment,
    plan: Plan,
    virtual_clock: bool,
    runtime: tokio::runtime::Runtime,
    provider: Router,
    /// The simulated estate's seed, as the run reports it.
    seed: u64,
    /// Whether the drill acts outside this process (a real backend, or `command`/`http`/
    /// `approval` steps): such drills take the environment's lock.
    shared_target: bool,
    /// Notification sinks (the environment's and the game day's), their secrets read.
    notify: Vec<crate::engine::notify::Resolved>,
}

pub(super) fn run(a: RunArgs) -> Result<i32, Failure> {
    if a.dry_run {
        let p = prepare(&a)?;
        return dry_run(&p, &a.experiment);
    }
    let wall_started = std::time::Instant::now();
    let (code, run_dir, summary) = execute(&a)?;
    match a.output {
        ReportOutput::Json => println!(
            "{}",
            serde_json::to_string_pretty(&summary).map_err(|e| internal(e.to_string()))?
        ),
        ReportOutput::Junit => print!("{}", crate::report::junit::render_run(&summary)),
        ReportOutput::Text => print_verdict(&summary, &run_dir, wall_started.elapsed()),
    }
    Ok(code)
}

/// Run one drill (not a dry run) and write its outputs: the drill's exit code, its run
/// directory and its summary. `gameday run` calls this once per drill.
pub(super) fn execute(a: &RunArgs) -> Result<(i32, PathBuf, RunSummary), Failure> {
    let p = prepare(a)?;
    let Prepared {
        exp,
        env,
        virtual_clock,
        runtime,
        provider,
        seed,
        shared_target,
        notify,
        ..
    } = p;
    let exp = Arc::new(exp);
    let target = Target {
        name: env.name.clone(),
        doc: crate::engine::events::EnvironmentDoc {
            file: env.file.clone(),
            // The built-in estate is in the binary: its name is enough.
            source: if env.file == environment::BUILTIN_NAME {
                String::new()
            } else {
                env.source.clone()
            },
            sets: a.env.sets.clone(),
        },
        shared: shared_target,
    };
    let notifier = crate::engine::notify::Notifier::start(notify);
    let result = runtime.block_on(drill(
        a,
        exp,
        provider,
        target,
        virtual_clock,
        seed,
        notifier.clone(),
    ));
    // Deliveries are best effort and never change the verdict; they are kept beside the journal.
    if let Some(n) = notifier.and_then(|n| Arc::try_unwrap(n).ok()) {
        let (deliveries, dropped) = n.finish();
        if let Ok((_, run_dir, _)) = &result {
            let _ = std::fs::write(
                run_dir.join(crate::engine::notify::DELIVERIES_FILE),
                crate::engine::notify::to_jsonl(&deliveries),
            );
        }
        if let Some(line) = crate::engine::notify::describe(&deliveries, dropped)
            && a.output == ReportOutput::Text
        {
            eprintln!("{line}");
        }
    }
    result
}

/// Load, validate, connect and preflight a drill, then let it go: what `gameday run` checks of
/// every drill before the first one starts.
pub(super) fn preflight_only(a: &RunArgs) -> Result<(), Failure> {
    prepare(a).map(drop)
}

/// Load and validate the experiment and environment, choose the clock, start the runtime,
/// connect and preflight.
fn prepare(a: &RunArgs) -> Result<Prepared, Failure> {
    let (exp, env) = load(a)?;
    let plan = crate::lang::plan::plan(&exp);
    let calls = crate::backend::router::calls_of(&exp);
    // Anything not served by the simulated estate happens in real time.
    let remote = calls
        .iter()
        .any(|c| env.backend_for(c.name()) != environment::Backend::Sim);
    let virtual_clock = choose_clock(a.clock, &exp, remote)?;
    let shared_target = remote || needs_wall_clock(&exp);
    missing_secrets(&exp, &env)?;
    let mut sinks = env.notify.clone();
    sinks.extend(a.notify.iter().cloned());
    let notify = crate::engine::notify::resolve(&sinks, &|k| std::env::var(k).ok()).map_err(|problems| {
        preflight_failure(
            &env.name,
            problems,
            "export the variables the `notify:` sinks name (their secrets are read from the environment, never from files)",
        )
    })?;
    let runtime = start_runtime(virtual_clock)?;
    let redactor = crate::lang::secrets::Redactor::new(&exp.secrets);
    let (provider, seed) = connect(&runtime, &env, a.seed, &calls).map_err(|mut f| {
        redactor.redact_string(&mut f.message);
        f
    })?;
    Ok(Prepared {
        exp,
        env,
        plan,
        virtual_clock,
        runtime,
        provider,
        seed,
        shared_target,
        notify,
    })
}

/// The experiment and environment; a protected environment must be confirmed by name.
fn load(a: &RunArgs) -> Result<(Experiment, Environment), Failure> {
    let exp = load_experiment(&a.experiment, &a.vars.vars)?;
    let env = load_environment(&a.env)?;
    if env.protected && a.confirm.as_deref() != Some(env.name.as_str()) {
        return Err(Failure {
            code: exit::INVALID_INPUT,
            message: format!(
                "error: environment `{}` is protected\n  = help: re-run with `--confirm {}` to confirm a drill against it",
                env.name, env.name
            ),
        });
    }
    Ok((exp, env))
}

/// Every secret must have its value before anything connects: an unset environment variable is
/// a preflight problem (exit 7), named with the variable to set.
fn missing_secrets(exp: &Experiment, env: &Environment) -> Result<(), Failure> {
    let missing: Vec<_> = exp.secrets.iter().filter(|s| s.value.is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let lines = missing
        .iter()
        .map(|s| {
            format!(
                "secret `{}` ({}:{}:{}): the environment variable {} is not set (or empty)",
                s.name, exp.file, s.loc.line, s.loc.col, s.env
            )
        })
        .collect();
    let help = format!(
        "export {} before running; secrets are read from the environment at run time and never written to the run's files",
        missing
            .iter()
            .map(|s| format!("{}=...", s.env))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Err(preflight_failure(&env.name, lines, &help))
}

/// Preflight found problems (exit 7): each on a line, then what to do.
fn preflight_failure(env: &str, lines: Vec<String>, help: &str) -> Failure {
    let mut message = format!(
        "error: preflight found {} problem(s) in environment `{env}`; nothing ran\n",
        lines.len()
    );
    for l in lines {
        message.push_str(&format!("  - {l}\n"));
    }
    message.push_str(&format!("  = help: {help}"));
    Failure {
        code: exit::PREFLIGHT,
        message,
    }
}

/// Whether a drill needs real time (it talks to something outside the simulated estate).
fn needs_wall_clock(exp: &Experiment) -> bool {
    let generic = |k: &str| k == "http" || k == "command" || k == "approval";
    exp.probes.iter().any(|p| generic(p.call.name())) || exp.steps.iter().any(|s| {
        generic(&s.action.value)
            || matches!(&s.rollback, spec::RollbackSpec::Action { call, .. } if generic(call.name()))
    })
}

/// Whether the run follows virtual time: `--clock auto` chooses it unless the drill needs real
/// time; `--clock virtual` refuses a drill that does.
fn choose_clock(clock: ClockArg, exp: &Experiment, remote: bool) -> Result<bool, Failure> {
    Ok(match clock {
        ClockArg::Virtual => {
            if needs_wall_clock(exp) || remote {
                return Err(Failure { code: exit::INVALID_INPUT, message: "error: --clock virtual: this drill uses http, command or approval steps, or a real backend, which need real time\n  = help: use --clock wall (or auto)".into() });
            }
            true
        }
        ClockArg::Wall => false,
        ClockArg::Auto => !needs_wall_clock(exp) && !remote,
    })
}

/// A paused current-thread runtime for virtual time, else a two-worker one.
fn start_runtime(virtual_clock: bool) -> Result<tokio::runtime::Runtime, Failure> {
    let runtime = if virtual_clock {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }
    .map_err(|e| internal(format!("cannot start the runtime: {e}")))?;
    Ok(runtime)
}

/// Connect every backend the environment names and preflight the drill's calls on them: nothing
/// acts before this passes. Also the seed the run reports.
fn connect(
    runtime: &tokio::runtime::Runtime,
    env: &Environment,
    seed: Option<u64>,
    calls: &[Call],
) -> Result<(Router, u64), Failure> {
    let connect_opts = crate::backend::router::ConnectOptions { seed };
    let provider = runtime
        .block_on(crate::backend::router::connect(env, &connect_opts))
        .map_err(|d| invalid(&d, Some(&env.source)))?;
    let seed = match seed {
        Some(s) => s,
        None => env
            .settings(environment::Backend::Sim)
            .get("seed")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(crate::sim::model::SimParams::default().seed),
    };
    let problems = runtime.block_on(provider.preflight(calls));
    if !problems.is_empty() {
        let lines = problems
            .iter()
            .map(|p| format!("{}: {} ({})", p.owner, p.error, p.error.kind))
            .collect();
        return Err(preflight_failure(
            &env.name,
            lines,
            "fix the targets or the environment's access, then re-run (`--dry-run` repeats this check)",
        ));
    }
    Ok((provider, seed))
}

/// `--dry-run`: resolve every step's target and print what would be done; touch nothing, write
/// nothing.
fn dry_run(p: &Prepared, experiment: &Path) -> Result<i32, Failure> {
    let Prepared {
        exp,
        env,
        plan,
        runtime,
        provider,
        seed,
        ..
    } = p;
    let redactor = crate::lang::secrets::Redactor::new(&exp.secrets);
    let mut out = crate::lang::plan::render(exp, plan);
    let backends: Vec<&str> = env.backends().iter().map(|b| b.name()).collect();
    out.push_str(&format!(
        "\nEnvironment: {} (backend {}, seed {seed})\n\nWould do:\n",
        env.name,
        backends.join(" + ")
    ));
    let mut problems = Vec::new();
    for &i in &plan.order {
        let s = &exp.steps[i];
        let what = if crate::lang::vocab::action(&s.action.value).is_some_and(|k| k.builtin) {
            Ok(format!("{} {}", s.action.value, s.with))
        } else {
            runtime.block_on(provider.describe(&s.call))
        };
        match what {
            Ok(w) => out.push_str(&format!("  {:<24} {w}\n", s.id.value)),
            Err(e) => problems.push(Diagnostic {
                file: exp.file.clone(),
                loc: Some(s.action.loc),
                path: format!("steps[{i}]"),
                message: redactor
                    .redact(&format!("step `{}`: {e}", s.id.value))
                    .into_owned(),
                help: "fix the step's target so it exists in the environment".into(),
            }),
        }
    }
    if let Some(crate::lang::spec::DataLoss::Canary { canary: c, .. }) =
        exp.recovery.as_ref().and_then(|r| r.data_loss.as_ref())
    {
        out.push_str(&format!(
            "  {:<24} from the first step until RPO is measured: a row every {} into `{}` on {} (created if missing), read back on {}; this run's rows {} afterwards\n",
            "(data-loss canary)",
            crate::lang::duration::format(c.interval),
            c.table.display(),
            c.write.server(),
            c.read.server(),
            if c.keep { "kept" } else { "removed" }
        ));
    }
    if !problems.is_empty() {
        return Err(invalid(
            &problems,
            std::str::from_utf8(&read_file(experiment)?).ok(),
        ));
    }
    out.push_str("\nDry run: nothing was touched and nothing was written.\n");
    print!("{}", redactor.redact(&out));
    Ok(exit::PASS)
}

/// The environment a drill runs against, as the run records it.
struct Target {
    name: String,
    doc: crate::engine::events::EnvironmentDoc,
    /// Whether the drill acts outside this process (it takes the environment's lock).
    shared: bool,
}

/// Run the drill through [`Drill`] with the journal, memory and progress sinks, the interrupt
/// watcher and the operator's approvals, then write its summary, report and lessons record.
async fn drill(
    a: &RunArgs,
    exp: Arc<Experiment>,
    provider: Router,
    target: Target,
    virtual_clock: bool,
    seed: u64,
    notifier: Option<Arc<crate::engine::notify::Notifier>>,
) -> Result<(i32, PathBuf, RunSummary), Failure> {
    let env_name = target.name.clone();
    let quiet = a.quiet || a.output != ReportOutput::Text;
    let rollback = match a.rollback {
        RollbackArg::Always => RollbackPolicy::Always,
        RollbackArg::OnFailure => RollbackPolicy::OnFailure,
        RollbackArg::Never => RollbackPolicy::Never,
    };
    let clock = RunClock::start_now();
    let salt = std::process::id() as u64 ^ clock.start_wall.timestamp_subsec_nanos() as u64;
    let run_id = journal::new_run_id(&exp.metadata.name, clock.start_wall, salt);
    let run_dir = a.runs.runs_dir.join(&run_id);
    // One drill per environment, for drills that act outside this process.
    let _lock = if target.shared {
        Some(lock_environment(a, &run_id, &exp.metadata.name, &env_name)?)
    } else {
        None
    };
    let journal = Journal::create(&run_dir)
        .map_err(|e| internal(format!("cannot create the run journal: {e}")))?;
    // The summary is folded as the drill goes: nothing here keeps the records.
    let folded = SummarySink::default();
    let mut sinks: Vec<Box<dyn Sink>> =
        vec![Box::new(JournalSink(journal)), Box::new(folded.clone())];
    if !quiet {
        sinks.push(Box::new(Progress::new(std::io::stderr().is_terminal())));
    }
    if let Some(n) = notifier {
        sinks.push(Box::new(crate::engine::notify::DrillEvents::new(
            n,
            a.gameday_id.clone(),
        )));
    }
    let (int_tx, int_rx) = tokio::sync::watch::channel(0u32);
    // The listeners are made once: a signal between two waits is never lost.
    let mut signals = Signals::new();
    tokio::spawn(async move {
        loop {
            if signals.next().await.is_err() {
                return;
            }
            int_tx.send_modify(|c| *c += 1);
        }
    });
    let approver: Option<executor::Approver> = (std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal())
    .then(|| Arc::new(ask_operator) as executor::Approver);
    let provider = Arc::new(provider) as Arc<dyn crate::backend::Provider>;
    let (outcome, emitter) = Drill::new(exp.clone(), provider)
        .run_id(run_id.clone())
        .concurrency(a.concurrency as usize)
        .rollback(rollback)
        .approve(a.approve)
        .approver(approver)
        .environment(env_name)
        .environment_doc(Some(target.doc))
        .overrides(crate::engine::events::Overrides {
            vars: a.vars.vars.clone(),
            seed: a.seed,
        })
        .clock_kind(if virtual_clock { "virtual" } else { "wall" })
        .seed(seed)
        .clock(clock)
        .sinks(sinks)
        .interrupts(int_rx)
        .run_with_emitter()
        .await;
    let errors = emitter.errors();
    let summary = write_outputs(
        folded.take(),
        &run_dir,
        &a.lessons.lessons_dir,
        &exp.metadata.name,
        &run_id,
        false,
    )?;
    if !errors.is_empty() {
        return Err(internal(format!(
            "the journal could not be written: {}",
            errors.join("; ")
        )));
    }
    Ok((outcome.exit_code, run_dir, summary))
}

/// Take the environment's lock, or say who holds it (exit 8).
fn lock_environment(
    a: &RunArgs,
    run_id: &str,
    experiment: &str,
    env_name: &str,
) -> Result<lock::EnvLock, Failure> {
    let me = lock::Holder::this_process(run_id, experiment, env_name);
    let mut result = lock::acquire(&a.runs.runs_dir, &me, a.force_unlock);
    // A dead drill that never wrote its journal never touched anything: take its lock over.
    if let Err(lock::LockError::Stale { holder, .. }) = &result
        && !a
            .runs
            .runs_dir
            .join(&holder.run_id)
            .join(journal::JOURNAL_FILE)
            .exists()
    {
        eprintln!(
            "warning: environment `{env_name}`: {} died before its run started (no journal); its lock is taken over",
            holder.describe()
        );
        result = lock::acquire(&a.runs.runs_dir, &me, true);
    }
    match result {
        Ok((held, previous)) => {
            if let Some(p) = previous.filter(|_| a.force_unlock) {
                eprintln!(
                    "warning: took over the lock of environment `{env_name}` from {} (--force-unlock)",
                    p.describe()
                );
            }
            Ok(held)
        }
        Err(e) => {
            let help = match &e {
                lock::LockError::Held { holder, .. } if holder.liveness() == lock::Liveness::OtherHost => format!(
                    "wait for that drill to finish; if it is gone, check its owed rollbacks (`firedrill report {}` on that host) and re-run with --force-unlock",
                    holder.run_id
                ),
                lock::LockError::Held { .. } => "wait for that drill to finish (one drill per environment), or stop it with Ctrl-C: it rolls back and releases the lock".into(),
                lock::LockError::Stale { holder, .. } => format!(
                    "that drill died without finishing, so it may have left a fault behind: read `firedrill report {}` for the rollbacks it owes, undo them, then re-run with --force-unlock",
                    holder.run_id
                ),
                lock::LockError::Unreadable { path, .. } => format!(
                    "inspect {}; if no drill is running, re-run with --force-unlock",
                    path.display()
                ),
                lock::LockError::Io { .. } => "check that the runs directory (--runs-dir) is writable".into(),
            };
            Err(Failure {
                code: if matches!(e, lock::LockError::Io { .. }) {
                    exit::INTERNAL
                } else {
                    exit::LOCKED
                },
                message: format!("error: {e}; nothing ran\n  = help: {help}"),
            })
        }
    }
}

/// The run's summary (next to its journal), its lessons-learned record and its report.
pub(super) fn write_outputs(
    mut summary: RunSummary,
    run_dir: &Path,
    lessons_dir: &Path,
    experiment: &str,
    run_id: &str,
    keep_lessons: bool,
) -> Result<RunSummary, Failure> {
    summary.integrity = Some(
        journal::verify_journal(&run_dir.join(journal::JOURNAL_FILE))
            .map_err(|e| internal(e.to_string()))?,
    );
    journal::write_summary(run_dir, &summary).map_err(|e| internal(e.to_string()))?;
    let record = lessons::LessonsRecord::from_summary(&summary);
    match lessons::save(lessons_dir, &record) {
        // `recover` rewrites a finished run's outputs: its lessons record may hold people's
        // edits, so it stays.
        Err(lessons::LessonsError::AlreadyExists { .. }) if keep_lessons => {}
        r => {
            r.map_err(|e| internal(e.to_string()))?;
        }
    }
    let open = lessons::open_items(lessons_dir, experiment, Some(run_id))
        .map_err(|e| internal(e.to_string()))?;
    let mut report = markdown::render_markdown(&summary, &open);
    report.push('\n');
    report.push_str(&trend_section(&summary, run_dir));
    std::fs::write(run_dir.join("report.md"), report)
        .map_err(|e| internal(format!("cannot write the report: {e}")))?;
    Ok(summary)
}

/// The experiment's runs before this one (the runs directory is the run directory's parent).
fn history_of(summary: &RunSummary, run_dir: &Path) -> Vec<crate::report::trend::Point> {
    journal::experiment_history(
        run_dir.parent().unwrap_or(Path::new(".")),
        &summary.experiment,
        &summary.run_id,
        summary.started,
        crate::report::trend::WINDOW,
    )
}

/// The report's trend section: this run against the experiment's earlier runs.
pub(super) fn trend_section(summary: &RunSummary, run_dir: &Path) -> String {
    let history = history_of(summary, run_dir);
    crate::report::trend::markdown(&crate::report::trend::Point::of(summary), &history)
}

fn print_verdict(s: &RunSummary, run_dir: &Path, wall: std::time::Duration) {
    let mut out = std::io::stdout().lock();
    let verdict = s
        .verdict
        .as_ref()
        .map(|v| format!("{:?}", v.kind).to_uppercase())
        .unwrap_or_else(|| "UNFINISHED".into());
    let _ = writeln!(out, "\n{} {}: {}", s.experiment, s.run_id, verdict);
    if let Some(v) = &s.verdict {
        for m in &s.measurements {
            let measured = match m.measured_ms {
                None if m.no_impact => "no impact".to_string(),
                None if m.deadline_ms.is_none() => "-".to_string(),
                Some(ms) => crate::lang::duration::format_at(ms, m.resolution_ms),
                None => format!(
                    "> {}",
                    crate::lang::duration::format(std::time::Duration::from_millis(
                        m.deadline_ms.unwrap_or_default()
                    ))
                ),
            };
            let target = m
                .objective_ms
                .map(|o| crate::lang::duration::format(std::time::Duration::from_millis(o)))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "  {:<5} {:>10}  (target {}, resolution ±{})  {}",
                m.name.to_uppercase(),
                measured,
                target,
                crate::lang::duration::format(std::time::Duration::from_millis(m.resolution_ms)),
                m.result_word()
            );
        }
        for r in &v.reasons {
            let _ = writeln!(out, "  - {r}");
        }
    }
    let history = history_of(s, run_dir);
    let real = history.iter().filter(|p| !p.what_if).count();
    if real > 0 {
        let this = crate::report::trend::Point::of(s);
        let lines: Vec<String> = s
            .measurements
            .iter()
            .map(|m| {
                format!(
                    "{} {}",
                    m.name.to_uppercase(),
                    crate::report::trend::sparkline(&m.name, &this, &history)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "  trend over the last {} run(s) and this one: {}",
            real,
            lines.join("  ")
        );
    }
    let span = crate::lang::duration::format(std::time::Duration::from_millis(s.duration_ms));
    let _ = writeln!(
        out,
        "  drill span {span} ({} clock), wall time {:.2}s",
        s.clock,
        wall.as_secs_f64()
    );
    let _ = writeln!(out, "  report:  {}", run_dir.join("report.md").display());
    let _ = writeln!(
        out,
        "  journal: {}",
        run_dir.join("journal.jsonl").display()
    );
}

pub(super) fn ask_operator(prompt: &str) -> Result<bool, String> {
    let mut err = std::io::stderr().lock();
    write!(err, "\n{prompt}\nApprove? [y/N] ").map_err(|e| e.to_string())?;
    err.flush().map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}

/// SIGINT and SIGTERM, listened for from the moment the drill starts (registered once, so a
/// signal between two waits is counted, never lost or left to the default action).
struct Signals {
    #[cfg(unix)]
    listeners: std::io::Result<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                listeners: signal(SignalKind::terminate())
                    .and_then(|t| signal(SignalKind::interrupt()).map(|i| (t, i))),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            let (term, int) = match &mut self.listeners {
                Ok(l) => l,
                Err(e) => return Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            tokio::select! {
                _ = term.recv() => Ok(()),
                _ = int.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await
    }
}
