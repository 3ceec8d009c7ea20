//! `firedrill schedule`: `next` (the next scheduled game days, in UTC and in the schedule's zone,
//! each marked when a blackout or the windows skip it), `run` (the foreground scheduler, see
//! [`crate::engine::timetable`]), `pause`, `resume` and `status`.

use super::gameday::load_playbook;
use super::{Failure, ScheduleNextArgs, internal};
use crate::engine::timetable;
use crate::exit;
use chrono::{DateTime, Utc};

pub(super) fn next(a: ScheduleNextArgs) -> Result<i32, Failure> {
    let (pb, _) = load_playbook(&a.playbook)?;
    let Some(s) = &pb.schedule else {
        return Err(Failure {
            code: exit::INVALID_INPUT,
            message: format!(
                "error: {}: the playbook has no `schedule:`\n  = help: add e.g. `schedule: {{cron: \"0 14 * * TUE#1\", timezone: UTC}}`",
                a.playbook.display()
            ),
        });
    };
    let after = match &a.after {
        None => Utc::now(),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| Failure {
                code: exit::INVALID_INPUT,
                message: format!("error: --after `{t}`: {e}\n  = help: write an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"),
            })?,
    };
    println!(
        "{}: `{}` in {} (concurrency {}, starting deadline {})",
        pb.metadata.name,
        s.cron,
        s.timezone.name(),
        s.concurrency.name(),
        crate::lang::duration::format(s.starting_deadline)
    );
    let times = s.upcoming(after, a.count as usize);
    if times.is_empty() {
        println!("  no occurrence found");
    }
    for (t, skip) in times {
        let local = t.with_timezone(&s.timezone);
        println!(
            "  {}  ({}){}",
            t.format("%Y-%m-%d %H:%M UTC"),
            local.format("%a %Y-%m-%d %H:%M %Z"),
            skip.map(|w| format!("  skipped: {w}")).unwrap_or_default()
        );
    }
    Ok(exit::PASS)
}

