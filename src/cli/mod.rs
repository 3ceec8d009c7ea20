//! The command line: `validate`, `plan`, `run`, `runs`, `report`, `recover`, `verify`,
//! `gameday run`, `evidence`, `schedule next`, `sim serve`, `vocab`. Parses
//! flags, loads inputs, wires the executor to its consumers (journal, progress display, report,
//! lessons), and maps every outcome to one documented exit code (see [`crate::exit`]).
//!
//! This file holds the clap types, [`main`]'s dispatch and the shared helpers (loading inputs,
//! `Failure`); each verb has its own module, and `progress` holds the progress display and the
//! journal sink.

mod evidence;
mod gameday;
mod plan;
mod progress;
mod recover;
mod report;
mod run;
mod runs;
mod schedule;
mod sim;
mod validate;
mod verify;
mod vocab;

use crate::exit;
use crate::lang::diag::{Diagnostic, render_all};
use crate::lang::environment::{self, Environment};
use crate::lang::spec::{self, Experiment};
use crate::report::journal;
use crate::report::lessons;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

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
    /// Game days: playbooks of drills with a go/no-go decision.
    #[command(subcommand)]
    Gameday(GamedayCommand),
    /// Each checklist control a playbook names, with its newest counting run and whether that
    /// evidence is fresh (exit 10 when one is stale, failing or never run).
    Evidence(EvidenceArgs),
    /// A playbook's schedule.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Run the rollbacks a run still owes (its process died, or a rollback failed), once each.
    Recover(RecoverArgs),
    /// Check a run's journal: every line's hash chained to the one before (exit 9 if not).
    Verify(VerifyArgs),
    /// The simulated estate's own tools.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Print every action and probe with its parameters (the format reference, as markdown).
    Vocab,
}

#[derive(Subcommand)]
enum GamedayCommand {
    /// Run a playbook's drills in order and decide GO or NO-GO; writes
    /// `<runs>/gamedays/<id>/` (gameday.md, gameday.json, junit.xml) besides each drill's run.
    #[command(after_help = exit::TABLE)]
    Run(GamedayRunArgs),
}

#[derive(Args)]
struct GamedayRunArgs {
    playbook: PathBuf,
    /// Pass the playbook's approval gates and every drill's approval steps (otherwise they
    /// prompt on a terminal, and fail closed unattended).
    #[arg(long)]
    approve: bool,
    /// Confirm drills against a protected environment by naming it.
    #[arg(long, value_name = "ENVIRONMENT")]
    confirm: Option<String>,
    #[command(flatten)]
    runs: RunsDir,
    #[command(flatten)]
    lessons: LessonsDir,
    /// `json` prints the game-day record, `junit` JUnit XML (a suite per drill).
    #[arg(long, value_enum, default_value = "text")]
    output: ReportOutput,
    /// No progress lines from the drills.
    #[arg(short, long)]
    quiet: bool,
    /// Run only if the playbook's schedule is due now: its newest scheduled time is within the
    /// starting deadline, inside its windows, not in a blackout, not paused. Otherwise say why
    /// and exit 0. For schedulers that cannot express the cron (a Kubernetes CronJob has no `#`
    /// or `L`: `schedule export` gives it a wider schedule and this flag).
    #[arg(long)]
    if_due: bool,
}

