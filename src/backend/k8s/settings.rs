//! The `kubernetes:` settings section and how it becomes a kube-rs [`kube::Config`].
//!
//! Reading a kubeconfig and checking its contexts happens here, without contacting the server:
//! a missing or unreadable kubeconfig, or an unknown context, is a settings diagnostic; an
//! unreachable server is a preflight problem.

use crate::lang::diag::Diagnostic;
use crate::lang::environment::{Backend, Environment};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Help text for settings errors.
const HELP: &str = "fix this setting; README.md (\"Kubernetes backend\") documents every one";

/// The `kubernetes:` section of an environment.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSettings {
    /// Kubeconfig file (default: `KUBECONFIG`, then `~/.kube/config`, then in-cluster). A
    /// relative path is relative to the environment file.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig (default: its current context).
    #[serde(default)]
    pub context: Option<String>,
    /// API server URL override (e.g. `http://127.0.0.1:8001` for `firedrill sim serve` or
    /// `kubectl proxy`). Alone, it needs no kubeconfig.
    #[serde(default)]
    pub server: Option<String>,
    /// The cluster's name, which a step's `cluster:` parameter must match (default: the context's
    /// name, or `default`).
    #[serde(default)]
    pub cluster: Option<String>,
    /// Namespaces actions may touch (empty: any namespace except kube-system).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Allow actions on kube-system (default false).
    #[serde(default)]
    pub allow_kube_system: bool,
    /// Give up on one API request after this long (default 30s).
    #[serde(default, with = "crate::lang::duration::serde_human_opt")]
    pub request_timeout: Option<Duration>,
    /// Default blast-radius cap on pods one step may kill or evict (a step's `max_pods` wins).
    #[serde(default)]
    pub max_pods: Option<u64>,
    /// Default blast-radius cap on nodes one step may touch (a step's `max_nodes` wins).
    #[serde(default)]
    pub max_nodes: Option<u64>,
}

pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl KubernetesSettings {
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT)
    }
}

/// Where the client configuration comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// `server:` alone: a bare URL, no credentials.
    Server(http::Uri),
    /// A kubeconfig (file or files) and the context to use.
    Kubeconfig {
        config: Box<Kubeconfig>,
        /// The files read, for messages.
        files: String,
        context: String,
        server: Option<http::Uri>,
    },
    /// No kubeconfig found: the in-cluster service account.
    InCluster,
}

/// Settings checked and the configuration source resolved (files read, no network).
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub settings: KubernetesSettings,
    pub source: Source,
    /// The name `cluster:` parameters must match.
    pub cluster: String,
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn parse_server(s: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!(
            "`{s}` is not an http(s) URL with a host (e.g. `https://10.0.0.1:6443`)"
        )),
    }
}

/// Expand `~/` and make a relative path relative to the environment file's directory.
fn resolve_path(env: &Environment, p: &Path) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    if p.is_relative() {
        let env_file = Path::new(&env.file);
        if env_file.is_file()
            && let Some(dir) = env_file.parent()
        {
            return dir.join(p);
        }
    }
    p.to_path_buf()
}

