//! Diagnostics for invalid input: what is wrong, where (`file:line:col` and the YAML path), and
//! what to do. Rendered like a compiler error, with the offending line and a caret.
//!
//! Invariant: every diagnostic has a YAML path and a help text; a location when the source has one.

use crate::lang::yaml::Loc;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it.
    pub file: String,
    pub loc: Option<Loc>,
    /// YAML path, e.g. `steps[3].after[0]`; empty for the whole document.
    pub path: String,
    pub message: String,
    pub help: String,
}

impl Diagnostic {
    /// `file:line:col` (or just `file`).
    pub fn position(&self) -> String {
        match self.loc {
            Some(l) => format!("{}:{}:{}", self.file, l.line, l.col),
            None => self.file.clone(),
        }
    }

    /// Render with the source line and a caret when the source text is available.
    pub fn render(&self, source: Option<&str>) -> String {
        self.render_as("error", source)
    }

    /// Render as a warning (same shape as an error).
    pub fn render_warning(&self, source: Option<&str>) -> String {
        self.render_as("warning", source)
    }

    fn render_as(&self, severity: &str, source: Option<&str>) -> String {
        let mut out = String::new();
        let at = if self.path.is_empty() {
            String::new()
        } else {
            format!(" (at `{}`)", self.path)
        };
        let _ = writeln!(
            out,
            "{severity}: {}: {}{}",
            self.position(),
            self.message,
            at
        );
        if let (Some(loc), Some(src)) = (self.loc, source)
            && let Some(line) = source_lines(src).nth(loc.line.saturating_sub(1) as usize)
        {
            let num = loc.line.to_string();
            let pad = " ".repeat(num.len());
            let line: String = line.chars().take(200).collect();
            let caret_at = (loc.col.saturating_sub(1) as usize).min(line.chars().count());
            let width =
                (loc.len.max(1) as usize).min(line.chars().count().saturating_sub(caret_at).max(1));
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{num} | {line}");
            let _ = writeln!(out, "{pad} | {}{}", " ".repeat(caret_at), "^".repeat(width));
        }
        let _ = writeln!(out, "  = help: {}", self.help);
        out
    }
}

/// Render a list of diagnostics followed by a count line.
pub fn render_all(diags: &[Diagnostic], source: Option<&str>) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.render(source));
        out.push('\n');
    }
    let n = diags.len();
    let _ = writeln!(
        out,
        "{n} problem{} found; nothing was run.",
        if n == 1 { "" } else { "s" }
    );
    out
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean `x`? " + "valid: a, b, c" help text.
pub fn did_you_mean(word: &str, candidates: &[&str], what: &str) -> String {
    let list = candidates
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match suggest(word, candidates.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? {what}: {list}"),
        None if candidates.is_empty() => format!("{what}: (none)"),
        None => format!("{what}: {list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_position_caret_and_help() {
        let d = Diagnostic {
            file: "x.yaml".into(),
            loc: Some(Loc {
                line: 2,
                col: 12,
                len: 5,
            }),
            path: "steps[0].after[0]".into(),
            message: "no step `injec`".into(),
            help: "did you mean `inject`?".into(),
        };
        let r = d.render(Some("steps:\n  - after: [injec]\n"));
        assert!(
            r.starts_with("error: x.yaml:2:12: no step `injec` (at `steps[0].after[0]`)"),
            "{r}"
        );
        assert!(
            r.contains("2 |   - after: [injec]\n  |            ^^^^^\n"),
            "{r}"
        );
        assert!(r.contains("help: did you mean `inject`?"));
    }

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(
            suggest("abort_wen", ["abort_when", "interval"]),
            Some("abort_when")
        );
        assert_eq!(suggest("zzzzzz", ["abort_when", "interval"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}

/// The lines of a source as YAML counts them: `\n`, `\r\n` and a lone `\r` each end one (a
/// location's line is the YAML scanner's).
pub fn source_lines(src: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(src);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\n', '\r']) {
            None => {
                rest = None;
                Some(s)
            }
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
        }
    })
}

#[cfg(test)]
mod source_line_tests {
    #[test]
    fn lines_end_at_lf_crlf_and_a_lone_cr() {
        let v: Vec<&str> = super::source_lines("a\nb\r\nc\rd").collect();
        assert_eq!(v, ["a", "b", "c", "d"]);
        assert_eq!(super::source_lines("").count(), 1);
    }
}
