//! The game-day timetable: which of a playbook's scheduled times are due, missed or skipped
//! ([`decide`], pure), the scheduler's state on disk ([`State`], one file per playbook, written
//! atomically before and after every game day), and the foreground loop ([`run`]) that starts
//! game days when due through a [`Launcher`] (the CLI's starts `firedrill gameday run` as a child
//! process).
//!
//! Not to be confused with `engine::schedule`, which schedules a drill's steps.
//!
//! What it does, and why:
//! - **Missed runs**: of the times that passed while the scheduler was not running, only the
//!   most recent may start, and only within the schedule's `starting_deadline`; every other one
//!   is recorded as missed (Kubernetes CronJob semantics), so a scheduler down for a week does not
//!   fire seven game days on restart.
//! - **Restart**: every time up to `last_scheduled` has been handled and is never repeated; a
//!   game day started by an earlier scheduler process is tracked by its pid (still running: it
//!   counts for `concurrency`; gone: recorded as interrupted, with a pointer to `recover`).
//! - **Overlap**: `forbid` skips (and records) a time while a game day still runs; `allow` starts
//!   another; `replace` stops the running one (SIGTERM: it rolls back as on Ctrl-C) and starts.
//! - **Stop**: on SIGTERM/SIGINT the running game days get SIGTERM, are awaited, and recorded.
//! - **Pause**: a `<name>.paused` file next to the state; paused times are recorded as skipped.

use crate::lang::playbook::{Concurrency, Schedule};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of the state file this build writes and reads.
pub const STATE_VERSION: u32 = 1;
/// History entries kept per playbook (oldest dropped first).
pub const HISTORY_MAX: usize = 500;
/// Times passed while the scheduler was down are recorded one by one up to this many; more are
/// summarised in one entry.
const MISSED_ENTRIES_MAX: usize = 50;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub playbook: String,
    /// The schedule as it was when the state was last written (a changed schedule is noted).
    pub cron: String,
    pub timezone: String,
    pub created: DateTime<Utc>,
    /// Every scheduled time up to this one has been handled (started, missed or skipped).
    pub last_scheduled: DateTime<Utc>,
    #[serde(default)]
    pub running: Vec<Running>,
    #[serde(default)]
    pub history: Vec<Entry>,
}

/// A game day the scheduler started and has not seen finish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Running {
    pub scheduled_for: DateTime<Utc>,
    pub started: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The scheduler process that started it (a new scheduler cannot await it).
    #[serde(default)]
    pub scheduler_pid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    Started,
    Finished,
    /// Late past the starting deadline (or older than the most recent missed time).
    Missed,
    /// `concurrency: forbid` and a game day was still running.
    SkippedRunning,
    /// Outside the windows or in a blackout.
    SkippedWindow,
    SkippedPaused,
    /// `concurrency: replace`: the running game day was stopped for this one.
    Replaced,
    /// Stopped with the scheduler (SIGTERM/SIGINT).
    Stopped,
    /// Its process died while no scheduler watched it.
    Interrupted,
    /// Could not be started (the launcher failed).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub scheduled_for: DateTime<Utc>,
    pub at: DateTime<Utc>,
    pub what: What,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

impl State {
    pub fn new(playbook: &str, s: &Schedule, now: DateTime<Utc>) -> State {
        State {
            version: STATE_VERSION,
            playbook: playbook.to_string(),
            cron: s.cron.clone(),
            timezone: s.timezone.name().to_string(),
            created: now,
            last_scheduled: now,
            running: Vec::new(),
            history: Vec::new(),
        }
    }

    pub fn record(&mut self, e: Entry) {
        self.history.push(e);
        if self.history.len() > HISTORY_MAX {
            let cut = self.history.len() - HISTORY_MAX;
            self.history.drain(..cut);
        }
    }
}

/// What to do at `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// Start a game day for this time.
    pub start: Option<DateTime<Utc>>,
    /// Stop the running game days first (`replace`).
    pub replace: bool,
    pub entries: Vec<Entry>,
    /// The new `last_scheduled`.
    pub handled_until: DateTime<Utc>,
}

fn late(d: chrono::Duration) -> String {
    crate::lang::duration::format(d.to_std().unwrap_or_default())
}

