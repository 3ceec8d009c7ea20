//! One drill per environment: a lock file per environment in the runs directory
//! (`<runs>/locks/<environment>.lock`), holding the run id, pid, host and start of the drill that
//! holds it.
//!
//! Taken with `create_new` (atomic on every local filesystem), released when the [`EnvLock`] is
//! dropped (only if it is still ours). A lock whose process is gone (same host, no such pid, or a
//! pid reused by another process: its start time differs) is *stale*: it is reported, and taken
//! over only when the caller says so (`--force-unlock`), by an atomic rename over it. A lock held
//! from another host cannot be checked from here and counts as held.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Who holds an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub run_id: String,
    pub experiment: String,
    pub environment: String,
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat`), to tell a live
    /// holder from a reused pid.
    pub pid_start: Option<u64>,
    pub host: String,
    pub started_at: DateTime<Utc>,
}

impl Holder {
    /// This process, about to run `run_id` of `experiment` against `environment`.
    pub fn this_process(run_id: &str, experiment: &str, environment: &str) -> Holder {
        let pid = std::process::id();
        Holder {
            run_id: run_id.into(),
            experiment: experiment.into(),
            environment: environment.into(),
            pid,
            pid_start: process_start(pid),
            host: hostname(),
            started_at: Utc::now(),
        }
    }

    /// Whether the holding process still runs, as far as this host can tell.
    pub fn liveness(&self) -> Liveness {
        if self.host != hostname() {
            return Liveness::OtherHost;
        }
        match process_start(self.pid) {
            None if !Path::new(&format!("/proc/{}", self.pid)).exists() => Liveness::Gone,
            None => Liveness::Alive,
            Some(start) if self.pid_start.is_some_and(|s| s != start) => Liveness::Gone,
            Some(_) => Liveness::Alive,
        }
    }

    /// "run R of experiment E (pid P on host H, since T)".
    pub fn describe(&self) -> String {
        format!(
            "run {} of experiment `{}` (pid {} on host {}, since {})",
            self.run_id,
            self.experiment,
            self.pid,
            self.host,
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Same host, and the process is gone (or its pid now belongs to another process).
    Gone,
    /// Held from another host: cannot be checked from here.
    OtherHost,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("environment `{env}` is in use by {}", holder.describe())]
    Held { env: String, holder: Box<Holder> },
    #[error("environment `{env}` is locked by {}, whose process is gone", holder.describe())]
    Stale { env: String, holder: Box<Holder> },
    #[error("environment `{env}`: its lock {path} cannot be read ({why})")]
    Unreadable {
        env: String,
        path: PathBuf,
        why: String,
    },
    #[error("cannot take the lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A held environment lock; dropping it releases the lock.
#[derive(Debug)]
pub struct EnvLock {
    path: PathBuf,
    run_id: String,
}

impl EnvLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for EnvLock {
    fn drop(&mut self) {
        // Only ours: a `--force-unlock` elsewhere may have taken it over.
        if read_holder(&self.path).is_ok_and(|h| h.run_id == self.run_id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The lock file of an environment.
pub fn lock_path(runs_dir: &Path, environment: &str) -> PathBuf {
    let safe: String = environment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    runs_dir.join("locks").join(format!("{safe}.lock"))
}

/// Who holds `environment` now, if anyone.
pub fn current(runs_dir: &Path, environment: &str) -> Result<Option<Holder>, LockError> {
    let path = lock_path(runs_dir, environment);
    if !path.exists() {
        return Ok(None);
    }
    read_settled(&path)
        .map(Some)
        .map_err(|why| LockError::Unreadable {
            env: environment.into(),
            path,
            why,
        })
}

/// Take the lock of `holder.environment`. A stale lock is taken over only with `force`; so is
/// a lock held from another host or one that cannot be read. Returns the lock and, when one was
/// taken over, its previous holder.
pub fn acquire(
    runs_dir: &Path,
    holder: &Holder,
    force: bool,
) -> Result<(EnvLock, Option<Holder>), LockError> {
    let path = lock_path(runs_dir, &holder.environment);
    let dir = path.parent().expect("locks/ has a parent");
    std::fs::create_dir_all(dir).map_err(|source| LockError::Io {
        path: path.clone(),
        source,
    })?;
    let text = serde_json::to_string_pretty(holder).expect("a holder serializes") + "\n";
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(text.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|source| LockError::Io {
                    path: path.clone(),
                    source,
                })?;
            return Ok((
                EnvLock {
                    path,
                    run_id: holder.run_id.clone(),
                },
                None,
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(LockError::Io { path, source }),
    }
    let env = holder.environment.clone();
    let previous = match read_settled(&path) {
        Ok(prev) => {
            let live = prev.liveness();
            if !force {
                return Err(match live {
                    Liveness::Gone => LockError::Stale {
                        env,
                        holder: Box::new(prev),
                    },
                    Liveness::Alive | Liveness::OtherHost => LockError::Held {
                        env,
                        holder: Box::new(prev),
                    },
                });
            }
            if live == Liveness::Alive {
                // Never take a lock from a drill that is still running here.
                return Err(LockError::Held {
                    env,
                    holder: Box::new(prev),
                });
            }
            Some(prev)
        }
        Err(why) if !force => return Err(LockError::Unreadable { env, path, why }),
        Err(_) => None,
    };
    // Take it over: write ours beside it and rename over it (atomic).
    let tmp = path.with_extension(format!("lock.{}", std::process::id()));
    std::fs::write(&tmp, text.as_bytes())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|source| LockError::Io {
            path: path.clone(),
            source,
        })?;
    Ok((
        EnvLock {
            path,
            run_id: holder.run_id.clone(),
        },
        previous,
    ))
}

fn read_holder(path: &Path) -> Result<Holder, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("not a firedrill lock: {e}"))
}

/// Read a lock, giving a holder that is between creating and writing it a moment to finish.
fn read_settled(path: &Path) -> Result<Holder, String> {
    let mut last = String::new();
    for _ in 0..20 {
        match read_holder(path) {
            Ok(h) => return Ok(h),
            Err(e) => last = e,
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(last)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// A process's start time (field 22 of `/proc/<pid>/stat`), `None` where there is no procfs or
/// no such process.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(run: &str) -> Holder {
        Holder::this_process(run, "exp", "prod-east")
    }

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::TempDir::new().unwrap();
        let (lock, prev) = acquire(dir.path(), &holder("r1"), false).unwrap();
        assert!(prev.is_none());
        assert_eq!(
            current(dir.path(), "prod-east").unwrap().unwrap().run_id,
            "r1"
        );
        // This process is alive: a second drill is refused, even with force.
        for force in [false, true] {
            match acquire(dir.path(), &holder("r2"), force) {
                Err(LockError::Held { holder, .. }) => assert_eq!(holder.run_id, "r1"),
                other => panic!("{other:?}"),
            }
        }
        // Another environment is free.
        let other = Holder {
            environment: "staging".into(),
            ..holder("r3")
        };
        let (_l, _) = acquire(dir.path(), &other, false).unwrap();
        drop(lock);
        assert!(current(dir.path(), "prod-east").unwrap().is_none());
        let (_lock, _) = acquire(dir.path(), &holder("r2"), false).unwrap();
    }

    #[test]
    fn a_dead_holder_is_stale_and_taken_over_only_with_force() {
        let dir = tempfile::TempDir::new().unwrap();
        // A process that has exited: its pid is gone (or reused, with another start time).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = Holder {
            pid,
            pid_start: Some(1),
            ..holder("dead-run")
        };
        let path = lock_path(dir.path(), "prod-east");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();
        assert_eq!(dead.liveness(), Liveness::Gone);
        match acquire(dir.path(), &holder("r2"), false) {
            Err(e @ LockError::Stale { .. }) => {
                assert!(e.to_string().contains("dead-run"), "{e}");
                assert!(e.to_string().contains("whose process is gone"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let (lock, prev) = acquire(dir.path(), &holder("r2"), true).unwrap();
        assert_eq!(prev.unwrap().run_id, "dead-run");
        assert_eq!(
            current(dir.path(), "prod-east").unwrap().unwrap().run_id,
            "r2"
        );
        drop(lock);
        assert!(!path.exists());
    }

    #[test]
    fn another_host_counts_as_held_and_garbage_is_reported() {
        let dir = tempfile::TempDir::new().unwrap();
        let remote = Holder {
            host: "some-other-host.example".into(),
            ..holder("remote-run")
        };
        assert_eq!(remote.liveness(), Liveness::OtherHost);
        let path = lock_path(dir.path(), "prod-east");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string(&remote).unwrap()).unwrap();
        assert!(matches!(
            acquire(dir.path(), &holder("r2"), false),
            Err(LockError::Held { .. })
        ));
        std::fs::write(&path, "{garbage").unwrap();
        assert!(matches!(
            acquire(dir.path(), &holder("r2"), false),
            Err(LockError::Unreadable { .. })
        ));
        let (_l, prev) = acquire(dir.path(), &holder("r2"), true).unwrap();
        assert!(prev.is_none());
    }

    #[test]
    fn names_become_safe_file_names() {
        assert!(lock_path(Path::new("runs"), "a/../b c").ends_with("locks/a_.._b_c.lock"));
    }
}
