//! The narrow interface every backend implements: inject (run an action), observe (run a probe),
//! revert (an action's natural rollback), describe (what an action would do, for dry runs) and
//! preflight (does every target exist, may we act on it). The simulated estate, Kubernetes and AWS
//! implement the same names (see [`crate::lang::vocab`]), so an experiment is portable between them;
//! [`crate::backend::router::Router`] sends each name to the backend the environment assigns it.
//!
//! Built-in steps (wait, assert, wait_until, approval) and the generic http/command actions and
//! probes are the executor's own and never reach a provider.

pub mod aws;
pub mod k8s;
pub mod postgres;
pub mod prometheus;
pub mod router;
pub mod sim;

pub use crate::lang::action::{Action, Probe};
use serde_json::Value as Json;
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What kind of failure a provider call met. The kind travels through the executor into the
/// journal (`step_finished.error_kind`) and the report, and decides whether a step is retried
/// ([`ErrorKind::is_retryable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The parameters are wrong in a way validation could not know (e.g. a time outside the
    /// restorable window).
    InvalidInput,
    /// The input names something the environment does not have (zone, cluster, pod, record...).
    NotFound,
    /// The environment refused in its current state (e.g. a failover while failing over, a
    /// blast-radius cap, a PodDisruptionBudget that never allowed the eviction).
    InvalidState,
    /// The caller lacks a permission; the message names the exact verb/resource or IAM action.
    Denied,
    /// The API asked us to slow down (HTTP 429, AWS throttling codes).
    Throttled,
    /// The backend cannot be reached or answered with a server error (connection refused, DNS,
    /// TLS, HTTP 5xx).
    Unavailable,
    /// The call did not finish in time; for a call that changes something, its outcome is
    /// unknown.
    TimedOut,
    /// The backend does not implement this action or probe.
    Unsupported,
    /// Anything else the API answered that we do not classify.
    Failed,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NotFound => "not found",
            ErrorKind::InvalidState => "invalid state",
            ErrorKind::Denied => "denied",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Failed => "failed",
        }
    }

    /// Whether trying the same call again may succeed: throttling and unavailability are
    /// transient, and so is a state that changes by itself (a cluster still failing over). A
    /// denial, a missing target, bad input or a timed-out change is not retried: retrying a
    /// timed-out failover could fail over twice.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled | ErrorKind::Unavailable | ErrorKind::InvalidState
        )
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a provider call failed: a kind, a message that names the resource and says what to do,
/// and the underlying error when there is one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: ErrorKind,
    pub message: String,
    #[source]
    pub source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ProviderError {
        ProviderError {
            kind,
            message: message.into(),
            source: None,
        }
    }
    pub fn invalid_input(m: String) -> ProviderError {
        ProviderError::new(ErrorKind::InvalidInput, m)
    }
    pub fn not_found(m: String) -> ProviderError {
        ProviderError::new(ErrorKind::NotFound, m)
    }
    pub fn invalid_state(m: String) -> ProviderError {
        ProviderError::new(ErrorKind::InvalidState, m)
    }
    pub fn denied(m: String) -> ProviderError {
        ProviderError::new(ErrorKind::Denied, m)
    }
    pub fn throttled(m: String) -> ProviderError {
        ProviderError::new(ErrorKind::Throttled, m)
    }
    pub fn unavailable(m: String) -> ProviderError {
        ProviderError::new(ErrorKind::Unavailable, m)
    }
    pub fn timed_out(m: String) -> ProviderError {
        ProviderError::new(ErrorKind::TimedOut, m)
    }
    pub fn failed(m: String) -> ProviderError {
        ProviderError::new(ErrorKind::Failed, m)
    }
    /// The backend does not implement `name`.
    pub fn unsupported(backend: &str, name: &str) -> ProviderError {
        ProviderError::new(
            ErrorKind::Unsupported,
            format!("backend `{backend}` does not support `{name}`"),
        )
    }
    /// Attach the underlying error.
    pub fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> ProviderError {
        self.source = Some(std::sync::Arc::new(source));
        self
    }
    /// The same error with its message rewritten (context added in front, a note after).
    pub fn map_message(mut self, f: impl FnOnce(String) -> String) -> ProviderError {
        self.message = f(std::mem::take(&mut self.message));
        self
    }
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
    /// The call decoded: what backends read.
    pub typed: Typed,
}

/// An action, a probe or the data-loss canary, decoded.
#[derive(Debug, Clone)]
pub enum Typed {
    Action(Action),
    Probe(Probe),
    /// `recovery.data_loss.canary` (preflight: may the canary connect, create and write?).
    Canary(crate::lang::postgres::PgCanary),
}

