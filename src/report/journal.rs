//! The append-only JSONL journal of a run, and the runs directory that holds one folder per run.
//!
//! Layout: `<root>/<run-id>/journal.jsonl` (one [`Record`] per line, written as it happens) and
//! `<root>/<run-id>/summary.json` (the [`RunSummary`], written at the end of a run).
//!
//! Invariant: every appended record is one `write_all` of one complete line straight to the file
//! (no userspace buffer), so a process that dies loses nothing already appended; at worst the
//! last line is cut short, which [`read_journal`] tolerates and flags.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::engine::events::{Record, VerdictKind};
use crate::report::summary::{Integrity, RunSummary};
use serde_json::Value as Json;

/// Default runs directory, relative to the working directory.
pub const DEFAULT_RUNS_DIR: &str = ".firedrill/runs";
/// File name of the journal inside a run directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// File name of the summary inside a run directory.
pub const SUMMARY_FILE: &str = "summary.json";

/// What went wrong, named for the step that failed; every variant carries the path involved.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create run directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("journal {} already exists; a run's journal is never overwritten", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("cannot create journal {}", path.display())]
    CreateJournal {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot serialize a record for journal {}", path.display())]
    Serialize {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot append to journal {}", path.display())]
    Append {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot sync journal {} to disk", path.display())]
    Sync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read journal {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}:{line}: not a valid journal record: {source}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write summary {}", path.display())]
    WriteSummary {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot serialize the summary for {}", path.display())]
    SerializeSummary {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read summary {}", path.display())]
    ReadSummary {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a valid run summary: {source}", path.display())]
    ParseSummary {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot list runs directory {}", path.display())]
    ListRuns {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no runs in {}; run a drill first (`firedrill run <experiment>`)", path.display())]
    NoRuns { path: PathBuf },
    #[error("no run matches `{spec}` in {}; give a run id, a unique prefix of one, `latest`, or a path to a run directory or journal (see `firedrill runs`)", path.display())]
    NoMatch { spec: String, path: PathBuf },
    #[error("`{spec}` is ambiguous in {}: it matches {}; give more characters", path.display(), candidates.join(", "))]
    Ambiguous {
        spec: String,
        path: PathBuf,
        candidates: Vec<String>,
    },
    #[error("{} is not a run: it has neither {JOURNAL_FILE} nor {SUMMARY_FILE}", path.display())]
    NotARun { path: PathBuf },
}

/// The hash chained before a journal's first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain: `sha256(previous hash (hex) + "\n" + the line without its hash)`, hex.
pub fn chain_hash(prev: &str, body: &[u8]) -> String {
    let mut h = chain_hasher(prev);
    sha2::Digest::update(&mut h, body);
    hex(&sha2::Digest::finalize(h))
}

/// A hasher fed with the chain's prefix: the previous hash and a newline.
fn chain_hasher(prev: &str) -> sha2::Sha256 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// An open journal, appending one line per event. Each line ends with `"hash":"<sha256>"`,
/// chained to the line before ([`chain_hash`]); [`verify_journal`] checks the chain.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    prev: String,
}

impl Journal {
    /// Create `run_dir` (and parents) and a new, empty `journal.jsonl` in it.
    /// Errors if the journal already exists.
    pub fn create(run_dir: &Path) -> Result<Journal, JournalError> {
        fs::create_dir_all(run_dir).map_err(|source| JournalError::CreateDir {
            path: run_dir.to_path_buf(),
            source,
        })?;
        let path = run_dir.join(JOURNAL_FILE);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| {
                if source.kind() == io::ErrorKind::AlreadyExists {
                    JournalError::AlreadyExists { path: path.clone() }
                } else {
                    JournalError::CreateJournal {
                        path: path.clone(),
                        source,
                    }
                }
            })?;
        Ok(Journal {
            path,
            file,
            prev: GENESIS.to_string(),
        })
    }

    /// Open an existing run's journal to append to it (`firedrill recover`): the chain goes on
    /// from its last complete line. A torn last line (the process died mid-write) is cut off
    /// first, so the next line starts on a line of its own. Returns the journal and the last
    /// line's sequence number.
    pub fn reopen(run_dir: &Path) -> Result<(Journal, u64), JournalError> {
        let path = run_dir.join(JOURNAL_FILE);
        let read_err = |source| JournalError::Read {
            path: path.clone(),
            source,
        };
        let bytes = fs::read(&path).map_err(read_err)?;
        let complete = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None => 0,
        };
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(read_err)?;
        if complete < bytes.len() {
            file.set_len(complete as u64).map_err(read_err)?;
        }
        let last = bytes[..complete]
            .split(|b| *b == b'\n')
            .rev()
            .find(|l| !l.is_empty())
            .and_then(|l| serde_json::from_slice::<Json>(l).ok());
        let prev = last
            .as_ref()
            .and_then(|j| j.get("hash"))
            .and_then(Json::as_str)
            .unwrap_or(GENESIS)
            .to_string();
        let seq = last
            .as_ref()
            .and_then(|j| j.get("seq"))
            .and_then(Json::as_u64)
            .unwrap_or(0);
        Ok((Journal { path, file, prev }, seq))
    }

    /// The hash of the last line written (the genesis hash before the first).
    pub fn last_hash(&self) -> &str {
        &self.prev
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record as one line, chained to the last, with a single unbuffered write.
    pub fn append(&mut self, rec: &Record) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(rec).map_err(|source| JournalError::Serialize {
            path: self.path.clone(),
            source,
        })?;
        let hash = chain_hash(&self.prev, &line);
        // `{...}` → `{...,"hash":"<hex>"}`: the hash is the last key, so the line without it is
        // exactly the bytes hashed.
        line.pop();
        line.extend_from_slice(format!(",\"hash\":\"{hash}\"}}\n").as_bytes());
        self.file
            .write_all(&line)
            .map_err(|source| JournalError::Append {
                path: self.path.clone(),
                source,
            })?;
        self.prev = hash;
        Ok(())
    }

    /// Flush the journal to stable storage (end of run).
    pub fn finish(&mut self) -> Result<(), JournalError> {
        self.file.sync_all().map_err(|source| JournalError::Sync {
            path: self.path.clone(),
            source,
        })
    }
}

/// The records of a journal, and whether its last line was cut short (and dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct JournalRead {
    pub records: Vec<Record>,
    pub truncated_tail: bool,
}

/// Read a journal. A last line without its newline that does not parse is a write the process
/// did not finish: it is dropped and flagged. Any other bad line is an error naming `path:line`.
pub fn read_journal(path: &Path) -> Result<JournalRead, JournalError> {
    let text = fs::read_to_string(path).map_err(|source| JournalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let ends_with_newline = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::with_capacity(lines.len());
    let mut truncated_tail = false;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            Err(_) if i + 1 == lines.len() && !ends_with_newline => truncated_tail = true,
            Err(source) => {
                return Err(JournalError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    source,
                });
            }
        }
    }
    Ok(JournalRead {
        records,
        truncated_tail,
    })
}

/// Check a journal's hash chain: every line's hash must be the hash of its own bytes chained to
/// the line before. The first line that does not verify is named (a change to a line breaks
/// it; a removed or inserted line breaks the next one). A torn last line (the process died
/// mid-write) is reported, not counted as a break. Journals written before lines were chained
/// have no hashes: `chained` is false.
pub fn verify_journal(path: &Path) -> Result<Integrity, JournalError> {
    use std::io::BufRead;
    let read_err = |source| JournalError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Line by line: what this holds never grows with the journal.
    let mut reader = io::BufReader::with_capacity(1 << 16, File::open(path).map_err(read_err)?);
    let mut out = Integrity {
        records: 0,
        chained: true,
        final_sha256: None,
        broken: None,
        torn_tail: false,
    };
    let mut prev = GENESIS.to_string();
    let mut line = Vec::new();
    let mut i = 0usize;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(read_err)? == 0 {
            break;
        }
        i += 1;
        // Only the last line can lack its newline.
        let torn = line.last() != Some(&b'\n');
        if !torn {
            line.pop();
        }
        // The common case without parsing: the line ends with its hash, which chains.
        if let Some((body_end, hash)) = hash_suffix(&line) {
            let mut h = chain_hasher(&prev);
            sha2::Digest::update(&mut h, &line[..body_end]);
            sha2::Digest::update(&mut h, b"}");
            if hex(&sha2::Digest::finalize(h)) == hash {
                out.records += 1;
                prev = hash.to_string();
                continue;
            }
        }
        // Something is wrong with this line: say what.
        let parsed = std::str::from_utf8(&line)
            .ok()
            .and_then(|t| serde_json::from_str::<Json>(t).ok());
        let Some(parsed) = parsed else {
            if torn {
                out.torn_tail = true;
                break;
            }
            out.broken = Some(format!("line {i}: not a JSON record"));
            break;
        };
        let Some(hash) = parsed.get("hash").and_then(Json::as_str) else {
            if i == 1 {
                // Written before lines were chained: count the lines, check nothing.
                out.chained = false;
                out.records = 1 + count_lines(&mut reader).map_err(read_err)?;
                return Ok(out);
            }
            out.broken = Some(format!(
                "line {i}: it has no hash (a line was inserted or rewritten)"
            ));
            break;
        };
        out.broken = Some(if hash_suffix(&line).is_none_or(|(_, h)| h != hash) {
            format!("line {i}: its hash is not the line's last key (the line was rewritten)")
        } else {
            format!(
                "line {i} (seq {}): its hash does not match its content and the line before it (changed, removed or inserted after it was written)",
                parsed
                    .get("seq")
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "?".into())
            )
        });
        break;
    }
    if out.records > 0 {
        out.final_sha256 = Some(prev);
    }
    Ok(out)
}

