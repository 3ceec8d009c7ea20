//! Environments (`kind: Environment`): which backend a drill runs against and its settings.
//! With no environment named, the built-in simulated estate is used (the same document as
//! `environments/sim.yaml`, compiled into the binary), so `firedrill run <experiment>` works from
//! any directory.
//!
//! An environment has a primary `backend` and one settings section per backend it uses
//! (`sim:`, `kubernetes:`, `aws:`, `postgres:`). Every action and probe goes to the backend of its
//! domain when that section is present (`k8s.*` to `kubernetes`; `db.*`, `dns.*`, `fis.*` to
//! `aws`), and to the primary backend otherwise; `postgres` probes and canaries always go to
//! PostgreSQL (the optional `postgres:` section holds timeouts); see
//! [`Environment::backend_for`].
//!
//! `--set path=value` overrides a setting before it is read (`--set sim.dns[0].ttl=300s`), which is
//! how "what if our TTL were 300s?" is asked without copying the file.

use crate::lang::decode::Cx;
use crate::lang::diag::{Diagnostic, did_you_mean};
use crate::lang::yaml::{Loc, Node, NodeKind};
use serde_json::Value as Json;

/// The built-in environment's source.
pub const BUILTIN_SIM: &str = include_str!("../../environments/sim.yaml");
pub const BUILTIN_NAME: &str = "<built-in sim>";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    Sim,
    Kubernetes,
    Aws,
    /// Prometheus (and Alertmanager): probes only, never a primary backend.
    Prometheus,
    /// PostgreSQL servers named by DSN in the calls themselves (`postgres` probes, the
    /// data-loss canary): never a primary backend; its `postgres:` section is optional.
    Postgres,
}

impl Backend {
    pub const ALL: [Backend; 5] = [
        Backend::Sim,
        Backend::Kubernetes,
        Backend::Aws,
        Backend::Prometheus,
        Backend::Postgres,
    ];

    /// The backends that may be an environment's primary `backend` (those that can act).
    pub const PRIMARIES: [Backend; 3] = [Backend::Sim, Backend::Kubernetes, Backend::Aws];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sim => "sim",
            Backend::Kubernetes => "kubernetes",
            Backend::Aws => "aws",
            Backend::Prometheus => "prometheus",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend whose domain an action or probe name belongs to, if any (`k8s.*` is
    /// Kubernetes; `db.*`, `dns.*` and `fis.*` are AWS; `prometheus` and `prometheus.alert` are
    /// Prometheus; `postgres` is PostgreSQL). Other names (service metrics, alerts, zone and
    /// region outages) belong to whichever backend is primary.
    pub fn domain_of(name: &str) -> Option<Backend> {
        let prefix = name.split('.').next().unwrap_or_default();
        match prefix {
            "k8s" => Some(Backend::Kubernetes),
            "db" | "dns" | "fis" => Some(Backend::Aws),
            "prometheus" => Some(Backend::Prometheus),
            "postgres" => Some(Backend::Postgres),
            _ => None,
        }
    }

    /// Whether this backend's names go to it even when its section is absent (no other backend
    /// can serve them): the router then reports the missing section instead of handing the
    /// name to the primary.
    fn exclusive(self) -> bool {
        matches!(self, Backend::Prometheus | Backend::Postgres)
    }

    /// The backend that runs `name`: its domain's backend when that section is present
    /// (`present`), the primary otherwise. Prometheus and PostgreSQL names stay with their
    /// backend, present or not (PostgreSQL calls name their server themselves, so no section is
    /// needed; a Prometheus call without its section is a preflight problem). The one routing
    /// rule, for environments and routers.
    pub fn route(name: &str, primary: Backend, present: impl Fn(Backend) -> bool) -> Backend {
        match Backend::domain_of(name) {
            Some(b) if present(b) || b.exclusive() => b,
            _ => primary,
        }
    }
}

/// Sections read by a backend other than the one they are named after: `alertmanager:` is read
/// by the Prometheus backend (`prometheus.alert` with `source: alertmanager`).
pub const AUX_SECTIONS: [(&str, Backend); 1] = [("alertmanager", Backend::Prometheus)];

/// One backend's settings section.
#[derive(Debug, Clone)]
pub struct Section {
    /// The section as JSON (an empty object when the section is absent).
    pub settings: Json,
    /// Its source node, for error locations.
    pub node: Option<Node>,
}

#[derive(Debug, Clone)]
pub struct Environment {
    pub file: String,
    pub name: String,
    pub description: Option<String>,
    /// The primary backend: serves every name no other section claims.
    pub backend: Backend,
    /// Production environments need `--confirm <name>` to run a drill.
    pub protected: bool,
    /// Settings sections present in the file, by backend. The primary backend always has one
    /// (empty when the file has none: all defaults).
    pub sections: std::collections::BTreeMap<Backend, Section>,
    /// Auxiliary sections ([`AUX_SECTIONS`]) present in the file, by name.
    pub aux_sections: std::collections::BTreeMap<&'static str, Section>,
    /// Where every drill against this environment is notified (`notify:`).
    pub notify: Vec<crate::lang::notify::NotifySink>,
    pub source: String,
}

impl Environment {
    /// The backends this environment uses (primary first).
    pub fn backends(&self) -> Vec<Backend> {
        let mut out = vec![self.backend];
        out.extend(self.sections.keys().copied().filter(|b| *b != self.backend));
        out
    }

