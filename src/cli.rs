//! The command line: `validate`, `plan`, `run`, `runs`, `report`. Parses flags, loads inputs,
//! wires the executor to its consumers (journal, progress display, report, lessons), and maps
//! every outcome to one documented exit code (see [`crate::exit`]).

use crate::backend::Provider;
use crate::engine::clock::RunClock;
use crate::engine::drill::Drill;
use crate::engine::events::{Event, Phase, Record, StepOutcome};
use crate::engine::executor::{self, MemorySink, RollbackPolicy, Sink};
use crate::exit;
use crate::lang::diag::{Diagnostic, render_all};
use crate::lang::environment::{self, Environment};
use crate::lang::spec::{self, Experiment};
use crate::report::journal::{self, Journal};
use crate::report::{lessons, markdown, summary::RunSummary};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "firedrill", version, about = "Chaos-engineering and disaster-recovery drills that measure RTO, RPO and MTTD as a verdict", after_help = exit::TABLE)]
struct Cli {
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check experiment and environment files; report every problem with file:line:col.
    Validate(ValidateArgs),
    /// Show the step DAG as waves, the critical path and a Mermaid graph.
    Plan(PlanArgs),
    /// Run a drill and write its journal, report and lessons-learned record.
    #[command(after_help = exit::TABLE)]
    Run(RunArgs),
    /// List past runs.
    Runs(RunsArgs),
    /// Re-render a run's report from its journal alone.
    Report(ReportArgs),
    /// The simulated estate's own tools.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Print every action and probe with its parameters (the format reference, as markdown).
    Vocab,
}

#[derive(Subcommand)]
enum SimCommand {
    /// Serve one cluster of the simulated estate as a Kubernetes API (for kubectl and kube-rs),
    /// on wall-clock time, until interrupted.
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Seed for the simulated estate's randomness (default: the environment's).
    #[arg(long)]
    seed: Option<u64>,
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Cluster to serve (default: the estate's first).
    #[arg(long)]
    cluster: Option<String>,
    /// Write a kubeconfig for the server to this file.
    #[arg(long, value_name = "PATH")]
    kubeconfig_out: Option<PathBuf>,
    /// Require this bearer token on every request.
    #[arg(long, env = "FIREDRILL_SIM_TOKEN")]
    token: Option<String>,
}

#[derive(Args)]
struct VarArgs {
    /// Override an experiment variable: --var zone=us-east-1b (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_kv)]
    vars: Vec<(String, String)>,
}

#[derive(Args)]
struct EnvArgs {
    /// Environment file (default: the built-in simulated estate, same as environments/sim.yaml).
    #[arg(long = "env", short = 'e', value_name = "FILE")]
    env: Option<PathBuf>,
    /// Override an environment setting: --set sim.dns[0].ttl=300s (repeatable; "what if?").
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = parse_kv)]
    sets: Vec<(String, String)>,
}

#[derive(Args)]
struct ValidateArgs {
    /// Experiment or environment files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    vars: VarArgs,
}

