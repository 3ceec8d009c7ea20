//! Environments (`kind: Environment`): which backend a drill runs against and its settings.
//! With no environment named, the built-in simulated estate is used (the same document as
//! `environments/sim.yaml`, compiled into the binary), so `firedrill run <experiment>` works from
//! any directory.
//!
//! `--set path=value` overrides a setting before it is read (`--set sim.dns[0].ttl=300s`), which is
//! how "what if our TTL were 300s?" is asked without copying the file.

use crate::decode::Cx;
use crate::diag::{Diagnostic, did_you_mean};
use crate::spec::API_VERSION;
use crate::yaml::{Loc, Node, NodeKind};
use serde_json::Value as Json;

/// The built-in environment's source.
pub const BUILTIN_SIM: &str = include_str!("../environments/sim.yaml");
pub const BUILTIN_NAME: &str = "<built-in sim>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sim,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sim => "sim",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Environment {
    pub file: String,
    pub name: String,
    pub description: Option<String>,
    pub backend: Backend,
    /// Production environments need `--confirm <name>` to run a drill.
    pub protected: bool,
    /// The backend's settings section (`sim:`), as JSON, with its source node for error locations.
    pub settings: Json,
    pub settings_node: Option<Node>,
    pub source: String,
}

impl Environment {
    /// Report a settings error found by the backend at a JSON path (`dns[0].ttl`) inside the
    /// settings section.
    pub fn settings_error(&self, path: &str, message: String, help: String) -> Diagnostic {
        let section = self.backend.name();
        let loc = self.settings_node.as_ref().and_then(|n| locate(n, path));
        Diagnostic {
            file: self.file.clone(),
            loc,
            path: format!("{section}.{path}"),
            message,
            help,
        }
    }
}

/// Find the node at a path like `a.b[0].c` (for error locations).
pub fn locate(root: &Node, path: &str) -> Option<Loc> {
    let mut cur = root;
    let mut best = root.loc;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, idxs) = split_indices(part);
        if !key.is_empty() {
            match cur.get(key) {
                Some(n) => cur = n,
                None => return Some(best),
            }
        }
        for i in idxs {
            match &cur.kind {
                NodeKind::Seq(items) if i < items.len() => cur = &items[i],
                _ => return Some(best),
            }
        }
        best = cur.loc;
    }
    Some(best)
}

fn split_indices(part: &str) -> (&str, Vec<usize>) {
    match part.find('[') {
        None => (part, Vec::new()),
        Some(i) => {
            let idx = part[i..]
                .split(['[', ']'])
                .filter_map(|s| s.parse().ok())
                .collect();
            (&part[..i], idx)
        }
    }
}

/// Apply one `--set path=value` to a node tree.
fn apply_set(cx: &mut Cx, root: &mut Node, path: &str, value: &str) {
    let mut cur = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (n, part) in parts.iter().enumerate() {
        let (key, idxs) = split_indices(part);
        if !key.is_empty() {
            let NodeKind::Map(entries) = &mut cur.kind else {
                cx.error_at(
                    path,
                    None,
                    format!("--set {path}: `{}` is not a mapping", parts[..n].join(".")),
                    "check the path against the environment file",
                );
                return;
            };
            let keys: Vec<String> = entries
                .iter()
                .filter_map(|(k, _)| k.as_str().map(str::to_string))
                .collect();
            match entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
                Some((_, v)) => cur = v,
                None => {
                    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                    cx.error_at(
                        path,
                        None,
                        format!("--set {path}: no setting `{key}` here"),
                        did_you_mean(key, &keys, "settings at this level"),
                    );
                    return;
                }
            }
        }
        for i in idxs {
            let len = match &cur.kind {
                NodeKind::Seq(items) => items.len(),
                _ => usize::MAX,
            };
            match &mut cur.kind {
                NodeKind::Seq(items) if i < len => cur = &mut items[i],
                NodeKind::Seq(_) => {
                    cx.error_at(
                        path,
                        None,
                        format!("--set {path}: index {i} out of range (the list has {len} items)"),
                        "use an index that exists",
                    );
                    return;
                }
                _ => {
                    cx.error_at(
                        path,
                        None,
                        format!("--set {path}: `{part}` is not a list"),
                        "drop the `[index]`",
                    );
                    return;
                }
            }
        }
    }
    if matches!(cur.kind, NodeKind::Map(_) | NodeKind::Seq(_)) {
        cx.error_at(
            path,
            None,
            format!("--set {path}: this is a section, not a single setting"),
            "name a setting inside it",
        );
        return;
    }
    cur.kind = NodeKind::Scalar {
        value: value.to_string(),
        plain: true,
    };
}

