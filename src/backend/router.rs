//! From an environment to a provider: connect every backend the environment names and route
//! each action and probe to its backend ([`Environment::backend_for`]).
//!
//! Invariant: nothing here acts on the environment. Connecting builds clients and reads
//! configuration; [`Router::preflight`] only reads. A drill whose calls a backend cannot serve,
//! or whose targets do not exist, stops before the first step with every problem listed.

use crate::backend::{
    Action, BoxFuture, Call, EnvironmentEvent, PreflightProblem, Probe, Provider, ProviderError,
    RunContext, Typed,
};
use crate::lang::diag::Diagnostic;
use crate::lang::environment::{Backend, Environment};
use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Options that shape how backends connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--seed`: overrides the simulated estate's seed.
    pub seed: Option<u64>,
}

/// Check every settings section of an environment without connecting (for `validate`).
pub fn check_settings(env: &Environment) -> Result<(), Vec<Diagnostic>> {
    let mut diags = Vec::new();
    for b in env.backends() {
        let r = match b {
            Backend::Sim => crate::backend::sim::check_settings(env),
            Backend::Kubernetes => crate::backend::k8s::check_settings(env),
            Backend::Aws => crate::backend::aws::check_settings(env),
            Backend::Prometheus => crate::backend::prometheus::check_settings(env),
            Backend::Postgres => crate::backend::postgres::check_settings(env),
        };
        if let Err(d) = r {
            diags.extend(d);
        }
    }
    if diags.is_empty() { Ok(()) } else { Err(diags) }
}

/// Connect every backend of an environment. Errors are diagnostics on the environment file
/// (bad settings, unreadable kubeconfig, unknown profile...).
pub async fn connect(env: &Environment, opts: &ConnectOptions) -> Result<Router, Vec<Diagnostic>> {
    let mut providers: Vec<(Backend, Arc<dyn Provider>)> = Vec::new();
    let mut diags = Vec::new();
    for b in env.backends() {
        let p: Result<Arc<dyn Provider>, Vec<Diagnostic>> = match b {
            Backend::Sim => crate::backend::sim::SimProvider::new(env, opts.seed)
                .map(|p| Arc::new(p) as Arc<dyn Provider>),
            Backend::Kubernetes => crate::backend::k8s::connect(env, opts)
                .await
                .map(|p| Arc::new(p) as Arc<dyn Provider>),
            Backend::Aws => crate::backend::aws::connect(env, opts)
                .await
                .map(|p| Arc::new(p) as Arc<dyn Provider>),
            Backend::Prometheus => crate::backend::prometheus::connect(env, opts)
                .await
                .map(|p| Arc::new(p) as Arc<dyn Provider>),
            Backend::Postgres => {
                crate::backend::postgres::connect(env).map(|p| Arc::new(p) as Arc<dyn Provider>)
            }
        };
        match p {
            Ok(p) => providers.push((b, p)),
            Err(d) => diags.extend(d),
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut router = Router::new(env, providers);
    // PostgreSQL calls name their servers themselves: the backend serves every environment,
    // with the section's timeouts when there is one and the defaults otherwise.
    if !router
        .providers
        .iter()
        .any(|(b, _)| *b == Backend::Postgres)
    {
        router.providers.push((
            Backend::Postgres,
            Arc::new(crate::backend::postgres::PgProvider::new(Default::default())),
        ));
    }
    Ok(router)
}

/// `sim+kubernetes`-style label of several backends, leaked once per distinct combination (at
/// most a handful: four backends), since [`Provider::backend`] hands out `&'static str`.
fn interned_label(providers: &[(Backend, Arc<dyn Provider>)]) -> &'static str {
    static LABELS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let joined = providers
        .iter()
        .map(|(b, _)| b.name())
        .collect::<Vec<_>>()
        .join("+");
    let mut labels = LABELS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = labels.iter().find(|l| **l == joined) {
        return l;
    }
    let l: &'static str = Box::leak(joined.into_boxed_str());
    labels.push(l);
    l
}