#[derive(Args)]
struct PlanArgs {
    experiment: PathBuf,
    #[command(flatten)]
    vars: VarArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum RollbackArg {
    /// After every run, so no fault is left behind.
    Always,
    /// Only after a failed, aborted or interrupted run.
    OnFailure,
    /// Never (rollbacks are journaled as owed).
    Never,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClockArg {
    /// Virtual time on the simulated estate unless the drill uses http/command.
    Auto,
    Virtual,
    Wall,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputArg {
    Text,
    Json,
}

#[derive(Args)]
struct RunArgs {
    experiment: PathBuf,
    #[command(flatten)]
    vars: VarArgs,
    #[command(flatten)]
    env: EnvArgs,
    /// Seed for the simulated estate's randomness (default: the environment's).
    #[arg(long)]
    seed: Option<u64>,
    /// Resolve targets and print what would be done; touch nothing, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// When rollbacks run.
    #[arg(long, value_enum, default_value = "always")]
    rollback: RollbackArg,
    /// Pre-approve every approval step (otherwise they prompt, and fail closed when unattended).
    #[arg(long)]
    approve: bool,
    /// Confirm a drill against a protected environment by naming it.
    #[arg(long, value_name = "ENVIRONMENT")]
    confirm: Option<String>,
    /// Maximum steps running at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Virtual or wall-clock time.
    #[arg(long, value_enum, default_value = "auto")]
    clock: ClockArg,
    #[command(flatten)]
    runs: RunsDir,
    #[command(flatten)]
    lessons: LessonsDir,
    /// `json` prints the machine-readable summary on stdout.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputArg,
    /// No progress lines.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
struct RunsDir {
    /// Where runs are kept.
    #[arg(long, default_value = journal::DEFAULT_RUNS_DIR, env = "FIREDRILL_RUNS_DIR")]
    runs_dir: PathBuf,
}

#[derive(Args)]
struct LessonsDir {
    /// Where lessons-learned records accumulate.
    #[arg(long, default_value = lessons::DEFAULT_LESSONS_DIR, env = "FIREDRILL_LESSONS_DIR")]
    lessons_dir: PathBuf,
}

#[derive(Args)]
struct RunsArgs {
    #[command(flatten)]
    runs: RunsDir,
    #[arg(long, value_enum, default_value = "text")]
    output: OutputArg,
}

#[derive(Args)]
struct ReportArgs {
    /// Run id, unique prefix, `latest`, or a path to a run directory or journal.
    #[arg(default_value = "latest")]
    run: String,
    #[command(flatten)]
    runs: RunsDir,
    #[command(flatten)]
    lessons: LessonsDir,
    /// `json` prints the summary instead of markdown.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputArg,
    /// Write the report to this file instead of stdout.
    #[arg(short = 'o', long)]
    out: Option<PathBuf>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got `{s}`")),
    }
}

/// An error that maps to an exit code; the message is printed as is.
struct Failure {
    code: i32,
    message: String,
}

fn invalid(diags: &[Diagnostic], source: Option<&str>) -> Failure {
    Failure {
        code: exit::INVALID_INPUT,
        message: render_all(diags, source),
    }
}

fn internal(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::INTERNAL,
        message: format!("error: {}", message.into()),
    }
}

/// Entry point: returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::INVALID_INPUT
            } else {
                exit::PASS
            };
        }
    };
    init_tracing(cli.verbose);
    let res = match cli.command {
        Command::Validate(a) => validate(a),
        Command::Plan(a) => plan(a),
        Command::Run(a) => run(a),
        Command::Runs(a) => runs(a),
        Command::Report(a) => report(a),
        Command::Sim(SimCommand::Serve(a)) => sim_serve(a),
        Command::Vocab => {
            print!("{}", crate::lang::vocab::markdown());
            Ok(exit::PASS)
        }
    };
    match res {
        Ok(code) => code,
        Err(f) => {
            eprint!("{}", f.message);
            if !f.message.ends_with('\n') {
                eprintln!();
            }
            f.code
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    let meta = std::fs::metadata(path).map_err(|e| Failure {
        code: exit::INVALID_INPUT,
        message: format!(
            "error: {}: cannot read: {e}\n  = help: check the path",
            path.display()
        ),
    })?;
    if meta.is_dir() {
        return Err(Failure {
            code: exit::INVALID_INPUT,
            message: format!(
                "error: {}: is a directory\n  = help: pass a YAML file, e.g. experiments/pod-kill.yaml",
                path.display()
            ),
        });
    }
    // Refuse huge files before reading them whole.
    if meta.len() > crate::lang::yaml::Limits::default().max_bytes as u64 {
        let d = Diagnostic { file: path.display().to_string(), loc: None, path: String::new(), message: format!("file is {} bytes, over the {} byte limit", meta.len(), crate::lang::yaml::Limits::default().max_bytes), help: "experiment and environment files are small hand-written documents; check you passed the right file".into() };
        return Err(invalid(&[d], None));
    }
    std::fs::read(path).map_err(|e| Failure {
        code: exit::INVALID_INPUT,
        message: format!("error: {}: cannot read: {e}", path.display()),
    })
}

fn sim_serve(a: ServeArgs) -> Result<i32, Failure> {
    let env = load_environment(&a.env)?;
    let provider = crate::backend::sim::SimProvider::new(&env, a.seed)
        .map_err(|d| invalid(&d, Some(&env.source)))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| internal(format!("cannot start the runtime: {e}")))?;
    let opts = crate::sim::kube_api::ServeOptions {
        listen: a.listen,
        cluster: a.cluster,
        kubeconfig_out: a.kubeconfig_out,
        token: a.token,
    };
    runtime
        .block_on(crate::sim::kube_api::serve_estate(provider, opts))
        .map_err(|m| Failure {
            code: exit::INVALID_INPUT,
            message: format!("error: {m}"),
        })?;
    Ok(exit::PASS)
}