/// A line's `,"hash":"<64 hex>"}` ending: (where the body ends, the hash).
fn hash_suffix(line: &[u8]) -> Option<(usize, &str)> {
    const PREFIX: &[u8] = b",\"hash\":\"";
    let n = line.len();
    let tail_len = PREFIX.len() + 64 + 2;
    if n < tail_len + 1 || !line.ends_with(b"\"}") {
        return None;
    }
    let start = n - tail_len;
    if &line[start..start + PREFIX.len()] != PREFIX {
        return None;
    }
    let hash = std::str::from_utf8(&line[start + PREFIX.len()..n - 2]).ok()?;
    hash.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        .then_some((start, hash))
}

/// The non-empty lines left in a reader.
fn count_lines(reader: &mut impl io::BufRead) -> io::Result<usize> {
    let mut n = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(n);
        }
        if !line.trim_ascii().is_empty() {
            n += 1;
        }
    }
}

/// Write `summary.json` (pretty) into `run_dir`, atomically (temp file + rename).
pub fn write_summary(run_dir: &Path, summary: &RunSummary) -> Result<PathBuf, JournalError> {
    let path = run_dir.join(SUMMARY_FILE);
    let tmp = run_dir.join(format!("{SUMMARY_FILE}.tmp"));
    let write_err = |source| JournalError::WriteSummary {
        path: path.clone(),
        source,
    };
    // Streamed to the file: no copy of the text in memory.
    let mut w = io::BufWriter::new(File::create(&tmp).map_err(write_err)?);
    serde_json::to_writer_pretty(&mut w, summary).map_err(|source| {
        JournalError::SerializeSummary {
            path: path.clone(),
            source,
        }
    })?;
    w.write_all(b"\n")
        .and_then(|()| w.flush())
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(write_err)?;
    Ok(path)
}

