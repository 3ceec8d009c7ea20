//! Typed decoding of located YAML nodes that collects *every* problem in one pass.
//!
//! serde stops at the first error; users fixing an experiment want all of them at once, each with
//! `file:line:col`, the YAML path and a fix. A decoder here returns `None` for a value it could not
//! decode, records why in [`Cx`], and carries on with the siblings. Unknown keys are errors with a
//! "did you mean" suggestion: a typo in an abort condition must never silently disable a safety net.
//!
//! Invariant: a `Some` result from a top-level decode with `cx.diags` empty is fully valid input.

use crate::lang::diag::{Diagnostic, did_you_mean};
use crate::lang::yaml::{Loc, Node, NodeKind};
use std::time::Duration;

/// One segment of a YAML path.
#[derive(Debug, Clone)]
pub enum Seg {
    Key(String),
    Idx(usize),
}

/// Decoding context: the file name, the current YAML path and the problems found so far.
pub struct Cx {
    pub file: String,
    path: Vec<Seg>,
    pub diags: Vec<Diagnostic>,
    /// Problems that do not stop the drill (the service resolves them at run time), reported by
    /// `validate` and `run`.
    pub warnings: Vec<Diagnostic>,
}

impl Cx {
    pub fn new(file: impl Into<String>) -> Cx {
        Cx {
            file: file.into(),
            path: Vec::new(),
            diags: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn path_string(&self) -> String {
        path_to_string(&self.path)
    }

    pub fn error(&mut self, loc: Loc, message: impl Into<String>, help: impl Into<String>) {
        let path = self.path_string();
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            loc: Some(loc),
            path,
            message: message.into(),
            help: help.into(),
        });
    }

    /// A warning at the current path: worth saying, but the drill can run.
    pub fn warning(&mut self, loc: Loc, message: impl Into<String>, help: impl Into<String>) {
        let path = self.path_string();
        self.warnings.push(Diagnostic {
            file: self.file.clone(),
            loc: Some(loc),
            path,
            message: message.into(),
            help: help.into(),
        });
    }

    /// Report at an explicit path (used by checks that run after decoding).
    pub fn error_at(
        &mut self,
        path: &str,
        loc: Option<Loc>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            loc,
            path: path.to_string(),
            message: message.into(),
            help: help.into(),
        });
    }

    pub fn key<T>(&mut self, key: &str, f: impl FnOnce(&mut Cx) -> T) -> T {
        self.path.push(Seg::Key(key.to_string()));
        let out = f(self);
        self.path.pop();
        out
    }

    pub fn idx<T>(&mut self, i: usize, f: impl FnOnce(&mut Cx) -> T) -> T {
        self.path.push(Seg::Idx(i));
        let out = f(self);
        self.path.pop();
        out
    }

    /// Open a mapping for reading its keys; reports duplicate keys.
    pub fn map<'n>(&mut self, node: &'n Node, what: &'static str) -> Option<MapReader<'n>> {
        let NodeKind::Map(entries) = &node.kind else {
            self.error(
                node.loc,
                format!("expected a mapping for {what}, found {}", node.describe()),
                format!("write {what} as `key: value` lines"),
            );
            return None;
        };
        let mut seen: Vec<&str> = Vec::new();
        for (k, _) in entries {
            match k.as_str() {
                Some(name) if seen.contains(&name) => self.key(name, |cx| {
                    cx.error(
                        k.loc,
                        format!("duplicate key `{name}`"),
                        "remove one of the two; YAML keeps only the last, which hides the first",
                    )
                }),
                Some(name) => seen.push(name),
                None => self.error(
                    k.loc,
                    format!("a key must be a plain string, found {}", k.describe()),
                    "use a plain word as the key",
                ),
            }
        }
        Some(MapReader {
            node,
            entries,
            asked: Vec::new(),
            what,
        })
    }
}

pub fn path_to_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Idx(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Reads the keys of one mapping; `finish` reports the keys nobody asked for.
pub struct MapReader<'n> {
    pub node: &'n Node,
    entries: &'n [(Node, Node)],
    asked: Vec<&'static str>,
    what: &'static str,
}

impl<'n> MapReader<'n> {
    /// The raw node under `key`, marking the key as known.
    pub fn node(&mut self, key: &'static str) -> Option<&'n Node> {
        self.asked.push(key);
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.as_str() == Some(key))
    }