    /// The settings of a backend's section (an empty object when absent).
    pub fn settings(&self, backend: Backend) -> Json {
        self.sections
            .get(&backend)
            .map(|s| s.settings.clone())
            .unwrap_or(Json::Object(Default::default()))
    }

    /// Which backend runs an action or probe: its domain's backend when that section is
    /// present, the primary otherwise.
    pub fn backend_for(&self, name: &str) -> Backend {
        Backend::route(name, self.backend, |b| self.sections.contains_key(&b))
    }

    /// Report a settings error found by a backend at a JSON path (`dns[0].ttl`) inside its
    /// settings section.
    pub fn settings_error(
        &self,
        backend: Backend,
        path: &str,
        message: String,
        help: String,
    ) -> Diagnostic {
        self.section_error(
            backend.name(),
            self.sections.get(&backend),
            path,
            message,
            help,
        )
    }

    /// Like [`Environment::settings_error`], for an auxiliary section (`alertmanager`).
    pub fn aux_settings_error(
        &self,
        section: &str,
        path: &str,
        message: String,
        help: String,
    ) -> Diagnostic {
        self.section_error(section, self.aux_sections.get(section), path, message, help)
    }

    fn section_error(
        &self,
        section: &str,
        node: Option<&Section>,
        path: &str,
        message: String,
        help: String,
    ) -> Diagnostic {
        let loc = node
            .and_then(|s| s.node.as_ref())
            .and_then(|n| locate(n, path));
        Diagnostic {
            file: self.file.clone(),
            loc,
            path: if path.is_empty() {
                section.to_string()
            } else {
                format!("{section}.{path}")
            },
            message,
            help,
        }
    }