/// Read `summary.json` from `run_dir`, if there is one.
pub fn read_summary(run_dir: &Path) -> Result<Option<RunSummary>, JournalError> {
    let path = run_dir.join(SUMMARY_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(JournalError::ReadSummary { path, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| JournalError::ParseSummary { path, source })
}

/// Load a run's summary: `summary.json` if present, else folded from its journal (flagging a
/// cut-short last line).
pub fn load_summary(run_dir: &Path) -> Result<RunSummary, JournalError> {
    if let Some(s) = read_summary(run_dir)? {
        return Ok(s);
    }
    let journal = run_dir.join(JOURNAL_FILE);
    if !journal.is_file() {
        return Err(JournalError::NotARun {
            path: run_dir.to_path_buf(),
        });
    }
    let read = read_journal(&journal)?;
    let mut s = RunSummary::from_records(&read.records);
    s.journal_truncated_tail = read.truncated_tail;
    Ok(s)
}

/// A sortable run id: `20261122T143501Z-az-loss-3f2a` (UTC time, experiment slug, 4 hex of salt).
pub fn new_run_id(experiment: &str, at: DateTime<Utc>, salt: u64) -> String {
    format!(
        "{}-{}-{:04x}",
        at.format("%Y%m%dT%H%M%SZ"),
        slug(experiment),
        salt & 0xffff
    )
}

/// Lower-case `[a-z0-9-]` form of a name, safe as a path component; never empty.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    if out.is_empty() {
        "run".to_string()
    } else {
        out.to_string()
    }
}