#[derive(Args)]
struct EvidenceArgs {
    /// Playbooks whose `controls:` to check.
    #[arg(required = true)]
    playbooks: Vec<PathBuf>,
    /// Evaluate as of this time (RFC 3339) instead of now: "what could we show on that day?"
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    #[command(flatten)]
    runs: RunsDir,
    #[arg(long, value_enum, default_value = "text")]
    output: OutputArg,
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// The next scheduled game days (skipped ones say why).
    Next(ScheduleNextArgs),
    /// Serve playbooks' schedules in the foreground (for a systemd unit or a container): start
    /// each game day when due, record missed and skipped times, never overlap under `forbid`;
    /// state in <runs>/schedules/; SIGTERM stops the running game days (they roll back).
    Run(ScheduleRunArgs),
    /// Pause a playbook's schedule: its times are recorded as skipped.
    Pause(SchedulePauseArgs),
    /// Resume a paused schedule.
    Resume(SchedulePauseArgs),
    /// A schedule's state: paused, running, next, recent history.
    Status(SchedulePauseArgs),
    /// Write a Kubernetes CronJob that runs the game day on its schedule.
    Export(ScheduleExportArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// A batch/v1 CronJob.
    Cronjob,
}

#[derive(Args)]
struct ScheduleExportArgs {
    playbook: PathBuf,
    #[arg(long, value_enum, default_value = "cronjob")]
    format: ExportFormat,
    /// The container image (see the repository's Dockerfile).
    #[arg(long, default_value = "ghcr.io/firedrill/firedrill:0.1.0")]
    image: String,
    #[arg(long, default_value = "firedrill")]
    namespace: String,
    /// The service account the drills act as (its RBAC is the drills' blast radius).
    #[arg(long, default_value = "firedrill")]
    service_account: String,
    /// PersistentVolumeClaim holding the runs directory (the evidence).
    #[arg(long, default_value = "firedrill-runs")]
    runs_claim: String,
    /// The playbook's path inside the image (default: as given here).
    #[arg(long, value_name = "PATH")]
    playbook_path: Option<String>,
    /// Seconds between SIGTERM and SIGKILL: time for the drills' rollbacks.
    #[arg(long, default_value_t = 900)]
    grace_seconds: u32,
    /// Pass the playbook's approval gates in the job.
    #[arg(long)]
    approve: bool,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct ScheduleRunArgs {
    /// Playbook files, or directories of them.
    #[arg(required = true)]
    playbooks: Vec<PathBuf>,
    /// Pass the game days' approval gates (unattended, they fail closed otherwise).
    #[arg(long)]
    approve: bool,
    #[command(flatten)]
    runs: RunsDir,
    #[command(flatten)]
    lessons: LessonsDir,
}

#[derive(Args)]
struct SchedulePauseArgs {
    playbook: PathBuf,
    #[command(flatten)]
    runs: RunsDir,
}

#[derive(Args)]
struct ScheduleNextArgs {
    playbook: PathBuf,
    /// How many.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    count: u32,
    /// From this time (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME")]
    after: Option<String>,
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

/// Output of `run`, `report` and `gameday run`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportOutput {
    Text,
    /// The machine-readable summary.
    Json,
    /// JUnit XML for CI: a test suite per drill, a test case per hypothesis phase, objective
    /// and the rollbacks.
    Junit,
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
    /// `json` prints the machine-readable summary on stdout, `junit` JUnit XML for CI.
    #[arg(long, value_enum, default_value = "text")]
    output: ReportOutput,
    /// No progress lines.
    #[arg(short, long)]
    quiet: bool,
    /// Take over the environment's lock when the drill holding it is gone (its process died,
    /// or it ran on another host). Check that run's owed rollbacks first.
    #[arg(long)]
    force_unlock: bool,
    /// Notification sinks besides the environment's (a game day's playbook sinks).
    #[arg(skip)]
    notify: Vec<crate::lang::notify::NotifySink>,
    /// The game day this drill belongs to (named in its notifications).
    #[arg(skip)]
    gameday_id: Option<String>,
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
    /// `json` prints the summary instead of markdown, `junit` JUnit XML.
    #[arg(long, value_enum, default_value = "text")]
    output: ReportOutput,
    /// Write the report to this file instead of stdout.
    #[arg(short = 'o', long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RecoverArgs {
    /// Run id, unique prefix, `latest`, or a path to a run directory or journal.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    run: Option<String>,
    /// Every run in the runs directory that owes rollbacks.
    #[arg(long)]
    all: bool,
    /// Show what would run; run nothing, write nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    runs: RunsDir,
    #[command(flatten)]
    lessons: LessonsDir,
}

#[derive(Args)]
struct VerifyArgs {
    /// Run id, unique prefix, `latest`, or a path to a run directory or journal.
    #[arg(default_value = "latest")]
    run: String,
    #[command(flatten)]
    runs: RunsDir,
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
        Command::Validate(a) => validate::validate(a),
        Command::Plan(a) => plan::plan(a),
        Command::Run(a) => run::run(a),
        Command::Runs(a) => runs::runs(a),
        Command::Report(a) => report::report(a),
        Command::Verify(a) => verify::verify(a),
        Command::Recover(a) => recover::recover(a),
        Command::Gameday(GamedayCommand::Run(a)) => gameday::run(a),
        Command::Evidence(a) => evidence::evidence(a),
        Command::Schedule(ScheduleCommand::Next(a)) => schedule::next(a),
        Command::Schedule(ScheduleCommand::Run(a)) => schedule::run(a),
        Command::Schedule(ScheduleCommand::Pause(a)) => schedule::pause(a, true),
        Command::Schedule(ScheduleCommand::Resume(a)) => schedule::pause(a, false),
        Command::Schedule(ScheduleCommand::Status(a)) => schedule::status(a),
        Command::Schedule(ScheduleCommand::Export(a)) => schedule::export(a),
        Command::Sim(SimCommand::Serve(a)) => sim::serve(a),
        Command::Vocab => vocab::vocab(),
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

fn load_experiment(path: &Path, vars: &[(String, String)]) -> Result<Experiment, Failure> {
    let bytes = read_file(path)?;
    let file = path.display().to_string();
    let exp = spec::parse_experiment_with_env(&file, &bytes, vars, &|k| std::env::var(k).ok())
        .map_err(|d| invalid(&d, std::str::from_utf8(&bytes).ok()))?;
    for w in &exp.warnings {
        eprint!("{}", w.render_warning(std::str::from_utf8(&bytes).ok()));
    }
    Ok(exp)
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
