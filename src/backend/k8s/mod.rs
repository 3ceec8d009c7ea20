//! Kubernetes backend (kube-rs): the `k8s.*` vocabulary against a real API server, from outside
//! the cluster, with nothing installed in it.
//!
//! - [`settings`]: the `kubernetes:` section and the kube-rs configuration (no network).
//! - [`actions`]: pod kills, node cordon/drain/taint, zone loss, scale, rollout restart, and
//!   their rollbacks; dry-run descriptions resolve targets exactly as the actions do.
//! - [`probes`]: pods, restarts over a window, workloads, nodes, memory.
//! - [`preflight`]: read-only checks before a drill (reachable, targets exist, caps, RBAC via
//!   SelfSubjectAccessReview).
//! - [`recovery`]: per-pod recovery timings from a watch, as environment events.
//!
//! Invariants:
//! - **Refuse before touching.** Blast-radius caps, the namespace allow-list and the kube-system
//!   refusal are checked, and targets resolved, before the first mutating request; so are RBAC
//!   permissions when the cluster serves SelfSubjectAccessReview.
//! - **Rollbacks undo exactly what the step did.** Every action records what it changed (the
//!   nodes it cordoned, not those already cordoned) in its output *and* in the provider's
//!   ledger as it goes, so a step that failed or timed out half-way is still rolled back exactly.
//! - **Conflicts are retried** (409: re-read, re-apply, bounded); evictions refused by a
//!   PodDisruptionBudget (429) are retried with backoff until the step's `timeout`.

pub mod actions;
pub(crate) mod api;
pub mod preflight;
pub mod probes;
pub mod recovery;
pub mod settings;

pub use settings::KubernetesSettings;

use crate::backend::router::ConnectOptions;
use crate::backend::{
    Action, BoxFuture, Call, EnvironmentEvent, PreflightProblem, Probe, Provider, ProviderError,
    RunContext,
};
use crate::lang::diag::Diagnostic;
use crate::lang::environment::{Backend, Environment};
use api::{Endpoint, Op, Rng};
use serde_json::Value as Json;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Check the `kubernetes:` section without connecting (reads the kubeconfig).
pub fn check_settings(env: &Environment) -> Result<(), Vec<Diagnostic>> {
    settings::prepare(env).map(|_| ())
}

/// Build a client for the cluster the `kubernetes:` section names. Does not contact the server:
/// an unreachable server is a preflight problem.
pub async fn connect(
    env: &Environment,
    opts: &ConnectOptions,
) -> Result<KubeProvider, Vec<Diagnostic>> {
    let prepared = settings::prepare(env)?;
    let built = settings::build_config(env, &prepared).await?;
    crate::engine::generic::install_crypto_provider();
    let server = built.config.cluster_url.to_string();
    let client = kube::Client::try_from(built.config).map_err(|e| {
        vec![env.settings_error(
            Backend::Kubernetes,
            "",
            format!(
                "cannot build a Kubernetes client for {server} ({}): {}",
                built.origin,
                settings::chain(&e)
            ),
            "check the cluster's certificate authority and the user's client certificate in the kubeconfig".into(),
        )]
    })?;
    let mut p = KubeProvider::build(
        client,
        prepared.settings,
        prepared.cluster,
        Endpoint {
            server: server.trim_end_matches('/').to_string(),
            origin: built.origin,
        },
    );
    if let Some(seed) = opts.seed {
        p = p.with_seed(seed);
    }
    Ok(p)
}

/// A provider over an existing client (tests, and the simulated estate served as an API).
pub fn from_client(client: kube::Client, settings: KubernetesSettings) -> KubeProvider {
    let cluster = settings.cluster.clone().unwrap_or_else(|| "default".into());
    let server = settings
        .server
        .clone()
        .unwrap_or_else(|| "the Kubernetes API server".into());
    KubeProvider::build(
        client,
        settings,
        cluster,
        Endpoint {
            server,
            origin: "the configured client".into(),
        },
    )
}

/// What one action changed, kept as it happens (see the module invariants).
#[derive(Debug, Clone)]
struct LedgerEntry {
    /// The step, decoded: a rollback finds the entry of the run with the same action.
    action: Action,
    output: Json,
    reverted: bool,
}