fn context_names(kc: &Kubeconfig) -> Vec<String> {
    kc.contexts.iter().map(|c| c.name.clone()).collect()
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Decode and check the section, read the kubeconfig and check its context. No network.
pub(crate) fn prepare(env: &Environment) -> Result<Prepared, Vec<Diagnostic>> {
    let s: KubernetesSettings = env.decode_settings(Backend::Kubernetes, HELP)?;
    let mut diags = Vec::new();
    let err = |path: &str, message: String, help: &str| {
        env.settings_error(Backend::Kubernetes, path, message, help.to_string())
    };
    let server = match s.server.as_deref().map(parse_server) {
        Some(Ok(u)) => Some(u),
        Some(Err(m)) => {
            diags.push(err(
                "server",
                m,
                "write the API server's URL, e.g. `server: http://127.0.0.1:8001`",
            ));
            None
        }
        None => None,
    };
    for (i, ns) in s.namespaces.iter().enumerate() {
        if !is_dns_label(ns) {
            diags.push(err(
                &format!("namespaces[{i}]"),
                format!("`{ns}` is not a valid namespace name"),
                "namespace names are lowercase letters, digits and `-` (at most 63)",
            ));
        }
    }
    if s.namespaces.iter().any(|n| n == "kube-system") && !s.allow_kube_system {
        diags.push(err(
            "namespaces",
            "`namespaces` lists kube-system but `allow_kube_system` is false".into(),
            "set `allow_kube_system: true` to allow drills on kube-system, or remove it from `namespaces`",
        ));
    }
    if s.request_timeout == Some(Duration::ZERO) {
        diags.push(err(
            "request_timeout",
            "`request_timeout` must be more than zero".into(),
            "write e.g. `request_timeout: 30s`",
        ));
    }
    for (k, v) in [("max_pods", s.max_pods), ("max_nodes", s.max_nodes)] {
        if v == Some(0) {
            diags.push(err(
                k,
                format!("`{k}` must be at least 1"),
                "a cap of 0 would refuse every step; remove it to have no default cap",
            ));
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }

    let source = if server.is_some() && s.kubeconfig.is_none() && s.context.is_none() {
        Source::Server(server.clone().expect("checked"))
    } else {
        let loaded = match &s.kubeconfig {
            Some(p) => {
                let path = resolve_path(env, p);
                match Kubeconfig::read_from(&path) {
                    Ok(kc) => Some((kc, path.display().to_string())),
                    Err(e) => {
                        return Err(vec![err(
                            "kubeconfig",
                            format!("cannot read kubeconfig `{}`: {}", path.display(), chain(&e)),
                            "point `kubeconfig` at a readable kubeconfig file (`kubectl config view` shows yours)",
                        )]);
                    }
                }
            }
            None => match Kubeconfig::from_env() {
                Ok(Some(kc)) => Some((
                    kc,
                    format!(
                        "KUBECONFIG={}",
                        std::env::var("KUBECONFIG").unwrap_or_default()
                    ),
                )),
                Err(e) => {
                    return Err(vec![err(
                        "",
                        format!(
                            "cannot read the kubeconfig named by KUBECONFIG (`{}`): {}",
                            std::env::var("KUBECONFIG").unwrap_or_default(),
                            chain(&e)
                        ),
                        "fix KUBECONFIG, or set `kubeconfig:` in the kubernetes section",
                    )]);
                }
                Ok(None) => {
                    let default = std::env::var_os("HOME")
                        .map(|h| PathBuf::from(h).join(".kube").join("config"));
                    match default {
                        Some(p) if p.exists() => match Kubeconfig::read_from(&p) {
                            Ok(kc) => Some((kc, p.display().to_string())),
                            Err(e) => {
                                return Err(vec![err(
                                    "",
                                    format!(
                                        "cannot read kubeconfig `{}`: {}",
                                        p.display(),
                                        chain(&e)
                                    ),
                                    "fix the file, or set `kubeconfig:` in the kubernetes section",
                                )]);
                            }
                        },
                        _ => None,
                    }
                }
            },
        };
        match loaded {
            Some((kc, files)) => {
                let names = context_names(&kc);
                let context = match (&s.context, &kc.current_context) {
                    (Some(c), _) => c.clone(),
                    (None, Some(c)) if !c.is_empty() => c.clone(),
                    _ => {
                        return Err(vec![err(
                            "",
                            format!(
                                "kubeconfig `{files}` has no current context; its contexts: {}",
                                list_or_none(&names)
                            ),
                            "set `context:` in the kubernetes section",
                        )]);
                    }
                };
                if !names.contains(&context) {
                    let path = if s.context.is_some() { "context" } else { "" };
                    return Err(vec![err(
                        path,
                        format!(
                            "kubeconfig `{files}` has no context `{context}`; its contexts: {}",
                            list_or_none(&names)
                        ),
                        &crate::lang::diag::did_you_mean(
                            &context,
                            &names.iter().map(String::as_str).collect::<Vec<_>>(),
                            "contexts",
                        ),
                    )]);
                }
                Source::Kubeconfig {
                    config: Box::new(kc),
                    files,
                    context,
                    server: server.clone(),
                }
            }
            None if server.is_some() => Source::Server(server.clone().expect("checked")),
            None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => Source::InCluster,
            None => {
                return Err(vec![err(
                    "",
                    "no kubeconfig found: KUBECONFIG is unset, ~/.kube/config does not exist and this is not a pod in a cluster".into(),
                    "set `kubeconfig:` (and `context:`) or `server:` in the kubernetes section",
                )]);
            }
        }
    };
    let cluster = s.cluster.clone().unwrap_or_else(|| match &source {
        Source::Kubeconfig { context, .. } => context.clone(),
        _ => "default".into(),
    });
    Ok(Prepared {
        settings: s,
        source,
        cluster,
    })
}

/// An error and its sources, on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = s.source();
    }
    out
}