/// Parse an environment document; `sets` are `--set` overrides.
pub fn parse_environment(
    file: &str,
    bytes: &[u8],
    sets: &[(String, String)],
) -> Result<Environment, Vec<Diagnostic>> {
    let (text, mut root) = crate::yaml::load_document(file, bytes)?;
    let mut cx = Cx::new(file);
    for (path, value) in sets {
        apply_set(&mut cx, &mut root, path, value);
    }
    let env = decode(&mut cx, &root, file, text);
    match env {
        Some(e) if cx.diags.is_empty() => Ok(e),
        _ => Err(cx.diags),
    }
}

fn decode(cx: &mut Cx, root: &Node, file: &str, text: &str) -> Option<Environment> {
    let mut m = cx.map(root, "the environment")?;
    let api = m.req::<crate::decode::Spanned<String>>(cx, "apiVersion");
    if let Some(a) = &api
        && a.value != API_VERSION
    {
        cx.key("apiVersion", |cx| {
            cx.error(
                a.loc,
                format!("unsupported apiVersion `{}`", a.value),
                format!("write `apiVersion: {API_VERSION}`"),
            )
        });
    }
    if let Some(k) = m.req::<crate::decode::Spanned<String>>(cx, "kind")
        && k.value != "Environment"
    {
        cx.key("kind", |cx| cx.error(k.loc, format!("expected `kind: Environment`, found `{}`", k.value), "environment files say `kind: Environment`; pass experiments as the argument, not with --env"));
    }
    let (name, description) = match m.node("metadata") {
        Some(n) => cx.key("metadata", |cx| {
            let mut md = cx.map(n, "metadata")?;
            let name: Option<String> = md.req(cx, "name");
            let desc: Option<String> = md.opt(cx, "description");
            md.finish(cx);
            Some((name?, desc))
        })?,
        None => {
            cx.error(
                root.loc,
                "the environment is missing required key `metadata`",
                "add `metadata: {name: my-env}`",
            );
            return None;
        }
    };
    let backend = m.node("backend").and_then(|b| {
        cx.key("backend", |cx| {
            crate::decode::choice(cx, b, "backend", &[("sim", Backend::Sim)])
        })
    });
    if !m.has("backend") {
        cx.error(
            root.loc,
            "the environment is missing required key `backend`",
            "add `backend: sim` (kubernetes and aws backends are coming)",
        );
    }
    let protected = m.opt::<bool>(cx, "protected").unwrap_or(false);
    let settings_node = m.node("sim").cloned();
    if backend == Some(Backend::Sim) && settings_node.is_none() {
        // An empty `sim:` section means all defaults.
    }
    m.finish(cx);
    Some(Environment {
        file: file.to_string(),
        name,
        description,
        backend: backend?,
        protected,
        settings: settings_node
            .as_ref()
            .map(Node::to_json)
            .unwrap_or(Json::Object(Default::default())),
        settings_node,
        source: text.to_string(),
    })
}

/// The built-in simulated estate, with optional `--set` overrides.
pub fn builtin(sets: &[(String, String)]) -> Result<Environment, Vec<Diagnostic>> {
    parse_environment(BUILTIN_NAME, BUILTIN_SIM.as_bytes(), sets)
}