fn load_experiment(path: &Path, vars: &[(String, String)]) -> Result<Experiment, Failure> {
    let bytes = read_file(path)?;
    let file = path.display().to_string();
    spec::parse_experiment(&file, &bytes, vars)
        .map_err(|d| invalid(&d, std::str::from_utf8(&bytes).ok()))
}

fn load_environment(args: &EnvArgs) -> Result<Environment, Failure> {
    match &args.env {
        None => environment::builtin(&args.sets)
            .map_err(|d| invalid(&d, Some(environment::BUILTIN_SIM))),
        Some(p) => {
            let bytes = read_file(p)?;
            environment::parse_environment(&p.display().to_string(), &bytes, &args.sets)
                .map_err(|d| invalid(&d, std::str::from_utf8(&bytes).ok()))
        }
    }
}

fn validate(a: ValidateArgs) -> Result<i32, Failure> {
    let mut all = String::new();
    let mut bad = 0;
    for f in &a.files {
        let bytes = match read_file(f) {
            Ok(b) => b,
            Err(e) => {
                all.push_str(&e.message);
                all.push('\n');
                bad += 1;
                continue;
            }
        };
        let name = f.display().to_string();
        let is_env = std::str::from_utf8(&bytes)
            .is_ok_and(|t| t.lines().any(|l| l.trim() == "kind: Environment"));
        let res = if is_env {
            environment::parse_environment(&name, &bytes, &[])
                .and_then(|env| crate::backend::router::check_settings(&env))
                .map(|_| format!("ok: {name} (environment)"))
        } else {
            spec::parse_experiment(&name, &bytes, &a.vars.vars).map(|e| {
                format!(
                    "ok: {name} ({} steps, {} probes)",
                    e.steps.len(),
                    e.probes.len()
                )
            })
        };
        match res {
            Ok(line) => println!("{line}"),
            Err(d) => {
                bad += 1;
                all.push_str(&render_all(&d, std::str::from_utf8(&bytes).ok()));
            }
        }
    }
    if bad > 0 {
        return Err(Failure {
            code: exit::INVALID_INPUT,
            message: all,
        });
    }
    Ok(exit::PASS)
}

fn plan(a: PlanArgs) -> Result<i32, Failure> {
    let exp = load_experiment(&a.experiment, &a.vars.vars)?;
    let p = crate::lang::plan::plan(&exp);
    print!("{}", crate::lang::plan::render(&exp, &p));
    Ok(exit::PASS)
}

/// Whether a drill needs real time (it talks to something outside the simulated estate).
fn needs_wall_clock(exp: &Experiment) -> bool {
    let generic = |k: &str| k == "http" || k == "command" || k == "approval";
    exp.probes.iter().any(|p| generic(&p.kind)) || exp.steps.iter().any(|s| {
        generic(&s.action.value)
            || matches!(&s.rollback, spec::RollbackSpec::Action { action, .. } if generic(action))
    })
}

