//! Kubernetes backend (kube-rs): the `k8s.*` vocabulary against a real API server.
//! (Being built: see issue 3.)

use crate::backends::ConnectOptions;
use crate::diag::Diagnostic;
use crate::environment::{Backend, Environment};
use crate::provider::{BoxFuture, Provider, ProviderError};
use serde_json::Value as Json;

/// Check the `kubernetes:` section without connecting.
pub fn check_settings(_env: &Environment) -> Result<(), Vec<Diagnostic>> {
    Ok(())
}

/// Connect to the cluster the `kubernetes:` section names.
pub async fn connect(
    env: &Environment,
    _opts: &ConnectOptions,
) -> Result<KubeProvider, Vec<Diagnostic>> {
    Err(vec![env.settings_error(
        Backend::Kubernetes,
        "",
        "the kubernetes backend is not available yet".into(),
        "use `backend: sim`".into(),
    )])
}

pub struct KubeProvider {}

impl Provider for KubeProvider {
    fn backend(&self) -> &'static str {
        "kubernetes"
    }
    fn inject<'a>(
        &'a self,
        action: &'a str,
        _params: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            Err(ProviderError::Unsupported {
                backend: "kubernetes".into(),
                name: action.into(),
            })
        })
    }
    fn revert<'a>(
        &'a self,
        action: &'a str,
        _params: &'a Json,
        _output: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            Err(ProviderError::Unsupported {
                backend: "kubernetes".into(),
                name: action.into(),
            })
        })
    }
    fn observe<'a>(
        &'a self,
        probe: &'a str,
        _params: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            Err(ProviderError::Unsupported {
                backend: "kubernetes".into(),
                name: probe.into(),
            })
        })
    }
    fn describe<'a>(
        &'a self,
        action: &'a str,
        _params: &'a Json,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            Err(ProviderError::Unsupported {
                backend: "kubernetes".into(),
                name: action.into(),
            })
        })
    }
}
