//! The AWS SDK clients a drill uses, built once per run on one ring-only HTTPS client.
//!
//! SDK retries are off everywhere ([`RetryConfig::disabled`]): [`super::call`] retries with our
//! own bounded, journaled policy, so production and tests behave the same (tests could not
//! otherwise turn retries off without changing what they test).

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_http_client::{
    Builder,
    tls::{self, rustls_provider::CryptoMode},
};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use std::time::Duration;

/// Connect timeout of every call.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one attempt of one call (waiting for a change is polling, not one long call).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// SDK clients for the primary region and the DR region.
#[derive(Clone, Debug)]
pub struct Clients {
    pub region: String,
    pub dr_region: Option<String>,
    pub rds: aws_sdk_rds::Client,
    /// RDS in the DR region (global database secondaries live there); the primary's when no
    /// DR region is set.
    pub rds_dr: aws_sdk_rds::Client,
    pub route53: aws_sdk_route53::Client,
    pub fis: aws_sdk_fis::Client,
    pub sts: aws_sdk_sts::Client,
}

impl Clients {
    /// Clients from a loaded SDK config (one per region).
    pub fn from_configs(primary: &SdkConfig, dr: Option<&SdkConfig>) -> Clients {
        let region = primary.region().map(|r| r.to_string()).unwrap_or_default();
        let dr_region = dr.and_then(|d| d.region()).map(|r| r.to_string());
        Clients {
            region,
            dr_region,
            rds: aws_sdk_rds::Client::new(primary),
            rds_dr: aws_sdk_rds::Client::new(dr.unwrap_or(primary)),
            route53: aws_sdk_route53::Client::new(primary),
            fis: aws_sdk_fis::Client::new(primary),
            sts: aws_sdk_sts::Client::new(primary),
        }
    }

    /// Clients against an emulator (moto) at `endpoint` with static test credentials and SDK
    /// retries off, for tests.
    pub fn for_endpoint(endpoint: &str, region: &str, dr_region: Option<&str>) -> Clients {
        Clients::for_endpoint_with(endpoint, region, dr_region, https_client())
    }

    /// As [`Clients::for_endpoint`], over a given HTTP client (tests swap the transport).
    pub fn for_endpoint_with(
        endpoint: &str,
        region: &str,
        dr_region: Option<&str>,
        http: SharedHttpClient,
    ) -> Clients {
        let primary = test_config(endpoint, region, http.clone());
        let dr = dr_region.map(|r| test_config(endpoint, r, http.clone()));
        Clients::from_configs(&primary, dr.as_ref())
    }

    /// The RDS client of a region (the primary's or the DR region's).
    pub fn rds_in(&self, region: &str) -> &aws_sdk_rds::Client {
        if self.dr_region.as_deref() == Some(region) {
            &self.rds_dr
        } else {
            &self.rds
        }
    }
}

/// An SDK config for an emulator: static test credentials, SDK retries off.
pub fn test_config(endpoint: &str, region: &str, http: SharedHttpClient) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(
            aws_credential_types::Credentials::for_tests(),
        ))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts())
        .http_client(http)
        .build()
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// The SDK config of one region from the standard credential chain (optionally a named
/// profile) and an optional endpoint override. Reads local configuration only: no AWS call is
/// made until a client is used.
pub async fn standard_config(
    region: &str,
    profile: Option<&str>,
    endpoint_url: Option<&str>,
    http: SharedHttpClient,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts())
        .http_client(http);
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    if let Some(u) = endpoint_url {
        loader = loader.endpoint_url(u);
    }
    loader.load().await
}

/// `base` with its credentials replaced by an STS AssumeRole of `role_arn` (session name
/// `session`), on top of `base`'s own credentials. Nothing is called until a client needs
/// credentials. `base` must come from the `aws_config` loader (it carries the time source STS
/// needs), as [`standard_config`]'s does.
pub async fn assume_role(base: &SdkConfig, role_arn: &str, session: &str) -> SdkConfig {
    let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name(session)
        .configure(base)
        .build()
        .await;
    base.clone()
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

/// The one HTTPS client every SDK client shares: rustls with ring only (no aws-lc), see
/// ARCHITECTURE.md.
pub fn https_client() -> SharedHttpClient {
    Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
