//! AWS backend (aws-sdk-rds, aws-sdk-route53, aws-sdk-sts, aws-sdk-fis): the `db.*`, `dns.*` and
//! `fis.*` vocabulary against real AWS APIs (or an emulator at `aws.endpoint_url`).
//!
//! - [`settings`]: the `aws:` section (regions, profile, role, endpoint, retries, polling).
//! - [`clients`]: SDK clients on one ring-only HTTPS client; SDK retries off.
//! - [`call`]: our bounded retry and the mapping of AWS errors to [`crate::backend::ProviderError`]
//!   (denials name the IAM action and resource ARN), for every service, FIS included.
//! - [`fis`]: `fis.experiment` (templates and experiments), through [`call`].
//! - [`rds`], [`route53`]: the actions and probes; [`preflight`]: existence checks, dry-run
//!   descriptions and the IAM actions each call needs.
//! - [`provider`]: [`AwsProvider`], which holds the run's clock, journal notes and the ledger of
//!   what the drill created or changed.
//!
//! Invariants: credentials come only from the SDK's standard chain (or an assumed role on top
//! of it) and are never printed or journaled (outputs and notes carry names and ARNs only);
//! every resource a drill creates is journaled with its cleanup command; a half-done action's
//! error says what exists and what rollback is owed.

pub mod call;
pub mod clients;
pub mod preflight;
pub mod provider;
pub mod rds;
pub mod route53;
pub mod settings;

pub use provider::AwsProvider;
pub use settings::AwsSettings;
pub mod fis;

use crate::backend::router::ConnectOptions;
use crate::lang::diag::Diagnostic;
use crate::lang::environment::Environment;

/// Check the `aws:` section without connecting.
pub fn check_settings(env: &Environment) -> Result<(), Vec<Diagnostic>> {
    settings::decode(env).map(|_| ())
}

/// Build the provider the `aws:` section describes. Reads local configuration (profile files)
/// only: no AWS API is called until preflight, so an unreachable endpoint is a preflight
/// problem, not a settings error.
pub async fn connect(
    env: &Environment,
    _opts: &ConnectOptions,
) -> Result<AwsProvider, Vec<Diagnostic>> {
    let s = settings::decode(env)?;
    let http = clients::https_client();
    let primary = clients::standard_config(
        &s.region,
        s.profile.as_deref(),
        s.endpoint_url.as_deref(),
        http.clone(),
    )
    .await;
    let dr = match &s.dr_region {
        Some(r) => Some(
            clients::standard_config(r, s.profile.as_deref(), s.endpoint_url.as_deref(), http)
                .await,
        ),
        None => None,
    };
    Ok(AwsProvider::from_configs(s, primary, dr))
}

#[cfg(test)]
mod tests;
