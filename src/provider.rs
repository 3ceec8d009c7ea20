//! The narrow interface every backend implements: inject (run an action), observe (run a probe),
//! revert (an action's natural rollback), and describe (what an action would do, for dry runs).
//! The simulated estate implements it now; Kubernetes and AWS will implement the same names
//! (see [`crate::vocab`]), so an experiment is portable between them.
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
}

/// Something the environment did on its own, at run-clock milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentEvent {
    pub at_ms: u64,
    pub component: String,
    pub message: String,
}

pub trait Provider: Send + Sync {
    /// Backend name for reports (`sim`, `kubernetes`, `aws`).
    fn backend(&self) -> &'static str;

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
    fn describe(&self, action: &str, params: &Json) -> Result<String, ProviderError>;

    /// Environment events since the last call (for the journal's timeline).
    fn drain_events(&self) -> Vec<EnvironmentEvent> {
        Vec::new()
    }
}
