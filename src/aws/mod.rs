//! AWS backend (aws-sdk-fis, aws-sdk-rds, aws-sdk-route53): the `db.*`, `dns.*` and `fis.*` vocabulary.
//! (Being built: see issue 4.)

pub mod clients;
pub mod fis;

use crate::backends::ConnectOptions;
use crate::diag::Diagnostic;
use crate::environment::{Backend, Environment};
use crate::provider::{BoxFuture, Provider, ProviderError};
use serde_json::Value as Json;

/// Check the `aws:` section without connecting.
pub fn check_settings(_env: &Environment) -> Result<(), Vec<Diagnostic>> {
    Ok(())
}

/// Build the SDK clients the `aws:` section names.
pub async fn connect(
    env: &Environment,
    _opts: &ConnectOptions,
) -> Result<AwsProvider, Vec<Diagnostic>> {
    Err(vec![env.settings_error(
        Backend::Aws,
        "",
        "the aws backend is not available yet".into(),
        "use `backend: sim`".into(),
    )])
}

pub struct AwsProvider {}

impl Provider for AwsProvider {
    fn backend(&self) -> &'static str {
        "aws"
    }
    fn inject<'a>(
        &'a self,
        action: &'a str,
        _params: &'a Json,
    ) -> BoxFuture<'a, Result<Json, ProviderError>> {
        Box::pin(async move {
            Err(ProviderError::Unsupported {
                backend: "aws".into(),
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
                backend: "aws".into(),
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
                backend: "aws".into(),
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
                backend: "aws".into(),
                name: action.into(),
            })
        })
    }
}