/// Sends each action and probe to the backend the environment assigns it.
pub struct Router {
    primary: Backend,
    /// Backends whose sections are present (they claim their domain's names).
    present: BTreeSet<Backend>,
    providers: Vec<(Backend, Arc<dyn Provider>)>,
    label: &'static str,
}

impl Router {
    /// Route over already-built providers; the first is the primary. Names are routed as
    /// [`Environment::backend_for`] does.
    pub fn new(env: &Environment, providers: Vec<(Backend, Arc<dyn Provider>)>) -> Router {
        Router::from_parts(
            env.backend,
            env.sections.keys().copied().collect(),
            providers,
        )
    }

    /// Route over providers without an environment file (tests wire shared estates this way).
    pub fn from_parts(
        primary: Backend,
        present: BTreeSet<Backend>,
        providers: Vec<(Backend, Arc<dyn Provider>)>,
    ) -> Router {
        let label = match providers.len() {
            0 | 1 => primary.name(),
            _ => interned_label(&providers),
        };
        Router {
            primary,
            present,
            providers,
            label,
        }
    }

    /// The backend a name is routed to.
    pub fn backend_for(&self, name: &str) -> Backend {
        Backend::route(name, self.primary, |b| self.present.contains(&b))
    }

    fn provider_for(&self, name: &str) -> Result<&Arc<dyn Provider>, ProviderError> {
        let b = self.backend_for(name);
        self.providers
            .iter()
            .find(|(pb, _)| *pb == b)
            .map(|(_, p)| p)
            .ok_or_else(|| ProviderError::unsupported(b.name(), name))
    }

    fn unsupported(&self, name: &str) -> ProviderError {
        let b = self.backend_for(name);
        if b == Backend::Prometheus && !self.providers.iter().any(|(pb, _)| *pb == b) {
            return ProviderError::not_found(format!(
                "`{name}` queries Prometheus, and the environment has no `prometheus:` section: add a `prometheus:` section with its url (e.g. `prometheus: {{url: http://127.0.0.1:9090}}`)"
            ));
        }
        match Backend::domain_of(name) {
            Some(d) if d != b => ProviderError::not_found(format!(
                "backend `{}` does not support `{name}`; add a `{}:` section to the environment so `{name}` runs there",
                b.name(),
                d.name()
            )),
            _ => ProviderError::unsupported(b.name(), name),
        }
    }
}

