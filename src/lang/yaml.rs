//! Loading YAML into a tree of nodes that remember where they came from.
//!
//! Every node carries its source location, so a problem found at any stage (decoding, variable
//! expansion, graph validation) can be reported as `file:line:col` with a caret. The loader
//! defends against hostile input before anything else looks at it: files over [`Limits::max_bytes`],
//! binary or non-UTF-8 content, nesting deeper than [`Limits::max_depth`], and alias bombs (alias
//! expansion counts against [`Limits::max_nodes`]).
//!
//! Invariant: this module never does IO and never panics on any input.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A source position: 1-based line and column, and the length of the marked text on that line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

impl Loc {
    fn from_span(span: &Span) -> Loc {
        let (s, e) = (span.start, span.end);
        let len = if e.line() == s.line() && e.col() > s.col() {
            (e.col() - s.col()) as u32
        } else {
            1
        };
        Loc {
            line: s.line() as u32,
            col: s.col() as u32 + 1,
            len,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    /// A scalar and whether it was written plain (unquoted): only plain scalars are numbers,
    /// booleans or null.
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in document order (keys are nodes so that their own locations are kept).
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub loc: Loc,
}

impl Node {
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "nothing (null)",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Convert to JSON, interpreting plain scalars as YAML 1.2 core schema values.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Scalar { value, plain } => {
                if *plain {
                    plain_scalar_json(value)
                } else {
                    Value::String(value.clone())
                }
            }
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    fn count(&self) -> usize {
        match &self.kind {
            NodeKind::Null | NodeKind::Scalar { .. } => 1,
            NodeKind::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            NodeKind::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
        }
    }
}

/// YAML 1.2 core schema interpretation of a plain scalar.
pub fn plain_scalar_json(value: &str) -> serde_json::Value {
    use serde_json::Value;
    match value {
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        "~" | "null" | "Null" | "NULL" | "" => Value::Null,
        _ => {
            if let Ok(i) = value.parse::<i64>() {
                Value::from(i)
            } else if let Some(f) = value.parse::<f64>().ok().filter(|f| f.is_finite()) {
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            } else {
                Value::String(value.to_string())
            }
        }
    }
}

/// Hard limits applied while loading.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1024 * 1024,
            max_depth: 64,
            max_nodes: 200_000,
        }
    }
}

/// Why a document could not be loaded. Each carries what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    pub loc: Option<Loc>,
    pub message: String,
    pub help: String,
}

fn err(loc: Option<Loc>, message: impl Into<String>, help: impl Into<String>) -> LoadError {
    LoadError {
        loc,
        message: message.into(),
        help: help.into(),
    }
}

/// Check raw bytes (size, binary content, encoding) and return them as text.
pub fn decode_text<'a>(bytes: &'a [u8], limits: &Limits) -> Result<&'a str, LoadError> {
    if bytes.len() > limits.max_bytes {
        return Err(err(
            None,
            format!(
                "file is {} bytes, over the {} byte limit",
                bytes.len(),
                limits.max_bytes
            ),
            "experiment and environment files are small hand-written documents; check you passed the right file",
        ));
    }
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        return Err(err(
            None,
            format!("file looks binary (NUL byte at offset {pos})"),
            "pass a YAML text file",
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        err(
            None,
            format!("file is not valid UTF-8 (at byte {})", e.valid_up_to()),
            "save the file as UTF-8",
        )
    })
}

/// Check, decode and parse a file's bytes with the default limits; a failure is one diagnostic.
pub fn load_document<'a>(
    file: &str,
    bytes: &'a [u8],
) -> Result<(&'a str, Node), Vec<crate::lang::diag::Diagnostic>> {
    let limits = Limits::default();
    let diag = |e: LoadError| {
        vec![crate::lang::diag::Diagnostic {
            file: file.to_string(),
            loc: e.loc,
            path: String::new(),
            message: e.message,
            help: e.help,
        }]
    };
    let text = decode_text(bytes, &limits).map_err(diag)?;
    let root = load(text, &limits).map_err(diag)?;
    Ok((text, root))
}