/// One run in the runs directory.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEntry {
    pub id: String,
    pub dir: PathBuf,
    pub experiment: String,
    pub started: Option<DateTime<Utc>>,
    pub verdict: Option<VerdictKind>,
    pub exit_code: Option<i32>,
    /// Whether the journal reached `RunFinished`. A run that did not was cut off: the process died.
    pub finished: bool,
    /// Why the run's files could not be read, if they could not (the entry is still listed).
    pub problem: Option<String>,
}

impl RunEntry {
    /// One-word-or-so status for listings: the verdict, or why there is none.
    pub fn status(&self) -> String {
        if let Some(p) = &self.problem {
            return format!("unreadable ({p})");
        }
        match self.verdict {
            Some(v) => crate::report::summary::verdict_label(v).to_lowercase(),
            None => "unfinished (the process died before the run finished)".to_string(),
        }
    }

    fn load(dir: &Path) -> Option<RunEntry> {
        let has_journal = dir.join(JOURNAL_FILE).is_file();
        let has_summary = dir.join(SUMMARY_FILE).is_file();
        if !has_journal && !has_summary {
            return None;
        }
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Some(match load_summary(dir) {
            Ok(s) => RunEntry {
                id: if s.run_id.is_empty() {
                    dir_name
                } else {
                    s.run_id.clone()
                },
                dir: dir.to_path_buf(),
                experiment: s.experiment.clone(),
                started: s.started,
                verdict: s.verdict.as_ref().map(|v| v.kind),
                exit_code: s.verdict.as_ref().map(|v| v.exit_code),
                finished: s.is_finished(),
                problem: None,
            },
            Err(e) => RunEntry {
                id: dir_name,
                dir: dir.to_path_buf(),
                experiment: String::new(),
                started: None,
                verdict: None,
                exit_code: None,
                finished: false,
                problem: Some(e.to_string()),
            },
        })
    }
}

/// Every run under `root`, newest first (run ids sort by time). A missing root has no runs.
/// A run whose files cannot be read is listed with its `problem`, not dropped.
pub fn list_runs(root: &Path) -> Result<Vec<RunEntry>, JournalError> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(JournalError::ListRuns {
                path: root.to_path_buf(),
                source,
            });
        }
    };
    let mut runs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| JournalError::ListRuns {
            path: root.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir()
            && let Some(run) = RunEntry::load(&path)
        {
            runs.push(run);
        }
    }
    runs.sort_by(|a, b| {
        let name = |r: &RunEntry| r.dir.file_name().map(|n| n.to_os_string());
        name(b).cmp(&name(a))
    });
    Ok(runs)
}

/// The runs of `experiment` started before `before` (at most `max`, oldest first), as trend
/// points; `exclude` is the run the trend is for. Unreadable runs are skipped.
pub fn experiment_history(
    root: &Path,
    experiment: &str,
    exclude: &str,
    before: Option<DateTime<Utc>>,
    max: usize,
) -> Vec<crate::report::trend::Point> {
    let Ok(runs) = list_runs(root) else {
        return Vec::new();
    };
    let mut mine: Vec<&RunEntry> = runs
        .iter()
        .filter(|r| r.experiment == experiment && r.id != exclude && r.problem.is_none())
        .filter(|r| match (before, r.started) {
            (Some(b), Some(s)) => s < b,
            _ => true,
        })
        .collect();
    // Newest first by start time (ids started in the same second sort by their salt).
    mine.sort_by_key(|r| std::cmp::Reverse(r.started));
    let mut out: Vec<crate::report::trend::Point> = mine
        .into_iter()
        .take(max)
        .filter_map(|r| load_summary(&r.dir).ok())
        .map(|s| crate::report::trend::Point::of(&s))
        .collect();
    out.reverse();
    out
}

