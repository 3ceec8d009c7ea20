//! The narrow interface every backend implements: inject (run an action), observe (run a probe),
//! revert (an action's natural rollback), describe (what an action would do, for dry runs) and
//! preflight (does every target exist, may we act on it). The simulated estate, Kubernetes and AWS
//! implement the same names (see [`crate::vocab`]), so an experiment is portable between them;
//! [`crate::backends::Router`] sends each name to the backend the environment assigns it.
//!
//! Built-in steps (wait, assert, wait_until, approval) and the generic http/command actions and
//! probes are the executor's own and never reach a provider.

use serde_json::Value as Json;
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a provider call failed. Messages name the resource and say what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The input names something the environment does not have (zone, cluster, selector...).
    #[error("{0}")]
    InvalidTarget(String),
    /// The environment refused in its current state (e.g. a failover while failing over).
    #[error("{0}")]
    InvalidState(String),
    /// The backend does not implement this action or probe.
    #[error("backend `{backend}` does not support `{name}`")]
    Unsupported { backend: String, name: String },
    /// Transport or API failure.
    #[error("{0}")]
    Backend(String),
    /// The caller lacks a permission; the message names the exact verb/resource or IAM action.
    #[error("{0}")]
    Denied(String),
    /// The backend cannot be reached at all (connection refused, DNS, TLS).
    #[error("{0}")]
    Unreachable(String),
}

/// What a run tells its provider when it starts.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The run clock every `at_ms` refers to.
    pub clock: crate::engine::clock::RunClock,
    /// The run id (backends tag what they create with it, e.g. FIS experiments).
    pub run_id: String,
    pub experiment: String,
}

/// One action or probe an experiment will call, for preflight checks.
#[derive(Debug, Clone)]
pub struct Call {
    /// `steps[2]`-style location of the call in the experiment, for messages.
    pub owner: String,
    pub name: String,
    pub params: Json,
    pub is_action: bool,
}

/// A preflight finding: which call, and what is wrong with it.
#[derive(Debug, Clone)]
pub struct PreflightProblem {
    pub owner: String,
    pub error: ProviderError,
}

/// Something the environment did on its own, at run-clock milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentEvent {
    pub at_ms: u64,
    pub component: String,
    pub message: String,
    /// Structured detail for reports, e.g. a pod's recovery timing
    /// (`{"kind": "pod_recovery", ...}`, see [`crate::report`]).
    pub detail: Option<Json>,
}

pub trait Provider: Send + Sync {
    /// Backend name for reports (`sim`, `kubernetes`, `aws`).
    fn backend(&self) -> &'static str;

    /// Called once when the run starts, with the run clock the provider's times refer to.
    fn start(&self, _ctx: &RunContext) {}

    /// Whether this backend implements an action or probe name at all.
    fn supports(&self, _name: &str) -> bool {
        true
    }

    /// Check, before anything runs, that every target exists and the caller may act on it.
    /// Read-only. The default finds nothing wrong.
    fn preflight<'a>(&'a self, _calls: &'a [Call]) -> BoxFuture<'a, Vec<PreflightProblem>> {
        Box::pin(async { Vec::new() })
    }

    /// Inject: run an action. The output is journaled and is handed back to `revert`.
    fn inject<'a>(
        &'a self,
        action: &'a str,
        params: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>>;

    /// Revert an action with its natural inverse, given its parameters and output.
    fn revert<'a>(
        &'a self,
        action: &'a str,
        params: &'a Json,
        output: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>>;

    /// Observe: run a probe.
    fn observe<'a>(
        &'a self,
        probe: &'a str,
        params: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>>;

    /// Describe what an action would do, resolving its targets, without side effects.
    fn describe<'a>(
        &'a self,
        action: &'a str,
        params: &'a Json,
    ) -> BoxFuture<'a, Result<String, ProviderError>>;

    /// Environment events since the last call (for the journal's timeline).
    fn drain_events(&self) -> Vec<EnvironmentEvent> {
        Vec::new()
    }
}