    /// Decode a backend's settings section into its typed form (serde, unknown keys denied by the
    /// type), locating the first error in the file.
    pub fn decode_settings<T: serde::de::DeserializeOwned>(
        &self,
        backend: Backend,
        help: &str,
    ) -> Result<T, Vec<Diagnostic>> {
        let json = self.settings(backend);
        serde_path_to_error::deserialize(&json).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            vec![self.settings_error(backend, &path, e.inner().to_string(), help.to_string())]
        })
    }

    /// Decode a backend's section with serde, then check its own rules (`problems`: the path in
    /// the section and the message); every problem located in the file.
    pub fn decode_checked<T: serde::de::DeserializeOwned>(
        &self,
        backend: Backend,
        help: &str,
        problems: impl Fn(&T) -> Vec<(&'static str, String)>,
    ) -> Result<T, Vec<Diagnostic>> {
        let s: T = self.decode_settings(backend, help)?;
        let found = problems(&s);
        if found.is_empty() {
            Ok(s)
        } else {
            Err(found
                .into_iter()
                .map(|(path, msg)| self.settings_error(backend, path, msg, help.into()))
                .collect())
        }
    }

    /// Decode an auxiliary section (`alertmanager`) when present, locating the first error.
    pub fn decode_aux<T: serde::de::DeserializeOwned>(
        &self,
        section: &str,
        help: &str,
    ) -> Result<Option<T>, Vec<Diagnostic>> {
        let Some(s) = self.aux_sections.get(section) else {
            return Ok(None);
        };
        serde_path_to_error::deserialize(&s.settings)
            .map(Some)
            .map_err(|e| {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                vec![self.aux_settings_error(
                    section,
                    &path,
                    e.inner().to_string(),
                    help.to_string(),
                )]
            })
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
    let (text, mut root) = crate::lang::yaml::load_document(file, bytes)?;
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
    crate::lang::decode::api_version(cx, &mut m);
    if let Some(k) = m.req::<crate::lang::decode::Spanned<String>>(cx, "kind")
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
    let choices: Vec<(&str, Backend)> = Backend::PRIMARIES.iter().map(|b| (b.name(), *b)).collect();
    let backend = m.node("backend").and_then(|b| {
        cx.key("backend", |cx| {
            crate::lang::decode::choice(cx, b, "backend", &choices)
        })
    });
    if !m.has("backend") {
        cx.error(
            root.loc,
            "the environment is missing required key `backend`",
            "add `backend: sim`, `backend: kubernetes` or `backend: aws` (the primary backend)",
        );
    }
    let protected = m.opt::<bool>(cx, "protected").unwrap_or(false);
    let notify = match m.node("notify") {
        Some(n) => cx
            .key("notify", |cx| crate::lang::notify::decode_sinks(cx, n))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut sections = std::collections::BTreeMap::new();
    let mut aux_sections = std::collections::BTreeMap::new();
    let mut section = |cx: &mut Cx, name: &'static str| -> Option<Section> {
        let n = m.node(name)?;
        let settings = match &n.kind {
            NodeKind::Null => Json::Object(Default::default()),
            _ => n.to_json(),
        };
        if !settings.is_object() {
            cx.key(name, |cx| {
                cx.error(
                    n.loc,
                    format!("the `{name}` section must be a mapping of settings"),
                    format!("write `{name}: {{...}}`"),
                )
            });
            return None;
        }
        Some(Section {
            settings,
            node: Some(n.clone()),
        })
    };
    for b in Backend::ALL {
        if let Some(s) = section(cx, b.name()) {
            sections.insert(b, s);
        }
    }
    for (name, reader) in AUX_SECTIONS {
        if let Some(s) = section(cx, name) {
            if !sections.contains_key(&reader) {
                let loc = s.node.as_ref().map(|n| n.loc);
                cx.key(name, |cx| {
                    cx.error(
                        loc.unwrap_or(root.loc),
                        format!("the `{name}` section is read by the `{}` backend, and the environment has no `{}:` section", reader.name(), reader.name()),
                        format!("add a `{}:` section with its url (e.g. `{}: {{url: http://127.0.0.1:9090}}`)", reader.name(), reader.name()),
                    )
                });
            }
            aux_sections.insert(name, s);
        }
    }
    m.finish(cx);
    let backend = backend?;
    sections.entry(backend).or_insert(Section {
        settings: Json::Object(Default::default()),
        node: None,
    });
    Some(Environment {
        file: file.to_string(),
        name,
        description,
        backend,
        protected,
        sections,
        aux_sections,
        notify,
        source: text.to_string(),
    })
}

/// The built-in simulated estate, with optional `--set` overrides.
pub fn builtin(sets: &[(String, String)]) -> Result<Environment, Vec<Diagnostic>> {
    parse_environment(BUILTIN_NAME, BUILTIN_SIM.as_bytes(), sets)
}