/// Which scheduled times in `(state.last_scheduled, now]` start, are missed or are skipped.
/// `running`: how many game days are running; `paused`: the schedule is paused.
pub fn decide(
    s: &Schedule,
    state: &State,
    now: DateTime<Utc>,
    running: usize,
    paused: bool,
) -> Due {
    let mut times = Vec::new();
    let mut count = 0usize;
    // Bounded: a minutely schedule down for a year is 525,600 times; they are counted, not kept.
    let mut cursor = state.last_scheduled;
    let mut latest = None;
    while let Some(t) = s.next(cursor) {
        if t > now {
            break;
        }
        count += 1;
        if times.len() < MISSED_ENTRIES_MAX {
            times.push(t);
        }
        latest = Some(t);
        cursor = t;
        if count > 1_000_000 {
            break;
        }
    }
    let mut due = Due {
        start: None,
        replace: false,
        entries: Vec::new(),
        handled_until: latest.unwrap_or(state.last_scheduled),
    };
    let Some(latest) = latest else {
        return due;
    };
    let entry = |t: DateTime<Utc>, what: What, detail: String| Entry {
        scheduled_for: t,
        at: now,
        what,
        detail,
        exit_code: None,
    };
    let mut recorded = 0usize;
    for &t in times.iter().filter(|&&t| t != latest) {
        recorded += 1;
        due.entries.push(entry(t, What::Missed, "the scheduler was not running at that time; only the most recent missed time may start".into()));
    }
    if count - 1 > recorded {
        due.entries.push(entry(
            latest,
            What::Missed,
            format!(
                "and {} more scheduled time(s) while the scheduler was not running",
                count - 1 - recorded
            ),
        ));
    }
    let deadline = chrono::Duration::from_std(s.starting_deadline).unwrap_or(chrono::Duration::MAX);
    let lateness = now - latest;
    if lateness > deadline {
        due.entries.push(entry(
            latest,
            What::Missed,
            format!(
                "{} late, past the starting deadline of {}",
                late(lateness),
                late(deadline)
            ),
        ));
    } else if paused {
        due.entries.push(entry(
            latest,
            What::SkippedPaused,
            "the schedule is paused (`firedrill schedule resume` to resume)".into(),
        ));
    } else if let Some(why) = s.refusal(latest) {
        due.entries.push(entry(latest, What::SkippedWindow, why));
    } else if running > 0 && s.concurrency == Concurrency::Forbid {
        due.entries.push(entry(
            latest,
            What::SkippedRunning,
            "a game day was still running (concurrency: forbid)".into(),
        ));
    } else {
        if running > 0 && s.concurrency == Concurrency::Replace {
            due.replace = true;
            due.entries.push(entry(
                latest,
                What::Replaced,
                format!(
                    "stopping the running game day ({}) for this one (concurrency: replace)",
                    running
                ),
            ));
        }
        due.start = Some(latest);
    }
    due
}

/// Why a state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}:{line}:{column}: the scheduler's state is not valid: {message}", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: the scheduler's state was written by a newer firedrill (state version {found}, this one reads {STATE_VERSION})", path.display())]
    Newer { path: PathBuf, found: u32 },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StateError {
    pub fn help(&self) -> String {
        match self {
            StateError::Corrupt { path, .. } => format!(
                "the file is left as it is; fix it, or move it away (e.g. `mv {0} {0}.bad`) to start the schedule afresh from now (its history stays in the moved file)",
                path.display()
            ),
            StateError::Newer { .. } => {
                "run the newer firedrill that wrote it, or move the file away to start afresh"
                    .into()
            }
            StateError::Io { .. } => {
                "check that the runs directory (--runs-dir) is readable and writable".into()
            }
        }
    }
}

pub fn state_path(runs_dir: &Path, playbook: &str) -> PathBuf {
    runs_dir.join("schedules").join(format!("{playbook}.json"))
}

pub fn paused_path(runs_dir: &Path, playbook: &str) -> PathBuf {
    runs_dir
        .join("schedules")
        .join(format!("{playbook}.paused"))
}

/// The state, if the file exists. A corrupt or newer file is an error and is never overwritten.
pub fn load(path: &Path) -> Result<Option<State>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let corrupt = |e: serde_json::Error| StateError::Corrupt {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    // The version first: a newer file may not parse as this version's state.
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if let Some(found) = v.get("version").and_then(|v| v.as_u64())
        && found > STATE_VERSION as u64
    {
        return Err(StateError::Newer {
            path: path.to_path_buf(),
            found: found as u32,
        });
    }
    serde_json::from_slice(&bytes).map(Some).map_err(corrupt)
}