/// The data-loss canary's IO, on the backend of its type (PostgreSQL): the engine's canary
/// writer drives it (`engine::canary`). Every call is bounded by the backend's timeouts; errors
/// name servers as `host:port/dbname`.
pub trait CanaryIo: Send + Sync {
    /// `host:port/dbname` of the write server.
    fn write_server(&self) -> String;
    /// `host:port/dbname` of the read server.
    fn read_server(&self) -> String;
    /// The write server's clock now (`clock_timestamp()`), for the clock skew.
    fn server_time(&self) -> BoxFuture<'_, Result<chrono::DateTime<chrono::Utc>, ProviderError>>;
    /// Create the canary table on the write server if it does not exist.
    fn prepare(&self) -> BoxFuture<'_, Result<(), ProviderError>>;
    /// Write canary `seq` on the write server; the commit time by the server's clock.
    fn write(
        &self,
        seq: u64,
    ) -> BoxFuture<'_, Result<chrono::DateTime<chrono::Utc>, ProviderError>>;
    /// The sequence numbers of this run's canaries the read server has.
    fn surviving(&self) -> BoxFuture<'_, Result<Vec<u64>, ProviderError>>;
    /// Delete this run's canaries (read server, and the write server when it is another one
    /// and reachable); how many rows were removed, and on which servers.
    fn remove(&self) -> BoxFuture<'_, Result<String, ProviderError>>;
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
    fn inject<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Json, ProviderError>>;

    /// Revert an action with its natural inverse, given the action and its output.
    fn revert<'a>(
        &'a self,
        action: &'a Action,
        output: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>>;

    /// Observe: run a probe.
    fn observe<'a>(&'a self, probe: &'a Probe) -> BoxFuture<'a, Result<Json, ProviderError>>;

    /// Describe what an action would do, resolving its targets, without side effects.
    fn describe<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, ProviderError>>;

    /// Environment events since the last call (for the journal's timeline).
    fn drain_events(&self) -> Vec<EnvironmentEvent> {
        Vec::new()
    }

    /// The IO of a data-loss canary for run `run_id` (builds clients; contacts nothing).
    fn canary(
        &self,
        _spec: &crate::lang::postgres::PgCanary,
        _run_id: &str,
    ) -> Result<std::sync::Arc<dyn CanaryIo>, ProviderError> {
        Err(ProviderError::unsupported(self.backend(), "canary"))
    }
}

/// Calls by vocabulary name and JSON parameters, decoded first (as validation would): for
/// callers that build calls at run time rather than from an experiment file (tests, the served
/// estate's tools). A call that does not decode is `invalid input`.
pub trait ProviderExt: Provider {
    fn inject_json<'a>(
        &'a self,
        name: &'a str,
        params: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            let a = decode_action(name, params)?;
            self.inject(&a).await
        })
    }
    fn revert_json<'a>(
        &'a self,
        name: &'a str,
        params: &'a Json,
        output: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            let a = decode_action(name, params)?;
            self.revert(&a, output).await
        })
    }
    fn observe_json<'a>(
        &'a self,
        name: &'a str,
        params: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            let p = decode_probe(name, params)?;
            self.observe(&p).await
        })
    }
    fn describe_json<'a>(
        &'a self,
        name: &'a str,
        params: &'a Json,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            let a = decode_action(name, params)?;
            self.describe(&a).await
        })
    }
}

impl<P: Provider + ?Sized> ProviderExt for P {}

/// Decode an action by name, as validation does (`invalid input` if it does not decode).
pub fn decode_action(name: &str, params: &Json) -> Result<Action, ProviderError> {
    Action::decode(name, params)
        .map_err(|e| ProviderError::invalid_input(crate::lang::kubernetes::joined(&e)))
}

/// Decode a probe by name, as validation does (`invalid input` if it does not decode).
pub fn decode_probe(name: &str, params: &Json) -> Result<Probe, ProviderError> {
    Probe::decode(name, params)
        .map_err(|e| ProviderError::invalid_input(crate::lang::kubernetes::joined(&e)))
}

impl Call {
    /// The vocabulary name (what routing and messages use).
    pub fn name(&self) -> &'static str {
        match &self.typed {
            Typed::Action(a) => a.name(),
            Typed::Probe(p) => p.name(),
            Typed::Canary(_) => "postgres",
        }
    }

    /// A call from its name and checked parameters (decoded here).
    pub fn new(
        owner: String,
        name: &str,
        params: Json,
        is_action: bool,
    ) -> Result<Call, ProviderError> {
        let typed = if is_action {
            Typed::Action(decode_action(name, &params)?)
        } else {
            Typed::Probe(decode_probe(name, &params)?)
        };
        Ok(Call { owner, typed })
    }
}

/// The strings of a JSON array (a step's output: the nodes it cordoned, the pods it killed),
/// for rollbacks that undo exactly what the step recorded.
pub(crate) fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