fn run(a: RunArgs) -> Result<i32, Failure> {
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
    let plan = crate::lang::plan::plan(&exp);
    let calls = crate::backend::router::calls_of(&exp);
    // Anything not served by the simulated estate happens in real time.
    let remote = calls
        .iter()
        .any(|c| env.backend_for(&c.name) != environment::Backend::Sim);
    let virtual_clock = match a.clock {
        ClockArg::Virtual => {
            if needs_wall_clock(&exp) || remote {
                return Err(Failure { code: exit::INVALID_INPUT, message: "error: --clock virtual: this drill uses http, command or approval steps, or a real backend, which need real time\n  = help: use --clock wall (or auto)".into() });
            }
            true
        }
        ClockArg::Wall => false,
        ClockArg::Auto => !needs_wall_clock(&exp) && !remote,
    };
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

    let connect_opts = crate::backend::router::ConnectOptions { seed: a.seed };
    let provider = runtime
        .block_on(crate::backend::router::connect(&env, &connect_opts))
        .map_err(|d| invalid(&d, Some(&env.source)))?;
    let seed = match a.seed {
        Some(s) => s,
        None => env
            .settings(environment::Backend::Sim)
            .get("seed")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(crate::sim::model::SimParams::default().seed),
    };
    let problems = runtime.block_on(provider.preflight(&calls));
    if !problems.is_empty() {
        let mut message = format!(
            "error: preflight found {} problem(s) in environment `{}`; nothing ran\n",
            problems.len(),
            env.name
        );
        for p in &problems {
            message.push_str(&format!(
                "  - {}: {} ({})\n",
                p.owner, p.error, p.error.kind
            ));
        }
        message.push_str("  = help: fix the targets or the environment's access, then re-run (`--dry-run` repeats this check)");
        return Err(Failure {
            code: exit::PREFLIGHT,
            message,
        });
    }

    if a.dry_run {
        let mut out = crate::lang::plan::render(&exp, &plan);
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
                    message: format!("step `{}`: {e}", s.id.value),
                    help: "fix the step's target so it exists in the environment".into(),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(invalid(
                &problems,
                std::str::from_utf8(&read_file(&a.experiment)?).ok(),
            ));
        }
        out.push_str("\nDry run: nothing was touched and nothing was written.\n");
        print!("{out}");
        return Ok(exit::PASS);
    }

    let exp = Arc::new(exp);
    let runs_dir = a.runs.runs_dir.clone();
    let lessons_dir = a.lessons.lessons_dir.clone();
    let quiet = a.quiet || a.output == OutputArg::Json;
    let output_json = a.output == OutputArg::Json;
    let approve = a.approve;
    let rollback = match a.rollback {
        RollbackArg::Always => RollbackPolicy::Always,
        RollbackArg::OnFailure => RollbackPolicy::OnFailure,
        RollbackArg::Never => RollbackPolicy::Never,
    };
    let concurrency = a.concurrency as usize;
    let env_name = env.name.clone();
    let wall_started = std::time::Instant::now();

    let result: Result<(i32, PathBuf, RunSummary), Failure> = runtime.block_on(async move {
        let clock = RunClock::start_now();
        let salt = std::process::id() as u64 ^ clock.start_wall.timestamp_subsec_nanos() as u64;
        let run_id = journal::new_run_id(&exp.metadata.name, clock.start_wall, salt);
        let run_dir = runs_dir.join(&run_id);
        let journal = Journal::create(&run_dir)
            .map_err(|e| internal(format!("cannot create the run journal: {e}")))?;
        let memory = MemorySink::default();
        let mut sinks: Vec<Box<dyn Sink>> =
            vec![Box::new(JournalSink(journal)), Box::new(memory.clone())];
        if !quiet {
            sinks.push(Box::new(Progress::new(std::io::stderr().is_terminal())));
        }
        let (int_tx, int_rx) = tokio::sync::watch::channel(0u32);
        tokio::spawn(async move {
            loop {
                if wait_signal().await.is_err() {
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
            .concurrency(concurrency)
            .rollback(rollback)
            .approve(approve)
            .approver(approver)
            .environment(env_name)
            .clock_kind(if virtual_clock { "virtual" } else { "wall" })
            .seed(seed)
            .clock(clock)
            .sinks(sinks)
            .interrupts(int_rx)
            .run_with_emitter()
            .await;
        let errors = emitter.errors();
        let records = memory.0.lock().expect("memory sink").clone();
        let summary = RunSummary::from_records(&records);
        journal::write_summary(&run_dir, &summary).map_err(|e| internal(e.to_string()))?;
        let record = lessons::LessonsRecord::from_summary(&summary);
        lessons::save(&lessons_dir, &record).map_err(|e| internal(e.to_string()))?;
        let open = lessons::open_items(&lessons_dir, &exp.metadata.name, Some(&run_id))
            .map_err(|e| internal(e.to_string()))?;
        std::fs::write(
            run_dir.join("report.md"),
            markdown::render_markdown(&summary, &open),
        )
        .map_err(|e| internal(format!("cannot write the report: {e}")))?;
        if !errors.is_empty() {
            return Err(internal(format!(
                "the journal could not be written: {}",
                errors.join("; ")
            )));
        }
        Ok((outcome.exit_code, run_dir, summary))
    });
    let (code, run_dir, summary) = result?;
    if output_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).map_err(|e| internal(e.to_string()))?
        );
    } else {
        print_verdict(&summary, &run_dir, wall_started.elapsed());
    }
    Ok(code)
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
                Some(ms) => crate::lang::duration::format(std::time::Duration::from_millis(ms)),
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
                if m.met { "met" } else { "MISSED" }
            );
        }
        for r in &v.reasons {
            let _ = writeln!(out, "  - {r}");
        }
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