/// Write the state atomically (a crash leaves the old or the new file, never half of one).
pub fn save(path: &Path, s: &State) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(s).expect("state serializes");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// A game day being started.
pub struct Launched {
    pub pid: Option<u32>,
    /// Resolves to the game day's exit code.
    pub done: futures::future::BoxFuture<'static, i32>,
    /// Ask it to stop (SIGTERM: it rolls back as on Ctrl-C).
    pub stop: Box<dyn Fn() + Send + Sync>,
}

/// Starts game days.
pub trait Launcher: Send + Sync {
    fn launch(&self, playbook: &Path, scheduled_for: DateTime<Utc>) -> Result<Launched, String>;
}

/// One playbook the loop serves.
pub struct Entrant {
    pub file: PathBuf,
    pub name: String,
    pub schedule: Schedule,
}

/// Whether a process is still there (procfs; elsewhere assumed gone).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Stops one running game day.
type StopFn = std::sync::Arc<dyn Fn() + Send + Sync>;

struct Served {
    e: Entrant,
    path: PathBuf,
    state: State,
    /// Game days this process started: (scheduled_for, stop).
    mine: Vec<(DateTime<Utc>, StopFn)>,
}

type Finished = (usize, DateTime<Utc>, i32);

/// Serve the playbooks until `stop` turns true: start each game day when due, keep the state,
/// and on stop, stop and await the running game days. `now` is the clock (wall time in the CLI;
/// a virtual clock in tests). `log` receives one line per decision.
pub async fn run(
    entrants: Vec<Entrant>,
    runs_dir: &Path,
    launcher: std::sync::Arc<dyn Launcher>,
    now: &(dyn Fn() -> DateTime<Utc> + Send + Sync),
    mut stop: tokio::sync::watch::Receiver<bool>,
    log: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), StateError> {
    use futures::StreamExt;
    let mut served = Vec::new();
    for e in entrants {
        let path = state_path(runs_dir, &e.name);
        let t = now();
        let mut state = load(&path)?.unwrap_or_else(|| State::new(&e.name, &e.schedule, t));
        if state.cron != e.schedule.cron || state.timezone != e.schedule.timezone.name() {
            log(&format!(
                "{}: the schedule changed from `{}` ({}) to `{}` ({}); times up to {} stay handled",
                e.name,
                state.cron,
                state.timezone,
                e.schedule.cron,
                e.schedule.timezone.name(),
                state.last_scheduled.format("%Y-%m-%d %H:%M UTC")
            ));
            state.cron = e.schedule.cron.clone();
            state.timezone = e.schedule.timezone.name().to_string();
        }
        // Game days an earlier scheduler started: still running (they count), or gone.
        let mut kept = Vec::new();
        for r in std::mem::take(&mut state.running) {
            match r.pid {
                Some(pid) if alive(pid) => kept.push(r),
                _ => state.record(Entry {
                    scheduled_for: r.scheduled_for,
                    at: t,
                    what: What::Interrupted,
                    detail: "its process ended while no scheduler watched it (the scheduler restarted); `firedrill runs` shows whether its drills finished, `firedrill recover --all` runs what they owe".into(),
                    exit_code: None,
                }),
            }
        }
        state.running = kept;
        save(&path, &state)?;
        served.push(Served {
            e,
            path,
            state,
            mine: Vec::new(),
        });
    }
    let mut done: futures::stream::FuturesUnordered<futures::future::BoxFuture<'static, Finished>> =
        Default::default();
    let me = std::process::id();
    loop {
        let t = now();
        for i in 0..served.len() {
            let s = &mut served[i];
            // Foreign game days (an earlier scheduler's): dropped when their process is gone.
            let before = s.state.running.len();
            s.state
                .running
                .retain(|r| r.scheduler_pid == me || r.pid.is_some_and(alive));
            let changed = before != s.state.running.len();
            let paused = paused_path(runs_dir, &s.e.name).exists();
            let due = decide(&s.e.schedule, &s.state, t, s.state.running.len(), paused);
            if due.entries.is_empty() && due.start.is_none() && !changed {
                continue;
            }
            for en in &due.entries {
                log(&format!(
                    "{}: {} {}: {}",
                    s.e.name,
                    en.scheduled_for.format("%Y-%m-%d %H:%M UTC"),
                    what_word(en.what),
                    en.detail
                ));
            }
            for en in due.entries {
                s.state.record(en);
            }
            s.state.last_scheduled = due.handled_until;
            save(&s.path, &s.state)?;
            if due.replace {
                // Stop this playbook's running game days and wait for them (they roll back)
                // before the next starts: it would find the environment locked otherwise.
                for (_, stop) in &served[i].mine {
                    stop();
                }
                while !served[i].mine.is_empty() {
                    let Some((j, at, code)) = done.next().await else {
                        break;
                    };
                    let what = if j == i {
                        What::Stopped
                    } else {
                        What::Finished
                    };
                    finish(&mut served[j], at, code, now(), what, log)?;
                }
            }
            let s = &mut served[i];
            if let Some(at) = due.start {
                match launcher.launch(&s.e.file, at) {
                    Ok(l) => {
                        log(&format!(
                            "{}: {} started{}",
                            s.e.name,
                            at.format("%Y-%m-%d %H:%M UTC"),
                            l.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                        ));
                        s.state.record(Entry {
                            scheduled_for: at,
                            at: t,
                            what: What::Started,
                            detail: String::new(),
                            exit_code: None,
                        });
                        s.state.running.push(Running {
                            scheduled_for: at,
                            started: t,
                            pid: l.pid,
                            scheduler_pid: me,
                        });
                        s.mine.push((at, std::sync::Arc::from(l.stop)));
                        let fut = l.done;
                        done.push(Box::pin(async move { (i, at, fut.await) }));
                    }
                    Err(e) => {
                        log(&format!(
                            "{}: {} could not start: {e}",
                            s.e.name,
                            at.format("%Y-%m-%d %H:%M UTC")
                        ));
                        s.state.record(Entry {
                            scheduled_for: at,
                            at: t,
                            what: What::Failed,
                            detail: e,
                            exit_code: None,
                        });
                    }
                }
                save(&s.path, &s.state)?;
            }
        }
        // Sleep until the next scheduled time of any playbook, a game day finishing, or stop.
        let next = served
            .iter()
            .filter_map(|s| s.e.schedule.next(s.state.last_scheduled.max(t)))
            .min();
        let has_foreign = served
            .iter()
            .any(|s| s.state.running.iter().any(|r| r.scheduler_pid != me));
        let mut wait = match next {
            Some(n) => (n - t).to_std().unwrap_or_default(),
            None => std::time::Duration::from_secs(24 * 3600),
        };
        if has_foreign {
            // An earlier scheduler's game day: look again for its end now and then.
            wait = wait.min(std::time::Duration::from_secs(30));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            Some((i, at, code)) = done.next(), if !done.is_empty() => {
                finish(&mut served[i], at, code, now(), What::Finished, log)?;
            }
            res = stop.changed() => {
                // A dropped sender is a stop too (nothing could ever stop the loop otherwise).
                if res.is_err() || *stop.borrow() {
                    for s in &served {
                        for (_, st) in &s.mine {
                            st();
                        }
                    }
                    while let Some((i, at, code)) = done.next().await {
                        finish(&mut served[i], at, code, now(), What::Stopped, log)?;
                    }
                    return Ok(());
                }
            }
        }
    }
}