/// Find one run: `spec` is a full run id, a unique prefix of one, `latest`, or a path to a run
/// directory or to a journal file.
pub fn resolve_run(root: &Path, spec: &str) -> Result<RunEntry, JournalError> {
    let runs = list_runs(root)?;
    let id_of = |r: &RunEntry| {
        r.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if let Some(r) = runs.iter().find(|r| id_of(r) == spec || r.id == spec) {
        return Ok(r.clone());
    }
    if spec == "latest" {
        return runs.into_iter().next().ok_or_else(|| JournalError::NoRuns {
            path: root.to_path_buf(),
        });
    }
    let as_path = Path::new(spec);
    if as_path.exists() {
        let dir = if as_path.is_file() {
            as_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
        } else {
            as_path
        };
        return RunEntry::load(dir).ok_or_else(|| JournalError::NotARun {
            path: dir.to_path_buf(),
        });
    }
    let matches: Vec<&RunEntry> = runs
        .iter()
        .filter(|r| !spec.is_empty() && id_of(r).starts_with(spec))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(JournalError::NoMatch {
            spec: spec.to_string(),
            path: root.to_path_buf(),
        }),
        many => Err(JournalError::Ambiguous {
            spec: spec.to_string(),
            path: root.to_path_buf(),
            candidates: many.iter().map(|r| id_of(r)).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    fn write_run(root: &Path, id: &str, records: &[Record], summary: bool) -> PathBuf {
        let dir = root.join(id);
        let mut j = Journal::create(&dir).unwrap();
        for r in records {
            j.append(r).unwrap();
        }
        j.finish().unwrap();
        if summary {
            write_summary(&dir, &RunSummary::from_records(records)).unwrap();
        }
        dir
    }

    #[test]
    fn the_chain_verifies_and_every_one_byte_change_is_caught() {
        let tmp = tempfile::tempdir().unwrap();
        let records = fixtures::pass_run();
        let dir = write_run(tmp.path(), "r1", &records, false);
        let path = dir.join(JOURNAL_FILE);
        let good = verify_journal(&path).unwrap();
        assert!(
            good.chained && good.broken.is_none() && !good.torn_tail,
            "{good:?}"
        );
        assert_eq!(good.records, records.len());
        let pinned = good.final_sha256.clone().unwrap();
        let original = fs::read(&path).unwrap();
        // Change each byte (a sample of every 7th, plus the first and last few) to another.
        let positions: Vec<usize> = (0..original.len())
            .filter(|i| i % 7 == 0 || *i < 8 || *i + 8 >= original.len())
            .collect();
        assert!(positions.len() > 100);
        for &at in &positions {
            let mut bytes = original.clone();
            bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
            fs::write(&path, &bytes).unwrap();
            let v = verify_journal(&path).unwrap();
            let caught = v.broken.is_some() || v.final_sha256.as_deref() != Some(&pinned);
            assert!(caught, "a change at byte {at} went unnoticed: {v:?}");
        }
        // A removed line breaks the chain at the next one; cutting the end changes the final hash.
        let text = String::from_utf8(original.clone()).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(2);
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        let v = verify_journal(&path).unwrap();
        assert!(v.broken.as_deref().unwrap().starts_with("line 3 "), "{v:?}");
        assert_eq!(v.records, 2);
        let cut: Vec<&str> = text.lines().take(4).collect();
        fs::write(&path, cut.join("\n") + "\n").unwrap();
        let v = verify_journal(&path).unwrap();
        assert!(v.broken.is_none());
        assert_ne!(v.final_sha256.as_deref(), Some(pinned.as_str()));
        // A torn last line (died mid-write) is reported, not a break.
        fs::write(&path, &original[..original.len() - 10]).unwrap();
        let v = verify_journal(&path).unwrap();
        assert!(v.torn_tail && v.broken.is_none(), "{v:?}");
        assert_eq!(v.records, records.len() - 1);
        // A journal from before chaining has nothing to check.
        let old: String = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        fs::write(&path, old).unwrap();
        assert!(!verify_journal(&path).unwrap().chained);
    }

    #[test]
    fn append_then_read_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let records = fixtures::pass_run();
        let dir = write_run(tmp.path(), "r1", &records, false);
        let read = read_journal(&dir.join(JOURNAL_FILE)).unwrap();
        assert_eq!(read.records, records);
        assert!(!read.truncated_tail);
        let text = fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
        assert_eq!(text.lines().count(), records.len(), "one line per event");
    }

    #[test]
    fn create_refuses_an_existing_journal() {
        let tmp = tempfile::tempdir().unwrap();
        Journal::create(tmp.path()).unwrap();
        let err = Journal::create(tmp.path()).unwrap_err();
        assert!(matches!(err, JournalError::AlreadyExists { .. }), "{err}");
    }

    #[test]
    fn truncated_last_line_is_dropped_and_flagged() {
        let tmp = tempfile::tempdir().unwrap();
        let records = fixtures::pass_run();
        let dir = write_run(tmp.path(), "r1", &records[..5], false);
        let path = dir.join(JOURNAL_FILE);
        let full = serde_json::to_string(&records[5]).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&full.as_bytes()[..full.len() / 2]).unwrap();
        let read = read_journal(&path).unwrap();
        assert!(read.truncated_tail);
        assert_eq!(read.records, records[..5]);
    }

    #[test]
    fn corrupt_middle_line_is_an_error_with_path_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let records = fixtures::pass_run();
        let path = tmp.path().join(JOURNAL_FILE);
        let mut text = String::new();
        for (i, r) in records[..4].iter().enumerate() {
            if i == 2 {
                text.push_str("{\"seq\": 2, \"type\": \"no_such_event\"}\n");
            } else {
                text.push_str(&serde_json::to_string(r).unwrap());
                text.push('\n');
            }
        }
        fs::write(&path, text).unwrap();
        let err = read_journal(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, JournalError::Parse { line: 3, .. }), "{msg}");
        assert!(msg.contains(&format!("{}:3:", path.display())), "{msg}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn run_ids_are_sortable_and_salted() {
        let id = new_run_id("AZ loss!", fixtures::t0(), 0x1234_3f2a);
        assert_eq!(id, "20261122T143501Z-az-loss-3f2a");
        let later = new_run_id("AZ loss!", fixtures::t0() + chrono::Duration::seconds(1), 0);
        assert!(later > id);
        assert!(later.ends_with("-0000"));
    }

    #[test]
    fn list_and_resolve_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        assert!(list_runs(&root.join("missing")).unwrap().is_empty());
        let a = "20261120T100000Z-az-loss-aaaa";
        let b = "20261121T100000Z-az-loss-bbbb";
        let c = "20261121T110000Z-az-loss-cccc";
        write_run(root, a, &fixtures::missed_rto_run_with_id(a), true);
        write_run(root, b, &fixtures::missed_rto_run_with_id(b), false);
        // c: the process died mid-run.
        let mut partial = fixtures::partial_run();
        if let crate::engine::events::Event::RunStarted { run_id, .. } = &mut partial[0].event {
            *run_id = c.to_string();
        }
        write_run(root, c, &partial, false);
        fs::create_dir(root.join("not-a-run")).unwrap();

        let runs = list_runs(root).unwrap();
        let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, [c, b, a], "newest first");
        assert!(!runs[0].finished);
        assert_eq!(runs[0].verdict, None);
        assert!(
            runs[0].status().contains("process died"),
            "{}",
            runs[0].status()
        );
        assert_eq!(runs[1].verdict, Some(VerdictKind::Missed));
        assert_eq!(runs[1].exit_code, Some(crate::exit::MISSED));
        assert!(runs[2].finished && runs[2].experiment == "az-loss");
        assert_eq!(runs[2].started, Some(fixtures::t0()));

        assert_eq!(resolve_run(root, "latest").unwrap().id, c);
        assert_eq!(resolve_run(root, a).unwrap().id, a);
        assert_eq!(resolve_run(root, "20261120").unwrap().id, a);
        let err = resolve_run(root, "20261121").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, JournalError::Ambiguous { .. }), "{msg}");
        assert!(msg.contains(b) && msg.contains(c), "{msg}");
        let err = resolve_run(root, "2025").unwrap_err();
        assert!(matches!(err, JournalError::NoMatch { .. }), "{err}");
        let by_dir = resolve_run(root, root.join(b).to_str().unwrap()).unwrap();
        assert_eq!(by_dir.id, b);
        let by_file = resolve_run(root, root.join(a).join(JOURNAL_FILE).to_str().unwrap());
        assert_eq!(by_file.unwrap().id, a);
        let err = resolve_run(root, root.join("not-a-run").to_str().unwrap()).unwrap_err();
        assert!(matches!(err, JournalError::NotARun { .. }), "{err}");

        let empty = tempfile::tempdir().unwrap();
        let err = resolve_run(empty.path(), "latest").unwrap_err();
        assert!(matches!(err, JournalError::NoRuns { .. }), "{err}");
    }

    #[test]
    fn summary_is_written_and_preferred_when_listing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_run(tmp.path(), fixtures::RUN_ID, &fixtures::pass_run(), true);
        let s = read_summary(&dir).unwrap().unwrap();
        assert_eq!(s, RunSummary::from_records(&fixtures::pass_run()));
        // Break the journal: listing still works from summary.json.
        fs::write(dir.join(JOURNAL_FILE), "garbage\n").unwrap();
        let runs = list_runs(tmp.path()).unwrap();
        assert_eq!(runs[0].verdict, Some(VerdictKind::Pass));
        assert!(runs[0].problem.is_none());
        fs::remove_file(dir.join(SUMMARY_FILE)).unwrap();
        let runs = list_runs(tmp.path()).unwrap();
        assert!(runs[0].problem.as_deref().unwrap().contains(":1:"));
    }
}