fn ask_operator(prompt: &str) -> Result<bool, String> {
    let mut err = std::io::stderr().lock();
    write!(err, "\n{prompt}\nApprove? [y/N] ").map_err(|e| e.to_string())?;
    err.flush().map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}

#[cfg(unix)]
async fn wait_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => Ok(()),
        _ = int.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}

struct JournalSink(Journal);

impl Sink for JournalSink {
    fn record(&mut self, rec: &Record) -> Result<(), String> {
        self.0.append(rec).map_err(|e| e.to_string())?;
        if matches!(rec.event, Event::RunFinished { .. }) {
            self.0.finish().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The progress display: one line per notable event; on a terminal, a status line that keeps
/// the elapsed run time and the running steps in view.
struct Progress {
    tty: bool,
    running: Vec<String>,
}

impl Progress {
    fn new(tty: bool) -> Progress {
        Progress {
            tty,
            running: Vec::new(),
        }
    }

    fn line(&self, rec: &Record) -> Option<String> {
        let ms = |m: u64| crate::lang::duration::format(std::time::Duration::from_millis(m));
        Some(match &rec.event {
            Event::RunStarted {
                experiment,
                environment,
                backend,
                clock,
                ..
            } => format!("drill {experiment} on {environment} ({backend}, {clock} clock)"),
            Event::PhaseStarted { phase } => format!("phase {}", phase_name(*phase)),
            Event::HypothesisResult { phase, met, failed } => format!(
                "steady state {}: {}",
                phase_name(*phase),
                if *met {
                    "met".to_string()
                } else {
                    format!("NOT met ({})", failed.join(", "))
                }
            ),
            Event::StepStarted {
                step,
                action,
                attempt,
            } => format!(
                "step {step} ({action}) started{}",
                if *attempt > 1 {
                    format!(", attempt {attempt}")
                } else {
                    String::new()
                }
            ),
            Event::StepRetrying {
                step,
                error,
                backoff_ms,
                ..
            } => format!(
                "step {step} failed: {error}; retrying in {}",
                ms(*backoff_ms)
            ),
            Event::StepFinished {
                step,
                outcome,
                duration_ms,
                error,
                ..
            } => match outcome {
                StepOutcome::Skipped => format!("step {step} skipped"),
                o => format!(
                    "step {step} {} after {}{}",
                    format!("{o:?}").to_lowercase(),
                    ms(*duration_ms),
                    error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                ),
            },
            Event::FaultInjected { step } => format!("FAULT {step}: recovery clock started"),
            Event::AbortTriggered { reason } => format!("ABORT: {reason}"),
            Event::Interrupted { count, .. } => {
                if *count == 1 {
                    "interrupted: aborting and rolling back (interrupt again to stop at once)"
                        .into()
                } else {
                    "interrupted again: stopping at once".into()
                }
            }
            Event::EnvironmentEvent {
                component, message, ..
            } => format!("  env {component}: {message}"),
            Event::Detected { probe, after_ms } => {
                format!("detected by {probe} after {}", ms(*after_ms))
            }
            Event::Recovered { after_ms } => format!("RECOVERED after {}", ms(*after_ms)),
            Event::RecoveryDeadlineExceeded {
                deadline_ms,
                failing,
            } => format!(
                "NOT recovered within {} (failing: {})",
                ms(*deadline_ms),
                failing.join(", ")
            ),
            Event::RollbackFinished {
                step, ok, error, ..
            } => format!(
                "rollback {step}: {}",
                if *ok {
                    "ok".into()
                } else {
                    format!("FAILED: {}", error.clone().unwrap_or_default())
                }
            ),
            Event::RollbackOwed { step, reason, .. } => format!("rollback {step} OWED: {reason}"),
            Event::DataLossMeasured {
                loss_ms: Some(l), ..
            } => format!("data loss window {}", ms(*l)),
            _ => return None,
        })
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Before => "before",
        Phase::Method => "method",
        Phase::After => "after",
        Phase::Rollback => "rollback",
    }
}

impl Sink for Progress {
    fn record(&mut self, rec: &Record) -> Result<(), String> {
        match &rec.event {
            Event::StepStarted { step, .. } if !self.running.contains(step) => {
                self.running.push(step.clone())
            }
            Event::StepFinished { step, .. } => self.running.retain(|s| s != step),
            _ => {}
        }
        let mut err = std::io::stderr().lock();
        // Environment events carry their own time (the estate reports them when next observed).
        let at_ms = match &rec.event {
            Event::EnvironmentEvent { at_ms, .. } => *at_ms,
            _ => rec.elapsed_ms,
        };
        let t = crate::lang::duration::format(std::time::Duration::from_millis(at_ms));
        if let Some(line) = self.line(rec) {
            if self.tty {
                let _ = write!(err, "\r\x1b[2K");
            }
            let _ = writeln!(err, "[+{t:>7}] {line}");
        }
        if self.tty {
            let status = if self.running.is_empty() {
                String::new()
            } else {
                format!(" running: {}", self.running.join(", "))
            };
            let _ = write!(err, "\r\x1b[2K  … +{t}{status}");
            if matches!(rec.event, Event::RunFinished { .. }) {
                let _ = write!(err, "\r\x1b[2K");
            }
            let _ = err.flush();
        }
        Ok(())
    }
}

fn runs(a: RunsArgs) -> Result<i32, Failure> {
    let list = journal::list_runs(&a.runs.runs_dir).map_err(|e| internal(e.to_string()))?;
    if a.output == OutputArg::Json {
        let rows: Vec<serde_json::Value> = list.iter().map(|r| serde_json::json!({"id": r.id, "experiment": r.experiment, "started": r.started, "status": r.status(), "exit_code": r.exit_code, "dir": r.dir})).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Ok(exit::PASS);
    }
    if list.is_empty() {
        println!("no runs in {}", a.runs.runs_dir.display());
        return Ok(exit::PASS);
    }
    println!(
        "{:<44} {:<20} {:<22} STATUS",
        "RUN", "EXPERIMENT", "STARTED"
    );
    for r in list {
        let started = r
            .started
            .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_default();
        println!(
            "{:<44} {:<20} {:<22} {}",
            r.id,
            r.experiment,
            started,
            r.status()
        );
    }
    Ok(exit::PASS)
}

fn report(a: ReportArgs) -> Result<i32, Failure> {
    let entry = journal::resolve_run(&a.runs.runs_dir, &a.run).map_err(|e| Failure {
        code: exit::INVALID_INPUT,
        message: format!("error: {e}"),
    })?;
    let read = journal::read_journal(&entry.dir.join("journal.jsonl")).map_err(|e| Failure {
        code: exit::INVALID_INPUT,
        message: format!("error: {e}"),
    })?;
    if read.truncated_tail {
        eprintln!(
            "warning: the journal's last line was incomplete (the process died mid-write); it was skipped"
        );
    }
    let summary = RunSummary::from_records(&read.records);
    let text = if a.output == OutputArg::Json {
        serde_json::to_string_pretty(&summary).map_err(|e| internal(e.to_string()))?
    } else {
        let open = lessons::open_items(
            &a.lessons.lessons_dir,
            &summary.experiment,
            Some(&summary.run_id),
        )
        .map_err(|e| internal(e.to_string()))?;
        markdown::render_markdown(&summary, &open)
    };
    match a.out {
        Some(p) => std::fs::write(&p, text)
            .map_err(|e| internal(format!("cannot write {}: {e}", p.display())))?,
        None => println!("{text}"),
    }
    Ok(exit::PASS)
}