/// What a prepared source tells people in messages (the server and where it came from).
pub(crate) struct ConfigBuilt {
    pub config: kube::Config,
    /// `context `prod` of kubeconfig `~/.kube/config``, for messages.
    pub origin: String,
}

/// Build the kube-rs configuration (reads certificate files; no network).
pub(crate) async fn build_config(
    env: &Environment,
    p: &Prepared,
) -> Result<ConfigBuilt, Vec<Diagnostic>> {
    let err = |path: &str, message: String, help: &str| {
        vec![env.settings_error(Backend::Kubernetes, path, message, help.to_string())]
    };
    let (mut config, origin) = match &p.source {
        Source::Server(u) => (kube::Config::new(u.clone()), format!("`server: {u}`")),
        Source::Kubeconfig {
            config,
            files,
            context,
            server,
        } => {
            let opts = KubeConfigOptions {
                context: Some(context.clone()),
                cluster: None,
                user: None,
            };
            let mut c = kube::Config::from_custom_kubeconfig((**config).clone(), &opts)
                .await
                .map_err(|e| {
                    err(
                        if p.settings.context.is_some() {
                            "context"
                        } else {
                            ""
                        },
                        format!(
                            "cannot use context `{context}` of kubeconfig `{files}`: {}",
                            chain(&e)
                        ),
                        "fix the context's cluster and user entries (`kubectl config view`)",
                    )
                })?;
            if let Some(u) = server {
                c.cluster_url = u.clone();
            }
            (c, format!("context `{context}` of kubeconfig `{files}`"))
        }
        Source::InCluster => {
            let c = kube::Config::incluster().map_err(|e| {
                err(
                    "",
                    format!("cannot use the in-cluster service account: {}", chain(&e)),
                    "set `kubeconfig:` or `server:` in the kubernetes section",
                )
            })?;
            (c, "the in-cluster service account".to_string())
        }
    };
    // firedrill retries what it means to retry (409 conflicts, 429 evictions) itself, with the
    // step's deadline; kube's blanket retry would hide a PodDisruptionBudget's answer.
    config.default_retry = false;
    config.connect_timeout = Some(p.settings.request_timeout());
    Ok(ConfigBuilt { config, origin })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(section: &str) -> Environment {
        let src = format!(
            "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {{name: k}}\nbackend: kubernetes\nkubernetes:\n{section}"
        );
        crate::lang::environment::parse_environment("env.yaml", src.as_bytes(), &[]).unwrap()
    }

    fn kubeconfig(dir: &Path) -> PathBuf {
        let p = dir.join("kubeconfig");
        std::fs::write(
            &p,
            "apiVersion: v1\nkind: Config\ncurrent-context: dev\nclusters:\n- name: c1\n  cluster: {server: 'https://10.0.0.1:6443'}\n- name: c2\n  cluster: {server: 'https://10.0.0.2:6443'}\nusers:\n- name: u\n  user: {token: abc}\ncontexts:\n- name: dev\n  context: {cluster: c1, user: u}\n- name: prod\n  context: {cluster: c2, user: u, namespace: web}\n",
        )
        .unwrap();
        p
    }

    #[test]
    fn unknown_keys_are_located_errors() {
        let e = env("  servr: http://x\n");
        let d = prepare(&e).unwrap_err();
        assert_eq!(d.len(), 1);
        assert!(d[0].message.contains("unknown field `servr`"), "{d:?}");
        assert_eq!(d[0].loc.map(|l| l.line), Some(6));
    }

    #[test]
    fn server_alone_needs_no_kubeconfig() {
        let p = prepare(&env(
            "  server: http://127.0.0.1:8001\n  cluster: prod-east\n",
        ))
        .unwrap();
        assert!(matches!(p.source, Source::Server(_)));
        assert_eq!(p.cluster, "prod-east");
        let p = prepare(&env("  server: http://127.0.0.1:8001\n")).unwrap();
        assert_eq!(p.cluster, "default");
    }

    #[test]
    fn bad_server_and_settings_are_all_reported() {
        let d = prepare(&env(
            "  server: localhost\n  namespaces: [Web, kube-system]\n  max_pods: 0\n",
        ))
        .unwrap_err();
        let all: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            all,
            [
                "kubernetes.server",
                "kubernetes.namespaces[0]",
                "kubernetes.namespaces",
                "kubernetes.max_pods"
            ],
            "{d:#?}"
        );
    }

    #[test]
    fn a_missing_kubeconfig_names_the_file() {
        let d = prepare(&env("  kubeconfig: /nonexistent/kubeconfig\n")).unwrap_err();
        assert!(
            d[0].message
                .contains("cannot read kubeconfig `/nonexistent/kubeconfig`"),
            "{d:?}"
        );
        assert_eq!(d[0].path, "kubernetes.kubeconfig");
    }

    #[test]
    fn an_unknown_context_lists_the_contexts() {
        let dir = tempfile::tempdir().unwrap();
        let kc = kubeconfig(dir.path());
        let d = prepare(&env(&format!(
            "  kubeconfig: {}\n  context: prd\n",
            kc.display()
        )))
        .unwrap_err();
        assert!(d[0].message.contains("has no context `prd`"), "{d:?}");
        assert!(d[0].message.contains("`dev`, `prod`"), "{d:?}");
        assert!(d[0].help.contains("prod"), "{d:?}");
        assert_eq!(d[0].path, "kubernetes.context");
    }

    #[tokio::test]
    async fn a_context_selects_its_cluster_and_server_overrides_it() {
        let dir = tempfile::tempdir().unwrap();
        let kc = kubeconfig(dir.path());
        let e = env(&format!(
            "  kubeconfig: {}\n  context: prod\n",
            kc.display()
        ));
        let p = prepare(&e).unwrap();
        assert_eq!(p.cluster, "prod");
        let c = build_config(&e, &p).await.unwrap();
        assert_eq!(c.config.cluster_url.to_string(), "https://10.0.0.2:6443/");
        assert_eq!(c.config.default_namespace, "web");
        assert!(!c.config.default_retry);
        let e = env(&format!(
            "  kubeconfig: {}\n  server: http://127.0.0.1:9\n",
            kc.display()
        ));
        let p = prepare(&e).unwrap();
        assert_eq!(p.cluster, "dev", "current context");
        let c = build_config(&e, &p).await.unwrap();
        assert_eq!(c.config.cluster_url.to_string(), "http://127.0.0.1:9/");
    }
}