/// The playbooks `schedule run` serves: files as given; in a directory, every `.yaml`/`.yml`
/// whose `kind` is Playbook (validated; those without a schedule are skipped, and said so).
fn scheduled_playbooks(
    paths: &[std::path::PathBuf],
    approve: bool,
) -> Result<Vec<timetable::Entrant>, Failure> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<_> = std::fs::read_dir(p)
                .map_err(|e| Failure {
                    code: exit::INVALID_INPUT,
                    message: format!("error: {}: {e}", p.display()),
                })?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .filter(|f| {
                    std::fs::read_to_string(f)
                        .is_ok_and(|t| t.lines().any(|l| l.trim() == "kind: Playbook"))
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    for f in files {
        let (pb, _) = load_playbook(&f)?;
        let Some(schedule) = pb.schedule else {
            eprintln!("note: {}: no `schedule:`, not served", f.display());
            continue;
        };
        // Unattended game days with gates could only refuse at them: say so now.
        if !approve && let Some(d) = pb.drills.iter().find(|d| d.approval.is_some()) {
            return Err(Failure {
                code: exit::INVALID_INPUT,
                message: format!(
                    "error: {}: drill `{}` has an approval gate, and a scheduled game day has nobody to ask\n  = help: serve it with `schedule run --approve`, or remove the gate",
                    f.display(),
                    d.name.value
                ),
            });
        }
        if !names.insert(pb.metadata.name.clone()) {
            return Err(Failure {
                code: exit::INVALID_INPUT,
                message: format!(
                    "error: {}: playbook name `{}` is served twice\n  = help: playbooks keep their schedule's state by name: give each a distinct `metadata.name`",
                    f.display(),
                    pb.metadata.name
                ),
            });
        }
        out.push(timetable::Entrant {
            file: f,
            name: pb.metadata.name,
            schedule,
        });
    }
    if out.is_empty() {
        return Err(Failure { code: exit::INVALID_INPUT, message: "error: no playbook with a `schedule:` to serve\n  = help: pass playbook files or a directory of them".into() });
    }
    Ok(out)
}

/// Starts `firedrill gameday run` as a child process; stop sends it SIGTERM (it rolls back as
/// on Ctrl-C).
struct ChildLauncher {
    exe: std::path::PathBuf,
    runs_dir: std::path::PathBuf,
    lessons_dir: std::path::PathBuf,
    approve: bool,
}

impl timetable::Launcher for ChildLauncher {
    fn launch(
        &self,
        playbook: &std::path::Path,
        _at: DateTime<Utc>,
    ) -> Result<timetable::Launched, String> {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg("gameday").arg("run").arg(playbook).arg("-q");
        cmd.arg("--runs-dir")
            .arg(&self.runs_dir)
            .arg("--lessons-dir")
            .arg(&self.lessons_dir);
        if self.approve {
            cmd.arg("--approve");
        }
        cmd.stdin(std::process::Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        let pid = child.id();
        Ok(timetable::Launched {
            pid,
            done: Box::pin(async move {
                match child.wait().await {
                    Ok(s) => s.code().unwrap_or(exit::ABORTED),
                    Err(_) => exit::INTERNAL,
                }
            }),
            stop: Box::new(move || {
                if let Some(pid) = pid {
                    let _ = std::process::Command::new("kill")
                        .arg("-TERM")
                        .arg(pid.to_string())
                        .status();
                }
            }),
        })
    }
}

/// `schedule run`: the foreground scheduler (for a systemd unit or a container).
pub(super) fn run(a: super::ScheduleRunArgs) -> Result<i32, Failure> {
    let entrants = scheduled_playbooks(&a.playbooks, a.approve)?;
    for e in &entrants {
        let next = e.schedule.next(Utc::now());
        eprintln!(
            "serving {} (`{}` in {}, concurrency {}): next {}",
            e.name,
            e.schedule.cron,
            e.schedule.timezone.name(),
            e.schedule.concurrency.name(),
            next.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "never".into())
        );
    }
    let exe = std::env::current_exe()
        .map_err(|e| internal(format!("cannot find this executable: {e}")))?;
    let launcher = std::sync::Arc::new(ChildLauncher {
        exe,
        runs_dir: a.runs.runs_dir.clone(),
        lessons_dir: a.lessons.lessons_dir.clone(),
        approve: a.approve,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| internal(format!("cannot start the runtime: {e}")))?;
    let runs_dir = a.runs.runs_dir.clone();
    runtime
        .block_on(async move {
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{SignalKind, signal};
                    if let (Ok(mut t), Ok(mut i)) = (
                        signal(SignalKind::terminate()),
                        signal(SignalKind::interrupt()),
                    ) {
                        tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
                        eprintln!("stopping: the running game days get SIGTERM and roll back");
                        let _ = tx.send(true);
                        // Keep the sender: dropping it must not read as a second stop.
                        std::future::pending::<()>().await;
                    }
                }
                #[cfg(not(unix))]
                {
                    let _ = tokio::signal::ctrl_c().await;
                    let _ = tx.send(true);
                    std::future::pending::<()>().await;
                }
            });
            let now = || Utc::now();
            let log = |l: &str| eprintln!("{} {l}", Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
            timetable::run(entrants, &runs_dir, launcher, &now, rx, &log).await
        })
        .map_err(|e| Failure {
            code: exit::INVALID_INPUT,
            message: format!("error: {e}\n  = help: {}", e.help()),
        })?;
    Ok(exit::PASS)
}