    /// A required value: missing or invalid gives `None` and a diagnostic.
    pub fn req<T: Decode>(&mut self, cx: &mut Cx, key: &'static str) -> Option<T> {
        match self.node(key) {
            Some(v) if !matches!(v.kind, NodeKind::Null) => cx.key(key, |cx| T::decode(cx, v)),
            _ => {
                let loc = self.node.loc;
                cx.error(
                    loc,
                    format!("{} is missing required key `{key}`", self.what),
                    format!("add `{key}:` to {}", self.what),
                );
                None
            }
        }
    }

    /// An optional value: absent or null gives `None`; invalid gives `None` and a diagnostic.
    pub fn opt<T: Decode>(&mut self, cx: &mut Cx, key: &'static str) -> Option<T> {
        match self.node(key) {
            Some(v) if !matches!(v.kind, NodeKind::Null) => cx.key(key, |cx| T::decode(cx, v)),
            _ => None,
        }
    }

    /// Report every key that no decoder asked for.
    pub fn finish(self, cx: &mut Cx) {
        for (k, _) in self.entries {
            let Some(name) = k.as_str() else { continue };
            if !self.asked.contains(&name) {
                let help = did_you_mean(name, &self.asked, &format!("keys of {}", self.what));
                cx.key(name, |cx| {
                    cx.error(
                        k.loc,
                        format!("unknown key `{name}` in {}", self.what),
                        help,
                    )
                });
            }
        }
    }
}

/// Read `apiVersion` (required) and report any other than the one this build reads.
pub fn api_version(cx: &mut Cx, m: &mut MapReader) {
    let api = m.req::<Spanned<String>>(cx, "apiVersion");
    let want = crate::lang::spec::API_VERSION;
    if let Some(api) = &api
        && api.value != want
    {
        cx.key("apiVersion", |cx| {
            cx.error(
                api.loc,
                format!("unsupported apiVersion `{}`", api.value),
                format!("write `apiVersion: {want}`"),
            )
        });
    }
}

/// Decoding from a located node.
pub trait Decode: Sized {
    fn decode(cx: &mut Cx, node: &Node) -> Option<Self>;
}

fn scalar<'a>(
    cx: &mut Cx,
    node: &'a Node,
    expected: &str,
    example: &str,
) -> Option<(&'a str, bool)> {
    match &node.kind {
        NodeKind::Scalar { value, plain } => Some((value.as_str(), *plain)),
        _ => {
            cx.error(
                node.loc,
                format!("expected {expected}, found {}", node.describe()),
                format!("write a value like `{example}`"),
            );
            None
        }
    }
}

impl Decode for String {
    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        scalar(cx, node, "a string", "my-name").map(|(s, _)| s.to_string())
    }
}

impl Decode for bool {
    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        match scalar(cx, node, "true or false", "true")? {
            ("true", true) => Some(true),
            ("false", true) => Some(false),
            (other, _) => {
                cx.error(
                    node.loc,
                    format!("expected true or false, found `{other}`"),
                    "write `true` or `false` (unquoted)",
                );
                None
            }
        }
    }
}

macro_rules! decode_uint {
    ($t:ty) => {
        impl Decode for $t {
            fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
                let (s, _) = scalar(cx, node, "a whole number", "3")?;
                match s.parse::<$t>() {
                    Ok(v) => Some(v),
                    Err(_) if s.starts_with('-') => {
                        cx.error(
                            node.loc,
                            format!("`{s}` is negative"),
                            "write a whole number of 0 or more",
                        );
                        None
                    }
                    Err(_) => {
                        cx.error(
                            node.loc,
                            format!("expected a whole number, found `{s}`"),
                            format!("write a whole number up to {}", <$t>::MAX),
                        );
                        None
                    }
                }
            }
        }
    };
}
decode_uint!(u32);
decode_uint!(u64);

impl Decode for f64 {
    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let (s, _) = scalar(cx, node, "a number", "0.05")?;
        match s.trim_end_matches('%').parse::<f64>() {
            Ok(v) if v.is_finite() => Some(if s.ends_with('%') { v / 100.0 } else { v }),
            _ => {
                cx.error(
                    node.loc,
                    format!("expected a number, found `{s}`"),
                    "write a number like `0.05` or `5%`",
                );
                None
            }
        }
    }
}