/// Restart counters of one probe's pods, sampled over time (for `k8s.pod_restarts`).
#[derive(Debug, Default)]
pub(crate) struct RestartHistory {
    /// Highest container restart count seen per pod uid.
    pub seen: HashMap<String, u64>,
    /// Pods that appeared after the first sample (replacements).
    pub replaced: u64,
    /// (run-clock time, cumulative restarts + replacements).
    pub samples: std::collections::VecDeque<(std::time::Duration, u64)>,
}

#[derive(Default)]
struct State {
    ledger: Vec<LedgerEntry>,
    restarts: HashMap<String, RestartHistory>,
    /// Workloads seen owning a probe's pods (so `desired` survives all pods being gone).
    owners: HashMap<String, BTreeSet<(String, String)>>,
    /// `namespace/replicaset` -> the workload owning it.
    rs_owner: HashMap<String, (String, String)>,
}

/// The Kubernetes backend.
pub struct KubeProvider {
    client: kube::Client,
    settings: KubernetesSettings,
    cluster: String,
    ep: Endpoint,
    rng: Mutex<Rng>,
    state: Mutex<State>,
    shared: Arc<recovery::Shared>,
}

impl Drop for KubeProvider {
    fn drop(&mut self) {
        self.shared.stop_all();
    }
}

impl KubeProvider {
    fn build(
        client: kube::Client,
        settings: KubernetesSettings,
        cluster: String,
        ep: Endpoint,
    ) -> KubeProvider {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5EED);
        KubeProvider {
            client,
            settings,
            cluster,
            ep,
            rng: Mutex::new(Rng(seed)),
            state: Mutex::new(State::default()),
            shared: Arc::new(recovery::Shared::default()),
        }
    }

    /// Seed the generator that picks which pods a random kill takes (default: the time).
    pub fn with_seed(self, seed: u64) -> KubeProvider {
        *self.rng.lock().expect("poisoned") = Rng(seed);
        self
    }

    /// The name `cluster:` parameters must match.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub fn settings(&self) -> &KubernetesSettings {
        &self.settings
    }

    /// Whether every recovery watch has finished (all tracked pods recovered).
    pub fn recovery_idle(&self) -> bool {
        self.shared.idle()
    }

    /// Who reports environment events: the Kubernetes backend, for a cluster (the simulated
    /// estate reports as `k8s <cluster>`, so a drill wired to both can tell them apart).
    fn component(&self) -> String {
        format!("kubernetes {}", self.cluster)
    }

    /// One API request: bounded by `request_timeout`, errors mapped for the operator.
    async fn call<T>(
        &self,
        op: Op<'_>,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ProviderError> {
        let t = self.settings.request_timeout();
        match tokio::time::timeout(t, fut).await {
            Ok(r) => r.map_err(|e| api::map_error(&self.ep, op, e)),
            Err(_) => Err(ProviderError::unavailable(format!(
                "no answer from the Kubernetes API server at {} within {} (`{}` on `{}`); check that it is up and reachable, or raise `request_timeout`",
                self.ep.server,
                crate::lang::duration::format(t),
                op.verb,
                op.resource
            ))),
        }
    }

    /// Like [`KubeProvider::call`], keeping the raw error for callers that handle some codes.
    async fn call_raw<T>(
        &self,
        op: Op<'_>,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<Result<T, kube::Error>, ProviderError> {
        let t = self.settings.request_timeout();
        match tokio::time::timeout(t, fut).await {
            Ok(r) => Ok(r),
            Err(_) => Err(ProviderError::unavailable(format!(
                "no answer from the Kubernetes API server at {} within {} (`{}` on `{}`); check that it is up and reachable, or raise `request_timeout`",
                self.ep.server,
                crate::lang::duration::format(t),
                op.verb,
                op.resource
            ))),
        }
    }

    fn map(&self, op: Op<'_>, e: kube::Error) -> ProviderError {
        api::map_error(&self.ep, op, e)
    }

    /// The `cluster:` parameter, if given, must name this cluster.
    fn check_cluster(&self, cluster: Option<&str>) -> Result<(), ProviderError> {
        match cluster {
            Some(c) if c != self.cluster => Err(ProviderError::not_found(format!(
                "this environment's Kubernetes cluster is `{}`, not `{c}`; drop `cluster:` or set `kubernetes.cluster` (or the context) to `{c}`",
                self.cluster
            ))),
            _ => Ok(()),
        }
    }

    // ---- the ledger -----------------------------------------------------------------------

    fn ledger_open(&self, action: &Action, output: &Json) -> usize {
        let mut st = self.state.lock().expect("poisoned");
        st.ledger.push(LedgerEntry {
            action: action.clone(),
            output: output.clone(),
            reverted: false,
        });
        st.ledger.len() - 1
    }

    fn ledger_set(&self, idx: usize, output: &Json) {
        if let Some(e) = self.state.lock().expect("poisoned").ledger.get_mut(idx) {
            e.output = output.clone();
        }
    }

    /// What the latest not-yet-reverted run of this action (same parameters) changed.
    fn ledger_find(&self, action: &Action) -> Option<(usize, Json)> {
        let st = self.state.lock().expect("poisoned");
        st.ledger
            .iter()
            .enumerate()
            .rev()
            .find(|(_, e)| !e.reverted && &e.action == action)
            .map(|(i, e)| (i, e.output.clone()))
    }

    fn ledger_close(&self, action: &Action) {
        let mut st = self.state.lock().expect("poisoned");
        if let Some(e) = st
            .ledger
            .iter_mut()
            .rev()
            .find(|e| !e.reverted && &e.action == action)
        {
            e.reverted = true;
        }
    }
}