/// Parse one YAML document into a node tree.
pub fn load(text: &str, limits: &Limits) -> Result<Node, LoadError> {
    if text.trim().is_empty() {
        return Err(err(
            Some(Loc {
                line: 1,
                col: 1,
                len: 1,
            }),
            "file is empty",
            "start from a sample, e.g. `experiments/pod-kill.yaml`, which begins with `apiVersion: firedrill.dev/v1`",
        ));
    }
    let mut b = Builder {
        limits: *limits,
        stack: Vec::new(),
        anchors: Vec::new(),
        nodes: 0,
        root: None,
    };
    let mut docs = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            let m = e.marker();
            err(
                Some(Loc { line: m.line() as u32, col: m.col() as u32 + 1, len: 1 }),
                format!("YAML syntax error: {}", e.info()),
                "fix the YAML syntax at this position (check indentation, quotes and `:` after keys)",
            )
        })?;
        let loc = Loc::from_span(&span);
        match event {
            Event::DocumentStart(_) => {
                docs += 1;
                if docs > 1 {
                    return Err(err(
                        Some(loc),
                        "more than one YAML document in the file",
                        "keep one document per file (remove the extra `---`)",
                    ));
                }
            }
            Event::Scalar(value, style, anchor, _tag) => {
                let plain = matches!(style, ScalarStyle::Plain);
                let kind = if plain && matches!(value.as_ref(), "~" | "null" | "Null" | "NULL" | "")
                {
                    NodeKind::Null
                } else {
                    // The parser's buffer may have room to spare: keep only the text (a
                    // document's tree is held whole while it is decoded).
                    let mut value = value.into_owned();
                    value.shrink_to_fit();
                    NodeKind::Scalar { value, plain }
                };
                b.value(Node { kind, loc }, anchor)?;
            }
            Event::SequenceStart(anchor, _) => b.open(
                Node {
                    kind: NodeKind::Seq(Vec::new()),
                    loc,
                },
                anchor,
            )?,
            Event::MappingStart(anchor, _) => b.open(
                Node {
                    kind: NodeKind::Map(Vec::new()),
                    loc,
                },
                anchor,
            )?,
            Event::SequenceEnd | Event::MappingEnd => b.close()?,
            Event::Alias(id) => {
                let node = b
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _, _)| *a == id)
                    .map(|(_, n, c)| (n.clone(), *c))
                    .ok_or_else(|| {
                        err(
                            Some(loc),
                            "alias refers to an unknown anchor",
                            "define the anchor (`&name`) before using it (`*name`)",
                        )
                    })?;
                b.nodes += node.1;
                if b.nodes > b.limits.max_nodes {
                    return Err(bomb(loc, &b.limits));
                }
                let mut n = node.0;
                n.loc = loc;
                b.value(n, 0)?;
            }
            _ => {}
        }
    }
    b.root.ok_or_else(|| {
        err(
            Some(Loc {
                line: 1,
                col: 1,
                len: 1,
            }),
            "file holds no YAML document (only comments or blank lines)",
            "write a mapping starting with `apiVersion: firedrill.dev/v1`",
        )
    })
}

fn bomb(loc: Loc, limits: &Limits) -> LoadError {
    err(
        Some(loc),
        format!(
            "document expands to more than {} nodes (alias bomb?)",
            limits.max_nodes
        ),
        "remove the nested aliases; firedrill documents never need that many values",
    )
}

struct Builder {
    limits: Limits,
    /// Open collections, with their anchor id and, for mappings, a pending key.
    stack: Vec<(Node, usize, Option<Node>)>,
    anchors: Vec<(usize, Node, usize)>,
    nodes: usize,
    root: Option<Node>,
}