impl Decode for Duration {
    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let (s, _) = scalar(cx, node, "a duration", "90s")?;
        match crate::lang::duration::parse(s) {
            Ok(d) => Some(d),
            Err(e) => {
                cx.error(node.loc, format!("bad duration `{s}`"), e.to_string());
                None
            }
        }
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let NodeKind::Seq(items) = &node.kind else {
            cx.error(
                node.loc,
                format!("expected a list, found {}", node.describe()),
                "write a list, e.g. `[a, b]` or one `- item` per line",
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match cx.idx(i, |cx| T::decode(cx, item)) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

impl Decode for serde_json::Value {
    fn decode(_cx: &mut Cx, node: &Node) -> Option<Self> {
        Some(node.to_json())
    }
}

impl Decode for Node {
    fn decode(_cx: &mut Cx, node: &Node) -> Option<Self> {
        Some(node.clone())
    }
}

/// A value with the location it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub loc: Loc,
}

impl<T: Decode> Decode for Spanned<T> {
    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        T::decode(cx, node).map(|value| Spanned {
            value,
            loc: node.loc,
        })
    }
}

/// A string-keyed mapping kept in document order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderedMap<T>(pub Vec<(Spanned<String>, T)>);

impl<T: Decode> Decode for OrderedMap<T> {
    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let NodeKind::Map(entries) = &node.kind else {
            cx.error(
                node.loc,
                format!("expected a mapping, found {}", node.describe()),
                "write `name: value` lines",
            );
            return None;
        };
        let _ = cx.map(node, "this mapping");
        let mut out = Vec::new();
        let mut ok = true;
        for (k, v) in entries {
            let Some(name) = k.as_str() else {
                ok = false;
                continue;
            };
            match cx.key(name, |cx| T::decode(cx, v)) {
                Some(val) => out.push((
                    Spanned {
                        value: name.to_string(),
                        loc: k.loc,
                    },
                    val,
                )),
                None => ok = false,
            }
        }
        ok.then_some(OrderedMap(out))
    }
}

/// A mapping from a string choice to an enum, with "did you mean" on a typo.
pub fn choice<T: Copy>(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    options: &[(&'static str, T)],
) -> Option<T> {
    let (s, _) = scalar(cx, node, what, options.first().map(|o| o.0).unwrap_or(""))?;
    if let Some((_, v)) = options.iter().find(|(name, _)| *name == s) {
        return Some(*v);
    }
    let names: Vec<&str> = options.iter().map(|o| o.0).collect();
    cx.error(
        node.loc,
        format!("`{s}` is not a valid {what}"),
        did_you_mean(s, &names, "choices"),
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::yaml::{Limits, load};

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Probe {
        name: String,
        interval: Option<Duration>,
        count: Option<u32>,
    }

    impl Decode for Probe {
        fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
            let mut m = cx.map(node, "a probe")?;
            let name = m.req(cx, "name");
            let interval = m.opt(cx, "interval");
            let count = m.opt(cx, "count");
            m.finish(cx);
            Some(Probe {
                name: name?,
                interval,
                count,
            })
        }
    }

    #[test]
    fn collects_every_problem_with_paths() {
        let node = load(
            "- name: a\n  interval: 10\n  count: -1\n- intervall: 5s\n- name: c\n  name: d\n",
            &Limits::default(),
        )
        .unwrap();
        let mut cx = Cx::new("p.yaml");
        let out = Vec::<Probe>::decode(&mut cx, &node);
        assert!(out.is_none());
        let got: Vec<(String, u32, String)> = cx
            .diags
            .iter()
            .map(|d| (d.path.clone(), d.loc.unwrap().line, d.message.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("[0].interval".into(), 2, "bad duration `10`".into()),
                ("[0].count".into(), 3, "`-1` is negative".into()),
                (
                    "[1]".into(),
                    4,
                    "a probe is missing required key `name`".into()
                ),
                (
                    "[1].intervall".into(),
                    4,
                    "unknown key `intervall` in a probe".into()
                ),
                ("[2].name".into(), 6, "duplicate key `name`".into()),
            ]
        );
        assert!(cx.diags[3].help.contains("did you mean `interval`"));
    }
}