fn finish(
    s: &mut Served,
    at: DateTime<Utc>,
    code: i32,
    t: DateTime<Utc>,
    what: What,
    log: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), StateError> {
    let me = std::process::id();
    if let Some(pos) = s
        .state
        .running
        .iter()
        .position(|r| r.scheduled_for == at && r.scheduler_pid == me)
    {
        s.state.running.remove(pos);
    }
    s.mine.retain(|(a, _)| *a != at);
    let detail = match code {
        0 => "GO".to_string(),
        c => format!("NO-GO (exit {c})"),
    };
    log(&format!(
        "{}: {} {}: {detail}",
        s.e.name,
        at.format("%Y-%m-%d %H:%M UTC"),
        what_word(what)
    ));
    s.state.record(Entry {
        scheduled_for: at,
        at: t,
        what,
        detail,
        exit_code: Some(code),
    });
    save(&s.path, &s.state)
}

pub fn what_word(w: What) -> &'static str {
    match w {
        What::Started => "started",
        What::Finished => "finished",
        What::Missed => "missed",
        What::SkippedRunning => "skipped",
        What::SkippedWindow => "skipped",
        What::SkippedPaused => "skipped",
        What::Replaced => "replaced",
        What::Stopped => "stopped",
        What::Interrupted => "interrupted",
        What::Failed => "failed",
    }
}