impl Provider for Router {
    fn backend(&self) -> &'static str {
        self.label
    }

    fn start(&self, ctx: &RunContext) {
        for (_, p) in &self.providers {
            p.start(ctx);
        }
    }

    fn supports(&self, name: &str) -> bool {
        self.provider_for(name).is_ok_and(|p| p.supports(name))
    }

    fn preflight<'a>(&'a self, calls: &'a [Call]) -> BoxFuture<'a, Vec<PreflightProblem>> {
        Box::pin(async move {
            let mut problems = Vec::new();
            for c in calls {
                if !self.supports(c.name()) {
                    problems.push(PreflightProblem {
                        owner: c.owner.clone(),
                        error: self.unsupported(c.name()),
                    });
                }
            }
            for (b, p) in &self.providers {
                let mine: Vec<Call> = calls
                    .iter()
                    .filter(|c| self.backend_for(c.name()) == *b && p.supports(c.name()))
                    .cloned()
                    .collect();
                if !mine.is_empty() {
                    problems.extend(p.preflight(&mine).await);
                }
            }
            problems
        })
    }

    fn inject<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Json, ProviderError>> {
        match self.provider_for(action.name()) {
            Ok(p) => p.inject(action),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn revert<'a>(
        &'a self,
        action: &'a Action,
        output: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        match self.provider_for(action.name()) {
            Ok(p) => p.revert(action, output),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn observe<'a>(&'a self, probe: &'a Probe) -> BoxFuture<'a, Result<Json, ProviderError>> {
        match self.provider_for(probe.name()) {
            Ok(p) => p.observe(probe),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn describe<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, ProviderError>> {
        match self.provider_for(action.name()) {
            Ok(p) => p.describe(action),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn canary(
        &self,
        spec: &crate::lang::postgres::PgCanary,
        run_id: &str,
    ) -> Result<Arc<dyn crate::backend::CanaryIo>, ProviderError> {
        self.provider_for("postgres")?.canary(spec, run_id)
    }

    fn drain_events(&self) -> Vec<EnvironmentEvent> {
        let mut all: Vec<EnvironmentEvent> = self
            .providers
            .iter()
            .flat_map(|(_, p)| p.drain_events())
            .collect();
        all.sort_by_key(|e| e.at_ms);
        all
    }
}

/// The calls an experiment makes (every non-built-in step action, explicit rollback action and
/// probe), for preflight.
pub fn calls_of(exp: &crate::lang::spec::Experiment) -> Vec<Call> {
    let builtin = |k: &str| crate::lang::vocab::action(k).is_some_and(|a| a.builtin);
    let generic_probe = |k: &str| k == "http" || k == "command";
    let mut out = Vec::new();
    for (i, s) in exp.steps.iter().enumerate() {
        if !builtin(&s.action.value) {
            out.push(Call {
                owner: format!("step `{}` (steps[{i}])", s.id.value),
                typed: Typed::Action((*s.call).clone()),
            });
        }
        if let crate::lang::spec::RollbackSpec::Action { call, .. } = &s.rollback
            && !builtin(call.name())
        {
            out.push(Call {
                owner: format!("rollback of step `{}`", s.id.value),
                typed: Typed::Action((**call).clone()),
            });
        }
    }
    for p in &exp.probes {
        if !generic_probe(p.call.name()) {
            out.push(Call {
                owner: format!("probe `{}`", p.name.value),
                typed: Typed::Probe(p.call.clone()),
            });
        }
    }
    if let Some(crate::lang::spec::DataLoss::Canary { canary, .. }) =
        exp.recovery.as_ref().and_then(|r| r.data_loss.as_ref())
    {
        out.push(Call {
            owner: "the data-loss canary (recovery.data_loss.canary)".into(),
            typed: Typed::Canary((**canary).clone()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(src: &str) -> Environment {
        crate::lang::environment::parse_environment("env.yaml", src.as_bytes(), &[]).unwrap()
    }

    #[test]
    fn names_go_to_their_domain_when_its_section_is_present() {
        let e = env(
            "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {name: mixed}\nbackend: sim\nsim: {}\nkubernetes: {}\n",
        );
        assert_eq!(e.backend_for("k8s.pod_kill"), Backend::Kubernetes);
        assert_eq!(e.backend_for("k8s.pods"), Backend::Kubernetes);
        assert_eq!(e.backend_for("db.cluster"), Backend::Sim, "no aws section");
        assert_eq!(e.backend_for("service.metrics"), Backend::Sim);
        assert_eq!(e.backends(), vec![Backend::Sim, Backend::Kubernetes]);
    }

    #[test]
    fn the_primary_serves_names_without_a_section() {
        let e = env(
            "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {name: k}\nbackend: kubernetes\n",
        );
        assert_eq!(e.backend_for("service.metrics"), Backend::Kubernetes);
        assert_eq!(e.backend_for("db.cluster"), Backend::Kubernetes);
        assert_eq!(e.backends(), vec![Backend::Kubernetes]);
    }

    #[test]
    fn postgres_calls_go_to_postgres_without_a_section() {
        let e = env(
            "apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {name: k}\nbackend: sim\n",
        );
        assert_eq!(e.backend_for("postgres"), Backend::Postgres);
        assert_eq!(e.backends(), vec![Backend::Sim]);
        let bad = crate::lang::environment::parse_environment(
            "env.yaml",
            b"apiVersion: firedrill.dev/v1\nkind: Environment\nmetadata: {name: k}\nbackend: postgres\n",
            &[],
        )
        .unwrap_err();
        assert!(bad[0].message.contains("not a valid backend"), "{bad:?}");
    }
}