impl Builder {
    fn open(&mut self, node: Node, anchor: usize) -> Result<(), LoadError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(err(
                Some(node.loc),
                format!("nesting deeper than {} levels", self.limits.max_depth),
                "flatten the document; firedrill documents are a few levels deep",
            ));
        }
        self.stack.push((node, anchor, None));
        Ok(())
    }

    fn close(&mut self) -> Result<(), LoadError> {
        if let Some((mut node, anchor, _)) = self.stack.pop() {
            match &mut node.kind {
                NodeKind::Seq(items) => items.shrink_to_fit(),
                NodeKind::Map(entries) => entries.shrink_to_fit(),
                _ => {}
            }
            self.value(node, anchor)?;
        }
        Ok(())
    }

    fn value(&mut self, node: Node, anchor: usize) -> Result<(), LoadError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(bomb(node.loc, &self.limits));
        }
        if anchor != 0 {
            let count = node.count();
            self.anchors.push((anchor, node.clone(), count));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some((parent, _, pending)) => match &mut parent.kind {
                NodeKind::Seq(items) => items.push(node),
                NodeKind::Map(entries) => match pending.take() {
                    None => *pending = Some(node),
                    Some(key) => entries.push((key, node)),
                },
                _ => {}
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(s: &str) -> Result<Node, LoadError> {
        load(s, &Limits::default())
    }

    #[test]
    fn keeps_locations_of_keys_and_values() {
        let n = ld("a: 1\nsteps:\n  - id: x\n    after: [y]\n").unwrap();
        let steps = n.get("steps").unwrap();
        let NodeKind::Seq(items) = &steps.kind else {
            panic!()
        };
        let after = items[0].get("after").unwrap();
        let NodeKind::Seq(a) = &after.kind else {
            panic!()
        };
        assert_eq!(
            a[0].loc,
            Loc {
                line: 4,
                col: 13,
                len: 1
            }
        );
        assert_eq!(items[0].get("id").unwrap().loc.line, 3);
    }

    #[test]
    fn interprets_plain_scalars_only() {
        let n = ld("a: 1\nb: '1'\nc: true\nd: ~\ne: x\n").unwrap();
        let j = n.to_json();
        assert_eq!(j["a"], serde_json::json!(1));
        assert_eq!(j["b"], serde_json::json!("1"));
        assert_eq!(j["c"], serde_json::json!(true));
        assert_eq!(j["d"], serde_json::Value::Null);
        assert_eq!(j["e"], serde_json::json!("x"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = ld("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.loc.is_some());
        assert!(e.message.contains("syntax"), "{e:?}");
        let e = ld("a: 1\n  b: 2\n").unwrap_err();
        assert_eq!(e.loc.unwrap().line, 2);
    }

    #[test]
    fn rejects_hostile_input() {
        assert!(ld("").unwrap_err().message.contains("empty"));
        assert!(
            ld("   \n# only a comment\n")
                .unwrap_err()
                .message
                .contains("no YAML document")
        );
        let limits = Limits::default();
        assert!(
            decode_text(b"a\0b", &limits)
                .unwrap_err()
                .message
                .contains("binary")
        );
        assert!(
            decode_text(&[0xff, 0xfe, b'a'], &limits)
                .unwrap_err()
                .message
                .contains("UTF-8")
        );
        let big = vec![b'a'; limits.max_bytes + 1];
        assert!(
            decode_text(&big, &limits)
                .unwrap_err()
                .message
                .contains("limit")
        );
        let deep = "[".repeat(500) + &"]".repeat(500);
        let e = ld(&deep).unwrap_err();
        assert!(
            e.message.contains("nesting") || e.message.contains("recursion"),
            "{e:?}"
        );
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("b{}", i - 1)
            };
            bomb.push_str(&format!("b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(ld(&bomb).unwrap_err().message.contains("alias bomb"));
        assert!(
            ld("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .message
                .contains("more than one")
        );
    }

    #[test]
    fn aliases_expand() {
        let n = ld("base: &b {x: 1}\nother: *b\n").unwrap();
        assert_eq!(n.to_json()["other"]["x"], serde_json::json!(1));
    }
}