fn unsupported(name: &str) -> ProviderError {
    ProviderError::unsupported("kubernetes", name)
}

impl Provider for KubeProvider {
    fn backend(&self) -> &'static str {
        "kubernetes"
    }

    fn start(&self, ctx: &RunContext) {
        self.shared.start(ctx.clock);
    }

    fn supports(&self, name: &str) -> bool {
        actions::ACTIONS.contains(&name) || probes::PROBES.contains(&name)
    }

    fn preflight<'a>(&'a self, calls: &'a [Call]) -> BoxFuture<'a, Vec<PreflightProblem>> {
        Box::pin(self.preflight_calls(calls))
    }

    fn inject<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            if !actions::ACTIONS.contains(&action.name()) {
                return Err(unsupported(action.name()));
            }
            self.check_cluster(action.cluster())?;
            self.inject_action(action).await
        })
    }

    fn revert<'a>(
        &'a self,
        action: &'a Action,
        output: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            if !actions::ACTIONS.contains(&action.name()) {
                return Err(unsupported(action.name()));
            }
            self.revert_action(action, output).await
        })
    }

    fn observe<'a>(&'a self, probe: &'a Probe) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            if !probes::PROBES.contains(&probe.name()) {
                return Err(unsupported(probe.name()));
            }
            self.check_cluster(probe.cluster())?;
            self.observe_probe(probe).await
        })
    }

    fn describe<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            if !actions::ACTIONS.contains(&action.name()) {
                return Err(unsupported(action.name()));
            }
            self.check_cluster(action.cluster())?;
            self.describe_action(action).await
        })
    }

    fn drain_events(&self) -> Vec<EnvironmentEvent> {
        self.shared.drain()
    }
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

    #[tokio::test]
    async fn connect_builds_a_client_without_contacting_the_server() {
        // Nothing listens on port 1: connecting must still succeed (preflight finds out).
        let e = env("  server: http://127.0.0.1:1\n  cluster: prod-east\n  max_pods: 3\n");
        check_settings(&e).unwrap();
        let k = connect(&e, &ConnectOptions::default()).await.unwrap();
        assert_eq!(k.cluster(), "prod-east");
        assert_eq!(k.settings().max_pods, Some(3));
        assert_eq!(k.ep.server, "http://127.0.0.1:1");
        assert!(k.supports("k8s.pod_kill") && k.supports("k8s.memory"));
        assert!(!k.supports("db.cluster") && !k.supports("service.metrics"));
        let e = crate::backend::ProviderExt::inject_json(
            &k,
            "db.cluster_failover",
            &serde_json::json!({"cluster": "orders-db"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind, crate::backend::ErrorKind::Unsupported);
    }

    #[tokio::test]
    async fn connect_reports_settings_problems_as_located_diagnostics() {
        let Err(d) = connect(
            &env("  context: nope\n  kubeconfig: /nonexistent\n"),
            &ConnectOptions::default(),
        )
        .await
        else {
            panic!("connected")
        };
        assert_eq!(d[0].path, "kubernetes.kubeconfig");
        assert!(d[0].loc.is_some());
    }
}