/// `schedule pause` / `resume`: a marker file the scheduler reads before every decision.
pub(super) fn pause(a: super::SchedulePauseArgs, paused: bool) -> Result<i32, Failure> {
    let (pb, _) = load_playbook(&a.playbook)?;
    let marker = timetable::paused_path(&a.runs.runs_dir, &pb.metadata.name);
    let io = |e: std::io::Error| internal(format!("{}: {e}", marker.display()));
    if paused {
        if let Some(d) = marker.parent() {
            std::fs::create_dir_all(d).map_err(io)?;
        }
        std::fs::write(&marker, format!("paused at {}\n", Utc::now().to_rfc3339())).map_err(io)?;
        println!(
            "{}: paused; scheduled times are recorded as skipped until `firedrill schedule resume`",
            pb.metadata.name
        );
    } else {
        match std::fs::remove_file(&marker) {
            Ok(()) => println!("{}: resumed", pb.metadata.name),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("{}: was not paused", pb.metadata.name)
            }
            Err(e) => return Err(io(e)),
        }
    }
    Ok(exit::PASS)
}

/// `schedule status`: paused or not, what runs, the next time, and the recent history.
pub(super) fn status(a: super::SchedulePauseArgs) -> Result<i32, Failure> {
    let (pb, _) = load_playbook(&a.playbook)?;
    let name = &pb.metadata.name;
    let path = timetable::state_path(&a.runs.runs_dir, name);
    let state = timetable::load(&path).map_err(|e| Failure {
        code: exit::INVALID_INPUT,
        message: format!("error: {e}\n  = help: {}", e.help()),
    })?;
    let paused = timetable::paused_path(&a.runs.runs_dir, name).exists();
    println!("{name}: {}", if paused { "PAUSED" } else { "active" });
    if let Some(s) = &pb.schedule {
        let from = state
            .as_ref()
            .map(|st| st.last_scheduled.max(Utc::now()))
            .unwrap_or_else(Utc::now);
        if let Some(n) = s.next(from) {
            println!(
                "  next: {} (`{}` in {})",
                n.format("%Y-%m-%d %H:%M UTC"),
                s.cron,
                s.timezone.name()
            );
        }
    }
    match state {
        None => println!(
            "  no scheduler has served it yet ({} does not exist)",
            path.display()
        ),
        Some(st) => {
            for r in &st.running {
                println!(
                    "  running: scheduled {} started {}{}",
                    r.scheduled_for.format("%Y-%m-%d %H:%M UTC"),
                    r.started.format("%H:%M:%S"),
                    r.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                );
            }
            println!(
                "  handled up to {}; last {} of {} entries:",
                st.last_scheduled.format("%Y-%m-%d %H:%M UTC"),
                st.history.len().min(10),
                st.history.len()
            );
            for e in st.history.iter().rev().take(10).rev() {
                println!(
                    "    {} {:<11} {}",
                    e.scheduled_for.format("%Y-%m-%d %H:%M UTC"),
                    timetable::what_word(e.what),
                    e.detail
                );
            }
        }
    }
    Ok(exit::PASS)
}

/// `schedule export --format cronjob`: a Kubernetes CronJob running `firedrill gameday run`.
pub(super) fn export(a: super::ScheduleExportArgs) -> Result<i32, Failure> {
    let (pb, _) = load_playbook(&a.playbook)?;
    let Some(s) = &pb.schedule else {
        return Err(Failure {
            code: exit::INVALID_INPUT,
            message: format!(
                "error: {}: the playbook has no `schedule:` to export\n  = help: add e.g. `schedule: {{cron: \"0 14 * * TUE#1\", timezone: UTC}}`",
                a.playbook.display()
            ),
        });
    };
    let (k8s_cron, widened) = crate::lang::playbook::kubernetes_cron(&s.cron);
    let q = |v: &str| serde_json::to_string(v).unwrap_or_default();
    let name = format!("firedrill-{}", pb.metadata.name)
        .to_lowercase()
        .replace('_', "-");
    let name: String = name
        .chars()
        .take(52)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string();
    let policy = match s.concurrency {
        crate::lang::playbook::Concurrency::Forbid => "Forbid",
        crate::lang::playbook::Concurrency::Allow => "Allow",
        crate::lang::playbook::Concurrency::Replace => "Replace",
    };
    let playbook_arg = a
        .playbook_path
        .clone()
        .unwrap_or_else(|| a.playbook.display().to_string());
    let mut args = vec![
        "gameday".to_string(),
        "run".into(),
        playbook_arg,
        "--if-due".into(),
    ];
    if a.approve {
        args.push("--approve".into());
    }
    let args: Vec<String> = args.iter().map(|x| q(x)).collect();
    let labels = format!(
        "app.kubernetes.io/name: firedrill\n        app.kubernetes.io/component: gameday\n        firedrill.dev/playbook: {}",
        q(&pb.metadata.name)
    );
    let yaml = format!(
        r#"# Generated by `firedrill schedule export` from {file}.
# Schedule `{cron}` ({tz}){wide}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
  namespace: {ns}
  labels:
    app.kubernetes.io/name: firedrill
    app.kubernetes.io/component: gameday
    firedrill.dev/playbook: {pbname}
  annotations:
    firedrill.dev/cron: {qcron}
    firedrill.dev/widened: {qwide}
spec:
  schedule: {qk8s}
  timeZone: {qtz}
  concurrencyPolicy: {policy}
  startingDeadlineSeconds: {deadline}
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 5
  jobTemplate:
    spec:
      # A failed game day is a finding, not something to retry.
      backoffLimit: 0
      template:
        metadata:
          labels:
            {labels}
        spec:
          serviceAccountName: {sa}
          restartPolicy: Never
          # SIGTERM (concurrencyPolicy Replace, a deleted job, a drained node) rolls the drills
          # back: give the rollbacks time before SIGKILL.
          terminationGracePeriodSeconds: {grace}
          securityContext:
            runAsNonRoot: true
            runAsUser: 65532
            runAsGroup: 65532
            fsGroup: 65532
          containers:
            - name: firedrill
              image: {image}
              args: [{args}]
              env:
                - name: FIREDRILL_RUNS_DIR
                  value: /var/lib/firedrill/runs
                - name: FIREDRILL_LESSONS_DIR
                  value: /var/lib/firedrill/lessons
              securityContext:
                allowPrivilegeEscalation: false
                readOnlyRootFilesystem: true
                capabilities:
                  drop: [ALL]
              volumeMounts:
                - name: runs
                  mountPath: /var/lib/firedrill
          volumes:
            # Runs, lessons and game days must outlive the pod: they are the evidence.
            - name: runs
              persistentVolumeClaim:
                claimName: {claim}
"#,
        file = a.playbook.display(),
        cron = s.cron,
        tz = s.timezone.name(),
        wide = if widened {
            format!(
                ": Kubernetes cron has no `#`, `L` or `W`, so the CronJob fires on the wider `{k8s_cron}` and\n# `gameday run --if-due` skips the times the playbook's schedule does not have."
            )
        } else {
            String::new()
        },
        name = name,
        ns = q(&a.namespace),
        pbname = q(&pb.metadata.name),
        qcron = q(&s.cron),
        qwide = q(if widened { "true" } else { "false" }),
        qk8s = q(&k8s_cron),
        qtz = q(s.timezone.name()),
        deadline = s.starting_deadline.as_secs().max(10),
        labels = labels.replace("\n        ", "\n            "),
        sa = q(&a.service_account),
        grace = a.grace_seconds,
        image = q(&a.image),
        args = args.join(", "),
        claim = q(&a.runs_claim),
    );
    match &a.out {
        Some(p) => std::fs::write(p, &yaml)
            .map_err(|e| internal(format!("cannot write {}: {e}", p.display())))?,
        None => print!("{yaml}"),
    }
    if widened {
        eprintln!(
            "note: `{}` has no Kubernetes equivalent: the CronJob fires on `{k8s_cron}` and the game day runs with --if-due, which skips the times the playbook's schedule does not have",
            s.cron
        );
    }
    if !a.approve && pb.drills.iter().any(|d| d.approval.is_some()) {
        eprintln!(
            "note: the playbook has approval gates and the job runs unattended: they fail closed (NO-GO) unless you export with --approve"
        );
    }
    Ok(exit::PASS)
}
